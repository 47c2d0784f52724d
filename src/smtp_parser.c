/* smtp_parser.c - SMTP input bytes -> command lines or message bytes (see smtp_parser.h).
 *
 * Pure: no I/O, no libuv. The end-of-data automaton works on single bytes so that any
 * chunking gives the same result; runs of ordinary content are handed out as slices of
 * the caller's buffer, so message lines are never copied or buffered. BDAT chunks
 * (RFC 3030) are counted bytes, handed out untouched. */
#include "smtphook/smtp_parser.h"

#include <stdlib.h>
#include <string.h>

#include "smtphook/error.h"

/* Positions in the end-of-data automaton. Only a line-start dot and the CR after it are
 * ever withheld; everything else is emitted as soon as it is seen. */
enum data_state {
    DATA_BOL = 0, /* at the start of a line: the previous bytes were CRLF */
    DATA_BODY,    /* inside a line */
    DATA_CR,      /* the previous byte was a CR inside a line (already emitted) */
    DATA_DOT,     /* a dot at the start of a line was withheld */
    DATA_DOT_CR,  /* a line-start dot and a CR were withheld */
};

static const char parser_cr[] = "\r";

/* smtp_parser_init - command mode, nothing allocated. */
void smtp_parser_init(struct smtp_parser *p, size_t max_line_bytes)
{
    memset(p, 0, sizeof(*p));
    p->mode = SMTP_PARSER_COMMAND;
    p->max_line_bytes = max_line_bytes < 3 ? 3 : max_line_bytes;
    p->data_state = DATA_BOL;
}

/* smtp_parser_free - release the partial line buffer. */
void smtp_parser_free(struct smtp_parser *p)
{
    free(p->partial);
    p->partial = NULL;
    p->partial_len = 0;
}

/* smtp_parser_begin_data - the CRLF that ended the DATA command counts as the CRLF before
 * a possible final dot, so an empty message is just ".\r\n". */
void smtp_parser_begin_data(struct smtp_parser *p)
{
    p->mode = SMTP_PARSER_DATA;
    p->data_state = DATA_BOL;
}

/* smtp_parser_begin_chunk - the next size bytes are a BDAT chunk (RFC 3030 §2). A chunk
 * of 0 bytes has nothing to read: the caller ends it at once, the parser stays in command
 * mode. */
void smtp_parser_begin_chunk(struct smtp_parser *p, uint64_t size)
{
    if (size == 0)
        return;
    p->mode = SMTP_PARSER_CHUNK;
    p->chunk_left = size;
}

/* smtp_parser_reset - drop unfinished input; back to command mode. */
void smtp_parser_reset(struct smtp_parser *p)
{
    smtp_parser_free(p);
    p->skipping = false;
    p->mode = SMTP_PARSER_COMMAND;
    p->data_state = DATA_BOL;
    p->chunk_left = 0;
}

/* smtp_parser_pending - an unfinished command line (or skipped long line) is held. */
bool smtp_parser_pending(const struct smtp_parser *p)
{
    return p->partial_len > 0 || p->skipping;
}

/* line_event - report a complete line without its LF and one CR before it. */
static void line_event(struct smtp_event *ev, const char *line, size_t len_with_lf)
{
    size_t len = len_with_lf - 1;
    if (len > 0 && line[len - 1] == '\r')
        len--;
    ev->type = SMTP_EVENT_LINE;
    ev->ptr = line;
    ev->len = len;
}

/* feed_command - one command line, or part of one. A line that fits in one read is handed
 * out in place; only a line split across reads is copied into p->partial. */
static long feed_command(struct smtp_parser *p, const char *buf, size_t len, struct smtp_event *ev)
{
    const char *lf = memchr(buf, '\n', len);
    size_t take = lf ? (size_t)(lf - buf) + 1 : len;

    if (p->skipping) {
        if (lf == NULL)
            return (long)len;
        p->skipping = false;
        ev->type = SMTP_EVENT_LINE_TOO_LONG;
        return (long)take;
    }

    /* The limit counts the whole line, CRLF included (RFC 5321 §4.5.3.1.4). */
    if (p->partial_len + take > p->max_line_bytes) {
        p->partial_len = 0;
        if (lf == NULL) {
            p->skipping = true;
            return (long)len;
        }
        ev->type = SMTP_EVENT_LINE_TOO_LONG;
        return (long)take;
    }

    if (lf != NULL && p->partial_len == 0) {
        line_event(ev, buf, take);
        return (long)take;
    }

    if (p->partial == NULL) {
        p->partial = malloc(p->max_line_bytes);
        if (p->partial == NULL)
            return SH_ENOMEM;
    }
    memcpy(p->partial + p->partial_len, buf, take);
    p->partial_len += take;
    if (lf == NULL)
        return (long)len;

    /* The event points into p->partial; it stays allocated until the next feed. */
    line_event(ev, p->partial, p->partial_len);
    p->partial_len = 0;
    return (long)take;
}

