/* Unit tests of sip_execute and sip_barrier (server/sip/agent.c): calls from another thread
 * into the SIP loop have a deadline. A loop that is not running stands for a stalled one
 * (the caller cannot tell the two apart): the call gives up after SIP_EXECUTE_TIMEOUT_MS
 * and its function never runs, not even when the loop runs again later; a running loop
 * answers at once, in order; a function that has started is waited for. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "config/config.h"
#include "sip/sip.h"
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct fixture {
    char dir[64];
    struct store *st;
    struct store_writer *w;
    struct sip *sip;
    pthread_t sip_thread;     /* the thread that made the SIP side and runs its loop */
    useconds_t stop_after_ms; /* run_loop_for: when to stop the loop */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    char path[128], err[512] = "";
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/sipbx-exec-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(path, sizeof path, "%s/sipbx.db", f->dir);
    struct config cfg;
    config_defaults(&cfg);
    snprintf(cfg.sip_host, sizeof cfg.sip_host, "127.0.0.1");
    cfg.sip_port = 0;
    cfg.trace = 0;
    unsigned char secret[SIP_SECRET_LEN] = {1};
    if (sip_init() != 0 ||
        store_open(&f->st, path, STORE_CREATE | STORE_MIGRATE, err, sizeof err) != 0 ||
        store_writer_create(&f->w, path, err, sizeof err) != 0 ||
        sip_create(&f->sip, &cfg, "127.0.0.1", secret, NULL, f->st, f->w, err, sizeof err) != 0) {
        fprintf(stderr, "setup: %s\n", err);
        return -1;
    }
    f->sip_thread = pthread_self();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    sip_destroy(f->sip);
    sip_deinit();
    store_writer_destroy(f->w);
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
    rmdir(f->dir);
    free(f);
    return 0;
}

/* ---- functions run on the SIP thread ---- */

struct probe {
    struct fixture *f;
    atomic_int ran;       /* how often it ran */
    atomic_int on_sip;    /* it ran on the SIP thread */
    int sleep_ms;         /* how long it takes */
    int value;            /* what it returns */
    atomic_int *sequence; /* a counter shared by several probes, for their order */
    int position;         /* the sequence value when this one ran */
};

static int probe_fn(void *arg)
{
    struct probe *p = arg;
    atomic_fetch_add(&p->ran, 1);
    atomic_store(&p->on_sip, pthread_equal(pthread_self(), p->f->sip_thread));
    if (p->sequence)
        p->position = atomic_fetch_add(p->sequence, 1);
    if (p->sleep_ms)
        usleep((useconds_t)p->sleep_ms * 1000);
    return p->value;
}

static int stop_fn(void *arg)
{
    sip_stop(((struct fixture *)arg)->sip);
    return 0;
}

/* Stops the loop from another thread, trying again while the loop is too busy to take
 * the request in time (as serve.c does). */
static void *stopper_thread(void *arg)
{
    struct fixture *f = arg;
    usleep(f->stop_after_ms * 1000);
    while (sip_execute(f->sip, stop_fn, f) != 0)
        ;
    return NULL;
}

/* ---- the calling thread ---- */

struct call {
    struct fixture *f;
    int (*fn)(void *);
    void *arg;
    int delay_ms; /* before calling */
    int barrier;  /* call sip_barrier instead */
    int ret, err;
    int64_t took_ms;
    pthread_t thread;
};

static void *call_thread(void *arg)
{
    struct call *c = arg;
    if (c->delay_ms)
        usleep((useconds_t)c->delay_ms * 1000);
    int64_t t0 = now_ms();
    errno = 0;
    c->ret = c->barrier ? sip_barrier(c->f->sip) : sip_execute(c->f->sip, c->fn, c->arg);
    c->err = errno;
    c->took_ms = now_ms() - t0;
    return NULL;
}

static void start(struct call *c)
{
    assert_int_equal(pthread_create(&c->thread, NULL, call_thread, c), 0);
}

static void finish(struct call *c)
{
    assert_int_equal(pthread_join(c->thread, NULL), 0);
}

