/* test_smtp_engine.c - the glue between parser and session: where smtp_engine_feed stops
 * and that nothing is lost or executed across a stop. FULL (replies piling up) resumes
 * exactly where it stopped; DELIVER leaves the commands pipelined behind the final dot
 * unread until the reply; STARTTLS drops the rest of the input (RFC 3207 §4.2); text
 * behind a refused DATA ends the session with 421 4.5.0 (RFC 2920 §3.1) and none of it is
 * executed; nothing is read after CLOSE. The session's own replies are test_session.c's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtphook/app_reply.h"
#include "smtphook/config.h"
#include "smtphook/log.h"
#include "smtphook/smtp_engine.h"
#include "smtphook/spool.h"
#include "smtphook/txn.h"

#include "engine_test.h"

#define S(x) x, sizeof(x) - 1

#define NOW_MS         INT64_C(1700000000000) /* the clock every transaction is stamped with */
#define NO_LIMIT       SIZE_MAX               /* out_limit that never stops a feed */
#define FLOOD_NOOPS    50000                  /* NOOPs pipelined behind a refused DATA */
#define FLOOD_READ     65536                  /* bytes per read of the flood */
#define GUARD_FEEDS    100000                 /* feeds of one input before a test gives up */
#define SYNC_LOST_TEXT "421 4.5.0 mx.test Error: SMTP protocol synchronization, closing\r\n"

static const struct envelope_tls tls13 = {"TLSv1.3", "TLS_AES_256_GCM_SHA384", NULL, NULL, NULL};

/* A connection minus the I/O: what was sent, what was delivered, how often feed stopped. */
struct drv {
    struct smtp_engine e; /* under test */
    struct buf sent;      /* every reply, in the order it went out */
    struct buf posted;    /* "[from]body" per delivered message */
    unsigned fulls;       /* FULL stops */
    unsigned delivers;    /* DELIVER stops */
    unsigned starttls;    /* STARTTLS stops */
    bool closed;          /* CLOSE seen */
};

static void drv_init(struct drv *d, const struct config *cfg, size_t out_limit)
{
    memset(d, 0, sizeof(*d));
    smtp_engine_init(&d->e, cfg, "192.0.2.1", 40000, "e1", out_limit);
    smtp_engine_greet(&d->e);
}

static void drv_free(struct drv *d)
{
    smtp_engine_free(&d->e);
    buf_free(&d->sent);
    buf_free(&d->posted);
}

/* drv_send - the connection writes what the engine queued. Returns the bytes. */
static size_t drv_send(struct drv *d)
{
    size_t n = d->e.out.len;
    if (n > 0)
        assert_int_equal(buf_append(&d->sent, d->e.out.data, n), 0);
    buf_reset(&d->e.out);
    return n;
}

/* drv_deliver - take the message, keep "[from]body", answer 250 with a fixed text. */
static void drv_deliver(struct drv *d)
{
    struct txn *t = smtp_engine_take_txn(&d->e);
    assert_non_null(t);
    buf_append_str(&d->posted, "[");
    buf_append_str(&d->posted, t->env.mail_from);
    buf_append_str(&d->posted, "]");
    assert_true(engine_test_spool_text(t->spool, &d->posted) == t->env.size);
    struct app_reply ok = {250, "2.0.0", "Ok: queued"};
    if (smtp_engine_delivered(&d->e, &ok) == SMTP_ENGINE_CLOSE)
        d->closed = true;
    txn_free(t);
    d->delivers++;
}

/* drv_feed - one read, fed until used up as conn.c feeds it, every stop carried out. At a
 * FULL stop the replies must have reached the limit and the rest is fed again. */
