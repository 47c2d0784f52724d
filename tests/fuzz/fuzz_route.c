/* fuzz_route.c - fuzz target: a route pattern through route_pattern_parse, then an address
 * through route_pattern_match against it and against a few fixed patterns, and both through
 * route_pattern_domain_served.
 *
 * Input layout: "<delimiters>\n<pattern>\n<address>". The delimiters and the pattern are
 * used as C strings (a NUL ends them early); the address is every byte after the second
 * newline, NULs and newlines included. A missing part is empty.
 * Invariants (abort on violation): parse returns 0 or SH_EINVAL with a reason and no
 * strings (or SH_ENOMEM), and a refused pattern matches nothing; an accepted pattern has
 * the fields its kind promises, a lower-case valid domain, an exact local part without '*'
 * or controls, spells its text back (domain case aside), parses again to itself from that
 * spelling in either case, matches what it names and is served by its own domain. Matching
 * reads only addr[0, len) (every address is an allocation of its exact size), "*" matches
 * everything, an address without '@' nothing else; the result does not change when the
 * ASCII letters of the address change case (when no delimiter is a letter); with delimiters
 * the address matches exactly when it does as it is or when it does without its extension
 * (from the first delimiter up to the '@', never for a quoted local part); what matches a
 * domain pattern ends with "@domain" or ".domain"; for an unquoted address the result is
 * the one route.h describes; and a pattern is served by a domain exactly when an address of
 * that domain matches it.
 *
 * Must not include libuv, curl or jansson. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "smtphook/error.h"
#include "smtphook/route.h"

#define DOMAIN_MAX 255 /* RFC 5321 §4.5.3.1.2 */
#define LOCAL_MAX  64  /* RFC 5321 §4.5.3.1.1 */

/* Patterns every address is also matched against, whatever the input's pattern is. */
static const char *const fixed_patterns[] = {
    "*",
    "*@example.com",
    "*@*.example.com",
    "user@example.com",
    "User.Name@Example.COM",
    "\"a b\"@example.com",
    "\"a@b\"@example.com",
    "jos\xc3\xa9@example.com",
    "*@*.com",
};

#define N_FIXED (sizeof(fixed_patterns) / sizeof(fixed_patterns[0]))

/* lower - ASCII lower case. */
static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

