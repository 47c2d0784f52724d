/* digest.h - SHA-256 (the message key, Idempotency-Key), HMAC-SHA256 (request signatures),
 * SHA-512 (Ed25519 signatures, ed25519.h) and random bytes (multipart boundaries, tokens).
 *
 * The only use of OpenSSL's libcrypto outside tls.c, behind our own interface, so that
 * the pure modules that hash (txn.c, the signing code) include no OpenSSL header. */
#ifndef SMTPHOOK_DIGEST_H
#define SMTPHOOK_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DIGEST_BYTES        32 /* SHA-256 output */
#define DIGEST_HEX          (2 * DIGEST_BYTES)
#define DIGEST_SHA512_BYTES 64 /* SHA-512 output */

struct digest;

/* digest_new - a running SHA-256 over nothing yet. 0 or SH_ENOMEM. */
int digest_new(struct digest **out);

/* digest_update - hash n more bytes. */
void digest_update(struct digest *d, const void *data, size_t n);

/* digest_final - the hash of everything so far into out; d may not be updated afterwards. */
void digest_final(struct digest *d, uint8_t out[DIGEST_BYTES]);

/* digest_free - release; NULL is ignored. */
void digest_free(struct digest *d);

/* digest_hex - lower-case hex of a digest into out (DIGEST_HEX + 1 bytes, NUL-terminated). */
void digest_hex(const uint8_t d[DIGEST_BYTES], char out[DIGEST_HEX + 1]);

/* digest_unhex - the digest whose digest_hex is hex (exactly DIGEST_HEX lower-case hex
 * digits, then a NUL). false, and out unchanged, for anything else. */
bool digest_unhex(const char *hex, uint8_t out[DIGEST_BYTES]);

/* digest_hmac_new - a running HMAC-SHA256 with key (keylen bytes). 0 or SH_ENOMEM. The
 * digest_update, digest_final and digest_free above apply to it. */
int digest_hmac_new(const void *key, size_t keylen, struct digest **out);

/* digest_sha512_new - a running SHA-512 over nothing yet, ended by digest_sha512_final
 * (digest_update and digest_free apply to it). 0 or SH_ENOMEM. */
int digest_sha512_new(struct digest **out);

/* digest_sha512_final - the SHA-512 of everything so far into out; d may not be updated
 * afterwards. */
void digest_sha512_final(struct digest *d, uint8_t out[DIGEST_SHA512_BYTES]);

/* digest_hmac - the HMAC-SHA256 of one buffer. 0 or SH_ENOMEM. */
int digest_hmac(const void *key, size_t keylen, const void *data, size_t n,
                uint8_t out[DIGEST_BYTES]);

/* digest_random - n bytes from the operating system's cryptographic generator (through
 * OpenSSL). 0 or SH_EIO. */
int digest_random(void *dst, size_t n);

/* digest_random_hex - n random lower-case hex characters and a NUL into dst. 0 or SH_EIO. */
int digest_random_hex(char *dst, size_t n);

#endif
