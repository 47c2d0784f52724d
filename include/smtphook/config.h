/* config.h - the validated, immutable configuration.
 *
 * config.c reads a JSON file with jansson, expands ${NAME} from the environment in every
 * string, applies command-line overrides and checks every value. Every error message names
 * the key ("limits.max_recipients: must be an integer from 100 to 10000"). Unknown keys are
 * errors. What loads but is probably not meant (an endpoint no route uses) is a warning in
 * config.warnings, for main.c to print or log.
 * Only config.c includes jansson; this header exposes plain C structs. */
#ifndef SMTPHOOK_CONFIG_H
#define SMTPHOOK_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "smtphook/app_reply.h"
#include "smtphook/cidr.h"
#include "smtphook/ed25519.h"
#include "smtphook/route.h"

/* Defaults, each named after the key it fills (Postfix's DEF_ convention). */
#define CONFIG_DEF_MAX_COMMAND_LINE_BYTES     2048u
#define CONFIG_DEF_MAX_RECIPIENTS             100u
#define CONFIG_DEF_MAX_MESSAGE_BYTES          26214400u
#define CONFIG_DEF_IDLE_TIMEOUT_MS            300000u
#define CONFIG_DEF_MAX_ERRORS                 20u
#define CONFIG_DEF_MAX_CONNECTIONS            1000u
#define CONFIG_DEF_MAX_CONNECTIONS_PER_CLIENT 50u
#define CONFIG_DEF_TRANSACTION_TIMEOUT_MS     180000u
#define CONFIG_DEF_SHUTDOWN_TIMEOUT_MS        30000u
#define CONFIG_DEF_ENDPOINT_TIMEOUT_MS        60000u
#define CONFIG_DEF_ENDPOINT_CONNECT_MS        10000u
#define CONFIG_DEF_SPOOL_MEMORY_BYTES         1048576u
#define CONFIG_DEF_SPOOL_DIRECTORY            "/tmp"
#define CONFIG_DEF_TLS_MIN_VERSION            "TLSv1.2"
#define CONFIG_DEF_TLS_HANDSHAKE_TIMEOUT_MS   30000u
#define CONFIG_DEF_RETRY_MAX_ATTEMPTS         3u
#define CONFIG_DEF_RETRY_INITIAL_BACKOFF_MS   1000u
#define CONFIG_DEF_RETRY_MAX_BACKOFF_MS       10000u
#define CONFIG_DEF_BREAKER_FAILURES           5u
#define CONFIG_DEF_BREAKER_COOLDOWN_MS        30000u
#define CONFIG_DEF_CHECK_TIMEOUT_MS           5000u
#define CONFIG_DEF_CHECK_CONNECT_MS           2000u
#define CONFIG_DEF_CHECK_CACHE_MS             60000u
#define CONFIG_DEF_MAX_HEADER_BYTES           16384u
#define CONFIG_DEF_PROXY_TIMEOUT_MS           5000u
#define CONFIG_DEF_COMMAND_TIMEOUT_MS         60000u
#define CONFIG_DEF_MIN_DATA_RATE              500u /* Postfix's smtpd_min_data_rate */
#define CONFIG_DEF_DATA_RATE_GRACE_MS         30000u
#define CONFIG_DEF_MAX_JUNK_COMMANDS          100u /* Postfix's smtpd_junk_command_limit */
#define CONFIG_DEF_CONNECTIONS_PER_MINUTE     300u
#define CONFIG_DEF_MESSAGES_PER_MINUTE        600u
#define CONFIG_DEF_RECIPIENTS_PER_MINUTE      3000u
#define CONFIG_DEF_QUEUE_DIRECTORY            "/var/lib/smtphook/queue"
#define CONFIG_DEF_QUEUE_INITIAL_BACKOFF_MS   60000u     /* a minute first */
#define CONFIG_DEF_QUEUE_MAX_BACKOFF_MS       14400000u  /* then at most 4 hours apart */
#define CONFIG_DEF_QUEUE_MAX_AGE_MS           259200000u /* given up after 3 days */
#define CONFIG_DEF_QUEUE_MAX_IN_FLIGHT        4u         /* requests per endpoint at once */
#define CONFIG_DEF_QUEUE_MAX_MESSAGES         100000u
#define CONFIG_DEF_QUEUE_MAX_BYTES            10737418240u /* 10 GiB */
/* TLS 1.2 ciphers: forward secrecy and AEAD only (Mozilla "intermediate"). TLS 1.3 suites
 * and groups keep OpenSSL's defaults unless configured. */
