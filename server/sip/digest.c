/* Digest authentication: nonce = hex(time) hex(random) hex(HMAC-MD5(secret, time|random|realm)).
 * Nonces need no server state to check; accepted nonce-counts are remembered until the
 * nonce expires, which is what refuses a replayed request, and so are wrong answers, which
 * retire a nonce after max_wrong of them: a guessing script that keeps answering one
 * challenge gets a handful of guesses out of it, not thousands. */
#include "sip/digest.h"
#include "util/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sofia-sip/su_md5.h>

struct digest {
    unsigned char secret[DIGEST_SECRET_LEN];
    char realm[256];
    int ttl;
    int max_wrong;
    struct strmap *seen; /* nonce -> struct seen */
    int64_t last_prune;
    uint64_t retired;
};

struct seen {
    uint32_t max_nc; /* 0: no answer accepted yet */
    int wrong;       /* wrong answers so far */
    int64_t expires; /* the record may go after this */
};

int digest_create(struct digest **out, const unsigned char secret[DIGEST_SECRET_LEN],
                  const char *realm, int ttl, int max_wrong)
{
    struct digest *d = calloc(1, sizeof *d);
    if (!d || strmap_create(&d->seen) != 0) {
        free(d);
        return ENOMEM;
    }
    memcpy(d->secret, secret, DIGEST_SECRET_LEN);
    snprintf(d->realm, sizeof d->realm, "%s", realm);
    d->ttl = ttl;
    d->max_wrong = max_wrong > 0 ? max_wrong : 1;
    *out = d;
    return 0;
}

void digest_destroy(struct digest *d)
{
    if (!d)
        return;
    strmap_destroy(d->seen, free);
    free(d);
}

const char *digest_realm(const struct digest *d)
{
    return d->realm;
}

static void md5_hex(su_md5_t *ctx, char out[33])
{
    su_md5_hexdigest(ctx, out);
    out[32] = '\0';
}

/* HMAC-MD5 (RFC 2104) of msg under the server secret, as 32 hex digits. */
static void hmac_hex(const struct digest *d, const char *msg, char out[33])
{
    unsigned char k_ipad[64], k_opad[64], inner[16];
    memset(k_ipad, 0, sizeof k_ipad);
    memcpy(k_ipad, d->secret, DIGEST_SECRET_LEN);
    memcpy(k_opad, k_ipad, sizeof k_opad);
    for (int i = 0; i < 64; i++) {
        k_ipad[i] ^= 0x36;
        k_opad[i] ^= 0x5c;
    }
    su_md5_t ctx;
    su_md5_init(&ctx);
    su_md5_update(&ctx, k_ipad, sizeof k_ipad);
    su_md5_strupdate(&ctx, msg);
    su_md5_digest(&ctx, inner);
    su_md5_init(&ctx);
    su_md5_update(&ctx, k_opad, sizeof k_opad);
    su_md5_update(&ctx, inner, sizeof inner);
    md5_hex(&ctx, out);
}

static void nonce_mac(const struct digest *d, const char *prefix24, char out[33])
{
    char msg[24 + 1 + sizeof d->realm];
    snprintf(msg, sizeof msg, "%.24s:%s", prefix24, d->realm);
    hmac_hex(d, msg, out);
}

void digest_nonce(struct digest *d, int64_t now, char out[DIGEST_NONCE_LEN + 1])
{
    unsigned char rnd[8];
    if (util_random(rnd, sizeof rnd) != 0)
        memset(rnd, 0, sizeof rnd); /* still unique enough by time and MAC */
    snprintf(out, 9, "%08x", (unsigned)(uint32_t)now);
    util_hex(out + 8, rnd, sizeof rnd);
    nonce_mac(d, out, out + 24);
}

/* The expected request-digest for c (RFC 2617 3.2.2.1, qop=auth or none). */
static void expected_response(const struct digest_creds *c, const char *method, const char *ha1,
                              char out[33])
{
    char ha2[33];
    su_md5_t ctx;
    su_md5_init(&ctx);
    su_md5_strupdate(&ctx, method);
    su_md5_update(&ctx, ":", 1);
    su_md5_strupdate(&ctx, c->uri);
    md5_hex(&ctx, ha2);

    su_md5_init(&ctx);
    su_md5_strupdate(&ctx, ha1);
    su_md5_update(&ctx, ":", 1);
    su_md5_strupdate(&ctx, c->nonce);
    su_md5_update(&ctx, ":", 1);
    if (c->qop) {
        su_md5_strupdate(&ctx, c->nc);
        su_md5_update(&ctx, ":", 1);
        su_md5_strupdate(&ctx, c->cnonce);
        su_md5_update(&ctx, ":", 1);
        su_md5_strupdate(&ctx, c->qop);
        su_md5_update(&ctx, ":", 1);
    }
    su_md5_strupdate(&ctx, ha2);
    md5_hex(&ctx, out);
}

/* A new record for nonce, kept until expires; NULL when out of memory or when
 * DIGEST_TRACK_MAX records exist already (prunes first, once, to make room). */
