/* http_test_server.c - the tests' HTTP/1.1 server on the libuv loop (see http_test_server.h).
 *
 * One read buffer per connection; complete requests are taken out of it as they arrive,
 * so pipelined and split requests both work. Never a thread: everything runs from the
 * test's loop, like the client under test. */
#include "http_test_server.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <strings.h>

#define HTTP_TEST_ANSWER_MAX 1024u /* bytes of a status answer, extra lines included */

/* One accepted connection. */
struct http_test_conn {
    uv_tcp_t tcp;                 /* the connection */
    struct http_test_server *srv; /* owner */
    struct buf in;                /* bytes not yet parsed */
    int answered;                 /* the current request was answered early */
    unsigned held;                /* requests read and not answered yet */
    unsigned requests;            /* complete requests read on this connection */
    struct http_test_conn *next;  /* open list */
    struct http_test_conn *prev;  /* open list */
};

/* One response on its way out. */
struct swrite {
    uv_write_t req;                  /* libuv write */
    char text[HTTP_TEST_ANSWER_MAX]; /* the response */
};

static void sconn_on_close(uv_handle_t *h)
{
    struct http_test_conn *c = h->data;
    buf_free(&c->in);
    free(c);
}

/* sconn_close - unlink and close one connection. */
static void sconn_close(struct http_test_conn *c)
{
    struct http_test_server *srv = c->srv;
    srv->held -= c->held;
    c->held = 0;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    uv_close((uv_handle_t *)&c->tcp, sconn_on_close);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)h;
    b->base = malloc(suggested);
    b->len = b->base != NULL ? suggested : 0;
}

static void on_written(uv_write_t *req, int status)
{
    (void)status;
    free(req->data);
}

/* find - memmem for a NUL-terminated needle. */
static const char *find(const char *hay, size_t len, const char *needle)
{
    return memmem(hay, len, needle, strlen(needle));
}

/* content_length - the Content-Length value in a request head, -1 without one. */
static long content_length(const char *head, size_t len)
{
    static const char name[] = "\r\ncontent-length:";
    for (size_t i = 0; i + sizeof(name) - 1 < len; i++) {
        if (strncasecmp(head + i, name, sizeof(name) - 1) == 0)
            return strtol(head + i + sizeof(name) - 1, NULL, 10);
    }
    return -1;
}

/* sconn_answer - write the response (keep-alive), with the server's extra lines. */
static void sconn_answer(struct http_test_conn *c)
{
    struct swrite *w = calloc(1, sizeof(*w));
    assert_non_null(w);
    const char *extra = c->srv->extra != NULL ? c->srv->extra : "";
    int n = snprintf(w->text, sizeof(w->text),
                     "HTTP/1.1 %d Test\r\nContent-Length: 2\r\nConnection: keep-alive\r\n"
                     "%s\r\nok",
                     c->srv->status, extra);
    assert_true(n > 0 && (size_t)n < sizeof(w->text));
    uv_buf_t b = uv_buf_init(w->text, (unsigned)n);
    w->req.data = w;
    assert_int_equal(uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written), 0);
}

/* One scripted response on its way out: the connection closes once it is written. */
struct sscript {
    uv_write_t req;           /* libuv write */
    struct http_test_conn *c; /* the connection to close */
    char data[];              /* the response bytes */
};

static void on_script_written(uv_write_t *req, int status)
{
    struct sscript *w = req->data;
    /* A write cancelled by http_test_server_stop finds its connection closing already. */
    if (status == 0 && !uv_is_closing((uv_handle_t *)&w->c->tcp))
        sconn_close(w->c);
    free(w);
}

/* sconn_script - write the server's script as it is, then close. */
static void sconn_script(struct http_test_conn *c)
{
    const struct http_test_server *srv = c->srv;
    struct sscript *w = malloc(sizeof(*w) + srv->script_len);
    assert_non_null(w);
    w->c = c;
    memcpy(w->data, srv->script, srv->script_len);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)srv->script_len);
    w->req.data = w;
    assert_int_equal(uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_script_written), 0);
}

/* sconn_parse - take every complete request out of c->in and answer it, after the body
 * or (early) right after the head, or hold it (status 0); with a script, answer the first
 * one and stop. */
