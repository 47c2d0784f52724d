/* test_proxy_proto.c - unit tests of proxy_proto.c: PROXY protocol v1 lines and v2 headers
 * (HAProxy's proxy-protocol.txt), the 107-byte and 4096-byte bounds, the accept modes, and
 * that a refusal comes at the first byte that proves it.
 * Golden tables: one row per input; every accepted row is also fed as each of its prefixes
 * and to the accept modes that refuse its version. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtphook/proxy_proto.h"

#include "golden.h"

#define SIG "\r\n\r\n\0\r\nQUIT\n"

struct row {
    const char *in;
    size_t len;
    enum proxy_result want; /* for the whole input: DONE or INVALID */
    size_t at;              /* DONE: the header's length; INVALID: the shortest prefix refused */
    int version;            /* DONE: 1 or 2 */
    bool local;             /* DONE: no addresses */
    const char *src;        /* DONE, !local: inet_ntop of the source, and its port */
    unsigned sport;
    const char *dst; /* DONE, !local: inet_ntop of the destination, and its port */
    unsigned dport;
};

/* A header with addresses, one without, and a refusal at the prefix of at bytes. */
#define OK(in, at, v, src, sport, dst, dport)                                                      \
    {                                                                                              \
        S(in), PROXY_DONE, at, v, false, src, sport, dst, dport                                    \
    }
#define LOCAL(in, at, v)                                                                           \
    {                                                                                              \
        S(in), PROXY_DONE, at, v, true, NULL, 0, NULL, 0                                           \
    }
#define BAD(in, at)                                                                                \
    {                                                                                              \
        S(in), PROXY_INVALID, at, 0, false, NULL, 0, NULL, 0                                       \
    }

