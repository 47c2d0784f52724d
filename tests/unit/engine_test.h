/* engine_test.h - what the tests that drive smtp_engine as conn.c does share (test_session,
 * test_smtp_engine): the configuration they start from, a buffer as a string for string
 * asserts, and a message's spool read back. Failures are cmocka assertions. */
#ifndef SMTPHOOK_TEST_ENGINE_TEST_H
#define SMTPHOOK_TEST_ENGINE_TEST_H

#include <stdint.h>

#include "smtphook/buf.h"
#include "smtphook/config.h"
#include "smtphook/spool.h"

/* engine_test_config - the limits under test: host mx.test serving example.com, command lines
 * of 512 bytes, 100 recipients, 100000-byte messages, 20 errors, bodies in memory up to
 * 1 MiB (then in a file in /tmp). A test changes what it needs in its copy. */
struct config engine_test_config(void);

/* engine_test_text - b as a NUL-terminated string (valid until b changes), "" when empty. */
const char *engine_test_text(struct buf *b);

/* engine_test_spool_text - append the whole spool to dst, read back the way a delivery reads
 * it, a few bytes a read (so reads cross the spool's parts); returns the bytes read. */
uint64_t engine_test_spool_text(const struct spool *sp, struct buf *dst);

#endif
