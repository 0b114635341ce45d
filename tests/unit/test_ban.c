/* Unit tests of the sip module's ban table (sip/ban.h): counting failed digests per
 * address over a sliding window, blocks, their doubling and cap, trusted networks, lifting,
 * restoring, the per-extension view and the change callback. The clock is the now argument
 * every call takes, so time is whatever the test says. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "sip/ban.h"
#include "util/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T0 ((int64_t)1700000000)

/* What the change callback saw. */
struct changes {
    int started, ended;
    struct ban_info last;
};

static void on_change(void *ctx, const struct ban_info *info, int active)
{
    struct changes *c = ctx;
    if (active)
        c->started++;
    else
        c->ended++;
    c->last = *info;
}

struct fixture {
    struct ban *b;
    struct changes ch;
    struct util_net trusted[2];
};

/* Defaults of the daemon: 10 failures in 60 s, 600 s doubling up to a day; trusted is
 * 10.0.0.0/8 and 2001:db8::/32 here. */
static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    size_t n;
    char err[128];
    if (!f ||
        util_net_parse_list("10.0.0.0/8 2001:db8::/32", f->trusted, 2, &n, err, sizeof err) != 0)
        return -1;
    struct ban_config c = {10, 60, 600, 86400, f->trusted, n};
    if (ban_create(&f->b, &c, on_change, &f->ch) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    ban_destroy(f->b);
    free(f);
    return 0;
}

/* n failures from source for user at now; returns the last verdict. */
static enum ban_verdict fail_n(struct fixture *f, const char *source, const char *user, int n,
                               int64_t now)
{
    enum ban_verdict v = BAN_COUNTED;
    for (int i = 0; i < n; i++)
        v = ban_failure(f->b, source, user, now);
    return v;
}

static void test_blocks_after_n_in_window(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(fail_n(f, "192.0.2.7", "100", 9, T0), BAN_COUNTED);
    assert_false(ban_blocked(f->b, "192.0.2.7", T0));
    assert_int_equal(ban_failure(f->b, "192.0.2.7", "100", T0 + 59), BAN_STARTED);
    assert_true(ban_blocked(f->b, "192.0.2.7", T0 + 59));
    assert_int_equal(f->ch.started, 1);
    assert_string_equal(f->ch.last.source, "192.0.2.7");
    assert_int_equal(f->ch.last.since, T0 + 59);
    assert_int_equal(f->ch.last.until, T0 + 59 + 600);
    assert_int_equal(f->ch.last.offences, 1);
    assert_int_equal(f->ch.last.failures, 10);
    /* another address is not affected */
    assert_false(ban_blocked(f->b, "192.0.2.8", T0 + 59));
    struct ban_stats st;
    ban_stats(f->b, &st);
    assert_int_equal(st.blocked, 1);
    assert_int_equal(st.blocks_total, 1);
    assert_int_equal(st.dropped_total, 1); /* the ban_blocked above that said yes */
}

/* The window slides: 10 failures spread over more than 60 s never block, however many. */
static void test_slow_guessing_not_blocked(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 100; i++)
        assert_int_equal(ban_failure(f->b, "192.0.2.7", "100", T0 + i * 7), BAN_COUNTED);
    assert_false(ban_blocked(f->b, "192.0.2.7", T0 + 700));
    /* ... but the 10 most recent within 60 s do: 10 quick ones after a slow run (the last
     * slow one, at T0 + 693, is out of their window) */
    assert_int_equal(fail_n(f, "192.0.2.7", "100", 9, T0 + 800), BAN_COUNTED);
    assert_int_equal(ban_failure(f->b, "192.0.2.7", "100", T0 + 801), BAN_STARTED);
}

static void test_block_expires_and_doubles(void **state)
{
    struct fixture *f = *state;
    fail_n(f, "192.0.2.7", "100", 10, T0);
    ban_tick(f->b, T0 + 599);
    assert_true(ban_blocked(f->b, "192.0.2.7", T0 + 599));
    ban_tick(f->b, T0 + 600);
    assert_false(ban_blocked(f->b, "192.0.2.7", T0 + 600));
    assert_int_equal(f->ch.ended, 1);

    /* a repeat within a day: 1200 s, then 2400 s ... capped at 86400 */
    int64_t t = T0 + 700;
    int64_t want[] = {1200, 2400, 4800, 9600, 19200, 38400, 76800, 86400, 86400};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        assert_int_equal(fail_n(f, "192.0.2.7", "100", 10, t), BAN_STARTED);
        assert_int_equal(f->ch.last.until - f->ch.last.since, want[i]);
        assert_int_equal(f->ch.last.offences, (int)i + 2);
        t = f->ch.last.until;
        ban_tick(f->b, t);
        assert_false(ban_blocked(f->b, "192.0.2.7", t));
        t += 10;
    }
}

