/* /api/v1/tokens: API tokens for scripts. The secret is shown once, in the answer to the
 * POST that creates it; the database keeps only its SHA-256. */
#include "http/http_int.h"
#include "util/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cJSON *token_json(const struct store_token *t)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)t->id);
    cJSON_AddStringToObject(o, "name", t->name);
    http_add_time(o, "created_at", t->created_at);
    http_add_time(o, "last_used_at", t->last_used_at);
    return o;
}

struct list_ctx {
    struct http_id_page page;
    const char *name; /* only tokens of this name, or NULL */
};

static int list_one(const struct store_token *t, void *arg)
{
    struct list_ctx *lc = arg;
    if (lc->name && strcmp(t->name, lc->name) != 0)
        return 0;
    if (http_id_page_full(&lc->page))
        return -1;
    http_id_page_add(&lc->page, token_json(t), t->id);
    return 0;
}

void api_tokens_list(struct http_req *r)
{
    struct list_ctx lc;
    int64_t after;
    if (http_id_page_start(r, &lc.page, &after) != 0)
        return;
    lc.name = http_query(r, "name");
    if (lc.name && !*lc.name)
        lc.name = NULL;
    http_id_page_reply(r, &lc.page, store_token_list(r->st, after, 0, list_one, &lc));
}

void api_tokens_create(struct http_req *r)
{
    static const char *const fields[] = {"name", NULL};
    cJSON *body = http_body_object(r, fields);
    if (!body)
        return;
    const char *name;
    if (http_field_string(r, body, "name", 1, STORE_TOKEN_NAME_MAX - 1, 0, &name) < 0) {
        cJSON_Delete(body);
        return;
    }
    char secret[STORE_TOKEN_LEN];
    struct store_token t;
    int rc = store_token_create(r->st, name, util_now(), secret, &t);
    cJSON_Delete(body);
    if (rc != 0) {
        http_store_error(r);
        return;
    }
    log_info("http: API token %lld (%s) created", (long long)t.id, t.name);
    cJSON *o = token_json(&t);
    cJSON_AddStringToObject(o, "token", secret);
    http_created(r, o, "/api/v1/tokens/%lld", (long long)t.id);
}

void api_tokens_delete(struct http_req *r)
{
    int64_t id = http_parse_id(r->param);
    int rc = id > 0 ? store_token_delete(r->st, id) : ENOENT;
    if (rc == ENOENT) {
        http_error(r, 404, "not_found", "no token %s", r->param);
        return;
    }
    if (rc != 0) {
        http_store_error(r);
        return;
    }
    log_info("http: API token %lld revoked", (long long)id);
    http_empty(r, 204);
}
