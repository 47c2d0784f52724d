/* conn.c - one client connection: the I/O shell around parser and session.
 *
 * Owns the socket, the idle timer, the reply queue, the spool of the current message and
 * the running delivery. Reads land in the server's shared read buffer; only input that
 * must wait (while a delivery runs) is copied into the connection. With TLS the read buffer
 * is decrypted into (tls has copied the ciphertext by then) and replies are encrypted on
 * their way out. Knows nothing of HTTP beyond delivery.h, nor of OpenSSL beyond tls.h. */
#include "smtphook/conn.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtphook/error.h"
#include "smtphook/log.h"
#include "smtphook/reply.h"
#include "smtphook/server.h"

#define CONN_HELD_MAX_BYTES  65536  /* input held during a delivery before reading pauses */
#define CONN_WRITE_MAX_BYTES 262144 /* unsent replies before reading pauses */
#define CONN_OUT_KEEP_BYTES  4096   /* reply buffer kept between reads; larger ones are freed */

struct conn_write {
    uv_write_t req; /* libuv request; req.data is the conn */
    size_t len;     /* bytes in data */
    char data[];    /* copy of the replies */
};

static void conn_process(struct conn *c, const char *data, size_t len, size_t *consumed);
static void conn_update_reading(struct conn *c);
static void conn_read_start(struct conn *c);
static void conn_resume(struct conn *c);
static bool chunk_end_due(const struct conn *c);

/* conn_now_ms - wall-clock time in milliseconds, for envelope timestamps. */
static int64_t conn_now_ms(void)
{
    uv_timeval64_t tv;
    if (uv_gettimeofday(&tv) != 0)
        return 0;
    return tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* on_handle_closed - free the connection after its last handle is closed. */
static void on_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->handles_open > 0)
        return;
    session_free(&c->session);
    smtp_parser_free(&c->parser);
    spool_free(c->spool);
    tls_conn_free(c->tls);
    buf_free(&c->wire);
    buf_free(&c->out);
    buf_free(&c->held);
    free(c);
}

/* conn_close - see conn.h. The connection leaves the server's list at once so that the
 * connection limits count it free, even before libuv has closed its handles. */
void conn_close(struct conn *c, const char *reason)
{
    if (c->closing)
        return;
    c->closing = true;
    log_debug("conn %s %s:%u closed: %s", c->id, c->address, c->port, reason);

    if (c->delivery != NULL) {
        log_info("txn id=%s cancelled: %s", c->session.env.id, reason);
        delivery_cancel(c->delivery);
        c->delivery = NULL;
    } else if (session_in_transaction(&c->session)) {
        log_info("txn id=%s abandoned: %s", c->session.env.id, reason);
    }
    struct server *srv = c->srv;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else if (srv->conns == c)
        srv->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    if (c->counted) {
        c->counted = false;
        srv->n_conns--;
    }
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    server_conn_gone(srv);
}

/* on_write - a queued write finished; close when the goodbye has gone out. */
static void on_write(uv_write_t *req, int status)
{
    struct conn_write *w = (struct conn_write *)req;
    struct conn *c = req->data;
    c->write_pending -= w->len;
    free(w);
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c, uv_strerror(status));
        return;
    }
    if (c->close_after_write && c->write_pending == 0) {
        conn_close(c, "closed by server");
        return;
    }
    conn_resume(c);
}

/* conn_keep - empty a sent buffer; a burst of pipelined replies can leave a large one
 * behind, and idle connections should hold none. */
static void conn_keep(struct buf *b)
{
    if (b->cap > CONN_OUT_KEEP_BYTES)
        buf_free(b);
    else
        buf_reset(b);
}

/* conn_encode - the bytes to put on the wire: the replies themselves, or with TLS the
 * ciphertext they become (plus handshake records and, once a goodbye is queued, our
 * close_notify). NULL after closing the connection on failure. */
