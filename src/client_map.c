/* client_map.c - per-client records in an open-addressing hash table (see client_map.h).
 *
 * Records live in a dense array; the table holds, per slot, the index of a record and the
 * low 32 bits of its key's hash. Linear probing; a removal shifts the following entries of
 * its cluster back (Knuth's Algorithm R), so there are no tombstones, and moves the last
 * record into the freed place of the array. The table doubles above half full and halves
 * below an eighth. Keys are hashed with SipHash-1-3 under a key derived from the caller's
 * seed, so a client cannot pick addresses that collide.
 *
 * Pure: memory only. Must not include libuv, curl, OpenSSL or jansson. */
#include "smtphook/client_map.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtphook/error.h"
#include "smtphook/siphash.h"

#define CLIENT_MAP_MIN_SLOTS 16u        /* smallest table; a power of two */
#define CLIENT_MAP_MAX_SLOTS (1u << 31) /* largest table: slot numbers stay below 2^32 */
#define CLIENT_MAP_MIN_RECS  8u         /* smallest record array */

/* One record and its key's hash, so a resize or a move never hashes again. */
struct client_entry {
    struct client_record rec; /* what client_map_get hands out */
    uint32_t hash;            /* low 32 bits of SipHash of rec.key */
};

/* One slot of the table. */
struct client_slot {
    uint32_t hash; /* the record's hash, compared before its key */
    uint32_t pos;  /* 1 + index into entries; 0: empty */
};

struct client_map {
    struct siphash_key key;       /* SipHash key, from the seed */
    struct client_slot *slots;    /* n_slots slots, a power of two */
    size_t n_slots;               /* slots allocated */
    struct client_entry *entries; /* records, dense: [0, count) */
    size_t cap;                   /* entries allocated */
    size_t count;                 /* records held */
};

/* ---- the table ------------------------------------------------------------------------- */

/* key_length - strlen(key), or CLIENT_MAP_KEY_MAX + 1 when it is longer than a key may be. */
static size_t key_length(const char *key)
{
    size_t n = 0;
    while (n <= CLIENT_MAP_KEY_MAX && key[n] != '\0')
        n++;
    return n;
}

/* hash_key - the key's 32-bit hash under this map's key. */
static uint32_t hash_key(const struct client_map *m, const char *key, size_t len)
{
    return (uint32_t)siphash13(&m->key, key, len);
}

/* record_idle - all counters of the record are zero. A counter added to client_record must
 * be added here. */
static bool record_idle(const struct client_record *r)
{
    if (r->connections != 0)
        return false;
    for (int k = 0; k < RATE_KINDS; k++) {
        if (r->tat[k] != 0)
            return false;
    }
    return true;
}

/* find_slot - the slot holding key, or n_slots when there is none. */
static size_t find_slot(const struct client_map *m, const char *key, size_t len, uint32_t hash)
{
    size_t mask = m->n_slots - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        const struct client_slot *s = &m->slots[i];
        if (s->pos == 0)
            return m->n_slots;
        const char *k = m->entries[s->pos - 1].rec.key;
        if (s->hash == hash && memcmp(k, key, len) == 0 && k[len] == '\0')
            return i;
    }
}

/* place - put (hash, pos) in the first free slot from its home; the table has room. */
static void place(struct client_slot *slots, size_t n_slots, uint32_t hash, uint32_t pos)
{
    size_t mask = n_slots - 1;
    size_t i = hash & mask;
    while (slots[i].pos != 0)
        i = (i + 1) & mask;
    slots[i].hash = hash;
    slots[i].pos = pos;
}

/* resize_table - a table of n_slots (a power of two, more than count) built from the
 * entries. On failure the old table stays. 0 or SH_ENOMEM. */
static int resize_table(struct client_map *m, size_t n_slots)
{
    struct client_slot *slots = calloc(n_slots, sizeof(*slots));
    if (slots == NULL)
        return SH_ENOMEM;
    for (size_t i = 0; i < m->count; i++)
        place(slots, n_slots, m->entries[i].hash, (uint32_t)(i + 1));
    free(m->slots);
    m->slots = slots;
    m->n_slots = n_slots;
    return 0;
}

/* resize_entries - room for cap records (at least count). 0 or SH_ENOMEM. */
static int resize_entries(struct client_map *m, size_t cap)
{
    if (cap > SIZE_MAX / sizeof(struct client_entry))
        return SH_ENOMEM;
    struct client_entry *e = realloc(m->entries, cap * sizeof(*e));
    if (e == NULL)
        return SH_ENOMEM;
    m->entries = e;
    m->cap = cap;
    return 0;
}

/* make_room - room for one more record: the table at most half full after it, the array
 * large enough. 0, SH_ENOMEM, or SH_ERANGE when the table is at its largest. */
static int make_room(struct client_map *m)
{
    if (m->count + 1 > m->n_slots / 2) {
        if (m->n_slots >= CLIENT_MAP_MAX_SLOTS)
            return SH_ERANGE;
        int rc = resize_table(m, m->n_slots * 2);
        if (rc != 0)
            return rc;
    }
    if (m->count == m->cap)
        return resize_entries(m, m->cap * 2);
    return 0;
}

/* shrink - halve the table while it is less than an eighth full (then it is at most a
 * quarter full), and the array while it is less than a quarter used. Failing to shrink is
 * harmless: the map stays as it was. */
