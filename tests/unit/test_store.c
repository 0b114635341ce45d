/* Unit tests of server/store: opening and migrating, every table family, and the writer
 * thread. Each test gets a fresh database in its own temporary directory. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "store/migrations.h"
#include "store/store.h"
#include "util/util.h"

#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#define NOW ((int64_t)1700000000)

struct fixture {
    char dir[64];
    char path[128];
    struct store *st; /* open and migrated */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/sipbx-store-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/sipbx.db", f->dir);
    char err[512] = "";
    if (store_open(&f->st, f->path, STORE_CREATE | STORE_MIGRATE, err, sizeof err) != 0) {
        fprintf(stderr, "setup: %s\n", err);
        rmdir(f->dir);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

/* Removes the directory with the database and its -wal/-shm files, whatever is there. */
static int remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    return rmdir(dir);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    store_close(f->st);
    int rc = remove_dir(f->dir);
    free(f);
    return rc;
}

/* Runs one SQL statement on a separate plain SQLite connection. */
static void raw_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg ? msg : "?");
    sqlite3_close(db);
}

/* The first column of the first row of a query on a separate connection, as an integer. */
static int64_t raw_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

static struct store_user make_user(const char *ext)
{
    struct store_user u;
    memset(&u, 0, sizeof u);
    snprintf(u.extension, sizeof u.extension, "%s", ext);
    snprintf(u.display_name, sizeof u.display_name, "User %s", ext);
    /* Any 32 hex digits will do for the store; derive them from ext so each differs. */
    for (int i = 0; i < 32; i++)
        u.ha1[i] = "0123456789abcdef"[(ext[i % strlen(ext)] + i) & 15];
    u.ha1[32] = '\0';
    snprintf(u.realm, sizeof u.realm, "pbx.example.com");
    u.enabled = 1;
    u.call_waiting = 1;
    u.created_at = NOW;
    return u;
}

static void add_user(struct store *st, const char *ext)
{
    struct store_user u = make_user(ext);
    assert_int_equal(store_user_add(st, &u), 0);
}

static struct store_reg make_reg(const char *ext, const char *contact, int64_t expires_at)
{
    struct store_reg r;
    memset(&r, 0, sizeof r);
    snprintf(r.extension, sizeof r.extension, "%s", ext);
    snprintf(r.contact, sizeof r.contact, "%s", contact);
    snprintf(r.source, sizeof r.source, "192.0.2.10:5060");
    snprintf(r.transport, sizeof r.transport, "udp");
    snprintf(r.user_agent, sizeof r.user_agent, "TestPhone/1.0");
    snprintf(r.call_id, sizeof r.call_id, "call-%s", contact);
    r.cseq = 1;
    r.q = 1.0;
    r.registered_at = NOW;
    r.expires_at = expires_at;
    return r;
}

/* ---- opening and migrating ---- */

static void test_open_fresh(void **state)
{
    struct fixture *f = *state;
    assert_true(store_latest_version() >= 1);
    assert_int_equal(store_schema_version(f->st), store_latest_version());
    assert_int_equal(raw_int(f->path, "PRAGMA user_version"), store_latest_version());
    /* Every table of the first schema is there. */
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                                      "AND name IN ('settings', 'users', 'registrations', "
                                      "'admins', 'change_counters')"),
                     5);

    /* Opening again, with or without migrating, is fine and changes nothing. */
    char err[512] = "";
    struct store *again = NULL;
    if (store_open(&again, f->path, STORE_MIGRATE, err, sizeof err) != 0)
        fail_msg("reopen with migrate: %s", err);
    assert_int_equal(store_schema_version(again), store_latest_version());
    store_close(again);
    again = NULL;
    if (store_open(&again, f->path, 0, err, sizeof err) != 0)
        fail_msg("reopen: %s", err);
    store_close(again);
    again = NULL;
    if (store_open(&again, f->path, STORE_READONLY, err, sizeof err) != 0)
        fail_msg("reopen read-only: %s", err);
    store_close(again);
}

static void test_open_missing_or_unmigrated(void **state)
{
    struct fixture *f = *state;
    char path[160], err[512] = "";
    struct store *st = (struct store *)&err; /* must stay untouched on failure */

    snprintf(path, sizeof path, "%s/missing.db", f->dir);
    assert_int_equal(store_open(&st, path, STORE_MIGRATE, err, sizeof err), -1);
    assert_ptr_equal(st, (struct store *)&err);
    assert_non_null(strstr(err, path));
    assert_int_equal(access(path, F_OK), -1); /* not created without STORE_CREATE */

    /* A new, empty database opened without migrating is refused: the schema is missing. */
    err[0] = '\0';
    assert_int_equal(store_open(&st, path, STORE_CREATE, err, sizeof err), -1);
    assert_non_null(strstr(err, "schema"));
    assert_ptr_equal(st, (struct store *)&err);
}

static void test_open_newer_schema(void **state)
{
    struct fixture *f = *state;
    char sql[64], err[512] = "";
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", store_latest_version() + 1);
    raw_exec(f->path, sql);

    struct store *st = NULL;
    assert_int_equal(store_open(&st, f->path, STORE_CREATE | STORE_MIGRATE, err, sizeof err), -1);
    assert_null(st);
    if (!strstr(err, "newer"))
        fail_msg("message does not say newer: '%s'", err);
    /* The database was left alone. */
    assert_int_equal(raw_int(f->path, "PRAGMA user_version"), store_latest_version() + 1);

    err[0] = '\0';
    assert_int_equal(store_open(&st, f->path, 0, err, sizeof err), -1);
    assert_null(st);
    assert_true(err[0] != '\0');
}

static void test_open_not_a_database(void **state)
{
    struct fixture *f = *state;
    char path[160], err[512] = "";
    snprintf(path, sizeof path, "%s/garbage.db", f->dir);
    unsigned char junk[8192];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (unsigned char)(i * 131 + 7);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(junk, 1, sizeof junk, fp), sizeof junk);
    assert_int_equal(fclose(fp), 0);

    struct store *st = NULL;
    assert_int_equal(store_open(&st, path, STORE_CREATE | STORE_MIGRATE, err, sizeof err), -1);
    assert_null(st);
    /* One readable line naming the file and the cause. */
    assert_non_null(strstr(err, path));
    if (!strstr(err, "not a database"))
        fail_msg("unexpected message: '%s'", err);
    assert_null(strchr(err, '\n'));

    /* The file was not overwritten. */
    unsigned char back[sizeof junk];
    fp = fopen(path, "rb");
    assert_non_null(fp);
    assert_int_equal(fread(back, 1, sizeof back, fp), sizeof back);
    assert_int_equal(fgetc(fp), EOF);
    fclose(fp);
    assert_memory_equal(back, junk, sizeof junk);
}

/* A database as an older sipbx left it: the migrations up to version, run by hand, with
 * one user in it. */
static void make_old_db(const char *path, int version)
{
    for (int i = 0; i < store_migration_count && store_migrations[i].version <= version; i++)
        raw_exec(path, store_migrations[i].sql);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", version);
    raw_exec(path, sql);
    raw_exec(path, "INSERT INTO users (extension, display_name, ha1, realm, created_at, "
                   "updated_at) VALUES ('100', 'Old User', "
                   "'0123456789abcdef0123456789abcdef', 'pbx.example.com', 1, 1)");
}

