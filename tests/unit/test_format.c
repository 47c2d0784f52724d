/* test_format.c - format.c: the request of each format and preset over a small spool: its
 * header lines in order, and its body read back whole (exact framing for the multipart
 * forms, parsed for JSON), the Mailgun signature, and boundary clashes in field values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "smtphook/base64.h"
#include "smtphook/digest.h"
#include "smtphook/error.h"
#include "smtphook/format.h"
#include "smtphook/payload.h"

#define MESSAGE  "From: Alice <alice@example.org>\r\nSubject: hi\r\n\r\nbody\r\n"
#define BOUNDARY "smtphook-0123456789abcdef0123456789abcde"
#define TOKEN    "0123456789abcdef0123456789abcdef0123456789abcdef01"
#define KEY      "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
#define AUTH     "Authorization: Basic dXNlcjpwYXNz" /* user:pass */
#define MG_KEY   "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
#define TS       1767268800

static char from1[] = "alice@example.org";
static char rcpt1[] = "bob@example.com";
static char rcpt2[] = "carol+tag@example.com";
static char *rcpts[] = {rcpt1, rcpt2};

static const char *tmpdir(void)
{
    return getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";
}

static struct envelope sample(void)
{
    struct envelope env;
    memset(&env, 0, sizeof(env));
    strcpy(env.id, "66a1b2c3d4e5.0001.1");
    env.key = KEY;
    env.received_at_ms = 1767268800123;
    env.client_address = "192.0.2.7";
    env.client_port = 40001;
    env.helo = "client.example.org";
    env.esmtp = true;
    env.mail_from = from1;
    env.rcpt_to = rcpts;
    env.n_rcpt = 2;
    env.size = strlen(MESSAGE);
    env.body = ENVELOPE_BODY_8BITMIME;
    return env;
}

/* The fixture: an endpoint (two own headers, basic auth) and a spool holding MESSAGE. */
struct fx {
    struct config_endpoint ep;
    struct config_header headers[2];
    char auth[sizeof(AUTH)]; /* owned, as the config's line is */
    char mg_key[sizeof(MG_KEY)];
    struct spool *sp;
    struct envelope env;
    struct format_attempt at;
};

static void fx_init(struct fx *f, enum config_format format, enum config_preset preset,
                    uint64_t memory_bytes)
{
    memset(f, 0, sizeof(*f));
    f->headers[0] = (struct config_header){"X-App", "one"};
    f->headers[1] = (struct config_header){"X-Other", "two words"};
    strcpy(f->auth, AUTH);
    strcpy(f->mg_key, MG_KEY);
    f->ep.name = "app";
    f->ep.url = "http://127.0.0.1:1/hook";
    f->ep.headers = f->headers;
    f->ep.n_headers = 2;
    f->ep.format = format;
    f->ep.preset = preset;
    f->ep.basic_auth.header = f->auth;
    if (preset == CONFIG_PRESET_MAILGUN) {
        f->ep.basic_auth.header = NULL;
        f->ep.signing.scheme = CONFIG_SIGNING_MAILGUN;
        f->ep.signing.key = f->mg_key;
    }
    assert_int_equal(spool_new(tmpdir(), memory_bytes, &f->sp), 0);
    assert_int_equal(spool_append(f->sp, MESSAGE, strlen(MESSAGE)), 0);
    f->env = sample();
    f->at = (struct format_attempt){TS, BOUNDARY, TOKEN};
}

static void fx_free(struct fx *f)
{
    spool_free(f->sp);
}

/* body_of - the request's body read back whole, NUL-terminated; its size is exact. */
static char *body_of(struct format_request *r)
{
    size_t size = (size_t)r->body.size;
    char *out = malloc(size + 1);
    assert_non_null(out);
    size_t o = 0;
    while (o < size) {
        size_t got = 0;
        assert_int_equal(request_body_read(&r->body, o, out + o, 7, &got), 0);
        assert_true(got > 0);
        o += got;
    }
    size_t got = 1;
    char c;
    assert_int_equal(request_body_read(&r->body, o, &c, 1, &got), 0);
    assert_int_equal(got, 0);
    out[size] = '\0';
    return out;
}

