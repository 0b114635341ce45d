/* Private to the sip module: the state shared by agent.c, auth.c, registrar.c and
 * usercache.c. Only the SIP thread touches it, except where a field says otherwise. */
#ifndef SIPBX_SIP_INT_H
#define SIPBX_SIP_INT_H

#include "config/config.h"
#include "sip/sip.h"
#include "store/store.h"
#include "util/util.h"

#include <stdatomic.h>
#include <stdint.h>

/* Sofia's typed callback arguments: set before its headers are included. */
#define SU_ROOT_MAGIC_T      struct sip
#define SU_TIMER_ARG_T       void
#define SU_WAKEUP_ARG_T      struct sip
#define NTA_AGENT_MAGIC_T    struct sip
#define NTA_LEG_MAGIC_T      struct sip
#define NTA_INCOMING_MAGIC_T struct ptxn
#define NTA_OUTGOING_MAGIC_T struct branch

#include <sofia-sip/su.h>
#include <sofia-sip/su_wait.h>
#include <sofia-sip/nta.h>
#include <sofia-sip/sip.h>

struct digest;
struct ban;
struct reg;
struct events;
struct ptxn;
struct branch;
struct vm;

/** A user as the SIP thread knows it (a copy of the store's row). */
struct sip_user {
    char extension[STORE_EXT_MAX];
    const char *display_name; /* whole, "" for none; in the entry's own allocation */
    char ha1[STORE_HA1_LEN];
    int ha1_valid; /* 0 when ha1 was made for another realm: the password must be reset */
    int enabled;
    int call_waiting;
    int dnd; /* do-not-disturb */
    int ring_timeout;
    const struct store_forward *fwd; /* call-forward rules; never NULL */
};

/** A ring group as the SIP thread knows it (a copy of the store's rows). */
struct sip_group {
    char extension[STORE_EXT_MAX];
    enum store_group_strategy strategy;
    int member_timeout;
    char no_answer_target[256];
    int nmembers;
    char members[STORE_GROUP_MEMBERS_MAX][STORE_EXT_MAX];
};

struct sip {
    const struct config *cfg;
    char domain[256];
    su_home_t home[1];
    su_root_t *root;
    nta_agent_t *agent;
    int port;     /* of the UDP and TCP transports */
    int tls_port; /* of the TLS transport, 0 without one */
    struct digest *digest;
    struct ban *ban;        /* addresses blocked for failed digests */
    int64_t blocks_version; /* of the CLI's lifts; owned by the writer thread's tick */
    struct strmap *users;   /* extension -> struct sip_user */
    struct strmap *groups;  /* extension -> struct sip_group (ring groups) */
    struct reg *reg;
    struct store_writer *writer;
    struct events *events;         /* may be NULL */
    struct vm *vm;                 /* voicemail (sip_set_voicemail), may be NULL */
    struct trace *trace;           /* message capture, NULL when off */
    struct util_pool *pool;        /* the calls' memory: calls, busy-lamp entries, nodes */
    struct strmap *calls;          /* Call-ID -> struct call */
    _Atomic uint64_t next_call_id; /* shared by every SIP worker: call ids are unique */
    struct strmap *in_calls;       /* extension -> answered calls it takes part in (int *) */
    struct strmap *refers;         /* "transferee|target" -> a REFER seen in a call (calls.c) */
    struct ptxn *txns;             /* proxied transactions in progress */
    char rr_host[256];             /* host of our Record-Route and Via */
    char hostname[256];            /* the machine's name (gethostname), also ours; "" if none */
    int loopback;                  /* we listen on loopback (or everywhere): localhost is us */
    unsigned char rr_key[32];      /* signs our Record-Route (dialog tokens), from the DB secret */
    struct strmap *quiet;          /* "what|source" -> last log line (int64_t *), see sip_log_due */
    struct subs *subs;             /* the event server's subscriptions (subs.c) */
    struct pres *pres;             /* presence and busy lamp state (presence.c) */
    struct conns *conns;           /* the TCP/TLS connection guard */
    struct regcache *regcache;     /* stateless answers to REGISTER over UDP (regcache.c) */
    su_timer_t *housekeeping;
    int sigfd;
    su_wait_t sigwait[1];
    /* The user_changes log (db/006) as the writer thread's tick follows it (its fields). */
    int64_t users_applied;       /* the last sequence number sent to the SIP thread */
    int64_t users_pruned;        /* log rows up to this one deleted */
    int64_t users_pruned_at;     /* when, monotonic milliseconds */
    _Atomic uint64_t users_read; /* users read from the database for the cache, in all */
    size_t trim_peak;            /* memtrim.c: most transactions since the last trim */
    int64_t trim_at;             /* when the last trim was (monotonic seconds) */
    int64_t trim_checked;        /* when the arenas were last looked at */
    /* Counters written by the SIP thread, read by any thread (relaxed atomics). */
    _Atomic uint64_t requests[SIP_METHOD_SLOTS];
    _Atomic uint64_t responses[7]; /* index = status / 100 */
    _Atomic uint64_t auth_failures;
    _Atomic uint64_t pool_bytes[2];   /* sip_stats.pool_bytes, set by the housekeeping */
    _Atomic uint64_t transactions[2]; /* sip_stats.transactions, set by the housekeeping */
    _Atomic uint64_t registrations;
    _Atomic uint64_t forged_in_dialog; /* in-dialog requests refused: not a dialog of ours */
    _Atomic uint64_t conns_closed;     /* TCP/TLS connections closed by the guard */
    _Atomic uint64_t blocked_sources;
    _Atomic uint64_t blocks;
    _Atomic uint64_t blocked_requests;
    _Atomic uint64_t attacked_extensions;
    _Atomic uint64_t nonces_retired;
    _Atomic uint64_t subscriptions[SIP_EVENT_PACKAGES]; /* active now, by package */
    _Atomic uint64_t notifies_sent;
    _Atomic uint64_t publications;                  /* presence documents held now */
    _Atomic uint64_t calls_ended[SIP_DISPOSITIONS]; /* by sip_disposition_names */
};

