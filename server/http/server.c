/* The libmicrohttpd daemon: binding the listen socket, collecting request bodies, running
 * each request's handler (at once, or on a handler thread when it may wait), parking the
 * connections whose answer waits, and queueing each request's one reply. A pool of
 * database connections serves all threads. docs/architecture.md, "HTTP threads", says why
 * it is built this way. */
#include "http/http_int.h"
#include "cert/cert.h"
#include "config/config.h"
#include "events/events.h"
#include "store/store.h"
#include "util/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LISTEN_BACKLOG 511 /* connections the kernel holds while all slots are taken */
#define SWEEP_MS       250 /* how often deadlines are checked */
#define FD_SHARE       2   /* HTTP connections get at most 1/FD_SHARE of the fd limit */
#define MHD_SLACK      16  /* over the limit: cut connections that are not closed yet */

/* One request on its way through the server (microhttpd's con_cls): its body as it comes,
 * then the request, then its reply, possibly made on a handler thread or held back. */
struct call {
    int started; /* the access handler has seen its headers */
    int nul;     /* the URI holds %00, which libmicrohttpd would decode to a NUL */
    char *uri;   /* the URI as sent (for a redirect to HTTPS), or NULL */
    char *body;
    size_t len;
    size_t max; /* the largest body this request may send */
    int too_large;
    int large_upload; /* holds h->large_upload */
    enum { CALL_READING, CALL_RUNNING, CALL_ANSWERED } state;
    struct http_req req;
    http_handler handle;
    struct http_job job;   /* for a handler thread */
    struct http_wait wait; /* parked while RUNNING, or ANSWERED and held back */
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct store *http_pool_get(struct http *h)
{
    struct store *st = NULL;
    pthread_mutex_lock(&h->pool_lock);
    if (h->npool > 0)
        st = h->pool[--h->npool];
    pthread_mutex_unlock(&h->pool_lock);
    if (st)
        return st;
    char err[512];
    if (store_open(&st, h->db_path, 0, err, sizeof err) != 0) {
        log_error("http: %s", err);
        return NULL;
    }
    return st;
}

void http_pool_put(struct http *h, struct store *st)
{
    pthread_mutex_lock(&h->pool_lock);
    if (h->npool < HTTP_POOL_MAX) {
        h->pool[h->npool++] = st;
        st = NULL;
    }
    pthread_mutex_unlock(&h->pool_lock);
    store_close(st);
}

static void client_address(struct MHD_Connection *c, char *out, size_t outlen)
{
    snprintf(out, outlen, "?");
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)outlen);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
                  (socklen_t)outlen);
}

