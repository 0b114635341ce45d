/* The live call table: one entry per routed INVITE from first INVITE to BYE (or failure),
 * with the timestamps and parties a CDR needs, and an event to subscribers at each change. */
#include "events/events.h"
#include "render/render.h"
#include "sip/sip_int.h"

#include <stdlib.h>
#include <string.h>

#include <errno.h>

#include <cjson/cJSON.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>

static const char *const hangup_names[] = {"caller", "callee", "sipbx", "admin"};

/* RFC 4028 section 10: without a refresh the phone that is not the refresher sends BYE
 * min(32 s, interval / 3) before the session expires. A call still here that long after
 * the expiry has lost both phones (or their BYE). */
static int64_t session_grace(unsigned long interval)
{
    return interval / 3 < 32 ? (int64_t)(interval / 3) : 32;
}

void sip_publish(struct sip *s, const char *type, cJSON *obj)
{
    if (s->events && obj) {
        char *json = cJSON_PrintUnformatted(obj);
        if (json)
            events_publish(s->events, type, json);
        free(json);
    }
    cJSON_Delete(obj);
}

static void publish_call(struct sip *s, const char *type, const struct call *c)
{
    pres_call(s, c); /* the busy lamps of its parties */
    if (s->events)
        sip_publish(s, type, render_call(&c->info));
}

const char *const sip_disposition_names[SIP_DISPOSITIONS] = {"ANSWERED", "BUSY", "NO ANSWER",
                                                             "CANCELLED", "FAILED"};

/* Asterisk-style disposition of a call from its final status and who ended it. */
static const char *disposition(const struct call *c)
{
    int st = c->info.final_status;
    if (c->info.answered_us)
        return "ANSWERED";
    if (st == 486 || st == 600 || st == 603)
        return "BUSY";
    if (st == 487 &&
        (strcmp(c->info.hangup_by, "caller") == 0 || strcmp(c->info.hangup_by, "admin") == 0))
        return "CANCELLED";
    /* 480: no device of the callee could be reached (not registered, or none answered the
     * transaction at all): the call failed, nobody let it ring out. */
    if (st == 408 || st == 487)
        return "NO ANSWER";
    return "FAILED";
}

/* Queues the call's record: open (the journal written at answer time, so a kill -9
 * leaves a trace) or closed. */
static void write_cdr(struct sip *s, const struct call *c, int open, int interrupted)
{
    struct store_cdr r;
    memset(&r, 0, sizeof r);
    const struct sip_call_info *i = &c->info;
    snprintf(r.call_id, sizeof r.call_id, "%s", i->call_id);
    snprintf(r.caller, sizeof r.caller, "%s", i->caller);
    snprintf(r.caller_name, sizeof r.caller_name, "%s", i->caller_name);
    snprintf(r.dialled, sizeof r.dialled, "%s", i->callee);
    snprintf(r.answered_by, sizeof r.answered_by, "%s", c->answered_by);
    cJSON *fw = render_forwards(i);
    char *fws = fw ? cJSON_PrintUnformatted(fw) : NULL;
    snprintf(r.forwards, sizeof r.forwards, "%s",
             fws && strlen(fws) < sizeof r.forwards ? fws : "[]");
    free(fws);
    cJSON_Delete(fw);
    r.start_us = i->started_us;
    r.answer_us = i->answered_us;
    r.end_us = open ? 0 : i->ended_us;
    if (!open) {
        r.duration = (i->ended_us - i->started_us) / 1000000;
        r.billsec = i->answered_us ? (i->ended_us - i->answered_us) / 1000000 : 0;
    }
    snprintf(r.disposition, sizeof r.disposition, "%s", disposition(c));
    r.status = i->final_status;
    snprintf(r.phrase, sizeof r.phrase, "%s",
             sip_status_phrase(i->final_status) ? sip_status_phrase(i->final_status) : "");
    snprintf(r.hangup_by, sizeof r.hangup_by, "%s", i->hangup_by);
    snprintf(r.user_agent, sizeof r.user_agent, "%s", i->user_agent);
    r.open = open;
    r.interrupted = interrupted;
    snprintf(r.linked_call, sizeof r.linked_call, "%s", i->linked_call);
    snprintf(r.link, sizeof r.link, "%s", i->link);
    for (int k = 0; !open && k < SIP_DISPOSITIONS; k++)
        if (strcmp(r.disposition, sip_disposition_names[k]) == 0)
            atomic_fetch_add_explicit(&s->calls_ended[k], 1, memory_order_relaxed);
    store_writer_cdr(s->writer, &r);
}

