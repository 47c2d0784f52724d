/* test_client_map.c - unit tests of client_map.c: records created zeroed and found again,
 * release only of idle records, the key length limit, 100,000 keys through growth and
 * shrinking, and a randomized run against a plain array model on small tables, where
 * clusters, wrap-around and backward-shift deletion are exercised on every step. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "smtphook/client_map.h"
#include "smtphook/error.h"

#define MANY_KEYS   100000u /* distinct keys of the large test */
#define MODEL_KEYS  40u     /* key universe of the model test: tables stay small */
#define MODEL_STEPS 20000u  /* operations per seed of the model test */
#define MODEL_SEEDS 25u     /* map seeds (and operation sequences) of the model test */
#define KEY_BUF     (CLIENT_MAP_KEY_MAX + 2)

/* next_random - xorshift64*: deterministic operation sequences. */
static uint64_t next_random(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dull;
}

/* key_of - the i-th test key: IPv4 and IPv6 text alternately. */
static void key_of(unsigned i, char *buf, size_t size)
{
    if (i % 2 == 0)
        snprintf(buf, size, "10.%u.%u.%u", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff);
    else
        snprintf(buf, size, "2001:db8::%x:%x", i >> 16, i & 0xffff);
}

/* new_map - an empty map, or the test fails. */
static struct client_map *new_map(uint64_t seed)
{
    struct client_map *m = NULL;
    assert_int_equal(client_map_new(seed, &m), 0);
    assert_non_null(m);
    return m;
}

/* A new record is zeroed, found again at the same place, and removed only when idle. */
static void test_get_find_release(void **state)
{
    (void)state;
    struct client_map *m = new_map(1);
    assert_int_equal(client_map_size(m), 0);
    assert_null(client_map_find(m, "192.0.2.1"));

    struct client_record *r = client_map_get(m, "192.0.2.1");
    assert_non_null(r);
    assert_string_equal(r->key, "192.0.2.1");
    assert_int_equal(r->connections, 0);
    assert_int_equal(client_map_size(m), 1);
    r->connections = 2;
    assert_ptr_equal(client_map_get(m, "192.0.2.1"), r);
    assert_ptr_equal(client_map_find(m, "192.0.2.1"), r);
    assert_int_equal(client_map_size(m), 1);

    /* Keys are compared exactly: prefixes, extensions and case are other keys. */
    assert_null(client_map_find(m, "192.0.2.10"));
    assert_null(client_map_find(m, "192.0.2."));
    assert_null(client_map_find(m, ""));
    struct client_record *v6 = client_map_get(m, "2001:DB8::1");
    assert_non_null(v6);
    assert_null(client_map_find(m, "2001:db8::1"));
    assert_int_equal(client_map_size(m), 2);

    /* Still counting: stays. Idle: goes. Unknown: nothing happens. */
    client_map_release(m, "192.0.2.1");
    assert_int_equal(client_map_size(m), 2);
    r = client_map_get(m, "192.0.2.1");
    assert_int_equal(r->connections, 2);
    r->connections = 0;
    client_map_release(m, "192.0.2.1");
    assert_int_equal(client_map_size(m), 1);
    assert_null(client_map_find(m, "192.0.2.1"));
    client_map_release(m, "192.0.2.1");
    client_map_release(m, "198.51.100.7");
    assert_int_equal(client_map_size(m), 1);
    assert_non_null(client_map_find(m, "2001:DB8::1"));

    /* A record got again after its release starts from zero. */
    r = client_map_get(m, "192.0.2.1");
    assert_int_equal(r->connections, 0);
    assert_int_equal(client_map_size(m), 2);

    /* The empty text is a key like any other. */
    assert_non_null(client_map_get(m, ""));
    assert_non_null(client_map_find(m, ""));
    client_map_release(m, "");
    assert_null(client_map_find(m, ""));
    client_map_free(m);
}

