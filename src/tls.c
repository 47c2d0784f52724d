/* tls.c - inbound TLS over memory BIOs (see tls.h).
 *
 * The only file that includes OpenSSL's SSL API. No sockets, no libuv: the connection moves
 * the bytes. One SSL_CTX carries what all handshakes share (protocol floor, ciphers, groups,
 * session cache, ticket keys); the certificates live apart in a tls_certs set that a
 * certificate callback consults per handshake, so a reload swaps the set without touching
 * the context or the connections that already hold their certificate. */
#include "smtphook/tls.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "smtphook/error.h"
#include "smtphook/log.h"

#define TLS_SESSION_ID_CONTEXT "smtphook" /* sessions resume only with us */
#define TLS_SESSION_CACHE_SIZE 20480      /* server-side sessions kept (OpenSSL's default) */
#define TLS_SESSION_TIMEOUT_S  7200       /* how long a session may be resumed */
#define TLS_SNI_MAX            255        /* longest DNS name (RFC 1035 §2.3.4) */
#define TLS_SUBJECT_MAX        1024       /* longest client certificate subject kept */
#define TLS_TAKE_CHUNK         16384      /* ciphertext moved per BIO_read */
#define TLS_ERROR_MAX          160        /* bytes of an error text */
#define TLS_BIO_KEEP_BYTES     4096       /* an empty memory BIO bigger than this is replaced */

/* One certificate with its chain and key. */
struct tls_cert {
    X509 *cert;             /* the leaf */
    STACK_OF(X509) * chain; /* intermediates, may be empty */
    EVP_PKEY *key;          /* private key of cert */
};

/* The certificates new handshakes choose from; the first is the default. */
struct tls_certs {
    struct tls_cert *certs; /* loaded certificates */
    size_t n;               /* entries in certs */
};

struct tls_server {
    SSL_CTX *ctx;            /* shared settings, session cache, ticket keys */
    struct tls_certs *certs; /* current certificates (replaced by a reload) */
    unsigned refs;           /* the owner plus one per tls_conn (tls_choose_cert needs us) */
};

struct tls_conn {
    struct tls_server *ts;             /* a reference: the certificate callback's argument */
    SSL *ssl;                          /* owns the two BIOs */
    BIO *rbio;                         /* ciphertext from the client */
    BIO *wbio;                         /* ciphertext to the client */
    bool established;                  /* handshake finished, info filled in */
    struct envelope_tls info;          /* points into the fields below or OpenSSL statics */
    char sni[TLS_SNI_MAX + 1];         /* SNI name, sanitized */
    char subject[TLS_SUBJECT_MAX + 1]; /* client certificate subject */
    char sha256[2 * 32 + 1];           /* its fingerprint */
    char error[TLS_ERROR_MAX];         /* why the last call failed */
};

/* tls_openssl_error - the oldest queued OpenSSL error as text (or fallback), queue emptied. */
static void tls_openssl_error(char *dst, size_t len, const char *fallback)
{
    unsigned long e = ERR_peek_error();
    if (e != 0)
        ERR_error_string_n(e, dst, len);
    else
        snprintf(dst, len, "%s", fallback);
    ERR_clear_error();
}

/* tls_server_expiry - see tls.h. */
bool tls_server_expiry(const struct tls_server *ts, size_t i, int64_t *unix_s)
{
    if (ts == NULL || ts->certs == NULL || i >= ts->certs->n)
        return false;
    struct tm tm;
    if (ASN1_TIME_to_tm(X509_get0_notAfter(ts->certs->certs[i].cert), &tm) != 1)
        return false;
    *unix_s = (int64_t)timegm(&tm);
    return true;
}

/* tls_cert_clear - free one certificate's parts. */
static void tls_cert_clear(struct tls_cert *c)
{
    X509_free(c->cert);
    sk_X509_pop_free(c->chain, X509_free);
    EVP_PKEY_free(c->key);
    memset(c, 0, sizeof(*c));
}

/* tls_certs_free - free a certificate set; NULL is ignored. */
static void tls_certs_free(struct tls_certs *set)
{
    if (set == NULL)
        return;
    for (size_t i = 0; i < set->n; i++)
        tls_cert_clear(&set->certs[i]);
    free(set->certs);
    free(set);
}

/* tls_no_password - encrypted keys are refused: there is nobody to type a passphrase. */
static int tls_no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

