/* test_mail_header.c - mail_header.c: From, To and Subject of a header section, as golden
 * rows (input, the three values expected, NULL for none). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "golden.h"
#include "smtphook/error.h"
#include "smtphook/mail_header.h"

struct row {
    const char *in;
    size_t len;
    const char *from;
    const char *to;
    const char *subject;
};

static const struct row rows[] = {
    /* the plain case */
    {S("From: a@example.org\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nbody\r\n"), "a@example.org",
     "b@example.com", "hi"},
    /* bare LF line ends */
    {S("From: a@example.org\nTo: b@example.com\nSubject: hi\n\nbody\n"), "a@example.org",
     "b@example.com", "hi"},
    /* folding: each CRLF before white space removed, the white space kept */
    {S("Subject: one\r\n two\r\n\tthree\r\n\r\n"), NULL, NULL, "one two\tthree"},
    {S("Subject: one\n two\n\r\n"), NULL, NULL, "one two"},
    {S("To: a@example.com,\r\n  b@example.com\r\nFrom: c@example.org\r\n\r\n"), "c@example.org",
     "a@example.com,  b@example.com", NULL},
    /* folded right after the colon: the value starts on the next line */
    {S("Subject:\r\n folded\r\n\r\n"), NULL, NULL, "folded"},
    /* first occurrence wins, folded or not */
    {S("Subject: first\r\nSubject: second\r\n\r\n"), NULL, NULL, "first"},
    {S("From: a@x\r\n b\r\nFrom: c@y\r\n d\r\n\r\n"), "a@x b", NULL, NULL},
    /* names case-insensitive */
    {S("FROM: a@x\r\nto: b@y\r\nsUbJeCt: s\r\n\r\n"), "a@x", "b@y", "s"},
    /* obs-optional: white space before the colon */
    {S("Subject : obs\r\n\r\n"), NULL, NULL, "obs"},
    {S("Subject\t \t: obs\r\n\r\n"), NULL, NULL, "obs"},
    /* surrounding white space trimmed, inner kept */
    {S("Subject: \t  a  b \t \r\n\r\n"), NULL, NULL, "a  b"},
    {S("Subject:nospace\r\n\r\n"), NULL, NULL, "nospace"},
    /* 8-bit bytes and encoded words kept as they are */
    {S("Subject: caf\xc3\xa9 \xff\xfe\r\n\r\n"), NULL, NULL, "caf\xc3\xa9 \xff\xfe"},
    {S("Subject: =?UTF-8?B?Y2Fmw6k=?=\r\n\r\n"), NULL, NULL, "=?UTF-8?B?Y2Fmw6k=?="},
    /* an empty value is an empty string, not NULL */
    {S("Subject:\r\nFrom: a@x\r\n\r\n"), "a@x", NULL, ""},
    {S("Subject:   \r\n\r\n"), NULL, NULL, ""},
    /* missing fields are NULL; other fields are skipped */
    {S("Date: Tue, 1 Dec 2026 00:00:00 +0000\r\nX-Long: a\r\n b\r\nTo: t@x\r\n\r\n"), NULL, "t@x",
     NULL},
    {S("Received: from x\r\n by y\r\n\r\n"), NULL, NULL, NULL},
    /* names that only start like a kept one */
    {S("From-X: no\r\nTox: no\r\nSubjects: no\r\nResent-From: no\r\n\r\n"), NULL, NULL, NULL},
    /* the empty line ends the section: a From: in the body is not read */
    {S("Subject: s\r\n\r\nFrom: body@x\r\nTo: body@y\r\n"), NULL, NULL, "s"},
    {S("Subject: s\n\nFrom: body@x\n"), NULL, NULL, "s"},
    {S("\r\nFrom: body@x\r\n"), NULL, NULL, NULL},
    /* a line that is not a field ends it too */
    {S("Subject: s\r\nnot a field\r\nFrom: a@x\r\n\r\n"), NULL, NULL, "s"},
    {S("Subject: s\r\n: no name\r\nFrom: a@x\r\n\r\n"), NULL, NULL, "s"},
    {S("Subject: s\r\nFr\xc3\xb6m: a@x\r\nTo: t@x\r\n\r\n"), NULL, NULL, "s"},
    {S("Subject: s\r\nFrom\r\nTo: t@x\r\n\r\n"), NULL, NULL, "s"},
    {S("From a@x Tue Dec  1 00:00:00 2026\r\nSubject: s\r\n\r\n"), NULL, NULL, NULL},
    /* the end of the text ends it: no body, no final line end */
    {S("From: a@x\r\nSubject: end"), "a@x", NULL, "end"},
    {S("From: a@x\r\nSubject: end\r\n"), "a@x", NULL, "end"},
    {S("Subject: end\r\n folded"), NULL, NULL, "end folded"},
    {S("Subject: end\r"), NULL, NULL, "end"},
    {S("Subject"), NULL, NULL, NULL},
    {S(""), NULL, NULL, NULL},
    /* a NUL in a value ends it there */
    {S("Subject: before\0after\r\nFrom: a@x\r\n\r\n"), "a@x", NULL, "before"},
    {S("Subject: \0after\r\n\r\n"), NULL, NULL, ""},
    {S("Subject: a\r\n b\0c\r\n d\r\n\r\n"), NULL, NULL, "a b"},
    /* the value ends at the NUL, and a value has its surrounding white space trimmed */
    {S("Subject: before \0after\r\n\r\n"), NULL, NULL, "before"},
};