static void test_upgrade_keeps_data(void **state)
{
    struct fixture *f = *state;
    char path[160], err[512] = "";
    snprintf(path, sizeof path, "%s/old.db", f->dir);
    make_old_db(path, 1);

    struct store *st = NULL;
    if (store_open(&st, path, STORE_MIGRATE, err, sizeof err) != 0)
        fail_msg("upgrade from schema 1: %s", err);
    assert_int_equal(store_schema_version(st), store_latest_version());
    struct store_user u;
    assert_int_equal(store_user_get(st, "100", &u), 0);
    assert_string_equal(u.display_name, "Old User");
    assert_string_equal(u.ha1, "0123456789abcdef0123456789abcdef");
    store_close(st);
    /* The later schemas' tables are there. */
    assert_int_equal(raw_int(path, "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                                   "AND name IN ('forward_rules', 'cdrs', 'trace_messages')"),
                     3);
}

/* The migration of schema version, in the table. */
static const struct migration *migration_of(int version)
{
    for (int i = 0; i < store_migration_count; i++)
        if (store_migrations[i].version == version)
            return &store_migrations[i];
    fail_msg("no migration %d", version);
    return NULL;
}

static void test_failed_upgrade_changes_nothing(void **state)
{
    struct fixture *f = *state;
    char path[160], err[512] = "";
    snprintf(path, sizeof path, "%s/old.db", f->dir);
    int before = 4; /* migrations 5 to 7 pending; the obstacle is in the way of 7 */
    make_old_db(path, before);
    /* A table in the way of the last migration (left by hand, say): its first statement
     * (the cdrs_duration index) succeeds, a later one (the cdrs_billsec index) fails. */
    raw_exec(path, "CREATE TABLE cdrs_billsec (x)");
    int64_t objects = raw_int(path, "SELECT count(*) FROM sqlite_master");

    struct store *st = NULL;
    assert_int_equal(store_open(&st, path, STORE_MIGRATE, err, sizeof err), -1);
    assert_null(st);
    assert_non_null(strstr(err, path));
    if (!strstr(err, "unchanged") || !strstr(err, migration_of(7)->name))
        fail_msg("message does not name the migration and say unchanged: '%s'", err);
    assert_null(strchr(err, '\n'));

    /* Everything as the older version left it: schema number, tables, data. */
    assert_int_equal(raw_int(path, "PRAGMA user_version"), before);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM sqlite_master"), objects);
    assert_int_equal(
        raw_int(path, "SELECT count(*) FROM sqlite_master WHERE name = 'cdrs_duration'"), 0);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM users WHERE extension = '100'"), 1);

    /* With the obstacle gone the same upgrade goes through. */
    raw_exec(path, "DROP TABLE cdrs_billsec");
    if (store_open(&st, path, STORE_MIGRATE, err, sizeof err) != 0)
        fail_msg("upgrade after the fix: %s", err);
    assert_int_equal(store_schema_version(st), store_latest_version());
    store_close(st);
}

/* Schema 6 replaces the users change counter by a log of changed extensions. */
static void test_upgrade_to_user_changes(void **state)
{
    struct fixture *f = *state;
    char path[160], err[512] = "";
    snprintf(path, sizeof path, "%s/old.db", f->dir);
    make_old_db(path, 5);
    raw_exec(path, "INSERT INTO forward_rules (extension, kind, enabled, target) "
                   "VALUES ('100', 'busy', 1, '200')");

    struct store *st = NULL;
    if (store_open(&st, path, STORE_MIGRATE, err, sizeof err) != 0)
        fail_msg("upgrade from schema 5: %s", err);
    /* The old counter and its triggers are gone, the data is not; the log starts empty. */
    assert_int_equal(raw_int(path, "SELECT count(*) FROM change_counters WHERE name = 'users'"), 0);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' "
                                   "AND name LIKE '%_changed_%'"),
                     0);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM forward_rules"), 1);
    assert_int_equal(store_users_version(st), 0);
    struct store_user u;
    assert_int_equal(store_user_get(st, "100", &u), 0);

    /* A change of the old user's rule by hand is logged. */
    raw_exec(path, "UPDATE forward_rules SET target = '300' WHERE extension = '100'");
    assert_int_equal(store_users_version(st), 1);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM user_changes WHERE extension = '100'"), 1);
    store_close(st);
}

static void test_failed_upgrade_to_user_changes(void **state)
{
    struct fixture *f = *state;
    char path[160], err[512] = "";
    snprintf(path, sizeof path, "%s/old.db", f->dir);
    make_old_db(path, 5);
    /* A trigger of the name migration 6 gives its last but one: the log table and the
     * drops of the old triggers before it succeed, then the upgrade fails. */
    raw_exec(path, "CREATE TRIGGER user_changes_rules_upd AFTER UPDATE ON forward_rules "
                   "BEGIN SELECT 1; END");
    int64_t objects = raw_int(path, "SELECT count(*) FROM sqlite_master");

    struct store *st = NULL;
    assert_int_equal(store_open(&st, path, STORE_MIGRATE, err, sizeof err), -1);
    if (!strstr(err, "unchanged") || !strstr(err, migration_of(6)->name))
        fail_msg("message does not name the migration and say unchanged: '%s'", err);
    assert_int_equal(raw_int(path, "PRAGMA user_version"), 5);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM sqlite_master"), objects);
    assert_int_equal(
        raw_int(path, "SELECT count(*) FROM sqlite_master WHERE name = 'user_changes'"), 0);
    assert_int_equal(
        raw_int(path, "SELECT count(*) FROM sqlite_master WHERE name = 'users_changed_ins'"), 1);
    assert_int_equal(raw_int(path, "SELECT value FROM change_counters WHERE name = 'users'"), 1);

    raw_exec(path, "DROP TRIGGER user_changes_rules_upd");
    if (store_open(&st, path, STORE_MIGRATE, err, sizeof err) != 0)
        fail_msg("upgrade after the fix: %s", err);
    assert_int_equal(store_schema_version(st), store_latest_version());
    store_close(st);
}

/* Schema 9 adds the event server's subscriptions and the published presence documents to a
 * database of an older version, keeping its data; rows go in, replace, list and go. */
static int collect_sub(const struct store_sub *sub, void *ctx)
{
    *(struct store_sub *)ctx = *sub;
    return 0;
}

static int collect_pub(const struct store_pub *p, void *ctx)
{
    *(struct store_pub *)ctx = *p;
    return 0;
}

static int count_sub(const struct store_sub *sub, void *ctx)
{
    (void)sub;
    (*(int *)ctx)++;
    return 0;
}

static void test_upgrade_to_presence(void **state)
{
    struct fixture *f = *state;
    char path[160], err[512] = "";
    snprintf(path, sizeof path, "%s/old.db", f->dir);
    make_old_db(path, 7);
    struct store *st = NULL;
    if (store_open(&st, path, STORE_MIGRATE, err, sizeof err) != 0)
        fail_msg("upgrade from schema 7: %s", err);
    assert_true(store_schema_version(st) >= 9);
    struct store_user u;
    assert_int_equal(store_user_get(st, "100", &u), 0);

    static struct store_sub sub, back;
    memset(&sub, 0, sizeof sub);
    snprintf(sub.call_id, sizeof sub.call_id, "abc@host");
    snprintf(sub.local_tag, sizeof sub.local_tag, "t1");
    snprintf(sub.package, sizeof sub.package, "dialog");
    snprintf(sub.watcher, sizeof sub.watcher, "101");
    snprintf(sub.presentity, sizeof sub.presentity, "100");
    snprintf(sub.remote, sizeof sub.remote, "<sip:101@pbx>;tag=w");
    snprintf(sub.local, sizeof sub.local, "<sip:100@pbx>;tag=t1");
    snprintf(sub.target, sizeof sub.target, "sip:101@192.0.2.1:5060");
    snprintf(sub.next_hop, sizeof sub.next_hop, "sip:192.0.2.1:5060;transport=udp");
    snprintf(sub.contact, sizeof sub.contact, "<sip:100@pbx:5060>");
    sub.local_cseq = 3;
    sub.remote_cseq = 2;
    sub.version = 3;
    sub.created_at = 1000;
    sub.expires_at = 4600;
    assert_int_equal(store_sub_save(st, &sub), 0);
    sub.local_cseq = 4; /* a NOTIFY later: the same row, replaced */
    assert_int_equal(store_sub_save(st, &sub), 0);
    int n = 0;
    assert_int_equal(store_sub_list(st, count_sub, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(store_sub_list(st, collect_sub, &back), 0);
    assert_string_equal(back.remote, sub.remote);
    assert_string_equal(back.route, "");
    assert_int_equal(back.local_cseq, 4);
    assert_int_equal(back.expires_at, 4600);
    assert_int_equal(store_sub_remove(st, "abc@host", "t1"), 0);
    n = 0;
    assert_int_equal(store_sub_list(st, count_sub, &n), 0);
    assert_int_equal(n, 0);

    static struct store_pub p, pback;
    memset(&p, 0, sizeof p);
    snprintf(p.etag, sizeof p.etag, "e1");
    snprintf(p.extension, sizeof p.extension, "100");
    snprintf(p.body, sizeof p.body, "<presence/>");
    p.published_at = 10;
    p.expires_at = 3610;
    assert_int_equal(store_pub_save(st, &p), 0);
    assert_int_equal(store_pub_list(st, collect_pub, &pback), 0);
    assert_string_equal(pback.body, "<presence/>");
    assert_int_equal(store_pub_remove(st, "e1"), 0);
    store_close(st);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM presence_publications"), 0);
}

/* The version of the migration before version in the table (what a database had before
 * that one): 8 comes after 7 on main, after 6 on the branch that added it. */
static int version_before(int version)
{
    int before = 0;
    for (int i = 0; i < store_migration_count && store_migrations[i].version < version; i++)
        before = store_migrations[i].version;
    return before;
}

/* Schema 8 adds the webhooks and their deliveries, and marks the log rows of a creation. */
static void test_upgrade_to_webhooks(void **state)
{
    struct fixture *f = *state;
    char path[160], err[512] = "";
    snprintf(path, sizeof path, "%s/old.db", f->dir);
    int before = version_before(8);
    assert_true(before >= 6); /* the user change log is there */
    make_old_db(path, before);
    /* A change logged by the older version and not yet applied stays in the log. */
    int64_t logged = raw_int(path, "SELECT count(*) FROM user_changes");
    assert_true(logged >= 1);

    struct store *st = NULL;
    if (store_open(&st, path, STORE_MIGRATE, err, sizeof err) != 0)
        fail_msg("upgrade from schema %d: %s", before, err);
    assert_true(store_schema_version(st) >= 8);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
                                   "name IN ('webhooks', 'webhook_deliveries')"),
                     2);
    assert_int_equal(store_webhook_count(st), 0);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM user_changes"), logged);
    assert_int_equal(raw_int(path, "SELECT max(created) FROM user_changes"), 0);
    struct store_user u;
    assert_int_equal(store_user_get(st, "100", &u), 0);

    /* From now on a creation is marked, whoever makes it (here: by hand). */
    raw_exec(path, "INSERT INTO users (extension, display_name, ha1, realm, created_at, "
                   "updated_at) VALUES ('101', '', '0123456789abcdef0123456789abcdef', 'r', 1, 1)");
    assert_int_equal(raw_int(path, "SELECT created FROM user_changes WHERE extension = '101'"), 1);
    raw_exec(path, "UPDATE users SET display_name = 'x' WHERE extension = '100'");
    assert_int_equal(raw_int(path, "SELECT max(created) FROM user_changes WHERE extension = '100'"),
                     0);
    store_close(st);
}