/* The Server header of our responses. */
#define SIP_SERVER_HEADER "sipbx/" SIPBX_VERSION

/* The methods sipbx accepts, for Allow headers. */
#define SIP_ALLOW                                                                                  \
    "INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER, MESSAGE, INFO, UPDATE, REFER, NOTIFY, PRACK, "   \
    "SUBSCRIBE, PUBLISH"

/* ---- agent.c ---- */

/* A request being handled: with its server transaction (irq), or without one (irq NULL:
 * answered statelessly; over UDP a REGISTER, see regcache.c, and what agent.c answers
 * before making a transaction). msg is the request; both stay valid while the handler
 * runs. */
struct sip_req {
    nta_incoming_t *irq;
    msg_t *msg;
    /* The caller whose proxy credentials agent.c verified before making the transaction
     * (a new request over UDP, auth_challenge_stateless), or NULL: not checked yet. */
    const struct sip_user *caller;
    /* proxy_refused has passed it already (agent.c, over UDP): proxy_handle does not ask
     * again (an in-dialog request's Route signature is an HMAC). */
    int screened;
};

/** Sends a response (phrase NULL: the standard one) and, for a final one, releases the
 *  server transaction. tags are extra headers. */
void sip_reply(struct sip *s, nta_incoming_t *irq, int status, char const *phrase, tag_type_t tag,
               tag_value_t value, ...);
/** The same for a request handle: on its transaction, or statelessly when it has none (a
 *  REGISTER's answer is remembered for its retransmissions, regcache.c). A stateless answer
 *  to a request without a To tag gets a tag derived from the request: a retransmission
 *  gets the same one, and the ACK of the answer is known by it (sip_stateless_acked). */
void sip_req_reply(struct sip *s, const struct sip_req *r, int status, char const *phrase,
                   tag_type_t tag, tag_value_t value, ...);
#define SIP_STATELESS_TAG_LEN 17 /* "c" and 8 bytes of MAC in hex */
/** True when sip is the ACK of an answer sip_req_reply sent without a transaction: there is
 *  nothing left to do with it (the caller drops it). */
int sip_stateless_acked(struct sip *s, sip_t const *sip);

/** True when msg (a request in nta's message callback) came over TCP or TLS, or on no
 *  transport nta knows. */
int sip_streamed(struct sip *s, msg_t *msg);

/** Counts a response sent or relayed, by class, for the metrics. */
void sip_count_response(struct sip *s, int status);

/** Formats where request r came from as "addr:port" and its transport name (udp, tcp or
 *  tls). */
void sip_source(struct sip *s, const struct sip_req *r, char *addr, size_t addrlen, char *transport,
                size_t tlen);
/** The transport (udp, tcp, tls) a request came on: by its transaction irq, or (irq NULL,
 *  inside nta's message callback) by its message. */
