/* Settings table: every key is described once, with its type, bounds and where it lives. */
#include "config/config.h"
#include "util/util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ifaddrs.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* K_ADDR_SIP_TLS, K_ADDR_HTTPS: "ADDR:PORT" or "off" (port 0). */
enum kind {
    K_STR,
    K_INT,
    K_BOOL,
    K_ADDR_SIP,
    K_ADDR_HTTP,
    K_LOGLEVEL,
    K_NETS,
    K_ADDR_SIP_TLS,
    K_ADDR_HTTPS,
    K_EXT /* a string that is a valid extension (util_valid_extension) */
};

struct key {
    const char *name; /* file key; the flag is the same with '-' for '_' */
    enum kind kind;
    size_t off;
    int min, max;
};

#define OFF(f) offsetof(struct config, f)
static const struct key keys[] = {
    {"db", K_STR, OFF(db_path), 0, 0},
    {"domain", K_STR, OFF(domain), 0, 0},
    {"sip", K_ADDR_SIP, 0, 0, 0},
    {"http", K_ADDR_HTTP, 0, 0, 0},
    {"web_root", K_STR, OFF(web_root), 0, 0},
    {"ring_timeout", K_INT, OFF(ring_timeout), 1, 3600},
    {"min_expires", K_INT, OFF(min_expires), 1, 86400},
    {"max_expires", K_INT, OFF(max_expires), 1, 604800},
    {"default_expires", K_INT, OFF(default_expires), 1, 604800},
    {"nonce_ttl", K_INT, OFF(nonce_ttl), 1, 86400},
    {"max_call_seconds", K_INT, OFF(max_call_seconds), 60, 604800},
    {"log_level", K_LOGLEVEL, OFF(log_level), 0, 3},
    {"trace", K_BOOL, OFF(trace), 0, 1},
    {"trace_days", K_INT, OFF(trace_days), 0, 3650},
    {"trace_max_mb", K_INT, OFF(trace_max_mb), 0, 1000000},
    {"tcp_per_source", K_INT, OFF(tcp_per_source), 1, 65535},
    {"nonce_max_failures", K_INT, OFF(nonce_max_failures), 1, 100},
    {"sip_ban_failures", K_INT, OFF(ban_failures), 0, 100},
    {"sip_ban_window", K_INT, OFF(ban_window), 1, 86400},
    {"sip_ban_time", K_INT, OFF(ban_time), 1, 30 * 86400},
    {"sip_ban_max_time", K_INT, OFF(ban_max_time), 1, 365 * 86400},
    {"sip_trusted_networks", K_NETS, OFF(trusted_networks), 0, 0},
    /* SIP over TLS: `tls` in the file, `sip_tls` too, which is what --sip-tls maps to */
    {"tls", K_ADDR_SIP_TLS, 0, 0, 0},
    {"sip_tls", K_ADDR_SIP_TLS, 0, 0, 0},
    {"https", K_ADDR_HTTPS, 0, 0, 0},
    {"tls_cert", K_STR, OFF(tls_cert), 0, 0},
    {"tls_key", K_STR, OFF(tls_key), 0, 0},
    {"https_cert", K_STR, OFF(https_cert), 0, 0},
    {"https_key", K_STR, OFF(https_key), 0, 0},
    {"hsts_max_age", K_INT, OFF(hsts_max_age), 0, 2 * 365 * 86400},
    {"voicemail_number", K_EXT, OFF(voicemail_number), 0, 0},
    {"voicemail_max_seconds", K_INT, OFF(voicemail_max_seconds), 5, 3600},
    {"voicemail_silence_seconds", K_INT, OFF(voicemail_silence_seconds), 0, 600},
    {"voicemail_max_messages", K_INT, OFF(voicemail_max_messages), 1, 100000},
    {"voicemail_max_days", K_INT, OFF(voicemail_max_days), 0, 36500},
    {"voicemail_max_calls", K_INT, OFF(voicemail_max_calls), 1, 1000},
    {"voicemail_port", K_INT, OFF(voicemail_port), 0, 65535},
    {"media_address", K_STR, OFF(media_address), 0, 0},
    {"rtp_port_min", K_INT, OFF(rtp_port_min), 1024, 65534},
    {"rtp_port_max", K_INT, OFF(rtp_port_max), 1025, 65535},
};
#define NKEYS (sizeof keys / sizeof keys[0])