/* expect_headers - r's header lines are exactly want (n lines), in order. */
static void expect_headers(const struct format_request *r, const char *const *want, size_t n)
{
    for (size_t i = 0; i < r->n_headers || i < n; i++) {
        const char *got = i < r->n_headers ? r->headers[i] : "(none)";
        const char *w = i < n ? want[i] : "(none)";
        if (strcmp(got, w) != 0)
            print_message("  header %zu: got \"%s\", want \"%s\"\n", i, got, w);
        assert_string_equal(got, w);
    }
}

/* build - format_build for f, which must succeed. */
static void build(struct fx *f, const struct mail_header_fields *fields, struct format_request *r)
{
    struct format_message msg = {f->sp, strlen(MESSAGE), true, false, fields};
    assert_int_equal(format_build(&f->ep, &f->env, &msg, &f->at, r), 0);
}

/* raw_headers - the payload header lines, then Authorization and the endpoint's own. */
static size_t raw_headers(const struct envelope *env, char **want, size_t max)
{
    char **lines = NULL;
    size_t n = 0;
    assert_int_equal(payload_headers(env, &lines, &n), 0);
    assert_true(n + 3 <= max);
    for (size_t i = 0; i < n; i++)
        want[i] = strdup(lines[i]);
    payload_headers_free(lines, n);
    want[n++] = strdup(AUTH);
    want[n++] = strdup("X-App: one");
    want[n++] = strdup("X-Other: two words");
    return n;
}

static void free_lines(char **l, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(l[i]);
}

static void test_raw(void **state)
{
    (void)state;
    const uint64_t kinds[] = {1 << 20, 0};
    for (size_t k = 0; k < 2; k++) {
        struct fx f;
        fx_init(&f, CONFIG_FORMAT_RAW, CONFIG_PRESET_NONE, kinds[k]);
        struct format_request r;
        build(&f, NULL, &r);
        char *want[16];
        size_t n = raw_headers(&f.env, want, 16);
        expect_headers(&r, (const char *const *)want, n);
        assert_string_equal(r.headers[0], "Content-Type: message/rfc822");
        assert_string_equal(r.headers[1], "X-Smtphook-Id: 66a1b2c3d4e5.0001.1");
        assert_string_equal(r.headers[2], "Idempotency-Key: " KEY);
        assert_memory_equal(r.headers[3], "X-Smtphook-Envelope: ", 21);
        free_lines(want, n);
        assert_int_equal(r.body.size, strlen(MESSAGE));
        char *body = body_of(&r);
        assert_string_equal(body, MESSAGE);
        free(body);
        assert_false(r.boundary_clash);
        if (kinds[k] != 0) /* the message alone, in memory: sent from there */
            assert_ptr_equal(request_body_memory(&r.body), spool_memory(f.sp));
        format_request_free(&r);
        assert_int_equal(r.n_headers, 0);
        fx_free(&f);
    }
}

/* Without a key, basic auth or own headers: only what the envelope gives. */
static void test_raw_minimal(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, CONFIG_FORMAT_RAW, CONFIG_PRESET_NONE, 1 << 20);
    f.env.key = NULL;
    f.ep.basic_auth.header = NULL;
    f.ep.n_headers = 0;
    struct format_request r;
    build(&f, NULL, &r);
    for (size_t i = 0; i < r.n_headers; i++) {
        assert_null(strstr(r.headers[i], "Idempotency-Key"));
        assert_null(strstr(r.headers[i], "Authorization"));
    }
    assert_string_equal(r.headers[r.n_headers - 1], "X-Smtphook-Rcpt-To: "
                                                    "bob@example.com, carol+tag@example.com");
    format_request_free(&r);
    fx_free(&f);
}

static void test_rails_relay(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, CONFIG_FORMAT_RAW, CONFIG_PRESET_RAILS_RELAY, 0);
    struct format_request r;
    build(&f, NULL, &r);
    char *want[16];
    size_t n = raw_headers(&f.env, want, 16);
    expect_headers(&r, (const char *const *)want, n);
    free_lines(want, n);
    char *body = body_of(&r);
    assert_string_equal(body, "X-Original-To: bob@example.com\r\n"
                              "X-Original-To: carol+tag@example.com\r\n" MESSAGE);
    assert_null(request_body_memory(&r.body));
    free(body);
    format_request_free(&r);
    fx_free(&f);
}

