/* test_delivery.c - the reply table and fold, then delivery + http_client end to end against
 * a small HTTP/1.1 server that runs on the same libuv loop on 127.0.0.1 (http_test_server.c);
 * the server can also answer with raw scripted bytes, to see how http_client reads a
 * response's head through curl (cut off, interim 1xx, obs-fold, trailers, the kept header
 * values and their bounds). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "smtphook/buf.h"
#include "smtphook/delivery.h"
#include "smtphook/error.h"
#include "smtphook/payload.h"
#include "smtphook/txn.h"

#include "http_test_server.h"
#include "run_loop.h"

#define BODY_BYTES   150000u /* the message: past the spool's memory part */
#define SPOOL_MEMORY 4096u   /* so the body is read back from the temporary file */
#define WAIT_MS      10000u  /* longest a test waits for anything */
#define MAX_RESULTS  4u      /* endpoints a test uses at most */

/* ---- delivery_map and delivery_fold ---------------------------------------------------- */

/* map_head - the reply for one result whose header section ended or not. */
static struct delivery_reply map_head(enum http_failure f, long status, uint64_t sent,
                                      uint64_t size, bool complete)
{
    struct http_response r;
    memset(&r, 0, sizeof(r));
    r.failure = f;
    r.status = status;
    r.headers_complete = complete;
    r.body_sent = sent;
    return delivery_map(&r, size);
}

/* map - the reply for one result with a complete header section. */
static struct delivery_reply map(enum http_failure f, long status, uint64_t sent, uint64_t size)
{
    return map_head(f, status, sent, size, true);
}

/* expect_reply - code and enhanced code as given, and some text. */
static void expect_reply(struct delivery_reply r, unsigned code, const char *esc)
{
    assert_int_equal(r.code, code);
    assert_string_equal(r.esc, esc);
    assert_non_null(r.text);
    assert_true(strlen(r.text) > 0);
}

/* expect_app - the same for a reply as it is sent. */
static void expect_app(const struct app_reply *r, unsigned code, const char *esc)
{
    assert_int_equal(r->code, code);
    assert_string_equal(r->esc, esc);
    assert_true(strlen(r->text) > 0);
}

/* One row of a delivery_map table: a result and the reply expected for it. */
struct map_row {
    enum http_failure failure; /* what curl reported */
    long status;               /* the final status, 0 for none */
    uint64_t sent;             /* body bytes sent, of 100 */
    unsigned code;             /* expected reply code */
    const char *esc;           /* expected enhanced code */
};

/* expect_map_rows - every row's result, its header section ended (complete) or not, of a
 * 100-byte body, gives the row's reply. */
static void expect_map_rows(const struct map_row *rows, size_t n, bool complete)
{
    for (size_t i = 0; i < n; i++) {
        struct delivery_reply r =
            map_head(rows[i].failure, rows[i].status, rows[i].sent, 100, complete);
        if (r.code != rows[i].code || strcmp(r.esc, rows[i].esc) != 0)
            print_error("row %zu: failure %d status %ld -> %u %s\n", i, (int)rows[i].failure,
                        rows[i].status, r.code, r.esc);
        expect_reply(r, rows[i].code, rows[i].esc);
    }
}

static void test_map_table(void **state)
{
    (void)state;
    static const struct map_row rows[] = {
        /* every endpoint 2xx after receiving the whole body */
        {HTTP_FAILURE_NONE, 200, 100, 250, "2.0.0"},
        {HTTP_FAILURE_NONE, 201, 100, 250, "2.0.0"},
        {HTTP_FAILURE_NONE, 204, 100, 250, "2.0.0"},
        {HTTP_FAILURE_NONE, 299, 100, 250, "2.0.0"},
        /* 2xx before the whole body went out */
        {HTTP_FAILURE_NONE, 200, 99, 451, "4.4.2"},
        {HTTP_FAILURE_NONE, 200, 0, 451, "4.4.2"},
        /* too big */
        {HTTP_FAILURE_NONE, 413, 0, 552, "5.3.4"},
        {HTTP_FAILURE_NONE, 413, 100, 552, "5.3.4"},
        /* configuration problems: retry */
        {HTTP_FAILURE_NONE, 401, 100, 451, "4.3.5"},
        {HTTP_FAILURE_NONE, 404, 100, 451, "4.3.5"},
        /* temporary by nature */
        {HTTP_FAILURE_NONE, 408, 100, 451, "4.3.0"},
        {HTTP_FAILURE_NONE, 429, 100, 451, "4.3.0"},
        {HTTP_FAILURE_NONE, 431, 100, 451, "4.3.0"},
        {HTTP_FAILURE_NONE, 500, 100, 451, "4.3.0"},
        {HTTP_FAILURE_NONE, 502, 100, 451, "4.3.0"},
        {HTTP_FAILURE_NONE, 503, 100, 451, "4.3.0"},
        {HTTP_FAILURE_NONE, 599, 100, 451, "4.3.0"},
        /* redirects are not followed */
        {HTTP_FAILURE_NONE, 301, 100, 451, "4.3.5"},
        {HTTP_FAILURE_NONE, 302, 100, 451, "4.3.5"},
        {HTTP_FAILURE_NONE, 307, 100, 451, "4.3.5"},
        {HTTP_FAILURE_NONE, 308, 100, 451, "4.3.5"},
        /* content rejected */
        {HTTP_FAILURE_NONE, 400, 100, 550, "5.6.0"},
        {HTTP_FAILURE_NONE, 415, 100, 550, "5.6.0"},
        {HTTP_FAILURE_NONE, 422, 100, 550, "5.6.0"},
        /* any other 4xx: refused */
        {HTTP_FAILURE_NONE, 402, 100, 550, "5.7.1"},
        {HTTP_FAILURE_NONE, 403, 100, 550, "5.7.1"},
        {HTTP_FAILURE_NONE, 405, 100, 550, "5.7.1"},
        {HTTP_FAILURE_NONE, 409, 100, 550, "5.7.1"},
        {HTTP_FAILURE_NONE, 410, 100, 550, "5.7.1"},
        {HTTP_FAILURE_NONE, 451, 100, 550, "5.7.1"},
        {HTTP_FAILURE_NONE, 499, 100, 550, "5.7.1"},
        /* 1xx as a final status, or outside every class */
        {HTTP_FAILURE_NONE, 100, 100, 451, "4.3.0"},
        {HTTP_FAILURE_NONE, 199, 100, 451, "4.3.0"},
        {HTTP_FAILURE_NONE, 0, 100, 451, "4.3.0"},
        {HTTP_FAILURE_NONE, 600, 100, 451, "4.3.0"},
        {HTTP_FAILURE_NONE, 999, 100, 451, "4.3.0"},
        /* no response */
        {HTTP_FAILURE_TIMEOUT, 0, 0, 451, "4.4.7"},
        {HTTP_FAILURE_CONNECT, 0, 0, 451, "4.4.1"},
        {HTTP_FAILURE_DNS, 0, 0, 451, "4.4.3"},
        {HTTP_FAILURE_TLS, 0, 0, 451, "4.7.5"},
        {HTTP_FAILURE_SEND, 0, 0, 451, "4.4.2"},
        {HTTP_FAILURE_OTHER, 0, 0, 451, "4.3.0"},
        /* a 2xx with a transfer error is not success; a final non-2xx status still counts */
        {HTTP_FAILURE_TIMEOUT, 200, 100, 451, "4.4.7"},
        {HTTP_FAILURE_CONNECT, 200, 100, 451, "4.4.1"},
        {HTTP_FAILURE_CONNECT, 413, 10, 552, "5.3.4"},
        {HTTP_FAILURE_TIMEOUT, 503, 100, 451, "4.3.0"},
        {HTTP_FAILURE_SEND, 403, 10, 550, "5.7.1"},
        {HTTP_FAILURE_TIMEOUT, 100, 0, 451, "4.4.7"},
    };
    expect_map_rows(rows, sizeof(rows) / sizeof(rows[0]), true);
    /* An empty body is fully sent with 0 bytes. */
    expect_reply(map(HTTP_FAILURE_NONE, 200, 0, 0), 250, "2.0.0");
}