void config_defaults(struct config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->db_path, sizeof c->db_path, "sipbx.db");
    snprintf(c->sip_host, sizeof c->sip_host, "0.0.0.0");
    c->sip_port = 5060;
    snprintf(c->http_host, sizeof c->http_host, "0.0.0.0");
    c->http_port = 8080;
    c->ring_timeout = 60;
    c->min_expires = 60;
    c->max_expires = 3600;
    c->default_expires = 3600;
    c->nonce_ttl = 300;
    c->max_call_seconds = 4 * 3600;
    c->log_level = 2;
    c->trace = 1;
    c->trace_days = 7;
    c->trace_max_mb = 256;
    c->tcp_per_source = 64;
    c->nonce_max_failures = 3;
    c->ban_failures = 10;
    c->ban_window = 60;
    c->ban_time = 600;
    c->ban_max_time = 86400;
    /* SIP over TLS and HTTPS are off until configured (sip_tls_port, https_port 0); a year
     * of HSTS is what browsers' preload rules ask for. */
    c->hsts_max_age = 365 * 86400;
    /* Like fail2ban's ignoreip: the host itself (a local SBC or script) is never blocked. */
    snprintf(c->trusted_networks, sizeof c->trusted_networks, "127.0.0.0/8, ::1");
    /* Voicemail: *97 as in Asterisk's FreePBX and 3CX; two minutes of message, ten seconds
     * of silence, a hundred messages a box, two months of age. */
    snprintf(c->voicemail_number, sizeof c->voicemail_number, "*97");
    c->voicemail_max_seconds = 120;
    c->voicemail_silence_seconds = 10;
    c->voicemail_max_messages = 100;
    c->voicemail_max_days = 60;
    c->voicemail_max_calls = 100;
    c->rtp_port_min = 10000;
    c->rtp_port_max = 20000;
}

/* Maps "--ring-timeout", "ring-timeout" or "ring_timeout" to its table entry. */
static const struct key *find_key(const char *name)
{
    while (*name == '-')
        name++;
    for (size_t i = 0; i < NKEYS; i++) {
        const char *a = keys[i].name, *b = name;
        while (*a && (*a == *b || (*a == '_' && *b == '-'))) {
            a++;
            b++;
        }
        if (!*a && !*b)
            return &keys[i];
    }
    return NULL;
}

int config_known(const char *name)
{
    return find_key(name) != NULL;
}

int config_parse_addr(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon;
    const char *h = s;
    size_t hl;
    if (*s == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':')
            return -1;
        h = s + 1;
        hl = (size_t)(end - h);
        colon = end + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return -1;
        hl = (size_t)(colon - s);
    }
    if (!isdigit((unsigned char)colon[1]) || memchr(h, ':', hl && *s != '[' ? hl : 0))
        return -1;
    char *endp;
    errno = 0;
    long p = strtol(colon + 1, &endp, 10);
    if (errno || *endp || p > 65535 || hl >= hostlen)
        return -1;
    if (hl == 0) {
        snprintf(host, hostlen, "0.0.0.0");
    } else {
        memcpy(host, h, hl);
        host[hl] = '\0';
    }
    *port = (int)p;
    return 0;
}

