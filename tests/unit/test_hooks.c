/* Unit tests of server/hooks without a network: event names, backoff, signatures, secrets,
 * the URL check, and the intake that turns events into queued deliveries (on a fresh
 * database, as the writer would call it). The sending is tested end to end in
 * tests/api/test_webhooks.py. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "hooks/hooks_int.h"
#include "store/store.h"
#include "util/util.h"

#include <cjson/cJSON.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define START_US ((int64_t)1700000000 * 1000000)

static void test_event_names(void **state)
{
    (void)state;
    assert_int_equal(hooks_event_index("call.ended"), HOOKS_CALL_ENDED);
    assert_int_equal(hooks_event_index("user.changed"), HOOKS_USER_CHANGED);
    assert_int_equal(hooks_event_index("call.ringing"), -1); /* on the stream, not for hooks */
    assert_int_equal(hooks_event_index("ping"), -1);
    assert_int_equal(hooks_event_index(""), -1);
    for (int i = 0; i < HOOKS_EVENTS; i++)
        assert_int_equal(hooks_event_index(hooks_event_names[i]), i);
}

static void test_backoff(void **state)
{
    (void)state;
    static const int want[] = {5, 30, 120, 600, 1800, 3600, 10800};
    int total = 0;
    for (int n = 1; n < HOOKS_ATTEMPTS_MAX; n++) {
        assert_int_equal(hooks_backoff(n), want[n - 1]);
        total += hooks_backoff(n);
    }
    assert_int_equal(hooks_backoff(HOOKS_ATTEMPTS_MAX), 0); /* the last try: no more */
    assert_int_equal(hooks_backoff(0), 0);
    assert_int_equal(total, 16955); /* about 4 h 45 min, as the docs say */
}

static void test_sign(void **state)
{
    (void)state;
    /* RFC 4231, test case 2 */
    char sig[80];
    const char *data = "what do ya want for nothing?";
    hooks_sign("Jefe", data, strlen(data), sig, sizeof sig);
    assert_string_equal(sig,
                        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    /* Only len bytes count. */
    char sig2[80];
    hooks_sign("Jefe", "what do ya want for nothing?!", strlen(data), sig2, sizeof sig2);
    assert_string_equal(sig, sig2);
}

static void test_secret(void **state)
{
    (void)state;
    char a[HOOKS_SECRET_LEN], b[HOOKS_SECRET_LEN];
    assert_int_equal(hooks_secret_new(a), 0);
    assert_int_equal(hooks_secret_new(b), 0);
    assert_int_equal(strlen(a), HOOKS_SECRET_LEN - 1);
    assert_memory_equal(a, "whsec_", 6);
    assert_int_equal(strspn(a + 6, "0123456789abcdef"), 64);
    assert_string_not_equal(a, b);
}

static void test_url_check(void **state)
{
    (void)state;
    static const char *const good[] = {
        "http://127.0.0.1:9000/hook", "https://crm.example.com/pbx?key=1&x=%20",
        "HTTPS://CRM.EXAMPLE.COM/",   "http://[::1]:8080/",
        "http://user:pw@host/",       "https://host.example:8443"};
    static const char *const bad[] = {"",
                                      "ftp://example.com/",
                                      "file:///etc/passwd",
                                      "javascript:alert(1)",
                                      "http://",
                                      "https:///path",
                                      "http://exa mple.com/",
                                      "http:/x",
                                      "//example.com/",
                                      "example.com"};
    char why[160];
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (hooks_url_check(good[i], why, sizeof why) != 0)
            fail_msg("%s refused: %s", good[i], why);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why[0] = '\0';
        if (hooks_url_check(bad[i], why, sizeof why) == 0)
            fail_msg("%s accepted", bad[i]);
        assert_true(why[0] != '\0');
    }
    char longurl[STORE_WEBHOOK_URL_MAX + 16];
    snprintf(longurl, sizeof longurl, "http://x/");
    memset(longurl + 9, 'a', sizeof longurl - 10);
    longurl[sizeof longurl - 1] = '\0';
    assert_int_equal(hooks_url_check(longurl, why, sizeof why), -1);
    assert_non_null(strstr(why, "2048"));
}

/* ---- the intake, on a database ---- */

