/* Blocking addresses that guess digest passwords: failure counting per source address over
 * a sliding window (the times of the last N failures), blocks that double for a repeat
 * offender, the per-extension view, and the log lines (a block's start and end, and at most
 * one line a minute of failures per address, not one per guess). */
#include "sip/ban.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIGEST_EVERY   60 /* seconds between two log lines of failures from one address */
#define TARGET_SOURCES 16 /* distinct addresses remembered per extension */

struct src {
    uint32_t *fail_at; /* ring of the times of the last cfg.failures failures */
    int nfail, head;   /* entries in use; the oldest (once full) */
    uint64_t failures; /* since the entry was made or the last block started */
    int trusted;
    int offences;                /* blocks so far (forgotten max_time after the last) */
    int64_t since, until;        /* the block, until 0 when none */
    int64_t last_end;            /* when the last block ended, 0: never */
    int64_t last_failure;        /* 0: none yet */
    uint64_t dropped;            /* requests dropped during the current block */
    int64_t digest_at;           /* when the last log line about its failures went out */
    uint64_t digest_pending;     /* failures since then, not yet logged */
    char reason[BAN_REASON_MAX]; /* of the current block */
    uint64_t block_failures;     /* failures that led to the current block */
    char users[BAN_USERS_MAX][BAN_USER_MAX]; /* most recent first */
    int nusers;
};

struct target {
    int64_t window_start; /* the current window began with its first failure */
    uint64_t failures;    /* in the current window */
    int64_t last_failure;
    int64_t warned; /* window_start of the window the warning was logged for */
    struct {
        char addr[UTIL_ADDR_STRLEN];
        int64_t at;
    } sources[TARGET_SOURCES];
    int nsources;
    char last_source[UTIL_ADDR_STRLEN];
};

struct ban {
    struct ban_config cfg;
    struct util_net *trusted; /* cfg.trusted points here */
    struct strmap *srcs;      /* address -> struct src */
    struct strmap *targets;   /* extension -> struct target */
    ban_change_f *on_change;
    void *ctx;
    size_t blocked;
    uint64_t blocks_total, dropped_total;
    size_t attacked; /* targets at the threshold, as of the last tick */
    int64_t full_warned;
};

int ban_create(struct ban **out, const struct ban_config *cfg, ban_change_f *on_change, void *ctx)
{
    struct ban *b = calloc(1, sizeof *b);
    if (!b)
        return ENOMEM;
    b->cfg = *cfg;
    if (cfg->ntrusted) {
        b->trusted = calloc(cfg->ntrusted, sizeof *b->trusted);
        if (!b->trusted)
            goto fail;
        memcpy(b->trusted, cfg->trusted, cfg->ntrusted * sizeof *b->trusted);
    }
    b->cfg.trusted = b->trusted;
    if (strmap_create(&b->srcs) != 0 || strmap_create(&b->targets) != 0)
        goto fail;
    b->on_change = on_change;
    b->ctx = ctx;
    *out = b;
    return 0;
fail:
    ban_destroy(b);
    return ENOMEM;
}

static void free_src(void *p)
{
    struct src *e = p;
    if (e)
        free(e->fail_at);
    free(e);
}

void ban_destroy(struct ban *b)
{
    if (!b)
        return;
    if (b->srcs)
        strmap_destroy(b->srcs, free_src);
    if (b->targets)
        strmap_destroy(b->targets, free);
    free(b->trusted);
    free(b);
}

int ban_trusted(const struct ban *b, const struct util_addr *a)
{
    for (size_t i = 0; i < b->cfg.ntrusted; i++)
        if (util_net_contains(&b->cfg.trusted[i], a))
            return 1;
    return 0;
}

int ban_blocked(struct ban *b, const char *source, int64_t now)
{
    struct src *e = strmap_get(b->srcs, source);
    if (!e || !e->until || e->until <= now)
        return 0;
    e->dropped++;
    b->dropped_total++;
    return 1;
}

static void users_text(const struct src *e, char *out, size_t outlen)
{
    size_t n = 0;
    out[0] = '\0';
    for (int i = 0; i < e->nusers && n < outlen; i++)
        n += (size_t)snprintf(out + n, outlen - n, "%s%s", i ? "," : "", e->users[i]);
}

static void info_of(const char *source, const struct src *e, struct ban_info *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->source, sizeof out->source, "%s", source);
    snprintf(out->reason, sizeof out->reason, "%s", e->reason);
    out->failures = e->block_failures;
    out->dropped = e->dropped;
    out->offences = e->offences;
    out->since = e->since;
    out->until = e->until;
    users_text(e, out->users, sizeof out->users);
}

