/* The cdrs and trace_messages tables: call records (with the open-call journal) and the
 * captured SIP messages of each call, with their retention. */
#include "store/store_int.h"
#include "util/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int store_cdr_save(struct store *st, const struct store_cdr *c)
{
    sqlite3_stmt *s = store_stmt(
        st, "INSERT INTO cdrs (call_id, caller, caller_name, dialled, answered_by, forwards, "
            "start_us, answer_us, end_us, duration, billsec, disposition, status, phrase, "
            "hangup_by, user_agent, open, interrupted) VALUES (?, ?, ?, ?, ?, ?, ?, nullif(?, 0), "
            "nullif(?, 0), ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (call_id, start_us) DO UPDATE "
            "SET answered_by = excluded.answered_by, forwards = excluded.forwards, "
            "answer_us = excluded.answer_us, end_us = excluded.end_us, "
            "duration = excluded.duration, billsec = excluded.billsec, "
            "disposition = excluded.disposition, status = excluded.status, "
            "phrase = excluded.phrase, hangup_by = excluded.hangup_by, open = excluded.open, "
            "interrupted = excluded.interrupted");
    if (!s)
        return EIO;
    store_bind_text(s, 1, c->call_id);
    store_bind_text(s, 2, c->caller);
    store_bind_text(s, 3, c->caller_name);
    store_bind_text(s, 4, c->dialled);
    store_bind_text(s, 5, c->answered_by);
    store_bind_text(s, 6, c->forwards[0] ? c->forwards : "[]");
    sqlite3_bind_int64(s, 7, c->start_us);
    sqlite3_bind_int64(s, 8, c->answer_us);
    sqlite3_bind_int64(s, 9, c->end_us);
    sqlite3_bind_int64(s, 10, c->duration);
    sqlite3_bind_int64(s, 11, c->billsec);
    store_bind_text(s, 12, c->disposition);
    sqlite3_bind_int(s, 13, c->status);
    store_bind_text(s, 14, c->phrase);
    store_bind_text(s, 15, c->hangup_by);
    store_bind_text(s, 16, c->user_agent);
    sqlite3_bind_int(s, 17, c->open);
    sqlite3_bind_int(s, 18, c->interrupted);
    return store_step_done(st, s);
}

int store_heartbeat(struct store *st, int64_t now_us)
{
    char v[32];
    snprintf(v, sizeof v, "%lld", (long long)now_us);
    return store_setting_set(st, "heartbeat_us", v);
}

int store_cdr_close_interrupted(struct store *st, int64_t now_us)
{
    char v[32] = "";
    int64_t end = now_us;
    if (store_setting_get(st, "heartbeat_us", v, sizeof v) == 0 && atoll(v) > 0)
        end = atoll(v);
    sqlite3_stmt *s = store_stmt(
        st, "UPDATE cdrs SET open = 0, interrupted = 1, hangup_by = 'sipbx', "
            "end_us = max(?1, coalesce(answer_us, start_us)), "
            "duration = (max(?1, coalesce(answer_us, start_us)) - start_us) / 1000000, "
            "billsec = (max(?1, coalesce(answer_us, start_us)) - coalesce(answer_us, start_us)) "
            "/ 1000000 WHERE open = 1");
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, end);
    if (store_step_done(st, s) != 0)
        return -1;
    return sqlite3_changes(sqlite3_db_handle(s));
}

/* The columns of a record, in the order read_cdr() reads them. */
#define CDR_COLS                                                                                   \
    "id, call_id, caller, caller_name, dialled, answered_by, forwards, start_us, "                 \
    "coalesce(answer_us, 0), coalesce(end_us, 0), duration, billsec, disposition, status, "        \
    "phrase, hangup_by, user_agent, open, interrupted"

