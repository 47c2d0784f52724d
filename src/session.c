/* session.c - the SMTP state machine (RFC 5321): command in, reply and action out.
 *
 * Pure: must not include libuv, OpenSSL or curl. Commands are a table: each row names the
 * verb, the argument rule and the state rule, enforced once in session_line(); the handler
 * only does the verb's own work. Every state change goes through session_set_state().
 * STARTTLS (RFC 3207) only decides and answers; the handshake is the connection's. BDAT
 * (RFC 3030) chunks are counted here like DATA; their bytes never reach session_line(). */
#include "smtphook/session.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtphook/error.h"
#include "smtphook/format.h"
#include "smtphook/log.h"
#include "smtphook/payload.h"
#include "smtphook/reply.h"
#include "smtphook/smtp_cmd.h"

#define SESSION_HELO_MAX 255 /* longest HELO/EHLO argument kept */
#define SESSION_RCPT_OVERSHOOT_MAX                                                                 \
    1000 /* 452s for surplus recipients before they count as errors */

/* Argument rules of the command table. */
enum session_arg_rule {
    ARG_ANY = 0, /* NOOP, HELP: anything or nothing */
    ARG_NONE,    /* DATA, RSET, QUIT: no argument (RFC 5321 §4.1.1) */
    ARG_NEEDED,  /* HELO, EHLO, MAIL, RCPT, VRFY */
};

typedef enum session_action (*session_handler)(struct session *s, const struct smtp_command *cmd,
                                               int64_t now_ms, struct buf *out);

struct session_command {
    enum smtp_verb verb;       /* which command */
    enum session_arg_rule arg; /* argument rule */
    enum reply_id syntax;      /* reply when the argument rule is broken */
    int needs_helo;            /* 503 before HELO/EHLO */
    session_handler handler;   /* the verb's own work */
};

static enum session_action do_helo(struct session *, const struct smtp_command *, int64_t,
                                   struct buf *);
static enum session_action do_mail(struct session *, const struct smtp_command *, int64_t,
                                   struct buf *);
static enum session_action do_rcpt(struct session *, const struct smtp_command *, int64_t,
                                   struct buf *);
static enum session_action do_data(struct session *, const struct smtp_command *, int64_t,
                                   struct buf *);
static enum session_action do_rset(struct session *, const struct smtp_command *, int64_t,
                                   struct buf *);
static enum session_action do_starttls(struct session *, const struct smtp_command *, int64_t,
                                       struct buf *);
static enum session_action do_bdat(struct session *, const struct smtp_command *, int64_t,
                                   struct buf *);
static enum session_action do_simple(struct session *, const struct smtp_command *, int64_t,
                                     struct buf *);

static void pending_clear(struct session *s);
static enum session_action session_command(struct session *s, const struct smtp_command *cmdp,
                                           const char *line, size_t len, int64_t now_ms,
                                           struct buf *out);
static enum session_action session_fatal(struct session *s, struct buf *out);

static const struct session_command session_commands[] = {
    {SMTP_VERB_EHLO, ARG_NEEDED, REPLY_SYNTAX_HELO, 0, do_helo},
    {SMTP_VERB_HELO, ARG_NEEDED, REPLY_SYNTAX_HELO, 0, do_helo},
    {SMTP_VERB_MAIL, ARG_NEEDED, REPLY_SYNTAX_MAIL, 1, do_mail},
    {SMTP_VERB_RCPT, ARG_NEEDED, REPLY_SYNTAX_RCPT, 1, do_rcpt},
    {SMTP_VERB_DATA, ARG_NONE, REPLY_SYNTAX_DATA, 1, do_data},
    {SMTP_VERB_RSET, ARG_NONE, REPLY_SYNTAX_RSET, 0, do_rset},
    {SMTP_VERB_NOOP, ARG_ANY, REPLY_OK, 0, do_simple},
    {SMTP_VERB_QUIT, ARG_NONE, REPLY_SYNTAX_QUIT, 0, do_simple},
    {SMTP_VERB_VRFY, ARG_NEEDED, REPLY_SYNTAX_VRFY, 0, do_simple},
    {SMTP_VERB_EXPN, ARG_ANY, REPLY_NOT_IMPLEMENTED, 0, do_simple},
    {SMTP_VERB_HELP, ARG_ANY, REPLY_HELP, 0, do_simple},
    /* STARTTLS and BDAT check HELO themselves: STARTTLS answers "not available" first, and
     * a BDAT's chunk must be read (and thrown away) whatever the state. */
    {SMTP_VERB_STARTTLS, ARG_NONE, REPLY_SYNTAX_STARTTLS, 0, do_starttls},
    {SMTP_VERB_BDAT, ARG_ANY, REPLY_SYNTAX_BDAT, 0, do_bdat},
};

static const char *const session_state_names[] = {
    [SESSION_STATE_GREETING] = "GREETING",
    [SESSION_STATE_READY] = "READY",
    [SESSION_STATE_MAIL] = "MAIL",
    [SESSION_STATE_RCPT] = "RCPT",
    [SESSION_STATE_DATA] = "DATA",
    [SESSION_STATE_CHUNK] = "CHUNK",
    [SESSION_STATE_DELIVERING] = "DELIVERING",
    [SESSION_STATE_CLOSING] = "CLOSING",
};

/* session_state_name - a state's name for logs. */
const char *session_state_name(enum session_state st)
{
    if ((size_t)st < sizeof(session_state_names) / sizeof(session_state_names[0]))
        return session_state_names[st];
    return "?";
}

/* session_set_state - the one place where the state changes. */
static void session_set_state(struct session *s, enum session_state st)
{
    if (s->state != st)
        log_debug("session %s: %s -> %s", s->id_prefix, session_state_name(s->state),
                  session_state_name(st));
    s->state = st;
}

/* session_reset_transaction - forget MAIL and RCPT (RSET, HELO, end of DATA or of the
 * last chunk): the transaction, if it is still ours, goes with its body. */
static void session_reset_transaction(struct session *s)
{
    txn_free(s->txn);
    s->txn = NULL;
    s->chunk_size = 0;
    s->chunk_last = false;
    s->chunk_discard = false;
    s->chunk_syntax = false;
    if (s->state != SESSION_STATE_GREETING && s->state != SESSION_STATE_CLOSING)
        session_set_state(s, SESSION_STATE_READY);
}

/* session_init - a new session; nothing allocated. */
void session_init(struct session *s, const struct config *cfg, const char *client_address,
                  uint16_t client_port, const char *id_prefix)
{
    memset(s, 0, sizeof(*s));
    s->cfg = cfg;
    s->state = SESSION_STATE_GREETING;
    snprintf(s->id_prefix, sizeof(s->id_prefix), "%s", id_prefix);
    snprintf(s->client_address, sizeof(s->client_address), "%s", client_address);
    s->client_port = client_port;
}

