/* Digest authentication of SIP requests: picks our credentials out of the request, checks
 * them with digest.c against the user cache, counts a failed check against the address it
 * came from (blocks.c) and answers the challenge or refusal. */
#include "sip/digest.h"
#include "sip/sip_int.h"

#include <stdio.h>
#include <string.h>

#include <sofia-sip/auth_digest.h>
#include <sofia-sip/msg_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/nta_stateless.h>
#include <sofia-sip/url.h>

#define CHALLENGE_MAX 512

/* The value of a WWW- or Proxy-Authenticate header with a fresh nonce. */
static void challenge_value(struct sip *s, int stale, char hdr[CHALLENGE_MAX])
{
    char nonce[DIGEST_NONCE_LEN + 1];
    digest_nonce(s->digest, util_now(), nonce);
    snprintf(hdr, CHALLENGE_MAX, "Digest realm=\"%s\", nonce=\"%s\", algorithm=MD5, qop=\"auth\"%s",
             s->domain, nonce, stale ? ", stale=true" : "");
}

static void challenge(struct sip *s, const struct sip_req *r, int proxy, int stale)
{
    char hdr[CHALLENGE_MAX];
    challenge_value(s, stale, hdr);
    if (proxy)
        sip_req_reply(s, r, SIP_407_PROXY_AUTH_REQUIRED, SIPTAG_PROXY_AUTHENTICATE_STR(hdr),
                      TAG_END());
    else
        sip_req_reply(s, r, SIP_401_UNAUTHORIZED, SIPTAG_WWW_AUTHENTICATE_STR(hdr), TAG_END());
}

/* The first Digest credentials for our realm, or NULL. */
static msg_auth_t const *our_credentials(struct sip *s, msg_auth_t const *au)
{
    for (; au; au = au->au_next) {
        if (!au->au_scheme || strcasecmp(au->au_scheme, "Digest") != 0)
            continue;
        const char *realm = msg_params_find(au->au_params, "realm=");
        if (realm && auth_strcmp(realm, s->domain) == 0)
            return au;
    }
    return NULL;
}

static const char *port_or_default(url_t const *u)
{
    if (u->url_port && u->url_port[0])
        return u->url_port;
    return u->url_type == url_sips ? "5061" : "5060";
}

/* RFC 2617 3.2.2.5 (and RFC 3261 22.4): the digest-uri must name the resource of the
 * Request-Line. Compared as SIP URIs (scheme, user, host, port with its default), not as
 * text, so `sip:pbx` and `sip:PBX:5060;transport=udp` match. Without it a response captured
 * from a client that answers without qop (no nonce-count) could be replayed, within the
 * nonce's lifetime, to call someone else. Some clients (SIPp among them) put the server
 * they send to in the uri instead: a uri naming sipbx itself is accepted too. */
static int uri_matches(struct sip *s, su_home_t *home, const char *digest_uri, url_t const *ruri)
{
    url_t *u = digest_uri ? url_make(home, digest_uri) : NULL;
    if (!u || !u->url_host)
        return 0;
    if (!u->url_user && proxy_is_us(s, u))
        return 1;
    if (!ruri || u->url_type != ruri->url_type || !ruri->url_host)
        return 0;
    const char *a = u->url_user ? u->url_user : "", *b = ruri->url_user ? ruri->url_user : "";
    return strcmp(a, b) == 0 && strcasecmp(u->url_host, ruri->url_host) == 0 &&
           strcmp(port_or_default(u), port_or_default(ruri)) == 0;
}

