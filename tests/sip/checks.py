"""Checks shared by the call-flow tests (tests/sip/test_proxy.py, test_forwarding.py and
others): a phone registered by SIPp, what a message forwarded or relayed by sipbx must look
like, the caller's and callee's side of a call (authenticated, reached, answered, released,
failed, cancelled), sipbx's own capture of a call in order, and its call record. A is the
caller, B the callee, C a forward target (flows.md).
"""

import random
import re
import time

from harness import (DOMAIN, HOST, USERS, SipClient, authorization, check,  # noqa: F401
                     parse_challenge)


# ---------------------------------------------------------------------------------------------
# call flows (flows.md): a phone, what sipbx forwarded and relayed, each side of a call

def phone(ctx, user, second=False):
    """Registers a device of user from a new port (the second device of a user with
    two_devices.xml) and returns the port, where its answering scenario is started next."""
    return ctx.sipp("two_devices.xml" if second else "register.xml", user=user)


def one(msgs, what):
    check(len(msgs) >= 1, "%s: none" % what)
    return msgs[0]


def unique(msgs):
    """Messages without retransmissions (the same text again)."""
    seen, out = set(), []
    for m in msgs:
        if m.raw not in seen:
            seen.add(m.raw)
            out.append(m)
    return out


def proxied(ctx, m, what, nvia=2, mf=69, record_route=True):
    """m, received by a phone, was forwarded by sipbx: sipbx's Via on top (its own branch),
    the sender's below, Max-Forwards decremented, sipbx's Route gone, no credentials left,
    and sipbx's Record-Route on an initial INVITE."""
    vias = m.vias()
    check(len(vias) == nvia, "%s: want %d Via entries, got %s\n%s" % (what, nvia, vias, m))
    check(re.match(r"SIP/2\.0/%s 127\.0\.0\.1:%d;.*branch=z9hG4bKsbx[0-9a-f]{16}\.\d+"
                   % ("TCP" if ctx.tcp else "UDP", ctx.port), vias[0]),
          "%s: top Via is not sipbx's: %s" % (what, vias[0]))
    check(m.get("Max-Forwards") == str(mf), "%s: Max-Forwards %s, want %d" % (
        what, m.get("Max-Forwards"), mf))
    rr = m.all("Record-Route")
    if record_route:
        check(is_our_route(ctx, rr),
              "%s: Record-Route %s, want sipbx's signed one" % (what, rr))
    else:
        check(rr == [], "%s: Record-Route %s, want none" % (what, rr))
    check(not m.all("Route"), "%s: sipbx left its Route in:\n%s" % (what, m))
    check(not m.get("Proxy-Authorization"), "%s: credentials forwarded:\n%s" % (what, m))


def our_rr(ctx):
    """A regular expression for sipbx's Record-Route (or the Route a phone makes of it): its
    address, lr, and the dialog token sipbx signs (24 hex digits)."""
    return r"<sip:%s:%d%s;lr;sbx=[0-9a-f]{24}>" % (re.escape(HOST), ctx.port,
                                                   ";transport=tcp" if ctx.tcp else "")


def is_our_route(ctx, values):
    """values (a header's entries) is exactly sipbx's signed Record-Route."""
    return len(values) == 1 and re.fullmatch(our_rr(ctx), values[0]) is not None


def relayed(m, what):
    """m, received by the phone that sent the request, came back through sipbx: sipbx took
    its own Via off again."""
    vias = m.vias()
    check(len(vias) == 1 and "z9hG4bKsbx" not in vias[0],
          "%s: Via entries %s (sipbx's must be gone)" % (what, vias))


def caller_authenticated(ctx, a, user="100"):
    """A's first INVITE was challenged with 407 (Proxy-Authenticate), A's ACK of the 407
    ended that transaction (same branch), and the second INVITE carried credentials."""
    inv1 = one(a.sent("INVITE", "1 INVITE"), "caller's first INVITE")
    r407 = one(a.received(407, "1 INVITE"), "407 to the first INVITE")
    check((r407.get("Proxy-Authenticate") or "").startswith('Digest realm="%s"' % DOMAIN),
          "407 without a challenge:\n%s" % r407)
    relayed(r407, "407")
    ack = one(a.sent("ACK", "1 ACK"), "ACK of the 407")
    check(ack.branch() == inv1.branch(), "ACK of the 407 has another branch")
    inv2 = one(a.sent("INVITE", "2 INVITE"), "caller's INVITE with credentials")
    check('username="%s"' % user in (inv2.get("Proxy-Authorization") or ""),
          "second INVITE without Proxy-Authorization:\n%s" % inv2)
    return inv2


