/* Digest authentication: nonce = hex(time) hex(random) hex(HMAC-MD5(secret, time|random|realm)).
 * Nonces need no server state to check; accepted nonce-counts are remembered until the
 * nonce expires, which is what refuses a replayed request, and so are wrong answers, which
 * retire a nonce after max_wrong of them: a guessing script that keeps answering one
 * challenge gets a handful of guesses out of it, not thousands.
 *
 * The records are bounded (DIGEST_TRACK_MAX). When they are all in use by nonces that have
 * not expired (10,000 phones at once, a storm above 200 registrations a second for the
 * nonce lifetime, or answers sent to fill the table) the oldest eighth goes and every nonce
 * issued before the newest of them becomes stale (the floor): its phone is challenged again
 * and answers the fresh nonce, one round trip more. Refusing new records instead, as this
 * code once did, refused every authentication until the old nonces expired. */
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
    struct strmap *seen;    /* nonce -> struct seen */
    struct util_pool *pool; /* the records and the map's nodes: they outlive the requests
                               (minutes) and are kept apart from their memory */
    int64_t floor;          /* nonces issued before this (seconds) are stale */
    int64_t floor_logged;
    int64_t last_prune;
    uint64_t retired;
};

struct seen {
    uint32_t max_nc; /* 0: no answer accepted yet */
    int wrong;       /* wrong answers so far */
    int64_t expires; /* the record may go after this */
    int64_t issued;  /* when the nonce was made (seconds) */
};

/* The newest nonces are never made stale to make room: a phone must have time to answer
 * its challenge. A table full of nonces younger than this refuses new records. */
#define FLOOR_MIN_AGE 5

int digest_create(struct digest **out, const unsigned char secret[DIGEST_SECRET_LEN],
                  const char *realm, int ttl, int max_wrong)
{
    struct digest *d = calloc(1, sizeof *d);
    if (!d || util_pool_create(&d->pool) != 0 || strmap_create(&d->seen) != 0) {
        if (d)
            util_pool_destroy(d->pool);
        free(d);
        return ENOMEM;
    }
    strmap_use_pool(d->seen, d->pool);
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
    strmap_destroy_pooled(d->seen);
    util_pool_destroy(d->pool);
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

struct issued_list {
    int64_t *t;
    size_t n;
};

static int collect_issued(const char *key, void *val, void *ctx)
{
    (void)key;
    struct issued_list *l = ctx;
    l->t[l->n++] = ((struct seen *)val)->issued;
    return STRMAP_KEEP;
}

/* Records whose nonce was issued (by_issue) or whose record expires before `before` go,
 * freed to pool. */
struct drop_ctx {
    int64_t before;
    int by_issue;
    struct util_pool *pool;
};

static int drop_before(const char *key, void *val, void *ctx)
{
    (void)key;
    struct drop_ctx *f = ctx;
    struct seen *s = val;
    if ((f->by_issue ? s->issued : s->expires) < f->before) {
        util_pool_free(f->pool, s);
        return STRMAP_DROP;
    }
    return STRMAP_KEEP;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Makes room in a full table: raises the floor past the oldest eighth of the nonces (not
 * past now - FLOOR_MIN_AGE) and drops their records. 0 when nothing could go. */
static int raise_floor(struct digest *d, int64_t now)
{
    struct issued_list l = {util_xcalloc(strmap_count(d->seen), sizeof *l.t), 0};
    strmap_foreach(d->seen, collect_issued, &l);
    qsort(l.t, l.n, sizeof *l.t, cmp_i64);
    int64_t floor = l.n ? l.t[l.n / 8] + 1 : d->floor;
    free(l.t);
    if (floor > now - FLOOR_MIN_AGE)
        floor = now - FLOOR_MIN_AGE;
    if (floor <= d->floor)
        return 0;
    size_t before = strmap_count(d->seen);
    d->floor = floor;
    struct drop_ctx f = {floor, 1, d->pool};
    strmap_foreach(d->seen, drop_before, &f);
    if (now - d->floor_logged >= 60) {
        d->floor_logged = now;
        log_warn("digest: %d nonces in use, the most sipbx tracks: nonces older than %lld s "
                 "are stale now (phones answer a fresh challenge)",
                 DIGEST_TRACK_MAX, (long long)(now - floor));
    }
    return strmap_count(d->seen) < before;
}

/* A new record for nonce (made at issued), kept until expires; NULL when DIGEST_TRACK_MAX
 * records of nonces younger than FLOOR_MIN_AGE exist already. */
static struct seen *track(struct digest *d, const char *nonce, int64_t now, int64_t issued,
                          int64_t expires)
{
    if (strmap_count(d->seen) >= DIGEST_TRACK_MAX) {
        digest_prune(d, now);
        if (strmap_count(d->seen) >= DIGEST_TRACK_MAX && !raise_floor(d, now))
            return NULL;
    }
    struct seen *s = util_pool_alloc(d->pool, sizeof *s);
    strmap_put(d->seen, nonce, s, NULL);
    s->expires = expires;
    s->issued = issued;
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

    /* Below the floor its records may be gone: stale whatever the answer, so it tells
     * nothing about the password (and it costs the same as any other answer). */
    if (now - age < d->floor)
        return DIGEST_STALE;
    if (!match) {
        /* Stale nonces too: an expired nonce answered with the right password says
         * stale=true, so it would otherwise be an oracle for as long as one likes. */
        if (!s)
            s = track(d, c->nonce, now, now - age, now + d->ttl);
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
    if (!s && !(s = track(d, c->nonce, now, now - age, now - age + d->ttl)))
        return DIGEST_REPLAY; /* cannot track it: refuse rather than allow replays */
    s->max_nc = nc;
    if (now - d->last_prune >= 60)
        digest_prune(d, now);
    return DIGEST_OK;
}

void digest_prune(struct digest *d, int64_t now)
{
    d->last_prune = now;
    struct drop_ctx f = {now, 0, d->pool};
    strmap_foreach(d->seen, drop_before, &f);
}

size_t digest_tracked(const struct digest *d)
{
    return strmap_count(d->seen);
}

size_t digest_pool_bytes(const struct digest *d)
{
    return util_pool_stats(d->pool).mapped;
}

uint64_t digest_retired_total(const struct digest *d)
{
    return d->retired;
}
