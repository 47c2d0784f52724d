/* delivery.h - one transaction's trip to the web app, folded into one SMTP reply.
 *
 * Posts the spooled message to every endpoint at once, under one deadline, and maps the
 * results to the reply after the final dot (RFC 5321 §4.2, enhanced codes RFC 3463):
 *   every endpoint 2xx after receiving the whole body  -> 250 2.0.0
 *   413                                                -> 552 5.3.4
 *   401, 404, 408, 429, 3xx, 5xx, 1xx or unknown,
 *   timeout, connection, DNS or TLS failure,
 *   body not fully sent, response cut off              -> 451 4.x.x
 *   any other 4xx                                      -> 550 5.x.x
 * The deadline (limits.transaction_timeout_ms) is each request's curl timeout: every
 * request starts at once, so none outlives it.
 * With several endpoints a permanent failure wins over a temporary one, which wins over
 * success: the sender hears about the worst result. */
#ifndef SMTPHOOK_DELIVERY_H
#define SMTPHOOK_DELIVERY_H

#include <stddef.h>
#include <stdint.h>

#include "smtphook/config.h"
#include "smtphook/envelope.h"
#include "smtphook/http_client.h"
#include "smtphook/spool.h"

struct delivery;

/* The reply for one endpoint's result, or for the whole transaction. */
struct delivery_reply {
    unsigned code;    /* 250, 451, 550, 552 */
    const char *esc;  /* enhanced status code, e.g. "4.4.1" (static) */
    const char *text; /* short reason (static) */
};

struct delivery_endpoint_result {
    const char *endpoint;        /* config_endpoint.name */
    enum http_failure failure;   /* HTTP_FAILURE_NONE when status is valid */
    long status;                 /* HTTP status, 0 without a response */
    uint64_t elapsed_ms;         /* request time */
    struct delivery_reply reply; /* what this result alone would answer */
};

struct delivery_outcome {
    struct delivery_reply reply;                    /* the reply to send */
    const struct delivery_endpoint_result *results; /* one per endpoint, config order */
    size_t n_results;                               /* entries in results */
    uint64_t elapsed_ms;                            /* whole transaction */
};

/* Called once with the outcome; outcome is valid only during the call. */
typedef void (*delivery_done_fn)(void *arg, const struct delivery_outcome *outcome);

/* delivery_map - the reply for one request result (pure; unit-tested). body_size is the
 * message size, compared with resp->body_sent to detect a body not fully sent. */
struct delivery_reply delivery_map(const struct http_response *resp, uint64_t body_size);

/* delivery_fold - combine per-endpoint replies: permanent > temporary > success. */
struct delivery_reply delivery_fold(const struct delivery_endpoint_result *results, size_t n);

/* delivery_start - post env + spool to every endpoint of cfg. The spool and envelope must
 * stay alive until done is called or delivery_cancel returns. 0 or SH_ENOMEM; on error
 * done is not called. */
int delivery_start(struct http_client *hc, const struct config *cfg, const struct envelope *env,
                   const struct spool *sp, delivery_done_fn done, void *arg, struct delivery **out);

/* delivery_cancel - stop every request; done is not called afterwards. */
void delivery_cancel(struct delivery *d);

#endif