/* data_run - report buf[start, end) as message bytes, consuming up to end. */
static long data_run(struct smtp_event *ev, const char *buf, size_t start, size_t end)
{
    if (end > start) {
        ev->type = SMTP_EVENT_DATA;
        ev->ptr = buf + start;
        ev->len = end - start;
    }
    return (long)end;
}

/* feed_data - message bytes up to the first CRLF.CRLF (RFC 5321 §4.1.1.4). A dot is
 * special only directly after CRLF: followed by CRLF it ends the data, otherwise it is
 * removed (§4.5.2 transparency). Bare CR and bare LF never start a line. */
static long feed_data(struct smtp_parser *p, const char *buf, size_t len, struct smtp_event *ev)
{
    size_t start = 0;
    size_t i = 0;

    while (i < len) {
        char c = buf[i];
        switch (p->data_state) {
        case DATA_BOL:
            if (c == '.') {
                if (i > start)
                    return data_run(ev, buf, start, i);
                p->data_state = DATA_DOT;
                start = ++i;
                break;
            }
            p->data_state = c == '\r' ? DATA_CR : DATA_BODY;
            i++;
            break;
        case DATA_BODY: {
            const char *cr = memchr(buf + i, '\r', len - i);
            if (cr == NULL) {
                i = len;
                break;
            }
            i = (size_t)(cr - buf) + 1;
            p->data_state = DATA_CR;
            break;
        }
        case DATA_CR:
            if (c == '\n')
                p->data_state = DATA_BOL;
            else if (c != '\r')
                p->data_state = DATA_BODY;
            i++;
            break;
        case DATA_DOT:
            if (c == '\r') {
                p->data_state = DATA_DOT_CR;
                start = ++i;
                break;
            }
            /* The dot was stuffing: it is dropped, c starts the content. */
            p->data_state = DATA_BODY;
            break;
        case DATA_DOT_CR:
            if (c == '\n') {
                p->data_state = DATA_BOL;
                p->mode = SMTP_PARSER_COMMAND;
                ev->type = SMTP_EVENT_DATA_END;
                return (long)(i + 1);
            }
            /* ".\r" then something else: the dot was stuffing, the CR is content and may
             * itself begin a CRLF. The CR is not in buf (or not contiguous), so it is
             * handed out on its own; c is looked at again in state DATA_CR. */
            p->data_state = DATA_CR;
            ev->type = SMTP_EVENT_DATA;
            ev->ptr = parser_cr;
            ev->len = 1;
            return (long)i;
        default:
            p->data_state = DATA_BODY;
            break;
        }
    }
    return data_run(ev, buf, start, len);
}

/* feed_chunk - BDAT chunk bytes (RFC 3030 §2): exactly chunk_left octets, whatever they
 * are (CR, LF, NUL, dots: no line logic, no unstuffing). Once they are all handed out, the
 * next call (even with no input) reports CHUNK_END, consuming nothing, and the bytes after
 * the chunk are commands again. */
static long feed_chunk(struct smtp_parser *p, const char *buf, size_t len, struct smtp_event *ev)
{
    if (p->chunk_left == 0) {
        p->mode = SMTP_PARSER_COMMAND;
        ev->type = SMTP_EVENT_CHUNK_END;
        return 0;
    }
    if (len == 0)
        return 0;
    size_t take = p->chunk_left < (uint64_t)len ? (size_t)p->chunk_left : len;
    p->chunk_left -= take;
    return data_run(ev, buf, 0, take);
}

/* smtp_parser_feed - see smtp_parser.h. A returned event may consume zero bytes (a
 * withheld CR being released, the end of a chunk); the caller handles the event and calls
 * again. */
long smtp_parser_feed(struct smtp_parser *p, const char *buf, size_t len, struct smtp_event *ev)
{
    ev->type = SMTP_EVENT_NONE;
    ev->ptr = NULL;
    ev->len = 0;

    /* A line handed out from the partial buffer is no longer referenced. */
    if (p->partial != NULL && p->partial_len == 0) {
        free(p->partial);
        p->partial = NULL;
    }
    if (p->mode == SMTP_PARSER_CHUNK)
        return feed_chunk(p, buf, len, ev);
    if (len == 0)
        return 0;
    if (p->mode == SMTP_PARSER_DATA)
        return feed_data(p, buf, len, ev);
    return feed_command(p, buf, len, ev);
}
