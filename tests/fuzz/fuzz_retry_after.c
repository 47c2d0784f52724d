/* fuzz_retry_after.c - fuzz target: retry_after_parse on arbitrary values, and on values
 * formatted from the input's numbers.
 *
 * Input layout: the whole input is one Retry-After value, parsed at several times "now".
 * Its first 16 bytes (zero-padded) are also read as two little-endian 64-bit numbers for
 * the round trips: a time t (taken modulo years 0000..9999) and the time now (raw when
 * bit 1 of byte 16 is set, else near t); bit 0 of byte 16 adds whitespace around them.
 * Invariants (abort on violation):
 * - never crashes or reads past the value; a refused value leaves *delay_ms 0;
 * - a value that is 1*DIGIT once trimmed is accepted at every now as the number times 1000,
 *   saturated at UINT64_MAX; any other accepted value is an HTTP-date;
 * - an accepted IMF-fixdate or asctime-date is the canonical text of a whole second in
 *   years 0000..9999 (gmtime_r formats it back; 23:59:60 is that second's leap second),
 *   and its delay at every now is that second minus now, or 0 once past;
 * - an rfc850-date gives what the IMF-fixdate with the same fields gives, its two-digit
 *   year placed in (now - 50 years, now + 50 years] (RFC 9110 §5.6.7);
 * - t formatted as IMF-fixdate, asctime-date (and, when its year is in now's window,
 *   rfc850-date), with or without surrounding whitespace, parses back to t - now; the
 *   decimal text of a number parses back to it times 1000, saturated.
 *
 * gmtime_r is the independent oracle here: it ignores TZ and the locale, as retry.c must.
 * Must not include libuv, curl or jansson. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fuzz.h"
#include "smtphook/retry.h"

#define DATE_MAX 64 /* room for any formatted date, with whitespace around it */

#define YEAR0_S    (-62167219200LL) /* 0000-01-01T00:00:00Z, Unix seconds */
#define YEAR9999_S 253402300799LL   /* 9999-12-31T23:59:59Z */
#define T_2026_MS  1780000000000LL  /* 2026-05-28T20:26:40Z */
#define WINDOW     50               /* years: the rfc850 two-digit year window */

static const char *const wd_short[7] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const wd_long[7] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                       "Thursday", "Friday", "Saturday"};
static const char *const months[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* The times "now" every value is parsed at. */
static const int64_t nows[] = {
    0, -1, T_2026_MS, INT64_MIN, INT64_MAX, 1000LL * YEAR0_S - 1, 1000LL * YEAR9999_S + 1};

#define N_NOWS (sizeof(nows) / sizeof(nows[0]))

enum form { IMF, RFC850, ASCTIME, ASCTIME_0 }; /* ASCTIME_0: day as 2DIGIT ("Nov 06") */

/* is_trim - what retry_after_parse ignores around a value. */
static bool is_trim(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* expect_delay - when_ms - now, or 0 once past (the difference of two int64 fits uint64). */
static uint64_t expect_delay(int64_t when_ms, int64_t now)
{
    return when_ms > now ? (uint64_t)when_ms - (uint64_t)now : 0;
}

/* format_date - t (Unix seconds, a year 0..9999) in one form; rfc850 writes year % 100.
 * leap: write the second before t as 23:59:60 instead (t must be a midnight). */
static size_t format_date(int64_t t, enum form f, bool leap, char *out, size_t size)
{
    time_t tt = (time_t)(leap ? t - 1 : t);
    struct tm tm;
    FUZZ_CHECK(gmtime_r(&tt, &tm) != NULL);
    int sec = leap ? 60 : tm.tm_sec;
    int year = tm.tm_year + 1900;
    int n = -1;
    switch (f) {
    case IMF:
        n = snprintf(out, size, "%s, %02d %s %04d %02d:%02d:%02d GMT", wd_short[tm.tm_wday],
                     tm.tm_mday, months[tm.tm_mon], year, tm.tm_hour, tm.tm_min, sec);
        break;
    case RFC850:
        n = snprintf(out, size, "%s, %02d-%s-%02d %02d:%02d:%02d GMT", wd_long[tm.tm_wday],
                     tm.tm_mday, months[tm.tm_mon], year % 100, tm.tm_hour, tm.tm_min, sec);
        break;
    case ASCTIME:
    case ASCTIME_0:
        n = snprintf(
            out, size,
            f == ASCTIME ? "%s %s %2d %02d:%02d:%02d %04d" : "%s %s %02d %02d:%02d:%02d %04d",
            wd_short[tm.tm_wday], months[tm.tm_mon], tm.tm_mday, tm.tm_hour, tm.tm_min, sec, year);
        break;
    }
    FUZZ_CHECK(n > 0 && (size_t)n < size);
    return (size_t)n;
}

/* year_of_ms - the civil year of a Unix time in ms, through gmtime_r; false when gmtime_r
 * cannot say (its year would not fit int). */
static bool year_of_ms(int64_t ms, int64_t *year)
{
    int64_t s = ms / 1000 - (ms % 1000 < 0);
    time_t tt = (time_t)s;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL)
        return false;
    *year = (int64_t)tm.tm_year + 1900;
    return true;
}

/* parse - retry_after_parse, checking that a refusal leaves 0 behind. */
static bool parse(const char *v, size_t len, int64_t now, uint64_t *delay)
{
    *delay = 12345;
    bool ok = retry_after_parse(v, len, now, delay);
    FUZZ_CHECK(ok || *delay == 0);
    return ok;
}

/* digits_value - the trimmed value as delay-seconds in ms, saturated; false unless it is
 * 1*DIGIT. */
static bool digits_value(const char *v, size_t len, uint64_t *ms)
{
    if (len == 0)
        return false;
    uint64_t x = 0;
    bool big = false;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return false;
        unsigned d = (unsigned)(v[i] - '0');
        if (x > (UINT64_MAX - d) / 10)
            big = true;
        else
            x = x * 10 + d;
    }
    *ms = big || x > UINT64_MAX / 1000 ? UINT64_MAX : x * 1000;
    return true;
}

