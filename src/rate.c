/* rate.c - GCRA token buckets (see rate.h). tat is the bucket's theoretical arrival time: the
 * moment all credit taken so far has come back. A request is allowed while that lies at most
 * a minute (less one request's share) ahead of now. */
#include "smtphook/rate.h"

#define RATE_WINDOW_MS 60000u

/* rate_take - see rate.h. */
bool rate_take(uint64_t *tat, unsigned per_minute, uint64_t now_ms)
{
    if (per_minute == 0)
        return true;
    uint64_t interval = RATE_WINDOW_MS / per_minute; /* credit one request takes */
    if (interval == 0)
        interval = 1;
    uint64_t tolerance = RATE_WINDOW_MS - interval; /* how far ahead tat may run */
    uint64_t t = *tat > now_ms ? *tat : now_ms;
    if (t - now_ms > tolerance)
        return false;
    *tat = t + interval;
    return true;
}

/* rate_idle - see rate.h. */
bool rate_idle(uint64_t tat, uint64_t now_ms)
{
    return tat <= now_ms;
}
