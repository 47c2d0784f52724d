/* test_payload.c - the envelope JSON (parsed back with jansson) and the request headers:
 * exact fields, ASCII-only escaping of UTF-8, and header values no input can split; then
 * the recipient check's body, golden and escaped the same way. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "smtphook/error.h"
#include "smtphook/payload.h"

static char from1[] = "alice@example.org";
static char rcpt1[] = "bob@example.com";
static char rcpt2[] = "carol+tag@example.com";
static char *rcpts[] = {rcpt1, rcpt2};

/* sample - an envelope with every field set. */
static struct envelope sample(void)
{
    struct envelope env;
    memset(&env, 0, sizeof(env));
    strcpy(env.id, "66a1b2c3d4e5.0001.1");
    env.received_at_ms = 1767268800123; /* 2026-01-01T12:00:00.123Z */
    env.client_address = "192.0.2.7";
    env.client_port = 40001;
    env.helo = "client.example.org";
    env.esmtp = true;
    env.mail_from = from1;
    env.rcpt_to = rcpts;
    env.n_rcpt = 2;
    env.size = 12345;
    env.body = ENVELOPE_BODY_8BITMIME;
    env.smtputf8 = false;
    return env;
}

/* parse - the JSON text of env, checked ASCII-only and parsed back. */
static json_t *parse(const struct envelope *env, char **text)
{
    assert_int_equal(payload_envelope_json(env, text), 0);
    assert_non_null(*text);
    for (const char *p = *text; *p != '\0'; p++)
        assert_true((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7F);
    json_error_t jerr;
    json_t *root = json_loads(*text, JSON_REJECT_DUPLICATES, &jerr);
    assert_non_null(root);
    assert_true(json_is_object(root));
    return root;
}

static void test_json_fields(void **state)
{
    (void)state;
    struct envelope env = sample();
    char *text = NULL;
    json_t *root = parse(&env, &text);

    /* Keys in the documented order, compact (no spaces after ':' or ','). */
    assert_non_null(strstr(text, "{\"id\":\"66a1b2c3d4e5.0001.1\",\"received_at\":"));
    const char *order[] = {"\"id\"",   "\"received_at\"", "\"client\"",
                           "\"tls\"",  "\"mail_from\"",   "\"rcpt_to\"",
                           "\"size\"", "\"params\"",      "\"chunked\""};
    const char *prev = text;
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        const char *at = strstr(text, order[i]);
        assert_non_null(at);
        assert_true(at >= prev);
        prev = at;
    }
    assert_null(strstr(text, ": "));
    assert_null(strstr(text, ", "));
    assert_int_equal(json_object_size(root), 9);

    assert_string_equal(json_string_value(json_object_get(root, "id")), "66a1b2c3d4e5.0001.1");
    assert_string_equal(json_string_value(json_object_get(root, "received_at")),
                        "2026-01-01T12:00:00.123Z");
    json_t *client = json_object_get(root, "client");
    assert_true(json_is_object(client));
    assert_int_equal(json_object_size(client), 3);
    assert_string_equal(json_string_value(json_object_get(client, "address")), "192.0.2.7");
    assert_int_equal(json_integer_value(json_object_get(client, "port")), 40001);
    assert_string_equal(json_string_value(json_object_get(client, "helo")), "client.example.org");
    assert_true(json_is_null(json_object_get(root, "tls")));
    assert_string_equal(json_string_value(json_object_get(root, "mail_from")), from1);
    json_t *rcpt = json_object_get(root, "rcpt_to");
    assert_true(json_is_array(rcpt));
    assert_int_equal(json_array_size(rcpt), 2);
    assert_string_equal(json_string_value(json_array_get(rcpt, 0)), rcpt1);
    assert_string_equal(json_string_value(json_array_get(rcpt, 1)), rcpt2);
    assert_int_equal(json_integer_value(json_object_get(root, "size")), 12345);
    json_t *params = json_object_get(root, "params");
    assert_int_equal(json_object_size(params), 2);
    assert_string_equal(json_string_value(json_object_get(params, "body")), "8BITMIME");
    assert_true(json_is_false(json_object_get(params, "smtputf8")));
    assert_true(json_is_false(json_object_get(root, "chunked")));
    assert_non_null(strstr(text, ",\"tls\":null,"));

    json_decref(root);
    free(text);
}

