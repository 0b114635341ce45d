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
#define SU_ROOT_MAGIC_T   struct sip
#define SU_TIMER_ARG_T    struct sip
#define SU_WAKEUP_ARG_T   struct sip
#define NTA_AGENT_MAGIC_T struct sip
#define NTA_LEG_MAGIC_T   struct sip

#include <sofia-sip/su.h>
#include <sofia-sip/su_wait.h>
#include <sofia-sip/nta.h>
#include <sofia-sip/sip.h>

struct digest;
struct reg;

/** A user as the SIP thread knows it (a copy of the store's row). */
struct sip_user {
    char extension[STORE_EXT_MAX];
    char display_name[STORE_NAME_MAX];
    char ha1[STORE_HA1_LEN];
    int ha1_valid; /* 0 when ha1 was made for another realm: the password must be reset */
    int enabled;
    int call_waiting;
    int ring_timeout;
};

struct sip {
    const struct config *cfg;
    char domain[256];
    su_home_t home[1];
    su_root_t *root;
    nta_agent_t *agent;
    nta_leg_t *leg;
    int port;
    struct digest *digest;
    struct strmap *users; /* extension -> struct sip_user */
    struct reg *reg;
    struct store_writer *writer;
    su_timer_t *housekeeping;
    int sigfd;
    su_wait_t sigwait[1];
    int64_t users_version; /* owned by the writer thread's tick */
    /* Counters written by the SIP thread, read by any thread (relaxed atomics). */
    _Atomic uint64_t requests[SIP_METHOD_SLOTS];
    _Atomic uint64_t responses[7]; /* index = status / 100 */
    _Atomic uint64_t auth_failures;
    _Atomic uint64_t registrations;
};

/* The methods sipbx accepts, for Allow headers. */
#define SIP_ALLOW "REGISTER, OPTIONS"

/* ---- agent.c ---- */

/** Sends a response (phrase NULL: the standard one) and, for a final one, releases the
 *  server transaction. tags are extra headers. */
void sip_reply(struct sip *s, nta_incoming_t *irq, int status, char const *phrase, tag_type_t tag,
               tag_value_t value, ...);

/** Counts a response sent or relayed, by class, for the metrics. */
void sip_count_response(struct sip *s, int status);

/** Formats where the request of irq came from as "addr:port" and its transport name. */
void sip_source(nta_incoming_t *irq, char *addr, size_t addrlen, char *transport, size_t tlen);

/* ---- auth.c ---- */

enum auth_outcome {
    AUTH_OK,       /* *user is the authenticated user */
    AUTH_ANSWERED, /* a challenge or refusal was sent; the request is done */
};

/** Checks the request's digest credentials (Authorization when proxy is 0, else
 *  Proxy-Authorization). On failure answers 401/407 with a fresh challenge (stale=true when
 *  the password was right but the nonce old or reused) or 403 for a disabled account. */
enum auth_outcome auth_check(struct sip *s, nta_incoming_t *irq, sip_t const *sip, int proxy,
                             const struct sip_user **user);

/* ---- registrar.c ---- */

/** Creates the registrar and loads unexpired bindings from st; returns 0 or ENOMEM. */
int reg_create(struct reg **out, struct sip *s, struct store *st);
void reg_destroy(struct reg *r);
/** Handles a REGISTER request. */
void reg_handle(struct sip *s, nta_incoming_t *irq, sip_t const *sip);
/** Drops bindings whose time is up (called every second). */
void reg_expire(struct sip *s, int64_t now);
/** Drops every binding of ext (user deleted or kicked); returns how many there were. */
size_t reg_remove_user(struct sip *s, const char *ext);
/** Number of bindings in memory. */
size_t reg_count(const struct reg *r);

/* ---- usercache.c ---- */

/** Loads all users from st into s->users (start-up); returns 0 or EIO. */
int usercache_load(struct sip *s, struct store *st);
/** Writer-thread tick: when the users table changed, sends a fresh copy to the SIP thread. */
void usercache_tick(struct store *st, void *sip);
/** Looks a user up by extension; NULL when unknown. */
const struct sip_user *usercache_get(struct sip *s, const char *ext);

#endif
