/* http_client.c - POST requests through libcurl's multi-socket API on the libuv loop.
 *
 * One curl multi handle (and so one connection cache: connections are reused), one uv_timer_t
 * for the timeout curl asks for and one uv_poll_t per socket, from curl's opening of it to
 * its closing (kept while a connection waits in the cache, so that reusing it costs no
 * epoll_ctl). The only module that includes curl; it must not include jansson or know about
 * SMTP. No threads, no signals.
 *
 * Re-entrancy rules kept here: curl_multi_socket_action is only called from libuv callbacks
 * (never from inside a curl callback), finished transfers are collected after every call,
 * and a done callback may start or cancel requests or close the client.
 *
 * The response's header lines are followed in CURLOPT_HEADERFUNCTION (struct http_head): curl
 * 7.88 ends a transfer whose connection closed inside the header section with CURLE_OK, so
 * only seeing the empty line tells a complete response from a cut-off one. Besides that line
 * only status lines and two fields are looked at. Memory stays fixed whatever the endpoint
 * sends: the callback keeps two bounded values, and curl bounds what it buffers itself - one
 * header line at CURL_MAX_HTTP_HEADER (100 KiB; a longer one fails with CURLE_OUT_OF_MEMORY)
 * and all header lines of a request, 1xx responses included, at 300 KiB (CURLE_RECV_ERROR
 * "Too large response headers": the CVE-2023-38039 fix, upstream since 8.3.0 and in Debian's
 * 7.88.1-10+deb12u3 and later). CURLOPT_MAXFILESIZE is no such bound: it limits the body,
 * which is discarded anyway. */
#include "smtphook/http_client.h"

#include <curl/curl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "smtphook/error.h"

#ifndef SMTPHOOK_VERSION
#define SMTPHOOK_VERSION "0.0.0"
#endif

#define HTTP_USER_AGENT   "smtphook/" SMTPHOOK_VERSION
#define HTTP_MAX_CONNECTS 64L          /* idle connections kept for reuse */
#define HTTP_PROTOCOLS    "http,https" /* never file://, ftp:// ... */
#define HTTP_NO_EXPECT    "Expect:"    /* no 100-continue round trip (RFC 9110 §10.1.1) */
/* A body over HTTP_BIG_BODY, and a stream, is read in HTTP_BIG_UPLOAD_BUFFER steps rather than
 * curl's 64 KiB: fewer reads and sends, and a stream that fell behind the sender catches up in
 * fewer turns of the loop. Small bodies keep curl's buffer (memory per request). */
#define HTTP_BIG_BODY          1048576L
#define HTTP_BIG_UPLOAD_BUFFER 524288L
#define HTTP_PEM               "PEM" /* file format of the client certificate and key */
#define HTTP_REASON_MAX        (CURL_ERROR_SIZE + 128) /* curl's class text + its detail */
#define HTTP_NO_FIELD          (-1)                    /* http_head.folding: no kept field */

/* The response headers that are kept, and the longest value kept of each. */
enum http_field_id {
    HTTP_FIELD_SMTP_REPLY = 0, /* Smtphook-Reply: the SMTP reply the web app chose */
    HTTP_FIELD_RETRY_AFTER,    /* Retry-After (RFC 9110 §10.2.3) */
    HTTP_FIELD_COUNT,
};

static const struct {
    const char *name; /* compared case-insensitively (RFC 9110 §5.1) */
    size_t max;       /* longest value kept; a longer one is dropped */
} http_fields[HTTP_FIELD_COUNT] = {
    [HTTP_FIELD_SMTP_REPLY] = {"Smtphook-Reply", HTTP_SMTP_REPLY_MAX},
    [HTTP_FIELD_RETRY_AFTER] = {"Retry-After", HTTP_RETRY_AFTER_MAX},
};

#define HTTP_FIELD_VALUE_MAX HTTP_SMTP_REPLY_MAX /* the largest max of http_fields */
_Static_assert(HTTP_RETRY_AFTER_MAX <= HTTP_FIELD_VALUE_MAX, "a kept value must fit");

/* One kept header of the current response. */
struct http_field {
    char value[HTTP_FIELD_VALUE_MAX + 1]; /* trimmed value, NUL-terminated */
    size_t len;                           /* bytes in value */
    unsigned seen;                        /* field lines with this name in the response */
    bool dropped;                         /* the value outgrew its max (or held a NUL) */
};

/* Where the response's header section stands (RFC 9112 §2.1: a status line, field lines,
 * an empty line). */
enum http_head_state {
    HTTP_HEAD_STATUS = 0, /* a status line comes next: at the start and after a 1xx block */
    HTTP_HEAD_FIELDS,     /* inside a block: field lines until the empty line */
    HTTP_HEAD_DONE,       /* the final block ended: what follows is body or trailers */
};

/* The header lines seen so far, as CURLOPT_HEADERFUNCTION passes them: one complete line a
 * call, the status line of every response first (interim 1xx ones too), the empty line last,
 * and a chunked body's trailer lines after it. */
