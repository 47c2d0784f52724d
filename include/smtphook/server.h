/* server.h - the listeners, the set of connections, and graceful shutdown.
 *
 * One process, one libuv loop: the server binds every configured listener, accepts
 * connections up to the configured caps and hands each to conn.c, which reports back
 * through conn_shared.closed when one ends. server_stop() stops accepting, lets open
 * transactions finish within limits.shutdown_timeout_ms, then closes what is left; the loop
 * ends when the last handle is closed. */
#ifndef SMTPHOOK_SERVER_H
#define SMTPHOOK_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "smtphook/config.h"
#include "smtphook/admin.h"
#include "smtphook/conn.h"
#include "smtphook/http_client.h"
#include "smtphook/tls.h"

#define SERVER_READ_BUFFER_BYTES 65536 /* one buffer for all reads, not one per connection */

struct server_conn;
struct client_map;

/* One listening socket. */
struct server_listener {
    uv_tcp_t tcp;                      /* first: the handle is used as the listener itself */
    const struct config_listener *cfg; /* address and TLS mode */
    bool accept_pending; /* a connection waits that could not be accepted yet (no memory) */
};

struct server {
    uv_loop_t *loop;                   /* the loop everything runs on */
    const struct config *cfg;          /* configuration (not owned) */
    struct http_client *http;          /* webhook client, shared by all connections */
    struct delivery_context *delivery; /* what every delivery shares (breakers) */
    struct rcpt_check *rcpt_check;     /* the recipient check, NULL when not configured */
    struct tls_server *tls;            /* inbound TLS, NULL without certificates */
    struct conn_shared shared;         /* what every connection gets */
    struct server_listener *listeners; /* one per config listener */
    size_t n_listeners;                /* entries in listeners */
    size_t n_listeners_open;           /* listener handles not yet closed */
    uv_timer_t shutdown_timer;         /* bounds the graceful shutdown */
    uv_timer_t sweep_timer;            /* drops client records whose rate buckets are full */
    uv_timer_t delay_timer;            /* SIGTERM: unready, then the stop after shutdown_delay */
    struct admin *admin;               /* the admin port, NULL when not configured */
    struct stats *stats;               /* what /metrics shows, NULL without the admin port */
    bool ready;                        /* listening, not draining */
    bool draining;                     /* SIGTERM came: unready, the stop follows */
    uv_signal_t sigterm;               /* SIGTERM: graceful stop */
    uv_signal_t sigint;                /* SIGINT: graceful stop */
    uv_signal_t sighup;                /* SIGHUP: reload the TLS certificates */
    uv_tcp_t spare;                    /* accepts and drops a connection when out of memory */
    bool spare_busy;                   /* spare is closing */
    struct server_conn *conns;         /* open connections, a doubly linked list */
    struct client_map *clients;        /* per client address: its open connections */
    unsigned n_conns;                  /* connections counted against the limits */
    uint64_t next_conn;                /* sequence number for connection ids */
    char id_seed[16];                  /* start time + randomness: ids unique across runs */
    bool stopping;                     /* server_stop was called */
    bool closed;                       /* every server handle is closed or closing */
    char read_buffer[SERVER_READ_BUFFER_BYTES]; /* see SERVER_READ_BUFFER_BYTES */
};

/* server_start - load the TLS certificates, bind and listen on every configured address and
 * handle SIGTERM and SIGINT (graceful stop; a repeated signal is logged, not fatal) and SIGHUP
 * (certificate reload). 0, or a negative libuv error after logging what failed (everything
 * opened so far is closed again). */
int server_start(struct server *srv, uv_loop_t *loop, const struct config *cfg);

/* server_stop - stop accepting, close idle sessions, let transactions finish. Idempotent. */
void server_stop(struct server *srv);

#endif
