/* test_breaker.c - unit tests of breaker.c: the CLOSED -> OPEN -> HALF_OPEN -> CLOSED cycle
 * as scripts of steps (one row per call, with the time and what must come back), then the
 * corner cases: failures 0, failures 1, cooldown 0, a lost probe, late answers, names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <stdbool.h>
#include <string.h>

#include "smtphook/breaker.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

#define COOLDOWN 1000u /* cooldown_ms of the scripts */

enum op {
    ALLOW,   /* breaker_allow */
    FAIL,    /* breaker_record, temporary failure */
    SUCCEED, /* breaker_record, not a temporary failure (2xx or a permanent refusal) */
};

/* One call and what it must return. */
struct step {
    enum op op;                 /* the call */
    uint64_t now;               /* its time */
    bool allowed;               /* ALLOW: expected answer */
    enum breaker_change change; /* expected change */
    enum breaker_state state;   /* expected state after the call */
    unsigned failures;          /* expected failures after the call */
};

/* The fields of one step: {A(...)}, {F(...)}, {OK(...)}. */
#define A(now, ok, ch, st, f) ALLOW, now, ok, BREAKER_##ch, BREAKER_##st, f
#define F(now, ch, st, f)     FAIL, now, false, BREAKER_##ch, BREAKER_##st, f
#define OK(now, ch, st, f)    SUCCEED, now, false, BREAKER_##ch, BREAKER_##st, f

/* run - the steps against a fresh breaker with cfg. */
static void run(const char *name, const struct config_breaker *cfg, const struct step *steps,
                size_t n)
{
    struct breaker b;
    breaker_init(&b, cfg);
    assert_int_equal(b.state, BREAKER_CLOSED);
    assert_int_equal(b.failures, 0);
    for (size_t i = 0; i < n; i++) {
        const struct step *s = &steps[i];
        enum breaker_change ch = (enum breaker_change)99;
        bool allowed = false;
        if (s->op == ALLOW) {
            /* breaker_refusing foretells breaker_allow exactly, and changes nothing */
            struct breaker before = b;
            assert_int_equal(breaker_refusing(&b, s->now), !s->allowed);
            assert_memory_equal(&before, &b, sizeof(b));
            allowed = breaker_allow(&b, s->now, &ch);
        } else
            ch = breaker_record(&b, s->op == FAIL, s->now);
        if (allowed != s->allowed || ch != s->change || b.state != s->state ||
            b.failures != s->failures)
            print_message("  %s, step %zu: allowed %d change %d state %s failures %u\n", name, i,
                          allowed, ch, breaker_state_name(b.state), b.failures);
        assert_int_equal(allowed, s->allowed);
        assert_int_equal(ch, s->change);
        assert_int_equal(b.state, s->state);
        assert_int_equal(b.failures, s->failures);
        assert_int_equal(b.probe_out, b.state == BREAKER_HALF_OPEN);
    }
}

/* Three failures in a row open it; it refuses during the cooldown, probes once after it,
 * and the probe's success closes it. */
static void test_cycle_probe_succeeds(void **state)
{
    (void)state;
    static const struct config_breaker cfg = {.failures = 3, .cooldown_ms = COOLDOWN};
    static const struct step steps[] = {
        {A(0, true, UNCHANGED, CLOSED, 0)},        /* closed: requests go out */
        {F(10, UNCHANGED, CLOSED, 1)},             /* one failure */
        {A(20, true, UNCHANGED, CLOSED, 1)},       /* still closed */
        {F(30, UNCHANGED, CLOSED, 2)},             /* two */
        {A(40, true, UNCHANGED, CLOSED, 2)},       /* still closed */
        {F(100, OPENED, OPEN, 3)},                 /* three in a row open it */
        {A(100, false, UNCHANGED, OPEN, 3)},       /* refused at once */
        {A(600, false, UNCHANGED, OPEN, 3)},       /* and during the cooldown */
        {A(1099, false, UNCHANGED, OPEN, 3)},      /* up to its last millisecond */
        {A(1100, true, PROBING, HALF_OPEN, 3)},    /* then one probe */
        {A(1100, false, UNCHANGED, HALF_OPEN, 3)}, /* the others are refused */
        {A(1500, false, UNCHANGED, HALF_OPEN, 3)}, /* while the probe is out */
        {OK(1600, RECLOSED, CLOSED, 0)},           /* its success closes it */
        {A(1601, true, UNCHANGED, CLOSED, 0)},     /* requests go out again */
        {A(1602, true, UNCHANGED, CLOSED, 0)},     /* all of them */
        {OK(1700, UNCHANGED, CLOSED, 0)},          /* nothing was counted */
    };
    run("probe succeeds", &cfg, steps, N(steps));
}

