/* retry.c - the retry schedule of an endpoint: equal-jitter backoff, the deadline check and
 * the HTTP Retry-After field (RFC 9110 §10.2.3).
 *
 * Pure: the caller passes the time and the random number; nothing here reads a clock, the
 * locale or TZ (dates are converted with our own civil-date arithmetic, not strptime or
 * timegm). Every sum and product saturates, so no configuration value can overflow it.
 * Must not include libuv, curl, OpenSSL or jansson. */
#include "smtphook/retry.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define MS_PER_SECOND   1000u
#define SECONDS_PER_DAY 86400
#define MS_PER_DAY      86400000
#define DAYS_MS_FIT     (INT64_MAX / MS_PER_DAY) /* |days| below this: its ms fit int64 */
#define RFC850_WINDOW   50 /* RFC 9110 §5.6.7: a two-digit year is at most this far ahead */

/* ---- saturating arithmetic ----------------------------------------------------------- */

/* sat_add - a + b, or UINT64_MAX when the sum does not fit. */
static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* sat_mul - a * b, or UINT64_MAX when the product does not fit. */
static uint64_t sat_mul(uint64_t a, uint64_t b)
{
    return b != 0 && a > UINT64_MAX / b ? UINT64_MAX : a * b;
}

/* scale_random - floor(span * random / UINT32_MAX) without a 128-bit product: span is split
 * as q * UINT32_MAX + r, so the result is q * random + r * random / UINT32_MAX, and every
 * partial product stays below 2^64. random 0 gives 0, UINT32_MAX gives span. */
static uint64_t scale_random(uint64_t span, uint32_t random)
{
    uint64_t q = span / UINT32_MAX;
    uint64_t r = span % UINT32_MAX;
    return q * random + r * random / UINT32_MAX;
}

/* ---- backoff ------------------------------------------------------------------------- */

/* retry_backoff_cap - see retry.h. min(max_backoff_ms, initial_backoff_ms * 2^(attempts - 1)),
 * without computing a product that could overflow (0 stays 0). attempts 0 is taken as 1. */
uint64_t retry_backoff_cap(const struct config_retry *cfg, unsigned attempts)
{
    unsigned shift = attempts > 1 ? attempts - 1 : 0;
    if (cfg->initial_backoff_ms == 0)
        return 0;
    if (cfg->initial_backoff_ms >= cfg->max_backoff_ms)
        return cfg->max_backoff_ms;
    /* initial << shift <= max exactly when initial <= max >> shift. */
    if (shift >= 64 || cfg->initial_backoff_ms > cfg->max_backoff_ms >> shift)
        return cfg->max_backoff_ms;
    return cfg->initial_backoff_ms << shift;
}

/* retry_backoff - equal jitter: the cap's (rounded-down) half, plus random's share of the
 * rest, so the wait lies in [cap / 2, cap]. */
uint64_t retry_backoff(const struct config_retry *cfg, unsigned attempts, uint32_t random)
{
    uint64_t cap = retry_backoff_cap(cfg, attempts);
    uint64_t half = cap / 2;
    return half + scale_random(cap - half, random);
}

/* retry_next - see retry.h. The attempt must end strictly before the deadline: one that
 * would end on it races the transaction's timer, and a sum that saturated to UINT64_MAX
 * can then never pass. On refusal *delay_ms is 0. */
bool retry_next(const struct config_retry *cfg, const struct retry_state *st, uint64_t *delay_ms)
{
    *delay_ms = 0;
    if (st->attempts >= cfg->max_attempts)
        return false;
    uint64_t wait =
        st->has_retry_after ? st->retry_after_ms : retry_backoff(cfg, st->attempts, st->random);
    uint64_t took =
        st->last_took_ms > RETRY_MIN_ATTEMPT_MS ? st->last_took_ms : RETRY_MIN_ATTEMPT_MS;
    uint64_t ends = sat_add(sat_add(st->now_ms, wait), took);
    if (ends >= st->deadline_ms)
        return false;
    *delay_ms = wait;
    return true;
}

/* ---- civil dates (proleptic Gregorian, UTC) ---------------------------------------------- */

/* floor_div - a / b rounded toward minus infinity (b > 0). */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

/* is_leap - Gregorian leap year. */
static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* days_in_month - 28..31 for month 1..12 of year y. */
static int days_in_month(int64_t y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* days_from_civil - days since 1970-01-01 of y-m-d (m 1..12, d 1..31); H. Hinnant's
 * algorithm over 400-year eras, exact for every year whose day count fits int64. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;                         /* [0, 399] */
    int64_t mp = (m + 9) % 12;                           /* March = 0 */
    int64_t doy = (153 * mp + 2) / 5 + d - 1;            /* [0, 365] */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; /* [0, 146096] */
    return era * 146097 + doe - 719468;
}

