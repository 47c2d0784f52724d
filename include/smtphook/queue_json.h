/* queue_json.h - queue entries as JSON, for the CLI's --json and the admin port.
 *
 * An entry is {"name", "id", "endpoints": [...], "policy", "from", "recipients": [...],
 * "size", "key", "queued_at_ms", "next_attempt_ms", "attempts", "last": {...} or null}, a
 * dead letter adds "dead_at_ms" and "dead_reason", and with history "history": [{"at_ms",
 * "endpoint", "status", "code", "esc", "text"}, ...]. Only this file (besides config.c and
 * payload.c) includes jansson. */
#ifndef SMTPHOOK_QUEUE_JSON_H
#define SMTPHOOK_QUEUE_JSON_H

#include <stdbool.h>

#include "smtphook/buf.h"
#include "smtphook/queue_store.h"

/* queue_json_entry - one entry (with its history when history) appended to out. 0 or
 * SH_ENOMEM. */
int queue_json_entry(const struct queue_entry *e, bool history, struct buf *out);

/* queue_json_list - {"entries": [...]} of which, appended to out. 0, SH_ENOMEM or the
 * store's error. */
int queue_json_list(struct queue_store *s, enum queue_which which, struct buf *out);

/* queue_json_all - {"entries": [...active...], "dead": [...], "truncated": bool} appended to
 * out: at most limit of each (0: all), "truncated" when there were more (the admin port
 * answers from the loop and reads no more than that; the CLI lists everything). */
int queue_json_all(struct queue_store *s, size_t limit, struct buf *out);

#endif
