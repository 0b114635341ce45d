/* Private to the sip module: blocking addresses that guess digest passwords, the way
 * fail2ban guards an Asterisk box. Failed digest checks are counted per source address and
 * per extension; N failures from one address within a window block that address for a
 * while (doubling for a repeat offender, capped), trusted networks excepted. Extensions are
 * only watched, never locked, so an attacker cannot lock a user out. No Sofia objects and
 * no clock of its own (every call takes now), so the unit tests drive it directly. */
#ifndef SIPBX_SIP_BAN_H
#define SIPBX_SIP_BAN_H

#include "util/util.h"

#include <stddef.h>
#include <stdint.h>

struct ban;

#define BAN_USER_MAX   33    /* an extension (longer user names are cut) */
#define BAN_REASON_MAX 96    /* why a source is blocked, in words */
#define BAN_USERS_MAX  8     /* extensions remembered per source */
#define BAN_SOURCES    65536 /* addresses tracked at once (blocked ones are never dropped) */
#define BAN_TARGETS    4096  /* extensions tracked at once */

struct ban_config {
    int failures;   /* failed digests from one address that start a block; 0: never block */
    int window;     /* ... counted over this many seconds */
    int block_time; /* seconds of a first block */
    int max_time;   /* cap of a doubled block; also how long a past block is remembered */
    const struct util_net *trusted; /* never blocked */
    size_t ntrusted;
};

/** One block as the API, the store and the log show it. */
struct ban_info {
    char source[UTIL_ADDR_STRLEN]; /* the address, canonical text form */
    char reason[BAN_REASON_MAX];
    uint64_t failures; /* failed digests from the source that led to the block */
    uint64_t dropped;  /* requests dropped since the block started */
    int offences;      /* 1 for a first block, 2 for the second within max_time, ... */
    int64_t since, until;
    char users[BAN_USERS_MAX * BAN_USER_MAX]; /* extensions it tried, comma-separated */
};

/** One extension that failed digests were sent for, within the current window. */
struct ban_target {
    char user[BAN_USER_MAX];
    uint64_t failures;                  /* in the current window */
    int sources;                        /* distinct addresses (counted up to 16) */
    char last_source[UTIL_ADDR_STRLEN]; /* where the latest one came from */
    int64_t last_failure;
};

struct ban_stats {
    size_t blocked;         /* addresses blocked now */
    uint64_t blocks_total;  /* blocks started (restored ones not counted) */
    uint64_t dropped_total; /* requests dropped from blocked addresses */
    size_t targets;         /* extensions with at least `failures` failures in the window */
};

/** Called when a block starts (active 1) or ends (active 0), e.g. to persist it. */
typedef void ban_change_f(void *ctx, const struct ban_info *info, int active);

/** Creates the table with cfg (copied, trusted networks too); on_change may be NULL.
 *  Returns 0 or ENOMEM. */
int ban_create(struct ban **out, const struct ban_config *cfg, ban_change_f *on_change, void *ctx);
/** Frees everything (no callbacks). */
void ban_destroy(struct ban *b);

/** True when source (canonical text form) is blocked at now; the request it sent is then
 *  counted as dropped. The hot path: one lookup. */
int ban_blocked(struct ban *b, const char *source, int64_t now);
/** True when a is in a trusted network. */
int ban_trusted(const struct ban *b, const struct util_addr *a);

enum ban_verdict {
    BAN_COUNTED, /* counted, no block (yet) */
    BAN_STARTED, /* this failure started a block of source */
    BAN_TRUSTED, /* counted for the log and the extension, never blocked */
};
/** Records a failed digest check from source for user (known or not: both count alike). */
enum ban_verdict ban_failure(struct ban *b, const char *source, const char *user, int64_t now);

/** Lifts the block of source (since 0: whichever block it is, else only the block that
 *  started at since: a CLI lift of an older block does not lift a newer one). by says who,
 *  for the log ("an admin (REST)", "the CLI"). Returns 0 or ENOENT. */
int ban_lift(struct ban *b, const char *source, int64_t since, const char *by, int64_t now);
/** Takes back a block stored by an earlier run (start-up). Returns 0; ENOENT for one that
 *  is over or of a trusted address (skipped); EINVAL when the address does not parse;
 *  ENOMEM. */
int ban_restore(struct ban *b, const struct ban_info *info, int64_t now);
/** Once a second: ends blocks whose time is up, logs the digest of failures per source (at
 *  most a line a minute each), warns about an extension attacked from several sources and
 *  forgets what is no longer needed. */
void ban_tick(struct ban *b, int64_t now);

/** Copies up to max current blocks, newest first; returns how many. */
size_t ban_list(struct ban *b, int64_t now, struct ban_info *out, size_t max);
/** Copies up to max extensions with failures in the current window, most failures first;
 *  returns how many. */
size_t ban_targets(struct ban *b, int64_t now, struct ban_target *out, size_t max);
/** The counters and gauges for the metrics. */
void ban_stats(const struct ban *b, struct ban_stats *out);

#endif
