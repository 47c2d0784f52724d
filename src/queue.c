/* queue.c - the durable queue on the loop: batched writes, the index of entries, background
 * attempts (see queue.h).
 *
 * The index holds one small record per active entry (name, first endpoint, size, times);
 * the entry itself is read from the store for each attempt and written back after it, so
 * the store stays the truth and the CLI can change it. A timer is armed for the earliest
 * entry due; each tick starts what is due, within each endpoint's in-flight limit and not
 * while its breaker refuses. Writes go to one worker thread at a time: a batch holds every
 * message that arrived while the previous batch was being written and flushed, so one
 * flush covers them all. */
#include "smtphook/queue.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "smtphook/digest.h"
#include "smtphook/error.h"
#include "smtphook/log.h"
#include "smtphook/spool.h"

#define QUEUE_IDLE_TICK_MS 1000u  /* entries held back (in flight, breaker) look again */
#define QUEUE_RESCAN_MS    60000u /* the store is read again: changes nobody poked about */
#define QUEUE_CTL          "ctl"

/* One active entry, as the scheduler sees it. */
struct queue_item {
    char name[QUEUE_ENTRY_NAME_MAX + 1]; /* the entry's name */
    char *endpoint;                      /* its first endpoint's name */
    int64_t next_ms;                     /* not tried before (Unix ms) */
    int64_t queued_ms;                   /* when it was queued */
    uint64_t bytes;                      /* its message's size */
    bool failover;                       /* endpoints in order: held back by no one breaker */
    bool running;                        /* an attempt is under way */
    bool retry_now;                      /* asked to retry while running: at once after it */
    bool seen;                           /* a rescan found it */
};

/* One message being written. */
struct queue_ticket {
    struct queue *q;           /* owner */
    struct txn *t;             /* the message: the queue holds it until done */
    queue_done_fn done;        /* NULL once abandoned */
    void *arg;                 /* passed to done */
    struct queue_new job;      /* what the store writes */
    struct queue_item **items; /* the index records it will add */
    struct queue_ticket *next; /* the pending list or the batch */
};

/* One background attempt. */
struct queue_attempt_run {
    struct queue *q;                       /* owner */
    struct queue_item *item;               /* the index record */
    struct queue_entry e;                  /* the entry as read for it */
    int64_t claimed_next;                  /* its next_ms as read: a change meanwhile is the
                                            * CLI's */
    struct txn *t;                         /* the share as a transaction */
    struct txn_share share;                /* its endpoints (indices of the config it runs under) */
    struct delivery *d;                    /* the delivery, NULL once done */
    void *token;                           /* the server's hold on the configuration */
    const struct config *cfg;              /* that configuration */
    size_t slot;                           /* the endpoint counted in flight (first endpoint) */
    struct queue_attempt_run *prev, *next; /* q->runs */
};

struct queue {
    uv_loop_t *loop;                    /* where everything runs */
    const struct config *cfg;           /* limits and schedule (the current configuration) */
    struct config_queue limits;         /* copied from it (the directory string excepted) */
    char *directory;                    /* the queue directory */
    struct queue_hooks hooks;           /* the server's configuration for attempts */
    struct stats *stats;                /* metrics, or NULL */
    struct queue_store *store;          /* the entries */
    int lock_fd;                        /* <dir>/lock, held (flock) while the queue is open */
    struct queue_item **items;          /* the index */
    size_t n_items;                     /* entries in it */
    size_t cap_items;                   /* allocated */
    uint64_t bytes;                     /* message bytes of the index */
    uint64_t reserved_n;                /* entries being written */
    uint64_t reserved_bytes;            /* their bytes */
    struct queue_ticket *pending;       /* waiting for the next batch, in arrival order */
    struct queue_ticket **pending_tail; /* where the next one goes */
    struct queue_ticket *batch;         /* being written */
    struct queue_new *batch_jobs;       /* the batch as the store takes it */
    size_t batch_n;                     /* messages in it */
    uv_work_t work;                     /* the worker's request */
    bool writing;                       /* a batch is on the worker */
    struct queue_attempt_run *runs;     /* attempts under way */
    size_t n_runs;                      /* their number */
    char **flight_names;                /* endpoint names with attempts in flight */
    unsigned *flight;                   /* attempts in flight per name */
    size_t n_flight;                    /* entries in both */
    uv_timer_t timer;                   /* the next entry due */
    uv_timer_t rescan;                  /* the store read again */
    uv_fs_event_t ctl;                  /* <dir>/ctl/: pokes from the CLI */
    bool ctl_on;                        /* ctl is started */
    int handles;                        /* handles not closed yet */
    bool stopped;                       /* no more attempts or writes */
    bool closing;                       /* queue_close was called */
};

static void queue_tick(struct queue *q);
static void queue_maybe_free(struct queue *q);
static void queue_check_idle(struct queue *q);

/* ---- the index -------------------------------------------------------------------------- */

/* queue_find - the index record of name, or NULL. */
static struct queue_item *queue_find(const struct queue *q, const char *name, size_t *pos)
{
    for (size_t i = 0; i < q->n_items; i++) {
        if (strcmp(q->items[i]->name, name) == 0) {
            if (pos != NULL)
                *pos = i;
            return q->items[i];
        }
    }
    return NULL;
}

