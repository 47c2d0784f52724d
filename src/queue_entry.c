/* queue_entry.c - the queue entry file, written and read, and the retry schedule (see
 * queue_entry.h).
 *
 * The reader trusts nothing: the file may have been edited, truncated or damaged. Every
 * line is "name value" with a known name, every singular field comes once, numbers are
 * plain decimal within range, every string is what the session would have accepted, and
 * the file ends with "end". Pure: no file, libuv, curl, jansson or OpenSSL. */
#include "smtphook/queue_entry.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtphook/error.h"
#include "smtphook/retry.h"
#include "smtphook/utf8.h"

#define QE_MAGIC        "smtphook-queue-entry"
#define QE_FIELD_MAX    256u    /* bytes of a field name */
#define QE_RCPTS_MAX    100000u /* recipients of one entry at most */
#define QE_ENDPOINT_MAX 1000u   /* endpoints of one entry at most */
#define QE_STRING_MAX   65536u  /* bytes of one string value */

/* queue_entry_init - see queue_entry.h. */
void queue_entry_init(struct queue_entry *e)
{
    memset(e, 0, sizeof(*e));
}

/* qe_free_attempt - what one history record owns. */
static void qe_free_attempt(struct queue_attempt *a)
{
    free(a->endpoint);
    free(a->text);
}

/* queue_entry_free - see queue_entry.h. The envelope's const strings are the entry's. */
void queue_entry_free(struct queue_entry *e)
{
    if (e == NULL)
        return;
    for (size_t i = 0; i < e->n_endpoints; i++)
        free(e->endpoints[i]);
    free(e->endpoints);
    for (size_t i = 0; i < e->n_history; i++)
        qe_free_attempt(&e->history[i]);
    free(e->history);
    free(e->dead_reason);
    struct envelope *env = &e->env;
    free((char *)env->client_address);
    free((char *)env->helo);
    free(env->mail_from);
    for (size_t i = 0; i < env->n_rcpt; i++)
        free(env->rcpt_to[i]);
    free(env->rcpt_to);
    free((char *)env->tls.version);
    free((char *)env->tls.cipher);
    free((char *)env->tls.sni);
    free((char *)env->tls.peer_subject);
    free((char *)env->tls.peer_sha256);
    queue_entry_init(e);
}

/* qe_dup - a copy of s, NULL staying NULL. *failed is set without memory. */
static char *qe_dup(const char *s, bool *failed)
{
    if (s == NULL)
        return NULL;
    char *d = strdup(s);
    if (d == NULL)
        *failed = true;
    return d;
}

/* queue_entry_copy_envelope - see queue_entry.h. */
int queue_entry_copy_envelope(struct queue_entry *e, const struct envelope *env)
{
    bool failed = false;
    struct envelope *dst = &e->env;
    memcpy(dst->id, env->id, sizeof(dst->id));
    dst->key = NULL;
    dst->received_at_ms = env->received_at_ms;
    dst->client_port = env->client_port;
    dst->esmtp = env->esmtp;
    dst->size = env->size;
    dst->declared_size = env->declared_size;
    dst->body = env->body;
    dst->smtputf8 = env->smtputf8;
    dst->chunked = env->chunked;
    dst->client_address = qe_dup(env->client_address, &failed);
    dst->helo = qe_dup(env->helo, &failed);
    dst->mail_from = qe_dup(env->mail_from != NULL ? env->mail_from : "", &failed);
    dst->tls.version = qe_dup(env->tls.version, &failed);
    dst->tls.cipher = qe_dup(env->tls.cipher, &failed);
    dst->tls.sni = qe_dup(env->tls.sni, &failed);
    dst->tls.peer_subject = qe_dup(env->tls.peer_subject, &failed);
    dst->tls.peer_sha256 = qe_dup(env->tls.peer_sha256, &failed);
    dst->rcpt_to = calloc(env->n_rcpt > 0 ? env->n_rcpt : 1, sizeof(*dst->rcpt_to));
    if (dst->rcpt_to == NULL)
        return SH_ENOMEM;
    for (size_t i = 0; i < env->n_rcpt; i++) {
        char *rcpt = qe_dup(env->rcpt_to[i], &failed);
        if (rcpt != NULL)
            dst->rcpt_to[dst->n_rcpt++] = rcpt; /* packed: queue_entry_free frees n_rcpt */
    }
    return failed ? SH_ENOMEM : 0;
}

