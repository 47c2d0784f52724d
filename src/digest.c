/* digest.c - SHA-256 through OpenSSL's EVP interface (see digest.h). Must not include the
 * SSL API (tls.c alone does), libuv, curl or jansson. */
#include "smtphook/digest.h"

#include <openssl/evp.h>
#include <stdlib.h>

#include "smtphook/error.h"

struct digest {
    EVP_MD_CTX *ctx; /* the running hash */
};

/* digest_new - see digest.h. */
int digest_new(struct digest **out)
{
    *out = NULL;
    struct digest *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return SH_ENOMEM;
    d->ctx = EVP_MD_CTX_new();
    if (d->ctx == NULL || EVP_DigestInit_ex(d->ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(d->ctx);
        free(d);
        return SH_ENOMEM;
    }
    *out = d;
    return 0;
}

/* digest_update - see digest.h. SHA-256 cannot fail on valid input once initialised. */
void digest_update(struct digest *d, const void *data, size_t n)
{
    if (n > 0)
        EVP_DigestUpdate(d->ctx, data, n);
}

/* digest_final - see digest.h. */
void digest_final(struct digest *d, uint8_t out[DIGEST_BYTES])
{
    unsigned int len = 0;
    EVP_DigestFinal_ex(d->ctx, out, &len);
}

/* digest_free - see digest.h. */
void digest_free(struct digest *d)
{
    if (d == NULL)
        return;
    EVP_MD_CTX_free(d->ctx);
    free(d);
}

/* digest_hex - see digest.h. */
void digest_hex(const uint8_t d[DIGEST_BYTES], char out[DIGEST_HEX + 1])
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < DIGEST_BYTES; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 0x0f];
    }
    out[DIGEST_HEX] = '\0';
}
