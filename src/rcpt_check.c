/* rcpt_check.c - the recipient check at RCPT time (see rcpt_check.h): one POST per RCPT
 * through http_client, its answer mapped to a reply by rcpt_check_decide, and a bounded
 * cache of answers per (sender domain, recipient).
 *
 * Uses http_client for the requests, payload for the body, delivery.h's shared rules for
 * what counts as an answer and when a Smtphook-Reply stands, and siphash for the cache. It
 * must not include curl or jansson, and it never writes to the SMTP connection.
 *
 * The cache is a chained hash table of RCPT_CHECK_BUCKETS heads and a doubly-linked list of
 * its entries in insertion order. Keys are hashed with SipHash-1-3 under a random key of the
 * checker's own, since both the sender and the recipient are the SMTP client's choice. Every
 * entry lives cache_ms from its insertion on the loop's clock, so insertion order is expiry
 * order too: an insertion first drops the expired entries at the old end, a lookup drops an
 * expired entry it meets, and a full cache loses its oldest entry. An entry is one
 * allocation (itself, its key and its reply text: under 1.5 KiB, about 150 bytes for a
 * usual address and a default reply); a lookup allocates nothing. So the cache holds
 * 128 KiB of chain heads and at most RCPT_CHECK_CACHE_MAX entries. */
#include "smtphook/rcpt_check.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtphook/delivery.h"
#include "smtphook/error.h"
#include "smtphook/log.h"
#include "smtphook/payload.h"
#include "smtphook/siphash.h"

#define RCPT_CHECK_BUCKETS      16384u /* hash chains; a power of two above the entry bound */
#define RCPT_CHECK_KEY_MAX      1024u  /* longest cache key; a longer query is not cached */
#define RCPT_CHECK_LOG_MAX      320u   /* bytes of a recipient kept for the log */
#define RCPT_CHECK_REASON_MAX   256u   /* bytes of curl's reason kept for the log */
#define RCPT_CHECK_CONTENT_TYPE "Content-Type: application/json"

_Static_assert((RCPT_CHECK_BUCKETS & (RCPT_CHECK_BUCKETS - 1)) == 0, "buckets: a power of two");
_Static_assert(RCPT_CHECK_BUCKETS >= RCPT_CHECK_CACHE_MAX, "chains stay short when full");

/* A reply of the check's own (RFC 5321 §4.2, RFC 3463 §3.2 for the X.1.5 and X.1.1). */
struct rcpt_check_reply {
    unsigned code;    /* reply code */
    const char *esc;  /* enhanced status code */
    const char *text; /* text */
};

static const struct rcpt_check_reply rcpt_check_accepted = {250, "2.1.5", "Ok"};
static const struct rcpt_check_reply rcpt_check_unknown = {
    550, "5.1.1", "Error: recipient address rejected: user unknown"};
static const struct rcpt_check_reply rcpt_check_failed = {
    451, "4.3.0", "Error: recipient check failed, try again later"};

/* Why a check gave no answer: name, and the reason the log shows (rcpt_check_result.why). */
#define RCPT_CHECK_FAILURE_MAP(X)                                                                  \
    X(TIMEOUT, "timeout")                                                                          \
    X(CONNECT, "connection failed")                                                                \
    X(DNS, "name did not resolve")                                                                 \
    X(TLS, "TLS failed")                                                                           \
    X(SEND, "request not sent")                                                                    \
    X(OTHER, "request failed")                                                                     \
    X(CUT_OFF, "response cut off")                                                                 \
    X(INTERIM, "1xx as the final status")                                                          \
    X(REDIRECT, "redirect (not followed)")                                                         \
    X(CLIENT_ERROR, "4xx other than 404 and 410")                                                  \
    X(SERVER_ERROR, "5xx")                                                                         \
    X(UNKNOWN_STATUS, "status outside 100..599")

enum rcpt_check_failure {
#define RCPT_CHECK_FAILURE_ENUM(name, text) RCPT_CHECK_FAILURE_##name,
    RCPT_CHECK_FAILURE_MAP(RCPT_CHECK_FAILURE_ENUM)
#undef RCPT_CHECK_FAILURE_ENUM
        RCPT_CHECK_FAILURE_COUNT
};