struct http_head {
    enum http_head_state state;                 /* see above */
    long status;                                /* the status line's code, 0 if unreadable */
    bool interim;                               /* status is 1xx: its fields are not kept */
    int folding;                                /* kept field an obs-fold line continues */
    struct http_field fields[HTTP_FIELD_COUNT]; /* of the current block */
};

struct http_client {
    uv_loop_t *loop;               /* the loop every handle lives on */
    CURLM *multi;                  /* transfers and connection cache */
    uv_timer_t timer;              /* curl's timeout */
    struct http_request *requests; /* running requests, for cancel-all */
    struct http_poll *polls;       /* open (not closing) poll handles */
    unsigned open_handles;         /* timer + polls not yet through their close callback */
    int closing;                   /* http_client_close was called */
};

/* One socket's poll handle. A socket curl opens (http_open_socket_cb) gets its handle at
 * once, and the handle lives until curl closes the socket (http_close_socket_cb): curl
 * stops watching a kept-alive connection between requests (CURL_POLL_REMOVE) and watches
 * it again when it reuses it, and libuv's uv_poll_start and uv_poll_stop each cost epoll_ctl
 * calls, so the handle stays as it is across the gap and changes only when the events do.
 * A socket curl did not open through us (none in curl 7.88 for HTTP, but the API allows
 * it) gets a handle per announcement, closed at CURL_POLL_REMOVE: we would not hear of its
 * close, and a descriptor number curl reuses must get a fresh handle. */
struct http_poll {
    uv_poll_t poll;         /* watches fd */
    curl_socket_t fd;       /* the socket */
    struct http_client *hc; /* owner */
    int events;             /* UV_READABLE/UV_WRITABLE the handle is started with, 0: stopped */
    bool watched;           /* curl wants events: announced and not removed since */
    bool owned;             /* made at the socket's opening: lives until its close */
    struct http_poll *prev; /* open list */
    struct http_poll *next; /* open list */
};

struct http_request {
    struct http_client *hc;       /* owner */
    CURL *easy;                   /* the transfer */
    struct curl_slist *headers;   /* request headers, owned */
    http_body_read_fn body_read;  /* body source */
    void *body_arg;               /* passed to body_read */
    uint64_t body_size;           /* Content-Length (not for a stream) */
    uint64_t offset;              /* next body byte curl asks for */
    bool stream;                  /* chunked, read as it comes */
    bool paused;                  /* stream: curl waits for more (CURL_READFUNC_PAUSE) */
    bool body_end_read;           /* stream: the body was read to its end */
    bool answered_mid_body;       /* stream: a final response began before that */
    http_trailers_fn trailers;    /* stream: trailer lines, or NULL */
    uint64_t started_ms;          /* uv_now at start */
    http_done_fn done;            /* completion callback */
    void *arg;                    /* passed to done */
    struct http_request *prev;    /* running list */
    struct http_request *next;    /* running list */
    char errbuf[CURL_ERROR_SIZE]; /* curl's reason text */
    char reason[HTTP_REASON_MAX]; /* what http_response.error points to */
    struct http_head head;        /* the response's header section */
};

static int http_global_ready; /* curl_global_init done (once per process) */

/* http_check_done - collect finished transfers: read their results, remove them from the
 * multi handle, call done and free. Stops as soon as a done callback closes the client. */
static void http_check_done(struct http_client *hc);

/* http_on_poll_close - the poll handle is closed: free it; free the client when it was the
 * last handle of a closing client. */
static void http_on_poll_close(uv_handle_t *h)
{
    struct http_poll *p = h->data;
    struct http_client *hc = p->hc;
    free(p);
    if (--hc->open_handles == 0 && hc->closing)
        free(hc);
}

/* http_on_timer_close - as http_on_poll_close, for the timer embedded in the client. */
static void http_on_timer_close(uv_handle_t *h)
{
    struct http_client *hc = h->data;
    if (--hc->open_handles == 0 && hc->closing)
        free(hc);
}

/* http_poll_close - stop watching and leave the open list; the memory goes in the close
 * callback. Closing a started handle stops it (one epoll_ctl), so there is no
 * uv_poll_stop before it. */
static void http_poll_close(struct http_poll *p)
{
    struct http_client *hc = p->hc;
    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        hc->polls = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
    p->prev = p->next = NULL;
    uv_close((uv_handle_t *)&p->poll, http_on_poll_close); /* stops it too */
}

/* http_on_poll - a watched socket is ready (or failed): tell curl, then collect. An event
 * on a kept-alive connection that curl does not watch now (the peer closed it, or sent
 * something unasked) stops the handle: curl looks at the connection before it reuses it
 * and closes it then, and a level-triggered event nobody takes would fire every turn. */