static struct buf *conn_encode(struct conn *c)
{
    if (c->out.failed) {
        conn_close(c, "out of memory for replies");
        return NULL;
    }
    if (c->tls == NULL)
        return &c->out;
    if (c->out.len > 0) {
        if (tls_conn_write(c->tls, c->out.data, c->out.len) != 0) {
            conn_close(c, tls_conn_error(c->tls));
            return NULL;
        }
        conn_keep(&c->out);
    }
    if (c->close_after_write && !c->tls_close_sent && tls_conn_established(c->tls)) {
        tls_conn_shutdown(c->tls);
        c->tls_close_sent = true;
    }
    if (tls_conn_take(c->tls, &c->wire) != 0 || c->wire.failed) {
        conn_close(c, "out of memory for TLS records");
        return NULL;
    }
    return &c->wire;
}

/* conn_flush - hand the queued bytes to the socket: try_write first, the rest (rare)
 * in one copied uv_write request. */
static void conn_flush(struct conn *c)
{
    if (c->closing)
        return;
    struct buf *send = conn_encode(c);
    if (send == NULL)
        return;
    if (send->len > 0) {
        size_t off = 0;
        if (c->write_pending == 0) {
            uv_buf_t b = uv_buf_init(send->data, (unsigned)send->len);
            int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
            if (n > 0)
                off = (size_t)n;
            else if (n < 0 && n != UV_EAGAIN) {
                conn_close(c, uv_strerror(n));
                return;
            }
        }
        if (off < send->len) {
            size_t len = send->len - off;
            struct conn_write *w = malloc(sizeof(*w) + len);
            if (w == NULL) {
                conn_close(c, "out of memory");
                return;
            }
            memcpy(w->data, send->data + off, len);
            w->len = len;
            w->req.data = c;
            uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
            int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
            if (rc < 0) {
                free(w);
                conn_close(c, uv_strerror(rc));
                return;
            }
            c->write_pending += len;
        }
        conn_keep(send);
    }
    if (c->close_after_write && c->write_pending == 0)
        conn_close(c, "closed by server");
}

/* conn_handshaking - a TLS handshake is under way (no goodbye queued). */
static bool conn_handshaking(const struct conn *c)
{
    return c->tls != NULL && !tls_conn_established(c->tls) && !c->close_after_write;
}

/* on_timeout - the timer fired. A client that does not read what we sent (replies or the
 * goodbye) is dropped; one that sends nothing gets 421 4.4.2 and is closed. */
static void on_timeout(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (c->closing)
        return;
    if (conn_handshaking(c)) {
        log_info("conn %s %s:%u dropped: TLS handshake not done within %" PRIu64 " ms", c->id,
                 c->address, c->port, c->srv->cfg->tls.handshake_timeout_ms);
        conn_close(c, "TLS handshake timeout");
        return;
    }
    if (c->close_after_write || c->write_pending > 0) {
        log_info("conn %s %s:%u dropped: write timeout (the client does not read)", c->id,
                 c->address, c->port);
        conn_close(c, "write timeout");
        return;
    }
    if (c->delivery != NULL)
        return;
    session_timeout(&c->session, &c->out);
    c->close_after_write = true;
    conn_flush(c);
    conn_update_reading(c); /* re-arms the timer: a 421 nobody reads is a write timeout */
}

/* conn_update_reading - read while nothing stops it: too much input held, too much unsent
 * output, or a pending close. The timer runs whenever the connection waits for the client,
 * to read from it or to write to it; it stops only while we wait for the webhook. */
