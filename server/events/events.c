/* A mutex-protected ring buffer of events with a condition variable for waiting readers.
 * The events' text lives in a pool of the ring's own (used under the lock only): the ring
 * keeps the last events for minutes, and their copies, made among the SIP thread's
 * short-lived memory, pinned its freed pages (util/pool.c). */
#include "events/events.h"
#include "util/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct slot {
    uint64_t seq;
    char *type;  /* one allocation: type, NUL, json, NUL */
    char *json;  /* in type's allocation */
    int on_heap; /* too large for the pool: malloc'd */
};

struct events {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct slot *ring;
    size_t cap;
    struct util_pool *pool; /* the slots' text */
    uint64_t head;          /* seq of the newest event */
    int closed;
    struct {
        events_listener fn; /* NULL: a free slot */
        void *ctx;
    } listeners[EVENTS_LISTENERS_MAX]; /* told of each publish */
};

int events_create(struct events **out, size_t capacity)
{
    struct events *ev = calloc(1, sizeof *ev);
    if (!ev)
        return ENOMEM;
    ev->ring = calloc(capacity, sizeof *ev->ring);
    if (!ev->ring || util_pool_create(&ev->pool) != 0) {
        free(ev->ring);
        free(ev);
        return ENOMEM;
    }
    ev->cap = capacity;
    pthread_mutex_init(&ev->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&ev->cond, &ca);
    pthread_condattr_destroy(&ca);
    *out = ev;
    return 0;
}

void events_close(struct events *ev)
{
    pthread_mutex_lock(&ev->lock);
    ev->closed = 1;
    pthread_cond_broadcast(&ev->cond);
    pthread_mutex_unlock(&ev->lock);
}

void events_destroy(struct events *ev)
{
    if (!ev)
        return;
    for (size_t i = 0; i < ev->cap; i++)
        if (ev->ring[i].on_heap)
            free(ev->ring[i].type);
    util_pool_destroy(ev->pool);
    free(ev->ring);
    pthread_mutex_destroy(&ev->lock);
    pthread_cond_destroy(&ev->cond);
    free(ev);
}

void events_publish(struct events *ev, const char *type, const char *json)
{
    size_t lt = strlen(type) + 1, lj = strlen(json) + 1;
    pthread_mutex_lock(&ev->lock);
    struct slot *s = &ev->ring[(ev->head + 1) % ev->cap];
    if (s->on_heap)
        free(s->type);
    else
        util_pool_free(ev->pool, s->type);
    s->on_heap = lt + lj > UTIL_POOL_MAX;
    char *t = s->on_heap ? util_xmalloc(lt + lj) : util_pool_alloc(ev->pool, lt + lj);
    char *j = t + lt;
    memcpy(t, type, lt);
    memcpy(j, json, lj);
    s->seq = ++ev->head;
    s->type = t;
    s->json = j;
    pthread_cond_broadcast(&ev->cond);
    for (int i = 0; i < EVENTS_LISTENERS_MAX; i++)
        if (ev->listeners[i].fn)
            ev->listeners[i].fn(ev->listeners[i].ctx, t, j);
    pthread_mutex_unlock(&ev->lock);
}

int events_add_listener(struct events *ev, events_listener fn, void *ctx)
{
    int rc = ENOSPC;
    pthread_mutex_lock(&ev->lock);
    for (int i = 0; i < EVENTS_LISTENERS_MAX && rc; i++)
        if (!ev->listeners[i].fn) {
            ev->listeners[i].fn = fn;
            ev->listeners[i].ctx = ctx;
            rc = 0;
        }
    pthread_mutex_unlock(&ev->lock);
    return rc;
}

void events_remove_listener(struct events *ev, events_listener fn, void *ctx)
{
    /* Listeners are called under the lock: once it is ours, none is running. */
    pthread_mutex_lock(&ev->lock);
    for (int i = 0; i < EVENTS_LISTENERS_MAX; i++)
        if (ev->listeners[i].fn == fn && ev->listeners[i].ctx == ctx)
            ev->listeners[i].fn = NULL;
    pthread_mutex_unlock(&ev->lock);
}

uint64_t events_head(struct events *ev)
{
    pthread_mutex_lock(&ev->lock);
    uint64_t h = ev->head;
    pthread_mutex_unlock(&ev->lock);
    return h;
}

uint64_t events_count(struct events *ev)
{
    return events_head(ev);
}

int events_next(struct events *ev, uint64_t *cursor, int timeout_ms, char **type, char **json,
                uint64_t *missed)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    *missed = 0;
    pthread_mutex_lock(&ev->lock);
    while (!ev->closed && ev->head <= *cursor) {
        if (pthread_cond_timedwait(&ev->cond, &ev->lock, &until) == ETIMEDOUT)
            break;
    }
    if (ev->closed) {
        pthread_mutex_unlock(&ev->lock);
        return -1;
    }
    if (ev->head <= *cursor) {
        pthread_mutex_unlock(&ev->lock);
        return 0;
    }
    uint64_t want = *cursor + 1;
    uint64_t oldest = ev->head >= ev->cap ? ev->head - ev->cap + 1 : 1;
    if (want < oldest) {
        *missed = oldest - want;
        want = oldest;
    }
    struct slot *s = &ev->ring[want % ev->cap];
    *type = util_xstrdup(s->type);
    *json = util_xstrdup(s->json);
    *cursor = want;
    pthread_mutex_unlock(&ev->lock);
    return 1;
}