static struct seen *track(struct digest *d, const char *nonce, int64_t now, int64_t expires)
{
    if (strmap_count(d->seen) >= DIGEST_TRACK_MAX) {
        digest_prune(d, now);
        if (strmap_count(d->seen) >= DIGEST_TRACK_MAX)
            return NULL;
    }
    struct seen *s = calloc(1, sizeof *s);
    if (!s || strmap_put(d->seen, nonce, s, NULL) != 0) {
        free(s);
        return NULL;
    }
    s->expires = expires;
    return s;
}

static int is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strchr("0123456789abcdefABCDEF", s[i]) || !s[i])
            return 0;
    return s[n] == '\0';
}

static int strcase_eq(const char *a, const char *b)
{
    return strcasecmp(a, b) == 0;
}

enum digest_result digest_verify(struct digest *d, const struct digest_creds *c, const char *method,
                                 const char *ha1, int64_t now)
{
    if (!c->username || !c->realm || !c->nonce || !c->uri || !c->response)
        return DIGEST_MALFORMED;
    if (c->algorithm && !strcase_eq(c->algorithm, "MD5"))
        return DIGEST_MALFORMED;
    if (strcmp(c->realm, d->realm) != 0)
        return DIGEST_MALFORMED;
    uint32_t nc = 0;
    if (c->qop) {
        if (!strcase_eq(c->qop, "auth") || !c->nc || !c->cnonce || !is_hex(c->nc, 8))
            return DIGEST_MALFORMED;
        nc = (uint32_t)strtoul(c->nc, NULL, 16);
        if (nc == 0)
            return DIGEST_MALFORMED;
    }
    if (strlen(c->response) != 32)
        return DIGEST_MALFORMED;

    /* Nonce: ours (MAC), not from the future, not expired. */
    if (strlen(c->nonce) != DIGEST_NONCE_LEN || !is_hex(c->nonce, DIGEST_NONCE_LEN))
        return DIGEST_BAD_NONCE;
    char mac[33];
    nonce_mac(d, c->nonce, mac);
    if (util_ct_compare(mac, c->nonce + 24, 32) != 0)
        return DIGEST_BAD_NONCE;
    char tbuf[9];
    memcpy(tbuf, c->nonce, 8);
    tbuf[8] = '\0';
    /* Time is kept modulo 2^32 in the nonce; the signed difference copes with wrap-around. */
    int32_t age = (int32_t)((uint32_t)now - (uint32_t)strtoul(tbuf, NULL, 16));
    if (age < -5)
        return DIGEST_BAD_NONCE;
    struct seen *s = strmap_get(d->seen, c->nonce);
    if (s && s->wrong >= d->max_wrong)
        return DIGEST_RETIRED;

    /* Compute the digest before looking at staleness or the user, so every path that
     * reaches a password check costs the same. */
    char want[33];
    static const char unknown_ha1[] = "00000000000000000000000000000000";
    expected_response(c, method, ha1 ? ha1 : unknown_ha1, want);
    char got[33];
    for (int i = 0; i < 32; i++)
        got[i] = (char)(c->response[i] | 0x20); /* hex digits compare case-insensitively */
    got[32] = '\0';
    int match = util_ct_compare(want, got, 32) == 0 && ha1 != NULL;

    if (!match) {
        /* Stale nonces too: an expired nonce answered with the right password says
         * stale=true, so it would otherwise be an oracle for as long as one likes. */
        if (!s)
            s = track(d, c->nonce, now, now + d->ttl);
        if (s) {
            s->wrong++;
            /* Kept at least ttl after its last wrong answer, so a retired nonce stays so. */
            if (s->expires < now + d->ttl)
                s->expires = now + d->ttl;
            if (s->wrong == d->max_wrong)
                d->retired++;
        }
        if (now - d->last_prune >= 60)
            digest_prune(d, now);
        return DIGEST_WRONG;
    }
    if (age > d->ttl)
        return DIGEST_STALE;

    /* Without qop there is no count: such a nonce is good for one request only. */
    if (!c->qop)
        nc = 1;
    if (s && nc <= s->max_nc)
        return DIGEST_REPLAY;
    if (!s && !(s = track(d, c->nonce, now, now - age + d->ttl)))
        return DIGEST_REPLAY; /* cannot track it: refuse rather than allow replays */
    s->max_nc = nc;
    if (now - d->last_prune >= 60)
        digest_prune(d, now);
    return DIGEST_OK;
}

static int drop_expired(const char *key, void *val, void *ctx)
{
    (void)key;
    struct seen *s = val;
    if (s->expires < *(const int64_t *)ctx) {
        free(s);
        return STRMAP_DROP;
    }
    return STRMAP_KEEP;
}

void digest_prune(struct digest *d, int64_t now)
{
    d->last_prune = now;
    strmap_foreach(d->seen, drop_expired, &now);
}

size_t digest_tracked(const struct digest *d)
{
    return strmap_count(d->seen);
}

uint64_t digest_retired_total(const struct digest *d)
{
    return d->retired;
}