/* A response whose connection closed before the empty line ending its header section:
 * curl reports no error, the status is there, yet it is no answer (RFC 9112 §8). */
static void test_map_headers_cut_off(void **state)
{
    (void)state;
    static const struct map_row rows[] = {
        /* a 2xx is success only once its header section ended */
        {HTTP_FAILURE_NONE, 200, 100, 451, "4.4.2"},
        {HTTP_FAILURE_NONE, 204, 100, 451, "4.4.2"},
        {HTTP_FAILURE_NONE, 299, 100, 451, "4.4.2"},
        {HTTP_FAILURE_NONE, 200, 99, 451, "4.4.2"},
        /* a failure curl reports still says what happened */
        {HTTP_FAILURE_TIMEOUT, 200, 100, 451, "4.4.7"},
        {HTTP_FAILURE_CONNECT, 200, 100, 451, "4.4.1"},
        {HTTP_FAILURE_OTHER, 200, 100, 451, "4.3.0"},
        /* nor is any other status: a refusal cut off is no refusal to bounce on */
        {HTTP_FAILURE_NONE, 413, 100, 451, "4.4.2"},
        {HTTP_FAILURE_NONE, 503, 100, 451, "4.4.2"},
        {HTTP_FAILURE_NONE, 403, 100, 451, "4.4.2"},
        {HTTP_FAILURE_NONE, 302, 100, 451, "4.4.2"},
        {HTTP_FAILURE_NONE, 100, 100, 451, "4.4.2"},
    };
    expect_map_rows(rows, sizeof(rows) / sizeof(rows[0]), false);
    /* not the same reply as a body not fully sent, though the same enhanced code */
    assert_string_not_equal(map_head(HTTP_FAILURE_NONE, 200, 100, 100, false).text,
                            map(HTTP_FAILURE_NONE, 200, 99, 100).text);
}

/* The Smtphook-Reply rules delivery shares with the recipient check: only an answered
 * response's header, given once, valid, agreeing with the status class. */
static void test_app_reply_rules(void **state)
{
    (void)state;
    const struct {
        enum http_failure failure;
        long status;
        bool complete;
        const char *value;
        bool repeated;
        bool used;   /* the reply stands */
        bool reason; /* ignored, with a reason for the log */
    } rows[] = {
        {HTTP_FAILURE_NONE, 200, true, "250 2.1.5 welcome", false, true, false},
        {HTTP_FAILURE_NONE, 404, true, "550 5.1.1 no such user", false, true, false},
        {HTTP_FAILURE_NONE, 503, true, "450 4.2.1 busy", false, true, false},
        {HTTP_FAILURE_OTHER, 403, true, "550 5.7.1 no", false, true, false},
        /* absent: nothing to ignore */
        {HTTP_FAILURE_NONE, 200, true, NULL, false, false, false},
        /* no answer: neither used nor worth a warning */
        {HTTP_FAILURE_NONE, 200, false, "250 2.1.5 cut", false, false, false},
        {HTTP_FAILURE_OTHER, 200, true, "250 2.1.5 broken", false, false, false},
        {HTTP_FAILURE_TIMEOUT, 0, false, NULL, false, false, false},
        /* ignored, and why */
        {HTTP_FAILURE_NONE, 200, true, "250 2.1.5 twice", true, false, true},
        {HTTP_FAILURE_NONE, 200, true, "250 no esc", false, false, true},
        {HTTP_FAILURE_NONE, 200, true, "550 5.1.1 refused by a 200", false, false, true},
        {HTTP_FAILURE_NONE, 404, true, "250 2.1.5 accepted by a 404", false, false, true},
        {HTTP_FAILURE_NONE, 200, true, "251 2.1.5 other 2yz", false, false, true},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct http_response r;
        memset(&r, 0, sizeof(r));
        r.failure = rows[i].failure;
        r.status = rows[i].status;
        r.headers_complete = rows[i].complete;
        r.smtp_reply = rows[i].value;
        r.smtp_reply_repeated = rows[i].repeated;
        struct app_reply out;
        memset(&out, 0, sizeof(out));
        const char *why = "unset";
        bool used = delivery_app_reply(&r, &out, &why);
        if (used != rows[i].used || (why != NULL) != rows[i].reason)
            fail_msg("row %zu: used %d why %s", i, (int)used, why ? why : "(none)");
        if (used)
            assert_true(strstr(rows[i].value, out.text) != NULL && out.code >= 250);
        else
            assert_int_equal(out.code, 0); /* *out untouched */
    }
}

/* result - a delivery whose reply is that of (failure, status). */
static struct txn_delivery result(const char *name, enum http_failure f, long status)
{
    struct txn_delivery r;
    memset(&r, 0, sizeof(r));
    r.name = name;
    r.status = status;
    struct delivery_reply rep = map(f, status, 10, 10);
    r.reply.code = rep.code;
    snprintf(r.reply.esc, sizeof(r.reply.esc), "%s", rep.esc);
    snprintf(r.reply.text, sizeof(r.reply.text), "%s", rep.text);
    return r;
}

