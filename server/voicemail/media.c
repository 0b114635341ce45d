/* The media thread: the RTP of every voicemail call (RFC 3550, G.711 in 20 ms packets) on one
 * thread, paced by one periodic timer. Each tick sends every session's next packet of what
 * it plays (silence when nothing is queued, so timestamps and the remote's jitter buffer run
 * on); received packets are read as they come: telephone-events (RFC 4733) are reported,
 * audio is written into the recording at the place its timestamp says, so packets that
 * come late, out of order or not at all leave the rest in place (a missing one is
 * silence). The user agent thread drives it through the functions below, which take the
 * one lock the thread holds while it works; the thread reports back through a callback it
 * calls without the lock. No disk, no DNS, no Sofia here. */
#include "util/util.h"
#include "voicemail/vm_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define PTIME_MS          20
#define FRAME             (AUDIO_RATE * PTIME_MS / 1000) /* 160 samples per packet */
#define RTP_HEADER        12
#define QUEUE_MAX         64  /* clips queued per session */
#define CATCH_UP_MAX      5   /* packets sent at once when ticks were missed; beyond, skipped */
#define SILENT_LEVEL      128 /* mean |sample| below this is silence (Asterisk's default) */
#define TAIL_KEPT         (AUDIO_RATE * 3 / 10) /* silence kept after the last voiced packet */
#define LATE_MAX          (2 * AUDIO_RATE)      /* a packet this far behind restarts the timeline */
#define AHEAD_MAX         AUDIO_RATE            /* ... or this far ahead of the wall clock */
#define EVENTS_MAX        256
#define MEDIA_RT_PRIORITY 10 /* SCHED_FIFO, low among real-time threads */

struct item {
    struct vm_clip clip;
    size_t pos;     /* samples of it sent */
    uint32_t token; /* reported when it is done (the last item of a media_play) */
    int has_token;
};

struct media_session {
    struct media_session *next;
    uint64_t id;
    int fd, port;
    int closed; /* media_close: freed by the thread at the end of its batch */
    int started;
    struct media_remote remote;
    int latched; /* the remote address is the one its packets came from */
    /* sending */
    uint32_t ssrc, ts;
    uint16_t seq;
    int marker;
    struct item queue[QUEUE_MAX];
    int qhead, qlen;
    /* DTMF */
    int dtmf_seen;
    uint32_t dtmf_ts;
    /* recording */
    int recording, rec_ended;
    int64_t rec_start_ms, last_voiced_ms;
    int rec_max_ms, rec_silence_ms;
    uint8_t *rec; /* G.711 codes in rec_law */
    size_t rec_len, rec_cap, voiced_end;
    enum audio_law rec_law;
    int rec_anchored;
    uint32_t rec_base, rec_ssrc;
    int voiced;
};

struct media {
    pthread_t thread;
    int started;
    int epfd, timerfd, wakefd; /* wakefd: a closed session to free, or the stop */
    int stopping;              /* under lock */
    pthread_mutex_t lock;
    struct media_session *sessions;
    int nsessions, armed;
    char bind_host[64];
    int port_min, port_max, next_port;
    void (*on_event)(const struct media_event *ev, void *ctx);
    void *ctx;
    _Atomic uint64_t sent, received, late_ticks;
    struct media_event events[EVENTS_MAX]; /* of the current batch, sent after unlocking */
    int nevents;
};

static int64_t now_ms(void)
{
    return util_mono_ms();
}

static void emit(struct media *m, uint64_t id, enum media_event_type type, uint32_t token,
                 char digit)
{
    if (m->nevents < EVENTS_MAX)
        m->events[m->nevents++] = (struct media_event){id, type, token, digit};
    else
        log_warn("media: more than %d events in one go; one dropped", EVENTS_MAX);
}

static void wake(struct media *m)
{
    uint64_t one = 1;
    if (write(m->wakefd, &one, sizeof one) < 0 && errno != EAGAIN)
        log_warn("media: cannot wake its thread: %s", strerror(errno));
}

/* Arms the tick while there are sessions, disarms it when there are none. */
static void arm(struct media *m)
{
    int want = m->nsessions > 0;
    if (want == m->armed)
        return;
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    if (want) {
        its.it_interval.tv_nsec = PTIME_MS * 1000000L;
        its.it_value.tv_nsec = PTIME_MS * 1000000L;
    }
    if (timerfd_settime(m->timerfd, 0, &its, NULL) == 0)
        m->armed = want;
}

