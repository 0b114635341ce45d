/* The stateful proxy (RFC 3261 section 16): authenticates callers, finds the callee's
 * devices, forks to all of them, relays provisional and final responses, handles CANCEL and
 * the ring timeout, record-routes so every in-dialog request passes here, and keeps the live
 * call table informed. One struct ptxn per proxied server transaction, one struct branch per
 * client transaction it started. */
#include "sip/sip_int.h"
#include "voicemail/vm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sofia-sip/msg_header.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/sip_util.h>
#include <sofia-sip/su_md5.h>
#include <sofia-sip/nta_tag.h>

#define MAX_FORK      8
#define LINGER_MS     32000 /* keep an answered INVITE 64*T1 for late 2xx from other forks */
#define ENDING_MS     2000  /* after CANCELling its branches, wait this long for their answers */
#define BRANCH_PREFIX "z9hG4bKsbx"
/* Our Record-Route carries a token (;sbx=...) that only sipbx can make: in-dialog requests
 * are relayed only when their top Route has it (see dialog_token). */
#define DIALOG_PARAM       "sbx"
#define DIALOG_TOKEN_BYTES 12 /* 96 bits of HMAC-SHA256, 24 hex digits */

struct branch {
    struct branch *next;
    struct ptxn *t;
    nta_outgoing_t *orq;
    int gen;    /* the leg it belongs to: forwarding starts a new one */
    int status; /* last status received, 0 before any */
    int cancelled;
    int cancel_due;         /* cancelled before any provisional answer: CANCEL on the first */
    nta_outgoing_t *cancel; /* our CANCEL of this branch */
    char reason[96];        /* Reason header value of that CANCEL (RFC 3326), or "" */
    char branch[64];        /* "branch=..." of our Via, which the CANCEL shares */
    char next_hop[160];     /* where the request went ("" : by its Request-URI) */
    char contact[512];
    char target[256]; /* the extension (or URI) this device belongs to */
};

struct ptxn {
    struct ptxn *next, **prev;
    struct sip *s;
    nta_incoming_t *irq;
    sip_method_t method;
    struct branch *branches;
    int pending; /* branches without a final response */
    msg_t *best; /* best non-2xx final so far (a reference we own) */
    int best_status;
    int final_sent;    /* final status sent upstream, 0 while none */
    int ending;        /* 487 (caller's CANCEL) or 408 (ring timeout): branches cancelled */
    int nbranches;     /* branches started, for unique Via branches */
    su_timer_t *timer; /* ring timeout; after a 2xx the linger time */
    struct call *call; /* initial INVITE only */
    /* Call forwarding: each forward starts a new leg (generation) of branches. */
    int gen;                        /* the current leg */
    int gen_pending;                /* branches of the current leg without a final response */
    int hops;                       /* forwards followed so far */
    char target_ext[STORE_EXT_MAX]; /* whose devices the current leg rings ("" for a URI) */
    char visited[SIP_MAX_FORWARDS + 1][STORE_EXT_MAX];
    int nvisited;
    char diversion[1024]; /* Diversion header value of the current leg (RFC 5806) */
    su_timer_t *noanswer; /* the current target's no-answer forward rule */
    char *call_id;        /* of the request (malloc'd), for the trace capture */
    int by_admin;         /* ended by an administrator (DELETE /api/v1/calls/{id}) */
    /* The caller's identity as sipbx authenticated it (initial requests only): for the
     * devices rung (see set_identity). */
    char *identity; /* "Name" <sip:ext@domain> (malloc'd), or NULL */
    char *display;  /* the account's name as a quoted string, for a From without one */
    char caller_ext[STORE_EXT_MAX];
    struct group_run *grp; /* the ring group being rung, or NULL */
};

/* A ring group's call in progress: a copy of the group (a change made meanwhile applies
 * to the next call) and how far it got. */
struct group_run {
    struct sip_group g;
    int next; /* the member a sequential group tries next */
    int gen;  /* the leg its members ring in; -1 once it is over */
    int rang; /* members whose devices rang */
    int busy; /* members skipped as busy (in a call without call waiting, or DND) */
};

/* ---- helpers ---- */

int proxy_is_us(struct sip *s, url_t const *url)
{
    if (!url || !url->url_host)
        return 0;
    int port = url->url_port && *url->url_port ? atoi(url->url_port)
               : url->url_type == url_sips     ? 5061
                                               : 5060;
    if (port != s->port && (!s->tls_port || port != s->tls_port))
        return 0;
    return sip_host_is_ours(s, url->url_host);
}

int sip_host_is_ours(struct sip *s, const char *host)
{
    if (!host)
        return 0;
    if (strcasecmp(host, s->domain) == 0 || strcasecmp(host, s->rr_host) == 0 ||
        strcasecmp(host, s->cfg->sip_host) == 0 ||
        (s->hostname[0] && strcasecmp(host, s->hostname) == 0))
        return 1;
    /* A phone on this machine may name it localhost (Linphone's outbound proxy, a test):
     * ours when we listen there. */
    return s->loopback && (strcasecmp(host, "localhost") == 0 || strcmp(host, "127.0.0.1") == 0 ||
                           strcmp(host, "[::1]") == 0 || strcmp(host, "::1") == 0);
}

/* True when a Request-URI host is this PBX's domain (any port: phones often omit it). */
static int host_is_ours(struct sip *s, url_t const *url)
{
    return sip_host_is_ours(s, url->url_host);
}

/* The part of our Via branch that identifies this request (RFC 3261 16.6 step 8, reduced
 * to what stays the same when the request comes back to us): Call-ID, From tag, CSeq. */
static void branch_key(sip_t const *sip, char out[17])
{
    su_md5_t md5;
    char hex[33];
    su_md5_init(&md5);
    su_md5_strupdate(&md5, sip->sip_call_id->i_id);
    su_md5_update(&md5, "|", 1);
    if (sip->sip_from->a_tag)
        su_md5_strupdate(&md5, sip->sip_from->a_tag);
    char cseq[48];
    snprintf(cseq, sizeof cseq, "|%u|%s", sip->sip_cseq->cs_seq, sip->sip_cseq->cs_method_name);
    su_md5_strupdate(&md5, cseq);
    su_md5_hexdigest(&md5, hex);
    memcpy(out, hex, 16);
    out[16] = '\0';
}

/* A request that already carries our branch for itself has been here: a loop. */
static int looped(sip_t const *sip)
{
    char key[17], mine[sizeof BRANCH_PREFIX + 17];
    branch_key(sip, key);
    snprintf(mine, sizeof mine, BRANCH_PREFIX "%s", key);
    for (sip_via_t const *v = sip->sip_via; v; v = v->v_next)
        if (v->v_branch && strncmp(v->v_branch, mine, strlen(mine)) == 0)
            return 1;
    return 0;
}

/* The token of a dialog sipbx record-routed: HMAC-SHA256 under our Record-Route key of the
 * Call-ID and the tag of the side that created the dialog (the caller's From tag). Requests
 * of either side carry that tag, in From or in To, so both can be checked; nothing is kept,
 * so a token stays good across restarts and for dialogs that outlive the call table (long
 * calls, session refreshes, a re-INVITE hours later). Forks of one INVITE share it. */
static void dialog_token(struct sip *s, const char *call_id, const char *tag,
                         char out[2 * DIALOG_TOKEN_BYTES + 1])
{
    util_hmac_hexf(s->rr_key, sizeof s->rr_key, out, DIALOG_TOKEN_BYTES, "%s\n%s", call_id,
                   tag ? tag : "");
}

/* True when the top Route is our signed Record-Route of this dialog (RFC 3261 16.4 would
 * take any Route naming us; we take only the ones we made). */
