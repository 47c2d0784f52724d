/* test_metrics.c - unit tests of metrics.c: the text format of counters, gauges and
 * histograms, with and without labels, against golden strings; escaping of help texts and
 * label values; numbers (exact whole counts past 2^53, 1e21 as a float, NaN and the
 * infinities, shortest round-trip fractions); cumulative buckets with +Inf, _sum and _count;
 * the series cap and the overflow series; collectors; the names registration refuses.
 *
 * With METRICS_SAMPLE_OUT set in the environment, the sample of every kind is also written
 * to that file, for a look with "promtool check metrics" (never needed by the test). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtphook/error.h"
#include "smtphook/metrics.h"

#define L(...) ((const char *const[]){__VA_ARGS__, NULL}) /* label names or values */

/* new_registry - an empty registry, or the test fails. */
static struct metrics *new_registry(void)
{
    struct metrics *m = NULL;
    assert_int_equal(metrics_new(42, &m), 0);
    assert_non_null(m);
    return m;
}

/* assert_render - the registry renders exactly want. */
static void assert_render(struct metrics *m, const char *want)
{
    struct buf out = {0};
    assert_int_equal(metrics_render(m, &out), 0);
    assert_int_equal(buf_append(&out, "", 1), 0);
    assert_string_equal(out.data, want);
    buf_free(&out);
}

/* A family without labels is written at 0 from registration on; inc and add count up. */
static void test_counter_without_labels(void **state)
{
    (void)state;
    struct metrics *m = new_registry();
    assert_render(m, "");
    struct metric_family *f = NULL;
    assert_int_equal(metrics_counter(m, "smtphook_messages_total", "Messages accepted.", NULL, &f),
                     0);
    assert_render(m, "# HELP smtphook_messages_total Messages accepted.\n"
                     "# TYPE smtphook_messages_total counter\n"
                     "smtphook_messages_total 0\n");
    struct metric_series *s = metrics_series(m, f, NULL);
    assert_non_null(s);
    metrics_inc(s);
    metrics_add(s, 41);
    metrics_add(s, -5);  /* counters never go down */
    metrics_add(s, NAN); /* nor become NaN */
    metrics_set(s, 7);   /* set is for gauges */
    metrics_observe(s, 7);
    assert_ptr_equal(metrics_series(m, f, L("ignored")), s);
    assert_int_equal(metrics_series_count(f), 1);
    assert_render(m, "# HELP smtphook_messages_total Messages accepted.\n"
                     "# TYPE smtphook_messages_total counter\n"
                     "smtphook_messages_total 42\n");
    metrics_free(m);
}

/* Whole counts stay exact past 2^53; fractions are kept apart; 1e21 is written as a float. */
static void test_counter_exact(void **state)
{
    (void)state;
    struct metrics *m = new_registry();
    struct metric_family *big = NULL, *frac = NULL, *huge = NULL;
    assert_int_equal(metrics_counter(m, "a_total", "Big.", NULL, &big), 0);
    assert_int_equal(metrics_counter(m, "b_seconds_total", "Fractions.", NULL, &frac), 0);
    assert_int_equal(metrics_counter(m, "c_total", "Huge.", NULL, &huge), 0);
    struct metric_series *s = metrics_series(m, big, NULL);
    metrics_add(s, 9007199254740992.0); /* 2^53 */
    metrics_inc(s);                     /* 2^53 + 1: no double holds it */
    struct metric_series *t = metrics_series(m, frac, NULL);
    metrics_add(t, 0.25);
    metrics_add(t, 0.25);
    metrics_inc(t);
    metrics_add(t, 0.1);
    metrics_add(metrics_series(m, huge, NULL), 1e21);
    assert_render(m, "# HELP a_total Big.\n"
                     "# TYPE a_total counter\n"
                     "a_total 9007199254740993\n"
                     "# HELP b_seconds_total Fractions.\n"
                     "# TYPE b_seconds_total counter\n"
                     "b_seconds_total 1.6\n"
                     "# HELP c_total Huge.\n"
                     "# TYPE c_total counter\n"
                     "c_total 1e+21\n");

    /* Up to 2^64 - 1 whole counts are exact; from 2^64 on a whole value is a fraction. */
    struct metric_family *top = NULL;
    assert_int_equal(metrics_counter(m, "d_total", "Top.", NULL, &top), 0);
    struct metric_series *u = metrics_series(m, top, NULL);
    metrics_add(u, 18446744073709549568.0); /* 2^64 - 2048, the largest double below 2^64 */
    metrics_add(u, 2047);
    struct buf out = {0};
    assert_int_equal(metrics_render(m, &out), 0);
    assert_int_equal(buf_append(&out, "", 1), 0);
    assert_non_null(strstr(out.data, "\nd_total 18446744073709551615\n"));
    buf_free(&out);
    metrics_add(metrics_series(m, big, NULL), 18446744073709551616.0);
    assert_int_equal(metrics_render(m, &out), 0);
    assert_int_equal(buf_append(&out, "", 1), 0);
    assert_non_null(strstr(out.data, "\na_total 18455751272964292608\n")); /* as a double */
    buf_free(&out);
    metrics_free(m);
}