/* Queues r's reply (a 500 when the handler set none) and counts it. */
static enum MHD_Result send_reply(struct http_req *r)
{
    if (r->status == 0)
        http_error(r, 500, "internal", "the request was not answered");
    struct MHD_Response *resp;
    if (r->stream) {
        resp = r->stream;
        r->stream = NULL;
    } else if (r->reply) {
        resp = MHD_create_response_from_buffer(r->reply_len, r->reply, MHD_RESPMEM_MUST_FREE);
        if (resp)
            r->reply = NULL; /* MHD frees it now */
    } else {
        resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    }
    if (!resp)
        return MHD_NO;
    if (r->content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    int cache_set = 0; /* API answers are never cached; static files say otherwise */
    for (int i = 0; i < r->nheaders; i++) {
        MHD_add_response_header(resp, r->headers[i].name, r->headers[i].value);
        cache_set |= strcasecmp(r->headers[i].name, MHD_HTTP_HEADER_CACHE_CONTROL) == 0;
    }
    if (!cache_set)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (r->secure && r->h->cfg.hsts_max_age > 0) {
        /* Browsers that saw this come back over HTTPS only (RFC 6797). No includeSubDomains:
         * other hosts of the domain are not ours to decide for. */
        char hsts[48];
        snprintf(hsts, sizeof hsts, "max-age=%d", r->h->cfg.hsts_max_age);
        MHD_add_response_header(resp, "Strict-Transport-Security", hsts);
    }
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    if (r->status >= 100 && r->status < 600)
        atomic_fetch_add_explicit(&r->h->responses[r->status], 1, memory_order_relaxed);
    log_debug("http: %s %s %s -> %d", r->client, r->method, r->path, r->status);
    return ret;
}

static void req_init(struct http_req *r, struct http_listener *l, struct MHD_Connection *c,
                     const char *method, const char *url)
{
    memset(r, 0, sizeof *r);
    r->h = l->h;
    r->secure = l->secure;
    r->conn = c;
    r->method = method;
    r->path = url;
    client_address(c, r->client, sizeof r->client);
}

/* Queues the reply of a request answered before its body is read (the request, whole or
 * not, is done with as far as the deadline goes). */
static enum MHD_Result reply_early(struct http_req *r)
{
    http_conns_request_read(r->h->conns, r->conn);
    enum MHD_Result ret = send_reply(r);
    free(r->reply);
    return ret;
}

/* max 0: a second large upload while one is received (see on_request). */
static enum MHD_Result reply_too_large(struct http_listener *l, struct MHD_Connection *c,
                                       const char *method, const char *url, size_t max)
{
    struct http_req r;
    req_init(&r, l, c, method, url);
    if (max == 0) {
        http_header(&r, "Retry-After", "5");
        http_error(&r, 503, "unavailable",
                   "another large upload (a user import or a greeting) is being received: try "
                   "again in a few seconds");
    } else {
        http_error(&r, 413, "body_too_large", "the request body is larger than %zu bytes", max);
    }
    return reply_early(&r);
}

/* ---- plain HTTP while HTTPS is on ---- */

/* The host to name in a redirect: the Host header's when it is a plain host name, IPv4 or
 * bracketed IPv6 address (nothing that could break the header), else the HTTPS address,
 * the host's own for a wildcard. */
static void redirect_host(struct http_req *r, char *out, size_t outlen)
{
    const char *host = http_req_header(r, MHD_HTTP_HEADER_HOST);
    size_t n = 0;
    if (host && host[0] == '[') {
        n = strspn(host + 1, "0123456789abcdefABCDEF:.");
        n = host[1 + n] == ']' && n > 0 ? n + 2 : 0;
    } else if (host) {
        n = strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-");
    }
    if (n > 0 && n < outlen && n < 256 && (host[n] == '\0' || host[n] == ':')) {
        snprintf(out, outlen, "%.*s", (int)n, host);
        return;
    }
    const char *h = r->h->cfg.https_host;
    char addr[CONFIG_STR_MAX];
    if (!h[0] || strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0)
        config_primary_address(addr, sizeof addr);
    else
        snprintf(addr, sizeof addr, "%s", h);
    snprintf(out, outlen, strchr(addr, ':') ? "[%s]" : "%s", addr);
}

/* out = https://HOST[:PORT]PATH, HOST as redirect_host says. */
static void https_url(struct http_req *r, const char *path, char *out, size_t outlen)
{
    char host[300];
    redirect_host(r, host, sizeof host);
    int port = r->h->tls.port;
    if (port == 443)
        snprintf(out, outlen, "https://%s%s", host, path);
    else
        snprintf(out, outlen, "https://%s:%d%s", host, port, path);
}

/* True when uri is the kind of request target a Location may repeat: origin-form, printable
 * ASCII without spaces. */
static int uri_ok(const char *uri)
{
    if (!uri || uri[0] != '/')
        return 0;
    for (const char *p = uri; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return 0;
    return 1;
}

/* A request on plain HTTP while HTTPS is on: 0 when it is answered here anyway (the health
 * check), else its reply is set: page loads (GET/HEAD outside the API) are redirected to the
 * same URL over HTTPS; everything else, the API above all, gets 403 naming the HTTPS URL. A
 * redirect would have the client send its token or cookie in clear first, and repeat a POST's
 * body: an API client must be told to change its URL instead. */
static int plain_refused(struct http_req *r, const char *uri)
{
    if (strcmp(r->path, "/api/v1/health") == 0)
        return 0;
    char url[HTTP_URI_KEPT + 400];
    int page = (strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0) &&
               strncmp(r->path, "/api/", 5) != 0 && strcmp(r->path, "/api") != 0 &&
               strcmp(r->path, "/metrics") != 0;
    if (page) {
        https_url(r, uri_ok(uri) ? uri : "/", url, sizeof url);
        http_header(r, MHD_HTTP_HEADER_LOCATION, url);
        char *text = NULL;
        if (asprintf(&text, "Moved to %s\n", url) < 0)
            text = NULL;
        if (text)
            http_text(r, 301, "text/plain; charset=utf-8", text, strlen(text));
        else
            http_empty(r, 301);
        return 1;
    }
    https_url(r, "/api/v1", url, sizeof url);
    http_error(r, 403, "https_required",
               "this server takes API requests over HTTPS only: use %s (plain HTTP would carry "
               "your credentials in clear)",
               url);
    return 1;
}

/* ---- parking connections ---- */

/* Wakes the watch thread; any thread. */
static void wake_watch(void *arg)
{
    struct http *h = arg;
    uint64_t one = 1;
    if (write(h->wake_fd, &one, sizeof one) < 0) {
        /* the counter is full: the thread is awake anyway */
    }
}

/* An event was published (on the publisher's thread, under the ring's lock): the watch
 * thread resumes the streams it is news to. Nothing to do while no stream is open, which
 * spares the SIP thread a system call per event. */
static void on_event(void *arg, const char *type, const char *json)
{
    (void)type;
    (void)json;
    struct http *h = arg;
    if (atomic_load(&h->streams) > 0)
        wake_watch(h);
}

static void park_locked(struct http *h, struct http_wait *w)
{
    w->suspended = 1;
    w->prev = NULL;
    w->next = h->waits;
    if (h->waits)
        h->waits->prev = w;
    h->waits = w;
    MHD_suspend_connection(w->conn);
}

static void unpark_locked(struct http *h, struct http_wait *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        h->waits = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->suspended = 0;
    MHD_resume_connection(w->conn);
}

int http_suspend(struct http *h, struct http_wait *w)
{
    pthread_mutex_lock(&h->wait_lock);
    int stopping = atomic_load(&h->stopping);
    if (!stopping)
        park_locked(h, w);
    pthread_mutex_unlock(&h->wait_lock);
    if (stopping)
        return -1;
    if (w->wake_at_ms || w->watch)
        wake_watch(h); /* to wait for it from now on */
    return 0;
}

void http_resume(struct http *h, struct http_wait *w, int delay_ms)
{
    pthread_mutex_lock(&h->wait_lock);
    if (w->suspended) {
        if (delay_ms <= 0 || atomic_load(&h->stopping)) {
            unpark_locked(h, w);
        } else {
            w->wake_at_ms = mono_ms() + delay_ms;
            wake_watch(h);
        }
    }
    pthread_mutex_unlock(&h->wait_lock);
}

/* The watch thread: resumes parked connections whose time or events have come, or whose
 * client has closed (all of them, but those on a handler thread, once the server stops),
 * and sweeps the connection deadlines. It ends when the server stops and nothing is parked
 * any more. */
static void *watch_main(void *arg)
{
    struct http *h = arg;
    int64_t next_sweep = 0;
    /* the wake-up descriptor, then the sockets of parked event streams */
    struct pollfd fds[1 + HTTP_STREAMS_MAX + 16];
    for (;;) {
        int64_t now = mono_ms(), next = now + SWEEP_MS;
        nfds_t n = 1;
        fds[0] = (struct pollfd){.fd = h->wake_fd, .events = POLLIN};
        pthread_mutex_lock(&h->wait_lock);
        int stopping = atomic_load(&h->stopping);
        for (struct http_wait *w = h->waits, *nx; w; w = nx) {
            nx = w->next;
            int timed = w->wake_at_ms != 0;
            if ((stopping && (timed || w->watch)) || (timed && now >= w->wake_at_ms) ||
                (w->watch && events_head(w->watch) > w->seen)) {
                unpark_locked(h, w);
                continue;
            }
            if (timed && w->wake_at_ms < next)
                next = w->wake_at_ms;
            if (w->fd >= 0 && n < sizeof fds / sizeof fds[0])
                fds[n++] = (struct pollfd){.fd = w->fd, .events = POLLRDHUP};
        }
        int done = stopping && !h->waits;
        pthread_mutex_unlock(&h->wait_lock);
        if (done)
            break;
        if (now >= next_sweep) {
            http_conns_sweep(h->conns);
            next_sweep = now + SWEEP_MS;
        }
        if (next > next_sweep)
            next = next_sweep;
        int64_t wait = next - mono_ms();
        if (poll(fds, n, stopping ? 50 : (int)(wait > 0 ? wait : 0)) <= 0)
            continue;
        uint64_t count;
        if ((fds[0].revents & POLLIN) && read(h->wake_fd, &count, sizeof count) < 0) {
            /* nothing to read after all */
        }
        /* A client that closed its parked stream: resumed, the stream sees it and ends
         * (libmicrohttpd does not watch a parked connection). */
        pthread_mutex_lock(&h->wait_lock);
        for (nfds_t i = 1; i < n; i++) {
            if (!fds[i].revents)
                continue;
            for (struct http_wait *w = h->waits; w; w = w->next)
                if (w->fd == fds[i].fd) {
                    unpark_locked(h, w);
                    break;
                }
        }
        pthread_mutex_unlock(&h->wait_lock);
    }
    return NULL;
}

/* ---- the request path ---- */

/* Queues the reply of k and lets go of its database connection. */
static enum MHD_Result answer(struct http *h, struct call *k)
{
    k->state = CALL_ANSWERED;
    enum MHD_Result ret = send_reply(&k->req);
    free(k->req.reply);
    k->req.reply = NULL;
    if (k->req.st) {
        http_pool_put(h, k->req.st);
        k->req.st = NULL;
    }
    return ret;
}

/* On a handler thread: runs the handler, then resumes the connection to send the reply
 * (later, when the handler asked to hold it back). */
static void run_job(struct http_job *job)
{
    struct call *k = (struct call *)(void *)((char *)job - offsetof(struct call, job));
    k->handle(&k->req);
    k->state = CALL_ANSWERED;
    http_resume(k->req.h, &k->wait, k->req.delay_ms);
}

/* Parks k's connection and queues its handler to a handler thread. Returns 0, or -1 after
 * setting a 503 reply (queue full, or the server is stopping). */
static int dispatch(struct http *h, struct call *k)
{
    k->state = CALL_RUNNING;
    k->job.run = run_job;
    k->wait.conn = k->req.conn;
    k->wait.wake_at_ms = 0;
    k->wait.watch = NULL;
    k->wait.fd = -1;
    /* Parked under the lock the handler thread needs to resume it: it cannot finish
     * before the connection is parked. */
    pthread_mutex_lock(&h->wait_lock);
    int rc = atomic_load(&h->stopping) ? EBUSY : http_jobs_submit(h->jobs, &k->job);
    if (rc == 0)
        park_locked(h, &k->wait);
    pthread_mutex_unlock(&h->wait_lock);
    if (rc == 0)
        return 0;
    k->state = CALL_READING;
    http_header(&k->req, "Retry-After", "1");
    http_error(&k->req, 503, "unavailable", "the server is busy: try again in a second");
    return -1;
}

/* True when uri holds "%00": libmicrohttpd decodes it to a NUL, which would cut the path
 * short ("/api/v1/users/101%00x" would act on user 101) or a query parameter. */
static int has_encoded_nul(const char *uri)
{
    for (const char *p = strchr(uri, '%'); p; p = strchr(p + 1, '%'))
        if (p[1] == '0' && p[2] == '0')
            return 1;
    return 0;
}

/* libmicrohttpd's URI log callback: the request line's target as sent, before it is split
 * and decoded. Makes the request's state (the access handler's con_cls). */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    (void)c;
    struct http_listener *l = cls;
    struct call *k = util_xcalloc(1, sizeof *k);
    k->nul = has_encoded_nul(uri);
    /* kept only where it is needed: plain HTTP redirecting to HTTPS */
    if (!l->secure && l->h->cfg.https_port && strlen(uri) <= HTTP_URI_KEPT)
        k->uri = util_xstrdup(uri);
    return k;
}

/* The larger body a request may send (the bulk import, a greeting), or 0 for the usual. */
static size_t large_upload_max(const char *method, const char *url)
{
    static const char users[] = "/api/v1/users/", greeting[] = "/voicemail/greeting";
    if (strcmp(method, "POST") == 0 && strcmp(url, HTTP_IMPORT_PATH) == 0)
        return HTTP_IMPORT_BODY_MAX;
    size_t n = strlen(url), u = sizeof users - 1, g = sizeof greeting - 1;
    if (strcmp(method, "PUT") == 0 && n > u + g && strncmp(url, users, u) == 0 &&
        strcmp(url + n - g, greeting) == 0 && memchr(url + u, '/', n - u - g) == NULL)
        return HTTP_GREETING_BODY_MAX;
    return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    struct http_listener *l = cls;
    struct http *h = l->h;
    struct call *k = *con_cls;

    if (!k->started) {
        /* First call: only the headers are known. What is refused whatever the body says
         * is refused now rather than read: an announced oversize body, an encoded NUL, the
         * API on plain HTTP while HTTPS is on. */
        k->started = 1;
        k->max = HTTP_BODY_MAX;
        const char *cl =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        unsigned long long announced = cl ? strtoull(cl, NULL, 10) : 0;
        /* A bulk import or a greeting may be larger, one at a time: a second one while the
         * first is read or served waits its turn (503) rather than doubling the memory. */
        size_t large = large_upload_max(method, url);
        if (large && announced > HTTP_BODY_MAX) {
            if (atomic_exchange(&h->large_upload, 1) == 0) {
                k->large_upload = 1;
                k->max = large;
            } else {
                k->max = 0;
            }
        }
        if (k->max == 0 || announced > k->max) {
            k->too_large = 1;
            return reply_too_large(l, c, method, url, k->max);
        }
        struct http_req r;
        req_init(&r, l, c, method, url);
        /* (answered now, a body is not read: libmicrohttpd closes the connection after) */
        if (k->nul) {
            http_error(&r, 400, "bad_request", "the URL holds an encoded NUL (%%00)");
            return reply_early(&r);
        }
        if (!l->secure && h->cfg.https_port && plain_refused(&r, k->uri))
            return reply_early(&r);
        return MHD_YES;
    }
    if (k->state == CALL_ANSWERED) /* resumed: the reply is ready */
        return answer(h, k);
    if (k->state == CALL_RUNNING) /* (not resumed before its handler is done) */
        return MHD_YES;
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (k->too_large || k->len + n > k->max) {
            k->too_large = 1; /* read and drop the rest; answer at the end */
            return MHD_YES;
        }
        char *nb = realloc(k->body, k->len + n);
        if (!nb)
            return MHD_NO;
        memcpy(nb + k->len, upload_data, n);
        k->body = nb;
        k->len += n;
        return MHD_YES;
    }
    http_conns_request_read(h->conns, c); /* all of it is in: its deadline is met */
    if (k->too_large)
        return reply_too_large(l, c, method, url, k->max);

