/* metrics.c - counters, gauges and histograms in the Prometheus text format (see metrics.h).
 *
 * A family holds its series in creation order (an array of pointers, each series one
 * allocation: its numbers, a histogram's bucket counts, its label values) and finds them by
 * label values through an open-addressing table of indexes into that array, keyed with
 * SipHash-1-3 under the registry's key; at most METRICS_MAX_SERIES of them, so the table
 * never exceeds 2048 slots and never shrinks. A family with labels allocates its overflow
 * series at registration, so that metrics_series has an answer even without memory.
 * Histogram buckets count their own observations; metrics_render sums them up.
 *
 * Pure: memory only. Must not include libuv, curl, OpenSSL or jansson. */
#include "smtphook/metrics.h"

#include <math.h> /* isnan, isinf, isfinite: macros, no libm */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtphook/error.h"
#include "smtphook/siphash.h"
#include "smtphook/utf8.h"

#define MIN_SLOTS     16u                    /* smallest series table; a power of two */
#define MIN_SERIES    8u                     /* smallest series array */
#define TWO_POW_64    18446744073709551616.0 /* first whole double a uint64_t cannot hold */
#define WHOLE_LIMIT   1e21                   /* whole values below this are written as integers */
#define KEY_BYTES_MAX (METRICS_MAX_LABELS * (METRICS_LABEL_VALUE_MAX + 1))

struct metric_series {
    struct metric_family *fam;              /* its family */
    enum metric_type type;                  /* the family's, for the hot path */
    uint32_t hash;                          /* low 32 bits of its label values' hash */
    uint64_t count;                         /* counter: whole part; histogram: _count */
    double value;                           /* gauge: value; counter: fractions; _sum */
    const char *values[METRICS_MAX_LABELS]; /* label values, in the tail of the allocation */
    uint64_t buckets[];                     /* histogram: observations per bound (not +Inf) */
};

/* One slot of a family's series table. */
struct series_slot {
    uint32_t hash; /* the series' hash, compared before its label values */
    uint32_t pos;  /* 1 + index into series; 0: empty */
};

struct metric_family {
    struct metrics *reg; /* its registry */
    enum metric_type type;
    char *name;
    char *help;
    size_t n_labels;
    char *labels[METRICS_MAX_LABELS];
    double *bounds; /* histogram: upper bounds, +Inf apart */
    size_t n_bounds;
    struct metric_series **series; /* creation order: [0, n_series) */
    size_t n_series;
    size_t cap_series;
    struct series_slot *slots; /* n_slots, a power of two; NULL until needed */
    size_t n_slots;
    struct metric_series *overflow; /* with labels: every value "other" */
    bool overflow_used;             /* handed out: metrics_render writes it */
};

struct collector {
    void (*fn)(void *arg, struct metrics *m);
    void *arg;
};

struct metrics {
    struct siphash_key key;      /* hashes label values */
    struct metric_family **fams; /* registration order */
    size_t n_fams;
    size_t cap_fams;
    struct collector *collectors;
    size_t n_collectors;
    size_t cap_collectors;
};

/* ---- names ----------------------------------------------------------------------------- */

/* name_ok - a metric name (colons allowed) or a label name (no colons, no leading "__"). */
static bool name_ok(const char *s, bool metric)
{
    size_t len = strlen(s);
    if (len == 0 || len > METRICS_NAME_MAX)
        return false;
    if (!metric && s[0] == '_' && s[1] == '_')
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool alpha =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (metric && c == ':');
        if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
            return false;
    }
    return true;
}

/* ends_with - does s end in suffix (and have something before it)? */
static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && memcmp(s + n - k, suffix, k) == 0;
}

static const char *const hist_suffixes[] = {"_bucket", "_sum", "_count"};

