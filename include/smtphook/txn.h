/* txn.h - one message and everything that belongs to it, apart from its connection.
 *
 * A transaction starts at MAIL and owns: a deep copy of the envelope (no string borrowed
 * from the session, the connection or its TLS state), the spool with the body, the running
 * hash of the body, the times, and one delivery record per share posted (as a rule one per
 * endpoint the message goes to).
 * The session builds it (MAIL, RCPT, the body) and hands it over when the message is
 * complete; from then on it lives on its own: a delivery, a log line, later a queue entry,
 * whether the client is still connected or not. Pure apart from the spool's file I/O: no
 * libuv, curl, jansson or OpenSSL header. */
#ifndef SMTPHOOK_TXN_H
#define SMTPHOOK_TXN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smtphook/app_reply.h"
#include "smtphook/digest.h"
#include "smtphook/envelope.h"
#include "smtphook/spool.h"
#include "smtphook/utf8.h"

/* What the session knows when MAIL is accepted; copied by txn_new. */
struct txn_facts {
    const char *id;                 /* transaction id */
    int64_t received_at_ms;         /* Unix time of MAIL, milliseconds */
    const char *client_address;     /* peer IP as text */
    uint16_t client_port;           /* peer port */
    const char *helo;               /* HELO/EHLO argument, NULL if none */
    bool esmtp;                     /* EHLO rather than HELO */
    const struct envelope_tls *tls; /* TLS facts; version NULL when plaintext */
};

#define TXN_BOUNDARY_LEN 40u /* multipart boundary: "smtphook-" and 31 random hex characters */

/* The multipart boundary of the message's requests, chosen when the body starts and
 * watched for as the body arrives, so that it is known not to occur in the message without
 * reading the message again. */
struct txn_boundary {
    char text[TXN_BOUNDARY_LEN + 1]; /* the boundary, "" if none could be drawn */
    char tail[TXN_BOUNDARY_LEN - 1]; /* the body's last bytes: a match may span appends */
    size_t tail_len;                 /* bytes in tail */
    bool seen;                       /* the body holds it: txn_boundary draws another */
};

/* The request-header bytes of one endpoint's raw request, as recipients are accepted. */
struct txn_head {
    uint64_t base; /* without recipients; 0 until the first recipient for the endpoint */
    uint64_t used; /* with the recipients accepted so far */
};

/* One endpoint's share of the message: its requests and what came of them. */
struct txn_delivery {
    size_t endpoint;          /* index into config.endpoints */
    const char *name;         /* the endpoint's name (owned by the config) */
    char key[DIGEST_HEX + 1]; /* Idempotency-Key of this message for this endpoint */
    unsigned attempts;        /* requests started */
    long status;              /* HTTP status of the last answer, 0 without one */
    const char *failure;      /* why the last attempt got no answer (static), or NULL */
    uint64_t elapsed_ms;      /* from the first request to the last answer */
    struct app_reply reply;   /* what this endpoint's result alone answers */
    bool has_retry_after;     /* the last answer asked for a wait (Retry-After) */
    uint64_t retry_after_ms;  /* ... of this long */
};

/* A share of the message that the queue delivers after the reply (queue.h): one endpoint,
 * or a failover route's endpoints in order, with the recipients routed there. */
struct txn_share {
    size_t *endpoints;        /* indices into config.endpoints, in order */
    size_t n_endpoints;       /* entries in endpoints (>= 1) */
    bool failover;            /* tried in order; else exactly one endpoint */
    size_t *rcpts;            /* indices into env.rcpt_to, in RCPT order */
    size_t n_rcpts;           /* entries in rcpts */
    char key[DIGEST_HEX + 1]; /* its Idempotency-Key (txn_key of rcpts) */
};

