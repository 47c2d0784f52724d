/* server.c - listeners, the connection set and graceful shutdown (see server.h). */
#include "smtphook/server.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "smtphook/cidr.h"
#include "smtphook/client_map.h"
#include "smtphook/conn.h"
#include "smtphook/error.h"
#include "smtphook/log.h"

#define SERVER_BACKLOG     511   /* listen(2) backlog, as nginx and Redis use */
#define SERVER_ADDRESS_MAX 64    /* a client address as text */
#define SERVER_SWEEP_MS    10000 /* how often full rate buckets are forgotten */

/* The server's record of one connection: the connection itself is opaque here. */
struct server_conn {
    struct server *srv;               /* owner */
    struct conn *conn;                /* the connection */
    struct server_conn *prev, *next;  /* srv->conns */
    char address[SERVER_ADDRESS_MAX]; /* client address, once counted */
    bool counted;                     /* counted in n_conns */
    bool client_counted;              /* counted in its client's record (address) */
    bool trusted;                     /* in trusted_networks: no rate limits */
    enum reply_id refusal;            /* why server_admit_client said no */
};

static void server_finish(struct server *srv);

/* on_listener_closed - count closed listener handles; free the array after the last. */
static void on_listener_closed(uv_handle_t *h)
{
    struct server *srv = h->data;
    if (--srv->n_listeners_open == 0) {
        free(srv->listeners);
        srv->listeners = NULL;
        srv->n_listeners = 0;
    }
}

/* close_listeners - stop accepting. */
static void close_listeners(struct server *srv)
{
    for (size_t i = 0; i < srv->n_listeners; i++) {
        uv_handle_t *h = (uv_handle_t *)&srv->listeners[i].tcp;
        if (!uv_is_closing(h))
            uv_close(h, on_listener_closed);
    }
}

static void on_connection(uv_stream_t *listener, int status);

/* on_spare_closed - the spare handle is free again: accept what waited for it. */
static void on_spare_closed(uv_handle_t *h)
{
    struct server *srv = h->data;
    srv->spare_busy = false;
    for (size_t i = 0; i < srv->n_listeners; i++) {
        struct server_listener *l = &srv->listeners[i];
        if (l->accept_pending && !uv_is_closing((uv_handle_t *)&l->tcp)) {
            l->accept_pending = false;
            on_connection((uv_stream_t *)&l->tcp, 0);
        }
    }
}

/* server_conn_closed - conn_shared.closed: the connection is gone from the limits' point of
 * view; the last one of a stopping server ends it. */
static void server_conn_closed(void *arg)
{
    struct server_conn *sc = arg;
    struct server *srv = sc->srv;
    if (sc->prev != NULL)
        sc->prev->next = sc->next;
    else
        srv->conns = sc->next;
    if (sc->next != NULL)
        sc->next->prev = sc->prev;
    if (sc->counted)
        srv->n_conns--;
    if (sc->client_counted) {
        struct client_record *rec = client_map_get(srv->clients, sc->address);
        if (rec != NULL && rec->connections > 0)
            rec->connections--;
        client_map_release(srv->clients, sc->address);
    }
    free(sc);
    if (srv->stopping && srv->conns == NULL)
        server_finish(srv);
}

/* server_client_key - the key of a client's record: an IPv4 address as it is, an IPv6 one
 * as its /64 (one site gets a /64 or more: its addresses are one client for the limits). */
static void server_client_key(const char *address, char *key, size_t len)
{
    struct in6_addr a6;
    if (strchr(address, ':') == NULL || inet_pton(AF_INET6, address, &a6) != 1) {
        snprintf(key, len, "%s", address);
        return;
    }
    memset(a6.s6_addr + 8, 0, 8);
    char text[INET6_ADDRSTRLEN];
    inet_ntop(AF_INET6, &a6, text, sizeof(text));
    snprintf(key, len, "%s/64", text);
}

/* server_trusted - is the address (text) in trusted_networks? */
static bool server_trusted(const struct server *srv, const char *address)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, address, &v4->sin_addr) == 1)
        v4->sin_family = AF_INET;
    else if (inet_pton(AF_INET6, address, &v6->sin6_addr) == 1)
        v6->sin6_family = AF_INET6;
    else
        return false;
    return cidr_contains_any(srv->cfg->trusted_networks, srv->cfg->n_trusted_networks,
                             (const struct sockaddr *)&ss);
}

/* server_admit_client - count a connection for its client (the socket's peer, or on a PROXY
 * listener the address the header names): false when the client has its
 * max_connections_per_client already, has opened connections_per_minute in the last minute
 * (unless it is trusted), or no record could be made. */
