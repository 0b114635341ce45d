/* The nta agent: transports, the message callback that receives every new request (and
 * drops those of blocked addresses before any transaction exists), the dispatch table by
 * method, the housekeeping timer, signal handling and cross-thread calls. */
#include "sip/ban.h"
#include "sip/digest.h"
#include "sip/sip_int.h"
#include "sip/trace.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <netdb.h>
#include <pthread.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sofia-sip/msg_addr.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/su_log.h>
#include <sofia-sip/su_tagarg.h>
#include <sofia-sip/nta_stateless.h>
#include <sofia-sip/nta_tag.h>
#include <sofia-sip/nta_tport.h>
#include <sofia-sip/tport.h>
#include <sofia-sip/tport_tag.h>

/* Socket buffers of the UDP transport. The kernel default (about 208 KiB) holds a few hundred
 * datagrams: a burst of phones re-registering after a network outage, or the SIP thread
 * briefly off its core, overflows it and the phones retransmit. 1 MiB (the kernel doubles it
 * for its bookkeeping) rides out about four times longer a stall; as root it is granted
 * past net.core.rmem_max, otherwise up to that limit. */
#define UDP_BUFFER_BYTES (1u << 20)
/* How often the writer looks for user changes and blocks lifted with the CLI (two queries
 * of a counter): a user added or a block lifted with the CLI reaches the running daemon
 * within this (the goal is under 100 ms). */
#define WRITER_TICK_MS 50

const char *const sip_method_slot_names[SIP_METHOD_SLOTS] = {
    "REGISTER", "INVITE", "ACK",  "BYE",    "CANCEL", "OPTIONS", "MESSAGE", "SUBSCRIBE",
    "NOTIFY",   "REFER",  "INFO", "UPDATE", "PRACK",  "PUBLISH", "other"};

static int method_slot(const char *name)
{
    for (int i = 0; i < SIP_METHOD_SLOTS - 1; i++)
        if (strcmp(sip_method_slot_names[i], name) == 0)
            return i;
    return SIP_METHOD_SLOTS - 1;
}

void sip_count_response(struct sip *s, int status)
{
    if (status >= 100 && status < 700)
        atomic_fetch_add_explicit(&s->responses[status / 100], 1, memory_order_relaxed);
}

void sip_get_stats(struct sip *s, struct sip_stats *out)
{
    for (int i = 0; i < SIP_METHOD_SLOTS; i++)
        out->requests[i] = atomic_load_explicit(&s->requests[i], memory_order_relaxed);
    for (int i = 0; i < 7; i++)
        out->responses[i] = atomic_load_explicit(&s->responses[i], memory_order_relaxed);
    out->auth_failures = atomic_load_explicit(&s->auth_failures, memory_order_relaxed);
    out->forged_in_dialog = atomic_load_explicit(&s->forged_in_dialog, memory_order_relaxed);
    out->untraced = trace_untraced(s->trace);
    out->conns_closed = atomic_load_explicit(&s->conns_closed, memory_order_relaxed);
    out->registrations = atomic_load_explicit(&s->registrations, memory_order_relaxed);
    out->blocked_sources = atomic_load_explicit(&s->blocked_sources, memory_order_relaxed);
    out->blocks = atomic_load_explicit(&s->blocks, memory_order_relaxed);
    out->blocked_requests = atomic_load_explicit(&s->blocked_requests, memory_order_relaxed);
    out->attacked_extensions = atomic_load_explicit(&s->attacked_extensions, memory_order_relaxed);
    out->nonces_retired = atomic_load_explicit(&s->nonces_retired, memory_order_relaxed);
    for (int i = 0; i < SIP_EVENT_PACKAGES; i++)
        out->subscriptions[i] = atomic_load_explicit(&s->subscriptions[i], memory_order_relaxed);
    out->notifies_sent = atomic_load_explicit(&s->notifies_sent, memory_order_relaxed);
    out->publications = atomic_load_explicit(&s->publications, memory_order_relaxed);
    for (int i = 0; i < SIP_DISPOSITIONS; i++)
        out->calls[i] = atomic_load_explicit(&s->calls_ended[i], memory_order_relaxed);
    for (int i = 0; i < 2; i++) {
        out->pool_bytes[i] = atomic_load_explicit(&s->pool_bytes[i], memory_order_relaxed);
        out->transactions[i] = atomic_load_explicit(&s->transactions[i], memory_order_relaxed);
    }
}

struct kick_arg {
    struct sip *s;
    const char *ext;
};

static int kick_on_sip_thread(void *arg)
{
    struct kick_arg *k = arg;
    return (int)reg_remove_user(k->s, k->ext);
}

int sip_kick(struct sip *s, const char *ext)
{
    struct kick_arg k = {s, ext};
    return sip_execute(s, kick_on_sip_thread, &k);
}

