/* env.c - options from the environment (see env.h). */
#include "env.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* env_option - see env.h. */
const char *env_option(const char *opt, const char *name)
{
    if (opt != NULL)
        return opt;
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

/* env_overrides - see env.h. */
int env_overrides(struct config_overrides *ov, const char **listen, size_t max, char *buf,
                  size_t buflen)
{
    ov->webhook = env_option(ov->webhook, "SMTPHOOK_WEBHOOK");
    ov->hostname = env_option(ov->hostname, "SMTPHOOK_HOSTNAME");
    ov->tls_cert = env_option(ov->tls_cert, "SMTPHOOK_TLS_CERT");
    ov->tls_key = env_option(ov->tls_key, "SMTPHOOK_TLS_KEY");
    ov->admin = env_option(ov->admin, "SMTPHOOK_ADMIN");
    ov->delivery = env_option(ov->delivery, "SMTPHOOK_DELIVERY");
    ov->queue_dir = env_option(ov->queue_dir, "SMTPHOOK_QUEUE_DIR");
    const char *v = getenv("SMTPHOOK_LISTEN");
    if (ov->n_listen > 0 || v == NULL)
        return 0;
    ov->listen = listen;
    snprintf(buf, buflen, "%s", v);
    for (char *save = NULL, *tok = strtok_r(buf, " ,\t", &save); tok != NULL;
         tok = strtok_r(NULL, " ,\t", &save)) {
        if (ov->n_listen == max)
            return -1;
        listen[ov->n_listen++] = tok;
    }
    return 0;
}
