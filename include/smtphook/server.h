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
#include "smtphook/queue.h"
#include "smtphook/tls.h"

#define SERVER_READ_BUFFER_BYTES 65536 /* one buffer for all reads, not one per connection */

struct server_conn;
struct server_gen;
struct client_map;

/* One listening socket, allocated on its own: it stays where it is across a reload that
 * keeps its address. */
struct server_listener {
    uv_tcp_t tcp;                      /* first: the handle is used as the listener itself */
    const struct config_listener *cfg; /* address and TLS mode, of the current generation */
    bool accept_pending; /* a connection waits that could not be accepted yet (no memory) */
    struct server_listener *next; /* srv->listeners */
};

/* Reads the configuration again for a reload: a new config (the server owns it), or NULL
 * with the reason in err. */
typedef struct config *(*server_reload_fn)(void *arg, char *err, size_t errlen);

struct server {
    uv_loop_t *loop;                   /* the loop everything runs on */
    const struct config *cfg;          /* the current configuration (gen's) */
    struct server_gen *gen;            /* the current generation: config, deliveries' context,
                                          recipient check, TLS; what new connections get */
    struct server_gen *gens;           /* every generation still in use (its connections) */
    server_reload_fn reload;           /* SIGHUP's source of a new configuration, or NULL */
    void *reload_arg;                  /* passed to reload */
    struct http_client *http;          /* webhook client, shared by all connections */
    struct server_listener *listeners; /* the listening sockets */
    size_t n_listeners_open;           /* listener handles not yet closed */
    uv_timer_t shutdown_timer;         /* bounds the graceful shutdown */
    uv_timer_t sweep_timer;            /* drops client records whose rate buckets are full */
    uv_timer_t delay_timer;            /* SIGTERM: unready, then the stop after shutdown_delay */
    struct admin *admin;               /* the admin port, NULL when not configured */
    struct stats *stats;               /* what /metrics shows, NULL without the admin port */
    struct queue *queue;               /* the durable queue, NULL until a route queues */
    bool ready;                        /* listening, not draining */
    bool draining;                     /* SIGTERM came: unready, the stop follows */
    uv_signal_t sigterm;               /* SIGTERM: graceful stop */
    uv_signal_t sigint;                /* SIGINT: graceful stop */
    uv_signal_t sighup;                /* SIGHUP: reload (server_set_reload) */
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

/* server_set_reload - SIGHUP reloads the whole configuration through fn (without one, the
 * TLS certificates only). All or nothing: a configuration that does not load, or whose new
 * listeners cannot be opened, leaves the running one as it is. New connections get the new
 * configuration; those open keep theirs to their end. The admin port stays where it is. */
void server_set_reload(struct server *srv, server_reload_fn fn, void *arg);

/* server_stop - stop accepting, close idle sessions, let transactions finish. Idempotent. */
void server_stop(struct server *srv);

#endif