static void test_fold_order(void **state)
{
    (void)state;
    struct txn_delivery ok = result("a", HTTP_FAILURE_NONE, 200);
    struct txn_delivery ok2 = result("b", HTTP_FAILURE_NONE, 204);
    struct txn_delivery temp = result("c", HTTP_FAILURE_CONNECT, 0);
    struct txn_delivery temp2 = result("d", HTTP_FAILURE_NONE, 503);
    struct txn_delivery big = result("e", HTTP_FAILURE_NONE, 413);
    struct txn_delivery refused = result("f", HTTP_FAILURE_NONE, 403);

    struct txn_delivery one[] = {ok};
    assert_int_equal(delivery_fold(one, 1), -1);
    struct txn_delivery all_ok[] = {ok, ok2, ok};
    assert_int_equal(delivery_fold(all_ok, 3), -1);
    /* temporary beats success, the first temporary one is reported */
    struct txn_delivery t[] = {ok, temp, temp2};
    assert_int_equal(delivery_fold(t, 3), 1);
    struct txn_delivery t2[] = {temp2, ok, temp};
    assert_int_equal(delivery_fold(t2, 3), 0);
    /* permanent beats temporary wherever it stands; the first permanent one wins */
    struct txn_delivery p[] = {temp, ok, big, refused};
    assert_int_equal(delivery_fold(p, 4), 2);
    struct txn_delivery p2[] = {refused, temp, big};
    assert_int_equal(delivery_fold(p2, 3), 0);
    struct txn_delivery p3[] = {ok, ok2, temp, temp2, refused};
    assert_int_equal(delivery_fold(p3, 5), 4);
}

/* ---- fixture ------------------------------------------------------------------------------ */

struct fixture {
    uv_loop_t loop;                                /* everything runs here */
    struct http_client *hc;                        /* the client under test */
    struct delivery_context *ctx;                  /* made at the first delivery */
    struct http_test_server srv[2];                /* endpoints */
    struct txn *t;                                 /* the message */
    char *body;                                    /* its bytes */
    char urls[MAX_RESULTS][64];                    /* endpoint URLs */
    struct config_header headers[1];               /* an endpoint header */
    struct config_endpoint endpoints[MAX_RESULTS]; /* endpoints of cfg */
    struct config cfg;                             /* hand-built configuration */
    unsigned done_calls;                           /* delivery done callbacks */
    struct app_reply reply;                        /* the sender's reply */
    size_t n_results;                              /* deliveries of the outcome */
    struct txn_delivery res[MAX_RESULTS];          /* copies of them */
    struct seen *seen;                             /* what on_seen last copied */
    unsigned want_done;                            /* for cond_done */
};

static const char rcpt1[] = "bob@example.com";
static const char rcpt2[] = "j\xc3\xb6rg@example.com";
static char hname[] = "Authorization";
static char hvalue[] = "Bearer s3cret";
static char ep1[] = "first";
static char ep2[] = "second";
static char ep3[] = "third";
static char ep4[] = "fourth";
static char *ep_names[] = {ep1, ep2, ep3, ep4};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(http_client_new(&f->loop, &f->hc), 0);

    f->body = malloc(BODY_BYTES);
    assert_non_null(f->body);
    for (size_t i = 0; i < BODY_BYTES; i++) /* NUL, CR, LF, 8-bit: every byte value */
        f->body[i] = (char)(unsigned char)((i * 7 + i / 256) % 256);
    struct txn_facts facts = {"testid.1",    1767268800123, "127.0.0.1", 40000,
                              "client.test", true,          NULL};
    /* The null sender: an empty header must still arrive. */
    assert_int_equal(txn_new(&facts, "", &f->t), 0);
    assert_int_equal(txn_add_rcpt(f->t, rcpt1, -1), 0);
    assert_int_equal(txn_add_rcpt(f->t, rcpt2, -1), 0);
    f->t->env.body = ENVELOPE_BODY_8BITMIME;
    txn_begin_body(f->t, getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", SPOOL_MEMORY, 1);
    assert_true(txn_append(f->t, f->body, BODY_BYTES, BODY_BYTES));
    txn_end_body(f->t, 2);
    assert_int_equal(f->t->spool_error, 0);
    assert_int_equal(spool_in_file(f->t->spool), 1);

    f->headers[0].name = hname;
    f->headers[0].value = hvalue;
    for (size_t i = 0; i < MAX_RESULTS; i++) {
        f->endpoints[i].name = ep_names[i];
        f->endpoints[i].url = f->urls[i];
        f->endpoints[i].timeout_ms = 5000;
        f->endpoints[i].connect_timeout_ms = 2000;
        f->endpoints[i].headers = f->headers;
        f->endpoints[i].n_headers = 1;
        f->endpoints[i].retry.max_attempts = 1; /* one request each, unless a test says */
        f->endpoints[i].retry.initial_backoff_ms = 50;
        f->endpoints[i].retry.max_backoff_ms = 200;
    }
    f->cfg.endpoints = f->endpoints;
    f->cfg.n_endpoints = 1;
    f->cfg.limits.transaction_timeout_ms = 5000;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    http_client_close(f->hc);
    delivery_context_free(f->ctx);
    for (size_t i = 0; i < 2; i++) {
        if (f->srv[i].loop != NULL)
            http_test_server_stop(&f->srv[i]);
    }
    run_loop_finish(&f->loop);
    txn_free(f->t);
    free(f->body);
    free(f);
    return 0;
}

/* on_done - keep a copy of the outcome (the next delivery replaces it in the txn). */
static void on_done(void *arg, struct txn *t)
{
    struct fixture *f = arg;
    assert_ptr_equal(t, f->t);
    f->done_calls++;
    f->reply = t->reply;
    f->n_results = t->n_deliveries;
    for (size_t i = 0; i < t->n_deliveries && i < MAX_RESULTS; i++)
        f->res[i] = t->deliveries[i];
}

/* start - delivery_start with the fixture's context (made now, for the endpoints the test
 * configured). */
static int start(struct fixture *f, struct delivery **d)
{
    if (f->ctx == NULL)
        assert_int_equal(delivery_context_new(&f->loop, f->hc, &f->cfg, &f->ctx), 0);
    return delivery_start(f->ctx, f->t, on_done, f, d);
}

/* Conditions the loop is run until (run_loop_until), each over the fixture. */

static int cond_done(const void *arg)
{
    const struct fixture *f = arg;
    return f->done_calls >= f->want_done;
}

/* What an http_client done callback saw, copied: its strings die with the callback. */
struct seen {
    unsigned calls;                             /* done callbacks */
    struct http_response resp;                  /* the response, strings pointing below */
    char smtp_reply[HTTP_SMTP_REPLY_MAX + 1];   /* copy of resp.smtp_reply */
    char retry_after[HTTP_RETRY_AFTER_MAX + 1]; /* copy of resp.retry_after */
};

