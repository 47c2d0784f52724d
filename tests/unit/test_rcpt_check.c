/* test_rcpt_check.c - the recipient check: rcpt_check_decide's table, then the checker and
 * http_client end to end against the in-process HTTP/1.1 server (http_test_server.c) on the
 * test's loop: verdicts, the request it sends, a timeout, the cache (hits, expiry, what is
 * never kept, the sender domain in the key, eviction at RCPT_CHECK_CACHE_MAX), cancelling
 * and requests running side by side. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "smtphook/error.h"
#include "smtphook/log.h"
#include "smtphook/payload.h"
#include "smtphook/rcpt_check.h"

#include "http_test_server.h"
#include "run_loop.h"

#define WAIT_MS     10000u /* longest a test waits for anything */
#define SHORT_MS    300u   /* the timeout of the timeout test */
#define CONCURRENT  8u     /* requests of the side-by-side test */
#define EVICT_BATCH 64u    /* requests at once while the eviction test fills the cache */
#define RCPT_BUF    64u    /* room for a test recipient */

static const char ok_text[] = "Ok";
static const char unknown_text[] = "Error: recipient address rejected: user unknown";
static const char failed_text[] = "Error: recipient check failed, try again later";

/* ---- rcpt_check_decide ------------------------------------------------------------------ */

/* One row of the table: a response, on_failure, and the verdict expected. */
struct decide_row {
    enum http_failure failure; /* what curl reported */
    long status;               /* the final status, 0 for none */
    bool complete;             /* the head ended with its empty line */
    const char *smtp_reply;    /* Smtphook-Reply value, NULL: absent */
    bool repeated;             /* Smtphook-Reply came more than once */
    bool accept_on_failure;    /* on_failure "accept" */
    bool accept;               /* expected verdict */
    unsigned code;             /* expected reply */
    const char *esc;           /* expected enhanced code */
    const char *text;          /* expected text */
    const char *why;           /* a part of the expected reason */
};

/* F - a row for a response whose head is complete, without Smtphook-Reply, on_failure
 * "defer". */
#define F(failure, status, accept, code, esc, text, why)                                           \
    {                                                                                              \
        failure, status, true, NULL, false, false, accept, code, esc, text, why                    \
    }
#define NONE HTTP_FAILURE_NONE

static void expect_row(size_t i, const struct decide_row *row)
{
    struct config_recipient_check cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.enabled = true;
    cfg.accept_on_failure = row->accept_on_failure;
    struct http_response resp;
    memset(&resp, 0, sizeof(resp));
    resp.failure = row->failure;
    resp.status = row->status;
    resp.headers_complete = row->complete;
    resp.smtp_reply = row->smtp_reply;
    resp.smtp_reply_repeated = row->repeated;
    struct rcpt_check_result r;
    memset(&r, 0xA5, sizeof(r)); /* every field must be written */
    rcpt_check_decide(&cfg, &resp, &r);
    if (r.accept != row->accept || r.reply.code != row->code ||
        strcmp(r.reply.esc, row->esc) != 0 || strcmp(r.reply.text, row->text) != 0 ||
        r.why == NULL || strstr(r.why, row->why) == NULL || r.cached)
        fail_msg("row %zu: failure %d status %ld -> %s %u %s %s (%s)", i, (int)row->failure,
                 row->status, r.accept ? "accept" : "no", r.reply.code, r.reply.esc, r.reply.text,
                 r.why != NULL ? r.why : "(null)");
    /* a failure turned into an acceptance says so; nothing else does */
    bool says = strstr(r.why, "on_failure") != NULL;
    assert_int_equal(says, row->accept_on_failure && row->accept && strcmp(row->why, "2xx") != 0 &&
                               strcmp(row->why, "Smtphook-Reply") != 0);
}