_Static_assert(sizeof(struct call) <= UTIL_POOL_MAX, "a call must fit the calls' pool");

static void legs_free(struct util_pool *p, struct call_legs *l)
{
    util_pool_free(p, l->a_from);
    util_pool_free(p, l->a_target);
    util_pool_free(p, l->a_hop);
    util_pool_free(p, l->a_route);
    util_pool_free(p, l->b_to);
    util_pool_free(p, l->b_target);
    util_pool_free(p, l->b_hop);
    util_pool_free(p, l->b_route);
}

static void busy_call(struct sip *s, const struct call *c, int d);

/* Frees c, which has left (or never made it into) the call table. */
static void call_free(struct sip *s, struct call *c)
{
    if (!c)
        return;
    busy_call(s, c, -1);
    legs_free(s->pool, &c->legs);
    util_pool_free(s->pool, c);
}

/* A header's value as text (a new string in the calls' pool), or NULL. */
static char *header_text(struct sip *s, sip_header_t const *h)
{
    char buf[1024];
    if (!h || sip_header_field_e(buf, sizeof buf, h, 0) <= 0)
        return NULL;
    return util_pool_strdup(s->pool, buf);
}

static char *url_text(struct sip *s, url_t const *u)
{
    char buf[1024];
    if (!u || url_e(buf, sizeof buf, u) <= 0)
        return NULL;
    return util_pool_strdup(s->pool, buf);
}

static void set_state(struct call *c, const char *state)
{
    snprintf(c->info.state, sizeof c->info.state, "%s", state);
}

/* ---- transfers and pickups: which call a new one came from ---- */

/* How long after a REFER the call it asks for counts as its result. */
#define REFER_WINDOW_S 60
/* At most this many REFERs are remembered (a flood of REFERs does not grow memory). */
#define REFERS_MAX 1024

/* A REFER that passed in an answered call: its recipient (the transferee) is to call the
 * Refer-To user. */
struct refer {
    char call_id[256]; /* of the call the REFER came in */
    int64_t at;        /* monotonic seconds */
};

static int drop_old_refer(const char *key, void *val, void *arg)
{
    (void)key;
    return ((struct refer *)val)->at + REFER_WINDOW_S < *(int64_t *)arg ? STRMAP_DROP : STRMAP_KEEP;
}

static void refer_key(char *out, size_t outlen, const char *transferee, const char *target)
{
    snprintf(out, outlen, "%s|%s", transferee, target);
}

/* A REFER passes in answered call c (from_caller: the caller sent it): remembers that the
 * other side was asked to call the Refer-To user (RFC 3515), for refer_link. */
static void refer_seen(struct sip *s, struct call *c, sip_t const *sip, int from_caller)
{
    url_t const *to = sip->sip_refer_to ? sip->sip_refer_to->r_url : NULL;
    const char *transferee = from_caller ? c->answered_by : c->info.caller;
    if (!to || !to->url_user || !*to->url_user || !*transferee)
        return;
    int64_t now = util_mono();
    if (strmap_count(s->refers) >= REFERS_MAX)
        strmap_foreach(s->refers, drop_old_refer, &now);
    if (strmap_count(s->refers) >= REFERS_MAX)
        return;
    char key[2 * STORE_EXT_MAX + 256];
    refer_key(key, sizeof key, transferee, to->url_user);
    struct refer *r = util_xcalloc(1, sizeof *r);
    void *old = NULL;
    snprintf(r->call_id, sizeof r->call_id, "%s", c->info.call_id);
    r->at = now;
    strmap_put(s->refers, key, r, &old);
    free(old);
}

