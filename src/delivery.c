/* delivery.c - one transaction: its recipients split by route, a POST per endpoint with
 * retries inside one deadline, failover, circuit breakers, and the results folded into the
 * one SMTP reply after the final dot (see delivery.h).
 *
 * Uses http_client for the requests, format.h for each request's headers and body (read
 * from the transaction's spool as curl sends it), sign.h for Standard Webhooks signatures,
 * retry.h for the schedule and breaker.h per endpoint; it must not include curl or jansson,
 * and it never writes to the SMTP connection itself.
 *
 * A signature needs a pass over the body before the request starts. A small body is signed
 * at once; a larger one in steps of SIGN_STEP_BYTES, one step per turn of the loop for each
 * body being signed (an idle handle of the context), so other sessions keep being served
 * while a large message is signed.
 *
 * One uv_timer_t per delivery serves both the deadline and the retry times: it is armed for
 * whichever comes first; at the deadline it cancels whatever still runs, so nothing
 * outlives it (curl's own timeout is set just past the deadline, as a backstop). */
#include "smtphook/delivery.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtphook/breaker.h"
#include "smtphook/error.h"
#include "smtphook/format.h"
#include "smtphook/log.h"
#include "smtphook/mail_header.h"
#include "smtphook/payload.h"
#include "smtphook/retry.h"
#include "smtphook/sign.h"

_Static_assert(FORMAT_BOUNDARY_LEN == TXN_BOUNDARY_LEN, "one boundary length");

#define DELIVERY_REASON_MAX        256u /* longest curl reason kept in the log */
#define DELIVERY_TEXT_MAX          190  /* bytes of an endpoint's reason in "Error: ... (id ...)" */
#define DELIVERY_NO_ROUTE          SIZE_MAX
#define DELIVERY_BUILD_MAX         4    /* builds of a request whose boundary a field value held */
#define DELIVERY_DEADLINE_GRACE_MS 250u /* curl's timeout past the deadline: a backstop */

/* Replies (RFC 5321 §4.2.2 basic codes, RFC 3463 enhanced codes); the last field says
 * whether another attempt may cure the failure. */
static const struct delivery_reply delivery_ok = {250, "2.0.0", "delivered", false};
static const struct delivery_reply delivery_too_big = {552, "5.3.4",
                                                       "message too big for the endpoint", false};
static const struct delivery_reply delivery_not_found = {
    451, "4.3.5", "endpoint not found or not authorized", false};
static const struct delivery_reply delivery_temp_failed = {451, "4.3.0",
                                                           "endpoint temporarily failed", true};
static const struct delivery_reply delivery_header_limit = {
    451, "4.3.0", "endpoint refused the request headers as too large", false};
static const struct delivery_reply delivery_redirected = {
    451, "4.3.5", "endpoint redirected (not followed)", false};
static const struct delivery_reply delivery_timed_out = {451, "4.4.7", "endpoint timed out", true};
static const struct delivery_reply delivery_unreachable = {451, "4.4.1", "endpoint unreachable",
                                                           true};
static const struct delivery_reply delivery_no_dns = {451, "4.4.3", "endpoint name did not resolve",
                                                      true};
static const struct delivery_reply delivery_tls = {451, "4.7.5", "endpoint TLS failed", false};
static const struct delivery_reply delivery_partial = {451, "4.4.2", "message not fully sent",
                                                       true};
static const struct delivery_reply delivery_cut_off = {451, "4.4.2", "endpoint response cut off",
                                                       true};
static const struct delivery_reply delivery_other = {451, "4.3.0", "endpoint request failed", true};
static const struct delivery_reply delivery_refused = {550, "5.7.1", "refused by endpoint", false};
static const struct delivery_reply delivery_bad_content = {
    550, "5.6.0", "endpoint rejected the message content", false};
static const struct delivery_reply delivery_circuit_open = {
    451, "4.4.1", "endpoint unavailable (circuit open)", false};
static const struct delivery_reply delivery_local = {451, "4.3.0", "local problem", false};
static const struct delivery_reply delivery_deadline = {451, "4.4.7",
                                                        "transaction deadline reached", false};

/* delivery_map_status - the reply for an HTTP status (RFC 9110 §15). */
static struct delivery_reply delivery_map_status(long status, uint64_t body_sent,
                                                 uint64_t body_size, bool headers_complete)
{
    /* RFC 9112 §8: a response whose header section did not end is incomplete, whatever
     * its status line says: no answer to act on (least of all a permanent refusal). */
    if (!headers_complete)
        return delivery_cut_off;
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
            return delivery_temp_failed;
        case 431: /* Request Header Fields Too Large: the endpoint's header limit is below
                   * what this envelope needs; raising it fixes the message, so defer */
            return delivery_header_limit;
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
 * endpoint answered before the transfer broke); otherwise the failure class does. */
