/* test_config.c - unit tests of config.c: schema, ranges, ${NAME} expansion, overrides,
 * addresses, domains, headers, TLS settings and the messages that name the offending key.
 *
 * Must not include jansson: it feeds JSON text through the public interface only. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "smtphook/config.h"
#include "smtphook/error.h"
#include "smtphook/log.h"

#define ERR_MAX  512  /* message buffer, as large as main.c's */
#define JSON_MAX 4096 /* longest JSON text built by a test */

/* A minimal valid file: one listener, one domain, one endpoint. */
#define LISTEN_KEY "\"listeners\":[{\"address\":\"127.0.0.1:2525\"}]"
#define DOMAIN_KEY "\"domains\":[\"example.com\"]"
#define EP_KEY     "\"endpoints\":{\"app\":{\"url\":\"http://127.0.0.1:8080/hook\"}}"
#define BASE       LISTEN_KEY "," DOMAIN_KEY "," EP_KEY

/* load - load_string with what = "config.json"; returns the code, *out and err filled. */
static int load(const char *json, const struct config_overrides *ov, struct config **out, char *err)
{
    int rc = config_load_string(json, "config.json", ov, out, err, ERR_MAX);
    if (rc != 0)
        print_message("  (message: %s)\n", err);
    return rc;
}

/* load_ok - the config must load; the caller frees it. */
static struct config *load_ok(const char *json)
{
    char err[ERR_MAX];
    struct config *cfg = NULL;
    assert_int_equal(load(json, NULL, &cfg, err), 0);
    assert_non_null(cfg);
    return cfg;
}

/* load_err - the config must fail with SH_ECONFIG and a message containing each needle. */
static void load_err_ov(const char *json, const struct config_overrides *ov, const char *needle1,
                        const char *needle2)
{
    char err[ERR_MAX];
    struct config *cfg = (struct config *)1;
    int rc = config_load_string(json, "config.json", ov, &cfg, err, sizeof(err));
    if (rc == 0 || strstr(err, needle1) == NULL || (needle2 && strstr(err, needle2) == NULL))
        print_message("  json: %s\n  message: %s\n  want: %s / %s\n", json ? json : "(none)", err,
                      needle1, needle2 ? needle2 : "");
    assert_int_equal(rc, SH_ECONFIG);
    assert_null(cfg);
    assert_non_null(strstr(err, needle1));
    if (needle2 != NULL)
        assert_non_null(strstr(err, needle2));
}

static void load_err(const char *json, const char *needle1, const char *needle2)
{
    load_err_ov(json, NULL, needle1, needle2);
}

/* load_err_exact - the config must fail with SH_ECONFIG and exactly this message. */
static void load_err_exact(const char *json, const char *want)
{
    char err[ERR_MAX];
    struct config *cfg = (struct config *)1;
    assert_int_equal(config_load_string(json, "config.json", NULL, &cfg, err, sizeof(err)),
                     SH_ECONFIG);
    assert_null(cfg);
    assert_string_equal(err, want);
}

/* with_key - "{BASE,<extra>}" into buf. */
static const char *with_key(char *buf, size_t len, const char *extra)
{
    snprintf(buf, len, "{" BASE ",%s}", extra);
    return buf;
}

/* ep_json - a config whose only endpoint is "app": {<body>}. */
static const char *ep_json(char *buf, size_t len, const char *body)
{
    snprintf(buf, len, "{" LISTEN_KEY "," DOMAIN_KEY ",\"endpoints\":{\"app\":{%s}}}", body);
    return buf;
}

/* ---- defaults ---------------------------------------------------------------------------- */

static void test_defaults(void **state)
{
    (void)state;
    struct config *cfg = load_ok("{" BASE "}");
    assert_int_equal(cfg->limits.max_command_line_bytes, CONFIG_DEF_MAX_COMMAND_LINE_BYTES);
    assert_int_equal(cfg->limits.max_recipients, CONFIG_DEF_MAX_RECIPIENTS);
    assert_int_equal(cfg->limits.max_message_bytes, CONFIG_DEF_MAX_MESSAGE_BYTES);
    assert_int_equal(cfg->limits.idle_timeout_ms, CONFIG_DEF_IDLE_TIMEOUT_MS);
    assert_int_equal(cfg->limits.max_errors, CONFIG_DEF_MAX_ERRORS);
    assert_int_equal(cfg->limits.max_connections, CONFIG_DEF_MAX_CONNECTIONS);
    assert_int_equal(cfg->limits.max_connections_per_client, CONFIG_DEF_MAX_CONNECTIONS_PER_CLIENT);
    assert_int_equal(cfg->limits.transaction_timeout_ms, CONFIG_DEF_TRANSACTION_TIMEOUT_MS);
    assert_int_equal(cfg->limits.shutdown_timeout_ms, CONFIG_DEF_SHUTDOWN_TIMEOUT_MS);
    assert_int_equal(cfg->spool.memory_bytes, CONFIG_DEF_SPOOL_MEMORY_BYTES);
    assert_string_equal(cfg->spool.directory, CONFIG_DEF_SPOOL_DIRECTORY);
    assert_int_equal(cfg->log_level, LOG_LEVEL_INFO);

    char host[256] = {0};
    assert_int_equal(gethostname(host, sizeof(host) - 1), 0);
    assert_string_equal(cfg->hostname, host);

    assert_int_equal(cfg->n_listeners, 1);
    assert_string_equal(cfg->listeners[0].address, "127.0.0.1:2525");
    assert_int_equal(cfg->listeners[0].addr.ss_family, AF_INET);
    assert_int_equal(cfg->listeners[0].addrlen, sizeof(struct sockaddr_in));
    assert_int_equal(cfg->n_domains, 1);
    assert_string_equal(cfg->domains[0], "example.com");
    assert_false(cfg->any_domain);
    assert_int_equal(cfg->n_endpoints, 1);
    assert_string_equal(cfg->endpoints[0].name, "app");
    assert_string_equal(cfg->endpoints[0].url, "http://127.0.0.1:8080/hook");
    assert_int_equal(cfg->endpoints[0].timeout_ms, CONFIG_DEF_ENDPOINT_TIMEOUT_MS);
    assert_int_equal(cfg->endpoints[0].connect_timeout_ms, CONFIG_DEF_ENDPOINT_CONNECT_MS);
    assert_int_equal(cfg->endpoints[0].n_headers, 0);
    assert_null(cfg->endpoints[0].ca_file);
    assert_null(cfg->endpoints[0].client_cert);
    assert_null(cfg->endpoints[0].client_key);
    assert_int_equal(cfg->endpoints[0].retry.max_attempts, CONFIG_DEF_RETRY_MAX_ATTEMPTS);
    assert_int_equal(cfg->endpoints[0].retry.initial_backoff_ms,
                     CONFIG_DEF_RETRY_INITIAL_BACKOFF_MS);
    assert_int_equal(cfg->endpoints[0].retry.max_backoff_ms, CONFIG_DEF_RETRY_MAX_BACKOFF_MS);
    assert_int_equal(cfg->endpoints[0].breaker.failures, CONFIG_DEF_BREAKER_FAILURES);
    assert_int_equal(cfg->endpoints[0].breaker.cooldown_ms, CONFIG_DEF_BREAKER_COOLDOWN_MS);
    assert_null(cfg->endpoints[0].reply_map);
    assert_int_equal(cfg->endpoints[0].n_reply_map, 0);

    /* No "tls": no certificates, so every listener is plaintext; the settings have their
     * defaults for when --tls-cert brings a certificate. */
    assert_int_equal(cfg->listeners[0].tls, CONFIG_TLS_NONE);
    assert_false(cfg->listeners[0].require_tls);
    assert_int_equal(cfg->tls.n_certificates, 0);
    assert_null(cfg->tls.certificates);
    assert_string_equal(cfg->tls.min_version, CONFIG_DEF_TLS_MIN_VERSION);
    assert_string_equal(cfg->tls.ciphers, CONFIG_DEF_TLS_CIPHERS);
    assert_null(cfg->tls.ciphersuites);
    assert_null(cfg->tls.groups);
    assert_false(cfg->tls.request_client_cert);
    assert_int_equal(cfg->tls.handshake_timeout_ms, CONFIG_DEF_TLS_HANDSHAKE_TIMEOUT_MS);

    /* No routing: every recipient to every endpoint, no delimiter, no check, no warnings. */
    assert_null(cfg->recipient_delimiter);
    assert_false(cfg->one_route_per_transaction);
    assert_int_equal(cfg->n_warnings, 0);
    assert_null(cfg->warnings);
    assert_false(cfg->recipient_check.enabled);
    assert_null(cfg->recipient_check.http.url);
    config_free(cfg);
    config_free(NULL);
}

static void test_full_values(void **state)
{
    (void)state;
    struct config *cfg = load_ok(
        "{\"hostname\":\"mx.test.example\",\"log_level\":\"debug\","
        "\"listeners\":[{\"address\":\"127.0.0.1:25\"},{\"address\":\"[::1]:2526\"}],"
        "\"domains\":[\"a.example\",\"b.example\"],"
        "\"endpoints\":{\"one\":{\"url\":\"https://one.example/in\",\"timeout_ms\":5000,"
        "\"connect_timeout_ms\":5000,\"headers\":{\"Authorization\":\"Bearer "
        "x\",\"X-Env\":\"a\\tb\"}},"
        "\"two-2_b\":{\"url\":\"HTTP://two.example:8080/\"}},"
        "\"limits\":{\"max_recipients\":500},\"spool\":{\"memory_bytes\":0,\"directory\":\"/\"}}");
    assert_string_equal(cfg->hostname, "mx.test.example");
    assert_int_equal(cfg->log_level, LOG_LEVEL_DEBUG);
    assert_int_equal(cfg->n_listeners, 2);
    assert_int_equal(cfg->listeners[1].addr.ss_family, AF_INET6);
    assert_int_equal(cfg->n_domains, 2);
    assert_string_equal(cfg->domains[1], "b.example");
    assert_int_equal(cfg->n_endpoints, 2);
    assert_string_equal(cfg->endpoints[0].name, "one"); /* file order is kept */
    assert_string_equal(cfg->endpoints[1].name, "two-2_b");
    assert_int_equal(cfg->endpoints[0].timeout_ms, 5000);
    assert_int_equal(cfg->endpoints[0].connect_timeout_ms, 5000);
    assert_int_equal(cfg->endpoints[0].n_headers, 2);
    assert_string_equal(cfg->endpoints[0].headers[0].name, "Authorization");
    assert_string_equal(cfg->endpoints[0].headers[0].value, "Bearer x");
    assert_string_equal(cfg->endpoints[0].headers[1].value, "a\tb");
    assert_int_equal(cfg->limits.max_recipients, 500);
    assert_int_equal(cfg->limits.max_errors, CONFIG_DEF_MAX_ERRORS);
    assert_int_equal(cfg->spool.memory_bytes, 0);
    assert_string_equal(cfg->spool.directory, "/");
    config_free(cfg);
}

/* ---- integer ranges ---------------------------------------------------------------------- */

struct int_case {
    const char *section; /* "limits", "spool", "tls", "endpoints.app", "endpoints.app.retry"... */
    const char *key;     /* key inside it */
    long long min;       /* documented range */
    long long max;
    long long def; /* default from config.h */
};

/* The ranges of the brief, written out again on purpose: the test checks config.c's table. */
static const struct int_case int_cases[] = {
    {"limits", "max_command_line_bytes", 512, 65536, CONFIG_DEF_MAX_COMMAND_LINE_BYTES},
    {"limits", "max_recipients", 100, 10000, CONFIG_DEF_MAX_RECIPIENTS},
    {"limits", "max_message_bytes", 65536, 1099511627776LL, CONFIG_DEF_MAX_MESSAGE_BYTES},
    {"limits", "idle_timeout_ms", 1000, 3600000, CONFIG_DEF_IDLE_TIMEOUT_MS},
    {"limits", "max_errors", 1, 1000, CONFIG_DEF_MAX_ERRORS},
    {"limits", "max_connections", 1, 1000000, CONFIG_DEF_MAX_CONNECTIONS},
    {"limits", "max_connections_per_client", 1, 1000000, CONFIG_DEF_MAX_CONNECTIONS_PER_CLIENT},
    {"limits", "transaction_timeout_ms", 1000, 590000, CONFIG_DEF_TRANSACTION_TIMEOUT_MS},
    {"limits", "shutdown_timeout_ms", 0, 3600000, CONFIG_DEF_SHUTDOWN_TIMEOUT_MS},
    {"spool", "memory_bytes", 0, 1073741824, CONFIG_DEF_SPOOL_MEMORY_BYTES},
    {"endpoints.app", "timeout_ms", 100, 590000, CONFIG_DEF_ENDPOINT_TIMEOUT_MS},
    {"endpoints.app", "connect_timeout_ms", 100, 590000, CONFIG_DEF_ENDPOINT_CONNECT_MS},
    {"tls", "handshake_timeout_ms", 1000, 300000, CONFIG_DEF_TLS_HANDSHAKE_TIMEOUT_MS},
    {"endpoints.app.retry", "max_attempts", 1, 10, CONFIG_DEF_RETRY_MAX_ATTEMPTS},
    {"endpoints.app.retry", "initial_backoff_ms", 10, 590000, CONFIG_DEF_RETRY_INITIAL_BACKOFF_MS},
    {"endpoints.app.retry", "max_backoff_ms", 10, 590000, CONFIG_DEF_RETRY_MAX_BACKOFF_MS},
    {"endpoints.app.breaker", "failures", 0, 1000, CONFIG_DEF_BREAKER_FAILURES},
    {"endpoints.app.breaker", "cooldown_ms", 1000, 3600000, CONFIG_DEF_BREAKER_COOLDOWN_MS},
    {"recipient_check", "timeout_ms", 100, 60000, CONFIG_DEF_CHECK_TIMEOUT_MS},
    {"recipient_check", "connect_timeout_ms", 100, 60000, CONFIG_DEF_CHECK_CONNECT_MS},
    {"recipient_check", "cache_ms", 0, 86400000, CONFIG_DEF_CHECK_CACHE_MS},
};

/* int_value - the loaded value of a case's key. */
static uint64_t int_value(const struct config *cfg, const struct int_case *c)
{
    const struct config_limits *l = &cfg->limits;
    const struct config_endpoint *e = &cfg->endpoints[0];
    const char *k = c->key;
    if (strcmp(c->section, "endpoints.app.retry") == 0) {
        if (strcmp(k, "max_attempts") == 0)
            return e->retry.max_attempts;
        if (strcmp(k, "initial_backoff_ms") == 0)
            return e->retry.initial_backoff_ms;
        if (strcmp(k, "max_backoff_ms") == 0)
            return e->retry.max_backoff_ms;
    }
    if (strcmp(c->section, "recipient_check") == 0) {
        const struct config_recipient_check *rc = &cfg->recipient_check;
        assert_true(rc->enabled);
        if (strcmp(k, "timeout_ms") == 0)
            return rc->http.timeout_ms;
        if (strcmp(k, "connect_timeout_ms") == 0)
            return rc->http.connect_timeout_ms;
        if (strcmp(k, "cache_ms") == 0)
            return rc->cache_ms;
    }
    if (strcmp(c->section, "endpoints.app.breaker") == 0) {
        if (strcmp(k, "failures") == 0)
            return e->breaker.failures;
        if (strcmp(k, "cooldown_ms") == 0)
            return e->breaker.cooldown_ms;
    }
    if (strcmp(k, "max_command_line_bytes") == 0)
        return l->max_command_line_bytes;
    if (strcmp(k, "max_recipients") == 0)
        return l->max_recipients;
    if (strcmp(k, "max_message_bytes") == 0)
        return l->max_message_bytes;
    if (strcmp(k, "idle_timeout_ms") == 0)
        return l->idle_timeout_ms;
    if (strcmp(k, "max_errors") == 0)
        return l->max_errors;
    if (strcmp(k, "max_connections") == 0)
        return l->max_connections;
    if (strcmp(k, "max_connections_per_client") == 0)
        return l->max_connections_per_client;
    if (strcmp(k, "transaction_timeout_ms") == 0)
        return l->transaction_timeout_ms;
    if (strcmp(k, "shutdown_timeout_ms") == 0)
        return l->shutdown_timeout_ms;
    if (strcmp(k, "memory_bytes") == 0)
        return cfg->spool.memory_bytes;
    if (strcmp(k, "timeout_ms") == 0)
        return cfg->endpoints[0].timeout_ms;
    if (strcmp(k, "connect_timeout_ms") == 0)
        return cfg->endpoints[0].connect_timeout_ms;
    if (strcmp(k, "handshake_timeout_ms") == 0)
        return cfg->tls.handshake_timeout_ms;
    fail_msg("no such key %s", k);
    return 0;
}

/* int_json - a valid config with "<key>": <raw> in the case's section. The endpoint's
 * other timeout is set so that connect <= total holds for every in-range value. */
static const char *int_json(char *buf, size_t len, const struct int_case *c, const char *raw)
{
    if (strncmp(c->section, "endpoints.app.", 14) == 0) {
        /* retry's backoffs bound each other like the endpoint's timeouts. */
        const char *other = strcmp(c->key, "initial_backoff_ms") == 0 ? "\"max_backoff_ms\":590000,"
                            : strcmp(c->key, "max_backoff_ms") == 0   ? "\"initial_backoff_ms\":10,"
                                                                      : "";
        snprintf(buf, len,
                 "{" LISTEN_KEY "," DOMAIN_KEY ",\"endpoints\":{\"app\":{\"url\":\"http://h/\","
                 "\"%s\":{%s\"%s\":%s}}}}",
                 c->section + 14, other, c->key, raw);
    } else if (strcmp(c->section, "recipient_check") == 0) {
        const char *other = strcmp(c->key, "timeout_ms") == 0 ? "\"connect_timeout_ms\":100,"
                            : strcmp(c->key, "connect_timeout_ms") == 0 ? "\"timeout_ms\":60000,"
                                                                        : "";
        snprintf(buf, len, "{" BASE ",\"recipient_check\":{\"url\":\"http://h/\",%s\"%s\":%s}}",
                 other, c->key, raw);
    } else if (strcmp(c->section, "endpoints.app") == 0) {
        const char *other = strcmp(c->key, "timeout_ms") == 0 ? "\"connect_timeout_ms\":100"
                                                              : "\"timeout_ms\":590000";
        snprintf(buf, len,
                 "{" LISTEN_KEY "," DOMAIN_KEY ",\"endpoints\":{\"app\":{\"url\":\"http://h/\","
                 "%s,\"%s\":%s}}}",
                 other, c->key, raw);
    } else {
        snprintf(buf, len, "{" BASE ",\"%s\":{\"%s\":%s}}", c->section, c->key, raw);
    }
    return buf;
}