#define CONFIG_DEF_TLS_CIPHERS                                                                     \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"                                   \
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"

struct config_header {
    char *name;  /* header field name, an HTTP token */
    char *value; /* value, no CR, LF or NUL */
};

/* An endpoint's "retry": temporary failures are tried again while the sender waits. */
struct config_retry {
    unsigned max_attempts;       /* attempts in all, the first included (1: no retry) */
    uint64_t initial_backoff_ms; /* wait before the second attempt (doubles each time) */
    uint64_t max_backoff_ms;     /* the wait never grows past this */
};

/* An endpoint's "breaker": after this many temporary failures in a row, new messages get
 * their 451 at once for cooldown_ms; then one probe request decides. */
struct config_breaker {
    unsigned failures;    /* consecutive temporary failures that open it; 0: never opens */
    uint64_t cooldown_ms; /* how long it stays open before a probe */
};

/* One row of an endpoint's "reply_map": this HTTP status gives this SMTP reply. */
struct config_reply_rule {
    unsigned status;        /* HTTP status, 100..599 */
    struct app_reply reply; /* esc and text may be "" (the default ones of the code) */
};

/* What an endpoint's request body is (payload.h, format.h). */
enum config_format {
    CONFIG_FORMAT_RAW = 0,   /* the message as message/rfc822, the envelope in headers */
    CONFIG_FORMAT_JSON,      /* {"envelope": {...}, "message": "<base64>"} */
    CONFIG_FORMAT_MULTIPART, /* multipart/form-data: "envelope" (JSON) and "message" parts */
};

/* A receiver an endpoint's requests are shaped for: a format plus its authentication. */
enum config_preset {
    CONFIG_PRESET_NONE = 0,    /* "format" says */
    CONFIG_PRESET_RAILS_RELAY, /* Action Mailbox relay ingress: raw, X-Original-To, basic auth */
    CONFIG_PRESET_MAILGUN,     /* Mailgun "forward to URL, MIME" form, signed with the key */
    CONFIG_PRESET_SENDGRID,    /* SendGrid Inbound Parse, raw mode, basic auth */
};

/* How an endpoint's requests are signed. */
enum config_signing_scheme {
    CONFIG_SIGNING_NONE = 0,          /* not signed */
    CONFIG_SIGNING_STANDARD_WEBHOOKS, /* Standard Webhooks v1, v1a: webhook-id, -signature */
    CONFIG_SIGNING_MAILGUN,           /* Mailgun's timestamp, token and signature form fields */
};

#define CONFIG_SECRET_MAX 64u /* longest decoded signing secret, in bytes */

/* One Standard Webhooks secret, decoded: "whsec_" and base64 (v1, HMAC-SHA256), or "whsk_"
 * and base64 (v1a, Ed25519). */
struct config_secret {
    unsigned char key[CONFIG_SECRET_MAX]; /* the HMAC key, or the Ed25519 seed (32 bytes) */
    size_t len;                           /* its bytes */
    bool ed25519;                         /* a v1a key: key is the seed */
    unsigned char public_key[ED25519_PUBLIC_BYTES]; /* v1a: the seed's public key */
};

/* An endpoint's "signing". */
struct config_signing {
    enum config_signing_scheme scheme; /* "scheme" */
    struct config_secret *secrets;     /* standard-webhooks: every one signs, in order */
    size_t n_secrets;                  /* entries in secrets */
    char *key;                         /* mailgun: the HTTP webhook signing key */
};

/* An endpoint's "basic_auth" (RFC 7617). */
struct config_basic_auth {
    char *user;     /* no ':' */
    char *password; /* any text */
    char *header;   /* "Authorization: Basic <base64 of user:password>", NULL without it */
};