static void conn_update_reading(struct conn *c)
{
    if (c->closing)
        return;
    /* While a goodbye is queued, input is still read (and thrown away): unread input at
     * close makes the kernel send a reset that can destroy the goodbye in flight. */
    bool want = !c->read_eof && (c->close_after_write || (c->write_pending < CONN_WRITE_MAX_BYTES &&
                                                          c->held.len < CONN_HELD_MAX_BYTES));
    if (want && !c->reading) {
        conn_read_start(c);
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
    if (c->closing)
        return; /* conn_read_start failed */
    if (conn_handshaking(c)) {
        /* One deadline for the whole handshake: a client dribbling bytes does not extend it. */
        uint64_t now = uv_now(c->srv->loop);
        uint64_t left = c->handshake_deadline > now ? c->handshake_deadline - now : 0;
        uv_timer_start(&c->timer, on_timeout, left, 0);
    } else if (c->delivery == NULL || c->close_after_write || c->write_pending > 0)
        uv_timer_start(&c->timer, on_timeout, c->srv->cfg->limits.idle_timeout_ms, 0);
    else
        uv_timer_stop(&c->timer);
}

/* transaction_log - the one log line per transaction (sanitized: client text). */
static void transaction_log(struct conn *c, const struct delivery_outcome *o, unsigned code,
                            const char *esc)
{
    const struct envelope *env = &c->session.env;
    char from[128], helo[96], eps[512];
    log_sanitize(from, sizeof(from), env->mail_from, strlen(env->mail_from));
    log_sanitize(helo, sizeof(helo), env->helo ? env->helo : "", env->helo ? strlen(env->helo) : 0);
    size_t n = 0;
    eps[0] = '\0';
    for (size_t i = 0; o != NULL && i < o->n_results && n < sizeof(eps); i++) {
        const struct delivery_endpoint_result *r = &o->results[i];
        int k;
        if (r->failure == HTTP_FAILURE_NONE)
            k = snprintf(eps + n, sizeof(eps) - n, "%s%s:%ld:%" PRIu64 "ms", i ? "," : "",
                         r->endpoint, r->status, r->elapsed_ms);
        else
            k = snprintf(eps + n, sizeof(eps) - n, "%s%s:%s:%" PRIu64 "ms", i ? "," : "",
                         r->endpoint, r->reply.text, r->elapsed_ms);
        if (k < 0)
            break;
        n += (size_t)k;
    }
    int64_t duration = conn_now_ms() - c->data_started_ms;
    log_info("txn id=%s client=%s:%u helo=%s from=<%s> rcpts=%zu size=%" PRIu64
             " endpoints=%s reply=\"%u %s\" ms=%" PRId64,
             env->id, c->address, c->port, helo, from, env->n_rcpt, env->size, eps[0] ? eps : "-",
             code, esc ? esc : "", duration);
}

/* conn_resume - handle held input as far as possible (no delivery running, replies not
 * piling up), send the replies and decide about reading. Called after every event that can
 * unblock a connection: a read, a finished write, a delivery outcome. */
static void conn_resume(struct conn *c)
{
    while (!c->closing && !c->close_after_write && c->delivery == NULL &&
           (c->held.len > 0 || chunk_end_due(c)) && c->write_pending < CONN_WRITE_MAX_BYTES) {
        size_t used = 0;
        conn_process(c, c->held.len > 0 ? c->held.data : "", c->held.len, &used);
        if (c->closing)
            return;
        buf_consume(&c->held, c->close_after_write ? c->held.len : used);
        conn_flush(c);
    }
    if (c->closing)
        return;
    if (c->held.len == 0)
        buf_free(&c->held);
    conn_flush(c);
    conn_update_reading(c);
}

/* on_delivered - the webhook outcome arrived: reply, log, then continue with any input
 * that was held while waiting. */
static void on_delivered(void *arg, const struct delivery_outcome *o)
{
    struct conn *c = arg;
    c->delivery = NULL;
    transaction_log(c, o, o->reply.code, o->reply.esc);
    enum session_action a =
        session_delivered(&c->session, o->reply.code, o->reply.esc, o->reply.text, &c->out);
    spool_free(c->spool);
    c->spool = NULL;
    if (a == SESSION_ACTION_CLOSE)
        c->close_after_write = true;
    conn_resume(c);
}

/* local_failure - the message cannot be handed on for a local reason (spool or memory):
 * 451 so that the sender retries. */
static void local_failure(struct conn *c, const char *why)
{
    static const char esc[] = "4.3.0";
    log_error("txn id=%s local failure: %s", c->session.env.id, why);
    transaction_log(c, NULL, 451, esc);
    if (session_delivered(&c->session, 451, esc, "local problem, try again later", &c->out) ==
        SESSION_ACTION_CLOSE)
        c->close_after_write = true;
    spool_free(c->spool);
    c->spool = NULL;
}

/* conn_tls_start - begin the server side of a handshake; the deadline starts now. */
static int conn_tls_start(struct conn *c)
{
    int rc = tls_conn_new(c->srv->tls, &c->tls);
    if (rc != 0)
        return rc;
    c->handshake_deadline = uv_now(c->srv->loop) + c->srv->cfg->tls.handshake_timeout_ms;
    return 0;
}

/* conn_tls_ready - the handshake finished: the session starts over with the TLS facts
 * (RFC 3207 §4.2); an implicit TLS listener greets only now. */
static void conn_tls_ready(struct conn *c)
{
    const struct envelope_tls *info = tls_conn_info(c->tls);
    log_info("conn %s %s:%u TLS %s %s sni=%s client_cert=%s", c->id, c->address, c->port,
             info->version, info->cipher, info->sni ? info->sni : "-",
             info->peer_subject ? info->peer_subject : "-");
    session_tls_started(&c->session, info);
    if (c->implicit_tls)
        session_greeting(&c->session, &c->out);
}

/* chunk_end_due - the last byte of a BDAT chunk was read: the parser reports the end on
 * the next feed, even when the input is used up. */
static bool chunk_end_due(const struct conn *c)
{
    return c->parser.mode == SMTP_PARSER_CHUNK && c->parser.chunk_left == 0;
}

/* drop_stale_spool - a transaction that ended without a delivery (RSET, EHLO, 552, a
 * refused chunk) leaves no spool behind, and the next one starts without an old error. */
static void drop_stale_spool(struct conn *c)
{
    if (session_in_transaction(&c->session))
        return;
    spool_free(c->spool);
    c->spool = NULL;
    c->spool_error = 0;
}

/* conn_open_spool - the message of this transaction starts: a spool for its body (a
 * failure is kept in spool_error and answered at the end) and the start time for the log. */
static void conn_open_spool(struct conn *c)
{
    c->data_started_ms = conn_now_ms();
    c->spool_error =
        spool_new(c->srv->cfg->spool.directory, c->srv->cfg->spool.memory_bytes, &c->spool);
}

/* conn_action - carry out what the session asked for. Returns false when processing of
 * the current input must stop. */
static bool conn_action(struct conn *c, enum session_action a)
{
    switch (a) {
    case SESSION_ACTION_NONE:
        return true;
    case SESSION_ACTION_DATA:
        smtp_parser_begin_data(&c->parser);
        conn_open_spool(c);
        return true;
    case SESSION_ACTION_CHUNK:
        /* The first chunk of a transaction opens its spool; a chunk read without a
         * transaction goes nowhere. A failed spool_new stays in spool_error until the
         * transaction ends, so no later chunk can start a message without its beginning. */
        if (c->spool == NULL && c->spool_error == 0 && session_in_transaction(&c->session))
            conn_open_spool(c);
        if (session_chunk_size(&c->session) == 0)
            return conn_action(c, session_chunk_end(&c->session, &c->out));
        smtp_parser_begin_chunk(&c->parser, session_chunk_size(&c->session));
        return true;
    case SESSION_ACTION_DELIVER:
        if (c->spool_error != 0) {
            local_failure(c, sh_strerror(c->spool_error));
            return true;
        }
        if (delivery_start(c->srv->http, c->srv->cfg, &c->session.env, c->spool, on_delivered, c,
                           &c->delivery) != 0) {
            c->delivery = NULL;
            local_failure(c, "cannot start delivery");
            return true;
        }
        return false;
    case SESSION_ACTION_DISCARD:
        transaction_log(c, NULL, reply_code(REPLY_SIZE_EXCEEDED), "5.3.4");
        spool_free(c->spool);
        c->spool = NULL;
        if (session_discarded(&c->session, &c->out) == SESSION_ACTION_CLOSE) {
            c->close_after_write = true;
            return false;
        }
        return true;
    case SESSION_ACTION_DROP_INPUT:
        smtp_parser_reset(&c->parser);
        return false;
    case SESSION_ACTION_STARTTLS:
        /* The 220 goes out in plaintext; whatever the client sent behind STARTTLS is thrown
         * away with the rest of this input (RFC 3207 §4.2, CVE-2011-0411). */
        conn_flush(c);
        smtp_parser_reset(&c->parser);
        if (!c->closing && conn_tls_start(c) != 0)
            conn_close(c, "cannot start TLS: out of memory");
        return false;
    case SESSION_ACTION_CLOSE:
    default:
        c->close_after_write = true;
        return false;
    }
}

/* conn_process - run bytes through parser and session until they are used up, a delivery
 * starts, the connection is to close, or replies pile up (a client that pipelines without
 * reading). *consumed tells how far it got. */
static void conn_process(struct conn *c, const char *data, size_t len, size_t *consumed)
{
    size_t off = 0;
    while ((off < len || chunk_end_due(c)) && !c->closing && !c->close_after_write &&
           c->delivery == NULL && c->out.len + c->write_pending < CONN_WRITE_MAX_BYTES) {
        struct smtp_event ev;
        long n = smtp_parser_feed(&c->parser, data + off, len - off, &ev);
        if (n < 0) {
            conn_close(c, "out of memory");
            return;
        }
        off += (size_t)n;
        enum session_action a = SESSION_ACTION_NONE;
        switch (ev.type) {
        case SMTP_EVENT_NONE:
            break;
        case SMTP_EVENT_LINE:
            a = session_line(&c->session, ev.ptr, ev.len, conn_now_ms(), &c->out);
            break;
        case SMTP_EVENT_LINE_TOO_LONG:
            a = session_line_too_long(&c->session, &c->out);
            break;
        case SMTP_EVENT_DATA:
            if (session_data(&c->session, ev.len) && c->spool_error == 0 && c->spool != NULL)
                c->spool_error = spool_append(c->spool, ev.ptr, ev.len);
            break;
        case SMTP_EVENT_DATA_END:
            a = session_data_end(&c->session, &c->out);
            break;
        case SMTP_EVENT_CHUNK_END:
            a = session_chunk_end(&c->session, &c->out);
            break;
        }
        bool go_on = conn_action(c, a);
        drop_stale_spool(c);
        if (!go_on) {
            if (a == SESSION_ACTION_DROP_INPUT || a == SESSION_ACTION_STARTTLS) {
                off = len;
                c->drop_read = true;
            }
            break;
        }
    }
    *consumed = off;
}

/* on_alloc - every read uses the server's one read buffer: reads are handled to the end
 * before the next one, so idle connections reserve no buffer. */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)suggested;
    struct conn *c = h->data;
    *b = uv_buf_init(c->srv->read_buffer, sizeof(c->srv->read_buffer));
}

