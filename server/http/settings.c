/* /api/v1/settings: the settings the daemon runs with (read-only: they come from the
 * config file and flags at start), for the dashboard's settings page. */
#include "http/http_int.h"
#include "sip/sip.h"

void api_settings_get(struct http_req *r)
{
    const struct config *c = &r->h->cfg;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "domain", r->h->domain);

    cJSON *sip = cJSON_AddObjectToObject(o, "sip");
    cJSON_AddStringToObject(sip, "address", c->sip_host);
    cJSON_AddNumberToObject(sip, "port", sip_port(r->h->sip)); /* the bound one */
    cJSON *tr = cJSON_AddArrayToObject(sip, "transports");
    cJSON_AddItemToArray(tr, cJSON_CreateString("udp"));
    cJSON_AddItemToArray(tr, cJSON_CreateString("tcp"));

    cJSON *http = cJSON_AddObjectToObject(o, "http");
    cJSON_AddStringToObject(http, "address", c->http_host);
    cJSON_AddNumberToObject(http, "port", r->h->port);

    cJSON_AddNumberToObject(o, "ring_timeout", c->ring_timeout);
    cJSON_AddNumberToObject(o, "min_expires", c->min_expires);
    cJSON_AddNumberToObject(o, "max_expires", c->max_expires);

    cJSON *trace = cJSON_AddObjectToObject(o, "trace");
    cJSON_AddBoolToObject(trace, "enabled", c->trace);
    cJSON_AddNumberToObject(trace, "days", c->trace_days);
    cJSON_AddNumberToObject(trace, "max_mb", c->trace_max_mb);

    cJSON_AddStringToObject(o, "version", SIPBX_VERSION);
    http_json(r, 200, o);
}
