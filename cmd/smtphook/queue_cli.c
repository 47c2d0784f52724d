/* queue_cli.c - "smtphook queue ...": the queue directory for operators, safe while the
 * server runs (queue_store.h); every change pokes a running server (queue_poke). */
#include "queue_cli.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtphook/config.h"
#include "smtphook/error.h"
#include "smtphook/log.h"
#include "smtphook/queue.h"
#include "smtphook/queue_json.h"
#include "smtphook/queue_store.h"

#include "env.h"

static const char queue_usage[] =
    "Usage: smtphook queue [--config FILE | --queue-dir DIR] [--json] COMMAND\n"
    "\n"
    "  list             the entries waiting for delivery\n"
    "  show NAME        one entry (waiting or dead) with the history of its attempts\n"
    "  retry NAME       try it now\n"
    "  retry --all      try every waiting entry now\n"
    "  delete NAME      remove an entry (waiting or dead) and its message\n"
    "  dead             the dead letters: given up after a refusal or at queue.max_age_ms\n"
    "  requeue NAME     a dead letter back into the queue, tried now\n"
    "\n"
    "NAME is an entry's name, or a message's id (as in the 250 reply and the log): then\n"
    "each entry of that message (one per endpoint).\n"
    "The queue directory is --queue-dir, else the configuration's queue.directory\n"
    "(--config or SMTPHOOK_CONFIG, with the SMTPHOOK_* variables smtphook reads, as it\n"
    "loads it), else SMTPHOOK_QUEUE_DIR. Exit status: 0 done, 1 no such entry or an error,\n"
    "2 a usage error.\n";

/* What one run of the command works on. */
struct qc {
    struct queue_store *store; /* the queue directory */
    const char *dir;           /* its path */
    bool json;                 /* --json */
    int64_t now_ms;            /* Unix ms at the start */
};

/* qc_when - "in 12s", "due", "3m ago" for a time relative to now. */
static const char *qc_when(char *buf, size_t len, int64_t at, int64_t now)
{
    int64_t d = at - now;
    int64_t a = d < 0 ? -d : d;
    const char *unit = "s";
    int64_t v = a / 1000;
    if (v >= 172800) {
        v /= 86400;
        unit = "d";
    } else if (v >= 7200) {
        v /= 3600;
        unit = "h";
    } else if (v >= 120) {
        v /= 60;
        unit = "m";
    }
    if (d <= 0 && a < 1000)
        snprintf(buf, len, "now");
    else
        snprintf(buf, len, d > 0 ? "in %" PRId64 "%s" : "%" PRId64 "%s ago", v, unit);
    return buf;
}

/* qc_line - one entry as a line of the human listing. */
static void qc_line(const struct qc *c, const struct queue_entry *e)
{
    char when[32];
    const struct envelope *env = &e->env;
    printf("%-40s %-16s attempts=%-3u %s=%-10s size=%-8" PRIu64 " <%s> -> %s%s", e->name,
           e->endpoints[0], e->attempts, e->dead_ms > 0 ? "dead" : "next",
           qc_when(when, sizeof(when), e->dead_ms > 0 ? e->dead_ms : e->next_ms, c->now_ms),
           env->size, env->mail_from, env->n_rcpt > 0 ? env->rcpt_to[0] : "",
           env->n_rcpt > 1 ? " ..." : "");
    if (e->dead_ms > 0)
        printf("  %s", e->dead_reason != NULL ? e->dead_reason : "");
    else if (e->n_history > 0)
        printf("  last: %s", e->history[e->n_history - 1].text);
    printf("\n");
}

/* Counting the listing. */
struct qc_walk {
    const struct qc *c;
    size_t n;
    uint64_t bytes;
};

/* qc_print - queue_list_fn of the human listing. */
static int qc_print(void *arg, const struct queue_entry *e, const char *why)
{
    struct qc_walk *w = arg;
    if (why != NULL) {
        printf("%-40s (cannot be read: %s)\n", e->name, why);
        return 0;
    }
    qc_line(w->c, e);
    w->n++;
    w->bytes += e->env.size;
    return 0;
}

/* qc_list - "list" and "dead". */
static int qc_list(const struct qc *c, enum queue_which which)
{
    if (c->json) {
        struct buf out = {0};
        int rc = queue_json_list(c->store, which, &out);
        if (rc == 0)
            printf("%.*s\n", (int)out.len, out.data);
        buf_free(&out);
        if (rc != 0)
            fprintf(stderr, "smtphook queue: %s: %s\n", c->dir, sh_strerror(rc));
        return rc == 0 ? 0 : 1;
    }
    struct qc_walk w = {c, 0, 0};
    int rc = c->store->ops->list(c->store, which, qc_print, &w);
    if (rc != 0) {
        fprintf(stderr, "smtphook queue: %s: %s\n", c->dir, sh_strerror(rc));
        return 1;
    }
    printf("%zu %s, %" PRIu64 " bytes\n", w.n,
           which == QUEUE_DEAD ? (w.n == 1 ? "dead letter" : "dead letters")
                               : (w.n == 1 ? "entry" : "entries"),
           w.bytes);
    return 0;
}

