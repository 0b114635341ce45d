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
        st,
        "INSERT INTO cdrs (call_id, caller, caller_name, dialled, answered_by, forwards, "
        "start_us, answer_us, end_us, duration, billsec, disposition, status, phrase, "
        "hangup_by, user_agent, open, interrupted, linked_call, link) VALUES (?, ?, ?, ?, ?, ?, "
        "?, nullif(?, 0), nullif(?, 0), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (call_id, "
        "start_us) DO UPDATE "
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
    store_bind_text(s, 19, c->linked_call);
    store_bind_text(s, 20, c->link);
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

/* The sort key column of each order (start_us for the default one). */
static const struct {
    const char *column;
    int numeric; /* its cursor key is key_num, else key_text */
} sort_keys[STORE_CDR_SORTS] = {
    [STORE_CDR_SORT_START] = {"start_us", 1},  [STORE_CDR_SORT_DURATION] = {"duration", 1},
    [STORE_CDR_SORT_TALK] = {"billsec", 1},    [STORE_CDR_SORT_CALLER] = {"caller", 0},
    [STORE_CDR_SORT_DIALLED] = {"dialled", 0}, [STORE_CDR_SORT_DISPOSITION] = {"disposition", 0},
};

/* The extensions of the users whose display name holds the search (?10: "%q%" with its
 * own % and _ escaped; LIKE ignores the case of ASCII letters). */
#define NAMED_USERS "(SELECT extension FROM users WHERE display_name LIKE ?10 ESCAPE '\\')"

/* The WHERE clause of the filters in use (only those, so that SQLite picks the index that
 * fits: start_us for a time range or a plain listing, disposition, ...) with its
 * parameters numbered as in bind_filter(): ?1 since, ?2 until, ?3 ext, ?4 disposition,
 * ?5 and ?6 the cursor's start and id, ?8 its sort key, ?9 the search (?10 as a LIKE
 * pattern), ?11 the linked call. counting: for a count(*), which need not read in any order. */