static bool server_admit_client(struct server_conn *sc, const char *address)
{
    struct server *srv = sc->srv;
    const struct config_limits *lim = &srv->cfg->limits;
    char key[SERVER_ADDRESS_MAX];
    server_client_key(address, key, sizeof(key));
    sc->trusted = server_trusted(srv, address);
    struct client_record *rec = client_map_get(srv->clients, key);
    bool rate_ok =
        rec != NULL && (sc->trusted || rate_take(&rec->tat[RATE_CONNECTIONS],
                                                 lim->connections_per_minute, uv_now(srv->loop)));
    if (rec == NULL || rec->connections >= lim->max_connections_per_client || !rate_ok) {
        if (rec == NULL)
            log_error("conn %s refused: out of memory for its client record", address);
        else if (!rate_ok)
            log_warn("conn %s refused: more than %u connections a minute", address,
                     lim->connections_per_minute);
        else
            log_warn("conn %s refused: too many connections", address);
        client_map_release(srv->clients, key); /* a record made just now goes again */
        sc->refusal = rate_ok ? REPLY_TOO_MANY_CONNECTIONS : REPLY_RATE_CONNECTIONS;
        stats_refused(srv->stats, rate_ok ? "too_many" : "rate");
        return false;
    }
    rec->connections++;
    sc->client_counted = true;
    snprintf(sc->address, sizeof(sc->address), "%s", key);
    return true;
}

/* server_rate_take - conn_shared.rate_take: one more message or recipient from the client. */
static bool server_rate_take(void *arg, enum rate_kind kind)
{
    struct server_conn *sc = arg;
    struct server *srv = sc->srv;
    if (sc->trusted || !sc->client_counted)
        return true;
    const struct config_limits *lim = &srv->cfg->limits;
    unsigned limit = kind == RATE_MESSAGES ? lim->messages_per_minute : lim->recipients_per_minute;
    struct client_record *rec = client_map_get(srv->clients, sc->address);
    if (rec == NULL)
        return true; /* it has a record while it counts: cannot happen */
    if (rate_take(&rec->tat[kind], limit, uv_now(srv->loop)))
        return true;
    log_info("client %s: more than %u %s a minute", sc->address, limit,
             kind == RATE_MESSAGES ? "messages" : "recipients");
    return false;
}

/* on_sweep - every SERVER_SWEEP_MS: forget the clients whose rate buckets are full again. */
static void on_sweep(uv_timer_t *t)
{
    struct server *srv = t->data;
    client_map_sweep(srv->clients, uv_now(srv->loop));
}

/* server_conn_identified - conn_shared.identified: a PROXY header named the client. */
static bool server_conn_identified(void *arg, const char *address, enum reply_id *refusal)
{
    struct server_conn *sc = arg;
    bool ok = server_admit_client(sc, address);
    *refusal = sc->refusal;
    return ok;
}

/* server_accept - accept one connection from listener and start it, or refuse it with 421
 * when a limit is reached. On a PROXY listener only trusted proxies may connect, and the
 * per-client count waits for the header. SH_ENOMEM when nothing could be allocated and the
 * connection still waits in the listener; 0 otherwise (errors are logged). */
static int server_accept(struct server *srv, struct server_listener *l)
{
    struct server_conn *sc = calloc(1, sizeof(*sc));
    if (sc == NULL)
        return SH_ENOMEM;
    char id[32];
    snprintf(id, sizeof(id), "%s%" PRIx64, srv->id_seed, srv->next_conn);
    if (conn_new(&srv->shared, l->cfg, id, sc, &sc->conn) != 0) {
        free(sc);
        return SH_ENOMEM;
    }
    srv->next_conn++;
    sc->srv = srv;
    /* Linked before anything can fail, so that the close callback always finds it. */
    sc->next = srv->conns;
    if (srv->conns != NULL)
        srv->conns->prev = sc;
    srv->conns = sc;

    struct conn *c = sc->conn;
    int rc = uv_accept((uv_stream_t *)&l->tcp, conn_stream(c));
    if (rc == 0)
        rc = conn_accepted(c);
    if (rc != 0) {
        log_warn("accept: %s", uv_strerror(rc));
        conn_close(c, "accept failed");
        return 0;
    }
    const char *address = conn_address(c);
    const struct config_limits *lim = &srv->cfg->limits;
    bool proxied = l->cfg->proxy != CONFIG_PROXY_NONE;
    if (proxied &&
        !cidr_contains_any(l->cfg->trusted_proxies, l->cfg->n_trusted_proxies, conn_peer(c))) {
        /* Anyone else could claim any address: nothing is said to it. */
        log_warn("conn %s refused: not a trusted proxy of %s", address, l->cfg->address);
        stats_refused(srv->stats, "untrusted_proxy");
        conn_close(c, "not a trusted proxy");
    } else if (srv->stopping) {
        stats_refused(srv->stats, "stopping");
        conn_refuse(c, REPLY_SHUTDOWN, "server stopping");
    } else if (srv->n_conns >= lim->max_connections) {
        log_warn("conn %s refused: too many connections", address);
        stats_refused(srv->stats, "too_many");
        conn_refuse(c, REPLY_TOO_MANY_CONNECTIONS, "too many connections");
    } else if (!proxied && !server_admit_client(sc, address)) {
        conn_refuse(c, sc->refusal, "too many connections");
    } else {
        sc->counted = true;
        srv->n_conns++;
        if (!proxied)
            stats_accepted(srv->stats);
        conn_start(c); /* proxied: the client is counted when its header names it */
    }
    return 0;
}