    struct http_req *r = &k->req;
    req_init(r, l, c, method, url);
    r->body = k->body;
    r->body_len = k->len;
    r->st = http_pool_get(h);
    if (!r->st) {
        http_error(r, 503, "unavailable", "the database cannot be opened");
    } else {
        int waits = 0;
        k->handle = http_route_find(r, &waits);
        if (k->handle && waits) {
            if (dispatch(h, k) == 0)
                return MHD_YES; /* resumed when the handler thread is done */
        } else if (k->handle) {
            k->handle(r);
        }
    }
    if (r->delay_ms > 0) {
        k->state = CALL_ANSWERED;
        k->wait.conn = c;
        k->wait.watch = NULL;
        k->wait.fd = -1;
        k->wait.wake_at_ms = mono_ms() + r->delay_ms;
        if (http_suspend(h, &k->wait) == 0)
            return MHD_YES; /* answered when the time has come */
    }
    return answer(h, k);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)toe;
    struct http *h = cls;
    struct call *k = *con_cls;
    if (k) {
        free(k->req.reply);
        if (k->req.stream)
            MHD_destroy_response(k->req.stream);
        if (k->req.st)
            http_pool_put(h, k->req.st);
        if (k->large_upload)
            atomic_store(&h->large_upload, 0);
        free(k->body);
        free(k->uri);
        free(k);
        *con_cls = NULL;
    }
    http_conns_request_done(h->conns, c);
}

