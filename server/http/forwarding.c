/* /api/v1/users/{ext}/forwarding: a user's four call-forward rules (unconditional, busy,
 * no answer, unavailable), each to a target or to the user's voicemail, read and replaced as
 * a whole. A change is in effect on the SIP side when the answer is sent. */
#include "http/http_int.h"
#include "sip/sip.h"
#include "util/util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TIMEOUT_MIN     1
#define TIMEOUT_MAX     300
#define TIMEOUT_DEFAULT 20 /* no_answer seconds when the rule names none */

/* ---- rendering ---- */

static cJSON *rules_json(const struct store_forward *f)
{
    cJSON *o = cJSON_CreateObject();
    for (int k = 0; k < STORE_FWD_KINDS; k++) {
        const struct store_forward_rule *rule = &f->rule[k];
        cJSON *r = cJSON_AddObjectToObject(o, store_forward_kinds[k]);
        cJSON_AddBoolToObject(r, "enabled", rule->enabled);
        cJSON_AddStringToObject(r, "target", rule->target);
        cJSON_AddBoolToObject(r, "voicemail", rule->voicemail);
        if (k == STORE_FWD_NO_ANSWER)
            cJSON_AddNumberToObject(r, "timeout",
                                    rule->timeout > 0 ? rule->timeout : TIMEOUT_DEFAULT);
    }
    return o;
}

/* The user of the path, or -1 after a 404 or 500 reply. */
static int path_user(struct http_req *r)
{
    struct store_user u;
    int rc = util_valid_extension(r->param) ? store_user_get(r->st, r->param, &u) : ENOENT;
    if (rc == ENOENT)
        http_error(r, 404, "not_found", "no user %s", r->param);
    else if (rc != 0)
        http_store_error(r);
    return rc == 0 ? 0 : -1;
}

/* ---- GET ---- */

void api_forwarding_get(struct http_req *r)
{
    if (path_user(r) != 0)
        return;
    struct store_forward f;
    if (store_forward_get(r->st, r->param, &f) != 0) {
        http_store_error(r);
        return;
    }
    http_json(r, 200, rules_json(&f));
}

/* ---- validation of targets ---- */

static int uri_user_char(unsigned char c)
{
    return isalnum(c) || strchr("-_.!~*'()&=+$,;?/", c); /* RFC 3261 user, less escapes */
}

static int uri_param_char(unsigned char c)
{
    return isalnum(c) || strchr("-_.!~*'()[]/:&+$=;", c);
}

/* Checks "sip:user@host[:port][;params]" (RFC 3261 25.1, less escapes and headers) and
 * copies its user and host parts. Returns 0, or -1 when it is not such a URI. */
static int parse_sip_uri(const char *s, char *user, size_t userlen, char *host, size_t hostlen)
{
    if (strncasecmp(s, "sip:", 4) != 0)
        return -1;
    const char *p = s + 4, *at = strchr(p, '@');
    if (!at || at == p || (size_t)(at - p) >= userlen)
        return -1;
    for (const char *q = p; q < at; q++)
        if (!uri_user_char((unsigned char)*q))
            return -1;
    snprintf(user, userlen, "%.*s", (int)(at - p), p);

    p = at + 1;
    size_t n;
    if (*p == '[') { /* an IPv6 reference */
        n = strspn(p + 1, "0123456789abcdefABCDEF:.");
        if (n == 0 || p[1 + n] != ']')
            return -1;
        n += 2;
    } else {
        n = strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.");
        if (n == 0 || !isalnum((unsigned char)p[0]) || p[n - 1] == '-')
            return -1;
    }
    if (n >= hostlen)
        return -1;
    snprintf(host, hostlen, "%.*s", (int)n, p);
    p += n;

    if (*p == ':') {
        size_t d = strspn(p + 1, "0123456789");
        long port = d > 0 && d <= 5 ? strtol(p + 1, NULL, 10) : 0;
        if (port < 1 || port > 65535)
            return -1;
        p += 1 + d;
    }
    if (*p == ';') {
        for (p++; *p; p++)
            if (!uri_param_char((unsigned char)*p))
                return -1;
    }
    return *p == '\0' ? 0 : -1;
}

int http_check_target(struct http_req *r, const char *ext, const char *field, const char *t,
                      int enabled)
{
    char user[256], host[256];
    const char *local; /* the extension of this PBX it names, or NULL */
    if (!t[0]) {
        if (enabled) {
            http_error(r, 422, "missing_field", "%s: required when the rule is enabled", field);
            return -1;
        }
        return 0;
    }
    if (util_valid_extension(t)) {
        local = t;
    } else if (strlen(t) < sizeof user &&
               parse_sip_uri(t, user, sizeof user, host, sizeof host) == 0) {
        local = sip_host_is_ours(r->h->sip, host) ? user : NULL;
        if (local && !util_valid_extension(local)) {
            http_error(r, 422, "invalid_field", "%s: no such extension %s", field, local);
            return -1;
        }
    } else {
        http_error(r, 422, "invalid_field",
                   "%s: must be an extension of this PBX or a SIP URI (sip:user@host)", field);
        return -1;
    }
    if (!local)
        return 0;
    if (strcmp(local, ext) == 0) {
        http_error(r, 422, "invalid_field", "%s: cannot forward %s to itself", field, ext);
        return -1;
    }
    if (!enabled)
        return 0; /* a parked rule may keep a target that has gone since */
    struct store_user u;
    struct store_group g;
    int rc = store_user_get(r->st, local, &u);
    if (rc == ENOENT)
        rc = store_group_get(r->st, local, &g);
    if (rc == ENOENT) {
        http_error(r, 422, "invalid_field", "%s: no such extension %s", field, local);
        return -1;
    }
    if (rc != 0) {
        http_store_error(r);
        return -1;
    }
    return 0;
}

