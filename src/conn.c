/* conn.c - one client connection: the I/O shell around smtp_engine.
 *
 * Owns the socket, the timer, the write queue, the held input and the transaction being
 * delivered. Reads land in the server's shared read buffer; only input that must wait (a
 * delivery runs, replies pile up) is copied into the connection. With TLS the whole read is
 * decrypted into that buffer first (tls has copied the ciphertext by then) and replies are
 * encrypted on their way out. Knows nothing of HTTP beyond delivery.h, of OpenSSL beyond
 * tls.h, nor of the server beyond conn_shared. */
#include "smtphook/conn.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtphook/buf.h"
#include "smtphook/delivery.h"
#include "smtphook/error.h"
#include "smtphook/log.h"
#include "smtphook/proxy_proto.h"
#include "smtphook/rcpt_check.h"
#include "smtphook/smtp_engine.h"
#include "smtphook/txn.h"

#define CONN_HELD_MAX_BYTES  65536  /* input held during a delivery before reading pauses */
#define CONN_WRITE_MAX_BYTES 262144 /* unsent replies before reading pauses */
#define CONN_OUT_KEEP_BYTES  4096   /* reply buffer kept between reads; larger ones are freed */
#define CONN_ADDRESS_MAX     64     /* peer IP as text */
#define CONN_ID_MAX          32     /* connection id */

struct conn {
    const struct conn_shared *sh;       /* loop, config, clients, read buffer (not owned) */
    void *closed_arg;                   /* passed to sh->closed */
    const struct config_listener *lcfg; /* the listener it came in on */
    uv_tcp_t tcp;                       /* the socket */
    uv_timer_t timer;                   /* idle, write and handshake timeout */
    unsigned handles_open;              /* tcp and timer until their close callbacks ran */
    struct smtp_engine engine;          /* parser, session, replies (engine.out) */
    bool engine_ready;                  /* engine initialised (conn_accepted ran) */
    struct tls_conn *tls;               /* TLS state after STARTTLS or on an implicit listener */
    struct buf wire;                    /* TLS: ciphertext not yet handed to the socket */
    uint64_t handshake_deadline;        /* loop time by which the TLS handshake must be done */
    bool implicit_tls;                  /* TLS from the first byte: greet after the handshake */
    bool tls_close_sent;                /* our close_notify is queued */
    struct buf held;                    /* input received while it could not be handled */
    struct txn *txn;                    /* the transaction being delivered, or NULL */
    struct delivery *delivery;          /* its running delivery, or NULL */
    struct queue_ticket *enqueue;       /* its shares being written to the queue, or NULL */
    struct delivery *stream;            /* the message being streamed as it arrives, or NULL */
    struct conn_check *checks;          /* recipient checks under way */
    size_t write_pending;               /* bytes in uv_write requests not yet completed */
    bool reading;                       /* uv_read_start is in effect */
    bool read_eof;                      /* the client ended its side: nothing more is read */
    const char *eof_reason;             /* how it ended (static): the reason logged at the close */
    bool close_after_write;             /* close once write_pending reaches 0 */
    bool closing;                       /* conn_close has run */
    char address[CONN_ADDRESS_MAX];     /* client IP as text (the PROXY header's, if any) */
    uint16_t port;                      /* client port */
    struct sockaddr_storage client;     /* the client: the socket's peer, or the address a
                                           PROXY header names */
    bool awaiting_proxy;                /* a PROXY listener: no header yet */
    uint64_t proxy_deadline;            /* loop time by which the header must be in */
    struct buf proxy_in;                /* the header's bytes while it is split across reads */
    uint64_t line_since;                /* loop time a partial command line began, 0: none */
    uint64_t body_since;                /* loop time the message body began, 0: none */
    uint64_t line_deadline;             /* the deadlines the timer was last armed for (0: */
    uint64_t body_deadline;             /* none): which one ran out */
    char id[CONN_ID_MAX];               /* connection id, prefix of transaction ids */
};

/* A recipient check under way for this connection. */
struct conn_check {
    struct conn *c;                 /* owner */
    size_t index;                   /* the RCPT it answers (session_take_check) */
    struct rcpt_check_request *req; /* the request */
    struct conn_check *next;        /* c->checks */
};

struct conn_write {
    uv_write_t req; /* libuv request; req.data is the conn */
    size_t len;     /* bytes in data */
    char data[];    /* copy of the replies */
};

static void conn_update_reading(struct conn *c);
static void conn_resume(struct conn *c);
static void conn_start_checks(struct conn *c, bool more);

/* on_handle_closed - free the connection after its last handle is closed. */
static void on_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->handles_open > 0)
        return;
    if (c->engine_ready)
        smtp_engine_free(&c->engine);
    txn_free(c->txn);
    tls_conn_free(c->tls);
    buf_free(&c->proxy_in);
    buf_free(&c->wire);
    buf_free(&c->held);
    free(c);
}

