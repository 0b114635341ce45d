/* The event server (RFC 6665): SUBSCRIBE to a user of the domain for one of the packages
 * in the table below, a dialog of our own per subscription (Call-ID, the watcher's tag and
 * ours), NOTIFY when it starts, is refreshed, ends, and whenever what the package says of
 * the user changed. Dialogs are kept here rather than as nta legs: an in-dialog SUBSCRIBE
 * is found by Call-ID and our tag in the message callback, and each NOTIFY is a request
 * built like an administrator's BYE (calls.c), so a subscription is a row that survives a
 * restart and nothing in nta has to be rebuilt from it. */
#include "sip/sip_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sofia-sip/msg_header.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/su_md5.h>

#define EVENT_DEFAULT_EXPIRES 3600 /* RFC 3856 6.4, RFC 4235 3.2, RFC 3903 */
#define EVENT_MIN_EXPIRES     60
#define EVENT_MAX_EXPIRES     3600

static void presence_body(struct sip *s, const char *ext, uint32_t version, struct buf *out)
{
    (void)version;
    pres_pidf(s, ext, out);
}

/* The event packages: what a SUBSCRIBE may ask for and what its NOTIFYs carry. */
static const struct package {
    const char *name;
    const char *type; /* Content-Type of the NOTIFY bodies */
    void (*body)(struct sip *s, const char *ext, uint32_t version, struct buf *out);
    /* Only the watcher's own resource: a colleague's mailbox is private. Such a SUBSCRIBE
     * may name the watcher's extension or the voicemail number. */
    int own_only;
} packages[SIP_EVENT_PACKAGES] = {
    {"presence", "application/pidf+xml", presence_body, 0},
    {"dialog", "application/dialog-info+xml", pres_dialog_info, 0},
    {"message-summary", "application/simple-message-summary", mwi_summary, 1},
};
#define ALLOW_EVENTS "presence, dialog, message-summary"

const char *const sip_event_package_names[SIP_EVENT_PACKAGES] = {"presence", "dialog",
                                                                 "message-summary"};

struct sub {
    struct sub *pnext; /* the presentity's other subscriptions */
    char key[320];     /* Call-ID, a space, our tag */
    int pkg;
    char call_id[256];
    char local_tag[48];
    char remote_tag[128];
    char event_id[64];
    char watcher[STORE_EXT_MAX];
    char presentity[STORE_EXT_MAX];
    char *remote, *local, *target, *hop, *route, *contact; /* header values (malloc'd) */
    uint32_t local_cseq, remote_cseq, version;
    char state_hash[33];
    int64_t created_at, expires_at;
    nta_outgoing_t *orq; /* the NOTIFY in flight: one at a time, in order */
    int dirty;           /* something to say once it is answered */
    int force;           /* a NOTIFY is due even if the state did not change (refresh) */
    const char *ending;  /* reason of the final NOTIFY (RFC 6665 4.2.2), NULL while active */
    int final_sent;      /* that NOTIFY is on its way: its answer ends the dialog */
    struct sip *s;
};

struct subs {
    struct strmap *by_key;        /* key -> struct sub */
    struct strmap *by_presentity; /* extension -> struct sub list */
};

/* ---- bookkeeping ---- */

static void sub_free(struct sub *sub)
{
    if (!sub)
        return;
    if (sub->orq)
        nta_outgoing_destroy(sub->orq); /* its callback will not come */
    free(sub->remote);
    free(sub->local);
    free(sub->target);
    free(sub->hop);
    free(sub->route);
    free(sub->contact);
    free(sub);
}