/* is_ascii_letter - A..Z, a..z. */
static bool is_ascii_letter(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* same_ci - a[0, n) and b[0, n) agree but for ASCII case. */
static bool same_ci(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return false;
    return true;
}

/* ends_with_ci - s[0, len) ends with the C string tail, without ASCII case. */
static bool ends_with_ci(const char *s, size_t len, const char *tail)
{
    size_t n = strlen(tail);
    return len >= n && same_ci(s + len - n, tail, n);
}

/* dup_bytes - an allocation of exactly n bytes (1 when n is 0) holding s[0, n). */
static char *dup_bytes(const char *s, size_t n)
{
    char *p = malloc(n ? n : 1);
    FUZZ_CHECK(p != NULL);
    if (n > 0)
        memcpy(p, s, n);
    return p;
}

/* cstr - a NUL-terminated copy of s[0, n), cut at its first NUL. */
static char *cstr(const char *s, size_t n)
{
    const char *nul = memchr(s, '\0', n);
    if (nul != NULL)
        n = (size_t)(nul - s);
    char *p = malloc(n + 1);
    FUZZ_CHECK(p != NULL);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* concat - a + b + c as an exact-size allocation; its length in *n. */
static char *concat(const char *a, size_t an, const char *b, size_t bn, const char *c, size_t cn,
                    size_t *n)
{
    *n = an + bn + cn;
    char *p = malloc(*n ? *n : 1);
    FUZZ_CHECK(p != NULL);
    memcpy(p, a, an);
    memcpy(p + an, b, bn);
    memcpy(p + an + bn, c, cn);
    return p;
}

/* match_str - route_pattern_match on a C string, copied to an exact-size allocation. */
static bool match_str(const struct route_pattern *p, const char *s, const char *delimiters)
{
    size_t n = strlen(s);
    char *a = dup_bytes(s, n);
    bool r = route_pattern_match(p, a, n, delimiters);
    free(a);
    return r;
}

/* domain_ok - an ASCII domain name as route.h promises: lower case, labels of letters,
 * digits and inner hyphens, 1..63 each, at most 255 bytes; written apart from route.c. */
static bool domain_ok(const char *d)
{
    size_t n = strlen(d);
    if (n == 0 || n > DOMAIN_MAX)
        return false;
    size_t label = 0;
    for (size_t i = 0; i <= n; i++) {
        char c = d[i];
        if (c == '.' || c == '\0') {
            if (label == 0 || label > 63 || d[i - 1] == '-')
                return false;
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && label > 0)) {
            label++;
        } else {
            return false;
        }
    }
    return true;
}

/* same_pattern - two patterns are equal field by field. */
static bool same_pattern(const struct route_pattern *a, const struct route_pattern *b)
{
    if (a->kind != b->kind || (a->local == NULL) != (b->local == NULL) ||
        (a->domain == NULL) != (b->domain == NULL))
        return false;
    return (a->local == NULL || strcmp(a->local, b->local) == 0) &&
           (a->domain == NULL || strcmp(a->domain, b->domain) == 0);
}

/* spell - the text of a pattern, domain upper-cased when upper; malloc'ed. */
static char *spell(const struct route_pattern *p, bool upper)
{
    static const char *const prefix[] = {"", "*@", "*@*.", "*"};
    const char *local = p->kind == ROUTE_PATTERN_EXACT ? p->local : "";
    const char *at = p->kind == ROUTE_PATTERN_EXACT ? "@" : "";
    const char *dom = p->domain ? p->domain : "";
    size_t n = strlen(prefix[p->kind]) + strlen(local) + strlen(at) + strlen(dom);
    char *s = malloc(n + 1);
    FUZZ_CHECK(s != NULL);
    strcpy(s, prefix[p->kind]);
    strcat(s, local);
    strcat(s, at);
    size_t d = strlen(s);
    strcat(s, dom);
    for (size_t i = d; upper && s[i] != '\0'; i++)
        if (s[i] >= 'a' && s[i] <= 'z')
            s[i] = (char)(s[i] - 'a' + 'A');
    return s;
}

/* check_parsed - an accepted pattern keeps route.h's promises. */
static void check_parsed(const struct route_pattern *p, const char *text, const char *delimiters)
{
    switch (p->kind) {
    case ROUTE_PATTERN_ANY:
        FUZZ_CHECK(p->local == NULL && p->domain == NULL && strcmp(text, "*") == 0);
        break;
    case ROUTE_PATTERN_DOMAIN:
    case ROUTE_PATTERN_SUBDOMAIN:
        FUZZ_CHECK(p->local == NULL && p->domain != NULL);
        break;
    case ROUTE_PATTERN_EXACT: {
        FUZZ_CHECK(p->local != NULL && p->domain != NULL);
        size_t n = strlen(p->local);
        FUZZ_CHECK(n >= 1 && n <= LOCAL_MAX && strchr(p->local, '*') == NULL);
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)p->local[i];
            FUZZ_CHECK(c >= 0x20 && c != 0x7F);
            FUZZ_CHECK(c != ' ' || p->local[0] == '"');
        }
        break;
    }
    default:
        FUZZ_FAIL("unknown pattern kind");
    }
    if (p->domain != NULL)
        FUZZ_CHECK(domain_ok(p->domain));
    /* The lengths kept for matching are those of the strings. */
    FUZZ_CHECK(p->local_len == (p->local != NULL ? strlen(p->local) : 0));
    FUZZ_CHECK(p->domain_len == (p->domain != NULL ? strlen(p->domain) : 0));

    /* It spells its text back, domain case aside, and parses again to itself. */
    char *s = spell(p, false);
    FUZZ_CHECK(strlen(s) == strlen(text) && same_ci(s, text, strlen(s)));
    size_t keep = p->kind == ROUTE_PATTERN_EXACT ? strlen(p->local) : 0;
    FUZZ_CHECK(memcmp(s, text, keep) == 0);
    for (int upper = 0; upper < 2; upper++) {
        char *t = upper ? spell(p, true) : s;
        struct route_pattern again;
        const char *why = NULL;
        FUZZ_CHECK(route_pattern_parse(t, &again, &why) == 0 && why == NULL);
        FUZZ_CHECK(same_pattern(p, &again));
        route_pattern_free(&again);
        if (upper)
            free(t);
    }

    /* It matches what it names, and is served by its own domain. */
    char *const own[] = {p->domain};
    size_t dn = p->domain ? strlen(p->domain) : 0;
    char *addr = malloc(dn + 8);
    FUZZ_CHECK(addr != NULL);
    switch (p->kind) {
    case ROUTE_PATTERN_ANY:
        FUZZ_CHECK(route_pattern_domain_served(p, false, NULL, 0));
        break;
    case ROUTE_PATTERN_EXACT:
        FUZZ_CHECK(match_str(p, s, NULL) && match_str(p, s, delimiters));
        FUZZ_CHECK(route_pattern_domain_served(p, false, own, 1));
        break;
    case ROUTE_PATTERN_DOMAIN:
        strcpy(addr, "x@");
        strcat(addr, p->domain);
        FUZZ_CHECK(match_str(p, addr, NULL));
        FUZZ_CHECK(route_pattern_domain_served(p, false, own, 1));
        break;
    case ROUTE_PATTERN_SUBDOMAIN:
        strcpy(addr, "x@");
        strcat(addr, p->domain);
        FUZZ_CHECK(!match_str(p, addr, NULL));
        FUZZ_CHECK(!route_pattern_domain_served(p, false, own, 1));
        strcpy(addr, "x@a.");
        strcat(addr, p->domain);
        FUZZ_CHECK(match_str(p, addr, NULL));
        char *const below[] = {addr + 2};
        FUZZ_CHECK(route_pattern_domain_served(p, false, below, 1));
        break;
    }
    FUZZ_CHECK(route_pattern_domain_served(p, true, NULL, 0));
    FUZZ_CHECK(match_str(p, "postmaster", delimiters) == (p->kind == ROUTE_PATTERN_ANY));
    free(addr);
    free(s);
}

