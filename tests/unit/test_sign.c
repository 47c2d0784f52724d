/* test_sign.c - sign.c: the Standard Webhooks v1 vectors, several secrets in order, and a
 * body signed in many steps giving the signature of one HMAC over the whole; ed25519.c and
 * v1a: the RFC 8032 vectors, and the two streaming passes giving, byte for byte, what
 * OpenSSL's one-shot Ed25519 signs over the whole message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "smtphook/base64.h"
#include "smtphook/digest.h"
#include "smtphook/ed25519.h"
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

/* unhex - n bytes from 2n hex digits. */
static void unhex(const char *hex, uint8_t *out, size_t n)
{
    assert_int_equal(strlen(hex), 2 * n);
    for (size_t i = 0; i < n; i++) {
        unsigned v = 0;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
}

/* oneshot - OpenSSL's Ed25519 signature of the whole message m under seed. */
static void oneshot(const uint8_t seed[ED25519_SEED_BYTES], const void *m, size_t n,
                    uint8_t sig[ED25519_SIGNATURE_BYTES])
{
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, ED25519_SEED_BYTES);
    assert_non_null(k);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    assert_non_null(c);
    assert_int_equal(EVP_DigestSignInit(c, NULL, NULL, NULL, k), 1);
    size_t len = ED25519_SIGNATURE_BYTES;
    static const uint8_t none[1];
    assert_int_equal(EVP_DigestSign(c, sig, &len, n > 0 ? m : none, n), 1);
    assert_int_equal(len, ED25519_SIGNATURE_BYTES);
    EVP_MD_CTX_free(c);
    EVP_PKEY_free(k);
}

/* rnd - a small deterministic generator (xorshift64), so a failure repeats. */
static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

/* feed_pieces - m to the pass under way, cut at random points (some pieces empty). */
static void feed_pieces(struct ed25519_sign *s, const uint8_t *m, size_t n)
{
    size_t at = 0;
    while (at < n) {
        size_t piece = (size_t)(rnd() % (n < 300 ? 70 : 70000));
        if (piece > n - at)
            piece = n - at;
        ed25519_update(s, m + at, piece);
        at += piece;
    }
    ed25519_update(s, m, 0);
}

/* stream_sign - the signature of m by the two passes, each cut at its own random points. */
static void stream_sign(const uint8_t seed[ED25519_SEED_BYTES], const uint8_t *m, size_t n,
                        uint8_t sig[ED25519_SIGNATURE_BYTES])
{
    struct ed25519_sign s;
    assert_int_equal(ed25519_begin(&s, seed), 0);
    feed_pieces(&s, m, n);
    assert_int_equal(ed25519_second(&s), 0);
    feed_pieces(&s, m, n);
    assert_int_equal(ed25519_final(&s, sig), 0);
    ed25519_end(&s);
}

/* RFC 8032 section 7.1, TEST 1 to 3: the public keys and the signatures. */
static void test_ed25519_rfc8032(void **state)
{
    (void)state;
    static const struct {
        const char *seed, *pub, *msg, *sig;
    } v[] = {
        {"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
         "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
         "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e3970"
         "1cf9b46bd25bf5f0595bbe24655141438e7a100b"},
        {"4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
         "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
         "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613"
         "d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
        {"c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
         "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
         "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760"
         "984dc6594a7c15e9716ed28dc027beceea1ec40a"},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        uint8_t seed[32], pub[32], got_pub[32], msg[2], sig[64], got[64];
        unhex(v[i].seed, seed, 32);
        unhex(v[i].pub, pub, 32);
        size_t n = strlen(v[i].msg) / 2;
        unhex(v[i].msg, msg, n);
        unhex(v[i].sig, sig, 64);
        assert_int_equal(ed25519_public_key(seed, got_pub), 0);
        assert_memory_equal(got_pub, pub, 32);
        stream_sign(seed, msg, n, got);
        assert_memory_equal(got, sig, 64);
    }
}

/* Messages of many lengths (the SHA-512 block edges after the 32-byte prefix and the
 * 64-byte R || A, the read and step sizes, a few hundred KB), cut at random points: the
 * two passes sign what OpenSSL signs over the whole message. */
static void test_ed25519_matches_oneshot(void **state)
{
    (void)state;
    static const size_t lens[] = {
        0,    1,    2,     31,    32,    33,    63,     64,     65,     95,     96,         97,
        111,  112,  113,   127,   128,   129,   191,    192,    193,    255,    256,        257,
        1000, 4096, 65535, 65536, 65537, 99999, 262143, 262144, 262145, 300001, 524288 + 77};
    const size_t max = 524288 + 77;
    uint8_t *m = malloc(max);
    assert_non_null(m);
    for (size_t i = 0; i < max; i++)
        m[i] = (uint8_t)rnd();
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        for (unsigned k = 0; k < (lens[i] < 100000 ? 3u : 1u); k++) {
            uint8_t seed[ED25519_SEED_BYTES], want[64], got[64];
            for (size_t j = 0; j < sizeof(seed); j++)
                seed[j] = (uint8_t)rnd();
            const uint8_t *msg = m + rnd() % 64; /* unaligned starts too */
            size_t n = lens[i] <= max - 64 ? lens[i] : max - 64;
            oneshot(seed, msg, n, want);
            stream_sign(seed, msg, n, got);
            assert_memory_equal(got, want, 64);
        }
    }
    free(m);
}

/* ed_secret - a v1a key from its seed, as config.c decodes it. */
static struct config_secret ed_secret(uint8_t fill)
{
    struct config_secret s;
    memset(&s, 0, sizeof(s));
    for (size_t i = 0; i < ED25519_SEED_BYTES; i++)
        s.key[i] = (uint8_t)(fill + 13 * i);
    s.len = ED25519_SEED_BYTES;
    s.ed25519 = true;
    assert_int_equal(ed25519_public_key(s.key, s.public_key), 0);
    return s;
}

