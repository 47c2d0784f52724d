/* test_txn.c - the transaction object: deep copies, the body, the message key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtphook/error.h"
#include "smtphook/txn.h"

#define SPOOL_MEMORY 64u /* small: the larger bodies below go to the file */

static const char *tmpdir(void)
{
    return getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";
}

/* make - a transaction from sender to the recipients, with body. */
static struct txn *make(const char *id, const char *sender, const char *const *rcpts, size_t n,
                        const char *body)
{
    char client[] = "192.0.2.7", helo[] = "client.test";
    char version[] = "TLSv1.3", cipher[] = "TLS_AES_128_GCM_SHA256", sni[] = "mx.test";
    struct envelope_tls tls = {version, cipher, sni, NULL, NULL};
    struct txn_facts f = {id, 1767268800000, client, 2525, helo, true, &tls};
    struct txn *t = NULL;
    assert_int_equal(txn_new(&f, sender, &t), 0);
    /* Nothing points into what the caller passed: scribble over it. */
    memset(client, 'x', sizeof(client) - 1);
    memset(helo, 'x', sizeof(helo) - 1);
    memset(version, 'x', sizeof(version) - 1);
    memset(sni, 'x', sizeof(sni) - 1);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(txn_add_rcpt(t, rcpts[i], (long)i), 0);
    txn_begin_body(t, tmpdir(), SPOOL_MEMORY, 1767268800100);
    size_t len = strlen(body);
    /* in two pieces, as the parser hands them out */
    assert_true(txn_append(t, body, len / 2, 1 << 20));
    assert_true(txn_append(t, body + len / 2, len - len / 2, 1 << 20));
    txn_end_body(t, 1767268800200);
    assert_int_equal(t->spool_error, 0);
    return t;
}

static void test_deep_copy(void **state)
{
    (void)state;
    const char *rcpts[] = {"a@example.com", "b@example.com"};
    struct txn *t = make("c1.1", "s@example.org", rcpts, 2, "Subject: x\r\n\r\nbody\r\n");
    assert_string_equal(t->env.id, "c1.1");
    assert_string_equal(t->env.client_address, "192.0.2.7");
    assert_string_equal(t->env.helo, "client.test");
    assert_string_equal(t->env.tls.version, "TLSv1.3");
    assert_string_equal(t->env.tls.sni, "mx.test");
    assert_null(t->env.tls.peer_subject);
    assert_string_equal(t->env.mail_from, "s@example.org");
    assert_int_equal(t->env.n_rcpt, 2);
    assert_string_equal(t->env.rcpt_to[1], "b@example.com");
    assert_int_equal(t->rcpt_route[0], 0);
    assert_int_equal(t->rcpt_route[1], 1);
    assert_int_equal(t->env.size, strlen("Subject: x\r\n\r\nbody\r\n"));
    char got[64];
    size_t n = 0;
    assert_int_equal(spool_read(t->spool, 0, got, sizeof(got), &n), 0);
    assert_memory_equal(got, "Subject: x\r\n\r\nbody\r\n", n);
    txn_free(t);
    txn_free(NULL);
}

static void test_plaintext_facts(void **state)
{
    (void)state;
    struct txn_facts f = {"c2.1", 0, "::1", 25, NULL, false, NULL};
    struct txn *t = NULL;
    assert_int_equal(txn_new(&f, "", &t), 0);
    assert_null(t->env.helo);
    assert_null(t->env.tls.version);
    assert_string_equal(t->env.mail_from, "");
    txn_free(t);
}

static void test_too_big(void **state)
{
    (void)state;
    struct txn_facts f = {"c3.1", 0, "192.0.2.1", 25, "h", true, NULL};
    struct txn *t = NULL;
    assert_int_equal(txn_new(&f, "a@b.c", &t), 0);
    txn_begin_body(t, tmpdir(), SPOOL_MEMORY, 0);
    assert_true(txn_append(t, "12345", 5, 8));
    assert_false(txn_append(t, "6789", 4, 8)); /* 9 > 8: counted, not stored */
    assert_true(t->too_big);
    assert_int_equal(t->env.size, 9);
    assert_int_equal(spool_size(t->spool), 5);
    assert_false(txn_append(t, "x", 1, 8));
    txn_free(t);
}

