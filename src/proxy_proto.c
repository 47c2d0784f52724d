/* proxy_proto.c - the PROXY protocol header, versions 1 and 2 (HAProxy's proxy-protocol.txt),
 * read from the first bytes of a connection.
 *
 * Pure: no allocation, no I/O; inet_pton(3) converts the addresses of a version 1 line once
 * this file's own scanners, which also tell whether a partial address can still become one,
 * have accepted them. Must not include libuv, curl, OpenSSL or jansson. */
#include "smtphook/proxy_proto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define NOPE          SIZE_MAX /* a partial field that no bytes can complete */
#define ADDR_TEXT_MAX 45       /* INET6_ADDRSTRLEN - 1: the longest address text */
#define V1_PORT_MAX   65535u
#define V2_IPV4_LEN   12          /* two IPv4 addresses and two ports */
#define V2_IPV6_LEN   36          /* two IPv6 addresses and two ports */
#define TLV_HEAD      3           /* type, 16-bit length */
#define CRC32C_POLY   0x82F63B78u /* Castagnoli, reflected */
#define V1_MIN_V4     7           /* "0.0.0.0" */
#define V1_MIN_V6     2           /* "::" */

/* ---- results ---------------------------------------------------------------------------- */

/* invalid - set the reason and answer INVALID. */
static enum proxy_result invalid(const char **why, const char *reason)
{
    if (why != NULL)
        *why = reason;
    return PROXY_INVALID;
}

/* prefix_of - data[0, n) against the literal lit[0, litlen): 1 when lit is whole and
 * matches, 0 when data ends inside it but matches so far, -1 on a difference. */
static int prefix_of(const uint8_t *data, size_t n, const char *lit, size_t litlen)
{
    size_t k = n < litlen ? n : litlen;
    if (memcmp(data, lit, k) != 0)
        return -1;
    return n >= litlen ? 1 : 0;
}

/* ---- version 1: address text ---------------------------------------------------------- */

/* ip4_need - s[0, n) as the start of a dotted quad as inet_pton(AF_INET) reads it (four
 * decimal parts 0..255, no leading zeros): the fewest bytes still needed to make it one (0:
 * it is one), or NOPE when none can. */
static size_t ip4_need(const uint8_t *s, size_t n)
{
    unsigned parts = 0, val = 0;
    bool digit = false; /* the current part has a digit */
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c >= '0' && c <= '9') {
            if (digit && val == 0)
                return NOPE; /* a leading zero */
            val = val * 10 + (unsigned)(c - '0');
            if (val > 255)
                return NOPE;
            if (!digit) {
                if (++parts > 4)
                    return NOPE;
                digit = true;
            }
        } else if (c == '.' && digit && parts < 4) {
            val = 0;
            digit = false;
        } else {
            return NOPE;
        }
    }
    /* Complete the current part with "0" if it has no digit, then add ".0" per part. */
    return 2u * (4u - parts) - (digit ? 0u : 1u);
}

