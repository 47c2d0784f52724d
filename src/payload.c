/* payload.c - the envelope as JSON and the request headers that carry it to the web app.
 *
 * Pure: builds strings, does no I/O. The only module besides config.c that includes jansson;
 * it must not include libuv or curl. Every header value it produces is printable ASCII, so
 * no client-supplied text can split or forge a header. */
#include "smtphook/payload.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "smtphook/buf.h"
#include "smtphook/error.h"

#define PAYLOAD_N_HEADERS     6u  /* Content-Type, Id, Key, Envelope, Mail-From, Rcpt-To */
#define PAYLOAD_TIME_MAX      32u /* "YYYY-MM-DDTHH:MM:SS.mmmZ" and room for odd years */
#define PAYLOAD_RCPT_SEP      ", "
#define PAYLOAD_DUMP_FLAGS    (JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER)
#define PAYLOAD_MS_PER_S      1000
#define PAYLOAD_BODY_NAME_MAX 14u /* "BINARYMIME" quoted, and room */

/* payload_string - a JSON string for s (NULL -> JSON null when nullable). Sets *err to
 * SH_EINVAL when s is not valid UTF-8 and SH_ENOMEM when memory ran out. */
static json_t *payload_string(const char *s, int nullable, int *err)
{
    if (s == NULL) {
        if (nullable)
            return json_null();
        s = "";
    }
    size_t len = strlen(s);
    json_t *j = json_stringn(s, len);
    if (j != NULL)
        return j;
    /* jansson refuses invalid UTF-8 and a failed allocation alike; tell them apart. */
    j = json_stringn_nocheck(s, len);
    *err = j != NULL ? SH_EINVAL : SH_ENOMEM;
    json_decref(j);
    return NULL;
}

/* payload_time - Unix milliseconds as RFC 3339 UTC with milliseconds (RFC 3339 §5.6). */
static int payload_time(int64_t ms, char *dst, size_t dstlen)
{
    int64_t secs = ms / PAYLOAD_MS_PER_S;
    int64_t frac = ms % PAYLOAD_MS_PER_S;
    if (frac < 0) { /* floor division for times before 1970 */
        frac += PAYLOAD_MS_PER_S;
        secs -= 1;
    }
    time_t t = (time_t)secs;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL)
        return SH_EINVAL;
    char base[PAYLOAD_TIME_MAX];
    if (strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
        return SH_EINVAL;
    int n = snprintf(dst, dstlen, "%s.%03dZ", base, (int)frac);
    if (n < 0 || (size_t)n >= dstlen)
        return SH_EINVAL;
    return 0;
}

/* payload_set - put value under key; the object takes the reference (jansson drops it on
 * failure too). A NULL value means its constructor failed and *err may say why. */
static int payload_set(json_t *obj, const char *key, json_t *value, int *err)
{
    if (value == NULL || json_object_set_new(obj, key, value) != 0) {
        if (*err == 0)
            *err = SH_ENOMEM;
        return *err;
    }
    return 0;
}

/* payload_child - a new empty object or array attached to parent under key; the pointer is
 * borrowed from parent. NULL (and *err) on failure. */
static json_t *payload_child(json_t *parent, const char *key, json_t *child, int *err)
{
    if (payload_set(parent, key, child, err) != 0)
        return NULL;
    return child;
}

/* payload_tls - the "tls" member: null for a plaintext session, else version, cipher, SNI
 * name and client certificate (null when none was presented). 0 or *err. */
static int payload_tls(json_t *root, const struct envelope_tls *tls, int *err)
{
    json_t *obj, *cert;
    if (tls->version == NULL)
        return payload_set(root, "tls", json_null(), err);
    if ((obj = payload_child(root, "tls", json_object(), err)) == NULL ||
        payload_set(obj, "version", payload_string(tls->version, 0, err), err) ||
        payload_set(obj, "cipher", payload_string(tls->cipher, 1, err), err) ||
        payload_set(obj, "sni", payload_string(tls->sni, 1, err), err))
        return *err;
    if (tls->peer_subject == NULL && tls->peer_sha256 == NULL)
        return payload_set(obj, "client_certificate", json_null(), err);
    if ((cert = payload_child(obj, "client_certificate", json_object(), err)) == NULL ||
        payload_set(cert, "subject", payload_string(tls->peer_subject, 1, err), err) ||
        payload_set(cert, "sha256", payload_string(tls->peer_sha256, 1, err), err))
        return *err;
    return 0;
}