static const struct row rows[] = {
    /* ---- v1 ---- */
    OK("PROXY TCP4 192.0.2.1 198.51.100.7 56324 25\r\n", 44, 1, "192.0.2.1", 56324, "198.51.100.7",
       25),
    OK("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n", 44, 1, "0.0.0.0", 0, "255.255.255.255",
       65535),
    OK("PROXY TCP6 2001:db8::1 2001:db8::2 1234 587\r\n", 45, 1, "2001:db8::1", 1234, "2001:db8::2",
       587),
    OK("PROXY TCP6 ::1 :: 1 2\r\n", 23, 1, "::1", 1, "::", 2),
    OK("PROXY TCP6 ::ffff:192.0.2.1 0:0:0:0:0:0:0:1 10 20\r\n", 51, 1, "::ffff:192.0.2.1", 10,
       "::1", 20),
    OK("PROXY TCP6 1:2:3:4:5:6:7:: 2001:DB8:0:0:0:0:0:FFFF 1 2\r\n", 56, 1, "1:2:3:4:5:6:7:0", 1,
       "2001:db8::ffff", 2),
    LOCAL("PROXY UNKNOWN\r\n", 15, 1),
    LOCAL("PROXY UNKNOWN ffff::1 ffff::1 1 2\r\n", 35, 1),
    LOCAL("PROXY UNKNOWN anything \x01\xff at all\r\n", 34, 1),
    /* Data after the header is the client's. */
    OK("PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\nEHLO client.example\r\n", 36, 1, "192.0.2.1", 1,
       "192.0.2.2", 2),
    OK("PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n\r\n\r\n\r\n\0\r\nQUIT\n", 36, 1, "192.0.2.1", 1,
       "192.0.2.2", 2),
    LOCAL("PROXY UNKNOWN\r\nPROXY UNKNOWN\r\n", 15, 1),
    /* 107 bytes exactly, with the longest address texts that fit. */
    OK("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 "
       "ffff:ffff:ffff:ffff:ffff:ffff:25.255.255.255 0 0\r\n",
       107, 1, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0,
       "ffff:ffff:ffff:ffff:ffff:ffff:19ff:ffff", 0),
    OK("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
       "65535 65535\r\n",
       104, 1, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535,
       "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535),

    /* Not a v1 line: refused at the first byte that differs. */
    BAD("EHLO client.example\r\n", 1),
    BAD("proxy TCP4 192.0.2.1 192.0.2.2 1 2\r\n", 1),
    BAD("PROXy TCP4 192.0.2.1 192.0.2.2 1 2\r\n", 5),
    BAD("PROXY  TCP4 192.0.2.1 192.0.2.2 1 2\r\n", 7),
    BAD("PROXY tcp4 192.0.2.1 192.0.2.2 1 2\r\n", 7),
    BAD("PROXY TCP5 192.0.2.1 192.0.2.2 1 2\r\n", 10),
    BAD("PROXY UDP4 192.0.2.1 192.0.2.2 1 2\r\n", 8),
    BAD("PROXY TCP4\r\n", 11),
    BAD("PROXY UNKNOWNX\r\n", 14),
    BAD("PROXY\r\n", 6),
    /* Bad addresses. */
    BAD("PROXY TCP4 1.2.3 192.0.2.2 1 2\r\n", 17),
    BAD("PROXY TCP4 256.1.1.1 192.0.2.2 1 2\r\n", 14),
    BAD("PROXY TCP4 1.2.3.4.5 192.0.2.2 1 2\r\n", 19),
    BAD("PROXY TCP4 01.2.3.4 192.0.2.2 1 2\r\n", 13),
    BAD("PROXY TCP4 1..2.3 192.0.2.2 1 2\r\n", 14),
    BAD("PROXY TCP4 ::1 192.0.2.2 1 2\r\n", 12),
    BAD("PROXY TCP4 192.0.2.1 2001:db8::1 1 2\r\n", 25),
    BAD("PROXY TCP4 0x1.2.3.4 192.0.2.2 1 2\r\n", 13),
    BAD("PROXY TCP6 192.0.2.1 ::1 1 2\r\n", 15),
    BAD("PROXY TCP6 :1 ::1 1 2\r\n", 13),
    BAD("PROXY TCP6 1: ::1 1 2\r\n", 14),
    BAD("PROXY TCP6 1::2::3 ::1 1 2\r\n", 17),
    BAD("PROXY TCP6 12345:: ::1 1 2\r\n", 16),
    BAD("PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n", 27),
    BAD("PROXY TCP6 1:2:3:4:5:6:7:8:: ::1 1 2\r\n", 27),
    BAD("PROXY TCP6 1:2:3:4:5:6:7 ::1 1 2\r\n", 25),
    BAD("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", 19),
    BAD("PROXY TCP6 ::g ::1 1 2\r\n", 14),
    /* Ports. */
    BAD("PROXY TCP4 192.0.2.1 192.0.2.2 65536 2\r\n", 36),
    BAD("PROXY TCP4 192.0.2.1 192.0.2.2 1 99999\r\n", 38),
    BAD("PROXY TCP4 192.0.2.1 192.0.2.2 01 2\r\n", 33),
    BAD("PROXY TCP4 192.0.2.1 192.0.2.2 +1 2\r\n", 32),
    BAD("PROXY TCP4 192.0.2.1 192.0.2.2 -1 2\r\n", 32),
    BAD("PROXY TCP4 192.0.2.1 192.0.2.2 1 2 3\r\n", 35),
    BAD("PROXY TCP4 192.0.2.1 192.0.2.2 1\r\n", 33),
    /* Spaces, CR and LF. */
    BAD("PROXY TCP4  192.0.2.1 192.0.2.2 1 2\r\n", 12),
    BAD("PROXY TCP4 192.0.2.1  192.0.2.2 1 2\r\n", 22),
    BAD("PROXY TCP4 192.0.2.1 192.0.2.2  1 2\r\n", 32),
    BAD("PROXY TCP4 192.0.2.1 192.0.2.2 1  2\r\n", 34),
    BAD("PROXY TCP4 192.0.2.1 192.0.2.2 1 2 \r\n", 35),
    BAD("PROXY TCP4 192.0.2.1 192.0.2.2 1 2\n", 35),
    BAD("PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\r\n", 36),
    BAD("PROXY TCP4 192.0.2.1 192.0.2.2 1 2\rX", 36),
    BAD("PROXY UNKNOWN\n", 14),
    BAD("PROXY UNKNOWN x\ny\r\n", 16),
    BAD("PROXY UNKNOWN x\rx\r\n", 17),
    BAD("PROXY TCP4 192.0.2.1\t192.0.2.2 1 2\r\n", 21),
    /* Too long: 108 bytes; and one that cannot end within 107, refused once that is sure. */
    BAD("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 "
        "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 0 0\r\n",
        102),
    BAD("PROXY UNKNOWN 456789012345678901234567890123456789012345678901234567890123456789012345678"
        "901234567890123456\r\n",
        106),

    /* ---- v2 ---- */
    OK(SIG "\x21\x11\x00\x0c"
           "\xc0\x00\x02\x01"
           "\xc6\x33\x64\x07"
           "\xdc\x04\x00\x19",
       28, 2, "192.0.2.1", 56324, "198.51.100.7", 25),
    OK(SIG "\x21\x21\x00\x24"
           "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01"
           "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x02"
           "\x04\xd2\x02\x4b",
       52, 2, "2001:db8::1", 1234, "2001:db8::2", 587),
    /* TLVs: ALPN, NOOP, an empty AUTHORITY, and one with the CRC32c of the header. */
    OK(SIG "\x21\x11\x00\x1c"
           "\x01\x02\x03\x04\x05\x06\x07\x08\x04\xd2\x00\x19"
           "\x01\x00\x04"
           "smtp"
           "\x04\x00\x03"
           "abc"
           "\x02\x00\x00",
       44, 2, "1.2.3.4", 1234, "5.6.7.8", 25),
    OK(SIG "\x21\x11\x00\x1a"
           "\x01\x02\x03\x04\x05\x06\x07\x08\x04\xd2\x00\x19"
           "\x01\x00\x04"
           "smtp"
           "\x03\x00\x04\xd1\xd7\xc4\x25",
       42, 2, "1.2.3.4", 1234, "5.6.7.8", 25),
    /* More than the addresses in the IPv6 block, and client data after the header. */
    OK(SIG "\x21\x21\x00\x27"
           "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01"
           "\0\0\0\0\0\0\0\0\0\0\xff\xff\xc0\x00\x02\x01"
           "\x00\x01\x00\x02"
           "\x04\x00\x00"
           "EHLO x\r\n",
       55, 2, "::1", 1, "::ffff:192.0.2.1", 2),
    LOCAL(SIG "\x20\x00\x00\x00", 16, 2),
    LOCAL(SIG "\x20\x00\x00\x00"
              "EHLO x\r\n",
          16, 2),
    LOCAL(SIG "\x20\x11\x00\x0c"
              "\x01\x02\x03\x04\x05\x06\x07\x08\x04\xd2\x00\x19",
          28, 2),
    /* LOCAL ignores its family and block: even UDP, or a block that is no TLV. */
    LOCAL(SIG "\x20\x12\x00\x02"
              "\xff\xff",
          18, 2),
    /* PROXY with UNSPEC: the real addresses are used, the block ignored. */
    LOCAL(SIG "\x21\x00\x00\x00", 16, 2),
    LOCAL(SIG "\x21\x00\x00\x01"
              "x",
          17, 2),

    BAD("\r\n\r\n\0\r\nQUIT\r", 12),
    BAD("\r\n\r\n\0\r\nquit\n\x21\x11\x00\x0c", 8),
    BAD("\r\r\n", 2),
    BAD(SIG "\x11\x11\x00\x0c", 13),
    BAD(SIG "\x31\x11\x00\x0c", 13),
    BAD(SIG "\x22\x11\x00\x0c", 13),
    BAD(SIG "\x2f\x11\x00\x0c", 13),
    BAD(SIG "\x21\x12\x00\x0c", 14),
    BAD(SIG "\x21\x22\x00\x24", 14),
    BAD(SIG "\x21\x31\x00\xd8", 14),
    BAD(SIG "\x21\x32\x00\xd8", 14),
    BAD(SIG "\x21\x10\x00\x0c", 14),
    BAD(SIG "\x21\x01\x00\x0c", 14),
    BAD(SIG "\x21\x13\x00\x0c", 14),
    BAD(SIG "\x21\x41\x00\x0c", 14),
    /* The length must hold the addresses. */
    BAD(SIG "\x21\x11\x00\x0b"
            "\x01\x02\x03\x04\x05\x06\x07\x08\x04\xd2\x00",
        16),
    BAD(SIG "\x21\x21\x00\x23", 16),
    BAD(SIG "\x21\x21\x00\x0c", 16),
    /* Truncated TLVs: no room for a TLV header, a value past the end (seen from the length's
     * high byte or only from both), a CRC32C of the wrong size, twice, or wrong. */
    BAD(SIG "\x21\x11\x00\x0e"
            "\x01\x02\x03\x04\x05\x06\x07\x08\x04\xd2\x00\x19"
            "\x04\x00",
        16),
    BAD(SIG "\x21\x11\x00\x10"
            "\x01\x02\x03\x04\x05\x06\x07\x08\x04\xd2\x00\x19"
            "\x04\x00\x02"
            "a",
        31),
    BAD(SIG "\x21\x11\x01\x0e"
            "\x01\x02\x03\x04\x05\x06\x07\x08\x04\xd2\x00\x19"
            "\x04\x01\x00",
        30),
    BAD(SIG "\x21\x11\x00\x12"
            "\x01\x02\x03\x04\x05\x06\x07\x08\x04\xd2\x00\x19"
            "\x04\x00\x01"
            "a"
            "\x04\x00",
        31),
    BAD(SIG "\x21\x11\x00\x14"
            "\x01\x02\x03\x04\x05\x06\x07\x08\x04\xd2\x00\x19"
            "\x03\x00\x05"
            "abcde",
        31),
    BAD(SIG "\x21\x11\x01\x14"
            "\x01\x02\x03\x04\x05\x06\x07\x08\x04\xd2\x00\x19"
            "\x03\x01\x00",
        30),
    BAD(SIG "\x21\x11\x00\x1a"
            "\x01\x02\x03\x04\x05\x06\x07\x08\x04\xd2\x00\x19"
            "\x03\x00\x04\0\0\0\0"
            "\x03\x00\x04\0\0\0\0",
        36),
    BAD(SIG "\x21\x11\x00\x1a"
            "\x01\x02\x03\x04\x05\x06\x07\x08\x04\xd2\x00\x19"
            "\x01\x00\x04"
            "smtp"
            "\x03\x00\x04\xd1\xd7\xc4\x26",
        42),
    BAD(SIG "\x21\x11\x00\x1a"
            "\x01\x02\x03\x04\x05\x06\x07\x09\x04\xd2\x00\x19"
            "\x01\x00\x04"
            "smtp"
            "\x03\x00\x04\xd1\xd7\xc4\x25",
        42),
    /* Longer than 4096 bytes: refused when the length is read, from its high byte if it can. */
    BAD(SIG "\x21\x11\x0f\xf1", 16),
    BAD(SIG "\x20\x00\x0f\xf1", 16),
    BAD(SIG "\x21\x11\x10\x00", 15),
    BAD(SIG "\x21\x11\xff\xff", 15),
};

/* modes - the three accept modes. */
static const enum proxy_accept modes[] = {PROXY_ACCEPT_V1, PROXY_ACCEPT_V2, PROXY_ACCEPT_ANY};

/* check_addr - ss holds the address text and port, as inet_ntop spells it. */
static void check_addr(const struct sockaddr_storage *ss, socklen_t len, const char *text,
                       unsigned port)
{
    char got[INET6_ADDRSTRLEN];
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        assert_int_equal(len, sizeof(*a));
        assert_non_null(inet_ntop(AF_INET, &a->sin_addr, got, sizeof(got)));
        assert_int_equal(ntohs(a->sin_port), port);
    } else {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        assert_int_equal(ss->ss_family, AF_INET6);
        assert_int_equal(len, sizeof(*a));
        assert_non_null(inet_ntop(AF_INET6, &a->sin6_addr, got, sizeof(got)));
        assert_int_equal(ntohs(a->sin6_port), port);
        assert_int_equal(a->sin6_scope_id, 0);
        assert_int_equal(a->sin6_flowinfo, 0);
    }
    assert_string_equal(got, text);
}