/* libmicrohttpd's last message on this thread: why MHD_start_daemon failed, which sets up
 * TLS on the calling thread. */
static _Thread_local char mhd_last[512];

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    snprintf(mhd_last, sizeof mhd_last, "%s", line);
    log_debug("microhttpd: %s", line);
}

/* Binds and listens on host:port ourselves, so that a port in use is reported as such (MHD
 * only says that starting failed). Returns the socket, or -1 with errno set. */
static int listen_on(const char *host, int port, int *bound_port)
{
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    hints.ai_socktype = SOCK_STREAM;
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    if (getaddrinfo(host[0] ? host : NULL, service, &hints, &ai) != 0 || !ai) {
        errno = EADDRNOTAVAIL;
        return -1;
    }
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0), one = 1, e = 0;
    if (fd < 0) {
        e = errno;
    } else {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
            e = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd < 0) {
        errno = e;
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    *bound_port = port;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        *bound_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                     : ((struct sockaddr_in *)&ss)->sin_port);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

/* Starts a daemon on the listening socket fd for l (plain or TLS). A few threads serve every
 * connection (epoll) and never wait: handlers that may wait run on the handler threads,
 * and connections whose answer waits (for a handler, a slowed log-in, the next event of a
 * stream) are parked, holding no thread. The accept policy and the connection
 * notifications (conns.c) enforce the limits per source and in all, shared by HTTP and
 * HTTPS, and the watch thread the request deadline (a TLS handshake counts into it).
 * libmicrohttpd's own limit, a little higher, only backs ours up while cut connections are
 * being closed. Returns the daemon, or NULL (mhd_last may say why). */
