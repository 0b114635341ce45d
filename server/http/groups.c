/* /api/v1/groups: ring groups, extensions that ring a list of users all at once or one
 * after another, then go to a no-answer target. Groups and users share one namespace of
 * extensions (409 on a clash); a change is in effect on the SIP side when the answer is
 * sent, as for users. */
#include "http/http_int.h"
#include "users/users.h"
#include "util/util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define TIMEOUT_MIN     1
#define TIMEOUT_MAX     300
#define TIMEOUT_DEFAULT 15

static cJSON *group_json(const struct store_group *g)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "extension", g->extension);
    cJSON_AddStringToObject(o, "name", g->name);
    cJSON_AddStringToObject(o, "strategy",
                            store_group_strategies[g->strategy == STORE_GROUP_SEQUENTIAL]);
    cJSON *m = cJSON_AddArrayToObject(o, "members");
    for (int i = 0; m && i < g->nmembers; i++)
        cJSON_AddItemToArray(m, cJSON_CreateString(g->members[i]));
    cJSON_AddNumberToObject(o, "member_timeout", g->member_timeout);
    if (g->no_answer_target[0])
        cJSON_AddStringToObject(o, "no_answer_target", g->no_answer_target);
    else
        cJSON_AddNullToObject(o, "no_answer_target");
    http_add_time(o, "created_at", g->created_at);
    http_add_time(o, "updated_at", g->updated_at);
    return o;
}

/* The {ext} of the path, or NULL after a 404 (an invalid one cannot exist). */
static const char *path_ext(struct http_req *r)
{
    if (!util_valid_extension(r->param)) {
        http_error(r, 404, "not_found", "no ring group %s", r->param);
        return NULL;
    }
    return r->param;
}

/* Reads the members array of body into g: 0..STORE_GROUP_MEMBERS_MAX existing users, each
 * once, not the group itself. Returns 0, or -1 after a 422 (or 500) reply. */
static int read_members(struct http_req *r, const cJSON *body, struct store_group *g)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(body, "members");
    g->nmembers = 0;
    if (!a || cJSON_IsNull(a))
        return 0;
    if (!cJSON_IsArray(a)) {
        http_error(r, 422, "invalid_field", "members: must be an array of extensions");
        return -1;
    }
    if (cJSON_GetArraySize(a) > STORE_GROUP_MEMBERS_MAX) {
        http_error(r, 422, "invalid_field", "members: at most %d", STORE_GROUP_MEMBERS_MAX);
        return -1;
    }
    const cJSON *m;
    cJSON_ArrayForEach(m, a)
    {
        if (!cJSON_IsString(m) || !util_valid_extension(m->valuestring)) {
            http_error(r, 422, "invalid_field", "members[%d]: must be the extension of a user",
                       g->nmembers);
            return -1;
        }
        const char *ext = m->valuestring;
        for (int i = 0; i < g->nmembers; i++)
            if (strcmp(g->members[i], ext) == 0) {
                http_error(r, 422, "invalid_field", "members: %s given twice", ext);
                return -1;
            }
        struct store_user u;
        int rc = store_user_get(r->st, ext, &u);
        if (rc == ENOENT) {
            http_error(r, 422, "invalid_field", "members: no user %s%s", ext,
                       strcmp(ext, g->extension) == 0 ? " (a group cannot ring itself)" : "");
            return -1;
        }
        if (rc != 0) {
            http_store_error(r);
            return -1;
        }
        snprintf(g->members[g->nmembers++], STORE_EXT_MAX, "%s", ext);
    }
    return 0;
}

/* Reads the settable fields of body into g, which holds the defaults: a PUT replaces the
 * whole group as a POST makes it. Returns 0, or -1 after an error reply. */
static int read_group(struct http_req *r, const cJSON *body, struct store_group *g)
{
    const char *name = NULL, *strategy = NULL, *target = NULL;
    if (http_field_string(r, body, "name", 0, HTTP_BODY_MAX, 1, &name) < 0 ||
        http_field_string(r, body, "strategy", 0, 16, 0, &strategy) < 0)
        return -1;
    char why[96];
    if (name && users_display_name_problem(name, why, sizeof why) != 0) {
        http_error(r, 422, "invalid_field", "name: %s", why);
        return -1;
    }
    if (name)
        snprintf(g->name, sizeof g->name, "%s", name);
    if (strategy && strcmp(strategy, "ringall") == 0) {
        g->strategy = STORE_GROUP_RINGALL;
    } else if (strategy && strcmp(strategy, "sequential") == 0) {
        g->strategy = STORE_GROUP_SEQUENTIAL;
    } else if (strategy) {
        http_error(r, 422, "invalid_field", "strategy: must be ringall or sequential");
        return -1;
    }
    int timeout;
    int has = http_field_int(r, body, "member_timeout", TIMEOUT_MIN, TIMEOUT_MAX, 1, &timeout);
    if (has < 0)
        return -1;
    if (has)
        g->member_timeout = timeout ? timeout : TIMEOUT_DEFAULT;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(body, "no_answer_target");
    g->no_answer_target[0] = '\0';
    if (t && !cJSON_IsNull(t)) {
        if (http_field_string(r, body, "no_answer_target", 0, sizeof g->no_answer_target - 1, 1,
                              &target) < 0)
            return -1;
        snprintf(g->no_answer_target, sizeof g->no_answer_target, "%s", target);
    }
    if (http_check_target(r, g->extension, "no_answer_target", g->no_answer_target,
                          g->no_answer_target[0] != '\0') != 0)
        return -1;
    return read_members(r, body, g);
}

