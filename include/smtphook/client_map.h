/* client_map.h - per-client facts, keyed by the client's IP address.
 *
 * An open-addressing hash table from an address (as text, at most CLIENT_MAP_KEY_MAX bytes)
 * to a small record. The server counts each client's open connections in it, so a new
 * connection costs one lookup instead of a scan of every connection, and its rate buckets.
 * A record whose counters are all zero is removed at once; one with rate state once its
 * buckets are full again (client_map_sweep). Pure: no I/O; keys are hashed with a per-map random
 * seed so that clients cannot choose colliding addresses. */
#ifndef SMTPHOOK_CLIENT_MAP_H
#define SMTPHOOK_CLIENT_MAP_H

#include <stddef.h>
#include <stdint.h>

#include "smtphook/rate.h"

#define CLIENT_MAP_KEY_MAX 63 /* longest key kept: an IPv6 address as text is at most 45 */

struct client_record {
    char key[CLIENT_MAP_KEY_MAX + 1]; /* the address, NUL-terminated */
    unsigned connections;             /* open connections from it */
    uint64_t tat[RATE_KINDS];         /* its rate buckets (rate.h), 0: untouched */
};

struct client_map;

/* client_map_new - an empty map; seed randomizes the hash. 0 or SH_ENOMEM. */
int client_map_new(uint64_t seed, struct client_map **out);

/* client_map_free - release the map and its records; NULL is ignored. */
void client_map_free(struct client_map *m);

/* client_map_get - the record of key, created (all counters zero) when missing. NULL when
 * memory ran out or key is longer than CLIENT_MAP_KEY_MAX. The pointer is valid until the
 * next call that may add or remove a record. */
struct client_record *client_map_get(struct client_map *m, const char *key);

/* client_map_find - the record of key, or NULL when there is none. */
const struct client_record *client_map_find(const struct client_map *m, const char *key);

/* client_map_release - drop the record of key if all its counters are zero and its rate
 * buckets were never used. */
void client_map_release(struct client_map *m, const char *key);

/* client_map_sweep - drop every record with no connection whose rate buckets have all their
 * credit back at now_ms (rate_idle); returns the records dropped. */
size_t client_map_sweep(struct client_map *m, uint64_t now_ms);

/* client_map_size - records held. */
size_t client_map_size(const struct client_map *m);

#endif
