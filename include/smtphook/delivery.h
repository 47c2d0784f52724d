/* delivery.h - one transaction's trip to the web app, folded into one SMTP reply.
 *
 * The recipients are split by route (config.routes; without routes every endpoint gets
 * every recipient). Each endpoint gets one share per message - its request, and retries of
 * it - whose envelope holds only the recipients routed to it, with its own Idempotency-Key
 * (only an endpoint that is a failover target of one route and an endpoint of another can
 * get a second share). A route's policy "all" posts to each of its endpoints at once;
 * "failover" tries them in order, the next as soon as the previous one failed for now.
 *
 * Each result maps to an SMTP reply (RFC 5321 §4.2, enhanced codes RFC 3463):
 *   2xx after receiving the whole body, header block complete -> 250 2.0.0
 *   413                                                      -> 552 5.3.4
 *   401, 404, 408, 429, 431, 3xx, 5xx, 1xx or unknown,
 *   timeout, connection, DNS or TLS failure,
 *   body not fully sent, response cut off                    -> 451 4.x.x
 *   any other 4xx                                            -> 550 5.x.x
 * overridden by the endpoint's reply_map (by status), then by a valid Smtphook-Reply
 * response header that agrees with the status class. A temporary failure worth retrying
 * (connection refused or reset, timeout, cut-off response, 408, 429, 5xx) is tried again
 * while the sender waits, with backoff (retry.h), honouring Retry-After, never past the
 * transaction's deadline (limits.transaction_timeout_ms, a timer of its own). An endpoint's
 * circuit breaker (breaker.h) answers 451 at once while it is open.
 * The worst result wins: a permanent failure of any route, else a temporary one, else
 * success.
 *
 * A route whose "delivery" is "queue" gets no request now: when the rest of the message
 * succeeded, its shares (one per endpoint; a failover route's endpoints together) go into
 * t->shares and the reply is "250 2.0.0 Ok: queued as ID", which the caller may send only
 * once the queue has written them. A "sync_then_queue" route is tried as "sync"; what
 * failed for now becomes a share in the same way. Neither route is ever "down" at RCPT. */
#ifndef SMTPHOOK_DELIVERY_H
#define SMTPHOOK_DELIVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "smtphook/app_reply.h"
#include "smtphook/config.h"
#include "smtphook/http_client.h"
#include "smtphook/stats.h"
#include "smtphook/txn.h"

struct delivery;
struct delivery_context;

/* The default reply for one request result. */
struct delivery_reply {
    unsigned code;    /* 250, 451, 550, 552 */
    const char *esc;  /* enhanced status code, e.g. "4.4.1" (static) */
    const char *text; /* short reason (static) */
    bool retry;       /* a temporary failure that another attempt may cure */
};

/* Called once when the delivery has finished: t->deliveries holds each endpoint's result
 * and t->reply the reply for the sender. The transaction stays the caller's. */
typedef void (*delivery_done_fn)(void *arg, struct txn *t);

/* delivery_map - the default reply for one request result (pure; unit-tested). body_size
 * is the request body's size, compared with resp->body_sent to detect a body not fully
 * sent. */
struct delivery_reply delivery_map(const struct http_response *resp, uint64_t body_size);

/* delivery_answered - does the response answer at all: a status whose header section ended
 * (a cut-off response's status and headers are not trusted, RFC 9112 §8), and for a 2xx
 * no transfer error besides (pure). The recipient check follows the same rule. */
bool delivery_answered(const struct http_response *resp);

/* delivery_app_reply - the app's Smtphook-Reply of an answered response, when it may stand:
 * given once, the full form of app_reply.h, agreeing with the status class. true with *out;
 * false with *why the reason it was ignored (static), or NULL when there was none to ignore
 * (absent, dropped as too long, or no answer). Shared with the recipient check (pure). */
bool delivery_app_reply(const struct http_response *resp, struct app_reply *out, const char **why);

/* delivery_choose - the reply one endpoint's answer gives: delivery_map, then the
 * endpoint's reply_map for the status, then a valid Smtphook-Reply header (pure). *why is
 * set (static text) when a Smtphook-Reply header was present but ignored. *app is set when
 * the text is the app's or the operator's own (sent as it is). Returns delivery_map's
 * default, for what it says about the endpoint itself. */
struct delivery_reply delivery_choose(const struct config_endpoint *ep,
                                      const struct http_response *resp, uint64_t body_size,
                                      struct app_reply *out, bool *retry, bool *app,
                                      const char **why);

