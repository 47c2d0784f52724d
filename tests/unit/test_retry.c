/* test_retry.c - unit tests of retry.c: equal-jitter backoff bounds per attempt and at the
 * cap (saturating for any configuration), the retry decision against attempts and the
 * deadline, and Retry-After (RFC 9110 §10.2.3) in delay-seconds and the three HTTP-date
 * forms of §5.6.7. Golden tables: one row per input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "smtphook/retry.h"

#include "golden.h"

#define RMAX UINT32_MAX /* the largest random number */
#define U64  UINT64_MAX

#define T_1994    784111777000LL    /* Sun, 06 Nov 1994 08:49:37 GMT, in Unix ms */
#define T_2026    1780000000000LL   /* Thu, 28 May 2026 20:26:40 GMT */
#define T_2017    1483228800000LL   /* Sun, 01 Jan 2017 00:00:00 GMT */
#define T_9999    253402300799000LL /* Fri, 31 Dec 9999 23:59:59 GMT */
#define T_LEAP_29 1709164800000LL   /* Thu, 29 Feb 2024 00:00:00 GMT */

/* ---- retry_backoff -------------------------------------------------------------------- */

struct backoff_case {
    uint64_t initial, max; /* config_retry's initial_backoff_ms and max_backoff_ms */
    unsigned attempts;     /* attempts made */
    uint32_t random;       /* the random number */
    uint64_t want;         /* expected wait */
};

static const struct backoff_case backoff_cases[] = {
    /* initial 1000, max 8000: [cap/2, cap] with cap 1000, 2000, 4000, then 8000 for ever. */
    {1000, 8000, 1, 0, 500},
    {1000, 8000, 1, RMAX, 1000},
    {1000, 8000, 2, 0, 1000},
    {1000, 8000, 2, RMAX, 2000},
    {1000, 8000, 3, 0, 2000},
    {1000, 8000, 3, RMAX, 4000},
    {1000, 8000, 4, 0, 4000},
    {1000, 8000, 4, RMAX, 8000},
    {1000, 8000, 5, 0, 4000},
    {1000, 8000, 5, RMAX, 8000},
    {1000, 8000, 64, RMAX, 8000},
    {1000, 8000, 65, 0, 4000},
    {1000, 8000, 1000, RMAX, 8000},
    {1000, 8000, UINT_MAX, 0, 4000},
    {1000, 8000, UINT_MAX, RMAX, 8000},
    /* attempts 0 is taken as 1. */
    {1000, 8000, 0, 0, 500},
    {1000, 8000, 0, RMAX, 1000},
    /* An odd cap: the half rounds down, the random share covers the rest. */
    {1001, 100000, 1, 0, 500},
    {1001, 100000, 1, RMAX, 1001},
    {1001, 100000, 1, 0x80000000u, 750},
    {3, 100000, 1, 0, 1},
    {3, 100000, 1, RMAX, 3},
    /* The largest values the config allows. */
    {590000, 590000, 1, 0, 295000},
    {590000, 590000, 1, RMAX, 590000},
    {590000, 590000, UINT_MAX, RMAX, 590000},
    {1, 590000, 20, 0, 262144},
    {1, 590000, 20, RMAX, 524288},
    {1, 590000, 21, 0, 295000},
    {1, 590000, 21, RMAX, 590000},
    /* initial above max: max from the first retry on. */
    {590000, 1000, 1, 0, 500},
    {590000, 1000, 1, RMAX, 1000},
    /* Zeroes. */
    {0, 8000, 1, RMAX, 0},
    {0, 8000, 100, RMAX, 0},
    {1000, 0, 1, RMAX, 0},
    {1, 1, 1, 0, 0},
    {1, 1, 1, RMAX, 1},
    /* Values no config has: still no overflow. */
    {U64, U64, 1, 0, U64 / 2},
    {U64, U64, 1, RMAX, U64},
    {U64, U64, UINT_MAX, RMAX, U64},
    {1, U64, 64, 0, 1ull << 62},
    {1, U64, 64, RMAX, 1ull << 63},
    {1, U64, 65, 0, U64 / 2},
    {1, U64, 65, RMAX, U64},
    {1ull << 40, U64, 30, RMAX, U64},
    {3, U64 - 1, 64, RMAX, U64 - 1},
    {3, U64 - 1, 63, RMAX, 3ull << 62},
};

