/* test_rate.c - rate.c: a client may do per_minute things in any minute, all at once or
 * spread out, and gets its credit back as time passes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "smtphook/rate.h"

static void test_burst_then_refill(void **state)
{
    (void)state;
    uint64_t tat = 0;
    uint64_t t0 = 1000000;
    for (int i = 0; i < 3; i++)
        assert_true(rate_take(&tat, 3, t0));
    uint64_t before = tat;
    assert_false(rate_take(&tat, 3, t0)); /* the fourth in the same minute */
    assert_int_equal(tat, before);        /* a refusal takes nothing */
    assert_false(rate_take(&tat, 3, t0 + 19999));
    assert_true(rate_take(&tat, 3, t0 + 20000)); /* one request's credit is back */
    assert_false(rate_take(&tat, 3, t0 + 20000));
    assert_false(rate_idle(tat, t0 + 59999));
    assert_true(rate_idle(tat, t0 + 80000));
    for (int i = 0; i < 3; i++) /* after a quiet minute: a full burst again */
        assert_true(rate_take(&tat, 3, t0 + 80000));
}

static void test_steady_rate(void **state)
{
    (void)state;
    uint64_t tat = 0;
    unsigned ok = 0;
    for (uint64_t ms = 0; ms < 600000; ms += 100) /* ten a second for ten minutes */
        ok += rate_take(&tat, 60, 5000000 + ms);
    /* 60 a minute: the first minute's burst of 60, then one a second */
    assert_true(ok >= 60 * 10 && ok <= 60 * 10 + 60);
}

static void test_no_limit_and_fast_rates(void **state)
{
    (void)state;
    uint64_t tat = 0;
    for (int i = 0; i < 100000; i++)
        assert_true(rate_take(&tat, 0, 7));
    assert_int_equal(tat, 0);
    tat = 0;
    unsigned ok = 0;
    for (int i = 0; i < 100000; i++) /* past 60000 a minute the credit is a millisecond */
        ok += rate_take(&tat, 60000, 9);
    assert_true(ok >= 59999 && ok <= 60000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_refill),
        cmocka_unit_test(test_steady_rate),
        cmocka_unit_test(test_no_limit_and_fast_rates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
