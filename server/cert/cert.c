/* The TLS certificate: generated and kept in the data directory, or read from configured PEM
 * files; checked once at start-up, then only read. */
#include "cert/cert.h"
#include "util/util.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FILE_MAX      (1024 * 1024) /* a PEM file larger than this is not a certificate */
#define RSA_BITS      2048
#define BACKDATE_SECS 3600 /* valid from an hour ago: phone clocks lag */
#define NAMES_MAX     64   /* subjectAltName entries of a generated certificate */
#define MIN_SEC_BITS  112  /* RSA 2048, EC P-224: what TLS stacks accept by default */

struct cert {
    char *pem;       /* leaf and chain, PEM */
    char *chain_pem; /* the chain alone (intermediates), or NULL */
    char *key_pem;   /* PKCS#8, unencrypted */
    size_t key_len;
    char *subject;
    char *names;
    char fingerprint[CERT_FP_LEN];
    int64_t not_before, not_after;
    int generated;
    char file[PATH_MAX];
};

/* ---- small helpers ---- */

/* The most recent OpenSSL error as text (the queue is cleared). */
static const char *ssl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    if (!e)
        snprintf(buf, len, "unknown error");
    else
        snprintf(buf, len, "%s", ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "?");
    ERR_clear_error();
    return buf;
}

/* The contents of a memory BIO as a new NUL-terminated string, or NULL. */
static char *bio_string(BIO *b)
{
    char *data;
    long n = BIO_get_mem_data(b, &data);
    if (n < 0)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (s) {
        memcpy(s, data, (size_t)n);
        s[n] = '\0';
    }
    return s;
}

static int64_t asn1_time_to_epoch(const ASN1_TIME *t)
{
    struct tm tm;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    return (int64_t)timegm(&tm);
}

/* Writes data to path atomically: a temporary file in the same directory, mode 0600,
 * synced, then renamed over path. Returns 0 or an errno value. */
static int write_atomic(const char *path, const void *data, size_t len)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.XXXXXX", path) >= (int)sizeof tmp)
        return ENAMETOOLONG;
    int fd = mkstemp(tmp); /* mode 0600 */
    if (fd < 0)
        return errno;
    int e = 0;
    const char *p = data;
    while (len > 0 && !e) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno != EINTR)
            e = errno;
        else if (n > 0) {
            p += n;
            len -= (size_t)n;
        }
    }
    if (!e && fsync(fd) != 0)
        e = errno;
    if (close(fd) != 0 && !e)
        e = errno;
    if (!e && rename(tmp, path) != 0)
        e = errno;
    if (e)
        unlink(tmp);
    return e;
}

/* out = dir/name; 0, or ENAMETOOLONG. */
static int join(char *out, size_t outlen, const char *dir, const char *name)
{
    int n = snprintf(out, outlen, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= outlen ? ENAMETOOLONG : 0;
}

/* Makes dir (mode 0700) or checks that it is a directory, and makes it 0700. */
static int private_dir(const char *dir)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return errno;
    struct stat st;
    if (stat(dir, &st) != 0)
        return errno;
    if (!S_ISDIR(st.st_mode))
        return ENOTDIR;
    if ((st.st_mode & 0777) != 0700 && chmod(dir, 0700) != 0)
        return errno;
    return 0;
}

/* ---- what a certificate says ---- */

static char *subject_text(X509 *x)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (!b)
        return NULL;
    X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253);
    char *s = bio_string(b);
    BIO_free(b);
    return s;
}

static char *names_text(X509 *x)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    struct buf b = {0};
    for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        const char *sep = b.len ? ", " : "";
        if (g->type == GEN_DNS) {
            const ASN1_IA5STRING *s = g->d.dNSName;
            buf_printf(&b, "%sDNS:%.*s", sep, s->length, (const char *)s->data);
        } else if (g->type == GEN_IPADD) {
            const ASN1_OCTET_STRING *s = g->d.iPAddress;
            char text[INET6_ADDRSTRLEN];
            int fam = s->length == 4 ? AF_INET : s->length == 16 ? AF_INET6 : 0;
            if (fam && inet_ntop(fam, s->data, text, sizeof text))
                buf_printf(&b, "%sIP:%s", sep, text);
        }
    }
    GENERAL_NAMES_free(gens);
    buf_add(&b, "", 1);
    if (b.failed) {
        buf_free(&b);
        return NULL;
    }
    return b.p;
}