/* The probe fails: another full cooldown from the failure, then another probe. */
static void test_cycle_probe_fails(void **state)
{
    (void)state;
    static const struct config_breaker cfg = {.failures = 2, .cooldown_ms = COOLDOWN};
    static const struct step steps[] = {
        {F(0, UNCHANGED, CLOSED, 1)},              /* one failure */
        {F(0, OPENED, OPEN, 2)},                   /* two open it */
        {A(999, false, UNCHANGED, OPEN, 2)},       /* cooldown */
        {A(5000, true, PROBING, HALF_OPEN, 2)},    /* the first request after it probes */
        {A(5001, false, UNCHANGED, HALF_OPEN, 2)}, /* the others are refused */
        {F(5400, OPENED, OPEN, 3)},                /* the probe fails: open again */
        {A(5401, false, UNCHANGED, OPEN, 3)},      /* a new cooldown */
        {A(6399, false, UNCHANGED, OPEN, 3)},      /* from the failure */
        {A(6400, true, PROBING, HALF_OPEN, 3)},    /* then another probe */
        {F(6500, OPENED, OPEN, 4)},                /* fails too */
        {A(7499, false, UNCHANGED, OPEN, 4)},      /* cooldown */
        {A(7500, true, PROBING, HALF_OPEN, 4)},    /* a third probe */
        {OK(7600, RECLOSED, CLOSED, 0)},           /* succeeds */
        {F(7700, UNCHANGED, CLOSED, 1)},           /* counting starts again from zero */
        {A(7701, true, UNCHANGED, CLOSED, 1)},     /* closed */
    };
    run("probe fails", &cfg, steps, N(steps));
}

/* A permanent refusal means the app is up: it breaks the run of failures in CLOSED (the
 * header's "CLOSED with failures counted -> CLOSED") and closes from HALF_OPEN. */
static void test_permanent_is_success(void **state)
{
    (void)state;
    static const struct config_breaker cfg = {.failures = 3, .cooldown_ms = COOLDOWN};
    static const struct step steps[] = {
        {F(0, UNCHANGED, CLOSED, 1)},           /* one failure */
        {F(1, UNCHANGED, CLOSED, 2)},           /* two */
        {OK(2, RECLOSED, CLOSED, 0)},           /* a success ends the run */
        {F(3, UNCHANGED, CLOSED, 1)},           /* one again */
        {F(4, UNCHANGED, CLOSED, 2)},           /* two */
        {A(5, true, UNCHANGED, CLOSED, 2)},     /* not open yet */
        {F(6, OPENED, OPEN, 3)},                /* three in a row */
        {A(1006, true, PROBING, HALF_OPEN, 3)}, /* probe */
        {OK(1007, RECLOSED, CLOSED, 0)},        /* a permanent refusal closes it */
    };
    run("permanent", &cfg, steps, N(steps));
}

/* Answers to requests let through before it opened do not move an OPEN breaker: the
 * cooldown runs from the opening and the probe decides. */
static void test_late_answers_while_open(void **state)
{
    (void)state;
    static const struct config_breaker cfg = {.failures = 2, .cooldown_ms = COOLDOWN};
    static const struct step steps[] = {
        {A(0, true, UNCHANGED, CLOSED, 0)}, /* four requests go out */
        {A(0, true, UNCHANGED, CLOSED, 0)},
        {A(0, true, UNCHANGED, CLOSED, 0)},
        {A(0, true, UNCHANGED, CLOSED, 0)},
        {F(100, UNCHANGED, CLOSED, 1)},         /* the first fails */
        {F(200, OPENED, OPEN, 2)},              /* the second opens it */
        {F(300, UNCHANGED, OPEN, 2)},           /* the third: no new cooldown */
        {OK(400, UNCHANGED, OPEN, 2)},          /* the fourth succeeds: still open */
        {A(1199, false, UNCHANGED, OPEN, 2)},   /* cooldown from the opening */
        {A(1200, true, PROBING, HALF_OPEN, 2)}, /* the probe decides */
    };
    run("late answers", &cfg, steps, N(steps));
}