/* conn_close - see conn.h. The server hears of it at once, so that the connection limits
 * count it free even before libuv has closed its handles. */
void conn_close(struct conn *c, const char *reason)
{
    if (c->closing)
        return;
    c->closing = true;
    log_debug("conn %s %s:%u closed: %s", c->id, c->address, c->port, reason);

    if (c->stream != NULL) { /* its requests are cut off mid-body */
        delivery_cancel(c->stream);
        c->stream = NULL;
    }
    if (c->delivery != NULL) {
        log_info("txn id=%s cancelled: %s", c->txn->env.id, reason);
        delivery_cancel(c->delivery);
        c->delivery = NULL;
    } else if (c->enqueue != NULL) { /* the queue finishes the write and frees it */
        log_info("txn id=%s: client gone while it is queued: %s", c->txn->env.id, reason);
        queue_abandon(c->enqueue);
        c->enqueue = NULL;
        c->txn = NULL;
    } else if (c->engine_ready && smtp_engine_txn(&c->engine) != NULL) {
        log_info("txn id=%s abandoned: %s", smtp_engine_txn(&c->engine)->env.id, reason);
    }
    txn_free(c->txn);
    c->txn = NULL;
    while (c->checks != NULL) {
        struct conn_check *k = c->checks;
        c->checks = k->next;
        rcpt_check_cancel(k->req);
        free(k);
    }
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    c->sh->closed(c->closed_arg);
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
        conn_close(c, c->eof_reason != NULL ? c->eof_reason : "closed by server");
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
    struct buf *out = &c->engine.out;
    if (out->failed) {
        conn_close(c, "out of memory for replies");
        return NULL;
    }
    if (c->tls == NULL)
        return out;
    if (out->len > 0) {
        if (tls_conn_write(c->tls, out->data, out->len) != 0) {
            conn_close(c, tls_conn_error(c->tls));
            return NULL;
        }
        conn_keep(out);
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
        conn_close(c, c->eof_reason != NULL ? c->eof_reason : "closed by server");
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
    if (c->awaiting_proxy) {
        log_info("conn %s %s:%u dropped: no PROXY header within %" PRIu64 " ms", c->id, c->address,
                 c->port, c->lcfg->proxy_timeout_ms);
        stats_refused(c->sh->stats, "proxy_timeout"); /* never accepted: it named no client */
        conn_close(c, "PROXY header timeout");
        return;
    }
    if (conn_handshaking(c)) {
        log_info("conn %s %s:%u dropped: TLS handshake not done within %" PRIu64 " ms", c->id,
                 c->address, c->port, c->sh->cfg->tls.handshake_timeout_ms);
        stats_dropped(c->sh->stats, "tls_handshake_timeout");
        conn_close(c, "TLS handshake timeout");
        return;
    }
    if (c->close_after_write || c->write_pending > 0) {
        log_info("conn %s %s:%u dropped: write timeout (the client does not read)", c->id,
                 c->address, c->port);
        conn_close(c, "write timeout");
        return;
    }
    if (c->delivery != NULL || c->enqueue != NULL || c->checks != NULL)
        return;
    uint64_t now = uv_now(c->sh->loop);
    enum reply_id why = REPLY_TIMEOUT;
    const char *cause = "idle_timeout";
    if (c->line_deadline != 0 && now >= c->line_deadline) {
        why = REPLY_COMMAND_TIMEOUT;
        cause = "command_timeout";
        log_info("conn %s %s:%u dropped: a command line not whole within %" PRIu64 " ms", c->id,
                 c->address, c->port, c->sh->cfg->limits.command_timeout_ms);
    } else if (c->body_deadline != 0 && now >= c->body_deadline) {
        why = REPLY_DATA_TOO_SLOW;
        cause = "data_too_slow";
        log_info("conn %s %s:%u dropped: message data slower than %" PRIu64 " bytes/s", c->id,
                 c->address, c->port, c->sh->cfg->limits.min_data_rate);
    }
    stats_dropped(c->sh->stats, cause);
    smtp_engine_timeout_for(&c->engine, why);
    c->close_after_write = true;
    conn_flush(c);
    conn_update_reading(c); /* re-arms the timer: a 421 nobody reads is a write timeout */
}

/* on_alloc - every read uses the server's one read buffer: reads are handled to the end
 * before the next one, so idle connections reserve no buffer. */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)suggested;
    struct conn *c = h->data;
    *b = uv_buf_init(c->sh->read_buffer, (unsigned)c->sh->read_buffer_size);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *b);
static uint64_t conn_wait_ms(struct conn *c);
static void conn_proxy_input(struct conn *c, const char *data, size_t len);