/* True when x names host (a DNS name or an IP address) in its subjectAltName or CN. */
static int names_host(X509 *x, const char *host)
{
    if (X509_check_ip_asc(x, host, 0) == 1)
        return 1;
    return X509_check_host(x, host, 0, 0, NULL) == 1;
}

/* Fills c's facts and PEM text from leaf, chain (may be NULL) and key. Returns 0 or ENOMEM. */
static int fill(struct cert *c, X509 *leaf, STACK_OF(X509) * chain, EVP_PKEY *key)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (X509_digest(leaf, EVP_sha256(), md, &mdlen) != 1 || mdlen != 32)
        return ENOMEM;
    for (unsigned i = 0, o = 0; i < mdlen; i++, o += 3)
        snprintf(c->fingerprint + o, sizeof c->fingerprint - o, i + 1 < mdlen ? "%02X:" : "%02X",
                 md[i]);
    c->not_before = asn1_time_to_epoch(X509_get0_notBefore(leaf));
    c->not_after = asn1_time_to_epoch(X509_get0_notAfter(leaf));
    c->subject = subject_text(leaf);
    c->names = names_text(leaf);

    BIO *all = BIO_new(BIO_s_mem()), *ch = BIO_new(BIO_s_mem()), *kb = BIO_new(BIO_s_mem());
    int ok = all && ch && kb && c->subject && c->names && PEM_write_bio_X509(all, leaf) == 1 &&
             PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL) == 1;
    for (int i = 0; ok && chain && i < sk_X509_num(chain); i++)
        ok = PEM_write_bio_X509(all, sk_X509_value(chain, i)) == 1 &&
             PEM_write_bio_X509(ch, sk_X509_value(chain, i)) == 1;
    if (ok) {
        c->pem = bio_string(all);
        c->key_pem = bio_string(kb);
        if (chain && sk_X509_num(chain) > 0)
            c->chain_pem = bio_string(ch);
        ok = c->pem && c->key_pem && (!chain || sk_X509_num(chain) == 0 || c->chain_pem);
        if (c->key_pem)
            c->key_len = strlen(c->key_pem);
    }
    /* The key's PEM was in the BIO's memory: cleared before it is freed. */
    if (kb) {
        char *data;
        long n = BIO_get_mem_data(kb, &data);
        if (n > 0)
            OPENSSL_cleanse(data, (size_t)n);
    }
    BIO_free(all);
    BIO_free(ch);
    BIO_free(kb);
    return ok ? 0 : ENOMEM;
}

/* ---- reading PEM ---- */

/* The password callback of a key read: sipbx has no passphrase to give (it starts
 * unattended); notes that one was asked for. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    *(int *)u = 1;
    return -1;
}

/* True when text holds a PEM block whose label ends in what ("CERTIFICATE", "PRIVATE KEY"):
 * "-----BEGIN CERTIFICATE-----", "-----BEGIN RSA PRIVATE KEY-----" ... */
static int has_pem_block(const char *text, const char *what)
{
    size_t wl = strlen(what);
    for (const char *p = text; (p = strstr(p, "-----BEGIN ")) != NULL; p++) {
        const char *end = strstr(p + 11, "-----");
        if (end && (size_t)(end - (p + 11)) >= wl && memcmp(end - wl, what, wl) == 0 &&
            !memchr(p, '\n', (size_t)(end - p)))
            return 1;
    }
    return 0;
}

/* Parses the certificates of text: the first into *leaf, the rest into *chain. Returns 0,
 * or -1 with the reason in why. */
static int parse_certs(const char *text, size_t len, X509 **leaf, STACK_OF(X509) * *chain,
                       char *why, size_t whylen)
{
    char r[160];
    if (!has_pem_block(text, "CERTIFICATE")) {
        snprintf(why, whylen, "no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)");
        return -1;
    }
    BIO *b = BIO_new_mem_buf(text, (int)len);
    STACK_OF(X509) *st = sk_X509_new_null();
    if (!b || !st) {
        BIO_free(b);
        sk_X509_free(st);
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    X509 *x;
    ERR_clear_error();
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        if (!sk_X509_push(st, x)) {
            X509_free(x);
            break;
        }
    }
    unsigned long e = ERR_peek_last_error();
    BIO_free(b);
    /* The read that ends the loop fails with "no start line" when the text simply has no
     * further certificate; anything else is a broken one. */
    if (sk_X509_num(st) == 0 ||
        !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)) {
        snprintf(why, whylen, "not a valid PEM certificate (%s)", ssl_reason(r, sizeof r));
        sk_X509_pop_free(st, X509_free);
        return -1;
    }
    ERR_clear_error();
    *leaf = sk_X509_shift(st);
    *chain = st;
    return 0;
}