/* is_clear - a header that proxy_parse cleared. */
static bool is_clear(const struct proxy_header *h)
{
    static const struct proxy_header zero;
    return memcmp(h, &zero, sizeof(zero)) == 0;
}

/* parse_copy - proxy_parse on an exact-size copy of in[0, len) (so ASan sees any overread). */
static enum proxy_result parse_copy(const char *in, size_t len, enum proxy_accept accept,
                                    struct proxy_header *out, const char **why)
{
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len > 0)
        memcpy(copy, in, len);
    enum proxy_result r = proxy_parse(copy, len, accept, out, why);
    free(copy);
    return r;
}

/* show - a failing row. */
static void show(const struct row *c, size_t k, enum proxy_accept mode, enum proxy_result got,
                 const char *why)
{
    golden_show("input", c->in, c->len);
    print_message("  prefix %zu of %zu, accept %d: result %d, why: %s\n", k, c->len, (int)mode,
                  (int)got, why ? why : "(null)");
}

/* check_row - every prefix of a row in every accept mode. */
static void check_row(const struct row *c)
{
    int version = c->want == PROXY_DONE ? c->version : c->in[0] == 'P' ? 1 : 2;
    for (size_t m = 0; m < N(modes); m++) {
        bool allowed = ((unsigned)modes[m] & (unsigned)version) != 0;
        for (size_t k = 0; k <= c->len; k++) {
            struct proxy_header h;
            const char *why = "untouched";
            enum proxy_result got = parse_copy(c->in, k, modes[m], &h, &why);
            enum proxy_result want;
            if (k == 0)
                want = PROXY_NEED_MORE;
            else if (!allowed && (c->in[0] == 'P' || c->in[0] == '\r'))
                want = PROXY_INVALID;
            else if (k < c->at)
                want = PROXY_NEED_MORE;
            else
                want = c->want;
            if (got != want)
                show(c, k, modes[m], got, why);
            assert_int_equal(got, want);
            if (got == PROXY_INVALID) {
                assert_non_null(why);
                assert_true(why[0] != '\0');
            } else {
                assert_null(why);
            }
            if (got != PROXY_DONE) {
                assert_true(is_clear(&h));
                continue;
            }
            assert_int_equal(h.version, c->version);
            assert_int_equal(h.length, c->at);
            assert_int_equal(h.local, c->local);
            if (c->local) {
                assert_int_equal(h.src_len, 0);
                assert_int_equal(h.dst_len, 0);
                continue;
            }
            check_addr(&h.src, h.src_len, c->src, c->sport);
            check_addr(&h.dst, h.dst_len, c->dst, c->dport);
        }
    }
}