static int cond_seen(const void *arg)
{
    const struct fixture *f = arg;
    return f->seen->calls > 0;
}

static int cond_two_requests(const void *arg)
{
    const struct fixture *f = arg;
    return f->srv[0].requests + f->srv[1].requests >= 2;
}

static int cond_connected(const void *arg)
{
    const struct fixture *f = arg;
    return f->srv[0].connections > 0;
}

/* use_server - endpoint i posts to a new server that answers with status (0: never). */
static void use_server(struct fixture *f, size_t i, int status)
{
    http_test_server_start(&f->srv[i], &f->loop, status);
    snprintf(f->urls[i], sizeof(f->urls[i]), "http://127.0.0.1:%d/hook/%zu", f->srv[i].port, i);
}

/* check_request - the server got the exact body and the headers. */
static void check_request(struct fixture *f, const struct http_test_server *srv, size_t i)
{
    char v[4096], want[64];
    assert_int_equal(srv->body.len, BODY_BYTES);
    assert_memory_equal(srv->body.data, f->body, BODY_BYTES);
    snprintf(want, sizeof(want), "POST /hook/%zu HTTP/1.1\r\n", i);
    assert_true(srv->head.len > strlen(want));
    assert_memory_equal(srv->head.data, want, strlen(want));
    assert_string_equal(http_test_header(&srv->head, "Content-Type", v, sizeof(v)),
                        "message/rfc822");
    snprintf(want, sizeof(want), "%u", BODY_BYTES);
    assert_string_equal(http_test_header(&srv->head, "Content-Length", v, sizeof(v)), want);
    assert_string_equal(http_test_header(&srv->head, "X-Smtphook-Id", v, sizeof(v)), "testid.1");
    /* Endpoint i's share is delivery i here: every endpoint gets every recipient. */
    assert_true(i < f->t->n_deliveries);
    const char *key = f->t->deliveries[i].key;
    assert_int_equal(strlen(key), DIGEST_HEX);
    assert_string_equal(http_test_header(&srv->head, "Idempotency-Key", v, sizeof(v)), key);
    assert_string_equal(http_test_header(&srv->head, "X-Smtphook-Mail-From", v, sizeof(v)), "");
    assert_string_equal(http_test_header(&srv->head, "X-Smtphook-Rcpt-To", v, sizeof(v)),
                        "bob@example.com, j%C3%B6rg@example.com");
    assert_string_equal(http_test_header(&srv->head, "Authorization", v, sizeof(v)),
                        "Bearer s3cret");
    char *json = NULL;
    struct envelope view = f->t->env;
    view.key = key;
    assert_int_equal(payload_envelope_json(&view, &json), 0);
    assert_string_equal(http_test_header(&srv->head, "X-Smtphook-Envelope", v, sizeof(v)), json);
    free(json);
    assert_non_null(http_test_header(&srv->head, "User-Agent", v, sizeof(v)));
    assert_memory_equal(v, "smtphook/", 9);
    assert_null(http_test_header(&srv->head, "Expect", v, sizeof(v)));
    assert_null(http_test_header(&srv->head, "Transfer-Encoding", v, sizeof(v)));
}

/* deliver - run one delivery to completion. */
static void deliver(struct fixture *f)
{
    unsigned before = f->done_calls;
    struct delivery *d = NULL;
    assert_int_equal(start(f, &d), 0);
    assert_non_null(d);
    assert_int_equal(f->done_calls, before); /* never synchronously */
    f->want_done = before + 1;
    assert_true(run_loop_until(&f->loop, cond_done, f, WAIT_MS));
    assert_int_equal(f->done_calls, before + 1);
}

/* ---- end to end --------------------------------------------------------------------------- */

/* expect_status - one endpoint answering status gives code/esc; the body arrives intact. */
static void expect_status(void **state, int status, unsigned code, const char *esc)
{
    struct fixture *f = *state;
    use_server(f, 0, status);
    deliver(f);
    expect_app(&f->reply, code, esc);
    assert_int_equal(f->n_results, 1);
    assert_string_equal(f->res[0].name, "first");
    assert_null(f->res[0].failure);
    assert_int_equal(f->res[0].attempts, 1);
    assert_int_equal(f->res[0].status, status);
    expect_app(&f->res[0].reply, code, esc);
    assert_int_equal(f->srv[0].requests, 1);
    check_request(f, &f->srv[0], 0);
}

static void test_e2e_200(void **state)
{
    struct fixture *f = *state;
    expect_status(state, 200, 250, "2.0.0");
    /* A second message reuses the kept-alive connection. */
    deliver(f);
    expect_app(&f->reply, 250, "2.0.0");
    assert_int_equal(f->srv[0].requests, 2);
    assert_int_equal(f->srv[0].connections, 1);
    check_request(f, &f->srv[0], 0);
}

static void test_e2e_500(void **state)
{
    expect_status(state, 500, 451, "4.3.0");
}

static void test_e2e_413(void **state)
{
    expect_status(state, 413, 552, "5.3.4");
}

static void test_e2e_403(void **state)
{
    expect_status(state, 403, 550, "5.7.1");
}

static void test_e2e_redirect_not_followed(void **state)
{
    expect_status(state, 302, 451, "4.3.5");
}

static void test_e2e_413_before_the_body(void **state)
{
    struct fixture *f = *state;
    use_server(f, 0, 413);
    f->srv[0].early = 1;
    deliver(f);
    expect_app(&f->reply, 552, "5.3.4");
    assert_int_equal(f->res[0].status, 413);
    expect_app(&f->res[0].reply, 552, "5.3.4");
}

static void test_e2e_connection_refused(void **state)
{
    struct fixture *f = *state;
    /* A port that was just free: bind, note it, close. */
    use_server(f, 0, 200);
    int port = f->srv[0].port;
    http_test_server_stop(&f->srv[0]);
    f->srv[0].loop = NULL;
    uv_run(&f->loop, UV_RUN_NOWAIT);
    snprintf(f->urls[0], sizeof(f->urls[0]), "http://127.0.0.1:%d/hook/0", port);
    deliver(f);
    expect_app(&f->reply, 451, "4.4.1");
    assert_non_null(f->res[0].failure);
    assert_int_equal(f->res[0].status, 0);
}

static void test_e2e_never_answers(void **state)
{
    struct fixture *f = *state;
    use_server(f, 0, 0);
    f->cfg.limits.transaction_timeout_ms = 1000; /* below the endpoint's 5000 */
    deliver(f);
    expect_app(&f->reply, 451, "4.4.7");
    assert_non_null(f->res[0].failure);
    assert_true(f->res[0].elapsed_ms >= 900 && f->res[0].elapsed_ms < 4000);
    assert_int_equal(f->srv[0].requests, 1); /* it got everything, it just never answered */
    check_request(f, &f->srv[0], 0);
}

