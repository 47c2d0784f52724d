/* fuzz_queue_entry.c - fuzz target: queue_entry_parse on arbitrary bytes, and the round trip
 * of what it reads through queue_entry_format.
 *
 * Input layout: the bytes of an entry file, as read from the queue directory.
 * Invariants (abort on violation):
 * - the reader answers 0, SH_EINVAL or SH_ENOMEM; a refusal has a message "line N: ...", a
 *   success none;
 * - an entry read keeps queue_entry.h's promises: an entry name, 64 lower-case hex digits of
 *   key and digest, one endpoint for "all" and at least one for "failover", none empty, at
 *   least one recipient, every envelope string valid UTF-8 without control characters, no
 *   more history than attempts times endpoints nor than QUEUE_ENTRY_HISTORY_MAX, each text within
 *   QUEUE_ENTRY_TEXT_MAX and valid UTF-8, dead exactly with a dead_reason;
 * - formatted, it is escaped (no control byte but the line ends, no DEL), starts with the
 *   version line and ends with "end\n"; that text (when within QUEUE_ENTRY_FILE_MAX) is read
 *   again and formats to exactly the same bytes; without its last byte it is refused;
 * - the schedule of the entry read never overflows: an attempt no sooner than now and no
 *   later than the end of its life (queued_ms + max_age_ms, saturated), the wait at most
 *   the Retry-After given or else max_backoff_ms.
 * Must not include libuv, curl or jansson. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "smtphook/buf.h"
#include "smtphook/error.h"
#include "smtphook/queue_entry.h"
#include "smtphook/utf8.h"

#define ERR_MAX 256 /* room for the reader's message */

