/* SIP message capture for the ladder traces. Sofia's transport layer hands every message
 * it sends or receives, byte for byte, to its dump function, tport_dump_iovec(). sipbx
 * defines that function itself (Sofia calls it through the PLT, so the executable's
 * definition wins; Sofia 1.12.11's own writes only the first piece of a message sent in
 * several): it writes one binary record per message piece (time, direction, transport,
 * peer) into a pipe that a thread of our own reads. The reader cuts TCP and TLS streams into
 * messages, finds each message's Call-ID, marks retransmissions and hands the rows to the
 * writer thread. So the stored text is exactly what was on the wire (decrypted for TLS), and
 * the SIP thread only pays for one writev(2) per message.
 *
 * Only calls are traced, not scanners: a message is stored once the SIP side has accepted
 * its Call-ID (an authenticated request, a request of a dialog we signed, a response on a
 * branch we started: trace_accept, written into the same pipe, so it comes after the
 * messages that led to it). Until then the reader holds a Call-ID's messages back, at most
 * HOLD_US and within a memory bound; what is never accepted (a 401 to a wrong password,
 * OPTIONS probes, forged requests, junk) is counted and dropped. */
#include "sip/trace.h"
#include "store/store.h"
#include "util/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sofia-sip/msg_addr.h>
#include <sofia-sip/su_md5.h>
#include <sofia-sip/tport.h>
#include <sys/uio.h>

#define PIPE_BYTES        (1 << 20) /* the SIP thread blocks only when the reader lags this much */
#define MAX_MESSAGE       70000     /* above NTATAG_MAXSIZE: nothing larger is sent or accepted */
#define RETRANS_WINDOW_US (64LL * 500 * 1000) /* 64*T1: the longest retransmission window */

#define STREAM_IDLE_US (300LL * 1000000) /* a partial TCP message is dropped after this */
#define DUMP_IOV       64                /* message pieces written in one writev(2) */

/* Holding back messages of Call-IDs not accepted (yet). A call's first INVITE, its 407 and
 * the ACK wait for the INVITE with credentials, which a phone sends at once; 64*T1 is the
 * longest anything in SIP waits for an answer. */
#define HOLD_US        RETRANS_WINDOW_US
#define HOLD_BYTES_MAX (1u << 20) /* all held messages together */
#define HOLD_PER_CALL  32         /* messages held for one Call-ID */
/* An accepted Call-ID stays accepted this long after the SIP side last accepted it (it
 * does so for each request it takes and each response it relays, and on its timers). */
#define ACCEPT_IDLE_US (40LL * 1000000)

#define REC_MAGIC 0x54584253u /* "SBXT" */
enum rec_kind { REC_RECV = 1, REC_SENT, REC_ACCEPT, REC_STOP };

/* One record in the capture pipe, followed by len bytes: the message piece, or for
 * REC_ACCEPT the Call-ID. Written and read by the same process, so native layout. */
struct rec {
    uint32_t magic;
    uint32_t kind;
    int64_t time_us;     /* when tport moved the bytes (wall clock, UTC) */
    uint32_t len;        /* bytes that follow */
    char transport[8];   /* udp, tcp, tls */
    char peer[72];       /* "addr:port" or "[v6]:port" */
    uint16_t local_port; /* sipbx's port for the transport (TLS has its own); 0: unknown */
};

/* The write end of this thread's capture pipe, for tport_dump_iovec(); -1 while capture is
 * off. Per thread: every SIP worker thread captures into its own pipe. */
static _Thread_local int dump_fd = -1;

/* A message held back until its Call-ID is accepted. */
struct held {
    struct held *next;
    struct store_trace row; /* row.raw points at the bytes after this struct */
};

struct hold {
    struct held *head, **tail;
    int64_t first_us; /* when the first message was held */
    int count;
};

