/* rcpt_check.h - ask the web app about a recipient while the sender waits at RCPT.
 *
 * For each RCPT that found a route, smtphook POSTs a small JSON object to the configured
 * "recipient_check" URL:
 *   {"recipient": "...", "sender": "..." ("" for <>), "client": {"address", "port", "helo"},
 *    "tls": null or {"version", "cipher", "sni", "client_certificate": ...}}
 * and maps the answer (once its header section is complete):
 *   2xx                              -> accept (250 2.1.5)
 *   404 or 410                       -> refuse, 550 5.1.1
 *   any status with a Smtphook-Reply that agrees with its class (app_reply.h) -> that reply
 *   anything else: other statuses, timeout, connection, DNS or TLS failure
 *                                    -> 451 4.3.0, or accept with on_failure "accept"
 * Answers (accept or refuse, never a failure) are cached per (sender domain, recipient) for
 * cache_ms, in a bounded cache; a temporary (4yz) reply the app chose is not kept either, as
 * it asks to be asked again. Requests run concurrently on the libuv loop through
 * http_client; the caller keeps the replies in RCPT order. */
#ifndef SMTPHOOK_RCPT_CHECK_H
#define SMTPHOOK_RCPT_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "smtphook/app_reply.h"
#include "smtphook/config.h"
#include "smtphook/envelope.h"
#include "smtphook/http_client.h"

#define RCPT_CHECK_CACHE_MAX 10000u /* answers kept at most; the oldest go first */

struct rcpt_check;
struct rcpt_check_request;

/* What the app is asked about. Strings are copied by rcpt_check_start. */
struct rcpt_check_query {
    const char *recipient;          /* the mailbox of the RCPT, as sent */
    const char *sender;             /* the MAIL FROM mailbox, "" for the null sender */
    const char *client_address;     /* peer IP as text */
    uint16_t client_port;           /* peer port */
    const char *helo;               /* HELO/EHLO argument, NULL if none */
    const struct envelope_tls *tls; /* TLS facts, NULL or version NULL when plaintext */
};

/* The verdict on one recipient. A done callback's copy is valid during the callback. */
struct rcpt_check_result {
    bool accept;            /* true: 250; false: reply below */
    struct app_reply reply; /* the reply to send (250 2.1.5 Ok when accepted by default) */
    bool cached;            /* answered from the cache */
    const char *why;        /* for the log: "404", "timeout", ... (static), or NULL */
};

typedef void (*rcpt_check_done_fn)(void *arg, const struct rcpt_check_result *r);

/* rcpt_check_new - the checker for cfg (enabled) on loop, using http. cfg and http are not
 * copied: they must outlive the checker. 0 or SH_ENOMEM. */
int rcpt_check_new(uv_loop_t *loop, struct http_client *http,
                   const struct config_recipient_check *cfg, struct rcpt_check **out);

/* rcpt_check_free - release the checker and its cache. A request still running is
 * cancelled first (its done is not called). Call it before http_client_close, which frees
 * the HTTP requests under the checker's. NULL is ignored. */
void rcpt_check_free(struct rcpt_check *rc);

/* rcpt_check_start - look the query up in the cache; on a hit fill *hit and return 1
 * (done is not called). Otherwise start a request and return 0: done is called once, from
 * the loop, unless rcpt_check_cancel comes first; *out (may be NULL) identifies it until
 * then. With hit NULL the cache is not consulted (an answer still goes into it). On failure
 * a negative code and done is not called: SH_ENOMEM, or SH_EINVAL for a missing argument
 * or a query string that is not UTF-8 (the session never stores one). */
int rcpt_check_start(struct rcpt_check *rc, const struct rcpt_check_query *q,
                     rcpt_check_done_fn done, void *arg, struct rcpt_check_result *hit,
                     struct rcpt_check_request **out);

/* rcpt_check_cancel - stop a request and free it; done is not called. Not after done has
 * run (the request is gone then). NULL is ignored. */
void rcpt_check_cancel(struct rcpt_check_request *req);

/* rcpt_check_decide - the verdict for one response, as the table at the top has it (pure;
 * unit-tested). The Smtphook-Reply rules are delivery's (delivery_app_reply); out->why is
 * the reason for the log, saying so when on_failure turned a failure into an acceptance;
 * out->cached is false. */
void rcpt_check_decide(const struct config_recipient_check *cfg, const struct http_response *resp,
                       struct rcpt_check_result *out);

#endif
