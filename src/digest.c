/* digest.c - SHA-256, SHA-512 and HMAC-SHA256 through OpenSSL's EVP interfaces, random bytes
 * through RAND_bytes (see digest.h). Must not include the SSL API (tls.c alone does), libuv, curl
 * or jansson. */
#include "smtphook/digest.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#include "smtphook/error.h"

#define DIGEST_RANDOM_STEP 32 /* random bytes drawn per step of digest_random_hex */

struct digest {
    EVP_MD_CTX *md;   /* a running SHA-256 or SHA-512, or NULL */
    EVP_MAC_CTX *mac; /* a running HMAC-SHA256, or NULL */
};

/* digest_md_new - a running hash of md. 0 or SH_ENOMEM. */
static int digest_md_new(const EVP_MD *md, struct digest **out)
{
    *out = NULL;
    struct digest *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return SH_ENOMEM;
    d->md = EVP_MD_CTX_new();
    if (d->md == NULL || EVP_DigestInit_ex(d->md, md, NULL) != 1) {
        digest_free(d);
        return SH_ENOMEM;
    }
    *out = d;
    return 0;
}

/* digest_new - see digest.h. */
int digest_new(struct digest **out)
{
    return digest_md_new(EVP_sha256(), out);
}

/* digest_sha512_new - see digest.h. */
int digest_sha512_new(struct digest **out)
{
    return digest_md_new(EVP_sha512(), out);
}

/* digest_sha512_final - see digest.h. */
void digest_sha512_final(struct digest *d, uint8_t out[DIGEST_SHA512_BYTES])
{
    unsigned int len = 0;
    EVP_DigestFinal_ex(d->md, out, &len);
}

/* digest_hmac_new - see digest.h. */
int digest_hmac_new(const void *key, size_t keylen, struct digest **out)
{
    *out = NULL;
    struct digest *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return SH_ENOMEM;
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    d->mac = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
    EVP_MAC_free(mac); /* the context keeps its own reference */
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    static const unsigned char empty[1];
    if (d->mac == NULL || EVP_MAC_init(d->mac, keylen > 0 ? key : empty, keylen, params) != 1) {
        digest_free(d);
        return SH_ENOMEM;
    }
    *out = d;
    return 0;
}

/* digest_update - see digest.h. SHA-256 and HMAC cannot fail on valid input once
 * initialised. */
void digest_update(struct digest *d, const void *data, size_t n)
{
    if (n == 0)
        return;
    if (d->md != NULL)
        EVP_DigestUpdate(d->md, data, n);
    else
        EVP_MAC_update(d->mac, data, n);
}

/* digest_final - see digest.h. */
void digest_final(struct digest *d, uint8_t out[DIGEST_BYTES])
{
    if (d->md != NULL) {
        unsigned int len = 0;
        EVP_DigestFinal_ex(d->md, out, &len);
    } else {
        size_t len = 0;
        EVP_MAC_final(d->mac, out, &len, DIGEST_BYTES);
    }
}

/* digest_free - see digest.h. */
void digest_free(struct digest *d)
{
    if (d == NULL)
        return;
    EVP_MD_CTX_free(d->md);
    EVP_MAC_CTX_free(d->mac);
    free(d);
}

/* digest_hmac - see digest.h. */
int digest_hmac(const void *key, size_t keylen, const void *data, size_t n,
                uint8_t out[DIGEST_BYTES])
{
    struct digest *d;
    int rc = digest_hmac_new(key, keylen, &d);
    if (rc != 0)
        return rc;
    digest_update(d, data, n);
    digest_final(d, out);
    digest_free(d);
    return 0;
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

/* digest_random - see digest.h. */
int digest_random(void *dst, size_t n)
{
    if (n > (size_t)INT32_MAX || RAND_bytes(dst, (int)n) != 1)
        return SH_EIO;
    return 0;
}

/* digest_unhex - see digest.h. */
bool digest_unhex(const char *hex, uint8_t out[DIGEST_BYTES])
{
    uint8_t d[DIGEST_BYTES];
    for (size_t i = 0; i < DIGEST_HEX; i++) {
        char c = hex[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0)
            return false; /* a NUL too: the text is short */
        d[i / 2] = (uint8_t)(i % 2 == 0 ? v << 4 : d[i / 2] | v);
    }
    if (hex[DIGEST_HEX] != '\0')
        return false;
    memcpy(out, d, sizeof(d));
    return true;
}

/* digest_random_hex - see digest.h. */
int digest_random_hex(char *dst, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    uint8_t r[DIGEST_RANDOM_STEP];
    for (size_t i = 0; i < n; i += 2 * DIGEST_RANDOM_STEP) {
        if (digest_random(r, sizeof(r)) != 0)
            return SH_EIO;
        for (size_t k = 0; k < 2 * DIGEST_RANDOM_STEP && i + k < n; k++)
            dst[i + k] = hex[k % 2 == 0 ? r[k / 2] >> 4 : r[k / 2] & 0x0f];
    }
    dst[n] = '\0';
    return 0;
}