/* line_names - the names a family's lines carry, its own first; returns how many. */
static size_t line_names(enum metric_type type, const char *name,
                         char out[4][METRICS_NAME_MAX + sizeof("_bucket")])
{
    snprintf(out[0], sizeof(out[0]), "%s", name);
    if (type != METRIC_HISTOGRAM)
        return 1;
    for (size_t i = 0; i < 3; i++)
        snprintf(out[i + 1], sizeof(out[i + 1]), "%s%s", name, hist_suffixes[i]);
    return 4;
}

/* name_taken - would a family (type, name) write a line name another family already does? */
static bool name_taken(const struct metrics *m, enum metric_type type, const char *name)
{
    char mine[4][METRICS_NAME_MAX + sizeof("_bucket")];
    char theirs[4][METRICS_NAME_MAX + sizeof("_bucket")];
    size_t n_mine = line_names(type, name, mine);
    for (size_t f = 0; f < m->n_fams; f++) {
        size_t n_theirs = line_names(m->fams[f]->type, m->fams[f]->name, theirs);
        for (size_t i = 0; i < n_mine; i++)
            for (size_t j = 0; j < n_theirs; j++)
                if (strcmp(mine[i], theirs[j]) == 0)
                    return true;
    }
    return false;
}

/* ---- series ---------------------------------------------------------------------------- */

/* series_new - a series at 0 of f with these n label values (already checked), or NULL. */
static struct metric_series *series_new(struct metric_family *f, const char *const *values,
                                        uint32_t hash)
{
    size_t lens[METRICS_MAX_LABELS];
    size_t size = sizeof(struct metric_series) + f->n_bounds * sizeof(uint64_t);
    for (size_t i = 0; i < f->n_labels; i++) {
        lens[i] = strlen(values[i]);
        size += lens[i] + 1;
    }
    struct metric_series *s = calloc(1, size);
    if (s == NULL)
        return NULL;
    s->fam = f;
    s->type = f->type;
    s->hash = hash;
    char *tail = (char *)(s->buckets + f->n_bounds);
    for (size_t i = 0; i < f->n_labels; i++) {
        memcpy(tail, values[i], lens[i] + 1);
        s->values[i] = tail;
        tail += lens[i] + 1;
    }
    return s;
}

/* values_hash - the hash of n label values, each with its NUL, so that ("a", "bc") and
 * ("ab", "c") differ. */
static uint32_t values_hash(const struct metrics *m, const char *const *values, size_t n)
{
    char key[KEY_BYTES_MAX];
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = strlen(values[i]) + 1;
        memcpy(key + len, values[i], k);
        len += k;
    }
    return (uint32_t)siphash13(&m->key, key, len);
}

/* values_equal - are the n label values of s these? */
static bool values_equal(const struct metric_series *s, const char *const *values, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s->values[i], values[i]) != 0)
            return false;
    return true;
}

/* table_insert - put series number pos (0-based) in f's table, which has a free slot. */
static void table_insert(struct metric_family *f, uint32_t hash, size_t pos)
{
    size_t mask = f->n_slots - 1;
    size_t i = hash & mask;
    while (f->slots[i].pos != 0)
        i = (i + 1) & mask;
    f->slots[i].hash = hash;
    f->slots[i].pos = (uint32_t)(pos + 1);
}

/* make_room - room for one more series in f's array and table (at most half full). */
static int make_room(struct metric_family *f)
{
    if (f->n_series == f->cap_series) {
        size_t cap = f->cap_series ? f->cap_series * 2 : MIN_SERIES;
        struct metric_series **p = realloc(f->series, cap * sizeof(*p));
        if (p == NULL)
            return SH_ENOMEM;
        f->series = p;
        f->cap_series = cap;
    }
    if ((f->n_series + 1) * 2 > f->n_slots) {
        size_t n = f->n_slots ? f->n_slots * 2 : MIN_SLOTS;
        struct series_slot *slots = calloc(n, sizeof(*slots));
        if (slots == NULL)
            return SH_ENOMEM;
        free(f->slots);
        f->slots = slots;
        f->n_slots = n;
        for (size_t i = 0; i < f->n_series; i++)
            table_insert(f, f->series[i]->hash, i);
    }
    return 0;
}