/* check_canonical - v[0, len), accepted as an IMF-fixdate or asctime-date: at now INT64_MIN
 * every date is ahead, so the delay gives the instant back; formatted again it is v. The
 * delay at every other now follows from that instant. */
static void check_canonical(const char *v, size_t len)
{
    uint64_t delay;
    FUZZ_CHECK(parse(v, len, INT64_MIN, &delay));
    int64_t when_ms = (int64_t)(delay + (uint64_t)INT64_MIN); /* two's complement wrap */
    FUZZ_CHECK(when_ms % 1000 == 0);
    int64_t t = when_ms / 1000;
    FUZZ_CHECK(t >= YEAR0_S && t <= YEAR9999_S + 1); /* + 1: 9999-12-31 23:59:60 */
    bool same = false;
    char buf[DATE_MAX];
    for (int f = IMF; f <= ASCTIME_0 && !same; f++) {
        if (f == RFC850)
            continue;
        for (int leap = 0; leap <= 1 && !same; leap++) {
            if (leap && t % 86400 != 0)
                continue;
            if (!leap && t > YEAR9999_S)
                continue;
            size_t n = format_date(t, (enum form)f, leap != 0, buf, sizeof(buf));
            same = n == len && memcmp(buf, v, len) == 0;
        }
    }
    FUZZ_CHECK(same);
    for (size_t i = 0; i < N_NOWS; i++) {
        FUZZ_CHECK(parse(v, len, nows[i], &delay));
        FUZZ_CHECK(delay == expect_delay(when_ms, nows[i]));
    }
}

/* is_digit - an ASCII digit. */
static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* rfc850_to_imf - "Dayname, DD-Mon-YY rest" to "Day, DD Mon YYYY rest", the year placed in
 * (now_year - 50, now_year + 50]; the month and the rest are copied byte for byte, NULs
 * included. false when v does not start that way. */
static bool rfc850_to_imf(const char *v, size_t len, int64_t now_year, char *out, size_t size,
                          size_t *out_len)
{
    int wd = -1;
    size_t p = 0;
    for (int i = 0; i < 7 && wd < 0; i++) {
        size_t n = strlen(wd_long[i]);
        if (len >= n && memcmp(v, wd_long[i], n) == 0) {
            wd = i;
            p = n;
        }
    }
    if (wd < 0 || len < p + 12)
        return false;
    const char *s = v + p; /* ", DD-Mon-YY" then the rest */
    if (s[0] != ',' || s[1] != ' ' || !is_digit(s[2]) || !is_digit(s[3]) || s[4] != '-' ||
        s[8] != '-' || !is_digit(s[9]) || !is_digit(s[10]))
        return false;
    int yy = (s[9] - '0') * 10 + (s[10] - '0');
    int64_t year = now_year - WINDOW + 1;
    while (((year % 100) + 100) % 100 != yy)
        year++;
    if (year < 0 || year > 9999)
        return false;
    size_t rest = len - p - 11;
    int n = snprintf(out, size, "%s, %c%c ", wd_short[wd], s[2], s[3]);
    if (n < 0 || (size_t)n + 3 + 6 + rest > size)
        return false;
    size_t o = (size_t)n;
    memcpy(out + o, s + 5, 3);
    o += 3;
    snprintf(out + o, size - o, " %04d", (int)year);
    o += 5;
    memcpy(out + o, s + 11, rest);
    *out_len = o + rest;
    return true;
}

/* check_rfc850 - v[0, len) contains '-', so it can only be an rfc850-date: at each now with
 * a plain year it parses as its IMF-fixdate translation does. */