/* Links new call c (caller to callee) to the call it came from: the call whose dialog an
 * INVITE with Replaces takes over (RFC 3891: a pickup while that one rings, the end of an
 * attended transfer once answered), or the call in which the caller was asked by a REFER
 * to call callee a moment ago (a blind transfer; an attended one names the call the REFER
 * came in, which the transfer started from). */
static void refer_link(struct sip *s, struct call *c, sip_t const *sip, const char *caller,
                       const char *callee)
{
    struct sip_call_info *i = &c->info;
    if (sip->sip_replaces && sip->sip_replaces->rp_call_id) {
        const struct call *r = strmap_get(s->calls, sip->sip_replaces->rp_call_id);
        snprintf(i->linked_call, sizeof i->linked_call, "%s", sip->sip_replaces->rp_call_id);
        snprintf(i->link, sizeof i->link, "%s",
                 r && !r->info.answered_us ? "pickup" : "attended-transfer");
    }
    char key[2 * STORE_EXT_MAX + 256];
    refer_key(key, sizeof key, caller, callee);
    struct refer *r = strmap_count(s->refers) ? strmap_get(s->refers, key) : NULL;
    if (!r)
        return;
    if (r->at + REFER_WINDOW_S >= util_mono() && strcmp(r->call_id, i->call_id) != 0) {
        snprintf(i->linked_call, sizeof i->linked_call, "%s", r->call_id);
        if (!i->link[0])
            snprintf(i->link, sizeof i->link, "%s", "transfer");
    }
    free(strmap_remove(s->refers, key));
}

/* Housekeeping: forgets REFERs whose call did not come within the window. */
void calls_expire_refers(struct sip *s)
{
    int64_t now = util_mono();
    if (strmap_count(s->refers))
        strmap_foreach(s->refers, drop_old_refer, &now);
}

struct call *calls_start(struct sip *s, sip_t const *sip, const struct sip_user *caller,
                         const char *callee, const char *source, const char *transport)
{
    struct call *c = util_pool_alloc(s->pool, sizeof *c);
    c->info.id = atomic_fetch_add_explicit(&s->next_call_id, 1, memory_order_relaxed) + 1;
    snprintf(c->info.call_id, sizeof c->info.call_id, "%s", sip->sip_call_id->i_id);
    set_state(c, "trying");
    snprintf(c->info.caller, sizeof c->info.caller, "%s", caller->extension);
    const char *display = sip->sip_from->a_display;
    if (display && *display) {
        /* Keep the name without its quotes and quoted-pair backslashes (RFC 3261 25.1:
         * "\"Guy\"" is the name "Guy" in quotes); it stays data (escaped by whoever
         * shows it). */
        size_t n = strlen(display);
        if (n >= 2 && display[0] == '"' && display[n - 1] == '"') {
            size_t k = 0;
            for (size_t j = 1; j < n - 1 && k < sizeof c->info.caller_name - 1; j++) {
                if (display[j] == '\\' && j + 1 < n - 1)
                    j++;
                c->info.caller_name[k++] = display[j];
            }
            c->info.caller_name[k] = '\0';
        } else {
            snprintf(c->info.caller_name, sizeof c->info.caller_name, "%s", display);
        }
    } else {
        snprintf(c->info.caller_name, sizeof c->info.caller_name, "%s", caller->display_name);
    }
    snprintf(c->info.callee, sizeof c->info.callee, "%s", callee);
    if (sip->sip_contact)
        url_e(c->info.caller_contact, sizeof c->info.caller_contact, sip->sip_contact->m_url);
    else
        snprintf(c->info.caller_contact, sizeof c->info.caller_contact, "%s", source);
    if (sip->sip_user_agent && sip->sip_user_agent->g_string)
        snprintf(c->info.user_agent, sizeof c->info.user_agent, "%s",
                 sip->sip_user_agent->g_string);
    if (sip->sip_from->a_tag)
        snprintf(c->from_tag, sizeof c->from_tag, "%s", sip->sip_from->a_tag);
    c->legs.a_from = header_text(s, (sip_header_t const *)sip->sip_from);
    c->legs.a_target = sip->sip_contact ? url_text(s, sip->sip_contact->m_url) : NULL;
    char hop[160];
    snprintf(hop, sizeof hop, "sip:%s;transport=%s", source, transport);
    c->legs.a_hop = util_pool_strdup(s->pool, hop);
    c->legs.a_cseq = sip->sip_cseq->cs_seq;
    refer_link(s, c, sip, caller->extension, callee);
    c->info.started_us = util_now_us();
    c->max_end = util_mono() + s->cfg->max_call_seconds;
    void *old = NULL;
    strmap_put(s->calls, c->info.call_id, c, &old);
    call_free(s, old); /* an INVITE reusing a Call-ID of an old entry replaces it */
    publish_call(s, "call.new", c);
    return c;
}

