/* The live call table: one entry per routed INVITE from first INVITE to BYE (or failure),
 * with the timestamps and parties a CDR needs, and an event to subscribers at each change. */
#include "events/events.h"
#include "sip/sip_int.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>

static const char *const hangup_names[] = {"caller", "callee", "sipbx"};

/* RFC 4028 section 10: without a refresh the phone that is not the refresher sends BYE
 * min(32 s, interval / 3) before the session expires. A call still here that long after
 * the expiry has lost both phones (or their BYE). */
static int64_t session_grace(unsigned long interval)
{
    return interval / 3 < 32 ? (int64_t)(interval / 3) : 32;
}

cJSON *sip_call_json(const struct sip_call_info *c)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddNumberToObject(o, "id", (double)c->id);
    cJSON_AddStringToObject(o, "call_id", c->call_id);
    cJSON_AddStringToObject(o, "state", c->state);
    cJSON_AddStringToObject(o, "caller", c->caller);
    cJSON_AddStringToObject(o, "caller_name", c->caller_name);
    cJSON_AddStringToObject(o, "callee", c->callee);
    cJSON_AddStringToObject(o, "caller_contact", c->caller_contact);
    cJSON_AddStringToObject(o, "callee_contact", c->callee_contact);
    cJSON_AddStringToObject(o, "user_agent", c->user_agent);
    cJSON_AddNumberToObject(o, "started_us", (double)c->started_us);
    cJSON_AddNumberToObject(o, "ringing_us", (double)c->ringing_us);
    cJSON_AddNumberToObject(o, "answered_us", (double)c->answered_us);
    cJSON_AddNumberToObject(o, "ended_us", (double)c->ended_us);
    cJSON_AddNumberToObject(o, "final_status", c->final_status);
    cJSON_AddStringToObject(o, "hangup_by", c->hangup_by);
    cJSON *fw = cJSON_AddArrayToObject(o, "forwards");
    for (int i = 0; fw && i < c->nforwards; i++) {
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "from", c->forwards[i].from);
        cJSON_AddStringToObject(f, "to", c->forwards[i].to);
        cJSON_AddStringToObject(f, "reason", c->forwards[i].reason);
        cJSON_AddItemToArray(fw, f);
    }
    return o;
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
    if (s->events)
        sip_publish(s, type, sip_call_json(&c->info));
}

/* Asterisk-style disposition of a call from its final status and who ended it. */
static const char *disposition(const struct call *c)
{
    int st = c->info.final_status;
    if (c->info.answered_us)
        return "ANSWERED";
    if (st == 486 || st == 600 || st == 603)
        return "BUSY";
    if (st == 487 && strcmp(c->info.hangup_by, "caller") == 0)
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
    cJSON *fw = cJSON_CreateArray();
    for (int k = 0; fw && k < i->nforwards; k++) {
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "from", i->forwards[k].from);
        cJSON_AddStringToObject(f, "to", i->forwards[k].to);
        cJSON_AddStringToObject(f, "reason", i->forwards[k].reason);
        cJSON_AddItemToArray(fw, f);
    }
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
    if (store_writer_cdr(s->writer, &r) != 0)
        log_error("cdr: out of memory, record of call %s lost", i->call_id);
}

static void set_state(struct call *c, const char *state)
{
    snprintf(c->info.state, sizeof c->info.state, "%s", state);
}

struct call *calls_start(struct sip *s, sip_t const *sip, const struct sip_user *caller,
                         const char *callee, const char *source)
{
    struct call *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->info.id = ++s->next_call_id;
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
    c->info.started_us = util_now_us();
    c->max_end = util_mono() + s->cfg->max_call_seconds;
    void *old = NULL;
    if (strmap_put(s->calls, c->info.call_id, c, &old) != 0) {
        free(c);
        return NULL;
    }
    free(old); /* an INVITE reusing a Call-ID of an old entry replaces it */
    publish_call(s, "call.new", c);
    return c;
}

void calls_ringing(struct sip *s, struct call *c, const char *contact)
{
    if (c->info.ringing_us)
        return;
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

void calls_answered(struct sip *s, struct call *c, const char *contact, const char *answered_by,
                    sip_t const *resp)
{
    if (c->info.answered_us)
        return; /* a second 2xx (another fork, or a retransmission) */
    session_refreshed(c, resp);
    c->info.answered_us = util_now_us();
    c->info.final_status = 200;
    c->invite = NULL;
    set_state(c, "answered");
    snprintf(c->info.callee_contact, sizeof c->info.callee_contact, "%s", contact);
    snprintf(c->answered_by, sizeof c->answered_by, "%s", answered_by);
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
    free(c);
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
    if (m == sip_method_bye) {
        int from_caller = sip->sip_from->a_tag && strcmp(sip->sip_from->a_tag, c->from_tag) == 0;
        end_call(s, c, hangup_names[from_caller ? 0 : 1]);
    } else if (m == sip_method_invite && sip->sip_payload && sip->sip_payload->pl_len) {
        int hold = sdp_is_hold(sip->sip_payload->pl_data, sip->sip_payload->pl_len);
        int held = strcmp(c->info.state, "held") == 0;
        if (hold != held) {
            set_state(c, hold ? "held" : "answered");
            publish_call(s, "call.held", c);
        }
    }
}

struct busy_ctx {
    const char *ext;
    int n;
};

static int count_busy(const char *key, void *val, void *arg)
{
    (void)key;
    struct call *c = val;
    struct busy_ctx *bc = arg;
    /* The user whose device answered, not the one dialled: after a forward the dialled
     * user is free and the forward target is the one in the call. */
    if (c->info.answered_us &&
        (strcmp(c->info.caller, bc->ext) == 0 || strcmp(c->answered_by, bc->ext) == 0))
        bc->n++;
    return STRMAP_KEEP;
}

int calls_busy(struct sip *s, const char *ext)
{
    struct busy_ctx bc = {ext, 0};
    strmap_foreach(s->calls, count_busy, &bc);
    return bc.n;
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
    free(c);
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
    free(c);
    return STRMAP_DROP;
}

void calls_destroy_all(struct sip *s)
{
    if (!s->calls)
        return;
    strmap_foreach(s->calls, close_at_shutdown, s);
    strmap_destroy(s->calls, free);
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
    cc->arr = calloc(n ? n : 1, sizeof *cc->arr);
    if (!cc->arr)
        return -1;
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
