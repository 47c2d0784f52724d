/* siphash.c - SipHash-1-3 and a key from a seed (see siphash.h).
 *
 * Pure: arithmetic only. Must not include libuv, curl, OpenSSL or jansson. */
#include "smtphook/siphash.h"

#include <stddef.h>
#include <stdint.h>

/* rotl - rotate left by b (0 < b < 64). */
static uint64_t rotl(uint64_t x, unsigned b)
{
    return (x << b) | (x >> (64 - b));
}

/* sip_round - one SipRound on v[0..3]. */
static void sip_round(uint64_t v[4])
{
    v[0] += v[1];
    v[1] = rotl(v[1], 13);
    v[1] ^= v[0];
    v[0] = rotl(v[0], 32);
    v[2] += v[3];
    v[3] = rotl(v[3], 16);
    v[3] ^= v[2];
    v[0] += v[3];
    v[3] = rotl(v[3], 21);
    v[3] ^= v[0];
    v[2] += v[1];
    v[1] = rotl(v[1], 17);
    v[1] ^= v[2];
    v[2] = rotl(v[2], 32);
}

/* load_le - n (<= 8) bytes as a little-endian number. */
static uint64_t load_le(const unsigned char *p, size_t n)
{
    uint64_t x = 0;
    for (size_t i = n; i > 0; i--)
        x = (x << 8) | p[i - 1];
    return x;
}

/* siphash13 - see siphash.h. */
uint64_t siphash13(const struct siphash_key *key, const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t k0 = key->k0, k1 = key->k1;
    uint64_t v[4] = {k0 ^ 0x736f6d6570736575ull, k1 ^ 0x646f72616e646f6dull,
                     k0 ^ 0x6c7967656e657261ull, k1 ^ 0x7465646279746573ull};
    size_t full = len - len % 8;
    for (size_t i = 0; i < full; i += 8) {
        uint64_t m = load_le(p + i, 8);
        v[3] ^= m;
        sip_round(v);
        v[0] ^= m;
    }
    uint64_t last = ((uint64_t)(len & 0xff) << 56) | load_le(p + full, len % 8);
    v[3] ^= last;
    sip_round(v);
    v[0] ^= last;
    v[2] ^= 0xff;
    for (int i = 0; i < 3; i++)
        sip_round(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* splitmix64 - the next output of SplitMix64 from *state. */
static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* siphash_key_from_seed - see siphash.h: two SplitMix64 outputs. */
struct siphash_key siphash_key_from_seed(uint64_t seed)
{
    struct siphash_key key;
    key.k0 = splitmix64(&seed);
    key.k1 = splitmix64(&seed);
    return key;
}