/* An encrypted session: the "tls" object, with and without SNI and client certificate. */
static void test_json_tls(void **state)
{
    (void)state;
    struct envelope env = sample();
    env.tls.version = "TLSv1.3";
    env.tls.cipher = "TLS_AES_256_GCM_SHA384";
    env.tls.sni = "mx.example.test";
    char *text = NULL;
    json_t *root = parse(&env, &text);
    assert_non_null(strstr(text, ",\"tls\":{\"version\":\"TLSv1.3\",\"cipher\":"
                                 "\"TLS_AES_256_GCM_SHA384\",\"sni\":\"mx.example.test\","
                                 "\"client_certificate\":null},\"mail_from\":"));
    json_t *tls = json_object_get(root, "tls");
    assert_int_equal(json_object_size(tls), 4);
    json_decref(root);
    free(text);

    env.tls.sni = NULL;
    env.tls.peer_subject = "CN=printer,O=Acme";
    env.tls.peer_sha256 = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
    root = parse(&env, &text);
    tls = json_object_get(root, "tls");
    assert_string_equal(json_string_value(json_object_get(tls, "version")), "TLSv1.3");
    assert_string_equal(json_string_value(json_object_get(tls, "cipher")),
                        "TLS_AES_256_GCM_SHA384");
    assert_non_null(json_object_get(tls, "sni"));
    assert_true(json_is_null(json_object_get(tls, "sni")));
    json_t *cert = json_object_get(tls, "client_certificate");
    assert_true(json_is_object(cert));
    assert_int_equal(json_object_size(cert), 2);
    assert_string_equal(json_string_value(json_object_get(cert, "subject")), "CN=printer,O=Acme");
    assert_string_equal(json_string_value(json_object_get(cert, "sha256")), env.tls.peer_sha256);
    assert_non_null(strstr(text, "\"client_certificate\":{\"subject\":\"CN=printer,O=Acme\","
                                 "\"sha256\":\"0f1e"));
    json_decref(root);
    free(text);

    /* A certificate without a readable subject still shows its fingerprint. */
    env.tls.peer_subject = NULL;
    root = parse(&env, &text);
    cert = json_object_get(json_object_get(root, "tls"), "client_certificate");
    assert_true(json_is_null(json_object_get(cert, "subject")));
    assert_string_equal(json_string_value(json_object_get(cert, "sha256")), env.tls.peer_sha256);
    json_decref(root);
    free(text);

    /* No version: plaintext, whatever else is set. */
    env.tls.version = NULL;
    root = parse(&env, &text);
    assert_true(json_is_null(json_object_get(root, "tls")));
    json_decref(root);
    free(text);

    /* A subject that is not UTF-8 (the TLS layer promises ASCII) fails like any other. */
    env.tls.version = "TLSv1.2";
    env.tls.peer_subject = "CN=\xff";
    assert_int_equal(payload_envelope_json(&env, &text), SH_EINVAL);
    assert_null(text);
}

/* BDAT: "chunked" true and BODY=BINARYMIME. */
static void test_json_chunked_binarymime(void **state)
{
    (void)state;
    struct envelope env = sample();
    env.chunked = true;
    env.body = ENVELOPE_BODY_BINARYMIME;
    char *text = NULL;
    json_t *root = parse(&env, &text);
    assert_true(json_is_true(json_object_get(root, "chunked")));
    assert_string_equal(json_string_value(json_object_get(json_object_get(root, "params"), "body")),
                        "BINARYMIME");
    assert_non_null(strstr(text, "\"params\":{\"body\":\"BINARYMIME\",\"smtputf8\":false},"
                                 "\"chunked\":true}"));
    json_decref(root);
    free(text);
}

static void test_json_times_and_params(void **state)
{
    (void)state;
    struct {
        int64_t ms;
        const char *text;
    } times[] = {
        {0, "1970-01-01T00:00:00.000Z"},
        {1767268800123, "2026-01-01T12:00:00.123Z"},
        {951782400007, "2000-02-29T00:00:00.007Z"},
        {-1, "1969-12-31T23:59:59.999Z"},
    };
    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
        struct envelope env = sample();
        env.received_at_ms = times[i].ms;
        static const enum envelope_body bodies[] = {ENVELOPE_BODY_NONE, ENVELOPE_BODY_7BIT,
                                                    ENVELOPE_BODY_8BITMIME,
                                                    ENVELOPE_BODY_BINARYMIME};
        env.body = bodies[i % 4];
        env.smtputf8 = i % 2 == 1;
        char *text = NULL;
        json_t *root = parse(&env, &text);
        assert_string_equal(json_string_value(json_object_get(root, "received_at")), times[i].text);
        json_t *params = json_object_get(root, "params");
        json_t *body = json_object_get(params, "body");
        if (env.body == ENVELOPE_BODY_NONE)
            assert_true(json_is_null(body));
        else
            assert_string_equal(json_string_value(body), envelope_body_name(env.body));
        assert_true(json_is_boolean(json_object_get(params, "smtputf8")));
        assert_int_equal(json_is_true(json_object_get(params, "smtputf8")), env.smtputf8);
        json_decref(root);
        free(text);
    }
}