struct config_endpoint {
    char *name;                    /* key in "endpoints", used in logs */
    char *url;                     /* http:// or https:// URL */
    uint64_t timeout_ms;           /* whole request, connect to last byte */
    uint64_t connect_timeout_ms;   /* TCP + TLS connect */
    struct config_header *headers; /* extra request headers */
    size_t n_headers;              /* entries in headers */
    char *ca_file;                 /* https: trust only these CAs (PEM); NULL: system CAs */
    char *client_cert;             /* https: client certificate (PEM) for mutual TLS, or NULL */
    char *client_key;              /* https: its private key (PEM), or NULL */
    struct config_retry retry;     /* attempts within the transaction deadline */
    struct config_breaker breaker; /* circuit breaker */
    struct config_reply_rule *reply_map; /* status -> reply overrides, status order */
    size_t n_reply_map;                  /* entries in reply_map */
    enum config_format format;           /* "format", or the preset's */
    enum config_preset preset;           /* "preset" */
    struct config_basic_auth basic_auth; /* "basic_auth" */
    struct config_signing signing;       /* "signing" */
    uint64_t max_header_bytes;           /* raw: the request head never grows past this */
    bool stream;                         /* the POST starts with the message and is sent,
                                          * chunked, as it arrives */
};

/* How a route hands a message to its endpoints. */
enum config_route_policy {
    CONFIG_ROUTE_ALL = 0,  /* every endpoint gets it and must accept */
    CONFIG_ROUTE_FAILOVER, /* in order; the next only after a temporary failure */
};

/* When the sender hears 250: after the app answered, or once the message is on disk. */
enum config_delivery {
    CONFIG_DELIVERY_SYNC = 0,        /* 250 only after the endpoints answered 2xx */
    CONFIG_DELIVERY_QUEUE,           /* written to the queue, then 250; delivered after */
    CONFIG_DELIVERY_SYNC_THEN_QUEUE, /* as sync; a temporary failure is queued and 250 */
    CONFIG_DELIVERY_INHERIT,         /* a route without "delivery": the top-level one */
};

/* One entry of "routes": recipients matching any pattern go to these endpoints. */
struct config_route {
    struct route_pattern *patterns;  /* "match" */
    size_t n_patterns;               /* entries in patterns (>= 1) */
    size_t *endpoints;               /* indices into config.endpoints, in the route's order */
    size_t n_endpoints;              /* entries in endpoints (>= 1) */
    enum config_route_policy policy; /* "policy" */
    enum config_delivery delivery;   /* "delivery" (never INHERIT once loaded) */
};

/* "queue": the durable queue of the "queue" and "sync_then_queue" deliveries (queue.h). */
struct config_queue {
    char *directory;             /* the queue directory (made at start when used) */
    uint64_t initial_backoff_ms; /* wait before the second attempt (doubles each time) */
    uint64_t max_backoff_ms;     /* the wait never grows past this */
    uint64_t max_age_ms;         /* an entry this old goes to the dead letters */
    unsigned max_in_flight;      /* requests per endpoint at once */
    uint64_t max_messages;       /* entries at most; more: 452 4.3.1 */
    uint64_t max_bytes;          /* their message bytes at most; more: 452 4.3.1 */
};

/* "recipient_check": each RCPT that found a route is asked about over HTTP first. The
 * request settings are those of an endpoint (name "recipient_check", no retry, breaker or
 * reply_map). */
struct config_recipient_check {
    bool enabled;                /* the key is present */
    struct config_endpoint http; /* url, timeouts, headers, TLS files */
    uint64_t cache_ms;           /* answers kept per (sender domain, recipient); 0: none */
    bool accept_on_failure;      /* "on_failure": "accept" (true) or "defer" (false: 451) */
};

/* How a listener offers TLS. */
enum config_tls_mode {
    CONFIG_TLS_NONE = 0, /* plaintext only; STARTTLS answers 454 */
    CONFIG_TLS_STARTTLS, /* plaintext, STARTTLS offered (RFC 3207) */
    CONFIG_TLS_IMPLICIT, /* TLS from the first byte (RFC 8314, port 465 style) */
};

/* Whether a listener expects a PROXY protocol header before anything else (values as
 * proxy_proto.h's enum proxy_accept). */
enum config_proxy {
    CONFIG_PROXY_NONE = 0, /* no: the socket's peer is the client */
    CONFIG_PROXY_V1 = 1,   /* the text header */
    CONFIG_PROXY_V2 = 2,   /* the binary header */
    CONFIG_PROXY_ANY = 3,  /* either */
};