/* text_ok - what every envelope string must be: valid UTF-8, no control character. */
static bool text_ok(const char *s)
{
    if (s == NULL)
        return true;
    size_t n = strlen(s);
    if (!utf8_valid(s, n))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

/* hex64 - 64 lower-case hex digits. */
static bool hex64(const char *s)
{
    if (strlen(s) != DIGEST_HEX)
        return false;
    for (size_t i = 0; i < DIGEST_HEX; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* check_entry - an entry the reader accepted keeps the header's promises. */
static void check_entry(const struct queue_entry *e)
{
    FUZZ_CHECK(queue_entry_name_ok(e->name));
    FUZZ_CHECK(hex64(e->key) && hex64(e->digest));
    FUZZ_CHECK(e->queued_ms >= 0 && e->next_ms >= 0 && e->dead_ms >= 0);
    FUZZ_CHECK(e->n_endpoints >= 1 && (e->failover || e->n_endpoints == 1));
    for (size_t i = 0; i < e->n_endpoints; i++)
        FUZZ_CHECK(e->endpoints[i][0] != '\0' && text_ok(e->endpoints[i]));
    const struct envelope *env = &e->env;
    FUZZ_CHECK(env->key == NULL);
    FUZZ_CHECK(env->id[0] != '\0' && queue_entry_name_ok(env->id));
    FUZZ_CHECK(env->received_at_ms >= 0);
    FUZZ_CHECK(env->client_address != NULL && text_ok(env->client_address));
    FUZZ_CHECK(env->mail_from != NULL && text_ok(env->mail_from));
    FUZZ_CHECK(text_ok(env->helo));
    FUZZ_CHECK(env->n_rcpt >= 1);
    for (size_t i = 0; i < env->n_rcpt; i++)
        FUZZ_CHECK(env->rcpt_to[i][0] != '\0' && text_ok(env->rcpt_to[i]));
    FUZZ_CHECK(env->size <= (uint64_t)INT64_MAX && env->declared_size <= (uint64_t)INT64_MAX);
    FUZZ_CHECK(env->body == ENVELOPE_BODY_NONE || env->body == ENVELOPE_BODY_7BIT ||
               env->body == ENVELOPE_BODY_8BITMIME || env->body == ENVELOPE_BODY_BINARYMIME);
    FUZZ_CHECK(text_ok(env->tls.version) && text_ok(env->tls.cipher) && text_ok(env->tls.sni) &&
               text_ok(env->tls.peer_subject) && text_ok(env->tls.peer_sha256));
    FUZZ_CHECK(e->n_history <= (uint64_t)e->attempts * e->n_endpoints &&
               e->n_history <= QUEUE_ENTRY_HISTORY_MAX);
    for (size_t i = 0; i < e->n_history; i++) {
        const struct queue_attempt *a = &e->history[i];
        FUZZ_CHECK(a->at_ms >= 0 && a->status >= 0 && a->status <= 999 && a->code <= 599);
        FUZZ_CHECK(a->endpoint[0] != '\0' && text_ok(a->endpoint));
        FUZZ_CHECK(strcmp(a->esc, "-") != 0 && text_ok(a->esc));
        FUZZ_CHECK(strlen(a->text) <= QUEUE_ENTRY_TEXT_MAX && text_ok(a->text));
    }
    FUZZ_CHECK((e->dead_ms > 0) == (e->dead_reason != NULL));
    FUZZ_CHECK(text_ok(e->dead_reason));
}

/* check_text - a formatted entry: escaped, one field a line, the version line first and the
 * end line last. */
static void check_text(const struct buf *b)
{
    static const char first[] = "smtphook-queue-entry 1\n";
    FUZZ_CHECK(b->len >= sizeof(first) - 1 + 4);
    FUZZ_CHECK(memcmp(b->data, first, sizeof(first) - 1) == 0);
    FUZZ_CHECK(memcmp(b->data + b->len - 5, "\nend\n", 5) == 0);
    for (size_t i = 0; i < b->len; i++) {
        unsigned char c = (unsigned char)b->data[i];
        FUZZ_CHECK(c == '\n' || (c >= 0x20 && c != 0x7f));
    }
}

/* parse - queue_entry_parse, checking what it answers and its message. */
static int parse(const char *text, size_t len, struct queue_entry *e)
{
    char err[ERR_MAX];
    memset(err, 'x', sizeof(err));
    int rc = queue_entry_parse(text, len, e, err, sizeof(err));
    FUZZ_CHECK(rc == 0 || rc == SH_EINVAL || rc == SH_ENOMEM);
    FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
    if (rc == 0)
        FUZZ_CHECK(err[0] == '\0');
    else if (rc == SH_EINVAL)
        FUZZ_CHECK(strncmp(err, "line ", 5) == 0 && strstr(err, ": ") != NULL);
    return rc;
}

/* sat_end - queued_ms + max_age_ms, saturated at INT64_MAX. */
static int64_t sat_end(int64_t queued_ms, uint64_t max_age_ms)
{
    return (uint64_t)(INT64_MAX - queued_ms) < max_age_ms ? INT64_MAX
                                                          : queued_ms + (int64_t)max_age_ms;
}

/* check_schedule - the next attempt of the entry read, after a failure at now. */
static void check_schedule(const struct queue_entry *e, int64_t now, uint32_t random)
{
    struct config_queue q;
    memset(&q, 0, sizeof(q));
    q.initial_backoff_ms = 1000;
    q.max_backoff_ms = 3600000;
    q.max_age_ms = 2592000000u; /* the largest a configuration may say */
    int64_t end = sat_end(e->queued_ms, q.max_age_ms);
    static const uint64_t afters[] = {0, 1, 86400000, UINT64_MAX};
    for (size_t i = 0; i <= sizeof(afters) / sizeof(afters[0]); i++) {
        bool has = i > 0;
        uint64_t after = has ? afters[i - 1] : 0;
        int64_t next = 0;
        bool again = queue_schedule(&q, e, now, has, after, random, &next);
        FUZZ_CHECK(again == (now < end));
        if (!again)
            continue;
        FUZZ_CHECK(next >= now && next <= end);
        uint64_t wait = (uint64_t)next - (uint64_t)now;
        FUZZ_CHECK(wait <= (has ? after : q.max_backoff_ms));
        FUZZ_CHECK(
            next == end ||
            wait == (has ? after : queue_backoff(&q, e->attempts > 0 ? e->attempts : 1, random)));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct queue_entry e;
    int rc = parse((const char *)data, size, &e);
    if (rc == 0) {
        check_entry(&e);
        struct buf a = {0}, b = {0};
        FUZZ_CHECK(queue_entry_format(&e, &a) == 0);
        check_text(&a);
        if (a.len <= QUEUE_ENTRY_FILE_MAX) {
            struct queue_entry again;
            FUZZ_CHECK(parse(a.data, a.len, &again) == 0);
            check_entry(&again);
            FUZZ_CHECK(queue_entry_format(&again, &b) == 0);
            if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
                FUZZ_FAIL("an entry read back formats to other bytes");
            queue_entry_free(&again);
            /* Cut off by one byte, the text is refused. */
            FUZZ_CHECK(parse(a.data, a.len - 1, &again) == SH_EINVAL);
            queue_entry_free(&again);
        }
        uint32_t random = size >= 4 ? (uint32_t)data[0] | (uint32_t)data[1] << 8 |
                                          (uint32_t)data[2] << 16 | (uint32_t)data[3] << 24
                                    : 0;
        check_schedule(&e, e.queued_ms, random);
        check_schedule(&e, e.next_ms, random);
        check_schedule(&e, 1767268800000, random);
        buf_free(&a);
        buf_free(&b);
    }
    queue_entry_free(&e);
    return 0;
}
