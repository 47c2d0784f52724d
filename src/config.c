/* config.c - reads, expands and validates the configuration; builds the immutable struct config.
 *
 * One of the two modules that include jansson (with payload.c). Must not include libuv, curl
 * or OpenSSL. Its only I/O is reading the file and stat()ing the spool directory.
 * Policy is data: every integer key is a row of a rule table (key, field, min, max, default),
 * enforced by one function, so a limit's range lives in exactly one place.
 * TLS files and cipher strings are only checked to be non-empty strings here: tls.c opens and
 * parses them when it builds the TLS context (it is the one module that includes OpenSSL). */
#include "smtphook/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "smtphook/buf.h"
#include "smtphook/error.h"
#include "smtphook/log.h"

#define CONFIG_PATH_MAX     256     /* longest key path kept for messages */
#define CONFIG_QUOTE_MAX    96      /* longest echo of a bad value in a message */
#define CONFIG_HOSTNAME_MAX 255     /* RFC 1035 §2.3.4: names are at most 255 octets */
#define CONFIG_DOMAIN_MAX   253     /* RFC 1035 §2.3.4: 255 octets on the wire, 253 as text */
#define CONFIG_LABEL_MAX    63      /* RFC 1035 §2.3.4: labels are at most 63 octets */
#define CONFIG_PORT_MAX     65535u  /* largest TCP port */
#define CONFIG_PORT_DIGITS  5       /* digits in CONFIG_PORT_MAX */
#define CONFIG_TIMEOUT_MIN  100u    /* endpoint timeouts: below this nothing completes */
#define CONFIG_TIMEOUT_MAX  590000u /* inside the 10 min wait after the dot, RFC 5321 §4.5.3.2.6 */
#define CONFIG_DEFAULT_NAME "default"     /* endpoint name given to --webhook */
#define CONFIG_RESERVED_PFX "X-Smtphook-" /* header prefix the HTTP client owns */

/* TLS handshake deadline: a handshake takes a few round trips; RFC 5321 §4.5.3.2.7 gives a
 * client 5 minutes for any step, so longer would only keep dead connections around. */
#define CONFIG_HANDSHAKE_MIN 1000u
#define CONFIG_HANDSHAKE_MAX 300000u

_Static_assert(sizeof(unsigned) == sizeof(uint32_t), "unsigned limits are stored as uint32_t");

/* One integer key: the rule is the whole policy for it. */
struct config_int_rule {
    const char *key; /* JSON key, the same as the struct field */
    size_t offset;   /* field offset in the section struct */
    size_t size;     /* sizeof the field: 4 or 8 */
    uint64_t min;    /* smallest allowed value */
    uint64_t max;    /* largest allowed value */
    uint64_t def;    /* value when the key is absent */
};

/* CONFIG_FIELD - the first half of a rule row: key, offset and size of a struct field. */
#define CONFIG_FIELD(type, field) #field, offsetof(type, field), sizeof(((type *)0)->field)

/* "limits": ranges follow the protocol where it has an opinion. */
static const struct config_int_rule config_limit_rules[] = {
    {CONFIG_FIELD(struct config_limits, max_command_line_bytes), 512, 65536,
     CONFIG_DEF_MAX_COMMAND_LINE_BYTES}, /* RFC 5321 §4.5.3.1.4: at least 512 */
    {CONFIG_FIELD(struct config_limits, max_recipients), 100, 10000,
     CONFIG_DEF_MAX_RECIPIENTS}, /* RFC 5321 §4.5.3.1.8: at least 100 */
    {CONFIG_FIELD(struct config_limits, max_message_bytes), 65536, UINT64_C(1) << 40,
     CONFIG_DEF_MAX_MESSAGE_BYTES}, /* RFC 5321 §4.5.3.1.7: at least 64k */
    {CONFIG_FIELD(struct config_limits, idle_timeout_ms), 1000, 3600000,
     CONFIG_DEF_IDLE_TIMEOUT_MS}, /* RFC 5321 §4.5.3.2.7 wants 5 min in production */
    {CONFIG_FIELD(struct config_limits, max_errors), 1, 1000, CONFIG_DEF_MAX_ERRORS},
    {CONFIG_FIELD(struct config_limits, max_connections), 1, 1000000, CONFIG_DEF_MAX_CONNECTIONS},
    {CONFIG_FIELD(struct config_limits, max_connections_per_client), 1, 1000000,
     CONFIG_DEF_MAX_CONNECTIONS_PER_CLIENT},
    {CONFIG_FIELD(struct config_limits, transaction_timeout_ms), 1000, CONFIG_TIMEOUT_MAX,
     CONFIG_DEF_TRANSACTION_TIMEOUT_MS}, /* the sender waits 10 min after the dot */
    {CONFIG_FIELD(struct config_limits, shutdown_timeout_ms), 0, 3600000,
     CONFIG_DEF_SHUTDOWN_TIMEOUT_MS},
};