/* Gauges: set, moved both ways, fractional, NaN and the infinities. */
static void test_gauge(void **state)
{
    (void)state;
    struct metrics *m = new_registry();
    struct metric_family *f = NULL;
    assert_int_equal(metrics_gauge(m, "smtphook_g", "A gauge.", L("k"), &f), 0);
    /* With labels and no series yet: HELP and TYPE only. */
    assert_render(m, "# HELP smtphook_g A gauge.\n"
                     "# TYPE smtphook_g gauge\n");
    struct metric_series *a = metrics_series(m, f, L("a"));
    struct metric_series *b = metrics_series(m, f, L("b"));
    struct metric_series *c = metrics_series(m, f, L("c"));
    struct metric_series *d = metrics_series(m, f, L("d"));
    struct metric_series *e = metrics_series(m, f, L("e"));
    metrics_set(a, 10);
    metrics_add(a, -12.5);
    metrics_inc(a);
    metrics_set(b, NAN);
    metrics_set(c, INFINITY);
    metrics_set(d, -INFINITY);
    metrics_set(e, 0.1);
    metrics_observe(e, 3); /* not a histogram: ignored */
    assert_render(m, "# HELP smtphook_g A gauge.\n"
                     "# TYPE smtphook_g gauge\n"
                     "smtphook_g{k=\"a\"} -1.5\n"
                     "smtphook_g{k=\"b\"} NaN\n"
                     "smtphook_g{k=\"c\"} +Inf\n"
                     "smtphook_g{k=\"d\"} -Inf\n"
                     "smtphook_g{k=\"e\"} 0.1\n");
    metrics_free(m);
}

/* metrics_clear: a labelled family starts over (its overflow series too), and many more
 * series than its table had room for come back in their new order; a family without labels
 * keeps its one series. */
static void test_clear(void **state)
{
    (void)state;
    struct metrics *m = new_registry();
    struct metric_family *f = NULL, *plain = NULL;
    assert_int_equal(metrics_gauge(m, "smtphook_g", "A gauge.", L("k"), &f), 0);
    assert_int_equal(metrics_gauge(m, "smtphook_p", "Plain.", NULL, &plain), 0);
    char label[16];
    for (int i = 0; i < 40; i++) {
        snprintf(label, sizeof(label), "%d", i);
        metrics_set(metrics_series(m, f, L(label)), i);
    }
    metrics_set(metrics_series(m, f, NULL), 7); /* the overflow series */
    metrics_set(metrics_series(m, plain, NULL), 3);
    assert_int_equal(metrics_series_count(f), 41);
    metrics_clear(f);
    metrics_clear(plain);
    assert_int_equal(metrics_series_count(f), 0);
    assert_render(m, "# HELP smtphook_g A gauge.\n"
                     "# TYPE smtphook_g gauge\n"
                     "# HELP smtphook_p Plain.\n"
                     "# TYPE smtphook_p gauge\n"
                     "smtphook_p 3\n");
    metrics_set(metrics_series(m, f, L("1")), 11);
    metrics_set(metrics_series(m, f, L("0")), 10);
    assert_true(metrics_series(m, f, L("1")) == metrics_series(m, f, L("1")));
    assert_render(m, "# HELP smtphook_g A gauge.\n"
                     "# TYPE smtphook_g gauge\n"
                     "smtphook_g{k=\"1\"} 11\n"
                     "smtphook_g{k=\"0\"} 10\n"
                     "# HELP smtphook_p Plain.\n"
                     "# TYPE smtphook_p gauge\n"
                     "smtphook_p 3\n");
    metrics_clear(f);
    metrics_series(m, f, NULL); /* the overflow series starts at 0 again */
    assert_render(m, "# HELP smtphook_g A gauge.\n"
                     "# TYPE smtphook_g gauge\n"
                     "smtphook_g{k=\"other\"} 0\n"
                     "# HELP smtphook_p Plain.\n"
                     "# TYPE smtphook_p gauge\n"
                     "smtphook_p 3\n");
    metrics_free(m);
}

/* Series by label values: the same values give the same handle, creation order is kept,
 * ("a", "bc") and ("ab", "c") are different series. */