/* Each reason twice: as a deferral, and as an acceptance because on_failure says so. */
static const struct {
    const char *deferred; /* on_failure "defer": 451 */
    const char *accepted; /* on_failure "accept": 250 */
} rcpt_check_failures[RCPT_CHECK_FAILURE_COUNT] = {
#define RCPT_CHECK_FAILURE_ROW(name, text)                                                         \
    [RCPT_CHECK_FAILURE_##name] = {text, text "; accepted: on_failure is accept"},
    RCPT_CHECK_FAILURE_MAP(RCPT_CHECK_FAILURE_ROW)
#undef RCPT_CHECK_FAILURE_ROW
};

/* One cached answer. */
struct rcpt_check_entry {
    struct rcpt_check_entry *chain;  /* next in its bucket */
    struct rcpt_check_entry *older;  /* insertion order: the one before, NULL for the oldest */
    struct rcpt_check_entry *newer;  /* insertion order: the one after, NULL for the newest */
    uint64_t hash;                   /* SipHash of the key */
    uint64_t expires_ms;             /* loop time it stops counting */
    const char *why;                 /* the verdict's reason (static) */
    bool accept;                     /* the verdict */
    unsigned code;                   /* its reply */
    char esc[APP_REPLY_ESC_MAX + 1]; /* its enhanced code */
    size_t key_len;                  /* bytes of key at data */
    size_t text_len;                 /* bytes of the reply text after the key */
    char data[];                     /* key, then the text and its NUL */
};

struct rcpt_check_request {
    struct rcpt_check *rc;             /* owner */
    struct http_request *http;         /* the POST, NULL once it ended */
    rcpt_check_done_fn done;           /* the caller's callback */
    void *arg;                         /* passed to done */
    char *body;                        /* the JSON body (payload.c) */
    size_t body_len;                   /* its bytes */
    bool cacheable;                    /* an answer goes into the cache under key */
    uint64_t hash;                     /* SipHash of key */
    char rcpt_log[RCPT_CHECK_LOG_MAX]; /* the recipient, sanitized for the log */
    struct rcpt_check_request *prev;   /* running list */
    struct rcpt_check_request *next;   /* running list */
    size_t key_len;                    /* bytes of key */
    char key[];                        /* the cache key (rcpt_check_key) */
};

struct rcpt_check {
    uv_loop_t *loop;                          /* requests and the cache clock */
    struct http_client *http;                 /* every request (not owned) */
    const struct config_recipient_check *cfg; /* url, timeouts, headers, cache (not owned) */
    char **headers;                           /* request header lines, Content-Type first */
    size_t n_headers;                         /* entries in headers */
    struct siphash_key key;                   /* the cache's hash key, random */
    struct rcpt_check_entry **buckets;        /* RCPT_CHECK_BUCKETS chains; NULL: no cache */
    struct rcpt_check_entry *oldest;          /* insertion order: first to go */
    struct rcpt_check_entry *newest;          /* insertion order: last in */
    size_t n_entries;                         /* entries held, RCPT_CHECK_CACHE_MAX at most */
    struct rcpt_check_request *running;       /* requests under way */
};

/* ---- the verdict ------------------------------------------------------------------------- */

/* rcpt_check_set - a reply of the check's own into r. */
static void rcpt_check_set(struct rcpt_check_result *r, const struct rcpt_check_reply *from)
{
    r->accept = from->code / 100 == 2;
    r->reply.code = from->code;
    snprintf(r->reply.esc, sizeof(r->reply.esc), "%s", from->esc);
    snprintf(r->reply.text, sizeof(r->reply.text), "%s", from->text);
}

/* rcpt_check_failure_of - why a response is no answer the check acts on: the status class
 * when it answered with another status, else what curl reported, else a cut-off head. */
static enum rcpt_check_failure rcpt_check_failure_of(const struct http_response *resp)
{
    if (delivery_answered(resp)) {
        if (resp->status < 200)
            return RCPT_CHECK_FAILURE_INTERIM;
        if (resp->status < 400) /* 2xx is an answer: only 3xx come here */
            return RCPT_CHECK_FAILURE_REDIRECT;
        if (resp->status < 500)
            return RCPT_CHECK_FAILURE_CLIENT_ERROR;
        if (resp->status < 600)
            return RCPT_CHECK_FAILURE_SERVER_ERROR;
        return RCPT_CHECK_FAILURE_UNKNOWN_STATUS;
    }
    switch (resp->failure) {
    case HTTP_FAILURE_TIMEOUT:
        return RCPT_CHECK_FAILURE_TIMEOUT;
    case HTTP_FAILURE_CONNECT:
        return RCPT_CHECK_FAILURE_CONNECT;
    case HTTP_FAILURE_DNS:
        return RCPT_CHECK_FAILURE_DNS;
    case HTTP_FAILURE_TLS:
        return RCPT_CHECK_FAILURE_TLS;
    case HTTP_FAILURE_SEND:
        return RCPT_CHECK_FAILURE_SEND;
    case HTTP_FAILURE_NONE:
        /* RFC 9112 §8: a head that never ended is an incomplete response. */
        return resp->status >= 100 ? RCPT_CHECK_FAILURE_CUT_OFF : RCPT_CHECK_FAILURE_OTHER;
    case HTTP_FAILURE_OTHER:
    default:
        return RCPT_CHECK_FAILURE_OTHER;
    }
}

/* rcpt_check_judge - the work of rcpt_check_decide. Also returns whether the verdict may be
 * cached: an acceptance or a permanent refusal the app gave. A failure is never cached (the
 * next RCPT asks again), nor is a temporary (4yz) reply an app chose: it asks to be asked
 * again later. *ignored is set (static) when a Smtphook-Reply was present but ignored. */
static bool rcpt_check_judge(const struct config_recipient_check *cfg,
                             const struct http_response *resp, struct rcpt_check_result *out,
                             const char **ignored)
{
    memset(out, 0, sizeof(*out));
    struct app_reply app;
    if (delivery_app_reply(resp, &app, ignored)) {
        out->accept = app.code / 100 == 2; /* app_reply allows 250 only */
        out->reply = app;
        out->why = "Smtphook-Reply";
        return app.code / 100 != 4;
    }
    if (delivery_answered(resp) && resp->status >= 200 && resp->status <= 299) {
        rcpt_check_set(out, &rcpt_check_accepted);
        out->why = "2xx";
        return true;
    }
    /* RFC 9110 §15.5.5, §15.5.11: the app knows no such recipient, for now or for good. */
    if (delivery_answered(resp) && (resp->status == 404 || resp->status == 410)) {
        rcpt_check_set(out, &rcpt_check_unknown);
        out->why = resp->status == 404 ? "404" : "410";
        return true;
    }
    enum rcpt_check_failure f = rcpt_check_failure_of(resp);
    if (cfg->accept_on_failure) {
        rcpt_check_set(out, &rcpt_check_accepted);
        out->why = rcpt_check_failures[f].accepted;
    } else {
        rcpt_check_set(out, &rcpt_check_failed);
        out->why = rcpt_check_failures[f].deferred;
    }
    return false;
}

/* rcpt_check_decide - see rcpt_check.h. */
void rcpt_check_decide(const struct config_recipient_check *cfg, const struct http_response *resp,
                       struct rcpt_check_result *out)
{
    const char *ignored = NULL;
    (void)rcpt_check_judge(cfg, resp, out, &ignored);
}

/* ---- the cache --------------------------------------------------------------------------- */

/* ascii_lower - A..Z to a..z; every other byte (UTF-8 ones too) as it is. */
static char ascii_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* rcpt_check_key - the cache key of q into key (RCPT_CHECK_KEY_MAX bytes): the sender's
 * domain in lower case (after its last '@'; "" for the null sender or a sender without
 * one; domains compare without case, RFC 5321 §2.4), a NUL, and the recipient exactly as
 * sent (its local part may be case-sensitive, §2.4). A C string holds no NUL, so no two
 * pairs share a key. false when it does not fit: such a query is never cached. */
static bool rcpt_check_key(const struct rcpt_check_query *q, char *key, size_t *len)
{
    const char *sender = q->sender != NULL ? q->sender : "";
    const char *at = strrchr(sender, '@');
    const char *domain = at != NULL ? at + 1 : "";
    size_t dlen = strlen(domain), rlen = strlen(q->recipient);
    if (dlen + 1 + rlen > RCPT_CHECK_KEY_MAX)
        return false;
    for (size_t i = 0; i < dlen; i++)
        key[i] = ascii_lower(domain[i]);
    key[dlen] = '\0';
    memcpy(key + dlen + 1, q->recipient, rlen);
    *len = dlen + 1 + rlen;
    return true;
}

/* cache_bucket - the chain a hash belongs to. */
static struct rcpt_check_entry **cache_bucket(const struct rcpt_check *rc, uint64_t hash)
{
    return &rc->buckets[hash & (RCPT_CHECK_BUCKETS - 1)];
}

/* cache_drop - take e out of its chain and the insertion order, and free it. */
static void cache_drop(struct rcpt_check *rc, struct rcpt_check_entry *e)
{
    struct rcpt_check_entry **link = cache_bucket(rc, e->hash);
    while (*link != e)
        link = &(*link)->chain;
    *link = e->chain;
    if (e->older != NULL)
        e->older->newer = e->newer;
    else
        rc->oldest = e->newer;
    if (e->newer != NULL)
        e->newer->older = e->older;
    else
        rc->newest = e->older;
    rc->n_entries--;
    free(e);
}

/* cache_expire - drop the expired entries; they are the oldest ones (see the top). */
static void cache_expire(struct rcpt_check *rc, uint64_t now)
{
    while (rc->oldest != NULL && rc->oldest->expires_ms <= now)
        cache_drop(rc, rc->oldest);
}

/* cache_find - the live entry of key, or NULL; expired entries met on the way are dropped. */
static struct rcpt_check_entry *cache_find(struct rcpt_check *rc, const char *key, size_t len,
                                           uint64_t hash, uint64_t now)
{
    struct rcpt_check_entry *e = *cache_bucket(rc, hash);
    while (e != NULL) {
        struct rcpt_check_entry *next = e->chain;
        if (e->expires_ms <= now)
            cache_drop(rc, e);
        else if (e->hash == hash && e->key_len == len && memcmp(e->data, key, len) == 0)
            return e;
        e = next;
    }
    return NULL;
}

/* cache_put - keep r under key until now + cache_ms, in place of an older answer for the
 * same key, the oldest entry going when the cache is full. Without memory the answer is
 * simply not kept. */
static void cache_put(struct rcpt_check *rc, const char *key, size_t len, uint64_t hash,
                      const struct rcpt_check_result *r, uint64_t now)
{
    cache_expire(rc, now);
    struct rcpt_check_entry *old = cache_find(rc, key, len, hash, now);
    if (old != NULL)
        cache_drop(rc, old);
    if (rc->n_entries >= RCPT_CHECK_CACHE_MAX)
        cache_drop(rc, rc->oldest);
    size_t text_len = strlen(r->reply.text);
    struct rcpt_check_entry *e = malloc(sizeof(*e) + len + text_len + 1);
    if (e == NULL)
        return;
    e->hash = hash;
    e->expires_ms = now + rc->cfg->cache_ms;
    e->why = r->why;
    e->accept = r->accept;
    e->code = r->reply.code;
    memcpy(e->esc, r->reply.esc, sizeof(e->esc));
    e->key_len = len;
    e->text_len = text_len;
    memcpy(e->data, key, len);
    memcpy(e->data + len, r->reply.text, text_len + 1);
    struct rcpt_check_entry **bucket = cache_bucket(rc, hash);
    e->chain = *bucket;
    *bucket = e;
    e->older = rc->newest;
    e->newer = NULL;
    if (rc->newest != NULL)
        rc->newest->newer = e;
    else
        rc->oldest = e;
    rc->newest = e;
    rc->n_entries++;
}

/* cache_result - an entry as the result of a cache hit. */
static void cache_result(const struct rcpt_check_entry *e, struct rcpt_check_result *out)
{
    out->accept = e->accept;
    out->reply.code = e->code;
    memcpy(out->reply.esc, e->esc, sizeof(out->reply.esc));
    memcpy(out->reply.text, e->data + e->key_len, e->text_len + 1);
    out->cached = true;
    out->why = e->why;
}

/* ---- the log ----------------------------------------------------------------------------- */

/* rcpt_check_verdict_name - accept, refuse (5yz) or defer (4yz). */
static const char *rcpt_check_verdict_name(const struct rcpt_check_result *r)
{
    return r->accept ? "accept" : r->reply.code >= 500 ? "refuse" : "defer";
}

/* rcpt_check_log - the debug line of one check: recipient, verdict, what the app answered
 * (resp NULL: the cache did) and how long it took. */
static void rcpt_check_log(const char *rcpt, const struct rcpt_check_result *r,
                           const struct http_response *resp)
{
    char what[RCPT_CHECK_REASON_MAX + 64];
    char reason[RCPT_CHECK_REASON_MAX];
    uint64_t ms = 0;
    if (resp == NULL) {
        snprintf(what, sizeof(what), "cached");
    } else {
        ms = resp->elapsed_ms;
        const char *error = resp->error != NULL ? resp->error : "no detail";
        log_sanitize(reason, sizeof(reason), error, strlen(error));
        if (resp->failure == HTTP_FAILURE_NONE)
            snprintf(what, sizeof(what), "HTTP %ld%s", resp->status,
                     resp->headers_complete ? "" : " (head cut off)");
        else if (resp->status > 0)
            snprintf(what, sizeof(what), "HTTP %ld, then %s", resp->status, reason);
        else
            snprintf(what, sizeof(what), "no response (%s)", reason);
    }
    log_debug("recipient check <%s>: %s %u %s (%s), %s, %" PRIu64 " ms", rcpt,
              rcpt_check_verdict_name(r), r->reply.code, r->reply.esc, r->why != NULL ? r->why : "",
              what, ms);
}

/* ---- requests ---------------------------------------------------------------------------- */

/* rcpt_check_unlink - out of the running list. */
static void rcpt_check_unlink(struct rcpt_check_request *req)
{
    struct rcpt_check *rc = req->rc;
    if (req->prev != NULL)
        req->prev->next = req->next;
    else
        rc->running = req->next;
    if (req->next != NULL)
        req->next->prev = req->prev;
    req->prev = req->next = NULL;
}

/* rcpt_check_request_free - the request's memory; it is out of the running list. */
static void rcpt_check_request_free(struct rcpt_check_request *req)
{
    free(req->body);
    free(req);
}

/* rcpt_check_on_response - the POST ended: the verdict, the cache, the log; then the
 * request is freed and done runs last, so it may free the checker. */
static void rcpt_check_on_response(void *arg, const struct http_response *resp)
{
    struct rcpt_check_request *req = arg;
    struct rcpt_check *rc = req->rc;
    req->http = NULL;
    rcpt_check_unlink(req);

    struct rcpt_check_result res;
    const char *ignored = NULL;
    bool keep = rcpt_check_judge(rc->cfg, resp, &res, &ignored);
    if (ignored != NULL) {
        char value[HTTP_SMTP_REPLY_MAX + 1];
        log_warn("recipient check <%s>: Smtphook-Reply \"%s\" ignored: %s", req->rcpt_log,
                 log_sanitize(value, sizeof(value), resp->smtp_reply, strlen(resp->smtp_reply)),
                 ignored);
    } else if (resp->smtp_reply_dropped && delivery_answered(resp)) {
        log_warn("recipient check <%s>: Smtphook-Reply ignored: the value is longer than %u "
                 "bytes or holds a NUL",
                 req->rcpt_log, HTTP_SMTP_REPLY_MAX);
    }
    if (keep && req->cacheable)
        cache_put(rc, req->key, req->key_len, req->hash, &res, uv_now(rc->loop));
    rcpt_check_log(req->rcpt_log, &res, resp);

    rcpt_check_done_fn done = req->done;
    void *done_arg = req->arg;
    rcpt_check_request_free(req);
    done(done_arg, &res);
}

/* rcpt_check_post - start the POST of req: its body, the check's headers, the endpoint's
 * timeouts and TLS files. 0 or the error of http_request_start. */
static int rcpt_check_post(struct rcpt_check *rc, struct rcpt_check_request *req)
{
    const struct config_endpoint *ep = &rc->cfg->http;
    struct http_request_opts opts;
    memset(&opts, 0, sizeof(opts));
    opts.url = ep->url;
    opts.headers = (const char *const *)rc->headers;
    opts.n_headers = rc->n_headers;
    opts.body_size = req->body_len;
    opts.body = req->body;
    opts.timeout_ms = ep->timeout_ms;
    opts.connect_timeout_ms = ep->connect_timeout_ms;
    opts.ca_file = ep->ca_file;
    opts.client_cert = ep->client_cert;
    opts.client_key = ep->client_key;
    return http_request_start(rc->http, &opts, rcpt_check_on_response, req, &req->http);
}

/* rcpt_check_start - see rcpt_check.h. The key is built on the stack, so a hit costs a
 * hash and a comparison, no allocation. */
int rcpt_check_start(struct rcpt_check *rc, const struct rcpt_check_query *q,
                     rcpt_check_done_fn done, void *arg, struct rcpt_check_result *hit,
                     struct rcpt_check_request **out)
{
    if (out != NULL)
        *out = NULL;
    if (rc == NULL || q == NULL || q->recipient == NULL || done == NULL)
        return SH_EINVAL;
    char key[RCPT_CHECK_KEY_MAX];
    size_t key_len = 0;
    uint64_t hash = 0;
    bool cacheable = rc->buckets != NULL && rcpt_check_key(q, key, &key_len);
    if (cacheable)
        hash = siphash13(&rc->key, key, key_len);
    if (cacheable && hit != NULL) {
        const struct rcpt_check_entry *e = cache_find(rc, key, key_len, hash, uv_now(rc->loop));
        if (e != NULL) {
            char rcpt_log[RCPT_CHECK_LOG_MAX];
            memset(hit, 0, sizeof(*hit));
            cache_result(e, hit);
            rcpt_check_log(
                log_sanitize(rcpt_log, sizeof(rcpt_log), q->recipient, strlen(q->recipient)), hit,
                NULL);
            return 1;
        }
    }

    char *body = NULL;
    int err = payload_rcpt_check_json(q->recipient, q->sender, q->client_address, q->client_port,
                                      q->helo, q->tls, &body);
    if (err != 0)
        return err;
    struct rcpt_check_request *req = calloc(1, sizeof(*req) + key_len);
    if (req == NULL) {
        free(body);
        return SH_ENOMEM;
    }
    req->rc = rc;
    req->done = done;
    req->arg = arg;
    req->body = body;
    req->body_len = strlen(body);
    req->cacheable = cacheable;
    req->hash = hash;
    req->key_len = key_len;
    memcpy(req->key, key, key_len);
    log_sanitize(req->rcpt_log, sizeof(req->rcpt_log), q->recipient, strlen(q->recipient));
    if ((err = rcpt_check_post(rc, req)) != 0) {
        rcpt_check_request_free(req);
        return err;
    }
    req->next = rc->running;
    if (rc->running != NULL)
        rc->running->prev = req;
    rc->running = req;
    if (out != NULL)
        *out = req;
    return 0;
}

/* rcpt_check_cancel - see rcpt_check.h. */
void rcpt_check_cancel(struct rcpt_check_request *req)
{
    if (req == NULL)
        return;
    http_request_cancel(req->http);
    req->http = NULL;
    rcpt_check_unlink(req);
    rcpt_check_request_free(req);
}

/* ---- the checker ------------------------------------------------------------------------- */

/* rcpt_check_new - see rcpt_check.h. The header lines are built once here; the cache's
 * table only when answers are kept at all. */
int rcpt_check_new(uv_loop_t *loop, struct http_client *http,
                   const struct config_recipient_check *cfg, struct rcpt_check **out)
{
    *out = NULL;
    struct rcpt_check *rc = calloc(1, sizeof(*rc));
    if (rc == NULL)
        return SH_ENOMEM;
    rc->loop = loop;
    rc->http = http;
    rc->cfg = cfg;
    const struct config_endpoint *ep = &cfg->http;
    rc->headers = calloc(ep->n_headers + 1, sizeof(*rc->headers));
    if (rc->headers == NULL)
        goto fail;
    if ((rc->headers[rc->n_headers++] = strdup(RCPT_CHECK_CONTENT_TYPE)) == NULL)
        goto fail;
    for (size_t i = 0; i < ep->n_headers; i++) {
        if ((rc->headers[rc->n_headers++] = delivery_header_line(&ep->headers[i])) == NULL)
            goto fail;
    }
    if (cfg->cache_ms > 0 &&
        (rc->buckets = calloc(RCPT_CHECK_BUCKETS, sizeof(*rc->buckets))) == NULL)
        goto fail;
    uint64_t seed[2];
    if (uv_random(NULL, NULL, seed, sizeof(seed), 0, NULL) == 0) {
        rc->key.k0 = seed[0];
        rc->key.k1 = seed[1];
    } else { /* no entropy to be had: at least not the same key every run */
        rc->key = siphash_key_from_seed(uv_hrtime() ^ (uint64_t)(uintptr_t)rc);
    }
    *out = rc;
    return 0;

fail:
    rcpt_check_free(rc);
    return SH_ENOMEM;
}

/* rcpt_check_free - see rcpt_check.h: requests still running are cancelled first. */
void rcpt_check_free(struct rcpt_check *rc)
{
    if (rc == NULL)
        return;
    while (rc->running != NULL)
        rcpt_check_cancel(rc->running);
    while (rc->oldest != NULL)
        cache_drop(rc, rc->oldest);
    free(rc->buckets);
    if (rc->headers != NULL) {
        for (size_t i = 0; i < rc->n_headers; i++)
            free(rc->headers[i]);
    }
    free(rc->headers);
    free(rc);
}
