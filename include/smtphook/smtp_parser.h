/* smtp_parser.h - SMTP input bytes -> command lines, or -> message bytes during DATA.
 *
 * Pure and resumable: it survives any chunking of the input, allocates only to carry an
 * unfinished command line across reads, and never buffers message lines.
 *
 * Command mode: a line ends at LF; one CR before it is removed. A line longer than
 * max_line_bytes (terminator included) is skipped to its LF and reported once as
 * SMTP_EVENT_LINE_TOO_LONG.
 *
 * Data mode (RFC 5321 §4.1.1.4, §4.5.2): the message ends exactly at CRLF "." CRLF; the
 * CRLF before the dot belongs to the message. A dot at the start of a line (after CRLF)
 * is removed. Every other sequence (LF.LF, CR.CR, LF.CRLF, CRLF.LF, ...) is content: this
 * closes SMTP smuggling. The parser switches itself back to command mode after DATA_END.
 *
 * Chunk mode (RFC 3030 BDAT): exactly chunk_left bytes come out as DATA, untouched (no
 * line logic, no unstuffing). After the last of them, the next feed - even with len 0 -
 * gives SMTP_EVENT_CHUNK_END without consuming anything and returns to command mode; a
 * caller that has used up its input calls once more while mode is SMTP_PARSER_CHUNK and
 * chunk_left is 0. */
#ifndef SMTPHOOK_SMTP_PARSER_H
#define SMTPHOOK_SMTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum smtp_parser_mode {
    SMTP_PARSER_COMMAND = 0,
    SMTP_PARSER_DATA,
    SMTP_PARSER_CHUNK, /* BDAT: a counted number of raw bytes, no unstuffing (RFC 3030) */
};

enum smtp_event_type {
    SMTP_EVENT_NONE = 0,      /* every byte consumed, nothing complete yet */
    SMTP_EVENT_LINE,          /* a command line (ptr, len) without its CRLF */
    SMTP_EVENT_LINE_TOO_LONG, /* an over-long command line ended; it was skipped */
    SMTP_EVENT_DATA,          /* message bytes (ptr, len), already unstuffed */
    SMTP_EVENT_DATA_END,      /* the final CRLF.CRLF was seen */
    SMTP_EVENT_CHUNK_END,     /* the last byte of a BDAT chunk was delivered as DATA */
};

struct smtp_event {
    enum smtp_event_type type; /* what happened */
    const char *ptr;           /* LINE, DATA: bytes, valid until the next feed */
    size_t len;                /* LINE, DATA: length */
};

struct smtp_parser {
    enum smtp_parser_mode mode; /* what the next bytes are */
    size_t max_line_bytes;      /* command line limit, CRLF included */
    char *partial;              /* unfinished command line, NULL when none */
    size_t partial_len;         /* bytes in partial */
    bool skipping;              /* inside an over-long line: drop to LF */
    unsigned data_state;        /* position in the end-of-data automaton */
    uint64_t chunk_left;        /* CHUNK mode: bytes still to come */
};

/* smtp_parser_init - command mode, no allocation. max_line_bytes >= 3. */
void smtp_parser_init(struct smtp_parser *p, size_t max_line_bytes);

/* smtp_parser_free - release the partial line buffer. */
void smtp_parser_free(struct smtp_parser *p);

/* smtp_parser_begin_data - switch to data mode: the next byte starts the message. */
void smtp_parser_begin_data(struct smtp_parser *p);

/* smtp_parser_begin_chunk - switch to chunk mode: the next size (> 0) bytes are message data,
 * passed on as they are; after them SMTP_EVENT_CHUNK_END and command mode again. */
void smtp_parser_begin_chunk(struct smtp_parser *p, uint64_t size);

/* smtp_parser_reset - forget any unfinished line and return to command mode (STARTTLS). */
void smtp_parser_reset(struct smtp_parser *p);

/* smtp_parser_pending - true if an unfinished command line is held. */
bool smtp_parser_pending(const struct smtp_parser *p);

/* smtp_parser_feed - consume bytes from buf until one event is complete or buf is used up.
 * Returns the bytes consumed (ev->type NONE means all of them were), or -1 (SH_ENOMEM)
 * when the partial line buffer cannot be allocated. Call again with the rest. */
long smtp_parser_feed(struct smtp_parser *p, const char *buf, size_t len, struct smtp_event *ev);

#endif