/* Takes sub out of both maps and the counts, and frees it. */
static void sub_drop(struct sip *s, struct sub *sub)
{
    struct subs *ss = s->subs;
    if (strmap_get(ss->by_key, sub->key) == sub)
        strmap_remove(ss->by_key, sub->key);
    struct sub *head = strmap_get(ss->by_presentity, sub->presentity), **link = &head;
    while (*link && *link != sub)
        link = &(*link)->pnext;
    if (*link) {
        *link = sub->pnext;
        if (head)
            strmap_put(ss->by_presentity, sub->presentity, head, NULL); /* replaces */
        else
            strmap_remove(ss->by_presentity, sub->presentity);
        atomic_fetch_sub_explicit(&s->subscriptions[sub->pkg], 1, memory_order_relaxed);
    }
    sub_free(sub);
}

/* Puts sub in both maps. */
static void sub_add(struct sip *s, struct sub *sub)
{
    struct subs *ss = s->subs;
    snprintf(sub->key, sizeof sub->key, "%s %s", sub->call_id, sub->local_tag);
    sub->s = s;
    strmap_put(ss->by_key, sub->key, sub, NULL);
    sub->pnext = strmap_get(ss->by_presentity, sub->presentity);
    strmap_put(ss->by_presentity, sub->presentity, sub, NULL);
    atomic_fetch_add_explicit(&s->subscriptions[sub->pkg], 1, memory_order_relaxed);
}

static void persist(struct sip *s, const struct sub *sub)
{
    struct store_sub row;
    memset(&row, 0, sizeof row);
    snprintf(row.call_id, sizeof row.call_id, "%s", sub->call_id);
    snprintf(row.local_tag, sizeof row.local_tag, "%s", sub->local_tag);
    snprintf(row.package, sizeof row.package, "%s", packages[sub->pkg].name);
    snprintf(row.event_id, sizeof row.event_id, "%s", sub->event_id);
    snprintf(row.watcher, sizeof row.watcher, "%s", sub->watcher);
    snprintf(row.presentity, sizeof row.presentity, "%s", sub->presentity);
    snprintf(row.remote, sizeof row.remote, "%s", sub->remote);
    snprintf(row.local, sizeof row.local, "%s", sub->local);
    snprintf(row.target, sizeof row.target, "%s", sub->target);
    snprintf(row.next_hop, sizeof row.next_hop, "%s", sub->hop);
    snprintf(row.route, sizeof row.route, "%s", sub->route ? sub->route : "");
    snprintf(row.contact, sizeof row.contact, "%s", sub->contact);
    row.local_cseq = sub->local_cseq;
    row.remote_cseq = sub->remote_cseq;
    snprintf(row.state_hash, sizeof row.state_hash, "%s", sub->state_hash);
    row.version = sub->version;
    row.created_at = sub->created_at;
    row.expires_at = sub->expires_at;
    store_writer_sub_save(s->writer, &row);
}

/* ---- NOTIFY ---- */

static void body_of(struct sip *s, const struct sub *sub, uint32_t version, struct buf *out)
{
    packages[sub->pkg].body(s, sub->presentity, version, out);
}

/* The hash of what the package says now (the body with version 0: a new version alone is
 * no change). */
static void state_hash(struct sip *s, const struct sub *sub, char out[33])
{
    struct buf b = {0};
    body_of(s, sub, 0, &b);
    su_md5_t md5;
    su_md5_init(&md5);
    su_md5_update(&md5, b.p ? b.p : "", b.len);
    su_md5_hexdigest(&md5, out);
    buf_free(&b);
}

static void notify(struct sip *s, struct sub *sub);

/* The answer to a NOTIFY: the next one may go; a final NOTIFY answered ends the dialog;
 * 481, a timeout or any other failure ends the subscription (RFC 6665 4.1.3: the watcher
 * no longer has it, or cannot be reached). */