/* conn_peer_closed - the client ended its side (EOF, or close_notify under TLS): nothing
 * after it is read. A client may half-close after its QUIT: let the goodbye go out first. */
static void conn_peer_closed(struct conn *c, const char *reason)
{
    if (c->close_after_write && c->write_pending > 0) {
        c->read_eof = true;
        conn_update_reading(c);
        return;
    }
    conn_close(c, reason);
}

/* conn_input - plaintext from the client: handled at once when nothing is waiting
 * (straight from the caller's buffer), otherwise, and for what cannot be handled now,
 * copied into held. */
static void conn_input(struct conn *c, const char *data, size_t len)
{
    size_t used = 0;
    if (c->delivery == NULL && c->held.len == 0) {
        conn_process(c, data, len, &used);
        if (c->closing)
            return;
        if (c->close_after_write)
            used = len;
    }
    if (used < len && buf_append(&c->held, data + used, len - used) != 0)
        conn_close(c, "out of memory");
}

/* conn_tls_input - ciphertext from the client: feed it to tls, then decrypt into the
 * shared read buffer (tls holds its own copy) and handle the plaintext piece by piece (one
 * record at a time). Input dropped behind a refused DATA or BDAT is the rest of the read, as
 * on a plain connection: the later records of this read go with it. */
