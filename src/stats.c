/* stats.c - smtphook's metrics on the metrics.h registry (see stats.h). Every family is
 * registered at start; series with fixed labels (an endpoint and its status classes) are
 * made then too, so reporting is a pointer and an add. */
#include "smtphook/stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtphook/error.h"

#define STATS_CLASSES 5                     /* 2xx 3xx 4xx 5xx error */
#define STATS_SEED    0x736d747068756b31ull /* label values are ours: any fixed seed will do */

static const char *const stats_classes[STATS_CLASSES] = {"2xx", "3xx", "4xx", "5xx", "error"};

/* Message sizes: 1 KiB to 64 MiB by powers of four. */
static const double stats_size_buckets[] = {1024,    4096,    16384,    65536,   262144,
                                            1048576, 4194304, 16777216, 67108864};
/* Webhook latency: 5 ms to 60 s. */
static const double stats_latency_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                               1,     2.5,  5,     10,   30,  60};

struct stats {
    struct metrics *m;
    struct metric_family *open, *accepted, *refused, *replies, *messages, *bytes, *sizes;
    struct metric_family *transactions, *requests, *duration, *handshakes, *tls_failures;
    struct metric_family *expiry, *dropped, *rate_limited;
    struct metric_family *q_entries, *q_bytes, *q_oldest, *q_attempts, *q_dead;
    struct metric_series *q_oldest_s, *q_flushes_s, *q_written_s;
    struct metric_family *q_flushes, *q_written;
    struct metric_series *accepted_s, *messages_s, *bytes_s, *sizes_s, *tls_failures_s;
    struct metric_series *outcome[3]; /* delivered, deferred, rejected */
};

#define STATS_LABELS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* stats_register - every family; 0 or an error. */
static int stats_register(struct stats *st)
{
    struct metrics *m = st->m;
    struct metric_family *info;
    int rc = metrics_gauge(m, "smtphook_build_info", "smtphook's version (always 1).",
                           STATS_LABELS("version"), &info);
    if (rc == 0)
        metrics_set(metrics_series(m, info, STATS_LABELS(SMTPHOOK_VERSION)), 1);
    if (rc == 0)
        rc = metrics_gauge(m, "smtphook_connections_open", "SMTP connections open now.", NULL,
                           &st->open);
    if (rc == 0)
        rc = metrics_counter(m, "smtphook_connections_accepted_total", "SMTP connections accepted.",
                             NULL, &st->accepted);
    if (rc == 0)
        rc = metrics_counter(m, "smtphook_connections_refused_total",
                             "SMTP connections refused, by cause.", STATS_LABELS("cause"),
                             &st->refused);
    if (rc == 0)
        rc = metrics_counter(m, "smtphook_connections_dropped_total",
                             "SMTP sessions ended by smtphook, by cause.", STATS_LABELS("cause"),
                             &st->dropped);
    if (rc == 0)
        rc = metrics_counter(m, "smtphook_rate_limited_total",
                             "MAIL and RCPT commands refused for the client's rate, by kind.",
                             STATS_LABELS("kind"), &st->rate_limited);
    if (rc == 0)
        rc = metrics_counter(m, "smtphook_smtp_replies_total",
                             "Replies to SMTP commands, by command and reply class.",
                             STATS_LABELS("command", "class"), &st->replies);
    if (rc == 0)
        rc = metrics_counter(m, "smtphook_messages_received_total",
                             "Complete messages received and handed to delivery.", NULL,
                             &st->messages);
    if (rc == 0)
        rc = metrics_counter(m, "smtphook_received_bytes_total", "Bytes of the messages received.",
                             NULL, &st->bytes);
    if (rc == 0)
        rc = metrics_histogram(m, "smtphook_message_size_bytes", "Sizes of the messages received.",
                               NULL, stats_size_buckets,
                               sizeof(stats_size_buckets) / sizeof(stats_size_buckets[0]),
                               &st->sizes);
    if (rc == 0)
        rc = metrics_counter(m, "smtphook_transactions_total",
                             "Transactions by outcome: delivered (2xx), deferred (4xx), "
                             "rejected (5xx).",
                             STATS_LABELS("outcome"), &st->transactions);
    if (rc == 0)
        rc = metrics_counter(m, "smtphook_webhook_requests_total",
                             "Webhook requests by endpoint and status class (error: no answer).",
                             STATS_LABELS("endpoint", "status"), &st->requests);
    if (rc == 0)
        rc = metrics_histogram(m, "smtphook_webhook_request_duration_seconds",
                               "Webhook request durations by endpoint.", STATS_LABELS("endpoint"),
                               stats_latency_buckets,
                               sizeof(stats_latency_buckets) / sizeof(stats_latency_buckets[0]),
                               &st->duration);
    if (rc == 0)
        rc = metrics_counter(m, "smtphook_tls_handshakes_total",
                             "Inbound TLS handshakes completed, by protocol version.",
                             STATS_LABELS("version"), &st->handshakes);
    if (rc == 0)
        rc = metrics_counter(m, "smtphook_tls_handshake_failures_total",
                             "Inbound TLS handshakes that failed.", NULL, &st->tls_failures);
    if (rc == 0)
        rc = metrics_gauge(m, "smtphook_certificate_expiry_timestamp_seconds",
                           "When each configured certificate expires (Unix time).",
                           STATS_LABELS("index"), &st->expiry);
    if (rc == 0)
        rc = metrics_gauge(m, "smtphook_queue_entries",
                           "Queued entries waiting for delivery, by (first) endpoint.",
                           STATS_LABELS("endpoint"), &st->q_entries);
    if (rc == 0)
        rc = metrics_gauge(m, "smtphook_queue_bytes",
                           "Message bytes of the queued entries, by (first) endpoint.",
                           STATS_LABELS("endpoint"), &st->q_bytes);
    if (rc == 0)
        rc = metrics_gauge(m, "smtphook_queue_oldest_entry_age_seconds",
                           "Age of the oldest queued entry (0 when the queue is empty).", NULL,
                           &st->q_oldest);
    if (rc == 0)
        rc = metrics_counter(m, "smtphook_queue_attempts_total",
                             "Background delivery attempts of queued entries, by endpoint and "
                             "outcome (delivered, deferred, refused).",
                             STATS_LABELS("endpoint", "outcome"), &st->q_attempts);
    if (rc == 0)
        rc = metrics_counter(m, "smtphook_queue_flushes_total",
                             "Flushes to disk of queue writes (one covers every message written "
                             "since the previous one).",
                             NULL, &st->q_flushes);
    if (rc == 0)
        rc = metrics_counter(m, "smtphook_queue_written_messages_total",
                             "Messages written to the queue (then answered 250).", NULL,
                             &st->q_written);
    if (rc == 0)
        rc = metrics_counter(m, "smtphook_queue_dead_letters_total",
                             "Queued entries given up (refused, or too old), by endpoint.",
                             STATS_LABELS("endpoint"), &st->q_dead);
    return rc;
}

