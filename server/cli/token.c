/* `sipbx token ...`: API tokens for scripts, managed directly in the database. The secret
 * is printed once at creation; only its SHA-256 is stored. */
#include "cli/cli.h"
#include "store/store.h"
#include "util/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void format_time(char *out, size_t outlen, int64_t t)
{
    if (t == 0) {
        snprintf(out, outlen, "never");
        return;
    }
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int token_create(struct store *st, const struct cli_args *a)
{
    const char *name = a->npos > 1 ? a->pos[1] : NULL;
    if (!name || !*name) {
        fprintf(stderr, "sipbx: usage: sipbx token create NAME [--db FILE]\n");
        return 2;
    }
    if (strlen(name) >= STORE_TOKEN_NAME_MAX) {
        fprintf(stderr, "sipbx: the token name is longer than %d characters\n",
                STORE_TOKEN_NAME_MAX - 1);
        return 2;
    }
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p == 0x7f) {
            fprintf(stderr, "sipbx: the token name must not contain control characters\n");
            return 2;
        }
    char secret[STORE_TOKEN_LEN];
    struct store_token t;
    if (store_token_create(st, name, util_now(), secret, &t) != 0) {
        fprintf(stderr, "sipbx: cannot create the token: %s\n", store_errmsg(st));
        return 1;
    }
    /* The secret alone on stdout, so TOKEN=$(sipbx token create ci) works; the rest on
     * stderr. */
    printf("%s\n", secret);
    fprintf(stderr, "token %lld (%s) created; it is shown only now: keep it safe\n",
            (long long)t.id, t.name);
    return 0;
}

static int print_token(const struct store_token *t, void *ctx)
{
    (void)ctx;
    char created[32], used[32];
    format_time(created, sizeof created, t->created_at);
    format_time(used, sizeof used, t->last_used_at);
    printf("%-6lld %-24s %-21s %s\n", (long long)t->id, t->name, created, used);
    return 0;
}

static int token_list(struct store *st, const struct cli_args *a)
{
    (void)a;
    printf("%-6s %-24s %-21s %s\n", "ID", "NAME", "CREATED", "LAST USED");
    if (store_token_list(st, 0, 0, print_token, NULL) != 0) {
        fprintf(stderr, "sipbx: cannot list tokens: %s\n", store_errmsg(st));
        return 1;
    }
    return 0;
}

static int token_revoke(struct store *st, const struct cli_args *a)
{
    const char *arg = a->npos > 1 ? a->pos[1] : NULL;
    char *end = NULL;
    long long id = arg ? strtoll(arg, &end, 10) : 0;
    if (!arg || !*arg || *end || id <= 0) {
        fprintf(stderr,
                "sipbx: usage: sipbx token revoke ID [--db FILE] (IDs: sipbx token list)\n");
        return 2;
    }
    int rc = store_token_delete(st, id);
    if (rc == ENOENT) {
        fprintf(stderr, "sipbx: no token %lld\n", id);
        return 1;
    }
    if (rc != 0) {
        fprintf(stderr, "sipbx: cannot revoke token %lld: %s\n", id, store_errmsg(st));
        return 1;
    }
    printf("token %lld revoked\n", id);
    return 0;
}

static const struct cli_command commands[] = {
    {"create", token_create},
    {"list", token_list},
    {"revoke", token_revoke},
};

int cli_token(int argc, char **argv)
{
    static const char *const allowed[] = {"db", NULL};
    return cli_dispatch(argc, argv, allowed, commands, sizeof commands / sizeof commands[0],
                        "token", "create, list, revoke");
}