struct fixture {
    char dir[64], path[128];
    struct store *st;
    int64_t ended, users; /* webhooks: one for call.ended, one for user.changed + call.new */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/sipbx-hooks-XXXXXX");
    if (!f || !mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof f->path, "%s/sipbx.db", f->dir);
    char err[512];
    if (store_open(&f->st, f->path, STORE_CREATE | STORE_MIGRATE, err, sizeof err) != 0)
        return -1;
    struct store_webhook w;
    memset(&w, 0, sizeof w);
    snprintf(w.url, sizeof w.url, "http://127.0.0.1:9/a");
    snprintf(w.events, sizeof w.events, "call.ended");
    snprintf(w.secret, sizeof w.secret, "whsec_a");
    if (store_webhook_add(f->st, &w) != 0)
        return -1;
    f->ended = w.id;
    snprintf(w.events, sizeof w.events, "call.new,user.changed");
    if (store_webhook_add(f->st, &w) != 0)
        return -1;
    f->users = w.id;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    store_close(f->st);
    char p[200];
    static const char *const files[] = {"sipbx.db", "sipbx.db-wal", "sipbx.db-shm"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", f->dir, files[i]);
        unlink(p);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

/* The body of webhook_id's next delivery, parsed (NULL when it has none). */
static cJSON *next_body(struct fixture *f, int64_t webhook_id, struct store_delivery *d)
{
    if (store_delivery_next(f->st, webhook_id, INT64_MAX, d, NULL) != 0)
        return NULL;
    cJSON *o = cJSON_Parse(d->body);
    assert_non_null(o);
    free(d->body);
    d->body = NULL;
    /* delivered, so that the next one comes next */
    assert_int_equal(
        store_delivery_tried(f->st, d->id, START_US, STORE_DELIVERY_DELIVERED, 0, 204, ""), 0);
    return o;
}

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

static void check_envelope(const cJSON *body, const struct store_delivery *d, const char *type)
{
    assert_string_equal(str(body, "type"), type);
    assert_string_equal(str(body, "id"), d->event_id);
    assert_string_equal(d->event, type);
    regex_t re;
    assert_int_equal(
        regcomp(&re, "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
                REG_EXTENDED | REG_NOSUB),
        0);
    assert_int_equal(regexec(&re, d->event_id, 0, NULL, 0), 0);
    regfree(&re);
    assert_string_equal(str(body, "created_at"), "2023-11-14T22:13:20.000007Z");
    assert_int_equal(d->created_us, START_US + 7);
    assert_non_null(cJSON_GetObjectItemCaseSensitive(body, "data"));
}

static void test_call_ended_carries_the_record(void **state)
{
    struct fixture *f = *state;
    struct store_cdr c;
    memset(&c, 0, sizeof c);
    snprintf(c.call_id, sizeof c.call_id, "abc@host");
    snprintf(c.caller, sizeof c.caller, "100");
    snprintf(c.dialled, sizeof c.dialled, "101");
    snprintf(c.answered_by, sizeof c.answered_by, "101");
    snprintf(c.forwards, sizeof c.forwards, "[]");
    snprintf(c.disposition, sizeof c.disposition, "ANSWERED");
    snprintf(c.hangup_by, sizeof c.hangup_by, "caller");
    c.start_us = START_US;
    c.answer_us = START_US + 2000000;
    c.end_us = START_US + 62000000;
    c.duration = 62;
    c.billsec = 60;
    c.status = 200;
    assert_int_equal(store_cdr_save(f->st, &c), 0);
    char event[160];
    snprintf(event, sizeof event,
             "{\"call_id\":\"abc@host\",\"started_us\":%lld,\"state\":\"ended\"}",
             (long long)START_US);
    assert_int_equal(hooks_intake(f->st, "call.ended", event, START_US + 7, NULL), 0);

    struct store_delivery d;
    cJSON *body = next_body(f, f->ended, &d);
    assert_non_null(body);
    check_envelope(body, &d, "call.ended");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(body, "data");
    assert_string_equal(str(data, "call_id"), "abc@host");
    assert_string_equal(str(data, "disposition"), "ANSWERED");
    assert_string_equal(str(data, "start"), "2023-11-14T22:13:20.000000Z");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(data, "billsec")->valuedouble, 60);
    assert_true(cJSON_GetObjectItemCaseSensitive(data, "id")->valuedouble > 0);
    cJSON_Delete(body);
    /* Only the webhook that wants call.ended got it. */
    assert_null(next_body(f, f->users, &d));

    /* A call.ended whose record is not there is not sent (and fails nothing). */
    assert_int_equal(hooks_intake(f->st, "call.ended", "{\"call_id\":\"gone\",\"started_us\":1}",
                                  START_US, NULL),
                     0);
    assert_null(next_body(f, f->ended, &d));
}

static void test_user_changed_carries_the_user(void **state)
{
    struct fixture *f = *state;
    struct store_user u;
    memset(&u, 0, sizeof u);
    snprintf(u.extension, sizeof u.extension, "100");
    snprintf(u.display_name, sizeof u.display_name, "Alice");
    snprintf(u.ha1, sizeof u.ha1, "0123456789abcdef0123456789abcdef");
    snprintf(u.realm, sizeof u.realm, "r");
    u.enabled = 1;
    u.created_at = u.updated_at = 1700000000;
    assert_int_equal(store_user_add(f->st, &u), 0);
    assert_int_equal(hooks_intake(f->st, "user.changed",
                                  "{\"extension\":\"100\",\"change\":\"created\"}", START_US + 7,
                                  NULL),
                     0);
    struct store_delivery d;
    cJSON *body = next_body(f, f->users, &d);
    assert_non_null(body);
    check_envelope(body, &d, "user.changed");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(body, "data");
    assert_string_equal(str(data, "change"), "created");
    const cJSON *user = cJSON_GetObjectItemCaseSensitive(data, "user");
    assert_string_equal(str(user, "display_name"), "Alice");
    assert_null(cJSON_GetObjectItemCaseSensitive(user, "ha1")); /* never the digest */
    cJSON_Delete(body);

    assert_int_equal(store_user_delete(f->st, "100"), 0);
    assert_int_equal(hooks_intake(f->st, "user.changed",
                                  "{\"extension\":\"100\",\"change\":\"deleted\"}", START_US + 7,
                                  NULL),
                     0);
    body = next_body(f, f->users, &d);
    assert_non_null(body);
    data = cJSON_GetObjectItemCaseSensitive(body, "data");
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(data, "user")));
    cJSON_Delete(body);
}