static void shrink(struct client_map *m)
{
    size_t n_slots = m->n_slots;
    while (n_slots > CLIENT_MAP_MIN_SLOTS && m->count < n_slots / 8)
        n_slots /= 2;
    if (n_slots != m->n_slots)
        (void)resize_table(m, n_slots);
    size_t cap = m->cap;
    while (cap > CLIENT_MAP_MIN_RECS && m->count < cap / 4)
        cap /= 2;
    if (cap != m->cap)
        (void)resize_entries(m, cap);
}

/* remove_slot - empty slot i and shift back the entries after it that probed past it
 * (Knuth, TAOCP vol. 3, §6.4, Algorithm R). */
static void remove_slot(struct client_map *m, size_t i)
{
    size_t mask = m->n_slots - 1;
    m->slots[i].pos = 0;
    for (size_t j = (i + 1) & mask; m->slots[j].pos != 0; j = (j + 1) & mask) {
        size_t home = m->slots[j].hash & mask;
        /* The entry at j stays when its home lies cyclically in (i, j]. */
        if (((j - home) & mask) < ((j - i) & mask))
            continue;
        m->slots[i] = m->slots[j];
        m->slots[j].pos = 0;
        i = j;
    }
}

/* remove_entry - drop entries[index], moving the last record into its place. */
static void remove_entry(struct client_map *m, size_t index)
{
    size_t last = m->count - 1;
    if (index != last) {
        m->entries[index] = m->entries[last];
        size_t mask = m->n_slots - 1;
        size_t i = m->entries[index].hash & mask;
        while (m->slots[i].pos != last + 1)
            i = (i + 1) & mask;
        m->slots[i].pos = (uint32_t)(index + 1);
    }
    m->count = last;
}

/* ---- the interface --------------------------------------------------------------------- */

/* client_map_new - an empty map with the smallest table. 0 or SH_ENOMEM. */
int client_map_new(uint64_t seed, struct client_map **out)
{
    *out = NULL;
    struct client_map *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return SH_ENOMEM;
    m->key = siphash_key_from_seed(seed);
    if (resize_table(m, CLIENT_MAP_MIN_SLOTS) != 0 || resize_entries(m, CLIENT_MAP_MIN_RECS) != 0) {
        client_map_free(m);
        return SH_ENOMEM;
    }
    *out = m;
    return 0;
}

/* client_map_free - the table, the records and the map. */
void client_map_free(struct client_map *m)
{
    if (m == NULL)
        return;
    free(m->slots);
    free(m->entries);
    free(m);
}

/* client_map_get - see client_map.h. A new record is appended to the array and placed in
 * the table, growing both first when needed. */
struct client_record *client_map_get(struct client_map *m, const char *key)
{
    if (m == NULL || key == NULL)
        return NULL;
    size_t len = key_length(key);
    if (len > CLIENT_MAP_KEY_MAX)
        return NULL;
    uint32_t hash = hash_key(m, key, len);
    size_t i = find_slot(m, key, len, hash);
    if (i != m->n_slots)
        return &m->entries[m->slots[i].pos - 1].rec;
    if (make_room(m) != 0)
        return NULL;
    struct client_entry *e = &m->entries[m->count];
    memset(e, 0, sizeof(*e));
    memcpy(e->rec.key, key, len + 1);
    e->hash = hash;
    m->count++;
    place(m->slots, m->n_slots, hash, (uint32_t)m->count);
    return &e->rec;
}

/* client_map_find - see client_map.h. */
const struct client_record *client_map_find(const struct client_map *m, const char *key)
{
    if (m == NULL || key == NULL)
        return NULL;
    size_t len = key_length(key);
    if (len > CLIENT_MAP_KEY_MAX)
        return NULL;
    size_t i = find_slot(m, key, len, hash_key(m, key, len));
    return i == m->n_slots ? NULL : &m->entries[m->slots[i].pos - 1].rec;
}

/* client_map_release - see client_map.h. A record still counting something stays. */
void client_map_release(struct client_map *m, const char *key)
{
    if (m == NULL || key == NULL)
        return;
    size_t len = key_length(key);
    if (len > CLIENT_MAP_KEY_MAX)
        return;
    size_t i = find_slot(m, key, len, hash_key(m, key, len));
    if (i == m->n_slots)
        return;
    size_t index = m->slots[i].pos - 1;
    if (!record_idle(&m->entries[index].rec))
        return;
    remove_slot(m, i);
    remove_entry(m, index);
    shrink(m);
}

/* client_map_sweep - see client_map.h. Entries are dense: one pass from the end, so that
 * removing one (the last moves into its place) never skips another. */
size_t client_map_sweep(struct client_map *m, uint64_t now_ms)
{
    if (m == NULL)
        return 0;
    size_t dropped = 0;
    for (size_t index = m->count; index-- > 0;) {
        struct client_record *r = &m->entries[index].rec;
        bool idle = r->connections == 0;
        for (int k = 0; k < RATE_KINDS && idle; k++)
            idle = rate_idle(r->tat[k], now_ms);
        if (!idle)
            continue;
        char key[CLIENT_MAP_KEY_MAX + 1]; /* r moves when it goes: keep its key apart */
        memcpy(key, r->key, sizeof(key));
        memset(r->tat, 0, sizeof(r->tat));
        client_map_release(m, key);
        dropped++;
    }
    return dropped;
}

/* client_map_size - records held. */
size_t client_map_size(const struct client_map *m)
{
    return m == NULL ? 0 : m->count;
}
