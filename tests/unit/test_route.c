/* test_route.c - unit tests of route.c: pattern syntax (RFC 5321 §4.1.2, §4.5.3.1, RFC 6531
 * §3.3), matching with and without recipient delimiters, case rules (RFC 5321 §2.4), the
 * domain-less postmaster (§4.5.1), and whether a pattern can match a served domain.
 * Golden tables: one row per input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtphook/error.h"
#include "smtphook/route.h"

#include "golden.h"

#define LONG_TEXT_BYTES 600 /* longest generated pattern or address */

#define EXACT     ROUTE_PATTERN_EXACT
#define DOMAIN    ROUTE_PATTERN_DOMAIN
#define SUBDOMAIN ROUTE_PATTERN_SUBDOMAIN
#define ANY       ROUTE_PATTERN_ANY

/* repeat - a NUL-terminated string of prefix, n copies of c and suffix, in buf. */
static char *repeat(char *buf, size_t size, const char *prefix, char c, size_t n,
                    const char *suffix)
{
    size_t p = strlen(prefix);
    size_t s = strlen(suffix);
    assert_true(p + n + s < size);
    memcpy(buf, prefix, p);
    memset(buf + p, c, n);
    memcpy(buf + p + n, suffix, s + 1);
    return buf;
}

/* ---- parsing ------------------------------------------------------------------------------ */

struct parse_case {
    const char *text;             /* the pattern as configured */
    bool ok;                      /* expected result */
    enum route_pattern_kind kind; /* expected kind when ok */
    const char *local;            /* expected local part (EXACT), else NULL */
    const char *domain;           /* expected domain (not ANY), else NULL */
};

