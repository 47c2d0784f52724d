/* fuzz_base64.c - fuzz target: base64_decode on the input, and the round trip of the input
 * as bytes.
 *
 * Invariants (abort on violation):
 * - never crashes, reads past the input or writes past len / 4 * 3 bytes;
 * - the decoder accepts only canonical text: when the input decodes, its length is a
 *   multiple of 4, the bytes number len / 4 * 3 less its padding, and encoding them gives
 *   the input back exactly;
 * - the input as bytes encodes to BASE64_SIZE(size) characters that decode back to it.
 * Must not include libuv, curl or jansson. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "smtphook/base64.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size > 0 ? size : 1); /* exactly the input: ASan sees overreads */
    uint8_t *dec = malloc(size / 4 * 3 + 1);
    char *enc = malloc(BASE64_SIZE(size) + 1);
    uint8_t *back = malloc(BASE64_SIZE(size) / 4 * 3 + 1);
    if (text == NULL || dec == NULL || enc == NULL || back == NULL)
        goto out;
    memcpy(text, data, size);
    long n = base64_decode(text, size, dec);
    if (n >= 0) {
        FUZZ_CHECK(size % 4 == 0);
        size_t pad =
            size >= 1 && text[size - 1] == '=' ? (size >= 2 && text[size - 2] == '=' ? 2 : 1) : 0;
        FUZZ_CHECK((size_t)n == size / 4 * 3 - pad);
        size_t e = base64_encode(dec, (size_t)n, enc);
        FUZZ_CHECK(e == size);
        FUZZ_CHECK(memcmp(enc, text, size) == 0);
    } else {
        FUZZ_CHECK(n == -1);
    }
    size_t e = base64_encode(data, size, enc);
    FUZZ_CHECK(e == BASE64_SIZE(size));
    FUZZ_CHECK(enc[e] == '\0');
    FUZZ_CHECK(base64_decode(enc, e, back) == (long)size);
    FUZZ_CHECK(memcmp(back, data, size) == 0);
out:
    free(text);
    free(dec);
    free(enc);
    free(back);
    return 0;
}