/* "spool" integers ("directory" is a string, handled apart). */
static const struct config_int_rule config_spool_rules[] = {
    {CONFIG_FIELD(struct config_spool, memory_bytes), 0, 1073741824, CONFIG_DEF_SPOOL_MEMORY_BYTES},
};

/* Integers of one endpoint. */
static const struct config_int_rule config_endpoint_rules[] = {
    {CONFIG_FIELD(struct config_endpoint, timeout_ms), CONFIG_TIMEOUT_MIN, CONFIG_TIMEOUT_MAX,
     CONFIG_DEF_ENDPOINT_TIMEOUT_MS},
    {CONFIG_FIELD(struct config_endpoint, connect_timeout_ms), CONFIG_TIMEOUT_MIN,
     CONFIG_TIMEOUT_MAX, CONFIG_DEF_ENDPOINT_CONNECT_MS},
};

/* Integers of "tls". */
static const struct config_int_rule config_tls_rules[] = {
    {CONFIG_FIELD(struct config_tls, handshake_timeout_ms), CONFIG_HANDSHAKE_MIN,
     CONFIG_HANDSHAKE_MAX, CONFIG_DEF_TLS_HANDSHAKE_TIMEOUT_MS},
};

#define CONFIG_NROWS(t) (sizeof(t) / sizeof((t)[0]))

/* Allowed keys besides the integer rules, NULL-terminated. */
static const char *const config_top_keys[] = {
    "hostname", "log_level", "listeners", "domains", "endpoints", "limits", "spool", "tls", NULL};
static const char *const config_listener_keys[] = {"address", "tls", "require_tls", NULL};
static const char *const config_endpoint_keys[] = {"url",         "headers",    "ca_file",
                                                   "client_cert", "client_key", NULL};
static const char *const config_spool_keys[] = {"directory", NULL};
static const char *const config_tls_keys[] = {
    "certificates", "min_version",         "ciphers", "ciphersuites",
    "groups",       "request_client_cert", NULL};
static const char *const config_certificate_keys[] = {"cert", "key", NULL};
static const char *const config_no_keys[] = {NULL};

/* Listener "tls" values, indexed by enum config_tls_mode. */
static const char *const config_tls_modes[] = {
    [CONFIG_TLS_NONE] = "none",
    [CONFIG_TLS_STARTTLS] = "starttls",
    [CONFIG_TLS_IMPLICIT] = "implicit",
};

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
    bool *tls_given;            /* per file listener: "tls" was written (else the default) */
    size_t n_tls_given;         /* entries in tls_given; 0 once --listen replaced them */
};

/* config_fail - write "<what>: <path>: <message>" to the error buffer; returns SH_ECONFIG. */
static int config_fail(struct config_ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int config_fail(struct config_ctx *c, const char *fmt, ...)
{
    if (c->err == NULL || c->errlen == 0)
        return SH_ECONFIG;
    int n = snprintf(c->err, c->errlen, "%s%s%s%s", c->what ? c->what : "", c->what ? ": " : "",
                     c->path, c->pathlen ? ": " : "");
    size_t used = n < 0 ? 0 : (size_t)n;
    if (used < c->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err + used, c->errlen - used, fmt, ap);
        va_end(ap);
    }
    return SH_ECONFIG;
}