/* queue_entry_add_endpoint - see queue_entry.h. */
int queue_entry_add_endpoint(struct queue_entry *e, const char *name)
{
    char **list = realloc(e->endpoints, (e->n_endpoints + 1) * sizeof(*list));
    if (list == NULL)
        return SH_ENOMEM;
    e->endpoints = list;
    if ((list[e->n_endpoints] = strdup(name)) == NULL)
        return SH_ENOMEM;
    e->n_endpoints++;
    return 0;
}

/* qe_clip - a copy of at most QUEUE_ENTRY_TEXT_MAX bytes of text, cut at a character. */
static char *qe_clip(const char *text)
{
    size_t n = strlen(text);
    if (n > QUEUE_ENTRY_TEXT_MAX) {
        n = QUEUE_ENTRY_TEXT_MAX;
        while (n > 0 && ((unsigned char)text[n] & 0xC0u) == 0x80u)
            n--; /* not inside a UTF-8 sequence */
    }
    char *d = malloc(n + 1);
    if (d != NULL) {
        memcpy(d, text, n);
        d[n] = '\0';
        queue_entry_clean(d);
    }
    return d;
}

/* queue_entry_clean - see queue_entry.h. */
void queue_entry_clean(char *text)
{
    size_t n = strlen(text);
    bool utf8 = utf8_valid(text, n);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (ch < 0x20 || ch == 0x7F || (!utf8 && ch >= 0x80))
            text[i] = '?';
    }
}

/* queue_entry_record - see queue_entry.h. */
int queue_entry_record(struct queue_entry *e, int64_t at_ms, const char *endpoint, long status,
                       unsigned code, const char *esc, const char *text)
{
    struct queue_attempt a;
    memset(&a, 0, sizeof(a));
    a.at_ms = at_ms < 0 ? 0 : at_ms;
    a.status = status < 0 || status > 999 ? 0 : status; /* what the reader takes */
    a.code = code > 599 ? 0 : code;
    snprintf(a.esc, sizeof(a.esc), "%s", esc != NULL ? esc : "");
    for (char *p = a.esc; *p != '\0'; p++) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7F)
            *p = '?';
    }
    a.endpoint = strdup(endpoint != NULL && endpoint[0] != '\0' ? endpoint : "-");
    if (a.endpoint != NULL)
        queue_entry_clean(a.endpoint);
    a.text = qe_clip(text != NULL ? text : "");
    if (a.endpoint == NULL || a.text == NULL) {
        qe_free_attempt(&a);
        return SH_ENOMEM;
    }
    if (e->n_history == QUEUE_ENTRY_HISTORY_MAX) {
        qe_free_attempt(&e->history[0]);
        memmove(e->history, e->history + 1, (e->n_history - 1) * sizeof(*e->history));
        e->n_history--;
    } else {
        struct queue_attempt *h = realloc(e->history, (e->n_history + 1) * sizeof(*h));
        if (h == NULL) {
            qe_free_attempt(&a);
            return SH_ENOMEM;
        }
        e->history = h;
    }
    e->history[e->n_history++] = a;
    e->attempts++;
    return 0;
}

/* ---- writing ---------------------------------------------------------------------------- */

/* qe_escaped - append s with every byte below 0x21, DEL and '%' as %XX. */
static void qe_escaped(struct buf *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    const char *run = s;
    for (const char *p = s;; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch != '\0' && ch > 0x20 && ch != 0x7F && ch != '%')
            continue;
        buf_append(out, run, (size_t)(p - run));
        if (ch == '\0')
            return;
        char esc[3] = {'%', hex[ch >> 4], hex[ch & 0xF]};
        buf_append(out, esc, sizeof(esc));
        run = p + 1;
    }
}

