/* The libmicrohttpd daemon: binding the listen socket, collecting request bodies, a pool
 * of database connections for the request threads, and queueing each request's one
 * reply. */
#include "http/http_int.h"
#include "config/config.h"
#include "events/events.h"
#include "store/store.h"
#include "util/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define CONNECTION_LIMIT   64
#define CONNECTION_TIMEOUT 30 /* seconds an idle keep-alive connection is kept */

/* What the server keeps for one request between the calls of the access handler. */
struct upload {
    char *body;
    size_t len;
    int too_large;
};

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
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    if (r->status >= 100 && r->status < 600)
        atomic_fetch_add_explicit(&r->h->responses[r->status], 1, memory_order_relaxed);
    log_debug("http: %s %s %s -> %d", r->client, r->method, r->path, r->status);
    return ret;
}

static void req_init(struct http_req *r, struct http *h, struct MHD_Connection *c,
                     const char *method, const char *url)
{
    memset(r, 0, sizeof *r);
    r->h = h;
    r->conn = c;
    r->method = method;
    r->path = url;
    client_address(c, r->client, sizeof r->client);
}

static enum MHD_Result reply_too_large(struct http *h, struct MHD_Connection *c, const char *method,
                                       const char *url)
{
    struct http_req r;
    req_init(&r, h, c, method, url);
    http_error(&r, 413, "body_too_large", "the request body is larger than %d bytes",
               HTTP_BODY_MAX);
    enum MHD_Result ret = send_reply(&r);
    free(r.reply);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    struct http *h = cls;
    struct upload *up = *con_cls;

    if (!up) {
        /* First call: only the headers are known. An announced oversize body is refused
         * now rather than read. */
        up = calloc(1, sizeof *up);
        if (!up)
            return MHD_NO;
        *con_cls = up;
        const char *cl =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > HTTP_BODY_MAX) {
            up->too_large = 1;
            return reply_too_large(h, c, method, url);
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (up->too_large || up->len + n > HTTP_BODY_MAX) {
            up->too_large = 1; /* read and drop the rest; answer at the end */
            return MHD_YES;
        }
        char *nb = realloc(up->body, up->len + n);
        if (!nb)
            return MHD_NO;
        memcpy(nb + up->len, upload_data, n);
        up->body = nb;
        up->len += n;
        return MHD_YES;
    }
    if (up->too_large)
        return reply_too_large(h, c, method, url);

    struct http_req r;
    req_init(&r, h, c, method, url);
    r.body = up->body;
    r.body_len = up->len;
    r.st = http_pool_get(h);
    if (!r.st)
        http_error(&r, 503, "unavailable", "the database cannot be opened");
    else
        http_route(&r);
    enum MHD_Result ret = send_reply(&r);
    free(r.reply);
    if (r.st)
        http_pool_put(h, r.st);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    struct upload *up = *con_cls;
    if (up) {
        free(up->body);
        free(up);
        *con_cls = NULL;
    }
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
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
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0) {
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

int http_create(struct http **out, const struct config *cfg, const char *db_path,
                const char *domain, struct sip *sip, struct store_writer *w, struct events *ev,
                struct events *traces, char *err, size_t errlen)
{
    struct http *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(h->db_path, sizeof h->db_path, "%s", db_path);
    snprintf(h->domain, sizeof h->domain, "%s", domain);
    h->cfg = *cfg;
    h->sip = sip;
    h->writer = w;
    h->events = ev;
    h->trace_events = traces;
    /* Event ids are this run's start in microseconds plus the sequence number, so an id
     * a client kept from an earlier run is never taken for one of this run. */
    h->event_id_base = (uint64_t)util_now() * 1000000u;
    pthread_mutex_init(&h->pool_lock, NULL);
    char pw[33];
    util_password_generate(pw, 32);
    if (http_throttle_create(&h->throttle) != 0 ||
        util_password_hash(pw, h->dummy_hash, sizeof h->dummy_hash) != 0) {
        snprintf(err, errlen, "cannot set up the HTTP server: out of memory");
        goto fail;
    }

    http_static_init(h, cfg->web_root);

    int fd = listen_on(cfg->http_host, cfg->http_port, &h->port);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot listen for HTTP on %s:%d: %s", cfg->http_host, cfg->http_port,
                 e == EADDRINUSE ? "port in use" : strerror(e));
        goto fail;
    }
    /* A thread per connection: a request may wait (on the SIP thread, or a slowed log-in)
     * without holding up the others, and an event stream holds its thread while it is
     * open. CONNECTION_LIMIT bounds the threads; HTTP_STREAMS_MAX of them at most go to
     * event streams, so a few dashboards cannot starve ordinary requests. */
    h->mhd = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG, 0,
        NULL, NULL, on_request, h, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_TIMEOUT,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_END);
    if (!h->mhd) {
        close(fd);
        snprintf(err, errlen, "cannot start the HTTP server on %s:%d", cfg->http_host,
                 cfg->http_port);
        goto fail;
    }
    *out = h;
    return 0;
fail:
    http_destroy(h);
    return -1;
}

int http_port(const struct http *h)
{
    return h->port;
}

const char *http_web_root(const struct http *h)
{
    return h->web_root[0] ? h->web_root : NULL;
}

void http_destroy(struct http *h)
{
    if (!h)
        return;
    /* Event streams notice this within their wait (events.c) and end, so that the
     * connection threads they hold can be joined. */
    atomic_store(&h->stopping, 1);
    if (h->mhd)
        MHD_stop_daemon(h->mhd); /* joins the connection threads, closes the socket */
    for (int i = 0; i < h->npool; i++)
        store_close(h->pool[i]);
    http_throttle_destroy(h->throttle);
    pthread_mutex_destroy(&h->pool_lock);
    free(h);
}
