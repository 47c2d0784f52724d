/* fuzz_engine.c - fuzz target: bytes from the network through smtp_engine (parser and
 * session, the one path conn.c takes), with the webhook outcome answered at once.
 *
 * Input layout: FUZZ_HDR bytes of header, then the client's bytes.
 *   h[0..2]  read sizes, used in turn (0: the rest of the input in one read)
 *   h[3]     webhook outcomes, 2 bits per delivery (250, 451, 550, 552), used in turn
 *   h[4]     '1'..'9': the server shuts down before that read; 'a'..'i': the idle timer
 *            fires before read 1..9 (the connection then reads nothing more); else neither
 *   h[5]     's': max_message_bytes is SMALL_MESSAGE_BYTES, so the 552 path is reached by
 *            short inputs; 't': STARTTLS offered; 'u': offered and required for MAIL; 'v':
 *            'u' with the small limit; anything else: MESSAGE_BYTES, no TLS
 * Each input runs three times with the same reads: with an out_limit that never stops the
 * feed, with one that stops it at every reply (FULL), and with one between (from h[0] and
 * h[1]). The three transcripts (replies, delivered messages) must be identical: FULL
 * resumes losslessly. An accepted STARTTLS "completes" the handshake at once.
 *
 * Invariants (abort on violation), checked at every feed of the step run (out_limit 1,
 * where one feed ends at the first reply, so each feed answers one command):
 *   - feed never consumes more than it was given; IDLE, STARTTLS and CLOSE consume all;
 *   - every reply is well-formed (code, separator, printable UTF-8 text, CRLF, multi-line
 *     replies closed by "NNN ") and carries an enhanced status code where the design says
 *     so; every command line gets exactly one reply (two when the second is the 421 that
 *     closes), consumed exactly through its LF; a BDAT with a readable size is answered
 *     after exactly its chunk (503 without a transaction, 501 when the rest of its line is
 *     malformed), so chunk bytes are never commands; a BDAT whose size cannot be read gets
 *     501 then 421 and CLOSE;
 *   - a refused DATA with input behind it gets 421 4.5.0 next and CLOSE, none of that
 *     input answered; without input behind, the session goes on;
 *   - DATA text ends exactly at the first CRLF "." CRLF (the smuggling defence);
 *   - a delivered transaction (smtp_engine_take_txn) has a valid envelope (UTF-8 without
 *     controls, within the limits, an accepted domain, TLS when TLS is required, chunked
 *     exactly when BDAT carried it, its own copies of the session's strings), and its
 *     spool holds exactly env.size bytes, equal to the text the driver fed: the chunks, or
 *     the DATA text unstuffed (RFC 5321 §4.5.2);
 *   - the delivery's reply is the outcome exactly; EHLO offers STARTTLS exactly when it may
 *     be used; nothing is read or written after CLOSE.
 * Leaks are left to LeakSanitizer.
 *
 * Must not include libuv, curl or jansson: it drives the pure modules only. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "smtphook/app_reply.h"
#include "smtphook/buf.h"
#include "smtphook/config.h"
#include "smtphook/log.h"
#include "smtphook/smtp_cmd.h"
#include "smtphook/smtp_engine.h"
#include "smtphook/spool.h"
#include "smtphook/txn.h"

#define FUZZ_HDR            6                      /* header bytes before the client's bytes */
#define COMMAND_LINE_BYTES  512                    /* limits.max_command_line_bytes */
#define MAX_RECIPIENTS      100                    /* limits.max_recipients */
#define MESSAGE_BYTES       65536                  /* limits.max_message_bytes */
#define SMALL_MESSAGE_BYTES 64                     /* limits.max_message_bytes when h[5] is 's' */
#define MAX_ERRORS          20                     /* limits.max_errors */
#define SPOOL_MEMORY_BYTES  (UINT64_C(1) << 20)    /* spool.memory_bytes: bodies stay in memory */
#define NOW_MS              INT64_C(1700000000000) /* the clock every transaction is stamped with */
#define REPLY_MIN_LINE      4                      /* "NNN" and the separator */
#define ESC_MIN_LEN         6                      /* "2.0.0 " */
#define N_OUTCOMES          4                      /* webhook outcomes one header byte describes */
#define STEP_OUT_LIMIT      1                      /* out_limit of the step run */
#define MID_OUT_LIMIT_MIN   2                      /* smallest out_limit of the middle run */
#define N_RUNS              3                      /* unlimited, step, middle */
#define SPOOL_READ_BYTES    4096                   /* bytes per spool_read */

static char fuzz_host[] = "mx.test";
static const struct envelope_tls fuzz_tls = {"TLSv1.3", "TLS_AES_128_GCM_SHA256", NULL, NULL, NULL};
static char fuzz_domain[] = "example.com";
static char *fuzz_domains[] = {fuzz_domain};
static char fuzz_spool_dir[] = "/tmp";

