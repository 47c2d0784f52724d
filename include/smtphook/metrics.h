/* metrics.h - a registry of counters, gauges and histograms, written in the Prometheus text
 * exposition format, version 0.0.4 (for the admin port's /metrics).
 *
 * Single-threaded, like everything on the event loop: no locks. Families are registered once
 * at start (a name, a help text, a type, 0..METRICS_MAX_LABELS label names, a histogram's
 * bucket bounds); a series (a family and its label values) is asked for once and kept as a
 * handle, and metrics_inc/add/set/observe only touch its numbers: no allocation, no lookup.
 * A family without labels has its one series from registration on, at 0, so it is always
 * written; one with labels gets a series per distinct label values on first use (copied),
 * at most METRICS_MAX_SERIES of them: later ones, label values that are not valid UTF-8 or
 * longer than METRICS_LABEL_VALUE_MAX, and running out of memory all share the family's
 * overflow series, whose every label value is "other" - so whoever chooses a label value
 * cannot grow the memory held, and a series handle is never NULL.
 *
 * Names follow Prometheus: a metric name is [a-zA-Z_:][a-zA-Z0-9_:]*, a label name
 * [a-zA-Z_][a-zA-Z0-9_]* not beginning with "__". Ours are "smtphook_..." with the unit in
 * the name ("_seconds", "_bytes"); the registry enforces what it can check: a counter's name
 * ends in "_total" and no other's does, a histogram has no label "le", no name is taken
 * twice, not even by a histogram's "_bucket", "_sum" and "_count" lines, names are at most
 * METRICS_NAME_MAX bytes, and a help text is valid UTF-8 and not empty.
 *
 * Counters count in uint64_t, so whole counts up to 2^64 - 1 are written exactly (a counter
 * at 2^53 + 1 shows "9007199254740993"); a counter that is also given fractions (seconds
 * spent, say) keeps them apart in a double and is then written as one. Gauges and sums are
 * doubles, written so that they parse back to the same double: whole values below 1e21 as
 * integers ("42"), others in the shortest "%.*g" that round-trips ("0.1", "1e+21"), and
 * "NaN", "+Inf", "-Inf". Needs the C locale's decimal point (smtphook never calls setlocale).
 *
 * Pure: memory only. */
#ifndef SMTPHOOK_METRICS_H
#define SMTPHOOK_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "smtphook/buf.h"

#define METRICS_NAME_MAX        128u    /* longest metric or label name, in bytes */
#define METRICS_MAX_LABELS      3u      /* label names per family */
#define METRICS_MAX_SERIES      1000u   /* series per family, the overflow series apart */
#define METRICS_MAX_BUCKETS     64u     /* bucket bounds per histogram, +Inf apart */
#define METRICS_LABEL_VALUE_MAX 256u    /* longest label value kept, in bytes */
#define METRICS_OVERFLOW_VALUE  "other" /* every label value of the overflow series */

/* The Content-Type of what metrics_render writes. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

enum metric_type {
    METRIC_COUNTER,   /* only goes up; its name ends in _total */
    METRIC_GAUGE,     /* set, or moved up and down */
    METRIC_HISTOGRAM, /* observations counted in fixed buckets, with their sum and count */
};

struct metrics;
struct metric_family;
struct metric_series;

/* metrics_new - an empty registry; seed keys the hash of label values. 0 or SH_ENOMEM. */
int metrics_new(uint64_t seed, struct metrics **out);

/* metrics_free - release the registry, its families and series; NULL is ignored. Every
 * family and series handle dies with it. */
void metrics_free(struct metrics *m);

/* metrics_register - add a family, written after those registered before it. label_names is
 * a NULL-terminated array (NULL: no labels); buckets are a histogram's upper bounds, finite
 * and strictly increasing, +Inf implied (other types pass NULL, 0). Name, help and label
 * names are copied. 0 with *out; SH_EINVAL for a name, label or bucket list the rules above
 * refuse, SH_ENOMEM. */
int metrics_register(struct metrics *m, enum metric_type type, const char *name, const char *help,
                     const char *const *label_names, const double *buckets, size_t n_buckets,
                     struct metric_family **out);

/* metrics_counter, metrics_gauge, metrics_histogram - metrics_register of that type. */
int metrics_counter(struct metrics *m, const char *name, const char *help,
                    const char *const *label_names, struct metric_family **out);
int metrics_gauge(struct metrics *m, const char *name, const char *help,
                  const char *const *label_names, struct metric_family **out);
int metrics_histogram(struct metrics *m, const char *name, const char *help,
                      const char *const *label_names, const double *buckets, size_t n_buckets,
                      struct metric_family **out);

/* metrics_series - the series of family f with these label values (one per label name, in
 * their order; ignored, may be NULL, without labels), created at 0 on first use. Never
 * NULL: see the overflow series above (values all "other" are that series too). The handle
 * lives as long as the registry. */
struct metric_series *metrics_series(struct metrics *m, struct metric_family *f,
                                     const char *const *label_values);

/* metrics_inc - add 1 to a counter or a gauge. */
void metrics_inc(struct metric_series *s);

/* metrics_add - add v to a gauge (any sign) or to a counter: a counter ignores v < 0 and NaN,
 * and counts a whole v exactly. Not for histograms (ignored). */
void metrics_add(struct metric_series *s, double v);

/* metrics_set - set a gauge to v. Ignored for other types. */
void metrics_set(struct metric_series *s, double v);

/* metrics_observe - count v in a histogram: in the first bucket whose bound is >= v (and so
 * in every later one, and +Inf), and in _sum and _count. NaN is ignored. Ignored for other
 * types. */
void metrics_observe(struct metric_series *s, double v);

/* metrics_on_render - call fn(arg, m) at the start of every metrics_render, after the
 * collectors added before it: for gauges computed on demand (open connections, a
 * certificate's expiry). 0 or SH_ENOMEM. */
int metrics_on_render(struct metrics *m, void (*fn)(void *arg, struct metrics *m), void *arg);

/* metrics_render - run the collectors, then append every family to out: "# HELP name text"
 * (backslash and newline escaped), "# TYPE name type", then a line per series in creation
 * order ('name{label="value",...} value', values with backslash, double quote and newline
 * escaped; a histogram's name_bucket lines, le="+Inf" last, then name_sum and name_count),
 * the overflow series last once used. A family with labels and no series yet gets its HELP
 * and TYPE only. 0 or SH_ENOMEM (out->failed: its contents are incomplete). */
int metrics_render(struct metrics *m, struct buf *out);

/* metrics_clear - drop every series of f, a family with labels (ignored without: its one
 * series stays), and its overflow series' use: for a gauge family a collector fills anew
 * before each render, so that a series whose source is gone (a certificate a reload removed)
 * is gone from the output too. Every handle into f becomes invalid. */
void metrics_clear(struct metric_family *f);

/* metrics_series_count - series of f that metrics_render would write (the overflow series
 * counts once used). */
size_t metrics_series_count(const struct metric_family *f);

/* metrics_format_value - v as metrics_render writes it, NUL-terminated, into out (at least
 * METRICS_VALUE_MAX bytes); returns its length. */
#define METRICS_VALUE_MAX 32u
size_t metrics_format_value(double v, char *out);

#endif
