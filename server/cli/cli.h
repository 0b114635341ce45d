/* The command line: one function per subcommand, and the helpers they share. */
#ifndef SIPBX_CLI_H
#define SIPBX_CLI_H

#include <stddef.h>

struct config;
struct store;

/** How to run this binary again in a hint printed to the user: the path it was started by
 *  when that has a slash (build/sipbx, /usr/sbin/sipbx), else "sipbx" (found on PATH). */
extern const char *cli_program;

/** `sipbx serve [flags]`: the daemon. Returns the process exit status. */
int cli_serve(int argc, char **argv);
/** `sipbx backup FILE`: an online copy of the database. Returns the exit status. */
int cli_backup(int argc, char **argv);
/** `sipbx restore FILE`: replaces the (stopped) daemon's database. Returns the exit status. */
int cli_restore(int argc, char **argv);
/** `sipbx user add|list|del|passwd ...`. Returns the process exit status. */
int cli_user(int argc, char **argv);
/** `sipbx token create|list|revoke ...`. Returns the process exit status. */
int cli_token(int argc, char **argv);
/** `sipbx block list|del SOURCE`: addresses blocked for failed SIP digest checks. Returns
 *  the process exit status. */
int cli_block(int argc, char **argv);

/* A parsed command line: --name value / --name=value options and positional words. */
#define CLI_MAX_ARGS 32
struct cli_args {
    int npos;
    const char *pos[CLI_MAX_ARGS];
    int nopt;
    const char *opt_name[CLI_MAX_ARGS]; /* without the dashes */
    const char *opt_val[CLI_MAX_ARGS];
};

/** Splits argv into options and positional words. Every option takes a value; names not
 *  in allowed (a NULL-terminated list) are refused. Returns 0, or -1 after printing one line
 *  to stderr. */
int cli_parse(int argc, char **argv, const char *const *allowed, struct cli_args *a);
/** One subcommand of a command group (user, token): it gets the opened store. */
struct cli_command {
    const char *name;
    int (*run)(struct store *st, const struct cli_args *a);
};

/** Parses argv with allowed options, finds the subcommand named by the first word in
 *  commands (n of them), opens the store and runs it. group and names are for the usage
 *  and error lines ("user", "add, list, del, passwd"). Returns the exit status. */
int cli_dispatch(int argc, char **argv, const char *const *allowed,
                 const struct cli_command *commands, size_t n, const char *group,
                 const char *names);

/** The value of option name, or NULL. */
const char *cli_opt(const struct cli_args *a, const char *name);
/** Opens (creating and migrating) the database named by --db or the default; prints the
 *  reason and returns NULL on failure. */
struct store *cli_open_store(const struct cli_args *a);
/** The SIP domain (digest realm): the stored one, or the given one (stored when new), or
 *  the host's primary address (stored). A changed domain is stored with a warning. */
int cli_domain(struct store *st, const char *given, char *out, size_t outlen);

#endif