struct delivery_reply delivery_map(const struct http_response *resp, uint64_t body_size)
{
    if (resp->failure == HTTP_FAILURE_NONE || resp->status >= 300)
        return delivery_map_status(resp->status, resp->body_sent, body_size,
                                   resp->headers_complete);
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

/* delivery_set - a table reply as an app_reply. */
static void delivery_set(struct app_reply *dst, const struct delivery_reply *r)
{
    dst->code = r->code;
    snprintf(dst->esc, sizeof(dst->esc), "%s", r->esc);
    snprintf(dst->text, sizeof(dst->text), "%s", r->text);
}

/* delivery_rule - the endpoint's reply_map row for status, or NULL (rows sorted). */
static const struct config_reply_rule *delivery_rule(const struct config_endpoint *ep, long status)
{
    size_t lo = 0, hi = ep->n_reply_map;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        long s = (long)ep->reply_map[mid].status;
        if (s == status)
            return &ep->reply_map[mid];
        if (s < status)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* delivery_class_esc - the enhanced code a reply_map code without one gets. */
static const char *delivery_class_esc(unsigned code)
{
    return code < 300 ? "2.0.0" : code < 500 ? "4.3.0" : "5.3.0";
}

/* delivery_answered - see delivery.h. A 2xx with a transfer error is no answer (the exchange
 * did not complete); a final non-2xx status is, once its header section ended. */
bool delivery_answered(const struct http_response *resp)
{
    return resp->status >= 100 && resp->headers_complete &&
           (resp->failure == HTTP_FAILURE_NONE || resp->status >= 300);
}

/* delivery_app_reply - see delivery.h. */
bool delivery_app_reply(const struct http_response *resp, struct app_reply *out, const char **why)
{
    struct app_reply r;
    *why = NULL;
    if (!delivery_answered(resp) || resp->smtp_reply == NULL)
        return false;
    if (resp->smtp_reply_repeated) {
        *why = "Smtphook-Reply given more than once";
        return false;
    }
    if (!app_reply_parse(resp->smtp_reply, strlen(resp->smtp_reply), APP_REPLY_FULL, &r, why))
        return false;
    if (!app_reply_agrees(&r, resp->status)) {
        *why = "Smtphook-Reply does not agree with the HTTP status class";
        return false;
    }
    *out = r;
    return true;
}

/* delivery_choose - see delivery.h. A response counts only when its header block ended: a
 * cut-off response's headers are not trusted either. */
struct delivery_reply delivery_choose(const struct config_endpoint *ep,
                                      const struct http_response *resp, uint64_t body_size,
                                      struct app_reply *out, bool *retry, bool *app,
                                      const char **why)
{
    struct delivery_reply def = delivery_map(resp, body_size);
    delivery_set(out, &def);
    *retry = def.retry;
    *app = false;
    *why = NULL;
    /* No answer, or a 2xx before the whole body was sent: nothing may turn it into a
     * success (the body did not get through), nor into a refusal. */
    if (!delivery_answered(resp) || (resp->status / 100 == 2 && resp->body_sent < body_size))
        return def;
    const struct config_reply_rule *rule = delivery_rule(ep, resp->status);
    if (rule != NULL) {
        out->code = rule->reply.code;
        snprintf(out->esc, sizeof(out->esc), "%s",
                 rule->reply.esc[0] != '\0' ? rule->reply.esc : delivery_class_esc(out->code));
        if (rule->reply.text[0] != '\0') {
            snprintf(out->text, sizeof(out->text), "%s", rule->reply.text);
            *app = true;
        } else if (out->code / 100 != def.code / 100) {
            snprintf(out->text, sizeof(out->text), "endpoint answered HTTP %ld", resp->status);
        }
    }
    struct app_reply r;
    if (delivery_app_reply(resp, &r, why)) {
        *out = r;
        *app = true;
    }
    /* Another attempt is worth it only where both the answer and the reply say "later". */
    *retry = *retry && out->code / 100 == 4;
    return def;
}

/* delivery_rank - how bad a reply is for the sender: permanent 2, temporary 1, success 0.
 * The worst result wins everywhere, the first one on ties. */
static int delivery_rank(unsigned code)
{
    return code >= 500 ? 2 : code >= 400 ? 1 : 0;
}

/* delivery_fold - the first permanent (5xx) reply in order, else the first temporary
 * (4xx) one, else -1: every one accepted. */
long delivery_fold(const struct txn_delivery *deliveries, size_t n)
{
    long worst = -1;
    int rank = 0;
    for (size_t i = 0; i < n; i++) {
        if (delivery_rank(deliveries[i].reply.code) > rank) {
            worst = (long)i;
            rank = delivery_rank(deliveries[i].reply.code);
        }
    }
    return worst;
}

/* ---- shared state ------------------------------------------------------------------------ */

struct delivery_job;

struct delivery_context {
    uv_loop_t *loop;     /* timers run here */
    uv_idle_t sign_idle; /* signs large bodies a step per loop turn, once initialised */
    bool sign_idle_init; /* sign_idle was initialised: closed before the context goes */
    struct delivery_job *sign_head, *sign_tail; /* bodies being signed, round robin */
    struct stats *stats;                        /* webhook requests are counted here */
    struct http_client *http;                   /* every request */
    const struct config *cfg;                   /* endpoints, routes, limits (not owned) */
    struct breaker *breakers;                   /* one per endpoint, config order */
    size_t *all_endpoints;   /* 0, 1, ... n_endpoints - 1: the route of a config without */
    struct delivery *active; /* deliveries under way (for a stop) */
    uint64_t stop_at;        /* loop time by which every delivery must end, 0: none */
};

/* delivery_context_new - see delivery.h. */
int delivery_context_new(uv_loop_t *loop, struct http_client *http, const struct config *cfg,
                         struct delivery_context **out)
{
    *out = NULL;
    struct delivery_context *ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL)
        return SH_ENOMEM;
    size_t n = cfg->n_endpoints > 0 ? cfg->n_endpoints : 1;
    ctx->breakers = calloc(n, sizeof(*ctx->breakers));
    ctx->all_endpoints = calloc(n, sizeof(*ctx->all_endpoints));
    if (ctx->breakers == NULL || ctx->all_endpoints == NULL) {
        delivery_context_free(ctx);
        return SH_ENOMEM;
    }
    for (size_t i = 0; i < cfg->n_endpoints; i++) {
        breaker_init(&ctx->breakers[i], &cfg->endpoints[i].breaker);
        ctx->all_endpoints[i] = i;
    }
    ctx->loop = loop;
    ctx->http = http;
    ctx->cfg = cfg;
    *out = ctx;
    return 0;
}

/* delivery_context_carry - see delivery.h. */
void delivery_context_carry(struct delivery_context *ctx, const struct delivery_context *from)
{
    const struct config *cfg = ctx->cfg, *old = from->cfg;
    for (size_t i = 0; i < cfg->n_endpoints; i++) {
        const struct config_endpoint *e = &cfg->endpoints[i];
        for (size_t j = 0; j < old->n_endpoints; j++) {
            if (strcmp(old->endpoints[j].name, e->name) != 0 ||
                strcmp(old->endpoints[j].url, e->url) != 0)
                continue;
            breaker_carry(&ctx->breakers[i], &from->breakers[j]);
            if (ctx->breakers[i].state != BREAKER_CLOSED)
                log_info("endpoint %s: circuit breaker stays %s across the reload", e->name,
                         breaker_state_name(ctx->breakers[i].state));
            break;
        }
    }
}

/* delivery_route_down - see delivery.h. */
bool delivery_route_down(const struct delivery_context *ctx, long route)
{
    const struct config *cfg = ctx->cfg;
    const size_t *eps = ctx->all_endpoints;
    size_t n = cfg->n_endpoints;
    enum config_route_policy policy = CONFIG_ROUTE_ALL;
    if (config_route_delivery(cfg, route) != CONFIG_DELIVERY_SYNC)
        return false; /* the queue rides it out */
    if (route >= 0 && (size_t)route < cfg->n_routes) {
        eps = cfg->routes[route].endpoints;
        n = cfg->routes[route].n_endpoints;
        policy = cfg->routes[route].policy;
    }
    uint64_t now = uv_now(ctx->loop);
    size_t refusing = 0;
    for (size_t i = 0; i < n; i++)
        refusing += breaker_refusing(&ctx->breakers[eps[i]], now);
    return n > 0 && (policy == CONFIG_ROUTE_ALL ? refusing > 0 : refusing == n);
}

/* delivery_endpoint_refusing - see delivery.h. */
bool delivery_endpoint_refusing(const struct delivery_context *ctx, size_t ep)
{
    return ep < ctx->cfg->n_endpoints && breaker_refusing(&ctx->breakers[ep], uv_now(ctx->loop));
}

/* delivery_context_set_stats - see delivery.h. */
void delivery_context_set_stats(struct delivery_context *ctx, struct stats *st)
{
    ctx->stats = st;
}

/* delivery_all_down - see delivery.h. */
bool delivery_all_down(const struct delivery_context *ctx)
{
    uint64_t now = uv_now(ctx->loop);
    for (size_t i = 0; i < ctx->cfg->n_endpoints; i++) {
        if (!breaker_refusing(&ctx->breakers[i], now))
            return false;
    }
    return ctx->cfg->n_endpoints > 0;
}

/* delivery_context_release - the memory of a context. */
static void delivery_context_release(struct delivery_context *ctx)
{
    free(ctx->breakers);
    free(ctx->all_endpoints);
    free(ctx);
}

/* on_sign_idle_closed - the context's idle handle is closed: the context can go. */
static void on_sign_idle_closed(uv_handle_t *h)
{
    delivery_context_release(h->data);
}

/* delivery_context_free - see delivery.h. Deliveries are gone by now, so nothing is being
 * signed; a context that signed in steps goes once its idle handle is closed. */
void delivery_context_free(struct delivery_context *ctx)
{
    if (ctx == NULL)
        return;
    if (ctx->sign_idle_init)
        uv_close((uv_handle_t *)&ctx->sign_idle, on_sign_idle_closed);
    else
        delivery_context_release(ctx);
}

/* ---- one transaction --------------------------------------------------------------------- */

/* One route's share of the message (or all of it, without routes). */
struct delivery_group {
    const size_t *endpoints;         /* the route's endpoints, in order */
    size_t n_endpoints;              /* entries in endpoints */
    enum config_route_policy policy; /* all at once, or one after the other */
    size_t *rcpts;                   /* its recipients: indices into env.rcpt_to */
    size_t n_rcpts;                  /* entries in rcpts */
    size_t next;                     /* failover: the endpoint (position) tried next */
    long current;                    /* failover: index of the delivery under way, -1 */
    long *dels;                      /* all: the delivery of each endpoint (position) */
    bool settled;                    /* its outcome is known */
    enum config_delivery mode;       /* sync, queue (no request now) or sync_then_queue */
};

/* What a delivery of the transaction is doing. */
enum delivery_job_state {
    JOB_RUNNING = 0, /* a request is out */
    JOB_SIGNING,     /* its request's body is being signed, in steps */
    JOB_WAITING,     /* waiting for its next attempt */
    JOB_DONE,        /* finished: t->deliveries[index] has its result */
};

/* One endpoint's requests for the message: the live side of a txn_delivery. */
struct delivery_job {
    struct delivery *d;               /* owner */
    size_t index;                     /* into t->deliveries */
    enum delivery_job_state state;    /* see enum */
    struct http_request *req;         /* running request, or NULL */
    char **rcpt_view;                 /* its recipients' strings (owned by the envelope) */
    size_t n_rcpt_view;               /* entries in rcpt_view */
    uint64_t first_ms;                /* loop time of the first attempt */
    uint64_t attempt_ms;              /* loop time of the current attempt */
    uint64_t retry_at;                /* WAITING: loop time of the next attempt */
    bool app_reply;                   /* the reply's text is the app's (sent as it is) */
    struct format_request fr;         /* the current attempt's headers and body */
    size_t *rcpts;                    /* its recipients: indices into env.rcpt_to (the key) */
    bool streamed;                    /* the current attempt is streamed (chunked, live body) */
    bool stream_eof;                  /* ... and its body was read to its end */
    char trailer[2][DIGEST_HEX + 32]; /* streamed: the trailer lines */
    const char *trailer_lines[2];     /* point into trailer */
    struct sign_pass sign;            /* SIGNING: the pass over fr's body */
    struct delivery_job *sign_next;   /* SIGNING: next in the context's queue */
};

struct delivery {
    struct delivery_context *ctx;     /* loop, client, config, breakers */
    struct txn *t;                    /* the message; its deliveries get the results */
    delivery_done_fn done;            /* called once at the end */
    void *arg;                        /* passed to done */
    uv_timer_t timer;                 /* the deadline, or the next retry if sooner */
    uint64_t deadline;                /* loop time by which everything ends */
    uint64_t body_size;               /* spool size at start */
    struct delivery_group *groups;    /* one per route used */
    size_t n_groups;                  /* entries in groups */
    struct delivery_job **jobs;       /* one per txn_delivery, same order */
    size_t n_jobs;                    /* entries in jobs */
    bool *mark;                       /* one per recipient: scratch for delivery_share */
    struct mail_header_fields fields; /* From, To, Subject, for the presets that send them */
    bool fields_read;                 /* fields were read from the spool */
    size_t active;                    /* jobs not done */
    bool started;                     /* the first round was planned */
    bool streaming;                   /* opened at the body's start, not committed yet */
    bool committed;                   /* a streamed delivery whose message is complete */
    bool keys_final;                  /* the shares' keys were made from the whole body */
    bool finished;                    /* done was called (or cancelled) */
    bool once;                        /* one attempt per endpoint: the queue retries */
    struct delivery *prev, *next;     /* ctx->active */
};

static void delivery_attempt(struct delivery_job *job);
static void delivery_on_timer(uv_timer_t *timer);
static void delivery_commit_round(struct delivery *d);
static struct delivery *delivery_new(struct delivery_context *ctx, struct txn *t,
                                     const struct txn_share *share);
static int delivery_stream_read(void *arg, uint64_t offset, char *dst, size_t len, size_t *got);
static const char *const *delivery_trailers(void *arg, size_t *n);
static void job_finish(struct delivery_job *job);
static void job_done(struct delivery *d);

/* delivery_free - release everything but the transaction; requests are gone by now. */
static void delivery_free(struct delivery *d)
{
    for (size_t i = 0; i < d->n_groups; i++) {
        free(d->groups[i].rcpts);
        free(d->groups[i].dels);
    }
    free(d->groups);
    free(d->mark);
    mail_header_free(&d->fields);
    for (size_t i = 0; i < d->n_jobs; i++) {
        format_request_free(&d->jobs[i]->fr);
        free(d->jobs[i]->rcpts);
        free(d->jobs[i]->rcpt_view);
        free(d->jobs[i]);
    }
    free(d->jobs);
    free(d);
}

/* on_timer_closed - the timer handle is closed: the delivery can go. */
static void on_timer_closed(uv_handle_t *h)
{
    delivery_free(h->data);
}

/* delivery_unlink - leave the context's list of deliveries under way. */
static void delivery_unlink(struct delivery *d)
{
    if (d->prev != NULL)
        d->prev->next = d->next;
    else if (d->ctx->active == d)
        d->ctx->active = d->next;
    if (d->next != NULL)
        d->next->prev = d->prev;
    d->prev = d->next = NULL;
}

/* delivery_release - stop the timer and free once libuv has closed it. */
static void delivery_release(struct delivery *d)
{
    uv_timer_stop(&d->timer);
    uv_close((uv_handle_t *)&d->timer, on_timer_closed);
}

/* sign_dequeue - take job out of the context's signing queue and end its pass. */
static void sign_dequeue(struct delivery_job *job)
{
    struct delivery_context *ctx = job->d->ctx;
    struct delivery_job **at = &ctx->sign_head, *prev = NULL;
    while (*at != NULL && *at != job) {
        prev = *at;
        at = &(*at)->sign_next;
    }
    if (*at == job) {
        *at = job->sign_next;
        if (ctx->sign_tail == job)
            ctx->sign_tail = prev;
    }
    job->sign_next = NULL;
    sign_end(&job->sign);
}

/* job_stop - whatever the job has under way stops, without a callback: its request is
 * cancelled or its signing pass dropped. */
static void job_stop(struct delivery_job *job)
{
    if (job->req != NULL) {
        http_request_cancel(job->req);
        job->req = NULL;
    }
    if (job->state == JOB_SIGNING)
        sign_dequeue(job);
}

/* delivery_cancel_requests - every running request stops; no callback follows. */
static void delivery_cancel_requests(struct delivery *d)
{
    for (size_t i = 0; i < d->n_jobs; i++)
        job_stop(d->jobs[i]);
}

/* delivery_now - the loop's clock, for deadlines and retry times. */
static uint64_t delivery_now(const struct delivery *d)
{
    return uv_now(d->ctx->loop);
}

/* group_outcome - the delivery that decides a settled group's reply, or -1 if none ran. */
static long group_outcome(const struct delivery *d, const struct delivery_group *g)
{
    if (g->policy == CONFIG_ROUTE_FAILOVER)
        return g->current;
    /* all: every endpoint must have had its delivery; the worst of theirs decides, the
     * first in the route's order on ties */
    for (size_t i = 0; i < g->n_endpoints; i++) {
        if (g->dels[i] < 0)
            return -1;
    }
    long pick = g->n_endpoints > 0 ? g->dels[0] : -1;
    for (size_t i = 1; i < g->n_endpoints; i++) {
        if (delivery_rank(d->t->deliveries[g->dels[i]].reply.code) >
            delivery_rank(d->t->deliveries[pick].reply.code))
            pick = g->dels[i];
    }
    return pick;
}

/* delivery_queue_all - the shares of an "all" group for the queue: each endpoint whose
 * delivery failed for now (sync_then_queue), or every endpoint (queue), merged with a share
 * already made for the same endpoint. 0 or SH_ENOMEM. */
static int delivery_queue_all(struct delivery *d, const struct delivery_group *g, bool every)
{
    struct txn *t = d->t;
    for (size_t pos = 0; pos < g->n_endpoints; pos++) {
        const size_t *rcpts = g->rcpts;
        size_t n = g->n_rcpts;
        if (!every) {
            long k = g->dels[pos];
            if (k < 0 || t->deliveries[k].reply.code / 100 != 4)
                continue;
            rcpts = d->jobs[k]->rcpts; /* the request's own share: the same key */
            n = d->jobs[k]->n_rcpt_view;
        }
        size_t e = g->endpoints[pos];
        struct txn_share *same = NULL;
        for (size_t i = 0; i < t->n_shares && same == NULL; i++) {
            if (!t->shares[i].failover && t->shares[i].endpoints[0] == e)
                same = &t->shares[i];
        }
        if (same == NULL) {
            if (txn_add_share(t, &e, 1, false, rcpts, n) != 0)
                return SH_ENOMEM;
            continue;
        }
        /* one entry per message and endpoint: the recipients together, in RCPT order */
        memset(d->mark, 0, t->env.n_rcpt * sizeof(*d->mark));
        for (size_t i = 0; i < same->n_rcpts; i++)
            d->mark[same->rcpts[i]] = true;
        for (size_t i = 0; i < n; i++)
            d->mark[rcpts[i]] = true;
        size_t total = 0;
        for (size_t r = 0; r < t->env.n_rcpt; r++)
            total += d->mark[r];
        size_t *merged = malloc(total * sizeof(*merged));
        if (merged == NULL)
            return SH_ENOMEM;
        total = 0;
        for (size_t r = 0; r < t->env.n_rcpt; r++) {
            if (d->mark[r])
                merged[total++] = r;
        }
        free(same->rcpts);
        same->rcpts = merged;
        same->n_rcpts = total;
        txn_key(t, merged, total, same->key);
    }
    return 0;
}

/* delivery_queue_shares - what the queue is to deliver once the rest has succeeded: every
 * group of a "queue" route, and those of "sync_then_queue" routes that failed for now. A
 * failover route's share keeps its endpoints in order. 0 or SH_ENOMEM. */
static int delivery_queue_shares(struct delivery *d)
{
    struct txn *t = d->t;
    for (size_t i = 0; i < d->n_groups; i++) {
        const struct delivery_group *g = &d->groups[i];
        if (g->mode == CONFIG_DELIVERY_SYNC)
            continue;
        if (g->mode == CONFIG_DELIVERY_SYNC_THEN_QUEUE) {
            long k = group_outcome(d, g);
            if (k < 0 || t->deliveries[k].reply.code / 100 != 4)
                continue;
        }
        int rc = 0;
        if (g->policy == CONFIG_ROUTE_FAILOVER)
            rc = txn_add_share(t, g->endpoints, g->n_endpoints, true, g->rcpts, g->n_rcpts);
        else
            rc = delivery_queue_all(d, g, g->mode == CONFIG_DELIVERY_QUEUE);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* delivery_final_reply - the sender's reply: the worst group's deciding delivery. A group
 * the queue takes (a "queue" route, or a "sync_then_queue" route that failed for now)
 * counts as accepted: when nothing else failed its shares go into t->shares and the reply
 * is "queued", which holds once the queue has written them. The id goes into our own texts
 * so that the sender's logs and the app's records can be matched; a text the app or the
 * operator chose is sent exactly. */
static void delivery_final_reply(struct delivery *d)
{
    struct txn *t = d->t;
    long worst = -1;   /* the worst failure, the first of a kind */
    long ok_text = -1; /* the first accepting delivery with a text of its own */
    bool queued = false;
    txn_clear_shares(t);
    for (size_t i = 0; i < d->n_groups; i++) {
        const struct delivery_group *g = &d->groups[i];
        if (g->mode == CONFIG_DELIVERY_QUEUE) {
            queued = true;
            continue;
        }
        long k = group_outcome(d, g);
        if (k < 0) { /* nothing could even start: a local failure */
            worst = -2;
            break;
        }
        unsigned code = t->deliveries[k].reply.code;
        if (g->mode == CONFIG_DELIVERY_SYNC_THEN_QUEUE && code / 100 == 4) {
            queued = true;
            continue;
        }
        if (delivery_rank(code) > (worst < 0 ? 0 : delivery_rank(t->deliveries[worst].reply.code)))
            worst = k;
        if (code < 300 && ok_text < 0 && d->jobs[k]->app_reply)
            ok_text = k;
    }
    struct app_reply *r = &t->reply;
    if (worst == -2 || d->n_groups == 0 || (worst < 0 && queued && delivery_queue_shares(d) != 0)) {
        txn_clear_shares(t);
        r->code = delivery_local.code;
        snprintf(r->esc, sizeof(r->esc), "%s", delivery_local.esc);
        snprintf(r->text, sizeof(r->text), "Error: local problem, try again later (id %s)",
                 t->env.id);
        return;
    }
    if (worst < 0 && queued) {
        r->code = delivery_ok.code;
        snprintf(r->esc, sizeof(r->esc), "%s", delivery_ok.esc);
        snprintf(r->text, sizeof(r->text), "Ok: queued as %s", t->env.id);
        return;
    }
    long k = worst >= 0 ? worst : ok_text;
    if (k >= 0 && d->jobs[k]->app_reply) {
        *r = t->deliveries[k].reply;
        return;
    }
    if (worst < 0) {
        r->code = delivery_ok.code;
        snprintf(r->esc, sizeof(r->esc), "%s", delivery_ok.esc);
        snprintf(r->text, sizeof(r->text), "Ok: delivered as %s", t->env.id);
        return;
    }
    const struct app_reply *from = &t->deliveries[worst].reply;
    r->code = from->code;
    snprintf(r->esc, sizeof(r->esc), "%s", from->esc);
    snprintf(r->text, sizeof(r->text), "Error: %.*s (id %s)", DELIVERY_TEXT_MAX, from->text,
             t->env.id);
}

/* delivery_finish - everything has an outcome (or the deadline came): reply, done, free.
 * done may free the transaction and the connection. */
static void delivery_finish(struct delivery *d)
{
    if (d->finished)
        return;
    d->finished = true;
    delivery_cancel_requests(d);
    delivery_final_reply(d);
    /* Off the context's list before done: done may close the last connection, and the
     * server then frees the context. Nothing of it is touched afterwards. */
    delivery_unlink(d);
    d->done(d->arg, d->t);
    delivery_release(d);
}

/* delivery_arm - the timer for the earliest of the deadline and the waiting retries. */
static void delivery_arm(struct delivery *d)
{
    uint64_t at = d->deadline;
    for (size_t i = 0; i < d->n_jobs; i++) {
        const struct delivery_job *job = d->jobs[i];
        if (job->state == JOB_WAITING && job->retry_at < at)
            at = job->retry_at;
    }
    uint64_t now = delivery_now(d);
    uv_timer_start(&d->timer, delivery_on_timer, at > now ? at - now : 0, 0);
}

/* delivery_stop_waiting - the deadline came forward: a retry now due after it will not
 * happen, so its share ends at once with its last answer (the sender hears that, not a 421
 * at the end of the shutdown); the rest runs on until the new deadline. */
static void delivery_stop_waiting(struct delivery *d)
{
    for (size_t i = 0; i < d->n_jobs; i++) {
        struct delivery_job *job = d->jobs[i];
        if (job->state == JOB_WAITING && d->t->deliveries[job->index].attempts > 0 &&
            job->retry_at >= d->deadline)
            job_finish(job);
    }
    job_done(d);
    if (!d->finished)
        delivery_arm(d);
}

/* delivery_context_stop - see delivery.h. Each delivery's deadline comes forward: a retry
 * that would wait past it is not scheduled (the sender gets the last answer now), and
 * what still runs at it ends as at a deadline. */
void delivery_context_stop(struct delivery_context *ctx, uint64_t within_ms)
{
    uint64_t at = uv_now(ctx->loop) + within_ms;
    if (ctx->stop_at != 0 && ctx->stop_at <= at)
        return;
    ctx->stop_at = at;
    struct delivery *d = ctx->active;
    while (d != NULL) {
        struct delivery *next = d->next; /* d may finish (and leave the list) below */
        if (d->deadline > at) {
            d->deadline = at;
            if (d->started && !d->finished)
                delivery_stop_waiting(d);
        }
        d = next;
    }
}

/* job_finish - this delivery has its result. */
static void job_finish(struct delivery_job *job)
{
    struct delivery *d = job->d;
    struct txn_delivery *td = &d->t->deliveries[job->index];
    job->state = JOB_DONE;
    td->elapsed_ms = delivery_now(d) - job->first_ms;
    d->active--;
}

/* job_fail_local - this delivery cannot even try (no memory, circuit open, no time left). */
static void job_fail_local(struct delivery_job *job, const struct delivery_reply *why)
{
    struct txn_delivery *td = &job->d->t->deliveries[job->index];
    delivery_set(&td->reply, why);
    td->failure = why->text;
    td->status = 0;
    job_finish(job);
}

/* job_give_up - no further attempt: a retry keeps the reply of its last real attempt, a
 * first attempt gets why. */
static void job_give_up(struct delivery_job *job, const struct delivery_reply *why)
{
    if (job->d->t->deliveries[job->index].attempts == 0)
        job_fail_local(job, why);
    else
        job_finish(job);
}

/* group_wants - does group g want its endpoint at position pos now? "all" wants every
 * endpoint in the first round; "failover" the one it tries next, until it is settled. */
static bool group_wants(const struct delivery_group *g, size_t pos, bool first)
{
    if (g->mode == CONFIG_DELIVERY_QUEUE)
        return false; /* the queue posts it, after the reply */
    if (g->policy == CONFIG_ROUTE_ALL)
        return first;
    return !g->settled && g->current < 0 && g->next == pos;
}

/* delivery_share - the recipients endpoint e gets now: those of every group that wants it,
 * in RCPT order (a recipient is in one group only). *wanted: some group wants e. Returns
 * a new array (freed by the caller), or NULL without memory or without recipients. */
static size_t *delivery_share(struct delivery *d, size_t e, bool first, size_t *n, bool *wanted)
{
    size_t n_rcpt = d->t->env.n_rcpt;
    *n = 0;
    *wanted = false;
    memset(d->mark, 0, n_rcpt * sizeof(*d->mark));
    for (size_t g = 0; g < d->n_groups; g++) {
        const struct delivery_group *grp = &d->groups[g];
        for (size_t pos = 0; pos < grp->n_endpoints; pos++) {
            if (grp->endpoints[pos] != e || !group_wants(grp, pos, first))
                continue;
            *wanted = true;
            for (size_t i = 0; i < grp->n_rcpts; i++)
                d->mark[grp->rcpts[i]] = true;
            *n += grp->n_rcpts;
        }
    }
    if (*n == 0)
        return NULL;
    size_t *share = malloc(*n * sizeof(*share));
    if (share == NULL)
        return NULL;
    size_t k = 0;
    for (size_t r = 0; r < n_rcpt; r++) {
        if (d->mark[r])
            share[k++] = r;
    }
    return share;
}

/* delivery_new_job - a delivery for endpoint ep with the recipients in (rcpts, n), which
 * it takes over. Returns its index, or -1 without memory. */
static long delivery_new_job(struct delivery *d, size_t ep, size_t *rcpts, size_t n)
{
    struct txn *t = d->t;
    struct txn_delivery *dels = realloc(t->deliveries, (t->n_deliveries + 1) * sizeof(*dels));
    struct delivery_job **jobs = NULL;
    struct delivery_job *job = calloc(1, sizeof(*job));
    if (dels != NULL)
        t->deliveries = dels;
    if (dels != NULL)
        jobs = realloc(d->jobs, (d->n_jobs + 1) * sizeof(*jobs));
    if (jobs != NULL)
        d->jobs = jobs;
    if (dels == NULL || jobs == NULL || job == NULL) {
        free(job);
        free(rcpts);
        return -1;
    }
    job->rcpt_view = calloc(n > 0 ? n : 1, sizeof(*job->rcpt_view));
    if (job->rcpt_view == NULL) {
        free(job);
        free(rcpts);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        job->rcpt_view[i] = t->env.rcpt_to[rcpts[i]];
    job->n_rcpt_view = n;
    struct txn_delivery *td = &t->deliveries[t->n_deliveries];
    memset(td, 0, sizeof(*td));
    td->endpoint = ep;
    td->name = d->ctx->cfg->endpoints[ep].name;
    txn_key(t, rcpts, n, td->key); /* made again once a streamed body has ended */
    job->rcpts = rcpts;
    job->d = d;
    job->index = t->n_deliveries;
    job->state = JOB_WAITING;
    d->jobs[d->n_jobs++] = job;
    t->n_deliveries++;
    d->active++;
    return (long)job->index;
}

/* delivery_round - start the deliveries the groups want now: the first time every
 * endpoint of an "all" route and the first of a "failover" route; later the next endpoint
 * of each failover route whose current one failed for now. An endpoint wanted by several
 * groups gets one request with all their recipients. */
static void delivery_round(struct delivery *d, bool first)
{
    const struct config *cfg = d->ctx->cfg;
    size_t started_from = d->n_jobs;
    for (size_t e = 0; e < cfg->n_endpoints; e++) {
        size_t n = 0;
        bool wanted = false;
        size_t *rcpts = delivery_share(d, e, first, &n, &wanted);
        if (!wanted)
            continue;
        long k = rcpts == NULL ? -1 : delivery_new_job(d, e, rcpts, n);
        /* Tell each group which delivery serves it (-1: none could be made). */
        for (size_t g = 0; g < d->n_groups; g++) {
            struct delivery_group *grp = &d->groups[g];
            for (size_t pos = 0; pos < grp->n_endpoints; pos++) {
                if (grp->endpoints[pos] != e || !group_wants(grp, pos, first))
                    continue;
                if (grp->policy == CONFIG_ROUTE_ALL) {
                    grp->dels[pos] = k;
                } else {
                    grp->current = k;
                    grp->settled = k < 0;
                }
            }
        }
    }
    for (size_t i = started_from; i < d->n_jobs && !d->finished; i++) {
        if (!d->streaming || cfg->endpoints[d->t->deliveries[d->jobs[i]->index].endpoint].stream)
            delivery_attempt(d->jobs[i]);
    }
}

/* delivery_progress - after jobs ended: each failover route whose endpoint failed for now
 * moves on to its next one at once, while time remains (another route's slower endpoint
 * does not hold it up); a route whose answer is final settles. New deliveries that end at
 * once (breakers open) lead straight to the next endpoint. When nothing is active and no
 * route wants another try, the delivery is over. */
static void delivery_progress(struct delivery *d)
{
    if (d->streaming)
        return; /* the message is not complete: nothing moves on before the commit */
    while (!d->finished) {
        bool time_left = delivery_now(d) < d->deadline;
        for (size_t g = 0; g < d->n_groups; g++) {
            struct delivery_group *grp = &d->groups[g];
            if (grp->policy != CONFIG_ROUTE_FAILOVER || grp->settled || grp->current < 0 ||
                d->jobs[grp->current]->state != JOB_DONE)
                continue;
            const struct txn_delivery *cur = &d->t->deliveries[grp->current];
            if (cur->reply.code / 100 == 4 && grp->next + 1 < grp->n_endpoints && time_left) {
                grp->next++;
                grp->current = -1;
            } else {
                grp->settled = true;
            }
        }
        size_t before = d->n_jobs;
        delivery_round(d, false);
        if (d->n_jobs == before)
            break;
    }
    if (!d->finished && d->active == 0)
        delivery_finish(d);
}

/* job_done - a job finished: routes may move on, or the delivery be over. */
static void job_done(struct delivery *d)
{
    delivery_progress(d);
}

/* delivery_breaker_log - a breaker changed state: say so once. */
static void delivery_breaker_log(const struct delivery *d, size_t ep, enum breaker_change ch)
{
    const struct config_endpoint *e = &d->ctx->cfg->endpoints[ep];
    if (ch == BREAKER_OPENED)
        log_warn("endpoint %s: circuit breaker open after %u temporary failures in a row; new "
                 "messages get 451 at once for %" PRIu64 " ms",
                 e->name, d->ctx->breakers[ep].failures, e->breaker.cooldown_ms);
    else if (ch == BREAKER_PROBING)
        log_info("endpoint %s: circuit breaker half-open, one probe request", e->name);
    else if (ch == BREAKER_RECLOSED)
        log_info("endpoint %s: circuit breaker closed, endpoint answers again", e->name);
}

/* delivery_on_response - one attempt finished: its reply; then retry later, or done. */
static void delivery_on_response(void *arg, const struct http_response *resp)
{
    struct delivery_job *job = arg;
    struct delivery *d = job->d;
    struct txn *t = d->t;
    struct txn_delivery *td = &t->deliveries[job->index];
    const struct config_endpoint *ep = &d->ctx->cfg->endpoints[td->endpoint];
    job->req = NULL;
    stats_webhook(d->ctx->stats, td->name,
                  resp->failure == HTTP_FAILURE_NONE && resp->headers_complete ? resp->status : 0,
                  (double)resp->elapsed_ms / 1000.0);
    uint64_t body_size = job->fr.body.size; /* the request's, not the message's */
    if (job->streamed) /* a streamed body is sent whole only if it was read to its end */
        body_size = job->stream_eof && !resp->answered_mid_body ? 0 : UINT64_MAX;
    job->streamed = false;
    format_request_free(&job->fr); /* curl has read it for the last time */

    bool retry = false, app = false;
    const char *why = NULL;
    struct delivery_reply def =
        delivery_choose(ep, resp, body_size, &td->reply, &retry, &app, &why);
    job->app_reply = app;
    td->status = resp->status;
    td->has_retry_after =
        resp->retry_after != NULL && retry_after_parse(resp->retry_after, strlen(resp->retry_after),
                                                       log_unix_ms(), &td->retry_after_ms);
    td->failure = resp->failure != HTTP_FAILURE_NONE || !resp->headers_complete ? def.text : NULL;
    if (why != NULL) {
        char value[APP_REPLY_TEXT_MAX + 32];
        log_warn("endpoint %s for id=%s: Smtphook-Reply \"%s\" ignored: %s", ep->name, t->env.id,
                 log_sanitize(value, sizeof(value), resp->smtp_reply, strlen(resp->smtp_reply)),
                 why);
    } else if (resp->smtp_reply_dropped && delivery_answered(resp)) {
        /* The client kept no value to judge, but the app did send one: say so, or an
         * over-long reply would vanish without a trace. */
        log_warn("endpoint %s for id=%s: Smtphook-Reply ignored: the value is longer than %u "
                 "bytes or holds a NUL",
                 ep->name, t->env.id, HTTP_SMTP_REPLY_MAX);
    }
    if (resp->failure != HTTP_FAILURE_NONE && resp->error != NULL) {
        /* The reply says what kind of failure; curl's reason says what to fix (which
         * certificate check failed, which file could not be read). */
        char reason[DELIVERY_REASON_MAX];
        log_warn("endpoint %s failed for id=%s: %s (attempt %u)", ep->name, t->env.id,
                 log_sanitize(reason, sizeof(reason), resp->error, strlen(resp->error)),
                 td->attempts);
    }
    uint64_t now = delivery_now(d);
    /* The breaker counts the endpoint's own failures: no answer at all (TLS included), or
     * an answer that says "later" (5xx, 408, 429); any other answer shows a live app. A
     * success that only ends a run of failures too short to open it changes no state worth
     * a log line. */
    bool down = !delivery_answered(resp) || def.retry;
    struct breaker *br = &d->ctx->breakers[td->endpoint];
    bool was_closed = br->state == BREAKER_CLOSED;
    enum breaker_change ch = breaker_record(br, down, now);
    if (!(ch == BREAKER_RECLOSED && was_closed))
        delivery_breaker_log(d, td->endpoint, ch);

    uint64_t delay = 0;
    if (d->streaming) { /* before the body ended: a retry waits for it, from the spool */
        if (retry && td->attempts < ep->retry.max_attempts) {
            job->state = JOB_WAITING;
            job->retry_at = now;
        } else {
            job_finish(job);
        }
        return;
    }
    if (retry && !d->finished) {
        struct retry_state st;
        memset(&st, 0, sizeof(st));
        st.attempts = td->attempts;
        st.now_ms = now;
        st.deadline_ms = d->deadline;
        st.last_took_ms = now - job->attempt_ms;
        st.random = 0;
        uv_random(NULL, NULL, &st.random, sizeof(st.random), 0, NULL);
        st.has_retry_after = td->has_retry_after;
        st.retry_after_ms = td->retry_after_ms;
        if (!d->once && retry_next(&ep->retry, &st, &delay)) {
            log_info("txn id=%s endpoint %s attempt %u: %u %s; next attempt in %" PRIu64 " ms",
                     t->env.id, ep->name, td->attempts, td->reply.code, td->reply.esc, delay);
            job->state = JOB_WAITING;
            job->retry_at = now + delay;
            if (!d->streaming) /* while streaming the timer is armed at the commit */
                delivery_arm(d);
            return;
        }
        if (!d->once) {
            /* Say why this failure is the last word, or a skipped retry leaves no trace. */
            char because[64];
            if (td->attempts >= ep->retry.max_attempts)
                snprintf(because, sizeof(because), "max_attempts (%u) used up",
                         ep->retry.max_attempts);
            else if (td->has_retry_after)
                snprintf(because, sizeof(because),
                         "Retry-After %" PRIu64 " ms would pass the deadline", td->retry_after_ms);
            else
                snprintf(because, sizeof(because), "the backoff would pass the deadline");
            log_info("txn id=%s endpoint %s attempt %u: %u %s; no retry: %s", t->env.id, ep->name,
                     td->attempts, td->reply.code, td->reply.esc, because);
        }
    }
    job_finish(job);
    job_done(d);
}

/* delivery_header_line - see delivery.h. */
char *delivery_header_line(const struct config_header *h)
{
    size_t n = strlen(h->name) + strlen(h->value) + sizeof(": ");
    char *line = malloc(n);
    if (line != NULL)
        snprintf(line, n, "%s: %s", h->name, h->value);
    return line;
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

/* delivery_fields - the message's From, To and Subject, read from the spool once. A message
 * whose start cannot be read gets none (the fields are then sent empty). */
static const struct mail_header_fields *delivery_fields(struct delivery *d)
{
    if (d->fields_read)
        return &d->fields;
    d->fields_read = true;
    const struct spool *sp = d->t->spool;
    size_t n = d->body_size < MAIL_HEADER_READ_MAX ? (size_t)d->body_size : MAIL_HEADER_READ_MAX;
    if (sp == NULL || n == 0)
        return &d->fields;
    const char *mem = spool_memory(sp);
    if (mem != NULL) { /* the spool's memory is the message: read it where it is */
        mail_header_parse(mem, n, &d->fields);
        return &d->fields;
    }
    char *head = malloc(n);
    size_t got = 0, k = 0;
    while (head != NULL && got < n && spool_read(sp, got, head + got, n - got, &k) == 0 && k > 0)
        got += k;
    if (head != NULL)
        mail_header_parse(head, got, &d->fields);
    free(head);
    return &d->fields;
}

/* delivery_build - the job's request for this attempt, in its endpoint's format. */
static int delivery_build(struct delivery_job *job, int64_t unix_s)
{
    struct delivery *d = job->d;
    struct txn *t = d->t;
    struct txn_delivery *td = &t->deliveries[job->index];
    const struct config_endpoint *ep = &d->ctx->cfg->endpoints[td->endpoint];
    struct envelope view = t->env;
    view.rcpt_to = job->rcpt_view;
    view.n_rcpt = job->n_rcpt_view;
    view.key = job->streamed ? NULL : td->key; /* streamed: in the trailers */
    if (job->streamed)
        view.size = PAYLOAD_SIZE_UNKNOWN;
    char token[FORMAT_TOKEN_LEN + 1] = "";
    if (ep->preset == CONFIG_PRESET_MAILGUN && digest_random_hex(token, FORMAT_TOKEN_LEN) != 0)
        return SH_EIO; /* only Mailgun's form has a token */
    struct format_attempt at = {unix_s, NULL, token};
    uint64_t size = job->streamed ? spool_size(t->spool) : d->body_size;
    struct format_message msg = {t->spool, size, txn_body_utf8(t), job->streamed,
                                 format_needs_fields(ep) ? delivery_fields(d) : NULL};
    bool multipart = ep->format == CONFIG_FORMAT_MULTIPART;
    for (int i = 0; i < DELIVERY_BUILD_MAX; i++) {
        if (multipart && (at.boundary = txn_boundary(t)) == NULL)
            return SH_EIO;
        int rc = format_build(ep, &view, &msg, &at, &job->fr);
        if (rc != 0 || !job->fr.boundary_clash)
            return rc;
        format_request_free(&job->fr);
        t->boundary.seen = true; /* draw another */
    }
    return SH_EIO;
}

/* delivery_stream_read - http_body_read_fn of a streamed request: the live body, and
 * whether it was read to its very end (only then may an answer be a delivery). */
static int delivery_stream_read(void *arg, uint64_t offset, char *dst, size_t len, size_t *got)
{
    struct delivery_job *job = arg;
    int rc = request_body_read(&job->fr.body, offset, dst, len, got);
    if (rc == 0 && *got == 0 && !job->fr.body.live)
        job->stream_eof = true;
    return rc;
}

/* delivery_trailers - http_trailers_fn of a streamed request: what depends on the whole
 * body, known now that it ended (delivery_stream_more made the keys again). */
static const char *const *delivery_trailers(void *arg, size_t *n)
{
    struct delivery_job *job = arg;
    const struct txn *t = job->d->t;
    snprintf(job->trailer[0], sizeof(job->trailer[0]), "%s: %s", PAYLOAD_HEADER_KEY,
             t->deliveries[job->index].key);
    snprintf(job->trailer[1], sizeof(job->trailer[1]), "%s: %" PRIu64, FORMAT_TRAILER_SIZE,
             spool_size(t->spool));
    job->trailer_lines[0] = job->trailer[0];
    job->trailer_lines[1] = job->trailer[1];
    *n = 2;
    return job->trailer_lines;
}

/* delivery_send - start the job's built (and signed) request, with a timeout that ends by
 * the deadline. */
static int delivery_send(struct delivery_job *job)
{
    struct delivery *d = job->d;
    struct txn_delivery *td = &d->t->deliveries[job->index];
    const struct config_endpoint *ep = &d->ctx->cfg->endpoints[td->endpoint];
    uint64_t now = delivery_now(d);
    struct http_request_opts opts;
    memset(&opts, 0, sizeof(opts));
    opts.url = ep->url;
    opts.headers = (const char *const *)job->fr.headers;
    opts.n_headers = job->fr.n_headers;
    opts.body_size = job->fr.body.size;
    opts.body = request_body_memory(&job->fr.body); /* NULL: read in pieces */
    opts.body_read = request_body_read;
    opts.body_arg = &job->fr.body;
    if (job->streamed) {
        opts.stream = true;
        opts.body_read = delivery_stream_read;
        opts.body_arg = job;
        opts.trailers = delivery_trailers;
    }
    /* Bound by the deadline, curl's own timeout comes a little after it: the deadline's
     * timer ends the request, so that it is reported as the deadline it is. */
    uint64_t left = d->deadline > now ? d->deadline - now : 0;
    opts.timeout_ms = delivery_min(ep->timeout_ms, left + DELIVERY_DEADLINE_GRACE_MS);
    if (job->streamed) /* it lasts as long as the client sends: the deadline ends it */
        opts.timeout_ms = 0;
    opts.connect_timeout_ms = delivery_min(ep->connect_timeout_ms, opts.timeout_ms);
    opts.ca_file = ep->ca_file;
    opts.client_cert = ep->client_cert;
    opts.client_key = ep->client_key;
    int rc = http_request_start(d->ctx->http, &opts, delivery_on_response, job, &job->req);
    if (rc == 0)
        job->state = JOB_RUNNING;
    return rc;
}

/* delivery_signed - the pass is complete: the signature header, then the request. */
static int delivery_signed(struct delivery_job *job)
{
    char *sig = NULL;
    int rc = sign_value(&job->sign, &sig);
    sign_end(&job->sign);
    if (rc == 0)
        rc = format_add_header(&job->fr, SIGN_HEADER_SIG, sig);
    free(sig);
    return rc != 0 ? rc : delivery_send(job);
}

/* delivery_not_started - the attempt could not start: it ends the job. */
static void delivery_not_started(struct delivery_job *job)
{
    struct delivery *d = job->d;
    struct txn_delivery *td = &d->t->deliveries[job->index];
    log_error("txn id=%s endpoint %s: cannot start the request", d->t->env.id, td->name);
    /* A probe let through must not leave the breaker waiting for its answer. */
    breaker_record(&d->ctx->breakers[td->endpoint], true, delivery_now(d));
    job_give_up(job, &delivery_local);
}

/* delivery_on_sign_idle - one signing step for the body at the head of the queue, which
 * then goes to the back, or starts its request once signed. */
static void delivery_on_sign_idle(uv_idle_t *idle)
{
    struct delivery_context *ctx = idle->data;
    struct delivery_job *job = ctx->sign_head;
    if (job == NULL) {
        uv_idle_stop(idle);
        return;
    }
    ctx->sign_head = job->sign_next;
    if (ctx->sign_head == NULL)
        ctx->sign_tail = NULL;
    job->sign_next = NULL;
    bool done = false;
    if (sign_step(&job->sign, &done) == 0 && !done) {
        if (ctx->sign_tail != NULL)
            ctx->sign_tail->sign_next = job;
        else
            ctx->sign_head = job;
        ctx->sign_tail = job;
        return;
    }
    if (!done || delivery_signed(job) != 0) {
        sign_end(&job->sign);
        delivery_not_started(job);
        job_done(job->d); /* may free the delivery, the connection, the context */
    }
}

/* delivery_sign - Standard Webhooks headers for the built request: id and timestamp now, the
 * signature once the body is through the passes (two with a v1a key): at once when they
 * read at most a step, else in steps (the job waits in SIGNING). */
static int delivery_sign(struct delivery_job *job, int64_t unix_s)
{
    struct delivery *d = job->d;
    struct delivery_context *ctx = d->ctx;
    struct txn_delivery *td = &d->t->deliveries[job->index];
    const struct config_endpoint *ep = &ctx->cfg->endpoints[td->endpoint];
    char ts[32];
    snprintf(ts, sizeof(ts), "%" PRId64, unix_s);
    int rc = format_add_header(&job->fr, SIGN_HEADER_ID, td->key);
    if (rc == 0)
        rc = format_add_header(&job->fr, SIGN_HEADER_TS, ts);
    if (rc == 0)
        rc = sign_begin(&job->sign, &ep->signing, td->key, unix_s, &job->fr.body);
    if (rc != 0)
        return rc;
    if (sign_bytes(&job->sign) <= SIGN_STEP_BYTES) {
        bool done = false;
        rc = sign_step(&job->sign, &done);
        if (rc != 0 || !done) {
            sign_end(&job->sign);
            return rc != 0 ? rc : SH_EIO;
        }
        return delivery_signed(job);
    }
    if (!ctx->sign_idle_init) {
        uv_idle_init(ctx->loop, &ctx->sign_idle);
        ctx->sign_idle.data = ctx;
        ctx->sign_idle_init = true;
    }
    if (ctx->sign_tail != NULL)
        ctx->sign_tail->sign_next = job;
    else
        ctx->sign_head = job;
    ctx->sign_tail = job;
    job->state = JOB_SIGNING;
    uv_idle_start(&ctx->sign_idle, delivery_on_sign_idle);
    return 0;
}

/* delivery_request - one attempt's request for the job: built for the endpoint's share (its
 * recipients and key) and format, signed when the endpoint signs, then started. On success
 * the job is RUNNING, or SIGNING until its request starts. */
static int delivery_request(struct delivery_job *job)
{
    struct delivery *d = job->d;
    const struct config_endpoint *ep =
        &d->ctx->cfg->endpoints[d->t->deliveries[job->index].endpoint];
    format_request_free(&job->fr);
    int64_t unix_s = log_unix_ms() / 1000;
    int rc = delivery_build(job, unix_s);
    if (rc != 0)
        return rc;
    if (ep->signing.scheme == CONFIG_SIGNING_STANDARD_WEBHOOKS)
        return delivery_sign(job, unix_s);
    return delivery_send(job);
}

/* delivery_attempt - the job's next attempt: refused at once while its endpoint's breaker
 * is open, else a request. A failure to even start ends the job. */
static void delivery_attempt(struct delivery_job *job)
{
    struct delivery *d = job->d;
    struct txn_delivery *td = &d->t->deliveries[job->index];
    uint64_t now = delivery_now(d);
    if (td->attempts == 0)
        job->first_ms = now;
    if (now >= d->deadline) {
        job_fail_local(job, &delivery_deadline);
        return;
    }
    enum breaker_change ch = BREAKER_UNCHANGED;
    if (!breaker_allow(&d->ctx->breakers[td->endpoint], now, &ch)) {
        job_give_up(job, &delivery_circuit_open);
        return;
    }
    delivery_breaker_log(d, td->endpoint, ch);
    job->attempt_ms = now;
    job->streamed = d->streaming && d->ctx->cfg->endpoints[td->endpoint].stream;
    job->stream_eof = false;
    if (delivery_request(job) != 0) {
        delivery_not_started(job);
        return;
    }
    td->attempts++;
}

/* delivery_on_timer - the deadline, or a retry is due. At the deadline whatever still runs
 * ends with its own reply: timed out for a request under way, the last answer for one
 * waiting to retry. */
static void delivery_on_timer(uv_timer_t *timer)
{
    struct delivery *d = timer->data;
    if (d->finished)
        return;
    uint64_t now = delivery_now(d);
    if (!d->started) { /* the first round, from the loop */
        d->started = true;
        if (d->committed)
            delivery_commit_round(d);
        else
            delivery_round(d, true);
        job_done(d);
        if (!d->finished)
            delivery_arm(d);
        return;
    }
    if (now >= d->deadline) {
        for (size_t i = 0; i < d->n_jobs; i++) {
            struct delivery_job *job = d->jobs[i];
            struct txn_delivery *td = &d->t->deliveries[job->index];
            if (job->state == JOB_RUNNING || job->state == JOB_SIGNING) {
                job_stop(job);
                job->app_reply = false;
                job_fail_local(job, &delivery_timed_out);
            } else if (job->state != JOB_DONE) {
                /* waiting for a retry: its last answer stands; never tried: the deadline */
                if (td->reply.code == 0)
                    job_fail_local(job, &delivery_deadline);
                else
                    job_finish(job);
            }
        }
        for (size_t g = 0; g < d->n_groups; g++)
            d->groups[g].settled = true;
        log_info("txn id=%s: transaction deadline of %" PRIu64 " ms reached", d->t->env.id,
                 d->ctx->cfg->limits.transaction_timeout_ms);
        delivery_finish(d);
        return;
    }
    for (size_t i = 0; i < d->n_jobs && !d->finished; i++) {
        struct delivery_job *job = d->jobs[i];
        if (job->state == JOB_WAITING && job->retry_at <= now &&
            d->t->deliveries[job->index].attempts > 0)
            delivery_attempt(job);
    }
    if (!d->finished) {
        job_done(d);
        if (!d->finished)
            delivery_arm(d);
    }
}

/* delivery_next_route - the first route after prev (config order) that a recipient of t is
 * on, or -1. */
static long delivery_next_route(const struct txn *t, long prev)
{
    long next = -1;
    for (size_t i = 0; i < t->env.n_rcpt; i++) {
        long r = t->rcpt_route[i];
        if (r > prev && (next < 0 || r < next))
            next = r;
    }
    return next;
}

/* delivery_group_fill - the next group: these endpoints, policy and mode, and the
 * recipients of route r in RCPT order (r -1: every recipient). 0 or SH_ENOMEM. */
static int delivery_group_fill(struct delivery *d, const size_t *endpoints, size_t n_endpoints,
                               enum config_route_policy policy, enum config_delivery mode, long r)
{
    const struct txn *t = d->t;
    struct delivery_group *g = &d->groups[d->n_groups++];
    g->current = -1;
    g->mode = mode;
    g->endpoints = endpoints;
    g->n_endpoints = n_endpoints;
    g->policy = policy;
    size_t n = 0;
    for (size_t i = 0; i < t->env.n_rcpt; i++)
        n += r < 0 || t->rcpt_route[i] == r;
    g->rcpts = calloc(n > 0 ? n : 1, sizeof(*g->rcpts));
    g->dels = calloc(g->n_endpoints > 0 ? g->n_endpoints : 1, sizeof(*g->dels));
    if (g->rcpts == NULL || g->dels == NULL)
        return SH_ENOMEM;
    for (size_t i = 0; i < t->env.n_rcpt; i++) {
        if (r < 0 || t->rcpt_route[i] == r)
            g->rcpts[g->n_rcpts++] = i;
    }
    for (size_t i = 0; i < g->n_endpoints; i++)
        g->dels[i] = -1;
    return 0;
}

/* delivery_group_add - the group of route r (-1 without routes: every endpoint, every
 * recipient, all at once) with its recipients in RCPT order. 0 or SH_ENOMEM. */
static int delivery_group_add(struct delivery *d, long r)
{
    const struct config *cfg = d->ctx->cfg;
    if (r < 0)
        return delivery_group_fill(d, d->ctx->all_endpoints, cfg->n_endpoints, CONFIG_ROUTE_ALL,
                                   config_route_delivery(cfg, r), r);
    const struct config_route *route = &cfg->routes[r];
    return delivery_group_fill(d, route->endpoints, route->n_endpoints, route->policy,
                               route->delivery, r);
}

/* delivery_groups - the recipients by route, in the order routes are listed (only the
 * routes the recipients are on: a config may have many); without routes one group. */
static int delivery_groups(struct delivery *d)
{
    const struct config *cfg = d->ctx->cfg;
    const struct txn *t = d->t;
    size_t n_max = 1; /* groups at most: one per route a recipient is on */
    if (cfg->n_routes > 0 && t->env.n_rcpt > 0)
        n_max = t->env.n_rcpt < cfg->n_routes ? t->env.n_rcpt : cfg->n_routes;
    d->groups = calloc(n_max, sizeof(*d->groups));
    d->mark = calloc(t->env.n_rcpt > 0 ? t->env.n_rcpt : 1, sizeof(*d->mark));
    if (d->groups == NULL || d->mark == NULL)
        return SH_ENOMEM;
    if (cfg->n_routes == 0)
        return delivery_group_add(d, -1);
    for (long r = delivery_next_route(t, -1); r >= 0; r = delivery_next_route(t, r)) {
        if (delivery_group_add(d, r) != 0)
            return SH_ENOMEM;
    }
    return 0;
}

/* delivery_share_group - the one group of a queued share: its endpoints and policy, every
 * recipient of t (which holds the share's only), sent now. 0 or SH_ENOMEM. */
static int delivery_share_group(struct delivery *d, const struct txn_share *share)
{
    size_t n_rcpt = d->t->env.n_rcpt;
    d->groups = calloc(1, sizeof(*d->groups));
    d->mark = calloc(n_rcpt > 0 ? n_rcpt : 1, sizeof(*d->mark));
    if (d->groups == NULL || d->mark == NULL)
        return SH_ENOMEM;
    return delivery_group_fill(d, share->endpoints, share->n_endpoints,
                               share->failover ? CONFIG_ROUTE_FAILOVER : CONFIG_ROUTE_ALL,
                               CONFIG_DELIVERY_SYNC, -1);
}

/* delivery_begin - the delivery d starts: its deadline, then the first attempts from the
 * loop (a zero timer), so done can never run inside the caller. */
static void delivery_begin(struct delivery *d, delivery_done_fn done, void *arg)
{
    struct delivery_context *ctx = d->ctx;
    d->done = done;
    d->arg = arg;
    d->deadline = uv_now(ctx->loop) + ctx->cfg->limits.transaction_timeout_ms;
    if (ctx->stop_at != 0 && ctx->stop_at < d->deadline)
        d->deadline = ctx->stop_at;
    uv_timer_start(&d->timer, delivery_on_timer, 0, 0);
}

/* delivery_start_share - see delivery.h. */
int delivery_start_share(struct delivery_context *ctx, struct txn *t, const struct txn_share *share,
                         delivery_done_fn done, void *arg, struct delivery **out)
{
    *out = NULL;
    if (done == NULL || share->n_endpoints == 0)
        return SH_EINVAL;
    for (size_t i = 0; i < share->n_endpoints; i++) {
        if (share->endpoints[i] >= ctx->cfg->n_endpoints)
            return SH_EINVAL;
    }
    struct delivery *d = delivery_new(ctx, t, share);
    if (d == NULL)
        return SH_ENOMEM;
    d->once = true;
    delivery_begin(d, done, arg);
    *out = d;
    return 0;
}

/* delivery_start - see delivery.h. The first attempts start from the loop (a zero timer),
 * so done can never run inside this call. */
int delivery_start(struct delivery_context *ctx, struct txn *t, delivery_done_fn done, void *arg,
                   struct delivery **out)
{
    if (out != NULL)
        *out = NULL;
    if (done == NULL || ctx->cfg->n_endpoints == 0)
        return SH_EINVAL;
    struct delivery *d = delivery_new(ctx, t, NULL);
    if (d == NULL)
        return SH_ENOMEM;
    delivery_begin(d, done, arg);
    if (out != NULL)
        *out = d;
    return 0;
}

/* delivery_commit_round - a streamed delivery's message is complete: every delivery of the
 * first round not tried yet (the endpoints that do not stream, and streams stopped because
 * the message could not be carried on) starts; the streams still running go on. */
static void delivery_commit_round(struct delivery *d)
{
    for (size_t i = 0; i < d->n_jobs && !d->finished; i++) {
        struct delivery_job *job = d->jobs[i];
        if (job->state == JOB_WAITING && d->t->deliveries[job->index].attempts == 0)
            delivery_attempt(job);
    }
}

/* delivery_new - a delivery of t with its groups, its timer not started. NULL without
 * memory. */
static struct delivery *delivery_new(struct delivery_context *ctx, struct txn *t,
                                     const struct txn_share *share)
{
    struct delivery *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return NULL;
    d->ctx = ctx;
    d->t = t;
    d->body_size = t->spool != NULL ? spool_size(t->spool) : 0;
    free(t->deliveries);
    t->deliveries = NULL;
    t->n_deliveries = 0;
    if ((share != NULL ? delivery_share_group(d, share) : delivery_groups(d)) != 0) {
        delivery_free(d);
        return NULL;
    }
    uv_timer_init(ctx->loop, &d->timer);
    d->timer.data = d;
    d->next = ctx->active;
    if (ctx->active != NULL)
        ctx->active->prev = d;
    ctx->active = d;
    return d;
}

/* delivery_stream_open - see delivery.h. The first round is planned at once, but only the
 * endpoints that stream start; there is no deadline until the commit. */
int delivery_stream_open(struct delivery_context *ctx, struct txn *t, struct delivery **out)
{
    *out = NULL;
    if (ctx->cfg->n_endpoints == 0 || t->spool == NULL)
        return 0;
    struct delivery *d = delivery_new(ctx, t, NULL);
    if (d == NULL)
        return SH_ENOMEM;
    d->streaming = true;
    d->deadline = UINT64_MAX;
    delivery_round(d, true);
    size_t streams = 0;
    for (size_t i = 0; i < d->n_jobs; i++)
        streams += d->jobs[i]->streamed && d->jobs[i]->state != JOB_DONE;
    if (streams == 0) { /* none of its endpoints streams (or could start) */
        delivery_cancel(d);
        return 0;
    }
    *out = d;
    return 0;
}

/* delivery_stream_stop - a stream cannot carry the message on: its request is cut off
 * mid-body, and it waits as never tried for an ordinary attempt after the commit (the
 * breaker hears nothing of it: the endpoint did not fail). */
static void delivery_stream_stop(struct delivery_job *job, const char *why)
{
    struct delivery *d = job->d;
    struct txn_delivery *td = &d->t->deliveries[job->index];
    log_info("txn id=%s endpoint %s: streamed request stopped: %s", d->t->env.id, td->name, why);
    job_stop(job);
    format_request_free(&job->fr);
    job->streamed = false;
    job->state = JOB_WAITING;
    job->retry_at = 0;
    td->attempts--;
}

/* delivery_stream_more - see delivery.h. The keys are made again from the whole body before
 * the last bytes are released, so that the trailers carry them. */
void delivery_stream_more(struct delivery *d)
{
    if (d == NULL || !d->streaming)
        return;
    struct txn *t = d->t;
    if (t->body_ended && !d->keys_final) {
        for (size_t i = 0; i < d->n_jobs; i++)
            txn_key(t, d->jobs[i]->rcpts, d->jobs[i]->n_rcpt_view,
                    t->deliveries[d->jobs[i]->index].key);
        d->keys_final = true;
    }
    const char *unfit = t->too_big            ? "the message is too big"
                        : t->spool_error != 0 ? "the message could not be stored"
                                              : NULL;
    uint64_t size = t->spool != NULL ? spool_size(t->spool) : 0;
    for (size_t i = 0; i < d->n_jobs; i++) {
        struct delivery_job *job = d->jobs[i];
        if (!job->streamed || job->state != JOB_RUNNING)
            continue;
        const struct config_endpoint *ep =
            &d->ctx->cfg->endpoints[t->deliveries[job->index].endpoint];
        if (unfit != NULL || (ep->format == CONFIG_FORMAT_MULTIPART && t->boundary.seen)) {
            delivery_stream_stop(job, unfit != NULL ? unfit : "the message holds the boundary");
            continue;
        }
        request_body_grow(&job->fr.body, size, t->body_ended);
        http_request_resume(job->req);
    }
}

/* delivery_stream_commit - see delivery.h. */
void delivery_stream_commit(struct delivery *d, delivery_done_fn done, void *arg)
{
    delivery_stream_more(d);
    d->streaming = false;
    d->committed = true;
    d->done = done;
    d->arg = arg;
    d->body_size = d->t->spool != NULL ? spool_size(d->t->spool) : 0;
    struct delivery_context *ctx = d->ctx;
    d->deadline = uv_now(ctx->loop) + ctx->cfg->limits.transaction_timeout_ms;
    if (ctx->stop_at != 0 && ctx->stop_at < d->deadline)
        d->deadline = ctx->stop_at;
    uv_timer_start(&d->timer, delivery_on_timer, 0, 0);
}

/* delivery_cancel - cancel what is running; done is never called afterwards. Must not be
 * called after done (the delivery is gone then). NULL is ignored. */
void delivery_cancel(struct delivery *d)
{
    if (d == NULL)
        return;
    d->finished = true;
    delivery_cancel_requests(d);
    delivery_unlink(d);
    delivery_release(d);
}