void calls_ringing(struct sip *s, struct call *c, const char *contact, sip_t const *resp)
{
    if (c->info.ringing_us)
        return;
    if (resp && resp->sip_to && resp->sip_to->a_tag)
        snprintf(c->to_tag, sizeof c->to_tag, "%s", resp->sip_to->a_tag);
    c->info.ringing_us = util_now_us();
    set_state(c, "ringing");
    snprintf(c->info.callee_contact, sizeof c->info.callee_contact, "%s", contact);
    publish_call(s, "call.ringing", c);
}

void calls_forwarded(struct sip *s, struct call *c, const char *from, const char *to,
                     const char *reason)
{
    struct sip_call_info *i = &c->info;
    if (i->nforwards < SIP_MAX_FORWARDS) {
        snprintf(i->forwards[i->nforwards].from, sizeof i->forwards[0].from, "%s", from);
        snprintf(i->forwards[i->nforwards].to, sizeof i->forwards[0].to, "%s", to);
        snprintf(i->forwards[i->nforwards].reason, sizeof i->forwards[0].reason, "%s", reason);
        i->nforwards++;
    }
    snprintf(i->callee_contact, sizeof i->callee_contact, "%s", "");
    c->to_tag[0] = '\0';
    i->ringing_us = 0;
    set_state(c, "forwarded");
    publish_call(s, "call.forwarded", c);
}

/* A session timer (RFC 4028): the interval the 2xx agreed on; the call counts as gone when
 * no refresh came within it and the grace above.
 * A 2xx without Session-Expires keeps the interval agreed before (a refresh that does not
 * restate it). While a timer runs, the refreshes prove the call alive and the maximum call
 * length does not apply. */
static void session_refreshed(struct call *c, sip_t const *resp)
{
    if (resp && resp->sip_session_expires && resp->sip_session_expires->x_delta > 0)
        c->session = resp->sip_session_expires->x_delta;
    if (c->session)
        c->max_end = util_mono() + (int64_t)c->session + session_grace(c->session);
}

/* The route sets towards each side beyond sipbx, from the Record-Route of the 2xx: the
 * entries below ours lead to the caller (in order), those above ours to the callee (in
 * reverse order). With the phones registered here directly there are none. */
static void legs_routes(struct sip *s, struct call_legs *l, sip_record_route_t const *rr)
{
    enum { MAX_HOPS = 8 };
    char before[MAX_HOPS][256], after[1024] = "";
    int nbefore = 0, ours = 0;
    for (; rr; rr = rr->r_next) {
        char one[256];
        if (proxy_is_us(s, rr->r_url)) {
            ours = 1;
        } else if (url_e(one, sizeof one, rr->r_url) > 0) {
            if (ours) {
                size_t n = strlen(after);
                snprintf(after + n, sizeof after - n, "%s<%s>", n ? ", " : "", one);
            } else if (nbefore < MAX_HOPS) {
                snprintf(before[nbefore++], sizeof before[0], "%s", one);
            }
        }
    }
    char rev[1024] = "";
    for (int i = nbefore - 1; i >= 0; i--) {
        size_t n = strlen(rev);
        snprintf(rev + n, sizeof rev - n, "%s<%s>", n ? ", " : "", before[i]);
    }
    l->a_route = after[0] ? util_pool_strdup(s->pool, after) : NULL;
    l->b_route = rev[0] ? util_pool_strdup(s->pool, rev) : NULL;
}

