/* `sipbx user ...`: manage SIP accounts directly in the database. A running daemon picks
 * the change up within about 50 ms (its writer follows the user_changes log, db/006). */
#include "cli/cli.h"
#include "config/config.h"
#include "voicemail/vm.h"
#include "store/store.h"
#include "users/users.h"
#include "util/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PASSWORD_MIN USERS_PASSWORD_MIN

/* The password from --password, or one line of stdin for "--password -". */
static int get_password(const struct cli_args *a, char *out, size_t outlen)
{
    const char *pw = cli_opt(a, "password");
    if (!pw) {
        fprintf(stderr, "sipbx: --password is required (use '--password -' to read it from "
                        "standard input)\n");
        return -1;
    }
    if (strcmp(pw, "-") == 0) {
        if (!fgets(out, (int)outlen, stdin)) {
            fprintf(stderr, "sipbx: no password on standard input\n");
            return -1;
        }
        out[strcspn(out, "\r\n")] = '\0';
    } else {
        snprintf(out, outlen, "%s", pw);
    }
    if (strlen(out) < PASSWORD_MIN) {
        fprintf(stderr, "sipbx: the password must have at least %d characters\n", PASSWORD_MIN);
        return -1;
    }
    return 0;
}

static int check_ext(const char *ext)
{
    if (!ext) {
        fprintf(stderr, "sipbx: an extension is required\n");
        return -1;
    }
    if (!util_valid_extension(ext)) {
        fprintf(stderr, "sipbx: '%s' is not a valid extension (1-32 letters, digits or -_.!~*'+)\n",
                ext);
        return -1;
    }
    return 0;
}

static int user_add(struct store *st, const struct cli_args *a)
{
    const char *ext = a->npos > 1 ? a->pos[1] : NULL;
    char pw[256], realm[CONFIG_STR_MAX];
    if (check_ext(ext) != 0 || get_password(a, pw, sizeof pw) != 0)
        return 2;
    if (cli_domain(st, NULL, realm, sizeof realm) != 0) {
        fprintf(stderr, "sipbx: cannot read the domain: %s\n", store_errmsg(st));
        return 1;
    }
    struct store_user u;
    memset(&u, 0, sizeof u);
    snprintf(u.extension, sizeof u.extension, "%s", ext);
    const char *display = cli_opt(a, "display");
    char why[128];
    if (display && users_display_name_problem(display, why, sizeof why) != 0) {
        fprintf(stderr, "sipbx: --display: %s\n", why);
        return 2;
    }
    snprintf(u.display_name, sizeof u.display_name, "%s", display ? display : "");
    snprintf(u.realm, sizeof u.realm, "%s", realm);
    users_ha1(u.ha1, ext, realm, pw);
    u.enabled = 1;
    u.call_waiting = 1;
    u.created_at = util_now();
    int rc = store_user_add(st, &u);
    if (rc == EEXIST) {
        struct store_group g;
        if (store_group_get(st, ext, &g) == 0)
            fprintf(stderr, "sipbx: extension %s is a ring group\n", ext);
        else
            fprintf(stderr, "sipbx: user %s already exists\n", ext);
        return 1;
    }
    if (rc != 0) {
        fprintf(stderr, "sipbx: cannot add user %s: %s\n", ext, store_errmsg(st));
        return 1;
    }
    printf("user %s added; register it as %s@%s\n", ext, ext, realm);
    return 0;
}

static int user_passwd(struct store *st, const struct cli_args *a)
{
    const char *ext = a->npos > 1 ? a->pos[1] : NULL;
    char pw[256], realm[CONFIG_STR_MAX], ha1[33];
    if (check_ext(ext) != 0 || get_password(a, pw, sizeof pw) != 0)
        return 2;
    if (cli_domain(st, NULL, realm, sizeof realm) != 0) {
        fprintf(stderr, "sipbx: cannot read the domain: %s\n", store_errmsg(st));
        return 1;
    }
    users_ha1(ha1, ext, realm, pw);
    int rc = store_user_set_ha1(st, ext, realm, ha1);
    if (rc == ENOENT) {
        fprintf(stderr, "sipbx: no user %s\n", ext);
        return 1;
    }
    if (rc != 0) {
        fprintf(stderr, "sipbx: cannot change the password of %s: %s\n", ext, store_errmsg(st));
        return 1;
    }
    printf("password of %s changed\n", ext);
    return 0;
}

static int user_del(struct store *st, const struct cli_args *a)
{
    const char *ext = a->npos > 1 ? a->pos[1] : NULL;
    if (check_ext(ext) != 0)
        return 2;
    /* Its voicemail messages' files go too (a running daemon would sweep them). */
    const char *db = cli_opt(a, "db");
    char dir[4096];
    vm_dir_of(db ? db : "sipbx.db", dir, sizeof dir);
    int rc = vm_user_delete(st, dir, ext);
    if (rc == ENOENT) {
        fprintf(stderr, "sipbx: no user %s\n", ext);
        return 1;
    }
    if (rc != 0) {
        fprintf(stderr, "sipbx: cannot delete user %s: %s\n", ext, store_errmsg(st));
        return 1;
    }
    printf("user %s deleted\n", ext);
    return 0;
}

