/* Private to the http module: the server state, the request being answered, the route
 * handlers (one file per resource) and the helpers they share for JSON, errors, query
 * parameters and authentication. */
#ifndef SIPBX_HTTP_INT_H
#define SIPBX_HTTP_INT_H

#include "config/config.h"
#include "http/http.h"
#include "store/store.h"

#include <cJSON.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#define HTTP_BODY_MAX (64 * 1024) /* larger request bodies get 413 */
/* POST /api/v1/users/import may send this much (about 100,000 CSV rows); one such upload
 * at a time, so unauthenticated uploads (the body is read before the route checks the
 * credentials) cannot hold more than this. */
#define HTTP_IMPORT_BODY_MAX (4 * 1024 * 1024)
#define HTTP_IMPORT_PATH     "/api/v1/users/import"
/* PUT /api/v1/users/{ext}/voicemail/greeting takes a WAV file: a minute of CD-quality stereo
 * is about 10 MiB. It shares the one large upload at a time with the import. */
#define HTTP_GREETING_BODY_MAX (16 * 1024 * 1024)
#define HTTP_POOL_MAX          8   /* idle database connections kept for reuse */
#define HTTP_MAX_HEADERS       6   /* extra response headers per reply */
#define HTTP_PARAM_MAX         320 /* the {ext}/{id} part of a path (a Call-ID and ".pcap") */

#define HTTP_SESSION_COOKIE "sipbx_session"
#define HTTP_SESSION_IDLE   3600        /* a session unused this long ends (seconds) */
#define HTTP_SESSION_MAX    (12 * 3600) /* and any session ends this long after log-in */

#define HTTP_STREAMS_MAX 16 /* event streams open at once; more get 503 */

/* HTTPS (GnuTLS, through libmicrohttpd): TLS 1.2 and 1.3 only, AEAD ciphers only (AES-GCM,
 * ChaCha20-Poly1305), forward secrecy (ECDHE) on TLS 1.2, our order of preference. What
 * Mozilla's "intermediate" profile allows, less DHE and CBC. */
#define HTTP_TLS_PRIORITIES                                                                        \
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:"            \
    "+CHACHA20-POLY1305:-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:%SERVER_PRECEDENCE"
#define HTTP_URI_KEPT 2048 /* a longer URI is redirected to / rather than kept */

/* Threads and connections (server.c; docs/architecture.md, "HTTP threads"). */
#define HTTP_IO_THREADS       2     /* libmicrohttpd threads: every connection's I/O */
#define HTTP_JOB_THREADS      4     /* run the handlers that may wait */
#define HTTP_JOBS_QUEUED      64    /* waiting handlers queued at most; beyond: 503 */
#define HTTP_CONNECTIONS_MAX  512   /* open connections at most (fewer with fewer fds) */
#define HTTP_PER_SOURCE_MAX   32    /* open connections from one address (IPv6: /64) */
#define HTTP_REQUEST_DEADLINE 10000 /* ms from accept to a complete request (headers+body) */
#define HTTP_IDLE_TIMEOUT     15    /* s a connection may stay silent (libmicrohttpd's) */
#define HTTP_KEEPALIVE_DEADLINE                                                                    \
    16000 /* ms from an answer to the next request on its connection                               \
           */

struct throttle;
struct events;
struct http_conns;
struct http_jobs;

/* A connection parked while its answer waits: for a handler thread, until a time (a slowed
 * log-in answer) or for events (an idle event stream). No thread waits with it: the watch
 * thread (server.c) resumes it when its time or its events come, or the handler thread
 * when the answer is ready. */
struct http_wait {
    struct MHD_Connection *conn;
    int64_t wake_at_ms;   /* resume at this monotonic time (ms), or 0 */
    struct events *watch; /* resume once it holds an event after seen, or NULL */
    uint64_t seen;
    int fd;                        /* resume when the client closes this socket, or -1 */
    int suspended;                 /* server.c: while parked */
    struct http_wait *prev, *next; /* server.c: in the list of parked ones */
};

/* A handler to run on a handler thread (jobs.c), embedded in what it works on. */
struct http_job {
    void (*run)(struct http_job *job);
    struct http_job *next;
};

/* Log-in outcomes counted for /metrics. */
enum http_login_result {
    HTTP_LOGIN_OK,
    HTTP_LOGIN_FAILED,
    HTTP_LOGIN_THROTTLED,
    HTTP_LOGIN_RESULTS
};

