/* Unit tests of server/config: defaults, setting by key or flag, address parsing and the
 * config file reader. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "config/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A temporary directory for config files, removed by the teardown. */
struct tmp {
    char dir[64];
    char path[128];
};

static int tmp_setup(void **state)
{
    struct tmp *t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    snprintf(t->dir, sizeof t->dir, "/tmp/sipbx-config-XXXXXX");
    if (!mkdtemp(t->dir)) {
        free(t);
        return -1;
    }
    snprintf(t->path, sizeof t->path, "%s/sipbx.conf", t->dir);
    *state = t;
    return 0;
}

static int tmp_teardown(void **state)
{
    struct tmp *t = *state;
    unlink(t->path);
    int rc = rmdir(t->dir);
    free(t);
    return rc;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static void test_defaults(void **state)
{
    (void)state;
    struct config c;
    memset(&c, 0x5a, sizeof c);
    config_defaults(&c);
    /* The documented defaults (design.md: ./sipbx.db, SIP 0.0.0.0:5060, HTTP 0.0.0.0:8080,
     * domain from the host unless given). */
    assert_string_equal(c.db_path, "sipbx.db");
    assert_string_equal(c.sip_host, "0.0.0.0");
    assert_int_equal(c.sip_port, 5060);
    assert_string_equal(c.http_host, "0.0.0.0");
    assert_int_equal(c.http_port, 8080);
    assert_string_equal(c.domain, "");
    assert_int_equal(c.domain_given, 0);
    assert_string_equal(c.web_root, "");
    /* Every number is inside the range config_set accepts for it, and the registration
     * bounds are consistent. */
    assert_in_range(c.ring_timeout, 1, 3600);
    assert_in_range(c.min_expires, 1, 86400);
    assert_in_range(c.max_expires, 1, 604800);
    assert_in_range(c.default_expires, c.min_expires, c.max_expires);
    assert_true(c.min_expires <= c.max_expires);
    assert_in_range(c.nonce_ttl, 1, 86400);
    assert_in_range(c.max_call_seconds, 60, 604800);
    assert_in_range(c.log_level, 0, 3);
}

static void test_set_by_key_and_flag(void **state)
{
    (void)state;
    struct config c;
    char err[256] = "";
    config_defaults(&c);

    assert_int_equal(config_set(&c, "ring_timeout", "30", err, sizeof err), 0);
    assert_int_equal(c.ring_timeout, 30);
    assert_int_equal(config_set(&c, "--ring-timeout", "45", err, sizeof err), 0);
    assert_int_equal(c.ring_timeout, 45);
    assert_int_equal(config_set(&c, "ring-timeout", "46", err, sizeof err), 0);
    assert_int_equal(c.ring_timeout, 46);
    /* Bounds are inclusive. */
    assert_int_equal(config_set(&c, "ring_timeout", "1", err, sizeof err), 0);
    assert_int_equal(c.ring_timeout, 1);
    assert_int_equal(config_set(&c, "ring_timeout", "3600", err, sizeof err), 0);
    assert_int_equal(c.ring_timeout, 3600);

    assert_int_equal(config_set(&c, "--db", "/var/lib/sipbx/pbx.db", err, sizeof err), 0);
    assert_string_equal(c.db_path, "/var/lib/sipbx/pbx.db");
    assert_int_equal(config_set(&c, "--web-root", "/srv/web", err, sizeof err), 0);
    assert_string_equal(c.web_root, "/srv/web");
    assert_int_equal(config_set(&c, "--nonce-ttl", "600", err, sizeof err), 0);
    assert_int_equal(c.nonce_ttl, 600);
    assert_int_equal(config_set(&c, "max_call_seconds", "7200", err, sizeof err), 0);
    assert_int_equal(c.max_call_seconds, 7200);

    assert_int_equal(config_set(&c, "--domain", "pbx.example.com", err, sizeof err), 0);
    assert_string_equal(c.domain, "pbx.example.com");
    assert_int_equal(c.domain_given, 1);
    assert_int_equal(config_set(&c, "domain", "", err, sizeof err), 0);
    assert_int_equal(c.domain_given, 0);

    assert_int_equal(config_set(&c, "--sip", "127.0.0.1:5070", err, sizeof err), 0);
    assert_string_equal(c.sip_host, "127.0.0.1");
    assert_int_equal(c.sip_port, 5070);
    assert_int_equal(config_set(&c, "http", "[::1]:8088", err, sizeof err), 0);
    assert_string_equal(c.http_host, "::1");
    assert_int_equal(c.http_port, 8088);
    /* SIP untouched by the HTTP setting. */
    assert_string_equal(c.sip_host, "127.0.0.1");
    assert_int_equal(c.sip_port, 5070);

    assert_int_equal(config_set(&c, "log_level", "debug", err, sizeof err), 0);
    assert_int_equal(c.log_level, 3);
    assert_int_equal(config_set(&c, "--log-level", "error", err, sizeof err), 0);
    assert_int_equal(c.log_level, 0);
    assert_int_equal(config_set(&c, "log_level", "2", err, sizeof err), 0);
    assert_int_equal(c.log_level, 2);

    assert_true(config_known("ring_timeout"));
    assert_true(config_known("--ring-timeout"));
    assert_true(config_known("sip"));
    assert_false(config_known("--ring_timeout_x"));
    assert_false(config_known("ring"));
    assert_false(config_known(""));
}

/* Sets name to value, expects a refusal whose message names key, and the field unchanged. */
static void expect_refused(struct config *c, const char *name, const char *value, const char *key)
{
    struct config before;
    memcpy(&before, c, sizeof before);
    char err[256] = "";
    assert_int_equal(config_set(c, name, value, err, sizeof err), -1);
    if (!strstr(err, key))
        fail_msg("error for %s=%s does not name %s: '%s'", name, value, key, err);
    assert_memory_equal(&before, c, sizeof before);
}

static void test_set_rejects(void **state)
{
    (void)state;
    struct config c;
    config_defaults(&c);
    expect_refused(&c, "ring_timeout", "0", "ring_timeout");
    expect_refused(&c, "--ring-timeout", "3601", "ring_timeout");
    expect_refused(&c, "--ring-timeout", "-5", "ring_timeout");
    expect_refused(&c, "ring_timeout", "abc", "ring_timeout");
    expect_refused(&c, "ring_timeout", "12abc", "ring_timeout");
    expect_refused(&c, "ring_timeout", "", "ring_timeout");
    expect_refused(&c, "ring_timeout", "99999999999999999999", "ring_timeout");
    expect_refused(&c, "max_call_seconds", "59", "max_call_seconds");
    expect_refused(&c, "nonce_ttl", "1.5", "nonce_ttl");
    expect_refused(&c, "log_level", "4", "log_level");
    expect_refused(&c, "log_level", "verbose", "log_level");
    expect_refused(&c, "--sip", "nohost", "sip");
    expect_refused(&c, "--http", "1.2.3.4:99999", "http");
    expect_refused(&c, "--no-such-flag", "1", "no-such-flag");
    expect_refused(&c, "--sip-ban-failures", "101", "sip_ban_failures");
    expect_refused(&c, "sip_ban_window", "0", "sip_ban_window");
    expect_refused(&c, "nonce_max_failures", "0", "nonce_max_failures");
    expect_refused(&c, "--sip-trusted-networks", "10.0.0.0/33", "10.0.0.0/33");
    expect_refused(&c, "sip_trusted_networks", "pbx.example.org", "pbx.example.org");

    char long_value[CONFIG_STR_MAX + 10];
    memset(long_value, 'd', sizeof long_value - 1);
    long_value[sizeof long_value - 1] = '\0';
    expect_refused(&c, "db", long_value, "db");
}

/* The SIP security settings: defaults, and a trusted list as the file or a flag gives it. */
static void test_ban_settings(void **state)
{
    (void)state;
    struct config c;
    char err[256];
    config_defaults(&c);
    assert_int_equal(c.ban_failures, 10);
    assert_int_equal(c.ban_window, 60);
    assert_int_equal(c.ban_time, 600);
    assert_int_equal(c.ban_max_time, 86400);
    assert_int_equal(c.nonce_max_failures, 3);
    assert_string_equal(c.trusted_networks, "127.0.0.0/8, ::1");
    assert_int_equal(
        config_set(&c, "--sip-trusted-networks", "192.0.2.0/24 2001:db8::/32", err, sizeof err), 0);
    assert_string_equal(c.trusted_networks, "192.0.2.0/24 2001:db8::/32");
    assert_int_equal(config_set(&c, "sip_trusted_networks", "none", err, sizeof err), 0);
    assert_int_equal(config_set(&c, "sip_ban_failures", "0", err, sizeof err), 0);
    assert_int_equal(c.ban_failures, 0);
}

/* SIP over TLS, HTTPS and their certificates: off by default; ADDR:PORT or off; the file's
 * `tls` and `sip_tls` and the flag --sip-tls are one setting. */
static void test_tls_settings(void **state)
{
    (void)state;
    struct config c;
    char err[256] = "";
    config_defaults(&c);
    assert_int_equal(c.sip_tls_port, 0);
    assert_string_equal(c.sip_tls_host, "");
    assert_int_equal(c.https_port, 0);
    assert_string_equal(c.https_host, "");
    assert_string_equal(c.tls_cert, "");
    assert_string_equal(c.tls_key, "");
    assert_string_equal(c.https_cert, "");
    assert_string_equal(c.https_key, "");
    assert_int_equal(c.hsts_max_age, 365 * 86400);

    assert_int_equal(config_set(&c, "tls", "0.0.0.0:5061", err, sizeof err), 0);
    assert_string_equal(c.sip_tls_host, "0.0.0.0");
    assert_int_equal(c.sip_tls_port, 5061);
    assert_int_equal(config_set(&c, "--sip-tls", "127.0.0.1:5071", err, sizeof err), 0);
    assert_string_equal(c.sip_tls_host, "127.0.0.1");
    assert_int_equal(c.sip_tls_port, 5071);
    assert_int_equal(config_set(&c, "sip_tls", "[::1]:5062", err, sizeof err), 0);
    assert_string_equal(c.sip_tls_host, "::1");
    assert_int_equal(c.sip_tls_port, 5062);
    assert_true(config_known("--sip-tls"));
    assert_true(config_known("tls"));
    /* plain SIP and HTTP untouched */
    assert_int_equal(c.sip_port, 5060);
    assert_int_equal(c.http_port, 8080);

    assert_int_equal(config_set(&c, "--https", ":8443", err, sizeof err), 0);
    assert_string_equal(c.https_host, "0.0.0.0");
    assert_int_equal(c.https_port, 8443);
    assert_int_equal(c.sip_tls_port, 5062);

    /* off, as a flag overriding the file would say it */
    assert_int_equal(config_set(&c, "--https", "off", err, sizeof err), 0);
    assert_int_equal(c.https_port, 0);
    assert_string_equal(c.https_host, "");
    assert_int_equal(config_set(&c, "tls", "off", err, sizeof err), 0);
    assert_int_equal(c.sip_tls_port, 0);

    assert_int_equal(config_set(&c, "--tls-cert", "/etc/sipbx/pbx.crt", err, sizeof err), 0);
    assert_string_equal(c.tls_cert, "/etc/sipbx/pbx.crt");
    assert_int_equal(config_set(&c, "tls_key", "/etc/sipbx/pbx.key", err, sizeof err), 0);
    assert_string_equal(c.tls_key, "/etc/sipbx/pbx.key");
    assert_int_equal(config_set(&c, "--https-cert", "/etc/sipbx/web.crt", err, sizeof err), 0);
    assert_string_equal(c.https_cert, "/etc/sipbx/web.crt");
    assert_int_equal(config_set(&c, "https_key", "/etc/sipbx/web.key", err, sizeof err), 0);
    assert_string_equal(c.https_key, "/etc/sipbx/web.key");
    assert_int_equal(config_set(&c, "--hsts-max-age", "0", err, sizeof err), 0);
    assert_int_equal(c.hsts_max_age, 0);

    expect_refused(&c, "--https", "8443", "https");
    expect_refused(&c, "https", "127.0.0.1:0", "https");
    expect_refused(&c, "https", "127.0.0.1:65536", "https");
    expect_refused(&c, "--sip-tls", "on", "tls");
    expect_refused(&c, "tls", "[::1]5061", "tls");
    expect_refused(&c, "hsts_max_age", "-1", "hsts_max_age");
    expect_refused(&c, "hsts_max_age", "63072001", "hsts_max_age");
    char long_value[CONFIG_STR_MAX + 10];
    memset(long_value, 'c', sizeof long_value - 1);
    long_value[sizeof long_value - 1] = '\0';
    expect_refused(&c, "tls_cert", long_value, "tls_cert");
}

static void test_parse_addr(void **state)
{
    (void)state;
    char host[64];
    int port = -1;

    assert_int_equal(config_parse_addr("127.0.0.1:5060", host, sizeof host, &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 5060);

    assert_int_equal(config_parse_addr("[::1]:5070", host, sizeof host, &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 5070);

    assert_int_equal(config_parse_addr(":8080", host, sizeof host, &port), 0);
    assert_string_equal(host, "0.0.0.0");
    assert_int_equal(port, 8080);

    assert_int_equal(config_parse_addr("pbx.example.com:0", host, sizeof host, &port), 0);
    assert_string_equal(host, "pbx.example.com");
    assert_int_equal(port, 0);

    assert_int_equal(config_parse_addr("10.0.0.1:65535", host, sizeof host, &port), 0);
    assert_int_equal(port, 65535);

    const char *bad[] = {"nohost",     "1.2.3.4:99999", "1.2.3.4:",  "1.2.3.4:65536",
                         "1.2.3.4:-1", "1.2.3.4:80x",   "1.2.3.4:x", "[::1]",
                         "[::1]5070",  "[::1:5070",     "",          ":"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(host, sizeof host, "untouched");
        port = 4242;
        if (config_parse_addr(bad[i], host, sizeof host, &port) != -1)
            fail_msg("'%s' was accepted", bad[i]);
        assert_string_equal(host, "untouched");
        assert_int_equal(port, 4242);
    }

    /* A host longer than the buffer is refused, not truncated. */
    char tiny[8];
    assert_int_equal(config_parse_addr("longhostname:80", tiny, sizeof tiny, &port), -1);
}

static void test_load_file(void **state)
{
    struct tmp *t = *state;
    write_file(t->path, "# sipbx test configuration\n"
                        "\n"
                        "db = /tmp/x.db\n"
                        "   domain=\"pbx.example.com\"   # quoted, trailing comment\n"
                        "sip = 127.0.0.1:5090\n"
                        "\thttp = [::1]:8090\t\n"
                        "ring_timeout = 25\n"
                        "# ring_timeout = 99\n"
                        "web_root = \"/srv/sipbx web\"\n"
                        "log_level = warn\n"
                        "tls = 0.0.0.0:5061\n"
                        "https = 0.0.0.0:8443\n"
                        "tls_cert = /etc/sipbx/pbx.crt\n"
                        "tls_key = /etc/sipbx/pbx.key\n");
    struct config c;
    char err[256] = "";
    config_defaults(&c);
    if (config_load_file(&c, t->path, err, sizeof err) != 0)
        fail_msg("load failed: %s", err);
    assert_string_equal(c.db_path, "/tmp/x.db");
    assert_string_equal(c.domain, "pbx.example.com");
    assert_int_equal(c.domain_given, 1);
    assert_string_equal(c.sip_host, "127.0.0.1");
    assert_int_equal(c.sip_port, 5090);
    assert_string_equal(c.http_host, "::1");
    assert_int_equal(c.http_port, 8090);
    assert_int_equal(c.ring_timeout, 25);
    assert_string_equal(c.web_root, "/srv/sipbx web");
    assert_int_equal(c.log_level, 1);
    assert_string_equal(c.sip_tls_host, "0.0.0.0");
    assert_int_equal(c.sip_tls_port, 5061);
    assert_string_equal(c.https_host, "0.0.0.0");
    assert_int_equal(c.https_port, 8443);
    assert_string_equal(c.tls_cert, "/etc/sipbx/pbx.crt");
    assert_string_equal(c.tls_key, "/etc/sipbx/pbx.key");

    /* Flags given after the file win. */
    assert_int_equal(config_set(&c, "--ring-timeout", "40", err, sizeof err), 0);
    assert_int_equal(c.ring_timeout, 40);
}

static void test_load_file_errors(void **state)
{
    struct tmp *t = *state;
    struct config c;
    char err[256], want[160];

    write_file(t->path, "# header\n"
                        "ring_timeout = 30\n"
                        "\n"
                        "ringtimeout = 30\n");
    config_defaults(&c);
    err[0] = '\0';
    assert_int_equal(config_load_file(&c, t->path, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s:4", t->path);
    if (!strstr(err, want) || !strstr(err, "ringtimeout"))
        fail_msg("unknown key: '%s' lacks '%s' or the key", err, want);

    write_file(t->path, "sip = 127.0.0.1:5060\n"
                        "nonce_ttl = forever\n");
    err[0] = '\0';
    assert_int_equal(config_load_file(&c, t->path, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s:2", t->path);
    if (!strstr(err, want) || !strstr(err, "nonce_ttl"))
        fail_msg("bad value: '%s' lacks '%s' or the key", err, want);

    write_file(t->path, "ring_timeout 30\n");
    err[0] = '\0';
    assert_int_equal(config_load_file(&c, t->path, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s:1", t->path);
    if (!strstr(err, want))
        fail_msg("no '=': '%s' lacks '%s'", err, want);

    char missing[160];
    snprintf(missing, sizeof missing, "%s/does-not-exist.conf", t->dir);
    err[0] = '\0';
    assert_int_equal(config_load_file(&c, missing, err, sizeof err), -1);
    if (!strstr(err, missing) || !strstr(err, "No such file"))
        fail_msg("missing file: '%s'", err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_set_by_key_and_flag),
        cmocka_unit_test(test_set_rejects),
        cmocka_unit_test(test_ban_settings),
        cmocka_unit_test(test_tls_settings),
        cmocka_unit_test(test_parse_addr),
        cmocka_unit_test_setup_teardown(test_load_file, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_load_file_errors, tmp_setup, tmp_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