/* Parses the first private key in text. Returns it, or NULL with the reason in why. */
static EVP_PKEY *parse_key(const char *text, size_t len, char *why, size_t whylen)
{
    char r[160];
    if (!has_pem_block(text, "PRIVATE KEY")) {
        snprintf(why, whylen, "no PEM private key in it (expected -----BEGIN PRIVATE KEY-----)");
        return NULL;
    }
    BIO *b = BIO_new_mem_buf(text, (int)len);
    int asked = 0;
    ERR_clear_error();
    EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, no_passphrase, &asked) : NULL;
    BIO_free(b);
    if (k) {
        ERR_clear_error();
        return k;
    }
    if (asked)
        snprintf(why, whylen,
                 "the private key is encrypted (sipbx starts unattended: store it "
                 "without a passphrase, e.g. openssl pkey -in KEY -out KEY.plain)");
    else
        snprintf(why, whylen, "not a valid PEM private key (%s)", ssl_reason(r, sizeof r));
    return NULL;
}

/* ---- generating ---- */

/* True when s is a host name a certificate may carry as a DNS name. */
static int dns_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 253 || s[0] == '.' || s[0] == '-' || s[n - 1] == '.' || s[n - 1] == '-')
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '.'))
            return 0;
    return strstr(s, "..") == NULL;
}

/* Adds "DNS:name" or "IP:addr" to the list in b unless it is there already. */
static void san_add(struct buf *b, int *count, const char *kind, const char *value)
{
    char entry[300];
    snprintf(entry, sizeof entry, "%s:%s", kind, value);
    if (*count >= NAMES_MAX)
        return;
    /* the list is "a,b,c": look for ",entry," in ",list," */
    size_t el = strlen(entry);
    for (size_t i = 0; i + el <= b->len; i++)
        if ((i == 0 || b->p[i - 1] == ',') && memcmp(b->p + i, entry, el) == 0 &&
            (i + el == b->len || b->p[i + el] == ','))
            return;
    buf_printf(b, "%s%s", b->len ? "," : "", entry);
    (*count)++;
}

/* The subjectAltName value of a generated certificate for domain: see cert.h. */
static char *san_list(const char *domain)
{
    struct buf b = {0};
    int count = 0;
    struct util_addr a;
    char text[UTIL_ADDR_STRLEN];
    if (domain[0] && util_addr_parse(domain, &a) == 0) {
        util_addr_format(&a, text, sizeof text);
        san_add(&b, &count, "IP", text);
    } else if (dns_name_ok(domain)) {
        san_add(&b, &count, "DNS", domain);
    }
    san_add(&b, &count, "DNS", "localhost");
    char host[256];
    if (gethostname(host, sizeof host) == 0) {
        host[sizeof host - 1] = '\0';
        if (dns_name_ok(host))
            san_add(&b, &count, "DNS", host);
    }
    struct ifaddrs *ifs;
    if (getifaddrs(&ifs) == 0) {
        for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
            if (!i->ifa_addr ||
                (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6))
                continue;
            if (i->ifa_addr->sa_family == AF_INET6 &&
                IN6_IS_ADDR_LINKLOCAL(&((struct sockaddr_in6 *)(void *)i->ifa_addr)->sin6_addr))
                continue; /* needs a zone: no client connects to one by a URL */
            util_addr_from_sockaddr(i->ifa_addr, &a);
            util_addr_format(&a, text, sizeof text);
            san_add(&b, &count, "IP", text);
        }
        freeifaddrs(ifs);
    }
    san_add(&b, &count, "IP", "127.0.0.1");
    san_add(&b, &count, "IP", "::1");
    buf_add(&b, "", 1);
    if (b.failed) {
        buf_free(&b);
        return NULL;
    }
    return b.p;
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    if (!ext)
        return 0;
    int ok = X509_add_ext(x, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok;
}

