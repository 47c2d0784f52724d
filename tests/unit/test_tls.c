/* test_tls.c - unit tests of tls.c: handshakes (TLS 1.3 and 1.2), data both ways byte-exact,
 * the protocol floor, SNI certificate choice, client certificates, configuration errors,
 * certificate reloads, session resumption, close_notify and hostile input.
 *
 * The one test that includes OpenSSL's SSL API besides tls.c: it plays the client (an SSL
 * with its own memory BIOs, bytes moved by hand to and from a tls_conn) and builds a test
 * PKI in-process into a temporary directory, because tls_server_new reads PEM files. Must not
 * include libuv, curl or jansson. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <limits.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "smtphook/buf.h"
#include "smtphook/config.h"
#include "smtphook/error.h"
#include "smtphook/tls.h"

#define PATH_LEN         512     /* a file name in the temporary directory */
#define ERR_LEN          512     /* error message buffer, as large as server.c's */
#define CHUNK            16384   /* bytes moved per BIO_read / tls_conn_read */
#define HANDSHAKE_ROUNDS 64      /* client/server exchanges before a handshake counts as stuck */
#define BIG_PAYLOAD      100000u /* "100 KB": several TLS records (16 KB each, RFC 8446 §5.1) */
#define DAY_S            86400L  /* one day in seconds */

/* The test PKI: a CA and the certificates the tests configure or present. */
struct pki {
    char dir[PATH_LEN];      /* mkdtemp directory, removed at the end */
    EVP_PKEY *ca_key;        /* signs everything below */
    X509 *ca;                /* "smtphook test CA" */
    EVP_PKEY *a_key;         /* ECDSA P-256 */
    X509 *a;                 /* a.test, the default certificate */
    EVP_PKEY *b_key;         /* RSA 2048, so that SNI also picks the key type */
    X509 *b;                 /* b.test */
    EVP_PKEY *c_key;         /* ECDSA */
    X509 *c;                 /* *.c.test */
    EVP_PKEY *a2_key;        /* a fresh key for the reloaded a.test */
    X509 *a2;                /* a.test again, as after a renewal */
    EVP_PKEY *client_key;    /* the client's key */
    X509 *client;            /* CN=printer,O=Acme */
    X509 *client_utf8;       /* CN=Drucker Müller,O=Acme (non-ASCII subject) */
    char a_crt[PATH_LEN];    /* leaf a, then the CA (a chain of two) */
    char a_key_f[PATH_LEN];  /* key of a */
    char b_crt[PATH_LEN];    /* leaf b only */
    char b_key_f[PATH_LEN];  /* key of b */
    char c_crt[PATH_LEN];    /* leaf c */
    char c_key_f[PATH_LEN];  /* key of c */
    char a2_crt[PATH_LEN];   /* leaf a2 */
    char a2_key_f[PATH_LEN]; /* key of a2 */
    char expired[PATH_LEN];  /* a.test that expired yesterday (key a) */
    char future[PATH_LEN];   /* a.test valid from tomorrow (key a) */
    char garbage[PATH_LEN];  /* not PEM at all */
    char broken[PATH_LEN];   /* leaf a, then a certificate block that does not decode */
    char combined[PATH_LEN]; /* leaf a and key a in one file */
    char enc_key[PATH_LEN];  /* key a, encrypted with a passphrase */
    char missing[PATH_LEN];  /* a file that does not exist */
};

static struct pki pki;
static long next_serial = 1;

/* What a test client offers. */
struct client_opts {
    int min_version;      /* 0: OpenSSL's default */
    int max_version;      /* 0: OpenSSL's default (TLS 1.3) */
    bool legacy;          /* security level 0, so that TLS 1.1 may be offered */
    bool no_ticket;       /* refuse session tickets: resume by session id */
    const char *sni;      /* server name sent, NULL: none */
    X509 *cert;           /* client certificate, NULL: none */
    EVP_PKEY *key;        /* its key */
    SSL_SESSION *session; /* session to resume, NULL: full handshake */
    bool verify;          /* trust the test CA and check the name sni */
};

/* One connection: the tls_conn under test and the OpenSSL client talking to it. */
struct peer {
    struct tls_conn *srv;        /* server side (the code under test) */
    SSL_CTX *ctx;                /* client settings */
    SSL *ssl;                    /* client */
    BIO *in;                     /* client's read BIO: ciphertext from the server */
    BIO *out;                    /* client's write BIO: ciphertext to the server */
    struct buf got;              /* plaintext the server decrypted so far */
    enum tls_read_status status; /* tls_conn_read's last answer other than DATA */
    size_t read_cap;             /* cap passed to tls_conn_read, 0: CHUNK */
    size_t feed_step;            /* ciphertext fed per tls_conn_feed, 0: all at once */
    unsigned long client_error;  /* the client's first OpenSSL error of a failed call */
};

/* ---- the test PKI ---- */

/* add_ext - one X509v3 extension in configuration syntax. */
static void add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(x, ext, -1), 1);
    X509_EXTENSION_free(ext);
}

/* make_cert - a certificate for key: subject O=o (if any), CN=cn; subjectAltName san (if
 * any); valid from now+not_before to now+not_after seconds; signed by the test CA, or by
 * itself when ca. */
static X509 *make_cert(EVP_PKEY *key, const char *o, const char *cn, const char *san,
                       long not_before, long not_after, bool ca)
{
    X509 *x = X509_new();
    assert_non_null(x);
    assert_int_equal(X509_set_version(x, 2), 1);
    assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), next_serial++), 1);
    assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), not_before));
    assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), not_after));
    assert_int_equal(X509_set_pubkey(x, key), 1);
    X509_NAME *name = X509_get_subject_name(x);
    if (o != NULL)
        assert_int_equal(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                                                    (const unsigned char *)o, -1, -1, 0),
                         1);
    assert_int_equal(
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0),
        1);
    X509 *issuer = ca ? x : pki.ca;
    assert_int_equal(X509_set_issuer_name(x, X509_get_subject_name(issuer)), 1);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
    add_ext(x, &v3, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
    if (ca)
        add_ext(x, &v3, NID_key_usage, "critical,keyCertSign,cRLSign");
    add_ext(x, &v3, NID_subject_key_identifier, "hash");
    if (san != NULL)
        add_ext(x, &v3, NID_subject_alt_name, san);
    assert_true(X509_sign(x, ca ? key : pki.ca_key, EVP_sha256()) > 0);
    return x;
}

/* ec_key - a fresh ECDSA P-256 key. */
static EVP_PKEY *ec_key(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    assert_non_null(k);
    return k;
}

/* pki_path - dst = the temporary directory / name. */
static void pki_path(char *dst, const char *name)
{
    int n = snprintf(dst, PATH_LEN, "%s/%s", pki.dir, name);
    assert_true(n > 0 && n < PATH_LEN);
}

/* write_pem - write up to two certificates and a key (each may be NULL) to path. */
static void write_pem(const char *path, X509 *first, X509 *second, EVP_PKEY *key)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    if (first != NULL)
        assert_int_equal(PEM_write_X509(f, first), 1);
    if (second != NULL)
        assert_int_equal(PEM_write_X509(f, second), 1);
    if (key != NULL)
        assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
    assert_int_equal(fclose(f), 0);
}

