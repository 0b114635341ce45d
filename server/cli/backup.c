/* `sipbx backup FILE` and `sipbx restore FILE`: a consistent copy of the live database with
 * the voicemail messages' audio in it, and putting one back while the daemon is stopped. */
#include "cli/cli.h"
#include "store/store.h"
#include "voicemail/vm.h"

#include <stdio.h>
#include <unistd.h>

static const char *db_path(const struct cli_args *a)
{
    const char *p = cli_opt(a, "db");
    return p ? p : "sipbx.db";
}

int cli_backup(int argc, char **argv)
{
    static const char *const allowed[] = {"db", NULL};
    struct cli_args a;
    if (cli_parse(argc, argv, allowed, &a) != 0)
        return 2;
    if (a.npos != 1) {
        fprintf(stderr, "sipbx: usage: sipbx backup FILE [--db FILE]\n");
        return 2;
    }
    if (access(db_path(&a), R_OK) != 0) {
        fprintf(stderr, "sipbx: no database at %s\n", db_path(&a));
        return 1;
    }
    struct store *st;
    char err[768];
    if (store_open(&st, db_path(&a), STORE_ANY_VERSION, err, sizeof err) != 0) {
        fprintf(stderr, "sipbx: %s\n", err);
        return 1;
    }
    char dir[4096];
    vm_dir_of(db_path(&a), dir, sizeof dir);
    int rc = store_backup(st, a.pos[0], dir, err, sizeof err);
    store_close(st);
    if (rc != 0) {
        fprintf(stderr, "sipbx: %s\n", err);
        return 1;
    }
    printf("backup of %s written to %s\n", db_path(&a), a.pos[0]);
    return 0;
}

int cli_restore(int argc, char **argv)
{
    static const char *const allowed[] = {"db", NULL};
    struct cli_args a;
    if (cli_parse(argc, argv, allowed, &a) != 0)
        return 2;
    if (a.npos != 1) {
        fprintf(stderr, "sipbx: usage: sipbx restore FILE [--db FILE]\n");
        return 2;
    }
    char err[768];
    int lock;
    if (store_lock(db_path(&a), &lock, err, sizeof err) != 0) {
        fprintf(stderr, "sipbx: %s\n", err);
        return 1;
    }
    char dir[4096];
    vm_dir_of(db_path(&a), dir, sizeof dir);
    int rc = store_restore(a.pos[0], db_path(&a), dir, err, sizeof err);
    close(lock);
    if (rc != 0) {
        fprintf(stderr, "sipbx: %s\n", err);
        return 1;
    }
    printf("%s restored from %s; start sipbx to use it\n", db_path(&a), a.pos[0]);
    return 0;
}
