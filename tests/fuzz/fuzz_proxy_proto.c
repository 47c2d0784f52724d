/* fuzz_proxy_proto.c - fuzz target: the first bytes of a connection through proxy_parse in the
 * three accept modes.
 *
 * Input layout: the bytes as received. When they start with "PROXY TCP4 " or "PROXY TCP6 ",
 * their first field is also tried as each address of a line built around it.
 * Invariants (abort on violation): parsing reads only data[0, len) (every input is an
 * allocation of its exact size); a refusal has a reason and the other results none; a result
 * other than DONE leaves the header cleared. DONE: length <= len and <= PROXY_HEADER_MAX, the
 * version the first byte names, a v1 header ends in CRLF within 107 bytes, a v2 header is 16
 * bytes plus its length field; a local header has no addresses, another two of one family;
 * exactly data[0, length) parses to the same header, and so does data with a byte more;
 * prefixes of it give NEED_MORE. NEED_MORE: len < PROXY_HEADER_MAX and prefixes give
 * NEED_MORE too. INVALID: more bytes after it keep it INVALID. ANY agrees with the mode of
 * the version the first byte names, and the other mode refuses. A field tried as an address
 * is accepted exactly when inet_pton accepts it (and the line fits in 107 bytes), and gives
 * the address inet_pton gives.
 *
 * Must not include libuv, curl or jansson. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "smtphook/proxy_proto.h"

#define ALL_PREFIXES 64 /* below this length every prefix is checked, above it a sample */
#define FIELD_MAX    64 /* longest first field tried as an address */

/* parse - proxy_parse on an exact-size copy of data[0, len), checking the reason and the
 * cleared header. */
static enum proxy_result parse(const uint8_t *data, size_t len, enum proxy_accept accept,
                               struct proxy_header *out)
{
    uint8_t *copy = malloc(len ? len : 1);
    FUZZ_CHECK(copy != NULL);
    if (len > 0)
        memcpy(copy, data, len);
    const char *why = "untouched";
    enum proxy_result r = proxy_parse(copy, len, accept, out, &why);
    free(copy);
    FUZZ_CHECK(r == PROXY_NEED_MORE || r == PROXY_DONE || r == PROXY_INVALID);
    if (r == PROXY_INVALID) {
        FUZZ_CHECK(why != NULL && why[0] != '\0');
    } else {
        FUZZ_CHECK(why == NULL);
    }
    if (r != PROXY_DONE) {
        static const struct proxy_header zero;
        FUZZ_CHECK(memcmp(out, &zero, sizeof(zero)) == 0);
    }
    return r;
}

/* same - two headers are the same, byte for byte (proxy_parse zeroes the padding). */
static bool same(const struct proxy_header *a, const struct proxy_header *b)
{
    return memcmp(a, b, sizeof(*a)) == 0;
}

/* check_family - a non-local address has the family its length says. */
static void check_family(const struct sockaddr_storage *ss, socklen_t len)
{
    if (ss->ss_family == AF_INET)
        FUZZ_CHECK(len == sizeof(struct sockaddr_in));
    else
        FUZZ_CHECK(ss->ss_family == AF_INET6 && len == sizeof(struct sockaddr_in6));
}

/* prefix_sample - should the prefix of k bytes of n be checked? */
static bool prefix_sample(size_t k, size_t n)
{
    return n <= ALL_PREFIXES || k < 32 || k + 32 > n || k == n / 2 || k % 509 == 0;
}

/* check_done - a DONE header keeps its promises. */
static void check_done(const uint8_t *data, size_t len, enum proxy_accept accept,
                       const struct proxy_header *h)
{
    FUZZ_CHECK(h->length >= 1 && h->length <= len && h->length <= PROXY_HEADER_MAX);
    if (h->version == 1) {
        FUZZ_CHECK(data[0] == 'P' && (accept & PROXY_ACCEPT_V1));
        FUZZ_CHECK(h->length <= PROXY_V1_MAX && h->length >= 15);
        FUZZ_CHECK(data[h->length - 2] == '\r' && data[h->length - 1] == '\n');
        FUZZ_CHECK(memchr(data, '\n', h->length - 1) == NULL);
    } else {
        FUZZ_CHECK(h->version == 2 && data[0] == '\r' && (accept & PROXY_ACCEPT_V2));
        FUZZ_CHECK(h->length >= PROXY_V2_FIXED);
        FUZZ_CHECK(memcmp(data, PROXY_V2_SIG, PROXY_V2_SIG_LEN) == 0);
        FUZZ_CHECK(h->length == PROXY_V2_FIXED + ((size_t)data[14] << 8 | data[15]));
    }
    if (h->local) {
        FUZZ_CHECK(h->src_len == 0 && h->dst_len == 0);
    } else {
        check_family(&h->src, h->src_len);
        check_family(&h->dst, h->dst_len);
        FUZZ_CHECK(h->src.ss_family == h->dst.ss_family);
    }
    /* Exactly the header, and the header with one byte more, give the same. */
    struct proxy_header again;
    FUZZ_CHECK(parse(data, h->length, accept, &again) == PROXY_DONE && same(h, &again));
    if (h->length < len) {
        FUZZ_CHECK(parse(data, h->length + 1, accept, &again) == PROXY_DONE && same(h, &again));
    }
    for (size_t k = 0; k < h->length; k++)
        if (prefix_sample(k, h->length))
            FUZZ_CHECK(parse(data, k, accept, &again) == PROXY_NEED_MORE);
}