struct config_listener {
    char *address;                /* as written: "127.0.0.1:2525", "[::1]:25" */
    struct sockaddr_storage addr; /* parsed address */
    socklen_t addrlen;            /* length of addr */
    enum config_tls_mode tls;     /* default STARTTLS when certificates exist, else NONE */
    bool require_tls;             /* MAIL before TLS gets 530 5.7.0 */
    enum config_proxy proxy;      /* "proxy_protocol" */
    struct cidr *trusted_proxies; /* peers allowed to send the header; others are refused */
    size_t n_trusted_proxies;     /* entries in trusted_proxies */
    uint64_t proxy_timeout_ms;    /* the header must have arrived by then */
};

/* "admin": the admin port (admin.h); present means on. */
struct config_admin {
    bool enabled;                 /* the key is present */
    char *listen;                 /* "127.0.0.1:9025" */
    struct sockaddr_storage addr; /* parsed */
    socklen_t addrlen;            /* length of addr */
    bool unready_when_down;       /* /readyz fails while every endpoint's circuit is open */
};

struct config_limits {
    size_t max_command_line_bytes;       /* longest command line, CRLF included */
    size_t max_recipients;               /* RCPT per transaction; more get 452 */
    uint64_t max_message_bytes;          /* SIZE limit, enforced during DATA */
    uint64_t idle_timeout_ms;            /* wait for a command or data: 421 after it */
    unsigned max_errors;                 /* error replies before 421 and close */
    unsigned max_connections;            /* concurrent connections in all */
    unsigned max_connections_per_client; /* concurrent connections from one IP */
    uint64_t transaction_timeout_ms;     /* deadline for all webhook requests of a message */
    uint64_t shutdown_timeout_ms;        /* SIGTERM: how long transactions may finish */
    uint64_t shutdown_delay_ms;          /* SIGTERM: unready at once, listeners close after */
    uint64_t command_timeout_ms;         /* a command line must be whole within this of its
                                          * first byte; 0: no limit */
    uint64_t min_data_rate;              /* message bytes per second a body must keep up
                                          * after data_rate_grace_ms; 0: no limit */
    uint64_t data_rate_grace_ms;         /* how long a body may start slowly */
    unsigned max_junk_commands;          /* NOOP, RSET, VRFY, EXPN, HELP per session before
                                          * 421; 0: no limit */
    unsigned connections_per_minute;     /* per client (IPv6: per /64); 0: no limit */
    unsigned messages_per_minute;        /* MAIL commands per client; 0: no limit */
    unsigned recipients_per_minute;      /* RCPT commands per client; 0: no limit */
};

struct config_spool {
    uint64_t memory_bytes; /* message bytes kept in memory before a temp file */
    char *directory;       /* where temp files are created (and unlinked at once) */
};

struct config_certificate {
    char *cert; /* PEM file: certificate, then its chain */
    char *key;  /* PEM file: the private key */
};

/* Inbound TLS. Checked further (files, cipher strings) when the TLS context is built. */
struct config_tls {
    struct config_certificate *certificates; /* chosen by SNI; the first is the default */
    size_t n_certificates;                   /* entries in certificates, 0: no TLS */
    char *min_version;                       /* "TLSv1.2" or "TLSv1.3" */
    char *ciphers;                           /* TLS 1.2 cipher list, OpenSSL syntax */
    char *ciphersuites;                      /* TLS 1.3 suites, NULL: OpenSSL's default */
    char *groups;                            /* key exchange groups, NULL: OpenSSL's default */
    bool request_client_cert;                /* ask clients for a certificate (not verified) */
    uint64_t handshake_timeout_ms;           /* a handshake must finish within this */
};

