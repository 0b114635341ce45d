/* /api/v1/webhooks: the URLs events are POSTed to (server/hooks), their secrets (shown
 * once, at creation), a test event, and each webhook's delivery log. */
#include "hooks/hooks.h"
#include "http/http_int.h"
#include "util/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVENT_LIST "call.new, call.answered, call.ended, registration.changed or user.changed"

static cJSON *delivery_json(const struct store_delivery *d)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)d->id);
    cJSON_AddStringToObject(o, "event", d->event);
    cJSON_AddStringToObject(o, "event_id", d->event_id);
    cJSON_AddStringToObject(o, "state", store_delivery_states[d->state]);
    cJSON_AddNumberToObject(o, "attempts", d->attempts);
    http_add_time_us(o, "created_at", d->created_us);
    http_add_time_us(o, "last_try_at", d->last_try_us);
    http_add_time_us(o, "next_try_at", d->next_try_us);
    http_add_time_us(o, "done_at", d->done_us);
    if (d->last_status)
        cJSON_AddNumberToObject(o, "last_status", d->last_status);
    else
        cJSON_AddNullToObject(o, "last_status");
    cJSON_AddStringToObject(o, "last_error", d->last_error);
    return o;
}

static int first_delivery(const struct store_delivery *d, void *ctx)
{
    *(cJSON **)ctx = delivery_json(d);
    return 1; /* one is enough */
}

/* The webhook as the API shows it (never with its secret): with the counts of its
 * deliveries by state and the latest one. NULL when the database failed. */
static cJSON *webhook_json(struct store *st, const struct store_webhook *w)
{
    int64_t counts[STORE_DELIVERY_STATES];
    cJSON *last = NULL;
    if (store_delivery_counts(st, w->id, counts) != 0)
        return NULL;
    int rc = store_delivery_list(st, w->id, 0, 1, first_delivery, &last);
    if (rc != 0 && rc != 1)
        return NULL;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)w->id);
    cJSON_AddStringToObject(o, "url", w->url);
    cJSON *events = cJSON_AddArrayToObject(o, "events");
    char list[STORE_WEBHOOK_EVENTS_MAX];
    snprintf(list, sizeof list, "%s", w->events);
    char *save = NULL;
    for (char *name = strtok_r(list, ",", &save); name; name = strtok_r(NULL, ",", &save))
        cJSON_AddItemToArray(events, cJSON_CreateString(name));
    cJSON_AddStringToObject(o, "description", w->description);
    http_add_time(o, "created_at", w->created_at);
    cJSON *d = cJSON_AddObjectToObject(o, "deliveries");
    for (int i = 0; i < STORE_DELIVERY_STATES; i++)
        cJSON_AddNumberToObject(d, store_delivery_states[i], (double)counts[i]);
    cJSON_AddItemToObject(o, "last_delivery", last ? last : cJSON_CreateNull());
    return o;
}

/* The webhook of the path into w, or -1 after a 404 (or 500). */
static int path_webhook(struct http_req *r, struct store_webhook *w)
{
    int64_t id = http_parse_id(r->param);
    int rc = id > 0 ? store_webhook_get(r->st, id, w) : ENOENT;
    if (rc == ENOENT)
        http_error(r, 404, "not_found", "no webhook %s", r->param);
    else if (rc != 0)
        http_store_error(r);
    return rc ? -1 : 0;
}

/* ---- GET /webhooks, GET /webhooks/{id} ---- */

struct list_ctx {
    struct store *st;
    cJSON *items;
    int failed;
};

static int list_one(const struct store_webhook *w, void *arg)
{
    struct list_ctx *lc = arg;
    cJSON *o = webhook_json(lc->st, w);
    if (!o) {
        lc->failed = 1;
        return -1;
    }
    cJSON_AddItemToArray(lc->items, o);
    return 0;
}

void api_webhooks_list(struct http_req *r)
{
    struct list_ctx lc = {r->st, cJSON_CreateArray(), 0};
    if (store_webhook_list(r->st, list_one, &lc) != 0 || lc.failed) {
        cJSON_Delete(lc.items);
        http_store_error(r);
        return;
    }
    http_json(r, 200, http_page(lc.items, NULL)); /* at most HOOKS_MAX: one page */
}

void api_webhooks_get(struct http_req *r)
{
    struct store_webhook w;
    if (path_webhook(r, &w) != 0)
        return;
    cJSON *o = webhook_json(r->st, &w);
    if (!o) {
        http_store_error(r);
        return;
    }
    http_json(r, 200, o);
}

/* ---- POST /webhooks ---- */

/* Reads "events" into w->events (the known names, in their canonical order, each once);
 * -1 after a 422. */
static int read_events(struct http_req *r, const cJSON *body, struct store_webhook *w)
{
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(body, "events");
    if (!ev) {
        http_error(r, 422, "missing_field", "events: required");
        return -1;
    }
    if (!cJSON_IsArray(ev) || !ev->child) {
        http_error(r, 422, "invalid_field", "events: must be a non-empty array of " EVENT_LIST);
        return -1;
    }
    unsigned mask = 0;
    for (const cJSON *e = ev->child; e; e = e->next) {
        int i = cJSON_IsString(e) ? hooks_event_index(e->valuestring) : -1;
        if (i < 0) {
            char *shown = cJSON_PrintUnformatted(e);
            http_error(r, 422, "invalid_field", "events: %.64s is not one of " EVENT_LIST,
                       shown ? shown : "an element");
            free(shown);
            return -1;
        }
        if (mask & (1u << i)) {
            http_error(r, 422, "invalid_field", "events: %s is listed twice", e->valuestring);
            return -1;
        }
        mask |= 1u << i;
    }
    size_t n = 0;
    w->events[0] = '\0';
    for (int i = 0; i < HOOKS_EVENTS; i++)
        if (mask & (1u << i))
            n += (size_t)snprintf(w->events + n, sizeof w->events - n, "%s%s", n ? "," : "",
                                  hooks_event_names[i]);
    return 0;
}

