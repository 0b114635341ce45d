/* The SQLite store: opening and migrating the database, one function family per table,
 * and the writer thread that commits rows handed over by the SIP thread in batches. */
#ifndef SIPBX_STORE_H
#define SIPBX_STORE_H

#include <stddef.h>
#include <stdint.h>

struct store;

enum store_open_flags {
    STORE_CREATE = 1,      /* create the file when missing */
    STORE_MIGRATE = 2,     /* apply pending migrations */
    STORE_READONLY = 4,    /* open read-only (HTTP readers) */
    STORE_ANY_VERSION = 8, /* do not insist on the latest schema (backup, restore checks) */
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
/** The last SQLite error message of this connection (after a failed store_tx: why it
 *  failed, until the next statement). */
const char *store_errmsg(struct store *st);
/** Runs fn inside one transaction (BEGIN IMMEDIATE .. COMMIT, or ROLLBACK when fn fails).
 *  fn returns 0 or an errno value, which store_tx returns; it logs nothing (the caller
 *  says what failed, with store_errmsg). */
int store_tx(struct store *st, int (*fn)(struct store *st, void *ctx), void *ctx);

/** Writes a consistent copy of the live database to dest (SQLite online backup; the
 *  daemon keeps working meanwhile), with the audio files of its voicemail messages, read
 *  from vm_dir, in a table of the copy (backup_files); a message whose file is gone by then
 *  is left out. Returns 0, or -1 with a reason in err; a failed backup leaves no file at
 *  dest. */
int store_backup(struct store *st, const char *dest, const char *vm_dir, char *err, size_t errlen);
/** Replaces the database at dest with the sipbx database src (checked first), and writes the
 *  voicemail files it carries into vm_dir (created). The daemon must not be running on dest
 *  (see store_lock). Returns 0 or -1 with a reason in err. */
int store_restore(const char *src, const char *dest, const char *vm_dir, char *err, size_t errlen);
/** Takes the exclusive lock that says "a daemon (or a restore) uses db_path". Returns 0
 *  with the lock's descriptor in *fd (held until closed or exit), or -1 with a reason. */
int store_lock(const char *db_path, int *fd, char *err, size_t errlen);

/* ---- settings: small key/value facts (domain, server secret) ---- */

/** Copies the value of key into out; returns 0, ENOENT or EIO. */
int store_setting_get(struct store *st, const char *key, char *out, size_t outlen);
/** Inserts or replaces key; returns 0 or EIO. */
int store_setting_set(struct store *st, const char *key, const char *value);

/* ---- users ---- */

#define STORE_EXT_MAX  33
#define STORE_NAME_MAX 128 /* names elsewhere: admins, callers' names in call records */
#define STORE_HA1_LEN  33
/* A user's display name is at most STORE_DISPLAY_NAME_CHARS characters (code points) of
 * UTF-8, which take up to 4 bytes each: STORE_DISPLAY_NAME_MAX holds any of them. */
#define STORE_DISPLAY_NAME_CHARS 127
#define STORE_DISPLAY_NAME_MAX   512

struct store_user {
    char extension[STORE_EXT_MAX];
    char display_name[STORE_DISPLAY_NAME_MAX];
    char ha1[STORE_HA1_LEN];
    char realm[256];
    int enabled;
    int call_waiting;
    int ring_timeout; /* 0 = the global ring timeout */
    int64_t created_at;
    int64_t updated_at;
    int dnd; /* do-not-disturb: calls are refused as busy (or go to the busy forward) */
};

/** Adds a user; returns 0, EEXIST for an extension taken (by a user or a ring group), or
 *  EIO. */
int store_user_add(struct store *st, const struct store_user *u);
/** Reads one user; returns 0, ENOENT or EIO. */
int store_user_get(struct store *st, const char *ext, struct store_user *out);
/** Writes display name, enabled, call waiting, ring timeout and do-not-disturb of an
 *  existing user; returns 0, ENOENT or EIO. */
int store_user_update(struct store *st, const struct store_user *u);
/** Replaces a user's digest; returns 0, ENOENT or EIO. */
int store_user_set_ha1(struct store *st, const char *ext, const char *realm, const char *ha1);
/** Deletes a user and (by cascade) its registrations; returns 0, ENOENT or EIO. */
int store_user_delete(struct store *st, const char *ext);
/** Calls cb for users with extension > after (NULL: from the start), in extension order, at
 *  most limit of them (<= 0: all). Returns 0, EIO, or what a non-zero cb returned. */
int store_user_list(struct store *st, const char *after, int limit,
                    int (*cb)(const struct store_user *u, void *ctx), void *ctx);

/* The orders a user list can have (store_user_query). Extensions compare naturally:
 * all-digit ones by their number ("99" before "100"), then the others by their text. */
enum store_user_sort {
    STORE_USER_SORT_EXTENSION,
    STORE_USER_SORT_NAME,    /* display name, any case (ASCII); ties by extension */
    STORE_USER_SORT_STATUS,  /* online, offline, disabled; ties by extension */
    STORE_USER_SORT_CREATED, /* created_at; ties by extension */
};

/* The states of an account as the list filters them. */
enum store_user_status {
    STORE_USER_ANY,
    STORE_USER_ONLINE,  /* enabled, with a binding that has not expired */
    STORE_USER_OFFLINE, /* enabled, without one */
    STORE_USER_DISABLED,
    STORE_USER_DND, /* enabled, with do-not-disturb on */
};

/* A filtered, sorted page of users. Zero/NULL fields do not filter. */
struct store_user_query {
    const char *q; /* part of the extension or display name, any case (ASCII) */
    int enabled;   /* -1: any, 0 or 1 */
    enum store_user_status status;
    enum store_user_sort sort;
    int desc;           /* descending */
    int64_t now;        /* for "online": bindings that expire after now */
    const char *after;  /* keyset cursor: the sort key of the last user of the page before */
    const char *after2; /* and its extension key; NULL from the start */
};

/** Calls cb for the users of q in q's order, at most limit (<= 0: all). cb also gets the
 *  user's sort keys (key, key2: what q->after and q->after2 take to continue after it;
 *  valid during cb) and whether it is online. Returns 0, EIO, or what a non-zero cb
 *  returned. */
int store_user_query(struct store *st, const struct store_user_query *q, int limit,
                     int (*cb)(const struct store_user *u, const char *key, const char *key2,
                               int online, void *ctx),
                     void *ctx);
/** The number of users that match q (its cursor is ignored), or -1 on error. */
int64_t store_user_query_count(struct store *st, const struct store_user_query *q);
/** Number of users. */
int store_user_count(struct store *st);
/** The sequence number of the latest change of a user or its forward rules, by any
 *  process (the user_changes log, db/006); 0 when there was none. It only grows. */
int64_t store_users_version(struct store *st);
/* What the changes of one extension were (store_user_changes' flags). */
enum {
    STORE_CHANGE_CREATED = 1, /* one of them created the user */
    STORE_CHANGE_GROUP = 2,   /* one of them was of a ring group of that extension */
};
/** Calls cb once for each extension changed (a user added, changed, deleted, its forward
 *  rules changed; a ring group or its members changed) with a sequence number in (after,
 *  upto], in no particular order, with STORE_CHANGE_* flags. Returns 0, EIO, or what a
 *  non-zero cb returned. */
int store_user_changes(struct store *st, int64_t after, int64_t upto,
                       int (*cb)(const char *ext, int flags, void *ctx), void *ctx);
/** Deletes the change log up to and including upto (applied by the daemon); 0 or EIO. */
int store_user_changes_prune(struct store *st, int64_t upto);

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

/* ---- presence (presence.c): event subscriptions and published presence (db/009) ---- */

#define STORE_SUB_HDR_MAX 512

/** One subscription dialog of the event server (sip/subs.c), as stored. */
struct store_sub {
    char call_id[256];
    char local_tag[48];
    char package[24];
    char event_id[64];
    char watcher[STORE_EXT_MAX];
    char presentity[STORE_EXT_MAX];
    char remote[STORE_SUB_HDR_MAX]; /* the watcher's From, with its tag */
    char local[STORE_SUB_HDR_MAX];  /* sipbx's To, with its tag */
    char target[STORE_SUB_HDR_MAX]; /* the watcher's Contact URI */
    char next_hop[160];
    char route[1024];
    char contact[300];
    uint32_t local_cseq, remote_cseq;
    char state_hash[33];
    uint32_t version;
    int64_t created_at, expires_at;
};

/** Inserts or replaces the subscription (call_id, local_tag); returns 0 or EIO. */
int store_sub_save(struct store *st, const struct store_sub *sub);
/** Deletes the subscription (call_id, local_tag); returns 0 or EIO. */
int store_sub_remove(struct store *st, const char *call_id, const char *local_tag);
/** Calls cb for every stored subscription (expired ones too: the caller decides), oldest
 *  first. Returns 0, EIO, or what a non-zero cb returned. */
int store_sub_list(struct store *st, int (*cb)(const struct store_sub *sub, void *ctx), void *ctx);

#define STORE_PIDF_MAX 8192 /* the largest PIDF document accepted and kept, in bytes */

/** One publication of presence (RFC 3903), as stored. */
struct store_pub {
    char etag[40];
    char extension[STORE_EXT_MAX];
    char body[STORE_PIDF_MAX + 1];
    int64_t published_at, expires_at;
};

/** Inserts or replaces the publication etag; returns 0 or EIO. */
int store_pub_save(struct store *st, const struct store_pub *p);
/** Deletes publication etag; returns 0 or EIO. */
int store_pub_remove(struct store *st, const char *etag);
/** Calls cb for every stored publication, oldest first. Returns 0, EIO, or what a non-zero
 *  cb returned. */
int store_pub_list(struct store *st, int (*cb)(const struct store_pub *p, void *ctx), void *ctx);

/* ---- call-forward rules ---- */

enum store_fwd_kind {
    STORE_FWD_UNCONDITIONAL,
    STORE_FWD_BUSY,
    STORE_FWD_NO_ANSWER,
    STORE_FWD_UNAVAILABLE,
    STORE_FWD_KINDS
};
/** The kinds by enum store_fwd_kind, as the API and the database name them. */
extern const char *const store_forward_kinds[STORE_FWD_KINDS];

struct store_forward_rule {
    int enabled;
    char target[256]; /* an extension, or a full SIP URI */
    int timeout;      /* no_answer only: seconds before forwarding; 0 = unset */
    int voicemail;    /* 1: to the user's own voicemail (db/011); target is then unused */
};

struct store_forward {
    struct store_forward_rule rule[STORE_FWD_KINDS]; /* by enum store_fwd_kind */
};

/** Reads ext's rules (rules never set read as disabled); returns 0 or EIO. */
int store_forward_get(struct store *st, const char *ext, struct store_forward *out);
/** Replaces all four rules of ext in one transaction; returns 0, ENOENT (no such user) or
 *  EIO. Validation is the caller's (the REST layer). */
int store_forward_set(struct store *st, const char *ext, const struct store_forward *f);

/* ---- ring groups (groups.c) ---- */

#define STORE_GROUP_MEMBERS_MAX 32

enum store_group_strategy {
    STORE_GROUP_RINGALL,    /* every member at once */
    STORE_GROUP_SEQUENTIAL, /* one after another, member_timeout seconds each */
};
/** The strategies by enum store_group_strategy, as the API and the database name them. */
extern const char *const store_group_strategies[2];

struct store_group {
    char extension[STORE_EXT_MAX];
    char name[STORE_DISPLAY_NAME_MAX];
    enum store_group_strategy strategy;
    int member_timeout;         /* seconds a member rings (sequential), or the group (ringall)
                                   before no_answer_target */
    char no_answer_target[256]; /* an extension or a SIP URI; "" for none */
    int nmembers;
    char members[STORE_GROUP_MEMBERS_MAX][STORE_EXT_MAX]; /* user extensions, in order */
    int64_t created_at, updated_at;
};

/** Creates a group with its members in one transaction. Returns 0, EEXIST when the
 *  extension is taken (by a user or a group), ENOENT when a member is not a user, or EIO. */
int store_group_add(struct store *st, const struct store_group *g);
/** Reads one group with its members; returns 0, ENOENT or EIO. */
int store_group_get(struct store *st, const char *ext, struct store_group *out);
/** Replaces name, strategy, timeout, target and members of an existing group in one
 *  transaction; returns 0, ENOENT (no such group, or a member is not a user) or EIO. */
int store_group_update(struct store *st, const struct store_group *g);
/** Deletes a group; returns 0, ENOENT or EIO. */
int store_group_delete(struct store *st, const char *ext);
/** Calls cb for every group with its members, in the natural order of extensions. Returns
 *  0, EIO, or what a non-zero cb returned. */
int store_group_list(struct store *st, int (*cb)(const struct store_group *g, void *ctx),
                     void *ctx);
/** Number of groups, or -1 on error. */
int store_group_count(struct store *st);

/* ---- voicemail (voicemail.c, db/011) ---- */

#define STORE_VM_FILE_MAX 64 /* a message's file name in the voicemail directory */

struct store_vm_msg {
    int64_t id;
    char extension[STORE_EXT_MAX]; /* whose mailbox */
    char caller[STORE_EXT_MAX];    /* the caller's extension */
    char caller_name[STORE_NAME_MAX];
    char call_id[256];
    int64_t received_us; /* UTC microseconds */
    int64_t duration_ms;
    int heard;
    char file[STORE_VM_FILE_MAX];
    int64_t bytes;
};

/** Adds a message (m->id is set); returns 0, ENOENT (no such user), EEXIST (file named
 *  already) or EIO. */
int store_vm_add(struct store *st, struct store_vm_msg *m);
/** Reads message id; returns 0, ENOENT or EIO. */
int store_vm_get(struct store *st, int64_t id, struct store_vm_msg *out);
/** Calls cb for ext's messages: new ones first, each group oldest first. Returns 0, EIO,
 *  or what a non-zero cb returned. */
int store_vm_list(struct store *st, const char *ext,
                  int (*cb)(const struct store_vm_msg *m, void *ctx), void *ctx);
/** Marks message id heard (or new again); returns 0, ENOENT or EIO. */
int store_vm_set_heard(struct store *st, int64_t id, int heard);
/** Deletes the row of message id (its file is the caller's to remove); 0, ENOENT or EIO. */
int store_vm_delete(struct store *st, int64_t id);
/** Counts ext's new and heard messages; returns 0 or EIO. */
int store_vm_counts(struct store *st, const char *ext, int *new_count, int *old_count);
/** Calls cb for every mailbox with messages, with its counts. Returns 0, EIO, or what a
 *  non-zero cb returned. */
int store_vm_count_all(struct store *st,
                       int (*cb)(const char *ext, int new_count, int old_count, void *ctx),
                       void *ctx);
/** Calls cb for the messages received before before_us, oldest first, at most limit
 *  (<= 0: all). Returns 0, EIO, or what a non-zero cb returned. */
int store_vm_expired(struct store *st, int64_t before_us, int limit,
                     int (*cb)(const struct store_vm_msg *m, void *ctx), void *ctx);
/** Calls cb for the heard messages that lie past the quota newest messages of their
 *  mailbox (the oldest first). Returns 0, EIO, or what a non-zero cb returned. */
int store_vm_over_quota(struct store *st, int quota,
                        int (*cb)(const struct store_vm_msg *m, void *ctx), void *ctx);
/** Calls cb with the file name of every message. Returns 0, EIO, or what cb returned. */
int store_vm_files(struct store *st, int (*cb)(const char *file, void *ctx), void *ctx);
/** Copies ext's own greeting (8 kHz 16-bit mono PCM) into a new buffer (*pcm, free() it)
 *  of *len bytes; updated_at (may be NULL) gets its time. Returns 0, ENOENT (none: the
 *  default one is used), ENOMEM or EIO. */
int store_vm_greeting_get(struct store *st, const char *ext, void **pcm, size_t *len,
                          int64_t *updated_at);
/** Stores ext's own greeting; returns 0, ENOENT (no such user) or EIO. */
int store_vm_greeting_set(struct store *st, const char *ext, const void *pcm, size_t len,
                          int64_t now);
/** Drops ext's own greeting; returns 0, ENOENT (it had none) or EIO. */
int store_vm_greeting_delete(struct store *st, const char *ext);

/* ---- call detail records ---- */

struct store_cdr {
    int64_t id;
    char call_id[256];
    char caller[STORE_EXT_MAX];
    char caller_name[STORE_DISPLAY_NAME_MAX];
    char dialled[STORE_EXT_MAX];
    char answered_by[256];
    char forwards[1024];                 /* JSON array */
    int64_t start_us, answer_us, end_us; /* 0 = unknown */
    int64_t duration, billsec;           /* seconds */
    char disposition[16];                /* ANSWERED, BUSY, NO ANSWER, CANCELLED, FAILED */
    int status;
    char phrase[64];
    char hangup_by[8];
    char user_agent[256];
    int open;              /* answered and not ended yet: the kill -9 journal */
    int interrupted;       /* closed at start-up after the process died mid-call */
    char linked_call[256]; /* the Call-ID of the call this one came from, "" for none */
    char link[20];         /* how: transfer, attended-transfer, pickup; "" for none */
};

/** Inserts or updates the record keyed by (call_id, start_us); returns 0 or EIO. */
int store_cdr_save(struct store *st, const struct store_cdr *c);
/** Reads the record of the call call_id that started at start_us (the key of
 *  store_cdr_save); returns 0, ENOENT or EIO. */
int store_cdr_get(struct store *st, const char *call_id, int64_t start_us, struct store_cdr *out);
/** Closes records left open by a process that died: ended at the last heartbeat (or at
 *  now_us when none), marked interrupted. Returns how many, or -1. */
int store_cdr_close_interrupted(struct store *st, int64_t now_us);
/** Records that the writer was alive at now_us (bounds the end of interrupted calls). */
int store_heartbeat(struct store *st, int64_t now_us);

/* The orders of a CDR list (store_cdr_filter.sort); each continues by start time and id
 * in the same direction, so records with the same key are newest (or oldest) first. */
enum store_cdr_sort {
    STORE_CDR_SORT_START, /* the default, newest first */
    STORE_CDR_SORT_DURATION,
    STORE_CDR_SORT_TALK, /* billsec */
    STORE_CDR_SORT_CALLER,
    STORE_CDR_SORT_DIALLED,
    STORE_CDR_SORT_DISPOSITION,
    STORE_CDR_SORTS
};

/** CDR filters; zero/empty fields do not filter. */
struct store_cdr_filter {
    int64_t since_us, until_us; /* start_us >= since, < until */
    char ext[STORE_EXT_MAX];    /* caller or dialled or answered_by */
    char disposition[16];
    /* A search: records whose Call-ID starts with q, whose caller's name holds q (any case,
     * ASCII), that a user whose display name holds q made, was dialled by or answered,
     * or whose caller, dialled or answering extension is q. */
    char q[STORE_NAME_MAX];
    char linked_call[256]; /* records that came from the call with this Call-ID */
    enum store_cdr_sort sort;
    int asc; /* ascending (the default is descending: newest, longest, Z first) */
    /* Keyset cursor: records after this one in the order (before it when descending), 0
     * for none. For sorts other than start, the last record's key too: key_num for
     * duration and talk, key_text for the others. */
    int64_t before_start_us, before_id;
    int64_t key_num;
    char key_text[STORE_EXT_MAX];
};
/** Calls cb for the closed records that match f (open ones are calls still up), in f's
 *  order (newest first by default: start_us, then id, descending), at most limit (<= 0:
 *  all). Only the filters in use reach the SQL, so each query can use the index that fits
 *  it. Returns 0, EINVAL (no such sort), EIO, or what a non-zero cb returned. */
int store_cdr_list(struct store *st, const struct store_cdr_filter *f, int limit,
                   int (*cb)(const struct store_cdr *c, void *ctx), void *ctx);
/** The number of closed records that match f (its cursor and order do not matter), or -1
 *  on error. */
int64_t store_cdr_count(struct store *st, const struct store_cdr_filter *f);
/** Counts the closed records of f (since, until and ext; the other fields are ignored) per
 *  time bucket of bucket_us microseconds (buckets start at multiples of bucket_us since the
 *  epoch) and disposition, in one GROUP BY query. cb gets each non-empty (bucket start,
 *  disposition) pair in bucket order. Returns 0, EINVAL (bucket_us <= 0), EIO, or what a
 *  non-zero cb returned. */
int store_cdr_summary(struct store *st, const struct store_cdr_filter *f, int64_t bucket_us,
                      int (*cb)(int64_t bucket_start_us, const char *disposition, int64_t count,
                                void *ctx),
                      void *ctx);

/* Calls of one side of an extension (store_cdr_stats). */
struct store_cdr_side {
    int64_t calls, answered, talk; /* talk: seconds, of the answered ones */
};

/* One extension's calls in a time range. */
struct store_cdr_ext_stats {
    char extension[256]; /* an extension, or the SIP URI a call was answered at */
    char display_name[STORE_DISPLAY_NAME_MAX]; /* its account's, "" when none */
    struct store_cdr_side placed;              /* it was the caller */
    /* it was dialled (answered: by itself), or answered a call dialled to another (after a
     * forward) */
    struct store_cdr_side received;
};

/** Calls cb for every extension with a closed record in f's time range (since, until;
 *  only f->ext when given; the other fields are ignored), in extension order, with its
 *  placed and received calls. Returns 0, EIO, or what a non-zero cb returned. */
int store_cdr_stats(struct store *st, const struct store_cdr_filter *f,
                    int (*cb)(const struct store_cdr_ext_stats *e, void *ctx), void *ctx);
/** Calls cb for each disposition with closed records in f's range (since, until, ext),
 *  with their number and talk seconds. Returns 0, EIO, or what a non-zero cb returned. */
int store_cdr_totals(struct store *st, const struct store_cdr_filter *f,
                     int (*cb)(const char *disposition, int64_t count, int64_t talk, void *ctx),
                     void *ctx);

/* ---- SIP message traces ---- */

struct store_trace {
    int64_t id;
    char call_id[256];
    int64_t time_us;
    char direction[4]; /* in, out */
    char transport[8];
    char local[80], remote[80];
    char first_line[256];
    int retransmission;
    char *raw; /* the message as on the wire (owned by whoever filled the struct) */
    size_t raw_len;
};

/** Appends one message; returns 0 or EIO. */
int store_trace_add(struct store *st, const struct store_trace *t);
/** Calls cb for every message of call_id in capture order; returns 0, ENOENT when there is
 *  none, EIO, or what a non-zero cb returned. raw points into SQLite's memory during cb. */
int store_trace_list(struct store *st, const char *call_id,
                     int (*cb)(const struct store_trace *t, void *ctx), void *ctx);
/** Deletes messages older than oldest_us, then the oldest until at most max_bytes of text
 *  remain. Returns the number deleted, or -1. */
int64_t store_trace_prune(struct store *st, int64_t oldest_us, int64_t max_bytes);

/* ---- SIP blocks (blocks.c): addresses blocked for failed digest checks ---- */

struct store_block {
    char source[46]; /* IPv4 or IPv6 address, canonical text form */
    char reason[96];
    int64_t failures;
    int offences;
    char extensions[264];
    int64_t since, until;
    int lifted; /* marked lifted by the CLI, not yet taken up by the daemon */
};

enum { STORE_BLOCKS_ACTIVE = 0, STORE_BLOCKS_LIFTED = 1, STORE_BLOCKS_ALL = 2 };

/** Inserts or replaces the block of b->source (lifted cleared); returns 0 or EIO. */
int store_block_save(struct store *st, const struct store_block *b);
/** Deletes the block of source that started at since (a newer one of the same address
 *  stays); returns 0 or EIO. */
int store_block_remove(struct store *st, const char *source, int64_t since);
/** Calls cb for the blocks in force at now (STORE_BLOCKS_ACTIVE), those marked lifted
 *  (STORE_BLOCKS_LIFTED) or all rows (STORE_BLOCKS_ALL), newest first. Returns 0, EIO, or
 *  what a non-zero cb returned. */
int store_block_list(struct store *st, int which, int64_t now,
                     int (*cb)(const struct store_block *b, void *ctx), void *ctx);
/** Marks the block of source in force at now lifted (the CLI); the running daemon lifts it
 *  and deletes the row. Returns 0, ENOENT (no such block) or EIO. */
int store_block_lift(struct store *st, const char *source, int64_t now);
/** Rows of source marked lifted and not yet taken up by a daemon, or -1 on error. */
int store_block_pending(struct store *st, const char *source);
/** A counter that changes whenever a block is marked lifted, by any process. */
int64_t store_blocks_version(struct store *st);

/* ---- webhooks and their deliveries (webhooks.c) ---- */

#define STORE_WEBHOOK_URL_MAX    2048 /* bytes of a URL */
#define STORE_WEBHOOK_EVENTS_MAX 160  /* the comma-separated event names, NUL included */
#define STORE_WEBHOOK_SECRET_MAX 80
#define STORE_WEBHOOK_DESC_MAX   256 /* bytes of a description, NUL included */
#define STORE_EVENT_ID_LEN       37  /* a UUID in text and a NUL */
#define STORE_EVENT_NAME_MAX     32

struct store_webhook {
    int64_t id;
    char url[STORE_WEBHOOK_URL_MAX + 1];
    char events[STORE_WEBHOOK_EVENTS_MAX]; /* "call.ended,user.changed" */
    char secret[STORE_WEBHOOK_SECRET_MAX];
    char description[STORE_WEBHOOK_DESC_MAX];
    int64_t created_at;
};

/** Adds a webhook (id is assigned, into w->id); returns 0 or EIO. */
int store_webhook_add(struct store *st, struct store_webhook *w);
/** Reads one; returns 0, ENOENT or EIO. */
int store_webhook_get(struct store *st, int64_t id, struct store_webhook *out);
/** Calls cb for every webhook, in id order. Returns 0, EIO, or what a non-zero cb
 *  returned. */
int store_webhook_list(struct store *st, int (*cb)(const struct store_webhook *w, void *ctx),
                       void *ctx);
/** Deletes a webhook and its deliveries; returns 0, ENOENT or EIO. */
int store_webhook_delete(struct store *st, int64_t id);
/** Number of webhooks, or -1. */
int store_webhook_count(struct store *st);

enum store_delivery_state {
    STORE_DELIVERY_PENDING,
    STORE_DELIVERY_DELIVERED,
    STORE_DELIVERY_FAILED,
    STORE_DELIVERY_STATES
};
/** The states by enum store_delivery_state, as the database and the API name them. */
extern const char *const store_delivery_states[STORE_DELIVERY_STATES];

struct store_delivery {
    int64_t id, webhook_id;
    char event_id[STORE_EVENT_ID_LEN];
    char event[STORE_EVENT_NAME_MAX];
    char *body; /* the JSON to POST: malloc'd by store_delivery_next (the caller frees);
                 * NULL from store_delivery_list */
    int64_t created_us;
    enum store_delivery_state state;
    int attempts;
    int64_t next_try_us; /* pending: not before; 0 once finished */
    int64_t last_try_us; /* 0: never tried */
    int last_status;     /* HTTP status of the last try; 0: none */
    char last_error[256];
    int64_t done_us; /* delivered or given up; 0 while pending */
};

/** Queues one delivery of the event (name, id, the body to POST, when it happened) for
 *  every webhook whose events include name, due at once. Returns the number queued, or -1
 *  (logged). */
int store_delivery_fanout(struct store *st, const char *event, const char *event_id,
                          const char *body, int64_t created_us);
/** Queues one delivery for webhook_id alone, due at once (a test event); returns 0 with
 *  its id in *id, ENOENT (no such webhook) or EIO. */
int store_delivery_add(struct store *st, int64_t webhook_id, const char *event,
                       const char *event_id, const char *body, int64_t created_us, int64_t *id);
/** The pending delivery of webhook_id that is due first (by next try, then id): fills out
 *  (with a malloc'd body) and returns 0; ENOENT when it has none; EIO. *
 *  When due_us is not NULL it receives that delivery's next try even when it is later
 *  than now_us (then ENOENT is returned and out is not filled). */
int store_delivery_next(struct store *st, int64_t webhook_id, int64_t now_us,
                        struct store_delivery *out, int64_t *due_us);
/** Records a try of delivery id at now_us that ended in state (pending: to be tried again
 *  at next_try_us), with the HTTP status (0: none) and why it failed ("" when it did not).
 *  Returns 0, ENOENT (deleted meanwhile, with its webhook) or EIO. */
int store_delivery_tried(struct store *st, int64_t id, int64_t now_us,
                         enum store_delivery_state state, int64_t next_try_us, int status,
                         const char *error);
/** Calls cb for the deliveries of webhook_id with id < before (0: from the newest), newest
 *  first, at most limit (<= 0: all), without their bodies. Returns 0, EIO, or what a
 *  non-zero cb returned. */
int store_delivery_list(struct store *st, int64_t webhook_id, int64_t before, int limit,
                        int (*cb)(const struct store_delivery *d, void *ctx), void *ctx);
/** Counts the deliveries of webhook_id by state into counts (by enum store_delivery_state);
 *  returns 0 or EIO. */
int store_delivery_counts(struct store *st, int64_t webhook_id,
                          int64_t counts[STORE_DELIVERY_STATES]);
/** Deliveries waiting to be sent (or sent again), of every webhook; -1 on error. */
int64_t store_delivery_pending(struct store *st);
/** Retention of webhook_id's deliveries: deletes the finished ones that finished before
 *  oldest_us or are not among the keep newest finished, and gives up (state failed, with
 *  a reason) the oldest pending ones beyond max_pending. Returns how many rows it deleted
 *  or gave up, or -1. */
int64_t store_delivery_prune(struct store *st, int64_t webhook_id, int64_t oldest_us, int keep,
                             int max_pending, int64_t now_us);

/* ---- admins ---- */

/** Number of admin accounts, or -1 on error. */
int store_admin_count(struct store *st);
/** Creates or replaces an admin with an already hashed password; returns 0 or EIO. */
int store_admin_set(struct store *st, const char *username, const char *password_hash);
/** Copies the stored hash of username; returns 0, ENOENT or EIO. */
int store_admin_hash(struct store *st, const char *username, char *out, size_t outlen);

/* ---- API tokens and admin sessions (tokens.c, sessions.c) ---- */

#define STORE_TOKEN_NAME_MAX 65
#define STORE_TOKEN_PREFIX   "sipbx_"
#define STORE_TOKEN_LEN      71 /* "sipbx_", 64 hex digits and a NUL */
#define STORE_SESSION_ID_LEN 65 /* 64 hex digits and a NUL */

struct store_token {
    int64_t id;
    char name[STORE_TOKEN_NAME_MAX];
    int64_t created_at;
    int64_t last_used_at; /* 0 = never used */
};

/** Creates an API token called name with a fresh random secret. The secret ("sipbx_" and
 *  64 hex digits) is written to secret for the caller to show once; only its SHA-256 is
 *  stored. The new row goes to out. Returns 0, EIO, or an errno value of the random source. */
int store_token_create(struct store *st, const char *name, int64_t now,
                       char secret[STORE_TOKEN_LEN], struct store_token *out);
/** Finds the token whose secret is given (looked up by its hash, which is then compared in
 *  constant time), fills out (may be NULL) and records now as its last use (at most once a
 *  minute, to spare the disk). Returns 0, ENOENT for an unknown or malformed secret, or EIO. */
int store_token_check(struct store *st, const char *secret, int64_t now, struct store_token *out);
/** Reads one token; returns 0, ENOENT or EIO. */
int store_token_get(struct store *st, int64_t id, struct store_token *out);
/** Calls cb for tokens with id > after, in id order, at most limit of them (<= 0: all).
 *  Returns 0, EIO, or what a non-zero cb returned. */
int store_token_list(struct store *st, int64_t after, int limit,
                     int (*cb)(const struct store_token *t, void *ctx), void *ctx);
/** Deletes (revokes) a token; returns 0, ENOENT or EIO. */
int store_token_delete(struct store *st, int64_t id);

struct store_session {
    char username[STORE_NAME_MAX];
    char csrf[STORE_SESSION_ID_LEN]; /* the X-CSRF-Token value (64 hex digits) */
    int64_t created_at;
    int64_t expires_at;
};

/** Creates a log-in session of an admin that expires at expires_at, with a fresh random id
 *  (the cookie value, written to id; stored only as its SHA-256) and CSRF token (in out).
 *  Returns 0, EIO, or an errno value of the random source. */
int store_session_create(struct store *st, const char *username, int64_t now, int64_t expires_at,
                         char id[STORE_SESSION_ID_LEN], struct store_session *out);
/** Reads the session whose cookie value is id; returns 0, ENOENT (unknown, or expired at
 *  now) or EIO. */
int store_session_get(struct store *st, const char *id, int64_t now, struct store_session *out);
/** Moves the expiry of session id to expires_at; returns 0, ENOENT or EIO. */
int store_session_touch(struct store *st, const char *id, int64_t expires_at);
/** Ends session id (log-out); returns 0, ENOENT or EIO. */
int store_session_delete(struct store *st, const char *id);
/** Deletes sessions that expired at or before now; returns the number removed or -1. */
int store_session_purge(struct store *st, int64_t now);

/* ---- the writer thread ---- */

struct store_writer;

/** Starts the writer thread on its own connection to path (already migrated). Returns 0,
 *  or -1 with a reason in err. */
int store_writer_create(struct store_writer **out, const char *path, char *err, size_t errlen);
/** Commits everything still queued, stops the thread and frees it. */
void store_writer_destroy(struct store_writer *w);
/** Queues a binding to save; never blocks on disk. */
void store_writer_reg_save(struct store_writer *w, const struct store_reg *r);
/** Queues a call record (insert, or update of the same call). */
void store_writer_cdr(struct store_writer *w, const struct store_cdr *c);
/** Queues a trace message; takes a copy of t and its raw text. Returns 0 or ENOMEM. */
int store_writer_trace(struct store_writer *w, const struct store_trace *t);
/** Sets trace retention, applied by the writer once a minute (days <= 0 or max_bytes <= 0
 *  turn that bound off). */
void store_writer_set_retention(struct store_writer *w, int days, int64_t max_bytes);
/** Queues a block to save (store_block_save). */
void store_writer_block_save(struct store_writer *w, const struct store_block *b);
/** Queues the removal of the block of source that started at since. */
void store_writer_block_remove(struct store_writer *w, const char *source, int64_t since);
/** Queues removal of one binding, or all of ext when contact is NULL. */
void store_writer_reg_remove(struct store_writer *w, const char *ext, const char *contact);
/** Queues a subscription to save (store_sub_save; a copy is taken). */
void store_writer_sub_save(struct store_writer *w, const struct store_sub *sub);
/** Queues the removal of subscription (call_id, local_tag). */
void store_writer_sub_remove(struct store_writer *w, const char *call_id, const char *local_tag);
/** Queues a publication to save (store_pub_save; a copy is taken). */
void store_writer_pub_save(struct store_writer *w, const struct store_pub *p);
/** Queues the removal of publication etag. */
void store_writer_pub_remove(struct store_writer *w, const char *etag);
/** Queues an event (type, one line of JSON) that the writer hands to the announce function
 *  once everything queued before it is committed, so a reader that reacts to it finds the
 *  change in the database. With once, the same event (type and JSON) queued again into
 *  the same batch goes out only the first time (a call's many messages: one trace.changed).
 *  Returns 0, or EINVAL for a type longer than 63 characters. */
int store_writer_announce(struct store_writer *w, const char *type, const char *json, int once);
/** The function store_writer_announce's events go to (on the writer thread); NULL drops
 *  them. Set it before traffic starts. */
void store_writer_set_announce(struct store_writer *w,
                               void (*fn)(const char *type, const char *json, void *ctx),
                               void *ctx);
/** Queues an event for the outbox (store_writer_set_outbox): the writer hands it to the
 *  outbox's apply function inside the transaction of its batch, after every row queued
 *  before it, so what that function writes (webhook deliveries) is committed with those
 *  rows or not at all. at_us: when the event happened (microseconds since the epoch).
 *  Returns 0, or EINVAL for a type longer than 63 characters. */
int store_writer_outbox(struct store_writer *w, const char *type, const char *json, int64_t at_us);
/** Where store_writer_outbox's events go: apply(st, type, json, at_us, ctx) runs on the
 *  writer thread in the batch's transaction (its errno fails the batch, which is retried
 *  like any failed batch: return one only when the database failed); committed(ctx) runs
 *  once a batch that held any of them is committed. NULL apply drops them. Set it before
 *  traffic starts. */
void store_writer_set_outbox(struct store_writer *w,
                             int (*apply)(struct store *st, const char *type, const char *json,
                                          int64_t at_us, void *ctx),
                             void (*committed)(void *ctx), void *ctx);
/** When the writer's batches have been failing (disk full, I/O error): the wall-clock second
 *  of the first failure of the current run of them, with why the last one failed; 0 while
 *  it writes. *failed_total (if not NULL): batches that failed so far, retries included. */
int64_t store_writer_failing(struct store_writer *w, char *why, size_t whylen,
                             uint64_t *failed_total);
/** Registers fn to run on the writer thread every interval_ms with its connection, e.g.
 *  to notice user changes. One tick function; call before traffic starts. */
void store_writer_set_tick(struct store_writer *w, void (*fn)(struct store *st, void *ctx),
                           void *ctx, int interval_ms);
/** Wakes the writer so the tick function runs at once (after a user change). */
void store_writer_poke(struct store_writer *w);
/** Like store_writer_poke, then waits until the tick function has run on what was
 *  committed before the call (so a user change has been handed to the SIP side). Returns
 *  0, or ETIMEDOUT after timeout_ms (no tick function set, or the writer is stopping). */
int store_writer_poke_wait(struct store_writer *w, int timeout_ms);
/** Rows queued and not yet committed. */
size_t store_writer_depth(struct store_writer *w);

#endif
