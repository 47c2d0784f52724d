/* ed25519.c - Ed25519 signing in two passes over the message (see ed25519.h). The curve
 * arithmetic is libsodium's alone; nothing here computes on field elements or points. */
#include "smtphook/ed25519.h"

#include <sodium.h>
#include <string.h>

#include "smtphook/error.h"

/* ed25519_init - libsodium ready (sodium_init is idempotent and thread-safe). */
static int ed25519_init(void)
{
    return sodium_init() < 0 ? SH_EIO : 0;
}

/* ed25519_reduce - the 64-byte little-endian number wide, mod L, into out. */
static void ed25519_reduce(uint8_t out[32], const uint8_t wide[64])
{
    uint8_t w[crypto_core_ed25519_NONREDUCEDSCALARBYTES];
    memcpy(w, wide, sizeof(w));
    crypto_core_ed25519_scalar_reduce(out, w);
    sodium_memzero(w, sizeof(w));
}

/* ed25519_public_key - see ed25519.h. */
int ed25519_public_key(const uint8_t seed[ED25519_SEED_BYTES], uint8_t pub[ED25519_PUBLIC_BYTES])
{
    uint8_t sk[crypto_sign_SECRETKEYBYTES];
    int rc = ed25519_init();
    if (rc == 0 && crypto_sign_seed_keypair(pub, sk, seed) != 0)
        rc = SH_EIO;
    sodium_memzero(sk, sizeof(sk));
    return rc;
}

/* ed25519_begin - see ed25519.h. h = SHA-512(seed); a = clamp(h[0..32]); the prefix is
 * h[32..64]; the first pass hashes prefix || M. */
int ed25519_begin(struct ed25519_sign *s, const uint8_t seed[ED25519_SEED_BYTES])
{
    memset(s, 0, sizeof(*s));
    int rc = ed25519_public_key(seed, s->pub);
    if (rc != 0)
        return rc;
    struct digest *d = NULL;
    if (digest_sha512_new(&d) != 0)
        return SH_ENOMEM;
    uint8_t h[DIGEST_SHA512_BYTES];
    digest_update(d, seed, ED25519_SEED_BYTES);
    digest_sha512_final(d, h);
    digest_free(d);
    uint8_t wide[64] = {0};
    memcpy(wide, h, 32);
    wide[0] &= 248;
    wide[31] &= 127;
    wide[31] |= 64;
    ed25519_reduce(s->a, wide); /* S mod L is the same with a or a mod L */
    memcpy(s->prefix, h + 32, 32);
    sodium_memzero(h, sizeof(h));
    sodium_memzero(wide, sizeof(wide));
    if (digest_sha512_new(&s->h) != 0) {
        ed25519_end(s);
        return SH_ENOMEM;
    }
    digest_update(s->h, s->prefix, sizeof(s->prefix));
    return 0;
}

/* ed25519_update - see ed25519.h. */
void ed25519_update(struct ed25519_sign *s, const void *data, size_t n)
{
    digest_update(s->h, data, n);
}

/* ed25519_second - see ed25519.h. r = SHA-512(prefix || M) mod L; R = r·B; the second
 * pass hashes R || A || M. */
int ed25519_second(struct ed25519_sign *s)
{
    uint8_t h[DIGEST_SHA512_BYTES];
    digest_sha512_final(s->h, h);
    digest_free(s->h);
    s->h = NULL;
    ed25519_reduce(s->r, h);
    sodium_memzero(h, sizeof(h));
    /* Fails only for r = 0 (the identity), which a SHA-512 output reaches with probability
     * 2^-252. */
    if (crypto_scalarmult_ed25519_base_noclamp(s->big_r, s->r) != 0)
        return SH_EIO;
    if (digest_sha512_new(&s->h) != 0)
        return SH_ENOMEM;
    digest_update(s->h, s->big_r, sizeof(s->big_r));
    digest_update(s->h, s->pub, sizeof(s->pub));
    return 0;
}

/* ed25519_final - see ed25519.h. k = SHA-512(R || A || M) mod L; S = (r + k·a) mod L. */
int ed25519_final(struct ed25519_sign *s, uint8_t sig[ED25519_SIGNATURE_BYTES])
{
    uint8_t h[DIGEST_SHA512_BYTES], k[32], ka[32];
    digest_sha512_final(s->h, h);
    digest_free(s->h);
    s->h = NULL;
    ed25519_reduce(k, h);
    crypto_core_ed25519_scalar_mul(ka, k, s->a);
    memcpy(sig, s->big_r, 32);
    crypto_core_ed25519_scalar_add(sig + 32, s->r, ka);
    sodium_memzero(ka, sizeof(ka));
    return 0;
}

/* ed25519_end - see ed25519.h. */
void ed25519_end(struct ed25519_sign *s)
{
    digest_free(s->h);
    sodium_memzero(s, sizeof(*s));
}