static struct MHD_Daemon *start_daemon(struct http *h, struct http_listener *l, int fd,
                                       int max_open)
{
    struct MHD_OptionItem tls[] = {
        {MHD_OPTION_HTTPS_MEM_KEY, 0, NULL},
        {MHD_OPTION_HTTPS_MEM_CERT, 0, NULL},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)HTTP_TLS_PRIORITIES},
        {MHD_OPTION_END, 0, NULL},
    };
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (l->secure) {
        flags |= MHD_USE_TLS;
        /* libmicrohttpd copies neither: the certificate outlives the server (http.h) */
        tls[0].ptr_value = (void *)cert_key_pem(h->https_cert);
        tls[1].ptr_value = (void *)cert_pem(h->https_cert);
    }
    mhd_last[0] = '\0';
    return MHD_start_daemon(
        flags, 0, http_conns_accept, h->conns, on_request, l, MHD_OPTION_ARRAY,
        l->secure ? tls : tls + 3, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)HTTP_IO_THREADS, MHD_OPTION_CONNECTION_LIMIT, (unsigned)(max_open + MHD_SLACK),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_IDLE_TIMEOUT, MHD_OPTION_URI_LOG_CALLBACK,
        on_uri, l, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_NOTIFY_CONNECTION,
        http_conns_notify, h->conns, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
}