/* CLIENT_MAP_KEY_MAX bytes are kept whole; one more is refused by every call. */
static void test_long_keys(void **state)
{
    (void)state;
    struct client_map *m = new_map(2);
    char key[KEY_BUF + 10];
    memset(key, 'a', sizeof(key));
    key[CLIENT_MAP_KEY_MAX] = '\0';
    struct client_record *r = client_map_get(m, key);
    assert_non_null(r);
    assert_int_equal(strlen(r->key), CLIENT_MAP_KEY_MAX);
    assert_string_equal(r->key, key);
    r->connections = 1;

    key[CLIENT_MAP_KEY_MAX] = 'a';
    key[CLIENT_MAP_KEY_MAX + 1] = '\0';
    assert_null(client_map_get(m, key));
    assert_null(client_map_find(m, key));
    client_map_release(m, key);
    assert_int_equal(client_map_size(m), 1);

    /* A key far longer, without its end near: still refused, the 63-byte one untouched. */
    memset(key, 'a', sizeof(key));
    key[sizeof(key) - 1] = '\0';
    assert_null(client_map_get(m, key));
    key[CLIENT_MAP_KEY_MAX] = '\0';
    assert_ptr_equal(client_map_find(m, key), r);
    assert_int_equal(r->connections, 1);
    client_map_free(m);
}

/* NULL is refused quietly; freeing NULL is nothing. */
static void test_null(void **state)
{
    (void)state;
    struct client_map *m = new_map(3);
    assert_null(client_map_get(m, NULL));
    assert_null(client_map_find(m, NULL));
    client_map_release(m, NULL);
    assert_null(client_map_get(NULL, "x"));
    assert_null(client_map_find(NULL, "x"));
    client_map_release(NULL, "x");
    assert_int_equal(client_map_size(NULL), 0);
    client_map_free(m);
    client_map_free(NULL);
}

/* check_many - keys [0, n) with present[i]: found with connections i % 5 + 1; others not. */
static void check_many(const struct client_map *m, const bool *present, unsigned n)
{
    char key[KEY_BUF];
    size_t count = 0;
    for (unsigned i = 0; i < n; i++) {
        key_of(i, key, sizeof(key));
        const struct client_record *r = client_map_find(m, key);
        if (!present[i]) {
            assert_null(r);
            continue;
        }
        assert_non_null(r);
        assert_string_equal(r->key, key);
        assert_int_equal(r->connections, i % 5 + 1);
        count++;
    }
    assert_int_equal(client_map_size(m), count);
}

/* 100,000 keys in, found, half of them out in a scattered order, back in, then all out:
 * the table grows and shrinks on the way and every answer stays right. */
static void test_many_keys(void **state)
{
    (void)state;
    static bool present[MANY_KEYS];
    struct client_map *m = new_map(0x5eed);
    char key[KEY_BUF];
    for (unsigned i = 0; i < MANY_KEYS; i++) {
        key_of(i, key, sizeof(key));
        struct client_record *r = client_map_get(m, key);
        assert_non_null(r);
        assert_int_equal(r->connections, 0);
        r->connections = i % 5 + 1;
        present[i] = true;
    }
    assert_int_equal(client_map_size(m), MANY_KEYS);
    check_many(m, present, MANY_KEYS);

    /* Out go the keys at a stride coprime to MANY_KEYS: half of them, scattered. */
    for (unsigned k = 0, i = 0; k < MANY_KEYS / 2; k++, i = (i + 7919) % MANY_KEYS) {
        key_of(i, key, sizeof(key));
        struct client_record *r = client_map_get(m, key);
        client_map_release(m, key); /* still counting: stays */
        assert_non_null(client_map_find(m, key));
        r->connections = 0;
        client_map_release(m, key);
        present[i] = false;
    }
    check_many(m, present, MANY_KEYS);

    for (unsigned i = 0; i < MANY_KEYS; i++) {
        if (present[i])
            continue;
        key_of(i, key, sizeof(key));
        struct client_record *r = client_map_get(m, key);
        assert_non_null(r);
        r->connections = i % 5 + 1;
        present[i] = true;
    }
    check_many(m, present, MANY_KEYS);

    for (unsigned i = MANY_KEYS; i-- > 0;) {
        key_of(i, key, sizeof(key));
        client_map_get(m, key)->connections = 0;
        client_map_release(m, key);
        present[i] = false;
        if (i % 9973 == 0)
            check_many(m, present, MANY_KEYS);
    }
    assert_int_equal(client_map_size(m), 0);

    /* Shrunk to the smallest table, it still works. */
    assert_non_null(client_map_get(m, "192.0.2.1"));
    assert_int_equal(client_map_size(m), 1);
    client_map_free(m);
}