const char *sip_transport_of(struct sip *s, nta_incoming_t *irq, msg_t *msg);
/** Writes the address (no port) request r came from, in the canonical form the ban table
 *  uses (IPv4-mapped IPv6 as IPv4); returns 0, or -1 (out "?") when unknown. */
int sip_source_addr(const struct sip_req *r, char *out, size_t outlen);

/** Notes that sipbx accepted request r (authenticated, or of a dialog it signed): its
 *  Call-ID is traced (sip_keep_trace) and its connection, if any, is trusted. */
void sip_accepted(struct sip *s, const struct sip_req *r, sip_t const *sip);

/** Stores the captured messages of call_id in the traces (see trace.c: a Call-ID that no
 *  request was accepted for is not traced). Called for each request sipbx takes (after
 *  authentication, or with a signed dialog Route), each response it relays and each
 *  timer that acts on a call. */
void sip_keep_trace(struct sip *s, const char *call_id);

/** True when a log line about what from source (its address, without the port) is due:
 *  at most one a minute per pair, so an attack costs one line a minute, not one a packet. */
int sip_log_due(struct sip *s, const char *what, const char *source);

/* ---- auth.c ---- */

enum auth_outcome {
    AUTH_OK,       /* *user is the authenticated user */
    AUTH_ANSWERED, /* a challenge or refusal was sent; the request is done */
};

/** Checks the request's digest credentials (Authorization when proxy is 0, else
 *  Proxy-Authorization). On failure answers 401/407 with a fresh challenge (stale=true when
 *  the password was right but the nonce old or reused) or 403 for a disabled account. */
enum auth_outcome auth_check(struct sip *s, const struct sip_req *r, sip_t const *sip, int proxy,
                             const struct sip_user **user);

/** A REGISTER over UDP without credentials for our realm, and a new call, MESSAGE, OPTIONS
 *  or REFER over UDP without proxy credentials (proxy_challenges), are answered here,
 *  before any transaction exists: a 401 or 407 challenge sent statelessly, as Kamailio's
 *  sl does. So the first half of every registration and call leaves nothing behind (a
 *  completed server transaction costs about 12 KB for 64*T1 = 32 s), and a request with
 *  a forged source gets one answer, not the eleven a transaction's 407 would be resent
 *  (an amplifier for reflection attacks). A retransmission gets a challenge again, with
 *  the same To tag; the ACK of a 407 is known by that tag (sip_stateless_acked). Such a
 *  request with proxy credentials has them checked here as well (a refusal is stateless
 *  too); when they are good, *caller is the user and the request goes on. screened: over
 *  UDP, for the proxy, and passed by proxy_refused (a call is challenged only then). Takes
 *  msg and returns 1 when it answered; 0 otherwise (msg untouched: the request goes on). */
int auth_challenge_stateless(struct sip *s, msg_t *msg, sip_t const *sip, int screened,
                             const struct sip_user **caller);

/* ---- blocks.c: the SIP side of the ban table (sip/ban.h) ---- */

/** Creates s->ban from the settings and takes back the blocks stored by the last run
 *  (start-up; the one time it reads them). Returns 0, or -1 with a reason in err. */
int blocks_create(struct sip *s, struct store *st, char *err, size_t errlen);
/** Records a failed digest check of the request irq for user (known or not) and, when it
 *  starts a block, persists it (through the writer). */
void blocks_failure(struct sip *s, const struct sip_req *r, const char *user);
/** Copies the ban table's counters into the atomics the metrics read. */
void blocks_publish_stats(struct sip *s);
/** Writer-thread tick: when blocks were lifted with the CLI, hands them to the SIP thread. */
void blocks_tick(struct store *st, void *sip);

/* ---- registrar.c ---- */

/** Creates the registrar and loads unexpired bindings from st; returns 0 or ENOMEM. */
int reg_create(struct reg **out, struct sip *s, struct store *st);
void reg_destroy(struct reg *r);
/** Handles a REGISTER request. */
void reg_handle(struct sip *s, const struct sip_req *r, sip_t const *sip);
/** Drops bindings whose time is up (called every second). */
void reg_expire(struct sip *s, int64_t now);
/** Drops every binding of ext (user deleted or kicked); returns how many there were. */
size_t reg_remove_user(struct sip *s, const char *ext);
/** Number of bindings in memory. */
size_t reg_count(const struct reg *r);