/* delivery_fold - the delivery whose reply the sender hears: the first permanent failure
 * in the order given, else the first temporary one; -1 when all succeeded. */
long delivery_fold(const struct txn_delivery *deliveries, size_t n);

/* delivery_header_line - "Name: value" for a configured request header, malloc'ed (NULL
 * without memory). Shared with the recipient check. */
char *delivery_header_line(const struct config_header *h);

/* delivery_context_new - what all deliveries share: the loop, the HTTP client, the config
 * and one circuit breaker per endpoint. 0 or SH_ENOMEM. */
int delivery_context_new(uv_loop_t *loop, struct http_client *http, const struct config *cfg,
                         struct delivery_context **out);

/* delivery_context_carry - at a reload: each endpoint of ctx's config that from's config
 * has too, by the same name and URL, keeps what its circuit breaker knew (breaker_carry),
 * so an endpoint that is down stays known as down; a changed URL starts closed. Logs each
 * breaker that stays open. */
void delivery_context_carry(struct delivery_context *ctx, const struct delivery_context *from);

/* delivery_route_down - can the route (an index into config.routes; -1 without routes:
 * every endpoint, policy all) deliver nothing now because of open circuit breakers? "all":
 * any of its endpoints refusing; "failover": every one refusing. Changes nothing. */
bool delivery_route_down(const struct delivery_context *ctx, long route);

/* delivery_endpoint_refusing - does endpoint ep's breaker refuse requests now? */
bool delivery_endpoint_refusing(const struct delivery_context *ctx, size_t ep);

/* delivery_context_set_stats - report each webhook request to st (NULL: nowhere). */
void delivery_context_set_stats(struct delivery_context *ctx, struct stats *st);

/* delivery_all_down - is every endpoint's circuit breaker refusing now? */
bool delivery_all_down(const struct delivery_context *ctx);

/* delivery_context_stop - the server stops: every delivery, running or still to come, must
 * end within within_ms; their deadlines come forward to that. */
void delivery_context_stop(struct delivery_context *ctx, uint64_t within_ms);

/* delivery_context_free - release it; no delivery may be running. NULL is ignored. */
void delivery_context_free(struct delivery_context *ctx);

/* delivery_start - deliver the transaction's message. The transaction must stay alive until
 * done is called or delivery_cancel returns. done is never called before this returns.
 * 0 or SH_ENOMEM; on error done is not called. */
int delivery_start(struct delivery_context *ctx, struct txn *t, delivery_done_fn done, void *arg,
                   struct delivery **out);

/* delivery_start_share - one attempt of a queued share (queue.h): t holds the share's
 * recipients only; its endpoint (or a failover share's endpoints in order, the next after
 * a temporary failure) gets one request each, without retries (the queue schedules them),
 * under the endpoint's breaker. done as for delivery_start. 0, SH_EINVAL (an endpoint index
 * out of range) or SH_ENOMEM. */
int delivery_start_share(struct delivery_context *ctx, struct txn *t, const struct txn_share *share,
                         delivery_done_fn done, void *arg, struct delivery **out);

/* Streamed transfer (endpoints with "stream"): the delivery opens when the body starts,
 * before the message is complete. Only the requests of streaming endpoints start then; they
 * send the body chunked as it arrives (delivery_stream_more after each piece of input) and
 * pause when they catch up with it. An answer that comes before the body ended is no
 * delivery (a 2xx is "message not fully sent"). At the final dot delivery_stream_commit
 * turns it into an ordinary delivery: the deadline starts, the other endpoints get their
 * requests, and a streamed request still running is the first attempt of its endpoint.
 * A message that is dropped instead (delivery_cancel) cuts its requests off mid-body. */

/* delivery_stream_open - the body of t has begun: start the requests of the endpoints that
 * stream. *out NULL (and 0) when none of them gets the message. 0 or SH_ENOMEM. */
int delivery_stream_open(struct delivery_context *ctx, struct txn *t, struct delivery **out);

/* delivery_stream_more - the spool grew, or the body ended, or it was found unfit (too big,
 * not stored, a multipart boundary in it): the streamed requests read on, or those that
 * cannot carry the message any further stop and wait for an ordinary attempt. */
void delivery_stream_more(struct delivery *d);

/* delivery_stream_commit - the message is complete (t->body_ended): continue as
 * delivery_start would, done never called before this returns. */
void delivery_stream_commit(struct delivery *d, delivery_done_fn done, void *arg);

/* delivery_cancel - stop every request and timer; done is not called afterwards. */
void delivery_cancel(struct delivery *d);

#endif
