/* fuzz_engine.c - fuzz target: bytes from the network through smtp_engine (parser and
 * session, the one path conn.c takes), with the webhook outcome answered at once and the
 * recipient checks answered when and as the input says.
 *
 * Input layout: FUZZ_HDR bytes of header, then the client's bytes.
 *   h[0]      recipient checks and routes, a flag per bit (0: neither, no probe):
 *             0x01 recipient_check.enabled; 0x02 routes (below), domains example.com,
 *             example.net and sub.example.org; 0x04 a last catch-all route; 0x08
 *             one_route_per_transaction; 0x10 recipient_delimiter "+"; 0x20 max_recipients
 *             FEW_RECIPIENTS; 0x40 max_errors FEW_ERRORS; 0x80 a route probe, per h[1]
 *   h[1]      the route probe: bits 0-3 say routes 0-3 are down, bit 4 that recipients
 *             without routes (route -1) are; bit 5 turns every second answer the other way
 *   h[2..9]   one byte per recipient check, used in turn: bits 0-1 the verdict (accept,
 *             550 5.1.1, 451 4.3.0, a reply the app chose), bits 4-5 which accept or app
 *             reply, bits 2-3 when it comes (0: at once, as a cache hit does; 1: once the read
 *             that queued it is handled; 2, 3: one or two reads later; all that are left at
 *             the end of the input), bits 6-7 its rank: of the answers due together the
 *             highest rank comes first, the latest check first among equals
 *   h[10..12] read sizes, used in turn (0: the rest of the input in one read)
 *   h[13]     webhook outcomes, 2 bits per delivery (250, 451, 550, 552), used in turn
 *   h[14]     '1'..'9': the server shuts down before that read; 'a'..'i': the idle timer
 *             fires before read 1..9, or before the first read after it when no check is out
 *             (conn.c stops the timer while checks run); the connection then reads nothing
 *             more; else neither
 *   h[15]     's': max_message_bytes is SMALL_MESSAGE_BYTES, so the 552 path is reached by
 *             short inputs; 't': STARTTLS offered; 'u': offered and required for MAIL; 'v':
 *             'u' with the small limit; anything else: MESSAGE_BYTES, no TLS
 * The routes: 0 "alice@example.com" and "bob@example.net", 1 "*@example.com", 2
 * "*@*.example.org", 3 "*" (with 0x04).
 *
 * Each input runs three times with the same reads: with an out_limit that never stops the
 * feed, with one that stops it at every reply (FULL), and with one between (from h[10] and
 * h[11]). The three transcripts (replies, delivered messages) must be identical: FULL
 * resumes losslessly. An accepted STARTTLS "completes" the handshake at once. Reads and
 * check answers are events in the order conn.c could see them: the checks queued by a feed
 * or an answer are taken right after it (a cache hit answered there), and input that comes
 * while a command waits for checks is held and fed, in order, once they are answered.
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
 *     exactly when BDAT carried it, its own copies of the session's strings, each
 *     recipient with the route config_route_for gives it, all of one route with
 *     one_route_per_transaction), and its spool holds exactly env.size bytes, equal to the
 *     text the driver fed: the chunks, or the DATA text unstuffed (RFC 5321 §4.5.2);
 *   - the delivery's reply is the outcome exactly; EHLO offers STARTTLS exactly when it may
 *     be used; nothing is read or written after CLOSE.
 * Recipients and their checks (the step run keeps a model of every RCPT: its reply from
 * the domain, the route, the probe, one_route_per_transaction, max_recipients counting the
 * checks out, and the verdict of its check):
 *   - an RCPT answered at once gets exactly the model's reply; a recipient of a route the
 *     probe calls down gets 451 4.4.1 and no check; the probe is asked once for each RCPT
 *     that has a route (or needs none), with that route;
 *   - while checks are pending a feed writes nothing: RCPTs join the queue, the first other
 *     command (or over-long line, or RCPT once the queue holds max_recipients + max_errors)
 *     waits (WAIT), consumed exactly through its LF, and no input is fed until the checks
 *     are answered;
 *   - exactly the RCPTs that passed every other test get a check, in command order, each
 *     index handed out once and naming its recipient; a queue never waits without a check
 *     out; recipients accepted plus checks not refused never exceed max_recipients;
 *   - an answer, in whatever order it comes, writes the replies then due in command order,
 *     each exactly its verdict's or the model's, and once the queue is empty the waiting
 *     command's reply (one reply, as if the command came now); a 4xx refusal is never
 *     charged to the error budget, a 5xx always is, and a spent budget ends in 421 4.7.0
 *     with nothing after it;
 *   - an answer to an index not out (answered, past the queue) or after CLOSE changes
 *     nothing;
 *   - a delivered transaction's recipients are exactly the RCPTs answered 250, in order,
 *     each with its route.
 * Leaks are left to LeakSanitizer: everything is freed at the end, checks still out too.
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
#include "smtphook/reply.h"
#include "smtphook/route.h"
#include "smtphook/smtp_cmd.h"
#include "smtphook/smtp_engine.h"
#include "smtphook/spool.h"
#include "smtphook/txn.h"

#define FUZZ_HDR            16                     /* header bytes before the client's bytes */
#define H_FLAGS             0                      /* header: checks, routes, limits, probe */
#define H_PROBE             1                      /* header: the route probe's answers */
#define H_CHECKS            2                      /* header: N_CHECK_BYTES, one per check */
#define N_CHECK_BYTES       8                      /* check bytes, used in turn */
#define H_READS             10                     /* header: 3 read sizes */
#define H_OUTCOMES          13                     /* header: webhook outcomes */
#define H_STOP              14                     /* header: shutdown or idle timeout */
#define H_MODE              15                     /* header: size limit, TLS */
#define FLAG_CHECK          0x01u                  /* recipient_check.enabled */
#define FLAG_ROUTES         0x02u                  /* routes 0-2, three domains */
#define FLAG_CATCH_ALL      0x04u                  /* route 3, "*" */
#define FLAG_ONE_ROUTE      0x08u                  /* one_route_per_transaction */
#define FLAG_DELIMITER      0x10u                  /* recipient_delimiter "+" */
#define FLAG_FEW_RCPTS      0x20u                  /* max_recipients FEW_RECIPIENTS */
#define FLAG_FEW_ERRORS     0x40u                  /* max_errors FEW_ERRORS */
#define FLAG_PROBE          0x80u                  /* a route probe */
#define PROBE_NO_ROUTE      4u                     /* probe bit of route -1 */
#define PROBE_FLIP          0x20u                  /* every second probe answer turned */
#define COMMAND_LINE_BYTES  512                    /* limits.max_command_line_bytes */
#define MAX_RECIPIENTS      100                    /* limits.max_recipients */
#define FEW_RECIPIENTS      3                      /* ... with FLAG_FEW_RCPTS */
#define MESSAGE_BYTES       65536                  /* limits.max_message_bytes */
#define SMALL_MESSAGE_BYTES 64                     /* limits.max_message_bytes when h[15] is 's' */
#define MAX_ERRORS          20                     /* limits.max_errors */
#define FEW_ERRORS          4                      /* ... with FLAG_FEW_ERRORS */
#define RCPT_OVERSHOOT_MAX  1000                   /* session.c: soft RCPT refusals not charged */
#define SPOOL_MEMORY_BYTES  (UINT64_C(1) << 20)    /* spool.memory_bytes: bodies stay in memory */
#define NOW_MS              INT64_C(1700000000000) /* the clock every transaction is stamped with */
#define REPLY_MIN_LINE      4                      /* "NNN" and the separator */
#define ESC_MIN_LEN         6                      /* "2.0.0 " */
#define N_OUTCOMES          4                      /* webhook outcomes one header byte describes */
#define N_VARIANTS          4                      /* accept and app replies a check byte picks */
#define N_ROUTES_MAX        4                      /* routes with FLAG_CATCH_ALL */
#define N_ROUTE_PATTERNS    2                      /* patterns of a route at most */
#define N_DOMAINS           3                      /* domains with routes */
#define STEP_OUT_LIMIT      1                      /* out_limit of the step run */
#define MID_OUT_LIMIT_MIN   2                      /* smallest out_limit of the middle run */
#define N_RUNS              3                      /* unlimited, step, middle */
#define SPOOL_READ_BYTES    4096                   /* bytes per spool_read */