static int on_answer(nta_outgoing_magic_t *magic, nta_outgoing_t *orq, sip_t const *sip)
{
    /* nta's outgoing magic is typed for the proxy's branches (sip_int.h). */
    struct sub *sub = (struct sub *)(void *)magic;
    struct sip *s = sub->s;
    int status = sip && sip->sip_status ? sip->sip_status->st_status : 408;
    if (status < 200)
        return 0;
    nta_outgoing_destroy(orq);
    sub->orq = NULL;
    if (sub->final_sent) {
        sub_drop(s, sub);
        return 0;
    }
    if (status >= 300) {
        log_info("subs: %s's %s subscription to %s ended: NOTIFY answered %d", sub->watcher,
                 packages[sub->pkg].name, sub->presentity, status);
        if (!sub->ending)
            store_writer_sub_remove(s->writer, sub->call_id, sub->local_tag);
        sub_drop(s, sub);
        return 0;
    }
    if (sub->dirty) {
        sub->dirty = 0;
        notify(s, sub);
    }
    return 0;
}

/* Sends a NOTIFY with the package's state now (final when sub->ending), unless one is in
 * flight (then after its answer). */
static void notify(struct sip *s, struct sub *sub)
{
    if (sub->orq) {
        sub->dirty = 1;
        return;
    }
    char hash[33];
    state_hash(s, sub, hash);
    if (!sub->ending && !sub->force && strcmp(hash, sub->state_hash) == 0)
        return; /* nothing new to say */
    sub->force = 0;

    char state[96], event[128];
    if (sub->ending)
        snprintf(state, sizeof state, "terminated;reason=%s", sub->ending);
    else
        snprintf(state, sizeof state, "active;expires=%lld",
                 (long long)(sub->expires_at > util_now() ? sub->expires_at - util_now() : 0));
    snprintf(event, sizeof event, "%s%s%s", packages[sub->pkg].name, sub->event_id[0] ? ";id=" : "",
             sub->event_id);
    struct buf body = {0};
    body_of(s, sub, sub->version + 1, &body);
    buf_add(&body, "", 1); /* Sofia takes it as a string */
    msg_t *m = !body.failed ? nta_msg_create(s->agent, 0) : NULL;
    sip_t *sip = m ? sip_object(m) : NULL;
    su_home_t *home = m ? msg_home(m) : NULL;
    sip_request_t *rq =
        sip ? sip_request_create(home, SIP_METHOD_NOTIFY, URL_STRING_MAKE(sub->target), NULL)
            : NULL;
    sip_cseq_t *cs = sip ? sip_cseq_create(home, sub->local_cseq + 1, SIP_METHOD_NOTIFY) : NULL;
    nta_outgoing_t *orq = NULL;
    if (rq && cs && body.p &&
        sip_add_tl(
            m, sip, SIPTAG_REQUEST(rq), SIPTAG_FROM_STR(sub->local), SIPTAG_TO_STR(sub->remote),
            SIPTAG_CALL_ID_STR(sub->call_id), SIPTAG_CSEQ(cs), SIPTAG_CONTACT_STR(sub->contact),
            TAG_IF(sub->route, SIPTAG_ROUTE_STR(sub->route)), SIPTAG_MAX_FORWARDS_STR("70"),
            SIPTAG_EVENT_STR(event), SIPTAG_SUBSCRIPTION_STATE_STR(state),
            SIPTAG_SERVER_STR(SIP_SERVER_HEADER), SIPTAG_CONTENT_TYPE_STR(packages[sub->pkg].type),
            SIPTAG_PAYLOAD_STR(body.p), TAG_END()) == 0) {
        /* Where the watcher's SUBSCRIBE came from (NAT), unless a proxy put itself in the
         * route set: then along it. */
        orq = nta_outgoing_mcreate(s->agent, on_answer, (nta_outgoing_magic_t *)(void *)sub,
                                   sub->route ? NULL : URL_STRING_MAKE(sub->hop), m, TAG_END());
    }
    buf_free(&body);
    if (!orq) {
        log_warn("subs: cannot send NOTIFY to %s (%s of %s)", sub->target, packages[sub->pkg].name,
                 sub->presentity);
        if (m)
            msg_destroy(m);
        if (sub->ending)
            sub_drop(s, sub);
        return;
    }
    sub->final_sent = sub->ending != NULL;
    sip_keep_trace(s, sub->call_id);
    sub->orq = orq;
    sub->local_cseq++;
    sub->version++;
    memcpy(sub->state_hash, hash, sizeof hash);
    atomic_fetch_add_explicit(&s->notifies_sent, 1, memory_order_relaxed);
    if (!sub->ending)
        persist(s, sub);
}