/* One listening daemon: plain HTTP, or HTTPS. Its address is the access handler's cls, so a
 * request knows which it came by. */
struct http_listener {
    struct http *h;
    struct MHD_Daemon *mhd;
    int port;   /* bound */
    int secure; /* 1 for HTTPS */
};

struct cert;

struct http {
    struct http_listener plain;
    struct http_listener tls;      /* tls.mhd NULL when HTTPS is off */
    const struct cert *https_cert; /* HTTPS's certificate, or NULL */
    const struct cert *sip_cert;   /* SIP over TLS's, or NULL (GET /settings) */
    char db_path[256];
    char domain[256];
    struct config cfg; /* the daemon's settings, for GET /settings */
    struct sip *sip;
    struct vm *vm; /* voicemail: mailbox counts, its directory */
    struct store_writer *writer;
    struct events *events;       /* served at /api/v1/events, or NULL */
    struct events *trace_events; /* trace.changed, served at /api/v1/events?trace=, or NULL */
    struct hooks *hooks;         /* the webhooks (/api/v1/webhooks), or NULL */
    atomic_int streams;          /* event streams open now */
    atomic_int stopping;         /* set by http_destroy: event streams end, nothing parks */
    atomic_int large_upload;     /* 1 while a large upload (import, greeting) is read or served */
    struct http_conns *conns;    /* connection limits and deadlines */
    struct http_jobs *jobs;      /* handler threads */
    pthread_mutex_t wait_lock;   /* the parked connections */
    struct http_wait *waits;     /* parked now */
    int wake_fd;                 /* eventfd that wakes the watch thread */
    pthread_t watch;             /* resumes parked connections, sweeps deadlines */
    int watch_started;
    uint64_t event_id_base; /* added to event sequence numbers (see events.c) */
    pthread_mutex_t pool_lock;
    struct store *pool[HTTP_POOL_MAX]; /* idle connections; a request borrows one */
    int npool;
    struct throttle *throttle;       /* failed log-ins by address */
    char dummy_hash[256];            /* verified against for unknown admins, to even out timing */
    _Atomic uint64_t responses[600]; /* answered requests by status code */
    _Atomic uint64_t logins[HTTP_LOGIN_RESULTS]; /* POST /session, by outcome */
    char web_root[4096]; /* the dashboard's files (resolved), or "" for none */
};

enum http_auth_kind { HTTP_AUTH_NONE, HTTP_AUTH_TOKEN, HTTP_AUTH_SESSION };

/* One request and the reply being built for it. Handlers fill the reply through
 * http_json(), http_error() and friends; the server queues it once, counts it, and frees
 * it. */
struct http_req {
    struct http *h;
    struct MHD_Connection *conn;
    const char *method;
    const char *path;
    int secure;                  /* it came over HTTPS */
    char param[HTTP_PARAM_MAX];  /* the wildcard segment of the route, unescaped */
    char param2[HTTP_PARAM_MAX]; /* a second one ({id} of /users/{ext}/voicemail/{id}) */
    const char *body;            /* request body (not NUL-terminated), or NULL */
    size_t body_len;
    struct store *st; /* this request's database connection */
    char client[64];  /* source address, for throttling and logs */

    enum http_auth_kind auth;
    struct store_token token;              /* when auth is HTTP_AUTH_TOKEN */
    char session_id[STORE_SESSION_ID_LEN]; /* when auth is HTTP_AUTH_SESSION */
    struct store_session session;

    int delay_ms; /* hold the reply this long (a failed log-in), without holding a thread */
    int status;   /* 0 until a reply is set */
    char *reply;  /* malloc'd, owned by the request until queued */
    size_t reply_len;
    const char *content_type;
    struct MHD_Response *stream; /* a streamed reply (http_stream), owned until queued */
    int nheaders;
    struct {
        char name[32];
        char value[512];
    } headers[HTTP_MAX_HEADERS];
};

/* ---- routes.c ---- */

typedef void (*http_handler)(struct http_req *r);

/** Finds the route of r's method and path and authenticates r for it (unless the route is
 *  public). Returns the handler to run, with *waits set when it may wait (on the SIP
 *  thread, the writer, the write lock, a password hash), which makes it run on a handler
 *  thread; or NULL when r is answered already (404, 405, 401, 403, a dashboard file). */
http_handler http_route_find(struct http_req *r, int *waits);

/* ---- static.c: the dashboard's files ---- */

