/* mail_header.h - a few fields of a message's header section, for the presets whose
 * receivers expect them beside the raw message (Mailgun's "from" and "subject", SendGrid's
 * "to", "from" and "subject").
 *
 * Pure. Reads the start of the message as received (RFC 5322 §2.2: "name: value" lines,
 * continued by lines starting with a space or tab, ended by an empty line); stops at the
 * empty line, at a line that is not a field, or at the end of what it was given. The value
 * of the first occurrence of each field is kept unfolded (RFC 5322 §2.2.3: each CRLF before
 * white space removed) with surrounding white space trimmed, byte for byte otherwise: no
 * RFC 2047 decoding, 8-bit bytes kept. */
#ifndef SMTPHOOK_MAIL_HEADER_H
#define SMTPHOOK_MAIL_HEADER_H

#include <stddef.h>

#define MAIL_HEADER_READ_MAX  65536u /* bytes of the message start the presets read */
#define MAIL_HEADER_VALUE_MAX 8192u  /* longest value kept; longer ones are cut there */

/* The fields read; each NULL when the message has none. */
struct mail_header_fields {
    char *from;    /* From: */
    char *to;      /* To: */
    char *subject; /* Subject: */
};

/* mail_header_parse - the fields of the header section at the start of text (len bytes).
 * Every value is a new NUL-terminated string (a NUL byte in a value ends it there). 0 or
 * SH_ENOMEM; out is cleared first and holds what was found. */
int mail_header_parse(const char *text, size_t len, struct mail_header_fields *out);

/* mail_header_free - release the values; the fields are NULL afterwards. */
void mail_header_free(struct mail_header_fields *f);

#endif
