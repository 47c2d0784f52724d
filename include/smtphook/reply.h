/* reply.h - every SMTP reply smtphook sends, as data: {code, enhanced code, text}.
 *
 * Pure. Enhanced status codes follow RFC 3463 and are sent on every reply except the
 * greeting, the EHLO/HELO lines and 354, as Postfix does (the 220 to STARTTLS has one).
 * A "{}" in the text is replaced by one argument (the hostname, an id, a size). */
#ifndef SMTPHOOK_REPLY_H
#define SMTPHOOK_REPLY_H

#include "smtphook/buf.h"

#define REPLY_MAP(X)                                                                               \
    X(GREETING, 220, NULL, "{} ESMTP smtphook")                                                    \
    X(HELO, 250, NULL, "{}")                                                                       \
    X(OK, 250, "2.0.0", "Ok")                                                                      \
    X(MAIL_OK, 250, "2.1.0", "Ok")                                                                 \
    X(RCPT_OK, 250, "2.1.5", "Ok")                                                                 \
    X(DATA_GO, 354, NULL, "End data with <CR><LF>.<CR><LF>")                                       \
    X(QUIT, 221, "2.0.0", "Bye")                                                                   \
    X(VRFY, 252, "2.0.0", "Cannot VRFY user, but will accept message and attempt delivery")        \
    X(HELP, 214, "2.0.0", "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP")      \
    X(UNKNOWN, 500, "5.5.2", "Error: command not recognized")                                      \
    X(LINE_TOO_LONG, 500, "5.5.2", "Error: line too long")                                         \
    X(NOT_IMPLEMENTED, 502, "5.5.1", "Error: command not implemented")                             \
    X(NEED_HELO, 503, "5.5.1", "Error: send HELO/EHLO first")                                      \
    X(NESTED_MAIL, 503, "5.5.1", "Error: nested MAIL command")                                     \
    X(NEED_MAIL, 503, "5.5.1", "Error: need MAIL command")                                         \
    X(NEED_RCPT, 554, "5.5.1", "Error: no valid recipients")                                       \
    X(BDAT_NEED_RCPT, 503, "5.5.1", "Error: no valid recipients")                                  \
    X(DATA_AFTER_BDAT, 503, "5.5.1", "Error: DATA after BDAT in the same transaction")             \
    X(BINARYMIME_DATA, 503, "5.5.1", "Error: BODY=BINARYMIME requires BDAT")                       \
    X(TXN_IN_PROGRESS, 503, "5.5.1", "Error: MAIL transaction in progress")                        \
    X(TLS_ACTIVE, 503, "5.5.1", "Error: TLS already active")                                       \
    X(TLS_REQUIRED, 530, "5.7.0", "Must issue a STARTTLS command first")                           \
    X(STARTTLS_GO, 220, "2.0.0", "Ready to start TLS")                                             \
    X(CHUNK_OK, 250, "2.0.0", "{} octets received")                                                \
    X(SYNTAX_HELO, 501, "5.5.4", "Syntax: EHLO hostname")                                          \
    X(SYNTAX_MAIL, 501, "5.5.4", "Syntax: MAIL FROM:<address>")                                    \
    X(SYNTAX_RCPT, 501, "5.5.4", "Syntax: RCPT TO:<address>")                                      \
    X(SYNTAX_DATA, 501, "5.5.4", "Syntax: DATA")                                                   \
    X(SYNTAX_RSET, 501, "5.5.4", "Syntax: RSET")                                                   \
    X(SYNTAX_QUIT, 501, "5.5.4", "Syntax: QUIT")                                                   \
    X(SYNTAX_VRFY, 501, "5.5.4", "Syntax: VRFY address")                                           \
    X(SYNTAX_STARTTLS, 501, "5.5.4", "Syntax: STARTTLS")                                           \
    X(SYNTAX_BDAT, 501, "5.5.4", "Syntax: BDAT size [LAST]")                                       \
    X(BAD_SENDER, 501, "5.1.7", "Bad sender address syntax")                                       \
    X(BAD_RCPT, 501, "5.1.3", "Bad recipient address syntax")                                      \
    X(SENDER_TOO_LONG, 501, "5.1.7", "Sender address too long")                                    \
    X(RCPT_TOO_LONG, 501, "5.1.3", "Recipient address too long")                                   \
    X(NEEDS_SMTPUTF8, 553, "5.6.7", "Non-ASCII address requires SMTPUTF8")                         \
    X(BAD_PARAM, 501, "5.5.4", "Bad parameter syntax")                                             \
    X(UNKNOWN_PARAM, 555, "5.5.4", "Unsupported parameter")                                        \
    X(BAD_SIZE, 501, "5.5.4", "Bad SIZE parameter")                                                \
    X(BAD_BODY, 501, "5.5.4", "Bad BODY parameter")                                                \
    X(PARAM_NOT_ESMTP, 555, "5.5.4", "Parameters need EHLO")                                       \
    X(SIZE_EXCEEDED, 552, "5.3.4", "Message size exceeds fixed limit")                             \
    X(RELAY_DENIED, 550, "5.7.1", "Relay access denied")                                           \
    X(UNKNOWN_RCPT, 550, "5.1.1", "Error: recipient address rejected: user unknown")               \
    X(ROUTE_DOWN, 451, "4.4.1",                                                                    \
      "Error: the application for this recipient is unavailable, try again later")                 \
    X(OTHER_ROUTE, 452, "4.5.3",                                                                   \
      "Error: recipient of another route, send it in a separate transaction")                      \
    X(TOO_MANY_RCPTS, 452, "4.5.3", "Error: too many recipients")                                  \
    X(HEAD_FULL, 452, "4.5.3",                                                                     \
      "Error: too many recipients for one request to the web app, send the others later")          \
    X(ENVELOPE_TOO_BIG, 550, "5.3.4",                                                              \
      "Error: envelope too large for the web app's request headers")                               \
    X(TLS_UNAVAILABLE, 454, "4.7.0", "TLS not available")                                          \
    X(LOCAL_ERROR, 451, "4.3.0", "Error: local problem, try again later")                          \
    X(QUEUE_FULL, 452, "4.3.1", "Error: queue full, try again later")                              \
    X(TOO_MANY_ERRORS, 421, "4.7.0", "{} Error: too many errors")                                  \
    X(TIMEOUT, 421, "4.4.2", "{} Error: timeout exceeded")                                         \
    X(COMMAND_TIMEOUT, 421, "4.4.2", "{} Error: command line not completed in time")               \
    X(DATA_TOO_SLOW, 421, "4.4.2", "{} Error: message data too slow")                              \
    X(TOO_MANY_JUNK, 421, "4.7.0", "{} Error: too many commands that do nothing")                  \
    X(RATE_CONNECTIONS, 421, "4.7.0",                                                              \
      "{} Error: too many connections from your address, try later")                               \
    X(RATE_MESSAGES, 451, "4.7.1", "Error: too many messages from your address, try later")        \
    X(RATE_RECIPIENTS, 451, "4.7.1", "Error: too many recipients from your address, try later")    \
    X(SHUTDOWN, 421, "4.3.2", "{} Service shutting down, try again later")                         \
    X(TOO_MANY_CONNECTIONS, 421, "4.7.0", "{} Error: too many connections")                        \
    X(SYNC_LOST, 421, "4.5.0", "{} Error: SMTP protocol synchronization, closing")                 \
    X(LOCAL_FATAL, 421, "4.3.0", "{} Error: local problem, closing")

enum reply_id {
#define REPLY_ENUM(name, code, esc, text) REPLY_##name,
    REPLY_MAP(REPLY_ENUM)
#undef REPLY_ENUM
        REPLY_COUNT
};

/* reply_code - the three-digit code of a reply. */
unsigned reply_code(enum reply_id id);

/* reply_write - append "<code> [<esc> ]<text>\r\n", with "{}" replaced by arg (NULL: ""). */
void reply_write(struct buf *out, enum reply_id id, const char *arg);

/* reply_write_custom - append a reply whose parts are known only at run time (the webhook
 * outcome). last selects "NNN " over "NNN-" for multi-line replies. */
void reply_write_custom(struct buf *out, unsigned code, const char *esc, const char *text,
                        int last);

#endif