static const struct parse_case parse_cases[] = {
    /* The four forms. */
    {"*", true, ANY, NULL, NULL},
    {"*@example.com", true, DOMAIN, NULL, "example.com"},
    {"*@*.example.com", true, SUBDOMAIN, NULL, "example.com"},
    {"sales@example.com", true, EXACT, "sales", "example.com"},
    /* Domains are lower-cased, local parts kept as written. */
    {"*@Example.COM", true, DOMAIN, NULL, "example.com"},
    {"*@*.EXAMPLE.Com", true, SUBDOMAIN, NULL, "example.com"},
    {"Sales@Example.Com", true, EXACT, "Sales", "example.com"},
    {"*@*.com", true, SUBDOMAIN, NULL, "com"},
    {"*@localhost", true, DOMAIN, NULL, "localhost"},
    {"a@b", true, EXACT, "a", "b"},
    {"a@xn--bcher-kva.example", true, EXACT, "a", "xn--bcher-kva.example"},
    {"a@a-b--c.d1", true, EXACT, "a", "a-b--c.d1"},
    {"a@1.2.3.4", true, EXACT, "a", "1.2.3.4"},
    /* Dot-strings (RFC 5321 §4.1.2). */
    {"first.last@example.com", true, EXACT, "first.last", "example.com"},
    {"a+b@example.com", true, EXACT, "a+b", "example.com"},
    {"!#$%&'+-/=?^_`{|}~@example.com", true, EXACT, "!#$%&'+-/=?^_`{|}~", "example.com"},
    /* Quoted strings, which may hold '@', spaces and quoted pairs. */
    {"\"john doe\"@example.com", true, EXACT, "\"john doe\"", "example.com"},
    {"\"a@b\"@example.com", true, EXACT, "\"a@b\"", "example.com"},
    {"\"a\\\"b\"@example.com", true, EXACT, "\"a\\\"b\"", "example.com"},
    {"\"a\\\\\"@example.com", true, EXACT, "\"a\\\\\"", "example.com"},
    {"\" \"@example.com", true, EXACT, "\" \"", "example.com"},
    {"\"\"@example.com", true, EXACT, "\"\"", "example.com"},
    {"\"a.\"@example.com", true, EXACT, "\"a.\"", "example.com"},
    /* UTF-8 local parts (RFC 6531 §3.3). */
    {"jos\xc3\xa9@example.com", true, EXACT, "jos\xc3\xa9", "example.com"},
    {"\xe7\x94\xa8\xe6\x88\xb7@example.com", true, EXACT, "\xe7\x94\xa8\xe6\x88\xb7",
     "example.com"},
    {"\"\xc3\xa9 x\"@example.com", true, EXACT, "\"\xc3\xa9 x\"", "example.com"},
    {"\xf0\x9f\x93\xa7@example.com", true, EXACT, "\xf0\x9f\x93\xa7", "example.com"},

    /* Empty parts and missing '@'. */
    {"", false, ANY, NULL, NULL},
    {"@", false, ANY, NULL, NULL},
    {"@example.com", false, ANY, NULL, NULL},
    {"a@", false, ANY, NULL, NULL},
    {"*@", false, ANY, NULL, NULL},
    {"a", false, ANY, NULL, NULL},
    {"example.com", false, ANY, NULL, NULL},
    {"postmaster", false, ANY, NULL, NULL},
    {"Postmaster", false, ANY, NULL, NULL},
    /* '*' outside the four forms. */
    {"**", false, ANY, NULL, NULL},
    {"*.example.com", false, ANY, NULL, NULL},
    {"*@*", false, ANY, NULL, NULL},
    {"*@*.", false, ANY, NULL, NULL},
    {"*@**.example.com", false, ANY, NULL, NULL},
    {"*@*.*.example.com", false, ANY, NULL, NULL},
    {"*@a*.example.com", false, ANY, NULL, NULL},
    {"*@example.*", false, ANY, NULL, NULL},
    {"*@*example.com", false, ANY, NULL, NULL},
    {"**@example.com", false, ANY, NULL, NULL},
    {"a*@example.com", false, ANY, NULL, NULL},
    {"*a@example.com", false, ANY, NULL, NULL},
    {"a.*@example.com", false, ANY, NULL, NULL},
    {"\"*\"@example.com", false, ANY, NULL, NULL},
    {"a@*.example.com", false, ANY, NULL, NULL},
    {"a@*", false, ANY, NULL, NULL},
    {"*@*@example.com", false, ANY, NULL, NULL},
    /* Blanks and control characters. */
    {" ", false, ANY, NULL, NULL},
    {" *", false, ANY, NULL, NULL},
    {"* ", false, ANY, NULL, NULL},
    {" a@example.com", false, ANY, NULL, NULL},
    {"a@example.com ", false, ANY, NULL, NULL},
    {"a @example.com", false, ANY, NULL, NULL},
    {"a@ example.com", false, ANY, NULL, NULL},
    {"a@exa mple.com", false, ANY, NULL, NULL},
    {"* @example.com", false, ANY, NULL, NULL},
    {"a\t@example.com", false, ANY, NULL, NULL},
    {"a@example.com\n", false, ANY, NULL, NULL},
    {"a@example.com\r\n", false, ANY, NULL, NULL},
    {"*\n", false, ANY, NULL, NULL},
    {"\x01@example.com", false, ANY, NULL, NULL},
    {"a\x7f@example.com", false, ANY, NULL, NULL},
    {"\"a\tb\"@example.com", false, ANY, NULL, NULL},
    {"\"a\x01\"@example.com", false, ANY, NULL, NULL},
    /* Domains that are not domain names. */
    {"a@example.com.", false, ANY, NULL, NULL},
    {"a@.example.com", false, ANY, NULL, NULL},
    {"a@example..com", false, ANY, NULL, NULL},
    {"a@-example.com", false, ANY, NULL, NULL},
    {"a@example-.com", false, ANY, NULL, NULL},
    {"a@ex_ample.com", false, ANY, NULL, NULL},
    {"a@exa%mple.com", false, ANY, NULL, NULL},
    {"a@[192.0.2.1]", false, ANY, NULL, NULL},
    {"a@[IPv6:::1]", false, ANY, NULL, NULL},
    {"a@ex\xc3\xa4mple.com", false, ANY, NULL, NULL},
    {"*@*.-example.com", false, ANY, NULL, NULL},
    {"*@*..example.com", false, ANY, NULL, NULL},
    {"a@b@example.com", false, ANY, NULL, NULL},
    /* Local parts that are neither dot-strings nor quoted strings. */
    {".a@example.com", false, ANY, NULL, NULL},
    {"a.@example.com", false, ANY, NULL, NULL},
    {"a..b@example.com", false, ANY, NULL, NULL},
    {"a(b)@example.com", false, ANY, NULL, NULL},
    {"a,b@example.com", false, ANY, NULL, NULL},
    {"a;b@example.com", false, ANY, NULL, NULL},
    {"a<b@example.com", false, ANY, NULL, NULL},
    {"a\\b@example.com", false, ANY, NULL, NULL},
    {"a\"b@example.com", false, ANY, NULL, NULL},
    {"\"unclosed@example.com", false, ANY, NULL, NULL},
    {"\"a\"b@example.com", false, ANY, NULL, NULL},
    {"\"a\\\"@example.com", false, ANY, NULL, NULL},
    {"\"a\"\"b\"@example.com", false, ANY, NULL, NULL},
    {"\"\\\xc3\xa9\"@example.com", false, ANY, NULL, NULL},
    /* Bad UTF-8 (RFC 3629) and C1 controls. */
    {"\xc3@example.com", false, ANY, NULL, NULL},
    {"\xc3(@example.com", false, ANY, NULL, NULL},
    {"\xc0\xaf@example.com", false, ANY, NULL, NULL},
    {"\xed\xa0\x80@example.com", false, ANY, NULL, NULL},
    {"\xf4\x90\x80\x80@example.com", false, ANY, NULL, NULL},
    {"\xc2\x85@example.com", false, ANY, NULL, NULL},
    {"\xff@example.com", false, ANY, NULL, NULL},
};

