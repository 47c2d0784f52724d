/* main.c - command line, configuration and signals; wiring only. */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "smtphook/base64.h"
#include "smtphook/cidr.h"
#include "smtphook/config.h"
#include "smtphook/http_client.h"
#include "smtphook/log.h"
#include "smtphook/server.h"
#include "smtphook/tls.h"

#include "env.h"
#include "queue_cli.h"

#ifndef SMTPHOOK_VERSION
#define SMTPHOOK_VERSION "0.0.0"
#endif

static const char usage_text[] =
    "Usage: smtphook [--config FILE] [--listen ADDR:PORT]... [--webhook URL]\n"
    "                [--hostname NAME] [--tls-cert FILE --tls-key FILE] [--admin ADDR:PORT]\n"
    "                [--delivery MODE] [--queue-dir DIR] [--check-config]\n"
    "       smtphook --probe URL\n"
    "       smtphook queue [--help] COMMAND ...  (the durable queue: list, show, retry, ...)\n"
    "\n"
    "Accepts mail over SMTP and POSTs every message to a web application.\n"
    "\n"
    "  -c, --config FILE    JSON configuration file (see config.example.json)\n"
    "  -l, --listen ADDR    listen address, e.g. 127.0.0.1:2525 or [::1]:2525;\n"
    "                       may repeat; replaces the file's \"listeners\"\n"
    "  -w, --webhook URL    post every message to URL; replaces the file's \"endpoints\"\n"
    "                       and drops its \"routes\"\n"
    "  -n, --hostname NAME  name in the banner and EHLO reply\n"
    "      --tls-cert FILE  PEM certificate (then its chain) for STARTTLS; replaces the\n"
    "                       file's \"tls.certificates\"; needs --tls-key\n"
    "      --tls-key FILE   PEM private key of --tls-cert\n"
    "      --admin ADDR     admin port (/metrics /livez /readyz), e.g. 127.0.0.1:9025\n"
    "      --delivery MODE  sync (250 once the app answered 2xx), queue (250 once on\n"
    "                       disk, delivered later) or sync_then_queue; the file's\n"
    "                       top-level \"delivery\"\n"
    "      --queue-dir DIR  the queue directory (\"queue.directory\")\n"
    "      --check-config   validate the configuration, print the listeners and the\n"
    "                       admin port it ends up with, and exit\n"
    "      --probe URL      GET URL (e.g. http://127.0.0.1:9025/readyz), exit 0 on 2xx:\n"
    "                       a container's health check, with no shell or curl needed\n"
    "  -V, --version        print the version and exit\n"
    "  -h, --help           print this help and exit\n"
    "\n"
    "Without --config, mail for any recipient domain is accepted.\n"
    "\n"
    "Each option can come from the environment instead (the option wins):\n"
    "SMTPHOOK_CONFIG, SMTPHOOK_LISTEN (addresses separated by spaces or commas),\n"
    "SMTPHOOK_WEBHOOK, SMTPHOOK_HOSTNAME, SMTPHOOK_TLS_CERT, SMTPHOOK_TLS_KEY, SMTPHOOK_ADMIN,\n"
    "SMTPHOOK_DELIVERY, SMTPHOOK_QUEUE_DIR.\n";

#define MAIN_PROBE_TIMEOUT_MS 5000L /* --probe gives up after this */

/* main_print_limits - what --check-config shows besides errors and warnings: the limits a
 * sender can run into that follow from the configuration rather than from one key. */
static void main_print_limits(const struct config *cfg)
{
    for (size_t i = 0; i < cfg->n_endpoints; i++) {
        const struct config_endpoint *ep = &cfg->endpoints[i];
        if (ep->format != CONFIG_FORMAT_RAW)
            continue;
        printf("endpoint %s: format raw carries the envelope in request headers of at most %" PRIu64
               " bytes (max_header_bytes): recipients past that get 452 4.5.3 and are sent in "
               "another transaction; format json or multipart carries any envelope\n",
               ep->name, ep->max_header_bytes);
    }
}

/* main_print_keys - what --check-config shows of the signing keys: for each v1a (Ed25519)
 * key its public key, "whpk_" and base64, which the receiver verifies with. Secrets are
 * never shown. */
static void main_print_keys(const struct config *cfg)
{
    for (size_t i = 0; i < cfg->n_endpoints; i++) {
        const struct config_signing *sg = &cfg->endpoints[i].signing;
        for (size_t k = 0; k < sg->n_secrets; k++) {
            if (!sg->secrets[k].ed25519)
                continue;
            char pub[BASE64_SIZE(ED25519_PUBLIC_BYTES) + 1];
            pub[base64_encode(sg->secrets[k].public_key, ED25519_PUBLIC_BYTES, pub)] = '\0';
            printf("endpoint %s: signing.secrets[%zu] signs v1a (Ed25519); the receiver verifies "
                   "with whpk_%s\n",
                   cfg->endpoints[i].name, k, pub);
        }
    }
}

/* main_print_listeners - what --check-config shows of the listeners and the admin port as
 * they end up (the file's, or --listen/--admin and their variables, which replace them). */