/* ---- sending ---- */

static void item_release(struct item *it)
{
    vm_audio_unref(it->clip.owner);
    it->clip.owner = NULL;
}

static void queue_clear(struct media_session *ms)
{
    for (int i = 0; i < ms->qlen; i++)
        item_release(&ms->queue[(ms->qhead + i) % QUEUE_MAX]);
    ms->qhead = ms->qlen = 0;
}

/* Fills frame with the next FRAME samples of the queue (silence past its end). */
static void next_frame(struct media *m, struct media_session *ms, int16_t frame[FRAME])
{
    size_t got = 0;
    while (got < FRAME && ms->qlen > 0) {
        struct item *it = &ms->queue[ms->qhead];
        size_t take = it->clip.n - it->pos;
        if (take > FRAME - got)
            take = FRAME - got;
        memcpy(frame + got, it->clip.s + it->pos, take * sizeof *frame);
        got += take;
        it->pos += take;
        if (it->pos >= it->clip.n) {
            if (it->has_token)
                emit(m, ms->id, MEDIA_PLAYED, it->token, 0);
            item_release(it);
            ms->qhead = (ms->qhead + 1) % QUEUE_MAX;
            ms->qlen--;
        }
    }
    memset(frame + got, 0, (FRAME - got) * sizeof *frame);
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)(v >> 16));
    put16(p + 2, (uint16_t)v);
}

static void send_packet(struct media *m, struct media_session *ms)
{
    int16_t frame[FRAME];
    uint8_t pkt[RTP_HEADER + FRAME];
    next_frame(m, ms, frame);
    pkt[0] = 0x80; /* version 2, no padding, extension or CSRC */
    pkt[1] = (uint8_t)((ms->marker ? 0x80 : 0) | (ms->remote.send_pt & 0x7F));
    put16(pkt + 2, ms->seq);
    put32(pkt + 4, ms->ts);
    put32(pkt + 8, ms->ssrc);
    for (int i = 0; i < FRAME; i++)
        pkt[RTP_HEADER + i] = audio_encode(ms->remote.send_law, frame[i]);
    ms->marker = 0;
    ms->seq++;
    ms->ts += FRAME;
    if (sendto(ms->fd, pkt, sizeof pkt, MSG_DONTWAIT, (struct sockaddr *)&ms->remote.addr,
               ms->remote.addrlen) == (ssize_t)sizeof pkt)
        atomic_fetch_add_explicit(&m->sent, 1, memory_order_relaxed);
}

/* ---- recording ---- */

/* The recording's end condition, checked every tick. */
static void record_check(struct media *m, struct media_session *ms, int64_t now)
{
    if (!ms->recording || ms->rec_ended)
        return;
    if (now - ms->rec_start_ms >= ms->rec_max_ms) {
        ms->rec_ended = 1;
        emit(m, ms->id, MEDIA_RECORD_LIMIT, 0, 0);
    } else if (ms->rec_silence_ms > 0 && now - ms->last_voiced_ms >= ms->rec_silence_ms) {
        ms->rec_ended = 1;
        emit(m, ms->id, MEDIA_RECORD_SILENCE, 0, 0);
    }
}

/* Makes the recording hold at least n codes, the new ones silence. 0 or -1. */
static int rec_grow(struct media_session *ms, size_t n)
{
    if (n > ms->rec_cap) {
        size_t cap = ms->rec_cap ? ms->rec_cap : AUDIO_RATE * 4;
        while (cap < n)
            cap *= 2;
        uint8_t *r = realloc(ms->rec, cap);
        if (!r)
            return -1;
        ms->rec = r;
        ms->rec_cap = cap;
    }
    if (n > ms->rec_len) {
        memset(ms->rec + ms->rec_len, audio_silence(ms->rec_law), n - ms->rec_len);
        ms->rec_len = n;
    }
    return 0;
}