static void test_rows(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(rows); i++) {
        const struct row *c = &rows[i];
        if (c->at > c->len) {
            golden_show("input", c->in, c->len);
            print_message("  at %zu past the row's %zu bytes\n", c->at, c->len);
        }
        assert_true(c->at <= c->len);
        check_row(c);
    }
}

/* test_v1_limit - an UNKNOWN line of exactly 107 bytes, and of 108. */
static void test_v1_limit(void **state)
{
    (void)state;
    char line[PROXY_V1_MAX + 16];
    struct proxy_header h;
    const char *why;
    for (size_t total = 16; total <= PROXY_V1_MAX + 1; total++) {
        memcpy(line, "PROXY UNKNOWN ", 14);
        memset(line + 14, 'x', total - 16);
        memcpy(line + total - 2, "\r\nDATA", 6);
        enum proxy_result r = parse_copy(line, total + 4, PROXY_ACCEPT_ANY, &h, &why);
        if (total <= PROXY_V1_MAX) {
            assert_int_equal(r, PROXY_DONE);
            assert_int_equal(h.length, total);
            /* One byte short of the CRLF. */
            assert_int_equal(parse_copy(line, total - 1, PROXY_ACCEPT_V1, &h, &why),
                             PROXY_NEED_MORE);
        } else {
            assert_int_equal(r, PROXY_INVALID);
            assert_string_equal(why, "PROXY v1: no CRLF within 107 bytes");
            /* Refused at its 106th byte, an 'x' after which no CRLF fits. */
            assert_int_equal(parse_copy(line, PROXY_V1_MAX - 2, PROXY_ACCEPT_V1, &h, &why),
                             PROXY_NEED_MORE);
            assert_int_equal(parse_copy(line, PROXY_V1_MAX - 1, PROXY_ACCEPT_V1, &h, &why),
                             PROXY_INVALID);
        }
    }
    /* 107 bytes and more without a CR at all. */
    memset(line, 'x', sizeof(line));
    memcpy(line, "PROXY UNKNOWN ", 14);
    assert_int_equal(parse_copy(line, 105, PROXY_ACCEPT_ANY, &h, &why), PROXY_NEED_MORE);
    assert_int_equal(parse_copy(line, 106, PROXY_ACCEPT_ANY, &h, &why), PROXY_INVALID);
    assert_int_equal(parse_copy(line, sizeof(line), PROXY_ACCEPT_ANY, &h, &why), PROXY_INVALID);
}

