/* /api/v1/health: a liveness check for load balancers and monitoring; needs no
 * authentication and tells nothing but that the daemon and its database answer, and
 * whether what happens is being written (503 while the disk is full or failing). */
#include "http/http_int.h"

#include <stdio.h>

void api_health_get(struct http_req *r)
{
    int db_ok = store_schema_version(r->st) == store_latest_version();
    char why[256];
    int64_t failing = store_writer_failing(r->h->writer, why, sizeof why, NULL);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", db_ok && !failing ? "ok" : "error");
    cJSON_AddStringToObject(o, "version", SIPBX_VERSION);
    if (!db_ok) {
        cJSON_AddStringToObject(o, "database", "error");
    } else if (failing) {
        /* Calls go on and nothing is lost (the writer retries), but what happens is not
         * being recorded: the disk is full or failing. */
        char text[400];
        snprintf(text, sizeof text, "writes failing: %s (%zu rows waiting)", why,
                 store_writer_depth(r->h->writer));
        cJSON_AddStringToObject(o, "database", text);
        http_add_time(o, "failing_since", failing);
    } else {
        cJSON_AddStringToObject(o, "database", "ok");
    }
    http_json(r, db_ok && !failing ? 200 : 503, o);
}
