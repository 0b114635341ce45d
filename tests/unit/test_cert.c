/* Unit tests of server/cert: the generated certificate (made, reused, replaced when expired,
 * refused when broken), configured PEM files (with a chain, key in the same file, mismatched,
 * encrypted, weak, garbage, missing), the fingerprint against an independent computation and
 * `openssl x509 -fingerprint -sha256`, and the directory Sofia-SIP reads, loaded the way its
 * tport_tls.c loads it. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cert/cert.h"
#include "util/util.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DOMAIN "pbx.example.org"

/* A temporary data directory, removed (with what the tests put in it) by the teardown. */
struct tmp {
    char dir[64];
};

static int tmp_setup(void **state)
{
    struct tmp *t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    snprintf(t->dir, sizeof t->dir, "/tmp/sipbx-cert-XXXXXX");
    if (!mkdtemp(t->dir)) {
        free(t);
        return -1;
    }
    *state = t;
    return 0;
}

static int tmp_teardown(void **state)
{
    struct tmp *t = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", t->dir);
    int rc = system(cmd);
    free(t);
    return rc == 0 ? 0 : -1;
}

static void path_in(const struct tmp *t, const char *name, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/%s", t->dir, name);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *p = calloc(1, 1 << 20);
    assert_non_null(p);
    size_t n = fread(p, 1, (1 << 20) - 1, f);
    p[n] = '\0';
    fclose(f);
    return p;
}

static int mode_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (int)(st.st_mode & 0777);
}

/* ---- certificates made by the tests themselves (not by the code under test) ---- */

static EVP_PKEY *rsa_key(int bits)
{
    EVP_PKEY *k = EVP_RSA_gen((unsigned)bits);
    assert_non_null(k);
    return k;
}

/* A certificate for key, named cn, valid from now+from to now+to seconds, signed by
 * issuer_key (self-signed when issuer is NULL); ca makes it a CA. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, long from, long to, X509 *issuer,
                       EVP_PKEY *issuer_key, int ca)
{
    X509 *x = X509_new();
    assert_non_null(x);
    ASN1_INTEGER_set(X509_get_serialNumber(x), (long)(random() & 0xffffff) + 1);
    X509_set_version(x, 2);
    X509_gmtime_adj(X509_getm_notBefore(x), from);
    X509_gmtime_adj(X509_getm_notAfter(x), to);
    X509_set_pubkey(x, key);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints,
                                              ca ? "critical,CA:TRUE" : "CA:FALSE");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    if (!ca) {
        char san[300];
        snprintf(san, sizeof san, "DNS:%s", cn);
        ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san);
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    assert_true(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
    return x;
}

static void append_cert(const char *path, X509 *x)
{
    FILE *f = fopen(path, "a");
    assert_non_null(f);
    assert_int_equal(PEM_write_X509(f, x), 1);
    fclose(f);
}

static void append_key(const char *path, EVP_PKEY *k, const char *passphrase)
{
    FILE *f = fopen(path, "a");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, k, passphrase ? EVP_aes_128_cbc() : NULL,
                                          (unsigned char *)passphrase,
                                          passphrase ? (int)strlen(passphrase) : 0, NULL, NULL),
                     1);
    fclose(f);
}

/* The SHA-256 fingerprint computed here: the DER of the first PEM certificate of text
 * (base64-decoded by hand, not through X509), hashed with util_sha256. */
static void independent_fingerprint(const char *text, char out[CERT_FP_LEN])
{
    const char *b = strstr(text, "-----BEGIN CERTIFICATE-----");
    assert_non_null(b);
    b = strchr(b, '\n') + 1;
    const char *e = strstr(b, "-----END CERTIFICATE-----");
    assert_non_null(e);
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned char der[8192];
    size_t n = 0;
    unsigned acc = 0;
    int bits = 0;
    for (const char *p = b; p < e; p++) {
        const char *pos = *p ? strchr(alphabet, *p) : NULL;
        if (!pos)
            continue; /* newlines, padding */
        acc = (acc << 6) | (unsigned)(pos - alphabet);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            assert_true(n < sizeof der);
            der[n++] = (unsigned char)(acc >> bits);
        }
    }
    unsigned char md[32];
    util_sha256(der, n, md);
    for (int i = 0; i < 32; i++)
        snprintf(out + 3 * i, CERT_FP_LEN - 3 * (size_t)i, i < 31 ? "%02X:" : "%02X", md[i]);
}