static void test_labels(void **state)
{
    (void)state;
    struct metrics *m = new_registry();
    struct metric_family *f = NULL;
    assert_int_equal(
        metrics_counter(m, "smtphook_replies_total", "Replies.", L("code", "verb", "x"), &f), 0);
    struct metric_series *s1 = metrics_series(m, f, L("250", "MAIL", "a"));
    struct metric_series *s2 = metrics_series(m, f, L("550", "RCPT", "bc"));
    struct metric_series *s3 = metrics_series(m, f, L("550", "RCPT", "b"));
    struct metric_series *s4 = metrics_series(m, f, L("550", "RCPTb", "c"));
    struct metric_series *s5 = metrics_series(m, f, L("", "", ""));
    assert_ptr_not_equal(s1, s2);
    assert_ptr_not_equal(s2, s3);
    assert_ptr_not_equal(s2, s4);
    char code[] = "250", verb[] = "MAIL", x[] = "a"; /* copies: compared by value */
    const char *values[] = {code, verb, x};
    assert_ptr_equal(metrics_series(m, f, values), s1);
    code[0] = '9'; /* the series kept its own copy */
    metrics_inc(s1);
    metrics_add(s2, 2);
    metrics_add(s3, 3);
    metrics_add(s4, 4);
    metrics_add(s5, 5);
    assert_int_equal(metrics_series_count(f), 5);
    assert_render(m, "# HELP smtphook_replies_total Replies.\n"
                     "# TYPE smtphook_replies_total counter\n"
                     "smtphook_replies_total{code=\"250\",verb=\"MAIL\",x=\"a\"} 1\n"
                     "smtphook_replies_total{code=\"550\",verb=\"RCPT\",x=\"bc\"} 2\n"
                     "smtphook_replies_total{code=\"550\",verb=\"RCPT\",x=\"b\"} 3\n"
                     "smtphook_replies_total{code=\"550\",verb=\"RCPTb\",x=\"c\"} 4\n"
                     "smtphook_replies_total{code=\"\",verb=\"\",x=\"\"} 5\n");
    metrics_free(m);
}

/* Help: backslash and newline escaped, the double quote not; label values: all three. */
static void test_escaping(void **state)
{
    (void)state;
    struct metrics *m = new_registry();
    struct metric_family *f = NULL;
    assert_int_equal(metrics_gauge(m, "smtphook_esc", "A \\ \"quoted\"\nhelp é", L("v"), &f), 0);
    metrics_set(metrics_series(m, f, L("back\\slash \"q\"\nnl é")), 1);
    metrics_set(metrics_series(m, f, L("\\\\\"\"\n\n")), 2);
    assert_render(m, "# HELP smtphook_esc A \\\\ \"quoted\"\\nhelp é\n"
                     "# TYPE smtphook_esc gauge\n"
                     "smtphook_esc{v=\"back\\\\slash \\\"q\\\"\\nnl é\"} 1\n"
                     "smtphook_esc{v=\"\\\\\\\\\\\"\\\"\\n\\n\"} 2\n");
    metrics_free(m);
}

/* Histograms: an observation counts in the first bucket whose bound is >= it, the buckets
 * are written cumulatively, +Inf equals _count; with labels le comes last. */