static void test_json_utf8_escaped_and_round_trips(void **state)
{
    (void)state;
    char from[] = "j\xc3\xb6rg@b\xc3\xbc\x63her.example";               /* jörg@bücher.example */
    char r1[] = "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.cn"; /* 用户@例子.cn */
    char r2[] = "emoji\xf0\x9f\x98\x80@example.com";                    /* U+1F600 */
    char *rc[] = {r1, r2};
    struct envelope env = sample();
    env.mail_from = from;
    env.rcpt_to = rc;
    env.n_rcpt = 2;
    env.smtputf8 = true;
    char *text = NULL;
    json_t *root = parse(&env, &text); /* parse() checked: ASCII only */
    assert_non_null(strstr(text, "j\\u00F6rg@b\\u00FCcher.example"));
    assert_non_null(strstr(text, "\\u7528\\u6237@\\u4F8B\\u5B50.cn"));
    assert_non_null(strstr(text, "emoji\\uD83D\\uDE00@")); /* surrogate pair */
    assert_string_equal(json_string_value(json_object_get(root, "mail_from")), from);
    json_t *rcpt = json_object_get(root, "rcpt_to");
    assert_string_equal(json_string_value(json_array_get(rcpt, 0)), r1);
    assert_string_equal(json_string_value(json_array_get(rcpt, 1)), r2);
    json_decref(root);
    free(text);
}

static void test_json_null_sender_no_helo(void **state)
{
    (void)state;
    char empty[] = "";
    struct envelope env = sample();
    env.mail_from = empty;
    env.helo = NULL;
    env.n_rcpt = 0;
    env.rcpt_to = NULL;
    env.size = 0;
    char *text = NULL;
    json_t *root = parse(&env, &text);
    assert_string_equal(json_string_value(json_object_get(root, "mail_from")), "");
    json_t *client = json_object_get(root, "client");
    assert_non_null(json_object_get(client, "helo"));
    assert_true(json_is_null(json_object_get(client, "helo")));
    assert_int_equal(json_array_size(json_object_get(root, "rcpt_to")), 0);
    assert_int_equal(json_integer_value(json_object_get(root, "size")), 0);
    json_decref(root);
    free(text);
}

static void test_json_invalid_utf8(void **state)
{
    (void)state;
    char bad[] = "a\xff\xfe@example.com";
    struct envelope env = sample();
    env.mail_from = bad;
    char *text = (char *)1;
    assert_int_equal(payload_envelope_json(&env, &text), SH_EINVAL);
    assert_null(text);
    char **h = (char **)1;
    size_t n = 9;
    assert_int_equal(payload_headers(&env, &h, &n), SH_EINVAL);
    assert_null(h);
    assert_int_equal(n, 0);
}

/* header_value - the value of "Name: value" when line starts with name. */
static const char *header_value(const char *line, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(line, name, n) != 0 || line[n] != ':' || line[n + 1] != ' ')
        return NULL;
    return line + n + 2;
}

