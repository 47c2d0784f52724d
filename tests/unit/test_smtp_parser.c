/* test_smtp_parser.c - unit tests of smtp_parser.c: command lines (CRLF and bare LF),
 * over-long lines, DATA end detection exactly at CRLF "." CRLF (RFC 5321 §4.1.1.4), dot
 * unstuffing (§4.5.2), SMTP smuggling sequences that must stay content, pipelining, BDAT
 * chunks passed on raw (RFC 3030), and that every chunking of the input gives the same
 * transcript. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtphook/smtp_parser.h"

#define S(x) x, sizeof(x) - 1
#define N(a) (sizeof(a) / sizeof((a)[0]))

#define MAX_LINE       512    /* command line limit used unless a test says otherwise */
#define BIG_LINE       100000 /* bytes of the long message line */
#define PAIR_SPLIT_MAX 160    /* inputs up to this size are also split at every pair of points */

/* ---- transcript -------------------------------------------------------------------------- */

/* A transcript is a byte string of records: a tag byte, then for LINE and DATA an 8-digit
 * decimal length and the bytes. Adjacent DATA events are merged, so any chunking of the
 * same input must give the same transcript. */
enum tag {
    TAG_LINE = 'L',      /* a command line */
    TAG_TOO_LONG = 'T',  /* SMTP_EVENT_LINE_TOO_LONG */
    TAG_DATA = 'D',      /* message bytes (merged) */
    TAG_END = 'E',       /* SMTP_EVENT_DATA_END */
    TAG_PENDING = 'P',   /* input ended with an unfinished command line held */
    TAG_CHUNK_END = 'C', /* SMTP_EVENT_CHUNK_END */
};

struct transcript {
    char *bytes;    /* records */
    size_t len;     /* bytes used */
    size_t cap;     /* bytes allocated */
    size_t data_at; /* offset of the open DATA record's length, or SIZE_MAX */
};

static void tr_init(struct transcript *t)
{
    memset(t, 0, sizeof(*t));
    t->data_at = SIZE_MAX;
}

static void tr_free(struct transcript *t)
{
    free(t->bytes);
    tr_init(t);
}

static void tr_put(struct transcript *t, const char *b, size_t n)
{
    if (t->len + n > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (cap < t->len + n)
            cap *= 2;
        char *nb = realloc(t->bytes, cap);
        assert_non_null(nb);
        t->bytes = nb;
        t->cap = cap;
    }
    if (n > 0)
        memcpy(t->bytes + t->len, b, n);
    t->len += n;
}

static void tr_len(struct transcript *t, size_t at, size_t n)
{
    char digits[9];
    snprintf(digits, sizeof(digits), "%08zu", n);
    memcpy(t->bytes + at, digits, 8);
}

/* tr_add - append one record; DATA after DATA extends the open record. */
static void tr_add(struct transcript *t, char tag, const char *b, size_t n)
{
    if (tag == TAG_DATA && t->data_at != SIZE_MAX) {
        tr_put(t, b, n);
        tr_len(t, t->data_at, t->len - t->data_at - 8);
        return;
    }
    char c = tag;
    tr_put(t, &c, 1);
    t->data_at = SIZE_MAX;
    if (tag == TAG_LINE || tag == TAG_DATA) {
        size_t at = t->len;
        tr_put(t, "00000000", 8);
        tr_put(t, b, n);
        tr_len(t, at, n);
        if (tag == TAG_DATA)
            t->data_at = at;
    }
}

/* tr_print - a readable form for failure messages. */
static void tr_print(const char *what, const struct transcript *t)
{
    print_message("  %s:\n", what);
    size_t i = 0;
    while (i < t->len) {
        char tag = t->bytes[i++];
        if (tag != TAG_LINE && tag != TAG_DATA) {
            print_message("    %c\n", tag);
            continue;
        }
        char digits[9];
        memcpy(digits, t->bytes + i, 8);
        digits[8] = '\0';
        size_t n = (size_t)strtoul(digits, NULL, 10);
        i += 8;
        print_message("    %c %zu \"", tag, n);
        for (size_t k = 0; k < n && k < 200; k++) {
            unsigned char c = (unsigned char)t->bytes[i + k];
            if (c >= 0x20 && c < 0x7f && c != '\\')
                print_message("%c", c);
            else
                print_message("\\x%02x", c);
        }
        print_message("%s\"\n", n > 200 ? "..." : "");
        i += n;
    }
}

/* Expected events, written by hand. */
struct want {
    char tag;      /* TAG_* */
    const char *s; /* LINE/DATA bytes */
    size_t len;    /* their length */
};

#define LINE(x)                                                                                    \
    {                                                                                              \
        TAG_LINE, x, sizeof(x) - 1                                                                 \
    }
