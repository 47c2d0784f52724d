/* app_reply.c - an SMTP reply chosen by the web app ("Smtphook-Reply" response header) or by
 * the operator (an endpoint's "reply_map"): "<code> <esc> <text>" checked and split into a
 * struct app_reply (RFC 5321 §4.2, RFC 3463 §2).
 *
 * Pure: it reads bytes the caller owns and fills a fixed-size result. No allocation, no I/O;
 * must not include libuv, curl, OpenSSL or jansson. */
#include "smtphook/app_reply.h"

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#define APP_REPLY_CODE_DIGITS  3 /* Reply-code is three digits (RFC 5321 §4.2) */
#define APP_REPLY_ESC_PART_MAX 3 /* digits of subject and of detail (RFC 3463 §2) */

/* The longest enhanced code, "5.999.999", fits esc; the reason below names the text limit. */
_Static_assert(1 + 1 + APP_REPLY_ESC_PART_MAX + 1 + APP_REPLY_ESC_PART_MAX <= APP_REPLY_ESC_MAX,
               "esc too small");
_Static_assert(APP_REPLY_TEXT_MAX == 256, "update the reason \"longer than 256 bytes\"");

/* is_digit - ASCII 0..9. */
static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* is_blank - SP or HTAB: what separates the parts and what is trimmed around the value. */
static bool is_blank(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* is_text_char - printable ASCII, SP included (0x20..0x7E). No HTAB: the text goes out on a
 * reply line as it is, so it carries no control character at all. */
static bool is_text_char(unsigned char c)
{
    return c >= 0x20 && c <= 0x7E;
}

/* A read position in the trimmed value. */
struct reader {
    const unsigned char *s; /* the value, surrounding blanks removed */
    size_t len;             /* its length */
    size_t pos;             /* next byte */
};

/* at_end - nothing is left. */
static bool at_end(const struct reader *r)
{
    return r->pos >= r->len;
}

/* skip_blanks - consume one or more SP/HTAB; false when none is next. Several blanks between
 * two parts are accepted: RFC 2034 §3 has the enhanced code "followed by one or more
 * spaces", and a header value or a config string may be aligned by hand. */
static bool skip_blanks(struct reader *r)
{
    size_t start = r->pos;
    while (!at_end(r) && is_blank(r->s[r->pos]))
        r->pos++;
    return r->pos > start;
}

/* part_ends - the part just read is followed by a blank or the end of the value. */
static bool part_ends(const struct reader *r)
{
    return at_end(r) || is_blank(r->s[r->pos]);
}

/* code_problem - NULL when the code may be given, else why not. RFC 5321 §4.2: Reply-code = %x32-35
 * %x30-35 %x30-39. Of these an app may give 250 (the only success that answers DATA, §4.3.2) and
 * any 4yz or 5yz but 421, which promises that the server closes the connection (§3.8) and would be
 * a lie here. */
static const char *code_problem(unsigned code)
{
    unsigned first = code / 100;
    unsigned second = code / 10 % 10;
    if (second > 5)
        return "the reply code's second digit must be 0 to 5 (RFC 5321 section 4.2)";
    if (first == 2)
        return code == 250 ? NULL : "the only success reply code allowed is 250";
    if (first != 4 && first != 5)
        return "the reply code must be 250, 4yz or 5yz";
    if (code == 421)
        return "421 is refused: it announces a close that does not happen";
    return NULL;
}

/* read_code - three digits, then a blank or the end. */
static const char *read_code(struct reader *r, unsigned *code)
{
    unsigned value = 0;
    size_t i = 0;
    while (i < APP_REPLY_CODE_DIGITS && !at_end(r) && is_digit(r->s[r->pos])) {
        value = value * 10 + (unsigned)(r->s[r->pos] - '0');
        r->pos++;
        i++;
    }
    if (i < APP_REPLY_CODE_DIGITS || !part_ends(r))
        return "the value must start with a three-digit reply code";
    *code = value;
    return code_problem(value);
}

/* read_esc_number - 1*3digit (RFC 3463 §2 subject and detail); false when there is no digit
 * or more than three. */
static bool read_esc_number(struct reader *r)
{
    size_t start = r->pos;
    while (!at_end(r) && is_digit(r->s[r->pos]))
        r->pos++;
    size_t n = r->pos - start;
    return n >= 1 && n <= APP_REPLY_ESC_PART_MAX;
}

/* read_esc - class "." subject "." detail (RFC 3463 §2), then a blank or the end; the class
 * must be the code's first digit (RFC 2034 §4: "must agree with the primary response
 * code"). Copies the code into esc (APP_REPLY_ESC_MAX + 1 bytes). */
static const char *read_esc(struct reader *r, unsigned code, char *esc)
{
    size_t start = r->pos;
    if (at_end(r) || !is_digit(r->s[r->pos]))
        return "an enhanced status code (like 5.1.1) must follow the reply code";
    unsigned char cls = r->s[r->pos++];
    if (at_end(r) || r->s[r->pos] != '.')
        return "the enhanced status code must be class.subject.detail (RFC 3463 section 2)";
    r->pos++;
    if (!read_esc_number(r) || at_end(r) || r->s[r->pos] != '.')
        return "the enhanced status code must be class.subject.detail (RFC 3463 section 2)";
    r->pos++;
    if (!read_esc_number(r) || !part_ends(r))
        return "the enhanced status code must be class.subject.detail (RFC 3463 section 2)";
    if (cls != '2' && cls != '4' && cls != '5')
        return "the enhanced status code's class must be 2, 4 or 5 (RFC 3463 section 2)";
    if ((unsigned)(cls - '0') != code / 100)
        return "enhanced code class does not match the reply code";
    size_t n = r->pos - start; /* at most 1 + 1 + 3 + 1 + 3 */
    memcpy(esc, r->s + start, n);
    esc[n] = '\0';
    return NULL;
}

/* read_text - the rest of the value, kept exactly: printable ASCII, at most
 * APP_REPLY_TEXT_MAX bytes. Copies it into text (APP_REPLY_TEXT_MAX + 1 bytes). */
static const char *read_text(struct reader *r, char *text)
{
    size_t n = r->len - r->pos;
    for (size_t i = r->pos; i < r->len; i++)
        if (!is_text_char(r->s[i]))
            return "the text must be printable ASCII without control characters";
    if (n > APP_REPLY_TEXT_MAX)
        return "the text is longer than 256 bytes";
    memcpy(text, r->s + r->pos, n);
    text[n] = '\0';
    r->pos = r->len;
    return NULL;
}

/* parse_reply - the work of app_reply_parse on a cleared *out; NULL or the reason. */
static const char *parse_reply(const char *value, size_t len, enum app_reply_form form,
                               struct app_reply *out)
{
    const unsigned char *s = (const unsigned char *)value;
    while (len > 0 && is_blank(s[0])) {
        s++;
        len--;
    }
    while (len > 0 && is_blank(s[len - 1]))
        len--;
    if (len == 0)
        return "the value is empty";
    struct reader r = {s, len, 0};

    const char *why = read_code(&r, &out->code);
    if (why != NULL)
        return why;
    if (!skip_blanks(&r))
        return form == APP_REPLY_FULL ? "an enhanced status code and a text must follow the code"
                                      : NULL;
    if ((why = read_esc(&r, out->code, out->esc)) != NULL)
        return why;
    if (!skip_blanks(&r))
        return form == APP_REPLY_FULL ? "a text must follow the enhanced status code" : NULL;
    return read_text(&r, out->text);
}

/* app_reply_parse - see app_reply.h. The value is trimmed of SP and HTAB, then read as the
 * code, one or more blanks, the enhanced code, one or more blanks and the text (everything
 * up to the end, inner spaces kept). On false *out is cleared (code 0, esc and text ""). */
bool app_reply_parse(const char *value, size_t len, enum app_reply_form form, struct app_reply *out,
                     const char **why)
{
    memset(out, 0, sizeof(*out));
    const char *problem = value == NULL && len > 0 ? "the value is missing"
                                                   : parse_reply(value, value ? len : 0, form, out);
    if (problem != NULL)
        memset(out, 0, sizeof(*out));
    if (why != NULL)
        *why = problem;
    return problem == NULL;
}

/* app_reply_agrees - see app_reply.h: 2xx status with a 2yz reply, anything else with 4yz or
 * 5yz. */
bool app_reply_agrees(const struct app_reply *r, long http_status)
{
    unsigned cls = r->code / 100;
    if (http_status >= 200 && http_status <= 299)
        return cls == 2;
    return cls == 4 || cls == 5;
}
