/* The admins table: dashboard and REST log-in accounts, passwords hashed with crypt(3). */
#include "store/store_int.h"

#include <errno.h>

int store_admin_count(struct store *st)
{
    return (int)store_scalar(st, "SELECT count(*) FROM admins");
}

int store_admin_set(struct store *st, const char *username, const char *password_hash)
{
    sqlite3_stmt *s = store_stmt(st, "INSERT INTO admins (username, password_hash, created_at) "
                                     "VALUES (?, ?, strftime('%s', 'now')) ON CONFLICT (username) "
                                     "DO UPDATE SET password_hash = excluded.password_hash");
    if (!s)
        return EIO;
    store_bind_text(s, 1, username);
    store_bind_text(s, 2, password_hash);
    return store_step_done(st, s);
}

int store_admin_hash(struct store *st, const char *username, char *out, size_t outlen)
{
    sqlite3_stmt *s = store_stmt(st, "SELECT password_hash FROM admins WHERE username = ?");
    if (!s)
        return EIO;
    store_bind_text(s, 1, username);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        store_col_text(s, 0, out, outlen);
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? ENOENT : EIO;
}