#define DATA(x)                                                                                    \
    {                                                                                              \
        TAG_DATA, x, sizeof(x) - 1                                                                 \
    }
#define TOO_LONG                                                                                   \
    {                                                                                              \
        TAG_TOO_LONG, NULL, 0                                                                      \
    }
#define END                                                                                        \
    {                                                                                              \
        TAG_END, NULL, 0                                                                           \
    }
#define CHUNK_END                                                                                  \
    {                                                                                              \
        TAG_CHUNK_END, NULL, 0                                                                     \
    }
#define PENDING                                                                                    \
    {                                                                                              \
        TAG_PENDING, NULL, 0                                                                       \
    }
#define STOP                                                                                       \
    {                                                                                              \
        0, NULL, 0                                                                                 \
    }

static void tr_from_wants(struct transcript *t, const struct want *w)
{
    tr_init(t);
    for (; w->tag != 0; w++)
        tr_add(t, w->tag, w->s, w->len);
}

/* ---- driver ------------------------------------------------------------------------------ */

/* is_data_command - the line a session would answer with 354. */
static bool is_data_command(const char *s, size_t n)
{
    return n == 4 && (s[0] | 0x20) == 'd' && (s[1] | 0x20) == 'a' && (s[2] | 0x20) == 't' &&
           (s[3] | 0x20) == 'a';
}

/* bdat_size - the chunk size of a line "BDAT <size>[ LAST]" (any case), as a session would
 * accept it; false for other lines. */
static bool bdat_size(const char *s, size_t n, uint64_t *size)
{
    if (n < 6 || strncasecmp(s, "BDAT ", 5) != 0 || s[5] < '0' || s[5] > '9')
        return false;
    *size = 0;
    for (size_t i = 5; i < n && s[i] >= '0' && s[i] <= '9'; i++)
        *size = *size * 10 + (uint64_t)(s[i] - '0');
    return true;
}

/* chunk_end_due - the chunk's last byte was handed out: one more feed gives CHUNK_END. */
static bool chunk_end_due(const struct smtp_parser *p)
{
    return p->mode == SMTP_PARSER_CHUNK && p->chunk_left == 0;
}

/* feed_chunk - feed one chunk to the end, recording each event. The chunk is fed from a
 * private heap copy freed afterwards, so ASan catches a parser that keeps pointers into
 * the caller's buffer across feeds. After a BDAT line the parser is switched to chunk
 * mode, as the connection would do. */
static void feed_chunk(struct smtp_parser *p, const char *chunk, size_t n, struct transcript *t)
{
    char *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    memcpy(copy, chunk, n);
    size_t off = 0;
    uint64_t size;
    while (off < n || chunk_end_due(p)) {
        struct smtp_event ev;
        long got = smtp_parser_feed(p, copy + off, n - off, &ev);
        assert_true(got >= 0);
        assert_true((size_t)got <= n - off);
        if (ev.type == SMTP_EVENT_NONE)
            assert_int_equal((size_t)got, n - off); /* NONE means everything was consumed */
        switch (ev.type) {
        case SMTP_EVENT_NONE:
            break;
        case SMTP_EVENT_LINE:
            tr_add(t, TAG_LINE, ev.ptr, ev.len);
            if (is_data_command(ev.ptr, ev.len))
                smtp_parser_begin_data(p);
            else if (bdat_size(ev.ptr, ev.len, &size))
                smtp_parser_begin_chunk(p, size);
            break;
        case SMTP_EVENT_LINE_TOO_LONG:
            tr_add(t, TAG_TOO_LONG, NULL, 0);
            break;
        case SMTP_EVENT_DATA:
            assert_true(ev.len > 0);
            tr_add(t, TAG_DATA, ev.ptr, ev.len);
            break;
        case SMTP_EVENT_DATA_END:
            tr_add(t, TAG_END, NULL, 0);
            assert_int_equal(p->mode, SMTP_PARSER_COMMAND);
            break;
        case SMTP_EVENT_CHUNK_END:
            assert_int_equal(got, 0);
            tr_add(t, TAG_CHUNK_END, NULL, 0);
            assert_int_equal(p->mode, SMTP_PARSER_COMMAND);
            break;
        default:
            fail_msg("unknown event %d", (int)ev.type);
        }
        off += (size_t)got;
    }
    free(copy);
}

/* run - feed input cut at the given (ascending) points; returns the transcript. */
static void run(size_t max_line, const char *in, size_t len, const size_t *cuts, size_t n_cuts,
                struct transcript *t)
{
    struct smtp_parser p;
    smtp_parser_init(&p, max_line);
    tr_init(t);
    size_t from = 0;
    for (size_t i = 0; i <= n_cuts; i++) {
        size_t to = i < n_cuts ? cuts[i] : len;
        feed_chunk(&p, in + from, to - from, t);
        from = to;
    }
    if (smtp_parser_pending(&p))
        tr_add(t, TAG_PENDING, NULL, 0);
    smtp_parser_free(&p);
}