/* qe_line - "name value\n" with the value escaped; a NULL value writes nothing. */
static void qe_line(struct buf *out, const char *name, const char *value)
{
    if (value == NULL)
        return;
    buf_append_str(out, name);
    buf_append(out, " ", 1);
    qe_escaped(out, value);
    buf_append(out, "\n", 1);
}

/* qe_num - "name N\n". */
static void qe_num(struct buf *out, const char *name, uint64_t v)
{
    char line[QE_FIELD_MAX];
    snprintf(line, sizeof(line), "%s %" PRIu64 "\n", name, v);
    buf_append_str(out, line);
}

/* qe_body_name - the body field's value. */
static const char *qe_body_name(enum envelope_body b)
{
    const char *n = envelope_body_name(b);
    return n != NULL ? n : "none";
}

/* queue_entry_format - see queue_entry.h. */
int queue_entry_format(const struct queue_entry *e, struct buf *out)
{
    const struct envelope *env = &e->env;
    qe_num(out, QE_MAGIC, QUEUE_ENTRY_VERSION);
    qe_line(out, "name", e->name);
    qe_line(out, "key", e->key);
    qe_line(out, "digest", e->digest);
    qe_num(out, "queued", (uint64_t)e->queued_ms);
    qe_num(out, "next", (uint64_t)e->next_ms);
    qe_num(out, "attempts", e->attempts);
    qe_line(out, "policy", e->failover ? "failover" : "all");
    for (size_t i = 0; i < e->n_endpoints; i++)
        qe_line(out, "endpoint", e->endpoints[i]);
    qe_num(out, "utf8", e->body_utf8);
    qe_line(out, "id", env->id);
    qe_num(out, "received", (uint64_t)env->received_at_ms);
    qe_line(out, "client", env->client_address != NULL ? env->client_address : "");
    qe_num(out, "port", env->client_port);
    qe_line(out, "helo", env->helo);
    qe_num(out, "esmtp", env->esmtp);
    qe_line(out, "from", env->mail_from != NULL ? env->mail_from : "");
    for (size_t i = 0; i < env->n_rcpt; i++)
        qe_line(out, "rcpt", env->rcpt_to[i]);
    qe_num(out, "size", env->size);
    qe_num(out, "declared_size", env->declared_size);
    qe_line(out, "body", qe_body_name(env->body));
    qe_num(out, "smtputf8", env->smtputf8);
    qe_num(out, "chunked", env->chunked);
    qe_line(out, "tls_version", env->tls.version);
    qe_line(out, "tls_cipher", env->tls.cipher);
    qe_line(out, "tls_sni", env->tls.sni);
    qe_line(out, "tls_subject", env->tls.peer_subject);
    qe_line(out, "tls_sha256", env->tls.peer_sha256);
    for (size_t i = 0; i < e->n_history; i++) {
        const struct queue_attempt *a = &e->history[i];
        char nums[QE_FIELD_MAX];
        snprintf(nums, sizeof(nums), "attempt %" PRIu64 " ", (uint64_t)a->at_ms);
        buf_append_str(out, nums);
        qe_escaped(out, a->endpoint);
        snprintf(nums, sizeof(nums), " %ld %u ", a->status, a->code);
        buf_append_str(out, nums);
        qe_escaped(out, a->esc[0] != '\0' ? a->esc : "-");
        buf_append(out, " ", 1);
        qe_escaped(out, a->text);
        buf_append(out, "\n", 1);
    }
    if (e->dead_ms > 0) {
        qe_num(out, "dead", (uint64_t)e->dead_ms);
        qe_line(out, "dead_reason", e->dead_reason != NULL ? e->dead_reason : "");
    }
    buf_append_str(out, "end\n");
    return out->failed ? SH_ENOMEM : 0;
}

/* ---- reading ---------------------------------------------------------------------------- */

/* The reader's state: where it is, and the first problem. */
struct qe_reader {
    const char *p, *end; /* the text not read yet */
    unsigned line;       /* current line number, from 1 */
    char *err;           /* where the problem goes */
    size_t errlen;       /* its size */
    bool nomem;          /* an allocation failed */
};

/* qe_fail - note the problem with the line number; returns SH_EINVAL (SH_ENOMEM when an
 * allocation failed). */