static void test_failed_upgrade_to_webhooks(void **state)
{
    struct fixture *f = *state;
    char path[160], err[512] = "";
    snprintf(path, sizeof path, "%s/old.db", f->dir);
    int before = version_before(8);
    make_old_db(path, before);
    /* An index of the name the migration gives its second index, on a table of the
     * user's: the two tables and the first index are made, then the upgrade fails. */
    raw_exec(path, "CREATE TABLE mine (x); CREATE INDEX webhook_deliveries_log ON mine (x)");
    int64_t objects = raw_int(path, "SELECT count(*) FROM sqlite_master");

    struct store *st = NULL;
    assert_int_equal(store_open(&st, path, STORE_MIGRATE, err, sizeof err), -1);
    if (!strstr(err, "unchanged") || !strstr(err, migration_of(8)->name))
        fail_msg("message does not name the migration and say unchanged: '%s'", err);
    assert_int_equal(raw_int(path, "PRAGMA user_version"), before);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM sqlite_master"), objects);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM sqlite_master WHERE name = 'webhooks'"),
                     0);
    /* The user change log has no new column, and its trigger is the old one. */
    assert_int_equal(raw_int(path,
                             "SELECT count(*) FROM pragma_table_info('user_changes') WHERE name = "
                             "'created'"),
                     0);

    raw_exec(path, "DROP TABLE mine");
    if (store_open(&st, path, STORE_MIGRATE, err, sizeof err) != 0)
        fail_msg("upgrade after the fix: %s", err);
    assert_int_equal(store_schema_version(st), store_latest_version());
    store_close(st);
}

/* ---- transactions and settings ---- */

static int tx_set_then(struct store *st, void *ctx)
{
    int rc = store_setting_set(st, "tx", "inside");
    return rc ? rc : *(int *)ctx;
}

static void test_tx(void **state)
{
    struct fixture *f = *state;
    char val[64];
    int result = EINVAL;
    assert_int_equal(store_tx(f->st, tx_set_then, &result), EINVAL);
    assert_int_equal(store_setting_get(f->st, "tx", val, sizeof val), ENOENT);
    result = 0;
    assert_int_equal(store_tx(f->st, tx_set_then, &result), 0);
    assert_int_equal(store_setting_get(f->st, "tx", val, sizeof val), 0);
    assert_string_equal(val, "inside");
}

static void test_settings(void **state)
{
    struct fixture *f = *state;
    char val[64] = "untouched";
    assert_int_equal(store_setting_get(f->st, "domain", val, sizeof val), ENOENT);
    assert_string_equal(val, "untouched");
    assert_int_equal(store_setting_set(f->st, "domain", "pbx.example.com"), 0);
    assert_int_equal(store_setting_set(f->st, "secret", "abc123"), 0);
    assert_int_equal(store_setting_get(f->st, "domain", val, sizeof val), 0);
    assert_string_equal(val, "pbx.example.com");
    assert_int_equal(store_setting_set(f->st, "domain", "other.example.com"), 0);
    assert_int_equal(store_setting_get(f->st, "domain", val, sizeof val), 0);
    assert_string_equal(val, "other.example.com");
    assert_int_equal(store_setting_get(f->st, "secret", val, sizeof val), 0);
    assert_string_equal(val, "abc123");
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM settings"), 2);

    /* Values survive a reopen. */
    store_close(f->st);
    f->st = NULL;
    char err[512];
    assert_int_equal(store_open(&f->st, f->path, 0, err, sizeof err), 0);
    assert_int_equal(store_setting_get(f->st, "domain", val, sizeof val), 0);
    assert_string_equal(val, "other.example.com");
}

/* ---- users ---- */

static void test_users_crud(void **state)
{
    struct fixture *f = *state;
    struct store_user u = make_user("100"), got;
    u.ring_timeout = 25;
    u.call_waiting = 0;
    assert_int_equal(store_user_count(f->st), 0);
    assert_int_equal(store_user_add(f->st, &u), 0);
    assert_int_equal(store_user_count(f->st), 1);

    memset(&got, 0x55, sizeof got);
    assert_int_equal(store_user_get(f->st, "100", &got), 0);
    assert_string_equal(got.extension, "100");
    assert_string_equal(got.display_name, "User 100");
    assert_string_equal(got.ha1, u.ha1);
    assert_string_equal(got.realm, "pbx.example.com");
    assert_int_equal(got.enabled, 1);
    assert_int_equal(got.call_waiting, 0);
    assert_int_equal(got.ring_timeout, 25);
    assert_int_equal(got.created_at, NOW);
    assert_int_equal(got.updated_at, NOW); /* defaults to created_at */

    /* Duplicate extension. */
    struct store_user dup = make_user("100");
    snprintf(dup.display_name, sizeof dup.display_name, "Impostor");
    assert_int_equal(store_user_add(f->st, &dup), EEXIST);
    assert_int_equal(store_user_count(f->st), 1);
    assert_int_equal(store_user_get(f->st, "100", &got), 0);
    assert_string_equal(got.display_name, "User 100");

    /* Update: display name, flags, ring timeout back to "global" (0). */
    snprintf(u.display_name, sizeof u.display_name, "Alice Example");
    u.enabled = 0;
    u.call_waiting = 1;
    u.ring_timeout = 0;
    assert_int_equal(store_user_update(f->st, &u), 0);
    assert_int_equal(store_user_get(f->st, "100", &got), 0);
    assert_string_equal(got.display_name, "Alice Example");
    assert_int_equal(got.enabled, 0);
    assert_int_equal(got.call_waiting, 1);
    assert_int_equal(got.ring_timeout, 0);
    assert_string_equal(got.ha1, u.ha1); /* untouched by update */
    assert_true(got.updated_at > NOW);   /* set to the real clock */

    struct store_user ghost = make_user("999");
    assert_int_equal(store_user_update(f->st, &ghost), ENOENT);
    assert_int_equal(store_user_get(f->st, "999", &got), ENOENT);

    /* New digest, possibly for a new realm. */
    const char *ha1 = "0123456789abcdef0123456789abcdef";
    assert_int_equal(store_user_set_ha1(f->st, "100", "new.example.com", ha1), 0);
    assert_int_equal(store_user_get(f->st, "100", &got), 0);
    assert_string_equal(got.ha1, ha1);
    assert_string_equal(got.realm, "new.example.com");
    assert_string_equal(got.display_name, "Alice Example");
    assert_int_equal(store_user_set_ha1(f->st, "999", "x", ha1), ENOENT);

    /* The schema refuses a ring timeout outside 1..3600 and leaves the row as it was. */
    struct store_user bad = got;
    bad.ring_timeout = 3601;
    assert_int_not_equal(store_user_update(f->st, &bad), 0);
    assert_int_equal(store_user_get(f->st, "100", &got), 0);
    assert_int_equal(got.ring_timeout, 0);
    bad = make_user("102");
    bad.ring_timeout = -1;
    assert_int_not_equal(store_user_add(f->st, &bad), 0);
    assert_int_equal(store_user_get(f->st, "102", &got), ENOENT);

    /* Delete. */
    add_user(f->st, "101");
    assert_int_equal(store_user_delete(f->st, "100"), 0);
    assert_int_equal(store_user_get(f->st, "100", &got), ENOENT);
    assert_int_equal(store_user_delete(f->st, "100"), ENOENT);
    assert_int_equal(store_user_count(f->st), 1);
    assert_int_equal(store_user_get(f->st, "101", &got), 0);
}

