/* `sipbx block list|del SOURCE`: the addresses the daemon blocked for failed SIP digest
 * checks, read from the database, and lifting one. A lift is a mark in the database that
 * the running daemon takes up within a fraction of a second (its writer thread polls the
 * marks' change counter); the command waits for that and says whether it happened. */
#include "cli/cli.h"
#include "store/store.h"
#include "util/util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define LIFT_WAIT_MS 2000 /* how long `del` waits for a running daemon to take the lift up */

static void format_time(char *out, size_t outlen, int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int print_block(const struct store_block *b, void *ctx)
{
    (void)ctx;
    char since[32], until[32];
    format_time(since, sizeof since, b->since);
    format_time(until, sizeof until, b->until);
    printf("%-39s %-20s %-20s %8lld %5d  %s (extensions %s)\n", b->source, since, until,
           (long long)b->failures, b->offences, b->reason, b->extensions[0] ? b->extensions : "-");
    return 0;
}

static int block_list(struct store *st, const struct cli_args *a)
{
    if (a->npos > 1) {
        fprintf(stderr, "sipbx: usage: sipbx block list [--db FILE]\n");
        return 2;
    }
    printf("%-39s %-20s %-20s %8s %5s  %s\n", "SOURCE", "SINCE", "UNTIL", "FAILURES", "BLOCK",
           "REASON");
    if (store_block_list(st, STORE_BLOCKS_ACTIVE, util_now(), print_block, NULL) != 0) {
        fprintf(stderr, "sipbx: cannot list blocks: %s\n", store_errmsg(st));
        return 1;
    }
    return 0;
}

static int block_del(struct store *st, const struct cli_args *a)
{
    const char *arg = a->npos == 2 ? a->pos[1] : NULL;
    struct util_addr addr;
    if (!arg || util_addr_parse(arg, &addr) != 0) {
        if (arg)
            fprintf(stderr, "sipbx: '%s' is not an IPv4 or IPv6 address\n", arg);
        else
            fprintf(stderr, "sipbx: usage: sipbx block del SOURCE [--db FILE] (sources: sipbx "
                            "block list)\n");
        return 2;
    }
    char source[UTIL_ADDR_STRLEN];
    util_addr_format(&addr, source, sizeof source);
    int rc = store_block_lift(st, source, util_now());
    if (rc == ENOENT) {
        fprintf(stderr, "sipbx: %s is not blocked\n", source);
        return 1;
    }
    if (rc != 0) {
        fprintf(stderr, "sipbx: cannot lift the block of %s: %s\n", source, store_errmsg(st));
        return 1;
    }
    /* The daemon deletes the marked row once it has lifted the block. */
    struct timespec pause = {0, 20 * 1000000L};
    for (int waited = 0; waited < LIFT_WAIT_MS; waited += 20) {
        int n = store_block_pending(st, source);
        if (n == 0) {
            printf("block of %s lifted\n", source);
            return 0;
        }
        if (n < 0)
            break;
        nanosleep(&pause, NULL);
    }
    printf("block of %s lifted in the database; no running sipbx took it up within %d s "
           "(one started later will not block it)\n",
           source, LIFT_WAIT_MS / 1000);
    return 0;
}

static const struct cli_command commands[] = {
    {"list", block_list},
    {"del", block_del},
};

int cli_block(int argc, char **argv)
{
    static const char *const allowed[] = {"db", NULL};
    return cli_dispatch(argc, argv, allowed, commands, sizeof commands / sizeof commands[0],
                        "block", "list, del");
}
