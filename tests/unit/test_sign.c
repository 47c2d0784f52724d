/* test_sign.c - sign.c: the Standard Webhooks v1 vectors, several secrets in order, and a
 * body signed in many steps giving the signature of one HMAC over the whole. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtphook/base64.h"
#include "smtphook/digest.h"
#include "smtphook/error.h"
#include "smtphook/sign.h"

#define SECRET_1 "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"             /* 24 bytes */
#define SECRET_2 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" /* bytes 0..31 */
#define BODY_1   "{\"test\": 2432232314}"
#define BODY_2                                                                                     \
    "{\"type\":\"contact.created\",\"timestamp\":\"2022-11-03T20:26:10.344522Z\",\"data\":{"       \
    "\"id\":"                                                                                      \
    "\"1f81eb52-5198-4599-803e-771906343485\"}}"
#define SIG_1 "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
#define SIG_2 "v1,4PMU5Dl90B4kgwxDpwuMZ/cnZ5ztf+Y+kviYQD66rJg="

static const char *tmpdir(void)
{
    return getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";
}

/* secret - a decoded secret from its base64 (padding added here when missing). */
static struct config_secret secret(const char *b64)
{
    struct config_secret s;
    memset(&s, 0, sizeof(s));
    char padded[BASE64_SIZE(CONFIG_SECRET_MAX) + 1];
    size_t n = strlen(b64);
    assert_true(n + 3 < sizeof(padded));
    memcpy(padded, b64, n);
    while (n % 4 != 0)
        padded[n++] = '=';
    long got = base64_decode(padded, n, s.key);
    assert_true(got > 0 && got <= (long)CONFIG_SECRET_MAX);
    s.len = (size_t)got;
    return s;
}

/* sign_all - the webhook-signature value of body under signing; *steps counts sign_step. */
static char *sign_all(const struct config_signing *sg, const char *id, int64_t ts,
                      const struct request_body *body, unsigned *steps)
{
    struct sign_pass p;
    assert_int_equal(sign_begin(&p, sg, id, ts, body), 0);
    bool done = false;
    unsigned n = 0;
    while (!done) {
        uint64_t before = p.offset;
        assert_int_equal(sign_step(&p, &done), 0);
        assert_true(p.offset - before <= SIGN_STEP_BYTES);
        n++;
        assert_true(n < 10000);
    }
    char *v = NULL;
    assert_int_equal(sign_value(&p, &v), 0);
    sign_end(&p);
    if (steps != NULL)
        *steps = n;
    return v;
}

/* bytes_body - a body of one string, without a spool. */
static void bytes_body(struct request_body *b, const char *s)
{
    request_body_init(b, NULL, 0);
    assert_int_equal(request_body_add_str(b, s), 0);
}