static void drv_feed(struct drv *d, const char *data, size_t len)
{
    size_t off = 0;
    unsigned guard = 0;
    while (!d->closed && (off < len || smtp_engine_pending(&d->e))) {
        assert_true(guard++ < GUARD_FEEDS);
        enum smtp_engine_stop st;
        size_t used = smtp_engine_feed(&d->e, data + off, len - off, 0, NOW_MS, &st);
        assert_true(used <= len - off);
        off += used;
        size_t wrote = d->e.out.len;
        drv_send(d);
        switch (st) {
        case SMTP_ENGINE_IDLE:
            assert_int_equal(off, len);
            break;
        case SMTP_ENGINE_FULL:
            assert_true(wrote >= d->e.out_limit);
            d->fulls++;
            break;
        case SMTP_ENGINE_DELIVER:
            drv_deliver(d);
            drv_send(d);
            break;
        case SMTP_ENGINE_STARTTLS:
            assert_int_equal(off, len);
            d->starttls++;
            break;
        case SMTP_ENGINE_CLOSE:
        default:
            assert_int_equal(off, len);
            d->closed = true;
            break;
        }
    }
}

/* A session that touches every kind of stop but STARTTLS and CLOSE before its QUIT. */
static const char script[] = "EHLO client.example\r\n"
                             "NOOP\r\nNOOP\r\nHELP\r\nVRFY x\r\nNOOP\r\nFOO\r\n"
                             "MAIL FROM:<a@b.c>\r\nRCPT TO:<b@example.com>\r\n"
                             "RCPT TO:<x@elsewhere.org>\r\nDATA\r\n"
                             "Subject: x\r\n\r\n..dot\r\n.\r\n"
                             "NOOP\r\n"
                             "MAIL FROM:<c@b.c>\r\nRCPT TO:<d@example.com>\r\n"
                             "BDAT 3\r\nabcBDAT 0\r\nBDAT 2 LAST\r\nde"
                             "RSET\r\nQUIT\r\n";

/* run_script - feed len bytes of input in reads of read_size (0: one read) with out_limit;
 * the transcript in *d (drv_free it). */
static void run_script(struct drv *d, const struct config *cfg, const char *in, size_t len,
                       size_t read_size, size_t out_limit)
{
    drv_init(d, cfg, out_limit);
    drv_send(d);
    for (size_t off = 0; off < len;) {
        size_t n = read_size == 0 || read_size > len - off ? len - off : read_size;
        drv_feed(d, in + off, n);
        off += n;
    }
}

/* expect_same - d's transcript equals ref's. */
static void expect_same(struct drv *d, struct drv *ref)
{
    if (d->sent.len != ref->sent.len || memcmp(d->sent.data, ref->sent.data, ref->sent.len) != 0)
        fail_msg("want:\n%s\ngot:\n%s", engine_test_text(&ref->sent), engine_test_text(&d->sent));
    assert_int_equal(d->posted.len, ref->posted.len);
    assert_memory_equal(d->posted.data, ref->posted.data, ref->posted.len);
    assert_int_equal(d->closed, ref->closed);
}

/* FULL: with any out_limit, and any read size, the feed resumes exactly where it stopped:
 * the same replies in the same order, the same messages, nothing lost. */
static void test_full_resumes_losslessly(void **state)
{
    (void)state;
    struct config cfg = engine_test_config();
    struct drv ref;
    run_script(&ref, &cfg, S(script), 0, NO_LIMIT);
    assert_int_equal(ref.fulls, 0);
    assert_int_equal(ref.delivers, 2);
    assert_true(ref.closed);
    assert_non_null(
        strstr(engine_test_text(&ref.posted), "[a@b.c]Subject: x\r\n\r\n.dot\r\n[c@b.c]abcde"));

    for (size_t limit = 1; limit <= ref.sent.len + 1; limit++) {
        static const size_t reads[] = {0, 1, 7, 64};
        for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]); i++) {
            struct drv d;
            run_script(&d, &cfg, S(script), reads[i], limit);
            expect_same(&d, &ref);
            if (limit < 30 && reads[i] == 0) /* reads of 1 byte never pile up replies */
                assert_true(d.fulls > 0);
            drv_free(&d);
        }
    }
    drv_free(&ref);
}

/* FULL with out_limit 1: every reply comes alone, and each feed consumed exactly the
 * command it answers. The caller's unsent bytes count against the limit. */
