/* The sip_blocks table: the persistent copy of the addresses the SIP side blocked for failed
 * digest checks, and the CLI's way to lift one (a mark the running daemon picks up). */
#include "store/store_int.h"

#include <errno.h>
#include <string.h>

int store_block_save(struct store *st, const struct store_block *b)
{
    sqlite3_stmt *s = store_stmt(
        st, "INSERT INTO sip_blocks (source, reason, failures, offences, extensions, since, "
            "until, lifted) VALUES (?, ?, ?, ?, ?, ?, ?, 0) "
            "ON CONFLICT (source) DO UPDATE SET reason = excluded.reason, "
            "failures = excluded.failures, offences = excluded.offences, "
            "extensions = excluded.extensions, since = excluded.since, until = excluded.until, "
            "lifted = 0");
    if (!s)
        return EIO;
    store_bind_text(s, 1, b->source);
    store_bind_text(s, 2, b->reason);
    sqlite3_bind_int64(s, 3, b->failures);
    sqlite3_bind_int(s, 4, b->offences);
    store_bind_text(s, 5, b->extensions);
    sqlite3_bind_int64(s, 6, b->since);
    sqlite3_bind_int64(s, 7, b->until);
    return store_step_done(st, s);
}

int store_block_remove(struct store *st, const char *source, int64_t since)
{
    sqlite3_stmt *s = store_stmt(st, "DELETE FROM sip_blocks WHERE source = ? AND since = ?");
    if (!s)
        return EIO;
    store_bind_text(s, 1, source);
    sqlite3_bind_int64(s, 2, since);
    return store_step_done(st, s);
}

int store_block_list(struct store *st, int which, int64_t now,
                     int (*cb)(const struct store_block *b, void *ctx), void *ctx)
{
    /* Three views: in force (the CLI's list), lifted (the tick), everything (start-up). */
    sqlite3_stmt *s = store_stmt(
        st, "SELECT source, reason, failures, offences, extensions, since, until, lifted "
            "FROM sip_blocks WHERE (?1 = 0 AND lifted = 0 AND until > ?2) OR (?1 = 1 AND "
            "lifted = 1) OR ?1 = 2 ORDER BY since DESC, source");
    if (!s)
        return EIO;
    sqlite3_bind_int(s, 1, which);
    sqlite3_bind_int64(s, 2, now);
    int rc, ret = 0;
    struct store_block b;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        memset(&b, 0, sizeof b);
        store_col_text(s, 0, b.source, sizeof b.source);
        store_col_text(s, 1, b.reason, sizeof b.reason);
        b.failures = sqlite3_column_int64(s, 2);
        b.offences = sqlite3_column_int(s, 3);
        store_col_text(s, 4, b.extensions, sizeof b.extensions);
        b.since = sqlite3_column_int64(s, 5);
        b.until = sqlite3_column_int64(s, 6);
        b.lifted = sqlite3_column_int(s, 7);
        if ((ret = cb(&b, ctx)) != 0)
            break;
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = EIO;
    sqlite3_reset(s);
    return ret;
}

int store_block_lift(struct store *st, const char *source, int64_t now)
{
    sqlite3_stmt *s = store_stmt(st, "UPDATE sip_blocks SET lifted = 1 "
                                     "WHERE source = ? AND lifted = 0 AND until > ?");
    if (!s)
        return EIO;
    store_bind_text(s, 1, source);
    sqlite3_bind_int64(s, 2, now);
    int rc = store_step_done(st, s);
    if (rc == 0 && sqlite3_changes(st->db) == 0)
        rc = ENOENT;
    return rc;
}

int store_block_pending(struct store *st, const char *source)
{
    sqlite3_stmt *s =
        store_stmt(st, "SELECT count(*) FROM sip_blocks WHERE source = ? AND lifted = 1");
    if (!s)
        return -1;
    store_bind_text(s, 1, source);
    int n = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
    sqlite3_reset(s);
    return n;
}

int64_t store_blocks_version(struct store *st)
{
    return store_scalar(st, "SELECT value FROM change_counters WHERE name = 'sip_blocks'");
}