/* test_backoff_golden - every row of backoff_cases. */
static void test_backoff_golden(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(backoff_cases); i++) {
        const struct backoff_case *c = &backoff_cases[i];
        struct config_retry cfg = {
            .max_attempts = 10, .initial_backoff_ms = c->initial, .max_backoff_ms = c->max};
        uint64_t got = retry_backoff(&cfg, c->attempts, c->random);
        if (got != c->want)
            print_message("  row %zu: got %llu, want %llu\n", i, (unsigned long long)got,
                          (unsigned long long)c->want);
        assert_true(got == c->want);
    }
}

/* cap_of - min(max, initial * 2^(attempts - 1)), computed the slow way. */
static uint64_t cap_of(uint64_t initial, uint64_t max, unsigned attempts)
{
    uint64_t cap = initial;
    for (unsigned a = 1; a < attempts && cap < max; a++)
        cap = cap > max / 2 ? max : cap * 2;
    return cap < max ? cap : max;
}

/* Every attempt's wait lies in [cap/2, cap], grows with random and never shrinks with the
 * attempts. */
static void test_backoff_bounds(void **state)
{
    (void)state;
    static const uint64_t configs[][2] = {
        {1000, 8000}, {250, 590000}, {590000, 590000}, {1, 590000}, {7, 7}, {1, U64},
    };
    static const uint32_t randoms[] = {0, 1, 12345, 0x7fffffffu, 0x80000000u, RMAX - 1, RMAX};
    for (size_t c = 0; c < N(configs); c++) {
        struct config_retry cfg = {.max_attempts = 1000,
                                   .initial_backoff_ms = configs[c][0],
                                   .max_backoff_ms = configs[c][1]};
        for (size_t r = 0; r < N(randoms); r++) {
            uint64_t prev = 0;
            for (unsigned a = 1; a <= 130; a++) {
                uint64_t cap = cap_of(cfg.initial_backoff_ms, cfg.max_backoff_ms, a);
                uint64_t got = retry_backoff(&cfg, a, randoms[r]);
                assert_true(got >= cap / 2 && got <= cap);
                assert_true(got >= prev);
                if (r > 0)
                    assert_true(got >= retry_backoff(&cfg, a, randoms[r - 1]));
                prev = got;
            }
        }
    }
}

/* ---- retry_next ----------------------------------------------------------------------- */

struct next_case {
    const char *what;       /* the row, for failure messages */
    unsigned max_attempts;  /* config_retry */
    unsigned attempts;      /* retry_state */
    uint64_t now, deadline; /* retry_state */
    uint64_t last_took;     /* retry_state */
    bool has_retry_after;   /* retry_state */
    uint64_t retry_after;   /* retry_state */
    uint32_t random;        /* retry_state */
    bool want;              /* may retry */
    uint64_t want_delay;    /* then after this wait */
};

