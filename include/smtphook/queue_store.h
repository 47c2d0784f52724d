/* queue_store.h - where queued entries live: the small interface a queue backend offers.
 *
 * The queue (queue.h) schedules and delivers; a backend only keeps entries durably. Today
 * there is one backend, a directory on local disk (queue_dir.c); a backend shared by
 * several replicas is one more file implementing struct queue_store_ops.
 *
 * Every entry is one message for one endpoint (or a failover route's endpoints): its entry
 * file (queue_entry.h) and the message. Active entries are waiting or being tried; dead
 * letters were given up. All calls are synchronous file I/O: enqueue runs on a worker
 * thread, the others are small and run where they are called. Every call is safe while
 * another process (the CLI) works on the same store: an entry deleted meanwhile is
 * SH_ENOTFOUND, never brought back. */
#ifndef SMTPHOOK_QUEUE_STORE_H
#define SMTPHOOK_QUEUE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smtphook/buf.h"
#include "smtphook/queue_entry.h"
#include "smtphook/spool.h"

struct queue_store;

/* Which entries. */
enum queue_which {
    QUEUE_ACTIVE = 0, /* waiting or being tried */
    QUEUE_DEAD,       /* dead letters */
};

/* One message to enqueue: its entries, formatted, and the message. */
struct queue_new {
    const struct spool *message; /* the body, read (not changed) by the worker */
    uint64_t size;               /* its bytes */
    const char *id;              /* the transaction id: the message file's name */
    char **names;                /* entry names, one per share */
    struct buf *texts;           /* their entry files (queue_entry_format) */
    size_t n;                    /* entries */
    int result;                  /* out: 0, SH_ENOSPACE (disk full) or SH_EIO */
    char error[128];             /* out: what failed, for the log */
};

/* Called by list for each entry; a non-zero return stops the walk. e is the caller's for
 * the call only. bad: the file could not be read (e holds only its name, why says why). */
typedef int (*queue_list_fn)(void *arg, const struct queue_entry *e, const char *why);

struct queue_store_ops {
    /* enqueue - make every entry of the n messages durable (one flush for them all), or
     * none of a message's: each one's result says. Returns 0 unless the flush failed. */
    int (*enqueue)(struct queue_store *s, struct queue_new *batch, size_t n);
    /* claim - an active entry and its message, for an attempt. SH_ENOTFOUND when it is
     * gone, SH_EINVAL when it cannot be read (why says why), SH_EIO. */
    int (*claim)(struct queue_store *s, const char *name, struct queue_entry *e,
                 struct spool **message, char *why, size_t whylen);
    /* complete - the entry was delivered: it goes. */
    int (*complete)(struct queue_store *s, const char *name);
    /* fail - write the entry back with its new schedule and history. */
    int (*fail)(struct queue_store *s, const struct queue_entry *e);
    /* bury - the entry (its dead fields set) becomes a dead letter, with its message. */
    int (*bury)(struct queue_store *s, const struct queue_entry *e);
    /* list - each entry of which, in no particular order. */
    int (*list)(struct queue_store *s, enum queue_which which, queue_list_fn fn, void *arg);
    /* names - the name of each entry of which (nothing read: a rescan of a large queue). */
    int (*names)(struct queue_store *s, enum queue_which which,
                 int (*fn)(void *arg, const char *name), void *arg);
    /* read - one entry of which by name (no message). */
    int (*read)(struct queue_store *s, enum queue_which which, const char *name,
                struct queue_entry *e, char *why, size_t whylen);
    /* message - the message file of an entry, opened for reading, and its size. */
    int (*message)(struct queue_store *s, enum queue_which which, const char *name, int *fd,
                   uint64_t *size);
    /* remove - delete an entry of which and its message. */
    int (*remove)(struct queue_store *s, enum queue_which which, const char *name);
    /* requeue - a dead letter becomes active again, due at now_ms, its life starting anew. */
    int (*requeue)(struct queue_store *s, const char *name, int64_t now_ms);
    /* close - release the store. */
    void (*close)(struct queue_store *s);
};

struct queue_store {
    const struct queue_store_ops *ops; /* the backend */
};

/* queue_dir_open - the directory backend on path (made if missing, with its "active",
 * "dead", "tmp" and "corrupt" folders). recover: this is the server starting: files a
 * crash left half-written are removed and unreadable entries moved to "corrupt" (each
 * logged). 0, or SH_EIO with the reason in err. */
int queue_dir_open(const char *path, bool recover, struct queue_store **out, char *err,
                   size_t errlen);

/* queue_dir_watch_path - the folder whose changes a running server follows (the active
 * entries: the CLI's retry, requeue and delete land there). */
const char *queue_dir_watch_path(const struct queue_store *s);

#endif