/** Where to send a request for one registered device. */
struct reg_target {
    char contact[512];  /* the Request-URI: the Contact the device registered */
    char next_hop[128]; /* sip:ADDR:PORT;transport=udp|tcp, where its REGISTER came from */
};
/** Fills out with up to max current bindings of ext; returns how many. */
size_t reg_targets(struct sip *s, const char *ext, struct reg_target *out, size_t max);
/** Finds the binding whose Contact is contact (any user) and writes its next hop; 0 when
 *  found, -1 otherwise. Used to reach a phone behind NAT inside a dialog. */
int reg_next_hop(struct sip *s, url_t const *contact, char *out, size_t outlen);

/* ---- proxy.c ---- */

/** Routes a request that is not for sipbx itself (INVITE, MESSAGE, in-dialog requests ...). */
void proxy_handle(struct sip *s, const struct sip_req *r, sip_t const *sip);
/** True when url names this server (our domain or address, and our port). */
int proxy_is_us(struct sip *s, url_t const *url);
/** True when proxy_handle would route sip as a new request (a call, MESSAGE, OPTIONS to a
 *  user or REFER outside a dialog), which starts with the caller's proxy authentication.
 *  Asked only of a request proxy_refused has passed (well-formed, not looped, not routed
 *  elsewhere). */
int proxy_challenges(sip_t const *sip);
/** Answers what proxy_handle refuses from the request alone, before any authentication
 *  or state: malformed, looped or out of hops (400, 482, 483), an in-dialog request that
 *  is not of a dialog we signed (481, 403: counted and logged as forged), a new request
 *  routed elsewhere (403), a method that has no new request (481, 489, 405). An ACK among
 *  them is dropped. Returns 1 when it answered; works on a transaction or, with r->irq
 *  NULL, statelessly (agent.c does that for UDP: one answer per datagram, nothing kept). */
int proxy_refused(struct sip *s, const struct sip_req *r, sip_t const *sip);
/** Ends every transaction in progress (shutdown). */
void proxy_shutdown(struct sip *s);
/** Ends the pending initial INVITE t on an administrator's order: its branches are
 *  CANCELled (with a Reason), the caller gets 487, the record says "admin". */
void proxy_end_by_admin(struct ptxn *t);

/* ---- calls.c: the live call table ---- */

/* What sipbx needs to end an answered call itself (an administrator's hang-up): for each
 * side (a: the caller, b: the callee that answered) the remote target, how to reach it and
 * the route set beyond sipbx, the dialog's From and To, and the highest CSeq each side has
 * used. Strings are malloc'd; NULL when not known. */
struct call_legs {
    char *a_from;   /* the caller's From header value, with its tag */
    char *a_target; /* the caller's Contact URI */
    char *a_hop;    /* sip:ADDR:PORT;transport=X, where the caller's INVITE came from */
    char *a_route;  /* Route set towards the caller beyond sipbx (Record-Route entries) */
    char *b_to;     /* the To of the 2xx, with the callee's tag */
    char *b_target; /* the Contact of the 2xx */
    char *b_hop;    /* where the INVITE went (NULL: by b_target) */
    char *b_route;  /* Route set towards the callee beyond sipbx */
    uint32_t a_cseq, b_cseq;
};

struct call {
    struct sip_call_info info;
    char from_tag[128];    /* the caller's tag: tells who sends a BYE */
    char to_tag[128];      /* the tag of the device ringing (first 18x) or that answered */
    struct ptxn *invite;   /* the initial INVITE while it is pending */
    char answered_by[256]; /* extension (or URI) whose device answered */
    int64_t max_end;       /* monotonic second after which a silent call is dropped */
    unsigned long session; /* RFC 4028 session interval agreed in the last 2xx, 0: none */
    struct call_legs legs;
};

/** Opens a call for an authenticated INVITE from caller to callee, which came from source
 *  ("addr:port") over transport. */
struct call *calls_start(struct sip *s, sip_t const *sip, const struct sip_user *caller,
                         const char *callee, const char *source, const char *transport);
/** A 180/183 (resp) was relayed (contact: the ringing device). */
void calls_ringing(struct sip *s, struct call *c, const char *contact, sip_t const *resp);
/** The call was forwarded from user from to target for reason (RFC 5806 reason). */
void calls_forwarded(struct sip *s, struct call *c, const char *from, const char *to,
                     const char *reason);
/** A 2xx (resp) was relayed from contact, a device of answered_by (extension or URI),
 *  reached via next_hop (NULL: its contact). */
void calls_answered(struct sip *s, struct call *c, const char *contact, const char *answered_by,
                    const char *next_hop, sip_t const *resp);
