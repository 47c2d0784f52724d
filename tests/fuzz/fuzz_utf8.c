/* fuzz_utf8.c - fuzz target: utf8.c against a decoder written here from RFC 3629 §3.
 *
 * Invariants (abort on violation):
 * - utf8_valid agrees with the reference: every sequence decodes to a scalar value
 *   (U+0000..U+10FFFF, no surrogates) in its shortest form;
 * - fed in pieces cut where the first byte says (and byte by byte), the verdict is the same.
 * Must not include libuv, curl or jansson. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "smtphook/utf8.h"

/* reference_valid - decode each sequence by its length and check what it decodes to. */
static bool reference_valid(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        size_t len = c < 0x80             ? 1
                     : (c & 0xe0) == 0xc0 ? 2
                     : (c & 0xf0) == 0xe0 ? 3
                     : (c & 0xf8) == 0xf0 ? 4
                                          : 0;
        if (len == 0 || i + len > n)
            return false;
        uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1fu) : len == 3 ? (c & 0x0fu) : (c & 0x07u);
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[i + k] & 0x3fu);
        }
        static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < least[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size > 0 ? size : 1); /* exactly the input: ASan sees overreads */
    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    bool want = reference_valid(copy, size);
    FUZZ_CHECK(utf8_valid(copy, size) == want);
    size_t cut = size > 0 ? copy[0] % (size + 1) : 0;
    struct utf8_state u = {0};
    utf8_feed(&u, copy, cut);
    utf8_feed(&u, copy + cut, size - cut);
    FUZZ_CHECK(utf8_done(&u) == want);
    struct utf8_state b = {0};
    for (size_t i = 0; i < size; i++)
        utf8_feed(&b, copy + i, 1);
    FUZZ_CHECK(utf8_done(&b) == want);
    free(copy);
    return 0;
}