static void sconn_parse(struct http_test_conn *c)
{
    struct http_test_server *srv = c->srv;
    for (;;) {
        const char *end = find(c->in.data, c->in.len, "\r\n\r\n");
        if (end == NULL)
            return;
        size_t head_len = (size_t)(end - c->in.data) + 4;
        if (srv->early && srv->status != 0 && !c->answered) {
            sconn_answer(c);
            c->answered = 1;
        }
        long cl = content_length(c->in.data, head_len);
        size_t body_len = cl > 0 ? (size_t)cl : 0;
        if (c->in.len < head_len + body_len)
            return;
        buf_reset(&srv->head);
        buf_reset(&srv->body);
        assert_int_equal(buf_append(&srv->head, c->in.data, head_len), 0);
        assert_int_equal(buf_append(&srv->body, c->in.data + head_len, body_len), 0);
        buf_consume(&c->in, head_len + body_len);
        srv->requests++;
        if (++c->requests == srv->close_at) {
            sconn_close(c);
            return;
        }
        if (srv->script != NULL) {
            sconn_script(c);
            return;
        }
        if (srv->status != 0 && !c->answered)
            sconn_answer(c);
        else if (srv->status == 0) {
            c->held++;
            srv->held++;
        }
        c->answered = 0;
    }
}

static void sconn_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct http_test_conn *c = s->data;
    if (n < 0) {
        sconn_close(c);
    } else if (n > 0) {
        assert_int_equal(buf_append(&c->in, b->base, (size_t)n), 0);
        sconn_parse(c);
    }
    free(b->base);
}

static void server_on_connection(uv_stream_t *listener, int status)
{
    struct http_test_server *srv = listener->data;
    assert_int_equal(status, 0);
    struct http_test_conn *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    c->srv = srv;
    uv_tcp_init(srv->loop, &c->tcp);
    c->tcp.data = c;
    assert_int_equal(uv_accept(listener, (uv_stream_t *)&c->tcp), 0);
    c->next = srv->conns;
    if (srv->conns != NULL)
        srv->conns->prev = c;
    srv->conns = c;
    srv->connections++;
    assert_int_equal(uv_read_start((uv_stream_t *)&c->tcp, on_alloc, sconn_on_read), 0);
}

/* http_test_server_start - see http_test_server.h. */
void http_test_server_start(struct http_test_server *srv, uv_loop_t *loop, int status)
{
    memset(srv, 0, sizeof(*srv));
    srv->loop = loop;
    srv->status = status;
    struct sockaddr_in addr;
    assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &addr), 0);
    assert_int_equal(uv_tcp_init(loop, &srv->listener), 0);
    srv->listener.data = srv;
    assert_int_equal(uv_tcp_bind(&srv->listener, (const struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&srv->listener, 128, server_on_connection), 0);
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    assert_int_equal(uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&bound, &len), 0);
    srv->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
}

/* http_test_server_release - see http_test_server.h. */
void http_test_server_release(struct http_test_server *srv, int status)
{
    srv->status = status;
    for (struct http_test_conn *c = srv->conns; c != NULL; c = c->next) {
        for (; c->held > 0; c->held--) {
            sconn_answer(c);
            srv->held--;
        }
    }
}

/* http_test_server_drop - see http_test_server.h. */
void http_test_server_drop(struct http_test_server *srv)
{
    while (srv->conns != NULL)
        sconn_close(srv->conns);
}

/* http_test_server_stop - see http_test_server.h. */
void http_test_server_stop(struct http_test_server *srv)
{
    if (!uv_is_closing((uv_handle_t *)&srv->listener))
        uv_close((uv_handle_t *)&srv->listener, NULL);
    while (srv->conns != NULL)
        sconn_close(srv->conns);
    buf_free(&srv->head);
    buf_free(&srv->body);
}

/* http_test_header - see http_test_server.h. */
char *http_test_header(const struct buf *head, const char *name, char *dst, size_t dstlen)
{
    size_t n = strlen(name);
    const char *p = head->data;
    const char *end = head->data + head->len;
    while (p < end) {
        const char *eol = find(p, (size_t)(end - p), "\r\n");
        if (eol == NULL)
            break;
        if ((size_t)(eol - p) > n && strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1;
            while (v < eol && *v == ' ')
                v++;
            size_t len = (size_t)(eol - v) < dstlen - 1 ? (size_t)(eol - v) : dstlen - 1;
            memcpy(dst, v, len);
            dst[len] = '\0';
            return dst;
        }
        p = eol + 2;
    }
    return NULL;
}