static void conn_tls_input(struct conn *c, const char *data, size_t len)
{
    if (tls_conn_feed(c->tls, data, len) != 0) {
        conn_close(c, "out of memory");
        return;
    }
    c->drop_read = false;
    for (;;) {
        bool was_established = tls_conn_established(c->tls);
        size_t n = 0;
        enum tls_read_status st =
            tls_conn_read(c->tls, c->srv->read_buffer, sizeof(c->srv->read_buffer), &n);
        if (!was_established && tls_conn_established(c->tls))
            conn_tls_ready(c);
        if (st == TLS_READ_AGAIN)
            break;
        if (st == TLS_READ_DATA) {
            if (!c->close_after_write && !c->drop_read)
                conn_input(c, c->srv->read_buffer, n);
            if (c->closing)
                return;
            continue;
        }
        if (st == TLS_READ_CLOSED) {
            /* Whatever follows a close_notify, plaintext included, is never processed. A
             * goodbye answered in this same read (QUIT, then close_notify) still goes out. */
            if (c->close_after_write) {
                c->read_eof = true;
                break;
            }
            conn_peer_closed(c, "client sent TLS close_notify");
            return;
        }
        log_info("conn %s %s:%u TLS failed: %s", c->id, c->address, c->port,
                 tls_conn_error(c->tls));
        /* Send the alert tls queued, then close; input meanwhile is thrown away. Replies to
         * earlier records of this read cannot follow a fatal alert: encrypting them would
         * fail and lose the alert too. */
        conn_keep(&c->out);
        c->close_after_write = true;
        break;
    }
    conn_resume(c);
}