/* Sends a response on irq (and releases it when final). */
static void reply_irq(struct sip *s, nta_incoming_t *irq, int status, char const *phrase,
                      tagi_t const *tags)
{
    sip_count_response(s, status);
    nta_incoming_treply(irq, status, phrase ? phrase : sip_status_phrase(status),
                        SIPTAG_SERVER_STR(SIP_SERVER_HEADER), TAG_NEXT(tags));
    if (status >= 200)
        nta_incoming_destroy(irq);
}

void sip_reply(struct sip *s, nta_incoming_t *irq, int status, char const *phrase, tag_type_t tag,
               tag_value_t value, ...)
{
    ta_list ta;
    ta_start(ta, tag, value);
    reply_irq(s, irq, status, phrase, ta_args(ta));
    ta_end(ta);
}

/* The To tag of an answer sent without a transaction to a request without one: a MAC under
 * our Record-Route key of the request's Call-ID, From tag and CSeq number. The same for a
 * retransmission and for the ACK of the answer (which carries that CSeq number); nothing
 * is kept. */
static void stateless_tag(struct sip *s, sip_t const *sip, char out[SIP_STATELESS_TAG_LEN + 1])
{
    out[0] = 'c';
    util_hmac_hexf(s->rr_key, sizeof s->rr_key, out + 1, (SIP_STATELESS_TAG_LEN - 1) / 2,
                   "stateless\n%s\n%s\n%u", sip->sip_call_id->i_id,
                   sip->sip_from->a_tag ? sip->sip_from->a_tag : "",
                   (unsigned)sip->sip_cseq->cs_seq);
}

/* Answers msg without a transaction: the request's To with a stateless_tag() when it has
 * no tag (and the headers the tag is made of). */
static void reply_stateless(struct sip *s, msg_t *msg, int status, char const *phrase,
                            tagi_t const *tags)
{
    sip_t const *sip = sip_object(msg);
    su_home_t home[1] = {SU_HOME_INIT(home)};
    sip_to_t *to = NULL;
    if (sip && sip->sip_to && sip->sip_from && sip->sip_call_id && sip->sip_cseq &&
        !sip->sip_to->a_tag && status > 100) {
        char tag[SIP_STATELESS_TAG_LEN + 1];
        stateless_tag(s, sip, tag);
        to = sip_to_dup(home, sip->sip_to);
        if (to && sip_to_tag(home, to, tag) < 0)
            to = NULL; /* out of memory: nta makes up a tag */
    }
    sip_count_response(s, status);
    nta_msg_treply(s->agent, msg_ref(msg), status, phrase ? phrase : sip_status_phrase(status),
                   TAG_IF(to, SIPTAG_TO(to)), SIPTAG_SERVER_STR(SIP_SERVER_HEADER), TAG_NEXT(tags));
    su_home_deinit(home);
}

void sip_req_reply(struct sip *s, const struct sip_req *r, int status, char const *phrase,
                   tag_type_t tag, tag_value_t value, ...)
{
    ta_list ta;
    ta_start(ta, tag, value);
    sip_t const *sip = r->irq ? NULL : sip_object(r->msg);
    if (r->irq)
        reply_irq(s, r->irq, status, phrase, ta_args(ta));
    else if (sip && sip->sip_request && sip->sip_request->rq_method == sip_method_register)
        regcache_reply(s, r->msg, status, phrase ? phrase : sip_status_phrase(status), ta_args(ta));
    else
        reply_stateless(s, r->msg, status, phrase, ta_args(ta));
    ta_end(ta);
}

int sip_stateless_acked(struct sip *s, sip_t const *sip)
{
    if (sip->sip_request->rq_method != sip_method_ack || !sip->sip_to || !sip->sip_to->a_tag ||
        !sip->sip_call_id || !sip->sip_cseq || !sip->sip_from ||
        strlen(sip->sip_to->a_tag) != SIP_STATELESS_TAG_LEN)
        return 0;
    char tag[SIP_STATELESS_TAG_LEN + 1];
    stateless_tag(s, sip, tag);
    return strcmp(tag, sip->sip_to->a_tag) == 0;
}

/* The source address of msg in canonical text form; 0, or -1 when it has none. */
static int msg_source(msg_t *msg, char *out, size_t outlen)
{
    su_addrinfo_t *ai = msg ? msg_addrinfo(msg) : NULL;
    if (!ai || !ai->ai_addr ||
        (ai->ai_addr->sa_family != AF_INET && ai->ai_addr->sa_family != AF_INET6)) {
        snprintf(out, outlen, "?");
        return -1;
    }
    struct util_addr a;
    util_addr_from_sockaddr(ai->ai_addr, &a);
    util_addr_format(&a, out, outlen);
    return 0;
}