struct collect {
    char ext[64][STORE_EXT_MAX];
    int n;
    int stop_after; /* return 99 from the callback after this many (0: never) */
};

static int collect_user(const struct store_user *u, void *ctx)
{
    struct collect *c = ctx;
    assert_true(c->n < 64);
    snprintf(c->ext[c->n++], STORE_EXT_MAX, "%s", u->extension);
    return c->stop_after && c->n >= c->stop_after ? 99 : 0;
}

static void test_users_list(void **state)
{
    struct fixture *f = *state;
    struct collect c;
    memset(&c, 0, sizeof c);
    assert_int_equal(store_user_list(f->st, NULL, 0, collect_user, &c), 0);
    assert_int_equal(c.n, 0);

    /* Inserted out of order; listed in extension (string) order. */
    const char *exts[] = {"200", "105", "alice", "100", "1000", "bob", "110", "+4930"};
    const char *sorted[] = {"+4930", "100", "1000", "105", "110", "200", "alice", "bob"};
    const int n = (int)(sizeof exts / sizeof exts[0]);
    for (int i = 0; i < n; i++)
        add_user(f->st, exts[i]);
    assert_int_equal(store_user_count(f->st), n);

    memset(&c, 0, sizeof c);
    assert_int_equal(store_user_list(f->st, NULL, 0, collect_user, &c), 0);
    assert_int_equal(c.n, n);
    for (int i = 0; i < n; i++)
        assert_string_equal(c.ext[i], sorted[i]);

    /* Pages of three, each continuing after the last extension of the one before. */
    char after[STORE_EXT_MAX] = "";
    int total = 0, pages = 0;
    for (;;) {
        memset(&c, 0, sizeof c);
        assert_int_equal(store_user_list(f->st, pages ? after : NULL, 3, collect_user, &c), 0);
        if (c.n == 0)
            break;
        assert_true(c.n <= 3);
        for (int i = 0; i < c.n; i++)
            assert_string_equal(c.ext[i], sorted[total + i]);
        total += c.n;
        pages++;
        snprintf(after, sizeof after, "%s", c.ext[c.n - 1]);
        assert_true(pages <= 4);
    }
    assert_int_equal(total, n);
    assert_int_equal(pages, 3);

    /* `after` need not be an existing extension. */
    memset(&c, 0, sizeof c);
    assert_int_equal(store_user_list(f->st, "101", 2, collect_user, &c), 0);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.ext[0], "105");
    assert_string_equal(c.ext[1], "110");

    /* A non-zero callback result stops the walk and is returned. */
    memset(&c, 0, sizeof c);
    c.stop_after = 2;
    assert_int_equal(store_user_list(f->st, NULL, 0, collect_user, &c), 99);
    assert_int_equal(c.n, 2);
}

static int keep_name(const struct store_user *u, void *ctx)
{
    snprintf(ctx, STORE_DISPLAY_NAME_MAX, "%s", u->display_name);
    return 0;
}

/* A display name of 127 four-byte characters is kept whole, by get and by the walk that
 * fills the SIP side's copy (which shows it on the ringing phone). */
static void test_users_long_name(void **state)
{
    struct fixture *f = *state;
    struct store_user u = make_user("100"), got;
    u.display_name[0] = '\0';
    for (int i = 0; i < STORE_DISPLAY_NAME_CHARS; i++)
        strcat(u.display_name, "\xf0\x9f\x98\x80"); /* U+1F600 */
    assert_int_equal(store_user_add(f->st, &u), 0);
    assert_int_equal(store_user_get(f->st, "100", &got), 0);
    assert_string_equal(got.display_name, u.display_name);
    char listed[STORE_DISPLAY_NAME_MAX];
    assert_int_equal(store_user_list(f->st, NULL, 0, keep_name, listed), 0);
    assert_string_equal(listed, u.display_name);
    assert_int_equal(util_utf8_chars(listed), STORE_DISPLAY_NAME_CHARS);
}

/* ---- SIP blocks ---- */

static int count_block(const struct store_block *b, void *ctx)
{
    (void)b;
    (*(int *)ctx)++;
    return 0;
}

static int blocks_of(struct store *st, int which, int64_t now)
{
    int n = 0;
    assert_int_equal(store_block_list(st, which, now, count_block, &n), 0);
    return n;
}

/* Saved blocks list while in force; the CLI's lift marks a row (moving the counter the
 * daemon watches) and the daemon's remove deletes only the block that started at since. */
/* ---- webhooks and deliveries ---- */

static int64_t add_webhook(struct store *st, const char *url, const char *events)
{
    struct store_webhook w;
    memset(&w, 0, sizeof w);
    snprintf(w.url, sizeof w.url, "%s", url);
    snprintf(w.events, sizeof w.events, "%s", events);
    snprintf(w.secret, sizeof w.secret, "whsec_test");
    w.created_at = NOW;
    assert_int_equal(store_webhook_add(st, &w), 0);
    assert_true(w.id > 0);
    return w.id;
}

struct deliveries {
    int64_t id[16];
    char event[16][STORE_EVENT_NAME_MAX];
    int n;
};

static int collect_delivery(const struct store_delivery *d, void *ctx)
{
    struct deliveries *c = ctx;
    assert_true(c->n < 16);
    assert_null(d->body); /* the log comes without bodies */
    c->id[c->n] = d->id;
    snprintf(c->event[c->n++], STORE_EVENT_NAME_MAX, "%s", d->event);
    return 0;
}