static void test_json(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, CONFIG_FORMAT_JSON, CONFIG_PRESET_NONE, 0);
    struct format_request r;
    build(&f, NULL, &r);
    const char *want[] = {"Content-Type: application/json",
                          "X-Smtphook-Id: 66a1b2c3d4e5.0001.1",
                          ("Idempotency-Key: " KEY),
                          AUTH,
                          "X-App: one",
                          "X-Other: two words"};
    expect_headers(&r, want, sizeof(want) / sizeof(want[0]));
    char *body = body_of(&r);
    json_error_t jerr;
    json_t *root = json_loads(body, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        print_message("  %s: %s\n", jerr.text, body);
    assert_non_null(root);
    assert_int_equal(json_object_size(root), 2);
    char *env_text = NULL;
    assert_int_equal(payload_envelope_json(&f.env, &env_text), 0);
    json_t *env = json_loads(env_text, 0, &jerr);
    assert_non_null(env);
    assert_true(json_equal(json_object_get(root, "envelope"), env));
    json_t *got_rcpts = json_object_get(json_object_get(root, "envelope"), "rcpt_to");
    assert_string_equal(json_string_value(json_array_get(got_rcpts, 1)), rcpt2);
    char enc[BASE64_SIZE(sizeof(MESSAGE)) + 1];
    base64_encode(MESSAGE, strlen(MESSAGE), enc);
    assert_string_equal(json_string_value(json_object_get(root, "message")), enc);
    /* the body is exactly that text, compact */
    char *exact = malloc(strlen(env_text) + strlen(enc) + 32);
    assert_non_null(exact);
    sprintf(exact, "{\"envelope\":%s,\"message\":\"%s\"}", env_text, enc);
    assert_string_equal(body, exact);
    free(exact);
    json_decref(env);
    json_decref(root);
    free(env_text);
    free(body);
    format_request_free(&r);
    fx_free(&f);
}

/* part - the bytes of one form part: its delimiter (CRLF before it unless first), its
 * headers and value, appended to dst. */
static void part(char *dst, bool first, const char *disp, const char *type, const char *value)
{
    strcat(dst, first ? "--" BOUNDARY : "\r\n--" BOUNDARY);
    strcat(dst, "\r\nContent-Disposition: form-data; ");
    strcat(dst, disp);
    strcat(dst, "\r\n");
    if (type != NULL) {
        strcat(dst, "Content-Type: ");
        strcat(dst, type);
        strcat(dst, "\r\n");
    }
    strcat(dst, "\r\n");
    strcat(dst, value);
}

#define CLOSE    "\r\n--" BOUNDARY "--\r\n"
#define BODY_MAX 8192

static void test_multipart(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, CONFIG_FORMAT_MULTIPART, CONFIG_PRESET_NONE, 1 << 20);
    struct format_request r;
    build(&f, NULL, &r);
    const char *want[] = {"Content-Type: multipart/form-data; boundary=" BOUNDARY,
                          "X-Smtphook-Id: 66a1b2c3d4e5.0001.1",
                          ("Idempotency-Key: " KEY),
                          AUTH,
                          "X-App: one",
                          "X-Other: two words"};
    expect_headers(&r, want, sizeof(want) / sizeof(want[0]));
    char *env_text = NULL;
    assert_int_equal(payload_envelope_json(&f.env, &env_text), 0);
    char *exact = calloc(1, BODY_MAX);
    assert_non_null(exact);
    part(exact, true, "name=\"envelope\"", "application/json", env_text);
    part(exact, false, "name=\"message\"; filename=\"message.eml\"", "message/rfc822", MESSAGE);
    strcat(exact, CLOSE);
    char *body = body_of(&r);
    assert_string_equal(body, exact);
    assert_int_equal(r.body.size, strlen(exact));
    assert_false(r.boundary_clash);
    free(exact);
    free(body);
    free(env_text);
    format_request_free(&r);
    fx_free(&f);
}

