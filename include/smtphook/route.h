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
 * address the envelope carries is never changed. */
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
};

/* route_pattern_parse - text -> pattern (strings malloc'ed; free with route_pattern_free).
 * 0, SH_EINVAL with *why set to a static explanation ("the domain is not a domain name"),
 * or SH_ENOMEM. */
int route_pattern_parse(const char *text, struct route_pattern *out, const char **why);

/* route_pattern_free - release the strings of a pattern; the struct itself is the caller's. */
void route_pattern_free(struct route_pattern *p);

/* route_pattern_match - does the address (local@domain, or a domain-less "postmaster", len
 * bytes, not NUL-terminated) match? delimiters: NULL or "" for none, else the characters
 * that start an extension in the local part (the first one found counts). */
bool route_pattern_match(const struct route_pattern *p, const char *addr, size_t len,
                         const char *delimiters);

/* route_pattern_domain_served - can a pattern match any address of the served domains?
 * any_domain: every domain is served; domains: n lower-case names. ANY always can; EXACT
 * and DOMAIN need their domain served; SUBDOMAIN needs a served domain below its own. Used
 * by the configuration to refuse patterns that can never match. */
bool route_pattern_domain_served(const struct route_pattern *p, bool any_domain,
                                 char *const *domains, size_t n);

#endif
