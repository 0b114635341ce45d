/* The users table: extensions with their digest, display name and call settings. */
#include "store/store_int.h"

#include <errno.h>
#include <string.h>

#define USER_COLS                                                                                  \
    "extension, display_name, ha1, realm, enabled, call_waiting, coalesce(ring_timeout, 0), "      \
    "created_at, updated_at"

static void read_user(sqlite3_stmt *s, struct store_user *u)
{
    memset(u, 0, sizeof *u);
    store_col_text(s, 0, u->extension, sizeof u->extension);
    store_col_text(s, 1, u->display_name, sizeof u->display_name);
    store_col_text(s, 2, u->ha1, sizeof u->ha1);
    store_col_text(s, 3, u->realm, sizeof u->realm);
    u->enabled = sqlite3_column_int(s, 4);
    u->call_waiting = sqlite3_column_int(s, 5);
    u->ring_timeout = sqlite3_column_int(s, 6);
    u->created_at = sqlite3_column_int64(s, 7);
    u->updated_at = sqlite3_column_int64(s, 8);
}

int store_user_add(struct store *st, const struct store_user *u)
{
    sqlite3_stmt *s = store_stmt(st, "INSERT INTO users (extension, display_name, ha1, realm, "
                                     "enabled, call_waiting, ring_timeout, created_at, updated_at) "
                                     "VALUES (?, ?, ?, ?, ?, ?, nullif(?, 0), ?, ?)");
    if (!s)
        return EIO;
    store_bind_text(s, 1, u->extension);
    store_bind_text(s, 2, u->display_name);
    store_bind_text(s, 3, u->ha1);
    store_bind_text(s, 4, u->realm);
    sqlite3_bind_int(s, 5, u->enabled ? 1 : 0);
    sqlite3_bind_int(s, 6, u->call_waiting ? 1 : 0);
    sqlite3_bind_int(s, 7, u->ring_timeout);
    sqlite3_bind_int64(s, 8, u->created_at);
    sqlite3_bind_int64(s, 9, u->updated_at ? u->updated_at : u->created_at);
    return store_step_done(st, s);
}

int store_user_get(struct store *st, const char *ext, struct store_user *out)
{
    sqlite3_stmt *s = store_stmt(st, "SELECT " USER_COLS " FROM users WHERE extension = ?");
    if (!s)
        return EIO;
    store_bind_text(s, 1, ext);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        read_user(s, out);
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? ENOENT : EIO;
}

/* Runs an UPDATE/DELETE keyed by extension and maps "no row touched" to ENOENT. */
static int changed_or_enoent(struct store *st, sqlite3_stmt *s)
{
    int rc = store_step_done(st, s);
    if (rc == 0 && sqlite3_changes(sqlite3_db_handle(s)) == 0)
        return ENOENT;
    return rc;
}

int store_user_update(struct store *st, const struct store_user *u)
{
    sqlite3_stmt *s = store_stmt(st, "UPDATE users SET display_name = ?, enabled = ?, "
                                     "call_waiting = ?, ring_timeout = nullif(?, 0), "
                                     "updated_at = strftime('%s', 'now') WHERE extension = ?");
    if (!s)
        return EIO;
    store_bind_text(s, 1, u->display_name);
    sqlite3_bind_int(s, 2, u->enabled ? 1 : 0);
    sqlite3_bind_int(s, 3, u->call_waiting ? 1 : 0);
    sqlite3_bind_int(s, 4, u->ring_timeout);
    store_bind_text(s, 5, u->extension);
    return changed_or_enoent(st, s);
}

int store_user_set_ha1(struct store *st, const char *ext, const char *realm, const char *ha1)
{
    sqlite3_stmt *s = store_stmt(st, "UPDATE users SET ha1 = ?, realm = ?, "
                                     "updated_at = strftime('%s', 'now') WHERE extension = ?");
    if (!s)
        return EIO;
    store_bind_text(s, 1, ha1);
    store_bind_text(s, 2, realm);
    store_bind_text(s, 3, ext);
    return changed_or_enoent(st, s);
}

int store_user_delete(struct store *st, const char *ext)
{
    sqlite3_stmt *s = store_stmt(st, "DELETE FROM users WHERE extension = ?");
    if (!s)
        return EIO;
    store_bind_text(s, 1, ext);
    return changed_or_enoent(st, s);
}

int store_user_list(struct store *st, const char *after, int limit,
                    int (*cb)(const struct store_user *u, void *ctx), void *ctx)
{
    sqlite3_stmt *s = store_stmt(st, "SELECT " USER_COLS " FROM users WHERE extension > ? "
                                     "ORDER BY extension LIMIT ?");
    if (!s)
        return EIO;
    store_bind_text(s, 1, after ? after : "");
    sqlite3_bind_int(s, 2, limit > 0 ? limit : -1);
    int rc, ret = 0;
    struct store_user u;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        read_user(s, &u);
        if ((ret = cb(&u, ctx)) != 0)
            break;
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = EIO;
    sqlite3_reset(s);
    return ret;
}

int store_user_count(struct store *st)
{
    return (int)store_scalar(st, "SELECT count(*) FROM users");
}

int64_t store_users_version(struct store *st)
{
    /* The last sequence number handed out, kept by SQLite even when the rows are pruned. */
    return store_scalar(st, "SELECT coalesce((SELECT seq FROM sqlite_sequence "
                            "WHERE name = 'user_changes'), 0)");
}

int store_user_changes(struct store *st, int64_t after, int64_t upto,
                       int (*cb)(const char *ext, int created, void *ctx), void *ctx)
{
    sqlite3_stmt *s = store_stmt(st, "SELECT extension, max(created) FROM user_changes "
                                     "WHERE seq > ? AND seq <= ? GROUP BY extension");
    if (!s)
        return EIO;
    sqlite3_bind_int64(s, 1, after);
    sqlite3_bind_int64(s, 2, upto);
    int rc, ret = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        char ext[STORE_EXT_MAX];
        store_col_text(s, 0, ext, sizeof ext);
        if ((ret = cb(ext, sqlite3_column_int(s, 1), ctx)) != 0)
            break;
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = EIO;
    sqlite3_reset(s);
    return ret;
}

int store_user_changes_prune(struct store *st, int64_t upto)
{
    sqlite3_stmt *s = store_stmt(st, "DELETE FROM user_changes WHERE seq <= ?");
    if (!s)
        return EIO;
    sqlite3_bind_int64(s, 1, upto);
    return store_step_done(st, s);
}