static void http_on_poll(uv_poll_t *h, int status, int events)
{
    struct http_poll *p = h->data;
    struct http_client *hc = p->hc;
    int flags = 0;
    int running = 0;
    if (!p->watched) {
        uv_poll_stop(&p->poll);
        p->events = 0;
        return;
    }
    if (status < 0) {
        flags = CURL_CSELECT_ERR;
    } else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    /* p may be closed by curl's socket callback during this call: use only fd and hc. */
    curl_multi_socket_action(hc->multi, p->fd, flags, &running);
    http_check_done(hc);
}

/* http_on_timer - curl's timeout expired: let it act, then collect. */
static void http_on_timer(uv_timer_t *t)
{
    struct http_client *hc = t->data;
    int running = 0;
    curl_multi_socket_action(hc->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    http_check_done(hc);
}

/* http_poll_new - a poll handle for socket s on the open list, not started; NULL when libuv
 * refuses the socket or memory is short. */
static struct http_poll *http_poll_new(struct http_client *hc, curl_socket_t s, bool owned)
{
    struct http_poll *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    if (uv_poll_init_socket(hc->loop, &p->poll, s) != 0) {
        free(p);
        return NULL;
    }
    p->fd = s;
    p->hc = hc;
    p->owned = owned;
    p->poll.data = p;
    p->next = hc->polls;
    if (hc->polls != NULL)
        hc->polls->prev = p;
    hc->polls = p;
    hc->open_handles++;
    return p;
}

/* http_poll_find - the open poll handle of socket s, or NULL. The list holds one handle per
 * open curl connection, idle ones included (at most HTTP_MAX_CONNECTS of those). */
static struct http_poll *http_poll_find(const struct http_client *hc, curl_socket_t s)
{
    struct http_poll *p = hc->polls;
    while (p != NULL && p->fd != s)
        p = p->next;
    return p;
}

/* http_socket_cb - CURLMOPT_SOCKETFUNCTION: start, change or stop watching socket s.
 * socketp is the http_poll assigned to s, NULL the first time after an announcement or a
 * CURL_POLL_REMOVE (curl forgets the assignment then). Returns 0, or -1 when no poll handle
 * could be made or started (curl then fails the transfer). */
static int http_socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct http_client *hc = userp;
    struct http_poll *p = socketp;
    (void)easy;

    if (what == CURL_POLL_REMOVE) {
        if (p == NULL)
            p = http_poll_find(hc, s);
        if (p == NULL)
            return 0;
        curl_multi_assign(hc->multi, s, NULL);
        if (!p->owned) {
            http_poll_close(p);
            return 0;
        }
        /* Kept as it is, and off the loop's count of live handles while idle. */
        p->watched = false;
        uv_unref((uv_handle_t *)&p->poll);
        return 0;
    }
    if (p == NULL) {
        p = http_poll_find(hc, s);
        if (p == NULL && (p = http_poll_new(hc, s, false)) == NULL)
            return -1;
        if (curl_multi_assign(hc->multi, s, p) != CURLM_OK) {
            if (!p->owned)
                http_poll_close(p);
            return -1;
        }
    }
    if (!p->watched) {
        p->watched = true;
        uv_ref((uv_handle_t *)&p->poll);
    }
    int events = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        events |= UV_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        events |= UV_WRITABLE;
    if (events == p->events)
        return 0; /* no epoll_ctl: a reused connection is mostly watched for reading again */
    int rc = events != 0 ? uv_poll_start(&p->poll, events, http_on_poll) : uv_poll_stop(&p->poll);
    p->events = rc == 0 ? events : 0;
    return rc == 0 ? 0 : -1;
}

/* http_open_socket_cb - CURLOPT_OPENSOCKETFUNCTION: the socket, as curl would make it, with
 * its poll handle made now; a stale handle left for the descriptor number goes first. */
static curl_socket_t http_open_socket_cb(void *clientp, curlsocktype purpose,
                                         struct curl_sockaddr *address)
{
    struct http_client *hc = clientp;
    (void)purpose;
    curl_socket_t s = socket(address->family, address->socktype, address->protocol);
    if (s == CURL_SOCKET_BAD)
        return CURL_SOCKET_BAD;
    struct http_poll *stale = http_poll_find(hc, s);
    if (stale != NULL)
        http_poll_close(stale);
    if (http_poll_new(hc, s, true) == NULL) {
        close(s);
        return CURL_SOCKET_BAD;
    }
    return s;
}

/* http_close_socket_cb - CURLOPT_CLOSESOCKETFUNCTION: close the socket's poll handle (curl
 * has removed the socket from its watch already), then the socket. */
static int http_close_socket_cb(void *clientp, curl_socket_t s)
{
    struct http_client *hc = clientp;
    struct http_poll *p = http_poll_find(hc, s);
    if (p != NULL)
        http_poll_close(p);
    return close(s);
}

/* http_timer_cb - CURLMOPT_TIMERFUNCTION: arm the one timer. -1 stops it; 0 fires on the
 * next loop iteration (curl must not be called back from inside this function). */
