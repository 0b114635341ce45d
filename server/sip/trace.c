/* SIP message capture for the ladder traces. Sofia's transport layer writes every message
 * it sends or receives, byte for byte, to its dump file (TPTAG_DUMP); we make that file a
 * pipe and read it on a thread of our own, which frames the records, finds each message's
 * Call-ID, marks retransmissions and hands the rows to the writer thread. So the stored text
 * is exactly what was on the wire, and the SIP thread only pays for one write(2) per message. */
#include "sip/trace.h"
#include "store/store.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <sofia-sip/su_md5.h>

#define PIPE_BYTES        (1 << 20) /* the SIP thread blocks only when the reader lags this much */
#define MAX_MESSAGE       70000     /* above NTATAG_MAXSIZE: nothing larger is sent or accepted */
#define RETRANS_WINDOW_US (64LL * 500 * 1000) /* 64*T1: the longest retransmission window */

#define STOP_LINE "sipbx-trace-stop\n"

struct trace {
    int rfd, wfd;
    pthread_t thread;
    int started;
    int stop; /* the stop line was read */
    struct store_writer *w;
    char local[80];
    struct strmap *seen; /* md5 of direction + peer + bytes -> time seen (int64_t *) */
    int64_t last_prune;
    char buf[2 * MAX_MESSAGE + 512];
    size_t len;
};

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
    const char *p = msg, *end = msg + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        size_t n = (size_t)(eol - p);
        if (n <= 1)
            break; /* blank line: end of headers */
        const char *v = NULL;
        if (n > 8 && strncasecmp(p, "Call-ID", 7) == 0 && (p[7] == ':' || p[7] == ' '))
            v = p + 7;
        else if (n > 2 && (p[0] == 'i' || p[0] == 'I') && (p[1] == ':' || p[1] == ' '))
            v = p + 1;
        if (v) {
            while (v < eol && (*v == ' ' || *v == '\t' || *v == ':'))
                v++;
            const char *e = eol;
            while (e > v && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
                e--;
            size_t vl = (size_t)(e - v);
            if (vl == 0 || vl >= outlen)
                return -1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return 0;
        }
        p = eol + 1;
    }
    return -1;
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
    if (now - t->last_prune > RETRANS_WINDOW_US) {
        int64_t cutoff = now - RETRANS_WINDOW_US;
        strmap_foreach(t->seen, drop_old, &cutoff);
        t->last_prune = now;
    }
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
    store_writer_trace(t->w, &row);
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
        emit(t, &st, p + head, st.bytes);
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
    if (strmap_create(&t->seen) != 0 || pipe2(fds, O_CLOEXEC) != 0) {
        int e = errno ? errno : ENOMEM;
        strmap_destroy(t->seen, free);
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
        free(t);
        return EAGAIN;
    }
    *out = t;
    return 0;
}

void trace_destroy(struct trace *t)
{
    if (!t)
        return;
    /* Sofia has written its last record (the agent is gone): what follows our stop line
     * in the pipe is nothing, so the reader drains everything before it stops. */
    if (write(t->wfd, STOP_LINE, sizeof STOP_LINE - 1) < 0)
        log_warn("trace: cannot stop the capture thread cleanly: %s", strerror(errno));
    pthread_join(t->thread, NULL);
    close(t->rfd);
    close(t->wfd);
    strmap_destroy(t->seen, free);
    free(t);
}
