/* test_queue_entry.c - unit tests of queue_entry.c: an entry built, formatted, read back
 * field for field and formatted again byte for byte (and one entry against the exact text of
 * its file); the history window and the clipping of attempt texts; every way the reader must
 * refuse a file (cut off at each byte, fields unknown, twice or missing, numbers, escapes,
 * strings the session would not have accepted, inconsistent fields), each with a message
 * naming the line or the field; entry names; the backoff and the schedule of retries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtphook/buf.h"
#include "smtphook/error.h"
#include "smtphook/queue_entry.h"
#include "smtphook/utf8.h"

#include "golden.h"

#define KEY_HEX    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define DIGEST_HX  "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
#define PEER_HEX   "aa00bb11cc22dd33ee44ff5566778899aa00bb11cc22dd33ee44ff5566778899"
#define T0         1767268800000LL /* 2026-01-01T12:00:00Z, Unix ms */
#define ERR_MAX    256             /* room for a reader's message */
#define RMAX       UINT32_MAX      /* the largest random number */
#define ATTEMPT_OK "attempt 1767268800500 primary 200 250 2.0.0 ok"

/* ---- helpers -------------------------------------------------------------------------- */

/* format_entry - the entry's file text, NUL-terminated (the text itself holds no NUL). */
static char *format_entry(const struct queue_entry *e, size_t *len)
{
    struct buf b = {0};
    assert_int_equal(queue_entry_format(e, &b), 0);
    assert_int_equal(buf_append(&b, "", 1), 0);
    char *text = malloc(b.len);
    assert_non_null(text);
    memcpy(text, b.data, b.len);
    if (len != NULL)
        *len = b.len - 1;
    buf_free(&b);
    return text;
}

/* parse_ok - text must be read; the entry is left in *e (free it). */
static void parse_ok(const char *text, size_t len, struct queue_entry *e)
{
    char err[ERR_MAX];
    int rc = queue_entry_parse(text, len, e, err, sizeof(err));
    if (rc != 0) {
        golden_show("text", text, len);
        print_message("  refused: %s\n", err);
    }
    assert_int_equal(rc, 0);
    assert_string_equal(err, "");
}

/* parse_fails - text (len bytes) must be refused with SH_EINVAL and a message holding want. */
static void parse_fails(const char *text, size_t len, const char *want)
{
    struct queue_entry e;
    char err[ERR_MAX];
    memset(err, 'x', sizeof(err));
    int rc = queue_entry_parse(text, len, &e, err, sizeof(err));
    bool ok = rc == SH_EINVAL && strncmp(err, "line ", 5) == 0 && strstr(err, want) != NULL;
    if (!ok) {
        golden_show("text", text, len);
        print_message("  rc %d, err \"%.*s\", want \"%s\"\n", rc, ERR_MAX - 1, rc == 0 ? "" : err,
                      want);
    }
    queue_entry_free(&e);
    assert_true(ok);
}

/* parse_fails_str - parse_fails on a NUL-terminated text. */
static void parse_fails_str(const char *text, const char *want)
{
    parse_fails(text, strlen(text), want);
}

/* line_name_is - does the line starting at p name field ("field" then a space or its end)? */
static bool line_name_is(const char *p, const char *field)
{
    size_t n = strlen(field);
    return strncmp(p, field, n) == 0 && (p[n] == ' ' || p[n] == '\n');
}

/* line_of - the number (from 1) of the first line of field in text; 0 when there is none. */
static unsigned line_of(const char *text, const char *field)
{
    unsigned line = 1;
    for (const char *p = text; *p != '\0'; line++) {
        if (line_name_is(p, field))
            return line;
        const char *nl = strchr(p, '\n');
        if (nl == NULL)
            break;
        p = nl + 1;
    }
    return 0;
}

enum edit_how {
    REPLACE,       /* the first line of the field becomes line */
    DROP,          /* every line of the field goes */
    INSERT_BEFORE, /* line goes before the field's first line */
    INSERT_AFTER,  /* line goes after the field's first line */
};

/* edit - a copy of text (NUL-terminated) edited at the lines of field; line has no newline. */
static char *edit(const char *text, const char *field, enum edit_how how, const char *line)
{
    struct buf b = {0};
    bool done = false;
    for (const char *p = text; *p != '\0';) {
        const char *nl = strchr(p, '\n');
        size_t n = nl != NULL ? (size_t)(nl - p) + 1 : strlen(p);
        bool here = line_name_is(p, field) && (how == DROP || !done);
        if (here && how == INSERT_BEFORE) {
            buf_append_str(&b, line);
            buf_append(&b, "\n", 1);
        }
        if (!here || how == INSERT_BEFORE || how == INSERT_AFTER)
            buf_append(&b, p, n);
        if (here && (how == REPLACE || how == INSERT_AFTER)) {
            buf_append_str(&b, line);
            buf_append(&b, "\n", 1);
        }
        done |= here;
        p += n;
    }
    buf_append(&b, "", 1);
    assert_false(b.failed);
    assert_true(done);
    char *out = malloc(b.len);
    assert_non_null(out);
    memcpy(out, b.data, b.len);
    buf_free(&b);
    return out;
}

/* edit_fails - text edited must be refused with want in the message. */
static void edit_fails(const char *text, const char *field, enum edit_how how, const char *line,
                       const char *want)
{
    char *edited = edit(text, field, how, line);
    parse_fails_str(edited, want);
    free(edited);
}

/* edit_reads - text edited must be read; the entry is left in *e (free it). */
static void edit_reads(const char *text, const char *field, enum edit_how how, const char *line,
                       struct queue_entry *e)
{
    char *edited = edit(text, field, how, line);
    parse_ok(edited, strlen(edited), e);
    free(edited);
}

/* at_line - "line N: what" for the line of field in text, shifted by delta lines. */
static const char *at_line(const char *text, const char *field, unsigned delta, const char *what)
{
    static char msg[ERR_MAX];
    unsigned line = line_of(text, field);
    assert_true(line > 0);
    snprintf(msg, sizeof(msg), "line %u: %s", line + delta, what);
    return msg;
}

/* The source of an envelope: writable strings, so the copy can be shown to own its own. */
struct source {
    char client[32], helo[32], from[32];
    char rcpt[4][48];
    char *rcpts[4];
    char version[16], cipher[32], sni[32], subject[64], sha256[DIGEST_HEX + 1];
    struct envelope env;
};

/* source_fill - the envelope of a TLS session with four recipients, one of them UTF-8 and
 * one with a space, from the null sender. */
static void source_fill(struct source *s)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->client, sizeof(s->client), "2001:db8::7");
    snprintf(s->helo, sizeof(s->helo), "mail.example.net");
    snprintf(s->rcpt[0], sizeof(s->rcpt[0]), "alice@example.com");
    snprintf(s->rcpt[1], sizeof(s->rcpt[1]), "j\xc3\xb6rg@ex\xc3\xa4mple.de");
    snprintf(s->rcpt[2], sizeof(s->rcpt[2]), "\"a b\"@example.net");
    snprintf(s->rcpt[3], sizeof(s->rcpt[3]), "100%%@example.org");
    for (size_t i = 0; i < 4; i++)
        s->rcpts[i] = s->rcpt[i];
    snprintf(s->version, sizeof(s->version), "TLSv1.3");
    snprintf(s->cipher, sizeof(s->cipher), "TLS_AES_256_GCM_SHA384");
    snprintf(s->sni, sizeof(s->sni), "mx.example.com");
    snprintf(s->subject, sizeof(s->subject), "CN=client.example.net,O=Example Org");
    snprintf(s->sha256, sizeof(s->sha256), "%s", PEER_HEX);
    struct envelope *env = &s->env;
    snprintf(env->id, sizeof(env->id), "0a1b2c3d4e5f.1");
    env->key = KEY_HEX; /* not copied: the entry has its own */
    env->received_at_ms = T0;
    env->client_address = s->client;
    env->client_port = 52525;
    env->helo = s->helo;
    env->esmtp = true;
    env->mail_from = s->from; /* "": the null sender */
    env->rcpt_to = s->rcpts;
    env->n_rcpt = 4;
    env->size = 123456;
    env->declared_size = 130000;
    env->body = ENVELOPE_BODY_8BITMIME;
    env->smtputf8 = true;
    env->chunked = false;
    env->tls.version = s->version;
    env->tls.cipher = s->cipher;
    env->tls.sni = s->sni;
    env->tls.peer_subject = s->subject;
    env->tls.peer_sha256 = s->sha256;
}

/* source_scribble - overwrite every string of the source. */
static void source_scribble(struct source *s)
{
    memset(s->client, 'x', strlen(s->client));
    memset(s->helo, 'x', strlen(s->helo));
    for (size_t i = 0; i < 4; i++)
        memset(s->rcpt[i], 'x', strlen(s->rcpt[i]));
    memset(s->version, 'x', strlen(s->version));
    memset(s->cipher, 'x', strlen(s->cipher));
    memset(s->sni, 'x', strlen(s->sni));
    memset(s->subject, 'x', strlen(s->subject));
    memset(s->sha256, 'x', strlen(s->sha256));
}

/* The attempt texts of build_full: empty, spaces, '%', non-ASCII. */
#define TEXT_SPACES "connection refused: 100% down, na\xc3\xafve retry \xe2\x9c\x93"
#define DEAD_REASON "gave up after 3 days: 451 4.4.1 timeout"

