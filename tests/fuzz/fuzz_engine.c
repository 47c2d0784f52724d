/* fuzz_session.c - fuzz target: bytes from the network through smtp_parser and session, the
 * way conn.c drives them, with the webhook outcome answered at once.
 *
 * Input layout: FUZZ_HDR bytes of header, then the client's bytes.
 *   h[0..2]  chunk sizes, used in turn (0: the rest of the input in one chunk)
 *   h[3]     webhook outcomes, 2 bits per delivery (250, 451, 550, 552), used in turn
 *   h[4]     '1'..'9': the server shuts down before that chunk; 'a'..'i': the idle timer
 *            fires before chunk 1..9 (the connection then reads nothing more); else neither
 *   h[5]     's': max_message_bytes is SMALL_MESSAGE_BYTES, so the 552 path is reached by
 *            short inputs; 't': STARTTLS offered; 'u': offered and required for MAIL; 'v':
 *            'u' with the small limit; anything else: MESSAGE_BYTES, no TLS
 * BDAT chunks are read as conn.c reads them; an accepted STARTTLS drops the rest of the read
 * and "completes" the handshake at once (session_tls_started).
 * Invariants (abort on violation): every reply is well-formed (code, separator, printable
 * UTF-8 text, CRLF, multi-line replies closed by "NNN "), carries an enhanced status code
 * where the design says so, and every command gets exactly one reply (two when the second is
 * the 421 that closes; a BDAT's reply comes after its chunk, 503 when it had no transaction);
 * a delivered envelope is valid UTF-8 without controls, within the limits, for an accepted
 * domain, with TLS when TLS is required, chunked exactly when BDAT carried it; the counted
 * size equals the bytes stored; EHLO offers STARTTLS exactly when it may be used; nothing is
 * written after CLOSE. Leaks are left to LeakSanitizer.
 *
 * Must not include libuv, curl or jansson: it drives the pure modules only. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "smtphook/buf.h"
#include "smtphook/config.h"
#include "smtphook/session.h"
#include "smtphook/smtp_cmd.h"
#include "smtphook/smtp_parser.h"

#define FUZZ_HDR            6                      /* header bytes before the client's bytes */
#define COMMAND_LINE_BYTES  512                    /* limits.max_command_line_bytes */
#define MAX_RECIPIENTS      100                    /* limits.max_recipients */
#define MESSAGE_BYTES       65536                  /* limits.max_message_bytes */
#define SMALL_MESSAGE_BYTES 64                     /* limits.max_message_bytes when h[5] is 's' */
#define MAX_ERRORS          20                     /* limits.max_errors */
#define NOW_MS              INT64_C(1700000000000) /* the clock every transaction is stamped with */
#define REPLY_MIN_LINE      4                      /* "NNN" and the separator */
#define ESC_MIN_LEN         6                      /* "2.0.0 " */
#define N_OUTCOMES          4                      /* webhook outcomes one header byte describes */

static char fuzz_host[] = "mx.test";
static const struct envelope_tls fuzz_tls = {"TLSv1.3", "TLS_AES_128_GCM_SHA256", NULL, NULL, NULL};
static char fuzz_domain[] = "example.com";
static char *fuzz_domains[] = {fuzz_domain};

/* A webhook outcome, as delivery.c would fold it into a reply. */
struct outcome {
    unsigned code;    /* reply code */
    const char *esc;  /* enhanced status code */
    const char *text; /* endpoint's reason */
};

static const struct outcome outcomes[N_OUTCOMES] = {
    {250, "2.0.0", "Ok"},
    {451, "4.3.0", "endpoint unavailable"},
    {550, "5.7.1", "endpoint refused"},
    {552, "5.3.4", "endpoint: message too big"},
};