static void test_e2e_two_endpoints(void **state)
{
    struct fixture *f = *state;
    use_server(f, 0, 204);
    use_server(f, 1, 503);
    f->cfg.n_endpoints = 2;
    deliver(f);
    expect_app(&f->reply, 451, "4.3.0");
    assert_int_equal(f->n_results, 2);
    assert_string_equal(f->res[0].name, "first");
    assert_int_equal(f->res[0].status, 204);
    expect_app(&f->res[0].reply, 250, "2.0.0");
    assert_string_equal(f->res[1].name, "second");
    assert_int_equal(f->res[1].status, 503);
    expect_app(&f->res[1].reply, 451, "4.3.0");
    check_request(f, &f->srv[0], 0);
    check_request(f, &f->srv[1], 1);

    /* Now the second one is down too: the temporary reply is the first endpoint's. */
    f->srv[1].status = 404;
    f->srv[0].status = 500;
    deliver(f);
    expect_app(&f->reply, 451, "4.3.0");
    expect_app(&f->res[1].reply, 451, "4.3.5");
}

/* A "queue" delivery posts nothing now: every endpoint gets a share of every recipient for
 * the queue, each with the key of those recipients, and the reply says "queued as". */
static void test_queue_mode_leaves_shares(void **state)
{
    struct fixture *f = *state;
    use_server(f, 0, 200);
    use_server(f, 1, 200);
    f->cfg.n_endpoints = 2;
    f->cfg.delivery = CONFIG_DELIVERY_QUEUE;
    deliver(f);
    expect_app(&f->reply, 250, "2.0.0");
    assert_non_null(strstr(f->reply.text, "queued as testid.1"));
    assert_int_equal(f->n_results, 0);
    assert_int_equal(f->srv[0].requests + f->srv[1].requests, 0);
    assert_int_equal(f->t->n_shares, 2);
    char key[DIGEST_HEX + 1];
    txn_key(f->t, NULL, 0, key);
    for (size_t i = 0; i < 2; i++) {
        const struct txn_share *sh = &f->t->shares[i];
        assert_false(sh->failover);
        assert_int_equal(sh->n_endpoints, 1);
        assert_int_equal(sh->endpoints[0], i);
        assert_int_equal(sh->n_rcpts, 2);
        assert_string_equal(sh->key, key);
    }
    /* The breakers' state does not matter for a queued route: it is never "down". */
    assert_false(delivery_route_down(f->ctx, -1));
}

/* "sync_then_queue": the endpoint that failed for now is queued with the key its request
 * carried; the one that accepted is not. A permanent failure anywhere queues nothing. */
static void test_sync_then_queue_queues_what_failed_for_now(void **state)
{
    struct fixture *f = *state;
    use_server(f, 0, 204);
    use_server(f, 1, 503);
    f->cfg.n_endpoints = 2;
    f->cfg.delivery = CONFIG_DELIVERY_SYNC_THEN_QUEUE;
    deliver(f);
    expect_app(&f->reply, 250, "2.0.0");
    assert_non_null(strstr(f->reply.text, "queued as"));
    assert_int_equal(f->n_results, 2);
    assert_int_equal(f->t->n_shares, 1);
    assert_int_equal(f->t->shares[0].endpoints[0], 1);
    assert_string_equal(f->t->shares[0].key, f->res[1].key);
    assert_int_equal(f->srv[0].requests, 1);
    assert_int_equal(f->srv[1].requests, 1);

    f->srv[0].status = 403; /* a refusal: the sender hears it, nothing is queued */
    deliver(f);
    expect_app(&f->reply, 550, "5.7.1");
    assert_int_equal(f->t->n_shares, 0);

    f->srv[0].status = 200;
    f->srv[1].status = 200; /* all accepted: delivered, nothing queued */
    deliver(f);
    expect_app(&f->reply, 250, "2.0.0");
    assert_non_null(strstr(f->reply.text, "delivered as"));
    assert_int_equal(f->t->n_shares, 0);
}

/* A queued share's attempt is one request per endpoint (the queue retries, not the
 * delivery); a failover share moves on to its next endpoint after a temporary failure. */
static void test_share_attempt_is_one_request(void **state)
{
    struct fixture *f = *state;
    use_server(f, 0, 503);
    use_server(f, 1, 200);
    f->cfg.n_endpoints = 2;
    f->endpoints[0].retry.max_attempts = 3;
    assert_int_equal(delivery_context_new(&f->loop, f->hc, &f->cfg, &f->ctx), 0);
    size_t first = 0, both[2] = {0, 1};
    struct txn_share one = {&first, 1, false, NULL, 0, ""};
    struct delivery *d = NULL;
    f->want_done = f->done_calls + 1;
    assert_int_equal(delivery_start_share(f->ctx, f->t, &one, on_done, f, &d), 0);
    assert_true(run_loop_until(&f->loop, cond_done, f, WAIT_MS));
    expect_app(&f->reply, 451, "4.3.0");
    assert_int_equal(f->srv[0].requests, 1); /* no retry within the attempt */
    assert_int_equal(f->n_results, 1);

    struct txn_share chain = {both, 2, true, NULL, 0, ""};
    f->want_done = f->done_calls + 1;
    assert_int_equal(delivery_start_share(f->ctx, f->t, &chain, on_done, f, &d), 0);
    assert_true(run_loop_until(&f->loop, cond_done, f, WAIT_MS));
    expect_app(&f->reply, 250, "2.0.0");
    assert_int_equal(f->srv[0].requests, 2);
    assert_int_equal(f->srv[1].requests, 1);
    assert_int_equal(f->n_results, 2);
    check_request(f, &f->srv[1], 1);

    size_t bad = 7; /* not an endpoint */
    struct txn_share none = {&bad, 1, false, NULL, 0, ""};
    assert_int_equal(delivery_start_share(f->ctx, f->t, &none, on_done, f, &d), SH_EINVAL);
}

/* use_https - endpoint 0 posts over https:// to a plain server, which never sees a request:
 * the TLS set-up fails on our side first (files are read before the ClientHello). */
static void use_https(struct fixture *f)
{
    use_server(f, 0, 200);
    snprintf(f->urls[0], sizeof(f->urls[0]), "https://127.0.0.1:%d/hook/0", f->srv[0].port);
}

/* expect_tls_failure - a temporary 451 4.7.5 and nothing posted. */
static void expect_tls_failure(struct fixture *f)
{
    deliver(f);
    expect_app(&f->reply, 451, "4.7.5");
    assert_non_null(f->res[0].failure);
    assert_int_equal(f->res[0].status, 0);
    expect_app(&f->res[0].reply, 451, "4.7.5");
    assert_int_equal(f->srv[0].requests, 0);
}

