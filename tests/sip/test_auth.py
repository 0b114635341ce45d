"""SIP tests of digest authentication: wrong passwords, a From that is not the authenticated
user, unknown users answered like known ones, stale nonces, replayed credentials, and the
digest uri that must name the request (RFC 2617, RFC 3261 22.4).
"""

import random
import re

from checks import ack_for, heard_nothing, phone, quiet
from harness import (DOMAIN, HOST, USERS, SipClient, authorization, check, log,
                     parse_challenge, test)


@test("wrong_password")
def t_wrong_password(ctx):
    ctx.sipp("wrong_password.xml", password="not-secret100")
    check(ctx.user_list()["100"][0][0] == "offline", "100 must not be registered")


@test("user_mismatch")
def t_user_mismatch(ctx):
    ctx.sipp("user_mismatch.xml", user="100", keys={"aor": "101"})
    users = ctx.user_list()
    check(users["101"][0][0] == "offline" and users["100"][0][0] == "offline",
          "nobody may be registered: %s" % users)


def normalize(raw, ext):
    """A response with what must differ between two requests blanked out: nonce, tags,
    branch, Call-ID and the extension itself."""
    s = re.sub(r'nonce="[0-9a-f]*"', 'nonce="N"', raw)
    s = re.sub(r";tag=[^;,\s>]+", ";tag=T", s)
    s = re.sub(r"branch=[^;,\s]+", "branch=B", s)
    s = re.sub(r"(?m)^Call-ID: .*$", "Call-ID: C", s)
    s = s.replace("sip:%s@" % ext, "sip:EXT@")
    return s


@test("unknown_user")
def t_unknown_user(ctx):
    """An unknown user is answered exactly like a known one with a wrong password, so the
    registrar cannot be used to find out which extensions exist."""
    c = SipClient(ctx.port)
    try:
        answers = {}
        for ext, pw in (("100", "wrong-password"), ("555", "whatever")):
            # the same requests but for the user: same socket, CSeq 1 then 2, own Call-ID
            kw = dict(contact="<sip:%s@%s:%d>" % (ext, HOST, c.port), expires=120,
                      call_id="%s-%x@test" % (ext, random.getrandbits(32)))
            first = c.request("REGISTER", ext, cseq=1, **kw)
            chal = parse_challenge(first.get("WWW-Authenticate"))
            second = c.request("REGISTER", ext, cseq=2, auth=authorization(ext, pw, chal), **kw)
            answers[ext] = (first, second)
        for i, stage in enumerate(("without credentials", "with credentials")):
            known, unknown = answers["100"][i], answers["555"][i]
            check(known.status == 401, "known user %s: %d" % (stage, known.status))
            check([n for n, _ in known.headers] == [n for n, _ in unknown.headers],
                  "header sets differ %s:\n%s\n---\n%s" % (stage, known, unknown))
            a, b = normalize(known.raw, "100"), normalize(unknown.raw, "555")
            check(a == b, "responses differ %s:\n%s\n---\n%s" % (stage, a, b))
            chal = known.get("WWW-Authenticate")
            check(re.fullmatch(r'Digest realm="127\.0\.0\.1", nonce="[0-9a-f]{56}", '
                               r'algorithm=MD5, qop="auth"', chal), "challenge: %s" % chal)
        log("  unknown user and wrong password: same 401, byte for byte")
    finally:
        c.close()


@test("stale_nonce", serve_args=["--nonce-ttl", "1"])
def t_stale_nonce(ctx):
    """With nonce_ttl 1 a 3 s old nonce is stale (sipp, flows.md); in raw form also: a stale
    nonce with a wrong password is just wrong (no stale=true, which would tell the client the
    password was right)."""
    c = SipClient(ctx.port)
    try:
        r = c.request("REGISTER", "101", expires=120)
        chal = parse_challenge(r.get("WWW-Authenticate"))
        ctx.sipp("stale_nonce.xml")  # waits 3 s, so chal is stale too by now
        r = c.request("REGISTER", "101", expires=120,
                      auth=authorization("101", "wrong-password", chal))
        check(r.status == 401 and "stale" not in r.get("WWW-Authenticate"),
              "stale nonce + wrong password must be a plain 401:\n%s" % r)
        r = c.request("REGISTER", "101", expires=120, auth=authorization("101", "secret101", chal))
        check(r.status == 401 and r.get("WWW-Authenticate").endswith(", stale=true"),
              "stale nonce + right password must be 401 stale=true:\n%s" % r)
        check(parse_challenge(r.get("WWW-Authenticate"))["nonce"] != chal["nonce"],
              "the stale answer must carry a new nonce")
    finally:
        c.close()
    check(ctx.user_list()["101"][0][0] == "offline", "101 must not be registered")


