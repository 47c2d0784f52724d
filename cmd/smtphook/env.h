/* env.h - the SMTPHOOK_* variables that stand for command-line options, for smtphook and
 * for "smtphook queue" alike (the queue command loads the configuration as smtphook does). */
#ifndef SMTPHOOK_CMD_ENV_H
#define SMTPHOOK_CMD_ENV_H

#include <stddef.h>

#include "smtphook/config.h"

#define ENV_MAX_LISTEN 16 /* listen addresses: --listen, or those of SMTPHOOK_LISTEN */

/* env_option - opt unless it is NULL, else the environment variable name (NULL if unset or
 * empty). */
const char *env_option(const char *opt, const char *name);

/* env_overrides - every override ov has no option for from its variable: SMTPHOOK_WEBHOOK,
 * SMTPHOOK_HOSTNAME, SMTPHOOK_TLS_CERT, SMTPHOOK_TLS_KEY, SMTPHOOK_ADMIN, SMTPHOOK_DELIVERY,
 * SMTPHOOK_QUEUE_DIR, and, unless --listen was given, SMTPHOOK_LISTEN's addresses (split on
 * spaces and commas into buf, pointed to from listen, room for max; ov->listen is listen).
 * -1 when SMTPHOOK_LISTEN has more than max addresses, else 0. */
int env_overrides(struct config_overrides *ov, const char **listen, size_t max, char *buf,
                  size_t buflen);

#endif