static const char *const fields[] = {
    "extension", "name", "strategy", "members", "member_timeout", "no_answer_target", NULL};

/* ---- GET /groups ---- */

static int list_one(const struct store_group *g, void *ctx)
{
    cJSON_AddItemToArray(ctx, group_json(g));
    return 0;
}

void api_groups_list(struct http_req *r)
{
    cJSON *items = cJSON_CreateArray();
    if (store_group_list(r->st, list_one, items) != 0) {
        cJSON_Delete(items);
        http_store_error(r);
        return;
    }
    http_json(r, 200, http_page(items, NULL));
}

/* ---- POST /groups ---- */

void api_groups_create(struct http_req *r)
{
    cJSON *body = http_body_object(r, fields);
    if (!body)
        return;
    const char *ext = NULL;
    struct store_group g;
    memset(&g, 0, sizeof g);
    g.member_timeout = TIMEOUT_DEFAULT;
    if (http_field_string(r, body, "extension", 1, 64, 0, &ext) < 0)
        goto out;
    if (!util_valid_extension(ext)) {
        http_error(r, 422, "invalid_field",
                   "extension: 1-32 letters, digits or -_.!~*'+, not starting with '-'");
        goto out;
    }
    snprintf(g.extension, sizeof g.extension, "%s", ext);
    if (read_group(r, body, &g) != 0)
        goto out;
    g.created_at = util_now();
    int rc = store_group_add(r->st, &g);
    if (rc == EEXIST) {
        struct store_user u;
        if (store_user_get(r->st, g.extension, &u) == 0)
            http_error(r, 409, "conflict", "extension: %s is a user", g.extension);
        else
            http_error(r, 409, "conflict", "extension: ring group %s already exists", g.extension);
        goto out;
    }
    if (rc == ENOENT) { /* a member deleted since it was checked */
        http_error(r, 422, "invalid_field", "members: a member is no longer a user");
        goto out;
    }
    if (rc != 0 || store_group_get(r->st, g.extension, &g) != 0) {
        http_store_error(r);
        goto out;
    }
    http_users_changed(r->h);
    log_info("http: ring group %s created", g.extension);
    http_created(r, group_json(&g), "/api/v1/groups/%s", g.extension);
out:
    cJSON_Delete(body);
}

/* ---- GET /groups/{ext} ---- */

void api_groups_get(struct http_req *r)
{
    const char *ext = path_ext(r);
    if (!ext)
        return;
    struct store_group g;
    int rc = store_group_get(r->st, ext, &g);
    if (rc == ENOENT)
        http_error(r, 404, "not_found", "no ring group %s", ext);
    else if (rc != 0)
        http_store_error(r);
    else
        http_json(r, 200, group_json(&g));
}

/* ---- PUT /groups/{ext} ---- */

void api_groups_put(struct http_req *r)
{
    const char *ext = path_ext(r);
    if (!ext)
        return;
    cJSON *body = http_body_object(r, fields);
    if (!body)
        return;
    struct store_group g;
    const char *same = NULL;
    int rc = store_group_get(r->st, ext, &g);
    if (rc == ENOENT) {
        http_error(r, 404, "not_found", "no ring group %s", ext);
        goto out;
    }
    if (rc != 0) {
        http_store_error(r);
        goto out;
    }
    if (http_field_string(r, body, "extension", 0, 64, 0, &same) < 0)
        goto out;
    if (same && strcmp(same, ext) != 0) {
        http_error(r, 422, "invalid_field",
                   "extension: cannot be changed (delete the group and create it anew)");
        goto out;
    }
    struct store_group fresh;
    memset(&fresh, 0, sizeof fresh);
    memcpy(fresh.extension, g.extension, sizeof fresh.extension);
    fresh.member_timeout = TIMEOUT_DEFAULT;
    if (read_group(r, body, &fresh) != 0)
        goto out;
    g = fresh;
    rc = store_group_update(r->st, &g);
    if (rc == ENOENT) {
        http_error(r, 409, "conflict", "ring group %s or one of its members is gone", ext);
        goto out;
    }
    if (rc != 0 || store_group_get(r->st, ext, &g) != 0) {
        http_store_error(r);
        goto out;
    }
    http_users_changed(r->h);
    log_info("http: ring group %s changed", ext);
    http_json(r, 200, group_json(&g));
out:
    cJSON_Delete(body);
}

/* ---- DELETE /groups/{ext} ---- */

void api_groups_delete(struct http_req *r)
{
    const char *ext = path_ext(r);
    if (!ext)
        return;
    int rc = store_group_delete(r->st, ext);
    if (rc == ENOENT) {
        http_error(r, 404, "not_found", "no ring group %s", ext);
        return;
    }
    if (rc != 0) {
        http_store_error(r);
        return;
    }
    http_users_changed(r->h);
    log_info("http: ring group %s deleted", ext);
    http_empty(r, 204);
}