/* tls_open - open a PEM file for reading, with a message naming it on failure. */
static BIO *tls_open(const char *key, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot read %s: %s", key, path, strerror(errno));
        return NULL;
    }
    BIO *bio = BIO_new_fp(f, BIO_CLOSE);
    if (bio == NULL) {
        fclose(f);
        snprintf(err, errlen, "%s: out of memory", key);
    }
    return bio;
}

/* tls_cert_load - read certificate, chain and key of certificates[i] and check that they
 * belong together and have not expired. SH_ECONFIG with the file named in err. */
static int tls_cert_load(const struct config_certificate *cc, size_t i, struct tls_cert *out,
                         char *err, size_t errlen)
{
    char key_cert[64], key_key[64];
    snprintf(key_cert, sizeof(key_cert), "tls.certificates[%zu].cert", i);
    snprintf(key_key, sizeof(key_key), "tls.certificates[%zu].key", i);
    memset(out, 0, sizeof(*out));
    ERR_clear_error();

    BIO *bio = tls_open(key_cert, cc->cert, err, errlen);
    if (bio == NULL)
        goto fail;
    out->cert = PEM_read_bio_X509_AUX(bio, NULL, tls_no_password, NULL);
    if (out->cert == NULL) {
        snprintf(err, errlen, "%s: no PEM certificate in %s", key_cert, cc->cert);
        BIO_free(bio);
        goto fail;
    }
    out->chain = sk_X509_new_null();
    if (out->chain == NULL) {
        snprintf(err, errlen, "%s: out of memory", key_cert);
        BIO_free(bio);
        goto fail;
    }
    for (;;) {
        X509 *ca = PEM_read_bio_X509(bio, NULL, tls_no_password, NULL);
        if (ca == NULL)
            break;
        if (!sk_X509_push(out->chain, ca)) {
            X509_free(ca);
            snprintf(err, errlen, "%s: out of memory", key_cert);
            BIO_free(bio);
            goto fail;
        }
    }
    /* The loop ends at the end of the file (no start line); anything else is a broken
     * certificate in the chain. */
    unsigned long e = ERR_peek_last_error();
    BIO_free(bio);
    if (e != 0 && !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)) {
        snprintf(err, errlen, "%s: broken certificate in the chain of %s", key_cert, cc->cert);
        goto fail;
    }
    ERR_clear_error();

    if (X509_cmp_current_time(X509_get0_notAfter(out->cert)) <= 0) {
        char when[64] = "?";
        BIO *mem = BIO_new(BIO_s_mem());
        if (mem != NULL && ASN1_TIME_print(mem, X509_get0_notAfter(out->cert)) == 1) {
            int n = BIO_read(mem, when, (int)sizeof(when) - 1);
            when[n > 0 ? n : 0] = '\0';
        }
        BIO_free(mem);
        snprintf(err, errlen, "%s: the certificate in %s expired on %s", key_cert, cc->cert, when);
        goto fail;
    }
    if (X509_cmp_current_time(X509_get0_notBefore(out->cert)) > 0)
        log_warn("%s: the certificate in %s is not valid yet", key_cert, cc->cert);

    bio = tls_open(key_key, cc->key, err, errlen);
    if (bio == NULL)
        goto fail;
    out->key = PEM_read_bio_PrivateKey(bio, NULL, tls_no_password, NULL);
    BIO_free(bio);
    if (out->key == NULL) {
        snprintf(err, errlen,
                 "%s: no usable PEM private key in %s (encrypted keys are not supported)", key_key,
                 cc->key);
        goto fail;
    }
    if (X509_check_private_key(out->cert, out->key) != 1) {
        snprintf(err, errlen, "%s: the key in %s does not match the certificate in %s", key_key,
                 cc->key, cc->cert);
        goto fail;
    }
    ERR_clear_error();
    return 0;

fail:
    ERR_clear_error();
    tls_cert_clear(out);
    return SH_ECONFIG;
}

