/* `sipbx serve`: settings, database, writer thread, SIP side, event stream, webhooks, REST
 * API; runs until SIGINT/SIGTERM. */
#include "cert/cert.h"
#include "cli/cli.h"
#include "config/config.h"
#include "events/events.h"
#include "hooks/hooks.h"
#include "http/http.h"
#include "sip/sip.h"
#include "store/store.h"
#include "util/util.h"
#include "voicemail/vm.h"

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define ADMIN_USER  "admin"
#define EVENTS_KEPT 1024 /* events a subscriber that reconnects can still catch up on */

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

/* Every SIP and HTTP connection is a file descriptor: the usual soft limit of 1024 would let
 * a few hundred idle connections starve the daemon of descriptors (accept failing in a
 * loop, the database unopenable). Raise it towards the hard limit; the SIP connection guard
 * and the HTTP per-address limits keep the numbers in check. */
#define NOFILE_WANTED 65536

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= NOFILE_WANTED)
        return;
    rlim_t want =
        rl.rlim_max == RLIM_INFINITY || rl.rlim_max > NOFILE_WANTED ? NOFILE_WANTED : rl.rlim_max;
    if (want > rl.rlim_cur) {
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            log_warn("cannot raise the open file limit to %llu", (unsigned long long)want);
    }
}

/* Stopping the HTTP server waits for requests in progress, and some of them (a kick, a
 * deleted user) wait on the SIP thread: so the SIP loop runs again while a helper thread
 * stops HTTP and then ends the loop. */
struct http_stop {
    struct http *http;
    struct vm *vm;
    struct sip *sip;
    atomic_int done;
};

/* The streams an event the writer held back until its change was committed goes to:
 * trace.changed to the trace streams (/api/v1/events?trace=), the rest to the main one. */
struct announced {
    struct events *main, *traces;
};

static void publish_announced(const char *type, const char *json, void *ctx)
{
    struct announced *to = ctx;
    events_publish(strcmp(type, "trace.changed") == 0 ? to->traces : to->main, type, json);
}

static int end_loop(void *arg)
{
    struct http_stop *hs = arg;
    atomic_store(&hs->done, 1);
    sip_stop(hs->sip);
    return 0;
}

static void *stop_http(void *arg)
{
    struct http_stop *hs = arg;
    http_destroy(hs->http);
    /* Voicemail's calls end with BYEs that pass the proxy: the loop still runs. */
    vm_stop(hs->vm);
    /* sip_execute gives up on a loop that is busy for long (or out of memory); end_loop
     * then did not run, and the main thread would run the loop forever without it. */
    while (sip_execute(hs->sip, end_loop, hs) < 0)
        usleep(100 * 1000);
    return NULL;
}

static void http_stop_with_sip(struct http *http, struct vm *vm, struct sip *sip)
{
    struct http_stop hs = {http, vm, sip, 0};
    pthread_t t;
    if (pthread_create(&t, NULL, stop_http, &hs) != 0) {
        http_destroy(http); /* no helper: stop it here and hope nothing waits on SIP */
        vm_stop(vm);
        return;
    }
    while (!atomic_load(&hs.done))
        sip_run(sip); /* a second signal may end a run early: run on until HTTP is down */
    pthread_join(t, NULL);
}

/* The certificates of SIP over TLS and HTTPS: one, generated in the data directory unless
 * tls_cert names one, for both; HTTPS's own when https_cert names one. Each is opened only
 * when something uses it or it is configured (a bad file is then found at start, whatever
 * is on). With SIP over TLS on, also writes the directory Sofia-SIP's TLS transport reads
 * into sip_dir ("" otherwise). Returns 0, or -1 after printing the one-line reason. */
static int open_certs(const struct config *cfg, const char *domain, struct cert **tls,
                      struct cert **https, char *sip_dir, size_t sip_dir_len)
{
    char data_dir[PATH_MAX], err[PATH_MAX + 512];
    cert_data_dir(cfg->db_path, data_dir, sizeof data_dir);
    sip_dir[0] = '\0';
    if ((cfg->sip_tls_port || (cfg->https_port && !cfg->https_cert[0]) || cfg->tls_cert[0]) &&
        cert_open(tls, "tls_cert", cfg->tls_cert, cfg->tls_key, data_dir, domain, err,
                  sizeof err) != 0) {
        fprintf(stderr, "sipbx: %s\n", err);
        return -1;
    }
    if (cfg->https_cert[0] && cert_open(https, "https_cert", cfg->https_cert, cfg->https_key,
                                        data_dir, domain, err, sizeof err) != 0) {
        fprintf(stderr, "sipbx: %s\n", err);
        return -1;
    }
    if (cfg->sip_tls_port &&
        cert_sofia_dir(*tls, data_dir, sip_dir, sip_dir_len, err, sizeof err) != 0) {
        fprintf(stderr, "sipbx: %s\n", err);
        return -1;
    }
    return 0;
}

