/* siphash.h - SipHash-1-3, the keyed hash of the tables whose keys a client chooses.
 *
 * Pure. A table hashes its keys under a key of its own, drawn at random or spread from a
 * seed, so that nobody who does not know it can pick keys that collide (Aumasson and
 * Bernstein, "SipHash: a fast short-input PRF"; one compression round and three
 * finalization rounds, the variant CPython and Rust use for their hash tables). */
#ifndef SMTPHOOK_SIPHASH_H
#define SMTPHOOK_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

/* A 128-bit SipHash key. */
struct siphash_key {
    uint64_t k0; /* first half, little-endian bytes 0..7 */
    uint64_t k1; /* second half, bytes 8..15 */
};

/* siphash_key_from_seed - spread a plain seed (0, a counter, random bits) over a key with
 * SplitMix64. */
struct siphash_key siphash_key_from_seed(uint64_t seed);

/* siphash13 - the 64-bit SipHash-1-3 of data[0, len) under key. */
uint64_t siphash13(const struct siphash_key *key, const void *data, size_t len);

#endif
