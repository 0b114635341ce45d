/* Online backup and restore of the whole database (SQLite's backup API) with the audio of
 * the voicemail messages carried inside the copy (so a backup stays one file), and the lock
 * that keeps two daemons, or a restore and a daemon, off the same file. */
#include "store/store_int.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define BACKUP_FILE_MAX (64 << 20) /* a message file larger than this is not one of ours */

/* Copies every page of src into dst in one step: one consistent snapshot. With WAL the
 * daemon's writers carry on meanwhile; they are not blocked by the read. */
static int copy_db(sqlite3 *dst, sqlite3 *src, char *err, size_t errlen)
{
    sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
    if (!b) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(dst));
        return -1;
    }
    int rc;
    while ((rc = sqlite3_backup_step(b, -1)) == SQLITE_BUSY || rc == SQLITE_LOCKED)
        sqlite3_sleep(50);
    sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "%s", sqlite3_errstr(rc));
        return -1;
    }
    return 0;
}

/* True when the database d has table name. */
static int has_table(sqlite3 *d, const char *name)
{
    sqlite3_stmt *s = NULL;
    int yes = sqlite3_prepare_v2(d, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                                 -1, &s, NULL) == SQLITE_OK &&
              sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC) == SQLITE_OK &&
              sqlite3_step(s) == SQLITE_ROW;
    sqlite3_finalize(s);
    return yes;
}

/* A voicemail file name as sipbx makes them (hex digits and .wav): nothing that reaches
 * outside the directory. */
static int safe_name(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    return n > 4 && n < 128 && strspn(name, "0123456789abcdef") == n - 4 &&
           strcmp(name + n - 4, ".wav") == 0;
}

/* Reads dir/name into a new buffer; 0 or an errno value. */
static int read_file(const char *dir, const char *name, char **out, size_t *len)
{
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return util_read_file(path, BACKUP_FILE_MAX, out, len);
}

/* Puts the file of every voicemail message of the copy d into its table backup_files; a
 * message whose file is gone (deleted since the snapshot) leaves the copy too. 0 or -1. */