/* is_hex - an ASCII hex digit. */
static bool is_hex(uint8_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* ip6_need - s[0, n) as the start of IPv6 text as inet_pton(AF_INET6) reads it: groups of
 * 1 to 4 hex digits separated by ':', one "::" standing for at least one zero group, a
 * dotted quad for the last two groups; eight groups in all. The fewest bytes still needed
 * (0: it is an address), or NOPE when none can make it one. */
static size_t ip6_need(const uint8_t *s, size_t n)
{
    if (n == 0)
        return 2; /* "::" */
    size_t i = 0;
    if (s[0] == ':') {
        if (n == 1)
            return 1;
        if (s[1] != ':')
            return NOPE;
        i = 1; /* the second ':' is read below as the "::" */
    }
    unsigned words = 0; /* groups ended by a ':' */
    unsigned xd = 0;    /* hex digits in the current group */
    bool dc = false;    /* "::" seen */
    bool open = false;  /* the last byte is a ':' that ended a group: a group or ':' follows */
    size_t tok = i;     /* where the current group starts */
    for (; i < n; i++) {
        uint8_t c = s[i];
        if (is_hex(c)) {
            if (xd == 4)
                return NOPE;
            xd++;
            open = false;
        } else if (c == ':') {
            tok = i + 1;
            if (xd == 0) {
                if (dc)
                    return NOPE;
                dc = true;
                open = false;
            } else {
                if (words == 8)
                    return NOPE;
                words++;
                xd = 0;
                open = true;
            }
        } else if (c == '.') {
            /* The group read so far starts a dotted quad: the last 32 bits, after exactly
             * six groups, or at most five with "::" (which must stand for one or more). */
            if (dc ? words > 5 : words != 6)
                return NOPE;
            return ip4_need(s + tok, n - tok);
        } else {
            return NOPE;
        }
    }
    if (open) /* a digit ends it (or ':' makes "::" when there is none yet) */
        return (dc ? words + 1 <= 7 : words <= 7) ? 1 : NOPE;
    if (xd > 0) {
        unsigned w = words + 1;
        if (dc)
            return w <= 7 ? 0 : NOPE;
        return w == 8 ? 0 : w < 8 ? 2 : NOPE; /* ":0" or "::" */
    }
    /* Just after "::". */
    return words <= 7 ? 0 : NOPE;
}

/* port_need - s[0, n) as the start of a port: 1 when empty, 0 when it is one, NOPE when no
 * digits can make it one. Sets *port. */
static size_t port_need(const uint8_t *s, size_t n, unsigned *port)
{
    unsigned v = 0;
    *port = 0;
    if (n == 0)
        return 1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' || (i > 0 && s[0] == '0'))
            return NOPE;
        v = v * 10 + (unsigned)(s[i] - '0');
        if (v > V1_PORT_MAX)
            return NOPE;
    }
    *port = v;
    return 0;
}

/* ---- version 1: the line ----------------------------------------------------------------- */

/* v1_more - data ends after n bytes of a line that still needs at least need more: NEED_MORE
 * while that fits in PROXY_V1_MAX, else INVALID. */
static enum proxy_result v1_more(size_t n, size_t need, const char **why, const char *reason)
{
    if (need == NOPE)
        return invalid(why, reason);
    if (n + need > PROXY_V1_MAX)
        return invalid(why, "PROXY v1: no CRLF within 107 bytes");
    return PROXY_NEED_MORE;
}

/* v1_addr - store the address text s[0, n) (already accepted by ip4_need or ip6_need) and
 * the port into *ss. False when inet_pton refuses it. */
static bool v1_addr(bool six, const uint8_t *s, size_t n, unsigned port,
                    struct sockaddr_storage *ss, socklen_t *ss_len)
{
    char text[ADDR_TEXT_MAX + 1];
    if (n > ADDR_TEXT_MAX)
        return false;
    memcpy(text, s, n);
    text[n] = '\0';
    memset(ss, 0, sizeof(*ss));
    if (six) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        *ss_len = (socklen_t)sizeof(*a);
        return inet_pton(AF_INET6, text, &a->sin6_addr) == 1;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    *ss_len = (socklen_t)sizeof(*a);
    return inet_pton(AF_INET, text, &a->sin_addr) == 1;
}

/* v1_unknown - the rest of "PROXY UNKNOWN" from offset i of data[0, n). */
static enum proxy_result v1_unknown(const uint8_t *data, size_t n, size_t i,
                                    struct proxy_header *out, const char **why)
{
    if (i < n && data[i] != ' ' && data[i] != '\r' && data[i] != '\n')
        return invalid(why, "PROXY v1: UNKNOWN must be followed by a space or CRLF");
    for (; i < n; i++) {
        if (data[i] == '\n')
            return invalid(why, "PROXY v1: a bare LF");
        if (data[i] != '\r')
            continue;
        if (i + 1 == n)
            return v1_more(n, 1, why, NULL);
        if (data[i + 1] != '\n')
            return invalid(why, "PROXY v1: a CR not followed by LF");
        out->version = 1;
        out->local = true;
        out->length = i + 2;
        return PROXY_DONE;
    }
    return v1_more(n, 2, why, NULL);
}