/* build_full - an entry with every field: a dead letter of three attempts. */
static void build_full(struct queue_entry *e)
{
    struct source s;
    source_fill(&s);
    queue_entry_init(e);
    assert_int_equal(queue_entry_copy_envelope(e, &s.env), 0);
    source_scribble(&s);
    snprintf(e->name, sizeof(e->name), "0a1b2c3d4e5f.1-0");
    snprintf(e->key, sizeof(e->key), "%s", KEY_HEX);
    snprintf(e->digest, sizeof(e->digest), "%s", DIGEST_HX);
    e->queued_ms = T0 + 300;
    e->next_ms = T0 + 3600000;
    e->failover = false;
    e->body_utf8 = true;
    assert_int_equal(queue_entry_add_endpoint(e, "primary"), 0);
    assert_int_equal(queue_entry_record(e, T0 + 400, "primary", 503, 451, "4.3.0", ""), 0);
    assert_int_equal(queue_entry_record(e, T0 + 5000, "primary", 0, 451, "4.4.1", TEXT_SPACES), 0);
    assert_int_equal(queue_entry_record(e, T0 + 60000, "primary", 500, 451, "", "x"), 0);
    e->dead_ms = T0 + 259200000;
    e->dead_reason = strdup(DEAD_REASON);
    assert_non_null(e->dead_reason);
}

/* build_simple - a plaintext entry waiting for its second attempt. */
static void build_simple(struct queue_entry *e)
{
    char client[] = "192.0.2.7", from[] = "s@example.org", rcpt[] = "a@example.com";
    char *rcpts[] = {rcpt};
    struct envelope env;
    memset(&env, 0, sizeof(env));
    snprintf(env.id, sizeof(env.id), "0a1b2c3d4e5f.2");
    env.received_at_ms = T0;
    env.client_address = client;
    env.client_port = 2525;
    env.helo = "client.test";
    env.esmtp = true;
    env.mail_from = from;
    env.rcpt_to = rcpts;
    env.n_rcpt = 1;
    env.size = 20;
    queue_entry_init(e);
    assert_int_equal(queue_entry_copy_envelope(e, &env), 0);
    snprintf(e->name, sizeof(e->name), "0a1b2c3d4e5f.2-0");
    snprintf(e->key, sizeof(e->key), "%s", KEY_HEX);
    snprintf(e->digest, sizeof(e->digest), "%s", DIGEST_HX);
    e->queued_ms = T0 + 300;
    e->next_ms = T0 + 30300;
    e->body_utf8 = true;
    assert_int_equal(queue_entry_add_endpoint(e, "primary"), 0);
    assert_int_equal(
        queue_entry_record(e, T0 + 400, "primary", 503, 451, "4.3.0", "service unavailable"), 0);
}

/* The file build_simple's entry is. */
static const char simple_text[] =
    "smtphook-queue-entry 1\n"
    "name 0a1b2c3d4e5f.2-0\n"
    "key " KEY_HEX "\n"
    "digest " DIGEST_HX "\n"
    "queued 1767268800300\n"
    "next 1767268830300\n"
    "attempts 1\n"
    "policy all\n"
    "endpoint primary\n"
    "utf8 1\n"
    "id 0a1b2c3d4e5f.2\n"
    "received 1767268800000\n"
    "client 192.0.2.7\n"
    "port 2525\n"
    "helo client.test\n"
    "esmtp 1\n"
    "from s@example.org\n"
    "rcpt a@example.com\n"
    "size 20\n"
    "declared_size 0\n"
    "body none\n"
    "smtputf8 0\n"
    "chunked 0\n"
    "attempt 1767268800400 primary 503 451 4.3.0 service%20unavailable\n"
    "end\n";

/* full_text - build_full's file (free it). */
static char *full_text(size_t *len)
{
    struct queue_entry e;
    build_full(&e);
    char *text = format_entry(&e, len);
    queue_entry_free(&e);
    return text;
}

/* assert_same_string - both NULL or both the same string. */
static void assert_same_string(const char *a, const char *b)
{
    if (a == NULL || b == NULL) {
        assert_null(a);
        assert_null(b);
    } else {
        assert_string_equal(a, b);
    }
}

/* assert_entries_equal - every field of two entries. */
static void assert_entries_equal(const struct queue_entry *a, const struct queue_entry *b)
{
    assert_string_equal(a->name, b->name);
    assert_string_equal(a->key, b->key);
    assert_string_equal(a->digest, b->digest);
    assert_true(a->queued_ms == b->queued_ms);
    assert_true(a->next_ms == b->next_ms);
    assert_int_equal(a->attempts, b->attempts);
    assert_int_equal(a->failover, b->failover);
    assert_int_equal(a->n_endpoints, b->n_endpoints);
    for (size_t i = 0; i < a->n_endpoints; i++)
        assert_string_equal(a->endpoints[i], b->endpoints[i]);
    assert_int_equal(a->body_utf8, b->body_utf8);
    const struct envelope *x = &a->env, *y = &b->env;
    assert_string_equal(x->id, y->id);
    assert_null(x->key);
    assert_null(y->key);
    assert_true(x->received_at_ms == y->received_at_ms);
    assert_same_string(x->client_address, y->client_address);
    assert_int_equal(x->client_port, y->client_port);
    assert_same_string(x->helo, y->helo);
    assert_int_equal(x->esmtp, y->esmtp);
    assert_same_string(x->mail_from, y->mail_from);
    assert_int_equal(x->n_rcpt, y->n_rcpt);
    for (size_t i = 0; i < x->n_rcpt; i++)
        assert_string_equal(x->rcpt_to[i], y->rcpt_to[i]);
    assert_true(x->size == y->size);
    assert_true(x->declared_size == y->declared_size);
    assert_int_equal(x->body, y->body);
    assert_int_equal(x->smtputf8, y->smtputf8);
    assert_int_equal(x->chunked, y->chunked);
    assert_same_string(x->tls.version, y->tls.version);
    assert_same_string(x->tls.cipher, y->tls.cipher);
    assert_same_string(x->tls.sni, y->tls.sni);
    assert_same_string(x->tls.peer_subject, y->tls.peer_subject);
    assert_same_string(x->tls.peer_sha256, y->tls.peer_sha256);
    assert_int_equal(a->n_history, b->n_history);
    for (size_t i = 0; i < a->n_history; i++) {
        const struct queue_attempt *p = &a->history[i], *q = &b->history[i];
        assert_true(p->at_ms == q->at_ms);
        assert_string_equal(p->endpoint, q->endpoint);
        assert_int_equal(p->status, q->status);
        assert_int_equal(p->code, q->code);
        assert_string_equal(p->esc, q->esc);
        assert_string_equal(p->text, q->text);
    }
    assert_true(a->dead_ms == b->dead_ms);
    assert_same_string(a->dead_reason, b->dead_reason);
}

/* round_trip - e formatted, read back equal, formatted again to the same bytes. */
static void round_trip(const struct queue_entry *e)
{
    size_t len = 0, len2 = 0;
    char *text = format_entry(e, &len);
    /* Escaped: one field a line, no control byte and no DEL but the line ends. */
    for (size_t i = 0; i < len; i++)
        assert_true(text[i] == '\n' || ((unsigned char)text[i] >= 0x20 && text[i] != 0x7f));
    assert_memory_equal(text + len - 5, "\nend\n", 5);
    struct queue_entry back;
    parse_ok(text, len, &back);
    assert_entries_equal(e, &back);
    char *again = format_entry(&back, &len2);
    assert_int_equal(len, len2);
    assert_memory_equal(text, again, len);
    queue_entry_free(&back);
    free(text);
    free(again);
}

/* ---- round trips ---------------------------------------------------------------------- */

/* Every field of a dead letter survives the file, and the copy of the envelope owns its
 * strings. */
static void test_round_trip_full(void **state)
{
    (void)state;
    struct queue_entry e;
    build_full(&e);
    /* The copy: the source was scribbled over after it. */
    assert_null(e.env.key);
    assert_string_equal(e.env.id, "0a1b2c3d4e5f.1");
    assert_string_equal(e.env.client_address, "2001:db8::7");
    assert_string_equal(e.env.helo, "mail.example.net");
    assert_string_equal(e.env.mail_from, "");
    assert_int_equal(e.env.n_rcpt, 4);
    assert_string_equal(e.env.rcpt_to[1], "j\xc3\xb6rg@ex\xc3\xa4mple.de");
    assert_string_equal(e.env.rcpt_to[3], "100%@example.org");
    assert_string_equal(e.env.tls.peer_subject, "CN=client.example.net,O=Example Org");
    assert_string_equal(e.env.tls.peer_sha256, PEER_HEX);
    assert_int_equal(e.env.body, ENVELOPE_BODY_8BITMIME);
    assert_true(e.env.smtputf8);
    assert_int_equal(e.attempts, 3);
    assert_int_equal(e.n_history, 3);
    assert_string_equal(e.history[0].text, "");
    assert_string_equal(e.history[1].text, TEXT_SPACES);
    assert_string_equal(e.history[2].esc, "");
    round_trip(&e);

    /* How the strings look in the file. */
    size_t len = 0;
    char *text = format_entry(&e, &len);
    assert_non_null(strstr(text, "\nfrom \n"));
    assert_non_null(strstr(text, "\nrcpt j\xc3\xb6rg@ex\xc3\xa4mple.de\n"));
    assert_non_null(strstr(text, "\nrcpt \"a%20b\"@example.net\n"));
    assert_non_null(strstr(text, "\nrcpt 100%25@example.org\n"));
    assert_non_null(strstr(text, "\nbody 8BITMIME\n"));
    assert_non_null(strstr(text, "\nsmtputf8 1\n"));
    assert_non_null(strstr(text, "\ntls_subject CN=client.example.net,O=Example%20Org\n"));
    assert_non_null(strstr(text, "\nattempt 1767268800400 primary 503 451 4.3.0 \n"));
    assert_non_null(strstr(text, "\nattempt 1767268805000 primary 0 451 4.4.1 "
                                 "connection%20refused:%20100%25%20down,%20na\xc3\xafve%20retry"
                                 "%20\xe2\x9c\x93\n"));
    assert_non_null(strstr(text, "\nattempt 1767268860000 primary 500 451 - x\n"));
    assert_non_null(strstr(text, "\ndead 1767528000000\ndead_reason gave%20up%20after%203%20"
                                 "days:%20451%204.4.1%20timeout\nend\n"));
    free(text);
    queue_entry_free(&e);
    queue_entry_free(NULL);
}