/* want_value - the webhook-signature value for keys over content, computed whole: HMAC for
 * v1 secrets, OpenSSL's one-shot Ed25519 for v1a keys. */
static void want_value(const struct config_secret *ss, size_t n, const void *content, size_t len,
                       char *out)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            out[w++] = ' ';
        if (ss[i].ed25519) {
            uint8_t sig[ED25519_SIGNATURE_BYTES];
            oneshot(ss[i].key, content, len, sig);
            memcpy(out + w, "v1a,", 4);
            w += 4;
            w += base64_encode(sig, sizeof(sig), out + w);
        } else {
            uint8_t mac[DIGEST_BYTES];
            assert_int_equal(digest_hmac(ss[i].key, ss[i].len, content, len, mac), 0);
            memcpy(out + w, "v1,", 3);
            w += 3;
            w += base64_encode(mac, sizeof(mac), out + w);
        }
    }
    out[w] = '\0';
}

/* v1a and v1 keys mixed, bodies from a memory and a file spool around the step size: the
 * signatures in the keys' order, each what the whole content gives; the two passes take
 * steps of at most SIGN_STEP_BYTES, twice as many as the body alone needs. */
static void test_v1a_in_steps(void **state)
{
    (void)state;
    static const size_t lens[] = {0,
                                  1,
                                  200,
                                  SIGN_STEP_BYTES - 40,
                                  SIGN_STEP_BYTES,
                                  SIGN_STEP_BYTES + 1,
                                  2 * SIGN_STEP_BYTES + 12345};
    struct config_secret ss[] = {ed_secret(1), secret(SECRET_2), ed_secret(200)};
    const size_t max = 2 * SIGN_STEP_BYTES + 12345;
    char *msg = malloc(max);
    assert_non_null(msg);
    for (size_t i = 0; i < max; i++)
        msg[i] = (char)rnd();
    const char prefix[] = "msg_big.1700000000.{\"raw\":\"";
    char *content = malloc(strlen(prefix) + max + 2);
    assert_non_null(content);
    for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
        for (size_t k = 0; k < 2; k++) {
            size_t len = lens[l];
            struct spool *sp = NULL;
            assert_int_equal(spool_new(tmpdir(), k == 0 ? 4 * SIGN_STEP_BYTES : 0, &sp), 0);
            assert_int_equal(spool_append(sp, msg, len), 0);
            struct request_body b;
            request_body_init(&b, sp, len);
            assert_int_equal(request_body_add_str(&b, "{\"raw\":\""), 0);
            assert_int_equal(request_body_add_message(&b, false), 0);
            assert_int_equal(request_body_add_str(&b, "\"}"), 0);
            size_t total = strlen(prefix) + len + 2;
            memcpy(content, prefix, strlen(prefix));
            memcpy(content + strlen(prefix), msg, len);
            memcpy(content + strlen(prefix) + len, "\"}", 2);

            for (size_t n = 1; n <= 3; n++) {
                const struct config_secret *keys = n == 2 ? ss + 1 : ss; /* v1a first or v1 */
                struct config_signing sg = {CONFIG_SIGNING_STANDARD_WEBHOOKS,
                                            (struct config_secret *)keys, n, NULL};
                struct sign_pass p;
                assert_int_equal(sign_begin(&p, &sg, "msg_big", 1700000000, &b), 0);
                assert_int_equal(sign_bytes(&p), 2 * b.size);
                sign_end(&p);
                unsigned steps = 0;
                char *v = sign_all(&sg, "msg_big", 1700000000, &b, &steps);
                assert_true(steps >= (unsigned)(2 * b.size / SIGN_STEP_BYTES));
                char want[3 * (4 + BASE64_SIZE(ED25519_SIGNATURE_BYTES) + 1) + 1];
                want_value(keys, n, content, total, want);
                assert_string_equal(v, want);
                free(v);
            }
            request_body_free(&b);
            spool_free(sp);
        }
    }
    free(content);
    free(msg);
}

/* The one test vector a v1a signature has here: a fixed seed, id, timestamp and body, the
 * value checked against OpenSSL's one-shot signature of the content. */
static void test_v1a_vector(void **state)
{
    (void)state;
    struct config_secret s;
    memset(&s, 0, sizeof(s));
    unhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", s.key, 32);
    s.len = 32;
    s.ed25519 = true;
    assert_int_equal(ed25519_public_key(s.key, s.public_key), 0);
    struct config_signing sg = {CONFIG_SIGNING_STANDARD_WEBHOOKS, &s, 1, NULL};
    struct request_body b;
    bytes_body(&b, BODY_1);
    char *v = sign_all(&sg, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, &b, NULL);
    const char content[] = "msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330." BODY_1;
    char want[4 + BASE64_SIZE(ED25519_SIGNATURE_BYTES) + 1];
    want_value(&s, 1, content, strlen(content), want);
    assert_string_equal(v, want);
    assert_int_equal(strlen(v), 4 + 88);
    free(v);
    request_body_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_vector_from_spool),
        cmocka_unit_test(test_several_secrets),
        cmocka_unit_test(test_large_body_in_steps),
        cmocka_unit_test(test_empty_and_short),
        cmocka_unit_test(test_ed25519_rfc8032),
        cmocka_unit_test(test_ed25519_matches_oneshot),
        cmocka_unit_test(test_v1a_in_steps),
        cmocka_unit_test(test_v1a_vector),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