/* One banner line about a certificate in use: its fingerprint to pin, and where it is. */
static void show_cert(const char *what, const struct cert *c)
{
    printf("%s certificate: SHA-256 fingerprint %s\n  (%s %s; pin the fingerprint in phones "
           "and browsers)\n",
           what, cert_fingerprint(c), cert_generated(c) ? "self-signed, generated in" : "from",
           cert_file(c));
}

/* The address to print for a listen address: the host's own for a wildcard. */
static void show_host(const char *host, char *out, size_t outlen)
{
    char addr[CONFIG_STR_MAX];
    if (!host[0] || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0)
        config_primary_address(addr, sizeof addr);
    else
        snprintf(addr, sizeof addr, "%s", host);
    snprintf(out, outlen, strchr(addr, ':') ? "[%s]" : "%s", addr);
}

/* Starts voicemail (voicemail/vm.h): its user agent sends its own requests (BYE at the end
 * of a message) to the proxy on this host. Returns 0, or -1 after printing the reason. */
static int start_voicemail(const struct config *cfg, const unsigned char secret[SIP_SECRET_LEN],
                           struct sip *sip, struct events *ev, struct vm **out)
{
    char data_dir[PATH_MAX], proxy[CONFIG_STR_MAX + 32], err[PATH_MAX + 256];
    cert_data_dir(cfg->db_path, data_dir, sizeof data_dir);
    if (strcmp(cfg->sip_host, "0.0.0.0") == 0)
        snprintf(proxy, sizeof proxy, "sip:127.0.0.1:%d;transport=udp", sip_port(sip));
    else if (strcmp(cfg->sip_host, "::") == 0)
        snprintf(proxy, sizeof proxy, "sip:[::1]:%d;transport=udp", sip_port(sip));
    else
        snprintf(proxy, sizeof proxy,
                 strchr(cfg->sip_host, ':') ? "sip:[%s]:%d;transport=udp"
                                            : "sip:%s:%d;transport=udp",
                 cfg->sip_host, sip_port(sip));
    if (vm_create(out, cfg, secret, cfg->db_path, data_dir, proxy, ev, err, sizeof err) != 0) {
        fprintf(stderr, "sipbx: %s\n", err);
        return -1;
    }
    return 0;
}

