/* config.c - reads, expands and validates the configuration; builds the immutable struct config.
 *
 * One of the two modules that include jansson (with payload.c). Must not include libuv, curl
 * or OpenSSL. Its only I/O is reading the file and checking that the spool directory takes
 * files (one made and removed).
 * Policy is data: every scalar key (integer, boolean, string, enum) is a row of one descriptor
 * table (section, key, type, field, bounds, default, validator), and every object of the file
 * is a row of a section table. One function applies them to a JSON object, so a key's name,
 * range and default live in exactly one place, and an object's allowed keys are its rows, its
 * nested sections and its structural keys (arrays and maps, each with its own parser).
 * TLS files and cipher strings are only checked to be non-empty strings here: tls.c opens and
 * parses them when it builds the TLS context (it is the one module that includes OpenSSL). */
#include "smtphook/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "smtphook/app_reply.h"
#include "smtphook/base64.h"
#include "smtphook/buf.h"
#include "smtphook/ed25519.h"
#include "smtphook/error.h"
#include "smtphook/log.h"
#include "smtphook/route.h"
#include "smtphook/smtp_cmd.h"

#define CONFIG_PATH_MAX          256    /* longest key path kept for messages */
#define CONFIG_QUOTE_MAX         96     /* longest echo of a bad value in a message */
#define CONFIG_HOSTNAME_MAX      255    /* RFC 1035 §2.3.4: names are at most 255 octets */
#define CONFIG_DOMAIN_MAX        253    /* RFC 1035 §2.3.4: 255 octets on the wire, 253 as text */
#define CONFIG_LABEL_MAX         63     /* RFC 1035 §2.3.4: labels are at most 63 octets */
#define CONFIG_PORT_MAX          65535u /* largest TCP port */
#define CONFIG_PORT_DIGITS       5      /* digits in CONFIG_PORT_MAX */
#define CONFIG_TIMEOUT_MIN       100u   /* endpoint timeouts: below this nothing completes */
#define CONFIG_TIMEOUT_MAX       590000u /* inside the 10 min wait after the dot, RFC 5321 §4.5.3.2.6 */
#define CONFIG_CHOICES_MAX       128  /* longest list of enum values in a message */
#define CONFIG_WARNING_MAX       512  /* longest warning, as long as main.c's error buffer */
#define CONFIG_BACKOFF_MIN       10u  /* retry waits: shorter is a busy loop */
#define CONFIG_ATTEMPTS_MAX      10u  /* retry: more only stretch a failure over the deadline */
#define CONFIG_STATUS_MIN        100u /* reply_map keys: HTTP status codes, RFC 9110 §15 */
#define CONFIG_STATUS_MAX        599u
#define CONFIG_CHECK_TIMEOUT_MAX 60000u    /* recipient check: the sender waits at RCPT */
#define CONFIG_CHECK_CACHE_MAX   86400000u /* a day */
#define CONFIG_ADDR_MAX          512 /* an address made from a pattern: 64 + 1 + 255 and room */
#define CONFIG_ROUTE_EXAMPLE     "{\"match\": [\"*@example.com\"], \"endpoints\": [\"app\"]}"
#define CONFIG_DELIMITER_MAX     8u /* recipient_delimiter: a few alternatives ("+-") */
#define CONFIG_DELIMITERS        "!#$%&'*+-./=?^_`{|}~" /* atext and '.' that are not alphanumeric */
#define CONFIG_DEFAULT_NAME      "default"              /* endpoint name given to --webhook */
#define CONFIG_RESERVED_PFX      "X-Smtphook-"          /* header prefix the HTTP client owns */

/* TLS handshake deadline: a handshake takes a few round trips; RFC 5321 §4.5.3.2.7 gives a
 * client 5 minutes for any step, so longer would only keep dead connections around. */
#define CONFIG_HANDSHAKE_MIN 1000u
#define CONFIG_HANDSHAKE_MAX 300000u

_Static_assert(sizeof(unsigned) == sizeof(uint32_t), "unsigned limits are stored as uint32_t");

#define CONFIG_NROWS(t) (sizeof(t) / sizeof((t)[0]))

/* Listener "tls" values, indexed by enum config_tls_mode. */
static const char *const config_tls_modes[] = {
    [CONFIG_TLS_NONE] = "none",
    [CONFIG_TLS_STARTTLS] = "starttls",
    [CONFIG_TLS_IMPLICIT] = "implicit",
    [CONFIG_TLS_IMPLICIT + 1] = NULL,
};

/* "routes[].policy" values, indexed by enum config_route_policy. */
static const char *const config_route_policies[] = {
    [CONFIG_ROUTE_ALL] = "all",
    [CONFIG_ROUTE_FAILOVER] = "failover",
    [CONFIG_ROUTE_FAILOVER + 1] = NULL,
};

/* "delivery" values, indexed by enum config_delivery (INHERIT has no name). */
static const char *const config_deliveries[] = {
    [CONFIG_DELIVERY_SYNC] = "sync",
    [CONFIG_DELIVERY_QUEUE] = "queue",
    [CONFIG_DELIVERY_SYNC_THEN_QUEUE] = "sync_then_queue",
    [CONFIG_DELIVERY_INHERIT] = NULL,
};

/* "log_format" values, indexed by enum log_format. */
static const char *const config_log_formats[] = {
    [LOG_FORMAT_TEXT] = "text",
    [LOG_FORMAT_JSON] = "json",
    [LOG_FORMAT_JSON + 1] = NULL,
};

/* Listener "proxy_protocol" values, indexed by enum config_proxy. */
static const char *const config_proxy_modes[] = {
    [CONFIG_PROXY_NONE] = "none", [CONFIG_PROXY_V1] = "v1",      [CONFIG_PROXY_V2] = "v2",
    [CONFIG_PROXY_ANY] = "any",   [CONFIG_PROXY_ANY + 1] = NULL,
};

/* Endpoint "format" values, indexed by enum config_format. */
static const char *const config_formats[] = {
    [CONFIG_FORMAT_RAW] = "raw",
    [CONFIG_FORMAT_JSON] = "json",
    [CONFIG_FORMAT_MULTIPART] = "multipart",
    [CONFIG_FORMAT_MULTIPART + 1] = NULL,
};

/* Endpoint "preset" values, indexed by enum config_preset. */
static const char *const config_presets[] = {
    [CONFIG_PRESET_NONE] = "none",       [CONFIG_PRESET_RAILS_RELAY] = "rails_relay",
    [CONFIG_PRESET_MAILGUN] = "mailgun", [CONFIG_PRESET_SENDGRID] = "sendgrid",
    [CONFIG_PRESET_SENDGRID + 1] = NULL,
};

/* Endpoint "signing.scheme" values, indexed by enum config_signing_scheme. */
static const char *const config_signing_schemes[] = {
    [CONFIG_SIGNING_NONE] = "none",
    [CONFIG_SIGNING_STANDARD_WEBHOOKS] = "standard-webhooks",
    [CONFIG_SIGNING_MAILGUN] = "mailgun",
    [CONFIG_SIGNING_MAILGUN + 1] = NULL,
};

/* The user Action Mailbox's relay and SendGrid ingresses accept (RFC 7617 user-id). */
#define CONFIG_RAILS_USER "actionmailbox"

/* Standard Webhooks secrets: "whsec_" and the base64 of 24 to 64 random bytes (v1); an
 * Ed25519 secret key is "whsk_" and base64 (v1a), its public key "whpk_" and base64. */
#define CONFIG_SECRET_PREFIX "whsec_"
#define CONFIG_SECRET_MIN    24u
#define CONFIG_KEY_PREFIX    "whsk_"
#define CONFIG_PUBLIC_PREFIX "whpk_"

/* "recipient_check.on_failure" values, indexed by accept_on_failure. */
static const char *const config_on_failure[] = {"defer", "accept", NULL};

/* "tls.min_version" values: what OpenSSL calls the protocol versions. TLS 1.0 and 1.1 are
 * not offered (RFC 8996 deprecates them). */
static const char *const config_tls_versions[] = {"TLSv1.2", "TLSv1.3", NULL};

/* Request headers the HTTP client sets itself (RFC 9110 §8.6, §7.2, §10.1.1, §7.6.1;
 * RFC 9112 §6.1); a configured value would corrupt the request. */
static const char *const config_reserved_headers[] = {
    "Content-Type", "Content-Length", "Host", "Transfer-Encoding", "Expect", "Connection", NULL};

/* State of one load: where messages go and the key path being checked. */
struct config_ctx {
    const char *what;           /* message prefix (file name), NULL for none */
    char *err;                  /* message buffer, may be NULL */
    size_t errlen;              /* size of err */
    char path[CONFIG_PATH_MAX]; /* key path, e.g. "listeners[1].address" */
    size_t pathlen;             /* bytes used in path */
    struct config *cfg;         /* the config being built */
    bool *tls_given;            /* per file listener: "tls" was written (else the default) */
    size_t n_tls_given;         /* entries in tls_given; 0 once --listen replaced them */
    bool routes_dropped;        /* --webhook replaced the endpoints the file's routes name */
};

/* config_vformat - "<what>: <path>: <message>" into buf (len > 0), truncated to fit. */
static void config_vformat(const struct config_ctx *c, char *buf, size_t len, const char *fmt,
                           va_list ap) __attribute__((format(printf, 4, 0)));
static void config_vformat(const struct config_ctx *c, char *buf, size_t len, const char *fmt,
                           va_list ap)
{
    int n = snprintf(buf, len, "%s%s%s%s", c->what ? c->what : "", c->what ? ": " : "", c->path,
                     c->pathlen ? ": " : "");
    size_t used = n < 0 ? 0 : (size_t)n;
    if (used < len)
        vsnprintf(buf + used, len - used, fmt, ap);
}

/* config_fail - write "<what>: <path>: <message>" to the error buffer; returns SH_ECONFIG. */
static int config_fail(struct config_ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int config_fail(struct config_ctx *c, const char *fmt, ...)
{
    if (c->err == NULL || c->errlen == 0)
        return SH_ECONFIG;
    va_list ap;
    va_start(ap, fmt);
    config_vformat(c, c->err, c->errlen, fmt, ap);
    va_end(ap);
    return SH_ECONFIG;
}

/* config_nomem - report an allocation failure; returns SH_ENOMEM. */
static int config_nomem(struct config_ctx *c)
{
    config_fail(c, "%s", sh_strerror(SH_ENOMEM));
    return SH_ENOMEM;
}

/* config_warn - add "<what>: <path>: <message>" to the config's warnings: a problem that
 * does not stop a start. 0 or SH_ENOMEM. */
static int config_warn(struct config_ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int config_warn(struct config_ctx *c, const char *fmt, ...)
{
    char msg[CONFIG_WARNING_MAX];
    va_list ap;
    va_start(ap, fmt);
    config_vformat(c, msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct config *cfg = c->cfg;
    char **w = realloc(cfg->warnings, (cfg->n_warnings + 1) * sizeof(*w));
    if (w == NULL)
        return config_nomem(c);
    cfg->warnings = w;
    if ((w[cfg->n_warnings] = strdup(msg)) == NULL)
        return config_nomem(c);
    cfg->n_warnings++;
    return 0;
}

/* config_quote - a printable copy of s for a message (admin text, but it may hold anything). */
static const char *config_quote(char *dst, size_t dstlen, const char *s)
{
    return log_sanitize(dst, dstlen, s, strlen(s));
}

/* config_push - append ".key" (or "key" at the top) to the path; returns the old length for
 * config_pop. The key is sanitized so that a message stays one printable line. */
static size_t config_push(struct config_ctx *c, const char *key)
{
    size_t saved = c->pathlen;
    char clean[CONFIG_PATH_MAX];
    if (key[0] == '\0')
        snprintf(clean, sizeof(clean), "\"\""); /* an empty key still shows in the path */
    else
        config_quote(clean, sizeof(clean), key);
    snprintf(c->path + c->pathlen, sizeof(c->path) - c->pathlen, "%s%s", c->pathlen ? "." : "",
             clean);
    c->pathlen = strlen(c->path);
    return saved;
}

/* config_push_index - append "[i]" to the path; returns the old length. */
static size_t config_push_index(struct config_ctx *c, size_t i)
{
    size_t saved = c->pathlen;
    snprintf(c->path + c->pathlen, sizeof(c->path) - c->pathlen, "[%zu]", i);
    c->pathlen = strlen(c->path);
    return saved;
}

/* config_pop - return to the path length saved by a push. */
static void config_pop(struct config_ctx *c, size_t saved)
{
    c->pathlen = saved;
    c->path[saved] = '\0';
}

/* config_set_path - replace the prefix and the whole path ("" for none). */
static void config_set_path(struct config_ctx *c, const char *what, const char *path)
{
    c->what = what;
    c->pathlen = 0;
    c->path[0] = '\0';
    if (path[0] != '\0')
        config_push(c, path);
}

/* config_env_name_ok - NAME of ${NAME}: [A-Za-z_][A-Za-z0-9_]* (POSIX portable names). */
static bool config_env_name_ok(const char *s, size_t n)
{
    if (n == 0 || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!(ch == '_' || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
              (ch >= '0' && ch <= '9')))
            return false;
    }
    return true;
}

/* config_expand - replace every ${NAME} in s from the environment. "$" without "{" is
 * literal, "$$" is not special. On success *out is a new string the caller frees. */
static int config_expand(struct config_ctx *c, const char *s, char **out)
{
    struct buf b = {0};
    char *name = NULL;
    int rc = SH_ENOMEM;

    for (;;) {
        const char *d = strstr(s, "${");
        if (d == NULL)
            break;
        if (buf_append(&b, s, (size_t)(d - s)) != 0)
            goto nomem;
        const char *start = d + 2;
        const char *end = strchr(start, '}');
        if (end == NULL) {
            rc = config_fail(c, "unterminated \"${\" (write ${NAME})");
            goto fail;
        }
        size_t n = (size_t)(end - start);
        if (!config_env_name_ok(start, n)) {
            char q[CONFIG_QUOTE_MAX];
            rc = config_fail(c, "invalid variable name \"%s\" in ${...}",
                             log_sanitize(q, sizeof(q), start, n));
            goto fail;
        }
        name = strndup(start, n);
        if (name == NULL)
            goto nomem;
        const char *value = getenv(name);
        if (value == NULL) {
            rc = config_fail(c, "environment variable %s is not set", name);
            goto fail;
        }
        if (buf_append_str(&b, value) != 0)
            goto nomem;
        free(name);
        name = NULL;
        s = end + 1;
    }
    if (buf_append(&b, s, strlen(s) + 1) != 0) /* the rest and the NUL */
        goto nomem;
    *out = b.data;
    return 0;

nomem:
    rc = config_nomem(c);
fail:
    free(name);
    buf_free(&b);
    return rc;
}

/* config_string - the string value v at the current path, ${NAME} expanded, in *out (new). */
static int config_string(struct config_ctx *c, const json_t *v, char **out)
{
    if (!json_is_string(v))
        return config_fail(c, "must be a string");
    return config_expand(c, json_string_value(v), out);
}
/* config_hostname_problem - NULL if s can be our banner/EHLO name, else what is wrong. */
static const char *config_hostname_problem(const char *s)
{
    size_t n = strlen(s);
    if (n == 0)
        return "must not be empty";
    if (n > CONFIG_HOSTNAME_MAX)
        return "must be at most 255 characters";
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '-'))
            return "may contain only letters, digits, '.' and '-'";
    }
    return NULL;
}

/* config_domain_ok - a domain as RFC 5321 §4.1.2 "Domain" spells it: dot-separated labels
 * of letters, digits and inner hyphens, 1..63 each, 253 in all. No trailing dot. */
