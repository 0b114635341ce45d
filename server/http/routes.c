/* The route table: method and path pattern to handler, ending in the 404 entry. A path
 * that matches with another method gets 405 with the Allow header. */
#include "http/http_int.h"

#include <stdio.h>
#include <string.h>

static void not_found(struct http_req *r)
{
    http_error(r, 404, "not_found", "no such endpoint: %s", r->path);
}

enum route_flags {
    ROUTE_PUBLIC = 1, /* no token or session needed */
    /* May wait (on the SIP thread, the writer, SQLite's write lock or a password hash):
     * runs on a handler thread, never on a thread that serves connections. */
    ROUTE_WAITS = 2,
};

/* A pattern is a literal path where "*" stands for one non-empty segment and a final "**"
 * for the non-empty rest of the path, slashes included (a Call-ID may hold "/"); the first
 * is copied to r->param, a second to r->param2. */
static const struct route {
    const char *method;
    const char *pattern;
    void (*handle)(struct http_req *r);
    int flags;
} routes[] = {
    {"GET", "/api/v1/health", api_health_get, ROUTE_PUBLIC},
    {"GET", "/api/v1/session", api_session_get, 0},
    {"POST", "/api/v1/session", api_session_create, ROUTE_PUBLIC | ROUTE_WAITS},
    {"DELETE", "/api/v1/session", api_session_delete, ROUTE_WAITS},
    {"GET", "/api/v1/users", api_users_list, 0},
    {"POST", "/api/v1/users", api_users_create, ROUTE_WAITS},
    {"POST", HTTP_IMPORT_PATH, api_users_import, ROUTE_WAITS},
    {"GET", "/api/v1/users/*", api_users_get, 0},
    {"PATCH", "/api/v1/users/*", api_users_patch, ROUTE_WAITS},
    {"DELETE", "/api/v1/users/*", api_users_delete, ROUTE_WAITS},
    {"GET", "/api/v1/users/*/forwarding", api_forwarding_get, 0},
    {"PUT", "/api/v1/users/*/forwarding", api_forwarding_put, ROUTE_WAITS},
    {"GET", "/api/v1/users/*/voicemail", api_voicemail_list, 0},
    {"GET", "/api/v1/users/*/voicemail/greeting", api_voicemail_greeting_get, 0},
    {"PUT", "/api/v1/users/*/voicemail/greeting", api_voicemail_greeting_put, ROUTE_WAITS},
    {"DELETE", "/api/v1/users/*/voicemail/greeting", api_voicemail_greeting_delete, ROUTE_WAITS},
    {"GET", "/api/v1/users/*/voicemail/greeting.wav", api_voicemail_greeting_wav, 0},
    {"GET", "/api/v1/users/*/voicemail/*", api_voicemail_get, 0},
    {"PATCH", "/api/v1/users/*/voicemail/*", api_voicemail_patch, ROUTE_WAITS},
    {"DELETE", "/api/v1/users/*/voicemail/*", api_voicemail_delete, ROUTE_WAITS},
    {"GET", "/api/v1/groups", api_groups_list, 0},
    {"POST", "/api/v1/groups", api_groups_create, ROUTE_WAITS},
    {"GET", "/api/v1/groups/*", api_groups_get, 0},
    {"PUT", "/api/v1/groups/*", api_groups_put, ROUTE_WAITS},
    {"DELETE", "/api/v1/groups/*", api_groups_delete, ROUTE_WAITS},
    {"GET", "/api/v1/registrations", api_registrations_list, 0},
    {"DELETE", "/api/v1/registrations/*", api_registrations_delete, ROUTE_WAITS},
    {"GET", "/api/v1/tokens", api_tokens_list, 0},
    {"POST", "/api/v1/tokens", api_tokens_create, ROUTE_WAITS},
    {"DELETE", "/api/v1/tokens/*", api_tokens_delete, ROUTE_WAITS},
    {"GET", "/api/v1/calls", api_calls_list, ROUTE_WAITS},
    {"GET", "/api/v1/presence", api_presence_list, ROUTE_WAITS},
    {"GET", "/api/v1/calls/*", api_calls_get, ROUTE_WAITS},
    {"DELETE", "/api/v1/calls/*", api_calls_delete, ROUTE_WAITS},
    {"GET", "/api/v1/events", api_events_get, 0},
    {"GET", "/api/v1/settings", api_settings_get, 0},
    {"GET", "/api/v1/cdrs", api_cdrs_list, 0},
    {"GET", "/api/v1/cdrs.csv", api_cdrs_csv, 0},
    {"GET", "/api/v1/cdrs/summary", api_cdrs_summary, 0},
    {"GET", "/api/v1/cdrs/stats", api_cdrs_stats, 0},
    {"GET", "/api/v1/traces/**", api_traces_get, 0},
    {"GET", "/api/v1/security/blocks", api_security_blocks_list, ROUTE_WAITS},
    {"DELETE", "/api/v1/security/blocks/*", api_security_blocks_delete, ROUTE_WAITS},
    {"GET", "/api/v1/security/targets", api_security_targets_list, ROUTE_WAITS},
    {"GET", "/api/v1/webhooks", api_webhooks_list, 0},
    {"POST", "/api/v1/webhooks", api_webhooks_create, ROUTE_WAITS},
    {"GET", "/api/v1/webhooks/*", api_webhooks_get, 0},
    {"DELETE", "/api/v1/webhooks/*", api_webhooks_delete, ROUTE_WAITS},
    {"GET", "/api/v1/webhooks/*/deliveries", api_webhooks_deliveries, 0},
    {"POST", "/api/v1/webhooks/*/ping", api_webhooks_ping, ROUTE_WAITS},
    {"GET", "/api/v1/openapi.json", api_openapi_get, ROUTE_PUBLIC},
    {"GET", "/metrics", api_metrics_get, ROUTE_WAITS},
    {NULL, NULL, not_found, ROUTE_PUBLIC}, /* anything else; GET outside /api/: a file */
};

