/* test_app_reply.c - unit tests of app_reply.c: "<code> <esc> <text>" as the web app's
 * Smtphook-Reply header and the operator's reply_map give it (RFC 5321 §4.2, RFC 3463 §2,
 * RFC 2034 §4), and which replies may answer which HTTP status. Golden tables: one row per
 * input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "smtphook/app_reply.h"

#include "golden.h"

#define LONG_VALUE_BYTES 600 /* longest generated value */

#define FULL APP_REPLY_FULL
#define OPT  APP_REPLY_CODE_OPTIONAL

/* ---- golden values ------------------------------------------------------------------------ */

struct parse_case {
    const char *value;        /* the header or config value */
    size_t len;               /* its length */
    enum app_reply_form form; /* what the caller accepts */
    bool ok;                  /* expected result */
    unsigned code;            /* expected code when ok */
    const char *esc;          /* expected esc when ok */
    const char *text;         /* expected text when ok */
};

static const struct parse_case parse_cases[] = {
    /* The full form. */
    {S("550 5.1.1 No such user"), FULL, true, 550, "5.1.1", "No such user"},
    {S("250 2.0.0 Queued as 1234"), FULL, true, 250, "2.0.0", "Queued as 1234"},
    {S("451 4.3.0 Try again later"), FULL, true, 451, "4.3.0", "Try again later"},
    {S("452 4.2.2 Mailbox full"), FULL, true, 452, "4.2.2", "Mailbox full"},
    {S("554 5.7.1 Rejected by policy"), FULL, true, 554, "5.7.1", "Rejected by policy"},
    {S("400 4.0.0 x"), FULL, true, 400, "4.0.0", "x"},
    {S("559 5.999.999 x"), FULL, true, 559, "5.999.999", "x"},
    {S("500 5.10.100 x"), FULL, true, 500, "5.10.100", "x"},
    {S("550 5.01.001 leading zeros are in the grammar"), FULL, true, 550, "5.01.001",
     "leading zeros are in the grammar"},
    {S("550 5.1.1 !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"), FULL, true, 550, "5.1.1",
     "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"},
    /* Blanks around the value are trimmed; inside the text they are kept. */
    {S("  550 5.1.1 No such user  "), FULL, true, 550, "5.1.1", "No such user"},
    {S("\t550 5.1.1 No such user\t"), FULL, true, 550, "5.1.1", "No such user"},
    {S(" \t 550 5.1.1 a \t "), FULL, true, 550, "5.1.1", "a"},
    {S("550 5.1.1 No  such   user"), FULL, true, 550, "5.1.1", "No  such   user"},
    /* Several blanks, tabs too, between the parts (RFC 2034 §3 "one or more spaces"). */
    {S("550  5.1.1   No such user"), FULL, true, 550, "5.1.1", "No such user"},
    {S("550\t5.1.1\tNo such user"), FULL, true, 550, "5.1.1", "No such user"},
    {S("550 \t 5.1.1 \t No such user"), FULL, true, 550, "5.1.1", "No such user"},
    /* The text may look like anything printable, digits and codes included. */
    {S("550 5.1.1 550 5.1.1 x"), FULL, true, 550, "5.1.1", "550 5.1.1 x"},
    {S("550 5.1.1 -"), FULL, true, 550, "5.1.1", "-"},
    {S("550 5.1.1 5.1.1"), FULL, true, 550, "5.1.1", "5.1.1"},

    /* Codes (RFC 5321 §4.2). */
    {S("421 4.3.2 Shutting down"), FULL, false, 0, "", ""},
    {S("221 2.0.0 Bye"), FULL, false, 0, "", ""},
    {S("251 2.1.5 Forwarded"), FULL, false, 0, "", ""},
    {S("200 2.0.0 OK"), FULL, false, 0, "", ""},
    {S("354 3.0.0 Go ahead"), FULL, false, 0, "", ""},
    {S("150 2.0.0 x"), FULL, false, 0, "", ""},
    {S("650 5.0.0 x"), FULL, false, 0, "", ""},
    {S("050 5.0.0 x"), FULL, false, 0, "", ""},
    {S("999 5.0.0 x"), FULL, false, 0, "", ""},
    {S("560 5.0.0 second digit 6"), FULL, false, 0, "", ""},
    {S("590 5.0.0 second digit 9"), FULL, false, 0, "", ""},
    {S("460 4.0.0 x"), FULL, false, 0, "", ""},
    {S("55 5.1.1 x"), FULL, false, 0, "", ""},
    {S("5500 5.1.1 x"), FULL, false, 0, "", ""},
    {S("0550 5.1.1 x"), FULL, false, 0, "", ""},
    {S("+550 5.1.1 x"), FULL, false, 0, "", ""},
    {S("-550 5.1.1 x"), FULL, false, 0, "", ""},
    {S("55O 5.1.1 x"), FULL, false, 0, "", ""},
    {S("550-5.1.1 x"), FULL, false, 0, "", ""},
    {S("550.5.1.1 x"), FULL, false, 0, "", ""},
    {S("5505.1.1 x"), FULL, false, 0, "", ""},
    {S("x550 5.1.1 x"), FULL, false, 0, "", ""},

    /* Enhanced codes (RFC 3463 §2, class agreeing with the code: RFC 2034 §4). */
    {S("550 4.1.1 x"), FULL, false, 0, "", ""},
    {S("450 5.1.1 x"), FULL, false, 0, "", ""},
    {S("250 5.0.0 x"), FULL, false, 0, "", ""},
    {S("550 2.0.0 x"), FULL, false, 0, "", ""},
    {S("550 3.1.1 x"), FULL, false, 0, "", ""},
    {S("550 1.1.1 x"), FULL, false, 0, "", ""},
    {S("550 55.1.1 x"), FULL, false, 0, "", ""},
    {S("550 5.1 x"), FULL, false, 0, "", ""},
    {S("550 5.1. x"), FULL, false, 0, "", ""},
    {S("550 5..1 x"), FULL, false, 0, "", ""},
    {S("550 5.1.1. x"), FULL, false, 0, "", ""},
    {S("550 5.1.1.1 x"), FULL, false, 0, "", ""},
    {S("550 5.1000.1 x"), FULL, false, 0, "", ""},
    {S("550 5.1.1000 x"), FULL, false, 0, "", ""},
    {S("550 .1.1 x"), FULL, false, 0, "", ""},
    {S("550 5,1,1 x"), FULL, false, 0, "", ""},
    {S("550 5.1.1x"), FULL, false, 0, "", ""},
    {S("550 5.1.1-x"), FULL, false, 0, "", ""},
    {S("550 5.a.1 x"), FULL, false, 0, "", ""},
    {S("550 X.1.1 x"), FULL, false, 0, "", ""},
    {S("550 No such user"), FULL, false, 0, "", ""},

    /* Missing parts. */
    {S(""), FULL, false, 0, "", ""},
    {S("   "), FULL, false, 0, "", ""},
    {S(" \t "), FULL, false, 0, "", ""},
    {S("550"), FULL, false, 0, "", ""},
    {S("550 "), FULL, false, 0, "", ""},
    {S("550 5.1.1"), FULL, false, 0, "", ""},
    {S("550 5.1.1 "), FULL, false, 0, "", ""},
    {S("550 5.1.1 \t "), FULL, false, 0, "", ""},
    {S("5.1.1 No such user"), FULL, false, 0, "", ""},

    /* Hostile bytes: never a control character, CR, LF, NUL or a byte >= 0x80. */
    {S("550 5.1.1 No such\r\nuser"), FULL, false, 0, "", ""},
    {S("550 5.1.1 No such user\r\n"), FULL, false, 0, "", ""},
    {S("550 5.1.1 No such user\n"), FULL, false, 0, "", ""},
    {S("550 5.1.1 No such user\r"), FULL, false, 0, "", ""},
    {S("550 5.1.1 x\r\n250 2.0.0 smuggled"), FULL, false, 0, "", ""},
    {S("550 5.1.1 No\0such user"), FULL, false, 0, "", ""},
    {S("550 5.1.1 x\0"), FULL, false, 0, "", ""},
    {S("\0"
       "550 5.1.1 x"),
     FULL, false, 0, "", ""},
    {S("550\0"
       "5.1.1 x"),
     FULL, false, 0, "", ""},
    {S("550 5.1.1 No\tsuch user"), FULL, false, 0, "", ""},
    {S("550 5.1.1 No\x01such"), FULL, false, 0, "", ""},
    {S("550 5.1.1 No\x1bsuch"), FULL, false, 0, "", ""},
    {S("550 5.1.1 No\x7fsuch"), FULL, false, 0, "", ""},
    {S("550 5.1.1 caf\xc3\xa9"), FULL, false, 0, "", ""},
    {S("550 5.1.1 \xff"), FULL, false, 0, "", ""},
    {S("550 5.1.1 x\x80"), FULL, false, 0, "", ""},
    {S("550\v5.1.1 x"), FULL, false, 0, "", ""},
    {S("550\f5.1.1 x"), FULL, false, 0, "", ""},
    {S("\r550 5.1.1 x"), FULL, false, 0, "", ""},
    {S("\n550 5.1.1 x"), FULL, false, 0, "", ""},
    {S("550 5.1.1\r x"), FULL, false, 0, "", ""},
    {S("550\xa0"
       "5.1.1 x"),
     FULL, false, 0, "", ""},

    /* CODE_OPTIONAL (reply_map): the code alone, the code and the enhanced code, or all. */
    {S("550"), OPT, true, 550, "", ""},
    {S(" 550 "), OPT, true, 550, "", ""},
    {S("250"), OPT, true, 250, "", ""},
    {S("451"), OPT, true, 451, "", ""},
    {S("550 5.7.1"), OPT, true, 550, "5.7.1", ""},
    {S("550 5.7.1 \t"), OPT, true, 550, "5.7.1", ""},
    {S("550\t\t5.7.1"), OPT, true, 550, "5.7.1", ""},
    {S("550 5.7.1 Go away"), OPT, true, 550, "5.7.1", "Go away"},
    {S("421"), OPT, false, 0, "", ""},
    {S("421 4.3.2"), OPT, false, 0, "", ""},
    {S("354"), OPT, false, 0, "", ""},
    {S("220"), OPT, false, 0, "", ""},
    {S("550 Go away"), OPT, false, 0, "", ""},
    {S("550 4.7.1"), OPT, false, 0, "", ""},
    {S("550 5.7"), OPT, false, 0, "", ""},
    {S("550x"), OPT, false, 0, "", ""},
    {S("55"), OPT, false, 0, "", ""},
    {S(""), OPT, false, 0, "", ""},
    {S("550 5.7.1\r\n"), OPT, false, 0, "", ""},
    {S("550\r\n"), OPT, false, 0, "", ""},
    {S("550\n"), OPT, false, 0, "", ""},
    {S("550\0"), OPT, false, 0, "", ""},
    {S("550 5.7.1 caf\xc3\xa9"), OPT, false, 0, "", ""},
};

