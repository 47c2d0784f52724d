/* delivery.c - one transaction: a POST per endpoint, all at once under one deadline, and the
 * results folded into the one SMTP reply after the final dot.
 *
 * Uses http_client for the requests, payload for the headers and spool for the body; it must
 * not include curl or jansson, and it never writes to the SMTP connection itself.
 *
 * The deadline: every request starts at the same moment with a total timeout of
 * min(endpoint timeout, transaction_timeout_ms), so curl ends each one by the transaction's
 * deadline at the latest and reports it as a timeout (http_client.h gives no loop to arm a
 * timer of our own on, and none is needed). */
#include "smtphook/delivery.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "smtphook/error.h"
#include "smtphook/log.h"
#include "smtphook/payload.h"

#define DELIVERY_NS_PER_MS  1000000u
#define DELIVERY_REASON_MAX 256u /* longest curl reason kept in the log */

/* Replies (RFC 5321 §4.2.2 basic codes, RFC 3463 enhanced codes). */
static const struct delivery_reply delivery_ok = {250, "2.0.0", "delivered"};
static const struct delivery_reply delivery_too_big = {552, "5.3.4",
                                                       "message too big for the endpoint"};
static const struct delivery_reply delivery_not_found = {451, "4.3.5",
                                                         "endpoint not found or not authorized"};
static const struct delivery_reply delivery_temp_failed = {451, "4.3.0",
                                                           "endpoint temporarily failed"};
static const struct delivery_reply delivery_redirected = {451, "4.3.5",
                                                          "endpoint redirected (not followed)"};
static const struct delivery_reply delivery_timed_out = {451, "4.4.7", "endpoint timed out"};
static const struct delivery_reply delivery_unreachable = {451, "4.4.1", "endpoint unreachable"};
static const struct delivery_reply delivery_no_dns = {451, "4.4.3",
                                                      "endpoint name did not resolve"};
static const struct delivery_reply delivery_tls = {451, "4.7.5", "endpoint TLS failed"};
static const struct delivery_reply delivery_partial = {451, "4.4.2", "message not fully sent"};
static const struct delivery_reply delivery_cut_off = {451, "4.4.2", "endpoint response cut off"};
static const struct delivery_reply delivery_other = {451, "4.3.0", "endpoint request failed"};
static const struct delivery_reply delivery_refused = {550, "5.7.1", "refused by endpoint"};
static const struct delivery_reply delivery_bad_content = {550, "5.6.0",
                                                           "endpoint rejected the message content"};
static const struct delivery_reply delivery_no_endpoint = {451, "4.3.5", "no endpoint configured"};

/* One request of the transaction. */
struct delivery_slot {
    struct delivery *d;       /* owner */
    size_t index;             /* endpoint index in cfg and results */
    struct http_request *req; /* running request, NULL once finished */
};

struct delivery {
    char id[ENVELOPE_ID_MAX + 1];             /* transaction id, for the log */
    const struct spool *sp;                   /* the body, read by every request */
    delivery_done_fn done;                    /* called once when all have finished */
    void *arg;                                /* passed to done */
    uint64_t started_ns;                      /* uv_hrtime at start */
    uint64_t body_size;                       /* spool size at start */
    size_t n;                                 /* endpoints */
    size_t pending;                           /* requests still running */
    struct delivery_endpoint_result *results; /* one per endpoint, config order */
    struct delivery_slot *slots;              /* one per endpoint */
};

/* delivery_map_status - the reply for an HTTP status (RFC 9110 §15). */
static struct delivery_reply delivery_map_status(long status, uint64_t body_sent,
                                                 uint64_t body_size)
{
    if (status >= 200 && status <= 299)
        return body_sent < body_size ? delivery_partial : delivery_ok;
    if (status >= 300 && status <= 399)
        return delivery_redirected;
    if (status >= 500 && status <= 599)
        return delivery_temp_failed;
    if (status >= 400 && status <= 499) {
        switch (status) {
        case 413: /* Content Too Large */
            return delivery_too_big;
        case 401: /* Unauthorized: a configuration problem the operator can fix */
        case 404: /* Not Found: likewise */
            return delivery_not_found;
        case 408: /* Request Timeout */
        case 429: /* Too Many Requests */
        case 431: /* Request Header Fields Too Large: the endpoint's header limit is below
                   * what this envelope needs; raising it fixes the message, so defer */
            return delivery_temp_failed;
        case 400: /* Bad Request */
        case 415: /* Unsupported Media Type */
        case 422: /* Unprocessable Content */
            return delivery_bad_content;
        default:
            return delivery_refused;
        }
    }
    /* 1xx as a final answer, or no known class: try again later rather than bounce. */
    return delivery_other;
}