/* overflow - f's overflow series, now written by metrics_render. */
static struct metric_series *overflow(struct metric_family *f)
{
    f->overflow_used = true;
    return f->overflow;
}

struct metric_series *metrics_series(struct metrics *m, struct metric_family *f,
                                     const char *const *label_values)
{
    (void)m;
    if (f->n_labels == 0)
        return f->series[0];
    if (label_values == NULL)
        return overflow(f);
    bool all_other = true;
    for (size_t i = 0; i < f->n_labels; i++) {
        const char *v = label_values[i];
        if (v == NULL)
            return overflow(f);
        size_t len = strnlen(v, METRICS_LABEL_VALUE_MAX + 1);
        if (len > METRICS_LABEL_VALUE_MAX || !utf8_valid(v, len))
            return overflow(f);
        if (strcmp(v, METRICS_OVERFLOW_VALUE) != 0)
            all_other = false;
    }
    if (all_other)
        return overflow(f);

    uint32_t hash = values_hash(f->reg, label_values, f->n_labels);
    if (f->slots != NULL) {
        size_t mask = f->n_slots - 1;
        for (size_t i = hash & mask; f->slots[i].pos != 0; i = (i + 1) & mask) {
            struct metric_series *s = f->series[f->slots[i].pos - 1];
            if (f->slots[i].hash == hash && values_equal(s, label_values, f->n_labels))
                return s;
        }
    }
    if (f->n_series >= METRICS_MAX_SERIES || make_room(f) != 0)
        return overflow(f);
    struct metric_series *s = series_new(f, label_values, hash);
    if (s == NULL)
        return overflow(f);
    f->series[f->n_series] = s;
    table_insert(f, hash, f->n_series);
    f->n_series++;
    return s;
}

void metrics_clear(struct metric_family *f)
{
    if (f->n_labels == 0)
        return;
    for (size_t i = 0; i < f->n_series; i++)
        free(f->series[i]);
    f->n_series = 0;
    if (f->slots != NULL)
        memset(f->slots, 0, f->n_slots * sizeof(*f->slots));
    f->overflow_used = false;
    f->overflow->count = 0;
    f->overflow->value = 0;
    memset(f->overflow->buckets, 0, f->n_bounds * sizeof(uint64_t));
}

size_t metrics_series_count(const struct metric_family *f)
{
    return f->n_series + (f->overflow_used ? 1 : 0);
}

/* ---- the hot path ---------------------------------------------------------------------- */

/* is_whole - is v a whole number (no libm: every double from 2^52 on is whole)? */
static bool is_whole(double v)
{
    if (!(v > -4503599627370496.0 && v < 4503599627370496.0))
        return isfinite(v);
    return v == (double)(int64_t)v;
}

void metrics_inc(struct metric_series *s)
{
    if (s->type == METRIC_COUNTER)
        s->count++;
    else if (s->type == METRIC_GAUGE)
        s->value += 1;
}

void metrics_add(struct metric_series *s, double v)
{
    if (s->type == METRIC_GAUGE) {
        s->value += v;
    } else if (s->type == METRIC_COUNTER) {
        if (!(v >= 0))
            return;
        if (v < TWO_POW_64 && is_whole(v))
            s->count += (uint64_t)v;
        else
            s->value += v;
    }
}

void metrics_set(struct metric_series *s, double v)
{
    if (s->type == METRIC_GAUGE)
        s->value = v;
}

