/* The users table: extensions with their digest, display name and call settings. */
#include "store/store_int.h"
#include "util/util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define USER_COLS                                                                                  \
    "extension, display_name, ha1, realm, enabled, call_waiting, coalesce(ring_timeout, 0), "      \
    "created_at, updated_at, dnd"

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
    u->dnd = sqlite3_column_int(s, 9);
}

int store_user_add(struct store *st, const struct store_user *u)
{
    sqlite3_stmt *s =
        store_stmt(st, "INSERT INTO users (extension, display_name, ha1, realm, "
                       "enabled, call_waiting, ring_timeout, created_at, updated_at, dnd) "
                       "VALUES (?, ?, ?, ?, ?, ?, nullif(?, 0), ?, ?, ?)");
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
    sqlite3_bind_int(s, 10, u->dnd ? 1 : 0);
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
    return store_step_changed(st, s);
}

int store_user_update(struct store *st, const struct store_user *u)
{
    sqlite3_stmt *s = store_stmt(st, "UPDATE users SET display_name = ?, enabled = ?, "
                                     "call_waiting = ?, ring_timeout = nullif(?, 0), dnd = ?, "
                                     "updated_at = strftime('%s', 'now') WHERE extension = ?");
    if (!s)
        return EIO;
    store_bind_text(s, 1, u->display_name);
    sqlite3_bind_int(s, 2, u->enabled ? 1 : 0);
    sqlite3_bind_int(s, 3, u->call_waiting ? 1 : 0);
    sqlite3_bind_int(s, 4, u->ring_timeout);
    sqlite3_bind_int(s, 5, u->dnd ? 1 : 0);
    store_bind_text(s, 6, u->extension);
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

/* ---- filtered and sorted lists (the REST list) ---- */

/* The natural order of extensions as text: all-digit ones first, by length and then
 * digits (that is, by number), then the others by their text. */
#define NATURAL_KEY                                                                                \
    "CASE WHEN extension GLOB '*[^0-9]*' THEN '1' || extension "                                   \
    "ELSE '0' || printf('%%02d', length(extension)) || extension END"

/* The users with the columns the filters and orders need; ?1 is now. A format string for
 * snprintf (hence "%%"). */
#define QUERY_ROWS                                                                                 \
    "WITH u AS (SELECT extension, display_name, ha1, realm, enabled, call_waiting, "               \
    "coalesce(ring_timeout, 0) AS ring_timeout, created_at, updated_at, dnd, "                     \
    "EXISTS (SELECT 1 FROM registrations g WHERE g.extension = users.extension "                   \
    "AND g.expires_at > ?1) AS online, " NATURAL_KEY " AS nat FROM users) "

/* The sort key of each order, as text so that one cursor form fits them all. */
static const char *const sort_keys[] = {
    [STORE_USER_SORT_EXTENSION] = "nat",
    [STORE_USER_SORT_NAME] = "lower(display_name)",
    [STORE_USER_SORT_STATUS] = "CASE WHEN enabled = 0 THEN '2' WHEN online THEN '0' ELSE '1' END",
    [STORE_USER_SORT_CREATED] = "printf('%020d', created_at)",
};

/* Writes the query of q: the rows with their key k, filtered (parameters ?2 text, ?3
 * enabled), after the cursor (?4, ?5) when cursor, in q's order when ordered, at most ?6
 * of them when limited; count: only their number. */
static int query_sql(char *out, size_t outlen, const struct store_user_query *q, int count)
{
    static const char *const status_sql[] = {
        [STORE_USER_ANY] = "",
        [STORE_USER_ONLINE] = " AND enabled = 1 AND online",
        [STORE_USER_OFFLINE] = " AND enabled = 1 AND NOT online",
        [STORE_USER_DISABLED] = " AND enabled = 0",
        [STORE_USER_DND] = " AND enabled = 1 AND dnd = 1",
    };
    if ((unsigned)q->sort >= sizeof sort_keys / sizeof sort_keys[0] ||
        (unsigned)q->status >= sizeof status_sql / sizeof status_sql[0])
        return EINVAL;
    int cursor = !count && q->after && q->after2;
    const char *dir = q->desc ? "DESC" : "ASC";
    int n = snprintf(
        out, outlen, QUERY_ROWS "SELECT %s FROM (SELECT *, %s AS k FROM u) WHERE 1%s%s%s%s%s",
        count ? "count(*)"
              : "extension, display_name, ha1, realm, enabled, call_waiting, "
                "ring_timeout, created_at, updated_at, dnd, online, k, nat",
        sort_keys[q->sort],
        q->q && *q->q ? " AND (instr(lower(extension), lower(?2)) > 0 OR "
                        "instr(lower(display_name), lower(?2)) > 0)"
                      : "",
        q->enabled >= 0 ? " AND enabled = ?3" : "", status_sql[q->status],
        cursor ? (q->desc ? " AND (k, nat) < (?4, ?5)" : " AND (k, nat) > (?4, ?5)") : "",
        count ? "" : " ORDER BY k ");
    if (!count)
        n += snprintf(out + n, outlen - (size_t)n, "%s, nat %s LIMIT ?6", dir, dir);
    return n > 0 && (size_t)n < outlen ? 0 : EINVAL;
}

/* Prepares a statement whose text depends on the request (not cached); NULL after
 * logging. */
static sqlite3_stmt *prepare_query(struct store *st, const struct store_user_query *q, int count)
{
    char sql[2048];
    sqlite3_stmt *s = NULL;
    if (query_sql(sql, sizeof sql, q, count) != 0)
        return NULL;
    if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
        log_error("store: cannot prepare the user list: %s", sqlite3_errmsg(st->db));
        sqlite3_finalize(s);
        return NULL;
    }
    sqlite3_bind_int64(s, 1, q->now);
    store_bind_text(s, 2, q->q);
    sqlite3_bind_int(s, 3, q->enabled);
    store_bind_text(s, 4, q->after);
    store_bind_text(s, 5, q->after2);
    return s;
}

int store_user_query(struct store *st, const struct store_user_query *q, int limit,
                     int (*cb)(const struct store_user *u, const char *key, const char *key2,
                               int online, void *ctx),
                     void *ctx)
{
    sqlite3_stmt *s = prepare_query(st, q, 0);
    if (!s)
        return EIO;
    sqlite3_bind_int(s, 6, limit > 0 ? limit : -1);
    int rc, ret = 0;
    struct store_user u;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        read_user(s, &u);
        const unsigned char *k = sqlite3_column_text(s, 11), *k2 = sqlite3_column_text(s, 12);
        if ((ret = cb(&u, k ? (const char *)k : "", k2 ? (const char *)k2 : "",
                      sqlite3_column_int(s, 10), ctx)) != 0)
            break;
    }
    if (ret == 0 && rc != SQLITE_DONE) {
        log_error("store: listing users: %s", sqlite3_errmsg(st->db));
        ret = EIO;
    }
    sqlite3_finalize(s);
    return ret;
}

int64_t store_user_query_count(struct store *st, const struct store_user_query *q)
{
    sqlite3_stmt *s = prepare_query(st, q, 1);
    if (!s)
        return -1;
    int64_t n = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
    if (n < 0)
        log_error("store: counting users: %s", sqlite3_errmsg(st->db));
    sqlite3_finalize(s);
    return n;
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
                       int (*cb)(const char *ext, int flags, void *ctx), void *ctx)
{
    sqlite3_stmt *s = store_stmt(st, "SELECT extension, max(created) | (max(grp) << 1) "
                                     "FROM user_changes WHERE seq > ? AND seq <= ? "
                                     "GROUP BY extension");
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