/* same - compare a transcript with the expected one; print both when they differ. */
static void same(const struct transcript *got, const struct transcript *want, const char *how)
{
    if (got->len == want->len && memcmp(got->bytes, want->bytes, got->len) == 0)
        return;
    print_message("  chunking: %s\n", how);
    tr_print("want", want);
    tr_print("got", got);
    fail();
}

/* check_chunkings - the input gives the expected transcript fed in one piece, split at
 * every single point, one byte at a time, and (if short) split at every pair of points. */
static void check_chunkings(size_t max_line, const char *in, size_t len, const struct want *w)
{
    struct transcript want, got;
    tr_from_wants(&want, w);
    char how[64];

    run(max_line, in, len, NULL, 0, &got);
    same(&got, &want, "whole");
    tr_free(&got);

    for (size_t i = 0; i <= len; i++) {
        size_t cut[1] = {i};
        run(max_line, in, len, cut, 1, &got);
        snprintf(how, sizeof(how), "split at %zu", i);
        same(&got, &want, how);
        tr_free(&got);
    }

    size_t *cuts = malloc((len ? len : 1) * sizeof(*cuts));
    assert_non_null(cuts);
    for (size_t i = 0; i < len; i++)
        cuts[i] = i + 1;
    run(max_line, in, len, cuts, len ? len - 1 : 0, &got);
    same(&got, &want, "one byte at a time");
    tr_free(&got);
    free(cuts);

    if (len <= PAIR_SPLIT_MAX) {
        for (size_t i = 1; i < len; i++) {
            for (size_t j = i + 1; j < len; j++) {
                size_t cut[2] = {i, j};
                run(max_line, in, len, cut, 2, &got);
                snprintf(how, sizeof(how), "split at %zu and %zu", i, j);
                same(&got, &want, how);
                tr_free(&got);
            }
        }
    }
    tr_free(&want);
}

/* ---- command mode ------------------------------------------------------------------------ */

static void test_session_crlf(void **state)
{
    (void)state;
    static const char in[] = "EHLO client.example\r\n"
                             "MAIL FROM:<a@b>\r\n"
                             "RCPT TO:<c@d>\r\n"
                             "DATA\r\n"
                             "Subject: hi\r\n"
                             "\r\n"
                             "body\r\n"
                             ".\r\n"
                             "QUIT\r\n";
    static const struct want w[] = {
        LINE("EHLO client.example"),
        LINE("MAIL FROM:<a@b>"),
        LINE("RCPT TO:<c@d>"),
        LINE("DATA"),
        DATA("Subject: hi\r\n\r\nbody\r\n"),
        END,
        LINE("QUIT"),
        STOP,
    };
    check_chunkings(MAX_LINE, S(in), w);
}

static void test_command_line_endings(void **state)
{
    (void)state;
    /* Bare LF ends a command line; one CR before the LF is removed, others are kept. */
    static const char in[] = "EHLO x\n"
                             "NOOP\r\n"
                             "\r\n"
                             "\n"
                             "A\rB\r\n"
                             "NOOP\r\r\n"
                             "\rX\n"
                             "NO\0OP\r\n"
                             "QUIT\n";
    static const struct want w[] = {
        LINE("EHLO x"), LINE("NOOP"), LINE(""),       LINE(""),     LINE("A\rB"),
        LINE("NOOP\r"), LINE("\rX"),  LINE("NO\0OP"), LINE("QUIT"), STOP,
    };
    check_chunkings(MAX_LINE, S(in), w);
}

static void test_pending_and_reset(void **state)
{
    (void)state;
    /* An unfinished line is held, not reported. */
    static const struct want w1[] = {LINE("NOOP"), PENDING, STOP};
    check_chunkings(MAX_LINE, S("NOOP\r\nQUI"), w1);
    static const struct want w2[] = {LINE("NOOP"), PENDING, STOP};
    check_chunkings(MAX_LINE, S("NOOP\r\nQUIT\r"), w2);

    /* reset drops the unfinished line (STARTTLS, RFC 3207 §4.2) and any data mode. */
    struct smtp_parser p;
    struct transcript t;
    smtp_parser_init(&p, MAX_LINE);
    tr_init(&t);
    feed_chunk(&p, S("STARTTLS\r\nEHLO evil"), &t);
    assert_true(smtp_parser_pending(&p));
    smtp_parser_reset(&p);
    assert_false(smtp_parser_pending(&p));
    assert_int_equal(p.mode, SMTP_PARSER_COMMAND);
    feed_chunk(&p, S("EHLO good\r\n"), &t);
    smtp_parser_begin_data(&p);
    feed_chunk(&p, S("partial body"), &t);
    smtp_parser_reset(&p);
    assert_int_equal(p.mode, SMTP_PARSER_COMMAND);
    feed_chunk(&p, S("QUIT\r\n"), &t);
    smtp_parser_free(&p);

    struct transcript want;
    static const struct want w3[] = {LINE("STARTTLS"), LINE("EHLO good"), DATA("partial body"),
                                     LINE("QUIT"), STOP};
    tr_from_wants(&want, w3);
    same(&t, &want, "reset");
    tr_free(&t);
    tr_free(&want);
}

