/* The sending thread: POSTs the queued deliveries with libcurl's multi interface, one at
 * a time per webhook and all webhooks at once, so a slow or dead receiver holds up only
 * its own deliveries. A try that is not answered 2xx within HOOKS_TIMEOUT_MS is tried
 * again after a backoff, HOOKS_ATTEMPTS_MAX times at most; each outcome is written back to
 * the delivery's row before the webhook's next delivery goes, so a restart sends again
 * only what was in flight (receivers deduplicate by event id). */
#include "hooks/hooks_int.h"
#include "util/util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RELOAD_MS          5000 /* the webhooks are read again this often (changes by hand) */
#define POLL_MAX_MS        1000 /* the longest the thread sleeps without looking */
#define MAINTAIN_MS        60000
#define RECORD_RETRY_MS    1000 /* an outcome that could not be written is tried again */
#define CONNECT_TIMEOUT_MS 5000
#define KEEP_FINISHED      1000  /* finished deliveries kept per webhook, at most */
#define KEEP_DAYS          7     /* and for this long */
#define PENDING_MAX        10000 /* deliveries waiting per webhook; older ones are given up */
#define US_PER_MS          1000
#define US_PER_S           1000000

/* A webhook as the sender knows it, with its delivery in flight. */
struct target {
    int64_t id;
    char url[STORE_WEBHOOK_URL_MAX + 1];
    char secret[STORE_WEBHOOK_SECRET_MAX];
    int listed;              /* in the latest reading of the table */
    int64_t due;             /* wall-clock time of its next pending delivery: 0 unknown, -1 none */
    int failing;             /* its last try failed (said once in the log, and its recovery) */
    int busy;                /* d is in flight, or its outcome is not written yet */
    int unrecorded;          /* the outcome below is to be written */
    struct store_delivery d; /* d.body is ours while busy */
    CURL *easy;
    struct curl_slist *headers;
    char errbuf[CURL_ERROR_SIZE];
    struct {
        int64_t at;
        enum store_delivery_state state;
        int64_t next_try;
        int status;
        char error[256];
    } outcome;
};

struct sender {
    struct hooks *hk;
    struct store *st;
    struct target **t;
    int n, cap;
    unsigned generation, wakes;                      /* of the hooks, as last acted upon */
    int64_t next_reload, next_maintain, next_record; /* monotonic ms */
    uint64_t lost_said;
};

void hooks_wake(struct hooks *hk)
{
    atomic_fetch_add(&hk->wakes, 1);
    curl_multi_wakeup(hk->multi);
}

static struct target *find(struct sender *s, int64_t id)
{
    for (int i = 0; i < s->n; i++)
        if (s->t[i]->id == id)
            return s->t[i];
    return NULL;
}

/* Ends t's transfer (when one runs) and frees what it held. */
static void transfer_end(struct sender *s, struct target *t)
{
    if (t->easy) {
        curl_multi_remove_handle(s->hk->multi, t->easy);
        curl_easy_cleanup(t->easy);
        atomic_fetch_sub(&s->hk->in_flight, 1);
    }
    curl_slist_free_all(t->headers);
    t->easy = NULL;
    t->headers = NULL;
}

static void target_free(struct sender *s, struct target *t)
{
    transfer_end(s, t);
    free(t->d.body);
    free(t);
}

static int list_one(const struct store_webhook *w, void *ctx)
{
    struct sender *s = ctx;
    struct target *t = find(s, w->id);
    if (!t) {
        if (s->n == s->cap) {
            int cap = s->cap ? 2 * s->cap : 8;
            struct target **grown = realloc(s->t, (size_t)cap * sizeof *grown);
            if (!grown)
                return ENOMEM;
            s->t = grown;
            s->cap = cap;
        }
        if (!(t = calloc(1, sizeof *t)))
            return ENOMEM;
        t->id = w->id;
        s->t[s->n++] = t;
    }
    /* A transfer under way keeps the URL and secret it started with. */
    snprintf(t->url, sizeof t->url, "%s", w->url);
    snprintf(t->secret, sizeof t->secret, "%s", w->secret);
    t->listed = 1;
    if (!t->busy)
        t->due = 0; /* look again: deliveries may have been added by hand */
    return 0;
}

