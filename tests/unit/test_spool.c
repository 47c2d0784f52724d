/* test_spool.c - the message spool: memory, the move to an unlinked temporary file, reads at
 * offsets by several readers, and binary bytes kept exactly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <unistd.h>

#include "smtphook/error.h"
#include "smtphook/spool.h"

#define BIG_BODY 300000u /* well past the memory limits used below */

/* pattern - a deterministic body with every byte value, NUL and 8-bit included. */
static void pattern(char *dst, size_t len, unsigned seed)
{
    uint32_t x = seed * 2654435761u + 1u;
    for (size_t i = 0; i < len; i++) {
        x = x * 1103515245u + 12345u;
        dst[i] = (char)(unsigned char)(x >> 16);
    }
}

/* read_all - the whole spool through spool_read in pieces of step bytes. */
static char *read_all(const struct spool *sp, size_t step)
{
    size_t size = (size_t)spool_size(sp);
    char *out = malloc(size + 1);
    assert_non_null(out);
    uint64_t off = 0;
    for (;;) {
        size_t got = 0;
        assert_int_equal(spool_read(sp, off, out + off, step, &got), 0);
        if (got == 0)
            break;
        assert_true(got <= step);
        off += got;
    }
    assert_int_equal(off, size);
    return out;
}

/* dir_entries - entries in a directory besides "." and "..". */
static int dir_entries(const char *path)
{
    DIR *dir = opendir(path);
    assert_non_null(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    }
    closedir(dir);
    return n;
}

