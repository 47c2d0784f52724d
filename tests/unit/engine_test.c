/* engine_test.c - the smtp_engine tests' shared pieces (see engine_test.h). */
#include "engine_test.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#define SPOOL_MEMORY    ((uint64_t)1 << 20) /* spool.memory_bytes: bodies stay in memory */
#define SPOOL_READ_SIZE 7                   /* bytes per spool_read, small to cross reads */

static char host[] = "mx.test";
static char dom1[] = "example.com";
static char *domains[] = {dom1};
static char spool_dir[] = "/tmp";

/* engine_test_config - see engine_test.h. */
struct config engine_test_config(void)
{
    struct config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.hostname = host;
    cfg.domains = domains;
    cfg.n_domains = 1;
    cfg.limits.max_command_line_bytes = 512;
    cfg.limits.max_recipients = 100;
    cfg.limits.max_message_bytes = 100000;
    cfg.limits.idle_timeout_ms = 1000;
    cfg.limits.max_errors = 20;
    cfg.spool.memory_bytes = SPOOL_MEMORY;
    cfg.spool.directory = spool_dir;
    return cfg;
}

/* engine_test_text - see engine_test.h. */
const char *engine_test_text(struct buf *b)
{
    assert_int_equal(buf_append(b, "", 1), 0);
    b->len--;
    return b->data != NULL ? b->data : "";
}

/* engine_test_spool_text - see engine_test.h. */
uint64_t engine_test_spool_text(const struct spool *sp, struct buf *dst)
{
    uint64_t off = 0;
    char piece[SPOOL_READ_SIZE];
    for (;;) {
        size_t got = 0;
        assert_int_equal(spool_read(sp, off, piece, sizeof(piece), &got), 0);
        if (got == 0)
            return off;
        assert_int_equal(buf_append(dst, piece, got), 0);
        off += got;
    }
}
