/* The event stream: the SIP thread publishes call and registration changes, any number of
 * HTTP subscribers (server-sent events) read them. A bounded ring buffer: a subscriber that
 * falls behind by more than its capacity skips ahead and is told how many it missed. */
#ifndef SIPBX_EVENTS_H
#define SIPBX_EVENTS_H

#include <stddef.h>
#include <stdint.h>

struct events;

/** Creates a stream that keeps the last capacity events; returns 0 or ENOMEM. */
int events_create(struct events **out, size_t capacity);
/** Wakes every waiting subscriber (events_next returns -1) and frees the stream once the
 *  caller guarantees no subscriber will call in again. */
void events_destroy(struct events *ev);
/** Makes every current and future events_next() return -1 (shutdown). */
void events_close(struct events *ev);
/** Appends an event; type and json (one line of JSON) are copied. Any thread. */
void events_publish(struct events *ev, const char *type, const char *json);
/** The sequence number of the newest event (0 before the first); start subscribers here. */
uint64_t events_head(struct events *ev);
/** Waits up to timeout_ms for the event after *cursor. Returns 1 and sets *type and *json
 *  (malloc'd, the caller frees) and advances *cursor; 0 on timeout; -1 when closed.
 *  *missed receives how many events were overwritten before this subscriber read them. */
int events_next(struct events *ev, uint64_t *cursor, int timeout_ms, char **type, char **json,
                uint64_t *missed);
/** Told of each event as it is published: on the publishing thread, with the stream's lock
 *  held. type and json are the stream's copies, valid during the call only. fn must be
 *  quick and must not call into the stream (it wakes a thread that then reads, or copies
 *  what it needs). */
typedef void (*events_listener)(void *ctx, const char *type, const char *json);

#define EVENTS_LISTENERS_MAX 4

/** Adds a listener, told of every event published from now on. Returns 0, or ENOSPC when
 *  EVENTS_LISTENERS_MAX are set already. */
int events_add_listener(struct events *ev, events_listener fn, void *ctx);
/** Removes the listener added with fn and ctx; once this returns, no call to it is under
 *  way and none will be made. */
void events_remove_listener(struct events *ev, events_listener fn, void *ctx);
/** Number of events published so far. */
uint64_t events_count(struct events *ev);

#endif