static void test_parse(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(parse_cases); i++) {
        const struct parse_case *c = &parse_cases[i];
        struct route_pattern p;
        memset(&p, 0xA5, sizeof(p));
        const char *why = "untouched";
        int rc = route_pattern_parse(c->text, &p, &why);
        if ((rc == 0) != c->ok) {
            golden_show("pattern", c->text, strlen(c->text));
            print_message("  rc %d, why: %s\n", rc, why ? why : "(null)");
        }
        if (!c->ok) {
            assert_int_equal(rc, SH_EINVAL);
            assert_non_null(why);
            assert_true(why[0] != '\0');
            assert_null(p.local);
            assert_null(p.domain);
            /* A refused pattern fails closed: it matches nothing and is never served. */
            assert_false(route_pattern_match(&p, S("a@example.com"), NULL));
            assert_false(route_pattern_match(&p, S("postmaster"), NULL));
            assert_false(route_pattern_domain_served(&p, false, NULL, 0));
            route_pattern_free(&p); /* safe on a refused pattern */
            continue;
        }
        assert_int_equal(rc, 0);
        assert_null(why);
        assert_int_equal(p.kind, c->kind);
        if (c->local == NULL)
            assert_null(p.local);
        else
            assert_string_equal(p.local, c->local);
        if (c->domain == NULL)
            assert_null(p.domain);
        else
            assert_string_equal(p.domain, c->domain);
        assert_int_equal(p.local_len, c->local != NULL ? strlen(c->local) : 0);
        assert_int_equal(p.domain_len, c->domain != NULL ? strlen(c->domain) : 0);
        route_pattern_free(&p);
        assert_null(p.local);
        assert_null(p.domain);
        route_pattern_free(&p); /* twice is harmless */
    }
}