static void test_histogram(void **state)
{
    (void)state;
    struct metrics *m = new_registry();
    static const double bounds[] = {0.005, 0.1, 1, 2.5};
    struct metric_family *h = NULL, *hl = NULL, *h0 = NULL;
    assert_int_equal(metrics_histogram(m, "smtphook_d_seconds", "Durations.", NULL, bounds, 4, &h),
                     0);
    assert_int_equal(
        metrics_histogram(m, "smtphook_s_bytes", "Sizes.", L("ep"), bounds + 1, 2, &hl), 0);
    assert_int_equal(metrics_histogram(m, "smtphook_n", "Only +Inf.", NULL, NULL, 0, &h0), 0);
    assert_render(m, "# HELP smtphook_d_seconds Durations.\n"
                     "# TYPE smtphook_d_seconds histogram\n"
                     "smtphook_d_seconds_bucket{le=\"0.005\"} 0\n"
                     "smtphook_d_seconds_bucket{le=\"0.1\"} 0\n"
                     "smtphook_d_seconds_bucket{le=\"1\"} 0\n"
                     "smtphook_d_seconds_bucket{le=\"2.5\"} 0\n"
                     "smtphook_d_seconds_bucket{le=\"+Inf\"} 0\n"
                     "smtphook_d_seconds_sum 0\n"
                     "smtphook_d_seconds_count 0\n"
                     "# HELP smtphook_s_bytes Sizes.\n"
                     "# TYPE smtphook_s_bytes histogram\n"
                     "# HELP smtphook_n Only +Inf.\n"
                     "# TYPE smtphook_n histogram\n"
                     "smtphook_n_bucket{le=\"+Inf\"} 0\n"
                     "smtphook_n_sum 0\n"
                     "smtphook_n_count 0\n");

    struct metric_series *s = metrics_series(m, h, NULL);
    metrics_observe(s, -1);    /* le 0.005 */
    metrics_observe(s, 0.005); /* le 0.005: bounds are inclusive */
    metrics_observe(s, 0.05);  /* le 0.1 */
    metrics_observe(s, 0.1);   /* le 0.1 */
    metrics_observe(s, 2.5);   /* le 2.5 */
    metrics_observe(s, 3);     /* +Inf only */
    metrics_observe(s, NAN);   /* ignored */
    metrics_inc(s);            /* not a counter: ignored */
    metrics_add(s, 1);
    struct metric_series *a = metrics_series(m, hl, L("a"));
    struct metric_series *b = metrics_series(m, hl, L("b"));
    metrics_observe(b, 1);
    metrics_observe(b, 1e300);
    metrics_observe(a, 0.5);
    metrics_observe(metrics_series(m, h0, NULL), 7);
    assert_render(m, "# HELP smtphook_d_seconds Durations.\n"
                     "# TYPE smtphook_d_seconds histogram\n"
                     "smtphook_d_seconds_bucket{le=\"0.005\"} 2\n"
                     "smtphook_d_seconds_bucket{le=\"0.1\"} 4\n"
                     "smtphook_d_seconds_bucket{le=\"1\"} 4\n"
                     "smtphook_d_seconds_bucket{le=\"2.5\"} 5\n"
                     "smtphook_d_seconds_bucket{le=\"+Inf\"} 6\n"
                     "smtphook_d_seconds_sum 4.655\n"
                     "smtphook_d_seconds_count 6\n"
                     "# HELP smtphook_s_bytes Sizes.\n"
                     "# TYPE smtphook_s_bytes histogram\n"
                     "smtphook_s_bytes_bucket{ep=\"a\",le=\"0.1\"} 0\n"
                     "smtphook_s_bytes_bucket{ep=\"a\",le=\"1\"} 1\n"
                     "smtphook_s_bytes_bucket{ep=\"a\",le=\"+Inf\"} 1\n"
                     "smtphook_s_bytes_sum{ep=\"a\"} 0.5\n"
                     "smtphook_s_bytes_count{ep=\"a\"} 1\n"
                     "smtphook_s_bytes_bucket{ep=\"b\",le=\"0.1\"} 0\n"
                     "smtphook_s_bytes_bucket{ep=\"b\",le=\"1\"} 1\n"
                     "smtphook_s_bytes_bucket{ep=\"b\",le=\"+Inf\"} 2\n"
                     "smtphook_s_bytes_sum{ep=\"b\"} 1e+300\n"
                     "smtphook_s_bytes_count{ep=\"b\"} 2\n"
                     "# HELP smtphook_n Only +Inf.\n"
                     "# TYPE smtphook_n histogram\n"
                     "smtphook_n_bucket{le=\"+Inf\"} 1\n"
                     "smtphook_n_sum 7\n"
                     "smtphook_n_count 1\n");
    metrics_free(m);
}

/* Many observations: every bucket equals a direct count of the values at or below it. */
static void test_histogram_many(void **state)
{
    (void)state;
    struct metrics *m = new_registry();
    static const double bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
    struct metric_family *h = NULL;
    assert_int_equal(metrics_histogram(m, "h", "H.", NULL, bounds, 10, &h), 0);
    struct metric_series *s = metrics_series(m, h, NULL);
    uint64_t want[11] = {0};
    for (unsigned i = 0; i < 100000; i++) {
        double v = (double)((i * 7919u) % 1000u) / 1.7;
        metrics_observe(s, v);
        for (unsigned b = 0; b < 10; b++)
            if (v <= bounds[b])
                want[b]++;
        want[10]++;
    }
    struct buf out = {0};
    assert_int_equal(metrics_render(m, &out), 0);
    assert_int_equal(buf_append(&out, "", 1), 0);
    char line[128];
    for (unsigned b = 0; b < 11; b++) {
        char le[METRICS_VALUE_MAX] = "+Inf";
        if (b < 10)
            metrics_format_value(bounds[b], le);
        snprintf(line, sizeof(line), "h_bucket{le=\"%s\"} %llu\n", le, (unsigned long long)want[b]);
        assert_non_null(strstr(out.data, line));
    }
    assert_non_null(strstr(out.data, "h_count 100000\n"));
    buf_free(&out);
    metrics_free(m);
}

/* At most METRICS_MAX_SERIES series; then, and for values that are too long, not UTF-8,
 * NULL or all "other", the overflow series, written last once used. */