/* v1_tcp - the fields after "PROXY TCP4 " or "PROXY TCP6 " from offset i of data[0, n). */
static enum proxy_result v1_tcp(const uint8_t *data, size_t n, size_t i, bool six,
                                struct proxy_header *out, const char **why)
{
    static const char *const bad[] = {
        "PROXY v1: bad source address", "PROXY v1: bad destination address",
        "PROXY v1: bad source port", "PROXY v1: bad destination port"};
    /* After field f, the fewest bytes that can still follow it: " <dst> 0 0\r\n" and on. */
    size_t empty_addr = six ? V1_MIN_V6 : V1_MIN_V4;
    size_t after[4] = {1 + empty_addr + 6, 6, 4, 2};
    const uint8_t *addr[2] = {NULL, NULL};
    size_t addr_len[2] = {0, 0};
    unsigned port[2] = {0, 0};
    for (int f = 0; f < 4; f++) {
        size_t start = i;
        while (i < n && data[i] != ' ' && data[i] != '\r')
            i++;
        const uint8_t *s = data + start;
        size_t len = i - start;
        size_t need;
        unsigned p = 0;
        if (f < 2)
            need = six ? ip6_need(s, len) : ip4_need(s, len);
        else
            need = port_need(s, len, &p);
        if (i == n) /* the data ends inside the field */
            return v1_more(n, need == NOPE ? NOPE : need + after[f], why, bad[f]);
        if (len == 0)
            return invalid(why, "PROXY v1: an empty field (two spaces, or CR too early)");
        if (need != 0)
            return invalid(why, bad[f]);
        if ((data[i] == '\r') != (f == 3))
            return invalid(why, f == 3 ? "PROXY v1: a space before the CRLF"
                                       : "PROXY v1: the line ends before the ports");
        if (f < 2) {
            addr[f] = s;
            addr_len[f] = len;
        } else {
            port[f - 2] = p;
        }
        i++;
    }
    /* data[i - 1] is the CR. */
    if (i == n)
        return v1_more(n, 1, why, NULL);
    if (data[i] != '\n')
        return invalid(why, "PROXY v1: a CR not followed by LF");
    if (!v1_addr(six, addr[0], addr_len[0], port[0], &out->src, &out->src_len))
        return invalid(why, bad[0]);
    if (!v1_addr(six, addr[1], addr_len[1], port[1], &out->dst, &out->dst_len))
        return invalid(why, bad[1]);
    out->version = 1;
    out->local = false;
    out->length = i + 1;
    return PROXY_DONE;
}

/* parse_v1 - "PROXY ..." */
static enum proxy_result parse_v1(const uint8_t *data, size_t len, struct proxy_header *out,
                                  const char **why)
{
    size_t n = len < PROXY_V1_MAX ? len : PROXY_V1_MAX;
    int r = prefix_of(data, n, "PROXY ", 6);
    if (r < 0)
        return invalid(why, "PROXY v1: the line does not start with \"PROXY \"");
    if (r == 0)
        return PROXY_NEED_MORE;
    const uint8_t *p = data + 6;
    size_t m = n - 6;
    int t4 = prefix_of(p, m, "TCP4 ", 5);
    int t6 = prefix_of(p, m, "TCP6 ", 5);
    int un = prefix_of(p, m, "UNKNOWN", 7);
    if (t4 > 0)
        return v1_tcp(data, n, 11, false, out, why);
    if (t6 > 0)
        return v1_tcp(data, n, 11, true, out, why);
    if (un > 0)
        return v1_unknown(data, n, 13, out, why);
    if (t4 == 0 || t6 == 0 || un == 0)
        return PROXY_NEED_MORE;
    return invalid(why, "PROXY v1: the protocol is not TCP4, TCP6 or UNKNOWN");
}

