/* spool.c - a message body kept in memory up to a limit, then in an unlinked temporary file.
 *
 * The body is held once: when the memory part would pass memory_bytes it is written to the
 * file and freed. Readers use offsets (memcpy or pread), never a shared file position, so
 * any number of requests can read the same spool. No libuv, curl or jansson here. */
#include "smtphook/spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "smtphook/error.h"

#define SPOOL_FIRST_CHUNK   4096u              /* first memory allocation, bytes */
#define SPOOL_TEMPLATE_NAME "/smtphook-XXXXXX" /* mkstemp(3) template, after the directory */

struct spool {
    char *directory;       /* where the temporary file is created */
    uint64_t memory_bytes; /* most bytes held in memory before moving to the file */
    char *mem;             /* memory part, NULL once in the file */
    size_t mem_cap;        /* bytes allocated at mem */
    int fd;                /* temporary file (already unlinked), -1 while in memory */
    uint64_t size;         /* bytes appended so far */
};

/* spool_new - an empty spool; nothing is allocated for the body until the first append. */
int spool_new(const char *directory, uint64_t memory_bytes, struct spool **out)
{
    struct spool *sp = calloc(1, sizeof(*sp));
    if (sp == NULL)
        return SH_ENOMEM;
    sp->directory = strdup(directory != NULL ? directory : "/tmp");
    if (sp->directory == NULL) {
        free(sp);
        return SH_ENOMEM;
    }
    sp->memory_bytes = memory_bytes;
    sp->fd = -1;
    *out = sp;
    return 0;
}

/* spool_open_fd - see spool.h. */
int spool_open_fd(int fd, uint64_t size, struct spool **out)
{
    *out = NULL;
    struct spool *sp = calloc(1, sizeof(*sp));
    if (sp == NULL || (sp->directory = strdup("/")) == NULL) {
        free(sp);
        close(fd);
        return SH_ENOMEM;
    }
    sp->fd = fd;
    sp->size = size;
    *out = sp;
    return 0;
}

/* write_all - write len bytes to fd at offset, across short writes and EINTR. Explicit
 * offsets (pwrite) mean a failed, partial write leaves nothing to undo: the next append
 * writes at size again and readers never look past size. 0 or SH_EIO. */
static int write_all(int fd, uint64_t offset, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = pwrite(fd, data, len, (off_t)offset);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return SH_EIO;
        }
        if (n == 0)
            return SH_EIO;
        data += n;
        offset += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

/* spool_to_file - create the temporary file, unlink it at once (nothing survives a crash),
 * copy the memory part into it and free the memory. On failure the spool is unchanged. */
static int spool_to_file(struct spool *sp)
{
    size_t dlen = strlen(sp->directory);
    char *path = malloc(dlen + sizeof(SPOOL_TEMPLATE_NAME));
    if (path == NULL)
        return SH_ENOMEM;
    memcpy(path, sp->directory, dlen);
    memcpy(path + dlen, SPOOL_TEMPLATE_NAME, sizeof(SPOOL_TEMPLATE_NAME));

    int fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0) {
        free(path);
        return SH_EIO;
    }
    int rc = unlink(path) == 0 ? 0 : SH_EIO;
    free(path);
    if (rc == 0)
        rc = write_all(fd, 0, sp->mem, (size_t)sp->size);
    if (rc != 0) {
        close(fd);
        return rc;
    }
    free(sp->mem);
    sp->mem = NULL;
    sp->mem_cap = 0;
    sp->fd = fd;
    return 0;
}

/* spool_grow - make room for need bytes in memory: geometric growth, capped at
 * memory_bytes (the caller checked that need fits). */
static int spool_grow(struct spool *sp, size_t need)
{
    if (need <= sp->mem_cap)
        return 0;
    size_t cap = sp->mem_cap ? sp->mem_cap : SPOOL_FIRST_CHUNK;
    while (cap < need && cap <= SIZE_MAX / 2)
        cap *= 2;
    if (cap < need)
        cap = need;
    if ((uint64_t)cap > sp->memory_bytes)
        cap = (size_t)sp->memory_bytes;
    char *p = realloc(sp->mem, cap);
    if (p == NULL)
        return SH_ENOMEM;
    sp->mem = p;
    sp->mem_cap = cap;
    return 0;
}

/* spool_append - add bytes at the end, in memory while the total fits memory_bytes, else
 * in the file. After SH_EIO the spool holds what it held before the call. */
int spool_append(struct spool *sp, const char *data, size_t len)
{
    if (len == 0)
        return 0;
    if (UINT64_MAX - sp->size < len)
        return SH_EIO;
    if (sp->fd < 0) {
        uint64_t total = sp->size + len;
        if (total <= sp->memory_bytes && total <= SIZE_MAX) {
            int rc = spool_grow(sp, (size_t)total);
            if (rc != 0)
                return rc;
            memcpy(sp->mem + sp->size, data, len);
            sp->size = total;
            return 0;
        }
        int rc = spool_to_file(sp);
        if (rc != 0)
            return rc;
    }
    if (write_all(sp->fd, sp->size, data, len) != 0)
        return SH_EIO;
    sp->size += len;
    return 0;
}

/* spool_size - bytes appended so far. */
uint64_t spool_size(const struct spool *sp)
{
    return sp->size;
}

/* spool_in_file - 1 when the body lives in the temporary file. */
int spool_in_file(const struct spool *sp)
{
    return sp->fd >= 0;
}

/* spool_memory - the memory part, while it is the whole body. */
const char *spool_memory(const struct spool *sp)
{
    return sp->fd < 0 ? sp->mem : NULL;
}

/* spool_read - copy up to len bytes at offset. The file is read with pread, so readers
 * never share a position. A file shorter than size is SH_EIO. */
int spool_read(const struct spool *sp, uint64_t offset, char *dst, size_t len, size_t *got)
{
    *got = 0;
    if (offset >= sp->size || len == 0)
        return 0;
    if ((uint64_t)len > sp->size - offset)
        len = (size_t)(sp->size - offset);
    if (sp->fd < 0) {
        memcpy(dst, sp->mem + offset, len);
        *got = len;
        return 0;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(sp->fd, dst + done, len - done, (off_t)(offset + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return SH_EIO;
        }
        if (n == 0)
            return SH_EIO;
        done += (size_t)n;
    }
    *got = done;
    return 0;
}

/* spool_free - release memory and close the file (already unlinked, so it is gone). */
void spool_free(struct spool *sp)
{
    if (sp == NULL)
        return;
    if (sp->fd >= 0)
        close(sp->fd);
    free(sp->mem);
    free(sp->directory);
    free(sp);
}