/* on_read - new bytes: process them, or hold them while a delivery runs. */
static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *b)
{
    struct conn *c = stream->data;
    if (c->closing)
        return;
    if (nread == UV_EOF) {
        conn_peer_closed(c, "client closed the connection");
        return;
    }
    if (nread < 0) {
        conn_close(c, uv_strerror((int)nread));
        return;
    }
    if (nread == 0)
        return;
    size_t len = (size_t)nread;
    if (c->close_after_write)
        return; /* a goodbye is on its way: nothing more is read (RFC 5321 §4.1.1.10) */
    if (c->tls != NULL) {
        conn_tls_input(c, b->base, len);
        return;
    }
    conn_input(c, b->base, len);
    if (c->closing)
        return;
    conn_resume(c);
}

/* conn_read_start - start reading (used by conn_update_reading). */
static void conn_read_start(struct conn *c)
{
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc < 0) {
        conn_close(c, uv_strerror(rc));
        return;
    }
    c->reading = true;
}

/* peer_name - the peer's address as text and its port. */
static int peer_name(uv_tcp_t *tcp, char *addr, size_t addrlen, uint16_t *port)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    int rc = uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len);
    if (rc < 0)
        return rc;
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
        /* An IPv4 client on a dual-stack socket is shown as IPv4. */
        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            struct sockaddr_in sin;
            memset(&sin, 0, sizeof(sin));
            sin.sin_family = AF_INET;
            memcpy(&sin.sin_addr, &sin6->sin6_addr.s6_addr[12], 4);
            sin.sin_port = sin6->sin6_port;
            *port = ntohs(sin6->sin6_port);
            return uv_ip4_name(&sin, addr, addrlen);
        }
        *port = ntohs(sin6->sin6_port);
        return uv_ip6_name(sin6, addr, addrlen);
    }
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
    *port = ntohs(sin->sin_port);
    return uv_ip4_name(sin, addr, addrlen);
}

