/* The SIP thread's copy of the users table. The writer thread notices changes (by the
 * users change counter, so the CLI in another process counts too) and hands over a whole
 * new copy; the SIP thread swaps it in and never reads the database itself. */
#include "sip/sip_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct load_ctx {
    struct strmap *map;
    const char *realm;
    struct store *st;
};

static int add_user(const struct store_user *u, void *arg)
{
    struct load_ctx *lc = arg;
    struct sip_user *su = calloc(1, sizeof *su);
    if (!su)
        return ENOMEM;
    memcpy(su->extension, u->extension, sizeof su->extension);
    memcpy(su->display_name, u->display_name, sizeof su->display_name);
    memcpy(su->ha1, u->ha1, sizeof su->ha1);
    su->ha1_valid = strcmp(u->realm, lc->realm) == 0;
    su->enabled = u->enabled;
    su->call_waiting = u->call_waiting;
    su->ring_timeout = u->ring_timeout;
    if (store_forward_get(lc->st, u->extension, &su->fwd) != 0) {
        free(su);
        return EIO;
    }
    if (strmap_put(lc->map, su->extension, su, NULL) != 0) {
        free(su);
        return ENOMEM;
    }
    return 0;
}

/* Reads every user into a new map; NULL on failure (already logged by the store). */
static struct strmap *load_all(struct store *st, const char *realm)
{
    struct load_ctx lc = {NULL, realm, st};
    if (strmap_create(&lc.map) != 0)
        return NULL;
    if (store_user_list(st, NULL, 0, add_user, &lc) != 0) {
        strmap_destroy(lc.map, free);
        return NULL;
    }
    return lc.map;
}

static int count_stale_realm(const char *key, void *val, void *ctx)
{
    (void)key;
    if (!((struct sip_user *)val)->ha1_valid)
        (*(int *)ctx)++;
    return STRMAP_KEEP;
}

int usercache_load(struct sip *s, struct store *st)
{
    s->users_version = store_users_version(st);
    struct strmap *m = load_all(st, s->domain);
    if (!m)
        return EIO;
    s->users = m;
    int stale = 0;
    strmap_foreach(m, count_stale_realm, &stale);
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

/* The message payload: the new map, owned by the message until swapped in. */
struct swap_msg {
    struct strmap *map;
};

/* Drops bindings of users that no longer exist in the new map. */
static int drop_missing(const char *key, void *val, void *ctx)
{
    (void)val;
    struct sip *s = ctx;
    if (!strmap_get(s->users, key))
        reg_remove_user(s, key);
    return STRMAP_KEEP;
}

static void swap_in(su_root_magic_t *magic, su_msg_r msg, su_msg_arg_t *arg)
{
    (void)magic;
    (void)msg;
    struct swap_msg *sm = (struct swap_msg *)arg;
    struct sip *s = *(struct sip **)(sm + 1);
    struct strmap *old = s->users;
    s->users = sm->map;
    sm->map = NULL;
    strmap_foreach(old, drop_missing, s);
    strmap_destroy(old, free);
    log_debug("user table reloaded: %zu users", strmap_count(s->users));
}

static void swap_deinit(su_msg_arg_t *arg)
{
    struct swap_msg *sm = (struct swap_msg *)arg;
    if (sm->map)
        strmap_destroy(sm->map, free);
}

void usercache_tick(struct store *st, void *arg)
{
    struct sip *s = arg;
    int64_t v = store_users_version(st);
    if (v < 0 || v == s->users_version)
        return;
    struct strmap *m = load_all(st, s->domain);
    if (!m)
        return; /* try again next tick */
    su_msg_r msg = SU_MSG_R_INIT;
    if (su_msg_new(msg, sizeof(struct swap_msg) + sizeof(struct sip *)) != 0) {
        strmap_destroy(m, free);
        return;
    }
    struct swap_msg *sm = (struct swap_msg *)su_msg_data(msg);
    sm->map = m;
    *(struct sip **)(sm + 1) = s;
    su_msg_deinitializer(msg, swap_deinit);
    if (su_msg_send_to(msg, su_root_task(s->root), swap_in) != 0) {
        su_msg_destroy(msg);
        return;
    }
    s->users_version = v;
}