static void test_series_cap(void **state)
{
    (void)state;
    struct metrics *m = new_registry();
    struct metric_family *f = NULL;
    assert_int_equal(metrics_counter(m, "c_total", "C.", L("client", "kind"), &f), 0);
    struct metric_series *first[METRICS_MAX_SERIES];
    char v[32];
    for (unsigned i = 0; i < METRICS_MAX_SERIES; i++) {
        snprintf(v, sizeof(v), "10.0.%u.%u", i / 256, i % 256);
        first[i] = metrics_series(m, f, L(v, "x"));
        assert_non_null(first[i]);
        for (unsigned j = 0; j < i; j += 97)
            assert_ptr_not_equal(first[j], first[i]);
        metrics_inc(first[i]);
    }
    assert_int_equal(metrics_series_count(f), METRICS_MAX_SERIES);
    for (unsigned i = 0; i < METRICS_MAX_SERIES; i++) {
        snprintf(v, sizeof(v), "10.0.%u.%u", i / 256, i % 256);
        assert_ptr_equal(metrics_series(m, f, L(v, "x")), first[i]);
    }

    struct metric_series *o = metrics_series(m, f, L("192.0.2.1", "x"));
    assert_non_null(o);
    assert_int_equal(metrics_series_count(f), METRICS_MAX_SERIES + 1);
    assert_ptr_equal(metrics_series(m, f, L("192.0.2.2", "y")), o);
    assert_ptr_equal(metrics_series(m, f, L("other", "other")), o);
    assert_ptr_equal(metrics_series(m, f, L("10.0.0.0", "x")), first[0]); /* old ones stay */
    metrics_add(o, 5);
    assert_int_equal(metrics_series_count(f), METRICS_MAX_SERIES + 1);

    struct buf out = {0};
    assert_int_equal(metrics_render(m, &out), 0);
    assert_int_equal(buf_append(&out, "", 1), 0);
    const char *tail = "c_total{client=\"10.0.3.231\",kind=\"x\"} 1\n"
                       "c_total{client=\"other\",kind=\"other\"} 5\n";
    assert_true(out.len - 1 >= strlen(tail));
    assert_string_equal(out.data + out.len - 1 - strlen(tail), tail);
    size_t lines = 0;
    for (size_t i = 0; i < out.len; i++)
        lines += out.data[i] == '\n';
    assert_int_equal(lines, 2 + METRICS_MAX_SERIES + 1);
    buf_free(&out);
    metrics_free(m);
}

/* Without the cap reached, bad label values still go to the overflow series; a regular
 * series may have "other" in some of its values. */
static void test_overflow_values(void **state)
{
    (void)state;
    struct metrics *m = new_registry();
    struct metric_family *f = NULL;
    assert_int_equal(metrics_gauge(m, "g", "G.", L("a", "b"), &f), 0);
    struct metric_series *o = metrics_series(m, f, L("other", "other"));
    assert_int_equal(metrics_series_count(f), 1);
    char long_value[METRICS_LABEL_VALUE_MAX + 2];
    memset(long_value, 'x', sizeof(long_value) - 1);
    long_value[sizeof(long_value) - 1] = '\0';
    assert_ptr_equal(metrics_series(m, f, L(long_value, "b")), o);
    long_value[METRICS_LABEL_VALUE_MAX] = '\0'; /* just fits */
    struct metric_series *fits = metrics_series(m, f, L(long_value, "b"));
    assert_ptr_not_equal(fits, o);
    assert_ptr_equal(metrics_series(m, f, L("\xff", "b")), o);
    assert_ptr_equal(metrics_series(m, f, L("a", "\xc3")), o);
    assert_ptr_equal(metrics_series(m, f, ((const char *const[]){"a", NULL})), o);
    assert_ptr_equal(metrics_series(m, f, NULL), o);
    struct metric_series *half = metrics_series(m, f, L("other", "b"));
    assert_ptr_not_equal(half, o);
    metrics_set(o, 1);
    metrics_set(half, 2);
    assert_int_equal(metrics_series_count(f), 3);

    struct buf out = {0};
    assert_int_equal(metrics_render(m, &out), 0);
    assert_int_equal(buf_append(&out, "", 1), 0);
    const char *tail = "g{a=\"other\",b=\"b\"} 2\n"
                       "g{a=\"other\",b=\"other\"} 1\n";
    assert_string_equal(out.data + out.len - 1 - strlen(tail), tail);
    buf_free(&out);
    metrics_free(m);
}

/* Numbers: whole ones below 1e21 as integers, others in the shortest form that reads back
 * as the same double. */
static void test_format_value(void **state)
{
    (void)state;
    static const struct {
        double v;
        const char *text;
    } rows[] = {
        {0, "0"},
        {42, "42"},
        {-3, "-3"},
        {1e15, "1000000000000000"},
        {9007199254740992.0, "9007199254740992"},
        {9007199254740994.0, "9007199254740994"},
        {18446744073709551616.0, "18446744073709551616"},
        {1e20, "100000000000000000000"},
        {999999999999999868928.0, "999999999999999868928"}, /* the largest double < 1e21 */
        {1e21, "1e+21"},
        {-1e21, "-1e+21"},
        {1e300, "1e+300"},
        {0.1, "0.1"},
        {0.005, "0.005"},
        {2.5, "2.5"},
        {-0.25, "-0.25"},
        {1.5e-7, "1.5e-07"},
        {1.0 / 3, "0.3333333333333333"},
        {0.1 + 0.2, "0.30000000000000004"},
        {DBL_MAX, "1.7976931348623157e+308"},
        {DBL_MIN, "2.2250738585072014e-308"},
        {4.9406564584124654e-324, "5e-324"},
        {NAN, "NaN"},
        {INFINITY, "+Inf"},
        {-INFINITY, "-Inf"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char text[METRICS_VALUE_MAX];
        size_t n = metrics_format_value(rows[i].v, text);
        if (strcmp(text, rows[i].text) != 0)
            print_message("row %zu: got %s, want %s\n", i, text, rows[i].text);
        assert_string_equal(text, rows[i].text);
        assert_int_equal(n, strlen(text));
        if (isfinite(rows[i].v))
            assert_true(strtod(text, NULL) == rows[i].v);
    }
    /* Every double of a spread reads back exactly. */
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (unsigned i = 0; i < 20000; i++) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        uint64_t bits = x * 0x2545f4914f6cdd1dull;
        double v;
        memcpy(&v, &bits, sizeof(v));
        if (!isfinite(v))
            continue;
        char text[METRICS_VALUE_MAX];
        metrics_format_value(v, text);
        assert_true(strtod(text, NULL) == v);
    }
}

