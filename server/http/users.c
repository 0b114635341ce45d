/* /api/v1/users: SIP accounts. Passwords are write-only and stored as the digest HA1 for
 * the SIP domain; a change is in effect on the SIP side when the answer is sent. */
#include "http/http_int.h"
#include "render/render.h"
#include "sip/digest.h"
#include "sip/sip.h"
#include "util/util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define PASSWORD_MIN     4 /* as `sipbx user add` */
#define PASSWORD_MAX     128
#define RING_TIMEOUT_MAX 3600
#define USERS_SYNC_MS    2000 /* how long a user change waits for the SIP side */

#define EXT_RULE "1-32 letters, digits or -_.!~*'+, not starting with '-'"

/* Hands a change of the users table to the SIP side and waits until it is in effect, so a
 * user created over REST can register as soon as the answer arrives. The writer's tick
 * sends the SIP thread the new table as a message; the barrier returns once the SIP thread
 * has handled the messages sent before it, that one included. A side that does not confirm
 * in time gets the change when it runs again: it is stored, so the request succeeds. */
void http_users_changed(struct http *h)
{
    if (store_writer_poke_wait(h->writer, USERS_SYNC_MS) != 0)
        log_warn("http: the writer did not pass a user change on within %d ms", USERS_SYNC_MS);
    else if (sip_barrier(h->sip) != 0)
        log_warn("http: the SIP side did not confirm a user change within %d ms",
                 SIP_EXECUTE_TIMEOUT_MS);
}

/* The {ext} of the path, or NULL after a 404 (an invalid one cannot exist). */
static const char *path_ext(struct http_req *r)
{
    if (!util_valid_extension(r->param)) {
        http_error(r, 404, "not_found", "no user %s", r->param);
        return NULL;
    }
    return r->param;
}

/* The settable fields of a user, as read from a POST or PATCH body. */
struct user_input {
    const char *display_name, *password;
    int has_enabled, enabled;
    int has_call_waiting, call_waiting;
    int has_ring_timeout, ring_timeout;
};

/* Reads the optional settable fields; -1 after an error reply. */
static int read_input(struct http_req *r, const cJSON *body, struct user_input *in)
{
    memset(in, 0, sizeof *in);
    const size_t name_max = STORE_NAME_MAX - 1;
    if (http_field_string(r, body, "display_name", 0, name_max, 1, &in->display_name) < 0 ||
        http_field_string(r, body, "password", 0, PASSWORD_MAX, 0, &in->password) < 0)
        return -1;
    if ((in->has_enabled = http_field_bool(r, body, "enabled", &in->enabled)) < 0)
        return -1;
    if ((in->has_call_waiting = http_field_bool(r, body, "call_waiting", &in->call_waiting)) < 0)
        return -1;
    in->has_ring_timeout =
        http_field_int(r, body, "ring_timeout", 1, RING_TIMEOUT_MAX, 1, &in->ring_timeout);
    if (in->has_ring_timeout < 0)
        return -1;
    if (in->password && strlen(in->password) < PASSWORD_MIN) {
        http_error(r, 422, "invalid_field", "password: at least %d characters", PASSWORD_MIN);
        return -1;
    }
    return 0;
}

static void apply_input(struct store_user *u, const struct user_input *in)
{
    if (in->display_name)
        snprintf(u->display_name, sizeof u->display_name, "%s", in->display_name);
    if (in->has_enabled)
        u->enabled = in->enabled;
    if (in->has_call_waiting)
        u->call_waiting = in->call_waiting;
    if (in->has_ring_timeout)
        u->ring_timeout = in->ring_timeout;
}

/* ---- GET /users ---- */

struct list_ctx {
    cJSON *items;
    int limit, n, more;
    const char *search; /* substring of extension or display name, any case */
    int enabled;        /* -1: any */
    char last[STORE_EXT_MAX];
};