static void test_mailgun(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, CONFIG_FORMAT_MULTIPART, CONFIG_PRESET_MAILGUN, 0);
    char from[] = "Alice <alice@example.org>", subject[] = "hi";
    struct mail_header_fields fields = {from, NULL, subject};
    assert_true(format_needs_fields(&f.ep));
    struct format_request r;
    build(&f, &fields, &r);
    const char *want[] = {"Content-Type: multipart/form-data; boundary=" BOUNDARY,
                          "X-Smtphook-Id: 66a1b2c3d4e5.0001.1", ("Idempotency-Key: " KEY),
                          "X-App: one", "X-Other: two words"};
    expect_headers(&r, want, sizeof(want) / sizeof(want[0]));
    /* signature: hex HMAC-SHA256 under the key of timestamp and token, concatenated */
    const char signed_text[] = "1767268800" TOKEN;
    uint8_t mac[DIGEST_BYTES];
    assert_int_equal(digest_hmac(MG_KEY, strlen(MG_KEY), signed_text, strlen(signed_text), mac), 0);
    char hex[DIGEST_HEX + 1];
    digest_hex(mac, hex);
    char *exact = calloc(1, BODY_MAX);
    assert_non_null(exact);
    part(exact, true, "name=\"recipient\"", NULL, "bob@example.com, carol+tag@example.com");
    part(exact, false, "name=\"sender\"", NULL, "alice@example.org");
    part(exact, false, "name=\"from\"", NULL, "Alice <alice@example.org>");
    part(exact, false, "name=\"subject\"", NULL, "hi");
    part(exact, false, "name=\"body-mime\"", NULL, MESSAGE);
    part(exact, false, "name=\"timestamp\"", NULL, "1767268800");
    part(exact, false, "name=\"token\"", NULL, TOKEN);
    part(exact, false, "name=\"signature\"", NULL, hex);
    strcat(exact, CLOSE);
    char *body = body_of(&r);
    if (strcmp(body, exact) != 0)
        print_message("got:\n%s\nwant:\n%s\n", body, exact);
    assert_string_equal(body, exact);
    assert_false(r.boundary_clash);
    free(body);
    format_request_free(&r);

    /* fields missing: empty values, same framing */
    struct mail_header_fields none = {NULL, NULL, NULL};
    build(&f, &none, &r);
    body = body_of(&r);
    assert_non_null(strstr(body, "name=\"from\"\r\n\r\n\r\n--" BOUNDARY));
    assert_non_null(strstr(body, "name=\"subject\"\r\n\r\n\r\n--" BOUNDARY));
    free(body);
    format_request_free(&r);
    build(&f, NULL, &r); /* NULL fields: as if none */
    char *body2 = body_of(&r);
    format_request_free(&r);
    build(&f, &none, &r);
    body = body_of(&r);
    assert_string_equal(body, body2);
    free(body);
    free(body2);
    format_request_free(&r);

    /* a subject holding the boundary clashes */
    char clash[] = "re: " BOUNDARY " x";
    struct mail_header_fields cf = {from, NULL, clash};
    build(&f, &cf, &r);
    assert_true(r.boundary_clash);
    format_request_free(&r);
    free(exact);
    fx_free(&f);
}