/* ---- the generated certificate ---- */

static void test_generate_and_reuse(void **state)
{
    struct tmp *t = *state;
    struct cert *c = NULL, *again = NULL;
    char err[512] = "", path[PATH_MAX];
    int64_t now = util_now();
    assert_int_equal(cert_open(&c, "tls_cert", NULL, NULL, t->dir, DOMAIN, err, sizeof err), 0);
    assert_true(cert_generated(c));

    path_in(t, CERT_GEN_CERT, path, sizeof path);
    assert_string_equal(cert_file(c), path);
    assert_int_equal(mode_of(path), 0644);
    path_in(t, CERT_GEN_KEY, path, sizeof path);
    assert_int_equal(mode_of(path), 0600);
    path_in(t, CERT_DIR, path, sizeof path);
    assert_int_equal(mode_of(path), 0700);

    /* "AB:CD:..." with 32 upper-case bytes */
    const char *fp = cert_fingerprint(c);
    assert_int_equal(strlen(fp), 95);
    for (int i = 0; i < 95; i++)
        assert_true(i % 3 == 2 ? fp[i] == ':'
                               : (isxdigit((unsigned char)fp[i]) && !islower(fp[i])));
    assert_string_equal(cert_subject(c), "CN=" DOMAIN ",O=sipbx");
    const char *names = cert_names(c);
    assert_non_null(strstr(names, "DNS:" DOMAIN));
    assert_non_null(strstr(names, "DNS:localhost"));
    assert_non_null(strstr(names, "IP:127.0.0.1"));
    assert_non_null(strstr(names, "IP:::1"));
    /* ten years from about an hour ago */
    assert_true(cert_not_before(c) <= now - 3500 && cert_not_before(c) >= now - 3700);
    assert_true(cert_not_after(c) >= now + 3650LL * 86400 - 60);
    assert_true(cert_not_after(c) <= now + 3650LL * 86400 + 60);
    assert_non_null(strstr(cert_pem(c), "-----BEGIN CERTIFICATE-----"));
    assert_non_null(strstr(cert_key_pem(c), "-----BEGIN PRIVATE KEY-----"));

    /* The key is RSA 2048. */
    BIO *b = BIO_new_mem_buf(cert_key_pem(c), -1);
    EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    assert_non_null(k);
    assert_int_equal(EVP_PKEY_get_base_id(k), EVP_PKEY_RSA);
    assert_int_equal(EVP_PKEY_get_bits(k), 2048);
    EVP_PKEY_free(k);

    /* A later start reuses it: the same fingerprint and key. */
    assert_int_equal(cert_open(&again, "tls_cert", "", "", t->dir, DOMAIN, err, sizeof err), 0);
    assert_true(cert_generated(again));
    assert_string_equal(cert_fingerprint(again), cert_fingerprint(c));
    assert_string_equal(cert_key_pem(again), cert_key_pem(c));
    assert_string_equal(cert_pem(again), cert_pem(c));
    cert_destroy(again);
    cert_destroy(c);
}

static void test_generate_ip_domain(void **state)
{
    struct tmp *t = *state;
    struct cert *c = NULL;
    char err[512];
    assert_int_equal(cert_open(&c, "tls_cert", NULL, NULL, t->dir, "192.0.2.7", err, sizeof err),
                     0);
    assert_non_null(strstr(cert_names(c), "IP:192.0.2.7"));
    assert_null(strstr(cert_names(c), "DNS:192.0.2.7"));
    cert_destroy(c);
}