/** A 2xx to an in-dialog INVITE or UPDATE was relayed: a session refresh (RFC 4028). */
void calls_refreshed(struct sip *s, sip_t const *resp);
/** The INVITE ended without an answer (status sent to the caller); the call is removed. */
void calls_failed(struct sip *s, struct call *c, int status, const char *by);
/** An in-dialog request passes: BYE ends the call, a re-INVITE may hold or resume it. */
void calls_in_dialog(struct sip *s, sip_t const *sip);
/** Number of answered (or held) calls where ext takes part (as the caller or the user
 *  whose device answered); kept as calls are answered and end, not counted each time. */
int calls_busy(struct sip *s, const char *ext);
/** Drops answered calls whose session expired without a refresh (RFC 4028), or, without
 *  a session timer, that outlived the maximum call length (no BYE seen). */
void calls_expire(struct sip *s, int64_t mono_now);
/** Forgets REFERs whose resulting call did not come in time (housekeeping). */
void calls_expire_refers(struct sip *s);
/** Frees every call (shutdown). */
void calls_destroy_all(struct sip *s);
/** Hands p to the SIP thread from any other thread, without waiting: run(s, p) is called
 *  there and owns p. When p cannot be handed over (no memory for the message, or the loop
 *  stopped before it ran) drop(p) is called instead, on whichever thread that happens.
 *  Returns 0, or -1 when p was dropped at once. */
int sip_post(struct sip *s, void (*run)(struct sip *s, void *p), void (*drop)(void *p), void *p);
/** Publishes an event (type, JSON object rendered by the caller) when events are on. */
void sip_publish(struct sip *s, const char *type, struct cJSON *obj);

/* ---- subs.c: the event server (RFC 6665) ---- */

struct subs;
/** Creates the subscription table and takes back the subscriptions of the last run
 *  (start-up, after the user cache): those whose user is gone are ended, the others
 *  notified if their state changed, once the loop runs. Returns 0, ENOMEM or EIO. */
int subs_create(struct sip *s, struct store *st);
void subs_destroy(struct sip *s);
/** Handles a SUBSCRIBE: a new subscription, a refresh or an unsubscribe of one of ours;
 *  an in-dialog SUBSCRIBE of another dialog goes to the proxy. */
void subs_handle(struct sip *s, const struct sip_req *r, sip_t const *sip);
/** What ext's packages say may have changed: NOTIFY each watcher whose document did. */
void subs_notify_presentity(struct sip *s, const char *ext);
/** Ends the subscriptions of a deleted user, watched or watching, with a final NOTIFY. */
void subs_user_deleted(struct sip *s, const char *ext);
/** Ends subscriptions whose time is up (every second). */
void subs_expire(struct sip *s, int64_t now);
/** Active subscriptions to ext's presence and dialogs (a phone's subscription to its own
 *  mailbox is not someone watching it). */
size_t subs_watchers(struct sip *s, const char *ext);
/** The lifetime a SUBSCRIBE or PUBLISH asks for (Expires; 3600 s when absent, cut to
 *  3600), or -1 after answering 423 with Min-Expires: 60 to one below 60 (0 is allowed:
 *  an unsubscribe, a fetch, a withdrawal). */
long subs_expires(struct sip *s, nta_incoming_t *irq, sip_t const *sip);

/* ---- presence.c: presence documents and busy lamps ---- */

struct pres;
struct buf;
/** Creates the presence state and takes back the unexpired publications of the last run;
 *  returns 0, ENOMEM or EIO. */
int pres_create(struct sip *s, struct store *st);
void pres_destroy(struct sip *s);
/** Handles a PUBLISH of presence (RFC 3903). */
void pres_publish_handle(struct sip *s, const struct sip_req *r, sip_t const *sip);
/** ext's state may have changed (registration, call, publication): after this turn of
 *  the loop an event goes out if its summary changed, and watchers are notified. */
void pres_changed(struct sip *s, const char *ext);
/** A call changed state (every call event): the busy lamps of its parties follow. */
void pres_call(struct sip *s, const struct call *c);
/** Forgets a deleted user's publications and ends its subscriptions. */
void pres_user_deleted(struct sip *s, const char *ext);
/** Drops expired publications and ended dialogs shown long enough (every second). */
void pres_expire(struct sip *s, int64_t now);
/** Appends ext's presence document (PIDF, RFC 3863): the newest publication, else one
 *  derived from its registrations and calls. */
