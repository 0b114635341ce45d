/* The SIP side of the ban table (ban.c): made from the settings, fed by auth.c's failed
 * digest checks, persisted through the writer thread (the SIP thread never touches the
 * disk after start-up), shown to the REST API and lifted by the API or by the CLI (whose
 * mark the writer's tick notices, as it notices user changes). */
#include "sip/ban.h"
#include "sip/digest.h"
#include "sip/sip_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A block started or ended: the writer saves or deletes its row. */
static void on_change(void *ctx, const struct ban_info *info, int active)
{
    struct sip *s = ctx;
    if (active) {
        struct store_block b;
        memset(&b, 0, sizeof b);
        snprintf(b.source, sizeof b.source, "%s", info->source);
        snprintf(b.reason, sizeof b.reason, "%s", info->reason);
        b.failures = (int64_t)info->failures;
        b.offences = info->offences;
        snprintf(b.extensions, sizeof b.extensions, "%s", info->users);
        b.since = info->since;
        b.until = info->until;
        store_writer_block_save(s->writer, &b);
    } else {
        store_writer_block_remove(s->writer, info->source, info->since);
    }
    blocks_publish_stats(s);
}

struct load_ctx {
    struct sip *s;
    int64_t now;
    int restored;
};

static int restore_one(const struct store_block *row, void *arg)
{
    struct load_ctx *lc = arg;
    struct ban_info info;
    memset(&info, 0, sizeof info);
    snprintf(info.source, sizeof info.source, "%s", row->source);
    snprintf(info.reason, sizeof info.reason, "%s", row->reason);
    snprintf(info.users, sizeof info.users, "%s", row->extensions);
    info.failures = row->failures > 0 ? (uint64_t)row->failures : 0;
    info.offences = row->offences;
    info.since = row->since;
    info.until = row->until;
    int rc = row->lifted ? ENOENT : ban_restore(lc->s->ban, &info, lc->now);
    if (rc == 0) {
        lc->restored++;
        return 0;
    }
    /* Over, lifted with the CLI while no daemon ran, or now trusted: the row goes. */
    if (rc == ENOMEM)
        return ENOMEM;
    store_writer_block_remove(lc->s->writer, row->source, row->since);
    return 0;
}