/* What a connection holds, minus the I/O. */
struct drive {
    struct config cfg;    /* built by hand */
    struct session s;     /* the state machine under test */
    struct smtp_parser p; /* the parser under test */
    struct buf out;       /* every reply so far */
    struct buf body;      /* bytes stored for the current message */
    unsigned deliveries;  /* DELIVER actions so far */
    uint8_t outcome_bits; /* h[3] */
    bool storing;         /* a message is being stored (conn.c has a spool open) */
    bool chunked;         /* that message came by BDAT */
    bool chunk_refused;   /* the chunk being read has no transaction: 503 after it */
    bool chunk_syntax;    /* ... or a malformed BDAT line: 501 after it */
    bool closed;          /* CLOSE was returned */
    bool timed_out;       /* the idle timer fired: nothing more is read */
};

/* is_digit - ASCII decimal digit. */
static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* has_esc - text starts with an RFC 3463 enhanced status code of the reply's class:
 * class "." 1*3digit "." 1*3digit SP. */
static bool has_esc(const char *t, size_t n, char class)
{
    if (n < ESC_MIN_LEN || t[0] != class || t[1] != '.')
        return false;
    size_t i = 2;
    for (int part = 0; part < 2; part++) {
        size_t digits = 0;
        while (i < n && is_digit(t[i]) && digits < 3) {
            i++;
            digits++;
        }
        if (digits == 0 || i >= n || t[i] != (part == 0 ? '.' : ' '))
            return false;
        i++;
    }
    return true;
}

/* check_replies - out[from, to) must be whole reply lines (RFC 5321 §4.2): "NNN" with the
 * code in 200..599, then SP or "-", then printable ASCII or UTF-8, then CRLF, no CR or LF
 * anywhere else. A run of "NNN-" lines ends with a "NNN " line of the same code. Replies
 * other than 220, 354 and the HELO/EHLO lines (plain_250) carry an enhanced status code.
 * Returns the number of final ("NNN ") lines; *last is the code of the last one. */