/* tls_certs_load - every configured certificate, or none with err set. */
static int tls_certs_load(const struct config_tls *cfg, struct tls_certs **out, char *err,
                          size_t errlen)
{
    struct tls_certs *set = calloc(1, sizeof(*set));
    if (set == NULL || cfg->n_certificates == 0)
        goto nomem;
    set->certs = calloc(cfg->n_certificates, sizeof(*set->certs));
    if (set->certs == NULL)
        goto nomem;
    for (size_t i = 0; i < cfg->n_certificates; i++) {
        int rc = tls_cert_load(&cfg->certificates[i], i, &set->certs[i], err, errlen);
        if (rc != 0) {
            tls_certs_free(set);
            return rc;
        }
        set->n = i + 1;
    }
    *out = set;
    return 0;

nomem:
    tls_certs_free(set);
    snprintf(err, errlen, "tls.certificates: %s",
             cfg->n_certificates == 0 ? "no certificate configured" : "out of memory");
    return cfg->n_certificates == 0 ? SH_ECONFIG : SH_ENOMEM;
}

/* tls_choose_cert - certificate callback: the first certificate whose names match the SNI
 * name (wildcards per RFC 6125), else the default. Runs before cipher selection, so the
 * choice also decides between RSA and ECDSA suites. */
static int tls_choose_cert(SSL *ssl, void *arg)
{
    const struct tls_server *ts = arg;
    const struct tls_certs *set = ts->certs;
    const struct tls_cert *pick = &set->certs[0];
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (name != NULL) {
        for (size_t i = 0; i < set->n; i++) {
            if (X509_check_host(set->certs[i].cert, name, 0, 0, NULL) == 1) {
                pick = &set->certs[i];
                break;
            }
        }
    }
    /* The SSL takes its own references: a reload may free the set at any time after. */
    return SSL_use_cert_and_key(ssl, pick->cert, pick->key, pick->chain, 1) == 1 ? 1 : 0;
}

/* tls_accept_any_cert - client certificates are asked for to report them, not to
 * authenticate: every one is accepted and the application decides what it trusts. */
static int tls_accept_any_cert(int ok, X509_STORE_CTX *store)
{
    (void)ok;
    (void)store;
    return 1;
}

/* tls_ctx_new - the shared context from the settings. SH_ECONFIG names the bad key. */
static int tls_ctx_new(const struct config_tls *cfg, struct tls_server *ts, char *err,
                       size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        tls_openssl_error(err, errlen, "cannot create a TLS context");
        return SH_ENOMEM;
    }
    int min = TLS1_2_VERSION;
    if (cfg->min_version != NULL && strcmp(cfg->min_version, "TLSv1.3") == 0)
        min = TLS1_3_VERSION;
    const char *bad = NULL;
    if (SSL_CTX_set_min_proto_version(ctx, min) != 1)
        bad = "tls.min_version";
    else if (cfg->ciphers != NULL && SSL_CTX_set_cipher_list(ctx, cfg->ciphers) != 1)
        bad = "tls.ciphers: no usable cipher in the list";
    else if (cfg->ciphersuites != NULL && SSL_CTX_set_ciphersuites(ctx, cfg->ciphersuites) != 1)
        bad = "tls.ciphersuites: no usable suite in the list";
    else if (cfg->groups != NULL && SSL_CTX_set1_groups_list(ctx, cfg->groups) != 1)
        bad = "tls.groups: unknown group in the list";
    if (bad != NULL) {
        snprintf(err, errlen, "%s", bad);
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return SH_ECONFIG;
    }
    /* No renegotiation (a client-driven CPU cost and a state machine we do not need), the
     * server's cipher order, buffers released while a connection is idle. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_dh_auto(ctx, 1);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)TLS_SESSION_ID_CONTEXT,
                                   sizeof(TLS_SESSION_ID_CONTEXT) - 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, TLS_SESSION_CACHE_SIZE);
    SSL_CTX_set_timeout(ctx, TLS_SESSION_TIMEOUT_S);
    if (cfg->request_client_cert)
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, tls_accept_any_cert);
    SSL_CTX_set_cert_cb(ctx, tls_choose_cert, ts);
    ts->ctx = ctx;
    return 0;
}

/* tls_server_new - see tls.h. */
int tls_server_new(const struct config_tls *cfg, struct tls_server **out, char *err, size_t errlen)
{
    *out = NULL;
    struct tls_server *ts = calloc(1, sizeof(*ts));
    if (ts == NULL) {
        snprintf(err, errlen, "tls: out of memory");
        return SH_ENOMEM;
    }
    ts->refs = 1;
    int rc = tls_certs_load(cfg, &ts->certs, err, errlen);
    if (rc == 0)
        rc = tls_ctx_new(cfg, ts, err, errlen);
    if (rc != 0) {
        tls_server_free(ts);
        return rc;
    }
    *out = ts;
    return 0;
}

