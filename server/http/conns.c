/* The HTTP server's connection limits: how many connections one source (an IPv4 address
 * or an IPv6 /64) may hold, how many all together may hold, and an absolute deadline by
 * which a connection must have delivered its request. libmicrohttpd's own timeout starts
 * again with every byte, so a client trickling one byte at a time kept a connection for
 * ever; here the clock starts when the connection is accepted (or its previous answer was
 * sent) and stops only once the whole request, headers and body, is in. */
#include "http/http_int.h"
#include "util/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define LOG_INTERVAL_MS 60000 /* at most one line per source this often */
#define SOURCES_MAX     8192  /* sources remembered without a connection open */
#define SOURCE_KEY_MAX  (INET6_ADDRSTRLEN + 4)

/* One source of connections. It stays while it has connections open or something to
 * report, and until a minute after its last line (so that lines stay a minute apart). */
struct source {
    char key[SOURCE_KEY_MAX];
    int open;
    unsigned refused, full, timed_out, evicted; /* since its last line */
    int64_t logged_ms;                          /* when its last line was written, or 0 */
};

/* One connection: libmicrohttpd's socket context for it. */
struct conn {
    struct conn *prev, *next;
    struct source *src; /* NULL when there was no room to track its source */
    int fd;
    int64_t since_ms;    /* when the request now being read could begin */
    int64_t deadline_ms; /* by when it must be complete */
    int reading;         /* the request is not complete yet */
    int cut;             /* shut down by us; libmicrohttpd closes it */
};

struct http_conns {
    pthread_mutex_t lock;
    struct strmap *sources; /* key -> struct source */
    struct conn *head;      /* every open connection */
    int open;
    int max_open, per_source, deadline_ms, keepalive_ms;
    _Atomic uint64_t refused_source, refused_full, timed_out, evicted;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The source key of addr: an IPv4 address as such (also when mapped into IPv6), an IPv6
 * address by its /64, which one subscriber usually gets whole. */
static void source_key(const struct sockaddr *sa, char *out, size_t outlen)
{
    snprintf(out, outlen, "?");
    if (!sa)
        return;
    if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)outlen);
    } else if (sa->sa_family == AF_INET6) {
        struct in6_addr a = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(&a)) {
            inet_ntop(AF_INET, &a.s6_addr[12], out, (socklen_t)outlen);
            return;
        }
        memset(&a.s6_addr[8], 0, 8);
        char text[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &a, text, sizeof text);
        snprintf(out, outlen, "%s/64", text);
    }
}

int http_conns_create(struct http_conns **out, int max_open, int per_source, int deadline_ms,
                      int keepalive_ms)
{
    struct http_conns *c = calloc(1, sizeof *c);
    if (!c || strmap_create(&c->sources) != 0) {
        free(c);
        return ENOMEM;
    }
    pthread_mutex_init(&c->lock, NULL);
    c->max_open = max_open;
    c->per_source = per_source;
    c->deadline_ms = deadline_ms;
    c->keepalive_ms = keepalive_ms;
    *out = c;
    return 0;
}