struct why_case {
    const char *text; /* a refused pattern */
    const char *why;  /* the expected reason */
};

static const struct why_case why_cases[] = {
    {"", "the pattern is empty"},
    {"postmaster", "a pattern is local@domain, *@domain, *@*.domain or *"},
    {" *", "the pattern contains a space"},
    {"a@b\tc", "the pattern contains a control character"},
    {"\"a\nb\"@example.com", "the pattern contains a control character"},
    {"\"abc@example.com", "the quoted local part is not closed"},
    {"a@*.example.com", "a subdomain pattern is *@*.domain: the local part must be '*'"},
    {"a*@example.com", "'*' may only be the whole local part (*@domain) or the whole pattern (*)"},
    {"*@*", "'*' may only be the whole first label of the domain (*@*.domain)"},
    {"@example.com", "the local part is empty"},
    {"a@", "the domain is empty"},
    {"a..b@example.com",
     "the local part is not a dot-string or a quoted string (RFC 5321 section 4.1.2)"},
    {"\xc3@example.com", "the local part contains a control character or is not valid UTF-8"},
    {"a@ex_ample.com", "the domain is not a domain name (ASCII letters, digits, inner hyphens)"},
    {"a@example.com.", "the domain is not a domain name (empty label or a label ending in '-')"},
};

static void test_why(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(why_cases); i++) {
        struct route_pattern p;
        const char *why = NULL;
        assert_int_equal(route_pattern_parse(why_cases[i].text, &p, &why), SH_EINVAL);
        assert_non_null(why);
        assert_string_equal(why, why_cases[i].why);
    }
    /* NULL text, and a NULL why, are allowed. */
    struct route_pattern p;
    const char *why = NULL;
    assert_int_equal(route_pattern_parse(NULL, &p, &why), SH_EINVAL);
    assert_non_null(why);
    assert_int_equal(route_pattern_parse("a..b@example.com", &p, NULL), SH_EINVAL);
    assert_int_equal(route_pattern_parse("a@example.com", &p, NULL), 0);
    route_pattern_free(&p);
    route_pattern_free(NULL);
}

/* RFC 5321 §4.5.3.1.1 (64-byte local part), RFC 1035 §2.3.4 (63-byte label) and
 * §4.5.3.1.2 (255-byte domain; a subdomain pattern leaves room for "x."). */
static void test_lengths(void **state)
{
    (void)state;
    char text[LONG_TEXT_BYTES];
    struct route_pattern p;
    const char *why;

    assert_int_equal(
        route_pattern_parse(repeat(text, sizeof(text), "", 'a', 64, "@example.com"), &p, &why), 0);
    assert_int_equal(strlen(p.local), 64);
    route_pattern_free(&p);
    assert_int_equal(
        route_pattern_parse(repeat(text, sizeof(text), "", 'a', 65, "@example.com"), &p, &why),
        SH_EINVAL);
    assert_string_equal(why, "the local part is longer than 64 bytes (RFC 5321 section 4.5.3.1.1)");

    assert_int_equal(
        route_pattern_parse(repeat(text, sizeof(text), "a@", 'b', 63, ".com"), &p, &why), 0);
    route_pattern_free(&p);
    assert_int_equal(
        route_pattern_parse(repeat(text, sizeof(text), "a@", 'b', 64, ".com"), &p, &why),
        SH_EINVAL);
    assert_string_equal(why, "a label of the domain is longer than 63 bytes");

    /* 255 bytes of domain: four labels of 63 and three dots. */
    char dom[300];
    char label[64];
    memset(label, 'x', 63);
    label[63] = '\0';
    snprintf(dom, sizeof(dom), "%s.%s.%s.%s", label, label, label, label);
    assert_int_equal(strlen(dom), 255);
    snprintf(text, sizeof(text), "*@%s", dom);
    assert_int_equal(route_pattern_parse(text, &p, &why), 0);
    route_pattern_free(&p);
    snprintf(text, sizeof(text), "*@a%s", dom);
    assert_int_equal(route_pattern_parse(text, &p, &why), SH_EINVAL);
    assert_string_equal(why, "the domain is too long for an address (255 bytes, RFC 5321 "
                             "section 4.5.3.1.2)");
    /* Below a 255-byte domain no subdomain fits; below a 253-byte one "x." does. */
    snprintf(text, sizeof(text), "*@*.%s", dom);
    assert_int_equal(route_pattern_parse(text, &p, &why), SH_EINVAL);
    snprintf(text, sizeof(text), "*@*.%s", dom + 2);
    assert_int_equal(route_pattern_parse(text, &p, &why), 0);
    assert_int_equal(strlen(p.domain), 253);
    route_pattern_free(&p);
}

