/* delivery.h - one transaction's trip to the web app, folded into one SMTP reply.
 *
 * Posts the spooled message to every endpoint at once, under one deadline, and maps the
 * results to the reply after the final dot (RFC 5321 §4.2, enhanced codes RFC 3463):
 *   every endpoint 2xx after receiving the whole body  -> 250 2.0.0
 *   413                                                -> 552 5.3.4
 *   401, 404, 408, 429, 3xx, 5xx, 1xx or unknown,
 *   timeout, connection, DNS or TLS failure,
 *   body not fully sent                                -> 451 4.x.x
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
#include "smtphook/txn.h"

struct delivery;

/* The reply for one endpoint's result, or for the whole transaction. */
struct delivery_reply {
    unsigned code;    /* 250, 451, 550, 552 */
    const char *esc;  /* enhanced status code, e.g. "4.4.1" (static) */
    const char *text; /* short reason (static) */
};

/* Called once when every request has finished: t->deliveries holds each endpoint's result
 * and t->reply the reply for the sender. The transaction stays the caller's. */
typedef void (*delivery_done_fn)(void *arg, struct txn *t);

/* delivery_map - the reply for one request result (pure; unit-tested). body_size is the
 * message size, compared with resp->body_sent to detect a body not fully sent. */
struct delivery_reply delivery_map(const struct http_response *resp, uint64_t body_size);

/* delivery_fold - the delivery whose reply the sender hears: the first permanent failure
 * in endpoint order, else the first temporary one; -1 when all succeeded (n > 0). */
long delivery_fold(const struct txn_delivery *deliveries, size_t n);

/* delivery_start - post the transaction's message to every endpoint of cfg. The
 * transaction must stay alive until done is called or delivery_cancel returns. 0 or
 * SH_ENOMEM; on error done is not called. */
int delivery_start(struct http_client *hc, const struct config *cfg, struct txn *t,
                   delivery_done_fn done, void *arg, struct delivery **out);

/* delivery_cancel - stop every request; done is not called afterwards. */
void delivery_cancel(struct delivery *d);

#endif