static void test_sendgrid(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, CONFIG_FORMAT_MULTIPART, CONFIG_PRESET_SENDGRID, 1 << 20);
    char from[] = "Alice <alice@example.org>", to[] = "Bob <bob@example.com>",
         subject[] = "caf\xc3\xa9";
    struct mail_header_fields fields = {from, to, subject};
    assert_true(format_needs_fields(&f.ep));
    struct format_request r;
    build(&f, &fields, &r);
    const char *want[] = {"Content-Type: multipart/form-data; boundary=" BOUNDARY,
                          "X-Smtphook-Id: 66a1b2c3d4e5.0001.1",
                          ("Idempotency-Key: " KEY),
                          AUTH,
                          "X-App: one",
                          "X-Other: two words"};
    expect_headers(&r, want, sizeof(want) / sizeof(want[0]));
    char *exact = calloc(1, BODY_MAX);
    assert_non_null(exact);
    part(exact, true, "name=\"to\"", NULL, "Bob <bob@example.com>");
    part(exact, false, "name=\"from\"", NULL, "Alice <alice@example.org>");
    part(exact, false, "name=\"subject\"", NULL, "caf\xc3\xa9");
    part(exact, false, "name=\"sender_ip\"", NULL, "192.0.2.7");
    part(exact, false, "name=\"envelope\"", NULL,
         "{\"to\":[\"bob@example.com\",\"carol+tag@example.com\"],\"from\":\"alice@example.org\"}");
    part(exact, false, "name=\"charsets\"", NULL,
         "{\"to\":\"UTF-8\",\"from\":\"UTF-8\",\"subject\":\"UTF-8\"}");
    part(exact, false, "name=\"email\"", NULL, MESSAGE);
    strcat(exact, CLOSE);
    char *body = body_of(&r);
    if (strcmp(body, exact) != 0)
        print_message("got:\n%s\nwant:\n%s\n", body, exact);
    assert_string_equal(body, exact);
    assert_false(r.boundary_clash);
    /* the envelope field parses as SendGrid's object */
    const char *e = strstr(body, "name=\"envelope\"\r\n\r\n") + strlen("name=\"envelope\"\r\n\r\n");
    json_error_t jerr;
    json_t *env = json_loadb(e, (size_t)(strstr(e, "\r\n--") - e), 0, &jerr);
    assert_non_null(env);
    assert_string_equal(json_string_value(json_object_get(env, "from")), "alice@example.org");
    assert_int_equal(json_array_size(json_object_get(env, "to")), 2);
    json_decref(env);
    free(body);
    format_request_free(&r);

    /* the null sender is "" */
    char empty[] = "";
    f.env.mail_from = empty;
    build(&f, &fields, &r);
    body = body_of(&r);
    assert_non_null(strstr(body, "\"from\":\"\"}"));
    free(body);
    format_request_free(&r);
    f.env.mail_from = from1;

    /* a To holding the boundary clashes; so does a From */
    char clash[] = BOUNDARY;
    struct mail_header_fields c1 = {from, clash, subject}, c2 = {clash, to, subject};
    build(&f, &c1, &r);
    assert_true(r.boundary_clash);
    format_request_free(&r);
    build(&f, &c2, &r);
    assert_true(r.boundary_clash);
    format_request_free(&r);
    /* only the whole boundary counts */
    char partial[] = "smtphook-0123456789abcdef0123456789abcd";
    struct mail_header_fields c3 = {partial, partial, partial};
    build(&f, &c3, &r);
    assert_false(r.boundary_clash);
    format_request_free(&r);
    free(exact);
    fx_free(&f);
}

/* Only the presets with form fields read the header fields. */
/* test_labels - the form fields holding message bytes that are not UTF-8 are labelled
 * ISO-8859-1; the Mailgun recipient follows body-mime's label; SendGrid's charsets say
 * which. A UTF-8 message and fields have no label. */