static unsigned check_replies(const struct buf *out, size_t from, size_t to, bool plain_250,
                              unsigned *last)
{
    unsigned finals = 0;
    unsigned open = 0; /* code of an unfinished multi-line reply, 0 for none */
    size_t i = from;
    while (i < to) {
        const char *line = out->data + i;
        const char *lf = memchr(line, '\n', to - i);
        FUZZ_CHECK(lf != NULL);
        size_t n = (size_t)(lf - line); /* up to the LF */
        FUZZ_CHECK(n >= REPLY_MIN_LINE + 1 && line[n - 1] == '\r');
        n--; /* without the CR */
        FUZZ_CHECK(line[0] >= '2' && line[0] <= '5' && is_digit(line[1]) && is_digit(line[2]));
        FUZZ_CHECK(line[3] == ' ' || line[3] == '-');
        const char *text = line + REPLY_MIN_LINE;
        size_t tn = n - REPLY_MIN_LINE;
        FUZZ_CHECK(memchr(text, '\r', tn) == NULL);
        FUZZ_CHECK(smtp_cmd_valid_utf8(text, tn));
        unsigned code = (unsigned)((line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0'));
        if (code != 220 && code != 354 && !(code == 250 && plain_250))
            FUZZ_CHECK(has_esc(text, tn, line[0]));
        if (open != 0)
            FUZZ_CHECK(code == open);
        if (line[3] == '-') {
            open = code;
        } else {
            open = 0;
            finals++;
            *last = code;
        }
        i += n + 2;
    }
    FUZZ_CHECK(open == 0);
    return finals;
}

/* is_postmaster - the domain-less <Postmaster> of RFC 5321 §4.1.1.3, any case. */
static bool is_postmaster(const char *s)
{
    return strcasecmp(s, "postmaster") == 0;
}

/* has_non_ascii - any byte of s at or above 0x80. */
static bool has_non_ascii(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s >= 0x80)
            return true;
    return false;
}

/* check_envelope - what session_data_end promises the delivery: envelope.h's string rules,
 * the recipient limit and domains, SMTPUTF8 for non-ASCII, and the counted size. */
static void check_envelope(const struct drive *d, const struct envelope *env)
{
    FUZZ_CHECK(memchr(env->id, '\0', sizeof(env->id)) != NULL && env->id[0] != '\0');
    FUZZ_CHECK(env->helo != NULL && smtp_cmd_valid_utf8(env->helo, strlen(env->helo)));
    FUZZ_CHECK(env->mail_from != NULL);
    FUZZ_CHECK(strlen(env->mail_from) <= SMTP_PATH_MAX);
    FUZZ_CHECK(smtp_cmd_valid_utf8(env->mail_from, strlen(env->mail_from)));
    bool non_ascii = has_non_ascii(env->mail_from);
    FUZZ_CHECK(env->n_rcpt >= 1 && env->n_rcpt <= d->cfg.limits.max_recipients);
    for (size_t i = 0; i < env->n_rcpt; i++) {
        const char *r = env->rcpt_to[i];
        FUZZ_CHECK(r != NULL && r[0] != '\0' && strlen(r) <= SMTP_PATH_MAX);
        FUZZ_CHECK(smtp_cmd_valid_utf8(r, strlen(r)));
        const char *at = strrchr(r, '@');
        if (at == NULL)
            FUZZ_CHECK(is_postmaster(r));
        else
            FUZZ_CHECK(config_domain_accepted(&d->cfg, at + 1, strlen(at + 1)));
        non_ascii = non_ascii || has_non_ascii(r);
    }
    FUZZ_CHECK(!non_ascii || env->smtputf8);
    FUZZ_CHECK(env->declared_size <= d->cfg.limits.max_message_bytes);
    FUZZ_CHECK(env->size <= d->cfg.limits.max_message_bytes);
    FUZZ_CHECK(env->size == d->body.len);
    FUZZ_CHECK(d->storing && env->chunked == d->chunked);
    FUZZ_CHECK(env->body != ENVELOPE_BODY_BINARYMIME || env->chunked);
    FUZZ_CHECK(env->tls.version == d->s.tls.version);
    FUZZ_CHECK(!d->s.tls_required || env->tls.version != NULL);
}

/* deliver - SESSION_ACTION_DELIVER: check the envelope, answer with the next outcome. The
 * reply must name the transaction id. Returns the session's next action. */
static enum session_action deliver(struct drive *d)
{
    const struct envelope *env = session_envelope(&d->s);
    FUZZ_CHECK(d->s.state == SESSION_STATE_DELIVERING);
    check_envelope(d, env);
    char id[ENVELOPE_ID_MAX + 1];
    memcpy(id, env->id, sizeof(id));

    unsigned k = d->deliveries++ % N_OUTCOMES;
    const struct outcome *o = &outcomes[(d->outcome_bits >> (2 * k)) & 3];
    size_t before = d->out.len;
    enum session_action a = session_delivered(&d->s, o->code, o->esc, o->text, &d->out);
    FUZZ_CHECK(a == SESSION_ACTION_NONE || a == SESSION_ACTION_CLOSE);
    FUZZ_CHECK(d->s.env.n_rcpt == 0 && d->s.env.mail_from == NULL);
    FUZZ_CHECK(memmem(d->out.data + before, d->out.len - before, id, strlen(id)) != NULL);
    return a;
}

/* after_close - conn.c reads nothing after CLOSE; if it did, the session must stay silent.
 * Only a chunk can still be open (a shutdown while a refused chunk is read). */
static void after_close(struct drive *d, const struct smtp_event *ev, bool chunk_mode)
{
    size_t before = d->out.len;
    enum session_action a = SESSION_ACTION_NONE;
    FUZZ_CHECK(ev->type != SMTP_EVENT_DATA_END);
    FUZZ_CHECK(ev->type != SMTP_EVENT_DATA || chunk_mode);
    if (ev->type == SMTP_EVENT_LINE)
        a = session_line(&d->s, ev->ptr, ev->len, NOW_MS, &d->out);
    else if (ev->type == SMTP_EVENT_LINE_TOO_LONG)
        a = session_line_too_long(&d->s, &d->out);
    else if (ev->type == SMTP_EVENT_CHUNK_END)
        a = session_chunk_end(&d->s, &d->out);
    FUZZ_CHECK(a == SESSION_ACTION_NONE);
    FUZZ_CHECK(d->out.len == before);
}

/* line_verb - the verb of a LINE event, UNKNOWN for other events. */
static enum smtp_verb line_verb(const struct smtp_event *ev)
{
    if (ev->type != SMTP_EVENT_LINE)
        return SMTP_VERB_UNKNOWN;
    struct smtp_command cmd;
    smtp_cmd_parse(ev->ptr, ev->len, &cmd);
    return cmd.verb;
}

/* check_ehlo - an EHLO that succeeded lists STARTTLS exactly when the listener offers it
 * and TLS is not active yet (RFC 3207 §4.2), and always CHUNKING and BINARYMIME. */
static void check_ehlo(const struct drive *d, size_t from)
{
    const char *r = d->out.data + from;
    size_t n = d->out.len - from;
    if (n < REPLY_MIN_LINE || memcmp(r, "250-", REPLY_MIN_LINE) != 0)
        return;
    bool starttls = memmem(r, n, "\r\n250-STARTTLS\r\n", 16) != NULL;
    FUZZ_CHECK(starttls == (d->s.tls_offered && d->s.tls.version == NULL));
    FUZZ_CHECK(memmem(r, n, "\r\n250-CHUNKING\r\n", 16) != NULL);
    FUZZ_CHECK(memmem(r, n, "\r\n250-BINARYMIME\r\n", 18) != NULL);
}

/* chunk_end_due - the chunk's last byte was read: the next feed gives CHUNK_END. */
static bool chunk_end_due(const struct smtp_parser *p)
{
    return p->mode == SMTP_PARSER_CHUNK && p->chunk_left == 0;
}

static bool apply_action(struct drive *d, const struct smtp_event *ev, enum session_action a);

/* begin_chunk - SESSION_ACTION_CHUNK as conn.c carries it out: the first chunk of a
 * transaction starts the stored message; a chunk of 0 bytes ends at once. Returns true
 * when the rest of the read is to be dropped. */
static bool begin_chunk(struct drive *d, const struct smtp_event *ev)
{
    FUZZ_CHECK(ev->type == SMTP_EVENT_LINE && d->s.state == SESSION_STATE_CHUNK);
    FUZZ_CHECK(session_in_transaction(&d->s) == !d->s.chunk_discard);
    d->chunk_refused = d->s.chunk_discard;
    d->chunk_syntax = d->s.chunk_syntax;
    if (!d->storing && session_in_transaction(&d->s)) {
        buf_reset(&d->body);
        d->storing = true;
        d->chunked = true;
    }
    FUZZ_CHECK(d->chunk_refused || d->chunked);
    if (session_chunk_size(&d->s) > 0) {
        smtp_parser_begin_chunk(&d->p, session_chunk_size(&d->s));
        return false;
    }
    enum session_action a = session_chunk_end(&d->s, &d->out);
    return apply_action(d, ev, a);
}

/* starttls - the 220 went out: conn.c drops the rest of the read (RFC 3207 §4.2) and does
 * the handshake, here one that succeeds at once. */
static void starttls(struct drive *d)
{
    FUZZ_CHECK(d->s.tls_offered && d->s.tls.version == NULL);
    FUZZ_CHECK(!session_in_transaction(&d->s) && d->s.state != SESSION_STATE_GREETING);
    smtp_parser_reset(&d->p);
    session_tls_started(&d->s, &fuzz_tls);
    FUZZ_CHECK(d->s.state == SESSION_STATE_GREETING && d->s.helo == NULL);
    FUZZ_CHECK(d->s.tls.version == fuzz_tls.version);
}

/* apply_action - carry out one action as conn_action does. Returns true when the rest of
 * the read is to be dropped. */
static bool apply_action(struct drive *d, const struct smtp_event *ev, enum session_action a)
{
    bool drop = false;
    switch (a) {
    case SESSION_ACTION_NONE:
        break;
    case SESSION_ACTION_DATA:
        FUZZ_CHECK(ev->type == SMTP_EVENT_LINE && d->s.state == SESSION_STATE_DATA);
        FUZZ_CHECK(!d->s.env.chunked && d->s.env.body != ENVELOPE_BODY_BINARYMIME);
        smtp_parser_begin_data(&d->p);
        buf_reset(&d->body);
        d->storing = true;
        d->chunked = false;
        break;
    case SESSION_ACTION_CHUNK:
        drop = begin_chunk(d, ev);
        break;
    case SESSION_ACTION_STARTTLS:
        FUZZ_CHECK(ev->type == SMTP_EVENT_LINE);
        starttls(d);
        drop = true;
        break;
    case SESSION_ACTION_DELIVER:
        d->closed = deliver(d) == SESSION_ACTION_CLOSE;
        break;
    case SESSION_ACTION_DISCARD:
        FUZZ_CHECK(d->s.too_big && d->s.env.size > d->cfg.limits.max_message_bytes);
        FUZZ_CHECK(d->body.len <= d->cfg.limits.max_message_bytes);
        d->closed = session_discarded(&d->s, &d->out) == SESSION_ACTION_CLOSE;
        break;
    case SESSION_ACTION_DROP_INPUT:
        FUZZ_CHECK(ev->type == SMTP_EVENT_LINE);
        smtp_parser_reset(&d->p);
        drop = true;
        break;
    case SESSION_ACTION_CLOSE:
        d->closed = true;
        break;
    default:
        FUZZ_FAIL("unknown action");
    }
    if (!session_in_transaction(&d->s))
        d->storing = false;
    return drop;
}

/* handle_event - one parser event and the action it leads to, as conn_process and
 * conn_action do it. Returns true when the rest of the chunk is to be dropped. */
static bool handle_event(struct drive *d, const struct smtp_event *ev)
{
    size_t before = d->out.len;
    bool expect_reply = true;
    enum smtp_verb verb = line_verb(ev); /* now: DROP_INPUT may free the line */
    bool plain_250 = verb == SMTP_VERB_HELO || verb == SMTP_VERB_EHLO;
    bool refused_chunk = false;  /* a chunk without a transaction ends here */
    bool refused_syntax = false; /* ... refused for a malformed BDAT line */
    enum session_action a = SESSION_ACTION_NONE;

    switch (ev->type) {
    case SMTP_EVENT_LINE:
        FUZZ_CHECK(ev->len < d->cfg.limits.max_command_line_bytes);
        FUZZ_CHECK(memchr(ev->ptr, '\n', ev->len) == NULL);
        a = session_line(&d->s, ev->ptr, ev->len, NOW_MS, &d->out);
        break;
    case SMTP_EVENT_LINE_TOO_LONG:
        a = session_line_too_long(&d->s, &d->out);
        break;
    case SMTP_EVENT_DATA:
        FUZZ_CHECK(ev->len > 0);
        FUZZ_CHECK(d->s.state == SESSION_STATE_DATA || d->s.state == SESSION_STATE_CHUNK);
        if (session_data(&d->s, ev->len)) {
            FUZZ_CHECK(d->storing && !d->s.too_big);
            FUZZ_CHECK(buf_append(&d->body, ev->ptr, ev->len) == 0);
        }
        expect_reply = false;
        break;
    case SMTP_EVENT_DATA_END:
        FUZZ_CHECK(d->s.state == SESSION_STATE_DATA);
        a = session_data_end(&d->s, &d->out);
        FUZZ_CHECK(a == SESSION_ACTION_DELIVER || a == SESSION_ACTION_DISCARD);
        break;
    case SMTP_EVENT_CHUNK_END:
        FUZZ_CHECK(d->s.state == SESSION_STATE_CHUNK);
        refused_chunk = d->chunk_refused;
        refused_syntax = d->chunk_syntax;
        a = session_chunk_end(&d->s, &d->out);
        FUZZ_CHECK(a == SESSION_ACTION_NONE || a == SESSION_ACTION_DELIVER ||
                   a == SESSION_ACTION_DISCARD || a == SESSION_ACTION_CLOSE);
        FUZZ_CHECK(!refused_chunk || a == SESSION_ACTION_NONE || a == SESSION_ACTION_CLOSE);
        break;
    case SMTP_EVENT_NONE:
    default:
        expect_reply = false;
        break;
    }

    if (a == SESSION_ACTION_CHUNK && session_chunk_size(&d->s) == 0) {
        refused_chunk = d->s.chunk_discard;
        refused_syntax = d->s.chunk_syntax;
    }
    bool drop = apply_action(d, ev, a);
    /* A BDAT is answered after its chunk. */
    if (a == SESSION_ACTION_CHUNK && d->p.mode == SMTP_PARSER_CHUNK)
        expect_reply = false;

    unsigned last = 0;
    unsigned finals = check_replies(&d->out, before, d->out.len, plain_250, &last);
    if (verb == SMTP_VERB_EHLO)
        check_ehlo(d, before);
    if (refused_chunk && !refused_syntax) {
        FUZZ_CHECK(d->out.len - before >= 4 && memcmp(d->out.data + before, "503 ", 4) == 0);
        FUZZ_CHECK(d->s.state != SESSION_STATE_CHUNK && !session_in_transaction(&d->s));
    }
    if (refused_chunk && refused_syntax) {
        /* A malformed BDAT: 501 after its chunk, and no chunked message survives it. */
        FUZZ_CHECK(d->out.len - before >= 4 && memcmp(d->out.data + before, "501 ", 4) == 0);
        FUZZ_CHECK(d->s.state != SESSION_STATE_CHUNK && !d->s.env.chunked);
    }
    if (a == SESSION_ACTION_STARTTLS)
        FUZZ_CHECK(finals == 1 && last == 220);
    if (!expect_reply) {
        FUZZ_CHECK(finals == 0 && d->out.len == before);
    } else {
        FUZZ_CHECK(finals == 1 || (finals == 2 && last == 421 && d->closed));
        if (d->closed)
            FUZZ_CHECK(last == 221 || last == 421);
    }
    FUZZ_CHECK(d->s.errors <= d->cfg.limits.max_errors);
    FUZZ_CHECK(d->s.errors < d->cfg.limits.max_errors || d->closed);
    FUZZ_CHECK(d->s.env.n_rcpt <= d->cfg.limits.max_recipients);
    FUZZ_CHECK(d->closed == (d->s.state == SESSION_STATE_CLOSING));
    return drop;
}

/* feed_chunk - one read: from a private copy freed afterwards, so that ASan catches a parser
 * or session that keeps pointers into a read buffer. */
static void feed_chunk(struct drive *d, const uint8_t *data, size_t len)
{
    char *copy = malloc(len ? len : 1);
    FUZZ_CHECK(copy != NULL);
    memcpy(copy, data, len);
    size_t off = 0;
    while (off < len || (!d->closed && chunk_end_due(&d->p))) {
        struct smtp_event ev;
        bool chunk_mode = d->p.mode == SMTP_PARSER_CHUNK;
        long n = smtp_parser_feed(&d->p, copy + off, len - off, &ev);
        FUZZ_CHECK(n >= 0 && (size_t)n <= len - off);
        FUZZ_CHECK(ev.type != SMTP_EVENT_NONE || (size_t)n == len - off);
        FUZZ_CHECK(ev.type != SMTP_EVENT_LINE || !chunk_mode); /* chunks are never commands */
        off += (size_t)n;
        if (d->closed)
            after_close(d, &ev, chunk_mode);
        else if (handle_event(d, &ev))
            off = len;
    }
    free(copy);
}

/* shutdown_now - the server stops between two reads: 421 and CLOSE when idle, else the
 * transaction may finish. */
static void shutdown_now(struct drive *d)
{
    size_t before = d->out.len;
    bool busy = session_in_transaction(&d->s) || d->closed;
    enum session_action a = session_shutdown(&d->s, &d->out);
    unsigned last = 0;
    unsigned finals = check_replies(&d->out, before, d->out.len, false, &last);
    if (busy) {
        FUZZ_CHECK(a == SESSION_ACTION_NONE && finals == 0 && d->out.len == before);
    } else {
        FUZZ_CHECK(a == SESSION_ACTION_CLOSE && finals == 1 && last == 421);
        d->closed = true;
    }
}

/* timeout_now - the idle timer fires between two reads: 421 4.4.2 and CLOSE in any state.
 * conn.c closes at once, so the driver reads nothing more. */
static void timeout_now(struct drive *d)
{
    size_t before = d->out.len;
    enum session_action a = session_timeout(&d->s, &d->out);
    unsigned last = 0;
    FUZZ_CHECK(a == SESSION_ACTION_CLOSE && d->s.state == SESSION_STATE_CLOSING);
    FUZZ_CHECK(check_replies(&d->out, before, d->out.len, false, &last) == 1 && last == 421);
    d->closed = true;
    d->timed_out = true;
}

/* LLVMFuzzerTestOneInput - one connection: greeting, then the input in chunks. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t h[FUZZ_HDR] = {0};
    size_t hn = size < FUZZ_HDR ? size : FUZZ_HDR;
    memcpy(h, data, hn);
    data += hn;
    size -= hn;

    struct drive d;
    memset(&d, 0, sizeof(d));
    d.cfg.hostname = fuzz_host;
    d.cfg.domains = fuzz_domains;
    d.cfg.n_domains = 1;
    d.cfg.limits.max_command_line_bytes = COMMAND_LINE_BYTES;
    d.cfg.limits.max_recipients = MAX_RECIPIENTS;
    bool small = h[5] == 's' || h[5] == 'v';
    d.cfg.limits.max_message_bytes = small ? SMALL_MESSAGE_BYTES : MESSAGE_BYTES;
    d.cfg.limits.max_errors = MAX_ERRORS;
    d.outcome_bits = h[3];
    unsigned shutdown_at = h[4] >= '1' && h[4] <= '9' ? (unsigned)(h[4] - '0') : 0;
    unsigned timeout_at = h[4] >= 'a' && h[4] <= 'i' ? (unsigned)(h[4] - 'a' + 1) : 0;

    session_init(&d.s, &d.cfg, "192.0.2.1", 40000, "fuzz");
    session_set_tls_policy(&d.s, h[5] == 't' || h[5] == 'u' || h[5] == 'v',
                           h[5] == 'u' || h[5] == 'v');
    smtp_parser_init(&d.p, d.cfg.limits.max_command_line_bytes);
    session_greeting(&d.s, &d.out);
    unsigned last = 0;
    FUZZ_CHECK(check_replies(&d.out, 0, d.out.len, false, &last) == 1 && last == 220);

    size_t off = 0;
    for (unsigned chunk = 1; off < size; chunk++) {
        if (chunk == shutdown_at)
            shutdown_now(&d);
        if (chunk == timeout_at && !d.closed)
            timeout_now(&d);
        if (d.timed_out)
            break;
        size_t want = h[(chunk - 1) % 3];
        size_t n = want == 0 || want > size - off ? size - off : want;
        feed_chunk(&d, data + off, n);
        off += n;
    }

    session_free(&d.s);
    smtp_parser_free(&d.p);
    buf_free(&d.out);
    buf_free(&d.body);
    return 0;
}