int blocks_create(struct sip *s, struct store *st, char *err, size_t errlen)
{
    const struct config *cfg = s->cfg;
    struct util_net nets[CONFIG_NETS_MAX];
    size_t n = 0;
    char why[200];
    if (util_net_parse_list(cfg->trusted_networks, nets, CONFIG_NETS_MAX, &n, why, sizeof why)) {
        snprintf(err, errlen, "sip_trusted_networks: %s", why);
        return -1;
    }
    struct ban_config bc = {
        cfg->ban_failures, cfg->ban_window, cfg->ban_time, cfg->ban_max_time, nets, n};
    if (ban_create(&s->ban, &bc, on_change, s) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->blocks_version = store_blocks_version(st);
    struct load_ctx lc = {s, util_now(), 0};
    if (store_block_list(st, STORE_BLOCKS_ALL, lc.now, restore_one, &lc) != 0) {
        snprintf(err, errlen, "cannot load the SIP blocks from the database");
        return -1;
    }
    if (lc.restored)
        log_info("ban: %d block(s) of the last run still in force", lc.restored);
    blocks_publish_stats(s);
    return 0;
}

void blocks_failure(struct sip *s, const struct sip_req *r, const char *user)
{
    char source[UTIL_ADDR_STRLEN];
    if (sip_source_addr(r, source, sizeof source) != 0)
        return;
    ban_failure(s->ban, source, user, util_now());
    blocks_publish_stats(s);
}

void blocks_publish_stats(struct sip *s)
{
    struct ban_stats bs;
    ban_stats(s->ban, &bs);
    atomic_store_explicit(&s->blocked_sources, bs.blocked, memory_order_relaxed);
    atomic_store_explicit(&s->blocks, bs.blocks_total, memory_order_relaxed);
    atomic_store_explicit(&s->attacked_extensions, bs.targets, memory_order_relaxed);
    atomic_store_explicit(&s->nonces_retired, digest_retired_total(s->digest),
                          memory_order_relaxed);
}

/* ---- the REST API's view, on the SIP thread by sip_execute ---- */

struct copy_arg {
    struct sip *s;
    void *out;
    int n;
};

static int copy_blocks(void *arg)
{
    struct copy_arg *ca = arg;
    struct ban_stats bs;
    ban_stats(ca->s->ban, &bs);
    size_t max = bs.blocked ? bs.blocked : 1;
    struct ban_info *info = util_xcalloc(max, sizeof *info);
    struct sip_block *out = util_xcalloc(max, sizeof *out);
    size_t n = ban_list(ca->s->ban, util_now(), info, max);
    for (size_t i = 0; i < n; i++) {
        struct sip_block *b = &out[i];
        snprintf(b->source, sizeof b->source, "%s", info[i].source);
        snprintf(b->reason, sizeof b->reason, "%s", info[i].reason);
        b->failures = info[i].failures;
        b->dropped = info[i].dropped;
        b->offences = info[i].offences;
        b->since = info[i].since;
        b->until = info[i].until;
        snprintf(b->extensions, sizeof b->extensions, "%s", info[i].users);
    }
    free(info);
    ca->out = out;
    return (int)n;
}

int sip_blocks(struct sip *s, struct sip_block **out)
{
    struct copy_arg ca = {s, NULL, 0};
    int n = sip_execute(s, copy_blocks, &ca);
    if (n < 0) {
        free(ca.out);
        return -1;
    }
    *out = ca.out;
    return n;
}

struct lift_arg {
    struct sip *s;
    const char *source;
};

static int lift_on_sip_thread(void *arg)
{
    struct lift_arg *la = arg;
    int rc = ban_lift(la->s->ban, la->source, 0, "an admin (REST API)", util_now());
    blocks_publish_stats(la->s);
    return rc;
}

int sip_block_lift(struct sip *s, const char *source)
{
    struct util_addr a;
    char canon[UTIL_ADDR_STRLEN];
    if (util_addr_parse(source, &a) != 0)
        return EINVAL;
    util_addr_format(&a, canon, sizeof canon);
    struct lift_arg la = {s, canon};
    return sip_execute(s, lift_on_sip_thread, &la);
}

static int copy_targets(void *arg)
{
    struct copy_arg *ca = arg;
    struct ban_target *t = util_xcalloc(BAN_TARGETS, sizeof *t);
    struct sip_target *out = util_xcalloc(BAN_TARGETS, sizeof *out);
    size_t n = ban_targets(ca->s->ban, util_now(), t, BAN_TARGETS);
    for (size_t i = 0; i < n; i++) {
        snprintf(out[i].extension, sizeof out[i].extension, "%s", t[i].user);
        out[i].failures = t[i].failures;
        out[i].sources = t[i].sources;
        snprintf(out[i].last_source, sizeof out[i].last_source, "%s", t[i].last_source);
        out[i].last_failure = t[i].last_failure;
    }
    free(t);
    ca->out = out;
    return (int)n;
}

int sip_targets(struct sip *s, struct sip_target **out)
{
    struct copy_arg ca = {s, NULL, 0};
    int n = sip_execute(s, copy_targets, &ca);
    if (n < 0) {
        free(ca.out);
        return -1;
    }
    *out = ca.out;
    return n;
}

/* ---- lifts by the CLI: the writer's tick reads them, the SIP thread lifts ---- */

struct lifted {
    char source[UTIL_ADDR_STRLEN];
    int64_t since;
};

/* The blocks the CLI lifted, collected on the writer's thread and posted to the SIP thread
 * (sip_post holds them until lift_in runs, or drops them with lift_drop). */
struct collect_ctx {
    struct lifted *items;
    size_t n, cap;
};

static int collect_lifted(const struct store_block *b, void *arg)
{
    struct collect_ctx *cc = arg;
    if (cc->n == cc->cap) {
        size_t cap = cc->cap ? 2 * cc->cap : 16;
        cc->items = util_xrealloc(cc->items, cap * sizeof *cc->items);
        cc->cap = cap;
    }
    snprintf(cc->items[cc->n].source, sizeof cc->items[cc->n].source, "%s", b->source);
    cc->items[cc->n].since = b->since;
    cc->n++;
    return 0;
}

static void lift_drop(void *p)
{
    struct collect_ctx *cc = p;
    free(cc->items);
    free(cc);
}

static void lift_in(struct sip *s, void *p)
{
    struct collect_ctx *cc = p;
    for (size_t i = 0; i < cc->n; i++) {
        const struct lifted *l = &cc->items[i];
        /* Lifting logs and deletes the row; a block that is over already only has its
         * marked row to go. */
        if (ban_lift(s->ban, l->source, l->since, "the CLI", util_now()) != 0)
            store_writer_block_remove(s->writer, l->source, l->since);
    }
    blocks_publish_stats(s);
    lift_drop(cc);
}

void blocks_tick(struct store *st, void *arg)
{
    struct sip *s = arg;
    int64_t v = store_blocks_version(st);
    if (v < 0 || v == s->blocks_version)
        return;
    struct collect_ctx cc = {NULL, 0, 0};
    if (store_block_list(st, STORE_BLOCKS_LIFTED, 0, collect_lifted, &cc) != 0) {
        free(cc.items);
        return; /* try again next tick */
    }
    if (cc.n) {
        struct collect_ctx *posted = util_xmalloc(sizeof *posted);
        *posted = cc;
        if (sip_post(s, lift_in, lift_drop, posted) != 0)
            return;
    } else {
        free(cc.items);
    }
    s->blocks_version = v;
}
