/* golden.c - the golden-table tests' shared helpers (see golden.h). */
#include "golden.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

void golden_show(const char *what, const char *s, size_t len)
{
    char out[4 * GOLDEN_SHOW_BYTES + 1];
    size_t o = 0;
    for (size_t i = 0; i < len && o + 5 < sizeof(out); i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, sizeof(out) - o, "\\x%02x", c);
    }
    out[o] = '\0';
    print_message("  %s: \"%s\"\n", what, out);
}