static int dialog_route_signed(struct sip *s, sip_t const *sip)
{
    sip_route_t const *r = sip->sip_route;
    char got[2 * DIALOG_TOKEN_BYTES + 8], want[2 * DIALOG_TOKEN_BYTES + 1];
    if (!r || !proxy_is_us(s, r->r_url) ||
        url_param(r->r_url->url_params, DIALOG_PARAM, got, sizeof got) !=
            2 * DIALOG_TOKEN_BYTES + 1) /* the length counts the NUL */
        return 0;
    const char *tags[2] = {sip->sip_from->a_tag, sip->sip_to->a_tag};
    for (int i = 0; i < 2; i++) {
        dialog_token(s, sip->sip_call_id->i_id, tags[i], want);
        if (util_ct_compare(got, want, 2 * DIALOG_TOKEN_BYTES) == 0)
            return 1;
    }
    return 0;
}

/* Our Record-Route for the leg that uses transport (udp, tcp or tls): the address and port
 * of that transport, the transport named unless it is UDP, and the dialog token. */
static void rr_value(struct sip *s, const char *transport, const char *token, char *out,
                     size_t outlen)
{
    int udp = strcmp(transport, "udp") == 0;
    int port = strcmp(transport, "tls") == 0 && s->tls_port ? s->tls_port : s->port;
    snprintf(out, outlen,
             strchr(s->rr_host, ':') ? "<sip:[%s]:%d%s%s;lr;%s=%s>" : "<sip:%s:%d%s%s;lr;%s=%s>",
             s->rr_host, port, udp ? "" : ";transport=", udp ? "" : transport, DIALOG_PARAM, token);
}

/* Copies the request for forwarding: Max-Forwards decremented, our Route and our
 * credentials removed. With out_transport (the transport of the leg it goes out on), our
 * signed Record-Route is added: one entry when both legs use the same transport, else one
 * per leg (RFC 5658 double record-routing, RFC 3261 16.6 step 4), the one facing the next
 * hop on top, so each side's route set starts with an address it can reach. NULL on
 * failure. */
static msg_t *prepare_copy(struct sip *s, nta_incoming_t *irq, const char *out_transport)
{
    msg_t *orig = nta_incoming_getrequest(irq);
    if (!orig)
        return NULL;
    msg_t *m = msg_copy(orig);
    msg_destroy(orig);
    if (!m)
        return NULL;
    sip_t *sip = sip_object(m);
    su_home_t *home = msg_home(m);

    while (sip->sip_route && proxy_is_us(s, sip->sip_route->r_url))
        sip_route_remove(m, sip);
    while (sip->sip_proxy_authorization)
        msg_header_remove(m, (msg_pub_t *)sip, (msg_header_t *)sip->sip_proxy_authorization);

    unsigned long mf = sip->sip_max_forwards ? sip->sip_max_forwards->mf_count : 70;
    if (sip->sip_max_forwards)
        msg_header_remove(m, (msg_pub_t *)sip, (msg_header_t *)sip->sip_max_forwards);
    char buf[600];
    snprintf(buf, sizeof buf, "%lu", mf > 0 ? mf - 1 : 0);
    msg_header_insert(m, (msg_pub_t *)sip, (msg_header_t *)sip_max_forwards_make(home, buf));

    if (out_transport) {
        char token[2 * DIALOG_TOKEN_BYTES + 1];
        const char *in_transport = sip_transport_of(s, irq, NULL);
        dialog_token(s, sip->sip_call_id->i_id, sip->sip_from->a_tag, token);
        if (strcmp(in_transport, out_transport) != 0) {
            rr_value(s, in_transport, token, buf, sizeof buf);
            msg_header_insert(m, (msg_pub_t *)sip,
                              (msg_header_t *)sip_record_route_make(home, buf));
        }
        rr_value(s, out_transport, token, buf, sizeof buf);
        msg_header_insert(m, (msg_pub_t *)sip, (msg_header_t *)sip_record_route_make(home, buf));
    }
    return m;
}

/* The transport a request to uri via next_hop (NULL: uri itself) goes out on. */
static void out_transport(const char *uri, const char *next_hop, char *out, size_t outlen)
{
    const char *u = next_hop ? next_hop : uri;
    const char *p = strstr(u, ";transport=");
    if (p) {
        p += strlen(";transport=");
        size_t n = strcspn(p, ";>?&");
        snprintf(out, outlen, "%.*s", (int)n, p);
        for (char *c = out; *c; c++)
            *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
        if (strcmp(out, "udp") == 0 || strcmp(out, "tcp") == 0 || strcmp(out, "tls") == 0)
            return;
    }
    snprintf(out, outlen, "%s", strncasecmp(u, "sips:", 5) == 0 ? "tls" : "udp");
}

/* ---- transactions ---- */

static void ptxn_destroy(struct ptxn *t)
{
    if (t->prev) {
        *t->prev = t->next;
        if (t->next)
            t->next->prev = t->prev;
    }
    if (t->timer)
        su_timer_destroy(t->timer);
    if (t->noanswer)
        su_timer_destroy(t->noanswer);
    if (t->irq) {
        nta_incoming_bind(t->irq, NULL, NULL);
        nta_incoming_destroy(t->irq);
    }
    struct branch *b = t->branches;
    while (b) {
        struct branch *next = b->next;
        if (b->orq) {
            nta_outgoing_bind(b->orq, NULL, NULL);
            nta_outgoing_destroy(b->orq);
        }
        if (b->cancel)
            nta_outgoing_destroy(b->cancel);
        free(b);
        b = next;
    }
    if (t->best)
        msg_destroy(t->best);
    if (t->call && !t->final_sent)
        calls_failed(t->s, t->call, 500, "sipbx");
    free(t->call_id);
    free(t->identity);
    free(t->display);
    free(t->grp);
    free(t);
}

/* Done when the final answer went out and no branch waits any more; an answered INVITE
 * lingers on its timer instead, for late answers from other forks. */
static void ptxn_maybe_done(struct ptxn *t)
{
    if (t->final_sent && t->pending == 0 &&
        (t->final_sent >= 300 || t->method != sip_method_invite))
        ptxn_destroy(t);
}

/* Reason header values of the CANCELs sipbx sends (RFC 3326): why a phone stops ringing,
 * so that it does not log a missed call when another device took it. */
#define REASON_ELSEWHERE "SIP;cause=200;text=\"Call completed elsewhere\""
#define REASON_TIMEOUT   "SIP;cause=408;text=\"Ring timeout\""
#define REASON_FORWARDED "SIP;cause=408;text=\"No answer, forwarded\""
#define REASON_ADMIN     "SIP;cause=487;text=\"Ended by the administrator\""
#define REASON_NEXT      "SIP;cause=408;text=\"No answer, ringing the next member\""

static int on_cancel_answer(struct branch *b, nta_outgoing_t *orq, sip_t const *sip)
{
    (void)b;
    (void)orq;
    (void)sip;
    return 0; /* the INVITE's own final answer (487) is what counts */
}

/* Sends our CANCEL of b's INVITE (RFC 3261 9.1): the INVITE's Request-URI, From, To,
 * Call-ID, Route and CSeq number, our Via with the INVITE's branch, to where the INVITE
 * went. Built here rather than with nta_outgoing_tcancel(), which marks the INVITE
 * transaction completed at once and, on TCP and TLS, terminates it: the phone's 487 then
 * matched nothing and went unacknowledged. */
