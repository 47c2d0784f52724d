/* route.c - recipient route patterns: parse "local@domain", "*@domain", "*@*.domain" and
 * "*", match a recipient address against one, and tell whether a pattern can match a served
 * domain at all (RFC 5321 §2.4, §4.1.2; RFC 6531 §3.3).
 *
 * Pure: parsing allocates the pattern's two strings and nothing else; matching and
 * route_pattern_domain_served never allocate. No I/O; must not include libuv, curl, OpenSSL
 * or jansson. */
#include "smtphook/route.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "smtphook/error.h"
#include "smtphook/smtp_cmd.h"

#define ROUTE_LABEL_MAX 63 /* bytes in one label (RFC 1035 §2.3.4) */

/* ---- characters ------------------------------------------------------------------------ */

/* is_let_dig - RFC 5321 §4.1.2 Let-dig: an ASCII letter or digit. */
static bool is_let_dig(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* is_atext - RFC 5322 §3.2.3 atext, ASCII part; RFC 6531 §3.3 adds UTF8-non-ascii, which
 * the caller checks apart with smtp_cmd_valid_utf8. */
static bool is_atext(unsigned char c)
{
    return is_let_dig(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* is_qtext - RFC 5321 §4.1.2 qtextSMTP: %d32-33 / %d35-91 / %d93-126. */
static bool is_qtext(unsigned char c)
{
    return c >= 32 && c <= 126 && c != '"' && c != '\\';
}

/* ascii_lower - fold A..Z to a..z; every other byte, UTF-8 included, stays as it is. */
static unsigned char ascii_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

/* equal_ci - a[0, alen) equals b[0, blen), ASCII letters compared without case and every
 * other byte exactly (RFC 5321 §2.4 for domains; our choice for local parts, route.h). */
static bool equal_ci(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++)
        if (ascii_lower((unsigned char)a[i]) != ascii_lower((unsigned char)b[i]))
            return false;
    return true;
}

/* is_below - is d[0, dlen) a strict subdomain of the domain base[0, blen): one or more
 * labels, a '.', then base, without case? */
static bool is_below(const char *d, size_t dlen, const char *base, size_t blen)
{
    if (dlen < blen + 2 || d[dlen - blen - 1] != '.')
        return false;
    return equal_ci(d + dlen - blen, blen, base, blen);
}

/* ---- the '@' --------------------------------------------------------------------------- */

/* quoted_end - the length of the quoted string at the start of s[0, len) (RFC 5321 §4.1.2
 * Quoted-string: DQUOTE, any bytes with '\' escaping the next one, DQUOTE), or 0 when it is
 * not closed. Only the quotes and backslashes count: whether the bytes inside are allowed is
 * checked elsewhere, so that a malformed address still splits the same way every time. */
static size_t quoted_end(const char *s, size_t len)
{
    size_t i = 1;
    while (i < len) {
        if (s[i] == '\\')
            i += 2;
        else if (s[i] == '"')
            return i + 1;
        else
            i++;
    }
    return 0;
}

/* find_at - the '@' between the local part and the domain of s[0, len): the one right after a
 * quoted local part (which may itself contain '@'), else the first one. Returns its offset,
 * or len when there is none (a domain-less "postmaster", or garbage). */
static size_t find_at(const char *s, size_t len)
{
    if (len > 0 && s[0] == '"') {
        size_t q = quoted_end(s, len);
        return q > 0 && q < len && s[q] == '@' ? q : len;
    }
    const char *at = memchr(s, '@', len);
    return at != NULL ? (size_t)(at - s) : len;
}

/* ---- pattern syntax -------------------------------------------------------------------- */

/* dot_string_ok - RFC 5321 §4.1.2 Dot-string = Atom *("." Atom), Atom = 1*atext; bytes
 * >= 0x80 count as atext (RFC 6531 §3.3), their UTF-8 is checked apart. */
static bool dot_string_ok(const char *s, size_t len)
{
    bool in_atom = false; /* the last byte was part of an atom */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (!in_atom)
                return false;
            in_atom = false;
        } else if (c >= 0x80 || is_atext(c)) {
            in_atom = true;
        } else {
            return false;
        }
    }
    return in_atom;
}