/* make_dir - a fresh private directory for temporary files. */
static char *make_dir(void)
{
    const char *tmp = getenv("TMPDIR");
    char *path = malloc(512);
    assert_non_null(path);
    snprintf(path, 512, "%s/test_spool-XXXXXX", tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    assert_non_null(mkdtemp(path));
    return path;
}

static void test_memory_only(void **state)
{
    (void)state;
    struct spool *sp = NULL;
    assert_int_equal(spool_new("/nonexistent-smtphook-dir", 1024, &sp), 0);
    assert_int_equal(spool_size(sp), 0);
    size_t got = 99;
    char buf[16];
    assert_int_equal(spool_read(sp, 0, buf, sizeof(buf), &got), 0);
    assert_int_equal(got, 0);

    assert_int_equal(spool_append(sp, "hello, ", 7), 0);
    assert_int_equal(spool_append(sp, "world", 5), 0);
    assert_int_equal(spool_append(sp, "", 0), 0);
    assert_int_equal(spool_size(sp), 12);
    assert_int_equal(spool_in_file(sp), 0);
    char *all = read_all(sp, 5);
    assert_memory_equal(all, "hello, world", 12);
    free(all);

    /* Exactly at the limit still stays in memory (the directory does not even exist). */
    char fill[1024 - 12];
    memset(fill, 'x', sizeof(fill));
    assert_int_equal(spool_append(sp, fill, sizeof(fill)), 0);
    assert_int_equal(spool_size(sp), 1024);
    assert_int_equal(spool_in_file(sp), 0);
    spool_free(sp);
}

static void test_crossing_into_file(void **state)
{
    (void)state;
    char *dir = make_dir();
    struct spool *sp = NULL;
    assert_int_equal(spool_new(dir, 100, &sp), 0);
    char body[250];
    pattern(body, sizeof(body), 1);
    assert_int_equal(spool_append(sp, body, 60), 0);
    assert_int_equal(spool_in_file(sp), 0);
    assert_int_equal(spool_append(sp, body + 60, 40), 0); /* 100: still memory */
    assert_int_equal(spool_in_file(sp), 0);
    assert_int_equal(spool_append(sp, body + 100, 1), 0); /* 101: the file */
    assert_int_equal(spool_in_file(sp), 1);
    assert_int_equal(spool_append(sp, body + 101, 149), 0);
    assert_int_equal(spool_size(sp), 250);
    assert_int_equal(dir_entries(dir), 0);
    char *all = read_all(sp, 7);
    assert_memory_equal(all, body, sizeof(body));
    free(all);
    spool_free(sp);
    assert_int_equal(rmdir(dir), 0);
    free(dir);
}

static void test_zero_memory_goes_to_file(void **state)
{
    (void)state;
    char *dir = make_dir();
    struct spool *sp = NULL;
    assert_int_equal(spool_new(dir, 0, &sp), 0);
    assert_int_equal(spool_in_file(sp), 0); /* nothing yet */
    assert_int_equal(spool_append(sp, "a", 1), 0);
    assert_int_equal(spool_in_file(sp), 1);
    assert_int_equal(spool_append(sp, "bc", 2), 0);
    char *all = read_all(sp, 1);
    assert_memory_equal(all, "abc", 3);
    free(all);
    assert_int_equal(dir_entries(dir), 0);
    spool_free(sp);
    assert_int_equal(rmdir(dir), 0);
    free(dir);
}

/* check_offsets - reads at arbitrary offsets and lengths, including past the end. */
static void check_offsets(const struct spool *sp, const char *body, size_t size)
{
    static const uint64_t offsets[] = {0, 1, 99, 100, 101, 4095, 4096, 65535, 65536, 123457};
    char buf[5000];
    for (size_t i = 0; i < sizeof(offsets) / sizeof(offsets[0]); i++) {
        uint64_t off = offsets[i];
        size_t got = 0;
        assert_int_equal(spool_read(sp, off, buf, sizeof(buf), &got), 0);
        size_t expect = off >= size ? 0 : (size - off < sizeof(buf) ? size - off : sizeof(buf));
        assert_int_equal(got, expect);
        if (got > 0)
            assert_memory_equal(buf, body + off, got);
    }
    size_t got = 1;
    assert_int_equal(spool_read(sp, size, buf, sizeof(buf), &got), 0);
    assert_int_equal(got, 0);
    assert_int_equal(spool_read(sp, size + 1000, buf, sizeof(buf), &got), 0);
    assert_int_equal(got, 0);
    assert_int_equal(spool_read(sp, 0, buf, 0, &got), 0);
    assert_int_equal(got, 0);
}

static void test_reads_at_offsets(void **state)
{
    (void)state;
    char *dir = make_dir();
    char *body = malloc(BIG_BODY);
    assert_non_null(body);
    pattern(body, BIG_BODY, 2);
    /* Same checks with the body in memory and in the file. */
    uint64_t limits[] = {BIG_BODY, 100};
    for (size_t k = 0; k < 2; k++) {
        struct spool *sp = NULL;
        assert_int_equal(spool_new(dir, limits[k], &sp), 0);
        assert_int_equal(spool_append(sp, body, BIG_BODY), 0);
        assert_int_equal(spool_in_file(sp), k == 1);
        check_offsets(sp, body, BIG_BODY);
        spool_free(sp);
    }
    free(body);
    assert_int_equal(rmdir(dir), 0);
    free(dir);
}

static void test_concurrent_readers(void **state)
{
    (void)state;
    char *dir = make_dir();
    char *body = malloc(BIG_BODY);
    assert_non_null(body);
    pattern(body, BIG_BODY, 3);
    struct spool *sp = NULL;
    assert_int_equal(spool_new(dir, 4096, &sp), 0);
    assert_int_equal(spool_append(sp, body, BIG_BODY), 0);
    assert_int_equal(spool_in_file(sp), 1);

    /* Three readers interleave with different step sizes; none disturbs another. */
    char *copy[3];
    uint64_t off[3] = {0, 0, 0};
    const size_t step[3] = {1000, 4096, 7777};
    int active = 3;
    for (int r = 0; r < 3; r++) {
        copy[r] = malloc(BIG_BODY);
        assert_non_null(copy[r]);
    }
    while (active > 0) {
        active = 0;
        for (int r = 0; r < 3; r++) {
            size_t got = 0;
            assert_int_equal(spool_read(sp, off[r], copy[r] + off[r], step[r], &got), 0);
            off[r] += got;
            if (got > 0)
                active++;
        }
    }
    for (int r = 0; r < 3; r++) {
        assert_int_equal(off[r], BIG_BODY);
        assert_memory_equal(copy[r], body, BIG_BODY);
        free(copy[r]);
    }
    spool_free(sp);
    free(body);
    assert_int_equal(rmdir(dir), 0);
    free(dir);
}

static void test_binary_bytes(void **state)
{
    (void)state;
    char *dir = make_dir();
    char bytes[256 * 3];
    for (size_t i = 0; i < sizeof(bytes); i++)
        bytes[i] = (char)(unsigned char)(i % 256); /* NUL, CR, LF, 0x80..0xFF */
    for (uint64_t limit = 0; limit <= sizeof(bytes); limit += 256) {
        struct spool *sp = NULL;
        assert_int_equal(spool_new(dir, limit, &sp), 0);
        for (size_t i = 0; i < sizeof(bytes); i += 100) {
            size_t n = sizeof(bytes) - i < 100 ? sizeof(bytes) - i : 100;
            assert_int_equal(spool_append(sp, bytes + i, n), 0);
        }
        assert_int_equal(spool_size(sp), sizeof(bytes));
        char *all = read_all(sp, 33);
        assert_memory_equal(all, bytes, sizeof(bytes));
        free(all);
        spool_free(sp);
    }
    assert_int_equal(rmdir(dir), 0);
    free(dir);
}

static void test_large_body_uses_unlinked_file(void **state)
{
    (void)state;
    char *dir = make_dir();
    char *body = malloc(BIG_BODY);
    assert_non_null(body);
    pattern(body, BIG_BODY, 4);
    struct spool *sp = NULL;
    assert_int_equal(spool_new(dir, 65536, &sp), 0);
    /* Uneven chunks, as a network read delivers them. */
    size_t off = 0, chunk = 1;
    while (off < BIG_BODY) {
        size_t n = BIG_BODY - off < chunk ? BIG_BODY - off : chunk;
        assert_int_equal(spool_append(sp, body + off, n), 0);
        off += n;
        chunk = chunk * 3 + 1;
        if (chunk > 20000)
            chunk = 17;
        if (spool_size(sp) <= 65536)
            assert_int_equal(spool_in_file(sp), 0);
        else
            assert_int_equal(spool_in_file(sp), 1);
        assert_int_equal(dir_entries(dir), 0); /* unlinked at once */
    }
    assert_int_equal(spool_size(sp), BIG_BODY);
    char *all = read_all(sp, 65536);
    assert_memory_equal(all, body, BIG_BODY);
    free(all);
    spool_free(sp);
    assert_int_equal(dir_entries(dir), 0);
    free(body);
    assert_int_equal(rmdir(dir), 0);
    free(dir);
}

static void test_file_creation_failure(void **state)
{
    (void)state;
    struct spool *sp = NULL;
    assert_int_equal(spool_new("/nonexistent-smtphook-dir/sub", 8, &sp), 0);
    assert_int_equal(spool_append(sp, "12345678", 8), 0);
    assert_int_equal(spool_append(sp, "9", 1), SH_EIO);
    /* What was there is still there and readable. */
    assert_int_equal(spool_size(sp), 8);
    assert_int_equal(spool_in_file(sp), 0);
    char *all = read_all(sp, 3);
    assert_memory_equal(all, "12345678", 8);
    free(all);
    spool_free(sp);
    spool_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_only),
        cmocka_unit_test(test_crossing_into_file),
        cmocka_unit_test(test_zero_memory_goes_to_file),
        cmocka_unit_test(test_reads_at_offsets),
        cmocka_unit_test(test_concurrent_readers),
        cmocka_unit_test(test_binary_bytes),
        cmocka_unit_test(test_large_body_uses_unlinked_file),
        cmocka_unit_test(test_file_creation_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
