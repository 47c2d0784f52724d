/* spool.h - a message body that can be read again, by several readers at once.
 *
 * Bytes are kept in memory up to a limit; past it they move to a temporary file that is
 * unlinked as soon as it is created, so nothing is left behind by a crash. The body is
 * held once: in memory or in the file, never both. Readers use offsets (pread), so every
 * webhook request reads the same spool independently. */
#ifndef SMTPHOOK_SPOOL_H
#define SMTPHOOK_SPOOL_H

#include <stddef.h>
#include <stdint.h>

struct spool;

/* spool_new - an empty spool; files go to directory. 0, SH_ENOMEM. */
int spool_new(const char *directory, uint64_t memory_bytes, struct spool **out);

/* spool_open_fd - a spool over an existing file's first size bytes (a queued message): it
 * takes fd, read with pread and closed by spool_free. Appending is not meant for it.
 * 0 or SH_ENOMEM (fd is closed then). */
int spool_open_fd(int fd, uint64_t size, struct spool **out);

/* spool_append - add bytes at the end. 0, SH_ENOMEM or SH_EIO (file creation or write). */
int spool_append(struct spool *sp, const char *data, size_t len);

/* spool_size - bytes appended so far. */
uint64_t spool_size(const struct spool *sp);

/* spool_in_file - 1 when the body has moved to a temporary file, else 0. */
int spool_in_file(const struct spool *sp);

/* spool_memory - the body while it is held in memory: spool_size bytes at the pointer, valid
 * until the next append or spool_free. NULL once it is in the file, and while it is empty. */
const char *spool_memory(const struct spool *sp);

/* spool_read - copy up to len bytes from offset into dst; *got is 0 at the end.
 * 0 or SH_EIO. */
int spool_read(const struct spool *sp, uint64_t offset, char *dst, size_t len, size_t *got);

/* spool_free - release memory and close the file; NULL is ignored. */
void spool_free(struct spool *sp);

#endif
