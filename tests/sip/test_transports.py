"""SIP tests of calls over TCP, TLS and across transports (the TCP/TLS issue): both legs of
a call answered, busy, cancelled and timed out over TCP; TLS phones calling each other and
UDP phones; a UDP caller with a TCP-only callee (two Record-Route entries, RFC 5658, and ACK
and BYE both ways); the CANCEL of a fork that lost, with its Reason (RFC 3326). The phones
are raw sockets of tests/lib/sipbxtest/phone.py (TLS through Python's ssl), which keep every
message they received, so each leg is checked as the phone saw it.
"""

import re
import time

from checks import cdr_is
from harness import HOST, USERS, check, log, test, with_tls
from sipbxtest.net import free_port
from sipbxtest.phone import SDP, Phone, rand, request

RR = r"<sip:127\.0\.0\.1:%d%s;lr;sbx=[0-9a-f]{24}>"


def port_of(ctx, transport):
    """sipbx's port for transport: TLS has its own."""
    return ctx.tls_port if transport == "tls" else ctx.port


def rr_re(ctx, transport):
    return RR % (port_of(ctx, transport), "" if transport == "udp" else ";transport=" + transport)


def wait(ep, pred, what, timeout=5.0):
    m = ep.wait(pred, timeout)
    check(m is not None, "%s: nothing arrived; got %s" % (what, [x.first for x in ep.received]))
    return m


def request_of(method, to_tag=None):
    def pred(m):
        return m.method == method and (to_tag is None or (m.tag("To") is not None) == to_tag)
    return pred


def via_is_ours(ctx, m, transport, what):
    v = m.all("Via")[0]
    check(re.match(r"SIP/2\.0/%s 127\.0\.0\.1:%d;.*branch=z9hG4bKsbx" % (
        transport.upper(), port_of(ctx, transport)), v),
          "%s: top Via %r is not sipbx's over %s" % (what, v, transport))


def callee_dialog(caller, inv, resp):
    """The callee's side of the dialog of inv (as the callee received it) and resp (its 2xx)."""
    return {"call_id": inv.get("Call-ID"), "from_tag": resp.tag("To"), "to_tag": inv.tag("From"),
            "to": caller.aor, "route": inv.all("Record-Route"), "cseq": 100,
            "target": re.sub(r"^<|>.*$", "", inv.get("Contact"))}


def invite(caller, to_ext, cseq=1, auth=None, call_id=None):
    """Sends (does not wait for) an INVITE of caller; returns (call_id, text, branch)."""
    call_id = call_id or rand() + "@call"
    text, branch = request(caller, "INVITE", "sip:%s@127.0.0.1" % to_ext, caller.aor,
                           "sip:%s@127.0.0.1" % to_ext, call_id, cseq, caller.tag,
                           extra=[auth] if auth else [], body=SDP)
    caller.send(text)
    return call_id, text, branch


def authed_invite(caller, to_ext):
    """An INVITE answered 407, ACKed, and sent again with credentials; returns
    (call_id, text, branch) of the second."""
    from sipbxtest.phone import digest, parse_challenge
    call_id, text, branch = invite(caller, to_ext)
    r = caller.response(branch, timeout=5)
    check(r is not None and r.status == 407, "want 407, got %s" % (r and r.first))
    ack, _ = request(caller, "ACK", "sip:%s@127.0.0.1" % to_ext, caller.aor,
                     "sip:%s@127.0.0.1" % to_ext, call_id, 1, caller.tag, r.tag("To"),
                     branch=branch, contact=False)
    caller.send(ack)
    auth = "Proxy-Authorization: " + digest(caller.ext, caller.password, parse_challenge(
        r.get("Proxy-Authenticate")), "INVITE", "sip:%s@127.0.0.1" % to_ext)
    return invite(caller, to_ext, cseq=2, auth=auth, call_id=call_id)


def cancel(caller, text):
    """The CANCEL of the INVITE text (same branch, CSeq number and Request-URI)."""
    head = text.split("\r\n\r\n")[0].split("\r\n")
    keep = [l for l in head[1:] if not l.lower().startswith(("content-", "contact:"))]
    first = head[0].replace("INVITE ", "CANCEL ", 1)
    keep = [re.sub(r"^CSeq: (\d+) INVITE", r"CSeq: \1 CANCEL", l) for l in keep]
    caller.send("\r\n".join([first] + keep + ["Content-Length: 0", "", ""]))