static void show_value(const char *what, const char *v)
{
    if (v == NULL)
        print_message("  %s: NULL\n", what);
    else
        golden_show(what, v, strlen(v));
}

static bool same(const char *got, const char *want)
{
    if (got == NULL || want == NULL)
        return got == want;
    return strcmp(got, want) == 0;
}

static void test_golden_rows(void **state)
{
    (void)state;
    int failed = 0;
    for (size_t i = 0; i < N(rows); i++) {
        const struct row *r = &rows[i];
        struct mail_header_fields f;
        memset(&f, 0xa5, sizeof(f)); /* cleared by the parser */
        assert_int_equal(mail_header_parse(r->in, r->len, &f), 0);
        if (!same(f.from, r->from) || !same(f.to, r->to) || !same(f.subject, r->subject)) {
            print_message("row %zu:\n", i);
            golden_show("input", r->in, r->len);
            show_value("from", f.from);
            show_value("to", f.to);
            show_value("subject", f.subject);
            failed++;
        }
        mail_header_free(&f);
        assert_null(f.from);
        assert_null(f.to);
        assert_null(f.subject);
    }
    assert_int_equal(failed, 0);
}

/* value_of_len - "Subject: " and n 'x' as a header section; the parsed subject. */
static char *subject_of(size_t n, const char *before)
{
    size_t pl = strlen(before);
    char *in = malloc(pl + n + 4);
    assert_non_null(in);
    memcpy(in, before, pl);
    memset(in + pl, 'x', n);
    memcpy(in + pl + n, "\r\n\r\n", 4);
    struct mail_header_fields f;
    assert_int_equal(mail_header_parse(in, pl + n + 4, &f), 0);
    free(in);
    assert_non_null(f.subject);
    char *s = f.subject;
    f.subject = NULL;
    mail_header_free(&f);
    for (size_t i = 0; s[i] != '\0'; i++)
        assert_int_equal(s[i], 'x');
    return s;
}

/* A value of MAIL_HEADER_VALUE_MAX is kept whole; a longer one is cut there. */
static void test_value_max(void **state)
{
    (void)state;
    const size_t max = MAIL_HEADER_VALUE_MAX;
    const size_t lens[] = {max - 1, max, max + 1, 3 * max};
    for (size_t i = 0; i < N(lens); i++) {
        char *s = subject_of(lens[i], "Subject:");
        assert_int_equal(strlen(s), lens[i] < max ? lens[i] : max);
        free(s);
        /* The usual space after the colon is not part of the value. */
        s = subject_of(lens[i], "Subject: ");
        if (strlen(s) != (lens[i] < max ? lens[i] : max))
            print_message("  \"Subject: \" and %zu bytes: value of %zu bytes\n", lens[i],
                          strlen(s));
        assert_int_equal(strlen(s), lens[i] < max ? lens[i] : max);
        free(s);
    }
}

/* The limit holds across folded lines, and the field after a cut one is still read. */
static void test_value_max_folded(void **state)
{
    (void)state;
    const size_t max = MAIL_HEADER_VALUE_MAX;
    size_t lines = 3 * max / 100 + 2;
    char *in = malloc(lines * 104 + 64);
    assert_non_null(in);
    size_t o = 0;
    o += (size_t)sprintf(in + o, "Subject: s");
    for (size_t i = 0; i < lines; i++) {
        memcpy(in + o, "\r\n ", 3);
        o += 3;
        memset(in + o, 'y', 99);
        o += 99;
    }
    o += (size_t)sprintf(in + o, "\r\nFrom: after@x\r\n\r\n");
    struct mail_header_fields f;
    assert_int_equal(mail_header_parse(in, o, &f), 0);
    free(in);
    assert_non_null(f.subject);
    assert_true(strlen(f.subject) <= max);
    assert_true(strlen(f.subject) >= max - 1); /* cut at the limit, not earlier */
    assert_memory_equal(f.subject, "s yyy", 5);
    assert_null(strchr(f.subject, '\n'));
    assert_null(strchr(f.subject, '\r'));
    assert_string_equal(f.from, "after@x");
    mail_header_free(&f);
}

/* Only the len bytes given are read: a field cut by the end of the text is what came. */
static void test_reads_only_len(void **state)
{
    (void)state;
    const char text[] = "Subject: abcdef\r\nFrom: a@x\r\n\r\n";
    for (size_t len = 0; len <= sizeof(text) - 1; len++) {
        char *copy = malloc(len > 0 ? len : 1); /* exactly len bytes: ASan sees any overread */
        assert_non_null(copy);
        memcpy(copy, text, len);
        struct mail_header_fields f;
        assert_int_equal(mail_header_parse(copy, len, &f), 0);
        free(copy);
        if (len < strlen("Subject:"))
            assert_null(f.subject);
        else {
            assert_non_null(f.subject);
            assert_true(strlen(f.subject) <= strlen("abcdef"));
            assert_memory_equal(f.subject, "abcdef", strlen(f.subject));
        }
        if (len >= strlen("Subject: abcdef\r\nFrom: a@x"))
            assert_string_equal(f.from, "a@x");
        mail_header_free(&f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_rows),
        cmocka_unit_test(test_value_max),
        cmocka_unit_test(test_value_max_folded),
        cmocka_unit_test(test_reads_only_len),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