struct trace {
    int rfd, wfd;
    pthread_t thread;
    int started;
    int stop; /* the stop record was read */
    struct store_writer *w;
    char local[80];
    struct strmap *seen;     /* md5 of direction + peer + bytes -> time seen (int64_t *) */
    struct strmap *streams;  /* direction + TCP peer -> struct stream (bytes not framed yet) */
    struct strmap *accepted; /* Call-ID -> last accepted (int64_t *) */
    struct strmap *held;     /* Call-ID -> struct hold */
    size_t held_bytes;
    _Atomic uint64_t untraced;
    int64_t last_prune, last_hold_prune;
    char *buf; /* records read and not consumed yet */
    size_t len, cap;
};

/* What a TCP connection (one direction) delivered that does not make a message yet. */
struct stream {
    struct buf b;
    int64_t last; /* when bytes last arrived */
};

static void stream_free(void *p)
{
    struct stream *sm = p;
    if (sm)
        buf_free(&sm->b);
    free(sm);
}

static void hold_free(void *p)
{
    struct hold *h = p;
    if (!h)
        return;
    for (struct held *m = h->head, *next; m; m = next) {
        next = m->next;
        free(m);
    }
    free(h);
}

/* What tport_dump_iovec() knows of one message piece. */
struct stamp {
    int out;
    char transport[8];
    char peer[72];
    uint16_t local_port;
    int64_t time_us;
};

/* Copies the value of the Call-ID header (or its compact form i:) into out. */
static int find_call_id(const char *msg, size_t len, char *out, size_t outlen)
{
    const char *v;
    size_t vl;
    if (!util_sip_header(msg, len, "Call-ID", 'i', &v, &vl) || vl == 0 || vl >= outlen)
        return -1;
    memcpy(out, v, vl);
    out[vl] = '\0';
    return 0;
}

static int drop_old(const char *key, void *val, void *ctx)
{
    (void)key;
    if (*(int64_t *)val < *(const int64_t *)ctx) {
        free(val);
        return STRMAP_DROP;
    }
    return STRMAP_KEEP;
}

static int drop_idle_stream(const char *key, void *val, void *ctx)
{
    (void)key;
    if (((struct stream *)val)->last < *(const int64_t *)ctx) {
        stream_free(val);
        return STRMAP_DROP;
    }
    return STRMAP_KEEP;
}

static int drop_stale_hold(const char *key, void *val, void *ctx)
{
    (void)key;
    struct trace *t = ctx;
    struct hold *h = val;
    if (util_now_us() - h->first_us <= HOLD_US)
        return STRMAP_KEEP;
    for (struct held *m = h->head; m; m = m->next)
        t->held_bytes -= m->row.raw_len;
    atomic_fetch_add_explicit(&t->untraced, (uint64_t)h->count, memory_order_relaxed);
    hold_free(h);
    return STRMAP_DROP;
}

/* Forgets, once per retransmission window, the messages seen longer ago than it and the
 * partial TCP messages nothing was added to for STREAM_IDLE_US; every second, the held
 * messages nobody accepted in time and the accepted Call-IDs idle for ACCEPT_IDLE_US. */
static void prune(struct trace *t, int64_t now)
{
    if (now - t->last_hold_prune >= 1000000) {
        strmap_foreach(t->held, drop_stale_hold, t);
        int64_t cutoff = now - ACCEPT_IDLE_US;
        strmap_foreach(t->accepted, drop_old, &cutoff);
        t->last_hold_prune = now;
    }
    if (now - t->last_prune <= RETRANS_WINDOW_US)
        return;
    int64_t cutoff = now - RETRANS_WINDOW_US;
    strmap_foreach(t->seen, drop_old, &cutoff);
    cutoff = now - STREAM_IDLE_US;
    strmap_foreach(t->streams, drop_idle_stream, &cutoff);
    t->last_prune = now;
}

/* True when the same bytes went the same way to or from the same peer within the
 * retransmission window: a retransmission (ours or the peer's). */
static int is_retransmission(struct trace *t, const struct store_trace *row)
{
    char key[40];
    su_md5_t md5;
    su_md5_init(&md5);
    su_md5_strupdate(&md5, row->direction);
    su_md5_strupdate(&md5, row->remote);
    su_md5_update(&md5, row->raw, row->raw_len);
    su_md5_hexdigest(&md5, key);
    key[32] = '\0';
    int64_t *seen = strmap_get(t->seen, key);
    if (seen && row->time_us - *seen <= RETRANS_WINDOW_US)
        return 1;
    if (!seen) {
        seen = util_xmalloc(sizeof *seen);
        strmap_put(t->seen, key, seen, NULL);
    }
    *seen = row->time_us;
    return 0;
}

