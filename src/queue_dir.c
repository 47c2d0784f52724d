/* queue_dir.c - the queue backend on a local directory (see queue_store.h).
 *
 *   <dir>/active/<name>      an entry file (queue_entry.h)
 *   <dir>/active/<name>.eml  its message; the entries of one message are hard links of one
 *                            file, so a message for three endpoints is stored once
 *   <dir>/dead/...           the dead letters, the same way
 *   <dir>/tmp/               files being written; anything here at start is a crash's
 *   <dir>/corrupt/           entries that could not be read at start, kept for a human
 *
 * Written as maildir does: a new file is written under tmp/ and renamed into place, so an
 * entry file is whole or absent. A message's files go in this order: the message into
 * tmp/, a link per entry into active/, each entry file renamed in, the tmp/ name removed;
 * then one syncfs() makes the whole batch durable, and only then is the message answered.
 * At start, a message file without its entry file is what a crash left between those
 * steps and goes; an entry file without its message cannot come from us and is moved to
 * corrupt/. Rewriting an entry (a failed attempt, the CLI's retry) exchanges the new file
 * with the old one (renameat2 RENAME_EXCHANGE), which fails when the old one is gone: an
 * entry the CLI deleted is never brought back by the server, nor the other way round. */
#include "smtphook/queue_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "smtphook/error.h"
#include "smtphook/log.h"

#define QD_COPY_CHUNK 65536u /* bytes copied from a spool per read */
#define QD_SUFFIX     ".eml"

struct queue_dir {
    struct queue_store base; /* first: the store handed out */
    char *path;              /* the queue directory */
    char *active_path;       /* <path>/active */
    int active;              /* its descriptor */
    int dead;                /* <path>/dead */
    int tmp;                 /* <path>/tmp */
    int corrupt;             /* <path>/corrupt */
};

/* qd_of - the directory behind a store. */
static struct queue_dir *qd_of(struct queue_store *s)
{
    return (struct queue_dir *)s;
}

/* qd_errno - an errno as our code: a full disk is SH_ENOSPACE (the sender hears 452). */
static int qd_errno(int e)
{
    if (e == ENOSPC || e == EDQUOT)
        return SH_ENOSPACE;
    if (e == ENOENT)
        return SH_ENOTFOUND;
    if (e == ENOMEM)
        return SH_ENOMEM;
    return SH_EIO;
}

/* qd_eml - "<name>.eml" into buf. */
static const char *qd_eml(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s%s", name, QD_SUFFIX);
    return buf;
}

/* qd_is_eml - does the file name end in ".eml"? */
static bool qd_is_eml(const char *name)
{
    size_t n = strlen(name);
    return n > strlen(QD_SUFFIX) && strcmp(name + n - strlen(QD_SUFFIX), QD_SUFFIX) == 0;
}

/* qd_write_all - len bytes to fd. 0 or -1 with errno. */
static int qd_write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* qd_write_spool - the spool's first size bytes to fd: at once when they are in memory,
 * else in chunks read from its file. 0 or -1 with errno. */
static int qd_write_spool(int fd, const struct spool *sp, uint64_t size)
{
    const char *mem = spool_memory(sp);
    if (mem != NULL || size == 0)
        return qd_write_all(fd, mem, (size_t)size);
    char *chunk = malloc(QD_COPY_CHUNK);
    if (chunk == NULL) {
        errno = ENOMEM;
        return -1;
    }
    int rc = 0;
    for (uint64_t off = 0; rc == 0 && off < size;) {
        size_t want = size - off < QD_COPY_CHUNK ? (size_t)(size - off) : QD_COPY_CHUNK;
        size_t got = 0;
        if (spool_read(sp, off, chunk, want, &got) != 0 || got == 0) {
            errno = EIO;
            rc = -1;
            break;
        }
        rc = qd_write_all(fd, chunk, got);
        off += got;
    }
    free(chunk);
    return rc;
}

