/* conn.h - one client connection: reads, the write queue, the timer, close once.
 *
 * The I/O shell around smtp_engine: bytes from the socket go through the engine, its stops
 * are carried out here (a delivery, a TLS handshake, a close, waiting for the client to
 * read). While a delivery runs, further input is held, so pipelined commands are answered
 * in order after the outcome. With TLS the socket carries ciphertext: what is read goes
 * through tls first, what is written comes out of it; the engine sees plaintext only.
 *
 * The server creates connections and learns of their end through conn_shared.closed; it
 * never sees inside one (struct conn is private to conn.c), and conn.c knows nothing of
 * the server. */
#ifndef SMTPHOOK_CONN_H
#define SMTPHOOK_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "smtphook/config.h"
#include "smtphook/delivery.h"
#include "smtphook/queue.h"
#include "smtphook/rate.h"
#include "smtphook/rcpt_check.h"
#include "smtphook/reply.h"
#include "smtphook/stats.h"
#include "smtphook/tls.h"

struct conn;

/* What all connections of a server share; owned by the server, outlives its connections. */
struct conn_shared {
    uv_loop_t *loop;                   /* the loop every connection runs on */
    const struct config *cfg;          /* configuration */
    struct delivery_context *delivery; /* endpoints, breakers, the HTTP client */
    struct rcpt_check *rcpt_check;     /* the recipient check, NULL when not configured */
    struct tls_server *tls;            /* inbound TLS, NULL without certificates */
    char *read_buffer;                 /* one buffer for every read: reads are handled to the end
                                          before the next one */
    size_t read_buffer_size;           /* its size */
    void (*closed)(void *arg);         /* called once, when the connection stops counting (it is
                                          freed later, once libuv has closed its handles) */
    bool (*identified)(void *arg, enum reply_id *refusal); /* a PROXY header named the
                                          client (conn_address, conn_client): may it connect
                                          (per-client limits)? If not, *refusal is the 421 */
    bool (*rate_take)(void *arg, enum rate_kind kind);     /* one more message or recipient from
                                              the client: false when its rate is spent */
    struct stats *stats; /* the metrics, NULL without the admin port */
    struct queue *queue; /* the durable queue, NULL when no route queues */
};

/* conn_new - a connection for listener l, not yet accepted: the caller uv_accept()s into
 * conn_stream(), then calls conn_accepted(). id is its connection id; closed_arg is passed
 * to shared->closed. 0 or SH_ENOMEM. */
int conn_new(const struct conn_shared *shared, const struct config_listener *l, const char *id,
             void *closed_arg, struct conn **out);

/* conn_stream - the stream to accept into. */
uv_stream_t *conn_stream(struct conn *c);

/* conn_accepted - the socket is accepted: learn the peer's address and prepare the session.
 * 0, or a negative libuv error (the caller closes the connection). */
int conn_accepted(struct conn *c);

/* conn_address - the client's IP address as text ("" before conn_accepted): the socket's
 * peer, or once a PROXY header arrived the address it names. */
const char *conn_address(const struct conn *c);

/* conn_client - the same address as a sockaddr (with its port): before the PROXY header on a
 * PROXY listener, the load balancer's. */
const struct sockaddr *conn_client(const struct conn *c);

/* conn_start - greet the client (or, on an implicit TLS listener, wait for its handshake). */
void conn_start(struct conn *c);

/* conn_refuse - answer with the 421 reply why (a plaintext one only: a TLS client could not
 * read it), then close. reason is logged. */
void conn_refuse(struct conn *c, enum reply_id why, const char *reason);

/* conn_shutdown - the server stops: idle sessions get 421 and close, a transaction under way
 * may finish. */
void conn_shutdown(struct conn *c);

/* conn_abort - the shutdown bound passed: send 421 4.3.2 if the socket takes it at once,
 * then close. */
void conn_abort(struct conn *c, const char *reason);

/* conn_close - close now: cancel the delivery, close the handles, free when they are closed.
 * reason is logged. Safe to call more than once. */
void conn_close(struct conn *c, const char *reason);

#endif