/* ---- matching ----------------------------------------------------------------------------- */

struct match_case {
    const char *pattern;    /* the pattern text */
    const char *addr;       /* the recipient address (may contain NUL) */
    size_t len;             /* its length */
    const char *delimiters; /* the recipient delimiter set, or NULL */
    bool want;              /* expected result */
};

static const struct match_case match_cases[] = {
    /* "*" matches everything, the domain-less postmaster too (RFC 5321 §4.5.1). */
    {"*", S("a@example.com"), NULL, true},
    {"*", S("postmaster"), NULL, true},
    {"*", S("Postmaster"), "+", true},
    {"*", S("\"x\"@[192.0.2.1]"), NULL, true},

    /* *@domain: the domain without case, nothing above or below it. */
    {"*@example.com", S("a@example.com"), NULL, true},
    {"*@example.com", S("A@EXAMPLE.COM"), NULL, true},
    {"*@example.com", S("a@Example.Com"), NULL, true},
    {"*@EXAMPLE.COM", S("a@example.com"), NULL, true},
    {"*@example.com", S("a+tag@example.com"), "+", true},
    {"*@example.com", S("a@x.example.com"), NULL, false},
    {"*@example.com", S("a@badexample.com"), NULL, false},
    {"*@example.com", S("a@example.co"), NULL, false},
    {"*@example.com", S("a@example.comm"), NULL, false},
    {"*@example.com", S("a@example.com.evil"), NULL, false},
    {"*@example.com", S("a@example.com\0"), NULL, false},
    {"*@example.com", S("a@example.com "), NULL, false},
    {"*@example.com", S("postmaster"), NULL, false},
    {"*@example.com", S("example.com"), NULL, false},
    {"*@example.com", S(""), NULL, false},
    {"*@example.com", S("a@[192.0.2.1]"), NULL, false},
    /* The '@' is the one after a quoted local part, which may contain '@' itself. */
    {"*@example.com", S("\"a@b\"@example.com"), NULL, true},
    {"*@example.com", S("\"x@evil.com\"@example.com"), NULL, true},
    {"*@evil.com", S("\"x@evil.com\"@example.com"), NULL, false},
    {"*@example.com", S("\"x@example.com\"@evil.com"), NULL, false},
    {"*@example.com", S("\"a\\\"@example.com\"@evil.com"), NULL, false},
    {"*@example.com", S("\"unclosed@example.com"), NULL, false},
    {"*@example.com", S("\"a\"b@example.com"), NULL, false},

    /* *@*.domain: any subdomain, not the domain itself. */
    {"*@*.example.com", S("a@x.example.com"), NULL, true},
    {"*@*.example.com", S("a@y.x.example.com"), NULL, true},
    {"*@*.example.com", S("a@X.EXAMPLE.COM"), NULL, true},
    {"*@*.example.com", S("a@example.com"), NULL, false},
    {"*@*.example.com", S("a@badexample.com"), NULL, false},
    {"*@*.example.com", S("a@xexample.com"), NULL, false},
    {"*@*.example.com", S("a@.example.com"), NULL, false},
    {"*@*.example.com", S("a@x.example.com.evil"), NULL, false},
    {"*@*.example.com", S("a@x.example.co"), NULL, false},
    {"*@*.example.com", S("x.example.com"), NULL, false},
    {"*@*.example.com", S("postmaster"), NULL, false},
    {"*@*.com", S("a@example.com"), NULL, true},
    {"*@*.com", S("a@com"), NULL, false},

    /* local@domain: local part without ASCII case, UTF-8 byte for byte. */
    {"sales@example.com", S("sales@example.com"), NULL, true},
    {"sales@example.com", S("SALES@EXAMPLE.COM"), NULL, true},
    {"Sales@example.com", S("sALES@example.com"), NULL, true},
    {"sales@example.com", S("sales@x.example.com"), NULL, false},
    {"sales@example.com", S("sale@example.com"), NULL, false},
    {"sales@example.com", S("saless@example.com"), NULL, false},
    {"sales@example.com", S("sales@example.org"), NULL, false},
    {"sales@example.com", S("sales"), NULL, false},
    {"sales@example.com", S("sales@"), NULL, false},
    {"sales@example.com", S("@example.com"), NULL, false},
    {"sales@example.com", S("sales@example.com\0"), NULL, false},
    {"sales@example.com", S("sales\0@example.com"), NULL, false},
    {"sales@example.com", S("\"sales\"@example.com"), NULL, false},
    {"jos\xc3\xa9@example.com", S("jos\xc3\xa9@example.com"), NULL, true},
    {"jos\xc3\xa9@example.com", S("JOS\xc3\xa9@Example.com"), NULL, true},
    {"jos\xc3\xa9@example.com", S("jos\xc3\x89@example.com"), NULL, false},
    {"jos\xc3\xa9@example.com", S("jose@example.com"), NULL, false},
    {"\"john doe\"@example.com", S("\"John Doe\"@example.com"), NULL, true},
    {"\"john doe\"@example.com", S("\"john  doe\"@example.com"), NULL, false},
    {"\"a@b\"@example.com", S("\"a@b\"@example.com"), NULL, true},
    {"postmaster@example.com", S("Postmaster@example.com"), NULL, true},
    {"postmaster@example.com", S("postmaster"), NULL, false},
    {"postmaster@example.com", S("Postmaster"), "+", false},

    /* Recipient delimiters: as it is first, then without the extension. */
    {"sales@example.com", S("sales+tag@example.com"), NULL, false},
    {"sales@example.com", S("sales+tag@example.com"), "", false},
    {"sales@example.com", S("sales+tag@example.com"), "+", true},
    {"sales@example.com", S("Sales+Tag@Example.com"), "+", true},
    {"sales@example.com", S("sales+tag@example.com"), "+-", true},
    {"sales@example.com", S("sales+tag@example.com"), "-", false},
    {"sales@example.com", S("sales-tag@example.com"), "+-", true},
    {"sales@example.com", S("sales-tag@example.com"), "-+", true},
    {"sales@example.com", S("sales-tag@example.com"), "+", false},
    {"sales@example.com", S("sales+@example.com"), "+", true},
    {"sales@example.com", S("sales++@example.com"), "+", true},
    {"sales@example.com", S("sales+a+b@example.com"), "+", true},
    {"sales@example.com", S("sales-a+b@example.com"), "+-", true},
    {"sales@example.com", S("sales@example.com"), "+", true},
    {"sales@example.com", S("+sales@example.com"), "+", false},
    {"sales@example.com", S("sale+s@example.com"), "+", false},
    {"sales@example.com", S("sales+tag@example.org"), "+", false},
    {"sales@example.com", S("sales+tag@x.example.com"), "+", false},
    {"sales@example.com", S("sales+tag"), "+", false},
    {"sales@example.com", S("sales.tag@example.com"), ".", true},
    {"sales@example.com", S("sales@example.com"), "@", true},
    {"sales@example.com", S("salesXtag@example.com"), "X", true},
    {"sales@example.com", S("salesxtag@example.com"), "X", false},
    {"a+b@example.com", S("a+b@example.com"), "+", true},
    {"a+b@example.com", S("A+B@example.com"), "+", true},
    {"a+b@example.com", S("a+b+c@example.com"), "+", false},
    {"a+b@example.com", S("a@example.com"), "+", false},
    {"a@example.com", S("a+b@example.com"), "+", true},
    /* A quoted local part keeps its extension. */
    {"a@example.com", S("\"a+b\"@example.com"), "+", false},
    {"\"a+b\"@example.com", S("\"a+b\"@example.com"), "+", true},
    {"\"a\"@example.com", S("\"a+b\"@example.com"), "+", false},
    {"jos\xc3\xa9@example.com", S("jos\xc3\xa9+x@example.com"), "+", true},
};