static void test_headers(void **state)
{
    (void)state;
    struct envelope env = sample();
    char **h = NULL;
    size_t n = 0;
    assert_int_equal(payload_headers(&env, &h, &n), 0);
    assert_int_equal(n, 5);
    assert_string_equal(h[0], "Content-Type: message/rfc822");
    assert_string_equal(h[1], "X-Smtphook-Id: 66a1b2c3d4e5.0001.1");
    const char *json = header_value(h[2], PAYLOAD_HEADER_ENVELOPE);
    assert_non_null(json);
    char *text = NULL;
    assert_int_equal(payload_envelope_json(&env, &text), 0);
    assert_string_equal(json, text);
    free(text);
    assert_string_equal(h[3], "X-Smtphook-Mail-From: alice@example.org");
    assert_string_equal(h[4], "X-Smtphook-Rcpt-To: bob@example.com, carol+tag@example.com");
    payload_headers_free(h, n);
    payload_headers_free(NULL, 0);

    /* The null sender gives an empty Mail-From value. */
    char empty[] = "";
    env.mail_from = empty;
    env.n_rcpt = 1;
    assert_int_equal(payload_headers(&env, &h, &n), 0);
    assert_string_equal(h[3], "X-Smtphook-Mail-From: ");
    assert_string_equal(h[4], "X-Smtphook-Rcpt-To: bob@example.com");
    payload_headers_free(h, n);
}

