/* The SQLite store: opening and migrating the database, one function family per table,
 * and the writer thread that commits rows handed over by the SIP thread in batches. */
#ifndef SIPBX_STORE_H
#define SIPBX_STORE_H

#include <stddef.h>
#include <stdint.h>

struct store;

enum store_open_flags {
    STORE_CREATE = 1,   /* create the file when missing */
    STORE_MIGRATE = 2,  /* apply pending migrations */
    STORE_READONLY = 4, /* open read-only (HTTP readers) */
};

/** Opens the database at path (WAL mode, foreign keys on). With STORE_MIGRATE, applies
 *  pending migrations, each in its own transaction; a failed one is rolled back and leaves
 *  the file as it was. A schema newer than this binary knows is refused. Returns 0, or -1
 *  with one readable line in err. */
int store_open(struct store **out, const char *path, int flags, char *err, size_t errlen);
/** Closes the connection and frees its cached statements. */
void store_close(struct store *st);
/** Schema version recorded in the database (PRAGMA user_version). */
int store_schema_version(struct store *st);
/** Newest schema version this binary knows. */
int store_latest_version(void);
/** The last SQLite error message of this connection. */
const char *store_errmsg(struct store *st);
/** Runs fn inside one transaction (BEGIN IMMEDIATE .. COMMIT, or ROLLBACK when fn fails).
 *  fn returns 0 or an errno value, which store_tx returns. */
int store_tx(struct store *st, int (*fn)(struct store *st, void *ctx), void *ctx);

/* ---- settings: small key/value facts (domain, server secret) ---- */

/** Copies the value of key into out; returns 0, ENOENT or EIO. */
int store_setting_get(struct store *st, const char *key, char *out, size_t outlen);
/** Inserts or replaces key; returns 0 or EIO. */
int store_setting_set(struct store *st, const char *key, const char *value);

/* ---- users ---- */

#define STORE_EXT_MAX  33
#define STORE_NAME_MAX 128
#define STORE_HA1_LEN  33

struct store_user {
    char extension[STORE_EXT_MAX];
    char display_name[STORE_NAME_MAX];
    char ha1[STORE_HA1_LEN];
    char realm[256];
    int enabled;
    int call_waiting;
    int ring_timeout; /* 0 = the global ring timeout */
    int64_t created_at;
    int64_t updated_at;
};

/** Adds a user; returns 0, EEXIST for a duplicate extension, or EIO. */
int store_user_add(struct store *st, const struct store_user *u);
/** Reads one user; returns 0, ENOENT or EIO. */
int store_user_get(struct store *st, const char *ext, struct store_user *out);
/** Writes display name, enabled, call waiting and ring timeout of an existing user;
 *  returns 0, ENOENT or EIO. */
int store_user_update(struct store *st, const struct store_user *u);
/** Replaces a user's digest; returns 0, ENOENT or EIO. */
int store_user_set_ha1(struct store *st, const char *ext, const char *realm, const char *ha1);
/** Deletes a user and (by cascade) its registrations; returns 0, ENOENT or EIO. */
int store_user_delete(struct store *st, const char *ext);
/** Calls cb for users with extension > after (NULL: from the start), in extension order, at
 *  most limit of them (<= 0: all). Returns 0, EIO, or what a non-zero cb returned. */
int store_user_list(struct store *st, const char *after, int limit,
                    int (*cb)(const struct store_user *u, void *ctx), void *ctx);
/** Number of users. */
int store_user_count(struct store *st);
/** A counter that changes whenever the users table changes, by any process. */
int64_t store_users_version(struct store *st);

/* ---- registrations ---- */

struct store_reg {
    char extension[STORE_EXT_MAX];
    char contact[512];
    char source[80];   /* "addr:port" ([v6]:port) the REGISTER came from */
    char transport[8]; /* "udp" or "tcp" */
    char user_agent[256];
    char call_id[256];
    uint32_t cseq;
    char instance[128];
    double q;
    int64_t registered_at;
    int64_t expires_at;
};

/** Inserts or refreshes the binding (extension, contact); returns 0 or EIO. */
int store_reg_save(struct store *st, const struct store_reg *r);
/** Removes one binding, or all of the extension when contact is NULL; returns 0 or EIO. */
int store_reg_remove(struct store *st, const char *ext, const char *contact);
/** Calls cb for bindings that expire after now, of ext (or all when ext is NULL), ordered
 *  by extension then contact. Returns 0, EIO, or what a non-zero cb returned. */
int store_reg_list(struct store *st, const char *ext, int64_t now,
                   int (*cb)(const struct store_reg *r, void *ctx), void *ctx);
/** Deletes bindings that expired at or before now; returns the number removed or -1. */
int store_reg_purge(struct store *st, int64_t now);

/* ---- admins ---- */

/** Number of admin accounts, or -1 on error. */
int store_admin_count(struct store *st);
/** Creates or replaces an admin with an already hashed password; returns 0 or EIO. */
int store_admin_set(struct store *st, const char *username, const char *password_hash);
/** Copies the stored hash of username; returns 0, ENOENT or EIO. */
int store_admin_hash(struct store *st, const char *username, char *out, size_t outlen);

/* ---- the writer thread ---- */

struct store_writer;

/** Starts the writer thread on its own connection to path (already migrated). Returns 0,
 *  or -1 with a reason in err. */
int store_writer_create(struct store_writer **out, const char *path, char *err, size_t errlen);
/** Commits everything still queued, stops the thread and frees it. */
void store_writer_destroy(struct store_writer *w);
/** Queues a binding to save; never blocks on disk. Returns 0 or ENOMEM. */
int store_writer_reg_save(struct store_writer *w, const struct store_reg *r);
/** Queues removal of one binding, or all of ext when contact is NULL. Returns 0 or ENOMEM. */
int store_writer_reg_remove(struct store_writer *w, const char *ext, const char *contact);
/** Registers fn to run on the writer thread every interval_ms with its connection, e.g.
 *  to notice user changes. One tick function; call before traffic starts. */
void store_writer_set_tick(struct store_writer *w, void (*fn)(struct store *st, void *ctx),
                           void *ctx, int interval_ms);
/** Wakes the writer so the tick function runs at once (after a user change). */
void store_writer_poke(struct store_writer *w);
/** Rows queued and not yet committed. */
size_t store_writer_depth(struct store_writer *w);

#endif
