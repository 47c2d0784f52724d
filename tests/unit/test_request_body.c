/* test_request_body.c - request_body.c: bodies of bytes, the message and the message in
 * base64 over real spools (held in memory and in the file), read whole in every chunk size
 * and at every offset against bytes built here independently; the exact size; the one-run
 * shortcut; and a spool shorter than the body. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtphook/base64.h"
#include "smtphook/error.h"
#include "smtphook/request_body.h"
#include "smtphook/spool.h"

#define CHUNK_MAX    17u     /* reads in every size 1..CHUNK_MAX */
#define SMALL_MAX    64u     /* messages up to this size are read from every offset whole */
#define MEMORY_BYTES 1048576 /* a spool that keeps everything in memory */
#define FILE_BYTES   0       /* a spool that goes to its file at once */

static const char *tmpdir(void)
{
    return getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";
}

/* pattern - a deterministic message with every byte value, NUL and 8-bit included. */
static void pattern(char *dst, size_t len, unsigned seed)
{
    uint32_t x = seed * 2654435761u + 7u;
    for (size_t i = 0; i < len; i++) {
        x = x * 1103515245u + 12345u;
        dst[i] = (char)(unsigned char)(x >> 16);
    }
}

/* make_spool - a spool holding msg (len bytes), in memory or in its file. */
static struct spool *make_spool(const char *msg, size_t len, uint64_t memory_bytes)
{
    struct spool *sp = NULL;
    assert_int_equal(spool_new(tmpdir(), memory_bytes, &sp), 0);
    /* in uneven pieces, as a session appends */
    for (size_t o = 0; o < len;) {
        size_t n = len - o < 1000 ? len - o : 1000;
        assert_int_equal(spool_append(sp, msg + o, n), 0);
        o += n;
    }
    assert_int_equal(spool_size(sp), len);
    if (memory_bytes == FILE_BYTES && len > 0)
        assert_int_equal(spool_in_file(sp), 1);
    if (memory_bytes == MEMORY_BYTES)
        assert_int_equal(spool_in_file(sp), 0);
    return sp;
}

/* A growing byte string: the expected body. */
struct expect {
    char *data;
    size_t len;
};

static void expect_add(struct expect *e, const void *p, size_t n)
{
    e->data = realloc(e->data, e->len + n + 1);
    assert_non_null(e->data);
    if (n > 0)
        memcpy(e->data + e->len, p, n);
    e->len += n;
}

/* expect_base64 - the whole message in base64, encoded at once here. */
static void expect_base64(struct expect *e, const char *msg, size_t len)
{
    char *enc = malloc(BASE64_SIZE(len) + 1);
    assert_non_null(enc);
    size_t n = base64_encode(msg, len, enc);
    expect_add(e, enc, n);
    free(enc);
}

/* build - the body used by most tests: bytes, the message, bytes, its base64, bytes, the
 * base64 again (two base64 pieces side by side), the message again, bytes. */
static void build(struct request_body *b, struct expect *e, const struct spool *sp, const char *msg,
                  size_t len)
{
    request_body_init(b, sp, len);
    memset(e, 0, sizeof(*e));
    assert_int_equal(request_body_add_str(b, "--head\r\n"), 0);
    expect_add(e, "--head\r\n", 8);
    assert_int_equal(request_body_add_message(b, false), 0);
    expect_add(e, msg, len);
    assert_int_equal(request_body_add(b, "\0mid\0", 5), 0);
    expect_add(e, "\0mid\0", 5);
    assert_int_equal(request_body_add_message(b, true), 0);
    expect_base64(e, msg, len);
    assert_int_equal(request_body_add_str(b, ""), 0); /* adds nothing */
    assert_int_equal(request_body_add_str(b, "\"x\""), 0);
    expect_add(e, "\"x\"", 3);
    assert_int_equal(request_body_add_message(b, true), 0);
    expect_base64(e, msg, len);
    assert_int_equal(request_body_add_message(b, false), 0);
    expect_add(e, msg, len);
    assert_int_equal(request_body_add_str(b, "tail"), 0);
    expect_add(e, "tail", 4);
    assert_false(b->failed);
    assert_int_equal(b->size, e->len);
}

