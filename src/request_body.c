/* request_body.c - a request body as pieces, read at any offset (see request_body.h). */
#include "smtphook/request_body.h"

#include <stdlib.h>
#include <string.h>

#include "smtphook/base64.h"
#include "smtphook/error.h"

#define REQUEST_PIECES_MIN   8u    /* first allocation of pieces */
#define REQUEST_B64_GROUPS   1024u /* 3-byte groups of the message encoded per step */
#define REQUEST_B64_IN_STEP  (3u * REQUEST_B64_GROUPS)
#define REQUEST_B64_OUT_STEP (4u * REQUEST_B64_GROUPS)

/* request_body_init - see request_body.h. */
void request_body_init(struct request_body *b, const struct spool *spool, uint64_t message_size)
{
    memset(b, 0, sizeof(*b));
    b->spool = spool;
    b->message_size = spool != NULL ? message_size : 0;
}

/* request_base64_size - see request_body.h. */
uint64_t request_base64_size(uint64_t n)
{
    return BASE64_SIZE(n);
}

/* request_piece_new - room for one more piece at the end, or NULL (failed set). */
static struct request_piece *request_piece_new(struct request_body *b)
{
    if (b->failed)
        return NULL;
    if (b->n_pieces == b->cap) {
        size_t cap = b->cap != 0 ? 2 * b->cap : REQUEST_PIECES_MIN;
        struct request_piece *p = realloc(b->pieces, cap * sizeof(*p));
        if (p == NULL) {
            b->failed = true;
            return NULL;
        }
        b->pieces = p;
        b->cap = cap;
    }
    struct request_piece *p = &b->pieces[b->n_pieces];
    memset(p, 0, sizeof(*p));
    p->start = b->size;
    return p;
}

/* request_body_add - see request_body.h. Adjacent byte pieces stay separate: builders add
 * few of them. */
int request_body_add(struct request_body *b, const void *data, size_t len)
{
    if (len == 0)
        return b->failed ? SH_ENOMEM : 0;
    struct request_piece *p = request_piece_new(b);
    char *copy = p != NULL ? malloc(len) : NULL;
    if (copy == NULL) {
        b->failed = true;
        return SH_ENOMEM;
    }
    memcpy(copy, data, len);
    p->kind = REQUEST_PIECE_BYTES;
    p->bytes = copy;
    p->size = len;
    b->n_pieces++;
    b->size += len;
    return 0;
}

/* request_body_add_str - see request_body.h. */
int request_body_add_str(struct request_body *b, const char *s)
{
    return request_body_add(b, s, strlen(s));
}

/* request_message_piece_size - bytes a message piece adds: a live message in base64 counts
 * its whole 3-byte groups only (the last group's padding is known at the end). */
static uint64_t request_message_piece_size(const struct request_body *b,
                                           enum request_piece_kind kind)
{
    if (kind == REQUEST_PIECE_MESSAGE)
        return b->message_size;
    return b->live ? b->message_size / 3 * 4 : request_base64_size(b->message_size);
}

/* request_body_add_message - see request_body.h. */
int request_body_add_message(struct request_body *b, bool base64)
{
    struct request_piece *p = request_piece_new(b);
    if (p == NULL)
        return SH_ENOMEM;
    p->kind = base64 ? REQUEST_PIECE_MESSAGE_BASE64 : REQUEST_PIECE_MESSAGE;
    p->size = request_message_piece_size(b, p->kind);
    b->n_pieces++;
    b->size += p->size;
    return 0;
}

/* request_body_live - see request_body.h. */
void request_body_live(struct request_body *b)
{
    b->live = true;
}

/* request_body_grow - see request_body.h. The message pieces take their new sizes and the
 * pieces after them move along. */
void request_body_grow(struct request_body *b, uint64_t message_size, bool ended)
{
    b->message_size = message_size;
    b->live = !ended;
    uint64_t at = 0;
    for (size_t i = 0; i < b->n_pieces; i++) {
        struct request_piece *p = &b->pieces[i];
        p->start = at;
        if (p->kind != REQUEST_PIECE_BYTES)
            p->size = request_message_piece_size(b, p->kind);
        at += p->size;
    }
    b->size = at;
}

/* request_read_full - exactly len message bytes from offset (fewer only at its end). */
static int request_read_full(const struct request_body *b, uint64_t offset, char *dst, size_t len,
                             size_t *got)
{
    *got = 0;
    while (*got < len) {
        size_t n = 0;
        int rc = spool_read(b->spool, offset + *got, dst + *got, len - *got, &n);
        if (rc != 0)
            return rc;
        if (n == 0)
            break;
        *got += n;
    }
    return 0;
}

