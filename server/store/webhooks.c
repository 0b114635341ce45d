/* The webhooks and webhook_deliveries tables: the URLs administrators registered, and each
 * event queued for them as a delivery that the sender tries, retries and finally logs. */
#include "store/store_int.h"
#include "util/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const store_delivery_states[STORE_DELIVERY_STATES] = {"pending", "delivered", "failed"};

#define WEBHOOK_COLS "id, url, events, secret, description, created_at"

static void read_webhook(sqlite3_stmt *s, struct store_webhook *w)
{
    memset(w, 0, sizeof *w);
    w->id = sqlite3_column_int64(s, 0);
    store_col_text(s, 1, w->url, sizeof w->url);
    store_col_text(s, 2, w->events, sizeof w->events);
    store_col_text(s, 3, w->secret, sizeof w->secret);
    store_col_text(s, 4, w->description, sizeof w->description);
    w->created_at = sqlite3_column_int64(s, 5);
}

int store_webhook_add(struct store *st, struct store_webhook *w)
{
    sqlite3_stmt *s = store_stmt(st, "INSERT INTO webhooks (url, events, secret, description, "
                                     "created_at) VALUES (?, ?, ?, ?, ?)");
    if (!s)
        return EIO;
    store_bind_text(s, 1, w->url);
    store_bind_text(s, 2, w->events);
    store_bind_text(s, 3, w->secret);
    store_bind_text(s, 4, w->description);
    sqlite3_bind_int64(s, 5, w->created_at);
    if (store_step_done(st, s) != 0)
        return EIO;
    w->id = sqlite3_last_insert_rowid(sqlite3_db_handle(s));
    return 0;
}

