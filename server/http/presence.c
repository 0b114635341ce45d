/* /api/v1/presence: what each user's buddy-list entry and busy lamp show now (published
 * presence, or registration and call state; the dialog state of its calls), asked of the
 * SIP thread, which owns that state. Changes come on the event stream as presence.changed. */
#include "http/http_int.h"
#include "sip/sip.h"
#include "util/util.h"

#include <errno.h>
#include <stdlib.h>

void api_presence_list(struct http_req *r)
{
    const char *ext = http_query(r, "extension");
    if (ext && !*ext)
        ext = NULL;
    struct sip_presence_info *items = NULL;
    errno = 0;
    int n = sip_presence(r->h->sip, ext, &items);
    if (n < 0) {
        http_sip_error(r);
        return;
    }
    if (ext && n == 0) {
        free(items);
        http_error(r, 404, "not_found", "no user %s", ext);
        return;
    }
    cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "items");
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, sip_presence_json(&items[i]));
    free(items);
    http_json(r, 200, root);
}