/* A new self-signed certificate for domain with a new RSA key. Returns 0, or -1 with the
 * reason in why. */
static int generate(const char *domain, X509 **xout, EVP_PKEY **kout, char *why, size_t whylen)
{
    char r[160];
    EVP_PKEY *key = EVP_RSA_gen(RSA_BITS);
    X509 *x = X509_new();
    BIGNUM *bn = NULL;
    char *san = san_list(domain);
    unsigned char serial[16];
    int ok = key && x && san && util_random(serial, sizeof serial) == 0;
    if (ok) {
        /* RFC 5280: positive, at most 20 octets; a set second bit keeps it 16 octets long */
        serial[0] &= 0x7f;
        serial[0] |= 0x40;
        ok = (bn = BN_bin2bn(serial, sizeof serial, NULL)) != NULL &&
             BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL &&
             X509_set_version(x, 2) == 1 && /* v3 */
             X509_gmtime_adj(X509_getm_notBefore(x), -BACKDATE_SECS) != NULL &&
             X509_time_adj_ex(X509_getm_notAfter(x), CERT_GEN_DAYS, 0, NULL) != NULL &&
             X509_set_pubkey(x, key) == 1;
    }
    if (ok) {
        /* CN is at most 64 characters; the subjectAltName is what clients check anyway. */
        char cn[65];
        snprintf(cn, sizeof cn, "%s", domain[0] ? domain : "sipbx");
        X509_NAME *n = X509_get_subject_name(x);
        /* O before CN, the usual order (printed most specific first: "CN=...,O=sipbx") */
        ok = X509_NAME_add_entry_by_txt(n, "O", MBSTRING_UTF8, (const unsigned char *)"sipbx", -1,
                                        -1, 0) == 1 &&
             X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
                                        0) == 1 &&
             X509_set_issuer_name(x, n) == 1;
    }
    if (ok) {
        /* An end-entity certificate (not a CA): clients pin it or trust it as it is. */
        X509V3_CTX ctx;
        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
        ok = add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") &&
             add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature,keyEncipherment") &&
             add_ext(x, &ctx, NID_ext_key_usage, "serverAuth,clientAuth") &&
             add_ext(x, &ctx, NID_subject_key_identifier, "hash") &&
             add_ext(x, &ctx, NID_subject_alt_name, san) && X509_sign(x, key, EVP_sha256()) > 0;
    }
    BN_free(bn);
    free(san);
    if (!ok) {
        snprintf(why, whylen, "cannot generate a certificate: %s", ssl_reason(r, sizeof r));
        X509_free(x);
        EVP_PKEY_free(key);
        return -1;
    }
    *xout = x;
    *kout = key;
    return 0;
}

/* ---- opening ---- */

static struct cert *cert_new(void)
{
    return calloc(1, sizeof(struct cert));
}

void cert_destroy(struct cert *c)
{
    if (!c)
        return;
    if (c->key_pem)
        OPENSSL_cleanse(c->key_pem, c->key_len);
    free(c->key_pem);
    free(c->pem);
    free(c->chain_pem);
    free(c->subject);
    free(c->names);
    free(c);
}

/* Warnings about a certificate sipbx accepts (see cert_open). */
static void warn_validity(const char *label, const struct cert *c, X509 *leaf, const char *domain)
{
    int64_t now = util_now();
    char when[32];
    struct tm tm;
    time_t t = (time_t)(c->not_after < now ? c->not_after : c->not_before);
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", &tm);
    if (c->not_after < now)
        log_warn("%s %s expired on %s: clients that check dates refuse it; replace it and restart",
                 label, c->file, when);
    else if (c->not_before > now)
        log_warn("%s %s is not valid before %s (is the clock right?)", label, c->file, when);
    else if (c->not_after - now < (int64_t)CERT_WARN_DAYS * 86400)
        log_warn("%s %s expires in %lld days: replace it and restart", label, c->file,
                 (long long)((c->not_after - now) / 86400));
    if (domain && domain[0] && !names_host(leaf, domain))
        log_warn("%s %s does not name the domain %s (it names %s): phones that check the name "
                 "refuse it unless they pin its fingerprint",
                 label, c->file, domain, c->names[0] ? c->names : c->subject);
}

