/* smtp_engine.c - parser events into the session, the session's actions carried out where
 * no I/O is needed (see smtp_engine.h).
 *
 * Pure: must not include libuv, OpenSSL or curl. The one loop here is the path every byte
 * a client sends takes, in the server, in the unit tests and in the fuzz targets. */
#include "smtphook/smtp_engine.h"

#include <string.h>

/* smtp_engine_init - see smtp_engine.h. */
void smtp_engine_init(struct smtp_engine *e, const struct config *cfg, const char *client_address,
                      uint16_t client_port, const char *id_prefix, size_t out_limit)
{
    memset(e, 0, sizeof(*e));
    smtp_parser_init(&e->parser, cfg->limits.max_command_line_bytes);
    session_init(&e->session, cfg, client_address, client_port, id_prefix);
    e->out_limit = out_limit;
}

/* smtp_engine_free - see smtp_engine.h. */
void smtp_engine_free(struct smtp_engine *e)
{
    session_free(&e->session);
    smtp_parser_free(&e->parser);
    buf_free(&e->out);
}

/* smtp_engine_greet - see smtp_engine.h. */
void smtp_engine_greet(struct smtp_engine *e)
{
    session_greeting(&e->session, &e->out);
}

/* chunk_end_due - the last byte of a BDAT chunk was consumed: the parser reports its end on
 * the next feed, even one without input. */
static bool chunk_end_due(const struct smtp_engine *e)
{
    return e->parser.mode == SMTP_PARSER_CHUNK && e->parser.chunk_left == 0;
}

/* smtp_engine_pending - see smtp_engine.h. */
bool smtp_engine_pending(const struct smtp_engine *e)
{
    return !e->closed && chunk_end_due(e);
}

/* engine_action - carry out one session action; more: input is left behind the command
 * that asked for it. Returns IDLE to go on, or why to stop. */
static enum smtp_engine_stop engine_action(struct smtp_engine *e, enum session_action a, bool more,
                                           int64_t now_ms)
{
    struct session *s = &e->session;
    switch (a) {
    case SESSION_ACTION_NONE:
    case SESSION_ACTION_CHECK: /* the caller starts it after the feed; feeding goes on */
        return SMTP_ENGINE_IDLE;
    case SESSION_ACTION_WAIT:
        return SMTP_ENGINE_WAIT;
    case SESSION_ACTION_DATA:
        smtp_parser_begin_data(&e->parser);
        return SMTP_ENGINE_IDLE;
    case SESSION_ACTION_CHUNK:
        if (session_chunk_size(s) == 0)
            return engine_action(e, session_chunk_end(s, now_ms, &e->out), more, now_ms);
        smtp_parser_begin_chunk(&e->parser, session_chunk_size(s));
        return SMTP_ENGINE_IDLE;
    case SESSION_ACTION_REFUSED:
        /* Text behind a refused DATA was sent without waiting for the reply: it cannot be
         * told from the message it was meant to be, so none of it is executed. */
        if (more)
            return engine_action(e, session_desync(s, &e->out), more, now_ms);
        return SMTP_ENGINE_IDLE;
    case SESSION_ACTION_DELIVER:
        return SMTP_ENGINE_DELIVER;
    case SESSION_ACTION_STARTTLS:
        smtp_parser_reset(&e->parser); /* CVE-2011-0411: nothing behind STARTTLS survives */
        return SMTP_ENGINE_STARTTLS;
    case SESSION_ACTION_CLOSE:
    default:
        e->closed = true;
        return SMTP_ENGINE_CLOSE;
    }
}

/* smtp_engine_feed - see smtp_engine.h. */
size_t smtp_engine_feed(struct smtp_engine *e, const char *data, size_t len, size_t unsent,
                        int64_t now_ms, enum smtp_engine_stop *stop)
{
    struct session *s = &e->session;
    size_t off = 0;
    *stop = SMTP_ENGINE_IDLE;
    if (e->closed) {
        *stop = SMTP_ENGINE_CLOSE;
        return len;
    }
    while (off < len || chunk_end_due(e)) {
        if (e->out.len + unsent >= e->out_limit) {
            *stop = SMTP_ENGINE_FULL;
            return off;
        }
        struct smtp_event ev;
        long n = smtp_parser_feed(&e->parser, data + off, len - off, &ev);
        if (n < 0) {
            e->closed = true;
            *stop = SMTP_ENGINE_CLOSE;
            return 0;
        }
        off += (size_t)n;
        enum session_action a = SESSION_ACTION_NONE;
        switch (ev.type) {
        case SMTP_EVENT_NONE:
            break;
        case SMTP_EVENT_LINE:
            a = session_line(s, ev.ptr, ev.len, now_ms, &e->out);
            break;
        case SMTP_EVENT_LINE_TOO_LONG:
            a = session_line_too_long(s, &e->out);
            break;
        case SMTP_EVENT_DATA:
            session_data(s, ev.ptr, ev.len);
            break;
        case SMTP_EVENT_DATA_END:
            a = session_data_end(s, now_ms, &e->out);
            break;
        case SMTP_EVENT_CHUNK_END:
            a = session_chunk_end(s, now_ms, &e->out);
            break;
        }
        enum smtp_engine_stop st = engine_action(e, a, off < len, now_ms);
        if (st == SMTP_ENGINE_IDLE)
            continue;
        *stop = st;
        return st == SMTP_ENGINE_DELIVER || st == SMTP_ENGINE_WAIT ? off : len;
    }
    return off;
}