static void test_parse(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(parse_cases); i++) {
        const struct parse_case *c = &parse_cases[i];
        struct app_reply r;
        memset(&r, 0xA5, sizeof(r));
        const char *why = "untouched";
        bool ok = app_reply_parse(c->value, c->len, c->form, &r, &why);
        if (ok != c->ok || (ok && (r.code != c->code || strcmp(r.esc, c->esc) != 0 ||
                                   strcmp(r.text, c->text) != 0))) {
            golden_show("value", c->value, c->len);
            print_message("  form %d, why: %s\n", (int)c->form, why ? why : "(null)");
        }
        assert_int_equal(ok, c->ok);
        if (ok) {
            assert_null(why);
            assert_int_equal(r.code, c->code);
            assert_string_equal(r.esc, c->esc);
            assert_string_equal(r.text, c->text);
        } else {
            /* A static reason, and a cleared reply. */
            assert_non_null(why);
            assert_true(why[0] != '\0');
            assert_int_equal(r.code, 0);
            assert_string_equal(r.esc, "");
            assert_string_equal(r.text, "");
        }
    }
}

/* Every full value is also accepted where the code alone would do, with the same result. */
static void test_full_is_optional_too(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(parse_cases); i++) {
        const struct parse_case *c = &parse_cases[i];
        if (c->form != FULL || !c->ok)
            continue;
        struct app_reply r;
        assert_true(app_reply_parse(c->value, c->len, OPT, &r, NULL));
        assert_int_equal(r.code, c->code);
        assert_string_equal(r.esc, c->esc);
        assert_string_equal(r.text, c->text);
    }
}