/* payload_client - the "client" member, as the envelope has it: address, port, helo. */
static int payload_client(json_t *root, const char *address, uint16_t port, const char *helo,
                          int *err)
{
    json_t *client = payload_child(root, "client", json_object(), err);
    if (client == NULL || payload_set(client, "address", payload_string(address, 1, err), err) ||
        payload_set(client, "port", json_integer(port), err) ||
        payload_set(client, "helo", payload_string(helo, 1, err), err))
        return *err;
    return 0;
}

/* payload_build - the envelope as a jansson object, keys in the documented order. Every
 * child is attached to root as soon as it exists, so one decref cleans up. */
static json_t *payload_build(const struct envelope *env, int *err)
{
    char when[PAYLOAD_TIME_MAX];
    json_t *root = json_object();
    json_t *rcpt, *params;
    if (root == NULL) {
        *err = SH_ENOMEM;
        return NULL;
    }
    if ((*err = payload_time(env->received_at_ms, when, sizeof(when))) != 0)
        goto fail;
    if (payload_set(root, "id", payload_string(env->id, 0, err), err) ||
        (env->key != NULL && payload_set(root, "key", payload_string(env->key, 0, err), err)) ||
        payload_set(root, "received_at", json_string(when), err))
        goto fail;

    if (payload_client(root, env->client_address, env->client_port, env->helo, err) != 0 ||
        payload_tls(root, &env->tls, err) != 0 ||
        payload_set(root, "mail_from", payload_string(env->mail_from, 0, err), err))
        goto fail;

    if ((rcpt = payload_child(root, "rcpt_to", json_array(), err)) == NULL)
        goto fail;
    for (size_t i = 0; i < env->n_rcpt; i++) {
        json_t *r = payload_string(env->rcpt_to[i], 0, err);
        if (r == NULL || json_array_append_new(rcpt, r) != 0) {
            if (*err == 0)
                *err = SH_ENOMEM;
            goto fail;
        }
    }

    const char *body = envelope_body_name(env->body);
    json_t *size =
        env->size == PAYLOAD_SIZE_UNKNOWN ? json_null() : json_integer((json_int_t)env->size);
    if (payload_set(root, "size", size, err) ||
        (params = payload_child(root, "params", json_object(), err)) == NULL ||
        payload_set(params, "body", body != NULL ? json_string(body) : json_null(), err) ||
        payload_set(params, "smtputf8", json_boolean(env->smtputf8), err) ||
        payload_set(root, "chunked", json_boolean(env->chunked), err))
        goto fail;
    return root;

fail:
    json_decref(root);
    return NULL;
}

/* payload_escape_del - JSON leaves DEL (0x7F) raw, but it is no VCHAR and so not allowed
 * in an HTTP field value (RFC 9110 §5.5). It can only occur inside strings, where the
 * \u007F escape means the same. Takes text (len bytes) and gives it, escaped, as *out. */
static int payload_escape_del(char *text, size_t len, char **out)
{
    static const char esc[] = "\\u007F";
    size_t n_del = 0;
    for (size_t i = 0; i < len; i++)
        n_del += text[i] == 0x7F;
    if (n_del == 0) {
        *out = text;
        return 0;
    }
    char *wide = malloc(len + n_del * (sizeof(esc) - 2) + 1);
    if (wide == NULL) {
        free(text);
        return SH_ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == 0x7F) {
            memcpy(wide + k, esc, sizeof(esc) - 1);
            k += sizeof(esc) - 1;
        } else {
            wide[k++] = text[i];
        }
    }
    wide[k] = '\0';
    free(text);
    *out = wide;
    return 0;
}

