/* breaker.h - a circuit breaker per endpoint: stop waiting on an endpoint that is down.
 *
 * Pure: the caller passes the time. CLOSED: requests go out; after cfg->failures temporary
 * failures in a row it OPENs. OPEN: requests are refused at once (the sender gets its 451
 * without waiting out timeouts) until cooldown_ms have passed; then the next request is let
 * through as the one probe (HALF_OPEN) while the others are still refused. The probe's
 * success closes the breaker, its failure opens it for another cooldown; a probe that has not
 * answered after a further cooldown is taken as lost and the next request probes instead.
 * Any answer that is not a temporary failure (2xx, or a permanent refusal: the app is up)
 * counts as success. */
#ifndef SMTPHOOK_BREAKER_H
#define SMTPHOOK_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

#include "smtphook/config.h"

enum breaker_state {
    BREAKER_CLOSED = 0, /* requests go out */
    BREAKER_OPEN,       /* requests are refused until the cooldown ends */
    BREAKER_HALF_OPEN,  /* one probe is out; the others are refused */
};

/* What a change of state was, for the log line the caller writes. */
enum breaker_change {
    BREAKER_UNCHANGED = 0,
    BREAKER_OPENED,   /* CLOSED or HALF_OPEN -> OPEN */
    BREAKER_PROBING,  /* OPEN -> HALF_OPEN (or a lost probe replaced): this request probes */
    BREAKER_RECLOSED, /* HALF_OPEN (or CLOSED with failures counted) -> CLOSED after success */
};

struct breaker {
    const struct config_breaker *cfg; /* thresholds (not owned) */
    enum breaker_state state;         /* see enum */
    unsigned failures;                /* temporary failures in a row */
    uint64_t opened_ms;               /* when it last opened */
    bool probe_out;                   /* HALF_OPEN: the probe has not answered yet */
    uint64_t probe_ms;                /* HALF_OPEN: when the probe went out */
};

/* breaker_init - CLOSED, nothing counted. */
void breaker_init(struct breaker *b, const struct config_breaker *cfg);

/* breaker_carry - b (just initialized, with its own cfg) takes over what from knew of the
 * same endpoint, at a reload: the failures counted and an OPEN breaker's cooldown, which
 * runs from when it opened under b's cooldown_ms. A HALF_OPEN from has its probe in the old
 * generation, whose answer b never sees: b is HALF_OPEN with no probe out, so b's next
 * request probes. A b whose cfg never opens (failures 0) stays CLOSED. */
void breaker_carry(struct breaker *b, const struct breaker *from);

/* breaker_allow - may a request start now? true for CLOSED; for OPEN once the cooldown has
 * passed, and for HALF_OPEN once the probe is lost (the request becomes the probe: *change
 * is BREAKER_PROBING); false otherwise. change may be NULL. */
bool breaker_allow(struct breaker *b, uint64_t now_ms, enum breaker_change *change);

/* breaker_refusing - would breaker_allow refuse a request now? Changes nothing (for a
 * recipient that can be deferred before its message is sent). */
bool breaker_refusing(const struct breaker *b, uint64_t now_ms);

/* breaker_record - the result of a request that breaker_allow let through: temporary
 * failure or not. Returns what changed. */
enum breaker_change breaker_record(struct breaker *b, bool temporary_failure, uint64_t now_ms);

/* breaker_state_name - "closed", "open", "half-open", for logs and metrics. */
const char *breaker_state_name(enum breaker_state st);

#endif
