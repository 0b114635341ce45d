/* Unit tests of server/events: the ring's subscribers (their cursor, what they missed)
 * and its listeners, which are told of each event as it is published. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "events/events.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct heard {
    int n;
    char last[64];
};

static void listen_one(void *ctx, const char *type, const char *json)
{
    struct heard *h = ctx;
    h->n++;
    snprintf(h->last, sizeof h->last, "%s %s", type, json);
}

static void test_listeners(void **state)
{
    (void)state;
    struct events *ev = NULL;
    assert_int_equal(events_create(&ev, 4), 0);
    struct heard a = {0}, b = {0}, c = {0};
    assert_int_equal(events_add_listener(ev, listen_one, &a), 0);
    assert_int_equal(events_add_listener(ev, listen_one, &b), 0);
    events_publish(ev, "call.new", "{\"id\":1}");
    assert_int_equal(a.n, 1);
    assert_int_equal(b.n, 1);
    assert_string_equal(a.last, "call.new {\"id\":1}");

    /* One removed, the others still told; one added later hears only what comes after. */
    events_remove_listener(ev, listen_one, &a);
    assert_int_equal(events_add_listener(ev, listen_one, &c), 0);
    events_publish(ev, "user.changed", "{}");
    assert_int_equal(a.n, 1);
    assert_int_equal(b.n, 2);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.last, "user.changed {}");

    /* At most EVENTS_LISTENERS_MAX. */
    struct heard more[EVENTS_LISTENERS_MAX];
    int added = 0;
    for (int i = 0; i < EVENTS_LISTENERS_MAX; i++)
        added += events_add_listener(ev, listen_one, &more[i]) == 0;
    assert_int_equal(added, EVENTS_LISTENERS_MAX - 2);
    assert_int_equal(events_add_listener(ev, listen_one, &a), ENOSPC);

    /* Subscribers read the same events, listeners or not. */
    uint64_t cursor = 0, missed = 0;
    char *type = NULL, *json = NULL;
    assert_int_equal(events_next(ev, &cursor, 0, &type, &json, &missed), 1);
    assert_string_equal(type, "call.new");
    assert_int_equal(missed, 0);
    free(type);
    free(json);
    assert_int_equal(events_count(ev), 2);
    events_destroy(ev);
}

static void test_ring_overflow(void **state)
{
    (void)state;
    struct events *ev = NULL;
    assert_int_equal(events_create(&ev, 4), 0);
    char json[16];
    for (int i = 1; i <= 6; i++) {
        snprintf(json, sizeof json, "%d", i);
        events_publish(ev, "e", json);
    }
    uint64_t cursor = 0, missed = 0;
    char *type = NULL, *text = NULL;
    assert_int_equal(events_next(ev, &cursor, 0, &type, &text, &missed), 1);
    assert_int_equal(missed, 2); /* 1 and 2 were overwritten */
    assert_string_equal(text, "3");
    free(type);
    free(text);
    cursor = events_head(ev);
    assert_int_equal(events_next(ev, &cursor, 10, &type, &text, &missed), 0);
    events_close(ev);
    assert_int_equal(events_next(ev, &cursor, 10, &type, &text, &missed), -1);
    events_destroy(ev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listeners),
        cmocka_unit_test(test_ring_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