static void test_e2e_https_unreadable_ca_file(void **state)
{
    struct fixture *f = *state;
    static char ca[] = "/nonexistent/smtphook-test-ca.pem";
    use_https(f);
    f->endpoints[0].ca_file = ca;
    expect_tls_failure(f);
}

static void test_e2e_https_unreadable_client_cert(void **state)
{
    struct fixture *f = *state;
    static char cert[] = "/nonexistent/smtphook-test-client.pem";
    static char key[] = "/nonexistent/smtphook-test-client.key";
    use_https(f);
    f->endpoints[0].client_cert = cert;
    f->endpoints[0].client_key = key;
    expect_tls_failure(f);
}

static void test_cancel_before_completion(void **state)
{
    struct fixture *f = *state;
    use_server(f, 0, 0);
    use_server(f, 1, 0);
    f->cfg.n_endpoints = 2;

    /* Cancelled right away, before the loop ever ran. */
    struct delivery *d = NULL;
    assert_int_equal(start(f, &d), 0);
    delivery_cancel(d);

    /* Cancelled while both requests wait for an answer. */
    assert_int_equal(start(f, &d), 0);
    assert_true(run_loop_until(&f->loop, cond_two_requests, f, WAIT_MS));
    assert_int_equal(f->srv[0].requests, 1);
    assert_int_equal(f->srv[1].requests, 1);
    delivery_cancel(d);
    delivery_cancel(NULL);

    /* Nothing fires afterwards. */
    run_loop_for(&f->loop, 300);
    assert_int_equal(f->done_calls, 0);
}

static void test_cancel_mid_body(void **state)
{
    struct fixture *f = *state;
    use_server(f, 0, 200);
    struct delivery *d = NULL;
    assert_int_equal(start(f, &d), 0);
    /* Run until the connection exists, then cancel while the body may still be flowing. */
    assert_true(run_loop_until(&f->loop, cond_connected, f, WAIT_MS));
    delivery_cancel(d);
    run_loop_for(&f->loop, 200);
    assert_int_equal(f->done_calls, 0);
}

/* on_request_done - counts http_client completions directly. */
static void on_request_done(void *arg, const struct http_response *resp)
{
    (void)resp;
    (*(unsigned *)arg)++;
}

static int read_body(void *arg, uint64_t offset, char *dst, size_t len, size_t *got)
{
    return spool_read(arg, offset, dst, len, got);
}

static void test_client_close_with_requests_running(void **state)
{
    struct fixture *f = *state;
    use_server(f, 0, 0);
    const char *hdrs[] = {"X-Test: 1", "X-Empty: "};
    struct http_request_opts o;
    memset(&o, 0, sizeof(o));
    o.url = f->urls[0];
    o.headers = hdrs;
    o.n_headers = 2;
    o.body_size = spool_size(f->t->spool);
    o.body_read = read_body;
    o.body_arg = f->t->spool;
    o.timeout_ms = 5000;
    o.connect_timeout_ms = 1000;
    unsigned calls = 0;
    struct http_request *r1 = NULL, *r2 = NULL;
    assert_int_equal(http_request_start(f->hc, &o, on_request_done, &calls, &r1), 0);
    assert_int_equal(http_request_start(f->hc, &o, on_request_done, &calls, &r2), 0);
    assert_non_null(r1);
    assert_non_null(r2);
    assert_true(run_loop_until(&f->loop, cond_two_requests, f, WAIT_MS));
    char v[64];
    assert_string_equal(http_test_header(&f->srv[0].head, "X-Empty", v, sizeof(v)), "");
    assert_string_equal(http_test_header(&f->srv[0].head, "X-Test", v, sizeof(v)), "1");
    http_request_cancel(r1);
    http_client_close(f->hc); /* r2 still running: cancelled, no callback */
    f->hc = NULL;
    assert_int_equal(http_request_start(NULL, &o, on_request_done, &calls, NULL), SH_EINVAL);
    run_loop_for(&f->loop, 100);
    assert_int_equal(calls, 0);
}

/* ---- the response head, through curl ------------------------------------------------------ */

/* on_seen - http_done_fn keeping a copy of the response. */
static void on_seen(void *arg, const struct http_response *resp)
{
    struct seen *sn = arg;
    sn->calls++;
    sn->resp = *resp;
    sn->resp.error = NULL;
    if (resp->smtp_reply != NULL) {
        assert_true(strlen(resp->smtp_reply) <= HTTP_SMTP_REPLY_MAX);
        strcpy(sn->smtp_reply, resp->smtp_reply);
        sn->resp.smtp_reply = sn->smtp_reply;
    }
    if (resp->retry_after != NULL) {
        assert_true(strlen(resp->retry_after) <= HTTP_RETRY_AFTER_MAX);
        strcpy(sn->retry_after, resp->retry_after);
        sn->resp.retry_after = sn->retry_after;
    }
}

/* post_scripted - POST the message to server 0, which answers with the len bytes of script
 * and closes; *sn gets the response. */
static void post_scripted(struct fixture *f, const char *script, size_t len, struct seen *sn)
{
    memset(sn, 0, sizeof(*sn));
    f->srv[0].script = script;
    f->srv[0].script_len = len;
    struct http_request_opts o;
    memset(&o, 0, sizeof(o));
    o.url = f->urls[0];
    o.body_size = spool_size(f->t->spool);
    o.body_read = read_body;
    o.body_arg = f->t->spool;
    o.timeout_ms = 5000;
    o.connect_timeout_ms = 1000;
    f->seen = sn;
    assert_int_equal(http_request_start(f->hc, &o, on_seen, sn, NULL), 0);
    assert_true(run_loop_until(&f->loop, cond_seen, f, WAIT_MS));
    assert_int_equal(sn->calls, 1);
    assert_int_equal(sn->resp.body_sent, BODY_BYTES); /* the script starts after the body */
}

/* same_value - both absent, or the same text. */
static int same_value(const char *got, const char *want)
{
    if (got == NULL || want == NULL)
        return got == want;
    return strcmp(got, want) == 0;
}

#define CL0 "Content-Length: 0\r\n"

