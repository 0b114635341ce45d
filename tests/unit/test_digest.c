/* Unit tests of the sip module's digest verifier (sip/digest.h): HA1, signed nonces,
 * staleness, nonce-count replay and malformed credentials. Expected responses are computed
 * here from the RFC 2617 formulas, checked first against the RFC's own example. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "sip/digest.h"
#include "users/users.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sofia-sip/su_md5.h>

#define REALM "pbx.example.com"
#define USER  "100"
#define PASS  "s3cret-pw"
#define URI   "sip:pbx.example.com"
#define TTL   300
#define T0    ((int64_t)1700000000)

/* Hex MD5 of a whole string. */
static void md5_of(const char *s, char out[33])
{
    su_md5_t ctx;
    su_md5_init(&ctx);
    su_md5_update(&ctx, s, strlen(s));
    su_md5_hexdigest(&ctx, out);
    out[32] = '\0';
}

/* RFC 2617 3.2.2.1: response = MD5(HA1:nonce:nc:cnonce:qop:HA2), or MD5(HA1:nonce:HA2)
 * without qop, HA2 = MD5(method:uri), HA1 = MD5(user:realm:password). */
static void response_of(const char *user, const char *realm, const char *password,
                        const char *method, const char *uri, const char *nonce, const char *nc,
                        const char *cnonce, const char *qop, char out[33])
{
    char buf[512], ha1[33], ha2[33];
    snprintf(buf, sizeof buf, "%s:%s:%s", user, realm, password);
    md5_of(buf, ha1);
    snprintf(buf, sizeof buf, "%s:%s", method, uri);
    md5_of(buf, ha2);
    if (qop)
        snprintf(buf, sizeof buf, "%s:%s:%s:%s:%s:%s", ha1, nonce, nc, cnonce, qop, ha2);
    else
        snprintf(buf, sizeof buf, "%s:%s:%s", ha1, nonce, ha2);
    md5_of(buf, out);
}

/* One verifier plus a valid credential set that individual tests then spoil. */
struct fixture {
    struct digest *d;
    char ha1[33];
    char nonce[DIGEST_NONCE_LEN + 1];
    char response[33];
    struct digest_creds c;
};

static unsigned char secret[DIGEST_SECRET_LEN]; /* filled by main() */

/* Fills f->c with credentials for f->nonce, nc and password (qop=auth when nc is given). */
static void sign(struct fixture *f, const char *password, const char *nc)
{
    const char *qop = nc ? "auth" : NULL;
    response_of(USER, REALM, password, "REGISTER", URI, f->nonce, nc, "c0ffee42", qop, f->response);
    memset(&f->c, 0, sizeof f->c);
    f->c.username = USER;
    f->c.realm = REALM;
    f->c.nonce = f->nonce;
    f->c.uri = URI;
    f->c.response = f->response;
    f->c.qop = qop;
    f->c.nc = nc;
    f->c.cnonce = nc ? "c0ffee42" : NULL;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (!f || digest_create(&f->d, secret, REALM, TTL, 3) != 0) {
        free(f);
        return -1;
    }
    users_ha1(f->ha1, USER, REALM, PASS);
    digest_nonce(f->d, T0, f->nonce);
    sign(f, PASS, "00000001");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    digest_destroy(f->d);
    free(f);
    return 0;
}

static enum digest_result verify(struct fixture *f, int64_t now)
{
    return digest_verify(f->d, &f->c, "REGISTER", f->ha1, now);
}

static void test_ha1_rfc2617(void **state)
{
    (void)state;
    char out[33];
    users_ha1(out, "Mufasa", "testrealm@host.com", "Circle Of Life");
    assert_string_equal(out, "939e7578ed9e3c518a452acee763bce9");
    users_ha1(out, USER, REALM, PASS);
    char want[33];
    md5_of(USER ":" REALM ":" PASS, want);
    assert_string_equal(out, want);
    users_ha1(out, USER, REALM, "other");
    assert_string_not_equal(out, want);
}

/* The test's own response helper reproduces RFC 2617's worked example. */
static void test_helper_rfc2617(void **state)
{
    (void)state;
    char out[33];
    response_of("Mufasa", "testrealm@host.com", "Circle Of Life", "GET", "/dir/index.html",
                "dcd98b7102dd2f0e8b11d0f600bfb0c093", "00000001", "0a4f113b", "auth", out);
    assert_string_equal(out, "6629fae49393a05397450978507c4ef1");
}