int sip_source_addr(const struct sip_req *r, char *out, size_t outlen)
{
    return msg_source(r->msg, out, outlen);
}

const char *sip_transport_of(struct sip *s, nta_incoming_t *irq, msg_t *msg)
{
    tport_t *tp = nta_incoming_transport(s->agent, irq, msg);
    const char *name = !tp                   ? "udp"
                       : tport_has_tls(tp)   ? "tls"
                       : tport_is_stream(tp) ? "tcp"
                                             : "udp";
    tport_unref(tp);
    return name;
}

void sip_source(struct sip *s, const struct sip_req *r, char *addr, size_t addrlen, char *transport,
                size_t tlen)
{
    snprintf(addr, addrlen, "?");
    su_addrinfo_t *ai = r->msg ? msg_addrinfo(r->msg) : NULL;
    if (ai && ai->ai_addr) {
        char host[INET6_ADDRSTRLEN] = "?";
        if (ai->ai_addr->sa_family == AF_INET6) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ai->ai_addr;
            inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof host);
            snprintf(addr, addrlen, "[%s]:%d", host, ntohs(s6->sin6_port));
        } else {
            struct sockaddr_in *s4 = (struct sockaddr_in *)ai->ai_addr;
            inet_ntop(AF_INET, &s4->sin_addr, host, sizeof host);
            snprintf(addr, addrlen, "%s:%d", host, ntohs(s4->sin_port));
        }
    }
    snprintf(transport, tlen, "%s", sip_transport_of(s, r->irq, r->irq ? NULL : r->msg));
}

void sip_keep_trace(struct sip *s, const char *call_id)
{
    trace_accept(s->trace, call_id);
}

void sip_accepted(struct sip *s, const struct sip_req *r, sip_t const *sip)
{
    trace_accept(s->trace, sip->sip_call_id->i_id);
    if (r->irq)
        conns_request(s, r->irq, 1);
}

#define LOG_QUIET_SECONDS 60 /* one line per source and kind of refusal at most this often */

int sip_log_due(struct sip *s, const char *what, const char *source)
{
    char key[160];
    size_t n = strcspn(source, "]"); /* "[v6]:port" or "v4:port": the address only */
    if (source[0] == '[')
        n++;
    else
        n = strcspn(source, ":");
    snprintf(key, sizeof key, "%s|%.*s", what, (int)n, source);
    int64_t now = util_mono();
    int64_t *last = strmap_get(s->quiet, key);
    if (last && now - *last < LOG_QUIET_SECONDS)
        return 0;
    if (!last) {
        last = util_xmalloc(sizeof *last);
        strmap_put(s->quiet, key, last, NULL);
    }
    *last = now;
    return 1;
}

static int drop_quiet(const char *key, void *val, void *ctx)
{
    (void)key;
    if (*(int64_t *)ctx - *(int64_t *)val >= LOG_QUIET_SECONDS) {
        free(val);
        return STRMAP_DROP;
    }
    return STRMAP_KEEP;
}

/* ---- requests handled by sipbx itself ---- */

static void handle_options(struct sip *s, const struct sip_req *r, sip_t const *sip)
{
    (void)sip;
    sip_req_reply(s, r, SIP_200_OK, SIPTAG_ALLOW_STR(SIP_ALLOW),
                  SIPTAG_ACCEPT_STR("application/sdp"), SIPTAG_ALLOW_EVENTS_STR("presence, dialog"),
                  TAG_END());
}

/* OPTIONS to the server itself (no user, or a keep-alive outside a dialog to our address)
 * is ours to answer; to a user it is routed like any request. */
static int options_for_us(sip_t const *sip)
{
    url_t const *ruri = sip->sip_request->rq_url;
    return (!sip->sip_to || !sip->sip_to->a_tag) && (!ruri->url_user || !*ruri->url_user);
}

static void handle_options_or_route(struct sip *s, const struct sip_req *r, sip_t const *sip)
{
    if (options_for_us(sip))
        handle_options(s, r, sip);
    else
        proxy_handle(s, r, sip);
}

/* The dispatch table: requests for sipbx itself; everything else goes to the proxy.
 * sipbx is the presence server of its domain: SUBSCRIBE and PUBLISH end here. */
static const struct {
    sip_method_t method;
    void (*handle)(struct sip *s, const struct sip_req *r, sip_t const *sip);
} routes[] = {
    {sip_method_register, reg_handle},
    {sip_method_options, handle_options_or_route},
    {sip_method_subscribe, subs_handle},
    {sip_method_publish, pres_publish_handle},
};

/* True when on_request hands sip to the proxy (routes[] has no handler of its own). */
static int for_proxy(sip_t const *sip)
{
    switch (sip->sip_request->rq_method) {
    case sip_method_register:
    case sip_method_subscribe:
    case sip_method_publish:
        return 0;
    case sip_method_options:
        return !options_for_us(sip);
    default:
        return 1;
    }
}