def invite_reached(ctx, phone_run, inv, port, user, what="callee", mf=69, contact_params=""):
    """The phone on port got A's INVITE inv through sipbx, at its registered Contact, with the
    same dialog identifiers and body; returns the INVITE it got."""
    got = one(phone_run.received("INVITE"), "INVITE at the %s" % what)
    check(got.ruri == "sip:%s@%s:%d%s" % (user, HOST, port, contact_params),
          "%s: Request-URI %s is not the registered Contact" % (what, got.ruri))
    proxied(ctx, got, "INVITE at the %s" % what, mf=mf)
    for h in ("Call-ID", "From", "CSeq", "Content-Type"):
        check(got.get(h) == inv.get(h), "%s: %s changed: %s -> %s" % (what, h, inv.get(h),
                                                                       got.get(h)))
    check(got.body.strip() == inv.body.strip(), "%s: SDP changed" % what)
    check(got.vias()[1].startswith("SIP/2.0/%s 127.0.0.1:%d;branch=%s" % (
        "TCP" if ctx.tcp else "UDP",
        int(re.search(r":(\d+);", inv.vias()[0]).group(1)), inv.branch())),
          "%s: the caller's Via is not below sipbx's: %s" % (what, got.vias()))
    return got


def answered_call(ctx, a, b, b_port, b_user="101", a_user="100", contact_params=""):
    """Both legs of an answered call (flows.md "Basic call and release") up to the ACK:
    returns (the INVITE at B, the 200 at A)."""
    inv = caller_authenticated(ctx, a, a_user)
    got = invite_reached(ctx, b, inv, b_port, b_user, contact_params=contact_params)
    ok = one(a.received(200, "2 INVITE"), "200 at the caller")
    relayed(ok, "200 at the caller")
    b_tag = one(b.sent(200, "2 INVITE"), "200 from the callee").tag("To")
    check(ok.tag("To") == b_tag, "the caller's 200 is not the callee's (To tag %s, want %s)" % (
        ok.tag("To"), b_tag))
    check(is_our_route(ctx, ok.all("Record-Route")),
          "200 at the caller: Record-Route %s" % ok.all("Record-Route"))
    ack = one(b.received("ACK", "2 ACK"), "ACK at the callee")
    proxied(ctx, ack, "ACK at the callee", record_route=False)
    check(ack.ruri == "sip:%s@%s:%d%s" % (b_user, HOST, b_port, contact_params),
          "ACK Request-URI %s" % ack.ruri)
    check(len(unique(b.received("ACK"))) == 1, "the callee got more than one ACK")
    return got, ok


def released(ctx, frm, to, what, cseq):
    """The BYE that frm sent reached to through sipbx, and its 200 came back the same way."""
    bye = one(frm.sent("BYE"), "BYE from the %s" % what)
    got = one(to.received("BYE"), "BYE through sipbx (%s)" % what)
    proxied(ctx, got, "BYE at the other side (%s)" % what, record_route=False)
    check(got.cseq() == cseq == bye.cseq(), "BYE CSeq %s" % got.cseq())
    check(got.tag("From") == bye.tag("From") and got.tag("To") == bye.tag("To"),
          "BYE dialog tags changed")
    ok = one(frm.received(200, cseq), "200 to the BYE")
    relayed(ok, "200 to the BYE")


def caller_saw(a, cseq, want, what):
    """The statuses A got for cseq, in order, are want (a list); retransmitted final
    responses count once (provisional ones are never retransmitted here: no 100rel)."""
    got, finals = [], set()
    for m in a.received():
        if m.status and m.cseq() == cseq and m.raw not in finals:
            got.append(m.status)
            if m.status >= 200:
                finals.add(m.raw)
    check(got == want, "%s: the caller got %s, want %s" % (what, got, want))


def failure_acked(ctx, a, b, status, what):
    """B's final failure status was ACKed by sipbx hop by hop (same branch, CSeq INVITE's),
    A got it relayed (B's To tag), and A's own ACK stayed at sipbx."""
    got = one(b.received("INVITE"), "INVITE at %s" % what)
    fin = one(b.sent(status), "%d from %s" % (status, what))
    acks = unique(b.received("ACK"))
    check(len(acks) == 1, "%s: want one ACK from sipbx, got %d" % (what, len(acks)))
    ack = acks[0]
    check(ack.vias() == [got.vias()[0]] and ack.branch() == got.branch(),
          "%s: the ACK of the %d is not sipbx's, for its INVITE: %s" % (what, status, ack.vias()))
    check(ack.cseq() == got.cseq().replace("INVITE", "ACK") and ack.ruri == got.ruri,
          "%s: ACK %s %s" % (what, ack.ruri, ack.cseq()))
    check(ack.tag("To") == fin.tag("To"), "%s: ACK To tag %s" % (what, ack.tag("To")))
    if a is not None:
        r = one(a.received(status, "2 INVITE"), "%d at the caller" % status)
        relayed(r, "%d at the caller" % status)
        check(r.tag("To") == fin.tag("To"), "the caller's %d is not %s's" % (status, what))
    return got