/* year_of_days - the civil year of a day count since 1970-01-01 (inverse of the above). */
static int64_t year_of_days(int64_t z)
{
    z += 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    return yoe + era * 400 + (mp >= 10); /* January and February belong to the next year */
}

/* weekday_of_days - 0 = Sunday .. 6 = Saturday; 1970-01-01 was a Thursday. */
static int weekday_of_days(int64_t z)
{
    return (int)(z + 4 - floor_div(z + 4, 7) * 7);
}

/* ---- HTTP-date (RFC 9110 §5.6.7) --------------------------------------------------------- */

/* The names are case-sensitive (%s"..." in the ABNF, RFC 7405). Index = weekday (Sunday 0)
 * or month - 1. */
static const char *const day_names[7] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const day_names_long[7] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                              "Thursday", "Friday", "Saturday"};
static const char *const month_names[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* A date being read: the fields as written, checked together once all are there. */
struct http_date {
    int weekday;  /* 0 = Sunday, from the day-name */
    int64_t year; /* full year (a two-digit one already placed in its century) */
    int month;    /* 1..12 */
    int day;      /* 1..31 */
    int hour;     /* 0..23 */
    int minute;   /* 0..59 */
    int second;   /* 0..60 (60 only in 23:59:60) */
};

/* A cursor over the trimmed value. */
struct scan {
    const char *p;   /* next byte */
    const char *end; /* one past the last byte */
};

/* scan_lit - consume the exact text lit. */
static bool scan_lit(struct scan *s, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0)
        return false;
    s->p += n;
    return true;
}