struct collect {
    struct metric_series *open;
    unsigned calls;
    char order[8];
};

static void collect_open(void *arg, struct metrics *m)
{
    (void)m;
    struct collect *c = arg;
    c->calls++;
    metrics_set(c->open, (double)c->calls * 10);
    strcat(c->order, "a");
}

static void collect_second(void *arg, struct metrics *m)
{
    (void)m;
    struct collect *c = arg;
    strcat(c->order, "b");
}

/* Collectors run at every render, in the order they were added, before anything is written. */
static void test_collector(void **state)
{
    (void)state;
    struct metrics *m = new_registry();
    struct metric_family *f = NULL;
    assert_int_equal(metrics_gauge(m, "smtphook_open_connections", "Open.", NULL, &f), 0);
    struct collect c = {metrics_series(m, f, NULL), 0, ""};
    assert_int_equal(metrics_on_render(m, collect_open, &c), 0);
    assert_int_equal(metrics_on_render(m, collect_second, &c), 0);
    assert_render(m, "# HELP smtphook_open_connections Open.\n"
                     "# TYPE smtphook_open_connections gauge\n"
                     "smtphook_open_connections 10\n");
    assert_render(m, "# HELP smtphook_open_connections Open.\n"
                     "# TYPE smtphook_open_connections gauge\n"
                     "smtphook_open_connections 20\n");
    assert_string_equal(c.order, "abab");
    metrics_free(m);
}

