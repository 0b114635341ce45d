/* Who may call the API: a Bearer token, or a session cookie plus its CSRF header on
 * state-changing requests. Also the per-address throttle of failed log-ins. */
#include "http/http_int.h"
#include "util/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Failed log-ins: each one is answered after THROTTLE_DELAY_MS times the failures so far
 * (at most THROTTLE_FAILURES times); THROTTLE_FAILURES failures within THROTTLE_WINDOW
 * seconds lock the address out for THROTTLE_LOCK seconds (429 with Retry-After, even with
 * the right password). A good log-in clears the count. An attempt is reserved before its
 * password is checked, so that parallel attempts cannot get more passwords checked than
 * the failures still allowed; one that finds them all reserved waits THROTTLE_BUSY
 * seconds. docs/api.md tells these numbers. */
#define THROTTLE_FAILURES  5
#define THROTTLE_WINDOW    600
#define THROTTLE_LOCK      300
#define THROTTLE_BUSY      2
#define THROTTLE_DELAY_MS  250
#define THROTTLE_MAX_ADDRS 4096 /* addresses tracked at once */

struct throttle {
    pthread_mutex_t lock;
    struct strmap *addrs; /* address -> struct attempts */
};

struct attempts {
    int failures;
    int pending;          /* attempts reserved whose password is being checked */
    int64_t window_start; /* monotonic seconds of the first failure counted */
    int64_t locked_until;
};

static void unauthorized(struct http_req *r, const char *fmt, const char *arg)
{
    http_header(r, "WWW-Authenticate", "Bearer realm=\"sipbx\"");
    http_error(r, 401, "unauthorized", fmt, arg);
}

static int check_token(struct http_req *r, const char *authz, int64_t now)
{
    if (strncasecmp(authz, "Bearer ", 7) != 0) {
        unauthorized(r, "%s", "use 'Authorization: Bearer TOKEN' or log in");
        return -1;
    }
    const char *tok = authz + 7;
    while (*tok == ' ')
        tok++;
    char buf[STORE_TOKEN_LEN + 1];
    size_t n = strcspn(tok, " ");
    if (n >= sizeof buf) {
        unauthorized(r, "%s", "invalid or revoked API token");
        return -1;
    }
    memcpy(buf, tok, n);
    buf[n] = '\0';
    int rc = store_token_check(r->st, buf, now, &r->token);
    if (rc == ENOENT) {
        unauthorized(r, "%s", "invalid or revoked API token");
        return -1;
    }
    if (rc != 0) {
        http_store_error(r);
        return -1;
    }
    r->auth = HTTP_AUTH_TOKEN;
    return 0;
}

static int state_changing(const char *method)
{
    return strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0 &&
           strcmp(method, "OPTIONS") != 0;
}

static int check_session(struct http_req *r, const char *sid, int64_t now)
{
    int rc = store_session_get(r->st, sid, now, &r->session);
    if (rc == 0 && now >= r->session.created_at + HTTP_SESSION_MAX) {
        store_session_delete(r->st, sid);
        rc = ENOENT;
    }
    if (rc == ENOENT) {
        unauthorized(r, "%s", "the session has expired or was ended: log in again");
        return -1;
    }
    if (rc != 0) {
        http_store_error(r);
        return -1;
    }
    if (state_changing(r->method)) {
        const char *csrf = http_req_header(r, "X-CSRF-Token");
        size_t len = strlen(r->session.csrf);
        if (!csrf || strlen(csrf) != len || util_ct_compare(csrf, r->session.csrf, len) != 0) {
            http_error(r, 403, "csrf",
                       "a session needs the X-CSRF-Token header (the csrf_token of the log-in) "
                       "on %s requests",
                       r->method);
            return -1;
        }
    }
    /* Slide the expiry forward, but write it at most once a minute. */
    if (r->session.expires_at - now < HTTP_SESSION_IDLE - 60) {
        int64_t until = now + HTTP_SESSION_IDLE;
        if (until > r->session.created_at + HTTP_SESSION_MAX)
            until = r->session.created_at + HTTP_SESSION_MAX;
        if (store_session_touch(r->st, sid, until) == 0)
            r->session.expires_at = until;
    }
    r->auth = HTTP_AUTH_SESSION;
    snprintf(r->session_id, sizeof r->session_id, "%s", sid);
    return 0;
}

