/* The SIP side: the Sofia nta agent and its transports, the registrar, digest
 * authentication, the proxy and the live call table. Everything here runs on the SIP thread, the
 * one that calls sip_run(); other threads reach it only through sip_execute() (which gives up after
 * a deadline rather than wait on a stalled loop). */
#ifndef SIPBX_SIP_H
#define SIPBX_SIP_H

#include "store/store.h"

#include <stddef.h>
#include <stdint.h>

struct config;
struct store;
struct store_writer;
struct events;
struct cJSON;
struct sip;

#define SIP_SECRET_LEN 32

/** Initialises the SIP library for the process (Sofia's su_init); once, before any
 *  sip_create. Returns 0 or -1. */
int sip_init(void);
/** Undoes sip_init, after the last sip_destroy. */
void sip_deinit(void);

/** Creates the SIP side on the calling thread (which must later call sip_run): binds UDP
 *  and TCP on cfg's SIP address, and TLS on its `tls` address when set (with the
 *  certificate directory tls_dir that cert_sofia_dir wrote), loads users and unexpired
 *  registrations from st, and queues registration changes to w. domain is the SIP domain
 *  and digest realm; secret signs nonces and dialogs. Returns 0, or -1 with one readable
 *  line in err (e.g. port in use). */
int sip_create(struct sip **out, const struct config *cfg, const char *domain,
               const unsigned char secret[SIP_SECRET_LEN], const char *tls_dir, struct store *st,
               struct store_writer *w, char *err, size_t errlen);

/** Runs the event loop until SIGINT or SIGTERM (which the caller has blocked in every
 *  thread before creating any) or sip_stop(). */
void sip_run(struct sip *s);

/** Asks the loop to stop; callable from the SIP thread. */
void sip_stop(struct sip *s);

/** Frees the agent and all state. Call after sip_run returned and the writer is gone. */
void sip_destroy(struct sip *s);

/** How long sip_execute waits for the SIP thread to take a request (milliseconds). */
#define SIP_EXECUTE_TIMEOUT_MS 2000

/** Runs fn(arg) on the SIP thread and waits for it; returns fn's value. For HTTP threads
 *  that need live state. The request is queued to the SIP loop; when the loop has not
 *  taken it within SIP_EXECUTE_TIMEOUT_MS (stalled, or not running), the request is
 *  withdrawn, fn will not run, and the answer is -1 with errno ETIMEDOUT. Once fn has
 *  started it is waited for (arg may live on the caller's stack), so fn must only copy or
 *  drop in-memory state. -1 with errno ENOMEM when the request cannot be queued. Called on
 *  the SIP thread itself, fn runs at once. fn must not return -1 for success. */
int sip_execute(struct sip *s, int (*fn)(void *arg), void *arg);

/** Returns once the SIP thread has handled every message queued to it before the call
 *  (e.g. the user table the writer has just sent it): 0, or -1 with errno set as
 *  sip_execute's when the SIP thread did not get there in time. */
int sip_barrier(struct sip *s);

/** Methods counted one by one in the metrics; the last slot counts all others. */
#define SIP_METHOD_SLOTS 15
extern const char *const sip_method_slot_names[SIP_METHOD_SLOTS];

/** Event packages of the event server (subs.c), by index in the metrics. */
#define SIP_EVENT_PACKAGES 3
extern const char *const sip_event_package_names[SIP_EVENT_PACKAGES];

/** A snapshot of the SIP side's counters, readable from any thread. */
/** The ways a call ends, as its record's disposition says them (db/004_records.sql). */
#define SIP_DISPOSITIONS 5
extern const char *const sip_disposition_names[SIP_DISPOSITIONS];

