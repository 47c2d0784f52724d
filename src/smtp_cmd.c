/* smtp_cmd.c - command line syntax: verbs, MAIL/RCPT paths, ESMTP parameters and BDAT's
 * arguments (RFC 5321 §4.1, RFC 1869, RFC 1870 SIZE, RFC 6152 8BITMIME, RFC 6531 SMTPUTF8,
 * RFC 3030 CHUNKING and BINARYMIME).
 *
 * Pure: it checks and splits text the caller owns and fills fixed-size results. No
 * allocation, no I/O, no replies; must not include libuv, curl or jansson. */
#include "smtphook/smtp_cmd.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define IPV6_TEXT_MAX 64 /* buffer for inet_pton: longer than any IPv6 text form */

/* ---- verbs (RFC 5321 §4.1.1) --------------------------------------------------------- */

struct verb_row {
    enum smtp_verb verb; /* the command */
    const char *name;    /* its keyword, upper case */
};

static const struct verb_row verb_table[] = {
    {SMTP_VERB_HELO, "HELO"}, {SMTP_VERB_EHLO, "EHLO"}, {SMTP_VERB_MAIL, "MAIL"},
    {SMTP_VERB_RCPT, "RCPT"}, {SMTP_VERB_DATA, "DATA"}, {SMTP_VERB_RSET, "RSET"},
    {SMTP_VERB_NOOP, "NOOP"}, {SMTP_VERB_QUIT, "QUIT"}, {SMTP_VERB_VRFY, "VRFY"},
    {SMTP_VERB_EXPN, "EXPN"}, {SMTP_VERB_HELP, "HELP"}, {SMTP_VERB_STARTTLS, "STARTTLS"},
    {SMTP_VERB_BDAT, "BDAT"},
};

#define N_VERBS (sizeof(verb_table) / sizeof(verb_table[0]))

/* ---- characters ------------------------------------------------------------------------ */