struct create_ctx {
    struct store_webhook *w;
    int full;
};

static int create_tx(struct store *st, void *arg)
{
    struct create_ctx *cc = arg;
    int n = store_webhook_count(st);
    if (n < 0)
        return EIO;
    if (n >= HOOKS_MAX) {
        cc->full = 1;
        return EEXIST;
    }
    return store_webhook_add(st, cc->w);
}

void api_webhooks_create(struct http_req *r)
{
    static const char *const fields[] = {"url", "events", "description", NULL};
    if (!r->h->hooks) {
        http_error(r, 503, "unavailable", "webhooks are not running");
        return;
    }
    cJSON *body = http_body_object(r, fields);
    if (!body)
        return;
    struct store_webhook w;
    memset(&w, 0, sizeof w);
    const char *url = NULL, *desc = NULL;
    char why[160];
    if (http_field_string(r, body, "url", 1, STORE_WEBHOOK_URL_MAX, 0, &url) < 0 ||
        http_field_string(r, body, "description", 0, STORE_WEBHOOK_DESC_MAX - 1, 1, &desc) < 0)
        goto done;
    if (hooks_url_check(url, why, sizeof why) != 0) {
        http_error(r, 422, "invalid_field", "url: %s", why);
        goto done;
    }
    if (read_events(r, body, &w) != 0)
        goto done;
    snprintf(w.url, sizeof w.url, "%s", url);
    snprintf(w.description, sizeof w.description, "%s", desc ? desc : "");
    w.created_at = util_now();
    if (hooks_secret_new(w.secret) != 0) {
        http_error(r, 500, "internal", "no random secret could be made");
        goto done;
    }
    struct create_ctx cc = {&w, 0};
    int rc = store_tx(r->st, create_tx, &cc);
    if (cc.full) {
        http_error(r, 409, "conflict",
                   "there are %d webhooks already, as many as there may be: "
                   "delete one first",
                   HOOKS_MAX);
        goto done;
    }
    if (rc != 0) {
        log_error("http: cannot add a webhook: %s", store_errmsg(r->st));
        http_store_error(r);
        goto done;
    }
    hooks_changed(r->h->hooks, r->st);
    log_info("http: webhook %lld added: %s (%s)", (long long)w.id, w.url, w.events);
    cJSON *o = webhook_json(r->st, &w);
    if (!o) {
        http_store_error(r);
        goto done;
    }
    cJSON_AddStringToObject(o, "secret", w.secret);
    http_created(r, o, "/api/v1/webhooks/%lld", (long long)w.id);
done:
    cJSON_Delete(body);
}

/* ---- DELETE /webhooks/{id} ---- */

void api_webhooks_delete(struct http_req *r)
{
    int64_t id = http_parse_id(r->param);
    int rc = id > 0 ? store_webhook_delete(r->st, id) : ENOENT;
    if (rc == ENOENT) {
        http_error(r, 404, "not_found", "no webhook %s", r->param);
        return;
    }
    if (rc != 0) {
        http_store_error(r);
        return;
    }
    if (r->h->hooks)
        hooks_changed(r->h->hooks, r->st);
    log_info("http: webhook %lld deleted, with its deliveries", (long long)id);
    http_empty(r, 204);
}

/* ---- GET /webhooks/{id}/deliveries ---- */

static int log_one(const struct store_delivery *d, void *arg)
{
    struct http_id_page *p = arg;
    if (http_id_page_full(p))
        return -1; /* the page is full and one more exists */
    http_id_page_add(p, delivery_json(d), d->id);
    return 0;
}

void api_webhooks_deliveries(struct http_req *r)
{
    struct store_webhook w;
    struct http_id_page page;
    int64_t before; /* deliveries go newest first: the cursor is where the page ends */
    if (http_id_page_start(r, &page, &before) != 0)
        return;
    if (path_webhook(r, &w) != 0) {
        cJSON_Delete(page.items);
        return;
    }
    http_id_page_reply(r, &page,
                       store_delivery_list(r->st, w.id, before, page.limit + 1, log_one, &page));
}

/* ---- POST /webhooks/{id}/ping ---- */

static int find_delivery(const struct store_delivery *d, void *ctx)
{
    *(cJSON **)ctx = delivery_json(d);
    return 1;
}

void api_webhooks_ping(struct http_req *r)
{
    if (!r->h->hooks) {
        http_error(r, 503, "unavailable", "webhooks are not running");
        return;
    }
    int64_t id = http_parse_id(r->param), delivery = 0;
    int rc = id > 0 ? hooks_ping(r->h->hooks, r->st, id, &delivery) : ENOENT;
    if (rc == ENOENT) {
        http_error(r, 404, "not_found", "no webhook %s", r->param);
        return;
    }
    cJSON *o = NULL;
    if (rc == 0)
        rc = store_delivery_list(r->st, id, delivery + 1, 1, find_delivery, &o);
    if ((rc != 0 && rc != 1) || !o) {
        cJSON_Delete(o);
        http_store_error(r);
        return;
    }
    http_json(r, 202, o);
}