/* quoted_string_ok - RFC 5321 §4.1.2 Quoted-string = DQUOTE *QcontentSMTP DQUOTE, with
 * qtextSMTP, quoted-pairSMTP ("\" %d32-126) and UTF-8 (RFC 6531 §3.3), filling s[0, len)
 * exactly. */
static bool quoted_string_ok(const char *s, size_t len)
{
    if (len < 2 || s[0] != '"' || s[len - 1] != '"')
        return false;
    for (size_t i = 1; i < len - 1; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\') {
            if (i + 1 >= len - 1)
                return false; /* the closing quote would be escaped */
            unsigned char next = (unsigned char)s[++i];
            if (next < 32 || next > 126)
                return false;
        } else if (!is_qtext(c) && c < 0x80) {
            return false; /* '"' inside, or a control character */
        }
    }
    return true;
}

/* local_problem - NULL when s[0, len) may be the local part of an exact pattern, else why
 * not: 1..64 bytes (RFC 5321 §4.5.3.1.1), a Dot-string or a Quoted-string (§4.1.2), UTF-8
 * without control characters (RFC 6531 §3.3), and no '*': a glob like "sales*" is not
 * supported and would otherwise silently be an exact address. */
static const char *local_problem(const char *s, size_t len)
{
    if (len == 0)
        return "the local part is empty";
    if (len > SMTP_LOCAL_PART_MAX)
        return "the local part is longer than 64 bytes (RFC 5321 section 4.5.3.1.1)";
    if (memchr(s, '*', len) != NULL)
        return "'*' may only be the whole local part (*@domain) or the whole pattern (*)";
    if (!smtp_cmd_valid_utf8(s, len))
        return "the local part contains a control character or is not valid UTF-8";
    if (s[0] == '"' ? !quoted_string_ok(s, len) : !dot_string_ok(s, len))
        return "the local part is not a dot-string or a quoted string (RFC 5321 section 4.1.2)";
    return NULL;
}

/* domain_problem - NULL when s[0, len) is a domain name as RFC 5321 §4.1.2 Domain spells
 * it in ASCII: sub-domain *("." sub-domain), each Let-dig [Ldh-str] of at most 63 bytes, no
 * trailing dot, at most room bytes in all. Internationalized domains are written as
 * A-labels ("xn--..."); address literals are not patterns. */
static const char *domain_problem(const char *s, size_t len, size_t room)
{
    if (len == 0)
        return "the domain is empty";
    if (memchr(s, '*', len) != NULL)
        return "'*' may only be the whole first label of the domain (*@*.domain)";
    if (len > room)
        return "the domain is too long for an address (255 bytes, RFC 5321 section 4.5.3.1.2)";
    size_t label = 0; /* bytes in the current label */
    for (size_t i = 0; i <= len; i++) {
        unsigned char c = i < len ? (unsigned char)s[i] : '.';
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return "the domain is not a domain name (empty label or a label ending in '-')";
            if (label > ROUTE_LABEL_MAX)
                return "a label of the domain is longer than 63 bytes";
            label = 0;
        } else if (is_let_dig(c) || (c == '-' && label > 0)) {
            label++;
        } else {
            return "the domain is not a domain name (ASCII letters, digits, inner hyphens)";
        }
    }
    return NULL;
}

/* blank_problem - NULL unless text[0, len) has a control character anywhere, or a space
 * outside a quoted local part (the only place RFC 5321 §4.1.2 allows one). Checked first so
 * that a pasted " sales@example.com" is told what is wrong with it. */