/* Tells the dashboard, once the message is stored, that call_id's trace grew (a live
 * ladder fetches it then): trace.changed through the writer, which sends it after the
 * commit and once per batch. */
static void announce(struct trace *t, const char *call_id)
{
    cJSON *o = cJSON_CreateObject();
    char *json =
        o && cJSON_AddStringToObject(o, "call_id", call_id) ? cJSON_PrintUnformatted(o) : NULL;
    if (json)
        store_writer_announce(t->w, "trace.changed", json, 1);
    cJSON_free(json);
    cJSON_Delete(o);
}

/* Queues one message of an accepted Call-ID to the writer. */
static void store(struct trace *t, struct store_trace *row)
{
    row->retransmission = is_retransmission(t, row);
    if (store_writer_trace(t->w, row) == 0)
        announce(t, row->call_id);
}

/* Holds a message of a Call-ID not accepted yet; drops it (counted) beyond the bounds. */
static void hold(struct trace *t, const struct store_trace *row)
{
    struct hold *h = strmap_get(t->held, row->call_id);
    if ((h && h->count >= HOLD_PER_CALL) || t->held_bytes + row->raw_len > HOLD_BYTES_MAX) {
        atomic_fetch_add_explicit(&t->untraced, 1, memory_order_relaxed);
        return;
    }
    struct held *m = malloc(sizeof *m + row->raw_len); /* a message's size: may fail */
    if (!m) {
        atomic_fetch_add_explicit(&t->untraced, 1, memory_order_relaxed);
        return;
    }
    if (!h) {
        h = util_xcalloc(1, sizeof *h);
        h->tail = &h->head;
        h->first_us = util_now_us();
        strmap_put(t->held, row->call_id, h, NULL);
    }
    m->next = NULL;
    m->row = *row;
    m->row.raw = (char *)(m + 1);
    memcpy(m->row.raw, row->raw, row->raw_len);
    *h->tail = m;
    h->tail = &m->next;
    h->count++;
    t->held_bytes += row->raw_len;
}

static void emit(struct trace *t, const struct stamp *st, const char *msg, size_t n)
{
    struct store_trace row;
    memset(&row, 0, sizeof row);
    if (find_call_id(msg, n, row.call_id, sizeof row.call_id) != 0) {
        atomic_fetch_add_explicit(&t->untraced, 1, memory_order_relaxed);
        return; /* not SIP we could attribute (garbage) */
    }
    row.time_us = st->time_us;
    snprintf(row.direction, sizeof row.direction, "%s", st->out ? "out" : "in");
    snprintf(row.transport, sizeof row.transport, "%s", st->transport);
    /* t->local names the SIP port; a message over TLS went through the TLS port. */
    const char *colon = strrchr(t->local, ':');
    if (st->local_port && colon)
        snprintf(row.local, sizeof row.local, "%.*s:%u", (int)(colon - t->local), t->local,
                 st->local_port);
    else
        snprintf(row.local, sizeof row.local, "%s", t->local);
    snprintf(row.remote, sizeof row.remote, "%s", st->peer);
    const char *eol = memchr(msg, '\n', n);
    size_t fl = eol ? (size_t)(eol - msg) : n;
    while (fl && (msg[fl - 1] == '\r'))
        fl--;
    snprintf(row.first_line, sizeof row.first_line, "%.*s", (int)fl, msg);
    row.raw = (char *)msg;
    row.raw_len = n;
    int64_t *acc = strmap_get(t->accepted, row.call_id);
    if (acc)
        store(t, &row);
    else
        hold(t, &row);
}

/* The SIP side accepted call_id: its held messages are stored, in order, and later ones
 * go straight through. */
