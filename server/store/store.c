/* Opening, migrating and configuring the database; the statement cache; transactions;
 * the settings table. */
#include "store/store_int.h"
#include "store/migrations.h"
#include "util/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int exec(struct store *st, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "%s", msg ? msg : sqlite3_errmsg(st->db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

int store_latest_version(void)
{
    return store_migration_count ? store_migrations[store_migration_count - 1].version : 0;
}

int store_schema_version(struct store *st)
{
    sqlite3_stmt *s = store_stmt(st, "PRAGMA user_version");
    int v = -1;
    if (s && sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int(s, 0);
    if (s)
        sqlite3_reset(s);
    return v;
}

static int migrate(struct store *st, char *err, size_t errlen)
{
    int current = store_schema_version(st);
    if (current < 0) {
        snprintf(err, errlen, "cannot read database %s: %s", st->path, sqlite3_errmsg(st->db));
        return -1;
    }
    int latest = store_latest_version();
    if (current > latest) {
        snprintf(err, errlen,
                 "database %s has schema version %d, newer than this sipbx knows (%d): "
                 "upgrade sipbx or use another database",
                 st->path, current, latest);
        return -1;
    }
    if (current == latest)
        return 0;
    /* All pending migrations in one transaction: an upgrade either completes or leaves the
     * database exactly as the old version had it (SQLite's DDL is transactional). */
    char why[512], ignored[64];
    if (exec(st, "BEGIN IMMEDIATE", why, sizeof why) != 0) {
        snprintf(err, errlen, "database %s: cannot start the upgrade: %s", st->path, why);
        return -1;
    }
    const struct migration *last = NULL;
    for (int i = 0; i < store_migration_count; i++) {
        const struct migration *m = &store_migrations[i];
        if (m->version <= current)
            continue;
        char pragma[64];
        snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", m->version);
        if (exec(st, m->sql, why, sizeof why) != 0 || exec(st, pragma, why, sizeof why) != 0) {
            exec(st, "ROLLBACK", ignored, sizeof ignored);
            snprintf(err, errlen,
                     "database %s: migration %s failed: %s (the database is unchanged, still "
                     "at schema %d)",
                     st->path, m->name, why, current);
            return -1;
        }
        last = m;
    }
    if (exec(st, "COMMIT", why, sizeof why) != 0) {
        exec(st, "ROLLBACK", ignored, sizeof ignored);
        snprintf(err, errlen, "database %s: upgrade not committed: %s", st->path, why);
        return -1;
    }
    log_info("database %s migrated from schema %d to %d (%s)", st->path, current, last->version,
             last->name);
    return 0;
}

int store_open(struct store **out, const char *path, int flags, char *err, size_t errlen)
{
    struct store *st = calloc(1, sizeof *st);
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(st->path, sizeof st->path, "%s", path);
    int oflags = (flags & STORE_READONLY) ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
    if (flags & STORE_CREATE)
        oflags |= SQLITE_OPEN_CREATE;
    oflags |= SQLITE_OPEN_NOMUTEX; /* one connection per thread */
    char why[512];
    if (sqlite3_open_v2(path, &st->db, oflags, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open database %s: %s", path,
                 st->db ? sqlite3_errmsg(st->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(st->db, 5000);
    sqlite3_extended_result_codes(st->db, 1);
    /* Reading the schema version is the first real access: a file that is not a database
     * fails here with a readable message. */
    if (store_schema_version(st) < 0) {
        snprintf(err, errlen, "cannot open database %s: %s", path, sqlite3_errmsg(st->db));
        goto fail;
    }
    if (!(flags & STORE_READONLY) &&
        (exec(st, "PRAGMA journal_mode = WAL", why, sizeof why) != 0 ||
         exec(st, "PRAGMA synchronous = NORMAL", why, sizeof why) != 0)) {
        snprintf(err, errlen, "cannot use database %s: %s", path, why);
        goto fail;
    }
    if (exec(st, "PRAGMA foreign_keys = ON", why, sizeof why) != 0) {
        snprintf(err, errlen, "cannot use database %s: %s", path, why);
        goto fail;
    }
    if ((flags & STORE_MIGRATE) && migrate(st, err, errlen) != 0)
        goto fail;
    if (!(flags & (STORE_MIGRATE | STORE_ANY_VERSION)) &&
        store_schema_version(st) != store_latest_version()) {
        snprintf(err, errlen, "database %s has schema version %d, this sipbx needs %d", path,
                 store_schema_version(st), store_latest_version());
        goto fail;
    }
    *out = st;
    return 0;
fail:
    store_close(st);
    return -1;
}

void store_close(struct store *st)
{
    if (!st)
        return;
    for (int i = 0; i < STORE_STMT_CACHE; i++)
        sqlite3_finalize(st->cache[i].stmt);
    sqlite3_close(st->db);
    free(st);
}

const char *store_errmsg(struct store *st)
{
    return st->tx_error[0] ? st->tx_error : sqlite3_errmsg(st->db);
}

sqlite3_stmt *store_stmt(struct store *st, const char *sql)
{
    st->tx_error[0] = '\0';
    int free_slot = -1;
    for (int i = 0; i < STORE_STMT_CACHE; i++) {
        if (st->cache[i].sql == sql) {
            sqlite3_reset(st->cache[i].stmt);
            sqlite3_clear_bindings(st->cache[i].stmt);
            return st->cache[i].stmt;
        }
        if (!st->cache[i].sql && free_slot < 0)
            free_slot = i;
    }
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK) {
        log_error("store: cannot prepare '%.60s': %s", sql, sqlite3_errmsg(st->db));
        return NULL;
    }
    if (free_slot >= 0) {
        st->cache[free_slot].sql = sql;
        st->cache[free_slot].stmt = s;
    } else {
        /* Cache full: a programming error (more distinct statements than slots). */
        log_error("store: statement cache full");
        sqlite3_finalize(s);
        return NULL;
    }
    return s;
}

int64_t store_scalar(struct store *st, const char *sql)
{
    sqlite3_stmt *s = store_stmt(st, sql);
    int64_t v = -1;
    if (s && sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    if (s)
        sqlite3_reset(s);
    return v;
}

void store_bind_text(sqlite3_stmt *s, int idx, const char *val)
{
    if (val)
        sqlite3_bind_text(s, idx, val, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(s, idx);
}

void store_col_text(sqlite3_stmt *s, int col, char *out, size_t outlen)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    snprintf(out, outlen, "%s", t ? (const char *)t : "");
}

int store_step_changed(struct store *st, sqlite3_stmt *s)
{
    int rc = store_step_done(st, s);
    if (rc == 0 && sqlite3_changes(sqlite3_db_handle(s)) == 0)
        return ENOENT;
    return rc;
}

int store_step_done(struct store *st, sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc == SQLITE_DONE || rc == SQLITE_ROW)
        return 0;
    /* Constraint failures are the caller's to explain: a duplicate key, a missing parent
     * row, a value out of range. Anything else is an I/O problem worth logging here. */
    switch (rc) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
    case SQLITE_CONSTRAINT_TRIGGER: /* db/010: users and groups share their extensions */
        return EEXIST;
    case SQLITE_CONSTRAINT_FOREIGNKEY:
        return ENOENT;
    case SQLITE_CONSTRAINT_CHECK:
    case SQLITE_CONSTRAINT_NOTNULL:
        return EINVAL;
    default:
        log_error("store: %s", sqlite3_errmsg(st->db));
        return EIO;
    }
}

int store_tx(struct store *st, int (*fn)(struct store *st, void *ctx), void *ctx)
{
    char why[256];
    st->tx_error[0] = '\0';
    if (exec(st, "BEGIN IMMEDIATE", why, sizeof why) != 0) {
        snprintf(st->tx_error, sizeof st->tx_error, "cannot begin a transaction: %s", why);
        return EIO;
    }
    int rc = fn(st, ctx);
    if (rc != 0) {
        snprintf(why, sizeof why, "%s", sqlite3_errmsg(st->db));
    } else if (exec(st, "COMMIT", why, sizeof why) != 0) {
        rc = EIO;
    }
    /* A failed COMMIT (disk full, I/O error) may have ended the transaction itself. */
    if (rc != 0 && !sqlite3_get_autocommit(st->db)) {
        char ignored[64];
        exec(st, "ROLLBACK", ignored, sizeof ignored);
    }
    if (rc != 0)
        snprintf(st->tx_error, sizeof st->tx_error, "%s", why);
    return rc;
}

int store_setting_get(struct store *st, const char *key, char *out, size_t outlen)
{
    sqlite3_stmt *s = store_stmt(st, "SELECT value FROM settings WHERE key = ?");
    if (!s)
        return EIO;
    store_bind_text(s, 1, key);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        store_col_text(s, 0, out, outlen);
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? ENOENT : EIO;
}

int store_setting_set(struct store *st, const char *key, const char *value)
{
    sqlite3_stmt *s = store_stmt(st, "INSERT INTO settings (key, value) VALUES (?, ?) "
                                     "ON CONFLICT (key) DO UPDATE SET value = excluded.value");
    if (!s)
        return EIO;
    store_bind_text(s, 1, key);
    store_bind_text(s, 2, value);
    return store_step_done(st, s);
}