/* queue_item_new - a record for entry e (not in the index yet). */
static struct queue_item *queue_item_new(const struct queue_entry *e)
{
    struct queue_item *it = calloc(1, sizeof(*it));
    if (it == NULL)
        return NULL;
    snprintf(it->name, sizeof(it->name), "%s", e->name);
    it->endpoint = strdup(e->n_endpoints > 0 ? e->endpoints[0] : "");
    if (it->endpoint == NULL) {
        free(it);
        return NULL;
    }
    it->next_ms = e->next_ms;
    it->queued_ms = e->queued_ms;
    it->bytes = e->env.size;
    it->failover = e->failover;
    return it;
}

/* queue_item_free - a record's memory. */
static void queue_item_free(struct queue_item *it)
{
    if (it != NULL)
        free(it->endpoint);
    free(it);
}

/* queue_add - put a record into the index. 0 or SH_ENOMEM. */
static int queue_add(struct queue *q, struct queue_item *it)
{
    if (q->n_items == q->cap_items) {
        size_t cap = q->cap_items > 0 ? q->cap_items * 2 : 64;
        struct queue_item **items = realloc(q->items, cap * sizeof(*items));
        if (items == NULL)
            return SH_ENOMEM;
        q->items = items;
        q->cap_items = cap;
    }
    q->items[q->n_items++] = it;
    q->bytes += it->bytes;
    return 0;
}

/* queue_drop - take the record at pos out of the index and free it. */
static void queue_drop(struct queue *q, size_t pos)
{
    struct queue_item *it = q->items[pos];
    q->bytes -= it->bytes;
    q->items[pos] = q->items[--q->n_items];
    queue_item_free(it);
}

/* queue_drop_item - take it out of the index, wherever it is. */
static void queue_drop_item(struct queue *q, struct queue_item *it)
{
    for (size_t i = 0; i < q->n_items; i++) {
        if (q->items[i] == it) {
            queue_drop(q, i);
            return;
        }
    }
}

/* queue_writing - is name an entry of a message being written (its files may be in place
 * before the flush, and the flush may still fail)? Such an entry joins the index only
 * after its flush, so that nothing is tried before its sender heard 250. */
static bool queue_writing(const struct queue *q, const char *name)
{
    const struct queue_ticket *lists[2] = {q->batch, q->pending};
    for (size_t l = 0; l < 2; l++) {
        for (const struct queue_ticket *tk = lists[l]; tk != NULL; tk = tk->next) {
            for (size_t i = 0; i < tk->job.n; i++) {
                if (strcmp(tk->job.names[i], name) == 0)
                    return true;
            }
        }
    }
    return false;
}

/* queue_upsert - the store's entry e into the index: new, or its schedule refreshed. */
static void queue_upsert(struct queue *q, const struct queue_entry *e)
{
    if (queue_writing(q, e->name))
        return;
    struct queue_item *it = queue_find(q, e->name, NULL);
    if (it != NULL) {
        it->seen = true;
        if (!it->running)
            it->next_ms = e->next_ms;
        return;
    }
    it = queue_item_new(e);
    if (it == NULL || queue_add(q, it) != 0) {
        queue_item_free(it);
        log_error("queue: out of memory for entry %s; it is read again later", e->name);
        return;
    }
    it->seen = true;
}

/* queue_load_one - queue_list_fn: each active entry into the index. */
static int queue_load_one(void *arg, const struct queue_entry *e, const char *why)
{
    struct queue *q = arg;
    if (why != NULL) {
        log_error("queue: entry %s cannot be read: %s", e->name, why);
        return 0;
    }
    queue_upsert(q, e);
    return 0;
}

/* queue_seen - the names walk of a rescan: a known entry is marked, a new one (the CLI's
 * requeue, say) is read and joins. */
static int queue_seen(void *arg, const char *name)
{
    struct queue *q = arg;
    struct queue_item *it = queue_find(q, name, NULL);
    if (it != NULL) {
        it->seen = true;
        return 0;
    }
    struct queue_entry e;
    char why[256];
    if (q->store->ops->read(q->store, QUEUE_ACTIVE, name, &e, why, sizeof(why)) == 0)
        queue_upsert(q, &e);
    queue_entry_free(&e);
    return 0;
}

/* queue_rescan - the store again: new entries join, those gone (the CLI deleted them)
 * leave, unless an attempt or a write holds them. At the start every entry is read; later
 * only the names are walked and only new entries read, so a large queue costs a directory
 * listing a minute, not a read of every file. */
static void queue_rescan(struct queue *q, bool full)
{
    for (size_t i = 0; i < q->n_items; i++)
        q->items[i]->seen = false;
    int rc = full ? q->store->ops->list(q->store, QUEUE_ACTIVE, queue_load_one, q)
                  : q->store->ops->names(q->store, QUEUE_ACTIVE, queue_seen, q);
    if (rc != 0)
        return; /* the folder cannot be read now: keep what is known */
    for (size_t i = q->n_items; i-- > 0;) {
        if (!q->items[i]->seen && !q->items[i]->running)
            queue_drop(q, i);
    }
}

/* ---- in flight per endpoint ------------------------------------------------------------- */

/* queue_flight_slot - the counter of endpoint name, made when missing; -1 without memory. */
static long queue_flight_slot(struct queue *q, const char *name)
{
    for (size_t i = 0; i < q->n_flight; i++) {
        if (strcmp(q->flight_names[i], name) == 0)
            return (long)i;
    }
    char **names = realloc(q->flight_names, (q->n_flight + 1) * sizeof(*names));
    if (names == NULL)
        return -1;
    q->flight_names = names;
    unsigned *flight = realloc(q->flight, (q->n_flight + 1) * sizeof(*flight));
    if (flight == NULL)
        return -1;
    q->flight = flight;
    if ((names[q->n_flight] = strdup(name)) == NULL)
        return -1;
    flight[q->n_flight] = 0;
    return (long)q->n_flight++;
}

