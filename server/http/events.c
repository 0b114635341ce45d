/* /api/v1/events: the SIP side's event stream (calls and registrations) as server-sent
 * events; with ?trace=CALL_ID instead the trace.changed events of that one Call-ID (a
 * ladder that grows while the call goes on). A stream holds no thread: with nothing to
 * send its connection is parked (http_suspend) until an event comes, the client closes,
 * the server stops, or a keepalive or a check of its credential is due. */
#include "events/events.h"
#include "http/http_int.h"
#include "util/util.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STREAM_KEEPALIVE_MS 15000 /* a comment line after this long without output */
#define STREAM_REAUTH_MS    15000 /* how often the stream's credential is checked again */
#define STREAM_BLOCK        (16 * 1024)
#define STREAM_RETRY_MS     3000 /* the reconnection delay suggested to clients */
#define TRACE_CALL_ID_MAX   255  /* the longest Call-ID the capture stores */

struct stream {
    struct http *h;
    struct MHD_Connection *conn;
    struct events *src;       /* h->events, or h->trace_events for a trace stream */
    char *call_id;            /* a trace stream's Call-ID (malloc'd), NULL for the main stream */
    uint64_t cursor;          /* sequence number of the last event taken */
    struct buf out;           /* text being sent */
    size_t out_off;           /* how much of it is sent */
    int64_t last_write_ms;    /* monotonic */
    int64_t next_auth_ms;     /* monotonic */
    struct http_wait wait;    /* parked while there is nothing to send */
    enum http_auth_kind auth; /* the credential the stream was opened with */
    int64_t token_id;         /* HTTP_AUTH_TOKEN */
    char sid[STORE_SESSION_ID_LEN]; /* HTTP_AUTH_SESSION: the cookie value */
    int64_t session_created;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* True while the token or session the stream was opened with is still good. A database
 * that cannot be read keeps the stream open: the next check decides. */
static int still_authorized(struct stream *s)
{
    struct store *st = http_pool_get(s->h);
    if (!st)
        return 1;
    int rc = 0;
    int64_t now = util_now();
    if (s->auth == HTTP_AUTH_TOKEN) {
        struct store_token t;
        rc = store_token_get(st, s->token_id, &t);
    } else if (s->auth == HTTP_AUTH_SESSION) {
        struct store_session ss;
        rc = store_session_get(st, s->sid, now, &ss);
        if (now >= s->session_created + HTTP_SESSION_MAX)
            rc = ENOENT;
    }
    http_pool_put(s->h, st);
    return rc != ENOENT;
}

/* True when the client has closed its end. While the reader waits, microhttpd does not
 * watch the socket; without this a closed stream would hold its slot until the next
 * keepalive fails to be written. */
static int client_gone(struct stream *s)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(s->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return 0;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* True when json (a trace.changed event) is about call_id. */
static int trace_of(const char *json, const char *call_id)
{
    cJSON *o = cJSON_Parse(json);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "call_id");
    int mine = cJSON_IsString(id) && strcmp(id->valuestring, call_id) == 0;
    cJSON_Delete(o);
    return mine;
}

/* Puts the next piece of output (events, or a keepalive) in s->out, without waiting.
 * Returns 1 when there is some, 0 when there is nothing to send now, -1 when the stream is
 * to end (shutdown, closed stream, revoked credential). */
static int fill(struct stream *s)
{
    s->out.len = s->out_off = 0;
    if (atomic_load(&s->h->stopping) || client_gone(s))
        return -1;
    if (now_ms() >= s->next_auth_ms) {
        if (!still_authorized(s)) {
            log_info("http: an event stream ended: its credential was revoked or expired");
            return -1;
        }
        s->next_auth_ms = now_ms() + STREAM_REAUTH_MS;
    }
    for (;;) {
        char *type = NULL, *json = NULL;
        uint64_t missed = 0;
        int rc = events_next(s->src, &s->cursor, 0, &type, &json, &missed);
        if (rc < 0)
            return -1;
        if (rc == 0)
            break;
        /* A trace stream passes only its Call-ID's events, and without ids (nothing to
         * resume: a client that reconnects fetches the trace again); missed events may
         * have been its, so they are reported on either stream. */
        if (missed)
            buf_printf(&s->out, "event: overflow\ndata: {\"missed\":%llu}\n\n",
                       (unsigned long long)missed);
        if (!s->call_id)
            buf_printf(&s->out, "event: %s\nid: %llu\ndata: %s\n\n", type,
                       (unsigned long long)(s->h->event_id_base + s->cursor), json);
        else if (trace_of(json, s->call_id))
            buf_printf(&s->out, "event: %s\ndata: %s\n\n", type, json);
        free(type);
        free(json);
        if (s->out.failed)
            return -1;
        if (s->out.len >= STREAM_BLOCK)
            break; /* enough for one block; the rest comes next */
    }
    if (s->out.len == 0 && now_ms() - s->last_write_ms >= STREAM_KEEPALIVE_MS)
        buf_str(&s->out, ": keepalive\n\n");
    if (s->out.failed)
        return -1;
    return s->out.len > 0;
}

/* microhttpd's content reader: sends what there is, else parks the connection and returns
 * 0 (nothing yet); microhttpd calls again once it is resumed. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct stream *s = cls;
    if (s->out_off == s->out.len) {
        int rc = fill(s);
        if (rc < 0)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (rc == 0) {
            /* Parked until an event, the client closing, or the next keepalive or
             * credential check is due. */
            int64_t wake = s->last_write_ms + STREAM_KEEPALIVE_MS;
            if (wake > s->next_auth_ms)
                wake = s->next_auth_ms;
            s->wait.watch = s->src;
            s->wait.seen = s->cursor;
            s->wait.wake_at_ms = wake;
            return http_suspend(s->h, &s->wait) == 0 ? 0 : MHD_CONTENT_READER_END_OF_STREAM;
        }
    }
    size_t n = s->out.len - s->out_off;
    if (n > max)
        n = max;
    memcpy(buf, s->out.p + s->out_off, n);
    s->out_off += n;
    s->last_write_ms = now_ms();
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    struct stream *s = cls;
    atomic_fetch_sub(&s->h->streams, 1);
    log_debug("http: event stream closed (%d open)", atomic_load(&s->h->streams));
    buf_free(&s->out);
    free(s->call_id);
    free(s);
}