/* first_delimiter - the offset of the first byte of s[0, n) in the delimiter set, or n. */
static size_t first_delimiter(const char *s, size_t n, const char *delimiters)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != '\0' && strchr(delimiters, s[i]) != NULL)
            return i;
    return n;
}

/* check_case - the same result when the address's ASCII letters change case: all flipped,
 * all lower. */
static void check_case(const struct route_pattern *p, const char *addr, size_t len,
                       const char *delimiters, bool want)
{
    for (int mode = 0; mode < 2; mode++) {
        char *c = dup_bytes(addr, len);
        for (size_t i = 0; i < len; i++) {
            unsigned char ch = (unsigned char)c[i];
            if (!is_ascii_letter(ch))
                continue;
            c[i] = (char)(mode == 0 ? ch ^ 0x20 : lower(ch));
        }
        FUZZ_CHECK(route_pattern_match(p, c, len, delimiters) == want);
        free(c);
    }
}

/* check_unquoted - for an address with an unquoted local part and an '@' at offset at, the
 * result is the one route.h describes, and a pattern that matches is served by the address's
 * domain. */
static void check_unquoted(const struct route_pattern *p, const char *addr, size_t len, size_t at,
                           bool plain)
{
    const char *dom = addr + at + 1;
    size_t dn = len - at - 1;
    bool want = false;
    switch (p->kind) {
    case ROUTE_PATTERN_ANY:
        want = true;
        break;
    case ROUTE_PATTERN_EXACT:
        want = strlen(p->local) == at && same_ci(addr, p->local, at) && strlen(p->domain) == dn &&
               same_ci(dom, p->domain, dn);
        break;
    case ROUTE_PATTERN_DOMAIN:
        want = strlen(p->domain) == dn && same_ci(dom, p->domain, dn);
        break;
    case ROUTE_PATTERN_SUBDOMAIN: {
        size_t pn = strlen(p->domain);
        want = dn >= pn + 2 && dom[dn - pn - 1] == '.' && same_ci(dom + dn - pn, p->domain, pn);
        break;
    }
    }
    FUZZ_CHECK(plain == want);
    if (!plain || memchr(dom, '\0', dn) != NULL)
        return;
    /* The address's domain, lower-cased, serves the pattern. */
    char *served = malloc(dn + 1);
    FUZZ_CHECK(served != NULL);
    for (size_t i = 0; i < dn; i++)
        served[i] = (char)lower((unsigned char)dom[i]);
    served[dn] = '\0';
    char *const list[] = {served};
    FUZZ_CHECK(route_pattern_domain_served(p, false, list, 1));
    free(served);
}

