/* sign.c - Standard Webhooks signatures in steps (see sign.h). */
#include "smtphook/sign.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtphook/base64.h"
#include "smtphook/error.h"

#define SIGN_PREFIX_MAX 128u /* "<id>.<timestamp>." : a 64-character key and a number */
#define SIGN_READ_BYTES 65536u
#define SIGN_ONE        "v1," /* each signature's version tag */

/* sign_begin - see sign.h. */
int sign_begin(struct sign_pass *p, const struct config_signing *signing, const char *id,
               int64_t unix_s, const struct request_body *body)
{
    memset(p, 0, sizeof(*p));
    p->signing = signing;
    p->body = body;
    char prefix[SIGN_PREFIX_MAX];
    int n = snprintf(prefix, sizeof(prefix), "%s.%" PRId64 ".", id, unix_s);
    if (n < 0 || (size_t)n >= sizeof(prefix))
        return SH_EINVAL;
    p->macs = calloc(signing->n_secrets, sizeof(*p->macs));
    if (p->macs == NULL)
        return SH_ENOMEM;
    for (size_t i = 0; i < signing->n_secrets; i++) {
        const struct config_secret *s = &signing->secrets[i];
        if (digest_hmac_new(s->key, s->len, &p->macs[i]) != 0) {
            sign_end(p);
            return SH_ENOMEM;
        }
        digest_update(p->macs[i], prefix, (size_t)n);
    }
    return 0;
}

/* sign_step - see sign.h. */
int sign_step(struct sign_pass *p, bool *done)
{
    char chunk[SIGN_READ_BYTES];
    uint64_t budget = SIGN_STEP_BYTES;
    while (budget > 0 && p->offset < p->body->size) {
        size_t got = 0;
        size_t want = budget < sizeof(chunk) ? (size_t)budget : sizeof(chunk);
        if (request_body_read((void *)p->body, p->offset, chunk, want, &got) != 0 || got == 0)
            return SH_EIO;
        for (size_t i = 0; i < p->signing->n_secrets; i++)
            digest_update(p->macs[i], chunk, got);
        p->offset += got;
        budget -= got;
    }
    *done = p->offset >= p->body->size;
    return 0;
}

/* sign_value - see sign.h. */
int sign_value(struct sign_pass *p, char **out)
{
    size_t one = strlen(SIGN_ONE) + BASE64_SIZE(DIGEST_BYTES) + 1;
    char *v = malloc(p->signing->n_secrets * one + 1);
    if (v == NULL)
        return SH_ENOMEM;
    size_t len = 0;
    for (size_t i = 0; i < p->signing->n_secrets; i++) {
        uint8_t mac[DIGEST_BYTES];
        digest_final(p->macs[i], mac);
        if (i > 0)
            v[len++] = ' ';
        memcpy(v + len, SIGN_ONE, strlen(SIGN_ONE));
        len += strlen(SIGN_ONE);
        len += base64_encode(mac, sizeof(mac), v + len);
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
    free(p->macs);
    p->macs = NULL;
}
