/* envelope.h - the facts of one SMTP transaction that travel with the message.
 *
 * Built by the session, read by payload (JSON and headers) and delivery. Every string is
 * NUL-terminated, valid UTF-8 and free of control characters: the command syntax checks
 * guarantee it before a value is stored. */
#ifndef SMTPHOOK_ENVELOPE_H
#define SMTPHOOK_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ENVELOPE_ID_MAX 48 /* bytes of an id, without the NUL */

enum envelope_body {
    ENVELOPE_BODY_NONE = 0,   /* no BODY= parameter */
    ENVELOPE_BODY_7BIT,       /* BODY=7BIT */
    ENVELOPE_BODY_8BITMIME,   /* BODY=8BITMIME */
    ENVELOPE_BODY_BINARYMIME, /* BODY=BINARYMIME (RFC 3030 §3), only with BDAT */
};

/* The TLS facts of a session; every pointer NULL while it is plaintext. The strings are
 * owned by the connection's TLS state, printable ASCII. */
struct envelope_tls {
    const char *version;      /* "TLSv1.3", "TLSv1.2" */
    const char *cipher;       /* "TLS_AES_256_GCM_SHA384" */
    const char *sni;          /* server name the client asked for, NULL if none */
    const char *peer_subject; /* client certificate subject (RFC 2253), NULL if none */
    const char *peer_sha256;  /* its SHA-256 fingerprint, lower-case hex, NULL if none */
};

struct envelope {
    char id[ENVELOPE_ID_MAX + 1]; /* transaction id, unique across restarts */
    const char *key;              /* Idempotency-Key of the share posted, NULL: none */
    int64_t received_at_ms;       /* Unix time of the MAIL command, milliseconds */
    const char *client_address;   /* peer IP as text (owned by the connection) */
    uint16_t client_port;         /* peer port */
    const char *helo;             /* HELO/EHLO argument, NULL if none given */
    bool esmtp;                   /* EHLO (true) or HELO (false) */
    char *mail_from;              /* reverse path without <>, "" for the null sender */
    char **rcpt_to;               /* forward paths without <>, in RCPT order */
    size_t n_rcpt;                /* entries in rcpt_to */
    uint64_t size;                /* message bytes after dot-unstuffing */
    uint64_t declared_size;       /* MAIL SIZE= value, 0 if none */
    enum envelope_body body;      /* BODY= parameter */
    bool smtputf8;                /* SMTPUTF8 parameter given */
    bool chunked;                 /* the body came in BDAT chunks (RFC 3030) */
    struct envelope_tls tls;      /* TLS facts; tls.version NULL when plaintext */
};

/* envelope_body_name - "7BIT", "8BITMIME", "BINARYMIME" or NULL for ENVELOPE_BODY_NONE. */
const char *envelope_body_name(enum envelope_body body);

#endif
