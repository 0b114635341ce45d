/* The registrations table: the persistent copy of the registrar's bindings. */
#include "store/store_int.h"

#include <errno.h>
#include <string.h>

int store_reg_save(struct store *st, const struct store_reg *r)
{
    sqlite3_stmt *s = store_stmt(
        st, "INSERT INTO registrations (extension, contact, source, transport, user_agent, "
            "call_id, cseq, instance, q, registered_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (extension, contact) DO UPDATE SET source = excluded.source, "
            "transport = excluded.transport, user_agent = excluded.user_agent, "
            "call_id = excluded.call_id, cseq = excluded.cseq, instance = excluded.instance, "
            "q = excluded.q, expires_at = excluded.expires_at");
    if (!s)
        return EIO;
    store_bind_text(s, 1, r->extension);
    store_bind_text(s, 2, r->contact);
    store_bind_text(s, 3, r->source);
    store_bind_text(s, 4, r->transport);
    store_bind_text(s, 5, r->user_agent);
    store_bind_text(s, 6, r->call_id);
    sqlite3_bind_int64(s, 7, r->cseq);
    store_bind_text(s, 8, r->instance);
    sqlite3_bind_double(s, 9, r->q);
    sqlite3_bind_int64(s, 10, r->registered_at);
    sqlite3_bind_int64(s, 11, r->expires_at);
    int rc = store_step_done(st, s);
    /* A binding of a user deleted meanwhile violates the foreign key: nothing to keep. */
    return rc == ENOENT ? 0 : rc;
}

int store_reg_remove(struct store *st, const char *ext, const char *contact)
{
    sqlite3_stmt *s;
    if (contact) {
        s = store_stmt(st, "DELETE FROM registrations WHERE extension = ? AND contact = ?");
        if (!s)
            return EIO;
        store_bind_text(s, 2, contact);
    } else {
        s = store_stmt(st, "DELETE FROM registrations WHERE extension = ?");
        if (!s)
            return EIO;
    }
    store_bind_text(s, 1, ext);
    return store_step_done(st, s);
}

int store_reg_list(struct store *st, const char *ext, int64_t now,
                   int (*cb)(const struct store_reg *r, void *ctx), void *ctx)
{
    sqlite3_stmt *s = store_stmt(
        st, "SELECT extension, contact, source, transport, user_agent, call_id, cseq, instance, "
            "q, registered_at, expires_at FROM registrations "
            "WHERE expires_at > ? AND (? IS NULL OR extension = ?) ORDER BY extension, contact");
    if (!s)
        return EIO;
    sqlite3_bind_int64(s, 1, now);
    store_bind_text(s, 2, ext);
    store_bind_text(s, 3, ext);
    int rc, ret = 0;
    struct store_reg r;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        memset(&r, 0, sizeof r);
        store_col_text(s, 0, r.extension, sizeof r.extension);
        store_col_text(s, 1, r.contact, sizeof r.contact);
        store_col_text(s, 2, r.source, sizeof r.source);
        store_col_text(s, 3, r.transport, sizeof r.transport);
        store_col_text(s, 4, r.user_agent, sizeof r.user_agent);
        store_col_text(s, 5, r.call_id, sizeof r.call_id);
        r.cseq = (uint32_t)sqlite3_column_int64(s, 6);
        store_col_text(s, 7, r.instance, sizeof r.instance);
        r.q = sqlite3_column_double(s, 8);
        r.registered_at = sqlite3_column_int64(s, 9);
        r.expires_at = sqlite3_column_int64(s, 10);
        if ((ret = cb(&r, ctx)) != 0)
            break;
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = EIO;
    sqlite3_reset(s);
    return ret;
}

int store_reg_purge(struct store *st, int64_t now)
{
    sqlite3_stmt *s = store_stmt(st, "DELETE FROM registrations WHERE expires_at <= ?");
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, now);
    if (store_step_done(st, s) != 0)
        return -1;
    return sqlite3_changes(sqlite3_db_handle(s));
}