/* delivery_map - a final non-2xx status decides even when curl also reports an error (the
 * endpoint answered before the transfer broke); otherwise the failure class does. A 2xx
 * whose header section never ended is no answer (RFC 9112 §8), though curl reports no error. */
struct delivery_reply delivery_map(const struct http_response *resp, uint64_t body_size)
{
    if (resp->failure == HTTP_FAILURE_NONE && resp->status >= 200 && resp->status <= 299 &&
        !resp->headers_complete)
        return delivery_cut_off;
    if (resp->failure == HTTP_FAILURE_NONE || resp->status >= 300)
        return delivery_map_status(resp->status, resp->body_sent, body_size);
    switch (resp->failure) {
    case HTTP_FAILURE_TIMEOUT:
        return delivery_timed_out;
    case HTTP_FAILURE_CONNECT:
        return delivery_unreachable;
    case HTTP_FAILURE_DNS:
        return delivery_no_dns;
    case HTTP_FAILURE_TLS:
        return delivery_tls;
    case HTTP_FAILURE_SEND:
        return delivery_partial;
    case HTTP_FAILURE_OTHER:
    case HTTP_FAILURE_NONE:
    default:
        return delivery_other;
    }
}

/* delivery_fold - the first permanent (5xx) reply in endpoint order, else the first
 * temporary (4xx) one, else success. No endpoint at all is a temporary failure: the
 * message went nowhere. */
struct delivery_reply delivery_fold(const struct delivery_endpoint_result *results, size_t n)
{
    if (n == 0)
        return delivery_no_endpoint;
    for (size_t i = 0; i < n; i++) {
        if (results[i].reply.code >= 500)
            return results[i].reply;
    }
    for (size_t i = 0; i < n; i++) {
        if (results[i].reply.code >= 400)
            return results[i].reply;
    }
    return delivery_ok;
}

/* delivery_free - release the delivery; requests must be finished or cancelled. */
static void delivery_free(struct delivery *d)
{
    free(d->results);
    free(d->slots);
    free(d);
}

/* delivery_cancel_requests - cancel every request still running. */
static void delivery_cancel_requests(struct delivery *d)
{
    for (size_t i = 0; i < d->n; i++) {
        if (d->slots[i].req != NULL) {
            http_request_cancel(d->slots[i].req);
            d->slots[i].req = NULL;
        }
    }
    d->pending = 0;
}

/* delivery_body_read - http_body_read_fn over the spool. */
static int delivery_body_read(void *arg, uint64_t offset, char *dst, size_t len, size_t *got)
{
    struct delivery *d = arg;
    return spool_read(d->sp, offset, dst, len, got);
}

/* delivery_on_response - one request finished: record it; the last one folds, calls done
 * and frees the delivery (done may free the spool, the envelope and the connection). */
static void delivery_on_response(void *arg, const struct http_response *resp)
{
    struct delivery_slot *slot = arg;
    struct delivery *d = slot->d;
    struct delivery_endpoint_result *r = &d->results[slot->index];
    slot->req = NULL;
    r->failure = resp->failure;
    r->status = resp->status;
    r->elapsed_ms = resp->elapsed_ms;
    r->reply = delivery_map(resp, d->body_size);
    if (resp->failure != HTTP_FAILURE_NONE && resp->error != NULL) {
        /* The reply says what kind of failure; curl's reason says what to fix (which
         * certificate check failed, which file could not be read). */
        char why[DELIVERY_REASON_MAX];
        log_warn("endpoint %s failed for id=%s: %s", r->endpoint, d->id,
                 log_sanitize(why, sizeof(why), resp->error, strlen(resp->error)));
    }
    if (--d->pending > 0)
        return;

    struct delivery_outcome o;
    o.reply = delivery_fold(d->results, d->n);
    o.results = d->results;
    o.n_results = d->n;
    o.elapsed_ms = (uv_hrtime() - d->started_ns) / DELIVERY_NS_PER_MS;
    d->done(d->arg, &o);
    delivery_free(d);
}

/* delivery_min - the smaller of two limits, 0 meaning "none". */
static uint64_t delivery_min(uint64_t a, uint64_t b)
{
    if (a == 0)
        return b;
    if (b == 0)
        return a;
    return a < b ? a : b;
}