/* ---- line limit (RFC 5321 §4.5.3.1.4) ---------------------------------------------------- */

#define SMALL_LINE 16 /* a limit small enough to test at every chunking */

static void test_line_limit(void **state)
{
    (void)state;
    /* 14 characters + CRLF = 16 bytes: fits. 15 + CRLF = 17: too long, skipped to its LF
     * and reported once; the next line is fine. 15 + bare LF = 16: fits. */
    static const char in[] = "AAAAAAAAAAAAAA\r\n"
                             "BBBBBBBBBBBBBBB\r\n"
                             "NOOP\r\n"
                             "CCCCCCCCCCCCCCC\n"
                             "DDDDDDDDDDDDDDDD\n"
                             "QUIT\r\n";
    static const struct want w[] = {
        LINE("AAAAAAAAAAAAAA"), TOO_LONG, LINE("NOOP"), LINE("CCCCCCCCCCCCCCC"), TOO_LONG,
        LINE("QUIT"),           STOP,
    };
    check_chunkings(SMALL_LINE, S(in), w);

    /* A much longer line is still reported once, however it is cut. */
    char big[200];
    size_t n = 0;
    memset(big, 'x', 150);
    n = 150;
    memcpy(big + n, "\r\nNOOP\r\n", 8);
    n += 8;
    static const struct want w2[] = {TOO_LONG, LINE("NOOP"), STOP};
    check_chunkings(SMALL_LINE, big, n, w2);

    /* An over-long line without its LF yet is pending; nothing is reported for it. */
    static const struct want w3[] = {PENDING, STOP};
    check_chunkings(SMALL_LINE, big, 100, w3);
    memcpy(big, "NOOP\r\n", 6);
    memset(big + 6, 'y', 40);
    static const struct want w4[] = {LINE("NOOP"), PENDING, STOP};
    check_chunkings(SMALL_LINE, big, 46, w4);

    /* The smallest limit: "a" CRLF fits in 3 bytes, "ab" CRLF does not. */
    static const struct want w5[] = {LINE("a"), TOO_LONG, LINE(""), STOP};
    check_chunkings(3, S("a\r\nab\r\n\r\n"), w5);

    /* The limit applies to command lines only: a long message line is fine. */
    static const char in6[] = "DATA\r\n"
                              "a message line much longer than sixteen bytes\r\n"
                              ".\r\n"
                              "QUIT\r\n";
    static const struct want w6[] = {
        LINE("DATA"), DATA("a message line much longer than sixteen bytes\r\n"), END, LINE("QUIT"),
        STOP,
    };
    check_chunkings(SMALL_LINE, S(in6), w6);
}

/* ---- data mode (RFC 5321 §4.1.1.4, §4.5.2) ----------------------------------------------- */

static void test_dot_unstuffing(void **state)
{
    (void)state;
    static const char in[] = "DATA\r\n"
                             "..x\r\n"
                             "..\r\n"
                             "a.b\r\n"
                             " .x.\r\n"
                             "...\r\n"
                             "x.\r\n"
                             ".\r\n";
    static const struct want w[] = {
        LINE("DATA"),
        DATA(".x\r\n.\r\na.b\r\n .x.\r\n..\r\nx.\r\n"),
        END,
        STOP,
    };
    check_chunkings(MAX_LINE, S(in), w);

    /* The first line of the message is a line start too. */
    static const struct want w2[] = {LINE("DATA"), DATA(".x\r\nb\r\n"), END, STOP};
    check_chunkings(MAX_LINE, S("DATA\r\n..x\r\n.b\r\n.\r\n"), w2);
}

