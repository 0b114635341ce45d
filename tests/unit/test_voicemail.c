/* Unit tests of server/voicemail without SIP: SDP offers and answers, the Request-URI tokens,
 * spoken numbers, and the media thread on loopback sockets: what it sends (RTP header fields,
 * 20 ms packets, the clip's samples), and what it records from packets that come out of
 * order, twice, late in a burst or not at all, with RFC 4733 key presses, silence and the
 * length limit ending a recording, and packets from a stranger ignored. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "util/util.h"
#include "voicemail/vm_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- SDP ---- */

static void test_sdp_offer(void **state)
{
    (void)state;
    char out[1024];
    assert_int_equal(vm_sdp_make(NULL, 0, "192.0.2.5", 10002, 42, 1, out, sizeof out, NULL), 0);
    assert_non_null(strstr(out, "o=sipbx 42 1 IN IP4 192.0.2.5\r\n"));
    assert_non_null(strstr(out, "c=IN IP4 192.0.2.5\r\n"));
    assert_non_null(strstr(out, "m=audio 10002 RTP/AVP 0 8 101\r\n"));
    assert_non_null(strstr(out, "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"));
    assert_non_null(strstr(out, "a=ptime:20\r\n"));
    /* IPv6 */
    assert_int_equal(vm_sdp_make(NULL, 0, "2001:db8::5", 10002, 42, 1, out, sizeof out, NULL), 0);
    assert_non_null(strstr(out, "c=IN IP6 2001:db8::5\r\n"));
    /* too small a buffer */
    assert_int_equal(vm_sdp_make(NULL, 0, "192.0.2.5", 10002, 42, 1, out, 60, NULL), -1);
}

static void test_sdp_answer(void **state)
{
    (void)state;
    char out[2048];
    struct media_remote r;
    const char *offer = "v=0\r\no=- 7 7 IN IP4 198.51.100.1\r\ns=-\r\nc=IN IP4 198.51.100.1\r\n"
                        "t=0 0\r\nm=audio 4000 RTP/AVP 18 8 0 96\r\na=rtpmap:18 G729/8000\r\n"
                        "a=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-15\r\n"
                        "m=video 4002 RTP/AVP 97\r\na=rtpmap:97 H264/90000\r\n";
    memset(&r, 0, sizeof r);
    assert_int_equal(
        vm_sdp_make(offer, strlen(offer), "192.0.2.5", 10002, 9, 1, out, sizeof out, &r), 0);
    /* G.711 in the caller's order, its telephone-event number; video refused in place. */
    assert_non_null(strstr(out, "m=audio 10002 RTP/AVP 8 0 96\r\n"));
    assert_non_null(strstr(out, "a=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n"));
    assert_non_null(strstr(out, "a=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-15\r\n"));
    assert_non_null(strstr(out, "a=sendrecv\r\nm=video 0 RTP/AVP 97\r\n"));
    assert_null(strstr(out, "G729"));
    assert_int_equal(r.send_pt, 8);
    assert_int_equal(r.send_law, AUDIO_PCMA);
    assert_int_equal(r.te_pt, 96);
    assert_int_equal(r.pt_law[8], AUDIO_PCMA + 1);
    assert_int_equal(r.pt_law[0], AUDIO_PCMU + 1);
    assert_int_equal(r.pt_law[18], 0);
    struct sockaddr_in *sin = (struct sockaddr_in *)&r.addr;
    assert_int_equal(r.addrlen, sizeof *sin);
    assert_int_equal(ntohs(sin->sin_port), 4000);

    /* sendonly (a hold) is answered recvonly; 0.0.0.0 gives no address to send to. */
    const char *hold = "v=0\r\no=- 7 8 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
                       "m=audio 4000 RTP/AVP 0\r\na=sendonly\r\n";
    assert_int_equal(vm_sdp_make(hold, strlen(hold), "192.0.2.5", 10002, 9, 2, out, sizeof out, &r),
                     0);
    assert_non_null(strstr(out, "a=recvonly\r\n"));
    assert_int_equal(r.addrlen, 0);
    assert_int_equal(r.te_pt, -1);

    /* Nothing we can take: 488; not SDP: -1. */
    const char *g729 = "v=0\r\no=- 7 7 IN IP4 198.51.100.1\r\ns=-\r\nc=IN IP4 198.51.100.1\r\n"
                       "t=0 0\r\nm=audio 4000 RTP/AVP 18\r\n";
    assert_int_equal(vm_sdp_make(g729, strlen(g729), "192.0.2.5", 10002, 9, 1, out, sizeof out, &r),
                     488);
    assert_int_equal(vm_sdp_make("hello", 5, "192.0.2.5", 10002, 9, 1, out, sizeof out, &r), -1);

    /* The answer to our offer. */
    const char *answer = "v=0\r\no=- 1 1 IN IP4 203.0.113.9\r\ns=-\r\nc=IN IP4 203.0.113.9\r\n"
                         "t=0 0\r\nm=audio 5000 RTP/AVP 0 101\r\na=rtpmap:101 "
                         "telephone-event/8000\r\n";
    memset(&r, 0, sizeof r);
    assert_int_equal(vm_sdp_read_answer(answer, strlen(answer), &r), 0);
    assert_int_equal(r.send_pt, 0);
    assert_int_equal(r.te_pt, 101);
    assert_int_equal(ntohs(((struct sockaddr_in *)&r.addr)->sin_port), 5000);
    assert_int_equal(vm_sdp_read_answer(g729, strlen(g729), &r), 488);
}