static void test_full_one_reply_per_feed(void **state)
{
    (void)state;
    struct config cfg = engine_test_config();
    struct drv d;
    drv_init(&d, &cfg, 1);
    drv_send(&d);
    static const char in[] = "HELO c\r\nNOOP\r\nHELP\r\nRSET\r\nQUIT\r\n";
    static const char *const want[] = {
        "250 mx.test\r\n",
        "250 2.0.0 Ok\r\n",
        "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP\r\n",
        "250 2.0.0 Ok\r\n",
        "221 2.0.0 Bye\r\n",
    };
    static const size_t lines[] = {8, 6, 6, 6, 6};
    size_t off = 0;
    for (size_t i = 0; i < 5; i++) {
        enum smtp_engine_stop st;
        size_t used = smtp_engine_feed(&d.e, in + off, sizeof(in) - 1 - off, 0, NOW_MS, &st);
        assert_int_equal(st, i < 4 ? SMTP_ENGINE_FULL : SMTP_ENGINE_CLOSE);
        assert_int_equal(used, lines[i]);
        buf_append(&d.e.out, "", 1);
        assert_string_equal(d.e.out.data, want[i]);
        buf_reset(&d.e.out);
        off += used;
    }
    assert_int_equal(off, sizeof(in) - 1);
    drv_free(&d);

    /* Replies the connection has not written yet count: nothing is read at all. */
    drv_init(&d, &cfg, 100);
    drv_send(&d);
    enum smtp_engine_stop st;
    assert_int_equal(smtp_engine_feed(&d.e, S("NOOP\r\n"), 100, NOW_MS, &st), 0);
    assert_int_equal(st, SMTP_ENGINE_FULL);
    assert_int_equal(d.e.out.len, 0);
    assert_int_equal(smtp_engine_feed(&d.e, S("NOOP\r\n"), 99, NOW_MS, &st), 6);
    assert_int_equal(st, SMTP_ENGINE_IDLE);
    drv_free(&d);
}

/* DELIVER: the feed stops right after the final dot; the commands pipelined behind it
 * are neither read nor answered until the message's reply is out, then in order. */