/* The file of a small entry, byte for byte: the format is what old files hold. */
static void test_format_exact(void **state)
{
    (void)state;
    struct queue_entry e;
    build_simple(&e);
    size_t len = 0;
    char *text = format_entry(&e, &len);
    if (strcmp(text, simple_text) != 0)
        golden_show("got", text, len);
    assert_string_equal(text, simple_text);
    free(text);
    round_trip(&e);
    /* The text as a reader gets it, then its entry formatted again. */
    struct queue_entry back;
    parse_ok(simple_text, strlen(simple_text), &back);
    assert_entries_equal(&e, &back);
    queue_entry_free(&back);
    queue_entry_free(&e);
}

/* Plaintext, HELO, no TLS: the absent strings stay absent; a NULL sender is the null
 * sender. */
static void test_round_trip_plaintext(void **state)
{
    (void)state;
    char *rcpts[] = {"postmaster@example.com"};
    struct envelope env;
    memset(&env, 0, sizeof(env));
    snprintf(env.id, sizeof(env.id), "ffff.9");
    env.client_address = "192.0.2.1";
    env.client_port = 25;
    env.rcpt_to = rcpts;
    env.n_rcpt = 1;
    env.body = ENVELOPE_BODY_BINARYMIME;
    env.chunked = true;
    struct queue_entry e;
    queue_entry_init(&e);
    assert_int_equal(queue_entry_copy_envelope(&e, &env), 0);
    assert_string_equal(e.env.mail_from, "");
    assert_null(e.env.helo);
    assert_null(e.env.tls.version);
    snprintf(e.name, sizeof(e.name), "ffff.9-3");
    snprintf(e.key, sizeof(e.key), "%s", KEY_HEX);
    snprintf(e.digest, sizeof(e.digest), "%s", DIGEST_HX);
    assert_int_equal(queue_entry_add_endpoint(&e, "hook"), 0);
    round_trip(&e); /* no attempt yet, everything 0 */
    size_t len = 0;
    char *text = format_entry(&e, &len);
    assert_null(strstr(text, "\nhelo"));
    assert_null(strstr(text, "\ntls_"));
    assert_null(strstr(text, "\nattempt "));
    assert_null(strstr(text, "\ndead"));
    assert_non_null(strstr(text, "\nqueued 0\nnext 0\nattempts 0\n"));
    assert_non_null(strstr(text, "\nbody BINARYMIME\nsmtputf8 0\nchunked 1\n"));
    free(text);
    /* Each body value. */
    static const enum envelope_body bodies[] = {ENVELOPE_BODY_NONE, ENVELOPE_BODY_7BIT,
                                                ENVELOPE_BODY_8BITMIME, ENVELOPE_BODY_BINARYMIME};
    for (size_t i = 0; i < N(bodies); i++) {
        e.env.body = bodies[i];
        round_trip(&e);
    }
    queue_entry_free(&e);
}

/* A failover entry: three endpoints in order, attempts at each. */
static void test_round_trip_failover(void **state)
{
    (void)state;
    struct queue_entry e;
    build_simple(&e);
    e.failover = true;
    assert_int_equal(queue_entry_add_endpoint(&e, "secondary"), 0);
    assert_int_equal(queue_entry_add_endpoint(&e, "b\xc3\xa4"
                                                  "ckup 3"),
                     0);
    assert_int_equal(queue_entry_record(&e, T0 + 500, "secondary", 429, 451, "4.7.0", "slow"), 0);
    assert_int_equal(queue_entry_record(&e, T0 + 600,
                                        "b\xc3\xa4"
                                        "ckup 3",
                                        0, 451, "4.4.1", ""),
                     0);
    e.next_ms = INT64_MAX;
    e.queued_ms = INT64_MAX;
    e.env.client_port = 65535;
    e.env.size = (uint64_t)INT64_MAX;
    round_trip(&e);
    size_t len = 0;
    char *text = format_entry(&e, &len);
    assert_non_null(strstr(text, "\npolicy failover\nendpoint primary\nendpoint secondary\n"
                                 "endpoint b\xc3\xa4"
                                 "ckup%203\n"));
    free(text);
    queue_entry_free(&e);
}

/* ---- the history ---------------------------------------------------------------------- */

/* Only the last QUEUE_ENTRY_HISTORY_MAX attempts are kept; attempts counts them all. */
static void test_history_window(void **state)
{
    (void)state;
    struct queue_entry e;
    build_simple(&e); /* one attempt already, at T0 + 400 */
    unsigned total = QUEUE_ENTRY_HISTORY_MAX + 9;
    for (unsigned i = 2; i <= total; i++) {
        char text[32];
        snprintf(text, sizeof(text), "try %u", i);
        assert_int_equal(
            queue_entry_record(&e, T0 + 1000 * (int64_t)i, "primary", 502, 451, "4.4.1", text), 0);
        assert_int_equal(e.attempts, i);
        assert_int_equal(e.n_history, i < QUEUE_ENTRY_HISTORY_MAX ? i : QUEUE_ENTRY_HISTORY_MAX);
    }
    unsigned first = total - QUEUE_ENTRY_HISTORY_MAX + 1; /* the oldest one kept */
    for (size_t k = 0; k < e.n_history; k++) {
        char text[32];
        snprintf(text, sizeof(text), "try %u", first + (unsigned)k);
        assert_true(e.history[k].at_ms == T0 + 1000 * (int64_t)(first + k));
        assert_string_equal(e.history[k].text, text);
    }
    round_trip(&e);
    /* The file holds the window, and a reader takes it with the count. */
    size_t len = 0;
    char *text = format_entry(&e, &len);
    size_t lines = 0;
    for (const char *p = text; (p = strstr(p, "\nattempt ")) != NULL; p++)
        lines++;
    assert_int_equal(lines, QUEUE_ENTRY_HISTORY_MAX);
    struct queue_entry back;
    parse_ok(text, len, &back);
    assert_int_equal(back.attempts, total);
    /* Recorded after reading: the window moves on. */
    assert_int_equal(queue_entry_record(&back, T0, "primary", 200, 250, "2.0.0", "ok"), 0);
    assert_int_equal(back.attempts, total + 1);
    assert_int_equal(back.n_history, QUEUE_ENTRY_HISTORY_MAX);
    assert_string_equal(back.history[QUEUE_ENTRY_HISTORY_MAX - 1].text, "ok");
    queue_entry_free(&back);
    free(text);
    queue_entry_free(&e);
}

/* record_text - the text an attempt keeps of text. */
static void record_text(const char *text, const char *want)
{
    struct queue_entry e;
    build_simple(&e);
    assert_int_equal(queue_entry_record(&e, T0, "primary", 0, 451, NULL, text), 0);
    const struct queue_attempt *a = &e.history[e.n_history - 1];
    assert_string_equal(a->text, want);
    assert_true(strlen(a->text) <= QUEUE_ENTRY_TEXT_MAX);
    assert_true(utf8_valid(a->text, strlen(a->text)));
    assert_string_equal(a->esc, "");
    round_trip(&e);
    queue_entry_free(&e);
}

/* repeat - n times s, after prefix. */
static char *repeat(const char *prefix, const char *s, size_t n)
{
    size_t p = strlen(prefix), k = strlen(s);
    char *out = malloc(p + n * k + 1);
    assert_non_null(out);
    memcpy(out, prefix, p);
    for (size_t i = 0; i < n; i++)
        memcpy(out + p + i * k, s, k);
    out[p + n * k] = '\0';
    return out;
}