static void test_empty_message(void **state)
{
    (void)state;
    /* The CRLF that ended DATA counts: ".\r\n" right away ends an empty message. */
    static const struct want w[] = {LINE("DATA"), END, LINE("QUIT"), STOP};
    check_chunkings(MAX_LINE, S("DATA\r\n.\r\nQUIT\r\n"), w);

    /* So a message "starting" with a lone dot line ends there; the rest is commands. */
    static const char in2[] = "DATA\r\n"
                              ".\r\n"
                              "Subject: x\r\n"
                              "\r\n"
                              "body\r\n"
                              ".\r\n";
    static const struct want w2[] = {
        LINE("DATA"), END, LINE("Subject: x"), LINE(""), LINE("body"), LINE("."), STOP,
    };
    check_chunkings(MAX_LINE, S(in2), w2);

    /* One empty line is a message of one CRLF. */
    static const struct want w3[] = {LINE("DATA"), DATA("\r\n"), END, STOP};
    check_chunkings(MAX_LINE, S("DATA\r\n\r\n.\r\n"), w3);

    /* A bare-LF DATA command: data mode begins after it just the same. */
    static const struct want w4[] = {LINE("DATA"), END, LINE("QUIT"), STOP};
    check_chunkings(MAX_LINE, S("DATA\n.\r\nQUIT\r\n"), w4);
}

/* One smuggling attempt: "x" seq "y\r\n.\r\n" must give exactly body and then one END. */
struct smuggle_case {
    const char *seq;  /* the sequence between "x" and "y" */
    size_t seq_len;   /* its length */
    const char *body; /* the expected message */
    size_t body_len;  /* its length */
};

static const struct smuggle_case smuggle_cases[] = {
    {S("\n.\n"), S("x\n.\ny\r\n")},
    {S("\r.\r"), S("x\r.\ry\r\n")},
    {S("\n.\r\n"), S("x\n.\r\ny\r\n")},
    {S("\r\n.\n"), S("x\r\n\ny\r\n")}, /* line ".\ny": a stuffed dot, removed */
    {S("\r.\n"), S("x\r.\ny\r\n")},
    {S("\r\n.\r"), S("x\r\n\ry\r\n")}, /* line ".\ry": a stuffed dot, removed */
    {S("\r.\r\n"), S("x\r.\r\ny\r\n")},
    {S("\n.\r"), S("x\n.\ry\r\n")},
    {S("\n\n.\n\n"), S("x\n\n.\n\ny\r\n")},
    {S("\r\r.\r\r"), S("x\r\r.\r\ry\r\n")},
    {S("\r\n\r.\r\n"), S("x\r\n\r.\r\ny\r\n")},
    {S("\r\n\n.\r\n"), S("x\r\n\n.\r\ny\r\n")},
    {S("\r\n\x00.\r\n"), S("x\r\n\x00.\r\ny\r\n")},
    {S("\r\n.\x00\r\n"), S("x\r\n\x00\r\ny\r\n")},
    {S("\r\n. \r\n"), S("x\r\n \r\ny\r\n")},
    {S("\r\n.\r\r\n"), S("x\r\n\r\r\ny\r\n")},
    {S("\r\n.\n.\r\n"), S("x\r\n\n.\r\ny\r\n")},
    {S("\r\n..\r\n"), S("x\r\n.\r\ny\r\n")},
    {S("\r\n.\xff\r\n"), S("x\r\n\xff\r\ny\r\n")},
    {S("\r\n.\r.\r\n"), S("x\r\n\r.\r\ny\r\n")},
    {S(" .\r\n"), S("x .\r\ny\r\n")},
    {S(".\r\n"), S("x.\r\ny\r\n")},
};

static void test_smuggling(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(smuggle_cases); i++) {
        const struct smuggle_case *c = &smuggle_cases[i];
        char in[128];
        size_t n = 0;
        memcpy(in, "DATA\r\nx", 7);
        n = 7;
        memcpy(in + n, c->seq, c->seq_len);
        n += c->seq_len;
        memcpy(in + n, "y\r\n.\r\nQUIT\r\n", 12);
        n += 12;
        const struct want w[] = {
            LINE("DATA"), {TAG_DATA, c->body, c->body_len}, END, LINE("QUIT"), STOP,
        };
        check_chunkings(MAX_LINE, in, n, w);
    }
}

static void test_real_end_variants(void **state)
{
    (void)state;
    /* A bare CR before CRLF "." CRLF does not hide the real end. */
    static const struct want w1[] = {LINE("DATA"), DATA("x\r\r\n"), END, LINE("y"), STOP};
    check_chunkings(MAX_LINE, S("DATA\r\nx\r\r\n.\r\ny\r\n"), w1);

    /* A bare LF before CRLF "." CRLF neither. */
    static const struct want w2[] = {LINE("DATA"), DATA("x\n\r\n"), END, LINE("y"), STOP};
    check_chunkings(MAX_LINE, S("DATA\r\nx\n\r\n.\r\ny\r\n"), w2);

    /* The end is the first CRLF.CRLF: a second one is commands (an empty line, a dot). */
    static const struct want w3[] = {LINE("DATA"), DATA("a\r\n"), END, LINE(""), LINE("."), STOP};
    check_chunkings(MAX_LINE, S("DATA\r\na\r\n.\r\n\r\n.\r\n"), w3);

    /* Two messages in a row. */
    static const char in4[] = "DATA\r\none\r\n.\r\nDATA\r\ntwo\r\n.\r\n";
    static const struct want w4[] = {
        LINE("DATA"), DATA("one\r\n"), END, LINE("DATA"), DATA("two\r\n"), END, STOP,
    };
    check_chunkings(MAX_LINE, S(in4), w4);

    /* Input ending inside the end sequence leaves the message open. */
    static const struct want w5[] = {LINE("DATA"), DATA("a\r\n"), STOP};
    check_chunkings(MAX_LINE, S("DATA\r\na\r\n.\r"), w5);
}

