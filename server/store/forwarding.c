/* The forward_rules table: a user's four call-forward rules (each to a target, or to the
 * user's voicemail). */
#include "store/store_int.h"

#include <errno.h>
#include <string.h>

const char *const store_forward_kinds[STORE_FWD_KINDS] = {"unconditional", "busy", "no_answer",
                                                          "unavailable"};

static int kind_index(const char *kind)
{
    for (int i = 0; i < STORE_FWD_KINDS; i++)
        if (strcmp(store_forward_kinds[i], kind) == 0)
            return i;
    return -1;
}

int store_forward_get(struct store *st, const char *ext, struct store_forward *out)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s = store_stmt(st, "SELECT kind, enabled, target, coalesce(timeout, 0), "
                                     "voicemail FROM forward_rules WHERE extension = ?");
    if (!s)
        return EIO;
    store_bind_text(s, 1, ext);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int k = kind_index((const char *)sqlite3_column_text(s, 0));
        if (k < 0)
            continue;
        out->rule[k].enabled = sqlite3_column_int(s, 1);
        store_col_text(s, 2, out->rule[k].target, sizeof out->rule[k].target);
        out->rule[k].timeout = sqlite3_column_int(s, 3);
        out->rule[k].voicemail = sqlite3_column_int(s, 4);
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : EIO;
}

struct set_ctx {
    const char *ext;
    const struct store_forward *f;
};

static int set_rules(struct store *st, void *arg)
{
    struct set_ctx *sc = arg;
    struct store_user u;
    int rc = store_user_get(st, sc->ext, &u);
    if (rc != 0)
        return rc;
    for (int k = 0; k < STORE_FWD_KINDS; k++) {
        sqlite3_stmt *s = store_stmt(
            st, "INSERT INTO forward_rules (extension, kind, enabled, target, timeout, voicemail) "
                "VALUES (?, ?, ?, ?, nullif(?, 0), ?) ON CONFLICT (extension, kind) DO UPDATE SET "
                "enabled = excluded.enabled, target = excluded.target, timeout = excluded.timeout, "
                "voicemail = excluded.voicemail");
        if (!s)
            return EIO;
        const struct store_forward_rule *r = &sc->f->rule[k];
        store_bind_text(s, 1, sc->ext);
        store_bind_text(s, 2, store_forward_kinds[k]);
        sqlite3_bind_int(s, 3, r->enabled ? 1 : 0);
        store_bind_text(s, 4, r->target);
        sqlite3_bind_int(s, 5, r->timeout);
        sqlite3_bind_int(s, 6, r->voicemail ? 1 : 0);
        if ((rc = store_step_done(st, s)) != 0)
            return rc;
    }
    return 0;
}

int store_forward_set(struct store *st, const char *ext, const struct store_forward *f)
{
    struct set_ctx sc = {ext, f};
    return store_tx(st, set_rules, &sc);
}
