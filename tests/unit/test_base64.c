/* test_base64.c - base64.c: the RFC 4648 §10 vectors both ways, round trips of every length
 * 0..64 over random bytes, and the decoder's refusals of anything but the canonical form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "golden.h"
#include "smtphook/base64.h"
#include "smtphook/digest.h"

#define ROUND_MAX 64u /* longest input of the round trips */
#define ROUNDS    50u /* random inputs per length */

/* RFC 4648 §10. */
static const struct {
    const char *plain;
    const char *encoded;
} vectors[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

static void test_rfc4648_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(vectors); i++) {
        const char *p = vectors[i].plain, *e = vectors[i].encoded;
        char out[16];
        memset(out, 'x', sizeof(out));
        assert_int_equal(BASE64_SIZE(strlen(p)), strlen(e));
        assert_int_equal(base64_encode(p, strlen(p), out), strlen(e));
        assert_string_equal(out, e); /* NUL-terminated */
        uint8_t dec[16];
        memset(dec, 'x', sizeof(dec));
        assert_int_equal(base64_decode(e, strlen(e), dec), (long)strlen(p));
        assert_memory_equal(dec, p, strlen(p));
    }
}

/* Every byte value, and both ends of the alphabet. */
static void test_alphabet(void **state)
{
    (void)state;
    const uint8_t ff[] = {0xfb, 0xff, 0xbf};
    char out[8];
    base64_encode(ff, sizeof(ff), out);
    assert_string_equal(out, "+/+/");
    const uint8_t zero[] = {0, 0, 0};
    base64_encode(zero, sizeof(zero), out);
    assert_string_equal(out, "AAAA");
    uint8_t dec[3];
    assert_int_equal(base64_decode("+/+/", 4, dec), 3);
    assert_memory_equal(dec, ff, 3);
    assert_int_equal(base64_decode("QQ==", 4, dec), 1);
    assert_int_equal(dec[0], 'A');
    assert_int_equal(base64_decode("QUE=", 4, dec), 2);
    assert_memory_equal(dec, "AA", 2);
}

static void test_roundtrip_every_length(void **state)
{
    (void)state;
    for (size_t len = 0; len <= ROUND_MAX; len++) {
        for (unsigned r = 0; r < ROUNDS; r++) {
            uint8_t in[ROUND_MAX + 1];
            char enc[BASE64_SIZE(ROUND_MAX) + 2];
            uint8_t dec[ROUND_MAX + 4];
            assert_int_equal(digest_random(in, sizeof(in)), 0);
            memset(enc, '#', sizeof(enc));
            size_t n = base64_encode(in, len, enc);
            assert_int_equal(n, BASE64_SIZE(len));
            assert_int_equal(enc[n], '\0');
            assert_int_equal(enc[n + 1], '#'); /* nothing written past the NUL */
            for (size_t i = 0; i < n; i++)
                assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                       "0123456789+/=",
                                       enc[i]));
            memset(dec, 0xa5, sizeof(dec));
            assert_int_equal(base64_decode(enc, n, dec), (long)len);
            assert_memory_equal(dec, in, len);
            /* The decoder writes no more than the bytes it returns... */
            for (size_t i = len; i < n / 4 * 3 && i < sizeof(dec); i++)
                assert_int_equal(dec[i], 0xa5);
        }
    }
}

/* Refused: not a multiple of 4, a character outside the alphabet, '=' anywhere but the end,
 * bits set after the last byte, and white space of any kind. */
static const struct {
    const char *in;
    size_t len;
} refused[] = {
    {S("Z")},         {S("Zg")},       {S("Zg=")},       {S("Zm9vY")},        {S("Zm9vYg=")},
    {S("Zm9vYg===")}, {S("Zg==Zg==")}, /* padding in the middle */
    {S("Zm=v")},      {S("Z=8=")},     {S("=Zm8")},      {S("====")},         {S("A===")},
    {S("Zm9vYm=y")},  {S("QR==")}, /* non-zero trailing bits: "QQ==" is the one spelling of "A" */
    {S("QUF=")},                   /* "QUE=" is "AA" */
    {S("Zh==")},      {S("Zm9=")},     {S("Zm9v Zg==")}, {S("Zm9v\r\nZg==")}, {S("Zm9v\nZg==")},
    {S("Zm9\tv")},    {S(" Zm9")},     {S("Zm9v ")},     {S("Zm-v")}, /* base64url's alphabet is not
                                                                         the standard one */
    {S("Zm_v")},      {S("Zm9\0")},    {S("Zm9\x80")},   {S("Zm9\xff")},      {S("Zm.v")},
};

static void test_refusals(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(refused); i++) {
        uint8_t dec[16];
        long got = base64_decode(refused[i].in, refused[i].len, dec);
        if (got != -1) {
            print_message("row %zu decoded to %ld bytes\n", i, got);
            golden_show("input", refused[i].in, refused[i].len);
        }
        assert_int_equal(got, -1);
    }
}

/* A refused character in any position of a longer input. */
static void test_refusal_any_position(void **state)
{
    (void)state;
    const char good[] = "Zm9vYmFyYmF6cXV4";
    uint8_t dec[16];
    assert_int_equal(base64_decode(good, strlen(good), dec), 12);
    for (size_t at = 0; at < strlen(good); at++) {
        static const char bad[] = {' ', '\n', '\r', '\t', '=', '-', '_', '.', '\0', '\x80'};
        for (size_t k = 0; k < sizeof(bad); k++) {
            char s[sizeof(good)];
            memcpy(s, good, sizeof(good));
            s[at] = bad[k];
            /* '=' last makes "cXV=", whose bits after the last byte are not zero */
            long got = base64_decode(s, strlen(good), dec);
            if (got != -1)
                golden_show("input", s, strlen(good));
            assert_int_equal(got, -1);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4648_vectors),        cmocka_unit_test(test_alphabet),
        cmocka_unit_test(test_roundtrip_every_length), cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_refusal_any_position),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