/* key - the key of all of t's recipients. */
static void key(const struct txn *t, char out[DIGEST_HEX + 1])
{
    txn_key(t, NULL, 0, out);
    assert_int_equal(strlen(out), DIGEST_HEX);
}

static void test_key_stable(void **state)
{
    (void)state;
    const char *rcpts[] = {"a@example.com", "b@example.com"};
    const char *reversed[] = {"b@example.com", "a@example.com"};
    /* A large body, so that it is hashed across the spool's move to the file. */
    char body[4000];
    for (size_t i = 0; i < sizeof(body) - 1; i++)
        body[i] = (char)('a' + i % 26);
    body[sizeof(body) - 1] = '\0';
    struct txn *t1 = make("c1.1", "s@example.org", rcpts, 2, body);
    struct txn *t2 = make("c9.4", "s@example.org", reversed, 2, body); /* a retry elsewhere */
    char k1[DIGEST_HEX + 1], k2[DIGEST_HEX + 1];
    key(t1, k1);
    key(t2, k2);
    assert_string_equal(k1, k2);
    /* A share of the recipients has its own key, the same from either transaction. */
    size_t only_b1[] = {1}, only_b2[] = {0};
    char s1[DIGEST_HEX + 1], s2[DIGEST_HEX + 1];
    txn_key(t1, only_b1, 1, s1);
    txn_key(t2, only_b2, 1, s2);
    assert_string_equal(s1, s2);
    assert_string_not_equal(s1, k1);
    txn_free(t1);
    txn_free(t2);
}

static void test_key_differs(void **state)
{
    (void)state;
    const char *ab[] = {"a@example.com", "b@example.com"};
    const char *a[] = {"a@example.com"};
    const char *joined[] = {"a@example.comb@example.com"};
    struct txn *base = make("c1.1", "s@example.org", ab, 2, "one\r\n");
    char kb[DIGEST_HEX + 1], k[DIGEST_HEX + 1];
    key(base, kb);
    struct txn *other[] = {
        make("c1.1", "s@example.org", ab, 2, "two\r\n"),     /* body */
        make("c1.1", "t@example.org", ab, 2, "one\r\n"),     /* sender */
        make("c1.1", "s@example.org", a, 1, "one\r\n"),      /* recipients */
        make("c1.1", "s@example.org", joined, 1, "one\r\n"), /* no ambiguous concatenation */
        make("c1.1", "", ab, 2, "one\r\n"),                  /* null sender */
    };
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
        key(other[i], k);
        assert_string_not_equal(k, kb);
        txn_free(other[i]);
    }
    txn_free(base);
}

/* boundary_in_body - does the stored body hold s? */
static bool boundary_in_body(const struct txn *t, const char *s)
{
    size_t size = (size_t)spool_size(t->spool);
    char *all = malloc(size + 1);
    assert_non_null(all);
    size_t o = 0;
    while (o < size) {
        size_t got = 0;
        assert_int_equal(spool_read(t->spool, o, all + o, size - o, &got), 0);
        assert_true(got > 0);
        o += got;
    }
    bool in = memmem(all, size, s, strlen(s)) != NULL;
    free(all);
    return in;
}

/* check_boundary - txn_boundary's answer: the length, the prefix, and not in the body. */
static const char *check_boundary(struct txn *t)
{
    const char *b = txn_boundary(t);
    assert_non_null(b);
    assert_int_equal(strlen(b), TXN_BOUNDARY_LEN);
    assert_memory_equal(b, "smtphook-", 9);
    assert_false(boundary_in_body(t, b));
    return b;
}