def phones(ctx, caller_transport, callee_transport, callee_answer=True, contacts=None):
    """Phones 100 and 101 registered; contacts: (user, port) of each one's Contact when not
    its extension at its own port."""
    (cu, cp), (eu, ep) = contacts or ((None, None), (None, None))
    caller = Phone(port_of(ctx, caller_transport), "100", USERS["100"],
                   transport=caller_transport, contact_user=cu, contact_port=cp)
    callee = Phone(port_of(ctx, callee_transport), "101", USERS["101"],
                   transport=callee_transport, answer=callee_answer, contact_user=eu,
                   contact_port=ep)
    for p in (caller, callee):
        r = p.register()
        check(r.status == 200, "REGISTER over %s: %s" % (p.transport, r.first))
    return caller, callee


def answered_both_ways(ctx, caller_tr, callee_tr, contacts=None):
    """A call from a caller on caller_tr to a callee on callee_tr: both legs as the phones
    saw them, ACK and BYE from the caller, then a second call ended by the callee.
    contacts: as for phones()."""
    caller, callee = phones(ctx, caller_tr, callee_tr, contacts=contacts)
    try:
        want = [rr_re(ctx, callee_tr)] + ([rr_re(ctx, caller_tr)] if caller_tr != callee_tr
                                          else [])
        for ender in ("caller", "callee"):
            callee.received.clear()
            r, dlg = caller.invite("101")
            check(r.status == 200, "call over %s -> %s: %s" % (caller_tr, callee_tr, r.first))
            inv = wait(callee, request_of("INVITE", False), "INVITE at the callee")
            via_is_ours(ctx, inv, callee_tr, "INVITE at the callee")
            rr = inv.all("Record-Route")
            check(len(rr) == len(want) and all(re.fullmatch(w, v) for w, v in zip(want, rr)),
                  "INVITE at the callee: Record-Route %s, want %s" % (rr, want))
            check(r.all("Record-Route") == rr, "the caller's 200 has Record-Route %s, the "
                  "callee's INVITE %s" % (r.all("Record-Route"), rr))
            check(re.fullmatch(rr_re(ctx, caller_tr), dlg["route"][0]),
                  "the caller's first hop %s is not sipbx over %s" % (dlg["route"][0], caller_tr))
            ack = wait(callee, request_of("ACK"), "the caller's ACK at the callee")
            via_is_ours(ctx, ack, callee_tr, "ACK at the callee")
            check(not ack.all("Route"), "sipbx left Route in the ACK: %s" % ack.all("Route"))
            if ender == "caller":
                r = caller.in_dialog(dlg, "BYE")
                check(r.status == 200, "the caller's BYE: %s" % r.first)
                bye = wait(callee, request_of("BYE"), "the caller's BYE at the callee")
                via_is_ours(ctx, bye, callee_tr, "BYE at the callee")
            else:
                cdlg = callee_dialog(caller, inv, r)
                check(re.fullmatch(rr_re(ctx, callee_tr), cdlg["route"][0]),
                      "the callee's first hop %s" % cdlg["route"][0])
                r = callee.in_dialog(cdlg, "BYE")
                check(r.status == 200, "the callee's BYE: %s" % r.first)
                bye = wait(caller, request_of("BYE"), "the callee's BYE at the caller")
                via_is_ours(ctx, bye, caller_tr, "BYE at the caller")
            cdr_is(ctx, dlg["call_id"], disposition="ANSWERED", hangup_by=ender)
            log("  %s -> %s, ended by the %s: ok" % (caller_tr, callee_tr, ender))
    finally:
        caller.close()
        callee.close()


@test("tcp_call")
def t_tcp_call(ctx):
    """Both phones on TCP: the callee's INVITE comes with sipbx's Via over TCP and one
    Record-Route naming transport=tcp; ACK and BYE reach each side over its connection."""
    answered_both_ways(ctx, "tcp", "tcp")


@test("mixed_transport_call")
def t_mixed(ctx):
    """A UDP caller and a TCP-only callee, then the other way round: two Record-Route
    entries (RFC 5658), the one facing each phone first in its route set, and ACK and BYE
    from both sides cross from one transport to the other."""
    answered_both_ways(ctx, "udp", "tcp")
    answered_both_ways(ctx, "tcp", "udp")


@test("tcp_busy")
def t_tcp_busy(ctx):
    """A TCP callee answers 486: sipbx ACKs it on its connection, the caller gets 486."""
    caller, callee = phones(ctx, "tcp", "tcp", callee_answer=False)
    callee.handler = lambda ep, req: req.method == "INVITE" and ep.reply(req, 486, "Busy Here")
    try:
        call_id, text, branch = authed_invite(caller, "101")
        r = caller.response(branch, timeout=5)
        check(r is not None and r.status == 486, "the caller got %s" % (r and r.first))
        ack = wait(callee, request_of("ACK"), "sipbx's ACK of the 486")
        via_is_ours(ctx, ack, "tcp", "ACK of the 486")
        inv = wait(callee, request_of("INVITE"), "INVITE")
        check(ack.get("Via").split("branch=")[1] == inv.get("Via").split("branch=")[1],
              "the ACK of a 486 is hop by hop: same branch as the INVITE")
        cdr_is(ctx, call_id, disposition="BUSY", status=486)
    finally:
        caller.close()
        callee.close()