def cancelled_leg(ctx, b, what):
    """B's side of a cancelled INVITE: sipbx's CANCEL for the INVITE B got (same branch and
    Request-URI, CSeq number), B's 200 and 487, and sipbx's ACK of the 487."""
    got = one(b.received("INVITE"), "INVITE at %s" % what)
    cancels = unique(b.received("CANCEL"))
    check(len(cancels) == 1, "%s: want one CANCEL, got %d" % (what, len(cancels)))
    c = cancels[0]
    check(c.vias() == [got.vias()[0]] and c.ruri == got.ruri,
          "%s: the CANCEL is not for the INVITE it got: %s %s" % (what, c.ruri, c.vias()))
    check(c.cseq() == got.cseq().replace("INVITE", "CANCEL"), "%s: CANCEL CSeq %s" % (
        what, c.cseq()))
    check(c.tag("To") is None, "%s: a CANCEL has the INVITE's To (no tag)" % what)
    one(b.sent(200, c.cseq()), "%s's 200 to the CANCEL" % what)
    failure_acked(ctx, None, b, 487, what)
    return got, c


# ---------------------------------------------------------------------------------------------
# sipbx's own capture of a call, and its record

def captured(ctx, call_id, until, timeout=3.0):
    """sipbx's own capture of call_id (trace_messages, in the order sipbx sent and received
    them, without retransmissions and 100 Trying) as (direction, peer port, method or
    status) tuples; waits until until(ladder) holds or the timeout passes."""
    deadline = time.monotonic() + timeout
    while True:
        rows = ctx.db_exec("SELECT direction, remote, first_line FROM trace_messages "
                           "WHERE call_id = ? AND retransmission = 0 ORDER BY id", call_id)
        ladder = []
        for t in rows:
            words = t["first_line"].split(" ")
            what = words[1] if words[0].startswith("SIP/") else words[0]
            if what != "100":
                ladder.append((t["direction"], int(t["remote"].rsplit(":", 1)[1]), what))
        if until(ladder) or time.monotonic() > deadline:
            return ladder
        time.sleep(0.1)


def in_order(ctx, call_id, *steps):
    """In sipbx's own capture of call_id, steps ((direction, port, method or status), ...)
    all happened, in this order (the first occurrence of each). Timestamps of two SIPp
    processes cannot order messages a millisecond apart; sipbx's capture can."""
    lad = captured(ctx, call_id, lambda ld: all(x in ld for x in steps))
    check(all(x in lad for x in steps), "capture of %s lacks some of %s: %s" % (call_id, steps,
                                                                                 lad))
    idx = [lad.index(x) for x in steps]
    check(idx == sorted(idx), "sipbx did %s in another order: %s" % (" < ".join(map(str, steps)),
                                                                      lad))


def answered_after_callee(ctx, call_id, a_port, b_port, status):
    """In sipbx's own capture, the caller's final status (487 or 408) went out only after
    B's 487 came in and was ACKed (the ladders of flows.md "Caller gives up" and "No answer:
    the server's ring timer"). Timestamps of two SIPp processes cannot order this."""
    in_order(ctx, call_id, ("in", b_port, "487"), ("out", a_port, status))
    in_order(ctx, call_id, ("in", b_port, "487"), ("out", b_port, "ACK"))


def cdr_is(ctx, call_id, **want):
    """The call record of call_id has the wanted fields; returns it."""
    row = ctx.cdr(call_id)
    for k, v in want.items():
        check(row[k] == v, "call record %s: %s is %r, want %r (%s)" % (call_id, k, row[k], v, row))
    return row


# ---------------------------------------------------------------------------------------------
# raw requests next to the phones: a phone that must hear nothing, ACKs, challenged requests

def quiet(ctx, port):
    """A socket on a registered phone's port, to show it is never called."""
    return SipClient(ctx.port, local_port=port)


def heard_nothing(listener, who):
    heard = listener.drain(0.2)
    listener.close()
    check(not heard, "%s must not be called, got:\n%s" % (who, "\n".join(heard)))


def ack_for(c, r, ruri):
    """ACKs the final failure r of an INVITE that c sent (same branch: r's Via)."""
    c.send_raw("ACK %s SIP/2.0\r\nVia: %s\r\nMax-Forwards: 70\r\nFrom: %s\r\nTo: %s\r\n"
               "Call-ID: %s\r\nCSeq: %s ACK\r\nContent-Length: 0\r\n\r\n"
               % (ruri, r.get("Via"), r.get("From"), r.get("To"), r.get("Call-ID"),
                  r.get("CSeq").split()[0]))


def proxy_request(c, method, user, ruri, auth_user=None, **kw):
    """A request that sipbx challenges with 407, then the same with Proxy-Authorization
    for auth_user (default: user); returns the final response to the second."""
    auth_user = auth_user or user
    kw.setdefault("call_id", "%016x@test" % random.getrandbits(64))
    r = c.request(method, user, ruri=ruri, **kw)
    check(r.status == 407, "%s %s: want 407 first, got\n%s" % (method, ruri, r))
    if method == "INVITE":
        ack_for(c, r, ruri)
    chal = parse_challenge(r.get("Proxy-Authenticate"))
    auth = authorization(auth_user, USERS[auth_user], chal, method=method, uri=ruri)
    kw["extra"] = list(kw.get("extra", ())) + ["Proxy-Authorization: " + auth]
    r = c.request(method, user, ruri=ruri, **kw)
    if method == "INVITE" and r.status >= 300:
        ack_for(c, r, ruri)
    return r
