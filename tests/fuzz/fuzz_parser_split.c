/* fuzz_parser_split.c - fuzz target: smtp_parser must give the same transcript however the
 * input is cut into reads.
 *
 * Input layout: h[0] picks the line limit (MIN_LINE + h[0]), h[1] a third chunk size
 * (1 + h[1] % SPLIT_MOD); the rest is the client's bytes. They are fed whole, one byte at a
 * time and in chunks of the third size; after a line that reads "DATA" (any case) the parser
 * is switched to data mode, after "BDAT <n>..." to chunk mode, as the session would do. A
 * transcript records lines, too-long markers, message bytes (adjacent runs merged), data ends,
 * chunk ends and a pending line at the end. Invariants (abort on violation): the transcripts are
 * identical; an event never claims more bytes than it was given, NONE consumes everything, lines
 * hold no LF and fit the limit, DATA is never empty, DATA_END leaves data mode, a chunk gives
 * exactly its size in DATA and CHUNK_END consumes nothing and leaves chunk mode.
 *
 * Must not include libuv, curl or jansson. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "smtphook/buf.h"
#include "smtphook/smtp_parser.h"

#define FUZZ_HDR  2  /* header bytes before the client's bytes */
#define MIN_LINE  3  /* smallest line limit smtp_parser_init accepts */
#define SPLIT_MOD 64 /* third chunk sizes are 1..SPLIT_MOD */

/* Transcript record tags. */
enum tag {
    TAG_LINE = 'L',      /* a command line: tag, length, bytes */
    TAG_TOO_LONG = 'T',  /* SMTP_EVENT_LINE_TOO_LONG */
    TAG_DATA = 'D',      /* message bytes: tag, length, bytes (merged with the next DATA) */
    TAG_END = 'E',       /* SMTP_EVENT_DATA_END */
    TAG_PENDING = 'P',   /* the input ended inside a command line */
    TAG_CHUNK_END = 'C', /* SMTP_EVENT_CHUNK_END */
};

/* A transcript under construction. */
struct transcript {
    struct buf b;   /* records */
    size_t data_at; /* offset of the open DATA record's length, SIZE_MAX when none */
};

/* tr_add - append a record; DATA right after DATA extends the open record, so that the
 * transcript does not depend on how message bytes were sliced. */
static void tr_add(struct transcript *t, char tag, const char *p, size_t n)
{
    if (tag == TAG_DATA && t->data_at != SIZE_MAX) {
        size_t len;
        memcpy(&len, t->b.data + t->data_at, sizeof(len));
        len += n;
        memcpy(t->b.data + t->data_at, &len, sizeof(len));
        FUZZ_CHECK(buf_append(&t->b, p, n) == 0);
        return;
    }
    t->data_at = SIZE_MAX;
    FUZZ_CHECK(buf_append(&t->b, &tag, 1) == 0);
    if (tag == TAG_LINE || tag == TAG_DATA) {
        if (tag == TAG_DATA)
            t->data_at = t->b.len;
        FUZZ_CHECK(buf_append(&t->b, &n, sizeof(n)) == 0);
        FUZZ_CHECK(buf_append(&t->b, p, n) == 0);
    }
}

/* is_data_command - the line a session would answer with 354. */
static bool is_data_command(const char *s, size_t n)
{
    return n == 4 && (s[0] | 0x20) == 'd' && (s[1] | 0x20) == 'a' && (s[2] | 0x20) == 't' &&
           (s[3] | 0x20) == 'a';
}

/* bdat_size - "BDAT " (any case) then digits: the chunk size a session would announce
 * (saturating; the fuzzer's sizes are small or never reached anyway). */
static bool bdat_size(const char *s, size_t n, uint64_t *size)
{
    static const char verb[] = "bdat ";
    if (n < sizeof(verb) || s[sizeof(verb) - 1] < '0' || s[sizeof(verb) - 1] > '9')
        return false;
    for (size_t i = 0; i < sizeof(verb) - 1; i++)
        if ((s[i] | 0x20) != verb[i])
            return false;
    *size = 0;
    for (size_t i = sizeof(verb) - 1; i < n && s[i] >= '0' && s[i] <= '9'; i++)
        *size = *size > UINT64_MAX / 10 - 9 ? UINT64_MAX : *size * 10 + (uint64_t)(s[i] - '0');
    return true;
}