/* payload_dump - root (a reference the caller gives up) as compact, ASCII-only JSON;
 * non-ASCII characters become \uXXXX escapes (RFC 8259 §7) and control characters and DEL
 * are escaped too, so the text is a safe header value. Dumped into our own allocation: the
 * caller free()s *out whatever allocator jansson was given. */
static int payload_dump(json_t *root, char **out)
{
    int err = 0;
    char *text = NULL;
    size_t need = json_dumpb(root, NULL, 0, PAYLOAD_DUMP_FLAGS);
    if (need == 0 || (text = malloc(need + 1)) == NULL) {
        err = SH_ENOMEM;
        goto fail;
    }
    if (json_dumpb(root, text, need, PAYLOAD_DUMP_FLAGS) != need) {
        err = SH_ENOMEM;
        goto fail;
    }
    text[need] = '\0';
    json_decref(root);
    return payload_escape_del(text, need, out);

fail:
    free(text);
    json_decref(root);
    return err;
}

/* payload_envelope_json - the envelope's object, dumped by payload_dump. */
int payload_envelope_json(const struct envelope *env, char **out)
{
    int err = 0;
    *out = NULL;
    json_t *root = payload_build(env, &err);
    if (root == NULL)
        return err != 0 ? err : SH_ENOMEM;
    return payload_dump(root, out);
}

/* payload_sendgrid_envelope_json - see payload.h. */
int payload_sendgrid_envelope_json(const struct envelope *env, char **out)
{
    int err = 0;
    *out = NULL;
    json_t *root = json_object();
    json_t *to = root != NULL ? payload_child(root, "to", json_array(), &err) : NULL;
    if (to == NULL) {
        json_decref(root);
        return err != 0 ? err : SH_ENOMEM;
    }
    for (size_t i = 0; i < env->n_rcpt && err == 0; i++) {
        json_t *r = payload_string(env->rcpt_to[i], 0, &err);
        if (r == NULL || json_array_append_new(to, r) != 0)
            err = err != 0 ? err : SH_ENOMEM;
    }
    if (err == 0)
        payload_set(root, "from", payload_string(env->mail_from, 0, &err), &err);
    if (err != 0) {
        json_decref(root);
        return err;
    }
    return payload_dump(root, out);
}

/* payload_rcpt_check_json - see payload.h: built like the envelope (the same "client" and
 * "tls" members), dumped the same way. */
int payload_rcpt_check_json(const char *recipient, const char *sender, const char *client_address,
                            uint16_t client_port, const char *helo, const struct envelope_tls *tls,
                            char **out)
{
    static const struct envelope_tls plaintext; /* every pointer NULL */
    int err = 0;
    *out = NULL;
    json_t *root = json_object();
    if (root == NULL)
        return SH_ENOMEM;
    if (payload_set(root, "recipient", payload_string(recipient, 0, &err), &err) ||
        payload_set(root, "sender", payload_string(sender, 0, &err), &err) ||
        payload_client(root, client_address, client_port, helo, &err) != 0 ||
        payload_tls(root, tls != NULL ? tls : &plaintext, &err) != 0) {
        json_decref(root);
        return err != 0 ? err : SH_ENOMEM;
    }
    return payload_dump(root, out);
}

/* payload_is_plain - bytes that pass percent-encoding unchanged: visible ASCII
 * (0x21..0x7E, RFC 5234 VCHAR) except '%' (the escape) and ',' (the list separator). */
static int payload_is_plain(unsigned char c)
{
    return c >= 0x21 && c <= 0x7E && c != '%' && c != ',';
}