/* A day after the last block ended, an address starts again from a first block. */
static void test_offences_forgotten(void **state)
{
    struct fixture *f = *state;
    fail_n(f, "192.0.2.7", "100", 10, T0);
    ban_tick(f->b, T0 + 600);
    int64_t t = T0 + 600 + 86400;
    ban_tick(f->b, t); /* forgets the address altogether */
    assert_int_equal(fail_n(f, "192.0.2.7", "100", 10, t), BAN_STARTED);
    assert_int_equal(f->ch.last.offences, 1);
    assert_int_equal(f->ch.last.until - f->ch.last.since, 600);
}

static void test_trusted_never_blocked(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(fail_n(f, "10.1.2.3", "100", 50, T0), BAN_TRUSTED);
    assert_false(ban_blocked(f->b, "10.1.2.3", T0));
    assert_int_equal(fail_n(f, "2001:db8::5", "100", 50, T0), BAN_TRUSTED);
    assert_false(ban_blocked(f->b, "2001:db8::5", T0));
    assert_int_equal(f->ch.started, 0);
    /* just outside the networks */
    assert_int_equal(fail_n(f, "11.0.0.1", "100", 10, T0), BAN_STARTED);
    assert_int_equal(fail_n(f, "2001:db9::5", "100", 10, T0), BAN_STARTED);
    struct util_addr a;
    assert_int_equal(util_addr_parse("::ffff:10.9.9.9", &a), 0);
    assert_true(ban_trusted(f->b, &a));
}

/* Per address: unknown and known extensions count alike, and a block of one address leaves
 * the extension usable from another. */
static void test_per_source_any_extension(void **state)
{
    struct fixture *f = *state;
    fail_n(f, "192.0.2.7", "100", 5, T0);
    assert_int_equal(fail_n(f, "192.0.2.7", "no-such-user", 5, T0), BAN_STARTED);
    assert_string_equal(f->ch.last.users, "no-such-user,100");
    assert_false(ban_blocked(f->b, "192.0.2.99", T0));

    struct ban_target t[4];
    assert_int_equal(ban_targets(f->b, T0, t, 4), 2);
    assert_int_equal(t[0].failures, 5);
    assert_int_equal(t[0].sources, 1);
    assert_string_equal(t[0].last_source, "192.0.2.7");
}

/* An extension attacked from many addresses is watched, never locked: every address gets
 * its own block, and the extension counts them all. */
static void test_extension_many_sources(void **state)
{
    struct fixture *f = *state;
    char src[32];
    for (int i = 0; i < 20; i++) {
        snprintf(src, sizeof src, "198.51.100.%d", i + 1);
        assert_int_equal(fail_n(f, src, "100", 9, T0 + 1), BAN_COUNTED);
    }
    struct ban_target t[2];
    assert_int_equal(ban_targets(f->b, T0 + 1, t, 2), 1);
    assert_string_equal(t[0].user, "100");
    assert_int_equal(t[0].failures, 180);
    assert_int_equal(t[0].sources, 16); /* counted up to 16 */
    ban_tick(f->b, T0 + 2);
    struct ban_stats st;
    ban_stats(f->b, &st);
    assert_int_equal(st.targets, 1);
    assert_int_equal(st.blocked, 0);
    /* the window ends: the extension's count is gone */
    ban_tick(f->b, T0 + 61);
    assert_int_equal(ban_targets(f->b, T0 + 61, t, 2), 0);
    ban_stats(f->b, &st);
    assert_int_equal(st.targets, 0);
}

static void test_lift(void **state)
{
    struct fixture *f = *state;
    fail_n(f, "192.0.2.7", "100", 10, T0);
    assert_int_equal(ban_lift(f->b, "192.0.2.8", 0, "test", T0), ENOENT);
    /* a lift of another (older) block of the same address does nothing */
    assert_int_equal(ban_lift(f->b, "192.0.2.7", T0 - 5, "test", T0), ENOENT);
    assert_true(ban_blocked(f->b, "192.0.2.7", T0 + 1));
    assert_int_equal(ban_lift(f->b, "192.0.2.7", T0, "test", T0 + 2), 0);
    assert_false(ban_blocked(f->b, "192.0.2.7", T0 + 2));
    assert_int_equal(f->ch.ended, 1);
    assert_int_equal(f->ch.last.dropped, 1);
    assert_int_equal(ban_lift(f->b, "192.0.2.7", 0, "test", T0 + 2), ENOENT);
    /* counting starts afresh, and the next block is a first one again */
    assert_int_equal(fail_n(f, "192.0.2.7", "100", 9, T0 + 3), BAN_COUNTED);
    assert_int_equal(ban_failure(f->b, "192.0.2.7", "100", T0 + 3), BAN_STARTED);
    assert_int_equal(f->ch.last.offences, 1);
}