void calls_answered(struct sip *s, struct call *c, const char *contact, const char *answered_by,
                    const char *next_hop, sip_t const *resp)
{
    if (c->info.answered_us)
        return; /* a second 2xx (another fork, or a retransmission) */
    c->legs.b_to = header_text(s, (sip_header_t const *)resp->sip_to);
    snprintf(c->to_tag, sizeof c->to_tag, "%s",
             resp->sip_to && resp->sip_to->a_tag ? resp->sip_to->a_tag : "");
    c->legs.b_target = resp->sip_contact ? url_text(s, resp->sip_contact->m_url) : NULL;
    c->legs.b_hop = util_pool_strdup(s->pool, next_hop);
    legs_routes(s, &c->legs, resp->sip_record_route);
    session_refreshed(c, resp);
    c->info.answered_us = util_now_us();
    c->info.final_status = 200;
    c->invite = NULL;
    set_state(c, "answered");
    snprintf(c->info.callee_contact, sizeof c->info.callee_contact, "%s", contact);
    snprintf(c->answered_by, sizeof c->answered_by, "%s", answered_by);
    busy_call(s, c, 1);
    write_cdr(s, c, 1, 0);
    publish_call(s, "call.answered", c);
}

/* Publishes the end and removes the call. */
static void end_call(struct sip *s, struct call *c, const char *by)
{
    c->info.ended_us = util_now_us();
    set_state(c, "ended");
    snprintf(c->info.hangup_by, sizeof c->info.hangup_by, "%s", by);
    write_cdr(s, c, 0, 0);
    publish_call(s, "call.ended", c);
    if (strmap_get(s->calls, c->info.call_id) == c)
        strmap_remove(s->calls, c->info.call_id);
    call_free(s, c);
}

void calls_failed(struct sip *s, struct call *c, int status, const char *by)
{
    c->info.final_status = status;
    c->invite = NULL;
    end_call(s, c, by);
}

/* True when the SDP puts the media on hold (RFC 3264 8.4; RFC 2543 style 0.0.0.0). */
static int sdp_is_hold(const char *body, size_t len)
{
    static const char *const marks[] = {"a=sendonly", "a=inactive", "c=IN IP4 0.0.0.0"};
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++)
        if (memmem(body, len, marks[i], strlen(marks[i])))
            return 1;
    return 0;
}

void calls_refreshed(struct sip *s, sip_t const *resp)
{
    struct call *c = resp->sip_call_id ? strmap_get(s->calls, resp->sip_call_id->i_id) : NULL;
    if (c && c->info.answered_us)
        session_refreshed(c, resp);
}

void calls_in_dialog(struct sip *s, sip_t const *sip)
{
    struct call *c = strmap_get(s->calls, sip->sip_call_id->i_id);
    if (!c || !c->info.answered_us)
        return;
    sip_method_t m = sip->sip_request->rq_method;
    int from_caller = sip->sip_from->a_tag && strcmp(sip->sip_from->a_tag, c->from_tag) == 0;
    uint32_t *seen = from_caller ? &c->legs.a_cseq : &c->legs.b_cseq;
    if (m != sip_method_ack && sip->sip_cseq->cs_seq > *seen)
        *seen = sip->sip_cseq->cs_seq;
    if (m == sip_method_bye) {
        end_call(s, c, hangup_names[from_caller ? 0 : 1]);
    } else if (m == sip_method_refer) {
        refer_seen(s, c, sip, from_caller);
    } else if (m == sip_method_invite && sip->sip_payload && sip->sip_payload->pl_len) {
        int hold = sdp_is_hold(sip->sip_payload->pl_data, sip->sip_payload->pl_len);
        int held = strcmp(c->info.state, "held") == 0;
        if (hold != held) {
            set_state(c, hold ? "held" : "answered");
            publish_call(s, "call.held", c);
        }
    }
}