static char fuzz_host[] = "mx.test";
static const struct envelope_tls fuzz_tls = {"TLSv1.3", "TLS_AES_128_GCM_SHA256", NULL, NULL, NULL};
static char fuzz_domain[] = "example.com";
static char fuzz_domain_net[] = "example.net";
static char fuzz_domain_sub[] = "sub.example.org";
static char *fuzz_domains[N_DOMAINS] = {fuzz_domain, fuzz_domain_net, fuzz_domain_sub};
static char fuzz_spool_dir[] = "/tmp";
static char fuzz_delimiter[] = "+";
static size_t fuzz_endpoint = 0; /* every route's one endpoint */
/* The one endpoint: raw, so RCPT's header budget runs on every recipient, with a limit no
 * input of this size can reach (the model knows no budget). */
static char fuzz_endpoint_name[] = "app";
static char fuzz_endpoint_url[] = "http://127.0.0.1:9/inbound";
static struct config_endpoint fuzz_endpoints[1] = {{.name = fuzz_endpoint_name,
                                                    .url = fuzz_endpoint_url,
                                                    .format = CONFIG_FORMAT_RAW,
                                                    .max_header_bytes = 1048576}};

static const struct app_reply outcomes[N_OUTCOMES] = {
    {250, "2.0.0", "Ok: delivered as fuzz"},
    {451, "4.3.0", "Error: endpoint unavailable"},
    {550, "5.7.1", "Error: endpoint refused"},
    {552, "5.3.4", "Error: endpoint: message too big"},
};

/* The routes, in order (config_route_for takes the first that matches). */
static const char *const route_texts[N_ROUTES_MAX][N_ROUTE_PATTERNS] = {
    {"alice@example.com", "bob@example.net"},
    {"*@example.com", NULL},
    {"*@*.example.org", NULL},
    {"*", NULL},
};

/* The verdicts of a check byte, as rcpt_check.c gives them to conn.c. */
enum verdict {
    VERDICT_ACCEPT = 0, /* accept, with check_accepts[variant] */
    VERDICT_UNKNOWN,    /* 550 5.1.1 */
    VERDICT_FAILED,     /* 451 4.3.0: the check failed, on_failure "defer" */
    VERDICT_APP,        /* check_apps[variant] */
};

static const struct app_reply check_accepts[N_VARIANTS] = {
    {0, "", ""},          /* no reply: the session's 250 2.1.5 Ok */
    {250, "2.1.5", "Ok"}, /* what conn.c passes for a plain 2xx */
    {250, "2.1.5", "Ok: known to the app"},
    {250, "2.0.0", "Recipient ok"},
};
static const struct app_reply check_unknown = {550, "5.1.1",
                                               "Error: recipient address rejected: user unknown"};
static const struct app_reply check_failed = {451, "4.3.0",
                                              "Error: recipient check failed, try again later"};
static const struct app_reply check_apps[N_VARIANTS] = {
    {550, "5.7.1", "Error: the app refused"},
    {452, "4.2.2", "Error: mailbox full"},
    {553, "5.1.3", "Error: no such mailbox here"},
    {450, "4.2.1", "Error: try again later"},
};

/* A recipient check handed out and not answered yet. */
struct check {
    size_t index; /* from smtp_engine_take_check */
    unsigned seq; /* the run's seq-th check */
    unsigned due; /* answered once read due is handled */
    uint8_t bits; /* its header byte */
};

/* What the step run expects of one RCPT (session.c's rcpt_decide, written from the design). */
enum expect {
    EXPECT_OK = 0,      /* 250 2.1.5, added (no recipient check) */
    EXPECT_CHECK,       /* a check decides */
    EXPECT_DOWN,        /* 451 4.4.1: the probe says its route is down */
    EXPECT_OTHER_ROUTE, /* 452 4.5.3: one_route_per_transaction */
    EXPECT_TOO_MANY,    /* 452 4.5.3: max_recipients */
    EXPECT_UNKNOWN,     /* 550 5.1.1: no route */
    EXPECT_REFUSED,     /* another 5xx: state, syntax, relay */
};

struct model_rcpt {
    enum expect expect;              /* see enum */
    bool charged;                    /* a soft refusal past RCPT_OVERSHOOT_MAX: charged */
    bool taken;                      /* CHECK: its index was handed out */
    bool answered;                   /* CHECK: its verdict came */
    bool accept;                     /* that verdict */
    struct app_reply reply;          /* CHECK: the verdict's reply, code 0 for none */
    long route;                      /* config_route_for's, -1 for none */
    char mailbox[SMTP_PATH_MAX + 1]; /* the recipient */
};

/* A command line of a feed, cut as the parser cuts it. */
struct feed_line {
    char text[COMMAND_LINE_BYTES]; /* the line without its LF and one CR before it */
    size_t len;                    /* bytes in text */
    size_t end;                    /* input bytes through its LF, from the feed's start */
    bool too_long;                 /* over the limit: skipped (no text) */
};

/* The command that waits behind the queue: any but RCPT, or an RCPT once the queue is full
 * (session.c bounds it at max_recipients + max_errors entries). */
struct model_cmd {
    bool waiting;          /* there is one */
    bool too_long;         /* an over-long line */
    enum smtp_verb verb;   /* its verb */
    bool bdat_size_ok;     /* BDAT: the size can be read */
    bool bdat_ok;          /* BDAT: the whole argument is well-formed */
    uint64_t bdat_size;    /* BDAT: that size */
    struct feed_line line; /* RCPT: the line, decided when it runs */
    bool esmtp;            /* RCPT: EHLO was used */
    bool smtputf8;         /* RCPT: the transaction has SMTPUTF8 */
};

/* What a connection holds, minus the I/O, for one run. */
struct drive {
    const struct config *cfg; /* shared by the runs */
    const uint8_t *h;         /* the header */
    struct smtp_engine e;     /* under test */
    bool step;                /* out_limit 1: every feed is checked as one step */
    struct buf transcript;    /* replies and delivered messages, compared across runs */
    unsigned deliveries;      /* DELIVER stops so far */
    uint8_t outcome_bits;     /* h[H_OUTCOMES] */
    bool closed;              /* CLOSE was returned */
    bool timed_out;           /* the idle timer fired: nothing more is read */
    struct buf held;          /* input that came while a command waited (conn.c's held) */
    struct check *checks;     /* checks out, in the order taken */
    size_t n_checks;          /* entries used */
    size_t checks_cap;        /* entries allocated */
    unsigned n_taken;         /* checks taken so far */
    unsigned read;            /* the read being handled, from 1 */
    bool probe;               /* a route probe is set */
    unsigned probe_calls;     /* times it was asked */
    /* Step run only: the message text as the driver fed it. */
    char msg_id[ENVELOPE_ID_MAX + 1]; /* the transaction msg belongs to, "" for none */
    struct buf msg;                   /* BDAT: the stored chunks; DATA: the raw text */
    bool msg_chunked;                 /* msg came by BDAT */
    /* Step run only: the model of the RCPTs. */
    struct model_rcpt *queue;              /* RCPTs whose replies wait, as the session's */
    size_t q_head;                         /* first not answered */
    size_t q_len;                          /* entries used */
    size_t q_cap;                          /* entries allocated */
    struct model_cmd deferred;             /* the command behind them */
    struct model_rcpt *accepted;           /* recipients answered 250 in transaction ... */
    char accepted_id[ENVELOPE_ID_MAX + 1]; /* ... with this id */
    size_t n_accepted;                     /* entries used */
    size_t accepted_cap;                   /* entries allocated */
    unsigned model_probe_calls;            /* probe calls the model expects */
    unsigned model_overshoot;              /* soft RCPT refusals the model counted */
};

/* What the step run knows before a feed. */
struct step_before {
    enum smtp_parser_mode mode;       /* the parser's */
    uint64_t chunk_left;              /* CHUNK: bytes still to come */
    bool chunk_stored;                /* CHUNK: they go into the transaction */
    bool chunk_discard;               /* CHUNK: read into nothing, an error after it */
    bool chunk_syntax;                /* ... 501 for a malformed BDAT line */
    char txn_id[ENVELOPE_ID_MAX + 1]; /* the open transaction's id, "" for none */
    struct feed_line first;           /* COMMAND: the first line */
    size_t line_end;                  /* COMMAND: input bytes through the first LF, 0 for none */
    bool too_long;                    /* that line is over the limit */
    enum smtp_verb verb;              /* its verb (UNKNOWN when too long) */
    bool bdat_size_ok;                /* BDAT: the size can be read */
    bool bdat_ok;                     /* BDAT: the whole argument is well-formed */
    uint64_t bdat_size;               /* BDAT: that size */
    bool rcpt_open;                   /* a transaction with a recipient is open (RCPT) */
    bool starttls_usable;             /* EHLO may list STARTTLS */
    bool rcpt_state;                  /* RCPT may be given (MAIL or RCPT state) */
    bool esmtp;                       /* EHLO was used */
    bool smtputf8;                    /* the transaction has SMTPUTF8 */
};