/* test_v2_max - a header of exactly PROXY_HEADER_MAX bytes: addresses and one NOOP TLV. */
static void test_v2_max(void **state)
{
    (void)state;
    static uint8_t buf[PROXY_HEADER_MAX + 8];
    struct proxy_header h;
    const char *why;
    memcpy(buf, SIG "\x21\x11\x0f\xf0", 16);
    memcpy(buf + 16, "\x01\x02\x03\x04\x05\x06\x07\x08\x04\xd2\x00\x19", 12);
    size_t v = PROXY_V2_LEN_MAX - 12 - 3;
    buf[28] = 0x04;
    buf[29] = (uint8_t)(v >> 8);
    buf[30] = (uint8_t)(v & 0xff);
    memset(buf + 31, 0xAA, sizeof(buf) - 31);
    assert_int_equal(proxy_parse(buf, PROXY_HEADER_MAX - 1, PROXY_ACCEPT_ANY, &h, &why),
                     PROXY_NEED_MORE);
    assert_int_equal(proxy_parse(buf, PROXY_HEADER_MAX, PROXY_ACCEPT_V2, &h, &why), PROXY_DONE);
    assert_int_equal(h.length, PROXY_HEADER_MAX);
    assert_int_equal(proxy_parse(buf, sizeof(buf), PROXY_ACCEPT_ANY, &h, &why), PROXY_DONE);
    assert_int_equal(h.length, PROXY_HEADER_MAX);
    check_addr(&h.src, h.src_len, "1.2.3.4", 1234);
    /* One byte more is refused from the length alone. */
    buf[15] = 0xf1;
    buf[30] = (uint8_t)((v + 1) & 0xff);
    assert_int_equal(proxy_parse(buf, 16, PROXY_ACCEPT_ANY, &h, &why), PROXY_INVALID);
    assert_string_equal(why, "PROXY v2: longer than 4096 bytes");
}