int store_webhook_get(struct store *st, int64_t id, struct store_webhook *out)
{
    sqlite3_stmt *s = store_stmt(st, "SELECT " WEBHOOK_COLS " FROM webhooks WHERE id = ?");
    if (!s)
        return EIO;
    sqlite3_bind_int64(s, 1, id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        read_webhook(s, out);
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? ENOENT : EIO;
}

int store_webhook_list(struct store *st, int (*cb)(const struct store_webhook *w, void *ctx),
                       void *ctx)
{
    sqlite3_stmt *s = store_stmt(st, "SELECT " WEBHOOK_COLS " FROM webhooks ORDER BY id");
    if (!s)
        return EIO;
    int rc, ret = 0;
    struct store_webhook w;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        read_webhook(s, &w);
        if ((ret = cb(&w, ctx)) != 0)
            break;
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = EIO;
    sqlite3_reset(s);
    return ret;
}

int store_webhook_delete(struct store *st, int64_t id)
{
    sqlite3_stmt *s = store_stmt(st, "DELETE FROM webhooks WHERE id = ?");
    if (!s)
        return EIO;
    sqlite3_bind_int64(s, 1, id);
    return store_step_changed(st, s);
}

int store_webhook_count(struct store *st)
{
    return (int)store_scalar(st, "SELECT count(*) FROM webhooks");
}

/* ---- deliveries ---- */

int store_delivery_fanout(struct store *st, const char *event, const char *event_id,
                          const char *body, int64_t created_us)
{
    /* The events column is a comma-separated list of names without spaces: enclosed in
     * commas, a name is in it exactly when ",name," is. */
    sqlite3_stmt *s = store_stmt(
        st, "INSERT INTO webhook_deliveries (webhook_id, event_id, event, body, created_us, "
            "next_try_us) SELECT id, ?2, ?1, ?3, ?4, ?4 FROM webhooks "
            "WHERE instr(',' || events || ',', ',' || ?1 || ',') > 0");
    if (!s)
        return -1;
    store_bind_text(s, 1, event);
    store_bind_text(s, 2, event_id);
    store_bind_text(s, 3, body);
    sqlite3_bind_int64(s, 4, created_us);
    if (store_step_done(st, s) != 0)
        return -1;
    return sqlite3_changes(sqlite3_db_handle(s));
}

int store_delivery_add(struct store *st, int64_t webhook_id, const char *event,
                       const char *event_id, const char *body, int64_t created_us, int64_t *id)
{
    sqlite3_stmt *s = store_stmt(
        st, "INSERT INTO webhook_deliveries (webhook_id, event_id, event, body, created_us, "
            "next_try_us) VALUES (?, ?, ?, ?, ?, ?5)");
    if (!s)
        return EIO;
    sqlite3_bind_int64(s, 1, webhook_id);
    store_bind_text(s, 2, event_id);
    store_bind_text(s, 3, event);
    store_bind_text(s, 4, body);
    sqlite3_bind_int64(s, 5, created_us);
    int rc = store_step_done(st, s);
    if (rc == 0)
        *id = sqlite3_last_insert_rowid(sqlite3_db_handle(s));
    return rc == ENOENT ? ENOENT : rc ? EIO : 0;
}

#define DELIVERY_COLS                                                                              \
    "id, webhook_id, event_id, event, created_us, state, attempts, coalesce(next_try_us, 0), "     \
    "coalesce(last_try_us, 0), coalesce(last_status, 0), last_error, coalesce(done_us, 0)"

static void read_delivery(sqlite3_stmt *s, struct store_delivery *d)
{
    memset(d, 0, sizeof *d);
    d->id = sqlite3_column_int64(s, 0);
    d->webhook_id = sqlite3_column_int64(s, 1);
    store_col_text(s, 2, d->event_id, sizeof d->event_id);
    store_col_text(s, 3, d->event, sizeof d->event);
    d->created_us = sqlite3_column_int64(s, 4);
    const unsigned char *state = sqlite3_column_text(s, 5);
    for (int i = 0; state && i < STORE_DELIVERY_STATES; i++)
        if (strcmp((const char *)state, store_delivery_states[i]) == 0)
            d->state = (enum store_delivery_state)i;
    d->attempts = sqlite3_column_int(s, 6);
    d->next_try_us = sqlite3_column_int64(s, 7);
    d->last_try_us = sqlite3_column_int64(s, 8);
    d->last_status = sqlite3_column_int(s, 9);
    store_col_text(s, 10, d->last_error, sizeof d->last_error);
    d->done_us = sqlite3_column_int64(s, 11);
}

int store_delivery_next(struct store *st, int64_t webhook_id, int64_t now_us,
                        struct store_delivery *out, int64_t *due_us)
{
    sqlite3_stmt *s = store_stmt(st, "SELECT " DELIVERY_COLS ", body FROM webhook_deliveries "
                                     "WHERE webhook_id = ? AND state = 'pending' "
                                     "ORDER BY next_try_us, id LIMIT 1");
    if (!s)
        return EIO;
    sqlite3_bind_int64(s, 1, webhook_id);
    int rc = sqlite3_step(s), ret;
    if (rc == SQLITE_ROW) {
        int64_t due = sqlite3_column_int64(s, 7);
        if (due_us)
            *due_us = due;
        ret = ENOENT;
        if (due <= now_us) {
            read_delivery(s, out);
            const unsigned char *body = sqlite3_column_text(s, 12);
            out->body = util_xstrdup(body ? (const char *)body : "");
            ret = 0;
        }
    } else {
        ret = rc == SQLITE_DONE ? ENOENT : EIO;
    }
    sqlite3_reset(s);
    return ret;
}

int store_delivery_tried(struct store *st, int64_t id, int64_t now_us,
                         enum store_delivery_state state, int64_t next_try_us, int status,
                         const char *error)
{
    sqlite3_stmt *s =
        store_stmt(st, "UPDATE webhook_deliveries SET attempts = attempts + 1, last_try_us = ?2, "
                       "state = ?3, next_try_us = CASE WHEN ?3 = 'pending' THEN ?4 END, "
                       "last_status = nullif(?5, 0), last_error = ?6, "
                       "done_us = CASE WHEN ?3 = 'pending' THEN NULL ELSE ?2 END WHERE id = ?1");
    if (!s)
        return EIO;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, now_us);
    store_bind_text(s, 3, store_delivery_states[state]);
    sqlite3_bind_int64(s, 4, next_try_us);
    sqlite3_bind_int(s, 5, status);
    store_bind_text(s, 6, error ? error : "");
    int rc = store_step_changed(st, s);
    return rc == 0 || rc == ENOENT ? rc : EIO;
}