/* True when path matches pattern; the part matched by the first "*" or "**" goes to param,
 * by a second to param2 (both hold paramlen bytes). */
static int match(const char *pattern, const char *path, char *param, char *param2, size_t paramlen)
{
    int nparams = 0;
    while (*pattern && *path) {
        if (*pattern == '*') {
            int rest = pattern[1] == '*';
            size_t n = rest ? strlen(path) : strcspn(path, "/");
            pattern += rest;
            if (n == 0 || n >= paramlen || nparams >= 2)
                return 0;
            char *to = nparams++ ? param2 : param;
            memcpy(to, path, n);
            to[n] = '\0';
            path += n;
            pattern++;
            continue;
        }
        if (*pattern++ != *path++)
            return 0;
    }
    return *pattern == '\0' && *path == '\0';
}

/* HEAD is answered like GET (microhttpd leaves the body out). */
static int same_method(const char *route, const char *asked)
{
    return strcmp(route, asked) == 0 || (strcmp(route, "GET") == 0 && strcmp(asked, "HEAD") == 0);
}

http_handler http_route_find(struct http_req *r, int *waits)
{
    const struct route *rt = routes, *found = NULL;
    char allow[128] = "";
    *waits = 0;
    for (; rt->pattern; rt++) {
        if (!match(rt->pattern, r->path, r->param, r->param2, sizeof r->param))
            continue;
        if (same_method(rt->method, r->method)) {
            found = rt;
            break;
        }
        size_t n = strlen(allow);
        snprintf(allow + n, sizeof allow - n, "%s%s", n ? ", " : "", rt->method);
    }
    if (!found && allow[0]) {
        http_header(r, "Allow", allow);
        http_error(r, 405, "method_not_allowed", "%s is not allowed on %s (allowed: %s)", r->method,
                   r->path, allow);
        return NULL;
    }
    if (!found) {
        r->param[0] = '\0';
        found = rt; /* the 404 entry */
        if (same_method("GET", r->method)) {
            http_static_get(r); /* the dashboard's files (404 under /api/) */
            return NULL;
        }
    }
    if (!(found->flags & ROUTE_PUBLIC) && http_authenticate(r) != 0)
        return NULL;
    *waits = (found->flags & ROUTE_WAITS) != 0;
    return found->handle;
}
