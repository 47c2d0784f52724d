/* format.c - the request of each format and preset (see format.h). */
#include "smtphook/format.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtphook/buf.h"
#include "smtphook/digest.h"
#include "smtphook/error.h"
#include "smtphook/payload.h"
#include "smtphook/utf8.h"

#define FORMAT_HEADERS_MIN 12u /* first allocation of header lines */
#define FORMAT_INT_MAX     24u /* decimal digits of an int64_t, sign and NUL */
#define FORMAT_RCPT_SEP    ", "

/* The label of a form field holding bytes that are not UTF-8 (see format.h). Rack, and so
 * Rails, refuses an 8-bit field labelled UTF-8 or unlabelled, and fails joining a UTF-8 value
 * to a Latin-1 one (the Mailgun ingress joins recipient and body-mime): the label of the two
 * follows the message. Receivers that ignore labels (Django) decode every field as UTF-8. */
#define FORMAT_BYTES_FIELD "text/plain; charset=ISO-8859-1"

/* SendGrid's "charsets" for the fields it decodes: the header fields are sent as received,
 * which is UTF-8 or ASCII for any sender that follows RFC 6532. The raw message is sent as
 * bytes and declared nowhere, as SendGrid does. */
#define FORMAT_SENDGRID_CHARSETS "{\"to\":\"UTF-8\",\"from\":\"UTF-8\",\"subject\":\"UTF-8\"}"

/* format_add_line - append a formed header line (copied). 0 or SH_ENOMEM. */
static int format_add_line(struct format_request *r, const char *line)
{
    if (r->n_headers == r->cap) {
        size_t cap = r->cap != 0 ? 2 * r->cap : FORMAT_HEADERS_MIN;
        char **h = realloc(r->headers, cap * sizeof(*h));
        if (h == NULL)
            return SH_ENOMEM;
        r->headers = h;
        r->cap = cap;
    }
    if ((r->headers[r->n_headers] = strdup(line)) == NULL)
        return SH_ENOMEM;
    r->n_headers++;
    return 0;
}

/* format_add_header - see format.h. */
int format_add_header(struct format_request *r, const char *name, const char *value)
{
    size_t n = strlen(name) + strlen(value) + sizeof(": ");
    char *line = malloc(n);
    if (line == NULL)
        return SH_ENOMEM;
    snprintf(line, n, "%s: %s", name, value);
    int rc = format_add_line(r, line);
    free(line);
    return rc;
}

/* format_request_free - see format.h. */
void format_request_free(struct format_request *r)
{
    for (size_t i = 0; i < r->n_headers; i++)
        free(r->headers[i]);
    free(r->headers);
    request_body_free(&r->body);
    memset(r, 0, sizeof(*r));
}

/* format_needs_fields - see format.h. */
bool format_needs_fields(const struct config_endpoint *ep)
{
    return ep->preset == CONFIG_PRESET_MAILGUN || ep->preset == CONFIG_PRESET_SENDGRID;
}

/* format_head_extra - see format.h. A Standard Webhooks signature is "v1," and 44 base64
 * characters, or "v1a," and 88 (Ed25519), the signatures separated by spaces; the timestamp
 * at most 20 digits. */
uint64_t format_head_extra(const struct config_endpoint *ep)
{
    uint64_t n = FORMAT_HEAD_SLACK + strlen(ep->url);
    for (size_t i = 0; i < ep->n_headers; i++)
        n += strlen(ep->headers[i].name) + strlen(ep->headers[i].value) + 4;
    if (ep->basic_auth.header != NULL)
        n += strlen(ep->basic_auth.header) + 2;
    if (ep->signing.scheme == CONFIG_SIGNING_STANDARD_WEBHOOKS)
        n += sizeof("webhook-id: \r\n") + DIGEST_HEX + sizeof("webhook-timestamp: \r\n") + 20 +
             sizeof("webhook-signature: \r\n");
    for (size_t i = 0; i < ep->signing.n_secrets; i++)
        n += ep->signing.secrets[i].ed25519 ? 4 + 88 + 1 : 3 + 44 + 1;
    return n;
}