/* on_connection - a listener has a connection to accept. libuv stops watching a listener
 * until its pending connection is accepted, so one that cannot be allocated is still
 * accepted, into the spare handle, and closed at once; while the spare is busy the
 * listener waits for it (on_spare_closed). */
static void on_connection(uv_stream_t *listener, int status)
{
    struct server *srv = listener->data;
    if (status < 0) {
        log_warn("accept: %s", uv_strerror(status));
        return;
    }
    if (server_accept(srv, (struct server_listener *)listener) != SH_ENOMEM)
        return;
    log_error("accept: out of memory, connection dropped");
    if (srv->spare_busy) {
        ((struct server_listener *)listener)->accept_pending = true;
        return;
    }
    uv_tcp_init(srv->loop, &srv->spare);
    srv->spare.data = srv;
    srv->spare_busy = true;
    uv_accept(listener, (uv_stream_t *)&srv->spare);
    uv_close((uv_handle_t *)&srv->spare, on_spare_closed);
}

/* on_signal - SIGTERM/SIGINT: stop gracefully; a repeat changes nothing. */
/* server_collect - the gauges only the server knows, before each render. */
static void server_collect(void *arg, struct stats *st)
{
    const struct server *srv = arg;
    stats_set_open(st, srv->n_conns);
    int64_t when = 0;
    for (size_t k = 0; tls_server_expiry(srv->tls, k, &when); k++)
        stats_set_expiry(st, k, when);
}

/* server_render_metrics - admin_hooks.metrics: the Prometheus text of /metrics. */
static void server_render_metrics(void *arg, struct buf *out)
{
    struct server *srv = arg;
    if (stats_render(srv->stats, server_collect, srv, out) != 0)
        out->failed = true;
}

/* on_delay_done - shutdown_delay_ms after SIGTERM: the stop proper. */
static void on_delay_done(uv_timer_t *t)
{
    server_stop(t->data);
}

/* server_ready - admin_hooks.ready: listening, not draining, and (when configured) some
 * endpoint that can take messages. */
static bool server_ready(void *arg, const char **why)
{
    const struct server *srv = arg;
    if (srv->stopping || srv->draining) {
        *why = "draining";
        return false;
    }
    if (!srv->ready) {
        *why = "starting";
        return false;
    }
    if (srv->cfg->admin.unready_when_down && delivery_all_down(srv->delivery)) {
        *why = "every endpoint's circuit breaker is open";
        return false;
    }
    return true;
}

static void on_signal(uv_signal_t *sig, int signum)
{
    struct server *srv = sig->data;
    const char *name = signum == SIGTERM ? "SIGTERM" : "SIGINT";
    if (srv->stopping) {
        log_info("received %s: already stopping", name);
        return;
    }
    uint64_t delay = srv->cfg->limits.shutdown_delay_ms;
    if (delay > 0 && !srv->draining) {
        /* Unready at once; the listeners stay open a while, so that a load balancer that
         * polls /readyz stops sending new connections before they close. */
        log_info("received %s: unready, stopping in %" PRIu64 " ms", name, delay);
        srv->draining = true;
        srv->ready = false;
        uv_timer_start(&srv->delay_timer, on_delay_done, delay, 0);
        return;
    }
    if (srv->draining) {
        log_info("received %s: already stopping", name);
        return;
    }
    log_info("received %s", name);
    server_stop(srv);
}

/* on_sighup - load the certificates again for new handshakes; open connections keep theirs,
 * and a broken file keeps the old certificates in use. */
