/* The REST API (/api/v1) and the Prometheus endpoint (/metrics), served by libmicrohttpd
 * on threads of its own. HTTP threads read and write the database through their own
 * connections and reach the SIP side only through sip_kick() and sip_get_stats(). */
#ifndef SIPBX_HTTP_H
#define SIPBX_HTTP_H

#include <stddef.h>

struct config;
struct sip;
struct store_writer;
struct http;

/** Binds cfg's HTTP address (port 0 picks a free one) and starts serving. db_path is the
 *  (already migrated) database, domain the digest realm for passwords set over REST, sip
 *  the running SIP side, w the writer to poke after user changes; all must outlive the
 *  server. Returns 0, or -1 with one readable line in err ("cannot listen for HTTP on
 *  ADDR:PORT: port in use"). */
int http_create(struct http **out, const struct config *cfg, const char *db_path,
                const char *domain, struct sip *sip, struct store_writer *w, char *err,
                size_t errlen);

/** The port the server is bound to. */
int http_port(const struct http *h);

/** Stops accepting, waits for requests in progress (some of which may wait on the SIP
 *  thread, so its loop must still run) and frees everything. NULL is ignored. */
void http_destroy(struct http *h);

#endif
