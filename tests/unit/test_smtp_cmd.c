/* test_smtp_cmd.c - unit tests of smtp_cmd.c: verb splitting, MAIL/RCPT path grammar
 * (RFC 5321 §4.1.2, §4.1.3), length limits (§4.5.3.1), ESMTP parameters (RFC 1870,
 * RFC 6152, RFC 6531) and strict UTF-8. Golden tables: one row per input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "smtphook/smtp_cmd.h"

#include "golden.h"

#define LONG_MAX_BYTES 600 /* longest generated argument */

static const char *syntax_name(enum smtp_syntax r)
{
    static const char *const names[] = {
        "OK",        "BAD_COMMAND",    "BAD_PATH",        "PATH_TOO_LONG",
        "NULL_PATH", "NEEDS_SMTPUTF8", "BAD_PARAM",       "UNKNOWN_PARAM",
        "BAD_SIZE",  "BAD_BODY",       "PARAM_NOT_ESMTP",
    };
    return (size_t)r < N(names) ? names[r] : "?";
}

/* ---- verbs -------------------------------------------------------------------------------- */

struct verb_case {
    const char *line;    /* command line without CRLF */
    size_t len;          /* its length */
    enum smtp_verb verb; /* expected verb */
    const char *arg;     /* expected argument */
    bool has_arg;        /* expected has_arg */
};

static const struct verb_case verb_cases[] = {
    {S("HELO client.example"), SMTP_VERB_HELO, "client.example", true},
    {S("helo x"), SMTP_VERB_HELO, "x", true},
    {S("EhLo [192.0.2.1]"), SMTP_VERB_EHLO, "[192.0.2.1]", true},
    {S("MAIL FROM:<a@b>"), SMTP_VERB_MAIL, "FROM:<a@b>", true},
    {S("mail from:<a@b> SIZE=10"), SMTP_VERB_MAIL, "from:<a@b> SIZE=10", true},
    {S("RCPT  TO:<a@b>  "), SMTP_VERB_RCPT, "TO:<a@b>", true},
    {S("RCPT TO:<a@b> \t"), SMTP_VERB_RCPT, "TO:<a@b>", true},
    {S("DATA"), SMTP_VERB_DATA, "", false},
    {S("data x"), SMTP_VERB_DATA, "x", true},
    {S("RSET"), SMTP_VERB_RSET, "", false},
    {S("NOOP"), SMTP_VERB_NOOP, "", false},
    {S("NOOP\t"), SMTP_VERB_NOOP, "", false},
    {S("NOOP x y  "), SMTP_VERB_NOOP, "x y", true},
    {S("QUIT"), SMTP_VERB_QUIT, "", false},
    {S("quit   "), SMTP_VERB_QUIT, "", false},
    {S("QUIT \t "), SMTP_VERB_QUIT, "", false},
    {S("VRFY user"), SMTP_VERB_VRFY, "user", true},
    {S("EXPN list"), SMTP_VERB_EXPN, "list", true},
    {S("HELP"), SMTP_VERB_HELP, "", false},
    {S("StartTLS"), SMTP_VERB_STARTTLS, "", false},
    {S("BDAT 10 LAST"), SMTP_VERB_BDAT, "10 LAST", true},
    {S("HELO a\tb"), SMTP_VERB_HELO, "a\tb", true},
    {S("FOO bar"), SMTP_VERB_UNKNOWN, "bar", true},
    {S(""), SMTP_VERB_UNKNOWN, "", false},
    {S("   "), SMTP_VERB_UNKNOWN, "", false},
    {S(" QUIT"), SMTP_VERB_UNKNOWN, "QUIT", true},
    {S("QUITX"), SMTP_VERB_UNKNOWN, "", false},
    {S("QUI"), SMTP_VERB_UNKNOWN, "", false},
    {S("MAILFROM:<a@b>"), SMTP_VERB_UNKNOWN, "", false},
    {S("MAIL\tFROM:<a@b>"), SMTP_VERB_UNKNOWN, "", false},
    {S("QU\0IT"), SMTP_VERB_UNKNOWN, "", false},
    {S("STARTTLSX"), SMTP_VERB_UNKNOWN, "", false},
};

static void test_verbs(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(verb_cases); i++) {
        const struct verb_case *c = &verb_cases[i];
        struct smtp_command cmd;
        memset(&cmd, 0xA5, sizeof(cmd));
        smtp_cmd_parse(c->line, c->len, &cmd);
        size_t want_len = strlen(c->arg);
        if (cmd.verb != c->verb || cmd.has_arg != c->has_arg || cmd.arg_len != want_len ||
            memcmp(cmd.arg, c->arg, want_len) != 0)
            golden_show("line", c->line, c->len);
        assert_int_equal(cmd.verb, c->verb);
        assert_int_equal(cmd.has_arg, c->has_arg);
        assert_int_equal(cmd.arg_len, want_len);
        assert_memory_equal(cmd.arg, c->arg, want_len);
        /* arg points into the line, never elsewhere. */
        assert_true(cmd.arg >= c->line && cmd.arg + cmd.arg_len <= c->line + c->len);
    }
}

static void test_verb_names(void **state)
{
    (void)state;
    static const struct {
        enum smtp_verb verb;
        const char *name;
    } names[] = {
        {SMTP_VERB_HELO, "HELO"}, {SMTP_VERB_EHLO, "EHLO"}, {SMTP_VERB_MAIL, "MAIL"},
        {SMTP_VERB_RCPT, "RCPT"}, {SMTP_VERB_DATA, "DATA"}, {SMTP_VERB_RSET, "RSET"},
        {SMTP_VERB_NOOP, "NOOP"}, {SMTP_VERB_QUIT, "QUIT"}, {SMTP_VERB_VRFY, "VRFY"},
        {SMTP_VERB_EXPN, "EXPN"}, {SMTP_VERB_HELP, "HELP"}, {SMTP_VERB_STARTTLS, "STARTTLS"},
        {SMTP_VERB_BDAT, "BDAT"}, {SMTP_VERB_UNKNOWN, ""},
    };
    for (size_t i = 0; i < N(names); i++) {
        assert_string_equal(smtp_cmd_verb_name(names[i].verb), names[i].name);
        if (names[i].verb == SMTP_VERB_UNKNOWN)
            continue;
        /* Round trip: the name parses back to its verb. */
        struct smtp_command cmd;
        smtp_cmd_parse(names[i].name, strlen(names[i].name), &cmd);
        assert_int_equal(cmd.verb, names[i].verb);
        assert_false(cmd.has_arg);
    }
}