static bool config_domain_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CONFIG_DOMAIN_MAX)
        return false;
    size_t label = 0;
    for (size_t i = 0; i <= n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '.' || ch == '\0') {
            if (label == 0 || label > CONFIG_LABEL_MAX || s[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        bool alnum =
            (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
        if (!alnum && !(ch == '-' && label > 0))
            return false;
        label++;
    }
    return true;
}

/* config_url_problem - NULL if url can be a webhook URL, else what is wrong. */
static const char *config_url_problem(const char *url)
{
    size_t skip;
    if (strncasecmp(url, "http://", 7) == 0)
        skip = 7;
    else if (strncasecmp(url, "https://", 8) == 0)
        skip = 8;
    else
        return "must start with http:// or https://";
    if (url[skip] == '\0' || url[skip] == '/')
        return "has no host after the scheme";
    for (const char *p = url; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch <= 0x20 || ch == 0x7f)
            return "must not contain spaces or control characters";
    }
    return NULL;
}

/* config_tchar - RFC 9110 §5.6.2 tchar. */
static bool config_tchar(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* config_header_name_problem - NULL if name may be configured, else what is wrong. */
static const char *config_header_name_problem(const char *name)
{
    if (name[0] == '\0')
        return "header name must not be empty";
    for (const char *p = name; *p; p++) {
        if (!config_tchar((unsigned char)*p))
            return "header name must be an HTTP token (RFC 9110 section 5.6.2)";
    }
    for (size_t i = 0; config_reserved_headers[i] != NULL; i++) {
        if (strcasecmp(name, config_reserved_headers[i]) == 0)
            return "header is set by smtphook and cannot be configured";
    }
    if (strncasecmp(name, CONFIG_RESERVED_PFX, strlen(CONFIG_RESERVED_PFX)) == 0)
        return "X-Smtphook-* headers are set by smtphook and cannot be configured";
    return NULL;
}

/* config_header_value_ok - RFC 9110 §5.5 field-value: no CR, LF, NUL, nor any other control
 * character but HTAB (a CR or LF would let a value inject headers). */
static bool config_header_value_ok(const char *value)
{
    for (const char *p = value; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return false;
    }
    return true;
}

/* config_basic_user_problem - NULL if s can be a basic_auth user: RFC 7617 §2, no ':' and
 * no control character. */
static const char *config_basic_user_problem(const char *s)
{
    if (strchr(s, ':') != NULL)
        return "must not contain ':' (RFC 7617)";
    return config_header_value_ok(s) ? NULL : "must not contain control characters";
}

/* config_basic_password_problem - NULL if s can be a basic_auth password (never echoed). */
static const char *config_basic_password_problem(const char *s)
{
    return config_header_value_ok(s) ? NULL : "must not contain control characters";
}

/* config_delimiter_problem - NULL if s can be recipient_delimiter: characters that may
 * start an extension in an unquoted local part (RFC 5321 §4.1.2 Dot-string: atext and '.'),
 * but no letter or digit, each at most once. route.c cuts at the first one found. */
static const char *config_delimiter_problem(const char *s)
{
    for (size_t i = 0; s[i] != '\0'; i++) {
        if (strchr(CONFIG_DELIMITERS, s[i]) == NULL)
            return "may contain only the characters " CONFIG_DELIMITERS;
        if (strchr(s + i + 1, s[i]) != NULL)
            return "must not repeat a character";
    }
    return NULL;
}

/* config_tls_version_problem - NULL if s names a TLS version we offer. */
static const char *config_tls_version_problem(const char *s)
{
    for (size_t k = 0; config_tls_versions[k] != NULL; k++) {
        if (strcmp(s, config_tls_versions[k]) == 0)
            return NULL;
    }
    return "must be \"TLSv1.2\" or \"TLSv1.3\"";
}

/* config_free_listeners - release an array of n listeners. */
static void config_free_listeners(struct config_listener *l, size_t n)
{
    for (size_t i = 0; i < n && l; i++) {
        free(l[i].address);
        free(l[i].trusted_proxies);
    }
    free(l);
}

/* config_free_endpoint - release what one endpoint owns (not the struct). */
static void config_free_endpoint(struct config_endpoint *e)
{
    free(e->name);
    free(e->url);
    for (size_t j = 0; j < e->n_headers; j++) {
        free(e->headers[j].name);
        free(e->headers[j].value);
    }
    free(e->headers);
    free(e->ca_file);
    free(e->client_cert);
    free(e->client_key);
    free(e->reply_map);
    free(e->basic_auth.user);
    free(e->basic_auth.password);
    free(e->basic_auth.header);
    free(e->signing.secrets);
    free(e->signing.key);
}

/* config_free_endpoints - release an array of n endpoints. */
static void config_free_endpoints(struct config_endpoint *e, size_t n)
{
    for (size_t i = 0; i < n && e; i++)
        config_free_endpoint(&e[i]);
    free(e);
}

/* config_free_routes - release an array of n routes. */
static void config_free_routes(struct config_route *r, size_t n)
{
    for (size_t i = 0; i < n && r; i++) {
        for (size_t k = 0; k < r[i].n_patterns; k++)
            route_pattern_free(&r[i].patterns[k]);
        free(r[i].patterns);
        free(r[i].endpoints);
    }
    free(r);
}

/* config_free_certificates - release an array of n certificate/key pairs. */
static void config_free_certificates(struct config_certificate *certs, size_t n)
{
    for (size_t i = 0; i < n && certs; i++) {
        free(certs[i].cert);
        free(certs[i].key);
    }
    free(certs);
}

/* ---- the descriptor tables -------------------------------------------------------------- */

/* The objects of the file that hold keys. Each has a C struct (its "base"); a nested
 * section's struct lies at an offset inside its parent's. */
enum config_sec {
    CONFIG_SEC_NONE = 0,    /* no section (no parent) */
    CONFIG_SEC_TOP,         /* the file itself: struct config */
    CONFIG_SEC_LISTENER,    /* an entry of "listeners": struct config_listener */
    CONFIG_SEC_HTTP,        /* the request keys of an endpoint: struct config_endpoint */
    CONFIG_SEC_ENDPOINT,    /* a value of "endpoints": struct config_endpoint, shares HTTP */
    CONFIG_SEC_RETRY,       /* an endpoint's "retry": struct config_retry */
    CONFIG_SEC_BREAKER,     /* an endpoint's "breaker": struct config_breaker */
    CONFIG_SEC_LIMITS,      /* "limits": struct config_limits */
    CONFIG_SEC_SPOOL,       /* "spool": struct config_spool */
    CONFIG_SEC_TLS,         /* "tls": struct config_tls */
    CONFIG_SEC_CERTIFICATE, /* an entry of "tls.certificates": struct config_certificate */
    CONFIG_SEC_CHECK,       /* "recipient_check": struct config_recipient_check, shares HTTP */
    CONFIG_SEC_ROUTE,       /* an entry of "routes": struct config_route */
    CONFIG_SEC_BASIC_AUTH,  /* an endpoint's "basic_auth": struct config_basic_auth */
    CONFIG_SEC_SIGNING,     /* an endpoint's "signing": struct config_signing */
    CONFIG_SEC_ADMIN,       /* "admin": struct config_admin */
    CONFIG_SEC_QUEUE,       /* "queue": struct config_queue */
    CONFIG_SEC_COUNT,       /* number of entries in config_sections */
};

/* How a scalar key's JSON value is read and stored. */
enum config_type {
    CONFIG_T_U32,       /* integer in a 4-byte unsigned field */
    CONFIG_T_U64,       /* integer in an 8-byte unsigned field (uint64_t, size_t) */
    CONFIG_T_BOOL,      /* true or false into a bool */
    CONFIG_T_STRING,    /* string, ${NAME} expanded, into a char * the config owns */
    CONFIG_T_ENUM,      /* one of names[], its index into an enum (or a bool: names[1] true) */
    CONFIG_T_LOG_LEVEL, /* a log_level_parse() name into an int */
};

/* An integer key bounded by another integer key of the same section. When the key is left
 * out, its default yields to the other key's value instead of failing. */
enum config_rel {
    CONFIG_REL_NONE = 0, /* no bound */
    CONFIG_REL_AT_MOST,  /* value <= the other key's */
    CONFIG_REL_AT_LEAST, /* value >= the other key's */
};

#define CONFIG_REQUIRED 0x1u /* absent: "is required" */

/* One scalar key: the row is the whole policy for it. */
struct config_key {
    enum config_sec section;                   /* the object it belongs to */
    const char *key;                           /* its name in that object */
    enum config_type type;                     /* how the value is read and stored */
    size_t offset;                             /* its field in the section's struct */
    size_t size;                               /* sizeof that field */
    unsigned flags;                            /* CONFIG_REQUIRED */
    uint64_t min;                              /* integers: smallest; strings: 1 = non-empty */
    uint64_t max;                              /* integers: largest; strings: longest, 0: any */
    uint64_t def;                              /* default of integers, bools, enums, levels */
    const char *def_text;                      /* default of strings, NULL for none */
    const char *const *names;                  /* enums: value names by value, NULL-terminated */
    const char *(*problem)(const char *value); /* strings: NULL if fine, else what is wrong */
    enum config_rel rel;                       /* integers: bounded by another key */
    size_t rel_offset;                         /* that key's field */
};

/* A key whose value is an array or a map: its own parser, called with the value or NULL
 * when the key is absent, the path already naming the key. */
struct config_struct {
    enum config_sec section;                                   /* the object it belongs to */
    const char *key;                                           /* its name in that object */
    int (*parse)(struct config_ctx *c, json_t *v, void *base); /* 0 or an error code */
};

/* One object of the file. */
struct config_section {
    const char *name;       /* key in the parent object; NULL for entries of arrays and maps */
    enum config_sec parent; /* the object it is nested in, or CONFIG_SEC_NONE */
    size_t offset;          /* its struct inside the parent's struct */
    enum config_sec shares; /* a section whose keys the object also has, or CONFIG_SEC_NONE */
    size_t shares_offset;   /* that section's struct inside this one */
    int (*finish)(struct config_ctx *c, json_t *obj, void *base); /* checks across keys */
};

/* CONFIG_WIDTH - sizeof a struct field. */
#define CONFIG_WIDTH(st, field) sizeof(((st *)0)->field)

/* CONFIG_ASSERT - 0, or a compile error when cond is false; usable inside an initializer. */
#define CONFIG_ASSERT(cond) (0 * sizeof(char[(cond) ? 1 : -1]))

/* clang-format off */
/* CONFIG_UINT_ROW - the members of an integer row; its type follows the field's width, and a
 * default outside the range or a range too wide for the field does not compile. */
#define CONFIG_UINT_ROW(sec, name, st, field, lo, hi, dflt)                                        \
    .section = (sec), .key = (name),                                                               \
    .type = CONFIG_WIDTH(st, field) == 8 ? CONFIG_T_U64 : CONFIG_T_U32,                            \
    .offset = offsetof(st, field) +                                                                \
              CONFIG_ASSERT((CONFIG_WIDTH(st, field) == 8 ||                                       \
                             (CONFIG_WIDTH(st, field) == 4 && (hi) <= UINT32_MAX)) &&              \
                            (lo) <= (dflt) && (dflt) <= (hi)),                                     \
    .size = CONFIG_WIDTH(st, field), .min = (lo), .max = (hi), .def = (dflt)

/* CONFIG_UINT - an integer key from lo to hi. */
#define CONFIG_UINT(sec, name, st, field, lo, hi, dflt)                                            \
    {CONFIG_UINT_ROW(sec, name, st, field, lo, hi, dflt)}

/* CONFIG_UINT_REL - an integer key also bounded by another field of its struct. */
#define CONFIG_UINT_REL(sec, name, st, field, lo, hi, dflt, relation, other)                       \
    {CONFIG_UINT_ROW(sec, name, st, field, lo, hi, dflt),                                          \
     .rel = (relation), .rel_offset = offsetof(st, other)}

/* CONFIG_BOOL - true or false. */
#define CONFIG_BOOL(sec, name, st, field, dflt)                                                    \
    {.section = (sec), .key = (name), .type = CONFIG_T_BOOL,                                       \
     .offset = offsetof(st, field) + CONFIG_ASSERT(CONFIG_WIDTH(st, field) == sizeof(bool)),       \
     .size = CONFIG_WIDTH(st, field), .def = (dflt)}

/* CONFIG_STRING - a string; lo 1: not empty; hi: longest, 0 for any; check: a validator. */
#define CONFIG_STRING(sec, name, st, field, fl, lo, hi, dflt, check)                               \
    {.section = (sec), .key = (name), .type = CONFIG_T_STRING,                                     \
     .offset = offsetof(st, field) +                                                               \
               CONFIG_ASSERT(CONFIG_WIDTH(st, field) == sizeof(char *) && (lo) <= 1),              \
     .size = CONFIG_WIDTH(st, field), .flags = (fl), .min = (lo), .max = (hi),                     \
     .def_text = (dflt), .problem = (check)}

/* CONFIG_ENUM - one of values (NULL-terminated), stored as its index. */
#define CONFIG_ENUM(sec, name, st, field, values, dflt)                                            \
    {.section = (sec), .key = (name), .type = CONFIG_T_ENUM,                                       \
     .offset = offsetof(st, field) + CONFIG_ASSERT(CONFIG_WIDTH(st, field) == sizeof(int) ||       \
                                                   CONFIG_WIDTH(st, field) == sizeof(bool)),       \
     .size = CONFIG_WIDTH(st, field), .def = (dflt), .names = (values)}

/* CONFIG_LOG_LEVEL - a log level name. */
#define CONFIG_LOG_LEVEL(sec, name, st, field, dflt)                                               \
    {.section = (sec), .key = (name), .type = CONFIG_T_LOG_LEVEL,                                  \
     .offset = offsetof(st, field) + CONFIG_ASSERT(CONFIG_WIDTH(st, field) == sizeof(int)),        \
     .size = CONFIG_WIDTH(st, field), .def = (dflt)}
/* clang-format on */

/* Every scalar key of the file, grouped by section in file-documentation order. Ranges follow
 * the protocol where it has an opinion. */
static const struct config_key config_keys[] = {
    CONFIG_STRING(CONFIG_SEC_TOP, "hostname", struct config, hostname, 0, 0, 0, NULL,
                  config_hostname_problem), /* the default, the machine's name, comes last */
    CONFIG_LOG_LEVEL(CONFIG_SEC_TOP, "log_level", struct config, log_level, LOG_LEVEL_INFO),
    CONFIG_ENUM(CONFIG_SEC_TOP, "log_format", struct config, log_format, config_log_formats,
                LOG_FORMAT_TEXT),
    CONFIG_STRING(CONFIG_SEC_TOP, "recipient_delimiter", struct config, recipient_delimiter, 0, 1,
                  CONFIG_DELIMITER_MAX, NULL, config_delimiter_problem),
    CONFIG_BOOL(CONFIG_SEC_TOP, "one_route_per_transaction", struct config,
                one_route_per_transaction, false), /* only meaningful with routes */
    CONFIG_ENUM(CONFIG_SEC_TOP, "delivery", struct config, delivery, config_deliveries,
                CONFIG_DELIVERY_SYNC),

    CONFIG_STRING(CONFIG_SEC_LISTENER, "address", struct config_listener, address, CONFIG_REQUIRED,
                  0, 0, NULL, NULL), /* config_listener_finish parses it */
    CONFIG_ENUM(CONFIG_SEC_LISTENER, "tls", struct config_listener, tls, config_tls_modes,
                CONFIG_TLS_NONE), /* the real default depends on the certificates */
    CONFIG_BOOL(CONFIG_SEC_LISTENER, "require_tls", struct config_listener, require_tls, false),
    CONFIG_ENUM(CONFIG_SEC_LISTENER, "proxy_protocol", struct config_listener, proxy,
                config_proxy_modes, CONFIG_PROXY_NONE),
    CONFIG_UINT(CONFIG_SEC_LISTENER, "proxy_timeout_ms", struct config_listener, proxy_timeout_ms,
                100, 60000, CONFIG_DEF_PROXY_TIMEOUT_MS),

    CONFIG_STRING(CONFIG_SEC_HTTP, "url", struct config_endpoint, url, CONFIG_REQUIRED, 0, 0, NULL,
                  config_url_problem), /* the URL may carry a token: never echoed */
    CONFIG_STRING(CONFIG_SEC_HTTP, "ca_file", struct config_endpoint, ca_file, 0, 1, 0, NULL, NULL),
    CONFIG_STRING(CONFIG_SEC_HTTP, "client_cert", struct config_endpoint, client_cert, 0, 1, 0,
                  NULL, NULL),
    CONFIG_STRING(CONFIG_SEC_HTTP, "client_key", struct config_endpoint, client_key, 0, 1, 0, NULL,
                  NULL),

    CONFIG_UINT(CONFIG_SEC_ENDPOINT, "timeout_ms", struct config_endpoint, timeout_ms,
                CONFIG_TIMEOUT_MIN, CONFIG_TIMEOUT_MAX, CONFIG_DEF_ENDPOINT_TIMEOUT_MS),
    CONFIG_UINT_REL(CONFIG_SEC_ENDPOINT, "connect_timeout_ms", struct config_endpoint,
                    connect_timeout_ms, CONFIG_TIMEOUT_MIN, CONFIG_TIMEOUT_MAX,
                    CONFIG_DEF_ENDPOINT_CONNECT_MS, CONFIG_REL_AT_MOST, timeout_ms),

    CONFIG_ENUM(CONFIG_SEC_ENDPOINT, "format", struct config_endpoint, format, config_formats,
                CONFIG_FORMAT_RAW),
    CONFIG_ENUM(CONFIG_SEC_ENDPOINT, "preset", struct config_endpoint, preset, config_presets,
                CONFIG_PRESET_NONE),
    CONFIG_BOOL(CONFIG_SEC_ENDPOINT, "stream", struct config_endpoint, stream, false),
    CONFIG_UINT(CONFIG_SEC_ENDPOINT, "max_header_bytes", struct config_endpoint, max_header_bytes,
                4096, 1048576, CONFIG_DEF_MAX_HEADER_BYTES), /* Node.js: 16 KiB, nginx: 8 KiB */

    CONFIG_STRING(CONFIG_SEC_BASIC_AUTH, "user", struct config_basic_auth, user, CONFIG_REQUIRED, 1,
                  0, NULL, config_basic_user_problem),
    CONFIG_STRING(CONFIG_SEC_BASIC_AUTH, "password", struct config_basic_auth, password,
                  CONFIG_REQUIRED, 1, 0, NULL, config_basic_password_problem),

    CONFIG_ENUM(CONFIG_SEC_SIGNING, "scheme", struct config_signing, scheme, config_signing_schemes,
                CONFIG_SIGNING_NONE), /* required: config_signing_finish */
    CONFIG_STRING(CONFIG_SEC_SIGNING, "key", struct config_signing, key, 0, 1, 0, NULL,
                  NULL), /* a secret: never echoed */

    CONFIG_UINT(CONFIG_SEC_RETRY, "max_attempts", struct config_retry, max_attempts, 1,
                CONFIG_ATTEMPTS_MAX, CONFIG_DEF_RETRY_MAX_ATTEMPTS),
    CONFIG_UINT(CONFIG_SEC_RETRY, "initial_backoff_ms", struct config_retry, initial_backoff_ms,
                CONFIG_BACKOFF_MIN, CONFIG_TIMEOUT_MAX, CONFIG_DEF_RETRY_INITIAL_BACKOFF_MS),
    CONFIG_UINT_REL(CONFIG_SEC_RETRY, "max_backoff_ms", struct config_retry, max_backoff_ms,
                    CONFIG_BACKOFF_MIN, CONFIG_TIMEOUT_MAX, CONFIG_DEF_RETRY_MAX_BACKOFF_MS,
                    CONFIG_REL_AT_LEAST, initial_backoff_ms),

    CONFIG_UINT(CONFIG_SEC_BREAKER, "failures", struct config_breaker, failures, 0, 1000,
                CONFIG_DEF_BREAKER_FAILURES), /* 0: never opens */
    CONFIG_UINT(CONFIG_SEC_BREAKER, "cooldown_ms", struct config_breaker, cooldown_ms, 1000,
                3600000, CONFIG_DEF_BREAKER_COOLDOWN_MS),

    CONFIG_UINT(CONFIG_SEC_LIMITS, "max_command_line_bytes", struct config_limits,
                max_command_line_bytes, 512, 65536,
                CONFIG_DEF_MAX_COMMAND_LINE_BYTES), /* RFC 5321 §4.5.3.1.4: at least 512 */
    CONFIG_UINT(CONFIG_SEC_LIMITS, "max_recipients", struct config_limits, max_recipients, 100,
                10000, CONFIG_DEF_MAX_RECIPIENTS), /* RFC 5321 §4.5.3.1.8: at least 100 */
    CONFIG_UINT(CONFIG_SEC_LIMITS, "max_message_bytes", struct config_limits, max_message_bytes,
                65536, UINT64_C(1) << 40,
                CONFIG_DEF_MAX_MESSAGE_BYTES), /* RFC 5321 §4.5.3.1.7: at least 64k */
    CONFIG_UINT(CONFIG_SEC_LIMITS, "idle_timeout_ms", struct config_limits, idle_timeout_ms, 1000,
                3600000, CONFIG_DEF_IDLE_TIMEOUT_MS), /* RFC 5321 §4.5.3.2.7: 5 min */
    CONFIG_UINT(CONFIG_SEC_LIMITS, "max_errors", struct config_limits, max_errors, 1, 1000,
                CONFIG_DEF_MAX_ERRORS),
    CONFIG_UINT(CONFIG_SEC_LIMITS, "max_connections", struct config_limits, max_connections, 1,
                1000000, CONFIG_DEF_MAX_CONNECTIONS),
    CONFIG_UINT(CONFIG_SEC_LIMITS, "max_connections_per_client", struct config_limits,
                max_connections_per_client, 1, 1000000, CONFIG_DEF_MAX_CONNECTIONS_PER_CLIENT),
    CONFIG_UINT(CONFIG_SEC_LIMITS, "transaction_timeout_ms", struct config_limits,
                transaction_timeout_ms, 1000, CONFIG_TIMEOUT_MAX,
                CONFIG_DEF_TRANSACTION_TIMEOUT_MS), /* the sender waits 10 min after the dot */
    CONFIG_UINT(CONFIG_SEC_LIMITS, "shutdown_timeout_ms", struct config_limits, shutdown_timeout_ms,
                0, 3600000, CONFIG_DEF_SHUTDOWN_TIMEOUT_MS),
    CONFIG_UINT(CONFIG_SEC_LIMITS, "shutdown_delay_ms", struct config_limits, shutdown_delay_ms, 0,
                600000, 0),
    CONFIG_UINT(CONFIG_SEC_LIMITS, "command_timeout_ms", struct config_limits, command_timeout_ms,
                0, 3600000, CONFIG_DEF_COMMAND_TIMEOUT_MS),
    CONFIG_UINT(CONFIG_SEC_LIMITS, "min_data_rate_bytes_per_s", struct config_limits, min_data_rate,
                0, 1000000000, CONFIG_DEF_MIN_DATA_RATE),
    CONFIG_UINT(CONFIG_SEC_LIMITS, "data_rate_grace_ms", struct config_limits, data_rate_grace_ms,
                1000, 3600000, CONFIG_DEF_DATA_RATE_GRACE_MS),
    CONFIG_UINT(CONFIG_SEC_LIMITS, "max_junk_commands", struct config_limits, max_junk_commands, 0,
                100000, CONFIG_DEF_MAX_JUNK_COMMANDS),
    CONFIG_UINT(CONFIG_SEC_LIMITS, "connections_per_minute", struct config_limits,
                connections_per_minute, 0, 60000, CONFIG_DEF_CONNECTIONS_PER_MINUTE),
    CONFIG_UINT(CONFIG_SEC_LIMITS, "messages_per_minute", struct config_limits, messages_per_minute,
                0, 60000, CONFIG_DEF_MESSAGES_PER_MINUTE),
    CONFIG_UINT(CONFIG_SEC_LIMITS, "recipients_per_minute", struct config_limits,
                recipients_per_minute, 0, 60000, CONFIG_DEF_RECIPIENTS_PER_MINUTE),

    CONFIG_UINT(CONFIG_SEC_SPOOL, "memory_bytes", struct config_spool, memory_bytes, 0, 1073741824,
                CONFIG_DEF_SPOOL_MEMORY_BYTES),
    CONFIG_STRING(CONFIG_SEC_SPOOL, "directory", struct config_spool, directory, 0, 1, 0,
                  CONFIG_DEF_SPOOL_DIRECTORY, NULL), /* checked in config_finish */

    CONFIG_STRING(CONFIG_SEC_TLS, "min_version", struct config_tls, min_version, 0, 1, 0,
                  CONFIG_DEF_TLS_MIN_VERSION, config_tls_version_problem),
    CONFIG_STRING(CONFIG_SEC_TLS, "ciphers", struct config_tls, ciphers, 0, 1, 0,
                  CONFIG_DEF_TLS_CIPHERS, NULL),
    CONFIG_STRING(CONFIG_SEC_TLS, "ciphersuites", struct config_tls, ciphersuites, 0, 1, 0, NULL,
                  NULL),
    CONFIG_STRING(CONFIG_SEC_TLS, "groups", struct config_tls, groups, 0, 1, 0, NULL, NULL),
    CONFIG_BOOL(CONFIG_SEC_TLS, "request_client_cert", struct config_tls, request_client_cert,
                false),
    CONFIG_UINT(CONFIG_SEC_TLS, "handshake_timeout_ms", struct config_tls, handshake_timeout_ms,
                CONFIG_HANDSHAKE_MIN, CONFIG_HANDSHAKE_MAX, CONFIG_DEF_TLS_HANDSHAKE_TIMEOUT_MS),

    CONFIG_UINT(CONFIG_SEC_CHECK, "timeout_ms", struct config_recipient_check, http.timeout_ms,
                CONFIG_TIMEOUT_MIN, CONFIG_CHECK_TIMEOUT_MAX, CONFIG_DEF_CHECK_TIMEOUT_MS),
    CONFIG_UINT_REL(CONFIG_SEC_CHECK, "connect_timeout_ms", struct config_recipient_check,
                    http.connect_timeout_ms, CONFIG_TIMEOUT_MIN, CONFIG_CHECK_TIMEOUT_MAX,
                    CONFIG_DEF_CHECK_CONNECT_MS, CONFIG_REL_AT_MOST, http.timeout_ms),
    CONFIG_UINT(CONFIG_SEC_CHECK, "cache_ms", struct config_recipient_check, cache_ms, 0,
                CONFIG_CHECK_CACHE_MAX, CONFIG_DEF_CHECK_CACHE_MS),
    CONFIG_ENUM(CONFIG_SEC_CHECK, "on_failure", struct config_recipient_check, accept_on_failure,
                config_on_failure, false),

    CONFIG_ENUM(CONFIG_SEC_ROUTE, "policy", struct config_route, policy, config_route_policies,
                CONFIG_ROUTE_ALL),
    CONFIG_ENUM(CONFIG_SEC_ROUTE, "delivery", struct config_route, delivery, config_deliveries,
                CONFIG_DELIVERY_INHERIT), /* config_finish_queue fills in the top-level one */

    CONFIG_STRING(CONFIG_SEC_QUEUE, "directory", struct config_queue, directory, 0, 1, 0,
                  CONFIG_DEF_QUEUE_DIRECTORY, NULL), /* checked in config_finish_queue */
    CONFIG_UINT(CONFIG_SEC_QUEUE, "initial_backoff_ms", struct config_queue, initial_backoff_ms,
                100, 86400000, CONFIG_DEF_QUEUE_INITIAL_BACKOFF_MS),
    CONFIG_UINT_REL(CONFIG_SEC_QUEUE, "max_backoff_ms", struct config_queue, max_backoff_ms, 100,
                    604800000, CONFIG_DEF_QUEUE_MAX_BACKOFF_MS, CONFIG_REL_AT_LEAST,
                    initial_backoff_ms),
    CONFIG_UINT(CONFIG_SEC_QUEUE, "max_age_ms", struct config_queue, max_age_ms, 1000, 2592000000u,
                CONFIG_DEF_QUEUE_MAX_AGE_MS),
    CONFIG_UINT(CONFIG_SEC_QUEUE, "max_in_flight", struct config_queue, max_in_flight, 1, 1000,
                CONFIG_DEF_QUEUE_MAX_IN_FLIGHT),
    CONFIG_UINT(CONFIG_SEC_QUEUE, "max_messages", struct config_queue, max_messages, 1, 100000000,
                CONFIG_DEF_QUEUE_MAX_MESSAGES),
    CONFIG_UINT(CONFIG_SEC_QUEUE, "max_bytes", struct config_queue, max_bytes, 1048576,
                UINT64_C(1099511627776), CONFIG_DEF_QUEUE_MAX_BYTES),

    CONFIG_STRING(CONFIG_SEC_ADMIN, "listen", struct config_admin, listen, CONFIG_REQUIRED, 1, 0,
                  NULL, NULL), /* config_admin_finish parses it */
    CONFIG_BOOL(CONFIG_SEC_ADMIN, "unready_when_endpoints_down", struct config_admin,
                unready_when_down, false),

    CONFIG_STRING(CONFIG_SEC_CERTIFICATE, "cert", struct config_certificate, cert, CONFIG_REQUIRED,
                  1, 0, NULL, NULL),
    CONFIG_STRING(CONFIG_SEC_CERTIFICATE, "key", struct config_certificate, key, CONFIG_REQUIRED, 1,
                  0, NULL, NULL),
};

static int config_listeners(struct config_ctx *c, json_t *arr, void *base);
static int config_domains(struct config_ctx *c, json_t *arr, void *base);
static int config_endpoints(struct config_ctx *c, json_t *obj, void *base);
static int config_headers(struct config_ctx *c, json_t *obj, void *base);
static int config_certificates(struct config_ctx *c, json_t *arr, void *base);
static int config_reply_map(struct config_ctx *c, json_t *obj, void *base);
static int config_routes(struct config_ctx *c, json_t *arr, void *base);
static int config_route_match(struct config_ctx *c, json_t *arr, void *base);
static int config_route_endpoints(struct config_ctx *c, json_t *arr, void *base);
static int config_listener_finish(struct config_ctx *c, json_t *obj, void *base);
static int config_admin_finish(struct config_ctx *c, json_t *obj, void *base);
static int config_trusted_proxies(struct config_ctx *c, json_t *arr, void *base);
static int config_trusted_networks(struct config_ctx *c, json_t *arr, void *base);
static int config_signing_secrets(struct config_ctx *c, json_t *arr, void *base);
static int config_signing_finish(struct config_ctx *c, json_t *obj, void *base);
static int config_basic_auth_finish(struct config_ctx *c, json_t *obj, void *base);
static int config_http_finish(struct config_ctx *c, json_t *obj, void *base);
static int config_check_finish(struct config_ctx *c, json_t *obj, void *base);

/* The keys with their own parsers, in the order they are parsed. */
static const struct config_struct config_structs[] = {
    {CONFIG_SEC_TOP, "listeners", config_listeners},
    {CONFIG_SEC_TOP, "domains", config_domains},
    {CONFIG_SEC_TOP, "endpoints", config_endpoints},
    {CONFIG_SEC_TOP, "routes", config_routes}, /* after the domains and endpoints it names */
    {CONFIG_SEC_ROUTE, "match", config_route_match},
    {CONFIG_SEC_ROUTE, "endpoints", config_route_endpoints},
    {CONFIG_SEC_HTTP, "headers", config_headers},
    {CONFIG_SEC_ENDPOINT, "reply_map", config_reply_map},
    {CONFIG_SEC_SIGNING, "secrets", config_signing_secrets},
    {CONFIG_SEC_LISTENER, "trusted_proxies", config_trusted_proxies},
    {CONFIG_SEC_TOP, "trusted_networks", config_trusted_networks},
    {CONFIG_SEC_TLS, "certificates", config_certificates},
};

/* CONFIG_NESTED - a section that is the object at key name of its parent, in field. */
#define CONFIG_NESTED(key, up, st, field)                                                          \
    .name = (key), .parent = (up), .offset = offsetof(st, field)

/* Every object of the file; nested sections are parsed after their parent's other keys. */
static const struct config_section config_sections[CONFIG_SEC_COUNT] = {
    [CONFIG_SEC_TOP] = {.parent = CONFIG_SEC_NONE},
    [CONFIG_SEC_LISTENER] = {.parent = CONFIG_SEC_NONE, .finish = config_listener_finish},
    [CONFIG_SEC_HTTP] = {.parent = CONFIG_SEC_NONE, .finish = config_http_finish},
    [CONFIG_SEC_ENDPOINT] = {.parent = CONFIG_SEC_NONE, .shares = CONFIG_SEC_HTTP},
    [CONFIG_SEC_RETRY] = {CONFIG_NESTED("retry", CONFIG_SEC_ENDPOINT, struct config_endpoint,
                                        retry)},
    [CONFIG_SEC_BREAKER] = {CONFIG_NESTED("breaker", CONFIG_SEC_ENDPOINT, struct config_endpoint,
                                          breaker)},
    [CONFIG_SEC_LIMITS] = {CONFIG_NESTED("limits", CONFIG_SEC_TOP, struct config, limits)},
    [CONFIG_SEC_SPOOL] = {CONFIG_NESTED("spool", CONFIG_SEC_TOP, struct config, spool)},
    [CONFIG_SEC_TLS] = {CONFIG_NESTED("tls", CONFIG_SEC_TOP, struct config, tls)},
    [CONFIG_SEC_CERTIFICATE] = {.parent = CONFIG_SEC_NONE},
    [CONFIG_SEC_ROUTE] = {.parent = CONFIG_SEC_NONE},
    [CONFIG_SEC_CHECK] = {CONFIG_NESTED("recipient_check", CONFIG_SEC_TOP, struct config,
                                        recipient_check),
                          .shares = CONFIG_SEC_HTTP,
                          .shares_offset = offsetof(struct config_recipient_check, http),
                          .finish = config_check_finish},
    [CONFIG_SEC_BASIC_AUTH] = {CONFIG_NESTED("basic_auth", CONFIG_SEC_ENDPOINT,
                                             struct config_endpoint, basic_auth),
                               .finish = config_basic_auth_finish},
    [CONFIG_SEC_SIGNING] = {CONFIG_NESTED("signing", CONFIG_SEC_ENDPOINT, struct config_endpoint,
                                          signing),
                            .finish = config_signing_finish},
    [CONFIG_SEC_ADMIN] = {CONFIG_NESTED("admin", CONFIG_SEC_TOP, struct config, admin),
                          .finish = config_admin_finish},
    [CONFIG_SEC_QUEUE] = {CONFIG_NESTED("queue", CONFIG_SEC_TOP, struct config, queue)},
};

/* ---- applying the tables ---------------------------------------------------------------- */

/* config_row - the row of a section's field; NULL only for a mistake in the tables. */
static const struct config_key *config_row(enum config_sec sec, size_t offset)
{
    for (size_t i = 0; i < CONFIG_NROWS(config_keys); i++) {
        if (config_keys[i].section == sec && config_keys[i].offset == offset)
            return &config_keys[i];
    }
    return NULL;
}

/* config_key_name - the JSON name of a section's field, for messages. */
static const char *config_key_name(enum config_sec sec, size_t offset)
{
    const struct config_key *k = config_row(sec, offset);
    return k != NULL ? k->key : "?";
}

/* CONFIG_NAME - the JSON name of a field of a section's struct. */
#define CONFIG_NAME(sec, type, field) config_key_name(sec, offsetof(type, field))

/* config_struct_name - the JSON name of a structural key, found by its parser. */
static const char *config_struct_name(int (*parse)(struct config_ctx *, json_t *, void *))
{
    for (size_t i = 0; i < CONFIG_NROWS(config_structs); i++) {
        if (config_structs[i].parse == parse)
            return config_structs[i].key;
    }
    return "?";
}

/* config_given - does obj (may be NULL) write the key of a section's field? */
static bool config_given(const json_t *obj, enum config_sec sec, size_t offset)
{
    const struct config_key *k = config_row(sec, offset);
    return obj != NULL && k != NULL && json_object_get(obj, k->key) != NULL;
}

/* config_push_section - push the names of a nested section and its parents ("spool"). */
static void config_push_section(struct config_ctx *c, enum config_sec sec)
{
    const struct config_section *s = &config_sections[sec];
    if (s->parent != CONFIG_SEC_NONE)
        config_push_section(c, s->parent);
    if (s->name != NULL)
        config_push(c, s->name);
}

/* config_set_key_path - the path becomes what: <section>.<key> of a section's field. */
static void config_set_key_path(struct config_ctx *c, const char *what, enum config_sec sec,
                                size_t offset)
{
    config_set_path(c, what, "");
    config_push_section(c, sec);
    config_push(c, config_key_name(sec, offset));
}

/* config_load_uint - the integer field a row describes. */
static uint64_t config_load_uint(const char *base, const struct config_key *k)
{
    if (k->type == CONFIG_T_U64) {
        uint64_t x;
        memcpy(&x, base + k->offset, sizeof(x));
        return x;
    }
    uint32_t x;
    memcpy(&x, base + k->offset, sizeof(x));
    return x;
}

/* config_store - write an integer, bool, enum index or level into the field a row describes
 * (not strings). Every 4-byte integer field has a max below 2^32 (CONFIG_UINT checks). */
static void config_store(char *base, const struct config_key *k, uint64_t v)
{
    char *p = base + k->offset;
    if (k->type == CONFIG_T_U64) {
        uint64_t x = v;
        memcpy(p, &x, sizeof(x));
    } else if (k->type == CONFIG_T_U32) {
        uint32_t x = (uint32_t)v;
        memcpy(p, &x, sizeof(x));
    } else if (k->size == sizeof(bool)) {
        bool x = v != 0;
        memcpy(p, &x, sizeof(x));
    } else {
        int x = (int)v; /* enum values and log levels are small */
        memcpy(p, &x, sizeof(x));
    }
}

/* config_store_text - a string field takes s (owned by the struct from here on). */
static void config_store_text(char *base, const struct config_key *k, char *s)
{
    char **p = (char **)(void *)(base + k->offset);
    free(*p);
    *p = s;
}

/* config_fail_choices - "must be "a", "b" or "c"" for an enum row. */
static int config_fail_choices(struct config_ctx *c, const struct config_key *k)
{
    char list[CONFIG_CHOICES_MAX] = "";
    size_t used = 0;
    for (size_t i = 0; k->names[i] != NULL && used < sizeof(list); i++) {
        const char *sep = i == 0 ? "" : k->names[i + 1] == NULL ? " or " : ", ";
        int n = snprintf(list + used, sizeof(list) - used, "%s\"%s\"", sep, k->names[i]);
        used += n < 0 ? sizeof(list) : (size_t)n;
    }
    return config_fail(c, "must be %s", list);
}

/* config_text - a string row's value v into its field: expanded, then bounds and validator. */
static int config_text(struct config_ctx *c, const struct config_key *k, const json_t *v,
                       char *base)
{
    char *s = NULL;
    int rc = config_string(c, v, &s);
    if (rc != 0)
        return rc;
    config_store_text(base, k, s); /* also on the errors below: freed with the struct */
    size_t len = strlen(s);
    if (len < k->min)
        return config_fail(c, "%s",
                           (k->flags & CONFIG_REQUIRED) != 0
                               ? "must not be empty"
                               : "must not be empty (leave the key out for the default)");
    if (k->max != 0 && len > k->max)
        return config_fail(c, "must be at most %" PRIu64 " characters", k->max);
    const char *problem = k->problem != NULL ? k->problem(s) : NULL;
    return problem != NULL ? config_fail(c, "%s", problem) : 0;
}

/* config_choice - an enum or log level row's value v into its field. */
static int config_choice(struct config_ctx *c, const struct config_key *k, const json_t *v,
                         char *base)
{
    char *s = NULL;
    int rc = config_string(c, v, &s);
    if (rc != 0)
        return rc;
    int value = -1;
    if (k->type == CONFIG_T_LOG_LEVEL) {
        value = log_level_parse(s);
    } else {
        for (int i = 0; k->names[i] != NULL && value < 0; i++) {
            if (strcmp(s, k->names[i]) == 0)
                value = i;
        }
    }
    free(s);
    if (value >= 0) {
        config_store(base, k, (uint64_t)value);
        return 0;
    }
    if (k->type == CONFIG_T_LOG_LEVEL)
        return config_fail(c, "must be one of \"error\", \"warn\", \"info\", \"debug\"");
    return config_fail_choices(c, k);
}

/* config_value - one row's value v (present) into its field; the path names the key. */
static int config_value(struct config_ctx *c, const struct config_key *k, const json_t *v,
                        char *base)
{
    switch (k->type) {
    case CONFIG_T_U32:
    case CONFIG_T_U64: {
        json_int_t n = json_is_integer(v) ? json_integer_value(v) : -1;
        if (n < 0 || (uint64_t)n < k->min || (uint64_t)n > k->max)
            return config_fail(c, "must be an integer from %" PRIu64 " to %" PRIu64, k->min,
                               k->max);
        config_store(base, k, (uint64_t)n);
        return 0;
    }
    case CONFIG_T_BOOL:
        if (!json_is_boolean(v))
            return config_fail(c, "must be true or false");
        config_store(base, k, json_is_true(v) ? 1 : 0);
        return 0;
    case CONFIG_T_STRING:
        return config_text(c, k, v, base);
    case CONFIG_T_ENUM:
    case CONFIG_T_LOG_LEVEL:
        return config_choice(c, k, v, base);
    }
    return config_fail(c, "unknown key type"); /* not reached: the switch covers the enum */
}

/* config_relation - a row bounded by another key: a default yields, a given value must fit. */
static int config_relation(struct config_ctx *c, json_t *obj, const struct config_key *k,
                           char *base)
{
    const struct config_key *o = config_row(k->section, k->rel_offset);
    if (o == NULL)
        return config_fail(c, "%s: no row for its bound", k->key); /* a mistake in the table */
    uint64_t v = config_load_uint(base, k);
    uint64_t bound = config_load_uint(base, o);
    bool at_most = k->rel == CONFIG_REL_AT_MOST;
    if (at_most ? v <= bound : v >= bound)
        return 0;
    if (json_object_get(obj, k->key) == NULL) {
        config_store(base, k, bound);
        return 0;
    }
    config_push(c, k->key);
    return config_fail(c, "must not be %s %s (%" PRIu64 ")", at_most ? "greater than" : "less than",
                       o->key, bound);
}

/* One section applied to its struct: an object's own section or the one it shares. */
struct config_part {
    enum config_sec sec; /* the section */
    char *base;          /* its struct */
};

/* config_parts - the sections an object of section sec holds: the one it shares (first),
 * then its own. base may be NULL when only the sections are wanted. Returns how many (1 or
 * 2). */
static size_t config_parts(enum config_sec sec, void *base, struct config_part part[2])
{
    const struct config_section *s = &config_sections[sec];
    size_t n = 0;
    if (s->shares != CONFIG_SEC_NONE)
        part[n++] =
            (struct config_part){s->shares, base != NULL ? (char *)base + s->shares_offset : NULL};
    part[n++] = (struct config_part){sec, base};
    return n;
}

/* config_defaults - every row of a section (and of the one it shares) and of its nested
 * sections takes its default. 0 or SH_ENOMEM (a default string is copied). */
static int config_defaults(struct config_ctx *c, enum config_sec sec, void *base)
{
    struct config_part part[2];
    size_t n = config_parts(sec, base, part);
    for (size_t p = 0; p < n; p++) {
        for (size_t i = 0; i < CONFIG_NROWS(config_keys); i++) {
            const struct config_key *k = &config_keys[i];
            if (k->section != part[p].sec)
                continue;
            if (k->type != CONFIG_T_STRING) {
                config_store(part[p].base, k, k->def);
                continue;
            }
            char *s = NULL;
            if (k->def_text != NULL && (s = strdup(k->def_text)) == NULL)
                return config_nomem(c);
            config_store_text(part[p].base, k, s);
        }
        for (int s = 0; s < CONFIG_SEC_COUNT; s++) {
            if (config_sections[s].parent != part[p].sec)
                continue;
            int rc =
                config_defaults(c, (enum config_sec)s, part[p].base + config_sections[s].offset);
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

/* config_known - is key a row, a structural key or a nested section of sec, or of the
 * section it shares? */
static bool config_known(enum config_sec sec, const char *key)
{
    struct config_part part[2];
    size_t n = config_parts(sec, NULL, part);
    for (size_t p = 0; p < n; p++) {
        for (size_t i = 0; i < CONFIG_NROWS(config_keys); i++) {
            if (config_keys[i].section == part[p].sec && strcmp(config_keys[i].key, key) == 0)
                return true;
        }
        for (size_t i = 0; i < CONFIG_NROWS(config_structs); i++) {
            if (config_structs[i].section == part[p].sec && strcmp(config_structs[i].key, key) == 0)
                return true;
        }
        for (int s = 0; s < CONFIG_SEC_COUNT; s++) {
            if (config_sections[s].parent == part[p].sec &&
                strcmp(config_sections[s].name, key) == 0)
                return true;
        }
    }
    return false;
}

/* config_rows - the rows of one section from obj: a given value is checked and stored, an
 * absent one keeps its default (or is an error when required); then the bounds by other
 * keys. */
static int config_rows(struct config_ctx *c, json_t *obj, const struct config_part *part)
{
    int rc;
    for (size_t i = 0; i < CONFIG_NROWS(config_keys); i++) {
        const struct config_key *k = &config_keys[i];
        if (k->section != part->sec)
            continue;
        size_t saved = config_push(c, k->key);
        json_t *v = json_object_get(obj, k->key);
        if (v != NULL)
            rc = config_value(c, k, v, part->base);
        else
            rc = (k->flags & CONFIG_REQUIRED) != 0 ? config_fail(c, "is required") : 0;
        if (rc != 0)
            return rc;
        config_pop(c, saved);
    }
    for (size_t i = 0; i < CONFIG_NROWS(config_keys); i++) {
        const struct config_key *k = &config_keys[i];
        if (k->section == part->sec && k->rel != CONFIG_REL_NONE &&
            (rc = config_relation(c, obj, k, part->base)) != 0)
            return rc;
    }
    return 0;
}

/* config_structs_of - the structural keys of one section, each by its parser. */
static int config_structs_of(struct config_ctx *c, json_t *obj, const struct config_part *part)
{
    for (size_t i = 0; i < CONFIG_NROWS(config_structs); i++) {
        const struct config_struct *st = &config_structs[i];
        if (st->section != part->sec)
            continue;
        size_t saved = config_push(c, st->key);
        int rc = st->parse(c, json_object_get(obj, st->key), part->base);
        if (rc != 0)
            return rc;
        config_pop(c, saved);
    }
    return 0;
}

static int config_object(struct config_ctx *c, json_t *obj, enum config_sec sec, void *base);

/* config_children - the nested sections of one section that obj has. */
static int config_children(struct config_ctx *c, json_t *obj, const struct config_part *part)
{
    for (int s = 0; s < CONFIG_SEC_COUNT; s++) {
        const struct config_section *n = &config_sections[s];
        json_t *v;
        if (n->parent != part->sec || (v = json_object_get(obj, n->name)) == NULL)
            continue;
        size_t saved = config_push(c, n->name);
        if (!json_is_object(v))
            return config_fail(c, "must be an object");
        int rc = config_object(c, v, (enum config_sec)s, part->base + n->offset);
        if (rc != 0)
            return rc;
        config_pop(c, saved);
    }
    return 0;
}

/* config_object - apply a section to obj (a JSON object; the path names it) with base holding
 * the defaults: an unknown key is an error (a typo must never be silently ignored); then the
 * rows and their bounds, the structural keys, the checks across keys, and last the nested
 * sections that are present. Each step takes the shared section first. */
static int config_object(struct config_ctx *c, json_t *obj, enum config_sec sec, void *base)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        if (!config_known(sec, key)) {
            config_push(c, key);
            return config_fail(c, "unknown key");
        }
    }
    struct config_part part[2];
    size_t n = config_parts(sec, base, part);
    int rc = 0;
    for (size_t p = 0; p < n && rc == 0; p++)
        rc = config_rows(c, obj, &part[p]);
    for (size_t p = 0; p < n && rc == 0; p++)
        rc = config_structs_of(c, obj, &part[p]);
    for (size_t p = 0; p < n && rc == 0; p++) {
        int (*finish)(struct config_ctx *, json_t *, void *) = config_sections[part[p].sec].finish;
        if (finish != NULL)
            rc = finish(c, obj, part[p].base);
    }
    for (size_t p = 0; p < n && rc == 0; p++)
        rc = config_children(c, obj, &part[p]);
    return rc;
}

/* ---- structural keys -------------------------------------------------------------------- */

/* config_domains - "domains": lower-case domain names, or ["*"] for any. */
static int config_domains(struct config_ctx *c, json_t *arr, void *base)
{
    struct config *cfg = base;
    if (arr == NULL)
        return config_fail(c, "is required: list the accepted domains, or [\"*\"] for any");
    if (!json_is_array(arr))
        return config_fail(c, "must be an array of domain names");
    size_t n = json_array_size(arr);
    if (n == 0)
        return config_fail(c, "must list at least one domain, or [\"*\"] for any");
    cfg->domains = calloc(n, sizeof(*cfg->domains));
    if (cfg->domains == NULL)
        return config_nomem(c);
    for (size_t i = 0; i < n; i++) {
        size_t at = config_push_index(c, i);
        char *d = NULL;
        int rc = config_string(c, json_array_get(arr, i), &d);
        if (rc != 0)
            return rc;
        cfg->domains[cfg->n_domains++] = d; /* owned by cfg from here on */
        char q[CONFIG_QUOTE_MAX];
        if (strcmp(d, "*") == 0) {
            if (n != 1)
                return config_fail(c, "\"*\" (any domain) must be the only entry");
            cfg->any_domain = true;
            free(d);
            cfg->n_domains = 0;
            break;
        }
        if (!config_domain_ok(d))
            return config_fail(c, "\"%s\" is not a domain name", config_quote(q, sizeof(q), d));
        for (char *p = d; *p; p++) {
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
        }
        for (size_t j = 0; j + 1 < cfg->n_domains; j++) {
            if (strcmp(cfg->domains[j], d) == 0)
                return config_fail(c, "duplicate domain \"%s\"", d);
        }
        config_pop(c, at);
    }
    return 0;
}

/* config_name_ok - endpoint names: [A-Za-z0-9_-]+, safe in logs and metrics. */
static bool config_name_ok(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

/* config_headers - an endpoint's "headers": name -> value; names case-insensitively unique. */
static int config_headers(struct config_ctx *c, json_t *obj, void *base)
{
    struct config_endpoint *e = base;
    if (obj == NULL)
        return 0;
    if (!json_is_object(obj))
        return config_fail(c, "must be an object of header names to values");
    size_t n = json_object_size(obj);
    if (n == 0)
        return 0;
    e->headers = calloc(n, sizeof(*e->headers));
    if (e->headers == NULL)
        return config_nomem(c);
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        size_t at = config_push(c, key);
        const char *problem = config_header_name_problem(key);
        if (problem != NULL)
            return config_fail(c, "%s", problem);
        for (size_t j = 0; j < e->n_headers; j++) {
            if (strcasecmp(e->headers[j].name, key) == 0)
                return config_fail(c, "duplicate header (names are case-insensitive)");
        }
        struct config_header *h = &e->headers[e->n_headers++];
        h->name = strdup(key);
        if (h->name == NULL)
            return config_nomem(c);
        int rc = config_string(c, v, &h->value);
        if (rc != 0)
            return rc;
        /* The value may hold a secret: describe the problem, never echo it. */
        if (!config_header_value_ok(h->value))
            return config_fail(c, "value must not contain CR, LF or other control characters");
        config_pop(c, at);
    }
    return 0;
}

/* config_address - a listening address (a listener's, a --listen value, the admin port's)
 * parsed into addr once; the caller names the value in the path. 0 or SH_ECONFIG. */
static int config_address(struct config_ctx *c, const char *text, struct sockaddr_storage *addr,
                          socklen_t *len)
{
    if (config_parse_address(text, addr, len) == 0)
        return 0;
    char q[CONFIG_QUOTE_MAX];
    return config_fail(c,
                       "\"%s\" is not IPv4:port or [IPv6]:port (a numeric address, port 1 to "
                       "65535; no host names)",
                       config_quote(q, sizeof(q), text));
}

/* config_listener_address - l->address (the file's "address" or a --listen value). */
static int config_listener_address(struct config_ctx *c, struct config_listener *l)
{
    return config_address(c, l->address, &l->addr, &l->addrlen);
}

/* config_networks - a list of CIDR networks (cidr.h) into a new array; empty allowed
 * when allow_empty. */
static int config_networks(struct config_ctx *c, json_t *arr, bool allow_empty, struct cidr **out,
                           size_t *n_out)
{
    if (!json_is_array(arr) || (json_array_size(arr) == 0 && !allow_empty))
        return config_fail(c, "must be a list of addresses or networks, like [\"10.0.0.0/8\"]");
    size_t n = json_array_size(arr);
    if ((*out = calloc(n > 0 ? n : 1, sizeof(**out))) == NULL)
        return config_nomem(c);
    for (size_t i = 0; i < n; i++) {
        size_t at = config_push_index(c, i);
        char *text = NULL;
        int rc = config_string(c, json_array_get(arr, i), &text);
        if (rc != 0)
            return rc;
        const char *why = NULL;
        bool ok = cidr_parse(text, strlen(text), &(*out)[i], &why);
        char q[CONFIG_QUOTE_MAX];
        config_quote(q, sizeof(q), text);
        free(text);
        if (!ok)
            return config_fail(c, "\"%s\" %s", q, why);
        (*n_out)++;
        config_pop(c, at);
    }
    return 0;
}

/* config_admin_finish - "admin" is present: on, its address parsed once. */
static int config_admin_finish(struct config_ctx *c, json_t *obj, void *base)
{
    struct config_admin *a = base;
    (void)obj;
    a->enabled = true;
    size_t saved = config_push(c, CONFIG_NAME(CONFIG_SEC_ADMIN, struct config_admin, listen));
    int rc = config_address(c, a->listen, &a->addr, &a->addrlen);
    if (rc == 0)
        config_pop(c, saved);
    return rc;
}

/* config_trusted_proxies - a listener's "trusted_proxies": CIDR networks (cidr.h). */
static int config_trusted_proxies(struct config_ctx *c, json_t *arr, void *base)
{
    struct config_listener *l = base;
    if (arr == NULL)
        return 0;
    return config_networks(c, arr, false, &l->trusted_proxies, &l->n_trusted_proxies);
}

/* config_trusted_networks - "trusted_networks": the clients the rate limits spare; by
 * default the machine itself (127.0.0.0/8, ::1), [] for none. */
static int config_trusted_networks(struct config_ctx *c, json_t *arr, void *base)
{
    struct config *cfg = base;
    if (arr == NULL)
        return 0; /* config_finish puts in the default */
    return config_networks(c, arr, true, &cfg->trusted_networks, &cfg->n_trusted_networks);
}

/* config_default_networks - "trusted_networks" when not given: the machine itself. */
static int config_default_networks(struct config_ctx *c, struct config *cfg)
{
    static const char *const local[] = {"127.0.0.0/8", "::1"};
    size_t n = sizeof(local) / sizeof(local[0]);
    if ((cfg->trusted_networks = calloc(n, sizeof(*cfg->trusted_networks))) == NULL)
        return config_nomem(c);
    const char *why = NULL;
    for (size_t i = 0; i < n; i++)
        cidr_parse(local[i], strlen(local[i]), &cfg->trusted_networks[i], &why);
    cfg->n_trusted_networks = n;
    return 0;
}

/* config_listener_finish - a file listener's "address", once its row has read it, and its
 * PROXY protocol settings: a listener that takes the header trusts it from listed peers
 * only (anyone else could claim any address). */
static int config_listener_finish(struct config_ctx *c, json_t *obj, void *base)
{
    struct config_listener *l = base;
    (void)obj;
    size_t saved =
        config_push(c, CONFIG_NAME(CONFIG_SEC_LISTENER, struct config_listener, address));
    int rc = config_listener_address(c, base);
    if (rc != 0)
        return rc;
    config_pop(c, saved);
    const char *proxies = config_struct_name(config_trusted_proxies);
    if (l->proxy != CONFIG_PROXY_NONE && l->n_trusted_proxies == 0) {
        config_push(c, proxies);
        return config_fail(c, "is required with \"proxy_protocol\": the load balancers' "
                              "addresses, like [\"10.0.0.0/8\"]");
    }
    if (l->proxy == CONFIG_PROXY_NONE && l->n_trusted_proxies > 0) {
        config_push(c, proxies);
        return config_fail(c, "has no effect without \"proxy_protocol\"");
    }
    return 0;
}

/* config_listeners - "listeners": an array of {"address": ..., "tls": ..., "require_tls": ...}
 * objects. Whether a TLS mode fits the certificates is checked in config_finish, after the
 * overrides. */
static int config_listeners(struct config_ctx *c, json_t *arr, void *base)
{
    struct config *cfg = base;
    if (arr == NULL)
        return 0;
    if (!json_is_array(arr))
        return config_fail(c, "must be an array of objects like {\"address\": \"0.0.0.0:25\"}");
    size_t n = json_array_size(arr);
    if (n == 0)
        return config_fail(c, "must list at least one listener");
    cfg->listeners = calloc(n, sizeof(*cfg->listeners));
    if (cfg->listeners == NULL)
        return config_nomem(c);
    cfg->n_listeners = n;
    c->tls_given = calloc(n, sizeof(*c->tls_given));
    if (c->tls_given == NULL)
        return config_nomem(c);
    c->n_tls_given = n;
    for (size_t i = 0; i < n; i++) {
        json_t *item = json_array_get(arr, i);
        struct config_listener *l = &cfg->listeners[i];
        size_t at = config_push_index(c, i);
        if (!json_is_object(item))
            return config_fail(c, "must be an object like {\"address\": \"0.0.0.0:25\"}");
        int rc = config_defaults(c, CONFIG_SEC_LISTENER, l);
        if (rc == 0)
            rc = config_object(c, item, CONFIG_SEC_LISTENER, l);
        if (rc != 0)
            return rc;
        c->tls_given[i] =
            config_given(item, CONFIG_SEC_LISTENER, offsetof(struct config_listener, tls));
        config_pop(c, at);
    }
    return 0;
}

/* config_http_finish - the request's "ca_file", "client_cert" and "client_key": https only,
 * the certificate and its key together. The files are opened by curl at the first request. */
static int config_http_finish(struct config_ctx *c, json_t *obj, void *base)
{
    struct config_endpoint *e = base;
    (void)obj;
    const char *cert = CONFIG_NAME(CONFIG_SEC_HTTP, struct config_endpoint, client_cert);
    const char *key = CONFIG_NAME(CONFIG_SEC_HTTP, struct config_endpoint, client_key);
    const char *ca = CONFIG_NAME(CONFIG_SEC_HTTP, struct config_endpoint, ca_file);
    if ((e->client_cert == NULL) != (e->client_key == NULL)) {
        bool have_cert = e->client_cert != NULL;
        config_push(c, have_cert ? key : cert);
        return config_fail(c, "is required with %s (give both or neither)", have_cert ? cert : key);
    }
    const char *given = e->ca_file != NULL ? ca : e->client_cert != NULL ? cert : NULL;
    if (given != NULL && strncasecmp(e->url, "https://", 8) != 0) {
        config_push(c, given);
        return config_fail(c, "applies to https:// URLs only");
    }
    return 0;
}

/* config_check_finish - "recipient_check" is present: it is on, and its requests are an
 * endpoint's, named after the key, tried once and never behind a breaker (an answer that
 * does not come in time is on_failure's business). */
static int config_check_finish(struct config_ctx *c, json_t *obj, void *base)
{
    struct config_recipient_check *chk = base;
    (void)obj;
    chk->enabled = true;
    free(chk->http.name);
    if ((chk->http.name = strdup(config_sections[CONFIG_SEC_CHECK].name)) == NULL)
        return config_nomem(c);
    int err = config_defaults(c, CONFIG_SEC_RETRY, &chk->http.retry);
    if (err == 0)
        err = config_defaults(c, CONFIG_SEC_BREAKER, &chk->http.breaker);
    chk->http.retry.max_attempts = 1;
    chk->http.breaker.failures = 0;
    return err;
}

/* config_status - an HTTP status as a reply_map key: three digits, 100 to 599. */
static bool config_status(const char *key, unsigned *status)
{
    unsigned v = 0;
    size_t n = 0;
    for (; key[n] >= '0' && key[n] <= '9' && n < 3; n++)
        v = v * 10u + (unsigned)(key[n] - '0');
    if (n != 3 || key[n] != '\0' || v < CONFIG_STATUS_MIN || v > CONFIG_STATUS_MAX)
        return false;
    *status = v;
    return true;
}

/* config_rule_cmp - qsort order of reply_map rules: by status. */
static int config_rule_cmp(const void *a, const void *b)
{
    unsigned x = ((const struct config_reply_rule *)a)->status;
    unsigned y = ((const struct config_reply_rule *)b)->status;
    return x < y ? -1 : x > y;
}

/* config_reply_map - an endpoint's "reply_map": HTTP status -> the SMTP reply it gives, as
 * "250", "550 5.7.1" or "550 5.7.1 Text" (app_reply.h), stored in status order. A status
 * appears once: the JSON parser refuses a repeated key, and only the three-digit spelling is
 * taken. */
static int config_reply_map(struct config_ctx *c, json_t *obj, void *base)
{
    struct config_endpoint *e = base;
    if (obj == NULL)
        return 0;
    if (!json_is_object(obj))
        return config_fail(c, "must be an object of HTTP statuses to SMTP replies, like "
                              "{\"409\": \"250\"}");
    size_t n = json_object_size(obj);
    if (n == 0)
        return 0;
    e->reply_map = calloc(n, sizeof(*e->reply_map));
    if (e->reply_map == NULL)
        return config_nomem(c);
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        size_t at = config_push(c, key);
        struct config_reply_rule *r = &e->reply_map[e->n_reply_map];
        if (!config_status(key, &r->status))
            return config_fail(c, "must be an HTTP status from %u to %u", CONFIG_STATUS_MIN,
                               CONFIG_STATUS_MAX);
        char *text = NULL;
        int rc = config_string(c, v, &text);
        if (rc != 0)
            return rc;
        const char *why = NULL;
        bool ok = app_reply_parse(text, strlen(text), APP_REPLY_CODE_OPTIONAL, &r->reply, &why);
        if (!ok) {
            char q[CONFIG_QUOTE_MAX];
            config_quote(q, sizeof(q), text);
            free(text);
            return config_fail(c, "\"%s\" is not an SMTP reply: %s", q, why);
        }
        free(text);
        e->n_reply_map++;
        config_pop(c, at);
    }
    qsort(e->reply_map, e->n_reply_map, sizeof(*e->reply_map), config_rule_cmp);
    return 0;
}

/* config_secret_decode - the bytes of text after prefix, base64 with its '=' padding
 * implied when missing (secrets are often written without it), into key: their count, or
 * -1 when text has another prefix or is not base64 of at most CONFIG_SECRET_MAX bytes. */
static long config_secret_decode(const char *text, const char *prefix,
                                 uint8_t key[BASE64_SIZE(CONFIG_SECRET_MAX)])
{
    size_t pfx = strlen(prefix);
    size_t len = strlen(text);
    if (strncmp(text, prefix, pfx) != 0 || len - pfx > BASE64_SIZE(CONFIG_SECRET_MAX))
        return -1;
    char padded[BASE64_SIZE(CONFIG_SECRET_MAX) + 1];
    size_t b64 = len - pfx;
    memcpy(padded, text + pfx, b64);
    while (b64 % 4 != 0 && b64 % 4 != 1)
        padded[b64++] = '=';
    long got = base64_decode(padded, b64, key);
    memset(padded, 0, sizeof(padded));
    return got;
}

/* config_secret_ed25519 - a "whsk_" key: the base64 of the 32-byte Ed25519 seed, or of the
 * 64-byte seed and public key (libsodium's and NaCl's secret key), whose public half must
 * be the seed's. Its public key is derived here. */
static int config_secret_ed25519(struct config_ctx *c, struct config_secret *s, const uint8_t *key,
                                 long got)
{
    if (got != (long)ED25519_SEED_BYTES && got != (long)(ED25519_SEED_BYTES + ED25519_PUBLIC_BYTES))
        return config_fail(c,
                           "must be \"%s\" and the base64 of the 32-byte Ed25519 seed, or of "
                           "the 64-byte seed and public key",
                           CONFIG_KEY_PREFIX);
    if (ed25519_public_key(key, s->public_key) != 0)
        return config_fail(c, "cannot derive the Ed25519 public key (libsodium)");
    if (got > (long)ED25519_SEED_BYTES &&
        memcmp(key + ED25519_SEED_BYTES, s->public_key, ED25519_PUBLIC_BYTES) != 0)
        return config_fail(c, "is a 64-byte Ed25519 key whose second half is not the public key "
                              "of its first (the seed)");
    memcpy(s->key, key, ED25519_SEED_BYTES);
    s->len = ED25519_SEED_BYTES;
    s->ed25519 = true;
    return 0;
}

/* config_signing_secrets - "signing.secrets": Standard Webhooks keys, each decoded once
 * here: "whsec_" and the base64 of 24 to 64 bytes (v1, HMAC-SHA256), or "whsk_" and an
 * Ed25519 secret key (v1a). Never echoed. */
static int config_signing_secrets(struct config_ctx *c, json_t *arr, void *base)
{
    struct config_signing *sg = base;
    if (arr == NULL)
        return 0;
    if (!json_is_array(arr) || json_array_size(arr) == 0)
        return config_fail(c, "must be a list of one or more \"%s...\" or \"%s...\" keys",
                           CONFIG_SECRET_PREFIX, CONFIG_KEY_PREFIX);
    size_t n = json_array_size(arr);
    sg->secrets = calloc(n, sizeof(*sg->secrets));
    if (sg->secrets == NULL)
        return config_nomem(c);
    for (size_t i = 0; i < n; i++) {
        size_t at = config_push_index(c, i);
        char *text = NULL;
        int rc = config_string(c, json_array_get(arr, i), &text);
        if (rc != 0)
            return rc;
        struct config_secret *s = &sg->secrets[i];
        uint8_t key[BASE64_SIZE(CONFIG_SECRET_MAX)];
        bool ed25519 = strncmp(text, CONFIG_KEY_PREFIX, strlen(CONFIG_KEY_PREFIX)) == 0;
        bool public = strncmp(text, CONFIG_PUBLIC_PREFIX, strlen(CONFIG_PUBLIC_PREFIX)) == 0;
        long got =
            config_secret_decode(text, ed25519 ? CONFIG_KEY_PREFIX : CONFIG_SECRET_PREFIX, key);
        free(text);
        if (public)
            return config_fail(c,
                               "is an Ed25519 public key, which the receiver verifies with: "
                               "smtphook signs with the secret key, \"%s\" and base64",
                               CONFIG_KEY_PREFIX);
        if (ed25519) {
            rc = config_secret_ed25519(c, s, key, got);
            memset(key, 0, sizeof(key));
            if (rc != 0)
                return rc;
        } else {
            if (got < (long)CONFIG_SECRET_MIN || got > (long)CONFIG_SECRET_MAX)
                return config_fail(c,
                                   "must be \"%s\" and the base64 of %u to %u bytes (the "
                                   "secret the receiver verifies with), or \"%s\" and an "
                                   "Ed25519 secret key",
                                   CONFIG_SECRET_PREFIX, CONFIG_SECRET_MIN, CONFIG_SECRET_MAX,
                                   CONFIG_KEY_PREFIX);
            memcpy(s->key, key, (size_t)got);
            s->len = (size_t)got;
            memset(key, 0, sizeof(key));
        }
        sg->n_secrets++;
        config_pop(c, at);
    }
    return 0;
}

/* config_signing_finish - "signing": a scheme, and exactly the secret that scheme uses. */
static int config_signing_finish(struct config_ctx *c, json_t *obj, void *base)
{
    struct config_signing *sg = base;
    const char *scheme = CONFIG_NAME(CONFIG_SEC_SIGNING, struct config_signing, scheme);
    const char *key = CONFIG_NAME(CONFIG_SEC_SIGNING, struct config_signing, key);
    const char *secrets = config_struct_name(config_signing_secrets);
    (void)obj;
    if (sg->scheme == CONFIG_SIGNING_NONE) {
        config_push(c, scheme);
        return config_fail(c, "is required: \"%s\" or \"%s\"",
                           config_signing_schemes[CONFIG_SIGNING_STANDARD_WEBHOOKS],
                           config_signing_schemes[CONFIG_SIGNING_MAILGUN]);
    }
    bool sw = sg->scheme == CONFIG_SIGNING_STANDARD_WEBHOOKS;
    if (sw && sg->key != NULL) {
        config_push(c, key);
        return config_fail(c, "is for the \"%s\" scheme; \"%s\" uses \"%s\"",
                           config_signing_schemes[CONFIG_SIGNING_MAILGUN],
                           config_signing_schemes[sg->scheme], secrets);
    }
    if (!sw && sg->n_secrets > 0) {
        config_push(c, secrets);
        return config_fail(c, "is for the \"%s\" scheme; \"%s\" uses \"%s\"",
                           config_signing_schemes[CONFIG_SIGNING_STANDARD_WEBHOOKS],
                           config_signing_schemes[sg->scheme], key);
    }
    if (sw ? sg->n_secrets == 0 : sg->key == NULL) {
        config_push(c, sw ? secrets : key);
        return config_fail(c, "is required with the \"%s\" scheme",
                           config_signing_schemes[sg->scheme]);
    }
    return 0;
}

/* config_basic_auth_finish - "basic_auth": the Authorization header line, made once. */
static int config_basic_auth_finish(struct config_ctx *c, json_t *obj, void *base)
{
    struct config_basic_auth *a = base;
    (void)obj;
    static const char pfx[] = "Authorization: Basic ";
    size_t ul = strlen(a->user), pl = strlen(a->password);
    char *plain = malloc(ul + pl + 2);
    char *line = malloc(sizeof(pfx) + BASE64_SIZE(ul + pl + 1));
    if (plain == NULL || line == NULL) {
        free(plain);
        free(line);
        return config_nomem(c);
    }
    snprintf(plain, ul + pl + 2, "%s:%s", a->user, a->password);
    memcpy(line, pfx, sizeof(pfx) - 1);
    base64_encode(plain, ul + pl + 1, line + sizeof(pfx) - 1);
    free(plain);
    free(a->header);
    a->header = line;
    return 0;
}

/* config_endpoint_check - what an endpoint's keys must agree on, once its nested objects are
 * read: a preset chooses the format and needs the secret its receiver checks; the Mailgun
 * scheme signs the Mailgun form only; headers smtphook sets for authentication or signing
 * cannot also be configured. */
static int config_endpoint_check(struct config_ctx *c, json_t *obj, struct config_endpoint *e)
{
    const char *preset = CONFIG_NAME(CONFIG_SEC_ENDPOINT, struct config_endpoint, preset);
    const char *format = CONFIG_NAME(CONFIG_SEC_ENDPOINT, struct config_endpoint, format);
    const char *auth = config_sections[CONFIG_SEC_BASIC_AUTH].name;
    const char *signing = config_sections[CONFIG_SEC_SIGNING].name;
    const char *name = config_presets[e->preset];
    if (e->preset != CONFIG_PRESET_NONE) {
        if (config_given(obj, CONFIG_SEC_ENDPOINT, offsetof(struct config_endpoint, format))) {
            config_push(c, format);
            return config_fail(c, "cannot be given with \"%s\": the preset \"%s\" sets it", preset,
                               name);
        }
        e->format =
            e->preset == CONFIG_PRESET_RAILS_RELAY ? CONFIG_FORMAT_RAW : CONFIG_FORMAT_MULTIPART;
    }
    bool needs_auth = e->preset == CONFIG_PRESET_RAILS_RELAY || e->preset == CONFIG_PRESET_SENDGRID;
    if (needs_auth && e->basic_auth.header == NULL) {
        config_push(c, preset);
        return config_fail(c,
                           "\"%s\" needs \"%s\": {\"user\": \"%s\", \"password\": "
                           "\"${...}\"} with the ingress password the receiver checks",
                           name, auth, CONFIG_RAILS_USER);
    }
    bool mailgun_key = e->signing.scheme == CONFIG_SIGNING_MAILGUN;
    if (e->preset == CONFIG_PRESET_MAILGUN && !mailgun_key) {
        config_push(c, preset);
        return config_fail(c,
                           "\"%s\" needs \"%s\": {\"scheme\": \"mailgun\", \"key\": "
                           "\"${...}\"} with the signing key the receiver checks",
                           name, signing);
    }
    if (mailgun_key && e->preset != CONFIG_PRESET_MAILGUN) {
        config_push(c, signing);
        return config_fail(c, "scheme \"mailgun\" signs the form of the \"%s\" preset only",
                           config_presets[CONFIG_PRESET_MAILGUN]);
    }
    if (e->stream && (e->signing.scheme != CONFIG_SIGNING_NONE ||
                      e->preset == CONFIG_PRESET_MAILGUN || e->preset == CONFIG_PRESET_SENDGRID)) {
        config_push(c, CONFIG_NAME(CONFIG_SEC_ENDPOINT, struct config_endpoint, stream));
        return config_fail(c,
                           e->signing.scheme != CONFIG_SIGNING_NONE
                               ? "cannot be true with \"%s\": a signature covers the whole "
                                 "body and must come before it"
                               : "cannot be true with the \"%s\" preset: its form has fields "
                                 "read from the message before the message",
                           e->signing.scheme != CONFIG_SIGNING_NONE ? signing : name);
    }
    c->cfg->any_stream = c->cfg->any_stream || e->stream;
    c->cfg->any_form = c->cfg->any_form || e->format == CONFIG_FORMAT_MULTIPART;
    c->cfg->any_labels = c->cfg->any_labels || e->preset == CONFIG_PRESET_MAILGUN ||
                         e->preset == CONFIG_PRESET_SENDGRID;
    for (size_t i = 0; i < e->n_headers; i++) {
        const char *h = e->headers[i].name;
        bool clash = (e->basic_auth.header != NULL && strcasecmp(h, "Authorization") == 0) ||
                     (e->signing.scheme == CONFIG_SIGNING_STANDARD_WEBHOOKS &&
                      strncasecmp(h, "webhook-", strlen("webhook-")) == 0);
        if (clash) {
            config_push(c, config_struct_name(config_headers));
            config_push(c, h);
            return config_fail(c, "is set by smtphook for \"%s\"",
                               strcasecmp(h, "Authorization") == 0 ? auth : signing);
        }
    }
    if (e->preset == CONFIG_PRESET_RAILS_RELAY || e->preset == CONFIG_PRESET_SENDGRID) {
        if (strcmp(e->basic_auth.user, CONFIG_RAILS_USER) != 0) {
            config_push(c, auth);
            config_push(c, "user");
            int rc = config_warn(c, "Action Mailbox's ingresses accept only the user \"%s\"",
                                 CONFIG_RAILS_USER);
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

/* config_endpoint - one endpoint object, named by its key in "endpoints"; e is zeroed. */
static int config_endpoint(struct config_ctx *c, const char *name, json_t *obj,
                           struct config_endpoint *e)
{
    size_t saved = config_push(c, name);
    if (!config_name_ok(name))
        return config_fail(c, "endpoint names may contain only letters, digits, '_' and '-'");
    e->name = strdup(name);
    if (e->name == NULL)
        return config_nomem(c);
    if (!json_is_object(obj))
        return config_fail(c, "must be an object like {\"url\": \"https://...\"}");
    int rc = config_defaults(c, CONFIG_SEC_ENDPOINT, e);
    if (rc == 0)
        rc = config_object(c, obj, CONFIG_SEC_ENDPOINT, e);
    if (rc == 0)
        rc = config_endpoint_check(c, obj, e);
    if (rc != 0)
        return rc;
    config_pop(c, saved);
    return 0;
}

/* config_endpoints - "endpoints": name -> endpoint, in file order. */
static int config_endpoints(struct config_ctx *c, json_t *obj, void *base)
{
    struct config *cfg = base;
    if (obj == NULL)
        return 0;
    if (!json_is_object(obj))
        return config_fail(c, "must be an object of endpoint names to endpoints");
    size_t n = json_object_size(obj);
    if (n == 0)
        return config_fail(c, "must name at least one endpoint");
    cfg->endpoints = calloc(n, sizeof(*cfg->endpoints));
    if (cfg->endpoints == NULL)
        return config_nomem(c);
    cfg->n_endpoints = n;
    size_t i = 0;
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        int rc = config_endpoint(c, key, v, &cfg->endpoints[i++]);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* The kinds of route.h from the narrowest to the widest: a pattern can take every address of
 * another only when its kind is at least as wide (a domain is never all of a subdomain's). */
_Static_assert(ROUTE_PATTERN_EXACT < ROUTE_PATTERN_DOMAIN &&
                   ROUTE_PATTERN_DOMAIN < ROUTE_PATTERN_SUBDOMAIN &&
                   ROUTE_PATTERN_SUBDOMAIN < ROUTE_PATTERN_ANY,
               "route pattern kinds in order of width");
_Static_assert(CONFIG_ADDR_MAX > SMTP_LOCAL_PART_MAX + 1 + SMTP_DOMAIN_MAX,
               "an address made from a pattern fits");

/* config_pattern_spell - p written out into buf with wild for each '*' of its form: "*"
 * gives the pattern as written (domain lower case), for messages; "x" gives an address that
 * stands for all of p's (a made-up local part, and first label for *@*.domain), which a
 * pattern at least as wide matches exactly when it takes every address p would (the
 * delimiter widens both alike). Returns the length. */
static size_t config_pattern_spell(const struct route_pattern *p, const char *wild, char *buf,
                                   size_t len)
{
    int n = -1;
    switch (p->kind) {
    case ROUTE_PATTERN_EXACT:
        n = snprintf(buf, len, "%s@%s", p->local, p->domain);
        break;
    case ROUTE_PATTERN_DOMAIN:
        n = snprintf(buf, len, "%s@%s", wild, p->domain);
        break;
    case ROUTE_PATTERN_SUBDOMAIN:
        n = snprintf(buf, len, "%s@%s.%s", wild, wild, p->domain);
        break;
    case ROUTE_PATTERN_ANY:
        n = snprintf(buf, len, "%s", wild);
        break;
    }
    return n < 0 || (size_t)n >= len ? 0 : (size_t)n; /* cannot happen: CONFIG_ADDR_MAX */
}

/* config_pattern_useful - the last parsed pattern p of route ri can match some address: its
 * domain is served, it is not in its route twice, and no pattern of an earlier route takes
 * all its addresses first (config_route_for picks the first route that matches). p's
 * address (config_pattern_spell) is made and split once, so each other pattern costs one
 * route_address_match, which mostly compares lengths. A pattern at least as wide that
 * matches it takes all of p's addresses; one of p's kind and lengths that matches it is p
 * again (an exact local part of p's length cannot match through p's extension). */
static int config_pattern_useful(struct config_ctx *c, size_t ri, const char *text)
{
    const struct config *cfg = c->cfg;
    const struct config_route *r = &cfg->routes[ri];
    const struct route_pattern *p = &r->patterns[r->n_patterns - 1];
    char q[CONFIG_QUOTE_MAX], other[CONFIG_QUOTE_MAX], addr[CONFIG_ADDR_MAX], raw[CONFIG_ADDR_MAX];
    if (!route_pattern_domain_served(p, cfg->any_domain, cfg->domains, cfg->n_domains))
        return config_fail(c, "\"%s\" can never match: %s", config_quote(q, sizeof(q), text),
                           p->kind == ROUTE_PATTERN_SUBDOMAIN
                               ? "no domain of \"domains\" is below its domain"
                               : "its domain is not one of \"domains\"");
    struct route_address a;
    route_address_split(addr, config_pattern_spell(p, "x", addr, sizeof(addr)),
                        cfg->recipient_delimiter, &a);
    for (size_t k = 0; k + 1 < r->n_patterns; k++) {
        const struct route_pattern *e = &r->patterns[k];
        if (e->kind == p->kind && e->local_len == p->local_len && e->domain_len == p->domain_len &&
            route_address_match(e, &a))
            return config_fail(c, "duplicate pattern \"%s\" (the same as match[%zu])",
                               config_quote(q, sizeof(q), text), k);
    }
    for (size_t j = 0; j < ri; j++) {
        for (size_t k = 0; k < cfg->routes[j].n_patterns; k++) {
            const struct route_pattern *e = &cfg->routes[j].patterns[k];
            if (e->kind < p->kind || !route_address_match(e, &a))
                continue;
            config_pattern_spell(e, "*", raw, sizeof(raw));
            return config_fail(c,
                               "\"%s\" can never match: routes[%zu].match[%zu] (\"%s\") comes "
                               "first and takes every address it would",
                               config_quote(q, sizeof(q), text), j, k,
                               config_quote(other, sizeof(other), raw));
        }
    }
    return 0;
}

/* config_route_match - a route's "match": patterns of route.h, each able to match. */
static int config_route_match(struct config_ctx *c, json_t *arr, void *base)
{
    struct config_route *r = base;
    size_t ri = (size_t)(r - c->cfg->routes);
    if (arr == NULL)
        return config_fail(c, "is required");
    if (!json_is_array(arr))
        return config_fail(c, "must be an array of patterns like [\"*@example.com\"]");
    size_t n = json_array_size(arr);
    if (n == 0)
        return config_fail(c, "must list at least one pattern");
    r->patterns = calloc(n, sizeof(*r->patterns));
    if (r->patterns == NULL)
        return config_nomem(c);
    for (size_t i = 0; i < n; i++) {
        size_t at = config_push_index(c, i);
        char *text = NULL;
        int rc = config_string(c, json_array_get(arr, i), &text);
        if (rc != 0)
            return rc;
        const char *why = NULL;
        rc = route_pattern_parse(text, &r->patterns[r->n_patterns], &why);
        if (rc == 0) {
            r->n_patterns++;
            rc = config_pattern_useful(c, ri, text);
        } else if (rc == SH_ENOMEM) {
            rc = config_nomem(c);
        } else {
            char q[CONFIG_QUOTE_MAX];
            rc = config_fail(c, "\"%s\" is not a pattern: %s", config_quote(q, sizeof(q), text),
                             why);
        }
        free(text);
        if (rc != 0)
            return rc;
        config_pop(c, at);
    }
    return 0;
}

/* config_route_endpoints - a route's "endpoints": names of "endpoints", each once, kept as
 * indices in the route's order. */
static int config_route_endpoints(struct config_ctx *c, json_t *arr, void *base)
{
    struct config_route *r = base;
    const struct config *cfg = c->cfg;
    if (arr == NULL)
        return config_fail(c, "is required");
    if (!json_is_array(arr))
        return config_fail(c, "must be an array of endpoint names");
    size_t n = json_array_size(arr);
    if (n == 0)
        return config_fail(c, "must list at least one endpoint");
    r->endpoints = calloc(n, sizeof(*r->endpoints));
    if (r->endpoints == NULL)
        return config_nomem(c);
    for (size_t i = 0; i < n; i++) {
        size_t at = config_push_index(c, i);
        char *name = NULL;
        int rc = config_string(c, json_array_get(arr, i), &name);
        if (rc != 0)
            return rc;
        size_t e = 0;
        while (e < cfg->n_endpoints && strcmp(cfg->endpoints[e].name, name) != 0)
            e++;
        bool twice = false;
        for (size_t k = 0; k < r->n_endpoints && !twice; k++)
            twice = r->endpoints[k] == e;
        char q[CONFIG_QUOTE_MAX];
        config_quote(q, sizeof(q), name);
        free(name);
        if (e == cfg->n_endpoints)
            return config_fail(c, "no endpoint is named \"%s\"", q);
        if (twice)
            return config_fail(c, "duplicate endpoint \"%s\"", q);
        r->endpoints[r->n_endpoints++] = e;
        config_pop(c, at);
    }
    return 0;
}

/* config_routes - "routes": [{"match": [...], "endpoints": [...], "policy": ...}, ...], in
 * order; the first route with a matching pattern takes a recipient. */
static int config_routes(struct config_ctx *c, json_t *arr, void *base)
{
    struct config *cfg = base;
    if (arr == NULL)
        return 0;
    if (!json_is_array(arr))
        return config_fail(c, "must be an array of objects like " CONFIG_ROUTE_EXAMPLE);
    size_t n = json_array_size(arr);
    if (n == 0)
        return config_fail(c, "must list at least one route (or leave it out: every endpoint "
                              "gets every message)");
    cfg->routes = calloc(n, sizeof(*cfg->routes));
    if (cfg->routes == NULL)
        return config_nomem(c);
    for (size_t i = 0; i < n; i++) {
        json_t *item = json_array_get(arr, i);
        size_t at = config_push_index(c, i);
        if (!json_is_object(item))
            return config_fail(c, "must be an object like " CONFIG_ROUTE_EXAMPLE);
        struct config_route *r = &cfg->routes[cfg->n_routes++]; /* freed with cfg from here */
        int rc = config_defaults(c, CONFIG_SEC_ROUTE, r);
        if (rc == 0)
            rc = config_object(c, item, CONFIG_SEC_ROUTE, r);
        if (rc != 0)
            return rc;
        config_pop(c, at);
    }
    return 0;
}

/* config_certificates - "tls.certificates": [{"cert": FILE, "key": FILE}, ...]. */
static int config_certificates(struct config_ctx *c, json_t *arr, void *base)
{
    struct config_tls *t = base;
    if (arr == NULL)
        return 0;
    if (!json_is_array(arr))
        return config_fail(c, "must be an array of objects like {\"cert\": \"fullchain.pem\", "
                              "\"key\": \"privkey.pem\"}");
    size_t n = json_array_size(arr);
    if (n == 0)
        return config_fail(c, "must list at least one {\"cert\": ..., \"key\": ...} pair (or "
                              "leave it out: no TLS)");
    t->certificates = calloc(n, sizeof(*t->certificates));
    if (t->certificates == NULL)
        return config_nomem(c);
    t->n_certificates = n;
    for (size_t i = 0; i < n; i++) {
        json_t *item = json_array_get(arr, i);
        size_t at = config_push_index(c, i);
        if (!json_is_object(item))
            return config_fail(c, "must be an object like {\"cert\": \"fullchain.pem\", "
                                  "\"key\": \"privkey.pem\"}");
        int rc = config_object(c, item, CONFIG_SEC_CERTIFICATE, &t->certificates[i]);
        if (rc != 0)
            return rc;
        config_pop(c, at);
    }
    return 0;
}

/* config_overrides_tls - --tls-cert and --tls-key, both or neither: one certificate that
 * replaces "tls.certificates" (the other tls settings stay). */
static int config_overrides_tls(struct config_ctx *c, const struct config_overrides *ov,
                                struct config_tls *t)
{
    if (ov->tls_cert == NULL && ov->tls_key == NULL)
        return 0;
    if (ov->tls_key == NULL) {
        config_set_path(c, NULL, "--tls-cert");
        return config_fail(c, "needs --tls-key as well (give both or neither)");
    }
    if (ov->tls_cert == NULL) {
        config_set_path(c, NULL, "--tls-key");
        return config_fail(c, "needs --tls-cert as well (give both or neither)");
    }
    config_set_path(c, NULL, ov->tls_cert[0] == '\0' ? "--tls-cert" : "--tls-key");
    if (ov->tls_cert[0] == '\0' || ov->tls_key[0] == '\0')
        return config_fail(c, "must not be empty");
    struct config_certificate *cert = calloc(1, sizeof(*cert));
    if (cert == NULL)
        return config_nomem(c);
    cert->cert = strdup(ov->tls_cert);
    cert->key = strdup(ov->tls_key);
    if (cert->cert == NULL || cert->key == NULL) {
        config_free_certificates(cert, 1);
        return config_nomem(c);
    }
    config_free_certificates(t->certificates, t->n_certificates);
    t->certificates = cert;
    t->n_certificates = 1;
    return 0;
}

/* config_listener_settings - the names of the PROXY protocol and TLS settings file listener
 * i has, ", " between them, into out (len bytes); "" when it has none. */
static const char *config_listener_settings(const struct config_ctx *c, const struct config *cfg,
                                            size_t i, char *out, size_t len)
{
    const struct config_listener *l = &cfg->listeners[i];
    const char *names[3];
    size_t n = 0;
    if (l->proxy != CONFIG_PROXY_NONE)
        names[n++] = CONFIG_NAME(CONFIG_SEC_LISTENER, struct config_listener, proxy);
    if (i < c->n_tls_given && c->tls_given[i])
        names[n++] = CONFIG_NAME(CONFIG_SEC_LISTENER, struct config_listener, tls);
    if (l->require_tls)
        names[n++] = CONFIG_NAME(CONFIG_SEC_LISTENER, struct config_listener, require_tls);
    size_t at = 0;
    out[0] = '\0';
    for (size_t k = 0; k < n && at < len; k++)
        at += (size_t)snprintf(out + at, len - at, "%s%s", k > 0 ? ", " : "", names[k]);
    return out;
}

/* config_warn_listeners_replaced - before --listen replaces the file's listeners: a warning
 * when one of them had a PROXY protocol or TLS setting, which the new ones do not get (a
 * SMTPHOOK_LISTEN left in an environment would otherwise drop them silently). The first
 * such listener is named. */
static int config_warn_listeners_replaced(struct config_ctx *c, const struct config *cfg)
{
    char first[96] = "", other[96];
    size_t at = 0;
    bool others = false;
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        if (first[0] == '\0') {
            config_listener_settings(c, cfg, i, first, sizeof(first));
            at = i;
        } else if (config_listener_settings(c, cfg, i, other, sizeof(other))[0] != '\0') {
            others = true;
        }
    }
    if (first[0] == '\0')
        return 0;
    char q[CONFIG_QUOTE_MAX];
    return config_warn(c,
                       "replaces the file's \"%s\" and drops the %s of %s%s: a --listen or "
                       "SMTPHOOK_LISTEN listener has no PROXY protocol and the default TLS mode",
                       config_struct_name(config_listeners), first,
                       config_quote(q, sizeof(q), cfg->listeners[at].address),
                       others ? " (and of other listeners)" : "");
}

/* config_overrides_apply - command-line values replace the file's; checked the same way. */
static int config_overrides_apply(struct config_ctx *c, const struct config_overrides *ov,
                                  struct config *cfg)
{
    if (ov == NULL)
        return 0;
    if (ov->hostname != NULL) {
        config_set_path(c, NULL, "--hostname");
        const char *problem = config_hostname_problem(ov->hostname);
        if (problem != NULL)
            return config_fail(c, "%s", problem);
        char *h = strdup(ov->hostname);
        if (h == NULL)
            return config_nomem(c);
        free(cfg->hostname);
        cfg->hostname = h;
    }
    if (ov->n_listen > 0) {
        config_set_path(c, NULL, "--listen");
        if (config_warn_listeners_replaced(c, cfg) != 0)
            return SH_ENOMEM;
        struct config_listener *l = calloc(ov->n_listen, sizeof(*l));
        if (l == NULL)
            return config_nomem(c);
        for (size_t i = 0; i < ov->n_listen; i++) {
            int rc = config_defaults(c, CONFIG_SEC_LISTENER, &l[i]);
            if (rc == 0 && (l[i].address = strdup(ov->listen[i])) == NULL)
                rc = config_nomem(c);
            if (rc == 0)
                rc = config_listener_address(c, &l[i]);
            if (rc != 0) {
                config_free_listeners(l, ov->n_listen);
                return rc;
            }
        }
        config_free_listeners(cfg->listeners, cfg->n_listeners);
        cfg->listeners = l;
        cfg->n_listeners = ov->n_listen;
        free(c->tls_given); /* every --listen listener gets the default TLS mode */
        c->tls_given = NULL;
        c->n_tls_given = 0;
    }
    if (ov->webhook != NULL) {
        config_set_path(c, NULL, "--webhook");
        const char *problem = config_url_problem(ov->webhook);
        if (problem != NULL)
            return config_fail(c, "%s", problem);
        struct config_endpoint *e = calloc(1, sizeof(*e));
        if (e == NULL)
            return config_nomem(c);
        int rc = config_defaults(c, CONFIG_SEC_ENDPOINT, e);
        if (rc == 0 && ((e->name = strdup(CONFIG_DEFAULT_NAME)) == NULL ||
                        (e->url = strdup(ov->webhook)) == NULL))
            rc = config_nomem(c);
        if (rc != 0) {
            config_free_endpoints(e, 1);
            return rc;
        }
        config_free_endpoints(cfg->endpoints, cfg->n_endpoints);
        cfg->endpoints = e;
        cfg->n_endpoints = 1;
        /* The routes name the file's endpoints, which are gone: the one URL gets it all. */
        c->routes_dropped = cfg->n_routes > 0;
        config_free_routes(cfg->routes, cfg->n_routes);
        cfg->routes = NULL;
        cfg->n_routes = 0;
    }
    if (ov->admin != NULL) {
        config_set_path(c, NULL, "--admin");
        char *a = strdup(ov->admin);
        if (a == NULL)
            return config_nomem(c);
        free(cfg->admin.listen);
        cfg->admin.listen = a;
        int rc = config_admin_finish(c, NULL, &cfg->admin);
        if (rc != 0)
            return rc;
    }
    if (ov->delivery != NULL) {
        config_set_path(c, NULL, "--delivery");
        int d = -1;
        for (int i = 0; config_deliveries[i] != NULL && d < 0; i++) {
            if (strcmp(ov->delivery, config_deliveries[i]) == 0)
                d = i;
        }
        if (d < 0)
            return config_fail(c, "must be \"sync\", \"queue\" or \"sync_then_queue\"");
        cfg->delivery = (enum config_delivery)d;
    }
    if (ov->queue_dir != NULL) {
        config_set_path(c, NULL, "--queue-dir");
        if (ov->queue_dir[0] == '\0')
            return config_fail(c, "must not be empty");
        char *q = strdup(ov->queue_dir);
        if (q == NULL)
            return config_nomem(c);
        free(cfg->queue.directory);
        cfg->queue.directory = q;
    }
    return config_overrides_tls(c, ov, &cfg->tls);
}

/* config_delivery_name - see config.h. */
const char *config_delivery_name(enum config_delivery d)
{
    return d < CONFIG_DELIVERY_INHERIT ? config_deliveries[d] : "inherit";
}

/* config_tls_mode_name - see config.h. */
const char *config_tls_mode_name(enum config_tls_mode m)
{
    return m <= CONFIG_TLS_IMPLICIT ? config_tls_modes[m] : "?";
}

/* config_proxy_name - see config.h. */
const char *config_proxy_name(enum config_proxy p)
{
    return p <= CONFIG_PROXY_ANY ? config_proxy_modes[p] : "?";
}

/* config_route_delivery - see config.h. */
enum config_delivery config_route_delivery(const struct config *cfg, long r)
{
    return r >= 0 && (size_t)r < cfg->n_routes ? cfg->routes[r].delivery : cfg->delivery;
}

/* config_mkdirs - make directory and its missing parents (mode 0750). 0 or -1 with errno. */
static int config_mkdirs(const char *directory)
{
    char path[PATH_MAX];
    int n = snprintf(path, sizeof(path), "%s", directory);
    if (n <= 0 || (size_t)n >= sizeof(path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = path + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0750) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(path, 0750) != 0 && errno != EEXIST ? -1 : 0;
}

/* config_writable_dir - directory (quoted as q in messages) exists, is a directory and
 * takes files: one is made there and removed at once (a read-only container file system
 * passes stat() and access() and fails only here). hint says what the directory is for. */
static int config_writable_dir(struct config_ctx *c, const char *directory, const char *q,
                               const char *hint)
{
    struct stat st;
    if (stat(directory, &st) != 0)
        return config_fail(c, "\"%s\": %s", q, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return config_fail(c, "\"%s\" is not a directory", q);
    char probe[PATH_MAX];
    int n = snprintf(probe, sizeof(probe), "%s/.smtphook-check-XXXXXX", directory);
    int fd = n > 0 && (size_t)n < sizeof(probe) ? mkstemp(probe) : -1;
    if (fd < 0)
        return config_fail(c, "\"%s\": cannot create files there: %s (%s)", q,
                           n > 0 && (size_t)n < sizeof(probe) ? strerror(errno) : "too long", hint);
    close(fd);
    unlink(probe);
    return 0;
}

/* config_finish_queue - every route's delivery (the top-level one where it names none);
 * when something is queued, the queue directory exists (made if missing) and takes files,
 * checked now rather than at the first queued message. */
static int config_finish_queue(struct config_ctx *c, const char *what, struct config *cfg)
{
    cfg->uses_queue = cfg->delivery != CONFIG_DELIVERY_SYNC && cfg->n_routes == 0;
    cfg->queue_only = cfg->delivery == CONFIG_DELIVERY_QUEUE && cfg->n_routes == 0;
    if (cfg->n_routes > 0)
        cfg->queue_only = true;
    for (size_t r = 0; r < cfg->n_routes; r++) {
        struct config_route *route = &cfg->routes[r];
        if (route->delivery == CONFIG_DELIVERY_INHERIT)
            route->delivery = cfg->delivery;
        cfg->uses_queue |= route->delivery != CONFIG_DELIVERY_SYNC;
        cfg->queue_only &= route->delivery == CONFIG_DELIVERY_QUEUE;
    }
    if (!cfg->uses_queue)
        return 0;
    char q[CONFIG_QUOTE_MAX];
    config_set_key_path(c, what, CONFIG_SEC_QUEUE, offsetof(struct config_queue, directory));
    config_quote(q, sizeof(q), cfg->queue.directory);
    if (cfg->queue.directory[0] != '/')
        return config_fail(c, "\"%s\" must be an absolute path", q);
    if (config_mkdirs(cfg->queue.directory) != 0)
        return config_fail(c, "\"%s\": cannot make it: %s (mount a writable volume there)", q,
                           strerror(errno));
    return config_writable_dir(c, cfg->queue.directory, q,
                               "queued messages are kept there; mount a writable volume");
}

/* config_finish_tls - each listener's TLS mode once the certificates are known (file or
 * --tls-cert): the default is "starttls" with certificates, else "none"; a mode that needs
 * TLS needs certificates, and require_tls needs a mode that offers TLS. */
static int config_finish_tls(struct config_ctx *c, const char *what, struct config *cfg)
{
    bool certs = cfg->tls.n_certificates > 0;
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        struct config_listener *l = &cfg->listeners[i];
        bool given = i < c->n_tls_given && c->tls_given[i];
        if (!given)
            l->tls = certs ? CONFIG_TLS_STARTTLS : CONFIG_TLS_NONE;
        const char *key = NULL;
        if (l->tls != CONFIG_TLS_NONE && !certs)
            key = CONFIG_NAME(CONFIG_SEC_LISTENER, struct config_listener, tls);
        else if (l->require_tls && l->tls == CONFIG_TLS_NONE)
            key = CONFIG_NAME(CONFIG_SEC_LISTENER, struct config_listener, require_tls);
        if (key == NULL)
            continue;
        config_set_path(c, what, config_struct_name(config_listeners));
        config_push_index(c, i);
        config_push(c, key);
        if (l->require_tls && l->tls == CONFIG_TLS_NONE && given)
            return config_fail(c, "cannot be true with tls \"none\"");
        return config_fail(c, "%s needs tls.certificates (or --tls-cert and --tls-key)",
                           l->tls == CONFIG_TLS_NONE ? "requiring TLS" : config_tls_modes[l->tls]);
    }
    return 0;
}

/* config_route_uses - routes[r] names endpoint e. */
static bool config_route_uses(const struct config *cfg, size_t r, size_t e)
{
    for (size_t k = 0; k < cfg->routes[r].n_endpoints; k++) {
        if (cfg->routes[r].endpoints[k] == e)
            return true;
    }
    return false;
}

/* config_warn_second_share - an endpoint that a failover route reaches only after its primary
 * failed, and that another route also names, gets a message of both routes in two POSTs (its
 * first share went out before the failover was known). Unless each transaction holds one
 * route's recipients. One warning per such endpoint, at its first failover place. */
static int config_warn_second_share(struct config_ctx *c, const char *what,
                                    const struct config *cfg)
{
    if (cfg->one_route_per_transaction)
        return 0;
    bool *warned = calloc(cfg->n_endpoints + 1, sizeof(*warned));
    if (warned == NULL)
        return config_nomem(c);
    int rc = 0;
    for (size_t r = 0; r < cfg->n_routes && rc == 0; r++) {
        const struct config_route *rt = &cfg->routes[r];
        if (rt->policy != CONFIG_ROUTE_FAILOVER)
            continue;
        for (size_t k = 1; k < rt->n_endpoints && rc == 0; k++) {
            size_t e = rt->endpoints[k];
            size_t other = 0;
            while (other < cfg->n_routes && (other == r || !config_route_uses(cfg, other, e)))
                other++;
            if (warned[e] || other == cfg->n_routes)
                continue;
            warned[e] = true;
            config_set_path(c, what, config_struct_name(config_routes));
            config_push_index(c, r);
            config_push(c, config_struct_name(config_route_endpoints));
            config_push_index(c, k);
            rc = config_warn(c,
                             "\"%s\" is a failover target here and is also in routes[%zu]: a "
                             "message for both routes can reach it in two POSTs, one per "
                             "route (each with its own recipients and Idempotency-Key); "
                             "\"%s\" keeps them apart",
                             cfg->endpoints[e].name, other,
                             CONFIG_NAME(CONFIG_SEC_TOP, struct config, one_route_per_transaction));
        }
    }
    free(warned);
    return rc;
}

/* config_warnings - what is allowed but probably not meant, once the overrides are in. */
static int config_warnings(struct config_ctx *c, const char *what, struct config *cfg)
{
    int rc = 0;
    if (c->routes_dropped) {
        config_set_path(c, NULL, "--webhook");
        rc = config_warn(c,
                         "replaces the file's \"%s\" and drops its \"%s\": every message "
                         "goes to the --webhook URL",
                         config_struct_name(config_endpoints), config_struct_name(config_routes));
    }
    if (rc == 0 && cfg->one_route_per_transaction && cfg->n_routes == 0) {
        config_set_key_path(c, what, CONFIG_SEC_TOP,
                            offsetof(struct config, one_route_per_transaction));
        rc = config_warn(c, "has no effect without routes");
    }
    for (size_t e = 0; e < cfg->n_endpoints && cfg->n_routes > 0 && rc == 0; e++) {
        bool used = false;
        for (size_t r = 0; r < cfg->n_routes && !used; r++) {
            for (size_t k = 0; k < cfg->routes[r].n_endpoints && !used; k++)
                used = cfg->routes[r].endpoints[k] == e;
        }
        if (used)
            continue;
        config_set_path(c, what, config_struct_name(config_endpoints));
        config_push(c, cfg->endpoints[e].name);
        rc = config_warn(c, "no route uses this endpoint; it receives nothing");
    }
    return rc != 0 ? rc : config_warn_second_share(c, what, cfg);
}

/* config_finish - what must hold after the file and the overrides: a host name, at least one
 * listener and endpoint, an existing spool directory, TLS modes that fit the certificates. */
static int config_finish(struct config_ctx *c, const char *what, struct config *cfg)
{
    if (cfg->trusted_networks == NULL && config_default_networks(c, cfg) != 0)
        return SH_ENOMEM;
    config_set_path(c, NULL, "");
    if (cfg->n_listeners == 0) {
        if (what == NULL)
            return config_fail(c, "no listeners: give --listen or a config file");
        config_set_path(c, what, config_struct_name(config_listeners));
        return config_fail(c, "at least one listener is required (or give --listen)");
    }
    if (cfg->n_endpoints == 0) {
        if (what == NULL)
            return config_fail(c, "no endpoints: give --webhook or a config file");
        config_set_path(c, what, config_struct_name(config_endpoints));
        return config_fail(
            c, "at least one endpoint is required (or give --webhook or SMTPHOOK_WEBHOOK)");
    }

    if (cfg->hostname == NULL) {
        char host[CONFIG_HOSTNAME_MAX + 1];
        config_set_key_path(c, what, CONFIG_SEC_TOP, offsetof(struct config, hostname));
        if (gethostname(host, sizeof(host)) != 0)
            return config_fail(c, "gethostname: %s; set \"hostname\" or --hostname",
                               strerror(errno));
        host[sizeof(host) - 1] = '\0';
        const char *problem = config_hostname_problem(host);
        if (problem != NULL)
            return config_fail(c, "the system host name %s; set \"hostname\" or --hostname",
                               problem);
        cfg->hostname = strdup(host);
        if (cfg->hostname == NULL)
            return config_nomem(c);
    }

    /* Checked now rather than at the first large message, when it would cost a 451. */
    char q[CONFIG_QUOTE_MAX];
    config_set_key_path(c, what, CONFIG_SEC_SPOOL, offsetof(struct config_spool, directory));
    config_quote(q, sizeof(q), cfg->spool.directory);
    int rc = config_writable_dir(c, cfg->spool.directory, q,
                                 "messages over spool.memory_bytes are kept there; mount a "
                                 "writable volume or tmpfs");
    if (rc == 0)
        rc = config_finish_queue(c, what, cfg);
    if (rc == 0)
        rc = config_finish_tls(c, what, cfg);
    return rc != 0 ? rc : config_warnings(c, what, cfg);
}

/* config_build - the config from a parsed file (root, NULL for none) and the overrides. */
static int config_build(json_t *root, const char *what, const struct config_overrides *ov,
                        struct config **out, char *err, size_t errlen)
{
    struct config_ctx c = {.what = what, .err = err, .errlen = errlen};
    struct config *cfg = calloc(1, sizeof(*cfg));
    int rc;
    if (cfg == NULL)
        return config_nomem(&c);

    c.cfg = cfg;
    if ((rc = config_defaults(&c, CONFIG_SEC_TOP, cfg)) != 0)
        goto fail;

    if (root == NULL) {
        cfg->any_domain = true; /* quick start: no file, every recipient domain */
    } else if (!json_is_object(root)) {
        rc = config_fail(&c, "the top level must be a JSON object");
        goto fail;
    } else if ((rc = config_object(&c, root, CONFIG_SEC_TOP, cfg)) != 0) {
        goto fail;
    }
    if ((rc = config_overrides_apply(&c, ov, cfg)) != 0)
        goto fail;
    if ((rc = config_finish(&c, what, cfg)) != 0)
        goto fail;
    free(c.tls_given);
    *out = cfg;
    return 0;

fail:
    free(c.tls_given);
    config_free(cfg);
    return rc;
}

/* config_syntax_error - jansson's parse error as a one-line message (its text can quote
 * raw bytes of the file, so it is sanitized). Returns SH_ECONFIG. */
static int config_syntax_error(const char *what, const json_error_t *je, char *err, size_t errlen)
{
    char text[JSON_ERROR_TEXT_LENGTH];
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s: line %d, column %d: %s", what, je->line, je->column,
                 config_quote(text, sizeof(text), je->text));
    return SH_ECONFIG;
}

/* config_load_string - parse JSON text; json == NULL means "no file" like config_load(NULL). */
int config_load_string(const char *json, const char *what, const struct config_overrides *ov,
                       struct config **out, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    *out = NULL;
    if (json == NULL)
        return config_build(NULL, NULL, ov, out, err, errlen);
    if (what == NULL)
        what = "config";

    json_error_t je;
    json_t *root = json_loads(json, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL)
        return config_syntax_error(what, &je, err, errlen);
    int rc = config_build(root, what, ov, out, err, errlen);
    json_decref(root);
    return rc;
}

/* config_load - read the file (if any) and build the config; see config.h. */
int config_load(const char *path, const struct config_overrides *ov, struct config **out, char *err,
                size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    *out = NULL;
    if (path == NULL)
        return config_build(NULL, NULL, ov, out, err, errlen);

    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return SH_ECONFIG;
    }
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(fp);
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "%s: not a regular file", path);
        return SH_ECONFIG;
    }
    json_error_t je;
    json_t *root = json_loadf(fp, JSON_REJECT_DUPLICATES, &je);
    fclose(fp);
    if (root == NULL)
        return config_syntax_error(path, &je, err, errlen);
    int rc = config_build(root, path, ov, out, err, errlen);
    json_decref(root);
    return rc;
}

/* config_parse_port - 1..65535, decimal digits only (no sign, no spaces). */
static int config_parse_port(const char *s, uint16_t *port)
{
    size_t n = strlen(s);
    if (n == 0 || n > CONFIG_PORT_DIGITS)
        return SH_EINVAL;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return SH_EINVAL;
        v = v * 10u + (unsigned)(s[i] - '0');
    }
    if (v == 0 || v > CONFIG_PORT_MAX)
        return SH_EINVAL;
    *port = (uint16_t)v;
    return 0;
}

/* config_parse_address - "1.2.3.4:25" or "[::1]:25" -> sockaddr; numeric only (inet_pton),
 * so loading a config never waits for DNS. 0 or SH_EINVAL. */
int config_parse_address(const char *text, struct sockaddr_storage *addr, socklen_t *addrlen)
{
    char host[INET6_ADDRSTRLEN];
    const char *port_text;
    bool v6 = false;
    uint16_t port;

    if (text == NULL || addr == NULL || addrlen == NULL)
        return SH_EINVAL;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':')
            return SH_EINVAL;
        size_t n = (size_t)(close - text - 1);
        if (n == 0 || n >= sizeof(host))
            return SH_EINVAL;
        memcpy(host, text + 1, n);
        host[n] = '\0';
        port_text = close + 2;
        v6 = true;
    } else {
        const char *colon = strchr(text, ':');
        if (colon == NULL || strchr(colon + 1, ':') != NULL) /* bare IPv6 needs brackets */
            return SH_EINVAL;
        size_t n = (size_t)(colon - text);
        if (n == 0 || n >= sizeof(host))
            return SH_EINVAL;
        memcpy(host, text, n);
        host[n] = '\0';
        port_text = colon + 1;
    }
    if (config_parse_port(port_text, &port) != 0)
        return SH_EINVAL;

    memset(addr, 0, sizeof(*addr));
    if (v6) {
        struct sockaddr_in6 sin6;
        memset(&sin6, 0, sizeof(sin6));
        if (inet_pton(AF_INET6, host, &sin6.sin6_addr) != 1)
            return SH_EINVAL;
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = htons(port);
        memcpy(addr, &sin6, sizeof(sin6));
        *addrlen = (socklen_t)sizeof(sin6);
    } else {
        struct sockaddr_in sin;
        memset(&sin, 0, sizeof(sin));
        if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
            return SH_EINVAL;
        sin.sin_family = AF_INET;
        sin.sin_port = htons(port);
        memcpy(addr, &sin, sizeof(sin));
        *addrlen = (socklen_t)sizeof(sin);
    }
    return 0;
}

