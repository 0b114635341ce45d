/* SIP message capture for the ladder traces. Sofia's transport layer hands every message
 * it sends or receives, byte for byte, to its dump function (when TPORT_DUMP names a file);
 * we make that file a pipe and read it on a thread of our own, which frames the records,
 * cuts TCP streams into messages, finds each message's Call-ID, marks retransmissions and
 * hands the rows to the writer thread. So the stored text is exactly what was on the wire,
 * and the SIP thread only pays for one writev(2) per message.
 *
 * Sofia 1.12.11's own tport_dump_iovec() writes only the first piece of a message sent in
 * several (fwrite(..., len, 1) != len stops its loop), so sent messages lost their body and
 * the byte count framing the record swallowed the records after it. The function below
 * replaces it (Sofia calls it through the PLT, so the executable's definition wins) and
 * writes the whole message in the same record format. */
#include "sip/trace.h"
#include "store/store.h"
#include "util/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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

#define STOP_LINE "sipbx-trace-stop\n"

/* The write end of the capture pipe, for tport_dump_iovec(); -1 while capture is off. Set
 * and read on the SIP thread only (trace_create and trace_destroy run there too). */
static int dump_fd = -1;

struct trace {
    int rfd, wfd;
    pthread_t thread;
    int started;
    int stop; /* the stop line was read */
    struct store_writer *w;
    char local[80];
    struct strmap *seen;    /* md5 of direction + peer + bytes -> time seen (int64_t *) */
    struct strmap *streams; /* direction + TCP peer -> struct stream (bytes not framed yet) */
    int64_t last_prune;
    char buf[2 * MAX_MESSAGE + 512];
    size_t len;
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

/* The header tport writes before each message:
 * "recv 123 bytes from udp/[127.0.0.1]:5060 at 12:34:56.123456:\n" (or "sent ... to"). */
struct stamp {
    int out;
    size_t bytes;
    char transport[8];
    char peer[80];
    int64_t tod_us; /* time of day, microseconds (UTC) */
};

static int parse_stamp(const char *line, struct stamp *st)
{
    char what[8], dir[8], proto[8], addr[64];
    unsigned long n;
    unsigned port, h, m, sec;
    unsigned long us;
    if (sscanf(line, "%7s %lu bytes %7s %7[^/]/[%63[^]]]:%u at %u:%u:%u.%lu:", what, &n, dir, proto,
               addr, &port, &h, &m, &sec, &us) != 10)
        return -1;
    if (strcmp(what, "recv") != 0 && strcmp(what, "sent") != 0)
        return -1;
    st->out = what[0] == 's';
    st->bytes = n;
    snprintf(st->transport, sizeof st->transport, "%s", proto);
    for (char *p = st->transport; *p; p++)
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    if (strchr(addr, ':'))
        snprintf(st->peer, sizeof st->peer, "[%s]:%u", addr, port);
    else
        snprintf(st->peer, sizeof st->peer, "%s:%u", addr, port);
    st->tod_us = ((int64_t)h * 3600 + m * 60 + sec) * 1000000 + (int64_t)us;
    return 0;
}

/* The wall-clock time of a stamp: today's date with the stamp's time of day, or
 * yesterday's when the stamp is from just before midnight. */
static int64_t stamp_time(int64_t tod_us)
{
    const int64_t day = 86400LL * 1000000;
    int64_t now = util_now_us();
    int64_t midnight = now - now % day;
    int64_t t = midnight + tod_us;
    return t > now + 60LL * 1000000 ? t - day : t;
}

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

/* Forgets, once per retransmission window, the messages seen longer ago than it and the
 * partial TCP messages nothing was added to for STREAM_IDLE_US. */
static void prune(struct trace *t, int64_t now)
{
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
static int is_retransmission(struct trace *t, const struct stamp *st, const char *msg, size_t n,
                             int64_t now)
{
    char key[40];
    su_md5_t md5;
    su_md5_init(&md5);
    su_md5_update(&md5, st->out ? "o" : "i", 1);
    su_md5_strupdate(&md5, st->peer);
    su_md5_update(&md5, msg, n);
    su_md5_hexdigest(&md5, key);
    key[32] = '\0';
    int64_t *seen = strmap_get(t->seen, key);
    if (seen && now - *seen <= RETRANS_WINDOW_US)
        return 1;
    if (!seen) {
        seen = malloc(sizeof *seen);
        if (!seen || strmap_put(t->seen, key, seen, NULL) != 0) {
            free(seen);
            return 0;
        }
    }
    *seen = now;
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

static void emit(struct trace *t, const struct stamp *st, const char *msg, size_t n)
{
    struct store_trace row;
    memset(&row, 0, sizeof row);
    if (find_call_id(msg, n, row.call_id, sizeof row.call_id) != 0)
        return; /* not SIP we could attribute (keep-alive CRLF, garbage) */
    row.time_us = stamp_time(st->tod_us);
    snprintf(row.direction, sizeof row.direction, "%s", st->out ? "out" : "in");
    snprintf(row.transport, sizeof row.transport, "%s", st->transport);
    snprintf(row.local, sizeof row.local, "%s", t->local);
    snprintf(row.remote, sizeof row.remote, "%s", st->peer);
    const char *eol = memchr(msg, '\n', n);
    size_t fl = eol ? (size_t)(eol - msg) : n;
    while (fl && (msg[fl - 1] == '\r'))
        fl--;
    snprintf(row.first_line, sizeof row.first_line, "%.*s", (int)fl, msg);
    row.retransmission = is_retransmission(t, st, msg, n, row.time_us);
    row.raw = (char *)msg;
    row.raw_len = n;
    if (store_writer_trace(t->w, &row) == 0)
        announce(t, row.call_id);
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
        sm = calloc(1, sizeof *sm);
        if (!sm || strmap_put(t->streams, key, sm, NULL) != 0) {
            free(sm);
            return;
        }
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

/* A record: a datagram is one message; a stream record is framed first. */
static void deliver(struct trace *t, const struct stamp *st, const char *data, size_t n)
{
    prune(t, util_now_us());
    if (strcmp(st->transport, "tcp") == 0 || strcmp(st->transport, "tls") == 0)
        stream_feed(t, st, data, n);
    else
        emit(t, st, data, n);
}

/* Consumes complete records from the buffer; returns the bytes used. */
static size_t consume(struct trace *t)
{
    size_t used = 0;
    for (;;) {
        char *p = t->buf + used;
        size_t avail = t->len - used;
        char *nl = memchr(p, '\n', avail);
        if (!nl)
            break;
        *nl = '\0';
        if (strcmp(p, "sipbx-trace-stop") == 0) {
            t->stop = 1;
            return t->len;
        }
        struct stamp st;
        if (parse_stamp(p, &st) != 0 || st.bytes > MAX_MESSAGE) {
            used += (size_t)(nl - p) + 1; /* a banner line or noise: skip it */
            continue;
        }
        size_t head = (size_t)(nl - p) + 1;
        if (avail < head + st.bytes + 2) {
            *nl = '\n';
            break; /* wait for the rest */
        }
        deliver(t, &st, p + head, st.bytes);
        used += head + st.bytes;
        if (t->buf[used] == '\v' && t->buf[used + 1] == '\n')
            used += 2;
    }
    return used;
}

static void *reader_main(void *arg)
{
    struct trace *t = arg;
    for (;;) {
        if (t->len == sizeof t->buf) {
            t->len = 0; /* cannot happen with bounded messages; resynchronise if it does */
        }
        ssize_t n = read(t->rfd, t->buf + t->len, sizeof t->buf - t->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* every writer closed: the agent is gone */
        t->len += (size_t)n;
        size_t used = consume(t);
        memmove(t->buf, t->buf + used, t->len - used);
        t->len -= used;
        if (t->stop)
            break;
    }
    return NULL;
}

int trace_create(struct trace **out, struct store_writer *w, const char *local, char *dump_path,
                 size_t pathlen)
{
    struct trace *t = calloc(1, sizeof *t);
    if (!t)
        return ENOMEM;
    int fds[2];
    errno = 0;
    if (strmap_create(&t->seen) != 0 || strmap_create(&t->streams) != 0 ||
        pipe2(fds, O_CLOEXEC) != 0) {
        int e = errno ? errno : ENOMEM;
        strmap_destroy(t->seen, free);
        strmap_destroy(t->streams, stream_free);
        free(t);
        return e;
    }
    fcntl(fds[1], F_SETPIPE_SZ, PIPE_BYTES); /* best effort: the default is 64 KiB */
    t->rfd = fds[0];
    t->w = w;
    snprintf(t->local, sizeof t->local, "%s", local);
    /* Sofia opens the dump by name; the write end stays open here until trace_destroy so
     * the reader sees end-of-file only when both Sofia and we have closed it. */
    snprintf(dump_path, pathlen, "/proc/self/fd/%d", fds[1]);
    t->wfd = fds[1];
    t->started = pthread_create(&t->thread, NULL, reader_main, t) == 0;
    if (!t->started) {
        close(fds[0]);
        close(fds[1]);
        strmap_destroy(t->seen, free);
        strmap_destroy(t->streams, stream_free);
        free(t);
        return EAGAIN;
    }
    dump_fd = t->wfd;
    *out = t;
    return 0;
}

void trace_destroy(struct trace *t)
{
    if (!t)
        return;
    /* Sofia has written its last record (the agent is gone): what follows our stop line
     * in the pipe is nothing, so the reader drains everything before it stops. */
    dump_fd = -1;
    if (write(t->wfd, STOP_LINE, sizeof STOP_LINE - 1) < 0)
        log_warn("trace: cannot stop the capture thread cleanly: %s", strerror(errno));
    pthread_join(t->thread, NULL);
    close(t->rfd);
    close(t->wfd);
    strmap_destroy(t->seen, free);
    strmap_destroy(t->streams, stream_free);
    free(t);
}

/* Declared in Sofia's private tport_internal.h; see the top of this file for why sipbx
 * defines it. */
void tport_dump_iovec(tport_t const *self, msg_t *msg, size_t n, su_iovec_t const iov[],
                      size_t iovused, char const *what, char const *how);

/** Replaces Sofia's dump of the n bytes in iov[] that self sent or received ("sent"/"to"
 *  or "recv"/"from"): one record in Sofia's format, the whole message, one writev(2). */
void tport_dump_iovec(tport_t const *self, msg_t *msg, size_t n, su_iovec_t const iov[],
                      size_t iovused, char const *what, char const *how)
{
    if (dump_fd < 0 || !self || !msg)
        return;
    su_sockaddr_t const *su = msg_addr(msg);
    char addr[64] = "?", stamp[160];
    if (su->su_family == AF_INET || su->su_family == AF_INET6)
        inet_ntop(su->su_family, SU_ADDR(su), addr, sizeof addr);
    int64_t tod = util_now_us() % (86400LL * 1000000);
    tp_name_t const *tpn = tport_name(self);
    int sl = snprintf(stamp, sizeof stamp, "%s %zu bytes %s %s/[%s]:%u at %02d:%02d:%02d.%06d:\n",
                      what, n, how, tpn && tpn->tpn_proto ? tpn->tpn_proto : "udp", addr,
                      ntohs(su->su_port), (int)(tod / 3600000000LL), (int)(tod / 60000000 % 60),
                      (int)(tod / 1000000 % 60), (int)(tod % 1000000));
    if (sl < 0 || (size_t)sl >= sizeof stamp)
        return;
    struct iovec v[DUMP_IOV + 2];
    size_t nv = 0, left = n, total = 0;
    char *copy = NULL;
    v[nv].iov_base = stamp;
    v[nv++].iov_len = (size_t)sl;
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
    v[nv].iov_base = (void *)"\v\n";
    v[nv++].iov_len = 2;
    /* The SIP thread is the only writer: a write cut short (a signal) goes on where it
     * stopped, so records never interleave. */
    struct iovec *p = v;
    while (nv > 0) {
        ssize_t w = writev(dump_fd, p, (int)nv);
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
    free(copy);
}