static void read_cdr(sqlite3_stmt *s, struct store_cdr *c)
{
    memset(c, 0, sizeof *c);
    c->id = sqlite3_column_int64(s, 0);
    store_col_text(s, 1, c->call_id, sizeof c->call_id);
    store_col_text(s, 2, c->caller, sizeof c->caller);
    store_col_text(s, 3, c->caller_name, sizeof c->caller_name);
    store_col_text(s, 4, c->dialled, sizeof c->dialled);
    store_col_text(s, 5, c->answered_by, sizeof c->answered_by);
    store_col_text(s, 6, c->forwards, sizeof c->forwards);
    c->start_us = sqlite3_column_int64(s, 7);
    c->answer_us = sqlite3_column_int64(s, 8);
    c->end_us = sqlite3_column_int64(s, 9);
    c->duration = sqlite3_column_int64(s, 10);
    c->billsec = sqlite3_column_int64(s, 11);
    store_col_text(s, 12, c->disposition, sizeof c->disposition);
    c->status = sqlite3_column_int(s, 13);
    store_col_text(s, 14, c->phrase, sizeof c->phrase);
    store_col_text(s, 15, c->hangup_by, sizeof c->hangup_by);
    store_col_text(s, 16, c->user_agent, sizeof c->user_agent);
    c->open = sqlite3_column_int(s, 17);
    c->interrupted = sqlite3_column_int(s, 18);
}

int store_cdr_get(struct store *st, const char *call_id, int64_t start_us, struct store_cdr *out)
{
    sqlite3_stmt *s =
        store_stmt(st, "SELECT " CDR_COLS " FROM cdrs WHERE call_id = ? AND start_us = ?");
    if (!s)
        return EIO;
    store_bind_text(s, 1, call_id);
    sqlite3_bind_int64(s, 2, start_us);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        read_cdr(s, out);
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? ENOENT : EIO;
}

/* Closed records only (open ones are calls still up), said in the way that fits the
 * query: a plain test when the rows are read anyway, or, for counting from an index alone,
 * "not one of the few open ones" (their ids come from the partial index cdrs_open). */
#define CLOSED_ROW   "open = 0"
#define CLOSED_INDEX "id NOT IN (SELECT id FROM cdrs WHERE open = 1)"

/* The WHERE clause of the filters in use (only those, so that SQLite picks the index that
 * fits: start_us for a time range or a plain listing, disposition, ...) with its
 * parameters numbered ?1..?6 as in bind_filter(). */
static void filter_sql(char *out, size_t outlen, const char *closed,
                       const struct store_cdr_filter *f, int cursor)
{
    snprintf(out, outlen, "WHERE %s%s%s%s%s%s", closed, f->since_us ? " AND start_us >= ?1" : "",
             f->until_us ? " AND start_us < ?2" : "",
             f->ext[0] ? " AND (caller = ?3 OR dialled = ?3 OR answered_by = ?3)" : "",
             f->disposition[0] ? " AND disposition = ?4" : "",
             /* Written so that "start_us <= ?5" bounds the index range. */
             cursor ? " AND start_us <= ?5 AND (start_us < ?5 OR id < ?6)" : "");
}

static void bind_filter(sqlite3_stmt *s, const struct store_cdr_filter *f, int cursor)
{
    if (f->since_us)
        sqlite3_bind_int64(s, 1, f->since_us);
    if (f->until_us)
        sqlite3_bind_int64(s, 2, f->until_us);
    if (f->ext[0])
        store_bind_text(s, 3, f->ext);
    if (f->disposition[0])
        store_bind_text(s, 4, f->disposition);
    if (cursor) {
        sqlite3_bind_int64(s, 5, f->before_start_us);
        sqlite3_bind_int64(s, 6, f->before_id);
    }
}

/* Prepares a statement made for one request (not cached: its text depends on the filters
 * in use). NULL after logging. */
static sqlite3_stmt *prepare_once(struct store *st, const char *sql)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
        log_error("store: cannot prepare '%.60s': %s", sql, sqlite3_errmsg(st->db));
        sqlite3_finalize(s);
        return NULL;
    }
    return s;
}