/* grow - room for need entries of size bytes in p (capacity *cap); aborts without memory. */
static void *grow(void *p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return p;
    size_t cap2 = *cap > 0 ? 2 * *cap : 8;
    while (cap2 < need)
        cap2 *= 2;
    void *q = realloc(p, cap2 * size);
    FUZZ_CHECK(q != NULL);
    *cap = cap2;
    return q;
}

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

/* probe_down - the probe's answer to its call-th question, about route. */
static bool probe_down(const struct drive *d, long route, unsigned call)
{
    uint8_t p = d->h[H_PROBE];
    unsigned bit = route >= 0 ? (unsigned)route : PROBE_NO_ROUTE;
    bool down = (((unsigned)p >> bit) & 1u) != 0;
    return (p & PROBE_FLIP) != 0 && (call & 1u) != 0 ? !down : down;
}

/* route_probe - session_route_down_fn: asked once per RCPT that has its route (or, without
 * routes, needs none), about that route. */
static bool route_probe(void *arg, long route)
{
    struct drive *d = arg;
    FUZZ_CHECK(route >= -1 && route < (long)d->cfg->n_routes);
    FUZZ_CHECK((route < 0) == (d->cfg->n_routes == 0));
    return probe_down(d, route, d->probe_calls++);
}

/* model_route - the route of a recipient as the design has it: config_route_for on the
 * address; the domain-less postmaster as postmaster@<domain> for each domain in turn, then
 * as it is (RFC 5321 §4.5.1). -1 without routes. */
static long model_route(const struct config *cfg, const char *mailbox)
{
    size_t len = strlen(mailbox);
    if (cfg->n_routes == 0)
        return -1;
    if (strchr(mailbox, '@') != NULL || cfg->any_domain)
        return config_route_for(cfg, mailbox, len);
    for (size_t i = 0; i < cfg->n_domains; i++) {
        char addr[SMTP_PATH_MAX + 32];
        int n = snprintf(addr, sizeof(addr), "%s@%s", mailbox, cfg->domains[i]);
        FUZZ_CHECK(n > 0 && (size_t)n < sizeof(addr));
        long r = config_route_for(cfg, addr, (size_t)n);
        if (r >= 0)
            return r;
    }
    return config_route_for(cfg, mailbox, len);
}

/* check_envelope - what a delivered transaction promises the delivery: envelope.h's string
 * rules, the recipient limit and domains, SMTPUTF8 for non-ASCII, the size limit, its own
 * copies of the session's facts, and each recipient's route. */
static void check_envelope(const struct drive *d, const struct txn *t)
{
    const struct envelope *env = &t->env;
    const struct session *s = &d->e.session;
    const struct config *cfg = d->cfg;
    FUZZ_CHECK(memchr(env->id, '\0', sizeof(env->id)) != NULL && env->id[0] != '\0');
    FUZZ_CHECK(env->helo != NULL && smtp_cmd_valid_utf8(env->helo, strlen(env->helo)));
    FUZZ_CHECK(same_string(env->helo, s->helo));
    FUZZ_CHECK(same_string(env->client_address, s->client_address));
    FUZZ_CHECK(env->mail_from != NULL);
    FUZZ_CHECK(strlen(env->mail_from) <= SMTP_PATH_MAX);
    FUZZ_CHECK(smtp_cmd_valid_utf8(env->mail_from, strlen(env->mail_from)));
    bool non_ascii = has_non_ascii(env->mail_from);
    FUZZ_CHECK(env->n_rcpt >= 1 && env->n_rcpt <= cfg->limits.max_recipients);
    for (size_t i = 0; i < env->n_rcpt; i++) {
        const char *r = env->rcpt_to[i];
        FUZZ_CHECK(r != NULL && r[0] != '\0' && strlen(r) <= SMTP_PATH_MAX);
        FUZZ_CHECK(smtp_cmd_valid_utf8(r, strlen(r)));
        const char *at = strrchr(r, '@');
        if (at == NULL)
            FUZZ_CHECK(is_postmaster(r));
        else
            FUZZ_CHECK(config_domain_accepted(cfg, at + 1, strlen(at + 1)));
        non_ascii = non_ascii || has_non_ascii(r);
        /* Routes: found for every recipient, the first route that matches, one route for
         * the whole message when the config says so. */
        long route = model_route(cfg, r);
        FUZZ_CHECK(t->rcpt_route[i] == route);
        FUZZ_CHECK(cfg->n_routes == 0 || route >= 0);
        if (cfg->one_route_per_transaction)
            FUZZ_CHECK(route == t->rcpt_route[0]);
        /* A route the probe always calls down never gets a recipient. */
        if (d->probe && (d->h[H_PROBE] & PROBE_FLIP) == 0)
            FUZZ_CHECK(!probe_down(d, route, 0));
    }
    FUZZ_CHECK(!non_ascii || env->smtputf8);
    FUZZ_CHECK(env->declared_size <= cfg->limits.max_message_bytes);
    FUZZ_CHECK(env->size <= cfg->limits.max_message_bytes);
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

/* model_n_accepted - the recipients the model saw answered 250 in the open transaction. */
static size_t model_n_accepted(const struct drive *d)
{
    const struct txn *t = smtp_engine_txn(&d->e);
    return t != NULL && strcmp(t->env.id, d->accepted_id) == 0 ? d->n_accepted : 0;
}

/* model_check_rcpts - the recipients of t are exactly those the model saw answered 250,
 * in order, each with its route. */
static void model_check_rcpts(const struct drive *d, const struct txn *t)
{
    size_t n = strcmp(t->env.id, d->accepted_id) == 0 ? d->n_accepted : 0;
    FUZZ_CHECK(t->env.n_rcpt == n);
    for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK(strcmp(t->env.rcpt_to[i], d->accepted[i].mailbox) == 0);
        FUZZ_CHECK(t->rcpt_route[i] == d->accepted[i].route);
    }
}

/* deliver - the DELIVER stop: take the transaction, check it and its spool against what
 * was fed, answer with the next outcome; that reply must be exactly the outcome. */