/* Remembers user among the extensions source tried, most recent first. */
static void remember_user(struct src *e, const char *user)
{
    int i = 0;
    while (i < e->nusers && strcmp(e->users[i], user) != 0)
        i++;
    if (i == e->nusers && e->nusers < BAN_USERS_MAX)
        e->nusers++;
    if (i == BAN_USERS_MAX)
        i--;
    memmove(e->users[1], e->users[0], (size_t)i * sizeof e->users[0]);
    snprintf(e->users[0], sizeof e->users[0], "%s", user);
}

/* How long the offences-th block lasts: block_time doubled per earlier block, capped. */
static int64_t block_length(const struct ban_config *c, int offences)
{
    int64_t len = c->block_time;
    for (int i = 1; i < offences && len < c->max_time; i++)
        len *= 2;
    return len < c->max_time ? len : c->max_time;
}

static void start_block(struct ban *b, const char *source, struct src *e, int64_t now)
{
    /* A block within max_time after the last one ended is a repeat: twice as long. */
    if (e->last_end && now - e->last_end < b->cfg.max_time)
        e->offences++;
    else
        e->offences = 1;
    int64_t len = block_length(&b->cfg, e->offences);
    e->since = now;
    e->until = now + len;
    e->dropped = 0;
    e->block_failures = e->failures;
    snprintf(e->reason, sizeof e->reason, "%d failed digest checks in %d s", b->cfg.failures,
             b->cfg.window);
    e->nfail = e->head = 0;
    e->failures = 0;
    e->digest_pending = 0; /* the block's line says it all */
    b->blocked++;
    b->blocks_total++;
    char users[sizeof((struct ban_info *)0)->users];
    users_text(e, users, sizeof users);
    log_warn("ban: blocking %s for %lld s: %s (extensions %s)%s", source, (long long)len, e->reason,
             users[0] ? users : "-", e->offences > 1 ? ", a repeat offender: block doubled" : "");
    if (b->on_change) {
        struct ban_info info;
        info_of(source, e, &info);
        b->on_change(b->ctx, &info, 1);
    }
}

static void end_block(struct ban *b, const char *source, struct src *e, const char *how,
                      int64_t now)
{
    struct ban_info info;
    info_of(source, e, &info);
    log_info("ban: block of %s ended (%s) after %lld s; %llu request(s) dropped meanwhile", source,
             how, (long long)(now - e->since), (unsigned long long)e->dropped);
    e->until = 0;
    e->last_end = now;
    b->blocked--;
    if (b->on_change)
        b->on_change(b->ctx, &info, 0);
}

static struct src *src_get(struct ban *b, const char *source, int64_t now)
{
    struct src *e = strmap_get(b->srcs, source);
    if (e)
        return e;
    if (strmap_count(b->srcs) >= BAN_SOURCES) {
        if (now - b->full_warned >= DIGEST_EVERY) {
            log_warn("ban: %d addresses are being watched already: failures from further "
                     "addresses are not counted until some are forgotten",
                     BAN_SOURCES);
            b->full_warned = now;
        }
        return NULL;
    }
    e = util_xcalloc(1, sizeof *e);
    int ring = b->cfg.failures > 0 ? b->cfg.failures : 1;
    e->fail_at = util_xcalloc((size_t)ring, sizeof *e->fail_at);
    strmap_put(b->srcs, source, e, NULL);
    return e;
}

/* The per-extension view: failures in fixed windows and the addresses they came from. */
static void count_target(struct ban *b, const char *user, const char *source, int64_t now)
{
    struct target *t = strmap_get(b->targets, user);
    if (!t) {
        if (strmap_count(b->targets) >= BAN_TARGETS)
            return;
        t = util_xcalloc(1, sizeof *t);
        strmap_put(b->targets, user, t, NULL);
    }
    if (!t->failures || now - t->window_start >= b->cfg.window) {
        t->window_start = now;
        t->failures = 0;
    }
    t->failures++;
    t->last_failure = now;
    snprintf(t->last_source, sizeof t->last_source, "%s", source);
    int i = 0, oldest = 0;
    while (i < t->nsources && strcmp(t->sources[i].addr, source) != 0) {
        if (t->sources[i].at < t->sources[oldest].at)
            oldest = i;
        i++;
    }
    if (i == t->nsources) {
        if (t->nsources < TARGET_SOURCES)
            t->nsources++;
        else
            i = oldest;
        snprintf(t->sources[i].addr, sizeof t->sources[i].addr, "%s", source);
    }
    t->sources[i].at = now;
}

