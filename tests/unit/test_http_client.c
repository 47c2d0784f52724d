/* test_http_client.c - http_client against the in-process HTTP/1.1 server (http_test_server.c)
 * on the same libuv loop: a body from memory and one read through the callback arrive byte
 * for byte, small (one send with the headers) and past curl's 64 KiB of a first send; a
 * request that a reused connection drops unanswered is sent again on a fresh one, its body
 * from the start; connections are reused, and one the endpoint closes while it is idle
 * leaves no busy poll handle behind. The response head itself is tested in
 * test_delivery.c. */
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
#include "smtphook/http_client.h"

#include "http_test_server.h"
#include "run_loop.h"

#define SMALL_BYTES 4096u   /* a body that goes out with the headers */
#define LARGE_BYTES 150000u /* past curl's MAX_INITIAL_POST_SIZE (64 KiB) */
#define WAIT_MS     10000u  /* longest a test waits for anything */

struct fixture {
    uv_loop_t loop;              /* everything runs here */
    struct http_client *hc;      /* the client under test */
    struct http_test_server srv; /* the endpoint */
    char url[64];                /* its URL */
    char *body;                  /* LARGE_BYTES of every byte value */
    unsigned done;               /* done callbacks */
    unsigned want_done;          /* for cond_done */
    struct http_response resp;   /* the last one's response (strings not kept) */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(http_client_new(&f->loop, &f->hc), 0);
    f->body = malloc(LARGE_BYTES);
    assert_non_null(f->body);
    for (size_t i = 0; i < LARGE_BYTES; i++) /* NUL, CR, LF, 8-bit: every byte value */
        f->body[i] = (char)(unsigned char)((i * 7 + i / 256) % 256);
    http_test_server_start(&f->srv, &f->loop, 200);
    snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d/hook", f->srv.port);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    http_client_close(f->hc);
    http_test_server_stop(&f->srv);
    run_loop_finish(&f->loop);
    free(f->body);
    free(f);
    return 0;
}

/* cond_done - done reached want_done. */
static int cond_done(const void *arg)
{
    const struct fixture *f = arg;
    return f->done >= f->want_done;
}

static void on_done(void *arg, const struct http_response *resp)
{
    struct fixture *f = arg;
    f->done++;
    f->resp = *resp;
    f->resp.error = NULL;
    f->resp.smtp_reply = NULL;
    f->resp.retry_after = NULL;
}

/* read_body - http_body_read_fn over the fixture's body. */
static int read_body(void *arg, uint64_t offset, char *dst, size_t len, size_t *got)
{
    const struct fixture *f = arg;
    *got = 0;
    if (offset >= LARGE_BYTES)
        return 0;
    if (len > LARGE_BYTES - offset)
        len = (size_t)(LARGE_BYTES - offset);
    memcpy(dst, f->body + offset, len);
    *got = len;
    return 0;
}

/* Where a request's body comes from. */
enum source {
    FROM_MEMORY = 0, /* http_request_opts.body */
    FROM_CALLBACK,   /* http_request_opts.body_read */
};

/* post - one POST of the first size bytes of the body; waits for its done callback and
 * checks that the server got exactly those bytes and that curl says it sent them all. */
static void post(struct fixture *f, enum source from, size_t size)
{
    struct http_request_opts o;
    memset(&o, 0, sizeof(o));
    o.url = f->url;
    o.body_size = size;
    if (from == FROM_MEMORY) {
        o.body = f->body;
    } else {
        o.body_read = read_body;
        o.body_arg = f;
    }
    o.timeout_ms = 5000;
    o.connect_timeout_ms = 1000;
    unsigned before = f->done;
    assert_int_equal(http_request_start(f->hc, &o, on_done, f, NULL), 0);
    assert_int_equal(f->done, before); /* never synchronously */
    f->want_done = before + 1;
    assert_true(run_loop_until(&f->loop, cond_done, f, WAIT_MS));
    assert_int_equal(f->resp.failure, HTTP_FAILURE_NONE);
    assert_int_equal(f->resp.status, 200);
    assert_true(f->resp.headers_complete);
    assert_int_equal(f->resp.body_sent, size);
    assert_int_equal(f->srv.body.len, size);
    if (size > 0)
        assert_memory_equal(f->srv.body.data, f->body, size);
    char v[32], want[32];
    snprintf(want, sizeof(want), "%zu", size);
    assert_string_equal(http_test_header(&f->srv.head, "Content-Length", v, sizeof(v)), want);
    assert_null(http_test_header(&f->srv.head, "Expect", v, sizeof(v)));
}