static void test_match(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(match_cases); i++) {
        const struct match_case *c = &match_cases[i];
        struct route_pattern p;
        const char *why = NULL;
        int rc = route_pattern_parse(c->pattern, &p, &why);
        if (rc != 0)
            print_message("  pattern \"%s\": %s\n", c->pattern, why);
        assert_int_equal(rc, 0);

        /* The address in an allocation of its exact size. */
        char *addr = malloc(c->len ? c->len : 1);
        assert_non_null(addr);
        memcpy(addr, c->addr, c->len);
        bool got = route_pattern_match(&p, addr, c->len, c->delimiters);
        if (got != c->want) {
            print_message("  pattern \"%s\", delimiters \"%s\"\n", c->pattern,
                          c->delimiters ? c->delimiters : "(null)");
            golden_show("address", c->addr, c->len);
        }
        assert_int_equal(got, c->want);
        /* Split once, as config_route_for does for all its patterns: the same answer. */
        struct route_address a;
        route_address_split(addr, c->len, c->delimiters, &a);
        assert_int_equal(route_address_match(&p, &a), c->want);
        free(addr);
        route_pattern_free(&p);
    }
}

/* The address is not NUL-terminated: len is the end, whatever follows it. */
static void test_match_len(void **state)
{
    (void)state;
    static const char buf[] = "sales+tag@example.comXYZ@evil.com";
    struct route_pattern exact, domain, sub;
    assert_int_equal(route_pattern_parse("sales@example.com", &exact, NULL), 0);
    assert_int_equal(route_pattern_parse("*@example.com", &domain, NULL), 0);
    assert_int_equal(route_pattern_parse("*@*.com", &sub, NULL), 0);
    size_t full = strlen("sales+tag@example.com");
    assert_true(route_pattern_match(&exact, buf, full, "+"));
    assert_true(route_pattern_match(&domain, buf, full, NULL));
    assert_true(route_pattern_match(&sub, buf, full, NULL));
    assert_false(route_pattern_match(&exact, buf, full - 1, "+"));
    assert_false(route_pattern_match(&domain, buf, full - 1, NULL));
    assert_false(route_pattern_match(&domain, buf, full + 1, NULL));
    assert_false(route_pattern_match(&exact, buf, 9, "+")); /* "sales+tag" */
    assert_false(route_pattern_match(&domain, buf, 0, NULL));
    assert_false(route_pattern_match(&exact, buf, 0, "+"));
    assert_false(route_pattern_match(&sub, buf, 0, NULL));
    route_pattern_free(&exact);
    route_pattern_free(&domain);
    route_pattern_free(&sub);
}