/* Reads and checks a configured certificate (cert.h). */
static int open_configured(struct cert *c, const char *label, const char *cert_file,
                           const char *key_file, const char *domain, char *err, size_t errlen)
{
    char why[400], klabel[64];
    char *ctext = NULL, *ktext = NULL;
    size_t clen = 0, klen = 0;
    X509 *leaf = NULL;
    STACK_OF(X509) *chain = NULL;
    EVP_PKEY *key = NULL;
    int e, rc = EINVAL;
    /* "tls_cert" -> "tls_key": the setting the key came from */
    snprintf(klabel, sizeof klabel, "%.*s_key", (int)strcspn(label, "_"), label);
    int own_key = key_file && key_file[0];
    const char *kfile = own_key ? key_file : cert_file;
    const char *kname = own_key ? klabel : label;

    snprintf(c->file, sizeof c->file, "%s", cert_file);
    if ((e = util_read_file(cert_file, FILE_MAX, &ctext, &clen)) != 0) {
        snprintf(err, errlen, "%s %s: cannot read: %s", label, cert_file,
                 e == EFBIG ? "larger than 1 MiB, not a certificate" : strerror(e));
        rc = e;
        goto out;
    }
    if (parse_certs(ctext, clen, &leaf, &chain, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s %s: %s", label, cert_file, why);
        goto out;
    }
    if (own_key && (e = util_read_file(key_file, FILE_MAX, &ktext, &klen)) != 0) {
        snprintf(err, errlen, "%s %s: cannot read: %s", klabel, key_file,
                 e == EFBIG ? "larger than 1 MiB, not a key" : strerror(e));
        rc = e;
        goto out;
    }
    key = parse_key(own_key ? ktext : ctext, own_key ? klen : clen, why, sizeof why);
    if (!key) {
        if (!own_key && strncmp(why, "no PEM", 6) == 0)
            snprintf(err, errlen, "%s %s holds no private key and %s is not set", label, cert_file,
                     klabel);
        else
            snprintf(err, errlen, "%s %s: %s", kname, kfile, why);
        goto out;
    }
    if (X509_check_private_key(leaf, key) != 1) {
        ERR_clear_error();
        if (own_key)
            snprintf(err, errlen, "%s %s does not match the certificate in %s %s", klabel, key_file,
                     label, cert_file);
        else
            snprintf(err, errlen, "%s %s: the private key does not match the certificate", label,
                     cert_file);
        goto out;
    }
    if (EVP_PKEY_get_security_bits(key) < MIN_SEC_BITS) {
        snprintf(err, errlen,
                 "%s %s: a %d-bit %s key is too weak (TLS clients refuse it; use RSA 2048 or "
                 "EC P-256 at least)",
                 kname, kfile, EVP_PKEY_get_bits(key), EVP_PKEY_get0_type_name(key));
        goto out;
    }
    if ((rc = fill(c, leaf, chain, key)) != 0) {
        snprintf(err, errlen, "%s %s: out of memory", label, cert_file);
        goto out;
    }
    warn_validity(label, c, leaf, domain);
    rc = 0;
out:
    if (ktext) {
        OPENSSL_cleanse(ktext, klen);
        free(ktext);
    }
    if (ctext) {
        OPENSSL_cleanse(ctext, clen); /* it may hold the key too */
        free(ctext);
    }
    X509_free(leaf);
    sk_X509_pop_free(chain, X509_free);
    EVP_PKEY_free(key);
    return rc;
}

/* Writes a newly generated key and certificate (key first: a certificate on disk always
 * has its key). Returns 0, or an errno value with err set. */
static int save_generated(const char *dir, const char *cpath, const char *kpath, X509 *x,
                          EVP_PKEY *key, char *err, size_t errlen)
{
    BIO *cb = BIO_new(BIO_s_mem()), *kb = BIO_new(BIO_s_mem());
    char *cdata = NULL, *kdata = NULL;
    long cn = 0, kn = 0;
    int e = ENOMEM;
    if (cb && kb && PEM_write_bio_X509(cb, x) == 1 &&
        PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL) == 1) {
        cn = BIO_get_mem_data(cb, &cdata);
        kn = BIO_get_mem_data(kb, &kdata);
        e = 0;
    }
    if (!e && (e = private_dir(dir)) != 0)
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(e));
    else if (!e && (e = write_atomic(kpath, kdata, (size_t)kn)) != 0)
        snprintf(err, errlen, "cannot write %s: %s", kpath, strerror(e));
    else if (!e && (e = write_atomic(cpath, cdata, (size_t)cn)) != 0)
        snprintf(err, errlen, "cannot write %s: %s", cpath, strerror(e));
    else if (e)
        snprintf(err, errlen, "cannot generate a certificate: out of memory");
    if (!e)
        chmod(cpath, 0644); /* the certificate is public: an admin may copy it to phones */
    if (kdata && kn > 0)
        OPENSSL_cleanse(kdata, (size_t)kn);
    BIO_free(cb);
    BIO_free(kb);
    ERR_clear_error();
    return e;
}

