/* The guard of SIP connections (TCP and TLS): a connection must earn its file descriptor.
 * No source address gets more than cfg->tcp_per_source connections that have not been
 * trusted yet (a new one beyond that is closed as it is accepted), and a connection that
 * delivers no complete message within CONN_FIRST_MS of opening, or no accepted request
 * (authenticated, or of a signed dialog) within CONN_TRUST_MS, is shut down.
 *
 * Sofia's transports have no hook at accept time and no way to walk all their connections
 * (tport_secondary() returns the root of a search tree, so tport_next() from it misses the
 * left half). So sipbx defines accept(2) itself, as it does tport_dump_iovec() (sip/trace.c):
 * Sofia is the only library of the process that calls accept (libmicrohttpd uses accept4),
 * and the executable's definition is the one its calls reach. It accepts with accept4(2) and
 * hands the new connection to the guard of the calling thread (a SIP worker), which keeps
 * its own table keyed by the peer's address and port. A connection is shut down at the
 * socket (shutdown(2)); Sofia sees the end of the stream and closes it as it would any
 * other. Before that the descriptor is checked to still be the same socket (its inode). */
#include "sip/sip_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sofia-sip/nta_tport.h>
#include <sofia-sip/tport.h>

#define CONN_FIRST_MS 10000 /* a first complete SIP message within this */
#define CONN_TRUST_MS 32000 /* an accepted request within this (64*T1) */

struct conn {
    int fd;
    ino_t ino;         /* of the socket: tells it from a later one on the same fd number */
    int64_t opened_ms; /* accepted (wall clock) */
    int complete;      /* delivered a whole SIP message */
    int trusted;       /* delivered an accepted request */
    int closing;       /* shut down by the guard */
    char source[INET6_ADDRSTRLEN];
};

struct conns {
    struct strmap *map;     /* "address|port" of the peer -> struct conn */
    struct strmap *pending; /* source address -> untrusted open connections (int *) */
};

/* The guard of the SIP thread that runs this code: accept() is called by Sofia on it. */
static _Thread_local struct sip *guard;

int conns_create(struct conns **out)
{
    struct conns *c = calloc(1, sizeof *c);
    if (!c || strmap_create(&c->map) != 0 || strmap_create(&c->pending) != 0) {
        if (c)
            strmap_destroy(c->map, free);
        free(c);
        return ENOMEM;
    }
    *out = c;
    return 0;
}

void conns_destroy(struct conns *c)
{
    if (!c)
        return;
    if (guard && guard->conns == c)
        guard = NULL;
    strmap_destroy(c->map, free);
    strmap_destroy(c->pending, free);
    free(c);
}

void conns_bind(struct sip *s)
{
    guard = s;
}

static int64_t now_ms(void)
{
    return util_now_us() / 1000;
}

/* "address|port" of a peer, and its address alone. */
static int peer_key(const struct sockaddr *sa, char *key, size_t keylen, char *addr, size_t alen)
{
    int port;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)sa;
        inet_ntop(AF_INET, &in->sin_addr, addr, (socklen_t)alen);
        port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const void *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, addr, (socklen_t)alen);
        port = ntohs(in6->sin6_port);
    } else {
        return -1;
    }
    snprintf(key, keylen, "%s|%d", addr, port);
    return 0;
}