/* Takes one of the HTTP_STREAMS_MAX stream slots; 0, or -1 when all are taken. */
static int take_slot(struct http *h)
{
    int n = atomic_load(&h->streams);
    do {
        if (n >= HTTP_STREAMS_MAX)
            return -1;
    } while (!atomic_compare_exchange_weak(&h->streams, &n, n + 1));
    return 0;
}

/* Where a client that sends Last-Event-ID resumes. Returns 1 with *cursor at that event
 * (what came after it is replayed from the ring, or reported as missed when the ring no
 * longer has it); 0 with *cursor at the newest event and *restart set when the id is not
 * of this run (a client from before a restart); -1 when it is no event id at all. */
static int resume_point(struct http *h, const char *id, uint64_t *cursor, int *restart)
{
    size_t n = strlen(id);
    if (n == 0 || n > 20 || strspn(id, "0123456789") != n)
        return -1;
    unsigned long long v = strtoull(id, NULL, 10);
    uint64_t head = events_head(h->events);
    *restart = 0;
    if (v >= h->event_id_base && v - h->event_id_base <= head) {
        *cursor = v - h->event_id_base;
        return 1;
    }
    *cursor = head;
    *restart = 1;
    return 0;
}

void api_events_get(struct http_req *r)
{
    struct http *h = r->h;
    if (!h->events) {
        http_error(r, 503, "unavailable", "the event stream is not available");
        return;
    }
    const char *trace = http_query(r, "trace");
    if (trace && (!*trace || strlen(trace) > TRACE_CALL_ID_MAX)) {
        http_error(r, 400, "invalid_parameter", "trace: must be a Call-ID (1 to %d characters)",
                   TRACE_CALL_ID_MAX);
        return;
    }
    if (trace && !h->trace_events) {
        http_error(r, 503, "unavailable", "the trace event stream is not available");
        return;
    }
    struct events *src = trace ? h->trace_events : h->events;
    uint64_t cursor = events_head(src);
    int restart = 0;
    const char *last = trace ? NULL : http_req_header(r, "Last-Event-ID");
    if (last && *last && resume_point(h, last, &cursor, &restart) < 0) {
        http_error(r, 400, "invalid_parameter", "Last-Event-ID: not an event id of this server");
        return;
    }
    if (take_slot(h) != 0) {
        http_header(r, "Retry-After", "10");
        http_error(r, 503, "unavailable", "too many event streams are open (at most %d)",
                   HTTP_STREAMS_MAX);
        return;
    }
    struct stream *s = util_xcalloc(1, sizeof *s);
    s->h = h;
    s->conn = r->conn;
    s->wait.conn = r->conn;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    s->wait.fd = ci ? ci->connect_fd : -1;
    s->src = src;
    s->call_id = util_xstrdup(trace);
    s->cursor = cursor;
    s->last_write_ms = now_ms();
    s->next_auth_ms = now_ms() + STREAM_REAUTH_MS;
    s->auth = r->auth;
    s->token_id = r->token.id;
    snprintf(s->sid, sizeof s->sid, "%s", r->session_id);
    s->session_created = r->session.created_at;
    /* The first bytes go out at once, so the client sees the answer without waiting for
     * an event; a client resuming across a restart is told it missed an unknown number. */
    buf_printf(&s->out, "retry: %d\n\n", STREAM_RETRY_MS);
    if (restart)
        buf_str(&s->out, "event: overflow\ndata: {\"missed\":null}\n\n");
    if ((trace && !s->call_id) || s->out.failed) {
        stream_free(s);
        http_error(r, 500, "internal", "out of memory");
        return;
    }
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK,
                                                                  stream_read, s, stream_free);
    if (!resp) {
        stream_free(s);
        http_error(r, 500, "internal", "cannot start the event stream");
        return;
    }
    log_debug("http: event stream opened by %s (%d open)", r->client, atomic_load(&h->streams));
    http_header(r, "X-Accel-Buffering", "no"); /* a reverse proxy must not hold events back */
    http_stream(r, 200, "text/event-stream", resp);
}