static void test_deliver_with_pipelined_commands(void **state)
{
    (void)state;
    struct config cfg = engine_test_config();
    static const char *const messages[] = {"DATA\r\nhi\r\n.\r\n", "BDAT 2 LAST\r\nhi",
                                           "BDAT 0 LAST\r\n"};
    static const uint64_t sizes[] = {4, 2, 0}; /* "hi\r\n", "hi", nothing */
    for (size_t i = 0; i < 3; i++) {
        char in[256];
        int head = snprintf(in, sizeof(in),
                            "EHLO c\r\nMAIL FROM:<a@b.c>\r\n"
                            "RCPT TO:<b@example.com>\r\n%s",
                            messages[i]);
        int n = head + snprintf(in + head, sizeof(in) - (size_t)head, "NOOP\r\nHELP\r\nQUIT\r\n");
        struct drv d;
        drv_init(&d, &cfg, NO_LIMIT);
        enum smtp_engine_stop st;
        size_t used = smtp_engine_feed(&d.e, in, (size_t)n, 0, NOW_MS, &st);
        assert_int_equal(st, SMTP_ENGINE_DELIVER);
        assert_int_equal(used, (size_t)head);
        assert_true(smtp_engine_delivering(&d.e));
        drv_send(&d);
        assert_null(strstr(engine_test_text(&d.sent), "2.0.0 Ok\r\n")); /* the NOOP waits */
        assert_false(smtp_engine_pending(&d.e));

        struct txn *t = smtp_engine_take_txn(&d.e);
        assert_non_null(t);
        assert_true(t->env.size == sizes[i]);
        struct app_reply ok = {250, "2.0.0", "Ok: queued as x"};
        assert_int_equal(smtp_engine_delivered(&d.e, &ok), SMTP_ENGINE_IDLE);
        txn_free(t);
        assert_false(smtp_engine_delivering(&d.e));
        size_t before = d.sent.len;
        drv_send(&d);
        drv_feed(&d, in + used, (size_t)n - used);
        assert_string_equal(engine_test_text(&d.sent) + before,
                            "250 2.0.0 Ok: queued as x\r\n"
                            "250 2.0.0 Ok\r\n"
                            "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT "
                            "VRFY HELP\r\n"
                            "221 2.0.0 Bye\r\n");
        assert_true(d.closed);
        drv_free(&d);
    }

    /* The server stops while the message is delivered: its reply, then 421, and what was
     * pipelined behind it is never read. */
    struct drv d;
    drv_init(&d, &cfg, NO_LIMIT);
    static const char in[] = "EHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<b@example.com>\r\n"
                             "DATA\r\nhi\r\n.\r\nNOOP\r\n";
    enum smtp_engine_stop st;
    size_t used = smtp_engine_feed(&d.e, S(in), 0, NOW_MS, &st);
    assert_int_equal(st, SMTP_ENGINE_DELIVER);
    assert_int_equal(smtp_engine_shutdown(&d.e), SMTP_ENGINE_IDLE);
    struct txn *t = smtp_engine_take_txn(&d.e);
    struct app_reply ok = {250, "2.0.0", "Ok: queued"};
    assert_int_equal(smtp_engine_delivered(&d.e, &ok), SMTP_ENGINE_CLOSE);
    txn_free(t);
    assert_int_equal(smtp_engine_feed(&d.e, in + used, sizeof(in) - 1 - used, 0, NOW_MS, &st),
                     sizeof(in) - 1 - used);
    assert_int_equal(st, SMTP_ENGINE_CLOSE);
    drv_send(&d);
    assert_non_null(
        strstr(engine_test_text(&d.sent), "\r\n250 2.0.0 Ok: queued\r\n421 4.3.2 mx.test "));
    assert_null(strstr(engine_test_text(&d.sent), "250 2.0.0 Ok\r\n"));
    drv_free(&d);
}

/* A BDAT chunk whose last byte is the last byte of the input: its end is reported in the
 * same feed, or - if a stop comes first - by the feed that smtp_engine_pending asks for,
 * with no input at all. Never lost, whatever the limit or the reads. */
static void test_chunk_end_at_input_end(void **state)
{
    (void)state;
    struct config cfg = engine_test_config();
    static const char in[] = "EHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<b@example.com>\r\n"
                             "BDAT 3\r\nabc";
    for (size_t limit = 1; limit < 400; limit++) {
        for (size_t cut = 0; cut <= sizeof(in) - 1; cut++) {
            struct drv d;
            drv_init(&d, &cfg, limit);
            drv_send(&d);
            drv_feed(&d, in, cut);
            drv_feed(&d, in + cut, sizeof(in) - 1 - cut);
            assert_false(smtp_engine_pending(&d.e));
            const char *sent = engine_test_text(&d.sent);
            size_t n = strlen(sent);
            static const char end[] = "\r\n250 2.1.5 Ok\r\n250 2.0.0 3 octets received\r\n";
            assert_true(n >= sizeof(end) - 1);
            assert_string_equal(sent + n - (sizeof(end) - 1), end);
            assert_true(session_txn(&d.e.session)->env.size == 3);
            drv_free(&d);
        }
    }
    /* The chunk's bytes arrive in a read of their own, after the BDAT line's. */
    struct drv d;
    drv_init(&d, &cfg, NO_LIMIT);
    enum smtp_engine_stop st;
    assert_int_equal(smtp_engine_feed(&d.e, in, sizeof(in) - 4, 0, NOW_MS, &st), sizeof(in) - 4);
    assert_int_equal(st, SMTP_ENGINE_IDLE);
    assert_false(smtp_engine_pending(&d.e)); /* 3 bytes still to come */
    assert_int_equal(smtp_engine_feed(&d.e, S("abc"), 0, NOW_MS, &st), 3);
    assert_int_equal(st, SMTP_ENGINE_IDLE);
    assert_false(smtp_engine_pending(&d.e));
    drv_send(&d);
    assert_non_null(strstr(engine_test_text(&d.sent), "\r\n250 2.0.0 3 octets received\r\n"));
    drv_free(&d);
}