static void send_cancel(struct branch *b)
{
    struct sip *s = b->t->s;
    msg_t *inv = nta_outgoing_getrequest(b->orq);
    sip_t const *is = inv ? sip_object(inv) : NULL;
    msg_t *m = is && is->sip_request && is->sip_cseq ? nta_msg_create(s->agent, 0) : NULL;
    sip_t *cs = m ? sip_object(m) : NULL;
    su_home_t *home = m ? msg_home(m) : NULL;
    sip_request_t *rq = cs ? sip_request_create(home, SIP_METHOD_CANCEL,
                                                (url_string_t const *)is->sip_request->rq_url, NULL)
                           : NULL;
    sip_cseq_t *cseq = cs ? sip_cseq_create(home, is->sip_cseq->cs_seq, SIP_METHOD_CANCEL) : NULL;
    if (rq && cseq &&
        sip_add_tl(m, cs, SIPTAG_REQUEST(rq), SIPTAG_FROM(is->sip_from), SIPTAG_TO(is->sip_to),
                   SIPTAG_CALL_ID(is->sip_call_id), SIPTAG_CSEQ(cseq), SIPTAG_ROUTE(is->sip_route),
                   SIPTAG_MAX_FORWARDS_STR("70"),
                   TAG_IF(b->reason[0], SIPTAG_REASON_STR(b->reason)), TAG_END()) == 0)
        b->cancel = nta_outgoing_mcreate(s->agent, on_cancel_answer, b,
                                         b->next_hop[0] ? URL_STRING_MAKE(b->next_hop) : NULL, m,
                                         NTATAG_BRANCH_KEY(b->branch), TAG_END());
    if (!b->cancel) {
        log_warn("proxy: cannot send CANCEL to %s", b->contact);
        if (m)
            msg_destroy(m); /* nta does not take the message on failure */
    }
    if (inv)
        msg_destroy(inv);
}

/* CANCELs the pending INVITE branches of leg gen, or of every leg when gen < 0, giving
 * reason (or none). A branch that has had no provisional answer yet is cancelled when it
 * gets one (RFC 3261 9.1), or not at all when its final answer comes first. */
static void cancel_leg(struct ptxn *t, int gen, const char *reason)
{
    for (struct branch *b = t->branches; b; b = b->next) {
        if (gen >= 0 && b->gen != gen)
            continue;
        if (b->orq && b->status < 200 && !b->cancelled && t->method == sip_method_invite) {
            b->cancelled = 1;
            snprintf(b->reason, sizeof b->reason, "%s", reason ? reason : "");
            if (b->status >= 100)
                send_cancel(b);
            else
                b->cancel_due = 1;
        }
    }
}

static void cancel_branches(struct ptxn *t, const char *reason)
{
    cancel_leg(t, -1, reason);
}

/* A response on its way to the caller carries the From the caller sent: the name
 * set_identity filled in was for the callee (RFC 3261 8.2.6.2: From as in the request). */
static void restore_from(struct ptxn *t, msg_t *m)
{
    sip_t *sip = sip_object(m);
    msg_t *req = t->display && t->irq ? nta_incoming_getrequest(t->irq) : NULL;
    sip_t const *rq = req ? sip_object(req) : NULL;
    if (rq && rq->sip_from && sip->sip_from) {
        sip_from_t *from = sip_from_dup(msg_home(m), rq->sip_from);
        if (from)
            msg_header_replace(m, (msg_pub_t *)sip, (msg_header_t *)sip->sip_from,
                               (msg_header_t *)from);
    }
    if (req)
        msg_destroy(req);
}

/* Relays a response received on branch b upstream (without our Via). */
static void relay(struct ptxn *t, nta_outgoing_t *orq, int status)
{
    msg_t *m = nta_outgoing_getresponse(orq);
    if (!m)
        return;
    sip_via_remove(m, sip_object(m));
    restore_from(t, m);
    sip_count_response(t->s, status);
    nta_incoming_mreply(t->irq, m);
}

/* Who ended a call that was not answered, for the call record. */
static const char *failure_party(int status, int by_cancel)
{
    if (by_cancel)
        return "caller";
    if (status == 408 || status == 480 || status == 500 || status == 503)
        return "sipbx";
    return "callee";
}

/* Sends the final non-2xx answer upstream: the stored best response, or one we make. */
static void send_final(struct ptxn *t, int status, const char *phrase, int by_cancel)
{
    if (t->final_sent)
        return;
    if (t->timer)
        su_timer_reset(t->timer);
    if (t->noanswer)
        su_timer_reset(t->noanswer);
    t->final_sent = status;
    if (t->best && t->best_status == status && !nta_sip_is_internal(sip_object(t->best))) {
        msg_t *m = t->best;
        t->best = NULL;
        sip_via_remove(m, sip_object(m));
        restore_from(t, m);
        sip_count_response(t->s, status);
        nta_incoming_mreply(t->irq, m);
    } else {
        sip_count_response(t->s, status);
        nta_incoming_treply(t->irq, status, phrase ? phrase : sip_status_phrase(status), TAG_END());
    }
    if (t->call) {
        /* No branch started: sipbx answered itself (404, 480, ...), no callee was involved. */
        calls_failed(t->s, t->call, status,
                     t->by_admin    ? "admin"
                     : t->nbranches ? failure_party(status, by_cancel)
                                    : "sipbx");
        t->call = NULL;
    }
    /* nta keeps its own transaction state for retransmissions and the ACK. */
    nta_incoming_bind(t->irq, NULL, NULL);
    nta_incoming_destroy(t->irq);
    t->irq = NULL;
}

/* RFC 3261 16.7 step 6, reduced: a 6xx wins, otherwise the lowest class, and inside 4xx
 * a real answer from a phone beats a timeout. */
static int better(int status, int best)
{
    if (!best)
        return 1;
    if (best >= 600)
        return 0;
    if (status >= 600)
        return 1;
    if (status / 100 != best / 100)
        return status / 100 < best / 100;
    return best == 408 && status != 408;
}

/* All branches ended without a 2xx: answer with the best response. */
static void finish_failed(struct ptxn *t)
{
    int status = t->best_status ? t->best_status : 408;
    const char *phrase = NULL;
    if (t->best && nta_sip_is_internal(sip_object(t->best))) {
        /* No phone answered at all within the transaction timers (a dead phone). */
        status = t->method == sip_method_invite ? 480 : 408;
        phrase = status == 480 ? "Temporarily Unavailable" : NULL;
    } else if (status == 503) {
        status = 500; /* RFC 3261 16.7 step 6: 503 is not relayed as is */
    }
    send_final(t, status, phrase, 0);
}

static void on_linger(su_root_magic_t *magic, su_timer_t *timer, void *arg)
{
    (void)magic;
    (void)timer;
    ptxn_destroy(arg);
}

static int forward_to(struct ptxn *t, const struct sip_user *u, enum store_fwd_kind kind);
static void group_leg_failed(struct ptxn *t);

/* The current leg ended without a 2xx: a ring group tries its next member; otherwise
 * forward on busy when the target asks for it, or answer the caller with the best
 * response. */
static void leg_failed(struct ptxn *t)
{
    if (t->grp && t->grp->gen == t->gen) {
        group_leg_failed(t);
        return;
    }
    int busy = t->best_status == 486 || t->best_status == 600 || t->best_status == 603;
    const struct sip_user *u = busy ? usercache_get(t->s, t->target_ext) : NULL;
    if (u) {
        int r = forward_to(t, u, STORE_FWD_BUSY);
        if (r == 0)
            return; /* the forward target rings now */
        if (r > 0 && r != 486 && r != 600 && r != 603 && r != 482) {
            /* The forward target cannot be reached either: say so rather than busy. */
            send_final(t, r, NULL, 0);
            return;
        }
    }
    finish_failed(t);
}