/* Runs the loop on this (the SIP) thread until another thread stops it, from delay_ms on. */
static void run_loop_for(struct fixture *f, int delay_ms)
{
    pthread_t t;
    f->stop_after_ms = (useconds_t)delay_ms;
    assert_int_equal(pthread_create(&t, NULL, stopper_thread, f), 0);
    sip_run(f->sip);
    assert_int_equal(pthread_join(t, NULL), 0);
}

static void test_stalled_loop_gives_up(void **state)
{
    struct fixture *f = *state;
    struct probe p = {.f = f, .value = 7};
    struct call c = {.f = f, .fn = probe_fn, .arg = &p};
    start(&c); /* the loop does not run: nothing takes the request */
    finish(&c);
    assert_int_equal(c.ret, -1);
    assert_int_equal(c.err, ETIMEDOUT);
    assert_true(c.took_ms >= SIP_EXECUTE_TIMEOUT_MS - 50);
    assert_true(c.took_ms < SIP_EXECUTE_TIMEOUT_MS + 1500);
    /* The loop runs again and handles its queue: the withdrawn call is skipped (its arg
     * would be gone in real use), the stopper after it runs. */
    run_loop_for(f, 0);
    assert_int_equal(atomic_load(&p.ran), 0);
}

static void test_barrier_of_a_stalled_loop(void **state)
{
    struct fixture *f = *state;
    struct call c = {.f = f, .barrier = 1};
    start(&c);
    finish(&c);
    assert_int_equal(c.ret, -1);
    assert_int_equal(c.err, ETIMEDOUT);
    run_loop_for(f, 0);
}

static void test_running_loop_answers(void **state)
{
    struct fixture *f = *state;
    atomic_int seq = 0;
    struct probe a = {.f = f, .value = 42, .sequence = &seq};
    struct probe b = {.f = f, .value = 0, .sequence = &seq};
    struct call ca = {.f = f, .fn = probe_fn, .arg = &a, .delay_ms = 100};
    struct call cb = {.f = f, .fn = probe_fn, .arg = &b, .delay_ms = 200};
    struct call bar = {.f = f, .barrier = 1, .delay_ms = 300};
    start(&ca);
    start(&cb);
    start(&bar);
    run_loop_for(f, 600);
    finish(&ca);
    finish(&cb);
    finish(&bar);
    assert_int_equal(ca.ret, 42);
    assert_int_equal(cb.ret, 0);
    assert_int_equal(bar.ret, 0);
    assert_true(ca.took_ms < 1000 && cb.took_ms < 1000 && bar.took_ms < 1000);
    assert_int_equal(atomic_load(&a.ran), 1);
    assert_true(atomic_load(&a.on_sip));
    assert_true(atomic_load(&b.on_sip));
    assert_int_equal(a.position, 0); /* in the order they were sent */
    assert_int_equal(b.position, 1);
}

static void test_started_call_is_waited_for(void **state)
{
    /* Once the SIP thread has taken the request, the caller waits for the function even
     * past the deadline: the function works on the caller's data. */
    struct fixture *f = *state;
    struct probe p = {.f = f, .value = 5, .sleep_ms = SIP_EXECUTE_TIMEOUT_MS + 500};
    struct call c = {.f = f, .fn = probe_fn, .arg = &p, .delay_ms = 50};
    start(&c);
    run_loop_for(f, 200);
    finish(&c);
    assert_int_equal(c.ret, 5);
    assert_int_equal(atomic_load(&p.ran), 1);
    assert_true(c.took_ms >= SIP_EXECUTE_TIMEOUT_MS + 400);
}

static void test_on_the_sip_thread(void **state)
{
    /* Called on the SIP thread itself, the function runs at once (no deadlock). */
    struct fixture *f = *state;
    struct probe p = {.f = f, .value = 3};
    assert_int_equal(sip_execute(f->sip, probe_fn, &p), 3);
    assert_int_equal(atomic_load(&p.ran), 1);
    assert_int_equal(sip_barrier(f->sip), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stalled_loop_gives_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_barrier_of_a_stalled_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_running_loop_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_started_call_is_waited_for, setup, teardown),
        cmocka_unit_test_setup_teardown(test_on_the_sip_thread, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