static void on_sighup(uv_signal_t *sig, int signum)
{
    (void)signum;
    struct server *srv = sig->data;
    if (srv->tls == NULL) {
        log_info("received SIGHUP: no TLS certificates configured, nothing to reload");
        return;
    }
    char err[512];
    if (tls_server_reload(srv->tls, &srv->cfg->tls, err, sizeof(err)) != 0) {
        log_error("received SIGHUP: certificates not reloaded, the old ones stay in use: %s", err);
        return;
    }
    log_info("received SIGHUP: %zu certificate(s) reloaded", srv->cfg->tls.n_certificates);
}

/* server_release - close the server's timers and release what it shares with its
 * connections (none is left): the admin port, the metrics, the deliveries' context, the
 * recipient check, the HTTP client, the client map and the TLS context (connections still
 * closing hold their own references to it). */
static void server_release(struct server *srv)
{
    uv_close((uv_handle_t *)&srv->shutdown_timer, NULL);
    uv_close((uv_handle_t *)&srv->sweep_timer, NULL);
    uv_close((uv_handle_t *)&srv->delay_timer, NULL);
    admin_stop(srv->admin);
    srv->admin = NULL;
    stats_free(srv->stats);
    srv->stats = NULL;
    srv->shared.stats = NULL;
    delivery_context_free(srv->delivery);
    srv->delivery = NULL;
    rcpt_check_free(srv->rcpt_check);
    srv->rcpt_check = NULL;
    client_map_free(srv->clients);
    srv->clients = NULL;
    http_client_close(srv->http);
    srv->http = NULL;
    tls_server_free(srv->tls);
    srv->tls = NULL;
}

/* server_start - bind every listener; on failure close what was opened. */
int server_start(struct server *srv, uv_loop_t *loop, const struct config *cfg)
{
    memset(srv, 0, sizeof(*srv));
    srv->loop = loop;
    srv->cfg = cfg;

    unsigned char rnd[2] = {0, 0};
    uv_random(NULL, NULL, rnd, sizeof(rnd), 0, NULL);
    snprintf(srv->id_seed, sizeof(srv->id_seed), "%08" PRIx32 "%02x%02x", (uint32_t)time(NULL),
             rnd[0], rnd[1]);

    if (cfg->tls.n_certificates > 0) {
        char err[512];
        if (tls_server_new(&cfg->tls, &srv->tls, err, sizeof(err)) != 0) {
            log_error("%s", err);
            return UV_EINVAL;
        }
    }
    uint64_t seed = 0;
    uv_random(NULL, NULL, &seed, sizeof(seed), 0, NULL);
    if (client_map_new(seed, &srv->clients) != 0) {
        tls_server_free(srv->tls);
        srv->tls = NULL;
        return UV_ENOMEM;
    }
    int rc = http_client_new(loop, &srv->http);
    if (rc == 0 && (rc = delivery_context_new(loop, srv->http, cfg, &srv->delivery)) == 0 &&
        cfg->recipient_check.enabled)
        rc = rcpt_check_new(loop, srv->http, &cfg->recipient_check, &srv->rcpt_check);
    if (rc != 0) {
        delivery_context_free(srv->delivery);
        srv->delivery = NULL;
        http_client_close(srv->http);
        srv->http = NULL;
    }
    if (rc != 0) {
        log_error("http client: cannot start");
        client_map_free(srv->clients);
        srv->clients = NULL;
        tls_server_free(srv->tls);
        srv->tls = NULL;
        return UV_ENOMEM;
    }
    uv_timer_init(loop, &srv->shutdown_timer);
    srv->shutdown_timer.data = srv;
    uv_timer_init(loop, &srv->sweep_timer);
    srv->sweep_timer.data = srv;
    uv_timer_init(loop, &srv->delay_timer);
    srv->delay_timer.data = srv;
    uv_timer_start(&srv->sweep_timer, on_sweep, SERVER_SWEEP_MS, SERVER_SWEEP_MS);
    uv_unref((uv_handle_t *)&srv->sweep_timer); /* it alone keeps nothing running */
    srv->shared.loop = loop;
    srv->shared.cfg = cfg;
    srv->shared.delivery = srv->delivery;
    srv->shared.rcpt_check = srv->rcpt_check;
    srv->shared.tls = srv->tls;
    srv->shared.read_buffer = srv->read_buffer;
    srv->shared.read_buffer_size = sizeof(srv->read_buffer);
    srv->shared.closed = server_conn_closed;
    srv->shared.identified = server_conn_identified;
    srv->shared.rate_take = server_rate_take;

    if (cfg->admin.enabled) {
        if (stats_new(cfg, &srv->stats) != 0) {
            rc = UV_ENOMEM;
            goto fail;
        }
        srv->shared.stats = srv->stats;
        delivery_context_set_stats(srv->delivery, srv->stats);
        struct admin_hooks hooks = {server_render_metrics, server_ready, srv};
        if (admin_start(loop, (const struct sockaddr *)&cfg->admin.addr, cfg->admin.addrlen, &hooks,
                        &srv->admin) != 0) {
            log_error("admin port %s: cannot listen (in use, or not an address of this machine)",
                      cfg->admin.listen);
            rc = UV_EADDRINUSE;
            goto fail;
        }
        log_info("admin port on %s: /metrics /livez /readyz", cfg->admin.listen);
    }

    srv->listeners = calloc(cfg->n_listeners, sizeof(*srv->listeners));
    if (srv->listeners == NULL) {
        rc = UV_ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const struct config_listener *l = &cfg->listeners[i];
        uv_tcp_t *tcp = &srv->listeners[i].tcp;
        srv->listeners[i].cfg = l;
        rc = uv_tcp_init_ex(loop, tcp, l->addr.ss_family);
        if (rc != 0)
            goto fail_listener;
        tcp->data = srv;
        srv->n_listeners++;
        srv->n_listeners_open++;
        /* [::] binds IPv6 only, so that 0.0.0.0 on the same port can be listed too. */
        unsigned flags = l->addr.ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0;
        rc = uv_tcp_bind(tcp, (const struct sockaddr *)&l->addr, flags);
        if (rc == 0)
            rc = uv_listen((uv_stream_t *)tcp, SERVER_BACKLOG, on_connection);
        if (rc != 0)
            goto fail_listener;
        log_info("listening on %s", l->address);
    }
    uv_signal_init(loop, &srv->sigterm);
    uv_signal_init(loop, &srv->sigint);
    srv->sigterm.data = srv->sigint.data = srv;
    uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
    uv_signal_start(&srv->sigint, on_signal, SIGINT);
    uv_signal_init(loop, &srv->sighup);
    srv->sighup.data = srv;
    uv_signal_start(&srv->sighup, on_sighup, SIGHUP);
    srv->ready = true;
    return 0;

fail_listener:
    log_error("listen on %s: %s",
              cfg->listeners[srv->n_listeners ? srv->n_listeners - 1 : 0].address, uv_strerror(rc));
fail:
    srv->closed = true;
    if (srv->n_listeners_open > 0)
        close_listeners(srv);
    else {
        free(srv->listeners);
        srv->listeners = NULL;
    }
    server_release(srv);
    return rc;
}