def ringing_callee(callee, log_487):
    """The callee rings, and answers a CANCEL with 200 and then 487 (noting when)."""
    def handler(ep, req):
        if req.method == "INVITE":
            ep.inv = req
            ep.reply(req, 180, "Ringing", ["Contact: <sip:101@%s:%d;transport=%s>" % (
                HOST, ep.port, ep.transport)])
        elif req.method == "CANCEL":
            ep.reply(req, 200, "OK")
            log_487.append(time.monotonic())
            ep.reply(ep.inv, 487, "Request Terminated")
    callee.handler = handler


def unanswered(ctx, caller, callee, final, sent_487):
    """What must hold after an unanswered INVITE ended: the callee's 487 ACKed, the caller's
    final answer within 100 ms of that 487 (not after a guard time)."""
    ack = wait(callee, request_of("ACK"), "sipbx's ACK of the 487")
    via_is_ours(ctx, ack, callee.transport, "ACK of the 487")
    check(final is not None, "the caller got no final answer")
    check(sent_487, "the callee was never cancelled")
    return final.at - sent_487[0]


@test("tcp_cancel")
def t_tcp_cancel(ctx):
    """The caller gives up; the TCP callee answers sipbx's CANCEL with 200 and then 487:
    the 487 is ACKed at once and the caller gets its 487 within 100 ms of it (0.1 had a 2 s
    wait here, the 487 being ignored on TCP)."""
    caller, callee = phones(ctx, "tcp", "tcp", callee_answer=False)
    sent_487 = []
    ringing_callee(callee, sent_487)
    try:
        call_id, text, branch = authed_invite(caller, "101")
        wait(caller, lambda m: m.status == 180, "180 at the caller")
        cancel(caller, text)
        final = caller.wait(lambda m: m.status == 487 and "INVITE" in (m.cseq or ""), 5)
        took = unanswered(ctx, caller, callee, final, sent_487)
        check(took < 0.1, "the caller's 487 came %.3f s after the callee's" % took)
        c = wait(callee, request_of("CANCEL"), "CANCEL at the callee")
        check(c.get("Reason") is None, "a caller's CANCEL without a Reason got one: %s"
              % c.get("Reason"))
        cdr_is(ctx, call_id, disposition="CANCELLED", hangup_by="caller")
        log("  487 relayed %.0f ms after the callee's" % (took * 1000))
    finally:
        caller.close()
        callee.close()


@test("tcp_ring_timeout", serve_args=("--ring-timeout", "2"))
def t_tcp_ring_timeout(ctx):
    """Nobody answers in 2 s: sipbx CANCELs the TCP callee with Reason cause=408 "Ring
    timeout"; its 487 is ACKed and the caller gets 408 at once."""
    caller, callee = phones(ctx, "tcp", "tcp", callee_answer=False)
    sent_487 = []
    ringing_callee(callee, sent_487)
    try:
        call_id, text, branch = authed_invite(caller, "101")
        final = caller.wait(lambda m: m.status == 408 and "INVITE" in (m.cseq or ""), 6)
        took = unanswered(ctx, caller, callee, final, sent_487)
        check(took < 0.1, "the caller's 408 came %.3f s after the callee's 487" % took)
        c = wait(callee, request_of("CANCEL"), "CANCEL at the callee")
        check(c.get("Reason") == 'SIP;cause=408;text="Ring timeout"', "Reason %r" % c.get(
            "Reason"))
        cdr_is(ctx, call_id, disposition="NO ANSWER", status=408)
    finally:
        caller.close()
        callee.close()


