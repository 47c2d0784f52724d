/* admin.h - the admin port: GET /metrics (Prometheus text format), /livez, /readyz and its
 * alias /healthz, for orchestrators and monitoring, and the queue (GET /queue, POST
 * /queue/NAME/retry) for operators. Off unless "admin.listen" is set.
 *
 * Served by libmicrohttpd driven by the server's libuv loop: its epoll descriptor is one
 * uv_poll handle and its timeout one uv_timer; no thread, no parser of ours. Every answer is
 * made at once from memory, so the admin port never holds up the SMTP side. Only admin.c
 * includes microhttpd.h. */
#ifndef SMTPHOOK_ADMIN_H
#define SMTPHOOK_ADMIN_H

#include <stdbool.h>
#include <sys/socket.h>
#include <uv.h>

#include "smtphook/buf.h"

struct admin;

/* What the admin port asks the server. */
struct admin_hooks {
    /* metrics - append the Prometheus text of every metric to out. */
    void (*metrics)(void *arg, struct buf *out);
    /* ready - may traffic be sent here? false with *why a static reason. */
    bool (*ready)(void *arg, const char **why);
    /* queue - a request under /queue (GET /queue, GET /queue/NAME, POST /queue/NAME/retry):
     * the status and a JSON body into out; NULL when there is no queue (404). */
    unsigned (*queue)(void *arg, const char *method, const char *url, struct buf *out);
    void *arg;
};

/* admin_start - listen on addr and serve from loop. 0, or SH_EIO after logging why (the
 * address is taken, ...). */
int admin_start(uv_loop_t *loop, const struct sockaddr *addr, socklen_t addrlen,
                const struct admin_hooks *hooks, struct admin **out);

/* admin_stop - stop serving and close the handles; the admin is freed once libuv has closed
 * them (the loop must run). NULL is ignored. */
void admin_stop(struct admin *a);

#endif