static void test_binary_bytes(void **state)
{
    (void)state;
    static const char in[] = "DATA\r\n"
                             "\x00\x01\x7f\x80\xfe\xff\r\n"
                             "\xc3\xb6\x00\r\n"
                             "\x00\r\n"
                             ".\r\n";
    static const struct want w[] = {
        LINE("DATA"),
        DATA("\x00\x01\x7f\x80\xfe\xff\r\n\xc3\xb6\x00\r\n\x00\r\n"),
        END,
        STOP,
    };
    check_chunkings(MAX_LINE, S(in), w);
}

static void test_pipelining(void **state)
{
    (void)state;
    /* RFC 2920: everything in one buffer; the bytes after DATA_END are commands again. */
    static const char in[] = "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nbody\r\n.\r\nQUIT\r\n";
    static const struct want w[] = {
        LINE("MAIL FROM:<a@b>"),
        LINE("RCPT TO:<c@d>"),
        LINE("DATA"),
        DATA("body\r\n"),
        END,
        LINE("QUIT"),
        STOP,
    };
    check_chunkings(MAX_LINE, S(in), w);

    /* The same by hand, checking the byte counts of the one-buffer case. */
    struct smtp_parser p;
    struct smtp_event ev;
    smtp_parser_init(&p, MAX_LINE);
    const char *b = in;
    size_t len = sizeof(in) - 1;
    long n = smtp_parser_feed(&p, b, len, &ev);
    assert_int_equal(ev.type, SMTP_EVENT_LINE);
    assert_int_equal(n, 17);
    assert_ptr_equal(ev.ptr, b); /* a whole line in the buffer is not copied */
    b += n, len -= (size_t)n;
    n = smtp_parser_feed(&p, b, len, &ev);
    assert_int_equal(ev.type, SMTP_EVENT_LINE);
    assert_int_equal(n, 15);
    b += n, len -= (size_t)n;
    n = smtp_parser_feed(&p, b, len, &ev);
    assert_int_equal(ev.type, SMTP_EVENT_LINE);
    assert_int_equal(n, 6);
    assert_false(smtp_parser_pending(&p));
    smtp_parser_begin_data(&p);
    b += n, len -= (size_t)n;
    n = smtp_parser_feed(&p, b, len, &ev);
    assert_int_equal(ev.type, SMTP_EVENT_DATA);
    assert_ptr_equal(ev.ptr, b); /* message bytes are slices of the input */
    assert_int_equal(ev.len, 6);
    b += n, len -= (size_t)n;
    while (ev.type != SMTP_EVENT_DATA_END) {
        n = smtp_parser_feed(&p, b, len, &ev);
        assert_true(n >= 0);
        assert_true(ev.type == SMTP_EVENT_DATA_END || ev.type == SMTP_EVENT_NONE);
        b += n, len -= (size_t)n;
    }
    assert_int_equal(len, 6);
    n = smtp_parser_feed(&p, b, len, &ev);
    assert_int_equal(ev.type, SMTP_EVENT_LINE);
    assert_int_equal(n, 6);
    assert_int_equal(ev.len, 4);
    assert_memory_equal(ev.ptr, "QUIT", 4);
    n = smtp_parser_feed(&p, b + n, 0, &ev);
    assert_int_equal(n, 0);
    assert_int_equal(ev.type, SMTP_EVENT_NONE);
    smtp_parser_free(&p);
}

/* feed_big - the long-line message cut into chunks of the given size. */
static void feed_big(const char *in, size_t len, size_t chunk, const struct transcript *want)
{
    size_t n_cuts = (len - 1) / chunk;
    size_t *cuts = malloc((n_cuts ? n_cuts : 1) * sizeof(*cuts));
    assert_non_null(cuts);
    for (size_t i = 0; i < n_cuts; i++)
        cuts[i] = (i + 1) * chunk;
    struct transcript got;
    run(MAX_LINE, in, len, cuts, n_cuts, &got);
    char how[64];
    snprintf(how, sizeof(how), "chunks of %zu", chunk);
    same(&got, want, how);
    tr_free(&got);
    free(cuts);
}

