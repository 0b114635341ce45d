/* Webhooks: events POSTed to the URLs administrators registered, as JSON signed with each
 * webhook's secret (HMAC-SHA256). The events are the event stream's (server/events): a
 * listener on the stream hands those some webhook wants to the writer thread, which
 * queues them in the database, one delivery per webhook, in the transaction of the change
 * they tell of. A thread of its own sends them (libcurl), retries failures with backoff
 * and keeps the outcome as each webhook's delivery log. Nothing of it runs on the SIP
 * thread but the listener's copy of an event into the writer's queue. */
#ifndef SIPBX_HOOKS_H
#define SIPBX_HOOKS_H

#include <stddef.h>
#include <stdint.h>

struct events;
struct store;
struct store_writer;
struct hooks;

/* The events a webhook can ask for, by index (a bit each in a mask). */
enum hooks_event {
    HOOKS_CALL_NEW,
    HOOKS_CALL_ANSWERED,
    HOOKS_CALL_ENDED,
    HOOKS_REGISTRATION_CHANGED,
    HOOKS_USER_CHANGED,
    HOOKS_EVENTS
};
/** Their names, as the API and the event stream say them ("call.ended", ...). */
extern const char *const hooks_event_names[HOOKS_EVENTS];
/** The index of an event name, or -1. */
int hooks_event_index(const char *name);

#define HOOKS_MAX          16    /* webhooks at most */
#define HOOKS_ATTEMPTS_MAX 8     /* tries of one delivery before it is given up */
#define HOOKS_SECRET_LEN   71    /* "whsec_", 64 hex digits and a NUL */
#define HOOKS_TIMEOUT_MS   10000 /* a receiver must have answered within this */

/** Starts the webhooks of the (migrated) database at db_path: follows ev (the calls and
 *  registrations stream, which the writer's user and registration events reach too),
 *  queues events through w and starts the sending thread. ev and w must outlive it.
 *  Returns 0, or -1 with one readable line in err. */
int hooks_create(struct hooks **out, const char *db_path, struct store_writer *w, struct events *ev,
                 char *err, size_t errlen);
/** Stops the sending thread (deliveries in flight stay queued: they go again at the next
 *  start) and frees it. Call it once the writer is destroyed, so that every event queued
 *  is in the database; NULL is ignored. */
void hooks_destroy(struct hooks *hk);

/** The webhooks changed (one added or deleted, through st): which events are wanted is
 *  read again from st at once, so that the next event already counts, and the sender
 *  looks at the new set. Any thread. */
void hooks_changed(struct hooks *hk, struct store *st);

/** Queues a "ping" event for webhook_id alone (a test of its URL and secret) and wakes the
 *  sender. Returns 0 with the new delivery's id in *delivery_id, ENOENT (no such webhook)
 *  or EIO. */
int hooks_ping(struct hooks *hk, struct store *st, int64_t webhook_id, int64_t *delivery_id);

/** Checks a webhook URL: an absolute http:// or https:// URL with a host. Returns 0, or
 *  -1 with the reason in why ("must start with http:// or https://"). */
int hooks_url_check(const char *url, char *why, size_t whylen);

/** Writes a new random secret ("whsec_" and 64 hex digits); returns 0 or an errno value
 *  of the random source. */
int hooks_secret_new(char out[HOOKS_SECRET_LEN]);

/** The signature header's value for body under secret: "sha256=" and the hex HMAC-SHA256
 *  (out holds at least 72 bytes). */
void hooks_sign(const char *secret, const char *body, size_t len, char *out, size_t outlen);

/** How long a delivery waits after its n-th failed try (n from 1) before the next, in
 *  seconds; 0 when n tries are all it gets. */
int hooks_backoff(int n);

struct hooks_stats {
    uint64_t delivered; /* deliveries answered 2xx */
    uint64_t retried;   /* tries that failed and are to be tried again */
    uint64_t given_up;  /* deliveries that failed HOOKS_ATTEMPTS_MAX tries */
    int in_flight;      /* being sent now */
};
/** The sender's counters since start-up; any thread. */
void hooks_get_stats(struct hooks *hk, struct hooks_stats *out);

#endif