static void test_response_head(void **state)
{
    struct fixture *f = *state;
    const struct {
        const char *script;
        enum http_failure failure;
        long status;
        bool complete;
        const char *reply; /* expected smtp_reply, NULL: absent */
        bool reply_repeated;
        const char *retry; /* expected retry_after, NULL: absent */
        bool retry_repeated;
    } rows[] = {
        /* closed before the empty line: curl says CURLE_OK */
        {"HTTP/1.1 204 No Content\r\n", HTTP_FAILURE_NONE, 204, false, NULL, false, NULL, false},
        {"HTTP/1.1 200 OK\r\nContent-Le", HTTP_FAILURE_NONE, 200, false, NULL, false, NULL, false},
        {"HTTP/1.1 200 OK\r\n\r", HTTP_FAILURE_NONE, 200, false, NULL, false, NULL, false},
        {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n", HTTP_FAILURE_NONE, 200, false, NULL,
         false, NULL, false},
        /* a cut-off head still shows the lines that arrived whole */
        {"HTTP/1.1 503 Busy\r\nRetry-After: 30\r\n", HTTP_FAILURE_NONE, 503, false, NULL, false,
         "30", false},
        /* complete heads, CRLF or bare LF (RFC 9112 §2.2) */
        {"HTTP/1.1 204 No Content\r\n\r\n", HTTP_FAILURE_NONE, 204, true, NULL, false, NULL, false},
        {"HTTP/1.1 200 OK\nContent-Length: 0\nSmtphook-Reply: 250 2.0.0 lf\n\n", HTTP_FAILURE_NONE,
         200, true, "250 2.0.0 lf", false, NULL, false},
        /* interim responses: their own blocks, their headers never leak */
        {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n" CL0 "\r\n", HTTP_FAILURE_NONE, 200,
         true, NULL, false, NULL, false},
        {"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\nSmtphook-Reply: 550 5.7.1 early\r\n"
         "Retry-After: 9\r\n\r\nHTTP/1.1 200 OK\r\n" CL0 "\r\n",
         HTTP_FAILURE_NONE, 200, true, NULL, false, NULL, false},
        {"HTTP/1.1 103 Early Hints\r\nSmtphook-Reply: 550 5.7.1 early\r\n\r\n"
         "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\n" CL0
         "Smtphook-Reply: 250 2.0.0 final\r\n\r\n",
         HTTP_FAILURE_NONE, 202, true, "250 2.0.0 final", false, NULL, false},
        /* names compare case-insensitively; values are trimmed */
        {"HTTP/1.1 200 OK\r\n" CL0 "smtphook-REPLY:   550 5.7.1 no thanks \t\r\n"
         "retry-after:\t120 \r\n\r\n",
         HTTP_FAILURE_NONE, 200, true, "550 5.7.1 no thanks", false, "120", false},
        /* an empty value is present */
        {"HTTP/1.1 200 OK\r\n" CL0 "Smtphook-Reply:\r\n\r\n", HTTP_FAILURE_NONE, 200, true, "",
         false, NULL, false},
        /* repeated: the first value, flagged */
        {"HTTP/1.1 200 OK\r\n" CL0 "Smtphook-Reply: 250 2.0.0 one\r\nRetry-After: 1\r\n"
         "Smtphook-Reply: 550 5.7.1 two\r\nRetry-After: 2\r\n\r\n",
         HTTP_FAILURE_NONE, 200, true, "250 2.0.0 one", true, "1", true},
        /* obs-fold (RFC 9112 §5.2): joined with one space, never a header of its own */
        {"HTTP/1.1 200 OK\r\n" CL0 "Smtphook-Reply: 550 5.7.1\r\n  not\r\n\ttoday \r\n\r\n",
         HTTP_FAILURE_NONE, 200, true, "550 5.7.1 not today", false, NULL, false},
        {"HTTP/1.1 200 OK\r\n" CL0 "Smtphook-Reply:\r\n 550 5.7.1 folded\r\n\r\n",
         HTTP_FAILURE_NONE, 200, true, "550 5.7.1 folded", false, NULL, false},
        {"HTTP/1.1 200 OK\r\n" CL0 "X-Note: a\r\n Smtphook-Reply: 250 2.0.0 forged\r\n"
         "\tRetry-After: 5\r\n\r\n",
         HTTP_FAILURE_NONE, 200, true, NULL, false, NULL, false},
        {"HTTP/1.1 200 OK\r\n" CL0 "Smtphook-Reply: first\r\nSmtphook-Reply: second\r\n"
         " more\r\n\r\n",
         HTTP_FAILURE_NONE, 200, true, "first", true, NULL, false},
        /* only the exact names */
        {"HTTP/1.1 200 OK\r\n" CL0 "Smtphook-Reply-X: a\r\nSmtphook-Repl: b\r\n"
         "Smtphook-Reply : c\r\nX-Smtphook-Reply: d\r\nRetry-After-Ms: 5\r\n\r\n",
         HTTP_FAILURE_NONE, 200, true, NULL, false, NULL, false},
        /* trailers are not the header section */
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n"
         "Smtphook-Reply: 550 5.7.1 trailer\r\nRetry-After: 5\r\n\r\n",
         HTTP_FAILURE_NONE, 200, true, NULL, false, NULL, false},
        /* the body cut off after a complete head: curl reports it (CURLE_PARTIAL_FILE) */
        {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", HTTP_FAILURE_OTHER, 200, true, NULL,
         false, NULL, false},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\nabc", HTTP_FAILURE_OTHER, 200,
         true, NULL, false, NULL, false},
    };
    use_server(f, 0, 0);
    struct seen sn;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        post_scripted(f, rows[i].script, strlen(rows[i].script), &sn);
        const struct http_response *r = &sn.resp;
        if (r->failure != rows[i].failure || r->status != rows[i].status ||
            r->headers_complete != rows[i].complete || !same_value(r->smtp_reply, rows[i].reply) ||
            r->smtp_reply_repeated != rows[i].reply_repeated ||
            !same_value(r->retry_after, rows[i].retry) ||
            r->retry_after_repeated != rows[i].retry_repeated || r->smtp_reply_dropped ||
            r->retry_after_dropped)
            fail_msg("row %zu: failure %d status %ld complete %d reply %s%s retry %s%s", i,
                     (int)r->failure, r->status, (int)r->headers_complete,
                     r->smtp_reply ? r->smtp_reply : "(none)",
                     r->smtp_reply_repeated ? " (repeated)" : "",
                     r->retry_after ? r->retry_after : "(none)",
                     r->retry_after_repeated ? " (repeated)" : "");
    }
    assert_int_equal(f->srv[0].requests, sizeof(rows) / sizeof(rows[0]));
}

/* long_header - "HTTP/1.1 200 OK", Content-Length 0, then name: pad + value of n 'v' + pad
 * and the lines in extra, into buf. */
static size_t long_header(char *buf, size_t cap, const char *name, const char *pad, size_t n,
                          const char *extra)
{
    size_t len = (size_t)snprintf(buf, cap, "HTTP/1.1 200 OK\r\n" CL0 "%s: %s", name, pad);
    assert_true(len + n + 256 < cap);
    memset(buf + len, 'v', n);
    len += n;
    len += (size_t)snprintf(buf + len, cap - len, "%s\r\n%s\r\n", pad, extra);
    return len;
}