/* payload_encode_into - append the percent-encoding of src to b. */
static int payload_encode_into(struct buf *b, const char *src, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];
        int rc;
        if (payload_is_plain(c)) {
            rc = buf_append(b, &src[i], 1);
        } else {
            char esc[3] = {'%', hex[c >> 4], hex[c & 0x0F]};
            rc = buf_append(b, esc, sizeof(esc));
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* payload_buf_string - hand the contents of b over as a NUL-terminated string. */
static int payload_buf_string(struct buf *b, char **out)
{
    if (buf_append(b, "", 1) != 0) {
        buf_free(b);
        return SH_ENOMEM;
    }
    *out = b->data;
    b->data = NULL;
    b->len = b->cap = 0;
    return 0;
}

/* payload_percent_encode - src (len bytes, may hold NUL) percent-encoded into *out. */
int payload_percent_encode(const char *src, size_t len, char **out)
{
    struct buf b = {0};
    *out = NULL;
    if (payload_encode_into(&b, src, len) != 0) {
        buf_free(&b);
        return SH_ENOMEM;
    }
    return payload_buf_string(&b, out);
}

/* payload_header - "<name>: <value>" as a new string; value is encoded when encode is set. */
static int payload_header(const char *name, const char *value, int encode, char **out)
{
    struct buf b = {0};
    int rc;
    if ((rc = buf_append_str(&b, name)) != 0 || (rc = buf_append_str(&b, ": ")) != 0)
        goto fail;
    if (value != NULL) {
        rc = encode ? payload_encode_into(&b, value, strlen(value)) : buf_append_str(&b, value);
        if (rc != 0)
            goto fail;
    }
    return payload_buf_string(&b, out);

fail:
    buf_free(&b);
    return rc;
}

/* payload_rcpt_header - the Rcpt-To header: each address encoded, joined by ", " (an
 * encoded address never holds ',', so the list splits back unambiguously). */
static int payload_rcpt_header(const struct envelope *env, char **out)
{
    struct buf b = {0};
    int rc;
    if ((rc = buf_append_str(&b, PAYLOAD_HEADER_RCPT_TO ": ")) != 0)
        goto fail;
    for (size_t i = 0; i < env->n_rcpt; i++) {
        if (i > 0 && (rc = buf_append_str(&b, PAYLOAD_RCPT_SEP)) != 0)
            goto fail;
        const char *r = env->rcpt_to[i] != NULL ? env->rcpt_to[i] : "";
        if ((rc = payload_encode_into(&b, r, strlen(r))) != 0)
            goto fail;
    }
    return payload_buf_string(&b, out);

fail:
    buf_free(&b);
    return rc;
}

/* payload_headers - the request headers in the order of payload.h. The id is encoded too:
 * it is ours and plain already, so this only guards against a future change of format. */
int payload_headers(const struct envelope *env, char ***out, size_t *n)
{
    char *json = NULL;
    char **h = calloc(PAYLOAD_N_HEADERS, sizeof(*h));
    int rc = SH_ENOMEM;
    *out = NULL;
    *n = 0;
    if (h == NULL)
        goto fail;
    if ((rc = payload_envelope_json(env, &json)) != 0)
        goto fail;
    size_t k = 0;
    if ((rc = payload_header("Content-Type", PAYLOAD_CONTENT_TYPE, 0, &h[k++])) != 0 ||
        (rc = payload_header(PAYLOAD_HEADER_ID, env->id, 1, &h[k++])) != 0 ||
        (env->key != NULL &&
         (rc = payload_header(PAYLOAD_HEADER_KEY, env->key, 1, &h[k++])) != 0) ||
        (rc = payload_header(PAYLOAD_HEADER_ENVELOPE, json, 0, &h[k++])) != 0 ||
        (rc = payload_header(PAYLOAD_HEADER_MAIL_FROM, env->mail_from, 1, &h[k++])) != 0 ||
        (rc = payload_rcpt_header(env, &h[k++])) != 0)
        goto fail;
    free(json);
    *out = h;
    *n = k;
    return 0;

fail:
    free(json);
    payload_headers_free(h, PAYLOAD_N_HEADERS);
    return rc;
}

/* payload_json_cost - bytes of s as a JSON string escaped as payload_dump escapes it:
 * ASCII only, '"' and '\\' escaped, DEL as \u007F, a code point past U+FFFF as a
 * surrogate pair. Every string here is valid UTF-8 without control characters. */
static size_t payload_json_cost(const char *s)
{
    size_t n = 2; /* the quotes */
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            n += 2;
        else if (*p == 0x7f)
            n += 6;
        else if (*p < 0x80)
            n += 1;
        else if (*p >= 0xf0)
            n += 12; /* lead byte of a 4-byte sequence: two \uXXXX */
        else if (*p >= 0xc0)
            n += 6; /* lead byte of a 2- or 3-byte sequence */
        /* continuation bytes add nothing: their code point is counted at its lead */
    }
    return n;
}