static void test_int_ranges(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(int_cases) / sizeof(int_cases[0]); i++) {
        const struct int_case *c = &int_cases[i];
        char json[JSON_MAX], raw[64], path[128], msg[256];
        snprintf(path, sizeof(path), "%s.%s", c->section, c->key);
        snprintf(msg, sizeof(msg), "config.json: %s: must be an integer from %lld to %lld", path,
                 c->min, c->max);

        const long long good[] = {c->min, c->max, c->def};
        for (size_t g = 0; g < 3; g++) {
            snprintf(raw, sizeof(raw), "%lld", good[g]);
            struct config *cfg = load_ok(int_json(json, sizeof(json), c, raw));
            assert_int_equal(int_value(cfg, c), (uint64_t)good[g]);
            config_free(cfg);
        }
        const long long bad[] = {c->min - 1, c->max + 1, -1};
        for (size_t b = 0; b < 3; b++) {
            snprintf(raw, sizeof(raw), "%lld", bad[b]);
            load_err(int_json(json, sizeof(json), c, raw), msg, NULL);
        }
        /* Wrong JSON types: reals, strings, booleans, null, arrays are not integers. */
        const char *wrong[] = {"1000.0", "\"1000\"", "true", "null", "[1000]", "1e3"};
        for (size_t w = 0; w < sizeof(wrong) / sizeof(wrong[0]); w++)
            load_err(int_json(json, sizeof(json), c, wrong[w]), msg, NULL);
    }
}

static void test_exact_message(void **state)
{
    (void)state;
    char err[ERR_MAX];
    struct config *cfg = NULL;
    assert_int_equal(config_load_string("{" BASE ",\"limits\":{\"max_recipients\":99}}",
                                        "config.json", NULL, &cfg, err, sizeof(err)),
                     SH_ECONFIG);
    assert_string_equal(err, "config.json: limits.max_recipients: must be an integer from 100 to "
                             "10000");

    /* A small buffer truncates, never overflows; a NULL buffer is allowed. */
    char small[12];
    assert_int_equal(config_load_string("{" BASE ",\"limits\":{\"max_recipients\":99}}",
                                        "config.json", NULL, &cfg, small, sizeof(small)),
                     SH_ECONFIG);
    assert_string_equal(small, "config.json");
    assert_int_equal(config_load_string("{", "config.json", NULL, &cfg, NULL, 0), SH_ECONFIG);
    assert_null(cfg);
}

/* test_proxy_protocol - a listener's PROXY protocol keys: off by default, the trusted
 * proxies required with it and refused without it, networks checked. */
static void test_proxy_protocol(void **state)
{
    (void)state;
    struct config *cfg = load_ok("{" BASE "}");
    assert_int_equal(cfg->listeners[0].proxy, CONFIG_PROXY_NONE);
    assert_int_equal(cfg->listeners[0].proxy_timeout_ms, CONFIG_DEF_PROXY_TIMEOUT_MS);
    config_free(cfg);
#define PROXY_LISTENER(extra) "\"listeners\":[{\"address\":\"127.0.0.1:2525\"," extra "}]"
    cfg = load_ok("{" PROXY_LISTENER(
        "\"proxy_protocol\":\"v2\",\"trusted_proxies\":"
        "[\"10.0.0.0/8\",\"::1\"],\"proxy_timeout_ms\":1000") "," DOMAIN_KEY "," EP_KEY "}");
    assert_int_equal(cfg->listeners[0].proxy, CONFIG_PROXY_V2);
    assert_int_equal(cfg->listeners[0].n_trusted_proxies, 2);
    assert_int_equal(cfg->listeners[0].trusted_proxies[1].prefix, 128);
    assert_int_equal(cfg->listeners[0].proxy_timeout_ms, 1000);
    config_free(cfg);
    load_err("{" PROXY_LISTENER("\"proxy_protocol\":\"any\"") "," DOMAIN_KEY "," EP_KEY "}",
             "listeners[0].trusted_proxies: is required with \"proxy_protocol\"", NULL);
    load_err("{" PROXY_LISTENER("\"trusted_proxies\":[\"10.0.0.0/8\"]") "," DOMAIN_KEY "," EP_KEY
                                                                        "}",
             "listeners[0].trusted_proxies: has no effect without \"proxy_protocol\"", NULL);
    load_err("{" PROXY_LISTENER("\"proxy_protocol\":\"v1\",\"trusted_proxies\":"
                                "[\"10.0.0.1/8\"]") "," DOMAIN_KEY "," EP_KEY "}",
             "listeners[0].trusted_proxies[0]: \"10.0.0.1/8\" has bits set past its prefix", NULL);
    load_err("{" PROXY_LISTENER("\"proxy_protocol\":\"v3\"") "," DOMAIN_KEY "," EP_KEY "}",
             "listeners[0].proxy_protocol", NULL);
#undef PROXY_LISTENER
}

static void test_connect_exceeds_total(void **state)
{
    (void)state;
    load_err("{" LISTEN_KEY "," DOMAIN_KEY ",\"endpoints\":{\"app\":{\"url\":\"http://h/\","
             "\"timeout_ms\":1000,\"connect_timeout_ms\":1001}}}",
             "endpoints.app.connect_timeout_ms: must not be greater than timeout_ms (1000)", NULL);
    /* Default total (60000) against a larger connect timeout. */
    load_err("{" LISTEN_KEY "," DOMAIN_KEY ",\"endpoints\":{\"app\":{\"url\":\"http://h/\","
             "\"connect_timeout_ms\":60001}}}",
             "endpoints.app.connect_timeout_ms", NULL);
}

/* A short timeout_ms without connect_timeout_ms shrinks the default connect timeout. */
static void test_connect_default_fits_total(void **state)
{
    (void)state;
    struct config *cfg = load_ok("{" LISTEN_KEY "," DOMAIN_KEY ",\"endpoints\":{\"app\":{"
                                 "\"url\":\"http://h/\",\"timeout_ms\":500}}}");
    assert_int_equal(cfg->endpoints[0].timeout_ms, 500);
    assert_int_equal(cfg->endpoints[0].connect_timeout_ms, 500);
    config_free(cfg);
}

/* retry and breaker: nested objects of an endpoint, each key optional. */
static void test_retry_breaker(void **state)
{
    (void)state;
    char j[JSON_MAX];
    struct config *cfg = load_ok(ep_json(j, sizeof(j),
                                         "\"url\":\"http://h/\",\"retry\":{\"max_attempts\":1,"
                                         "\"initial_backoff_ms\":250,\"max_backoff_ms\":250},"
                                         "\"breaker\":{\"failures\":0,\"cooldown_ms\":1000}"));
    assert_int_equal(cfg->endpoints[0].retry.max_attempts, 1);
    assert_int_equal(cfg->endpoints[0].retry.initial_backoff_ms, 250);
    assert_int_equal(cfg->endpoints[0].retry.max_backoff_ms, 250);
    assert_int_equal(cfg->endpoints[0].breaker.failures, 0); /* never opens */
    assert_int_equal(cfg->endpoints[0].breaker.cooldown_ms, 1000);
    config_free(cfg);

    /* Empty objects keep every default. */
    cfg = load_ok(ep_json(j, sizeof(j), "\"url\":\"http://h/\",\"retry\":{},\"breaker\":{}"));
    assert_int_equal(cfg->endpoints[0].retry.max_attempts, CONFIG_DEF_RETRY_MAX_ATTEMPTS);
    assert_int_equal(cfg->endpoints[0].breaker.cooldown_ms, CONFIG_DEF_BREAKER_COOLDOWN_MS);
    config_free(cfg);

    /* The default max_backoff_ms grows to a longer initial_backoff_ms; a given one must not
     * be shorter, whether the initial wait is given or the default. */
    cfg = load_ok(
        ep_json(j, sizeof(j), "\"url\":\"http://h/\",\"retry\":{\"initial_backoff_ms\":20000}"));
    assert_int_equal(cfg->endpoints[0].retry.initial_backoff_ms, 20000);
    assert_int_equal(cfg->endpoints[0].retry.max_backoff_ms, 20000);
    config_free(cfg);
    load_err_exact(ep_json(j, sizeof(j),
                           "\"url\":\"http://h/\",\"retry\":{\"initial_backoff_ms\":2000,"
                           "\"max_backoff_ms\":1999}"),
                   "config.json: endpoints.app.retry.max_backoff_ms: must not be less than "
                   "initial_backoff_ms (2000)");
    load_err_exact(
        ep_json(j, sizeof(j), "\"url\":\"http://h/\",\"retry\":{\"max_backoff_ms\":999}"),
        "config.json: endpoints.app.retry.max_backoff_ms: must not be less than "
        "initial_backoff_ms (1000)");

    const struct {
        const char *body;    /* the endpoint object's keys */
        const char *message; /* exactly */
    } bad[] = {
        {"\"url\":\"http://h/\",\"retry\":3",
         "config.json: endpoints.app.retry: must be an object"},
        {"\"url\":\"http://h/\",\"breaker\":[]",
         "config.json: endpoints.app.breaker: must be an object"},
        {"\"url\":\"http://h/\",\"retry\":{\"attempts\":2}",
         "config.json: endpoints.app.retry.attempts: unknown key"},
        {"\"url\":\"http://h/\",\"breaker\":{\"cooldown\":1}",
         "config.json: endpoints.app.breaker.cooldown: unknown key"},
        {"\"url\":\"http://h/\",\"retry\":{\"max_attempts\":0}",
         "config.json: endpoints.app.retry.max_attempts: must be an integer from 1 to 10"},
        {"\"url\":\"http://h/\",\"breaker\":{\"failures\":true}",
         "config.json: endpoints.app.breaker.failures: must be an integer from 0 to 1000"},
        {"\"url\":\"http://h/\",\"max_attempts\":2",
         "config.json: endpoints.app.max_attempts: unknown key"}, /* belongs in "retry" */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        load_err_exact(ep_json(j, sizeof(j), bad[i].body), bad[i].message);

    /* --webhook's endpoint has the defaults. */
    struct config_overrides ov = {.webhook = "http://127.0.0.1:9/x"};
    char err[ERR_MAX];
    assert_int_equal(load("{" BASE "}", &ov, &cfg, err), 0);
    assert_int_equal(cfg->endpoints[0].retry.max_attempts, CONFIG_DEF_RETRY_MAX_ATTEMPTS);
    assert_int_equal(cfg->endpoints[0].retry.max_backoff_ms, CONFIG_DEF_RETRY_MAX_BACKOFF_MS);
    assert_int_equal(cfg->endpoints[0].breaker.failures, CONFIG_DEF_BREAKER_FAILURES);
    assert_int_equal(cfg->endpoints[0].breaker.cooldown_ms, CONFIG_DEF_BREAKER_COOLDOWN_MS);
    config_free(cfg);
}

/* reply_map: HTTP status -> SMTP reply, stored in status order. */
static void test_reply_map(void **state)
{
    (void)state;
    char j[JSON_MAX];
    setenv("CFG_TEST_REPLY", "Not allowed here", 1);
    struct config *cfg =
        load_ok(ep_json(j, sizeof(j),
                        "\"url\":\"http://h/\",\"reply_map\":{\"409\":\"250\","
                        "\"403\":\"550 5.7.1 ${CFG_TEST_REPLY}\",\"599\":\" 451 4.3.0 \","
                        "\"100\":\"550 5.6.0\",\"404\":\"550\"}"));
    const struct config_endpoint *e = &cfg->endpoints[0];
    assert_int_equal(e->n_reply_map, 5);
    const unsigned order[] = {100, 403, 404, 409, 599};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(e->reply_map[i].status, order[i]);
    assert_int_equal(e->reply_map[0].reply.code, 550);
    assert_string_equal(e->reply_map[0].reply.esc, "5.6.0");
    assert_string_equal(e->reply_map[0].reply.text, "");
    assert_int_equal(e->reply_map[1].reply.code, 550);
    assert_string_equal(e->reply_map[1].reply.esc, "5.7.1");
    assert_string_equal(e->reply_map[1].reply.text, "Not allowed here"); /* expanded */
    assert_int_equal(e->reply_map[2].reply.code, 550);
    assert_string_equal(e->reply_map[2].reply.esc, ""); /* the code's default one */
    assert_int_equal(e->reply_map[3].reply.code, 250);
    assert_int_equal(e->reply_map[4].reply.code, 451);
    assert_string_equal(e->reply_map[4].reply.esc, "4.3.0");
    config_free(cfg);

    cfg = load_ok(ep_json(j, sizeof(j), "\"url\":\"http://h/\",\"reply_map\":{}"));
    assert_int_equal(cfg->endpoints[0].n_reply_map, 0);
    config_free(cfg);

    /* Keys: three digits, 100 to 599. */
    const char *statuses[] = {"99", "099", "600", "4xx", "+409", "409 ", "4090", "", "1e2"};
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        char body[256], want[256];
        snprintf(body, sizeof(body), "\"url\":\"http://h/\",\"reply_map\":{\"%s\":\"250\"}",
                 statuses[i]);
        snprintf(want, sizeof(want),
                 "config.json: endpoints.app.reply_map.%s: must be an HTTP status from 100 to 599",
                 statuses[i][0] != '\0' ? statuses[i] : "\"\"");
        load_err_exact(ep_json(j, sizeof(j), body), want);
    }

    /* Values: app_reply_parse's reason, naming the key. */
    const struct {
        const char *value;   /* JSON of the value */
        const char *message; /* exactly */
    } bad[] = {
        {"\"421\"", "config.json: endpoints.app.reply_map.409: \"421\" is not an SMTP reply: 421 "
                    "is refused: it announces a close that does not happen"},
        {"\"550 no such user\"", "config.json: endpoints.app.reply_map.409: \"550 no such user\" "
                                 "is not an SMTP reply: an enhanced status code (like 5.1.1) must "
                                 "follow the reply code"},
        {"\"550 4.7.1\"", "config.json: endpoints.app.reply_map.409: \"550 4.7.1\" is not an SMTP "
                          "reply: enhanced code class does not match the reply code"},
        {"\"354\"", "config.json: endpoints.app.reply_map.409: \"354\" is not an SMTP reply: the "
                    "reply code must be 250, 4yz or 5yz"},
        {"\"\"",
         "config.json: endpoints.app.reply_map.409: \"\" is not an SMTP reply: the value is "
         "empty"},
        {"550", "config.json: endpoints.app.reply_map.409: must be a string"},
        {"\"${CFG_TEST_UNSET}\"",
         "config.json: endpoints.app.reply_map.409: environment variable CFG_TEST_UNSET is not "
         "set"},
    };
    unsetenv("CFG_TEST_UNSET");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char body[256];
        snprintf(body, sizeof(body), "\"url\":\"http://h/\",\"reply_map\":{\"409\":%s}",
                 bad[i].value);
        load_err_exact(ep_json(j, sizeof(j), body), bad[i].message);
    }
    load_err_exact(ep_json(j, sizeof(j), "\"url\":\"http://h/\",\"reply_map\":[\"409\"]"),
                   "config.json: endpoints.app.reply_map: must be an object of HTTP statuses to "
                   "SMTP replies, like {\"409\": \"250\"}");
    /* A status given twice is refused by the JSON parser already. */
    load_err(ep_json(j, sizeof(j),
                     "\"url\":\"http://h/\",\"reply_map\":{\"409\":\"250\",\"409\":\"550\"}"),
             "config.json: line 1", "duplicate");
}