/* Places n codes of law, sent with RTP timestamp ts by ssrc, into the recording. */
static void record_audio(struct media_session *ms, enum audio_law law, uint32_t ts, uint32_t ssrc,
                         const uint8_t *codes, size_t n, int64_t now)
{
    if (!ms->recording || ms->rec_ended || n == 0)
        return;
    size_t max = (size_t)ms->rec_max_ms * (AUDIO_RATE / 1000);
    /* Where the wall clock says we are: a timestamp far ahead of it is a new timeline. */
    int64_t wall = (now - ms->rec_start_ms) * (AUDIO_RATE / 1000);
    if (!ms->rec_anchored) {
        ms->rec_law = law;
        ms->rec_anchored = 1;
        ms->rec_ssrc = ssrc;
        ms->rec_base = ts - (uint32_t)ms->rec_len;
    }
    int64_t pos = (int32_t)(ts - ms->rec_base);
    if (ssrc != ms->rec_ssrc || pos < 0 || pos + LATE_MAX < (int64_t)ms->rec_len ||
        pos > wall + AHEAD_MAX) {
        /* Another source, or a jump in the timestamps: go on from here. */
        int64_t at = (int64_t)ms->rec_len > wall ? (int64_t)ms->rec_len : wall;
        ms->rec_ssrc = ssrc;
        ms->rec_base = ts - (uint32_t)at;
        pos = at;
    }
    if ((size_t)pos >= max)
        return;
    size_t end = (size_t)pos + n;
    if (end > max)
        end = max;
    if (rec_grow(ms, end) != 0)
        return; /* out of memory: the packet is lost, the call goes on */
    int16_t lin[FRAME * 4];
    size_t k = end - (size_t)pos;
    if (k > sizeof lin / sizeof lin[0])
        k = sizeof lin / sizeof lin[0];
    for (size_t i = 0; i < k; i++) {
        lin[i] = audio_decode(law, codes[i]);
        ms->rec[pos + (int64_t)i] =
            law == ms->rec_law ? codes[i] : audio_encode(ms->rec_law, lin[i]);
    }
    if (audio_level(lin, k) >= SILENT_LEVEL) {
        ms->last_voiced_ms = now;
        ms->voiced = 1;
        if ((size_t)pos + k > ms->voiced_end)
            ms->voiced_end = (size_t)pos + k;
    }
}

/* ---- receiving ---- */

static int same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port &&
           memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
}

static const char dtmf_chars[] = "0123456789*#ABCD";

static void receive(struct media *m, struct media_session *ms, int64_t now)
{
    uint8_t buf[2048];
    for (;;) {
        struct sockaddr_storage from;
        socklen_t fromlen = sizeof from;
        ssize_t len =
            recvfrom(ms->fd, buf, sizeof buf, MSG_DONTWAIT, (struct sockaddr *)&from, &fromlen);
        if (len < 0)
            return; /* EAGAIN: all read (errors such as ICMP unreachable are dropped too) */
        if (len < RTP_HEADER || (buf[0] >> 6) != 2 || !ms->started)
            continue;
        if (ms->latched && !same_addr(&from, &ms->remote.addr))
            continue; /* not the peer's stream: never recorded */
        size_t off = RTP_HEADER + 4u * (buf[0] & 0x0F);
        if ((buf[0] & 0x10) && (size_t)len >= off + 4)
            off += 4 + 4u * ((size_t)buf[off + 2] << 8 | buf[off + 3]);
        size_t end = (size_t)len;
        if ((buf[0] & 0x20) && end > off)
            end -= buf[end - 1] < end - off ? buf[end - 1] : end - off;
        if (off > end)
            continue;
        int pt = buf[1] & 0x7F;
        uint32_t ts =
            (uint32_t)buf[4] << 24 | (uint32_t)buf[5] << 16 | (uint32_t)buf[6] << 8 | buf[7];
        uint32_t ssrc =
            (uint32_t)buf[8] << 24 | (uint32_t)buf[9] << 16 | (uint32_t)buf[10] << 8 | buf[11];
        int is_te = pt == ms->remote.te_pt, law = ms->remote.pt_law[pt];
        if (!is_te && !law)
            continue;
        atomic_fetch_add_explicit(&m->received, 1, memory_order_relaxed);
        if (!ms->latched) {
            /* Symmetric RTP: send where its packets come from (a phone behind NAT). */
            ms->remote.addr = from;
            ms->remote.addrlen = fromlen;
            ms->latched = 1;
        }
        if (is_te) {
            /* RFC 4733: one event spans packets of the same timestamp (the end packet is
             * sent three times); a new timestamp is a new key press. */
            if (end - off >= 4 && buf[off] < 16 && (!ms->dtmf_seen || ts != ms->dtmf_ts)) {
                ms->dtmf_seen = 1;
                ms->dtmf_ts = ts;
                emit(m, ms->id, MEDIA_DTMF, 0, dtmf_chars[buf[off]]);
            }
            continue;
        }
        record_audio(ms, (enum audio_law)(law - 1), ts, ssrc, buf + off, end - off, now);
    }
}