/* read_from - the body from off to its end in reads of step bytes; must equal want. */
static void read_from(struct request_body *b, uint64_t off, size_t step, const struct expect *e)
{
    char buf[CHUNK_MAX + 8];
    uint64_t at = off;
    for (;;) {
        size_t got = 12345;
        memset(buf, 0x5a, sizeof(buf));
        assert_int_equal(request_body_read(b, at, buf, step, &got), 0);
        if (got == 0)
            break;
        assert_true(got <= step);
        /* the body fills what it can: only the end gives less */
        if (at + step <= e->len)
            assert_int_equal(got, step);
        assert_true(at + got <= e->len);
        if (memcmp(buf, e->data + at, got) != 0) {
            print_message("  body size %zu: read of %zu at %llu differs\n", e->len, step,
                          (unsigned long long)at);
            fail();
        }
        assert_int_equal((unsigned char)buf[got], 0x5a); /* nothing written past got */
        at += got;
    }
    assert_int_equal(at, e->len);
}

/* read_at - one read of len bytes at off (len may pass the end). */
static void read_at(struct request_body *b, uint64_t off, size_t len, const struct expect *e)
{
    char *buf = malloc(len + 1);
    assert_non_null(buf);
    size_t got = 0;
    assert_int_equal(request_body_read(b, off, buf, len, &got), 0);
    size_t want = off >= e->len ? 0 : (e->len - off < len ? e->len - off : len);
    assert_int_equal(got, want);
    if (got > 0 && memcmp(buf, e->data + off, got) != 0) {
        print_message("  body size %zu: read of %zu at %llu differs\n", e->len, len,
                      (unsigned long long)off);
        fail();
    }
    free(buf);
}

static const size_t small_sizes[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 31, 32, 33, 63, 64};
/* around the base64 step (3072 message bytes encoded per step) and larger */
static const size_t large_sizes[] = {3071, 3072, 3073, 3074, 6144, 10001};
static const uint64_t spool_kinds[] = {MEMORY_BYTES, FILE_BYTES};

/* Small messages: the body from every offset, in every chunk size. */
static void test_small_every_offset_every_chunk(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof(spool_kinds) / sizeof(spool_kinds[0]); k++) {
        for (size_t s = 0; s < sizeof(small_sizes) / sizeof(small_sizes[0]); s++) {
            size_t len = small_sizes[s];
            char msg[SMALL_MAX];
            pattern(msg, len, (unsigned)len);
            struct spool *sp = make_spool(msg, len, spool_kinds[k]);
            struct request_body b;
            struct expect e;
            build(&b, &e, sp, msg, len);
            assert_int_equal(b.size,
                             8 + len + 5 + BASE64_SIZE(len) + 3 + BASE64_SIZE(len) + len + 4);
            for (uint64_t off = 0; off <= e.len; off++)
                for (size_t step = 1; step <= CHUNK_MAX; step++)
                    read_from(&b, off, step, &e);
            read_at(&b, 0, e.len + 100, &e);
            read_at(&b, e.len + 1, 10, &e);
            request_body_free(&b);
            free(e.data);
            spool_free(sp);
        }
    }
}

/* Larger messages: the whole body in every chunk size; one read at every offset. */
static void test_large_chunks_and_offsets(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof(spool_kinds) / sizeof(spool_kinds[0]); k++) {
        for (size_t s = 0; s < sizeof(large_sizes) / sizeof(large_sizes[0]); s++) {
            size_t len = large_sizes[s];
            char *msg = malloc(len);
            assert_non_null(msg);
            pattern(msg, len, (unsigned)len);
            struct spool *sp = make_spool(msg, len, spool_kinds[k]);
            struct request_body b;
            struct expect e;
            build(&b, &e, sp, msg, len);
            for (size_t step = 1; step <= CHUNK_MAX; step++)
                read_from(&b, 0, step, &e);
            for (uint64_t off = 0; off <= e.len; off++)
                read_at(&b, off, 1 + (size_t)(off % CHUNK_MAX), &e);
            /* reads larger than a base64 step, at offsets inside a 4-character group */
            for (uint64_t off = 0; off < e.len; off += 997)
                read_at(&b, off, 5000, &e);
            read_at(&b, 0, e.len, &e);
            request_body_free(&b);
            free(e.data);
            free(msg);
            spool_free(sp);
        }
    }
}

