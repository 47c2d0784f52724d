/* http_test_server.h - a tiny HTTP/1.1 server on a test's libuv loop, on 127.0.0.1.
 *
 * For the unit tests that talk to an endpoint through http_client (test_delivery,
 * test_http_client, test_rcpt_check). It reads each request (head, then a Content-Length body) and
 * answers it with a status and keep-alive, or never, or holds it until released, or with raw
 * scripted bytes and a close, to see how http_client reads a response's head through curl.
 * It keeps the last request's head and body. Failures are cmocka assertions. */
#ifndef SMTPHOOK_TEST_HTTP_TEST_SERVER_H
#define SMTPHOOK_TEST_HTTP_TEST_SERVER_H

#include <stddef.h>
#include <uv.h>

#include "smtphook/buf.h"

struct http_test_conn;

struct http_test_server {
    uv_loop_t *loop;              /* the test's loop */
    uv_tcp_t listener;            /* 127.0.0.1:port */
    int port;                     /* bound port */
    int status;                   /* status to answer with; 0 = hold every request */
    const char *extra;            /* header lines ("Name: v\r\n" each) added to a status
                                   * answer, or NULL */
    int early;                    /* answer as soon as the head is in, before the body */
    const char *script;           /* instead of status: these raw bytes after the body, then
                                   * close */
    size_t script_len;            /* bytes in script */
    unsigned close_at;            /* close a connection, unanswered, once its close_at-th
                                   * request is in (0: never): a kept-alive connection that
                                   * dies under a reused request */
    unsigned connections;         /* accepted so far */
    unsigned requests;            /* complete requests seen */
    unsigned held;                /* requests seen and not answered (status 0) */
    struct buf head;              /* last request line and headers */
    struct buf body;              /* last request body */
    struct http_test_conn *conns; /* open connections */
};

/* http_test_server_start - listen on an ephemeral port of 127.0.0.1; answer with status
 * (0: hold every request). */
void http_test_server_start(struct http_test_server *srv, uv_loop_t *loop, int status);

/* http_test_server_release - answer every held request with status, and later ones too. */
void http_test_server_release(struct http_test_server *srv, int status);

/* http_test_server_drop - close every open connection (as an app server's idle reaper does)
 * and keep listening. */
void http_test_server_drop(struct http_test_server *srv);

/* http_test_server_stop - close the listener and every connection; buffers go now, handles
 * in their close callbacks (the loop must run). */
void http_test_server_stop(struct http_test_server *srv);

/* http_test_header - the value of header name in a request head (leading spaces skipped,
 * at most dstlen - 1 bytes) copied into dst, or NULL if absent. */
char *http_test_header(const struct buf *head, const char *name, char *dst, size_t dstlen);

#endif