/* Reads the webhooks again: new ones are added, deleted ones dropped (with a delivery in
 * flight: it went with its webhook). */
static void reload(struct sender *s)
{
    for (int i = 0; i < s->n; i++)
        s->t[i]->listed = 0;
    /* Which events are wanted, for changes made by hand; but never over what
     * hooks_changed wrote meanwhile from a newer reading. */
    s->generation = atomic_load(&s->hk->generation);
    int wanted = hooks_read_wanted(s->st);
    pthread_mutex_lock(&s->hk->wanted_lock);
    if (wanted >= 0 && atomic_load(&s->hk->generation) == s->generation)
        atomic_store(&s->hk->wanted, (unsigned)wanted);
    pthread_mutex_unlock(&s->hk->wanted_lock);
    if (store_webhook_list(s->st, list_one, s) != 0)
        return; /* the store said why; the old list stays until the next reading */
    int k = 0;
    for (int i = 0; i < s->n; i++) {
        if (s->t[i]->listed)
            s->t[k++] = s->t[i];
        else
            target_free(s, s->t[i]);
    }
    s->n = k;
}

/* Writes t's outcome to its delivery; t is free for its next delivery once it is written
 * (or its row is gone). */
static void record(struct sender *s, struct target *t)
{
    int rc = store_delivery_tried(s->st, t->d.id, t->outcome.at, t->outcome.state,
                                  t->outcome.next_try, t->outcome.status, t->outcome.error);
    if (rc != 0 && rc != ENOENT) {
        t->unrecorded = 1; /* kept until written: never sent again meanwhile */
        return;
    }
    if (t->unrecorded)
        log_info("webhooks: the outcome of delivery %" PRId64 " is written after all", t->d.id);
    t->unrecorded = 0;
    t->busy = 0;
    t->due = 0;
    free(t->d.body);
    t->d.body = NULL;
}

static size_t discard(char *p, size_t size, size_t n, void *ctx)
{
    (void)p;
    (void)ctx;
    return size * n; /* the answer's body says nothing we keep */
}

/* Adds a header; returns 0 or ENOMEM. */
static int add_header(struct target *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int add_header(struct target *t, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    struct curl_slist *l = curl_slist_append(t->headers, line);
    if (!l)
        return ENOMEM;
    t->headers = l;
    return 0;
}

/* Starts the POST of t->d. Returns 0, or an errno value (nothing started). */
static int transfer_start(struct sender *s, struct target *t)
{
    size_t len = strlen(t->d.body);
    char sig[80];
    hooks_sign(t->secret, t->d.body, len, sig, sizeof sig);
    t->errbuf[0] = '\0';
    if (add_header(t, "Content-Type: application/json") ||
        add_header(t, "Expect:") || /* no 100-continue round trip for a larger body */
        add_header(t, "X-Sipbx-Event: %s", t->d.event) ||
        add_header(t, "X-Sipbx-Event-Id: %s", t->d.event_id) ||
        add_header(t, "X-Sipbx-Delivery: %" PRId64, t->d.id) ||
        add_header(t, "X-Sipbx-Attempt: %d", t->d.attempts + 1) ||
        add_header(t, "X-Sipbx-Timestamp: %" PRId64, t->d.created_us / US_PER_S) ||
        add_header(t, "X-Sipbx-Signature: %s", sig) || !(t->easy = curl_easy_init())) {
        transfer_end(s, t);
        return ENOMEM;
    }
    CURL *e = t->easy;
    int bad = 0;
    bad |= curl_easy_setopt(e, CURLOPT_URL, t->url) != CURLE_OK;
    /* Only what the URL check allowed; never a redirect (3xx is a failed try), never a
     * proxy from the environment: the target is what the administrator entered. */
    bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PROXY, "") != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)HOOKS_TIMEOUT_MS) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_USERAGENT, "sipbx/" SIPBX_VERSION) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->d.body) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PRIVATE, t) != CURLE_OK;
    if (bad || curl_multi_add_handle(s->hk->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        t->easy = NULL;
        transfer_end(s, t);
        return EINVAL;
    }
    atomic_fetch_add(&s->hk->in_flight, 1);
    t->busy = 1;
    return 0;
}