/* feed_chunk - one read, from a private copy freed afterwards (ASan catches a parser that
 * keeps pointers into an old read), every event recorded and checked. A chunk's end is
 * collected even when the read is used up. */
static void feed_chunk(struct smtp_parser *p, const uint8_t *data, size_t len, struct transcript *t)
{
    char *copy = malloc(len ? len : 1);
    FUZZ_CHECK(copy != NULL);
    memcpy(copy, data, len);
    size_t off = 0;
    uint64_t size;
    while (off < len || (p->mode == SMTP_PARSER_CHUNK && p->chunk_left == 0)) {
        struct smtp_event ev;
        uint64_t chunk_left = p->chunk_left;
        bool chunk_mode = p->mode == SMTP_PARSER_CHUNK;
        long n = smtp_parser_feed(p, copy + off, len - off, &ev);
        FUZZ_CHECK(n >= 0 && (size_t)n <= len - off);
        switch (ev.type) {
        case SMTP_EVENT_NONE:
            FUZZ_CHECK((size_t)n == len - off);
            break;
        case SMTP_EVENT_LINE:
            FUZZ_CHECK(ev.len < p->max_line_bytes && memchr(ev.ptr, '\n', ev.len) == NULL);
            FUZZ_CHECK(!chunk_mode);
            tr_add(t, TAG_LINE, ev.ptr, ev.len);
            if (is_data_command(ev.ptr, ev.len))
                smtp_parser_begin_data(p);
            else if (bdat_size(ev.ptr, ev.len, &size))
                smtp_parser_begin_chunk(p, size);
            break;
        case SMTP_EVENT_LINE_TOO_LONG:
            tr_add(t, TAG_TOO_LONG, NULL, 0);
            break;
        case SMTP_EVENT_DATA:
            FUZZ_CHECK(ev.len > 0);
            FUZZ_CHECK(p->mode == SMTP_PARSER_DATA ||
                       (chunk_mode && (size_t)n == ev.len && ev.ptr == copy + off &&
                        p->chunk_left == chunk_left - ev.len));
            tr_add(t, TAG_DATA, ev.ptr, ev.len);
            break;
        case SMTP_EVENT_CHUNK_END:
            FUZZ_CHECK(chunk_mode && chunk_left == 0 && n == 0);
            FUZZ_CHECK(p->mode == SMTP_PARSER_COMMAND);
            tr_add(t, TAG_CHUNK_END, NULL, 0);
            break;
        case SMTP_EVENT_DATA_END:
            FUZZ_CHECK(p->mode == SMTP_PARSER_COMMAND);
            tr_add(t, TAG_END, NULL, 0);
            break;
        default:
            FUZZ_FAIL("unknown event");
        }
        off += (size_t)n;
    }
    free(copy);
}

/* run - the input in chunks of step bytes (0: whole); the transcript goes to t. */
static void run(size_t max_line, const uint8_t *data, size_t size, size_t step,
                struct transcript *t)
{
    struct smtp_parser p;
    smtp_parser_init(&p, max_line);
    memset(t, 0, sizeof(*t));
    t->data_at = SIZE_MAX;
    for (size_t off = 0; off < size;) {
        size_t n = step == 0 || step > size - off ? size - off : step;
        feed_chunk(&p, data + off, n, t);
        off += n;
    }
    if (smtp_parser_pending(&p))
        tr_add(t, TAG_PENDING, NULL, 0);
    smtp_parser_free(&p);
}

/* same - two transcripts are byte for byte equal. */
static bool same(const struct transcript *a, const struct transcript *b)
{
    return a->b.len == b->b.len && (a->b.len == 0 || memcmp(a->b.data, b->b.data, a->b.len) == 0);
}

/* LLVMFuzzerTestOneInput - three chunkings of one input, one transcript. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < FUZZ_HDR)
        return 0;
    size_t max_line = MIN_LINE + data[0];
    size_t step = 1 + data[1] % SPLIT_MOD;
    data += FUZZ_HDR;
    size -= FUZZ_HDR;

    struct transcript whole, bytes, chunks;
    run(max_line, data, size, 0, &whole);
    run(max_line, data, size, 1, &bytes);
    run(max_line, data, size, step, &chunks);
    FUZZ_CHECK(same(&whole, &bytes));
    FUZZ_CHECK(same(&whole, &chunks));
    buf_free(&whole.b);
    buf_free(&bytes.b);
    buf_free(&chunks.b);
    return 0;
}