/* format_common_headers - Content-Type, X-Smtphook-Id and Idempotency-Key. */
static int format_common_headers(struct format_request *r, const struct envelope *share,
                                 const char *content_type)
{
    int rc = format_add_header(r, "Content-Type", content_type);
    if (rc == 0)
        rc = format_add_header(r, PAYLOAD_HEADER_ID, share->id);
    if (rc == 0 && share->key != NULL)
        rc = format_add_header(r, PAYLOAD_HEADER_KEY, share->key);
    return rc;
}

/* format_recipients - the share's recipients joined by ", " as a new string. */
static int format_recipients(const struct envelope *share, char **out)
{
    struct buf b = {0};
    for (size_t i = 0; i < share->n_rcpt; i++) {
        if (i > 0)
            buf_append_str(&b, FORMAT_RCPT_SEP);
        buf_append_str(&b, share->rcpt_to[i]);
    }
    buf_append(&b, "", 1);
    if (b.failed) {
        buf_free(&b);
        return SH_ENOMEM;
    }
    *out = b.data;
    return 0;
}

/* One multipart/form-data part being added. */
struct format_part {
    const char *name;         /* form field name */
    const char *filename;     /* or NULL */
    const char *content_type; /* or NULL (text/plain by RFC 7578 §4.4) */
};

/* format_part_head - "--boundary", the part's headers and the empty line (RFC 7578 §4). The
 * first part's delimiter has no CRLF before it. */
static void format_part_head(struct format_request *r, const char *boundary,
                             const struct format_part *p)
{
    struct request_body *b = &r->body;
    request_body_add_str(b, b->size == 0 ? "--" : "\r\n--");
    request_body_add_str(b, boundary);
    request_body_add_str(b, "\r\nContent-Disposition: form-data; name=\"");
    request_body_add_str(b, p->name);
    if (p->filename != NULL) {
        request_body_add_str(b, "\"; filename=\"");
        request_body_add_str(b, p->filename);
    }
    request_body_add_str(b, "\"\r\n");
    if (p->content_type != NULL) {
        request_body_add_str(b, "Content-Type: ");
        request_body_add_str(b, p->content_type);
        request_body_add_str(b, "\r\n");
    }
    request_body_add_str(b, "\r\n");
}

/* format_label - the label of a field holding value: none for UTF-8 (or NULL). */
static const char *format_label(const char *value)
{
    return value == NULL || utf8_valid(value, strlen(value)) ? NULL : FORMAT_BYTES_FIELD;
}

/* format_charset - the label's charset, as SendGrid's "charsets" names it. */
static const char *format_charset(const char *label)
{
    return label == NULL ? "UTF-8" : "iso-8859-1";
}

/* format_field - a text part with value (NULL: an empty value). */
static void format_field(struct format_request *r, const char *boundary, const char *name,
                         const char *content_type, const char *value)
{
    struct format_part p = {name, NULL, content_type};
    format_part_head(r, boundary, &p);
    if (value == NULL)
        return;
    if (strstr(value, boundary) != NULL)
        r->boundary_clash = true;
    request_body_add_str(&r->body, value);
}

/* format_message_part - a part holding the message, byte for byte. */
static void format_message_part(struct format_request *r, const char *boundary,
                                const struct format_part *p)
{
    format_part_head(r, boundary, p);
    request_body_add_message(&r->body, false);
}

/* format_close - the close delimiter (RFC 2046 §5.1.1). */
static void format_close(struct format_request *r, const char *boundary)
{
    request_body_add_str(&r->body, "\r\n--");
    request_body_add_str(&r->body, boundary);
    request_body_add_str(&r->body, "--\r\n");
}

