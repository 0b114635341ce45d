/* /metrics: counters and gauges in the Prometheus text format (version 0.0.4). */
#include "hooks/hooks.h"
#include "http/http_int.h"
#include "sip/sip.h"
#include "util/util.h"
#include "voicemail/vm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void header(struct buf *b, const char *name, const char *type, const char *help)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The process's resident size from /proc/self/statm (pages), or -1. */
static long resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, resident = -1;
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &resident) != 2)
            resident = -1;
        fclose(f);
    }
    return resident < 0 ? -1 : resident * sysconf(_SC_PAGESIZE);
}

void api_metrics_get(struct http_req *r)
{
    struct sip_stats ss;
    sip_get_stats(r->h->sip, &ss);
    struct buf b = {0};

    header(&b, "sipbx_build_info", "gauge", "Version of the running sipbx.");
    buf_printf(&b, "sipbx_build_info{version=\"%s\"} 1\n", SIPBX_VERSION);
    long resident = resident_bytes();
    if (resident >= 0) {
        header(&b, "process_resident_memory_bytes", "gauge",
               "Resident memory of the sipbx process (RSS), in bytes.");
        buf_printf(&b, "process_resident_memory_bytes %ld\n", resident);
    }
    header(&b, "sipbx_memory_pool_bytes", "gauge",
           "Memory the SIP thread's pools hold for what outlives a request: calls (the live "
           "calls and their busy-lamp entries) and nonces (answered nonces), in bytes.");
    buf_printf(&b, "sipbx_memory_pool_bytes{pool=\"calls\"} %llu\n", ss.pool_bytes[0]);
    buf_printf(&b, "sipbx_memory_pool_bytes{pool=\"nonces\"} %llu\n", ss.pool_bytes[1]);
    header(&b, "sipbx_sip_transactions", "gauge",
           "SIP transactions the stack holds now, server (requests received) and client "
           "(requests sent); over UDP a completed one is kept 32 s for retransmissions. "
           "Updated every second.");
    buf_printf(&b, "sipbx_sip_transactions{side=\"server\"} %llu\n", ss.transactions[0]);
    buf_printf(&b, "sipbx_sip_transactions{side=\"client\"} %llu\n", ss.transactions[1]);
    header(&b, "sipbx_registrations", "gauge", "SIP bindings (registered contacts) now.");
    buf_printf(&b, "sipbx_registrations %llu\n", ss.registrations);
    int users = store_user_count(r->st);
    if (users >= 0) {
        header(&b, "sipbx_users", "gauge", "SIP accounts.");
        buf_printf(&b, "sipbx_users %d\n", users);
    }
    struct sip_call_info *calls = NULL;
    int ncalls = sip_calls(r->h->sip, &calls);
    if (ncalls >= 0) {
        int active = 0;
        for (int i = 0; i < ncalls; i++)
            active += strcmp(calls[i].state, "ended") != 0;
        header(&b, "sipbx_calls_active", "gauge",
               "Calls in progress (trying, ringing or answered).");
        buf_printf(&b, "sipbx_calls_active %d\n", active);
    }
    free(calls);
    header(&b, "sipbx_calls_total", "counter",
           "Calls ended since start-up, by the disposition of their record.");
    for (int i = 0; i < SIP_DISPOSITIONS; i++)
        buf_printf(&b, "sipbx_calls_total{disposition=\"%s\"} %llu\n", sip_disposition_names[i],
                   ss.calls[i]);
    header(&b, "sipbx_sip_requests_total", "counter", "SIP requests received, by method.");
    for (int i = 0; i < SIP_METHOD_SLOTS; i++)
        buf_printf(&b, "sipbx_sip_requests_total{method=\"%s\"} %llu\n", sip_method_slot_names[i],
                   ss.requests[i]);
    header(&b, "sipbx_sip_responses_total", "counter", "SIP responses sent, by class.");
    for (int i = 1; i <= 6; i++)
        buf_printf(&b, "sipbx_sip_responses_total{class=\"%dxx\"} %llu\n", i, ss.responses[i]);
    header(&b, "sipbx_sip_auth_failures_total", "counter",
           "SIP requests refused for wrong or unknown credentials.");
    buf_printf(&b, "sipbx_sip_auth_failures_total %llu\n", ss.auth_failures);
    header(&b, "sipbx_sip_forged_in_dialog_total", "counter",
           "In-dialog requests refused because they are not of a dialog sipbx record-routed "
           "(no or a forged signed Route).");
    buf_printf(&b, "sipbx_sip_forged_in_dialog_total %llu\n", ss.forged_in_dialog);
    header(&b, "sipbx_trace_untraced_total", "counter",
           "Captured SIP messages not stored as traces: no request of their Call-ID was "
           "accepted (failed authentication, forged or malformed requests, probes).");
    buf_printf(&b, "sipbx_trace_untraced_total %llu\n", ss.untraced);
    header(&b, "sipbx_sip_connections_closed_total", "counter",
           "SIP TCP/TLS connections closed by the connection guard (nothing complete in 10 s, "
           "no accepted request in 32 s, or too many from one address).");
    buf_printf(&b, "sipbx_sip_connections_closed_total %llu\n", ss.conns_closed);
    header(&b, "sipbx_sip_blocked_sources", "gauge",
           "Addresses blocked now for failed SIP digest checks.");
    buf_printf(&b, "sipbx_sip_blocked_sources %llu\n", ss.blocked_sources);
    header(&b, "sipbx_sip_blocks_total", "counter",
           "Blocks started for failed SIP digest checks (since start-up).");
    buf_printf(&b, "sipbx_sip_blocks_total %llu\n", ss.blocks);
    header(&b, "sipbx_sip_blocked_requests_total", "counter",
           "SIP requests dropped unanswered because their address is blocked.");
    buf_printf(&b, "sipbx_sip_blocked_requests_total %llu\n", ss.blocked_requests);
    header(&b, "sipbx_sip_attacked_extensions", "gauge",
           "Extensions with at least sip_ban_failures failed digest checks in the window.");
    buf_printf(&b, "sipbx_sip_attacked_extensions %llu\n", ss.attacked_extensions);
    header(&b, "sipbx_sip_nonces_retired_total", "counter",
           "Digest nonces retired after too many wrong answers.");
    buf_printf(&b, "sipbx_sip_nonces_retired_total %llu\n", ss.nonces_retired);
    header(&b, "sipbx_sip_subscriptions", "gauge",
           "Active SIP event subscriptions (SUBSCRIBE dialogs), by event package.");
    for (int i = 0; i < SIP_EVENT_PACKAGES; i++)
        buf_printf(&b, "sipbx_sip_subscriptions{package=\"%s\"} %llu\n", sip_event_package_names[i],
                   ss.subscriptions[i]);
    header(&b, "sipbx_sip_notifies_sent_total", "counter",
           "NOTIFY requests sent to watchers (state changes, new, refreshed and ended "
           "subscriptions).");
    buf_printf(&b, "sipbx_sip_notifies_sent_total %llu\n", ss.notifies_sent);
    header(&b, "sipbx_presence_publications", "gauge",
           "Presence documents phones have published (PUBLISH) and that have not expired.");
    buf_printf(&b, "sipbx_presence_publications %llu\n", ss.publications);
    header(&b, "sipbx_http_requests_total", "counter", "HTTP requests answered, by status code.");
    for (int code = 100; code < 600; code++) {
        unsigned long long n = atomic_load_explicit(&r->h->responses[code], memory_order_relaxed);
        if (n)
            buf_printf(&b, "sipbx_http_requests_total{code=\"%d\"} %llu\n", code, n);
    }
    static const char *const login_results[HTTP_LOGIN_RESULTS] = {"ok", "failed", "throttled"};
    header(&b, "sipbx_http_logins_total", "counter",
           "Admin log-ins: ok, failed (wrong password checked) or throttled (429, not checked).");
    for (int i = 0; i < HTTP_LOGIN_RESULTS; i++)
        buf_printf(&b, "sipbx_http_logins_total{result=\"%s\"} %llu\n", login_results[i],
                   (unsigned long long)atomic_load(&r->h->logins[i]));
    struct http_conns_stats cs;
    http_conns_stats(r->h->conns, &cs);
    header(&b, "sipbx_http_connections", "gauge", "HTTP connections open now.");
    buf_printf(&b, "sipbx_http_connections %d\n", cs.open);
    header(&b, "sipbx_http_connections_max", "gauge",
           "HTTP connections the server holds at most (half the descriptor limit, at most 512).");
    buf_printf(&b, "sipbx_http_connections_max %d\n", cs.max_open);
    header(&b, "sipbx_http_connections_refused_total", "counter",
           "HTTP connections refused at once: their source had as many open as one may "
           "(source_limit), or the server was full of connections whose requests were in (full).");
    buf_printf(&b, "sipbx_http_connections_refused_total{reason=\"source_limit\"} %llu\n",
               (unsigned long long)cs.refused_source);
    buf_printf(&b, "sipbx_http_connections_refused_total{reason=\"full\"} %llu\n",
               (unsigned long long)cs.refused_full);
    header(&b, "sipbx_http_connections_timed_out_total", "counter",
           "HTTP connections cut because their request was not complete by its deadline.");
    buf_printf(&b, "sipbx_http_connections_timed_out_total %llu\n",
               (unsigned long long)cs.timed_out);
    header(&b, "sipbx_http_connections_evicted_total", "counter",
           "HTTP connections cut early, request not complete, to make room for a new one.");
    buf_printf(&b, "sipbx_http_connections_evicted_total %llu\n", (unsigned long long)cs.evicted);
    header(&b, "sipbx_http_event_streams", "gauge",
           "Server-sent event streams open now (dashboards, ladders, scripts).");
    buf_printf(&b, "sipbx_http_event_streams %d\n", atomic_load(&r->h->streams));
    struct vm_stats vs;
    vm_get_stats(r->h->vm, &vs);
    header(&b, "sipbx_voicemail_calls", "gauge", "Voicemail calls now (leaving or listening).");
    buf_printf(&b, "sipbx_voicemail_calls %d\n", vs.calls);
    header(&b, "sipbx_rtp_packets_sent_total", "counter",
           "RTP packets the media endpoint (voicemail) sent.");
    buf_printf(&b, "sipbx_rtp_packets_sent_total %llu\n", vs.rtp_sent);
    header(&b, "sipbx_rtp_packets_received_total", "counter",
           "RTP packets the media endpoint received (audio and telephone-events).");
    buf_printf(&b, "sipbx_rtp_packets_received_total %llu\n", vs.rtp_received);
    header(&b, "sipbx_rtp_late_ticks_total", "counter",
           "20 ms ticks of the media thread that came one or more ticks late (packets then "
           "went out together).");
    buf_printf(&b, "sipbx_rtp_late_ticks_total %llu\n", vs.late_ticks);
    uint64_t failed = 0;
    int64_t failing = store_writer_failing(r->h->writer, NULL, 0, &failed);
    header(&b, "sipbx_store_failing", "gauge",
           "1 while the database writer's commits fail (disk full, I/O error), else 0.");
    buf_printf(&b, "sipbx_store_failing %d\n", failing ? 1 : 0);
    header(&b, "sipbx_store_write_failures_total", "counter",
           "Batches the database writer could not commit (each retry counts).");
    buf_printf(&b, "sipbx_store_write_failures_total %llu\n", (unsigned long long)failed);
    header(&b, "sipbx_store_queue_depth", "gauge",
           "Rows queued for the database writer and not yet committed.");
    buf_printf(&b, "sipbx_store_queue_depth %zu\n", store_writer_depth(r->h->writer));
    int webhooks = store_webhook_count(r->st);
    int64_t pending = store_delivery_pending(r->st);
    if (webhooks >= 0 && pending >= 0) {
        header(&b, "sipbx_webhooks", "gauge", "Webhooks registered.");
        buf_printf(&b, "sipbx_webhooks %d\n", webhooks);
        header(&b, "sipbx_webhook_deliveries_pending", "gauge",
               "Webhook deliveries waiting to be sent or sent again.");
        buf_printf(&b, "sipbx_webhook_deliveries_pending %lld\n", (long long)pending);
    }
    if (r->h->hooks) {
        struct hooks_stats hs;
        hooks_get_stats(r->h->hooks, &hs);
        header(&b, "sipbx_webhook_deliveries_in_flight", "gauge",
               "Webhook deliveries being sent now.");
        buf_printf(&b, "sipbx_webhook_deliveries_in_flight %d\n", hs.in_flight);
        header(&b, "sipbx_webhook_attempts_total", "counter",
               "Webhook delivery tries since start-up: delivered (answered 2xx), retried (failed, "
               "to be tried again) or given_up (failed its last try).");
        buf_printf(&b, "sipbx_webhook_attempts_total{result=\"delivered\"} %llu\n",
                   (unsigned long long)hs.delivered);
        buf_printf(&b, "sipbx_webhook_attempts_total{result=\"retried\"} %llu\n",
                   (unsigned long long)hs.retried);
        buf_printf(&b, "sipbx_webhook_attempts_total{result=\"given_up\"} %llu\n",
                   (unsigned long long)hs.given_up);
    }

    if (b.failed) {
        free(b.p);
        http_error(r, 500, "internal", "out of memory");
        return;
    }
    http_text(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len);
}