/* failures 0: the breaker never opens, whatever happens, and reports no change. */
static void test_never_opens(void **state)
{
    (void)state;
    static const struct config_breaker cfg = {.failures = 0, .cooldown_ms = COOLDOWN};
    struct breaker b;
    breaker_init(&b, &cfg);
    for (uint64_t t = 0; t < 10000; t++) {
        enum breaker_change ch = BREAKER_OPENED;
        assert_true(breaker_allow(&b, t, &ch));
        assert_int_equal(ch, BREAKER_UNCHANGED);
        assert_int_equal(breaker_record(&b, true, t), BREAKER_UNCHANGED);
        assert_int_equal(b.state, BREAKER_CLOSED);
    }
    assert_int_equal(b.failures, 10000);
    assert_int_equal(breaker_record(&b, false, 10000), BREAKER_UNCHANGED);
    assert_int_equal(b.failures, 0);
    assert_true(breaker_allow(&b, 10001, NULL));
}

/* failures 1 opens on the first failure; cooldown 0 lets the next request probe at once. */
static void test_edges(void **state)
{
    (void)state;
    static const struct config_breaker one = {.failures = 1, .cooldown_ms = COOLDOWN};
    static const struct step first[] = {
        {F(50, OPENED, OPEN, 1)},               /* the first failure opens it */
        {A(1049, false, UNCHANGED, OPEN, 1)},   /* cooldown */
        {A(1050, true, PROBING, HALF_OPEN, 1)}, /* probe */
    };
    run("failures 1", &one, first, N(first));

    static const struct config_breaker zero = {.failures = 2, .cooldown_ms = 0};
    static const struct step at_once[] = {
        {F(50, UNCHANGED, CLOSED, 1)},        /* one failure */
        {F(50, OPENED, OPEN, 2)},             /* two open it */
        {A(50, true, PROBING, HALF_OPEN, 2)}, /* no cooldown: probe at once */
        {F(51, OPENED, OPEN, 3)},             /* fails */
        {A(51, true, PROBING, HALF_OPEN, 3)}, /* probe again */
        {OK(52, RECLOSED, CLOSED, 0)},        /* succeeds */
    };
    run("cooldown 0", &zero, at_once, N(at_once));

    /* A clock that reads earlier than the opening never ends the cooldown early. */
    static const struct step early[] = {
        {F(5000, OPENED, OPEN, 1)},        /* opened at 5000 */
        {A(0, false, UNCHANGED, OPEN, 1)}, /* an earlier clock is no cooldown */
        {A(4999, false, UNCHANGED, OPEN, 1)},
        {A(6000, true, PROBING, HALF_OPEN, 1)}, /* the cooldown ends on time */
    };
    run("clock before opening", &one, early, N(early));
}

/* A probe that never answers (its request was canceled) is given up after a cooldown: the
 * next request probes instead, so the breaker cannot stay HALF_OPEN for ever. */
static void test_lost_probe(void **state)
{
    (void)state;
    static const struct config_breaker cfg = {.failures = 1, .cooldown_ms = COOLDOWN};
    static const struct step steps[] = {
        {F(0, OPENED, OPEN, 1)},                   /* open */
        {A(1000, true, PROBING, HALF_OPEN, 1)},    /* a probe that never answers */
        {A(1999, false, UNCHANGED, HALF_OPEN, 1)}, /* waited for a cooldown */
        {A(2000, true, PROBING, HALF_OPEN, 1)},    /* then given up: this one probes */
        {A(2001, false, UNCHANGED, HALF_OPEN, 1)}, /* one probe again */
        {A(2999, false, UNCHANGED, HALF_OPEN, 1)},
        {OK(3000, RECLOSED, CLOSED, 0)}, /* the new probe succeeds */
    };
    run("lost probe", &cfg, steps, N(steps));
}

/* breaker_carry: a reload's new breaker goes on where the old one was, under its own
 * thresholds; a probe of the old one is not waited for; a breaker that never opens stays
 * closed. */