/* write_text - write a string to path. */
static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* pki_setup - make the keys and certificates and write the files (group setup). */
static int pki_setup(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(pki.dir, sizeof(pki.dir), "%s/test_tls-XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    assert_non_null(mkdtemp(pki.dir));

    pki.ca_key = ec_key();
    pki.ca =
        make_cert(pki.ca_key, "smtphook tests", "smtphook test CA", NULL, -DAY_S, 30 * DAY_S, true);
    pki.a_key = ec_key();
    pki.a = make_cert(pki.a_key, NULL, "a.test", "DNS:a.test", -DAY_S, 30 * DAY_S, false);
    pki.b_key = EVP_RSA_gen(2048);
    assert_non_null(pki.b_key);
    pki.b = make_cert(pki.b_key, NULL, "b.test", "DNS:b.test", -DAY_S, 30 * DAY_S, false);
    pki.c_key = ec_key();
    pki.c = make_cert(pki.c_key, NULL, "wildcard", "DNS:*.c.test", -DAY_S, 30 * DAY_S, false);
    pki.a2_key = ec_key();
    pki.a2 = make_cert(pki.a2_key, NULL, "a.test renewed", "DNS:a.test", -DAY_S, 60 * DAY_S, false);
    pki.client_key = ec_key();
    pki.client = make_cert(pki.client_key, "Acme", "printer", NULL, -DAY_S, 30 * DAY_S, false);
    pki.client_utf8 =
        make_cert(pki.client_key, "Acme", "Drucker M\xc3\xbcller", NULL, -DAY_S, 30 * DAY_S, false);
    X509 *expired = make_cert(pki.a_key, NULL, "a.test", "DNS:a.test", -2 * DAY_S, -DAY_S, false);
    X509 *future = make_cert(pki.a_key, NULL, "a.test", "DNS:a.test", DAY_S, 30 * DAY_S, false);

    pki_path(pki.a_crt, "a.crt");
    pki_path(pki.a_key_f, "a.key");
    pki_path(pki.b_crt, "b.crt");
    pki_path(pki.b_key_f, "b.key");
    pki_path(pki.c_crt, "c.crt");
    pki_path(pki.c_key_f, "c.key");
    pki_path(pki.a2_crt, "a2.crt");
    pki_path(pki.a2_key_f, "a2.key");
    pki_path(pki.expired, "expired.crt");
    pki_path(pki.future, "future.crt");
    pki_path(pki.garbage, "garbage.pem");
    pki_path(pki.broken, "broken-chain.crt");
    pki_path(pki.combined, "combined.pem");
    pki_path(pki.enc_key, "encrypted.key");
    pki_path(pki.missing, "missing.crt");

    write_pem(pki.a_crt, pki.a, pki.ca, NULL);
    write_pem(pki.a_key_f, NULL, NULL, pki.a_key);
    write_pem(pki.b_crt, pki.b, NULL, NULL);
    write_pem(pki.b_key_f, NULL, NULL, pki.b_key);
    write_pem(pki.c_crt, pki.c, NULL, NULL);
    write_pem(pki.c_key_f, NULL, NULL, pki.c_key);
    write_pem(pki.a2_crt, pki.a2, NULL, NULL);
    write_pem(pki.a2_key_f, NULL, NULL, pki.a2_key);
    write_pem(pki.expired, expired, NULL, NULL);
    write_pem(pki.future, future, NULL, NULL);
    write_pem(pki.combined, pki.a, NULL, pki.a_key);
    write_text(pki.garbage, "this is not a certificate\n\x01\x02\xff\n");
    write_pem(pki.broken, pki.a, NULL, NULL);
    FILE *f = fopen(pki.broken, "a");
    assert_non_null(f);
    fputs("-----BEGIN CERTIFICATE-----\nAAAAAAAA\n-----END CERTIFICATE-----\n", f);
    assert_int_equal(fclose(f), 0);
    f = fopen(pki.enc_key, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, pki.a_key, EVP_aes_256_cbc(),
                                          (const unsigned char *)"secret", 6, NULL, NULL),
                     1);
    assert_int_equal(fclose(f), 0);
    X509_free(expired);
    X509_free(future);
    return 0;
}

/* pki_teardown - free the PKI and remove the temporary directory (group teardown). */
static int pki_teardown(void **state)
{
    (void)state;
    DIR *dir = opendir(pki.dir);
    if (dir != NULL) {
        struct dirent *e;
        while ((e = readdir(dir)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char path[2 * PATH_LEN];
            snprintf(path, sizeof(path), "%s/%s", pki.dir, e->d_name);
            unlink(path);
        }
        closedir(dir);
    }
    rmdir(pki.dir);
    X509 *certs[] = {pki.ca, pki.a, pki.b, pki.c, pki.a2, pki.client, pki.client_utf8};
    for (size_t i = 0; i < sizeof(certs) / sizeof(certs[0]); i++)
        X509_free(certs[i]);
    EVP_PKEY *keys[] = {pki.ca_key, pki.a_key, pki.b_key, pki.c_key, pki.a2_key, pki.client_key};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        EVP_PKEY_free(keys[i]);
    memset(&pki, 0, sizeof(pki));
    return 0;
}

/* ---- servers and clients ---- */

/* server_ok - tls_server_new must succeed. */
static struct tls_server *server_ok(const struct config_tls *cfg)
{
    char err[ERR_LEN] = "";
    struct tls_server *ts = NULL;
    int rc = tls_server_new(cfg, &ts, err, sizeof(err));
    if (rc != 0)
        print_message("  tls_server_new: %s\n", err);
    assert_int_equal(rc, 0);
    assert_non_null(ts);
    assert_int_equal(ERR_peek_error(), 0); /* nothing left for other OpenSSL users */
    return ts;
}

/* server_a - a server with certificate a only and every other setting at its default. */
static struct tls_server *server_a(void)
{
    struct config_certificate cc[] = {{pki.a_crt, pki.a_key_f}};
    struct config_tls cfg = {.certificates = cc, .n_certificates = 1};
    return server_ok(&cfg);
}

/* server_err - tls_server_new must fail with SH_ECONFIG, *out NULL and a message holding
 * both needles (needle2 may be NULL). */
static void server_err(const struct config_tls *cfg, const char *needle1, const char *needle2)
{
    char err[ERR_LEN] = "";
    struct tls_server *ts = (struct tls_server *)&pki; /* must be overwritten */
    int rc = tls_server_new(cfg, &ts, err, sizeof(err));
    if (rc != SH_ECONFIG || strstr(err, needle1) == NULL ||
        (needle2 != NULL && strstr(err, needle2) == NULL))
        print_message("  rc %d, message: %s\n  want: %s / %s\n", rc, err, needle1,
                      needle2 != NULL ? needle2 : "");
    assert_int_equal(rc, SH_ECONFIG);
    assert_null(ts);
    assert_non_null(strstr(err, needle1));
    if (needle2 != NULL)
        assert_non_null(strstr(err, needle2));
    assert_int_equal(ERR_peek_error(), 0);
}

/* peer_init - a new tls_conn on ts and an OpenSSL client with the given options. */
static void peer_init(struct peer *p, struct tls_server *ts, const struct client_opts *o)
{
    memset(p, 0, sizeof(*p));
    assert_int_equal(tls_conn_new(ts, &p->srv), 0);
    assert_non_null(p->srv);
    p->ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(p->ctx);
    if (o->legacy)
        SSL_CTX_set_security_level(p->ctx, 0);
    if (o->min_version != 0)
        assert_int_equal(SSL_CTX_set_min_proto_version(p->ctx, o->min_version), 1);
    if (o->max_version != 0)
        assert_int_equal(SSL_CTX_set_max_proto_version(p->ctx, o->max_version), 1);
    if (o->no_ticket)
        SSL_CTX_set_options(p->ctx, SSL_OP_NO_TICKET);
    if (o->cert != NULL) {
        assert_int_equal(SSL_CTX_use_certificate(p->ctx, o->cert), 1);
        assert_int_equal(SSL_CTX_use_PrivateKey(p->ctx, o->key), 1);
    }
    if (o->verify)
        assert_int_equal(X509_STORE_add_cert(SSL_CTX_get_cert_store(p->ctx), pki.ca), 1);
    /* The client never aborts on its own: the tests look at the certificate themselves. */
    SSL_CTX_set_verify(p->ctx, SSL_VERIFY_NONE, NULL);
    p->ssl = SSL_new(p->ctx);
    assert_non_null(p->ssl);
    p->in = BIO_new(BIO_s_mem());
    p->out = BIO_new(BIO_s_mem());
    assert_non_null(p->in);
    assert_non_null(p->out);
    BIO_set_mem_eof_return(p->in, -1);
    BIO_set_mem_eof_return(p->out, -1);
    SSL_set_bio(p->ssl, p->in, p->out);
    SSL_set_connect_state(p->ssl);
    if (o->sni != NULL)
        assert_int_equal(SSL_set_tlsext_host_name(p->ssl, o->sni), 1);
    if (o->verify)
        assert_int_equal(SSL_set1_host(p->ssl, o->sni), 1);
    if (o->session != NULL)
        assert_int_equal(SSL_set_session(p->ssl, o->session), 1);
}

/* peer_free - release both sides. */
static void peer_free(struct peer *p)
{
    SSL_free(p->ssl);
    SSL_CTX_free(p->ctx);
    tls_conn_free(p->srv);
    buf_free(&p->got);
    memset(p, 0, sizeof(*p));
}

/* server_read - call tls_conn_read until it answers something other than DATA, collecting
 * the plaintext in p->got. */
static void server_read(struct peer *p)
{
    static char chunk[CHUNK];
    size_t cap = p->read_cap != 0 ? p->read_cap : sizeof(chunk);
    for (;;) {
        size_t n = 12345;
        enum tls_read_status st = tls_conn_read(p->srv, chunk, cap, &n);
        assert_int_equal(ERR_peek_error(), 0); /* tls.c leaves the queue empty */
        if (st == TLS_READ_DATA) {
            assert_true(n > 0 && n <= cap);
            assert_int_equal(buf_append(&p->got, chunk, n), 0);
            continue;
        }
        assert_int_equal(n, 0);
        if (st == TLS_READ_ERROR) {
            const char *why = tls_conn_error(p->srv);
            assert_non_null(why);
            assert_true(why[0] != '\0');
            assert_string_not_equal(why, "unknown TLS error");
        }
        p->status = st;
        return;
    }
}

/* server_feed - hand ciphertext to the server (in feed_step pieces, reading after each). */
static void server_feed(struct peer *p, const char *data, size_t len)
{
    size_t step = p->feed_step != 0 ? p->feed_step : len;
    while (len > 0) {
        size_t n = len < step ? len : step;
        assert_int_equal(tls_conn_feed(p->srv, data, n), 0);
        data += n;
        len -= n;
        server_read(p);
    }
}

/* to_server - move what the client wrote to the server and let it read; bytes moved. */
static size_t to_server(struct peer *p)
{
    static char chunk[CHUNK];
    size_t moved = 0;
    int n;
    while ((n = BIO_read(p->out, chunk, (int)sizeof(chunk))) > 0) {
        server_feed(p, chunk, (size_t)n);
        moved += (size_t)n;
    }
    if (moved == 0)
        server_read(p);
    return moved;
}

/* to_client - move what the server produced to the client's read BIO; bytes moved. */
static size_t to_client(struct peer *p)
{
    struct buf b = {0};
    assert_int_equal(tls_conn_take(p->srv, &b), 0);
    size_t moved = b.len;
    if (b.len > 0)
        assert_int_equal(BIO_write(p->in, b.data, (int)b.len), (int)b.len);
    buf_free(&b);
    return moved;
}

/* client_failed - record the client's OpenSSL error after a failed call. */
static void client_failed(struct peer *p)
{
    p->client_error = ERR_peek_error();
    ERR_clear_error();
}

/* handshake - run both sides until the client and the server are done (1), one of them
 * failed (-1) or nothing moves any more (0). */
static int handshake(struct peer *p)
{
    for (int round = 0; round < HANDSHAKE_ROUNDS; round++) {
        int r = SSL_do_handshake(p->ssl);
        if (r != 1) {
            int e = SSL_get_error(p->ssl, r);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                client_failed(p);
                return -1;
            }
        }
        size_t moved = to_server(p);
        moved += to_client(p);
        if (r == 1 && tls_conn_established(p->srv))
            return 1;
        if (p->status == TLS_READ_ERROR && moved == 0)
            return -1;
        if (moved == 0 && r != 1)
            return 0;
    }
    return 0;
}