static void deliver(struct drive *d)
{
    FUZZ_CHECK(smtp_engine_delivering(&d->e));
    FUZZ_CHECK(d->e.out.len == 0); /* the message's reply is the delivery's */
    FUZZ_CHECK(!session_checking(&d->e.session) && d->n_checks == 0);
    struct txn *t = smtp_engine_take_txn(&d->e);
    FUZZ_CHECK(t != NULL);
    FUZZ_CHECK(smtp_engine_txn(&d->e) == NULL && smtp_engine_take_txn(&d->e) == NULL);
    check_envelope(d, t);
    if (d->step)
        model_check_rcpts(d, t);

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

/* check_ehlo - an EHLO that succeeded (its reply at out[at]) lists STARTTLS exactly when
 * the listener offers it and TLS is not active yet (RFC 3207 §4.2), and always CHUNKING and
 * BINARYMIME. */
static void check_ehlo(const struct drive *d, size_t at, bool starttls_usable)
{
    const char *r = d->e.out.data + at;
    size_t n = d->e.out.len - at;
    if (n < REPLY_MIN_LINE || memcmp(r, "250-", REPLY_MIN_LINE) != 0)
        return;
    bool listed = memmem(r, n, "\r\n250-STARTTLS\r\n", 16) != NULL;
    FUZZ_CHECK(listed == starttls_usable);
    FUZZ_CHECK(memmem(r, n, "\r\n250-CHUNKING\r\n", 16) != NULL);
    FUZZ_CHECK(memmem(r, n, "\r\n250-BINARYMIME\r\n", 18) != NULL);
}

/* next_line - the command line of data[from, len) up to the next LF, as the parser cuts it;
 * the first line of a feed (from 0) starts with what the parser kept of it (a partial line,
 * or the rest of an over-long one being skipped). false when there is no LF. */
static bool next_line(const struct smtp_parser *p, const char *data, size_t len, size_t from,
                      struct feed_line *l)
{
    const char *lf = from < len ? memchr(data + from, '\n', len - from) : NULL;
    if (lf == NULL)
        return false;
    size_t take = (size_t)(lf - (data + from)) + 1;
    size_t kept = from == 0 ? p->partial_len : 0;
    l->end = from + take;
    l->too_long = (from == 0 && p->skipping) || kept + take > p->max_line_bytes;
    l->len = 0;
    if (l->too_long)
        return true;
    if (kept > 0)
        memcpy(l->text, p->partial, kept);
    memcpy(l->text + kept, data + from, take);
    size_t n = kept + take - 1; /* without the LF ... */
    if (n > 0 && l->text[n - 1] == '\r')
        n--; /* ... and one CR before it */
    l->len = n;
    return true;
}

/* line_verb - the verb of a line, UNKNOWN when it is over-long. */
static enum smtp_verb line_verb(const struct feed_line *l)
{
    if (l->too_long)
        return SMTP_VERB_UNKNOWN;
    struct smtp_command cmd;
    smtp_cmd_parse(l->text, l->len, &cmd);
    return cmd.verb;
}

/* line_bdat - a BDAT line's size and form. */
static void line_bdat(const struct feed_line *l, bool *size_ok, bool *ok, uint64_t *size)
{
    struct smtp_command cmd;
    smtp_cmd_parse(l->text, l->len, &cmd);
    uint64_t n = 0;
    bool last;
    *size_ok = smtp_cmd_bdat_size(cmd.arg, cmd.arg_len, size);
    *ok = smtp_cmd_bdat(cmd.arg, cmd.arg_len, &n, &last);
    FUZZ_CHECK(!*ok || (*size_ok && n == *size));
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
    b->rcpt_state = s->state == SESSION_STATE_MAIL || s->state == SESSION_STATE_RCPT;
    b->esmtp = s->esmtp;
    b->smtputf8 = s->txn != NULL && s->txn->env.smtputf8;
    b->verb = SMTP_VERB_UNKNOWN;
    if (p->mode != SMTP_PARSER_COMMAND || !next_line(p, data, len, 0, &b->first))
        return;
    b->line_end = b->first.end;
    b->too_long = b->first.too_long;
    b->verb = line_verb(&b->first);
    if (b->verb == SMTP_VERB_BDAT)
        line_bdat(&b->first, &b->bdat_size_ok, &b->bdat_ok, &b->bdat_size);
}

/* check_answer - one reply, or two when the second is the 421 that closes. */
static void check_answer(unsigned finals, unsigned last, enum smtp_engine_stop st)
{
    FUZZ_CHECK(finals == 1 || (finals == 2 && last == 421 && st == SMTP_ENGINE_CLOSE));
    if (st == SMTP_ENGINE_CLOSE)
        FUZZ_CHECK(last == 221 || last == 421);
}

/* check_chunk_reply - the reply after a chunk (at out[at]): 250 or DELIVER when stored, 503
 * (no transaction) or 501 (malformed BDAT line) when read into nothing; a 501 leaves no
 * chunked message behind. */
static void check_chunk_reply(const struct drive *d, size_t at, bool discard, bool syntax,
                              enum smtp_engine_stop st)
{
    unsigned code = reply_code_at(&d->e.out, at);
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
        check_chunk_reply(d, 0, chunk_discard, !b->bdat_ok, st);
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
        check_ehlo(d, 0, b->starttls_usable);
    if (st == SMTP_ENGINE_STARTTLS)
        FUZZ_CHECK(b->verb == SMTP_VERB_STARTTLS && finals == 1 && last == 220);
    if (b->verb == SMTP_VERB_BDAT && !b->bdat_size_ok) {
        /* Nobody knows where its chunk ends: 501, then 421, closed. */
        FUZZ_CHECK(code == 501 && finals == 2 && st == SMTP_ENGINE_CLOSE);
        check_closing_421(d);
    }
    if (b->verb == SMTP_VERB_BDAT && b->bdat_size_ok && b->bdat_size == 0)
        check_chunk_reply(d, 0, chunk_discard, !b->bdat_ok, st);
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

/* check_verdict - what a check byte answers: *accept, and the reply to pass (NULL: none). */
static const struct app_reply *check_verdict(uint8_t bits, bool *accept)
{
    unsigned variant = (bits >> 4) & 3u;
    *accept = false;
    switch ((enum verdict)(bits & 3u)) {
    case VERDICT_ACCEPT:
        *accept = true;
        return check_accepts[variant].code != 0 ? &check_accepts[variant] : NULL;
    case VERDICT_UNKNOWN:
        return &check_unknown;
    case VERDICT_FAILED:
        return &check_failed;
    case VERDICT_APP:
    default:
        return &check_apps[variant];
    }
}

/* check_when - when a check byte's answer comes: 0 at once, else that many reads on. */
static unsigned check_when(uint8_t bits)
{
    return (bits >> 2) & 3u;
}

/* check_rank - of the answers due together, the highest rank comes first. */
static unsigned check_rank(uint8_t bits)
{
    return (bits >> 6) & 3u;
}

/* model_holds - does a queued RCPT count as a recipient (session.c's kinds ACCEPT and
 * CHECK): being checked, or checked and accepted but not answered yet? */
static bool model_holds(const struct model_rcpt *m)
{
    return m->expect == EXPECT_CHECK && (!m->answered || m->accept);
}

/* model_bound - the route the transaction is bound to: its first recipient's, or that of
 * the first queued RCPT that counts; -1 for none. */
static long model_bound(const struct drive *d)
{
    if (model_n_accepted(d) > 0)
        return d->accepted[0].route;
    for (size_t i = d->q_head; i < d->q_len; i++)
        if (model_holds(&d->queue[i]))
            return d->queue[i].route;
    return -1;
}

/* model_count - recipients accepted, plus those queued that count. */
static size_t model_count(const struct drive *d)
{
    size_t n = model_n_accepted(d);
    for (size_t i = d->q_head; i < d->q_len; i++)
        n += model_holds(&d->queue[i]);
    return n;
}

/* model_soft - a refusal the client is to send again later (452, 451 4.4.1): no charge,
 * unless there were too many of them in the session already. */
static void model_soft(struct drive *d, struct model_rcpt *m, enum expect e)
{
    m->expect = e;
    m->charged = d->model_overshoot++ >= RCPT_OVERSHOOT_MAX;
}

/* model_predict - what an RCPT line comes to, before its reply is written (RFC 5321
 * §4.1.1.3 and the design's "Recipient checks"): the state, syntax and domain first, then
 * the route (550 5.1.1 without one), the probe (451 4.4.1), one_route_per_transaction (452
 * 4.5.3) and max_recipients (452 4.5.3), then a check or 250. b: the session before the feed,
 * which queued RCPTs do not change. */
static void model_predict(struct drive *d, const struct step_before *b, const struct feed_line *l,
                          struct model_rcpt *m)
{
    const struct config *cfg = d->cfg;
    memset(m, 0, sizeof(*m));
    m->route = -1;
    m->expect = EXPECT_REFUSED;
    struct smtp_command cmd;
    smtp_cmd_parse(l->text, l->len, &cmd);
    FUZZ_CHECK(!l->too_long && cmd.verb == SMTP_VERB_RCPT);
    if (!cmd.has_arg || !b->rcpt_state)
        return; /* 501, 503 */
    struct smtp_path path;
    if (smtp_cmd_rcpt(cmd.arg, cmd.arg_len, b->esmtp, b->smtputf8, &path) != SMTP_SYNTAX_OK)
        return;
    const char *domain = path.at < path.len ? path.mailbox + path.at + 1 : "";
    if (!config_domain_accepted(cfg, domain, strlen(domain)))
        return; /* 550 5.7.1: nobody's relay */
    snprintf(m->mailbox, sizeof(m->mailbox), "%s", path.mailbox);
    if (cfg->n_routes > 0 && (m->route = model_route(cfg, m->mailbox)) < 0) {
        m->expect = EXPECT_UNKNOWN;
        return;
    }
    if (d->probe && probe_down(d, m->route, d->model_probe_calls++)) {
        model_soft(d, m, EXPECT_DOWN);
        return;
    }
    long bound = model_bound(d);
    if (cfg->n_routes > 0 && cfg->one_route_per_transaction && bound >= 0 && bound != m->route) {
        model_soft(d, m, EXPECT_OTHER_ROUTE);
        return;
    }
    if (model_count(d) >= cfg->limits.max_recipients) {
        model_soft(d, m, EXPECT_TOO_MANY);
        return;
    }
    m->expect = cfg->recipient_check.enabled ? EXPECT_CHECK : EXPECT_OK;
}

/* model_want - the reply line the model expects of m into want, and whether it is charged
 * to the error budget. false for EXPECT_REFUSED, whose reply is any 5xx (charged). */
static bool model_want(const struct model_rcpt *m, struct buf *want, bool *charged)
{
    *charged = true;
    switch (m->expect) {
    case EXPECT_OK:
        *charged = false;
        reply_write(want, REPLY_RCPT_OK, NULL);
        return true;
    case EXPECT_CHECK:
        FUZZ_CHECK(m->answered);
        /* A temporary refusal (4yz) is no error of the client's (session.c). */
        *charged = !m->accept && m->reply.code / 100 == 5;
        if (m->reply.code == 0)
            reply_write(want, REPLY_RCPT_OK, NULL);
        else
            reply_write_custom(want, m->reply.code, m->reply.esc, m->reply.text, 1);
        return true;
    case EXPECT_DOWN:
        *charged = m->charged;
        reply_write(want, REPLY_ROUTE_DOWN, NULL);
        return true;
    case EXPECT_OTHER_ROUTE:
        *charged = m->charged;
        reply_write(want, REPLY_OTHER_ROUTE, NULL);
        return true;
    case EXPECT_TOO_MANY:
        *charged = m->charged;
        reply_write(want, REPLY_TOO_MANY_RCPTS, NULL);
        return true;
    case EXPECT_UNKNOWN:
        reply_write(want, REPLY_UNKNOWN_RCPT, NULL);
        return true;
    case EXPECT_REFUSED:
    default:
        return false;
    }
}

/* model_accept - m was answered 250: transaction id (the one open when it was answered;
 * the command that waited may have ended it since) has it now. */
static void model_accept(struct drive *d, const struct model_rcpt *m, const char *id)
{
    FUZZ_CHECK(id[0] != '\0');
    if (strcmp(id, d->accepted_id) != 0) {
        snprintf(d->accepted_id, sizeof(d->accepted_id), "%s", id);
        d->n_accepted = 0;
    }
    d->accepted = grow(d->accepted, &d->accepted_cap, d->n_accepted + 1, sizeof(*d->accepted));
    d->accepted[d->n_accepted++] = *m;
}

/* model_reply - the reply of m, an RCPT of transaction id, is the line at out[at]: exactly
 * the one expected. Returns where the next line starts; *charged: the budget pays for it. */
static size_t model_reply(struct drive *d, size_t at, const struct model_rcpt *m, const char *id,
                          bool *charged)
{
    const struct buf *out = &d->e.out;
    const char *lf = at < out->len ? memchr(out->data + at, '\n', out->len - at) : NULL;
    FUZZ_CHECK(lf != NULL);
    size_t n = (size_t)(lf - (out->data + at)) + 1;
    struct buf want = {0};
    if (model_want(m, &want, charged))
        FUZZ_CHECK(!want.failed && want.len == n && memcmp(want.data, out->data + at, n) == 0);
    else
        FUZZ_CHECK(n > REPLY_MIN_LINE && out->data[at] == '5' && out->data[at + 3] == ' ');
    buf_free(&want);
    if (m->expect == EXPECT_OK || (m->expect == EXPECT_CHECK && m->accept))
        model_accept(d, m, id);
    return at + n;
}

/* model_clear - the session closed: nothing waits any more. */
static void model_clear(struct drive *d)
{
    d->q_head = d->q_len = 0;
    memset(&d->deferred, 0, sizeof(d->deferred));
}

/* model_closed_for_errors - the error budget is spent: exactly the 421 4.7.0 at out[at],
 * then the close, errors charged; nothing waits any more. */
static void model_closed_for_errors(struct drive *d, size_t at, enum smtp_engine_stop st,
                                    unsigned errors)
{
    struct buf want = {0};
    reply_write(&want, REPLY_TOO_MANY_ERRORS, d->cfg->hostname);
    FUZZ_CHECK(d->e.out.len == at + want.len &&
               memcmp(d->e.out.data + at, want.data, want.len) == 0);
    buf_free(&want);
    FUZZ_CHECK(st == SMTP_ENGINE_CLOSE && d->e.session.errors == errors);
    model_clear(d);
}

/* step_queue - a feed in command mode while checks are pending, or one whose first line
 * is an RCPT to check: the RCPTs join the queue, nothing is written, and the first other
 * command (or over-long line) waits, consumed exactly through its LF (RFC 2920 §3.1: its
 * reply must follow theirs). The queue holds at most max_recipients + max_errors entries
 * (docs/design.md, "Recipient checks"): an RCPT beyond that waits like any other command.
 * Returns false for any other feed, having checked the reply of an RCPT answered at once. */
static bool step_queue(struct drive *d, const struct step_before *b, const char *data, size_t rest,
                       size_t used, enum smtp_engine_stop st)
{
    if (b->line_end == 0)
        return false; /* no whole line: nothing may happen (step_command) */
    bool pending = d->q_head < d->q_len;
    struct model_rcpt m = {0};
    bool rcpt = b->verb == SMTP_VERB_RCPT;
    if (rcpt)
        model_predict(d, b, &b->first, &m);
    if (!pending && (!rcpt || m.expect != EXPECT_CHECK)) {
        bool charged;
        if (rcpt)
            model_reply(d, 0, &m, b->txn_id, &charged); /* step_command checks the rest */
        return false;
    }
    FUZZ_CHECK(d->e.out.len == 0); /* no reply while a check is pending */
    FUZZ_CHECK(st == SMTP_ENGINE_IDLE || st == SMTP_ENGINE_WAIT);
    size_t cap = d->cfg->limits.max_recipients + d->cfg->limits.max_errors;
    struct feed_line l = b->first;
    for (bool have = true; have; have = next_line(&d->e.parser, data, rest, l.end, &l)) {
        bool full = d->q_len - d->q_head >= cap;
        if (line_verb(&l) != SMTP_VERB_RCPT || full) { /* the command that waits */
            FUZZ_CHECK(st == SMTP_ENGINE_WAIT && used == l.end);
            FUZZ_CHECK(!d->deferred.waiting);
            struct model_cmd *c = &d->deferred;
            memset(c, 0, sizeof(*c));
            c->waiting = true;
            c->too_long = l.too_long;
            c->verb = line_verb(&l);
            if (c->verb == SMTP_VERB_BDAT)
                line_bdat(&l, &c->bdat_size_ok, &c->bdat_ok, &c->bdat_size);
            if (c->verb == SMTP_VERB_RCPT) {
                c->line = l;
                c->esmtp = b->esmtp;
                c->smtputf8 = b->smtputf8;
            }
            return true;
        }
        if (l.end > b->line_end)
            model_predict(d, b, &l, &m);
        d->queue = grow(d->queue, &d->q_cap, d->q_len + 1, sizeof(*d->queue));
        d->queue[d->q_len++] = m;
    }
    FUZZ_CHECK(st == SMTP_ENGINE_IDLE && used == rest);
    return true;
}

/* model_take - the check handed out is that of the first queued RCPT to check whose check
 * is not out yet, and names its recipient. */
static void model_take(struct drive *d, size_t index, const char *rcpt)
{
    size_t i = d->q_head;
    while (i < d->q_len && !(d->queue[i].expect == EXPECT_CHECK && !d->queue[i].taken))
        i++;
    FUZZ_CHECK(i < d->q_len && index == i);
    FUZZ_CHECK(strcmp(rcpt, d->queue[i].mailbox) == 0);
    d->queue[i].taken = true;
}

/* model_all_taken - no take is left: every RCPT to check has its check out. */
static void model_all_taken(const struct drive *d)
{
    for (size_t i = d->q_head; i < d->q_len; i++)
        FUZZ_CHECK(d->queue[i].expect != EXPECT_CHECK || d->queue[i].taken);
}

/* model_waited_rcpt - an RCPT that waited for room in the queue ran once it was empty, as
 * if it had come now: a check to take (no reply yet), or its reply at out[at], exactly the
 * model's, and the 421 4.7.0 that closes when it spends the budget. errors: the budget spent
 * before it; id: the open transaction's. */
static void model_waited_rcpt(struct drive *d, const struct model_cmd *c, size_t at,
                              enum smtp_engine_stop st, unsigned errors, const char *id)
{
    const struct session *s = &d->e.session;
    struct step_before b;
    memset(&b, 0, sizeof(b));
    b.rcpt_state = true; /* checks are only ever pending in an open transaction */
    b.esmtp = c->esmtp;
    b.smtputf8 = c->smtputf8;
    struct model_rcpt m;
    model_predict(d, &b, &c->line, &m);
    if (m.expect == EXPECT_CHECK) { /* the queue starts again with it */
        FUZZ_CHECK(d->e.out.len == at && st == SMTP_ENGINE_IDLE && s->errors == errors);
        d->queue = grow(d->queue, &d->q_cap, d->q_len + 1, sizeof(*d->queue));
        d->queue[d->q_len++] = m;
        return;
    }
    bool charged;
    size_t end = model_reply(d, at, &m, id, &charged);
    if (charged && ++errors >= d->cfg->limits.max_errors) {
        model_closed_for_errors(d, end, st, errors);
        return;
    }
    FUZZ_CHECK(d->e.out.len == end && st == SMTP_ENGINE_IDLE && s->errors == errors);
}

/* model_waited - the command that waited ran once the queue was empty: its reply is at
 * out[at], one reply as if it had come now. errors: the budget spent before it; rcpt_open:
 * a recipient had been accepted; id: the open transaction's; more: input waits behind it. */
static void model_waited(struct drive *d, size_t at, enum smtp_engine_stop st, unsigned errors,
                         bool rcpt_open, const char *id, bool more)
{
    struct model_cmd c = d->deferred;
    memset(&d->deferred, 0, sizeof(d->deferred));
    if (!c.too_long && c.verb == SMTP_VERB_RCPT) {
        model_waited_rcpt(d, &c, at, st, errors, id);
        return;
    }
    const struct session *s = &d->e.session;
    const struct buf *out = &d->e.out;
    unsigned last = 0;
    bool plain = !c.too_long && (c.verb == SMTP_VERB_HELO || c.verb == SMTP_VERB_EHLO);
    unsigned finals = check_replies(out, at, out->len, plain, &last);
    unsigned code = reply_code_at(out, at);
    /* Its own error, if its reply is one, is charged; nothing else is. */
    FUZZ_CHECK(s->errors >= errors);
    FUZZ_CHECK(s->errors - errors == (finals > 0 && code >= 400 && code != 421 ? 1u : 0u));
    FUZZ_CHECK(st != SMTP_ENGINE_STARTTLS); /* a transaction is open: STARTTLS gets 503 */
    if (c.too_long) {
        FUZZ_CHECK(code == 500);
        check_answer(finals, last, st);
        return;
    }
    bool discard = !c.bdat_ok || !rcpt_open;
    switch (c.verb) {
    case SMTP_VERB_BDAT:
        if (!c.bdat_size_ok) { /* nobody knows where its chunk ends */
            FUZZ_CHECK(code == 501 && finals == 2 && st == SMTP_ENGINE_CLOSE);
            check_closing_421(d);
        } else if (c.bdat_size > 0) { /* its chunk is read next, its reply comes after it */
            FUZZ_CHECK(finals == 0 && st == SMTP_ENGINE_IDLE);
            FUZZ_CHECK(d->e.parser.mode == SMTP_PARSER_CHUNK &&
                       d->e.parser.chunk_left == c.bdat_size);
            FUZZ_CHECK(s->chunk_discard == discard && s->chunk_syntax == !c.bdat_ok);
        } else {
            if (st == SMTP_ENGINE_DELIVER)
                FUZZ_CHECK(finals == 0 && !discard);
            else
                check_answer(finals, last, st);
            check_chunk_reply(d, at, discard, !c.bdat_ok, st);
        }
        return;
    case SMTP_VERB_DATA:
        check_answer(finals, last, st);
        if (code == 354) {
            FUZZ_CHECK(finals == 1 && st == SMTP_ENGINE_IDLE);
            FUZZ_CHECK(d->e.parser.mode == SMTP_PARSER_DATA);
            msg_begin(d, txn_id_of(d), false, true);
        } else if (more) { /* refused with input behind it: RFC 2920 §3.1 */
            FUZZ_CHECK(finals == 2 && st == SMTP_ENGINE_CLOSE);
            check_closing_421(d);
        } else {
            FUZZ_CHECK(st != SMTP_ENGINE_CLOSE || s->errors >= d->cfg->limits.max_errors);
        }
        return;
    case SMTP_VERB_EHLO:
        check_answer(finals, last, st);
        check_ehlo(d, at, s->tls_offered && s->tls.version == NULL);
        return;
    default:
        FUZZ_CHECK(st != SMTP_ENGINE_DELIVER);
        check_answer(finals, last, st);
        return;
    }
}

/* model_answer - the check of index was answered: the replies due are written in command
 * order, each the one expected, a spent budget closes with 421 4.7.0 and nothing after it,
 * and once the queue is empty the command that waited runs. errors: the budget spent
 * before; id: the open transaction's; more: input waits behind. */
static void model_answer(struct drive *d, size_t index, bool accept, const struct app_reply *reply,
                         enum smtp_engine_stop st, unsigned errors, const char *id, bool more)
{
    const struct session *s = &d->e.session;
    FUZZ_CHECK(index >= d->q_head && index < d->q_len);
    struct model_rcpt *m = &d->queue[index];
    FUZZ_CHECK(m->expect == EXPECT_CHECK && m->taken && !m->answered);
    m->answered = true;
    m->accept = accept;
    if (reply != NULL)
        m->reply = *reply;
    size_t at = 0;
    while (d->q_head < d->q_len) {
        const struct model_rcpt *h = &d->queue[d->q_head];
        if (h->expect == EXPECT_CHECK && !h->answered)
            break;
        bool charged;
        at = model_reply(d, at, h, id, &charged);
        d->q_head++;
        if (!charged || ++errors < d->cfg->limits.max_errors)
            continue;
        model_closed_for_errors(d, at, st, errors);
        return;
    }
    if (d->q_head < d->q_len || !d->deferred.waiting) {
        FUZZ_CHECK(at == d->e.out.len && st == SMTP_ENGINE_IDLE && s->errors == errors);
        if (d->q_head == d->q_len)
            d->q_head = d->q_len = 0;
        return;
    }
    d->q_head = d->q_len = 0;
    bool rcpt_open = d->n_accepted > 0 && strcmp(d->accepted_id, id) == 0;
    model_waited(d, at, st, errors, rcpt_open, id, more);
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
    check_chunk_reply(d, 0, b->chunk_discard, b->chunk_syntax, st);
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
    /* Checks: only when configured; a command waits only behind pending ones. */
    FUZZ_CHECK(d->cfg->recipient_check.enabled || (!session_checking(s) && d->n_checks == 0));
    FUZZ_CHECK(!smtp_engine_waiting(&d->e) || session_checking(s));
    if (d->closed)
        return;
    FUZZ_CHECK(!session_checking(s) || session_in_transaction(s));
    FUZZ_CHECK(d->n_checks <= s->n_pending - s->pending_head);
    if (!d->step)
        return;
    FUZZ_CHECK(d->q_len - d->q_head == s->n_pending - s->pending_head);
    FUZZ_CHECK(d->deferred.waiting == smtp_engine_waiting(&d->e));
    FUZZ_CHECK(model_count(d) <= d->cfg->limits.max_recipients);
    if (t != NULL)
        model_check_rcpts(d, t);
}

/* after_close - conn.c reads nothing after CLOSE; if it did, the engine must swallow it
 * whole and stay silent. */
static void after_close(struct drive *d, const char *data, size_t len)
{
    enum smtp_engine_stop st;
    FUZZ_CHECK(smtp_engine_feed(&d->e, data, len, 0, NOW_MS, &st) == len);
    FUZZ_CHECK(st == SMTP_ENGINE_CLOSE && d->e.out.len == 0);
}

/* is_out - index names a check out. */
static bool is_out(const struct drive *d, size_t index)
{
    for (size_t k = 0; k < d->n_checks; k++)
        if (d->checks[k].index == index)
            return true;
    return false;
}

/* stale_answer - an answer to an index that is not out (answered already, or past the
 * queue) changes nothing: no reply, no state. An index the queue holds undecided is out, or
 * queued by the answer just given and taken right after it: not stale. */
static void stale_answer(struct drive *d, size_t index, bool accept)
{
    const struct session *s = &d->e.session;
    if (is_out(d, index) ||
        (index >= s->pending_head && index < s->n_pending && !s->pending[index].decided))
        return;
    const struct txn *t = smtp_engine_txn(&d->e);
    size_t out_len = d->e.out.len, head = s->pending_head, n = s->n_pending;
    size_t n_rcpt = t != NULL ? t->env.n_rcpt : 0;
    unsigned errors = s->errors, overshoot = s->rcpt_overshoot;
    enum session_state state = s->state;
    bool waiting = smtp_engine_waiting(&d->e);
    enum smtp_engine_stop st = smtp_engine_rcpt_checked(
        &d->e, index, accept, accept ? NULL : &check_unknown, true, NOW_MS);
    FUZZ_CHECK(st == (d->closed ? SMTP_ENGINE_CLOSE : SMTP_ENGINE_IDLE));
    FUZZ_CHECK(d->e.out.len == out_len && s->pending_head == head && s->n_pending == n);
    FUZZ_CHECK(s->errors == errors && s->rcpt_overshoot == overshoot && s->state == state);
    FUZZ_CHECK(smtp_engine_txn(&d->e) == t && (t == NULL || t->env.n_rcpt == n_rcpt));
    FUZZ_CHECK(smtp_engine_waiting(&d->e) == waiting);
}

/* stale_answers - after the answer to index: the same index again, the first index past the
 * queue, and a queued RCPT already decided. */
static void stale_answers(struct drive *d, size_t index)
{
    const struct session *s = &d->e.session;
    stale_answer(d, index, true);
    stale_answer(d, s->n_pending, true);
    for (size_t i = s->pending_head; i < s->n_pending; i++) {
        if (s->pending[i].decided) {
            stale_answer(d, i, i % 2 == 0);
            break;
        }
    }
}

/* answer - check k of d->checks gets its verdict, as conn.c's conn_check_answer gives it;
 * more: input waits behind the command that may run now. After CLOSE conn.c cancels its
 * checks instead: an answer then changes nothing. */
static void answer(struct drive *d, size_t k, bool more)
{
    struct check c = d->checks[k];
    memmove(&d->checks[k], &d->checks[k + 1], (d->n_checks - k - 1) * sizeof(c));
    d->n_checks--;
    bool accept;
    const struct app_reply *reply = check_verdict(c.bits, &accept);
    take_replies(d);
    if (d->closed) {
        enum smtp_engine_stop st =
            smtp_engine_rcpt_checked(&d->e, c.index, accept, reply, more, NOW_MS);
        FUZZ_CHECK(st == SMTP_ENGINE_CLOSE && d->e.out.len == 0);
        return;
    }
    unsigned errors = d->e.session.errors;
    char id[ENVELOPE_ID_MAX + 1];
    snprintf(id, sizeof(id), "%s", txn_id_of(d));
    enum smtp_engine_stop st =
        smtp_engine_rcpt_checked(&d->e, c.index, accept, reply, more, NOW_MS);
    FUZZ_CHECK(st == SMTP_ENGINE_IDLE || st == SMTP_ENGINE_DELIVER || st == SMTP_ENGINE_CLOSE);
    unsigned last = 0;
    check_replies(&d->e.out, 0, d->e.out.len, true, &last); /* a waiting EHLO's lines too */
    if (d->step)
        model_answer(d, c.index, accept, reply, st, errors, id, more);
    take_replies(d);
    if (st == SMTP_ENGINE_DELIVER)
        deliver(d);
    else if (st == SMTP_ENGINE_CLOSE)
        d->closed = true;
    if (!d->closed)
        stale_answers(d, c.index);
    check_session(d);
}

/* take_checks - after every feed, start the checks it queued, as conn.c's
 * conn_start_checks does; an answer that comes at once (a cache hit) is given there. more:
 * input is left behind the feed. */
static void take_checks(struct drive *d, bool more)
{
    long index;
    while (!d->closed && (index = smtp_engine_take_check(&d->e)) >= 0) {
        FUZZ_CHECK(d->cfg->recipient_check.enabled);
        FUZZ_CHECK(!is_out(d, (size_t)index)); /* each index is handed out once */
        const char *rcpt = session_check_recipient(&d->e.session, (size_t)index);
        size_t n = strlen(rcpt);
        FUZZ_CHECK(n > 0 && n <= SMTP_PATH_MAX && smtp_cmd_valid_utf8(rcpt, n));
        if (d->step)
            model_take(d, (size_t)index, rcpt);
        uint8_t bits = d->h[H_CHECKS + d->n_taken % N_CHECK_BYTES];
        unsigned when = check_when(bits);
        d->checks = grow(d->checks, &d->checks_cap, d->n_checks + 1, sizeof(*d->checks));
        d->checks[d->n_checks++] =
            (struct check){(size_t)index, d->n_taken++, d->read + (when > 0 ? when - 1 : 0), bits};
        if (when == 0)
            answer(d, d->n_checks - 1, more);
    }
    if (d->closed)
        return;
    if (d->step)
        model_all_taken(d);
    /* Nobody waits for ever: a pending queue has a check out. */
    FUZZ_CHECK(!session_checking(&d->e.session) || d->n_checks > 0);
}

/* feed_bytes - input fed as conn.c's conn_feed feeds it: until it is used up, the engine
 * closes or a command waits for checks; every stop carried out, and after each feed the
 * checks it queued taken. Returns the bytes used. The caller keeps data unchanged until
 * then. */
static size_t feed_bytes(struct drive *d, const char *data, size_t len)
{
    size_t off = 0;
    while (!d->closed && !smtp_engine_waiting(&d->e) && (off < len || smtp_engine_pending(&d->e))) {
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
        FUZZ_CHECK((st == SMTP_ENGINE_WAIT) == smtp_engine_waiting(&d->e));
        FUZZ_CHECK(st != SMTP_ENGINE_WAIT || used > 0);
        if (d->step) {
            bool plain_250 = b.mode == SMTP_PARSER_COMMAND &&
                             (b.verb == SMTP_VERB_HELO || b.verb == SMTP_VERB_EHLO);
            unsigned last = 0;
            unsigned finals = check_replies(&d->e.out, 0, d->e.out.len, plain_250, &last);
            if (b.mode != SMTP_PARSER_COMMAND)
                FUZZ_CHECK(d->q_head == d->q_len && !d->deferred.waiting);
            if (b.mode == SMTP_PARSER_COMMAND) {
                if (!step_queue(d, &b, data + off, rest, used, st))
                    step_command(d, &b, data + off, rest, used, st, finals, last);
            } else if (b.mode == SMTP_PARSER_DATA) {
                step_data(d, &b, data + off, rest, used, st, finals, last);
            } else {
                step_chunk(d, &b, data + off, rest, used, st, finals, last);
            }
            FUZZ_CHECK(d->probe_calls == d->model_probe_calls);
        }
        take_replies(d);
        off += used;
        switch (st) {
        case SMTP_ENGINE_IDLE:
        case SMTP_ENGINE_FULL:
        case SMTP_ENGINE_WAIT:
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
        take_checks(d, off < len);
        check_session(d);
    }
    return off;
}

/* resume - feed the held input while nothing waits (conn.c's conn_resume). */
static void resume(struct drive *d)
{
    while (!d->closed && !smtp_engine_waiting(&d->e) &&
           (d->held.len > 0 || smtp_engine_pending(&d->e))) {
        size_t used = feed_bytes(d, d->held.len > 0 ? d->held.data : "", d->held.len);
        buf_consume(&d->held, used);
    }
    if (d->closed)
        buf_reset(&d->held); /* nothing more is read */
}

/* feed_read - one read, as conn.c's conn_input takes it: fed at once when nothing waits and
 * nothing is held, the rest held; then the held input as far as it goes. The read is a
 * private copy freed afterwards, so that ASan catches a parser or session that keeps
 * pointers into a read buffer. */
static void feed_read(struct drive *d, const uint8_t *bytes, size_t len)
{
    char *data = malloc(len ? len : 1);
    FUZZ_CHECK(data != NULL);
    memcpy(data, bytes, len);
    if (d->closed) {
        after_close(d, data, len);
    } else if (d->held.len == 0 && !smtp_engine_waiting(&d->e)) {
        size_t used = feed_bytes(d, data, len);
        if (!d->closed && used < len)
            FUZZ_CHECK(buf_append(&d->held, data + used, len - used) == 0);
    } else {
        FUZZ_CHECK(buf_append(&d->held, data, len) == 0);
    }
    free(data);
    resume(d);
}

/* pick_due - the check to answer next: of those due (all at the end), the highest rank,
 * the latest taken among equals; -1 for none. */
static long pick_due(const struct drive *d, bool at_end)
{
    long best = -1;
    for (size_t k = 0; k < d->n_checks; k++) {
        const struct check *c = &d->checks[k];
        if (!at_end && c->due > d->read)
            continue;
        if (best < 0 || check_rank(c->bits) >= check_rank(d->checks[best].bits))
            best = (long)k;
    }
    return best;
}

/* answer_due - the answers that come now, one by one, each followed by the checks it
 * queued (an RCPT that waited for room in the line) and the held input it lets through
 * (conn.c's on_checked). */
static void answer_due(struct drive *d, bool at_end)
{
    long k;
    while (!d->closed && (k = pick_due(d, at_end)) >= 0) {
        answer(d, (size_t)k, d->held.len > 0);
        take_checks(d, d->held.len > 0);
        resume(d);
    }
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
        FUZZ_CHECK(!session_checking(&d->e.session) && d->held.len == 0);
        d->closed = true;
    }
    take_replies(d);
}

/* timeout_now - the idle timer fires between two reads: 421 4.4.2 and CLOSE in any state.
 * conn.c closes at once, so the driver reads nothing more. The timer does not run while
 * checks are out, and nothing is held then. */
static void timeout_now(struct drive *d)
{
    FUZZ_CHECK(d->n_checks == 0 && d->held.len == 0 && !smtp_engine_waiting(&d->e));
    enum smtp_engine_stop st = smtp_engine_timeout(&d->e);
    unsigned last = 0;
    FUZZ_CHECK(st == SMTP_ENGINE_CLOSE && d->e.session.state == SESSION_STATE_CLOSING);
    FUZZ_CHECK(check_replies(&d->e.out, 0, d->e.out.len, false, &last) == 1 && last == 421);
    take_replies(d);
    d->closed = true;
    d->timed_out = true;
}

/* finish - the input is over: the checks still out are answered (due or not), the held
 * input runs behind them; after CLOSE what is out is cancelled. Then nothing may wait. */
static void finish(struct drive *d)
{
    d->read++;
    answer_due(d, true);
    while (d->n_checks > 0) /* closed: answers change nothing */
        answer(d, d->n_checks - 1, false);
    if (d->closed)
        return;
    FUZZ_CHECK(d->held.len == 0 && !smtp_engine_waiting(&d->e));
    FUZZ_CHECK(!session_checking(&d->e.session));
    if (d->step)
        FUZZ_CHECK(d->q_head == d->q_len && !d->deferred.waiting);
}

/* run - one connection over the client's bytes with the given out_limit; the transcript
 * is left in d->transcript (the caller frees it). */
static void run(struct drive *d, const struct config *cfg, const uint8_t *h, const uint8_t *data,
                size_t size, size_t out_limit)
{
    memset(d, 0, sizeof(*d));
    d->cfg = cfg;
    d->h = h;
    d->step = out_limit == STEP_OUT_LIMIT;
    d->outcome_bits = h[H_OUTCOMES];
    uint8_t stop = h[H_STOP], mode = h[H_MODE];
    unsigned shutdown_at = stop >= '1' && stop <= '9' ? (unsigned)(stop - '0') : 0;
    unsigned timeout_at = stop >= 'a' && stop <= 'i' ? (unsigned)(stop - 'a' + 1) : 0;

    smtp_engine_init(&d->e, cfg, "192.0.2.1", 40000, "fuzz", out_limit);
    session_set_tls_policy(&d->e.session, mode == 't' || mode == 'u' || mode == 'v',
                           mode == 'u' || mode == 'v');
    d->probe = (h[H_FLAGS] & FLAG_PROBE) != 0;
    if (d->probe)
        session_set_route_probe(&d->e.session, route_probe, d);
    smtp_engine_greet(&d->e);
    unsigned last = 0;
    FUZZ_CHECK(check_replies(&d->e.out, 0, d->e.out.len, false, &last) == 1 && last == 220);
    take_replies(d);

    size_t off = 0;
    for (unsigned read = 1; off < size; read++) {
        d->read = read;
        if (read == shutdown_at)
            shutdown_now(d);
        if (timeout_at != 0 && read >= timeout_at && !d->closed && d->n_checks == 0)
            timeout_now(d);
        if (d->timed_out)
            break;
        size_t want = h[H_READS + (read - 1) % 3];
        size_t n = want == 0 || want > size - off ? size - off : want;
        feed_read(d, data + off, n);
        off += n;
        answer_due(d, false);
    }
    finish(d);
    smtp_engine_free(&d->e);
    buf_free(&d->msg);
    buf_free(&d->held);
    free(d->checks);
    free(d->queue);
    free(d->accepted);
}

/* build_routes - the routes of h[H_FLAGS] into cfg: patterns parsed by route_pattern_parse
 * into pats, routes into routes. */
static void build_routes(struct config *cfg, uint8_t flags,
                         struct route_pattern pats[N_ROUTES_MAX][N_ROUTE_PATTERNS],
                         struct config_route routes[N_ROUTES_MAX])
{
    size_t n = (flags & FLAG_CATCH_ALL) != 0 ? N_ROUTES_MAX : N_ROUTES_MAX - 1;
    for (size_t r = 0; r < n; r++) {
        size_t k = 0;
        for (; k < N_ROUTE_PATTERNS && route_texts[r][k] != NULL; k++) {
            const char *why = NULL;
            FUZZ_CHECK(route_pattern_parse(route_texts[r][k], &pats[r][k], &why) == 0);
        }
        routes[r] = (struct config_route){
            pats[r], k, &fuzz_endpoint, 1, CONFIG_ROUTE_ALL, CONFIG_DELIVERY_SYNC};
    }
    cfg->routes = routes;
    cfg->n_routes = n;
    cfg->domains = fuzz_domains;
    cfg->n_domains = N_DOMAINS;
    cfg->one_route_per_transaction = (flags & FLAG_ONE_ROUTE) != 0;
}

/* free_routes - the patterns build_routes parsed. */
static void free_routes(struct config *cfg)
{
    for (size_t r = 0; r < cfg->n_routes; r++)
        for (size_t k = 0; k < cfg->routes[r].n_patterns; k++)
            route_pattern_free(&cfg->routes[r].patterns[k]);
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

    uint8_t flags = h[H_FLAGS];
    struct config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.hostname = fuzz_host;
    cfg.domains = fuzz_domains;
    cfg.n_domains = 1;
    cfg.limits.max_command_line_bytes = COMMAND_LINE_BYTES;
    cfg.limits.max_recipients = (flags & FLAG_FEW_RCPTS) != 0 ? FEW_RECIPIENTS : MAX_RECIPIENTS;
    bool small = h[H_MODE] == 's' || h[H_MODE] == 'v';
    cfg.limits.max_message_bytes = small ? SMALL_MESSAGE_BYTES : MESSAGE_BYTES;
    cfg.limits.max_errors = (flags & FLAG_FEW_ERRORS) != 0 ? FEW_ERRORS : MAX_ERRORS;
    cfg.spool.memory_bytes = SPOOL_MEMORY_BYTES;
    cfg.spool.directory = fuzz_spool_dir;
    cfg.recipient_check.enabled = (flags & FLAG_CHECK) != 0;
    cfg.recipient_delimiter = (flags & FLAG_DELIMITER) != 0 ? fuzz_delimiter : NULL;
    cfg.endpoints = fuzz_endpoints;
    cfg.n_endpoints = 1;
    struct route_pattern pats[N_ROUTES_MAX][N_ROUTE_PATTERNS];
    struct config_route routes[N_ROUTES_MAX];
    memset(pats, 0, sizeof(pats));
    if ((flags & FLAG_ROUTES) != 0)
        build_routes(&cfg, flags, pats, routes);

    const size_t limits[N_RUNS] = {SIZE_MAX, STEP_OUT_LIMIT,
                                   MID_OUT_LIMIT_MIN +
                                       (size_t)((h[H_READS] ^ h[H_READS + 1]) & 0xff)};
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
    free_routes(&cfg);
    return 0;
}