static const char *blank_problem(const char *text, size_t len)
{
    size_t quoted = text[0] == '"' ? quoted_end(text, len) : 0; /* bytes of the quoted part */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c < 0x20 || c == 0x7F)
            return "the pattern contains a control character";
        if (c == ' ' && i >= quoted)
            return "the pattern contains a space";
    }
    return NULL;
}

/* copy_lower - a NUL-terminated copy of s[0, len), ASCII lower-cased when lower; NULL when
 * out of memory. */
static char *copy_lower(const char *s, size_t len, bool lower)
{
    char *out = malloc(len + 1);
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < len; i++)
        out[i] = lower ? (char)ascii_lower((unsigned char)s[i]) : s[i];
    out[len] = '\0';
    return out;
}

/* ---- public ---------------------------------------------------------------------------- */

/* route_pattern_parse - see route.h. The text is split at its '@' as an address is (after a
 * quoted local part, else the first one); "*" before it makes a domain pattern, "*." at the
 * start of the domain a subdomain pattern. *out is cleared first, so route_pattern_free on
 * it is safe whatever the result, and a refused pattern matches nothing, not everything. */
int route_pattern_parse(const char *text, struct route_pattern *out, const char **why)
{
    const char *problem = NULL;
    memset(out, 0, sizeof(*out)); /* EXACT without strings: matches nothing (fails closed) */
    if (why != NULL)
        *why = NULL;
    if (text == NULL) {
        problem = "the pattern is missing";
        goto invalid;
    }
    size_t len = strlen(text);
    if (len == 0) {
        problem = "the pattern is empty";
        goto invalid;
    }
    if (len == 1 && text[0] == '*') {
        out->kind = ROUTE_PATTERN_ANY; /* no strings */
        return 0;
    }
    if ((problem = blank_problem(text, len)) != NULL)
        goto invalid;

    size_t at = find_at(text, len);
    if (at == len) {
        problem = text[0] == '"' && quoted_end(text, len) == 0
                      ? "the quoted local part is not closed"
                      : "a pattern is local@domain, *@domain, *@*.domain or *";
        goto invalid;
    }
    const char *dom = text + at + 1;
    size_t dom_len = len - at - 1;
    bool any_local = at == 1 && text[0] == '*';
    bool sub = dom_len >= 2 && dom[0] == '*' && dom[1] == '.';
    if (sub && !any_local) {
        problem = "a subdomain pattern is *@*.domain: the local part must be '*'";
        goto invalid;
    }
    if (sub) {
        dom += 2;
        dom_len -= 2;
    }
    /* A subdomain pattern's domain leaves room for at least "x." in front of it. */
    problem = domain_problem(dom, dom_len, sub ? SMTP_DOMAIN_MAX - 2 : SMTP_DOMAIN_MAX);
    if (problem == NULL && !any_local)
        problem = local_problem(text, at);
    if (problem != NULL)
        goto invalid;

    out->kind =
        any_local ? (sub ? ROUTE_PATTERN_SUBDOMAIN : ROUTE_PATTERN_DOMAIN) : ROUTE_PATTERN_EXACT;
    out->domain = copy_lower(dom, dom_len, true);
    if (out->domain == NULL)
        goto nomem;
    out->domain_len = dom_len;
    if (out->kind == ROUTE_PATTERN_EXACT) {
        out->local = copy_lower(text, at, false);
        if (out->local == NULL)
            goto nomem;
        out->local_len = at;
    }
    return 0;

nomem:
    route_pattern_free(out);
    out->kind = ROUTE_PATTERN_EXACT;
    return SH_ENOMEM;
invalid:
    if (why != NULL)
        *why = problem;
    return SH_EINVAL;
}

/* route_pattern_free - see route.h; the pointers are left NULL, NULL is ignored. */
void route_pattern_free(struct route_pattern *p)
{
    if (p == NULL)
        return;
    free(p->local);
    free(p->domain);
    p->local = NULL;
    p->domain = NULL;
    p->local_len = 0;
    p->domain_len = 0;
}

