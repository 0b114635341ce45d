/* POST /api/v1/users/import: many SIP accounts at once, from CSV (text/csv, a header row
 * extension,password,display_name) or a JSON array (application/json). The valid rows are
 * created in one transaction; the answer counts them and lists each rejected row with its
 * reason. The checks and the transaction are users/import.c's, shared with the CLI. */
#include "http/http_int.h"
#include "sip/sip.h"
#include "users/users.h"
#include "util/util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* The format named by the Content-Type, or -1. Only types a browser does not send across
 * sites without a CORS preflight (which sipbx never grants), so no other site's form can
 * import users with an admin's cookie. */
static int body_format(const char *ctype)
{
    if (!ctype)
        return -1;
    size_t n = strcspn(ctype, ";");
    while (n && (ctype[n - 1] == ' ' || ctype[n - 1] == '\t'))
        n--;
    if ((n == 8 && strncasecmp(ctype, "text/csv", 8) == 0) ||
        (n == 15 && strncasecmp(ctype, "application/csv", 15) == 0))
        return USERS_CSV;
    if (n == 16 && strncasecmp(ctype, "application/json", 16) == 0)
        return USERS_JSON;
    return -1;
}

void api_users_import(struct http_req *r)
{
    int fmt = body_format(http_req_header(r, "Content-Type"));
    if (fmt < 0) {
        http_error(r, 415, "unsupported_media_type",
                   "send CSV as 'Content-Type: text/csv' or a JSON array as "
                   "'Content-Type: application/json'");
        return;
    }
    if (!r->body || r->body_len == 0) {
        http_error(r, 400, "invalid_body",
                   fmt == USERS_CSV ? "the body is empty: expected a header row "
                                      "(extension,password,display_name) and a row per user"
                                    : "the body is empty: expected a JSON array of users");
        return;
    }
    struct users_import *im = NULL;
    char err[256];
    int rc = users_import_parse(&im, r->body, r->body_len, (enum users_format)fmt, r->h->domain,
                                err, sizeof err);
    if (rc == EINVAL) {
        http_error(r, 400, "invalid_body", "%s", err);
        return;
    }
    if (rc != 0) {
        http_error(r, 503, "unavailable", "out of memory: import fewer users at a time");
        return;
    }
    if (users_import_run(im, r->st) != 0) {
        users_import_destroy(im);
        http_store_error(r);
        return;
    }
    size_t created = users_import_created(im);
    const struct users_rejected *rej;
    size_t nrej = users_import_rejected(im, &rej);
    if (created)
        http_users_changed(r->h);
    log_info("http: %zu user(s) imported, %zu row(s) rejected", created, nrej);

    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "created", (double)created);
    cJSON *list = cJSON_AddArrayToObject(o, "rejected");
    for (size_t i = 0; i < nrej; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "line", rej[i].line);
        cJSON_AddStringToObject(e, "extension", rej[i].extension);
        cJSON_AddStringToObject(e, "reason", rej[i].reason);
        cJSON_AddStringToObject(e, "message", rej[i].message);
        cJSON_AddItemToArray(list, e);
    }
    users_import_destroy(im);
    http_json(r, 200, o);
}