static void test_fingerprint(void **state)
{
    struct tmp *t = *state;
    struct cert *c = NULL;
    char err[512], fp[CERT_FP_LEN];
    assert_int_equal(cert_open(&c, "tls_cert", NULL, NULL, t->dir, DOMAIN, err, sizeof err), 0);
    independent_fingerprint(cert_pem(c), fp);
    assert_string_equal(cert_fingerprint(c), fp);

    /* and what the openssl command prints, when it is installed */
    if (access("/usr/bin/openssl", X_OK) == 0) {
        char cmd[PATH_MAX + 64], line[256] = "";
        snprintf(cmd, sizeof cmd, "/usr/bin/openssl x509 -noout -fingerprint -sha256 -in '%s'",
                 cert_file(c));
        FILE *p = popen(cmd, "r");
        assert_non_null(p);
        assert_non_null(fgets(line, sizeof line, p));
        assert_int_equal(pclose(p), 0);
        line[strcspn(line, "\n")] = '\0';
        const char *eq = strchr(line, '='); /* "sha256 Fingerprint=AB:..." */
        assert_non_null(eq);
        assert_string_equal(eq + 1, cert_fingerprint(c));
    } else {
        print_message("openssl not installed: fingerprint checked by the independent hash only\n");
    }
    cert_destroy(c);
}

