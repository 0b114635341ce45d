/* From event to queued deliveries: the event stream's listener picks the events some
 * webhook wants and hands them to the writer's outbox; on the writer thread, inside the
 * transaction of the rows the event tells of, each becomes a body (a call.ended carries
 * the call record as the API shows it, a user.changed the user) and one delivery per
 * webhook that wants it. */
#include "hooks/hooks_int.h"
#include "render/render.h"
#include "util/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void hooks_on_event(void *ctx, const char *type, const char *json)
{
    struct hooks *hk = ctx;
    unsigned wanted = atomic_load_explicit(&hk->wanted, memory_order_relaxed);
    if (!wanted)
        return; /* no webhook: the usual case costs this test */
    int i = hooks_event_index(type);
    if (i < 0 || !(wanted & (1u << i)))
        return;
    if (store_writer_outbox(hk->w, type, json, util_now_us()) != 0)
        atomic_fetch_add(&hk->lost, 1); /* said by the sender: no logging under the lock */
}

void hooks_committed(void *ctx)
{
    hooks_wake(ctx);
}

static int want_one(const struct store_webhook *w, void *ctx)
{
    unsigned *mask = ctx;
    char list[STORE_WEBHOOK_EVENTS_MAX];
    snprintf(list, sizeof list, "%s", w->events);
    char *save = NULL;
    for (char *name = strtok_r(list, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        int i = hooks_event_index(name);
        if (i >= 0)
            *mask |= 1u << i;
    }
    return 0;
}

int hooks_read_wanted(struct store *st)
{
    unsigned mask = 0;
    return store_webhook_list(st, want_one, &mask) == 0 ? (int)mask : -1;
}

char *hooks_event_body(const char *type, cJSON *data, int64_t at_us, char id[STORE_EVENT_ID_LEN])
{
    unsigned char u[16];
    if (!data || util_random(u, sizeof u) != 0) {
        cJSON_Delete(data);
        return NULL;
    }
    u[6] = (u[6] & 0x0f) | 0x40; /* a version 4 (random) UUID, RFC 9562 */
    u[8] = (u[8] & 0x3f) | 0x80;
    char hex[33];
    util_hex(hex, u, sizeof u);
    snprintf(id, STORE_EVENT_ID_LEN, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16,
             hex + 20);
    char when[40];
    util_format_time_us(when, sizeof when, at_us);
    cJSON *o = cJSON_CreateObject();
    if (!o) {
        cJSON_Delete(data);
        return NULL;
    }
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "type", type);
    cJSON_AddStringToObject(o, "created_at", when);
    cJSON_AddItemToObject(o, "data", data);
    char *body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return body;
}

/* The data of a call.ended: the call's record, which the SIP thread queued to the writer
 * before it published the event, so it is in the database by now (this transaction or
 * an earlier one). *data is NULL when there is none (logged). Returns 0 or EIO. */
static int call_record(struct store *st, const cJSON *call, cJSON **data)
{
    *data = NULL;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(call, "call_id");
    const cJSON *start = cJSON_GetObjectItemCaseSensitive(call, "started_us");
    if (!cJSON_IsString(id) || !cJSON_IsNumber(start))
        return 0;
    struct store_cdr c;
    int rc = store_cdr_get(st, id->valuestring, (int64_t)start->valuedouble, &c);
    if (rc == ENOENT) {
        log_warn("webhooks: no call record of call %s: its call.ended is not sent",
                 id->valuestring);
        return 0;
    }
    if (rc != 0)
        return EIO;
    *data = render_cdr(&c);
    return 0;
}

/* The data of a user.changed: the event's extension and change, and the user as it is
 * now (null when it is gone). Returns 0 or EIO. */
static int user_change(struct store *st, const cJSON *change, cJSON **data)
{
    *data = NULL;
    const cJSON *ext = cJSON_GetObjectItemCaseSensitive(change, "extension");
    const cJSON *what = cJSON_GetObjectItemCaseSensitive(change, "change");
    if (!cJSON_IsString(ext) || !cJSON_IsString(what))
        return 0;
    struct store_user u;
    int rc = store_user_get(st, ext->valuestring, &u);
    if (rc != 0 && rc != ENOENT)
        return EIO;
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return 0;
    cJSON_AddStringToObject(o, "extension", ext->valuestring);
    cJSON_AddStringToObject(o, "change", what->valuestring);
    cJSON_AddItemToObject(o, "user", rc == 0 ? render_user(&u) : cJSON_CreateNull());
    *data = o;
    return 0;
}

int hooks_intake(struct store *st, const char *type, const char *json, int64_t at_us, void *ctx)
{
    (void)ctx;
    cJSON *event = cJSON_Parse(json), *data = NULL;
    int rc = 0;
    if (!event) {
        log_error("webhooks: a %s event that is not JSON is not sent", type);
        return 0; /* failing would fail the writer's batch for good */
    }
    switch (hooks_event_index(type)) {
    case HOOKS_CALL_ENDED:
        rc = call_record(st, event, &data);
        break;
    case HOOKS_USER_CHANGED:
        rc = user_change(st, event, &data);
        break;
    default:
        data = event; /* the event as the stream has it */
        event = NULL;
        break;
    }
    cJSON_Delete(event);
    if (rc != 0 || !data) {
        cJSON_Delete(data);
        return rc;
    }
    char id[STORE_EVENT_ID_LEN];
    char *body = hooks_event_body(type, data, at_us, id);
    if (!body) {
        log_error("webhooks: out of memory: a %s event is not sent", type);
        return 0;
    }
    int n = store_delivery_fanout(st, type, id, body, at_us);
    free(body);
    return n < 0 ? EIO : 0;
}