/** Resolves the web root into h->web_root: configured when given, else ../web next to the
 *  executable (a build directory in the source tree), else the installed SIPBX_WEB_DIR.
 *  Returns 0, or -1 (logged) when none holds an index.html; the dashboard is then 404. */
int http_static_init(struct http *h, const char *configured);
/** Answers GET/HEAD of a path outside /api/ from the web root ("/" is index.html). */
void http_static_get(struct http_req *r);

/* ---- reply.c: replies, JSON fields and query parameters ---- */

/** Sets a JSON reply; takes body (freed here). */
void http_json(struct http_req *r, int status, cJSON *body);
/** Sets an error reply {"error":{"code":code,"message":...}}. */
void http_error(struct http_req *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/** Sets the 503 reply for a call to the SIP side that failed: it did not answer within
 *  SIP_EXECUTE_TIMEOUT_MS (errno ETIMEDOUT; logged, at most once every 10 s) or was out of
 *  memory. */
void http_sip_error(struct http_req *r);
/** Sets a 500 reply for a failed store call (whose details the store already logged). */
void http_store_error(struct http_req *r);
/** Sets an empty reply, e.g. 204. */
void http_empty(struct http_req *r, int status);
/** Sets a reply of content type ctype; takes text (malloc'd, freed here). */
void http_text(struct http_req *r, int status, const char *ctype, char *text, size_t len);
/** Sets a streamed reply of content type ctype; takes resp (a response made with
 *  MHD_create_response_from_callback), which the server queues like any other. */
void http_stream(struct http_req *r, int status, const char *ctype, struct MHD_Response *resp);
/** Adds a response header (name and value are copied). */
void http_header(struct http_req *r, const char *name, const char *value);
/** Returns the value of request header name (case-insensitive), or NULL. */
const char *http_req_header(struct http_req *r, const char *name);
/** Returns query parameter name, or NULL. */
const char *http_query(struct http_req *r, const char *name);

/** Parses the body as a JSON object whose keys are all in allowed (NULL-terminated).
 *  Returns a new object for the caller to cJSON_Delete, or NULL after setting the error
 *  reply (415 when not sent as application/json, 400 for bad JSON, 422 for unknown
 *  fields). */
cJSON *http_body_object(struct http_req *r, const char *const *allowed);

/* Field readers: 1 when present and valid (value in *out), 0 when absent (and not
 * required), -1 after setting a 422 reply naming the field. */

/** A string of 1..maxlen bytes (0..maxlen when empty_ok) without control characters. */
int http_field_string(struct http_req *r, const cJSON *obj, const char *name, int required,
                      size_t maxlen, int empty_ok, const char **out);
/** A JSON true or false. */
int http_field_bool(struct http_req *r, const cJSON *obj, const char *name, int *out);
/** An integer in lo..hi, or null (when null_ok; *out is then 0). */
int http_field_int(struct http_req *r, const cJSON *obj, const char *name, int lo, int hi,
                   int null_ok, int *out);

/** Reads ?limit= (1..500, default 100) and ?cursor=; returns 0, or -1 after a 400 reply. */
int http_page_params(struct http_req *r, int *limit, const char **cursor);
/** A page of a list whose cursor is the id of its last item (tokens, webhook deliveries). */
struct http_id_page {
    cJSON *items;
    int limit, n, more;
    int64_t last;
};
/** Reads ?limit= and ?cursor= (an id this server returned; *after is 0 without one) and
 *  starts p; returns 0, or -1 after a 400 reply. */
int http_id_page_start(struct http_req *r, struct http_id_page *p, int64_t *after);
/** True, marking that more exist, when p holds limit items already: the store's callback
 *  then stops (returns -1). */
int http_id_page_full(struct http_id_page *p);
/** Adds item, whose id is id. */
void http_id_page_add(struct http_id_page *p, cJSON *item, int64_t id);
/** Answers with the page, or with the store's error when rc (the list's return) is
 *  neither 0 nor the -1 of a full page. Takes p's items. */
void http_id_page_reply(struct http_req *r, struct http_id_page *p, int rc);
/** Answers 201 with body and a Location header printf-formatted from fmt. */
void http_created(struct http_req *r, cJSON *body, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/** Wraps a list page: {"items":items,"next_cursor":next or null}; takes items. */
cJSON *http_page(cJSON *items, const char *next);
/** Adds key = the time t as "YYYY-MM-DDTHH:MM:SSZ" (UTC), or null when t is 0. */
void http_add_time(cJSON *obj, const char *key, int64_t t);
/** A positive decimal id from a path or cursor (1 to 18 digits, no sign, no leading zero);
 *  0 when s is not one. */
int64_t http_parse_id(const char *s);
/** Adds key = the time us as util_format_time_us writes it, or null when us is 0. */
void http_add_time_us(cJSON *obj, const char *key, int64_t us);
/** Hex-encodes a string into an opaque cursor (out holds 2*strlen(s)+1 bytes). */
void http_cursor_encode(char *out, size_t outlen, const char *s);
/** Decodes a cursor made by http_cursor_encode; returns 0 or -1 when malformed. */
int http_cursor_decode(char *out, size_t outlen, const char *cursor);

/* ---- server.c: parking connections ---- */

/** Parks w->conn (call it only from that connection's access handler or content reader)
 *  until http_resume, or w's time, or w's events. Returns 0, or -1 (nothing parked) once
 *  the server is stopping. */
int http_suspend(struct http *h, struct http_wait *w);
/** Resumes w's connection delay_ms from now (0: at once); any thread. Nothing when it is
 *  not parked. */
void http_resume(struct http *h, struct http_wait *w, int delay_ms);

/* ---- conns.c: connection limits ---- */

/** Limits of at most max_open connections, per_source from one source, and a request
 *  complete within deadline_ms of its connection's accept (keepalive_ms of the previous
 *  answer on the connection); returns 0 or ENOMEM. */
int http_conns_create(struct http_conns **out, int max_open, int per_source, int deadline_ms,
                      int keepalive_ms);
/** Frees it, once the daemon has closed every connection. */
void http_conns_destroy(struct http_conns *c);
/** libmicrohttpd's accept policy (cls: the http_conns): refuses a source over its limit;
 *  when all max_open are taken, cuts the connection that has waited longest for its
 *  request to make room, or refuses when every one has sent its request. */
enum MHD_Result http_conns_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen);
/** libmicrohttpd's MHD_OPTION_NOTIFY_CONNECTION (cls: the http_conns): tracks each
 *  connection from its start, its deadline running. */
void http_conns_notify(void *cls, struct MHD_Connection *mc, void **socket_context,
                       enum MHD_ConnectionNotificationCode toe);
/** The request on mc is complete: its deadline stops. */
void http_conns_request_read(struct http_conns *c, struct MHD_Connection *mc);
/** The answer on mc is sent: the deadline of its next request starts. */
void http_conns_request_done(struct http_conns *c, struct MHD_Connection *mc);
/** Cuts the connections past their deadline and writes the log lines due (at most one
 *  per source and minute). The watch thread calls it a few times a second. */
void http_conns_sweep(struct http_conns *c);

struct http_conns_stats {
    int open, max_open, per_source;
    uint64_t refused_source; /* refused: the source had per_source open */
    uint64_t refused_full;   /* refused: max_open open, each with its request in */
    uint64_t timed_out;      /* cut: request not complete by its deadline */
    uint64_t evicted;        /* cut early, to make room: request not complete */
};
/** The counters and gauges for /metrics. */
void http_conns_stats(struct http_conns *c, struct http_conns_stats *out);

/* ---- jobs.c: handler threads ---- */

/** Starts nthreads handler threads with a queue of at most max_queued; 0 or an errno. */
int http_jobs_create(struct http_jobs **out, int nthreads, int max_queued);
/** Queues job to run on a handler thread; 0, or EBUSY when the queue is full (or the
 *  threads are stopping). */
int http_jobs_submit(struct http_jobs *j, struct http_job *job);
/** Runs what is queued, stops the threads and frees it. */
void http_jobs_destroy(struct http_jobs *j);

/* ---- server.c: database connections for request threads ---- */

/** A database connection: an idle one of the pool or a new one; NULL (logged) when the
 *  database cannot be opened. Give it back with http_pool_put. */
struct store *http_pool_get(struct http *h);
/** Returns a connection to the pool (or closes it when the pool is full). */
void http_pool_put(struct http *h, struct store *st);

/* ---- auth.c: tokens, sessions, CSRF and log-in throttling ---- */

/** Authenticates r by Bearer token or session cookie (with the CSRF header on state-changing
 *  methods). Returns 0, or -1 after setting a 401/403 reply. */
int http_authenticate(struct http_req *r);
/** Creates the throttle table; returns 0 or ENOMEM. */
int http_throttle_create(struct throttle **out);
/** Frees the throttle table. */
void http_throttle_destroy(struct throttle *t);
/** Reserves a log-in attempt from addr before its password is checked. Returns 0 when it
 *  may go ahead (end the reservation with exactly one of http_throttle_failed,
 *  _succeeded or _release), else the seconds addr must wait: it is locked out, or as many
 *  attempts as may still fail are being checked now. */
int http_throttle_reserve(struct throttle *t, const char *addr);
/** Ends addr's reservation as a failed log-in; returns how many milliseconds to hold the
 *  answer. */
int http_throttle_failed(struct throttle *t, const char *addr);
/** Ends addr's reservation as a good log-in, which forgets its failures. */
void http_throttle_succeeded(struct throttle *t, const char *addr);
/** Ends addr's reservation without a verdict (the password could not be checked). */
void http_throttle_release(struct throttle *t, const char *addr);

/* ---- users.c ---- */

/** Hands a change of the users table (or of forward rules, which travel with it) to the
 *  SIP side and waits until it is in effect there (at most a couple of seconds). */
void http_users_changed(struct http *h);

/* ---- route handlers, one file per resource (their paths are in the table of routes.c);
 * each sets exactly one reply on r ---- */

void api_health_get(struct http_req *r);
void api_session_get(struct http_req *r);
void api_session_create(struct http_req *r);
void api_session_delete(struct http_req *r);
void api_users_list(struct http_req *r);
void api_users_create(struct http_req *r);
void api_users_get(struct http_req *r);
void api_users_patch(struct http_req *r);
void api_users_delete(struct http_req *r);
/* ---- users_import.c ---- */
void api_users_import(struct http_req *r);
void api_groups_list(struct http_req *r);
void api_groups_create(struct http_req *r);
void api_groups_get(struct http_req *r);
void api_groups_put(struct http_req *r);
void api_groups_delete(struct http_req *r);
void api_forwarding_get(struct http_req *r);
/** Checks target, the forward target of ext (a user or a ring group) named field in
 *  messages: well-formed always ("" only when not enabled), not ext itself, and, when
 *  enabled, an existing user or group if it names one of this PBX. Returns 0, or -1 after a
 *  422 (or 500) reply. */
int http_check_target(struct http_req *r, const char *ext, const char *field, const char *target,
                      int enabled);
void api_forwarding_put(struct http_req *r);
/* ---- voicemail.c ---- */
void api_voicemail_list(struct http_req *r);
void api_voicemail_get(struct http_req *r);
void api_voicemail_patch(struct http_req *r);
void api_voicemail_delete(struct http_req *r);
void api_voicemail_greeting_get(struct http_req *r);
void api_voicemail_greeting_put(struct http_req *r);
void api_voicemail_greeting_delete(struct http_req *r);
void api_voicemail_greeting_wav(struct http_req *r);
void api_registrations_list(struct http_req *r);
void api_registrations_delete(struct http_req *r);
void api_tokens_list(struct http_req *r);
void api_tokens_create(struct http_req *r);
void api_tokens_delete(struct http_req *r);
void api_cdrs_list(struct http_req *r);
void api_cdrs_csv(struct http_req *r);
void api_cdrs_summary(struct http_req *r);
void api_cdrs_stats(struct http_req *r);
void api_traces_get(struct http_req *r);
void api_calls_list(struct http_req *r);
/** GET /api/v1/presence[?extension=E]: every user's presence and busy lamp, from the SIP
 *  thread (http/presence.c). */
void api_presence_list(struct http_req *r);
void api_calls_get(struct http_req *r);
void api_calls_delete(struct http_req *r);
void api_events_get(struct http_req *r);
void api_settings_get(struct http_req *r);
void api_metrics_get(struct http_req *r);
void api_security_blocks_list(struct http_req *r);
void api_security_blocks_delete(struct http_req *r);
void api_security_targets_list(struct http_req *r);
/* ---- webhooks.c ---- */
void api_webhooks_list(struct http_req *r);
void api_webhooks_create(struct http_req *r);
void api_webhooks_get(struct http_req *r);
void api_webhooks_delete(struct http_req *r);
void api_webhooks_deliveries(struct http_req *r);
void api_webhooks_ping(struct http_req *r);
/* ---- openapi.c; the document itself is generated from docs/openapi.json ---- */
extern const char http_openapi_doc[];
extern const size_t http_openapi_doc_len;
void api_openapi_get(struct http_req *r);

#endif
