/* /api/v1/users: SIP accounts. Passwords are write-only and stored as the digest HA1 for
 * the SIP domain; a change is in effect on the SIP side when the answer is sent. */
#include "http/http_int.h"
#include "render/render.h"
#include "users/users.h"
#include "sip/sip.h"
#include "util/util.h"
#include "voicemail/vm.h"

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
    int has_dnd, dnd;
    int has_ring_timeout, ring_timeout;
};

/* Reads the optional settable fields; -1 after an error reply. */
static int read_input(struct http_req *r, const cJSON *body, struct user_input *in)
{
    memset(in, 0, sizeof *in);
    /* The length of a display name is checked in characters below, not in bytes here. */
    if (http_field_string(r, body, "display_name", 0, HTTP_BODY_MAX, 1, &in->display_name) < 0 ||
        http_field_string(r, body, "password", 0, PASSWORD_MAX, 0, &in->password) < 0)
        return -1;
    char why[96];
    if (in->display_name && users_display_name_problem(in->display_name, why, sizeof why) != 0) {
        http_error(r, 422, "invalid_field", "display_name: %s", why);
        return -1;
    }
    if ((in->has_enabled = http_field_bool(r, body, "enabled", &in->enabled)) < 0)
        return -1;
    if ((in->has_call_waiting = http_field_bool(r, body, "call_waiting", &in->call_waiting)) < 0)
        return -1;
    if ((in->has_dnd = http_field_bool(r, body, "dnd", &in->dnd)) < 0)
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
    if (in->has_dnd)
        u->dnd = in->dnd;
    if (in->has_ring_timeout)
        u->ring_timeout = in->ring_timeout;
}

/* ---- GET /users ---- */

/* The orders of the list as ?sort= names them ("-name": descending). */
static const struct {
    const char *name;
    enum store_user_sort sort;
} sorts[] = {
    {"extension", STORE_USER_SORT_EXTENSION},
    {"name", STORE_USER_SORT_NAME},
    {"status", STORE_USER_SORT_STATUS},
    {"created", STORE_USER_SORT_CREATED},
};
#define SORT_LIST "extension, name, status or created (- before it: descending)"

static const char *const statuses[] = {
    [STORE_USER_ANY] = "any",         [STORE_USER_ONLINE] = "online",
    [STORE_USER_OFFLINE] = "offline", [STORE_USER_DISABLED] = "disabled",
    [STORE_USER_DND] = "dnd",
};

/* A cursor is the sort as asked, the last user's sort key and its extension key, apart by
 * a unit separator (which no key holds: display names have no control characters). */
#define CURSOR_SEP      '\x1f'
#define CURSOR_TEXT_MAX (16 + STORE_NAME_MAX + STORE_EXT_MAX + 8)

struct list_ctx {
    cJSON *items;
    int limit, n, more;
    char last[CURSOR_TEXT_MAX];
    const char *sort; /* as asked */
};

static int list_one(const struct store_user *u, const char *key, const char *key2, int online,
                    void *arg)
{
    struct list_ctx *lc = arg;
    if (lc->n == lc->limit) {
        lc->more = 1;
        return -1; /* stop: the page is full and one more exists */
    }
    cJSON *o = render_user(u);
    if (o)
        cJSON_AddBoolToObject(o, "online", online);
    cJSON_AddItemToArray(lc->items, o);
    lc->n++;
    snprintf(lc->last, sizeof lc->last, "%s%c%s%c%s", lc->sort, CURSOR_SEP, key, CURSOR_SEP, key2);
    return 0;
}

/* Reads ?sort=, ?status=, ?enabled= and ?q= (or ?search=) into q; -1 after a 400. */
static int list_params(struct http_req *r, struct store_user_query *q, const char **sort)
{
    const char *v = http_query(r, "sort");
    *sort = v && *v ? v : "extension";
    const char *name = **sort == '-' ? *sort + 1 : *sort;
    size_t i = 0;
    while (i < sizeof sorts / sizeof sorts[0] && strcmp(name, sorts[i].name) != 0)
        i++;
    if (i == sizeof sorts / sizeof sorts[0]) {
        http_error(r, 400, "invalid_parameter", "sort: must be one of " SORT_LIST);
        return -1;
    }
    q->sort = sorts[i].sort;
    q->desc = **sort == '-';

    q->enabled = -1;
    if ((v = http_query(r, "enabled")) && *v) {
        if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0) {
            http_error(r, 400, "invalid_parameter", "enabled: must be true or false");
            return -1;
        }
        q->enabled = strcmp(v, "true") == 0;
    }
    q->status = STORE_USER_ANY;
    if ((v = http_query(r, "status")) && *v) {
        size_t k = 0;
        while (k < sizeof statuses / sizeof statuses[0] && strcmp(v, statuses[k]) != 0)
            k++;
        if (k == sizeof statuses / sizeof statuses[0]) {
            http_error(r, 400, "invalid_parameter",
                       "status: must be online, offline, disabled, dnd or any");
            return -1;
        }
        q->status = (enum store_user_status)k;
    }
    const char *search = http_query(r, "q"), *alias = http_query(r, "search");
    if (search && *search && alias && *alias && strcmp(search, alias) != 0) {
        http_error(r, 400, "invalid_parameter", "search: differs from q (give one of them)");
        return -1;
    }
    q->q = search && *search ? search : alias && *alias ? alias : NULL;
    if (q->q && strlen(q->q) > STORE_NAME_MAX) {
        http_error(r, 400, "invalid_parameter", "q: longer than %d bytes", STORE_NAME_MAX);
        return -1;
    }
    return 0;
}