static void on_request(struct sip *s, const struct sip_req *r, sip_t const *sip)
{
    sip_method_t method = sip->sip_request->rq_method;
    atomic_fetch_add_explicit(&s->requests[method_slot(sip->sip_request->rq_method_name)], 1,
                              memory_order_relaxed);
    if (r->irq)
        conns_request(s, r->irq, 0);
    size_t i = 0;
    while (i < sizeof routes / sizeof routes[0] && routes[i].method != method)
        i++;
    if (i < sizeof routes / sizeof routes[0])
        routes[i].handle(s, r, sip);
    else
        proxy_handle(s, r, sip);
    atomic_store_explicit(&s->registrations, reg_count(s->reg), memory_order_relaxed);
}

int sip_streamed(struct sip *s, msg_t *msg)
{
    tport_t *tp = nta_incoming_transport(s->agent, NULL, msg);
    int stream = !tp || tport_is_stream(tp);
    tport_unref(tp);
    return stream;
}

/* nta's message callback: every request that is not a retransmission or an ACK/CANCEL of
 * a transaction nta has (and stray responses, which are dropped, as nta itself does when
 * there is no callback). A request from a blocked address is dropped here, before a server
 * transaction or anything else is made for it: no reply (a scanner on UDP gets nothing to
 * reflect at a forged source, and a guess nothing to learn from), no digest evaluated, and
 * a TCP connection it came on is shut. Over UDP, these are answered without a server
 * transaction: a REGISTER (regcache.c: no 32 s of state per registration in a storm), the
 * challenge of a REGISTER or a new call without credentials (auth.c), and what the proxy
 * refuses from the request alone (proxy_refused); the ACK of such an answer is dropped.
 * Other requests get their server transaction here and go to the dispatch table. */
static int on_message(struct sip *s, nta_agent_t *agent, msg_t *msg, sip_t *sip)
{
    if (!sip || !sip->sip_request) {
        msg_destroy(msg);
        return 0;
    }
    char source[UTIL_ADDR_STRLEN];
    if (msg_source(msg, source, sizeof source) == 0 && ban_blocked(s->ban, source, util_now())) {
        atomic_fetch_add_explicit(&s->blocked_requests, 1, memory_order_relaxed);
        tport_t *tp = nta_incoming_transport(agent, NULL, msg);
        if (tp && tport_is_stream(tp))
            tport_shutdown(tp, 1); /* send FIN, as nta does to a stream it gives up on */
        if (tp)
            tport_unref(tp);
        msg_destroy(msg);
        return 0;
    }
    int slot = method_slot(sip->sip_request->rq_method_name);
    /* The ACK of an answer sent without a transaction; then, over UDP, what the proxy
     * refuses from the request alone, answered without one too (a transaction's answer to
     * an INVITE is resent for 32 s until an ACK comes: to a forged source, an amplifier). */
    struct sip_req bare = {.msg = msg};
    int screened = for_proxy(sip) && !sip_streamed(s, msg);
    if (sip_stateless_acked(s, sip) || (screened && proxy_refused(s, &bare, sip))) {
        atomic_fetch_add_explicit(&s->requests[slot], 1, memory_order_relaxed);
        msg_destroy(msg);
        return 0;
    }
    const struct sip_user *caller;
    if (auth_challenge_stateless(s, msg, sip, screened, &caller)) { /* msg and sip are gone */
        atomic_fetch_add_explicit(&s->requests[slot], 1, memory_order_relaxed);
        return 0;
    }
    if (regcache_stateless(s, msg, sip)) {
        if (regcache_resend(s, msg, sip)) { /* a retransmission: its answer again */
            atomic_fetch_add_explicit(&s->requests[slot], 1, memory_order_relaxed);
            msg_destroy(msg);
            return 0;
        }
        struct sip_req r = {.msg = msg};
        on_request(s, &r, sip);
        msg_destroy(msg);
        return 0;
    }
    /* The transaction takes msg; our own reference keeps sip valid while the request is
     * handled, since a final reply can free the transaction (and its reference) at once. */
    msg_ref(msg);
    nta_incoming_t *irq = nta_incoming_create(agent, NULL, msg, sip, TAG_END());
    if (irq) {
        struct sip_req r = {.irq = irq, .msg = msg, .caller = caller, .screened = screened};
        on_request(s, &r, sip);
    } else if (sip->sip_request->rq_method != sip_method_ack) {
        nta_msg_treply(agent, msg_ref(msg), SIP_500_INTERNAL_SERVER_ERROR, TAG_END());
    }
    msg_destroy(msg);
    return 0;
}