void metrics_observe(struct metric_series *s, double v)
{
    if (s->type != METRIC_HISTOGRAM || isnan(v))
        return;
    const double *bounds = s->fam->bounds;
    size_t lo = 0, hi = s->fam->n_bounds;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v <= bounds[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    if (lo < s->fam->n_bounds)
        s->buckets[lo]++;
    s->count++;
    s->value += v;
}

/* ---- the registry ---------------------------------------------------------------------- */

int metrics_new(uint64_t seed, struct metrics **out)
{
    struct metrics *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return SH_ENOMEM;
    m->key = siphash_key_from_seed(seed);
    *out = m;
    return 0;
}

/* family_free - a family, its series and its strings. */
static void family_free(struct metric_family *f)
{
    for (size_t i = 0; i < f->n_series; i++)
        free(f->series[i]);
    free(f->series);
    free(f->slots);
    free(f->overflow);
    free(f->bounds);
    for (size_t i = 0; i < f->n_labels; i++)
        free(f->labels[i]);
    free(f->name);
    free(f->help);
    free(f);
}

void metrics_free(struct metrics *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->n_fams; i++)
        family_free(m->fams[i]);
    free(m->fams);
    free(m->collectors);
    free(m);
}

/* labels_ok - n (returned in *n) valid, distinct label names for a family of type. */
static bool labels_ok(enum metric_type type, const char *const *names, size_t *n)
{
    size_t k = 0;
    for (; names != NULL && names[k] != NULL; k++) {
        if (k == METRICS_MAX_LABELS || !name_ok(names[k], false))
            return false;
        if (type == METRIC_HISTOGRAM && strcmp(names[k], "le") == 0)
            return false;
        for (size_t j = 0; j < k; j++)
            if (strcmp(names[j], names[k]) == 0)
                return false;
    }
    *n = k;
    return true;
}

/* bounds_ok - finite, strictly increasing histogram bounds, at most METRICS_MAX_BUCKETS. */
static bool bounds_ok(const double *b, size_t n)
{
    if (n > METRICS_MAX_BUCKETS || (n > 0 && b == NULL))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(b[i]) || (i > 0 && !(b[i] > b[i - 1])))
            return false;
    return true;
}

/* family_check - SH_EINVAL unless the rules of metrics.h allow this family. */
static int family_check(const struct metrics *m, enum metric_type type, const char *name,
                        const char *help, const char *const *label_names, const double *buckets,
                        size_t n_buckets, size_t *n_labels)
{
    if (type != METRIC_COUNTER && type != METRIC_GAUGE && type != METRIC_HISTOGRAM)
        return SH_EINVAL;
    if (name == NULL || !name_ok(name, true) || help == NULL || help[0] == '\0' ||
        !utf8_valid(help, strlen(help)))
        return SH_EINVAL;
    if ((type == METRIC_COUNTER) != ends_with(name, "_total"))
        return SH_EINVAL;
    if (!labels_ok(type, label_names, n_labels))
        return SH_EINVAL;
    if (type == METRIC_HISTOGRAM ? !bounds_ok(buckets, n_buckets) : n_buckets != 0)
        return SH_EINVAL;
    if (name_taken(m, type, name))
        return SH_EINVAL;
    return 0;
}

int metrics_register(struct metrics *m, enum metric_type type, const char *name, const char *help,
                     const char *const *label_names, const double *buckets, size_t n_buckets,
                     struct metric_family **out)
{
    size_t n_labels = 0;
    int err = family_check(m, type, name, help, label_names, buckets, n_buckets, &n_labels);
    if (err != 0)
        return err;
    if (m->n_fams == m->cap_fams) {
        size_t cap = m->cap_fams ? m->cap_fams * 2 : 8;
        struct metric_family **p = realloc(m->fams, cap * sizeof(*p));
        if (p == NULL)
            return SH_ENOMEM;
        m->fams = p;
        m->cap_fams = cap;
    }
    struct metric_family *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return SH_ENOMEM;
    f->reg = m;
    f->type = type;
    f->n_bounds = n_buckets;
    f->name = strdup(name);
    f->help = strdup(help);
    bool ok = f->name != NULL && f->help != NULL;
    for (size_t i = 0; i < n_labels; i++) {
        f->labels[i] = strdup(label_names[i]);
        f->n_labels = i + 1;
        ok = ok && f->labels[i] != NULL;
    }
    if (ok && n_buckets > 0) {
        f->bounds = malloc(n_buckets * sizeof(double));
        ok = f->bounds != NULL;
        if (ok)
            memcpy(f->bounds, buckets, n_buckets * sizeof(double));
    }
    if (ok && n_labels > 0) {
        const char *other[METRICS_MAX_LABELS];
        for (size_t i = 0; i < n_labels; i++)
            other[i] = METRICS_OVERFLOW_VALUE;
        f->overflow = series_new(f, other, 0);
        ok = f->overflow != NULL;
    } else if (ok) {
        /* Without labels the one series exists from the start, at 0. */
        ok = make_room(f) == 0;
        struct metric_series *s = ok ? series_new(f, NULL, 0) : NULL;
        ok = s != NULL;
        if (ok)
            f->series[f->n_series++] = s;
    }
    if (!ok) {
        family_free(f);
        return SH_ENOMEM;
    }
    m->fams[m->n_fams++] = f;
    *out = f;
    return 0;
}