/* Everything registration refuses, and that a refusal registers nothing. */
static void test_name_validation(void **state)
{
    (void)state;
    struct metrics *m = new_registry();
    struct metric_family *f = NULL;
    static const double ok_bounds[] = {1, 2};
    char long_name[METRICS_NAME_MAX + 2];
    memset(long_name, 'a', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';

    /* Metric names. */
    static const char *const bad_names[] = {
        "", "1abc", "a-b", "a b", "a.b", "é", "a\n", "smtphook_x{}", "smtphook_x\"",
    };
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++)
        assert_int_equal(metrics_gauge(m, bad_names[i], "H.", NULL, &f), SH_EINVAL);
    assert_int_equal(metrics_gauge(m, NULL, "H.", NULL, &f), SH_EINVAL);
    assert_int_equal(metrics_gauge(m, long_name, "H.", NULL, &f), SH_EINVAL);
    long_name[METRICS_NAME_MAX] = '\0';
    assert_int_equal(metrics_gauge(m, long_name, "H.", NULL, &f), 0);
    assert_int_equal(metrics_gauge(m, "_a:b9", "Colons and underscores.", NULL, &f), 0);
    assert_int_equal(metrics_gauge(m, ":a", "A colon first.", NULL, &f), 0);

    /* _total is for counters, and counters have it. */
    assert_int_equal(metrics_counter(m, "smtphook_messages", "H.", NULL, &f), SH_EINVAL);
    assert_int_equal(metrics_counter(m, "smtphook_messages_totals", "H.", NULL, &f), SH_EINVAL);
    assert_int_equal(metrics_counter(m, "_total", "H.", NULL, &f), SH_EINVAL);
    assert_int_equal(metrics_gauge(m, "smtphook_g_total", "H.", NULL, &f), SH_EINVAL);
    assert_int_equal(metrics_histogram(m, "smtphook_h_total", "H.", NULL, ok_bounds, 2, &f),
                     SH_EINVAL);

    /* Help texts. */
    assert_int_equal(metrics_gauge(m, "smtphook_h1", "", NULL, &f), SH_EINVAL);
    assert_int_equal(metrics_gauge(m, "smtphook_h2", NULL, NULL, &f), SH_EINVAL);
    assert_int_equal(metrics_gauge(m, "smtphook_h3", "bad \xff", NULL, &f), SH_EINVAL);

    /* Label names. */
    assert_int_equal(metrics_gauge(m, "smtphook_l", "H.", L("__reserved"), &f), SH_EINVAL);
    assert_int_equal(metrics_gauge(m, "smtphook_l", "H.", L("a:b"), &f), SH_EINVAL);
    assert_int_equal(metrics_gauge(m, "smtphook_l", "H.", L("1a"), &f), SH_EINVAL);
    assert_int_equal(metrics_gauge(m, "smtphook_l", "H.", L(""), &f), SH_EINVAL);
    assert_int_equal(metrics_gauge(m, "smtphook_l", "H.", L("a", "b", "a"), &f), SH_EINVAL);
    assert_int_equal(metrics_gauge(m, "smtphook_l", "H.", L("a", "b", "c", "d"), &f), SH_EINVAL);
    assert_int_equal(metrics_histogram(m, "smtphook_l", "H.", L("le"), ok_bounds, 2, &f),
                     SH_EINVAL);
    assert_int_equal(metrics_gauge(m, "smtphook_l", "H.", L("le", "_a", "b"), &f), 0);

    /* Bucket bounds. */
    static const double unsorted[] = {1, 0.5};
    static const double equal[] = {1, 1};
    static const double nan_bound[] = {1, NAN};
    static const double inf_bound[] = {1, INFINITY};
    assert_int_equal(metrics_histogram(m, "h", "H.", NULL, unsorted, 2, &f), SH_EINVAL);
    assert_int_equal(metrics_histogram(m, "h", "H.", NULL, equal, 2, &f), SH_EINVAL);
    assert_int_equal(metrics_histogram(m, "h", "H.", NULL, nan_bound, 2, &f), SH_EINVAL);
    assert_int_equal(metrics_histogram(m, "h", "H.", NULL, inf_bound, 2, &f), SH_EINVAL);
    assert_int_equal(metrics_histogram(m, "h", "H.", NULL, NULL, 2, &f), SH_EINVAL);
    assert_int_equal(metrics_histogram(m, "h", "H.", NULL, ok_bounds, METRICS_MAX_BUCKETS + 1, &f),
                     SH_EINVAL);
    assert_int_equal(metrics_register(m, METRIC_GAUGE, "h", "H.", NULL, ok_bounds, 2, &f),
                     SH_EINVAL);
    assert_int_equal(metrics_register(m, (enum metric_type)7, "h", "H.", NULL, NULL, 0, &f),
                     SH_EINVAL);

    /* Names taken, also by a histogram's lines. */
    assert_int_equal(metrics_histogram(m, "h", "H.", NULL, ok_bounds, 2, &f), 0);
    assert_int_equal(metrics_histogram(m, "h", "H.", NULL, ok_bounds, 2, &f), SH_EINVAL);
    assert_int_equal(metrics_gauge(m, "h", "H.", NULL, &f), SH_EINVAL);
    assert_int_equal(metrics_gauge(m, "h_sum", "H.", NULL, &f), SH_EINVAL);
    assert_int_equal(metrics_gauge(m, "h_count", "H.", NULL, &f), SH_EINVAL);
    assert_int_equal(metrics_gauge(m, "h_bucket", "H.", NULL, &f), SH_EINVAL);
    assert_int_equal(metrics_gauge(m, "x_count", "H.", NULL, &f), 0);
    assert_int_equal(metrics_histogram(m, "x", "H.", NULL, ok_bounds, 2, &f), SH_EINVAL);
    assert_int_equal(metrics_histogram(m, "h_sum", "H.", NULL, ok_bounds, 2, &f), SH_EINVAL);
    assert_int_equal(metrics_gauge(m, "h_summary", "H.", NULL, &f), 0);

    /* Only the accepted families were registered. */
    struct buf out = {0};
    assert_int_equal(metrics_render(m, &out), 0);
    assert_int_equal(buf_append(&out, "", 1), 0);
    size_t types = 0;
    for (const char *p = out.data; (p = strstr(p, "# TYPE ")) != NULL; p++)
        types++;
    assert_int_equal(types, 7);
    buf_free(&out);
    metrics_free(m);
}