/* Texts longer than QUEUE_ENTRY_TEXT_MAX are clipped, never inside a UTF-8 character. */
static void test_text_clip(void **state)
{
    (void)state;
    struct {
        const char *prefix, *unit; /* the text: prefix, then unit repeated */
        size_t n;
        const char *want_prefix, *want_unit; /* what is kept, the same way */
        size_t want_n;
    } cases[] = {
        {"", "a", QUEUE_ENTRY_TEXT_MAX, "", "a", QUEUE_ENTRY_TEXT_MAX},     /* fits exactly */
        {"", "a", QUEUE_ENTRY_TEXT_MAX + 1, "", "a", QUEUE_ENTRY_TEXT_MAX}, /* one byte more */
        {"", "a", 3 * QUEUE_ENTRY_TEXT_MAX, "", "a", QUEUE_ENTRY_TEXT_MAX}, /* far more */
        {"", "\xc3\xa9", 150, "", "\xc3\xa9", 100},                         /* é: cut between */
        {"a", "\xc3\xa9", 150, "a", "\xc3\xa9", 99},                        /* é across the cut */
        {"aa", "\xe2\x82\xac", 70, "aa", "\xe2\x82\xac", 66},               /* €: 2 + 198 */
        {"a", "\xe2\x82\xac", 70, "a", "\xe2\x82\xac", 66},                 /* € across it */
        {"", "\xe2\x82\xac", 70, "", "\xe2\x82\xac", 66},                   /* € across it */
        {"aaa", "\xf0\x9f\x98\x80", 60, "aaa", "\xf0\x9f\x98\x80", 49},     /* U+1F600 */
        {"aaaa", "\xf0\x9f\x98\x80", 60, "aaaa", "\xf0\x9f\x98\x80", 49},   /* on the cut */
        {"", "\xf0\x9f\x98\x80", 50, "", "\xf0\x9f\x98\x80", 50},           /* fits exactly */
        {"", "\xf0\x9f\x98\x80", 51, "", "\xf0\x9f\x98\x80", 50},           /* one more */
        {"%% %% %%", "%", QUEUE_ENTRY_TEXT_MAX, "%% %% %%", "%", 192},      /* escaped later */
    };
    for (size_t i = 0; i < N(cases); i++) {
        char *text = repeat(cases[i].prefix, cases[i].unit, cases[i].n);
        char *want = repeat(cases[i].want_prefix, cases[i].want_unit, cases[i].want_n);
        record_text(text, want);
        free(text);
        free(want);
    }
    record_text("", "");
    record_text(NULL, "");
}

/* Whatever an attempt records, its entry stays readable: control characters and the
 * non-ASCII bytes of invalid UTF-8 become '?', an empty endpoint "-", out-of-range numbers 0. */
static void test_record_keeps_the_entry_readable(void **state)
{
    (void)state;
    record_text("line\r\nbreak\ttab\x7f", "line??break?tab?");
    record_text("caf\xc3\xa9 ok", "caf\xc3\xa9 ok");
    record_text("bad \xff\xfe utf8 \xc3\xa9", "bad ?? utf8 ??");
    struct queue_entry e;
    build_simple(&e);
    assert_int_equal(queue_entry_record(&e, -5, "", 1234, 777, "4.4 .1\n", "x"), 0);
    const struct queue_attempt *a = &e.history[e.n_history - 1];
    assert_string_equal(a->endpoint, "-");
    assert_int_equal(a->status, 0);
    assert_int_equal(a->code, 0);
    assert_int_equal(a->at_ms, 0);
    assert_string_equal(a->esc, "4.4?.1?");
    round_trip(&e);
    char reason[] = "dead\x01 \xff";
    queue_entry_clean(reason);
    assert_string_equal(reason, "dead? ?");
    queue_entry_free(&e);
}

/* digest_unhex undoes digest_hex, and takes nothing but its 64 lower-case digits. */
static void test_digest_unhex(void **state)
{
    (void)state;
    uint8_t d[DIGEST_BYTES], back[DIGEST_BYTES];
    for (size_t i = 0; i < DIGEST_BYTES; i++)
        d[i] = (uint8_t)(i * 37 + 5);
    char hex[DIGEST_HEX + 2];
    digest_hex(d, hex);
    assert_true(digest_unhex(hex, back));
    assert_memory_equal(d, back, sizeof(d));
    memset(back, 0xAA, sizeof(back));
    hex[3] = 'A'; /* upper case */
    assert_false(digest_unhex(hex, back));
    hex[3] = 'g';
    assert_false(digest_unhex(hex, back));
    assert_int_equal(back[1], 0xAA); /* unchanged on a refusal */
    digest_hex(d, hex);
    hex[DIGEST_HEX - 1] = '\0'; /* short */
    assert_false(digest_unhex(hex, back));
    digest_hex(d, hex);
    hex[DIGEST_HEX] = '0';
    hex[DIGEST_HEX + 1] = '\0'; /* long */
    assert_false(digest_unhex(hex, back));
}

/* ---- refusals ------------------------------------------------------------------------- */

/* Not an entry file at all, or another version of one. */
static void test_reject_header(void **state)
{
    (void)state;
    parse_fails(S(""), "line 0: empty file");
    parse_fails("", 0, "empty file");
    parse_fails(S("\n"), "line 1: not a smtphook queue entry");
    parse_fails(S("end\n"), "line 1: not a smtphook queue entry");
    parse_fails(S("smtphook-queue-entr 1\nend\n"), "line 1: not a smtphook queue entry");
    parse_fails(S("Smtphook-queue-entry 1\nend\n"), "line 1: not a smtphook queue entry");
    parse_fails(S("smtphook-queue-entry-1\nend\n"), "line 1: not a smtphook queue entry");
    parse_fails(S("{\"smtphook\": 1}\n"), "line 1: not a smtphook queue entry");
    parse_fails(S("smtphook-queue-entry 2\nend\n"), "line 1: unknown entry version");
    parse_fails(S("smtphook-queue-entry 0\nend\n"), "line 1: unknown entry version");
    parse_fails(S("smtphook-queue-entry 01\nend\n"), "line 1: unknown entry version");
    parse_fails(S("smtphook-queue-entry \nend\n"), "line 1: unknown entry version");
    parse_fails(S("smtphook-queue-entry\nend\n"), "line 1: unknown entry version");
    parse_fails(S("smtphook-queue-entry 1 \nend\n"), "line 1: unknown entry version");
    parse_fails(S("smtphook-queue-entry 4294967297\nend\n"), "line 1: unknown entry version");
    parse_fails(S("smtphook-queue-entry 1\r\nend\r\n"), "line 1: unknown entry version");
    parse_fails(S("smtphook-queue-entry 1"), "line 1: the last line is cut off");
    /* A header and an end, nothing between. */
    parse_fails(S("smtphook-queue-entry 1\nend\n"), "line 2: name is missing");
    /* Larger than a file may be: refused before it is read. */
    size_t big = QUEUE_ENTRY_FILE_MAX + 1;
    char *text = malloc(big);
    assert_non_null(text);
    memset(text, 'x', big);
    parse_fails(text, big, "larger than");
    free(text);
    /* No room for the message, or only a little: still refused, the message cut short. */
    struct queue_entry e;
    assert_int_equal(queue_entry_parse(S("nope\n"), &e, NULL, 0), SH_EINVAL);
    queue_entry_free(&e);
    char small[8];
    assert_int_equal(queue_entry_parse(S("nope\n"), &e, small, sizeof(small)), SH_EINVAL);
    assert_string_equal(small, "line 1:");
    queue_entry_free(&e);
}

/* Cut off at any byte, the file is refused with a message, never read as a shorter
 * entry. */
static void test_reject_truncated(void **state)
{
    (void)state;
    size_t len = 0;
    char *text = full_text(&len);
    for (size_t k = 0; k < len; k++) {
        /* An allocation of exactly k bytes: ASan sees any read past the cut. */
        char *cut = malloc(k > 0 ? k : 1);
        assert_non_null(cut);
        memcpy(cut, text, k);
        const char *want = k == 0               ? "empty file"
                           : cut[k - 1] == '\n' ? "no end line: the file is cut off"
                                                : "the last line is cut off";
        parse_fails(cut, k, want);
        free(cut);
    }
    struct queue_entry e;
    parse_ok(text, len, &e);
    queue_entry_free(&e);
    free(text);
}

/* Lines after the end, or an end that is not one. */
static void test_reject_end(void **state)
{
    (void)state;
    size_t len = 0;
    char *text = full_text(&len);
    unsigned lines = line_of(text, "end");
    char msg[ERR_MAX];
    char *more = malloc(len + 32);
    assert_non_null(more);
    static const char *const tails[] = {"end\n", "\n", "rcpt b@example.com\n", "x\n", "x"};
    for (size_t i = 0; i < N(tails); i++) {
        snprintf(more, len + 32, "%s%s", text, tails[i]);
        snprintf(msg, sizeof(msg), "line %u: text after end", lines + 1);
        parse_fails_str(more, i == N(tails) - 1 ? "the last line is cut off" : msg);
    }
    edit_fails(text, "end", REPLACE, "end ", at_line(text, "end", 0, "end takes no value"));
    edit_fails(text, "end", REPLACE, "end now", at_line(text, "end", 0, "end takes no value"));
    edit_fails(text, "end", REPLACE, "END", at_line(text, "end", 0, "unknown field"));
    edit_fails(text, "end", REPLACE, "end\r", at_line(text, "end", 0, "unknown field"));
    edit_fails(text, "end", DROP, NULL, "no end line");
    free(more);
    free(text);
}

/* Field names the reader does not know. */
static void test_reject_unknown(void **state)
{
    (void)state;
    size_t len = 0;
    char *text = full_text(&len);
    static const char *const lines[] = {
        "color blue", "Name 0a1b2c3d4e5f.1-0",  "rcpt\ta@b", "",
        " rcpt a@b",  "smtphook-queue-entry 1", "queued\r",  "attempt\r",
        "x",
    };
    for (size_t i = 0; i < N(lines); i++)
        edit_fails(text, "rcpt", INSERT_BEFORE, lines[i],
                   at_line(text, "rcpt", 0, "unknown field"));
    free(text);
}

