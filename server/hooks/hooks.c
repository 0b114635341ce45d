/* Webhooks: starting and stopping them, and what the REST API needs of them (event names,
 * URL check, secrets, a test delivery). See hooks.h for how events travel. */
#include "events/events.h"
#include "hooks/hooks_int.h"
#include "util/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *const hooks_event_names[HOOKS_EVENTS] = {
    [HOOKS_CALL_NEW] = "call.new",         [HOOKS_CALL_ANSWERED] = "call.answered",
    [HOOKS_CALL_ENDED] = "call.ended",     [HOOKS_REGISTRATION_CHANGED] = "registration.changed",
    [HOOKS_USER_CHANGED] = "user.changed",
};

/* Seconds before the next try after the n-th failed one: quick at first (a receiver that
 * restarts), then spread over about 4.7 hours in all (one that is down for maintenance). */
static const int backoff_s[HOOKS_ATTEMPTS_MAX - 1] = {5, 30, 120, 600, 1800, 3600, 10800};

int hooks_event_index(const char *name)
{
    for (int i = 0; i < HOOKS_EVENTS; i++)
        if (strcmp(name, hooks_event_names[i]) == 0)
            return i;
    return -1;
}

int hooks_backoff(int n)
{
    return n >= 1 && n < HOOKS_ATTEMPTS_MAX ? backoff_s[n - 1] : 0;
}

int hooks_create(struct hooks **out, const char *db_path, struct store_writer *w, struct events *ev,
                 char *err, size_t errlen)
{
    struct hooks *hk = calloc(1, sizeof *hk);
    if (!hk) {
        snprintf(err, errlen, "webhooks: out of memory");
        return -1;
    }
    snprintf(hk->db_path, sizeof hk->db_path, "%s", db_path);
    hk->w = w;
    hk->ev = ev;
    pthread_mutex_init(&hk->wanted_lock, NULL);
    struct store *st = NULL;
    int wanted = -1;
    if (store_open(&st, db_path, 0, err, errlen) == 0) {
        wanted = hooks_read_wanted(st);
        if (wanted < 0)
            snprintf(err, errlen, "webhooks: cannot read them from %s: %s", db_path,
                     store_errmsg(st));
        store_close(st);
    }
    if (wanted < 0)
        goto fail;
    atomic_store(&hk->wanted, (unsigned)wanted);
    /* Before any thread of ours (the sender, curl's resolver threads) exists. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(hk->multi = curl_multi_init())) {
        snprintf(err, errlen, "webhooks: cannot initialise libcurl");
        goto fail;
    }
    int rc = pthread_create(&hk->thread, NULL, hooks_sender_main, hk);
    if (rc != 0) {
        snprintf(err, errlen, "webhooks: cannot start the sending thread: %s", strerror(rc));
        goto fail;
    }
    hk->started = 1;
    if ((rc = events_add_listener(ev, hooks_on_event, hk)) != 0) {
        snprintf(err, errlen, "webhooks: cannot follow the event stream: %s", strerror(rc));
        goto fail;
    }
    hk->listening = 1;
    /* Last: from here on the writer calls into us, until it is destroyed. */
    store_writer_set_outbox(w, hooks_intake, hooks_committed, hk);
    *out = hk;
    return 0;
fail:
    hooks_destroy(hk);
    return -1;
}

void hooks_destroy(struct hooks *hk)
{
    if (!hk)
        return;
    /* The writer is gone by now (or was never told of us): it has queued every event of
     * the stream into the database. */
    if (hk->listening)
        events_remove_listener(hk->ev, hooks_on_event, hk);
    if (hk->started) {
        atomic_store(&hk->stopping, 1);
        curl_multi_wakeup(hk->multi);
        pthread_join(hk->thread, NULL);
    }
    if (hk->multi) {
        curl_multi_cleanup(hk->multi);
        curl_global_cleanup();
    }
    pthread_mutex_destroy(&hk->wanted_lock);
    free(hk);
}

void hooks_changed(struct hooks *hk, struct store *st)
{
    int wanted = hooks_read_wanted(st);
    pthread_mutex_lock(&hk->wanted_lock);
    if (wanted >= 0)
        atomic_store(&hk->wanted, (unsigned)wanted);
    atomic_fetch_add(&hk->generation, 1);
    pthread_mutex_unlock(&hk->wanted_lock);
    hooks_wake(hk);
}

int hooks_ping(struct hooks *hk, struct store *st, int64_t webhook_id, int64_t *delivery_id)
{
    cJSON *data = cJSON_CreateObject();
    if (data)
        cJSON_AddNumberToObject(data, "webhook_id", (double)webhook_id);
    char id[STORE_EVENT_ID_LEN];
    int64_t now = util_now_us();
    char *body = hooks_event_body("ping", data, now, id);
    if (!body)
        return EIO;
    int rc = store_delivery_add(st, webhook_id, "ping", id, body, now, delivery_id);
    free(body);
    if (rc == 0)
        hooks_wake(hk);
    return rc;
}

int hooks_url_check(const char *url, char *why, size_t whylen)
{
    if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0) {
        snprintf(why, whylen, "must start with http:// or https://");
        return -1;
    }
    if (url[strcspn(url, ":") + 3] == '/') {
        snprintf(why, whylen, "has no host"); /* "https:///x": curl would take "x" for it */
        return -1;
    }
    if (strlen(url) > STORE_WEBHOOK_URL_MAX) {
        snprintf(why, whylen, "at most %d characters", STORE_WEBHOOK_URL_MAX);
        return -1;
    }
    /* What the sender's curl will make of it: the same parser, so that what is accepted
     * here can be sent. */
    CURLU *u = curl_url();
    char *host = NULL;
    int rc = -1;
    if (!u) {
        snprintf(why, whylen, "cannot be checked (out of memory)");
        return -1;
    }
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, 0);
    if (uc != CURLUE_OK)
        snprintf(why, whylen, "not a URL: %s", curl_url_strerror(uc));
    else if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host || !*host)
        snprintf(why, whylen, "has no host");
    else
        rc = 0;
    curl_free(host);
    curl_url_cleanup(u);
    return rc;
}

int hooks_secret_new(char out[HOOKS_SECRET_LEN])
{
    unsigned char raw[32];
    int rc = util_random(raw, sizeof raw);
    if (rc != 0)
        return rc;
    char hex[2 * sizeof raw + 1];
    util_hex(hex, raw, sizeof raw);
    snprintf(out, HOOKS_SECRET_LEN, "whsec_%s", hex);
    return 0;
}

void hooks_sign(const char *secret, const char *body, size_t len, char *out, size_t outlen)
{
    unsigned char mac[32];
    char hex[65];
    util_hmac_sha256(secret, strlen(secret), body, len, mac);
    util_hex(hex, mac, sizeof mac);
    snprintf(out, outlen, "sha256=%s", hex);
}

void hooks_get_stats(struct hooks *hk, struct hooks_stats *out)
{
    out->delivered = atomic_load(&hk->delivered);
    out->retried = atomic_load(&hk->retried);
    out->given_up = atomic_load(&hk->given_up);
    out->in_flight = atomic_load(&hk->in_flight);
}