/* conn_wait_ms - how long the client may now keep us waiting: the idle timeout, which every
 * byte restarts, bounded by the deadlines a slow client cannot push away: a command line
 * must be whole within command_timeout_ms of its first byte, and a message body must keep
 * min_data_rate bytes a second after its grace period (Postfix's per-request deadline and
 * smtpd_min_data_rate). While replies wait to be written, only the idle timeout counts. */
static uint64_t conn_wait_ms(struct conn *c)
{
    const struct config_limits *lim = &c->sh->cfg->limits;
    uint64_t now = uv_now(c->sh->loop);
    uint64_t wait = lim->idle_timeout_ms;
    c->line_deadline = c->body_deadline = 0;
    if (!c->engine_ready || c->close_after_write || c->write_pending > 0)
        return wait;
    if (lim->command_timeout_ms > 0 && smtp_engine_in_line(&c->engine)) {
        if (c->line_since == 0)
            c->line_since = now;
        c->line_deadline = c->line_since + lim->command_timeout_ms;
    } else {
        c->line_since = 0;
    }
    uint64_t bytes = 0;
    if (lim->min_data_rate > 0 && smtp_engine_body(&c->engine, &bytes)) {
        if (c->body_since == 0)
            c->body_since = now;
        c->body_deadline =
            c->body_since + lim->data_rate_grace_ms + bytes * 1000 / lim->min_data_rate;
    } else {
        c->body_since = 0;
    }
    uint64_t deadlines[2] = {c->line_deadline, c->body_deadline};
    for (size_t i = 0; i < 2; i++) {
        if (deadlines[i] != 0 && deadlines[i] - now < wait)
            wait = deadlines[i] > now ? deadlines[i] - now : 0;
    }
    return wait;
}

/* conn_update_reading - read while nothing stops it: too much input held, too much unsent
 * output, the client's end of input. The timer runs whenever the connection waits for the
 * client, to read from it or to write to it; it stops only while we wait for the webhook or
 * for recipient checks (each bounded by its own timeout), since then the client waits for us. */