static void test_long_data_line(void **state)
{
    (void)state;
    /* A 100000-byte message line, 200 times the command limit, passes untouched. */
    size_t len = 6 + BIG_LINE + 2 + 3 + 6;
    char *in = malloc(len);
    assert_non_null(in);
    memcpy(in, "DATA\r\n", 6);
    for (size_t i = 0; i < BIG_LINE; i++)
        in[6 + i] = (char)('a' + i % 26);
    memcpy(in + 6 + BIG_LINE, "\r\n.\r\nQUIT\r\n", 11);

    struct transcript want;
    tr_init(&want);
    tr_add(&want, TAG_LINE, "DATA", 4);
    tr_add(&want, TAG_DATA, in + 6, BIG_LINE + 2);
    tr_add(&want, TAG_END, NULL, 0);
    tr_add(&want, TAG_LINE, "QUIT", 4);

    const size_t chunks[] = {len, 65536, 4096, 1000, 7, 1};
    for (size_t i = 0; i < N(chunks); i++)
        feed_big(in, len, chunks[i], &want);

    /* Fed whole, the message arrives as one slice of the input: nothing was copied. */
    struct smtp_parser p;
    struct smtp_event ev;
    smtp_parser_init(&p, MAX_LINE);
    long n = smtp_parser_feed(&p, in, len, &ev);
    assert_int_equal(n, 6);
    smtp_parser_begin_data(&p);
    n = smtp_parser_feed(&p, in + 6, len - 6, &ev);
    assert_int_equal(ev.type, SMTP_EVENT_DATA);
    assert_ptr_equal(ev.ptr, in + 6);
    assert_int_equal(ev.len, BIG_LINE + 2);
    assert_null(p.partial);
    smtp_parser_free(&p);

    tr_free(&want);
    free(in);
}

/* ---- chunk mode (RFC 3030) ------------------------------------------------------------ */

static void test_chunk_raw(void **state)
{
    (void)state;
    /* A chunk is counted octets: CRLF.CRLF, a line-start dot, bare CR and LF and NUL are
     * content, passed on untouched; the bytes after it are commands again. */
    static const char in[] = "EHLO x\r\n"
                             "BDAT 12\r\n"
                             ".\r\n\0\rA\n.\r\n\r\n"
                             "BDAT 3 LAST\r\n"
                             "..\r"
                             "NOOP\r\n";
    static const struct want w[] = {
        LINE("EHLO x"), LINE("BDAT 12"),     DATA(".\r\n\0\rA\n.\r\n\r\n"),
        CHUNK_END,      LINE("BDAT 3 LAST"), DATA("..\r"),
        CHUNK_END,      LINE("NOOP"),        STOP,
    };
    check_chunkings(MAX_LINE, S(in), w);

    /* Command text inside a chunk is data; DATA inside it does not start data mode. */
    static const char in2[] = "BDAT 21\r\nDATA\r\nRSET\r\n.\r\nQUIT\r\nQUIT\r\n";
    static const struct want w2[] = {
        LINE("BDAT 21"), DATA("DATA\r\nRSET\r\n.\r\nQUIT\r\n"), CHUNK_END, LINE("QUIT"), STOP,
    };
    check_chunkings(MAX_LINE, S(in2), w2);

    /* Input that ends inside a chunk leaves it open; at its last byte, the end. */
    static const struct want w3[] = {LINE("BDAT 4"), DATA("ab"), STOP};
    check_chunkings(MAX_LINE, S("BDAT 4\r\nab"), w3);
    static const struct want w4[] = {LINE("BDAT 4"), DATA("ab\r\n"), CHUNK_END, STOP};
    check_chunkings(MAX_LINE, S("BDAT 4\r\nab\r\n"), w4);
    /* A chunk ending in the middle of a command line. */
    static const struct want w5[] = {LINE("BDAT 1"), DATA("N"), CHUNK_END, PENDING, STOP};
    check_chunkings(MAX_LINE, S("BDAT 1\r\nNNO"), w5);
}

/* A chunk far longer than the line limit, without any LF: no line logic applies. */
static void test_chunk_longer_than_line_limit(void **state)
{
    (void)state;
    size_t body = 3 * MAX_LINE;
    char head[32];
    int hn = snprintf(head, sizeof(head), "BDAT %zu LAST\r\n", body);
    size_t len = (size_t)hn + body + 6;
    char *in = malloc(len);
    assert_non_null(in);
    memcpy(in, head, (size_t)hn);
    memset(in + hn, 'x', body);
    memcpy(in + (size_t)hn + body, "QUIT\r\n", 6);

    struct transcript want;
    tr_init(&want);
    tr_add(&want, TAG_LINE, head, (size_t)hn - 2);
    tr_add(&want, TAG_DATA, in + hn, body);
    tr_add(&want, TAG_CHUNK_END, NULL, 0);
    tr_add(&want, TAG_LINE, "QUIT", 4);
    const size_t chunks[] = {len, 100, 7, 1};
    for (size_t i = 0; i < N(chunks); i++)
        feed_big(in, len, chunks[i], &want);
    tr_free(&want);
    free(in);
}