/* True when k's descriptor is still the socket the guard accepted. */
static int still_ours(const struct conn *k)
{
    struct stat st;
    return fstat(k->fd, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == k->ino;
}

/* Adds d to the untrusted open connections of source; returns the new count. */
static int pending_add(struct conns *c, const char *source, int d)
{
    int *n = strmap_get(c->pending, source);
    if (!n) {
        if (d <= 0)
            return 0;
        n = util_xcalloc(1, sizeof *n);
        strmap_put(c->pending, source, n, NULL);
    }
    *n += d;
    if (*n > 0)
        return *n;
    free(strmap_remove(c->pending, source));
    return 0;
}

/* k stops counting against its source's limit (trusted, closed or gone). */
static void settle(struct conns *c, struct conn *k)
{
    if (!k->trusted && !k->closing)
        pending_add(c, k->source, -1);
}

static void refuse(struct sip *s, const char *source, const char *why)
{
    atomic_fetch_add_explicit(&s->conns_closed, 1, memory_order_relaxed);
    if (sip_log_due(s, "tcp-guard", source))
        log_warn("sip: closing a connection from %s: %s (more from there within a minute are "
                 "not logged)",
                 source, why);
}

/* A connection the SIP thread's transports just accepted: returns fd, or -1 with errno set
 * after closing it when its source has too many untrusted connections already. */
static int conns_accepted(struct sip *s, int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char key[INET6_ADDRSTRLEN + 16], source[INET6_ADDRSTRLEN];
    struct stat st;
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) != 0 ||
        peer_key((struct sockaddr *)&ss, key, sizeof key, source, sizeof source) != 0 ||
        fstat(fd, &st) != 0)
        return fd; /* not an IP connection: not ours to judge */
    struct conns *c = s->conns;
    int *n = strmap_get(c->pending, source);
    if (n && *n >= s->cfg->tcp_per_source) {
        refuse(s, source, "too many connections from one address");
        close(fd);
        errno = ECONNABORTED;
        return -1;
    }
    struct conn *k = util_xcalloc(1, sizeof *k);
    void *old = NULL;
    strmap_put(c->map, key, k, &old);
    if (old) {
        settle(c, old); /* the peer's earlier connection on this port is gone */
        free(old);
    }
    k->fd = fd;
    k->ino = st.st_ino;
    k->opened_ms = now_ms();
    snprintf(k->source, sizeof k->source, "%s", source);
    pending_add(c, source, 1);
    return fd;
}

/** sipbx's accept(2) for Sofia's transports; see the top of this file. */
int accept(int fd, __SOCKADDR_ARG addr, socklen_t *__restrict len)
{
    int c = accept4(fd, addr, len, 0);
    if (c < 0 || !guard)
        return c;
    return conns_accepted(guard, c);
}

/* The guard's entry for the connection a message of tp came on, or NULL. */
static struct conn *conn_of(struct conns *c, tport_t *tp)
{
    if (!tp || !tport_is_secondary(tp) || !tport_is_stream(tp))
        return NULL;
    su_addrinfo_t const *ai = tport_get_address(tp);
    char key[INET6_ADDRSTRLEN + 16], source[INET6_ADDRSTRLEN];
    if (!ai || !ai->ai_addr || peer_key(ai->ai_addr, key, sizeof key, source, sizeof source))
        return NULL;
    return strmap_get(c->map, key);
}

void conns_request(struct sip *s, nta_incoming_t *irq, int accepted)
{
    tport_t *tp = nta_incoming_transport(s->agent, irq, NULL);
    struct conn *k = conn_of(s->conns, tp);
    if (k) {
        k->complete = 1;
        if (accepted && !k->trusted) {
            settle(s->conns, k);
            k->trusted = 1;
        }
    }
    tport_unref(tp);
}

static int sweep_one(const char *key, void *val, void *ctx)
{
    (void)key;
    struct sip *s = ctx;
    struct conn *k = val;
    if (!still_ours(k)) {
        settle(s->conns, k); /* Sofia closed it */
        free(k);
        return STRMAP_DROP;
    }
    if (k->trusted || k->closing)
        return STRMAP_KEEP;
    int64_t age = now_ms() - k->opened_ms;
    const char *why = !k->complete && age > CONN_FIRST_MS ? "no complete SIP message in 10 s"
                      : age > CONN_TRUST_MS               ? "no accepted request in 32 s"
                                                          : NULL;
    if (why) {
        refuse(s, k->source, why);
        settle(s->conns, k);
        k->closing = 1;
        shutdown(k->fd, SHUT_RDWR); /* Sofia reads the end of the stream and closes it */
    }
    return STRMAP_KEEP;
}

void conns_sweep(struct sip *s)
{
    strmap_foreach(s->conns->map, sweep_one, s);
}
