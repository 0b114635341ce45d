/* REGISTER over UDP without server transactions. nta keeps a completed server transaction
 * 64*T1 = 32 s to answer retransmissions, about 12 KB with its request and response: in a
 * storm of 1,000 registrations a second that was most of the daemon's memory. A REGISTER
 * with credentials over UDP is instead answered statelessly from nta's message callback,
 * and its final answer is kept here as text for REGISTER_KEEP_MS: a retransmission of the
 * request (same Via branch and sent-by, same source) gets the same answer again instead of
 * being processed a second time (which would find its nonce-count used and its CSeq old).
 *
 * A retransmission comes T1, 2*T1 ... at most T2 (4 s) after the one before, and stops once
 * the answer arrives; each one served renews the entry, so a phone that keeps losing our
 * answer keeps getting it. One that asks after the entry is gone gets its request
 * processed again: at worst a stale challenge, which a phone answers. Over TCP and TLS
 * nta frees a completed transaction at once, so those stay stateful. Credential-less
 * REGISTERs are challenged statelessly in auth.c (a new nonce each time, nothing kept). */
#include "sip/sip_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sofia-sip/msg.h>
#include <sofia-sip/msg_addr.h>
#include <sofia-sip/nta_stateless.h>
#include <sofia-sip/nta_tport.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/tport.h>

#define REGISTER_KEEP_MS 10000 /* > 2*T2: a lost answer's next retransmission finds it */
#define ANSWER_MAX       4096  /* longer answers (very many bindings) are not kept */

struct answer {
    int64_t until_ms; /* monotonic */
    size_t len;
    char text[]; /* the whole response as sent */
};

struct regcache {
    struct strmap *answers; /* key (see answer_key) -> struct answer */
};

int regcache_create(struct regcache **out)
{
    struct regcache *c = calloc(1, sizeof *c);
    if (!c || strmap_create(&c->answers) != 0) {
        free(c);
        return ENOMEM;
    }
    *out = c;
    return 0;
}

void regcache_destroy(struct regcache *c)
{
    if (!c)
        return;
    strmap_destroy(c->answers, free);
    free(c);
}

int regcache_stateless(struct sip *s, msg_t *msg, sip_t const *sip)
{
    return sip->sip_request->rq_method == sip_method_register && sip->sip_via &&
           sip->sip_via->v_branch && sip->sip_call_id && sip->sip_cseq && sip->sip_authorization &&
           strcmp(sip_transport_of(s, NULL, msg), "udp") == 0;
}

/* RFC 3261 17.2.3: a retransmission has the branch and sent-by of the top Via; the source
 * address is added so that another host cannot fetch someone's answer. */
static int answer_key(msg_t *msg, sip_t const *sip, char *key, size_t keylen)
{
    char source[UTIL_ADDR_STRLEN + 8] = "";
    su_addrinfo_t *ai = msg_addrinfo(msg);
    if (ai && ai->ai_addr) {
        struct util_addr a;
        util_addr_from_sockaddr(ai->ai_addr, &a);
        util_addr_format(&a, source, sizeof source);
    }
    sip_via_t const *v = sip->sip_via;
    int n = snprintf(key, keylen, "%s|%s:%s|%s|%u", v->v_branch, v->v_host,
                     v->v_port ? v->v_port : "", source, sip->sip_cseq->cs_seq);
    return n > 0 && (size_t)n < keylen ? 0 : -1;
}

int regcache_resend(struct sip *s, msg_t *msg, sip_t const *sip)
{
    char key[512];
    if (answer_key(msg, sip, key, sizeof key) != 0)
        return 0;
    struct answer *a = strmap_get(s->regcache->answers, key);
    if (!a)
        return 0;
    msg_t *reply = msg_make(sip_default_mclass(), 0, a->text, (isize_t)a->len);
    if (!reply)
        return 0; /* process it again rather than stay silent */
    a->until_ms = util_mono_ms() + REGISTER_KEEP_MS;
    sip_t *rs = sip_object(reply);
    int status = rs && rs->sip_status ? rs->sip_status->st_status : 500;
    sip_count_response(s, status);
    nta_msg_mreply(s->agent, reply, rs, status, NULL, msg_ref(msg), TAG_END());
    return 1;
}

void regcache_reply(struct sip *s, msg_t *msg, int status, char const *phrase, tagi_t const *tags)
{
    msg_t *reply = nta_msg_create(s->agent, 0);
    if (!reply)
        return;
    sip_count_response(s, status);
    msg_ref(reply); /* kept past nta_msg_mreply, which takes one reference, for its text */
    nta_msg_mreply(s->agent, reply, sip_object(reply), status, phrase, msg_ref(msg),
                   SIPTAG_SERVER_STR(SIP_SERVER_HEADER), TAG_NEXT(tags));
    char key[512];
    sip_t const *req = sip_object(msg);
    size_t len = 0;
    char *text = status >= 200 && req && answer_key(msg, req, key, sizeof key) == 0
                     ? msg_as_string(NULL, reply, NULL, 0, &len)
                     : NULL;
    msg_destroy(reply);
    if (!text)
        return;
    struct answer *a = len < ANSWER_MAX ? util_xmalloc(sizeof *a + len + 1) : NULL;
    void *old = NULL;
    if (a) {
        a->until_ms = util_mono_ms() + REGISTER_KEEP_MS;
        a->len = len;
        memcpy(a->text, text, len + 1);
        strmap_put(s->regcache->answers, key, a, &old);
        free(old);
    }
    su_free(NULL, text);
}

static int drop_old(const char *key, void *val, void *ctx)
{
    (void)key;
    struct answer *a = val;
    if (a->until_ms > *(const int64_t *)ctx)
        return STRMAP_KEEP;
    free(a);
    return STRMAP_DROP;
}

void regcache_prune(struct sip *s, int64_t now_ms)
{
    strmap_foreach(s->regcache->answers, drop_old, &now_ms);
}