static int on_response(struct branch *b, nta_outgoing_t *orq, sip_t const *sip)
{
    struct ptxn *t = b->t;
    sip_keep_trace(t->s, t->call_id);
    int status = sip && sip->sip_status ? sip->sip_status->st_status : 408;
    int current = b->gen == t->gen;

    if (status < 200) {
        b->status = status;
        if (b->cancel_due) {
            b->cancel_due = 0;
            send_cancel(b);
        }
        if (status == 100 || t->final_sent || !t->irq || !current)
            return 0;
        relay(t, orq, status);
        if (t->call && (status == 180 || status == 183))
            calls_ringing(t->s, t->call, b->contact, sip);
        return 0;
    }

    if (b->status < 200) {
        t->pending--;
        if (current)
            t->gen_pending--;
    }
    b->status = status;

    if (status < 300) {
        if (!t->irq)
            return 0;
        /* Every 2xx of an INVITE goes up, also a second fork's or a retransmission, and
         * one from a leg we were leaving for a forward; a non-INVITE has one answer only. */
        if (t->method == sip_method_invite || !t->final_sent)
            relay(t, orq, status);
        if (!t->final_sent) {
            t->final_sent = status;
            cancel_branches(t, REASON_ELSEWHERE);
            if (t->noanswer)
                su_timer_reset(t->noanswer);
            if (t->call) {
                calls_answered(t->s, t->call, b->contact, b->target,
                               b->next_hop[0] ? b->next_hop : NULL, sip);
                t->call = NULL;
            } else if (t->method == sip_method_invite || t->method == sip_method_update) {
                calls_refreshed(t->s, sip);
            }
            su_timer_reset(t->timer);
            if (t->method == sip_method_invite)
                su_timer_set_interval(t->timer, on_linger, t, LINGER_MS);
        }
        ptxn_maybe_done(t);
        return 0;
    }

    /* A non-2xx final: nta has already ACKed it hop by hop. Finals of a leg we left for
     * a forward (the 487 of a cancelled branch) only count as done. */
    if (!t->final_sent && current) {
        if (better(status, t->best_status)) {
            if (t->best)
                msg_destroy(t->best);
            t->best = nta_outgoing_getresponse(orq);
            t->best_status = status;
        }
        if (status >= 600 && !t->ending) {
            char reason[96];
            snprintf(reason, sizeof reason, "SIP;cause=%d;text=\"%s\"", status,
                     sip_status_phrase(status) ? sip_status_phrase(status) : "Declined");
            cancel_leg(t, t->gen, reason);
        }
        if (t->gen_pending == 0 && !t->ending)
            leg_failed(t);
    }
    if (t->ending && !t->final_sent && t->pending == 0)
        send_final(t, t->ending, NULL, t->ending == 487);
    ptxn_maybe_done(t);
    return 0;
}

static void on_ending_timeout(su_root_magic_t *magic, su_timer_t *timer, void *arg)
{
    (void)magic;
    (void)timer;
    struct ptxn *t = arg;
    if (t->final_sent)
        return;
    sip_keep_trace(t->s, t->call_id);
    log_info("proxy: no final answer to our CANCEL within %d ms for %s", ENDING_MS,
             t->call ? t->call->info.call_id : "?");
    send_final(t, t->ending, NULL, t->ending == 487);
    ptxn_maybe_done(t);
}

/* Ends an INVITE nobody answered (the caller's CANCEL: 487; the ring timer: 408): CANCELs
 * every pending branch and answers upstream once they have all ended, as flows.md draws it
 * (B's 487 is ACKed, then A gets its answer). Meanwhile a 2xx that crossed the CANCEL still
 * goes up (RFC 3261 16.7 step 5, 16.10); a phone that never answers the CANCEL is waited for
 * ENDING_MS at most. */
static void end_unanswered(struct ptxn *t, int status, const char *reason)
{
    if (t->final_sent || t->ending)
        return;
    t->ending = status;
    su_timer_reset(t->noanswer);
    su_timer_reset(t->timer);
    cancel_branches(t, reason);
    if (t->pending == 0) {
        send_final(t, status, NULL, status == 487);
        ptxn_maybe_done(t);
        return;
    }
    su_timer_set_interval(t->timer, on_ending_timeout, t, ENDING_MS);
}

static void on_ring_timeout(su_root_magic_t *magic, su_timer_t *timer, void *arg)
{
    (void)magic;
    (void)timer;
    struct ptxn *t = arg;
    if (t->final_sent)
        return;
    sip_keep_trace(t->s, t->call_id);
    log_info("proxy: ring timeout for %s", t->call ? t->call->info.call_id : "?");
    end_unanswered(t, 408, REASON_TIMEOUT);
}

void proxy_end_by_admin(struct ptxn *t)
{
    if (t->final_sent || t->ending)
        return;
    sip_keep_trace(t->s, t->call_id);
    log_info("proxy: %s ended by an administrator while ringing", t->call_id);
    t->by_admin = 1;
    end_unanswered(t, 487, REASON_ADMIN);
}

/* CANCEL (nta has answered it with 200 already) and the end of the server transaction. */
static int on_server_event(struct ptxn *t, nta_incoming_t *irq, sip_t const *sip)
{
    (void)irq;
    if (!sip) {
        /* nta dropped the transaction itself (timeout): nothing more can be sent upstream. */
        t->irq = NULL;
        if (!t->final_sent) {
            t->final_sent = 500;
            cancel_branches(t, NULL);
        }
        ptxn_maybe_done(t);
        return 0;
    }
    if (sip->sip_request && sip->sip_request->rq_method == sip_method_cancel && !t->final_sent) {
        sip_keep_trace(t->s, t->call_id);
        /* The caller's reason, if it gave one, goes on to the phones (RFC 3326). */
        char reason[96] = "";
        if (sip->sip_reason)
            sip_header_field_e(reason, sizeof reason, (sip_header_t const *)sip->sip_reason, 0);
        end_unanswered(t, 487, reason[0] ? reason : NULL);
    }
    return 0;
}

static struct ptxn *ptxn_create(struct sip *s, nta_incoming_t *irq, sip_t const *sip)
{
    struct ptxn *t = util_xcalloc(1, sizeof *t);
    t->s = s;
    t->irq = irq;
    t->method = sip->sip_request->rq_method;
    t->timer = su_timer_create(su_root_task(s->root), 0);
    t->noanswer = su_timer_create(su_root_task(s->root), 0);
    t->call_id = util_xstrdup(sip->sip_call_id->i_id);
    if (!t->timer || !t->noanswer) {
        if (t->timer)
            su_timer_destroy(t->timer);
        if (t->noanswer)
            su_timer_destroy(t->noanswer);
        free(t->call_id);
        free(t);
        return NULL;
    }
    if ((t->next = s->txns))
        t->next->prev = &t->next;
    t->prev = &s->txns;
    s->txns = t;
    nta_incoming_bind(irq, on_server_event, t);
    return t;
}

/* True for the header h named name (any case): an extension header Sofia does not parse. */
static int unknown_named(sip_unknown_t const *h, const char *name)
{
    return h->un_name && strcasecmp(h->un_name, name) == 0;
}

/* RFC 3325: the caller's identity as sipbx authenticated it. What the phone claimed itself
 * (P-Asserted-Identity, P-Preferred-Identity) goes, always; the devices of this PBX's users
 * (own: the trust domain) get a P-Asserted-Identity with the account's name, others (a SIP
 * URI forward target) none. A From without a display name gets the account's, so the
 * ringing phone shows who calls, also in scripts that are not ASCII. */
