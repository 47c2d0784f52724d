/* payload.h - how a message travels to the web app: envelope JSON and request headers.
 *
 * Pure: no I/O. Only payload.c (and config.c) include jansson. The request is
 *   POST <url>
 *   Content-Type: message/rfc822
 *   X-Smtphook-Id: <id>
 *   Idempotency-Key: <key> (when the envelope has one: the same for a retried message)
 *   X-Smtphook-Envelope: <compact JSON, ASCII only (\uXXXX escapes)>
 *   X-Smtphook-Mail-From: <percent-encoded address, empty for <>>
 *   X-Smtphook-Rcpt-To: <percent-encoded addresses, separated by ", ">
 *   <body: the message exactly as received, after dot-unstuffing>
 * Percent-encoding covers every byte outside 0x21..0x7E and '%' and ',', so no header
 * can be split or forged and UTF-8 addresses are recovered by decoding. The recipient
 * check's request body (rcpt_check.h) is built here too, with the same JSON rules. */
#ifndef SMTPHOOK_PAYLOAD_H
#define SMTPHOOK_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "smtphook/envelope.h"

#define PAYLOAD_HEADER_ID        "X-Smtphook-Id"
#define PAYLOAD_HEADER_KEY       "Idempotency-Key"
#define PAYLOAD_HEADER_ENVELOPE  "X-Smtphook-Envelope"
#define PAYLOAD_HEADER_MAIL_FROM "X-Smtphook-Mail-From"
#define PAYLOAD_HEADER_RCPT_TO   "X-Smtphook-Rcpt-To"
#define PAYLOAD_CONTENT_TYPE     "message/rfc822"

/* An envelope size that is not known yet (a streamed request): "size" is null. */
#define PAYLOAD_SIZE_UNKNOWN UINT64_MAX

/* payload_envelope_json - the envelope as one compact, ASCII-only JSON object:
 * {"id","key" (only when the envelope has one),"received_at" (RFC 3339 UTC,
 * milliseconds),"client":{"address","port","helo"}, "tls":null or
 * {"version","cipher","sni","client_certificate":null or {"subject","sha256"}},
 *  "mail_from","rcpt_to":[...],"size","params":{"body","smtputf8"},"chunked"}.
 * *out is malloc'ed, NUL-terminated; caller frees. 0 or SH_ENOMEM/SH_EINVAL. */
int payload_envelope_json(const struct envelope *env, char **out);

/* payload_rcpt_check_json - the body of a recipient check (rcpt_check.h), compact JSON
 * escaped as payload_envelope_json's: {"recipient","sender" ("" for the null sender; NULL
 * is taken as ""),"client":{"address","port","helo"},"tls":null or {"version","cipher",
 * "sni","client_certificate":null or {"subject","sha256"}}}. client_address and helo may
 * be NULL (JSON null); tls NULL or with version NULL is a plaintext session. *out is
 * malloc'ed, NUL-terminated; caller frees. 0 or SH_ENOMEM, SH_EINVAL for a string that is
 * not UTF-8. */
int payload_rcpt_check_json(const char *recipient, const char *sender, const char *client_address,
                            uint16_t client_port, const char *helo, const struct envelope_tls *tls,
                            char **out);

/* payload_sendgrid_envelope_json - SendGrid's "envelope" field for a share:
 * {"to":[recipients],"from":"sender"} ("" for the null sender), escaped as above. *out is
 * malloc'ed; caller frees. 0, SH_ENOMEM or SH_EINVAL. */
int payload_sendgrid_envelope_json(const struct envelope *env, char **out);

/* payload_rcpt_cost - bytes one recipient adds to the request headers above: its JSON
 * string in X-Smtphook-Envelope with a comma, its encoded form in X-Smtphook-Rcpt-To with the
 * separator. */
size_t payload_rcpt_cost(const char *addr);

/* payload_head_base - at most how many bytes the headers above take, each with its CRLF, for
 * env without its recipients (n_rcpt is taken as 0): a bound a few dozen bytes above the
 * real size, worked out without building them. Always 0. */
int payload_head_base(const struct envelope *env, uint64_t *out);

/* payload_headers - every "Name: value" line above (without CRLF), Content-Type first.
 * *out is a malloc'ed array of *n malloc'ed strings; free with payload_headers_free. */
int payload_headers(const struct envelope *env, char ***out, size_t *n);

/* payload_headers_free - release what payload_headers returned. */
void payload_headers_free(char **headers, size_t n);

/* payload_percent_encode - encode src as described above into a new string (*out). */
int payload_percent_encode(const char *src, size_t len, char **out);

#endif