static int http_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct http_client *hc = userp;
    (void)multi;
    if (hc->closing)
        return 0;
    if (timeout_ms < 0) {
        uv_timer_stop(&hc->timer);
        return 0;
    }
    return uv_timer_start(&hc->timer, http_on_timer, (uint64_t)timeout_ms, 0) == 0 ? 0 : -1;
}

/* http_failure_of - the failure class of a curl result. */
static enum http_failure http_failure_of(CURLcode rc)
{
    switch (rc) {
    case CURLE_OK:
        return HTTP_FAILURE_NONE;
    case CURLE_OPERATION_TIMEDOUT:
        return HTTP_FAILURE_TIMEOUT;
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
        return HTTP_FAILURE_CONNECT;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return HTTP_FAILURE_DNS;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_USE_SSL_FAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
        return HTTP_FAILURE_TLS;
    case CURLE_READ_ERROR:
    case CURLE_ABORTED_BY_CALLBACK:
    case CURLE_SEND_FAIL_REWIND:
        return HTTP_FAILURE_SEND;
    default:
        return HTTP_FAILURE_OTHER;
    }
}

/* http_unlink - take req off the running list. */
static void http_unlink(struct http_request *req)
{
    struct http_client *hc = req->hc;
    if (req->prev != NULL)
        req->prev->next = req->next;
    else
        hc->requests = req->next;
    if (req->next != NULL)
        req->next->prev = req->prev;
    req->prev = req->next = NULL;
}

/* http_request_free - release a request that is no longer in the multi handle. */
static void http_request_free(struct http_request *req)
{
    curl_easy_cleanup(req->easy);
    curl_slist_free_all(req->headers);
    free(req);
}

/* http_field_value - the value of a kept field for http_response: NULL when absent or
 * dropped. */
static const char *http_field_value(const struct http_field *f)
{
    return f->seen > 0 && !f->dropped ? f->value : NULL;
}

/* http_head_report - fill resp's header fields from what the header callback saw. The
 * block followed must be the response curl reports: its status line gave the same code. */
static void http_head_report(const struct http_head *h, struct http_response *resp)
{
    if (resp->status == 0 || h->status != resp->status || h->interim)
        return;
    const struct http_field *reply = &h->fields[HTTP_FIELD_SMTP_REPLY];
    const struct http_field *retry = &h->fields[HTTP_FIELD_RETRY_AFTER];
    resp->headers_complete = h->state == HTTP_HEAD_DONE;
    resp->smtp_reply = http_field_value(reply);
    resp->smtp_reply_repeated = reply->seen > 1;
    resp->smtp_reply_dropped = reply->dropped;
    resp->retry_after = http_field_value(retry);
    resp->retry_after_repeated = retry->seen > 1;
    resp->retry_after_dropped = retry->dropped;
}