int http_create(struct http **out, const struct config *cfg, const char *db_path,
                const char *domain, struct sip *sip, struct vm *vm, struct store_writer *w,
                struct events *ev, struct events *traces, const struct cert *https_cert,
                const struct cert *sip_cert, struct hooks *hooks, char *err, size_t errlen)
{
    struct http *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    h->wake_fd = -1;
    snprintf(h->db_path, sizeof h->db_path, "%s", db_path);
    snprintf(h->domain, sizeof h->domain, "%s", domain);
    h->cfg = *cfg;
    h->sip = sip;
    h->vm = vm;
    h->writer = w;
    h->events = ev;
    h->trace_events = traces;
    h->hooks = hooks;
    /* Event ids are this run's start in microseconds plus the sequence number, so an id
     * a client kept from an earlier run is never taken for one of this run. */
    h->event_id_base = (uint64_t)util_now() * 1000000u;
    pthread_mutex_init(&h->pool_lock, NULL);
    pthread_mutex_init(&h->wait_lock, NULL);
    char pw[33];
    util_password_generate(pw, 32);
    if (http_throttle_create(&h->throttle) != 0 ||
        util_password_hash(pw, h->dummy_hash, sizeof h->dummy_hash) != 0) {
        snprintf(err, errlen, "cannot set up the HTTP server: out of memory");
        goto fail;
    }

    http_static_init(h, cfg->web_root);

    /* Connections take a descriptor each; half the process's limit at most goes to them,
     * so that an attacker who opens more sockets than the daemon may have leaves the
     * database, SIP and the rest theirs. */
    struct rlimit rl;
    int max_open = HTTP_CONNECTIONS_MAX;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur / FD_SHARE < (rlim_t)max_open)
        max_open = (int)(rl.rlim_cur / FD_SHARE);
    if (max_open < 16)
        max_open = 16;
    int per_source = HTTP_PER_SOURCE_MAX < max_open / 2 ? HTTP_PER_SOURCE_MAX : max_open / 2;
    h->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int e = h->wake_fd < 0 ? errno : 0;
    if (!e)
        e = http_conns_create(&h->conns, max_open, per_source, HTTP_REQUEST_DEADLINE,
                              HTTP_KEEPALIVE_DEADLINE);
    if (!e)
        e = http_jobs_create(&h->jobs, HTTP_JOB_THREADS, HTTP_JOBS_QUEUED);
    if (!e && (e = pthread_create(&h->watch, NULL, watch_main, h)) == 0)
        h->watch_started = 1;
    if (e) {
        snprintf(err, errlen, "cannot set up the HTTP server: %s", strerror(e));
        goto fail;
    }
    if ((ev && (e = events_add_listener(ev, on_event, h)) != 0) ||
        (traces && (e = events_add_listener(traces, on_event, h)) != 0)) {
        snprintf(err, errlen, "cannot follow the event stream: %s", strerror(e));
        goto fail;
    }

    /* Both sockets are bound before either daemon starts: what the daemons' threads read
     * of h (the ports) is written by then. */
    h->plain = (struct http_listener){h, NULL, 0, 0};
    h->tls = (struct http_listener){h, NULL, 0, 1};
    int fd = listen_on(cfg->http_host, cfg->http_port, &h->plain.port), tls_fd = -1;
    if (fd < 0) {
        e = errno;
        snprintf(err, errlen, "cannot listen for HTTP on %s:%d: %s", cfg->http_host, cfg->http_port,
                 e == EADDRINUSE ? "port in use" : strerror(e));
        goto fail;
    }
    if (cfg->https_port) {
        if (!https_cert) {
            close(fd);
            snprintf(err, errlen, "HTTPS on %s:%d has no certificate", cfg->https_host,
                     cfg->https_port);
            goto fail;
        }
        h->https_cert = https_cert;
        if ((tls_fd = listen_on(cfg->https_host, cfg->https_port, &h->tls.port)) < 0) {
            e = errno;
            close(fd);
            snprintf(err, errlen, "cannot listen for HTTPS on %s:%d: %s", cfg->https_host,
                     cfg->https_port, e == EADDRINUSE ? "port in use" : strerror(e));
            goto fail;
        }
    }
    h->sip_cert = sip_cert;
    if (!(h->plain.mhd = start_daemon(h, &h->plain, fd, max_open))) {
        close(fd);
        if (tls_fd >= 0)
            close(tls_fd);
        snprintf(err, errlen, "cannot start the HTTP server on %s:%d: %s", cfg->http_host,
                 cfg->http_port, mhd_last[0] ? mhd_last : "libmicrohttpd refused");
        goto fail;
    }
    if (tls_fd >= 0 && !(h->tls.mhd = start_daemon(h, &h->tls, tls_fd, max_open))) {
        close(tls_fd);
        snprintf(err, errlen, "cannot start HTTPS on %s:%d with %s: %s", cfg->https_host,
                 cfg->https_port, cert_file(https_cert),
                 mhd_last[0] ? mhd_last : "libmicrohttpd refused");
        goto fail;
    }
    log_debug("http: at most %d connections, %d per source", max_open, per_source);
    *out = h;
    return 0;