/* ---- reasons -------------------------------------------------------------------------- */

struct why_case {
    const char *value;        /* refused value */
    enum app_reply_form form; /* what the caller accepts */
    const char *why;          /* the expected reason */
};

static const struct why_case why_cases[] = {
    {"550 4.1.1 x", FULL, "enhanced code class does not match the reply code"},
    {"421 4.3.2 x", FULL, "421 is refused: it announces a close that does not happen"},
    {"251 2.1.5 x", FULL, "the only success reply code allowed is 250"},
    {"354 3.0.0 x", FULL, "the reply code must be 250, 4yz or 5yz"},
    {"570 5.0.0 x", FULL, "the reply code's second digit must be 0 to 5 (RFC 5321 section 4.2)"},
    {"", FULL, "the value is empty"},
    {"5.1.1 x", FULL, "the value must start with a three-digit reply code"},
    {"550", FULL, "an enhanced status code and a text must follow the code"},
    {"550 5.1.1", FULL, "a text must follow the enhanced status code"},
    {"550 no", OPT, "an enhanced status code (like 5.1.1) must follow the reply code"},
    {"550 5.1 x", FULL,
     "the enhanced status code must be class.subject.detail (RFC 3463 section 2)"},
    {"550 5.1.1 a\tb", FULL, "the text must be printable ASCII without control characters"},
};