/* Adds d to the answered calls of ext. */
static void busy_add(struct sip *s, const char *ext, int d)
{
    if (!ext || !*ext)
        return;
    int *n = strmap_get(s->in_calls, ext);
    if (!n) {
        if (d <= 0)
            return;
        n = util_pool_alloc(s->pool, sizeof *n);
        strmap_put(s->in_calls, ext, n, NULL);
    }
    *n += d;
    if (*n <= 0)
        util_pool_free(s->pool, strmap_remove(s->in_calls, ext));
}

/* An answered call starts (d 1) or ends (d -1) for its caller and the user whose device
 * answered: not the one dialled, since after a forward the dialled user is free and the
 * forward target is the one in the call. Someone calling themselves counts once. */
static void busy_call(struct sip *s, const struct call *c, int d)
{
    if (!c->info.answered_us)
        return;
    busy_add(s, c->info.caller, d);
    if (strcmp(c->answered_by, c->info.caller) != 0)
        busy_add(s, c->answered_by, d);
}

int calls_busy(struct sip *s, const char *ext)
{
    int *n = s->in_calls ? strmap_get(s->in_calls, ext) : NULL;
    return n ? *n : 0;
}

struct expire_ctx {
    struct sip *s;
    int64_t now;
};

static int expire_one(const char *key, void *val, void *arg)
{
    (void)key;
    struct call *c = val;
    struct expire_ctx *ec = arg;
    if (!c->info.answered_us || c->max_end > ec->now)
        return STRMAP_KEEP;
    if (c->session)
        log_warn("call %s between %s and %s ended: no session refresh within %lu s "
                 "(Session-Expires) and no BYE",
                 c->info.call_id, c->info.caller, c->info.callee, c->session);
    else
        log_warn("call %s between %s and %s dropped after %d s without BYE", c->info.call_id,
                 c->info.caller, c->info.callee, ec->s->cfg->max_call_seconds);
    c->info.ended_us = util_now_us();
    set_state(c, "ended");
    snprintf(c->info.hangup_by, sizeof c->info.hangup_by, "%s", hangup_names[2]);
    write_cdr(ec->s, c, 0, 0);
    publish_call(ec->s, "call.ended", c);
    call_free(ec->s, c);
    return STRMAP_DROP;
}

void calls_expire(struct sip *s, int64_t mono_now)
{
    struct expire_ctx ec = {s, mono_now};
    strmap_foreach(s->calls, expire_one, &ec);
}

/* At shutdown an answered call is still up between the phones, but its BYE will not pass
 * here: its record is closed now, marked interrupted. */
static int close_at_shutdown(const char *key, void *val, void *arg)
{
    (void)key;
    struct call *c = val;
    struct sip *s = arg;
    if (c->info.answered_us) {
        c->info.ended_us = util_now_us();
        snprintf(c->info.hangup_by, sizeof c->info.hangup_by, "%s", hangup_names[2]);
        write_cdr(s, c, 0, 1);
    }
    call_free(s, c);
    return STRMAP_DROP;
}

void calls_destroy_all(struct sip *s)
{
    if (!s->calls)
        return;
    strmap_foreach(s->calls, close_at_shutdown, s);
    strmap_destroy(s->calls, NULL);
    s->calls = NULL;
}

struct copy_ctx {
    struct sip *s;
    struct sip_call_info *arr;
    size_t n;
};

static int copy_one(const char *key, void *val, void *arg)
{
    (void)key;
    struct copy_ctx *cc = arg;
    cc->arr[cc->n++] = ((struct call *)val)->info;
    return STRMAP_KEEP;
}

static int snapshot_on_sip_thread(void *arg)
{
    struct copy_ctx *cc = arg;
    size_t n = strmap_count(cc->s->calls);
    cc->arr = util_xcalloc(n, sizeof *cc->arr);
    strmap_foreach(cc->s->calls, copy_one, cc);
    return (int)cc->n;
}