static const struct app_reply outcomes[N_OUTCOMES] = {
    {250, "2.0.0", "Ok: delivered as fuzz"},
    {451, "4.3.0", "Error: endpoint unavailable"},
    {550, "5.7.1", "Error: endpoint refused"},
    {552, "5.3.4", "Error: endpoint: message too big"},
};

/* What a connection holds, minus the I/O, for one run. */
struct drive {
    const struct config *cfg; /* shared by the runs */
    struct smtp_engine e;     /* under test */
    bool step;                /* out_limit 1: every feed is checked as one step */
    struct buf transcript;    /* replies and delivered messages, compared across runs */
    unsigned deliveries;      /* DELIVER stops so far */
    uint8_t outcome_bits;     /* h[3] */
    bool closed;              /* CLOSE was returned */
    bool timed_out;           /* the idle timer fired: nothing more is read */
    /* Step run only: the message text as the driver fed it. */
    char msg_id[ENVELOPE_ID_MAX + 1]; /* the transaction msg belongs to, "" for none */
    struct buf msg;                   /* BDAT: the stored chunks; DATA: the raw text */
    bool msg_chunked;                 /* msg came by BDAT */
};

/* What the step run knows before a feed. */
struct step_before {
    enum smtp_parser_mode mode;       /* the parser's */
    uint64_t chunk_left;              /* CHUNK: bytes still to come */
    bool chunk_stored;                /* CHUNK: they go into the transaction */
    bool chunk_discard;               /* CHUNK: read into nothing, an error after it */
    bool chunk_syntax;                /* ... 501 for a malformed BDAT line */
    char txn_id[ENVELOPE_ID_MAX + 1]; /* the open transaction's id, "" for none */
    size_t line_end;                  /* COMMAND: input bytes through the first LF, 0 for none */
    bool too_long;                    /* that line is over the limit */
    enum smtp_verb verb;              /* its verb (UNKNOWN when too long) */
    bool bdat_size_ok;                /* BDAT: the size can be read */
    bool bdat_ok;                     /* BDAT: the whole argument is well-formed */
    uint64_t bdat_size;               /* BDAT: that size */
    bool rcpt_open;                   /* a transaction with a recipient is open (RCPT) */
    bool starttls_usable;             /* EHLO may list STARTTLS */
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

/* reply_code_at - the code of the reply line at out[at], 0 when there is none. */
static unsigned reply_code_at(const struct buf *out, size_t at)
{
    if (out->len < at + REPLY_MIN_LINE)
        return 0;
    const char *p = out->data + at;
    return (unsigned)((p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0'));
}

/* last_line - where the last reply line in out starts. */
static size_t last_line(const struct buf *out)
{
    size_t i = out->len >= 2 ? out->len - 2 : 0; /* the final CRLF */
    while (i > 0 && out->data[i - 1] != '\n')
        i--;
    return i;
}

/* check_closing_421 - the last reply is the 421 that closes: 4.5.0 for a lost
 * synchronization, or 4.7.0 when the error budget ran out first. */
static void check_closing_421(const struct drive *d)
{
    const struct buf *out = &d->e.out;
    size_t at = last_line(out);
    FUZZ_CHECK(reply_code_at(out, at) == 421);
    const char *esc = d->e.session.errors >= d->cfg->limits.max_errors ? "4.7.0 " : "4.5.0 ";
    FUZZ_CHECK(out->len - at > REPLY_MIN_LINE + 6 &&
               memcmp(out->data + at + REPLY_MIN_LINE, esc, 6) == 0);
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

/* same_string - both NULL, or equal text in different memory (the transaction's copy). */
static bool same_string(const char *copy, const char *orig)
{
    if (copy == NULL || orig == NULL)
        return copy == orig;
    return copy != orig && strcmp(copy, orig) == 0;
}

/* check_envelope - what a delivered transaction promises the delivery: envelope.h's string
 * rules, the recipient limit and domains, SMTPUTF8 for non-ASCII, the size limit, and its
 * own copies of the session's facts. */
static void check_envelope(const struct drive *d, const struct txn *t)
{
    const struct envelope *env = &t->env;
    const struct session *s = &d->e.session;
    FUZZ_CHECK(memchr(env->id, '\0', sizeof(env->id)) != NULL && env->id[0] != '\0');
    FUZZ_CHECK(env->helo != NULL && smtp_cmd_valid_utf8(env->helo, strlen(env->helo)));
    FUZZ_CHECK(same_string(env->helo, s->helo));
    FUZZ_CHECK(same_string(env->client_address, s->client_address));
    FUZZ_CHECK(env->mail_from != NULL);
    FUZZ_CHECK(strlen(env->mail_from) <= SMTP_PATH_MAX);
    FUZZ_CHECK(smtp_cmd_valid_utf8(env->mail_from, strlen(env->mail_from)));
    bool non_ascii = has_non_ascii(env->mail_from);
    FUZZ_CHECK(env->n_rcpt >= 1 && env->n_rcpt <= d->cfg->limits.max_recipients);
    for (size_t i = 0; i < env->n_rcpt; i++) {
        const char *r = env->rcpt_to[i];
        FUZZ_CHECK(r != NULL && r[0] != '\0' && strlen(r) <= SMTP_PATH_MAX);
        FUZZ_CHECK(smtp_cmd_valid_utf8(r, strlen(r)));
        const char *at = strrchr(r, '@');
        if (at == NULL)
            FUZZ_CHECK(is_postmaster(r));
        else
            FUZZ_CHECK(config_domain_accepted(d->cfg, at + 1, strlen(at + 1)));
        non_ascii = non_ascii || has_non_ascii(r);
    }
    FUZZ_CHECK(!non_ascii || env->smtputf8);
    FUZZ_CHECK(env->declared_size <= d->cfg->limits.max_message_bytes);
    FUZZ_CHECK(env->size <= d->cfg->limits.max_message_bytes);
    FUZZ_CHECK(env->body != ENVELOPE_BODY_BINARYMIME || env->chunked);
    FUZZ_CHECK(same_string(env->tls.version, s->tls.version));
    FUZZ_CHECK(same_string(env->tls.cipher, s->tls.cipher));
    FUZZ_CHECK(!s->tls_required || env->tls.version != NULL);
    FUZZ_CHECK(t->body_ended && !t->too_big && t->spool_error == 0 && t->spool != NULL);
}

/* data_line_start - raw[i] starts a line of DATA text: it is the first byte, or CRLF is
 * before it (bare CR and bare LF never start a line). */
static bool data_line_start(const char *raw, size_t i)
{
    return i == 0 || (i >= 2 && raw[i - 2] == '\r' && raw[i - 1] == '\n');
}

/* data_end - the bytes of raw[0, n) up to and with the CRLF "." CRLF that ends the DATA
 * text (the first CRLF may be the DATA command's), or 0 when it has not ended (RFC 5321
 * §4.1.1.4). Written from the RFC, not from the parser, so the two check each other. */
static size_t data_end(const char *raw, size_t n)
{
    for (size_t i = 0; i + 3 <= n; i++)
        if (data_line_start(raw, i) && raw[i] == '.' && raw[i + 1] == '\r' && raw[i + 2] == '\n')
            return i + 3;
    return 0;
}

/* data_unstuff - the message of DATA text raw that ends at end: the text before the final
 * dot, each dot at the start of a line removed (RFC 5321 §4.5.2), into dst. */
static void data_unstuff(const char *raw, size_t end, struct buf *dst)
{
    FUZZ_CHECK(end >= 3);
    for (size_t i = 0; i < end - 3; i++)
        if (!(data_line_start(raw, i) && raw[i] == '.'))
            FUZZ_CHECK(buf_append(dst, raw + i, 1) == 0);
}

/* msg_begin - the step run's message text belongs to transaction id from now on; chunked:
 * it comes by BDAT. A new id starts it empty. */
static void msg_begin(struct drive *d, const char *id, bool chunked, bool reset)
{
    if (reset || strcmp(d->msg_id, id) != 0) {
        buf_reset(&d->msg);
        snprintf(d->msg_id, sizeof(d->msg_id), "%s", id);
        d->msg_chunked = chunked;
    }
    FUZZ_CHECK(d->msg_chunked == chunked);
}

/* txn_id_of - the id of the session's open transaction, "" for none. */
static const char *txn_id_of(const struct drive *d)
{
    const struct txn *t = smtp_engine_txn(&d->e);
    return t != NULL ? t->env.id : "";
}

/* transcript_add - what every run must agree on. */
static void transcript_add(struct drive *d, const char *data, size_t n)
{
    if (n == 0)
        return;
    FUZZ_CHECK(buf_append(&d->transcript, data, n) == 0);
}

/* take_replies - the connection writes what the engine queued. */
static void take_replies(struct drive *d)
{
    transcript_add(d, d->e.out.data, d->e.out.len);
    buf_reset(&d->e.out);
}

/* deliver - the DELIVER stop: take the transaction, check it and its spool against what
 * was fed, answer with the next outcome; that reply must be exactly the outcome. */
static void deliver(struct drive *d)
{
    FUZZ_CHECK(smtp_engine_delivering(&d->e));
    FUZZ_CHECK(d->e.out.len == 0); /* the message's reply is the delivery's */
    struct txn *t = smtp_engine_take_txn(&d->e);
    FUZZ_CHECK(t != NULL);
    FUZZ_CHECK(smtp_engine_txn(&d->e) == NULL && smtp_engine_take_txn(&d->e) == NULL);
    check_envelope(d, t);

    struct buf body = {0};
    FUZZ_CHECK(spool_size(t->spool) == t->env.size);
    char *piece = malloc(SPOOL_READ_BYTES);
    FUZZ_CHECK(piece != NULL);
    for (uint64_t off = 0;;) {
        size_t got = 0;
        FUZZ_CHECK(spool_read(t->spool, off, piece, SPOOL_READ_BYTES, &got) == 0);
        if (got == 0)
            break;
        FUZZ_CHECK(buf_append(&body, piece, got) == 0);
        off += got;
    }
    free(piece);
    FUZZ_CHECK(body.len == t->env.size);

    if (d->step) {
        /* A message of "BDAT 0 LAST" alone has no chunk the driver saw. */
        if (strcmp(d->msg_id, t->env.id) != 0)
            msg_begin(d, t->env.id, true, true);
        FUZZ_CHECK(t->env.chunked == d->msg_chunked);
        struct buf want = {0};
        if (d->msg_chunked) {
            FUZZ_CHECK(buf_append(&want, d->msg.data, d->msg.len) == 0);
        } else {
            size_t end = data_end(d->msg.data, d->msg.len);
            FUZZ_CHECK(end == d->msg.len);
            data_unstuff(d->msg.data, end, &want);
        }
        FUZZ_CHECK(want.len == body.len &&
                   (body.len == 0 || memcmp(want.data, body.data, body.len) == 0));
        buf_free(&want);
        d->msg_id[0] = '\0';
    }

    char head[128];
    int n = snprintf(head, sizeof(head), "[delivered %zu rcpt, %s]", t->env.n_rcpt,
                     t->env.chunked ? "BDAT" : "DATA");
    transcript_add(d, head, (size_t)n);
    transcript_add(d, body.data, body.len);
    buf_free(&body);

    unsigned k = d->deliveries++ % N_OUTCOMES;
    const struct app_reply *o = &outcomes[(d->outcome_bits >> (2 * k)) & 3];
    enum smtp_engine_stop st = smtp_engine_delivered(&d->e, o);
    FUZZ_CHECK(st == SMTP_ENGINE_IDLE || st == SMTP_ENGINE_CLOSE);
    FUZZ_CHECK(!smtp_engine_delivering(&d->e) && smtp_engine_txn(&d->e) == NULL);
    char want[APP_REPLY_TEXT_MAX + 32];
    n = snprintf(want, sizeof(want), "%u %s %s\r\n", o->code, o->esc, o->text);
    FUZZ_CHECK(d->e.out.len >= (size_t)n && memcmp(d->e.out.data, want, (size_t)n) == 0);
    unsigned last = 0;
    unsigned finals = check_replies(&d->e.out, 0, d->e.out.len, false, &last);
    FUZZ_CHECK(finals == 1 || (finals == 2 && last == 421 && st == SMTP_ENGINE_CLOSE));
    FUZZ_CHECK((st == SMTP_ENGINE_CLOSE) == d->e.session.shutting_down);
    d->closed = st == SMTP_ENGINE_CLOSE;
    take_replies(d);
    txn_free(t);
}

/* starttls - the STARTTLS stop: the 220 went out, the rest of the read was dropped; the
 * handshake succeeds at once. */
static void starttls(struct drive *d)
{
    const struct session *s = &d->e.session;
    FUZZ_CHECK(s->tls_offered && s->tls.version == NULL);
    FUZZ_CHECK(!session_in_transaction(s) && s->state != SESSION_STATE_GREETING);
    FUZZ_CHECK(!smtp_parser_pending(&d->e.parser) && d->e.parser.mode == SMTP_PARSER_COMMAND);
    smtp_engine_tls_started(&d->e, &fuzz_tls, false);
    FUZZ_CHECK(d->e.out.len == 0);
    FUZZ_CHECK(s->state == SESSION_STATE_GREETING && s->helo == NULL);
    FUZZ_CHECK(s->tls.version == fuzz_tls.version);
}

/* check_ehlo - an EHLO that succeeded lists STARTTLS exactly when the listener offers it
 * and TLS is not active yet (RFC 3207 §4.2), and always CHUNKING and BINARYMIME. */
static void check_ehlo(const struct drive *d, bool starttls_usable)
{
    const char *r = d->e.out.data;
    size_t n = d->e.out.len;
    if (n < REPLY_MIN_LINE || memcmp(r, "250-", REPLY_MIN_LINE) != 0)
        return;
    bool listed = memmem(r, n, "\r\n250-STARTTLS\r\n", 16) != NULL;
    FUZZ_CHECK(listed == starttls_usable);
    FUZZ_CHECK(memmem(r, n, "\r\n250-CHUNKING\r\n", 16) != NULL);
    FUZZ_CHECK(memmem(r, n, "\r\n250-BINARYMIME\r\n", 18) != NULL);
}

/* step_snapshot - what the step checks need to know before a feed of data[0, len). */
static void step_snapshot(const struct drive *d, const char *data, size_t len,
                          struct step_before *b)
{
    const struct smtp_parser *p = &d->e.parser;
    const struct session *s = &d->e.session;
    memset(b, 0, sizeof(*b));
    b->mode = p->mode;
    b->chunk_left = p->chunk_left;
    b->chunk_discard = s->chunk_discard;
    b->chunk_syntax = s->chunk_syntax;
    b->chunk_stored = s->state == SESSION_STATE_CHUNK && !s->chunk_discard;
    snprintf(b->txn_id, sizeof(b->txn_id), "%s", txn_id_of(d));
    b->rcpt_open = s->state == SESSION_STATE_RCPT;
    b->starttls_usable = s->tls_offered && s->tls.version == NULL;
    b->verb = SMTP_VERB_UNKNOWN;
    if (p->mode != SMTP_PARSER_COMMAND)
        return;
    const char *lf = memchr(data, '\n', len);
    if (lf == NULL)
        return;
    b->line_end = (size_t)(lf - data) + 1;
    b->too_long = p->skipping || p->partial_len + b->line_end > p->max_line_bytes;
    if (b->too_long)
        return;
    char line[COMMAND_LINE_BYTES];
    size_t n = p->partial_len;
    if (n > 0)
        memcpy(line, p->partial, n);
    memcpy(line + n, data, b->line_end);
    n += b->line_end - 1; /* without the LF ... */
    if (n > 0 && line[n - 1] == '\r')
        n--; /* ... and one CR before it */
    struct smtp_command cmd;
    smtp_cmd_parse(line, n, &cmd);
    b->verb = cmd.verb;
    if (cmd.verb == SMTP_VERB_BDAT) {
        uint64_t size = 0;
        bool last;
        b->bdat_size_ok = smtp_cmd_bdat_size(cmd.arg, cmd.arg_len, &b->bdat_size);
        b->bdat_ok = smtp_cmd_bdat(cmd.arg, cmd.arg_len, &size, &last);
        FUZZ_CHECK(!b->bdat_ok || (b->bdat_size_ok && size == b->bdat_size));
    }
}

/* check_answer - one reply, or two when the second is the 421 that closes. */
static void check_answer(unsigned finals, unsigned last, enum smtp_engine_stop st)
{
    FUZZ_CHECK(finals == 1 || (finals == 2 && last == 421 && st == SMTP_ENGINE_CLOSE));
    if (st == SMTP_ENGINE_CLOSE)
        FUZZ_CHECK(last == 221 || last == 421);
}

/* check_chunk_reply - the reply after a chunk: 250 or DELIVER when stored, 503 (no
 * transaction) or 501 (malformed BDAT line) when read into nothing; a 501 leaves no chunked
 * message behind. */
static void check_chunk_reply(const struct drive *d, bool discard, bool syntax,
                              enum smtp_engine_stop st)
{
    unsigned code = reply_code_at(&d->e.out, 0);
    const struct txn *t = smtp_engine_txn(&d->e);
    if (discard && !syntax) {
        FUZZ_CHECK(code == 503 && st != SMTP_ENGINE_DELIVER);
        FUZZ_CHECK(!session_in_transaction(&d->e.session));
    } else if (discard) {
        FUZZ_CHECK(code == 501 && st != SMTP_ENGINE_DELIVER);
        FUZZ_CHECK(t == NULL || !t->env.chunked);
    } else {
        FUZZ_CHECK(st == SMTP_ENGINE_DELIVER || code == 250 || code == 552);
    }
    FUZZ_CHECK(d->e.session.state != SESSION_STATE_CHUNK);
}

/* step_command - a feed that started in command mode: it answers the first line and, for
 * a BDAT with a readable size, exactly its chunk. */
static void step_command(struct drive *d, const struct step_before *b, const char *data,
                         size_t rest, size_t used, enum smtp_engine_stop st, unsigned finals,
                         unsigned last)
{
    size_t wrote = d->e.out.len;
    if (b->line_end == 0) { /* no whole line yet */
        FUZZ_CHECK(used == rest && wrote == 0 && st == SMTP_ENGINE_IDLE);
        return;
    }
    /* RFC 3030 §2: a chunk goes into the message only while a transaction with a
     * recipient is open; otherwise, or after a malformed BDAT line, it is read into
     * nothing and the error comes after it. */
    bool chunk_discard = !b->bdat_ok || !b->rcpt_open;
    if (b->verb == SMTP_VERB_BDAT && b->bdat_size_ok && b->bdat_size > 0) {
        size_t avail = rest - b->line_end;
        size_t chunk = b->bdat_size < avail ? (size_t)b->bdat_size : avail;
        if (!chunk_discard && chunk > 0) {
            msg_begin(d, b->txn_id, true, false);
            FUZZ_CHECK(buf_append(&d->msg, data + b->line_end, chunk) == 0);
        }
        if (b->bdat_size > avail) { /* the chunk goes on in the next read */
            const struct session *s = &d->e.session;
            FUZZ_CHECK(used == rest && wrote == 0 && st == SMTP_ENGINE_IDLE);
            FUZZ_CHECK(s->state == SESSION_STATE_CHUNK);
            FUZZ_CHECK(s->chunk_discard == chunk_discard && s->chunk_syntax == !b->bdat_ok);
            return;
        }
        FUZZ_CHECK(used == b->line_end + chunk || st == SMTP_ENGINE_CLOSE);
        if (st == SMTP_ENGINE_DELIVER)
            FUZZ_CHECK(wrote == 0);
        else
            check_answer(finals, last, st);
        check_chunk_reply(d, chunk_discard, !b->bdat_ok, st);
        return;
    }

    if (st != SMTP_ENGINE_CLOSE && st != SMTP_ENGINE_STARTTLS)
        FUZZ_CHECK(used == b->line_end); /* nothing behind the line is touched */
    if (st == SMTP_ENGINE_DELIVER) {     /* only "BDAT 0 LAST" ends a message at its line */
        FUZZ_CHECK(wrote == 0 && b->verb == SMTP_VERB_BDAT && !chunk_discard && b->bdat_size == 0);
        return;
    }
    check_answer(finals, last, st);
    unsigned code = reply_code_at(&d->e.out, 0);
    if (b->verb == SMTP_VERB_EHLO)
        check_ehlo(d, b->starttls_usable);
    if (st == SMTP_ENGINE_STARTTLS)
        FUZZ_CHECK(b->verb == SMTP_VERB_STARTTLS && finals == 1 && last == 220);
    if (b->verb == SMTP_VERB_BDAT && !b->bdat_size_ok) {
        /* Nobody knows where its chunk ends: 501, then 421, closed. */
        FUZZ_CHECK(code == 501 && finals == 2 && st == SMTP_ENGINE_CLOSE);
        check_closing_421(d);
    }
    if (b->verb == SMTP_VERB_BDAT && b->bdat_size_ok && b->bdat_size == 0)
        check_chunk_reply(d, chunk_discard, !b->bdat_ok, st);
    if (b->verb == SMTP_VERB_DATA && code == 354) {
        FUZZ_CHECK(d->e.parser.mode == SMTP_PARSER_DATA && finals == 1);
        msg_begin(d, txn_id_of(d), false, true);
    } else if (b->verb == SMTP_VERB_DATA && rest > b->line_end) {
        /* A refused DATA with input behind it (RFC 2920 §3.1): nothing of that input is
         * answered, the next reply is the 421 and the session ends. */
        FUZZ_CHECK(finals == 2 && st == SMTP_ENGINE_CLOSE);
        check_closing_421(d);
    } else if (b->verb == SMTP_VERB_DATA) {
        /* Refused with nothing behind it: the session goes on (unless the budget ran out). */
        FUZZ_CHECK(st != SMTP_ENGINE_CLOSE || d->e.session.errors >= d->cfg->limits.max_errors);
    }
}

/* step_data - a feed that started in DATA mode: the text up to the first CRLF "." CRLF and
 * not a byte further, then the message's end (DELIVER, or 552 for one too big). */
static void step_data(struct drive *d, const struct step_before *b, const char *data, size_t rest,
                      size_t used, enum smtp_engine_stop st, unsigned finals, unsigned last)
{
    FUZZ_CHECK(strcmp(d->msg_id, b->txn_id) == 0 && !d->msg_chunked);
    size_t had = d->msg.len;
    FUZZ_CHECK(buf_append(&d->msg, data, used) == 0);
    size_t end = data_end(d->msg.data, d->msg.len);
    if (d->e.out.len == 0 && st != SMTP_ENGINE_DELIVER) {
        FUZZ_CHECK(st == SMTP_ENGINE_IDLE && used == rest && end == 0);
        return;
    }
    FUZZ_CHECK(end > had);
    if (st == SMTP_ENGINE_CLOSE)
        d->msg.len = end; /* the rest was dropped */
    FUZZ_CHECK(end == d->msg.len);
    if (st == SMTP_ENGINE_DELIVER) {
        FUZZ_CHECK(d->e.out.len == 0);
        return;
    }
    check_answer(finals, last, st);
    FUZZ_CHECK(reply_code_at(&d->e.out, 0) == 552);
}

/* step_chunk - a feed that started inside a chunk: exactly its bytes, then its reply. */
static void step_chunk(struct drive *d, const struct step_before *b, const char *data, size_t rest,
                       size_t used, enum smtp_engine_stop st, unsigned finals, unsigned last)
{
    size_t take = b->chunk_left < rest ? (size_t)b->chunk_left : rest;
    if (b->chunk_stored && take > 0) {
        msg_begin(d, b->txn_id, true, false);
        FUZZ_CHECK(buf_append(&d->msg, data, take) == 0);
    }
    if (b->chunk_left > rest) {
        FUZZ_CHECK(used == rest && d->e.out.len == 0 && st == SMTP_ENGINE_IDLE);
        return;
    }
    FUZZ_CHECK(used == take || st == SMTP_ENGINE_CLOSE);
    if (st == SMTP_ENGINE_DELIVER)
        FUZZ_CHECK(d->e.out.len == 0 && b->chunk_stored);
    else
        check_answer(finals, last, st);
    check_chunk_reply(d, b->chunk_discard, b->chunk_syntax, st);
}

/* check_session - what holds between feeds, in every run. */
static void check_session(const struct drive *d)
{
    const struct session *s = &d->e.session;
    FUZZ_CHECK(s->errors <= d->cfg->limits.max_errors);
    FUZZ_CHECK(s->errors < d->cfg->limits.max_errors || d->closed);
    const struct txn *t = smtp_engine_txn(&d->e);
    FUZZ_CHECK(t == NULL || t->env.n_rcpt <= d->cfg->limits.max_recipients);
    FUZZ_CHECK(d->closed == (s->state == SESSION_STATE_CLOSING));
    FUZZ_CHECK(d->closed == d->e.closed);
    FUZZ_CHECK(!d->closed || !smtp_engine_pending(&d->e));
}

/* after_close - conn.c reads nothing after CLOSE; if it did, the engine must swallow it
 * whole and stay silent. */
static void after_close(struct drive *d, const char *data, size_t len)
{
    enum smtp_engine_stop st;
    FUZZ_CHECK(smtp_engine_feed(&d->e, data, len, 0, NOW_MS, &st) == len);
    FUZZ_CHECK(st == SMTP_ENGINE_CLOSE && d->e.out.len == 0);
}

/* feed_read - one read, fed until used up as conn.c feeds it, every stop carried out. The
 * read is a private copy freed afterwards, so that ASan catches a parser or session that
 * keeps pointers into a read buffer. */
static void feed_read(struct drive *d, const uint8_t *bytes, size_t len)
{
    char *data = malloc(len ? len : 1);
    FUZZ_CHECK(data != NULL);
    memcpy(data, bytes, len);
    size_t off = 0;
    if (d->closed)
        after_close(d, data, len);
    while (!d->closed && (off < len || smtp_engine_pending(&d->e))) {
        size_t rest = len - off;
        struct step_before b;
        if (d->step)
            step_snapshot(d, data + off, rest, &b);
        enum smtp_engine_stop st;
        size_t used = smtp_engine_feed(&d->e, data + off, rest, 0, NOW_MS, &st);
        FUZZ_CHECK(used <= rest);
        if (st == SMTP_ENGINE_IDLE || st == SMTP_ENGINE_STARTTLS || st == SMTP_ENGINE_CLOSE)
            FUZZ_CHECK(used == rest);
        if (st == SMTP_ENGINE_FULL)
            FUZZ_CHECK(d->e.out.len >= d->e.out_limit && d->e.out.len > 0);
        if (d->step) {
            bool plain_250 = b.mode == SMTP_PARSER_COMMAND &&
                             (b.verb == SMTP_VERB_HELO || b.verb == SMTP_VERB_EHLO);
            unsigned last = 0;
            unsigned finals = check_replies(&d->e.out, 0, d->e.out.len, plain_250, &last);
            if (b.mode == SMTP_PARSER_COMMAND)
                step_command(d, &b, data + off, rest, used, st, finals, last);
            else if (b.mode == SMTP_PARSER_DATA)
                step_data(d, &b, data + off, rest, used, st, finals, last);
            else
                step_chunk(d, &b, data + off, rest, used, st, finals, last);
        }
        take_replies(d);
        off += used;
        switch (st) {
        case SMTP_ENGINE_IDLE:
        case SMTP_ENGINE_FULL:
            break;
        case SMTP_ENGINE_DELIVER:
            deliver(d);
            break;
        case SMTP_ENGINE_STARTTLS:
            starttls(d);
            break;
        case SMTP_ENGINE_CLOSE:
            d->closed = true;
            break;
        default:
            FUZZ_FAIL("unknown stop");
        }
        check_session(d);
    }
    free(data);
}

/* shutdown_now - the server stops between two reads: 421 and CLOSE when idle, else the
 * transaction may finish. */
static void shutdown_now(struct drive *d)
{
    bool busy = session_in_transaction(&d->e.session);
    enum smtp_engine_stop st = smtp_engine_shutdown(&d->e);
    unsigned last = 0;
    unsigned finals = check_replies(&d->e.out, 0, d->e.out.len, false, &last);
    if (d->closed) {
        FUZZ_CHECK(st == SMTP_ENGINE_CLOSE && finals == 0);
    } else if (busy) {
        FUZZ_CHECK(st == SMTP_ENGINE_IDLE && finals == 0);
    } else {
        FUZZ_CHECK(st == SMTP_ENGINE_CLOSE && finals == 1 && last == 421);
        d->closed = true;
    }
    take_replies(d);
}

/* timeout_now - the idle timer fires between two reads: 421 4.4.2 and CLOSE in any state.
 * conn.c closes at once, so the driver reads nothing more. */
static void timeout_now(struct drive *d)
{
    enum smtp_engine_stop st = smtp_engine_timeout(&d->e);
    unsigned last = 0;
    FUZZ_CHECK(st == SMTP_ENGINE_CLOSE && d->e.session.state == SESSION_STATE_CLOSING);
    FUZZ_CHECK(check_replies(&d->e.out, 0, d->e.out.len, false, &last) == 1 && last == 421);
    take_replies(d);
    d->closed = true;
    d->timed_out = true;
}

/* run - one connection over the client's bytes with the given out_limit; the transcript
 * is left in d->transcript (the caller frees it). */
static void run(struct drive *d, const struct config *cfg, const uint8_t *h, const uint8_t *data,
                size_t size, size_t out_limit)
{
    memset(d, 0, sizeof(*d));
    d->cfg = cfg;
    d->step = out_limit == STEP_OUT_LIMIT;
    d->outcome_bits = h[3];
    unsigned shutdown_at = h[4] >= '1' && h[4] <= '9' ? (unsigned)(h[4] - '0') : 0;
    unsigned timeout_at = h[4] >= 'a' && h[4] <= 'i' ? (unsigned)(h[4] - 'a' + 1) : 0;

    smtp_engine_init(&d->e, cfg, "192.0.2.1", 40000, "fuzz", out_limit);
    session_set_tls_policy(&d->e.session, h[5] == 't' || h[5] == 'u' || h[5] == 'v',
                           h[5] == 'u' || h[5] == 'v');
    smtp_engine_greet(&d->e);
    unsigned last = 0;
    FUZZ_CHECK(check_replies(&d->e.out, 0, d->e.out.len, false, &last) == 1 && last == 220);
    take_replies(d);

    size_t off = 0;
    for (unsigned read = 1; off < size; read++) {
        if (read == shutdown_at)
            shutdown_now(d);
        if (read == timeout_at && !d->closed)
            timeout_now(d);
        if (d->timed_out)
            break;
        size_t want = h[(read - 1) % 3];
        size_t n = want == 0 || want > size - off ? size - off : want;
        feed_read(d, data + off, n);
        off += n;
    }
    smtp_engine_free(&d->e);
    buf_free(&d->msg);
}

/* LLVMFuzzerTestOneInput - one connection, three times: the transcripts must agree. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t h[FUZZ_HDR] = {0};
    size_t hn = size < FUZZ_HDR ? size : FUZZ_HDR;
    if (hn > 0)
        memcpy(h, data, hn);
    data += hn;
    size -= hn;
    log_set_level(LOG_LEVEL_WARN); /* no txn line for every 552 */

    struct config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.hostname = fuzz_host;
    cfg.domains = fuzz_domains;
    cfg.n_domains = 1;
    cfg.limits.max_command_line_bytes = COMMAND_LINE_BYTES;
    cfg.limits.max_recipients = MAX_RECIPIENTS;
    bool small = h[5] == 's' || h[5] == 'v';
    cfg.limits.max_message_bytes = small ? SMALL_MESSAGE_BYTES : MESSAGE_BYTES;
    cfg.limits.max_errors = MAX_ERRORS;
    cfg.spool.memory_bytes = SPOOL_MEMORY_BYTES;
    cfg.spool.directory = fuzz_spool_dir;

    const size_t limits[N_RUNS] = {SIZE_MAX, STEP_OUT_LIMIT,
                                   MID_OUT_LIMIT_MIN + (size_t)((h[0] ^ h[1]) & 0xff)};
    struct drive d[N_RUNS];
    for (size_t i = 0; i < N_RUNS; i++)
        run(&d[i], &cfg, h, data, size, limits[i]);
    for (size_t i = 1; i < N_RUNS; i++) {
        FUZZ_CHECK(d[i].transcript.len == d[0].transcript.len);
        FUZZ_CHECK(d[0].transcript.len == 0 ||
                   memcmp(d[i].transcript.data, d[0].transcript.data, d[0].transcript.len) == 0);
        FUZZ_CHECK(d[i].deliveries == d[0].deliveries && d[i].closed == d[0].closed);
    }
    for (size_t i = 0; i < N_RUNS; i++)
        buf_free(&d[i].transcript);
    return 0;
}