/* ---- tokens and numbers ---- */

static void test_target_tokens(void **state)
{
    (void)state;
    static struct vm vm; /* only the key and the port are used */
    memset(vm.key, 7, sizeof vm.key);
    vm.port = 5099;
    char a[512], b[512];
    assert_int_equal(vm_target(&vm, VM_LEAVE, "101", "user-busy", "call-1", a, sizeof a), 0);
    /* sip:101@127.0.0.1:5099;vm=leave;why=user-busy;vmts=TIME;vmt=TOKEN */
    long long ts;
    char token[32];
    assert_int_equal(
        sscanf(a, "sip:101@127.0.0.1:5099;vm=leave;why=user-busy;vmts=%lld;vmt=%31s", &ts, token),
        2);
    assert_true(llabs(ts - (long long)util_now()) <= 1);
    assert_int_equal(strlen(token), 24);
    /* The token depends on everything it names. */
    assert_int_equal(vm_target(&vm, VM_LEAVE, "101", "user-busy", "call-2", b, sizeof b), 0);
    assert_string_not_equal(strrchr(a, '='), strrchr(b, '='));
    assert_int_equal(vm_target(&vm, VM_LEAVE, "102", "user-busy", "call-1", b, sizeof b), 0);
    assert_string_not_equal(strrchr(a, '='), strrchr(b, '='));
    assert_int_equal(vm_target(&vm, VM_LISTEN, "101", "", "call-1", b, sizeof b), 0);
    assert_true(strncmp(b, "sip:101@127.0.0.1:5099;vm=listen;vmts=", 38) == 0);
    memset(vm.key, 8, sizeof vm.key); /* another secret: another token */
    assert_int_equal(vm_target(&vm, VM_LEAVE, "101", "user-busy", "call-1", b, sizeof b), 0);
    assert_string_not_equal(a, b);
    /* What cannot be a mailbox or a reason is refused, not written into a URI. */
    assert_int_equal(vm_target(&vm, VM_LEAVE, "1;x=y", "", "c", b, sizeof b), -1);
    assert_int_equal(vm_target(&vm, VM_LEAVE, "101", "busy;vm=listen", "c", b, sizeof b), -1);
    assert_int_equal(vm_target(&vm, VM_LEAVE, "101", "", "c", b, 20), -1);
}