static int list_one(const struct store_user *u, void *arg)
{
    struct list_ctx *lc = arg;
    if (lc->enabled >= 0 && u->enabled != lc->enabled)
        return 0;
    if (lc->search && !strcasestr(u->extension, lc->search) &&
        !strcasestr(u->display_name, lc->search))
        return 0;
    if (lc->n == lc->limit) {
        lc->more = 1;
        return -1; /* stop: the page is full */
    }
    cJSON_AddItemToArray(lc->items, render_user(u));
    lc->n++;
    snprintf(lc->last, sizeof lc->last, "%s", u->extension);
    return 0;
}

void api_users_list(struct http_req *r)
{
    struct list_ctx lc;
    const char *cursor;
    memset(&lc, 0, sizeof lc);
    if (http_page_params(r, &lc.limit, &cursor) != 0)
        return;
    char after[STORE_EXT_MAX] = "";
    if (cursor && http_cursor_decode(after, sizeof after, cursor) != 0) {
        http_error(r, 400, "invalid_parameter", "cursor: not a cursor this server returned");
        return;
    }
    const char *en = http_query(r, "enabled");
    lc.enabled = -1;
    if (en) {
        if (strcmp(en, "true") != 0 && strcmp(en, "false") != 0) {
            http_error(r, 400, "invalid_parameter", "enabled: must be true or false");
            return;
        }
        lc.enabled = strcmp(en, "true") == 0;
    }
    lc.search = http_query(r, "search");
    if (lc.search && !*lc.search)
        lc.search = NULL;
    lc.items = cJSON_CreateArray();
    int rc = store_user_list(r->st, after, 0, list_one, &lc);
    if (rc != 0 && rc != -1) {
        cJSON_Delete(lc.items);
        http_store_error(r);
        return;
    }
    char next[2 * STORE_EXT_MAX + 1];
    if (lc.more)
        http_cursor_encode(next, sizeof next, lc.last);
    http_json(r, 200, http_page(lc.items, lc.more ? next : NULL));
}

/* ---- POST /users ---- */

void api_users_create(struct http_req *r)
{
    static const char *const fields[] = {"extension", "username",     "display_name", "password",
                                         "enabled",   "call_waiting", "ring_timeout", NULL};
    cJSON *body = http_body_object(r, fields);
    if (!body)
        return;
    const char *ext = NULL, *alias = NULL;
    struct user_input in;
    if (http_field_string(r, body, "extension", 0, 64, 0, &ext) < 0 ||
        http_field_string(r, body, "username", 0, 64, 0, &alias) < 0)
        goto out;
    if (ext && alias && strcmp(ext, alias) != 0) {
        http_error(r, 422, "invalid_field", "username: differs from extension (give one of them)");
        goto out;
    }
    if (!ext)
        ext = alias;
    if (!ext) {
        http_error(r, 422, "missing_field", "extension: required");
        goto out;
    }
    if (!util_valid_extension(ext)) {
        http_error(r, 422, "invalid_field", "extension: not a valid SIP user part (" EXT_RULE ")");
        goto out;
    }
    if (read_input(r, body, &in) != 0)
        goto out;
    if (!in.password) {
        http_error(r, 422, "missing_field", "password: required");
        goto out;
    }

    struct store_user u;
    memset(&u, 0, sizeof u);
    snprintf(u.extension, sizeof u.extension, "%s", ext);
    snprintf(u.realm, sizeof u.realm, "%s", r->h->domain);
    digest_ha1(u.ha1, ext, r->h->domain, in.password);
    u.enabled = 1;
    u.call_waiting = 1;
    apply_input(&u, &in);
    u.created_at = util_now();
    int rc = store_user_add(r->st, &u);
    if (rc == EEXIST) {
        http_error(r, 409, "conflict", "extension: user %s already exists", ext);
        goto out;
    }
    if (rc != 0) {
        http_store_error(r);
        goto out;
    }
    http_users_changed(r->h);
    log_info("http: user %s created", u.extension);
    if (store_user_get(r->st, u.extension, &u) != 0) {
        http_store_error(r);
        goto out;
    }
    char location[128];
    snprintf(location, sizeof location, "/api/v1/users/%s", u.extension);
    http_header(r, "Location", location);
    http_json(r, 201, render_user(&u));
out:
    cJSON_Delete(body);
}

