/* retry.h - when to try an endpoint again: backoff with jitter, Retry-After, the deadline.
 *
 * Pure: time and randomness come from the caller, so every decision is unit-tested. The
 * delivery asks retry_next() after each temporary failure; it answers how long to wait, or
 * that no retry may start (attempts used up, or it could not finish before the transaction's
 * deadline). */
#ifndef SMTPHOOK_RETRY_H
#define SMTPHOOK_RETRY_H

#include <stdbool.h>
#include <stdint.h>

#include "smtphook/config.h"

#define RETRY_MIN_ATTEMPT_MS 100u /* an attempt is never expected to take less than this */

/* What retry_next() knows about the attempt that just failed. */
struct retry_state {
    unsigned attempts;       /* attempts made so far (>= 1) */
    uint64_t now_ms;         /* current time (any monotonic clock, same as deadline_ms) */
    uint64_t deadline_ms;    /* the transaction's deadline on that clock */
    uint64_t last_took_ms;   /* how long the failed attempt took */
    bool has_retry_after;    /* the response carried a usable Retry-After */
    uint64_t retry_after_ms; /* its value as a delay from now */
    uint32_t random;         /* a fresh random number, for the jitter */
};

/* retry_backoff_cap - min(max_backoff, initial * 2^(attempts-1)) without overflow: the
 * longest wait after attempt number attempts (the queue's schedule grows the same way). */
uint64_t retry_backoff_cap(const struct config_retry *cfg, unsigned attempts);

/* retry_backoff - the wait before attempt number attempts + 1 without Retry-After:
 * "equal jitter" - half of min(max_backoff, initial * 2^(attempts-1)) plus a random share
 * of the other half, so concurrent senders spread out yet every wait is at least half. */
uint64_t retry_backoff(const struct config_retry *cfg, unsigned attempts, uint32_t random);

/* retry_next - true with *delay_ms when another attempt may start: attempts < max_attempts,
 * and the wait (Retry-After when given, else retry_backoff) plus the expected duration of
 * the attempt (max(last_took_ms, RETRY_MIN_ATTEMPT_MS)) ends before the deadline. A
 * Retry-After longer than max_backoff_ms is still honoured when it fits: the app asked for
 * it. */
bool retry_next(const struct config_retry *cfg, const struct retry_state *st, uint64_t *delay_ms);

/* retry_after_parse - an HTTP Retry-After value (RFC 9110 §10.2.3: delay-seconds or an
 * HTTP-date, IMF-fixdate and the two obsolete forms of §5.6.7) as a delay in milliseconds
 * from now_unix_ms (a date in the past is 0). false when the value is neither. */
bool retry_after_parse(const char *value, size_t len, int64_t now_unix_ms, uint64_t *delay_ms);

#endif