static void test_carry(void **state)
{
    (void)state;
    static const struct config_breaker old_cfg = {.failures = 2, .cooldown_ms = COOLDOWN};
    static const struct config_breaker new_cfg = {.failures = 3, .cooldown_ms = 2 * COOLDOWN};
    static const struct config_breaker never = {.failures = 0, .cooldown_ms = COOLDOWN};
    struct breaker from, b;

    /* CLOSED with a failure counted: one more is not enough under failures 3, two are. */
    breaker_init(&from, &old_cfg);
    breaker_record(&from, true, 0);
    breaker_init(&b, &new_cfg);
    breaker_carry(&b, &from);
    assert_int_equal(b.state, BREAKER_CLOSED);
    assert_int_equal(b.failures, 1);
    assert_int_equal(breaker_record(&b, true, 10), BREAKER_UNCHANGED);
    assert_int_equal(breaker_record(&b, true, 20), BREAKER_OPENED);

    /* OPEN at 100: refused until 100 + the new cooldown, then a probe. */
    breaker_init(&from, &old_cfg);
    breaker_record(&from, true, 0);
    breaker_record(&from, true, 100);
    assert_int_equal(from.state, BREAKER_OPEN);
    breaker_init(&b, &new_cfg);
    breaker_carry(&b, &from);
    assert_int_equal(b.state, BREAKER_OPEN);
    assert_int_equal(b.failures, 2);
    assert_true(breaker_refusing(&b, 100 + 2 * COOLDOWN - 1));
    assert_false(breaker_allow(&b, 100 + 2 * COOLDOWN - 1, NULL));
    enum breaker_change ch = BREAKER_UNCHANGED;
    assert_true(breaker_allow(&b, 100 + 2 * COOLDOWN, &ch));
    assert_int_equal(ch, BREAKER_PROBING);

    /* HALF_OPEN, its probe out in the old generation: the new one's next request probes. */
    assert_true(breaker_allow(&from, 100 + COOLDOWN, &ch));
    assert_int_equal(from.state, BREAKER_HALF_OPEN);
    breaker_init(&b, &new_cfg);
    breaker_carry(&b, &from);
    assert_int_equal(b.state, BREAKER_HALF_OPEN);
    assert_false(b.probe_out);
    assert_false(breaker_refusing(&b, 100 + COOLDOWN + 1));
    assert_true(breaker_allow(&b, 100 + COOLDOWN + 1, &ch));
    assert_int_equal(ch, BREAKER_PROBING);
    assert_false(breaker_allow(&b, 100 + COOLDOWN + 2, NULL)); /* one probe at a time */
    assert_int_equal(breaker_record(&b, false, 100 + COOLDOWN + 3), BREAKER_RECLOSED);

    /* A breaker configured never to open stays closed, whatever the old one was. */
    breaker_init(&b, &never);
    breaker_carry(&b, &from);
    assert_int_equal(b.state, BREAKER_CLOSED);
    assert_int_equal(b.failures, 0);
    assert_true(breaker_allow(&b, 0, NULL));
}

/* The counter of failures saturates instead of wrapping back below the threshold. */
static void test_counter_saturates(void **state)
{
    (void)state;
    static const struct config_breaker cfg = {.failures = 0, .cooldown_ms = 0};
    struct breaker b;
    breaker_init(&b, &cfg);
    b.failures = UINT_MAX - 1;
    breaker_record(&b, true, 0);
    breaker_record(&b, true, 0);
    assert_true(b.failures == UINT_MAX);
}

/* test_state_names - the log names, and one for a value out of the enum. */
static void test_state_names(void **state)
{
    (void)state;
    assert_string_equal(breaker_state_name(BREAKER_CLOSED), "closed");
    assert_string_equal(breaker_state_name(BREAKER_OPEN), "open");
    assert_string_equal(breaker_state_name(BREAKER_HALF_OPEN), "half-open");
    assert_string_equal(breaker_state_name((enum breaker_state)42), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cycle_probe_succeeds), cmocka_unit_test(test_cycle_probe_fails),
        cmocka_unit_test(test_permanent_is_success), cmocka_unit_test(test_late_answers_while_open),
        cmocka_unit_test(test_never_opens),          cmocka_unit_test(test_edges),
        cmocka_unit_test(test_lost_probe),           cmocka_unit_test(test_counter_saturates),
        cmocka_unit_test(test_state_names),          cmocka_unit_test(test_carry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
