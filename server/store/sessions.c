/* The sessions table: admin log-ins of the dashboard (cookie + CSRF token). Sessions live
 * in the database so a restart of the daemon does not log everyone out. */
#include "store/store_int.h"
#include "util/util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define SECRET_BYTES 32

static int random_hex(char out[STORE_SESSION_ID_LEN])
{
    unsigned char raw[SECRET_BYTES];
    int rc = util_random(raw, sizeof raw);
    if (rc == 0)
        util_hex(out, raw, sizeof raw);
    return rc;
}

int store_session_create(struct store *st, const char *username, int64_t now, int64_t expires_at,
                         char id[STORE_SESSION_ID_LEN], struct store_session *out)
{
    char sid[STORE_SESSION_ID_LEN], hash[65];
    struct store_session se;
    memset(&se, 0, sizeof se);
    int rc = random_hex(sid);
    if (rc == 0)
        rc = random_hex(se.csrf);
    if (rc != 0)
        return rc;
    util_sha256_hex(hash, sid);
    sqlite3_stmt *s = store_stmt(st, "INSERT INTO sessions (id_hash, username, csrf_token, "
                                     "created_at, expires_at) VALUES (?, ?, ?, ?, ?)");
    if (!s)
        return EIO;
    store_bind_text(s, 1, hash);
    store_bind_text(s, 2, username);
    store_bind_text(s, 3, se.csrf);
    sqlite3_bind_int64(s, 4, now);
    sqlite3_bind_int64(s, 5, expires_at);
    if (store_step_done(st, s) != 0)
        return EIO;
    snprintf(se.username, sizeof se.username, "%s", username);
    se.created_at = now;
    se.expires_at = expires_at;
    memcpy(id, sid, STORE_SESSION_ID_LEN);
    *out = se;
    return 0;
}

int store_session_get(struct store *st, const char *id, int64_t now, struct store_session *out)
{
    if (strlen(id) != 2 * SECRET_BYTES)
        return ENOENT;
    char hash[65];
    util_sha256_hex(hash, id);
    sqlite3_stmt *s = store_stmt(st, "SELECT username, csrf_token, created_at, expires_at "
                                     "FROM sessions WHERE id_hash = ? AND expires_at > ?");
    if (!s)
        return EIO;
    store_bind_text(s, 1, hash);
    sqlite3_bind_int64(s, 2, now);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        memset(out, 0, sizeof *out);
        store_col_text(s, 0, out->username, sizeof out->username);
        store_col_text(s, 1, out->csrf, sizeof out->csrf);
        out->created_at = sqlite3_column_int64(s, 2);
        out->expires_at = sqlite3_column_int64(s, 3);
    }
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? ENOENT : EIO;
}

/* Runs an UPDATE/DELETE keyed by the session hash; "no row touched" is ENOENT. */
static int by_id(struct store *st, sqlite3_stmt *s)
{
    return store_step_changed(st, s);
}

int store_session_touch(struct store *st, const char *id, int64_t expires_at)
{
    char hash[65];
    util_sha256_hex(hash, id);
    sqlite3_stmt *s = store_stmt(st, "UPDATE sessions SET expires_at = ? WHERE id_hash = ?");
    if (!s)
        return EIO;
    sqlite3_bind_int64(s, 1, expires_at);
    store_bind_text(s, 2, hash);
    return by_id(st, s);
}

int store_session_delete(struct store *st, const char *id)
{
    char hash[65];
    util_sha256_hex(hash, id);
    sqlite3_stmt *s = store_stmt(st, "DELETE FROM sessions WHERE id_hash = ?");
    if (!s)
        return EIO;
    store_bind_text(s, 1, hash);
    return by_id(st, s);
}

int store_session_purge(struct store *st, int64_t now)
{
    sqlite3_stmt *s = store_stmt(st, "DELETE FROM sessions WHERE expires_at <= ?");
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, now);
    if (store_step_done(st, s) != 0)
        return -1;
    return sqlite3_changes(sqlite3_db_handle(s));
}