/* delivery_header_line - "Name: value" for an endpoint header, malloc'ed. */
static char *delivery_header_line(const struct config_header *h)
{
    size_t n = strlen(h->name) + strlen(h->value) + sizeof(": ");
    char *line = malloc(n);
    if (line != NULL)
        snprintf(line, n, "%s: %s", h->name, h->value);
    return line;
}

/* delivery_start_one - start the request for endpoint i with the payload headers plus the
 * endpoint's own (curl copies them, so they are freed here). */
static int delivery_start_one(struct http_client *hc, const struct config *cfg, size_t i,
                              struct delivery *d, char **payload, size_t n_payload)
{
    const struct config_endpoint *ep = &cfg->endpoints[i];
    size_t n = n_payload + ep->n_headers;
    char **own = calloc(ep->n_headers + 1, sizeof(*own));
    const char **lines = calloc(n + 1, sizeof(*lines));
    int rc = SH_ENOMEM;
    if (own == NULL || lines == NULL)
        goto done;
    for (size_t k = 0; k < n_payload; k++)
        lines[k] = payload[k];
    for (size_t k = 0; k < ep->n_headers; k++) {
        if ((own[k] = delivery_header_line(&ep->headers[k])) == NULL)
            goto done;
        lines[n_payload + k] = own[k];
    }

    struct http_request_opts opts;
    memset(&opts, 0, sizeof(opts));
    opts.url = ep->url;
    opts.headers = lines;
    opts.n_headers = n;
    opts.body_size = d->body_size;
    opts.body_read = delivery_body_read;
    opts.body_arg = d;
    opts.timeout_ms = delivery_min(ep->timeout_ms, cfg->limits.transaction_timeout_ms);
    opts.connect_timeout_ms = delivery_min(ep->connect_timeout_ms, opts.timeout_ms);
    opts.ca_file = ep->ca_file;
    opts.client_cert = ep->client_cert;
    opts.client_key = ep->client_key;
    rc = http_request_start(hc, &opts, delivery_on_response, &d->slots[i], &d->slots[i].req);
    if (rc == 0)
        d->pending++;

done:
    if (own != NULL) {
        for (size_t k = 0; k < ep->n_headers; k++)
            free(own[k]);
    }
    free(own);
    free(lines);
    return rc;
}

/* delivery_start - one request per endpoint, all started before returning; done follows
 * from the loop. On failure the requests already started are cancelled. */
int delivery_start(struct http_client *hc, const struct config *cfg, const struct envelope *env,
                   const struct spool *sp, delivery_done_fn done, void *arg, struct delivery **out)
{
    char **payload = NULL;
    size_t n_payload = 0;
    int rc;
    if (out != NULL)
        *out = NULL;
    if (cfg->n_endpoints == 0 || done == NULL)
        return SH_EINVAL;
    struct delivery *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return SH_ENOMEM;
    snprintf(d->id, sizeof(d->id), "%s", env->id);
    d->sp = sp;
    d->done = done;
    d->arg = arg;
    d->started_ns = uv_hrtime();
    d->body_size = spool_size(sp);
    d->n = cfg->n_endpoints;
    d->results = calloc(d->n, sizeof(*d->results));
    d->slots = calloc(d->n, sizeof(*d->slots));
    if (d->results == NULL || d->slots == NULL) {
        rc = SH_ENOMEM;
        goto fail;
    }
    if ((rc = payload_headers(env, &payload, &n_payload)) != 0)
        goto fail;
    for (size_t i = 0; i < d->n; i++) {
        d->results[i].endpoint = cfg->endpoints[i].name;
        d->slots[i].d = d;
        d->slots[i].index = i;
        if ((rc = delivery_start_one(hc, cfg, i, d, payload, n_payload)) != 0)
            goto fail;
    }
    payload_headers_free(payload, n_payload);
    if (out != NULL)
        *out = d;
    return 0;

fail:
    payload_headers_free(payload, n_payload);
    delivery_cancel_requests(d);
    delivery_free(d);
    return rc;
}

/* delivery_cancel - cancel what is running and free; done is never called afterwards.
 * Must not be called after done (the delivery is gone then). NULL is ignored. */
void delivery_cancel(struct delivery *d)
{
    if (d == NULL)
        return;
    delivery_cancel_requests(d);
    delivery_free(d);
}