/* Starts the next due delivery of every webhook that has none in flight. */
static void start_due(struct sender *s)
{
    int64_t now = util_now_us();
    for (int i = 0; i < s->n; i++) {
        struct target *t = s->t[i];
        if (t->busy || t->due < 0 || t->due > now)
            continue;
        int64_t due = -1;
        int rc = store_delivery_next(s->st, t->id, now, &t->d, &due);
        if (rc == ENOENT) {
            t->due = due; /* later, or -1: none until woken */
            continue;
        }
        if (rc != 0) {
            t->due = now + US_PER_S; /* the store said why; look again in a second */
            continue;
        }
        if (transfer_start(s, t) != 0) {
            log_error("webhooks: cannot start delivery %" PRId64 " to %s: out of memory", t->d.id,
                      t->url);
            free(t->d.body);
            t->d.body = NULL;
            t->due = now + US_PER_S;
        }
    }
}

/* The end of t's transfer with curl's result: the outcome, logged when it changes how the
 * webhook fares, then written. */
static void transfer_done(struct sender *s, struct target *t, CURLcode result)
{
    long code = 0;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
    int ok = result == CURLE_OK && code >= 200 && code < 300;
    int tries = t->d.attempts + 1;
    char *why = t->outcome.error;
    size_t whylen = sizeof t->outcome.error;
    if (ok)
        why[0] = '\0';
    else if (result == CURLE_OK && code >= 300 && code < 400)
        snprintf(why, whylen, "HTTP %ld: redirects are not followed", code);
    else if (result == CURLE_OK)
        snprintf(why, whylen, "HTTP %ld", code);
    else if (result == CURLE_OPERATION_TIMEDOUT)
        snprintf(why, whylen, "no answer within %d s", HOOKS_TIMEOUT_MS / 1000);
    else
        snprintf(why, whylen, "%s", t->errbuf[0] ? t->errbuf : curl_easy_strerror(result));
    t->outcome.at = util_now_us();
    t->outcome.status = result == CURLE_OK ? (int)code : 0;
    t->outcome.state = ok                            ? STORE_DELIVERY_DELIVERED
                       : tries >= HOOKS_ATTEMPTS_MAX ? STORE_DELIVERY_FAILED
                                                     : STORE_DELIVERY_PENDING;
    t->outcome.next_try = 0;
    if (t->outcome.state == STORE_DELIVERY_PENDING)
        t->outcome.next_try = t->outcome.at + (int64_t)hooks_backoff(tries) * US_PER_S;
    transfer_end(s, t);

    if (ok) {
        atomic_fetch_add(&s->hk->delivered, 1);
        if (t->failing)
            log_info("webhooks: %s answers again", t->url);
        t->failing = 0;
    } else if (t->outcome.state == STORE_DELIVERY_FAILED) {
        atomic_fetch_add(&s->hk->given_up, 1);
        log_warn("webhooks: delivery %" PRId64 " (%s) to %s given up after %d tries: %s", t->d.id,
                 t->d.event, t->url, tries, why);
        t->failing = 1;
    } else {
        atomic_fetch_add(&s->hk->retried, 1);
        if (!t->failing)
            log_warn("webhooks: delivery %" PRId64 " (%s) to %s failed: %s; tried again in %d s "
                     "(further failures of this webhook are in its delivery log)",
                     t->d.id, t->d.event, t->url, why, hooks_backoff(tries));
        t->failing = 1;
    }
    record(s, t);
}