/* qc_read - the entry name, active or dead. 0, or 1 after saying why. */
static int qc_read(const struct qc *c, const char *name, struct queue_entry *e,
                   enum queue_which *which)
{
    char why[256];
    *which = QUEUE_ACTIVE;
    int rc = c->store->ops->read(c->store, QUEUE_ACTIVE, name, e, why, sizeof(why));
    if (rc == SH_ENOTFOUND) {
        queue_entry_free(e);
        *which = QUEUE_DEAD;
        rc = c->store->ops->read(c->store, QUEUE_DEAD, name, e, why, sizeof(why));
    }
    if (rc == SH_ENOTFOUND)
        fprintf(stderr, "smtphook queue: no entry %s in %s\n", name, c->dir);
    else if (rc != 0)
        fprintf(stderr, "smtphook queue: %s: %s\n", name, why);
    return rc == 0 ? 0 : 1;
}

/* qc_show - "show NAME". */
static int qc_show(const struct qc *c, const char *name)
{
    struct queue_entry e;
    enum queue_which which;
    int rc = qc_read(c, name, &e, &which);
    if (rc != 0) {
        queue_entry_free(&e);
        return rc;
    }
    if (c->json) {
        struct buf out = {0};
        if (queue_json_entry(&e, true, &out) == 0)
            printf("%.*s\n", (int)out.len, out.data);
        buf_free(&out);
        queue_entry_free(&e);
        return 0;
    }
    const struct envelope *env = &e.env;
    char when[32];
    printf("entry:      %s (%s)\n", e.name, which == QUEUE_DEAD ? "dead letter" : "waiting");
    printf("message id: %s, %" PRIu64 " bytes, key %s\n", env->id, env->size, e.key);
    printf("from:       <%s> (client %s:%u, helo %s)\n", env->mail_from,
           env->client_address != NULL ? env->client_address : "", env->client_port,
           env->helo != NULL ? env->helo : "-");
    for (size_t i = 0; i < env->n_rcpt; i++)
        printf("to:         <%s>\n", env->rcpt_to[i]);
    for (size_t i = 0; i < e.n_endpoints; i++)
        printf("endpoint:   %s%s\n", e.endpoints[i], e.failover ? " (failover, in order)" : "");
    printf("queued:     %s\n", qc_when(when, sizeof(when), e.queued_ms, c->now_ms));
    if (e.dead_ms > 0) {
        printf("dead:       %s: %s\n", qc_when(when, sizeof(when), e.dead_ms, c->now_ms),
               e.dead_reason != NULL ? e.dead_reason : "");
    } else {
        printf("next:       %s\n", qc_when(when, sizeof(when), e.next_ms, c->now_ms));
    }
    printf("attempts:   %u\n", e.attempts);
    for (size_t i = 0; i < e.n_history; i++) {
        const struct queue_attempt *a = &e.history[i];
        printf("  %-8s %s status=%ld %u %s %s\n", qc_when(when, sizeof(when), a->at_ms, c->now_ms),
               a->endpoint, a->status, a->code, a->esc, a->text);
    }
    queue_entry_free(&e);
    return 0;
}

/* Names gathered from a listing. */
struct qc_names {
    const char *id; /* only the entries of this message, or NULL: all */
    char **names;
    size_t n;
    bool failed;
};

static int qc_gather(void *arg, const struct queue_entry *e, const char *why);

/* qc_free_names - the gathered names. */
static void qc_free_names(struct qc_names *g)
{
    for (size_t i = 0; i < g->n; i++)
        free(g->names[i]);
    free(g->names);
}

/* qc_by_id - the entries of which whose message id is arg (a message for several endpoints
 * has one entry each), when arg is not an entry's own name. */
static void qc_by_id(const struct qc *c, enum queue_which which, const char *arg,
                     struct qc_names *g)
{
    memset(g, 0, sizeof(*g));
    g->id = arg;
    char why[256];
    struct queue_entry e;
    int rc = c->store->ops->read(c->store, which, arg, &e, why, sizeof(why));
    queue_entry_free(&e);
    if (rc != SH_ENOTFOUND)
        return; /* an entry's own name: not an id */
    c->store->ops->list(c->store, which, qc_gather, g);
}

