/* Settings: embedded defaults, then the config file, then command-line flags, in one
 * struct that is read-only once the daemon starts. */
#ifndef SIPBX_CONFIG_H
#define SIPBX_CONFIG_H

#include <stddef.h>

#define CONFIG_STR_MAX  256
#define CONFIG_NETS_MAX 64 /* networks in sip_trusted_networks */

struct config {
    char db_path[CONFIG_STR_MAX];  /* SQLite file */
    char domain[CONFIG_STR_MAX];   /* SIP domain and digest realm; "" = stored or host address */
    char sip_host[CONFIG_STR_MAX]; /* SIP listen address */
    int sip_port;
    char http_host[CONFIG_STR_MAX]; /* HTTP listen address */
    int http_port;
    char sip_tls_host[CONFIG_STR_MAX]; /* SIP over TLS listen address (`tls`, `--sip-tls`) */
    int sip_tls_port;                  /* 0: no SIP over TLS */
    char https_host[CONFIG_STR_MAX];   /* HTTPS listen address (dashboard and API) */
    int https_port;                    /* 0: no HTTPS */
    char tls_cert[CONFIG_STR_MAX];     /* PEM certificate (and chain); "": the generated one */
    char tls_key[CONFIG_STR_MAX];      /* its PEM private key; "": in tls_cert's file */
    char https_cert[CONFIG_STR_MAX];   /* HTTPS's own certificate; "": tls_cert's */
    char https_key[CONFIG_STR_MAX];    /* its key; "": in https_cert's file */
    int hsts_max_age;                  /* Strict-Transport-Security max-age on HTTPS (0: none) */
    char web_root[CONFIG_STR_MAX];     /* dashboard files; "" = next to the binary or installed */
    int ring_timeout;                  /* seconds a call may ring before 408 */
    int min_expires;                   /* REGISTER below this gets 423 */
    int max_expires;                   /* REGISTER above this is capped */
    int default_expires;               /* when the client names none */
    int nonce_ttl;                     /* seconds a digest nonce stays fresh */
    int max_call_seconds;              /* a call without BYE or session timer ends after this */
    int log_level;                     /* 0 error .. 3 debug */
    int trace;                         /* capture SIP messages for ladder traces (1 = on) */
    int trace_days;                    /* keep traces this many days (0 = no age limit) */
    int trace_max_mb;                  /* keep at most this many MiB of trace text (0 = no limit) */
    int tcp_per_source;     /* SIP TCP/TLS connections not yet trusted, per source address */
    int nonce_max_failures; /* wrong answers to one nonce before it is retired */
    int ban_failures;       /* failed digests from one address that start a block (0: off) */
    int ban_window;         /* ... within this many seconds */
    int ban_time;           /* seconds of a first block; each repeat doubles it */
    int ban_max_time;       /* the longest a block gets */
    char trusted_networks[CONFIG_STR_MAX]; /* CIDR list never blocked ("" or "none": none) */
    int domain_given;                      /* 1 when --domain or the file named it */
    /* Voicemail (server/voicemail/) and its media */
    char voicemail_number[CONFIG_STR_MAX]; /* dialled to listen to one's own mailbox */
    int voicemail_max_seconds;             /* longest message recorded */
    int voicemail_silence_seconds;         /* this much silence ends a message (0: never) */
    int voicemail_max_messages;            /* per mailbox: heard ones beyond are deleted */
    int voicemail_max_days;                /* messages older are deleted (0: kept) */
    int voicemail_max_calls;               /* voicemail calls at once */
    int voicemail_port;                    /* its SIP user agent on 127.0.0.1 (0: any free) */
    char media_address[CONFIG_STR_MAX];    /* RTP address; "": the SIP one (or the host's) */
    int rtp_port_min, rtp_port_max;        /* the RTP ports voicemail calls use */
};

/** Fills c with the embedded defaults. */
void config_defaults(struct config *c);

/** Reads a `key = value` file (# starts a comment) into c. Returns 0, or -1 with a
 *  one-line reason in err (unreadable file, unknown key, bad value with its line). */
int config_load_file(struct config *c, const char *path, char *err, size_t errlen);

/** Sets one setting by its name (file key `ring_timeout` or flag `--ring-timeout`).
 *  Returns 0, or -1 with a reason in err. */
int config_set(struct config *c, const char *name, const char *value, char *err, size_t errlen);

/** True when name (without leading dashes) is a known setting. */
int config_known(const char *name);

/** Splits "host:port", "[v6]:port" or ":port" into host and port; returns 0 or -1. */
int config_parse_addr(const char *s, char *host, size_t hostlen, int *port);

/** Writes the host's primary non-loopback IPv4 address (or 127.0.0.1) into out. */
void config_primary_address(char *out, size_t outlen);

#endif
