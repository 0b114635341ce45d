/* SDP offer and answer (RFC 3264, RFC 4566) for the voicemail user agent: G.711 (PCMU and
 * PCMA) and telephone-event (RFC 4733), 20 ms packets. Sofia's SDP parser reads the other
 * side's description; ours is written here as text (a handful of lines). */
#include "util/util.h"
#include "voicemail/vm_int.h"

#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <sofia-sip/sdp.h>
#include <sofia-sip/su_alloc.h>

/* The formats of one audio stream we can use, in the other side's order of preference. */
struct formats {
    int pt[16];
    int law[16]; /* law + 1 for audio; 0 for telephone-event */
    int n;
    int te_pt; /* -1: none */
    int audio; /* audio formats among them */
    char te_fmtp[64];
};

static void read_formats(sdp_media_t const *m, struct formats *f)
{
    memset(f, 0, sizeof *f);
    f->te_pt = -1;
    for (sdp_rtpmap_t const *rm = m->m_rtpmaps; rm && f->n < 16; rm = rm->rm_next) {
        if (!rm->rm_encoding || rm->rm_rate != AUDIO_RATE)
            continue;
        int law = 0;
        if (strcasecmp(rm->rm_encoding, "PCMU") == 0)
            law = AUDIO_PCMU + 1;
        else if (strcasecmp(rm->rm_encoding, "PCMA") == 0)
            law = AUDIO_PCMA + 1;
        else if (strcasecmp(rm->rm_encoding, "telephone-event") == 0 && f->te_pt < 0)
            f->te_pt = rm->rm_pt;
        else
            continue;
        if (!law)
            snprintf(f->te_fmtp, sizeof f->te_fmtp, "%s", rm->rm_fmtp ? rm->rm_fmtp : "0-16");
        else
            f->audio++;
        f->pt[f->n] = rm->rm_pt;
        f->law[f->n] = law;
        f->n++;
    }
}

/* Fills r from the formats and the stream's address. */
static void fill_remote(sdp_session_t const *sess, sdp_media_t const *m, const struct formats *f,
                        struct media_remote *r)
{
    memset(r, 0, sizeof *r);
    r->te_pt = f->te_pt;
    r->send_pt = -1;
    for (int i = 0; i < f->n; i++) {
        if (!f->law[i])
            continue;
        r->pt_law[f->pt[i]] = f->law[i];
        if (r->send_pt < 0) {
            r->send_pt = f->pt[i];
            r->send_law = (enum audio_law)(f->law[i] - 1);
        }
    }
    sdp_connection_t const *c = m->m_connections ? m->m_connections : sess->sdp_connection;
    if (!c || !c->c_address || m->m_port == 0 || m->m_port > 65535)
        return;
    /* A numeric address only (no DNS on this thread); 0.0.0.0 is the old way to hold.
     * Without one, the peer's first packet tells where it is (media.c latches on it). */
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    hints.ai_socktype = SOCK_DGRAM;
    char port[8];
    snprintf(port, sizeof port, "%lu", m->m_port);
    if (strcmp(c->c_address, "0.0.0.0") == 0 || getaddrinfo(c->c_address, port, &hints, &ai) != 0)
        return;
    if (ai->ai_addrlen <= sizeof r->addr) {
        memcpy(&r->addr, ai->ai_addr, ai->ai_addrlen);
        r->addrlen = ai->ai_addrlen;
    }
    freeaddrinfo(ai);
}

static const char *mode_answer(unsigned offer_mode)
{
    switch (offer_mode) {
    case sdp_sendonly:
        return "recvonly";
    case sdp_recvonly:
        return "sendonly";
    case sdp_inactive:
        return "inactive";
    default:
        return "sendrecv";
    }
}

/* Appends printf text to out; -1 once it no longer fits. */
static int add(char *out, size_t outlen, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int add(char *out, size_t outlen, size_t *len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out + *len, outlen - *len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= outlen - *len)
        return -1;
    *len += (size_t)n;
    return 0;
}

static const char *encoding(int law)
{
    return law == AUDIO_PCMA + 1 ? "PCMA" : "PCMU";
}