/* session_set_rate_limit - see session.h. */
void session_set_rate_limit(struct session *s, session_rate_fn fn, void *arg)
{
    s->rate = fn;
    s->rate_arg = arg;
}

/* session_rate_refused - the client's rate of kind is spent: 451 4.7.1, counted as junk. */
static bool session_rate_refused(struct session *s, enum rate_kind kind)
{
    if (s->rate == NULL || s->rate(s->rate_arg, kind))
        return false;
    s->junk++;
    return true;
}

/* session_set_reply_hook - see session.h. */
void session_set_reply_hook(struct session *s, session_reply_fn fn, void *arg)
{
    s->on_reply = fn;
    s->on_reply_arg = arg;
}

/* session_tell_reply - the first reply written since before, to the reply hook. */
static void session_tell_reply(struct session *s, enum smtp_verb verb, const struct buf *out,
                               size_t before)
{
    if (s->on_reply == NULL || out->len < before + 3)
        return;
    const char *p = out->data + before;
    if (p[0] < '1' || p[0] > '5' || p[1] < '0' || p[1] > '9' || p[2] < '0' || p[2] > '9')
        return;
    s->on_reply(s->on_reply_arg, verb,
                (unsigned)((p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0')));
}

/* session_set_client - see session.h. */
void session_set_client(struct session *s, const char *address, uint16_t port)
{
    snprintf(s->client_address, sizeof(s->client_address), "%s", address);
    s->client_port = port;
}

/* session_set_tls_policy - what the listener offers (RFC 3207) and whether MAIL needs TLS. */
void session_set_tls_policy(struct session *s, bool offer_starttls, bool require_tls)
{
    s->tls_offered = offer_starttls;
    s->tls_required = require_tls;
}

/* session_set_room_probe - see session.h. */
void session_set_room_probe(struct session *s, session_room_fn fn, void *arg)
{
    s->no_room = fn;
    s->no_room_arg = arg;
}

/* session_set_route_probe - see session.h. */
void session_set_route_probe(struct session *s, session_route_down_fn fn, void *arg)
{
    s->route_down = fn;
    s->route_down_arg = arg;
}

/* session_tls_started - RFC 3207 §4.2: after the handshake the server discards what it
 * knew from the client (HELO name, transaction), so the client starts again with EHLO.
 * The strings stay owned by the connection's TLS state. */
void session_tls_started(struct session *s, const struct envelope_tls *tls)
{
    s->tls = *tls;
    free(s->helo);
    s->helo = NULL;
    s->esmtp = false;
    session_reset_transaction(s);
    if (s->state != SESSION_STATE_CLOSING)
        session_set_state(s, SESSION_STATE_GREETING);
}

/* session_free - release the transaction and HELO name. */
void session_free(struct session *s)
{
    pending_clear(s);
    free(s->pending);
    s->pending = NULL;
    s->pending_cap = 0;
    txn_free(s->txn);
    s->txn = NULL;
    free(s->helo);
    s->helo = NULL;
}

/* session_greeting - the 220 banner (RFC 5321 §4.2). */
void session_greeting(struct session *s, struct buf *out)
{
    reply_write(out, REPLY_GREETING, s->cfg->hostname);
}

/* session_error - write an error reply and charge the error budget; once it is spent, add
 * 421 and close (Postfix's smtpd_hard_error_limit). */
static enum session_action session_charge(struct session *s, struct buf *out);

static enum session_action session_error(struct session *s, enum reply_id id, const char *arg,
                                         struct buf *out)
{
    reply_write(out, id, arg);
    return session_charge(s, out);
}

/* session_charge - an error reply was written: charge the error budget; once it is spent,
 * add 421 and close. */
static enum session_action session_charge(struct session *s, struct buf *out)
{
    s->errors++;
    if (s->errors >= s->cfg->limits.max_errors) {
        reply_write(out, REPLY_TOO_MANY_ERRORS, s->cfg->hostname);
        s->ended_for = "too_many_errors";
        session_set_state(s, SESSION_STATE_CLOSING);
        return SESSION_ACTION_CLOSE;
    }
    return SESSION_ACTION_NONE;
}

/* session_close_if_stopping - the server is stopping and no transaction is open: say 421
 * 4.3.2 and close. Otherwise nothing. */
static enum session_action session_close_if_stopping(struct session *s, struct buf *out)
{
    if (!s->shutting_down || s->state == SESSION_STATE_CLOSING)
        return SESSION_ACTION_NONE;
    reply_write(out, REPLY_SHUTDOWN, s->cfg->hostname);
    session_set_state(s, SESSION_STATE_CLOSING);
    return SESSION_ACTION_CLOSE;
}

/* do_helo - HELO/EHLO: remember the name, reset the transaction (RFC 5321 §4.1.4), and for
 * EHLO list the extensions. */
static enum session_action do_helo(struct session *s, const struct smtp_command *cmd,
                                   int64_t now_ms, struct buf *out)
{
    (void)now_ms;
    if (cmd->arg_len > SESSION_HELO_MAX || !smtp_cmd_valid_utf8(cmd->arg, cmd->arg_len) ||
        memchr(cmd->arg, ' ', cmd->arg_len) != NULL)
        return session_error(s, REPLY_SYNTAX_HELO, NULL, out);

    char *name = malloc(cmd->arg_len + 1);
    if (name == NULL)
        return session_error(s, REPLY_LOCAL_ERROR, NULL, out);
    memcpy(name, cmd->arg, cmd->arg_len);
    name[cmd->arg_len] = '\0';
    free(s->helo);
    s->helo = name;
    s->esmtp = cmd->verb == SMTP_VERB_EHLO;

    if (s->state == SESSION_STATE_GREETING)
        session_set_state(s, SESSION_STATE_READY);
    session_reset_transaction(s);

    if (!s->esmtp) {
        reply_write(out, REPLY_HELO, s->cfg->hostname);
        return SESSION_ACTION_NONE;
    }
    char size[32];
    snprintf(size, sizeof(size), "SIZE %" PRIu64, s->cfg->limits.max_message_bytes);
    reply_write_custom(out, 250, NULL, s->cfg->hostname, 0);
    reply_write_custom(out, 250, NULL, "PIPELINING", 0);
    reply_write_custom(out, 250, NULL, size, 0);
    reply_write_custom(out, 250, NULL, "8BITMIME", 0);
    reply_write_custom(out, 250, NULL, "BINARYMIME", 0);
    reply_write_custom(out, 250, NULL, "CHUNKING", 0);
    reply_write_custom(out, 250, NULL, "SMTPUTF8", 0);
    /* Not once TLS is up: a second STARTTLS is an error (RFC 3207 §4.2). */
    if (s->tls_offered && s->tls.version == NULL)
        reply_write_custom(out, 250, NULL, "STARTTLS", 0);
    reply_write_custom(out, 250, NULL, "ENHANCEDSTATUSCODES", 1);
    return SESSION_ACTION_NONE;
}

/* syntax_reply - the reply for a path/parameter problem; sender selects MAIL's wording. */
static enum reply_id syntax_reply(enum smtp_syntax r, int sender)
{
    switch (r) {
    case SMTP_SYNTAX_BAD_COMMAND:
        return sender ? REPLY_SYNTAX_MAIL : REPLY_SYNTAX_RCPT;
    case SMTP_SYNTAX_PATH_TOO_LONG:
        return sender ? REPLY_SENDER_TOO_LONG : REPLY_RCPT_TOO_LONG;
    case SMTP_SYNTAX_NEEDS_SMTPUTF8:
        return REPLY_NEEDS_SMTPUTF8;
    case SMTP_SYNTAX_BAD_PARAM:
        return REPLY_BAD_PARAM;
    case SMTP_SYNTAX_UNKNOWN_PARAM:
        return REPLY_UNKNOWN_PARAM;
    case SMTP_SYNTAX_BAD_SIZE:
        return REPLY_BAD_SIZE;
    case SMTP_SYNTAX_BAD_BODY:
        return REPLY_BAD_BODY;
    case SMTP_SYNTAX_PARAM_NOT_ESMTP:
        return REPLY_PARAM_NOT_ESMTP;
    case SMTP_SYNTAX_BAD_PATH:
    case SMTP_SYNTAX_NULL_PATH:
    case SMTP_SYNTAX_OK:
    default:
        return sender ? REPLY_BAD_SENDER : REPLY_BAD_RCPT;
    }
}

/* do_mail - start a transaction (RFC 5321 §4.1.1.2). A declared SIZE over the limit is
 * refused here, before any data is sent (RFC 1870 §6.2). */
static enum session_action do_mail(struct session *s, const struct smtp_command *cmd,
                                   int64_t now_ms, struct buf *out)
{
    if (s->state != SESSION_STATE_READY)
        return session_error(s, REPLY_NESTED_MAIL, NULL, out);
    if (s->tls_required && s->tls.version == NULL) /* RFC 3207 §4 */
        return session_error(s, REPLY_TLS_REQUIRED, NULL, out);

    struct smtp_path path;
    struct smtp_mail_params params;
    enum smtp_syntax r = smtp_cmd_mail(cmd->arg, cmd->arg_len, s->esmtp, &path, &params);
    if (r != SMTP_SYNTAX_OK)
        return session_error(s, syntax_reply(r, 1), NULL, out);
    if (params.has_size && params.size > s->cfg->limits.max_message_bytes)
        return session_error(s, REPLY_SIZE_EXCEEDED, NULL, out);
    if (session_rate_refused(s, RATE_MESSAGES)) {
        reply_write(out, REPLY_RATE_MESSAGES, NULL); /* the client comes back later */
        return SESSION_ACTION_NONE;
    }
    if (s->no_room != NULL && s->no_room(s->no_room_arg, SESSION_ANY_ROUTE)) {
        reply_write(out, REPLY_QUEUE_FULL, NULL);
        return SESSION_ACTION_NONE;
    }

    char id[ENVELOPE_ID_MAX + 1];
    snprintf(id, sizeof(id), "%s.%u", s->id_prefix, s->transactions + 1);
    struct txn_facts facts = {id,       now_ms, s->client_address, s->client_port, s->helo,
                              s->esmtp, &s->tls};
    session_reset_transaction(s);
    if (txn_new(&facts, path.mailbox, &s->txn) != 0)
        return session_error(s, REPLY_LOCAL_ERROR, NULL, out);
    /* Per-byte work on the body only where an endpoint will use it. */
    s->txn->watch_boundary = s->cfg->any_form;
    s->txn->watch_utf8 = s->cfg->any_labels;
    s->transactions++;
    struct envelope *env = &s->txn->env;
    env->declared_size = params.has_size ? params.size : 0;
    env->body = params.body;
    env->smtputf8 = params.smtputf8;
    session_set_state(s, SESSION_STATE_MAIL);
    reply_write(out, REPLY_MAIL_OK, NULL);
    return SESSION_ACTION_NONE;
}

/* What one RCPT comes to, decided before its reply is written. */
enum rcpt_kind {
    RCPT_ACCEPT = 0, /* add it: 250 2.1.5 */
    RCPT_ERROR,      /* an error reply, charged to the error budget */
    RCPT_SOFT,       /* 452 for a recipient to send again elsewhere: no charge */
    RCPT_CHECK,      /* accepted so far; the recipient check decides */
};

/* session_rcpt_route - the route of a recipient, -1 for none. The domain-less postmaster
 * (RFC 5321 §4.5.1) is the postmaster of the domains served: postmaster@<domain> is tried
 * for each listed domain, then the address as it is (only "*" matches that). */
static long session_rcpt_route(const struct session *s, const struct smtp_path *path)
{
    if (path->at < path->len || s->cfg->any_domain)
        return config_route_for(s->cfg, path->mailbox, path->len);
    char addr[SMTP_PATH_MAX + 16];
    for (size_t i = 0; i < s->cfg->n_domains; i++) {
        int n = snprintf(addr, sizeof(addr), "%s@%s", path->mailbox, s->cfg->domains[i]);
        if (n <= 0 || (size_t)n >= sizeof(addr))
            continue;
        long r = config_route_for(s->cfg, addr, (size_t)n);
        if (r >= 0)
            return r;
    }
    return config_route_for(s->cfg, path->mailbox, path->len);
}

/* session_txn_route - the route this transaction is bound to: that of its first recipient
 * accepted or being checked; -1 while there is none. */
static long session_txn_route(const struct session *s)
{
    if (s->txn != NULL && s->txn->env.n_rcpt > 0)
        return s->txn->rcpt_route[0];
    for (size_t i = s->pending_head; i < s->n_pending; i++) {
        if (s->pending[i].kind == RCPT_ACCEPT || s->pending[i].kind == RCPT_CHECK)
            return s->pending[i].route;
    }
    return -1;
}

/* session_rcpt_count - recipients accepted, or accepted so far and waiting for their check. */
static size_t session_rcpt_count(const struct session *s)
{
    size_t n = s->txn != NULL ? s->txn->env.n_rcpt : 0;
    for (size_t i = s->pending_head; i < s->n_pending; i++) /* answered ones are counted */
        n += s->pending[i].kind == RCPT_ACCEPT || s->pending[i].kind == RCPT_CHECK;
    return n;
}

/* session_head_budget - a raw-format endpoint carries the envelope in its request headers,
 * which receivers limit (431 or a dropped connection past 8 to 16 KiB): each such endpoint
 * the recipient would go to must have room for it under its max_header_bytes. A recipient
 * that does not fit is sent again in another transaction (452 4.5.3); one that cannot fit
 * even alone can never be delivered in raw (550 5.3.4). The room is taken at once, also for
 * a recipient still to be checked (a refused one leaves it taken: the budget errs on the
 * safe side). Returns REPLY_RCPT_OK when every endpoint has room. */
static enum reply_id session_head_budget(struct session *s, long route, const char *mailbox)
{
    const struct config *cfg = s->cfg;
    struct txn *t = s->txn;
    const size_t *eps = NULL;
    size_t n = cfg->n_endpoints;
    if (route >= 0 && (size_t)route < cfg->n_routes) {
        eps = cfg->routes[route].endpoints;
        n = cfg->routes[route].n_endpoints;
    }
    if (t->head == NULL &&
        (t->head = calloc(cfg->n_endpoints > 0 ? cfg->n_endpoints : 1, sizeof(*t->head))) == NULL)
        return REPLY_LOCAL_ERROR;
    uint64_t cost = payload_rcpt_cost(mailbox);
    uint64_t common = 0;
    for (int pass = 0; pass < 2; pass++) { /* check every endpoint, then take the room */
        for (size_t i = 0; i < n; i++) {
            size_t e = eps != NULL ? eps[i] : i;
            const struct config_endpoint *ep = &cfg->endpoints[e];
            struct txn_head *h = &t->head[e];
            if (ep->format != CONFIG_FORMAT_RAW)
                continue;
            if (h->base == 0) {
                if (common == 0) {
                    struct envelope view = t->env;
                    static const char key[DIGEST_HEX + 1] =
                        "0000000000000000000000000000000000000000000000000000000000000000";
                    view.key = key; /* the longest spelling of what is not known yet */
                    view.size = cfg->limits.max_message_bytes;
                    if (payload_head_base(&view, &common) != 0)
                        return REPLY_LOCAL_ERROR;
                }
                h->base = h->used = common + format_head_extra(ep);
            }
            if (pass == 1)
                h->used += cost;
            else if (h->used + cost > ep->max_header_bytes)
                return h->used == h->base ? REPLY_ENVELOPE_TOO_BIG : REPLY_HEAD_FULL;
        }
    }
    return REPLY_RCPT_OK;
}

/* rcpt_decide - the verdict on one RCPT (RFC 5321 §4.1.1.3) without writing anything. Only
 * configured domains are accepted: smtphook is nobody's relay (550 5.7.1). With routes, an
 * address no route matches is unknown (550 5.1.1), and with one_route_per_transaction a
 * recipient of another route than the transaction's is to be sent again (452 4.5.3). Past
 * max_recipients the extras get 452 and the earlier ones stay (§4.5.3.1.10). */
static enum rcpt_kind rcpt_decide(struct session *s, const struct smtp_command *cmd,
                                  struct smtp_path *path, long *route, enum reply_id *id)
{
    *route = -1;
    enum smtp_syntax r =
        smtp_cmd_rcpt(cmd->arg, cmd->arg_len, s->esmtp, s->txn->env.smtputf8, path);
    if (r != SMTP_SYNTAX_OK) {
        *id = syntax_reply(r, 0);
        return RCPT_ERROR;
    }
    const char *domain = path->at < path->len ? path->mailbox + path->at + 1 : "";
    size_t domain_len = path->at < path->len ? path->len - path->at - 1 : 0;
    if (!config_domain_accepted(s->cfg, domain, domain_len)) {
        *id = REPLY_RELAY_DENIED;
        return RCPT_ERROR;
    }
    if (s->cfg->n_routes > 0) {
        *route = session_rcpt_route(s, path);
        if (*route < 0) {
            *id = REPLY_UNKNOWN_RCPT;
            return RCPT_ERROR;
        }
    }
    if (s->route_down != NULL && s->route_down(s->route_down_arg, *route)) {
        /* Its app is known to be down: this recipient waits (the sender tries it again
         * later), the others of the message go where they can, and it binds no route. */
        *id = REPLY_ROUTE_DOWN;
        return s->rcpt_overshoot++ < SESSION_RCPT_OVERSHOOT_MAX ? RCPT_SOFT : RCPT_ERROR;
    }
    if (s->no_room != NULL && s->no_room(s->no_room_arg, *route)) {
        *id = REPLY_QUEUE_FULL; /* as for a route that is down */
        return s->rcpt_overshoot++ < SESSION_RCPT_OVERSHOOT_MAX ? RCPT_SOFT : RCPT_ERROR;
    }
    if (s->cfg->n_routes > 0) {
        long bound = session_txn_route(s);
        if (s->cfg->one_route_per_transaction && bound >= 0 && bound != *route) {
            /* Not an error of the client's: it sends these in another transaction. */
            *id = REPLY_OTHER_ROUTE;
            return s->rcpt_overshoot++ < SESSION_RCPT_OVERSHOOT_MAX ? RCPT_SOFT : RCPT_ERROR;
        }
    }
    if (session_rcpt_count(s) >= s->cfg->limits.max_recipients) {
        /* A sender with more recipients than we take is no abuser: it sends the rest in
         * another transaction. Like Postfix's smtpd_recipient_overshoot_limit, only a
         * large overshoot is charged to the error budget. */
        *id = REPLY_TOO_MANY_RCPTS;
        return s->rcpt_overshoot++ < SESSION_RCPT_OVERSHOOT_MAX ? RCPT_SOFT : RCPT_ERROR;
    }
    if (session_rate_refused(s, RATE_RECIPIENTS)) {
        *id = REPLY_RATE_RECIPIENTS;
        return s->rcpt_overshoot++ < SESSION_RCPT_OVERSHOOT_MAX ? RCPT_SOFT : RCPT_ERROR;
    }
    *id = session_head_budget(s, *route, path->mailbox);
    if (*id == REPLY_HEAD_FULL)
        return s->rcpt_overshoot++ < SESSION_RCPT_OVERSHOOT_MAX ? RCPT_SOFT : RCPT_ERROR;
    if (*id != REPLY_RCPT_OK)
        return RCPT_ERROR;
    *id = REPLY_RCPT_OK;
    return s->cfg->recipient_check.enabled ? RCPT_CHECK : RCPT_ACCEPT;
}

/* rcpt_apply - write the reply of a decided RCPT and, when accepted, add the recipient.
 * custom: a reply chosen by the recipient check (NULL: the table's). */
static enum session_action rcpt_apply(struct session *s, enum rcpt_kind kind, enum reply_id id,
                                      const char *mailbox, long route,
                                      const struct app_reply *custom, struct buf *out)
{
    switch (kind) {
    case RCPT_ACCEPT:
        if (txn_add_rcpt(s->txn, mailbox, route) != 0)
            return session_error(s, REPLY_LOCAL_ERROR, NULL, out);
        session_set_state(s, SESSION_STATE_RCPT);
        if (custom != NULL)
            reply_write_custom(out, custom->code, custom->esc[0] != '\0' ? custom->esc : NULL,
                               custom->text, 1);
        else
            reply_write(out, REPLY_RCPT_OK, NULL);
        return SESSION_ACTION_NONE;
    case RCPT_SOFT:
        if (custom != NULL)
            reply_write_custom(out, custom->code, custom->esc[0] != '\0' ? custom->esc : NULL,
                               custom->text, 1);
        else
            reply_write(out, id, NULL);
        return SESSION_ACTION_NONE;
    case RCPT_ERROR:
    case RCPT_CHECK:
    default:
        if (custom != NULL) {
            reply_write_custom(out, custom->code, custom->esc[0] != '\0' ? custom->esc : NULL,
                               custom->text, 1);
            return session_charge(s, out);
        }
        return session_error(s, id, NULL, out);
    }
}

/* pending_push - queue an RCPT whose reply must wait for an earlier one's check. Returns its
 * index, or -1 without memory. */
static long pending_push(struct session *s, enum rcpt_kind kind, enum reply_id id,
                         const struct smtp_path *path, long route)
{
    if (s->n_pending == s->pending_cap) {
        size_t cap = s->pending_cap ? 2 * s->pending_cap : 8;
        struct session_rcpt *p = realloc(s->pending, cap * sizeof(*p));
        if (p == NULL)
            return -1;
        s->pending = p;
        s->pending_cap = cap;
    }
    struct session_rcpt *r = &s->pending[s->n_pending];
    memset(r, 0, sizeof(*r));
    r->route = -1;
    if (kind == RCPT_ACCEPT || kind == RCPT_CHECK) {
        if ((r->mailbox = strdup(path->mailbox)) == NULL)
            return -1;
    }
    r->kind = (int)kind;
    r->id = (int)id;
    r->route = route;
    r->decided = kind != RCPT_CHECK;
    return (long)s->n_pending++;
}

/* do_rcpt - one recipient. Without checks under way its reply is written at once; while a
 * recipient check is pending, every RCPT behind it waits in line, so that replies keep the
 * order of the commands (RFC 2920 §3.1) while the checks run side by side. */
static enum session_action do_rcpt(struct session *s, const struct smtp_command *cmd,
                                   int64_t now_ms, struct buf *out)
{
    (void)now_ms;
    if (s->state != SESSION_STATE_MAIL && s->state != SESSION_STATE_RCPT)
        return session_error(s, REPLY_NEED_MAIL, NULL, out);

    struct smtp_path path;
    long route;
    enum reply_id id;
    enum rcpt_kind kind = rcpt_decide(s, cmd, &path, &route, &id);
    if (kind != RCPT_CHECK && s->n_pending == 0)
        return rcpt_apply(s, kind, id, path.mailbox, route, NULL, out);
    if (pending_push(s, kind, id, &path, route) < 0) {
        if (s->n_pending == 0)
            return session_error(s, REPLY_LOCAL_ERROR, NULL, out);
        /* Behind others and no room to wait in line: its reply cannot keep its place, so
         * the session ends rather than answer out of order. */
        return session_fatal(s, out);
    }
    return kind == RCPT_CHECK ? SESSION_ACTION_CHECK : SESSION_ACTION_NONE;
}

/* rcpt_syntax_error - an RCPT the table's argument rule refuses (no argument). Behind a
 * pending check it waits in line like any refused RCPT, so that its 501 keeps its place
 * (RFC 2920 §3.1); otherwise it is answered at once. */
static enum session_action rcpt_syntax_error(struct session *s, enum reply_id id, struct buf *out)
{
    if (s->n_pending == 0)
        return session_error(s, id, NULL, out);
    if (pending_push(s, RCPT_ERROR, id, NULL, -1) < 0)
        return session_fatal(s, out);
    return SESSION_ACTION_NONE;
}

/* pending_clear - forget every waiting RCPT and the command behind them. */
static void pending_clear(struct session *s)
{
    for (size_t i = s->pending_head; i < s->n_pending; i++)
        free(s->pending[i].mailbox);
    s->pending_head = s->n_pending = 0;
    free(s->deferred);
    s->deferred = NULL;
    s->deferred_len = 0;
    s->deferred_too_long = false;
}

/* session_fatal - a local failure that leaves the session unable to answer in order. */
static enum session_action session_fatal(struct session *s, struct buf *out)
{
    pending_clear(s);
    reply_write(out, REPLY_LOCAL_FATAL, s->cfg->hostname);
    session_set_state(s, SESSION_STATE_CLOSING);
    return SESSION_ACTION_CLOSE;
}

/* session_take_check - see session.h. */
long session_take_check(struct session *s)
{
    for (size_t i = s->pending_head; i < s->n_pending; i++) {
        struct session_rcpt *r = &s->pending[i];
        if (r->kind == RCPT_CHECK && !r->decided && !r->started) {
            r->started = true;
            return (long)i;
        }
    }
    return -1;
}

/* session_check_recipient - see session.h. */
const char *session_check_recipient(const struct session *s, size_t index)
{
    return index < s->n_pending && s->pending[index].mailbox != NULL ? s->pending[index].mailbox
                                                                     : "";
}

/* session_checking - see session.h. */
bool session_checking(const struct session *s)
{
    return s->pending_head < s->n_pending;
}

/* session_waiting - see session.h. */
bool session_waiting(const struct session *s)
{
    return s->deferred != NULL || s->deferred_too_long;
}

/* session_rcpt_checked - see session.h. The head of the line is answered as far as it is
 * decided; the queue keeps its indices until it is empty, so that the checks still out
 * find their entries. */
enum session_action session_rcpt_checked(struct session *s, size_t index, bool accept,
                                         const struct app_reply *reply, int64_t now_ms,
                                         struct buf *out)
{
    if (index < s->pending_head || index >= s->n_pending || s->pending[index].decided)
        return SESSION_ACTION_NONE;
    struct session_rcpt *r = &s->pending[index];
    r->decided = true;
    if (!accept && reply == NULL) { /* a refusal without its reply: ours, for now */
        static const struct app_reply local = {451, "4.3.0",
                                               "Error: local problem, try again later"};
        reply = &local;
    }
    /* A temporary refusal (the check failed, or the app said "later") is no error of the
     * client's: it is not charged to the error budget. */
    r->kind = accept                                    ? RCPT_ACCEPT
              : reply != NULL && reply->code / 100 == 4 ? RCPT_SOFT
                                                        : RCPT_ERROR;
    if (reply != NULL) {
        r->custom = *reply;
        r->has_custom = true;
    }
    enum session_action a = SESSION_ACTION_NONE;
    while (s->pending_head < s->n_pending && s->pending[s->pending_head].decided) {
        r = &s->pending[s->pending_head++];
        a = rcpt_apply(s, (enum rcpt_kind)r->kind, (enum reply_id)r->id, r->mailbox, r->route,
                       r->has_custom ? &r->custom : NULL, out);
        free(r->mailbox);
        r->mailbox = NULL;
        if (a == SESSION_ACTION_CLOSE) {
            pending_clear(s);
            return a;
        }
    }
    if (s->pending_head < s->n_pending)
        return SESSION_ACTION_NONE;
    s->pending_head = s->n_pending = 0;
    /* The line is free: the command that waited runs now. */
    char *line = s->deferred;
    size_t len = s->deferred_len;
    bool too_long = s->deferred_too_long;
    s->deferred = NULL;
    s->deferred_len = 0;
    s->deferred_too_long = false;
    if (too_long)
        a = session_line_too_long(s, out);
    else if (line != NULL)
        a = session_line(s, line, len, now_ms, out);
    free(line);
    return a;
}

/* do_data - 354 and switch to data mode. A client must wait for the reply to DATA before
 * it sends the message (RFC 2920 §3.1), so input behind a refused DATA is message text
 * sent too early, never commands: REFUSED lets the engine end the session if there is any.
 * DATA cannot follow BDAT in one transaction, nor carry a BINARYMIME body (RFC 3030 §2,
 * §3): 503, and the client must RSET. */
static enum session_action do_data(struct session *s, const struct smtp_command *cmd,
                                   int64_t now_ms, struct buf *out)
{
    (void)cmd;
    enum session_action a;
    if (s->state == SESSION_STATE_READY)
        a = session_error(s, REPLY_NEED_MAIL, NULL, out);
    else if (s->state == SESSION_STATE_MAIL)
        a = session_error(s, REPLY_NEED_RCPT, NULL, out);
    else if (s->txn->env.chunked)
        a = session_error(s, REPLY_DATA_AFTER_BDAT, NULL, out);
    else if (s->txn->env.body == ENVELOPE_BODY_BINARYMIME)
        a = session_error(s, REPLY_BINARYMIME_DATA, NULL, out);
    else {
        txn_begin_body(s->txn, s->cfg->spool.directory, s->cfg->spool.memory_bytes, now_ms);
        session_set_state(s, SESSION_STATE_DATA);
        reply_write(out, REPLY_DATA_GO, NULL);
        return SESSION_ACTION_DATA;
    }
    return a == SESSION_ACTION_CLOSE ? a : SESSION_ACTION_REFUSED;
}

/* do_rset - abort the transaction (RFC 5321 §4.1.1.5). */
static enum session_action do_rset(struct session *s, const struct smtp_command *cmd,
                                   int64_t now_ms, struct buf *out)
{
    (void)cmd;
    (void)now_ms;
    session_reset_transaction(s);
    reply_write(out, REPLY_OK, NULL);
    return SESSION_ACTION_NONE;
}

/* do_starttls - RFC 3207 §4: 220 and the STARTTLS action when the listener offers TLS, it
 * is not active yet, HELO/EHLO came first and no transaction is open. The connection
 * discards what the client pipelined behind it (§4.2) and calls session_tls_started once
 * the handshake is done. */
static enum session_action do_starttls(struct session *s, const struct smtp_command *cmd,
                                       int64_t now_ms, struct buf *out)
{
    (void)cmd;
    (void)now_ms;
    if (s->tls.version != NULL) /* RFC 3207 leaves 503 or 554 open */
        return session_error(s, REPLY_TLS_ACTIVE, NULL, out);
    if (!s->tls_offered)
        return session_error(s, REPLY_TLS_UNAVAILABLE, NULL, out);
    if (s->state == SESSION_STATE_GREETING)
        return session_error(s, REPLY_NEED_HELO, NULL, out);
    if (session_in_transaction(s))
        return session_error(s, REPLY_TXN_IN_PROGRESS, NULL, out);
    reply_write(out, REPLY_STARTTLS_GO, NULL);
    return SESSION_ACTION_STARTTLS;
}

/* begin_chunk - the connection is to read a chunk of size bytes next; discard: into
 * nothing, answered with an error after it (syntax: 501, else 503). */
static enum session_action begin_chunk(struct session *s, uint64_t size, bool last, bool discard,
                                       bool syntax)
{
    s->chunk_size = size;
    s->chunk_last = last;
    s->chunk_discard = discard;
    s->chunk_syntax = syntax;
    session_set_state(s, SESSION_STATE_CHUNK);
    return SESSION_ACTION_CHUNK;
}

/* do_bdat - one chunk (RFC 3030 §2). A BDAT with a size is always followed by that many
 * bytes, so a BDAT whose size can be read always reads its chunk: into the message when a
 * transaction with a recipient is open, else into nothing, with the error (503, or 501 for
 * a malformed rest of the line) as the reply after the chunk - its bytes are never taken as
 * commands. After a BDAT whose size cannot be read nobody knows where its chunk ends, so
 * nothing the client sends can be trusted to be a command: 501, then 421 and the session
 * ends. A malformed BDAT ends a message that already has chunks, so a message with a hole
 * in it is never posted. */
static enum session_action do_bdat(struct session *s, const struct smtp_command *cmd,
                                   int64_t now_ms, struct buf *out)
{
    uint64_t size;
    bool last;
    if (!smtp_cmd_bdat(cmd->arg, cmd->arg_len, &size, &last)) {
        if (smtp_cmd_bdat_size(cmd->arg, cmd->arg_len, &size))
            return begin_chunk(s, size, false, true, true);
        if (s->txn != NULL && s->txn->env.chunked)
            session_reset_transaction(s);
        enum session_action a = session_error(s, REPLY_SYNTAX_BDAT, NULL, out);
        return a == SESSION_ACTION_CLOSE ? a : session_desync(s, out);
    }
    bool discard = s->state != SESSION_STATE_RCPT;
    if (!discard) {
        struct txn *t = s->txn;
        if (!t->env.chunked) { /* the first chunk of the message */
            t->env.chunked = true;
            txn_begin_body(t, s->cfg->spool.directory, s->cfg->spool.memory_bytes, now_ms);
        }
        /* A chunk that cannot fit is read and thrown away at once (RFC 1870 §6.3 as for
         * DATA): nothing of it is stored. */
        uint64_t max = s->cfg->limits.max_message_bytes;
        if (t->env.size > max || size > max - t->env.size)
            t->too_big = true;
    }
    return begin_chunk(s, size, last, discard, false);
}

/* do_simple - commands that only answer: NOOP, QUIT, VRFY, EXPN, HELP. */
static enum session_action do_simple(struct session *s, const struct smtp_command *cmd,
                                     int64_t now_ms, struct buf *out)
{
    (void)now_ms;
    switch (cmd->verb) {
    case SMTP_VERB_NOOP:
        reply_write(out, REPLY_OK, NULL);
        return SESSION_ACTION_NONE;
    case SMTP_VERB_QUIT:
        reply_write(out, REPLY_QUIT, NULL);
        session_set_state(s, SESSION_STATE_CLOSING);
        return SESSION_ACTION_CLOSE;
    case SMTP_VERB_VRFY: /* RFC 5321 §3.5.3: 252 rather than revealing users */
        reply_write(out, REPLY_VRFY, NULL);
        return SESSION_ACTION_NONE;
    case SMTP_VERB_HELP:
        reply_write(out, REPLY_HELP, NULL);
        return SESSION_ACTION_NONE;
    default:
        return session_error(s, REPLY_NOT_IMPLEMENTED, NULL, out);
    }
}

/* session_junk - count a command that does nothing; true once there are too many. */
static bool session_junk(struct session *s, enum smtp_verb verb)
{
    unsigned max = s->cfg->limits.max_junk_commands;
    bool junk = verb == SMTP_VERB_NOOP || verb == SMTP_VERB_RSET || verb == SMTP_VERB_VRFY ||
                verb == SMTP_VERB_EXPN || verb == SMTP_VERB_HELP;
    return junk && max > 0 && ++s->junk > max;
}

/* find_command - the table row of a verb, NULL for unknown verbs. */
static const struct session_command *find_command(enum smtp_verb verb)
{
    for (size_t i = 0; i < sizeof(session_commands) / sizeof(session_commands[0]); i++) {
        if (session_commands[i].verb == verb)
            return &session_commands[i];
    }
    return NULL;
}

/* session_line - one command: table rules first, then the handler. */
enum session_action session_line(struct session *s, const char *line, size_t len, int64_t now_ms,
                                 struct buf *out)
{
    if (s->state == SESSION_STATE_CLOSING || s->state == SESSION_STATE_DATA ||
        s->state == SESSION_STATE_CHUNK || s->state == SESSION_STATE_DELIVERING)
        return SESSION_ACTION_NONE;

    struct smtp_command cmd;
    smtp_cmd_parse(line, len, &cmd);
    size_t before = out->len;
    enum session_action a = session_command(s, &cmd, line, len, now_ms, out);
    session_tell_reply(s, cmd.verb, out, before);
    return a;
}

/* session_command - one parsed command line (see session_line). */
static enum session_action session_command(struct session *s, const struct smtp_command *cmdp,
                                           const char *line, size_t len, int64_t now_ms,
                                           struct buf *out)
{
    struct smtp_command cmd = *cmdp;
    if (session_checking(s) && (cmd.verb != SMTP_VERB_RCPT ||
                                s->n_pending - s->pending_head >=
                                    s->cfg->limits.max_recipients + s->cfg->limits.max_errors)) {
        /* Its reply must follow those of the RCPTs before it (RFC 2920 §3.1): it waits. An
         * RCPT waits too once the line is longer than all the recipients and errors a
         * transaction can have: a client cannot make the queue grow without bound while a
         * check is slow. */
        if ((s->deferred = malloc(len > 0 ? len : 1)) == NULL)
            return session_fatal(s, out);
        memcpy(s->deferred, line, len);
        s->deferred_len = len;
        return SESSION_ACTION_WAIT;
    }
    const struct session_command *row = find_command(cmd.verb);
    enum session_action a;
    if (session_junk(s, cmd.verb)) {
        /* A session that only keeps itself alive (NOOP every few seconds) holds a
         * connection slot for ever: like Postfix's smtpd_junk_command_limit. */
        log_info("session %s %s:%u: more than %u commands that do nothing, closing", s->id_prefix,
                 s->client_address, s->client_port, s->cfg->limits.max_junk_commands);
        reply_write(out, REPLY_TOO_MANY_JUNK, s->cfg->hostname);
        s->ended_for = "junk_commands";
        session_set_state(s, SESSION_STATE_CLOSING);
        return SESSION_ACTION_CLOSE;
    }
    if (row == NULL)
        a = session_error(s, REPLY_UNKNOWN, NULL, out);
    else if ((row->arg == ARG_NONE && cmd.has_arg) || (row->arg == ARG_NEEDED && !cmd.has_arg))
        a = cmd.verb == SMTP_VERB_RCPT ? rcpt_syntax_error(s, row->syntax, out)
                                       : session_error(s, row->syntax, NULL, out);
    else if (row->needs_helo && s->state == SESSION_STATE_GREETING)
        a = session_error(s, REPLY_NEED_HELO, NULL, out);
    else
        a = row->handler(s, &cmd, now_ms, out);

    /* Shutting down: once no transaction is open, say so and close. */
    if (a == SESSION_ACTION_NONE && !session_in_transaction(s))
        a = session_close_if_stopping(s, out);
    /* RFC 2920 §3.1: DATA is the last command of a group whatever becomes of it, so a DATA
     * refused by the table's rules (an argument, no HELO yet) is a refused DATA too. */
    if (a == SESSION_ACTION_NONE && cmd.verb == SMTP_VERB_DATA)
        return SESSION_ACTION_REFUSED;
    return a;
}

/* session_line_too_long - RFC 5321 §4.5.3.1.4: 500 for a line over the limit. */
enum session_action session_line_too_long(struct session *s, struct buf *out)
{
    if (s->state == SESSION_STATE_CLOSING)
        return SESSION_ACTION_NONE;
    if (session_checking(s)) {
        s->deferred_too_long = true;
        return SESSION_ACTION_WAIT;
    }
    return session_error(s, REPLY_LINE_TOO_LONG, NULL, out);
}

/* session_data - count message bytes and store them; past the limit keep reading, store
 * nothing (RFC 1870 §6.3: the size is enforced after the data has been received). The
 * bytes of a chunk without a transaction are neither counted nor stored. */
void session_data(struct session *s, const char *data, size_t n)
{
    if (s->txn == NULL || (s->state != SESSION_STATE_DATA && s->state != SESSION_STATE_CHUNK) ||
        (s->state == SESSION_STATE_CHUNK && s->chunk_discard))
        return;
    txn_append(s->txn, data, n, s->cfg->limits.max_message_bytes);
}

/* session_answer_txn - a message that is not delivered: its reply, its log line, and the
 * end of the transaction. */
static enum session_action session_answer_txn(struct session *s, unsigned code, const char *esc,
                                              const char *text, int64_t now_ms, struct buf *out)
{
    struct txn *t = s->txn;
    t->reply.code = code;
    snprintf(t->reply.esc, sizeof(t->reply.esc), "%s", esc);
    snprintf(t->reply.text, sizeof(t->reply.text), "%s", text);
    txn_end_body(t, now_ms);
    txn_log(t, now_ms);
    reply_write_custom(out, code, esc, text, 1);
    session_reset_transaction(s);
    return session_close_if_stopping(s, out);
}

/* session_message_end - the body is complete (final dot, LAST chunk): DELIVER a message
 * that was stored whole; 552 for one over the limit (RFC 1870 §6.3), 451 for one that could
 * not be stored (the sender tries again later). */
static enum session_action session_message_end(struct session *s, int64_t now_ms, struct buf *out)
{
    struct txn *t = s->txn;
    if (t->too_big)
        return session_answer_txn(s, reply_code(REPLY_SIZE_EXCEEDED), "5.3.4",
                                  "Message size exceeds fixed limit", now_ms, out);
    if (t->spool_error != 0) {
        char text[128];
        log_error("txn id=%s local failure: %s", t->env.id, sh_strerror(t->spool_error));
        snprintf(text, sizeof(text), "Error: local problem, try again later (id %s)", t->env.id);
        return session_answer_txn(s, 451, "4.3.0", text, now_ms, out);
    }
    txn_end_body(t, now_ms);
    session_set_state(s, SESSION_STATE_DELIVERING);
    return SESSION_ACTION_DELIVER;
}

/* session_data_end - the final dot. */
enum session_action session_data_end(struct session *s, int64_t now_ms, struct buf *out)
{
    if (s->state != SESSION_STATE_DATA)
        return SESSION_ACTION_NONE;
    return session_message_end(s, now_ms, out);
}

/* session_take_txn - hand the complete message over; DELIVERING until session_delivered. */
struct txn *session_take_txn(struct session *s)
{
    struct txn *t = s->state == SESSION_STATE_DELIVERING ? s->txn : NULL;
    if (t != NULL)
        s->txn = NULL;
    return t;
}

/* session_chunk_size - the size of the chunk the last CHUNK action announced. */
uint64_t session_chunk_size(const struct session *s)
{
    return s->chunk_size;
}

/* chunk_refused - the end of a chunk read without a transaction: the error that BDAT
 * deserved, now, in its place among the replies (RFC 3030 §2). A transaction whose
 * recipients all failed ends here, so chunks pipelined behind fail too (RFC 3030 §2: the
 * client sends no more after an error, the server discards those already sent). */
static enum session_action chunk_refused(struct session *s, struct buf *out)
{
    enum reply_id id;
    bool syntax = s->chunk_syntax;
    s->chunk_discard = false;
    s->chunk_syntax = false;
    if (syntax) {
        /* The state the BDAT found, less a chunked message that now has a hole. */
        id = REPLY_SYNTAX_BDAT;
        if (s->helo == NULL)
            session_set_state(s, SESSION_STATE_GREETING);
        else if (s->txn == NULL || s->txn->env.chunked)
            session_reset_transaction(s);
        else
            session_set_state(s, s->txn->env.n_rcpt > 0 ? SESSION_STATE_RCPT : SESSION_STATE_MAIL);
    } else if (s->helo == NULL) {
        session_set_state(s, SESSION_STATE_GREETING);
        id = REPLY_NEED_HELO;
    } else if (s->txn != NULL) {
        session_reset_transaction(s);
        id = REPLY_BDAT_NEED_RCPT;
    } else {
        session_set_state(s, SESSION_STATE_READY);
        id = REPLY_NEED_MAIL;
    }
    enum session_action a = session_error(s, id, NULL, out);
    return a == SESSION_ACTION_NONE ? session_close_if_stopping(s, out) : a;
}

/* session_chunk_end - see session.h. A message over the limit ends at the chunk that made
 * it so, LAST or not (RFC 3030 §2 leaves the chunks behind to be refused). */
enum session_action session_chunk_end(struct session *s, int64_t now_ms, struct buf *out)
{
    if (s->state != SESSION_STATE_CHUNK) /* closed (timeout, shutdown) while reading */
        return SESSION_ACTION_NONE;
    if (s->chunk_discard)
        return chunk_refused(s, out);
    if (s->txn->too_big || s->chunk_last)
        return session_message_end(s, now_ms, out);
    char n[24];
    snprintf(n, sizeof(n), "%" PRIu64, s->chunk_size);
    session_set_state(s, SESSION_STATE_RCPT);
    reply_write(out, REPLY_CHUNK_OK, n);
    return SESSION_ACTION_NONE;
}

/* session_delivered - the outcome becomes the reply to the final dot or LAST chunk. */
enum session_action session_delivered(struct session *s, const struct app_reply *reply,
                                      struct buf *out)
{
    if (s->state != SESSION_STATE_DELIVERING)
        return SESSION_ACTION_NONE;
    reply_write_custom(out, reply->code, reply->esc[0] != '\0' ? reply->esc : NULL, reply->text, 1);
    session_reset_transaction(s);
    if (reply->code / 100 == 2)
        s->junk = 0; /* as Postfix: a client that delivers mail is doing more than keeping alive */
    return session_close_if_stopping(s, out);
}

/* session_desync - RFC 2920 §3.1: the client did not wait where it had to, so the input
 * that follows cannot be told apart from message text; 421 and close, nothing executed. */
enum session_action session_desync(struct session *s, struct buf *out)
{
    if (s->state == SESSION_STATE_CLOSING)
        return SESSION_ACTION_CLOSE;
    reply_write(out, REPLY_SYNC_LOST, s->cfg->hostname);
    session_reset_transaction(s);
    session_set_state(s, SESSION_STATE_CLOSING);
    return SESSION_ACTION_CLOSE;
}

/* session_timeout_for - see session.h. */
enum session_action session_timeout_for(struct session *s, enum reply_id why, struct buf *out)
{
    reply_write(out, why, s->cfg->hostname);
    session_set_state(s, SESSION_STATE_CLOSING);
    return SESSION_ACTION_CLOSE;
}

/* session_timeout - idle too long (RFC 5321 §4.5.3.2.7). */
enum session_action session_timeout(struct session *s, struct buf *out)
{
    return session_timeout_for(s, REPLY_TIMEOUT, out);
}

/* session_shutdown - close idle sessions now; let an open transaction finish. */
enum session_action session_shutdown(struct session *s, struct buf *out)
{
    s->shutting_down = true;
    if (session_in_transaction(s))
        return SESSION_ACTION_NONE;
    return session_close_if_stopping(s, out);
}

/* session_txn - the transaction being built. */
const struct txn *session_txn(const struct session *s)
{
    return s->txn;
}

/* session_in_transaction - between MAIL and the reply to the final dot or last chunk; a
 * chunk read without a transaction is none. */
bool session_in_transaction(const struct session *s)
{
    return s->state == SESSION_STATE_MAIL || s->state == SESSION_STATE_RCPT ||
           s->state == SESSION_STATE_DATA || s->state == SESSION_STATE_DELIVERING ||
           (s->state == SESSION_STATE_CHUNK && !s->chunk_discard);
}