/* model_check - the map holds exactly the model's keys, each with its value. */
static void model_check(const struct client_map *m, char keys[][KEY_BUF], const unsigned *value)
{
    size_t count = 0;
    for (unsigned i = 0; i < MODEL_KEYS; i++) {
        const struct client_record *r = client_map_find(m, keys[i]);
        if (value[i] == 0) {
            assert_null(r);
            continue;
        }
        assert_non_null(r);
        assert_string_equal(r->key, keys[i]);
        assert_int_equal(r->connections, value[i]);
        count++;
    }
    assert_int_equal(client_map_size(m), count);
}

/* Random gets, counter changes and releases on at most MODEL_KEYS keys, so the table moves
 * between 16 and 128 slots and its clusters are long and wrap round; after every step the
 * map agrees with the model (value 0: absent). Entries shifted back by a removal, and the
 * record moved into a removed one's place, must all still be found. */
static void test_model(void **state)
{
    (void)state;
    static char keys[MODEL_KEYS][KEY_BUF];
    for (unsigned i = 0; i < MODEL_KEYS; i++)
        snprintf(keys[i], sizeof(keys[i]), "198.51.100.%u", i);
    for (uint64_t seed = 1; seed <= MODEL_SEEDS; seed++) {
        struct client_map *m = new_map(seed);
        unsigned value[MODEL_KEYS] = {0};
        uint64_t rs = seed * 0x9e3779b97f4a7c15ull;
        for (unsigned step = 0; step < MODEL_STEPS; step++) {
            uint64_t x = next_random(&rs);
            unsigned k = (unsigned)(x % MODEL_KEYS);
            /* Bias toward removal half of the time, so the map fills and drains. */
            bool draining = (step / 500) % 2 == 1;
            unsigned op = (unsigned)((x >> 32) % 4);
            if (op == 0 || (draining && op != 3)) {
                /* Present: its counter drops to zero first. Absent: got (zeroed), then
                 * released at once. */
                struct client_record *r = client_map_get(m, keys[k]);
                assert_non_null(r);
                r->connections = 0;
                value[k] = 0;
                client_map_release(m, keys[k]);
            } else {
                struct client_record *r = client_map_get(m, keys[k]);
                assert_non_null(r);
                assert_int_equal(r->connections, value[k]);
                r->connections = (unsigned)(x >> 40) % 1000 + 1;
                value[k] = r->connections;
            }
            model_check(m, keys, value);
        }
        client_map_free(m);
    }
}

/* The pointer of a record stays put while only existing keys are looked up. */
static void test_pointer_stable(void **state)
{
    (void)state;
    struct client_map *m = new_map(4);
    char key[KEY_BUF];
    struct client_record *recs[64];
    for (unsigned i = 0; i < 64; i++) {
        key_of(i, key, sizeof(key));
        assert_non_null(client_map_get(m, key));
    }
    for (unsigned i = 0; i < 64; i++) {
        key_of(i, key, sizeof(key));
        recs[i] = client_map_get(m, key);
        recs[i]->connections = i + 1;
    }
    for (unsigned round = 0; round < 3; round++)
        for (unsigned i = 0; i < 64; i++) {
            key_of(i, key, sizeof(key));
            assert_ptr_equal(client_map_get(m, key), recs[i]);
            assert_ptr_equal(client_map_find(m, key), recs[i]);
            client_map_release(m, key); /* counting: nothing moves */
            assert_int_equal(recs[i]->connections, i + 1);
        }
    client_map_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_find_release),
        cmocka_unit_test(test_long_keys),
        cmocka_unit_test(test_null),
        cmocka_unit_test(test_many_keys),
        cmocka_unit_test(test_model),
        cmocka_unit_test(test_pointer_stable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