/* The fields that come once, and those that may repeat. */
static const char *const singular[] = {
    "name",       "key",     "digest",      "queued",     "next",          "attempts",
    "policy",     "utf8",    "id",          "received",   "client",        "port",
    "helo",       "esmtp",   "from",        "size",       "declared_size", "body",
    "smtputf8",   "chunked", "tls_version", "tls_cipher", "tls_sni",       "tls_subject",
    "tls_sha256", "dead",    "dead_reason",
};
static const char *const required[] = {
    "name",     "key",    "digest", "queued", "next", "attempts", "policy", "endpoint", "id",
    "received", "client", "port",   "esmtp",  "from", "rcpt",     "size",   "body",
};
static const char *const optional[] = {
    "utf8",       "helo",    "declared_size", "smtputf8",   "chunked", "tls_version",
    "tls_cipher", "tls_sni", "tls_subject",   "tls_sha256", "attempt",
};

/* line_text - a copy of the first line of field in text, without its newline. */
static char *line_text(const char *text, const char *field)
{
    unsigned want = line_of(text, field);
    assert_true(want > 0);
    const char *p = text;
    for (unsigned l = 1; l < want; l++)
        p = strchr(p, '\n') + 1;
    size_t n = (size_t)(strchr(p, '\n') - p);
    char *line = malloc(n + 1);
    assert_non_null(line);
    memcpy(line, p, n);
    line[n] = '\0';
    return line;
}

/* A singular field twice is refused at its second line, whatever its value. */
static void test_reject_twice(void **state)
{
    (void)state;
    size_t len = 0;
    char *text = full_text(&len);
    char what[64];
    for (size_t i = 0; i < N(singular); i++) {
        char *line = line_text(text, singular[i]);
        snprintf(what, sizeof(what), "%s given twice", singular[i]);
        edit_fails(text, singular[i], INSERT_AFTER, line, at_line(text, singular[i], 1, what));
        /* Also when the first one is far away. */
        edit_fails(text, "end", INSERT_BEFORE, line, at_line(text, "end", 0, what));
        free(line);
    }
    /* Repeated fields: more recipients, more endpoints (failover), more attempts. */
    struct queue_entry e;
    edit_reads(text, "rcpt", INSERT_AFTER, "rcpt alice@example.com", &e);
    assert_int_equal(e.env.n_rcpt, 5);
    assert_string_equal(e.env.rcpt_to[1], "alice@example.com");
    queue_entry_free(&e);
    char *failover = edit(text, "policy", REPLACE, "policy failover");
    edit_reads(failover, "endpoint", INSERT_AFTER, "endpoint primary", &e);
    assert_int_equal(e.n_endpoints, 2);
    queue_entry_free(&e);
    free(failover);
    char *more = edit(text, "attempts", REPLACE, "attempts 4");
    edit_reads(more, "end", INSERT_BEFORE, ATTEMPT_OK, &e);
    assert_int_equal(e.n_history, 4);
    assert_int_equal(e.attempts, 4);
    assert_string_equal(e.history[3].text, "ok");
    queue_entry_free(&e);
    free(more);
    free(text);
}

/* Each required field missing in turn is named; optional ones missing take their default. */
static void test_reject_missing(void **state)
{
    (void)state;
    size_t len = 0;
    char *text = full_text(&len);
    char what[64];
    for (size_t i = 0; i < N(required); i++) {
        snprintf(what, sizeof(what), "%s is missing", required[i]);
        edit_fails(text, required[i], DROP, NULL, what);
    }
    for (size_t i = 0; i < N(optional); i++) {
        struct queue_entry e;
        edit_reads(text, optional[i], DROP, NULL, &e);
        queue_entry_free(&e);
    }
    /* All optional ones at once: the defaults. */
    char *bare = strdup(text);
    assert_non_null(bare);
    for (size_t i = 0; i < N(optional); i++) {
        char *next = edit(bare, optional[i], DROP, NULL);
        free(bare);
        bare = next;
    }
    struct queue_entry e;
    parse_ok(bare, strlen(bare), &e);
    assert_false(e.body_utf8);
    assert_null(e.env.helo);
    assert_true(e.env.declared_size == 0);
    assert_false(e.env.smtputf8);
    assert_false(e.env.chunked);
    assert_null(e.env.tls.version);
    assert_null(e.env.tls.cipher);
    assert_null(e.env.tls.sni);
    assert_null(e.env.tls.peer_subject);
    assert_null(e.env.tls.peer_sha256);
    assert_int_equal(e.n_history, 0);
    assert_int_equal(e.attempts, 3); /* the count stays: only the history went */
    round_trip(&e);
    queue_entry_free(&e);
    free(bare);
    free(text);
}

struct field_case {
    const char *field; /* the line replaced */
    const char *line;  /* by this */
    const char *what;  /* the message, at that line; NULL: read */
};

/* run_field_cases - each row on text. */
static void run_field_cases(const char *text, const struct field_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct field_case *c = &cases[i];
        if (c->what == NULL) {
            struct queue_entry e;
            edit_reads(text, c->field, REPLACE, c->line, &e);
            queue_entry_free(&e);
        } else {
            edit_fails(text, c->field, REPLACE, c->line, at_line(text, c->field, 0, c->what));
        }
    }
}

/* Numbers are plain decimal within range: no sign, no leading zero, no overflow. */
static void test_reject_numbers(void **state)
{
    (void)state;
    static const struct field_case cases[] = {
        {"queued", "queued 01", "bad queued value"},
        {"queued", "queued 00", "bad queued value"},
        {"queued", "queued -1", "bad queued value"},
        {"queued", "queued +1", "bad queued value"},
        {"queued", "queued ", "bad queued value"},
        {"queued", "queued", "bad queued value"},
        {"queued", "queued 1 ", "bad queued value"},
        {"queued", "queued  1", "bad queued value"},
        {"queued", "queued 1.5", "bad queued value"},
        {"queued", "queued 0x10", "bad queued value"},
        {"queued", "queued 1e3", "bad queued value"},
        {"queued", "queued %31", "bad queued value"},
        {"queued", "queued 9223372036854775808", "bad queued value"}, /* INT64_MAX + 1 */
        {"queued", "queued 18446744073709551615", "bad queued value"},
        {"queued", "queued 18446744073709551616", "bad queued value"},  /* past uint64 */
        {"queued", "queued 99999999999999999999", "bad queued value"},  /* 20 digits */
        {"queued", "queued 100000000000000000000", "bad queued value"}, /* 21 digits */
        {"queued", "queued 0", NULL},
        {"queued", "queued 9223372036854775807", NULL},
        {"next", "next 07", "bad next value"},
        {"next", "next -0", "bad next value"},
        {"received", "received 1 2", "bad received value"},
        {"attempts", "attempts 4294967296", "bad attempts value"},
        {"attempts", "attempts 03", "bad attempts value"},
        {"attempts", "attempts 4294967295", NULL},
        {"port", "port 65536", "bad port value"},
        {"port", "port 065535", "bad port value"},
        {"port", "port -1", "bad port value"},
        {"port", "port 65535", NULL},
        {"port", "port 0", NULL},
        {"size", "size -5", "bad size value"},
        {"size", "size 9223372036854775808", "bad size value"},
        {"declared_size", "declared_size 012", "bad declared_size value"},
        {"dead", "dead 0", "bad dead value"},
        {"dead", "dead 01", "bad dead value"},
        {"dead", "dead -1", "bad dead value"},
        {"utf8", "utf8 2", "utf8 must be 0 or 1"},
        {"utf8", "utf8 01", "utf8 must be 0 or 1"},
        {"esmtp", "esmtp ", "esmtp must be 0 or 1"},
        {"esmtp", "esmtp true", "esmtp must be 0 or 1"},
        {"smtputf8", "smtputf8 1 ", "smtputf8 must be 0 or 1"},
        {"chunked", "chunked -1", "chunked must be 0 or 1"},
        {"utf8", "utf8 0", NULL},
        {"chunked", "chunked 1", NULL},
        /* An attempt's time, HTTP status and SMTP code. */
        {"attempt", "attempt 01 primary 200 250 2.0.0 ok", "attempt: bad number"},
        {"attempt", "attempt -1 primary 200 250 2.0.0 ok", "attempt: bad number"},
        {"attempt", "attempt 9223372036854775808 primary 200 250 2.0.0 ok", "attempt: bad number"},
        {"attempt", "attempt 1 primary 1000 250 2.0.0 ok", "attempt: bad number"},
        {"attempt", "attempt 1 primary 0200 250 2.0.0 ok", "attempt: bad number"},
        {"attempt", "attempt 1 primary -1 250 2.0.0 ok", "attempt: bad number"},
        {"attempt", "attempt 1 primary 200 600 2.0.0 ok", "attempt: bad number"},
        {"attempt", "attempt 1 primary 200 25x 2.0.0 ok", "attempt: bad number"},
        {"attempt", "attempt x primary 200 250 2.0.0 ok", "attempt: bad number"},
        {"attempt", "attempt 9223372036854775807 primary 999 599 2.0.0 ok", NULL},
        {"attempt", "attempt 0 primary 0 0 - ", NULL},
    };
    size_t len = 0;
    char *text = full_text(&len);
    run_field_cases(text, cases, N(cases));
    free(text);
}