static int qe_fail(struct qe_reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int qe_fail(struct qe_reader *r, const char *fmt, ...)
{
    if (r->nomem)
        return SH_ENOMEM;
    if (r->errlen > 0) {
        int n = snprintf(r->err, r->errlen, "line %u: ", r->line);
        va_list ap;
        va_start(ap, fmt);
        if (n >= 0 && (size_t)n < r->errlen)
            vsnprintf(r->err + n, r->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return SH_EINVAL;
}

/* qe_hex - the value of a hex digit, or -1. */
static int qe_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* qe_unescape - the escaped token [s, s+n) as a new NUL-terminated string, or NULL when it
 * holds a raw byte that must be escaped, a bad escape or a NUL, or is too long. *nomem on
 * allocation failure. */
static char *qe_unescape(const char *s, size_t n, bool *nomem)
{
    if (n > 3 * QE_STRING_MAX)
        return NULL;
    char *d = malloc(n + 1);
    if (d == NULL) {
        *nomem = true;
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= 0x20 || ch == 0x7F) {
            free(d);
            return NULL;
        }
        if (ch == '%') {
            if (i + 2 >= n) {
                free(d);
                return NULL;
            }
            int a = qe_hex(s[i + 1]), b = qe_hex(s[i + 2]);
            if (a < 0 || b < 0 || (a == 0 && b == 0)) {
                free(d);
                return NULL;
            }
            d[k++] = (char)(a * 16 + b);
            i += 2;
            continue;
        }
        d[k++] = (char)ch;
    }
    d[k] = '\0';
    return d;
}

/* qe_text_ok - is s what an envelope string may be: valid UTF-8, no control character? */
static bool qe_text_ok(const char *s)
{
    size_t n = strlen(s);
    if (n > QE_STRING_MAX || !utf8_valid(s, n))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7F)
            return false;
    }
    return true;
}