int store_delivery_list(struct store *st, int64_t webhook_id, int64_t before, int limit,
                        int (*cb)(const struct store_delivery *d, void *ctx), void *ctx)
{
    sqlite3_stmt *s =
        store_stmt(st, "SELECT " DELIVERY_COLS " FROM webhook_deliveries "
                       "WHERE webhook_id = ?1 AND (?2 = 0 OR id < ?2) ORDER BY id DESC LIMIT ?3");
    if (!s)
        return EIO;
    sqlite3_bind_int64(s, 1, webhook_id);
    sqlite3_bind_int64(s, 2, before);
    sqlite3_bind_int(s, 3, limit > 0 ? limit : -1);
    int rc, ret = 0;
    struct store_delivery d;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        read_delivery(s, &d);
        if ((ret = cb(&d, ctx)) != 0)
            break;
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = EIO;
    sqlite3_reset(s);
    return ret;
}

int store_delivery_counts(struct store *st, int64_t webhook_id,
                          int64_t counts[STORE_DELIVERY_STATES])
{
    sqlite3_stmt *s = store_stmt(st, "SELECT state, count(*) FROM webhook_deliveries "
                                     "WHERE webhook_id = ? GROUP BY state");
    if (!s)
        return EIO;
    sqlite3_bind_int64(s, 1, webhook_id);
    for (int i = 0; i < STORE_DELIVERY_STATES; i++)
        counts[i] = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const unsigned char *state = sqlite3_column_text(s, 0);
        for (int i = 0; state && i < STORE_DELIVERY_STATES; i++)
            if (strcmp((const char *)state, store_delivery_states[i]) == 0)
                counts[i] = sqlite3_column_int64(s, 1);
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : EIO;
}

int64_t store_delivery_pending(struct store *st)
{
    return store_scalar(st, "SELECT count(*) FROM webhook_deliveries WHERE state = 'pending'");
}

int64_t store_delivery_prune(struct store *st, int64_t webhook_id, int64_t oldest_us, int keep,
                             int max_pending, int64_t now_us)
{
    /* The log: finished deliveries finished before oldest_us, or older than the keep-th
     * newest finished one (by id, which the log index serves). */
    sqlite3_stmt *s = store_stmt(
        st, "DELETE FROM webhook_deliveries WHERE webhook_id = ?1 AND state <> 'pending' "
            "AND (done_us < ?2 OR id < coalesce((SELECT id FROM webhook_deliveries "
            "WHERE webhook_id = ?1 AND state <> 'pending' ORDER BY id DESC LIMIT 1 OFFSET ?3), "
            "0))");
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, webhook_id);
    sqlite3_bind_int64(s, 2, oldest_us);
    sqlite3_bind_int(s, 3, keep > 0 ? keep - 1 : 0);
    if (store_step_done(st, s) != 0)
        return -1;
    int64_t n = sqlite3_changes(sqlite3_db_handle(s));
    /* The queue: a receiver that has been down for long, behind a busy PBX, must not
     * make it grow without end. The oldest pending ones beyond the bound are given up. */
    s = store_stmt(st, "UPDATE webhook_deliveries SET state = 'failed', next_try_us = NULL, "
                       "done_us = ?2, last_error = 'given up: more than ' || ?3 || "
                       "' deliveries of this webhook were waiting' WHERE webhook_id = ?1 "
                       "AND state = 'pending' AND id < coalesce((SELECT id FROM webhook_deliveries "
                       "WHERE webhook_id = ?1 AND state = 'pending' ORDER BY id DESC LIMIT 1 "
                       "OFFSET ?3 - 1), 0)");
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, webhook_id);
    sqlite3_bind_int64(s, 2, now_us);
    sqlite3_bind_int(s, 3, max_pending > 0 ? max_pending : 1);
    if (store_step_done(st, s) != 0)
        return -1;
    return n + sqlite3_changes(sqlite3_db_handle(s));
}
