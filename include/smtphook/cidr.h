/* cidr.h - networks written as CIDR prefixes ("10.0.0.0/8", "2001:db8::/32", "192.0.2.7"),
 * and whether an address is in one: the proxies a listener trusts, and later the networks
 * the rate limits spare. Pure.
 *
 * The text is an IPv4 address in dotted-quad form or an IPv6 address (inet_pton's forms),
 * then optionally "/" and a prefix length in decimal without leading zeros (0 to 32, or 0 to
 * 128); without one the network is that single address. Bits past the prefix must be zero
 * ("10.0.0.1/8" is refused: it is a typo for an address or for a network, not both). An
 * IPv4-mapped IPv6 address (::ffff:a.b.c.d), as a dual-stack socket reports an IPv4 peer,
 * is in the IPv4 networks that hold a.b.c.d. */
#ifndef SMTPHOOK_CIDR_H
#define SMTPHOOK_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define CIDR_TEXT_MAX 64u /* longest text cidr_parse reads */

struct cidr {
    uint8_t addr[16]; /* the network's address: 4 bytes for IPv4, 16 for IPv6 */
    uint8_t family;   /* AF_INET or AF_INET6 */
    uint8_t prefix;   /* leading bits that must match */
};

/* cidr_parse - text (len bytes, no NUL needed) into *out. true, or false with *why a static
 * reason. */
bool cidr_parse(const char *text, size_t len, struct cidr *out, const char **why);

/* cidr_contains - is the address in the network? */
bool cidr_contains(const struct cidr *net, const struct sockaddr *addr);

/* cidr_contains_any - is the address in one of n networks? */
bool cidr_contains_any(const struct cidr *nets, size_t n, const struct sockaddr *addr);

/* cidr_format - net as text cidr_parse reads back ("10.0.0.0/8", "2001:db8::/32"; the
 * prefix always written) into buf of len bytes (CIDR_TEXT_MAX is enough); returns buf. */
const char *cidr_format(const struct cidr *net, char *buf, size_t len);

#endif