/* The names of the prompts in l, space-separated. */
static void clip_names(const struct vm_clips *l, char *out, size_t outlen)
{
    out[0] = '\0';
    for (size_t i = 0; i < l->n; i++)
        for (size_t k = 0; k < vm_prompt_count; k++)
            if (vm_prompt_table[k].samples == l->c[i].s) {
                size_t n = strlen(out);
                snprintf(out + n, outlen - n, "%s%s", n ? " " : "", vm_prompt_table[k].name);
            }
}

static void test_numbers(void **state)
{
    (void)state;
    struct {
        long n;
        const char *words;
    } cases[] = {{0, "n0"},
                 {7, "n7"},
                 {13, "n13"},
                 {20, "n20"},
                 {21, "n20 n1"},
                 {40, "n40"},
                 {99, "n90 n9"},
                 {100, "n1 hundred"},
                 {342, "n3 hundred n40 n2"},
                 {1204, "n1 n2 n0 n4"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct vm_clips l = {.n = 0};
        char got[128];
        vm_clips_number(&l, cases[i].n);
        clip_names(&l, got, sizeof got);
        assert_string_equal(got, cases[i].words);
    }
    struct vm_clips l = {.n = 0};
    assert_int_equal(vm_clips_digits(&l, "10a"), 0);
    assert_int_equal(l.n, 0);
    assert_int_equal(vm_clips_digits(&l, "105"), 1);
    char got[64];
    clip_names(&l, got, sizeof got);
    assert_string_equal(got, "n1 n0 n5");
    /* Every prompt the code asks for exists. */
    const char *needed[] = {"greet_person", "greet_generic", "greet_busy",  "greet_unavailable",
                            "greet_leave",  "box_full",      "you_have",    "no_messages",
                            "new_message",  "new_messages",  "old_message", "old_messages",
                            "and",          "message",       "from",        "menu",
                            "deleted",      "no_more",       "goodbye",     "hundred"};
    for (size_t i = 0; i < sizeof needed / sizeof needed[0]; i++) {
        const struct vm_prompt *p = vm_prompt(needed[i]);
        if (!p || p->n < AUDIO_RATE / 10)
            fail_msg("prompt %s missing or too short", needed[i]);
    }
}

/* ---- the media thread ---- */

static pthread_mutex_t ev_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ev_cond = PTHREAD_COND_INITIALIZER;
static struct media_event events[64];
static int nevents;

static void on_event(const struct media_event *ev, void *ctx)
{
    (void)ctx;
    pthread_mutex_lock(&ev_lock);
    if (nevents < 64)
        events[nevents++] = *ev;
    pthread_cond_broadcast(&ev_cond);
    pthread_mutex_unlock(&ev_lock);
}

/* Waits up to ms for an event of type; returns it (and forgets it) or fails. */
static struct media_event wait_event(enum media_event_type type, int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&ev_lock);
    for (;;) {
        for (int i = 0; i < nevents; i++) {
            if (events[i].type == type) {
                struct media_event e = events[i];
                memmove(events + i, events + i + 1, (size_t)(nevents - i - 1) * sizeof e);
                nevents--;
                pthread_mutex_unlock(&ev_lock);
                return e;
            }
        }
        if (pthread_cond_timedwait(&ev_cond, &ev_lock, &until) == ETIMEDOUT) {
            pthread_mutex_unlock(&ev_lock);
            fail_msg("no media event of type %d within %d ms", type, ms);
        }
    }
}

static int count_events(enum media_event_type type)
{
    pthread_mutex_lock(&ev_lock);
    int n = 0;
    for (int i = 0; i < nevents; i++)
        n += events[i].type == type;
    pthread_mutex_unlock(&ev_lock);
    return n;
}

struct rig {
    struct media *m;
    struct media_session *ms;
    int port; /* the session's */
    int peer; /* the far end's socket */
    struct sockaddr_in to;
};

static int udp_socket(struct sockaddr_in *bound)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    if (bound)
        *bound = a;
    return fd;
}

/* A media thread with one session whose far end is r->peer; the session starts sending when
 * start is set (else media_start is the test's). */