/* ---- the thread ---- */

static void free_session(struct media_session *ms)
{
    queue_clear(ms);
    if (ms->fd >= 0)
        close(ms->fd);
    free(ms->rec);
    free(ms);
}

/* Frees the sessions media_close marked (under the lock, after the batch that may have
 * named them). */
static void reap(struct media *m)
{
    struct media_session **pp = &m->sessions;
    while (*pp) {
        struct media_session *ms = *pp;
        if (ms->closed) {
            *pp = ms->next;
            free_session(ms);
        } else {
            pp = &ms->next;
        }
    }
}

static void tick(struct media *m, uint64_t expirations, int64_t now)
{
    if (expirations > 1)
        atomic_fetch_add_explicit(&m->late_ticks, expirations - 1, memory_order_relaxed);
    for (struct media_session *ms = m->sessions; ms; ms = ms->next) {
        if (ms->closed)
            continue;
        if (ms->started) {
            uint64_t k = expirations;
            /* Late by more than a few ticks (the machine was stalled): send a few at once
             * and skip the rest, keeping the timestamps on the clock. */
            if (k > CATCH_UP_MAX) {
                ms->ts += (uint32_t)((k - CATCH_UP_MAX) * FRAME);
                k = CATCH_UP_MAX;
            }
            while (k--)
                send_packet(m, ms);
        }
        record_check(m, ms, now);
    }
}

/* Packets must leave every 20 ms even when the machine is busy: the thread asks for a low
 * real-time priority (SCHED_FIFO 10), as media servers do. It uses about 1% of a core for 50
 * calls and sleeps in epoll_wait the rest of the time, and the kernel's real-time throttling
 * caps it should that ever change. Without the right (root, CAP_SYS_NICE, or an RLIMIT_RTPRIO
 * such as the systemd unit's LimitRTPRIO) it runs at the normal priority: said once. */
static void realtime(void)
{
    struct sched_param sp = {.sched_priority = MEDIA_RT_PRIORITY};
    int rc = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
    if (rc == 0)
        log_info("media: RTP thread at real-time priority %d", MEDIA_RT_PRIORITY);
    else
        log_info("media: no real-time priority for the RTP thread (%s): under load packets "
                 "may leave late (LimitRTPRIO=%d in the systemd unit gives it)",
                 strerror(rc), MEDIA_RT_PRIORITY);
}

static void *media_thread(void *arg)
{
    struct media *m = arg;
    struct epoll_event evs[64];
    pthread_setname_np(pthread_self(), "sipbx-media"); /* top -H, /proc: which thread works */
    realtime();
    for (;;) {
        int n = epoll_wait(m->epfd, evs, 64, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            log_error("media: epoll_wait: %s", strerror(errno));
            break;
        }
        int stop = 0;
        uint64_t expirations = 0;
        pthread_mutex_lock(&m->lock);
        int64_t now = now_ms();
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &m->wakefd) {
                uint64_t x;
                if (read(m->wakefd, &x, sizeof x) < 0)
                    (void)0; /* EAGAIN: another thread's read got it */
                stop = m->stopping;
            } else if (p == &m->timerfd) {
                uint64_t x;
                if (read(m->timerfd, &x, sizeof x) == (ssize_t)sizeof x)
                    expirations += x;
            } else {
                struct media_session *ms = p;
                if (!ms->closed)
                    receive(m, ms, now);
            }
        }
        if (expirations)
            tick(m, expirations, now);
        reap(m);
        int nev = m->nevents;
        struct media_event events[EVENTS_MAX];
        memcpy(events, m->events, (size_t)nev * sizeof events[0]);
        m->nevents = 0;
        pthread_mutex_unlock(&m->lock);
        for (int i = 0; i < nev; i++)
            m->on_event(&events[i], m->ctx);
        if (stop)
            break;
    }
    return NULL;
}