static void test_headers_hostile_inputs(void **state)
{
    (void)state;
    /* The session never stores such values; the headers must stay intact anyway. */
    char from[] = "evil\r\nX-Injected: 1@example.com";
    char r1[] = "a,b@example.com";
    char r2[] = "100%\r\n\r\nbody@x";
    char r3[] = "sp ace\t\x7f\x01@x";
    char *rc[] = {r1, r2, r3};
    struct envelope env = sample();
    strcpy(env.id, "id\r\nX-Bad: 1");
    env.helo = "helo\r\nX-Helo: 1\"}";
    env.client_address = "::1\n";
    env.mail_from = from;
    env.rcpt_to = rc;
    env.n_rcpt = 3;
    char **h = NULL;
    size_t n = 0;
    assert_int_equal(payload_headers(&env, &h, &n), 0);
    assert_int_equal(n, 5);
    for (size_t i = 0; i < n; i++) {
        for (const char *p = h[i]; *p != '\0'; p++)
            assert_true((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7F);
    }
    assert_string_equal(h[1], "X-Smtphook-Id: id%0D%0AX-Bad:%201");
    assert_string_equal(h[3], "X-Smtphook-Mail-From: evil%0D%0AX-Injected:%201@example.com");
    assert_string_equal(h[4], "X-Smtphook-Rcpt-To: a%2Cb@example.com, 100%25%0D%0A%0D%0Abody@x, "
                              "sp%20ace%09%7F%01@x");
    /* The JSON still carries the exact values. */
    json_t *root = json_loads(header_value(h[2], PAYLOAD_HEADER_ENVELOPE), 0, NULL);
    assert_non_null(root);
    assert_string_equal(json_string_value(json_object_get(root, "mail_from")), from);
    assert_string_equal(json_string_value(json_array_get(json_object_get(root, "rcpt_to"), 2)), r3);
    assert_non_null(strstr(h[2], "\\t\\u007F\\u0001@x"));
    json_t *client = json_object_get(root, "client");
    assert_string_equal(json_string_value(json_object_get(client, "helo")), "helo\r\nX-Helo: 1\"}");
    json_decref(root);
    payload_headers_free(h, n);
}

static void test_percent_encoding_table(void **state)
{
    (void)state;
    static const char hex[] = "0123456789ABCDEF";
    for (unsigned c = 0; c < 256; c++) {
        char in = (char)(unsigned char)c;
        char *out = NULL;
        assert_int_equal(payload_percent_encode(&in, 1, &out), 0);
        if (c >= 0x21 && c <= 0x7E && c != '%' && c != ',') {
            assert_int_equal(strlen(out), 1);
            assert_int_equal((unsigned char)out[0], c);
        } else {
            char want[4] = {'%', hex[c >> 4], hex[c & 15], '\0'};
            assert_string_equal(out, want);
        }
        free(out);
    }
    char *out = NULL;
    assert_int_equal(payload_percent_encode("", 0, &out), 0);
    assert_string_equal(out, "");
    free(out);
    assert_int_equal(payload_percent_encode("a\0b", 3, &out), 0);
    assert_string_equal(out, "a%00b");
    free(out);
    assert_int_equal(payload_percent_encode("j\xc3\xb6rg@x.y", 9, &out), 0);
    assert_string_equal(out, "j%C3%B6rg@x.y");
    free(out);
}

/* ---- the recipient check's body ------------------------------------------------------ */

/* rcpt_json - the recipient-check body for these fields, checked ASCII-only and parsed
 * back; *text keeps the JSON text. */
static json_t *rcpt_json(const char *rcpt, const char *sender, const char *addr, uint16_t port,
                         const char *helo, const struct envelope_tls *tls, char **text)
{
    assert_int_equal(payload_rcpt_check_json(rcpt, sender, addr, port, helo, tls, text), 0);
    assert_non_null(*text);
    for (const char *p = *text; *p != '\0'; p++)
        assert_true((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7F);
    json_t *root = json_loads(*text, JSON_REJECT_DUPLICATES, NULL);
    assert_non_null(root);
    return root;
}

/* The documented shape, compact, keys in order: checked as the exact text. */
static void test_rcpt_json_golden(void **state)
{
    (void)state;
    char *text = NULL;
    json_t *root = rcpt_json(rcpt1, from1, "192.0.2.7", 40001, "client.example.org", NULL, &text);
    assert_string_equal(text, "{\"recipient\":\"bob@example.com\",\"sender\":\"alice@example.org\","
                              "\"client\":{\"address\":\"192.0.2.7\",\"port\":40001,"
                              "\"helo\":\"client.example.org\"},\"tls\":null}");
    assert_int_equal(json_object_size(root), 4);
    json_decref(root);
    free(text);

    /* the null sender, no HELO, no address; a tls struct without version is plaintext */
    struct envelope_tls plain;
    memset(&plain, 0, sizeof(plain));
    plain.cipher = "ignored without a version";
    root = rcpt_json(rcpt2, "", NULL, 0, NULL, &plain, &text);
    assert_string_equal(text, "{\"recipient\":\"carol+tag@example.com\",\"sender\":\"\","
                              "\"client\":{\"address\":null,\"port\":0,\"helo\":null},"
                              "\"tls\":null}");
    json_decref(root);
    free(text);

    /* a NULL sender is the null sender too */
    root = rcpt_json(rcpt1, NULL, "::1", 25, "h", NULL, &text);
    assert_string_equal(json_string_value(json_object_get(root, "sender")), "");
    json_decref(root);
    free(text);
}

/* The "tls" member is the envelope's, for the same facts. */
static void test_rcpt_json_tls(void **state)
{
    (void)state;
    struct envelope env = sample();
    env.tls.version = "TLSv1.3";
    env.tls.cipher = "TLS_AES_256_GCM_SHA384";
    env.tls.sni = "mx.example.test";
    env.tls.peer_subject = "CN=printer,O=Acme";
    env.tls.peer_sha256 = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
    char *text = NULL, *envelope = NULL;
    json_t *root =
        rcpt_json(rcpt1, from1, env.client_address, env.client_port, env.helo, &env.tls, &text);
    json_t *whole = parse(&env, &envelope);
    assert_true(json_equal(json_object_get(root, "tls"), json_object_get(whole, "tls")));
    assert_true(json_equal(json_object_get(root, "client"), json_object_get(whole, "client")));
    assert_non_null(strstr(text, ",\"tls\":{\"version\":\"TLSv1.3\",\"cipher\":"
                                 "\"TLS_AES_256_GCM_SHA384\",\"sni\":\"mx.example.test\","
                                 "\"client_certificate\":{\"subject\":\"CN=printer,O=Acme\","
                                 "\"sha256\":\"0f1e"));
    json_decref(whole);
    json_decref(root);
    free(envelope);
    free(text);
}

/* UTF-8 as \uXXXX, control characters and DEL escaped; the values round-trip. */
static void test_rcpt_json_escaping(void **state)
{
    (void)state;
    char rcpt[] = "j\xc3\xb6rg@\xe4\xbe\x8b\xe5\xad\x90.cn";
    char sender[] = "emoji\xf0\x9f\x98\x80@example.com";
    char helo[] = "a\"b\\c\r\n\t\x7f\x01";
    char *text = NULL;
    json_t *root = rcpt_json(rcpt, sender, "192.0.2.1", 1, helo, NULL, &text);
    assert_non_null(strstr(text, "\"recipient\":\"j\\u00F6rg@\\u4F8B\\u5B50.cn\""));
    assert_non_null(strstr(text, "\"sender\":\"emoji\\uD83D\\uDE00@example.com\""));
    assert_non_null(strstr(text, "\"helo\":\"a\\\"b\\\\c\\r\\n\\t\\u007F\\u0001\""));
    assert_string_equal(json_string_value(json_object_get(root, "recipient")), rcpt);
    assert_string_equal(json_string_value(json_object_get(root, "sender")), sender);
    assert_string_equal(json_string_value(json_object_get(json_object_get(root, "client"), "helo")),
                        helo);
    json_decref(root);
    free(text);
}

/* A string that is not UTF-8 is refused, whichever field holds it. */
static void test_rcpt_json_invalid_utf8(void **state)
{
    (void)state;
    char *text = (char *)1;
    assert_int_equal(payload_rcpt_check_json("a\xff@x", "", NULL, 0, NULL, NULL, &text), SH_EINVAL);
    assert_null(text);
    assert_int_equal(payload_rcpt_check_json("a@x", "\xc3", NULL, 0, NULL, NULL, &text), SH_EINVAL);
    assert_null(text);
    assert_int_equal(payload_rcpt_check_json("a@x", "", NULL, 0, "\xe4\xbe", NULL, &text),
                     SH_EINVAL);
    assert_null(text);
    struct envelope_tls tls;
    memset(&tls, 0, sizeof(tls));
    tls.version = "TLSv1.2";
    tls.peer_subject = "CN=\xff";
    assert_int_equal(payload_rcpt_check_json("a@x", "", NULL, 0, NULL, &tls, &text), SH_EINVAL);
    assert_null(text);
}

/* head_size - the real size of the payload headers of env (with CRLFs), no recipients. */
static uint64_t head_size(const struct envelope *env)
{
    struct envelope none = *env;
    none.n_rcpt = 0;
    char **h = NULL;
    size_t n = 0;
    assert_int_equal(payload_headers(&none, &h, &n), 0);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += strlen(h[i]) + 2;
    payload_headers_free(h, n);
    return total;
}

/* test_head_bound - payload_head_base is never below the real head and close above it,
 * for plain and TLS envelopes, with and without a key, with escaped and non-ASCII values;
 * each recipient's cost is exact. */
static void test_head_bound(void **state)
{
    (void)state;
    static char quoted[] = "\"odd \\ name\"@example.org";
    static char utf8[] = "j\xc3\xb6rg\xf0\x9f\x93\xa7@example.org";
    static char empty[] = "";
    char *senders[] = {from1, quoted, utf8, empty};
    for (int variant = 0; variant < 16; variant++) {
        struct envelope env = sample();
        env.mail_from = senders[variant % 4];
        if (variant & 4)
            env.key = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
        if (variant & 8) {
            env.tls.version = "TLSv1.3";
            env.tls.cipher = "TLS_AES_256_GCM_SHA384";
            env.tls.sni = "mx.example.com";
            env.tls.peer_subject = "CN=client \xc3\xa9,O=\"x\"";
            env.tls.peer_sha256 = "ab";
        }
        env.helo = variant & 1 ? NULL : "client.example.org";
        uint64_t bound = 0;
        assert_int_equal(payload_head_base(&env, &bound), 0);
        uint64_t real = head_size(&env);
        if (bound < real || bound > real + 96)
            print_message("  variant %d: bound %lu, real %lu\n", variant, (unsigned long)bound,
                          (unsigned long)real);
        assert_true(bound >= real && bound <= real + 96);
        /* each recipient adds exactly its cost */
        char *one[] = {utf8};
        struct envelope with = env;
        with.rcpt_to = one;
        with.n_rcpt = 1;
        char **h = NULL;
        size_t n = 0;
        assert_int_equal(payload_headers(&with, &h, &n), 0);
        uint64_t total = 0;
        for (size_t i = 0; i < n; i++)
            total += strlen(h[i]) + 2;
        payload_headers_free(h, n);
        /* the first recipient adds no separator: the cost counts one, so it is 3 over */
        assert_int_equal(total + 3, real + payload_rcpt_cost(utf8));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_fields),
        cmocka_unit_test(test_json_tls),
        cmocka_unit_test(test_json_chunked_binarymime),
        cmocka_unit_test(test_json_times_and_params),
        cmocka_unit_test(test_json_utf8_escaped_and_round_trips),
        cmocka_unit_test(test_json_null_sender_no_helo),
        cmocka_unit_test(test_json_invalid_utf8),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_headers_hostile_inputs),
        cmocka_unit_test(test_percent_encoding_table),
        cmocka_unit_test(test_rcpt_json_golden),
        cmocka_unit_test(test_rcpt_json_tls),
        cmocka_unit_test(test_rcpt_json_escaping),
        cmocka_unit_test(test_rcpt_json_invalid_utf8),
        cmocka_unit_test(test_head_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