/* handshake_ok - the handshake must complete with nothing left over. */
static void handshake_ok(struct peer *p)
{
    int r = handshake(p);
    if (r != 1)
        print_message("  handshake %d, server: %s, client: %s\n", r,
                      p->status == TLS_READ_ERROR ? tls_conn_error(p->srv) : "-",
                      p->client_error != 0 ? ERR_reason_error_string(p->client_error) : "-");
    assert_int_equal(r, 1);
    assert_true(tls_conn_established(p->srv));
    assert_int_equal(p->status, TLS_READ_AGAIN);
    assert_int_equal(p->got.len, 0);
}

/* handshake_refused - the handshake must fail: the server reports an error and the alert
 * it queued makes the client fail with reason (0: any). */
static void handshake_refused(struct peer *p, int reason)
{
    assert_int_equal(handshake(p), -1);
    assert_int_equal(p->status, TLS_READ_ERROR);
    assert_false(tls_conn_established(p->srv));
    assert_true(p->client_error != 0);
    if (reason != 0) {
        if (ERR_GET_REASON(p->client_error) != reason)
            print_message("  client: %s\n", ERR_reason_error_string(p->client_error));
        assert_int_equal(ERR_GET_REASON(p->client_error), reason);
    }
    /* The failure stays: more reads say the same and produce no plaintext. */
    server_read(p);
    assert_int_equal(p->status, TLS_READ_ERROR);
    assert_int_equal(p->got.len, 0);
    assert_int_equal(tls_conn_write(p->srv, "x", 1), SH_EIO);
    assert_null(tls_conn_info(p->srv)->version);
}

/* client_send - the client encrypts data; the server reads it. */
static void client_send(struct peer *p, const char *data, size_t len)
{
    while (len > 0) {
        int n = len > INT_MAX ? INT_MAX : (int)len;
        int w = SSL_write(p->ssl, data, n);
        assert_true(w > 0);
        data += w;
        len -= (size_t)w;
    }
    to_server(p);
}

/* client_recv - move the server's output to the client and read all it can into out (may
 * be NULL to discard); the SSL_get_error of the read that stopped. */
static int client_recv(struct peer *p, struct buf *out)
{
    static char chunk[CHUNK];
    to_client(p);
    for (;;) {
        int r = SSL_read(p->ssl, chunk, (int)sizeof(chunk));
        if (r > 0) {
            if (out != NULL)
                assert_int_equal(buf_append(out, chunk, (size_t)r), 0);
            continue;
        }
        int e = SSL_get_error(p->ssl, r);
        if (e != SSL_ERROR_WANT_READ)
            client_failed(p);
        return e;
    }
}

/* pattern - deterministic bytes with every value, NUL, CR, LF and 8-bit included. */
static void pattern(char *dst, size_t len, unsigned seed)
{
    uint32_t x = seed * 2654435761u + 1u;
    for (size_t i = 0; i < len; i++) {
        x = x * 1103515245u + 12345u;
        dst[i] = (char)(unsigned char)(x >> 16);
    }
}

/* exchange - data both ways, byte-exact: a command line, every byte value, a big payload. */
static void exchange(struct peer *p)
{
    buf_reset(&p->got);
    client_send(p, "EHLO client.test\r\n", 18);
    assert_int_equal(p->status, TLS_READ_AGAIN);
    assert_int_equal(p->got.len, 18);
    assert_memory_equal(p->got.data, "EHLO client.test\r\n", 18);

    char all[256];
    for (size_t i = 0; i < sizeof(all); i++)
        all[i] = (char)(unsigned char)i;
    buf_reset(&p->got);
    client_send(p, all, sizeof(all));
    assert_int_equal(p->got.len, sizeof(all));
    assert_memory_equal(p->got.data, all, sizeof(all));

    char *big = malloc(BIG_PAYLOAD);
    assert_non_null(big);
    pattern(big, BIG_PAYLOAD, 7);
    buf_reset(&p->got);
    client_send(p, big, BIG_PAYLOAD);
    assert_int_equal(p->status, TLS_READ_AGAIN); /* drained */
    assert_int_equal(p->got.len, BIG_PAYLOAD);
    assert_memory_equal(p->got.data, big, BIG_PAYLOAD);

    struct buf seen = {0};
    assert_int_equal(tls_conn_write(p->srv, "250 ok\r\n", 8), 0);
    assert_int_equal(tls_conn_write(p->srv, all, sizeof(all)), 0);
    pattern(big, BIG_PAYLOAD, 8);
    assert_int_equal(tls_conn_write(p->srv, big, BIG_PAYLOAD), 0);
    assert_int_equal(client_recv(p, &seen), SSL_ERROR_WANT_READ);
    assert_int_equal(seen.len, 8 + sizeof(all) + BIG_PAYLOAD);
    assert_memory_equal(seen.data, "250 ok\r\n", 8);
    assert_memory_equal(seen.data + 8, all, sizeof(all));
    assert_memory_equal(seen.data + 8 + sizeof(all), big, BIG_PAYLOAD);
    buf_free(&seen);
    free(big);
    buf_reset(&p->got);
}