/* Every accepted pattern matches what it names: its own text for an exact pattern (and
 * with an extension when delimiters apply), "x@domain" for a domain pattern, "x@a.domain"
 * for a subdomain pattern, and never an address without '@'. */
static void test_match_own(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(parse_cases); i++) {
        const struct parse_case *c = &parse_cases[i];
        if (!c->ok)
            continue;
        struct route_pattern p;
        assert_int_equal(route_pattern_parse(c->text, &p, NULL), 0);
        char addr[LONG_TEXT_BYTES];
        int n;
        switch (p.kind) {
        case ROUTE_PATTERN_EXACT:
            assert_true(route_pattern_match(&p, c->text, strlen(c->text), NULL));
            if (p.local[0] != '"') {
                n = snprintf(addr, sizeof(addr), "%s+ext@%s", p.local, p.domain);
                assert_true(route_pattern_match(&p, addr, (size_t)n, "+") ||
                            strchr(p.local, '+') != NULL);
            }
            break;
        case ROUTE_PATTERN_DOMAIN:
            n = snprintf(addr, sizeof(addr), "x@%s", p.domain);
            assert_true(route_pattern_match(&p, addr, (size_t)n, NULL));
            break;
        case ROUTE_PATTERN_SUBDOMAIN:
            n = snprintf(addr, sizeof(addr), "x@a.%s", p.domain);
            assert_true(route_pattern_match(&p, addr, (size_t)n, NULL));
            n = snprintf(addr, sizeof(addr), "x@%s", p.domain);
            assert_false(route_pattern_match(&p, addr, (size_t)n, NULL));
            break;
        case ROUTE_PATTERN_ANY:
            break;
        }
        assert_int_equal(route_pattern_match(&p, S("postmaster"), "+"),
                         p.kind == ROUTE_PATTERN_ANY);
        route_pattern_free(&p);
    }
}

