/* fuzz_config.c - fuzz target: the input as JSON text through config_load_string, once as
 * it is and once with command-line overrides (--listen, --webhook, --hostname) applied.
 *
 * Invariants (abort on violation): a result or a message, never both; the message is
 * NUL-terminated inside its buffer; a loaded config keeps config.h's promises (a host name,
 * listeners, endpoints with http(s) URLs, header values without CR/LF, lower-case domains,
 * TLS modes only with certificates, TLS files only for https endpoints, retry and breaker
 * within their ranges, reply_map sorted with valid replies, a recipient check within its
 * bounds, a delimiter of distinct allowed characters, warnings that are full messages, routes
 * whose patterns are valid and each the first match for an address it names, whose
 * endpoint indices are in range and distinct; --webhook leaves no routes).
 * Crashes and leaks are left to the sanitizers.
 *
 * Must not include jansson: it feeds text through the public interface only. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
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

/* check_http - the request part of an endpoint (or of the recipient check). */
static void check_http(const struct config_endpoint *e)
{
    FUZZ_CHECK(e->name != NULL && e->url != NULL);
    FUZZ_CHECK(strncasecmp(e->url, "http://", 7) == 0 || strncasecmp(e->url, "https://", 8) == 0);
    FUZZ_CHECK(e->timeout_ms >= 100 && e->connect_timeout_ms >= 100);
    FUZZ_CHECK(e->connect_timeout_ms <= e->timeout_ms);
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

/* check_endpoint - an entry of "endpoints": its request, retry, breaker and reply_map. */
static void check_endpoint(const struct config_endpoint *e)
{
    check_http(e);
    FUZZ_CHECK(e->timeout_ms <= 590000);
    FUZZ_CHECK(e->retry.max_attempts >= 1 && e->retry.max_attempts <= 10);
    FUZZ_CHECK(e->retry.initial_backoff_ms >= 10 && e->retry.max_backoff_ms <= 590000);
    FUZZ_CHECK(e->retry.initial_backoff_ms <= e->retry.max_backoff_ms);
    FUZZ_CHECK(e->breaker.failures <= 1000);
    FUZZ_CHECK(e->breaker.cooldown_ms >= 1000 && e->breaker.cooldown_ms <= 3600000);
    FUZZ_CHECK((e->reply_map == NULL) == (e->n_reply_map == 0));
    for (size_t k = 0; k < e->n_reply_map; k++) {
        const struct config_reply_rule *r = &e->reply_map[k];
        FUZZ_CHECK(r->status >= 100 && r->status <= 599);
        FUZZ_CHECK(k == 0 || e->reply_map[k - 1].status < r->status); /* sorted, unique */
        FUZZ_CHECK(r->reply.code == 250 || (r->reply.code >= 400 && r->reply.code < 600));
        FUZZ_CHECK(r->reply.code != 421);
        FUZZ_CHECK(memchr(r->reply.esc, '\0', sizeof(r->reply.esc)) != NULL);
        FUZZ_CHECK(memchr(r->reply.text, '\0', sizeof(r->reply.text)) != NULL);
        FUZZ_CHECK(r->reply.esc[0] == '\0' || r->reply.esc[0] == (char)('0' + r->reply.code / 100));
    }
}

/* check_pattern - a route's pattern is well formed, parses back the same way from its text,
 * and the route it is in is the first for an address it matches (no earlier route takes all
 * its addresses). */
static void check_pattern(const struct config *cfg, size_t r, const struct route_pattern *p)
{
    char text[600], addr[600];
    switch (p->kind) {
    case ROUTE_PATTERN_EXACT:
        FUZZ_CHECK(p->local != NULL && p->domain != NULL);
        snprintf(text, sizeof(text), "%s@%s", p->local, p->domain);
        snprintf(addr, sizeof(addr), "%s", text);
        break;
    case ROUTE_PATTERN_DOMAIN:
        FUZZ_CHECK(p->local == NULL && p->domain != NULL);
        snprintf(text, sizeof(text), "*@%s", p->domain);
        snprintf(addr, sizeof(addr), "fuzz@%s", p->domain);
        break;
    case ROUTE_PATTERN_SUBDOMAIN:
        FUZZ_CHECK(p->local == NULL && p->domain != NULL);
        snprintf(text, sizeof(text), "*@*.%s", p->domain);
        snprintf(addr, sizeof(addr), "fuzz@x.%s", p->domain);
        break;
    case ROUTE_PATTERN_ANY:
        FUZZ_CHECK(p->local == NULL && p->domain == NULL);
        snprintf(text, sizeof(text), "*");
        snprintf(addr, sizeof(addr), "postmaster");
        break;
    default:
        FUZZ_FAIL("unknown pattern kind");
    }
    if (p->domain != NULL)
        for (const char *d = p->domain; *d != '\0'; d++)
            FUZZ_CHECK(!(*d >= 'A' && *d <= 'Z'));
    struct route_pattern again;
    FUZZ_CHECK(route_pattern_parse(text, &again, NULL) == 0 && again.kind == p->kind);
    route_pattern_free(&again);
    FUZZ_CHECK(route_pattern_match(p, addr, strlen(addr), cfg->recipient_delimiter));
    long first = config_route_for(cfg, addr, strlen(addr));
    FUZZ_CHECK(first >= 0 && (size_t)first <= r);
    if (p->kind == ROUTE_PATTERN_EXACT || p->kind == ROUTE_PATTERN_ANY)
        FUZZ_CHECK((size_t)first == r); /* only an exact pattern before it could take addr */
}

/* check_routes - every route matches something, names endpoints that exist, once each. */
static void check_routes(const struct config *cfg)
{
    FUZZ_CHECK((cfg->routes == NULL) == (cfg->n_routes == 0));
    for (size_t r = 0; r < cfg->n_routes; r++) {
        const struct config_route *route = &cfg->routes[r];
        FUZZ_CHECK(route->n_patterns >= 1 && route->n_endpoints >= 1);
        FUZZ_CHECK(route->policy == CONFIG_ROUTE_ALL || route->policy == CONFIG_ROUTE_FAILOVER);
        for (size_t k = 0; k < route->n_patterns; k++) {
            check_pattern(cfg, r, &route->patterns[k]);
            FUZZ_CHECK(route_pattern_domain_served(&route->patterns[k], cfg->any_domain,
                                                   cfg->domains, cfg->n_domains));
        }
        for (size_t k = 0; k < route->n_endpoints; k++) {
            FUZZ_CHECK(route->endpoints[k] < cfg->n_endpoints);
            for (size_t m = 0; m < k; m++)
                FUZZ_CHECK(route->endpoints[m] != route->endpoints[k]);
        }
    }
    if (cfg->n_routes == 0)
        FUZZ_CHECK(config_route_for(cfg, "a@example.com", 13) == -1);
}

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
    for (size_t i = 0; i < cfg->n_endpoints; i++)
        check_endpoint(&cfg->endpoints[i]);

    const struct config_recipient_check *rc = &cfg->recipient_check;
    if (rc->enabled) {
        check_http(&rc->http);
        FUZZ_CHECK(strcmp(rc->http.name, "recipient_check") == 0);
        FUZZ_CHECK(rc->http.timeout_ms <= 60000);
        FUZZ_CHECK(rc->http.retry.max_attempts == 1 && rc->http.breaker.failures == 0);
        FUZZ_CHECK(rc->http.n_reply_map == 0);
        FUZZ_CHECK(rc->cache_ms <= 86400000);
    } else {
        FUZZ_CHECK(rc->http.url == NULL && rc->http.name == NULL && rc->http.n_headers == 0);
    }

    if (cfg->recipient_delimiter != NULL) {
        size_t n = strlen(cfg->recipient_delimiter);
        FUZZ_CHECK(n >= 1 && n <= 8);
        for (size_t i = 0; i < n; i++) {
            char ch = cfg->recipient_delimiter[i];
            FUZZ_CHECK(strchr("!#$%&'*+-./=?^_`{|}~", ch) != NULL);
            FUZZ_CHECK(strchr(cfg->recipient_delimiter + i + 1, ch) == NULL);
        }
    }
    check_routes(cfg);
    FUZZ_CHECK((cfg->warnings == NULL) == (cfg->n_warnings == 0));
    for (size_t i = 0; i < cfg->n_warnings; i++)
        FUZZ_CHECK(cfg->warnings[i] != NULL && strchr(cfg->warnings[i], ':') != NULL);
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
            FUZZ_CHECK(cfg->n_routes == 0); /* they named the file's endpoints */
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
