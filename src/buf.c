/* buf.c - a growable byte buffer. */
#include "smtphook/buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtphook/error.h"

/* buf_append - append len bytes, doubling the allocation as needed. */
int buf_append(struct buf *b, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    if (b->cap - b->len < len) {
        size_t cap = b->cap ? b->cap : 128;
        while (cap - b->len < len) {
            if (cap > SIZE_MAX / 2) {
                b->failed = true;
                return SH_ENOMEM;
            }
            cap *= 2;
        }
        char *p = realloc(b->data, cap);
        if (p == NULL) {
            b->failed = true;
            return SH_ENOMEM;
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

/* buf_append_str - append a NUL-terminated string (without the NUL). */
int buf_append_str(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

/* buf_consume - drop the first n bytes. */
void buf_consume(struct buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

/* buf_reset - forget the contents, keep the allocation. */
void buf_reset(struct buf *b)
{
    b->len = 0;
}

/* buf_free - release the allocation. */
void buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->failed = false;
}