/* tls_server_reload - see tls.h. */
int tls_server_reload(struct tls_server *ts, const struct config_tls *cfg, char *err, size_t errlen)
{
    struct tls_certs *set = NULL;
    int rc = tls_certs_load(cfg, &set, err, errlen);
    if (rc != 0)
        return rc;
    tls_certs_free(ts->certs);
    ts->certs = set;
    return 0;
}

/* tls_server_unref - drop one reference; the last one frees the shared state. */
static void tls_server_unref(struct tls_server *ts)
{
    if (ts == NULL || --ts->refs > 0)
        return;
    SSL_CTX_free(ts->ctx);
    tls_certs_free(ts->certs);
    free(ts);
}

/* tls_server_free - see tls.h. A connection whose ClientHello has not arrived yet still
 * needs the certificates (tls_choose_cert gets ts as its argument), so each tls_conn holds
 * a reference and the last one out frees. */
void tls_server_free(struct tls_server *ts)
{
    tls_server_unref(ts);
}

/* tls_bio_new - an empty memory BIO; an empty read means "wait for more", not EOF. */
static BIO *tls_bio_new(void)
{
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio != NULL)
        BIO_set_mem_eof_return(bio, -1);
    return bio;
}

/* tls_bio_trim - a memory BIO keeps the largest buffer it ever needed (a handshake's
 * certificate chain, a burst of records); an idle connection should not. Replace an
 * emptied BIO that grew large by a fresh one. Best effort: on failure the old one stays. */
static void tls_bio_trim(struct tls_conn *t, bool read_side)
{
    BIO *bio = read_side ? t->rbio : t->wbio;
    BUF_MEM *mem = NULL;
    if (BIO_ctrl_pending(bio) > 0 || BIO_get_mem_ptr(bio, &mem) != 1 || mem == NULL ||
        mem->max <= TLS_BIO_KEEP_BYTES)
        return;
    BIO *fresh = tls_bio_new();
    if (fresh == NULL) {
        ERR_clear_error();
        return;
    }
    if (read_side) {
        SSL_set0_rbio(t->ssl, fresh); /* frees the old one */
        t->rbio = fresh;
    } else {
        SSL_set0_wbio(t->ssl, fresh);
        t->wbio = fresh;
    }
}

/* tls_conn_new - see tls.h. */
int tls_conn_new(struct tls_server *ts, struct tls_conn **out)
{
    *out = NULL;
    struct tls_conn *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return SH_ENOMEM;
    t->ssl = SSL_new(ts->ctx);
    t->rbio = tls_bio_new();
    t->wbio = tls_bio_new();
    if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL) {
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        SSL_free(t->ssl);
        free(t);
        ERR_clear_error();
        return SH_ENOMEM;
    }
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    SSL_set_accept_state(t->ssl);
    t->ts = ts;
    ts->refs++;
    *out = t;
    return 0;
}

/* tls_conn_free - see tls.h. */
void tls_conn_free(struct tls_conn *t)
{
    if (t == NULL)
        return;
    SSL_free(t->ssl);
    tls_server_unref(t->ts);
    free(t);
}

/* tls_conn_feed - see tls.h. */
int tls_conn_feed(struct tls_conn *t, const char *data, size_t len)
{
    while (len > 0) {
        int n = len > INT_MAX ? INT_MAX : (int)len;
        int w = BIO_write(t->rbio, data, n);
        if (w <= 0) {
            ERR_clear_error();
            return SH_ENOMEM;
        }
        data += w;
        len -= (size_t)w;
    }
    return 0;
}

/* tls_printable - copy src if it is printable ASCII that fits, else leave dst empty. */
static void tls_printable(char *dst, size_t cap, const char *src, size_t len)
{
    dst[0] = '\0';
    if (len >= cap)
        return;
    for (size_t i = 0; i < len; i++) {
        if (src[i] < 0x20 || src[i] > 0x7e)
            return;
    }
    memcpy(dst, src, len);
    dst[len] = '\0';
}

