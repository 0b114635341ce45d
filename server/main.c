/* sipbx: a web-administered SIP PBX. The entry point dispatches to a subcommand. */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

static int cmd_help(int argc, char **argv);

static int cmd_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("sipbx %s\n", SIPBX_VERSION);
    return 0;
}

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
} commands[] = {
    {"serve", cli_serve},     {"user", cli_user},     {"token", cli_token},
    {"block", cli_block},     {"backup", cli_backup}, {"restore", cli_restore},
    {"version", cmd_version}, {"help", cmd_help},
};

static int cmd_help(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("usage:\n"
           "  sipbx serve [--config FILE] [--db FILE] [--domain NAME] [--sip ADDR:PORT]\n"
           "              [--http ADDR:PORT] [--ring-timeout SECONDS] [--web-root DIR]\n"
           "              [--min-expires S] [--max-expires S] [--default-expires S]\n"
           "              [--nonce-ttl S] [--log-level error|warn|info|debug]\n"
           "              [--sip-ban-failures N] [--sip-ban-window S] [--sip-ban-time S]\n"
           "              [--sip-ban-max-time S] [--nonce-max-failures N]\n"
           "              [--sip-trusted-networks 'CIDR, ...'|none]\n"
           "              [--sip-tls ADDR:PORT|off] [--https ADDR:PORT|off]\n"
           "              [--tls-cert FILE] [--tls-key FILE] [--https-cert FILE]\n"
           "              [--https-key FILE] [--hsts-max-age S]\n"
           "  sipbx user add EXT --password PW [--display NAME] [--db FILE]\n"
           "  sipbx user list [--db FILE]\n"
           "  sipbx user del EXT [--db FILE]\n"
           "  sipbx user passwd EXT --password PW [--db FILE]\n"
           "  sipbx user import FILE.csv|FILE.json [--db FILE]\n"
           "  sipbx token create NAME [--db FILE]   prints a new API token once\n"
           "  sipbx token list [--db FILE]\n"
           "  sipbx token revoke ID [--db FILE]\n"
           "  sipbx block list [--db FILE]       addresses blocked for failed SIP digests\n"
           "  sipbx block del SOURCE [--db FILE] lift a block (the running daemon too)\n"
           "  sipbx backup FILE [--db FILE]     (a consistent copy while sipbx runs)\n"
           "  sipbx restore FILE [--db FILE]    (sipbx must be stopped)\n"
           "  sipbx version\n"
           "'--password -' reads the password from standard input.\n");
    return 0;
}

const char *cli_program = "sipbx";

int main(int argc, char **argv)
{
    if (argc > 0 && argv[0] && strchr(argv[0], '/'))
        cli_program = argv[0];
    if (argc < 2) {
        cmd_help(0, NULL);
        return 2;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 2, argv + 2);
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
        return cmd_help(0, NULL);
    if (strcmp(argv[1], "--version") == 0)
        return cmd_version(0, NULL);
    fprintf(stderr, "sipbx: unknown command '%s' (see 'sipbx help')\n", argv[1]);
    return 2;
}