static void test_response_head_bounds(void **state)
{
    struct fixture *f = *state;
    static char buf[4096];
    struct seen sn;
    use_server(f, 0, 0);

    /* at the bound: kept whole, surrounding whitespace not counted */
    post_scripted(f, buf, long_header(buf, sizeof(buf), "Smtphook-Reply", " \t", 512, ""), &sn);
    assert_true(sn.resp.headers_complete);
    assert_non_null(sn.resp.smtp_reply);
    assert_int_equal(strlen(sn.resp.smtp_reply), HTTP_SMTP_REPLY_MAX);
    assert_false(sn.resp.smtp_reply_dropped);
    post_scripted(f, buf, long_header(buf, sizeof(buf), "Retry-After", " ", 64, ""), &sn);
    assert_non_null(sn.resp.retry_after);
    assert_int_equal(strlen(sn.resp.retry_after), HTTP_RETRY_AFTER_MAX);
    assert_false(sn.resp.retry_after_dropped);

    /* one byte more: dropped and flagged, never cut */
    post_scripted(f, buf, long_header(buf, sizeof(buf), "Smtphook-Reply", " ", 513, ""), &sn);
    assert_true(sn.resp.headers_complete);
    assert_null(sn.resp.smtp_reply);
    assert_true(sn.resp.smtp_reply_dropped);
    assert_false(sn.resp.smtp_reply_repeated);
    post_scripted(f, buf, long_header(buf, sizeof(buf), "Retry-After", " ", 65, ""), &sn);
    assert_null(sn.resp.retry_after);
    assert_true(sn.resp.retry_after_dropped);

    /* outgrown by an obs-fold line: 510 + " " + "xy" is 513 */
    post_scripted(f, buf, long_header(buf, sizeof(buf), "Smtphook-Reply", "", 510, " xy"), &sn);
    assert_null(sn.resp.smtp_reply);
    assert_true(sn.resp.smtp_reply_dropped);
    post_scripted(f, buf, long_header(buf, sizeof(buf), "Smtphook-Reply", "", 510, " x"), &sn);
    assert_non_null(sn.resp.smtp_reply);
    assert_int_equal(strlen(sn.resp.smtp_reply), HTTP_SMTP_REPLY_MAX);
    assert_string_equal(sn.resp.smtp_reply + 510, " x");

    /* a dropped first value is not replaced by a repeat */
    post_scripted(f, buf,
                  long_header(buf, sizeof(buf), "Smtphook-Reply", "", 600,
                              "Smtphook-Reply: 250 2.0.0 short\r\n"),
                  &sn);
    assert_null(sn.resp.smtp_reply);
    assert_true(sn.resp.smtp_reply_dropped);
    assert_true(sn.resp.smtp_reply_repeated);
    assert_null(sn.resp.retry_after);
    assert_false(sn.resp.retry_after_dropped);
}

/* A 2xx cut off inside its head goes all the way to 451 4.4.2 through delivery. */
static void test_e2e_response_cut_off(void **state)
{
    struct fixture *f = *state;
    static const char cut[] = "HTTP/1.1 204 No Content\r\n";
    static const char whole[] = "HTTP/1.1 204 No Content\r\n\r\n";
    use_server(f, 0, 0);
    f->srv[0].script = cut;
    f->srv[0].script_len = strlen(cut);
    deliver(f);
    expect_app(&f->reply, 451, "4.4.2");
    assert_non_null(f->res[0].failure);
    assert_int_equal(f->res[0].status, 204);
    check_request(f, &f->srv[0], 0);
    f->srv[0].script = whole;
    f->srv[0].script_len = strlen(whole);
    deliver(f);
    expect_app(&f->reply, 250, "2.0.0");
}

/* A 200 that came before the whole body went out, with a valid Smtphook-Reply: the body was
 * not delivered whole, so the reply must stay the table's 451 4.4.2 (retried), never 250. */
static void test_partial_body_not_accepted_by_smtphook_reply(void **state)
{
    (void)state;
    struct config_endpoint ep;
    memset(&ep, 0, sizeof(ep));
    struct http_response r;
    memset(&r, 0, sizeof(r));
    r.failure = HTTP_FAILURE_NONE;
    r.status = 200;
    r.headers_complete = true;
    r.body_sent = 50; /* of 100 */
    r.smtp_reply = "250 2.0.0 stored";
    struct app_reply out;
    memset(&out, 0, sizeof(out));
    bool retry = false, app = false;
    const char *why = NULL;
    delivery_choose(&ep, &r, 100, &out, &retry, &app, &why);
    assert_int_equal(out.code, 451);
    assert_string_equal(out.esc, "4.4.2");
}

/* The same with a reply_map row for 200 instead of the header. */
static void test_partial_body_not_accepted_by_reply_map(void **state)
{
    (void)state;
    struct config_reply_rule rule;
    memset(&rule, 0, sizeof(rule));
    rule.status = 200;
    rule.reply.code = 250;
    struct config_endpoint ep;
    memset(&ep, 0, sizeof(ep));
    ep.reply_map = &rule;
    ep.n_reply_map = 1;
    struct http_response r;
    memset(&r, 0, sizeof(r));
    r.status = 200;
    r.headers_complete = true;
    r.body_sent = 50;
    struct app_reply out;
    memset(&out, 0, sizeof(out));
    bool retry = false, app = false;
    const char *why = NULL;
    delivery_choose(&ep, &r, 100, &out, &retry, &app, &why);
    assert_int_equal(out.code, 451);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_map_table),
        cmocka_unit_test(test_map_headers_cut_off),
        cmocka_unit_test(test_fold_order),
        cmocka_unit_test(test_partial_body_not_accepted_by_smtphook_reply),
        cmocka_unit_test(test_partial_body_not_accepted_by_reply_map),
        cmocka_unit_test(test_app_reply_rules),
        cmocka_unit_test_setup_teardown(test_e2e_200, setup, teardown),
        cmocka_unit_test_setup_teardown(test_e2e_500, setup, teardown),
        cmocka_unit_test_setup_teardown(test_e2e_413, setup, teardown),
        cmocka_unit_test_setup_teardown(test_e2e_403, setup, teardown),
        cmocka_unit_test_setup_teardown(test_e2e_redirect_not_followed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_e2e_413_before_the_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_e2e_connection_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_e2e_never_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_e2e_two_endpoints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_mode_leaves_shares, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_then_queue_queues_what_failed_for_now, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_share_attempt_is_one_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_e2e_https_unreadable_ca_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_e2e_https_unreadable_client_cert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_before_completion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_mid_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_close_with_requests_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_head_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_e2e_response_cut_off, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
