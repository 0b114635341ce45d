/* /api/v1/calls: the calls in progress, as a snapshot asked of the SIP thread (the live
 * call table is its own); a call leaves the list when it ends. */
#include "http/http_int.h"
#include "render/render.h"
#include "sip/sip.h"
#include "util/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* True when ext takes part in c: as the caller, the dialled extension, or the one a
 * forward sent the call to (or from). */
static int involves(const struct sip_call_info *c, const char *ext)
{
    if (strcmp(c->caller, ext) == 0 || strcmp(c->callee, ext) == 0)
        return 1;
    for (int i = 0; i < c->nforwards; i++)
        if (strcmp(c->forwards[i].from, ext) == 0 || strcmp(c->forwards[i].to, ext) == 0)
            return 1;
    return 0;
}

/* The live calls (*out, free() it) and their count, or -1 after a 503 reply. */
static int snapshot(struct http_req *r, struct sip_call_info **out)
{
    errno = 0;
    int n = sip_calls(r->h->sip, out);
    if (n < 0)
        http_sip_error(r);
    return n;
}

void api_calls_list(struct http_req *r)
{
    const char *ext = http_query(r, "extension");
    if (ext && !*ext)
        ext = NULL;
    struct sip_call_info *calls = NULL;
    int n = snapshot(r, &calls);
    if (n < 0)
        return;
    cJSON *root = cJSON_CreateObject(), *items = cJSON_AddArrayToObject(root, "items");
    for (int i = 0; i < n; i++) /* oldest first: sip_calls sorts by id */
        if (!ext || involves(&calls[i], ext))
            cJSON_AddItemToArray(items, render_call(&calls[i]));
    free(calls);
    http_json(r, 200, root);
}

void api_calls_get(struct http_req *r)
{
    int64_t id = http_parse_id(r->param);
    if (id == 0) { /* no call has it */
        http_error(r, 404, "not_found", "no call %s in progress", r->param);
        return;
    }
    struct sip_call_info *calls = NULL;
    int n = snapshot(r, &calls);
    if (n < 0)
        return;
    int found = -1;
    for (int i = 0; i < n && found < 0; i++)
        if (calls[i].id == (uint64_t)id)
            found = i;
    if (found < 0)
        http_error(r, 404, "not_found", "no call %s in progress", r->param);
    else
        http_json(r, 200, render_call(&calls[found]));
    free(calls);
}

void api_calls_delete(struct http_req *r)
{
    int64_t id = http_parse_id(r->param);
    if (id == 0) {
        http_error(r, 404, "not_found", "no call %s in progress", r->param);
        return;
    }
    errno = 0;
    int rc = sip_hangup(r->h->sip, (uint64_t)id);
    if (rc < 0) {
        http_sip_error(r);
        return;
    }
    if (rc == ENOENT) {
        http_error(r, 404, "not_found", "no call %s in progress", r->param);
        return;
    }
    log_info("http: call %lld ended by %s from %s", (long long)id,
             r->auth == HTTP_AUTH_SESSION ? r->session.username : r->token.name, r->client);
    http_empty(r, 204);
}