int store_cdr_list(struct store *st, const struct store_cdr_filter *f, int limit,
                   int (*cb)(const struct store_cdr *c, void *ctx), void *ctx)
{
    char where[400], sql[1024];
    int cursor = f->before_start_us != 0 || f->before_id != 0;
    filter_sql(where, sizeof where, CLOSED_ROW, f, cursor);
    snprintf(sql, sizeof sql,
             "SELECT id, call_id, caller, caller_name, dialled, answered_by, forwards, start_us, "
             "coalesce(answer_us, 0), coalesce(end_us, 0), duration, billsec, disposition, "
             "status, phrase, hangup_by, user_agent, open, interrupted FROM cdrs %s "
             "ORDER BY start_us DESC, id DESC LIMIT ?7",
             where);
    sqlite3_stmt *s = prepare_once(st, sql);
    if (!s)
        return EIO;
    bind_filter(s, f, cursor);
    sqlite3_bind_int(s, 7, limit > 0 ? limit : -1);
    int rc, ret = 0;
    struct store_cdr c;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        memset(&c, 0, sizeof c);
        c.id = sqlite3_column_int64(s, 0);
        store_col_text(s, 1, c.call_id, sizeof c.call_id);
        store_col_text(s, 2, c.caller, sizeof c.caller);
        store_col_text(s, 3, c.caller_name, sizeof c.caller_name);
        store_col_text(s, 4, c.dialled, sizeof c.dialled);
        store_col_text(s, 5, c.answered_by, sizeof c.answered_by);
        store_col_text(s, 6, c.forwards, sizeof c.forwards);
        c.start_us = sqlite3_column_int64(s, 7);
        c.answer_us = sqlite3_column_int64(s, 8);
        c.end_us = sqlite3_column_int64(s, 9);
        c.duration = sqlite3_column_int64(s, 10);
        c.billsec = sqlite3_column_int64(s, 11);
        store_col_text(s, 12, c.disposition, sizeof c.disposition);
        c.status = sqlite3_column_int(s, 13);
        store_col_text(s, 14, c.phrase, sizeof c.phrase);
        store_col_text(s, 15, c.hangup_by, sizeof c.hangup_by);
        store_col_text(s, 16, c.user_agent, sizeof c.user_agent);
        c.open = sqlite3_column_int(s, 17);
        c.interrupted = sqlite3_column_int(s, 18);
        if ((ret = cb(&c, ctx)) != 0)
            break;
    }
    if (ret == 0 && rc != SQLITE_DONE) {
        log_error("store: listing call records: %s", sqlite3_errmsg(st->db));
        ret = EIO;
    }
    sqlite3_finalize(s);
    return ret;
}

int store_cdr_summary(struct store *st, const struct store_cdr_filter *f, int64_t bucket_us,
                      int (*cb)(int64_t bucket_start_us, const char *disposition, int64_t count,
                                void *ctx),
                      void *ctx)
{
    if (bucket_us <= 0)
        return EINVAL;
    struct store_cdr_filter g = *f;
    g.disposition[0] = '\0';
    char where[400], sql[1024];
    filter_sql(where, sizeof where, CLOSED_INDEX, &g, 0);
    /* Naming every disposition lets SQLite count from the index (disposition, start_us)
     * alone, one range per disposition: a year of a million calls in under a second,
     * where reading the rows by start_us took five. start_us is never negative, so
     * integer division rounds down to the bucket. */
    snprintf(sql, sizeof sql,
             "SELECT start_us / ?7 * ?7 AS bucket, disposition, count(*) FROM cdrs %s AND "
             "disposition IN ('ANSWERED', 'BUSY', 'NO ANSWER', 'CANCELLED', 'FAILED') "
             "GROUP BY bucket, disposition ORDER BY bucket, disposition",
             where);
    sqlite3_stmt *s = prepare_once(st, sql);
    if (!s)
        return EIO;
    bind_filter(s, &g, 0);
    sqlite3_bind_int64(s, 7, bucket_us);
    int rc, ret = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const unsigned char *d = sqlite3_column_text(s, 1);
        ret = cb(sqlite3_column_int64(s, 0), d ? (const char *)d : "", sqlite3_column_int64(s, 2),
                 ctx);
        if (ret != 0)
            break;
    }
    if (ret == 0 && rc != SQLITE_DONE) {
        log_error("store: summing up call records: %s", sqlite3_errmsg(st->db));
        ret = EIO;
    }
    sqlite3_finalize(s);
    return ret;
}