/* conn_accept - see conn.h. */
int conn_accept(struct server *srv, uv_stream_t *listener)
{
    const struct config_listener *lcfg = ((const struct server_listener *)listener)->cfg;
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return SH_ENOMEM;
    c->srv = srv;
    /* Neither can fail: a tcp handle without a socket and a timer only fill in fields. */
    uv_tcp_init(srv->loop, &c->tcp);
    uv_timer_init(srv->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles_open = 2;
    smtp_parser_init(&c->parser, srv->cfg->limits.max_command_line_bytes);
    snprintf(c->id, sizeof(c->id), "%s%" PRIx64, srv->id_seed, srv->next_conn++);
    session_init(&c->session, srv->cfg, "", 0, c->id);

    /* Linked before anything can fail, so conn_close always finds it in the list. */
    c->next = srv->conns;
    if (srv->conns != NULL)
        srv->conns->prev = c;
    srv->conns = c;

    int rc = uv_accept(listener, (uv_stream_t *)&c->tcp);
    if (rc == 0)
        rc = peer_name(&c->tcp, c->address, sizeof(c->address), &c->port);
    if (rc != 0) {
        log_warn("accept: %s", uv_strerror(rc));
        conn_close(c, "accept failed");
        return 0;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    session_init(&c->session, srv->cfg, c->address, c->port, c->id);
    session_set_tls_policy(&c->session, lcfg->tls == CONFIG_TLS_STARTTLS && srv->tls != NULL,
                           lcfg->require_tls);
    c->implicit_tls = lcfg->tls == CONFIG_TLS_IMPLICIT;

    /* A refusal on an implicit TLS listener is a plain close: a TLS client cannot read a
     * plaintext 421. */
    const struct config_limits *lim = &srv->cfg->limits;
    if (srv->stopping) {
        if (!c->implicit_tls)
            reply_write(&c->out, REPLY_SHUTDOWN, srv->cfg->hostname);
        c->close_after_write = true;
    } else if (srv->n_conns >= lim->max_connections ||
               server_conn_count_from(srv, c->address) >= lim->max_connections_per_client) {
        log_warn("conn %s:%u refused: too many connections", c->address, c->port);
        if (!c->implicit_tls)
            reply_write(&c->out, REPLY_TOO_MANY_CONNECTIONS, srv->cfg->hostname);
        c->close_after_write = true;
    } else {
        c->counted = true;
        srv->n_conns++;
        log_debug("conn %s %s:%u accepted", c->id, c->address, c->port);
        if (!c->implicit_tls) {
            session_greeting(&c->session, &c->out);
        } else if (srv->tls == NULL || conn_tls_start(c) != 0) {
            conn_close(c, "cannot start TLS");
            return 0;
        }
    }
    conn_flush(c);
    if (!c->closing)
        conn_update_reading(c);
    return 0;
}

/* conn_abort - see conn.h. Best effort: whatever the socket does not take at once is lost
 * with the close, which is what a bounded shutdown means. */
void conn_abort(struct conn *c, const char *reason)
{
    if (c->closing)
        return;
    if (c->write_pending == 0 && !c->close_after_write && !conn_handshaking(c)) {
        reply_write(&c->out, REPLY_SHUTDOWN, c->srv->cfg->hostname);
        c->close_after_write = true; /* with TLS, the 421 is followed by close_notify */
        struct buf *send = conn_encode(c);
        if (send == NULL)
            return; /* conn_encode closed it */
        if (send->len > 0) {
            uv_buf_t b = uv_buf_init(send->data, (unsigned)send->len);
            uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        }
    }
    conn_close(c, reason);
}

/* conn_shutdown - see conn.h. */
void conn_shutdown(struct conn *c)
{
    if (c->closing)
        return;
    if (conn_handshaking(c)) {
        conn_close(c, "server stopping during the TLS handshake");
        return;
    }
    if (session_shutdown(&c->session, &c->out) == SESSION_ACTION_CLOSE)
        c->close_after_write = true;
    conn_flush(c);
    conn_update_reading(c);
}
