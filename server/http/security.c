/* /api/v1/security: the addresses blocked for failed SIP digest checks (live, from the SIP
 * thread), lifting one, and the extensions such checks were sent for in the current window. */
#include "http/http_int.h"
#include "sip/sip.h"
#include "util/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* "100,101" as a JSON array of strings. */
static cJSON *list_of(const char *csv)
{
    cJSON *a = cJSON_CreateArray();
    const char *p = csv;
    while (*p) {
        size_t n = strcspn(p, ",");
        char item[64];
        if (n >= sizeof item)
            n = sizeof item - 1;
        memcpy(item, p, n);
        item[n] = '\0';
        cJSON_AddItemToArray(a, cJSON_CreateString(item));
        p += strcspn(p, ",");
        if (*p == ',')
            p++;
    }
    return a;
}

void api_security_blocks_list(struct http_req *r)
{
    struct sip_block *blocks = NULL;
    errno = 0;
    int n = sip_blocks(r->h->sip, &blocks);
    if (n < 0) {
        http_sip_error(r);
        return;
    }
    int64_t now = util_now();
    cJSON *items = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        const struct sip_block *b = &blocks[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "source", b->source);
        cJSON_AddStringToObject(o, "reason", b->reason);
        cJSON_AddNumberToObject(o, "failures", (double)b->failures);
        cJSON_AddNumberToObject(o, "dropped", (double)b->dropped);
        cJSON_AddNumberToObject(o, "offences", b->offences);
        cJSON_AddItemToObject(o, "extensions", list_of(b->extensions));
        http_add_time(o, "since", b->since);
        http_add_time(o, "until", b->until);
        cJSON_AddNumberToObject(o, "expires_in", (double)(b->until > now ? b->until - now : 0));
        cJSON_AddItemToArray(items, o);
    }
    free(blocks);
    http_json(r, 200, http_page(items, NULL));
}

void api_security_blocks_delete(struct http_req *r)
{
    errno = 0;
    int rc = sip_block_lift(r->h->sip, r->param);
    if (rc == EINVAL) {
        http_error(r, 400, "invalid_parameter", "source: '%s' is not an IPv4 or IPv6 address",
                   r->param);
        return;
    }
    if (rc == ENOENT) {
        http_error(r, 404, "not_found", "%s is not blocked", r->param);
        return;
    }
    if (rc != 0) {
        http_sip_error(r);
        return;
    }
    http_empty(r, 204);
}

void api_security_targets_list(struct http_req *r)
{
    struct sip_target *t = NULL;
    errno = 0;
    int n = sip_targets(r->h->sip, &t);
    if (n < 0) {
        http_sip_error(r);
        return;
    }
    cJSON *items = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "extension", t[i].extension);
        cJSON_AddNumberToObject(o, "failures", (double)t[i].failures);
        cJSON_AddNumberToObject(o, "sources", t[i].sources);
        cJSON_AddStringToObject(o, "last_source", t[i].last_source);
        http_add_time(o, "last_failure", t[i].last_failure);
        cJSON_AddItemToArray(items, o);
    }
    free(t);
    http_json(r, 200, http_page(items, NULL));
}