static void set_identity(struct ptxn *t, msg_t *m, int own)
{
    sip_t *sip = sip_object(m);
    su_home_t *home = msg_home(m);
    sip_unknown_t *h = sip->sip_unknown, *next;
    for (; h; h = next) {
        next = h->un_next;
        if (unknown_named(h, "P-Asserted-Identity") || unknown_named(h, "P-Preferred-Identity"))
            msg_header_remove(m, (msg_pub_t *)sip, (msg_header_t *)h);
    }
    if (t->display && sip->sip_from) {
        sip_from_t *from = sip_from_dup(home, sip->sip_from);
        if (from) {
            from->a_display = su_strdup(home, t->display);
            msg_header_replace(m, (msg_pub_t *)sip, (msg_header_t *)sip->sip_from,
                               (msg_header_t *)from);
        }
    }
    if (own && t->identity) {
        size_t n = strlen(t->identity) + sizeof "P-Asserted-Identity: ";
        char *hdr = su_alloc(home, n);
        msg_header_t *pai = NULL;
        if (hdr) {
            snprintf(hdr, n, "P-Asserted-Identity: %s", t->identity);
            pai = msg_header_make(home, sip_unknown_class, hdr);
        }
        if (!pai || msg_header_insert(m, (msg_pub_t *)sip, pai) != 0)
            log_warn("proxy: cannot add P-Asserted-Identity for %s", t->caller_ext);
    }
}

/* Starts one client transaction of the current leg towards contact via next_hop (NULL:
 * resolve contact); own: contact is a device registered here. Returns 0 or -1. */
static int add_branch(struct ptxn *t, const char *contact, const char *next_hop, int record_route,
                      int own)
{
    struct sip *s = t->s;
    struct branch *b = util_xcalloc(1, sizeof *b);
    b->t = t;
    b->gen = t->gen;
    snprintf(b->contact, sizeof b->contact, "%s", contact);
    snprintf(b->target, sizeof b->target, "%s", t->target_ext[0] ? t->target_ext : contact);
    char transport[8];
    out_transport(contact, next_hop, transport, sizeof transport);
    msg_t *m = prepare_copy(s, t->irq, record_route ? transport : NULL);
    if (!m) {
        free(b);
        return -1;
    }
    sip_t *sip = sip_object(m);
    if (t->caller_ext[0])
        set_identity(t, m, own);
    if (t->diversion[0]) {
        char hdr[sizeof t->diversion + 16];
        snprintf(hdr, sizeof hdr, "Diversion: %s", t->diversion);
        /* Inserted after the request line: msg_header_add_str() appends to the fragment
         * chain of this parsed copy, behind the body, where no phone would read it. */
        msg_header_t *h = msg_header_make(msg_home(m), sip_unknown_class, hdr);
        if (!h || msg_header_insert(m, (msg_pub_t *)sip, h) != 0)
            log_warn("proxy: cannot add Diversion: %s", t->diversion);
    }
    sip_request_t *rq =
        sip_request_create(msg_home(m), sip->sip_request->rq_method,
                           sip->sip_request->rq_method_name, URL_STRING_MAKE(contact), NULL);
    char key[17], branch[64];
    branch_key(sip, key);
    snprintf(branch, sizeof branch, "branch=" BRANCH_PREFIX "%s.%d", key, t->nbranches);
    snprintf(b->branch, sizeof b->branch, "%s", branch);
    snprintf(b->next_hop, sizeof b->next_hop, "%s", next_hop ? next_hop : "");
    b->orq = rq ? nta_outgoing_mcreate(s->agent, on_response, b,
                                       next_hop ? URL_STRING_MAKE(next_hop) : NULL, m,
                                       SIPTAG_REQUEST(rq), NTATAG_BRANCH_KEY(branch), TAG_END())
                : NULL;
    if (!b->orq) {
        msg_destroy(m); /* nta does not take the message on failure */
        free(b);
        return -1;
    }
    b->next = t->branches;
    t->branches = b;
    t->nbranches++;
    t->pending++;
    t->gen_pending++;
    return 0;
}

/* ---- targets and forwarding ---- */

static void on_noanswer(su_root_magic_t *magic, su_timer_t *timer, void *arg);

/* True for a target written as a SIP URI rather than an extension. */
static int is_uri(const char *target)
{
    return strchr(target, ':') != NULL || strchr(target, '@') != NULL;
}

static int ring_group(struct ptxn *t, const struct sip_group *g);

/* Notes that the current request reaches extension ext; returns 0, or 482 when it did
 * already (a forwarding loop). */
static int visit(struct ptxn *t, const char *ext)
{
    for (int i = 0; i < t->nvisited; i++) {
        if (strcmp(t->visited[i], ext) == 0) {
            log_warn("proxy: forwarding loop at %s for %s", ext,
                     t->call ? t->call->info.call_id : "?");
            return 482;
        }
    }
    if (t->nvisited <= SIP_MAX_FORWARDS)
        snprintf(t->visited[t->nvisited++], STORE_EXT_MAX, "%s", ext);
    return 0;
}

/* True when user u cannot take another call now: busy in one without call waiting. */
static int user_busy(struct sip *s, const struct sip_user *u)
{
    return !u->call_waiting && calls_busy(s, u->extension) > 0;
}

/* Rings every device of target (an extension, following its unconditional and unavailable
 * rules, or a ring group, or a SIP URI) as the current leg of t. Returns 0 when something
 * rings, else the SIP status to answer the caller with. */
static int ring_target(struct ptxn *t, const char *target)
{
    struct sip *s = t->s;
    int is_invite = t->method == sip_method_invite;
    char ext[STORE_EXT_MAX] = "";
    if (is_uri(target)) {
        char uri[300];
        snprintf(uri, sizeof uri, "%s%s", strncmp(target, "sip:", 4) == 0 ? "" : "sip:", target);
        su_home_t home[1] = {SU_HOME_INIT(home)};
        url_t *u = url_hdup(home, (url_t const *)URL_STRING_MAKE(uri)->us_url);
        int ours = u && u->url_user && host_is_ours(s, u);
        if (ours)
            snprintf(ext, sizeof ext, "%s", u->url_user);
        su_home_deinit(home);
        if (!ours) {
            t->target_ext[0] = '\0';
            return add_branch(t, uri, NULL, is_invite, 0) == 0 ? 0 : 500;
        }
    } else {
        snprintf(ext, sizeof ext, "%s", target);
    }

    const struct sip_user *u = usercache_get(s, ext);
    if (!u) {
        const struct sip_group *g = usercache_group(s, ext);
        return g ? ring_group(t, g) : 404;
    }
    int r = visit(t, u->extension);
    if (r)
        return r;
    snprintf(t->target_ext, sizeof t->target_ext, "%s", u->extension);

    if (is_invite && (r = forward_to(t, u, STORE_FWD_UNCONDITIONAL)) >= 0)
        return r;
    if (is_invite && u->enabled && u->dnd) {
        log_info("proxy: %s does not want to be disturbed", u->extension);
        if ((r = forward_to(t, u, STORE_FWD_BUSY)) >= 0)
            return r;
        return 486;
    }
    struct reg_target targets[MAX_FORK];
    size_t n = u->enabled ? reg_targets(s, u->extension, targets, MAX_FORK) : 0;
    if (n == 0) {
        if (is_invite && (r = forward_to(t, u, STORE_FWD_UNAVAILABLE)) >= 0)
            return r;
        return 480;
    }
    if (is_invite && user_busy(s, u)) {
        if ((r = forward_to(t, u, STORE_FWD_BUSY)) >= 0)
            return r;
        return 486;
    }
    int started = 0;
    for (size_t i = 0; i < n; i++) {
        if (add_branch(t, targets[i].contact, targets[i].next_hop, is_invite, 1) == 0)
            started++;
        else
            log_warn("proxy: cannot forward to %s", targets[i].contact);
    }
    if (!started)
        return 500;
    const struct store_forward_rule *na = &u->fwd->rule[STORE_FWD_NO_ANSWER];
    if (is_invite && na->enabled && (na->target[0] || na->voicemail) && na->timeout > 0)
        su_timer_set_interval(t->noanswer, on_noanswer, t, (su_duration_t)na->timeout * 1000);
    return 0;
}