/* sample - a registry with every kind, as the admin port might have it. */
static const char sample_text[] =
    "# HELP smtphook_messages_total Messages accepted.\n"
    "# TYPE smtphook_messages_total counter\n"
    "smtphook_messages_total 3\n"
    "# HELP smtphook_deliveries_total Deliveries by endpoint and outcome.\n"
    "# TYPE smtphook_deliveries_total counter\n"
    "smtphook_deliveries_total{endpoint=\"app \\\"main\\\"\",outcome=\"ok\"} 2\n"
    "smtphook_deliveries_total{endpoint=\"a\\\\b\\nc\",outcome=\"temporary\"} 1\n"
    "smtphook_deliveries_total{endpoint=\"other\",outcome=\"other\"} 4\n"
    "# HELP smtphook_open_connections Connections open now.\n"
    "# TYPE smtphook_open_connections gauge\n"
    "smtphook_open_connections 7\n"
    "# HELP smtphook_certificate_expiry_seconds Certificate expiry, Unix time.\n"
    "# TYPE smtphook_certificate_expiry_seconds gauge\n"
    "smtphook_certificate_expiry_seconds{name=\"mx.example\"} 1798761600.5\n"
    "# HELP smtphook_delivery_duration_seconds Time of a delivery \\\\ \"quoted\"\\nsecond "
    "line.\n"
    "# TYPE smtphook_delivery_duration_seconds histogram\n"
    "smtphook_delivery_duration_seconds_bucket{le=\"0.005\"} 1\n"
    "smtphook_delivery_duration_seconds_bucket{le=\"0.1\"} 2\n"
    "smtphook_delivery_duration_seconds_bucket{le=\"1\"} 2\n"
    "smtphook_delivery_duration_seconds_bucket{le=\"+Inf\"} 3\n"
    "smtphook_delivery_duration_seconds_sum 12.051\n"
    "smtphook_delivery_duration_seconds_count 3\n"
    "# HELP smtphook_message_size_bytes Message sizes.\n"
    "# TYPE smtphook_message_size_bytes histogram\n"
    "smtphook_message_size_bytes_bucket{listener=\"smtp\",le=\"1024\"} 0\n"
    "smtphook_message_size_bytes_bucket{listener=\"smtp\",le=\"1048576\"} 1\n"
    "smtphook_message_size_bytes_bucket{listener=\"smtp\",le=\"+Inf\"} 1\n"
    "smtphook_message_size_bytes_sum{listener=\"smtp\"} 2048\n"
    "smtphook_message_size_bytes_count{listener=\"smtp\"} 1\n"
    "# HELP smtphook_unused_total A family with labels and no series yet.\n"
    "# TYPE smtphook_unused_total counter\n";

static struct metrics *sample(void)
{
    struct metrics *m = new_registry();
    struct metric_family *msg, *del, *open, *cert, *dur, *size, *unused;
    static const double dur_bounds[] = {0.005, 0.1, 1};
    static const double size_bounds[] = {1024, 1048576};
    assert_int_equal(
        metrics_counter(m, "smtphook_messages_total", "Messages accepted.", NULL, &msg), 0);
    assert_int_equal(metrics_counter(m, "smtphook_deliveries_total",
                                     "Deliveries by endpoint and outcome.",
                                     L("endpoint", "outcome"), &del),
                     0);
    assert_int_equal(
        metrics_gauge(m, "smtphook_open_connections", "Connections open now.", NULL, &open), 0);
    assert_int_equal(metrics_gauge(m, "smtphook_certificate_expiry_seconds",
                                   "Certificate expiry, Unix time.", L("name"), &cert),
                     0);
    assert_int_equal(metrics_histogram(m, "smtphook_delivery_duration_seconds",
                                       "Time of a delivery \\ \"quoted\"\nsecond line.", NULL,
                                       dur_bounds, 3, &dur),
                     0);
    assert_int_equal(metrics_histogram(m, "smtphook_message_size_bytes", "Message sizes.",
                                       L("listener"), size_bounds, 2, &size),
                     0);
    assert_int_equal(metrics_counter(m, "smtphook_unused_total",
                                     "A family with labels and no series yet.", L("x"), &unused),
                     0);
    metrics_add(metrics_series(m, msg, NULL), 3);
    metrics_add(metrics_series(m, del, L("app \"main\"", "ok")), 2);
    metrics_inc(metrics_series(m, del, L("a\\b\nc", "temporary")));
    metrics_add(metrics_series(m, del, L("\xff", "ok")), 4); /* not UTF-8: the overflow */
    metrics_set(metrics_series(m, open, NULL), 7);
    metrics_set(metrics_series(m, cert, L("mx.example")), 1798761600.5);
    struct metric_series *d = metrics_series(m, dur, NULL);
    metrics_observe(d, 0.001);
    metrics_observe(d, 0.05);
    metrics_observe(d, 12);
    metrics_observe(metrics_series(m, size, L("smtp")), 2048);
    return m;
}

/* The sample of every kind, exactly; written to $METRICS_SAMPLE_OUT when set. */
static void test_sample(void **state)
{
    (void)state;
    struct metrics *m = sample();
    struct buf out = {0};
    assert_int_equal(metrics_render(m, &out), 0);
    assert_int_equal(buf_append(&out, "", 1), 0);
    assert_string_equal(out.data, sample_text);
    const char *path = getenv("METRICS_SAMPLE_OUT");
    if (path != NULL) {
        FILE *fp = fopen(path, "w");
        assert_non_null(fp);
        assert_int_equal(fwrite(out.data, 1, out.len - 1, fp), out.len - 1);
        assert_int_equal(fclose(fp), 0);
    }
    buf_free(&out);
    metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_without_labels),
        cmocka_unit_test(test_counter_exact),
        cmocka_unit_test(test_gauge),
        cmocka_unit_test(test_clear),
        cmocka_unit_test(test_labels),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_histogram_many),
        cmocka_unit_test(test_series_cap),
        cmocka_unit_test(test_overflow_values),
        cmocka_unit_test(test_format_value),
        cmocka_unit_test(test_collector),
        cmocka_unit_test(test_name_validation),
        cmocka_unit_test(test_sample),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
