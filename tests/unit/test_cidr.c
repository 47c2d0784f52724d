/* test_cidr.c - cidr.c: what parses as a network, and which addresses are in it (IPv4,
 * IPv6, IPv4-mapped IPv6 peers of a dual-stack socket), and the text cidr_format writes
 * back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <netinet/in.h>

#include "golden.h"
#include "smtphook/cidr.h"

struct parse_row {
    const char *text;
    size_t len;
    bool ok;
    int family;
    int prefix;
};

static const struct parse_row parse_rows[] = {
    {S("10.0.0.0/8"), true, AF_INET, 8},
    {S("192.0.2.7"), true, AF_INET, 32},
    {S("0.0.0.0/0"), true, AF_INET, 0},
    {S("127.0.0.1/32"), true, AF_INET, 32},
    {S("2001:db8::/32"), true, AF_INET6, 32},
    {S("::1"), true, AF_INET6, 128},
    {S("::/0"), true, AF_INET6, 0},
    {S("::ffff:192.0.2.0/120"), true, AF_INET6, 120},
    {S("10.0.0.1/8"), false, 0, 0},     /* host bits set */
    {S("10.0.0.0/33"), false, 0, 0},    /* past 32 */
    {S("2001:db8::/129"), false, 0, 0}, /* past 128 */
    {S("10.0.0.0/08"), false, 0, 0},    /* leading zero */
    {S("10.0.0.0/"), false, 0, 0},      /* no length */
    {S("10.0.0.0/-1"), false, 0, 0},    /* not digits */
    {S("10.0.0/8"), false, 0, 0},       /* not dotted-quad */
    {S("256.0.0.0/8"), false, 0, 0},    /* out of range */
    {S("example.com"), false, 0, 0},    /* a name */
    {S(""), false, 0, 0},               /* empty */
    {S("10.0.0.0/8/8"), false, 0, 0},   /* two slashes */
    {S(" 10.0.0.0/8"), false, 0, 0},    /* space */
    {S("10.0.0.0\0/8"), false, 0, 0},   /* NUL inside */
    {S("fe80::1%eth0"), false, 0, 0},   /* a zone */
};

static void test_parse(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(parse_rows); i++) {
        const struct parse_row *r = &parse_rows[i];
        struct cidr net;
        const char *why = NULL;
        bool ok = cidr_parse(r->text, r->len, &net, &why);
        if (ok != r->ok)
            golden_show("row", r->text, r->len);
        assert_int_equal(ok, r->ok);
        if (ok) {
            assert_int_equal(net.family, r->family);
            assert_int_equal(net.prefix, r->prefix);
        } else {
            assert_non_null(why);
        }
    }
}

/* addr - an address as a sockaddr (v4 or v6 by its text). */
static struct sockaddr_storage addr(const char *text)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
    } else {
        assert_int_equal(inet_pton(AF_INET6, text, &v6->sin6_addr), 1);
        v6->sin6_family = AF_INET6;
    }
    return ss;
}

struct contains_row {
    const char *net;
    const char *addr;
    bool in;
};

static const struct contains_row contains_rows[] = {
    {"10.0.0.0/8", "10.255.1.2", true},
    {"10.0.0.0/8", "11.0.0.1", false},
    {"192.0.2.0/25", "192.0.2.127", true},
    {"192.0.2.0/25", "192.0.2.128", false},
    {"192.0.2.7", "192.0.2.7", true},
    {"192.0.2.7", "192.0.2.6", false},
    {"0.0.0.0/0", "203.0.113.9", true},
    {"0.0.0.0/0", "2001:db8::1", false},     /* families differ */
    {"10.0.0.0/8", "::ffff:10.1.2.3", true}, /* a dual-stack socket's IPv4 peer */
    {"10.0.0.0/8", "::ffff:11.1.2.3", false},
    {"10.0.0.0/8", "::10.1.2.3", false}, /* compatible, not mapped */
    {"2001:db8::/32", "2001:db8:ffff::1", true},
    {"2001:db8::/32", "2001:db9::1", false},
    {"2001:db8::/33", "2001:db8:7fff::1", true},
    {"2001:db8::/33", "2001:db8:8000::1", false},
    {"::1", "::1", true},
    {"::1", "127.0.0.1", false},
    {"::/0", "::ffff:1.2.3.4", true},
};

static void test_contains(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(contains_rows); i++) {
        const struct contains_row *r = &contains_rows[i];
        struct cidr net;
        const char *why = NULL;
        assert_true(cidr_parse(r->net, strlen(r->net), &net, &why));
        struct sockaddr_storage a = addr(r->addr);
        if (cidr_contains(&net, (struct sockaddr *)&a) != r->in)
            print_message("  %s in %s: want %d\n", r->addr, r->net, r->in);
        assert_int_equal(cidr_contains(&net, (struct sockaddr *)&a), r->in);
    }
    struct cidr nets[2];
    const char *why = NULL;
    assert_true(cidr_parse(S("10.0.0.0/8"), &nets[0], &why));
    assert_true(cidr_parse(S("2001:db8::/32"), &nets[1], &why));
    struct sockaddr_storage a = addr("2001:db8::5");
    assert_true(cidr_contains_any(nets, 2, (struct sockaddr *)&a));
    a = addr("192.0.2.1");
    assert_false(cidr_contains_any(nets, 2, (struct sockaddr *)&a));
    assert_false(cidr_contains_any(nets, 0, (struct sockaddr *)&a));
}

/* cidr_format writes what cidr_parse read, with the prefix always spelled out. */
static void test_format(void **state)
{
    (void)state;
    static const char *const rows[][2] = {
        {"10.0.0.0/8", "10.0.0.0/8"},
        {"192.0.2.7", "192.0.2.7/32"},
        {"0.0.0.0/0", "0.0.0.0/0"},
        {"2001:db8::/32", "2001:db8::/32"},
        {"::1", "::1/128"},
        {"::ffff:192.0.2.0/120", "::ffff:192.0.2.0/120"},
        {"2001:DB8:0::/48", "2001:db8::/48"},
    };
    for (size_t i = 0; i < N(rows); i++) {
        struct cidr net, again;
        const char *why = NULL;
        char text[CIDR_TEXT_MAX];
        assert_true(cidr_parse(rows[i][0], strlen(rows[i][0]), &net, &why));
        assert_string_equal(cidr_format(&net, text, sizeof(text)), rows[i][1]);
        assert_true(cidr_parse(text, strlen(text), &again, &why));
        assert_memory_equal(&net, &again, sizeof(net));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_contains),
        cmocka_unit_test(test_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