/* Rings sipbx's own voicemail user agent as the current leg of t: op on mailbox ext (why: the
 * RFC 5806 reason of the forward that led there, "" for none). The Request-URI carries a
 * token the user agent checks (voicemail/vm.h), so it is a target like any phone: the call
 * stays authenticated, traced and recorded here. Returns 0 or a SIP status. */
static int ring_voicemail(struct ptxn *t, const char *ext, enum vm_op op, const char *why)
{
    char uri[512];
    if (!t->s->vm || vm_target(t->s->vm, op, ext, why, t->call_id, uri, sizeof uri) != 0)
        return 480;
    t->target_ext[0] = '\0'; /* no forward rules apply beyond voicemail */
    if (add_branch(t, uri, NULL, t->method == sip_method_invite, 1) != 0)
        return 500;
    snprintf(t->branches->target, sizeof t->branches->target, "voicemail:%s", ext);
    return 0;
}

/* Diverts the call from extension from (a user's rule, or a ring group nobody answered) to
 * target for reason (RFC 5806): a new leg rings it, or, with to_voicemail, rings the
 * voicemail of from (target then says "voicemail"). Returns 0 when the target rings, else
 * the SIP status to answer with. */
static int divert(struct ptxn *t, const char *from, const char *target, const char *reason,
                  int to_voicemail)
{
    if (t->hops >= SIP_MAX_FORWARDS) {
        log_warn("proxy: %s: more than %d forwards, stopping at %s", reason, SIP_MAX_FORWARDS,
                 from);
        return 482;
    }
    t->hops++;
    /* RFC 5806: the newest diversion comes first; an entry that does not fit is left out. */
    char entry[400];
    snprintf(entry, sizeof entry, "<sip:%s@%s>;reason=%s;counter=1", from, t->s->domain, reason);
    size_t el = strlen(entry), ol = strlen(t->diversion), sep = ol ? 2 : 0;
    if (el + sep + ol < sizeof t->diversion) {
        memmove(t->diversion + el + sep, t->diversion, ol + 1);
        memcpy(t->diversion, entry, el);
        memcpy(t->diversion + el, ", ", sep);
    }
    log_info("proxy: %s forwards to %s (%s)", from, target, reason);
    if (t->call)
        calls_forwarded(t->s, t->call, from, target, reason);
    if (t->irq && !t->final_sent) {
        sip_count_response(t->s, 181);
        nta_incoming_treply(t->irq, SIP_181_CALL_IS_BEING_FORWARDED, TAG_END());
    }
    su_timer_reset(t->noanswer);
    t->gen++;
    t->gen_pending = 0;
    if (to_voicemail)
        return ring_voicemail(t, from, VM_LEAVE, reason);
    char to[256];
    snprintf(to, sizeof to, "%s", target); /* target may not outlive a reload */
    return ring_target(t, to);
}

/* Applies u's rule of kind: a new leg rings its target (or u's voicemail). Returns -1 when
 * u has no such rule, 0 when the target rings, else the SIP status to answer with. */
static int forward_to(struct ptxn *t, const struct sip_user *u, enum store_fwd_kind kind)
{
    static const char *const reasons[STORE_FWD_KINDS] = {"unconditional", "user-busy", "no-answer",
                                                         "unavailable"};
    const struct store_forward_rule *r = &u->fwd->rule[kind];
    if (!r->enabled || (!r->target[0] && !r->voicemail))
        return -1;
    char from[STORE_EXT_MAX], target[sizeof r->target];
    snprintf(from, sizeof from, "%s", u->extension); /* u may not outlive a reload */
    snprintf(target, sizeof target, "%s", r->voicemail ? "voicemail" : r->target);
    return divert(t, from, target, reasons[kind], r->voicemail);
}

/* ---- ring groups ---- */

static void on_group_timeout(su_root_magic_t *magic, su_timer_t *timer, void *arg);

/* Rings the devices of member ext of t's group in the current leg, when the member can
 * take the call: enabled, registered, not the caller, not busy, no do-not-disturb. Its
 * own forward rules do not apply (the group decides where an unanswered call goes).
 * Returns 1 when a device rings, else 0. */
static int ring_member(struct ptxn *t, const char *ext)
{
    struct sip *s = t->s;
    struct group_run *g = t->grp;
    int is_invite = t->method == sip_method_invite;
    const struct sip_user *u = usercache_get(s, ext);
    if (!u || !u->enabled || strcmp(u->extension, t->caller_ext) == 0)
        return 0;
    if (is_invite && (u->dnd || user_busy(s, u))) {
        g->busy++;
        return 0;
    }
    struct reg_target targets[MAX_FORK];
    size_t n = reg_targets(s, u->extension, targets, MAX_FORK);
    int started = 0;
    snprintf(t->target_ext, sizeof t->target_ext, "%s", u->extension); /* the branch's */
    for (size_t i = 0; i < n; i++) {
        if (add_branch(t, targets[i].contact, targets[i].next_hop, is_invite, 1) == 0)
            started++;
        else
            log_warn("proxy: cannot ring %s of group %s", targets[i].contact, g->g.extension);
    }
    g->rang += started > 0;
    return started > 0;
}

/* The group has nobody more to ring: its no-answer target rings next, if it has one (an
 * INVITE only). Returns -1 when there is none, 0 when the target rings, else the SIP
 * status to answer with. */
static int group_divert(struct ptxn *t)
{
    struct group_run *g = t->grp;
    g->gen = -1; /* the group is over: a failure of the target's leg is the target's */
    if (!g->g.no_answer_target[0] || t->method != sip_method_invite)
        return -1;
    const char *reason = g->rang ? "no-answer" : g->busy ? "user-busy" : "unavailable";
    char from[STORE_EXT_MAX], target[sizeof g->g.no_answer_target];
    snprintf(from, sizeof from, "%s", g->g.extension);
    snprintf(target, sizeof target, "%s", g->g.no_answer_target);
    return divert(t, from, target, reason, 0);
}

/* Rings the group's members in the current leg: every one that can take the call
 * (ringall), or the next one that can (sequential). Returns 0 when something rings; when
 * nothing could, what group_divert returns, or with no target the status for the caller:
 * -1 when members rang before (their best answer counts), 486 when all were busy, 480
 * when none was reachable. */
static int group_ring(struct ptxn *t)
{
    struct group_run *g = t->grp;
    int started = 0;
    g->gen = t->gen;
    while (g->next < g->g.nmembers) {
        if (ring_member(t, g->g.members[g->next++]) && (started = 1) &&
            g->g.strategy == STORE_GROUP_SEQUENTIAL)
            break;
    }
    if (started) {
        if (t->method == sip_method_invite &&
            (g->g.strategy == STORE_GROUP_SEQUENTIAL || g->g.no_answer_target[0]))
            su_timer_set_interval(t->noanswer, on_group_timeout, t,
                                  (su_duration_t)g->g.member_timeout * 1000);
        return 0;
    }
    int rang = g->rang, busy = g->busy, r = group_divert(t);
    if (r >= 0 || rang)
        return r;
    return busy ? 486 : 480;
}

/* Starts ringing group g as the current leg of t. Returns 0 when a member (or the
 * group's target) rings, else the SIP status to answer with. */
static int ring_group(struct ptxn *t, const struct sip_group *g)
{
    int r = visit(t, g->extension);
    if (r)
        return r;
    if (!t->grp)
        t->grp = util_xmalloc(sizeof *t->grp);
    /* A group reached again through a forward target starts afresh (visit() stops loops). */
    memset(t->grp, 0, sizeof *t->grp);
    t->grp->g = *g;
    log_info("proxy: ringing group %s (%s, %d member(s))", g->extension,
             store_group_strategies[g->strategy == STORE_GROUP_SEQUENTIAL], g->nmembers);
    return group_ring(t);
}

/* Moves a sequential group on to its next member, or ends the group (timed_out: the
 * last members rang out). Returns 1 when it answered the caller (the transaction may be
 * done), else 0. */