/* ---- housekeeping, signals ---- */

static void on_housekeeping(struct sip *s, su_timer_t *t, void *arg)
{
    (void)t;
    (void)arg;
    int64_t now = util_now();
    calls_expire(s, util_mono());
    calls_expire_refers(s);
    conns_sweep(s);
    reg_expire(s, now);
    pres_expire(s, now);
    subs_expire(s, now);
    digest_prune(s->digest, now);
    int64_t mono = util_mono();
    strmap_foreach(s->quiet, drop_quiet, &mono);
    ban_tick(s->ban, now);
    blocks_publish_stats(s);
    regcache_prune(s, util_mono_ms());
    atomic_store_explicit(&s->registrations, reg_count(s->reg), memory_order_relaxed);
    atomic_store_explicit(&s->pool_bytes[0], util_pool_stats(s->pool).mapped, memory_order_relaxed);
    atomic_store_explicit(&s->pool_bytes[1], digest_pool_bytes(s->digest), memory_order_relaxed);
    usize_t irqs = 0, orqs = 0;
    nta_agent_get_stats(s->agent, NTATAG_S_IRQ_HASH_USED_REF(irqs),
                        NTATAG_S_ORQ_HASH_USED_REF(orqs), TAG_END());
    atomic_store_explicit(&s->transactions[0], irqs, memory_order_relaxed);
    atomic_store_explicit(&s->transactions[1], orqs, memory_order_relaxed);
    memtrim_tick(s, mono);
}

static int on_signal(struct sip *s, su_wait_t *w, struct sip *arg)
{
    (void)w;
    (void)arg;
    struct signalfd_siginfo si;
    if (read(s->sigfd, &si, sizeof si) == (ssize_t)sizeof si)
        log_info("signal %s received: stopping", strsignal((int)si.ssi_signo));
    su_root_break(s->root);
    return 0;
}

/* Sofia's own error reports (tport, nta) go to our log at debug level. */
static void sofia_log(void *ctx, char const *fmt, va_list ap)
{
    (void)ctx;
    if (log_get_level() < LOGL_DEBUG)
        return;
    char line[1024];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    log_debug("sofia: %s", line);
}

/* Binds and releases host:port for UDP and TCP (only TCP with stream_only), so a port in
 * use is reported with its real reason (nta only says that it failed). Returns 0 or an
 * errno value. */
static int probe_port(const char *host, int port, int stream_only)
{
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE;
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    int types[2] = {SOCK_DGRAM, SOCK_STREAM};
    for (int i = stream_only ? 1 : 0; i < 2; i++) {
        hints.ai_socktype = types[i];
        if (getaddrinfo(host, service, &hints, &ai) != 0)
            return EADDRNOTAVAIL;
        int fd = socket(ai->ai_family, ai->ai_socktype, 0);
        int one = 1, rc = 0;
        if (fd < 0) {
            rc = errno;
        } else {
            if (types[i] == SOCK_STREAM)
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0)
                rc = errno;
            close(fd);
        }
        freeaddrinfo(ai);
        if (rc)
            return rc;
    }
    return 0;
}

/* Adds the TLS transport on cfg's `tls` address with the certificate Sofia reads from
 * tls_dir (agent.pem, see cert/cert.h). Peers are not asked for certificates (phones have
 * none; they authenticate with digest like on any transport). Returns 0, or -1 with one
 * readable line in err. */
static int add_tls(struct sip *s, const struct config *cfg, const char *tls_dir, char *err,
                   size_t errlen)
{
    char url[CONFIG_STR_MAX + 32];
    snprintf(url, sizeof url, strchr(cfg->sip_tls_host, ':') ? "sips:[%s]:%d" : "sips:%s:%d",
             cfg->sip_tls_host, cfg->sip_tls_port);
    int perr = probe_port(cfg->sip_tls_host, cfg->sip_tls_port, 1);
    if (perr) {
        snprintf(err, errlen, "cannot listen for SIP over TLS on %s:%d: %s", cfg->sip_tls_host,
                 cfg->sip_tls_port, perr == EADDRINUSE ? "port in use" : strerror(perr));
        return -1;
    }
    if (!tls_dir ||
        nta_agent_add_tport(s->agent, URL_STRING_MAKE(url), TPTAG_CERTIFICATE(tls_dir),
                            TPTAG_TLS_VERIFY_POLICY(TPTLS_VERIFY_NONE), TAG_END()) < 0) {
        snprintf(err, errlen, "cannot listen for SIP over TLS on %s:%d%s%s", cfg->sip_tls_host,
                 cfg->sip_tls_port, tls_dir ? " with the certificate in " : ": no certificate",
                 tls_dir ? tls_dir : "");
        return -1;
    }
    tport_t *tls = tport_by_protocol(nta_agent_tports(s->agent), "tls");
    tp_name_t const *n = tls ? tport_name(tls) : NULL;
    s->tls_port = n && n->tpn_port ? atoi(n->tpn_port) : cfg->sip_tls_port;
    return 0;
}