/* format_form_headers - the common headers of a multipart/form-data request. */
static int format_form_headers(struct format_request *r, const struct envelope *share,
                               const char *boundary)
{
    char type[FORMAT_BOUNDARY_LEN + sizeof("multipart/form-data; boundary=")];
    snprintf(type, sizeof(type), "multipart/form-data; boundary=%s", boundary);
    return format_common_headers(r, share, type);
}

/* format_raw - today's request; rails_relay puts X-Original-To lines before the message, as
 * Postfix's pipe(8) does with its O flag. */
static int format_raw(const struct config_endpoint *ep, const struct envelope *share,
                      struct format_request *r)
{
    char **lines = NULL;
    size_t n = 0;
    int rc = payload_headers(share, &lines, &n);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = format_add_line(r, lines[i]);
    payload_headers_free(lines, n);
    if (rc != 0)
        return rc;
    if (ep->preset == CONFIG_PRESET_RAILS_RELAY) {
        for (size_t i = 0; i < share->n_rcpt; i++) {
            request_body_add_str(&r->body, "X-Original-To: ");
            request_body_add_str(&r->body, share->rcpt_to[i]);
            request_body_add_str(&r->body, "\r\n");
        }
    }
    return request_body_add_message(&r->body, false);
}

/* format_json - the envelope object and the message in base64. */
static int format_json(const struct envelope *share, struct format_request *r)
{
    char *env = NULL;
    int rc = payload_envelope_json(share, &env);
    if (rc != 0)
        return rc;
    rc = format_common_headers(r, share, "application/json");
    request_body_add_str(&r->body, "{\"envelope\":");
    request_body_add_str(&r->body, env);
    request_body_add_str(&r->body, ",\"message\":\"");
    request_body_add_message(&r->body, true);
    request_body_add_str(&r->body, "\"}");
    free(env);
    return rc;
}

/* format_multipart - the envelope part and the message part. */
static int format_multipart(const struct envelope *share, const struct format_attempt *at,
                            struct format_request *r)
{
    char *env = NULL;
    int rc = payload_envelope_json(share, &env);
    if (rc != 0)
        return rc;
    rc = format_form_headers(r, share, at->boundary);
    format_field(r, at->boundary, "envelope", "application/json", env);
    struct format_part msg = {"message", "message.eml", PAYLOAD_CONTENT_TYPE};
    format_message_part(r, at->boundary, &msg);
    format_close(r, at->boundary);
    free(env);
    return rc;
}

/* format_mailgun - Mailgun's form for a route forwarding to a URL ending in "mime":
 * signature = hex HMAC-SHA256 of timestamp and token under the signing key. */
static int format_mailgun(const struct config_endpoint *ep, const struct envelope *share,
                          const struct format_message *msg, const struct format_attempt *at,
                          struct format_request *r)
{
    char ts[FORMAT_INT_MAX];
    snprintf(ts, sizeof(ts), "%" PRId64, at->unix_s);
    char signed_text[FORMAT_INT_MAX + FORMAT_TOKEN_LEN + 1];
    int n = snprintf(signed_text, sizeof(signed_text), "%s%s", ts, at->token);
    uint8_t mac[DIGEST_BYTES];
    char hex[DIGEST_HEX + 1];
    const char *key = ep->signing.key;
    int rc = digest_hmac(key, strlen(key), signed_text, (size_t)n, mac);
    if (rc != 0)
        return rc;
    digest_hex(mac, hex);
    char *rcpts = NULL;
    if ((rc = format_recipients(share, &rcpts)) != 0)
        return rc;
    rc = format_form_headers(r, share, at->boundary);
    const char *b = at->boundary;
    const struct mail_header_fields *f = msg->fields;
    const char *joined = msg->utf8 ? NULL : FORMAT_BYTES_FIELD; /* body-mime and recipient */
    format_field(r, b, "recipient", joined, rcpts);
    format_field(r, b, "sender", NULL, share->mail_from);
    format_field(r, b, "from", format_label(f->from), f->from);
    format_field(r, b, "subject", format_label(f->subject), f->subject);
    struct format_part mime = {"body-mime", NULL, joined};
    format_message_part(r, b, &mime);
    format_field(r, b, "timestamp", NULL, ts);
    format_field(r, b, "token", NULL, at->token);
    format_field(r, b, "signature", NULL, hex);
    format_close(r, b);
    free(rcpts);
    return rc;
}