static int group_next(struct ptxn *t, int timed_out)
{
    struct group_run *g = t->grp;
    int r;
    if (g->g.strategy == STORE_GROUP_SEQUENTIAL && g->next < g->g.nmembers) {
        t->gen++;
        t->gen_pending = 0;
        r = group_ring(t);
    } else {
        r = group_divert(t);
    }
    if (r == 0)
        return 0;
    if (r < 0 && timed_out) {
        end_unanswered(t, 408, REASON_TIMEOUT); /* rang out: nobody answered */
        return 0;
    }
    if (r < 0)
        finish_failed(t);
    else
        send_final(t, r, NULL, 0);
    return 1;
}

/* Every device the group rang in the current leg answered with a failure (on_response
 * then checks whether the transaction is done). */
static void group_leg_failed(struct ptxn *t)
{
    su_timer_reset(t->noanswer);
    group_next(t, 0);
}

/* A member (sequential) or the whole group (ringall with a target) rang long enough. */
static void on_group_timeout(su_root_magic_t *magic, su_timer_t *timer, void *arg)
{
    (void)magic;
    (void)timer;
    struct ptxn *t = arg;
    if (t->final_sent || t->ending || !t->grp || t->grp->gen != t->gen)
        return;
    sip_keep_trace(t->s, t->call_id);
    cancel_leg(t, t->gen,
               t->grp->g.strategy == STORE_GROUP_SEQUENTIAL ? REASON_NEXT : REASON_FORWARDED);
    if (group_next(t, 1))
        ptxn_maybe_done(t);
}

static void on_noanswer(su_root_magic_t *magic, su_timer_t *timer, void *arg)
{
    (void)magic;
    (void)timer;
    struct ptxn *t = arg;
    const struct sip_user *u = usercache_get(t->s, t->target_ext);
    if (t->final_sent || t->ending || !u)
        return;
    sip_keep_trace(t->s, t->call_id);
    cancel_leg(t, t->gen, REASON_FORWARDED);
    int r = forward_to(t, u, STORE_FWD_NO_ANSWER);
    if (r > 0) {
        send_final(t, r, NULL, 0);
        ptxn_maybe_done(t);
    }
}

/* ---- in-dialog requests ---- */

/* Refuses an in-dialog request that is not of a dialog sipbx carries: counted, logged once
 * a minute per source, answered (an ACK is dropped: it has no answer) and never relayed. */
static void refuse_in_dialog(struct sip *s, const struct sip_req *r, sip_t const *sip, int status,
                             const char *phrase)
{
    char source[96], transport[8];
    sip_source(s, r, source, sizeof source, transport, sizeof transport);
    atomic_fetch_add_explicit(&s->forged_in_dialog, 1, memory_order_relaxed);
    if (sip_log_due(s, "in-dialog", source))
        log_warn("proxy: refused %s %s from %s: %s (more from there within a minute are not "
                 "logged)",
                 sip->sip_request->rq_method_name, sip->sip_call_id->i_id, source, phrase);
    if (sip->sip_request->rq_method != sip_method_ack)
        sip_req_reply(s, r, status, phrase, TAG_END());
    else if (r->irq)
        nta_incoming_destroy(r->irq);
}

/* The next hop for Request-URI ruri over the transport our Route entry route names
 * ("" when ruri says its transport itself, or has no host). */
static void next_hop_by_route(struct sip *s, url_t const *ruri, url_t const *route, char *out,
                              size_t outlen)
{
    (void)s;
    char transport[8];
    out[0] = '\0';
    if (!ruri->url_host || url_param(ruri->url_params, "transport", NULL, 0) ||
        url_param(route->url_params, "transport", transport, sizeof transport) == 0)
        return; /* the Request-URI as it is: UDP, or what it says */
    int tls = strcasecmp(transport, "tls") == 0;
    const char *port = ruri->url_port && *ruri->url_port ? ruri->url_port : tls ? "5061" : "5060";
    snprintf(out, outlen,
             strchr(ruri->url_host, ':') ? "sip:[%s]:%s;transport=%s" : "sip:%s:%s;transport=%s",
             ruri->url_host, port, transport);
}

static void forward_in_dialog(struct sip *s, const struct sip_req *r, sip_t const *sip)
{
    nta_incoming_t *irq = r->irq;
    int is_ack = sip->sip_request->rq_method == sip_method_ack;
    sip_accepted(s, r, sip); /* proxy_refused found our signed Route on top */
    calls_in_dialog(s, sip);

    /* Next hop: the next Route that is not ours if any; else the Request-URI, reached
     * where that phone registered from when it is one of ours (NAT), or else over the
     * transport our last Route entry names: the one facing the next hop (RFC 5658; a
     * Contact without a transport parameter does not say the phone is on TCP). */
    sip_route_t const *ours = sip->sip_route, *next = ours->r_next;
    while (next && proxy_is_us(s, next->r_url))
        ours = next, next = next->r_next;
    char hop[160] = "";
    if (!next && reg_next_hop(s, sip->sip_request->rq_url, hop, sizeof hop) != 0)
        next_hop_by_route(s, sip->sip_request->rq_url, ours->r_url, hop, sizeof hop);

    if (is_ack) {
        msg_t *m = prepare_copy(s, irq, NULL);
        char key[17], branch[64];
        branch_key(sip, key);
        snprintf(branch, sizeof branch, "branch=" BRANCH_PREFIX "%s.0", key);
        nta_outgoing_t *orq =
            m ? nta_outgoing_mcreate(s->agent, NULL, NULL, hop[0] ? URL_STRING_MAKE(hop) : NULL, m,
                                     NTATAG_BRANCH_KEY(branch), TAG_END())
              : NULL;
        if (!orq && m)
            msg_destroy(m);
        if (orq)
            nta_outgoing_destroy(orq);
        nta_incoming_destroy(irq);
        return;
    }

    struct ptxn *t = ptxn_create(s, irq, sip);
    char uri[512];
    url_e(uri, sizeof uri, sip->sip_request->rq_url);
    if (!t || add_branch(t, uri, hop[0] ? hop : NULL, 0, 0) != 0) {
        if (t) {
            t->irq = NULL;
            ptxn_destroy(t);
        }
        nta_incoming_bind(irq, NULL, NULL);
        sip_reply(s, irq, SIP_500_INTERNAL_SERVER_ERROR, TAG_END());
    }
}

/* ---- out-of-dialog requests ---- */

/* True when a new request names a next hop other than us in its Route set (a pre-loaded
 * route through sipbx to somewhere else: loose routing to hosts we do not know). */
static int routes_elsewhere(struct sip *s, sip_t const *sip)
{
    for (sip_route_t const *r = sip->sip_route; r; r = r->r_next)
        if (!proxy_is_us(s, r->r_url))
            return 1;
    return 0;
}

/* name as a SIP quoted-string (RFC 3261 25.1: quotes and backslashes escaped), malloc'd;
 * NULL when out of memory. */
static char *quoted(const char *name)
{
    size_t n = strlen(name);
    char *q = util_xmalloc(2 * n + 3), *p = q;
    *p++ = '"';
    for (; *name; name++) {
        if (*name == '"' || *name == '\\')
            *p++ = '\\';
        *p++ = *name;
    }
    *p++ = '"';
    *p = '\0';
    return q;
}

/* Notes the authenticated caller's identity on t for the devices it rings (set_identity):
 * its account's name for a From without one (unless the caller asked for privacy, RFC
 * 3323), and the P-Asserted-Identity. */
