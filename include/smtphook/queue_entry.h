/* queue_entry.h - one queued share of a message: its file format and its retry schedule.
 *
 * An entry is what the queue keeps for one message and one endpoint (for a "failover"
 * route: one message and the route's endpoints, tried in order): the envelope of the
 * share (its recipients only), the Idempotency-Key every attempt carries, when it was
 * queued, when it is tried next, and the history of its attempts. The message itself is a
 * file of its own beside the entry (queue_store.h).
 *
 * The entry file is text, one field per line, "name value", the value escaped so that it
 * holds no byte below 0x21, no DEL and no '%' ("%XX" for each of those), the first line
 * "smtphook-queue-entry 1" and the last "end": a reader knows a truncated file. Pure: no
 * file or libuv here, so the reader is unit-tested and fuzzed on bytes. */
#ifndef SMTPHOOK_QUEUE_ENTRY_H
#define SMTPHOOK_QUEUE_ENTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smtphook/buf.h"
#include "smtphook/config.h"
#include "smtphook/digest.h"
#include "smtphook/envelope.h"

#define QUEUE_ENTRY_VERSION     1u
#define QUEUE_ENTRY_NAME_MAX    (ENVELOPE_ID_MAX + 8) /* "<txn id>-<n>" */
#define QUEUE_ENTRY_HISTORY_MAX 32u                   /* attempts kept in the file: the last ones */
#define QUEUE_ENTRY_TEXT_MAX    200u                  /* bytes of an attempt's reason */
#define QUEUE_ENTRY_FILE_MAX    (4u << 20)            /* a longer entry file is not read */

/* One attempt of the entry, as the history keeps it. */
struct queue_attempt {
    int64_t at_ms;  /* Unix ms when it ended */
    char *endpoint; /* the endpoint tried */
    long status;    /* HTTP status, 0 without an answer */
    unsigned code;  /* the SMTP reply it came to: 250, 451, 550, ... */
    char esc[16];   /* its enhanced status code */
    char *text;     /* its reason: the app's reply text or why there was no answer */
};

struct queue_entry {
    char name[QUEUE_ENTRY_NAME_MAX + 1]; /* the entry's file name: "<txn id>-<n>" */
    char key[DIGEST_HEX + 1];            /* Idempotency-Key of every attempt */
    char digest[DIGEST_HEX + 1];         /* SHA-256 of the message, hex */
    int64_t queued_ms;                   /* Unix ms when it was queued */
    int64_t next_ms;                     /* no attempt before this Unix ms */
    unsigned attempts;                   /* attempts made in all */
    bool failover;                       /* endpoints in order (else exactly one) */
    char **endpoints;                    /* endpoint names, in order */
    size_t n_endpoints;                  /* entries in endpoints (>= 1) */
    bool body_utf8;                      /* the message is valid UTF-8 */
    struct envelope env;                 /* the share's envelope; every string owned here
                                          * (env.key NULL: the key is above) */
    struct queue_attempt *history;       /* the last requests, oldest first: one per endpoint
                                          * an attempt tried (a failover entry's attempt may
                                          * try several), so at most attempts * n_endpoints */
    size_t n_history;                    /* entries in history */
    int64_t dead_ms;                     /* a dead letter: Unix ms it was given up, else 0 */
    char *dead_reason;                   /* why, or NULL */
};

/* queue_entry_init - an empty entry (nothing allocated). */
void queue_entry_init(struct queue_entry *e);

/* queue_entry_free - release what the entry owns and empty it; NULL is ignored. */
void queue_entry_free(struct queue_entry *e);

/* queue_entry_copy_envelope - copy env (strings included; key excluded) into e. 0 or
 * SH_ENOMEM. */
int queue_entry_copy_envelope(struct queue_entry *e, const struct envelope *env);

/* queue_entry_add_endpoint - append an endpoint name. 0 or SH_ENOMEM. */
int queue_entry_add_endpoint(struct queue_entry *e, const char *name);

/* queue_entry_record - add a request to the history (the oldest goes past
 * QUEUE_ENTRY_HISTORY_MAX) and count an attempt (the caller sets the count when one attempt
 * made several requests). Whatever the reader would refuse is made readable
 * (queue_entry_clean; a status past 999 or a code past 599 becomes 0), so that no attempt
 * can make its entry unreadable. 0 or SH_ENOMEM. */
int queue_entry_record(struct queue_entry *e, int64_t at_ms, const char *endpoint, long status,
                       unsigned code, const char *esc, const char *text);

/* queue_entry_clean - make text what an entry may hold, in place: control characters, and
 * every non-ASCII byte of a text that is not valid UTF-8, become '?'. */
void queue_entry_clean(char *text);

/* queue_entry_format - the entry file's text, appended to out. 0 or SH_ENOMEM. */
int queue_entry_format(const struct queue_entry *e, struct buf *out);

/* queue_entry_parse - read an entry file's text (len bytes) into e (initialized by the call;
 * free it with queue_entry_free also on failure). 0, or SH_EINVAL with the first problem in
 * err ("line 7: bad rcpt value"); SH_ENOMEM. Every string of the envelope is checked to be
 * what the session would have accepted: UTF-8, no control characters. */
int queue_entry_parse(const char *text, size_t len, struct queue_entry *e, char *err,
                      size_t errlen);

/* queue_entry_name_ok - is name an entry name (no '/', no leading '.', at most
 * QUEUE_ENTRY_NAME_MAX bytes of [A-Za-z0-9._-], not ending in ".eml")? The CLI and the admin
 * port take names from users. */
bool queue_entry_name_ok(const char *name);

/* queue_backoff - the wait after attempt number attempts (>= 1) failed for now: "equal
 * jitter" (half, plus random modulo the other half) over retry_backoff_cap with the queue's
 * initial and max backoff. */
uint64_t queue_backoff(const struct config_queue *q, unsigned attempts, uint32_t random);

/* queue_schedule - after a temporary failure at now_ms: true with *next_ms the time of the
 * next attempt (Retry-After when the app gave one, else queue_backoff), never later than
 * queued_ms + max_age_ms, so the last attempt comes at the end of the entry's life; false
 * when that life is over (the entry becomes a dead letter). */
bool queue_schedule(const struct config_queue *q, const struct queue_entry *e, int64_t now_ms,
                    bool has_retry_after, uint64_t retry_after_ms, uint32_t random,
                    int64_t *next_ms);

#endif
