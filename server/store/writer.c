/* The writer thread: owns the write connection for rows produced by the SIP thread and
 * commits whatever has queued up in one transaction per batch, so the SIP thread never
 * waits on the disk. A batch is what arrives within BATCH_MS of its first row (or BATCH_MAX
 * rows, whichever comes first): under load one commit then carries hundreds of rows instead
 * of a handful, which is what makes capture and call records cheap. A failed batch (disk
 * full, I/O error) stays queued and is retried. */
#include "store/store_int.h"
#include "util/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One queued row or event, as the list holds it; apply() writes it inside the batch
 * transaction. Rows are allocated as struct wop_row, events as the far smaller struct
 * wop_event (a registration storm or a bulk import queues an event per row): both begin
 * with a struct wop, so a pointer to one is a pointer to the other. */
struct wop {
    struct wop *next;
    int (*apply)(struct store *st, const struct wop *op);
    void *data; /* heap payload freed with the op (trace text, an event's JSON) */
};

struct wop_row {
    struct wop op;
    union {
        struct store_cdr cdr;
        struct store_trace trace;
        struct store_reg reg;
        struct store_block block; /* save; remove uses source and since */
        struct {
            char ext[STORE_EXT_MAX];
            char contact[512];
            int all;
        } rm;
    } u;
};

struct wop_event {
    struct wop op;
    char type[64]; /* the JSON is in op.data */
    int once;      /* announced: not again within the batch */
    int64_t at_us; /* an outbox event: when it happened */
};

/* The row or event that op begins. */
#define ROW(op)   ((const struct wop_row *)(op))
#define EVENT(op) ((const struct wop_event *)(op))

struct store_writer {
    struct store *st;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct wop *head, **tail;
    size_t depth;             /* rows queued or being written */
    size_t queued;            /* rows in the list at head */
    struct timespec first_at; /* when the list at head got its first row */
    int stopping;
    int poked;
    uint64_t poke_seq;    /* pokes asked for by store_writer_poke_wait */
    uint64_t poke_served; /* the last of them a pass has answered (tick run) */
    pthread_cond_t poke_done;
    void (*tick)(struct store *st, void *ctx);
    void *tick_ctx;
    int tick_ms;
    int in_tick; /* the tick function runs now (set_tick waits for it) */
    pthread_cond_t tick_done;
    time_t failing_since;  /* wall clock of the first failed batch of a run of them, 0 */
    char failure[256];     /* why the last batch failed */
    uint64_t failed_total; /* batches not written (each retry counts) */
    void (*announce)(const char *type, const char *json, void *ctx); /* queued events */
    void *announce_ctx;
    int (*outbox)(struct store *st, const char *type, const char *json, int64_t at_us,
                  void *ctx); /* outbox events, in the batch transaction */
    void (*outbox_committed)(void *ctx);
    void *outbox_ctx;
    int retention_days;      /* trace retention, 0 = off */
    int64_t retention_bytes; /* 0 = off */
};

#define HEARTBEAT_S 5  /* how stale the end of an interrupted call may be */
#define RETENTION_S 60 /* how often trace retention runs */

#define BATCH_MS  50   /* the longest a row waits for others to share its transaction */
#define BATCH_MAX 1000 /* a batch this large is written at once */

#define RETRY_MS     1000
#define STOP_RETRIES 3

