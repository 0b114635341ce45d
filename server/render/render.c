/* JSON renderings shared by the REST API and the webhooks (render.h). */
#include "render/render.h"
#include "sip/sip.h"
#include "store/store.h"
#include "util/util.h"

#include <inttypes.h>
#include <stdio.h>

/* Adds a 64-bit integer exactly (cJSON would print a double, e.g. 1.7e+15). */
static void add_int64(cJSON *o, const char *key, int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    cJSON_AddRawToObject(o, key, buf);
}

/* Adds key = the time t (seconds), RFC 3339 UTC, or null when t is 0. */
static void add_time(cJSON *o, const char *key, int64_t t)
{
    char buf[32];
    if (!t) {
        cJSON_AddNullToObject(o, key);
        return;
    }
    util_format_time(buf, sizeof buf, t);
    cJSON_AddStringToObject(o, key, buf);
}

/* A time in microseconds, as key (RFC 3339 with microseconds) and key_us (a number); both
 * null when 0. */
static void add_time_pair(cJSON *o, const char *key, int64_t us)
{
    char key_us[32], text[40];
    snprintf(key_us, sizeof key_us, "%s_us", key);
    if (!us) {
        cJSON_AddNullToObject(o, key);
        cJSON_AddNullToObject(o, key_us);
        return;
    }
    util_format_time_us(text, sizeof text, us);
    cJSON_AddStringToObject(o, key, text);
    add_int64(o, key_us, us);
}

cJSON *render_cdr(const struct store_cdr *c)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    add_int64(o, "id", c->id);
    cJSON_AddStringToObject(o, "call_id", c->call_id);
    cJSON_AddStringToObject(o, "caller", c->caller);
    cJSON_AddStringToObject(o, "caller_name", c->caller_name);
    cJSON_AddStringToObject(o, "dialled", c->dialled);
    cJSON_AddStringToObject(o, "answered_by", c->answered_by);
    cJSON *fw = cJSON_Parse(c->forwards);
    if (!cJSON_IsArray(fw)) {
        cJSON_Delete(fw);
        fw = cJSON_CreateArray();
    }
    cJSON_AddItemToObject(o, "forwards", fw);
    add_time_pair(o, "start", c->start_us);
    add_time_pair(o, "answer", c->answer_us);
    add_time_pair(o, "end", c->end_us);
    add_int64(o, "duration", c->duration);
    add_int64(o, "billsec", c->billsec);
    cJSON_AddStringToObject(o, "disposition", c->disposition);
    cJSON_AddNumberToObject(o, "status", c->status);
    cJSON_AddStringToObject(o, "phrase", c->phrase);
    cJSON_AddStringToObject(o, "hangup_by", c->hangup_by);
    cJSON_AddStringToObject(o, "user_agent", c->user_agent);
    cJSON_AddBoolToObject(o, "interrupted", c->interrupted);
    cJSON_AddStringToObject(o, "linked_call", c->linked_call);
    cJSON_AddStringToObject(o, "link", c->link);
    return o;
}

cJSON *render_user(const struct store_user *u)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "extension", u->extension);
    cJSON_AddStringToObject(o, "display_name", u->display_name);
    cJSON_AddBoolToObject(o, "enabled", u->enabled);
    cJSON_AddBoolToObject(o, "call_waiting", u->call_waiting);
    cJSON_AddBoolToObject(o, "dnd", u->dnd);
    if (u->ring_timeout > 0)
        cJSON_AddNumberToObject(o, "ring_timeout", u->ring_timeout);
    else
        cJSON_AddNullToObject(o, "ring_timeout");
    add_time(o, "created_at", u->created_at);
    add_time(o, "updated_at", u->updated_at);
    return o;
}

cJSON *render_forwards(const struct sip_call_info *c)
{
    cJSON *fw = cJSON_CreateArray();
    for (int i = 0; fw && i < c->nforwards; i++) {
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "from", c->forwards[i].from);
        cJSON_AddStringToObject(f, "to", c->forwards[i].to);
        cJSON_AddStringToObject(f, "reason", c->forwards[i].reason);
        cJSON_AddItemToArray(fw, f);
    }
    return fw;
}

cJSON *render_call(const struct sip_call_info *c)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    /* Microsecond times as plain numbers (exact up to 2^53 us, the year 2255), the same in
     * the list and in the events. */
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
    cJSON_AddItemToObject(o, "forwards", render_forwards(c));
    cJSON_AddStringToObject(o, "linked_call", c->linked_call);
    cJSON_AddStringToObject(o, "link", c->link);
    return o;
}