/* Ends sub with a final NOTIFY giving reason; its row goes at once. */
static void terminate(struct sip *s, struct sub *sub, const char *reason)
{
    if (sub->ending)
        return;
    log_info("subs: %s's %s subscription to %s ends (%s)", sub->watcher, packages[sub->pkg].name,
             sub->presentity, reason);
    sub->ending = reason;
    store_writer_sub_remove(s->writer, sub->call_id, sub->local_tag);
    if (sub->orq)
        sub->dirty = 1; /* said once the NOTIFY in flight is answered */
    else
        notify(s, sub);
}

void subs_notify_presentity(struct sip *s, const char *ext)
{
    if (!s->subs)
        return;
    /* notify() may drop a subscription (a NOTIFY that cannot be sent): walk a copy. */
    struct sub *list[64], **all = list;
    size_t n = 0, cap = 64;
    for (struct sub *sub = strmap_get(s->subs->by_presentity, ext); sub; sub = sub->pnext) {
        if (n == cap) {
            struct sub **more = util_xmalloc(2 * cap * sizeof *more);
            memcpy(more, all, n * sizeof *more);
            if (all != list)
                free(all);
            all = more;
            cap *= 2;
        }
        all[n++] = sub;
    }
    for (size_t i = 0; i < n; i++)
        notify(s, all[i]);
    if (all != list)
        free(all);
}

size_t subs_watchers(struct sip *s, const char *ext)
{
    size_t n = 0;
    for (struct sub *sub = s->subs ? strmap_get(s->subs->by_presentity, ext) : NULL; sub;
         sub = sub->pnext)
        n += !sub->ending && !packages[sub->pkg].own_only;
    return n;
}

/* ---- SUBSCRIBE ---- */

static int package_of(sip_t const *sip)
{
    const char *type = sip->sip_event ? sip->sip_event->o_type : NULL;
    for (int i = 0; type && i < SIP_EVENT_PACKAGES; i++)
        if (strcmp(type, packages[i].name) == 0)
            return i;
    return -1;
}

/* True when the Accept header (if any) takes the package's body type. */
static int accepts(sip_t const *sip, int pkg)
{
    if (!sip->sip_accept)
        return 1;
    const char *type = packages[pkg].type;
    for (sip_accept_t const *a = sip->sip_accept; a; a = a->ac_next) {
        if (!a->ac_type)
            continue;
        if (strcasecmp(a->ac_type, type) == 0 || strcmp(a->ac_type, "*/*") == 0 ||
            strcasecmp(a->ac_type, "application/*") == 0)
            return 1;
    }
    return 0;
}

static char *header_dup(sip_header_t const *h)
{
    char buf[1024];
    if (!h || sip_header_field_e(buf, sizeof buf, h, 0) <= 0)
        return NULL;
    return util_xstrdup(buf);
}

/* The Record-Route of the SUBSCRIBE, in order, as our route set (RFC 3261 12.1.1). */
static char *route_set(sip_t const *sip)
{
    char out[1024] = "";
    for (sip_record_route_t const *rr = sip->sip_record_route; rr; rr = rr->r_next) {
        char one[300];
        if (url_e(one, sizeof one, rr->r_url) <= 0)
            continue;
        size_t n = strlen(out);
        snprintf(out + n, sizeof out - n, "%s<%s;lr>", n ? ", " : "", one);
    }
    if (!out[0])
        return NULL;
    /* url_e keeps the lr parameter: do not say it twice. */
    for (char *p; (p = strstr(out, ";lr;lr")) != NULL;)
        memmove(p, p + 3, strlen(p + 3) + 1);
    return util_xstrdup(out);
}