static void test_other_events_as_the_stream_has_them(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(
        hooks_intake(f->st, "call.new", "{\"id\":7,\"state\":\"trying\"}", START_US + 7, NULL), 0);
    struct store_delivery d;
    cJSON *body = next_body(f, f->users, &d);
    assert_non_null(body);
    check_envelope(body, &d, "call.new");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(body, "data");
    assert_string_equal(str(data, "state"), "trying");
    cJSON_Delete(body);
    /* Not JSON: dropped (logged), without failing the writer's batch. */
    assert_int_equal(hooks_intake(f->st, "call.new", "{not json", START_US, NULL), 0);
    assert_null(next_body(f, f->users, &d));
    /* Nobody wants registration.changed here. */
    assert_int_equal(
        hooks_intake(f->st, "registration.changed", "{\"extension\":\"100\"}", START_US, NULL), 0);
    assert_null(next_body(f, f->users, &d));
    assert_null(next_body(f, f->ended, &d));
}

static void test_wanted(void **state)
{
    struct fixture *f = *state;
    int want = hooks_read_wanted(f->st);
    assert_int_equal(want,
                     (1 << HOOKS_CALL_ENDED) | (1 << HOOKS_CALL_NEW) | (1 << HOOKS_USER_CHANGED));
    assert_int_equal(store_webhook_delete(f->st, f->ended), 0);
    assert_int_equal(hooks_read_wanted(f->st), (1 << HOOKS_CALL_NEW) | (1 << HOOKS_USER_CHANGED));
}

int main(void)
{
    log_set_level(LOGL_ERROR); /* the intake's warnings are expected here */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_names),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_sign),
        cmocka_unit_test(test_secret),
        cmocka_unit_test(test_url_check),
        cmocka_unit_test_setup_teardown(test_call_ended_carries_the_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_user_changed_carries_the_user, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_events_as_the_stream_has_them, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wanted, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