/* test_accept - the first byte picks the version; an accept without either takes nothing. */
static void test_accept(void **state)
{
    (void)state;
    struct proxy_header h;
    const char *why = NULL;
    assert_int_equal(proxy_parse((const uint8_t *)"P", 1, PROXY_ACCEPT_V2, &h, &why),
                     PROXY_INVALID);
    assert_string_equal(why, "PROXY: a v1 header, only v2 is accepted");
    assert_int_equal(proxy_parse((const uint8_t *)"\r", 1, PROXY_ACCEPT_V1, &h, &why),
                     PROXY_INVALID);
    assert_string_equal(why, "PROXY: a v2 header, only v1 is accepted");
    assert_int_equal(proxy_parse((const uint8_t *)"E", 1, PROXY_ACCEPT_ANY, &h, &why),
                     PROXY_INVALID);
    assert_string_equal(why, "PROXY: no PROXY protocol header");
    assert_int_equal(proxy_parse(NULL, 0, (enum proxy_accept)0, &h, &why), PROXY_INVALID);
    assert_int_equal(
        proxy_parse((const uint8_t *)"PROXY UNKNOWN\r\n", 15, PROXY_ACCEPT_ANY, &h, NULL),
        PROXY_DONE);
    assert_int_equal(proxy_parse((const uint8_t *)"X", 1, PROXY_ACCEPT_ANY, &h, NULL),
                     PROXY_INVALID);
}