/* stats_new - see stats.h. */
int stats_new(const struct config *cfg, struct stats **out)
{
    *out = NULL;
    struct stats *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return SH_ENOMEM;
    int rc = metrics_new(STATS_SEED, &st->m);
    if (rc == 0)
        rc = stats_register(st);
    if (rc != 0) {
        stats_free(st);
        return rc;
    }
    struct metrics *m = st->m;
    st->accepted_s = metrics_series(m, st->accepted, NULL);
    st->messages_s = metrics_series(m, st->messages, NULL);
    st->bytes_s = metrics_series(m, st->bytes, NULL);
    st->sizes_s = metrics_series(m, st->sizes, NULL);
    st->tls_failures_s = metrics_series(m, st->tls_failures, NULL);
    st->q_oldest_s = cfg->uses_queue ? metrics_series(m, st->q_oldest, NULL) : NULL;
    st->q_flushes_s = metrics_series(m, st->q_flushes, NULL);
    st->q_written_s = metrics_series(m, st->q_written, NULL);
    static const char *const outcomes[3] = {"delivered", "deferred", "rejected"};
    for (size_t i = 0; i < 3; i++)
        st->outcome[i] = metrics_series(m, st->transactions, STATS_LABELS(outcomes[i]));
    for (size_t e = 0; e < cfg->n_endpoints; e++) { /* shown at 0 from the start */
        const char *name = cfg->endpoints[e].name;
        for (size_t k = 0; k < STATS_CLASSES; k++)
            metrics_series(m, st->requests, STATS_LABELS(name, stats_classes[k]));
        metrics_series(m, st->duration, STATS_LABELS(name));
        if (cfg->uses_queue)
            metrics_series(m, st->q_dead, STATS_LABELS(name));
    }
    *out = st;
    return 0;
}

/* stats_free - see stats.h. */
void stats_free(struct stats *st)
{
    if (st == NULL)
        return;
    metrics_free(st->m);
    free(st);
}

/* The caller's collector, for the duration of one render. */
struct stats_collect {
    struct stats *st;
    void (*fn)(void *arg, struct stats *st);
    void *arg;
};

/* stats_render - see stats.h. */
int stats_render(struct stats *st, void (*collect)(void *arg, struct stats *st), void *arg,
                 struct buf *out)
{
    if (st == NULL)
        return 0;
    if (collect != NULL)
        collect(arg, st);
    return metrics_render(st->m, out);
}

/* stats_set_open - see stats.h. */
void stats_set_open(struct stats *st, unsigned n)
{
    if (st != NULL)
        metrics_set(metrics_series(st->m, st->open, NULL), n);
}