static void test_decide_table(void **state)
{
    (void)state;
    const struct decide_row rows[] = {
        /* 2xx: accepted */
        F(NONE, 200, true, 250, "2.1.5", ok_text, "2xx"),
        F(NONE, 201, true, 250, "2.1.5", ok_text, "2xx"),
        F(NONE, 204, true, 250, "2.1.5", ok_text, "2xx"),
        F(NONE, 299, true, 250, "2.1.5", ok_text, "2xx"),
        /* user unknown */
        F(NONE, 404, false, 550, "5.1.1", unknown_text, "404"),
        F(NONE, 410, false, 550, "5.1.1", unknown_text, "410"),
        /* a final non-2xx status decides even when the transfer broke after the head */
        F(HTTP_FAILURE_OTHER, 404, false, 550, "5.1.1", unknown_text, "404"),
        /* every other status is a failure */
        F(NONE, 403, false, 451, "4.3.0", failed_text, "4xx other"),
        F(NONE, 400, false, 451, "4.3.0", failed_text, "4xx other"),
        F(NONE, 401, false, 451, "4.3.0", failed_text, "4xx other"),
        F(NONE, 429, false, 451, "4.3.0", failed_text, "4xx other"),
        F(NONE, 500, false, 451, "4.3.0", failed_text, "5xx"),
        F(NONE, 503, false, 451, "4.3.0", failed_text, "5xx"),
        F(NONE, 599, false, 451, "4.3.0", failed_text, "5xx"),
        F(NONE, 301, false, 451, "4.3.0", failed_text, "redirect"),
        F(NONE, 302, false, 451, "4.3.0", failed_text, "redirect"),
        F(NONE, 308, false, 451, "4.3.0", failed_text, "redirect"),
        F(NONE, 100, false, 451, "4.3.0", failed_text, "1xx"),
        F(NONE, 600, false, 451, "4.3.0", failed_text, "outside"),
        F(NONE, 0, false, 451, "4.3.0", failed_text, "request failed"),
        /* no response */
        F(HTTP_FAILURE_TIMEOUT, 0, false, 451, "4.3.0", failed_text, "timeout"),
        F(HTTP_FAILURE_CONNECT, 0, false, 451, "4.3.0", failed_text, "connection"),
        F(HTTP_FAILURE_DNS, 0, false, 451, "4.3.0", failed_text, "resolve"),
        F(HTTP_FAILURE_TLS, 0, false, 451, "4.3.0", failed_text, "TLS"),
        F(HTTP_FAILURE_SEND, 0, false, 451, "4.3.0", failed_text, "not sent"),
        F(HTTP_FAILURE_OTHER, 0, false, 451, "4.3.0", failed_text, "request failed"),
        /* a 2xx whose transfer broke is no acceptance */
        F(HTTP_FAILURE_OTHER, 200, false, 451, "4.3.0", failed_text, "request failed"),
        F(HTTP_FAILURE_TIMEOUT, 200, false, 451, "4.3.0", failed_text, "timeout"),
        /* a head cut off: neither an acceptance nor a refusal (RFC 9112 §8) */
        {NONE, 200, false, NULL, false, false, false, 451, "4.3.0", failed_text, "cut off"},
        {NONE, 404, false, NULL, false, false, false, 451, "4.3.0", failed_text, "cut off"},
        {NONE, 410, false, "550 5.1.1 gone", false, false, false, 451, "4.3.0", failed_text,
         "cut off"},
        {HTTP_FAILURE_TIMEOUT, 404, false, NULL, false, false, false, 451, "4.3.0", failed_text,
         "timeout"},

        /* Smtphook-Reply that agrees with the status class wins */
        {NONE, 200, true, "250 2.1.5 Welcome aboard", false, false, true, 250, "2.1.5",
         "Welcome aboard", "Smtphook-Reply"},
        {NONE, 202, true, "250 2.0.0 fine", false, false, true, 250, "2.0.0", "fine",
         "Smtphook-Reply"},
        {NONE, 404, true, "550 5.1.1 No such mailbox here", false, false, false, 550, "5.1.1",
         "No such mailbox here", "Smtphook-Reply"},
        {NONE, 403, true, "550 5.7.1 Not for you", false, false, false, 550, "5.7.1", "Not for you",
         "Smtphook-Reply"},
        {NONE, 503, true, "450 4.2.1 Mailbox busy", false, false, false, 450, "4.2.1",
         "Mailbox busy", "Smtphook-Reply"},
        {NONE, 302, true, "553 5.1.2 moved", false, false, false, 553, "5.1.2", "moved",
         "Smtphook-Reply"},
        /* invalid: the status's default */
        {NONE, 200, true, "250 Ok", false, false, true, 250, "2.1.5", ok_text, "2xx"},
        {NONE, 200, true, "", false, false, true, 250, "2.1.5", ok_text, "2xx"},
        {NONE, 404, true, "no such user", false, false, false, 550, "5.1.1", unknown_text, "404"},
        {NONE, 503, true, "421 4.3.2 closing", false, false, false, 451, "4.3.0", failed_text,
         "5xx"},
        {NONE, 200, true, "251 2.1.5 forwarded", false, false, true, 250, "2.1.5", ok_text, "2xx"},
        /* repeated: ignored */
        {NONE, 200, true, "250 2.1.5 first", true, false, true, 250, "2.1.5", ok_text, "2xx"},
        {NONE, 404, true, "550 5.1.1 first", true, false, false, 550, "5.1.1", unknown_text, "404"},
        /* disagreeing with the status class: ignored */
        {NONE, 200, true, "550 5.1.1 refused by a 200", false, false, true, 250, "2.1.5", ok_text,
         "2xx"},
        {NONE, 404, true, "250 2.1.5 accepted by a 404", false, false, false, 550, "5.1.1",
         unknown_text, "404"},
        {NONE, 500, true, "250 2.1.5 accepted by a 500", false, false, false, 451, "4.3.0",
         failed_text, "5xx"},
        /* the app's reply on a 2xx whose transfer broke: no answer at all */
        {HTTP_FAILURE_OTHER, 200, true, "250 2.1.5 hi", false, false, false, 451, "4.3.0",
         failed_text, "request failed"},

        /* on_failure "accept": failures become acceptances, answers stay */
        {HTTP_FAILURE_TIMEOUT, 0, false, NULL, false, true, true, 250, "2.1.5", ok_text, "timeout"},
        {HTTP_FAILURE_TLS, 0, false, NULL, false, true, true, 250, "2.1.5", ok_text, "TLS"},
        {NONE, 503, true, NULL, false, true, true, 250, "2.1.5", ok_text, "5xx"},
        {NONE, 403, true, NULL, false, true, true, 250, "2.1.5", ok_text, "4xx other"},
        {NONE, 404, false, NULL, false, true, true, 250, "2.1.5", ok_text, "cut off"},
        {NONE, 200, true, NULL, false, true, true, 250, "2.1.5", ok_text, "2xx"},
        {NONE, 404, true, NULL, false, true, false, 550, "5.1.1", unknown_text, "404"},
        {NONE, 410, true, NULL, false, true, false, 550, "5.1.1", unknown_text, "410"},
        {NONE, 503, true, "450 4.2.1 Mailbox busy", false, true, false, 450, "4.2.1",
         "Mailbox busy", "Smtphook-Reply"},
        {NONE, 503, true, "250 2.1.5 disagrees", false, true, true, 250, "2.1.5", ok_text, "5xx"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        expect_row(i, &rows[i]);
}

#undef F
#undef NONE

/* ---- fixture ------------------------------------------------------------------------------ */

/* What one check ended with. */
struct slot {
    struct fixture *f;            /* owner */
    unsigned calls;               /* done callbacks */
    struct rcpt_check_result res; /* the last one's result */
};

struct fixture {
    uv_loop_t loop;                    /* everything runs here */
    struct http_client *hc;            /* the client under the checker */
    struct http_test_server srv;       /* the app */
    char url[96];                      /* its URL */
    struct config_header headers[2];   /* configured request headers */
    struct config_recipient_check cfg; /* hand-built configuration */
    struct rcpt_check *rc;             /* made at the first check */
    unsigned done_calls;               /* done callbacks of every slot */
    unsigned want_done;                /* for cond_done */
    struct slot many[EVICT_BATCH];     /* requests side by side */
    char rcpts[EVICT_BATCH][RCPT_BUF]; /* and their recipients */
};

static char ep_name[] = "recipient_check";
static char h1_name[] = "Authorization";
static char h1_value[] = "Bearer s3cret";
static char h2_name[] = "X-Tenant";
static char h2_value[] = "acme";

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(http_client_new(&f->loop, &f->hc), 0);
    f->headers[0].name = h1_name;
    f->headers[0].value = h1_value;
    f->headers[1].name = h2_name;
    f->headers[1].value = h2_value;
    f->cfg.enabled = true;
    f->cfg.http.name = ep_name;
    f->cfg.http.url = f->url;
    f->cfg.http.timeout_ms = 5000;
    f->cfg.http.connect_timeout_ms = 2000;
    f->cfg.http.headers = f->headers;
    f->cfg.http.n_headers = 2;
    f->cfg.cache_ms = 60000;
    f->cfg.accept_on_failure = false;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    rcpt_check_free(f->rc); /* before the client: it cancels the checker's requests */
    http_client_close(f->hc);
    if (f->srv.loop != NULL)
        http_test_server_stop(&f->srv);
    run_loop_finish(&f->loop);
    free(f);
    return 0;
}

/* use_server - the app: a new server answering with status (0: holding every request). */
static void use_server(struct fixture *f, int status)
{
    http_test_server_start(&f->srv, &f->loop, status);
    snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d/check", f->srv.port);
}

/* checker - the checker under test, made at the first use (after the test's settings). */
static struct rcpt_check *checker(struct fixture *f)
{
    if (f->rc == NULL)
        assert_int_equal(rcpt_check_new(&f->loop, f->hc, &f->cfg, &f->rc), 0);
    return f->rc;
}

/* Conditions the loop is run until (run_loop_until), each over the fixture. */

static int cond_done(const void *arg)
{
    const struct fixture *f = arg;
    return f->done_calls >= f->want_done;
}

static int cond_one_held(const void *arg)
{
    const struct fixture *f = arg;
    return f->srv.held >= 1;
}

static int cond_all_held(const void *arg)
{
    const struct fixture *f = arg;
    return f->srv.held >= CONCURRENT;
}

/* on_done - rcpt_check_done_fn: a copy of the result. */
static void on_done(void *arg, const struct rcpt_check_result *r)
{
    struct slot *s = arg;
    s->calls++;
    s->res = *r;
    s->f->done_calls++;
}

/* on_done_never - for requests that must not complete. */
static void on_done_never(void *arg, const struct rcpt_check_result *r)
{
    (void)arg;
    (void)r;
    fail_msg("done called for a cancelled check");
}

/* query - a check of rcpt from sender, from a plaintext client. */
static struct rcpt_check_query query(const char *rcpt, const char *sender)
{
    struct rcpt_check_query q;
    memset(&q, 0, sizeof(q));
    q.recipient = rcpt;
    q.sender = sender;
    q.client_address = "192.0.2.7";
    q.client_port = 40001;
    q.helo = "client.example.org";
    return q;
}

/* ask - check rcpt from sender to the end: 1 when the cache answered (no callback), 0 when
 * a request did (one callback, never from inside rcpt_check_start). *res gets the verdict. */
static int ask(struct fixture *f, const char *rcpt, const char *sender,
               struct rcpt_check_result *res)
{
    struct rcpt_check_query q = query(rcpt, sender);
    struct slot s;
    memset(&s, 0, sizeof(s));
    s.f = f;
    struct rcpt_check_request *req = NULL;
    unsigned before = f->done_calls;
    int rc = rcpt_check_start(checker(f), &q, on_done, &s, res, &req);
    assert_true(rc == 0 || rc == 1);
    assert_int_equal(f->done_calls, before);
    if (rc == 1) {
        assert_null(req);
        assert_true(res->cached);
        return 1;
    }
    assert_non_null(req);
    f->want_done = before + 1;
    assert_true(run_loop_until(&f->loop, cond_done, f, WAIT_MS));
    assert_int_equal(s.calls, 1);
    assert_false(s.res.cached);
    *res = s.res;
    return 0;
}

/* expect - the verdict and its reply. */
static void expect(const struct rcpt_check_result *r, bool accept, unsigned code, const char *esc,
                   const char *text)
{
    assert_int_equal(r->accept, accept);
    assert_int_equal(r->reply.code, code);
    assert_string_equal(r->reply.esc, esc);
    assert_string_equal(r->reply.text, text);
    assert_non_null(r->why);
}

/* ---- end to end --------------------------------------------------------------------------- */

static void test_e2e_accepted(void **state)
{
    struct fixture *f = *state;
    struct rcpt_check_result r;
    use_server(f, 200);
    assert_int_equal(ask(f, "bob@example.com", "alice@example.org", &r), 0);
    expect(&r, true, 250, "2.1.5", ok_text);
    assert_string_equal(r.why, "2xx");
    assert_int_equal(f->srv.requests, 1);
}

static void test_e2e_refused(void **state)
{
    struct fixture *f = *state;
    struct rcpt_check_result r;
    use_server(f, 404);
    assert_int_equal(ask(f, "nobody@example.com", "alice@example.org", &r), 0);
    expect(&r, false, 550, "5.1.1", unknown_text);
    f->srv.status = 410;
    assert_int_equal(ask(f, "gone@example.com", "alice@example.org", &r), 0);
    expect(&r, false, 550, "5.1.1", unknown_text);
    assert_string_equal(r.why, "410");
    assert_int_equal(f->srv.requests, 2);
}

/* An app that never answers: the check ends after timeout_ms, and a failure is not kept. */
static void test_e2e_timeout(void **state)
{
    struct fixture *f = *state;
    struct rcpt_check_result r;
    use_server(f, 0);
    f->cfg.http.timeout_ms = SHORT_MS;
    f->cfg.http.connect_timeout_ms = SHORT_MS;
    uv_update_time(&f->loop);
    uint64_t t0 = uv_now(&f->loop);
    assert_int_equal(ask(f, "bob@example.com", "alice@example.org", &r), 0);
    uint64_t took = uv_now(&f->loop) - t0;
    expect(&r, false, 451, "4.3.0", failed_text);
    assert_string_equal(r.why, "timeout");
    assert_true(took >= SHORT_MS - 50 && took < 4000);
    assert_int_equal(f->srv.requests, 1); /* it got the request, it just never answered */

    /* on_failure "accept": the same timeout accepts, and says why */
    f->cfg.accept_on_failure = true;
    assert_int_equal(ask(f, "bob@example.com", "alice@example.org", &r), 0);
    expect(&r, true, 250, "2.1.5", ok_text);
    assert_non_null(strstr(r.why, "timeout"));
    assert_non_null(strstr(r.why, "on_failure"));
    assert_int_equal(f->srv.requests, 2); /* asked again: neither was cached */
}

static void test_e2e_connection_refused(void **state)
{
    struct fixture *f = *state;
    struct rcpt_check_result r;
    use_server(f, 200); /* a port that was just free: bind, note it, close */
    http_test_server_stop(&f->srv);
    f->srv.loop = NULL;
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(ask(f, "bob@example.com", "alice@example.org", &r), 0);
    expect(&r, false, 451, "4.3.0", failed_text);
    assert_string_equal(r.why, "connection failed");
}

/* The request: POST with the JSON of rcpt_check.h, its type and length, the configured
 * headers, and nothing curl adds uninvited. */
static void test_e2e_request(void **state)
{
    struct fixture *f = *state;
    struct rcpt_check_result r;
    char v[1024];
    use_server(f, 200);
    assert_int_equal(ask(f, "bob@example.com", "", &r), 0);
    static const char golden[] = "{\"recipient\":\"bob@example.com\",\"sender\":\"\","
                                 "\"client\":{\"address\":\"192.0.2.7\",\"port\":40001,"
                                 "\"helo\":\"client.example.org\"},\"tls\":null}";
    assert_int_equal(f->srv.body.len, strlen(golden));
    assert_memory_equal(f->srv.body.data, golden, strlen(golden));
    static const char line[] = "POST /check HTTP/1.1\r\n";
    assert_true(f->srv.head.len > strlen(line));
    assert_memory_equal(f->srv.head.data, line, strlen(line));
    assert_string_equal(http_test_header(&f->srv.head, "Content-Type", v, sizeof(v)),
                        "application/json");
    char length[32];
    snprintf(length, sizeof(length), "%zu", strlen(golden));
    assert_string_equal(http_test_header(&f->srv.head, "Content-Length", v, sizeof(v)), length);
    assert_string_equal(http_test_header(&f->srv.head, "Authorization", v, sizeof(v)),
                        "Bearer s3cret");
    assert_string_equal(http_test_header(&f->srv.head, "X-Tenant", v, sizeof(v)), "acme");
    assert_null(http_test_header(&f->srv.head, "Expect", v, sizeof(v)));
    assert_null(http_test_header(&f->srv.head, "Transfer-Encoding", v, sizeof(v)));
    assert_null(http_test_header(&f->srv.head, "X-Smtphook-Envelope", v, sizeof(v)));

    /* every field, TLS and UTF-8 included: the body is payload's, byte for byte */
    struct envelope_tls tls;
    memset(&tls, 0, sizeof(tls));
    tls.version = "TLSv1.3";
    tls.cipher = "TLS_AES_128_GCM_SHA256";
    tls.sni = "mx.example.test";
    tls.peer_sha256 = "00ff";
    struct rcpt_check_query q = query("j\xc3\xb6rg@example.com", "Alice@Example.ORG");
    q.tls = &tls;
    q.helo = NULL;
    struct slot s;
    memset(&s, 0, sizeof(s));
    s.f = f;
    assert_int_equal(rcpt_check_start(checker(f), &q, on_done, &s, &r, NULL), 0);
    f->want_done = f->done_calls + 1;
    assert_true(run_loop_until(&f->loop, cond_done, f, WAIT_MS));
    char *want = NULL;
    assert_int_equal(payload_rcpt_check_json(q.recipient, q.sender, q.client_address, q.client_port,
                                             q.helo, q.tls, &want),
                     0);
    assert_non_null(strstr(want, "\"recipient\":\"j\\u00F6rg@example.com\""));
    assert_non_null(strstr(want, "\"sni\":\"mx.example.test\""));
    assert_int_equal(f->srv.body.len, strlen(want));
    assert_memory_equal(f->srv.body.data, want, strlen(want));
    free(want);
    assert_int_equal(f->srv.connections, 1); /* the connection was kept alive */
}

/* The same question again: the cache answers, without a request or a callback. */
static void test_e2e_cache_hit(void **state)
{
    struct fixture *f = *state;
    struct rcpt_check_result r;
    use_server(f, 404);
    assert_int_equal(ask(f, "nobody@example.com", "alice@example.org", &r), 0);
    expect(&r, false, 550, "5.1.1", unknown_text);
    memset(&r, 0, sizeof(r));
    assert_int_equal(ask(f, "nobody@example.com", "alice@example.org", &r), 1);
    expect(&r, false, 550, "5.1.1", unknown_text);
    assert_true(r.cached);
    assert_string_equal(r.why, "404");
    assert_int_equal(f->srv.requests, 1);
    assert_int_equal(f->done_calls, 1);
    /* the recipient is compared exactly: another case is another recipient */
    assert_int_equal(ask(f, "Nobody@example.com", "alice@example.org", &r), 0);
    assert_int_equal(f->srv.requests, 2);
    /* an acceptance is kept too */
    f->srv.status = 200;
    assert_int_equal(ask(f, "bob@example.com", "alice@example.org", &r), 0);
    assert_int_equal(ask(f, "bob@example.com", "alice@example.org", &r), 1);
    expect(&r, true, 250, "2.1.5", ok_text);
    assert_int_equal(f->srv.requests, 3);
    /* without hit the cache is not consulted, and the answer replaces the kept one */
    f->srv.status = 410;
    struct rcpt_check_query q = query("bob@example.com", "alice@example.org");
    struct slot s;
    memset(&s, 0, sizeof(s));
    s.f = f;
    assert_int_equal(rcpt_check_start(checker(f), &q, on_done, &s, NULL, NULL), 0);
    f->want_done = f->done_calls + 1;
    assert_true(run_loop_until(&f->loop, cond_done, f, WAIT_MS));
    assert_int_equal(ask(f, "bob@example.com", "alice@example.org", &r), 1);
    expect(&r, false, 550, "5.1.1", unknown_text);
    assert_string_equal(r.why, "410");
}

/* After cache_ms the app is asked again; cache_ms 0 keeps nothing. */
static void test_e2e_cache_expiry(void **state)
{
    struct fixture *f = *state;
    struct rcpt_check_result r;
    use_server(f, 200);
    f->cfg.cache_ms = 100;
    assert_int_equal(ask(f, "bob@example.com", "alice@example.org", &r), 0);
    assert_int_equal(ask(f, "bob@example.com", "alice@example.org", &r), 1);
    run_loop_for(&f->loop, 150);
    assert_int_equal(ask(f, "bob@example.com", "alice@example.org", &r), 0);
    assert_int_equal(ask(f, "bob@example.com", "alice@example.org", &r), 1);
    assert_int_equal(f->srv.requests, 2);

    rcpt_check_free(f->rc);
    f->rc = NULL;
    f->cfg.cache_ms = 0;
    assert_int_equal(ask(f, "bob@example.com", "alice@example.org", &r), 0);
    assert_int_equal(ask(f, "bob@example.com", "alice@example.org", &r), 0);
    assert_int_equal(f->srv.requests, 4);
}

/* What is never kept: failures (a cut-off head too), an app's temporary reply; an app's
 * permanent one is. */
static void test_e2e_not_cached(void **state)
{
    struct fixture *f = *state;
    struct rcpt_check_result r;
    use_server(f, 503);
    assert_int_equal(ask(f, "bob@example.com", "alice@example.org", &r), 0);
    expect(&r, false, 451, "4.3.0", failed_text);
    assert_int_equal(ask(f, "bob@example.com", "alice@example.org", &r), 0);
    assert_int_equal(f->srv.requests, 2);

    f->srv.extra = "Smtphook-Reply: 450 4.2.1 Mailbox busy, try later\r\n";
    assert_int_equal(ask(f, "bob@example.com", "alice@example.org", &r), 0);
    expect(&r, false, 450, "4.2.1", "Mailbox busy, try later");
    assert_int_equal(ask(f, "bob@example.com", "alice@example.org", &r), 0);
    assert_int_equal(f->srv.requests, 4);

    f->srv.status = 403;
    f->srv.extra = "Smtphook-Reply: 550 5.7.1 Not accepting mail for this one\r\n";
    assert_int_equal(ask(f, "bob@example.com", "alice@example.org", &r), 0);
    expect(&r, false, 550, "5.7.1", "Not accepting mail for this one");
    assert_int_equal(ask(f, "bob@example.com", "alice@example.org", &r), 1);
    expect(&r, false, 550, "5.7.1", "Not accepting mail for this one");
    assert_string_equal(r.why, "Smtphook-Reply");
    assert_int_equal(f->srv.requests, 5);

    /* a 404 cut off inside its head is no refusal, and not kept */
    static const char cut[] = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n";
    f->srv.extra = NULL;
    f->srv.script = cut;
    f->srv.script_len = strlen(cut);
    assert_int_equal(ask(f, "carol@example.com", "alice@example.org", &r), 0);
    expect(&r, false, 451, "4.3.0", failed_text);
    assert_string_equal(r.why, "response cut off");
    assert_int_equal(ask(f, "carol@example.com", "alice@example.org", &r), 0);
    assert_int_equal(f->srv.requests, 7);
}

/* The app's own texts, through curl: a 2xx with its 250 reply, and one that is ignored. */
static void test_e2e_app_reply(void **state)
{
    struct fixture *f = *state;
    struct rcpt_check_result r;
    use_server(f, 200);
    f->srv.extra = "Smtphook-Reply: 250 2.1.5 Welcome, Bob\r\n";
    assert_int_equal(ask(f, "bob@example.com", "alice@example.org", &r), 0);
    expect(&r, true, 250, "2.1.5", "Welcome, Bob");
    assert_int_equal(ask(f, "bob@example.com", "alice@example.org", &r), 1);
    expect(&r, true, 250, "2.1.5", "Welcome, Bob");

    /* disagreeing with the status: ignored (and a warning logged), the 404 decides */
    f->srv.status = 404;
    f->srv.extra = "Smtphook-Reply: 250 2.1.5 but a 404\r\n";
    assert_int_equal(ask(f, "carol@example.com", "alice@example.org", &r), 0);
    expect(&r, false, 550, "5.1.1", unknown_text);
    /* repeated: ignored */
    f->srv.extra = "Smtphook-Reply: 550 5.1.1 one\r\nSmtphook-Reply: 550 5.1.1 two\r\n";
    assert_int_equal(ask(f, "dave@example.com", "alice@example.org", &r), 0);
    expect(&r, false, 550, "5.1.1", unknown_text);
}

/* The key holds the sender's domain, without case, and the recipient: another domain is
 * another question; the null sender and a sender without a domain share "". */
static void test_e2e_sender_domain(void **state)
{
    struct fixture *f = *state;
    struct rcpt_check_result r;
    use_server(f, 200);
    const char *rcpt = "bob@example.com";
    assert_int_equal(ask(f, rcpt, "alice@a.example", &r), 0);
    assert_int_equal(ask(f, rcpt, "carol@A.EXAMPLE", &r), 1);
    assert_int_equal(ask(f, rcpt, "\"x@b.example\"@a.example", &r), 1); /* the last '@' */
    assert_int_equal(ask(f, rcpt, "alice@b.example", &r), 0);
    assert_int_equal(ask(f, rcpt, "alice@b.example", &r), 1);
    assert_int_equal(ask(f, rcpt, "", &r), 0);
    assert_int_equal(ask(f, rcpt, "postmaster", &r), 1);
    assert_int_equal(ask(f, rcpt, NULL, &r), 1);
    /* domain and recipient stay apart: these two would run together as "a.examplebob@x" */
    assert_int_equal(ask(f, "bob@x.example", "s@a.example", &r), 0);
    assert_int_equal(ask(f, "ob@x.example", "s@a.exampleb", &r), 0);
    assert_int_equal(f->srv.requests, 5);
}

/* start_batch - checks of rcpts[0, n) at once, each with its slot. */
static void start_batch(struct fixture *f, size_t n, const char *sender)
{
    for (size_t i = 0; i < n; i++) {
        struct rcpt_check_query q = query(f->rcpts[i], sender);
        struct rcpt_check_result hit;
        memset(&f->many[i], 0, sizeof(f->many[i]));
        f->many[i].f = f;
        assert_int_equal(rcpt_check_start(checker(f), &q, on_done, &f->many[i], &hit, NULL), 0);
    }
}

/* The oldest answer goes when RCPT_CHECK_CACHE_MAX are kept, whatever was looked up since;
 * lookups do not reorder (first in, first out). */
static void test_e2e_eviction(void **state)
{
    struct fixture *f = *state;
    struct rcpt_check_result r;
    char rcpt[RCPT_BUF];
    log_set_level(LOG_LEVEL_WARN); /* ten thousand debug lines say nothing */
    use_server(f, 200);
    const char *sender = "alice@example.org";
    /* u0 to u3 first, one after the other, so their order is known; then the rest,
     * EVICT_BATCH at a time (answers within a batch come in any order) */
    for (unsigned i = 0; i < 4; i++) {
        snprintf(rcpt, sizeof(rcpt), "u%u@example.com", i);
        assert_int_equal(ask(f, rcpt, sender, &r), 0);
    }
    for (unsigned i = 4; i <= RCPT_CHECK_CACHE_MAX;) {
        size_t n = 0;
        for (; n < EVICT_BATCH && i <= RCPT_CHECK_CACHE_MAX; n++, i++)
            snprintf(f->rcpts[n], sizeof(f->rcpts[n]), "u%u@example.com", i);
        f->want_done = f->done_calls + (unsigned)n;
        start_batch(f, n, sender);
        assert_true(run_loop_until(&f->loop, cond_done, f, WAIT_MS));
    }
    assert_int_equal(f->srv.requests, RCPT_CHECK_CACHE_MAX + 1);
    /* u0 went when u10000 came; every other one is kept (u1 looked up first: no reorder) */
    for (unsigned i = 1; i <= RCPT_CHECK_CACHE_MAX; i++) {
        snprintf(rcpt, sizeof(rcpt), "u%u@example.com", i);
        if (ask(f, rcpt, sender, &r) != 1)
            fail_msg("%s not cached", rcpt);
    }
    assert_int_equal(f->srv.requests, RCPT_CHECK_CACHE_MAX + 1);
    assert_int_equal(ask(f, "u0@example.com", sender, &r), 0); /* asked again: u1 goes */
    assert_int_equal(ask(f, "u2@example.com", sender, &r), 1);
    assert_int_equal(ask(f, "u1@example.com", sender, &r), 0); /* and now u2 */
    assert_int_equal(ask(f, "u3@example.com", sender, &r), 1);
    assert_int_equal(ask(f, "u2@example.com", sender, &r), 0); /* and u3 */
    assert_int_equal(ask(f, "u3@example.com", sender, &r), 0);
    assert_int_equal(ask(f, "u0@example.com", sender, &r), 1);
    assert_int_equal(ask(f, "u1@example.com", sender, &r), 1);
    assert_int_equal(f->srv.requests, RCPT_CHECK_CACHE_MAX + 5);
    log_set_level(LOG_LEVEL_DEBUG);
}

/* Cancelled before the answer: no callback, nothing left behind (the sanitizers check). */
static void test_e2e_cancel(void **state)
{
    struct fixture *f = *state;
    use_server(f, 0);
    struct rcpt_check_query q = query("bob@example.com", "alice@example.org");
    struct rcpt_check_result hit;
    struct rcpt_check_request *req = NULL;

    /* before the loop ever ran */
    assert_int_equal(rcpt_check_start(checker(f), &q, on_done_never, NULL, &hit, &req), 0);
    rcpt_check_cancel(req);

    /* while the app holds it */
    assert_int_equal(rcpt_check_start(checker(f), &q, on_done_never, NULL, &hit, &req), 0);
    assert_true(run_loop_until(&f->loop, cond_one_held, f, WAIT_MS));
    rcpt_check_cancel(req);
    rcpt_check_cancel(NULL);
    http_test_server_release(&f->srv, 200); /* an answer now reaches nobody */
    run_loop_for(&f->loop, 200);

    /* and freeing the checker cancels what still runs */
    f->srv.status = 0;
    assert_int_equal(rcpt_check_start(checker(f), &q, on_done_never, NULL, &hit, &req), 0);
    assert_int_equal(rcpt_check_start(checker(f), &q, on_done_never, NULL, &hit, NULL), 0);
    run_loop_for(&f->loop, 100);
    rcpt_check_free(f->rc);
    f->rc = NULL;
    run_loop_for(&f->loop, 100);
    assert_int_equal(f->done_calls, 0);
    /* the answer to a cancelled check was never kept */
    struct rcpt_check_result r;
    f->srv.status = 404;
    assert_int_equal(ask(f, "bob@example.com", "alice@example.org", &r), 0);
}

/* Several checks at once: all are out at the same time, and each gets its answer. */
static void test_e2e_concurrent(void **state)
{
    struct fixture *f = *state;
    use_server(f, 0);
    for (unsigned i = 0; i < CONCURRENT; i++)
        snprintf(f->rcpts[i], sizeof(f->rcpts[i]), "user%u@example.com", i);
    f->want_done = CONCURRENT;
    start_batch(f, CONCURRENT, "alice@example.org");
    assert_true(run_loop_until(&f->loop, cond_all_held, f, WAIT_MS));
    assert_int_equal(f->done_calls, 0);
    assert_int_equal(f->srv.connections, CONCURRENT);
    http_test_server_release(&f->srv, 200);
    assert_true(run_loop_until(&f->loop, cond_done, f, WAIT_MS));
    for (unsigned i = 0; i < CONCURRENT; i++) {
        assert_int_equal(f->many[i].calls, 1);
        expect(&f->many[i].res, true, 250, "2.1.5", ok_text);
    }
    struct rcpt_check_result r;
    assert_int_equal(ask(f, "user5@example.com", "alice@example.org", &r), 1);
}

/* What rcpt_check_start refuses, and what it leaves then. */
static void test_start_errors(void **state)
{
    struct fixture *f = *state;
    use_server(f, 200);
    struct rcpt_check_query q = query("bob@example.com", "alice@example.org");
    struct rcpt_check_result hit;
    struct rcpt_check_request *req = (struct rcpt_check_request *)1;
    assert_int_equal(rcpt_check_start(NULL, &q, on_done_never, NULL, &hit, &req), SH_EINVAL);
    assert_null(req);
    assert_int_equal(rcpt_check_start(checker(f), NULL, on_done_never, NULL, &hit, NULL),
                     SH_EINVAL);
    assert_int_equal(rcpt_check_start(checker(f), &q, NULL, NULL, &hit, NULL), SH_EINVAL);
    q.recipient = NULL;
    assert_int_equal(rcpt_check_start(checker(f), &q, on_done_never, NULL, &hit, NULL), SH_EINVAL);
    q.recipient = "b\xffo@example.com"; /* not UTF-8: no JSON for it */
    assert_int_equal(rcpt_check_start(checker(f), &q, on_done_never, NULL, &hit, NULL), SH_EINVAL);
    run_loop_for(&f->loop, 50);
    assert_int_equal(f->srv.requests, 0);
    rcpt_check_free(NULL);
}

int main(void)
{
    log_set_level(LOG_LEVEL_DEBUG); /* the log lines are built in every test */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decide_table),
        cmocka_unit_test_setup_teardown(test_e2e_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_e2e_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_e2e_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_e2e_connection_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_e2e_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_e2e_cache_hit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_e2e_cache_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_e2e_not_cached, setup, teardown),
        cmocka_unit_test_setup_teardown(test_e2e_app_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_e2e_sender_domain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_e2e_eviction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_e2e_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_e2e_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