/* qc_retry_one - entry name due now. 0, or 1 after saying why. */
static int qc_retry_one(const struct qc *c, const char *name)
{
    struct queue_entry e;
    char why[256];
    int rc = c->store->ops->read(c->store, QUEUE_ACTIVE, name, &e, why, sizeof(why));
    if (rc == 0) {
        e.next_ms = c->now_ms;
        rc = c->store->ops->fail(c->store, &e);
    }
    queue_entry_free(&e);
    if (rc == SH_ENOTFOUND) {
        fprintf(stderr,
                "smtphook queue: no waiting entry %s in %s (a dead letter needs "
                "requeue)\n",
                name, c->dir);
        return 1;
    }
    if (rc != 0) {
        fprintf(stderr, "smtphook queue: %s: %s\n", name, rc == SH_EINVAL ? why : sh_strerror(rc));
        return 1;
    }
    queue_poke(c->dir, name);
    if (!c->json)
        printf("%s: tried now\n", name);
    return 0;
}

/* qc_gather - queue_list_fn: collect the names (of one message's entries, with id). */
static int qc_gather(void *arg, const struct queue_entry *e, const char *why)
{
    struct qc_names *g = arg;
    if (why != NULL || (g->id != NULL && strcmp(e->env.id, g->id) != 0))
        return 0;
    char **names = realloc(g->names, (g->n + 1) * sizeof(*names));
    if (names == NULL || (names[g->n] = strdup(e->name)) == NULL) {
        if (names != NULL)
            g->names = names;
        g->failed = true;
        return SH_ENOMEM;
    }
    g->names = names;
    g->n++;
    return 0;
}

/* qc_retry_all - "retry --all". */
static int qc_retry_all(const struct qc *c)
{
    struct qc_names g = {NULL, NULL, 0, false};
    int rc = c->store->ops->list(c->store, QUEUE_ACTIVE, qc_gather, &g);
    int status = rc == 0 ? 0 : 1;
    size_t done = 0;
    for (size_t i = 0; i < g.n; i++) {
        if (qc_retry_one(c, g.names[i]) == 0)
            done++;
        free(g.names[i]);
    }
    free(g.names);
    if (rc != 0)
        fprintf(stderr, "smtphook queue: %s: %s\n", c->dir, sh_strerror(rc));
    printf("%zu entr%s tried now\n", done, done == 1 ? "y" : "ies");
    return status;
}

/* qc_delete - "delete NAME": a waiting entry, else a dead letter. */
static int qc_delete(const struct qc *c, const char *name)
{
    int rc = c->store->ops->remove(c->store, QUEUE_ACTIVE, name);
    bool dead = false;
    if (rc == SH_ENOTFOUND) {
        dead = true;
        rc = c->store->ops->remove(c->store, QUEUE_DEAD, name);
    }
    if (rc != 0) {
        fprintf(stderr, "smtphook queue: %s: %s\n", name,
                rc == SH_ENOTFOUND ? "no such entry" : sh_strerror(rc));
        return 1;
    }
    if (!dead)
        queue_poke(c->dir, name);
    printf("%s: deleted%s\n", name, dead ? " (a dead letter)" : "");
    return 0;
}

/* qc_requeue - "requeue NAME". */
static int qc_requeue(const struct qc *c, const char *name)
{
    int rc = c->store->ops->requeue(c->store, name, c->now_ms);
    if (rc != 0) {
        fprintf(stderr, "smtphook queue: %s: %s\n", name,
                rc == SH_ENOTFOUND ? "no such dead letter" : sh_strerror(rc));
        return 1;
    }
    queue_poke(c->dir, name);
    printf("%s: back in the queue, tried now\n", name);
    return 0;
}

/* qc_directory - the queue directory: --queue-dir, the configuration's, or the
 * environment's. NULL after saying why. *cfg is set when a configuration was loaded. The
 * configuration is loaded with the variables smtphook reads as options (in a container the
 * command runs with smtphook's environment: a file that names no endpoint and a
 * SMTPHOOK_WEBHOOK load here as they do there). */
static const char *qc_directory(const char *dir, const char *config_path, struct config **cfg)
{
    *cfg = NULL;
    if (dir != NULL)
        return dir;
    config_path = env_option(config_path, "SMTPHOOK_CONFIG");
    if (config_path != NULL) {
        char err[512];
        struct config_overrides ov = {0};
        const char *listen[ENV_MAX_LISTEN];
        static char listen_env[4096];
        if (env_overrides(&ov, listen, ENV_MAX_LISTEN, listen_env, sizeof(listen_env)) != 0) {
            fprintf(stderr, "smtphook queue: SMTPHOOK_LISTEN: at most %d addresses\n",
                    ENV_MAX_LISTEN);
            return NULL;
        }
        if (config_load(config_path, &ov, cfg, err, sizeof(err)) != 0) {
            fprintf(stderr, "smtphook queue: %s\n", err);
            return NULL;
        }
        return (*cfg)->queue.directory;
    }
    dir = getenv("SMTPHOOK_QUEUE_DIR");
    if (dir != NULL && dir[0] != '\0')
        return dir;
    return CONFIG_DEF_QUEUE_DIRECTORY;
}