static void test_labels(void **state)
{
    (void)state;
    static const char latin1[] = "caf\xe9";
    char subject[sizeof(latin1)];
    memcpy(subject, latin1, sizeof(latin1));
    struct mail_header_fields fields = {NULL, NULL, subject};
    static const char label[] = "Content-Type: text/plain; charset=ISO-8859-1\r\n";
    for (int utf8 = 0; utf8 < 2; utf8++) {
        struct fx f;
        fx_init(&f, CONFIG_FORMAT_MULTIPART, CONFIG_PRESET_MAILGUN, 1 << 20);
        struct format_request r;
        struct format_message msg = {f.sp, strlen(MESSAGE), utf8 == 1, false, &fields};
        assert_int_equal(format_build(&f.ep, &f.env, &msg, &f.at, &r), 0);
        char *body = body_of(&r);
        char *mime = strstr(body, "name=\"body-mime\"\r\n");
        char *rcpt = strstr(body, "name=\"recipient\"\r\n");
        char *subj = strstr(body, "name=\"subject\"\r\n");
        assert_non_null(mime);
        assert_non_null(rcpt);
        assert_non_null(subj);
        mime += strlen("name=\"body-mime\"\r\n");
        rcpt += strlen("name=\"recipient\"\r\n");
        subj += strlen("name=\"subject\"\r\n");
        assert_int_equal(strncmp(mime, label, strlen(label)) == 0, utf8 == 0);
        assert_int_equal(strncmp(rcpt, label, strlen(label)) == 0, utf8 == 0);
        assert_int_equal(strncmp(subj, label, strlen(label)), 0); /* its own bytes decide */
        free(body);
        format_request_free(&r);
        fx_free(&f);

        fx_init(&f, CONFIG_FORMAT_MULTIPART, CONFIG_PRESET_SENDGRID, 1 << 20);
        msg.spool = f.sp;
        assert_int_equal(format_build(&f.ep, &f.env, &msg, &f.at, &r), 0);
        body = body_of(&r);
        assert_non_null(
            strstr(body, "{\"to\":\"UTF-8\",\"from\":\"UTF-8\",\"subject\":\"iso-8859-1\"}"));
        char *email = strstr(body, "name=\"email\"\r\n");
        assert_non_null(email);
        email += strlen("name=\"email\"\r\n");
        assert_int_equal(strncmp(email, label, strlen(label)) == 0, utf8 == 0);
        free(body);
        format_request_free(&r);
        fx_free(&f);
    }
}

static void test_needs_fields(void **state)
{
    (void)state;
    struct config_endpoint ep;
    memset(&ep, 0, sizeof(ep));
    const enum config_preset presets[] = {CONFIG_PRESET_NONE, CONFIG_PRESET_RAILS_RELAY,
                                          CONFIG_PRESET_MAILGUN, CONFIG_PRESET_SENDGRID};
    const bool want[] = {false, false, true, true};
    for (size_t i = 0; i < 4; i++) {
        ep.preset = presets[i];
        for (int fmt = CONFIG_FORMAT_RAW; fmt <= CONFIG_FORMAT_MULTIPART; fmt++) {
            if (presets[i] != CONFIG_PRESET_NONE && fmt != CONFIG_FORMAT_RAW)
                continue;
            ep.format = (enum config_format)fmt;
            assert_int_equal(format_needs_fields(&ep), want[i]);
        }
    }
}

/* The endpoint's basic auth line is left as it was (format.c splits it in place). */
static void test_auth_line_unchanged(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, CONFIG_FORMAT_JSON, CONFIG_PRESET_NONE, 1 << 20);
    struct format_request r;
    build(&f, NULL, &r);
    assert_string_equal(f.auth, AUTH);
    format_request_free(&r);
    fx_free(&f);
}

/* format_head_extra counts each Standard Webhooks signature at its length: "v1," and 44
 * base64 characters and a space, "v1a," and 88 and a space for an Ed25519 key. */
static void test_head_extra_signatures(void **state)
{
    (void)state;
    struct config_endpoint ep;
    memset(&ep, 0, sizeof(ep));
    ep.url = "http://127.0.0.1/hook";
    struct config_secret keys[3];
    memset(keys, 0, sizeof(keys));
    keys[1].ed25519 = true;
    ep.signing.scheme = CONFIG_SIGNING_STANDARD_WEBHOOKS;
    ep.signing.secrets = keys;
    ep.signing.n_secrets = 1;
    uint64_t one = format_head_extra(&ep);
    ep.signing.n_secrets = 2;
    assert_int_equal(format_head_extra(&ep), one + strlen("v1a,") + 88 + 1);
    ep.signing.n_secrets = 3;
    assert_int_equal(format_head_extra(&ep), one + (4 + 88 + 1) + (3 + 44 + 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raw),
        cmocka_unit_test(test_raw_minimal),
        cmocka_unit_test(test_rails_relay),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_multipart),
        cmocka_unit_test(test_mailgun),
        cmocka_unit_test(test_sendgrid),
        cmocka_unit_test(test_labels),
        cmocka_unit_test(test_needs_fields),
        cmocka_unit_test(test_auth_line_unchanged),
        cmocka_unit_test(test_head_extra_signatures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