static void main_print_listeners(const struct config *cfg)
{
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const struct config_listener *l = &cfg->listeners[i];
        printf("listener %s: tls %s%s, proxy_protocol %s", l->address, config_tls_mode_name(l->tls),
               l->require_tls ? ", require_tls" : "", config_proxy_name(l->proxy));
        for (size_t k = 0; k < l->n_trusted_proxies; k++) {
            char net[CIDR_TEXT_MAX];
            printf("%s%s", k == 0 ? ", trusted_proxies " : " ",
                   cidr_format(&l->trusted_proxies[k], net, sizeof(net)));
        }
        putchar('\n');
    }
    if (cfg->admin.enabled)
        printf("admin %s\n", cfg->admin.listen);
}

/* Where SIGHUP reads the configuration again: the same file, the same flags. */
struct main_source {
    const char *path;                  /* the file, or NULL */
    const struct config_overrides *ov; /* the flags and variables */
};

/* main_reload - server_reload_fn: the configuration loaded as at the start. */
static struct config *main_reload(void *arg, char *err, size_t errlen)
{
    const struct main_source *src = arg;
    struct config *cfg = NULL;
    if (config_load(src->path, src->ov, &cfg, err, errlen) != 0)
        return NULL;
    return cfg;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"listen", required_argument, NULL, 'l'},
        {"webhook", required_argument, NULL, 'w'},
        {"hostname", required_argument, NULL, 'n'},
        {"check-config", no_argument, NULL, 'C'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {"tls-cert", required_argument, NULL, 'T'},
        {"tls-key", required_argument, NULL, 'K'},
        {"admin", required_argument, NULL, 'A'},
        {"probe", required_argument, NULL, 'P'},
        {"delivery", required_argument, NULL, 'D'},
        {"queue-dir", required_argument, NULL, 'Q'},
        {NULL, 0, NULL, 0},
    };
    const char *probe = NULL;
    const char *config_path = NULL;
    const char *listen[ENV_MAX_LISTEN];
    struct config_overrides ov = {.listen = listen};
    int check_only = 0;
    int opt;
    if (argc > 1 && strcmp(argv[1], "queue") == 0)
        return queue_cli_main(argc - 1, argv + 1);

    while ((opt = getopt_long(argc, argv, "c:l:w:n:Vh", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'l':
            if (ov.n_listen == ENV_MAX_LISTEN) {
                fprintf(stderr, "smtphook: --listen: at most %d addresses\n", ENV_MAX_LISTEN);
                return 2;
            }
            listen[ov.n_listen++] = optarg;
            break;
        case 'w':
            ov.webhook = optarg;
            break;
        case 'n':
            ov.hostname = optarg;
            break;
        case 'T':
            ov.tls_cert = optarg;
            break;
        case 'K':
            ov.tls_key = optarg;
            break;
        case 'A':
            ov.admin = optarg;
            break;
        case 'P':
            probe = optarg;
            break;
        case 'D':
            ov.delivery = optarg;
            break;
        case 'Q':
            ov.queue_dir = optarg;
            break;
        case 'C':
            check_only = 1;
            break;
        case 'V':
            printf("smtphook %s\n", SMTPHOOK_VERSION);
            return 0;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        default:
            fputs(usage_text, stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "smtphook: unexpected argument: %s\n", argv[optind]);
        fputs(usage_text, stderr);
        return 2;
    }

    char err[512];
    if (probe != NULL) {
        if (http_probe(probe, MAIN_PROBE_TIMEOUT_MS, err, sizeof(err)) == 0)
            return 0;
        fprintf(stderr, "smtphook: --probe: %s\n", err);
        return 1;
    }
    config_path = env_option(config_path, "SMTPHOOK_CONFIG");
    static char listen_env[4096];
    if (env_overrides(&ov, listen, ENV_MAX_LISTEN, listen_env, sizeof(listen_env)) != 0) {
        fprintf(stderr, "smtphook: SMTPHOOK_LISTEN: at most %d addresses\n", ENV_MAX_LISTEN);
        return 2;
    }
    struct config *cfg = NULL;
    if (config_load(config_path, &ov, &cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "smtphook: %s\n", err);
        return 1;
    }
    if (check_only) {
        /* Warnings do not fail the check: the configuration would start. */
        for (size_t i = 0; i < cfg->n_warnings; i++)
            fprintf(stderr, "smtphook: warning: %s\n", cfg->warnings[i]);
        /* The certificates are checked exactly as a start would check them. */
        struct tls_server *tls = NULL;
        if (cfg->tls.n_certificates > 0 && tls_server_new(&cfg->tls, &tls, err, sizeof(err)) != 0) {
            fprintf(stderr, "smtphook: %s\n", err);
            config_free(cfg);
            return 1;
        }
        tls_server_free(tls);
        printf("%s: configuration ok\n", config_path ? config_path : "command line");
        main_print_listeners(cfg);
        main_print_keys(cfg);
        main_print_limits(cfg);
        config_free(cfg);
        return 0;
    }
    log_set_level((enum log_level)cfg->log_level);
    log_set_format((enum log_format)cfg->log_format);
    for (size_t i = 0; i < cfg->n_warnings; i++)
        log_warn("%s", cfg->warnings[i]);
    signal(SIGPIPE, SIG_IGN);

    uv_loop_t *loop = uv_default_loop();
    static struct server server; /* large (its read buffer): not on the stack */
    int rc = server_start(&server, loop, cfg);
    struct main_source source = {config_path, &ov};
    server_set_reload(&server, main_reload, &source);
    if (rc == 0)
        log_info("smtphook %s ready as %s", SMTPHOOK_VERSION, cfg->hostname);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    config_free(cfg);
    return rc == 0 ? 0 : 1;
}
