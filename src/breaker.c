/* breaker.c - the circuit breaker of one endpoint (see breaker.h for the states).
 *
 * Pure: the caller passes the time; nothing here logs, the caller logs what changed.
 * Must not include libuv, curl, OpenSSL or jansson. */
#include "smtphook/breaker.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One row per state, for logs and metrics. */
static const char *const state_names[] = {
    [BREAKER_CLOSED] = "closed",
    [BREAKER_OPEN] = "open",
    [BREAKER_HALF_OPEN] = "half-open",
};

/* disabled - a breaker configured with failures 0 never opens. */
static bool disabled(const struct breaker *b)
{
    return b->cfg == NULL || b->cfg->failures == 0;
}

/* elapsed - now_ms - since_ms, or 0 when the clock reads earlier than since_ms. */
static uint64_t elapsed(uint64_t now_ms, uint64_t since_ms)
{
    return now_ms > since_ms ? now_ms - since_ms : 0;
}

/* open_at - to OPEN for a cooldown from now_ms. */
static enum breaker_change open_at(struct breaker *b, uint64_t now_ms)
{
    b->state = BREAKER_OPEN;
    b->opened_ms = now_ms;
    b->probe_out = false;
    return BREAKER_OPENED;
}

/* start_probe - to HALF_OPEN: the request being allowed is the probe. */
static enum breaker_change start_probe(struct breaker *b, uint64_t now_ms)
{
    b->state = BREAKER_HALF_OPEN;
    b->probe_out = true;
    b->probe_ms = now_ms;
    return BREAKER_PROBING;
}

/* breaker_init - CLOSED, nothing counted. */
void breaker_init(struct breaker *b, const struct config_breaker *cfg)
{
    b->cfg = cfg;
    b->state = BREAKER_CLOSED;
    b->failures = 0;
    b->opened_ms = 0;
    b->probe_out = false;
    b->probe_ms = 0;
}

/* breaker_carry - see breaker.h. */
void breaker_carry(struct breaker *b, const struct breaker *from)
{
    if (disabled(b))
        return;
    b->failures = from->failures;
    switch (from->state) {
    case BREAKER_OPEN:
        b->state = BREAKER_OPEN;
        b->opened_ms = from->opened_ms;
        break;
    case BREAKER_HALF_OPEN:
        b->state = BREAKER_HALF_OPEN; /* with no probe out: the next request is one */
        b->opened_ms = from->opened_ms;
        b->probe_out = false;
        break;
    case BREAKER_CLOSED:
    default:
        break;
    }
}

/* breaker_refusing - see breaker.h; the same conditions as breaker_allow. */
bool breaker_refusing(const struct breaker *b, uint64_t now_ms)
{
    switch (b->state) {
    case BREAKER_OPEN:
        return !disabled(b) && elapsed(now_ms, b->opened_ms) < b->cfg->cooldown_ms;
    case BREAKER_HALF_OPEN:
        return b->probe_out && !disabled(b) && elapsed(now_ms, b->probe_ms) < b->cfg->cooldown_ms;
    case BREAKER_CLOSED:
    default:
        return false;
    }
}

/* breaker_allow - see breaker.h. A probe that has not answered within a cooldown is taken
 * as lost (its request was canceled and never recorded), so the next request becomes the
 * probe instead of the breaker refusing for ever. */
bool breaker_allow(struct breaker *b, uint64_t now_ms, enum breaker_change *change)
{
    enum breaker_change ch = BREAKER_UNCHANGED;
    bool allow = false;
    switch (b->state) {
    case BREAKER_CLOSED:
        allow = true;
        break;
    case BREAKER_OPEN:
        if (disabled(b) || elapsed(now_ms, b->opened_ms) >= b->cfg->cooldown_ms) {
            ch = start_probe(b, now_ms);
            allow = true;
        }
        break;
    case BREAKER_HALF_OPEN:
        if (!b->probe_out || disabled(b) || elapsed(now_ms, b->probe_ms) >= b->cfg->cooldown_ms) {
            ch = start_probe(b, now_ms);
            allow = true;
        }
        break;
    }
    if (change != NULL)
        *change = ch;
    return allow;
}

/* breaker_record - see breaker.h. In HALF_OPEN any answer is taken as the probe's (the API
 * cannot tell a late answer to an older request apart; it is evidence about the endpoint
 * all the same). In OPEN, answers to requests let through before it opened change nothing:
 * the probe decides. */
enum breaker_change breaker_record(struct breaker *b, bool temporary_failure, uint64_t now_ms)
{
    if (!temporary_failure) {
        bool counted = b->failures > 0;
        switch (b->state) {
        case BREAKER_CLOSED:
            b->failures = 0;
            return counted && !disabled(b) ? BREAKER_RECLOSED : BREAKER_UNCHANGED;
        case BREAKER_HALF_OPEN:
            b->state = BREAKER_CLOSED;
            b->failures = 0;
            b->probe_out = false;
            return BREAKER_RECLOSED;
        case BREAKER_OPEN:
            break;
        }
        return BREAKER_UNCHANGED;
    }
    switch (b->state) {
    case BREAKER_CLOSED:
        if (b->failures < UINT_MAX)
            b->failures++;
        if (!disabled(b) && b->failures >= b->cfg->failures)
            return open_at(b, now_ms);
        return BREAKER_UNCHANGED;
    case BREAKER_HALF_OPEN:
        if (b->failures < UINT_MAX)
            b->failures++;
        return open_at(b, now_ms);
    case BREAKER_OPEN:
        break;
    }
    return BREAKER_UNCHANGED;
}

/* breaker_state_name - "closed", "open", "half-open"; "unknown" for any other value. */
const char *breaker_state_name(enum breaker_state st)
{
    if ((size_t)st < sizeof(state_names) / sizeof(state_names[0]))
        return state_names[st];
    return "unknown";
}
