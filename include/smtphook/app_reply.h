/* app_reply.h - an SMTP reply chosen by the web app or the operator: "<code> <esc> <text>".
 *
 * Pure. Parses the value of an endpoint's "Smtphook-Reply" response header and the values of
 * an endpoint's "reply_map" in the configuration. A reply is a three-digit code (RFC 5321
 * §4.2: 250 for success, 4yz or 5yz for failures, never 421 (it would announce a close that
 * does not happen) and no 1yz, 3yz or other 2yz), an enhanced status code whose class is the
 * code's first digit (RFC 3463 §2: class "." subject "." detail, subject and detail 1 to 3
 * digits each), and a text of printable ASCII (0x20..0x7E) of at most APP_REPLY_TEXT_MAX
 * bytes. Spaces and tabs around the value are ignored; exactly the text between them is
 * kept.
 *
 * The parts are separated by one or more spaces or tabs (RFC 2034 §3: "one or more
 * spaces"); the text runs to the end of the value and keeps its inner spaces, but a tab,
 * any other control character or a byte >= 0x80 in it refuses the whole value. The class
 * of the enhanced code agrees with the reply code as RFC 2034 §4 requires; the code's
 * second digit is 0 to 5, as §4.2's Reply-code grammar has it. */
#ifndef SMTPHOOK_APP_REPLY_H
#define SMTPHOOK_APP_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#define APP_REPLY_TEXT_MAX 256 /* bytes of text; a reply line stays far below 512 (§4.5.3.1.5) */
#define APP_REPLY_ESC_MAX  11  /* "5.999.999" and room */

/* What the caller accepts besides the full form "<code> <esc> <text>". */
enum app_reply_form {
    APP_REPLY_FULL = 0,      /* code, enhanced code and text are all required (the header) */
    APP_REPLY_CODE_OPTIONAL, /* "550", "550 5.7.1" or the full form (reply_map values) */
};

struct app_reply {
    unsigned code;                     /* 250, 4yz or 5yz */
    char esc[APP_REPLY_ESC_MAX + 1];   /* "5.1.1"; "" when not given (CODE_OPTIONAL only) */
    char text[APP_REPLY_TEXT_MAX + 1]; /* the text; "" when not given (CODE_OPTIONAL only) */
};

/* app_reply_parse - value (len bytes, not NUL-terminated) -> *out. Returns true, or false
 * with *why set to a static reason for the log ("enhanced code class does not match the
 * reply code") and *out cleared (code 0, esc and text ""). In APP_REPLY_CODE_OPTIONAL a
 * text needs an enhanced code before it: "550 no such user" is refused. */
bool app_reply_parse(const char *value, size_t len, enum app_reply_form form, struct app_reply *out,
                     const char **why);

/* app_reply_agrees - may this reply answer for this HTTP status? A 2xx status needs a 2xx
 * reply, any other status a 4xx or 5xx reply (an app must not turn a failure into an
 * acceptance by header, nor refuse with a success status). */
bool app_reply_agrees(const struct app_reply *r, long http_status);

#endif