/* initial 1000, max 8000 throughout. */
static const struct next_case next_cases[] = {
    {"first retry", 3, 1, 10000, 20000, 500, false, 0, 0, true, 500},
    {"first retry, top random", 3, 1, 10000, 20000, 500, false, 0, RMAX, true, 1000},
    {"second retry", 3, 2, 10000, 20000, 500, false, 0, 0, true, 1000},
    {"attempts used up", 3, 3, 10000, 20000, 500, false, 0, 0, false, 0},
    {"more than used up", 3, 7, 10000, 20000, 500, false, 0, 0, false, 0},
    {"max_attempts 1: no retry", 1, 1, 0, U64, 0, false, 0, 0, false, 0},
    {"max_attempts 0: no retry", 0, 1, 0, U64, 0, false, 0, 0, false, 0},
    {"attempts exhausted at the top", UINT_MAX, UINT_MAX, 0, U64, 0, false, 0, 0, false, 0},
    {"many attempts, capped wait", UINT_MAX, UINT_MAX - 1, 0, 10000, 0, false, 0, RMAX, true, 8000},
    /* wait + expected duration must end strictly before the deadline. */
    {"ends on the deadline", 3, 1, 10000, 11000, 500, false, 0, 0, false, 0},
    {"ends 1 ms before it", 3, 1, 10000, 11001, 500, false, 0, 0, true, 500},
    {"short attempt counts as 100", 3, 1, 10000, 10600, 10, false, 0, 0, false, 0},
    {"short attempt, 1 ms more", 3, 1, 10000, 10601, 10, false, 0, 0, true, 500},
    {"no duration yet", 3, 1, 10000, 10601, 0, false, 0, 0, true, 500},
    {"slow attempt does not fit", 3, 1, 10000, 20000, 9500, false, 0, 0, false, 0},
    {"slow attempt fits", 3, 1, 10000, 20000, 9499, false, 0, 0, true, 500},
    {"deadline passed", 3, 1, 20000, 10000, 500, false, 0, 0, false, 0},
    {"at the deadline", 3, 1, 10000, 10000, 0, false, 0, 0, false, 0},
    /* Retry-After replaces the backoff, even past max_backoff_ms, when it fits. */
    {"Retry-After above max fits", 3, 1, 0, 100000, 1000, true, 30000, RMAX, true, 30000},
    {"Retry-After just fits", 3, 1, 0, 31001, 1000, true, 30000, 0, true, 30000},
    {"Retry-After ends on deadline", 3, 1, 0, 31000, 1000, true, 30000, 0, false, 0},
    {"Retry-After too long", 3, 1, 0, 20000, 1000, true, 30000, 0, false, 0},
    {"Retry-After 0", 3, 1, 5000, 6000, 0, true, 0, RMAX, true, 0},
    {"Retry-After shorter than backoff", 3, 2, 0, 100000, 0, true, 10, RMAX, true, 10},
    {"Retry-After but attempts used up", 3, 3, 0, U64, 0, true, 1, 0, false, 0},
    /* Sums saturate instead of wrapping round to a small end. */
    {"huge Retry-After", 3, 1, 1000, U64, 0, true, U64, 0, false, 0},
    {"huge Retry-After, late clock", 3, 1, U64 - 10, U64, 0, true, U64 - 5, 0, false, 0},
    {"huge duration", 3, 1, 1000, U64, U64, false, 0, 0, false, 0},
    {"clock near the end", 3, 1, U64 - 1000, U64 - 400, 0, false, 0, 0, false, 0},
    {"clock near the end, fits", 3, 1, U64 - 1000, U64 - 399, 0, false, 0, 0, true, 500},
};

/* test_next_golden - every row of next_cases. */
static void test_next_golden(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(next_cases); i++) {
        const struct next_case *c = &next_cases[i];
        struct config_retry cfg = {
            .max_attempts = c->max_attempts, .initial_backoff_ms = 1000, .max_backoff_ms = 8000};
        struct retry_state st = {
            .attempts = c->attempts,
            .now_ms = c->now,
            .deadline_ms = c->deadline,
            .last_took_ms = c->last_took,
            .has_retry_after = c->has_retry_after,
            .retry_after_ms = c->retry_after,
            .random = c->random,
        };
        uint64_t delay = 77777;
        bool got = retry_next(&cfg, &st, &delay);
        if (got != c->want || delay != c->want_delay)
            print_message("  %s: got %d delay %llu\n", c->what, got, (unsigned long long)delay);
        assert_int_equal(got, c->want);
        assert_true(delay == c->want_delay);
    }
}

/* ---- retry_after_parse ------------------------------------------------------------------ */

struct after_case {
    const char *value; /* the field value */
    size_t len;        /* its length */
    int64_t now;       /* now, Unix ms */
    bool want;         /* accepted */
    uint64_t delay;    /* expected delay, ms */
};