void pres_pidf(struct sip *s, const char *ext, struct buf *out);
/** Appends ext's dialog-info document (RFC 4235, state "full") with this version. */
void pres_dialog_info(struct sip *s, const char *ext, uint32_t version, struct buf *out);

/* ---- mwi.c: message waiting (RFC 3842) ---- */

/** Appends ext's message-summary document (RFC 3842) from voicemail's counts of its
 *  mailbox (kept in memory: no disk I/O on the SIP thread); version is unused. */
void mwi_summary(struct sip *s, const char *ext, uint32_t version, struct buf *out);
/** True when user (a Request-URI's user part, may be NULL) names watcher's own mailbox:
 *  the watcher's extension, or the voicemail number. */
int mwi_is_mailbox_uri(struct sip *s, const char *user, const char *watcher);
/** Listens to voicemail's mailbox changes (s->vm): each posts the extension to the SIP
 *  loop, which notifies its subscriptions whose document changed. */
void mwi_attach(struct sip *s);
/** Stops listening (before s goes; voicemail may outlive it). */
void mwi_detach(struct sip *s);

/* ---- regcache.c: REGISTER over UDP without server transactions ---- */

struct regcache;
/** Creates the cache of recent stateless answers; returns 0 or ENOMEM. */
int regcache_create(struct regcache **out);
void regcache_destroy(struct regcache *c);
/** True when msg (in nta's message callback) is to be handled without a server
 *  transaction: a REGISTER with our credentials over UDP. */
int regcache_stateless(struct sip *s, msg_t *msg, sip_t const *sip);
/** When msg retransmits a request answered statelessly a moment ago, sends that answer
 *  again and returns 1; else 0. msg stays the caller's. */
int regcache_resend(struct sip *s, msg_t *msg, sip_t const *sip);
/** Answers request msg statelessly (status, phrase, extra headers tags) and, when final,
 *  remembers the answer for retransmissions. msg stays the caller's. */
void regcache_reply(struct sip *s, msg_t *msg, int status, char const *phrase, tagi_t const *tags);
/** Forgets answers no retransmission can ask for any more; now in monotonic ms. */
void regcache_prune(struct sip *s, int64_t now_ms);

/* ---- sofiafix.c ---- */

/** True when the work-arounds of sofiafix.c are in place (Sofia's msg_next found); also
 *  what links them into the executable. */
int sip_sofia_fixed(void);

/* ---- conns.c: the TCP/TLS connection guard ---- */

struct conns;
/** Creates the guard; returns 0 or ENOMEM. */
int conns_create(struct conns **out);
void conns_destroy(struct conns *c);
/** Makes s's guard the one of connections the calling thread's transports accept. */
void conns_bind(struct sip *s);
/** A complete request arrived on irq's connection (if any); accepted: sipbx took it. */
void conns_request(struct sip *s, nta_incoming_t *irq, int accepted);
/** Closes connections that have not earned their place (see conns.c); every second. */
void conns_sweep(struct sip *s);

/* ---- memtrim.c ---- */

/** Housekeeping (every second, now in monotonic seconds): gives the memory of a burst of
 *  transactions back to the kernel once the burst is over (malloc_trim). */
void memtrim_tick(struct sip *s, int64_t now);

/* ---- usercache.c ---- */

/** Loads all users and ring groups from st into s->users and s->groups (start-up);
 *  returns 0 or EIO. */
int usercache_load(struct sip *s, struct store *st);
/** Writer-thread tick: reads the users changed since the last tick from the user_changes
 *  log and sends them (a delta) to the SIP thread; prunes the log rows it has applied. */
void usercache_tick(struct store *st, void *sip);
/** Looks a user up by extension; NULL when unknown. */
const struct sip_user *usercache_get(struct sip *s, const char *ext);
/** Looks a ring group up by extension; NULL when there is none. */
const struct sip_group *usercache_group(struct sip *s, const char *ext);

/** The users changed between two sequence numbers of the log, read and ready to apply. */
struct usercache_delta;
/** Reads the users changed with a sequence number in (after, upto] from st into a new
 *  delta (*out); returns 0 or an errno value. Any thread (the writer's, normally). */
int usercache_delta_read(struct sip *s, struct store *st, int64_t after, int64_t upto,
                         struct usercache_delta **out);
/** On the SIP thread: puts the delta's users in place (deleted ones lose their bindings);
 *  the delta is then empty and still the caller's to free. */
void usercache_apply(struct sip *s, struct usercache_delta *d);
void usercache_delta_free(struct usercache_delta *d);

#endif