int media_create(struct media **out, const char *bind_host, int port_min, int port_max,
                 void (*on_event)(const struct media_event *ev, void *ctx), void *ctx, char *err,
                 size_t errlen)
{
    struct media *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    m->epfd = m->timerfd = m->wakefd = -1;
    pthread_mutex_init(&m->lock, NULL);
    snprintf(m->bind_host, sizeof m->bind_host, "%s", bind_host);
    m->port_min = port_min + (port_min & 1); /* RTP takes even ports (RFC 3550 11) */
    m->port_max = port_max;
    m->next_port = m->port_min;
    m->on_event = on_event;
    m->ctx = ctx;
    struct util_addr probe;
    if (util_addr_parse(bind_host, &probe) != 0) {
        snprintf(err, errlen, "media: %s is not an IP address", bind_host);
        goto fail;
    }
    if (m->port_min >= m->port_max) {
        snprintf(err, errlen, "rtp_port_min (%d) must be below rtp_port_max (%d)", port_min,
                 port_max);
        goto fail;
    }
    m->epfd = epoll_create1(EPOLL_CLOEXEC);
    m->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    m->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (m->epfd < 0 || m->timerfd < 0 || m->wakefd < 0) {
        snprintf(err, errlen, "media: cannot create its descriptors: %s", strerror(errno));
        goto fail;
    }
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = &m->timerfd};
    struct epoll_event s = {.events = EPOLLIN, .data.ptr = &m->wakefd};
    if (epoll_ctl(m->epfd, EPOLL_CTL_ADD, m->timerfd, &e) != 0 ||
        epoll_ctl(m->epfd, EPOLL_CTL_ADD, m->wakefd, &s) != 0) {
        snprintf(err, errlen, "media: epoll: %s", strerror(errno));
        goto fail;
    }
    if (pthread_create(&m->thread, NULL, media_thread, m) != 0) {
        snprintf(err, errlen, "media: cannot start its thread");
        goto fail;
    }
    m->started = 1;
    *out = m;
    return 0;
fail:
    media_destroy(m);
    return -1;
}

void media_destroy(struct media *m)
{
    if (!m)
        return;
    if (m->started) {
        pthread_mutex_lock(&m->lock);
        m->stopping = 1;
        pthread_mutex_unlock(&m->lock);
        wake(m);
        pthread_join(m->thread, NULL);
    }
    while (m->sessions) {
        struct media_session *ms = m->sessions;
        m->sessions = ms->next;
        free_session(ms);
    }
    if (m->epfd >= 0)
        close(m->epfd);
    if (m->timerfd >= 0)
        close(m->timerfd);
    if (m->wakefd >= 0)
        close(m->wakefd);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* A UDP socket bound to the next free even port of the range; -1 when none is free. */
static int bind_port(struct media *m, int *port)
{
    struct util_addr a;
    util_addr_parse(m->bind_host, &a);
    int family = a.family;
    int span = (m->port_max - m->port_min) / 2 + 1;
    for (int tries = 0; tries < span; tries++) {
        int p = m->next_port;
        m->next_port += 2;
        if (m->next_port > m->port_max)
            m->next_port = m->port_min;
        int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -1;
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof ss);
        socklen_t len;
        if (family == AF_INET) {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
            s4->sin_family = AF_INET;
            s4->sin_port = htons((uint16_t)p);
            memcpy(&s4->sin_addr, a.bytes, 4);
            len = sizeof *s4;
        } else {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
            s6->sin6_family = AF_INET6;
            s6->sin6_port = htons((uint16_t)p);
            memcpy(&s6->sin6_addr, a.bytes, 16);
            len = sizeof *s6;
        }
        if (bind(fd, (struct sockaddr *)&ss, len) == 0) {
            *port = p;
            return fd;
        }
        close(fd);
    }
    return -1;
}

struct media_session *media_open(struct media *m, uint64_t id, int *port)
{
    struct media_session *ms = calloc(1, sizeof *ms);
    if (!ms)
        return NULL;
    ms->id = id;
    ms->remote.te_pt = -1;
    ms->marker = 1;
    uint32_t rnd[3];
    if (util_random(rnd, sizeof rnd) != 0) {
        free(ms);
        return NULL;
    }
    /* Random SSRC, first sequence number and timestamp (RFC 3550 5.1). */
    ms->ssrc = rnd[0];
    ms->seq = (uint16_t)rnd[1];
    ms->ts = rnd[2];
    pthread_mutex_lock(&m->lock);
    ms->fd = bind_port(m, &ms->port);
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = ms};
    if (ms->fd < 0 || epoll_ctl(m->epfd, EPOLL_CTL_ADD, ms->fd, &e) != 0) {
        pthread_mutex_unlock(&m->lock);
        if (ms->fd >= 0)
            close(ms->fd);
        free(ms);
        return NULL;
    }
    ms->next = m->sessions;
    m->sessions = ms;
    m->nsessions++;
    arm(m);
    pthread_mutex_unlock(&m->lock);
    *port = ms->port;
    return ms;
}