void http_conns_destroy(struct http_conns *c)
{
    if (!c)
        return;
    /* Every connection is closed by now (the daemon is stopped), so every one has been
     * through its CLOSED notification. */
    strmap_destroy(c->sources, free);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* Writes the line about s: what happened to its connections since its last line. */
static void log_source(struct http_conns *c, struct source *s, int64_t now)
{
    struct buf b = {0};
    if (s->refused)
        buf_printf(&b, ", %u refused (at most %d open from one source)", s->refused, c->per_source);
    if (s->full)
        buf_printf(&b, ", %u refused (the server had %d open)", s->full, c->max_open);
    if (s->timed_out)
        buf_printf(&b, ", %u closed (request not complete within %d s)", s->timed_out,
                   c->deadline_ms / 1000);
    if (s->evicted)
        buf_printf(&b, ", %u closed early to make room (request not complete)", s->evicted);
    if (!b.failed && b.len > 2)
        log_warn("http: connections from %s: %.*s%s", s->key, (int)b.len - 2, b.p + 2,
                 s->logged_ms ? " in the last minute" : "");
    buf_free(&b);
    s->refused = s->full = s->timed_out = s->evicted = 0;
    s->logged_ms = now;
}

/* Something happened to a connection of s: a line now, unless s had one within the minute
 * (the sweep writes the next one once the minute is over). */
static void note(struct http_conns *c, struct source *s, int64_t now)
{
    if (s && (!s->logged_ms || now - s->logged_ms >= LOG_INTERVAL_MS))
        log_source(c, s, now);
}

/* The entry of key, made when missing; NULL when too many are tracked.
 * Called with the lock held. */
static struct source *source_get(struct http_conns *c, const char *key, int create)
{
    struct source *s = strmap_get(c->sources, key);
    if (s || !create || strmap_count(c->sources) >= (size_t)(SOURCES_MAX + c->max_open))
        return s;
    s = util_xcalloc(1, sizeof *s);
    snprintf(s->key, sizeof s->key, "%s", key);
    strmap_put(c->sources, key, s, NULL);
    return s;
}

/* Ends the connection (to libmicrohttpd it looks closed by the client). Called with the
 * lock held, which keeps the descriptor ours: libmicrohttpd reports a connection closed
 * (http_conns_notify, which takes the lock) before it closes its descriptor. */
static void cut(struct conn *k)
{
    shutdown(k->fd, SHUT_RDWR);
    k->cut = 1;
}

enum MHD_Result http_conns_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    (void)addrlen;
    struct http_conns *c = cls;
    char key[SOURCE_KEY_MAX];
    source_key(addr, key, sizeof key);
    int64_t now = mono_ms();
    enum MHD_Result ok = MHD_YES;
    pthread_mutex_lock(&c->lock);
    struct source *s = source_get(c, key, 0);
    if (s && s->open >= c->per_source) {
        atomic_fetch_add(&c->refused_source, 1);
        s->refused++;
        note(c, s, now);
        ok = MHD_NO;
    } else if (c->open >= c->max_open) {
        /* Full: the connection that has waited longest for its request makes room, so
         * slow clients cannot keep new ones out. Answered requests are never cut. */
        struct conn *victim = NULL;
        for (struct conn *k = c->head; k; k = k->next)
            if (k->reading && !k->cut && (!victim || k->since_ms < victim->since_ms))
                victim = k;
        if (victim) {
            cut(victim);
            atomic_fetch_add(&c->evicted, 1);
            if (victim->src) {
                victim->src->evicted++;
                note(c, victim->src, now);
            }
        } else {
            atomic_fetch_add(&c->refused_full, 1);
            if ((s = source_get(c, key, 1)) != NULL) {
                s->full++;
                note(c, s, now);
            }
            ok = MHD_NO;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return ok;
}

static void conn_started(struct http_conns *c, struct MHD_Connection *mc, void **ctx)
{
    const union MHD_ConnectionInfo *fd =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
    const union MHD_ConnectionInfo *ca =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!fd)
        return; /* untracked: only the global limit of libmicrohttpd applies */
    struct conn *k = util_xcalloc(1, sizeof *k);
    char key[SOURCE_KEY_MAX];
    source_key(ca ? ca->client_addr : NULL, key, sizeof key);
    k->fd = fd->connect_fd;
    k->since_ms = mono_ms();
    k->deadline_ms = k->since_ms + c->deadline_ms;
    k->reading = 1;
    pthread_mutex_lock(&c->lock);
    k->src = source_get(c, key, 1);
    if (k->src)
        k->src->open++;
    c->open++;
    k->next = c->head;
    if (c->head)
        c->head->prev = k;
    c->head = k;
    pthread_mutex_unlock(&c->lock);
    *ctx = k;
}

static void conn_closed(struct http_conns *c, void **ctx)
{
    struct conn *k = *ctx;
    if (!k)
        return;
    pthread_mutex_lock(&c->lock);
    if (k->prev)
        k->prev->next = k->next;
    else
        c->head = k->next;
    if (k->next)
        k->next->prev = k->prev;
    c->open--;
    if (k->src)
        k->src->open--;
    pthread_mutex_unlock(&c->lock);
    free(k);
    *ctx = NULL;
}

void http_conns_notify(void *cls, struct MHD_Connection *mc, void **socket_context,
                       enum MHD_ConnectionNotificationCode toe)
{
    if (toe == MHD_CONNECTION_NOTIFY_STARTED)
        conn_started(cls, mc, socket_context);
    else if (toe == MHD_CONNECTION_NOTIFY_CLOSED)
        conn_closed(cls, socket_context);
}

static struct conn *conn_of(struct MHD_Connection *mc)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

void http_conns_request_read(struct http_conns *c, struct MHD_Connection *mc)
{
    struct conn *k = conn_of(mc);
    if (!k)
        return;
    pthread_mutex_lock(&c->lock);
    k->reading = 0;
    pthread_mutex_unlock(&c->lock);
}

void http_conns_request_done(struct http_conns *c, struct MHD_Connection *mc)
{
    struct conn *k = conn_of(mc);
    if (!k)
        return;
    /* A kept-alive connection that stays silent is closed by libmicrohttpd's idle timeout
     * (quietly: browsers keep idle connections); one that trickles its next request
     * instead is cut by keepalive_ms, a little later, and counted. */
    pthread_mutex_lock(&c->lock);
    k->reading = 1;
    k->since_ms = mono_ms();
    k->deadline_ms = k->since_ms + c->keepalive_ms;
    pthread_mutex_unlock(&c->lock);
}

struct sweep {
    struct http_conns *c;
    int64_t now;
};

/* The line a source is due (what happened since its last one, a minute ago); a source with
 * nothing open or to tell is forgotten. */
static int log_due(const char *key, void *val, void *ctx)
{
    (void)key;
    struct source *s = val;
    const struct sweep *sw = ctx;
    if (sw->now - s->logged_ms < LOG_INTERVAL_MS)
        return STRMAP_KEEP;
    if (s->refused || s->full || s->timed_out || s->evicted) {
        log_source(sw->c, s, sw->now);
        return STRMAP_KEEP;
    }
    if (s->open > 0)
        return STRMAP_KEEP;
    free(s);
    return STRMAP_DROP;
}

void http_conns_sweep(struct http_conns *c)
{
    int64_t now = mono_ms();
    pthread_mutex_lock(&c->lock);
    for (struct conn *k = c->head; k; k = k->next) {
        if (!k->reading || k->cut || now < k->deadline_ms)
            continue;
        cut(k);
        atomic_fetch_add(&c->timed_out, 1);
        if (k->src) {
            k->src->timed_out++;
            note(c, k->src, now);
        }
    }
    struct sweep sw = {c, now};
    strmap_foreach(c->sources, log_due, &sw);
    pthread_mutex_unlock(&c->lock);
}

void http_conns_stats(struct http_conns *c, struct http_conns_stats *out)
{
    pthread_mutex_lock(&c->lock);
    out->open = c->open;
    pthread_mutex_unlock(&c->lock);
    out->max_open = c->max_open;
    out->per_source = c->per_source;
    out->refused_source = atomic_load(&c->refused_source);
    out->refused_full = atomic_load(&c->refused_full);
    out->timed_out = atomic_load(&c->timed_out);
    out->evicted = atomic_load(&c->evicted);
}