static int add_files(sqlite3 *d, const char *vm_dir, char *why, size_t whylen)
{
    if (!vm_dir || !has_table(d, "voicemail_messages"))
        return 0; /* a database from before voicemail */
    sqlite3_stmt *sel = NULL, *ins = NULL, *del = NULL;
    int rc = -1;
    if (sqlite3_exec(d,
                     "BEGIN; CREATE TABLE backup_files (name TEXT PRIMARY KEY, data BLOB NOT "
                     "NULL)",
                     NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(d, "SELECT id, file FROM voicemail_messages", -1, &sel, NULL) ||
        sqlite3_prepare_v2(d, "INSERT OR REPLACE INTO backup_files VALUES (?, ?)", -1, &ins,
                           NULL) ||
        sqlite3_prepare_v2(d, "DELETE FROM voicemail_messages WHERE id = ?", -1, &del, NULL))
        goto out;
    int step;
    while ((step = sqlite3_step(sel)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(sel, 1);
        char *data = NULL;
        size_t len = 0;
        int frc = safe_name(name) ? read_file(vm_dir, name, &data, &len) : ENOENT;
        if (frc != 0) {
            log_warn("backup: voicemail message %lld left out: %s/%s: %s",
                     (long long)sqlite3_column_int64(sel, 0), vm_dir, name ? name : "?",
                     strerror(frc));
            sqlite3_bind_int64(del, 1, sqlite3_column_int64(sel, 0));
            sqlite3_step(del);
            sqlite3_reset(del);
            continue;
        }
        sqlite3_bind_text(ins, 1, name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_blob64(ins, 2, data, len, free);
        int irc = sqlite3_step(ins);
        sqlite3_reset(ins);
        if (irc != SQLITE_DONE)
            goto out;
    }
    if (step != SQLITE_DONE || sqlite3_exec(d, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        goto out;
    rc = 0;
out:
    if (rc != 0) {
        snprintf(why, whylen, "voicemail files: %s", sqlite3_errmsg(d));
        sqlite3_exec(d, "ROLLBACK", NULL, NULL, NULL);
    }
    sqlite3_finalize(sel);
    sqlite3_finalize(ins);
    sqlite3_finalize(del);
    return rc;
}

/* Writes the files of backup_files in the restored database d into vm_dir and drops the
 * table. 0 or -1. */
static int extract_files(sqlite3 *d, const char *vm_dir, char *why, size_t whylen)
{
    if (!has_table(d, "backup_files"))
        return 0;
    if (!vm_dir || (mkdir(vm_dir, 0700) != 0 && errno != EEXIST)) {
        snprintf(why, whylen, "cannot create %s: %s", vm_dir ? vm_dir : "?", strerror(errno));
        return -1;
    }
    sqlite3_stmt *s = NULL;
    int rc = -1, step;
    if (sqlite3_prepare_v2(d, "SELECT name, data FROM backup_files", -1, &s, NULL) != SQLITE_OK) {
        snprintf(why, whylen, "%s", sqlite3_errmsg(d));
        return -1;
    }
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(s, 0);
        const void *data = sqlite3_column_blob(s, 1);
        size_t len = (size_t)sqlite3_column_bytes(s, 1);
        char path[8192];
        if (!safe_name(name))
            continue; /* not one of ours: never written anywhere */
        snprintf(path, sizeof path, "%s/%s", vm_dir, name);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ssize_t w = fd >= 0 && len ? write(fd, data, len) : 0;
        if (fd < 0 || w != (ssize_t)len || fsync(fd) != 0) {
            snprintf(why, whylen, "cannot write %.200s: %s", path, strerror(errno));
            if (fd >= 0)
                close(fd);
            goto out;
        }
        close(fd);
    }
    if (step != SQLITE_DONE) {
        snprintf(why, whylen, "%s", sqlite3_errmsg(d));
        goto out;
    }
    rc = 0;
out:
    sqlite3_finalize(s);
    if (rc == 0 && sqlite3_exec(d, "DROP TABLE backup_files", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(why, whylen, "%s", sqlite3_errmsg(d));
        rc = -1;
    }
    return rc;
}

int store_backup(struct store *st, const char *dest, const char *vm_dir, char *err, size_t errlen)
{
    /* Write to a temporary name first, so a failed backup never leaves a half file under
     * the name the user asked for. */
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s.partial", dest);
    unlink(tmp);
    sqlite3 *d = NULL;
    if (sqlite3_open_v2(tmp, &d, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, d ? sqlite3_errmsg(d) : "no memory");
        sqlite3_close(d);
        return -1;
    }
    char why[256];
    int rc = copy_db(d, st->db, why, sizeof why);
    if (rc == 0)
        rc = add_files(d, vm_dir, why, sizeof why);
    if (rc == 0 && sqlite3_exec(d, "PRAGMA journal_mode = DELETE", NULL, NULL, NULL) != SQLITE_OK)
        snprintf(why, sizeof why, "%s", sqlite3_errmsg(d)), rc = -1;
    sqlite3_close(d);
    if (rc == 0 && rename(tmp, dest) != 0) {
        snprintf(why, sizeof why, "cannot rename to %s: %s", dest, strerror(errno));
        rc = -1;
    }
    if (rc != 0) {
        unlink(tmp);
        snprintf(err, errlen, "backup to %s failed: %s", dest, why);
    }
    return rc;
}

int store_restore(const char *src, const char *dest, const char *vm_dir, char *err, size_t errlen)
{
    struct store *from = NULL;
    char why[512];
    /* The copy must be a sipbx database this binary can read (older ones are migrated when
     * the daemon next starts). */
    if (store_open(&from, src, STORE_READONLY | STORE_ANY_VERSION, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s", why);
        return -1;
    }
    int v = store_schema_version(from);
    if (v < 1 || v > store_latest_version() || store_user_count(from) < 0) {
        snprintf(err, errlen, "%s is not a sipbx database this version can restore (schema %d)",
                 src, v);
        store_close(from);
        return -1;
    }
    sqlite3 *d = NULL;
    int rc = -1;
    if (sqlite3_open_v2(dest, &d, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", dest, d ? sqlite3_errmsg(d) : "no memory");
    } else if (copy_db(d, from->db, why, sizeof why) != 0) {
        snprintf(err, errlen, "restore into %s failed: %s", dest, why);
    } else if (extract_files(d, vm_dir, why, sizeof why) != 0) {
        snprintf(err, errlen, "restore into %s: the voicemail files: %s", dest, why);
    } else {
        rc = 0;
    }
    sqlite3_close(d);
    store_close(from);
    return rc;
}

int store_lock(const char *db_path, int *fd_out, char *err, size_t errlen)
{
    char path[512];
    snprintf(path, sizeof path, "%s.lock", db_path);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create lock file %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK)
            snprintf(err, errlen,
                     "database %s is in use by a running sipbx (lock %s): stop it first", db_path,
                     path);
        else
            snprintf(err, errlen, "cannot lock %s: %s", path, strerror(e));
        return -1;
    }
    *fd_out = fd;
    return 0;
}