/* qd_write_tmp - a new file tmp/<name> holding len bytes: those of the spool sp, or (sp
 * NULL) those at data. Nothing is left behind on failure. 0 or -1 with errno. */
static int qd_write_tmp(struct queue_dir *qd, const char *name, const char *data,
                        const struct spool *sp, uint64_t len)
{
    unlinkat(qd->tmp, name, 0); /* a leftover of an attempt that failed half-way */
    int fd = openat(qd->tmp, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    int rc = sp != NULL ? qd_write_spool(fd, sp, len) : qd_write_all(fd, data, (size_t)len);
    int saved = errno;
    if (close(fd) != 0 && rc == 0) {
        rc = -1;
        saved = errno;
    }
    if (rc != 0) {
        unlinkat(qd->tmp, name, 0);
        errno = saved;
    }
    return rc;
}

/* qd_undo - remove the first n entries of a message from active/ (a failed enqueue). */
static void qd_undo(struct queue_dir *qd, const struct queue_new *m, size_t n)
{
    char eml[NAME_MAX + 1];
    for (size_t i = 0; i < n; i++) {
        unlinkat(qd->active, m->names[i], 0);
        unlinkat(qd->active, qd_eml(eml, sizeof(eml), m->names[i]), 0);
    }
}

/* qd_enqueue_one - one message's files, in the order the file comment gives. */
static void qd_enqueue_one(struct queue_dir *qd, struct queue_new *m)
{
    char file[NAME_MAX + 1], eml[NAME_MAX + 1];
    qd_eml(file, sizeof(file), m->id);
    m->result = 0;
    if (qd_write_tmp(qd, file, NULL, m->message, m->size) != 0) {
        m->result = qd_errno(errno);
        snprintf(m->error, sizeof(m->error), "writing the message: %s", strerror(errno));
        return;
    }
    size_t done = 0;
    for (; done < m->n; done++) {
        const char *name = m->names[done];
        const char *step = "linking the message";
        int rc = linkat(qd->tmp, file, qd->active, qd_eml(eml, sizeof(eml), name), 0);
        if (rc == 0) {
            step = "writing the entry";
            rc = qd_write_tmp(qd, name, m->texts[done].data, NULL, m->texts[done].len);
        }
        if (rc == 0) {
            step = "renaming the entry";
            rc = renameat(qd->tmp, name, qd->active, name);
        }
        if (rc != 0) {
            m->result = qd_errno(errno);
            snprintf(m->error, sizeof(m->error), "%s: %s", step, strerror(errno));
            unlinkat(qd->tmp, name, 0);
            unlinkat(qd->active, eml, 0);
            break;
        }
    }
    if (m->result != 0)
        qd_undo(qd, m, done);
    unlinkat(qd->tmp, file, 0);
}

/* qd_enqueue - see queue_store.h: every message, then one syncfs for all of them. */
static int qd_enqueue(struct queue_store *s, struct queue_new *batch, size_t n)
{
    struct queue_dir *qd = qd_of(s);
    for (size_t i = 0; i < n; i++)
        qd_enqueue_one(qd, &batch[i]);
    if (syncfs(qd->active) == 0 && fsync(qd->active) == 0)
        return 0;
    int e = errno;
    for (size_t i = 0; i < n; i++) {
        if (batch[i].result == 0) {
            qd_undo(qd, &batch[i], batch[i].n);
            batch[i].result = qd_errno(e);
            snprintf(batch[i].error, sizeof(batch[i].error), "flushing to disk: %s", strerror(e));
        }
    }
    return qd_errno(e);
}

/* qd_slurp - the whole small file dirfd/name, malloc'ed (NUL-terminated). 0 or -1/errno. */
static int qd_slurp(int dirfd, const char *name, char **out, size_t *len)
{
    *out = NULL;
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > QUEUE_ENTRY_FILE_MAX) {
        close(fd);
        errno = S_ISREG(st.st_mode) ? EFBIG : EINVAL;
        return -1;
    }
    char *data = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (data != NULL && got < (size_t)st.st_size) {
        ssize_t k = read(fd, data + got, (size_t)st.st_size - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    close(fd);
    if (data == NULL) {
        errno = ENOMEM;
        return -1;
    }
    data[got] = '\0';
    *out = data;
    *len = got;
    return 0;
}

/* qd_read_at - parse dirfd/name into e; the name inside must be the file's. */
static int qd_read_at(int dirfd, const char *name, struct queue_entry *e, char *why, size_t whylen)
{
    queue_entry_init(e);
    char *text = NULL;
    size_t len = 0;
    if (qd_slurp(dirfd, name, &text, &len) != 0) {
        int rc = qd_errno(errno);
        snprintf(why, whylen, "%s", strerror(errno));
        return rc;
    }
    int rc = queue_entry_parse(text, len, e, why, whylen);
    free(text);
    if (rc == 0 && strcmp(e->name, name) != 0) {
        snprintf(why, whylen, "the entry says it is %s", e->name);
        rc = SH_EINVAL;
    }
    if (rc != 0) {
        queue_entry_free(e);
        snprintf(e->name, sizeof(e->name), "%s", name);
    }
    return rc;
}

/* qd_dirfd - the folder of which. */
static int qd_dirfd(const struct queue_dir *qd, enum queue_which which)
{
    return which == QUEUE_DEAD ? qd->dead : qd->active;
}

/* qd_read - see queue_store.h. */
static int qd_read(struct queue_store *s, enum queue_which which, const char *name,
                   struct queue_entry *e, char *why, size_t whylen)
{
    if (!queue_entry_name_ok(name)) {
        queue_entry_init(e);
        snprintf(why, whylen, "not an entry name");
        return SH_EINVAL;
    }
    return qd_read_at(qd_dirfd(qd_of(s), which), name, e, why, whylen);
}

/* qd_message - see queue_store.h. */
static int qd_message(struct queue_store *s, enum queue_which which, const char *name, int *fd,
                      uint64_t *size)
{
    char eml[NAME_MAX + 1];
    if (!queue_entry_name_ok(name))
        return SH_EINVAL;
    *fd = openat(qd_dirfd(qd_of(s), which), qd_eml(eml, sizeof(eml), name),
                 O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (*fd < 0)
        return qd_errno(errno);
    struct stat st;
    if (fstat(*fd, &st) != 0) {
        int rc = qd_errno(errno);
        close(*fd);
        *fd = -1;
        return rc;
    }
    *size = (uint64_t)st.st_size;
    return 0;
}

/* qd_claim - see queue_store.h. The message must have the size the entry says. */
static int qd_claim(struct queue_store *s, const char *name, struct queue_entry *e,
                    struct spool **message, char *why, size_t whylen)
{
    *message = NULL;
    int rc = qd_read(s, QUEUE_ACTIVE, name, e, why, whylen);
    if (rc != 0)
        return rc;
    int fd = -1;
    uint64_t size = 0;
    rc = qd_message(s, QUEUE_ACTIVE, name, &fd, &size);
    if (rc == 0 && size != e->env.size) {
        snprintf(why, whylen, "the message file has %llu bytes, the entry says %llu",
                 (unsigned long long)size, (unsigned long long)e->env.size);
        close(fd);
        rc = SH_EINVAL;
    } else if (rc != 0) {
        snprintf(why, whylen, "its message file: %s", sh_strerror(rc));
    }
    if (rc == 0)
        rc = spool_open_fd(fd, size, message);
    if (rc != 0)
        queue_entry_free(e);
    return rc;
}

/* qd_complete - see queue_store.h. */
static int qd_complete(struct queue_store *s, const char *name)
{
    struct queue_dir *qd = qd_of(s);
    char eml[NAME_MAX + 1];
    if (!queue_entry_name_ok(name))
        return SH_EINVAL;
    int rc = unlinkat(qd->active, name, 0) == 0 || errno == ENOENT ? 0 : qd_errno(errno);
    if (unlinkat(qd->active, qd_eml(eml, sizeof(eml), name), 0) != 0 && errno != ENOENT && rc == 0)
        rc = qd_errno(errno);
    return rc;
}

/* qd_replace - tmp/<name> takes the place of dirfd/<name>, which must still be there. */
static int qd_replace(struct queue_dir *qd, int dirfd, const char *name)
{
    if (renameat2(qd->tmp, name, dirfd, name, RENAME_EXCHANGE) == 0) {
        unlinkat(qd->tmp, name, 0); /* the old text, exchanged into tmp/ */
        return 0;
    }
    int e = errno;
    if (e == EINVAL || e == ENOSYS) { /* a file system without exchange */
        if (faccessat(dirfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0 &&
            renameat(qd->tmp, name, dirfd, name) == 0)
            return 0;
        e = errno;
    }
    unlinkat(qd->tmp, name, 0);
    return qd_errno(e);
}

/* qd_format_tmp - the entry's text into tmp/<name>. */
static int qd_format_tmp(struct queue_dir *qd, const struct queue_entry *e)
{
    struct buf text = {0};
    int rc = queue_entry_format(e, &text);
    if (rc == 0 && qd_write_tmp(qd, e->name, text.data, NULL, text.len) != 0)
        rc = qd_errno(errno);
    buf_free(&text);
    return rc;
}

/* qd_fail - see queue_store.h. */
static int qd_fail(struct queue_store *s, const struct queue_entry *e)
{
    struct queue_dir *qd = qd_of(s);
    if (!queue_entry_name_ok(e->name))
        return SH_EINVAL;
    int rc = qd_format_tmp(qd, e);
    return rc != 0 ? rc : qd_replace(qd, qd->active, e->name);
}

/* qd_bury - see queue_store.h: the message is linked into dead/, the entry written there,
 * then both leave active/. A crash in between leaves the entry in both; the dead one wins
 * at the next start. */
static int qd_bury(struct queue_store *s, const struct queue_entry *e)
{
    struct queue_dir *qd = qd_of(s);
    char eml[NAME_MAX + 1];
    if (!queue_entry_name_ok(e->name))
        return SH_EINVAL;
    qd_eml(eml, sizeof(eml), e->name);
    unlinkat(qd->dead, eml, 0);
    if (linkat(qd->active, eml, qd->dead, eml, 0) != 0)
        return qd_errno(errno);
    int rc = qd_format_tmp(qd, e);
    if (rc == 0 && renameat(qd->tmp, e->name, qd->dead, e->name) != 0)
        rc = qd_errno(errno);
    if (rc != 0) {
        unlinkat(qd->tmp, e->name, 0);
        unlinkat(qd->dead, eml, 0);
        return rc;
    }
    unlinkat(qd->active, e->name, 0);
    unlinkat(qd->active, eml, 0);
    return 0;
}

/* qd_names - see queue_store.h. */
static int qd_names(struct queue_store *s, enum queue_which which,
                    int (*fn)(void *arg, const char *name), void *arg)
{
    struct queue_dir *qd = qd_of(s);
    int fd = openat(qd_dirfd(qd, which), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
    if (dir == NULL) {
        if (fd >= 0)
            close(fd);
        return qd_errno(errno);
    }
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(dir)) != NULL) {
        if (de->d_name[0] != '.' && !qd_is_eml(de->d_name) && queue_entry_name_ok(de->d_name))
            rc = fn(arg, de->d_name);
    }
    closedir(dir);
    return rc;
}

/* A listing under way: each name read and handed on. */
struct qd_walk {
    struct queue_dir *qd;
    enum queue_which which;
    queue_list_fn fn;
    void *arg;
};

/* qd_walk_one - qd_names' callback of qd_list. */
static int qd_walk_one(void *arg, const char *name)
{
    struct qd_walk *w = arg;
    struct queue_entry e;
    char why[256];
    int r = qd_read_at(qd_dirfd(w->qd, w->which), name, &e, why, sizeof(why));
    int rc = r == SH_ENOTFOUND ? 0 : w->fn(w->arg, &e, r == 0 ? NULL : why); /* gone: skip */
    queue_entry_free(&e);
    return rc;
}

/* qd_list - see queue_store.h. */
static int qd_list(struct queue_store *s, enum queue_which which, queue_list_fn fn, void *arg)
{
    struct qd_walk w = {qd_of(s), which, fn, arg};
    return qd_names(s, which, qd_walk_one, &w);
}

/* qd_remove - see queue_store.h. */
static int qd_remove(struct queue_store *s, enum queue_which which, const char *name)
{
    struct queue_dir *qd = qd_of(s);
    char eml[NAME_MAX + 1];
    if (!queue_entry_name_ok(name))
        return SH_EINVAL;
    int dirfd = qd_dirfd(qd, which);
    if (unlinkat(dirfd, name, 0) != 0)
        return qd_errno(errno);
    unlinkat(dirfd, qd_eml(eml, sizeof(eml), name), 0);
    return 0;
}

/* qd_requeue - see queue_store.h: the message linked back into active/, the entry written
 * there due now, then the dead letter removed. */
static int qd_requeue(struct queue_store *s, const char *name, int64_t now_ms)
{
    struct queue_dir *qd = qd_of(s);
    struct queue_entry e;
    char why[256], eml[NAME_MAX + 1];
    int rc = qd_read(s, QUEUE_DEAD, name, &e, why, sizeof(why));
    if (rc != 0)
        return rc;
    e.dead_ms = 0;
    free(e.dead_reason);
    e.dead_reason = NULL;
    e.queued_ms = now_ms;
    e.next_ms = now_ms;
    qd_eml(eml, sizeof(eml), name);
    unlinkat(qd->active, eml, 0);
    if (linkat(qd->dead, eml, qd->active, eml, 0) != 0)
        rc = qd_errno(errno);
    if (rc == 0)
        rc = qd_format_tmp(qd, &e);
    if (rc == 0 && renameat(qd->tmp, name, qd->active, name) != 0)
        rc = qd_errno(errno);
    queue_entry_free(&e);
    if (rc != 0) {
        unlinkat(qd->tmp, name, 0);
        unlinkat(qd->active, eml, 0);
        return rc;
    }
    unlinkat(qd->dead, name, 0);
    unlinkat(qd->dead, eml, 0);
    return 0;
}

/* qd_close - see queue_store.h. */
static void qd_close(struct queue_store *s)
{
    if (s == NULL)
        return;
    struct queue_dir *qd = qd_of(s);
    int fds[] = {qd->active, qd->dead, qd->tmp, qd->corrupt};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
        if (fds[i] >= 0)
            close(fds[i]);
    }
    free(qd->path);
    free(qd->active_path);
    free(qd);
}

static const struct queue_store_ops queue_dir_ops = {
    .enqueue = qd_enqueue,
    .claim = qd_claim,
    .complete = qd_complete,
    .fail = qd_fail,
    .bury = qd_bury,
    .list = qd_list,
    .names = qd_names,
    .read = qd_read,
    .message = qd_message,
    .remove = qd_remove,
    .requeue = qd_requeue,
    .close = qd_close,
};

/* qd_open_sub - <path>/<sub>, made if missing, opened as a directory. -1 with errno. */
static int qd_open_sub(int root, const char *sub)
{
    if (mkdirat(root, sub, 0750) != 0 && errno != EEXIST)
        return -1;
    return openat(root, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* qd_to_corrupt - move dirfd/name (and its message) to corrupt/, and say so. */
static void qd_to_corrupt(struct queue_dir *qd, int dirfd, const char *name, const char *why)
{
    char eml[NAME_MAX + 1];
    qd_eml(eml, sizeof(eml), name);
    log_error("queue %s: entry %s cannot be read (%s): moved to %s/corrupt/", qd->path, name, why,
              qd->path);
    renameat(dirfd, name, qd->corrupt, name);
    renameat(dirfd, eml, qd->corrupt, eml);
}

/* qd_recover - what a crash left: tmp/ emptied; in active/ and dead/ a message file without
 * its entry removed, an entry without its message or unreadable moved to corrupt/, and an
 * entry in both folders (a crash while burying) kept as the dead letter. */
static void qd_recover(struct queue_dir *qd)
{
    int dirs[] = {qd->tmp, qd->active, qd->dead};
    for (size_t k = 0; k < sizeof(dirs) / sizeof(dirs[0]); k++) {
        int fd = openat(dirs[k], ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
        if (dir == NULL) {
            if (fd >= 0)
                close(fd);
            continue;
        }
        struct dirent *de;
        while ((de = readdir(dir)) != NULL) {
            const char *name = de->d_name;
            if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
                continue;
            if (dirs[k] == qd->tmp) {
                unlinkat(qd->tmp, name, 0);
                continue;
            }
            char base[NAME_MAX + 1];
            if (qd_is_eml(name)) {
                snprintf(base, sizeof(base), "%.*s", (int)(strlen(name) - strlen(QD_SUFFIX)), name);
                if (faccessat(dirs[k], base, F_OK, AT_SYMLINK_NOFOLLOW) != 0 && errno == ENOENT)
                    unlinkat(dirs[k], name, 0); /* a crash between its link and its entry */
                continue;
            }
            if (!queue_entry_name_ok(name)) {
                qd_to_corrupt(qd, dirs[k], name, "not an entry name");
                continue;
            }
            if (dirs[k] == qd->active &&
                faccessat(qd->dead, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
                qd_complete(&qd->base, name); /* buried, then the crash */
                continue;
            }
            char eml[NAME_MAX + 1];
            if (faccessat(dirs[k], qd_eml(eml, sizeof(eml), name), F_OK, AT_SYMLINK_NOFOLLOW) !=
                0) {
                qd_to_corrupt(qd, dirs[k], name, "its message file is missing");
                continue;
            }
            struct queue_entry e;
            char why[256];
            if (qd_read_at(dirs[k], name, &e, why, sizeof(why)) != 0)
                qd_to_corrupt(qd, dirs[k], name, why);
            queue_entry_free(&e);
        }
        closedir(dir);
    }
}

/* queue_dir_open - see queue_store.h. */
int queue_dir_open(const char *path, bool recover, struct queue_store **out, char *err,
                   size_t errlen)
{
    *out = NULL;
    struct queue_dir *qd = calloc(1, sizeof(*qd));
    if (qd == NULL) {
        snprintf(err, errlen, "out of memory");
        return SH_ENOMEM;
    }
    qd->base.ops = &queue_dir_ops;
    qd->active = qd->dead = qd->tmp = qd->corrupt = -1;
    size_t n = strlen(path) + sizeof("/active");
    qd->path = strdup(path);
    qd->active_path = malloc(n);
    if (qd->path == NULL || qd->active_path == NULL) {
        qd_close(&qd->base);
        snprintf(err, errlen, "out of memory");
        return SH_ENOMEM;
    }
    snprintf(qd->active_path, n, "%s/active", path);
    if (mkdir(path, 0750) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        qd_close(&qd->base);
        return SH_EIO;
    }
    int root = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root >= 0) {
        qd->active = qd_open_sub(root, "active");
        qd->dead = qd_open_sub(root, "dead");
        qd->tmp = qd_open_sub(root, "tmp");
        qd->corrupt = qd_open_sub(root, "corrupt");
        close(root);
    }
    if (root < 0 || qd->active < 0 || qd->dead < 0 || qd->tmp < 0 || qd->corrupt < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        qd_close(&qd->base);
        return SH_EIO;
    }
    if (recover)
        qd_recover(qd);
    *out = &qd->base;
    return 0;
}

/* queue_dir_watch_path - see queue_store.h. */
const char *queue_dir_watch_path(const struct queue_store *s)
{
    return ((const struct queue_dir *)s)->active_path;
}