/* Where the watcher is reached: where its request came from, over the same transport. */
static char *next_hop(struct sip *s, const struct sip_req *r)
{
    char source[96], transport[8], hop[160];
    sip_source(s, r, source, sizeof source, transport, sizeof transport);
    snprintf(hop, sizeof hop, "sip:%s;transport=%s", source, transport);
    return util_xstrdup(hop);
}

/* Our Contact in the dialog: the address of the transport the SUBSCRIBE came on, so the
 * refreshes come back to it. */
static char *our_contact(struct sip *s, const struct sip_req *r, const char *ext)
{
    const char *transport = sip_transport_of(s, r->irq, NULL);
    int udp = strcmp(transport, "udp") == 0;
    int port = strcmp(transport, "tls") == 0 && s->tls_port ? s->tls_port : s->port;
    char out[400];
    snprintf(out, sizeof out,
             strchr(s->rr_host, ':') ? "<sip:%s@[%s]:%d%s%s>" : "<sip:%s@%s:%d%s%s>", ext,
             s->rr_host, port, udp ? "" : ";transport=", udp ? "" : transport);
    return util_xstrdup(out);
}

long subs_expires(struct sip *s, nta_incoming_t *irq, sip_t const *sip)
{
    long e = sip->sip_expires ? (long)sip->sip_expires->ex_delta : EVENT_DEFAULT_EXPIRES;
    if (e > 0 && e < EVENT_MIN_EXPIRES) {
        char min[16];
        snprintf(min, sizeof min, "%d", EVENT_MIN_EXPIRES);
        sip_reply(s, irq, SIP_423_INTERVAL_TOO_BRIEF, SIPTAG_MIN_EXPIRES_STR(min), TAG_END());
        return -1;
    }
    return e > EVENT_MAX_EXPIRES ? EVENT_MAX_EXPIRES : e;
}

static void reply_ok(struct sip *s, nta_incoming_t *irq, const struct sub *sub, long expires)
{
    char exp[24];
    snprintf(exp, sizeof exp, "%ld", expires);
    sip_reply(s, irq, SIP_200_OK, SIPTAG_EXPIRES_STR(exp), SIPTAG_CONTACT_STR(sub->contact),
              SIPTAG_ALLOW_EVENTS_STR(ALLOW_EVENTS), TAG_END());
}

static void refresh(struct sip *s, const struct sip_req *r, sip_t const *sip, struct sub *sub)
{
    nta_incoming_t *irq = r->irq;
    if (sub->ending || !sip->sip_from->a_tag ||
        strcmp(sip->sip_from->a_tag, sub->remote_tag) != 0) {
        sip_reply(s, irq, SIP_481_NO_TRANSACTION, TAG_END());
        return;
    }
    sip_accepted(s, r, sip);
    if (package_of(sip) != sub->pkg) {
        sip_reply(s, irq, SIP_489_BAD_EVENT, SIPTAG_ALLOW_EVENTS_STR(packages[sub->pkg].name),
                  TAG_END());
        return;
    }
    if (sip->sip_cseq->cs_seq <= sub->remote_cseq) {
        sip_reply(s, irq, 500, "CSeq out of order", TAG_END());
        return;
    }
    long expires = subs_expires(s, irq, sip);
    if (expires < 0)
        return;
    sub->remote_cseq = sip->sip_cseq->cs_seq;
    char *hop = next_hop(s, r); /* the watcher may have moved (a NAT binding renewed) */
    if (hop) {
        free(sub->hop);
        sub->hop = hop;
    }
    if (sip->sip_contact) {
        char target[512];
        if (url_e(target, sizeof target, sip->sip_contact->m_url) > 0) {
            free(sub->target);
            sub->target = util_xstrdup(target);
        }
    }
    reply_ok(s, irq, sub, expires);
    if (expires == 0) { /* unsubscribe: the final NOTIFY says the state once more */
        terminate(s, sub, "timeout");
        return;
    }
    sub->expires_at = util_now() + expires;
    sub->force = 1;
    persist(s, sub);
    notify(s, sub);
}