int config_set(struct config *c, const char *name, const char *value, char *err, size_t errlen)
{
    const struct key *k = find_key(name);
    if (!k) {
        snprintf(err, errlen, "unknown setting '%s'", name);
        return -1;
    }
    char *base = (char *)c;
    switch (k->kind) {
    case K_STR:
        if (strlen(value) >= CONFIG_STR_MAX) {
            snprintf(err, errlen, "%s: value too long", k->name);
            return -1;
        }
        snprintf(base + k->off, CONFIG_STR_MAX, "%s", value);
        if (strcmp(k->name, "domain") == 0)
            c->domain_given = value[0] != '\0';
        return 0;
    case K_EXT:
        if (!util_valid_extension(value)) {
            snprintf(err, errlen,
                     "%s: '%s' is not a number a phone can dial (1-32 letters, digits or "
                     "-_.!~*'+)",
                     k->name, value);
            return -1;
        }
        snprintf(base + k->off, CONFIG_STR_MAX, "%s", value);
        return 0;
    case K_ADDR_SIP:
    case K_ADDR_HTTP: {
        int is_sip = k->kind == K_ADDR_SIP;
        if (config_parse_addr(value, is_sip ? c->sip_host : c->http_host, CONFIG_STR_MAX,
                              is_sip ? &c->sip_port : &c->http_port) != 0) {
            snprintf(err, errlen, "%s: '%s' is not ADDR:PORT", k->name, value);
            return -1;
        }
        return 0;
    }
    case K_ADDR_SIP_TLS:
    case K_ADDR_HTTPS: {
        int is_sip = k->kind == K_ADDR_SIP_TLS;
        char *host = is_sip ? c->sip_tls_host : c->https_host;
        int *port = is_sip ? &c->sip_tls_port : &c->https_port;
        if (strcmp(value, "off") == 0 || strcmp(value, "no") == 0 || value[0] == '\0') {
            host[0] = '\0';
            *port = 0;
            return 0;
        }
        char h[CONFIG_STR_MAX];
        int p;
        if (config_parse_addr(value, h, sizeof h, &p) != 0 || p == 0) {
            snprintf(err, errlen, "%s: '%s' is not ADDR:PORT (a port from 1 to 65535) or off",
                     k->name, value);
            return -1;
        }
        snprintf(host, CONFIG_STR_MAX, "%s", h);
        *port = p;
        return 0;
    }
    case K_NETS: {
        struct util_net nets[CONFIG_NETS_MAX];
        size_t n;
        char why[200];
        if (strlen(value) >= CONFIG_STR_MAX) {
            snprintf(err, errlen, "%s: value too long", k->name);
            return -1;
        }
        if (util_net_parse_list(value, nets, CONFIG_NETS_MAX, &n, why, sizeof why) != 0) {
            snprintf(err, errlen, "%s: %s", k->name, why);
            return -1;
        }
        snprintf(base + k->off, CONFIG_STR_MAX, "%s", value);
        return 0;
    }
    case K_BOOL: {
        static const char *const yes[] = {"on", "yes", "true", "1"};
        static const char *const no[] = {"off", "no", "false", "0"};
        for (int i = 0; i < 4; i++) {
            if (strcmp(value, yes[i]) == 0 || strcmp(value, no[i]) == 0) {
                *(int *)(base + k->off) = strcmp(value, yes[i]) == 0;
                return 0;
            }
        }
        snprintf(err, errlen, "%s: '%s' is not on or off", k->name, value);
        return -1;
    }
    case K_LOGLEVEL: {
        static const char *const levels[] = {"error", "warn", "info", "debug"};
        for (int i = 0; i < 4; i++)
            if (strcmp(value, levels[i]) == 0) {
                c->log_level = i;
                return 0;
            }
    }
        /* numeric levels are accepted too */
        __attribute__((fallthrough));
    case K_INT: {
        char *end;
        errno = 0;
        long v = strtol(value, &end, 10);
        if (errno || *end || !*value || v < k->min || v > k->max) {
            snprintf(err, errlen, "%s: '%s' is not a whole number from %d to %d", k->name, value,
                     k->min, k->max);
            return -1;
        }
        *(int *)(base + k->off) = (int)v;
        return 0;
    }
    }
    return -1;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

int config_load_file(struct config *c, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read config file %s: %s", path, strerror(errno));
        return -1;
    }
    char line[1024];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *s = trim(line);
        if (!*s)
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, errlen, "%s:%d: expected 'key = value'", path, lineno);
            rc = -1;
            break;
        }
        *eq = '\0';
        char *key = trim(s), *val = trim(eq + 1);
        size_t vl = strlen(val);
        if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') {
            val[vl - 1] = '\0';
            val++;
        }
        char why[256];
        if (config_set(c, key, val, why, sizeof why) != 0) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
            rc = -1;
            break;
        }
    }
    fclose(f);
    return rc;
}

void config_primary_address(char *out, size_t outlen)
{
    snprintf(out, outlen, "127.0.0.1");
    struct ifaddrs *ifs;
    if (getifaddrs(&ifs) != 0)
        return;
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || (i->ifa_flags & IFF_LOOPBACK) ||
            !(i->ifa_flags & IFF_UP))
            continue;
        inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, out, (socklen_t)outlen);
        break;
    }
    freeifaddrs(ifs);
}