/* config_nomem - report an allocation failure; returns SH_ENOMEM. */
static int config_nomem(struct config_ctx *c)
{
    config_fail(c, "%s", sh_strerror(SH_ENOMEM));
    return SH_ENOMEM;
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

/* config_bool - the boolean v at the current path into *out. */
static int config_bool(struct config_ctx *c, const json_t *v, bool *out)
{
    if (!json_is_boolean(v))
        return config_fail(c, "must be true or false");
    *out = json_is_true(v);
    return 0;
}

/* config_opt_string - if obj has key: a non-empty string (expanded) that replaces *out (the
 * old value is freed). Absent: *out is left alone. */
static int config_opt_string(struct config_ctx *c, const json_t *obj, const char *key, char **out)
{
    const json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (v == NULL)
        return 0;
    size_t saved = config_push(c, key);
    char *s = NULL;
    int rc = config_string(c, v, &s);
    if (rc != 0)
        return rc;
    free(*out);
    *out = s; /* owned by the caller's struct from here on, also on the error below */
    if (s[0] == '\0')
        return config_fail(c, "must not be empty (leave the key out for the default)");
    config_pop(c, saved);
    return 0;
}

/* config_check_keys - every key of obj is in names or in the rule table; else an error
 * naming the unknown key (a typo must never be silently ignored). */
static int config_check_keys(struct config_ctx *c, json_t *obj, const char *const *names,
                             const struct config_int_rule *rules, size_t nrules)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        bool known = false;
        for (size_t i = 0; names[i] != NULL && !known; i++)
            known = strcmp(key, names[i]) == 0;
        for (size_t i = 0; i < nrules && !known; i++)
            known = strcmp(key, rules[i].key) == 0;
        if (!known) {
            config_push(c, key);
            return config_fail(c, "unknown key");
        }
    }
    return 0;
}

/* config_store - write v into the field a rule describes. */
static void config_store(void *base, const struct config_int_rule *r, uint64_t v)
{
    char *p = (char *)base + r->offset;
    if (r->size == sizeof(uint64_t)) {
        uint64_t x = v;
        memcpy(p, &x, sizeof(x));
    } else {
        uint32_t x = (uint32_t)v; /* every 4-byte field has a max below 2^32 */
        memcpy(p, &x, sizeof(x));
    }
}

/* config_ints - apply a rule table to obj (may be NULL): the default for every row, then
 * each present key, which must be a JSON integer inside the row's range. */
static int config_ints(struct config_ctx *c, const json_t *obj, const struct config_int_rule *rules,
                       size_t nrules, void *base)
{
    for (size_t i = 0; i < nrules; i++) {
        const struct config_int_rule *r = &rules[i];
        config_store(base, r, r->def);
        json_t *v = obj ? json_object_get(obj, r->key) : NULL;
        if (v == NULL)
            continue;
        json_int_t n = json_is_integer(v) ? json_integer_value(v) : -1;
        if (!json_is_integer(v) || n < 0 || (uint64_t)n < r->min || (uint64_t)n > r->max) {
            config_push(c, r->key);
            return config_fail(c, "must be an integer from %" PRIu64 " to %" PRIu64, r->min,
                               r->max);
        }
        config_store(base, r, (uint64_t)n);
    }
    return 0;
}