static void accept_call(struct trace *t, const char *call_id)
{
    int64_t *acc = strmap_get(t->accepted, call_id);
    if (!acc) {
        acc = util_xmalloc(sizeof *acc);
        strmap_put(t->accepted, call_id, acc, NULL);
    }
    *acc = util_now_us();
    struct hold *h = strmap_remove(t->held, call_id);
    if (!h)
        return;
    for (struct held *m = h->head; m; m = m->next) {
        t->held_bytes -= m->row.raw_len;
        store(t, &m->row);
    }
    hold_free(h);
}

/* The length of the first whole message in buf (after the CRLFs skipped, returned in
 * *skip), 0 when it is not all there yet, or -1 when the bytes cannot be a message. */
static long message_length(const char *buf, size_t len, size_t *skip)
{
    size_t i = 0;
    while (i < len && (buf[i] == '\r' || buf[i] == '\n'))
        i++; /* keep-alives (RFC 5626 CRLF pings) between messages */
    *skip = i;
    const char *p = buf + i, *end = buf + len;
    const char *hdr_end = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
    if (!hdr_end)
        return (size_t)(end - p) > MAX_MESSAGE ? -1 : 0;
    const char *v;
    size_t vl;
    long body = util_sip_header(p, (size_t)(hdr_end + 4 - p), "Content-Length", 'l', &v, &vl)
                    ? strtol(v, NULL, 10)
                    : 0;
    size_t total = (size_t)(hdr_end + 4 - p) + (size_t)(body > 0 ? body : 0);
    if (body < 0 || total > MAX_MESSAGE)
        return -1;
    return total <= (size_t)(end - p) ? (long)total : 0;
}

/* A record of a stream transport is whatever one read or write moved: part of a message
 * or several. The bytes are collected per connection and direction and cut into messages
 * by their Content-Length (mandatory on streams, RFC 3261 18.3). */
static void stream_feed(struct trace *t, const struct stamp *st, const char *data, size_t n)
{
    char key[128];
    snprintf(key, sizeof key, "%c%s/%s", st->out ? 'o' : 'i', st->transport, st->peer);
    struct stream *sm = strmap_get(t->streams, key);
    if (!sm) {
        sm = util_xcalloc(1, sizeof *sm);
        strmap_put(t->streams, key, sm, NULL);
    }
    buf_add(&sm->b, data, n);
    sm->last = util_now_us();
    size_t used = 0, skip;
    long m = 0;
    while (!sm->b.failed && (m = message_length(sm->b.p + used, sm->b.len - used, &skip)) > 0) {
        emit(t, st, sm->b.p + used + skip, (size_t)m);
        used += skip + (size_t)m;
    }
    if (m < 0 || sm->b.failed) {
        log_warn("trace: %s on %s, %zu bytes dropped",
                 sm->b.failed ? "out of memory" : "unframeable bytes", key, sm->b.len - used);
        atomic_fetch_add_explicit(&t->untraced, 1, memory_order_relaxed);
        used = sm->b.len;
    }
    if (used == sm->b.len) {
        strmap_remove(t->streams, key);
        stream_free(sm);
        return;
    }
    memmove(sm->b.p, sm->b.p + used, sm->b.len - used);
    sm->b.len -= used;
}

/* One record: a datagram is one message; a stream record is framed first. */
static void deliver(struct trace *t, const struct rec *r, const char *data)
{
    prune(t, util_now_us());
    if (r->kind == REC_ACCEPT) {
        char call_id[256];
        snprintf(call_id, sizeof call_id, "%.*s", (int)r->len, data);
        accept_call(t, call_id);
        return;
    }
    struct stamp st = {
        .out = r->kind == REC_SENT, .local_port = r->local_port, .time_us = r->time_us};
    memcpy(st.transport, r->transport, sizeof st.transport);
    memcpy(st.peer, r->peer, sizeof st.peer);
    st.transport[sizeof st.transport - 1] = st.peer[sizeof st.peer - 1] = '\0';
    if (strcmp(st.transport, "tcp") == 0 || strcmp(st.transport, "tls") == 0)
        stream_feed(t, &st, data, r->len);
    else
        emit(t, &st, data, r->len);
}