/* check_info - version and cipher reported by the server agree with the client's. */
static const struct envelope_tls *check_info(const struct peer *p, const char *version)
{
    const struct envelope_tls *info = tls_conn_info(p->srv);
    assert_non_null(info);
    assert_non_null(info->version);
    assert_non_null(info->cipher);
    assert_string_equal(info->version, version);
    assert_string_equal(info->version, SSL_get_version(p->ssl));
    assert_string_equal(info->cipher, SSL_CIPHER_get_name(SSL_get_current_cipher(p->ssl)));
    return info;
}

/* peer_cert_is - the certificate the client received is want. */
static void peer_cert_is(const struct peer *p, X509 *want)
{
    X509 *got = SSL_get0_peer_certificate(p->ssl);
    assert_non_null(got);
    if (X509_cmp(got, want) != 0) {
        char name[256];
        X509_NAME_oneline(X509_get_subject_name(got), name, sizeof(name));
        print_message("  client got %s\n", name);
    }
    assert_int_equal(X509_cmp(got, want), 0);
}

/* sha256_hex - X509_digest SHA-256 of x as 64 lower-case hex digits. */
static void sha256_hex(X509 *x, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    assert_int_equal(X509_digest(x, EVP_sha256(), md, &len), 1);
    assert_int_equal(len, 32);
    for (unsigned i = 0; i < len; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* three_certs - the usual configuration: a (the default), b and the wildcard c. */
static struct config_tls three_certs(struct config_certificate cc[3])
{
    cc[0] = (struct config_certificate){pki.a_crt, pki.a_key_f};
    cc[1] = (struct config_certificate){pki.b_crt, pki.b_key_f};
    cc[2] = (struct config_certificate){pki.c_crt, pki.c_key_f};
    return (struct config_tls){.certificates = cc, .n_certificates = 3};
}

/* ---- handshakes and data ---- */

static void test_tls13_handshake_and_data(void **state)
{
    (void)state;
    struct config_certificate cc[3];
    struct config_tls cfg = three_certs(cc);
    struct tls_server *ts = server_ok(&cfg);
    struct peer p;
    peer_init(&p, ts, &(struct client_opts){0});

    /* Before the handshake: nothing known, nothing to read, no writing. */
    assert_false(tls_conn_established(p.srv));
    const struct envelope_tls *info = tls_conn_info(p.srv);
    assert_null(info->version);
    assert_null(info->cipher);
    assert_null(info->sni);
    assert_null(info->peer_subject);
    assert_null(info->peer_sha256);
    server_read(&p);
    assert_int_equal(p.status, TLS_READ_AGAIN);

    handshake_ok(&p);
    assert_int_equal(SSL_version(p.ssl), TLS1_3_VERSION);
    info = check_info(&p, "TLSv1.3");
    /* The server's preference among OpenSSL's default suites (SSL_OP_CIPHER_SERVER_PREFERENCE). */
    assert_string_equal(info->cipher, "TLS_AES_256_GCM_SHA384");
    assert_null(info->sni);
    assert_null(info->peer_subject);
    assert_null(info->peer_sha256);
    peer_cert_is(&p, pki.a);
    /* The file holds the leaf and the CA: both are sent. */
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(p.ssl);
    assert_non_null(chain);
    assert_int_equal(sk_X509_num(chain), 2);
    assert_int_equal(X509_cmp(sk_X509_value(chain, 1), pki.ca), 0);

    exchange(&p);
    /* Drained: one more read has nothing. */
    server_read(&p);
    assert_int_equal(p.status, TLS_READ_AGAIN);
    assert_int_equal(p.got.len, 0);
    /* A second round on the same connection still works. */
    exchange(&p);
    peer_free(&p);
    tls_server_free(ts);
}

static void test_tls12_handshake_and_data(void **state)
{
    (void)state;
    struct config_certificate cc[3];
    struct config_tls cfg = three_certs(cc);
    struct tls_server *ts = server_ok(&cfg);
    struct peer p;
    peer_init(&p, ts, &(struct client_opts){.max_version = TLS1_2_VERSION});
    handshake_ok(&p);
    assert_int_equal(SSL_version(p.ssl), TLS1_2_VERSION);
    const struct envelope_tls *info = check_info(&p, "TLSv1.2");
    /* ECDSA certificate, forward secrecy, AEAD first in OpenSSL's default order. */
    assert_string_equal(info->cipher, "ECDHE-ECDSA-AES256-GCM-SHA384");
    assert_null(info->sni);
    peer_cert_is(&p, pki.a);
    exchange(&p);
    peer_free(&p);
    tls_server_free(ts);
}

static void test_small_read_cap(void **state)
{
    (void)state;
    struct tls_server *ts = server_a();
    struct peer p;
    peer_init(&p, ts, &(struct client_opts){0});
    handshake_ok(&p);
    /* A record larger than the caller's buffer comes out in pieces of at most cap bytes. */
    p.read_cap = 7;
    char data[1000];
    pattern(data, sizeof(data), 3);
    client_send(&p, data, sizeof(data));
    assert_int_equal(p.status, TLS_READ_AGAIN);
    assert_int_equal(p.got.len, sizeof(data));
    assert_memory_equal(p.got.data, data, sizeof(data));
    buf_reset(&p.got);
    p.read_cap = 1;
    client_send(&p, "QUIT\r\n", 6);
    assert_int_equal(p.got.len, 6);
    assert_memory_equal(p.got.data, "QUIT\r\n", 6);
    peer_free(&p);
    tls_server_free(ts);
}

static void test_one_byte_feeds(void **state)
{
    (void)state;
    struct tls_server *ts = server_a();
    struct peer p;
    peer_init(&p, ts, &(struct client_opts){.sni = "a.test"});

    /* The ClientHello one byte at a time: the server waits, says nothing, until the last. */
    assert_int_equal(SSL_do_handshake(p.ssl), -1);
    char *hello = NULL;
    long len = BIO_get_mem_data(p.out, &hello);
    assert_true(len > 100);
    struct buf none = {0};
    for (long i = 0; i < len - 1; i++) {
        assert_int_equal(tls_conn_feed(p.srv, hello + i, 1), 0);
        server_read(&p);
        assert_int_equal(p.status, TLS_READ_AGAIN);
        assert_int_equal(tls_conn_take(p.srv, &none), 0);
        assert_int_equal(none.len, 0);
    }
    assert_int_equal(tls_conn_feed(p.srv, hello + len - 1, 1), 0);
    server_read(&p);
    assert_int_equal(p.status, TLS_READ_AGAIN);
    assert_int_equal(tls_conn_take(p.srv, &none), 0);
    assert_true(none.len > 0); /* ServerHello and the rest of the server's flight */
    assert_int_equal(BIO_write(p.in, none.data, (int)none.len), (int)none.len);
    buf_free(&none);
    assert_int_equal(BIO_reset(p.out), 1);

    /* The rest of the handshake and the data one byte at a time as well. */
    p.feed_step = 1;
    handshake_ok(&p);
    assert_string_equal(tls_conn_info(p.srv)->sni, "a.test");
    exchange(&p);
    peer_free(&p);

    /* The same with TLS 1.2, whose handshake has a second client flight. */
    peer_init(&p, ts, &(struct client_opts){.max_version = TLS1_2_VERSION});
    p.feed_step = 1;
    handshake_ok(&p);
    check_info(&p, "TLSv1.2");
    client_send(&p, "NOOP\r\n", 6);
    assert_int_equal(p.got.len, 6);
    assert_memory_equal(p.got.data, "NOOP\r\n", 6);
    peer_free(&p);
    tls_server_free(ts);
}

static void test_write_before_handshake(void **state)
{
    (void)state;
    struct tls_server *ts = server_a();
    struct tls_conn *t = NULL;
    assert_int_equal(tls_conn_new(ts, &t), 0);
    assert_int_equal(tls_conn_write(t, "220 hello\r\n", 11), SH_EIO);
    /* Nothing was produced, and a shutdown before the handshake queues nothing either. */
    tls_conn_shutdown(t);
    struct buf out = {0};
    assert_int_equal(tls_conn_take(t, &out), 0);
    assert_int_equal(out.len, 0);
    assert_false(tls_conn_established(t));
    tls_conn_free(t);
    tls_conn_free(NULL);

    /* Half-way through the handshake (ClientHello answered, Finished not yet seen). */
    struct peer p;
    peer_init(&p, ts, &(struct client_opts){0});
    assert_int_equal(SSL_do_handshake(p.ssl), -1);
    to_server(&p);
    assert_int_equal(p.status, TLS_READ_AGAIN);
    assert_false(tls_conn_established(p.srv));
    assert_int_equal(tls_conn_write(p.srv, "220 hello\r\n", 11), SH_EIO);
    assert_int_equal(ERR_peek_error(), 0);
    /* The handshake still completes after the refused write. */
    handshake_ok(&p);
    exchange(&p);
    peer_free(&p);
    tls_server_free(ts);
}

static void test_key_update(void **state)
{
    (void)state;
    struct tls_server *ts = server_a();
    struct peer p;
    peer_init(&p, ts, &(struct client_opts){0});
    handshake_ok(&p);
    /* TLS 1.3 KeyUpdate (RFC 8446 §4.6.3): the client rekeys and asks the server to rekey
     * too. The server handles it inside tls_conn_read and answers with its next record. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(SSL_key_update(p.ssl, SSL_KEY_UPDATE_REQUESTED), 1);
        buf_reset(&p.got);
        client_send(&p, "NOOP\r\n", 6);
        assert_int_equal(p.status, TLS_READ_AGAIN);
        assert_int_equal(p.got.len, 6);
        assert_memory_equal(p.got.data, "NOOP\r\n", 6);
        assert_int_equal(tls_conn_write(p.srv, "250 ok\r\n", 8), 0);
        struct buf seen = {0};
        assert_int_equal(client_recv(&p, &seen), SSL_ERROR_WANT_READ);
        assert_int_equal(seen.len, 8);
        assert_memory_equal(seen.data, "250 ok\r\n", 8);
        buf_free(&seen);
    }
    exchange(&p);
    peer_free(&p);
    tls_server_free(ts);
}

static void test_no_renegotiation(void **state)
{
    (void)state;
    struct tls_server *ts = server_a();
    struct peer p;
    peer_init(&p, ts, &(struct client_opts){.max_version = TLS1_2_VERSION});
    handshake_ok(&p);
    client_send(&p, "EHLO x\r\n", 8);
    assert_int_equal(p.got.len, 8);
    /* A TLS 1.2 client asks for a new handshake: the server declines (a no_renegotiation
     * alert, RFC 5246 §7.2.2), returns no data, and the connection stays established. */
    assert_int_equal(SSL_renegotiate(p.ssl), 1);
    assert_int_equal(SSL_do_handshake(p.ssl), -1);
    to_server(&p);
    assert_int_equal(p.status, TLS_READ_AGAIN);
    assert_int_equal(p.got.len, 8);
    assert_true(tls_conn_established(p.srv));
    check_info(&p, "TLSv1.2");
    /* The client gives up on the alert; the server did not start a handshake. */
    to_client(&p);
    assert_int_equal(SSL_do_handshake(p.ssl), -1);
    client_failed(&p);
    assert_int_equal(ERR_GET_REASON(p.client_error), SSL_R_NO_RENEGOTIATION);
    assert_int_equal(tls_conn_write(p.srv, "250 ok\r\n", 8), 0);
    peer_free(&p);
    tls_server_free(ts);
}

/* ---- protocol floor, ciphers and groups ---- */

static void test_min_version_tls13(void **state)
{
    (void)state;
    struct config_certificate cc[] = {{pki.a_crt, pki.a_key_f}};
    char v13[] = "TLSv1.3";
    struct config_tls cfg = {.certificates = cc, .n_certificates = 1, .min_version = v13};
    struct tls_server *ts = server_ok(&cfg);
    struct peer p;
    peer_init(&p, ts, &(struct client_opts){.max_version = TLS1_2_VERSION});
    handshake_refused(&p, SSL_R_TLSV1_ALERT_PROTOCOL_VERSION);
    peer_free(&p);
    /* A TLS 1.3 client is welcome. */
    peer_init(&p, ts, &(struct client_opts){0});
    handshake_ok(&p);
    check_info(&p, "TLSv1.3");
    peer_free(&p);
    tls_server_free(ts);

    /* "TLSv1.2" spelled out allows TLS 1.2. */
    char v12[] = "TLSv1.2";
    cfg.min_version = v12;
    ts = server_ok(&cfg);
    peer_init(&p, ts, &(struct client_opts){.max_version = TLS1_2_VERSION});
    handshake_ok(&p);
    check_info(&p, "TLSv1.2");
    peer_free(&p);
    tls_server_free(ts);
}

static void test_tls11_refused(void **state)
{
    (void)state;
    struct tls_server *ts = server_a();
    struct peer p;
    peer_init(&p, ts,
              &(struct client_opts){
                  .legacy = true, .min_version = TLS1_1_VERSION, .max_version = TLS1_1_VERSION});
    handshake_refused(&p, SSL_R_TLSV1_ALERT_PROTOCOL_VERSION);
    peer_free(&p);
    /* TLS 1.0 as well. */
    peer_init(&p, ts,
              &(struct client_opts){
                  .legacy = true, .min_version = TLS1_VERSION, .max_version = TLS1_VERSION});
    handshake_refused(&p, SSL_R_TLSV1_ALERT_PROTOCOL_VERSION);
    peer_free(&p);
    tls_server_free(ts);
}

static void test_ciphers_and_groups(void **state)
{
    (void)state;
    struct config_certificate cc[3];
    struct config_tls cfg = three_certs(cc);
    char ciphers[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305";
    char suites[] = "TLS_CHACHA20_POLY1305_SHA256";
    char groups[] = "P-384";
    cfg.ciphers = ciphers;
    cfg.ciphersuites = suites;
    cfg.groups = groups;
    struct tls_server *ts = server_ok(&cfg);
    struct peer p;

    peer_init(&p, ts, &(struct client_opts){0});
    /* The client's first key share (X25519) is not allowed: a HelloRetryRequest asks for
     * P-384 (RFC 8446 §4.1.4), and the certificate is chosen again for the second hello. */
    handshake_ok(&p);
    const struct envelope_tls *info = check_info(&p, "TLSv1.3");
    assert_string_equal(info->cipher, "TLS_CHACHA20_POLY1305_SHA256");
    assert_int_equal(SSL_get_negotiated_group(p.ssl), NID_secp384r1);
    peer_cert_is(&p, pki.a);
    exchange(&p);
    peer_free(&p);

    peer_init(&p, ts, &(struct client_opts){.sni = "b.test"});
    handshake_ok(&p);
    peer_cert_is(&p, pki.b);
    assert_string_equal(tls_conn_info(p.srv)->sni, "b.test");
    peer_free(&p);

    /* TLS 1.2: the cipher list decides, and the certificate type picks within it. */
    peer_init(&p, ts, &(struct client_opts){.max_version = TLS1_2_VERSION});
    handshake_ok(&p);
    info = check_info(&p, "TLSv1.2");
    assert_string_equal(info->cipher, "ECDHE-ECDSA-AES128-GCM-SHA256");
    peer_free(&p);
    peer_init(&p, ts, &(struct client_opts){.max_version = TLS1_2_VERSION, .sni = "b.test"});
    handshake_ok(&p);
    info = check_info(&p, "TLSv1.2");
    assert_string_equal(info->cipher, "ECDHE-RSA-CHACHA20-POLY1305");
    peer_cert_is(&p, pki.b);
    peer_free(&p);
    tls_server_free(ts);
}

/* ---- SNI ---- */

/* sni_case - a client sending sni (NULL: none) gets want; info.sni is sni when sent. */
static void sni_case(struct tls_server *ts, const char *sni, X509 *want, bool name_matches,
                     int max_version)
{
    struct peer p;
    peer_init(
        &p, ts,
        &(struct client_opts){.sni = sni, .verify = name_matches, .max_version = max_version});
    handshake_ok(&p);
    peer_cert_is(&p, want);
    if (name_matches) /* the chain verifies against the test CA for the name asked */
        assert_int_equal(SSL_get_verify_result(p.ssl), X509_V_OK);
    const struct envelope_tls *info = tls_conn_info(p.srv);
    if (sni == NULL)
        assert_null(info->sni);
    else {
        assert_non_null(info->sni);
        assert_string_equal(info->sni, sni);
    }
    client_send(&p, "HELO x\r\n", 8);
    assert_int_equal(p.got.len, 8);
    peer_free(&p);
}

static void test_sni(void **state)
{
    (void)state;
    struct config_certificate cc[3];
    struct config_tls cfg = three_certs(cc);
    struct tls_server *ts = server_ok(&cfg);
    int versions[] = {0, TLS1_2_VERSION};
    for (size_t i = 0; i < 2; i++) {
        int v = versions[i];
        sni_case(ts, "b.test", pki.b, true, v);
        sni_case(ts, "a.test", pki.a, true, v);
        sni_case(ts, "x.c.test", pki.c, true, v);
        /* DNS names compare without regard to case (RFC 4343). */
        sni_case(ts, "B.Test", pki.b, true, v);
        /* A wildcard covers exactly one label (RFC 6125 §6.4.3). */
        sni_case(ts, "c.test", pki.a, false, v);
        sni_case(ts, "y.x.c.test", pki.a, false, v);
        /* Unknown names and no name get the default. */
        sni_case(ts, "unknown.test", pki.a, false, v);
        sni_case(ts, "a.b.test", pki.a, false, v);
        sni_case(ts, NULL, pki.a, false, v);
    }
    /* A name with a control byte is matched against nothing and not reported (the
     * envelope's strings are printable ASCII). */
    struct peer p;
    peer_init(&p, ts, &(struct client_opts){.sni = "b.te\x01st"});
    handshake_ok(&p);
    peer_cert_is(&p, pki.a);
    assert_null(tls_conn_info(p.srv)->sni);
    peer_free(&p);
    /* The longest DNS name (255 bytes, RFC 1035 §2.3.4) is reported whole. */
    char longest[256];
    memset(longest, 'x', 255);
    for (size_t i = 63; i < 255; i += 64)
        longest[i] = '.';
    longest[255] = '\0';
    peer_init(&p, ts, &(struct client_opts){.sni = longest});
    handshake_ok(&p);
    assert_non_null(tls_conn_info(p.srv)->sni);
    assert_string_equal(tls_conn_info(p.srv)->sni, longest);
    peer_free(&p);
    tls_server_free(ts);

    /* The default is the first certificate, whichever it is. */
    struct config_certificate cc2[] = {{pki.c_crt, pki.c_key_f}, {pki.b_crt, pki.b_key_f}};
    cfg.certificates = cc2;
    cfg.n_certificates = 2;
    ts = server_ok(&cfg);
    sni_case(ts, NULL, pki.c, false, 0);
    sni_case(ts, "a.test", pki.c, false, 0);
    sni_case(ts, "b.test", pki.b, true, 0);
    tls_server_free(ts);
}

/* ---- client certificates ---- */

static unsigned cert_requests; /* CertificateRequests seen by clients without a certificate */

/* count_request - client certificate callback: note that the server asked, send none. */
static int count_request(SSL *ssl, X509 **x509, EVP_PKEY **pkey)
{
    (void)ssl;
    (void)x509;
    (void)pkey;
    cert_requests++;
    return 0;
}

/* client_cert_case - handshake with the given client certificate (NULL: none) against ts;
 * check the reported subject and fingerprint (NULL: none reported). */
static void client_cert_case(struct tls_server *ts, X509 *cert, int max_version,
                             const char *subject, bool fingerprint)
{
    struct peer p;
    peer_init(
        &p, ts,
        &(struct client_opts){.cert = cert, .key = pki.client_key, .max_version = max_version});
    /* Called only when the server sends a CertificateRequest and no certificate is set. */
    SSL_CTX_set_client_cert_cb(p.ctx, count_request);
    handshake_ok(&p);
    const struct envelope_tls *info = tls_conn_info(p.srv);
    if (subject == NULL)
        assert_null(info->peer_subject);
    else {
        assert_non_null(info->peer_subject);
        assert_string_equal(info->peer_subject, subject);
    }
    if (!fingerprint)
        assert_null(info->peer_sha256);
    else {
        char want[65];
        sha256_hex(cert, want);
        assert_non_null(info->peer_sha256);
        assert_int_equal(strlen(info->peer_sha256), 64);
        for (size_t i = 0; i < 64; i++)
            assert_non_null(strchr("0123456789abcdef", info->peer_sha256[i]));
        assert_string_equal(info->peer_sha256, want);
    }
    exchange(&p);
    peer_free(&p);
}

static void test_client_certificate(void **state)
{
    (void)state;
    struct config_certificate cc[] = {{pki.a_crt, pki.a_key_f}};
    struct config_tls cfg = {.certificates = cc, .n_certificates = 1, .request_client_cert = true};
    struct tls_server *ts = server_ok(&cfg);
    /* Presented: reported though no CA vouches for it (asked for, not verified). */
    client_cert_case(ts, pki.client, 0, "CN=printer,O=Acme", true);
    client_cert_case(ts, pki.client, TLS1_2_VERSION, "CN=printer,O=Acme", true);
    /* Not presented: the handshake still completes, nothing reported. */
    cert_requests = 0;
    client_cert_case(ts, NULL, 0, NULL, false);
    assert_int_equal(cert_requests, 1);
    client_cert_case(ts, NULL, TLS1_2_VERSION, NULL, false);
    assert_int_equal(cert_requests, 2);
    /* Non-ASCII in the subject: RFC 2253 §2.4 escapes each UTF-8 byte as \XX, so the text
     * stays printable ASCII and is still reported. */
    client_cert_case(ts, pki.client_utf8, 0, "CN=Drucker M\\C3\\BCller,O=Acme", true);
    tls_server_free(ts);

    /* Not requested: a client with a certificate does not send it. */
    cfg.request_client_cert = false;
    ts = server_ok(&cfg);
    client_cert_case(ts, pki.client, 0, NULL, false);
    client_cert_case(ts, pki.client, TLS1_2_VERSION, NULL, false);
    cert_requests = 0;
    client_cert_case(ts, NULL, 0, NULL, false);
    client_cert_case(ts, NULL, TLS1_2_VERSION, NULL, false);
    assert_int_equal(cert_requests, 0); /* never asked */
    tls_server_free(ts);
}

/* ---- configuration errors ---- */

static void test_server_new_errors(void **state)
{
    (void)state;
    struct config_certificate cc[2];
    struct config_tls cfg = {.certificates = cc, .n_certificates = 1};

    /* No certificate at all. */
    cfg.n_certificates = 0;
    server_err(&cfg, "tls.certificates", "no certificate");
    cfg.n_certificates = 1;

    /* Missing files, named by key and path. */
    cc[0] = (struct config_certificate){pki.missing, pki.a_key_f};
    server_err(&cfg, "tls.certificates[0].cert", pki.missing);
    cc[0] = (struct config_certificate){pki.a_crt, pki.missing};
    server_err(&cfg, "tls.certificates[0].key", pki.missing);
    cc[0] = (struct config_certificate){pki.a_crt, pki.a_key_f};
    cc[1] = (struct config_certificate){pki.missing, pki.b_key_f};
    cfg.n_certificates = 2;
    server_err(&cfg, "tls.certificates[1].cert", pki.missing);
    cfg.n_certificates = 1;

    /* A key that belongs to another certificate. */
    cc[0] = (struct config_certificate){pki.a_crt, pki.b_key_f};
    server_err(&cfg, "tls.certificates[0].key", "does not match");
    cc[0] = (struct config_certificate){pki.a_crt, pki.c_key_f};
    server_err(&cfg, "tls.certificates[0].key", "does not match");

    /* Expired. */
    cc[0] = (struct config_certificate){pki.expired, pki.a_key_f};
    server_err(&cfg, "tls.certificates[0].cert", "expired");

    /* Not PEM, a broken chain, a key file that is no key, an encrypted key. */
    cc[0] = (struct config_certificate){pki.garbage, pki.a_key_f};
    server_err(&cfg, "tls.certificates[0].cert", pki.garbage);
    cc[0] = (struct config_certificate){pki.broken, pki.a_key_f};
    server_err(&cfg, "tls.certificates[0].cert", "chain");
    cc[0] = (struct config_certificate){pki.a_crt, pki.garbage};
    server_err(&cfg, "tls.certificates[0].key", pki.garbage);
    cc[0] = (struct config_certificate){pki.a_crt, pki.a_crt};
    server_err(&cfg, "tls.certificates[0].key", pki.a_crt);
    cc[0] = (struct config_certificate){pki.a_crt, pki.enc_key};
    server_err(&cfg, "tls.certificates[0].key", "encrypted");

    /* Bad settings with good certificates. */
    cc[0] = (struct config_certificate){pki.a_crt, pki.a_key_f};
    char bad_ciphers[] = "NO-SUCH-CIPHER:ALSO-NOT";
    cfg.ciphers = bad_ciphers;
    server_err(&cfg, "tls.ciphers", NULL);
    cfg.ciphers = NULL;
    char bad_suites[] = "TLS_NO_SUCH_SUITE";
    cfg.ciphersuites = bad_suites;
    server_err(&cfg, "tls.ciphersuites", NULL);
    cfg.ciphersuites = NULL;
    char bad_groups[] = "P-256:nosuchcurve";
    cfg.groups = bad_groups;
    server_err(&cfg, "tls.groups", NULL);
    cfg.groups = NULL;

    /* What does load: a certificate and its key in one file, a certificate that is not yet
     * valid (a warning only: the clock may be off). */
    cc[0] = (struct config_certificate){pki.combined, pki.combined};
    struct tls_server *ts = server_ok(&cfg);
    struct peer p;
    peer_init(&p, ts, &(struct client_opts){0});
    handshake_ok(&p);
    peer_cert_is(&p, pki.a);
    peer_free(&p);
    tls_server_free(ts);
    cc[0] = (struct config_certificate){pki.future, pki.a_key_f};
    ts = server_ok(&cfg);
    tls_server_free(ts);
    tls_server_free(NULL);
}

/* ---- reload ---- */

/* new_handshake_gets - a new handshake on ts with the SNI a.test gets want. */
static void new_handshake_gets(struct tls_server *ts, X509 *want)
{
    struct peer p;
    peer_init(&p, ts, &(struct client_opts){.sni = "a.test", .verify = true});
    handshake_ok(&p);
    peer_cert_is(&p, want);
    assert_int_equal(SSL_get_verify_result(p.ssl), X509_V_OK);
    client_send(&p, "RSET\r\n", 6);
    assert_int_equal(p.got.len, 6);
    peer_free(&p);
}

static void test_reload(void **state)
{
    (void)state;
    struct config_certificate cc[] = {{pki.a_crt, pki.a_key_f}, {pki.b_crt, pki.b_key_f}};
    struct config_tls cfg = {.certificates = cc, .n_certificates = 2};
    struct tls_server *ts = server_ok(&cfg);

    /* One connection established, one half-way (its ClientHello answered), before the reload. */
    struct peer before, half;
    peer_init(&before, ts, &(struct client_opts){.sni = "a.test"});
    handshake_ok(&before);
    peer_cert_is(&before, pki.a);
    peer_init(&half, ts, &(struct client_opts){.sni = "a.test"});
    assert_int_equal(SSL_do_handshake(half.ssl), -1);
    to_server(&half);
    to_client(&half);
    assert_false(tls_conn_established(half.srv));

    char err[ERR_LEN] = "";
    cc[0] = (struct config_certificate){pki.a2_crt, pki.a2_key_f};
    assert_int_equal(tls_server_reload(ts, &cfg, err, sizeof(err)), 0);
    assert_int_equal(ERR_peek_error(), 0);

    /* The old connections keep their certificate (the old set is freed by now). */
    exchange(&before);
    handshake_ok(&half);
    peer_cert_is(&half, pki.a);
    exchange(&half);
    /* New handshakes get the new one; the other names are still served. */
    new_handshake_gets(ts, pki.a2);
    struct peer p;
    peer_init(&p, ts, &(struct client_opts){.sni = "b.test"});
    handshake_ok(&p);
    peer_cert_is(&p, pki.b);
    peer_free(&p);

    /* A broken reload fails with a message and changes nothing. */
    cc[0] = (struct config_certificate){pki.garbage, pki.a_key_f};
    err[0] = '\0';
    assert_int_equal(tls_server_reload(ts, &cfg, err, sizeof(err)), SH_ECONFIG);
    assert_non_null(strstr(err, "tls.certificates[0].cert"));
    assert_int_equal(ERR_peek_error(), 0);
    new_handshake_gets(ts, pki.a2);
    cc[0] = (struct config_certificate){pki.a_crt, pki.a_key_f};
    cc[1] = (struct config_certificate){pki.expired, pki.a_key_f};
    err[0] = '\0';
    assert_int_equal(tls_server_reload(ts, &cfg, err, sizeof(err)), SH_ECONFIG);
    assert_non_null(strstr(err, "tls.certificates[1].cert"));
    assert_non_null(strstr(err, "expired"));
    new_handshake_gets(ts, pki.a2);
    cc[1] = (struct config_certificate){pki.b_crt, pki.missing};
    assert_int_equal(tls_server_reload(ts, &cfg, err, sizeof(err)), SH_ECONFIG);
    assert_non_null(strstr(err, pki.missing));
    new_handshake_gets(ts, pki.a2);
    exchange(&before);

    /* And back again. */
    cc[1] = (struct config_certificate){pki.b_crt, pki.b_key_f};
    assert_int_equal(tls_server_reload(ts, &cfg, err, sizeof(err)), 0);
    new_handshake_gets(ts, pki.a);

    peer_free(&before);
    peer_free(&half);
    tls_server_free(ts);
}

static void test_server_freed_before_connections(void **state)
{
    (void)state;
    struct tls_server *ts = server_a();
    struct peer done, waiting;
    peer_init(&done, ts, &(struct client_opts){0});
    handshake_ok(&done);
    peer_init(&waiting, ts, &(struct client_opts){.sni = "a.test"});
    /* tls.h: "connections still open keep what they use". */
    tls_server_free(ts);
    exchange(&done);
    handshake_ok(&waiting);
    peer_cert_is(&waiting, pki.a);
    exchange(&waiting);
    peer_free(&done);
    peer_free(&waiting);
}

/* ---- session resumption ---- */

/* first_session - a full handshake with opts; the session the client may resume. */
static SSL_SESSION *first_session(struct tls_server *ts, const struct client_opts *o)
{
    struct peer p;
    peer_init(&p, ts, o);
    handshake_ok(&p);
    assert_int_equal(SSL_session_reused(p.ssl), 0);
    client_send(&p, "EHLO x\r\n", 8);
    assert_int_equal(tls_conn_write(p.srv, "250 ok\r\n", 8), 0);
    /* TLS 1.3 tickets arrive after the handshake (RFC 8446 §4.6.1): the client reads them. */
    struct buf seen = {0};
    assert_int_equal(client_recv(&p, &seen), SSL_ERROR_WANT_READ);
    assert_int_equal(seen.len, 8);
    buf_free(&seen);
    SSL_SESSION *s = SSL_get1_session(p.ssl);
    assert_non_null(s);
    assert_int_equal(SSL_SESSION_is_resumable(s), 1);
    /* Closed as after QUIT: the server's close_notify, then the client's. OpenSSL forgets
     * the session of an SSL freed without having sent close_notify, on both sides. */
    tls_conn_shutdown(p.srv);
    assert_int_equal(client_recv(&p, NULL), SSL_ERROR_ZERO_RETURN);
    assert_int_equal(SSL_shutdown(p.ssl), 1);
    to_server(&p);
    assert_int_equal(p.status, TLS_READ_CLOSED);
    peer_free(&p);
    return s;
}

/* resumed - a second connection with the session resumes it; the server's info is
 * complete. */
static void resumed(struct tls_server *ts, struct client_opts o, const char *version,
                    const char *subject)
{
    SSL_SESSION *s = first_session(ts, &o);
    o.session = s;
    struct peer p;
    peer_init(&p, ts, &o);
    handshake_ok(&p);
    if (SSL_session_reused(p.ssl) != 1)
        print_message("  not resumed: %s, sni %s, tickets %s, client certificate %s\n", version,
                      o.sni != NULL ? o.sni : "-", o.no_ticket ? "no" : "yes",
                      o.cert != NULL ? "yes" : "no");
    assert_int_equal(SSL_session_reused(p.ssl), 1);
    const struct envelope_tls *info = check_info(&p, version);
    if (o.sni != NULL)
        assert_string_equal(info->sni, o.sni);
    if (subject != NULL) {
        char want[65];
        sha256_hex(o.cert, want);
        assert_non_null(info->peer_subject);
        assert_string_equal(info->peer_subject, subject);
        assert_non_null(info->peer_sha256);
        assert_string_equal(info->peer_sha256, want);
    }
    exchange(&p);
    peer_free(&p);
    SSL_SESSION_free(s);
}

static void test_session_resumption(void **state)
{
    (void)state;
    struct config_certificate cc[3];
    struct config_tls cfg = three_certs(cc);
    struct tls_server *ts = server_ok(&cfg);
    resumed(ts, (struct client_opts){0}, "TLSv1.3", NULL);
    resumed(ts, (struct client_opts){.sni = "b.test"}, "TLSv1.3", NULL);
    /* TLS 1.2 with a ticket (RFC 5077) and from the server's cache by session id. */
    resumed(ts, (struct client_opts){.max_version = TLS1_2_VERSION}, "TLSv1.2", NULL);
    resumed(ts, (struct client_opts){.max_version = TLS1_2_VERSION, .no_ticket = true}, "TLSv1.2",
            NULL);
    tls_server_free(ts);

    /* A resumed session still reports the client certificate of the full handshake. */
    cfg.request_client_cert = true;
    ts = server_ok(&cfg);
    resumed(ts, (struct client_opts){.cert = pki.client, .key = pki.client_key}, "TLSv1.3",
            "CN=printer,O=Acme");
    resumed(ts,
            (struct client_opts){
                .cert = pki.client, .key = pki.client_key, .max_version = TLS1_2_VERSION},
            "TLSv1.2", "CN=printer,O=Acme");
    tls_server_free(ts);
}

/* ---- close_notify ---- */

static void test_client_close_notify(void **state)
{
    (void)state;
    struct tls_server *ts = server_a();
    int versions[] = {0, TLS1_2_VERSION};
    for (size_t i = 0; i < 2; i++) {
        struct peer p;
        peer_init(&p, ts, &(struct client_opts){.max_version = versions[i]});
        handshake_ok(&p);
        /* Data, close_notify and then a valid record after it, all in one read. */
        assert_int_equal(SSL_write(p.ssl, "QUIT\r\n", 6), 6);
        assert_true(SSL_shutdown(p.ssl) >= 0);
        SSL_set_shutdown(p.ssl, 0); /* let the client write on regardless */
        assert_int_equal(SSL_write(p.ssl, "MAIL FROM:<x@y>\r\n", 17), 17);
        to_server(&p);
        assert_int_equal(p.status, TLS_READ_CLOSED);
        assert_int_equal(p.got.len, 6);
        assert_memory_equal(p.got.data, "QUIT\r\n", 6);
        /* It stays closed, whatever comes after. */
        assert_int_equal(SSL_write(p.ssl, "RCPT TO:<z@y>\r\n", 15), 15);
        to_server(&p);
        assert_int_equal(p.status, TLS_READ_CLOSED);
        assert_int_equal(p.got.len, 6);
        assert_int_equal(tls_conn_feed(p.srv, "RSET\r\n", 6), 0);
        server_read(&p);
        assert_int_equal(p.status, TLS_READ_CLOSED);
        assert_int_equal(p.got.len, 6);
        /* The server may still answer with its own close_notify. */
        tls_conn_shutdown(p.srv);
        struct buf out = {0};
        assert_int_equal(tls_conn_take(p.srv, &out), 0);
        assert_true(out.len > 0);
        buf_free(&out);
        peer_free(&p);
    }
    tls_server_free(ts);
}

static void test_server_shutdown(void **state)
{
    (void)state;
    struct tls_server *ts = server_a();
    int versions[] = {0, TLS1_2_VERSION};
    for (size_t i = 0; i < 2; i++) {
        struct peer p;
        peer_init(&p, ts, &(struct client_opts){.max_version = versions[i]});
        handshake_ok(&p);
        client_send(&p, "QUIT\r\n", 6);
        /* The last reply, then close_notify: the client reads the reply, then the end. */
        assert_int_equal(tls_conn_write(p.srv, "221 bye\r\n", 9), 0);
        tls_conn_shutdown(p.srv);
        assert_int_equal(ERR_peek_error(), 0);
        struct buf seen = {0};
        assert_int_equal(client_recv(&p, &seen), SSL_ERROR_ZERO_RETURN);
        assert_int_equal(seen.len, 9);
        assert_memory_equal(seen.data, "221 bye\r\n", 9);
        assert_true((SSL_get_shutdown(p.ssl) & SSL_RECEIVED_SHUTDOWN) != 0);
        buf_free(&seen);
        /* The client's answering close_notify reads as CLOSED. */
        assert_true(SSL_shutdown(p.ssl) >= 0);
        to_server(&p);
        assert_int_equal(p.status, TLS_READ_CLOSED);
        peer_free(&p);
    }
    tls_server_free(ts);
}

/* ---- hostile input ---- */

/* garbage_case - bytes instead of a ClientHello: an error, no plaintext, no crash. */
static void garbage_case(struct tls_server *ts, const char *data, size_t len)
{
    struct peer p;
    peer_init(&p, ts, &(struct client_opts){0});
    server_feed(&p, data, len);
    assert_int_equal(p.status, TLS_READ_ERROR);
    assert_int_equal(p.got.len, 0);
    assert_false(tls_conn_established(p.srv));
    /* It stays an error, and more input does not change that. */
    assert_int_equal(tls_conn_feed(p.srv, "QUIT\r\n", 6), 0);
    server_read(&p);
    assert_int_equal(p.status, TLS_READ_ERROR);
    assert_int_equal(tls_conn_write(p.srv, "x", 1), SH_EIO);
    struct buf out = {0};
    assert_int_equal(tls_conn_take(p.srv, &out), 0); /* an alert, or nothing */
    buf_free(&out);
    tls_conn_shutdown(p.srv);
    peer_free(&p);
}

static void test_garbage(void **state)
{
    (void)state;
    struct tls_server *ts = server_a();

    garbage_case(ts, "EHLO x\r\n", 8);
    garbage_case(ts, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
    /* A handshake record header with an impossible length (RFC 8446 §5.1: at most 2^14). */
    garbage_case(ts, "\x16\x03\x01\xff\xff", 5);
    /* A well-formed record holding nonsense as a handshake message. */
    garbage_case(ts, "\x16\x03\x01\x00\x08\x01\x00\x00\x04\xde\xad\xbe\xef", 13);
    /* Application data before any handshake. */
    garbage_case(ts,
                 "\x17\x03\x03\x00\x04"
                 "abcd",
                 9);
    char noise[4096];
    pattern(noise, sizeof(noise), 11);
    noise[0] = 0x16; /* looks like a handshake record at first */
    garbage_case(ts, noise, sizeof(noise));

    /* After the handshake: a forged record fails authentication (bad_record_mac). */
    struct peer p;
    peer_init(&p, ts, &(struct client_opts){0});
    handshake_ok(&p);
    client_send(&p, "EHLO x\r\n", 8);
    assert_int_equal(p.got.len, 8);
    char forged[5 + 40];
    memcpy(forged, "\x17\x03\x03\x00\x28", 5);
    pattern(forged + 5, 40, 12);
    server_feed(&p, forged, sizeof(forged));
    assert_int_equal(p.status, TLS_READ_ERROR);
    assert_int_equal(p.got.len, 8);
    /* The server queued an alert; the client fails on it. */
    assert_int_equal(client_recv(&p, NULL), SSL_ERROR_SSL);
    assert_int_equal(ERR_GET_REASON(p.client_error), SSL_R_SSLV3_ALERT_BAD_RECORD_MAC);
    peer_free(&p);

    /* Nothing fed, or an empty feed: just wait. */
    peer_init(&p, ts, &(struct client_opts){0});
    assert_int_equal(tls_conn_feed(p.srv, "", 0), 0);
    server_read(&p);
    assert_int_equal(p.status, TLS_READ_AGAIN);
    peer_free(&p);
    tls_server_free(ts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls13_handshake_and_data),
        cmocka_unit_test(test_tls12_handshake_and_data),
        cmocka_unit_test(test_small_read_cap),
        cmocka_unit_test(test_one_byte_feeds),
        cmocka_unit_test(test_write_before_handshake),
        cmocka_unit_test(test_key_update),
        cmocka_unit_test(test_no_renegotiation),
        cmocka_unit_test(test_min_version_tls13),
        cmocka_unit_test(test_tls11_refused),
        cmocka_unit_test(test_ciphers_and_groups),
        cmocka_unit_test(test_sni),
        cmocka_unit_test(test_client_certificate),
        cmocka_unit_test(test_server_new_errors),
        cmocka_unit_test(test_reload),
        cmocka_unit_test(test_server_freed_before_connections),
        cmocka_unit_test(test_session_resumption),
        cmocka_unit_test(test_client_close_notify),
        cmocka_unit_test(test_server_shutdown),
        cmocka_unit_test(test_garbage),
    };
    return cmocka_run_group_tests(tests, pki_setup, pki_teardown);
}