/* check_match - one pattern against one address, with and without the delimiters. */
static void check_match(const struct route_pattern *p, const char *addr, size_t len,
                        const char *delimiters)
{
    bool plain = route_pattern_match(p, addr, len, NULL);
    bool none = route_pattern_match(p, addr, len, "");
    bool with = route_pattern_match(p, addr, len, delimiters);
    FUZZ_CHECK(route_pattern_match(p, addr, len, delimiters) == with);
    FUZZ_CHECK(none == plain);
    FUZZ_CHECK(!plain || with); /* as it is first */

    const char *at = memchr(addr, '@', len);
    if (p->kind == ROUTE_PATTERN_ANY) {
        FUZZ_CHECK(plain && with);
        return;
    }
    if (at == NULL)
        FUZZ_CHECK(!plain && !with);

    /* What matches ends with the pattern's domain. */
    char tail[DOMAIN_MAX + 3];
    tail[0] = p->kind == ROUTE_PATTERN_SUBDOMAIN ? '.' : '@';
    strcpy(tail + 1, p->domain);
    FUZZ_CHECK(!with || ends_with_ci(addr, len, tail));
    if (plain && p->kind == ROUTE_PATTERN_EXACT) {
        size_t ln = strlen(p->local);
        FUZZ_CHECK(len == ln + strlen(tail) && same_ci(addr, p->local, ln));
    }

    bool letters = false;
    for (const char *d = delimiters; *d != '\0'; d++)
        letters = letters || is_ascii_letter((unsigned char)*d);
    check_case(p, addr, len, NULL, plain);
    if (!letters)
        check_case(p, addr, len, delimiters, with);

    /* The delimiter rule: with delimiters it matches as it is, or without its extension. */
    if (len == 0 || addr[0] == '"' || at == NULL) {
        FUZZ_CHECK(with == plain);
        return;
    }
    size_t at_off = (size_t)(at - addr);
    check_unquoted(p, addr, len, at_off, plain);
    size_t k = first_delimiter(addr, at_off, delimiters);
    if (k == at_off) {
        FUZZ_CHECK(with == plain);
        return;
    }
    size_t n;
    char *stripped = concat(addr, k, at, len - at_off, "", 0, &n);
    bool base = route_pattern_match(p, stripped, n, NULL);
    FUZZ_CHECK(with == (plain || base));
    free(stripped);
}

/* check_served - a pattern is served by a domain exactly when an address of that domain
 * matches it: p's own local part at it for an exact pattern, "x@" for the others. */
static void check_served(const struct route_pattern *p, const char *raw, size_t raw_len)
{
    char *d = cstr(raw, raw_len);
    for (char *c = d; *c != '\0'; c++)
        *c = (char)lower((unsigned char)*c);
    char *const list[] = {d};
    bool served = route_pattern_domain_served(p, false, list, 1);
    FUZZ_CHECK(route_pattern_domain_served(p, true, list, 1));
    const char *local = p->kind == ROUTE_PATTERN_EXACT ? p->local : "x";
    size_t n;
    char *addr = concat(local, strlen(local), "@", 1, d, strlen(d), &n);
    FUZZ_CHECK(served == route_pattern_match(p, addr, n, NULL));
    free(addr);
    free(d);
}

/* LLVMFuzzerTestOneInput - split the input, parse, match, check. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    const char *nl1 = memchr(in, '\n', size);
    size_t d_len = nl1 ? (size_t)(nl1 - in) : size;
    const char *rest = nl1 ? nl1 + 1 : in + size;
    size_t rest_len = size - (size_t)(rest - in);
    const char *nl2 = memchr(rest, '\n', rest_len);
    size_t p_len = nl2 ? (size_t)(nl2 - rest) : rest_len;
    const char *a_raw = nl2 ? nl2 + 1 : rest + rest_len;
    size_t a_len = size - (size_t)(a_raw - in);

    char *delimiters = cstr(in, d_len);
    char *text = cstr(rest, p_len);
    char *addr = dup_bytes(a_raw, a_len);

    struct route_pattern p;
    const char *why = "untouched";
    int rc = route_pattern_parse(text, &p, &why);
    FUZZ_CHECK(rc == 0 || rc == SH_EINVAL || rc == SH_ENOMEM);
    if (rc == 0) {
        FUZZ_CHECK(why == NULL);
        check_parsed(&p, text, delimiters);
        check_match(&p, addr, a_len, delimiters);
        check_served(&p, a_raw, a_len);
        route_pattern_free(&p);
        FUZZ_CHECK(p.local == NULL && p.domain == NULL);
    } else {
        FUZZ_CHECK(p.local == NULL && p.domain == NULL);
        FUZZ_CHECK(rc != SH_EINVAL || (why != NULL && why[0] != '\0'));
        /* A refused pattern fails closed. */
        FUZZ_CHECK(!route_pattern_match(&p, addr, a_len, delimiters));
        FUZZ_CHECK(!route_pattern_domain_served(&p, false, NULL, 0));
    }
    route_pattern_free(&p);

    for (size_t i = 0; i < N_FIXED; i++) {
        struct route_pattern f;
        FUZZ_CHECK(route_pattern_parse(fixed_patterns[i], &f, NULL) == 0);
        check_match(&f, addr, a_len, delimiters);
        check_served(&f, a_raw, a_len);
        route_pattern_free(&f);
    }
    free(addr);
    free(text);
    free(delimiters);
    return 0;
}
