/* The REST API (/api/v1) and the Prometheus endpoint (/metrics), served by libmicrohttpd
 * on threads of its own, with limits per source and a deadline per request. HTTP threads read and
 * write the database through their own connections, reach the SIP side only through sip.h's
 * thread-safe calls (sip_kick, sip_calls, sip_get_stats, sip_execute) and read its event stream. */
#ifndef SIPBX_HTTP_H
#define SIPBX_HTTP_H

#include <stddef.h>

struct cert;
struct config;
struct sip;
struct store_writer;
struct events;
struct hooks;
struct http;
struct vm;

/** Binds cfg's HTTP address (port 0 picks a free one), and its HTTPS address when
 *  cfg->https_port is set, and starts serving. db_path is the
 *  (already migrated) database, domain the digest realm for passwords set over REST, sip
 *  the running SIP side, vm voicemail (its mailboxes' counts and files), w the writer to
 *  poke after user changes, ev the event stream served as server-sent events (NULL:
 *  /api/v1/events answers 503), traces the stream of trace.changed events that
 *  /api/v1/events?trace=CALL_ID filters (NULL: such a request answers 503); https_cert the
 *  certificate HTTPS serves (needed when cfg->https_port is set, else ignored), sip_cert the
 *  one of SIP over TLS (NULL when that is off; shown by GET /api/v1/settings); hooks the
 *  webhooks to tell of changes to them (NULL: /api/v1/webhooks answers 503); all must
 *  outlive the server. cfg is copied (GET /api/v1/settings shows it). With HTTPS on, plain
 *  HTTP answers /api/v1/health, redirects the dashboard's pages to HTTPS and refuses the
 *  rest of the API with 403 (docs/api.md, "HTTPS").
 * Returns 0, or -1 with one readable line in err ("cannot listen for HTTP on ADDR:PORT: port in
 * use", "cannot listen for HTTPS on ADDR:PORT: port in use"). */
int http_create(struct http **out, const struct config *cfg, const char *db_path,
                const char *domain, struct sip *sip, struct vm *vm, struct store_writer *w,
                struct events *ev, struct events *traces, const struct cert *https_cert,
                const struct cert *sip_cert, struct hooks *hooks, char *err, size_t errlen);

/** The port the server is bound to. */
int http_port(const struct http *h);

/** The HTTPS port the server is bound to, or 0 when HTTPS is off. */
int http_https_port(const struct http *h);

/** The directory the dashboard is served from, or NULL when none was found. */
const char *http_web_root(const struct http *h);

/** Stops accepting, ends the event streams, waits for the requests on handler threads
 *  (some of which may wait on the SIP thread, at most its deadline, so its loop should
 *  still run) and frees everything. NULL is ignored. */
void http_destroy(struct http *h);

#endif