/* STARTTLS: the 220 is the last reply, everything behind it in the input is dropped - even
 * half a line - and the session starts over after the handshake (RFC 3207 §4.2). */
static void test_starttls_drops_rest(void **state)
{
    (void)state;
    struct config cfg = engine_test_config();
    static const char *const behind[] = {"", "MAIL FROM:<evil@x.y>\r\nRCPT TO:<b@example.com>\r\n",
                                         "MAIL FR", "QUIT\r\n"};
    for (int tiny = 0; tiny < 2; tiny++) {
        for (size_t i = 0; i < 4; i++) {
            char in[256];
            int n = snprintf(in, sizeof(in), "EHLO c\r\nSTARTTLS\r\n%s", behind[i]);
            struct drv d;
            drv_init(&d, &cfg, tiny ? 1 : NO_LIMIT);
            session_set_tls_policy(&d.e.session, true, false);
            drv_send(&d);
            drv_feed(&d, in, (size_t)n);
            assert_int_equal(d.starttls, 1);
            assert_false(d.closed);
            const char *sent = engine_test_text(&d.sent);
            static const char go[] = "250 ENHANCEDSTATUSCODES\r\n220 2.0.0 Ready to start TLS\r\n";
            assert_string_equal(sent + strlen(sent) - (sizeof(go) - 1), go);
            assert_false(smtp_parser_pending(&d.e.parser));
            assert_int_equal(d.e.parser.mode, SMTP_PARSER_COMMAND);

            smtp_engine_tls_started(&d.e, &tls13, false);
            assert_int_equal(drv_send(&d), 0); /* STARTTLS: no second greeting */
            size_t before = d.sent.len;
            drv_feed(&d, S("OM:<a@b.c>\r\nMAIL FROM:<a@b.c>\r\n"));
            assert_string_equal(engine_test_text(&d.sent) + before,
                                "500 5.5.2 Error: command not recognized\r\n"
                                "503 5.5.1 Error: send HELO/EHLO first\r\n");
            drv_free(&d);
        }
    }
    /* Implicit TLS: the greeting comes only once the handshake is done. */
    struct drv d;
    memset(&d, 0, sizeof(d));
    smtp_engine_init(&d.e, &cfg, "192.0.2.1", 40000, "e1", NO_LIMIT);
    smtp_engine_tls_started(&d.e, &tls13, true);
    drv_send(&d);
    assert_string_equal(engine_test_text(&d.sent), "220 mx.test ESMTP smtphook\r\n");
    drv_free(&d);
}

/* expect_refused_data - input ends in a refused DATA with behind (maybe "") after it. */
static void expect_refused_data(const struct config *cfg, const char *setup, const char *refusal,
                                const char *behind, size_t out_limit)
{
    char in[512];
    int n = snprintf(in, sizeof(in), "EHLO c\r\n%sDATA\r\n%s", setup, behind);
    struct drv d;
    drv_init(&d, cfg, out_limit);
    drv_send(&d);
    drv_feed(&d, in, (size_t)n);
    const char *sent = engine_test_text(&d.sent);
    const char *r = strstr(sent, refusal);
    if (r == NULL)
        fail_msg("no %s in:\n%s", refusal, sent);
    size_t after = (size_t)(r - sent) + strlen(refusal);
    if (behind[0] == '\0') {
        /* The client waited for the reply, as it must: the session goes on. */
        assert_int_equal(d.sent.len, after);
        assert_false(d.closed);
        drv_feed(&d, S("NOOP\r\n"));
        assert_string_equal(engine_test_text(&d.sent) + after, "250 2.0.0 Ok\r\n");
    } else {
        /* Sent without waiting: not executed, not answered, the session ends. */
        assert_string_equal(sent + after, SYNC_LOST_TEXT);
        assert_true(d.closed);
        assert_null(session_txn(&d.e.session));
        assert_int_equal(d.e.session.state, SESSION_STATE_CLOSING);
        assert_int_equal(d.delivers, 0);
    }
    drv_free(&d);
}