/* The message alone, its base64 alone: the size is exact before any read. */
static void test_single_pieces(void **state)
{
    (void)state;
    for (size_t len = 0; len <= 40; len++) {
        char msg[40];
        pattern(msg, len, 99);
        for (size_t k = 0; k < 2; k++) {
            struct spool *sp = make_spool(msg, len, spool_kinds[k]);
            struct request_body b;
            struct expect e = {0};
            request_body_init(&b, sp, len);
            assert_int_equal(request_body_add_message(&b, true), 0);
            expect_base64(&e, msg, len);
            assert_int_equal(b.size, BASE64_SIZE(len));
            assert_int_equal(request_base64_size(len), BASE64_SIZE(len));
            for (uint64_t off = 0; off <= e.len; off++)
                for (size_t step = 1; step <= CHUNK_MAX; step++)
                    read_from(&b, off, step, &e);
            request_body_free(&b);
            free(e.data);
            /* reusable after free */
            memset(&e, 0, sizeof(e));
            assert_int_equal(request_body_add_message(&b, false), 0);
            expect_add(&e, msg, len);
            assert_int_equal(b.size, len);
            for (size_t step = 1; step <= CHUNK_MAX; step++)
                read_from(&b, 0, step, &e);
            request_body_free(&b);
            free(e.data);
            spool_free(sp);
        }
    }
}

/* An empty message and no message at all: only the bytes remain. */
static void test_empty_message(void **state)
{
    (void)state;
    struct spool *sp = make_spool("", 0, MEMORY_BYTES);
    const struct spool *spools[] = {sp, NULL};
    for (size_t i = 0; i < 2; i++) {
        struct request_body b;
        /* without a spool the message size is 0 whatever is passed */
        request_body_init(&b, spools[i], spools[i] != NULL ? 0 : 777);
        assert_int_equal(b.message_size, 0);
        assert_int_equal(request_body_add_message(&b, true), 0);
        assert_int_equal(request_body_add_str(&b, "{\"m\":\""), 0);
        assert_int_equal(request_body_add_message(&b, true), 0);
        assert_int_equal(request_body_add_message(&b, false), 0);
        assert_int_equal(request_body_add_str(&b, "\"}"), 0);
        assert_int_equal(request_body_add_message(&b, false), 0);
        assert_int_equal(b.size, 8);
        struct expect e = {0};
        expect_add(&e, "{\"m\":\"\"}", 8);
        for (uint64_t off = 0; off <= e.len; off++)
            for (size_t step = 1; step <= CHUNK_MAX; step++)
                read_from(&b, off, step, &e);
        request_body_free(&b);
        free(e.data);
        /* nothing at all */
        request_body_init(&b, spools[i], 0);
        assert_int_equal(request_body_add_message(&b, false), 0);
        assert_int_equal(b.size, 0);
        size_t got = 1;
        char c;
        assert_int_equal(request_body_read(&b, 0, &c, 1, &got), 0);
        assert_int_equal(got, 0);
        request_body_free(&b);
    }
    spool_free(sp);
}