static void test_vectors(void **state)
{
    (void)state;
    struct config_secret s1 = secret(SECRET_1), s2 = secret(SECRET_2);
    assert_int_equal(s1.len, 24);
    assert_int_equal(s2.len, 32);
    for (unsigned i = 0; i < 32; i++)
        assert_int_equal(s2.key[i], i);

    struct config_signing sg = {CONFIG_SIGNING_STANDARD_WEBHOOKS, &s1, 1, NULL};
    struct request_body b;
    bytes_body(&b, BODY_1);
    char *v = sign_all(&sg, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, &b, NULL);
    assert_string_equal(v, SIG_1);
    free(v);
    request_body_free(&b);

    sg.secrets = &s2;
    bytes_body(&b, BODY_2);
    v = sign_all(&sg, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", 1674087231, &b, NULL);
    assert_string_equal(v, SIG_2);
    free(v);
    request_body_free(&b);
}

/* The same vector when the body is the message read from a spool, in memory or a file. */
static void test_vector_from_spool(void **state)
{
    (void)state;
    struct config_secret s1 = secret(SECRET_1);
    struct config_signing sg = {CONFIG_SIGNING_STANDARD_WEBHOOKS, &s1, 1, NULL};
    const uint64_t kinds[] = {1 << 20, 0};
    for (size_t k = 0; k < 2; k++) {
        struct spool *sp = NULL;
        assert_int_equal(spool_new(tmpdir(), kinds[k], &sp), 0);
        assert_int_equal(spool_append(sp, &BODY_1[3], strlen(BODY_1) - 3), 0);
        struct request_body b;
        request_body_init(&b, sp, spool_size(sp));
        assert_int_equal(request_body_add(&b, BODY_1, 3), 0);
        assert_int_equal(request_body_add_message(&b, false), 0);
        char *v = sign_all(&sg, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, &b, NULL);
        assert_string_equal(v, SIG_1);
        free(v);
        request_body_free(&b);
        spool_free(sp);
    }
}

/* Two (and three) secrets: every signature, space-separated, in the order of the secrets. */
static void test_several_secrets(void **state)
{
    (void)state;
    struct config_secret ss[] = {secret(SECRET_1), secret(SECRET_2), secret(SECRET_1)};
    struct config_signing sg = {CONFIG_SIGNING_STANDARD_WEBHOOKS, ss, 2, NULL};
    struct request_body b;
    bytes_body(&b, BODY_1);
    char *v = sign_all(&sg, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, &b, NULL);
    /* the second signature: HMAC under secret 2 of the same content */
    const char content[] = "msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330." BODY_1;
    uint8_t mac[DIGEST_BYTES];
    assert_int_equal(digest_hmac(ss[1].key, ss[1].len, content, strlen(content), mac), 0);
    char want[2 * (3 + BASE64_SIZE(DIGEST_BYTES)) + 2];
    strcpy(want, SIG_1 " v1,");
    base64_encode(mac, sizeof(mac), want + strlen(want));
    assert_string_equal(v, want);
    free(v);
    /* the order of the secrets is the order of the signatures */
    struct config_secret rev[] = {ss[1], ss[0]};
    sg.secrets = rev;
    v = sign_all(&sg, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, &b, NULL);
    char want_rev[sizeof(want)];
    snprintf(want_rev, sizeof(want_rev), "%s %s", want + strlen(SIG_1) + 1, SIG_1);
    assert_string_equal(v, want_rev);
    free(v);
    sg.secrets = ss;
    sg.n_secrets = 3;
    v = sign_all(&sg, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, &b, NULL);
    char want3[3 * (3 + BASE64_SIZE(DIGEST_BYTES)) + 3];
    snprintf(want3, sizeof(want3), "%s %s", want, SIG_1);
    assert_string_equal(v, want3);
    free(v);
    request_body_free(&b);
}

/* A body several times SIGN_STEP_BYTES, bytes + message + base64 from a file spool: several
 * steps, and the signature of one HMAC over the whole content. */
static void test_large_body_in_steps(void **state)
{
    (void)state;
    const size_t len = 2 * SIGN_STEP_BYTES + 12345;
    char *msg = malloc(len);
    assert_non_null(msg);
    for (size_t i = 0; i < len; i++)
        msg[i] = (char)(i * 7 + i / 251);
    const uint64_t kinds[] = {4 * SIGN_STEP_BYTES, 0};
    struct config_secret ss[] = {secret(SECRET_2), secret(SECRET_1)};
    struct config_signing sg = {CONFIG_SIGNING_STANDARD_WEBHOOKS, ss, 2, NULL};
    for (size_t k = 0; k < 2; k++) {
        struct spool *sp = NULL;
        assert_int_equal(spool_new(tmpdir(), kinds[k], &sp), 0);
        assert_int_equal(spool_append(sp, msg, len), 0);
        struct request_body b;
        request_body_init(&b, sp, len);
        assert_int_equal(request_body_add_str(&b, "{\"m\":\""), 0);
        assert_int_equal(request_body_add_message(&b, true), 0);
        assert_int_equal(request_body_add_str(&b, "\",\"raw\":\""), 0);
        assert_int_equal(request_body_add_message(&b, false), 0);
        assert_int_equal(request_body_add_str(&b, "\"}"), 0);

        /* the content, built here: the prefix, the bytes, base64 of the whole message */
        const char prefix[] = "msg_big.1700000000.";
        size_t total = strlen(prefix) + (size_t)b.size;
        char *content = malloc(total);
        assert_non_null(content);
        size_t o = 0;
        memcpy(content + o, prefix, strlen(prefix));
        o += strlen(prefix);
        memcpy(content + o, "{\"m\":\"", 6);
        o += 6;
        char *enc = malloc(BASE64_SIZE(len) + 1);
        assert_non_null(enc);
        o += base64_encode(msg, len, enc);
        memcpy(content + o - BASE64_SIZE(len), enc, BASE64_SIZE(len));
        free(enc);
        memcpy(content + o, "\",\"raw\":\"", 9);
        o += 9;
        memcpy(content + o, msg, len);
        o += len;
        memcpy(content + o, "\"}", 2);
        o += 2;
        assert_int_equal(o, total);

        unsigned steps = 0;
        char *v = sign_all(&sg, "msg_big", 1700000000, &b, &steps);
        assert_true(steps >= (unsigned)(b.size / SIGN_STEP_BYTES));
        assert_true(steps >= 3);
        char want[2 * (3 + BASE64_SIZE(DIGEST_BYTES)) + 2];
        size_t w = 0;
        for (size_t i = 0; i < 2; i++) {
            uint8_t mac[DIGEST_BYTES];
            assert_int_equal(digest_hmac(ss[i].key, ss[i].len, content, total, mac), 0);
            if (i > 0)
                want[w++] = ' ';
            memcpy(want + w, "v1,", 3);
            w += 3;
            w += base64_encode(mac, sizeof(mac), want + w);
        }
        assert_string_equal(v, want);
        free(v);
        free(content);
        request_body_free(&b);
        spool_free(sp);
    }
    free(msg);
}

/* An empty body signs "<id>.<ts>." alone; a spool shorter than the body fails the step. */
static void test_empty_and_short(void **state)
{
    (void)state;
    struct config_secret s1 = secret(SECRET_1);
    struct config_signing sg = {CONFIG_SIGNING_STANDARD_WEBHOOKS, &s1, 1, NULL};
    struct request_body b;
    request_body_init(&b, NULL, 0);
    char *v = sign_all(&sg, "msg_x", -5, &b, NULL);
    uint8_t mac[DIGEST_BYTES];
    assert_int_equal(digest_hmac(s1.key, s1.len, "msg_x.-5.", 9, mac), 0);
    char want[3 + BASE64_SIZE(DIGEST_BYTES) + 1] = "v1,";
    base64_encode(mac, sizeof(mac), want + 3);
    assert_string_equal(v, want);
    free(v);
    request_body_free(&b);

    struct spool *sp = NULL;
    assert_int_equal(spool_new(tmpdir(), 0, &sp), 0);
    assert_int_equal(spool_append(sp, "short", 5), 0);
    request_body_init(&b, sp, 5000);
    assert_int_equal(request_body_add_message(&b, false), 0);
    struct sign_pass p;
    assert_int_equal(sign_begin(&p, &sg, "msg_x", 1, &b), 0);
    bool done = false;
    assert_int_equal(sign_step(&p, &done), SH_EIO);
    sign_end(&p);
    request_body_free(&b);
    spool_free(sp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),         cmocka_unit_test(test_vector_from_spool),
        cmocka_unit_test(test_several_secrets), cmocka_unit_test(test_large_body_in_steps),
        cmocka_unit_test(test_empty_and_short),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