/* smtp_engine_take_txn - see smtp_engine.h. */
struct txn *smtp_engine_take_txn(struct smtp_engine *e)
{
    return session_take_txn(&e->session);
}

/* smtp_engine_delivered - see smtp_engine.h. */
enum smtp_engine_stop smtp_engine_delivered(struct smtp_engine *e, const struct app_reply *reply)
{
    if (session_delivered(&e->session, reply, &e->out) == SESSION_ACTION_CLOSE) {
        e->closed = true;
        return SMTP_ENGINE_CLOSE;
    }
    return SMTP_ENGINE_IDLE;
}

/* smtp_engine_tls_started - see smtp_engine.h. */
void smtp_engine_tls_started(struct smtp_engine *e, const struct envelope_tls *tls, bool greet)
{
    session_tls_started(&e->session, tls);
    if (greet)
        session_greeting(&e->session, &e->out);
}

/* smtp_engine_timeout - see smtp_engine.h. */
enum smtp_engine_stop smtp_engine_timeout(struct smtp_engine *e)
{
    return smtp_engine_timeout_for(e, REPLY_TIMEOUT);
}

/* smtp_engine_timeout_for - see smtp_engine.h. */
enum smtp_engine_stop smtp_engine_timeout_for(struct smtp_engine *e, enum reply_id why)
{
    if (!e->closed)
        session_timeout_for(&e->session, why, &e->out);
    e->closed = true;
    return SMTP_ENGINE_CLOSE;
}

/* smtp_engine_in_line - see smtp_engine.h. */
bool smtp_engine_in_line(const struct smtp_engine *e)
{
    return e->parser.mode == SMTP_PARSER_COMMAND &&
           (e->parser.partial_len > 0 || e->parser.skipping);
}

/* smtp_engine_body - see smtp_engine.h. */
bool smtp_engine_body(const struct smtp_engine *e, uint64_t *bytes)
{
    const struct txn *t = e->session.txn;
    if (t == NULL || t->data_started_ms == 0 || t->body_ended)
        return false;
    *bytes = t->env.size;
    return true;
}

/* smtp_engine_shutdown - see smtp_engine.h. */
enum smtp_engine_stop smtp_engine_shutdown(struct smtp_engine *e)
{
    if (e->closed)
        return SMTP_ENGINE_CLOSE;
    if (session_shutdown(&e->session, &e->out) == SESSION_ACTION_CLOSE) {
        e->closed = true;
        return SMTP_ENGINE_CLOSE;
    }
    return SMTP_ENGINE_IDLE;
}

/* smtp_engine_take_check - see smtp_engine.h. */
long smtp_engine_take_check(struct smtp_engine *e)
{
    return e->closed ? -1 : session_take_check(&e->session);
}

/* smtp_engine_rcpt_checked - see smtp_engine.h. */
enum smtp_engine_stop smtp_engine_rcpt_checked(struct smtp_engine *e, size_t index, bool accept,
                                               const struct app_reply *reply, bool more,
                                               int64_t now_ms)
{
    if (e->closed)
        return SMTP_ENGINE_CLOSE;
    enum session_action a =
        session_rcpt_checked(&e->session, index, accept, reply, now_ms, &e->out);
    enum smtp_engine_stop st = engine_action(e, a, more, now_ms);
    return st == SMTP_ENGINE_WAIT && !session_checking(&e->session) ? SMTP_ENGINE_IDLE : st;
}

/* smtp_engine_waiting - see smtp_engine.h. */
bool smtp_engine_waiting(const struct smtp_engine *e)
{
    return !e->closed && session_waiting(&e->session);
}

/* smtp_engine_txn - see smtp_engine.h. */
const struct txn *smtp_engine_txn(const struct smtp_engine *e)
{
    return session_txn(&e->session);
}

/* smtp_engine_body_txn - see smtp_engine.h. */
struct txn *smtp_engine_body_txn(struct smtp_engine *e)
{
    return e->session.txn;
}

/* smtp_engine_delivering - see smtp_engine.h. */
bool smtp_engine_delivering(const struct smtp_engine *e)
{
    return e->session.state == SESSION_STATE_DELIVERING;
}