int vm_sdp_make(const char *answer_to, size_t answer_len, const char *addr, int port,
                uint64_t session_id, unsigned version, char *out, size_t outlen,
                struct media_remote *r)
{
    const char *ip = strchr(addr, ':') ? "IP6" : "IP4";
    size_t len = 0;
    if (add(out, outlen, &len,
            "v=0\r\no=sipbx %llu %u IN %s %s\r\ns=sipbx voicemail\r\nc=IN %s %s\r\nt=0 0\r\n",
            (unsigned long long)session_id, version, ip, addr, ip, addr) != 0)
        return -1;
    if (!answer_to) {
        return add(out, outlen, &len,
                   "m=audio %d RTP/AVP 0 8 %d\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
                   "a=rtpmap:%d telephone-event/8000\r\na=fmtp:%d 0-16\r\na=ptime:20\r\n"
                   "a=sendrecv\r\n",
                   port, VM_TE_PT, VM_TE_PT, VM_TE_PT);
    }
    su_home_t home[1] = {SU_HOME_INIT(home)};
    sdp_parser_t *p = sdp_parse(home, answer_to, (issize_t)answer_len, 0);
    sdp_session_t const *sess = p ? sdp_session(p) : NULL;
    int rc = sess ? 488 : -1, chosen = 0;
    for (sdp_media_t const *m = sess ? sess->sdp_media : NULL; m; m = m->m_next) {
        struct formats f;
        read_formats(m, &f);
        if (!chosen && m->m_type == sdp_media_audio && m->m_proto == sdp_proto_rtp &&
            m->m_port != 0 && f.audio > 0) {
            chosen = 1;
            rc = 0;
            fill_remote(sess, m, &f, r);
            if (add(out, outlen, &len, "m=audio %d RTP/AVP", port) != 0)
                rc = -1;
            for (int i = 0; i < f.n && rc == 0; i++)
                rc = add(out, outlen, &len, " %d", f.pt[i]);
            if (rc == 0)
                rc = add(out, outlen, &len, "\r\n");
            for (int i = 0; i < f.n && rc == 0; i++) {
                if (f.law[i])
                    rc = add(out, outlen, &len, "a=rtpmap:%d %s/8000\r\n", f.pt[i],
                             encoding(f.law[i]));
                else
                    rc = add(out, outlen, &len,
                             "a=rtpmap:%d telephone-event/8000\r\na=fmtp:%d %s\r\n", f.pt[i],
                             f.pt[i], f.te_fmtp);
            }
            if (rc == 0)
                rc = add(out, outlen, &len, "a=ptime:20\r\na=%s\r\n", mode_answer(m->m_mode));
        } else {
            /* Every other stream is refused with port 0 (RFC 3264 6), in its place, with one
             * of its formats (RTP ones are parsed into rtpmaps, others kept as text). */
            char pt[8];
            snprintf(pt, sizeof pt, "%u", m->m_rtpmaps ? (unsigned)m->m_rtpmaps->rm_pt : 0u);
            const char *fmt = m->m_rtpmaps                         ? pt
                              : m->m_format && m->m_format->l_text ? m->m_format->l_text
                                                                   : "0";
            if (add(out, outlen, &len, "m=%s 0 %s %s\r\n",
                    m->m_type_name ? m->m_type_name : "audio",
                    m->m_proto_name ? m->m_proto_name : "RTP/AVP", fmt) != 0)
                rc = -1;
        }
        if (rc < 0)
            break;
    }
    sdp_parser_free(p);
    su_home_deinit(home);
    return rc;
}

int vm_sdp_read_answer(const char *sdp, size_t len, struct media_remote *r)
{
    su_home_t home[1] = {SU_HOME_INIT(home)};
    sdp_parser_t *p = sdp_parse(home, sdp, (issize_t)len, 0);
    sdp_session_t const *sess = p ? sdp_session(p) : NULL;
    int rc = sess ? 488 : -1;
    for (sdp_media_t const *m = sess ? sess->sdp_media : NULL; m; m = m->m_next) {
        struct formats f;
        read_formats(m, &f);
        if (m->m_type == sdp_media_audio && m->m_port != 0 && f.audio > 0) {
            fill_remote(sess, m, &f, r);
            rc = 0;
            break;
        }
    }
    sdp_parser_free(p);
    su_home_deinit(home);
    return rc;
}