struct txn {
    struct envelope env;               /* the envelope; every string is owned here */
    long *rcpt_route;                  /* per recipient: its route (config.routes), -1: none */
    char *facts;                       /* one block with the client, HELO and TLS strings */
    struct spool *spool;               /* the body, from DATA or the first chunk; or NULL */
    int spool_error;                   /* first failure storing the body (SH_E*), 0 if none */
    bool too_big;                      /* grew past the size limit: nothing more is stored */
    struct digest *hash;               /* running SHA-256 of the stored body */
    struct txn_boundary boundary;      /* see struct txn_boundary */
    bool watch_boundary;               /* look for it as the body arrives (default; false: no
                                        * endpoint posts a form, txn_boundary searches the
                                        * spool if it is ever asked) */
    bool watch_utf8;                   /* follow the body's UTF-8 (default; false: nobody asks,
                                        * txn_body_utf8 says no) */
    struct utf8_state utf8;            /* is the body valid UTF-8 (presets label fields) */
    struct txn_head *head;             /* per endpoint: its raw envelope's request-header
                                        * bytes (the session's RCPT budget), or NULL */
    uint8_t body_digest[DIGEST_BYTES]; /* its value once the body ended */
    bool body_ended;                   /* the final dot or LAST chunk arrived */
    int64_t data_started_ms;           /* Unix ms when DATA or the first chunk began */
    int64_t data_ended_ms;             /* Unix ms when the body ended */
    struct txn_delivery *deliveries;   /* one per endpoint the message goes to */
    size_t n_deliveries;               /* entries in deliveries */
    struct app_reply reply;            /* the reply the sender got (code 0 before) */
    struct txn_share *shares;          /* what the queue is to deliver: the 250 in reply
                                        * stands only once they are written (queue.h) */
    size_t n_shares;                   /* entries in shares */
    void (*on_free)(void *arg);        /* called first by txn_free, or NULL: whoever streams
                                        * the body as it arrives hears that it is dropped */
    void *on_free_arg;                 /* passed to on_free */
};

/* txn_new - a transaction for an accepted MAIL: the facts and the sender are copied.
 * 0 or SH_ENOMEM. */
int txn_new(const struct txn_facts *facts, const char *mail_from, struct txn **out);

/* txn_add_share - a share for the queue: copies of endpoints and rcpts; the key is made
 * here. 0 or SH_ENOMEM. */
int txn_add_share(struct txn *t, const size_t *endpoints, size_t n_endpoints, bool failover,
                  const size_t *rcpts, size_t n_rcpts);

/* txn_clear_shares - forget the shares (the message is not queued after all). */
void txn_clear_shares(struct txn *t);

/* txn_free - release everything the transaction owns; NULL is ignored. */
void txn_free(struct txn *t);

/* txn_add_rcpt - append an accepted recipient (copied) and the route it goes by (-1 without
 * routes). 0 or SH_ENOMEM. */
int txn_add_rcpt(struct txn *t, const char *mailbox, long route);

/* txn_begin_body - the message text starts (DATA's 354, or the first BDAT chunk): a spool
 * in directory keeping memory_bytes in memory. A failure is kept in spool_error (the
 * message is answered 451 at its end) rather than returned. */
void txn_begin_body(struct txn *t, const char *directory, uint64_t memory_bytes, int64_t now_ms);

/* txn_append - n more body bytes. Counted always; stored and hashed while the size stays
 * within max_bytes and nothing failed. Returns false once the message is too big. */
bool txn_append(struct txn *t, const char *data, size_t n, uint64_t max_bytes);

/* txn_end_body - the body is complete: its hash is final. */
void txn_end_body(struct txn *t, int64_t now_ms);

/* txn_body_utf8 - is the stored body valid UTF-8 (7-bit included)? Meaningful once the
 * body ended; false when it was not followed (watch_utf8). */
bool txn_body_utf8(const struct txn *t);

/* txn_boundary - a multipart boundary (TXN_BOUNDARY_LEN characters) that occurs nowhere in
 * the stored body, or NULL when no random bytes could be drawn or the spool cannot be read.
 * Valid until the transaction is freed or this is called again. */
const char *txn_boundary(struct txn *t);

/* txn_key - the Idempotency-Key for a share of the message: SHA-256 (hex) over the body's
 * hash, the sender and the given recipients (sorted, so the order of RCPT does not matter),
 * each length-prefixed. The same message from the same sender to the same recipients
 * always has the same key, whichever connection or attempt carries it; the transaction id
 * differs. rcpts: indices into env.rcpt_to (NULL: all recipients). */
void txn_key(const struct txn *t, const size_t *rcpts, size_t n_rcpts, char out[DIGEST_HEX + 1]);

/* txn_log - the one log line of a transaction, with its reply and each delivery
 * (client text sanitized): "txn id=... client=... from=<...> rcpts=N size=N
 * endpoints=NAME:STATUS:MS:attempts=N,... [queued=N] reply="250 2.0.0" ms=N" (queued:
 * the entries the queue took, when it took any), ms counted from the start of the
 * body to now_ms. */
void txn_log(const struct txn *t, int64_t now_ms);

#endif