static void test_restore_and_list(void **state)
{
    struct fixture *f = *state;
    struct ban_info in = {0};
    snprintf(in.source, sizeof in.source, "[2001:DB9:0::1]");
    snprintf(in.reason, sizeof in.reason, "10 failed digest checks in 60 s");
    snprintf(in.users, sizeof in.users, "101,100");
    in.failures = 10;
    in.offences = 2;
    in.since = T0 - 100;
    in.until = T0 + 1100;
    assert_int_equal(ban_restore(f->b, &in, T0), 0);
    assert_true(ban_blocked(f->b, "2001:db9::1", T0));
    /* expired or trusted ones are skipped, garbage refused */
    struct ban_info old = in;
    snprintf(old.source, sizeof old.source, "192.0.2.1");
    old.until = T0;
    assert_int_equal(ban_restore(f->b, &old, T0), ENOENT);
    assert_false(ban_blocked(f->b, "192.0.2.1", T0));
    snprintf(old.source, sizeof old.source, "10.0.0.1");
    old.until = T0 + 100;
    assert_int_equal(ban_restore(f->b, &old, T0), ENOENT);
    assert_false(ban_blocked(f->b, "10.0.0.1", T0));
    snprintf(old.source, sizeof old.source, "not-an-address");
    assert_int_equal(ban_restore(f->b, &old, T0), EINVAL);

    fail_n(f, "192.0.2.7", "100", 10, T0 + 5);
    struct ban_info out[4];
    assert_int_equal(ban_list(f->b, T0 + 5, out, 4), 2);
    assert_string_equal(out[0].source, "192.0.2.7"); /* newest first */
    assert_string_equal(out[1].source, "2001:db9::1");
    assert_int_equal(out[1].offences, 2);
    assert_string_equal(out[1].users, "101,100");
    assert_int_equal(ban_list(f->b, T0 + 5, out, 1), 1);
    /* a restored repeat offender's next block doubles again after this one */
    ban_tick(f->b, T0 + 1100); /* both blocks are over */
    assert_int_equal(f->ch.ended, 2);
    assert_int_equal(fail_n(f, "2001:db9::1", "100", 10, T0 + 1200), BAN_STARTED);
    assert_int_equal(f->ch.last.offences, 3);
    assert_int_equal(f->ch.last.until - f->ch.last.since, 2400);
}

/* failures 0 switches blocking off; counting (the log, the extensions) goes on. */
static void test_off(void **state)
{
    (void)state;
    struct ban *b;
    struct ban_config c = {0, 60, 600, 86400, NULL, 0};
    assert_int_equal(ban_create(&b, &c, NULL, NULL), 0);
    for (int i = 0; i < 100; i++)
        assert_int_equal(ban_failure(b, "192.0.2.7", "100", T0), BAN_COUNTED);
    assert_false(ban_blocked(b, "192.0.2.7", T0));
    struct ban_target t[1];
    assert_int_equal(ban_targets(b, T0, t, 1), 1);
    assert_int_equal(t[0].failures, 100);
    ban_destroy(b);
}

static void test_net_parse(void **state)
{
    (void)state;
    struct util_net n[4];
    size_t count;
    char err[128];
    assert_int_equal(
        util_net_parse_list("127.0.0.0/8, ::1 ,10.1.0.0/16", n, 4, &count, err, sizeof err), 0);
    assert_int_equal(count, 3);
    assert_int_equal(n[1].prefix, 128);
    assert_int_equal(util_net_parse_list("none", n, 4, &count, err, sizeof err), 0);
    assert_int_equal(count, 0);
    assert_int_equal(util_net_parse_list("", n, 4, &count, err, sizeof err), 0);
    assert_int_equal(count, 0);
    assert_int_equal(util_net_parse_list("10.0.0.0/33", n, 4, &count, err, sizeof err), EINVAL);
    assert_non_null(strstr(err, "10.0.0.0/33"));
    assert_int_equal(util_net_parse_list("pbx.example.org", n, 4, &count, err, sizeof err), EINVAL);
    assert_int_equal(util_net_parse_list("10.0.0.0/x", n, 4, &count, err, sizeof err), EINVAL);
    assert_int_equal(util_net_parse_list("1.1.1.1 2.2.2.2", n, 1, &count, err, sizeof err), E2BIG);

    struct util_addr a;
    char text[UTIL_ADDR_STRLEN];
    assert_int_equal(util_addr_parse("2001:0DB8:0000::0001", &a), 0);
    util_addr_format(&a, text, sizeof text);
    assert_string_equal(text, "2001:db8::1");
    assert_int_equal(util_addr_parse("::ffff:192.0.2.1", &a), 0);
    util_addr_format(&a, text, sizeof text);
    assert_string_equal(text, "192.0.2.1");
    assert_int_equal(util_addr_parse("192.0.2.1:5060", &a), EINVAL);
    assert_int_equal(util_net_parse_list("10.1.0.0/15", n, 4, &count, err, sizeof err), 0);
    assert_int_equal(util_addr_parse("10.0.255.255", &a), 0);
    assert_true(util_net_contains(&n[0], &a));
    assert_int_equal(util_addr_parse("10.2.0.0", &a), 0);
    assert_false(util_net_contains(&n[0], &a));
}

int main(void)
{
    log_set_level(LOGL_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_blocks_after_n_in_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_guessing_not_blocked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_block_expires_and_doubles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offences_forgotten, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trusted_never_blocked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_per_source_any_extension, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extension_many_sources, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lift, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_and_list, setup, teardown),
        cmocka_unit_test(test_off),
        cmocka_unit_test(test_net_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