static void http_check_done(struct http_client *hc)
{
    CURLMsg *msg;
    int left = 0;
    while (!hc->closing && (msg = curl_multi_info_read(hc->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode result = msg->data.result;
        char *priv = NULL;
        long status = 0;
        curl_off_t sent = 0;
        /* Everything is read before the handle leaves the multi: msg dies with it. */
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(easy, CURLINFO_SIZE_UPLOAD_T, &sent);
        struct http_request *req = (struct http_request *)(void *)priv;
        curl_multi_remove_handle(hc->multi, easy);
        http_unlink(req);

        struct http_response resp;
        memset(&resp, 0, sizeof(resp));
        resp.failure = http_failure_of(result);
        resp.status = status > 0 ? status : 0;
        resp.body_sent = sent > 0 ? (uint64_t)sent : 0;
        resp.answered_mid_body = req->answered_mid_body;
        resp.elapsed_ms = uv_now(hc->loop) - req->started_ms;
        /* curl keeps the first message of a transfer, which may be a side remark made before
         * the error that ended it ("getpeername() failed" when the peer reset the connection
         * after refusing our certificate): the result's own text comes first. */
        if (result != CURLE_OK) {
            snprintf(req->reason, sizeof(req->reason), "%s%s%s", curl_easy_strerror(result),
                     req->errbuf[0] != '\0' ? ": " : "", req->errbuf);
            resp.error = req->reason;
        }
        http_head_report(&req->head, &resp);
        req->done(req->arg, &resp);
        http_request_free(req);
    }
}

/* http_client_new - the multi handle with libuv callbacks and a bounded connection cache. */
int http_client_new(uv_loop_t *loop, struct http_client **out)
{
    *out = NULL;
    if (!http_global_ready) {
        /* Once per process, never undone: other threads may not exist yet, as curl wants. */
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return SH_ENOMEM;
        http_global_ready = 1;
    }
    struct http_client *hc = calloc(1, sizeof(*hc));
    if (hc == NULL)
        return SH_ENOMEM;
    hc->loop = loop;
    hc->multi = curl_multi_init();
    if (hc->multi == NULL) {
        free(hc);
        return SH_ENOMEM;
    }
    if (curl_multi_setopt(hc->multi, CURLMOPT_SOCKETFUNCTION, http_socket_cb) != CURLM_OK ||
        curl_multi_setopt(hc->multi, CURLMOPT_SOCKETDATA, hc) != CURLM_OK ||
        curl_multi_setopt(hc->multi, CURLMOPT_TIMERFUNCTION, http_timer_cb) != CURLM_OK ||
        curl_multi_setopt(hc->multi, CURLMOPT_TIMERDATA, hc) != CURLM_OK ||
        curl_multi_setopt(hc->multi, CURLMOPT_MAXCONNECTS, HTTP_MAX_CONNECTS) != CURLM_OK) {
        curl_multi_cleanup(hc->multi);
        free(hc);
        return SH_ENOMEM;
    }
    uv_timer_init(loop, &hc->timer);
    hc->timer.data = hc;
    hc->open_handles = 1;
    *out = hc;
    return 0;
}

/* http_client_close - cancel all, drop the connection cache, close the handles; the client
 * is freed by the last close callback. */
void http_client_close(struct http_client *hc)
{
    if (hc == NULL || hc->closing)
        return;
    hc->closing = 1;
    while (hc->requests != NULL) {
        struct http_request *req = hc->requests;
        curl_multi_remove_handle(hc->multi, req->easy);
        http_unlink(req);
        http_request_free(req);
    }
    /* Closing cached connections may call http_socket_cb with CURL_POLL_REMOVE, which
     * closes the matching polls; any poll still open after that is closed here. */
    curl_multi_cleanup(hc->multi);
    hc->multi = NULL;
    while (hc->polls != NULL)
        http_poll_close(hc->polls);
    uv_timer_stop(&hc->timer);
    uv_close((uv_handle_t *)&hc->timer, http_on_timer_close);
}

/* http_read_cb - CURLOPT_READFUNCTION: the next body bytes, from body_read at our offset.
 * A read error, or a body shorter than announced, aborts the transfer. */
static size_t http_read_cb(char *buf, size_t size, size_t nitems, void *userp)
{
    struct http_request *req = userp;
    size_t want = size * nitems;
    if (req->stream) { /* as much as there is; nothing yet: pause until resumed */
        size_t got = 0;
        int rc = want > 0 ? req->body_read(req->body_arg, req->offset, buf, want, &got) : 0;
        if (rc == SH_EAGAIN) {
            req->paused = true;
            return CURL_READFUNC_PAUSE;
        }
        if (rc != 0 || got > want)
            return CURL_READFUNC_ABORT;
        req->offset += got;
        if (got == 0)
            req->body_end_read = true;
        return got; /* 0: the end, curl sends the last chunk and the trailers */
    }
    if (req->offset >= req->body_size || want == 0)
        return 0;
    if ((uint64_t)want > req->body_size - req->offset)
        want = (size_t)(req->body_size - req->offset);
    size_t got = 0;
    if (req->body_read(req->body_arg, req->offset, buf, want, &got) != 0 || got == 0 || got > want)
        return CURL_READFUNC_ABORT;
    req->offset += got;
    return got;
}

/* http_seek_cb - CURLOPT_SEEKFUNCTION: rewind the body when curl re-sends the request
 * (a reused connection that turned out to be closed). */
static int http_seek_cb(void *userp, curl_off_t offset, int origin)
{
    struct http_request *req = userp;
    uint64_t end = req->stream ? req->offset : req->body_size; /* a stream: what was read */
    if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > end)
        return CURL_SEEKFUNC_CANTSEEK;
    req->offset = (uint64_t)offset;
    return CURL_SEEKFUNC_OK;
}

/* http_discard_cb - CURLOPT_WRITEFUNCTION: the response body is not needed. */
static size_t http_discard_cb(char *ptr, size_t size, size_t nmemb, void *userp)
{
    (void)ptr;
    (void)userp;
    return size * nmemb;
}

/* http_is_ows - optional whitespace (RFC 9110 §5.6.3). */
static bool http_is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* http_field_append - add one piece of a kept field's value (the text after the colon, or an
 * obs-fold continuation line), trimmed; pieces are joined with one space, as RFC 9112 §5.2
 * has a recipient replace each obs-fold. A value that outgrows max is dropped, not cut. */
static void http_field_append(struct http_field *f, size_t max, const char *p, size_t n)
{
    while (n > 0 && http_is_ows(p[0])) {
        p++;
        n--;
    }
    while (n > 0 && http_is_ows(p[n - 1]))
        n--;
    if (f->dropped || n == 0)
        return;
    size_t sep = f->len > 0 ? 1 : 0;
    /* curl refuses a header with a NUL byte ("Nul byte in header"); checked anyway, as the
     * value is handed out as a C string. */
    if (f->len + sep + n > max || memchr(p, '\0', n) != NULL) {
        f->dropped = true;
        f->len = 0;
        f->value[0] = '\0';
        return;
    }
    if (sep)
        f->value[f->len++] = ' ';
    memcpy(f->value + f->len, p, n);
    f->len += n;
    f->value[f->len] = '\0';
}