int sip_create(struct sip **out, const struct config *cfg, const char *domain,
               const unsigned char secret[SIP_SECRET_LEN], const char *tls_dir, struct store *st,
               struct store_writer *w, char *err, size_t errlen)
{
    struct sip *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    su_home_init(s->home);
    s->cfg = cfg;
    s->writer = w;
    s->sigfd = -1;
    snprintf(s->domain, sizeof s->domain, "%s", domain);
    /* Our Record-Route names the address we listen on, or the domain when that is a
     * wildcard (the domain defaults to the host's primary address). */
    int wildcard = strcmp(cfg->sip_host, "0.0.0.0") == 0 || strcmp(cfg->sip_host, "::") == 0;
    snprintf(s->rr_host, sizeof s->rr_host, "%s", wildcard ? domain : cfg->sip_host);
    if (gethostname(s->hostname, sizeof s->hostname) != 0)
        s->hostname[0] = '\0';
    s->hostname[sizeof s->hostname - 1] = '\0';
    s->loopback = wildcard || strncmp(cfg->sip_host, "127.", 4) == 0 ||
                  strcmp(cfg->sip_host, "::1") == 0 || strcasecmp(cfg->sip_host, "localhost") == 0;
    su_log_redirect(NULL, sofia_log, NULL);

    if (!(s->root = su_root_create(s))) {
        snprintf(err, errlen, "cannot create the SIP event loop");
        goto fail;
    }
    /* The key that signs our Record-Route: derived from the database secret, so dialogs
     * stay continuable across restarts. */
    static const char rr_label[] = "sipbx record-route v1";
    util_hmac_sha256(secret, SIP_SECRET_LEN, rr_label, sizeof rr_label - 1, s->rr_key);
    if (util_pool_create(&s->pool) != 0 || strmap_create(&s->calls) != 0 ||
        strmap_create(&s->in_calls) != 0 || strmap_create(&s->refers) != 0 ||
        strmap_create(&s->quiet) != 0 || conns_create(&s->conns) != 0 ||
        regcache_create(&s->regcache) != 0 ||
        digest_create(&s->digest, secret, domain, cfg->nonce_ttl, cfg->nonce_max_failures) != 0 ||
        usercache_load(s, st) != 0 || reg_create(&s->reg, s, st) != 0) {
        snprintf(err, errlen, "cannot load users and registrations from the database");
        goto fail;
    }
    /* What lives as long as a call is allocated apart from the transactions that set it
     * up (util/pool.c says why). */
    strmap_use_pool(s->calls, s->pool);
    strmap_use_pool(s->in_calls, s->pool);
    if (blocks_create(s, st, err, errlen) != 0)
        goto fail;

    char url[CONFIG_STR_MAX + 32];
    if (strchr(cfg->sip_host, ':'))
        snprintf(url, sizeof url, "sip:[%s]:%d", cfg->sip_host, cfg->sip_port);
    else
        snprintf(url, sizeof url, "sip:%s:%d", cfg->sip_host, cfg->sip_port);
    int perr = probe_port(cfg->sip_host, cfg->sip_port, 0);
    if (perr) {
        snprintf(err, errlen, "cannot listen for SIP on %s:%d: %s", cfg->sip_host, cfg->sip_port,
                 perr == EADDRINUSE ? "port in use" : strerror(perr));
        goto fail;
    }
    if (cfg->trace) {
        char local[300];
        snprintf(local, sizeof local, "%s:%d", s->rr_host, cfg->sip_port);
        int terr = trace_create(&s->trace, w, local);
        if (terr) {
            snprintf(err, errlen, "cannot start SIP message capture: %s", strerror(terr));
            goto fail;
        }
        store_writer_set_retention(w, cfg->trace_days, (int64_t)cfg->trace_max_mb << 20);
    }
    conns_bind(s); /* before the agent: its transports accept on this thread */
    if (!sip_sofia_fixed()) {
        snprintf(err, errlen, "this Sofia-SIP has no msg_next(): cannot guard TCP streams");
        goto fail;
    }
    errno = 0;
    /* With a dump file Sofia hands every message to tport_dump_iovec(), which sip/trace.c
     * defines: the file itself gets only Sofia's banner. */
    s->agent = nta_agent_create(s->root, URL_STRING_MAKE(url), on_message, s, NTATAG_UA(0),
                                NTATAG_SERVER_RPORT(1), NTATAG_CLIENT_RPORT(1),
                                NTATAG_CANCEL_487(0), NTATAG_UDP_MTU(65535), NTATAG_MAXSIZE(65536),
                                TPTAG_UDP_RMEM(UDP_BUFFER_BYTES), TPTAG_UDP_WMEM(UDP_BUFFER_BYTES),
                                TAG_IF(s->trace, TPTAG_DUMP("/dev/null")), TAG_END());
    int agent_errno = errno;
    if (!s->agent) {
        int e = agent_errno;
        snprintf(err, errlen, "cannot listen for SIP on %s:%d (udp and tcp): %s", cfg->sip_host,
                 cfg->sip_port, e ? strerror(e) : "address unusable");
        goto fail;
    }
    sip_contact_t const *m = nta_agent_contact(s->agent);
    s->port = m && m->m_url->url_port ? atoi(m->m_url->url_port) : cfg->sip_port;
    if (cfg->sip_tls_port && add_tls(s, cfg, tls_dir, err, errlen) != 0)
        goto fail;
    /* After the agent: restored subscriptions are notified from the loop. */
    if (pres_create(s, st) != 0 || subs_create(s, st) != 0) {
        snprintf(err, errlen, "cannot load subscriptions and presence from the database");
        goto fail;
    }