/* request_read_base64 - up to len bytes of the message's base64 from offset off in it.
 * Whole 3-byte groups are read and encoded; the window asked for is copied out. */
static int request_read_base64(const struct request_body *b, uint64_t off, char *dst, size_t len,
                               size_t *got)
{
    char in[REQUEST_B64_IN_STEP];
    char out[REQUEST_B64_OUT_STEP + 1];
    *got = 0;
    uint64_t group = off / 4;
    size_t skip = (size_t)(off % 4);
    while (*got < len && group * 3 < b->message_size) {
        uint64_t left = b->message_size - group * 3;
        size_t want = left < REQUEST_B64_IN_STEP ? (size_t)left : REQUEST_B64_IN_STEP;
        size_t n = 0;
        int rc = request_read_full(b, group * 3, in, want, &n);
        if (rc != 0)
            return rc;
        if (n != want)
            return SH_EIO; /* the spool is shorter than when the body was built */
        size_t enc = base64_encode(in, n, out);
        size_t take = enc - skip < len - *got ? enc - skip : len - *got;
        memcpy(dst + *got, out + skip, take);
        *got += take;
        skip = 0;
        group += (n + 2) / 3;
    }
    return 0;
}

/* request_piece_at - the piece holding body offset off (off < size). */
static const struct request_piece *request_piece_at(const struct request_body *b, uint64_t off)
{
    size_t lo = 0, hi = b->n_pieces;
    while (hi - lo > 1) { /* the last piece starting at or before off */
        size_t mid = lo + (hi - lo) / 2;
        if (b->pieces[mid].start <= off)
            lo = mid;
        else
            hi = mid;
    }
    return &b->pieces[lo];
}

/* request_readable_end - the end of what can be read now: all of it, or while the message is
 * live, up to the end of what has arrived of it (what follows it must wait). */
static uint64_t request_readable_end(const struct request_body *b)
{
    if (!b->live)
        return b->size;
    for (size_t i = 0; i < b->n_pieces; i++) {
        if (b->pieces[i].kind != REQUEST_PIECE_BYTES)
            return b->pieces[i].start + b->pieces[i].size;
    }
    return b->size;
}

/* request_body_read - see request_body.h. Fills dst across pieces as far as it can. */
int request_body_read(void *body, uint64_t offset, char *dst, size_t len, size_t *got)
{
    const struct request_body *b = body;
    *got = 0;
    uint64_t end = request_readable_end(b);
    while (*got < len && offset + *got < end) {
        uint64_t at = offset + *got;
        const struct request_piece *p = request_piece_at(b, at);
        uint64_t in = at - p->start;
        uint64_t left = p->size - in;
        size_t want = len - *got < left ? len - *got : (size_t)left;
        size_t n = 0;
        int rc = 0;
        switch (p->kind) {
        case REQUEST_PIECE_BYTES:
            memcpy(dst + *got, p->bytes + in, want);
            n = want;
            break;
        case REQUEST_PIECE_MESSAGE:
            rc = spool_read(b->spool, in, dst + *got, want, &n);
            break;
        case REQUEST_PIECE_MESSAGE_BASE64:
            rc = request_read_base64(b, in, dst + *got, want, &n);
            break;
        }
        if (rc != 0)
            return rc;
        if (n == 0)
            return SH_EIO; /* the message ended before its piece did */
        *got += n;
    }
    return *got == 0 && b->live && len > 0 ? SH_EAGAIN : 0;
}

/* request_body_memory - see request_body.h. */
const char *request_body_memory(const struct request_body *b)
{
    if (b->n_pieces != 1 || b->failed || b->live)
        return NULL;
    const struct request_piece *p = &b->pieces[0];
    if (p->kind == REQUEST_PIECE_BYTES)
        return p->bytes;
    if (p->kind == REQUEST_PIECE_MESSAGE && b->spool != NULL)
        return spool_memory(b->spool);
    return NULL;
}

/* request_body_free - see request_body.h. */
void request_body_free(struct request_body *b)
{
    for (size_t i = 0; i < b->n_pieces; i++)
        free(b->pieces[i].bytes);
    free(b->pieces);
    const struct spool *sp = b->spool;
    uint64_t size = b->message_size;
    request_body_init(b, sp, size);
}
