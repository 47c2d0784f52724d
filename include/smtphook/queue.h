/* queue.h - the durable queue: messages answered 250 before the app has them, delivered in
 * the background until it accepts them, gives them up or they grow too old.
 *
 * Routes with "delivery": "queue" (and "sync_then_queue" after a temporary failure) leave
 * shares in their transaction (txn.h); queue_enqueue writes one entry per share to the
 * store (queue_store.h) and only then lets the sender hear 250. Writes of messages that
 * arrive together are made durable together: while one batch is being written and flushed
 * on a worker thread, the next one gathers. In the background each entry due is tried with
 * delivery_start_share (its endpoint's format, signing, the same Idempotency-Key every
 * time, the breaker shared with the SMTP side), at most queue.max_in_flight at once per
 * endpoint; a 2xx completes it, a permanent refusal buries it as a dead letter, a
 * temporary failure schedules the next attempt (queue_schedule: backoff with jitter,
 * Retry-After, queue.max_age_ms). The CLI changes the store directly and pokes the server
 * through a file in <dir>/ctl/ (watched), so a retry or delete from the CLI takes effect
 * at once. */
#ifndef SMTPHOOK_QUEUE_H
#define SMTPHOOK_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "smtphook/buf.h"
#include "smtphook/config.h"
#include "smtphook/delivery.h"
#include "smtphook/queue_store.h"
#include "smtphook/stats.h"
#include "smtphook/txn.h"

struct queue;
struct queue_ticket;

/* What the queue asks the server: the deliveries' context of the current configuration for
 * one attempt (its endpoints and breakers), held until released. */
struct queue_hooks {
    struct delivery_context *(*acquire)(void *arg, const struct config **cfg, void **token);
    void (*release)(void *arg, void *token);
    void (*idle)(void *arg); /* after queue_stop: nothing runs any more (queue_busy is 0) */
    void *arg;
};

/* Called once the transaction's entries are written (rc 0: the 250 may go out) or not
 * (SH_ENOSPACE: 452 4.3.1; another code: 451). The transaction is the caller's again. */
typedef void (*queue_done_fn)(void *arg, struct txn *t, int rc);

/* queue_open - open the queue directory of cfg (recovering what a crash left) and read its
 * entries; delivering them starts at the first queue_configure (once hooks.acquire has a
 * configuration to give), so that a queue opened and closed again (a reload that failed
 * after it) started nothing. 0, or an error after logging why. */
int queue_open(uv_loop_t *loop, const struct config *cfg, const struct queue_hooks *hooks,
               struct queue **out);

/* queue_configure - the configuration in use (at the start, or a reloaded one): its limits
 * and schedule (the directory stays); what is due starts. */
void queue_configure(struct queue *q, const struct config *cfg);

/* queue_set_stats - report to st (NULL: nowhere). */
void queue_set_stats(struct queue *q, struct stats *st);

/* queue_full - would n more entries of bytes each pass queue.max_messages or max_bytes? */
bool queue_full(const struct queue *q, size_t n, uint64_t bytes);

/* queue_enqueue - write t's shares (t->shares, endpoint indices of cfg: the configuration
 * it was delivered under) as entries. The queue holds t until done is called; done is never
 * called before this returns. SH_ENOSPACE at once when the queue is full (done not called),
 * SH_ENOMEM. *ticket lets the caller abandon the wait. */
int queue_enqueue(struct queue *q, const struct config *cfg, struct txn *t, queue_done_fn done,
                  void *arg, struct queue_ticket **ticket);

/* queue_abandon - the caller cannot wait for done (its client is gone): the write goes on,
 * the entries stand (the sender got no reply and may send again: the app deduplicates on
 * the Idempotency-Key), and the queue frees the transaction. */
void queue_abandon(struct queue_ticket *ticket);

/* queue_retry - try an active entry now (the admin port). 0 or SH_ENOTFOUND. */
int queue_retry(struct queue *q, const char *name);

/* queue_store_of - the store, for listing (the admin port). */
struct queue_store *queue_store_of(struct queue *q);

/* queue_collect - the queue's gauges into st (depth and bytes per endpoint, oldest age). */
void queue_collect(struct queue *q, struct stats *st);

/* queue_stop - start no more attempts; running ones and writes go on, and hooks.idle is
 * called when the last of them has ended. */
void queue_stop(struct queue *q);

/* queue_busy - attempts or writes under way (a stop waits for them). */
size_t queue_busy(const struct queue *q);

/* queue_close - cancel what runs (an attempt cut off is tried again after a restart, with
 * the same key) and free the queue once its handles are closed. NULL is ignored. */
void queue_close(struct queue *q);

/* queue_poke - the CLI changed entry name in the store at dir: tell a running server (a
 * file in <dir>/ctl/). Best effort. */
void queue_poke(const char *dir, const char *name);

#endif