@test("fork_cancel_reason")
def t_fork_cancel_reason(ctx):
    """Two devices of 101, one on TCP that answers and one on UDP that only rings: the one
    that lost gets a CANCEL with Reason cause=200 "Call completed elsewhere", so it does
    not log a missed call."""
    caller = Phone(ctx.port, "100", USERS["100"], answer=False)
    taker = Phone(ctx.port, "101", USERS["101"], transport="tcp")
    ringer = Phone(ctx.port, "101", USERS["101"], answer=False)
    sent_487 = []
    ringing_callee(ringer, sent_487)
    try:
        for p in (caller, taker, ringer):
            check(p.register().status == 200, "REGISTER of %s" % p.transport)
        time.sleep(0.2)
        taker.handler = None  # answer only once the other device rings

        def take(ep, req):
            if req.method == "INVITE" and not req.tag("To"):
                wait(ringer, request_of("INVITE"), "INVITE at the second device", 3)
                time.sleep(0.2)
            Phone._answer(ep, req)
        taker.handler = take
        r, dlg = caller.invite("101")
        check(r.status == 200, "the call: %s" % r.first)
        c = wait(ringer, request_of("CANCEL"), "CANCEL at the device that lost")
        check(c.get("Reason") == 'SIP;cause=200;text="Call completed elsewhere"',
              "Reason %r" % c.get("Reason"))
        wait(ringer, request_of("ACK"), "ACK of its 487")
        check(caller.in_dialog(dlg, "BYE").status == 200, "BYE")
    finally:
        for p in (caller, taker, ringer):
            p.close()


@test("tls_call")
def t_tls_call(ctx):
    """Both phones on TLS: registered over TLS, the callee's INVITE comes over its TLS
    connection with one Record-Route naming transport=tls and the TLS port; ACK and BYE
    reach each side; then a TLS caller with a UDP callee and the other way round, two
    Record-Route entries each time."""
    with_tls(ctx)
    answered_both_ways(ctx, "tls", "tls")
    answered_both_ways(ctx, "tls", "udp")
    answered_both_ways(ctx, "udp", "tls")
    # the capture names sipbx's end of each message as it was: the TLS port for TLS
    ends = {(r["transport"], r["local"]) for r in ctx.db_exec(
        "SELECT DISTINCT transport, local FROM trace_messages")}
    want = {("tls", "%s:%d" % (HOST, ctx.tls_port)), ("udp", "%s:%d" % (HOST, ctx.port))}
    check(ends == want, "sipbx's end in the capture: %s, want %s" % (sorted(ends), sorted(want)))


@test("contact_user_not_extension")
def t_contact_user(ctx):
    """Phones on TCP and on TLS whose Contact's user part is not their extension and whose
    Contact's port is not their connection's (baresip writes "100-0x55d3..." and the port it
    listens on): a BYE to either still goes over the connection it registered on. sipbx
    looked the binding up by the Contact's user part, found none, and opened a connection
    to the Contact, where a phone behind NAT, or one that takes no TLS connections (baresip
    without a certificate), is not reached; here nothing listens there."""
    with_tls(ctx)
    for tr in ("tcp", "tls"):
        answered_both_ways(ctx, tr, tr, contacts=(("100-0x5b1d9e", free_port()),
                                                  ("101-0x77ae30", free_port())))


@test("tls_cancel", serve_args=("--ring-timeout", "2"))
def t_tls_cancel(ctx):
    """Over TLS the CANCEL of a caller and of the ring timer end as over TCP: the 487 ACKed
    on the phone's TLS connection, the caller's answer within 100 ms of it."""
    with_tls(ctx)
    for final, who in ((487, "caller"), (408, "ring timer")):
        caller, callee = phones(ctx, "tls", "tls", callee_answer=False)
        sent_487 = []
        ringing_callee(callee, sent_487)
        try:
            call_id, text, branch = authed_invite(caller, "101")
            wait(caller, lambda m: m.status == 180, "180 at the caller")
            if final == 487:
                cancel(caller, text)
            got = caller.wait(lambda m: m.status == final and "INVITE" in (m.cseq or ""), 6)
            took = unanswered(ctx, caller, callee, got, sent_487)
            check(took < 0.1, "%s: the caller's %d came %.3f s after the callee's 487" % (
                who, final, took))
            log("  cancelled by the %s over TLS: answered %.0f ms after the 487" % (
                who, took * 1000))
        finally:
            caller.close()
            callee.close()


@test("localhost_is_us")
def t_localhost_is_us(ctx):
    """A phone on this machine whose outbound proxy is "localhost" (Linphone's setting, a
    name of sipbx other than its domain) sends its INVITE with Route <sip:localhost:PORT;lr>
    and Request-URI sip:101@localhost: sipbx takes both as its own (0.1 answered 403 "No
    routing through this server") and the call goes through."""
    caller, callee = phones(ctx, "udp", "udp")
    try:
        r, dlg = caller.invite("101", ruri="sip:101@localhost",
                               extra=["Route: <sip:localhost:%d;lr>" % ctx.port])
        check(r.status == 200, "INVITE via localhost: %s" % r.first)
        wait(callee, request_of("INVITE", False), "INVITE at the callee")
        b = caller.in_dialog(dlg, "BYE")
        check(b.status == 200, "BYE: %s" % b.first)
    finally:
        caller.close()
        callee.close()