/* Escapes: "%XX" with two hex digits, never %00; no raw byte that must be escaped. */
static void test_reject_escapes(void **state)
{
    (void)state;
    static const struct field_case cases[] = {
        {"rcpt", "rcpt %G1@example.com", "bad rcpt value"},
        {"rcpt", "rcpt %1G@example.com", "bad rcpt value"},
        {"rcpt", "rcpt a@example.com%0", "bad rcpt value"},
        {"rcpt", "rcpt a@example.com%", "bad rcpt value"},
        {"rcpt", "rcpt %", "bad rcpt value"},
        {"rcpt", "rcpt a%00b@example.com", "bad rcpt value"},
        {"rcpt", "rcpt a%%41@example.com", "bad rcpt value"},
        {"rcpt",
         "rcpt a\x01"
         "b@example.com",
         "bad rcpt value"},
        {"rcpt", "rcpt a\tb@example.com", "bad rcpt value"},
        {"rcpt",
         "rcpt a\x7f"
         "b@example.com",
         "bad rcpt value"},
        {"rcpt", "rcpt a b@example.com", "bad rcpt value"},
        {"rcpt", "rcpt a@example.com ", "bad rcpt value"},
        {"rcpt", "rcpt  a@example.com", "bad rcpt value"},
        {"rcpt", "rcpt a@example.com\r", "bad rcpt value"},
        {"rcpt", "rcpt ", "bad rcpt value"},
        {"rcpt", "rcpt", "bad rcpt value"},
        /* Valid escapes, also needless ones and lower-case hex. */
        {"rcpt", "rcpt %41@example.com", NULL},
        {"rcpt", "rcpt a%20b@example.com", NULL},
        {"rcpt", "rcpt j%c3%b6rg@example.com", NULL},
        {"rcpt", "rcpt %25@example.com", NULL},
        /* The same in other string fields. */
        {"helo", "helo a%0", "bad helo value"},
        {"helo", "helo a b", "bad helo value"},
        {"client", "client %ZZ", "bad client value"},
        {"from", "from a%00", "bad from value"},
        {"tls_subject", "tls_subject CN=a b", "bad tls_subject value"},
        {"dead_reason", "dead_reason gave up", "bad dead_reason value"},
        {"endpoint", "endpoint a%2", "bad endpoint value"},
        {"name", "name 0a1b2c3d4e5f.1-%30", NULL}, /* "0" escaped: still the same name */
        {"attempt", "attempt 1 primary 200 250 2.0.0 a%0", "attempt: bad text"},
        {"attempt", "attempt 1 primary 200 250 2.0.0 a b", "attempt: bad text"},
        {"attempt", "attempt 1 primary 200 250 2.0.0 a\x01", "attempt: bad text"},
        {"attempt", "attempt 1 pri%00mary 200 250 2.0.0 ok", "attempt: bad text"},
        {"attempt", "attempt 1 primary 200 250 2.%0 ok", "attempt: bad text"},
    };
    size_t len = 0;
    char *text = full_text(&len);
    run_field_cases(text, cases, N(cases));
    /* A raw NUL inside a value. */
    char *with = edit(text, "rcpt", REPLACE, "rcpt aXb@example.com");
    size_t n = strlen(with);
    *(strstr(with, "aXb") + 1) = '\0';
    parse_fails(with, n, at_line(text, "rcpt", 0, "bad rcpt value"));
    free(with);
    free(text);
}

/* Every envelope string is what the session would have taken: UTF-8, no control character
 * once unescaped. */
static void test_reject_strings(void **state)
{
    (void)state;
    static const struct field_case cases[] = {
        {"rcpt", "rcpt \xc3\x28@example.com", "bad rcpt value"},         /* raw, invalid */
        {"rcpt", "rcpt %C3%28@example.com", "bad rcpt value"},           /* escaped, invalid */
        {"rcpt", "rcpt \xc3@example.com", "bad rcpt value"},             /* cut sequence */
        {"rcpt", "rcpt a@example.com\xe2\x82", "bad rcpt value"},        /* cut at the end */
        {"rcpt", "rcpt %C0%AF@example.com", "bad rcpt value"},           /* overlong '/' */
        {"rcpt", "rcpt \xed\xa0\x80@example.com", "bad rcpt value"},     /* surrogate */
        {"rcpt", "rcpt \xf4\x90\x80\x80@example.com", "bad rcpt value"}, /* past U+10FFFF */
        {"rcpt", "rcpt \xff@example.com", "bad rcpt value"},
        {"rcpt", "rcpt a%0Ab@example.com", "bad rcpt value"}, /* a line break */
        {"rcpt", "rcpt a%0D%0Ab@example.com", "bad rcpt value"},
        {"rcpt", "rcpt a%09b@example.com", "bad rcpt value"},
        {"rcpt", "rcpt a%1Bb@example.com", "bad rcpt value"},
        {"rcpt", "rcpt a%7Fb@example.com", "bad rcpt value"},
        {"rcpt", "rcpt a%01b@example.com", "bad rcpt value"},
        {"rcpt", "rcpt %F0%9F%98%80@example.com", NULL}, /* U+1F600 escaped: fine */
        {"helo", "helo %0A", "bad helo value"},
        {"helo", "helo \xc3", "bad helo value"},
        {"helo", "helo ", NULL},
        {"client", "client %0D", "bad client value"},
        {"client", "client ", NULL},
        {"from", "from a%0A@example.com", "bad from value"},
        {"from", "from \xe0\x80\x80", "bad from value"},
        {"tls_version", "tls_version TLS%0A", "bad tls_version value"},
        {"tls_cipher", "tls_cipher %7F", "bad tls_cipher value"},
        {"tls_sni", "tls_sni \xc3\x28", "bad tls_sni value"},
        {"tls_subject", "tls_subject %1F", "bad tls_subject value"},
        {"tls_sha256", "tls_sha256 %0A", "bad tls_sha256 value"},
        {"endpoint", "endpoint %0A", "bad endpoint value"},
        {"endpoint", "endpoint ", "bad endpoint value"},
        {"dead_reason", "dead_reason %0A", "bad dead_reason value"},
        {"dead_reason", "dead_reason ", NULL},
        {"attempt", "attempt 1 primary 200 250 2.0.0 %0A", "attempt: bad text"},
        {"attempt", "attempt 1 %0A 200 250 2.0.0 ok", "attempt: bad text"},
        {"attempt", "attempt 1 primary 200 250 %C3 ok", "attempt: bad text"},
        /* The key and digest: 64 lower-case hex digits, not escaped. */
        {"key", "key 0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
         "bad key value"},
        {"key", "key 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde",
         "bad key value"},
        {"key", "key 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0",
         "bad key value"},
        {"key", "key 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg",
         "bad key value"},
        {"key", "key ", "bad key value"},
        {"digest", "digest %30123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd",
         "bad digest value"},
        /* Names and ids: what queue_entry_name_ok takes. */
        {"name", "name ../etc", "bad name value"},
        {"name", "name a%2Fb", "bad name value"},
        {"name", "name x.eml", "bad name value"},
        {"name", "name ", "bad name value"},
        {"name", "name .hidden", "bad name value"},
        {"id", "id a/b", "bad id value"},
        {"id", "id ", "bad id value"},
        {"id", "id 0123456789012345678901234567890123456789012345678", "bad id value"}, /* 49 */
        {"id", "id 012345678901234567890123456789012345678901234567", NULL},            /* 48 */
        {"policy", "policy any", "policy must be all or failover"},
        {"policy", "policy ALL", "policy must be all or failover"},
        {"policy", "policy all ", "policy must be all or failover"},
        {"body", "body 8bitmime", "bad body value"},
        {"body", "body ", "bad body value"},
        {"body", "body NONE", "bad body value"},
        {"body", "body 7BIT", NULL},
        {"body", "body none", NULL},
    };
    size_t len = 0;
    char *text = full_text(&len);
    run_field_cases(text, cases, N(cases));
    free(text);
}

/* An attempt line: six parts, the text may be empty but not missing. */
static void test_reject_attempt_shape(void **state)
{
    (void)state;
    static const struct field_case cases[] = {
        {"attempt", "attempt", "attempt: expected time"},
        {"attempt", "attempt ", "attempt: expected time"},
        {"attempt", "attempt 1", "attempt: expected time"},
        {"attempt", "attempt 1 primary 200 250", "attempt: expected time"},
        {"attempt", "attempt 1 primary 200 250 2.0.0", "attempt: expected time"},
        {"attempt", "attempt 1  200 250 2.0.0 ok", "attempt: expected time"},
        {"attempt", "attempt 1 primary 200  2.0.0 ok", "attempt: expected time"},
        {"attempt", "attempt 1 primary 200 250  ok", "attempt: expected time"},
        {"attempt", "attempt  1 primary 200 250 2.0.0 ok", "attempt: expected time"},
        {"attempt", "attempt 1 primary 200 250 2.0.0.0.0.0.0.0.0 ok",
         "attempt: bad enhanced status code"}, /* 17 bytes */
        {"attempt", "attempt 1 primary 200 250 %41%41%41%41%41%41 ok",
         "attempt: bad enhanced status code"}, /* escaped 18, 6 unescaped: the file's bytes */
        {"attempt", "attempt 1 primary 200 250 2.0.0.0.0.0.0.0 ok", NULL}, /* 15 bytes */
        {"attempt", "attempt 1 primary 200 250 2.0.0 ", NULL},
        {"attempt", "attempt 1 primary 200 250 2.0.0 ok%20then%20not", NULL},
    };
    size_t len = 0;
    char *text = full_text(&len);
    run_field_cases(text, cases, N(cases));
    /* "-" is no enhanced code; the text as it was; a long text is clipped on reading. */
    struct queue_entry e;
    edit_reads(text, "attempt", REPLACE, "attempt 1 primary 200 250 - %2D", &e);
    assert_string_equal(e.history[0].esc, "");
    assert_string_equal(e.history[0].text, "-");
    queue_entry_free(&e);
    char *line = repeat("attempt 1 primary 200 250 2.0.0 ", "%C3%A9", 300);
    edit_reads(text, "attempt", REPLACE, line, &e);
    assert_int_equal(strlen(e.history[0].text), QUEUE_ENTRY_TEXT_MAX);
    assert_true(utf8_valid(e.history[0].text, QUEUE_ENTRY_TEXT_MAX));
    queue_entry_free(&e);
    free(line);
    free(text);
}