fail:
    http_destroy(h);
    return -1;
}

int http_port(const struct http *h)
{
    return h->plain.port;
}

int http_https_port(const struct http *h)
{
    return h->tls.mhd ? h->tls.port : 0;
}

const char *http_web_root(const struct http *h)
{
    return h->web_root[0] ? h->web_root : NULL;
}

void http_destroy(struct http *h)
{
    if (!h)
        return;
    /* New connections wait no more; then nothing parks any more, event streams and held
     * answers are resumed (and end), the handler threads finish what is queued (some of it
     * may wait on the SIP thread, whose loop still runs), and the watch thread ends once
     * nothing is parked: libmicrohttpd must not be stopped with a connection parked. */
    struct MHD_Daemon *daemons[] = {h->plain.mhd, h->tls.mhd};
    for (int i = 0; i < 2; i++) {
        int lfd = daemons[i] ? MHD_quiesce_daemon(daemons[i]) : -1;
        if (lfd >= 0)
            close(lfd);
    }
    pthread_mutex_lock(&h->wait_lock);
    atomic_store(&h->stopping, 1);
    pthread_mutex_unlock(&h->wait_lock);
    if (h->events)
        events_remove_listener(h->events, on_event, h);
    if (h->trace_events)
        events_remove_listener(h->trace_events, on_event, h);
    http_jobs_destroy(h->jobs);
    if (h->watch_started) {
        wake_watch(h);
        pthread_join(h->watch, NULL);
    }
    for (int i = 0; i < 2; i++)
        if (daemons[i])
            MHD_stop_daemon(daemons[i]); /* closes every connection and joins its threads */
    http_conns_destroy(h->conns);
    for (int i = 0; i < h->npool; i++)
        store_close(h->pool[i]);
    http_throttle_destroy(h->throttle);
    if (h->wake_fd >= 0)
        close(h->wake_fd);
    pthread_mutex_destroy(&h->wait_lock);
    pthread_mutex_destroy(&h->pool_lock);
    free(h);
}