    s->housekeeping = su_timer_create(su_root_task(s->root), 1000);
    if (!s->housekeeping || su_timer_set_for_ever(s->housekeeping, on_housekeeping, s) != 0) {
        snprintf(err, errlen, "cannot start the housekeeping timer");
        goto fail;
    }

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    s->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (s->sigfd < 0 || su_wait_create(s->sigwait, s->sigfd, SU_WAIT_IN) != 0 ||
        su_root_register(s->root, s->sigwait, on_signal, s, 0) < 0) {
        snprintf(err, errlen, "cannot watch for signals: %s", strerror(errno));
        goto fail;
    }
    *out = s;
    return 0;
fail:
    sip_destroy(s);
    return -1;
}

/* What the writer thread checks for the SIP side on every tick: changed users (REST, CLI)
 * and blocks lifted with the CLI. */
static void writer_tick(struct store *st, void *arg)
{
    usercache_tick(st, arg);
    blocks_tick(st, arg);
}

void sip_run(struct sip *s)
{
    store_writer_set_tick(s->writer, writer_tick, s, WRITER_TICK_MS);
    su_root_run(s->root);
    proxy_shutdown(s);
    /* No user reloads into a loop that no longer runs. */
    store_writer_set_tick(s->writer, NULL, NULL, 0);
}

void sip_stop(struct sip *s)
{
    su_root_break(s->root);
}

/* One sip_execute request, shared by the caller and the message that carries it to the SIP
 * thread; whichever lets go of it last frees it. su_task_execute would do the carrying, but
 * it waits with no limit, and a caller that gave up early could not take its request back:
 * fn would later run with an arg that no longer exists. */
struct exec_req {
    pthread_mutex_t lock;
    pthread_cond_t done_cond;
    int refs; /* the caller and the message */
    enum { EXEC_QUEUED, EXEC_RUNNING, EXEC_DONE, EXEC_WITHDRAWN } state;
    int (*fn)(void *arg);
    void *arg;
    int ret;
};

static void exec_unref(struct exec_req *x)
{
    pthread_mutex_lock(&x->lock);
    int last = --x->refs == 0;
    pthread_mutex_unlock(&x->lock);
    if (last) {
        pthread_mutex_destroy(&x->lock);
        pthread_cond_destroy(&x->done_cond);
        free(x);
    }
}

/* What sip_post sends: the work and what it works on. */
struct post {
    struct sip *s;
    void (*run)(struct sip *s, void *p);
    void (*drop)(void *p);
    void *p; /* NULL once run took it */
};

static void post_deliver(su_root_magic_t *magic, su_msg_r msg, su_msg_arg_t *arg)
{
    (void)magic;
    (void)msg;
    struct post *m = (struct post *)arg;
    void *p = m->p;
    m->p = NULL;
    m->run(m->s, p);
}

/* The message is gone: delivered (p taken), or destroyed with a loop that never ran it. */
static void post_gone(su_msg_arg_t *arg)
{
    struct post *m = (struct post *)arg;
    if (m->p && m->drop)
        m->drop(m->p);
}

int sip_post(struct sip *s, void (*run)(struct sip *s, void *p), void (*drop)(void *p), void *p)
{
    su_msg_r msg = SU_MSG_R_INIT;
    if (su_msg_new(msg, sizeof(struct post)) != 0) {
        if (drop)
            drop(p);
        return -1;
    }
    *(struct post *)su_msg_data(msg) = (struct post){s, run, drop, p};
    su_msg_deinitializer(msg, post_gone);
    if (su_msg_send_to(msg, su_root_task(s->root), post_deliver) != 0) {
        su_msg_destroy(msg); /* drops p */
        return -1;
    }
    return 0;
}