void subs_handle(struct sip *s, const struct sip_req *r, sip_t const *sip)
{
    nta_incoming_t *irq = r->irq;
    if (!sip->sip_call_id || !sip->sip_cseq || !sip->sip_from || !sip->sip_to || !sip->sip_via) {
        sip_reply(s, irq, 400, "Missing mandatory header", TAG_END());
        return;
    }
    if (sip->sip_to->a_tag) {
        char key[320];
        snprintf(key, sizeof key, "%s %s", sip->sip_call_id->i_id, sip->sip_to->a_tag);
        struct sub *sub = strmap_get(s->subs->by_key, key);
        if (sub)
            refresh(s, r, sip, sub);
        else
            proxy_handle(s, r, sip); /* a dialog between phones through us, or none: 481 */
        return;
    }
    /* Which package first: an unsupported one is said at once, without a challenge, with
     * what we do support (RFC 6665 7.2.2 wants Allow-Events on a 489). */
    int pkg = package_of(sip);
    if (pkg < 0) {
        sip_reply(s, irq, SIP_489_BAD_EVENT, SIPTAG_ALLOW_EVENTS_STR(ALLOW_EVENTS), TAG_END());
        return;
    }
    const struct sip_user *watcher;
    if (auth_check(s, r, sip, 1, &watcher) != AUTH_OK)
        return;
    sip_accepted(s, r, sip);
    const char *from_user = sip->sip_from->a_url->url_user;
    if (!from_user || strcmp(from_user, watcher->extension) != 0) {
        sip_reply(s, irq, 403, "From does not match the credentials", TAG_END());
        return;
    }
    url_t const *ruri = sip->sip_request->rq_url;
    if (!sip_host_is_ours(s, ruri->url_host)) {
        sip_reply(s, irq, 403, "Only users of this domain can be watched", TAG_END());
        return;
    }
    /* The resource: the watcher's own mailbox, whichever of its names the phone used
     * (baresip and pjsip's phones such as MicroSIP subscribe to their own address of
     * record; some desk phones to the voicemail number), or the user named. */
    const char *presentity = ruri->url_user;
    if (packages[pkg].own_only) {
        if (!mwi_is_mailbox_uri(s, ruri->url_user, watcher->extension)) {
            sip_reply(s, irq, 403, "Only your own mailbox can be watched", TAG_END());
            return;
        }
        presentity = watcher->extension;
    } else if (!presentity || !usercache_get(s, presentity)) {
        sip_reply(s, irq, SIP_404_NOT_FOUND, TAG_END());
        return;
    }
    if (!accepts(sip, pkg)) {
        sip_reply(s, irq, SIP_406_NOT_ACCEPTABLE, SIPTAG_ACCEPT_STR(packages[pkg].type), TAG_END());
        return;
    }
    if (!sip->sip_contact) {
        sip_reply(s, irq, 400, "Missing Contact", TAG_END());
        return;
    }
    long expires = subs_expires(s, irq, sip);
    if (expires < 0)
        return;

    char target[512];
    if (url_e(target, sizeof target, sip->sip_contact->m_url) <= 0) {
        sip_reply(s, irq, SIP_500_INTERNAL_SERVER_ERROR, TAG_END());
        return;
    }
    struct sub *sub = util_xcalloc(1, sizeof *sub);
    sub->pkg = pkg;
    snprintf(sub->call_id, sizeof sub->call_id, "%s", sip->sip_call_id->i_id);
    unsigned char rnd[12];
    util_random(rnd, sizeof rnd);
    util_hex(sub->local_tag, rnd, sizeof rnd);
    snprintf(sub->remote_tag, sizeof sub->remote_tag, "%s",
             sip->sip_from->a_tag ? sip->sip_from->a_tag : "");
    if (sip->sip_event->o_id)
        snprintf(sub->event_id, sizeof sub->event_id, "%s", sip->sip_event->o_id);
    snprintf(sub->watcher, sizeof sub->watcher, "%s", watcher->extension);
    snprintf(sub->presentity, sizeof sub->presentity, "%s", presentity);
    sub->remote = header_dup((sip_header_t const *)sip->sip_from);
    char to[700], to_value[600];
    sip_header_field_e(to_value, sizeof to_value, (sip_header_t const *)sip->sip_to, 0);
    snprintf(to, sizeof to, "%s;tag=%s", to_value, sub->local_tag);
    sub->local = util_xstrdup(to);
    sub->target = util_xstrdup(target);
    sub->hop = next_hop(s, r);
    sub->route = route_set(sip);
    sub->contact = our_contact(s, r, sub->presentity);
    sub->remote_cseq = sip->sip_cseq->cs_seq;
    sub->created_at = util_now();
    sub->expires_at = sub->created_at + expires;
    sub->force = 1;
    if (!sub->remote || !sip->sip_from->a_tag) {
        int no_tag = !sip->sip_from->a_tag;
        sub_free(sub);
        if (no_tag)
            sip_reply(s, irq, 400, "From has no tag", TAG_END());
        else
            sip_reply(s, irq, SIP_500_INTERNAL_SERVER_ERROR, TAG_END());
        return;
    }
    sub_add(s, sub);
    nta_incoming_tag(irq, sub->local_tag);
    reply_ok(s, irq, sub, expires);
    if (expires == 0) { /* a fetch: one NOTIFY with the state, and the dialog ends */
        sub->ending = "timeout";
        notify(s, sub);
        return;
    }
    log_info("subs: %s watches %s (%s, %ld s)", sub->watcher, sub->presentity, packages[pkg].name,
             expires);
    persist(s, sub);
    notify(s, sub);
}

