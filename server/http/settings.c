/* /api/v1/settings: the settings the daemon runs with (read-only: they come from the
 * config file and flags at start), for the dashboard's settings page. */
#include "http/http_int.h"
#include "cert/cert.h"
#include "sip/sip.h"
#include "util/util.h"

#include <stdio.h>
#include <string.h>

/* The certificate's facts, for pinning and for knowing when to replace it; null without. */
static cJSON *certificate_json(const struct cert *c)
{
    if (!c)
        return cJSON_CreateNull();
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "fingerprint_sha256", cert_fingerprint(c));
    cJSON_AddStringToObject(o, "subject", cert_subject(c));
    cJSON *names = cJSON_AddArrayToObject(o, "names");
    /* "DNS:a, IP:b" -> ["DNS:a", "IP:b"] */
    for (const char *p = cert_names(c); *p;) {
        size_t n = strcspn(p, ",");
        char one[300];
        snprintf(one, sizeof one, "%.*s", (int)n, p);
        cJSON_AddItemToArray(names, cJSON_CreateString(one));
        p += n;
        p += strspn(p, ", ");
    }
    http_add_time(o, "not_before", cert_not_before(c));
    http_add_time(o, "not_after", cert_not_after(c));
    cJSON_AddBoolToObject(o, "expired", cert_not_after(c) < util_now());
    cJSON_AddBoolToObject(o, "generated", cert_generated(c));
    cJSON_AddStringToObject(o, "file", cert_file(c));
    return o;
}

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
    if (c->sip_tls_port) {
        cJSON_AddItemToArray(tr, cJSON_CreateString("tls"));
        cJSON_AddStringToObject(sip, "tls_address", c->sip_tls_host);
        cJSON_AddNumberToObject(sip, "tls_port", sip_tls_port(r->h->sip)); /* the bound one */
    } else {
        cJSON_AddNullToObject(sip, "tls_address");
        cJSON_AddNullToObject(sip, "tls_port");
    }
    cJSON_AddItemToObject(sip, "certificate",
                          certificate_json(c->sip_tls_port ? r->h->sip_cert : NULL));

    cJSON *http = cJSON_AddObjectToObject(o, "http");
    cJSON_AddStringToObject(http, "address", c->http_host);
    cJSON_AddNumberToObject(http, "port", r->h->plain.port);

    cJSON *https = cJSON_AddObjectToObject(o, "https");
    int on = c->https_port != 0; /* (http_create fails when HTTPS cannot start) */
    cJSON_AddBoolToObject(https, "enabled", on);
    if (on) {
        cJSON_AddStringToObject(https, "address", c->https_host);
        cJSON_AddNumberToObject(https, "port", r->h->tls.port);
    } else {
        cJSON_AddNullToObject(https, "address");
        cJSON_AddNullToObject(https, "port");
    }
    cJSON_AddNumberToObject(https, "hsts_max_age", on ? c->hsts_max_age : 0);
    cJSON_AddItemToObject(https, "certificate", certificate_json(on ? r->h->https_cert : NULL));

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
