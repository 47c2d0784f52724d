/* mail_header.c - From, To and Subject of a message's header section (see mail_header.h). */
#include "smtphook/mail_header.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtphook/buf.h"
#include "smtphook/error.h"

/* mail_header_line_end - offset of the end of the line starting at i (its LF, or len), and
 * the line's length without its CR LF or LF in *content. */
static size_t mail_header_line_end(const char *t, size_t len, size_t i, size_t *content)
{
    const char *lf = memchr(t + i, '\n', len - i);
    size_t end = lf != NULL ? (size_t)(lf - t) : len;
    size_t c = end - i;
    if (c > 0 && t[end - 1] == '\r')
        c--;
    *content = c;
    return end;
}

/* mail_header_is_ftext - RFC 5322 §3.6.8 ftext: printable US-ASCII but ':'. */
static bool mail_header_is_ftext(unsigned char ch)
{
    return ch >= 33 && ch <= 126 && ch != ':';
}

/* mail_header_wsp - space or tab. */
static bool mail_header_wsp(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* mail_header_value - append one line's part of a value to b (up to the value limit). The
 * white space before the value's first byte is trimmed anyway: it takes none of the limit. */
static void mail_header_value(struct buf *b, const char *p, size_t n)
{
    while (b->len == 0 && n > 0 && mail_header_wsp(*p)) {
        p++;
        n--;
    }
    size_t room = MAIL_HEADER_VALUE_MAX - b->len;
    buf_append(b, p, n < room ? n : room);
}

/* mail_header_take - b's contents trimmed as a new string into *dst (unless already set). */
static int mail_header_take(struct buf *b, char **dst)
{
    if (b->failed)
        return SH_ENOMEM;
    size_t s = 0, e = b->len;
    const char *nul = e > 0 ? memchr(b->data, '\0', e) : NULL;
    if (nul != NULL) /* the value ends there, before it is trimmed */
        e = (size_t)(nul - b->data);
    while (s < e && mail_header_wsp(b->data[s]))
        s++;
    while (e > s && mail_header_wsp(b->data[e - 1]))
        e--;
    char *v = malloc(e - s + 1);
    if (v == NULL)
        return SH_ENOMEM;
    if (e > s)
        memcpy(v, b->data + s, e - s);
    v[e - s] = '\0';
    *dst = v;
    return 0;
}

/* mail_header_slot - where the value of a field named name (n bytes) goes, or NULL when the
 * field is not one kept or was already seen. */
static char **mail_header_slot(struct mail_header_fields *f, const char *name, size_t n)
{
    static const struct {
        const char *name;
        size_t offset;
    } kept[] = {
        {"From", offsetof(struct mail_header_fields, from)},
        {"To", offsetof(struct mail_header_fields, to)},
        {"Subject", offsetof(struct mail_header_fields, subject)},
    };
    for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++) {
        if (strlen(kept[i].name) == n && strncasecmp(kept[i].name, name, n) == 0) {
            char **slot = (char **)((char *)f + kept[i].offset);
            return *slot == NULL ? slot : NULL;
        }
    }
    return NULL;
}

/* mail_header_parse - see mail_header.h. */
int mail_header_parse(const char *text, size_t len, struct mail_header_fields *out)
{
    memset(out, 0, sizeof(*out));
    struct buf value = {0};
    char **slot = NULL; /* the field being read, if kept */
    int rc = 0;
    size_t i = 0;
    while (i < len && rc == 0) {
        size_t n;
        size_t end = mail_header_line_end(text, len, i, &n);
        const char *line = text + i;
        if (n > 0 && mail_header_wsp(line[0])) { /* a continuation of the field before */
            if (slot != NULL)
                mail_header_value(&value, line, n);
        } else {
            if (slot != NULL)
                rc = mail_header_take(&value, slot);
            slot = NULL;
            buf_reset(&value);
            size_t name = 0, colon;
            while (name < n && mail_header_is_ftext((unsigned char)line[name]))
                name++;
            for (colon = name; colon < n && mail_header_wsp(line[colon]);)
                colon++; /* RFC 5322 §4.5 obs-optional: white space before the colon */
            if (name == 0 || colon == n || line[colon] != ':')
                break; /* the empty line, or not a field: the header section ended */
            slot = mail_header_slot(out, line, name);
            if (slot != NULL)
                mail_header_value(&value, line + colon + 1, n - colon - 1);
        }
        i = end + 1;
    }
    if (rc == 0 && slot != NULL)
        rc = mail_header_take(&value, slot);
    buf_free(&value);
    if (rc != 0)
        mail_header_free(out);
    return rc;
}

/* mail_header_free - see mail_header.h. */
void mail_header_free(struct mail_header_fields *f)
{
    free(f->from);
    free(f->to);
    free(f->subject);
    memset(f, 0, sizeof(*f));
}
