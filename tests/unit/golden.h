/* golden.h - what the golden-table unit tests share (one row per input): a string literal
 * with its length for a row, the rows of a table, and a failing row's bytes printed with
 * escapes. Compiled into the tests that include it (tests/CMakeLists.txt). */
#ifndef SMTPHOOK_TEST_GOLDEN_H
#define SMTPHOOK_TEST_GOLDEN_H

#include <stddef.h>

/* S - a string literal and its length, so rows may contain NUL bytes. */
#define S(x) x, sizeof(x) - 1

/* N - the rows of a table. */
#define N(a) (sizeof(a) / sizeof((a)[0]))

#define GOLDEN_SHOW_BYTES 600 /* golden_show prints at most this many input bytes */

/* golden_show - print "  what: "s"" with every byte outside printable ASCII (and the
 * backslash) as \xNN, for a failure message (cmocka's print_message). */
void golden_show(const char *what, const char *s, size_t len);

#endif