/* qe_uint - a plain decimal number [s, s+n) no greater than max. */
static bool qe_uint(const char *s, size_t n, uint64_t max, uint64_t *out)
{
    if (n == 0 || n > 20 || (n > 1 && s[0] == '0'))
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

/* qe_is_hex64 - 64 lower-case hex digits: a digest's hex. */
static bool qe_is_hex64(const char *s)
{
    uint8_t d[DIGEST_BYTES];
    return digest_unhex(s, d);
}

/* queue_entry_name_ok - see queue_entry.h. */
bool queue_entry_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > QUEUE_ENTRY_NAME_MAX || name[0] == '.')
        return false;
    if (n >= 4 && strcmp(name + n - 4, ".eml") == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* The fields of the file, each with a bit so that a singular one is seen once. */
enum qe_field {
    QE_NAME,
    QE_KEY,
    QE_DIGEST,
    QE_QUEUED,
    QE_NEXT,
    QE_ATTEMPTS,
    QE_POLICY,
    QE_ENDPOINT,
    QE_UTF8,
    QE_ID,
    QE_RECEIVED,
    QE_CLIENT,
    QE_PORT,
    QE_HELO,
    QE_ESMTP,
    QE_FROM,
    QE_RCPT,
    QE_SIZE,
    QE_DECLARED,
    QE_BODY,
    QE_SMTPUTF8,
    QE_CHUNKED,
    QE_TLS_VERSION,
    QE_TLS_CIPHER,
    QE_TLS_SNI,
    QE_TLS_SUBJECT,
    QE_TLS_SHA256,
    QE_ATTEMPT,
    QE_DEAD,
    QE_DEAD_REASON,
    QE_END,
    QE_N_FIELDS,
};

static const char *const qe_names[QE_N_FIELDS] = {
    [QE_NAME] = "name",
    [QE_KEY] = "key",
    [QE_DIGEST] = "digest",
    [QE_QUEUED] = "queued",
    [QE_NEXT] = "next",
    [QE_ATTEMPTS] = "attempts",
    [QE_POLICY] = "policy",
    [QE_ENDPOINT] = "endpoint",
    [QE_UTF8] = "utf8",
    [QE_ID] = "id",
    [QE_RECEIVED] = "received",
    [QE_CLIENT] = "client",
    [QE_PORT] = "port",
    [QE_HELO] = "helo",
    [QE_ESMTP] = "esmtp",
    [QE_FROM] = "from",
    [QE_RCPT] = "rcpt",
    [QE_SIZE] = "size",
    [QE_DECLARED] = "declared_size",
    [QE_BODY] = "body",
    [QE_SMTPUTF8] = "smtputf8",
    [QE_CHUNKED] = "chunked",
    [QE_TLS_VERSION] = "tls_version",
    [QE_TLS_CIPHER] = "tls_cipher",
    [QE_TLS_SNI] = "tls_sni",
    [QE_TLS_SUBJECT] = "tls_subject",
    [QE_TLS_SHA256] = "tls_sha256",
    [QE_ATTEMPT] = "attempt",
    [QE_DEAD] = "dead",
    [QE_DEAD_REASON] = "dead_reason",
    [QE_END] = "end",
};

/* Fields that must be there. */
static const enum qe_field qe_required[] = {
    QE_NAME,   QE_KEY,      QE_DIGEST, QE_QUEUED,   QE_NEXT,   QE_ATTEMPTS,
    QE_POLICY, QE_ENDPOINT, QE_ID,     QE_RECEIVED, QE_CLIENT, QE_PORT,
    QE_ESMTP,  QE_FROM,     QE_RCPT,   QE_SIZE,     QE_BODY,
};

/* qe_repeats - may the field come more than once? */
static bool qe_repeats(enum qe_field f)
{
    return f == QE_ENDPOINT || f == QE_RCPT || f == QE_ATTEMPT;
}

/* qe_flag - a "0" or "1" value. */
static bool qe_flag(const char *v, size_t n, bool *out)
{
    if (n != 1 || (v[0] != '0' && v[0] != '1'))
        return false;
    *out = v[0] == '1';
    return true;
}

/* qe_string - the value as an envelope string: unescaped, checked. NULL when bad. */
static char *qe_string(struct qe_reader *r, const char *v, size_t n)
{
    char *s = qe_unescape(v, n, &r->nomem);
    if (s != NULL && !qe_text_ok(s)) {
        free(s);
        s = NULL;
    }
    return s;
}

/* qe_token - the next space-separated token of [*p, end): its start and length. */
static bool qe_token(const char **p, const char *end, const char **tok, size_t *n)
{
    const char *s = *p;
    if (s >= end)
        return false;
    const char *sp = memchr(s, ' ', (size_t)(end - s));
    const char *stop = sp != NULL ? sp : end;
    *tok = s;
    *n = (size_t)(stop - s);
    *p = sp != NULL ? sp + 1 : end;
    return *n > 0;
}

/* qe_attempt - "AT ENDPOINT STATUS CODE ESC TEXT" into the history. */
static int qe_attempt(struct qe_reader *r, struct queue_entry *e, const char *v, size_t n)
{
    const char *p = v, *end = v + n, *t[6];
    size_t len[6];
    for (int i = 0; i < 5; i++) {
        if (!qe_token(&p, end, &t[i], &len[i]) || (i < 4 && p == end))
            return qe_fail(r, "attempt: expected time, endpoint, status, code, esc and text");
    }
    if (p > v && p[-1] != ' ')
        return qe_fail(r, "attempt: expected time, endpoint, status, code, esc and text");
    t[5] = p; /* the rest of the line, which may be empty */
    len[5] = (size_t)(end - p);
    uint64_t at = 0, status = 0, code = 0;
    if (!qe_uint(t[0], len[0], INT64_MAX, &at) || !qe_uint(t[2], len[2], 999, &status) ||
        !qe_uint(t[3], len[3], 599, &code))
        return qe_fail(r, "attempt: bad number");
    if (len[4] >= sizeof(((struct queue_attempt *)0)->esc))
        return qe_fail(r, "attempt: bad enhanced status code");
    char *ep = qe_string(r, t[1], len[1]);
    char *esc = qe_string(r, t[4], len[4]);
    char *text = qe_string(r, t[5], len[5]);
    int rc = 0;
    if (ep == NULL || esc == NULL || text == NULL)
        rc = qe_fail(r, "attempt: bad text");
    else if (e->n_history == QUEUE_ENTRY_HISTORY_MAX)
        rc = qe_fail(r, "more than %u attempts kept", QUEUE_ENTRY_HISTORY_MAX);
    unsigned attempts = e->attempts;
    if (rc == 0) {
        rc = queue_entry_record(e, (int64_t)at, ep, (long)status, (unsigned)code,
                                strcmp(esc, "-") == 0 ? "" : esc, text);
        if (rc != 0)
            r->nomem = true;
    }
    e->attempts = attempts; /* the count is its own field */
    free(ep);
    free(esc);
    free(text);
    return rc;
}

/* qe_set_string - an optional or required envelope string field into *dst. */
static int qe_set_string(struct qe_reader *r, const char *name, const char *v, size_t n,
                         const char **dst)
{
    char *s = qe_string(r, v, n);
    if (s == NULL)
        return qe_fail(r, "bad %s value", name);
    *dst = s;
    return 0;
}

/* qe_field - one line's field into e. */
static int qe_field(struct qe_reader *r, struct queue_entry *e, enum qe_field f, const char *v,
                    size_t n)
{
    struct envelope *env = &e->env;
    uint64_t u = 0;
    bool b = false;
    char *s = NULL;
    switch (f) {
    case QE_NAME:
        s = qe_string(r, v, n);
        if (s == NULL || !queue_entry_name_ok(s)) {
            free(s);
            return qe_fail(r, "bad name value");
        }
        snprintf(e->name, sizeof(e->name), "%s", s);
        free(s);
        return 0;
    case QE_KEY:
    case QE_DIGEST:
        if (n != DIGEST_HEX)
            return qe_fail(r, "bad %s value", qe_names[f]);
        memcpy(f == QE_KEY ? e->key : e->digest, v, DIGEST_HEX);
        (f == QE_KEY ? e->key : e->digest)[DIGEST_HEX] = '\0';
        return qe_is_hex64(f == QE_KEY ? e->key : e->digest)
                   ? 0
                   : qe_fail(r, "bad %s value", qe_names[f]);
    case QE_QUEUED:
    case QE_NEXT:
    case QE_RECEIVED:
    case QE_DEAD:
        if (!qe_uint(v, n, INT64_MAX, &u))
            return qe_fail(r, "bad %s value", qe_names[f]);
        if (f == QE_QUEUED)
            e->queued_ms = (int64_t)u;
        else if (f == QE_NEXT)
            e->next_ms = (int64_t)u;
        else if (f == QE_RECEIVED)
            env->received_at_ms = (int64_t)u;
        else if (u == 0)
            return qe_fail(r, "bad dead value");
        else
            e->dead_ms = (int64_t)u;
        return 0;
    case QE_ATTEMPTS:
        if (!qe_uint(v, n, UINT32_MAX, &u))
            return qe_fail(r, "bad attempts value");
        e->attempts = (unsigned)u;
        return 0;
    case QE_POLICY:
        if (n == 3 && memcmp(v, "all", 3) == 0)
            e->failover = false;
        else if (n == 8 && memcmp(v, "failover", 8) == 0)
            e->failover = true;
        else
            return qe_fail(r, "policy must be all or failover");
        return 0;
    case QE_ENDPOINT:
        if (e->n_endpoints == QE_ENDPOINT_MAX)
            return qe_fail(r, "too many endpoints");
        s = qe_string(r, v, n);
        if (s == NULL || s[0] == '\0') {
            free(s);
            return qe_fail(r, "bad endpoint value");
        }
        if (queue_entry_add_endpoint(e, s) != 0)
            r->nomem = true;
        free(s);
        return r->nomem ? SH_ENOMEM : 0;
    case QE_UTF8:
    case QE_ESMTP:
    case QE_SMTPUTF8:
    case QE_CHUNKED:
        if (!qe_flag(v, n, &b))
            return qe_fail(r, "%s must be 0 or 1", qe_names[f]);
        if (f == QE_UTF8)
            e->body_utf8 = b;
        else if (f == QE_ESMTP)
            env->esmtp = b;
        else if (f == QE_SMTPUTF8)
            env->smtputf8 = b;
        else
            env->chunked = b;
        return 0;
    case QE_ID:
        s = qe_string(r, v, n);
        if (s == NULL || s[0] == '\0' || strlen(s) > ENVELOPE_ID_MAX || !queue_entry_name_ok(s)) {
            free(s);
            return qe_fail(r, "bad id value");
        }
        snprintf(env->id, sizeof(env->id), "%s", s);
        free(s);
        return 0;
    case QE_CLIENT:
        return qe_set_string(r, "client", v, n, &env->client_address);
    case QE_PORT:
        if (!qe_uint(v, n, 65535, &u))
            return qe_fail(r, "bad port value");
        env->client_port = (uint16_t)u;
        return 0;
    case QE_HELO:
        return qe_set_string(r, "helo", v, n, &env->helo);
    case QE_FROM:
        if ((env->mail_from = qe_string(r, v, n)) == NULL)
            return qe_fail(r, "bad from value");
        return 0;
    case QE_RCPT: {
        if (env->n_rcpt == QE_RCPTS_MAX)
            return qe_fail(r, "too many recipients");
        s = qe_string(r, v, n);
        if (s == NULL || s[0] == '\0') {
            free(s);
            return qe_fail(r, "bad rcpt value");
        }
        char **list = realloc(env->rcpt_to, (env->n_rcpt + 1) * sizeof(*list));
        if (list == NULL) {
            free(s);
            r->nomem = true;
            return SH_ENOMEM;
        }
        env->rcpt_to = list;
        list[env->n_rcpt++] = s;
        return 0;
    }
    case QE_SIZE:
    case QE_DECLARED:
        if (!qe_uint(v, n, INT64_MAX, &u))
            return qe_fail(r, "bad %s value", qe_names[f]);
        if (f == QE_SIZE)
            env->size = u;
        else
            env->declared_size = u;
        return 0;
    case QE_BODY: {
        static const enum envelope_body bodies[] = {ENVELOPE_BODY_NONE, ENVELOPE_BODY_7BIT,
                                                    ENVELOPE_BODY_8BITMIME,
                                                    ENVELOPE_BODY_BINARYMIME};
        for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
            const char *name = qe_body_name(bodies[i]);
            if (strlen(name) == n && memcmp(name, v, n) == 0) {
                env->body = bodies[i];
                return 0;
            }
        }
        return qe_fail(r, "bad body value");
    }
    case QE_TLS_VERSION:
        return qe_set_string(r, "tls_version", v, n, &env->tls.version);
    case QE_TLS_CIPHER:
        return qe_set_string(r, "tls_cipher", v, n, &env->tls.cipher);
    case QE_TLS_SNI:
        return qe_set_string(r, "tls_sni", v, n, &env->tls.sni);
    case QE_TLS_SUBJECT:
        return qe_set_string(r, "tls_subject", v, n, &env->tls.peer_subject);
    case QE_TLS_SHA256:
        return qe_set_string(r, "tls_sha256", v, n, &env->tls.peer_sha256);
    case QE_ATTEMPT:
        return qe_attempt(r, e, v, n);
    case QE_DEAD_REASON:
        if ((e->dead_reason = qe_string(r, v, n)) == NULL)
            return qe_fail(r, "bad dead_reason value");
        return 0;
    case QE_END:
    case QE_N_FIELDS:
        break;
    }
    return qe_fail(r, "unexpected field");
}

