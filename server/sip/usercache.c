/* The SIP thread's copy of the users with their forward rules, and of the ring groups. It reads
 * them all once, at start-up; after that the writer thread follows the user_changes log (db/006,
 * written by triggers, so changes made by the CLI in another process count too): it reads only the
 * users changed since the last sequence number it applied and sends that delta to the SIP
 * thread, which puts those users in place. A change costs the same with 10 users or
 * 100,000, and the SIP thread never reads the database itself. */
#include "sip/sip_int.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* How often, at most, the writer deletes the log rows it has applied (a write). */
#define PRUNE_MS 1000

/* The rules of a user who forwards nothing: most users, so they share this one. */
static const struct store_forward no_rules;

/* A user and, when one of them is enabled, its own copy of its rules, in one allocation
 * with its display name behind (free() frees all). */
struct user_with_rules {
    struct sip_user user;
    struct store_forward rules;
};

/* A new cache entry for the row u with rules fwd. */
static struct sip_user *user_new(const struct store_user *u, const struct store_forward *fwd,
                                 const char *realm)
{
    int any = 0;
    for (int k = 0; k < STORE_FWD_KINDS; k++)
        any |= fwd->rule[k].enabled;
    size_t head = any ? sizeof(struct user_with_rules) : sizeof(struct sip_user);
    size_t name = strlen(u->display_name) + 1;
    struct sip_user *su = util_xcalloc(1, head + name);
    memcpy(su->extension, u->extension, sizeof su->extension);
    su->display_name = memcpy((char *)su + head, u->display_name, name);
    memcpy(su->ha1, u->ha1, sizeof su->ha1);
    su->ha1_valid = strcmp(u->realm, realm) == 0;
    su->enabled = u->enabled;
    su->call_waiting = u->call_waiting;
    su->dnd = u->dnd;
    su->ring_timeout = u->ring_timeout;
    if (any) {
        struct user_with_rules *uw = (struct user_with_rules *)su;
        uw->rules = *fwd;
        su->fwd = &uw->rules;
    } else {
        su->fwd = &no_rules;
    }
    return su;
}

/* A new cache entry for the group g. */
static struct sip_group *group_new(const struct store_group *g)
{
    struct sip_group *sg = util_xcalloc(1, sizeof *sg);
    memcpy(sg->extension, g->extension, sizeof sg->extension);
    sg->strategy = g->strategy;
    sg->member_timeout = g->member_timeout;
    memcpy(sg->no_answer_target, g->no_answer_target, sizeof sg->no_answer_target);
    sg->nmembers = g->nmembers;
    memcpy(sg->members, g->members, (size_t)g->nmembers * STORE_EXT_MAX);
    return sg;
}

/* Reads the user ext and its rules from st, or else the group ext: 0 with *user or *group
 * set, 0 with both NULL when there is no such extension (any more), or an errno value. */
static int ext_read(struct store *st, const char *ext, const char *realm, struct sip_user **user,
                    struct sip_group **group)
{
    struct store_user u;
    struct store_forward fwd;
    *user = NULL;
    *group = NULL;
    int rc = store_user_get(st, ext, &u);
    if (rc == ENOENT) {
        struct store_group g;
        rc = store_group_get(st, ext, &g);
        if (rc == ENOENT)
            return 0;
        if (rc != 0)
            return EIO;
        *group = group_new(&g);
        return 0;
    }
    if (rc != 0 || store_forward_get(st, ext, &fwd) != 0)
        return EIO;
    *user = user_new(&u, &fwd, realm);
    return 0;
}

/* ---- start-up: everything ---- */

struct load_ctx {
    struct strmap *map;
    const char *realm;
    struct store *st;
    uint64_t read;
};

static int add_user(const struct store_user *u, void *arg)
{
    struct load_ctx *lc = arg;
    struct store_forward fwd;
    if (store_forward_get(lc->st, u->extension, &fwd) != 0)
        return EIO;
    struct sip_user *su = user_new(u, &fwd, lc->realm);
    strmap_put(lc->map, su->extension, su, NULL);
    lc->read++;
    return 0;
}

static int count_stale_realm(const char *key, void *val, void *ctx)
{
    (void)key;
    if (!((struct sip_user *)val)->ha1_valid)
        (*(int *)ctx)++;
    return STRMAP_KEEP;
}

static int add_group(const struct store_group *g, void *arg)
{
    struct strmap *groups = arg;
    struct sip_group *sg = group_new(g);
    strmap_put(groups, sg->extension, sg, NULL);
    return 0;
}

int usercache_load(struct sip *s, struct store *st)
{
    /* The version first: a change made while the table is read is applied again later,
     * which does no harm (applying a user is idempotent). */
    s->users_applied = store_users_version(st);
    if (s->users_applied < 0)
        return EIO;
    struct load_ctx lc = {NULL, s->domain, st, 0};
    if (strmap_create(&lc.map) != 0)
        return ENOMEM;
    struct strmap *groups = NULL;
    if (strmap_create(&groups) != 0) {
        strmap_destroy(lc.map, free);
        return ENOMEM;
    }
    if (store_user_list(st, NULL, 0, add_user, &lc) != 0 ||
        store_group_list(st, add_group, groups) != 0) {
        strmap_destroy(lc.map, free);
        strmap_destroy(groups, free);
        return EIO;
    }
    s->users = lc.map;
    s->groups = groups;
    atomic_fetch_add_explicit(&s->users_read, lc.read, memory_order_relaxed);
    int stale = 0;
    strmap_foreach(lc.map, count_stale_realm, &stale);
    if (stale)
        log_warn("%d user(s) have passwords set for another domain than '%s'; they cannot "
                 "register until their password is set again (sipbx user passwd)",
                 stale, s->domain);
    return 0;
}