struct sip_stats {
    unsigned long long requests[SIP_METHOD_SLOTS]; /* by sip_method_slot_names */
    unsigned long long responses[7];               /* by class: [1] 1xx .. [6] 6xx */
    unsigned long long auth_failures;              /* wrong or unknown credentials */
    unsigned long long forged_in_dialog;           /* in-dialog requests not of our dialogs */
    unsigned long long untraced;      /* captured messages not stored: their request was refused */
    unsigned long long conns_closed;  /* TCP/TLS connections closed by the connection guard */
    unsigned long long registrations; /* bindings now */
    unsigned long long blocked_sources;     /* addresses blocked now */
    unsigned long long blocks;              /* blocks started since start-up */
    unsigned long long blocked_requests;    /* requests dropped from blocked addresses */
    unsigned long long attacked_extensions; /* extensions with many failures in the window */
    unsigned long long nonces_retired;      /* nonces retired after wrong answers */
    unsigned long long subscriptions[SIP_EVENT_PACKAGES]; /* active now, by package */
    unsigned long long notifies_sent;                     /* NOTIFY requests sent */
    unsigned long long publications;            /* published presence documents held now */
    unsigned long long calls[SIP_DISPOSITIONS]; /* calls ended, by sip_disposition_names */
    unsigned long long pool_bytes[2];   /* mapped by the SIP thread's pools: calls, nonces */
    unsigned long long transactions[2]; /* Sofia's transactions held now: server, client */
};

/** A user's presence as the REST API and the event stream show it. */
struct sip_presence_info {
    char extension[STORE_EXT_MAX];
    char basic[8];   /* open, closed */
    char note[128];  /* the published note, or "Available", "On the phone", "Offline" */
    int busy;        /* in an answered call */
    char dialog[12]; /* busy lamp: idle, trying, early, confirmed */
    int published;   /* the state comes from a PUBLISH (else from registrations and calls) */
    size_t watchers; /* active subscriptions to it */
};

/** Copies every user's presence (or only ext's, when not NULL), sorted by extension, into
 *  a new array (*out, free() it), by sip_execute (whose deadline applies). Returns the
 *  count, or -1 (errno ETIMEDOUT, or out of memory). */
int sip_presence(struct sip *s, const char *ext, struct sip_presence_info **out);
/** Renders one user's presence as a JSON object (a new cJSON the caller deletes). */
struct cJSON *sip_presence_json(const struct sip_presence_info *p);

/** Fills out with the current counters; any thread. */
void sip_get_stats(struct sip *s, struct sip_stats *out);

/** Removes every registration of ext (an admin's "kick"), by sip_execute (whose deadline
 *  applies). Returns the number of bindings removed, or -1 (errno as sip_execute's). */
int sip_kick(struct sip *s, const char *ext);

/** Publishes call and registration changes to ev (server-sent events); before sip_run. */
void sip_set_events(struct sip *s, struct events *ev);

struct vm;
/** Routes forwards to voicemail and the voicemail number to vm (voicemail/vm.h), and
 *  makes its mailboxes' counts the message-summary subscriptions' state (vm's listener is
 *  the SIP side's until sip_destroy); before sip_run. Without it such calls get 480. */
void sip_set_voicemail(struct sip *s, struct vm *vm);

/** How many forwards one call follows (101 -> 102 -> 103 ...) before it stops. */
#define SIP_MAX_FORWARDS 5