void api_users_list(struct http_req *r)
{
    struct list_ctx lc;
    struct store_user_query q;
    const char *cursor;
    memset(&lc, 0, sizeof lc);
    memset(&q, 0, sizeof q);
    if (http_page_params(r, &lc.limit, &cursor) != 0 || list_params(r, &q, &lc.sort) != 0)
        return;
    char after[CURSOR_TEXT_MAX];
    if (cursor) {
        char *k, *k2;
        if (http_cursor_decode(after, sizeof after, cursor) != 0 ||
            !(k = strchr(after, CURSOR_SEP)) || !(k2 = strchr(k + 1, CURSOR_SEP)) ||
            strchr(k2 + 1, CURSOR_SEP)) {
            http_error(r, 400, "invalid_parameter", "cursor: not a cursor this server returned");
            return;
        }
        *k++ = '\0';
        *k2++ = '\0';
        if (strcmp(after, lc.sort) != 0) {
            http_error(r, 400, "invalid_parameter",
                       "cursor: from a list in another order (sort=%s); start again without it",
                       after);
            return;
        }
        q.after = k;
        q.after2 = k2;
    }
    q.now = util_now();
    int64_t total = store_user_query_count(r->st, &q);
    if (total < 0) {
        http_store_error(r);
        return;
    }
    lc.items = cJSON_CreateArray();
    int rc = store_user_query(r->st, &q, lc.limit + 1, list_one, &lc);
    if (rc != 0 && rc != -1) {
        cJSON_Delete(lc.items);
        http_store_error(r);
        return;
    }
    char next[2 * CURSOR_TEXT_MAX + 1];
    if (lc.more)
        http_cursor_encode(next, sizeof next, lc.last);
    cJSON *page = http_page(lc.items, lc.more ? next : NULL);
    cJSON_AddNumberToObject(page, "total", (double)total);
    http_json(r, 200, page);
}

/* ---- POST /users ---- */

void api_users_create(struct http_req *r)
{
    static const char *const fields[] = {"extension",    "username", "display_name",
                                         "password",     "enabled",  "call_waiting",
                                         "ring_timeout", "dnd",      NULL};
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
    users_ha1(u.ha1, ext, r->h->domain, in.password);
    u.enabled = 1;
    u.call_waiting = 1;
    apply_input(&u, &in);
    u.created_at = util_now();
    int rc = store_user_add(r->st, &u);
    if (rc == EEXIST) {
        struct store_group g;
        if (store_group_get(r->st, ext, &g) == 0)
            http_error(r, 409, "conflict", "extension: %s is a ring group", ext);
        else
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
    http_created(r, render_user(&u), "/api/v1/users/%s", u.extension);
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
        users_ha1(ha1, pc->ext, pc->realm, pc->in->password);
        if ((rc = store_user_set_ha1(st, pc->ext, pc->realm, ha1)) != 0)
            return rc;
    }
    return store_user_get(st, pc->ext, &pc->u);
}

void api_users_patch(struct http_req *r)
{
    static const char *const fields[] = {"extension",    "username", "display_name",
                                         "password",     "enabled",  "call_waiting",
                                         "ring_timeout", "dnd",      NULL};
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
    /* Registrations, forward rules and voicemail rows go by cascade; the messages' files
     * are deleted here. */
    int rc = vm_user_delete(r->st, vm_dir(r->h->vm), ext);
    if (rc == ENOENT) {
        http_error(r, 404, "not_found", "no user %s", ext);
        return;
    }
    if (rc != 0) {
        http_store_error(r);
        return;
    }
    http_users_changed(r->h);
    vm_changed(r->h->vm, ext, 0, 0);
    if (sip_kick(r->h->sip, ext) < 0)
        log_warn("http: cannot remove the registrations of %s now: the SIP side did not answer",
                 ext);
    log_info("http: user %s deleted", ext);
    http_empty(r, 204);
}