/* http_status_code - the code of a status line ("HTTP/1.1 200 OK", "HTTP/2 204 "): the three
 * digits after the protocol version (RFC 9112 §4); 0 when there are none. */
static long http_status_code(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && p[i] != ' ')
        i++;
    while (i < n && p[i] == ' ')
        i++;
    long code = 0;
    for (size_t k = 0; k < 3; k++, i++) {
        if (i >= n || p[i] < '0' || p[i] > '9')
            return 0;
        code = code * 10 + (p[i] - '0');
    }
    return i == n || p[i] == ' ' ? code : 0;
}

/* http_head_line - one header line of the response, without its line ending. */
static void http_head_line(struct http_head *h, const char *p, size_t n)
{
    switch (h->state) {
    case HTTP_HEAD_DONE:
        return; /* trailers (RFC 9112 §7.1.2) are not the header section */
    case HTTP_HEAD_STATUS:
        /* A new response: an interim one's fields must not carry over (RFC 9110 §15.2). */
        memset(h->fields, 0, sizeof(h->fields));
        h->status = http_status_code(p, n);
        h->interim = h->status >= 100 && h->status <= 199;
        h->folding = HTTP_NO_FIELD;
        h->state = HTTP_HEAD_FIELDS;
        return;
    case HTTP_HEAD_FIELDS:
        break;
    }
    if (n == 0) { /* the empty line: this block ends; after a 1xx another response follows */
        h->state = h->interim ? HTTP_HEAD_STATUS : HTTP_HEAD_DONE;
        h->folding = HTTP_NO_FIELD;
        return;
    }
    if (http_is_ows(p[0])) { /* obs-fold: continues the previous field line (RFC 9112 §5.2) */
        if (h->folding != HTTP_NO_FIELD)
            http_field_append(&h->fields[h->folding], http_fields[h->folding].max, p, n);
        return;
    }
    h->folding = HTTP_NO_FIELD;
    const char *colon = memchr(p, ':', n);
    if (colon == NULL || h->interim)
        return;
    size_t name_len = (size_t)(colon - p);
    for (int i = 0; i < HTTP_FIELD_COUNT; i++) {
        /* The exact name: "Smtphook-Reply :" (space before the colon) is no field of that
         * name (RFC 9112 §5.1). */
        if (strlen(http_fields[i].name) != name_len ||
            strncasecmp(p, http_fields[i].name, name_len) != 0)
            continue;
        struct http_field *f = &h->fields[i];
        if (f->seen++ > 0)
            return; /* a repeat: the first value stays, the repeat is flagged */
        http_field_append(f, http_fields[i].max, colon + 1, n - name_len - 1);
        h->folding = i;
        return;
    }
}

/* http_header_cb - CURLOPT_HEADERFUNCTION: one complete header line, ending in LF (CRLF or a
 * bare LF, RFC 9112 §2.2); a line without one is not complete. */
static size_t http_header_cb(char *buf, size_t size, size_t nitems, void *userp)
{
    struct http_request *req = userp;
    size_t len = size * nitems;
    size_t n = len;
    if (n == 0 || buf[n - 1] != '\n')
        return len;
    n--;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    /* A final status line ("HTTP/1.1 200 ...", RFC 9112 §4) while a streamed body is still
     * being sent: whatever it says, the endpoint did not wait for the whole message. */
    if (req->stream && !req->body_end_read && n >= 12 && memcmp(buf, "HTTP/", 5) == 0) {
        const char *sp = memchr(buf, ' ', n);
        if (sp != NULL && sp + 1 < buf + n && sp[1] != '1')
            req->answered_mid_body = true;
    }
    http_head_line(&req->head, buf, n);
    return len;
}

/* http_add_header - append one "Name: value" line. curl drops a header whose value is
 * empty unless it is written "Name;", so such a line is rewritten (an empty
 * X-Smtphook-Mail-From for the null sender must still arrive). */
static int http_add_header(struct curl_slist **list, const char *line)
{
    const char *colon = strchr(line, ':');
    const char *v = colon != NULL ? colon + 1 : NULL;
    while (v != NULL && (*v == ' ' || *v == '\t'))
        v++;
    struct curl_slist *l;
    if (v != NULL && *v == '\0' && colon != line) {
        size_t n = (size_t)(colon - line);
        char *name = malloc(n + 2); /* any length a configured name may have */
        if (name == NULL)
            return SH_ENOMEM;
        memcpy(name, line, n);
        name[n] = ';';
        name[n + 1] = '\0';
        l = curl_slist_append(*list, name);
        free(name);
    } else {
        l = curl_slist_append(*list, line);
    }
    if (l == NULL)
        return SH_ENOMEM;
    *list = l;
    return 0;
}