void media_start(struct media *m, struct media_session *ms, const struct media_remote *r)
{
    pthread_mutex_lock(&m->lock);
    struct sockaddr_storage latched = ms->remote.addr;
    socklen_t latched_len = ms->remote.addrlen;
    int keep = ms->latched && r->addrlen == 0;
    ms->remote = *r;
    if (keep) {
        ms->remote.addr = latched;
        ms->remote.addrlen = latched_len;
    } else if (ms->started && r->addrlen) {
        ms->latched = 0; /* a new address from a re-INVITE: latch again */
    }
    ms->started = ms->remote.addrlen > 0;
    pthread_mutex_unlock(&m->lock);
}

void media_play(struct media *m, struct media_session *ms, const struct vm_clip *clips, size_t n,
                int flush, uint32_t token)
{
    pthread_mutex_lock(&m->lock);
    if (flush)
        queue_clear(ms);
    size_t queued = 0;
    for (size_t i = 0; i < n && ms->qlen < QUEUE_MAX; i++) {
        if (clips[i].n == 0)
            continue;
        struct item *it = &ms->queue[(ms->qhead + ms->qlen) % QUEUE_MAX];
        memset(it, 0, sizeof *it);
        it->clip = clips[i];
        if (it->clip.owner)
            vm_audio_ref(it->clip.owner);
        ms->qlen++;
        queued++;
    }
    if (queued < n && ms->qlen == QUEUE_MAX)
        log_warn("media: session %llu: play queue full, %zu clip(s) dropped",
                 (unsigned long long)ms->id, n - queued);
    if (ms->qlen > 0) {
        struct item *last = &ms->queue[(ms->qhead + ms->qlen - 1) % QUEUE_MAX];
        last->token = token;
        last->has_token = 1;
    } else {
        emit(m, ms->id, MEDIA_PLAYED, token, 0); /* nothing to play: done at once */
    }
    pthread_mutex_unlock(&m->lock);
}

void media_record(struct media *m, struct media_session *ms, int max_ms, int silence_ms)
{
    pthread_mutex_lock(&m->lock);
    ms->recording = 1;
    ms->rec_ended = 0;
    ms->rec_start_ms = ms->last_voiced_ms = now_ms();
    ms->rec_max_ms = max_ms;
    ms->rec_silence_ms = silence_ms;
    ms->rec_len = ms->voiced_end = 0;
    ms->rec_anchored = 0;
    ms->voiced = 0;
    pthread_mutex_unlock(&m->lock);
}

void media_take_recording(struct media *m, struct media_session *ms, struct media_recording *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&m->lock);
    size_t n = ms->recording ? ms->rec_len : 0;
    if (n > ms->voiced_end + TAIL_KEPT)
        n = ms->voiced_end + TAIL_KEPT; /* the silence at the end, less a breath */
    int16_t *s = n ? malloc(n * sizeof *s) : NULL;
    if (s) {
        for (size_t i = 0; i < n; i++)
            s[i] = audio_decode(ms->rec_law, ms->rec[i]);
        out->samples = s;
        out->n = n;
        out->voiced = ms->voiced;
    }
    ms->recording = 0;
    free(ms->rec);
    ms->rec = NULL;
    ms->rec_len = ms->rec_cap = 0;
    pthread_mutex_unlock(&m->lock);
}

void media_close(struct media *m, struct media_session *ms)
{
    if (!ms)
        return;
    pthread_mutex_lock(&m->lock);
    epoll_ctl(m->epfd, EPOLL_CTL_DEL, ms->fd, NULL);
    ms->closed = 1;
    m->nsessions--;
    arm(m);
    pthread_mutex_unlock(&m->lock);
    wake(m); /* the thread frees it at the end of its next batch, tick or none */
}

void media_get_stats(struct media *m, struct media_stats *out)
{
    out->sent = atomic_load_explicit(&m->sent, memory_order_relaxed);
    out->received = atomic_load_explicit(&m->received, memory_order_relaxed);
    out->late_ticks = atomic_load_explicit(&m->late_ticks, memory_order_relaxed);
    pthread_mutex_lock(&m->lock);
    out->sessions = m->nsessions;
    pthread_mutex_unlock(&m->lock);
}
