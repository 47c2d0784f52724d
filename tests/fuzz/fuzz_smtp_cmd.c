/* fuzz_smtp_cmd.c - fuzz target: one command line through smtp_cmd_parse, then its argument
 * (and the raw line) through smtp_cmd_mail, smtp_cmd_rcpt and smtp_cmd_bdat.
 *
 * Input layout: h[0] bit 0 = the client said EHLO (esmtp), bit 1 = the transaction has
 * SMTPUTF8 (utf8 for RCPT); the rest is the command line without CRLF.
 * Invariants (abort on violation): the verb and argument lie inside the line; an accepted
 * path is NUL-terminated, len == strlen, len <= SMTP_PATH_MAX, at <= len, the RFC 5321
 * §4.5.3.1 limits hold, the mailbox is valid UTF-8 without controls, non-ASCII only with
 * SMTPUTF8, and the bytes come from the argument; a refused path is left empty; an
 * accepted BDAT argument is digits whose value is the size, then nothing or " LAST", and
 * smtp_cmd_bdat_size reads the same size from it.
 *
 * Must not include libuv, curl or jansson. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "smtphook/smtp_cmd.h"

/* check_empty - a refused path is empty (smtp_cmd.h: "path is empty on error"). */
static void check_empty(const struct smtp_path *path)
{
    FUZZ_CHECK(path->mailbox[0] == '\0' && path->len == 0 && path->at == 0 && !path->non_ascii);
}

/* check_path - an accepted path, from arg[0, len). null_ok: "<>" may be the result (MAIL;
 * for RCPT a mailbox without '@' must be <Postmaster>); utf8_allowed: SMTPUTF8 was given. */
static void check_path(const struct smtp_path *path, const char *arg, size_t len, bool null_ok,
                       bool utf8_allowed)
{
    const char *nul = memchr(path->mailbox, '\0', sizeof(path->mailbox));
    FUZZ_CHECK(nul != NULL);
    FUZZ_CHECK(path->len == (size_t)(nul - path->mailbox));
    FUZZ_CHECK(path->len == strlen(path->mailbox));
    FUZZ_CHECK(path->len <= SMTP_PATH_MAX);
    FUZZ_CHECK(path->at <= path->len);
    FUZZ_CHECK(smtp_cmd_valid_utf8(path->mailbox, path->len));

    bool non_ascii = false;
    for (size_t i = 0; i < path->len; i++)
        non_ascii = non_ascii || (unsigned char)path->mailbox[i] >= 0x80;
    FUZZ_CHECK(non_ascii == path->non_ascii);
    FUZZ_CHECK(!non_ascii || utf8_allowed);

    if (path->len == 0) {
        FUZZ_CHECK(null_ok);
        return;
    }
    FUZZ_CHECK(memmem(arg, len, path->mailbox, path->len) != NULL);
    if (path->at == path->len) {
        FUZZ_CHECK(!null_ok && strcasecmp(path->mailbox, "postmaster") == 0);
        return;
    }
    FUZZ_CHECK(path->mailbox[path->at] == '@');
    FUZZ_CHECK(path->at >= 1 && path->at <= SMTP_LOCAL_PART_MAX);
    FUZZ_CHECK(path->len - path->at - 1 >= 1 && path->len - path->at - 1 <= SMTP_DOMAIN_MAX);
}

/* check_mail - smtp_cmd_mail on arg[0, len). */
static void check_mail(const char *arg, size_t len, bool esmtp)
{
    struct smtp_path path;
    struct smtp_mail_params params;
    enum smtp_syntax r = smtp_cmd_mail(arg, len, esmtp, &path, &params);
    if (r != SMTP_SYNTAX_OK) {
        check_empty(&path);
        FUZZ_CHECK(!params.has_size && !params.smtputf8 && params.body == ENVELOPE_BODY_NONE);
        return;
    }
    FUZZ_CHECK(esmtp || (!params.has_size && !params.smtputf8 && params.body == 0));
    FUZZ_CHECK(params.body == ENVELOPE_BODY_NONE || params.body == ENVELOPE_BODY_7BIT ||
               params.body == ENVELOPE_BODY_8BITMIME || params.body == ENVELOPE_BODY_BINARYMIME);
    check_path(&path, arg, len, true, params.smtputf8);
}