static void test_why(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(why_cases); i++) {
        const struct why_case *c = &why_cases[i];
        struct app_reply r;
        const char *why = NULL;
        assert_false(app_reply_parse(c->value, strlen(c->value), c->form, &r, &why));
        assert_non_null(why);
        assert_string_equal(why, c->why);
    }
}

/* ---- lengths and buffers -------------------------------------------------------------- */

/* The text may be APP_REPLY_TEXT_MAX bytes, not one more; trimmed blanks do not count. */
static void test_text_length(void **state)
{
    (void)state;
    char value[LONG_VALUE_BYTES];
    static const char head[] = "550 5.1.1 ";
    size_t h = sizeof(head) - 1;
    memcpy(value, head, h);
    memset(value + h, 'x', APP_REPLY_TEXT_MAX + 1);

    struct app_reply r;
    const char *why = NULL;
    assert_true(app_reply_parse(value, h + APP_REPLY_TEXT_MAX, FULL, &r, &why));
    assert_int_equal(strlen(r.text), APP_REPLY_TEXT_MAX);
    assert_false(app_reply_parse(value, h + APP_REPLY_TEXT_MAX + 1, FULL, &r, &why));
    assert_string_equal(why, "the text is longer than 256 bytes");

    /* Blanks after a text of the maximum length are trimmed, not counted. */
    memset(value + h + APP_REPLY_TEXT_MAX, ' ', 100);
    assert_true(app_reply_parse(value, h + APP_REPLY_TEXT_MAX + 100, FULL, &r, &why));
    assert_int_equal(strlen(r.text), APP_REPLY_TEXT_MAX);

    /* Inner spaces count. */
    memset(value + h, ' ', APP_REPLY_TEXT_MAX);
    value[h] = 'a';
    value[h + APP_REPLY_TEXT_MAX] = 'b';
    assert_false(app_reply_parse(value, h + APP_REPLY_TEXT_MAX + 1, FULL, &r, &why));
    value[h + APP_REPLY_TEXT_MAX - 1] = 'b';
    assert_true(app_reply_parse(value, h + APP_REPLY_TEXT_MAX, FULL, &r, &why));
    assert_int_equal(strlen(r.text), APP_REPLY_TEXT_MAX);
    assert_int_equal(r.text[0], 'a');
    assert_int_equal(r.text[APP_REPLY_TEXT_MAX - 1], 'b');
}

/* len is obeyed: bytes after it are never read, and a value cut short is judged as cut. */
static void test_len_is_the_end(void **state)
{
    (void)state;
    static const char value[] = "550 5.1.1 No such user\r\nXXXX";
    struct app_reply r;
    assert_true(app_reply_parse(value, 22, FULL, &r, NULL));
    assert_string_equal(r.text, "No such user");
    assert_true(app_reply_parse(value, 11, FULL, &r, NULL));
    assert_string_equal(r.text, "N");
    assert_false(app_reply_parse(value, 10, FULL, &r, NULL));
    assert_true(app_reply_parse(value, 9, OPT, &r, NULL));
    assert_string_equal(r.esc, "5.1.1");
    assert_false(app_reply_parse(value, 8, OPT, &r, NULL));
    assert_true(app_reply_parse(value, 3, OPT, &r, NULL));
    assert_int_equal(r.code, 550);
    assert_false(app_reply_parse(value, 2, OPT, &r, NULL));
    assert_false(app_reply_parse(value, 0, OPT, &r, NULL));
    assert_false(app_reply_parse(NULL, 0, OPT, &r, NULL));
    assert_false(app_reply_parse(value, 23, FULL, &r, NULL)); /* the CR */
}