/* queue_entry_parse - see queue_entry.h. */
int queue_entry_parse(const char *text, size_t len, struct queue_entry *e, char *err, size_t errlen)
{
    queue_entry_init(e);
    if (errlen > 0)
        err[0] = '\0';
    struct qe_reader r = {text, text + len, 0, err, errlen, false};
    if (len > QUEUE_ENTRY_FILE_MAX)
        return qe_fail(&r, "the file is larger than %u bytes", QUEUE_ENTRY_FILE_MAX);
    uint64_t seen = 0;
    bool ended = false;
    while (r.p < r.end) {
        r.line++;
        const char *nl = memchr(r.p, '\n', (size_t)(r.end - r.p));
        if (nl == NULL)
            return qe_fail(&r, "the last line is cut off");
        const char *line = r.p;
        size_t n = (size_t)(nl - line);
        r.p = nl + 1;
        if (ended)
            return qe_fail(&r, "text after end");
        const char *sp = memchr(line, ' ', n);
        size_t name_len = sp != NULL ? (size_t)(sp - line) : n;
        const char *v = sp != NULL ? sp + 1 : line + n;
        size_t vn = (size_t)(line + n - v);
        if (r.line == 1) {
            uint64_t version = 0;
            if (name_len != strlen(QE_MAGIC) || memcmp(line, QE_MAGIC, name_len) != 0)
                return qe_fail(&r, "not a smtphook queue entry");
            if (!qe_uint(v, vn, UINT32_MAX, &version) || version != QUEUE_ENTRY_VERSION)
                return qe_fail(&r, "unknown entry version (this smtphook reads %u)",
                               QUEUE_ENTRY_VERSION);
            continue;
        }
        int f = -1;
        for (int i = 0; i < QE_N_FIELDS && f < 0; i++) {
            if (strlen(qe_names[i]) == name_len && memcmp(qe_names[i], line, name_len) == 0)
                f = i;
        }
        if (f < 0)
            return qe_fail(&r, "unknown field");
        if (f == QE_END) {
            if (sp != NULL)
                return qe_fail(&r, "end takes no value");
            ended = true;
            continue;
        }
        if ((seen & (UINT64_C(1) << f)) != 0 && !qe_repeats((enum qe_field)f))
            return qe_fail(&r, "%s given twice", qe_names[f]);
        seen |= UINT64_C(1) << f;
        int rc = qe_field(&r, e, (enum qe_field)f, v, vn);
        if (rc != 0)
            return rc;
    }
    if (r.line == 0)
        return qe_fail(&r, "empty file");
    if (!ended)
        return qe_fail(&r, "no end line: the file is cut off");
    for (size_t i = 0; i < sizeof(qe_required) / sizeof(qe_required[0]); i++) {
        if ((seen & (UINT64_C(1) << qe_required[i])) == 0)
            return qe_fail(&r, "%s is missing", qe_names[qe_required[i]]);
    }
    if (!e->failover && e->n_endpoints != 1)
        return qe_fail(&r, "policy all takes exactly one endpoint");
    if ((e->dead_ms > 0) != (e->dead_reason != NULL))
        return qe_fail(&r, "dead and dead_reason go together");
    if (e->n_history > (uint64_t)e->attempts * e->n_endpoints) /* a record per endpoint tried */
        return qe_fail(&r, "more attempts kept than made");
    return 0;
}