/* ---- writing ---------------------------------------------------------------------------- */

/* queue_ticket_free - a ticket's memory (not its transaction). */
static void queue_ticket_free(struct queue_ticket *tk)
{
    for (size_t i = 0; i < tk->job.n; i++) {
        free(tk->job.names[i]);
        buf_free(&tk->job.texts[i]);
        queue_item_free(tk->items[i]);
    }
    free(tk->job.names);
    free(tk->job.texts);
    free(tk->items);
    free(tk);
}

/* queue_work - on the worker: the batch into the store. */
static void queue_work(uv_work_t *req)
{
    struct queue *q = req->data;
    q->store->ops->enqueue(q->store, q->batch_jobs, q->batch_n);
}

static void queue_start_batch(struct queue *q);

/* queue_after_work - on the loop: each message's result to its sender; the next batch. */
static void queue_after_work(uv_work_t *req, int status)
{
    struct queue *q = req->data;
    q->writing = false;
    struct queue_ticket *tk = q->batch;
    size_t i = 0, written = 0;
    for (size_t k = 0; k < q->batch_n; k++)
        written += status == 0 && q->batch_jobs[k].result == 0;
    stats_queue_flush(q->stats, written);
    q->batch = NULL;
    while (tk != NULL) {
        struct queue_ticket *next = tk->next;
        struct queue_new *job = &q->batch_jobs[i++];
        int rc = status == 0 ? job->result : SH_EIO;
        q->reserved_n -= tk->job.n;
        q->reserved_bytes -= tk->job.n * tk->job.size;
        if (rc == 0) {
            for (size_t k = 0; k < tk->job.n; k++) {
                if (queue_add(q, tk->items[k]) == 0)
                    tk->items[k] = NULL; /* the index has it */
                else
                    log_error("queue: out of memory for entry %s; it is read again later",
                              tk->job.names[k]);
            }
            log_info("txn id=%s queued: %zu entr%s", tk->job.id, tk->job.n,
                     tk->job.n == 1 ? "y" : "ies");
        } else {
            log_error("txn id=%s cannot be queued: %s", tk->job.id, job->error);
        }
        if (tk->done != NULL)
            tk->done(tk->arg, tk->t, rc);
        else
            txn_free(tk->t); /* abandoned: nobody waits */
        queue_ticket_free(tk);
        tk = next;
    }
    free(q->batch_jobs);
    q->batch_jobs = NULL;
    q->batch_n = 0;
    if (q->pending != NULL)
        queue_start_batch(q);
    else if (!q->closing)
        queue_tick(q);
    queue_check_idle(q);
    queue_maybe_free(q);
}

/* queue_start_batch - everything pending goes to the worker as one batch. */
static void queue_start_batch(struct queue *q)
{
    if (q->writing || q->pending == NULL)
        return;
    size_t n = 0;
    for (struct queue_ticket *tk = q->pending; tk != NULL; tk = tk->next)
        n++;
    q->batch_jobs = calloc(n, sizeof(*q->batch_jobs));
    if (q->batch_jobs == NULL)
        return; /* tried again with the next message or tick */
    size_t i = 0;
    for (struct queue_ticket *tk = q->pending; tk != NULL; tk = tk->next)
        q->batch_jobs[i++] = tk->job;
    q->batch = q->pending;
    q->batch_n = n;
    q->pending = NULL;
    q->pending_tail = &q->pending;
    q->work.data = q;
    if (uv_queue_work(q->loop, &q->work, queue_work, queue_after_work) != 0) {
        /* no worker: run it here rather than lose the messages */
        queue_work(&q->work);
        q->writing = true;
        queue_after_work(&q->work, 0);
        return;
    }
    q->writing = true;
}

/* queue_full - see queue.h. */
bool queue_full(const struct queue *q, size_t n, uint64_t bytes)
{
    return q->n_items + q->reserved_n + n > q->limits.max_messages ||
           q->bytes + q->reserved_bytes + n * bytes > q->limits.max_bytes;
}

/* queue_entry_of - the entry of share k of t, formatted into text. 0 or SH_ENOMEM. */
static int queue_entry_of(const struct config *cfg, const struct txn *t, size_t k, int64_t now,
                          const char *name, struct buf *text, struct queue_item **item)
{
    const struct txn_share *sh = &t->shares[k];
    struct queue_entry e;
    queue_entry_init(&e);
    snprintf(e.name, sizeof(e.name), "%s", name);
    snprintf(e.key, sizeof(e.key), "%s", sh->key);
    digest_hex(t->body_digest, e.digest);
    e.queued_ms = now;
    e.next_ms = now;
    e.failover = sh->failover;
    e.body_utf8 = txn_body_utf8(t);
    struct envelope env = t->env;
    char **view = calloc(sh->n_rcpts > 0 ? sh->n_rcpts : 1, sizeof(*view));
    int rc = view != NULL ? 0 : SH_ENOMEM;
    for (size_t i = 0; rc == 0 && i < sh->n_rcpts; i++)
        view[i] = t->env.rcpt_to[sh->rcpts[i]];
    env.rcpt_to = view;
    env.n_rcpt = sh->n_rcpts;
    if (rc == 0)
        rc = queue_entry_copy_envelope(&e, &env);
    for (size_t i = 0; rc == 0 && i < sh->n_endpoints; i++)
        rc = queue_entry_add_endpoint(&e, cfg->endpoints[sh->endpoints[i]].name);
    if (rc == 0)
        rc = queue_entry_format(&e, text);
    if (rc == 0 && (*item = queue_item_new(&e)) == NULL)
        rc = SH_ENOMEM;
    free(view);
    queue_entry_free(&e);
    return rc;
}