static void caller_identity(struct ptxn *t, const struct sip_user *caller, sip_t const *sip)
{
    snprintf(t->caller_ext, sizeof t->caller_ext, "%s", caller->extension);
    int private = 0;
    sip_privacy_t const *p = sip->sip_privacy; /* Sofia joins several into one */
    for (int i = 0; p && p->priv_values && p->priv_values[i]; i++)
    private |=
        strcasecmp(p->priv_values[i], "id") == 0 || strcasecmp(p->priv_values[i], "user") == 0;
    if (private || !caller->display_name[0]) {
        if (!private) {
            size_t n = strlen(caller->extension) + strlen(t->s->domain) + 8;
            t->identity = util_xmalloc(n);
            snprintf(t->identity, n, "<sip:%s@%s>", caller->extension, t->s->domain);
        }
        return;
    }
    char *name = quoted(caller->display_name);
    size_t n = strlen(name) + strlen(caller->extension) + strlen(t->s->domain) + 12;
    t->identity = util_xmalloc(n);
    snprintf(t->identity, n, "%s <sip:%s@%s>", name, caller->extension, t->s->domain);
    if (!sip->sip_from->a_display || !*sip->sip_from->a_display)
        t->display = name;
    else
        free(name);
}

/* The ring timeout of a call to ext: the callee's own or the global one; a ring group
 * adds the time its members ring before its no-answer target takes over. */
static int ring_seconds(struct sip *s, const char *ext)
{
    const struct sip_user *callee = usercache_get(s, ext);
    if (callee)
        return callee->ring_timeout > 0 ? callee->ring_timeout : s->cfg->ring_timeout;
    const struct sip_group *g = usercache_group(s, ext);
    int extra = !g                                      ? 0
                : g->strategy == STORE_GROUP_SEQUENTIAL ? g->nmembers * g->member_timeout
                : g->no_answer_target[0]                ? g->member_timeout
                                                        : 0;
    return s->cfg->ring_timeout + extra;
}

static void route_new(struct sip *s, const struct sip_req *r, sip_t const *sip)
{
    nta_incoming_t *irq = r->irq;
    const struct sip_user *caller = r->caller; /* checked before the transaction (UDP) */
    if (!caller && auth_check(s, r, sip, 1, &caller) != AUTH_OK)
        return;
    sip_accepted(s, r, sip);
    const char *from_user = sip->sip_from->a_url->url_user;
    if (!from_user || strcmp(from_user, caller->extension) != 0) {
        sip_reply(s, irq, 403, "From does not match the credentials", TAG_END());
        return;
    }
    url_t const *ruri = sip->sip_request->rq_url;
    if (!host_is_ours(s, ruri)) {
        sip_reply(s, irq, 403, "No route to other domains", TAG_END());
        return;
    }
    if (!ruri->url_user || !*ruri->url_user) {
        sip_reply(s, irq, SIP_404_NOT_FOUND, TAG_END());
        return;
    }

    int is_invite = sip->sip_request->rq_method == sip_method_invite;
    if (is_invite) {
        sip_count_response(s, 100);
        nta_incoming_treply(irq, SIP_100_TRYING, TAG_END());
    }
    struct ptxn *t = ptxn_create(s, irq, sip);
    if (!t) {
        sip_reply(s, irq, SIP_500_INTERNAL_SERVER_ERROR, TAG_END());
        return;
    }
    caller_identity(t, caller, sip);
    if (is_invite) {
        char source[96], transport[8];
        sip_source(s, r, source, sizeof source, transport, sizeof transport);
        t->call = calls_start(s, sip, caller, ruri->url_user, source, transport);
        if (t->call)
            t->call->invite = t;
        su_timer_set_interval(t->timer, on_ring_timeout, t,
                              (su_duration_t)ring_seconds(s, ruri->url_user) * 1000);
    }
    char target[STORE_EXT_MAX];
    snprintf(target, sizeof target, "%s", ruri->url_user);
    /* The voicemail number: the caller's own mailbox (the digest said who that is). */
    int status = is_invite && strcmp(target, s->cfg->voicemail_number) == 0
                     ? ring_voicemail(t, caller->extension, VM_LISTEN, "")
                     : ring_target(t, target);
    if (status) {
        send_final(t, status, NULL, 0);
        ptxn_maybe_done(t);
    }
}

/* The refusal of a request that cannot be proxied at all: a mandatory header missing,
 * Max-Forwards used up, or a loop through us. Its status (*phrase set), or 0. */
static int unroutable(sip_t const *sip, char const **phrase)
{
    if (!sip->sip_call_id || !sip->sip_cseq || !sip->sip_from || !sip->sip_to || !sip->sip_via) {
        *phrase = "Missing mandatory header";
        return 400;
    }
    if (sip->sip_max_forwards && sip->sip_max_forwards->mf_count == 0) {
        *phrase = sip_483_Too_many_hops;
        return 483;
    }
    if (looped(sip)) {
        *phrase = sip_482_Loop_detected;
        return 482;
    }
    return 0;
}

int proxy_challenges(sip_t const *sip)
{
    if (sip->sip_to->a_tag)
        return 0;
    url_t const *ruri = sip->sip_request->rq_url;
    switch (sip->sip_request->rq_method) {
    case sip_method_invite:
    case sip_method_message:
    case sip_method_refer:
        return 1;
    case sip_method_options: /* to sipbx itself (no user) it is answered, not proxied */
        return ruri->url_user && *ruri->url_user;
    default:
        return 0;
    }
}

int proxy_refused(struct sip *s, const struct sip_req *r, sip_t const *sip)
{
    sip_method_t method = sip->sip_request->rq_method;
    int is_ack = method == sip_method_ack;
    char const *phrase;
    int status = unroutable(sip, &phrase);
    if (status) {
        if (status == 482)
            log_warn("proxy: loop detected for %s %s", sip->sip_request->rq_method_name,
                     sip->sip_call_id->i_id);
        if (!is_ack)
            sip_req_reply(s, r, status, phrase, TAG_END());
        else if (r->irq)
            nta_incoming_destroy(r->irq);
        return 1;
    }
    if (is_ack || sip->sip_to->a_tag) {
        if (!sip->sip_route || !proxy_is_us(s, sip->sip_route->r_url))
            /* We record-route every dialog we carry: a request without our Route is not one. */
            refuse_in_dialog(s, r, sip, 481, "Call/Transaction Does Not Exist");
        else if (!dialog_route_signed(s, sip))
            refuse_in_dialog(s, r, sip, 403, "Not a dialog of this server");
        else
            return 0;
        return 1;
    }
    switch (method) {
    case sip_method_invite:
    case sip_method_message:
    case sip_method_options:
    case sip_method_refer:
        if (!routes_elsewhere(s, sip))
            return 0;
        sip_req_reply(s, r, 403, "No routing through this server", TAG_END());
        return 1;
    case sip_method_subscribe:
        /* No event package yet: no Allow-Events (an empty one is not valid, RFC 6665). */
        sip_req_reply(s, r, SIP_489_BAD_EVENT, TAG_END());
        return 1;
    case sip_method_cancel: /* nta matched none of our transactions */
    case sip_method_bye:
    case sip_method_info:
    case sip_method_update:
    case sip_method_prack:
    case sip_method_notify:
        sip_req_reply(s, r, SIP_481_NO_TRANSACTION, TAG_END());
        return 1;
    default:
        sip_req_reply(s, r, SIP_405_METHOD_NOT_ALLOWED, SIPTAG_ALLOW_STR(SIP_ALLOW), TAG_END());
        return 1;
    }
}

void proxy_handle(struct sip *s, const struct sip_req *r, sip_t const *sip)
{
    if (!r->screened && proxy_refused(s, r, sip))
        return;
    if (sip->sip_request->rq_method == sip_method_ack || sip->sip_to->a_tag)
        forward_in_dialog(s, r, sip);
    else
        route_new(s, r, sip);
}

void proxy_shutdown(struct sip *s)
{
    while (s->txns)
        ptxn_destroy(s->txns);
}