static const struct after_case after_cases[] = {
    /* delay-seconds = 1*DIGIT */
    {S("120"), 0, true, 120000},
    {S("0"), T_2026, true, 0},
    {S("007"), 0, true, 7000},
    {S("1"), INT64_MIN, true, 1000},
    {S("  120\t"), 0, true, 120000},
    {S("120\r\n"), 0, true, 120000},
    {S("\t \r\n120 \r\n"), 0, true, 120000},
    {S("590"), INT64_MAX, true, 590000},
    {S("18446744073709551"), 0, true, 18446744073709551000u},
    {S("18446744073709552"), 0, true, U64},
    {S("18446744073709551615"), 0, true, U64},
    {S("18446744073709551616"), 0, true, U64},
    {S("99999999999999999999999999999999999999999999"), 0, true, U64},
    {S("-1"), 0, false, 0},
    {S("+1"), 0, false, 0},
    {S("1.5"), 0, false, 0},
    {S("1 2"), 0, false, 0},
    {S("12a"), 0, false, 0},
    {S("0x10"), 0, false, 0},
    {S("1e3"), 0, false, 0},
    {S("12\0"), 0, false, 0},
    {S("\0"
       "12"),
     0, false, 0},
    {S("\xd9\xa3"), 0, false, 0}, /* ARABIC-INDIC DIGIT THREE */
    {S(""), 0, false, 0},
    {S(" \t\r\n"), 0, false, 0},
    /* IMF-fixdate */
    {S("Sun, 06 Nov 1994 08:49:37 GMT"), T_1994 - 60000, true, 60000},
    {S("Sun, 06 Nov 1994 08:49:37 GMT"), T_1994 - 1, true, 1},
    {S("Sun, 06 Nov 1994 08:49:37 GMT"), T_1994, true, 0},
    {S("Sun, 06 Nov 1994 08:49:37 GMT"), T_1994 + 1, true, 0},
    {S("Sun, 06 Nov 1994 08:49:37 GMT"), T_2026, true, 0},
    {S("Sun, 06 Nov 1994 08:49:37 GMT"), INT64_MAX, true, 0},
    {S("  Sun, 06 Nov 1994 08:49:37 GMT\r\n"), T_1994 - 1000, true, 1000},
    {S("Thu, 28 May 2026 20:27:10 GMT"), T_2026, true, 30000},
    {S("Thu, 29 Feb 2024 00:00:00 GMT"), T_LEAP_29 - 5, true, 5},
    {S("Sat, 31 Dec 2016 23:59:60 GMT"), T_2017 - 3000, true, 3000},
    {S("Sat, 31 Dec 2016 23:59:59 GMT"), T_2017 - 3000, true, 2000},
    {S("Fri, 31 Dec 9999 23:59:59 GMT"), 0, true, (uint64_t)T_9999},
    {S("Fri, 31 Dec 9999 23:59:59 GMT"), INT64_MIN, true, (uint64_t)T_9999 + (1ull << 63)},
    {S("Sat, 01 Jan 0000 00:00:00 GMT"), 0, true, 0},
    {S("Sat, 01 Jan 0000 00:00:00 GMT"), -62167219200000LL - 1, true, 1},
    {S("Thu, 01 Jan 1970 00:00:00 GMT"), -1, true, 1},
    /* obsolete rfc850-date: the two-digit year is placed within 50 years of now */
    {S("Sunday, 06-Nov-94 08:49:37 GMT"), T_1994 - 60000, true, 60000},
    {S("Sunday, 06-Nov-94 08:49:37 GMT"), T_2026, true, 0},
    {S("Wednesday, 01-Jan-76 00:00:00 GMT"), T_2026, true, 3345062400000u - 1780000000000u},
    {S("Saturday, 01-Jan-77 00:00:00 GMT"), T_2026, true, 0},
    {S("Wednesday, 01-Jan-77 00:00:00 GMT"), T_2026, false, 0}, /* 2077 was a Friday */
    {S("Wednesday, 01-Jan-70 00:00:00 GMT"), T_2026, true, 3155760000000u - 1780000000000u},
    {S("Thursday, 01-Jan-70 00:00:00 GMT"), T_2026, false, 0}, /* 2070, not 1970 */
    {S("Thursday, 01-Jan-70 00:00:00 GMT"), -1, true, 1},
    {S("Sun, 06-Nov-94 08:49:37 GMT"), 0, false, 0},
    {S("Sunday, 06-Nov-1994 08:49:37 GMT"), 0, false, 0},
    {S("Sunday, 6-Nov-94 08:49:37 GMT"), 0, false, 0},
    /* obsolete asctime-date */
    {S("Sun Nov  6 08:49:37 1994"), T_1994 - 60000, true, 60000},
    {S("Sun Nov 06 08:49:37 1994"), T_1994 - 60000, true, 60000},
    {S("Sun Nov  6 08:49:37 1994"), T_2026, true, 0},
    {S("Thu Feb 29 00:00:00 2024"), T_LEAP_29 - 5, true, 5},
    {S("Sun Nov 6 08:49:37 1994"), 0, false, 0},
    {S("Sun Nov   6 08:49:37 1994"), 0, false, 0},
    {S("Sun Nov  6 08:49:37 94"), 0, false, 0},
    {S("Sun Nov  6 08:49:37 1994 GMT"), 0, false, 0},
    {S("Sunday Nov  6 08:49:37 1994"), 0, false, 0},
    /* out of range */
    {S("Sat, 29 Feb 2025 00:00:00 GMT"), 0, false, 0},
    {S("Sat, 29 Feb 2100 00:00:00 GMT"), 0, false, 0},
    {S("Tue, 29 Feb 2000 00:00:00 GMT"), 0, true, 951782400000u},
    {S("Thu, 31 Apr 2026 00:00:00 GMT"), 0, false, 0},
    {S("Sun, 00 Nov 1994 08:49:37 GMT"), 0, false, 0},
    {S("Sun, 32 Nov 1994 08:49:37 GMT"), 0, false, 0},
    {S("Sun, 06 Nov 1994 24:00:00 GMT"), 0, false, 0},
    {S("Sun, 06 Nov 1994 08:60:37 GMT"), 0, false, 0},
    {S("Sun, 06 Nov 1994 08:49:60 GMT"), 0, false, 0},
    {S("Sun, 06 Nov 1994 08:49:61 GMT"), 0, false, 0},
    {S("Sun, 06 Nov 1994 23:59:99 GMT"), 0, false, 0},
    {S("Mon, 06 Nov 1994 08:49:37 GMT"), 0, false, 0}, /* 1994-11-06 was a Sunday */
    {S("Sun Nov 32 08:49:37 1994"), 0, false, 0},
    {S("Sunday, 31-Nov-94 08:49:37 GMT"), 0, false, 0},
    /* garbage near the forms */
    {S("sun, 06 nov 1994 08:49:37 gmt"), 0, false, 0},
    {S("SUN, 06 NOV 1994 08:49:37 GMT"), 0, false, 0},
    {S("Sun, 06 Nov 1994 08:49:37 UTC"), 0, false, 0},
    {S("Sun, 06 Nov 1994 08:49:37 +0000"), 0, false, 0},
    {S("Sun, 06 Nov 1994 08:49:37"), 0, false, 0},
    {S("Sun, 06 Nov 1994 08:49 GMT"), 0, false, 0},
    {S("Sun, 6 Nov 1994 08:49:37 GMT"), 0, false, 0},
    {S("Sun,  06 Nov 1994 08:49:37 GMT"), 0, false, 0},
    {S("Sun 06 Nov 1994 08:49:37 GMT"), 0, false, 0},
    {S("Sun, 06 Nov 1994 08:49:37 GMT x"), 0, false, 0},
    {S("Sun, 06 Nov 1994 08:49:37 GMTT"), 0, false, 0},
    {S("Sun, 06 Nov 1994 08:49:37 GMT\0"), 0, false, 0},
    {S("Sun, 06 Nov 1994 08:49:37\tGMT"), 0, false, 0},
    {S("Sun, 06 Nov 94 08:49:37 GMT"), 0, false, 0},
    {S("Sun, 06 November 1994 08:49:37 GMT"), 0, false, 0},
    {S("Sun, 06 Nov 1994 8:49:37 GMT"), 0, false, 0},
    {S("Sun, 0x Nov 1994 08:49:37 GMT"), 0, false, 0},
    {S("Sun, 06 Nov 1994 08:49:37 GMT, 120"), 0, false, 0},
    {S("1994-11-06T08:49:37Z"), 0, false, 0},
    {S("Sun"), 0, false, 0},
    {S("Sun,"), 0, false, 0},
    {S("GMT"), 0, false, 0},
    {S("tomorrow"), 0, false, 0},
};

