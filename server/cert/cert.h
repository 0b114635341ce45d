/* TLS certificates for SIP over TLS and HTTPS: the one sipbx generates on its first start
 * (self-signed, RSA 2048, ten years) or one the administrator configures as PEM files; the
 * facts shown for pinning (SHA-256 fingerprint, subject, names, validity); the PEM text
 * libmicrohttpd takes; and the directory Sofia-SIP's TLS transport reads.
 *
 * Used at start-up, on one thread; the accessors may then be called from any thread
 * (nothing changes after cert_open). */
#ifndef SIPBX_CERT_H
#define SIPBX_CERT_H

#include <stddef.h>
#include <stdint.h>

struct cert;

/* The generated certificate, relative to the data directory (the database's directory).
 * The directory is 0700; the key 0600. */
#define CERT_DIR       "tls"
#define CERT_GEN_CERT  "tls/cert.pem"
#define CERT_GEN_KEY   "tls/key.pem"
#define CERT_SOFIA_DIR "tls/sip" /* written by cert_sofia_dir */

#define CERT_GEN_DAYS  3650 /* validity of a generated certificate */
#define CERT_FP_LEN    96   /* "AB:CD:...": 32 bytes as 95 characters and a NUL */
#define CERT_WARN_DAYS 30   /* a configured certificate this close to its end: a warning */

/** Opens the certificate sipbx runs with and checks it.
 *
 *  cert_file set (not NULL, not ""): the PEM file of the certificate, optionally followed
 *  by its chain (intermediates, leaf first); key_file the PEM file of its private key
 *  (not encrypted: sipbx starts unattended), or NULL/"" when the key is in cert_file too.
 *  Both are read and parsed; the key must belong to the certificate. A certificate that
 *  has expired, is not yet valid, ends within CERT_WARN_DAYS or does not name domain is
 *  accepted with a warning in the log: refusing to start would take the whole PBX down
 *  (plain SIP and the dashboard too) for a certificate, and clients that pin the
 *  fingerprint keep working.
 *
 *  cert_file unset: the generated certificate in data_dir (CERT_GEN_CERT, CERT_GEN_KEY):
 *  made on the first start (the key and certificate written atomically, the key 0600,
 *  in a 0700 directory), reused on later starts so its fingerprint stays what phones
 *  pinned. Its subject is CN=domain; its subjectAltName names domain (a DNS name or an
 *  IP address), "localhost", the host name and every address of the host's interfaces
 *  (loopback included; not IPv6 link-local). A generated certificate that has expired is
 *  replaced (logged); one whose key is missing is replaced; one that cannot be read or
 *  parsed, or whose key does not match, is an error (it may be a file someone put there).
 *
 *  data_dir: the directory of the database ("." for a bare file name); used only for the
 *  generated certificate. label names the setting in messages ("tls_cert", "https_cert").
 *  Returns 0 with *out set, or an errno value with one readable line in err naming the
 *  file and the reason ("tls_cert /etc/x.pem: cannot read: No such file or directory",
 *  "tls_key /etc/k.pem does not match the certificate in tls_cert /etc/x.pem"). */
int cert_open(struct cert **out, const char *label, const char *cert_file, const char *key_file,
              const char *data_dir, const char *domain, char *err, size_t errlen);

/** Frees it (the private key's memory is cleared). NULL is ignored. */
void cert_destroy(struct cert *c);

/** The certificate and its chain as PEM, leaf first (for MHD_OPTION_HTTPS_MEM_CERT). */
const char *cert_pem(const struct cert *c);

/** The private key as unencrypted PKCS#8 PEM (for MHD_OPTION_HTTPS_MEM_KEY). */
const char *cert_key_pem(const struct cert *c);

/** SHA-256 of the certificate's DER, as "AB:CD:..." (what `openssl x509 -fingerprint
 *  -sha256` prints and phones pin). */
const char *cert_fingerprint(const struct cert *c);

/** The subject, RFC 2253 style ("CN=pbx.example.org,O=sipbx"). */
const char *cert_subject(const struct cert *c);

/** The subjectAltName entries, comma-separated ("DNS:pbx.example.org, IP:192.0.2.10"),
 *  or "" when it has none. */
const char *cert_names(const struct cert *c);

/** The start and end of validity, seconds since the epoch (UTC). */
int64_t cert_not_before(const struct cert *c);
int64_t cert_not_after(const struct cert *c);

/** 1 when sipbx generated it, 0 when it was configured. */
int cert_generated(const struct cert *c);

/** The file the certificate was read from (configured, or data_dir/CERT_GEN_CERT). */
const char *cert_file(const struct cert *c);

/** Writes the directory Sofia-SIP's TLS transport reads (TPTAG_CERTIFICATE(dir), see
 *  tport_type_tls.c and tport_tls.c in Sofia-SIP 1.12.11): data_dir/CERT_SOFIA_DIR, 0700,
 *  holding agent.pem (the private key, then the certificate; Sofia loads both from it)
 *  and, when the certificate came with a chain, cafile.pem with the intermediates (Sofia
 *  loads it as its verify store, from which OpenSSL completes the chain it sends). Files
 *  are 0600, written atomically; a stale cafile.pem is removed. Written afresh at every
 *  start, so it always holds the certificate in use. Writes the directory's absolute path
 *  to out and returns 0, or an errno value with one readable line in err. */
int cert_sofia_dir(const struct cert *c, const char *data_dir, char *out, size_t outlen, char *err,
                   size_t errlen);

/** The directory of the database file db_path, for cert_open and cert_sofia_dir
 *  ("sipbx.db" -> ".", "/var/lib/sipbx/sipbx.db" -> "/var/lib/sipbx"). */
void cert_data_dir(const char *db_path, char *out, size_t outlen);

#endif
