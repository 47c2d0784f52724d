/* txn.c - one message apart from its connection (see txn.h).
 *
 * Owns every byte of the message's facts: the envelope strings are copied at MAIL (the
 * client, HELO and TLS strings into one block), recipients as they are accepted, the body
 * into a spool. Nothing here points into the session, the connection or OpenSSL, so the
 * transaction can outlive all of them. No libuv, curl, jansson or OpenSSL header: hashing
 * goes through digest.h. */
#include "smtphook/txn.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtphook/error.h"
#include "smtphook/log.h"
#include "smtphook/utf8.h"

#define TXN_LOG_ENDPOINTS_MAX 512 /* bytes of the endpoints= part of the log line */

/* facts_len - bytes a string takes in the facts block: the text and its NUL; 0 for NULL. */
static size_t facts_len(const char *s)
{
    return s != NULL ? strlen(s) + 1 : 0;
}

/* facts_put - copy s into the block at *pos and return where it went; NULL stays NULL. */
static const char *facts_put(char *block, size_t *pos, const char *s)
{
    if (s == NULL)
        return NULL;
    size_t n = strlen(s) + 1;
    char *dst = block + *pos;
    memcpy(dst, s, n);
    *pos += n;
    return dst;
}

/* txn_copy_facts - the client, HELO and TLS strings into one allocation that the envelope
 * points into. 0 or SH_ENOMEM. */
static int txn_copy_facts(struct txn *t, const struct txn_facts *f)
{
    static const struct envelope_tls plaintext = {NULL, NULL, NULL, NULL, NULL};
    const struct envelope_tls *tls = f->tls != NULL ? f->tls : &plaintext;
    size_t n = facts_len(f->client_address) + facts_len(f->helo) + facts_len(tls->version) +
               facts_len(tls->cipher) + facts_len(tls->sni) + facts_len(tls->peer_subject) +
               facts_len(tls->peer_sha256);
    t->facts = malloc(n > 0 ? n : 1);
    if (t->facts == NULL)
        return SH_ENOMEM;
    size_t pos = 0;
    struct envelope *env = &t->env;
    env->client_address = facts_put(t->facts, &pos, f->client_address);
    env->helo = facts_put(t->facts, &pos, f->helo);
    env->tls.version = facts_put(t->facts, &pos, tls->version);
    env->tls.cipher = facts_put(t->facts, &pos, tls->cipher);
    env->tls.sni = facts_put(t->facts, &pos, tls->sni);
    env->tls.peer_subject = facts_put(t->facts, &pos, tls->peer_subject);
    env->tls.peer_sha256 = facts_put(t->facts, &pos, tls->peer_sha256);
    return 0;
}

/* txn_new - see txn.h. */
int txn_new(const struct txn_facts *facts, const char *mail_from, struct txn **out)
{
    *out = NULL;
    struct txn *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return SH_ENOMEM;
    size_t idlen = strlen(facts->id);
    if (idlen > ENVELOPE_ID_MAX)
        idlen = ENVELOPE_ID_MAX;
    memcpy(t->env.id, facts->id, idlen);
    t->env.id[idlen] = '\0';
    t->env.received_at_ms = facts->received_at_ms;
    t->env.client_port = facts->client_port;
    t->env.esmtp = facts->esmtp;
    t->watch_boundary = t->watch_utf8 = true;
    if (txn_copy_facts(t, facts) != 0 || (t->env.mail_from = strdup(mail_from)) == NULL) {
        txn_free(t);
        return SH_ENOMEM;
    }
    *out = t;
    return 0;
}

/* txn_free - see txn.h. */
void txn_free(struct txn *t)
{
    if (t == NULL)
        return;
    if (t->on_free != NULL)
        t->on_free(t->on_free_arg);
    free(t->env.mail_from);
    for (size_t i = 0; i < t->env.n_rcpt; i++)
        free(t->env.rcpt_to[i]);
    free(t->env.rcpt_to);
    free(t->rcpt_route);
    free(t->facts);
    spool_free(t->spool);
    digest_free(t->hash);
    free(t->deliveries);
    free(t->head);
    txn_clear_shares(t);
    free(t);
}

/* txn_clear_shares - see txn.h. */
void txn_clear_shares(struct txn *t)
{
    for (size_t i = 0; i < t->n_shares; i++) {
        free(t->shares[i].endpoints);
        free(t->shares[i].rcpts);
    }
    free(t->shares);
    t->shares = NULL;
    t->n_shares = 0;
}