int metrics_counter(struct metrics *m, const char *name, const char *help,
                    const char *const *label_names, struct metric_family **out)
{
    return metrics_register(m, METRIC_COUNTER, name, help, label_names, NULL, 0, out);
}

int metrics_gauge(struct metrics *m, const char *name, const char *help,
                  const char *const *label_names, struct metric_family **out)
{
    return metrics_register(m, METRIC_GAUGE, name, help, label_names, NULL, 0, out);
}

int metrics_histogram(struct metrics *m, const char *name, const char *help,
                      const char *const *label_names, const double *buckets, size_t n_buckets,
                      struct metric_family **out)
{
    return metrics_register(m, METRIC_HISTOGRAM, name, help, label_names, buckets, n_buckets, out);
}

int metrics_on_render(struct metrics *m, void (*fn)(void *arg, struct metrics *m), void *arg)
{
    if (m->n_collectors == m->cap_collectors) {
        size_t cap = m->cap_collectors ? m->cap_collectors * 2 : 4;
        struct collector *p = realloc(m->collectors, cap * sizeof(*p));
        if (p == NULL)
            return SH_ENOMEM;
        m->collectors = p;
        m->cap_collectors = cap;
    }
    m->collectors[m->n_collectors].fn = fn;
    m->collectors[m->n_collectors].arg = arg;
    m->n_collectors++;
    return 0;
}

/* ---- the text format ------------------------------------------------------------------- */

size_t metrics_format_value(double v, char *out)
{
    int n;
    if (isnan(v))
        n = snprintf(out, METRICS_VALUE_MAX, "NaN");
    else if (isinf(v))
        n = snprintf(out, METRICS_VALUE_MAX, "%s", v > 0 ? "+Inf" : "-Inf");
    else if (is_whole(v) && v > -WHOLE_LIMIT && v < WHOLE_LIMIT)
        n = snprintf(out, METRICS_VALUE_MAX, "%.0f", v); /* exact: v is whole */
    else {
        /* The shortest precision that reads back as v; 17 always does. */
        n = 0;
        for (int prec = 1; prec <= 17; prec++) {
            n = snprintf(out, METRICS_VALUE_MAX, "%.*g", prec, v);
            if (strtod(out, NULL) == v)
                break;
        }
    }
    return n > 0 ? (size_t)n : 0;
}

/* put_value - append v as metrics_format_value writes it. */
static void put_value(struct buf *out, double v)
{
    char text[METRICS_VALUE_MAX];
    size_t n = metrics_format_value(v, text);
    buf_append(out, text, n);
}

/* put_u64 - append a whole count. */
static void put_u64(struct buf *out, uint64_t v)
{
    char text[METRICS_VALUE_MAX];
    int n = snprintf(text, sizeof(text), "%llu", (unsigned long long)v);
    buf_append(out, text, n > 0 ? (size_t)n : 0);
}

/* put_escaped - append s with backslash and newline escaped, and the double quote too when
 * quote (label values; help texts leave it). */