/* A NULL why is allowed. */
static void test_why_optional(void **state)
{
    (void)state;
    struct app_reply r;
    assert_true(app_reply_parse(S("550 5.1.1 x"), FULL, &r, NULL));
    assert_false(app_reply_parse(S("550 4.1.1 x"), FULL, &r, NULL));
}

/* Every code from 000 to 999 in both forms: exactly 250 and 4yz/5yz (y <= 5) but 421. */
static void test_every_code(void **state)
{
    (void)state;
    for (unsigned code = 0; code < 1000; code++) {
        char value[32];
        unsigned cls = code / 100;
        int n = snprintf(value, sizeof(value), "%03u %u.0.0 text", code, cls);
        assert_true(n > 0);
        bool want = code == 250 || ((cls == 4 || cls == 5) && code / 10 % 10 <= 5 && code != 421);
        struct app_reply r;
        assert_int_equal(app_reply_parse(value, (size_t)n, FULL, &r, NULL), want);
        if (want)
            assert_int_equal(r.code, code);
        n = snprintf(value, sizeof(value), "%03u", code);
        assert_int_equal(app_reply_parse(value, (size_t)n, OPT, &r, NULL), want);
    }
}

/* ---- agreement ------------------------------------------------------------------------ */

struct agree_case {
    unsigned code;    /* the reply's code */
    long http_status; /* the HTTP status it would answer */
    bool agrees;      /* expected */
};

static const struct agree_case agree_cases[] = {
    {250, 200, true},   {250, 201, true},  {250, 204, true},  {250, 299, true},   {550, 200, false},
    {451, 204, false},  {550, 299, false}, {250, 300, false}, {250, 400, false},  {250, 500, false},
    {250, 199, false},  {250, 100, false}, {550, 400, true},  {550, 404, true},   {451, 500, true},
    {451, 503, true},   {554, 422, true},  {550, 300, true},  {450, 302, true},   {550, 100, true},
    {550, 0, true},     {550, -1, true},   {250, 0, false},   {250, -200, false}, {550, 600, true},
    {250, 2000, false}, {550, 1000, true}, {452, 429, true},
};

static void test_agrees(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(agree_cases); i++) {
        const struct agree_case *c = &agree_cases[i];
        struct app_reply r;
        memset(&r, 0, sizeof(r));
        r.code = c->code;
        if (app_reply_agrees(&r, c->http_status) != c->agrees)
            print_message("  code %u, status %ld\n", c->code, c->http_status);
        assert_int_equal(app_reply_agrees(&r, c->http_status), c->agrees);
    }
}

/* A parsed reply agrees with a status exactly when classes match as app_reply.h says. */
static void test_agrees_parsed(void **state)
{
    (void)state;
    static const long statuses[] = {100, 200, 250, 299, 301, 400, 404, 429, 500, 503, 599};
    static const char *const values[] = {"250 2.0.0 ok", "451 4.3.0 later", "550 5.1.1 no"};
    for (size_t v = 0; v < N(values); v++) {
        struct app_reply r;
        assert_true(app_reply_parse(values[v], strlen(values[v]), FULL, &r, NULL));
        for (size_t s = 0; s < N(statuses); s++) {
            bool ok2xx = statuses[s] >= 200 && statuses[s] <= 299;
            assert_int_equal(app_reply_agrees(&r, statuses[s]), ok2xx == (r.code == 250));
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_full_is_optional_too),
        cmocka_unit_test(test_why),
        cmocka_unit_test(test_text_length),
        cmocka_unit_test(test_len_is_the_end),
        cmocka_unit_test(test_why_optional),
        cmocka_unit_test(test_every_code),
        cmocka_unit_test(test_agrees),
        cmocka_unit_test(test_agrees_parsed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
