/* Unit tests of server/store/records.c: listing call records (newest first, filters, the
 * keyset cursor, open records left out), counting them per bucket and disposition, and
 * reading traces. Each test gets a fresh database in its own temporary directory. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define T0   ((int64_t)1735689600 * 1000000) /* 2025-01-01 00:00:00 UTC */
#define HOUR ((int64_t)3600 * 1000000)

static const char *const dispositions[] = {"ANSWERED", "BUSY", "NO ANSWER", "CANCELLED", "FAILED"};

struct fixture {
    char dir[64];
    struct store *st;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/sipbx-records-XXXXXX");
    char path[128], err[512] = "";
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(path, sizeof path, "%s/sipbx.db", f->dir);
    if (store_open(&f->st, path, STORE_CREATE | STORE_MIGRATE, err, sizeof err) != 0) {
        fprintf(stderr, "setup: %s\n", err);
        rmdir(f->dir);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    store_close(f->st);
    DIR *d = opendir(f->dir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d)) != NULL) {
        snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name);
        if (e->d_name[0] != '.')
            unlink(p);
    }
    if (d)
        closedir(d);
    int rc = rmdir(f->dir);
    free(f);
    return rc;
}

/* Record i of the fixture set: one every 20 minutes from T0, dispositions in turn, callers
 * 100 and 102 alternating, every 7th dialling 103 (else 101). */
static void add(struct store *st, int i, int open)
{
    struct store_cdr c;
    memset(&c, 0, sizeof c);
    snprintf(c.call_id, sizeof c.call_id, "call-%03d@test", i);
    snprintf(c.caller, sizeof c.caller, "%s", i % 2 ? "102" : "100");
    snprintf(c.dialled, sizeof c.dialled, "%s", i % 7 ? "101" : "103");
    snprintf(c.disposition, sizeof c.disposition, "%s", dispositions[i % 5]);
    c.start_us = T0 + (int64_t)i * 20 * 60 * 1000000;
    if (i % 5 == 0) {
        c.answer_us = c.start_us + 1000000;
        snprintf(c.answered_by, sizeof c.answered_by, "%s", c.dialled);
    }
    c.end_us = open ? 0 : c.start_us + 5000000;
    c.open = open;
    assert_int_equal(store_cdr_save(st, &c), 0);
}

struct seen {
    int n;
    char ids[100][256];
    int64_t start[100], id[100];
};

static int collect(const struct store_cdr *c, void *ctx)
{
    struct seen *s = ctx;
    assert_true(s->n < 100);
    snprintf(s->ids[s->n], sizeof s->ids[0], "%s", c->call_id);
    s->start[s->n] = c->start_us;
    s->id[s->n] = c->id;
    s->n++;
    return 0;
}

static void test_list_newest_first_without_open(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 30; i++)
        add(f->st, i, 0);
    add(f->st, 30, 1); /* a call still up */
    struct store_cdr_filter flt;
    memset(&flt, 0, sizeof flt);
    struct seen s = {0};
    assert_int_equal(store_cdr_list(f->st, &flt, 0, collect, &s), 0);
    assert_int_equal(s.n, 30);
    assert_string_equal(s.ids[0], "call-029@test");
    assert_string_equal(s.ids[29], "call-000@test");
}

static void test_list_cursor_walks_every_record_once(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 23; i++)
        add(f->st, i, 0);
    struct store_cdr_filter flt;
    memset(&flt, 0, sizeof flt);
    int total = 0, expect = 22;
    for (;;) {
        struct seen s = {0};
        assert_int_equal(store_cdr_list(f->st, &flt, 5, collect, &s), 0);
        for (int k = 0; k < s.n; k++) {
            char want[32];
            snprintf(want, sizeof want, "call-%03d@test", expect--);
            assert_string_equal(s.ids[k], want);
        }
        total += s.n;
        if (s.n < 5)
            break;
        flt.before_start_us = s.start[s.n - 1];
        flt.before_id = s.id[s.n - 1];
    }
    assert_int_equal(total, 23);
}

static void test_list_filters(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 35; i++)
        add(f->st, i, 0);
    struct store_cdr_filter flt;
    memset(&flt, 0, sizeof flt);
    struct seen s = {0};

    snprintf(flt.ext, sizeof flt.ext, "103"); /* dialled: 0, 7, 14, 21, 28 */
    assert_int_equal(store_cdr_list(f->st, &flt, 0, collect, &s), 0);
    assert_int_equal(s.n, 5);
    assert_string_equal(s.ids[0], "call-028@test");

    memset(&s, 0, sizeof s);
    snprintf(flt.disposition, sizeof flt.disposition, "ANSWERED"); /* and i % 5 == 0 */
    assert_int_equal(store_cdr_list(f->st, &flt, 0, collect, &s), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.ids[0], "call-000@test");

    memset(&flt, 0, sizeof flt);
    memset(&s, 0, sizeof s);
    flt.since_us = T0 + 2 * HOUR; /* i = 6 .. 8 */
    flt.until_us = T0 + 3 * HOUR;
    assert_int_equal(store_cdr_list(f->st, &flt, 0, collect, &s), 0);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.ids[0], "call-008@test");
    assert_string_equal(s.ids[2], "call-006@test");
}

struct counts {
    int64_t n[8][5];
    int64_t first;
};

static int count(int64_t bucket, const char *disposition, int64_t n, void *ctx)
{
    struct counts *c = ctx;
    int64_t b = (bucket - c->first) / HOUR;
    assert_true(b >= 0 && b < 8);
    assert_int_equal((bucket - c->first) % HOUR, 0);
    for (int d = 0; d < 5; d++)
        if (strcmp(disposition, dispositions[d]) == 0)
            c->n[b][d] += n;
    return 0;
}

static void test_summary(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 24; i++) /* 8 hours, 3 per hour */
        add(f->st, i, 0);
    add(f->st, 24, 1); /* open: not counted */
    struct store_cdr_filter flt;
    memset(&flt, 0, sizeof flt);
    flt.since_us = T0;
    flt.until_us = T0 + 9 * HOUR;
    struct counts c;
    memset(&c, 0, sizeof c);
    c.first = T0;
    assert_int_equal(store_cdr_summary(f->st, &flt, HOUR, count, &c), 0);
    for (int i = 0; i < 24; i++)
        c.n[i / 3][i % 5]--;
    for (int b = 0; b < 8; b++)
        for (int d = 0; d < 5; d++)
            assert_int_equal(c.n[b][d], 0);

    /* with an extension: only 102's calls (odd i) */
    snprintf(flt.ext, sizeof flt.ext, "102");
    memset(&c, 0, sizeof c);
    c.first = T0;
    assert_int_equal(store_cdr_summary(f->st, &flt, HOUR, count, &c), 0);
    int64_t total = 0;
    for (int b = 0; b < 8; b++)
        for (int d = 0; d < 5; d++)
            total += c.n[b][d];
    assert_int_equal(total, 12);
    assert_int_equal(store_cdr_summary(f->st, &flt, 0, count, &c), EINVAL);
}

static int no_trace(const struct store_trace *t, void *ctx)
{
    (void)t;
    (void)ctx;
    return 0;
}

static void test_trace_missing_is_enoent(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(store_trace_list(f->st, "nobody@test", no_trace, NULL), ENOENT);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_list_newest_first_without_open),
        T(test_list_cursor_walks_every_record_once),
        T(test_list_filters),
        T(test_summary),
        T(test_trace_missing_is_enoent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