static void check_rfc850(const char *v, size_t len)
{
    for (size_t i = 0; i < N_NOWS; i++) {
        int64_t year;
        uint64_t got, want;
        bool ok = parse(v, len, nows[i], &got);
        if (!year_of_ms(nows[i], &year) || year < WINDOW || year > 9999 - WINDOW)
            continue;
        char imf[DATE_MAX + 8];
        size_t n;
        if (len > DATE_MAX || !rfc850_to_imf(v, len, year, imf, sizeof(imf), &n)) {
            FUZZ_CHECK(!ok);
            continue;
        }
        bool imf_ok = parse(imf, n, nows[i], &want);
        FUZZ_CHECK(ok == imf_ok);
        FUZZ_CHECK(got == want);
    }
}

/* check_value - the whole input as a value. */
static void check_value(const char *v, size_t len)
{
    size_t a = 0, b = len;
    while (a < b && is_trim(v[a]))
        a++;
    while (b > a && is_trim(v[b - 1]))
        b--;
    uint64_t number;
    if (digits_value(v + a, b - a, &number)) {
        for (size_t i = 0; i < N_NOWS; i++) {
            uint64_t delay;
            FUZZ_CHECK(parse(v, len, nows[i], &delay));
            FUZZ_CHECK(delay == number);
        }
        return;
    }
    if (memchr(v + a, '-', b - a) != NULL) {
        check_rfc850(v + a, b - a);
        return;
    }
    uint64_t delay;
    bool ok = false;
    for (size_t i = 0; i < N_NOWS; i++) {
        bool here = parse(v, len, nows[i], &delay);
        FUZZ_CHECK(i == 0 || here == ok); /* without a two-digit year, now cannot matter */
        ok = here;
    }
    if (ok)
        check_canonical(v + a, b - a);
}

/* load_le64 - up to 8 bytes as a little-endian number, zero-padded. */
static uint64_t load_le64(const uint8_t *p, size_t n)
{
    uint64_t x = 0;
    for (size_t i = n < 8 ? n : 8; i > 0; i--)
        x = (x << 8) | p[i - 1];
    return x;
}

/* check_round_trips - t and now from the input: t's dates and a number parse back. */
static void check_round_trips(uint64_t a, uint64_t b, uint8_t flags)
{
    uint64_t span = (uint64_t)(YEAR9999_S - YEAR0_S) + 1;
    int64_t t = YEAR0_S + (int64_t)(a % span);
    int64_t t_ms = t * 1000;
    /* flags bit 1: now anywhere; else within about 35 years of t, so that t is mostly in
     * the rfc850 window of now. */
    int64_t now = (flags & 2) ? (int64_t)b : t_ms - (int64_t)(b % (1ull << 41)) + (1LL << 40);
    int64_t now_year;
    bool have_year = year_of_ms(now, &now_year);
    char date[DATE_MAX], value[DATE_MAX + 8];
    for (int f = IMF; f <= ASCTIME_0; f++) {
        size_t n = format_date(t, (enum form)f, false, date, sizeof(date));
        if (f == RFC850) {
            int64_t year;
            FUZZ_CHECK(year_of_ms(t_ms, &year));
            if (!have_year || year <= now_year - WINDOW || year > now_year + WINDOW)
                continue;
        }
        /* flags bit 0: whitespace around the value. */
        int k = (flags & 1) ? snprintf(value, sizeof(value), " \t%.*s\r\n", (int)n, date)
                            : snprintf(value, sizeof(value), "%.*s", (int)n, date);
        FUZZ_CHECK(k > 0 && (size_t)k < sizeof(value));
        uint64_t delay;
        if (!parse(value, (size_t)k, now, &delay)) {
            fprintf(stderr, "refused: \"%s\" at now %lld\n", value, (long long)now);
            FUZZ_FAIL("a formatted date was refused");
        }
        FUZZ_CHECK(delay == expect_delay(t_ms, now));
    }
    /* The number a as delay-seconds. */
    int k = snprintf(value, sizeof(value), "%llu", (unsigned long long)a);
    FUZZ_CHECK(k > 0 && (size_t)k < sizeof(value));
    uint64_t delay;
    FUZZ_CHECK(parse(value, (size_t)k, now, &delay));
    FUZZ_CHECK(delay == (a > UINT64_MAX / 1000 ? UINT64_MAX : a * 1000));
}

/* LLVMFuzzerTestOneInput - one input. The value is copied to an allocation of its exact
 * size, so ASan catches a read past its end. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *v = malloc(size ? size : 1);
    FUZZ_CHECK(v != NULL);
    if (size > 0)
        memcpy(v, data, size);
    check_value(v, size);
    free(v);

    uint64_t a = load_le64(data, size);
    uint64_t b = size > 8 ? load_le64(data + 8, size - 8) : 0;
    check_round_trips(a, b, size > 16 ? data[16] : 0);
    return 0;
}