static void test_nonce_shape(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(strlen(f->nonce), DIGEST_NONCE_LEN);
    for (size_t i = 0; i < DIGEST_NONCE_LEN; i++)
        assert_non_null(strchr("0123456789abcdef", f->nonce[i]));
    char other[DIGEST_NONCE_LEN + 1];
    digest_nonce(f->d, T0, other);
    assert_string_not_equal(f->nonce, other); /* random part differs */
    assert_string_equal(digest_realm(f->d), REALM);
}

static void test_verify_ok(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(verify(f, T0 + 1), DIGEST_OK);
    assert_int_equal(digest_tracked(f->d), 1);
}

static void test_verify_uppercase_response_and_algorithm(void **state)
{
    struct fixture *f = *state;
    for (char *p = f->response; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    f->c.algorithm = "md5";
    assert_int_equal(verify(f, T0), DIGEST_OK);
}

static void test_wrong_password(void **state)
{
    struct fixture *f = *state;
    sign(f, "not-the-password", "00000001");
    assert_int_equal(verify(f, T0), DIGEST_WRONG);
    assert_int_equal(digest_tracked(f->d), 1); /* the wrong answer counts against the nonce */
    /* Other method or uri than the one signed: also wrong. */
    sign(f, PASS, "00000001");
    assert_int_equal(digest_verify(f->d, &f->c, "INVITE", f->ha1, T0), DIGEST_WRONG);
    f->c.uri = "sip:other.example.com";
    assert_int_equal(verify(f, T0), DIGEST_WRONG);
}

static void test_unknown_user(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(digest_verify(f->d, &f->c, "REGISTER", NULL, T0), DIGEST_WRONG);
    /* Not even a response computed for an all-zero HA1 (the throw-away one) gets in. */
    char buf[256], ha2[33];
    md5_of("REGISTER:" URI, ha2);
    snprintf(buf, sizeof buf, "00000000000000000000000000000000:%s:00000001:c0ffee42:auth:%s",
             f->nonce, ha2);
    md5_of(buf, f->response);
    assert_int_equal(digest_verify(f->d, &f->c, "REGISTER", NULL, T0), DIGEST_WRONG);
    assert_int_equal(digest_tracked(f->d), 1);
}

/* A nonce answered wrongly max_wrong (3) times is retired: any further answer, the right
 * password included, is DIGEST_RETIRED without a check. Unknown users count alike. */
static void test_retired(void **state)
{
    struct fixture *f = *state;
    sign(f, "guess-1", "00000001");
    assert_int_equal(verify(f, T0), DIGEST_WRONG);
    assert_int_equal(digest_verify(f->d, &f->c, "REGISTER", NULL, T0), DIGEST_WRONG);
    /* after two wrong answers the right one still gets in */
    sign(f, PASS, "00000001");
    assert_int_equal(verify(f, T0), DIGEST_OK);
    sign(f, "guess-3", "00000002");
    assert_int_equal(verify(f, T0 + 1), DIGEST_WRONG);
    assert_int_equal(digest_retired_total(f->d), 1);
    sign(f, PASS, "00000003");
    assert_int_equal(verify(f, T0 + 1), DIGEST_RETIRED);
    assert_int_equal(digest_verify(f->d, &f->c, "REGISTER", NULL, T0 + 1), DIGEST_RETIRED);
    assert_int_equal(digest_retired_total(f->d), 1);

    /* another nonce is not affected */
    digest_nonce(f->d, T0 + 1, f->nonce);
    sign(f, PASS, "00000001");
    assert_int_equal(verify(f, T0 + 1), DIGEST_OK);

    /* a stale nonce is retired as well (it would otherwise say stale=true to the right
     * password for ever), and stays retired for a ttl after its last wrong answer */
    digest_nonce(f->d, T0, f->nonce);
    for (int i = 0; i < 3; i++) {
        sign(f, "guess", "00000001");
        assert_int_equal(verify(f, T0 + TTL + 10), DIGEST_WRONG);
    }
    sign(f, PASS, "00000001");
    assert_int_equal(verify(f, T0 + TTL + 10), DIGEST_RETIRED);
    digest_prune(f->d, T0 + 2 * TTL + 10);
    assert_int_equal(verify(f, T0 + 2 * TTL + 10), DIGEST_RETIRED);
    digest_prune(f->d, T0 + 2 * TTL + 11);
    assert_int_equal(verify(f, T0 + 2 * TTL + 11), DIGEST_STALE);
}

static void test_bad_nonce(void **state)
{
    struct fixture *f = *state;
    const char *hex = "0123456789abcdef";
    /* Flip one digit in the time, the random part and the MAC in turn. */
    size_t spots[] = {0, 7, 8, 23, 24, DIGEST_NONCE_LEN - 1};
    char orig[DIGEST_NONCE_LEN + 1];
    memcpy(orig, f->nonce, sizeof orig);
    for (size_t i = 0; i < sizeof spots / sizeof spots[0]; i++) {
        memcpy(f->nonce, orig, sizeof orig);
        char *p = &f->nonce[spots[i]];
        *p = hex[(strchr(hex, *p) - hex + 1) % 16];
        sign(f, PASS, "00000001");
        if (verify(f, T0) != DIGEST_BAD_NONCE)
            fail_msg("nonce changed at %zu accepted", spots[i]);
    }

    /* Signed by another server (other secret), or for another realm. */
    struct digest *other;
    unsigned char secret2[DIGEST_SECRET_LEN];
    memcpy(secret2, secret, sizeof secret2);
    secret2[0] ^= 1;
    assert_int_equal(digest_create(&other, secret2, REALM, TTL, 3), 0);
    digest_nonce(other, T0, f->nonce);
    digest_destroy(other);
    sign(f, PASS, "00000001");
    assert_int_equal(verify(f, T0), DIGEST_BAD_NONCE);
    assert_int_equal(digest_create(&other, secret, "other.example.com", TTL, 3), 0);
    digest_nonce(other, T0, f->nonce);
    digest_destroy(other);
    sign(f, PASS, "00000001");
    assert_int_equal(verify(f, T0), DIGEST_BAD_NONCE);

    /* Wrong length, not hex. */
    memcpy(f->nonce, orig, sizeof orig);
    f->nonce[DIGEST_NONCE_LEN - 1] = '\0';
    sign(f, PASS, "00000001");
    assert_int_equal(verify(f, T0), DIGEST_BAD_NONCE);
    memcpy(f->nonce, orig, sizeof orig);
    f->nonce[30] = 'g';
    sign(f, PASS, "00000001");
    assert_int_equal(verify(f, T0), DIGEST_BAD_NONCE);

    /* From the future: issued a minute after "now". */
    digest_nonce(f->d, T0 + 60, f->nonce);
    sign(f, PASS, "00000001");
    assert_int_equal(verify(f, T0), DIGEST_BAD_NONCE);
    assert_int_equal(digest_tracked(f->d), 0);
}

static void test_stale(void **state)
{
    struct fixture *f = *state;
    /* At the end of its life the nonce still works ... */
    assert_int_equal(verify(f, T0 + TTL), DIGEST_OK);
    /* ... after it, the right password gets STALE (re-challenge), a wrong one WRONG. */
    sign(f, PASS, "00000002");
    assert_int_equal(verify(f, T0 + TTL + 1), DIGEST_STALE);
    sign(f, "wrong", "00000002");
    assert_int_equal(verify(f, T0 + TTL + 1), DIGEST_WRONG);
    sign(f, PASS, "00000002");
    assert_int_equal(digest_verify(f->d, &f->c, "REGISTER", NULL, T0 + TTL + 1), DIGEST_WRONG);
    /* A fresh nonce from the same verifier works again. */
    digest_nonce(f->d, T0 + TTL + 1, f->nonce);
    sign(f, PASS, "00000001");
    assert_int_equal(verify(f, T0 + TTL + 2), DIGEST_OK);
}

static void test_replay(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(verify(f, T0), DIGEST_OK);
    assert_int_equal(verify(f, T0 + 1), DIGEST_REPLAY);
    sign(f, PASS, "00000002");
    assert_int_equal(verify(f, T0 + 2), DIGEST_OK);
    assert_int_equal(verify(f, T0 + 2), DIGEST_REPLAY);
    sign(f, PASS, "00000001");
    assert_int_equal(verify(f, T0 + 3), DIGEST_REPLAY);
    /* Gaps are fine; a wrong answer with a high count does not raise the bar. */
    sign(f, "wrong", "00000009");
    assert_int_equal(verify(f, T0 + 4), DIGEST_WRONG);
    sign(f, PASS, "0000000A");
    assert_int_equal(verify(f, T0 + 5), DIGEST_OK);
    sign(f, PASS, "00000009");
    assert_int_equal(verify(f, T0 + 6), DIGEST_REPLAY);
    sign(f, PASS, "0000000b");
    assert_int_equal(verify(f, T0 + 7), DIGEST_OK);
    assert_int_equal(digest_tracked(f->d), 1);
}

static void test_no_qop_once(void **state)
{
    struct fixture *f = *state;
    sign(f, PASS, NULL);
    assert_null(f->c.qop);
    assert_int_equal(verify(f, T0), DIGEST_OK);
    assert_int_equal(verify(f, T0 + 1), DIGEST_REPLAY);
    sign(f, "wrong", NULL);
    assert_int_equal(verify(f, T0 + 1), DIGEST_WRONG);
}

static void test_malformed(void **state)
{
    struct fixture *f = *state;
    struct digest_creds good = f->c, c;

    const char **fields[] = {&c.username, &c.realm, &c.nonce, &c.uri, &c.response};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        c = good;
        *fields[i] = NULL;
        if (digest_verify(f->d, &c, "REGISTER", f->ha1, T0) != DIGEST_MALFORMED)
            fail_msg("missing field %zu not refused as malformed", i);
    }

    const struct {
        const char *what;
        struct digest_creds c;
    } cases[] = {
        {"foreign realm", {.realm = "other.example.com"}},
        {"realm case", {.realm = "PBX.example.com"}},
        {"SHA-256", {.algorithm = "SHA-256"}},
        {"MD5-sess", {.algorithm = "MD5-sess"}},
        {"auth-int", {.qop = "auth-int"}},
        {"no nc", {.nc = ""}},
        {"short nc", {.nc = "0001"}},
        {"non-hex nc", {.nc = "0000000g"}},
        {"zero nc", {.nc = "00000000"}},
        {"short response", {.response = "0123456789abcdef"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        c = good;
        if (cases[i].c.realm)
            c.realm = cases[i].c.realm;
        if (cases[i].c.algorithm)
            c.algorithm = cases[i].c.algorithm;
        if (cases[i].c.qop)
            c.qop = cases[i].c.qop;
        if (cases[i].c.nc)
            c.nc = cases[i].c.nc[0] ? cases[i].c.nc : NULL;
        if (cases[i].c.response)
            c.response = cases[i].c.response;
        if (digest_verify(f->d, &c, "REGISTER", f->ha1, T0) != DIGEST_MALFORMED)
            fail_msg("%s not refused as malformed", cases[i].what);
    }
    c = good;
    c.cnonce = NULL;
    assert_int_equal(digest_verify(f->d, &c, "REGISTER", f->ha1, T0), DIGEST_MALFORMED);

    /* None of that was recorded, and the good credentials still pass. */
    assert_int_equal(digest_tracked(f->d), 0);
    assert_int_equal(digest_verify(f->d, &good, "REGISTER", f->ha1, T0), DIGEST_OK);
}

static void test_prune(void **state)
{
    struct fixture *f = *state;
    /* Nonce A issued at T0, nonce B at T0 + 100; each used once. */
    assert_int_equal(verify(f, T0), DIGEST_OK);
    digest_nonce(f->d, T0 + 100, f->nonce);
    sign(f, PASS, "00000001");
    assert_int_equal(verify(f, T0 + 100), DIGEST_OK);
    assert_int_equal(digest_tracked(f->d), 2);

    digest_prune(f->d, T0 + TTL); /* A still alive at its last second */
    assert_int_equal(digest_tracked(f->d), 2);
    digest_prune(f->d, T0 + TTL + 1);
    assert_int_equal(digest_tracked(f->d), 1);
    /* B's record is the one kept: a replay of B is still refused. */
    assert_int_equal(verify(f, T0 + TTL + 1), DIGEST_REPLAY);
    digest_prune(f->d, T0 + 100 + TTL + 1);
    assert_int_equal(digest_tracked(f->d), 0);
}

/* Records of old nonces also go without an explicit prune, as verification goes on. */
static void test_prune_during_verify(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 20; i++) {
        digest_nonce(f->d, T0 + i, f->nonce);
        sign(f, PASS, "00000001");
        assert_int_equal(verify(f, T0 + i), DIGEST_OK);
    }
    assert_int_equal(digest_tracked(f->d), 20);
    int64_t later = T0 + 10 * TTL;
    digest_nonce(f->d, later, f->nonce);
    sign(f, PASS, "00000001");
    assert_int_equal(verify(f, later), DIGEST_OK);
    assert_int_equal(digest_tracked(f->d), 1);
}

int main(void)
{
    log_set_level(LOGL_ERROR);
    for (size_t i = 0; i < sizeof secret; i++)
        secret[i] = (unsigned char)(i * 37 + 11);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ha1_rfc2617),
        cmocka_unit_test(test_helper_rfc2617),
        cmocka_unit_test_setup_teardown(test_nonce_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_uppercase_response_and_algorithm, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_wrong_password, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_user, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_nonce, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_qop_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune_during_verify, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