static int by_id(const void *a, const void *b)
{
    const struct sip_call_info *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

int sip_calls(struct sip *s, struct sip_call_info **out)
{
    struct copy_ctx cc = {s, NULL, 0};
    int n = sip_execute(s, snapshot_on_sip_thread, &cc);
    if (n < 0) {
        free(cc.arr);
        return -1;
    }
    qsort(cc.arr, (size_t)n, sizeof *cc.arr, by_id);
    *out = cc.arr;
    return n;
}

/* ---- an administrator's hang-up ---- */

static int on_bye_answer(nta_outgoing_magic_t *magic, nta_outgoing_t *orq, sip_t const *sip)
{
    (void)magic;
    int status = sip && sip->sip_status ? sip->sip_status->st_status : 408;
    if (status >= 200) {
        if (status >= 300)
            log_info("call: BYE of an ended call answered %d", status);
        nta_outgoing_destroy(orq);
    }
    return 0;
}

/* Sends a BYE of the dialog call_id to one side: target (its Contact), reached via hop
 * (or the target) and route (or none), from/to as that side expects them, with cseq. */
static void send_bye(struct sip *s, const char *call_id, const char *target, const char *hop,
                     const char *route, const char *from, const char *to, uint32_t cseq)
{
    if (!target || !from || !to) {
        log_warn("call %s: cannot send BYE: the dialog is not fully known", call_id);
        return;
    }
    msg_t *m = nta_msg_create(s->agent, 0);
    sip_t *sip = m ? sip_object(m) : NULL;
    su_home_t *home = m ? msg_home(m) : NULL;
    sip_request_t *rq =
        sip ? sip_request_create(home, SIP_METHOD_BYE, URL_STRING_MAKE(target), NULL) : NULL;
    sip_cseq_t *cs = sip ? sip_cseq_create(home, cseq, SIP_METHOD_BYE) : NULL;
    nta_outgoing_t *orq = NULL;
    if (rq && cs &&
        sip_add_tl(m, sip, SIPTAG_REQUEST(rq), SIPTAG_FROM_STR(from), SIPTAG_TO_STR(to),
                   SIPTAG_CALL_ID_STR(call_id), SIPTAG_CSEQ(cs),
                   TAG_IF(route, SIPTAG_ROUTE_STR(route)), SIPTAG_MAX_FORWARDS_STR("70"),
                   SIPTAG_REASON_STR("SIP;cause=200;text=\"Ended by the administrator\""),
                   TAG_END()) == 0)
        orq =
            nta_outgoing_mcreate(s->agent, on_bye_answer, NULL,
                                 route ? NULL : URL_STRING_MAKE(hop ? hop : target), m, TAG_END());
    if (!orq) {
        log_warn("call %s: cannot send BYE to %s", call_id, target);
        if (m)
            msg_destroy(m);
    }
}

struct hangup_arg {
    struct sip *s;
    uint64_t id;
};

static int find_by_id(const char *key, void *val, void *arg)
{
    (void)key;
    struct {
        uint64_t id;
        struct call *found;
    } *f = arg;
    if (((struct call *)val)->info.id == f->id)
        f->found = val;
    return STRMAP_KEEP;
}

static int hangup_on_sip_thread(void *arg)
{
    struct hangup_arg *h = arg;
    struct sip *s = h->s;
    struct {
        uint64_t id;
        struct call *found;
    } f = {h->id, NULL};
    strmap_foreach(s->calls, find_by_id, &f);
    struct call *c = f.found;
    if (!c)
        return ENOENT;
    sip_keep_trace(s, c->info.call_id);
    if (c->invite) {
        proxy_end_by_admin(c->invite);
        return 0;
    }
    if (!c->info.answered_us)
        return ENOENT;
    struct call_legs *l = &c->legs;
    log_info("call %s between %s and %s ended by an administrator", c->info.call_id, c->info.caller,
             c->info.callee);
    /* To the caller as if from the callee, and to the callee as if from the caller. */
    send_bye(s, c->info.call_id, l->a_target, l->a_hop, l->a_route, l->b_to, l->a_from,
             l->b_cseq ? l->b_cseq + 1 : 1);
    send_bye(s, c->info.call_id, l->b_target, l->b_hop, l->b_route, l->a_from, l->b_to,
             l->a_cseq + 1);
    end_call(s, c, hangup_names[3]);
    return 0;
}

int sip_hangup(struct sip *s, uint64_t id)
{
    struct hangup_arg h = {s, id};
    return sip_execute(s, hangup_on_sip_thread, &h);
}