static int load_config(int argc, char **argv, struct config *cfg)
{
    static const char *const allowed[] = {"config",
                                          "db",
                                          "domain",
                                          "sip",
                                          "http",
                                          "ring-timeout",
                                          "web-root",
                                          "min-expires",
                                          "max-expires",
                                          "default-expires",
                                          "nonce-ttl",
                                          "max-call-seconds",
                                          "log-level",
                                          "nonce-max-failures",
                                          "sip-ban-failures",
                                          "sip-ban-window",
                                          "sip-ban-time",
                                          "sip-ban-max-time",
                                          "sip-trusted-networks",
                                          "tcp-per-source",
                                          "sip-tls",
                                          "https",
                                          "tls-cert",
                                          "tls-key",
                                          "https-cert",
                                          "https-key",
                                          "hsts-max-age",
                                          "voicemail-number",
                                          "voicemail-max-seconds",
                                          "voicemail-silence-seconds",
                                          "voicemail-max-messages",
                                          "voicemail-max-days",
                                          "voicemail-max-calls",
                                          "voicemail-port",
                                          "media-address",
                                          "rtp-port-min",
                                          "rtp-port-max",
                                          NULL};
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
    if (cfg->ban_time > cfg->ban_max_time) {
        fprintf(stderr, "sipbx: sip_ban_time (%d) is larger than sip_ban_max_time (%d)\n",
                cfg->ban_time, cfg->ban_max_time);
        return -1;
    }
    if (cfg->rtp_port_min >= cfg->rtp_port_max) {
        fprintf(stderr, "sipbx: rtp_port_min (%d) must be below rtp_port_max (%d)\n",
                cfg->rtp_port_min, cfg->rtp_port_max);
        return -1;
    }
    /* A key alone names no certificate: rather than guess, say so. */
    if (cfg->tls_key[0] && !cfg->tls_cert[0]) {
        fprintf(stderr, "sipbx: tls_key is set but tls_cert is not\n");
        return -1;
    }
    if (cfg->https_key[0] && !cfg->https_cert[0]) {
        fprintf(stderr, "sipbx: https_key is set but https_cert is not\n");
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
    /* A file size limit (ulimit -f) makes a write fail with EFBIG like a full disk; the
     * writer retries it. Without this the signal would kill the daemon. */
    signal(SIGXFSZ, SIG_IGN);
    raise_nofile();

    struct config cfg;
    if (load_config(argc, argv, &cfg) != 0)
        return 2;
    log_set_level((enum log_level)cfg.log_level);

    struct store *st = NULL;
    struct store_writer *w = NULL;
    struct sip *sip = NULL;
    struct http *http = NULL;
    struct vm *vm = NULL;
    struct hooks *hooks = NULL;
    struct events *ev = NULL, *tev = NULL;            /* calls and registrations; stored traces */
    struct cert *tls_cert = NULL, *https_cert = NULL; /* SIP over TLS (and HTTPS); HTTPS's own */
    char sip_tls_dir[PATH_MAX]; /* for the SIP agent's TLS transport (TPTAG_CERTIFICATE) */
    struct announced announced;
    char err[512], domain[CONFIG_STR_MAX], admin_pw[32], host[CONFIG_STR_MAX + 2];
    unsigned char secret[SIP_SECRET_LEN];
    int rc = 1, sip_initialised = 0;

    /* One daemon per database: a second one (or a restore) is refused, not interleaved.
     * The lock is held until the process exits. */
    int lock_fd;
    if (store_lock(cfg.db_path, &lock_fd, err, sizeof err) != 0) {
        fprintf(stderr, "sipbx: %s\n", err);
        return 1;
    }
    if (store_open(&st, cfg.db_path, STORE_CREATE | STORE_MIGRATE, err, sizeof err) != 0) {
        fprintf(stderr, "sipbx: %s\n", err);
        return 1;
    }
    if (cli_domain(st, cfg.domain_given ? cfg.domain : NULL, domain, sizeof domain) != 0 ||
        load_secret(st, secret) != 0) {
        fprintf(stderr, "sipbx: cannot initialise database %s: %s\n", cfg.db_path,
                store_errmsg(st));
        goto out;
    }
    /* Calls that were up when the last run died (kill -9, power loss) were journaled
     * when answered: close their records now. */
    int interrupted = store_cdr_close_interrupted(st, util_now_us());
    if (interrupted > 0)
        log_warn("%d call record(s) left open by the previous run closed as interrupted",
                 interrupted);
    if (open_certs(&cfg, domain, &tls_cert, &https_cert, sip_tls_dir, sizeof sip_tls_dir) != 0)
        goto out;
    if (sip_tls_dir[0])
        log_info("sip: TLS certificate directory %s", sip_tls_dir);
    if (store_writer_create(&w, cfg.db_path, err, sizeof err) != 0) {
        fprintf(stderr, "sipbx: %s\n", err);
        goto out;
    }
    if (sip_init() != 0) {
        fprintf(stderr, "sipbx: cannot initialise the SIP library\n");
        goto out;
    }
    sip_initialised = 1;
    if (sip_create(&sip, &cfg, domain, secret, sip_tls_dir[0] ? sip_tls_dir : NULL, st, w, err,
                   sizeof err) != 0) {
        fprintf(stderr, "sipbx: %s\n", err);
        goto out;
    }
    if (events_create(&ev, EVENTS_KEPT) != 0 || events_create(&tev, EVENTS_KEPT) != 0) {
        fprintf(stderr, "sipbx: cannot create the event stream: out of memory\n");
        goto out;
    }
    sip_set_events(sip, ev); /* before sip_run: the SIP thread reads it unlocked */
    if (start_voicemail(&cfg, secret, sip, ev, &vm) != 0)
        goto out;
    sip_set_voicemail(sip, vm);
    announced = (struct announced){ev, tev};
    store_writer_set_announce(w, publish_announced, &announced);
    if (hooks_create(&hooks, cfg.db_path, w, ev, err, sizeof err) != 0) {
        fprintf(stderr, "sipbx: %s\n", err);
        goto out;
    }
    if (http_create(&http, &cfg, cfg.db_path, domain, sip, vm, w, ev, tev,
                    https_cert ? https_cert : tls_cert, cfg.sip_tls_port ? tls_cert : NULL, hooks,
                    err, sizeof err) != 0) {
        fprintf(stderr, "sipbx: %s\n", err);
        goto out;
    }
    /* Only once both ports are bound: a password made by a start that then fails would
     * never be shown. */
    if (first_admin(st, admin_pw, sizeof admin_pw) != 0) {
        fprintf(stderr, "sipbx: cannot create the admin account in %s: %s\n", cfg.db_path,
                store_errmsg(st));
        goto out;
    }

    if (sip_tls_port(sip))
        printf("sipbx %s: SIP on udp+tcp %s:%d and tls %s:%d, domain %s, database %s\n",
               SIPBX_VERSION, cfg.sip_host, sip_port(sip), cfg.sip_tls_host, sip_tls_port(sip),
               domain, cfg.db_path);
    else
        printf("sipbx %s: SIP on udp+tcp %s:%d, domain %s, database %s\n", SIPBX_VERSION,
               cfg.sip_host, sip_port(sip), domain, cfg.db_path);
    printf("  add a phone account:  %s user add 100 --password SECRET --db %s\n", cli_program,
           cfg.db_path);
    printf("  then register it as:  100@%s (server %s, port %d)\n", domain, domain, sip_port(sip));
    if (tls_cert && (cfg.sip_tls_port || !https_cert))
        show_cert(cfg.sip_tls_port && cfg.https_port && !https_cert ? "TLS (SIP and HTTPS)"
                  : cfg.sip_tls_port                                ? "SIP TLS"
                                                                    : "HTTPS",
                  tls_cert);
    if (https_cert && cfg.https_port)
        show_cert("HTTPS", https_cert);
    /* With HTTPS on, the API and the dashboard are at its URL (plain HTTP redirects). */
    int https_port = http_https_port(http);
    const char *scheme = https_port ? "https" : "http";
    int port = https_port ? https_port : http_port(http);
    show_host(https_port ? cfg.https_host : cfg.http_host, host, sizeof host);
    printf("REST API: %s://%s:%d/api/v1 (log in as %s)\n", scheme, host, port, ADMIN_USER);
    if (http_web_root(http))
        printf("Dashboard: %s://%s:%d/ (files from %s)\n", scheme, host, port, http_web_root(http));
    if (https_port) {
        show_host(cfg.http_host, host, sizeof host);
        printf("  plain HTTP on http://%s:%d/ redirects the dashboard to HTTPS; it answers "
               "/api/v1/health, not the API\n",
               host, http_port(http));
    }
    printf("Voicemail: dial %s to listen; user agent on 127.0.0.1:%d, RTP on %s ports %d-%d\n",
           cfg.voicemail_number, vm_port(vm), cfg.sip_host, cfg.rtp_port_min, cfg.rtp_port_max);
    if (admin_pw[0])
        printf("  admin account created: user '%s', password '%s' (shown once, stored hashed)\n",
               ADMIN_USER, admin_pw);
    fflush(stdout);

    sip_run(sip);
    events_close(ev); /* event streams end now rather than at their next wait */
    events_close(tev);
    http_stop_with_sip(http, vm, sip);
    http = NULL;
    rc = 0;
out:
    http_destroy(http); /* only when start-up failed after it was created */
    vm_stop(vm);        /* (the same: stopped already after a run) */
    /* The SIP side goes first: it closes the records of calls still up and drains the
     * message capture into the writer, which then commits everything queued. */
    sip_destroy(sip);
    vm_destroy(vm);
    if (sip_initialised)
        sip_deinit();
    store_writer_destroy(w);
    /* After the writer, which has queued the last events for webhooks by now. */
    hooks_destroy(hooks);
    events_destroy(ev);  /* the SIP side publishes into it until sip_destroy */
    events_destroy(tev); /* the writer publishes into it until store_writer_destroy */
    store_close(st);
    cert_destroy(https_cert); /* the HTTP and SIP sides used them until here */
    cert_destroy(tls_cert);
    if (rc == 0)
        log_info("stopped");
    return rc;
}