/* By hand: the chunk is one slice of the input, the end consumes nothing, and pipelined
 * commands follow in the same buffer. */
static void test_chunk_then_pipelined_commands(void **state)
{
    (void)state;
    static const char in[] = "BDAT 5\r\nA\r\n.\nRSET\r\nMAIL FROM:<a@b>\r\n";
    struct smtp_parser p;
    struct smtp_event ev;
    smtp_parser_init(&p, MAX_LINE);
    const char *b = in;
    size_t len = sizeof(in) - 1;
    long n = smtp_parser_feed(&p, b, len, &ev);
    assert_int_equal(ev.type, SMTP_EVENT_LINE);
    assert_int_equal(n, 8);
    smtp_parser_begin_chunk(&p, 5);
    b += n, len -= (size_t)n;
    n = smtp_parser_feed(&p, b, len, &ev);
    assert_int_equal(ev.type, SMTP_EVENT_DATA);
    assert_ptr_equal(ev.ptr, b);
    assert_int_equal(ev.len, 5);
    assert_int_equal(n, 5);
    assert_int_equal(p.mode, SMTP_PARSER_CHUNK);
    assert_true(p.chunk_left == 0);
    b += n, len -= (size_t)n;
    n = smtp_parser_feed(&p, b, len, &ev);
    assert_int_equal(ev.type, SMTP_EVENT_CHUNK_END);
    assert_int_equal(n, 0);
    assert_int_equal(p.mode, SMTP_PARSER_COMMAND);
    n = smtp_parser_feed(&p, b, len, &ev);
    assert_int_equal(ev.type, SMTP_EVENT_LINE);
    assert_memory_equal(ev.ptr, "RSET", 4);
    b += n, len -= (size_t)n;
    n = smtp_parser_feed(&p, b, len, &ev);
    assert_int_equal(ev.type, SMTP_EVENT_LINE);
    assert_int_equal(ev.len, 15);
    assert_int_equal((size_t)n, len);

    /* The end of a chunk that used up the input comes from a call with nothing left. */
    smtp_parser_begin_chunk(&p, 2);
    n = smtp_parser_feed(&p, "xy", 2, &ev);
    assert_int_equal(n, 2);
    assert_int_equal(ev.type, SMTP_EVENT_DATA);
    n = smtp_parser_feed(&p, NULL, 0, &ev);
    assert_int_equal(n, 0);
    assert_int_equal(ev.type, SMTP_EVENT_CHUNK_END);
    n = smtp_parser_feed(&p, NULL, 0, &ev);
    assert_int_equal(n, 0);
    assert_int_equal(ev.type, SMTP_EVENT_NONE);

    /* A chunk of 0 bytes leaves command mode alone (the caller ends it at once). */
    smtp_parser_begin_chunk(&p, 0);
    assert_int_equal(p.mode, SMTP_PARSER_COMMAND);
    n = smtp_parser_feed(&p, S("NOOP\r\n"), &ev);
    assert_int_equal(ev.type, SMTP_EVENT_LINE);

    /* Reset inside a chunk (STARTTLS, a dropped input): command mode, nothing left. */
    smtp_parser_begin_chunk(&p, UINT64_MAX);
    n = smtp_parser_feed(&p, S("abc"), &ev);
    assert_int_equal(ev.type, SMTP_EVENT_DATA);
    assert_true(p.chunk_left == UINT64_MAX - 3);
    smtp_parser_reset(&p);
    assert_int_equal(p.mode, SMTP_PARSER_COMMAND);
    assert_true(p.chunk_left == 0);
    n = smtp_parser_feed(&p, S("QUIT\r\n"), &ev);
    assert_int_equal(ev.type, SMTP_EVENT_LINE);
    smtp_parser_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_session_crlf),
        cmocka_unit_test(test_command_line_endings),
        cmocka_unit_test(test_pending_and_reset),
        cmocka_unit_test(test_line_limit),
        cmocka_unit_test(test_dot_unstuffing),
        cmocka_unit_test(test_empty_message),
        cmocka_unit_test(test_smuggling),
        cmocka_unit_test(test_real_end_variants),
        cmocka_unit_test(test_binary_bytes),
        cmocka_unit_test(test_pipelining),
        cmocka_unit_test(test_long_data_line),
        cmocka_unit_test(test_chunk_raw),
        cmocka_unit_test(test_chunk_longer_than_line_limit),
        cmocka_unit_test(test_chunk_then_pipelined_commands),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