static void test_webhooks(void **state)
{
    struct fixture *f = *state;
    int64_t a = add_webhook(f->st, "http://127.0.0.1:9/a", "call.ended,user.changed");
    int64_t b = add_webhook(f->st, "https://crm.example.com/b", "call.new,call.ended");
    assert_int_equal(store_webhook_count(f->st), 2);
    struct store_webhook w;
    assert_int_equal(store_webhook_get(f->st, b, &w), 0);
    assert_string_equal(w.url, "https://crm.example.com/b");
    assert_string_equal(w.events, "call.new,call.ended");
    assert_int_equal(store_webhook_get(f->st, b + 100, &w), ENOENT);

    /* An event goes to the webhooks that want it, and only by whole names. */
    assert_int_equal(store_delivery_fanout(f->st, "call.ended", "e1", "{\"n\":1}", NOW * 1000000),
                     2);
    assert_int_equal(
        store_delivery_fanout(f->st, "user.changed", "e2", "{\"n\":2}", NOW * 1000000 + 1), 1);
    assert_int_equal(store_delivery_fanout(f->st, "call", "e3", "{}", NOW * 1000000), 0);
    assert_int_equal(store_delivery_fanout(f->st, "ended", "e3", "{}", NOW * 1000000), 0);
    assert_int_equal(store_delivery_fanout(f->st, "registration.changed", "e3", "{}", 1), 0);

    /* The next due delivery of a: the oldest, with its body; nothing due before its time. */
    struct store_delivery d;
    int64_t due = 0;
    assert_int_equal(store_delivery_next(f->st, a, NOW * 1000000 - 1, &d, &due), ENOENT);
    assert_int_equal(due, NOW * 1000000);
    assert_int_equal(store_delivery_next(f->st, a, NOW * 1000000 + 5, &d, NULL), 0);
    assert_string_equal(d.event, "call.ended");
    assert_string_equal(d.event_id, "e1");
    assert_string_equal(d.body, "{\"n\":1}");
    assert_int_equal(d.state, STORE_DELIVERY_PENDING);
    assert_int_equal(d.attempts, 0);
    free(d.body);
    int64_t first = d.id;

    /* A failed try moves it back; the other becomes next. */
    int64_t t1 = NOW * 1000000 + 10;
    assert_int_equal(store_delivery_tried(f->st, first, t1, STORE_DELIVERY_PENDING, t1 + 5000000,
                                          500, "HTTP 500"),
                     0);
    assert_int_equal(store_delivery_next(f->st, a, t1, &d, NULL), 0);
    assert_string_equal(d.event_id, "e2");
    free(d.body);
    assert_int_equal(store_delivery_tried(f->st, d.id, t1, STORE_DELIVERY_DELIVERED, 0, 204, ""),
                     0);
    assert_int_equal(store_delivery_next(f->st, a, t1, &d, &due), ENOENT);
    assert_int_equal(due, t1 + 5000000);
    assert_int_equal(store_delivery_next(f->st, a, t1 + 5000000, &d, NULL), 0);
    assert_int_equal(d.id, first);
    assert_int_equal(d.attempts, 1);
    assert_int_equal(d.last_status, 500);
    assert_string_equal(d.last_error, "HTTP 500");
    assert_int_equal(d.last_try_us, t1);
    free(d.body);
    assert_int_equal(
        store_delivery_tried(f->st, first, t1 + 6000000, STORE_DELIVERY_FAILED, 0, 0, "timed out"),
        0);
    assert_int_equal(store_delivery_next(f->st, a, INT64_MAX, &d, &due), ENOENT);
    assert_int_equal(store_delivery_tried(f->st, first + 1000, t1, STORE_DELIVERY_FAILED, 0, 0, ""),
                     ENOENT);

    /* The log, newest first, paged by id; the counts by state. */
    struct deliveries c;
    memset(&c, 0, sizeof c);
    assert_int_equal(store_delivery_list(f->st, a, 0, 0, collect_delivery, &c), 0);
    assert_int_equal(c.n, 2);
    assert_true(c.id[0] > c.id[1]);
    assert_string_equal(c.event[0], "user.changed");
    struct deliveries older;
    memset(&older, 0, sizeof older);
    assert_int_equal(store_delivery_list(f->st, a, c.id[0], 1, collect_delivery, &older), 0);
    assert_int_equal(older.n, 1);
    assert_int_equal(older.id[0], c.id[1]);
    int64_t counts[STORE_DELIVERY_STATES];
    assert_int_equal(store_delivery_counts(f->st, a, counts), 0);
    assert_int_equal(counts[STORE_DELIVERY_PENDING], 0);
    assert_int_equal(counts[STORE_DELIVERY_DELIVERED], 1);
    assert_int_equal(counts[STORE_DELIVERY_FAILED], 1);

    /* A test event for one webhook; none for a webhook that does not exist. */
    int64_t pid = 0;
    assert_int_equal(store_delivery_add(f->st, b, "ping", "p1", "{}", NOW * 1000000, &pid), 0);
    assert_true(pid > c.id[0]);
    assert_int_equal(store_delivery_add(f->st, b + 100, "ping", "p2", "{}", NOW * 1000000, &pid),
                     ENOENT);

    /* Retention: the finished beyond the newest one kept go; the oldest pending beyond
     * the bound are given up, the newest stay. */
    assert_int_equal(store_delivery_prune(f->st, a, 0, 1, 100, t1), 1);
    memset(&c, 0, sizeof c);
    assert_int_equal(store_delivery_list(f->st, a, 0, 0, collect_delivery, &c), 0);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.event[0], "user.changed");
    for (int i = 0; i < 4; i++)
        assert_int_equal(store_delivery_add(f->st, a, "ping", "p", "{}", NOW * 1000000 + i, &pid),
                         0);
    assert_int_equal(store_delivery_prune(f->st, a, 0, 100, 3, t1), 1);
    assert_int_equal(store_delivery_counts(f->st, a, counts), 0);
    assert_int_equal(counts[STORE_DELIVERY_PENDING], 3);
    assert_int_equal(counts[STORE_DELIVERY_FAILED], 1);
    assert_int_equal(store_delivery_next(f->st, a, INT64_MAX, &d, NULL), 0);
    assert_int_equal(d.created_us, NOW * 1000000 + 1); /* the oldest one was given up */
    free(d.body);
    /* By age: everything finished before the bound goes. */
    assert_int_equal(store_delivery_prune(f->st, a, INT64_MAX, 100, 100, t1), 2);

    /* Deleting a webhook takes its deliveries along. */
    assert_int_equal(store_webhook_delete(f->st, a), 0);
    assert_int_equal(store_webhook_delete(f->st, a), ENOENT);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM webhook_deliveries WHERE "
                                      "webhook_id NOT IN (SELECT id FROM webhooks)"),
                     0);
    assert_int_equal(store_webhook_count(f->st), 1);
}

static void test_blocks(void **state)
{
    struct fixture *f = *state;
    struct store_block b = {.source = "192.0.2.7",
                            .reason = "10 failed digest checks in 60 s",
                            .failures = 10,
                            .offences = 1,
                            .extensions = "100,101",
                            .since = 1000,
                            .until = 1600};
    assert_int_equal(store_block_save(f->st, &b), 0);
    b.since = 1100;
    b.until = 1200;
    snprintf(b.source, sizeof b.source, "2001:db8::1");
    assert_int_equal(store_block_save(f->st, &b), 0);
    assert_int_equal(blocks_of(f->st, STORE_BLOCKS_ACTIVE, 1150), 2);
    assert_int_equal(blocks_of(f->st, STORE_BLOCKS_ACTIVE, 1200), 1); /* the v6 one is over */
    assert_int_equal(blocks_of(f->st, STORE_BLOCKS_ALL, 1200), 2);

    int64_t v0 = store_blocks_version(f->st);
    assert_true(v0 >= 0);
    assert_int_equal(store_block_lift(f->st, "192.0.2.8", 1150), ENOENT);
    assert_int_equal(store_block_lift(f->st, "2001:db8::1", 1200), ENOENT); /* over */
    assert_int_equal(store_blocks_version(f->st), v0);
    assert_int_equal(store_block_pending(f->st, "192.0.2.7"), 0);
    assert_int_equal(store_block_lift(f->st, "192.0.2.7", 1150), 0);
    assert_true(store_blocks_version(f->st) != v0);
    assert_int_equal(store_block_pending(f->st, "192.0.2.7"), 1);
    assert_int_equal(store_block_lift(f->st, "192.0.2.7", 1150), ENOENT); /* marked already */
    assert_int_equal(blocks_of(f->st, STORE_BLOCKS_ACTIVE, 1150), 1);
    assert_int_equal(blocks_of(f->st, STORE_BLOCKS_LIFTED, 1150), 1);

    /* a newer block of the address replaces the row and clears the mark; removing the
     * old one then leaves it */
    snprintf(b.source, sizeof b.source, "192.0.2.7");
    b.since = 1300;
    b.until = 2500;
    b.offences = 2;
    assert_int_equal(store_block_save(f->st, &b), 0);
    assert_int_equal(store_block_pending(f->st, "192.0.2.7"), 0);
    assert_int_equal(store_block_remove(f->st, "192.0.2.7", 1000), 0);
    assert_int_equal(blocks_of(f->st, STORE_BLOCKS_ACTIVE, 1400), 1);
    assert_int_equal(store_block_remove(f->st, "192.0.2.7", 1300), 0);
    assert_int_equal(blocks_of(f->st, STORE_BLOCKS_ACTIVE, 1400), 0);
}

static void test_users_version(void **state)
{
    struct fixture *f = *state;
    int64_t v0 = store_users_version(f->st);
    assert_true(v0 >= 0);

    struct store_user u = make_user("100");
    assert_int_equal(store_user_add(f->st, &u), 0);
    int64_t v1 = store_users_version(f->st);
    assert_true(v1 != v0);

    u.enabled = 0;
    assert_int_equal(store_user_update(f->st, &u), 0);
    int64_t v2 = store_users_version(f->st);
    assert_true(v2 != v1 && v2 != v0);

    assert_int_equal(store_user_set_ha1(f->st, "100", "r", "0123456789abcdef0123456789abcdef"), 0);
    int64_t v3 = store_users_version(f->st);
    assert_true(v3 != v2);

    /* Failed changes change nothing. */
    assert_int_equal(store_user_add(f->st, &u), EEXIST);
    struct store_user ghost = make_user("999");
    assert_int_equal(store_user_update(f->st, &ghost), ENOENT);
    assert_int_equal(store_user_delete(f->st, "999"), ENOENT);
    assert_int_equal(store_users_version(f->st), v3);
    /* Neither do other tables. */
    assert_int_equal(store_setting_set(f->st, "k", "v"), 0);
    assert_int_equal(store_users_version(f->st), v3);

    assert_int_equal(store_user_delete(f->st, "100"), 0);
    int64_t v4 = store_users_version(f->st);
    assert_true(v4 != v3);

    /* A change through another connection (the CLI, say) shows up here too. */
    char err[512];
    struct store *other;
    assert_int_equal(store_open(&other, f->path, 0, err, sizeof err), 0);
    add_user(other, "300");
    store_close(other);
    assert_true(store_users_version(f->st) != v4);
    struct store_user got;
    assert_int_equal(store_user_get(f->st, "300", &got), 0);
}

/* ---- the user change log ---- */

struct exts {
    char e[16][STORE_EXT_MAX];
    int created[16];
    int n;
};

static int collect_ext(const char *ext, int created, void *ctx)
{
    struct exts *c = ctx;
    assert_true(c->n < 16);
    c->created[c->n] = created;
    snprintf(c->e[c->n++], STORE_EXT_MAX, "%s", ext);
    return 0;
}

static int has_ext(const struct exts *c, const char *ext)
{
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->e[i], ext) == 0)
            return 1;
    return 0;
}

