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
#include "smtphook/queue_json.h"

#define SERVER_BACKLOG        511   /* listen(2) backlog, as nginx and Redis use */
#define SERVER_ADDRESS_MAX    64    /* a client address as text */
#define SERVER_SWEEP_MS       10000 /* how often full rate buckets are forgotten */
#define SERVER_QUEUE_LIST_MAX 1000  /* GET /queue: entries of each kind read on the loop */

/* One configuration and what is made from it. A reload makes a new generation for new
 * connections; the old one lives on, with its own deliveries and checks, until its last
 * connection is gone. */
struct server_gen {
    struct server *srv;                /* owner */
    struct config *cfg;                /* the configuration */
    bool owns_cfg;                     /* freed with the generation (a reload's); the first is
                                          the caller's */
    struct conn_shared shared;         /* what its connections get */
    struct delivery_context *delivery; /* breakers and deliveries of its endpoints */
    struct rcpt_check *rcpt_check;     /* its recipient check, or NULL */
    struct tls_server *tls;            /* its certificates, or NULL */
    unsigned refs;                     /* its connections, and one while it is current */
    struct server_gen *next;           /* srv->gens */
};

/* The server's record of one connection: the connection itself is opaque here. */
struct server_conn {
    struct server *srv;               /* owner */
    struct server_gen *gen;           /* the generation it was accepted under */
    struct conn *conn;                /* the connection */
    struct server_conn *prev, *next;  /* srv->conns */
    char address[SERVER_ADDRESS_MAX]; /* client address, once counted */
    bool counted;                     /* counted in n_conns */
    bool client_counted;              /* counted in its client's record (address) */
    bool trusted;                     /* in trusted_networks: no rate limits */
    enum reply_id refusal;            /* why server_admit_client said no */
};

static void server_finish(struct server *srv);
static void server_gen_unref(struct server_gen *gen);
static void server_reload(struct server *srv);

/* on_listener_closed - a listener's handle is closed: it goes. */
static void on_listener_closed(uv_handle_t *h)
{
    struct server_listener *l = (struct server_listener *)h;
    struct server *srv = h->data;
    srv->n_listeners_open--;
    free(l);
}

/* listener_close - stop accepting on one listener (it is out of the list already). */
static void listener_close(struct server_listener *l)
{
    if (!uv_is_closing((uv_handle_t *)&l->tcp))
        uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
}

/* close_listeners - stop accepting. */
static void close_listeners(struct server *srv)
{
    while (srv->listeners != NULL) {
        struct server_listener *l = srv->listeners;
        srv->listeners = l->next;
        listener_close(l);
    }
}

static void on_connection(uv_stream_t *listener, int status);