static void rig_up(struct rig *r, int law_pt, int te_pt, struct media_remote *out, int start)
{
    char err[256];
    nevents = 0;
    /* A random range of ports: tests may run side by side. */
    unsigned rnd;
    util_random(&rnd, sizeof rnd);
    int base = 20000 + (int)(rnd % 20000) * 2;
    assert_int_equal(
        media_create(&r->m, "127.0.0.1", base, base + 400, on_event, NULL, err, sizeof err), 0);
    r->ms = media_open(r->m, 1, &r->port);
    assert_non_null(r->ms);
    assert_true(r->port >= base && r->port <= base + 400 && r->port % 2 == 0);
    struct sockaddr_in peer;
    r->peer = udp_socket(&peer);
    struct media_remote rem;
    memset(&rem, 0, sizeof rem);
    memcpy(&rem.addr, &peer, sizeof peer);
    rem.addrlen = sizeof peer;
    rem.send_pt = law_pt;
    rem.send_law = law_pt == 8 ? AUDIO_PCMA : AUDIO_PCMU;
    rem.pt_law[0] = AUDIO_PCMU + 1;
    rem.pt_law[8] = AUDIO_PCMA + 1;
    rem.te_pt = te_pt;
    if (out)
        *out = rem;
    if (start)
        media_start(r->m, r->ms, &rem);
    r->to = (struct sockaddr_in){.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)r->port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
}

static void rig_down(struct rig *r)
{
    media_close(r->m, r->ms);
    media_destroy(r->m);
    close(r->peer);
}

/* One packet from the peer's socket, or -1 after ms. */
static int recv_packet(int fd, uint8_t *buf, size_t len, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, ms) != 1)
        return -1;
    return (int)recv(fd, buf, len, 0);
}

static void send_rtp(struct rig *r, int fd, int pt, uint16_t seq, uint32_t ts, uint32_t ssrc,
                     const uint8_t *payload, size_t n, int csrc)
{
    uint8_t pkt[512];
    size_t h = 12 + (csrc ? 4 : 0);
    pkt[0] = (uint8_t)(0x80 | (csrc ? 1 : 0));
    pkt[1] = (uint8_t)pt;
    pkt[2] = (uint8_t)(seq >> 8);
    pkt[3] = (uint8_t)seq;
    for (int i = 0; i < 4; i++) {
        pkt[4 + i] = (uint8_t)(ts >> (24 - 8 * i));
        pkt[8 + i] = (uint8_t)(ssrc >> (24 - 8 * i));
    }
    if (csrc)
        memset(pkt + 12, 0x5A, 4);
    memcpy(pkt + h, payload, n);
    assert_int_equal(sendto(fd, pkt, h + n, 0, (struct sockaddr *)&r->to, sizeof r->to),
                     (ssize_t)(h + n));
}