struct config {
    char *hostname;                    /* banner and EHLO name */
    struct config_listener *listeners; /* where to accept SMTP */
    size_t n_listeners;                /* entries in listeners (>= 1) */
    char **domains;                    /* accepted recipient domains, lower case */
    size_t n_domains;                  /* entries in domains */
    bool any_domain;                   /* "*" given: accept every recipient domain */
    struct config_endpoint *endpoints; /* webhooks, in file order */
    size_t n_endpoints;                /* entries in endpoints (>= 1) */
    struct config_route *routes;       /* "routes" in order; NULL: every endpoint, every rcpt */
    size_t n_routes;                   /* entries in routes (0: no routing) */
    char *recipient_delimiter;         /* extension delimiters ("+"), NULL for none */
    bool one_route_per_transaction;    /* recipients of a second route get 452 4.5.3 */
    enum config_delivery delivery;     /* without routes, and for routes that name none */
    bool uses_queue;                   /* some route (or the default) queues: the queue runs */
    bool queue_only;                   /* every message is queued: MAIL gets 452 when full */
    struct config_queue queue;         /* "queue" */
    struct config_recipient_check recipient_check; /* RCPT-time check */
    struct config_limits limits;                   /* protocol and resource limits */
    struct config_spool spool;                     /* message body storage */
    struct config_tls tls;                         /* inbound TLS */
    int log_level;                                 /* enum log_level */
    int log_format;                                /* enum log_format: "text" or "json" */
    char **warnings;               /* problems that do not stop a start, for the log */
    size_t n_warnings;             /* entries in warnings */
    bool any_stream;               /* an endpoint has "stream": connections follow each body */
    bool any_form;                 /* an endpoint posts multipart/form-data: bodies are watched
                                      for the boundary as they arrive */
    bool any_labels;               /* an endpoint's form labels fields by charset (mailgun,
                                      sendgrid): bodies are checked for UTF-8 as they arrive */
    struct config_admin admin;     /* "admin" */
    struct cidr *trusted_networks; /* clients the rate limits spare ("trusted_networks") */
    size_t n_trusted_networks;     /* entries in trusted_networks */
};

/* Command-line values that replace what the file says. */
struct config_overrides {
    const char *const *listen; /* --listen, may repeat; replaces "listeners" */
    size_t n_listen;           /* entries in listen */
    const char *webhook;       /* --webhook URL: one endpoint "default"; drops "routes" */
    const char *hostname;      /* --hostname */
    const char *tls_cert;      /* --tls-cert: replaces "tls.certificates" with one entry */
    const char *tls_key;       /* --tls-key: its key (both or neither) */
    const char *admin;         /* --admin ADDR: the admin port's address ("admin.listen") */
    const char *delivery;      /* --delivery MODE: the top-level "delivery" */
    const char *queue_dir;     /* --queue-dir DIR: "queue.directory" */
};

/* config_delivery_name - "sync", "queue", "sync_then_queue". */
const char *config_delivery_name(enum config_delivery d);

/* config_tls_mode_name - a listener's "tls" as written: "none", "starttls", "implicit". */
const char *config_tls_mode_name(enum config_tls_mode m);

/* config_proxy_name - a listener's "proxy_protocol" as written: "none", "v1", "v2", "any". */
const char *config_proxy_name(enum config_proxy p);

/* config_route_delivery - the delivery of route r (-1: without routes, the top-level one). */
enum config_delivery config_route_delivery(const struct config *cfg, long r);

/* config_load - build a config from an optional JSON file (path may be NULL) and the
 * overrides (may be NULL). On success *out owns a new config (free with config_free).
 * On failure returns SH_ECONFIG (or SH_ENOMEM) and writes a message naming the key to err. */
int config_load(const char *path, const struct config_overrides *ov, struct config **out, char *err,
                size_t errlen);

/* config_load_string - like config_load, from JSON text; "what" names it in messages. */
int config_load_string(const char *json, const char *what, const struct config_overrides *ov,
                       struct config **out, char *err, size_t errlen);

/* config_parse_address - "1.2.3.4:25", "[::1]:25" -> sockaddr. 0 or SH_EINVAL. */
int config_parse_address(const char *text, struct sockaddr_storage *addr, socklen_t *addrlen);

/* config_domain_accepted - is mail for this domain (no '@') accepted? Case-insensitive. */
bool config_domain_accepted(const struct config *cfg, const char *domain, size_t len);

/* config_route_for - the index of the first route with a pattern matching the address
 * (len bytes; recipient_delimiter applies), or -1 when none does or there are no routes. */
long config_route_for(const struct config *cfg, const char *addr, size_t len);

/* config_free - release a config and everything it owns; NULL is ignored. */
void config_free(struct config *cfg);

#endif