/* on_spare_closed - the spare handle is free again: accept what waited for it. */
static void on_spare_closed(uv_handle_t *h)
{
    struct server *srv = h->data;
    srv->spare_busy = false;
    for (struct server_listener *l = srv->listeners; l != NULL; l = l->next) {
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
    struct server_gen *gen = sc->gen;
    free(sc);
    server_gen_unref(gen);
    if (srv->stopping && srv->conns == NULL && queue_busy(srv->queue) == 0)
        server_finish(srv);
}

/* server_queue_idle - queue_hooks.idle: the stopped queue's last attempt or write ended; a
 * stopping server with no connection left ends now. */
static void server_queue_idle(void *arg)
{
    struct server *srv = arg;
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

/* server_admit_client - count a connection for its client (the socket's peer, or on a PROXY
 * listener the address the header names): false when the client has its
 * max_connections_per_client already, has opened connections_per_minute in the last minute
 * (unless it is trusted), or no record could be made. Only an admitted connection takes from
 * the rate: one refused for the concurrent limit spends none of its minute's budget. */
static bool server_admit_client(struct server_conn *sc)
{
    struct server *srv = sc->srv;
    const struct config_limits *lim = &srv->cfg->limits;
    const char *address = conn_address(sc->conn);
    char key[SERVER_ADDRESS_MAX];
    server_client_key(address, key, sizeof(key));
    sc->trusted = cidr_contains_any(srv->cfg->trusted_networks, srv->cfg->n_trusted_networks,
                                    conn_client(sc->conn));
    struct client_record *rec = client_map_get(srv->clients, key);
    bool too_many = rec != NULL && rec->connections >= lim->max_connections_per_client;
    bool rate_ok = rec != NULL && !too_many &&
                   (sc->trusted || rate_take(&rec->tat[RATE_CONNECTIONS],
                                             lim->connections_per_minute, uv_now(srv->loop)));
    if (!rate_ok) {
        if (rec == NULL)
            log_error("conn %s refused: out of memory for its client record", address);
        else if (too_many)
            log_warn("conn %s refused: too many connections", address);
        else
            log_warn("conn %s refused: more than %u connections a minute", address,
                     lim->connections_per_minute);
        client_map_release(srv->clients, key); /* a record made just now goes again */
        sc->refusal = rec == NULL || too_many ? REPLY_TOO_MANY_CONNECTIONS : REPLY_RATE_CONNECTIONS;
        stats_refused(srv->stats, rec == NULL || too_many ? "too_many" : "rate");
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
    stats_rate_limited(srv->stats, kind == RATE_MESSAGES ? "messages" : "recipients");
    return false;
}

/* on_sweep - every SERVER_SWEEP_MS: forget the clients whose rate buckets are full again. */
static void on_sweep(uv_timer_t *t)
{
    struct server *srv = t->data;
    client_map_sweep(srv->clients, uv_now(srv->loop));
}

/* server_conn_identified - conn_shared.identified: a PROXY header named the client. */
static bool server_conn_identified(void *arg, enum reply_id *refusal)
{
    struct server_conn *sc = arg;
    bool ok = server_admit_client(sc);
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
    if (conn_new(&srv->gen->shared, l->cfg, id, sc, &sc->conn) != 0) {
        free(sc);
        return SH_ENOMEM;
    }
    srv->next_conn++;
    sc->srv = srv;
    sc->gen = srv->gen;
    sc->gen->refs++;
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
        !cidr_contains_any(l->cfg->trusted_proxies, l->cfg->n_trusted_proxies, conn_client(c))) {
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
    } else if (!proxied && !server_admit_client(sc)) {
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

/* server_collect - the gauges only the server knows, before each render. */
static void server_collect(void *arg, struct stats *st)
{
    const struct server *srv = arg;
    stats_set_open(st, srv->n_conns);
    int64_t when = 0;
    stats_clear_expiry(st); /* a reload may have removed certificates */
    for (size_t k = 0; tls_server_expiry(srv->gen->tls, k, &when); k++)
        stats_set_expiry(st, k, when);
    if (srv->queue != NULL)
        queue_collect(srv->queue, st);
}

/* server_queue_acquire - queue_hooks.acquire: the current generation's deliveries, held
 * (a reference) for one background attempt. */
static struct delivery_context *server_queue_acquire(void *arg, const struct config **cfg,
                                                     void **token)
{
    struct server *srv = arg;
    *token = NULL;
    if (srv->gen == NULL)
        return NULL;
    srv->gen->refs++;
    *token = srv->gen;
    *cfg = srv->gen->cfg;
    return srv->gen->delivery;
}

/* server_queue_release - queue_hooks.release: the attempt is over. */
static void server_queue_release(void *arg, void *token)
{
    (void)arg;
    server_gen_unref(token);
}

/* server_json_error - {"error": text} into out; returns status. */
static unsigned server_json_error(struct buf *out, unsigned status, const char *text)
{
    buf_append_str(out, "{\"error\":\"");
    buf_append_str(out, text); /* ours: no quote or backslash */
    buf_append_str(out, "\"}\n");
    return status;
}

/* server_admin_queue - admin_hooks.queue: GET /queue, GET /queue/NAME, POST
 * /queue/NAME/retry. */
static unsigned server_admin_queue(void *arg, const char *method, const char *url, struct buf *out)
{
    struct server *srv = arg;
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    if (srv->queue == NULL)
        return server_json_error(out, 404, "no queue: no route queues");
    struct queue_store *st = queue_store_of(srv->queue);
    if (strcmp(url, "/queue") == 0 || strcmp(url, "/queue/") == 0) {
        if (!get)
            return server_json_error(out, 405, "GET only");
        return queue_json_all(st, SERVER_QUEUE_LIST_MAX, out) == 0
                   ? 200
                   : server_json_error(out, 500, "cannot list");
    }
    char name[QUEUE_ENTRY_NAME_MAX + 16];
    const char *rest = url + strlen("/queue/");
    const char *slash = strchr(rest, '/');
    size_t n = slash != NULL ? (size_t)(slash - rest) : strlen(rest);
    if (n >= sizeof(name))
        return server_json_error(out, 404, "no such entry");
    memcpy(name, rest, n);
    name[n] = '\0';
    if (!queue_entry_name_ok(name))
        return server_json_error(out, 404, "no such entry");
    if (slash != NULL) {
        if (strcmp(slash, "/retry") != 0)
            return server_json_error(out, 404, "not found: POST /queue/NAME/retry");
        if (strcmp(method, "POST") != 0)
            return server_json_error(out, 405, "POST only");
        if (queue_retry(srv->queue, name) != 0)
            return server_json_error(out, 404, "no such active entry");
        log_info("admin: queue entry %s retried now", name);
        buf_append_str(out, "{\"retried\":\"");
        buf_append_str(out, name);
        buf_append_str(out, "\"}\n");
        return 200;
    }
    if (!get)
        return server_json_error(out, 405, "GET only");
    struct queue_entry e;
    char why[256];
    int rc = st->ops->read(st, QUEUE_ACTIVE, name, &e, why, sizeof(why));
    if (rc == SH_ENOTFOUND) {
        queue_entry_free(&e);
        rc = st->ops->read(st, QUEUE_DEAD, name, &e, why, sizeof(why));
    }
    unsigned status = 200;
    if (rc == 0 && queue_json_entry(&e, true, out) != 0)
        status = server_json_error(out, 500, "out of memory");
    else if (rc != 0)
        status = server_json_error(out, rc == SH_ENOTFOUND ? 404 : 500,
                                   rc == SH_ENOTFOUND ? "no such entry" : "cannot read it");
    queue_entry_free(&e);
    return status;
}

/* server_open_queue - into *out the queue, the first time a configuration queues (else
 * *out stays NULL). It starts no attempt before its first queue_configure, when cfg is in
 * use. 0 or an error. */
static int server_open_queue(struct server *srv, const struct config *cfg, struct queue **out)
{
    *out = NULL;
    if (!cfg->uses_queue || srv->queue != NULL)
        return 0;
    struct queue_hooks hooks = {server_queue_acquire, server_queue_release, server_queue_idle, srv};
    if (queue_open(srv->loop, cfg, &hooks, out) != 0)
        return UV_EIO;
    queue_set_stats(*out, srv->stats);
    return 0;
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
    if (srv->cfg->admin.unready_when_down && delivery_all_down(srv->gen->delivery)) {
        *why = "every endpoint's circuit breaker is open";
        return false;
    }
    return true;
}

/* on_signal - SIGTERM/SIGINT: stop gracefully; a repeat changes nothing. */
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

/* on_sighup - reload: the whole configuration when the server has a source for it, else
 * the certificates of the current one (open connections keep theirs, a broken file keeps
 * the old certificates in use). */
static void on_sighup(uv_signal_t *sig, int signum)
{
    (void)signum;
    struct server *srv = sig->data;
    if (srv->stopping || srv->draining) {
        log_info("received SIGHUP: stopping, nothing reloaded");
        return;
    }
    if (srv->reload != NULL) {
        server_reload(srv);
        return;
    }
    struct tls_server *tls = srv->gen->tls;
    if (tls == NULL) {
        log_info("received SIGHUP: no TLS certificates configured, nothing to reload");
        return;
    }
    char err[512];
    if (tls_server_reload(tls, &srv->cfg->tls, err, sizeof(err)) != 0) {
        log_error("received SIGHUP: certificates not reloaded, the old ones stay in use: %s", err);
        return;
    }
    log_info("received SIGHUP: %zu certificate(s) reloaded", srv->cfg->tls.n_certificates);
}

/* server_gen_free - release a generation (no connection holds it any more). */
static void server_gen_free(struct server_gen *gen)
{
    delivery_context_free(gen->delivery);
    rcpt_check_free(gen->rcpt_check);
    tls_server_free(gen->tls); /* connections still closing hold their own references */
    if (gen->owns_cfg)
        config_free(gen->cfg);
    free(gen);
}

/* server_gen_unref - one user less; a generation that is not the current one goes with its
 * last connection. */
static void server_gen_unref(struct server_gen *gen)
{
    if (--gen->refs > 0)
        return;
    struct server *srv = gen->srv;
    struct server_gen **p = &srv->gens;
    while (*p != gen)
        p = &(*p)->next;
    *p = gen->next;
    log_info("configuration generation retired: its last connection is gone");
    server_gen_free(gen);
}

/* server_gen_new - the generation of cfg: its certificates, deliveries' context and
 * recipient check, and what its connections share (queue among it: NULL, none). The caller
 * makes it current (it holds one reference). 0, or an error with err filled. */
static int server_gen_new(struct server *srv, struct config *cfg, bool owns, struct queue *queue,
                          struct server_gen **out, char *err, size_t errlen)
{
    *out = NULL;
    struct server_gen *gen = calloc(1, sizeof(*gen));
    if (gen == NULL) {
        snprintf(err, errlen, "out of memory");
        return UV_ENOMEM;
    }
    gen->srv = srv;
    gen->cfg = cfg;
    gen->refs = 1;
    int rc = 0;
    if (cfg->tls.n_certificates > 0 && tls_server_new(&cfg->tls, &gen->tls, err, errlen) != 0)
        rc = UV_EINVAL;
    if (rc == 0 && delivery_context_new(srv->loop, srv->http, cfg, &gen->delivery) != 0)
        rc = UV_ENOMEM;
    if (rc == 0 && cfg->recipient_check.enabled &&
        rcpt_check_new(srv->loop, srv->http, &cfg->recipient_check, &gen->rcpt_check) != 0)
        rc = UV_ENOMEM;
    if (rc != 0) {
        if (rc == UV_ENOMEM)
            snprintf(err, errlen, "out of memory");
        server_gen_free(gen); /* owns_cfg is false yet: the caller keeps cfg */
        return rc;
    }
    gen->owns_cfg = owns;
    delivery_context_set_stats(gen->delivery, srv->stats);
    struct conn_shared *sh = &gen->shared;
    sh->loop = srv->loop;
    sh->cfg = cfg;
    sh->delivery = gen->delivery;
    sh->rcpt_check = gen->rcpt_check;
    sh->tls = gen->tls;
    sh->read_buffer = srv->read_buffer;
    sh->read_buffer_size = sizeof(srv->read_buffer);
    sh->closed = server_conn_closed;
    sh->identified = server_conn_identified;
    sh->rate_take = server_rate_take;
    sh->stats = srv->stats;
    sh->queue = queue;
    *out = gen;
    return 0;
}

/* listener_take - unlink from *running (NULL: none) the listener serving cl's address, if
 * there is one, and return it. */
static struct server_listener *listener_take(struct server_listener **running,
                                             const struct config_listener *cl)
{
    for (struct server_listener **p = running; p != NULL && *p != NULL; p = &(*p)->next) {
        struct server_listener *l = *p;
        if (strcmp(l->cfg->address, cl->address) == 0) {
            *p = l->next;
            return l;
        }
    }
    return NULL;
}

/* listener_open - bind and listen on one configured address. 0 or a libuv error (logged). */
static int listener_open(struct server *srv, const struct config_listener *cl,
                         struct server_listener **out)
{
    *out = NULL;
    struct server_listener *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return UV_ENOMEM;
    l->cfg = cl;
    int rc = uv_tcp_init_ex(srv->loop, &l->tcp, cl->addr.ss_family);
    if (rc != 0) {
        free(l);
        log_error("listen on %s: %s", cl->address, uv_strerror(rc));
        return rc;
    }
    l->tcp.data = srv;
    srv->n_listeners_open++;
    /* [::] binds IPv6 only, so that 0.0.0.0 on the same port can be listed too. */
    unsigned flags = cl->addr.ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0;
    rc = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&cl->addr, flags);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&l->tcp, SERVER_BACKLOG, on_connection);
    if (rc != 0) {
        log_error("listen on %s: %s", cl->address, uv_strerror(rc));
        listener_close(l);
        return rc;
    }
    *out = l;
    return 0;
}

/* server_listen - the listeners cfg asks for, in its order: those of running (NULL: none)
 * with the same address are moved over as they are (their sockets never close), the others
 * opened. On failure what was opened is closed again and running is left whole; on success
 * the listeners left in running are the ones to close. 0 or a libuv error. */
static int server_listen(struct server *srv, const struct config *cfg,
                         struct server_listener **running, struct server_listener **out)
{
    struct server_listener *list = NULL, **tail = &list;
    int rc = 0;
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const struct config_listener *cl = &cfg->listeners[i];
        struct server_listener *l = listener_take(running, cl);
        if (l == NULL && (rc = listener_open(srv, cl, &l)) != 0)
            break;
        if (running == NULL)
            log_info("listening on %s", cl->address);
        l->next = NULL;
        *tail = l;
        tail = &l->next;
    }
    /* The i-th of the list serves cfg->listeners[i]: one opened now has that configuration,
     * one moved over still the running one until the commit. */
    if (rc != 0) {
        for (size_t i = 0; list != NULL; i++) {
            struct server_listener *l = list;
            list = l->next;
            if (l->cfg == &cfg->listeners[i]) {
                listener_close(l);
            } else { /* back where it was */
                l->next = *running;
                *running = l;
            }
        }
        return rc;
    }
    size_t i = 0;
    for (struct server_listener *l = list; l != NULL; l = l->next)
        l->cfg = &cfg->listeners[i++];
    *out = list;
    return 0;
}

/* server_reload - SIGHUP with a reload source: all or nothing. First everything that can
 * fail is made aside (the queue when this configuration is the first to queue, the
 * certificates, deliveries and recipient check of the new generation, the new listeners),
 * with nothing of the running server changed; a failure there undoes it and the running
 * configuration stays whole, its log level and format included. Then the commit, which
 * cannot fail. */
static void server_reload(struct server *srv)
{
    char err[1024];
    struct config *cfg = srv->reload(srv->reload_arg, err, sizeof(err));
    if (cfg == NULL) {
        log_error("reload failed, the running configuration stays: %s", err);
        return;
    }
    for (size_t i = 0; i < cfg->n_warnings; i++)
        log_warn("%s", cfg->warnings[i]);
    struct queue *opened_queue = NULL;
    if (server_open_queue(srv, cfg, &opened_queue) != 0) {
        log_error("reload failed, the running configuration stays: the queue cannot be opened");
        config_free(cfg);
        return;
    }
    struct queue *queue = opened_queue != NULL ? opened_queue : srv->queue;
    struct server_gen *gen = NULL;
    if (server_gen_new(srv, cfg, true, queue, &gen, err, sizeof(err)) != 0) {
        log_error("reload failed, the running configuration stays: %s", err);
        queue_close(opened_queue);
        config_free(cfg);
        return;
    }
    struct server_listener *opened = NULL;
    if (server_listen(srv, cfg, &srv->listeners, &opened) != 0) {
        log_error("reload failed, the running configuration stays: a listener cannot be opened");
        server_gen_free(gen); /* and cfg with it */
        queue_close(opened_queue);
        return;
    }

    /* The commit: from here on nothing fails. */
    log_set_level((enum log_level)cfg->log_level);
    log_set_format((enum log_format)cfg->log_format);
    if (opened_queue != NULL)
        srv->queue = opened_queue;
    close_listeners(srv); /* those the new configuration has no more */
    srv->listeners = opened;
    if (cfg->admin.enabled != srv->cfg->admin.enabled ||
        (cfg->admin.enabled && strcmp(cfg->admin.listen, srv->cfg->admin.listen) != 0))
        log_warn("reload: the admin port stays %s until a restart",
                 srv->cfg->admin.enabled ? srv->cfg->admin.listen : "off");
    struct server_gen *old = srv->gen;
    delivery_context_carry(gen->delivery, old->delivery); /* a down endpoint stays known */
    gen->next = srv->gens;
    srv->gens = gen;
    srv->gen = gen;
    srv->cfg = cfg;
    if (srv->queue != NULL)
        queue_configure(srv->queue, cfg); /* a queue opened now starts its attempts here */
    log_info("reloaded: %zu listener(s), %zu endpoint(s), %zu route(s); open connections keep "
             "the configuration they started with",
             cfg->n_listeners, cfg->n_endpoints, cfg->n_routes);
    server_gen_unref(old); /* no longer current: it goes with its last connection */
}

/* server_set_reload - see server.h. */
void server_set_reload(struct server *srv, server_reload_fn fn, void *arg)
{
    srv->reload = fn;
    srv->reload_arg = arg;
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
    queue_close(srv->queue); /* attempts still running are cut off: tried again at the next
                              * start, with the same key */
    srv->queue = NULL;
    stats_free(srv->stats);
    srv->stats = NULL;
    while (srv->gens != NULL) { /* no connection is left to hold one */
        struct server_gen *gen = srv->gens;
        srv->gens = gen->next;
        server_gen_free(gen);
    }
    srv->gen = NULL;
    client_map_free(srv->clients);
    srv->clients = NULL;
    http_client_close(srv->http);
    srv->http = NULL;
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

    uint64_t seed = 0;
    uv_random(NULL, NULL, &seed, sizeof(seed), 0, NULL);
    if (client_map_new(seed, &srv->clients) != 0)
        return UV_ENOMEM;
    if (http_client_new(loop, &srv->http) != 0) {
        log_error("http client: cannot start");
        client_map_free(srv->clients);
        srv->clients = NULL;
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

    int rc = 0;
    if (cfg->admin.enabled && stats_new(cfg, &srv->stats) != 0) {
        rc = UV_ENOMEM;
        goto fail;
    }
    if ((rc = server_open_queue(srv, cfg, &srv->queue)) != 0)
        goto fail;
    struct server_gen *gen = NULL;
    char err[512];
    if ((rc = server_gen_new(srv, (struct config *)cfg, false, srv->queue, &gen, err,
                             sizeof(err))) != 0) {
        log_error("%s", err);
        goto fail;
    }
    srv->gen = srv->gens = gen;
    srv->cfg = cfg;
    if (srv->queue != NULL)
        queue_configure(srv->queue, cfg); /* its attempts start: the generation is there */
    if (cfg->admin.enabled) {
        struct admin_hooks hooks = {server_render_metrics, server_ready, server_admin_queue, srv};
        if (admin_start(loop, (const struct sockaddr *)&cfg->admin.addr, cfg->admin.addrlen, &hooks,
                        &srv->admin) != 0) {
            log_error("admin port %s: cannot listen (in use, or not an address of this machine)",
                      cfg->admin.listen);
            rc = UV_EADDRINUSE;
            goto fail;
        }
        log_info("admin port on %s: /metrics /livez /readyz", cfg->admin.listen);
    }
    struct server_listener *opened = NULL;
    if ((rc = server_listen(srv, cfg, NULL, &opened)) != 0)
        goto fail;
    srv->listeners = opened;
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

fail:
    srv->closed = true;
    close_listeners(srv);
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
    queue_stop(srv->queue);
    /* Deliveries end a little before the bound, so that their replies still go out. */
    uint64_t bound = srv->cfg->limits.shutdown_timeout_ms;
    for (struct server_gen *gen = srv->gens; gen != NULL; gen = gen->next)
        delivery_context_stop(gen->delivery, bound - (bound / 4 < 1000 ? bound / 4 : 1000));
    struct server_conn *sc = srv->conns;
    while (sc != NULL) {
        struct server_conn *next = sc->next; /* conn_shutdown may close and free sc */
        conn_shutdown(sc->conn);
        sc = next;
    }
    if (srv->conns == NULL && queue_busy(srv->queue) == 0) {
        server_finish(srv);
        return;
    }
    uv_timer_start(&srv->shutdown_timer, on_shutdown_timeout, srv->cfg->limits.shutdown_timeout_ms,
                   0);
}