/* http_trailer_cb - CURLOPT_TRAILERFUNCTION: the streamed body ended; its trailer lines. */
static int http_trailer_cb(struct curl_slist **list, void *userp)
{
    struct http_request *req = userp;
    size_t n = 0;
    const char *const *lines = req->trailers(req->body_arg, &n);
    for (size_t i = 0; i < n; i++) {
        struct curl_slist *l = curl_slist_append(*list, lines[i]);
        if (l == NULL)
            return CURL_TRAILERFUNC_ABORT;
        *list = l;
    }
    return CURL_TRAILERFUNC_OK;
}

/* http_ms - a millisecond count as curl's long, saturating. */
static long http_ms(uint64_t ms)
{
    return ms > (uint64_t)LONG_MAX ? LONG_MAX : (long)ms;
}

/* http_setup - every option of one request; 0 or a negative code. */
static int http_setup(struct http_request *req, const struct http_request_opts *opts)
{
    CURL *e = req->easy;
    int rc = 0;
    for (size_t i = 0; i < opts->n_headers && rc == 0; i++)
        rc = http_add_header(&req->headers, opts->headers[i]);
    if (rc != 0)
        return rc;
    /* Appended as is: "Expect:" with no value is curl's way to drop the header. */
    struct curl_slist *l = curl_slist_append(req->headers, HTTP_NO_EXPECT);
    if (l == NULL)
        return SH_ENOMEM;
    req->headers = l;
    if (opts->body_size > (uint64_t)INT64_MAX) /* curl_off_t is 64-bit */
        return SH_EINVAL;

    CURLcode c = CURLE_OK;
#define HTTP_SET(opt, val)                                                                         \
    do {                                                                                           \
        if (c == CURLE_OK)                                                                         \
            c = curl_easy_setopt(e, opt, val);                                                     \
    } while (0)
    HTTP_SET(CURLOPT_URL, opts->url);
    HTTP_SET(CURLOPT_PROTOCOLS_STR, HTTP_PROTOCOLS);
    HTTP_SET(CURLOPT_POST, 1L);
    /* -1: the size is not known, HTTP/1.1 sends the body chunked */
    HTTP_SET(CURLOPT_POSTFIELDSIZE_LARGE, opts->stream ? -1 : (curl_off_t)opts->body_size);
    if (opts->stream || opts->body_size > HTTP_BIG_BODY)
        HTTP_SET(CURLOPT_UPLOAD_BUFFERSIZE, HTTP_BIG_UPLOAD_BUFFER);
    if (opts->stream && opts->trailers != NULL) {
        HTTP_SET(CURLOPT_TRAILERFUNCTION, http_trailer_cb);
        HTTP_SET(CURLOPT_TRAILERDATA, req);
    }
    if (opts->body != NULL && !opts->stream) {
        /* A body in memory is curl's to read: one under 64 KiB (MAX_INITIAL_POST_SIZE) goes
         * out in the same send as the headers, and curl starts it over by itself when it
         * sends the request again. */
        HTTP_SET(CURLOPT_POSTFIELDS, opts->body);
    } else {
        HTTP_SET(CURLOPT_READFUNCTION, http_read_cb);
        HTTP_SET(CURLOPT_READDATA, req);
        HTTP_SET(CURLOPT_SEEKFUNCTION, http_seek_cb);
        HTTP_SET(CURLOPT_SEEKDATA, req);
    }
    HTTP_SET(CURLOPT_WRITEFUNCTION, http_discard_cb);
    HTTP_SET(CURLOPT_WRITEDATA, req);
    HTTP_SET(CURLOPT_HEADERFUNCTION, http_header_cb);
    HTTP_SET(CURLOPT_HEADERDATA, req);
    /* A proxy's answer to CONNECT (https_proxy in the environment) is not the endpoint's
     * response: keep it away from the header callback. */
    HTTP_SET(CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    HTTP_SET(CURLOPT_HTTPHEADER, req->headers);
    HTTP_SET(CURLOPT_FOLLOWLOCATION, 0L);
    HTTP_SET(CURLOPT_MAXREDIRS, 0L);
    HTTP_SET(CURLOPT_TIMEOUT_MS, http_ms(opts->timeout_ms));
    HTTP_SET(CURLOPT_CONNECTTIMEOUT_MS, http_ms(opts->connect_timeout_ms));
    HTTP_SET(CURLOPT_NOSIGNAL, 1L);
    HTTP_SET(CURLOPT_USERAGENT, HTTP_USER_AGENT);
    HTTP_SET(CURLOPT_PRIVATE, (void *)req);
    HTTP_SET(CURLOPT_ERRORBUFFER, req->errbuf);
    HTTP_SET(CURLOPT_TCP_KEEPALIVE, 1L);
    /* The connection's socket, and so its poll handle, comes and goes through the client:
     * curl keeps these two of the request that opened the connection. */
    HTTP_SET(CURLOPT_OPENSOCKETFUNCTION, http_open_socket_cb);
    HTTP_SET(CURLOPT_OPENSOCKETDATA, (void *)req->hc);
    HTTP_SET(CURLOPT_CLOSESOCKETFUNCTION, http_close_socket_cb);
    HTTP_SET(CURLOPT_CLOSESOCKETDATA, (void *)req->hc);
    /* https: verify the certificate chain and that it names the host (RFC 9110 §4.3.4),
     * TLS 1.2 or later (RFC 8996). These are curl's defaults, set anyway so that no build
     * default or later change can weaken them; a failure is a TLS failure, never a retry
     * without verification. */
    HTTP_SET(CURLOPT_SSL_VERIFYPEER, 1L);
    HTTP_SET(CURLOPT_SSL_VERIFYHOST, 2L);
    HTTP_SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (opts->ca_file != NULL) {
        /* Only these CAs: no CA directory next to the file (Debian's curl has one built in). */
        HTTP_SET(CURLOPT_CAINFO, opts->ca_file);
        HTTP_SET(CURLOPT_CAPATH, (char *)NULL);
    }
    if (opts->client_cert != NULL) {
        HTTP_SET(CURLOPT_SSLCERT, opts->client_cert);
        HTTP_SET(CURLOPT_SSLCERTTYPE, HTTP_PEM);
        HTTP_SET(CURLOPT_SSLKEY, opts->client_key);
        HTTP_SET(CURLOPT_SSLKEYTYPE, HTTP_PEM);
    }
#undef HTTP_SET
    if (c == CURLE_OUT_OF_MEMORY)
        return SH_ENOMEM;
    return c == CURLE_OK ? 0 : SH_EINVAL;
}

/* http_request_start - build the easy handle and hand it to the multi handle; curl's timer
 * callback then schedules the first step on the loop, so done never runs before this
 * returns. On failure nothing is left behind and done is never called. */
int http_request_start(struct http_client *hc, const struct http_request_opts *opts,
                       http_done_fn done, void *arg, struct http_request **out)
{
    if (out != NULL)
        *out = NULL;
    if (hc == NULL || hc->closing || opts == NULL || opts->url == NULL || done == NULL ||
        ((opts->body_size > 0 || opts->stream) && opts->body_read == NULL &&
         (opts->body == NULL || opts->stream)))
        return SH_EINVAL;
    struct http_request *req = calloc(1, sizeof(*req));
    int rc = SH_ENOMEM;
    if (req == NULL)
        return SH_ENOMEM;
    req->hc = hc;
    req->body_read = opts->body_read;
    req->body_arg = opts->body_arg;
    req->body_size = opts->body_size;
    req->stream = opts->stream;
    req->trailers = opts->trailers;
    req->done = done;
    req->arg = arg;
    req->easy = curl_easy_init();
    if (req->easy == NULL)
        goto fail;
    if ((rc = http_setup(req, opts)) != 0)
        goto fail;
    req->started_ms = uv_now(hc->loop);
    if (curl_multi_add_handle(hc->multi, req->easy) != CURLM_OK) {
        rc = SH_ENOMEM;
        goto fail;
    }
    req->next = hc->requests;
    if (hc->requests != NULL)
        hc->requests->prev = req;
    hc->requests = req;
    if (out != NULL)
        *out = req;
    return 0;

fail:
    if (req->easy != NULL)
        curl_easy_cleanup(req->easy);
    curl_slist_free_all(req->headers);
    free(req);
    return rc;
}

/* http_probe - see http_client.h. Redirects are not followed: the admin port has none. */
int http_probe(const char *url, long timeout_ms, char *err, size_t errlen)
{
    CURL *e = curl_easy_init();
    if (e == NULL) {
        snprintf(err, errlen, "out of memory");
        return SH_EIO;
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, HTTP_PROTOCOLS);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, http_discard_cb);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(e, CURLOPT_USERAGENT, HTTP_USER_AGENT);
    CURLcode rc = curl_easy_perform(e);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(e);
    if (rc != CURLE_OK) {
        snprintf(err, errlen, "%s: %s", url, errbuf[0] ? errbuf : curl_easy_strerror(rc));
        return SH_EIO;
    }
    if (status / 100 != 2) {
        snprintf(err, errlen, "%s: HTTP %ld", url, status);
        return SH_EIO;
    }
    return 0;
}

/* http_request_resume - see http_client.h. curl_easy_pause expires the transfer's timer,
 * so the multi handle takes it up again from the loop. */
void http_request_resume(struct http_request *req)
{
    if (req == NULL || !req->paused)
        return;
    req->paused = false;
    curl_easy_pause(req->easy, CURLPAUSE_CONT);
}

/* http_request_cancel - take the transfer out of the multi handle and free it; its
 * connection is closed or kept by curl as it sees fit (one with a request cut short in its
 * body is closed). done is not called. */
void http_request_cancel(struct http_request *req)
{
    if (req == NULL)
        return;
    struct http_client *hc = req->hc;
    curl_multi_remove_handle(hc->multi, req->easy);
    http_unlink(req);
    http_request_free(req);
}
