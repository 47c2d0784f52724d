/* test_utf8.c - utf8.c: RFC 3629 validity, whole and fed in pieces split at every byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "golden.h"
#include "smtphook/utf8.h"

struct row {
    const char *in;
    size_t len;
    bool valid;
};

static const struct row rows[] = {
    {S(""), true},
    {S("plain ASCII\r\n\t"), true},
    {S("caf\xc3\xa9"), true},       /* U+00E9 */
    {S("\xe2\x9c\x89"), true},      /* U+2709 */
    {S("\xf0\x9f\x93\xa7"), true},  /* U+1F4E7 */
    {S("\xf4\x8f\xbf\xbf"), true},  /* U+10FFFF, the last */
    {S("\xed\x9f\xbf"), true},      /* U+D7FF, before the surrogates */
    {S("\xee\x80\x80"), true},      /* U+E000, after them */
    {S("caf\xe9"), false},          /* Latin-1 */
    {S("\xc3"), false},             /* cut short */
    {S("\xe2\x9c"), false},         /* cut short */
    {S("\x80"), false},             /* a continuation without a lead */
    {S("\xc0\xaf"), false},         /* overlong '/' */
    {S("\xc1\xbf"), false},         /* overlong */
    {S("\xe0\x80\xaf"), false},     /* overlong 3-byte */
    {S("\xf0\x80\x80\xaf"), false}, /* overlong 4-byte */
    {S("\xed\xa0\x80"), false},     /* U+D800, a surrogate */
    {S("\xf4\x90\x80\x80"), false}, /* past U+10FFFF */
    {S("\xf5\x80\x80\x80"), false}, /* no such lead */
    {S("\xff"), false},             /* never in UTF-8 */
    {S("\xc3\xa9\xc3"), false},     /* valid, then cut short */
    {S("\xc3\x28"), false},         /* lead followed by ASCII */
    {S("a\x00"
       "b"),
     true}, /* NUL is a character */
};

static void test_rows(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(rows); i++) {
        const struct row *r = &rows[i];
        if (utf8_valid(r->in, r->len) != r->valid)
            golden_show("row", r->in, r->len);
        assert_int_equal(utf8_valid(r->in, r->len), r->valid);
        for (size_t cut = 0; cut <= r->len; cut++) { /* two pieces give the same verdict */
            struct utf8_state u = {0};
            utf8_feed(&u, r->in, cut);
            utf8_feed(&u, r->in + cut, r->len - cut);
            assert_int_equal(utf8_done(&u), r->valid);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