/* ---- the schedule ----------------------------------------------------------------------- */

/* queue_backoff - see queue_entry.h. */
uint64_t queue_backoff(const struct config_queue *q, unsigned attempts, uint32_t random)
{
    struct config_retry r = {0, q->initial_backoff_ms, q->max_backoff_ms};
    uint64_t cap = retry_backoff_cap(&r, attempts); /* the curve of the sender's retries */
    uint64_t half = cap / 2;
    return half + (half > 0 ? random % (cap - half + 1) : 0);
}

/* queue_schedule - see queue_entry.h. The end of the entry's life saturates at INT64_MAX: a
 * file may say any queued time up to it. */
bool queue_schedule(const struct config_queue *q, const struct queue_entry *e, int64_t now_ms,
                    bool has_retry_after, uint64_t retry_after_ms, uint32_t random,
                    int64_t *next_ms)
{
    int64_t age = q->max_age_ms > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)q->max_age_ms;
    int64_t end = e->queued_ms > INT64_MAX - age ? INT64_MAX : e->queued_ms + age;
    if (now_ms >= end)
        return false;
    uint64_t delay = has_retry_after ? retry_after_ms
                                     : queue_backoff(q, e->attempts > 0 ? e->attempts : 1, random);
    uint64_t left = (uint64_t)end - (uint64_t)now_ms; /* now_ms < end: no int64_t overflow */
    *next_ms = (int64_t)((uint64_t)now_ms + (delay < left ? delay : left)); /* <= end */
    return true;
}