/* scan_digits - exactly n DIGITs as a number. */
static bool scan_digits(struct scan *s, int n, int *out)
{
    int v = 0;
    if (s->end - s->p < n)
        return false;
    for (int i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s->p[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    s->p += n;
    *out = v;
    return true;
}

/* scan_name - one of the n names of table (no name is a prefix of another). Its index, or
 * -1. */
static int scan_name(struct scan *s, const char *const *table, int n)
{
    for (int i = 0; i < n; i++)
        if (scan_lit(s, table[i]))
            return i;
    return -1;
}

/* scan_time - time-of-day = hour ":" minute ":" second (2DIGIT each). */
static bool scan_time(struct scan *s, struct http_date *d)
{
    return scan_digits(s, 2, &d->hour) && scan_lit(s, ":") && scan_digits(s, 2, &d->minute) &&
           scan_lit(s, ":") && scan_digits(s, 2, &d->second);
}

/* parse_imf_fixdate - day-name "," SP day SP month SP year(4DIGIT) SP time-of-day SP "GMT". */
static bool parse_imf_fixdate(struct scan s, struct http_date *d)
{
    int year;
    if ((d->weekday = scan_name(&s, day_names, 7)) < 0 || !scan_lit(&s, ", ") ||
        !scan_digits(&s, 2, &d->day) || !scan_lit(&s, " ") ||
        (d->month = scan_name(&s, month_names, 12) + 1) == 0 || !scan_lit(&s, " ") ||
        !scan_digits(&s, 4, &year) || !scan_lit(&s, " ") || !scan_time(&s, d) ||
        !scan_lit(&s, " GMT"))
        return false;
    d->year = year;
    return s.p == s.end;
}

/* parse_rfc850_date - day-name-l "," SP day "-" month "-" 2DIGIT SP time-of-day SP "GMT".
 * RFC 9110 §5.6.7: a two-digit year that would be more than 50 years in the future is the
 * most recent past year with those digits; otherwise we take the nearest, i.e. the year in
 * (now - 50, now + 50] ending in those digits. */
static bool parse_rfc850_date(struct scan s, int64_t now_year, struct http_date *d)
{
    int yy;
    if ((d->weekday = scan_name(&s, day_names_long, 7)) < 0 || !scan_lit(&s, ", ") ||
        !scan_digits(&s, 2, &d->day) || !scan_lit(&s, "-") ||
        (d->month = scan_name(&s, month_names, 12) + 1) == 0 || !scan_lit(&s, "-") ||
        !scan_digits(&s, 2, &yy) || !scan_lit(&s, " ") || !scan_time(&s, d) ||
        !scan_lit(&s, " GMT") || s.p != s.end)
        return false;
    int64_t year = floor_div(now_year, 100) * 100 + yy;
    if (year > now_year + RFC850_WINDOW)
        year -= 100;
    else if (year <= now_year - RFC850_WINDOW)
        year += 100;
    d->year = year;
    return true;
}

/* parse_asctime_date - day-name SP month SP ( 2DIGIT / ( SP DIGIT ) ) SP time-of-day SP
 * year(4DIGIT). */
static bool parse_asctime_date(struct scan s, struct http_date *d)
{
    int year;
    if ((d->weekday = scan_name(&s, day_names, 7)) < 0 || !scan_lit(&s, " ") ||
        (d->month = scan_name(&s, month_names, 12) + 1) == 0 || !scan_lit(&s, " "))
        return false;
    if (!(scan_lit(&s, " ") ? scan_digits(&s, 1, &d->day) : scan_digits(&s, 2, &d->day)))
        return false;
    if (!scan_lit(&s, " ") || !scan_time(&s, d) || !scan_lit(&s, " ") || !scan_digits(&s, 4, &year))
        return false;
    d->year = year;
    return s.p == s.end;
}

/* date_to_unix_ms - the date as milliseconds since the epoch, after the range checks the
 * ABNF leaves to the text: a day that exists in its month, hours 00-23, minutes 00-59,
 * seconds 00-59 or the leap second 23:59:60 (§5.6.7's "00:00:00 - 23:59:60"), and a
 * day-name that is the date's weekday (RFC 5322 §3.3 requires it; IMF-fixdate is a profile
 * of its date-time). false when a field is out of range. */
static bool date_to_unix_ms(const struct http_date *d, int64_t *out)
{
    if (d->month < 1 || d->month > 12 || d->day < 1 || d->day > days_in_month(d->year, d->month))
        return false;
    if (d->hour > 23 || d->minute > 59 || d->second > 60)
        return false;
    if (d->second == 60 && (d->hour != 23 || d->minute != 59))
        return false;
    int64_t days = days_from_civil(d->year, d->month, d->day);
    if (weekday_of_days(days) != d->weekday)
        return false;
    /* A two-digit year near an extreme now could leave int64 milliseconds. */
    if (days < -DAYS_MS_FIT || days >= DAYS_MS_FIT)
        return false;
    int64_t seconds = days * SECONDS_PER_DAY + d->hour * 3600 + d->minute * 60 + d->second;
    *out = seconds * (int64_t)MS_PER_SECOND;
    return true;
}

/* now_year - the civil year that now_unix_ms falls in. */
static int64_t now_year(int64_t now_unix_ms)
{
    return year_of_days(floor_div(now_unix_ms, MS_PER_DAY));
}

/* parse_http_date - any of the three forms, as Unix milliseconds. */
static bool parse_http_date(struct scan s, int64_t now_unix_ms, int64_t *out)
{
    struct http_date d;
    memset(&d, 0, sizeof(d));
    bool ok = parse_imf_fixdate(s, &d) || parse_rfc850_date(s, now_year(now_unix_ms), &d) ||
              parse_asctime_date(s, &d);
    return ok && date_to_unix_ms(&d, out);
}

/* ---- Retry-After (RFC 9110 §10.2.3) ------------------------------------------------------ */

/* is_trim - whitespace around a field value: OWS (SP, HTAB; RFC 9110 §5.5 excludes it from
 * the value) and the CR LF a raw header line still ends with. */
static bool is_trim(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* parse_delay_seconds - delay-seconds = 1*DIGIT (RFC 9110 §10.2.3), in milliseconds; a
 * number too large saturates at UINT64_MAX instead of wrapping. */
static bool parse_delay_seconds(struct scan s, uint64_t *out)
{
    uint64_t seconds = 0;
    if (s.p == s.end)
        return false;
    for (; s.p < s.end; s.p++) {
        unsigned char c = (unsigned char)*s.p;
        if (c < '0' || c > '9')
            return false;
        seconds = sat_add(sat_mul(seconds, 10), (uint64_t)(c - '0'));
    }
    *out = sat_mul(seconds, MS_PER_SECOND);
    return true;
}

/* retry_after_parse - see retry.h. Surrounding whitespace is ignored; inside the value the
 * grammar is exact (single spaces, case-sensitive names). On false *delay_ms is 0. */
bool retry_after_parse(const char *value, size_t len, int64_t now_unix_ms, uint64_t *delay_ms)
{
    *delay_ms = 0;
    if (value == NULL)
        return false;
    struct scan s = {value, value + len};
    while (s.p < s.end && is_trim(*s.p))
        s.p++;
    while (s.end > s.p && is_trim(s.end[-1]))
        s.end--;
    if (s.p < s.end && *s.p >= '0' && *s.p <= '9')
        return parse_delay_seconds(s, delay_ms);
    int64_t when_ms;
    if (!parse_http_date(s, now_unix_ms, &when_ms))
        return false;
    /* The difference of two int64 values fits uint64 when it is positive. */
    *delay_ms = when_ms > now_unix_ms ? (uint64_t)when_ms - (uint64_t)now_unix_ms : 0;
    return true;
}