/* queue_enqueue - see queue.h. */
int queue_enqueue(struct queue *q, const struct config *cfg, struct txn *t, queue_done_fn done,
                  void *arg, struct queue_ticket **ticket)
{
    *ticket = NULL;
    if (q->closing)
        return SH_EIO;
    uint64_t size = t->spool != NULL ? spool_size(t->spool) : 0;
    if (queue_full(q, t->n_shares, size))
        return SH_ENOSPACE;
    struct queue_ticket *tk = calloc(1, sizeof(*tk));
    if (tk == NULL)
        return SH_ENOMEM;
    tk->q = q;
    tk->t = t;
    tk->done = done;
    tk->arg = arg;
    size_t n = t->n_shares;
    tk->job.names = calloc(n > 0 ? n : 1, sizeof(*tk->job.names));
    tk->job.texts = calloc(n > 0 ? n : 1, sizeof(*tk->job.texts));
    tk->items = calloc(n > 0 ? n : 1, sizeof(*tk->items));
    int rc = tk->job.names != NULL && tk->job.texts != NULL && tk->items != NULL ? 0 : SH_ENOMEM;
    int64_t now = log_unix_ms();
    tk->job.message = t->spool;
    tk->job.size = size;
    tk->job.id = t->env.id;
    for (size_t k = 0; rc == 0 && k < n; k++) {
        char name[ENVELOPE_ID_MAX + 24];
        snprintf(name, sizeof(name), "%s-%zu", t->env.id, k);
        if (strlen(name) > QUEUE_ENTRY_NAME_MAX || !queue_entry_name_ok(name)) {
            rc = SH_EINVAL;
            break;
        }
        if ((tk->job.names[k] = strdup(name)) == NULL) {
            rc = SH_ENOMEM;
            break;
        }
        tk->job.n = k + 1;
        rc = queue_entry_of(cfg, t, k, now, name, &tk->job.texts[k], &tk->items[k]);
    }
    if (rc != 0) {
        queue_ticket_free(tk);
        return rc;
    }
    q->reserved_n += n;
    q->reserved_bytes += n * size;
    *q->pending_tail = tk;
    q->pending_tail = &tk->next;
    *ticket = tk;
    queue_start_batch(q);
    return 0;
}

/* queue_abandon - see queue.h. */
void queue_abandon(struct queue_ticket *ticket)
{
    if (ticket != NULL)
        ticket->done = NULL;
}

/* ---- attempts --------------------------------------------------------------------------- */

/* queue_run_free - an attempt's memory; its configuration hold is released. */
static void queue_run_free(struct queue_attempt_run *run)
{
    struct queue *q = run->q;
    if (run->prev != NULL)
        run->prev->next = run->next;
    else
        q->runs = run->next;
    if (run->next != NULL)
        run->next->prev = run->prev;
    q->n_runs--;
    if (run->slot < q->n_flight && q->flight[run->slot] > 0)
        q->flight[run->slot]--;
    if (run->item != NULL)
        run->item->running = false;
    if (run->token != NULL && q->hooks.release != NULL)
        q->hooks.release(q->hooks.arg, run->token);
    txn_free(run->t);
    queue_entry_free(&run->e);
    free(run->share.endpoints);
    free(run);
}

/* queue_outcome - the reply of the attempt's deciding delivery (the last one tried). */
static const struct txn_delivery *queue_last(const struct txn *t)
{
    return t->n_deliveries > 0 ? &t->deliveries[t->n_deliveries - 1] : NULL;
}

/* queue_record - the attempt's deliveries into the entry's history: one record per
 * endpoint tried, one attempt counted (a failover entry tries several in one attempt). */
static void queue_record(struct queue_attempt_run *run, int64_t now)
{
    const struct txn *t = run->t;
    unsigned attempts = run->e.attempts;
    if (t->n_deliveries == 0) {
        queue_entry_record(&run->e, now, run->e.endpoints[0], 0, t->reply.code, t->reply.esc,
                           t->reply.text);
        run->e.attempts = attempts + 1;
        return;
    }
    for (size_t i = 0; i < t->n_deliveries; i++) {
        const struct txn_delivery *td = &t->deliveries[i];
        const char *text = td->failure != NULL ? td->failure : td->reply.text;
        queue_entry_record(&run->e, now, td->name, td->status, td->reply.code, td->reply.esc, text);
    }
    run->e.attempts = attempts + 1;
}

/* queue_asked_sooner - was the entry asked to be tried again while this attempt ran (the
 * admin port, or the CLI, whose write the server must not undo)? The time asked for. */
static bool queue_asked_sooner(struct queue_attempt_run *run, int64_t now, int64_t *when)
{
    struct queue *q = run->q;
    if (run->item->retry_now) {
        *when = now;
        return true;
    }
    struct queue_entry cur;
    char why[256];
    bool asked = false;
    if (q->store->ops->read(q->store, QUEUE_ACTIVE, run->e.name, &cur, why, sizeof(why)) == 0 &&
        cur.next_ms != run->claimed_next) {
        *when = cur.next_ms < now ? now : cur.next_ms;
        asked = true;
    }
    queue_entry_free(&cur);
    return asked;
}