static void test_media_sends(void **state)
{
    (void)state;
    struct rig r;
    struct media_remote rem;
    rig_up(&r, 8, -1, &rem, 0);
    static int16_t clip[8000];
    for (int i = 0; i < 8000; i++)
        clip[i] = (int16_t)(10000 * sin(2 * M_PI * 300 * i / 8000.0));
    struct vm_clip c = {clip, 8000, NULL};
    media_play(r.m, r.ms, &c, 1, 0, 77);
    media_start(r.m, r.ms, &rem); /* the clip is its first packet */
    uint8_t buf[512];
    uint16_t seq0 = 0;
    uint32_t ts0 = 0, ssrc0 = 0;
    int64_t first_ms = 0, last_ms = 0;
    int16_t got[8000];
    for (int k = 0; k < 60; k++) {
        int n = recv_packet(r.peer, buf, sizeof buf, 1000);
        assert_int_equal(n, 12 + 160);
        int64_t now = util_mono_ms();
        uint16_t seq = (uint16_t)(buf[2] << 8 | buf[3]);
        uint32_t ts =
            (uint32_t)buf[4] << 24 | (uint32_t)buf[5] << 16 | (uint32_t)buf[6] << 8 | buf[7];
        uint32_t ssrc =
            (uint32_t)buf[8] << 24 | (uint32_t)buf[9] << 16 | (uint32_t)buf[10] << 8 | buf[11];
        assert_int_equal(buf[0], 0x80);
        assert_int_equal(buf[1] & 0x7F, 8);
        assert_int_equal(buf[1] >> 7, k == 0); /* the marker on the first packet only */
        if (k == 0) {
            seq0 = seq;
            ts0 = ts;
            ssrc0 = ssrc;
            first_ms = now;
        } else {
            assert_int_equal(seq, (uint16_t)(seq0 + k));
            assert_int_equal(ts, ts0 + 160u * (uint32_t)k);
            assert_int_equal(ssrc, ssrc0);
        }
        last_ms = now;
        if (k < 50)
            for (int i = 0; i < 160; i++)
                got[k * 160 + i] = audio_decode(AUDIO_PCMA, buf[12 + i]);
        else
            for (int i = 0; i < 160; i++) /* the clip is over: silence */
                assert_int_equal(buf[12 + i], audio_silence(AUDIO_PCMA));
    }
    for (int i = 0; i < 8000; i++)
        assert_int_equal(got[i], audio_decode(AUDIO_PCMA, audio_encode(AUDIO_PCMA, clip[i])));
    /* 59 intervals of 20 ms; loose bounds (a loaded machine), the pacing is measured in
     * docs/performance.md. */
    assert_true(last_ms - first_ms > 59 * 20 - 200 && last_ms - first_ms < 59 * 20 + 400);
    struct media_event e = wait_event(MEDIA_PLAYED, 1000);
    assert_int_equal(e.token, 77);
    assert_int_equal(e.id, 1);
    rig_down(&r);
}

/* The samples of packet k of the signal the peer sends in the recording test. */
static void packet_codes(int k, uint8_t out[160])
{
    for (int i = 0; i < 160; i++) {
        int n = k * 160 + i;
        out[i] = audio_encode(AUDIO_PCMU, (int16_t)(6000 * sin(2 * M_PI * 440 * n / 8000.0) +
                                                    3000 * sin(2 * M_PI * 1230 * n / 8000.0)));
    }
}

static void test_media_records_despite_the_network(void **state)
{
    (void)state;
    struct rig r;
    rig_up(&r, 0, 101, NULL, 1);
    media_record(r.m, r.ms, 10000, 0);
    const uint32_t ts0 = 0xFFFFFFFFu - 7999; /* wraps past 2^32 half way */
    const uint32_t ssrc = 0x1234;
    uint8_t codes[160];
    /* The order packets go out in: 10 and 11 swapped, 20 lost, 30 twice, 40..49 held back and
     * sent at once after 50 (jitter of 200 ms), 60..69 with a CSRC in the header. */
    int order[120], n = 0;
    for (int k = 0; k < 100; k++) {
        if (k == 20 || (k >= 40 && k < 50))
            continue;
        if (k == 10) {
            order[n++] = 11;
            order[n++] = 10;
            k++;
            continue;
        }
        order[n++] = k;
        if (k == 30)
            order[n++] = 30;
        if (k == 50)
            for (int j = 40; j < 50; j++)
                order[n++] = j;
    }
    for (int i = 0; i < n; i++) {
        int k = order[i];
        packet_codes(k, codes);
        send_rtp(&r, r.peer, 0, (uint16_t)(100 + k), ts0 + 160u * (uint32_t)k, ssrc, codes, 160,
                 k >= 60 && k < 70);
        if (k < 40 || k >= 50)
            usleep(20000);
    }
    /* A stranger's packets (another socket) are not recorded: the session latched on the
     * peer. */
    int stranger = udp_socket(NULL);
    uint8_t loud[160];
    memset(loud, 0x80, sizeof loud);
    for (int k = 100; k < 105; k++)
        send_rtp(&r, stranger, 0, (uint16_t)(100 + k), ts0 + 160u * (uint32_t)k, ssrc, loud, 160,
                 0);
    close(stranger);
    usleep(100000);
    struct media_recording rec;
    media_take_recording(r.m, r.ms, &rec);
    assert_non_null(rec.samples);
    assert_true(rec.voiced);
    assert_int_equal(rec.n, 100 * 160);
    for (int k = 0; k < 100; k++) {
        packet_codes(k, codes);
        for (int i = 0; i < 160; i++) {
            int want = k == 20 ? 0 : audio_decode(AUDIO_PCMU, codes[i]);
            if (rec.samples[k * 160 + i] != want)
                fail_msg("packet %d sample %d: %d, want %d", k, i, rec.samples[k * 160 + i], want);
        }
    }
    free(rec.samples);
    rig_down(&r);
}