/* server_finish - every connection is gone: close the remaining server handles so that
 * uv_run returns. */
static void server_finish(struct server *srv)
{
    if (srv->closed)
        return;
    srv->closed = true;
    uv_close((uv_handle_t *)&srv->sigterm, NULL);
    uv_close((uv_handle_t *)&srv->sigint, NULL);
    uv_close((uv_handle_t *)&srv->sighup, NULL);
    server_release(srv); /* every delivery and check was cancelled with its connection */
    log_info("stopped");
}

/* on_shutdown_timeout - transactions had their time: close what is left. */
static void on_shutdown_timeout(uv_timer_t *t)
{
    struct server *srv = t->data;
    log_warn("shutdown timeout: closing %u connection(s)", srv->n_conns);
    struct server_conn *sc = srv->conns;
    while (sc != NULL) {
        struct server_conn *next = sc->next; /* conn_abort frees sc */
        conn_abort(sc->conn, "shutdown timeout");
        sc = next;
    }
    server_finish(srv);
}

/* server_stop - see server.h. */
void server_stop(struct server *srv)
{
    if (srv->stopping)
        return;
    srv->stopping = true;
    srv->ready = false;
    uv_timer_stop(&srv->delay_timer);
    log_info("stopping: %u connection(s) open", srv->n_conns);
    close_listeners(srv);
    /* Deliveries end a little before the bound, so that their replies still go out. */
    uint64_t bound = srv->cfg->limits.shutdown_timeout_ms;
    delivery_context_stop(srv->delivery, bound - (bound / 4 < 1000 ? bound / 4 : 1000));
    struct server_conn *sc = srv->conns;
    while (sc != NULL) {
        struct server_conn *next = sc->next; /* conn_shutdown may close and free sc */
        conn_shutdown(sc->conn);
        sc = next;
    }
    if (srv->conns == NULL) {
        server_finish(srv);
        return;
    }
    uv_timer_start(&srv->shutdown_timer, on_shutdown_timeout, srv->cfg->limits.shutdown_timeout_ms,
                   0);
}