struct list_ctx {
    struct store *st;
    int64_t now;
    const struct store_user *user;
    int bindings;
};

#define LIST_FMT "%-8s %-16s %-8s %-36s %-21s %-5s %-20s %s\n"

static int print_binding(const struct store_reg *r, void *arg)
{
    struct list_ctx *lc = arg;
    char expires[32];
    snprintf(expires, sizeof expires, "%lds", (long)(r->expires_at - lc->now));
    const char *first = lc->bindings++ == 0 ? lc->user->extension : "";
    printf(LIST_FMT, first, first[0] ? lc->user->display_name : "", "online", r->contact, r->source,
           r->transport, r->user_agent[0] ? r->user_agent : "-", expires);
    return 0;
}

static int print_user(const struct store_user *u, void *arg)
{
    struct list_ctx *lc = arg;
    lc->user = u;
    lc->bindings = 0;
    /* Users are few (an office), so a query per user keeps this simple; it runs on a second
     * connection because the users query is still open on the first. */
    store_reg_list(lc->st, u->extension, lc->now, print_binding, lc);
    if (lc->bindings == 0)
        printf(LIST_FMT, u->extension, u->display_name, u->enabled ? "offline" : "disabled", "-",
               "-", "-", "-", "-");
    return 0;
}

static int user_list(struct store *st, const struct cli_args *a)
{
    struct store *st2;
    char err[512];
    const char *path = cli_opt(a, "db");
    if (store_open(&st2, path ? path : "sipbx.db", 0, err, sizeof err) != 0) {
        fprintf(stderr, "sipbx: %s\n", err);
        return 1;
    }
    struct list_ctx lc = {st2, util_now(), NULL, 0};
    printf(LIST_FMT, "EXT", "NAME", "STATUS", "CONTACT", "SOURCE", "PROTO", "USER AGENT",
           "EXPIRES");
    int rc = store_user_list(st, NULL, 0, print_user, &lc);
    store_close(st2);
    if (rc != 0) {
        fprintf(stderr, "sipbx: cannot list users: %s\n", store_errmsg(st));
        return 1;
    }
    return 0;
}

/* The whole of path in a new buffer (*out, *len); 0, or -1 after saying why. */
static int read_file(const char *path, char **out, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "sipbx: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        char *nb = realloc(buf, cap *= 2);
        if (!nb)
            free(buf);
        buf = nb;
    }
    int failed = !buf || ferror(f);
    if (f != stdin)
        fclose(f);
    if (failed) {
        fprintf(stderr, "sipbx: cannot read %s: %s\n", path, buf ? "read error" : "out of memory");
        free(buf);
        return -1;
    }
    *out = buf;
    *len = n;
    return 0;
}

/* JSON when the file is named *.json or starts with '[' (after white space), else CSV. */
static enum users_format file_format(const char *path, const char *data, size_t len)
{
    size_t pl = strlen(path);
    if (pl > 5 && strcmp(path + pl - 5, ".json") == 0)
        return USERS_JSON;
    size_t i = 0;
    while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n'))
        i++;
    return i < len && data[i] == '[' ? USERS_JSON : USERS_CSV;
}

static int user_import(struct store *st, const struct cli_args *a)
{
    const char *path = a->npos > 1 ? a->pos[1] : NULL;
    if (!path) {
        fprintf(stderr, "sipbx: a file is required: sipbx user import FILE.csv|FILE.json\n");
        return 2;
    }
    char realm[CONFIG_STR_MAX], err[256];
    if (cli_domain(st, NULL, realm, sizeof realm) != 0) {
        fprintf(stderr, "sipbx: cannot read the domain: %s\n", store_errmsg(st));
        return 1;
    }
    char *data;
    size_t len;
    if (read_file(path, &data, &len) != 0)
        return 2;
    struct users_import *im = NULL;
    int rc =
        users_import_parse(&im, data, len, file_format(path, data, len), realm, err, sizeof err);
    free(data);
    if (rc != 0) {
        fprintf(stderr, "sipbx: %s: %s\n", path, err);
        return rc == EINVAL ? 2 : 1;
    }
    if (users_import_run(im, st) != 0) {
        fprintf(stderr, "sipbx: cannot import users (nothing was created): %s\n", store_errmsg(st));
        users_import_destroy(im);
        return 1;
    }
    const struct users_rejected *rej;
    size_t nrej = users_import_rejected(im, &rej);
    for (size_t i = 0; i < nrej; i++)
        fprintf(stderr, "sipbx: %s, line %d%s%s: %s (%s)\n", path, rej[i].line,
                rej[i].extension[0] ? ", " : "", rej[i].extension, rej[i].reason, rej[i].message);
    printf("%zu user(s) created, %zu row(s) rejected, from %s\n", users_import_created(im), nrej,
           path);
    users_import_destroy(im);
    return nrej ? 1 : 0;
}

static const struct cli_command commands[] = {
    {"add", user_add},       {"list", user_list},     {"del", user_del},
    {"passwd", user_passwd}, {"import", user_import},
};

int cli_user(int argc, char **argv)
{
    static const char *const allowed[] = {"password", "display", "db", NULL};
    return cli_dispatch(argc, argv, allowed, commands, sizeof commands / sizeof commands[0], "user",
                        "add, list, del, passwd, import");
}