/* check_rcpt - smtp_cmd_rcpt on arg[0, len). */
static void check_rcpt(const char *arg, size_t len, bool esmtp, bool utf8)
{
    struct smtp_path path;
    enum smtp_syntax r = smtp_cmd_rcpt(arg, len, esmtp, utf8, &path);
    if (r != SMTP_SYNTAX_OK) {
        check_empty(&path);
        return;
    }
    check_path(&path, arg, len, false, utf8);
}

/* check_bdat - smtp_cmd_bdat on arg[0, len): accepted means 1*DIGIT with that value (no
 * overflow), then only spaces, tabs and at most one "LAST" after a space. */
static void check_bdat(const char *arg, size_t len)
{
    uint64_t size = 1;
    bool last = true;
    uint64_t lead = 0;
    bool lead_ok = smtp_cmd_bdat_size(arg, len, &lead);
    if (!smtp_cmd_bdat(arg, len, &size, &last)) {
        FUZZ_CHECK(size == 0 && !last);
        /* A size read alone starts the argument and ends at a blank or the end. */
        if (lead_ok)
            FUZZ_CHECK(len > 0 && arg[0] >= '0' && arg[0] <= '9');
        return;
    }
    /* Whatever smtp_cmd_bdat accepts, the size alone reads the same. */
    FUZZ_CHECK(lead_ok && lead == size);
    size_t i = 0;
    uint64_t value = 0;
    while (i < len && arg[i] >= '0' && arg[i] <= '9') {
        uint64_t d = (uint64_t)(arg[i] - '0');
        FUZZ_CHECK(value <= (UINT64_MAX - d) / 10);
        value = value * 10 + d;
        i++;
    }
    FUZZ_CHECK(i > 0 && value == size);
    size_t end = len;
    while (end > i && (arg[end - 1] == ' ' || arg[end - 1] == '\t'))
        end--;
    if (!last) {
        FUZZ_CHECK(end == i);
        return;
    }
    FUZZ_CHECK(end >= i + 5 && arg[i] == ' ' && strncasecmp(arg + end - 4, "LAST", 4) == 0);
    for (size_t k = i; k < end - 4; k++)
        FUZZ_CHECK(arg[k] == ' ');
}

/* LLVMFuzzerTestOneInput - one command line. The line is copied to an allocation of its
 * exact size, so ASan catches a read past its end. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bool esmtp = (data[0] & 1) != 0;
    bool utf8 = (data[0] & 2) != 0;
    size_t len = size - 1;
    char *line = malloc(len ? len : 1);
    FUZZ_CHECK(line != NULL);
    memcpy(line, data + 1, len);

    struct smtp_command cmd;
    smtp_cmd_parse(line, len, &cmd);
    FUZZ_CHECK(cmd.arg >= line && cmd.arg <= line + len);
    FUZZ_CHECK(cmd.arg_len <= (size_t)(line + len - cmd.arg));
    FUZZ_CHECK(cmd.has_arg == (cmd.arg_len > 0));
    FUZZ_CHECK(!cmd.has_arg || (cmd.arg[0] != ' ' && cmd.arg[cmd.arg_len - 1] != ' ' &&
                                cmd.arg[cmd.arg_len - 1] != '\t'));
    const char *name = smtp_cmd_verb_name(cmd.verb);
    FUZZ_CHECK((cmd.verb == SMTP_VERB_UNKNOWN) == (name[0] == '\0'));
    FUZZ_CHECK(cmd.verb == SMTP_VERB_UNKNOWN ||
               (len >= strlen(name) && strncasecmp(line, name, strlen(name)) == 0));

    check_mail(cmd.arg, cmd.arg_len, esmtp);
    check_rcpt(cmd.arg, cmd.arg_len, esmtp, utf8);
    check_mail(line, len, esmtp);
    check_rcpt(line, len, esmtp, utf8);
    check_bdat(cmd.arg, cmd.arg_len);
    check_bdat(line, len);
    free(line);
    return 0;
}