static void test_generated_expired_is_replaced(void **state)
{
    struct tmp *t = *state;
    char cpath[PATH_MAX], kpath[PATH_MAX], dir[PATH_MAX], err[512];
    path_in(t, CERT_DIR, dir, sizeof dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    path_in(t, CERT_GEN_CERT, cpath, sizeof cpath);
    path_in(t, CERT_GEN_KEY, kpath, sizeof kpath);
    EVP_PKEY *k = rsa_key(2048);
    X509 *x = make_cert(k, DOMAIN, -20 * 86400, -86400, NULL, NULL, 0);
    append_cert(cpath, x);
    append_key(kpath, k, NULL);
    struct cert *c = NULL;
    assert_int_equal(cert_open(&c, "tls_cert", NULL, NULL, t->dir, DOMAIN, err, sizeof err), 0);
    assert_true(cert_not_after(c) > util_now() + 3000LL * 86400);
    /* the new one is on disk */
    char *text = read_text(cpath), fp[CERT_FP_LEN];
    independent_fingerprint(text, fp);
    assert_string_equal(fp, cert_fingerprint(c));
    free(text);
    cert_destroy(c);
    X509_free(x);
    EVP_PKEY_free(k);
}

static void test_generated_without_key_is_replaced(void **state)
{
    struct tmp *t = *state;
    struct cert *c = NULL, *again = NULL;
    char kpath[PATH_MAX], err[512];
    assert_int_equal(cert_open(&c, "tls_cert", NULL, NULL, t->dir, DOMAIN, err, sizeof err), 0);
    path_in(t, CERT_GEN_KEY, kpath, sizeof kpath);
    assert_int_equal(unlink(kpath), 0);
    assert_int_equal(cert_open(&again, "tls_cert", NULL, NULL, t->dir, DOMAIN, err, sizeof err), 0);
    assert_string_not_equal(cert_fingerprint(again), cert_fingerprint(c));
    assert_int_equal(mode_of(kpath), 0600);
    cert_destroy(again);
    cert_destroy(c);
}

static void test_generated_broken_is_an_error(void **state)
{
    struct tmp *t = *state;
    struct cert *c = NULL;
    char cpath[PATH_MAX], err[512], expect[PATH_MAX + 64];
    assert_int_equal(cert_open(&c, "tls_cert", NULL, NULL, t->dir, DOMAIN, err, sizeof err), 0);
    cert_destroy(c);
    c = NULL;
    path_in(t, CERT_GEN_CERT, cpath, sizeof cpath);
    write_file(cpath, "someone's notes\n");
    assert_int_not_equal(cert_open(&c, "tls_cert", NULL, NULL, t->dir, DOMAIN, err, sizeof err), 0);
    assert_null(c);
    snprintf(expect, sizeof expect, "generated certificate %s: no PEM certificate", cpath);
    assert_non_null(strstr(err, expect));
    /* and the file is left as it was */
    char *text = read_text(cpath);
    assert_string_equal(text, "someone's notes\n");
    free(text);
}

/* ---- configured files ---- */

/* Writes a self-signed certificate for DOMAIN and its key to name.crt and name.key in t;
 * returns the key and certificate (for the caller to free). */
static void configured_pair(const struct tmp *t, const char *name, char *cpath, char *kpath,
                            EVP_PKEY **kout, X509 **xout)
{
    char n[128];
    snprintf(n, sizeof n, "%s.crt", name);
    path_in(t, n, cpath, PATH_MAX);
    snprintf(n, sizeof n, "%s.key", name);
    path_in(t, n, kpath, PATH_MAX);
    *kout = rsa_key(2048);
    *xout = make_cert(*kout, DOMAIN, -3600, 365L * 86400, NULL, NULL, 0);
    append_cert(cpath, *xout);
    append_key(kpath, *kout, NULL);
}

static void test_configured(void **state)
{
    struct tmp *t = *state;
    char cpath[PATH_MAX], kpath[PATH_MAX], err[512], fp[CERT_FP_LEN];
    EVP_PKEY *k;
    X509 *x;
    configured_pair(t, "own", cpath, kpath, &k, &x);
    struct cert *c = NULL;
    assert_int_equal(cert_open(&c, "tls_cert", cpath, kpath, t->dir, DOMAIN, err, sizeof err), 0);
    assert_false(cert_generated(c));
    assert_string_equal(cert_file(c), cpath);
    char *text = read_text(cpath);
    independent_fingerprint(text, fp);
    assert_string_equal(cert_fingerprint(c), fp);
    assert_string_equal(cert_subject(c), "CN=" DOMAIN);
    assert_string_equal(cert_names(c), "DNS:" DOMAIN);
    free(text);
    /* nothing is generated when a certificate is configured */
    char gen[PATH_MAX];
    path_in(t, CERT_GEN_CERT, gen, sizeof gen);
    assert_int_not_equal(access(gen, F_OK), 0);
    cert_destroy(c);

    /* The key in the certificate's file, no key file. */
    char both[PATH_MAX];
    path_in(t, "both.pem", both, sizeof both);
    append_key(both, k, NULL);
    append_cert(both, x);
    assert_int_equal(cert_open(&c, "tls_cert", both, NULL, t->dir, DOMAIN, err, sizeof err), 0);
    assert_string_equal(cert_fingerprint(c), fp);
    cert_destroy(c);
    X509_free(x);
    EVP_PKEY_free(k);
}

static void test_configured_chain(void **state)
{
    struct tmp *t = *state;
    char cpath[PATH_MAX], kpath[PATH_MAX], err[512], fp[CERT_FP_LEN];
    EVP_PKEY *cak = rsa_key(2048), *k = rsa_key(2048);
    X509 *ca = make_cert(cak, "sipbx test CA", -3600, 365L * 86400, NULL, NULL, 1);
    X509 *leaf = make_cert(k, DOMAIN, -3600, 365L * 86400, ca, cak, 0);
    path_in(t, "chain.crt", cpath, sizeof cpath);
    path_in(t, "chain.key", kpath, sizeof kpath);
    append_cert(cpath, leaf);
    append_cert(cpath, ca);
    append_key(kpath, k, NULL);
    struct cert *c = NULL;
    assert_int_equal(cert_open(&c, "https_cert", cpath, kpath, t->dir, DOMAIN, err, sizeof err), 0);
    /* the fingerprint is the leaf's; the PEM holds both, leaf first */
    char *text = read_text(cpath);
    independent_fingerprint(text, fp);
    assert_string_equal(cert_fingerprint(c), fp);
    free(text);
    const char *pem = cert_pem(c), *second = strstr(pem + 1, "-----BEGIN CERTIFICATE-----");
    assert_non_null(second);
    independent_fingerprint(pem, fp);
    assert_string_equal(cert_fingerprint(c), fp);

    /* Sofia's directory: agent.pem (key and leaf), cafile.pem (the intermediate). */
    char dir[PATH_MAX], path[PATH_MAX + 16];
    assert_int_equal(cert_sofia_dir(c, t->dir, dir, sizeof dir, err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/cafile.pem", dir);
    assert_int_equal(mode_of(path), 0600);
    text = read_text(path);
    assert_string_equal(text, second);
    free(text);
    cert_destroy(c);

    /* a later start without a chain removes the stale cafile.pem */
    X509_free(leaf);
    EVP_PKEY_free(k);
    configured_pair(t, "plain", cpath, kpath, &k, &leaf);
    assert_int_equal(cert_open(&c, "tls_cert", cpath, kpath, t->dir, DOMAIN, err, sizeof err), 0);
    assert_int_equal(cert_sofia_dir(c, t->dir, dir, sizeof dir, err, sizeof err), 0);
    assert_int_not_equal(access(path, F_OK), 0);
    cert_destroy(c);
    X509_free(leaf);
    EVP_PKEY_free(k);
    X509_free(ca);
    EVP_PKEY_free(cak);
}

static void test_configured_mismatched_key(void **state)
{
    struct tmp *t = *state;
    char c1[PATH_MAX], k1[PATH_MAX], c2[PATH_MAX], k2[PATH_MAX], err[512], expect[3 * PATH_MAX];
    EVP_PKEY *ka, *kb;
    X509 *xa, *xb;
    configured_pair(t, "a", c1, k1, &ka, &xa);
    configured_pair(t, "b", c2, k2, &kb, &xb);
    struct cert *c = NULL;
    assert_int_equal(cert_open(&c, "tls_cert", c1, k2, t->dir, DOMAIN, err, sizeof err), EINVAL);
    assert_null(c);
    snprintf(expect, sizeof expect, "tls_key %s does not match the certificate in tls_cert %s", k2,
             c1);
    assert_string_equal(err, expect);
    X509_free(xa);
    X509_free(xb);
    EVP_PKEY_free(ka);
    EVP_PKEY_free(kb);
}

static void test_configured_bad_files(void **state)
{
    struct tmp *t = *state;
    char cpath[PATH_MAX], kpath[PATH_MAX], junk[PATH_MAX], broken[PATH_MAX], missing[PATH_MAX];
    char err[512], expect[2 * PATH_MAX];
    EVP_PKEY *k;
    X509 *x;
    configured_pair(t, "ok", cpath, kpath, &k, &x);
    path_in(t, "junk.pem", junk, sizeof junk);
    write_file(junk, "this is not a certificate\n");
    path_in(t, "broken.pem", broken, sizeof broken);
    write_file(broken,
               "-----BEGIN CERTIFICATE-----\nMIIB!!!!notbase64\n-----END CERTIFICATE-----\n");
    path_in(t, "missing.pem", missing, sizeof missing);
    struct cert *c = NULL;

    assert_int_equal(cert_open(&c, "tls_cert", missing, kpath, t->dir, DOMAIN, err, sizeof err),
                     ENOENT);
    snprintf(expect, sizeof expect, "tls_cert %s: cannot read: No such file or directory", missing);
    assert_string_equal(err, expect);

    assert_int_not_equal(cert_open(&c, "tls_cert", junk, kpath, t->dir, DOMAIN, err, sizeof err),
                         0);
    snprintf(expect, sizeof expect,
             "tls_cert %s: no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)", junk);
    assert_string_equal(err, expect);

    assert_int_not_equal(cert_open(&c, "tls_cert", broken, kpath, t->dir, DOMAIN, err, sizeof err),
                         0);
    snprintf(expect, sizeof expect, "tls_cert %s: not a valid PEM certificate (", broken);
    assert_memory_equal(err, expect, strlen(expect));
    assert_null(strchr(err, '\n'));

    /* the key file is garbage; the key file is missing */
    assert_int_not_equal(cert_open(&c, "https_cert", cpath, junk, t->dir, DOMAIN, err, sizeof err),
                         0);
    snprintf(expect, sizeof expect,
             "https_key %s: no PEM private key in it (expected -----BEGIN PRIVATE KEY-----)", junk);
    assert_string_equal(err, expect);
    char badkey[PATH_MAX];
    path_in(t, "bad.key", badkey, sizeof badkey);
    write_file(badkey, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    assert_int_not_equal(cert_open(&c, "tls_cert", cpath, badkey, t->dir, DOMAIN, err, sizeof err),
                         0);
    snprintf(expect, sizeof expect, "tls_key %s: not a valid PEM private key (", badkey);
    assert_memory_equal(err, expect, strlen(expect));
    assert_int_equal(cert_open(&c, "tls_cert", cpath, missing, t->dir, DOMAIN, err, sizeof err),
                     ENOENT);
    snprintf(expect, sizeof expect, "tls_key %s: cannot read: No such file or directory", missing);
    assert_string_equal(err, expect);

    /* no key file and none in the certificate's file */
    assert_int_not_equal(cert_open(&c, "tls_cert", cpath, NULL, t->dir, DOMAIN, err, sizeof err),
                         0);
    snprintf(expect, sizeof expect, "tls_cert %s holds no private key and tls_key is not set",
             cpath);
    assert_string_equal(err, expect);

    /* a key without a certificate */
    assert_int_equal(cert_open(&c, "tls_cert", "", kpath, t->dir, DOMAIN, err, sizeof err), EINVAL);
    assert_string_equal(err, "tls_key is set but tls_cert is not");

    /* a directory */
    assert_int_not_equal(cert_open(&c, "tls_cert", t->dir, kpath, t->dir, DOMAIN, err, sizeof err),
                         0);
    assert_non_null(strstr(err, "cannot read"));
    assert_null(c);
    X509_free(x);
    EVP_PKEY_free(k);
}

static void test_configured_encrypted_and_weak_keys(void **state)
{
    struct tmp *t = *state;
    char cpath[PATH_MAX], kpath[PATH_MAX], enc[PATH_MAX], wc[PATH_MAX], wk[PATH_MAX], err[512];
    EVP_PKEY *k;
    X509 *x;
    configured_pair(t, "ok", cpath, kpath, &k, &x);
    path_in(t, "enc.key", enc, sizeof enc);
    append_key(enc, k, "hunter22");
    struct cert *c = NULL;
    assert_int_not_equal(cert_open(&c, "tls_cert", cpath, enc, t->dir, DOMAIN, err, sizeof err), 0);
    assert_non_null(strstr(err, "the private key is encrypted"));
    assert_non_null(strstr(err, enc));

    EVP_PKEY *weak = rsa_key(1024);
    X509 *wx = make_cert(weak, DOMAIN, -3600, 86400, NULL, NULL, 0);
    path_in(t, "weak.crt", wc, sizeof wc);
    path_in(t, "weak.key", wk, sizeof wk);
    append_cert(wc, wx);
    append_key(wk, weak, NULL);
    assert_int_not_equal(cert_open(&c, "tls_cert", wc, wk, t->dir, DOMAIN, err, sizeof err), 0);
    assert_non_null(strstr(err, "1024-bit RSA key is too weak"));
    assert_null(c);
    X509_free(wx);
    EVP_PKEY_free(weak);
    X509_free(x);
    EVP_PKEY_free(k);
}

static void test_configured_expired_is_accepted(void **state)
{
    struct tmp *t = *state;
    char cpath[PATH_MAX], kpath[PATH_MAX], err[512];
    EVP_PKEY *k = rsa_key(2048);
    X509 *x = make_cert(k, "other.example.org", -30 * 86400, -86400, NULL, NULL, 0);
    path_in(t, "old.crt", cpath, sizeof cpath);
    path_in(t, "old.key", kpath, sizeof kpath);
    append_cert(cpath, x);
    append_key(kpath, k, NULL);
    /* expired and naming another host: warnings (in the log), not errors */
    struct cert *c = NULL;
    assert_int_equal(cert_open(&c, "tls_cert", cpath, kpath, t->dir, DOMAIN, err, sizeof err), 0);
    assert_true(cert_not_after(c) < util_now());
    cert_destroy(c);
    X509_free(x);
    EVP_PKEY_free(k);
}

/* ---- Sofia-SIP's directory ---- */

static void test_sofia_dir(void **state)
{
    struct tmp *t = *state;
    struct cert *c = NULL;
    char err[512], dir[PATH_MAX], agent[PATH_MAX + 16], expect[PATH_MAX + 32], real[PATH_MAX];
    assert_int_equal(cert_open(&c, "tls_cert", NULL, NULL, t->dir, DOMAIN, err, sizeof err), 0);
    assert_int_equal(cert_sofia_dir(c, t->dir, dir, sizeof dir, err, sizeof err), 0);
    /* absolute, data_dir/tls/sip, 0700 */
    assert_non_null(realpath(t->dir, real));
    snprintf(expect, sizeof expect, "%s/%s", real, CERT_SOFIA_DIR);
    assert_string_equal(dir, expect);
    assert_int_equal(mode_of(dir), 0700);
    snprintf(agent, sizeof agent, "%s/agent.pem", dir);
    assert_int_equal(mode_of(agent), 0600);
    snprintf(expect, sizeof expect, "%s/cafile.pem", dir);
    assert_int_not_equal(access(expect, F_OK), 0); /* no chain */

    /* Loaded as tport_tls.c's tls_init_context loads it. */
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_use_certificate_file(ctx, agent, SSL_FILETYPE_PEM), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, agent, SSL_FILETYPE_PEM), 1);
    assert_int_equal(SSL_CTX_check_private_key(ctx), 1);
    assert_int_equal(SSL_CTX_load_verify_locations(ctx, NULL, dir), 1);
    /* it is the certificate in use */
    unsigned char md[32];
    unsigned mdlen = 0;
    assert_int_equal(X509_digest(SSL_CTX_get0_certificate(ctx), EVP_sha256(), md, &mdlen), 1);
    char fp[CERT_FP_LEN];
    for (int i = 0; i < 32; i++)
        snprintf(fp + 3 * i, sizeof fp - 3 * (size_t)i, i < 31 ? "%02X:" : "%02X", md[i]);
    assert_string_equal(fp, cert_fingerprint(c));
    SSL_CTX_free(ctx);

    /* written again at the next start, still 0600 (atomically: no temporary file left) */
    assert_int_equal(cert_sofia_dir(c, t->dir, dir, sizeof dir, err, sizeof err), 0);
    assert_int_equal(mode_of(agent), 0600);
    char cmd[PATH_MAX + 64], line[64] = "";
    snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(line, sizeof line, p));
    pclose(p);
    assert_int_equal(atoi(line), 1);
    cert_destroy(c);
}

static void test_data_dir(void **state)
{
    (void)state;
    char d[64];
    cert_data_dir("sipbx.db", d, sizeof d);
    assert_string_equal(d, ".");
    cert_data_dir("/var/lib/sipbx/sipbx.db", d, sizeof d);
    assert_string_equal(d, "/var/lib/sipbx");
    cert_data_dir("/sipbx.db", d, sizeof d);
    assert_string_equal(d, "/");
    cert_data_dir("state/sipbx.db", d, sizeof d);
    assert_string_equal(d, "state");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_generate_and_reuse, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_generate_ip_domain, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_fingerprint, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_generated_expired_is_replaced, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test_setup_teardown(test_generated_without_key_is_replaced, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test_setup_teardown(test_generated_broken_is_an_error, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_configured, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_configured_chain, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_configured_mismatched_key, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_configured_bad_files, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_configured_encrypted_and_weak_keys, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test_setup_teardown(test_configured_expired_is_accepted, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test_setup_teardown(test_sofia_dir, tmp_setup, tmp_teardown),
        cmocka_unit_test(test_data_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
