/* fuzz_config.c - fuzz target: the input as JSON text through config_load_string, once as
 * it is and once with command-line overrides (--listen, --webhook, --hostname) applied.
 *
 * Invariants (abort on violation): a result or a message, never both; the message is
 * NUL-terminated inside its buffer; a loaded config keeps config.h's promises (a host name,
 * listeners, endpoints with http(s) URLs, header values without CR/LF, lower-case domains,
 * TLS modes only with certificates, TLS files only for https endpoints).
 * Crashes and leaks are left to the sanitizers.
 *
 * Must not include jansson: it feeds text through the public interface only. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "smtphook/config.h"
#include "smtphook/error.h"

#define ERR_MAX 512 /* message buffer, as large as main.c's */

static const char *const fuzz_listen[] = {"127.0.0.1:2525"};

/* The overrides of "smtphook --listen 127.0.0.1:2525 --webhook ... --hostname mx.fuzz". */
static const struct config_overrides fuzz_overrides = {
    .listen = fuzz_listen,
    .n_listen = 1,
    .webhook = "http://127.0.0.1:8080/hook",
    .hostname = "mx.fuzz",
};

/* check_config - what config.h promises about a loaded config. */
static void check_config(const struct config *cfg)
{
    FUZZ_CHECK(cfg->hostname != NULL && cfg->hostname[0] != '\0');
    FUZZ_CHECK(cfg->n_listeners >= 1 && cfg->listeners != NULL);
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const struct config_listener *l = &cfg->listeners[i];
        FUZZ_CHECK(l->address != NULL && l->addrlen > 0);
        /* A TLS mode needs certificates; require_tls needs a TLS mode. */
        FUZZ_CHECK(l->tls == CONFIG_TLS_NONE || cfg->tls.n_certificates > 0);
        FUZZ_CHECK(!l->require_tls || l->tls != CONFIG_TLS_NONE);
    }
    for (size_t i = 0; i < cfg->tls.n_certificates; i++) {
        const struct config_certificate *c = &cfg->tls.certificates[i];
        FUZZ_CHECK(c->cert != NULL && c->cert[0] != '\0' && c->key != NULL && c->key[0] != '\0');
    }
    FUZZ_CHECK(cfg->tls.min_version != NULL && cfg->tls.ciphers != NULL);
    FUZZ_CHECK(cfg->tls.handshake_timeout_ms > 0);
    FUZZ_CHECK(cfg->n_endpoints >= 1 && cfg->endpoints != NULL);
    for (size_t i = 0; i < cfg->n_endpoints; i++) {
        const struct config_endpoint *e = &cfg->endpoints[i];
        FUZZ_CHECK(e->name != NULL && e->url != NULL);
        FUZZ_CHECK(strncasecmp(e->url, "http://", 7) == 0 ||
                   strncasecmp(e->url, "https://", 8) == 0);
        /* TLS files only for https, and certificate and key together. */
        FUZZ_CHECK((e->client_cert == NULL) == (e->client_key == NULL));
        if (e->ca_file != NULL || e->client_cert != NULL)
            FUZZ_CHECK(strncasecmp(e->url, "https://", 8) == 0);
        for (size_t k = 0; k < e->n_headers; k++) {
            FUZZ_CHECK(e->headers[k].name != NULL && e->headers[k].name[0] != '\0');
            FUZZ_CHECK(e->headers[k].value != NULL);
            FUZZ_CHECK(strpbrk(e->headers[k].value, "\r\n") == NULL);
        }
    }
    for (size_t i = 0; i < cfg->n_domains; i++)
        for (const char *p = cfg->domains[i]; *p != '\0'; p++)
            FUZZ_CHECK(!(*p >= 'A' && *p <= 'Z'));
    FUZZ_CHECK(cfg->spool.directory != NULL);
    FUZZ_CHECK(cfg->limits.max_command_line_bytes >= 3);
}

/* load - one config_load_string call; checks the result or the message. */
static void load(const char *json, const struct config_overrides *ov)
{
    char err[ERR_MAX];
    memset(err, 'x', sizeof(err));
    struct config *cfg = (struct config *)&err; /* must be overwritten */
    int rc = config_load_string(json, "fuzz.json", ov, &cfg, err, sizeof(err));
    FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
    if (rc == 0) {
        FUZZ_CHECK(cfg != NULL && err[0] == '\0');
        check_config(cfg);
        if (ov != NULL) {
            FUZZ_CHECK(strcmp(cfg->hostname, ov->hostname) == 0);
            FUZZ_CHECK(cfg->n_listeners == ov->n_listen && cfg->n_endpoints == 1);
            FUZZ_CHECK(strcmp(cfg->endpoints[0].url, ov->webhook) == 0);
        }
        config_free(cfg);
    } else {
        FUZZ_CHECK(rc == SH_ECONFIG || rc == SH_ENOMEM);
        FUZZ_CHECK(cfg == NULL && err[0] != '\0');
    }
}

/* LLVMFuzzerTestOneInput - the input, NUL-terminated, as a config file's text. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *json = malloc(size + 1);
    FUZZ_CHECK(json != NULL);
    memcpy(json, data, size);
    json[size] = '\0';
    load(json, NULL);
    load(json, &fuzz_overrides);
    free(json);
    return 0;
}