/* Fields that do not agree with each other. */
static void test_reject_inconsistent(void **state)
{
    (void)state;
    size_t len = 0;
    char *text = full_text(&len);
    /* policy all takes exactly one endpoint; failover one or more. */
    edit_fails(text, "endpoint", INSERT_AFTER, "endpoint secondary",
               "policy all takes exactly one endpoint");
    struct queue_entry e;
    char *failover = edit(text, "policy", REPLACE, "policy failover");
    parse_ok(failover, strlen(failover), &e);
    assert_true(e.failover);
    assert_int_equal(e.n_endpoints, 1);
    queue_entry_free(&e);
    free(failover);
    /* dead and dead_reason come together; dead is never 0. */
    edit_fails(text, "dead_reason", DROP, NULL, "dead and dead_reason go together");
    edit_fails(text, "dead", DROP, NULL, "dead and dead_reason go together");
    char *alive = edit(text, "dead", DROP, NULL);
    char *alive2 = edit(alive, "dead_reason", DROP, NULL);
    parse_ok(alive2, strlen(alive2), &e);
    assert_true(e.dead_ms == 0);
    assert_null(e.dead_reason);
    queue_entry_free(&e);
    free(alive);
    free(alive2);
    /* More attempts kept than made. */
    edit_fails(text, "attempts", REPLACE, "attempts 2", "more attempts kept than made");
    edit_fails(text, "attempts", REPLACE, "attempts 0", "more attempts kept than made");
    char *lots = edit(text, "attempts", REPLACE, "attempts 1000");
    for (unsigned i = 3; i < QUEUE_ENTRY_HISTORY_MAX; i++) {
        char *next = edit(lots, "end", INSERT_BEFORE, ATTEMPT_OK);
        free(lots);
        lots = next;
    }
    parse_ok(lots, strlen(lots), &e); /* exactly QUEUE_ENTRY_HISTORY_MAX */
    assert_int_equal(e.n_history, QUEUE_ENTRY_HISTORY_MAX);
    assert_int_equal(e.attempts, 1000);
    queue_entry_free(&e);
    edit_fails(lots, "end", INSERT_BEFORE, ATTEMPT_OK,
               at_line(lots, "end", 0, "more than 32 attempts kept"));
    free(lots);
    free(text);
}

/* At most 1000 endpoints. (The limit of 100000 recipients is not tried here: the reader
 * grows its list one recipient at a time, which ASan's realloc makes quadratic.) */
static void test_reject_limits(void **state)
{
    (void)state;
    size_t len = 0;
    char *text = full_text(&len);
    char *failover = edit(text, "policy", REPLACE, "policy failover");
    char *list = repeat("", "endpoint e\n", 999); /* with the one there: 1000 */
    list[strlen(list) - 1] = '\0';
    char *many = edit(failover, "endpoint", INSERT_AFTER, list);
    struct queue_entry e;
    parse_ok(many, strlen(many), &e);
    assert_int_equal(e.n_endpoints, 1000);
    queue_entry_free(&e);
    edit_fails(many, "endpoint", INSERT_BEFORE, "endpoint one-more", "too many endpoints");
    free(many);
    free(list);
    free(failover);
    free(text);
}

/* ---- names ---------------------------------------------------------------------------- */

static void test_name_ok(void **state)
{
    (void)state;
    char longest[QUEUE_ENTRY_NAME_MAX + 2];
    memset(longest, 'a', QUEUE_ENTRY_NAME_MAX);
    longest[QUEUE_ENTRY_NAME_MAX] = '\0';
    static const char *const good[] = {
        "0a1b2c3d4e5f.1-0", "a", "A_b-C.9", "x.eml.bak", "x.emlx", "eml", "a..b", "x-", "_",
    };
    for (size_t i = 0; i < N(good); i++) {
        if (!queue_entry_name_ok(good[i]))
            print_message("  refused \"%s\"\n", good[i]);
        assert_true(queue_entry_name_ok(good[i]));
    }
    assert_true(queue_entry_name_ok(longest));
    static const char *const bad[] = {
        "",      ".x",           ".",   "..",    "../x", "a/b",  "/",    "a/",   "x.eml",
        ".eml",  "0a1b.1-0.eml", "a b", " a",    "a ",   "a\nb", "a\tb", "a\\b", "a:b",
        "a%2Fb", "\xc3\xa4",     "a*",  "a\x7f", "~",
    };
    for (size_t i = 0; i < N(bad); i++) {
        if (queue_entry_name_ok(bad[i]))
            golden_show("took", bad[i], strlen(bad[i]));
        assert_false(queue_entry_name_ok(bad[i]));
    }
    longest[QUEUE_ENTRY_NAME_MAX] = 'a';
    longest[QUEUE_ENTRY_NAME_MAX + 1] = '\0';
    assert_false(queue_entry_name_ok(longest)); /* one byte too long */
}

/* ---- the schedule --------------------------------------------------------------------- */

/* queue_cfg - a queue section with these waits. */
static struct config_queue queue_cfg(uint64_t initial, uint64_t max, uint64_t max_age)
{
    struct config_queue q;
    memset(&q, 0, sizeof(q));
    q.initial_backoff_ms = initial;
    q.max_backoff_ms = max;
    q.max_age_ms = max_age;
    q.max_in_flight = 4;
    q.max_messages = 1000;
    q.max_bytes = 1u << 30;
    return q;
}

/* cap_of - min(max, initial * 2^(attempts - 1)), the slow way. */
static uint64_t cap_of(uint64_t initial, uint64_t max, unsigned attempts)
{
    uint64_t cap = initial;
    for (unsigned a = 1; a < attempts && cap < max; a++)
        cap = cap > max / 2 ? max : cap * 2;
    return cap < max ? cap : max;
}

/* Equal jitter: within [cap / 2, cap] for every attempt, cap / 2 for random 0. */
static void test_backoff_bounds(void **state)
{
    (void)state;
    static const uint64_t configs[][2] = {
        {1000, 8000},     {100, 100},        {100, 604800000}, {86400000, 604800000},
        {60000, 3600000}, {30000, 86400000}, {1, UINT64_MAX},  {3, UINT64_MAX - 1},
    };
    static const uint32_t randoms[] = {0, 1, 2, 499, 500, 501, 12345, 0x7fffffffu, RMAX - 1, RMAX};
    static const unsigned big[] = {1000, 65535, 1u << 31, UINT_MAX - 1, UINT_MAX};
    for (size_t c = 0; c < N(configs); c++) {
        struct config_queue q = queue_cfg(configs[c][0], configs[c][1], 86400000);
        for (size_t r = 0; r < N(randoms); r++) {
            for (unsigned a = 1; a <= 200 + N(big); a++) {
                unsigned attempts = a <= 200 ? a : big[a - 201];
                uint64_t cap = cap_of(q.initial_backoff_ms, q.max_backoff_ms, attempts);
                uint64_t got = queue_backoff(&q, attempts, randoms[r]);
                if (got < cap / 2 || got > cap)
                    print_message("  initial %llu max %llu attempts %u random %u: %llu, cap %llu\n",
                                  (unsigned long long)q.initial_backoff_ms,
                                  (unsigned long long)q.max_backoff_ms, attempts, randoms[r],
                                  (unsigned long long)got, (unsigned long long)cap);
                assert_true(got >= cap / 2 && got <= cap);
                if (randoms[r] == 0)
                    assert_true(got == cap / 2);
            }
        }
    }
}

/* The cap doubles from initial_backoff_ms up to max_backoff_ms and stays there; the whole
 * range is reachable. */