/* tls_fill_info - record version, cipher, SNI and the client certificate. */
static void tls_fill_info(struct tls_conn *t)
{
    t->info.version = SSL_get_version(t->ssl);
    t->info.cipher = SSL_CIPHER_get_name(SSL_get_current_cipher(t->ssl));
    const char *sni = SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name);
    if (sni != NULL) {
        tls_printable(t->sni, sizeof(t->sni), sni, strlen(sni));
        if (t->sni[0] != '\0')
            t->info.sni = t->sni;
    }
    X509 *peer = SSL_get1_peer_certificate(t->ssl);
    if (peer == NULL)
        return;
    /* RFC 2253 form escapes control bytes and, with ESC_MSB, each byte of a non-ASCII
     * character as \XX (RFC 2253 §2.4), so the text is printable ASCII. */
    BIO *mem = BIO_new(BIO_s_mem());
    if (mem != NULL &&
        X509_NAME_print_ex(mem, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253) >= 0) {
        char *p = NULL;
        long n = BIO_get_mem_data(mem, &p);
        if (n > 0)
            tls_printable(t->subject, sizeof(t->subject), p, (size_t)n);
    }
    BIO_free(mem);
    if (t->subject[0] != '\0')
        t->info.peer_subject = t->subject;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (X509_digest(peer, EVP_sha256(), md, &mdlen) == 1 && mdlen * 2 < sizeof(t->sha256)) {
        for (unsigned i = 0; i < mdlen; i++)
            snprintf(t->sha256 + 2 * i, 3, "%02x", md[i]);
        t->info.peer_sha256 = t->sha256;
    }
    X509_free(peer);
    ERR_clear_error();
}

/* tls_conn_read - see tls.h. */
enum tls_read_status tls_conn_read(struct tls_conn *t, char *buf, size_t cap, size_t *n)
{
    *n = 0;
    ERR_clear_error();
    if (!t->established) {
        int r = SSL_do_handshake(t->ssl);
        if (r != 1) {
            int e = SSL_get_error(t->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return TLS_READ_AGAIN;
            tls_openssl_error(t->error, sizeof(t->error), "handshake failed");
            return TLS_READ_ERROR;
        }
        t->established = true;
        tls_fill_info(t);
    }
    int want = cap > INT_MAX ? INT_MAX : (int)cap;
    int r = SSL_read(t->ssl, buf, want);
    if (r > 0) {
        *n = (size_t)r;
        return TLS_READ_DATA;
    }
    switch (SSL_get_error(t->ssl, r)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        tls_bio_trim(t, true);
        return TLS_READ_AGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return TLS_READ_CLOSED;
    default:
        tls_openssl_error(t->error, sizeof(t->error), "TLS record error");
        return TLS_READ_ERROR;
    }
}

/* tls_conn_write - see tls.h. A memory BIO takes everything, so SSL_write never stops
 * half-way. */
int tls_conn_write(struct tls_conn *t, const char *data, size_t len)
{
    if (!t->established)
        return SH_EIO;
    ERR_clear_error();
    while (len > 0) {
        int n = len > INT_MAX ? INT_MAX : (int)len;
        int w = SSL_write(t->ssl, data, n);
        if (w <= 0) {
            tls_openssl_error(t->error, sizeof(t->error), "TLS write failed");
            return SH_EIO;
        }
        data += w;
        len -= (size_t)w;
    }
    return 0;
}

/* tls_conn_shutdown - see tls.h. We do not wait for the client's close_notify. */
void tls_conn_shutdown(struct tls_conn *t)
{
    if (t->established) {
        SSL_shutdown(t->ssl);
        ERR_clear_error();
    }
}

/* tls_conn_take - see tls.h. */
int tls_conn_take(struct tls_conn *t, struct buf *out)
{
    char chunk[TLS_TAKE_CHUNK];
    while (BIO_ctrl_pending(t->wbio) > 0) {
        int n = BIO_read(t->wbio, chunk, (int)sizeof(chunk));
        if (n <= 0)
            break;
        if (buf_append(out, chunk, (size_t)n) != 0)
            return SH_ENOMEM;
    }
    tls_bio_trim(t, false);
    return 0;
}

/* tls_conn_established - see tls.h. */
bool tls_conn_established(const struct tls_conn *t)
{
    return t->established;
}

/* tls_conn_info - see tls.h. */
const struct envelope_tls *tls_conn_info(const struct tls_conn *t)
{
    return &t->info;
}

/* tls_conn_error - see tls.h. */
const char *tls_conn_error(const struct tls_conn *t)
{
    return t->error[0] != '\0' ? t->error : "unknown TLS error";
}