int auth_challenge_stateless(struct sip *s, msg_t *msg, sip_t const *sip, int screened,
                             const struct sip_user **caller)
{
    *caller = NULL;
    sip_method_t method = sip->sip_request->rq_method;
    int proxy;
    if (method == sip_method_register)
        proxy = 0;
    else if (screened && proxy_challenges(sip))
        proxy = 1;
    else
        return 0;
    if (!sip->sip_to || !sip->sip_to->a_url->url_user || !sip->sip_call_id || !sip->sip_cseq ||
        !sip->sip_from ||
        (!proxy && our_credentials(s, (msg_auth_t const *)sip->sip_authorization)))
        return 0;
    /* Only over UDP: over TCP or TLS nta frees a completed transaction at once anyway. */
    if (sip_streamed(s, msg))
        return 0;
    if (proxy) {
        /* The credentials are checked here too: a made-up Proxy-Authorization must not
         * buy a transaction whose 407 is resent for 32 s. Every answer of auth_check is
         * stateless without a transaction (with a To tag derived from the request). */
        struct sip_req r = {.msg = msg};
        if (auth_check(s, &r, sip, 1, caller) == AUTH_OK)
            return 0;
        msg_destroy(msg);
        return 1;
    }
    char hdr[CHALLENGE_MAX];
    challenge_value(s, 0, hdr);
    sip_count_response(s, 401);
    nta_msg_treply(s->agent, msg, SIP_401_UNAUTHORIZED, SIPTAG_WWW_AUTHENTICATE_STR(hdr),
                   SIPTAG_SERVER_STR(SIP_SERVER_HEADER), TAG_END());
    return 1;
}

enum auth_outcome auth_check(struct sip *s, const struct sip_req *r, sip_t const *sip, int proxy,
                             const struct sip_user **user)
{
    msg_auth_t const *au =
        our_credentials(s, proxy ? (msg_auth_t const *)sip->sip_proxy_authorization
                                 : (msg_auth_t const *)sip->sip_authorization);
    if (!au) {
        challenge(s, r, proxy, 0);
        return AUTH_ANSWERED;
    }
    su_home_t home[1] = {SU_HOME_INIT(home)};
    auth_response_t ar[1];
    memset(ar, 0, sizeof ar);
    ar->ar_size = sizeof ar[0];
    if (auth_digest_response_get(home, ar, au->au_params) < 0) {
        su_home_deinit(home);
        challenge(s, r, proxy, 0);
        return AUTH_ANSWERED;
    }
    struct digest_creds c = {
        .username = ar->ar_username,
        .realm = ar->ar_realm,
        .nonce = ar->ar_nonce,
        .uri = ar->ar_uri,
        .response = ar->ar_response,
        .algorithm = ar->ar_algorithm,
        .qop = ar->ar_qop,
        .nc = ar->ar_nc,
        .cnonce = ar->ar_cnonce,
    };
    const struct sip_user *u = usercache_get(s, ar->ar_username);
    const char *ha1 = u && u->ha1_valid ? u->ha1 : NULL;
    enum digest_result dr =
        digest_verify(s->digest, &c, sip->sip_request->rq_method_name, ha1, util_now());
    /* Checked only once the credentials are right, so it tells nothing about a user. */
    int uri_ok = dr != DIGEST_OK || uri_matches(s, home, ar->ar_uri, sip->sip_request->rq_url);
    if (!uri_ok)
        log_info("auth: digest uri \"%s\" of '%s' does not match the Request-URI of a %s "
                 "request",
                 ar->ar_uri, c.username, sip->sip_request->rq_method_name);
    if (dr == DIGEST_WRONG || dr == DIGEST_RETIRED) {
        /* Before su_home_deinit(): c.username points into the home. Known and unknown
         * users count alike; the log gets a digest of them per address (ban.c), not a line
         * per guess. */
        atomic_fetch_add_explicit(&s->auth_failures, 1, memory_order_relaxed);
        blocks_failure(s, r, c.username);
    }
    su_home_deinit(home);

    switch (dr) {
    case DIGEST_OK:
        if (!uri_ok) {
            sip_req_reply(s, r, 400, "Digest uri does not match the Request-URI", TAG_END());
            return AUTH_ANSWERED;
        }
        if (!u->enabled) {
            sip_req_reply(s, r, 403, "Account disabled", TAG_END());
            return AUTH_ANSWERED;
        }
        *user = u;
        return AUTH_OK;
    case DIGEST_STALE:
    case DIGEST_REPLAY:
        challenge(s, r, proxy, 1);
        return AUTH_ANSWERED;
    case DIGEST_WRONG:
    case DIGEST_RETIRED: /* a fresh nonce, as to a wrong password: nothing to tell apart */
        challenge(s, r, proxy, 0);
        return AUTH_ANSWERED;
    case DIGEST_MALFORMED:
    case DIGEST_BAD_NONCE:
    default:
        challenge(s, r, proxy, 0);
        return AUTH_ANSWERED;
    }
}