/* config_section - the object at key (NULL if absent) with its keys checked. */
static int config_section(struct config_ctx *c, json_t *root, const char *key,
                          const char *const *names, const struct config_int_rule *rules,
                          size_t nrules, json_t **out)
{
    *out = json_object_get(root, key);
    if (*out == NULL)
        return 0;
    size_t saved = config_push(c, key);
    if (!json_is_object(*out))
        return config_fail(c, "must be an object");
    int rc = config_check_keys(c, *out, names, rules, nrules);
    if (rc == 0)
        config_pop(c, saved);
    return rc;
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
            return "header name must be an HTTP token (RFC 9110 §5.6.2)";
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

/* config_listener_set - parse text into l (l->address is a new copy). The caller names the
 * value in the path; 0, SH_ECONFIG or SH_ENOMEM. */
static int config_listener_set(struct config_ctx *c, struct config_listener *l, const char *text)
{
    if (config_parse_address(text, &l->addr, &l->addrlen) != 0) {
        char q[CONFIG_QUOTE_MAX];
        return config_fail(c,
                           "\"%s\" is not IPv4:port or [IPv6]:port (a numeric address, port "
                           "1 to 65535; no host names)",
                           config_quote(q, sizeof(q), text));
    }
    l->address = strdup(text);
    return l->address ? 0 : config_nomem(c);
}

/* config_free_listeners - release an array of n listeners. */
static void config_free_listeners(struct config_listener *l, size_t n)
{
    for (size_t i = 0; i < n && l; i++)
        free(l[i].address);
    free(l);
}

/* config_free_endpoints - release an array of n endpoints. */
static void config_free_endpoints(struct config_endpoint *e, size_t n)
{
    for (size_t i = 0; i < n && e; i++) {
        free(e[i].name);
        free(e[i].url);
        for (size_t j = 0; j < e[i].n_headers; j++) {
            free(e[i].headers[j].name);
            free(e[i].headers[j].value);
        }
        free(e[i].headers);
        free(e[i].ca_file);
        free(e[i].client_cert);
        free(e[i].client_key);
    }
    free(e);
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

/* config_listener_tls - a listener's "tls" and "require_tls" keys (both optional). Whether
 * the mode fits the certificates is checked in config_finish, after the overrides. */
static int config_listener_tls(struct config_ctx *c, const json_t *item, size_t i,
                               struct config_listener *l)
{
    const json_t *v = json_object_get(item, "tls");
    int rc = 0;
    if (v != NULL) {
        size_t saved = config_push(c, "tls");
        char *mode = NULL;
        if ((rc = config_string(c, v, &mode)) != 0)
            return rc;
        size_t m = 0;
        while (m < CONFIG_NROWS(config_tls_modes) && strcmp(mode, config_tls_modes[m]) != 0)
            m++;
        free(mode);
        if (m == CONFIG_NROWS(config_tls_modes))
            return config_fail(c, "must be \"none\", \"starttls\" or \"implicit\"");
        l->tls = (enum config_tls_mode)m;
        c->tls_given[i] = true;
        config_pop(c, saved);
    }
    if ((v = json_object_get(item, "require_tls")) != NULL) {
        size_t saved = config_push(c, "require_tls");
        if ((rc = config_bool(c, v, &l->require_tls)) != 0)
            return rc;
        config_pop(c, saved);
    }
    return 0;
}

/* config_listeners - "listeners": an array of {"address": ..., "tls": ..., "require_tls": ...}
 * objects. */
static int config_listeners(struct config_ctx *c, json_t *arr, struct config *cfg)
{
    size_t saved = config_push(c, "listeners");
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
        size_t at = config_push_index(c, i);
        if (!json_is_object(item))
            return config_fail(c, "must be an object like {\"address\": \"0.0.0.0:25\"}");
        int rc = config_check_keys(c, item, config_listener_keys, NULL, 0);
        if (rc != 0)
            return rc;
        size_t key = config_push(c, "address");
        json_t *v = json_object_get(item, "address");
        if (v == NULL)
            return config_fail(c, "is required");
        char *text = NULL;
        rc = config_string(c, v, &text);
        if (rc == 0)
            rc = config_listener_set(c, &cfg->listeners[i], text);
        free(text);
        if (rc != 0)
            return rc;
        config_pop(c, key);
        if ((rc = config_listener_tls(c, item, i, &cfg->listeners[i])) != 0)
            return rc;
        config_pop(c, at);
    }
    config_pop(c, saved);
    return 0;
}

/* config_domains - "domains": lower-case domain names, or ["*"] for any. */
static int config_domains(struct config_ctx *c, json_t *arr, struct config *cfg)
{
    size_t saved = config_push(c, "domains");
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
    config_pop(c, saved);
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
static int config_headers(struct config_ctx *c, json_t *obj, struct config_endpoint *e)
{
    size_t saved = config_push(c, "headers");
    if (!json_is_object(obj))
        return config_fail(c, "must be an object of header names to values");
    size_t n = json_object_size(obj);
    if (n == 0) {
        config_pop(c, saved);
        return 0;
    }
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
    config_pop(c, saved);
    return 0;
}

/* config_endpoint_tls - an endpoint's "ca_file", "client_cert" and "client_key": https only,
 * the certificate and its key together. The files are opened by curl at the first request. */
static int config_endpoint_tls(struct config_ctx *c, const json_t *obj, struct config_endpoint *e)
{
    int rc;
    if ((rc = config_opt_string(c, obj, "ca_file", &e->ca_file)) != 0 ||
        (rc = config_opt_string(c, obj, "client_cert", &e->client_cert)) != 0 ||
        (rc = config_opt_string(c, obj, "client_key", &e->client_key)) != 0)
        return rc;
    if ((e->client_cert == NULL) != (e->client_key == NULL)) {
        bool cert = e->client_cert != NULL;
        config_push(c, cert ? "client_key" : "client_cert");
        return config_fail(c, "is required with %s (give both or neither)",
                           cert ? "client_cert" : "client_key");
    }
    const char *key = e->ca_file != NULL       ? "ca_file"
                      : e->client_cert != NULL ? "client_cert"
                                               : NULL;
    if (key != NULL && strncasecmp(e->url, "https://", 8) != 0) {
        config_push(c, key);
        return config_fail(c, "applies to https:// URLs only");
    }
    return 0;
}

/* config_endpoint - one endpoint object, named by its key in "endpoints". */
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
    int rc = config_check_keys(c, obj, config_endpoint_keys, config_endpoint_rules,
                               CONFIG_NROWS(config_endpoint_rules));
    if (rc != 0)
        return rc;

    size_t at = config_push(c, "url");
    json_t *url = json_object_get(obj, "url");
    if (url == NULL)
        return config_fail(c, "is required");
    rc = config_string(c, url, &e->url);
    if (rc != 0)
        return rc;
    const char *problem = config_url_problem(e->url);
    if (problem != NULL) /* the URL may carry a token: never echo it */
        return config_fail(c, "%s", problem);
    config_pop(c, at);

    rc = config_ints(c, obj, config_endpoint_rules, CONFIG_NROWS(config_endpoint_rules), e);
    if (rc != 0)
        return rc;
    /* The default connect timeout shrinks to fit a short timeout_ms; a given one must. */
    if (json_object_get(obj, "connect_timeout_ms") == NULL && e->connect_timeout_ms > e->timeout_ms)
        e->connect_timeout_ms = e->timeout_ms;
    if (e->connect_timeout_ms > e->timeout_ms) {
        config_push(c, "connect_timeout_ms");
        return config_fail(c, "must not be greater than timeout_ms (%" PRIu64 ")", e->timeout_ms);
    }
    if ((rc = config_endpoint_tls(c, obj, e)) != 0)
        return rc;

    json_t *headers = json_object_get(obj, "headers");
    if (headers != NULL) {
        rc = config_headers(c, headers, e);
        if (rc != 0)
            return rc;
    }
    config_pop(c, saved);
    return 0;
}

/* config_endpoints - "endpoints": name -> endpoint, in file order. */
static int config_endpoints(struct config_ctx *c, json_t *obj, struct config *cfg)
{
    size_t saved = config_push(c, "endpoints");
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
    config_pop(c, saved);
    return 0;
}

/* config_certificates - "tls.certificates": [{"cert": FILE, "key": FILE}, ...]. */
static int config_certificates(struct config_ctx *c, const json_t *arr, struct config_tls *t)
{
    size_t saved = config_push(c, "certificates");
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
        int rc = config_check_keys(c, item, config_certificate_keys, NULL, 0);
        if (rc != 0)
            return rc;
        for (size_t k = 0; config_certificate_keys[k] != NULL; k++) {
            if (json_object_get(item, config_certificate_keys[k]) == NULL) {
                config_push(c, config_certificate_keys[k]);
                return config_fail(c, "is required");
            }
        }
        if ((rc = config_opt_string(c, item, "cert", &t->certificates[i].cert)) != 0 ||
            (rc = config_opt_string(c, item, "key", &t->certificates[i].key)) != 0)
            return rc;
        config_pop(c, at);
    }
    config_pop(c, saved);
    return 0;
}