/* queue_bury - the entry becomes a dead letter, said in the log and the metrics. */
static void queue_bury(struct queue_attempt_run *run, int64_t now, const char *reason)
{
    struct queue *q = run->q;
    run->e.dead_ms = now;
    free(run->e.dead_reason);
    run->e.dead_reason = strdup(reason);
    if (run->e.dead_reason != NULL)
        queue_entry_clean(run->e.dead_reason);
    int rc = run->e.dead_reason != NULL ? q->store->ops->bury(q->store, &run->e) : SH_ENOMEM;
    if (rc != 0 && rc != SH_ENOTFOUND) {
        log_error("queue: entry %s cannot be moved to the dead letters: %s; tried again later",
                  run->e.name, sh_strerror(rc));
        run->item->next_ms = now + (int64_t)q->limits.initial_backoff_ms;
        return;
    }
    log_warn("queue: entry %s (txn id=%s, %u attempts) is a dead letter: %s", run->e.name,
             run->e.env.id, run->e.attempts, reason);
    stats_queue_dead(q->stats, run->e.endpoints[0]);
    queue_drop_item(q, run->item);
    run->item = NULL;
}

/* queue_on_attempt - delivery_done_fn of a background attempt: complete, bury or schedule. */
static void queue_on_attempt(void *arg, struct txn *t)
{
    struct queue_attempt_run *run = arg;
    struct queue *q = run->q;
    run->d = NULL;
    int64_t now = log_unix_ms();
    queue_record(run, now);
    const struct txn_delivery *last = queue_last(t);
    unsigned code = t->reply.code;
    const char *ep = run->e.endpoints[0];
    char reply[APP_REPLY_TEXT_MAX + 32];
    snprintf(reply, sizeof(reply), "%u %s %s", code, t->reply.esc, t->reply.text);
    if (code / 100 == 2) {
        int rc = q->store->ops->complete(q->store, run->e.name);
        log_info("queue: entry %s (txn id=%s) delivered to %s after %u attempt%s", run->e.name,
                 run->e.env.id, last != NULL ? last->name : ep, run->e.attempts,
                 run->e.attempts == 1 ? "" : "s");
        if (rc != 0)
            log_error("queue: entry %s delivered but cannot be removed: %s", run->e.name,
                      sh_strerror(rc));
        stats_queue_attempt(q->stats, ep, "delivered");
        queue_drop_item(q, run->item);
        run->item = NULL;
    } else if (code / 100 == 5) {
        stats_queue_attempt(q->stats, ep, "refused");
        queue_bury(run, now, reply);
    } else {
        bool has_ra = false;
        uint64_t ra = 0;
        for (size_t i = 0; i < t->n_deliveries; i++) {
            if (t->deliveries[i].has_retry_after && t->deliveries[i].retry_after_ms >= ra) {
                has_ra = true;
                ra = t->deliveries[i].retry_after_ms;
            }
        }
        uint32_t rnd = 0;
        uv_random(NULL, NULL, &rnd, sizeof(rnd), 0, NULL);
        int64_t next = 0;
        stats_queue_attempt(q->stats, ep, "deferred");
        if (!queue_schedule(&q->limits, &run->e, now, has_ra, ra, rnd, &next)) {
            char why[APP_REPLY_TEXT_MAX + 96];
            snprintf(why, sizeof(why), "expired after %" PRIu64 " ms; last: %s",
                     q->limits.max_age_ms, reply);
            queue_bury(run, now, why);
        } else {
            int64_t asked = 0;
            if (queue_asked_sooner(run, now, &asked) && asked < next)
                next = asked;
            run->e.next_ms = next;
            int rc = q->store->ops->fail(q->store, &run->e);
            log_info("queue: entry %s (txn id=%s) attempt %u to %s: %s; next in %" PRId64 " ms",
                     run->e.name, run->e.env.id, run->e.attempts, last != NULL ? last->name : ep,
                     reply, next - now);
            if (rc == SH_ENOTFOUND) { /* deleted meanwhile: it stays deleted */
                queue_drop_item(q, run->item);
                run->item = NULL;
            } else {
                if (rc != 0)
                    log_error("queue: entry %s cannot be written back: %s", run->e.name,
                              sh_strerror(rc));
                run->item->next_ms = next;
            }
        }
    }
    queue_run_free(run);
    if (!q->closing)
        queue_tick(q);
    queue_check_idle(q);
    queue_maybe_free(q);
}