static void test_body_from_memory(void **state)
{
    struct fixture *f = *state;
    post(f, FROM_MEMORY, SMALL_BYTES);
    post(f, FROM_MEMORY, LARGE_BYTES);
    post(f, FROM_MEMORY, 0);
    assert_int_equal(f->srv.requests, 3);
    assert_int_equal(f->srv.connections, 1); /* kept alive */
}

static void test_body_through_callback(void **state)
{
    struct fixture *f = *state;
    post(f, FROM_CALLBACK, SMALL_BYTES);
    post(f, FROM_CALLBACK, LARGE_BYTES);
    assert_int_equal(f->srv.requests, 2);
    assert_int_equal(f->srv.connections, 1);
}

static void test_no_body(void **state)
{
    struct fixture *f = *state;
    struct http_request_opts o;
    memset(&o, 0, sizeof(o));
    o.url = f->url;
    o.body_size = 1; /* a body but no source */
    assert_int_equal(http_request_start(f->hc, &o, on_done, f, NULL), SH_EINVAL);
}

/* resent - the second request on a kept-alive connection is dropped unanswered: curl sends
 * it again on a fresh connection, its body from the first byte. */
static void resent(struct fixture *f, enum source from, size_t size)
{
    f->srv.close_at = 2;
    post(f, from, size);
    post(f, from, size); /* read twice: on the dropped connection, then on the new one */
    assert_int_equal(f->srv.requests, 3);
    assert_int_equal(f->srv.connections, 2);
}

static void test_resent_from_memory_small(void **state)
{
    resent(*state, FROM_MEMORY, SMALL_BYTES);
}

static void test_resent_from_memory_large(void **state)
{
    resent(*state, FROM_MEMORY, LARGE_BYTES);
}

static void test_resent_through_callback(void **state)
{
    resent(*state, FROM_CALLBACK, LARGE_BYTES);
}

static void on_turn(uv_check_t *h)
{
    (*(unsigned *)h->data)++;
}

/* turns - loop iterations in ms of loop time with nothing to do for the client. */
static unsigned turns(struct fixture *f, uint64_t ms)
{
    unsigned n = 0;
    uv_check_t check;
    struct run_loop_guard guard;
    uv_check_init(&f->loop, &check);
    check.data = &n;
    uv_check_start(&check, on_turn);
    run_loop_guard_start(&guard, &f->loop, ms);
    while (!guard.expired)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&check, NULL);
    run_loop_guard_close(&guard);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    return n;
}

/* test_idle_connection_closed - the endpoint closes a kept-alive connection between two
 * requests: the poll handle kept for it does not spin on the dead socket, and the next
 * request goes out on a new connection. */
static void test_idle_connection_closed(void **state)
{
    struct fixture *f = *state;
    post(f, FROM_MEMORY, SMALL_BYTES);
    http_test_server_drop(&f->srv);
    assert_true(turns(f, 200) < 50); /* a handful: the close, the guard */
    post(f, FROM_MEMORY, SMALL_BYTES);
    assert_int_equal(f->srv.connections, 2);
}

/* test_many_requests_one_connection - requests one after the other reuse the connection. */
static void test_many_requests_one_connection(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 20; i++)
        post(f, i % 2 == 0 ? FROM_MEMORY : FROM_CALLBACK, SMALL_BYTES);
    assert_int_equal(f->srv.requests, 20);
    assert_int_equal(f->srv.connections, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_body_from_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_through_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resent_from_memory_small, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resent_from_memory_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resent_through_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_connection_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_requests_one_connection, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
