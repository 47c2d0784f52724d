/* fuzz.h - what every fuzz target shares: the libFuzzer entry point and the check macro.
 *
 * A target is built two ways: with libFuzzer (clang -fsanitize=fuzzer) and with replay.c as
 * its main (any compiler, used by ctest to replay the seed corpus). Must not include
 * libFuzzer headers, libuv, curl or jansson. */
#ifndef SMTPHOOK_FUZZ_H
#define SMTPHOOK_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* LLVMFuzzerTestOneInput - run one input; returns 0 (libFuzzer's contract). A broken
 * invariant aborts, which libFuzzer and ctest both report as a failure. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* FUZZ_CHECK - abort with the failed condition and its line when an invariant breaks. */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* FUZZ_FAIL - abort with a message: a case that must not happen was reached. */
#define FUZZ_FAIL(what)                                                                            \
    do {                                                                                           \
        fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, what);                                  \
        abort();                                                                                   \
    } while (0)

#endif
