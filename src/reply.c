/* reply.c - formats the replies of reply.h. Pure; no I/O. */
#include "smtphook/reply.h"

#include <stdio.h>
#include <string.h>

struct reply {
    unsigned code;    /* three-digit reply code */
    const char *esc;  /* enhanced status code, NULL for none */
    const char *text; /* text, "{}" marks the argument */
};

static const struct reply reply_table[REPLY_COUNT] = {
#define REPLY_ROW(name, c, e, t) [REPLY_##name] = {c, e, t},
    REPLY_MAP(REPLY_ROW)
#undef REPLY_ROW
};

/* reply_code - the three-digit code of a reply. */
unsigned reply_code(enum reply_id id)
{
    return reply_table[id].code;
}

/* write_line - "<code><sep>[<esc> ]" then text with "{}" replaced, then CRLF. An
 * allocation failure sets out->failed; the connection then closes instead of sending. */
static void write_line(struct buf *out, unsigned code, char sep, const char *esc, const char *text,
                       const char *arg)
{
    char head[16];
    int n = snprintf(head, sizeof(head), "%03u%c", code % 1000, sep);
    buf_append(out, head, (size_t)n);
    if (esc != NULL) {
        buf_append_str(out, esc);
        buf_append(out, " ", 1);
    }
    const char *mark = strstr(text, "{}");
    if (mark != NULL) {
        buf_append(out, text, (size_t)(mark - text));
        if (arg != NULL)
            buf_append_str(out, arg);
        buf_append_str(out, mark + 2);
    } else {
        buf_append_str(out, text);
    }
    buf_append(out, "\r\n", 2);
}

/* reply_write - append one table reply. */
void reply_write(struct buf *out, enum reply_id id, const char *arg)
{
    const struct reply *r = &reply_table[id];
    write_line(out, r->code, ' ', r->esc, r->text, arg);
}

/* reply_write_custom - append a run-time reply line. */
void reply_write_custom(struct buf *out, unsigned code, const char *esc, const char *text, int last)
{
    write_line(out, code, last ? ' ' : '-', esc, text, NULL);
}
