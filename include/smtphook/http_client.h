/* http_client.h - HTTP requests on the libuv loop through libcurl's multi-socket API.
 *
 * One uv_poll_t per socket, kept while its connection waits for reuse, and one uv_timer_t
 * for curl's timeout; no threads. Connections are kept alive and reused across requests.
 * Only http_client.c includes curl. Redirects are never followed: a 3xx is returned as the
 * status. https:// always verifies the peer's certificate and host name, with TLS 1.2 at
 * least; nothing can turn that off.
 *
 * Of the response only this is kept: the final status, whether the final response's header
 * section ended with its empty line (libcurl reports a response cut off inside its headers
 * as a success), and the raw values of two of its headers, Smtphook-Reply and Retry-After.
 * Interim 1xx responses and trailers are skipped; the body is discarded. Memory per request
 * is fixed whatever the endpoint sends. */
#ifndef SMTPHOOK_HTTP_CLIENT_H
#define SMTPHOOK_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define HTTP_SMTP_REPLY_MAX  512u /* longest Smtphook-Reply value kept, in bytes */
#define HTTP_RETRY_AFTER_MAX 64u  /* longest Retry-After value kept, in bytes */

struct http_client;
struct http_request;

/* Why a request ended without an HTTP status. */
enum http_failure {
    HTTP_FAILURE_NONE = 0, /* a response arrived: see status */
    HTTP_FAILURE_TIMEOUT,  /* timeout_ms or connect_timeout_ms passed */
    HTTP_FAILURE_CONNECT,  /* connection refused, reset, unreachable */
    HTTP_FAILURE_DNS,      /* name did not resolve */
    HTTP_FAILURE_TLS,      /* handshake or certificate verification failed */
    HTTP_FAILURE_SEND,     /* the body could not be read or sent */
    HTTP_FAILURE_OTHER,    /* anything else curl reports */
};

/* Reads body bytes at an offset; returns 0 and *got (0 at the end) or a negative error.
 * A streamed body may also return SH_EAGAIN: nothing more yet (see http_request_resume). */
typedef int (*http_body_read_fn)(void *arg, uint64_t offset, char *dst, size_t len, size_t *got);

/* The trailer lines of a streamed request, asked for once its body has ended: *n
 * "Name: value" strings, valid during the call. */
typedef const char *const *(*http_trailers_fn)(void *arg, size_t *n);

struct http_request_opts {
    const char *url;             /* http:// or https:// */
    const char *const *headers;  /* "Name: value" lines */
    size_t n_headers;            /* entries in headers */
    uint64_t body_size;          /* Content-Length */
    const char *body;            /* the body in memory (body_size bytes, unchanged until done
                                  * or cancel), or NULL: read through body_read */
    http_body_read_fn body_read; /* body source without body */
    void *body_arg;              /* passed to body_read */
    uint64_t timeout_ms;         /* whole request */
    uint64_t connect_timeout_ms; /* connection set-up */
    const char *ca_file;         /* https: trust only the CAs in this PEM file; NULL: system's */
    const char *client_cert;     /* https: client certificate (PEM) for mutual TLS, or NULL */
    const char *client_key;      /* https: its private key (PEM); set with client_cert */
    bool stream;                 /* the body is sent as body_read gives it, its size not known
                                  * in advance: chunked (RFC 9112 §7.1), body_size ignored;
                                  * body_read says SH_EAGAIN while more is to come */
    http_trailers_fn trailers;   /* stream: the trailer section's lines, or NULL */
};

/* What a request ended with. The strings are valid during the done callback only. The header
 * values are those of the final response (a 1xx response's headers never show here), trimmed
 * of surrounding spaces and tabs, obs-folded lines joined with one space (RFC 9112 §5.2),
 * NUL-terminated; a value longer than its bound is dropped, never cut. They come from a header
 * section that may have been cut off: see headers_complete. */
struct http_response {
    enum http_failure failure; /* HTTP_FAILURE_NONE when status is valid */
    long status;               /* HTTP status code, 0 without a response */
    bool headers_complete;     /* the final response's header section ended with its empty
                                * line (RFC 9112 §2.1); false when the connection closed
                                * before it, which makes the response incomplete (§8) */
    uint64_t body_sent;        /* request body bytes curl sent */
    bool answered_mid_body;    /* streamed: the final response began before the body was
                                * read to its end (so the endpoint cannot have it all) */
    uint64_t elapsed_ms;       /* from start to completion */
    const char *error;         /* human-readable reason, NULL without a failure */
    const char *smtp_reply;    /* Smtphook-Reply value, NULL when absent or dropped */
    bool smtp_reply_repeated;  /* Smtphook-Reply came more than once: smtp_reply is the first */
    bool smtp_reply_dropped;   /* over HTTP_SMTP_REPLY_MAX bytes or with a NUL: smtp_reply NULL */
    const char *retry_after;   /* Retry-After value, NULL when absent or dropped */
    bool retry_after_repeated; /* Retry-After came more than once: retry_after is the first */
    bool retry_after_dropped;  /* over HTTP_RETRY_AFTER_MAX bytes or with a NUL: retry_after NULL */
};

typedef void (*http_done_fn)(void *arg, const struct http_response *resp);

/* http_client_new - a client on loop. 0 or SH_ENOMEM. */
int http_client_new(uv_loop_t *loop, struct http_client **out);

/* http_client_close - cancel every request (their callbacks are not called) and release
 * the client once its libuv handles are closed; the loop must run for that. NULL ignored. */
void http_client_close(struct http_client *hc);

/* http_request_start - start a POST. done is called exactly once, from the loop, unless the
 * request is cancelled first. *out (may be NULL) identifies the request for cancelling. */
int http_request_start(struct http_client *hc, const struct http_request_opts *opts,
                       http_done_fn done, void *arg, struct http_request **out);

/* http_probe - one blocking GET of url (for a health check from the command line, outside
 * any loop): 0 when it answered 2xx within timeout_ms, else SH_EIO with the reason in err. */
int http_probe(const char *url, long timeout_ms, char *err, size_t errlen);

/* http_request_cancel - stop a request; its done callback will not be called. A streamed
 * request's body is never terminated: the connection closes with the last chunk unsent, so
 * the receiver cannot take the body as complete. */
void http_request_cancel(struct http_request *req);

/* http_request_resume - a streamed request whose body had nothing more (SH_EAGAIN) has more,
 * or has ended: curl reads on. Harmless when it was not waiting. */
void http_request_resume(struct http_request *req);

#endif
