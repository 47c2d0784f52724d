/* request_body.h - the bytes of one webhook request body, described before they exist.
 *
 * A body is a list of pieces: bytes held here (multipart framing, JSON, prepended header
 * lines), the message straight from the spool, or the message as base64 computed as it is
 * read. Its size is exact before the first byte is read, and any range can be read at any
 * time (curl may rewind to resend), so a large message is never held twice: the spool is the
 * only copy and every request reads it independently. Pure apart from the spool's reads. */
#ifndef SMTPHOOK_REQUEST_BODY_H
#define SMTPHOOK_REQUEST_BODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smtphook/spool.h"

/* What one piece of a body is. */
enum request_piece_kind {
    REQUEST_PIECE_BYTES = 0,      /* bytes owned by the body */
    REQUEST_PIECE_MESSAGE,        /* the message, byte for byte */
    REQUEST_PIECE_MESSAGE_BASE64, /* the message in base64 (RFC 4648 §4, padded, one line) */
};

struct request_piece {
    enum request_piece_kind kind; /* see enum */
    char *bytes;                  /* REQUEST_PIECE_BYTES: the bytes */
    uint64_t size;                /* bytes this piece adds to the body */
    uint64_t start;               /* its offset in the body */
};

struct request_body {
    const struct spool *spool;    /* the message; read only, outlives the body */
    uint64_t message_size;        /* bytes of the message (the spool's size at build) */
    struct request_piece *pieces; /* in order */
    size_t n_pieces;              /* entries in pieces */
    size_t cap;                   /* allocated entries */
    uint64_t size;                /* the whole body: the request's Content-Length (live:
                                   * the bytes readable so far) */
    bool failed;                  /* an add ran out of memory: the body is incomplete */
    bool live;                    /* the message is still arriving (request_body_grow) */
};

/* request_body_init - an empty body over a message of message_size bytes in spool (NULL
 * with size 0 for no message). */
void request_body_init(struct request_body *b, const struct spool *spool, uint64_t message_size);

/* request_body_add - append a copy of len bytes. 0 or SH_ENOMEM (then failed is set, so a
 * builder adding many pieces may check once). */
int request_body_add(struct request_body *b, const void *data, size_t len);

/* request_body_add_str - append a copy of a NUL-terminated string. */
int request_body_add_str(struct request_body *b, const char *s);

/* request_body_add_message - append the message as it is (base64 false) or in base64. */
int request_body_add_message(struct request_body *b, bool base64);

/* request_body_live - the message is still arriving: it is readable as far as it is stored,
 * and what follows it once it ended (request_body_grow). Call before adding pieces. */
void request_body_live(struct request_body *b);

/* request_body_grow - a live body's message now has message_size bytes; ended: that is all
 * of it (the body is no longer live; its size is final). */
void request_body_grow(struct request_body *b, uint64_t message_size, bool ended);

/* request_body_read - copy up to len bytes of the body from offset into dst; *got is 0 at
 * the end. The http_body_read_fn of a request (http_client.h). 0 or SH_EIO; SH_EAGAIN for a
 * live body with nothing at offset yet. A live message in base64 is readable in whole
 * 3-byte groups until it ends. */
int request_body_read(void *body, uint64_t offset, char *dst, size_t len, size_t *got);

/* request_body_memory - the whole body when it is one contiguous run of memory (the message
 * alone, held in the spool's memory; or bytes alone), else NULL. Valid while the body and
 * the spool are unchanged. */
const char *request_body_memory(const struct request_body *b);

/* request_body_free - release the pieces; the body is empty (and reusable after init). */
void request_body_free(struct request_body *b);

/* request_base64_size - bytes of the padded base64 of n bytes. */
uint64_t request_base64_size(uint64_t n);

#endif