static struct exts changes_between(struct store *st, int64_t after, int64_t upto)
{
    struct exts c;
    memset(&c, 0, sizeof c);
    assert_int_equal(store_user_changes(st, after, upto, collect_ext, &c), 0);
    return c;
}

static void test_user_changes(void **state)
{
    struct fixture *f = *state;
    int64_t v0 = store_users_version(f->st);
    add_user(f->st, "100");
    add_user(f->st, "101");
    int64_t v1 = store_users_version(f->st);
    struct exts c = changes_between(f->st, v0, v1);
    assert_int_equal(c.n, 2);
    assert_true(has_ext(&c, "100") && has_ext(&c, "101"));
    assert_true(c.created[0] && c.created[1]); /* both were created in the range */

    /* A user changed twice and its rules once is listed once; the others not at all. */
    struct store_user u = make_user("100");
    u.enabled = 0;
    assert_int_equal(store_user_update(f->st, &u), 0);
    assert_int_equal(store_user_set_ha1(f->st, "100", "r", "0123456789abcdef0123456789abcdef"), 0);
    struct store_forward fwd;
    memset(&fwd, 0, sizeof fwd);
    fwd.rule[STORE_FWD_BUSY].enabled = 1;
    snprintf(fwd.rule[STORE_FWD_BUSY].target, sizeof fwd.rule[0].target, "101");
    assert_int_equal(store_forward_set(f->st, "100", &fwd), 0);
    int64_t v2 = store_users_version(f->st);
    assert_true(v2 > v1);
    c = changes_between(f->st, v1, v2);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.e[0], "100");
    assert_int_equal(c.created[0], 0); /* changed, not created, in this range */

    /* Only the range asked for; a range with the creation and later changes is a
     * creation. */
    c = changes_between(f->st, v0, v0 + 1);
    assert_int_equal(c.n, 1);
    c = changes_between(f->st, v0, v2);
    assert_int_equal(c.n, 2);
    assert_true(c.created[0] && c.created[1]);

    /* A deleted user is listed (its rules go by cascade, logged too). */
    assert_int_equal(store_user_delete(f->st, "100"), 0);
    int64_t v3 = store_users_version(f->st);
    c = changes_between(f->st, v2, v3);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.e[0], "100");
    assert_int_equal(c.created[0], 0);

    /* Failed changes and other tables log nothing. */
    assert_int_equal(store_user_delete(f->st, "100"), ENOENT);
    assert_int_equal(store_user_update(f->st, &u), ENOENT);
    assert_int_equal(store_setting_set(f->st, "k", "v"), 0);
    assert_int_equal(store_users_version(f->st), v3);

    /* Pruning deletes what was applied, and the numbers never go back, not even when the
     * log is emptied. */
    assert_int_equal(store_user_changes_prune(f->st, v2), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM user_changes"), v3 - v2);
    assert_int_equal(store_user_changes_prune(f->st, v3), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM user_changes"), 0);
    assert_int_equal(store_users_version(f->st), v3);
    add_user(f->st, "102");
    assert_int_equal(store_users_version(f->st), v3 + 1);
    c = changes_between(f->st, v3, v3 + 1);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.e[0], "102");
}

/* ---- registrations ---- */

struct regs {
    struct store_reg r[32];
    int n;
};

static int collect_reg(const struct store_reg *r, void *ctx)
{
    struct regs *c = ctx;
    assert_true(c->n < 32);
    c->r[c->n++] = *r;
    return 0;
}

static struct regs *list_regs(struct store *st, const char *ext, int64_t now)
{
    static struct regs c;
    memset(&c, 0, sizeof c);
    assert_int_equal(store_reg_list(st, ext, now, collect_reg, &c), 0);
    return &c;
}

static void test_regs_save_list(void **state)
{
    struct fixture *f = *state;
    add_user(f->st, "100");
    add_user(f->st, "101");

    struct store_reg a = make_reg("100", "sip:100@192.0.2.10:5060", NOW + 100);
    struct store_reg b = make_reg("100", "sip:100@[2001:db8::1]:5062;transport=tcp", NOW + 50);
    struct store_reg c = make_reg("101", "sip:101@192.0.2.11:5060", NOW + 200);
    snprintf(b.source, sizeof b.source, "[2001:db8::1]:5062");
    snprintf(b.transport, sizeof b.transport, "tcp");
    snprintf(b.instance, sizeof b.instance, "<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>");
    b.q = 0.5;
    b.cseq = 4294967295u;
    assert_int_equal(store_reg_save(f->st, &c), 0);
    assert_int_equal(store_reg_save(f->st, &b), 0);
    assert_int_equal(store_reg_save(f->st, &a), 0);

    struct regs *l = list_regs(f->st, NULL, NOW);
    assert_int_equal(l->n, 3);
    /* Ordered by extension, then contact. */
    assert_string_equal(l->r[0].contact, a.contact);
    assert_string_equal(l->r[1].contact, b.contact);
    assert_string_equal(l->r[2].contact, c.contact);
    /* Every field round-trips. */
    const struct store_reg *g = &l->r[1];
    assert_string_equal(g->extension, "100");
    assert_string_equal(g->source, "[2001:db8::1]:5062");
    assert_string_equal(g->transport, "tcp");
    assert_string_equal(g->user_agent, "TestPhone/1.0");
    assert_string_equal(g->call_id, b.call_id);
    assert_int_equal(g->cseq, 4294967295u);
    assert_string_equal(g->instance, b.instance);
    assert_true(g->q > 0.49 && g->q < 0.51);
    assert_int_equal(g->registered_at, NOW);
    assert_int_equal(g->expires_at, NOW + 50);

    /* Filtered by extension. */
    l = list_regs(f->st, "101", NOW);
    assert_int_equal(l->n, 1);
    assert_string_equal(l->r[0].contact, c.contact);
    assert_int_equal(list_regs(f->st, "100", NOW)->n, 2);
    assert_int_equal(list_regs(f->st, "102", NOW)->n, 0);

    /* Expired bindings are left out: expires_at must be after now. */
    l = list_regs(f->st, NULL, NOW + 50);
    assert_int_equal(l->n, 2);
    assert_string_equal(l->r[0].contact, a.contact);
    assert_string_equal(l->r[1].contact, c.contact);
    assert_int_equal(list_regs(f->st, NULL, NOW + 49)->n, 3);
    assert_int_equal(list_regs(f->st, "100", NOW + 100)->n, 0);
    assert_int_equal(list_regs(f->st, NULL, NOW + 200)->n, 0);
}