/* queue_txn_of - the share of entry e as a transaction over its message, for delivery. */
static int queue_txn_of(const struct queue_entry *e, struct spool *message, struct txn **out)
{
    const struct envelope *env = &e->env;
    struct txn_facts facts = {env->id,          env->received_at_ms, env->client_address,
                              env->client_port, env->helo,           env->esmtp,
                              &env->tls};
    struct txn *t = NULL;
    int rc = txn_new(&facts, env->mail_from, &t);
    if (rc != 0) {
        spool_free(message);
        return rc;
    }
    t->spool = message;
    for (size_t i = 0; rc == 0 && i < env->n_rcpt; i++)
        rc = txn_add_rcpt(t, env->rcpt_to[i], -1);
    t->env.size = env->size;
    t->env.declared_size = env->declared_size;
    t->env.body = env->body;
    t->env.smtputf8 = env->smtputf8;
    t->env.chunked = env->chunked;
    t->body_ended = true;
    t->watch_boundary = false;    /* txn_boundary searches the file when a form is posted */
    t->watch_utf8 = e->body_utf8; /* the state is that of an empty body: valid, complete */
    if (rc == 0 && !digest_unhex(e->digest, t->body_digest)) /* the reader took only hex */
        rc = SH_EINVAL;
    if (rc != 0) {
        txn_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

/* queue_endpoint_index - the index of endpoint name in cfg, or -1. */
static long queue_endpoint_index(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_endpoints; i++) {
        if (strcmp(cfg->endpoints[i].name, name) == 0)
            return (long)i;
    }
    return -1;
}

/* queue_start_attempt - one attempt of item: read the entry, check it still fits the
 * configuration, deliver. false when it could not start (retried later, or buried). */
static bool queue_start_attempt(struct queue *q, struct queue_item *it, size_t slot)
{
    struct queue_attempt_run *run = calloc(1, sizeof(*run));
    if (run == NULL)
        return false;
    run->q = q;
    run->item = it;
    run->slot = slot;
    it->running = true;
    run->next = q->runs;
    if (q->runs != NULL)
        q->runs->prev = run;
    q->runs = run;
    q->n_runs++;
    q->flight[slot]++;
    struct spool *message = NULL;
    char why[256];
    int64_t now = log_unix_ms();
    int rc = q->store->ops->claim(q->store, it->name, &run->e, &message, why, sizeof(why));
    if (rc == SH_ENOTFOUND) { /* deleted by the CLI */
        queue_drop_item(q, it);
        run->item = NULL;
        queue_run_free(run);
        return false;
    }
    if (rc == SH_EINVAL) { /* damaged since it was written: not tried again until a human
                            * looks (the next start moves it to corrupt/) */
        log_error("queue: entry %s cannot be read: %s; it is set aside (moved to corrupt/ at "
                  "the next start)",
                  it->name, why);
        queue_drop_item(q, it);
        run->item = NULL;
        queue_run_free(run);
        return false;
    }
    if (rc != 0) {
        log_error("queue: entry %s cannot be read: %s; tried again later", it->name, why);
        it->next_ms = now + (int64_t)q->limits.initial_backoff_ms;
        queue_run_free(run);
        return false;
    }
    it->next_ms = run->e.next_ms;
    it->retry_now = false;
    run->claimed_next = run->e.next_ms;
    if (run->e.next_ms > now) { /* the store says later (the CLI, another writer) */
        spool_free(message);
        queue_run_free(run);
        return false;
    }
    run->cfg = NULL;
    struct delivery_context *ctx = q->hooks.acquire(q->hooks.arg, &run->cfg, &run->token);
    run->share.n_endpoints = run->e.n_endpoints;
    run->share.failover = run->e.failover;
    run->share.endpoints = calloc(run->e.n_endpoints, sizeof(*run->share.endpoints));
    const char *missing = NULL;
    for (size_t i = 0; run->share.endpoints != NULL && i < run->e.n_endpoints; i++) {
        long k = ctx != NULL ? queue_endpoint_index(run->cfg, run->e.endpoints[i]) : -1;
        if (k < 0 && missing == NULL)
            missing = run->e.endpoints[i];
        run->share.endpoints[i] = k < 0 ? 0 : (size_t)k;
    }
    if (ctx == NULL || run->share.endpoints == NULL ||
        (rc = queue_txn_of(&run->e, message, &run->t)) != 0) {
        if (rc == 0)
            spool_free(message);
        log_error("queue: entry %s: cannot start an attempt now; tried again later", it->name);
        it->next_ms = now + QUEUE_IDLE_TICK_MS;
        queue_run_free(run);
        return false;
    }
    if (missing != NULL) {
        char reason[160];
        snprintf(reason, sizeof(reason), "endpoint %s is not configured", missing);
        queue_bury(run, now, reason);
        queue_run_free(run);
        return false;
    }
    if (delivery_start_share(ctx, run->t, &run->share, queue_on_attempt, run, &run->d) != 0) {
        it->next_ms = now + QUEUE_IDLE_TICK_MS;
        queue_run_free(run);
        return false;
    }
    return true;
}

/* A tick's hold on the current configuration, taken when a breaker is first asked. */
struct queue_hold {
    struct delivery_context *ctx; /* its deliveries (breakers), NULL if none */
    const struct config *cfg;     /* its endpoints */
    void *token;                  /* released at the end of the tick */
    bool taken;                   /* acquired */
};

/* queue_refusing - does the breaker of endpoint name (in the current configuration) refuse
 * now? Asked for single-endpoint entries: a failover entry's attempt moves past an open
 * breaker to its next endpoint itself. */
static bool queue_refusing(struct queue *q, struct queue_hold *h, const char *name)
{
    if (!h->taken) {
        h->ctx = q->hooks.acquire(q->hooks.arg, &h->cfg, &h->token);
        h->taken = true;
    }
    long k = h->ctx != NULL ? queue_endpoint_index(h->cfg, name) : -1;
    return k >= 0 && delivery_endpoint_refusing(h->ctx, (size_t)k);
}

/* queue_saturated - does every endpoint of the configuration have max_in_flight attempts
 * out? Then nothing more can start until one answers (and the next tick comes with it). */
static bool queue_saturated(const struct queue *q)
{
    size_t full = 0;
    for (size_t i = 0; i < q->n_flight; i++)
        full += q->flight[i] >= q->limits.max_in_flight;
    return full >= q->cfg->n_endpoints;
}

/* on_timer - the earliest entry is due. */
static void on_timer(uv_timer_t *timer)
{
    queue_tick(timer->data);
}

/* queue_tick - start what is due, then arm the timer for the next one. */
static void queue_tick(struct queue *q)
{
    if (q->stopped || q->closing)
        return;
    int64_t now = log_unix_ms();
    int64_t soonest = INT64_MAX;
    struct queue_hold hold = {NULL, NULL, NULL, false};
    for (size_t i = 0; i < q->n_items; i++) {
        struct queue_item *it = q->items[i];
        if (it->running)
            continue;
        if (it->next_ms > now) {
            if (it->next_ms < soonest)
                soonest = it->next_ms;
            continue;
        }
        long slot = queue_flight_slot(q, it->endpoint);
        if (slot < 0 || q->flight[slot] >= q->limits.max_in_flight ||
            (!it->failover && queue_refusing(q, &hold, it->endpoint))) {
            if (now + QUEUE_IDLE_TICK_MS < soonest)
                soonest = now + QUEUE_IDLE_TICK_MS;
            if (queue_saturated(q))
                break; /* a large backlog is not walked for nothing after each answer */
            continue;
        }
        size_t before = q->n_items;
        queue_start_attempt(q, it, (size_t)slot);
        if (q->n_items < before)
            i--; /* the record at i went (deleted, buried): another took its place */
        else if (!it->running && it->next_ms < soonest)
            soonest = it->next_ms;
    }
    if (hold.token != NULL && q->hooks.release != NULL)
        q->hooks.release(q->hooks.arg, hold.token);
    if (soonest == INT64_MAX)
        uv_timer_stop(&q->timer);
    else
        uv_timer_start(&q->timer, on_timer, soonest > now ? (uint64_t)(soonest - now) : 0, 0);
}

/* on_rescan - the slow reconciliation with the store. */
static void on_rescan(uv_timer_t *timer)
{
    struct queue *q = timer->data;
    queue_rescan(q, false);
    queue_tick(q);
}

/* on_ctl - a poke from the CLI: each file in ctl/ names an entry it changed. */
static void on_ctl(uv_fs_event_t *h, const char *filename, int events, int status)
{
    struct queue *q = h->data;
    (void)filename;
    (void)events;
    if (status < 0 || q->closing)
        return;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", q->directory, QUEUE_CTL);
    uv_fs_t req;
    if (uv_fs_scandir(NULL, &req, path, 0, NULL) < 0) {
        uv_fs_req_cleanup(&req);
        return;
    }
    uv_dirent_t ent;
    while (uv_fs_scandir_next(&req, &ent) != UV_EOF) {
        char file[PATH_MAX + 256];
        snprintf(file, sizeof(file), "%s/%s", path, ent.name);
        unlink(file);
        if (!queue_entry_name_ok(ent.name))
            continue;
        struct queue_entry e;
        char why[256];
        size_t pos = 0;
        int rc = q->store->ops->read(q->store, QUEUE_ACTIVE, ent.name, &e, why, sizeof(why));
        struct queue_item *it = queue_find(q, ent.name, &pos);
        if (rc == 0)
            queue_upsert(q, &e);
        else if (rc == SH_ENOTFOUND && it != NULL && !it->running)
            queue_drop(q, pos);
        queue_entry_free(&e);
    }
    uv_fs_req_cleanup(&req);
    queue_tick(q);
}

/* queue_poke - see queue.h. */
void queue_poke(const char *dir, const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, QUEUE_CTL);
    mkdir(path, 0750);
    snprintf(path, sizeof(path), "%s/%s/%s", dir, QUEUE_CTL, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0640);
    if (fd >= 0)
        close(fd);
}

