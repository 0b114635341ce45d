/* Private to the sip module: capture of every SIP message on the wire for the ladder
 * traces (see trace.c for how the exact bytes are obtained). */
#ifndef SIPBX_SIP_TRACE_H
#define SIPBX_SIP_TRACE_H

#include <stddef.h>

struct trace;
struct store_writer;

/** Starts the capture thread, which queues each message to w. local is sipbx's address
 *  as stored with each row. Writes into dump_path the file name to give Sofia as its
 *  TPTAG_DUMP. Returns 0 or an errno value. */
int trace_create(struct trace **out, struct store_writer *w, const char *local, char *dump_path,
                 size_t pathlen);
/** Drains what Sofia wrote, stops the thread and frees it. Call after the nta agent is
 *  destroyed and before the writer is. */
void trace_destroy(struct trace *t);

#endif