/* Consumes the complete records in the buffer; returns the bytes used. */
static size_t consume(struct trace *t)
{
    size_t used = 0;
    while (t->len - used >= sizeof(struct rec)) {
        struct rec r;
        memcpy(&r, t->buf + used, sizeof r);
        if (r.magic != REC_MAGIC || r.len > MAX_MESSAGE) {
            /* Only this process writes the pipe, one record per write: cannot happen. */
            log_error("trace: capture records out of step, %zu bytes dropped", t->len - used);
            return t->len;
        }
        if (t->len - used < sizeof r + r.len)
            break; /* wait for the rest */
        if (r.kind == REC_STOP) {
            t->stop = 1;
            return t->len;
        }
        deliver(t, &r, t->buf + used + sizeof r);
        used += sizeof r + r.len;
    }
    return used;
}

/* Reads records until the stop record or every writer is gone. While the pipe is quiet
 * it still prunes every second: the messages held for a Call-ID nobody accepted are
 * counted and let go on time, not when the next message happens to come. */
static void *reader_main(void *arg)
{
    struct trace *t = arg;
    for (;;) {
        struct pollfd p = {.fd = t->rfd, .events = POLLIN};
        int ready = poll(&p, 1, 1000);
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready == 0) {
            prune(t, util_now_us());
            continue;
        }
        ssize_t n = read(t->rfd, t->buf + t->len, t->cap - t->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* every writer closed */
        t->len += (size_t)n;
        size_t used = consume(t);
        memmove(t->buf, t->buf + used, t->len - used);
        t->len -= used;
        if (t->stop)
            break;
    }
    return NULL;
}

static void trace_free(struct trace *t)
{
    strmap_destroy(t->seen, free);
    strmap_destroy(t->streams, stream_free);
    strmap_destroy(t->accepted, free);
    strmap_destroy(t->held, hold_free);
    free(t->buf);
    free(t);
}

int trace_create(struct trace **out, struct store_writer *w, const char *local)
{
    struct trace *t = calloc(1, sizeof *t);
    if (!t)
        return ENOMEM;
    int fds[2];
    errno = 0;
    /* Room for two whole records: the reader always has space for the rest of one. */
    t->cap = 2 * (sizeof(struct rec) + MAX_MESSAGE);
    if (strmap_create(&t->seen) != 0 || strmap_create(&t->streams) != 0 ||
        strmap_create(&t->accepted) != 0 || strmap_create(&t->held) != 0 ||
        !(t->buf = malloc(t->cap)) || pipe2(fds, O_CLOEXEC) != 0) {
        int e = errno ? errno : ENOMEM;
        trace_free(t);
        return e;
    }
    fcntl(fds[1], F_SETPIPE_SZ, PIPE_BYTES); /* best effort: the default is 64 KiB */
    t->rfd = fds[0];
    t->wfd = fds[1];
    t->w = w;
    snprintf(t->local, sizeof t->local, "%s", local);
    t->started = pthread_create(&t->thread, NULL, reader_main, t) == 0;
    if (!t->started) {
        close(fds[0]);
        close(fds[1]);
        trace_free(t);
        return EAGAIN;
    }
    dump_fd = t->wfd;
    *out = t;
    return 0;
}

/* Writes one record with its payload pieces in one writev(2). The SIP thread is the only
 * writer of its pipe: a write cut short (a signal) goes on where it stopped, so records
 * never interleave. */
static void put_record(int fd, struct rec *r, struct iovec *v, size_t nv)
{
    v[0].iov_base = r;
    v[0].iov_len = sizeof *r;
    struct iovec *p = v;
    while (nv > 0) {
        ssize_t w = writev(fd, p, (int)nv);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        while (nv > 0 && (size_t)w >= p->iov_len) {
            w -= (ssize_t)p->iov_len;
            p++;
            nv--;
        }
        if (nv > 0) {
            p->iov_base = (char *)p->iov_base + w;
            p->iov_len -= (size_t)w;
        }
    }
}

static void put_simple(int fd, enum rec_kind kind, const char *payload)
{
    struct rec r;
    memset(&r, 0, sizeof r);
    r.magic = REC_MAGIC;
    r.kind = kind;
    r.time_us = util_now_us();
    size_t n = payload ? strlen(payload) : 0;
    r.len = (uint32_t)(n < 255 ? n : 255);
    struct iovec v[2] = {{0}, {(void *)payload, r.len}};
    put_record(fd, &r, v, r.len ? 2 : 1);
}

