/* The voicemail tables (db/011): messages (their audio is a file in the data directory, named
 * by the row) and users' own greetings (kept here as 8 kHz PCM). */
#include "store/store_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MSG_COLS                                                                                   \
    "id, extension, caller, caller_name, call_id, received_us, duration_ms, heard, file, bytes"

static void read_msg(sqlite3_stmt *s, struct store_vm_msg *m)
{
    memset(m, 0, sizeof *m);
    m->id = sqlite3_column_int64(s, 0);
    store_col_text(s, 1, m->extension, sizeof m->extension);
    store_col_text(s, 2, m->caller, sizeof m->caller);
    store_col_text(s, 3, m->caller_name, sizeof m->caller_name);
    store_col_text(s, 4, m->call_id, sizeof m->call_id);
    m->received_us = sqlite3_column_int64(s, 5);
    m->duration_ms = sqlite3_column_int64(s, 6);
    m->heard = sqlite3_column_int(s, 7);
    store_col_text(s, 8, m->file, sizeof m->file);
    m->bytes = sqlite3_column_int64(s, 9);
}

int store_vm_add(struct store *st, struct store_vm_msg *m)
{
    sqlite3_stmt *s = store_stmt(st, "INSERT INTO voicemail_messages (extension, caller, "
                                     "caller_name, call_id, received_us, duration_ms, heard, "
                                     "file, bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
    if (!s)
        return EIO;
    store_bind_text(s, 1, m->extension);
    store_bind_text(s, 2, m->caller);
    store_bind_text(s, 3, m->caller_name);
    store_bind_text(s, 4, m->call_id);
    sqlite3_bind_int64(s, 5, m->received_us);
    sqlite3_bind_int64(s, 6, m->duration_ms);
    sqlite3_bind_int(s, 7, m->heard ? 1 : 0);
    store_bind_text(s, 8, m->file);
    sqlite3_bind_int64(s, 9, m->bytes);
    int rc = store_step_done(st, s);
    if (rc == 0)
        m->id = sqlite3_last_insert_rowid(st->db);
    return rc == ENOENT || rc == EEXIST || rc == EINVAL ? rc : rc ? EIO : 0;
}

int store_vm_get(struct store *st, int64_t id, struct store_vm_msg *out)
{
    sqlite3_stmt *s = store_stmt(st, "SELECT " MSG_COLS " FROM voicemail_messages WHERE id = ?");
    if (!s)
        return EIO;
    sqlite3_bind_int64(s, 1, id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        read_msg(s, out);
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? ENOENT : EIO;
}

/* Runs s (bound already) and calls cb for each row. */
static int each_msg(sqlite3_stmt *s, int (*cb)(const struct store_vm_msg *m, void *ctx), void *ctx)
{
    int rc, ret = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_vm_msg m;
        read_msg(s, &m);
        if ((ret = cb(&m, ctx)) != 0)
            break;
    }
    sqlite3_reset(s);
    if (ret)
        return ret;
    return rc == SQLITE_DONE ? 0 : EIO;
}

int store_vm_list(struct store *st, const char *ext,
                  int (*cb)(const struct store_vm_msg *m, void *ctx), void *ctx)
{
    sqlite3_stmt *s = store_stmt(st, "SELECT " MSG_COLS " FROM voicemail_messages "
                                     "WHERE extension = ? ORDER BY heard, received_us, id");
    if (!s)
        return EIO;
    store_bind_text(s, 1, ext);
    return each_msg(s, cb, ctx);
}

int store_vm_set_heard(struct store *st, int64_t id, int heard)
{
    sqlite3_stmt *s = store_stmt(st, "UPDATE voicemail_messages SET heard = ? WHERE id = ?");
    if (!s)
        return EIO;
    sqlite3_bind_int(s, 1, heard ? 1 : 0);
    sqlite3_bind_int64(s, 2, id);
    int rc = store_step_done(st, s);
    if (rc != 0)
        return EIO;
    return sqlite3_changes(st->db) ? 0 : ENOENT;
}

int store_vm_delete(struct store *st, int64_t id)
{
    sqlite3_stmt *s = store_stmt(st, "DELETE FROM voicemail_messages WHERE id = ?");
    if (!s)
        return EIO;
    sqlite3_bind_int64(s, 1, id);
    if (store_step_done(st, s) != 0)
        return EIO;
    return sqlite3_changes(st->db) ? 0 : ENOENT;
}

int store_vm_counts(struct store *st, const char *ext, int *new_count, int *old_count)
{
    sqlite3_stmt *s = store_stmt(st, "SELECT coalesce(sum(heard = 0), 0), coalesce(sum(heard), 0) "
                                     "FROM voicemail_messages WHERE extension = ?");
    if (!s)
        return EIO;
    store_bind_text(s, 1, ext);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *new_count = sqlite3_column_int(s, 0);
        *old_count = sqlite3_column_int(s, 1);
    }
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 0 : EIO;
}

