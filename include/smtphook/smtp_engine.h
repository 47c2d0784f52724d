/* smtp_engine.h - the glue between parser and session: bytes in, replies and requests out.
 *
 * Pure: what a connection does with the bytes it read, minus the I/O. It runs them through
 * the parser, hands each event to the session, carries out the session's actions that need
 * no I/O (data or chunk mode, storing the body, a refused DATA with text behind it, a
 * chunk of 0 bytes) and stops where the connection has to act: a message to deliver, a TLS
 * handshake to start, a close, or replies piling up. conn.c, the unit tests and the fuzz
 * targets all drive this same code, so the pipelining and smuggling defences are tested on
 * the path real traffic takes. */
#ifndef SMTPHOOK_SMTP_ENGINE_H
#define SMTPHOOK_SMTP_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smtphook/buf.h"
#include "smtphook/config.h"
#include "smtphook/session.h"
#include "smtphook/smtp_parser.h"
#include "smtphook/txn.h"

/* Why smtp_engine_feed stopped. */
enum smtp_engine_stop {
    SMTP_ENGINE_IDLE = 0, /* the input is used up: read more */
    SMTP_ENGINE_DELIVER,  /* a message is complete: take it (smtp_engine_take_txn), deliver it,
                             then smtp_engine_delivered; the unused input waits until then */
    SMTP_ENGINE_STARTTLS, /* the 220 is in out: send it in plaintext, start the handshake, then
                             smtp_engine_tls_started; the rest of the input was dropped
                             (RFC 3207 §4.2) */
    SMTP_ENGINE_CLOSE,    /* send out, then close; the rest of the input was dropped */
    SMTP_ENGINE_FULL,     /* replies reached the output limit: send them, then feed the rest */
    SMTP_ENGINE_WAIT,     /* a command waits for the recipient checks under way: answer them
                             (smtp_engine_rcpt_checked); feed the rest after that */
};

struct smtp_engine {
    struct smtp_parser parser; /* bytes -> lines, message bytes, chunk ends */
    struct session session;    /* SMTP state, the transaction being built */
    struct buf out;            /* replies not yet taken by the connection */
    size_t out_limit;          /* feed stops (FULL) once out plus the caller's unsent bytes
                                  reach this */
    bool closed;               /* CLOSE was returned: nothing more is processed */
};

/* smtp_engine_init - a session for a new client (see session_init); replies queue in out
 * up to out_limit. Nothing is allocated yet. */
void smtp_engine_init(struct smtp_engine *e, const struct config *cfg, const char *client_address,
                      uint16_t client_port, const char *id_prefix, size_t out_limit);

/* smtp_engine_free - release the parser, the session (and its transaction) and out. */
void smtp_engine_free(struct smtp_engine *e);

/* smtp_engine_greet - the 220 banner into out. */
void smtp_engine_greet(struct smtp_engine *e);

/* smtp_engine_feed - run data[0, len) through parser and session until it is used up or
 * the engine must stop; *stop says why. unsent: reply bytes the caller holds but has not
 * written yet (they count against out_limit). now_ms stamps transactions. Returns the bytes
 * consumed: all of them for IDLE, STARTTLS and CLOSE; for DELIVER and FULL the rest must be
 * fed again later, in order, after whatever the caller receives meanwhile. Returns 0 with
 * CLOSE when memory ran out (nothing can be answered then; the caller just closes). */
size_t smtp_engine_feed(struct smtp_engine *e, const char *data, size_t len, size_t unsent,
                        int64_t now_ms, enum smtp_engine_stop *stop);

/* smtp_engine_pending - true when a feed has work even without input (the end of a BDAT
 * chunk whose last byte was the last input, after a stop). */
bool smtp_engine_pending(const struct smtp_engine *e);

/* smtp_engine_take_txn - after DELIVER: the message, now the caller's. */
struct txn *smtp_engine_take_txn(struct smtp_engine *e);

/* smtp_engine_delivered - the delivery's reply goes out as the reply to the final dot.
 * Returns CLOSE (shutting down: the 421 follows) or IDLE. */
enum smtp_engine_stop smtp_engine_delivered(struct smtp_engine *e, const struct app_reply *reply);

/* smtp_engine_tls_started - the handshake after STARTTLS (or of an implicit TLS listener)
 * is done: see session_tls_started. greet: an implicit TLS listener greets only now. */
void smtp_engine_tls_started(struct smtp_engine *e, const struct envelope_tls *tls, bool greet);

/* smtp_engine_timeout - the client was idle too long: 421 4.4.2, returns CLOSE. */
enum smtp_engine_stop smtp_engine_timeout(struct smtp_engine *e);

/* smtp_engine_timeout_for - the same with the reply why (REPLY_COMMAND_TIMEOUT,
 * REPLY_DATA_TOO_SLOW). */
enum smtp_engine_stop smtp_engine_timeout_for(struct smtp_engine *e, enum reply_id why);

/* smtp_engine_in_line - part of a command line has come, not its end. */
bool smtp_engine_in_line(const struct smtp_engine *e);

/* smtp_engine_body - a message body is arriving (DATA's text, or BDAT chunks until the
 * LAST one): true with the bytes received so far in *bytes. */
bool smtp_engine_body(const struct smtp_engine *e, uint64_t *bytes);

/* smtp_engine_shutdown - the server stops: CLOSE with 421 4.3.2 when no transaction is
 * open, else IDLE (it closes after the transaction's reply). */
enum smtp_engine_stop smtp_engine_shutdown(struct smtp_engine *e);

/* smtp_engine_take_check - the next recipient check to start (see session_take_check), or
 * -1. Call after every feed: RCPTs queue their checks and feeding goes on. Call after
 * smtp_engine_rcpt_checked too: an RCPT that waited for room in the line runs once the line
 * is empty, and may queue its check then. */
long smtp_engine_take_check(struct smtp_engine *e);

/* smtp_engine_rcpt_checked - the answer to check index (see session_rcpt_checked). more:
 * input is waiting behind the command that may run now. Returns why to stop, as a feed
 * does (IDLE when the engine can be fed again). */
enum smtp_engine_stop smtp_engine_rcpt_checked(struct smtp_engine *e, size_t index, bool accept,
                                               const struct app_reply *reply, bool more,
                                               int64_t now_ms);

/* smtp_engine_waiting - a command waits for the recipient checks under way: input must wait
 * (RCPTs behind pending checks are fed on, so that their checks run at the same time). */
bool smtp_engine_waiting(const struct smtp_engine *e);

/* smtp_engine_txn - the transaction being built, or NULL (for the log of an abandoned one). */
const struct txn *smtp_engine_txn(const struct smtp_engine *e);

/* smtp_engine_body_txn - the transaction being built, to follow its body as it arrives
 * (streamed requests; its on_free hook may be set), or NULL. */
struct txn *smtp_engine_body_txn(struct smtp_engine *e);

/* smtp_engine_delivering - a message was handed over and its reply is still due. */
bool smtp_engine_delivering(const struct smtp_engine *e);

#endif