/* test_reasons - a few of the reasons, as the log shows them. */
static void test_reasons(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t len;
        const char *why;
    } cases[] = {
        {S("PROXY TCP4 256.1.1.1 1.1.1.1 1 2\r\n"), "PROXY v1: bad source address"},
        {S("PROXY TCP4 1.1.1.1 1.1.1 1 2\r\n"), "PROXY v1: bad destination address"},
        {S("PROXY TCP4 1.1.1.1 1.1.1.1 65536 2\r\n"), "PROXY v1: bad source port"},
        {S("PROXY TCP4 1.1.1.1 1.1.1.1 1 02\r\n"), "PROXY v1: bad destination port"},
        {S("PROXY TCP4 1.1.1.1 1.1.1.1 1 2\n"), "PROXY v1: bad destination port"},
        {S("PROXY UNKNOWN\n"), "PROXY v1: a bare LF"},
        {S("PROXY TCP4 1.1.1.1 1.1.1.1 1 2\r\r"), "PROXY v1: a CR not followed by LF"},
        {S(SIG "\x21\x12"), "PROXY v2: UDP, not TCP"},
        {S(SIG "\x21\x31"), "PROXY v2: a UNIX socket, not TCP"},
        {S(SIG "\x21\x11\x00\x02"), "PROXY v2: the length is too short for the addresses"},
        {S(SIG "\x21\x11\x00\x0d"), "PROXY v2: a truncated TLV"},
        {S(SIG "\x12"), "PROXY v2: the version is not 2"},
        {S(SIG "\x23"), "PROXY v2: the command is not LOCAL or PROXY"},
    };
    for (size_t i = 0; i < N(cases); i++) {
        struct proxy_header h;
        const char *why = NULL;
        enum proxy_result r = parse_copy(cases[i].in, cases[i].len, PROXY_ACCEPT_ANY, &h, &why);
        if (r != PROXY_INVALID || why == NULL || strcmp(why, cases[i].why) != 0)
            golden_show("input", cases[i].in, cases[i].len);
        assert_int_equal(r, PROXY_INVALID);
        assert_string_equal(why, cases[i].why);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows),    cmocka_unit_test(test_v1_limit),
        cmocka_unit_test(test_v2_max),  cmocka_unit_test(test_accept),
        cmocka_unit_test(test_reasons),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