/* ---- the queue -------------------------------------------------------------------------- */

/* queue_configure - see queue.h. */
void queue_configure(struct queue *q, const struct config *cfg)
{
    q->cfg = cfg;
    q->limits = cfg->queue;
    q->limits.directory = q->directory;
    if (strcmp(cfg->queue.directory, q->directory) != 0)
        log_warn("queue.directory: a reload cannot move the queue; it stays in %s until a "
                 "restart",
                 q->directory);
    if (!q->closing)
        queue_tick(q);
}

/* queue_lock - <dir>/lock, locked for this process alone: two servers on one queue would
 * deliver every entry twice and undo each other's writes. The descriptor, or -1 with err. */
static int queue_lock(const char *dir, char *err, size_t errlen)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, errlen, "%s is in use by another smtphook (%s is locked)", dir, path);
        close(fd);
        return -1;
    }
    return fd;
}

/* queue_open - see queue.h. */
int queue_open(uv_loop_t *loop, const struct config *cfg, const struct queue_hooks *hooks,
               struct queue **out)
{
    *out = NULL;
    struct queue *q = calloc(1, sizeof(*q));
    if (q == NULL || (q->directory = strdup(cfg->queue.directory)) == NULL) {
        free(q);
        log_error("queue: out of memory");
        return SH_ENOMEM;
    }
    char err[PATH_MAX + 128];
    q->lock_fd = queue_lock(q->directory, err, sizeof(err));
    if (q->lock_fd < 0) {
        log_error("queue.directory: %s", err);
        free(q->directory);
        free(q);
        return SH_EIO;
    }
    int rc = queue_dir_open(q->directory, true, &q->store, err, sizeof(err));
    if (rc != 0) {
        log_error("queue.directory: %s", err);
        close(q->lock_fd);
        free(q->directory);
        free(q);
        return rc;
    }
    q->loop = loop;
    q->hooks = *hooks;
    q->pending_tail = &q->pending;
    q->cfg = cfg;
    q->limits = cfg->queue;
    q->limits.directory = q->directory;
    queue_rescan(q, true);
    uv_timer_init(loop, &q->timer);
    uv_timer_init(loop, &q->rescan);
    q->timer.data = q->rescan.data = q;
    q->handles = 2;
    uv_timer_start(&q->rescan, on_rescan, QUEUE_RESCAN_MS, QUEUE_RESCAN_MS);
    char ctl[PATH_MAX];
    snprintf(ctl, sizeof(ctl), "%s/%s", q->directory, QUEUE_CTL);
    if (mkdir(ctl, 0750) != 0 && errno != EEXIST)
        log_warn("queue: %s: %s; CLI changes are seen within %u s", ctl, strerror(errno),
                 QUEUE_RESCAN_MS / 1000);
    uv_fs_event_init(loop, &q->ctl);
    q->ctl.data = q;
    q->handles++;
    q->ctl_on = uv_fs_event_start(&q->ctl, on_ctl, ctl, 0) == 0;
    log_info("queue in %s: %zu entr%s waiting", q->directory, q->n_items,
             q->n_items == 1 ? "y" : "ies");
    *out = q;
    return 0;
}

