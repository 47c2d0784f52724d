/* smtp_cmd.h - command line syntax: verb, paths and parameters (RFC 5321 §4.1, RFC 1869,
 * RFC 6152 8BITMIME, RFC 1870 SIZE, RFC 6531 SMTPUTF8, RFC 3030 BDAT and BINARYMIME).
 * Pure: checks and splits, never replies; the session turns results into replies. */
#ifndef SMTPHOOK_SMTP_CMD_H
#define SMTPHOOK_SMTP_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smtphook/envelope.h"

#define SMTP_LOCAL_PART_MAX 64  /* RFC 5321 §4.5.3.1.1 */
#define SMTP_DOMAIN_MAX     255 /* RFC 5321 §4.5.3.1.2 */
#define SMTP_PATH_MAX       256 /* RFC 5321 §4.5.3.1.3, brackets included */

enum smtp_verb {
    SMTP_VERB_UNKNOWN = 0,
    SMTP_VERB_HELO,
    SMTP_VERB_EHLO,
    SMTP_VERB_MAIL,
    SMTP_VERB_RCPT,
    SMTP_VERB_DATA,
    SMTP_VERB_RSET,
    SMTP_VERB_NOOP,
    SMTP_VERB_QUIT,
    SMTP_VERB_VRFY,
    SMTP_VERB_EXPN,
    SMTP_VERB_HELP,
    SMTP_VERB_STARTTLS,
    SMTP_VERB_BDAT,
};

struct smtp_command {
    enum smtp_verb verb; /* SMTP_VERB_UNKNOWN if not recognised */
    const char *arg;     /* text after the verb and its spaces (may be empty) */
    size_t arg_len;      /* length of arg, trailing spaces removed */
    bool has_arg;        /* something followed the verb */
};

enum smtp_syntax {
    SMTP_SYNTAX_OK = 0,
    SMTP_SYNTAX_BAD_COMMAND,     /* "MAIL FROM:" / "RCPT TO:" prefix missing */
    SMTP_SYNTAX_BAD_PATH,        /* path or mailbox does not parse */
    SMTP_SYNTAX_PATH_TOO_LONG,   /* a §4.5.3.1 length limit is exceeded */
    SMTP_SYNTAX_NULL_PATH,       /* <> where a mailbox is required (RCPT) */
    SMTP_SYNTAX_NEEDS_SMTPUTF8,  /* non-ASCII address without SMTPUTF8 */
    SMTP_SYNTAX_BAD_PARAM,       /* malformed keyword=value, or a duplicate */
    SMTP_SYNTAX_UNKNOWN_PARAM,   /* a parameter we do not support */
    SMTP_SYNTAX_BAD_SIZE,        /* SIZE= not a decimal number */
    SMTP_SYNTAX_BAD_BODY,        /* BODY= not 7BIT, 8BITMIME or BINARYMIME */
    SMTP_SYNTAX_PARAM_NOT_ESMTP, /* parameters after HELO (not EHLO) */
};

struct smtp_mail_params {
    bool has_size;           /* SIZE= given */
    uint64_t size;           /* its value (saturates at UINT64_MAX) */
    enum envelope_body body; /* BODY= */
    bool smtputf8;           /* SMTPUTF8 */
};

struct smtp_path {
    char mailbox[SMTP_PATH_MAX + 1]; /* local@domain, NUL-terminated; "" for <> */
    size_t len;                      /* bytes in mailbox */
    size_t at;                       /* offset of the '@' (== len when there is none) */
    bool non_ascii;                  /* contains UTF-8 */
};

/* smtp_cmd_parse - split a command line into a verb and its argument. The verb is matched
 * case-insensitively; "MAIL FROM:" and "RCPT TO:" keep "FROM:"/"TO:" in arg. */
void smtp_cmd_parse(const char *line, size_t len, struct smtp_command *cmd);

/* smtp_cmd_verb_name - "MAIL", ...; "" for UNKNOWN. */
const char *smtp_cmd_verb_name(enum smtp_verb verb);

/* smtp_cmd_mail - parse the argument of MAIL ("FROM:<path> params"). esmtp says whether
 * the client said EHLO (parameters allowed). */
enum smtp_syntax smtp_cmd_mail(const char *arg, size_t len, bool esmtp, struct smtp_path *path,
                               struct smtp_mail_params *params);

/* smtp_cmd_rcpt - parse the argument of RCPT ("TO:<path>"); no parameters are supported.
 * "<postmaster>" without a domain is accepted (§4.5.1). utf8 allows non-ASCII mailboxes. */
enum smtp_syntax smtp_cmd_rcpt(const char *arg, size_t len, bool esmtp, bool utf8,
                               struct smtp_path *path);

/* smtp_cmd_bdat - parse the argument of BDAT ("<size>" or "<size> LAST"). false for
 * anything else, including a size over UINT64_MAX; *size and *last are 0/false then. */
bool smtp_cmd_bdat(const char *arg, size_t len, uint64_t *size, bool *last);

/* smtp_cmd_bdat_size - the chunk size at the start of a BDAT argument (1*DIGIT, fitting in
 * 64 bits, then a space, a tab or the end), whatever follows it: when smtp_cmd_bdat refuses
 * the argument but this reads a size, that many octets still follow the command. */
bool smtp_cmd_bdat_size(const char *arg, size_t len, uint64_t *size);

/* smtp_cmd_valid_utf8 - is s valid UTF-8 without control characters? */
bool smtp_cmd_valid_utf8(const char *s, size_t len);

#endif
