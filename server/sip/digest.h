/* Private to the sip module: HTTP digest authentication (RFC 2617, RFC 3261 22.4) with
 * stateless HMAC-signed nonces, nonce-count replay tracking and nonces retired after a few
 * wrong answers. No Sofia objects here, so the unit tests can drive it directly. */
#ifndef SIPBX_SIP_DIGEST_H
#define SIPBX_SIP_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#define DIGEST_SECRET_LEN 32
#define DIGEST_NONCE_LEN  56    /* 8 hex time + 16 hex random + 32 hex MAC */
#define DIGEST_TRACK_MAX  65536 /* nonces with replay or wrong-answer records at once */

struct digest;

/** The fields of a digest response that verification needs (unquoted values). */
struct digest_creds {
    const char *username;
    const char *realm;
    const char *nonce;
    const char *uri;
    const char *response;
    const char *algorithm; /* NULL means MD5 */
    const char *qop;       /* NULL (RFC 2069 style) or "auth" */
    const char *nc;        /* 8 hex digits when qop is given */
    const char *cnonce;
};

enum digest_result {
    DIGEST_OK = 0,
    DIGEST_MALFORMED, /* missing fields, unknown algorithm or qop, foreign realm */
    DIGEST_BAD_NONCE, /* not a nonce of ours (bad MAC, from the future) */
    DIGEST_STALE,     /* ours but expired: re-challenge with stale=true */
    DIGEST_REPLAY,    /* nonce-count not larger than one already accepted */
    DIGEST_WRONG,     /* response does not match: wrong password or unknown user */
    DIGEST_RETIRED,   /* the nonce had max_wrong wrong answers: not checked, a failure */
};

/** Creates a verifier for realm with a server secret; nonces live ttl seconds and are
 *  retired after max_wrong wrong answers (so one nonce does not carry a password-guessing
 *  run). Returns 0 or ENOMEM. */
int digest_create(struct digest **out, const unsigned char secret[DIGEST_SECRET_LEN],
                  const char *realm, int ttl, int max_wrong);
/** Frees the verifier and its replay table. */
void digest_destroy(struct digest *d);
/** The realm given at creation. */
const char *digest_realm(const struct digest *d);
/** Writes a new nonce (DIGEST_NONCE_LEN hex characters and a NUL) valid from now. */
void digest_nonce(struct digest *d, int64_t now, char out[DIGEST_NONCE_LEN + 1]);
/** Checks credentials of a request with method against ha1 (hex MD5 of user:realm:password).
 *  ha1 NULL means an unknown user: the work is done all the same against a throw-away digest
 *  and the answer is DIGEST_WRONG, so timing and replies match a wrong password. On
 *  DIGEST_OK the nonce-count is recorded so a replay is refused. A wrong answer is counted
 *  against its nonce (known and unknown users alike); once a nonce has max_wrong of them
 *  every further answer to it is DIGEST_RETIRED without being checked, the right password
 *  included. */
enum digest_result digest_verify(struct digest *d, const struct digest_creds *c, const char *method,
                                 const char *ha1, int64_t now);
/** Drops replay records of nonces that expired before now. */
void digest_prune(struct digest *d, int64_t now);
/** Number of nonces with replay or wrong-answer records (for tests and metrics). */
size_t digest_tracked(const struct digest *d);
/** Bytes the records of answered nonces take (their pool's slabs; for the metrics). */
size_t digest_pool_bytes(const struct digest *d);
/** Nonces retired so far (for the metrics). */
uint64_t digest_retired_total(const struct digest *d);

#endif