static void test_regs_upsert(void **state)
{
    struct fixture *f = *state;
    add_user(f->st, "100");
    struct store_reg a = make_reg("100", "sip:100@192.0.2.10:5060", NOW + 60);
    assert_int_equal(store_reg_save(f->st, &a), 0);

    /* The same binding refreshed: new cseq, expiry, source; still one row. */
    struct store_reg a2 = a;
    a2.cseq = 7;
    a2.expires_at = NOW + 3600;
    a2.registered_at = NOW + 30;
    snprintf(a2.source, sizeof a2.source, "198.51.100.7:40000");
    snprintf(a2.user_agent, sizeof a2.user_agent, "TestPhone/2.0");
    assert_int_equal(store_reg_save(f->st, &a2), 0);

    struct regs *l = list_regs(f->st, NULL, NOW);
    assert_int_equal(l->n, 1);
    assert_int_equal(l->r[0].cseq, 7);
    assert_int_equal(l->r[0].expires_at, NOW + 3600);
    assert_string_equal(l->r[0].source, "198.51.100.7:40000");
    assert_string_equal(l->r[0].user_agent, "TestPhone/2.0");
    assert_int_equal(l->r[0].registered_at, NOW); /* first registration time is kept */
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM registrations"), 1);

    /* Another contact of the same extension is another row. */
    struct store_reg b = make_reg("100", "sip:100@192.0.2.99:5060", NOW + 60);
    assert_int_equal(store_reg_save(f->st, &b), 0);
    assert_int_equal(list_regs(f->st, "100", NOW)->n, 2);

    /* A binding of an unknown user is dropped without an error. */
    struct store_reg x = make_reg("nobody", "sip:nobody@192.0.2.1", NOW + 60);
    assert_int_equal(store_reg_save(f->st, &x), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM registrations"), 2);
}

static void test_regs_remove_purge(void **state)
{
    struct fixture *f = *state;
    add_user(f->st, "100");
    add_user(f->st, "101");
    const char *contacts[] = {"sip:100@192.0.2.1", "sip:100@192.0.2.2", "sip:100@192.0.2.3"};
    for (int i = 0; i < 3; i++) {
        struct store_reg r = make_reg("100", contacts[i], NOW + 10 * (i + 1));
        assert_int_equal(store_reg_save(f->st, &r), 0);
    }
    struct store_reg other = make_reg("101", "sip:101@192.0.2.9", NOW + 10);
    assert_int_equal(store_reg_save(f->st, &other), 0);

    /* One binding. */
    assert_int_equal(store_reg_remove(f->st, "100", contacts[1]), 0);
    struct regs *l = list_regs(f->st, "100", NOW);
    assert_int_equal(l->n, 2);
    assert_string_equal(l->r[0].contact, contacts[0]);
    assert_string_equal(l->r[1].contact, contacts[2]);
    /* Removing what is not there is not an error. */
    assert_int_equal(store_reg_remove(f->st, "100", contacts[1]), 0);
    /* The contact of another extension is not touched. */
    assert_int_equal(store_reg_remove(f->st, "101", contacts[0]), 0);
    assert_int_equal(list_regs(f->st, "100", NOW)->n, 2);

    /* Purge: everything that expired at or before now goes, the rest stays. */
    struct store_reg r = make_reg("100", contacts[1], NOW + 20);
    assert_int_equal(store_reg_save(f->st, &r), 0);
    assert_int_equal(store_reg_purge(f->st, NOW + 9), 0);
    assert_int_equal(store_reg_purge(f->st, NOW + 20), 3); /* 100@.1, 100@.2, 101 */
    l = list_regs(f->st, NULL, NOW);
    assert_int_equal(l->n, 1);
    assert_string_equal(l->r[0].contact, contacts[2]);
    assert_int_equal(store_reg_purge(f->st, NOW + 20), 0);

    /* All bindings of one extension. */
    for (int i = 0; i < 3; i++) {
        struct store_reg x = make_reg("100", contacts[i], NOW + 1000);
        assert_int_equal(store_reg_save(f->st, &x), 0);
    }
    other.expires_at = NOW + 1000;
    assert_int_equal(store_reg_save(f->st, &other), 0);
    assert_int_equal(store_reg_remove(f->st, "100", NULL), 0);
    assert_int_equal(list_regs(f->st, "100", NOW)->n, 0);
    l = list_regs(f->st, NULL, NOW);
    assert_int_equal(l->n, 1);
    assert_string_equal(l->r[0].extension, "101");
}

static void test_regs_cascade(void **state)
{
    struct fixture *f = *state;
    add_user(f->st, "100");
    add_user(f->st, "101");
    struct store_reg a = make_reg("100", "sip:100@192.0.2.1", NOW + 60);
    struct store_reg b = make_reg("100", "sip:100@192.0.2.2", NOW + 60);
    struct store_reg c = make_reg("101", "sip:101@192.0.2.3", NOW + 60);
    assert_int_equal(store_reg_save(f->st, &a), 0);
    assert_int_equal(store_reg_save(f->st, &b), 0);
    assert_int_equal(store_reg_save(f->st, &c), 0);

    assert_int_equal(store_user_delete(f->st, "100"), 0);
    assert_int_equal(list_regs(f->st, "100", NOW)->n, 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM registrations WHERE extension = '100'"),
                     0);
    assert_int_equal(list_regs(f->st, "101", NOW)->n, 1);
}

/* ---- admins ---- */

static void test_admins(void **state)
{
    struct fixture *f = *state;
    char h[256] = "untouched";
    assert_int_equal(store_admin_count(f->st), 0);
    assert_int_equal(store_admin_hash(f->st, "admin", h, sizeof h), ENOENT);
    assert_string_equal(h, "untouched");

    char hash1[256], hash2[256];
    assert_int_equal(util_password_hash("first", hash1, sizeof hash1), 0);
    assert_int_equal(util_password_hash("second", hash2, sizeof hash2), 0);

    assert_int_equal(store_admin_set(f->st, "admin", hash1), 0);
    assert_int_equal(store_admin_count(f->st), 1);
    assert_int_equal(store_admin_hash(f->st, "admin", h, sizeof h), 0);
    assert_string_equal(h, hash1);
    assert_true(util_password_verify("first", h));

    /* Setting again replaces the password; still one account. */
    assert_int_equal(store_admin_set(f->st, "admin", hash2), 0);
    assert_int_equal(store_admin_count(f->st), 1);
    assert_int_equal(store_admin_hash(f->st, "admin", h, sizeof h), 0);
    assert_string_equal(h, hash2);
    assert_false(util_password_verify("first", h));

    assert_int_equal(store_admin_set(f->st, "ops", hash1), 0);
    assert_int_equal(store_admin_count(f->st), 2);
    assert_int_equal(store_admin_hash(f->st, "ops", h, sizeof h), 0);
    assert_string_equal(h, hash1);
    assert_int_equal(store_admin_hash(f->st, "Admin", h, sizeof h), ENOENT);
}

/* ---- the writer thread ---- */

/* What the announce hook saw: each event with the bindings of 300 visible at that moment
 * to another connection. */
struct announced {
    const char *path;
    int n;
    char types[4][64], json[4][64];
    int64_t visible[4];
};

static void on_announce(const char *type, const char *json, void *ctx)
{
    struct announced *a = ctx;
    if (a->n >= 4)
        return;
    snprintf(a->types[a->n], sizeof a->types[0], "%s", type);
    snprintf(a->json[a->n], sizeof a->json[0], "%s", json);
    a->visible[a->n] =
        raw_int(a->path, "SELECT count(*) FROM registrations WHERE extension = '300'");
    a->n++;
}

static void test_writer_announce(void **state)
{
    struct fixture *f = *state;
    char err[512] = "";
    add_user(f->st, "300");
    struct store_writer *w = NULL;
    if (store_writer_create(&w, f->path, err, sizeof err) != 0)
        fail_msg("writer: %s", err);
    struct announced a = {.path = f->path};
    store_writer_set_announce(w, on_announce, &a);
    struct store_reg r = make_reg("300", "sip:300@192.0.2.9", NOW + 3600);
    store_writer_reg_save(w, &r);
    assert_int_equal(store_writer_announce(w, "registration.changed", "{\"n\":1}", 1), 0);
    /* The same event again within the batch (queued within microseconds of the first,
     * which waits up to 50 ms for company) goes out once when asked to. */
    assert_int_equal(store_writer_announce(w, "registration.changed", "{\"n\":1}", 1), 0);
    store_writer_reg_remove(w, "300", NULL);
    assert_int_equal(store_writer_announce(w, "registration.changed", "{\"n\":2}", 0), 0);
    assert_int_equal(store_writer_announce(w, "registration.changed", "{\"n\":2}", 0), 0);
    char long_type[80];
    memset(long_type, 't', sizeof long_type - 1);
    long_type[sizeof long_type - 1] = '\0';
    assert_int_equal(store_writer_announce(w, long_type, "{}", 0), EINVAL);
    store_writer_destroy(w); /* drains the queue */

    /* Each event came after the change queued before it was committed, in order. */
    assert_int_equal(a.n, 3); /* the repeat without once goes out again */
    assert_string_equal(a.types[0], "registration.changed");
    assert_string_equal(a.json[0], "{\"n\":1}");
    assert_string_equal(a.json[1], "{\"n\":2}");
    if (a.visible[0] != 1 && !(a.visible[0] == 0 && a.visible[1] == 0))
        fail_msg("the first event came before its binding was stored");
    assert_int_equal(a.visible[1], 0);
    assert_string_equal(a.json[2], "{\"n\":2}");
}

/* ---- the writer's outbox (webhook deliveries) ---- */

struct outbox {
    atomic_int applied, committed;
    int fail_first; /* the first call fails (EIO): the batch is retried */
    int seen_cdr;   /* the record queued before the event was there, inside the batch */
    char json[4][64];
    int64_t at[4];
};

static int outbox_apply(struct store *st, const char *type, const char *json, int64_t at_us,
                        void *ctx)
{
    struct outbox *o = ctx;
    int n = atomic_fetch_add(&o->applied, 1);
    assert_string_equal(type, "call.ended");
    struct store_cdr c;
    o->seen_cdr = store_cdr_get(st, "outbox-call", NOW * 1000000, &c) == 0;
    if (o->fail_first && n == 0)
        return EIO;
    if (n < 4) {
        snprintf(o->json[n], sizeof o->json[n], "%s", json);
        o->at[n] = at_us;
    }
    /* What the outbox writes is in the batch's transaction. */
    return store_setting_set(st, "outbox", json);
}

static void outbox_committed(void *ctx)
{
    atomic_fetch_add(&((struct outbox *)ctx)->committed, 1);
}

static void queue_call_and_event(struct store_writer *w)
{
    struct store_cdr c;
    memset(&c, 0, sizeof c);
    snprintf(c.call_id, sizeof c.call_id, "outbox-call");
    snprintf(c.caller, sizeof c.caller, "100");
    snprintf(c.dialled, sizeof c.dialled, "101");
    snprintf(c.disposition, sizeof c.disposition, "ANSWERED");
    c.start_us = NOW * 1000000;
    c.end_us = c.start_us + 5000000;
    store_writer_cdr(w, &c);
    assert_int_equal(store_writer_outbox(w, "call.ended", "{\"call_id\":\"outbox-call\"}", 42), 0);
}

static void test_writer_outbox(void **state)
{
    struct fixture *f = *state;
    char err[512] = "", val[64];
    struct store_writer *w = NULL;
    if (store_writer_create(&w, f->path, err, sizeof err) != 0)
        fail_msg("writer: %s", err);
    struct outbox o;
    memset(&o, 0, sizeof o);
    store_writer_set_outbox(w, outbox_apply, outbox_committed, &o);
    queue_call_and_event(w);
    char long_type[80];
    memset(long_type, 't', sizeof long_type - 1);
    long_type[sizeof long_type - 1] = '\0';
    assert_int_equal(store_writer_outbox(w, long_type, "{}", 0), EINVAL);
    store_writer_destroy(w);
    /* Applied once, after the record queued before it, in its transaction; told once. */
    assert_int_equal(atomic_load(&o.applied), 1);
    assert_true(o.seen_cdr);
    assert_string_equal(o.json[0], "{\"call_id\":\"outbox-call\"}");
    assert_int_equal(o.at[0], 42);
    assert_int_equal(atomic_load(&o.committed), 1);
    assert_int_equal(store_setting_get(f->st, "outbox", val, sizeof val), 0);

    /* A failing outbox fails its batch, record and all; the retry writes both. */
    raw_exec(f->path, "DELETE FROM cdrs; DELETE FROM settings WHERE key = 'outbox'");
    if (store_writer_create(&w, f->path, err, sizeof err) != 0)
        fail_msg("writer: %s", err);
    memset(&o, 0, sizeof o);
    o.fail_first = 1;
    store_writer_set_outbox(w, outbox_apply, outbox_committed, &o);
    queue_call_and_event(w);
    store_writer_destroy(w);
    assert_int_equal(atomic_load(&o.applied), 2);
    assert_int_equal(atomic_load(&o.committed), 1);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM cdrs WHERE call_id = 'outbox-call'"),
                     1);

    /* Without an outbox the events are dropped and the rows written. */
    raw_exec(f->path, "DELETE FROM cdrs");
    if (store_writer_create(&w, f->path, err, sizeof err) != 0)
        fail_msg("writer: %s", err);
    queue_call_and_event(w);
    store_writer_destroy(w);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM cdrs"), 1);
}