/* ---- version 2 -------------------------------------------------------------------------- */

/* crc32c - extend the CRC32c crc (0 to start) over p[0, n). */
static uint32_t crc32c(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (CRC32C_POLY & (0u - (crc & 1u)));
    }
    return ~crc;
}

/* be16 - a big-endian 16-bit number at p. */
static unsigned be16(const uint8_t *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

/* v2_tlvs - the TLVs in data[from, end) of a header with len bytes seen: as far as the bytes
 * go, each whole and within end, CRC32c at most once and of 4 bytes. NEED_MORE when they are
 * fine so far but data ends before end, DONE when all is checked (the CRC32c's offset in
 * *crc_at, 0 without one). */
static enum proxy_result v2_tlvs(const uint8_t *data, size_t len, size_t from, size_t end,
                                 size_t *crc_at, const char **why)
{
    *crc_at = 0;
    size_t pos = from;
    while (pos < end) {
        if (end - pos < TLV_HEAD)
            return invalid(why, "PROXY v2: a truncated TLV");
        if (pos >= len)
            return PROXY_NEED_MORE;
        bool crc = data[pos] == PROXY_TLV_CRC32C;
        if (crc && *crc_at != 0)
            return invalid(why, "PROXY v2: two CRC32C TLVs");
        if (pos + 1 >= len)
            return PROXY_NEED_MORE;
        /* The high byte alone can already prove the value too long. */
        if ((size_t)data[pos + 1] << 8 > end - pos - TLV_HEAD)
            return invalid(why, "PROXY v2: a truncated TLV");
        if (crc && data[pos + 1] != 0)
            return invalid(why, "PROXY v2: a CRC32C TLV not of 4 bytes");
        if (pos + 2 >= len)
            return PROXY_NEED_MORE;
        size_t vlen = be16(data + pos + 1);
        if (vlen > end - pos - TLV_HEAD)
            return invalid(why, "PROXY v2: a truncated TLV");
        if (crc && vlen != 4)
            return invalid(why, "PROXY v2: a CRC32C TLV not of 4 bytes");
        if (crc)
            *crc_at = pos + TLV_HEAD;
        pos += TLV_HEAD + vlen;
    }
    return len >= end ? PROXY_DONE : PROXY_NEED_MORE;
}

/* parse_v2 - the binary header. */
static enum proxy_result parse_v2(const uint8_t *data, size_t len, struct proxy_header *out,
                                  const char **why)
{
    if (prefix_of(data, len, PROXY_V2_SIG, PROXY_V2_SIG_LEN) < 0)
        return invalid(why, "PROXY v2: bad signature");
    if (len <= 12)
        return PROXY_NEED_MORE;
    uint8_t vc = data[12];
    if (vc >> 4 != 2)
        return invalid(why, "PROXY v2: the version is not 2");
    if ((vc & 0x0F) > 1)
        return invalid(why, "PROXY v2: the command is not LOCAL or PROXY");
    bool local = (vc & 0x0F) == 0;
    if (len <= 13)
        return PROXY_NEED_MORE;
    uint8_t fam = data[13];
    size_t addr_len = 0;
    if (!local) {
        switch (fam) {
        case 0x00:
            local = true; /* UNSPEC: the receiver uses the real addresses */
            break;
        case 0x11:
            addr_len = V2_IPV4_LEN;
            break;
        case 0x21:
            addr_len = V2_IPV6_LEN;
            break;
        case 0x12:
        case 0x22:
            return invalid(why, "PROXY v2: UDP, not TCP");
        case 0x31:
        case 0x32:
            return invalid(why, "PROXY v2: a UNIX socket, not TCP");
        default:
            return invalid(why, "PROXY v2: unknown address family or protocol");
        }
    }
    if (len <= 14)
        return PROXY_NEED_MORE;
    if ((size_t)data[14] << 8 > PROXY_V2_LEN_MAX)
        return invalid(why, "PROXY v2: longer than 4096 bytes");
    if (len <= 15)
        return PROXY_NEED_MORE;
    size_t blen = be16(data + 14);
    if (blen > PROXY_V2_LEN_MAX)
        return invalid(why, "PROXY v2: longer than 4096 bytes");
    if (blen < addr_len)
        return invalid(why, "PROXY v2: the length is too short for the addresses");
    size_t end = PROXY_V2_FIXED + blen;
    if (local) {
        if (len < end)
            return PROXY_NEED_MORE;
        out->version = 2;
        out->local = true;
        out->length = end;
        return PROXY_DONE;
    }
    size_t crc_at;
    enum proxy_result r = v2_tlvs(data, len, PROXY_V2_FIXED + addr_len, end, &crc_at, why);
    if (r != PROXY_DONE)
        return r;
    if (crc_at != 0) {
        static const uint8_t zero[4] = {0, 0, 0, 0};
        uint32_t crc = crc32c(0, data, crc_at);
        crc = crc32c(crc, zero, 4);
        crc = crc32c(crc, data + crc_at + 4, end - crc_at - 4);
        uint32_t want = (uint32_t)be16(data + crc_at) << 16 | be16(data + crc_at + 2);
        if (crc != want)
            return invalid(why, "PROXY v2: the CRC32C does not match");
    }
    const uint8_t *a = data + PROXY_V2_FIXED;
    if (fam == 0x11) {
        struct sockaddr_in *s = (struct sockaddr_in *)&out->src;
        struct sockaddr_in *d = (struct sockaddr_in *)&out->dst;
        s->sin_family = d->sin_family = AF_INET;
        memcpy(&s->sin_addr, a, 4);
        memcpy(&d->sin_addr, a + 4, 4);
        memcpy(&s->sin_port, a + 8, 2);
        memcpy(&d->sin_port, a + 10, 2);
        out->src_len = out->dst_len = (socklen_t)sizeof(struct sockaddr_in);
    } else {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&out->src;
        struct sockaddr_in6 *d = (struct sockaddr_in6 *)&out->dst;
        s->sin6_family = d->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, a, 16);
        memcpy(&d->sin6_addr, a + 16, 16);
        memcpy(&s->sin6_port, a + 32, 2);
        memcpy(&d->sin6_port, a + 34, 2);
        out->src_len = out->dst_len = (socklen_t)sizeof(struct sockaddr_in6);
    }
    out->version = 2;
    out->local = false;
    out->length = end;
    return PROXY_DONE;
}

/* ---- entry -------------------------------------------------------------------------------- */

enum proxy_result proxy_parse(const uint8_t *data, size_t len, enum proxy_accept accept,
                              struct proxy_header *out, const char **why)
{
    memset(out, 0, sizeof(*out));
    if (why != NULL)
        *why = NULL;
    bool v1 = ((unsigned)accept & PROXY_ACCEPT_V1) != 0;
    bool v2 = ((unsigned)accept & PROXY_ACCEPT_V2) != 0;
    enum proxy_result r;
    if (!v1 && !v2)
        return invalid(why, "PROXY: no version is accepted");
    if (len == 0)
        return PROXY_NEED_MORE;
    if (data[0] == 'P' && v1)
        r = parse_v1(data, len, out, why);
    else if (data[0] == '\r' && v2)
        r = parse_v2(data, len, out, why);
    else if (data[0] == 'P')
        return invalid(why, "PROXY: a v1 header, only v2 is accepted");
    else if (data[0] == '\r')
        return invalid(why, "PROXY: a v2 header, only v1 is accepted");
    else
        return invalid(why, "PROXY: no PROXY protocol header");
    if (r != PROXY_DONE)
        memset(out, 0, sizeof(*out));
    return r;
}
