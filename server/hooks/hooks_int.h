/* Private to the hooks module: its state, shared by the event intake (intake.c), the
 * sending thread (sender.c) and the public functions (hooks.c). */
#ifndef SIPBX_HOOKS_INT_H
#define SIPBX_HOOKS_INT_H

#include "hooks/hooks.h"
#include "store/store.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>

struct hooks {
    char db_path[4096];
    struct store_writer *w;
    struct events *ev;
    int listening;               /* the listener is on ev */
    atomic_uint wanted;          /* a bit per enum hooks_event some webhook wants */
    atomic_uint generation;      /* bumped when the webhooks change: the sender reads them again */
    pthread_mutex_t wanted_lock; /* orders the writes of wanted (hooks_changed, the sender) */
    atomic_uint wakes;           /* bumped by hooks_wake: the sender looks at every webhook */
    CURLM *multi;                /* the sender's transfers; curl_multi_wakeup wakes it */
    pthread_t thread;
    int started;
    atomic_int stopping;
    _Atomic uint64_t delivered, retried, given_up; /* hooks_stats */
    atomic_int in_flight;
    _Atomic uint64_t lost; /* events the listener could not queue (out of memory) */
};

/* ---- intake.c ---- */

/** The event stream's listener (events_add_listener; ctx: the hooks): an event some
 *  webhook wants goes to the writer's outbox. On the publishing thread, under the
 *  stream's lock: it only copies. */
void hooks_on_event(void *ctx, const char *type, const char *json);
/** The writer's outbox function (store_writer_set_outbox): turns an event into its body
 *  and queues a delivery for each webhook that wants it, in the batch's transaction. */
int hooks_intake(struct store *st, const char *type, const char *json, int64_t at_us, void *ctx);
/** After a batch with events is committed: wakes the sender. */
void hooks_committed(void *ctx);
/** The body of an event: {"id","type","created_at","data"}; takes data. Writes the new
 *  event id (a random UUID) to id. Returns a malloc'd string, or NULL when out of memory
 *  or the random source failed. */
char *hooks_event_body(const char *type, cJSON *data, int64_t at_us, char id[STORE_EVENT_ID_LEN]);
/** The mask of the events the webhooks in st want, or -1 when st cannot be read. */
int hooks_read_wanted(struct store *st);

/* ---- sender.c ---- */

/** The sending thread (arg: the hooks). */
void *hooks_sender_main(void *arg);
/** Makes the sender look for work now; any thread. */
void hooks_wake(struct hooks *hk);

#endif