static void put_escaped(struct buf *out, const char *s, bool quote)
{
    const char *run = s;
    for (; *s != '\0'; s++) {
        const char *esc = NULL;
        if (*s == '\\')
            esc = "\\\\";
        else if (*s == '\n')
            esc = "\\n";
        else if (*s == '"' && quote)
            esc = "\\\"";
        if (esc != NULL) {
            buf_append(out, run, (size_t)(s - run));
            buf_append_str(out, esc);
            run = s + 1;
        }
    }
    buf_append(out, run, (size_t)(s - run));
}

/* put_labels - append '{name="value",...}' for s, with le="le" last when le is not NULL;
 * nothing when there is neither. */
static void put_labels(struct buf *out, const struct metric_series *s, const char *le)
{
    const struct metric_family *f = s->fam;
    if (f->n_labels == 0 && le == NULL)
        return;
    buf_append_str(out, "{");
    for (size_t i = 0; i < f->n_labels; i++) {
        if (i > 0)
            buf_append_str(out, ",");
        buf_append_str(out, f->labels[i]);
        buf_append_str(out, "=\"");
        put_escaped(out, s->values[i], true);
        buf_append_str(out, "\"");
    }
    if (le != NULL) {
        buf_append_str(out, f->n_labels > 0 ? ",le=\"" : "le=\"");
        buf_append_str(out, le);
        buf_append_str(out, "\"");
    }
    buf_append_str(out, "}");
}

/* put_sample - append "name[suffix]{labels} " for s, the value left to the caller. */
static void put_sample(struct buf *out, const struct metric_series *s, const char *suffix,
                       const char *le)
{
    buf_append_str(out, s->fam->name);
    buf_append_str(out, suffix);
    put_labels(out, s, le);
    buf_append_str(out, " ");
}

/* put_series - append the line(s) of one series. */
static void put_series(struct buf *out, const struct metric_series *s)
{
    const struct metric_family *f = s->fam;
    if (f->type == METRIC_COUNTER) {
        put_sample(out, s, "", NULL);
        if (s->value == 0)
            put_u64(out, s->count);
        else
            put_value(out, (double)s->count + s->value);
    } else if (f->type == METRIC_GAUGE) {
        put_sample(out, s, "", NULL);
        put_value(out, s->value);
    } else {
        uint64_t cumulative = 0;
        char le[METRICS_VALUE_MAX];
        for (size_t i = 0; i < f->n_bounds; i++) {
            cumulative += s->buckets[i];
            metrics_format_value(f->bounds[i], le);
            put_sample(out, s, "_bucket", le);
            put_u64(out, cumulative);
            buf_append_str(out, "\n");
        }
        put_sample(out, s, "_bucket", "+Inf");
        put_u64(out, s->count);
        buf_append_str(out, "\n");
        put_sample(out, s, "_sum", NULL);
        put_value(out, s->value);
        buf_append_str(out, "\n");
        put_sample(out, s, "_count", NULL);
        put_u64(out, s->count);
    }
    buf_append_str(out, "\n");
}

static const char *const type_names[] = {"counter", "gauge", "histogram"};

int metrics_render(struct metrics *m, struct buf *out)
{
    for (size_t i = 0; i < m->n_collectors; i++)
        m->collectors[i].fn(m->collectors[i].arg, m);
    for (size_t i = 0; i < m->n_fams; i++) {
        const struct metric_family *f = m->fams[i];
        buf_append_str(out, "# HELP ");
        buf_append_str(out, f->name);
        buf_append_str(out, " ");
        put_escaped(out, f->help, false);
        buf_append_str(out, "\n# TYPE ");
        buf_append_str(out, f->name);
        buf_append_str(out, " ");
        buf_append_str(out, type_names[f->type]);
        buf_append_str(out, "\n");
        for (size_t j = 0; j < f->n_series; j++)
            put_series(out, f->series[j]);
        if (f->overflow_used)
            put_series(out, f->overflow);
    }
    return out->failed ? SH_ENOMEM : 0;
}