/* ---- reading the body ---- */

/* Reads one rule object of the body into *rule; -1 after a 422 reply naming the field as
 * "kind.field". */
static int read_rule(struct http_req *r, const cJSON *obj, int k, struct store_forward_rule *rule)
{
    const char *kind = store_forward_kinds[k];
    if (!cJSON_IsObject(obj)) {
        http_error(r, 422, "invalid_field", "%s: must be an object", kind);
        return -1;
    }
    for (const cJSON *f = obj->child; f; f = f->next) {
        for (const cJSON *g = obj->child; g != f; g = g->next)
            if (strcmp(g->string, f->string) == 0) {
                http_error(r, 400, "invalid_json", "%s.%s: given twice", kind, f->string);
                return -1;
            }
        if (strcmp(f->string, "enabled") != 0 && strcmp(f->string, "target") != 0 &&
            strcmp(f->string, "voicemail") != 0 &&
            (k != STORE_FWD_NO_ANSWER || strcmp(f->string, "timeout") != 0)) {
            http_error(r, 422, "unknown_field", "%s.%s: unknown field", kind, f->string);
            return -1;
        }
    }

    const cJSON *en = cJSON_GetObjectItemCaseSensitive(obj, "enabled");
    if (!en) {
        http_error(r, 422, "missing_field", "%s.enabled: required", kind);
        return -1;
    }
    if (!cJSON_IsBool(en)) {
        http_error(r, 422, "invalid_field", "%s.enabled: must be true or false", kind);
        return -1;
    }
    rule->enabled = cJSON_IsTrue(en) ? 1 : 0;

    const cJSON *t = cJSON_GetObjectItemCaseSensitive(obj, "target");
    if (t && !cJSON_IsNull(t)) {
        if (!cJSON_IsString(t) || !t->valuestring) {
            http_error(r, 422, "invalid_field", "%s.target: must be a string", kind);
            return -1;
        }
        if (strlen(t->valuestring) >= sizeof rule->target) {
            http_error(r, 422, "invalid_field", "%s.target: longer than %zu bytes", kind,
                       sizeof rule->target - 1);
            return -1;
        }
        snprintf(rule->target, sizeof rule->target, "%s", t->valuestring);
    }

    const cJSON *vm = cJSON_GetObjectItemCaseSensitive(obj, "voicemail");
    if (vm && !cJSON_IsNull(vm)) {
        if (!cJSON_IsBool(vm)) {
            http_error(r, 422, "invalid_field", "%s.voicemail: must be true or false", kind);
            return -1;
        }
        rule->voicemail = cJSON_IsTrue(vm) ? 1 : 0;
    }

    rule->timeout = k == STORE_FWD_NO_ANSWER ? TIMEOUT_DEFAULT : 0;
    const cJSON *to = cJSON_GetObjectItemCaseSensitive(obj, "timeout");
    if (to && !cJSON_IsNull(to)) {
        double v = cJSON_IsNumber(to) ? to->valuedouble : 0;
        /* Range first: converting a huge double to an integer type is undefined. */
        if (!cJSON_IsNumber(to) || !(v >= TIMEOUT_MIN && v <= TIMEOUT_MAX) || v != (double)(int)v) {
            http_error(r, 422, "invalid_field", "%s.timeout: must be an integer from %d to %d",
                       kind, TIMEOUT_MIN, TIMEOUT_MAX);
            return -1;
        }
        rule->timeout = (int)v;
    }
    return 0;
}

/* ---- PUT ---- */

void api_forwarding_put(struct http_req *r)
{
    if (path_user(r) != 0)
        return;
    const char *ext = r->param;
    static const char *const fields[] = {"unconditional", "busy", "no_answer", "unavailable", NULL};
    cJSON *body = http_body_object(r, fields);
    if (!body)
        return;
    /* Replaces all four: a kind left out of the body is switched off. */
    struct store_forward f;
    memset(&f, 0, sizeof f);
    f.rule[STORE_FWD_NO_ANSWER].timeout = TIMEOUT_DEFAULT;
    for (int k = 0; k < STORE_FWD_KINDS; k++) {
        const cJSON *obj = cJSON_GetObjectItemCaseSensitive(body, store_forward_kinds[k]);
        if (obj && read_rule(r, obj, k, &f.rule[k]) != 0)
            goto out;
    }
    for (int k = 0; k < STORE_FWD_KINDS; k++) {
        char field[32];
        snprintf(field, sizeof field, "%s.target", store_forward_kinds[k]);
        /* To voicemail a target is not needed, and one given is only kept for later: it is
         * checked like the target of a rule that is off. */
        if (http_check_target(r, ext, field, f.rule[k].target,
                              f.rule[k].enabled && !f.rule[k].voicemail) != 0)
            goto out;
    }

    int rc = store_forward_set(r->st, ext, &f);
    if (rc == ENOENT) {
        http_error(r, 404, "not_found", "no user %s", ext);
        goto out;
    }
    if (rc != 0 || store_forward_get(r->st, ext, &f) != 0) {
        http_store_error(r);
        goto out;
    }
    http_users_changed(r->h);
    log_info("http: forwarding of %s changed", ext);
    http_json(r, 200, rules_json(&f));
out:
    cJSON_Delete(body);
}