void trace_accept(struct trace *t, const char *call_id)
{
    if (t && call_id && dump_fd >= 0)
        put_simple(dump_fd, REC_ACCEPT, call_id);
}

uint64_t trace_untraced(const struct trace *t)
{
    return t ? atomic_load_explicit(&t->untraced, memory_order_relaxed) : 0;
}

void trace_destroy(struct trace *t)
{
    if (!t)
        return;
    /* Sofia has written its last record (the agent is gone): what follows our stop record
     * in the pipe is nothing, so the reader drains everything before it stops. */
    dump_fd = -1;
    put_simple(t->wfd, REC_STOP, NULL);
    pthread_join(t->thread, NULL);
    close(t->rfd);
    close(t->wfd);
    uint64_t dropped = trace_untraced(t);
    if (dropped)
        log_info("trace: %llu message(s) of unaccepted requests were not stored",
                 (unsigned long long)dropped);
    trace_free(t);
}

/* Declared in Sofia's private tport_internal.h; see the top of this file for why sipbx
 * defines it. */
void tport_dump_iovec(tport_t const *self, msg_t *msg, size_t n, su_iovec_t const iov[],
                      size_t iovused, char const *what, char const *how);

/** Replaces Sofia's dump of the n bytes in iov[] that self sent or received ("sent"/"to"
 *  or "recv"/"from"): one record with the whole piece, one writev(2). */
void tport_dump_iovec(tport_t const *self, msg_t *msg, size_t n, su_iovec_t const iov[],
                      size_t iovused, char const *what, char const *how)
{
    (void)how;
    if (dump_fd < 0 || !self || !msg || n > MAX_MESSAGE)
        return;
    struct rec r;
    memset(&r, 0, sizeof r);
    r.magic = REC_MAGIC;
    r.kind = what[0] == 's' ? REC_SENT : REC_RECV;
    r.time_us = util_now_us();
    r.len = (uint32_t)n;
    su_sockaddr_t const *su = msg_addr(msg);
    char addr[64] = "?";
    if (su->su_family == AF_INET || su->su_family == AF_INET6)
        inet_ntop(su->su_family, SU_ADDR(su), addr, sizeof addr);
    snprintf(r.peer, sizeof r.peer, su->su_family == AF_INET6 ? "[%s]:%u" : "%s:%u", addr,
             ntohs(su->su_port));
    tp_name_t const *tpn = tport_name(self);
    snprintf(r.transport, sizeof r.transport, "%s", tpn && tpn->tpn_proto ? tpn->tpn_proto : "udp");
    for (char *p = r.transport; *p; p++)
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    tp_name_t const *pri = tport_name(tport_parent(self)); /* the listening transport */
    r.local_port = pri && pri->tpn_port ? (uint16_t)atoi(pri->tpn_port) : 0;

    struct iovec v[DUMP_IOV + 1];
    size_t nv = 1, left = n, total = 0;
    char *copy = NULL;
    for (size_t i = 0; i < iovused; i++)
        total += iov[i].siv_len;
    if (total < n)
        return; /* cannot happen: the pieces hold the n bytes */
    if (iovused > DUMP_IOV) {
        /* A message in very many pieces: one copy, so the record is still one write. */
        if (!(copy = malloc(n)))
            return;
        for (size_t i = 0, off = 0; i < iovused && off < n; i++) {
            size_t len = iov[i].siv_len < n - off ? iov[i].siv_len : n - off;
            memcpy(copy + off, iov[i].siv_base, len);
            off += len;
        }
        v[nv].iov_base = copy;
        v[nv++].iov_len = n;
        left = 0;
    }
    for (size_t i = 0; i < iovused && left > 0; i++) {
        size_t len = iov[i].siv_len < left ? iov[i].siv_len : left;
        v[nv].iov_base = iov[i].siv_base;
        v[nv++].iov_len = len;
        left -= len;
    }
    put_record(dump_fd, &r, v, nv);
    free(copy);
}
