/* conn.h - one client connection: reads, the write queue, the idle timer, close once.
 *
 * The I/O shell around the pure pieces: bytes from the socket go through the smtp parser
 * into the session; the session's actions are carried out here (spool, delivery, close).
 * While a delivery runs, further input is held, not parsed, so pipelined commands are
 * answered in order after the outcome. With TLS, the socket carries ciphertext: what is
 * read goes through tls first, what is written comes out of it; everything above sees
 * plaintext only. */
#ifndef SMTPHOOK_CONN_H
#define SMTPHOOK_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "smtphook/buf.h"
#include "smtphook/delivery.h"
#include "smtphook/session.h"
#include "smtphook/smtp_parser.h"
#include "smtphook/spool.h"
#include "smtphook/tls.h"

struct server;

struct conn {
    struct server *srv;          /* owner */
    struct conn *prev, *next;    /* server's list */
    uv_tcp_t tcp;                /* the socket */
    uv_timer_t timer;            /* idle timeout */
    unsigned handles_open;       /* tcp and timer until their close callbacks ran */
    struct smtp_parser parser;   /* bytes -> lines / message bytes */
    struct session session;      /* SMTP state and envelope */
    struct buf out;              /* replies not yet handed to the socket (plaintext) */
    struct tls_conn *tls;        /* TLS state after STARTTLS or on an implicit listener */
    struct buf wire;             /* TLS: ciphertext not yet handed to the socket */
    uint64_t handshake_deadline; /* loop time by which the TLS handshake must be done */
    bool implicit_tls;           /* TLS from the first byte: greet after the handshake */
    bool tls_close_sent;         /* our close_notify is queued */
    struct buf held;             /* input received while a delivery runs */
    bool drop_read;              /* TLS: the rest of this read's plaintext is dropped */
    struct spool *spool;         /* message body of the current DATA, NULL otherwise */
    int spool_error;             /* spool_new/spool_append failed during this DATA */
    struct delivery *delivery;   /* running delivery, NULL otherwise */
    size_t write_pending;        /* bytes in uv_write requests not yet completed */
    bool reading;                /* uv_read_start is in effect */
    bool read_eof;               /* the client half-closed while a goodbye was being written */
    bool counted;                /* counted in server->n_conns */
    bool close_after_write;      /* close once write_pending reaches 0 */
    bool closing;                /* conn_close has run */
    int64_t data_started_ms;     /* when DATA began, for the log line */
    char address[64];            /* peer IP as text */
    uint16_t port;               /* peer port */
    char id[32];                 /* connection id, prefix of transaction ids */
};

/* conn_accept - accept one connection from listener and start its session, or answer 421
 * when a connection limit is reached. Returns SH_ENOMEM when nothing could be allocated
 * and the connection is still waiting in the listener; 0 otherwise (errors are logged). */
int conn_accept(struct server *srv, uv_stream_t *listener);

/* conn_shutdown - the server stops: tell the session (idle ones get 421 and close). */
void conn_shutdown(struct conn *c);

/* conn_abort - the shutdown bound passed: send 421 4.3.2 if the socket takes it at once,
 * then close. */
void conn_abort(struct conn *c, const char *reason);

/* conn_close - close now: cancel the delivery, close the handles, free when they are closed.
 * reason is logged. Safe to call more than once. */
void conn_close(struct conn *c, const char *reason);

#endif
