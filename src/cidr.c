/* cidr.c - CIDR networks and membership (see cidr.h). */
#include "smtphook/cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

/* cidr_prefix - the decimal prefix length of s (n bytes): digits, no leading zero, at most
 * max. -1 if not. */
static int cidr_prefix(const char *s, size_t n, int max)
{
    if (n == 0 || n > 3 || (n > 1 && s[0] == '0'))
        return -1;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v <= max ? v : -1;
}

/* cidr_parse - see cidr.h. */
bool cidr_parse(const char *text, size_t len, struct cidr *out, const char **why)
{
    memset(out, 0, sizeof(*out));
    if (len == 0 || len >= CIDR_TEXT_MAX) {
        *why = "must be an IP address or network, like \"10.0.0.0/8\" or \"2001:db8::/32\"";
        return false;
    }
    char addr[CIDR_TEXT_MAX];
    const char *slash = memchr(text, '/', len);
    size_t alen = slash != NULL ? (size_t)(slash - text) : len;
    memcpy(addr, text, alen);
    addr[alen] = '\0';
    if (memchr(addr, '\0', alen) != NULL) {
        *why = "must be an IP address or network, like \"10.0.0.0/8\" or \"2001:db8::/32\"";
        return false;
    }
    if (inet_pton(AF_INET, addr, out->addr) == 1) {
        out->family = AF_INET;
    } else if (inet_pton(AF_INET6, addr, out->addr) == 1) {
        out->family = AF_INET6;
    } else {
        *why = "is not an IPv4 or IPv6 address (before the \"/\")";
        return false;
    }
    int bits = out->family == AF_INET ? 32 : 128;
    int prefix = bits;
    if (slash != NULL && (prefix = cidr_prefix(slash + 1, len - alen - 1, bits)) < 0) {
        *why = out->family == AF_INET ? "prefix length must be 0 to 32"
                                      : "prefix length must be 0 to 128";
        return false;
    }
    out->prefix = (uint8_t)prefix;
    for (int b = prefix; b < bits; b++) {
        if ((out->addr[b / 8] >> (7 - b % 8)) & 1) {
            *why = "has bits set past its prefix length (write the network, like 10.0.0.0/8)";
            return false;
        }
    }
    return true;
}

/* cidr_match - do the first prefix bits of a and b agree? */
static bool cidr_match(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
    unsigned full = prefix / 8, rest = prefix % 8;
    if (memcmp(a, b, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[full] & mask) == (b[full] & mask);
}

/* cidr_contains - see cidr.h. */
bool cidr_contains(const struct cidr *net, const struct sockaddr *addr)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    const uint8_t *bytes;
    int family = addr->sa_family;
    if (family == AF_INET) {
        bytes = (const uint8_t *)&((const struct sockaddr_in *)(const void *)addr)->sin_addr;
    } else if (family == AF_INET6) {
        bytes = (const uint8_t *)&((const struct sockaddr_in6 *)(const void *)addr)->sin6_addr;
        if (net->family == AF_INET && memcmp(bytes, mapped, sizeof(mapped)) == 0) {
            bytes += sizeof(mapped);
            family = AF_INET;
        }
    } else {
        return false;
    }
    return family == net->family && cidr_match(bytes, net->addr, net->prefix);
}

/* cidr_contains_any - see cidr.h. */
bool cidr_contains_any(const struct cidr *nets, size_t n, const struct sockaddr *addr)
{
    for (size_t i = 0; i < n; i++) {
        if (cidr_contains(&nets[i], addr))
            return true;
    }
    return false;
}

/* cidr_format - see cidr.h. */
const char *cidr_format(const struct cidr *net, char *buf, size_t len)
{
    char addr[INET6_ADDRSTRLEN];
    if (inet_ntop(net->family, net->addr, addr, sizeof(addr)) == NULL)
        snprintf(addr, sizeof(addr), "?");
    snprintf(buf, len, "%s/%u", addr, (unsigned)net->prefix);
    return buf;
}