static int target_sources(const struct ban *b, const struct target *t, int64_t now)
{
    int n = 0;
    for (int i = 0; i < t->nsources; i++)
        n += now - t->sources[i].at < b->cfg.window;
    return n;
}

/* The threshold at which an extension counts as attacked (warning, gauge). */
static uint64_t target_threshold(const struct ban *b)
{
    return b->cfg.failures > 0 ? (uint64_t)b->cfg.failures : 10;
}

enum ban_verdict ban_failure(struct ban *b, const char *source, const char *user, int64_t now)
{
    char name[BAN_USER_MAX];
    snprintf(name, sizeof name, "%s", user && *user ? user : "?");
    count_target(b, name, source, now);

    struct src *e = src_get(b, source, now);
    if (!e)
        return BAN_COUNTED;
    struct util_addr a;
    e->trusted = util_addr_parse(source, &a) == 0 && ban_trusted(b, &a);
    e->failures++;
    e->last_failure = now;
    remember_user(e, name);
    if (!e->digest_at || now - e->digest_at >= DIGEST_EVERY) {
        log_info("auth: failed digest check from %s for '%s'%s", source, name,
                 e->trusted ? " (a trusted network: never blocked)" : "");
        e->digest_at = now;
        e->digest_pending = 0;
    } else {
        e->digest_pending++;
    }
    if (e->trusted || b->cfg.failures <= 0)
        return e->trusted ? BAN_TRUSTED : BAN_COUNTED;
    if (e->until > now)
        return BAN_COUNTED; /* already blocked (a request that was under way) */

    /* The ring holds the times of the last `failures` failures: a block once all of them
     * fall within the window. */
    int n = b->cfg.failures;
    if (e->nfail < n) {
        e->fail_at[(e->head + e->nfail) % n] = (uint32_t)now;
        e->nfail++;
    } else {
        e->fail_at[e->head] = (uint32_t)now;
        e->head = (e->head + 1) % n;
    }
    int64_t oldest = (int64_t)e->fail_at[e->head];
    if (e->nfail == n && now - oldest < b->cfg.window) {
        if (e->until) /* an expired block the tick has not ended yet */
            end_block(b, source, e, "expired", now);
        start_block(b, source, e, now);
        return BAN_STARTED;
    }
    return BAN_COUNTED;
}

int ban_lift(struct ban *b, const char *source, int64_t since, const char *by, int64_t now)
{
    struct src *e = strmap_get(b->srcs, source);
    if (!e || !e->until || (since && e->since != since))
        return ENOENT;
    char how[80];
    snprintf(how, sizeof how, "lifted by %s", by);
    end_block(b, source, e, how, now);
    /* A lifted block is not held against the address: the next one is a first one. */
    e->last_end = 0;
    e->offences = 0;
    return 0;
}

int ban_restore(struct ban *b, const struct ban_info *info, int64_t now)
{
    struct util_addr a;
    char canon[UTIL_ADDR_STRLEN];
    if (util_addr_parse(info->source, &a) != 0)
        return EINVAL;
    util_addr_format(&a, canon, sizeof canon);
    if (info->until <= now || info->since > info->until || ban_trusted(b, &a))
        return ENOENT;
    struct src *e = src_get(b, canon, now);
    if (!e)
        return ENOMEM;
    if (!e->until)
        b->blocked++;
    e->since = info->since;
    e->until = info->until;
    e->offences = info->offences > 0 ? info->offences : 1;
    e->block_failures = info->failures;
    e->dropped = 0;
    snprintf(e->reason, sizeof e->reason, "%s", info->reason);
    /* "100,101" back into the list, most recent first as it was written. */
    e->nusers = 0;
    const char *p = info->users;
    while (*p && e->nusers < BAN_USERS_MAX) {
        size_t len = strcspn(p, ",");
        snprintf(e->users[e->nusers++], BAN_USER_MAX, "%.*s", (int)len, p);
        p += len + (p[len] == ',');
    }
    return 0;
}

struct tick_ctx {
    struct ban *b;
    int64_t now;
    size_t attacked;
};