/* A refused DATA with and without input behind it, for each reason DATA is refused. */
static void test_refused_data(void **state)
{
    (void)state;
    struct config cfg = engine_test_config();
    static const char *const behind[] = {
        "",
        "NOOP\r\n",
        "N",
        "\r\n",
        ".\r\n",
        "QUIT\r\n",
        "MAIL FROM:<evil@x.y>\r\nRCPT TO:<b@example.com>\r\nDATA\r\nevil\r\n.\r\n",
    };
    static const char *const setups[][2] = {
        {"", "503 5.5.1 Error: need MAIL command\r\n"},
        {"MAIL FROM:<a@b.c>\r\n", "554 5.5.1 Error: no valid recipients\r\n"},
        {"MAIL FROM:<a@b.c>\r\nRCPT TO:<b@x.org>\r\n", "554 5.5.1 Error: no valid recipients\r\n"},
        {"MAIL FROM:<a@b.c> BODY=BINARYMIME\r\nRCPT TO:<b@example.com>\r\n",
         "503 5.5.1 Error: BODY=BINARYMIME requires BDAT\r\n"},
        {"MAIL FROM:<a@b.c>\r\nRCPT TO:<b@example.com>\r\nBDAT 1\r\nx",
         "503 5.5.1 Error: DATA after BDAT in the same transaction\r\n"},
    };
    for (size_t s = 0; s < sizeof(setups) / sizeof(setups[0]); s++)
        for (size_t b = 0; b < sizeof(behind) / sizeof(behind[0]); b++) {
            expect_refused_data(&cfg, setups[s][0], setups[s][1], behind[b], NO_LIMIT);
            expect_refused_data(&cfg, setups[s][0], setups[s][1], behind[b], 1);
        }

    /* The DATA line itself split across reads, nothing behind: refused, the session goes on. */
    struct drv d;
    drv_init(&d, &cfg, NO_LIMIT);
    drv_feed(&d, S("EHLO c\r\nMAIL FROM:<a@b.c>\r\nDA"));
    drv_feed(&d, S("TA\r\n"));
    assert_false(d.closed);
    drv_feed(&d, S("RSET\r\n"));
    assert_non_null(strstr(engine_test_text(&d.sent), "\r\n554 5.5.1 Error: no valid recipients\r\n"
                                                      "250 2.0.0 Ok\r\n"));
    drv_free(&d);

    /* The engine judges the input it is given: a read that ends with the refused DATA has
     * nothing behind it, and the next read is commands again. */
    drv_init(&d, &cfg, NO_LIMIT);
    drv_feed(&d, S("EHLO c\r\nMAIL FROM:<a@b.c>\r\nDATA\r\n"));
    drv_feed(&d, S("NOOP\r\n"));
    assert_false(d.closed);
    assert_non_null(strstr(engine_test_text(&d.sent), "\r\n554 5.5.1 Error: no valid recipients\r\n"
                                                      "250 2.0.0 Ok\r\n"));
    drv_free(&d);
}

/* 50,000 NOOPs pipelined behind a refused DATA, far more than one read: not one of them is
 * answered, whichever read it arrives in; the session ends with the 421. */