static void filter_sql(char *out, size_t outlen, const char *closed,
                       const struct store_cdr_filter *f, int cursor, int counting)
{
    char after[400] = "";
    if (cursor && f->sort == STORE_CDR_SORT_START) {
        /* Written so that "start_us <= ?5" bounds the index range. */
        snprintf(after, sizeof after, "%s",
                 f->asc ? " AND start_us >= ?5 AND (start_us > ?5 OR id > ?6)"
                        : " AND start_us <= ?5 AND (start_us < ?5 OR id < ?6)");
    } else if (cursor) {
        /* (key, start_us, id) after the cursor's, with "key <= ?8" bounding the range of
         * the (key, start_us) index. */
        const char *k = sort_keys[f->sort].column, *lt = f->asc ? ">" : "<";
        snprintf(after, sizeof after,
                 " AND %s %s= ?8 AND (%s %s ?8 OR start_us %s ?5 OR (start_us = ?5 AND id %s ?6))",
                 k, lt, k, lt, lt, lt);
    }
    snprintf(out, outlen, "WHERE %s%s%s%s%s%s%s%s", closed,
             f->since_us ? " AND start_us >= ?1" : "", f->until_us ? " AND start_us < ?2" : "",
             f->ext[0] ? " AND (caller = ?3 OR dialled = ?3 OR answered_by = ?3)" : "",
             /* With an extension, counting goes through its three indexes; the "+" keeps
              * SQLite (without statistics) from reading all of a disposition instead. */
             !f->disposition[0]      ? ""
             : f->ext[0] && counting ? " AND +disposition = ?4"
                                     : " AND disposition = ?4",
             f->q[0] ? " AND ((call_id >= ?9 AND call_id < ?9 || char(1114111)) OR "
                       "caller_name LIKE ?10 ESCAPE '\\' OR caller = ?9 OR dialled = ?9 "
                       "OR answered_by = ?9 OR caller IN " NAMED_USERS " OR dialled IN " NAMED_USERS
                       " OR answered_by IN " NAMED_USERS ")"
                     : "",
             f->linked_call[0] ? " AND linked_call = ?11" : "", after);
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
    if (f->linked_call[0])
        store_bind_text(s, 11, f->linked_call);
    if (cursor) {
        sqlite3_bind_int64(s, 5, f->before_start_us);
        sqlite3_bind_int64(s, 6, f->before_id);
        if (f->sort != STORE_CDR_SORT_START && sort_keys[f->sort].numeric)
            sqlite3_bind_int64(s, 8, f->key_num);
        else if (f->sort != STORE_CDR_SORT_START)
            store_bind_text(s, 8, f->key_text);
    }
    if (f->q[0]) {
        char like[2 * sizeof f->q + 3];
        size_t n = 0;
        like[n++] = '%';
        for (const char *p = f->q; *p; p++) {
            if (*p == '%' || *p == '_' || *p == '\\')
                like[n++] = '\\';
            like[n++] = *p;
        }
        like[n++] = '%';
        like[n] = '\0';
        store_bind_text(s, 9, f->q);
        store_bind_text(s, 10, like);
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
    if ((unsigned)f->sort >= STORE_CDR_SORTS)
        return EINVAL;
    char where[1500], order[96], sql[2560];
    int cursor = f->before_start_us != 0 || f->before_id != 0;
    filter_sql(where, sizeof where, CLOSED_ROW, f, cursor, 0);
    const char *dir = f->asc ? "ASC" : "DESC";
    /* A search reads every row anyway: in the table's order (a "+" keeps SQLite from
     * walking an index in the order asked, which reads the rows in random order and took
     * four times as long), the matches then sorted. */
    const char *plus = f->q[0] ? "+" : "";
    if (f->sort == STORE_CDR_SORT_START)
        snprintf(order, sizeof order, "%sstart_us %s, %sid %s", plus, dir, plus, dir);
    else
        snprintf(order, sizeof order, "%s%s %s, %sstart_us %s, %sid %s", plus,
                 sort_keys[f->sort].column, dir, plus, dir, plus, dir);
    snprintf(
        sql, sizeof sql,
        "SELECT id, call_id, caller, caller_name, dialled, answered_by, forwards, start_us, "
        "coalesce(answer_us, 0), coalesce(end_us, 0), duration, billsec, disposition, "
        "status, phrase, hangup_by, user_agent, open, interrupted, linked_call, link FROM cdrs %s "
        "ORDER BY %s LIMIT ?7",
        where, order);
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
        store_col_text(s, 19, c.linked_call, sizeof c.linked_call);
        store_col_text(s, 20, c.link, sizeof c.link);
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

int64_t store_cdr_count(struct store *st, const struct store_cdr_filter *f)
{
    char where[1500], sql[1600];
    /* Without a search the count comes from an index alone (see CLOSED_INDEX). */
    filter_sql(where, sizeof where, f->q[0] ? CLOSED_ROW : CLOSED_INDEX, f, 0, 1);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM cdrs %s", where);
    sqlite3_stmt *s = prepare_once(st, sql);
    if (!s)
        return -1;
    bind_filter(s, f, 0);
    int64_t n = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
    if (n < 0)
        log_error("store: counting call records: %s", sqlite3_errmsg(st->db));
    sqlite3_finalize(s);
    return n;
}

int store_cdr_stats(struct store *st, const struct store_cdr_filter *f,
                    int (*cb)(const struct store_cdr_ext_stats *e, void *ctx), void *ctx)
{
    char sql[2048];
    const char *one = f->ext[0] ? "1" : "0";
    /* Each record counts for its caller (placed), its dialled extension (received; answered
     * when that extension answered it) and, when another answered it (a forward), for that
     * one too. The range's rows are read once (MATERIALIZED; with an extension only its
     * own, through the caller, dialled and answered_by indexes), the three parts then go
     * over that copy. */
    snprintf(sql, sizeof sql,
             "WITH c AS MATERIALIZED (SELECT caller, dialled, answered_by, disposition, billsec "
             "FROM cdrs WHERE open = 0 AND start_us >= ?1 AND start_us < ?2%s), "
             "p AS (SELECT caller AS ext, 1 AS pc, disposition = 'ANSWERED' AS pa, "
             "CASE WHEN disposition = 'ANSWERED' THEN billsec ELSE 0 END AS pt, "
             "0 AS rc, 0 AS ra, 0 AS rt FROM c WHERE %s = 0 OR caller = ?3 "
             "UNION ALL SELECT dialled, 0, 0, 0, 1, answered_by = dialled, "
             "CASE WHEN answered_by = dialled THEN billsec ELSE 0 END FROM c "
             "WHERE %s = 0 OR dialled = ?3 "
             "UNION ALL SELECT answered_by, 0, 0, 0, 1, 1, billsec FROM c "
             "WHERE answered_by <> '' AND answered_by <> dialled AND (%s = 0 OR answered_by = ?3)) "
             "SELECT p.ext, coalesce(u.display_name, ''), sum(pc), sum(pa), sum(pt), sum(rc), "
             "sum(ra), sum(rt) FROM p LEFT JOIN users u ON u.extension = p.ext "
             "GROUP BY p.ext ORDER BY p.ext",
             f->ext[0] ? " AND (caller = ?3 OR dialled = ?3 OR answered_by = ?3)" : "", one, one,
             one);
    sqlite3_stmt *s = prepare_once(st, sql);
    if (!s)
        return EIO;
    sqlite3_bind_int64(s, 1, f->since_us);
    sqlite3_bind_int64(s, 2, f->until_us ? f->until_us : INT64_MAX);
    store_bind_text(s, 3, f->ext);
    int rc, ret = 0;
    struct store_cdr_ext_stats e;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        memset(&e, 0, sizeof e);
        store_col_text(s, 0, e.extension, sizeof e.extension);
        store_col_text(s, 1, e.display_name, sizeof e.display_name);
        e.placed.calls = sqlite3_column_int64(s, 2);
        e.placed.answered = sqlite3_column_int64(s, 3);
        e.placed.talk = sqlite3_column_int64(s, 4);
        e.received.calls = sqlite3_column_int64(s, 5);
        e.received.answered = sqlite3_column_int64(s, 6);
        e.received.talk = sqlite3_column_int64(s, 7);
        if ((ret = cb(&e, ctx)) != 0)
            break;
    }
    if (ret == 0 && rc != SQLITE_DONE) {
        log_error("store: call statistics: %s", sqlite3_errmsg(st->db));
        ret = EIO;
    }
    sqlite3_finalize(s);
    return ret;
}

int store_cdr_totals(struct store *st, const struct store_cdr_filter *f,
                     int (*cb)(const char *disposition, int64_t count, int64_t talk, void *ctx),
                     void *ctx)
{
    struct store_cdr_filter g;
    memset(&g, 0, sizeof g);
    g.since_us = f->since_us;
    g.until_us = f->until_us;
    memcpy(g.ext, f->ext, sizeof g.ext);
    char where[400], sql[600];
    filter_sql(where, sizeof where, CLOSED_ROW, &g, 0, 0);
    snprintf(sql, sizeof sql,
             "SELECT disposition, count(*), sum(billsec) FROM cdrs %s GROUP BY disposition", where);
    sqlite3_stmt *s = prepare_once(st, sql);
    if (!s)
        return EIO;
    bind_filter(s, &g, 0);
    int rc, ret = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const unsigned char *d = sqlite3_column_text(s, 0);
        if ((ret = cb(d ? (const char *)d : "", sqlite3_column_int64(s, 1),
                      sqlite3_column_int64(s, 2), ctx)) != 0)
            break;
    }
    if (ret == 0 && rc != SQLITE_DONE) {
        log_error("store: call totals: %s", sqlite3_errmsg(st->db));
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
    struct store_cdr_filter g;
    memset(&g, 0, sizeof g);
    g.since_us = f->since_us;
    g.until_us = f->until_us;
    memcpy(g.ext, f->ext, sizeof g.ext);
    char where[400], sql[1024];
    filter_sql(where, sizeof where, CLOSED_INDEX, &g, 0, 0);
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