int store_trace_add(struct store *st, const struct store_trace *t)
{
    sqlite3_stmt *s = store_stmt(
        st, "INSERT INTO trace_messages (call_id, time_us, direction, transport, local, remote, "
            "first_line, retransmission, raw) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
    if (!s)
        return EIO;
    store_bind_text(s, 1, t->call_id);
    sqlite3_bind_int64(s, 2, t->time_us);
    store_bind_text(s, 3, t->direction);
    store_bind_text(s, 4, t->transport);
    store_bind_text(s, 5, t->local);
    store_bind_text(s, 6, t->remote);
    store_bind_text(s, 7, t->first_line);
    sqlite3_bind_int(s, 8, t->retransmission);
    sqlite3_bind_text(s, 9, t->raw, (int)t->raw_len, SQLITE_TRANSIENT);
    return store_step_done(st, s);
}

int store_trace_list(struct store *st, const char *call_id,
                     int (*cb)(const struct store_trace *t, void *ctx), void *ctx)
{
    sqlite3_stmt *s = store_stmt(st, "SELECT id, call_id, time_us, direction, transport, local, "
                                     "remote, first_line, retransmission, raw FROM trace_messages "
                                     "WHERE call_id = ? ORDER BY id");
    if (!s)
        return EIO;
    store_bind_text(s, 1, call_id);
    int rc, ret = 0, n = 0;
    struct store_trace t;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        memset(&t, 0, sizeof t);
        t.id = sqlite3_column_int64(s, 0);
        store_col_text(s, 1, t.call_id, sizeof t.call_id);
        t.time_us = sqlite3_column_int64(s, 2);
        store_col_text(s, 3, t.direction, sizeof t.direction);
        store_col_text(s, 4, t.transport, sizeof t.transport);
        store_col_text(s, 5, t.local, sizeof t.local);
        store_col_text(s, 6, t.remote, sizeof t.remote);
        store_col_text(s, 7, t.first_line, sizeof t.first_line);
        t.retransmission = sqlite3_column_int(s, 8);
        t.raw = (char *)sqlite3_column_text(s, 9);
        t.raw_len = (size_t)sqlite3_column_bytes(s, 9);
        n++;
        if ((ret = cb(&t, ctx)) != 0)
            break;
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = EIO;
    sqlite3_reset(s);
    if (ret == 0 && n == 0)
        ret = ENOENT;
    return ret;
}

int64_t store_trace_prune(struct store *st, int64_t oldest_us, int64_t max_bytes)
{
    int64_t removed = 0;
    if (oldest_us > 0) {
        sqlite3_stmt *s = store_stmt(st, "DELETE FROM trace_messages WHERE time_us < ?");
        if (!s)
            return -1;
        sqlite3_bind_int64(s, 1, oldest_us);
        if (store_step_done(st, s) != 0)
            return -1;
        removed += sqlite3_changes(sqlite3_db_handle(s));
    }
    while (max_bytes > 0) {
        int64_t total =
            store_scalar(st, "SELECT value FROM change_counters WHERE name = 'trace_bytes'");
        if (total < 0)
            return -1;
        if (total <= max_bytes)
            break;
        sqlite3_stmt *d = store_stmt(st, "DELETE FROM trace_messages WHERE id IN "
                                         "(SELECT id FROM trace_messages ORDER BY id LIMIT 500)");
        if (!d || store_step_done(st, d) != 0)
            return -1;
        int n = sqlite3_changes(sqlite3_db_handle(d));
        if (n == 0)
            break;
        removed += n;
    }
    return removed;
}
