/* /api/v1/health: a liveness check for load balancers and monitoring; needs no
 * authentication and tells nothing but that the daemon and its database answer. */
#include "http/http_int.h"

void api_health_get(struct http_req *r)
{
    int db_ok = store_schema_version(r->st) == store_latest_version();
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", db_ok ? "ok" : "error");
    cJSON_AddStringToObject(o, "version", SIPBX_VERSION);
    cJSON_AddStringToObject(o, "database", db_ok ? "ok" : "error");
    http_json(r, db_ok ? 200 : 503, o);
}
