/* Online backup and restore of the whole database (SQLite's backup API), and the lock that
 * keeps two daemons, or a restore and a daemon, off the same file. */
#include "store/store_int.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

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

int store_backup(struct store *st, const char *dest, char *err, size_t errlen)
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

int store_restore(const char *src, const char *dest, char *err, size_t errlen)
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