/* The boundary drawn at the start of the body, appended in the body split across two
 * txn_append calls at every point: txn_boundary must give another one, not in the body. */
static void test_boundary_split(void **state)
{
    (void)state;
    const uint64_t kinds[] = {0, 1 << 20}; /* in the file, in memory */
    for (size_t k = 0; k < 2; k++) {
        for (size_t cut = 0; cut <= TXN_BOUNDARY_LEN; cut++) {
            struct txn_facts f = {"c5.1", 0, "192.0.2.1", 25, "h", true, NULL};
            struct txn *t = NULL;
            assert_int_equal(txn_new(&f, "a@b.c", &t), 0);
            txn_begin_body(t, tmpdir(), kinds[k], 0);
            char drawn[TXN_BOUNDARY_LEN + 1];
            memcpy(drawn, t->boundary.text, sizeof(drawn));
            assert_int_equal(strlen(drawn), TXN_BOUNDARY_LEN);
            /* some text first, so the boundary sits after a partial tail */
            assert_true(txn_append(t, "Subject: x\r\n\r\n--", 16, 1 << 20));
            assert_true(txn_append(t, drawn, cut, 1 << 20));
            assert_true(txn_append(t, drawn + cut, TXN_BOUNDARY_LEN - cut, 1 << 20));
            assert_true(txn_append(t, "--\r\n", 4, 1 << 20));
            txn_end_body(t, 1);
            assert_true(boundary_in_body(t, drawn));
            assert_true(t->boundary.seen); /* seen as it arrived, across the two appends */
            const char *b = check_boundary(t);
            assert_string_not_equal(b, drawn);
            txn_free(t);
        }
    }
}

/* The boundary split over many one-byte appends, and over appends of every size. */
static void test_boundary_bytewise(void **state)
{
    (void)state;
    for (size_t step = 1; step <= TXN_BOUNDARY_LEN + 1; step++) {
        struct txn_facts f = {"c6.1", 0, "192.0.2.1", 25, "h", true, NULL};
        struct txn *t = NULL;
        assert_int_equal(txn_new(&f, "a@b.c", &t), 0);
        txn_begin_body(t, tmpdir(), SPOOL_MEMORY, 0);
        char body[3 * TXN_BOUNDARY_LEN + 1];
        memset(body, 'z', sizeof(body));
        memcpy(body + step % 7, t->boundary.text, TXN_BOUNDARY_LEN);
        char drawn[TXN_BOUNDARY_LEN + 1];
        memcpy(drawn, t->boundary.text, sizeof(drawn));
        for (size_t o = 0; o < sizeof(body); o += step)
            assert_true(txn_append(t, body + o, sizeof(body) - o < step ? sizeof(body) - o : step,
                                   1 << 20));
        txn_end_body(t, 1);
        assert_true(t->boundary.seen);
        const char *b = check_boundary(t);
        assert_string_not_equal(b, drawn);
        txn_free(t);
    }
}

/* A body without it keeps the boundary drawn at its start; asking again gives the same. */
static void test_boundary_kept(void **state)
{
    (void)state;
    const char *rcpts[] = {"a@example.com"};
    struct txn *t = make("c7.1", "s@example.org", rcpts, 1, "Subject: x\r\n\r\nsmtphook-\r\n");
    char drawn[TXN_BOUNDARY_LEN + 1];
    memcpy(drawn, t->boundary.text, sizeof(drawn));
    const char *b = check_boundary(t);
    assert_string_equal(b, drawn);
    assert_string_equal(check_boundary(t), drawn);
    txn_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deep_copy),         cmocka_unit_test(test_plaintext_facts),
        cmocka_unit_test(test_too_big),           cmocka_unit_test(test_key_stable),
        cmocka_unit_test(test_key_differs),       cmocka_unit_test(test_boundary_split),
        cmocka_unit_test(test_boundary_bytewise), cmocka_unit_test(test_boundary_kept),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