static void test_refused_data_flood(void **state)
{
    (void)state;
    struct config cfg = engine_test_config();
    static const char head[] = "EHLO c\r\nMAIL FROM:<a@b.c>\r\nDATA\r\n";
    size_t len = sizeof(head) - 1 + (size_t)FLOOD_NOOPS * 6;
    char *in = malloc(len);
    assert_non_null(in);
    memcpy(in, head, sizeof(head) - 1);
    for (size_t i = 0; i < FLOOD_NOOPS; i++)
        memcpy(in + sizeof(head) - 1 + i * 6, "NOOP\r\n", 6);

    static const size_t limits[] = {NO_LIMIT, 1, 4096};
    for (size_t k = 0; k < 3; k++) {
        struct drv d;
        drv_init(&d, &cfg, limits[k]);
        drv_send(&d);
        size_t reads = 0;
        for (size_t off = 0; off < len; off += FLOOD_READ, reads++) {
            size_t n = len - off < FLOOD_READ ? len - off : FLOOD_READ;
            if (d.closed) {
                /* What the connection might still read after CLOSE is swallowed whole. */
                enum smtp_engine_stop st;
                assert_int_equal(smtp_engine_feed(&d.e, in + off, n, 0, NOW_MS, &st), n);
                assert_int_equal(st, SMTP_ENGINE_CLOSE);
                assert_int_equal(d.e.out.len, 0);
            } else {
                drv_feed(&d, in + off, n);
            }
        }
        assert_true(reads > 4);
        assert_true(d.closed);
        const char *sent = engine_test_text(&d.sent);
        assert_null(strstr(sent, "250 2.0.0 Ok"));
        static const char end[] =
            "250 2.1.0 Ok\r\n554 5.5.1 Error: no valid recipients\r\n" SYNC_LOST_TEXT;
        size_t n = strlen(sent);
        assert_true(n > sizeof(end) - 1);
        assert_string_equal(sent + n - (sizeof(end) - 1), end);
        drv_free(&d);
    }
    free(in);
}

/* A BDAT whose size cannot be read: 501, 421, CLOSE; all the input is consumed. */
static void test_unreadable_bdat_size(void **state)
{
    (void)state;
    struct config cfg = engine_test_config();
    static const char *const lines[] = {"BDAT\r\n", "BDAT x\r\nNOOP\r\n", "BDAT -1 LAST\r\nabc",
                                        "BDAT 99999999999999999999999\r\n"};
    for (size_t i = 0; i < 4; i++) {
        char in[128];
        int n = snprintf(in, sizeof(in), "EHLO c\r\n%s", lines[i]);
        struct drv d;
        drv_init(&d, &cfg, NO_LIMIT);
        drv_send(&d);
        enum smtp_engine_stop st;
        size_t used = smtp_engine_feed(&d.e, in, (size_t)n, 0, NOW_MS, &st);
        assert_int_equal(used, (size_t)n);
        assert_int_equal(st, SMTP_ENGINE_CLOSE);
        drv_send(&d);
        const char *sent = engine_test_text(&d.sent);
        static const char end[] = "250 ENHANCEDSTATUSCODES\r\n"
                                  "501 5.5.4 Syntax: BDAT size [LAST]\r\n" SYNC_LOST_TEXT;
        assert_string_equal(sent + strlen(sent) - (sizeof(end) - 1), end);
        drv_free(&d);
    }
}

/* Nothing is read, answered or written after CLOSE, whatever comes. */
static void test_close_is_final(void **state)
{
    (void)state;
    struct config cfg = engine_test_config();
    struct drv d;
    drv_init(&d, &cfg, NO_LIMIT);
    drv_send(&d);
    enum smtp_engine_stop st;
    static const char in[] = "QUIT\r\nNOOP\r\nBDAT 3\r\n";
    assert_int_equal(smtp_engine_feed(&d.e, S(in), 0, NOW_MS, &st), sizeof(in) - 1);
    assert_int_equal(st, SMTP_ENGINE_CLOSE);
    assert_int_equal(drv_send(&d), sizeof("221 2.0.0 Bye\r\n") - 1);
    assert_int_equal(smtp_engine_feed(&d.e, S("NOOP\r\n"), 0, NOW_MS, &st), 6);
    assert_int_equal(st, SMTP_ENGINE_CLOSE);
    assert_int_equal(smtp_engine_feed(&d.e, "", 0, 0, NOW_MS, &st), 0);
    assert_int_equal(st, SMTP_ENGINE_CLOSE);
    assert_int_equal(smtp_engine_timeout(&d.e), SMTP_ENGINE_CLOSE);
    assert_int_equal(smtp_engine_shutdown(&d.e), SMTP_ENGINE_CLOSE);
    assert_false(smtp_engine_pending(&d.e));
    assert_int_equal(drv_send(&d), 0);
    drv_free(&d);

    /* Closed in the middle of a chunk (idle timer, server stop): its rest is never read. */
    for (int how = 0; how < 2; how++) {
        drv_init(&d, &cfg, NO_LIMIT);
        drv_feed(&d, S("EHLO c\r\nBDAT 4\r\nab"));
        assert_int_equal(d.e.session.state, SESSION_STATE_CHUNK);
        if (how == 0)
            assert_int_equal(smtp_engine_timeout(&d.e), SMTP_ENGINE_CLOSE);
        else /* a refused chunk is no transaction: nothing to wait for */
            assert_int_equal(smtp_engine_shutdown(&d.e), SMTP_ENGINE_CLOSE);
        drv_send(&d);
        size_t before = d.sent.len;
        assert_int_equal(smtp_engine_feed(&d.e, S("cdNOOP\r\n"), 0, NOW_MS, &st), 8);
        assert_int_equal(st, SMTP_ENGINE_CLOSE);
        assert_false(smtp_engine_pending(&d.e));
        assert_int_equal(drv_send(&d), 0);
        assert_int_equal(d.sent.len, before);
        assert_non_null(strstr(engine_test_text(&d.sent), "\r\n421 4."));
        drv_free(&d);
    }
}

