/* session.h - the SMTP state machine (RFC 5321): command in, reply and action out.
 *
 * Pure: no sockets, no TLS, no HTTP. smtp_engine feeds it parser events and carries out the
 * action it returns; replies are appended to a caller-owned buffer. From MAIL on the
 * session owns the transaction (txn.h): envelope, body, hash. A message that is complete
 * and fit to deliver is handed over with session_take_txn(); one that is not (too big, not
 * stored) is answered, logged and freed here. */
#ifndef SMTPHOOK_SESSION_H
#define SMTPHOOK_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smtphook/buf.h"
#include "smtphook/config.h"
#include "smtphook/reply.h"
#include "smtphook/envelope.h"
#include "smtphook/rate.h"
#include "smtphook/smtp_cmd.h"
#include "smtphook/txn.h"

enum session_state {
    SESSION_STATE_GREETING = 0, /* connected, waiting for HELO/EHLO */
    SESSION_STATE_READY,        /* HELO done, no transaction */
    SESSION_STATE_MAIL,         /* MAIL accepted, no recipient yet */
    SESSION_STATE_RCPT,         /* at least one recipient accepted */
    SESSION_STATE_DATA,         /* reading the message (DATA) */
    SESSION_STATE_CHUNK,        /* reading a BDAT chunk (stored or discarded) */
    SESSION_STATE_DELIVERING,   /* message handed over, waiting for the webhook outcome */
    SESSION_STATE_CLOSING,      /* QUIT, 421 or shutdown: nothing more is read */
};

/* What the connection must do after a call. */
enum session_action {
    SESSION_ACTION_NONE = 0, /* keep reading commands */
    SESSION_ACTION_DATA,     /* 354 sent: switch the parser to data mode */
    SESSION_ACTION_DELIVER,  /* message complete: take it (session_take_txn), deliver it,
                                then call session_delivered */
    SESSION_ACTION_REFUSED,  /* a refused DATA: input already received behind it was sent
                                without waiting for the reply (RFC 2920 §3.1); if there is
                                any, call session_desync */
    SESSION_ACTION_CLOSE,    /* flush replies, then close */
    SESSION_ACTION_STARTTLS, /* 220 written: send it, discard all input behind the command
                                (RFC 3207 §4.2), start the handshake, then call
                                session_tls_started */
    SESSION_ACTION_CHECK,    /* an RCPT waits for the recipient check: take it with
                                session_take_check, answer with session_rcpt_checked;
                                keep feeding */
    SESSION_ACTION_WAIT,     /* a command arrived while recipient checks are pending: it is
                                kept and runs when they are answered; feed nothing more
                                until then */
    SESSION_ACTION_CHUNK,    /* BDAT: read session_chunk_size() bytes raw as message data
                                (feed them to session_data), then call session_chunk_end;
                                size 0: call session_chunk_end at once */
};

/* One RCPT whose reply waits: for its own recipient check, or behind an earlier one's. */
struct session_rcpt {
    int kind;                /* what it comes to (session.c's enum rcpt_kind) */
    int id;                  /* its reply (enum reply_id) unless custom */
    char *mailbox;           /* the recipient, when it may be added */
    long route;              /* its route, -1 for none */
    bool decided;            /* its reply is known */
    bool started;            /* its check was handed out (session_take_check) */
    bool has_custom;         /* custom holds the reply the check chose */
    struct app_reply custom; /* that reply */
};

/* Asked at RCPT: can the route deliver nothing now (open circuit breakers)? route is an
 * index into config.routes, -1 without routes. */
typedef bool (*session_route_down_fn)(void *arg, long route);

/* Asked at MAIL (route SESSION_ANY_ROUTE) and at RCPT (its route, -1 without routes): is
 * there no room for another message that goes this way (the queue is full)? */
typedef bool (*session_room_fn)(void *arg, long route);
#define SESSION_ANY_ROUTE (-2L)

/* Hears the code of the first reply each command line got. */
typedef void (*session_reply_fn)(void *arg, enum smtp_verb verb, unsigned code);

/* Takes one of kind from the client's rate buckets: false when its rate is spent. */
typedef bool (*session_rate_fn)(void *arg, enum rate_kind kind);

