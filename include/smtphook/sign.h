/* sign.h - Standard Webhooks v1 signatures of a request body.
 *
 * The signed content is "<webhook-id>.<webhook-timestamp>.<body>", the body exactly as sent;
 * each configured secret gives one HMAC-SHA256, and webhook-signature lists them all,
 * "v1,<base64>" separated by spaces, so a receiver that knows any of them verifies it (key
 * rotation). One pass over the body feeds every secret's HMAC; the pass goes in steps of a
 * bounded size, so that the caller can spread a large body over many turns of its loop.
 * Pure apart from the body's spool reads. */
#ifndef SMTPHOOK_SIGN_H
#define SMTPHOOK_SIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smtphook/config.h"
#include "smtphook/digest.h"
#include "smtphook/request_body.h"

#define SIGN_STEP_BYTES 262144u /* body bytes one sign_step reads at most */
#define SIGN_HEADER_ID  "webhook-id"
#define SIGN_HEADER_TS  "webhook-timestamp"
#define SIGN_HEADER_SIG "webhook-signature"

/* One signing pass over one request body. */
struct sign_pass {
    const struct config_signing *signing; /* the secrets (not owned) */
    const struct request_body *body;      /* the bytes signed (not owned) */
    struct digest **macs;                 /* one running HMAC per secret */
    uint64_t offset;                      /* body bytes fed so far */
};

/* sign_begin - start the pass over "<id>.<unix_s>.<body>". 0 or SH_ENOMEM. */
int sign_begin(struct sign_pass *p, const struct config_signing *signing, const char *id,
               int64_t unix_s, const struct request_body *body);

/* sign_step - feed up to SIGN_STEP_BYTES more of the body; *done once all of it is in.
 * 0 or SH_EIO (the spool could not be read). */
int sign_step(struct sign_pass *p, bool *done);

/* sign_value - after the last step: the webhook-signature value as a new string. 0 or
 * SH_ENOMEM. */
int sign_value(struct sign_pass *p, char **out);

/* sign_end - release the pass (done or not). */
void sign_end(struct sign_pass *p);

#endif