/** A live call as the REST API and the event stream show it. */
struct sip_call_info {
    uint64_t id;                /* sipbx's own number for the call */
    char call_id[256];          /* the caller's Call-ID */
    char state[16];             /* trying, ringing, forwarded, answered, held, ended */
    char caller[STORE_EXT_MAX]; /* extension of the caller */
    char caller_name[STORE_DISPLAY_NAME_MAX]; /* display name the caller sent, or its
                                                 account's (data, not markup) */
    char callee[STORE_EXT_MAX];               /* dialled extension */
    char caller_contact[512];                 /* where the caller's phone is */
    char callee_contact[512]; /* the callee's device that answered (or is ringing) */
    char user_agent[256];     /* the caller's User-Agent */
    int64_t started_us;       /* INVITE in, microseconds since the epoch (UTC) */
    int64_t ringing_us;       /* first 180/183 relayed, or 0 */
    int64_t answered_us;      /* 2xx relayed, or 0 */
    int64_t ended_us;         /* BYE, final failure or cancel, or 0 */
    int final_status;         /* final SIP status of the INVITE, 0 while pending */
    char hangup_by[8];        /* caller, callee, sipbx, admin, or "" */
    int nforwards;            /* entries used in forwards */
    struct {
        char from[STORE_EXT_MAX]; /* the user whose rule forwarded the call */
        char to[256];             /* the target: an extension or a SIP URI */
        char reason[16];          /* unconditional, user-busy, no-answer, unavailable (RFC 5806) */
    } forwards[SIP_MAX_FORWARDS];
    char linked_call[256]; /* the Call-ID of the call this one came from, or "" */
    char link[20];         /* how: transfer, attended-transfer, pickup; "" for none */
};

/** True when host (of a SIP URI) names this PBX: its domain or the address it listens on.
 *  What the proxy routes to its own users; any thread (set at start, read only). */
int sip_host_is_ours(struct sip *s, const char *host);

/** Copies the live calls, oldest first, into a new array (*out, free() it), by
 *  sip_execute (whose deadline applies). Returns the count, or -1 when the SIP side did
 *  not answer in time (errno ETIMEDOUT). */
int sip_calls(struct sip *s, struct sip_call_info **out);

/** Ends live call id on both legs on an administrator's order, by sip_execute (whose
 *  blocking contract applies): while it rings the devices get CANCEL and the caller 487;
 *  once answered both phones get BYE from sipbx. The record says hangup_by "admin".
 *  Returns 0, ENOENT when there is no such call (or it has ended), or -1 when the SIP side
 *  did not take the request (errno ETIMEDOUT). */
int sip_hangup(struct sip *s, uint64_t id);

/** An address blocked for failed digest checks, as the REST API and the CLI show it. */
struct sip_block {
    char source[46];      /* the IPv4 or IPv6 address (all its ports are blocked) */
    char reason[96];      /* e.g. "10 failed digest checks in 60 s" */
    uint64_t failures;    /* failed digest checks that led to the block */
    uint64_t dropped;     /* requests dropped since it started */
    int offences;         /* 1 for a first block, 2 for a repeat (twice as long), ... */
    int64_t since;        /* seconds since the epoch (UTC) */
    int64_t until;        /* ... when it ends by itself */
    char extensions[264]; /* the extensions it tried, comma-separated, most recent first */
};

/** An extension that failed digest checks were sent for within the current window. */
struct sip_target {
    char extension[33]; /* as the requests named it (it need not exist) */
    uint64_t failures;  /* in the window */
    int sources;        /* distinct addresses they came from (counted up to 16) */
    char last_source[46];
    int64_t last_failure;
};

/** Copies the current blocks, newest first, into a new array (*out, free() it), by
 *  sip_execute (whose blocking contract applies). Returns the count, or -1 when the
 *  request could not be queued. */
int sip_blocks(struct sip *s, struct sip_block **out);
/** Lifts the block of source (an IPv4 or IPv6 address, any spelling), by sip_execute.
 *  Returns 0, ENOENT when it is not blocked, EINVAL when it is not an address, or -1. */
int sip_block_lift(struct sip *s, const char *source);
/** Copies the extensions with failed digest checks in the current window, most failures
 *  first, into a new array (*out, free() it), by sip_execute. Returns the count or -1. */
int sip_targets(struct sip *s, struct sip_target **out);

/** The port the SIP transports are bound to (useful when 0 was asked for). */
int sip_port(const struct sip *s);
/** The port of the TLS transport, 0 without one. */
int sip_tls_port(const struct sip *s);

#endif