static void conn_update_reading(struct conn *c)
{
    if (c->closing)
        return;
    /* While a goodbye is queued, input is still read (and thrown away): unread input at
     * close makes the kernel send a reset that can destroy the goodbye in flight. */
    bool want = !c->read_eof && (c->close_after_write || (c->write_pending < CONN_WRITE_MAX_BYTES &&
                                                          c->held.len < CONN_HELD_MAX_BYTES));
    if (want && !c->reading) {
        int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        if (rc < 0) {
            conn_close(c, uv_strerror(rc));
            return;
        }
        c->reading = true;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
    if (c->awaiting_proxy) {
        /* One deadline for the header, however it is split. */
        uint64_t now = uv_now(c->sh->loop);
        uint64_t left = c->proxy_deadline > now ? c->proxy_deadline - now : 0;
        uv_timer_start(&c->timer, on_timeout, left, 0);
    } else if (conn_handshaking(c)) {
        /* One deadline for the whole handshake: a client dribbling bytes does not extend it. */
        uint64_t now = uv_now(c->sh->loop);
        uint64_t left = c->handshake_deadline > now ? c->handshake_deadline - now : 0;
        uv_timer_start(&c->timer, on_timeout, left, 0);
    } else if ((c->delivery == NULL && c->enqueue == NULL && c->checks == NULL) ||
               c->close_after_write || c->write_pending > 0)
        uv_timer_start(&c->timer, on_timeout, conn_wait_ms(c), 0);
    else
        uv_timer_stop(&c->timer);
}

/* conn_delivered - the reply of the delivered (or undeliverable) transaction goes out; the
 * transaction ends here. */
static void conn_delivered(struct conn *c)
{
    struct txn *t = c->txn;
    c->txn = NULL;
    txn_log(t, log_unix_ms());
    stats_reply(c->sh->stats, SMTP_VERB_DATA, true, t->reply.code);
    stats_transaction(c->sh->stats, t->reply.code);
    if (smtp_engine_delivered(&c->engine, &t->reply) == SMTP_ENGINE_CLOSE)
        c->close_after_write = true;
    txn_free(t);
}

/* conn_not_queued - the 250 cannot stand: the queue is full (452 4.3.1) or could not write
 * (451 4.3.0); the sender tries again later. */
static void conn_not_queued(struct txn *t, int rc)
{
    struct app_reply *r = &t->reply;
    txn_clear_shares(t);
    r->code = rc == SH_ENOSPACE ? 452 : 451;
    snprintf(r->esc, sizeof(r->esc), "%s", rc == SH_ENOSPACE ? "4.3.1" : "4.3.0");
    snprintf(r->text, sizeof(r->text), "Error: %s, try again later (id %s)",
             rc == SH_ENOSPACE ? "queue full" : "local problem", t->env.id);
}

/* on_queued - queue_done_fn: the shares are on disk (the 250 stands) or not. */
static void on_queued(void *arg, struct txn *t, int rc)
{
    struct conn *c = arg;
    c->enqueue = NULL;
    if (rc != 0)
        conn_not_queued(t, rc);
    conn_delivered(c);
    conn_resume(c);
}

/* on_delivered - the webhook outcome arrived: reply, log, then continue with any input
 * that was held while waiting. Shares for the queue are written first: the reply says
 * 250 only once they are on disk. */
static void on_delivered(void *arg, struct txn *t)
{
    struct conn *c = arg;
    c->delivery = NULL;
    if (t->n_shares > 0 && t->reply.code / 100 == 2) {
        int rc = c->sh->queue != NULL
                     ? queue_enqueue(c->sh->queue, c->sh->cfg, t, on_queued, c, &c->enqueue)
                     : SH_EIO;
        if (rc == 0)
            return;
        log_warn("txn id=%s cannot be queued: %s", t->env.id, sh_strerror(rc));
        conn_not_queued(t, rc);
    }
    conn_delivered(c);
    conn_resume(c);
}

/* conn_stream_dropped - txn_free's hook: the message being streamed is dropped (too big, a
 * BDAT error, RSET, the session's end): its requests are cut off mid-body. */
static void conn_stream_dropped(void *arg)
{
    struct conn *c = arg;
    if (c->stream != NULL) {
        delivery_cancel(c->stream);
        c->stream = NULL;
    }
}

/* conn_stream_step - after input: a body that has just begun opens its streamed requests
 * (when an endpoint of the message streams); one being streamed sends what arrived. The
 * transaction's free hook marks it as seen, and tells us when it is dropped. */
static void conn_stream_step(struct conn *c)
{
    if (!c->sh->cfg->any_stream || !c->engine_ready)
        return;
    struct txn *t = smtp_engine_body_txn(&c->engine);
    if (t == NULL || t->spool == NULL)
        return;
    if (t->on_free == NULL) {
        t->on_free = conn_stream_dropped;
        t->on_free_arg = c;
        if (delivery_stream_open(c->sh->delivery, t, &c->stream) != 0)
            log_error("txn id=%s: cannot stream the message, it is sent once complete", t->env.id);
    }
    delivery_stream_more(c->stream);
}

/* conn_deliver - the engine has a complete message: hand it to the delivery (a streamed one
 * goes on). If that cannot start, the sender gets 451 so that it tries again. */
static void conn_deliver(struct conn *c)
{
    c->txn = smtp_engine_take_txn(&c->engine);
    stats_message(c->sh->stats, c->txn->env.size);
    if (c->txn->on_free == conn_stream_dropped)
        c->txn->on_free = NULL; /* ours now: freed when delivered */
    if (c->stream != NULL) {
        c->delivery = c->stream;
        c->stream = NULL;
        delivery_stream_commit(c->delivery, on_delivered, c);
        return;
    }
    if (delivery_start(c->sh->delivery, c->txn, on_delivered, c, &c->delivery) == 0)
        return;
    c->delivery = NULL;
    struct app_reply *r = &c->txn->reply;
    log_error("txn id=%s local failure: cannot start delivery", c->txn->env.id);
    r->code = 451;
    snprintf(r->esc, sizeof(r->esc), "4.3.0");
    snprintf(r->text, sizeof(r->text), "Error: local problem, try again later (id %s)",
             c->txn->env.id);
    conn_delivered(c);
}

/* conn_tls_start - begin the server side of a handshake; the deadline starts now. */
static int conn_tls_start(struct conn *c)
{
    int rc = tls_conn_new(c->sh->tls, &c->tls);
    if (rc != 0)
        return rc;
    c->handshake_deadline = uv_now(c->sh->loop) + c->sh->cfg->tls.handshake_timeout_ms;
    return 0;
}

/* conn_tls_ready - the handshake finished: the session starts over with the TLS facts
 * (RFC 3207 §4.2); an implicit TLS listener greets only now. */
static void conn_tls_ready(struct conn *c)
{
    const struct envelope_tls *info = tls_conn_info(c->tls);
    stats_tls(c->sh->stats, info->version);
    log_info("conn %s %s:%u TLS %s %s sni=%s client_cert=%s", c->id, c->address, c->port,
             info->version, info->cipher, info->sni ? info->sni : "-",
             info->peer_subject ? info->peer_subject : "-");
    smtp_engine_tls_started(&c->engine, info, c->implicit_tls);
}

/* conn_carry - carry out where the engine stopped (a feed, or a check's answer). */
static void conn_carry(struct conn *c, enum smtp_engine_stop st)
{
    switch (st) {
    case SMTP_ENGINE_IDLE:
    case SMTP_ENGINE_FULL:
    case SMTP_ENGINE_WAIT:
        break;
    case SMTP_ENGINE_DELIVER:
        conn_deliver(c);
        break;
    case SMTP_ENGINE_STARTTLS:
        /* The 220 goes out in plaintext; the engine dropped whatever the client sent behind
         * STARTTLS (RFC 3207 §4.2, CVE-2011-0411). */
        conn_flush(c);
        if (!c->closing && conn_tls_start(c) != 0)
            conn_close(c, "cannot start TLS: out of memory");
        break;
    case SMTP_ENGINE_CLOSE:
    default:
        if (c->engine.session.ended_for != NULL)
            stats_dropped(c->sh->stats, c->engine.session.ended_for);
        c->close_after_write = true;
        break;
    }
}

/* conn_check_answer - a recipient check has its answer: the replies due go out in order,
 * and the command that waited for them may run. more: input waits behind it. */
static void conn_check_answer(struct conn *c, size_t index, const struct rcpt_check_result *r,
                              bool more)
{
    if (c->closing || c->close_after_write)
        return;
    conn_carry(
        c, smtp_engine_rcpt_checked(&c->engine, index, r->accept, &r->reply, more, log_unix_ms()));
}

/* on_checked - a check's request finished. An RCPT that waited for room in the line runs
 * once the line is empty and may queue a check of its own: it is started here, as after a
 * feed, since the client may send nothing more before it has its reply. */
static void on_checked(void *arg, const struct rcpt_check_result *r)
{
    struct conn_check *k = arg;
    struct conn *c = k->c;
    struct conn_check **p = &c->checks;
    while (*p != k)
        p = &(*p)->next;
    *p = k->next;
    size_t index = k->index;
    free(k);
    conn_check_answer(c, index, r, c->held.len > 0);
    conn_start_checks(c, c->held.len > 0);
    conn_resume(c);
}

/* conn_start_checks - start the recipient checks the engine queued; an answer from the
 * cache is applied at once. more: input waits behind the feed that queued them. */
static void conn_start_checks(struct conn *c, bool more)
{
    long index;
    while (!c->closing && (index = smtp_engine_take_check(&c->engine)) >= 0) {
        const struct txn *t = smtp_engine_txn(&c->engine);
        const struct envelope *env = t != NULL ? &t->env : NULL;
        struct rcpt_check_query q = {
            session_check_recipient(&c->engine.session, (size_t)index),
            env != NULL ? env->mail_from : "",
            c->address,
            c->port,
            env != NULL ? env->helo : NULL,
            env != NULL ? &env->tls : NULL,
        };
        struct rcpt_check_result r;
        struct conn_check *k = calloc(1, sizeof(*k));
        int rc = k == NULL ? SH_ENOMEM
                           : rcpt_check_start(c->sh->rcpt_check, &q, on_checked, k, &r, &k->req);
        if (rc == 0) { /* under way */
            k->c = c;
            k->index = (size_t)index;
            k->next = c->checks;
            c->checks = k;
            continue;
        }
        free(k);
        if (rc != 1) { /* no memory to ask: the sender tries again later */
            memset(&r, 0, sizeof(r));
            r.reply.code = 451;
            snprintf(r.reply.esc, sizeof(r.reply.esc), "4.3.0");
            snprintf(r.reply.text, sizeof(r.reply.text), "Error: local problem, try again later");
        }
        conn_check_answer(c, (size_t)index, &r, more);
    }
}

/* conn_feed - run input through the engine and carry out where it stopped. Returns the
 * bytes used; the rest must wait (a delivery runs, a command waits for recipient checks,
 * or replies pile up). */
static size_t conn_feed(struct conn *c, const char *data, size_t len)
{
    enum smtp_engine_stop st;
    size_t used = smtp_engine_feed(&c->engine, data, len, c->write_pending, log_unix_ms(), &st);
    if (st == SMTP_ENGINE_CLOSE || st == SMTP_ENGINE_STARTTLS)
        used = len;
    conn_stream_step(c);
    conn_carry(c, st);
    if (c->sh->rcpt_check != NULL)
        conn_start_checks(c, used < len); /* when fed from held, data is the held input */
    return used;
}

/* conn_busy - input must wait: a delivery runs or recipient checks are pending. */
static bool conn_busy(const struct conn *c)
{
    return c->delivery != NULL || c->enqueue != NULL || smtp_engine_waiting(&c->engine);
}

/* conn_settle - after the client's end of input: once no delivery runs and no held
 * command is left, the last replies go out and the connection closes. */
static void conn_settle(struct conn *c)
{
    if (!c->read_eof || c->close_after_write || conn_busy(c) || c->held.len > 0 ||
        smtp_engine_pending(&c->engine))
        return;
    c->close_after_write = true;
}

/* conn_resume - handle held input as far as possible (no delivery running, replies not
 * piling up), send the replies and decide about reading. Called after every event that can
 * unblock a connection: a read, a finished write, a delivery outcome. */
static void conn_resume(struct conn *c)
{
    while (!c->closing && !c->close_after_write && !conn_busy(c) &&
           (c->held.len > 0 || smtp_engine_pending(&c->engine)) &&
           c->write_pending < CONN_WRITE_MAX_BYTES) {
        size_t used = conn_feed(c, c->held.len > 0 ? c->held.data : "", c->held.len);
        if (c->closing)
            return;
        buf_consume(&c->held, c->close_after_write ? c->held.len : used);
        conn_flush(c);
    }
    if (c->closing)
        return;
    if (c->held.len == 0)
        buf_free(&c->held);
    conn_settle(c);
    conn_flush(c);
    conn_update_reading(c);
}

/* conn_input - plaintext from the client: handled at once when nothing is waiting
 * (straight from the caller's buffer), otherwise, and for what cannot be handled now,
 * copied into held. */
static void conn_input(struct conn *c, const char *data, size_t len)
{
    size_t used = 0;
    if (c->close_after_write)
        return; /* a goodbye is on its way: nothing more is read (RFC 5321 §4.1.1.10) */
    if (!conn_busy(c) && c->held.len == 0) {
        used = conn_feed(c, data, len);
        if (c->closing || c->close_after_write)
            return;
    }
    if (used < len && buf_append(&c->held, data + used, len - used) != 0)
        conn_close(c, "out of memory");
}

/* conn_peer_closed - the client ended its side (EOF, or close_notify under TLS): nothing
 * after it is read. A client may send its last commands and half-close at once: the
 * delivery under way and the commands held behind it still run and are answered before
 * the close (conn_settle). */
static void conn_peer_closed(struct conn *c, const char *reason)
{
    c->read_eof = true;
    if (!c->close_after_write)
        c->eof_reason = reason;
    conn_resume(c);
}

/* conn_tls_input - ciphertext from the client: feed it to tls, decrypt the whole read into
 * the shared read buffer (tls holds its own copy of the ciphertext), then handle the
 * plaintext as a plain connection handles a read. */
static void conn_tls_input(struct conn *c, const char *data, size_t len)
{
    if (tls_conn_feed(c->tls, data, len) != 0) {
        conn_close(c, "out of memory");
        return;
    }
    char *buf = c->sh->read_buffer;
    size_t cap = c->sh->read_buffer_size, have = 0;
    bool spilled = false;
    enum tls_read_status st;
    for (;;) {
        bool was_established = tls_conn_established(c->tls);
        size_t n = 0;
        st = tls_conn_read(c->tls, buf + have, cap - have, &n);
        if (!was_established && tls_conn_established(c->tls))
            conn_tls_ready(c);
        if (st != TLS_READ_DATA)
            break;
        have += n;
        if (have == cap) {
            /* More plaintext than the buffer: it waits in held, so that the whole read is
             * fed at once (a refused DATA must see everything behind it). */
            if (buf_append(&c->held, buf, have) != 0) {
                conn_close(c, "out of memory");
                return;
            }
            spilled = true;
            have = 0;
        }
    }
    if (st == TLS_READ_ERROR) {
        if (!tls_conn_established(c->tls)) /* a bad record later is no failed handshake */
            stats_tls(c->sh->stats, NULL);
        log_info("conn %s %s:%u TLS failed: %s", c->id, c->address, c->port,
                 tls_conn_error(c->tls));
        /* Send the alert tls queued, then close; the plaintext of this read is thrown away.
         * Replies cannot follow a fatal alert: encrypting them would fail and lose the
         * alert too. */
        conn_keep(&c->engine.out);
        c->close_after_write = true;
        conn_resume(c);
        return;
    }
    if (spilled && have > 0 && buf_append(&c->held, buf, have) != 0) {
        conn_close(c, "out of memory");
        return;
    }
    if (!spilled && have > 0)
        conn_input(c, buf, have);
    if (c->closing)
        return;
    if (st == TLS_READ_CLOSED) {
        /* Whatever follows a close_notify, plaintext included, is never processed. */
        conn_peer_closed(c, "client sent TLS close_notify");
        return;
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
    if (nread == 0 || c->read_eof)
        return;
    size_t len = (size_t)nread;
    if (c->close_after_write)
        return; /* a goodbye is on its way: nothing more is read (RFC 5321 §4.1.1.10) */
    if (c->awaiting_proxy) {
        conn_proxy_input(c, b->base, len);
        return;
    }
    if (c->tls != NULL) {
        conn_tls_input(c, b->base, len);
        return;
    }
    conn_input(c, b->base, len);
    if (c->closing)
        return;
    conn_resume(c);
}

/* address_name - an address as text and its port. */
static int address_name(const struct sockaddr_storage *ss, char *addr, size_t addrlen,
                        uint16_t *port)
{
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
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
    const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
    *port = ntohs(sin->sin_port);
    return uv_ip4_name(sin, addr, addrlen);
}

/* peer_name - the socket's peer into ss, and as text with its port. */
static int peer_name(uv_tcp_t *tcp, struct sockaddr_storage *ss, char *addr, size_t addrlen,
                     uint16_t *port)
{
    int len = sizeof(*ss);
    int rc = uv_tcp_getpeername(tcp, (struct sockaddr *)ss, &len);
    return rc < 0 ? rc : address_name(ss, addr, addrlen, port);
}

/* conn_new - see conn.h. */
int conn_new(const struct conn_shared *shared, const struct config_listener *l, const char *id,
             void *closed_arg, struct conn **out)
{
    *out = NULL;
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return SH_ENOMEM;
    c->sh = shared;
    c->closed_arg = closed_arg;
    c->lcfg = l;
    c->implicit_tls = l->tls == CONFIG_TLS_IMPLICIT;
    /* Neither can fail: a tcp handle without a socket and a timer only fill in fields. */
    uv_tcp_init(shared->loop, &c->tcp);
    uv_timer_init(shared->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles_open = 2;
    snprintf(c->id, sizeof(c->id), "%s", id);
    *out = c;
    return 0;
}

/* conn_stream - see conn.h. */
uv_stream_t *conn_stream(struct conn *c)
{
    return (uv_stream_t *)&c->tcp;
}

/* conn_route_down - session_route_down_fn: ask the deliveries' circuit breakers. */
static bool conn_route_down(void *arg, long route)
{
    const struct conn *c = arg;
    return delivery_route_down(c->sh->delivery, route);
}

/* conn_no_room - session_room_fn: the queue is full for a message that would be queued
 * (at MAIL: when every message is). */
static bool conn_no_room(void *arg, long route)
{
    const struct conn *c = arg;
    const struct config *cfg = c->sh->cfg;
    if (c->sh->queue == NULL)
        return false;
    if (route == SESSION_ANY_ROUTE ? !cfg->queue_only
                                   : config_route_delivery(cfg, route) != CONFIG_DELIVERY_QUEUE)
        return false;
    return queue_full(c->sh->queue, 1, 0);
}

/* conn_reply - session_reply_fn: into the metrics. */
static void conn_reply(void *arg, enum smtp_verb verb, unsigned code)
{
    const struct conn *c = arg;
    stats_reply(c->sh->stats, verb, false, code);
}

/* conn_rate - session_rate_fn: the server keeps the client's buckets. */
static bool conn_rate(void *arg, enum rate_kind kind)
{
    const struct conn *c = arg;
    return c->sh->rate_take(c->closed_arg, kind);
}

/* conn_accepted - see conn.h. */
int conn_accepted(struct conn *c)
{
    int rc = peer_name(&c->tcp, &c->client, c->address, sizeof(c->address), &c->port);
    if (rc != 0)
        return rc;
    uv_tcp_nodelay(&c->tcp, 1);
    const struct config *cfg = c->sh->cfg;
    smtp_engine_init(&c->engine, cfg, c->address, c->port, c->id, CONN_WRITE_MAX_BYTES);
    c->engine_ready = true;
    session_set_route_probe(&c->engine.session, conn_route_down, c);
    session_set_room_probe(&c->engine.session, conn_no_room, c);
    if (c->sh->rate_take != NULL)
        session_set_rate_limit(&c->engine.session, conn_rate, c);
    if (c->sh->stats != NULL)
        session_set_reply_hook(&c->engine.session, conn_reply, c);
    session_set_tls_policy(&c->engine.session,
                           c->lcfg->tls == CONFIG_TLS_STARTTLS && c->sh->tls != NULL,
                           c->lcfg->require_tls);
    return 0;
}

/* conn_address - see conn.h. */
const char *conn_address(const struct conn *c)
{
    return c->address;
}

/* conn_client - see conn.h. */
const struct sockaddr *conn_client(const struct conn *c)
{
    return (const struct sockaddr *)&c->client;
}

/* conn_begin - the session starts: the greeting, or on an implicit TLS listener the wait for
 * the client's handshake. */
static void conn_begin(struct conn *c)
{
    if (!c->implicit_tls) {
        smtp_engine_greet(&c->engine);
    } else if (c->sh->tls == NULL || conn_tls_start(c) != 0) {
        conn_close(c, "cannot start TLS");
        return;
    }
    conn_flush(c);
    conn_update_reading(c);
}

/* conn_proxied - the PROXY header: the client it names (unless it is the proxy's own check,
 * LOCAL or UNKNOWN: the socket's peer stays the client) becomes the connection's and the
 * session's, the server counts it for the per-client limit, and the session begins; the
 * bytes after the header are the client's first. */
static void conn_proxied(struct conn *c, const struct proxy_header *h, const char *rest, size_t n)
{
    char proxy[CONN_ADDRESS_MAX];
    uint16_t proxy_port = c->port;
    snprintf(proxy, sizeof(proxy), "%s", c->address);
    if (!h->local) {
        if (address_name(&h->src, c->address, sizeof(c->address), &c->port) != 0) {
            conn_close(c, "PROXY header address not printable");
            return;
        }
        c->client = h->src;
        session_set_client(&c->engine.session, c->address, c->port);
    }
    c->awaiting_proxy = false;
    log_debug("conn %s %s:%u via proxy %s:%u (PROXY v%d%s)", c->id, c->address, c->port, proxy,
              proxy_port, h->version, h->local ? ", the proxy's own" : "");
    enum reply_id refusal = REPLY_TOO_MANY_CONNECTIONS;
    if (!c->sh->identified(c->closed_arg, &refusal)) {
        conn_refuse(c, refusal, "too many connections");
        return;
    }
    stats_accepted(c->sh->stats);
    conn_begin(c);
    if (c->closing || n == 0)
        return;
    if (c->tls != NULL) {
        conn_tls_input(c, rest, n);
        return;
    }
    conn_input(c, rest, n);
    if (!c->closing)
        conn_resume(c);
}

/* conn_proxy_input - bytes before the PROXY header is complete: gathered (when the header
 * is split across reads) and parsed; a connection whose first bytes are no header the
 * listener accepts is closed without a word. */
static void conn_proxy_input(struct conn *c, const char *data, size_t len)
{
    const char *p = data;
    size_t n = len;
    if (c->proxy_in.len > 0) {
        if (buf_append(&c->proxy_in, data, len) != 0) {
            conn_close(c, "out of memory");
            return;
        }
        p = c->proxy_in.data;
        n = c->proxy_in.len;
    }
    struct proxy_header h;
    const char *why = NULL;
    switch (proxy_parse((const uint8_t *)p, n, (enum proxy_accept)c->lcfg->proxy, &h, &why)) {
    case PROXY_NEED_MORE:
        if (c->proxy_in.len == 0 && buf_append(&c->proxy_in, data, len) != 0)
            conn_close(c, "out of memory");
        return;
    case PROXY_INVALID:
        log_warn("conn %s %s:%u dropped: not a PROXY header: %s", c->id, c->address, c->port, why);
        stats_refused(c->sh->stats, "bad_proxy_header");
        conn_close(c, "bad PROXY header");
        return;
    case PROXY_DONE:
    default:
        break;
    }
    /* What follows the header is the client's: keep it apart from the buffer it is in. */
    struct buf rest = {0};
    if (n > h.length && buf_append(&rest, p + h.length, n - h.length) != 0) {
        conn_close(c, "out of memory");
        return;
    }
    buf_free(&c->proxy_in);
    conn_proxied(c, &h, rest.data, rest.len);
    buf_free(&rest);
}

/* conn_start - see conn.h. A PROXY listener reads the header first. */
void conn_start(struct conn *c)
{
    log_debug("conn %s %s:%u accepted", c->id, c->address, c->port);
    if (c->lcfg->proxy != CONFIG_PROXY_NONE) {
        c->awaiting_proxy = true;
        c->proxy_deadline = uv_now(c->sh->loop) + c->lcfg->proxy_timeout_ms;
        conn_update_reading(c);
        return;
    }
    conn_begin(c);
}

/* conn_refuse - see conn.h. A refusal on an implicit TLS listener is a plain close: a TLS
 * client cannot read a plaintext 421. */
void conn_refuse(struct conn *c, enum reply_id why, const char *reason)
{
    log_debug("conn %s %s:%u refused: %s", c->id, c->address, c->port, reason);
    if (!c->implicit_tls)
        reply_write(&c->engine.out, why, c->sh->cfg->hostname);
    c->close_after_write = true;
    conn_flush(c);
    conn_update_reading(c);
}

/* conn_abort - see conn.h. Best effort: whatever the socket does not take at once is lost
 * with the close, which is what a bounded shutdown means. */
void conn_abort(struct conn *c, const char *reason)
{
    if (c->closing)
        return;
    if (c->engine_ready && c->write_pending == 0 && !c->close_after_write && !conn_handshaking(c)) {
        reply_write(&c->engine.out, REPLY_SHUTDOWN, c->sh->cfg->hostname);
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
    if (c->closing || c->close_after_write)
        return;
    if (conn_handshaking(c)) {
        conn_close(c, "server stopping during the TLS handshake");
        return;
    }
    if (smtp_engine_shutdown(&c->engine) == SMTP_ENGINE_CLOSE)
        c->close_after_write = true;
    conn_flush(c);
    conn_update_reading(c);
}
