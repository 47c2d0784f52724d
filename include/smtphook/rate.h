/* rate.h - per-client rate limits as token buckets, kept as one time per bucket (the generic
 * cell rate algorithm): a client may do `per_minute` things in any minute, in a burst or
 * spread out; each takes 60000 / per_minute ms of credit, and credit comes back as time
 * passes. Pure: the caller passes the time. */
#ifndef SMTPHOOK_RATE_H
#define SMTPHOOK_RATE_H

#include <stdbool.h>
#include <stdint.h>

/* What is counted. */
enum rate_kind {
    RATE_CONNECTIONS = 0, /* connections opened */
    RATE_MESSAGES,        /* transactions begun (MAIL) */
    RATE_RECIPIENTS,      /* recipients given (RCPT) */
    RATE_KINDS,
};

/* rate_take - one more of a kind for a client whose bucket is *tat (0 for a new client):
 * true and *tat advanced when per_minute allows it at now_ms, else false and *tat unchanged.
 * per_minute 0: no limit (always true). */
bool rate_take(uint64_t *tat, unsigned per_minute, uint64_t now_ms);

/* rate_idle - has the bucket all its credit back at now_ms (nothing left to remember)? */
bool rate_idle(uint64_t tat, uint64_t now_ms);

#endif