/* queue_set_stats - see queue.h. */
void queue_set_stats(struct queue *q, struct stats *st)
{
    q->stats = st;
}

/* queue_retry - see queue.h. The store's entry is due now too, so that a restart agrees. */
int queue_retry(struct queue *q, const char *name)
{
    struct queue_item *it = queue_find(q, name, NULL);
    if (it == NULL)
        return SH_ENOTFOUND;
    if (it->running) {
        it->retry_now = true; /* once the attempt under way has failed */
    } else {
        struct queue_entry e;
        char why[256];
        int64_t now = log_unix_ms();
        if (q->store->ops->read(q->store, QUEUE_ACTIVE, name, &e, why, sizeof(why)) == 0) {
            e.next_ms = now;
            q->store->ops->fail(q->store, &e);
        }
        queue_entry_free(&e);
        it->next_ms = now;
    }
    queue_tick(q);
    return 0;
}

/* queue_store_of - see queue.h. */
struct queue_store *queue_store_of(struct queue *q)
{
    return q->store;
}

/* queue_collect - see queue.h: per endpoint of the configuration (those no entry waits
 * for show 0), and the oldest entry's age. */
void queue_collect(struct queue *q, struct stats *st)
{
    int64_t now = log_unix_ms();
    int64_t oldest = now;
    for (size_t e = 0; e < q->cfg->n_endpoints; e++) {
        const char *name = q->cfg->endpoints[e].name;
        uint64_t n = 0, bytes = 0;
        for (size_t i = 0; i < q->n_items; i++) {
            if (strcmp(q->items[i]->endpoint, name) == 0) {
                n++;
                bytes += q->items[i]->bytes;
            }
        }
        stats_queue_depth(st, name, n, bytes);
    }
    for (size_t i = 0; i < q->n_items; i++) {
        if (q->items[i]->queued_ms < oldest)
            oldest = q->items[i]->queued_ms;
    }
    stats_queue_oldest(st, (double)(now - oldest) / 1000.0);
}

/* queue_stop - see queue.h. */
void queue_stop(struct queue *q)
{
    if (q == NULL)
        return;
    q->stopped = true;
    uv_timer_stop(&q->timer);
}

/* queue_check_idle - a stopped queue with nothing running tells the server. */
static void queue_check_idle(struct queue *q)
{
    if (q->stopped && !q->closing && queue_busy(q) == 0 && q->hooks.idle != NULL)
        q->hooks.idle(q->hooks.arg);
}

/* queue_busy - see queue.h. */
size_t queue_busy(const struct queue *q)
{
    if (q == NULL)
        return 0;
    size_t n = q->n_runs + (q->writing ? 1 : 0);
    for (const struct queue_ticket *tk = q->pending; tk != NULL; tk = tk->next)
        n++;
    return n;
}

/* on_closed - one of the queue's handles is closed. */
static void on_closed(uv_handle_t *h)
{
    struct queue *q = h->data;
    q->handles--;
    queue_maybe_free(q);
}

/* queue_maybe_free - once closing, with every handle closed and no write on the worker,
 * the queue goes. */
static void queue_maybe_free(struct queue *q)
{
    if (!q->closing || q->handles > 0 || q->writing)
        return;
    while (q->pending != NULL) { /* never written: their senders had no answer */
        struct queue_ticket *tk = q->pending;
        q->pending = tk->next;
        if (tk->done != NULL)
            tk->done(tk->arg, tk->t, SH_EIO);
        else
            txn_free(tk->t);
        queue_ticket_free(tk);
    }
    for (size_t i = 0; i < q->n_items; i++)
        queue_item_free(q->items[i]);
    free(q->items);
    for (size_t i = 0; i < q->n_flight; i++)
        free(q->flight_names[i]);
    free(q->flight_names);
    free(q->flight);
    q->store->ops->close(q->store);
    close(q->lock_fd); /* the lock goes with it */
    free(q->directory);
    free(q);
}

/* queue_close - see queue.h. */
void queue_close(struct queue *q)
{
    if (q == NULL || q->closing)
        return;
    q->closing = true;
    q->stopped = true;
    while (q->runs != NULL) {
        struct queue_attempt_run *run = q->runs;
        if (run->d != NULL)
            delivery_cancel(run->d);
        run->d = NULL;
        queue_run_free(run);
    }
    uv_close((uv_handle_t *)&q->timer, on_closed);
    uv_close((uv_handle_t *)&q->rescan, on_closed);
    if (q->ctl_on)
        uv_fs_event_stop(&q->ctl);
    uv_close((uv_handle_t *)&q->ctl, on_closed);
}