static int tick_src(const char *source, void *val, void *arg)
{
    struct tick_ctx *tc = arg;
    struct ban *b = tc->b;
    struct src *e = val;
    int64_t now = tc->now;
    if (e->until && e->until <= now)
        end_block(b, source, e, "expired", now);
    if (e->digest_pending && now - e->digest_at >= DIGEST_EVERY) {
        char users[sizeof((struct ban_info *)0)->users];
        users_text(e, users, sizeof users);
        log_info("auth: %llu more failed digest check(s) from %s in the last %lld s "
                 "(extensions %s)",
                 (unsigned long long)e->digest_pending, source, (long long)(now - e->digest_at),
                 users);
        e->digest_at = now;
        e->digest_pending = 0;
    }
    /* Forgotten once nothing about it matters any more: not blocked, no failure in the
     * window, no digest to write, and no block recent enough to double the next one. */
    int idle = !e->until && now - e->last_failure >= b->cfg.window && !e->digest_pending &&
               (!e->last_end || now - e->last_end >= b->cfg.max_time);
    if (idle && (!e->digest_at || now - e->digest_at >= DIGEST_EVERY)) {
        free_src(e);
        return STRMAP_DROP;
    }
    return STRMAP_KEEP;
}

static int tick_target(const char *user, void *val, void *arg)
{
    struct tick_ctx *tc = arg;
    struct ban *b = tc->b;
    struct target *t = val;
    if (tc->now - t->window_start >= b->cfg.window) {
        free(t);
        return STRMAP_DROP;
    }
    if (t->failures < target_threshold(b))
        return STRMAP_KEEP;
    tc->attacked++;
    int sources = target_sources(b, t, tc->now);
    if (sources >= 2 && t->warned != t->window_start) {
        /* Blocks are per address; this is what an admin should know when one extension is
         * the target of many. */
        log_warn("ban: extension '%s' had %llu failed digest checks from %d%s addresses in "
                 "%lld s; addresses are blocked one by one, the extension stays usable from "
                 "its own phones",
                 user, (unsigned long long)t->failures, sources,
                 sources >= TARGET_SOURCES ? " or more" : "",
                 (long long)(tc->now - t->window_start + 1));
        t->warned = t->window_start;
    }
    return STRMAP_KEEP;
}

void ban_tick(struct ban *b, int64_t now)
{
    struct tick_ctx tc = {b, now, 0};
    strmap_foreach(b->srcs, tick_src, &tc);
    strmap_foreach(b->targets, tick_target, &tc);
    b->attacked = tc.attacked;
}

struct list_ctx {
    int64_t now;
    void *out;
    size_t max, n;
};

static int list_src(const char *source, void *val, void *arg)
{
    struct list_ctx *lc = arg;
    struct src *e = val;
    if (!e->until || e->until <= lc->now || lc->n == lc->max)
        return STRMAP_KEEP;
    info_of(source, e, &((struct ban_info *)lc->out)[lc->n++]);
    return STRMAP_KEEP;
}

static int newest_first(const void *x, const void *y)
{
    const struct ban_info *a = x, *b = y;
    if (a->since != b->since)
        return a->since < b->since ? 1 : -1;
    return strcmp(a->source, b->source);
}

size_t ban_list(struct ban *b, int64_t now, struct ban_info *out, size_t max)
{
    struct list_ctx lc = {now, out, max, 0};
    strmap_foreach(b->srcs, list_src, &lc);
    qsort(out, lc.n, sizeof *out, newest_first);
    return lc.n;
}

struct target_ctx {
    const struct ban *b;
    int64_t now;
    struct ban_target *out;
    size_t max, n;
};

static int list_target(const char *user, void *val, void *arg)
{
    struct target_ctx *tc = arg;
    struct target *t = val;
    if (tc->now - t->window_start >= tc->b->cfg.window || !t->failures || tc->n == tc->max)
        return STRMAP_KEEP;
    struct ban_target *o = &tc->out[tc->n++];
    snprintf(o->user, sizeof o->user, "%s", user);
    o->failures = t->failures;
    o->sources = target_sources(tc->b, t, tc->now);
    snprintf(o->last_source, sizeof o->last_source, "%s", t->last_source);
    o->last_failure = t->last_failure;
    return STRMAP_KEEP;
}

static int most_failures_first(const void *x, const void *y)
{
    const struct ban_target *a = x, *b = y;
    if (a->failures != b->failures)
        return a->failures < b->failures ? 1 : -1;
    return strcmp(a->user, b->user);
}

size_t ban_targets(struct ban *b, int64_t now, struct ban_target *out, size_t max)
{
    struct target_ctx tc = {b, now, out, max, 0};
    strmap_foreach(b->targets, list_target, &tc);
    qsort(out, tc.n, sizeof *out, most_failures_first);
    return tc.n;
}

void ban_stats(const struct ban *b, struct ban_stats *out)
{
    out->blocked = b->blocked;
    out->blocks_total = b->blocks_total;
    out->dropped_total = b->dropped_total;
    out->targets = b->attacked;
}
