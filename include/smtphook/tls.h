/* tls.h - inbound TLS over memory buffers: ciphertext in, plaintext out, and back.
 *
 * The only module that includes OpenSSL's SSL API. It never touches a socket: the
 * connection feeds it the bytes it read, takes the plaintext it decrypted, hands it the
 * replies to encrypt and sends the ciphertext it produced. So plain and TLS connections
 * share one code path, and the session never sees a TLS byte.
 *
 * A tls_server holds the settings every handshake shares (protocol floor, ciphers, groups,
 * session cache and ticket keys) and the current certificates. tls_server_reload swaps the
 * certificates for new handshakes; connections keep the ones they started with. */
#ifndef SMTPHOOK_TLS_H
#define SMTPHOOK_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "smtphook/buf.h"
#include "smtphook/config.h"
#include "smtphook/envelope.h"

struct tls_server;
struct tls_conn;

/* What tls_conn_read found. */
enum tls_read_status {
    TLS_READ_AGAIN = 0, /* nothing more to read until more ciphertext is fed */
    TLS_READ_DATA,      /* *n plaintext bytes were written to the buffer */
    TLS_READ_CLOSED,    /* the client sent close_notify: nothing after it is read */
    TLS_READ_ERROR,     /* handshake or record failure: tls_conn_error says why */
};

/* tls_server_new - check the certificates (readable, key matches, not expired) and the
 * cipher, group and version settings; build the shared state. On failure returns
 * SH_ECONFIG (or SH_ENOMEM) with a message naming the file or key in err. */
int tls_server_new(const struct config_tls *cfg, struct tls_server **out, char *err, size_t errlen);

/* tls_server_reload - load the certificates again (SIGHUP). On failure the old ones stay in
 * use and err says why. */
int tls_server_reload(struct tls_server *ts, const struct config_tls *cfg, char *err,
                      size_t errlen);

/* tls_server_free - release the shared state; connections still open keep what they use. */
void tls_server_free(struct tls_server *ts);

/* tls_server_expiry - the Unix time the i-th certificate in use expires (notAfter), false
 * past the last one. */
bool tls_server_expiry(const struct tls_server *ts, size_t i, int64_t *unix_s);

/* tls_conn_new - server side of one handshake, waiting for the ClientHello. */
int tls_conn_new(struct tls_server *ts, struct tls_conn **out);

/* tls_conn_free - release a connection's TLS state; NULL is ignored. */
void tls_conn_free(struct tls_conn *t);

/* tls_conn_feed - ciphertext read from the socket. 0 or SH_ENOMEM. */
int tls_conn_feed(struct tls_conn *t, const char *data, size_t len);

/* tls_conn_read - advance the handshake and decrypt up to cap bytes into buf. Call until it
 * returns something other than TLS_READ_DATA. */
enum tls_read_status tls_conn_read(struct tls_conn *t, char *buf, size_t cap, size_t *n);

/* tls_conn_write - encrypt plaintext (the handshake must be done). 0, SH_ENOMEM or SH_EIO. */
int tls_conn_write(struct tls_conn *t, const char *data, size_t len);

/* tls_conn_shutdown - queue a close_notify alert. */
void tls_conn_shutdown(struct tls_conn *t);

/* tls_conn_take - move the ciphertext produced so far (handshake records, encrypted
 * replies, alerts) to the end of out. 0 or SH_ENOMEM. */
int tls_conn_take(struct tls_conn *t, struct buf *out);

/* tls_conn_established - the handshake has finished. */
bool tls_conn_established(const struct tls_conn *t);

/* tls_conn_info - version, cipher, SNI name and client certificate of an established
 * connection; the strings live as long as t. */
const struct envelope_tls *tls_conn_info(const struct tls_conn *t);

/* tls_conn_error - why the last call failed, for the log. */
const char *tls_conn_error(const struct tls_conn *t);

#endif