/* test_after_golden - every row of after_cases. */
static void test_after_golden(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(after_cases); i++) {
        const struct after_case *c = &after_cases[i];
        uint64_t delay = 77777;
        bool got = retry_after_parse(c->value, c->len, c->now, &delay);
        if (got != c->want || delay != c->delay)
            print_message("  row %zu \"%s\": got %d delay %llu\n", i, c->value, got,
                          (unsigned long long)delay);
        assert_int_equal(got, c->want);
        assert_true(delay == c->delay);
    }
}

/* Only the len bytes count: a value inside a longer buffer, and NULL. */
static void test_after_bounds(void **state)
{
    (void)state;
    uint64_t delay = 1;
    assert_true(retry_after_parse("1234", 2, 0, &delay));
    assert_true(delay == 12000);
    assert_false(retry_after_parse("Sun, 06 Nov 1994 08:49:37 GMT", 28, 0, &delay));
    assert_true(delay == 0);
    delay = 1;
    assert_false(retry_after_parse(NULL, 0, 0, &delay));
    assert_true(delay == 0);
    delay = 1;
    assert_false(retry_after_parse("120", 0, 0, &delay));
    assert_true(delay == 0);
}

/* Every day from 1977 to 2076 (the rfc850 window of 2026), at a time of day derived from
 * it, in all three forms (asctime with "%2d" and IMF and rfc850 with "%02d" days): each
 * gives the delay to that instant; the day before's name is refused. */
