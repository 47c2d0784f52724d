/* format.h - one webhook request for an endpoint's share of a message, in the endpoint's
 * format or preset (config.h): its headers and its body (request_body.h).
 *
 * Pure: builds strings and body pieces; the message itself stays in the spool. Built again
 * for every attempt, as some formats carry the attempt's time. Signatures over the body
 * (Standard Webhooks) are added by the caller once the body's digest is known (sign.h).
 *
 *   raw        Content-Type: message/rfc822, the envelope in headers (payload.h), the message
 *   json       Content-Type: application/json,
 *              {"envelope": <payload_envelope_json>, "message": "<base64 of the message>"}
 *   multipart  Content-Type: multipart/form-data; boundary=..., an "envelope" part
 *              (application/json) and a "message" part (message/rfc822, message.eml)
 *   rails_relay  raw, the message after one "X-Original-To: <rcpt>" line per recipient
 *   mailgun    Mailgun's "forward to URL, MIME" form: recipient, sender, from, subject,
 *              body-mime, timestamp, token, signature (HMAC-SHA256 of timestamp and token)
 *   sendgrid   SendGrid Inbound Parse, raw mode: email, to, from, subject, sender_ip,
 *              envelope, charsets
 * In the two forms a field that carries bytes of the message which are not UTF-8 is labelled
 * "text/plain; charset=ISO-8859-1" (one character per byte, so the bytes survive a receiver
 * that decodes by the label); others have no label, which means UTF-8 (RFC 7578 §4.4).
 * Every format has X-Smtphook-Id and Idempotency-Key, then basic_auth's Authorization, then
 * the endpoint's own headers. A streamed request cannot know what depends on the whole body
 * before it: its envelope has "size": null and no "key", and its Idempotency-Key and
 * X-Smtphook-Size come as trailers (announced in a Trailer header, RFC 9110 §6.6.2). */
#ifndef SMTPHOOK_FORMAT_H
#define SMTPHOOK_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smtphook/config.h"
#include "smtphook/envelope.h"
#include "smtphook/mail_header.h"
#include "smtphook/request_body.h"

#define FORMAT_BOUNDARY_LEN 40u /* "smtphook-" and 31 random hex characters */
#define FORMAT_TOKEN_LEN    50u /* Mailgun's token: random hex characters */

/* The message a request carries. */
struct format_message {
    const struct spool *spool;               /* the body: its first size bytes */
    uint64_t size;                           /* bytes of the message */
    bool utf8;                               /* the message is valid UTF-8 throughout */
    bool live;                               /* still arriving: a streamed request (its body
                                              * is live, request_body.h; raw, json and
                                              * multipart only) */
    const struct mail_header_fields *fields; /* its From, To and Subject, or NULL */
};

/* What differs between attempts. */
struct format_attempt {
    int64_t unix_s;       /* the attempt's time (Mailgun's timestamp) */
    const char *boundary; /* multipart: FORMAT_BOUNDARY_LEN characters not in the message */
    const char *token;    /* mailgun: FORMAT_TOKEN_LEN random hex characters */
};

/* A request being built: header lines ("Name: value", no CRLF) and the body. */
struct format_request {
    char **headers;           /* owned strings */
    size_t n_headers;         /* entries used */
    size_t cap;               /* entries allocated */
    struct request_body body; /* Content-Length is body.size */
    bool boundary_clash;      /* a field value holds the boundary: build again with another */
};

/* format_build - the request for one share: share is the envelope as the endpoint sees it
 * (its recipients, its key). out is initialised here. 0, SH_ENOMEM, or SH_EINVAL for an
 * envelope string that is not UTF-8. */
int format_build(const struct config_endpoint *ep, const struct envelope *share,
                 const struct format_message *msg, const struct format_attempt *at,
                 struct format_request *out);

/* format_add_header - append "name: value" to the request's headers. 0 or SH_ENOMEM. */
int format_add_header(struct format_request *r, const char *name, const char *value);

/* format_request_free - release headers and body; r is empty afterwards. */
void format_request_free(struct format_request *r);

#define FORMAT_TRAILER_SIZE "X-Smtphook-Size" /* a streamed request's trailer: message bytes */

#define FORMAT_HEAD_SLACK 256u /* bytes of the head curl writes itself, the URL aside */

/* format_head_extra - bytes a raw request's head takes beyond payload_head_base and the
 * recipients: the request line (with the URL) and curl's own header lines, basic_auth, the
 * Standard Webhooks headers and the endpoint's own headers, each with its CRLF. */
uint64_t format_head_extra(const struct config_endpoint *ep);

/* format_needs_fields - does the endpoint's format read the message's header fields? */
bool format_needs_fields(const struct config_endpoint *ep);

#endif
