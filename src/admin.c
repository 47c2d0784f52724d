/* admin.c - the admin HTTP port on libmicrohttpd, in the libuv loop (see admin.h). */
#include "smtphook/admin.h"

#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

#include "smtphook/error.h"
#include "smtphook/log.h"

#define ADMIN_CONNECTIONS_MAX 64u /* concurrent admin connections */
#define ADMIN_PER_CLIENT_MAX  16u /* of them from one address: one client cannot take all */
#define ADMIN_TIMEOUT_S       10u /* an idle admin connection is closed after this */
#define ADMIN_METRICS_TYPE    "text/plain; version=0.0.4; charset=utf-8"

struct admin {
    struct MHD_Daemon *mhd;   /* the HTTP server, run from the loop */
    uv_poll_t poll;           /* its epoll descriptor */
    uv_timer_t timer;         /* its next timeout */
    struct admin_hooks hooks; /* the server's answers */
    unsigned handles_open;    /* poll and timer until their close callbacks ran */
    bool stopping;            /* admin_stop ran: MHD is stopped once the handles are closed */
};

static void admin_run(struct admin *a);

/* admin_reply - queue a response of len bytes (copied) with status and content type. */
static enum MHD_Result admin_reply(struct MHD_Connection *conn, unsigned status, const char *type,
                                   const char *body, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

/* admin_text - a short plain-text answer. */
static enum MHD_Result admin_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
    return admin_reply(conn, status, "text/plain; charset=utf-8", text, strlen(text));
}

/* admin_handle - MHD_AccessHandlerCallback: one request, answered at once. A request body is
 * not expected (GET and HEAD; POST under /queue takes none) and never read. */
static enum MHD_Result admin_handle(void *cls, struct MHD_Connection *conn, const char *url,
                                    const char *method, const char *version,
                                    const char *upload_data, size_t *upload_data_size,
                                    void **con_cls)
{
    struct admin *a = cls;
    (void)version;
    (void)upload_data;
    (void)con_cls;
    if (*upload_data_size != 0) {
        *upload_data_size = 0; /* drop it */
        return MHD_YES;
    }
    if (strcmp(url, "/queue") == 0 || strncmp(url, "/queue/", 7) == 0) {
        if (a->hooks.queue == NULL)
            return admin_text(conn, MHD_HTTP_NOT_FOUND, "no queue: no route queues\n");
        struct buf out = {0};
        unsigned status = a->hooks.queue(a->hooks.arg, method, url, &out);
        enum MHD_Result rc =
            out.failed ? admin_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n")
                       : admin_reply(conn, status, "application/json",
                                     out.data != NULL ? out.data : "", out.len);
        buf_free(&out);
        return rc;
    }
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return admin_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "GET only\n");
    if (strcmp(url, "/metrics") == 0) {
        struct buf out = {0};
        a->hooks.metrics(a->hooks.arg, &out);
        enum MHD_Result rc =
            out.failed ? admin_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n")
                       : admin_reply(conn, MHD_HTTP_OK, ADMIN_METRICS_TYPE,
                                     out.data != NULL ? out.data : "", out.len);
        buf_free(&out);
        return rc;
    }
    if (strcmp(url, "/livez") == 0)
        return admin_text(conn, MHD_HTTP_OK, "ok\n");
    if (strcmp(url, "/readyz") == 0 || strcmp(url, "/healthz") == 0) {
        const char *why = NULL;
        if (a->hooks.ready(a->hooks.arg, &why))
            return admin_text(conn, MHD_HTTP_OK, "ready\n");
        char text[128];
        size_t n = strlen("not ready: ");
        memcpy(text, "not ready: ", n);
        size_t w = strlen(why);
        if (w > sizeof(text) - n - 2)
            w = sizeof(text) - n - 2;
        memcpy(text + n, why, w);
        text[n + w] = '\n';
        text[n + w + 1] = '\0';
        return admin_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, text);
    }
    return admin_text(conn, MHD_HTTP_NOT_FOUND,
                      "not found: /metrics /livez /readyz /healthz /queue\n");
}

/* on_admin_poll - the epoll descriptor is readable: let MHD work. */
static void on_admin_poll(uv_poll_t *p, int status, int events)
{
    (void)status;
    (void)events;
    admin_run(p->data);
}

/* on_admin_timer - MHD's timeout came (idle connections to close). */
static void on_admin_timer(uv_timer_t *t)
{
    admin_run(t->data);
}

/* admin_run - one round of MHD's work, then the timer for its next timeout. */
static void admin_run(struct admin *a)
{
    if (a->stopping)
        return;
    MHD_run(a->mhd);
    MHD_UNSIGNED_LONG_LONG ms = 0;
    if (MHD_get_timeout(a->mhd, &ms) == MHD_YES)
        uv_timer_start(&a->timer, on_admin_timer, (uint64_t)ms, 0);
    else
        uv_timer_stop(&a->timer);
}

/* on_admin_closed - a handle is closed; after the last one MHD stops (closing its epoll
 * descriptor, which libuv no longer watches) and the admin goes. */
static void on_admin_closed(uv_handle_t *h)
{
    struct admin *a = h->data;
    if (--a->handles_open > 0)
        return;
    MHD_stop_daemon(a->mhd);
    free(a);
}

/* admin_start - see admin.h. */
int admin_start(uv_loop_t *loop, const struct sockaddr *addr, socklen_t addrlen,
                const struct admin_hooks *hooks, struct admin **out)
{
    (void)addrlen;
    *out = NULL;
    struct admin *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return SH_ENOMEM;
    a->hooks = *hooks;
    uint16_t port = addr->sa_family == AF_INET6
                        ? ntohs(((const struct sockaddr_in6 *)(const void *)addr)->sin6_port)
                        : ntohs(((const struct sockaddr_in *)(const void *)addr)->sin_port);
    unsigned flags = MHD_USE_EPOLL | (addr->sa_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    a->mhd = MHD_start_daemon(flags, port, NULL, NULL, admin_handle, a, MHD_OPTION_SOCK_ADDR, addr,
                              MHD_OPTION_CONNECTION_LIMIT, ADMIN_CONNECTIONS_MAX,
                              MHD_OPTION_PER_IP_CONNECTION_LIMIT, ADMIN_PER_CLIENT_MAX,
                              MHD_OPTION_CONNECTION_TIMEOUT, ADMIN_TIMEOUT_S, MHD_OPTION_END);
    if (a->mhd == NULL) {
        free(a);
        return SH_EIO;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(a->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    if (info == NULL) {
        MHD_stop_daemon(a->mhd);
        free(a);
        return SH_EIO;
    }
    uv_poll_init(loop, &a->poll, info->epoll_fd);
    uv_timer_init(loop, &a->timer);
    a->poll.data = a;
    a->timer.data = a;
    a->handles_open = 2;
    uv_poll_start(&a->poll, UV_READABLE, on_admin_poll);
    admin_run(a); /* the listening socket is in the epoll set: nothing to wait for yet */
    *out = a;
    return 0;
}

/* admin_stop - see admin.h. */
void admin_stop(struct admin *a)
{
    if (a == NULL || a->stopping)
        return;
    a->stopping = true;
    MHD_quiesce_daemon(a->mhd); /* no new connections from now on */
    uv_close((uv_handle_t *)&a->poll, on_admin_closed);
    uv_close((uv_handle_t *)&a->timer, on_admin_closed);
}
