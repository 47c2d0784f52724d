/* sign.c - Standard Webhooks signatures in steps (see sign.h). */
#include "smtphook/sign.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtphook/base64.h"
#include "smtphook/error.h"

#define SIGN_READ_BYTES 65536u
#define SIGN_ONE        "v1,"  /* an HMAC signature's version tag */
#define SIGN_ONE_A      "v1a," /* an Ed25519 signature's version tag */

/* sign_begin - see sign.h. */
int sign_begin(struct sign_pass *p, const struct config_signing *signing, const char *id,
               int64_t unix_s, const struct request_body *body)
{
    memset(p, 0, sizeof(*p));
    p->signing = signing;
    p->body = body;
    p->passes = 1;
    int n = snprintf(p->prefix, sizeof(p->prefix), "%s.%" PRId64 ".", id, unix_s);
    if (n < 0 || (size_t)n >= sizeof(p->prefix))
        return SH_EINVAL;
    p->prefix_len = (size_t)n;
    p->macs = calloc(signing->n_secrets, sizeof(*p->macs));
    p->eds = calloc(signing->n_secrets, sizeof(*p->eds));
    if (p->macs == NULL || p->eds == NULL) {
        sign_end(p);
        return SH_ENOMEM;
    }
    for (size_t i = 0; i < signing->n_secrets; i++) {
        const struct config_secret *s = &signing->secrets[i];
        int rc = 0;
        if (s->ed25519) {
            p->passes = 2;
            rc = ed25519_begin(&p->eds[i], s->key);
            if (rc == 0)
                ed25519_update(&p->eds[i], p->prefix, p->prefix_len);
        } else {
            rc = digest_hmac_new(s->key, s->len, &p->macs[i]) != 0 ? SH_ENOMEM : 0;
            if (rc == 0)
                digest_update(p->macs[i], p->prefix, p->prefix_len);
        }
        if (rc != 0) {
            sign_end(p);
            return rc;
        }
    }
    return 0;
}

/* sign_bytes - see sign.h. */
uint64_t sign_bytes(const struct sign_pass *p)
{
    return p->passes * p->body->size;
}

/* sign_feed - n body bytes to the pass under way: every HMAC and Ed25519 nonce hash in the
 * first, the Ed25519 challenge hashes in the second. */
static void sign_feed(struct sign_pass *p, const void *data, size_t n)
{
    for (size_t i = 0; i < p->signing->n_secrets; i++) {
        if (p->signing->secrets[i].ed25519)
            ed25519_update(&p->eds[i], data, n);
        else if (p->pass == 0)
            digest_update(p->macs[i], data, n);
    }
}

/* sign_second - the first pass is through: each Ed25519 key's R, and its second pass
 * starts with the prefix. */
static int sign_second(struct sign_pass *p)
{
    for (size_t i = 0; i < p->signing->n_secrets; i++) {
        if (!p->signing->secrets[i].ed25519)
            continue;
        int rc = ed25519_second(&p->eds[i]);
        if (rc != 0)
            return rc;
        ed25519_update(&p->eds[i], p->prefix, p->prefix_len);
    }
    p->pass++;
    return 0;
}

/* sign_step - see sign.h. */
int sign_step(struct sign_pass *p, bool *done)
{
    char chunk[SIGN_READ_BYTES];
    uint64_t size = p->body->size;
    uint64_t budget = SIGN_STEP_BYTES;
    *done = false;
    for (;;) {
        uint64_t at = p->offset - (uint64_t)p->pass * size; /* in the pass under way */
        if (at >= size) {
            if (p->pass + 1 >= p->passes)
                break;
            int rc = sign_second(p);
            if (rc != 0)
                return rc;
            continue;
        }
        if (budget == 0)
            return 0;
        uint64_t want = budget < sizeof(chunk) ? budget : sizeof(chunk);
        if (want > size - at)
            want = size - at;
        size_t got = 0;
        if (request_body_read((void *)p->body, at, chunk, (size_t)want, &got) != 0 || got == 0)
            return SH_EIO;
        sign_feed(p, chunk, got);
        p->offset += got;
        budget -= got;
    }
    *done = true;
    return 0;
}

/* sign_value - see sign.h. */
int sign_value(struct sign_pass *p, char **out)
{
    size_t one = strlen(SIGN_ONE_A) + BASE64_SIZE(ED25519_SIGNATURE_BYTES) + 1;
    char *v = malloc(p->signing->n_secrets * one + 1);
    if (v == NULL)
        return SH_ENOMEM;
    size_t len = 0;
    for (size_t i = 0; i < p->signing->n_secrets; i++) {
        if (i > 0)
            v[len++] = ' ';
        if (p->signing->secrets[i].ed25519) {
            uint8_t sig[ED25519_SIGNATURE_BYTES];
            ed25519_final(&p->eds[i], sig);
            memcpy(v + len, SIGN_ONE_A, strlen(SIGN_ONE_A));
            len += strlen(SIGN_ONE_A);
            len += base64_encode(sig, sizeof(sig), v + len);
        } else {
            uint8_t mac[DIGEST_BYTES];
            digest_final(p->macs[i], mac);
            memcpy(v + len, SIGN_ONE, strlen(SIGN_ONE));
            len += strlen(SIGN_ONE);
            len += base64_encode(mac, sizeof(mac), v + len);
        }
    }
    v[len] = '\0';
    *out = v;
    return 0;
}

/* sign_end - see sign.h. */
void sign_end(struct sign_pass *p)
{
    if (p->macs != NULL) {
        for (size_t i = 0; i < p->signing->n_secrets; i++)
            digest_free(p->macs[i]);
    }
    if (p->eds != NULL) {
        for (size_t i = 0; i < p->signing->n_secrets; i++)
            ed25519_end(&p->eds[i]);
    }
    free(p->macs);
    free(p->eds);
    p->macs = NULL;
    p->eds = NULL;
}