/* txn_add_share - see txn.h. */
int txn_add_share(struct txn *t, const size_t *endpoints, size_t n_endpoints, bool failover,
                  const size_t *rcpts, size_t n_rcpts)
{
    struct txn_share *list = realloc(t->shares, (t->n_shares + 1) * sizeof(*list));
    if (list == NULL)
        return SH_ENOMEM;
    t->shares = list;
    struct txn_share *sh = &list[t->n_shares];
    memset(sh, 0, sizeof(*sh));
    sh->endpoints = malloc((n_endpoints > 0 ? n_endpoints : 1) * sizeof(*sh->endpoints));
    sh->rcpts = malloc((n_rcpts > 0 ? n_rcpts : 1) * sizeof(*sh->rcpts));
    if (sh->endpoints == NULL || sh->rcpts == NULL) {
        free(sh->endpoints);
        free(sh->rcpts);
        return SH_ENOMEM;
    }
    memcpy(sh->endpoints, endpoints, n_endpoints * sizeof(*endpoints));
    memcpy(sh->rcpts, rcpts, n_rcpts * sizeof(*rcpts));
    sh->n_endpoints = n_endpoints;
    sh->n_rcpts = n_rcpts;
    sh->failover = failover;
    txn_key(t, rcpts, n_rcpts, sh->key);
    t->n_shares++;
    return 0;
}

/* txn_add_rcpt - see txn.h. */
int txn_add_rcpt(struct txn *t, const char *mailbox, long route)
{
    size_t n = t->env.n_rcpt;
    char **list = realloc(t->env.rcpt_to, (n + 1) * sizeof(*list));
    if (list == NULL)
        return SH_ENOMEM;
    t->env.rcpt_to = list;
    long *routes = realloc(t->rcpt_route, (n + 1) * sizeof(*routes));
    if (routes == NULL)
        return SH_ENOMEM;
    t->rcpt_route = routes;
    if ((list[n] = strdup(mailbox)) == NULL)
        return SH_ENOMEM;
    routes[n] = route;
    t->env.n_rcpt++;
    return 0;
}

#define TXN_BOUNDARY_PREFIX "smtphook-"
#define TXN_SCAN_STEP       65536u /* bytes read per step when the whole body is searched */

/* boundary_draw - a new random boundary, not yet looked for in the body. */
static int boundary_draw(struct txn_boundary *b)
{
    size_t pfx = strlen(TXN_BOUNDARY_PREFIX);
    memcpy(b->text, TXN_BOUNDARY_PREFIX, pfx);
    b->tail_len = 0;
    b->seen = false;
    if (digest_random_hex(b->text + pfx, TXN_BOUNDARY_LEN - pfx) != 0) {
        b->text[0] = '\0';
        return SH_EIO;
    }
    return 0;
}

/* txn_body_utf8 - see txn.h. */
bool txn_body_utf8(const struct txn *t)
{
    return t->watch_utf8 && utf8_done(&t->utf8);
}

/* boundary_feed - look for the boundary in n more body bytes, across the previous ones. */
static void boundary_feed(struct txn_boundary *b, const char *data, size_t n)
{
    const size_t keep = TXN_BOUNDARY_LEN - 1;
    if (b->seen || b->text[0] == '\0' || n == 0)
        return;
    char window[2 * (TXN_BOUNDARY_LEN - 1)];
    size_t head = n < keep ? n : keep;
    memcpy(window, b->tail, b->tail_len);
    memcpy(window + b->tail_len, data, head);
    if (memmem(window, b->tail_len + head, b->text, TXN_BOUNDARY_LEN) != NULL ||
        memmem(data, n, b->text, TXN_BOUNDARY_LEN) != NULL) {
        b->seen = true;
        return;
    }
    size_t total = b->tail_len + head; /* the last keep bytes of tail and data */
    if (n >= keep) {
        memcpy(b->tail, data + n - keep, keep);
        b->tail_len = keep;
    } else {
        size_t drop = total > keep ? total - keep : 0;
        memmove(b->tail, window + drop, total - drop);
        b->tail_len = total - drop;
    }
}

/* txn_boundary - see txn.h. A boundary the body holds was either sent by someone who
 * guessed 124 random bits or is astronomically unlucky; another is drawn and the whole
 * body searched for it. */
const char *txn_boundary(struct txn *t)
{
    struct txn_boundary *b = &t->boundary;
    while (b->text[0] == '\0' || b->seen) {
        if (boundary_draw(b) != 0)
            return NULL;
        char step[TXN_SCAN_STEP];
        uint64_t off = 0, size = t->spool != NULL ? spool_size(t->spool) : 0;
        while (off < size && !b->seen) {
            size_t got = 0;
            if (spool_read(t->spool, off, step, sizeof(step), &got) != 0 || got == 0)
                return NULL;
            boundary_feed(b, step, got);
            off += got;
        }
    }
    return b->text;
}

/* txn_begin_body - see txn.h. Called once per message: DATA, or the first chunk. */
void txn_begin_body(struct txn *t, const char *directory, uint64_t memory_bytes, int64_t now_ms)
{
    t->data_started_ms = now_ms;
    t->env.size = 0;
    t->too_big = false;
    if (t->spool == NULL && t->spool_error == 0)
        t->spool_error = spool_new(directory, memory_bytes, &t->spool);
    if (t->hash == NULL && t->spool_error == 0)
        t->spool_error = digest_new(&t->hash);
    if (t->spool_error == 0 && t->watch_boundary)
        boundary_draw(&t->boundary); /* on failure txn_boundary tries again */
}

/* txn_append - see txn.h. RFC 1870 §6.3: a message over the limit is read to its end but
 * stored no further. */