static void test_memory(void **state)
{
    (void)state;
    const char msg[] = "Subject: m\r\n\r\nbody\r\n";
    size_t len = sizeof(msg) - 1;
    struct spool *mem = make_spool(msg, len, MEMORY_BYTES);
    struct spool *file = make_spool(msg, len, FILE_BYTES);
    struct request_body b;

    /* the message alone, held in memory: the spool's own bytes */
    request_body_init(&b, mem, len);
    assert_int_equal(request_body_add_message(&b, false), 0);
    assert_ptr_equal(request_body_memory(&b), spool_memory(mem));
    assert_memory_equal(request_body_memory(&b), msg, len);
    request_body_free(&b);

    /* the message alone, in the file: no contiguous run */
    request_body_init(&b, file, len);
    assert_int_equal(request_body_add_message(&b, false), 0);
    assert_null(request_body_memory(&b));
    request_body_free(&b);

    /* bytes alone */
    request_body_init(&b, mem, len);
    assert_int_equal(request_body_add_str(&b, "{\"a\":1}"), 0);
    assert_non_null(request_body_memory(&b));
    assert_memory_equal(request_body_memory(&b), "{\"a\":1}", 7);
    assert_int_equal(b.size, 7);
    request_body_free(&b);

    /* bytes alone, without a spool */
    request_body_init(&b, NULL, 0);
    assert_int_equal(request_body_add(&b, "xyz", 3), 0);
    assert_memory_equal(request_body_memory(&b), "xyz", 3);
    request_body_free(&b);

    /* base64 alone: computed at read time, never in memory */
    request_body_init(&b, mem, len);
    assert_int_equal(request_body_add_message(&b, true), 0);
    assert_null(request_body_memory(&b));
    request_body_free(&b);

    /* two pieces: not one run */
    request_body_init(&b, mem, len);
    assert_int_equal(request_body_add_str(&b, "X-Original-To: a@b\r\n"), 0);
    assert_int_equal(request_body_add_message(&b, false), 0);
    assert_null(request_body_memory(&b));
    request_body_free(&b);
    request_body_init(&b, mem, len);
    assert_int_equal(request_body_add_str(&b, "a"), 0);
    assert_int_equal(request_body_add_str(&b, "b"), 0);
    assert_null(request_body_memory(&b));
    request_body_free(&b);

    /* nothing */
    request_body_init(&b, mem, len);
    assert_null(request_body_memory(&b));
    request_body_free(&b);

    spool_free(mem);
    spool_free(file);
}

/* read_rc - the code of one read of len at off. */
static int read_rc(struct request_body *b, uint64_t off, size_t len)
{
    char buf[64];
    size_t got = 0;
    assert_true(len <= sizeof(buf));
    return request_body_read(b, off, buf, len, &got);
}

/* A spool shorter than the body (the message_size given at init) is SH_EIO, not garbage or
 * a short body, in either kind of piece, whichever offset the read starts at. */
static void test_spool_shorter(void **state)
{
    (void)state;
    const char msg[] = "0123456789abcdefghij"; /* 20 bytes */
    size_t len = sizeof(msg) - 1;
    for (size_t k = 0; k < 2; k++) {
        struct spool *sp = make_spool(msg, len, spool_kinds[k]);
        struct request_body b;

        /* the message piece: the first read into the missing part fails */
        request_body_init(&b, sp, len + 10);
        assert_int_equal(request_body_add_str(&b, "<"), 0);
        assert_int_equal(request_body_add_message(&b, false), 0);
        assert_int_equal(request_body_add_str(&b, ">"), 0);
        assert_int_equal(b.size, 1 + len + 10 + 1);
        assert_int_equal(read_rc(&b, 0, 21), 0); /* what exists reads fine */
        assert_int_equal(read_rc(&b, 0, 22), SH_EIO);
        assert_int_equal(read_rc(&b, 21, 1), SH_EIO);
        assert_int_equal(read_rc(&b, 25, 7), SH_EIO);
        assert_int_equal(read_rc(&b, 30, 1), SH_EIO); /* its last byte */
        assert_int_equal(read_rc(&b, 31, 1), 0);      /* the byte after it is there */
        request_body_free(&b);

        /* the base64 piece: 30 bytes are 40 characters, 20 bytes only 28 */
        request_body_init(&b, sp, len + 10);
        assert_int_equal(request_body_add_message(&b, true), 0);
        assert_int_equal(request_body_add_str(&b, "!"), 0);
        assert_int_equal(b.size, BASE64_SIZE(len + 10) + 1);
        for (uint64_t off = 0; off < BASE64_SIZE(len + 10); off++) {
            if (off < BASE64_SIZE(18))
                continue; /* whole groups of bytes that exist may read */
            int rc = read_rc(&b, off, 1);
            if (rc != SH_EIO)
                print_message("  base64 read at %llu: %d\n", (unsigned long long)off, rc);
            assert_int_equal(rc, SH_EIO);
        }
        assert_int_equal(read_rc(&b, 0, 41), SH_EIO);
        request_body_free(&b);
        spool_free(sp);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_every_offset_every_chunk),
        cmocka_unit_test(test_large_chunks_and_offsets),
        cmocka_unit_test(test_single_pieces),
        cmocka_unit_test(test_empty_message),
        cmocka_unit_test(test_memory),
        cmocka_unit_test(test_spool_shorter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