static void test_backoff_growth(void **state)
{
    (void)state;
    struct config_queue q = queue_cfg(1000, 8000, 86400000);
    static const uint64_t halves[] = {500, 1000, 2000, 4000, 4000, 4000};
    for (unsigned a = 1; a <= N(halves); a++)
        assert_true(queue_backoff(&q, a, 0) == halves[a - 1]);
    assert_true(queue_backoff(&q, UINT_MAX, 0) == 4000);
    /* Every wait in [cap / 2, cap] comes from some random number. */
    for (unsigned a = 1; a <= 5; a++) {
        uint64_t cap = cap_of(1000, 8000, a);
        bool seen_low = false, seen_high = false;
        for (uint32_t r = 0; r <= 2 * cap; r++) {
            uint64_t got = queue_backoff(&q, a, r);
            seen_low |= got == cap / 2;
            seen_high |= got == cap;
        }
        assert_true(seen_low && seen_high);
    }
    /* initial above max: max from the first attempt on (a config never has it). */
    q = queue_cfg(10000, 1000, 86400000);
    assert_true(queue_backoff(&q, 1, 0) == 500);
    assert_true(queue_backoff(&q, 7, RMAX) <= 1000);
    /* The largest the configuration allows, for ever. */
    q = queue_cfg(86400000, 604800000, 2592000000u);
    assert_true(queue_backoff(&q, 1, 0) == 43200000);
    assert_true(queue_backoff(&q, 4, 0) == 302400000);
    assert_true(queue_backoff(&q, UINT_MAX, RMAX) <= 604800000);
    assert_true(queue_backoff(&q, UINT_MAX, RMAX) >= 302400000);
}

/* entry_at - an entry queued at queued_ms after this many attempts. */
static void entry_at(struct queue_entry *e, int64_t queued_ms, unsigned attempts)
{
    queue_entry_init(e);
    e->queued_ms = queued_ms;
    e->attempts = attempts;
}

struct schedule_case {
    const char *what;
    int64_t queued;       /* the entry's queued_ms */
    unsigned attempts;    /* its attempts */
    int64_t now;          /* the failure's time */
    bool has_retry_after; /* Retry-After given */
    uint64_t retry_after; /* its delay */
    uint32_t random;
    bool want;       /* another attempt */
    int64_t want_at; /* at this time */
};

#define Q0 1767268800000LL /* queued at */

/* initial 1000, max 8000, max_age 100000 throughout. */
static const struct schedule_case schedule_cases[] = {
    {"first failure", Q0, 1, Q0 + 10, false, 0, 0, true, Q0 + 10 + 500},
    {"first failure, top", Q0, 1, Q0 + 10, false, 0, 500, true, Q0 + 10 + 1000},
    {"no attempt counted: as the first", Q0, 0, Q0 + 10, false, 0, 0, true, Q0 + 10 + 500},
    {"third failure", Q0, 3, Q0 + 5000, false, 0, 0, true, Q0 + 5000 + 2000},
    {"capped", Q0, 30, Q0 + 5000, false, 0, 0, true, Q0 + 5000 + 4000},
    {"capped, many attempts", Q0, UINT_MAX, Q0 + 5000, false, 0, 0, true, Q0 + 5000 + 4000},
    {"Retry-After instead", Q0, 1, Q0 + 10, true, 20, RMAX, true, Q0 + 10 + 20},
    {"Retry-After past max_backoff", Q0, 1, Q0 + 10, true, 30000, 0, true, Q0 + 10 + 30000},
    {"Retry-After 0", Q0, 5, Q0 + 10, true, 0, RMAX, true, Q0 + 10},
    {"Retry-After past the end", Q0, 1, Q0 + 10, true, 200000, 0, true, Q0 + 100000},
    {"Retry-After huge", Q0, 1, Q0 + 10, true, UINT64_MAX, 0, true, Q0 + 100000},
    {"backoff past the end", Q0, 4, Q0 + 99000, false, 0, 0, true, Q0 + 100000},
    {"backoff to just the end", Q0, 4, Q0 + 96000, false, 0, 0, true, Q0 + 100000},
    {"backoff to just before it", Q0, 4, Q0 + 95999, false, 0, 0, true, Q0 + 99999},
    {"1 ms left", Q0, 1, Q0 + 99999, false, 0, 0, true, Q0 + 100000},
    {"at the end", Q0, 1, Q0 + 100000, false, 0, 0, false, 0},
    {"past the end", Q0, 1, Q0 + 100001, true, 0, 0, false, 0},
    {"long past the end", Q0, 1, INT64_MAX, false, 0, 0, false, 0},
    {"before it was queued (a clock step)", Q0, 1, Q0 - 1000, false, 0, 0, true, Q0 - 500},
    {"queued at 0", 0, 1, 0, false, 0, 0, true, 500},
    /* A file may say any queued time up to INT64_MAX: its end saturates. */
    {"queued at the last ms", INT64_MAX, 1, INT64_MAX - 1000, false, 0, 0, true, INT64_MAX - 500},
    {"queued near the last ms", INT64_MAX - 50000, 1, INT64_MAX - 100, false, 0, 0, true,
     INT64_MAX},
    {"queued near it, Retry-After", INT64_MAX - 50000, 1, 1000, true, UINT64_MAX, 0, true,
     INT64_MAX},
    {"queued at the last ms, now too", INT64_MAX, 1, INT64_MAX, false, 0, 0, false, 0},
    /* A clock before 1970, and a huge Retry-After: the end, no overflow. */
    {"clock before 1970", INT64_MAX, 1, -1000, true, UINT64_MAX, 0, true, INT64_MAX},
    {"clock at its lowest", 0, 1, INT64_MIN, true, UINT64_MAX, 0, true, 100000},
    {"clock at its lowest, backoff", 0, 1, INT64_MIN, false, 0, 0, true, INT64_MIN + 500},
};

static void test_schedule_golden(void **state)
{
    (void)state;
    struct config_queue q = queue_cfg(1000, 8000, 100000);
    for (size_t i = 0; i < N(schedule_cases); i++) {
        const struct schedule_case *c = &schedule_cases[i];
        struct queue_entry e;
        entry_at(&e, c->queued, c->attempts);
        int64_t next = 77777;
        bool got =
            queue_schedule(&q, &e, c->now, c->has_retry_after, c->retry_after, c->random, &next);
        if (got != c->want || (got && next != c->want_at))
            print_message("  %s: got %d at %lld, want %d at %lld\n", c->what, got, (long long)next,
                          c->want, (long long)c->want_at);
        assert_int_equal(got, c->want);
        if (got)
            assert_true(next == c->want_at);
    }
}

/* Over a life: the waits grow, every next time is after now and no later than the end, the
 * last attempt falls on the end, then the entry is dead. */
static void test_schedule_life(void **state)
{
    (void)state;
    struct config_queue q = queue_cfg(1000, 60000, 600000);
    struct queue_entry e;
    build_simple(&e);
    e.queued_ms = Q0;
    int64_t now = Q0 + 100;
    int64_t end = Q0 + 600000;
    unsigned rounds = 0;
    int64_t next = 0;
    while (queue_schedule(&q, &e, now, false, 0, RMAX - rounds, &next)) {
        uint64_t cap = cap_of(1000, 60000, e.attempts);
        assert_true(next > now || (next == now && cap < 2));
        assert_true(next <= end);
        assert_true(next == end || (uint64_t)(next - now) >= cap / 2);
        assert_true((uint64_t)(next - now) <= cap);
        now = next;
        assert_int_equal(queue_entry_record(&e, now, "primary", 503, 451, "4.3.0", "again"), 0);
        rounds++;
        assert_true(rounds < 1000);
    }
    assert_true(now == end); /* the last attempt came at the end of the life */
    assert_true(rounds > 10);
    assert_int_equal(e.attempts, rounds + 1);
    queue_entry_free(&e);
}

/* An entry read from a file that says it was queued at the last millisecond there is: its
 * schedule does not overflow. */
static void test_schedule_read_far_future(void **state)
{
    (void)state;
    size_t len = 0;
    char *text = full_text(&len);
    char *far = edit(text, "queued", REPLACE, "queued 9223372036854775807");
    struct queue_entry e;
    parse_ok(far, strlen(far), &e);
    assert_true(e.queued_ms == INT64_MAX);
    struct config_queue q = queue_cfg(1000, 8000, 2592000000u);
    int64_t next = 0;
    assert_true(queue_schedule(&q, &e, Q0, false, 0, 0, &next));
    assert_true(next == Q0 + 2000); /* 3 attempts made: cap 4000, half of it */
    assert_true(queue_schedule(&q, &e, Q0, true, UINT64_MAX, 0, &next));
    assert_true(next == INT64_MAX);
    queue_entry_free(&e);
    free(far);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_full),
        cmocka_unit_test(test_format_exact),
        cmocka_unit_test(test_round_trip_plaintext),
        cmocka_unit_test(test_round_trip_failover),
        cmocka_unit_test(test_history_window),
        cmocka_unit_test(test_text_clip),
        cmocka_unit_test(test_record_keeps_the_entry_readable),
        cmocka_unit_test(test_digest_unhex),
        cmocka_unit_test(test_reject_header),
        cmocka_unit_test(test_reject_truncated),
        cmocka_unit_test(test_reject_end),
        cmocka_unit_test(test_reject_unknown),
        cmocka_unit_test(test_reject_twice),
        cmocka_unit_test(test_reject_missing),
        cmocka_unit_test(test_reject_numbers),
        cmocka_unit_test(test_reject_escapes),
        cmocka_unit_test(test_reject_strings),
        cmocka_unit_test(test_reject_attempt_shape),
        cmocka_unit_test(test_reject_inconsistent),
        cmocka_unit_test(test_reject_limits),
        cmocka_unit_test(test_name_ok),
        cmocka_unit_test(test_backoff_bounds),
        cmocka_unit_test(test_backoff_growth),
        cmocka_unit_test(test_schedule_golden),
        cmocka_unit_test(test_schedule_life),
        cmocka_unit_test(test_schedule_read_far_future),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
