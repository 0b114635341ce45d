/* `sipbx serve`: settings, database, writer thread, SIP side; runs until SIGINT/SIGTERM. */
#include "cli/cli.h"
#include "config/config.h"
#include "sip/sip.h"
#include "store/store.h"
#include "util/util.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#define ADMIN_USER "admin"

/* The server secret that signs nonces: kept in the database so nonces survive a restart. */
static int load_secret(struct store *st, unsigned char secret[SIP_SECRET_LEN])
{
    char hex[2 * SIP_SECRET_LEN + 1];
    if (store_setting_get(st, "secret", hex, sizeof hex) == 0 &&
        strlen(hex) == 2 * SIP_SECRET_LEN) {
        for (int i = 0; i < SIP_SECRET_LEN; i++) {
            unsigned v;
            if (sscanf(hex + 2 * i, "%2x", &v) != 1)
                return -1;
            secret[i] = (unsigned char)v;
        }
        return 0;
    }
    if (util_random(secret, SIP_SECRET_LEN) != 0)
        return -1;
    util_hex(hex, secret, SIP_SECRET_LEN);
    return store_setting_set(st, "secret", hex) == 0 ? 0 : -1;
}

/* Creates the first admin account with a generated password when there is none; writes
 * the password to out (empty when an admin already existed). */
static int first_admin(struct store *st, char *out, size_t outlen)
{
    out[0] = '\0';
    int n = store_admin_count(st);
    if (n < 0)
        return -1;
    if (n > 0)
        return 0;
    char pw[17], hash[256];
    util_password_generate(pw, 16);
    if (util_password_hash(pw, hash, sizeof hash) != 0 || store_admin_set(st, ADMIN_USER, hash))
        return -1;
    snprintf(out, outlen, "%s", pw);
    return 0;
}

static int load_config(int argc, char **argv, struct config *cfg)
{
    static const char *const allowed[] = {"config",      "db",
                                          "domain",      "sip",
                                          "http",        "ring-timeout",
                                          "web-root",    "min-expires",
                                          "max-expires", "default-expires",
                                          "nonce-ttl",   "max-call-seconds",
                                          "log-level",   NULL};
    struct cli_args a;
    char err[512];
    if (cli_parse(argc, argv, allowed, &a) != 0)
        return -1;
    if (a.npos > 0) {
        fprintf(stderr, "sipbx: serve takes no argument '%s'\n", a.pos[0]);
        return -1;
    }
    config_defaults(cfg);
    const char *file = cli_opt(&a, "config");
    if (file && config_load_file(cfg, file, err, sizeof err) != 0) {
        fprintf(stderr, "sipbx: %s\n", err);
        return -1;
    }
    for (int i = 0; i < a.nopt; i++) {
        if (strcmp(a.opt_name[i], "config") == 0)
            continue;
        if (config_set(cfg, a.opt_name[i], a.opt_val[i], err, sizeof err) != 0) {
            fprintf(stderr, "sipbx: --%s\n", err);
            return -1;
        }
    }
    if (cfg->min_expires > cfg->max_expires) {
        fprintf(stderr, "sipbx: min_expires (%d) is larger than max_expires (%d)\n",
                cfg->min_expires, cfg->max_expires);
        return -1;
    }
    return 0;
}

int cli_serve(int argc, char **argv)
{
    /* Signals are taken by the SIP loop through a signalfd: block them in every thread,
     * which means before any thread starts. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct config cfg;
    if (load_config(argc, argv, &cfg) != 0)
        return 2;
    log_set_level((enum log_level)cfg.log_level);

    struct store *st = NULL;
    struct store_writer *w = NULL;
    struct sip *sip = NULL;
    char err[512], domain[CONFIG_STR_MAX], admin_pw[32];
    unsigned char secret[SIP_SECRET_LEN];
    int rc = 1;

    if (store_open(&st, cfg.db_path, STORE_CREATE | STORE_MIGRATE, err, sizeof err) != 0) {
        fprintf(stderr, "sipbx: %s\n", err);
        return 1;
    }
    if (cli_domain(st, cfg.domain_given ? cfg.domain : NULL, domain, sizeof domain) != 0 ||
        load_secret(st, secret) != 0 || first_admin(st, admin_pw, sizeof admin_pw) != 0) {
        fprintf(stderr, "sipbx: cannot initialise database %s: %s\n", cfg.db_path,
                store_errmsg(st));
        goto out;
    }
    if (store_writer_create(&w, cfg.db_path, err, sizeof err) != 0) {
        fprintf(stderr, "sipbx: %s\n", err);
        goto out;
    }
    if (sip_create(&sip, &cfg, domain, secret, st, w, err, sizeof err) != 0) {
        fprintf(stderr, "sipbx: %s\n", err);
        goto out;
    }

    printf("sipbx %s: SIP on udp+tcp %s:%d, domain %s, database %s\n", SIPBX_VERSION, cfg.sip_host,
           sip_port(sip), domain, cfg.db_path);
    printf("  add a phone account:  sipbx user add 100 --password SECRET --db %s\n", cfg.db_path);
    printf("  then register it as:  100@%s (server %s, port %d)\n", domain, domain, sip_port(sip));
    if (admin_pw[0])
        printf("  admin account created: user '%s', password '%s' (shown once, stored hashed)\n",
               ADMIN_USER, admin_pw);
    fflush(stdout);

    sip_run(sip);
    rc = 0;
out:
    store_writer_destroy(w); /* commits what the SIP side queued */
    sip_destroy(sip);
    store_close(st);
    if (rc == 0)
        log_info("stopped");
    return rc;
}