/* config_domain_accepted - any_domain, the empty domain (<postmaster>, RFC 5321 §4.5.1),
 * or a case-insensitive exact match; subdomains are not implied. */
bool config_domain_accepted(const struct config *cfg, const char *domain, size_t len)
{
    if (len == 0)
        return true;
    if (cfg == NULL || domain == NULL)
        return false;
    if (cfg->any_domain)
        return true;
    for (size_t i = 0; i < cfg->n_domains; i++) {
        if (strlen(cfg->domains[i]) == len && strncasecmp(cfg->domains[i], domain, len) == 0)
            return true;
    }
    return false;
}

/* config_route_for - the first route with a pattern that matches addr; see config.h. The
 * address is split once (its '@', its extension) for all the patterns, which every RCPT
 * walks in order up to the first match. */
long config_route_for(const struct config *cfg, const char *addr, size_t len)
{
    if (cfg == NULL || addr == NULL || cfg->n_routes == 0)
        return -1;
    struct route_address a;
    route_address_split(addr, len, cfg->recipient_delimiter, &a);
    for (size_t r = 0; r < cfg->n_routes; r++) {
        const struct config_route *route = &cfg->routes[r];
        for (size_t k = 0; k < route->n_patterns; k++) {
            if (route_address_match(&route->patterns[k], &a))
                return (long)r;
        }
    }
    return -1;
}

/* config_free - release a config and everything it owns; NULL is ignored. */
void config_free(struct config *cfg)
{
    if (cfg == NULL)
        return;
    free(cfg->hostname);
    config_free_listeners(cfg->listeners, cfg->n_listeners);
    for (size_t i = 0; i < cfg->n_domains; i++)
        free(cfg->domains[i]);
    free(cfg->domains);
    config_free_endpoints(cfg->endpoints, cfg->n_endpoints);
    config_free_routes(cfg->routes, cfg->n_routes);
    free(cfg->spool.directory);
    config_free_certificates(cfg->tls.certificates, cfg->tls.n_certificates);
    free(cfg->tls.min_version);
    free(cfg->tls.ciphers);
    free(cfg->tls.ciphersuites);
    free(cfg->tls.groups);
    free(cfg->recipient_delimiter);
    config_free_endpoint(&cfg->recipient_check.http);
    for (size_t i = 0; i < cfg->n_warnings; i++)
        free(cfg->warnings[i]);
    free(cfg->warnings);
    free(cfg->trusted_networks);
    free(cfg->admin.listen);
    free(cfg->queue.directory);
    free(cfg);
}
