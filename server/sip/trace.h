/* Private to the sip module: capture of every SIP message on the wire for the ladder
 * traces (see trace.c for how the exact bytes are obtained and which messages are kept). */
#ifndef SIPBX_SIP_TRACE_H
#define SIPBX_SIP_TRACE_H

#include <stddef.h>
#include <stdint.h>

struct trace;
struct store_writer;

/** Starts the capture thread, which queues each kept message to w. local is sipbx's address
 *  as stored with each row. Call on the SIP thread that will run the nta agent: the capture
 *  takes what that thread's transports send and receive (pass TPTAG_DUMP("/dev/null") to
 *  the agent so Sofia hands it every message). Returns 0 or an errno value. */
int trace_create(struct trace **out, struct store_writer *w, const char *local);

/** Keeps the messages of call_id: those seen already (held back until now) and those to
 *  come. Messages of a Call-ID that nobody accepts within a short time (unauthenticated or
 *  unparseable traffic, scanners) are counted and dropped instead of stored. SIP thread. */
void trace_accept(struct trace *t, const char *call_id);

/** Messages dropped so far because their Call-ID was never accepted; any thread. */
uint64_t trace_untraced(const struct trace *t);

/** Drains what Sofia wrote, stops the thread and frees it. Call on the SIP thread after the
 *  nta agent is destroyed and before the writer is. */
void trace_destroy(struct trace *t);

#endif