/* Retention, once a minute: the delivery logs and queues are bounded. */
static void maintain(struct sender *s)
{
    int64_t now = util_now_us();
    for (int i = 0; i < s->n; i++) {
        int64_t n =
            store_delivery_prune(s->st, s->t[i]->id, now - (int64_t)KEEP_DAYS * 86400 * US_PER_S,
                                 KEEP_FINISHED, PENDING_MAX, now);
        if (n > 0)
            log_debug("webhooks: %" PRId64 " old deliveries of %s removed or given up", n,
                      s->t[i]->url);
    }
    uint64_t lost = atomic_load(&s->hk->lost);
    if (lost != s->lost_said) {
        log_error("webhooks: %llu event(s) not queued for lack of memory",
                  (unsigned long long)(lost - s->lost_said));
        s->lost_said = lost;
    }
}

/* How long the thread may sleep: until the next delivery due, at most POLL_MAX_MS. */
static int sleep_ms(struct sender *s)
{
    int64_t now = util_now_us(), ms = POLL_MAX_MS;
    for (int i = 0; i < s->n; i++) {
        const struct target *t = s->t[i];
        if (!t->busy && t->due >= 0 && (t->due - now) / US_PER_MS < ms)
            ms = t->due > now ? (t->due - now) / US_PER_MS + 1 : 0;
    }
    return (int)ms;
}

void *hooks_sender_main(void *arg)
{
    struct sender s = {.hk = arg};
    char err[512];
    if (store_open(&s.st, s.hk->db_path, 0, err, sizeof err) != 0) {
        log_error("webhooks: not sending: %s", err);
        return NULL;
    }
    while (!atomic_load(&s.hk->stopping)) {
        int64_t mono = util_mono_ms();
        if (atomic_load(&s.hk->generation) != s.generation || mono >= s.next_reload) {
            reload(&s); /* the first time round too: next_reload is 0 */
            s.next_reload = mono + RELOAD_MS;
        }
        /* A wake-up (new deliveries committed, a ping, the webhooks changed): every
         * webhook is looked at again. */
        unsigned wakes = atomic_load(&s.hk->wakes);
        if (wakes != s.wakes) {
            s.wakes = wakes;
            for (int i = 0; i < s.n; i++)
                if (!s.t[i]->busy)
                    s.t[i]->due = 0;
        }
        if (mono >= s.next_record) {
            for (int i = 0; i < s.n; i++)
                if (s.t[i]->unrecorded)
                    record(&s, s.t[i]);
            s.next_record = mono + RECORD_RETRY_MS;
        }
        start_due(&s);
        if (mono >= s.next_maintain) {
            maintain(&s);
            s.next_maintain = mono + MAINTAIN_MS;
        }
        curl_multi_poll(s.hk->multi, NULL, 0, sleep_ms(&s), NULL); /* hooks_wake ends it */
        int running = 0, left = 0;
        curl_multi_perform(s.hk->multi, &running);
        CURLMsg *m;
        while ((m = curl_multi_info_read(s.hk->multi, &left)) != NULL) {
            if (m->msg != CURLMSG_DONE)
                continue;
            struct target *t = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&t);
            if (t)
                transfer_done(&s, t, m->data.result);
        }
    }
    /* Stopping: transfers under way are dropped, their deliveries stay pending and go
     * again at the next start; outcomes not yet written get one more chance. */
    int dropped = 0;
    for (int i = 0; i < s.n; i++) {
        struct target *t = s.t[i];
        if (t->easy)
            dropped++;
        else if (t->unrecorded)
            record(&s, t);
        target_free(&s, t);
    }
    if (dropped)
        log_info("webhooks: %d delivery(ies) in flight at stop go again at the next start",
                 dropped);
    free(s.t);
    store_close(s.st);
    return NULL;
}