/* config_tls - the "tls" section (optional) into cfg->tls, which holds the defaults. */
static int config_tls(struct config_ctx *c, json_t *root, struct config_tls *t)
{
    json_t *v;
    int rc = config_section(c, root, "tls", config_tls_keys, config_tls_rules,
                            CONFIG_NROWS(config_tls_rules), &v);
    if (rc != 0 || v == NULL)
        return rc;
    size_t saved = config_push(c, "tls");
    if ((rc = config_ints(c, v, config_tls_rules, CONFIG_NROWS(config_tls_rules), t)) != 0)
        return rc;
    json_t *certs = json_object_get(v, "certificates");
    if (certs != NULL && (rc = config_certificates(c, certs, t)) != 0)
        return rc;
    if ((rc = config_opt_string(c, v, "min_version", &t->min_version)) != 0)
        return rc;
    size_t k = 0;
    while (config_tls_versions[k] != NULL && strcmp(t->min_version, config_tls_versions[k]) != 0)
        k++;
    if (config_tls_versions[k] == NULL) {
        config_push(c, "min_version");
        return config_fail(c, "must be \"TLSv1.2\" or \"TLSv1.3\"");
    }
    if ((rc = config_opt_string(c, v, "ciphers", &t->ciphers)) != 0 ||
        (rc = config_opt_string(c, v, "ciphersuites", &t->ciphersuites)) != 0 ||
        (rc = config_opt_string(c, v, "groups", &t->groups)) != 0)
        return rc;
    json_t *b = json_object_get(v, "request_client_cert");
    if (b != NULL) {
        config_push(c, "request_client_cert");
        if ((rc = config_bool(c, b, &t->request_client_cert)) != 0)
            return rc;
    }
    config_pop(c, saved);
    return 0;
}