static void test_media_dtmf_silence_limit(void **state)
{
    (void)state;
    struct rig r;
    rig_up(&r, 0, 101, NULL, 1);
    /* RFC 4733: digit 5 in three packets and its end three times, one timestamp; then #. */
    uint8_t ev[4];
    for (int i = 0; i < 6; i++) {
        ev[0] = 5;
        ev[1] = (uint8_t)(i >= 3 ? 0x80 | 10 : 10);
        ev[2] = 0;
        ev[3] = (uint8_t)(160 * (i + 1));
        send_rtp(&r, r.peer, 101, (uint16_t)(1 + i), 1000, 9, ev, 4, 0);
    }
    ev[0] = 11;
    ev[1] = 0x80;
    send_rtp(&r, r.peer, 101, 7, 2600, 9, ev, 4, 0);
    send_rtp(&r, r.peer, 101, 8, 2600, 9, ev, 4, 0);
    assert_int_equal(wait_event(MEDIA_DTMF, 2000).digit, '5');
    assert_int_equal(wait_event(MEDIA_DTMF, 2000).digit, '#');
    usleep(100000);
    assert_int_equal(count_events(MEDIA_DTMF), 0);

    /* 300 ms of silence after 200 ms of speech ends the recording; the silence is cut. */
    media_record(r.m, r.ms, 10000, 300);
    uint8_t codes[160];
    for (int k = 0; k < 10; k++) {
        packet_codes(k, codes);
        send_rtp(&r, r.peer, 0, (uint16_t)(20 + k), 50000 + 160u * (uint32_t)k, 9, codes, 160, 0);
        usleep(20000);
    }
    memset(codes, audio_silence(AUDIO_PCMU), sizeof codes);
    int64_t start = util_mono_ms();
    for (int k = 10; k < 60 && count_events(MEDIA_RECORD_SILENCE) == 0; k++) {
        send_rtp(&r, r.peer, 0, (uint16_t)(20 + k), 50000 + 160u * (uint32_t)k, 9, codes, 160, 0);
        usleep(20000);
    }
    wait_event(MEDIA_RECORD_SILENCE, 1000);
    assert_true(util_mono_ms() - start < 900);
    struct media_recording rec;
    media_take_recording(r.m, r.ms, &rec);
    /* the speech, and the silence after it up to 300 ms of it */
    assert_true(rec.n > 10 * 160 + AUDIO_RATE / 5 && rec.n <= 10 * 160 + AUDIO_RATE * 3 / 10);
    free(rec.samples);

    /* The length limit; nothing said at all is not voiced. */
    media_record(r.m, r.ms, 200, 0);
    wait_event(MEDIA_RECORD_LIMIT, 1000);
    media_take_recording(r.m, r.ms, &rec);
    assert_false(rec.voiced);
    free(rec.samples);
    rig_down(&r);
}

int main(void)
{
    log_set_level(LOGL_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sdp_offer),
        cmocka_unit_test(test_sdp_answer),
        cmocka_unit_test(test_target_tokens),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_media_sends),
        cmocka_unit_test(test_media_records_despite_the_network),
        cmocka_unit_test(test_media_dtmf_silence_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
