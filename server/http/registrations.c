/* /api/v1/registrations: who is registered from where, read from the database (the writer
 * thread commits the registrar's bindings within milliseconds), and the admin's kick,
 * which goes to the SIP thread. */
#include "http/http_int.h"
#include "sip/sip.h"
#include "util/util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* A cursor is the (extension, contact) of the last binding of the page. */
#define KEY_MAX (STORE_EXT_MAX + 512)

struct list_ctx {
    cJSON *items;
    int limit, n, more;
    int64_t now;
    const char *after_ext, *after_contact; /* NULL: from the start */
    char last[KEY_MAX];
};

static int list_one(const struct store_reg *g, void *arg)
{
    struct list_ctx *lc = arg;
    if (lc->after_ext) {
        int c = strcmp(g->extension, lc->after_ext);
        if (c < 0 || (c == 0 && strcmp(g->contact, lc->after_contact) <= 0))
            return 0;
    }
    if (lc->n == lc->limit) {
        lc->more = 1;
        return -1; /* stop: the page is full */
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "extension", g->extension);
    cJSON_AddStringToObject(o, "contact", g->contact);
    cJSON_AddStringToObject(o, "source", g->source);
    cJSON_AddStringToObject(o, "transport", g->transport);
    cJSON_AddStringToObject(o, "user_agent", g->user_agent);
    cJSON_AddStringToObject(o, "call_id", g->call_id); /* its ladder: /traces/{call_id} */
    cJSON_AddNumberToObject(o, "expires_in", (double)(g->expires_at - lc->now));
    http_add_time(o, "registered_at", g->registered_at);
    http_add_time(o, "expires_at", g->expires_at);
    cJSON_AddItemToArray(lc->items, o);
    lc->n++;
    snprintf(lc->last, sizeof lc->last, "%s\n%s", g->extension, g->contact);
    return 0;
}

void api_registrations_list(struct http_req *r)
{
    struct list_ctx lc;
    const char *cursor;
    memset(&lc, 0, sizeof lc);
    if (http_page_params(r, &lc.limit, &cursor) != 0)
        return;
    char key[KEY_MAX];
    if (cursor) {
        char *nl;
        if (http_cursor_decode(key, sizeof key, cursor) != 0 || !(nl = strchr(key, '\n'))) {
            http_error(r, 400, "invalid_parameter", "cursor: not a cursor this server returned");
            return;
        }
        *nl = '\0';
        lc.after_ext = key;
        lc.after_contact = nl + 1;
    }
    const char *ext = http_query(r, "extension");
    if (ext && !*ext)
        ext = NULL;
    lc.now = util_now();
    lc.items = cJSON_CreateArray();
    int rc = store_reg_list(r->st, ext, lc.now, list_one, &lc);
    if (rc != 0 && rc != -1) {
        cJSON_Delete(lc.items);
        http_store_error(r);
        return;
    }
    char next[2 * KEY_MAX + 1];
    if (lc.more)
        http_cursor_encode(next, sizeof next, lc.last);
    http_json(r, 200, http_page(lc.items, lc.more ? next : NULL));
}

void api_registrations_delete(struct http_req *r)
{
    struct store_user u;
    int rc = util_valid_extension(r->param) ? store_user_get(r->st, r->param, &u) : ENOENT;
    if (rc == ENOENT) {
        http_error(r, 404, "not_found", "no user %s", r->param);
        return;
    }
    if (rc != 0) {
        http_store_error(r);
        return;
    }
    errno = 0;
    int n = sip_kick(r->h->sip, r->param);
    if (n < 0) {
        http_sip_error(r);
        return;
    }
    log_info("http: %d registration(s) of %s removed by an admin", n, r->param);
    http_empty(r, 204);
}
