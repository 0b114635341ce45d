/* Shared command-line helpers: option parsing, opening the store, the domain. */
#include "cli/cli.h"
#include "config/config.h"
#include "store/store.h"
#include "util/util.h"

#include <stdio.h>
#include <string.h>

int cli_parse(int argc, char **argv, const char *const *allowed, struct cli_args *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            if (a->npos == CLI_MAX_ARGS) {
                fprintf(stderr, "sipbx: too many arguments\n");
                return -1;
            }
            a->pos[a->npos++] = arg;
            continue;
        }
        const char *name = arg + 2, *eq = strchr(name, '='), *val;
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        int ok = 0;
        for (const char *const *p = allowed; *p; p++)
            if (strlen(*p) == nlen && strncmp(*p, name, nlen) == 0) {
                name = *p;
                ok = 1;
                break;
            }
        if (!ok) {
            fprintf(stderr, "sipbx: unknown option '%.*s' (see 'sipbx help')\n", (int)nlen + 2,
                    arg);
            return -1;
        }
        if (eq) {
            val = eq + 1;
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            fprintf(stderr, "sipbx: option --%s needs a value\n", name);
            return -1;
        }
        if (a->nopt == CLI_MAX_ARGS) {
            fprintf(stderr, "sipbx: too many options\n");
            return -1;
        }
        a->opt_name[a->nopt] = name;
        a->opt_val[a->nopt++] = val;
    }
    return 0;
}

const char *cli_opt(const struct cli_args *a, const char *name)
{
    const char *v = NULL;
    for (int i = 0; i < a->nopt; i++)
        if (strcmp(a->opt_name[i], name) == 0)
            v = a->opt_val[i]; /* the last one wins, like most tools */
    return v;
}

struct store *cli_open_store(const struct cli_args *a)
{
    const char *path = cli_opt(a, "db");
    struct store *st;
    char err[512];
    if (store_open(&st, path ? path : "sipbx.db", STORE_CREATE | STORE_MIGRATE, err, sizeof err) !=
        0) {
        fprintf(stderr, "sipbx: %s\n", err);
        return NULL;
    }
    return st;
}

int cli_domain(struct store *st, const char *given, char *out, size_t outlen)
{
    char stored[CONFIG_STR_MAX] = "";
    int have = store_setting_get(st, "domain", stored, sizeof stored) == 0 && stored[0];
    if (given && *given) {
        if (have && strcmp(stored, given) != 0) {
            int n = store_user_count(st);
            log_warn("domain changes from '%s' to '%s': the %d existing password(s) were made "
                     "for the old domain and must be set again (sipbx user passwd)",
                     stored, given, n < 0 ? 0 : n);
        }
        snprintf(out, outlen, "%s", given);
    } else if (have) {
        snprintf(out, outlen, "%s", stored);
        return 0;
    } else {
        config_primary_address(out, outlen);
    }
    if (!have || strcmp(stored, out) != 0)
        return store_setting_set(st, "domain", out);
    return 0;
}

int cli_dispatch(int argc, char **argv, const char *const *allowed,
                 const struct cli_command *commands, size_t n, const char *group, const char *names)
{
    struct cli_args a;
    if (cli_parse(argc, argv, allowed, &a) != 0)
        return 2;
    if (a.npos == 0) {
        fprintf(stderr, "sipbx: usage: sipbx %s %s ...\n", group, names);
        return 2;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(a.pos[0], commands[i].name) != 0)
            continue;
        struct store *st = cli_open_store(&a);
        if (!st)
            return 1;
        int rc = commands[i].run(st, &a);
        store_close(st);
        return rc;
    }
    fprintf(stderr, "sipbx: unknown %s command '%s' (%s)\n", group, a.pos[0], names);
    return 2;
}