/* config_root - everything the file says, into cfg (which holds the defaults already). */
static int config_root(struct config_ctx *c, json_t *root, struct config *cfg)
{
    json_t *v;
    int rc = config_check_keys(c, root, config_top_keys, NULL, 0);
    if (rc != 0)
        return rc;

    if ((v = json_object_get(root, "hostname")) != NULL) {
        size_t saved = config_push(c, "hostname");
        if ((rc = config_string(c, v, &cfg->hostname)) != 0)
            return rc;
        const char *problem = config_hostname_problem(cfg->hostname);
        if (problem != NULL)
            return config_fail(c, "%s", problem);
        config_pop(c, saved);
    }
    if ((v = json_object_get(root, "log_level")) != NULL) {
        size_t saved = config_push(c, "log_level");
        char *name = NULL;
        if ((rc = config_string(c, v, &name)) != 0)
            return rc;
        cfg->log_level = log_level_parse(name);
        free(name);
        if (cfg->log_level < 0)
            return config_fail(c, "must be one of \"error\", \"warn\", \"info\", \"debug\"");
        config_pop(c, saved);
    }
    if ((v = json_object_get(root, "listeners")) != NULL) {
        if ((rc = config_listeners(c, v, cfg)) != 0)
            return rc;
    }
    if ((rc = config_domains(c, json_object_get(root, "domains"), cfg)) != 0)
        return rc;
    if ((v = json_object_get(root, "endpoints")) != NULL) {
        if ((rc = config_endpoints(c, v, cfg)) != 0)
            return rc;
    }

    if ((rc = config_section(c, root, "limits", config_no_keys, config_limit_rules,
                             CONFIG_NROWS(config_limit_rules), &v)) != 0)
        return rc;
    size_t saved = config_push(c, "limits");
    if ((rc = config_ints(c, v, config_limit_rules, CONFIG_NROWS(config_limit_rules),
                          &cfg->limits)) != 0)
        return rc;
    config_pop(c, saved);

    if ((rc = config_section(c, root, "spool", config_spool_keys, config_spool_rules,
                             CONFIG_NROWS(config_spool_rules), &v)) != 0)
        return rc;
    saved = config_push(c, "spool");
    if ((rc = config_ints(c, v, config_spool_rules, CONFIG_NROWS(config_spool_rules),
                          &cfg->spool)) != 0)
        return rc;
    json_t *dir = v ? json_object_get(v, "directory") : NULL;
    if (dir != NULL) {
        config_push(c, "directory");
        char *d = NULL;
        if ((rc = config_string(c, dir, &d)) != 0)
            return rc;
        free(cfg->spool.directory);
        cfg->spool.directory = d;
    }
    config_pop(c, saved);
    return config_tls(c, root, &cfg->tls);
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
        struct config_listener *l = calloc(ov->n_listen, sizeof(*l));
        if (l == NULL)
            return config_nomem(c);
        for (size_t i = 0; i < ov->n_listen; i++) {
            int rc = config_listener_set(c, &l[i], ov->listen[i]);
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
        config_ints(c, NULL, config_endpoint_rules, CONFIG_NROWS(config_endpoint_rules), e);
        e->name = strdup(CONFIG_DEFAULT_NAME);
        e->url = strdup(ov->webhook);
        if (e->name == NULL || e->url == NULL) {
            config_free_endpoints(e, 1);
            return config_nomem(c);
        }
        config_free_endpoints(cfg->endpoints, cfg->n_endpoints);
        cfg->endpoints = e;
        cfg->n_endpoints = 1;
    }
    return config_overrides_tls(c, ov, &cfg->tls);
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
            key = "tls";
        else if (l->require_tls && l->tls == CONFIG_TLS_NONE)
            key = "require_tls";
        if (key == NULL)
            continue;
        config_set_path(c, what, "listeners");
        config_push_index(c, i);
        config_push(c, key);
        if (l->require_tls && l->tls == CONFIG_TLS_NONE && given)
            return config_fail(c, "cannot be true with tls \"none\"");
        return config_fail(c, "%s needs tls.certificates (or --tls-cert and --tls-key)",
                           l->tls == CONFIG_TLS_NONE ? "requiring TLS" : config_tls_modes[l->tls]);
    }
    return 0;
}