/* ---- MAIL paths -------------------------------------------------------------------------- */

struct path_case {
    const char *arg;       /* argument of MAIL / RCPT */
    size_t len;            /* its length */
    bool esmtp;            /* EHLO was used */
    enum smtp_syntax want; /* expected result */
    const char *mailbox;   /* expected mailbox when OK */
    size_t at;             /* expected '@' offset when OK */
    bool non_ascii;        /* expected non_ascii when OK */
};

#define E true  /* after EHLO */
#define H false /* after HELO */

static const struct path_case mail_cases[] = {
    /* Valid paths. */
    {S("FROM:<a@b>"), E, SMTP_SYNTAX_OK, "a@b", 1, false},
    {S("from:<a@b>"), E, SMTP_SYNTAX_OK, "a@b", 1, false},
    {S("From:<a@b>"), H, SMTP_SYNTAX_OK, "a@b", 1, false},
    {S("FROM: <a@b>"), E, SMTP_SYNTAX_OK, "a@b", 1, false},
    {S("FROM:   <a@b>"), E, SMTP_SYNTAX_OK, "a@b", 1, false},
    {S("FROM:<a@b>   "), E, SMTP_SYNTAX_OK, "a@b", 1, false},
    {S("FROM:<>"), E, SMTP_SYNTAX_OK, "", 0, false},
    {S("FROM:<>"), H, SMTP_SYNTAX_OK, "", 0, false},
    {S("FROM:<first.last@example.com>"), E, SMTP_SYNTAX_OK, "first.last@example.com", 10, false},
    {S("FROM:<First.Last@Example.COM>"), E, SMTP_SYNTAX_OK, "First.Last@Example.COM", 10, false},
    {S("FROM:<a.b.c.d@x.y.z>"), E, SMTP_SYNTAX_OK, "a.b.c.d@x.y.z", 7, false},
    {S("FROM:<!#$%&'*+-/=?^_`{|}~@x.y>"), E, SMTP_SYNTAX_OK, "!#$%&'*+-/=?^_`{|}~@x.y", 19, false},
    {S("FROM:<\"john doe\"@example.com>"), E, SMTP_SYNTAX_OK, "\"john doe\"@example.com", 10,
     false},
    {S("FROM:<\"a\\\"b\"@x.org>"), E, SMTP_SYNTAX_OK, "\"a\\\"b\"@x.org", 6, false},
    {S("FROM:<\"a\\\\b\"@x.org>"), E, SMTP_SYNTAX_OK, "\"a\\\\b\"@x.org", 6, false},
    {S("FROM:<\"a@b\"@c.d>"), E, SMTP_SYNTAX_OK, "\"a@b\"@c.d", 5, false},
    {S("FROM:<\"@\"@c.d>"), E, SMTP_SYNTAX_OK, "\"@\"@c.d", 3, false},
    {S("FROM:<\"a>b\"@c.d>"), E, SMTP_SYNTAX_OK, "\"a>b\"@c.d", 5, false},
    {S("FROM:<\"\"@x.y>"), E, SMTP_SYNTAX_OK, "\"\"@x.y", 2, false},
    {S("FROM:<\"a..b.\"@x.y>"), E, SMTP_SYNTAX_OK, "\"a..b.\"@x.y", 7, false},
    {S("FROM:<\"\\ \"@x.y>"), E, SMTP_SYNTAX_OK, "\"\\ \"@x.y", 4, false},
    {S("FROM:<@r1.example,@r2.example:u@d.example>"), E, SMTP_SYNTAX_OK, "u@d.example", 1, false},
    {S("FROM:<@r1.example:u@d.example>"), E, SMTP_SYNTAX_OK, "u@d.example", 1, false},
    {S("FROM:<a@a-b.c>"), E, SMTP_SYNTAX_OK, "a@a-b.c", 1, false},
    {S("FROM:<a@a--b.c>"), E, SMTP_SYNTAX_OK, "a@a--b.c", 1, false},
    {S("FROM:<a@1.2.3.4>"), E, SMTP_SYNTAX_OK, "a@1.2.3.4", 1, false},
    {S("FROM:<a@localhost>"), E, SMTP_SYNTAX_OK, "a@localhost", 1, false},
    {S("FROM:<u@[192.0.2.1]>"), E, SMTP_SYNTAX_OK, "u@[192.0.2.1]", 1, false},
    {S("FROM:<u@[0.0.0.0]>"), E, SMTP_SYNTAX_OK, "u@[0.0.0.0]", 1, false},
    {S("FROM:<u@[255.255.255.255]>"), E, SMTP_SYNTAX_OK, "u@[255.255.255.255]", 1, false},
    {S("FROM:<u@[IPv6:2001:db8::1]>"), E, SMTP_SYNTAX_OK, "u@[IPv6:2001:db8::1]", 1, false},
    {S("FROM:<u@[ipv6:::1]>"), E, SMTP_SYNTAX_OK, "u@[ipv6:::1]", 1, false},
    {S("FROM:<u@[IPv6:::ffff:192.0.2.1]>"), E, SMTP_SYNTAX_OK, "u@[IPv6:::ffff:192.0.2.1]", 1,
     false},
    {S("FROM:<u@[IPv6:1:2:3:4:5:6:7:8]>"), E, SMTP_SYNTAX_OK, "u@[IPv6:1:2:3:4:5:6:7:8]", 1, false},
    {S("FROM:<u@[x-tag:some+content]>"), E, SMTP_SYNTAX_OK, "u@[x-tag:some+content]", 1, false},
    {S("FROM:<\"q@x\"@[10.0.0.1]>"), E, SMTP_SYNTAX_OK, "\"q@x\"@[10.0.0.1]", 5, false},

    /* Prefix. */
    {S(""), E, SMTP_SYNTAX_BAD_COMMAND, NULL, 0, false},
    {S("<a@b>"), E, SMTP_SYNTAX_BAD_COMMAND, NULL, 0, false},
    {S("FROM <a@b>"), E, SMTP_SYNTAX_BAD_COMMAND, NULL, 0, false},
    {S("FROM :<a@b>"), E, SMTP_SYNTAX_BAD_COMMAND, NULL, 0, false},
    {S("FRO:<a@b>"), E, SMTP_SYNTAX_BAD_COMMAND, NULL, 0, false},
    {S("TO:<a@b>"), E, SMTP_SYNTAX_BAD_COMMAND, NULL, 0, false},

    /* Broken paths. */
    {S("FROM:"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:a@b"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a@b"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:a@b>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<<a@b>>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a@b>x"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a@b>>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a@b>\tSIZE=1"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<>x"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:< a@b>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a@b >"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<@b>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a@>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<@>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<.a@b>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a.@b>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a..b@c>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a b@c>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a(b)@c>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a,b@c>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<\"a\"b@c>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a\"b\"@c>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<\"ab@c>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<\"a\\\"@c>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a@@b>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a@b@c>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a@-b.c>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a@b-.c>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a@b.c->"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a@b..c>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a@b.>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a@.b>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a@b_c.d>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a@b:25>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<@a,b:u@d>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<@a:>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<@a u@d>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<@a,u@d>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<@[1.2.3.4]:u@d>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},

    /* Address literals. */
    {S("FROM:<a@[1.2.3]>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a@[1.2.3.4.5]>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a@[256.1.1.1]>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a@[1234.1.1.1]>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a@[1.2.3.]>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a@[1.2.3.4>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a@[1.2.3.4]x>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a@[ 1.2.3.4]>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a@[]>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a@[IPv6:]>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a@[IPv6:1::2::3]>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a@[IPv6:::\0]>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a@[IPv6:::\0\x01\xff]>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a@[IPv6:fe80::1%eth0]>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a@[IPv6:1.2.3.4]>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a@[IPv6:g::1]>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a@[IPv6:1:2:3:4:5:6:7:8:9]>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    /* Without "IPv6:" this is a General-address-literal with tag "2001" (§4.1.3). */
    {S("FROM:<a@[2001:db8::1]>"), E, SMTP_SYNTAX_OK, "a@[2001:db8::1]", 1, false},
    {S("FROM:<a@[tag:]>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a@[:x]>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a@[tag-:x]>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a@[t_g:x]>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a@[tag:a[b]>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a@[tag:a\\b]>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},

    /* NUL and control bytes are never part of a path. */
    {S("FROM:<a\0b@c>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<ab@c\0>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<\0>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a\x01@b>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a\x7f@b>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a\r\n@b>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a@b\r>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<\"a\0b\"@c>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<\"a\tb\"@c>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<\"a\x7f\"@c>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<\"a\\\x01\"@c>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<\"a\\\0\"@c>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a@[1.2.3.4\0]>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},

    /* UTF-8 (RFC 6531 §3.3): needs SMTPUTF8, and must be well formed. */
    {S("FROM:<j\xc3\xb6rg@example.com>"), E, SMTP_SYNTAX_NEEDS_SMTPUTF8, NULL, 0, false},
    {S("FROM:<j\xc3\xb6rg@example.com>"), H, SMTP_SYNTAX_NEEDS_SMTPUTF8, NULL, 0, false},
    {S("FROM:<a@b\xc3\xbc"
       "cher.de>"),
     E, SMTP_SYNTAX_NEEDS_SMTPUTF8, NULL, 0, false},
    {S("FROM:<j\xc3\xb6rg@example.com> SMTPUTF8"), E, SMTP_SYNTAX_OK, "j\xc3\xb6rg@example.com", 5,
     true},
    {S("FROM:<j\xc3\xb6rg@example.com> smtputf8 BODY=8BITMIME"), E, SMTP_SYNTAX_OK,
     "j\xc3\xb6rg@example.com", 5, true},
    {S("FROM:<a@b\xc3\xbc"
       "cher.de> SMTPUTF8"),
     E, SMTP_SYNTAX_OK,
     "a@b\xc3\xbc"
     "cher.de",
     1, true},
    {S("FROM:<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a> "
       "SMTPUTF8"),
     E, SMTP_SYNTAX_OK,
     "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a", 6, true},
    {S("FROM:<\"j\xc3\xb6 rg\"@x.y> SMTPUTF8"), E, SMTP_SYNTAX_OK, "\"j\xc3\xb6 rg\"@x.y", 8, true},
    {S("FROM:<\xf0\x9f\x98\x80@x.y> SMTPUTF8"), E, SMTP_SYNTAX_OK, "\xf0\x9f\x98\x80@x.y", 4, true},
    {S("FROM:<a@b> SMTPUTF8"), E, SMTP_SYNTAX_OK, "a@b", 1, false},
    /* A UTF-8 source route still needs SMTPUTF8, though it is dropped. */
    {S("FROM:<@r\xc3\xb6.x:a@b>"), E, SMTP_SYNTAX_NEEDS_SMTPUTF8, NULL, 0, false},
    {S("FROM:<@r\xc3\xb6.x:a@b> SMTPUTF8"), E, SMTP_SYNTAX_OK, "a@b", 1, false},
    /* Ill-formed UTF-8 is a bad path with or without SMTPUTF8. */
    {S("FROM:<a\xff@b> SMTPUTF8"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a\xff@b>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a\x80@b> SMTPUTF8"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a\xc3@b> SMTPUTF8"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a@b\xc3> SMTPUTF8"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a\xc0\xaf@b> SMTPUTF8"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a\xe0\x80\xaf@b> SMTPUTF8"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a\xed\xa0\x80@b> SMTPUTF8"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a\xf4\x90\x80\x80@b> SMTPUTF8"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a\xf8\x88\x80\x80\x80@b> SMTPUTF8"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a\xc2\x85@b> SMTPUTF8"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<\"a\xe2\x82\"@b> SMTPUTF8"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<\"a\\\xc3\xb6\"@b> SMTPUTF8"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
    {S("FROM:<a@[\xc3\xb6]> SMTPUTF8"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false},
};

/* check_path - compare one result with its row; print the row when they differ. */
static void check_path(const struct path_case *c, enum smtp_syntax r, const struct smtp_path *p)
{
    bool bad = r != c->want;
    if (!bad && r == SMTP_SYNTAX_OK)
        bad = strcmp(p->mailbox, c->mailbox) != 0 || p->at != c->at || p->non_ascii != c->non_ascii;
    if (bad) {
        golden_show("arg", c->arg, c->len);
        print_message("  got %s, want %s; mailbox \"%s\" at %zu\n", syntax_name(r),
                      syntax_name(c->want), p->mailbox, p->at);
    }
    assert_int_equal(r, c->want);
    if (r == SMTP_SYNTAX_OK) {
        assert_string_equal(p->mailbox, c->mailbox);
        assert_int_equal(p->len, strlen(c->mailbox));
        assert_int_equal(p->at, c->at);
        assert_int_equal(p->non_ascii, c->non_ascii);
        if (p->at < p->len)
            assert_int_equal(p->mailbox[p->at], '@');
    } else {
        /* Nothing half-parsed is left behind. */
        assert_string_equal(p->mailbox, "");
        assert_int_equal(p->len, 0);
    }
}

static void test_mail_paths(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(mail_cases); i++) {
        const struct path_case *c = &mail_cases[i];
        struct smtp_path path;
        struct smtp_mail_params params;
        memset(&path, 0x5A, sizeof(path));
        enum smtp_syntax r = smtp_cmd_mail(c->arg, c->len, c->esmtp, &path, &params);
        check_path(c, r, &path);
    }
}

/* ---- MAIL parameters --------------------------------------------------------------------- */

struct param_case {
    const char *arg;       /* argument of MAIL */
    size_t len;            /* its length */
    bool esmtp;            /* EHLO was used */
    enum smtp_syntax want; /* expected result */
    bool has_size;         /* expected params when OK */
    uint64_t size;
    enum envelope_body body;
    bool smtputf8;
};

#define NONE ENVELOPE_BODY_NONE
#define B7   ENVELOPE_BODY_7BIT
#define B8   ENVELOPE_BODY_8BITMIME
#define BB   ENVELOPE_BODY_BINARYMIME

static const struct param_case param_cases[] = {
    {S("FROM:<a@b>"), E, SMTP_SYNTAX_OK, false, 0, NONE, false},
    {S("FROM:<a@b> SIZE=1000"), E, SMTP_SYNTAX_OK, true, 1000, NONE, false},
    {S("FROM:<a@b> size=0"), E, SMTP_SYNTAX_OK, true, 0, NONE, false},
    {S("FROM:<> SIZE=007"), E, SMTP_SYNTAX_OK, true, 7, NONE, false},
    {S("FROM:<a@b> SIZE=18446744073709551614"), E, SMTP_SYNTAX_OK, true, UINT64_MAX - 1, NONE,
     false},
    {S("FROM:<a@b> SIZE=18446744073709551615"), E, SMTP_SYNTAX_OK, true, UINT64_MAX, NONE, false},
    {S("FROM:<a@b> SIZE=18446744073709551616"), E, SMTP_SYNTAX_OK, true, UINT64_MAX, NONE, false},
    {S("FROM:<a@b> SIZE=99999999999999999999999"), E, SMTP_SYNTAX_OK, true, UINT64_MAX, NONE,
     false},
    {S("FROM:<a@b> SIZE=abc"), E, SMTP_SYNTAX_BAD_SIZE, false, 0, NONE, false},
    {S("FROM:<a@b> SIZE=-1"), E, SMTP_SYNTAX_BAD_SIZE, false, 0, NONE, false},
    {S("FROM:<a@b> SIZE=+5"), E, SMTP_SYNTAX_BAD_SIZE, false, 0, NONE, false},
    {S("FROM:<a@b> SIZE=12a"), E, SMTP_SYNTAX_BAD_SIZE, false, 0, NONE, false},
    {S("FROM:<a@b> SIZE=1.5"), E, SMTP_SYNTAX_BAD_SIZE, false, 0, NONE, false},
    {S("FROM:<a@b> SIZE= "), E, SMTP_SYNTAX_BAD_SIZE, false, 0, NONE, false},
    {S("FROM:<a@b> SIZE="), E, SMTP_SYNTAX_BAD_SIZE, false, 0, NONE, false},
    {S("FROM:<a@b> SIZE"), E, SMTP_SYNTAX_BAD_SIZE, false, 0, NONE, false},
    {S("FROM:<a@b> SIZE=1=2"), E, SMTP_SYNTAX_BAD_SIZE, false, 0, NONE, false},
    {S("FROM:<a@b> SIZE=10\tBODY=7BIT"), E, SMTP_SYNTAX_BAD_SIZE, false, 0, NONE, false},
    {S("FROM:<a@b> BODY=7BIT"), E, SMTP_SYNTAX_OK, false, 0, B7, false},
    {S("FROM:<a@b> BODY=8BITMIME"), E, SMTP_SYNTAX_OK, false, 0, B8, false},
    {S("FROM:<a@b> body=8bitmime"), E, SMTP_SYNTAX_OK, false, 0, B8, false},
    {S("FROM:<a@b> BODY=7bit"), E, SMTP_SYNTAX_OK, false, 0, B7, false},
    {S("FROM:<a@b> BODY=BINARYMIME"), E, SMTP_SYNTAX_OK, false, 0, BB, false},
    {S("FROM:<a@b> body=binarymime SIZE=9"), E, SMTP_SYNTAX_OK, true, 9, BB, false},
    {S("FROM:<a@b> BODY=BINARY"), E, SMTP_SYNTAX_BAD_BODY, false, 0, NONE, false},
    {S("FROM:<a@b> BODY=8BIT"), E, SMTP_SYNTAX_BAD_BODY, false, 0, NONE, false},
    {S("FROM:<a@b> BODY="), E, SMTP_SYNTAX_BAD_BODY, false, 0, NONE, false},
    {S("FROM:<a@b> BODY"), E, SMTP_SYNTAX_BAD_BODY, false, 0, NONE, false},
    {S("FROM:<a@b> SMTPUTF8"), E, SMTP_SYNTAX_OK, false, 0, NONE, true},
    {S("FROM:<a@b> SmtpUtf8"), E, SMTP_SYNTAX_OK, false, 0, NONE, true},
    {S("FROM:<a@b> SMTPUTF8=yes"), E, SMTP_SYNTAX_BAD_PARAM, false, 0, NONE, false},
    {S("FROM:<a@b> SMTPUTF8="), E, SMTP_SYNTAX_BAD_PARAM, false, 0, NONE, false},
    {S("FROM:<a@b> SIZE=42 BODY=8BITMIME SMTPUTF8"), E, SMTP_SYNTAX_OK, true, 42, B8, true},
    {S("FROM:<a@b>   SMTPUTF8  BODY=7BIT   SIZE=1  "), E, SMTP_SYNTAX_OK, true, 1, B7, true},
    {S("FROM: <> SIZE=5"), E, SMTP_SYNTAX_OK, true, 5, NONE, false},
    {S("FROM:<a@b> FOO=bar"), E, SMTP_SYNTAX_UNKNOWN_PARAM, false, 0, NONE, false},
    {S("FROM:<a@b> FOO"), E, SMTP_SYNTAX_UNKNOWN_PARAM, false, 0, NONE, false},
    {S("FROM:<a@b> AUTH=<>"), E, SMTP_SYNTAX_UNKNOWN_PARAM, false, 0, NONE, false},
    {S("FROM:<a@b> X-1=v"), E, SMTP_SYNTAX_UNKNOWN_PARAM, false, 0, NONE, false},
    {S("FROM:<a@b> SIZE=1 FOO=bar"), E, SMTP_SYNTAX_UNKNOWN_PARAM, false, 0, NONE, false},
    {S("FROM:<a@b> SIZE=1 SIZE=2"), E, SMTP_SYNTAX_BAD_PARAM, false, 0, NONE, false},
    {S("FROM:<a@b> SIZE=1 size=1"), E, SMTP_SYNTAX_BAD_PARAM, false, 0, NONE, false},
    {S("FROM:<a@b> BODY=7BIT body=8BITMIME"), E, SMTP_SYNTAX_BAD_PARAM, false, 0, NONE, false},
    {S("FROM:<a@b> SMTPUTF8 SMTPUTF8"), E, SMTP_SYNTAX_BAD_PARAM, false, 0, NONE, false},
    {S("FROM:<a@b> =x"), E, SMTP_SYNTAX_BAD_PARAM, false, 0, NONE, false},
    {S("FROM:<a@b> -FOO=1"), E, SMTP_SYNTAX_BAD_PARAM, false, 0, NONE, false},
    {S("FROM:<a@b> F_O=1"), E, SMTP_SYNTAX_BAD_PARAM, false, 0, NONE, false},
    {S("FROM:<a@b> FOO=a=b"), E, SMTP_SYNTAX_BAD_PARAM, false, 0, NONE, false},
    {S("FROM:<a@b> FOO="), E, SMTP_SYNTAX_BAD_PARAM, false, 0, NONE, false},
    {S("FROM:<a@b> FOO=a\x01"), E, SMTP_SYNTAX_BAD_PARAM, false, 0, NONE, false},
    {S("FROM:<a@b> FOO=a\0"), E, SMTP_SYNTAX_BAD_PARAM, false, 0, NONE, false},
    {S("FROM:<a@b> <c@d>"), E, SMTP_SYNTAX_BAD_PARAM, false, 0, NONE, false},
    /* UTF-8 in a value is syntax only with SMTPUTF8 (RFC 6531 §3.3), wherever it stands. */
    {S("FROM:<a@b> FOO=\xc3\xb6"), E, SMTP_SYNTAX_BAD_PARAM, false, 0, NONE, false},
    {S("FROM:<a@b> FOO=\xc3\xb6 SMTPUTF8"), E, SMTP_SYNTAX_UNKNOWN_PARAM, false, 0, NONE, false},
    {S("FROM:<a@b> SMTPUTF8 FOO=\xff"), E, SMTP_SYNTAX_BAD_PARAM, false, 0, NONE, false},
    /* Parameters after HELO (RFC 1869 §4). */
    {S("FROM:<a@b> SIZE=10"), H, SMTP_SYNTAX_PARAM_NOT_ESMTP, false, 0, NONE, false},
    {S("FROM:<a@b> FOO"), H, SMTP_SYNTAX_PARAM_NOT_ESMTP, false, 0, NONE, false},
    {S("FROM:<a@b> SMTPUTF8"), H, SMTP_SYNTAX_PARAM_NOT_ESMTP, false, 0, NONE, false},
    {S("FROM:<a@b> =!"), H, SMTP_SYNTAX_PARAM_NOT_ESMTP, false, 0, NONE, false},
    {S("FROM:<a@b>  "), H, SMTP_SYNTAX_OK, false, 0, NONE, false},
    /* The path is checked before the parameters. */
    {S("FROM:<a@b SIZE=abc"), E, SMTP_SYNTAX_BAD_PATH, false, 0, NONE, false},
};

static void test_mail_params(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(param_cases); i++) {
        const struct param_case *c = &param_cases[i];
        struct smtp_path path;
        struct smtp_mail_params p;
        memset(&p, 0x5A, sizeof(p));
        enum smtp_syntax r = smtp_cmd_mail(c->arg, c->len, c->esmtp, &path, &p);
        if (r != c->want || p.has_size != c->has_size || p.size != c->size || p.body != c->body ||
            p.smtputf8 != c->smtputf8) {
            golden_show("arg", c->arg, c->len);
            print_message("  got %s, want %s\n", syntax_name(r), syntax_name(c->want));
        }
        assert_int_equal(r, c->want);
        /* On error the parameters are reset, never half-filled. */
        assert_int_equal(p.has_size, c->has_size);
        assert_true(p.size == c->size);
        assert_int_equal(p.body, c->body);
        assert_int_equal(p.smtputf8, c->smtputf8);
    }
}

/* ---- length limits (RFC 5321 §4.5.3.1) --------------------------------------------------- */

/* fill - n copies of ch at dst; returns dst + n. */
static char *fill(char *dst, char ch, size_t n)
{
    memset(dst, ch, n);
    return dst + n;
}

/* domain_of - a syntactically valid domain of exactly n (>= 1) octets: labels of up to 63
 * letters separated by dots, never ending in a dot. */
static char *domain_of(char *dst, size_t n)
{
    while (n > 0) {
        size_t label = n > 64 ? 63 : (n == 64 ? 62 : n);
        dst = fill(dst, 'd', label);
        n -= label;
        if (n > 0) {
            *dst++ = '.';
            n--;
        }
    }
    return dst;
}

/* mail_with - "FROM:<" local(local_len) "@" domain(domain_len) ">" [route]; runs MAIL. */
static enum smtp_syntax mail_with(size_t local_len, size_t domain_len, bool route,
                                  struct smtp_path *path)
{
    char arg[LONG_MAX_BYTES];
    char *p = arg;
    memcpy(p, "FROM:<", 6);
    p += 6;
    if (route) {
        memcpy(p, "@r.example:", 11);
        p += 11;
    }
    p = fill(p, 'l', local_len);
    *p++ = '@';
    p = domain_of(p, domain_len);
    *p++ = '>';
    struct smtp_mail_params params;
    return smtp_cmd_mail(arg, (size_t)(p - arg), true, path, &params);
}

static void test_lengths(void **state)
{
    (void)state;
    struct smtp_path path;

    /* Local part: 64 octets fit, 65 do not. */
    assert_int_equal(mail_with(64, 10, false, &path), SMTP_SYNTAX_OK);
    assert_int_equal(path.len, 64 + 1 + 10);
    assert_int_equal(path.at, 64);
    assert_int_equal(mail_with(65, 10, false, &path), SMTP_SYNTAX_PATH_TOO_LONG);
    assert_int_equal(path.len, 0);

    /* Path incl. brackets: 256 octets fit (mailbox 254), 257 do not. */
    assert_int_equal(mail_with(64, 256 - 2 - 65, false, &path), SMTP_SYNTAX_OK);
    assert_int_equal(path.len, 254);
    assert_int_equal(strlen(path.mailbox), 254);
    assert_int_equal(path.at, 64);
    assert_int_equal(mail_with(64, 256 - 2 - 65 + 1, false, &path), SMTP_SYNTAX_PATH_TOO_LONG);
    assert_int_equal(mail_with(1, 256 - 2 - 2, false, &path), SMTP_SYNTAX_OK);
    assert_int_equal(mail_with(1, 256 - 2 - 2 + 1, false, &path), SMTP_SYNTAX_PATH_TOO_LONG);

    /* Domain: 255 and 256 octets; both exceed the path limit too, never BAD_PATH. */
    assert_int_equal(mail_with(1, 255, false, &path), SMTP_SYNTAX_PATH_TOO_LONG);
    assert_int_equal(mail_with(1, 256, false, &path), SMTP_SYNTAX_PATH_TOO_LONG);

    /* The source route counts toward the path, though it is not stored. */
    assert_int_equal(mail_with(1, 256 - 2 - 2 - 11, true, &path), SMTP_SYNTAX_OK);
    assert_int_equal(path.len, 1 + 1 + 241);
    assert_int_equal(path.mailbox[0], 'l');
    assert_int_equal(path.at, 1);
    assert_int_equal(mail_with(1, 256 - 2 - 2 - 11 + 1, true, &path), SMTP_SYNTAX_PATH_TOO_LONG);

    /* A long path with a syntax error is a syntax error. */
    char arg[LONG_MAX_BYTES];
    char *p = arg;
    memcpy(p, "FROM:<", 6);
    p = fill(p + 6, 'x', 300);
    memcpy(p, " @b>", 4);
    p += 4;
    struct smtp_mail_params params;
    assert_int_equal(smtp_cmd_mail(arg, (size_t)(p - arg), true, &path, &params),
                     SMTP_SYNTAX_BAD_PATH);

    /* A quoted local part counts its quotes: "62x" is 64 octets, "63x" is 65. */
    p = arg;
    memcpy(p, "FROM:<\"", 7);
    p = fill(p + 7, 'x', 62);
    memcpy(p, "\"@b>", 4);
    p += 4;
    assert_int_equal(smtp_cmd_mail(arg, (size_t)(p - arg), true, &path, &params), SMTP_SYNTAX_OK);
    assert_int_equal(path.at, 64);
    p = arg;
    memcpy(p, "FROM:<\"", 7);
    p = fill(p + 7, 'x', 63);
    memcpy(p, "\"@b>", 4);
    p += 4;
    assert_int_equal(smtp_cmd_mail(arg, (size_t)(p - arg), true, &path, &params),
                     SMTP_SYNTAX_PATH_TOO_LONG);

    /* RCPT has the same limits. */
    p = arg;
    memcpy(p, "TO:<", 4);
    p = fill(p + 4, 'l', 65);
    memcpy(p, "@b>", 3);
    p += 3;
    assert_int_equal(smtp_cmd_rcpt(arg, (size_t)(p - arg), true, false, &path),
                     SMTP_SYNTAX_PATH_TOO_LONG);
}

/* ---- RCPT -------------------------------------------------------------------------------- */

struct rcpt_case {
    struct path_case c; /* argument, esmtp and expectation */
    bool utf8;          /* the transaction's MAIL had SMTPUTF8 */
};

static const struct rcpt_case rcpt_cases[] = {
    {{S("TO:<a@b>"), E, SMTP_SYNTAX_OK, "a@b", 1, false}, false},
    {{S("to: <a@b>"), E, SMTP_SYNTAX_OK, "a@b", 1, false}, false},
    {{S("To:<a@b>"), H, SMTP_SYNTAX_OK, "a@b", 1, false}, false},
    {{S("TO:<a@b>  "), E, SMTP_SYNTAX_OK, "a@b", 1, false}, false},
    {{S("TO:<\"x@y\"@z>"), E, SMTP_SYNTAX_OK, "\"x@y\"@z", 5, false}, false},
    {{S("TO:<\"x y\\\"z\"@example.com>"), E, SMTP_SYNTAX_OK, "\"x y\\\"z\"@example.com", 8, false},
     false},
    {{S("TO:<@r1,@r2:a@b>"), E, SMTP_SYNTAX_OK, "a@b", 1, false}, false},
    {{S("TO:<u@[IPv6:::1]>"), E, SMTP_SYNTAX_OK, "u@[IPv6:::1]", 1, false}, false},
    {{S("TO:<postmaster>"), E, SMTP_SYNTAX_OK, "postmaster", 10, false}, false},
    {{S("TO:<PostMaster>"), H, SMTP_SYNTAX_OK, "PostMaster", 10, false}, false},
    {{S("TO: <postmaster>  "), E, SMTP_SYNTAX_OK, "postmaster", 10, false}, false},
    {{S("TO:<postmaster@example.com>"), E, SMTP_SYNTAX_OK, "postmaster@example.com", 10, false},
     false},
    {{S("TO:<postmaster>x"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false}, false},
    {{S("TO:<postmaste>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false}, false},
    {{S("TO:<postmaster> NOTIFY=NEVER"), E, SMTP_SYNTAX_UNKNOWN_PARAM, NULL, 0, false}, false},
    {{S("TO:<>"), E, SMTP_SYNTAX_NULL_PATH, NULL, 0, false}, false},
    {{S("TO: <>"), H, SMTP_SYNTAX_NULL_PATH, NULL, 0, false}, false},
    {{S("TO:<> FOO"), E, SMTP_SYNTAX_NULL_PATH, NULL, 0, false}, false},
    {{S("TO:<a@b> NOTIFY=NEVER"), E, SMTP_SYNTAX_UNKNOWN_PARAM, NULL, 0, false}, false},
    {{S("TO:<a@b> ORCPT=rfc822;a@b"), E, SMTP_SYNTAX_UNKNOWN_PARAM, NULL, 0, false}, false},
    {{S("TO:<a@b> SIZE=1"), E, SMTP_SYNTAX_UNKNOWN_PARAM, NULL, 0, false}, false},
    {{S("TO:<a@b> NOTIFY=NEVER"), H, SMTP_SYNTAX_PARAM_NOT_ESMTP, NULL, 0, false}, false},
    {{S("TO:<a@b> x"), H, SMTP_SYNTAX_PARAM_NOT_ESMTP, NULL, 0, false}, false},
    {{S("FROM:<a@b>"), E, SMTP_SYNTAX_BAD_COMMAND, NULL, 0, false}, false},
    {{S("<a@b>"), E, SMTP_SYNTAX_BAD_COMMAND, NULL, 0, false}, false},
    {{S(""), E, SMTP_SYNTAX_BAD_COMMAND, NULL, 0, false}, false},
    {{S("TO:"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false}, false},
    {{S("TO:a@b"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false}, false},
    {{S("TO:<a@b"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false}, false},
    {{S("TO:<a@b>x"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false}, false},
    {{S("TO:<a>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false}, false},
    {{S("TO:<a@b\0>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false}, false},
    {{S("TO:<j\xc3\xb6rg@x.y>"), E, SMTP_SYNTAX_NEEDS_SMTPUTF8, NULL, 0, false}, false},
    {{S("TO:<j\xc3\xb6rg@x.y>"), E, SMTP_SYNTAX_OK, "j\xc3\xb6rg@x.y", 5, true}, true},
    {{S("TO:<a@x.y>"), E, SMTP_SYNTAX_OK, "a@x.y", 1, false}, true},
    {{S("TO:<j\xc3\xb6rg@x.y> SMTPUTF8"), E, SMTP_SYNTAX_UNKNOWN_PARAM, NULL, 0, false}, true},
    {{S("TO:<a\xff@b>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false}, true},
    {{S("TO:<a\xed\xbf\xbf@b>"), E, SMTP_SYNTAX_BAD_PATH, NULL, 0, false}, true},
};

static void test_rcpt(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(rcpt_cases); i++) {
        const struct rcpt_case *c = &rcpt_cases[i];
        struct smtp_path path;
        memset(&path, 0x5A, sizeof(path));
        enum smtp_syntax r = smtp_cmd_rcpt(c->c.arg, c->c.len, c->c.esmtp, c->utf8, &path);
        check_path(&c->c, r, &path);
    }
}

/* ---- UTF-8 (RFC 3629) -------------------------------------------------------------------- */

struct utf8_case {
    const char *s; /* bytes */
    size_t len;    /* their length */
    bool valid;    /* expected result */
};

static const struct utf8_case utf8_cases[] = {
    {S(""), true},
    {S("abc"), true},
    {S(" ~"), true},
    {S("j\xc3\xb6rg"), true},
    {S("\xc2\xa0"), true},         /* U+00A0, first after the C1 block */
    {S("\xdf\xbf"), true},         /* U+07FF */
    {S("\xe0\xa0\x80"), true},     /* U+0800 */
    {S("\xe2\x82\xac"), true},     /* U+20AC */
    {S("\xed\x9f\xbf"), true},     /* U+D7FF, below the surrogates */
    {S("\xee\x80\x80"), true},     /* U+E000, above them */
    {S("\xef\xbf\xbf"), true},     /* U+FFFF */
    {S("\xf0\x90\x80\x80"), true}, /* U+10000 */
    {S("\xf0\x9f\x98\x80"), true}, /* U+1F600 */
    {S("\xf4\x8f\xbf\xbf"), true}, /* U+10FFFF */
    {S("a\0b"), false},
    {S("\t"), false},
    {S("\r\n"), false},
    {S("\x1f"), false},
    {S("\x7f"), false},
    {S("\x80"), false},
    {S("\xbf"), false},
    {S("\xc0\x80"), false},             /* overlong NUL */
    {S("\xc1\xbf"), false},             /* overlong */
    {S("\xc2\x80"), false},             /* U+0080, C1 control */
    {S("\xc2\x9f"), false},             /* U+009F, C1 control */
    {S("\xc3"), false},                 /* truncated */
    {S("\xc3\x28"), false},             /* bad continuation */
    {S("\xe0\x9f\xbf"), false},         /* overlong */
    {S("\xe2\x82"), false},             /* truncated */
    {S("\xe2\x28\xa1"), false},         /* bad continuation */
    {S("\xe2\x82\x28"), false},         /* bad continuation */
    {S("\xed\xa0\x80"), false},         /* U+D800 surrogate */
    {S("\xed\xbf\xbf"), false},         /* U+DFFF surrogate */
    {S("\xf0\x8f\xbf\xbf"), false},     /* overlong */
    {S("\xf0\x9f\x98"), false},         /* truncated */
    {S("\xf4\x90\x80\x80"), false},     /* U+110000 */
    {S("\xf5\x80\x80\x80"), false},     /* no such lead byte */
    {S("\xf8\x88\x80\x80\x80"), false}, /* five-byte form */
    {S("\xfe"), false},
    {S("\xff"), false},
    {S("ok\xc3\xb6\xff"), false},
};

static void test_valid_utf8(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(utf8_cases); i++) {
        const struct utf8_case *c = &utf8_cases[i];
        bool got = smtp_cmd_valid_utf8(c->s, c->len);
        if (got != c->valid)
            golden_show("bytes", c->s, c->len);
        assert_int_equal(got, c->valid);
    }
    /* Every ASCII byte alone: printable ones only. */
    for (int b = 0; b < 0x80; b++) {
        char ch = (char)b;
        assert_int_equal(smtp_cmd_valid_utf8(&ch, 1), b >= 0x20 && b != 0x7f);
    }
    /* The length is honoured: bytes past it are not read. */
    assert_true(smtp_cmd_valid_utf8("ab\xff", 2));
    assert_false(smtp_cmd_valid_utf8("\xc3\xb6", 1));
}

/* ---- BDAT (RFC 3030 §2) ------------------------------------------------------------------ */

struct bdat_case {
    const char *arg; /* argument of BDAT */
    size_t len;      /* its length */
    bool ok;         /* accepted */
    uint64_t size;   /* chunk size when accepted */
    bool last;       /* LAST given */
};

static const struct bdat_case bdat_cases[] = {
    {S("0"), true, 0, false},
    {S("0 LAST"), true, 0, true},
    {S("1000"), true, 1000, false},
    {S("1000 LAST"), true, 1000, true},
    {S("42 last"), true, 42, true},
    {S("42 LaSt"), true, 42, true},
    {S("42   LAST  "), true, 42, true},
    {S("42 \t"), true, 42, false},
    {S("007"), true, 7, false},
    {S("18446744073709551615"), true, UINT64_MAX, false},
    {S("18446744073709551615 LAST"), true, UINT64_MAX, true},
    {S("18446744073709551616"), false, 0, false},
    {S("99999999999999999999999 LAST"), false, 0, false},
    {S(""), false, 0, false},
    {S("LAST"), false, 0, false},
    {S("-1"), false, 0, false},
    {S("+1"), false, 0, false},
    {S("1.5"), false, 0, false},
    {S("12a"), false, 0, false},
    {S("0x10"), false, 0, false},
    {S("12LAST"), false, 0, false},
    {S("12\tLAST"), false, 0, false},
    {S("12 LAS"), false, 0, false},
    {S("12 LASTX"), false, 0, false},
    {S("12 LAST LAST"), false, 0, false},
    {S("12 FIRST"), false, 0, false},
    {S("12 LAST\0"), false, 0, false},
    {S("1\0 LAST"), false, 0, false},
};

static void test_bdat(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(bdat_cases); i++) {
        const struct bdat_case *c = &bdat_cases[i];
        uint64_t size = 99;
        bool last = true;
        bool ok = smtp_cmd_bdat(c->arg, c->len, &size, &last);
        if (ok != c->ok || size != c->size || last != c->last)
            golden_show("arg", c->arg, c->len);
        assert_int_equal(ok, c->ok);
        assert_true(size == c->size);
        assert_int_equal(last, c->last);
    }
    /* The size alone, read even when the rest of the argument is wrong. */
    static const struct {
        const char *arg;
        bool ok;
        uint64_t size;
    } sizes[] = {
        {"12", true, 12},
        {"12 LAST", true, 12},
        {"12 LASTT", true, 12},
        {"12\tx", true, 12},
        {"0 2", true, 0},
        {"12x", false, 0},
        {"x12", false, 0},
        {"", false, 0},
        {" 12", false, 0},
        {"18446744073709551615 z", true, UINT64_MAX},
        {"18446744073709551616", false, 0},
    };
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint64_t size = 7;
        bool ok = smtp_cmd_bdat_size(sizes[i].arg, strlen(sizes[i].arg), &size);
        if (ok != sizes[i].ok)
            golden_show("size arg", sizes[i].arg, strlen(sizes[i].arg));
        assert_int_equal(ok, sizes[i].ok);
        if (ok)
            assert_true(size == sizes[i].size);
    }
    /* Through smtp_cmd_parse, as the session sees it. */
    static const char line[] = "bdat  512   last ";
    struct smtp_command cmd;
    smtp_cmd_parse(line, sizeof(line) - 1, &cmd);
    assert_int_equal(cmd.verb, SMTP_VERB_BDAT);
    uint64_t size;
    bool last;
    assert_true(smtp_cmd_bdat(cmd.arg, cmd.arg_len, &size, &last));
    assert_true(size == 512);
    assert_true(last);
}

/* ---- whole command lines ----------------------------------------------------------------- */

/* A line goes through smtp_cmd_parse first, as the session does it. */
static void test_through_parse(void **state)
{
    (void)state;
    static const char line[] = "mail   FROM: <\"a b\"@[IPv6:::1]>  SIZE=12 BODY=8bitmime \t";
    struct smtp_command cmd;
    smtp_cmd_parse(line, sizeof(line) - 1, &cmd);
    assert_int_equal(cmd.verb, SMTP_VERB_MAIL);
    struct smtp_path path;
    struct smtp_mail_params params;
    assert_int_equal(smtp_cmd_mail(cmd.arg, cmd.arg_len, true, &path, &params), SMTP_SYNTAX_OK);
    assert_string_equal(path.mailbox, "\"a b\"@[IPv6:::1]");
    assert_int_equal(path.at, 5);
    assert_true(params.has_size);
    assert_true(params.size == 12);
    assert_int_equal(params.body, ENVELOPE_BODY_8BITMIME);
    assert_false(params.smtputf8);

    static const char rcpt[] = "RCPT TO:<Postmaster>";
    smtp_cmd_parse(rcpt, sizeof(rcpt) - 1, &cmd);
    assert_int_equal(cmd.verb, SMTP_VERB_RCPT);
    assert_int_equal(smtp_cmd_rcpt(cmd.arg, cmd.arg_len, true, false, &path), SMTP_SYNTAX_OK);
    assert_string_equal(path.mailbox, "Postmaster");
    assert_int_equal(path.at, path.len);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verbs),      cmocka_unit_test(test_verb_names),
        cmocka_unit_test(test_mail_paths), cmocka_unit_test(test_mail_params),
        cmocka_unit_test(test_lengths),    cmocka_unit_test(test_rcpt),
        cmocka_unit_test(test_valid_utf8), cmocka_unit_test(test_through_parse),
        cmocka_unit_test(test_bdat),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