const struct sip_user *usercache_get(struct sip *s, const char *ext)
{
    return ext ? strmap_get(s->users, ext) : NULL;
}

const struct sip_group *usercache_group(struct sip *s, const char *ext)
{
    return ext && s->groups ? strmap_get(s->groups, ext) : NULL;
}

/* ---- afterwards: what changed ---- */

/* One changed extension: its new entry (a user or a group), or neither when it was
 * deleted. */
struct change {
    char extension[STORE_EXT_MAX];
    struct sip_user *user;
    struct sip_group *group;
    int flags; /* STORE_CHANGE_*: created, a group's change */
};

/* A delta on its way from the writer thread to the SIP thread, which owns it once sent. */
struct usercache_delta {
    struct sip *s;
    struct store *st; /* the writer's connection, while the delta is read */
    size_t n, cap;
    struct change *changes;
};

static void delta_free(struct usercache_delta *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++) {
        free(d->changes[i].user);
        free(d->changes[i].group);
    }
    free(d->changes);
    free(d);
}

static int collect_change(const char *ext, int flags, void *arg)
{
    struct usercache_delta *d = arg;
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 16;
        d->changes = util_xrealloc(d->changes, cap * sizeof *d->changes);
        d->cap = cap;
    }
    struct change *c = &d->changes[d->n];
    snprintf(c->extension, sizeof c->extension, "%s", ext);
    c->flags = flags;
    int rc = ext_read(d->st, ext, d->s->domain, &c->user, &c->group);
    if (rc != 0)
        return rc;
    d->n++;
    return 0;
}

void usercache_apply(struct sip *s, struct usercache_delta *d)
{
    size_t added = 0, removed = 0;
    for (size_t i = 0; i < d->n; i++) {
        struct change *c = &d->changes[i];
        void *old = NULL;
        if (c->group) {
            strmap_put(s->groups, c->group->extension, c->group, &old);
            c->group = NULL;
            free(old);
            /* An extension that was a user and is a group now (deleted, then made a group
             * between two ticks). */
            if ((old = strmap_remove(s->users, c->extension)) != NULL) {
                free(old);
                reg_remove_user(s, c->extension);
                removed++;
            }
            continue;
        }
        free(strmap_remove(s->groups, c->extension)); /* a group no more, if it was one */
        if (c->user) {
            strmap_put(s->users, c->user->extension, c->user, &old);
            c->user = NULL; /* the map has it */
            added += old == NULL;
            free(old);
        } else if ((old = strmap_remove(s->users, c->extension)) != NULL) {
            free(old);
            reg_remove_user(s, c->extension);   /* a deleted user keeps no bindings */
            pres_user_deleted(s, c->extension); /* nor publications or subscriptions */
            removed++;
        }
    }
    log_debug("usercache: %zu user(s) changed (%zu new, %zu deleted); %zu users", d->n, added,
              removed, strmap_count(s->users));
}

static void delta_deliver(struct sip *s, void *d)
{
    usercache_apply(s, d);
    delta_free(d);
}

/* A delta never delivered (the loop stopped). */
static void delta_drop(void *d)
{
    delta_free(d);
}

int usercache_delta_read(struct sip *s, struct store *st, int64_t after, int64_t upto,
                         struct usercache_delta **out)
{
    struct usercache_delta *d = util_xcalloc(1, sizeof *d);
    d->s = s;
    d->st = st;
    int rc = store_user_changes(st, after, upto, collect_change, d);
    if (rc != 0) {
        delta_free(d);
        return rc;
    }
    d->st = NULL;
    atomic_fetch_add_explicit(&s->users_read, d->n, memory_order_relaxed);
    *out = d;
    return 0;
}

void usercache_delta_free(struct usercache_delta *d)
{
    delta_free(d);
}

/* Tells of each change of a user in d as a user.changed event (the event stream,
 * webhooks), once committed; a ring group's changes are not a user's. The users' rows were
 * committed before the delta was read; the event waits for the writer's next batch only so
 * that it travels the way registration.changed does. */
static void announce_changes(struct sip *s, const struct usercache_delta *d)
{
    for (size_t i = 0; i < d->n; i++) {
        const struct change *c = &d->changes[i];
        if (!c->user && (c->group || (c->flags & STORE_CHANGE_GROUP)))
            continue;
        const char *what = !c->user                            ? "deleted"
                           : (c->flags & STORE_CHANGE_CREATED) ? "created"
                                                               : "updated";
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "extension", c->extension);
        cJSON_AddStringToObject(o, "change", what);
        char *json = cJSON_PrintUnformatted(o);
        if (!json || store_writer_announce(s->writer, "user.changed", json, 0) != 0)
            log_error("usercache: out of memory: no user.changed event for %s", c->extension);
        free(json);
        cJSON_Delete(o);
    }
}

void usercache_tick(struct store *st, void *arg)
{
    struct sip *s = arg;
    int64_t now = util_mono_ms();
    if (s->users_pruned < s->users_applied && now - s->users_pruned_at >= PRUNE_MS) {
        if (store_user_changes_prune(st, s->users_applied) == 0)
            s->users_pruned = s->users_applied;
        s->users_pruned_at = now; /* a failed prune is tried again later, not every tick */
    }
    int64_t v = store_users_version(st);
    if (v < 0 || v <= s->users_applied)
        return;
    struct usercache_delta *d;
    if (usercache_delta_read(s, st, s->users_applied, v, &d) != 0)
        return;             /* the store said why; try again next tick */
    announce_changes(s, d); /* before the SIP thread owns d */
    if (sip_post(s, delta_deliver, delta_drop, d) != 0)
        return;
    s->users_applied = v;
}