/* The idle timer and the server's stop, between two reads. */
static void test_timeout_and_shutdown(void **state)
{
    (void)state;
    struct config cfg = engine_test_config();
    struct drv d;
    drv_init(&d, &cfg, NO_LIMIT);
    drv_feed(&d, S("EHLO c\r\nMAIL FROM:<a@b.c>\r\n"));
    assert_non_null(smtp_engine_txn(&d.e));
    assert_int_equal(smtp_engine_timeout(&d.e), SMTP_ENGINE_CLOSE);
    drv_send(&d);
    static const char timeout[] = "250 2.1.0 Ok\r\n421 4.4.2 mx.test Error: timeout exceeded\r\n";
    const char *sent = engine_test_text(&d.sent);
    assert_string_equal(sent + strlen(sent) - (sizeof(timeout) - 1), timeout);
    drv_free(&d);

    /* Idle: 421 at once. In a transaction: it may finish, then 421. */
    drv_init(&d, &cfg, NO_LIMIT);
    drv_send(&d);
    assert_null(smtp_engine_txn(&d.e));
    assert_int_equal(smtp_engine_shutdown(&d.e), SMTP_ENGINE_CLOSE);
    drv_send(&d);
    assert_string_equal(engine_test_text(&d.sent),
                        "220 mx.test ESMTP smtphook\r\n"
                        "421 4.3.2 mx.test Service shutting down, try again "
                        "later\r\n");
    drv_free(&d);

    drv_init(&d, &cfg, NO_LIMIT);
    drv_feed(&d, S("EHLO c\r\nMAIL FROM:<a@b.c>\r\n"));
    assert_int_equal(smtp_engine_shutdown(&d.e), SMTP_ENGINE_IDLE);
    size_t before = d.sent.len;
    drv_feed(&d, S("RSET\r\nNOOP\r\n"));
    assert_true(d.closed);
    assert_string_equal(engine_test_text(&d.sent) + before,
                        "250 2.0.0 Ok\r\n421 4.3.2 mx.test Service shutting down, try again "
                        "later\r\n");
    drv_free(&d);
}

int main(void)
{
    log_set_level(LOG_LEVEL_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_resumes_losslessly),
        cmocka_unit_test(test_full_one_reply_per_feed),
        cmocka_unit_test(test_deliver_with_pipelined_commands),
        cmocka_unit_test(test_chunk_end_at_input_end),
        cmocka_unit_test(test_starttls_drops_rest),
        cmocka_unit_test(test_refused_data),
        cmocka_unit_test(test_refused_data_flood),
        cmocka_unit_test(test_unreadable_bdat_size),
        cmocka_unit_test(test_close_is_final),
        cmocka_unit_test(test_timeout_and_shutdown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
