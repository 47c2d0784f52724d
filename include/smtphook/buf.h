/* buf.h - a growable byte buffer, used for reply queues and small strings. */
#ifndef SMTPHOOK_BUF_H
#define SMTPHOOK_BUF_H

#include <stdbool.h>
#include <stddef.h>

struct buf {
    char *data;  /* NULL until the first append */
    size_t len;  /* bytes in use */
    size_t cap;  /* bytes allocated */
    bool failed; /* an append failed: contents are incomplete (cleared by buf_free) */
};

/* buf_append - append len bytes; 0 or SH_ENOMEM (the buffer is unchanged then, and
 * failed is set so that callers that append many pieces can check once). */
int buf_append(struct buf *b, const void *data, size_t len);

/* buf_append_str - append a NUL-terminated string. */
int buf_append_str(struct buf *b, const char *s);

/* buf_consume - drop the first n bytes (n <= len). */
void buf_consume(struct buf *b, size_t n);

/* buf_reset - forget the contents, keep the allocation. */
void buf_reset(struct buf *b);

/* buf_free - release the allocation; the buffer is empty and reusable afterwards. */
void buf_free(struct buf *b);

#endif