static void test_after_forms_agree(void **state)
{
    (void)state;
    static const char *const wd[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const wdl[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                      "Thursday", "Friday", "Saturday"};
    static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    /* Walk from 1977-01-01 (a Saturday) day by day to 2076-12-31, the rfc850 window of now. */
    int64_t now = T_2026;
    int64_t day = 2557; /* days from 1970-01-01 to 1977-01-01 */
    int weekday = 6;
    for (int y = 1977; y <= 2076; y++) {
        for (int m = 1; m <= 12; m++) {
            static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
            bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            int nd = mdays[m - 1] + (m == 2 && leap);
            for (int d = 1; d <= nd; d++, day++, weekday = (weekday + 1) % 7) {
                int h = (int)(day % 24), mi = (int)(day % 60), s = (int)(day * 7 % 60);
                int64_t t = ((day * 24 + h) * 60 + mi) * 60 + s;
                uint64_t want = t * 1000 > now ? (uint64_t)(t * 1000 - now) : 0;
                char imf[64], r850[64], asc[64];
                snprintf(imf, sizeof(imf), "%s, %02d %s %04d %02d:%02d:%02d GMT", wd[weekday], d,
                         mon[m - 1], y, h, mi, s);
                snprintf(r850, sizeof(r850), "%s, %02d-%s-%02d %02d:%02d:%02d GMT", wdl[weekday], d,
                         mon[m - 1], y % 100, h, mi, s);
                snprintf(asc, sizeof(asc), "%s %s %2d %02d:%02d:%02d %04d", wd[weekday], mon[m - 1],
                         d, h, mi, s, y);
                const char *forms[] = {imf, r850, asc};
                for (size_t f = 0; f < N(forms); f++) {
                    uint64_t delay = 1;
                    bool ok = retry_after_parse(forms[f], strlen(forms[f]), now, &delay);
                    if (!ok || delay != want)
                        print_message("  \"%s\": %d %llu, want %llu\n", forms[f], ok,
                                      (unsigned long long)delay, (unsigned long long)want);
                    assert_true(ok);
                    assert_true(delay == want);
                }
                /* The day before, by name, is refused. */
                char wrong[64];
                snprintf(wrong, sizeof(wrong), "%s, %02d %s %04d %02d:%02d:%02d GMT",
                         wd[(weekday + 6) % 7], d, mon[m - 1], y, h, mi, s);
                uint64_t delay = 1;
                assert_false(retry_after_parse(wrong, strlen(wrong), now, &delay));
            }
        }
    }
    assert_int_equal(day, 39082); /* 2077-01-01 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_golden), cmocka_unit_test(test_backoff_bounds),
        cmocka_unit_test(test_next_golden),    cmocka_unit_test(test_after_golden),
        cmocka_unit_test(test_after_bounds),   cmocka_unit_test(test_after_forms_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