/* ---- served domains ----------------------------------------------------------------------- */

struct served_case {
    const char *pattern; /* the pattern text */
    bool any_domain;     /* every domain is served */
    bool want;           /* expected with served_domains (or any_domain) */
};

static char *const served_domains[] = {"example.com", "sub.example.org", "a.b.example.net"};

static const struct served_case served_cases[] = {
    {"*", false, true},
    {"*@example.com", false, true},
    {"*@EXAMPLE.com", false, true},
    {"a@example.com", false, true},
    {"a@sub.example.org", false, true},
    {"*@example.org", false, false},
    {"a@example.org", false, false},
    {"*@x.example.com", false, false},
    {"*@com", false, false},
    {"*@*.example.org", false, true},
    {"*@*.org", false, true},
    {"*@*.com", false, true},
    {"*@*.example.com", false, false},
    {"*@*.sub.example.org", false, false},
    {"*@*.b.example.net", false, true},
    {"*@*.example.net", false, true},
    {"*@*.a.b.example.net", false, false},
    {"*@*.ample.com", false, false},
    {"a@other.com", false, false},
    {"*@other.com", true, true},
    {"*@*.other.com", true, true},
    {"a@other.com", true, true},
    {"*", true, true},
};

static void test_domain_served(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(served_cases); i++) {
        const struct served_case *c = &served_cases[i];
        struct route_pattern p;
        assert_int_equal(route_pattern_parse(c->pattern, &p, NULL), 0);
        bool got =
            route_pattern_domain_served(&p, c->any_domain, served_domains, N(served_domains));
        if (got != c->want)
            print_message("  pattern \"%s\", any_domain %d\n", c->pattern, c->any_domain);
        assert_int_equal(got, c->want);
        /* With no domain listed only "*" and any_domain can be served. */
        assert_int_equal(route_pattern_domain_served(&p, false, NULL, 0),
                         p.kind == ROUTE_PATTERN_ANY);
        assert_true(route_pattern_domain_served(&p, true, NULL, 0));
        route_pattern_free(&p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),         cmocka_unit_test(test_why),
        cmocka_unit_test(test_lengths),       cmocka_unit_test(test_match),
        cmocka_unit_test(test_match_len),     cmocka_unit_test(test_match_own),
        cmocka_unit_test(test_domain_served),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
