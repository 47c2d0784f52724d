/* ed25519.h - Ed25519 signatures (RFC 8032) of a message fed in pieces, twice.
 *
 * Ed25519 hashes the message twice: once for the nonce r (SHA-512 of the key's prefix and
 * the message), once for the challenge k (SHA-512 of R, the public key and the message).
 * OpenSSL 3.0 signs only a message held whole; here the caller feeds the message to the
 * first hash, then again to the second (RFC 8032 section 5.1.6 in two streaming passes),
 * so a body of any size is signed without holding it. The hashing is SHA-512 through
 * digest.h; the scalar and point arithmetic is libsodium's. The signature is the one
 * every Ed25519 implementation gives for the same seed and message (it is deterministic). */
#ifndef SMTPHOOK_ED25519_H
#define SMTPHOOK_ED25519_H

#include <stddef.h>
#include <stdint.h>

#include "smtphook/digest.h"

#define ED25519_SEED_BYTES      32 /* the secret key as RFC 8032 has it */
#define ED25519_PUBLIC_BYTES    32 /* A, the encoded public point */
#define ED25519_SIGNATURE_BYTES 64 /* R || S */

/* ed25519_public_key - the public key A of seed. 0 or SH_EIO (libsodium unusable). */
int ed25519_public_key(const uint8_t seed[ED25519_SEED_BYTES], uint8_t pub[ED25519_PUBLIC_BYTES]);

/* One signature under way: the expanded key, then the pass's running hash. */
struct ed25519_sign {
    uint8_t a[32];                     /* the secret scalar, reduced mod L */
    uint8_t prefix[32];                /* the second half of SHA-512(seed) */
    uint8_t pub[ED25519_PUBLIC_BYTES]; /* A */
    uint8_t r[32];                     /* the nonce, after the first pass */
    uint8_t big_r[32];                 /* R = r·B, after the first pass */
    struct digest *h;                  /* the pass's SHA-512 */
};

/* ed25519_begin - start the first pass (the nonce) for seed. 0, SH_ENOMEM or SH_EIO. */
int ed25519_begin(struct ed25519_sign *s, const uint8_t seed[ED25519_SEED_BYTES]);

/* ed25519_update - feed n more bytes of the message to the pass under way. */
void ed25519_update(struct ed25519_sign *s, const void *data, size_t n);

/* ed25519_second - the whole message is in the first pass: R, then the second pass (the
 * challenge) starts. 0, SH_ENOMEM or SH_EIO. */
int ed25519_second(struct ed25519_sign *s);

/* ed25519_final - the whole message is in the second pass: the signature R || S. 0. */
int ed25519_final(struct ed25519_sign *s, uint8_t sig[ED25519_SIGNATURE_BYTES]);

/* ed25519_end - release (done or not) and wipe the key material. */
void ed25519_end(struct ed25519_sign *s);

#endif
