/* stats.h - smtphook's own metrics, for the admin port's /metrics (metrics.h does the
 * registry and the text format). The modules report what happens through these calls; each
 * takes a NULL stats (no admin port) and then does nothing, so callers never branch.
 *
 *   smtphook_build_info{version}                     1
 *   smtphook_connections_open                        gauge (from the server at render time)
 *   smtphook_connections_accepted_total              counter
 *   smtphook_connections_refused_total{cause}        too_many, rate, untrusted_proxy,
 *                                                    stopping, bad_proxy_header,
 *                                                    proxy_timeout
 *   smtphook_connections_dropped_total{cause}        idle_timeout, command_timeout,
 *                                                    data_too_slow, junk_commands,
 *                                                    too_many_errors, tls_handshake_timeout
 *   smtphook_rate_limited_total{kind}                messages, recipients (451 4.7.1)
 *   smtphook_smtp_replies_total{command,class}       the first reply to each command, by
 *                                                    class 2xx/3xx/4xx/5xx ("DATA_END" for the
 *                                                    reply after the final dot or LAST chunk)
 *   smtphook_messages_received_total                 complete messages handed to delivery
 *   smtphook_received_bytes_total                    their bytes
 *   smtphook_message_size_bytes                      histogram of their sizes
 *   smtphook_transactions_total{outcome}             delivered, deferred (4xx), rejected (5xx)
 *   smtphook_webhook_requests_total{endpoint,status} 2xx/3xx/4xx/5xx, or "error" (no answer)
 *   smtphook_webhook_request_duration_seconds{endpoint}  histogram
 *   smtphook_tls_handshakes_total{version}           completed inbound handshakes
 *   smtphook_tls_handshake_failures_total            failed ones
 *   smtphook_certificate_expiry_timestamp_seconds{index}  gauge: notAfter of each certificate
 */
#ifndef SMTPHOOK_STATS_H
#define SMTPHOOK_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smtphook/buf.h"
#include "smtphook/config.h"
#include "smtphook/metrics.h"
#include "smtphook/smtp_cmd.h"

struct stats;

/* stats_new - the metrics of a server with cfg's endpoints. 0 or SH_ENOMEM. */
int stats_new(const struct config *cfg, struct stats **out);

/* stats_free - release; NULL is ignored. */
void stats_free(struct stats *st);

/* stats_render - the Prometheus text of every metric into out; collect (may be NULL) fills
 * the gauges known only to the caller first (stats_set_*). 0 or SH_ENOMEM. */
int stats_render(struct stats *st, void (*collect)(void *arg, struct stats *st), void *arg,
                 struct buf *out);

/* stats_set_open - the connections open now (a collector calls it). */
void stats_set_open(struct stats *st, unsigned n);

/* stats_set_expiry - certificate index expires at unix_s (a collector calls it, after
 * stats_clear_expiry, for every certificate in use). */
void stats_set_expiry(struct stats *st, size_t index, int64_t unix_s);

/* stats_clear_expiry - forget every certificate's expiry: those of certificates no longer
 * in use are not written again. */
void stats_clear_expiry(struct stats *st);

/* stats_accepted - a connection was accepted and greeted (or its TLS handshake began). */
void stats_accepted(struct stats *st);

/* stats_refused - a connection was refused; cause is one of the documented labels. */
void stats_refused(struct stats *st, const char *cause);

/* stats_dropped - a session was ended for cause (one of the documented labels). */
void stats_dropped(struct stats *st, const char *cause);

/* stats_rate_limited - a MAIL (messages) or RCPT (recipients) was refused for its rate. */
void stats_rate_limited(struct stats *st, const char *kind);

/* stats_reply - the reply code a command got (SMTP_VERB_UNKNOWN: an unknown command;
 * data_end: the reply after the final dot or the LAST chunk). */
void stats_reply(struct stats *st, enum smtp_verb verb, bool data_end, unsigned code);

/* stats_message - a complete message of bytes went to delivery. */
void stats_message(struct stats *st, uint64_t bytes);

/* stats_transaction - a transaction ended with the reply code. */
void stats_transaction(struct stats *st, unsigned code);

/* stats_webhook - one request to the endpoint named endpoint ended: status 0 without an
 * answer. */
void stats_webhook(struct stats *st, const char *endpoint, long status, double seconds);

/* stats_tls - an inbound handshake ended: version ("TLSv1.3") when it succeeded, NULL when
 * it failed. */
void stats_tls(struct stats *st, const char *version);

/* stats_queue_depth - entries and their bytes queued for endpoint now (a collector). */
void stats_queue_depth(struct stats *st, const char *endpoint, uint64_t entries, uint64_t bytes);

/* stats_queue_oldest - the oldest queued entry's age, in seconds (a collector). */
void stats_queue_oldest(struct stats *st, double seconds);

/* stats_queue_attempt - one background attempt for endpoint ended: "delivered", "deferred"
 * or "refused". */
void stats_queue_attempt(struct stats *st, const char *endpoint, const char *outcome);

/* stats_queue_dead - an entry for endpoint became a dead letter. */
void stats_queue_dead(struct stats *st, const char *endpoint);

/* stats_queue_flush - one batch of queue writes flushed; written of its messages stored. */
void stats_queue_flush(struct stats *st, size_t written);

#endif