/* payload_rcpt_cost - see payload.h. */
size_t payload_rcpt_cost(const char *addr)
{
    size_t n = payload_json_cost(addr) + 1 + strlen(PAYLOAD_RCPT_SEP);
    for (const unsigned char *p = (const unsigned char *)addr; *p; p++)
        n += payload_is_plain(*p) ? 1 : 3;
    return n;
}

/* Every key and punctuation mark of an envelope payload_build makes, values left out ("tls"
 * among them, a null or the object below): payload_head_base adds their bounds to it. They
 * must follow payload_build (test_payload checks the bound against real envelopes). */
#define PAYLOAD_SKELETON                                                                           \
    "{\"id\":,\"key\":,\"received_at\":,\"client\":{\"address\":,\"port\":,\"helo\":},\"tls\":,"   \
    "\"mail_from\":,\"rcpt_to\":[],\"size\":,\"params\":{\"body\":,\"smtputf8\":},\"chunked\":}"
#define PAYLOAD_SKELETON_TLS                                                                       \
    "{\"version\":,\"cipher\":,\"sni\":,\"client_certificate\":{\"subject\":,\"sha256\":}}"
#define PAYLOAD_NUMBER_MAX  20u /* digits of a uint64_t */
#define PAYLOAD_LITERAL_MAX 5u  /* null, true, false */

/* payload_value_cost - a string member's bound: its JSON string, or null. */
static size_t payload_value_cost(const char *s)
{
    return s != NULL ? payload_json_cost(s) : PAYLOAD_LITERAL_MAX;
}

/* payload_head_base - see payload.h. An upper bound worked out from the values' escaped
 * lengths, without building the JSON (which costs more than the rest of a small message's
 * RCPT handling): at most a few dozen bytes above the real size. */
int payload_head_base(const struct envelope *env, uint64_t *out)
{
    const struct envelope_tls *tls = &env->tls;
    uint64_t json = sizeof(PAYLOAD_SKELETON) - 1 + payload_value_cost(env->id) +
                    payload_value_cost(env->key) + PAYLOAD_TIME_MAX + 2 +
                    payload_value_cost(env->client_address) + PAYLOAD_NUMBER_MAX +
                    payload_value_cost(env->helo) + payload_value_cost(env->mail_from) +
                    PAYLOAD_NUMBER_MAX + PAYLOAD_LITERAL_MAX * 3 + PAYLOAD_BODY_NAME_MAX;
    if (tls->version != NULL)
        json += sizeof(PAYLOAD_SKELETON_TLS) - 1 + payload_value_cost(tls->version) +
                payload_value_cost(tls->cipher) + payload_value_cost(tls->sni) +
                payload_value_cost(tls->peer_subject) + payload_value_cost(tls->peer_sha256);
    uint64_t pct = 0;
    for (const unsigned char *p = (const unsigned char *)env->mail_from; p && *p; p++)
        pct += payload_is_plain(*p) ? 1 : 3;
    for (const unsigned char *p = (const unsigned char *)env->id; *p; p++)
        pct += payload_is_plain(*p) ? 1 : 3;
    *out = sizeof("Content-Type: " PAYLOAD_CONTENT_TYPE "\r\n") - 1 +
           sizeof(PAYLOAD_HEADER_ID ": \r\n") - 1 +
           (env->key != NULL ? sizeof(PAYLOAD_HEADER_KEY ": \r\n") - 1 + strlen(env->key) : 0) +
           sizeof(PAYLOAD_HEADER_ENVELOPE ": \r\n") - 1 + json +
           sizeof(PAYLOAD_HEADER_MAIL_FROM ": \r\n") - 1 + sizeof(PAYLOAD_HEADER_RCPT_TO ": \r\n") -
           1 + pct;
    return 0;
}

/* payload_headers_free - release the strings and the array; NULL is ignored. */
void payload_headers_free(char **headers, size_t n)
{
    if (headers == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(headers[i]);
    free(headers);
}
