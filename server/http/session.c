/* /api/v1/session: admin log-in and log-out for the dashboard. A log-in sets an HttpOnly,
 * SameSite=Strict cookie (Secure over HTTPS) and returns the CSRF token that state-changing
 * requests made with that cookie must send in X-CSRF-Token. */
#include "http/http_int.h"
#include "util/util.h"

#include <errno.h>
#include <stdio.h>

static cJSON *session_json(const struct http_req *r)
{
    cJSON *o = cJSON_CreateObject();
    if (r->auth == HTTP_AUTH_TOKEN) {
        cJSON_AddStringToObject(o, "auth", "token");
        cJSON_AddNumberToObject(o, "token_id", (double)r->token.id);
        cJSON_AddStringToObject(o, "token_name", r->token.name);
        return o;
    }
    cJSON_AddStringToObject(o, "auth", "session");
    cJSON_AddStringToObject(o, "username", r->session.username);
    cJSON_AddStringToObject(o, "csrf_token", r->session.csrf);
    http_add_time(o, "expires_at", r->session.expires_at);
    return o;
}

void api_session_get(struct http_req *r)
{
    http_json(r, 200, session_json(r));
}

/* The 429 of a log-in that may not be tried now. */
static void throttled(struct http_req *r, int wait)
{
    char secs[16];
    snprintf(secs, sizeof secs, "%d", wait);
    http_header(r, "Retry-After", secs);
    http_error(r, 429, "too_many_attempts",
               "too many failed log-ins from %s: try again in %d seconds", r->client, wait);
    atomic_fetch_add(&r->h->logins[HTTP_LOGIN_THROTTLED], 1);
}

void api_session_create(struct http_req *r)
{
    static const char *const fields[] = {"username", "password", NULL};
    cJSON *body = http_body_object(r, fields);
    if (!body)
        return;
    const char *user = NULL, *pw = NULL;
    if (http_field_string(r, body, "username", 1, STORE_NAME_MAX - 1, 0, &user) < 0 ||
        http_field_string(r, body, "password", 1, 1024, 0, &pw) < 0) {
        cJSON_Delete(body);
        return;
    }
    /* Reserved before the hash is computed: parallel attempts get no more passwords
     * checked than the failures the address still has. */
    int wait = http_throttle_reserve(r->h->throttle, r->client);
    if (wait > 0) {
        cJSON_Delete(body);
        throttled(r, wait);
        return;
    }
    char hash[256];
    int rc = store_admin_hash(r->st, user, hash, sizeof hash);
    if (rc != 0 && rc != ENOENT) {
        http_throttle_release(r->h->throttle, r->client);
        cJSON_Delete(body);
        http_store_error(r);
        return;
    }
    /* An unknown name costs the same hashing work as a wrong password. */
    int ok = util_password_verify(pw, rc == 0 ? hash : r->h->dummy_hash) && rc == 0;
    if (!ok) {
        log_warn("http: failed log-in as '%s' from %s", user, r->client);
        atomic_fetch_add(&r->h->logins[HTTP_LOGIN_FAILED], 1);
        cJSON_Delete(body);
        r->delay_ms = http_throttle_failed(r->h->throttle, r->client);
        http_error(r, 401, "invalid_credentials", "wrong username or password");
        return;
    }
    http_throttle_succeeded(r->h->throttle, r->client);

    int64_t now = util_now();
    store_session_purge(r->st, now);
    rc =
        store_session_create(r->st, user, now, now + HTTP_SESSION_IDLE, r->session_id, &r->session);
    cJSON_Delete(body);
    if (rc != 0) {
        http_store_error(r);
        return;
    }
    r->auth = HTTP_AUTH_SESSION;
    char cookie[256];
    /* Secure over HTTPS: the browser never sends it over plain HTTP (with HTTPS on, plain
     * HTTP serves no log-in anyway: docs/api.md, "HTTPS"). */
    snprintf(cookie, sizeof cookie, "%s=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%d%s",
             HTTP_SESSION_COOKIE, r->session_id, HTTP_SESSION_MAX, r->secure ? "; Secure" : "");
    http_header(r, "Set-Cookie", cookie);
    log_info("http: %s logged in from %s", r->session.username, r->client);
    atomic_fetch_add(&r->h->logins[HTTP_LOGIN_OK], 1);
    http_json(r, 200, session_json(r));
}

void api_session_delete(struct http_req *r)
{
    if (r->auth == HTTP_AUTH_SESSION) {
        int rc = store_session_delete(r->st, r->session_id);
        if (rc != 0 && rc != ENOENT) {
            http_store_error(r);
            return;
        }
    }
    char cookie[128];
    snprintf(cookie, sizeof cookie, "%s=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0%s",
             HTTP_SESSION_COOKIE, r->secure ? "; Secure" : "");
    http_header(r, "Set-Cookie", cookie);
    http_empty(r, 204);
}