/* ---- time, users, life cycle ---- */

struct expire_ctx {
    struct sip *s;
    int64_t now;
    struct sub **due;
    size_t n, cap;
};

static int collect_due(const char *key, void *val, void *arg)
{
    (void)key;
    struct expire_ctx *ec = arg;
    struct sub *sub = val;
    if (sub->ending || sub->expires_at > ec->now)
        return STRMAP_KEEP;
    if (ec->n == ec->cap) {
        size_t cap = ec->cap ? 2 * ec->cap : 16;
        ec->due = util_xrealloc(ec->due, cap * sizeof *ec->due);
        ec->cap = cap;
    }
    ec->due[ec->n++] = sub;
    return STRMAP_KEEP;
}

void subs_expire(struct sip *s, int64_t now)
{
    struct expire_ctx ec = {s, now, NULL, 0, 0};
    strmap_foreach(s->subs->by_key, collect_due, &ec);
    for (size_t i = 0; i < ec.n; i++)
        terminate(s, ec.due[i], "timeout");
    free(ec.due);
}

struct user_ctx {
    const char *ext;
    struct sub **hit;
    size_t n, cap;
};

static int collect_user(const char *key, void *val, void *arg)
{
    (void)key;
    struct user_ctx *uc = arg;
    struct sub *sub = val;
    if (strcmp(sub->watcher, uc->ext) != 0 && strcmp(sub->presentity, uc->ext) != 0)
        return STRMAP_KEEP;
    if (uc->n == uc->cap) {
        size_t cap = uc->cap ? 2 * uc->cap : 16;
        uc->hit = util_xrealloc(uc->hit, cap * sizeof *uc->hit);
        uc->cap = cap;
    }
    uc->hit[uc->n++] = sub;
    return STRMAP_KEEP;
}

void subs_user_deleted(struct sip *s, const char *ext)
{
    struct user_ctx uc = {ext, NULL, 0, 0};
    strmap_foreach(s->subs->by_key, collect_user, &uc);
    /* RFC 6665 4.2.2: the watched resource is gone (noresource); a watcher that is no
     * longer a user is no longer allowed to watch (rejected). */
    for (size_t i = 0; i < uc.n; i++)
        terminate(s, uc.hit[i],
                  strcmp(uc.hit[i]->presentity, ext) == 0 ? "noresource" : "rejected");
    free(uc.hit);
}

