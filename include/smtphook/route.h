/* route.h - which route a recipient belongs to: address patterns and their matching.
 *
 * Pure: no allocation in matching, no I/O. A pattern is one of
 *   local@domain   an exact address
 *   *@domain       every address of that domain
 *   *@*.domain     every address of any subdomain of domain (not domain itself)
 *   *              every address
 * Domains compare case-insensitively (ASCII; RFC 5321 §2.4). Local parts compare
 * case-insensitively for ASCII letters and byte for byte otherwise (§2.4 leaves them to the
 * receiver; UTF-8 local parts of RFC 6531 are compared exactly). With a recipient delimiter
 * set (e.g. "+", or "+-" for either), "user+tag@domain" also matches the exact pattern
 * "user@domain": the address is tried as it is first, then without its extension. The
 * address the envelope carries is never changed.
 *
 * Syntax: the domain of a pattern is an ASCII domain name (RFC 5321 §4.1.2 Domain: labels
 * of letters, digits and inner hyphens; IDNs as A-labels, no address literals); the local
 * part of an exact pattern is a Dot-string or a Quoted-string (§4.1.2), UTF-8 allowed
 * (RFC 6531 §3.3). '*' appears only in the four forms above; spaces only inside a quoted
 * local part; control characters nowhere. There is no domain-less pattern: the domain-less
 * "postmaster" (RFC 5321 §4.5.1) is matched by "*" alone, so "postmaster" by itself is not
 * a pattern. A quoted local part never loses an extension (cutting it would cut its
 * closing quote), and delimiters are compared byte for byte. */
#ifndef SMTPHOOK_ROUTE_H
#define SMTPHOOK_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

enum route_pattern_kind {
    ROUTE_PATTERN_EXACT = 0, /* local@domain */
    ROUTE_PATTERN_DOMAIN,    /* *@domain */
    ROUTE_PATTERN_SUBDOMAIN, /* *@*.domain */
    ROUTE_PATTERN_ANY,       /* * */
};

struct route_pattern {
    enum route_pattern_kind kind; /* see enum */
    char *local;                  /* EXACT: the local part as written; NULL otherwise */
    char *domain;                 /* EXACT, DOMAIN, SUBDOMAIN: lower case, without "*."; NULL
                                     for ANY */
    size_t local_len;             /* bytes in local, 0 without one */
    size_t domain_len;            /* bytes in domain, 0 without one */
};

/* An address split once, to be matched against many patterns (config_route_for): where its
 * '@' is and where its extension starts, as route_pattern_match finds them. Points into the
 * caller's address, which must outlive it. */
struct route_address {
    const char *addr; /* the address, not NUL-terminated; NULL matches only "*" */
    size_t len;       /* bytes in addr */
    size_t at;        /* offset of the '@' between local part and domain; len without one */
    size_t base_len;  /* bytes of the local part before its extension (the first delimiter
                       * byte); at when there is none, no delimiters or a quoted local part */
};

/* route_pattern_parse - text -> pattern (strings malloc'ed; free with route_pattern_free).
 * 0, SH_EINVAL with *why set to a static explanation ("the domain is not a domain name"),
 * or SH_ENOMEM. On an error *out holds no strings and matches no address. */
int route_pattern_parse(const char *text, struct route_pattern *out, const char **why);

/* route_pattern_free - release the strings of a pattern; the struct itself is the caller's. */
void route_pattern_free(struct route_pattern *p);

/* route_pattern_match - does the address (local@domain, or a domain-less "postmaster", len
 * bytes, not NUL-terminated) match? delimiters: NULL or "" for none, else the characters
 * that start an extension in the local part (the first one found counts). */
bool route_pattern_match(const struct route_pattern *p, const char *addr, size_t len,
                         const char *delimiters);

/* route_address_split - split addr[0, len) once for route_address_match: the '@' as
 * route_pattern_match finds it, and with delimiters (NULL or "" for none) the end of the
 * local part without its extension. Reads addr[0, len) only; addr may be NULL. */
void route_address_split(const char *addr, size_t len, const char *delimiters,
                         struct route_address *out);

/* route_address_match - route_pattern_match for an address split by route_address_split
 * with the same delimiters: the same answer for every pattern and address. */
bool route_address_match(const struct route_pattern *p, const struct route_address *a);

/* route_pattern_domain_served - can a pattern match any address of the served domains?
 * any_domain: every domain is served; domains: n lower-case names. ANY always can; EXACT
 * and DOMAIN need their domain served; SUBDOMAIN needs a served domain below its own. Used
 * by the configuration to refuse patterns that can never match. */
bool route_pattern_domain_served(const struct route_pattern *p, bool any_domain,
                                 char *const *domains, size_t n);

#endif