int store_vm_count_all(struct store *st,
                       int (*cb)(const char *ext, int new_count, int old_count, void *ctx),
                       void *ctx)
{
    sqlite3_stmt *s = store_stmt(st, "SELECT extension, sum(heard = 0), sum(heard) "
                                     "FROM voicemail_messages GROUP BY extension");
    if (!s)
        return EIO;
    int rc, ret = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *ext = (const char *)sqlite3_column_text(s, 0);
        if (ext && (ret = cb(ext, sqlite3_column_int(s, 1), sqlite3_column_int(s, 2), ctx)) != 0)
            break;
    }
    sqlite3_reset(s);
    if (ret)
        return ret;
    return rc == SQLITE_DONE ? 0 : EIO;
}

int store_vm_expired(struct store *st, int64_t before_us, int limit,
                     int (*cb)(const struct store_vm_msg *m, void *ctx), void *ctx)
{
    sqlite3_stmt *s = store_stmt(st, "SELECT " MSG_COLS " FROM voicemail_messages "
                                     "WHERE received_us < ? ORDER BY received_us LIMIT ?");
    if (!s)
        return EIO;
    sqlite3_bind_int64(s, 1, before_us);
    sqlite3_bind_int(s, 2, limit > 0 ? limit : -1);
    return each_msg(s, cb, ctx);
}

int store_vm_over_quota(struct store *st, int quota,
                        int (*cb)(const struct store_vm_msg *m, void *ctx), void *ctx)
{
    /* For each mailbox with more than quota messages, its oldest heard ones past the quota:
     * the row number counts the mailbox's messages from the newest, so a heard message
     * numbered above quota has quota newer ones. */
    sqlite3_stmt *s =
        store_stmt(st, "SELECT " MSG_COLS " FROM (SELECT *, row_number() OVER (PARTITION BY "
                       "extension ORDER BY received_us DESC, id DESC) AS n FROM "
                       "voicemail_messages WHERE extension IN (SELECT extension FROM "
                       "voicemail_messages GROUP BY extension HAVING count(*) > ?1)) "
                       "WHERE n > ?1 AND heard = 1 ORDER BY received_us");
    if (!s)
        return EIO;
    sqlite3_bind_int(s, 1, quota);
    return each_msg(s, cb, ctx);
}

int store_vm_files(struct store *st, int (*cb)(const char *file, void *ctx), void *ctx)
{
    sqlite3_stmt *s = store_stmt(st, "SELECT file FROM voicemail_messages");
    if (!s)
        return EIO;
    int rc, ret = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *f = (const char *)sqlite3_column_text(s, 0);
        if (f && (ret = cb(f, ctx)) != 0)
            break;
    }
    sqlite3_reset(s);
    if (ret)
        return ret;
    return rc == SQLITE_DONE ? 0 : EIO;
}

int store_vm_greeting_get(struct store *st, const char *ext, void **pcm, size_t *len,
                          int64_t *updated_at)
{
    sqlite3_stmt *s =
        store_stmt(st, "SELECT pcm, updated_at FROM voicemail_greetings WHERE extension = ?");
    if (!s)
        return EIO;
    store_bind_text(s, 1, ext);
    int rc = sqlite3_step(s), ret;
    if (rc == SQLITE_ROW) {
        size_t n = (size_t)sqlite3_column_bytes(s, 0);
        void *copy = malloc(n ? n : 1);
        if (copy) {
            if (n)
                memcpy(copy, sqlite3_column_blob(s, 0), n);
            *pcm = copy;
            *len = n;
            if (updated_at)
                *updated_at = sqlite3_column_int64(s, 1);
            ret = 0;
        } else {
            ret = ENOMEM;
        }
    } else {
        ret = rc == SQLITE_DONE ? ENOENT : EIO;
    }
    sqlite3_reset(s);
    return ret;
}

int store_vm_greeting_set(struct store *st, const char *ext, const void *pcm, size_t len,
                          int64_t now)
{
    sqlite3_stmt *s =
        store_stmt(st, "INSERT INTO voicemail_greetings (extension, pcm, "
                       "updated_at) VALUES (?, ?, ?) ON CONFLICT (extension) DO "
                       "UPDATE SET pcm = excluded.pcm, updated_at = excluded.updated_at");
    if (!s)
        return EIO;
    store_bind_text(s, 1, ext);
    sqlite3_bind_blob(s, 2, pcm, (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, now);
    int rc = store_step_done(st, s);
    sqlite3_bind_null(s, 2); /* the statement is cached: it must not keep pcm */
    return rc == ENOENT ? ENOENT : rc ? EIO : 0;
}

int store_vm_greeting_delete(struct store *st, const char *ext)
{
    sqlite3_stmt *s = store_stmt(st, "DELETE FROM voicemail_greetings WHERE extension = ?");
    if (!s)
        return EIO;
    store_bind_text(s, 1, ext);
    if (store_step_done(st, s) != 0)
        return EIO;
    return sqlite3_changes(st->db) ? 0 : ENOENT;
}