/* check_extended - an INVALID input stays INVALID with bytes after it. */
static void check_extended(const uint8_t *data, size_t len, enum proxy_accept accept)
{
    static const uint8_t tails[][3] = {{'\r', '\n', 0}, {0, 0, 0}, {' ', '0', '\r'}};
    uint8_t *more = malloc(len + 3);
    FUZZ_CHECK(more != NULL);
    if (len > 0)
        memcpy(more, data, len);
    for (size_t t = 0; t < sizeof(tails) / sizeof(tails[0]); t++) {
        memcpy(more + len, tails[t], 3);
        struct proxy_header h;
        FUZZ_CHECK(parse(more, len + 3, accept, &h) == PROXY_INVALID);
    }
    free(more);
}

/* check_mode - one accept mode on the whole input. */
static enum proxy_result check_mode(const uint8_t *data, size_t len, enum proxy_accept accept,
                                    struct proxy_header *h)
{
    enum proxy_result r = parse(data, len, accept, h);
    struct proxy_header p;
    switch (r) {
    case PROXY_DONE:
        check_done(data, len, accept, h);
        break;
    case PROXY_NEED_MORE:
        FUZZ_CHECK(len < PROXY_HEADER_MAX);
        for (size_t k = 0; k < len; k++)
            if (prefix_sample(k, len))
                FUZZ_CHECK(parse(data, k, accept, &p) == PROXY_NEED_MORE);
        break;
    case PROXY_INVALID:
        FUZZ_CHECK(len >= 1);
        check_extended(data, len, accept);
        break;
    }
    return r;
}

/* check_field - "PROXY TCPx <field> <other> 1 2\r\n" and its mirror: accepted exactly when
 * inet_pton takes the field and the line fits, with inet_pton's address. */
static void check_field(const uint8_t *field, size_t n, bool six)
{
    char text[FIELD_MAX + 1];
    if (n > FIELD_MAX)
        return;
    memcpy(text, field, n);
    text[n] = '\0';
    uint8_t want_addr[16];
    bool ok =
        memchr(field, '\0', n) == NULL && inet_pton(six ? AF_INET6 : AF_INET, text, want_addr) == 1;
    const char *other = six ? "::1" : "1.2.3.4";
    for (int dst = 0; dst < 2; dst++) {
        uint8_t line[2 * FIELD_MAX];
        size_t o = 0;
        memcpy(line, six ? "PROXY TCP6 " : "PROXY TCP4 ", 11);
        o = 11;
        if (dst) {
            memcpy(line + o, other, strlen(other));
            o += strlen(other);
            line[o++] = ' ';
        }
        memcpy(line + o, field, n);
        o += n;
        if (!dst) {
            line[o++] = ' ';
            memcpy(line + o, other, strlen(other));
            o += strlen(other);
        }
        memcpy(line + o, " 1 2\r\n", 6);
        o += 6;
        struct proxy_header h;
        enum proxy_result r = check_mode(line, o, PROXY_ACCEPT_ANY, &h);
        FUZZ_CHECK((r == PROXY_DONE) == (ok && o <= PROXY_V1_MAX));
        if (r != PROXY_DONE)
            continue;
        const struct sockaddr_storage *ss = dst ? &h.dst : &h.src;
        if (six)
            FUZZ_CHECK(memcmp(&((const struct sockaddr_in6 *)ss)->sin6_addr, want_addr, 16) == 0);
        else
            FUZZ_CHECK(memcmp(&((const struct sockaddr_in *)ss)->sin_addr, want_addr, 4) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proxy_header any, v1, v2;
    enum proxy_result r_any = check_mode(data, size, PROXY_ACCEPT_ANY, &any);
    enum proxy_result r_v1 = check_mode(data, size, PROXY_ACCEPT_V1, &v1);
    enum proxy_result r_v2 = check_mode(data, size, PROXY_ACCEPT_V2, &v2);
    if (size == 0) {
        FUZZ_CHECK(r_any == PROXY_NEED_MORE && r_v1 == PROXY_NEED_MORE && r_v2 == PROXY_NEED_MORE);
    } else if (data[0] == 'P') {
        FUZZ_CHECK(r_any == r_v1 && same(&any, &v1) && r_v2 == PROXY_INVALID);
    } else if (data[0] == '\r') {
        FUZZ_CHECK(r_any == r_v2 && same(&any, &v2) && r_v1 == PROXY_INVALID);
    } else {
        FUZZ_CHECK(r_any == PROXY_INVALID && r_v1 == PROXY_INVALID && r_v2 == PROXY_INVALID);
    }

    if (size > 11 &&
        (memcmp(data, "PROXY TCP4 ", 11) == 0 || memcmp(data, "PROXY TCP6 ", 11) == 0)) {
        size_t n = 0;
        while (11 + n < size && data[11 + n] != ' ' && data[11 + n] != '\r')
            n++;
        check_field(data + 11, n, false);
        check_field(data + 11, n, true);
    }
    return 0;
}
