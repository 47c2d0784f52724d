/* sign.h - Standard Webhooks v1 and v1a signatures of a request body.
 *
 * The signed content is "<webhook-id>.<webhook-timestamp>.<body>", the body exactly as sent;
 * each configured key gives one signature, an HMAC-SHA256 for a "whsec_" secret ("v1,<base64
 * of 32 bytes>"), an Ed25519 signature for a "whsk_" key ("v1a,<base64 of 64 bytes>"), and
 * webhook-signature lists them all in the configuration's order, separated by spaces, so a
 * receiver that knows any of them verifies it (key rotation). The first pass over the body
 * feeds every HMAC and every Ed25519 key's nonce hash; when a v1a key is there, a second
 * pass feeds the Ed25519 challenge hashes (ed25519.h). The passes go in steps of a bounded
 * size, the second after the first, so that the caller can spread a large body over many
 * turns of its loop; the body is read from its spool each time, never held. Pure apart
 * from the body's spool reads. */
#ifndef SMTPHOOK_SIGN_H
#define SMTPHOOK_SIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smtphook/config.h"
#include "smtphook/digest.h"
#include "smtphook/ed25519.h"
#include "smtphook/request_body.h"

#define SIGN_STEP_BYTES 262144u /* body bytes one sign_step reads at most */
#define SIGN_PREFIX_MAX 128u    /* "<id>.<timestamp>." : a 64-character key and a number */
#define SIGN_HEADER_ID  "webhook-id"
#define SIGN_HEADER_TS  "webhook-timestamp"
#define SIGN_HEADER_SIG "webhook-signature"

/* The signing passes over one request body. */
struct sign_pass {
    const struct config_signing *signing; /* the keys (not owned) */
    const struct request_body *body;      /* the bytes signed (not owned) */
    struct digest **macs;                 /* per key: its running HMAC (v1), else NULL */
    struct ed25519_sign *eds;             /* per key: its Ed25519 signature (v1a) */
    char prefix[SIGN_PREFIX_MAX];         /* "<id>.<timestamp>.", fed before each pass */
    size_t prefix_len;                    /* its bytes */
    unsigned passes;                      /* 1, or 2 with a v1a key */
    unsigned pass;                        /* the pass under way, from 0 */
    uint64_t offset;                      /* body bytes fed so far, over all passes */
};

/* sign_begin - start the pass over "<id>.<unix_s>.<body>". 0 or SH_ENOMEM. */
int sign_begin(struct sign_pass *p, const struct config_signing *signing, const char *id,
               int64_t unix_s, const struct request_body *body);

/* sign_bytes - the body bytes the passes read in all: the body's size, twice with a v1a
 * key. */
uint64_t sign_bytes(const struct sign_pass *p);

/* sign_step - feed up to SIGN_STEP_BYTES more of the body to the pass under way, going on
 * to the second pass when the first is through; *done once every pass has all of it.
 * 0, SH_EIO (the spool could not be read, or libsodium failed) or SH_ENOMEM. */
int sign_step(struct sign_pass *p, bool *done);

/* sign_value - after the last step: the webhook-signature value as a new string. 0 or
 * SH_ENOMEM. */
int sign_value(struct sign_pass *p, char **out);

/* sign_end - release the pass (done or not). */
void sign_end(struct sign_pass *p);

#endif