static void test_writer_drains(void **state)
{
    struct fixture *f = *state;
    enum { USERS = 5, PER_USER = 200 };
    char ext[16], contact[64], err[512] = "";
    for (int u = 0; u < USERS; u++) {
        snprintf(ext, sizeof ext, "%d", 200 + u);
        add_user(f->st, ext);
    }

    struct store_writer *w = NULL;
    if (store_writer_create(&w, f->path, err, sizeof err) != 0)
        fail_msg("writer: %s", err);
    for (int i = 0; i < PER_USER; i++) {
        for (int u = 0; u < USERS; u++) {
            snprintf(ext, sizeof ext, "%d", 200 + u);
            snprintf(contact, sizeof contact, "sip:%s@192.0.2.%d:%d", ext, u + 1, 5060 + i);
            struct store_reg r = make_reg(ext, contact, NOW + 3600);
            r.cseq = (uint32_t)i;
            store_writer_reg_save(w, &r);
        }
        if (i == PER_USER / 2) {
            /* A binding of a user that does not exist does not spoil its batch. */
            struct store_reg x = make_reg("nobody", "sip:nobody@192.0.2.1", NOW + 3600);
            store_writer_reg_save(w, &x);
        }
    }
    /* Removals are applied in order after the saves queued before them. */
    store_writer_reg_remove(w, "200", "sip:200@192.0.2.1:5060");
    store_writer_reg_remove(w, "204", NULL);
    store_writer_destroy(w);

    /* Checked through a separate connection. */
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM registrations"),
                     (USERS - 1) * PER_USER - 1);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM registrations WHERE extension = '203'"),
                     PER_USER);
    assert_int_equal(raw_int(f->path, "SELECT max(cseq) FROM registrations"), PER_USER - 1);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM registrations "
                                      "WHERE contact = 'sip:200@192.0.2.1:5060'"),
                     0);
    assert_int_equal(raw_int(f->path, "SELECT count(DISTINCT extension) FROM registrations"),
                     USERS - 1);
}

static void test_writer_depth_and_idle_destroy(void **state)
{
    struct fixture *f = *state;
    char err[512];
    struct store_writer *w = NULL;
    assert_int_equal(store_writer_create(&w, f->path, err, sizeof err), 0);
    assert_int_equal(store_writer_depth(w), 0);
    /* Nothing queued: destroy returns promptly and cleanly. */
    store_writer_destroy(w);
    store_writer_destroy(NULL);

    /* A database that was never migrated is refused. */
    char path[160];
    snprintf(path, sizeof path, "%s/empty.db", f->dir);
    raw_exec(path, "CREATE TABLE t (x)");
    err[0] = '\0';
    w = NULL;
    assert_int_equal(store_writer_create(&w, path, err, sizeof err), -1);
    assert_null(w);
    assert_true(err[0] != '\0');
}

struct ticker {
    atomic_int calls;
    atomic_int users; /* what the tick saw through its connection */
};

static void count_tick(struct store *st, void *ctx)
{
    struct ticker *t = ctx;
    atomic_store(&t->users, store_user_count(st));
    atomic_fetch_add(&t->calls, 1);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Waits up to limit_ms for the tick count to reach want; returns the count. */
static int wait_ticks(struct ticker *t, int want, int limit_ms)
{
    for (int waited = 0; atomic_load(&t->calls) < want && waited < limit_ms; waited += 10)
        sleep_ms(10);
    return atomic_load(&t->calls);
}

static void test_writer_tick(void **state)
{
    struct fixture *f = *state;
    char err[512];
    struct ticker t;
    atomic_init(&t.calls, 0);
    atomic_init(&t.users, -1);
    add_user(f->st, "100");
    add_user(f->st, "101");

    struct store_writer *w = NULL;
    assert_int_equal(store_writer_create(&w, f->path, err, sizeof err), 0);
    store_writer_set_tick(w, count_tick, &t, 100);
    sleep_ms(1500);
    int n = atomic_load(&t.calls);
    store_writer_destroy(w);
    if (n < 2)
        fail_msg("tick ran %d times in 1.5 s at a 100 ms interval", n);
    assert_int_equal(atomic_load(&t.users), 2);
}

static void test_writer_poke(void **state)
{
    struct fixture *f = *state;
    char err[512];
    struct ticker t;
    atomic_init(&t.calls, 0);
    atomic_init(&t.users, -1);

    struct store_writer *w = NULL;
    assert_int_equal(store_writer_create(&w, f->path, err, sizeof err), 0);
    /* An interval far longer than the test: every run after the first is a poke's. */
    store_writer_set_tick(w, count_tick, &t, 600000);
    assert_int_equal(wait_ticks(&t, 1, 5000), 1);
    assert_int_equal(atomic_load(&t.users), 0);

    add_user(f->st, "100");
    store_writer_poke(w);
    assert_int_equal(wait_ticks(&t, 2, 5000), 2);
    assert_int_equal(atomic_load(&t.users), 1);

    add_user(f->st, "101");
    store_writer_poke(w);
    assert_int_equal(wait_ticks(&t, 3, 5000), 3);
    assert_int_equal(atomic_load(&t.users), 2);
    store_writer_destroy(w);
}

int main(void)
{
    log_set_level(LOGL_ERROR);
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_open_fresh),
        T(test_open_missing_or_unmigrated),
        T(test_open_newer_schema),
        T(test_open_not_a_database),
        T(test_upgrade_keeps_data),
        T(test_failed_upgrade_changes_nothing),
        T(test_upgrade_to_user_changes),
        T(test_failed_upgrade_to_user_changes),
        T(test_upgrade_to_presence),
        T(test_upgrade_to_webhooks),
        T(test_failed_upgrade_to_webhooks),
        T(test_tx),
        T(test_settings),
        T(test_users_crud),
        T(test_users_list),
        T(test_users_long_name),
        T(test_users_version),
        T(test_user_changes),
        T(test_blocks),
        T(test_webhooks),
        T(test_regs_save_list),
        T(test_regs_upsert),
        T(test_regs_remove_purge),
        T(test_regs_cascade),
        T(test_admins),
        T(test_writer_drains),
        T(test_writer_announce),
        T(test_writer_outbox),
        T(test_writer_depth_and_idle_destroy),
        T(test_writer_tick),
        T(test_writer_poke),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