/* config_finish - what must hold after the file and the overrides: a host name, at least one
 * listener and endpoint, an existing spool directory, TLS modes that fit the certificates. */
static int config_finish(struct config_ctx *c, const char *what, struct config *cfg)
{
    config_set_path(c, NULL, "");
    if (cfg->n_listeners == 0) {
        if (what == NULL)
            return config_fail(c, "no listeners: give --listen or a config file");
        config_set_path(c, what, "listeners");
        return config_fail(c, "at least one listener is required (or give --listen)");
    }
    if (cfg->n_endpoints == 0) {
        if (what == NULL)
            return config_fail(c, "no endpoints: give --webhook or a config file");
        config_set_path(c, what, "endpoints");
        return config_fail(c, "at least one endpoint is required (or give --webhook)");
    }

    if (cfg->hostname == NULL) {
        char host[CONFIG_HOSTNAME_MAX + 1];
        config_set_path(c, what, "hostname");
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
    struct stat st;
    char q[CONFIG_QUOTE_MAX];
    config_set_path(c, what, "spool.directory");
    config_quote(q, sizeof(q), cfg->spool.directory);
    if (stat(cfg->spool.directory, &st) != 0)
        return config_fail(c, "\"%s\": %s", q, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return config_fail(c, "\"%s\" is not a directory", q);
    return config_finish_tls(c, what, cfg);
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

    cfg->log_level = LOG_LEVEL_INFO;
    config_ints(&c, NULL, config_limit_rules, CONFIG_NROWS(config_limit_rules), &cfg->limits);
    config_ints(&c, NULL, config_spool_rules, CONFIG_NROWS(config_spool_rules), &cfg->spool);
    config_ints(&c, NULL, config_tls_rules, CONFIG_NROWS(config_tls_rules), &cfg->tls);
    cfg->spool.directory = strdup(CONFIG_DEF_SPOOL_DIRECTORY);
    cfg->tls.min_version = strdup(CONFIG_DEF_TLS_MIN_VERSION);
    cfg->tls.ciphers = strdup(CONFIG_DEF_TLS_CIPHERS);
    if (cfg->spool.directory == NULL || cfg->tls.min_version == NULL || cfg->tls.ciphers == NULL) {
        rc = config_nomem(&c);
        goto fail;
    }

    if (root == NULL) {
        cfg->any_domain = true; /* quick start: no file, every recipient domain */
    } else if (!json_is_object(root)) {
        rc = config_fail(&c, "the top level must be a JSON object");
        goto fail;
    } else if ((rc = config_root(&c, root, cfg)) != 0) {
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
    free(cfg->spool.directory);
    config_free_certificates(cfg->tls.certificates, cfg->tls.n_certificates);
    free(cfg->tls.min_version);
    free(cfg->tls.ciphers);
    free(cfg->tls.ciphersuites);
    free(cfg->tls.groups);
    free(cfg);
}