/* extension_at - where the extension of local[0, len) starts: its first delimiter byte (up
 * to the '@', Postfix's recipient_delimiter), compared byte for byte; len when it has none.
 * A quoted local part keeps its extension: cutting it would cut off its closing quote. */
static size_t extension_at(const char *local, size_t len, const char *delimiters)
{
    if (delimiters == NULL || delimiters[0] == '\0' || (len > 0 && local[0] == '"'))
        return len;
    for (size_t i = 0; i < len; i++)
        if (local[i] != '\0' && strchr(delimiters, local[i]) != NULL)
            return i;
    return len;
}

/* route_address_split - see route.h. The address is split like find_at does; one without
 * '@' (the domain-less "postmaster" of RFC 5321 §4.5.1) has no domain. */
void route_address_split(const char *addr, size_t len, const char *delimiters,
                         struct route_address *out)
{
    out->addr = addr;
    out->len = addr != NULL ? len : 0;
    out->at = addr != NULL ? find_at(addr, len) : 0;
    out->base_len = addr != NULL ? extension_at(addr, out->at, delimiters) : 0;
}

/* route_address_match - see route.h. An exact pattern's local part matches the address's as
 * it is, then, with delimiters, without its extension; a domain-less address is matched by
 * "*" alone. The lengths kept in the pattern are compared first, so most patterns are
 * turned down without reading a byte of either string. */
bool route_address_match(const struct route_pattern *p, const struct route_address *a)
{
    if (p->kind == ROUTE_PATTERN_ANY)
        return true;
    if (a->addr == NULL || p->domain == NULL || a->at == a->len)
        return false;
    const char *dom = a->addr + a->at + 1;
    size_t dom_len = a->len - a->at - 1;
    switch (p->kind) {
    case ROUTE_PATTERN_EXACT: {
        /* Lengths first, then the local part (it tells exact patterns of one domain apart
         * at its first bytes), the domain last. */
        bool whole = a->at == p->local_len;                             /* as it is */
        bool base = a->base_len < a->at && a->base_len == p->local_len; /* without extension */
        if (p->local == NULL || dom_len != p->domain_len || (!whole && !base))
            return false;
        if (!(whole && equal_ci(a->addr, a->at, p->local, p->local_len)) &&
            !(base && equal_ci(a->addr, a->base_len, p->local, p->local_len)))
            return false;
        return equal_ci(dom, dom_len, p->domain, p->domain_len);
    }
    case ROUTE_PATTERN_DOMAIN:
        return equal_ci(dom, dom_len, p->domain, p->domain_len);
    case ROUTE_PATTERN_SUBDOMAIN:
        return is_below(dom, dom_len, p->domain, p->domain_len);
    case ROUTE_PATTERN_ANY:
        break;
    }
    return false;
}

/* route_pattern_match - see route.h: the address split, then matched. Reads addr[0, len)
 * only. */
bool route_pattern_match(const struct route_pattern *p, const char *addr, size_t len,
                         const char *delimiters)
{
    if (p->kind == ROUTE_PATTERN_ANY)
        return true;
    struct route_address a;
    route_address_split(addr, len, delimiters, &a);
    return route_address_match(p, &a);
}

/* route_pattern_domain_served - see route.h. Names compare without ASCII case, although
 * both sides are lower case already. */
bool route_pattern_domain_served(const struct route_pattern *p, bool any_domain,
                                 char *const *domains, size_t n)
{
    if (p->kind == ROUTE_PATTERN_ANY || any_domain)
        return true;
    if (p->domain == NULL || domains == NULL)
        return false;
    size_t plen = strlen(p->domain);
    for (size_t i = 0; i < n; i++) {
        if (domains[i] == NULL)
            continue;
        size_t dlen = strlen(domains[i]);
        if (p->kind == ROUTE_PATTERN_SUBDOMAIN ? is_below(domains[i], dlen, p->domain, plen)
                                               : equal_ci(domains[i], dlen, p->domain, plen))
            return true;
    }
    return false;
}