/* queue_cli_main - see queue_cli.h. */
int queue_cli_main(int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'}, {"queue-dir", required_argument, NULL, 'q'},
        {"json", no_argument, NULL, 'j'},         {"all", no_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL, *dir = NULL;
    bool json = false, all = false;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:h", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'q':
            dir = optarg;
            break;
        case 'j':
            json = true;
            break;
        case 'a':
            all = true;
            break;
        case 'h':
            fputs(queue_usage, stdout);
            return 0;
        default:
            fputs(queue_usage, stderr);
            return 2;
        }
    }
    if (optind >= argc) {
        fputs(queue_usage, stderr);
        return 2;
    }
    const char *cmd = argv[optind];
    const char *name = optind + 1 < argc ? argv[optind + 1] : NULL;
    size_t extra = (size_t)(argc - optind - 1);
    bool needs_name = strcmp(cmd, "show") == 0 || strcmp(cmd, "delete") == 0 ||
                      strcmp(cmd, "requeue") == 0 || (strcmp(cmd, "retry") == 0 && !all);
    bool known = needs_name || strcmp(cmd, "list") == 0 || strcmp(cmd, "dead") == 0 ||
                 strcmp(cmd, "retry") == 0;
    if (!known || (needs_name && extra != 1) || (!needs_name && extra != 0) ||
        (all && strcmp(cmd, "retry") != 0)) {
        fprintf(stderr, "smtphook queue: %s\n", known ? "wrong arguments" : "unknown command");
        fputs(queue_usage, stderr);
        return 2;
    }
    if (name != NULL && !queue_entry_name_ok(name)) { /* every command below takes it so */
        fprintf(stderr, "smtphook queue: %s: not an entry name or message id\n", name);
        return 1;
    }
    log_set_level(LOG_LEVEL_WARN);
    struct config *cfg = NULL;
    dir = qc_directory(dir, config_path, &cfg);
    if (dir == NULL)
        return 1;
    struct qc c = {NULL, dir, json, log_unix_ms()};
    char err[512];
    if (queue_dir_open(dir, false, &c.store, err, sizeof(err)) != 0) {
        fprintf(stderr, "smtphook queue: %s\n", err);
        config_free(cfg);
        return 1;
    }
    int rc;
    struct qc_names ids = {0};
    if (name != NULL) {
        bool both = strcmp(cmd, "show") == 0 || strcmp(cmd, "delete") == 0;
        qc_by_id(&c, strcmp(cmd, "requeue") == 0 ? QUEUE_DEAD : QUEUE_ACTIVE, name, &ids);
        if (both) { /* a message's dead letters too */
            struct qc_names dead = {0};
            qc_by_id(&c, QUEUE_DEAD, name, &dead);
            char **joined = realloc(ids.names, (ids.n + dead.n + 1) * sizeof(*joined));
            if (joined != NULL) {
                ids.names = joined;
                for (size_t i = 0; i < dead.n; i++)
                    ids.names[ids.n++] = dead.names[i];
                dead.n = 0;
            }
            qc_free_names(&dead);
        }
    }
    if (ids.n > 0) { /* a message id: each of its entries */
        rc = 0;
        for (size_t i = 0; i < ids.n; i++) {
            int r = strcmp(cmd, "show") == 0     ? qc_show(&c, ids.names[i])
                    : strcmp(cmd, "retry") == 0  ? qc_retry_one(&c, ids.names[i])
                    : strcmp(cmd, "delete") == 0 ? qc_delete(&c, ids.names[i])
                                                 : qc_requeue(&c, ids.names[i]);
            rc = rc != 0 ? rc : r;
        }
    } else if (strcmp(cmd, "list") == 0)
        rc = qc_list(&c, QUEUE_ACTIVE);
    else if (strcmp(cmd, "dead") == 0)
        rc = qc_list(&c, QUEUE_DEAD);
    else if (strcmp(cmd, "show") == 0)
        rc = qc_show(&c, name);
    else if (strcmp(cmd, "retry") == 0)
        rc = all ? qc_retry_all(&c) : qc_retry_one(&c, name);
    else if (strcmp(cmd, "delete") == 0)
        rc = qc_delete(&c, name);
    else
        rc = qc_requeue(&c, name);
    qc_free_names(&ids);
    c.store->ops->close(c.store);
    config_free(cfg);
    return rc;
}