static void exec_unref_void(void *x)
{
    exec_unref(x);
}

/* On the SIP thread: runs the request unless its caller has withdrawn it. */
static void exec_on_sip_thread(struct sip *s, void *p)
{
    (void)s;
    struct exec_req *x = p;
    pthread_mutex_lock(&x->lock);
    int run = x->state == EXEC_QUEUED;
    if (run)
        x->state = EXEC_RUNNING;
    pthread_mutex_unlock(&x->lock);
    if (run) {
        int ret = x->fn(x->arg);
        pthread_mutex_lock(&x->lock);
        x->ret = ret;
        x->state = EXEC_DONE;
        pthread_cond_signal(&x->done_cond);
        pthread_mutex_unlock(&x->lock);
    }
    exec_unref(x); /* the message's reference */
}

int sip_execute(struct sip *s, int (*fn)(void *arg), void *arg)
{
    /* su_root_has_thread() answers 2 on the thread that owns the root, 1 on any other. */
    if (su_root_has_thread(s->root) == 2)
        return fn(arg);
    struct exec_req *x = util_xcalloc(1, sizeof *x);
    pthread_mutex_init(&x->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&x->done_cond, &ca);
    pthread_condattr_destroy(&ca);
    x->refs = 2; /* ours and the message's */
    x->state = EXEC_QUEUED;
    x->fn = fn;
    x->arg = arg;
    if (sip_post(s, exec_on_sip_thread, exec_unref_void, x) != 0) {
        exec_unref(x);
        errno = ENOMEM;
        return -1;
    }
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += SIP_EXECUTE_TIMEOUT_MS / 1000;
    until.tv_nsec += (long)(SIP_EXECUTE_TIMEOUT_MS % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&x->lock);
    while (x->state == EXEC_QUEUED &&
           pthread_cond_timedwait(&x->done_cond, &x->lock, &until) != ETIMEDOUT)
        ;
    if (x->state == EXEC_QUEUED)
        x->state = EXEC_WITHDRAWN; /* fn will not run: the SIP thread skips it */
    /* Once fn runs, it is waited for: arg may live on our stack, and fn is short. */
    while (x->state == EXEC_RUNNING)
        pthread_cond_wait(&x->done_cond, &x->lock);
    int done = x->state == EXEC_DONE, ret = x->ret;
    pthread_mutex_unlock(&x->lock);
    exec_unref(x);
    if (!done) {
        errno = ETIMEDOUT;
        return -1;
    }
    return ret;
}

static int no_op(void *arg)
{
    (void)arg;
    return 0;
}

int sip_barrier(struct sip *s)
{
    /* The SIP thread handles its messages in the order they were sent. */
    return sip_execute(s, no_op, NULL);
}

void sip_set_events(struct sip *s, struct events *ev)
{
    s->events = ev;
}

void sip_set_voicemail(struct sip *s, struct vm *vm)
{
    mwi_detach(s);
    s->vm = vm;
    mwi_attach(s);
}

int sip_port(const struct sip *s)
{
    return s->port;
}

int sip_tls_port(const struct sip *s)
{
    return s->tls_port;
}

void sip_destroy(struct sip *s)
{
    if (!s)
        return;
    if (s->sigfd >= 0) {
        if (s->root)
            su_root_unregister(s->root, s->sigwait, on_signal, s);
        close(s->sigfd);
    }
    if (s->housekeeping)
        su_timer_destroy(s->housekeeping);
    /* Transactions and calls first (their records go to the writer), then the agent, then
     * the capture thread, which drains what the agent wrote until it was gone. */
    proxy_shutdown(s);
    calls_destroy_all(s);
    mwi_detach(s);   /* voicemail outlives the SIP side */
    subs_destroy(s); /* NOTIFYs in flight go with their subscriptions */
    pres_destroy(s);
    if (s->agent)
        nta_agent_destroy(s->agent);
    trace_destroy(s->trace);
    reg_destroy(s->reg);
    if (s->users)
        strmap_destroy(s->users, free);
    if (s->groups)
        strmap_destroy(s->groups, free);
    if (s->quiet)
        strmap_destroy(s->quiet, free);
    strmap_destroy_pooled(s->in_calls);
    if (s->refers)
        strmap_destroy(s->refers, free);
    conns_destroy(s->conns);
    regcache_destroy(s->regcache);
    digest_destroy(s->digest);
    ban_destroy(s->ban);
    util_pool_destroy(s->pool); /* after everything that held calls */
    if (s->root)
        su_root_destroy(s->root);
    su_home_deinit(s->home);
    free(s);
}

int sip_init(void)
{
    return su_init() == 0 ? 0 : -1;
}

void sip_deinit(void)
{
    su_deinit();
}