@test("replay")
def t_replay(ctx):
    """The same Authorization (same nonce, same nc) in a new transaction is refused with 401;
    a higher nc on the same nonce is a legitimate refresh; a nonce answered without qop is
    good for one request only."""
    c = SipClient(ctx.port)
    try:
        r, chal = c.register("100", "secret100", expires=120)
        check(r.status == 200, "first registration:\n%s" % r)
        auth1 = authorization("100", "secret100", chal, nc=1)

        # the very same credentials again: a new transaction (new branch, next CSeq)
        r = c.request("REGISTER", "100", expires=120, auth=auth1)
        check(r.status == 401, "replayed Authorization (same nc) must get 401:\n%s" % r)
        check(parse_challenge(r.get("WWW-Authenticate"))["nonce"] != chal["nonce"],
              "the refusal must carry a new nonce")

        # from another port too, as an eavesdropper would
        other = SipClient(ctx.port)
        try:
            r = other.request("REGISTER", "100", expires=120, auth=auth1,
                              contact="<sip:100@%s:%d>" % (HOST, other.port))
            check(r.status == 401, "replay from elsewhere must get 401:\n%s" % r)
        finally:
            other.close()

        # nc=2 is a refresh without a new challenge
        r = c.request("REGISTER", "100", expires=180,
                      auth=authorization("100", "secret100", chal, nc=2))
        check(r.status == 200, "nc=2 on a fresh nonce must be accepted:\n%s" % r)
        check(any(x.endswith(";expires=180") or x.endswith(";expires=179")
                  for x in r.contacts()), "refresh expiry: %s" % r.contacts())
        for nc in (2, 1):
            r = c.request("REGISTER", "100", expires=120,
                          auth=authorization("100", "secret100", chal, nc=nc))
            check(r.status == 401, "nc=%d after nc=2 must get 401:\n%s" % (nc, r))

        # RFC 2069 style (no qop): one request per nonce
        r = c.request("REGISTER", "100", expires=120)
        chal2 = parse_challenge(r.get("WWW-Authenticate"))
        auth2 = authorization("100", "secret100", chal2, qop=False)
        r = c.request("REGISTER", "100", expires=120, auth=auth2)
        check(r.status == 200, "credentials without qop must be accepted once:\n%s" % r)
        r = c.request("REGISTER", "100", expires=120, auth=auth2)
        check(r.status == 401, "credentials without qop replayed must get 401:\n%s" % r)
    finally:
        c.close()


@test("digest_uri")
def t_digest_uri(ctx):
    """RFC 2617 3.2.2.5: the digest uri must name the Request-URI (compared as SIP URIs, the
    default port filled in) or sipbx itself; right credentials for another uri get 400, so a
    captured INVITE's credentials cannot call someone else. Wrong credentials with a wrong
    uri get the usual challenge (nothing told about the uri)."""
    c = SipClient(ctx.port)
    try:
        def register_with(uri, password="secret100"):
            r = c.request("REGISTER", "100", expires=120)
            chal = parse_challenge(r.get("WWW-Authenticate"))
            return c.request("REGISTER", "100", expires=120,
                             auth=authorization("100", password, chal, uri=uri))

        r = register_with("sip:other.example.com")
        check(r.status == 400 and "Digest uri" in r.reason,
              "a uri naming another server must get 400:\n%s" % r)
        check(ctx.user_list()["100"][0][0] == "offline", "registered with a foreign uri")
        r = register_with("sip:other.example.com", password="wrong")
        check(r.status == 401, "wrong password and uri: want the 401 challenge, got\n%s" % r)
        for uri in ("sip:%s:5060;transport=udp" % DOMAIN.upper(), "sip:%s:%d" % (HOST, ctx.port)):
            r = register_with(uri)
            check(r.status == 200, "uri %s must be accepted:\n%s" % (uri, r))

        # An INVITE to 101 with credentials made for a call to 103
        bport = phone(ctx, "101")
        listener = quiet(ctx, bport)
        ruri = "sip:101@%s" % DOMAIN
        call_id = "%016x@test" % random.getrandbits(64)
        r = c.request("INVITE", "100", to_user="101", ruri=ruri, call_id=call_id)
        check(r.status == 407, "want 407 first, got\n%s" % r)
        ack_for(c, r, ruri)
        chal = parse_challenge(r.get("Proxy-Authenticate"))
        auth = authorization("100", USERS["100"], chal, method="INVITE",
                             uri="sip:103@%s" % DOMAIN)
        r = c.request("INVITE", "100", to_user="101", ruri=ruri, call_id=call_id,
                      extra=["Proxy-Authorization: " + auth])
        check(r.status == 400, "credentials for another callee must get 400:\n%s" % r)
        ack_for(c, r, ruri)
        heard_nothing(listener, "101 (with credentials made for a call to 103)")
    finally:
        c.close()
    check("does not match the Request-URI" in ctx.daemon_log(), "the refusal is not logged")