bool txn_append(struct txn *t, const char *data, size_t n, uint64_t max_bytes)
{
    t->env.size += n;
    if (t->env.size > max_bytes)
        t->too_big = true;
    if (t->too_big)
        return false;
    if (t->spool_error == 0 && t->spool != NULL) {
        t->spool_error = spool_append(t->spool, data, n);
        digest_update(t->hash, data, n);
        if (t->watch_boundary)
            boundary_feed(&t->boundary, data, n);
        if (t->watch_utf8)
            utf8_feed(&t->utf8, data, n);
    }
    return true;
}

/* txn_end_body - see txn.h. */
void txn_end_body(struct txn *t, int64_t now_ms)
{
    t->data_ended_ms = now_ms;
    if (t->hash != NULL && !t->body_ended)
        digest_final(t->hash, t->body_digest);
    t->body_ended = true;
}

/* key_part - hash one length-prefixed field (8 bytes big-endian length, then the bytes),
 * so that no two different field lists hash the same bytes. */
static void key_part(struct digest *d, const void *data, size_t n)
{
    uint8_t len[8];
    uint64_t v = n;
    for (int i = 7; i >= 0; i--) {
        len[i] = (uint8_t)(v & 0xff);
        v >>= 8;
    }
    digest_update(d, len, sizeof(len));
    digest_update(d, data, n);
}

/* txn_key - see txn.h. Without memory for the hash or the sort, the key degrades to the
 * body's hash alone: still stable across retries of the same message. */
void txn_key(const struct txn *t, const size_t *rcpts, size_t n_rcpts, char out[DIGEST_HEX + 1])
{
    const struct envelope *env = &t->env;
    if (rcpts == NULL)
        n_rcpts = env->n_rcpt;
    const char **sorted = calloc(n_rcpts > 0 ? n_rcpts : 1, sizeof(*sorted));
    struct digest *d = NULL;
    if (sorted == NULL || digest_new(&d) != 0) {
        free(sorted);
        digest_hex(t->body_digest, out);
        return;
    }
    /* Insertion sort: recipient lists are short (at most max_recipients). */
    for (size_t i = 0; i < n_rcpts; i++) {
        const char *r = env->rcpt_to[rcpts != NULL ? rcpts[i] : i];
        size_t j = i;
        while (j > 0 && strcmp(sorted[j - 1], r) > 0) {
            sorted[j] = sorted[j - 1];
            j--;
        }
        sorted[j] = r;
    }
    static const char domain[] = "smtphook-key-v1";
    key_part(d, domain, sizeof(domain) - 1);
    key_part(d, t->body_digest, sizeof(t->body_digest));
    key_part(d, env->mail_from, strlen(env->mail_from));
    for (size_t i = 0; i < n_rcpts; i++)
        key_part(d, sorted[i], strlen(sorted[i]));
    uint8_t key[DIGEST_BYTES];
    digest_final(d, key);
    digest_free(d);
    free(sorted);
    digest_hex(key, out);
}

/* txn_log_deliveries - "name:status:ms:attempts=N" (or "name:failure:ms:attempts=N") per
 * delivery into dst; "-"
 * when there were none. Truncated, never overrun, with many endpoints. */
static void txn_log_deliveries(const struct txn *t, char *dst, size_t dstlen)
{
    size_t n = 0;
    dst[0] = '\0';
    for (size_t i = 0; i < t->n_deliveries && n < dstlen; i++) {
        const struct txn_delivery *d = &t->deliveries[i];
        int k;
        if (d->failure == NULL)
            k = snprintf(dst + n, dstlen - n, "%s%s:%ld:%" PRIu64 "ms:attempts=%u", i ? "," : "",
                         d->name, d->status, d->elapsed_ms, d->attempts);
        else
            k = snprintf(dst + n, dstlen - n, "%s%s:%s:%" PRIu64 "ms:attempts=%u", i ? "," : "",
                         d->name, d->failure, d->elapsed_ms, d->attempts);
        if (k < 0)
            break;
        n += (size_t)k;
    }
    if (dst[0] == '\0')
        snprintf(dst, dstlen, "-");
}

/* txn_log - see txn.h. */
void txn_log(const struct txn *t, int64_t now_ms)
{
    const struct envelope *env = &t->env;
    char from[128], helo[96], eps[TXN_LOG_ENDPOINTS_MAX];
    log_sanitize(from, sizeof(from), env->mail_from, strlen(env->mail_from));
    log_sanitize(helo, sizeof(helo), env->helo ? env->helo : "", env->helo ? strlen(env->helo) : 0);
    txn_log_deliveries(t, eps, sizeof(eps));
    int64_t start = t->data_started_ms != 0 ? t->data_started_ms : env->received_at_ms;
    char queued[32] = "";
    if (t->n_shares > 0)
        snprintf(queued, sizeof(queued), " queued=%zu", t->n_shares);
    log_info("txn id=%s client=%s:%u helo=%s from=<%s> rcpts=%zu size=%" PRIu64
             " endpoints=%s%s reply=\"%u %s\" ms=%" PRId64,
             env->id, env->client_address ? env->client_address : "", env->client_port, helo, from,
             env->n_rcpt, env->size, eps, queued, t->reply.code, t->reply.esc, now_ms - start);
}