/* The generated certificate: reused, or made (cert.h). */
static int open_generated(struct cert *c, const char *data_dir, const char *domain, char *err,
                          size_t errlen)
{
    char dir[PATH_MAX], kpath[PATH_MAX], why[400];
    c->generated = 1;
    if (join(dir, sizeof dir, data_dir, CERT_DIR) ||
        join(kpath, sizeof kpath, data_dir, CERT_GEN_KEY) ||
        join(c->file, sizeof c->file, data_dir, CERT_GEN_CERT)) {
        snprintf(err, errlen, "data directory %s: path too long", data_dir);
        return ENAMETOOLONG;
    }

    char *ctext = NULL, *ktext = NULL;
    size_t clen = 0, klen = 0;
    X509 *leaf = NULL;
    STACK_OF(X509) *chain = NULL;
    EVP_PKEY *key = NULL;
    int rc = EINVAL, e;
    int have_cert = (e = util_read_file(c->file, FILE_MAX, &ctext, &clen)) == 0;
    if (!have_cert && e != ENOENT) {
        snprintf(err, errlen, "generated certificate %s: cannot read: %s", c->file, strerror(e));
        rc = e;
        goto out;
    }
    int have_key = (e = util_read_file(kpath, FILE_MAX, &ktext, &klen)) == 0;
    if (!have_key && e != ENOENT) {
        snprintf(err, errlen, "generated key %s: cannot read: %s", kpath, strerror(e));
        rc = e;
        goto out;
    }
    if (have_cert && have_key) {
        if (parse_certs(ctext, clen, &leaf, &chain, why, sizeof why) != 0) {
            snprintf(err, errlen,
                     "generated certificate %s: %s (remove it and its key to have a new one "
                     "made)",
                     c->file, why);
            goto out;
        }
        if (!(key = parse_key(ktext, klen, why, sizeof why))) {
            snprintf(err, errlen, "generated key %s: %s (remove it and %s to have new ones made)",
                     kpath, why, c->file);
            goto out;
        }
        if (X509_check_private_key(leaf, key) != 1) {
            ERR_clear_error();
            snprintf(err, errlen,
                     "generated key %s does not match the certificate %s (remove both to have "
                     "new ones made)",
                     kpath, c->file);
            goto out;
        }
        if (asn1_time_to_epoch(X509_get0_notAfter(leaf)) > util_now()) {
            if ((rc = fill(c, leaf, chain, key)) != 0)
                snprintf(err, errlen, "generated certificate %s: out of memory", c->file);
            else
                warn_validity("generated certificate", c, leaf, domain);
            goto out;
        }
        log_warn("generated certificate %s has expired: making a new one (its fingerprint "
                 "changes: pin the new one in phones)",
                 c->file);
    } else if (have_cert) {
        log_warn("generated certificate %s has no key %s: making a new one (its fingerprint "
                 "changes: pin the new one in phones)",
                 c->file, kpath);
    }
    X509_free(leaf);
    sk_X509_pop_free(chain, X509_free);
    EVP_PKEY_free(key);
    leaf = NULL;
    chain = NULL;
    key = NULL;
    if (generate(domain, &leaf, &key, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s", why);
        goto out;
    }
    if ((rc = save_generated(dir, c->file, kpath, leaf, key, err, errlen)) != 0)
        goto out;
    if ((rc = fill(c, leaf, NULL, key)) != 0) {
        snprintf(err, errlen, "generated certificate %s: out of memory", c->file);
        goto out;
    }
    log_info("generated a self-signed certificate %s for %s, SHA-256 fingerprint %s", c->file,
             c->names, c->fingerprint);
out:
    if (ktext) {
        OPENSSL_cleanse(ktext, klen);
        free(ktext);
    }
    free(ctext);
    X509_free(leaf);
    sk_X509_pop_free(chain, X509_free);
    EVP_PKEY_free(key);
    return rc;
}

int cert_open(struct cert **out, const char *label, const char *cert_file, const char *key_file,
              const char *data_dir, const char *domain, char *err, size_t errlen)
{
    struct cert *c = cert_new();
    if (!c) {
        snprintf(err, errlen, "%s: out of memory", label);
        return ENOMEM;
    }
    int rc;
    if (cert_file && cert_file[0])
        rc = open_configured(c, label, cert_file, key_file, domain, err, errlen);
    else if (key_file && key_file[0]) {
        char klabel[64];
        snprintf(klabel, sizeof klabel, "%.*s_key", (int)strcspn(label, "_"), label);
        snprintf(err, errlen, "%s is set but %s is not", klabel, label);
        rc = EINVAL;
    } else
        rc = open_generated(c, data_dir, domain ? domain : "", err, errlen);
    if (rc != 0) {
        cert_destroy(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* ---- accessors ---- */

const char *cert_pem(const struct cert *c)
{
    return c->pem;
}

const char *cert_key_pem(const struct cert *c)
{
    return c->key_pem;
}

const char *cert_fingerprint(const struct cert *c)
{
    return c->fingerprint;
}

const char *cert_subject(const struct cert *c)
{
    return c->subject;
}

const char *cert_names(const struct cert *c)
{
    return c->names;
}

int64_t cert_not_before(const struct cert *c)
{
    return c->not_before;
}

int64_t cert_not_after(const struct cert *c)
{
    return c->not_after;
}

int cert_generated(const struct cert *c)
{
    return c->generated;
}

const char *cert_file(const struct cert *c)
{
    return c->file;
}

/* ---- Sofia-SIP's certificate directory ---- */

int cert_sofia_dir(const struct cert *c, const char *data_dir, char *out, size_t outlen, char *err,
                   size_t errlen)
{
    char tls[PATH_MAX], dir[PATH_MAX], path[PATH_MAX + 16], abs[PATH_MAX];
    if (join(tls, sizeof tls, data_dir, CERT_DIR) ||
        join(dir, sizeof dir, data_dir, CERT_SOFIA_DIR) ||
        join(path, sizeof path, dir, "cafile.pem")) {
        snprintf(err, errlen, "data directory %s: path too long", data_dir);
        return ENAMETOOLONG;
    }
    int e = private_dir(tls);
    if (!e)
        e = private_dir(dir);
    if (e) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(e));
        return e;
    }
    /* agent.pem: the key, then the certificate (Sofia reads both from it). */
    struct buf b = {0};
    buf_str(&b, c->key_pem);
    buf_str(&b, c->pem);
    e = join(path, sizeof path, dir, "agent.pem");
    if (!e)
        e = b.failed ? ENOMEM : write_atomic(path, b.p, b.len);
    if (b.p)
        OPENSSL_cleanse(b.p, b.cap);
    buf_free(&b);
    if (e) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(e));
        return e;
    }
    e = join(path, sizeof path, dir, "cafile.pem");
    if (!e && c->chain_pem)
        e = write_atomic(path, c->chain_pem, strlen(c->chain_pem));
    else if (!e && unlink(path) != 0 && errno != ENOENT)
        e = errno;
    if (e) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(e));
        return e;
    }
    if (!realpath(dir, abs)) {
        e = errno;
        snprintf(err, errlen, "cannot resolve %s: %s", dir, strerror(e));
        return e;
    }
    if (strlen(abs) >= outlen) {
        snprintf(err, errlen, "%s: path too long", abs);
        return ENAMETOOLONG;
    }
    snprintf(out, outlen, "%s", abs);
    return 0;
}

void cert_data_dir(const char *db_path, char *out, size_t outlen)
{
    const char *slash = strrchr(db_path, '/');
    if (!slash)
        snprintf(out, outlen, ".");
    else if (slash == db_path)
        snprintf(out, outlen, "/");
    else
        snprintf(out, outlen, "%.*s", (int)(slash - db_path), db_path);
}