/* recipient_delimiter: 1 to 8 distinct characters that can start an address extension. */
static void test_recipient_delimiter(void **state)
{
    (void)state;
    char j[JSON_MAX], extra[128];
    const char *good[] = {"+", "-", "+-", "._=", "~|{}", "!#$%&'*+", "/?^_`"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        snprintf(extra, sizeof(extra), "\"recipient_delimiter\":\"%s\"", good[i]);
        struct config *cfg = load_ok(with_key(j, sizeof(j), extra));
        assert_string_equal(cfg->recipient_delimiter, good[i]);
        assert_int_equal(cfg->n_warnings, 0);
        config_free(cfg);
    }
    const struct {
        const char *value;   /* JSON of the value */
        const char *problem; /* after "config.json: recipient_delimiter: " */
    } bad[] = {
        {"\"\"", "must not be empty (leave the key out for the default)"},
        {"\"+-=~!#$%&\"", "must be at most 8 characters"},
        {"\"@\"", "may contain only the characters !#$%&'*+-./=?^_`{|}~"},
        {"\"\\\"\"", "may contain only the characters"}, /* '"' */
        {"\"\\\\\"", "may contain only the characters"}, /* '\\' */
        {"\" \"", "may contain only the characters"},
        {"\"a\"", "may contain only the characters"},
        {"\"+7\"", "may contain only the characters"},
        {"\"(\"", "may contain only the characters"},
        {"\",\"", "may contain only the characters"},
        {"\"+\\u00e9\"", "may contain only the characters"},
        {"\"++\"", "must not repeat a character"},
        {"\"+-+\"", "must not repeat a character"},
        {"43", "must be a string"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char want[256];
        snprintf(extra, sizeof(extra), "\"recipient_delimiter\":%s", bad[i].value);
        snprintf(want, sizeof(want), "config.json: recipient_delimiter: %s", bad[i].problem);
        load_err(with_key(j, sizeof(j), extra), want, NULL);
    }
}

/* one_route_per_transaction: only meaningful with routes, so without them a warning. */
static void test_one_route_per_transaction(void **state)
{
    (void)state;
    char j[JSON_MAX];
    struct config *cfg = load_ok(with_key(j, sizeof(j), "\"one_route_per_transaction\":true"));
    assert_true(cfg->one_route_per_transaction);
    assert_int_equal(cfg->n_warnings, 1);
    assert_string_equal(cfg->warnings[0],
                        "config.json: one_route_per_transaction: has no effect without routes");
    config_free(cfg);
    cfg = load_ok(with_key(j, sizeof(j), "\"one_route_per_transaction\":false"));
    assert_false(cfg->one_route_per_transaction);
    assert_int_equal(cfg->n_warnings, 0);
    config_free(cfg);
    load_err_exact(with_key(j, sizeof(j), "\"one_route_per_transaction\":1"),
                   "config.json: one_route_per_transaction: must be true or false");
}

/* recipient_check: the request keys of an endpoint (parsed by the same rows) plus its own. */
static void test_recipient_check(void **state)
{
    (void)state;
    char j[JSON_MAX];
    struct config *cfg = load_ok(
        with_key(j, sizeof(j), "\"recipient_check\":{\"url\":\"http://127.0.0.1:9/check\"}"));
    const struct config_recipient_check *rc = &cfg->recipient_check;
    assert_true(rc->enabled);
    assert_string_equal(rc->http.name, "recipient_check");
    assert_string_equal(rc->http.url, "http://127.0.0.1:9/check");
    assert_int_equal(rc->http.timeout_ms, CONFIG_DEF_CHECK_TIMEOUT_MS);
    assert_int_equal(rc->http.connect_timeout_ms, CONFIG_DEF_CHECK_CONNECT_MS);
    assert_int_equal(rc->http.n_headers, 0);
    assert_null(rc->http.ca_file);
    assert_int_equal(rc->http.retry.max_attempts, 1); /* no retry */
    assert_int_equal(rc->http.breaker.failures, 0);   /* no breaker */
    assert_int_equal(rc->http.n_reply_map, 0);
    assert_int_equal(rc->cache_ms, CONFIG_DEF_CHECK_CACHE_MS);
    assert_false(rc->accept_on_failure);                /* "defer" */
    assert_string_equal(cfg->endpoints[0].name, "app"); /* the endpoints are untouched */
    assert_int_equal(cfg->n_endpoints, 1);
    config_free(cfg);

    setenv("CFG_TEST_TOKEN", "s3cret", 1);
    cfg = load_ok(with_key(j, sizeof(j),
                           "\"recipient_check\":{\"url\":\"https://check.example/rcpt\","
                           "\"timeout_ms\":1000,\"headers\":{\"Authorization\":\"Bearer "
                           "${CFG_TEST_TOKEN}\"},\"ca_file\":\"ca.pem\",\"client_cert\":\"c.pem\","
                           "\"client_key\":\"c.key\",\"cache_ms\":0,\"on_failure\":\"accept\"}"));
    rc = &cfg->recipient_check;
    assert_int_equal(rc->http.timeout_ms, 1000);
    assert_int_equal(rc->http.connect_timeout_ms, 1000); /* the default shrank to fit */
    assert_int_equal(rc->http.n_headers, 1);
    assert_string_equal(rc->http.headers[0].value, "Bearer s3cret");
    assert_string_equal(rc->http.ca_file, "ca.pem");
    assert_string_equal(rc->http.client_cert, "c.pem");
    assert_string_equal(rc->http.client_key, "c.key");
    assert_int_equal(rc->cache_ms, 0);
    assert_true(rc->accept_on_failure);
    config_free(cfg);
    cfg = load_ok(with_key(j, sizeof(j),
                           "\"recipient_check\":{\"url\":\"http://h/\",\"on_failure\":\"defer\"}"));
    assert_false(cfg->recipient_check.accept_on_failure);
    config_free(cfg);

    const struct {
        const char *check;   /* the recipient_check object */
        const char *message; /* exactly */
    } bad[] = {
        {"[]", "config.json: recipient_check: must be an object"},
        {"{}", "config.json: recipient_check.url: is required"},
        {"{\"url\":\"ftp://h/\"}",
         "config.json: recipient_check.url: must start with http:// or https://"},
        {"{\"url\":\"http://h/\",\"timeout_ms\":1000,\"connect_timeout_ms\":1001}",
         "config.json: recipient_check.connect_timeout_ms: must not be greater than timeout_ms "
         "(1000)"},
        {"{\"url\":\"http://h/\",\"connect_timeout_ms\":5001}",
         "config.json: recipient_check.connect_timeout_ms: must not be greater than timeout_ms "
         "(5000)"},
        {"{\"url\":\"http://h/\",\"timeout_ms\":60001}",
         "config.json: recipient_check.timeout_ms: must be an integer from 100 to 60000"},
        {"{\"url\":\"http://h/\",\"on_failure\":\"reject\"}",
         "config.json: recipient_check.on_failure: must be \"defer\" or \"accept\""},
        {"{\"url\":\"http://h/\",\"on_failure\":true}",
         "config.json: recipient_check.on_failure: must be a string"},
        {"{\"url\":\"http://h/\",\"ca_file\":\"ca.pem\"}",
         "config.json: recipient_check.ca_file: applies to https:// URLs only"},
        {"{\"url\":\"https://h/\",\"client_cert\":\"c.pem\"}",
         "config.json: recipient_check.client_key: is required with client_cert (give both or "
         "neither)"},
        {"{\"url\":\"http://h/\",\"headers\":{\"Host\":\"x\"}}",
         "config.json: recipient_check.headers.Host: header is set by smtphook and cannot be "
         "configured"},
        {"{\"url\":\"http://h/\",\"retry\":{}}", "config.json: recipient_check.retry: unknown key"},
        {"{\"url\":\"http://h/\",\"breaker\":{}}",
         "config.json: recipient_check.breaker: unknown key"},
        {"{\"url\":\"http://h/\",\"reply_map\":{}}",
         "config.json: recipient_check.reply_map: unknown key"},
        {"{\"url\":\"http://h/\",\"cache\":1}", "config.json: recipient_check.cache: unknown key"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char extra[512];
        snprintf(extra, sizeof(extra), "\"recipient_check\":%s", bad[i].check);
        load_err_exact(with_key(j, sizeof(j), extra), bad[i].message);
    }
}

/* ---- types and unknown keys -------------------------------------------------------------- */

static void test_wrong_types(void **state)
{
    (void)state;
    char j[JSON_MAX];
    load_err(with_key(j, sizeof(j), "\"hostname\":5"), "config.json: hostname: must be a string",
             NULL);
    load_err(with_key(j, sizeof(j), "\"log_level\":2"), "log_level: must be a string", NULL);
    load_err(with_key(j, sizeof(j), "\"limits\":[]"), "limits: must be an object", NULL);
    load_err(with_key(j, sizeof(j), "\"spool\":\"/tmp\""), "spool: must be an object", NULL);
    load_err(with_key(j, sizeof(j), "\"spool\":{\"directory\":1}"),
             "spool.directory: must be a string", NULL);
    load_err("{\"listeners\":{\"address\":\"127.0.0.1:25\"}," DOMAIN_KEY "," EP_KEY "}",
             "listeners: must be an array", NULL);
    load_err("{\"listeners\":[\"127.0.0.1:25\"]," DOMAIN_KEY "," EP_KEY "}",
             "listeners[0]: must be an object", NULL);
    load_err("{\"listeners\":[{\"address\":2525}]," DOMAIN_KEY "," EP_KEY "}",
             "listeners[0].address: must be a string", NULL);
    load_err("{" LISTEN_KEY ",\"domains\":\"example.com\"," EP_KEY "}", "domains: must be an array",
             NULL);
    load_err("{" LISTEN_KEY ",\"domains\":[\"a.example\",7]," EP_KEY "}",
             "domains[1]: must be a string", NULL);
    load_err("{" LISTEN_KEY "," DOMAIN_KEY ",\"endpoints\":[{\"url\":\"http://h/\"}]}",
             "endpoints: must be an object", NULL);
    load_err("{" LISTEN_KEY "," DOMAIN_KEY ",\"endpoints\":{\"app\":\"http://h/\"}}",
             "endpoints.app: must be an object", NULL);
    load_err("{" LISTEN_KEY "," DOMAIN_KEY ",\"endpoints\":{\"app\":{\"url\":1}}}",
             "endpoints.app.url: must be a string", NULL);
    load_err("{" LISTEN_KEY "," DOMAIN_KEY
             ",\"endpoints\":{\"app\":{\"url\":\"http://h/\",\"headers\":[]}}}",
             "endpoints.app.headers: must be an object", NULL);
    load_err("{" LISTEN_KEY "," DOMAIN_KEY
             ",\"endpoints\":{\"app\":{\"url\":\"http://h/\",\"headers\":{\"X-A\":1}}}}",
             "endpoints.app.headers.X-A: must be a string", NULL);
    load_err("[]", "config.json: the top level must be a JSON object", NULL);
}

static void test_unknown_keys(void **state)
{
    (void)state;
    char j[JSON_MAX];
    load_err(with_key(j, sizeof(j), "\"listner\":[]"), "config.json: listner: unknown key", NULL);
    load_err(with_key(j, sizeof(j), "\"limits\":{\"max_recipient\":100}"),
             "limits.max_recipient: unknown key", NULL);
    load_err(with_key(j, sizeof(j), "\"spool\":{\"dir\":\"/tmp\"}"), "spool.dir: unknown key",
             NULL);
    load_err("{\"listeners\":[{\"address\":\"127.0.0.1:25\"},{\"address\":\"127.0.0.1:26\","
             "\"starttls\":true}]," DOMAIN_KEY "," EP_KEY "}",
             "listeners[1].starttls: unknown key", NULL);
    load_err(with_key(j, sizeof(j), "\"tls\":{\"min_verison\":\"TLSv1.3\"}"),
             "config.json: tls.min_verison: unknown key", NULL);
    load_err(
        with_key(j, sizeof(j),
                 "\"tls\":{\"certificates\":[{\"cert\":\"c\",\"key\":\"k\",\"chain\":\"x\"}]}"),
        "tls.certificates[0].chain: unknown key", NULL);
    load_err("{" LISTEN_KEY "," DOMAIN_KEY
             ",\"endpoints\":{\"app\":{\"url\":\"http://h/\",\"timeout\":5}}}",
             "endpoints.app.timeout: unknown key", NULL);
}

static void test_required_keys(void **state)
{
    (void)state;
    load_err("{" DOMAIN_KEY "," EP_KEY "}", "config.json: listeners: at least one listener", NULL);
    load_err("{" LISTEN_KEY "," DOMAIN_KEY "}", "config.json: endpoints: at least one endpoint",
             NULL);
    load_err("{" LISTEN_KEY "," EP_KEY "}", "config.json: domains: is required", NULL);
    load_err("{\"listeners\":[]," DOMAIN_KEY "," EP_KEY "}", "listeners: must list at least one",
             NULL);
    load_err("{\"listeners\":[{}]," DOMAIN_KEY "," EP_KEY "}", "listeners[0].address: is required",
             NULL);
    load_err("{" LISTEN_KEY ",\"domains\":[]," EP_KEY "}", "domains: must list at least one", NULL);
    load_err("{" LISTEN_KEY "," DOMAIN_KEY ",\"endpoints\":{}}",
             "endpoints: must name at least one endpoint", NULL);
    load_err("{" LISTEN_KEY "," DOMAIN_KEY ",\"endpoints\":{\"app\":{}}}",
             "endpoints.app.url: is required", NULL);
}

static void test_syntax_errors(void **state)
{
    (void)state;
    load_err("{\n  \"hostname\": \n}", "config.json: line 3, column 1:", NULL);
    load_err("{" BASE ",\"hostname\":\"a\",\"hostname\":\"b\"}", "config.json: line 1",
             "duplicate");
    load_err("", "config.json: line", NULL);
}

/* ---- scalar values ----------------------------------------------------------------------- */

static void test_hostname_and_log_level(void **state)
{
    (void)state;
    char j[JSON_MAX], name[300];
    load_err(with_key(j, sizeof(j), "\"hostname\":\"\""), "hostname: must not be empty", NULL);
    load_err(with_key(j, sizeof(j), "\"hostname\":\"mx example\""), "hostname: may contain only",
             NULL);
    load_err(with_key(j, sizeof(j), "\"hostname\":\"mx_1.example\""), "hostname: may contain only",
             NULL);
    memset(name, 'a', 255);
    name[255] = '\0';
    char extra[400];
    snprintf(extra, sizeof(extra), "\"hostname\":\"%s\"", name);
    struct config *cfg = load_ok(with_key(j, sizeof(j), extra));
    assert_int_equal(strlen(cfg->hostname), 255);
    config_free(cfg);
    snprintf(extra, sizeof(extra), "\"hostname\":\"%sa\"", name);
    load_err(with_key(j, sizeof(j), extra), "hostname: must be at most 255", NULL);

    const char *levels[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++) {
        snprintf(extra, sizeof(extra), "\"log_level\":\"%s\"", levels[i]);
        cfg = load_ok(with_key(j, sizeof(j), extra));
        assert_int_equal(cfg->log_level, i);
        config_free(cfg);
    }
    load_err(with_key(j, sizeof(j), "\"log_level\":\"verbose\""), "log_level: must be one of",
             NULL);
}

static void test_spool_directory(void **state)
{
    (void)state;
    char j[JSON_MAX];
    load_err(with_key(j, sizeof(j), "\"spool\":{\"directory\":\"/nonexistent-smtphook-dir\"}"),
             "config.json: spool.directory: \"/nonexistent-smtphook-dir\": No such file", NULL);

    char file[] = "/tmp/test_config_XXXXXX";
    int fd = mkstemp(file);
    assert_true(fd >= 0);
    close(fd);
    char extra[128];
    snprintf(extra, sizeof(extra), "\"spool\":{\"directory\":\"%s\"}", file);
    load_err(with_key(j, sizeof(j), extra), "spool.directory", "is not a directory");
    unlink(file);

    /* An empty directory is refused like every other optional string. */
    load_err_exact(with_key(j, sizeof(j), "\"spool\":{\"directory\":\"\"}"),
                   "config.json: spool.directory: must not be empty (leave the key out for the "
                   "default)");
}

/* ---- ${NAME} expansion ------------------------------------------------------------------- */

static void test_env_expansion(void **state)
{
    (void)state;
    setenv("CFG_TEST_TOKEN", "s3cret", 1);
    setenv("CFG_TEST_HOST", "hook.example", 1);
    setenv("CFG_TEST_PORT", "2626", 1);
    setenv("CFG_TEST_EMPTY", "", 1);
    setenv("CFG_TEST_DOMAIN", "Env.Example", 1);
    unsetenv("CFG_TEST_UNSET");

    struct config *cfg = load_ok(
        "{\"hostname\":\"mx.${CFG_TEST_HOST}\","
        "\"listeners\":[{\"address\":\"127.0.0.1:${CFG_TEST_PORT}\"}],"
        "\"domains\":[\"${CFG_TEST_DOMAIN}\"],"
        "\"endpoints\":{\"app\":{\"url\":\"https://${CFG_TEST_HOST}/in?a=$b&c=$$\","
        "\"headers\":{\"Authorization\":\"Bearer ${CFG_TEST_TOKEN}\","
        "\"X-Two\":\"${CFG_TEST_TOKEN}${CFG_TEST_TOKEN}\",\"X-Empty\":\"a${CFG_TEST_EMPTY}b\","
        "\"X-Dollar\":\"$ {x} $$ ${CFG_TEST_EMPTY}$\"}}}}");
    assert_string_equal(cfg->hostname, "mx.hook.example");
    assert_string_equal(cfg->listeners[0].address, "127.0.0.1:2626");
    assert_string_equal(cfg->domains[0], "env.example");
    assert_string_equal(cfg->endpoints[0].url, "https://hook.example/in?a=$b&c=$$");
    assert_string_equal(cfg->endpoints[0].headers[0].value, "Bearer s3cret");
    assert_string_equal(cfg->endpoints[0].headers[1].value, "s3crets3cret");
    assert_string_equal(cfg->endpoints[0].headers[2].value, "ab");
    assert_string_equal(cfg->endpoints[0].headers[3].value, "$ {x} $$ $");
    config_free(cfg);

    /* Keys are not expanded: "${X}" as a key is just an unknown key. */
    char j[JSON_MAX];
    load_err(with_key(j, sizeof(j), "\"${CFG_TEST_TOKEN}\":1"), "${CFG_TEST_TOKEN}: unknown key",
             NULL);
}

static void test_env_errors(void **state)
{
    (void)state;
    unsetenv("CFG_TEST_UNSET");
    load_err("{" LISTEN_KEY "," DOMAIN_KEY ",\"endpoints\":{\"app\":{\"url\":\"http://h/\","
             "\"headers\":{\"Authorization\":\"Bearer ${CFG_TEST_UNSET}\"}}}}",
             "config.json: endpoints.app.headers.Authorization: environment variable "
             "CFG_TEST_UNSET is not set",
             NULL);
    load_err("{\"listeners\":[{\"address\":\"${CFG_TEST_UNSET}\"}]," DOMAIN_KEY "," EP_KEY "}",
             "listeners[0].address: environment variable CFG_TEST_UNSET", NULL);
    load_err("{" LISTEN_KEY "," DOMAIN_KEY ",\"endpoints\":{\"app\":{\"url\":\"http://h/${FOO\"}}}",
             "endpoints.app.url: unterminated", NULL);
    load_err("{" LISTEN_KEY "," DOMAIN_KEY ",\"endpoints\":{\"app\":{\"url\":\"http://h/${\"}}}",
             "endpoints.app.url: unterminated", NULL);
    load_err("{" LISTEN_KEY "," DOMAIN_KEY ",\"endpoints\":{\"app\":{\"url\":\"http://h/${}\"}}}",
             "endpoints.app.url: invalid variable name", NULL);
    load_err("{" LISTEN_KEY "," DOMAIN_KEY ",\"endpoints\":{\"app\":{\"url\":\"http://${1X}/\"}}}",
             "invalid variable name \"1X\"", NULL);
    load_err("{" LISTEN_KEY "," DOMAIN_KEY ",\"endpoints\":{\"app\":{\"url\":\"http://${A-B}/\"}}}",
             "invalid variable name \"A-B\"", NULL);
    char j[JSON_MAX];
    load_err(with_key(j, sizeof(j), "\"spool\":{\"directory\":\"${CFG_TEST_UNSET}\"}"),
             "spool.directory: environment variable CFG_TEST_UNSET is not set", NULL);

    /* An expanded value is checked like a literal one. */
    setenv("CFG_TEST_CRLF", "x\r\nInjected: 1", 1);
    load_err("{" LISTEN_KEY "," DOMAIN_KEY ",\"endpoints\":{\"app\":{\"url\":\"http://h/\","
             "\"headers\":{\"Authorization\":\"${CFG_TEST_CRLF}\"}}}}",
             "endpoints.app.headers.Authorization: value must not contain CR, LF", NULL);
}

/* ---- overrides and quick start ----------------------------------------------------------- */

static void test_override_listen(void **state)
{
    (void)state;
    const char *listen[] = {"[::1]:2600", "127.0.0.2:26"};
    struct config_overrides ov = {.listen = listen, .n_listen = 2};
    char err[ERR_MAX];
    struct config *cfg = NULL;
    assert_int_equal(load("{" BASE "}", &ov, &cfg, err), 0);
    assert_int_equal(cfg->n_listeners, 2);
    assert_string_equal(cfg->listeners[0].address, "[::1]:2600");
    assert_int_equal(cfg->listeners[0].addr.ss_family, AF_INET6);
    assert_string_equal(cfg->listeners[1].address, "127.0.0.2:26");
    assert_string_equal(cfg->endpoints[0].name, "app"); /* untouched */
    config_free(cfg);

    /* The file may leave listeners out when --listen gives them. */
    assert_int_equal(load("{" DOMAIN_KEY "," EP_KEY "}", &ov, &cfg, err), 0);
    assert_int_equal(cfg->n_listeners, 2);
    config_free(cfg);

    const char *bad[] = {"localhost:25"};
    struct config_overrides ovb = {.listen = bad, .n_listen = 1};
    load_err_ov("{" BASE "}", &ovb, "--listen: \"localhost:25\" is not IPv4:port", NULL);
    assert_int_equal(load("{" BASE "}", &ov, &cfg, err), 0);
    assert_int_equal(cfg->n_warnings, 0); /* the file's listener set nothing of its own */
    config_free(cfg);
}

/* --listen replacing file listeners that set a PROXY protocol or TLS says what is dropped. */
static void test_override_listen_drops_settings(void **state)
{
    (void)state;
    const char *listen[] = {"127.0.0.1:2600"};
    struct config_overrides ov = {.listen = listen, .n_listen = 1};
    char err[ERR_MAX];
    struct config *cfg = NULL;
    assert_int_equal(
        load("{\"listeners\":[{\"address\":\"127.0.0.1:25\"},{\"address\":\"0.0.0.0:2525\","
             "\"proxy_protocol\":\"v2\",\"trusted_proxies\":[\"10.0.0.0/8\"]}]," DOMAIN_KEY
             "," EP_KEY "}",
             &ov, &cfg, err),
        0);
    assert_int_equal(cfg->n_listeners, 1);
    assert_int_equal(cfg->listeners[0].proxy, CONFIG_PROXY_NONE);
    assert_int_equal(cfg->n_warnings, 1);
    assert_string_equal(cfg->warnings[0],
                        "--listen: replaces the file's \"listeners\" and drops the "
                        "proxy_protocol of 0.0.0.0:2525: a --listen or SMTPHOOK_LISTEN listener "
                        "has no PROXY protocol and the default TLS mode");
    config_free(cfg);

    assert_int_equal(load("{\"listeners\":[{\"address\":\"127.0.0.1:465\",\"tls\":\"implicit\","
                          "\"proxy_protocol\":\"any\",\"trusted_proxies\":[\"::1\"]},{\"address\":"
                          "\"127.0.0.1:587\",\"require_tls\":true}]," DOMAIN_KEY "," EP_KEY
                          ",\"tls\":{\"certificates\":[{\"cert\":\"/c.pem\",\"key\":\"/c.key\"}]}}",
                          &ov, &cfg, err),
                     0);
    assert_int_equal(cfg->listeners[0].tls, CONFIG_TLS_STARTTLS); /* the default with certs */
    assert_int_equal(cfg->n_warnings, 1);
    assert_string_equal(cfg->warnings[0],
                        "--listen: replaces the file's \"listeners\" and drops the "
                        "proxy_protocol, tls of 127.0.0.1:465 (and of other listeners): a "
                        "--listen or SMTPHOOK_LISTEN listener has no PROXY protocol and the "
                        "default TLS mode");
    config_free(cfg);
}

static void test_override_webhook_hostname(void **state)
{
    (void)state;
    struct config_overrides ov = {.webhook = "http://127.0.0.1:9/x", .hostname = "mx.cli.example"};
    char err[ERR_MAX];
    struct config *cfg = NULL;
    assert_int_equal(load("{\"hostname\":\"mx.file.example\"," LISTEN_KEY "," DOMAIN_KEY
                          ",\"endpoints\":{\"a\":{\"url\":\"http://a/\"},\"b\":{\"url\":\"http://b/"
                          "\",\"headers\":{\"X-K\":\"v\"}}}}",
                          &ov, &cfg, err),
                     0);
    assert_string_equal(cfg->hostname, "mx.cli.example");
    assert_int_equal(cfg->n_endpoints, 1);
    assert_string_equal(cfg->endpoints[0].name, "default");
    assert_string_equal(cfg->endpoints[0].url, "http://127.0.0.1:9/x");
    assert_int_equal(cfg->endpoints[0].timeout_ms, CONFIG_DEF_ENDPOINT_TIMEOUT_MS);
    assert_int_equal(cfg->endpoints[0].connect_timeout_ms, CONFIG_DEF_ENDPOINT_CONNECT_MS);
    assert_int_equal(cfg->endpoints[0].n_headers, 0);
    config_free(cfg);

    /* --webhook stands in for a missing "endpoints". */
    assert_int_equal(load("{" LISTEN_KEY "," DOMAIN_KEY "}", &ov, &cfg, err), 0);
    assert_int_equal(cfg->n_endpoints, 1);
    config_free(cfg);

    struct config_overrides bad_url = {.webhook = "ftp://x/"};
    load_err_ov("{" BASE "}", &bad_url, "--webhook: must start with http:// or https://", NULL);
    struct config_overrides bad_host = {.hostname = "bad host"};
    load_err_ov("{" BASE "}", &bad_host, "--hostname: may contain only", NULL);
    /* File values are still checked when an override replaces them. */
    struct config_overrides web = {.webhook = "http://h/"};
    load_err_ov("{" LISTEN_KEY "," DOMAIN_KEY ",\"endpoints\":{\"app\":{\"url\":\"nope\"}}}", &web,
                "endpoints.app.url: must start with", NULL);
}

static void test_quick_start(void **state)
{
    (void)state;
    const char *listen[] = {"127.0.0.1:2525"};
    struct config_overrides ov = {.listen = listen, .n_listen = 1, .webhook = "http://h:1/"};
    char err[ERR_MAX];
    struct config *cfg = NULL;
    assert_int_equal(config_load(NULL, &ov, &cfg, err, sizeof(err)), 0);
    assert_true(cfg->any_domain);
    assert_true(config_domain_accepted(cfg, "anything.example", 16));
    assert_int_equal(cfg->n_listeners, 1);
    assert_int_equal(cfg->n_endpoints, 1);
    assert_string_equal(cfg->endpoints[0].name, "default");
    assert_true(strlen(cfg->hostname) > 0);
    assert_int_equal(cfg->limits.max_recipients, CONFIG_DEF_MAX_RECIPIENTS);
    assert_string_equal(cfg->spool.directory, CONFIG_DEF_SPOOL_DIRECTORY);
    config_free(cfg);

    /* config_load_string(NULL) is the same "no file" case. */
    assert_int_equal(config_load_string(NULL, NULL, &ov, &cfg, err, sizeof(err)), 0);
    assert_true(cfg->any_domain);
    config_free(cfg);

    struct config_overrides no_listen = {.webhook = "http://h:1/"};
    cfg = (struct config *)1;
    assert_int_equal(config_load(NULL, &no_listen, &cfg, err, sizeof(err)), SH_ECONFIG);
    assert_null(cfg);
    assert_string_equal(err, "no listeners: give --listen or a config file");

    struct config_overrides no_hook = {.listen = listen, .n_listen = 1};
    assert_int_equal(config_load(NULL, &no_hook, &cfg, err, sizeof(err)), SH_ECONFIG);
    assert_string_equal(err, "no endpoints: give --webhook or a config file");

    assert_int_equal(config_load(NULL, NULL, &cfg, err, sizeof(err)), SH_ECONFIG);
    assert_non_null(strstr(err, "no listeners"));
}

/* ---- files ------------------------------------------------------------------------------- */

static void test_load_file(void **state)
{
    (void)state;
    char err[ERR_MAX];
    struct config *cfg = (struct config *)1;
    assert_int_equal(config_load("/nonexistent/smtphook.json", NULL, &cfg, err, sizeof(err)),
                     SH_ECONFIG);
    assert_null(cfg);
    assert_string_equal(err, "/nonexistent/smtphook.json: cannot open: No such file or directory");

    assert_int_equal(config_load("/tmp", NULL, &cfg, err, sizeof(err)), SH_ECONFIG);
    assert_string_equal(err, "/tmp: not a regular file");

    char path[] = "/tmp/test_config_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *fp = fdopen(fd, "w");
    assert_non_null(fp);
    fputs("{" BASE ",\n\"limits\": {\"max_errors\": 0}}\n", fp);
    fclose(fp);
    assert_int_equal(config_load(path, NULL, &cfg, err, sizeof(err)), SH_ECONFIG);
    char want[128];
    snprintf(want, sizeof(want), "%s: limits.max_errors: must be an integer from 1 to 1000", path);
    assert_string_equal(err, want);

    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("{" BASE ",\n\"limits\": {\"max_errors\": 7}}\n", fp);
    fclose(fp);
    assert_int_equal(config_load(path, NULL, &cfg, err, sizeof(err)), 0);
    assert_int_equal(cfg->limits.max_errors, 7);
    config_free(cfg);

    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("{\n\"limits\": {\"max_errors\": 7},\n}\n", fp);
    fclose(fp);
    assert_int_equal(config_load(path, NULL, &cfg, err, sizeof(err)), SH_ECONFIG);
    snprintf(want, sizeof(want), "%s: line 3, column", path);
    assert_non_null(strstr(err, want));
    unlink(path);
}

static void test_example_file(void **state)
{
    (void)state;
    const char *dir = getenv("SMTPHOOK_SOURCE_DIR");
    if (dir == NULL) {
        print_message("SMTPHOOK_SOURCE_DIR is not set; cannot find config.example.json\n");
        skip();
    }
    char path[1024];
    snprintf(path, sizeof(path), "%s/config.example.json", dir);

    unsetenv("SMTPHOOK_APP_TOKEN");
    char err[ERR_MAX];
    struct config *cfg = NULL;
    assert_int_equal(config_load(path, NULL, &cfg, err, sizeof(err)), SH_ECONFIG);
    assert_non_null(strstr(err, "endpoints.helpdesk.headers.Authorization: environment variable "
                                "SMTPHOOK_APP_TOKEN is not set"));

    setenv("SMTPHOOK_APP_TOKEN", "example-token", 1);
    int rc = config_load(path, NULL, &cfg, err, sizeof(err));
    if (rc != 0)
        print_message("%s\n", err);
    assert_int_equal(rc, 0);
    assert_string_equal(cfg->hostname, "mx.example.com");
    assert_int_equal(cfg->delivery, CONFIG_DELIVERY_SYNC);
    assert_false(cfg->uses_queue); /* so the queue directory is not made */
    assert_string_equal(cfg->queue.directory, CONFIG_DEF_QUEUE_DIRECTORY);
    assert_int_equal(cfg->queue.max_bytes, CONFIG_DEF_QUEUE_MAX_BYTES);
    assert_int_equal(cfg->n_listeners, 3);
    assert_string_equal(cfg->listeners[0].address, "0.0.0.0:25");
    assert_int_equal(cfg->listeners[0].tls, CONFIG_TLS_STARTTLS);
    assert_false(cfg->listeners[0].require_tls);
    assert_string_equal(cfg->listeners[1].address, "[::]:25");
    assert_int_equal(cfg->listeners[1].tls, CONFIG_TLS_STARTTLS);
    assert_string_equal(cfg->listeners[2].address, "0.0.0.0:465");
    assert_int_equal(cfg->listeners[2].tls, CONFIG_TLS_IMPLICIT);
    assert_int_equal(cfg->n_domains, 2);
    assert_true(config_domain_accepted(cfg, "example.org", 11));
    assert_int_equal(cfg->n_endpoints, 2);
    assert_string_equal(cfg->endpoints[0].name, "helpdesk");
    assert_string_equal(cfg->endpoints[0].url, "https://helpdesk.internal/inbound");
    assert_string_equal(cfg->endpoints[0].headers[0].value, "Bearer example-token");
    assert_string_equal(cfg->endpoints[1].name, "billing");
    assert_string_equal(cfg->endpoints[1].headers[0].value, "Bearer example-token");
    assert_int_equal(cfg->endpoints[1].n_reply_map, 1);
    assert_int_equal(cfg->endpoints[0].format, CONFIG_FORMAT_RAW);
    assert_false(cfg->endpoints[0].stream);
    assert_int_equal(cfg->endpoints[0].max_header_bytes, 16384);
    assert_int_equal(cfg->endpoints[1].format, CONFIG_FORMAT_JSON);
    assert_int_equal(cfg->endpoints[1].reply_map[0].status, 409);
    assert_int_equal(cfg->endpoints[1].reply_map[0].reply.code, 250);
    /* A help desk gets everything but what the billing route takes. */
    assert_int_equal(cfg->n_routes, 2);
    assert_int_equal(cfg->routes[0].endpoints[0], 1);
    assert_int_equal(cfg->routes[1].endpoints[0], 0);
    assert_int_equal(config_route_for(cfg, "billing@example.com", 19), 0);
    assert_int_equal(config_route_for(cfg, "billing+2026@example.com", 24), 0);
    assert_int_equal(config_route_for(cfg, "invoices@example.org", 20), 0);
    assert_int_equal(config_route_for(cfg, "support@example.com", 19), 1);
    assert_string_equal(cfg->recipient_delimiter, "+");
    assert_false(cfg->one_route_per_transaction);
    assert_false(cfg->recipient_check.enabled);
    assert_int_equal(cfg->n_warnings, 0);
    /* The example spells out every default. */
    assert_int_equal(cfg->endpoints[0].retry.max_attempts, CONFIG_DEF_RETRY_MAX_ATTEMPTS);
    assert_int_equal(cfg->endpoints[0].retry.initial_backoff_ms,
                     CONFIG_DEF_RETRY_INITIAL_BACKOFF_MS);
    assert_int_equal(cfg->endpoints[0].retry.max_backoff_ms, CONFIG_DEF_RETRY_MAX_BACKOFF_MS);
    assert_int_equal(cfg->endpoints[0].breaker.failures, CONFIG_DEF_BREAKER_FAILURES);
    assert_int_equal(cfg->endpoints[0].breaker.cooldown_ms, CONFIG_DEF_BREAKER_COOLDOWN_MS);
    assert_int_equal(cfg->limits.max_message_bytes, CONFIG_DEF_MAX_MESSAGE_BYTES);
    assert_int_equal(cfg->limits.transaction_timeout_ms, CONFIG_DEF_TRANSACTION_TIMEOUT_MS);
    assert_int_equal(cfg->limits.shutdown_timeout_ms, CONFIG_DEF_SHUTDOWN_TIMEOUT_MS);
    assert_int_equal(cfg->spool.memory_bytes, CONFIG_DEF_SPOOL_MEMORY_BYTES);
    assert_int_equal(cfg->tls.n_certificates, 1);
    assert_string_equal(cfg->tls.certificates[0].cert, "/certs/fullchain.pem");
    assert_string_equal(cfg->tls.certificates[0].key, "/certs/privkey.pem");
    assert_string_equal(cfg->tls.min_version, CONFIG_DEF_TLS_MIN_VERSION);
    assert_string_equal(cfg->tls.ciphers, CONFIG_DEF_TLS_CIPHERS);
    assert_false(cfg->tls.request_client_cert);
    assert_int_equal(cfg->tls.handshake_timeout_ms, CONFIG_DEF_TLS_HANDSHAKE_TIMEOUT_MS);
    config_free(cfg);
    unsetenv("SMTPHOOK_APP_TOKEN");
}

/* ---- addresses --------------------------------------------------------------------------- */

static void test_parse_address(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    socklen_t len = 0;

    assert_int_equal(config_parse_address("127.0.0.1:25", &ss, &len), 0);
    assert_int_equal(len, sizeof(struct sockaddr_in));
    struct sockaddr_in sin;
    memcpy(&sin, &ss, sizeof(sin));
    assert_int_equal(sin.sin_family, AF_INET);
    assert_int_equal(ntohs(sin.sin_port), 25);
    assert_int_equal(ntohl(sin.sin_addr.s_addr), 0x7f000001u);

    assert_int_equal(config_parse_address("[::1]:65535", &ss, &len), 0);
    assert_int_equal(len, sizeof(struct sockaddr_in6));
    struct sockaddr_in6 sin6;
    memcpy(&sin6, &ss, sizeof(sin6));
    assert_int_equal(sin6.sin6_family, AF_INET6);
    assert_int_equal(ntohs(sin6.sin6_port), 65535);
    assert_memory_equal(&sin6.sin6_addr, &in6addr_loopback, sizeof(in6addr_loopback));

    assert_int_equal(config_parse_address("0.0.0.0:1", &ss, &len), 0);
    assert_int_equal(config_parse_address("[::]:2525", &ss, &len), 0);
    assert_int_equal(config_parse_address("[::ffff:10.0.0.1]:25", &ss, &len), 0);

    const char *bad[] = {
        "",
        "127.0.0.1",         /* no port */
        "127.0.0.1:",        /* empty port */
        "127.0.0.1:0",       /* port 0 */
        "127.0.0.1:65536",   /* port too big */
        "127.0.0.1:100000",  /* too many digits */
        "127.0.0.1:+25",     /* sign */
        "127.0.0.1: 25",     /* space */
        "127.0.0.1:2x",      /* junk */
        ":25",               /* no host */
        "1.2.3:25",          /* not dotted quad */
        "256.0.0.1:25",      /* octet too big */
        "::1:25",            /* IPv6 without brackets */
        "[::1]25",           /* no colon after bracket */
        "[::1]",             /* no port */
        "[::1:25",           /* no closing bracket */
        "[]:25",             /* empty brackets */
        "[127.0.0.1]:25",    /* IPv4 in brackets */
        "[fe80::1%eth0]:25", /* zone ids are not numeric addresses */
        "localhost:25",      /* host names: no DNS at load time */
        "mx.example.com:25",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (config_parse_address(bad[i], &ss, &len) != SH_EINVAL)
            fail_msg("accepted \"%s\"", bad[i]);
    }
    assert_int_equal(config_parse_address(NULL, &ss, &len), SH_EINVAL);

    load_err("{\"listeners\":[{\"address\":\"127.0.0.1:25\"},{\"address\":\"[::1]25\"}]," DOMAIN_KEY
             "," EP_KEY "}",
             "config.json: listeners[1].address: \"[::1]25\" is not IPv4:port or [IPv6]:port",
             NULL);
}

/* ---- domains ----------------------------------------------------------------------------- */

static void test_domains(void **state)
{
    (void)state;
    struct config *cfg = load_ok("{" LISTEN_KEY ",\"domains\":[\"Example.COM\",\"example.org\","
                                 "\"xn--bcher-kva.example\"]," EP_KEY "}");
    assert_string_equal(cfg->domains[0], "example.com"); /* stored lower case */
    assert_false(cfg->any_domain);
    assert_true(config_domain_accepted(cfg, "example.com", 11));
    assert_true(config_domain_accepted(cfg, "EXAMPLE.com", 11));
    assert_true(config_domain_accepted(cfg, "Example.Org", 11));
    assert_true(config_domain_accepted(cfg, "example.com>junk", 11)); /* len bounds the name */
    assert_true(config_domain_accepted(cfg, "", 0));                  /* <postmaster> */
    assert_false(config_domain_accepted(cfg, "sub.example.com", 15)); /* no subdomains */
    assert_false(config_domain_accepted(cfg, "example.co", 10));
    assert_false(config_domain_accepted(cfg, "example.comx", 12));
    assert_false(config_domain_accepted(cfg, "other.example", 13));
    assert_false(config_domain_accepted(cfg, "example.com.", 12));
    config_free(cfg);

    cfg = load_ok("{" LISTEN_KEY ",\"domains\":[\"*\"]," EP_KEY "}");
    assert_true(cfg->any_domain);
    assert_int_equal(cfg->n_domains, 0);
    assert_true(config_domain_accepted(cfg, "whatever.example", 16));
    config_free(cfg);

    load_err("{" LISTEN_KEY ",\"domains\":[\"a.example\",\"*\"]," EP_KEY "}",
             "domains[1]: \"*\" (any domain) must be the only entry", NULL);
    load_err("{" LISTEN_KEY ",\"domains\":[\"*\",\"a.example\"]," EP_KEY "}",
             "domains[0]: \"*\" (any domain) must be the only entry", NULL);
    load_err("{" LISTEN_KEY ",\"domains\":[\"a.example\",\"A.Example\"]," EP_KEY "}",
             "domains[1]: duplicate domain \"a.example\"", NULL);
    const char *bad[] = {"",           "-a.example",       "a-.example",  "a..example",
                         "a.example.", ".a.example",       "a_b.example", "a b.example",
                         "*.example",  "user@example.com", "[127.0.0.1]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char j[JSON_MAX];
        snprintf(j, sizeof(j), "{" LISTEN_KEY ",\"domains\":[\"%s\"]," EP_KEY "}", bad[i]);
        load_err(j, "domains[0]:", "is not a domain name");
    }
    char label[80], j[JSON_MAX];
    memset(label, 'a', 64);
    label[64] = '\0';
    snprintf(j, sizeof(j), "{" LISTEN_KEY ",\"domains\":[\"%s.example\"]," EP_KEY "}", label);
    load_err(j, "domains[0]:", "is not a domain name");
    label[63] = '\0';
    snprintf(j, sizeof(j), "{" LISTEN_KEY ",\"domains\":[\"%s.example\"]," EP_KEY "}", label);
    cfg = load_ok(j);
    config_free(cfg);
}

/* ---- endpoints and headers --------------------------------------------------------------- */

static void test_endpoint_urls_and_names(void **state)
{
    (void)state;
    char j[JSON_MAX];
    const char *good[] = {"http://h", "https://h/p?q=1", "HTTPS://H:8443/", "http://[::1]:80/"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char body[256];
        snprintf(body, sizeof(body), "\"url\":\"%s\"", good[i]);
        struct config *cfg = load_ok(ep_json(j, sizeof(j), body));
        assert_string_equal(cfg->endpoints[0].url, good[i]);
        config_free(cfg);
    }
    load_err(ep_json(j, sizeof(j), "\"url\":\"ftp://h/\""),
             "endpoints.app.url: must start with http:// or https://", NULL);
    load_err(ep_json(j, sizeof(j), "\"url\":\"h/path\""), "endpoints.app.url: must start", NULL);
    load_err(ep_json(j, sizeof(j), "\"url\":\"http://\""), "endpoints.app.url: has no host", NULL);
    load_err(ep_json(j, sizeof(j), "\"url\":\"http:///x\""), "endpoints.app.url: has no host",
             NULL);
    load_err(ep_json(j, sizeof(j), "\"url\":\"http://h/a b\""),
             "endpoints.app.url: must not contain spaces or control", NULL);
    load_err(ep_json(j, sizeof(j), "\"url\":\"http://h/\\t\""), "endpoints.app.url: must not",
             NULL);
    load_err(ep_json(j, sizeof(j), "\"url\":\"http://h/\\u007f\""), "endpoints.app.url: must not",
             NULL);

    load_err("{" LISTEN_KEY "," DOMAIN_KEY ",\"endpoints\":{\"app.v2\":{\"url\":\"http://h/\"}}}",
             "endpoints.app.v2: endpoint names may contain only", NULL);
    load_err("{" LISTEN_KEY "," DOMAIN_KEY ",\"endpoints\":{\"\":{\"url\":\"http://h/\"}}}",
             "endpoints.\"\": endpoint names may contain only", NULL);
    load_err("{" LISTEN_KEY "," DOMAIN_KEY ",\"endpoints\":{\"a\\nb\":{\"url\":\"http://h/\"}}}",
             "endpoints.a?b: endpoint names", NULL); /* the path stays one printable line */
}

static void test_headers(void **state)
{
    (void)state;
    char j[JSON_MAX];
    struct config *cfg = load_ok(
        ep_json(j, sizeof(j),
                "\"url\":\"http://h/\",\"headers\":{\"X-Api-Key\":\"k\","
                "\"!#$%&'*+-.^_`|~09azAZ\":\"v\",\"X-Empty\":\"\",\"X-Utf8\":\"caf\\u00e9\"}"));
    assert_int_equal(cfg->endpoints[0].n_headers, 4);
    assert_string_equal(cfg->endpoints[0].headers[1].name, "!#$%&'*+-.^_`|~09azAZ");
    assert_string_equal(cfg->endpoints[0].headers[2].value, "");
    assert_string_equal(cfg->endpoints[0].headers[3].value, "caf\xc3\xa9");
    config_free(cfg);

    cfg = load_ok(ep_json(j, sizeof(j), "\"url\":\"http://h/\",\"headers\":{}"));
    assert_int_equal(cfg->endpoints[0].n_headers, 0);
    config_free(cfg);

    struct {
        const char *headers; /* JSON of the "headers" object */
        const char *path;    /* expected in the message */
        const char *problem; /* expected in the message */
    } bad[] = {
        {"{\"Bad Name\":\"v\"}", "endpoints.app.headers.Bad Name", "HTTP token"},
        {"{\"X:Y\":\"v\"}", "endpoints.app.headers.X:Y", "HTTP token"},
        {"{\"\":\"v\"}", "endpoints.app.headers.\"\"", "must not be empty"},
        {"{\"X-\\u00e9\":\"v\"}", "endpoints.app.headers.X-?", "HTTP token"},
        {"{\"X-A\":\"a\\r\\nX-Injected: 1\"}", "endpoints.app.headers.X-A", "CR, LF"},
        {"{\"X-A\":\"a\\nb\"}", "endpoints.app.headers.X-A", "CR, LF"},
        {"{\"X-A\":\"a\\rb\"}", "endpoints.app.headers.X-A", "CR, LF"},
        {"{\"X-A\":\"a\\u0001b\"}", "endpoints.app.headers.X-A", "control"},
        {"{\"X-A\":\"a\\u007fb\"}", "endpoints.app.headers.X-A", "control"},
        {"{\"content-type\":\"text/plain\"}", "endpoints.app.headers.content-type",
         "set by smtphook"},
        {"{\"Content-Length\":\"1\"}", "headers.Content-Length", "set by smtphook"},
        {"{\"HOST\":\"h\"}", "headers.HOST", "set by smtphook"},
        {"{\"Transfer-Encoding\":\"chunked\"}", "headers.Transfer-Encoding", "set by smtphook"},
        {"{\"Expect\":\"\"}", "headers.Expect", "set by smtphook"},
        {"{\"connection\":\"close\"}", "headers.connection", "set by smtphook"},
        {"{\"X-Smtphook-Endpoint\":\"x\"}", "headers.X-Smtphook-Endpoint", "X-Smtphook-*"},
        {"{\"x-smtphook-\":\"x\"}", "headers.x-smtphook-", "X-Smtphook-*"},
        {"{\"X-A\":\"1\",\"x-a\":\"2\"}", "endpoints.app.headers.x-a", "duplicate header"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char body[512];
        snprintf(body, sizeof(body), "\"url\":\"http://h/\",\"headers\":%s", bad[i].headers);
        load_err(ep_json(j, sizeof(j), body), bad[i].path, bad[i].problem);
    }
    /* X-Smtphook without the dash is an ordinary name. */
    cfg =
        load_ok(ep_json(j, sizeof(j), "\"url\":\"http://h/\",\"headers\":{\"X-Smtphooks\":\"1\"}"));
    config_free(cfg);
}

/* ---- routes ------------------------------------------------------------------------------ */

/* Three endpoints, domains with subdomains to route, and ",<extra>" (routes and so on). */
#define ROUTE_BASE                                                                                 \
    LISTEN_KEY ",\"domains\":[\"example.com\",\"help.example.com\",\"eu.example.org\"],"           \
               "\"endpoints\":{\"helpdesk\":{\"url\":\"http://h/help\"},"                          \
               "\"billing\":{\"url\":\"http://h/bill\"},\"archive\":{\"url\":\"http://h/arch\"}}"

/* routes_json - a config of ROUTE_BASE with "routes": <routes> and ",<extra>" if given. */
static const char *routes_json(char *buf, size_t len, const char *routes, const char *extra)
{
    snprintf(buf, len, "{" ROUTE_BASE ",\"routes\":%s%s%s}", routes, extra ? "," : "",
             extra ? extra : "");
    return buf;
}

/* route_of - config_route_for on a NUL-terminated address. */
static long route_of(const struct config *cfg, const char *addr)
{
    return config_route_for(cfg, addr, strlen(addr));
}

#define FOUR_ROUTES                                                                                \
    "[{\"match\":[\"billing@example.com\",\"invoices@example.com\"],"                              \
    "\"endpoints\":[\"billing\",\"archive\"],\"policy\":\"failover\"},"                            \
    "{\"match\":[\"*@help.example.com\",\"support@example.com\"],\"endpoints\":[\"helpdesk\"]},"   \
    "{\"match\":[\"*@*.example.org\"],\"endpoints\":[\"helpdesk\",\"archive\"],"                   \
    "\"policy\":\"all\"},"                                                                         \
    "{\"match\":[\"*\"],\"endpoints\":[\"archive\"]}]"

static void test_routes(void **state)
{
    (void)state;
    char j[JSON_MAX];
    struct config *cfg = load_ok(routes_json(j, sizeof(j), FOUR_ROUTES, NULL));
    assert_int_equal(cfg->n_routes, 4);
    const struct config_route *r = cfg->routes;
    assert_int_equal(r[0].n_patterns, 2);
    assert_int_equal(r[0].patterns[0].kind, ROUTE_PATTERN_EXACT);
    assert_string_equal(r[0].patterns[0].local, "billing");
    assert_string_equal(r[0].patterns[0].domain, "example.com");
    assert_int_equal(r[0].n_endpoints, 2);
    assert_int_equal(r[0].endpoints[0], 1); /* billing: indices into cfg->endpoints */
    assert_int_equal(r[0].endpoints[1], 2); /* archive */
    assert_int_equal(r[0].policy, CONFIG_ROUTE_FAILOVER);
    assert_int_equal(r[1].patterns[0].kind, ROUTE_PATTERN_DOMAIN);
    assert_int_equal(r[1].n_endpoints, 1);
    assert_int_equal(r[1].endpoints[0], 0);
    assert_int_equal(r[1].policy, CONFIG_ROUTE_ALL); /* the default */
    assert_int_equal(r[2].patterns[0].kind, ROUTE_PATTERN_SUBDOMAIN);
    assert_string_equal(r[2].patterns[0].domain, "example.org");
    assert_int_equal(r[2].policy, CONFIG_ROUTE_ALL);
    assert_int_equal(r[3].patterns[0].kind, ROUTE_PATTERN_ANY);
    /* Every endpoint has a route; archive, billing's standby, is also on routes 2 and 3. */
    assert_int_equal(cfg->n_warnings, 1);
    assert_string_equal(cfg->warnings[0],
                        "config.json: routes[0].endpoints[1]: \"archive\" is a failover target "
                        "here and is also in routes[2]: a message for both routes can reach it "
                        "in two POSTs, one per route (each with its own recipients and "
                        "Idempotency-Key); \"one_route_per_transaction\" keeps them apart");

    /* The first route with a matching pattern; domains and ASCII local parts ignore case. */
    assert_int_equal(route_of(cfg, "billing@example.com"), 0);
    assert_int_equal(route_of(cfg, "BILLING@Example.COM"), 0);
    assert_int_equal(route_of(cfg, "invoices@example.com"), 0);
    assert_int_equal(route_of(cfg, "support@example.com"), 1);
    assert_int_equal(route_of(cfg, "anyone@HELP.example.com"), 1);
    assert_int_equal(route_of(cfg, "x@eu.example.org"), 2);
    assert_int_equal(route_of(cfg, "x@a.eu.example.org"), 2);
    assert_int_equal(route_of(cfg, "x@example.org"), 3); /* not a subdomain: "*" takes it */
    assert_int_equal(route_of(cfg, "billing+2024@example.com"), 3); /* no delimiter */
    assert_int_equal(route_of(cfg, "postmaster"), 3);               /* only "*" matches it */
    assert_int_equal(config_route_for(cfg, "billing@example.com>junk", 19), 0); /* len bounds */
    assert_int_equal(config_route_for(NULL, "billing@example.com", 19), -1);
    config_free(cfg);

    /* Without a catch-all route some recipients have none. */
    cfg = load_ok(routes_json(j, sizeof(j),
                              "[{\"match\":[\"support@example.com\"],\"endpoints\":[\"helpdesk\","
                              "\"billing\",\"archive\"]}]",
                              NULL));
    assert_int_equal(route_of(cfg, "support@example.com"), 0);
    assert_int_equal(route_of(cfg, "Support@EXAMPLE.com"), 0);
    assert_int_equal(route_of(cfg, "other@example.com"), -1);
    assert_int_equal(route_of(cfg, "support@help.example.com"), -1);
    assert_int_equal(route_of(cfg, "postmaster"), -1);
    config_free(cfg);

    /* No routes: -1 for everyone. */
    cfg = load_ok("{" BASE "}");
    assert_int_equal(cfg->n_routes, 0);
    assert_null(cfg->routes);
    assert_int_equal(route_of(cfg, "user@example.com"), -1);
    config_free(cfg);
}

static void test_routes_delimiter(void **state)
{
    (void)state;
    char j[JSON_MAX];
    const char *routes = "[{\"match\":[\"billing@example.com\"],\"endpoints\":[\"billing\"]},"
                         "{\"match\":[\"support@example.com\",\"*@help.example.com\"],"
                         "\"endpoints\":[\"helpdesk\",\"archive\"]}]";
    struct config *cfg =
        load_ok(routes_json(j, sizeof(j), routes, "\"recipient_delimiter\":\"+-\""));
    assert_string_equal(cfg->recipient_delimiter, "+-");
    assert_int_equal(route_of(cfg, "billing@example.com"), 0);
    assert_int_equal(route_of(cfg, "billing+2024@example.com"), 0);
    assert_int_equal(route_of(cfg, "Billing-Q1@Example.com"), 0);
    assert_int_equal(route_of(cfg, "billing+a-b@example.com"), 0); /* the first one cuts */
    assert_int_equal(route_of(cfg, "support+urgent@example.com"), 1);
    assert_int_equal(route_of(cfg, "billing.x@example.com"), -1); /* '.' is not a delimiter */
    assert_int_equal(route_of(cfg, "billingx@example.com"), -1);
    assert_int_equal(route_of(cfg, "\"billing+x\"@example.com"), -1); /* quoted: never cut */
    assert_int_equal(route_of(cfg, "x+y@help.example.com"), 1);
    config_free(cfg);

    /* Without the delimiter the same addresses find no route. */
    cfg = load_ok(routes_json(j, sizeof(j), routes, NULL));
    assert_int_equal(route_of(cfg, "billing+2024@example.com"), -1);
    assert_int_equal(route_of(cfg, "billing@example.com"), 0);
    config_free(cfg);
}

static void test_routes_warnings(void **state)
{
    (void)state;
    char j[JSON_MAX];
    struct config *cfg = load_ok(routes_json(
        j, sizeof(j), "[{\"match\":[\"*@example.com\"],\"endpoints\":[\"billing\"]}]", NULL));
    assert_int_equal(cfg->n_warnings, 2);
    assert_string_equal(cfg->warnings[0], "config.json: endpoints.helpdesk: no route uses this "
                                          "endpoint; it receives nothing");
    assert_string_equal(cfg->warnings[1], "config.json: endpoints.archive: no route uses this "
                                          "endpoint; it receives nothing");
    config_free(cfg);

    /* one_route_per_transaction is meaningful with routes: no warning. */
    cfg = load_ok(routes_json(j, sizeof(j), FOUR_ROUTES, "\"one_route_per_transaction\":true"));
    assert_true(cfg->one_route_per_transaction);
    assert_int_equal(cfg->n_warnings, 0);
    config_free(cfg);
}

static void test_routes_errors(void **state)
{
    (void)state;
    char j[JSON_MAX];
    const struct {
        const char *routes;  /* the value of "routes" */
        const char *message; /* exactly */
    } bad[] = {
        {"{}", "config.json: routes: must be an array of objects like {\"match\": "
               "[\"*@example.com\"], \"endpoints\": [\"app\"]}"},
        {"[]", "config.json: routes: must list at least one route (or leave it out: every "
               "endpoint gets every message)"},
        {"[\"*\"]", "config.json: routes[0]: must be an object like {\"match\": "
                    "[\"*@example.com\"], \"endpoints\": [\"app\"]}"},
        {"[{\"matches\":[\"*\"],\"endpoints\":[\"archive\"]}]",
         "config.json: routes[0].matches: unknown key"},
        {"[{\"endpoints\":[\"archive\"]}]", "config.json: routes[0].match: is required"},
        {"[{\"match\":[\"*\"]}]", "config.json: routes[0].endpoints: is required"},
        {"[{\"match\":\"*\",\"endpoints\":[\"archive\"]}]",
         "config.json: routes[0].match: must be an array of patterns like [\"*@example.com\"]"},
        {"[{\"match\":[],\"endpoints\":[\"archive\"]}]",
         "config.json: routes[0].match: must list at least one pattern"},
        {"[{\"match\":[\"*\"],\"endpoints\":\"archive\"}]",
         "config.json: routes[0].endpoints: must be an array of endpoint names"},
        {"[{\"match\":[\"*\"],\"endpoints\":[]}]",
         "config.json: routes[0].endpoints: must list at least one endpoint"},
        {"[{\"match\":[5],\"endpoints\":[\"archive\"]}]",
         "config.json: routes[0].match[0]: must be a string"},
        {"[{\"match\":[\"example.com\"],\"endpoints\":[\"archive\"]}]",
         "config.json: routes[0].match[0]: \"example.com\" is not a pattern: a pattern is "
         "local@domain, *@domain, *@*.domain or *"},
        {"[{\"match\":[\"*\"],\"endpoints\":[\"archive\",\"nope\"]}]",
         "config.json: routes[0].endpoints[1]: no endpoint is named \"nope\""},
        {"[{\"match\":[\"*\"],\"endpoints\":[\"Archive\"]}]",
         "config.json: routes[0].endpoints[0]: no endpoint is named \"Archive\""},
        {"[{\"match\":[\"*\"],\"endpoints\":[\"archive\",\"helpdesk\",\"archive\"]}]",
         "config.json: routes[0].endpoints[2]: duplicate endpoint \"archive\""},
        {"[{\"match\":[\"*\"],\"endpoints\":[7]}]",
         "config.json: routes[0].endpoints[0]: must be a string"},
        {"[{\"match\":[\"*\"],\"endpoints\":[\"archive\"],\"policy\":\"any\"}]",
         "config.json: routes[0].policy: must be \"all\" or \"failover\""},
        {"[{\"match\":[\"*\"],\"endpoints\":[\"archive\"],\"policy\":1}]",
         "config.json: routes[0].policy: must be a string"},
        /* Patterns that can never match: a domain not served... */
        {"[{\"match\":[\"*@example.com\",\"a@other.example\"],\"endpoints\":[\"archive\"]}]",
         "config.json: routes[0].match[1]: \"a@other.example\" can never match: its domain is "
         "not one of \"domains\""},
        {"[{\"match\":[\"*@example.org\"],\"endpoints\":[\"archive\"]}]",
         "config.json: routes[0].match[0]: \"*@example.org\" can never match: its domain is not "
         "one of \"domains\""},
        {"[{\"match\":[\"*@*.help.example.com\"],\"endpoints\":[\"archive\"]}]",
         "config.json: routes[0].match[0]: \"*@*.help.example.com\" can never match: no domain "
         "of \"domains\" is below its domain"},
        /* ... the same pattern twice in a route, or in an earlier one ... */
        {"[{\"match\":[\"*@example.com\",\"*@EXAMPLE.com\"],\"endpoints\":[\"archive\"]}]",
         "config.json: routes[0].match[1]: duplicate pattern \"*@EXAMPLE.com\" (the same as "
         "match[0])"},
        {"[{\"match\":[\"a@example.com\"],\"endpoints\":[\"archive\"]},"
         "{\"match\":[\"b@example.com\",\"A@Example.com\"],\"endpoints\":[\"billing\"]}]",
         "config.json: routes[1].match[1]: \"A@Example.com\" can never match: "
         "routes[0].match[0] (\"a@example.com\") comes first and takes every address it would"},
        /* ... a route after one that takes every address ... */
        {"[{\"match\":[\"*\"],\"endpoints\":[\"archive\"]},"
         "{\"match\":[\"billing@example.com\"],\"endpoints\":[\"billing\"]}]",
         "config.json: routes[1].match[0]: \"billing@example.com\" can never match: "
         "routes[0].match[0] (\"*\") comes first and takes every address it would"},
        {"[{\"match\":[\"*\"],\"endpoints\":[\"archive\"]},"
         "{\"match\":[\"*\"],\"endpoints\":[\"billing\"]}]",
         "config.json: routes[1].match[0]: \"*\" can never match: routes[0].match[0] (\"*\") "
         "comes first and takes every address it would"},
        /* ... or behind a wider pattern of an earlier route. */
        {"[{\"match\":[\"*@example.com\"],\"endpoints\":[\"archive\"]},"
         "{\"match\":[\"vip@example.com\"],\"endpoints\":[\"billing\"]}]",
         "config.json: routes[1].match[0]: \"vip@example.com\" can never match: "
         "routes[0].match[0] (\"*@example.com\") comes first and takes every address it would"},
        {"[{\"match\":[\"*@*.example.org\"],\"endpoints\":[\"archive\"]},"
         "{\"match\":[\"x@eu.example.org\"],\"endpoints\":[\"billing\"]}]",
         "config.json: routes[1].match[0]: \"x@eu.example.org\" can never match: "
         "routes[0].match[0] (\"*@*.example.org\") comes first and takes every address it "
         "would"},
        {"[{\"match\":[\"*@*.example.com\"],\"endpoints\":[\"archive\"]},"
         "{\"match\":[\"*@help.example.com\"],\"endpoints\":[\"billing\"]}]",
         "config.json: routes[1].match[0]: \"*@help.example.com\" can never match: "
         "routes[0].match[0] (\"*@*.example.com\") comes first and takes every address it "
         "would"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        load_err_exact(routes_json(j, sizeof(j), bad[i].routes, NULL), bad[i].message);

    /* A shadowed subdomain pattern, and an extension behind its base address. */
    load_err_exact("{" LISTEN_KEY ",\"domains\":[\"a.eu.example.com\"]," EP_KEY ",\"routes\":["
                   "{\"match\":[\"*@*.example.com\"],\"endpoints\":[\"app\"]},"
                   "{\"match\":[\"*@*.eu.example.com\"],\"endpoints\":[\"app\"]}]}",
                   "config.json: routes[1].match[0]: \"*@*.eu.example.com\" can never match: "
                   "routes[0].match[0] (\"*@*.example.com\") comes first and takes every address "
                   "it would");
    const char *ext = "[{\"match\":[\"billing@example.com\"],\"endpoints\":[\"billing\"]},"
                      "{\"match\":[\"billing+eu@example.com\"],\"endpoints\":[\"archive\"]},"
                      "{\"match\":[\"*\"],\"endpoints\":[\"helpdesk\"]}]";
    load_err_exact(routes_json(j, sizeof(j), ext, "\"recipient_delimiter\":\"+\""),
                   "config.json: routes[1].match[0]: \"billing+eu@example.com\" can never match: "
                   "routes[0].match[0] (\"billing@example.com\") comes first and takes every "
                   "address it would");

    /* Narrow before wide is fine, and so are overlaps that leave some addresses. */
    const char *fine[] = {
        ext, /* without a delimiter "billing+eu" is just another address */
        "[{\"match\":[\"billing+eu@example.com\"],\"endpoints\":[\"archive\"]},"
        "{\"match\":[\"billing@example.com\"],\"endpoints\":[\"billing\"]},"
        "{\"match\":[\"*\"],\"endpoints\":[\"helpdesk\"]}]",
        "[{\"match\":[\"vip@example.com\"],\"endpoints\":[\"billing\"]},"
        "{\"match\":[\"*@example.com\"],\"endpoints\":[\"archive\",\"helpdesk\"]}]",
        "[{\"match\":[\"*@example.com\"],\"endpoints\":[\"archive\"]},"
        "{\"match\":[\"*@*.example.com\"],\"endpoints\":[\"billing\",\"helpdesk\"]}]",
        "[{\"match\":[\"*@help.example.com\"],\"endpoints\":[\"archive\"]},"
        "{\"match\":[\"*@*.example.com\"],\"endpoints\":[\"billing\",\"helpdesk\"]}]",
        "[{\"match\":[\"*@example.com\",\"a@example.com\"],\"endpoints\":[\"archive\","
        "\"billing\",\"helpdesk\"]}]", /* redundant inside one route: harmless */
    };
    for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++) {
        struct config *cfg = load_ok(routes_json(j, sizeof(j), fine[i], NULL));
        config_free(cfg);
    }
    struct config *cfg =
        load_ok(routes_json(j, sizeof(j), fine[0], "\"recipient_delimiter\":\"-\""));
    config_free(cfg);

    /* Every domain served: any pattern can match. */
    cfg = load_ok("{" LISTEN_KEY ",\"domains\":[\"*\"]," EP_KEY ",\"routes\":[{\"match\":["
                  "\"a@anything.example\",\"*@*.other.example\"],\"endpoints\":[\"app\"]}]}");
    assert_int_equal(cfg->routes[0].n_patterns, 2);
    config_free(cfg);
}

/* --webhook replaces the endpoints the routes name: it drops the routes too, and says so. */
static void test_routes_webhook(void **state)
{
    (void)state;
    char j[JSON_MAX], err[ERR_MAX];
    struct config_overrides ov = {.webhook = "http://127.0.0.1:9/x"};
    struct config *cfg = NULL;
    assert_int_equal(load(routes_json(j, sizeof(j), FOUR_ROUTES, NULL), &ov, &cfg, err), 0);
    assert_int_equal(cfg->n_endpoints, 1);
    assert_string_equal(cfg->endpoints[0].name, "default");
    assert_int_equal(cfg->n_routes, 0);
    assert_null(cfg->routes);
    assert_int_equal(route_of(cfg, "billing@example.com"), -1); /* every endpoint: the one */
    assert_int_equal(cfg->n_warnings, 1);
    assert_string_equal(cfg->warnings[0],
                        "--webhook: replaces the file's \"endpoints\" and drops its \"routes\": "
                        "every message goes to the --webhook URL");
    config_free(cfg);

    /* With one_route_per_transaction, that one has nothing left to do either. */
    assert_int_equal(
        load(routes_json(j, sizeof(j), FOUR_ROUTES, "\"one_route_per_transaction\":true"), &ov,
             &cfg, err),
        0);
    assert_int_equal(cfg->n_warnings, 2);
    assert_string_equal(cfg->warnings[1],
                        "config.json: one_route_per_transaction: has no effect without routes");
    config_free(cfg);

    /* No routes in the file: nothing to say. */
    assert_int_equal(load("{" BASE "}", &ov, &cfg, err), 0);
    assert_int_equal(cfg->n_warnings, 0);
    config_free(cfg);

    /* The file's routes are still checked. */
    load_err_ov(routes_json(j, sizeof(j), "[{\"match\":[\"*\"],\"endpoints\":[\"nope\"]}]", NULL),
                &ov, "config.json: routes[0].endpoints[0]: no endpoint is named \"nope\"", NULL);
}

/* ---- TLS --------------------------------------------------------------------------------- */

/* One certificate pair, for configs that need certificates. */
#define CERT_PAIR "{\"cert\":\"/certs/a.pem\",\"key\":\"/certs/a.key\"}"
#define TLS_KEY   "\"tls\":{\"certificates\":[" CERT_PAIR "]}"

/* listeners_json - a config whose listeners array is [<listeners>], plus ",<extra>" if given. */
static const char *listeners_json(char *buf, size_t len, const char *listeners, const char *extra)
{
    snprintf(buf, len, "{\"listeners\":[%s]," DOMAIN_KEY "," EP_KEY "%s%s}", listeners,
             extra ? "," : "", extra ? extra : "");
    return buf;
}

/* ---- the queue -------------------------------------------------------------------------- */

/* "delivery" at the top and per route; the queue directory made and checked only when
 * something queues; --delivery and --queue-dir. */
static void test_delivery_and_queue(void **state)
{
    (void)state;
    char j[JSON_MAX], extra[512];
    struct config *cfg = load_ok("{" BASE "}");
    assert_int_equal(cfg->delivery, CONFIG_DELIVERY_SYNC);
    assert_false(cfg->uses_queue);
    assert_string_equal(cfg->queue.directory, CONFIG_DEF_QUEUE_DIRECTORY);
    assert_int_equal(cfg->queue.initial_backoff_ms, CONFIG_DEF_QUEUE_INITIAL_BACKOFF_MS);
    assert_int_equal(cfg->queue.max_backoff_ms, CONFIG_DEF_QUEUE_MAX_BACKOFF_MS);
    assert_int_equal(cfg->queue.max_age_ms, CONFIG_DEF_QUEUE_MAX_AGE_MS);
    assert_int_equal(cfg->queue.max_in_flight, CONFIG_DEF_QUEUE_MAX_IN_FLIGHT);
    assert_int_equal(config_route_delivery(cfg, -1), CONFIG_DELIVERY_SYNC);
    config_free(cfg);

    char dir[] = "/tmp/test_config_queue_XXXXXX";
    assert_non_null(mkdtemp(dir));
    snprintf(extra, sizeof(extra),
             "\"delivery\":\"queue\",\"queue\":{\"directory\":\"%s/q/sub\","
             "\"initial_backoff_ms\":500,\"max_age_ms\":60000}",
             dir);
    cfg = load_ok(with_key(j, sizeof(j), extra));
    assert_true(cfg->uses_queue);
    assert_true(cfg->queue_only);
    assert_int_equal(cfg->queue.initial_backoff_ms, 500);
    assert_int_equal(cfg->queue.max_backoff_ms, CONFIG_DEF_QUEUE_MAX_BACKOFF_MS);
    config_free(cfg);
    char made[256];
    snprintf(made, sizeof(made), "%s/q/sub", dir);
    struct stat st;
    assert_int_equal(stat(made, &st), 0); /* made, parents too */
    assert_true(S_ISDIR(st.st_mode));

    /* Routes: a route without "delivery" takes the top-level one. */
    snprintf(extra, sizeof(extra),
             "\"delivery\":\"sync_then_queue\",\"queue\":{\"directory\":\"%s/q\"}", dir);
    cfg = load_ok(routes_json(j, sizeof(j),
                              "[{\"match\":[\"a@example.com\"],\"endpoints\":[\"billing\"],"
                              "\"delivery\":\"queue\"},{\"match\":[\"*@eu.example.org\"],"
                              "\"endpoints\":[\"archive\"]},{\"match\":[\"*\"],"
                              "\"endpoints\":[\"helpdesk\",\"archive\"],\"delivery\":\"sync\"}]",
                              extra));
    assert_int_equal(config_route_delivery(cfg, 0), CONFIG_DELIVERY_QUEUE);
    assert_int_equal(config_route_delivery(cfg, 1), CONFIG_DELIVERY_SYNC_THEN_QUEUE);
    assert_int_equal(config_route_delivery(cfg, 2), CONFIG_DELIVERY_SYNC);
    assert_true(cfg->uses_queue);
    assert_false(cfg->queue_only);
    config_free(cfg);

    /* --delivery and --queue-dir replace the file's. */
    char qdir[256];
    snprintf(qdir, sizeof(qdir), "%s/flag", dir);
    struct config_overrides ov = {.delivery = "queue", .queue_dir = qdir};
    char err[ERR_MAX];
    assert_int_equal(load("{" BASE "}", &ov, &cfg, err), 0);
    assert_int_equal(cfg->delivery, CONFIG_DELIVERY_QUEUE);
    assert_string_equal(cfg->queue.directory, qdir);
    config_free(cfg);
    struct config_overrides bad = {.delivery = "later"};
    load_err_ov("{" BASE "}", &bad, "--delivery", "\"sync\", \"queue\" or \"sync_then_queue\"");

    /* Errors name the key. */
    load_err(with_key(j, sizeof(j), "\"delivery\":\"later\""), "config.json: delivery: must be",
             "\"sync_then_queue\"");
    load_err(
        with_key(j, sizeof(j), "\"delivery\":\"queue\",\"queue\":{\"directory\":\"relative/q\"}"),
        "queue.directory", "absolute");
    char file[300];
    snprintf(file, sizeof(file), "%s/plain", dir);
    int fd = open(file, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);
    snprintf(extra, sizeof(extra), "\"delivery\":\"queue\",\"queue\":{\"directory\":\"%s\"}", file);
    load_err(with_key(j, sizeof(j), extra), "queue.directory", NULL);
    load_err(with_key(j, sizeof(j), "\"queue\":{\"max_in_flight\":0}"), "queue.max_in_flight",
             "from 1 to 1000");
    load_err(with_key(j, sizeof(j),
                      "\"queue\":{\"initial_backoff_ms\":5000,"
                      "\"max_backoff_ms\":1000}"),
             "queue.max_backoff_ms", NULL);
    load_err(with_key(j, sizeof(j), "\"queue\":{\"directry\":\"/x\"}"), "queue", "directry");
    /* Nothing queues: the directory is not touched (it need not exist). */
    cfg = load_ok(with_key(j, sizeof(j), "\"queue\":{\"directory\":\"/nonexistent/q\"}"));
    config_free(cfg);
    unlink(file);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_tls_section(void **state)
{
    (void)state;
    char j[JSON_MAX];
    setenv("CFG_TEST_CERTDIR", "/etc/smtphook", 1);
    struct config *cfg = load_ok(with_key(
        j, sizeof(j),
        "\"tls\":{\"certificates\":[{\"cert\":\"${CFG_TEST_CERTDIR}/rsa.pem\","
        "\"key\":\"${CFG_TEST_CERTDIR}/rsa.key\"},{\"cert\":\"ec.pem\",\"key\":\"ec.key\"}],"
        "\"min_version\":\"TLSv1.3\",\"ciphers\":\"ECDHE-RSA-AES128-GCM-SHA256\","
        "\"ciphersuites\":\"TLS_AES_128_GCM_SHA256\",\"groups\":\"X25519:P-256\","
        "\"request_client_cert\":true,\"handshake_timeout_ms\":5000}"));
    assert_int_equal(cfg->tls.n_certificates, 2);
    assert_string_equal(cfg->tls.certificates[0].cert, "/etc/smtphook/rsa.pem"); /* expanded */
    assert_string_equal(cfg->tls.certificates[0].key, "/etc/smtphook/rsa.key");
    assert_string_equal(cfg->tls.certificates[1].cert, "ec.pem"); /* file order is kept */
    assert_string_equal(cfg->tls.certificates[1].key, "ec.key");
    assert_string_equal(cfg->tls.min_version, "TLSv1.3");
    assert_string_equal(cfg->tls.ciphers, "ECDHE-RSA-AES128-GCM-SHA256");
    assert_string_equal(cfg->tls.ciphersuites, "TLS_AES_128_GCM_SHA256");
    assert_string_equal(cfg->tls.groups, "X25519:P-256");
    assert_true(cfg->tls.request_client_cert);
    assert_int_equal(cfg->tls.handshake_timeout_ms, 5000);
    /* Certificates make STARTTLS the listeners' default. */
    assert_int_equal(cfg->listeners[0].tls, CONFIG_TLS_STARTTLS);
    assert_false(cfg->listeners[0].require_tls);
    config_free(cfg);

    /* Each key alone; the others keep their defaults. */
    cfg = load_ok(with_key(j, sizeof(j), "\"tls\":{\"min_version\":\"TLSv1.2\"}"));
    assert_string_equal(cfg->tls.min_version, "TLSv1.2");
    assert_int_equal(cfg->tls.n_certificates, 0);
    assert_int_equal(cfg->listeners[0].tls, CONFIG_TLS_NONE);
    assert_string_equal(cfg->tls.ciphers, CONFIG_DEF_TLS_CIPHERS);
    config_free(cfg);
    cfg = load_ok(with_key(j, sizeof(j), "\"tls\":{\"request_client_cert\":false}"));
    assert_false(cfg->tls.request_client_cert);
    assert_string_equal(cfg->tls.min_version, CONFIG_DEF_TLS_MIN_VERSION);
    config_free(cfg);
    cfg = load_ok(with_key(j, sizeof(j), "\"tls\":{}"));
    assert_int_equal(cfg->tls.handshake_timeout_ms, CONFIG_DEF_TLS_HANDSHAKE_TIMEOUT_MS);
    assert_null(cfg->tls.ciphersuites);
    config_free(cfg);
}

static void test_tls_errors(void **state)
{
    (void)state;
    char j[JSON_MAX];
    const struct {
        const char *tls;     /* value of "tls" */
        const char *path;    /* expected in the message */
        const char *problem; /* expected in the message */
    } bad[] = {
        {"[]", "config.json: tls", "must be an object"},
        {"{\"certificates\":" CERT_PAIR "}", "tls.certificates", "must be an array"},
        {"{\"certificates\":[]}", "tls.certificates", "at least one"},
        {"{\"certificates\":[\"a.pem\"]}", "tls.certificates[0]", "must be an object"},
        {"{\"certificates\":[" CERT_PAIR ",{\"cert\":\"b.pem\"}]}", "tls.certificates[1].key",
         "is required"},
        {"{\"certificates\":[{\"key\":\"b.key\"}]}", "tls.certificates[0].cert", "is required"},
        {"{\"certificates\":[{\"cert\":\"\",\"key\":\"b.key\"}]}", "tls.certificates[0].cert",
         "must not be empty"},
        {"{\"certificates\":[{\"cert\":\"b.pem\",\"key\":\"\"}]}", "tls.certificates[0].key",
         "must not be empty"},
        {"{\"certificates\":[{\"cert\":1,\"key\":\"b.key\"}]}", "tls.certificates[0].cert",
         "must be a string"},
        {"{\"certificates\":[{\"cert\":\"${CFG_TEST_UNSET}\",\"key\":\"k\"}]}",
         "tls.certificates[0].cert", "CFG_TEST_UNSET is not set"},
        {"{\"min_version\":\"TLSv1.1\"}", "tls.min_version", "must be \"TLSv1.2\" or \"TLSv1.3\""},
        {"{\"min_version\":\"tlsv1.3\"}", "tls.min_version", "must be \"TLSv1.2\" or"},
        {"{\"min_version\":\"1.2\"}", "tls.min_version", "must be \"TLSv1.2\" or"},
        {"{\"min_version\":1.2}", "tls.min_version", "must be a string"},
        {"{\"min_version\":\"\"}", "tls.min_version", "must not be empty"},
        {"{\"ciphers\":\"\"}", "tls.ciphers", "must not be empty"},
        {"{\"ciphers\":[\"AES\"]}", "tls.ciphers", "must be a string"},
        {"{\"ciphersuites\":\"\"}", "tls.ciphersuites", "must not be empty"},
        {"{\"ciphersuites\":null}", "tls.ciphersuites", "must be a string"},
        {"{\"groups\":\"\"}", "tls.groups", "must not be empty"},
        {"{\"groups\":5}", "tls.groups", "must be a string"},
        {"{\"request_client_cert\":\"yes\"}", "tls.request_client_cert", "must be true or false"},
        {"{\"request_client_cert\":1}", "tls.request_client_cert", "must be true or false"},
        {"{\"handshake_timeout_ms\":999}", "tls.handshake_timeout_ms", "from 1000 to 300000"},
        {"{\"certificate\":[]}", "tls.certificate", "unknown key"},
    };
    unsetenv("CFG_TEST_UNSET");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char extra[512];
        snprintf(extra, sizeof(extra), "\"tls\":%s", bad[i].tls);
        load_err(with_key(j, sizeof(j), extra), bad[i].path, bad[i].problem);
    }
    /* A required key has no default to fall back on. */
    load_err_exact(
        with_key(j, sizeof(j), "\"tls\":{\"certificates\":[{\"cert\":\"\",\"key\":\"k\"}]}"),
        "config.json: tls.certificates[0].cert: must not be empty");
}

static void test_listener_tls(void **state)
{
    (void)state;
    char j[JSON_MAX];
    /* Every mode, with certificates; require_tls where TLS is offered. */
    struct config *cfg = load_ok(
        listeners_json(j, sizeof(j),
                       "{\"address\":\"127.0.0.1:25\",\"tls\":\"none\"},"
                       "{\"address\":\"127.0.0.1:587\",\"tls\":\"starttls\",\"require_tls\":true},"
                       "{\"address\":\"127.0.0.1:465\",\"tls\":\"implicit\"},"
                       "{\"address\":\"127.0.0.1:2465\",\"tls\":\"implicit\",\"require_tls\":true},"
                       "{\"address\":\"127.0.0.1:2525\",\"require_tls\":false},"
                       "{\"address\":\"127.0.0.1:2526\",\"require_tls\":true}",
                       TLS_KEY));
    assert_int_equal(cfg->n_listeners, 6);
    assert_int_equal(cfg->listeners[0].tls, CONFIG_TLS_NONE);
    assert_false(cfg->listeners[0].require_tls);
    assert_int_equal(cfg->listeners[1].tls, CONFIG_TLS_STARTTLS);
    assert_true(cfg->listeners[1].require_tls);
    assert_int_equal(cfg->listeners[2].tls, CONFIG_TLS_IMPLICIT);
    assert_false(cfg->listeners[2].require_tls);
    assert_int_equal(cfg->listeners[3].tls, CONFIG_TLS_IMPLICIT); /* trivially true */
    assert_true(cfg->listeners[3].require_tls);
    assert_int_equal(cfg->listeners[4].tls, CONFIG_TLS_STARTTLS); /* the default */
    assert_false(cfg->listeners[4].require_tls);
    assert_int_equal(cfg->listeners[5].tls, CONFIG_TLS_STARTTLS);
    assert_true(cfg->listeners[5].require_tls);
    config_free(cfg);

    /* Without certificates "none" is the default and may be written. */
    cfg = load_ok(listeners_json(j, sizeof(j),
                                 "{\"address\":\"127.0.0.1:25\",\"tls\":\"none\","
                                 "\"require_tls\":false},{\"address\":\"127.0.0.1:26\"}",
                                 "\"tls\":{\"min_version\":\"TLSv1.3\"}"));
    assert_int_equal(cfg->listeners[0].tls, CONFIG_TLS_NONE);
    assert_int_equal(cfg->listeners[1].tls, CONFIG_TLS_NONE);
    config_free(cfg);

    /* TLS modes need certificates. */
    char err[ERR_MAX];
    cfg = (struct config *)1;
    assert_int_equal(config_load_string(listeners_json(j, sizeof(j),
                                                       "{\"address\":\"127.0.0.1:25\","
                                                       "\"tls\":\"starttls\"}",
                                                       NULL),
                                        "config.json", NULL, &cfg, err, sizeof(err)),
                     SH_ECONFIG);
    assert_null(cfg);
    assert_string_equal(err, "config.json: listeners[0].tls: starttls needs tls.certificates (or "
                             "--tls-cert and --tls-key)");
    load_err(listeners_json(j, sizeof(j),
                            "{\"address\":\"127.0.0.1:25\"},"
                            "{\"address\":\"127.0.0.1:465\",\"tls\":\"implicit\"}",
                            "\"tls\":{\"request_client_cert\":true}"),
             "config.json: listeners[1].tls: implicit needs tls.certificates", NULL);
    /* require_tls needs a mode that offers TLS. */
    load_err(listeners_json(j, sizeof(j),
                            "{\"address\":\"127.0.0.1:25\",\"tls\":\"none\",\"require_tls\":true}",
                            TLS_KEY),
             "config.json: listeners[0].require_tls: cannot be true with tls \"none\"", NULL);
    load_err(
        listeners_json(j, sizeof(j), "{\"address\":\"127.0.0.1:25\",\"require_tls\":true}", NULL),
        "config.json: listeners[0].require_tls: requiring TLS needs tls.certificates", NULL);

    /* Values. */
    const struct {
        const char *listener; /* the listener object */
        const char *path;     /* expected in the message */
        const char *problem;  /* expected in the message */
    } bad[] = {
        {"{\"address\":\"127.0.0.1:25\",\"tls\":\"STARTTLS\"}", "listeners[0].tls",
         "must be \"none\", \"starttls\" or \"implicit\""},
        {"{\"address\":\"127.0.0.1:25\",\"tls\":\"tls\"}", "listeners[0].tls", "must be \"none\""},
        {"{\"address\":\"127.0.0.1:25\",\"tls\":\"\"}", "listeners[0].tls", "must be \"none\""},
        {"{\"address\":\"127.0.0.1:25\",\"tls\":true}", "listeners[0].tls", "must be a string"},
        {"{\"address\":\"127.0.0.1:25\",\"require_tls\":\"true\"}", "listeners[0].require_tls",
         "must be true or false"},
        {"{\"address\":\"127.0.0.1:25\",\"require_tls\":null}", "listeners[0].require_tls",
         "must be true or false"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        load_err(listeners_json(j, sizeof(j), bad[i].listener, TLS_KEY), bad[i].path,
                 bad[i].problem);
}

static void test_endpoint_tls(void **state)
{
    (void)state;
    char j[JSON_MAX];
    setenv("CFG_TEST_CERTDIR", "/etc/smtphook", 1);
    struct config *cfg =
        load_ok(ep_json(j, sizeof(j),
                        "\"url\":\"HTTPS://app.example/in\",\"ca_file\":\"/etc/ssl/app-ca.pem\","
                        "\"client_cert\":\"${CFG_TEST_CERTDIR}/client.pem\","
                        "\"client_key\":\"${CFG_TEST_CERTDIR}/client.key\""));
    assert_string_equal(cfg->endpoints[0].ca_file, "/etc/ssl/app-ca.pem");
    assert_string_equal(cfg->endpoints[0].client_cert, "/etc/smtphook/client.pem");
    assert_string_equal(cfg->endpoints[0].client_key, "/etc/smtphook/client.key");
    config_free(cfg);

    /* Each one alone (the certificate with its key). */
    cfg = load_ok(ep_json(j, sizeof(j), "\"url\":\"https://h/\",\"ca_file\":\"ca.pem\""));
    assert_string_equal(cfg->endpoints[0].ca_file, "ca.pem");
    assert_null(cfg->endpoints[0].client_cert);
    assert_null(cfg->endpoints[0].client_key);
    config_free(cfg);
    cfg = load_ok(ep_json(
        j, sizeof(j), "\"url\":\"https://h/\",\"client_cert\":\"c.pem\",\"client_key\":\"c.key\""));
    assert_null(cfg->endpoints[0].ca_file);
    assert_string_equal(cfg->endpoints[0].client_cert, "c.pem");
    config_free(cfg);

    const struct {
        const char *body;    /* the endpoint object's keys */
        const char *path;    /* expected in the message */
        const char *problem; /* expected in the message */
    } bad[] = {
        {"\"url\":\"https://h/\",\"client_cert\":\"c.pem\"", "endpoints.app.client_key",
         "is required with client_cert"},
        {"\"url\":\"https://h/\",\"client_key\":\"c.key\"", "endpoints.app.client_cert",
         "is required with client_key"},
        {"\"url\":\"http://h/\",\"ca_file\":\"ca.pem\"", "endpoints.app.ca_file",
         "applies to https:// URLs only"},
        {"\"url\":\"http://h/\",\"client_cert\":\"c.pem\",\"client_key\":\"c.key\"",
         "endpoints.app.client_cert", "applies to https:// URLs only"},
        {"\"url\":\"https://h/\",\"ca_file\":\"\"", "endpoints.app.ca_file", "must not be empty"},
        {"\"url\":\"https://h/\",\"ca_file\":[\"a.pem\"]", "endpoints.app.ca_file",
         "must be a string"},
        {"\"url\":\"https://h/\",\"client_cert\":\"\",\"client_key\":\"k\"",
         "endpoints.app.client_cert", "must not be empty"},
        {"\"url\":\"https://h/\",\"client_cert\":\"c\",\"client_key\":false",
         "endpoints.app.client_key", "must be a string"},
        {"\"url\":\"https://h/\",\"capath\":\"/etc/ssl/certs\"", "endpoints.app.capath",
         "unknown key"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        load_err(ep_json(j, sizeof(j), bad[i].body), bad[i].path, bad[i].problem);

    /* --webhook replaces such an endpoint with a plain one. */
    struct config_overrides ov = {.webhook = "http://127.0.0.1:9/x"};
    char err[ERR_MAX];
    assert_int_equal(load(ep_json(j, sizeof(j), "\"url\":\"https://h/\",\"ca_file\":\"ca.pem\""),
                          &ov, &cfg, err),
                     0);
    assert_null(cfg->endpoints[0].ca_file);
    config_free(cfg);
}

static void test_override_tls(void **state)
{
    (void)state;
    char j[JSON_MAX], err[ERR_MAX];
    struct config *cfg = NULL;

    /* Both or neither, never empty. */
    struct config_overrides cert_only = {.tls_cert = "/certs/a.pem"};
    load_err_ov("{" BASE "}", &cert_only, "--tls-cert: needs --tls-key", NULL);
    struct config_overrides key_only = {.tls_key = "/certs/a.key"};
    load_err_ov("{" BASE "}", &key_only, "--tls-key: needs --tls-cert", NULL);
    struct config_overrides empty_cert = {.tls_cert = "", .tls_key = "k"};
    load_err_ov("{" BASE "}", &empty_cert, "--tls-cert: must not be empty", NULL);
    struct config_overrides empty_key = {.tls_cert = "c", .tls_key = ""};
    load_err_ov("{" BASE "}", &empty_key, "--tls-key: must not be empty", NULL);
    assert_int_equal(config_load(NULL, &cert_only, &cfg, err, sizeof(err)), SH_ECONFIG);
    assert_string_equal(err, "--tls-cert: needs --tls-key as well (give both or neither)");

    /* They replace the file's certificates; the other settings stay. */
    struct config_overrides ov = {.tls_cert = "/cli/cert.pem", .tls_key = "/cli/key.pem"};
    assert_int_equal(load(with_key(j, sizeof(j),
                                   "\"tls\":{\"certificates\":[" CERT_PAIR "," CERT_PAIR "],"
                                   "\"min_version\":\"TLSv1.3\"}"),
                          &ov, &cfg, err),
                     0);
    assert_int_equal(cfg->tls.n_certificates, 1);
    assert_string_equal(cfg->tls.certificates[0].cert, "/cli/cert.pem");
    assert_string_equal(cfg->tls.certificates[0].key, "/cli/key.pem");
    assert_string_equal(cfg->tls.min_version, "TLSv1.3");
    assert_int_equal(cfg->listeners[0].tls, CONFIG_TLS_STARTTLS);
    config_free(cfg);

    /* A file without certificates: its listeners default to starttls, a written mode stays,
     * and a mode that needs certificates is satisfied by the flags. */
    assert_int_equal(load(listeners_json(j, sizeof(j),
                                         "{\"address\":\"127.0.0.1:25\"},"
                                         "{\"address\":\"127.0.0.1:26\",\"tls\":\"none\"},"
                                         "{\"address\":\"127.0.0.1:465\",\"tls\":\"implicit\","
                                         "\"require_tls\":true}",
                                         NULL),
                          &ov, &cfg, err),
                     0);
    assert_int_equal(cfg->tls.n_certificates, 1);
    assert_int_equal(cfg->listeners[0].tls, CONFIG_TLS_STARTTLS);
    assert_int_equal(cfg->listeners[1].tls, CONFIG_TLS_NONE);
    assert_int_equal(cfg->listeners[2].tls, CONFIG_TLS_IMPLICIT);
    assert_true(cfg->listeners[2].require_tls);
    config_free(cfg);

    /* --listen listeners get the default mode, whatever the file's listeners said. */
    const char *listen[] = {"127.0.0.1:2525", "[::1]:2525"};
    struct config_overrides ovl = {
        .listen = listen, .n_listen = 2, .tls_cert = "/cli/cert.pem", .tls_key = "/cli/key.pem"};
    assert_int_equal(
        load(listeners_json(j, sizeof(j), "{\"address\":\"127.0.0.1:25\",\"tls\":\"none\"}", NULL),
             &ovl, &cfg, err),
        0);
    assert_int_equal(cfg->n_listeners, 2);
    assert_int_equal(cfg->listeners[0].tls, CONFIG_TLS_STARTTLS);
    assert_int_equal(cfg->listeners[1].tls, CONFIG_TLS_STARTTLS);
    assert_false(cfg->listeners[0].require_tls);
    config_free(cfg);
    /* --listen drops what the file said about its listeners: the default mode (the file has
     * certificates here) and no require_tls. */
    struct config_overrides plain = {.listen = listen, .n_listen = 1};
    assert_int_equal(load(listeners_json(j, sizeof(j),
                                         "{\"address\":\"127.0.0.1:25\",\"tls\":\"implicit\","
                                         "\"require_tls\":true}",
                                         TLS_KEY),
                          &plain, &cfg, err),
                     0);
    assert_int_equal(cfg->listeners[0].tls, CONFIG_TLS_STARTTLS); /* the file has certificates */
    assert_false(cfg->listeners[0].require_tls);
    config_free(cfg);

    /* The quick start with a certificate: STARTTLS on the --listen address. */
    struct config_overrides quick = {.listen = listen,
                                     .n_listen = 1,
                                     .webhook = "http://h:1/",
                                     .tls_cert = "/cli/cert.pem",
                                     .tls_key = "/cli/key.pem"};
    assert_int_equal(config_load(NULL, &quick, &cfg, err, sizeof(err)), 0);
    assert_int_equal(cfg->listeners[0].tls, CONFIG_TLS_STARTTLS);
    assert_int_equal(cfg->tls.n_certificates, 1);
    assert_string_equal(cfg->tls.min_version, CONFIG_DEF_TLS_MIN_VERSION);
    config_free(cfg);
    quick.tls_cert = quick.tls_key = NULL;
    assert_int_equal(config_load(NULL, &quick, &cfg, err, sizeof(err)), 0);
    assert_int_equal(cfg->listeners[0].tls, CONFIG_TLS_NONE);
    config_free(cfg);
}

/* ep_json - BASE with the endpoint's object given. */
#define EP_WITH(obj)                                                                               \
    "{" LISTEN_KEY "," DOMAIN_KEY                                                                  \
    ",\"endpoints\":{\"app\":{\"url\":\"http://127.0.0.1:8080/hook\"," obj "}}}"
#define SECRET_24 "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SECRET_23 "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRY"             /* 23 bytes, unpadded */
#define SECRET_32 "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8" /* padding left out */
#define SECRET_64                                                                                  \
    "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw"
#define SECRET_65                                                                                  \
    "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+"   \
    "P0A="
/* Ed25519 (v1a) keys: RFC 8032 TEST 1's seed, alone, unpadded, with its public key, with
 * TEST 2's public key; the public key alone; a 31-byte seed. */
#define ED_SEED       "whsk_nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A="
#define ED_SEED_NOPAD "whsk_nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
#define ED_SEED_PUB                                                                                \
    "whsk_nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2DXWpgBgrEKt9VL/"                               \
    "tPJZAc6DuFy89qmIyWvAhpo9wdRGg=="
#define ED_SEED_OTHER                                                                              \
    "whsk_nWGxne/"                                                                                 \
    "9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A9QBfD6EOJWpK3CqdNG368nJgszy7ElozAzVXxKvRmDA=="
#define ED_PUB     "whpk_11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
#define ED_SEED_31 "whsk_nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyufw=="

static void test_endpoint_format_defaults(void **state)
{
    (void)state;
    struct config *cfg = load_ok("{" BASE "}");
    const struct config_endpoint *e = &cfg->endpoints[0];
    assert_int_equal(e->format, CONFIG_FORMAT_RAW);
    assert_int_equal(e->preset, CONFIG_PRESET_NONE);
    assert_int_equal(e->max_header_bytes, 16384);
    assert_null(e->basic_auth.header);
    assert_int_equal(e->signing.scheme, CONFIG_SIGNING_NONE);
    assert_int_equal(e->signing.n_secrets, 0);
    config_free(cfg);
    cfg = load_ok(EP_WITH("\"format\":\"json\",\"max_header_bytes\":4096"));
    assert_int_equal(cfg->endpoints[0].format, CONFIG_FORMAT_JSON);
    assert_int_equal(cfg->endpoints[0].max_header_bytes, 4096);
    config_free(cfg);
    cfg = load_ok(EP_WITH("\"format\":\"multipart\""));
    assert_int_equal(cfg->endpoints[0].format, CONFIG_FORMAT_MULTIPART);
    config_free(cfg);
    load_err(EP_WITH("\"format\":\"xml\""), "format", NULL);
    load_err(EP_WITH("\"max_header_bytes\":4095"), "max_header_bytes", NULL);
    load_err(EP_WITH("\"max_header_bytes\":1048577"), "max_header_bytes", NULL);
    load_err(EP_WITH("\"preset\":\"postmark\""), "preset", NULL);
}

static void test_endpoint_basic_auth(void **state)
{
    (void)state;
    struct config *cfg =
        load_ok(EP_WITH("\"basic_auth\":{\"user\":\"user\",\"password\":\"password\"}"));
    /* base64("user:password") */
    assert_string_equal(cfg->endpoints[0].basic_auth.header,
                        "Authorization: Basic dXNlcjpwYXNzd29yZA==");
    config_free(cfg);
    load_err(EP_WITH("\"basic_auth\":{\"user\":\"a:b\",\"password\":\"p\"}"), "user", "':'");
    load_err(EP_WITH("\"basic_auth\":{\"user\":\"u\"}"), "password", NULL);
    load_err(EP_WITH("\"basic_auth\":{\"password\":\"p\"}"), "user", NULL);
    load_err(EP_WITH("\"basic_auth\":{\"user\":\"u\",\"password\":\"p\"},"
                     "\"headers\":{\"Authorization\":\"Bearer x\"}"),
             "Authorization", NULL);
}

static void test_endpoint_presets(void **state)
{
    (void)state;
    struct config *cfg = load_ok(EP_WITH("\"preset\":\"rails_relay\",\"basic_auth\":{\"user\":"
                                         "\"actionmailbox\",\"password\":\"p\"}"));
    assert_int_equal(cfg->endpoints[0].preset, CONFIG_PRESET_RAILS_RELAY);
    assert_int_equal(cfg->endpoints[0].format, CONFIG_FORMAT_RAW);
    config_free(cfg);
    cfg = load_ok(EP_WITH(
        "\"preset\":\"sendgrid\",\"basic_auth\":{\"user\":\"actionmailbox\",\"password\":\"p\"}"));
    assert_int_equal(cfg->endpoints[0].format, CONFIG_FORMAT_MULTIPART);
    config_free(cfg);
    cfg = load_ok(
        EP_WITH("\"preset\":\"mailgun\",\"signing\":{\"scheme\":\"mailgun\",\"key\":\"k\"}"));
    assert_int_equal(cfg->endpoints[0].preset, CONFIG_PRESET_MAILGUN);
    assert_int_equal(cfg->endpoints[0].format, CONFIG_FORMAT_MULTIPART);
    assert_string_equal(cfg->endpoints[0].signing.key, "k");
    config_free(cfg);
    load_err(EP_WITH("\"preset\":\"rails_relay\""), "basic_auth", NULL);
    load_err(EP_WITH("\"preset\":\"sendgrid\""), "basic_auth", NULL);
    load_err(EP_WITH("\"preset\":\"mailgun\""), "signing", NULL);
    load_err(EP_WITH("\"preset\":\"mailgun\",\"format\":\"json\","
                     "\"signing\":{\"scheme\":\"mailgun\",\"key\":\"k\"}"),
             "format", "mailgun");
    load_err(EP_WITH("\"signing\":{\"scheme\":\"mailgun\",\"key\":\"k\"}"), "signing", "mailgun");
}

static void test_endpoint_signing(void **state)
{
    (void)state;
    struct config *cfg =
        load_ok(EP_WITH("\"signing\":{\"scheme\":\"standard-webhooks\",\"secrets\":[\"" SECRET_24
                        "\",\"" SECRET_32 "\"]}"));
    const struct config_signing *sg = &cfg->endpoints[0].signing;
    assert_int_equal(sg->scheme, CONFIG_SIGNING_STANDARD_WEBHOOKS);
    assert_int_equal(sg->n_secrets, 2);
    assert_int_equal(sg->secrets[0].len, 24);
    assert_int_equal(sg->secrets[1].len, 32); /* without its padding */
    for (unsigned i = 0; i < 32; i++)
        assert_int_equal(sg->secrets[1].key[i], i);
    config_free(cfg);
    /* with its padding too */
    cfg = load_ok(
        EP_WITH("\"signing\":{\"scheme\":\"standard-webhooks\",\"secrets\":[\"" SECRET_32 "=\"]}"));
    assert_int_equal(cfg->endpoints[0].signing.secrets[0].len, 32);
    config_free(cfg);
    load_err(
        EP_WITH("\"signing\":{\"scheme\":\"standard-webhooks\",\"secrets\":[\"" SECRET_23 "\"]}"),
        "secrets[0]", "24 to 64");
    load_err(
        EP_WITH("\"signing\":{\"scheme\":\"standard-webhooks\",\"secrets\":[\"" SECRET_65 "\"]}"),
        "secrets[0]", "24 to 64");
    load_err(EP_WITH("\"signing\":{\"scheme\":\"standard-webhooks\",\"secrets\":[\"" SECRET_24 "\","
                     "\"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]}"),
             "secrets[1]", "whsec_");
    /* v1a: a whsk_ key is the 32-byte Ed25519 seed (RFC 8032 TEST 1 here), with or without
     * its padding, or the seed and its public key; mixed with whsec_ secrets, in order. */
    static const uint8_t pub1[32] = {0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7,
                                     0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07, 0x3a,
                                     0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25,
                                     0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a};
    cfg = load_ok(EP_WITH("\"signing\":{\"scheme\":\"standard-webhooks\",\"secrets\":[\"" SECRET_24
                          "\",\"" ED_SEED "\",\"" ED_SEED_PUB "\",\"" ED_SEED_NOPAD "\"]}"));
    sg = &cfg->endpoints[0].signing;
    assert_int_equal(sg->n_secrets, 4);
    assert_false(sg->secrets[0].ed25519);
    for (size_t i = 1; i < 4; i++) {
        assert_true(sg->secrets[i].ed25519);
        assert_int_equal(sg->secrets[i].len, 32);
        assert_int_equal(sg->secrets[i].key[0], 0x9d);
        assert_int_equal(sg->secrets[i].key[31], 0x60);
        assert_memory_equal(sg->secrets[i].public_key, pub1, 32);
    }
    config_free(cfg);
    /* refused: a public key where the secret goes, the wrong size, a public half that is
     * another key's, not base64 */
    load_err(EP_WITH("\"signing\":{\"scheme\":\"standard-webhooks\",\"secrets\":[\"" ED_PUB "\"]}"),
             "secrets[0]", "public key");
    load_err(EP_WITH("\"signing\":{\"scheme\":\"standard-webhooks\",\"secrets\":[\"" SECRET_24
                     "\",\"" ED_SEED_31 "\"]}"),
             "secrets[1]", "32-byte Ed25519 seed");
    load_err(EP_WITH("\"signing\":{\"scheme\":\"standard-webhooks\",\"secrets\":[\"whsk_"
                     "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]}"),
             "secrets[0]", "32-byte Ed25519 seed");
    load_err(EP_WITH("\"signing\":{\"scheme\":\"standard-webhooks\",\"secrets\":[\"" ED_SEED_OTHER
                     "\"]}"),
             "secrets[0]", "not the public key");
    load_err(EP_WITH("\"signing\":{\"scheme\":\"standard-webhooks\",\"secrets\":[\"whsk_"
                     "nWGxne/9WmC6hEr0kuwsxERJ!Wl7MmkZcDusAxyuf2A=\"]}"),
             "secrets[0]", "32-byte Ed25519 seed");
    /* the secret itself is never in the message */
    char err[ERR_MAX];
    struct config *bad = NULL;
    assert_int_equal(
        load(EP_WITH("\"signing\":{\"scheme\":\"standard-webhooks\",\"secrets\":[\"" ED_SEED_OTHER
                     "\"]}"),
             NULL, &bad, err),
        SH_ECONFIG);
    assert_null(strstr(err, "nWGxne"));
    load_err(EP_WITH("\"signing\":{\"scheme\":\"standard-webhooks\",\"secrets\":[]}"), "secrets",
             NULL);
    load_err(EP_WITH("\"signing\":{\"scheme\":\"standard-webhooks\"}"), "secrets", NULL);
    load_err(EP_WITH("\"signing\":{\"secrets\":[\"" SECRET_24 "\"]}"), "scheme", NULL);
    load_err(EP_WITH("\"signing\":{\"scheme\":\"standard-webhooks\",\"secrets\":[\"" SECRET_24
                     "\"],\"key\":\"k\"}"),
             "key", NULL);
    load_err(EP_WITH("\"signing\":{\"scheme\":\"standard-webhooks\",\"secrets\":[\"" SECRET_24
                     "\"]},\"headers\":{\"webhook-id\":\"x\"}"),
             "webhook-id", NULL);
}

/* The longest secret the schema allows, 64 bytes, with and without its padding. */
static void test_endpoint_signing_64(void **state)
{
    (void)state;
    struct config *cfg = load_ok(
        EP_WITH("\"signing\":{\"scheme\":\"standard-webhooks\",\"secrets\":[\"" SECRET_64 "\"]}"));
    assert_int_equal(cfg->endpoints[0].signing.secrets[0].len, 64);
    config_free(cfg);
    cfg = load_ok(EP_WITH("\"signing\":{\"scheme\":\"standard-webhooks\",\"secrets\":[\"" SECRET_64
                          "==\"]}"));
    assert_int_equal(cfg->endpoints[0].signing.secrets[0].len, 64);
    config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_full_values),
        cmocka_unit_test(test_int_ranges),
        cmocka_unit_test(test_exact_message),
        cmocka_unit_test(test_proxy_protocol),
        cmocka_unit_test(test_connect_exceeds_total),
        cmocka_unit_test(test_connect_default_fits_total),
        cmocka_unit_test(test_retry_breaker),
        cmocka_unit_test(test_reply_map),
        cmocka_unit_test(test_recipient_delimiter),
        cmocka_unit_test(test_one_route_per_transaction),
        cmocka_unit_test(test_recipient_check),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_routes_delimiter),
        cmocka_unit_test(test_routes_warnings),
        cmocka_unit_test(test_routes_errors),
        cmocka_unit_test(test_routes_webhook),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_required_keys),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_hostname_and_log_level),
        cmocka_unit_test(test_spool_directory),
        cmocka_unit_test(test_delivery_and_queue),
        cmocka_unit_test(test_env_expansion),
        cmocka_unit_test(test_env_errors),
        cmocka_unit_test(test_override_listen),
        cmocka_unit_test(test_override_listen_drops_settings),
        cmocka_unit_test(test_override_webhook_hostname),
        cmocka_unit_test(test_quick_start),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_example_file),
        cmocka_unit_test(test_parse_address),
        cmocka_unit_test(test_domains),
        cmocka_unit_test(test_endpoint_urls_and_names),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_tls_section),
        cmocka_unit_test(test_tls_errors),
        cmocka_unit_test(test_listener_tls),
        cmocka_unit_test(test_endpoint_tls),
        cmocka_unit_test(test_override_tls),
        cmocka_unit_test(test_endpoint_format_defaults),
        cmocka_unit_test(test_endpoint_basic_auth),
        cmocka_unit_test(test_endpoint_presets),
        cmocka_unit_test(test_endpoint_signing),
        cmocka_unit_test(test_endpoint_signing_64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