/* ---- GET /users/{ext} ---- */

void api_users_get(struct http_req *r)
{
    const char *ext = path_ext(r);
    if (!ext)
        return;
    struct store_user u;
    int rc = store_user_get(r->st, ext, &u);
    if (rc == ENOENT)
        http_error(r, 404, "not_found", "no user %s", ext);
    else if (rc != 0)
        http_store_error(r);
    else
        http_json(r, 200, render_user(&u));
}

/* ---- PATCH /users/{ext} ---- */

struct patch_ctx {
    const char *ext, *realm;
    const struct user_input *in;
    int was_enabled;
    struct store_user u; /* the result */
};

/* Runs inside one transaction: all of the change is written, or none of it. */
static int patch_tx(struct store *st, void *arg)
{
    struct patch_ctx *pc = arg;
    int rc = store_user_get(st, pc->ext, &pc->u);
    if (rc != 0)
        return rc;
    pc->was_enabled = pc->u.enabled;
    apply_input(&pc->u, pc->in);
    if ((rc = store_user_update(st, &pc->u)) != 0)
        return rc;
    if (pc->in->password) {
        char ha1[STORE_HA1_LEN];
        digest_ha1(ha1, pc->ext, pc->realm, pc->in->password);
        if ((rc = store_user_set_ha1(st, pc->ext, pc->realm, ha1)) != 0)
            return rc;
    }
    return store_user_get(st, pc->ext, &pc->u);
}

void api_users_patch(struct http_req *r)
{
    static const char *const fields[] = {"extension", "username",     "display_name", "password",
                                         "enabled",   "call_waiting", "ring_timeout", NULL};
    const char *ext = path_ext(r);
    if (!ext)
        return;
    cJSON *body = http_body_object(r, fields);
    if (!body)
        return;
    struct user_input in;
    const char *same = NULL;
    for (int i = 0; i < 2; i++) {
        const char *name = i ? "username" : "extension";
        if (http_field_string(r, body, name, 0, 64, 0, &same) < 0)
            goto out;
        if (same && strcmp(same, ext) != 0) {
            http_error(r, 422, "invalid_field",
                       "%s: cannot be changed (delete the user and create it again)", name);
            goto out;
        }
    }
    if (read_input(r, body, &in) != 0)
        goto out;
    struct patch_ctx pc;
    memset(&pc, 0, sizeof pc);
    pc.ext = ext;
    pc.realm = r->h->domain;
    pc.in = &in;
    int rc = store_tx(r->st, patch_tx, &pc);
    if (rc == ENOENT) {
        http_error(r, 404, "not_found", "no user %s", ext);
        goto out;
    }
    if (rc != 0) {
        http_store_error(r);
        goto out;
    }
    http_users_changed(r->h);
    /* A disabled account keeps no registrations: calls must not reach it. */
    if (pc.was_enabled && !pc.u.enabled && sip_kick(r->h->sip, ext) < 0)
        log_warn("http: cannot remove the registrations of %s now: the SIP side did not answer",
                 ext);
    log_info("http: user %s changed", ext);
    http_json(r, 200, render_user(&pc.u));
out:
    cJSON_Delete(body);
}

/* ---- DELETE /users/{ext} ---- */

void api_users_delete(struct http_req *r)
{
    const char *ext = path_ext(r);
    if (!ext)
        return;
    int rc = store_user_delete(r->st, ext); /* registrations go by cascade */
    if (rc == ENOENT) {
        http_error(r, 404, "not_found", "no user %s", ext);
        return;
    }
    if (rc != 0) {
        http_store_error(r);
        return;
    }
    http_users_changed(r->h);
    if (sip_kick(r->h->sip, ext) < 0)
        log_warn("http: cannot remove the registrations of %s now: the SIP side did not answer",
                 ext);
    log_info("http: user %s deleted", ext);
    http_empty(r, 204);
}
