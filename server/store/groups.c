/* The ring_groups and ring_group_members tables (db/010): extensions that ring a list of
 * users, all at once or one after another. A group and its members are written in one
 * transaction, so the SIP thread (which follows the user_changes log) never sees half a
 * group. */
#include "store/store_int.h"
#include "util/util.h"

#include <errno.h>
#include <string.h>

const char *const store_group_strategies[2] = {"ringall", "sequential"};

#define GROUP_COLS                                                                                 \
    "extension, name, strategy, member_timeout, no_answer_target, created_at, updated_at"

static void read_group(sqlite3_stmt *s, struct store_group *g)
{
    memset(g, 0, sizeof *g);
    store_col_text(s, 0, g->extension, sizeof g->extension);
    store_col_text(s, 1, g->name, sizeof g->name);
    const unsigned char *strategy = sqlite3_column_text(s, 2);
    g->strategy = strategy && strcmp((const char *)strategy, "sequential") == 0
                      ? STORE_GROUP_SEQUENTIAL
                      : STORE_GROUP_RINGALL;
    g->member_timeout = sqlite3_column_int(s, 3);
    store_col_text(s, 4, g->no_answer_target, sizeof g->no_answer_target);
    g->created_at = sqlite3_column_int64(s, 5);
    g->updated_at = sqlite3_column_int64(s, 6);
}

/* Reads the members of g->extension into g; returns 0 or EIO. */
static int read_members(struct store *st, struct store_group *g)
{
    sqlite3_stmt *s = store_stmt(st, "SELECT member FROM ring_group_members WHERE grp = ? "
                                     "ORDER BY position");
    if (!s)
        return EIO;
    store_bind_text(s, 1, g->extension);
    int rc;
    g->nmembers = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW && g->nmembers < STORE_GROUP_MEMBERS_MAX)
        store_col_text(s, 0, g->members[g->nmembers++], STORE_EXT_MAX);
    sqlite3_reset(s);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : EIO;
}

/* Writes g's members in place of the ones stored; returns 0, ENOENT (a member that is not
 * a user) or EIO. */
static int write_members(struct store *st, const struct store_group *g)
{
    sqlite3_stmt *s = store_stmt(st, "DELETE FROM ring_group_members WHERE grp = ?");
    if (!s)
        return EIO;
    store_bind_text(s, 1, g->extension);
    int rc = store_step_done(st, s);
    for (int i = 0; rc == 0 && i < g->nmembers; i++) {
        s = store_stmt(st, "INSERT INTO ring_group_members (grp, position, member) "
                           "VALUES (?, ?, ?)");
        if (!s)
            return EIO;
        store_bind_text(s, 1, g->extension);
        sqlite3_bind_int(s, 2, i);
        store_bind_text(s, 3, g->members[i]);
        rc = store_step_done(st, s);
        if (rc == EEXIST)
            rc = EINVAL; /* a member twice: the caller checks that before */
    }
    return rc;
}

static int add_tx(struct store *st, void *arg)
{
    const struct store_group *g = arg;
    sqlite3_stmt *s = store_stmt(st, "INSERT INTO ring_groups (" GROUP_COLS ") "
                                     "VALUES (?, ?, ?, ?, ?, ?, ?)");
    if (!s)
        return EIO;
    store_bind_text(s, 1, g->extension);
    store_bind_text(s, 2, g->name);
    store_bind_text(s, 3, store_group_strategies[g->strategy == STORE_GROUP_SEQUENTIAL]);
    sqlite3_bind_int(s, 4, g->member_timeout);
    store_bind_text(s, 5, g->no_answer_target);
    sqlite3_bind_int64(s, 6, g->created_at);
    sqlite3_bind_int64(s, 7, g->updated_at ? g->updated_at : g->created_at);
    int rc = store_step_done(st, s);
    return rc ? rc : write_members(st, g);
}

int store_group_add(struct store *st, const struct store_group *g)
{
    return store_tx(st, add_tx, (void *)g);
}

int store_group_get(struct store *st, const char *ext, struct store_group *out)
{
    sqlite3_stmt *s = store_stmt(st, "SELECT " GROUP_COLS " FROM ring_groups WHERE extension = ?");
    if (!s)
        return EIO;
    store_bind_text(s, 1, ext);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        read_group(s, out);
    sqlite3_reset(s);
    if (rc != SQLITE_ROW)
        return rc == SQLITE_DONE ? ENOENT : EIO;
    return read_members(st, out);
}

static int update_tx(struct store *st, void *arg)
{
    const struct store_group *g = arg;
    sqlite3_stmt *s = store_stmt(st, "UPDATE ring_groups SET name = ?, strategy = ?, "
                                     "member_timeout = ?, no_answer_target = ?, "
                                     "updated_at = strftime('%s', 'now') WHERE extension = ?");
    if (!s)
        return EIO;
    store_bind_text(s, 1, g->name);
    store_bind_text(s, 2, store_group_strategies[g->strategy == STORE_GROUP_SEQUENTIAL]);
    sqlite3_bind_int(s, 3, g->member_timeout);
    store_bind_text(s, 4, g->no_answer_target);
    store_bind_text(s, 5, g->extension);
    int rc = store_step_changed(st, s);
    return rc ? rc : write_members(st, g);
}

int store_group_update(struct store *st, const struct store_group *g)
{
    return store_tx(st, update_tx, (void *)g);
}

int store_group_delete(struct store *st, const char *ext)
{
    sqlite3_stmt *s = store_stmt(st, "DELETE FROM ring_groups WHERE extension = ?");
    if (!s)
        return EIO;
    store_bind_text(s, 1, ext);
    return store_step_changed(st, s);
}

int store_group_list(struct store *st, int (*cb)(const struct store_group *g, void *ctx), void *ctx)
{
    /* Not a cached statement: read_members uses the cache while this one steps. */
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(st->db,
                           "SELECT " GROUP_COLS " FROM ring_groups ORDER BY "
                           "CASE WHEN extension GLOB '*[^0-9]*' THEN '1' || extension "
                           "ELSE '0' || printf('%02d', length(extension)) || extension END",
                           -1, &s, NULL) != SQLITE_OK) {
        log_error("store: cannot list ring groups: %s", sqlite3_errmsg(st->db));
        sqlite3_finalize(s);
        return EIO;
    }
    int rc, ret = 0;
    struct store_group g;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        read_group(s, &g);
        if ((ret = read_members(st, &g)) != 0 || (ret = cb(&g, ctx)) != 0)
            break;
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = EIO;
    sqlite3_finalize(s);
    return ret;
}

int store_group_count(struct store *st)
{
    return (int)store_scalar(st, "SELECT count(*) FROM ring_groups");
}