struct session {
    enum session_state state;         /* see enum */
    const struct config *cfg;         /* limits, hostname, domains (not owned) */
    char *helo;                       /* HELO/EHLO argument, NULL before */
    bool esmtp;                       /* EHLO was used */
    session_route_down_fn route_down; /* see session_set_route_probe, or NULL */
    void *route_down_arg;             /* passed to route_down */
    session_room_fn no_room;          /* see session_set_room_probe, or NULL */
    void *no_room_arg;                /* passed to no_room */
    session_rate_fn rate;             /* see session_set_rate_limit, or NULL */
    session_reply_fn on_reply;        /* see session_set_reply_hook, or NULL */
    void *on_reply_arg;               /* passed to on_reply */
    void *rate_arg;                   /* passed to rate */
    struct txn *txn;                  /* current transaction from MAIL on, NULL otherwise */
    struct session_rcpt *pending;     /* RCPTs whose replies wait, in command order */
    size_t pending_head;              /* first entry not yet answered */
    size_t n_pending;                 /* entries used (the queue is [pending_head, n_pending)) */
    size_t pending_cap;               /* entries allocated */
    char *deferred;                   /* a command that came while checks were pending, or NULL */
    size_t deferred_len;              /* its length */
    bool deferred_too_long;           /* ... or an over-long line that did */
    unsigned errors;                  /* error replies so far (error budget) */
    const char *ended_for;            /* why the session ended itself (a metric's label,
                                         static), or NULL */
    unsigned junk;                    /* NOOP, RSET, VRFY, EXPN, HELP since the last message
                                         delivered (rate limit refusals count too) */
    unsigned rcpt_overshoot;          /* recipients refused with 452 for the recipient limit */
    unsigned transactions;            /* transactions started, for ids */
    bool shutting_down;               /* server stops: close after the current transaction */
    bool tls_offered;                 /* STARTTLS may be used on this listener */
    bool tls_required;                /* MAIL needs TLS first (530 5.7.0) */
    struct envelope_tls tls;          /* TLS facts once a handshake is done (strings not owned) */
    uint64_t chunk_size;              /* bytes of the BDAT chunk being read */
    bool chunk_last;                  /* that chunk is the LAST one */
    bool chunk_discard;               /* that chunk is read and thrown away (no transaction) */
    bool chunk_syntax;                /* ... because its BDAT line was malformed: 501 after it */
    char id_prefix[32];               /* unique per connection; ids are "<prefix>.<n>" */
    char client_address[64];          /* peer IP as text */
    uint16_t client_port;             /* peer port */
};

/* session_init - a new session for a client; id_prefix must be unique per connection.
 * Nothing is allocated until commands arrive. */
void session_init(struct session *s, const struct config *cfg, const char *client_address,
                  uint16_t client_port, const char *id_prefix);

/* session_set_rate_limit - how to ask whether the client may begin another message (MAIL)
 * or give another recipient (RCPT); NULL (the default): always. A refusal is 451 4.7.1 and
 * counts as a command that does nothing (limits.max_junk_commands). */
void session_set_rate_limit(struct session *s, session_rate_fn fn, void *arg);

/* session_set_reply_hook - fn hears the first reply code of every command line answered
 * (for the metrics); NULL: nobody. */
void session_set_reply_hook(struct session *s, session_reply_fn fn, void *arg);

/* session_set_client - the client is another than the socket's peer (a PROXY protocol header
 * named it): its address and port, for the envelope and the log. Before the greeting. */
void session_set_client(struct session *s, const char *address, uint16_t port);

/* session_set_tls_policy - the listener's TLS rules: STARTTLS offered, TLS required for MAIL.
 * Call before the greeting. */
void session_set_tls_policy(struct session *s, bool offer_starttls, bool require_tls);

/* session_set_route_probe - how to learn at RCPT that a recipient's route is down; NULL
 * (the default): never. A recipient of a route that is down gets 451 4.4.1 at once, so the
 * rest of the message goes where it can and only those recipients wait. */
void session_set_route_probe(struct session *s, session_route_down_fn fn, void *arg);

/* session_set_room_probe - how to learn at MAIL and RCPT that a message could not be
 * stored (the queue is full); NULL (the default): never. Either gets 452 4.3.1 (RFC 3463
 * "mail system full"), not counted as an error: the sender tries again later. */
void session_set_room_probe(struct session *s, session_room_fn fn, void *arg);

/* session_tls_started - a handshake finished (after STARTTLS, or before the greeting on an
 * implicit TLS listener): record the facts (pointers kept until the next MAIL copies them
 * into its transaction) and forget HELO, MAIL and RCPT (RFC 3207 §4.2). STARTTLS is not
 * offered again. */