static char *dup_or_null(const char *v)
{
    return v && *v ? util_xstrdup(v) : NULL;
}

/* A subscription of the last run: active again, or ended at once when its user is gone. */
static int load_sub(const struct store_sub *row, void *ctx)
{
    struct sip *s = ctx;
    int pkg = -1;
    for (int i = 0; i < SIP_EVENT_PACKAGES; i++)
        if (strcmp(row->package, packages[i].name) == 0)
            pkg = i;
    if (pkg < 0 || row->expires_at <= util_now()) {
        store_writer_sub_remove(s->writer, row->call_id, row->local_tag);
        return 0;
    }
    struct sub *sub = util_xcalloc(1, sizeof *sub);
    sub->pkg = pkg;
    snprintf(sub->call_id, sizeof sub->call_id, "%s", row->call_id);
    snprintf(sub->local_tag, sizeof sub->local_tag, "%s", row->local_tag);
    snprintf(sub->event_id, sizeof sub->event_id, "%s", row->event_id);
    snprintf(sub->watcher, sizeof sub->watcher, "%s", row->watcher);
    snprintf(sub->presentity, sizeof sub->presentity, "%s", row->presentity);
    const char *tag = strstr(row->remote, ";tag=");
    if (tag)
        snprintf(sub->remote_tag, sizeof sub->remote_tag, "%.*s", (int)strcspn(tag + 5, ";> "),
                 tag + 5);
    sub->remote = util_xstrdup(row->remote);
    sub->local = util_xstrdup(row->local);
    sub->target = util_xstrdup(row->target);
    sub->hop = util_xstrdup(row->next_hop);
    sub->route = dup_or_null(row->route);
    sub->contact = util_xstrdup(row->contact);
    sub->local_cseq = row->local_cseq;
    sub->remote_cseq = row->remote_cseq;
    sub->version = row->version;
    snprintf(sub->state_hash, sizeof sub->state_hash, "%s", row->state_hash);
    sub->created_at = row->created_at;
    sub->expires_at = row->expires_at;
    sub_add(s, sub);
    /* A user deleted while sipbx was down: the final NOTIFY goes with the flush below,
     * once the loop runs. */
    if (!usercache_get(s, sub->presentity))
        sub->ending = "noresource";
    else if (!usercache_get(s, sub->watcher))
        sub->ending = "rejected";
    if (sub->ending)
        store_writer_sub_remove(s->writer, sub->call_id, sub->local_tag);
    /* The flush after start-up compares what the package says now with what the last
     * NOTIFY said (state_hash) and notifies where it changed. */
    pres_changed(s, sub->presentity);
    return 0;
}

int subs_create(struct sip *s, struct store *st)
{
    struct subs *ss = calloc(1, sizeof *ss);
    if (!ss)
        return ENOMEM;
    s->subs = ss;
    if (strmap_create(&ss->by_key) != 0 || strmap_create(&ss->by_presentity) != 0)
        return ENOMEM;
    int rc = store_sub_list(st, load_sub, s);
    size_t n = strmap_count(ss->by_key);
    if (rc == 0 && n)
        log_info("subs: %zu subscription(s) restored from the database", n);
    return rc;
}

static int free_one(const char *key, void *val, void *arg)
{
    (void)key;
    (void)arg;
    sub_free(val);
    return STRMAP_DROP;
}

void subs_destroy(struct sip *s)
{
    struct subs *ss = s->subs;
    if (!ss)
        return;
    if (ss->by_key) {
        strmap_foreach(ss->by_key, free_one, NULL);
        strmap_destroy(ss->by_key, NULL);
    }
    if (ss->by_presentity)
        strmap_destroy(ss->by_presentity, NULL);
    free(ss);
    s->subs = NULL;
}