static void add_ms(struct timespec *ts, int ms)
{
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* A batch on its way into its transaction, with the outbox function read for it. */
struct batch {
    struct wop *ops;
    int (*outbox)(struct store *st, const char *type, const char *json, int64_t at_us, void *ctx);
    void *outbox_ctx;
    int outbox_events; /* how many it held */
};

static int apply_outbox(struct store *st, const struct wop *op);

static int apply_batch(struct store *st, void *ctx)
{
    struct batch *b = ctx;
    b->outbox_events = 0;
    for (const struct wop *op = b->ops; op; op = op->next) {
        int rc;
        if (op->apply == apply_outbox) {
            rc = b->outbox
                     ? b->outbox(st, EVENT(op)->type, op->data, EVENT(op)->at_us, b->outbox_ctx)
                     : 0;
            b->outbox_events++;
        } else {
            rc = op->apply(st, op);
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int apply_announce(struct store *st, const struct wop *op);

/* Publishes the events queued with store_writer_announce in a committed batch, in order;
 * one queued with once goes out only the first time the batch carries it. */
static void announce_events(const struct wop *batch, void (*fn)(const char *, const char *, void *),
                            void *ctx)
{
    struct strmap *sent = NULL;
    if (strmap_create(&sent) != 0)
        sent = NULL; /* then repeats go out too */
    char key[1024];
    for (const struct wop *op = batch; op; op = op->next) {
        if (op->apply != apply_announce)
            continue;
        int n = snprintf(key, sizeof key, "%s\n%s", EVENT(op)->type, (const char *)op->data);
        int keyed = EVENT(op)->once && sent && n > 0 && (size_t)n < sizeof key;
        if (keyed && strmap_get(sent, key))
            continue;
        if (keyed)
            strmap_put(sent, key, (void *)op, NULL);
        fn(EVENT(op)->type, op->data, ctx);
    }
    strmap_destroy(sent, NULL);
}

static void free_list(struct wop *op)
{
    while (op) {
        struct wop *next = op->next;
        free(op->data);
        free(op);
        op = next;
    }
}

static void *writer_main(void *arg)
{
    struct store_writer *w = arg;
    struct timespec next_tick;
    clock_gettime(CLOCK_MONOTONIC, &next_tick);
    int failures = 0;
    time_t next_heartbeat = next_tick.tv_sec, next_retention = next_tick.tv_sec + RETENTION_S;

    pthread_mutex_lock(&w->lock);
    for (;;) {
        if (!w->head && !w->stopping && !w->poked) {
            struct timespec until;
            if (w->tick) {
                until = next_tick;
            } else {
                clock_gettime(CLOCK_MONOTONIC, &until);
                add_ms(&until, 1000);
            }
            pthread_cond_timedwait(&w->wake, &w->lock, &until);
        }
        /* Let the batch fill for up to BATCH_MS after its first row, unless asked to hurry
         * (stop, poke) or it is big enough. The tick waits at most as long. */
        if (w->head && !w->stopping && !w->poked && w->queued < BATCH_MAX) {
            struct timespec until = w->first_at;
            add_ms(&until, BATCH_MS);
            while (w->head && !w->stopping && !w->poked && w->queued < BATCH_MAX)
                if (pthread_cond_timedwait(&w->wake, &w->lock, &until) == ETIMEDOUT)
                    break;
        }
        struct wop *batch = w->head;
        size_t n = w->queued;
        w->head = NULL;
        w->tail = &w->head;
        w->queued = 0;
        int poked = w->poked, stopping = w->stopping;
        w->poked = 0;
        uint64_t poke_seq = w->poke_seq;
        /* The tick is read under the lock as a whole: set_tick may change it meanwhile. */
        void (*tick)(struct store *, void *) = w->tick;
        void *tick_ctx = w->tick_ctx;
        int tick_ms = w->tick_ms;
        struct batch b = {batch, w->outbox, w->outbox_ctx, 0};
        pthread_mutex_unlock(&w->lock);

        if (batch) {
            int rc = store_tx(w->st, apply_batch, &b);
            pthread_mutex_lock(&w->lock);
            if (rc == 0) {
                w->depth -= n;
                if (w->failing_since)
                    log_warn("store: writing again after %lld s of failures; %zu rows written",
                             (long long)(time(NULL) - w->failing_since), n);
                w->failing_since = 0;
                failures = 0;
                void (*announce)(const char *, const char *, void *) = w->announce;
                void *announce_ctx = w->announce_ctx;
                void (*committed)(void *) = w->outbox_committed;
                void *outbox_ctx = w->outbox_ctx;
                pthread_mutex_unlock(&w->lock);
                if (announce)
                    announce_events(batch, announce, announce_ctx);
                if (committed && b.outbox_events)
                    committed(outbox_ctx);
                free_list(batch);
            } else {
                /* Put the batch back in front of what arrived meanwhile and retry later:
                 * rows are only dropped when the process stops and the disk still fails. */
                struct wop *last = batch;
                while (last->next)
                    last = last->next;
                last->next = w->head;
                if (!w->head)
                    w->tail = &last->next;
                w->head = batch;
                w->queued += n;
                clock_gettime(CLOCK_MONOTONIC, &w->first_at);
                failures++;
                w->failed_total++;
                snprintf(w->failure, sizeof w->failure, "%s", store_errmsg(w->st));
                if (!w->failing_since)
                    w->failing_since = time(NULL);
                if (stopping && failures >= STOP_RETRIES) {
                    log_error("store: giving up on %zu queued rows at shutdown: %s", w->depth,
                              store_errmsg(w->st));
                    pthread_mutex_unlock(&w->lock);
                    break;
                }
                /* Said at the first failure and once a minute after, not every retry. */
                if (failures == 1 || failures % (60000 / RETRY_MS) == 0)
                    log_error("store: %zu rows not written (%s); nothing is lost, retrying every "
                              "%d ms",
                              n, w->failure, RETRY_MS);
                struct timespec until;
                clock_gettime(CLOCK_MONOTONIC, &until);
                add_ms(&until, RETRY_MS);
                pthread_cond_timedwait(&w->wake, &w->lock, &until);
                pthread_mutex_unlock(&w->lock);
            }
        }

        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (tick && (poked || now.tv_sec > next_tick.tv_sec ||
                     (now.tv_sec == next_tick.tv_sec && now.tv_nsec >= next_tick.tv_nsec))) {
            pthread_mutex_lock(&w->lock);
            int still = w->tick == tick; /* not replaced meanwhile */
            w->in_tick = still;
            pthread_mutex_unlock(&w->lock);
            if (still)
                tick(w->st, tick_ctx);
            pthread_mutex_lock(&w->lock);
            w->in_tick = 0;
            pthread_cond_broadcast(&w->tick_done);
            pthread_mutex_unlock(&w->lock);
            next_tick = now;
            add_ms(&next_tick, tick_ms);
        }
        if (poke_seq != w->poke_served) {
            /* Every poke taken before this pass has had its tick run. */
            pthread_mutex_lock(&w->lock);
            w->poke_served = poke_seq;
            pthread_cond_broadcast(&w->poke_done);
            pthread_mutex_unlock(&w->lock);
        }

        if (now.tv_sec >= next_heartbeat) {
            store_heartbeat(w->st, util_now_us());
            next_heartbeat = now.tv_sec + HEARTBEAT_S;
        }
        if (now.tv_sec >= next_retention) {
            int days = w->retention_days;
            int64_t oldest = days > 0 ? util_now_us() - (int64_t)days * 86400 * 1000000 : 0;
            int64_t pruned = store_trace_prune(w->st, oldest, w->retention_bytes);
            if (pruned > 0)
                log_info("store: trace retention removed %lld message(s)", (long long)pruned);
            next_retention = now.tv_sec + RETENTION_S;
        }

        pthread_mutex_lock(&w->lock);
        if (w->stopping && !w->head)
            break;
    }
    free_list(w->head);
    w->head = NULL;
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

int store_writer_create(struct store_writer **out, const char *path, char *err, size_t errlen)
{
    struct store_writer *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (store_open(&w->st, path, 0, err, errlen) != 0) {
        free(w);
        return -1;
    }
    w->tail = &w->head;
    pthread_mutex_init(&w->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->wake, &ca);
    pthread_cond_init(&w->tick_done, NULL);
    pthread_cond_init(&w->poke_done, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        snprintf(err, errlen, "cannot start the writer thread");
        store_close(w->st);
        free(w);
        return -1;
    }
    *out = w;
    return 0;
}

void store_writer_destroy(struct store_writer *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stopping = 1;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->wake);
    pthread_cond_destroy(&w->tick_done);
    pthread_cond_destroy(&w->poke_done);
    store_close(w->st);
    free(w);
}

static int enqueue(struct store_writer *w, struct wop *op)
{
    op->next = NULL;
    pthread_mutex_lock(&w->lock);
    int first = !w->head;
    if (first)
        clock_gettime(CLOCK_MONOTONIC, &w->first_at);
    *w->tail = op;
    w->tail = &op->next;
    w->depth++;
    w->queued++;
    /* Wake the writer to start a batch's clock, or when the batch is full; rows between
     * only join the list (a wake-up per row costs more than writing the row). */
    if (first || w->queued == BATCH_MAX)
        pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    return 0;
}

static int apply_reg_save(struct store *st, const struct wop *op)
{
    return store_reg_save(st, &ROW(op)->u.reg);
}

static int apply_reg_remove(struct store *st, const struct wop *op)
{
    const struct wop_row *r = ROW(op);
    return store_reg_remove(st, r->u.rm.ext, r->u.rm.all ? NULL : r->u.rm.contact);
}

static int apply_cdr(struct store *st, const struct wop *op)
{
    return store_cdr_save(st, &ROW(op)->u.cdr);
}

static int apply_trace(struct store *st, const struct wop *op)
{
    return store_trace_add(st, &ROW(op)->u.trace);
}

static int apply_announce(struct store *st, const struct wop *op)
{
    (void)st;
    (void)op;
    return 0; /* nothing to write: published once what came before it is committed */
}

/* A new event op applied by apply, or NULL when out of memory (or type is too long). */
static struct wop *event_new(int (*apply)(struct store *, const struct wop *), const char *type,
                             const char *json, int once, int64_t at_us)
{
    struct wop_event *e = calloc(1, sizeof *e);
    char *copy = strdup(json);
    if (!e || !copy || strlen(type) >= sizeof e->type) {
        free(e);
        free(copy);
        return NULL;
    }
    e->op.apply = apply;
    e->op.data = copy;
    snprintf(e->type, sizeof e->type, "%s", type);
    e->once = once;
    e->at_us = at_us;
    return &e->op;
}

int store_writer_announce(struct store_writer *w, const char *type, const char *json, int once)
{
    struct wop *op = event_new(apply_announce, type, json, once, 0);
    return op ? enqueue(w, op) : ENOMEM;
}

static int apply_outbox(struct store *st, const struct wop *op)
{
    (void)st;
    (void)op;
    return 0; /* never called: apply_batch hands these to the outbox function */
}

int store_writer_outbox(struct store_writer *w, const char *type, const char *json, int64_t at_us)
{
    struct wop *op = event_new(apply_outbox, type, json, 0, at_us);
    return op ? enqueue(w, op) : ENOMEM;
}

void store_writer_set_outbox(struct store_writer *w,
                             int (*apply)(struct store *st, const char *type, const char *json,
                                          int64_t at_us, void *ctx),
                             void (*committed)(void *ctx), void *ctx)
{
    pthread_mutex_lock(&w->lock);
    w->outbox = apply;
    w->outbox_committed = committed;
    w->outbox_ctx = ctx;
    pthread_mutex_unlock(&w->lock);
}

void store_writer_set_announce(struct store_writer *w,
                               void (*fn)(const char *type, const char *json, void *ctx), void *ctx)
{
    pthread_mutex_lock(&w->lock);
    w->announce = fn;
    w->announce_ctx = ctx;
    pthread_mutex_unlock(&w->lock);
}

int store_writer_cdr(struct store_writer *w, const struct store_cdr *c)
{
    struct wop_row *r = calloc(1, sizeof *r);
    if (!r)
        return ENOMEM;
    r->op.apply = apply_cdr;
    r->u.cdr = *c;
    return enqueue(w, &r->op);
}

int store_writer_trace(struct store_writer *w, const struct store_trace *t)
{
    struct wop_row *r = calloc(1, sizeof *r);
    char *raw = malloc(t->raw_len + 1);
    if (!r || !raw) {
        free(r);
        free(raw);
        return ENOMEM;
    }
    memcpy(raw, t->raw, t->raw_len);
    raw[t->raw_len] = '\0';
    r->op.apply = apply_trace;
    r->u.trace = *t;
    r->u.trace.raw = raw;
    r->op.data = raw;
    return enqueue(w, &r->op);
}

void store_writer_set_retention(struct store_writer *w, int days, int64_t max_bytes)
{
    pthread_mutex_lock(&w->lock);
    w->retention_days = days;
    w->retention_bytes = max_bytes;
    pthread_mutex_unlock(&w->lock);
}

int store_writer_reg_save(struct store_writer *w, const struct store_reg *r)
{
    struct wop_row *row = calloc(1, sizeof *row);
    if (!row)
        return ENOMEM;
    row->op.apply = apply_reg_save;
    row->u.reg = *r;
    return enqueue(w, &row->op);
}

static int apply_block_save(struct store *st, const struct wop *op)
{
    return store_block_save(st, &ROW(op)->u.block);
}

static int apply_block_remove(struct store *st, const struct wop *op)
{
    return store_block_remove(st, ROW(op)->u.block.source, ROW(op)->u.block.since);
}

int store_writer_block_save(struct store_writer *w, const struct store_block *b)
{
    struct wop_row *r = calloc(1, sizeof *r);
    if (!r)
        return ENOMEM;
    r->op.apply = apply_block_save;
    r->u.block = *b;
    return enqueue(w, &r->op);
}

int store_writer_block_remove(struct store_writer *w, const char *source, int64_t since)
{
    struct wop_row *r = calloc(1, sizeof *r);
    if (!r)
        return ENOMEM;
    r->op.apply = apply_block_remove;
    snprintf(r->u.block.source, sizeof r->u.block.source, "%s", source);
    r->u.block.since = since;
    return enqueue(w, &r->op);
}

int store_writer_reg_remove(struct store_writer *w, const char *ext, const char *contact)
{
    struct wop_row *r = calloc(1, sizeof *r);
    if (!r)
        return ENOMEM;
    r->op.apply = apply_reg_remove;
    snprintf(r->u.rm.ext, sizeof r->u.rm.ext, "%s", ext);
    if (contact)
        snprintf(r->u.rm.contact, sizeof r->u.rm.contact, "%s", contact);
    r->u.rm.all = contact == NULL;
    return enqueue(w, &r->op);
}

/* Subscriptions and publications are large (headers, a PIDF document): the op carries a
 * heap copy in data rather than growing every queued row. */
static int apply_sub_save(struct store *st, const struct wop *op)
{
    return store_sub_save(st, op->data);
}

static int apply_sub_remove(struct store *st, const struct wop *op)
{
    const struct store_sub *sub = op->data;
    return store_sub_remove(st, sub->call_id, sub->local_tag);
}

static int apply_pub_save(struct store *st, const struct wop *op)
{
    return store_pub_save(st, op->data);
}

static int apply_pub_remove(struct store *st, const struct wop *op)
{
    return store_pub_remove(st, ((const struct store_pub *)op->data)->etag);
}

/* Queues apply with a heap copy of the size bytes at row. */
static int enqueue_copy(struct store_writer *w, int (*apply)(struct store *, const struct wop *),
                        const void *row, size_t size)
{
    struct wop *op = calloc(1, sizeof *op);
    void *copy = malloc(size);
    if (!op || !copy) {
        free(op);
        free(copy);
        return ENOMEM;
    }
    memcpy(copy, row, size);
    op->apply = apply;
    op->data = copy;
    return enqueue(w, op);
}

int store_writer_sub_save(struct store_writer *w, const struct store_sub *sub)
{
    return enqueue_copy(w, apply_sub_save, sub, sizeof *sub);
}

int store_writer_sub_remove(struct store_writer *w, const char *call_id, const char *local_tag)
{
    struct store_sub key;
    memset(&key, 0, sizeof key);
    snprintf(key.call_id, sizeof key.call_id, "%s", call_id);
    snprintf(key.local_tag, sizeof key.local_tag, "%s", local_tag);
    return enqueue_copy(w, apply_sub_remove, &key, sizeof key);
}

int store_writer_pub_save(struct store_writer *w, const struct store_pub *p)
{
    return enqueue_copy(w, apply_pub_save, p, sizeof *p);
}

int store_writer_pub_remove(struct store_writer *w, const char *etag)
{
    struct store_pub key;
    memset(&key, 0, sizeof key);
    snprintf(key.etag, sizeof key.etag, "%s", etag);
    return enqueue_copy(w, apply_pub_remove, &key, sizeof key);
}

int64_t store_writer_failing(struct store_writer *w, char *why, size_t whylen,
                             uint64_t *failed_total)
{
    pthread_mutex_lock(&w->lock);
    int64_t since = w->failing_since;
    if (why && whylen)
        snprintf(why, whylen, "%s", since ? w->failure : "");
    if (failed_total)
        *failed_total = w->failed_total;
    pthread_mutex_unlock(&w->lock);
    return since;
}

void store_writer_set_tick(struct store_writer *w, void (*fn)(struct store *st, void *ctx),
                           void *ctx, int interval_ms)
{
    pthread_mutex_lock(&w->lock);
    /* Once this returns the old function is not running and will not run again. */
    while (w->in_tick)
        pthread_cond_wait(&w->tick_done, &w->lock);
    w->tick = fn;
    w->tick_ctx = ctx;
    w->tick_ms = interval_ms;
    w->poked = 1;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
}

void store_writer_poke(struct store_writer *w)
{
    pthread_mutex_lock(&w->lock);
    w->poked = 1;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
}

int store_writer_poke_wait(struct store_writer *w, int timeout_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    add_ms(&until, timeout_ms);
    pthread_mutex_lock(&w->lock);
    uint64_t seq = ++w->poke_seq;
    w->poked = 1;
    pthread_cond_signal(&w->wake);
    while (w->poke_served < seq && !w->stopping)
        if (pthread_cond_timedwait(&w->poke_done, &w->lock, &until) == ETIMEDOUT)
            break;
    int done = w->poke_served >= seq;
    pthread_mutex_unlock(&w->lock);
    return done ? 0 : ETIMEDOUT;
}

size_t store_writer_depth(struct store_writer *w)
{
    pthread_mutex_lock(&w->lock);
    size_t d = w->depth;
    pthread_mutex_unlock(&w->lock);
    return d;
}