void session_tls_started(struct session *s, const struct envelope_tls *tls);

/* session_chunk_size - bytes of the BDAT chunk announced by the last CHUNK action. */
uint64_t session_chunk_size(const struct session *s);

/* session_chunk_end - the chunk's bytes were all read: 250 for a middle chunk, DELIVER after
 * LAST, 552 when the message went over max_message_bytes, the deferred error reply for a
 * discarded chunk (RFC 3030 §2). now_ms stamps the end of the message. */
enum session_action session_chunk_end(struct session *s, int64_t now_ms, struct buf *out);

/* session_free - release the transaction and HELO name. */
void session_free(struct session *s);

/* session_greeting - append the 220 banner. */
void session_greeting(struct session *s, struct buf *out);

/* session_line - handle one command line (without CRLF). now_ms stamps a new transaction. */
enum session_action session_line(struct session *s, const char *line, size_t len, int64_t now_ms,
                                 struct buf *out);

/* session_line_too_long - the parser skipped an over-long line: 500 5.5.2. */
enum session_action session_line_too_long(struct session *s, struct buf *out);

/* session_data - n message bytes: counted, and stored in the transaction while it is within
 * max_message_bytes (past it: keep reading, store nothing). The bytes of a chunk read
 * without a transaction go nowhere. */
void session_data(struct session *s, const char *data, size_t n);

/* session_data_end - the final dot: DELIVER; or, for a message that went over
 * max_message_bytes (552 5.3.4) or could not be stored (451 4.3.0), the reply, the log line
 * and the end of the transaction here (NONE, or CLOSE when shutting down). */
enum session_action session_data_end(struct session *s, int64_t now_ms, struct buf *out);

/* session_take_txn - after DELIVER: the complete message, now the caller's (free it with
 * txn_free when done). The session waits in DELIVERING for session_delivered. */
struct txn *session_take_txn(struct session *s);

/* session_delivered - the outcome of the delivery: write it as the reply to the final dot
 * (reply->text exactly), leave DELIVERING. Returns CLOSE when shutting down, else NONE. */
enum session_action session_delivered(struct session *s, const struct app_reply *reply,
                                      struct buf *out);

/* session_take_check - the next recipient check to start, or -1. The index names it in
 * session_rcpt_checked. */
long session_take_check(struct session *s);

/* session_check_recipient - the recipient of check index. */
const char *session_check_recipient(const struct session *s, size_t index);

/* session_rcpt_checked - the check of index is answered: accept (250 2.1.5, or reply's
 * text) or refuse with reply. The replies due are written in command order; once no check
 * is pending the command that waited runs, and its action is returned. now_ms stamps it. */
enum session_action session_rcpt_checked(struct session *s, size_t index, bool accept,
                                         const struct app_reply *reply, int64_t now_ms,
                                         struct buf *out);

/* session_checking - RCPT replies are waiting for recipient checks: further RCPTs join the
 * line, any other command waits (see session_waiting). */
bool session_checking(const struct session *s);

/* session_waiting - a command is kept until the checks are answered: input must wait. */
bool session_waiting(const struct session *s);

/* session_desync - input arrived that the client sent without waiting for a reply it had
 * to wait for (behind a refused DATA): 421 4.5.0, CLOSE. None of it is executed. */
enum session_action session_desync(struct session *s, struct buf *out);

/* session_timeout_for - like session_timeout, with the reply why (a command or message that
 * came too slowly). */
enum session_action session_timeout_for(struct session *s, enum reply_id why, struct buf *out);

/* session_timeout - the idle timer fired: 421 4.4.2, CLOSE. */
enum session_action session_timeout(struct session *s, struct buf *out);

/* session_shutdown - the server stops. Idle sessions get 421 4.3.2 and CLOSE; a session in a
 * transaction is let finish and closes after its reply (returns NONE then). */
enum session_action session_shutdown(struct session *s, struct buf *out);

/* session_txn - the transaction being built (MAIL to the end of its body), or NULL. */
const struct txn *session_txn(const struct session *s);

/* session_in_transaction - MAIL accepted and not yet ended. */
bool session_in_transaction(const struct session *s);

/* session_state_name - "GREETING", ... for logs. */
const char *session_state_name(enum session_state st);

#endif