/* format_sendgrid - SendGrid Inbound Parse's form with "Send Raw" on; "charsets" names the
 * charset of each header field sent. spam_score, spam_report, dkim and SPF are left out:
 * smtphook checks none of them. */
static int format_sendgrid(const struct envelope *share, const struct format_message *msg,
                           const struct format_attempt *at, struct format_request *r)
{
    const struct mail_header_fields *f = msg->fields;
    char *env = NULL;
    int rc = payload_sendgrid_envelope_json(share, &env);
    if (rc != 0)
        return rc;
    rc = format_form_headers(r, share, at->boundary);
    const char *b = at->boundary;
    const char *to = format_label(f->to), *from = format_label(f->from);
    const char *subject = format_label(f->subject);
    char charsets[sizeof("{\"to\":\"\",\"from\":\"\",\"subject\":\"\"}") + 3 * 16];
    snprintf(charsets, sizeof(charsets), "{\"to\":\"%s\",\"from\":\"%s\",\"subject\":\"%s\"}",
             format_charset(to), format_charset(from), format_charset(subject));
    format_field(r, b, "to", to, f->to);
    format_field(r, b, "from", from, f->from);
    format_field(r, b, "subject", subject, f->subject);
    format_field(r, b, "sender_ip", NULL, share->client_address);
    format_field(r, b, "envelope", NULL, env);
    format_field(r, b, "charsets", NULL, charsets);
    struct format_part email = {"email", NULL, msg->utf8 ? NULL : FORMAT_BYTES_FIELD};
    format_message_part(r, b, &email);
    format_close(r, b);
    free(env);
    return rc;
}

/* format_build - see format.h. */
int format_build(const struct config_endpoint *ep, const struct envelope *share,
                 const struct format_message *msg, const struct format_attempt *at,
                 struct format_request *out)
{
    memset(out, 0, sizeof(*out));
    request_body_init(&out->body, msg->spool, msg->size);
    if (msg->live) {
        request_body_live(&out->body);
        if (format_add_header(out, "Trailer", PAYLOAD_HEADER_KEY ", " FORMAT_TRAILER_SIZE) != 0)
            return SH_ENOMEM;
    }
    static const struct mail_header_fields none;
    struct format_message m = *msg;
    if (m.fields == NULL)
        m.fields = &none;
    int rc;
    switch (ep->preset) {
    case CONFIG_PRESET_MAILGUN:
        rc = format_mailgun(ep, share, &m, at, out);
        break;
    case CONFIG_PRESET_SENDGRID:
        rc = format_sendgrid(share, &m, at, out);
        break;
    case CONFIG_PRESET_RAILS_RELAY:
    case CONFIG_PRESET_NONE:
    default:
        rc = ep->format == CONFIG_FORMAT_JSON        ? format_json(share, out)
             : ep->format == CONFIG_FORMAT_MULTIPART ? format_multipart(share, at, out)
                                                     : format_raw(ep, share, out);
        break;
    }
    if (rc == 0 && out->body.failed)
        rc = SH_ENOMEM;
    if (rc == 0 && ep->basic_auth.header != NULL)
        rc = format_add_line(out, ep->basic_auth.header);
    for (size_t i = 0; i < ep->n_headers && rc == 0; i++)
        rc = format_add_header(out, ep->headers[i].name, ep->headers[i].value);
    if (rc != 0)
        format_request_free(out);
    return rc;
}