/* stats_set_expiry - see stats.h. */
void stats_set_expiry(struct stats *st, size_t index, int64_t unix_s)
{
    if (st == NULL)
        return;
    char label[24];
    snprintf(label, sizeof(label), "%zu", index);
    metrics_set(metrics_series(st->m, st->expiry, STATS_LABELS(label)), (double)unix_s);
}

/* stats_clear_expiry - see stats.h. */
void stats_clear_expiry(struct stats *st)
{
    if (st != NULL)
        metrics_clear(st->expiry);
}

/* stats_accepted - see stats.h. */
void stats_accepted(struct stats *st)
{
    if (st != NULL)
        metrics_inc(st->accepted_s);
}

/* stats_refused - see stats.h. */
void stats_refused(struct stats *st, const char *cause)
{
    if (st != NULL)
        metrics_inc(metrics_series(st->m, st->refused, STATS_LABELS(cause)));
}

/* stats_dropped - see stats.h. */
void stats_dropped(struct stats *st, const char *cause)
{
    if (st != NULL)
        metrics_inc(metrics_series(st->m, st->dropped, STATS_LABELS(cause)));
}

/* stats_rate_limited - see stats.h. */
void stats_rate_limited(struct stats *st, const char *kind)
{
    if (st != NULL)
        metrics_inc(metrics_series(st->m, st->rate_limited, STATS_LABELS(kind)));
}

/* stats_class - "2xx" ... "5xx" of a reply or status code, "error" otherwise. */
static const char *stats_class(long code)
{
    long c = code / 100;
    return c >= 2 && c <= 5 ? stats_classes[c - 2] : stats_classes[STATS_CLASSES - 1];
}

/* stats_reply - see stats.h. */
void stats_reply(struct stats *st, enum smtp_verb verb, bool data_end, unsigned code)
{
    if (st == NULL)
        return;
    const char *cmd = data_end                    ? "DATA_END"
                      : verb == SMTP_VERB_UNKNOWN ? "unknown"
                                                  : smtp_cmd_verb_name(verb);
    metrics_inc(metrics_series(st->m, st->replies, STATS_LABELS(cmd, stats_class(code))));
}

/* stats_message - see stats.h. */
void stats_message(struct stats *st, uint64_t bytes)
{
    if (st == NULL)
        return;
    metrics_inc(st->messages_s);
    metrics_add(st->bytes_s, (double)bytes);
    metrics_observe(st->sizes_s, (double)bytes);
}

/* stats_transaction - see stats.h. */
void stats_transaction(struct stats *st, unsigned code)
{
    if (st == NULL)
        return;
    metrics_inc(st->outcome[code < 400 ? 0 : code < 500 ? 1 : 2]);
}

/* stats_webhook - see stats.h. The configured endpoints' series exist from the start; one
 * a reload adds is made at its first request. */
void stats_webhook(struct stats *st, const char *endpoint, long status, double seconds)
{
    if (st == NULL)
        return;
    metrics_inc(metrics_series(st->m, st->requests, STATS_LABELS(endpoint, stats_class(status))));
    metrics_observe(metrics_series(st->m, st->duration, STATS_LABELS(endpoint)), seconds);
}

/* stats_tls - see stats.h. */
void stats_tls(struct stats *st, const char *version)
{
    if (st == NULL)
        return;
    if (version == NULL)
        metrics_inc(st->tls_failures_s);
    else
        metrics_inc(metrics_series(st->m, st->handshakes, STATS_LABELS(version)));
}

/* stats_queue_depth - see stats.h. */
void stats_queue_depth(struct stats *st, const char *endpoint, uint64_t entries, uint64_t bytes)
{
    if (st == NULL)
        return;
    metrics_set(metrics_series(st->m, st->q_entries, STATS_LABELS(endpoint)), (double)entries);
    metrics_set(metrics_series(st->m, st->q_bytes, STATS_LABELS(endpoint)), (double)bytes);
}

/* stats_queue_oldest - see stats.h. */
void stats_queue_oldest(struct stats *st, double seconds)
{
    if (st == NULL)
        return;
    if (st->q_oldest_s == NULL)
        st->q_oldest_s = metrics_series(st->m, st->q_oldest, NULL);
    metrics_set(st->q_oldest_s, seconds);
}

/* stats_queue_attempt - see stats.h. */
void stats_queue_attempt(struct stats *st, const char *endpoint, const char *outcome)
{
    if (st == NULL)
        return;
    metrics_inc(metrics_series(st->m, st->q_attempts, STATS_LABELS(endpoint, outcome)));
}

/* stats_queue_dead - see stats.h. */
void stats_queue_dead(struct stats *st, const char *endpoint)
{
    if (st == NULL)
        return;
    metrics_inc(metrics_series(st->m, st->q_dead, STATS_LABELS(endpoint)));
}

/* stats_queue_flush - see stats.h. */
void stats_queue_flush(struct stats *st, size_t written)
{
    if (st == NULL)
        return;
    metrics_inc(st->q_flushes_s);
    metrics_add(st->q_written_s, (double)written);
}