int http_authenticate(struct http_req *r)
{
    int64_t now = util_now();
    /* A token wins over a cookie: scripts never need the CSRF header. */
    const char *authz = http_req_header(r, "Authorization");
    if (authz)
        return check_token(r, authz, now);
    const char *sid = MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND, HTTP_SESSION_COOKIE);
    if (sid && *sid)
        return check_session(r, sid, now);
    unauthorized(r, "%s",
                 "authentication required: send 'Authorization: Bearer TOKEN' or log in with "
                 "POST /api/v1/session");
    return -1;
}

/* ---- log-in throttle ---- */

int http_throttle_create(struct throttle **out)
{
    struct throttle *t = calloc(1, sizeof *t);
    if (!t || strmap_create(&t->addrs) != 0) {
        free(t);
        return ENOMEM;
    }
    pthread_mutex_init(&t->lock, NULL);
    *out = t;
    return 0;
}

void http_throttle_destroy(struct throttle *t)
{
    if (!t)
        return;
    strmap_destroy(t->addrs, free);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

static int drop_stale(const char *key, void *val, void *ctx)
{
    (void)key;
    struct attempts *a = val;
    int64_t now = *(const int64_t *)ctx;
    if (a->pending == 0 && a->locked_until <= now && now - a->window_start > THROTTLE_WINDOW) {
        free(a);
        return STRMAP_DROP;
    }
    return STRMAP_KEEP;
}

/* The entry of addr, made when missing; NULL when the table is full of addresses that
 * failed recently. Called with the lock held. */
static struct attempts *entry(struct throttle *t, const char *addr, int64_t now)
{
    struct attempts *a = strmap_get(t->addrs, addr);
    if (a)
        return a;
    if (strmap_count(t->addrs) >= THROTTLE_MAX_ADDRS)
        strmap_foreach(t->addrs, drop_stale, &now);
    if (strmap_count(t->addrs) >= THROTTLE_MAX_ADDRS)
        return NULL;
    a = util_xcalloc(1, sizeof *a);
    strmap_put(t->addrs, addr, a, NULL);
    a->window_start = now;
    return a;
}

int http_throttle_reserve(struct throttle *t, const char *addr)
{
    int64_t now = util_mono();
    int wait = 0;
    pthread_mutex_lock(&t->lock);
    struct attempts *a = entry(t, addr, now);
    if (a) {
        if (a->locked_until > now) {
            wait = (int)(a->locked_until - now);
        } else {
            if (a->pending == 0 && now - a->window_start > THROTTLE_WINDOW) {
                a->failures = 0;
                a->window_start = now;
            } else if (a->locked_until && a->failures >= THROTTLE_FAILURES) {
                a->failures = THROTTLE_FAILURES - 1; /* after a lock-out: one try at a time */
            }
            if (a->failures + a->pending >= THROTTLE_FAILURES)
                wait = THROTTLE_BUSY;
            else
                a->pending++;
        }
    }
    /* Without an entry (a full table) the attempt goes ahead and is only slowed. */
    pthread_mutex_unlock(&t->lock);
    return wait;
}

/* Ends the reservation of addr; the entry, or NULL when it had none. */
static struct attempts *unreserve(struct throttle *t, const char *addr)
{
    struct attempts *a = strmap_get(t->addrs, addr);
    if (a && a->pending > 0)
        a->pending--;
    return a;
}

int http_throttle_failed(struct throttle *t, const char *addr)
{
    int64_t now = util_mono();
    int failures = THROTTLE_FAILURES, locked = 0;
    pthread_mutex_lock(&t->lock);
    struct attempts *a = unreserve(t, addr);
    if (a) {
        failures = ++a->failures;
        if (failures >= THROTTLE_FAILURES) {
            locked = a->locked_until <= now;
            a->locked_until = now + THROTTLE_LOCK;
            failures = THROTTLE_FAILURES;
        }
    }
    pthread_mutex_unlock(&t->lock);
    if (locked)
        log_warn("http: %d failed log-ins from %s: refusing it for %d s", THROTTLE_FAILURES, addr,
                 THROTTLE_LOCK);
    return failures * THROTTLE_DELAY_MS;
}

void http_throttle_succeeded(struct throttle *t, const char *addr)
{
    pthread_mutex_lock(&t->lock);
    struct attempts *a = unreserve(t, addr);
    if (a) {
        a->failures = 0;
        a->window_start = util_mono();
        if (a->pending == 0)
            free(strmap_remove(t->addrs, addr));
    }
    pthread_mutex_unlock(&t->lock);
}

void http_throttle_release(struct throttle *t, const char *addr)
{
    pthread_mutex_lock(&t->lock);
    unreserve(t, addr);
    pthread_mutex_unlock(&t->lock);
}