static bool is_alpha(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* is_let_dig - RFC 5321 §4.1.2 Let-dig. */
static bool is_let_dig(unsigned char c)
{
    return is_alpha(c) || is_digit(c);
}

/* is_atext - RFC 5322 §3.2.3 atext (ASCII part). */
static bool is_atext(unsigned char c)
{
    return is_let_dig(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* is_qtext - RFC 5321 §4.1.2 qtextSMTP: %d32-33 / %d35-91 / %d93-126. */
static bool is_qtext(unsigned char c)
{
    return c >= 32 && c <= 126 && c != '"' && c != '\\';
}

/* is_dcontent - RFC 5321 §4.1.3 dcontent: %d33-90 / %d94-126. */
static bool is_dcontent(unsigned char c)
{
    return (c >= 33 && c <= 90) || (c >= 94 && c <= 126);
}

/* is_esmtp_value_char - RFC 5321 §4.1.2 esmtp-value: %d33-60 / %d62-126. */
static bool is_esmtp_value_char(unsigned char c)
{
    return c >= 33 && c <= 126 && c != '=';
}

static unsigned char ascii_upper(unsigned char c)
{
    return c >= 'a' && c <= 'z' ? (unsigned char)(c - 'a' + 'A') : c;
}

/* equal_ci - s[0, len) equals the NUL-terminated upper-case word, ignoring ASCII case
 * (RFC 5321 §2.4: verbs, keywords and ABNF literals are case-insensitive). */
static bool equal_ci(const char *s, size_t len, const char *word)
{
    size_t n = strlen(word);
    if (len != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (ascii_upper((unsigned char)s[i]) != (unsigned char)word[i])
            return false;
    return true;
}

/* prefix_ci - s[0, len) starts with the upper-case word, ignoring ASCII case. */
static bool prefix_ci(const char *s, size_t len, const char *word)
{
    size_t n = strlen(word);
    return len >= n && equal_ci(s, n, word);
}

/* trim_trailing - len without trailing SP and HTAB. */
static size_t trim_trailing(const char *s, size_t len)
{
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    return len;
}

/* ---- UTF-8 (RFC 3629 §4) --------------------------------------------------------------- */

/* One row per range of lead bytes. The second byte's range is what excludes overlong
 * forms, UTF-16 surrogates and code points above U+10FFFF; later bytes are 80..BF. */
struct utf8_row {
    unsigned char lead_lo, lead_hi;     /* lead byte range */
    unsigned char len;                  /* bytes in the sequence */
    unsigned char second_lo, second_hi; /* allowed second byte */
};

static const struct utf8_row utf8_table[] = {
    {0xC2, 0xDF, 2, 0x80, 0xBF}, /* U+0080..U+07FF (C0, C1 would be overlong) */
    {0xE0, 0xE0, 3, 0xA0, 0xBF}, /* U+0800..U+0FFF, no overlongs */
    {0xE1, 0xEC, 3, 0x80, 0xBF}, /* U+1000..U+CFFF */
    {0xED, 0xED, 3, 0x80, 0x9F}, /* U+D000..U+D7FF, no surrogates */
    {0xEE, 0xEF, 3, 0x80, 0xBF}, /* U+E000..U+FFFF */
    {0xF0, 0xF0, 4, 0x90, 0xBF}, /* U+10000..U+3FFFF, no overlongs */
    {0xF1, 0xF3, 4, 0x80, 0xBF}, /* U+40000..U+FFFFF */
    {0xF4, 0xF4, 4, 0x80, 0x8F}, /* U+100000..U+10FFFF, nothing above */
};

#define N_UTF8_ROWS (sizeof(utf8_table) / sizeof(utf8_table[0]))

/* utf8_len - length of the well-formed non-ASCII sequence at s[0, len), or 0 when there is
 * none. C1 controls (U+0080..U+009F) are refused too: every string that reaches the
 * envelope must be free of control characters (envelope.h). */
static size_t utf8_len(const unsigned char *s, size_t len)
{
    if (len < 2)
        return 0;
    for (size_t r = 0; r < N_UTF8_ROWS; r++) {
        const struct utf8_row *row = &utf8_table[r];
        if (s[0] < row->lead_lo || s[0] > row->lead_hi)
            continue;
        if (len < row->len || s[1] < row->second_lo || s[1] > row->second_hi)
            return 0;
        for (size_t i = 2; i < row->len; i++)
            if (s[i] < 0x80 || s[i] > 0xBF)
                return 0;
        if (s[0] == 0xC2 && s[1] <= 0x9F)
            return 0; /* C1 control */
        return row->len;
    }
    return 0;
}

/* smtp_cmd_valid_utf8 - strict UTF-8 (RFC 3629) with no C0 controls, DEL or C1 controls.
 * Used for values that are stored and later copied into JSON and headers. */
bool smtp_cmd_valid_utf8(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        if (u[i] < 0x80) {
            if (u[i] < 0x20 || u[i] == 0x7F)
                return false;
            i++;
            continue;
        }
        size_t n = utf8_len(u + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

/* ---- path grammar (RFC 5321 §4.1.2, §4.1.3; RFC 6531 §3.3) ----------------------------- */

/* A read position in the argument. Every grammar function below either consumes its
 * production and returns true, or returns false (the position is then meaningless: any
 * false aborts the whole path). Non-ASCII is accepted wherever RFC 6531 allows it and
 * remembered in non_ascii; whether it was allowed is decided once the parameters are
 * known, since SMTPUTF8 comes after the path. */
struct cursor {
    const unsigned char *s; /* the argument */
    size_t len;             /* its length */
    size_t pos;             /* next byte */
    bool non_ascii;         /* a UTF-8 sequence was consumed */
};

/* peek - the next byte, or -1 at the end. */
static int peek(const struct cursor *c)
{
    return c->pos < c->len ? c->s[c->pos] : -1;
}

/* eat - consume ch if it is next. */
static bool eat(struct cursor *c, int ch)
{
    if (peek(c) != ch)
        return false;
    c->pos++;
    return true;
}

/* eat_utf8 - consume one well-formed non-ASCII character (RFC 6531 UTF8-non-ascii). */
static bool eat_utf8(struct cursor *c)
{
    if (c->pos >= c->len || c->s[c->pos] < 0x80)
        return false;
    size_t n = utf8_len(c->s + c->pos, c->len - c->pos);
    if (n == 0)
        return false;
    c->pos += n;
    c->non_ascii = true;
    return true;
}

/* atom - 1*atext, atext extended with UTF-8 (RFC 6531 §3.3). */
static bool atom(struct cursor *c)
{
    size_t start = c->pos;
    for (;;) {
        int ch = peek(c);
        if (ch >= 0 && is_atext((unsigned char)ch))
            c->pos++;
        else if (!eat_utf8(c))
            break;
    }
    return c->pos > start;
}

/* dot_string - Atom *("." Atom): no leading, trailing or doubled dots. */
static bool dot_string(struct cursor *c)
{
    if (!atom(c))
        return false;
    while (eat(c, '.'))
        if (!atom(c))
            return false;
    return true;
}

/* quoted_string - DQUOTE *(qtextSMTP / quoted-pairSMTP) DQUOTE; quoted-pairSMTP is
 * "\" followed by %d32-126. qtextSMTP is extended with UTF-8 (RFC 6531 §3.3). */
static bool quoted_string(struct cursor *c)
{
    if (!eat(c, '"'))
        return false;
    for (;;) {
        int ch = peek(c);
        if (ch == '"') {
            c->pos++;
            return true;
        }
        if (ch == '\\') {
            c->pos++;
            ch = peek(c);
            if (ch < 32 || ch > 126)
                return false;
            c->pos++;
        } else if (ch >= 0 && is_qtext((unsigned char)ch)) {
            c->pos++;
        } else if (!eat_utf8(c)) {
            return false; /* end of input, control character or bad UTF-8 */
        }
    }
}

/* local_part - Dot-string / Quoted-string. */
static bool local_part(struct cursor *c)
{
    return peek(c) == '"' ? quoted_string(c) : dot_string(c);
}

/* sub_domain - Let-dig [Ldh-str]: letters, digits and inner hyphens. UTF-8 counts as a
 * letter (RFC 6531 §3.3 U-label). */
static bool sub_domain(struct cursor *c)
{
    bool any = false;
    bool hyphen = false; /* last character was '-' */
    for (;;) {
        int ch = peek(c);
        if (ch >= 0 && is_let_dig((unsigned char)ch)) {
            c->pos++;
        } else if (ch == '-' && any) {
            c->pos++;
            hyphen = true;
            continue;
        } else if (!eat_utf8(c)) {
            break;
        }
        any = true;
        hyphen = false;
    }
    return any && !hyphen;
}

/* domain - sub-domain *("." sub-domain). */
static bool domain(struct cursor *c)
{
    if (!sub_domain(c))
        return false;
    while (eat(c, '.'))
        if (!sub_domain(c))
            return false;
    return true;
}

/* ipv4_literal - IPv4-address-literal: Snum 3("." Snum), Snum 1*3DIGIT in 0..255. */
static bool ipv4_literal(const unsigned char *s, size_t len)
{
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        if (part > 0) {
            if (i >= len || s[i] != '.')
                return false;
            i++;
        }
        unsigned value = 0;
        size_t digits = 0;
        while (i < len && is_digit(s[i]) && digits < 3) {
            value = value * 10 + (unsigned)(s[i] - '0');
            digits++;
            i++;
        }
        if (digits == 0 || value > 255)
            return false;
    }
    return i == len;
}

/* ipv6_literal - the text after "IPv6:" (RFC 5321 §4.1.3 IPv6-addr); inet_pton accepts
 * exactly the full, compressed and IPv4-embedded forms, and no zone ids. */
static bool ipv6_literal(const unsigned char *s, size_t len)
{
    char text[IPV6_TEXT_MAX];
    unsigned char addr[16];
    if (len == 0 || len >= sizeof(text))
        return false;
    /* Only hex digits, ':' and '.' (IPv4 tail): inet_pton would stop at a NUL and leave
     * the bytes after it unchecked. */
    for (size_t i = 0; i < len; i++)
        if (!isxdigit(s[i]) && s[i] != ':' && s[i] != '.')
            return false;
    memcpy(text, s, len);
    text[len] = '\0';
    return inet_pton(AF_INET6, text, addr) == 1;
}

/* general_literal - Standardized-tag ":" 1*dcontent, tag an Ldh-str (RFC 5321 §4.1.3). */
static bool general_literal(const unsigned char *s, size_t len)
{
    const unsigned char *colon = memchr(s, ':', len);
    if (colon == NULL || colon == s)
        return false;
    size_t tag_len = (size_t)(colon - s);
    for (size_t i = 0; i < tag_len; i++)
        if (!is_let_dig(s[i]) && s[i] != '-')
            return false;
    if (!is_let_dig(s[tag_len - 1]))
        return false;
    if (tag_len + 1 == len)
        return false;
    for (size_t i = tag_len + 1; i < len; i++)
        if (!is_dcontent(s[i]))
            return false;
    return true;
}

/* address_literal - "[" ( IPv4 / "IPv6:" IPv6 / General ) "]". None of them may contain
 * ']', so the first one ends the literal. */
static bool address_literal(struct cursor *c)
{
    if (!eat(c, '['))
        return false;
    const unsigned char *in = c->s + c->pos;
    const unsigned char *close = memchr(in, ']', c->len - c->pos);
    if (close == NULL)
        return false;
    size_t n = (size_t)(close - in);
    bool ok;
    if (prefix_ci((const char *)in, n, "IPV6:"))
        ok = ipv6_literal(in + 5, n - 5);
    else if (memchr(in, ':', n) != NULL)
        ok = general_literal(in, n);
    else
        ok = ipv4_literal(in, n);
    c->pos += n + 1;
    return ok;
}

/* source_route - A-d-l ":" where A-d-l = At-domain *("," At-domain), At-domain = "@"
 * Domain (RFC 5321 §4.1.2). Accepted for compatibility and then ignored (§C). */
static bool source_route(struct cursor *c)
{
    do {
        if (!eat(c, '@') || !domain(c))
            return false;
    } while (eat(c, ','));
    return eat(c, ':');
}

/* Where the parts of a parsed path lie in the argument. */
struct path_span {
    size_t start;        /* the '<' */
    size_t end;          /* just past the '>' */
    size_t mbox_start;   /* first byte of the mailbox (after any source route) */
    size_t at;           /* the '@' between local part and domain */
    size_t mbox_end;     /* the '>' */
    bool null_path;      /* "<>" */
    bool non_ascii;      /* UTF-8 anywhere in the path, source route included */
    bool mbox_non_ascii; /* UTF-8 in the mailbox */
};

/* parse_path - Path = "<" [ A-d-l ":" ] Mailbox ">", or "<>" (Reverse-path, §4.1.2), then
 * the §4.5.3.1 length limits. Returns OK, BAD_PATH or PATH_TOO_LONG; c ends after '>'. */
static enum smtp_syntax parse_path(struct cursor *c, struct path_span *sp)
{
    memset(sp, 0, sizeof(*sp));
    sp->start = c->pos;
    c->non_ascii = false;
    if (!eat(c, '<'))
        return SMTP_SYNTAX_BAD_PATH;
    if (eat(c, '>')) {
        sp->null_path = true;
        sp->mbox_start = sp->at = sp->mbox_end = c->pos - 1;
        sp->end = c->pos;
        return SMTP_SYNTAX_OK;
    }
    if (peek(c) == '@' && !source_route(c))
        return SMTP_SYNTAX_BAD_PATH;
    sp->mbox_start = c->pos;
    bool route_non_ascii = c->non_ascii;
    c->non_ascii = false;

    /* Mailbox = Local-part "@" ( Domain / address-literal ). A quoted local part may
     * contain '@'; the separator is the first '@' after the local part. */
    if (!local_part(c))
        return SMTP_SYNTAX_BAD_PATH;
    sp->at = c->pos;
    if (!eat(c, '@'))
        return SMTP_SYNTAX_BAD_PATH;
    if (!(peek(c) == '[' ? address_literal(c) : domain(c)))
        return SMTP_SYNTAX_BAD_PATH;
    sp->mbox_end = c->pos;
    if (!eat(c, '>'))
        return SMTP_SYNTAX_BAD_PATH; /* missing '>' or garbage inside the brackets */
    sp->end = c->pos;
    sp->mbox_non_ascii = c->non_ascii;
    sp->non_ascii = c->non_ascii || route_non_ascii;

    if (sp->at - sp->mbox_start > SMTP_LOCAL_PART_MAX ||
        sp->mbox_end - sp->at - 1 > SMTP_DOMAIN_MAX || sp->end - sp->start > SMTP_PATH_MAX)
        return SMTP_SYNTAX_PATH_TOO_LONG;
    return SMTP_SYNTAX_OK;
}

/* parse_postmaster - "<Postmaster>" with no domain, any case (RFC 5321 §4.1.1.3, §4.5.1). */
static bool parse_postmaster(struct cursor *c, struct path_span *sp)
{
    static const char word[] = "<POSTMASTER>";
    size_t n = sizeof(word) - 1;
    if (!prefix_ci((const char *)c->s + c->pos, c->len - c->pos, word))
        return false;
    memset(sp, 0, sizeof(*sp));
    sp->start = c->pos;
    sp->mbox_start = c->pos + 1;
    sp->mbox_end = sp->at = c->pos + n - 1;
    sp->end = c->pos + n;
    c->pos += n;
    return true;
}

/* path_clear - the empty result every call starts from. */
static void path_clear(struct smtp_path *path)
{
    path->mailbox[0] = '\0';
    path->len = 0;
    path->at = 0;
    path->non_ascii = false;
}

/* path_store - copy the mailbox exactly as sent (quotes kept, source route dropped). The
 * limits checked in parse_path keep it below SMTP_PATH_MAX. */
static void path_store(struct smtp_path *path, const char *arg, const struct path_span *sp)
{
    size_t n = sp->mbox_end - sp->mbox_start;
    memcpy(path->mailbox, arg + sp->mbox_start, n);
    path->mailbox[n] = '\0';
    path->len = n;
    path->at = sp->at - sp->mbox_start;
    path->non_ascii = sp->mbox_non_ascii;
}

/* skip_prefix - "FROM:" / "TO:" (any case), then optional spaces: RFC 5321 has none, but
 * many clients send "MAIL FROM: <a@b>" and other servers (Postfix) accept it. */
static bool skip_prefix(struct cursor *c, const char *word)
{
    if (!prefix_ci((const char *)c->s, c->len, word))
        return false;
    c->pos = strlen(word);
    while (eat(c, ' '))
        ;
    return true;
}

/* ---- parameters (RFC 5321 §4.1.2 Mail-parameters, RFC 1869 §4) ------------------------ */

/* One esmtp-param: esmtp-keyword ["=" esmtp-value]. */
struct param {
    const char *kw;   /* keyword */
    size_t kw_len;    /* its length */
    const char *val;  /* value (after '='), NULL when there is no '=' */
    size_t val_len;   /* its length */
    bool has_val;     /* an '=' was present */
    bool bad_keyword; /* keyword does not match ALPHA/DIGIT *(ALPHA/DIGIT/"-") */
};

/* next_param - split the next SP-separated parameter off c; false at the end. */
static bool next_param(struct cursor *c, struct param *p)
{
    while (eat(c, ' '))
        ;
    if (c->pos >= c->len)
        return false;
    const char *tok = (const char *)c->s + c->pos;
    const char *sp = memchr(tok, ' ', c->len - c->pos);
    size_t n = sp ? (size_t)(sp - tok) : c->len - c->pos;
    c->pos += n;

    const char *eq = memchr(tok, '=', n);
    memset(p, 0, sizeof(*p));
    p->kw = tok;
    p->kw_len = eq ? (size_t)(eq - tok) : n;
    if (eq != NULL) {
        p->has_val = true;
        p->val = eq + 1;
        p->val_len = n - p->kw_len - 1;
    }
    p->bad_keyword = p->kw_len == 0 || !is_let_dig((unsigned char)tok[0]);
    for (size_t i = 1; i < p->kw_len; i++)
        if (!is_let_dig((unsigned char)tok[i]) && tok[i] != '-')
            p->bad_keyword = true;
    return true;
}

/* value_ok - esmtp-value: 1*(%d33-60 / %d62-126), plus UTF-8 with SMTPUTF8 (RFC 6531
 * §3.3). */
static bool value_ok(const struct param *p, bool utf8)
{
    if (!p->has_val)
        return true;
    if (p->val_len == 0)
        return false;
    const unsigned char *v = (const unsigned char *)p->val;
    for (size_t i = 0; i < p->val_len;) {
        if (is_esmtp_value_char(v[i])) {
            i++;
            continue;
        }
        size_t n = utf8 ? utf8_len(v + i, p->val_len - i) : 0;
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

/* param_size - SIZE=1*DIGIT (RFC 1870 §4). RFC 1870 caps size-value at 20 digits; larger
 * numbers are accepted and saturate at UINT64_MAX, so that the session refuses them as too
 * big (552) rather than as a syntax error. */
static enum smtp_syntax param_size(const struct param *p, struct smtp_mail_params *out)
{
    if (!p->has_val || p->val_len == 0)
        return SMTP_SYNTAX_BAD_SIZE;
    uint64_t size = 0;
    for (size_t i = 0; i < p->val_len; i++) {
        unsigned char ch = (unsigned char)p->val[i];
        if (!is_digit(ch))
            return SMTP_SYNTAX_BAD_SIZE;
        unsigned d = (unsigned)(ch - '0');
        if (size > (UINT64_MAX - d) / 10)
            size = UINT64_MAX;
        else
            size = size * 10 + d;
    }
    out->has_size = true;
    out->size = size;
    return SMTP_SYNTAX_OK;
}

/* param_body - BODY=7BIT / BODY=8BITMIME (RFC 6152 §2) / BODY=BINARYMIME (RFC 3030 §3).
 * BINARYMIME is accepted because CHUNKING is always offered; that such a message then
 * comes by BDAT, not DATA, is the session's rule. */
static enum smtp_syntax param_body(const struct param *p, struct smtp_mail_params *out)
{
    if (p->has_val && equal_ci(p->val, p->val_len, "7BIT"))
        out->body = ENVELOPE_BODY_7BIT;
    else if (p->has_val && equal_ci(p->val, p->val_len, "8BITMIME"))
        out->body = ENVELOPE_BODY_8BITMIME;
    else if (p->has_val && equal_ci(p->val, p->val_len, "BINARYMIME"))
        out->body = ENVELOPE_BODY_BINARYMIME;
    else
        return SMTP_SYNTAX_BAD_BODY;
    return SMTP_SYNTAX_OK;
}

/* param_smtputf8 - SMTPUTF8 takes no value (RFC 6531 §3.4). */
static enum smtp_syntax param_smtputf8(const struct param *p, struct smtp_mail_params *out)
{
    if (p->has_val)
        return SMTP_SYNTAX_BAD_PARAM;
    out->smtputf8 = true;
    return SMTP_SYNTAX_OK;
}

/* The MAIL parameters we advertise in EHLO, and what each one checks. */
struct param_row {
    const char *keyword; /* upper case */
    enum smtp_syntax (*apply)(const struct param *p,
                              struct smtp_mail_params *out); /* check, store */
};

static const struct param_row mail_param_table[] = {
    {"SIZE", param_size},
    {"BODY", param_body},
    {"SMTPUTF8", param_smtputf8},
};

#define N_MAIL_PARAMS (sizeof(mail_param_table) / sizeof(mail_param_table[0]))

/* rest_starts_ok - after the path comes the end or SP (parameters); anything else is
 * garbage glued to the path. */
static bool rest_starts_ok(const struct cursor *c)
{
    return c->pos == c->len || c->s[c->pos] == ' ';
}

/* has_smtputf8 - first pass over the parameters: is SMTPUTF8 among them? It decides
 * whether UTF-8 is legal in the path and in the other values (RFC 6531 §3.4). */
static bool has_smtputf8(struct cursor c)
{
    struct param p;
    while (next_param(&c, &p))
        if (equal_ci(p.kw, p.kw_len, "SMTPUTF8"))
            return true;
    return false;
}

/* parse_mail_params - the parameters after the path, in order; the first problem wins. */
static enum smtp_syntax parse_mail_params(struct cursor *c, bool esmtp,
                                          struct smtp_mail_params *out)
{
    bool seen[N_MAIL_PARAMS] = {false};
    bool utf8 = has_smtputf8(*c);
    struct param p;
    while (next_param(c, &p)) {
        if (!esmtp)
            return SMTP_SYNTAX_PARAM_NOT_ESMTP; /* RFC 1869 §4: only after EHLO */
        if (p.bad_keyword)
            return SMTP_SYNTAX_BAD_PARAM;
        size_t r = 0;
        while (r < N_MAIL_PARAMS && !equal_ci(p.kw, p.kw_len, mail_param_table[r].keyword))
            r++;
        if (r == N_MAIL_PARAMS)
            return value_ok(&p, utf8) ? SMTP_SYNTAX_UNKNOWN_PARAM : SMTP_SYNTAX_BAD_PARAM;
        if (seen[r])
            return SMTP_SYNTAX_BAD_PARAM;
        seen[r] = true;
        enum smtp_syntax e = mail_param_table[r].apply(&p, out);
        if (e != SMTP_SYNTAX_OK)
            return e;
    }
    return SMTP_SYNTAX_OK;
}

/* ---- public ---------------------------------------------------------------------------- */

/* smtp_cmd_parse - verb = first word up to SP, matched case-insensitively against
 * verb_table; arg = the rest after one or more SP. Trailing SP/HTAB of the line are
 * ignored, so "QUIT \t" is QUIT without an argument. */
void smtp_cmd_parse(const char *line, size_t len, struct smtp_command *cmd)
{
    len = trim_trailing(line, len);
    const char *sp = memchr(line, ' ', len);
    size_t verb_len = sp ? (size_t)(sp - line) : len;

    cmd->verb = SMTP_VERB_UNKNOWN;
    for (size_t i = 0; i < N_VERBS; i++) {
        if (equal_ci(line, verb_len, verb_table[i].name)) {
            cmd->verb = verb_table[i].verb;
            break;
        }
    }
    size_t pos = verb_len;
    while (pos < len && line[pos] == ' ')
        pos++;
    cmd->arg = line + pos;
    cmd->arg_len = len - pos;
    cmd->has_arg = cmd->arg_len > 0;
}

/* smtp_cmd_verb_name - the keyword of a verb; "" for SMTP_VERB_UNKNOWN. */
const char *smtp_cmd_verb_name(enum smtp_verb verb)
{
    for (size_t i = 0; i < N_VERBS; i++)
        if (verb_table[i].verb == verb)
            return verb_table[i].name;
    return "";
}

/* smtp_cmd_mail - "FROM:" Reverse-path [SP Mail-parameters] (RFC 5321 §4.1.1.2). Checks
 * in this order: prefix, path syntax and lengths, parameters, then whether UTF-8 in the
 * path was allowed by SMTPUTF8. path and params are always set; on error they are empty. */
enum smtp_syntax smtp_cmd_mail(const char *arg, size_t len, bool esmtp, struct smtp_path *path,
                               struct smtp_mail_params *params)
{
    path_clear(path);
    memset(params, 0, sizeof(*params));
    params->body = ENVELOPE_BODY_NONE;

    struct cursor c = {(const unsigned char *)arg, trim_trailing(arg, len), 0, false};
    if (!skip_prefix(&c, "FROM:"))
        return SMTP_SYNTAX_BAD_COMMAND;
    struct path_span sp;
    enum smtp_syntax r = parse_path(&c, &sp);
    if (r != SMTP_SYNTAX_OK)
        return r;
    if (!rest_starts_ok(&c))
        return SMTP_SYNTAX_BAD_PATH;

    struct smtp_mail_params p;
    memset(&p, 0, sizeof(p));
    p.body = ENVELOPE_BODY_NONE;
    r = parse_mail_params(&c, esmtp, &p);
    if (r != SMTP_SYNTAX_OK)
        return r;
    if (sp.non_ascii && !p.smtputf8)
        return SMTP_SYNTAX_NEEDS_SMTPUTF8;

    path_store(path, arg, &sp);
    *params = p;
    return SMTP_SYNTAX_OK;
}

/* smtp_cmd_rcpt - "TO:" ( "<Postmaster>" / Forward-path ) [SP Rcpt-parameters]
 * (RFC 5321 §4.1.1.3). We advertise no RCPT extension, so any parameter is refused. utf8
 * says whether the transaction's MAIL had SMTPUTF8. path is empty on error. */
enum smtp_syntax smtp_cmd_rcpt(const char *arg, size_t len, bool esmtp, bool utf8,
                               struct smtp_path *path)
{
    path_clear(path);

    struct cursor c = {(const unsigned char *)arg, trim_trailing(arg, len), 0, false};
    if (!skip_prefix(&c, "TO:"))
        return SMTP_SYNTAX_BAD_COMMAND;
    struct path_span sp;
    if (!parse_postmaster(&c, &sp)) {
        enum smtp_syntax r = parse_path(&c, &sp);
        if (r != SMTP_SYNTAX_OK)
            return r;
    }
    if (!rest_starts_ok(&c))
        return SMTP_SYNTAX_BAD_PATH;
    if (sp.null_path)
        return SMTP_SYNTAX_NULL_PATH;

    struct param p;
    if (next_param(&c, &p))
        return esmtp ? SMTP_SYNTAX_UNKNOWN_PARAM : SMTP_SYNTAX_PARAM_NOT_ESMTP;
    if (sp.non_ascii && !utf8)
        return SMTP_SYNTAX_NEEDS_SMTPUTF8;

    path_store(path, arg, &sp);
    return SMTP_SYNTAX_OK;
}

/* smtp_cmd_bdat - chunk-size [SP end-marker] with chunk-size 1*DIGIT and end-marker "LAST"
 * (RFC 3030 §2, any case). Extra spaces between the two are tolerated like elsewhere. A
 * size that does not fit in 64 bits is refused: nobody can say how many bytes follow. */
/* bdat_digits - the leading 1*DIGIT of arg as a number; the count of digits, 0 when there
 * are none or the value does not fit in 64 bits. */
static size_t bdat_digits(const char *arg, size_t len, uint64_t *value)
{
    size_t i = 0;
    *value = 0;
    while (i < len && is_digit((unsigned char)arg[i])) {
        unsigned d = (unsigned)(arg[i] - '0');
        if (*value > (UINT64_MAX - d) / 10)
            return 0;
        *value = *value * 10 + d;
        i++;
    }
    return i;
}

bool smtp_cmd_bdat(const char *arg, size_t len, uint64_t *size, bool *last)
{
    *size = 0;
    *last = false;
    len = trim_trailing(arg, len);
    uint64_t value;
    size_t i = bdat_digits(arg, len, &value);
    if (i == 0)
        return false;
    size_t digits_end = i;
    while (i < len && arg[i] == ' ')
        i++;
    bool marker = i < len;
    if (marker && (i == digits_end || !equal_ci(arg + i, len - i, "LAST")))
        return false;
    *size = value;
    *last = marker;
    return true;
}

/* smtp_cmd_bdat_size - see smtp_cmd.h. */
bool smtp_cmd_bdat_size(const char *arg, size_t len, uint64_t *size)
{
    uint64_t value;
    size_t i = bdat_digits(arg, len, &value);
    if (i == 0 || (i < len && arg[i] != ' ' && arg[i] != '\t'))
        return false;
    *size = value;
    return true;
}
