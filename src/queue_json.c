/* queue_json.c - queue entries as JSON (see queue_json.h). */
#include "smtphook/queue_json.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "smtphook/error.h"

/* qj_attempt - one history record as an object, or NULL without memory. */
static json_t *qj_attempt(const struct queue_attempt *a)
{
    return json_pack("{s:I, s:s, s:I, s:I, s:s, s:s}", "at_ms", (json_int_t)a->at_ms, "endpoint",
                     a->endpoint, "status", (json_int_t)a->status, "code", (json_int_t)a->code,
                     "esc", a->esc, "text", a->text);
}

/* qj_strings - an array of the strings. */
static json_t *qj_strings(char *const *list, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < n; i++) {
        if (json_array_append_new(arr, json_string(list[i])) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

/* qj_entry - the entry as an object, or NULL without memory. */
static json_t *qj_entry(const struct queue_entry *e, bool history)
{
    const struct envelope *env = &e->env;
    json_t *last = e->n_history > 0 ? qj_attempt(&e->history[e->n_history - 1]) : json_null();
    json_t *o = json_pack(
        "{s:s, s:s, s:o, s:s, s:s, s:o, s:I, s:s, s:I, s:I, s:I, s:o}", "name", e->name, "id",
        env->id, "endpoints", qj_strings(e->endpoints, e->n_endpoints), "policy",
        e->failover ? "failover" : "all", "from", env->mail_from != NULL ? env->mail_from : "",
        "recipients", qj_strings(env->rcpt_to, env->n_rcpt), "size", (json_int_t)env->size, "key",
        e->key, "queued_at_ms", (json_int_t)e->queued_ms, "next_attempt_ms", (json_int_t)e->next_ms,
        "attempts", (json_int_t)e->attempts, "last", last);
    if (o == NULL)
        return NULL;
    int rc = 0;
    if (e->dead_ms > 0) {
        rc |= json_object_set_new(o, "dead_at_ms", json_integer((json_int_t)e->dead_ms));
        rc |= json_object_set_new(o, "dead_reason",
                                  json_string(e->dead_reason != NULL ? e->dead_reason : ""));
    }
    if (history) {
        json_t *h = json_array();
        for (size_t i = 0; h != NULL && i < e->n_history; i++)
            rc |= json_array_append_new(h, qj_attempt(&e->history[i]));
        rc |= json_object_set_new(o, "history", h);
    }
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* qj_dump - the value's compact text appended to out, then the value released. */
static int qj_dump(json_t *v, struct buf *out)
{
    if (v == NULL)
        return SH_ENOMEM;
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(v);
    if (text == NULL)
        return SH_ENOMEM;
    int rc = buf_append_str(out, text);
    free(text);
    return rc;
}

/* queue_json_entry - see queue_json.h. */
int queue_json_entry(const struct queue_entry *e, bool history, struct buf *out)
{
    return qj_dump(qj_entry(e, history), out);
}

/* A listing into an array, up to a limit. */
struct qj_walk {
    json_t *arr;  /* the entries so far */
    size_t limit; /* at most this many, 0: all */
    bool cut;     /* there were more */
};

#define QJ_STOP 1 /* qj_add's "enough": ends the walk without an error */

/* qj_add - queue_list_fn: each readable entry into the array, while the limit allows. */
static int qj_add(void *arg, const struct queue_entry *e, const char *why)
{
    struct qj_walk *w = arg;
    if (why != NULL)
        return 0; /* unreadable: the server's log says so */
    if (w->limit > 0 && json_array_size(w->arr) == w->limit) {
        w->cut = true;
        return QJ_STOP;
    }
    json_t *o = qj_entry(e, false);
    return o != NULL && json_array_append_new(w->arr, o) == 0 ? 0 : SH_ENOMEM;
}

/* qj_array - the entries of which as an array (at most limit, 0: all; *cut when there were
 * more), or NULL (*rc says why). */
static json_t *qj_array(struct queue_store *s, enum queue_which which, size_t limit, bool *cut,
                        int *rc)
{
    struct qj_walk w = {json_array(), limit, false};
    *rc = w.arr != NULL ? s->ops->list(s, which, qj_add, &w) : SH_ENOMEM;
    if (*rc == QJ_STOP)
        *rc = 0;
    if (*rc != 0) {
        json_decref(w.arr);
        return NULL;
    }
    *cut = w.cut;
    return w.arr;
}

/* queue_json_list - see queue_json.h. */
int queue_json_list(struct queue_store *s, enum queue_which which, struct buf *out)
{
    int rc = 0;
    bool cut = false;
    json_t *arr = qj_array(s, which, 0, &cut, &rc);
    if (arr == NULL)
        return rc;
    return qj_dump(json_pack("{s:o}", "entries", arr), out);
}

/* queue_json_all - see queue_json.h. */
int queue_json_all(struct queue_store *s, size_t limit, struct buf *out)
{
    int rc = 0;
    bool cut_active = false, cut_dead = false;
    json_t *active = qj_array(s, QUEUE_ACTIVE, limit, &cut_active, &rc);
    if (active == NULL)
        return rc;
    json_t *dead = qj_array(s, QUEUE_DEAD, limit, &cut_dead, &rc);
    if (dead == NULL) {
        json_decref(active);
        return rc;
    }
    return qj_dump(json_pack("{s:o, s:o, s:b}", "entries", active, "dead", dead, "truncated",
                             cut_active || cut_dead),
                   out);
}
