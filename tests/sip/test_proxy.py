"""SIP tests of the stateful proxy (flows.md): calls answered, released by either side, busy,
cancelled (also crossing the answer, with a slow callee, retransmitted), unanswered (the ring
timer), to nobody, forked to two devices, held and resumed, kept up by session timers,
looped, with call waiting on and off, to oneself; MESSAGE, requests outside a dialog, and
what the proxy refuses.
"""

import random
import time

from checks import (ack_for, answered_after_callee, answered_call, caller_authenticated,
                    caller_saw, cancelled_leg, cdr_is, failure_acked, heard_nothing, in_order,
                    invite_reached, is_our_route, one, phone, proxied, proxy_request, quiet,
                    relayed, released, unique)
from harness import DOMAIN, HOST, SipClient, check, log, test


@test("call")
def t_call(ctx):
    """flows.md "Basic call and release", released by the caller: 407 then credentials, 100,
    180, 200 with Record-Route; ACK and BYE go through sipbx; one ANSWERED record."""
    bport = phone(ctx, "101")
    b = ctx.sipp_start("call_callee.xml", user="101", local_port=bport)
    a = ctx.run_sipp("call_caller.xml", user="100", keys={"callee": "101"}, pause_ms=300)
    ctx.sipp_wait(b)
    answered_call(ctx, a, b, bport)
    caller_saw(a, "2 INVITE", [100, 180, 200], "answered call")
    got = [m.status for m in a.received() if m.status and m.cseq() == "1 INVITE"]
    check(got in ([407], [100, 407]), "unauthenticated INVITE: the caller got %s" % got)
    released(ctx, a, b, "caller", "3 BYE")
    cdr_is(ctx, a.call_id(), disposition="ANSWERED", status=200,
           hangup_by="caller", caller="100", dialled="101", answered_by="101", forwards="[]")


@test("callee_bye")
def t_callee_bye(ctx):
    """flows.md "Basic call and release", released by the callee: B's BYE goes through
    sipbx to A's Contact (Route taken off), the 200 comes back to B; the record says callee."""
    bport = phone(ctx, "101")
    b = ctx.sipp_start("callee_bye_callee.xml", user="101", local_port=bport)
    a = ctx.run_sipp("callee_bye_caller.xml", user="100", keys={"callee": "101"})
    ctx.sipp_wait(b)
    answered_call(ctx, a, b, bport)
    released(ctx, b, a, "callee", "1 BYE")
    bye = one(a.received("BYE"), "BYE at the caller")
    check(bye.ruri == "sip:100@%s:%d" % (HOST, a.port), "BYE Request-URI %s is not A's Contact"
          % bye.ruri)
    sent = one(b.sent("BYE"), "B's BYE")
    check(is_our_route(ctx, sent.all("Route")),
          "B's BYE does not follow the Record-Route: %s" % sent.all("Route"))
    cdr_is(ctx, bye.get("Call-ID"), disposition="ANSWERED", hangup_by="callee", answered_by="101")


@test("busy")
def t_busy(ctx):
    """flows.md "Callee busy": B 486 -> sipbx ACKs B -> A gets the 486 and ACKs sipbx."""
    bport = phone(ctx, "101")
    b = ctx.sipp_start("busy_callee.xml", user="101", local_port=bport)
    a = ctx.run_sipp("busy_caller.xml", user="100", keys={"callee": "101"})
    ctx.sipp_wait(b)
    inv = caller_authenticated(ctx, a)
    invite_reached(ctx, b, inv, bport, "101")
    failure_acked(ctx, a, b, 486, "the callee")
    caller_saw(a, "2 INVITE", [100, 486], "busy")
    check(one(a.sent("ACK", "2 ACK"), "A's ACK").branch() == inv.branch(), "A's ACK branch")
    cdr_is(ctx, inv.get("Call-ID"), disposition="BUSY", status=486, hangup_by="callee")


@test("cancel")
def t_cancel(ctx):
    """flows.md "Caller gives up": A CANCEL -> 200 -> CANCEL to B -> B 200 + 487 -> sipbx ACKs
    -> A gets 487 and ACKs."""
    bport = phone(ctx, "101")
    b = ctx.sipp_start("cancel_callee.xml", user="101", local_port=bport)
    a = ctx.run_sipp("cancel_caller.xml", user="100", keys={"callee": "101"})
    ctx.sipp_wait(b)
    inv = caller_authenticated(ctx, a)
    invite_reached(ctx, b, inv, bport, "101")
    cancelled_leg(ctx, b, "the callee")
    in_order(ctx, inv.get("Call-ID"), ("in", a.port, "CANCEL"), ("out", bport, "CANCEL"))
    caller_saw(a, "2 INVITE", [100, 180, 487], "cancelled call")
    caller_saw(a, "2 CANCEL", [200], "CANCEL")
    relayed(one(a.received(487), "487 at the caller"), "487 at the caller")
    answered_after_callee(ctx, inv.get("Call-ID"), a.port, bport, "487")
    cdr_is(ctx, inv.get("Call-ID"), disposition="CANCELLED", status=487, hangup_by="caller")


@test("cancel_race")
def t_cancel_race(ctx):
    """A CANCEL that crosses B's 200: the 200 still reaches A (RFC 3261 16.10 with 16.7
    step 5: 2xx responses to an INVITE are always forwarded), A ACKs it (B gets the ACK) and
    hangs up; no 487 to A. The record is an answered call."""
    bport = phone(ctx, "101")
    b = ctx.sipp_start("cancel_race_callee.xml", user="101", local_port=bport)
    a = ctx.run_sipp("cancel_race_caller.xml", user="100", keys={"callee": "101"})
    ctx.sipp_wait(b)
    caller_saw(a, "2 INVITE", [100, 180, 200], "CANCEL crossing the 200")
    caller_saw(a, "2 CANCEL", [200], "CANCEL")
    ok = one(a.received(200, "2 INVITE"), "B's 200 at A")
    relayed(ok, "B's 200 at A")
    check(ok.tag("To") == one(b.sent(200, "2 INVITE"), "B's 200").tag("To"), "not B's 200")
    ack = one(b.received("ACK", "2 ACK"), "A's ACK at B")
    proxied(ctx, ack, "A's ACK at B", record_route=False)
    released(ctx, a, b, "caller", "3 BYE")
    cdr_is(ctx, ok.get("Call-ID"), disposition="ANSWERED", answered_by="101", hangup_by="caller")


@test("cancel_slow_callee")
def t_cancel_slow_callee(ctx):
    """sipbx waits for the callee's 487 before it answers the caller (see "cancel"), but not
    for ever: B sits on the CANCEL for 3 s, A gets its 487 after sipbx's grace time (2 s),
    and B's late 487 is still ACKed."""
    bport = phone(ctx, "101")
    b = ctx.sipp_start("cancel_slow_callee.xml", user="101", local_port=bport)
    a = ctx.run_sipp("cancel_caller.xml", user="100", keys={"callee": "101"})
    ctx.sipp_wait(b)
    caller_saw(a, "2 INVITE", [100, 180, 487], "cancel, slow callee")
    waited = one(a.received(487), "487").when - one(a.sent("CANCEL"), "CANCEL").when
    check(1.5 <= waited <= 2.8, "A waited %.1f s for its 487, want about 2 s" % waited)
    cancelled_leg(ctx, b, "the slow callee")
    cdr_is(ctx, a.call_id(), disposition="CANCELLED", hangup_by="caller")
    log("  A got its 487 %.1f s after the CANCEL" % waited)


@test("cancel_retransmit")
def t_cancel_retransmit(ctx):
    """Seed 000: A resends its CANCEL; the retransmission gets the same 200 (same To tag,
    byte for byte), B gets one CANCEL, A gets one 487."""
    bport = phone(ctx, "101")
    b = ctx.sipp_start("cancel_callee.xml", user="101", local_port=bport)
    a = ctx.run_sipp("cancel_retransmit_caller.xml", user="100", keys={"callee": "101"})
    ctx.sipp_wait(b)
    sent = a.sent("CANCEL")
    check(len(sent) == 2 and sent[0].raw == sent[1].raw, "A must send the same CANCEL twice")
    oks = a.received(200, "2 CANCEL")
    check(len(oks) == 2, "want a 200 for each CANCEL, got %d" % len(oks))
    check(oks[0].raw == oks[1].raw, "the retransmitted CANCEL got another 200:\n%s\n%s"
          % (oks[0], oks[1]))
    check(len(a.received(487)) == 1, "A must get one 487")
    cancelled_leg(ctx, b, "the callee")
    cdr_is(ctx, sent[0].get("Call-ID"), disposition="CANCELLED", status=487)


@test("ring_timeout", serve_args=["--ring-timeout", "3"])
def t_ring_timeout(ctx):
    """flows.md "No answer: the server's ring timer": after --ring-timeout (3 s) sipbx CANCELs
    B (200, 487, ACK) and answers A 408. Then the callee's own ring_timeout column (1 s)
    wins over the flag."""
    for ring, want in ((None, 3.0), (1, 1.0)):
        if ring:
            ctx.db_exec("UPDATE users SET ring_timeout = ? WHERE extension = '101'", ring)
            ctx.sync()
        bport = phone(ctx, "101")
        b = ctx.sipp_start("cancel_callee.xml", user="101", local_port=bport)
        a = ctx.run_sipp("ring_timeout_caller.xml", user="100", keys={"callee": "101"})
        ctx.sipp_wait(b)
        inv = caller_authenticated(ctx, a)
        got, c = cancelled_leg(ctx, b, "the callee")
        check(not a.sent("CANCEL"), "the caller did not cancel")
        caller_saw(a, "2 INVITE", [100, 180, 408], "ring timeout")
        r408 = one(a.received(408), "408")
        relayed(r408, "408 at the caller")
        rang = r408.when - one(a.received(180), "180").when
        check(want - 0.3 <= rang <= want + 1.5, "rang %.1f s, want %.0f s" % (rang, want))
        check(abs(c.when - r408.when) < 0.5, "the CANCEL to B and the 408 to A belong together")
        answered_after_callee(ctx, inv.get("Call-ID"), a.port, bport, "408")
        cdr_is(ctx, inv.get("Call-ID"), disposition="NO ANSWER", status=408, hangup_by="sipbx")
        log("  rang %.1f s (want %.0f s)" % (rang, want))
        ctx.sipp("deregister_all.xml", user="101")


@test("not_found")
def t_not_found(ctx):
    """An unknown extension: 404 after authentication, nothing forwarded."""
    a = ctx.run_sipp("not_found_caller.xml", user="100", keys={"callee": "555"})
    inv = caller_authenticated(ctx, a)
    caller_saw(a, "2 INVITE", [100, 404], "unknown extension")
    relayed(one(a.received(404), "404"), "404")
    # docs/api.md: hangup_by is sipbx for a number sipbx itself refused
    cdr_is(ctx, inv.get("Call-ID"), disposition="FAILED", status=404, hangup_by="sipbx",
           answered_by="")


@test("not_registered")
def t_not_registered(ctx):
    """A known user without a registered device (and no forward rule): 480, and nothing sent
    to the device 101 had before it de-registered."""
    bport = phone(ctx, "101")
    ctx.sipp("deregister_all.xml", user="101")
    ctx.wait_list("101", "offline")
    listener = SipClient(ctx.port, local_port=bport)
    try:
        a = ctx.run_sipp("not_registered_caller.xml", user="100", keys={"callee": "101"})
        heard = listener.drain(0.3)
    finally:
        listener.close()
    check(not heard, "the de-registered device got:\n%s" % "\n".join(heard))
    inv = caller_authenticated(ctx, a)
    caller_saw(a, "2 INVITE", [100, 480], "not registered")
    cdr_is(ctx, inv.get("Call-ID"), disposition="FAILED", status=480, hangup_by="sipbx")


@test("fork")
def t_fork(ctx):
    """Parallel forking: both devices of 101 ring (each at its own Contact, from its own
    REGISTER source); device 1 answers after 0.5 s and wins, device 2 gets CANCEL (200, 487,
    ACK); A gets both 180s and the winner's 200 only; ACK and BYE go to the winner only."""
    p1 = phone(ctx, "101")
    p2 = phone(ctx, "101", second=True)
    d2 = ctx.sipp_start("cancel_callee.xml", user="101", local_port=p2)
    d1 = ctx.sipp_start("call_callee.xml", user="101", local_port=p1, pause_ms=500)
    a = ctx.run_sipp("call_caller.xml", user="100", keys={"callee": "101"}, pause_ms=200)
    ctx.sipp_wait(d1)
    ctx.sipp_wait(d2)
    inv1, _ = answered_call(ctx, a, d1, p1)
    inv = caller_authenticated(ctx, a)
    inv2 = invite_reached(ctx, d2, inv, p2, "101", what="device 2", contact_params=";line=dev2")
    check(inv1.branch() != inv2.branch(), "both forks have the same branch")
    check(abs(inv1.when - inv2.when) < 0.4, "the devices were not rung in parallel")
    released(ctx, a, d1, "caller", "3 BYE")
    cancelled_leg(ctx, d2, "device 2")
    in_order(ctx, inv.get("Call-ID"), ("in", p1, "200"), ("out", p2, "CANCEL"))
    tags = {m.tag("To") for m in a.received(180)}
    want = {one(d.sent(180), "180").tag("To") for d in (d1, d2)}
    check(tags == want, "A must see both devices ring: 180 tags %s, want %s" % (tags, want))
    check(not a.received(487), "the cancelled fork's 487 must stay at sipbx")
    check(not d2.received("ACK", "2 ACK") or all(m.branch() == inv2.branch()
                                                  for m in d2.received("ACK")),
          "device 2 got the caller's ACK")
    check(not d2.received("BYE"), "device 2 got a BYE")
    cdr_is(ctx, inv.get("Call-ID"), disposition="ANSWERED", answered_by="101")


@test("hold")
def t_hold(ctx):
    """flows.md "Hold and session change": B's re-INVITE with a=sendonly reaches A through
    sipbx (no new Record-Route, Route gone), A's 200 (a=recvonly) reaches B, B's ACK reaches
    A; then resume (a=sendrecv) the same way; then A's BYE."""
    bport = phone(ctx, "101")
    b = ctx.sipp_start("hold_callee.xml", user="101", local_port=bport, pause_ms=300)
    a = ctx.run_sipp("hold_caller.xml", user="100", keys={"callee": "101"})
    ctx.sipp_wait(b)
    answered_call(ctx, a, b, bport)
    for cseq, sdp, answer in (("1", "sendonly", "recvonly"), ("2", "sendrecv", "sendrecv")):
        sent = one(b.sent("INVITE", cseq + " INVITE"), "B's re-INVITE %s" % cseq)
        check(is_our_route(ctx, sent.all("Route")), "B's re-INVITE Route")
        got = one(a.received("INVITE", cseq + " INVITE"), "re-INVITE %s at A" % cseq)
        proxied(ctx, got, "re-INVITE (%s) at A" % sdp, record_route=False)
        check(got.ruri == "sip:100@%s:%d" % (HOST, a.port), "re-INVITE Request-URI %s" % got.ruri)
        check("a=%s" % sdp in got.body and got.body.strip() == sent.body.strip(),
              "re-INVITE SDP changed:\n%s" % got)
        ok = one(b.received(200, cseq + " INVITE"), "200 for the re-INVITE at B")
        relayed(ok, "200 for the re-INVITE at B")
        check("a=%s" % answer in ok.body, "A's answer lost its a=%s:\n%s" % (answer, ok))
        ack = one(a.received("ACK", cseq + " ACK"), "B's ACK of the re-INVITE at A")
        proxied(ctx, ack, "ACK of the re-INVITE at A", record_route=False)
    check(one(a.received("INVITE", "1 INVITE"), "hold").when <
          one(a.received("INVITE", "2 INVITE"), "resume").when, "resume before hold")
    released(ctx, a, b, "caller", "3 BYE")
    cdr_is(ctx, a.call_id(), disposition="ANSWERED", hangup_by="caller")


@test("session_timer")
def t_session_timer(ctx):
    """RFC 4028: the call's 200 agrees on Session-Expires: 4; A refreshes with a re-INVITE
    (relayed both ways with its Session-Expires) 3.5 s later, which keeps the call up past
    the first interval; then both phones vanish, and sipbx ends the call once an interval
    and its grace (4 + 1 s) pass without a refresh: record closed, hung up by sipbx."""
    bport = phone(ctx, "101")
    b = ctx.sipp_start("session_timer_callee.xml", user="101", local_port=bport)
    a = ctx.run_sipp("session_timer_caller.xml", user="100", keys={"callee": "101"})
    refreshed = time.monotonic()  # A ends right after its refresh's ACK
    ctx.sipp_wait(b)
    inv = caller_authenticated(ctx, a)
    invite_reached(ctx, b, inv, bport, "101")
    relayed(one(a.received(200, "2 INVITE"), "200 at the caller"), "200 at the caller")
    check(one(b.received("ACK", "2 ACK"), "ACK at B").ruri.startswith("sip:101@"), "ACK at B")
    got = one(b.received("INVITE", "3 INVITE"), "the refresh at B")
    proxied(ctx, got, "the refresh at B", record_route=False)
    check(got.get("Session-Expires") == "4;refresher=uac", "refresh lost its Session-Expires")
    ok = one(a.received(200, "3 INVITE"), "200 to the refresh at A")
    relayed(ok, "200 to the refresh at A")
    call_id = a.call_id()

    def is_open():
        rows = ctx.db_exec("SELECT open FROM cdrs WHERE call_id = ?", call_id)
        check(len(rows) == 1, "one record of the call: %s" % rows)
        return rows[0]["open"] == 1

    # Without the refresh the call would end 5 s after the answer (1.5 s after the refresh,
    # plus a housekeeping second); with it, 5 s after the refresh.
    time.sleep(max(0.0, refreshed + 3.5 - time.monotonic()))
    check(is_open(), "the call ended although A refreshed the session")
    while is_open():
        check(time.monotonic() < refreshed + 8, "the call outlived its session interval")
        time.sleep(0.1)
    check(time.monotonic() >= refreshed + 4.5, "the call ended before its session expired")
    cdr_is(ctx, call_id, disposition="ANSWERED", hangup_by="sipbx")
    check("no session refresh within 4 s" in ctx.daemon_log(), "the expiry is not logged")


@test("too_many_hops")
def t_too_many_hops(ctx):
    """flows.md "Loops": Max-Forwards 0 gets 483 Too Many Hops, unauthenticated, and the
    registered callee hears nothing."""
    bport = phone(ctx, "101")
    listener = SipClient(ctx.port, local_port=bport)
    try:
        a = ctx.run_sipp("too_many_hops_caller.xml", user="100", keys={"callee": "101"})
        heard = listener.drain(0.5)
    finally:
        listener.close()
    check(not heard, "the callee got:\n%s" % "\n".join(heard))
    caller_saw(a, "1 INVITE", [483], "Max-Forwards 0")
    relayed(one(a.received(483), "483"), "483")
    check(not ctx.db_exec("SELECT * FROM cdrs"), "a 483 before authentication is no call")


@test("loop")
def t_loop(ctx):
    """flows.md "Loops": the INVITE that B sends back to sipbx carries sipbx's own branch for
    it in a Via: 482 Loop Detected (to B, not forwarded again); B's 482 reaches A."""
    bport = phone(ctx, "101")
    b = ctx.sipp_start("loop_callee.xml", user="101", local_port=bport)
    a = ctx.run_sipp("loop_caller.xml", user="100", keys={"callee": "101"})
    ctx.sipp_wait(b)
    inv = caller_authenticated(ctx, a)
    got = invite_reached(ctx, b, inv, bport, "101")
    bounced = one(b.sent("INVITE"), "the INVITE sent back")
    check(bounced.vias()[1] == got.vias()[0], "the bounced INVITE must carry sipbx's Via")
    r482 = one(b.received(482, got.cseq()), "482 to the bounced INVITE")
    check(r482.vias() == bounced.vias(), "482 must answer B's request: %s" % r482.vias())
    check("sipbx" in (r482.get("Server") or ""), "the 482 is not sipbx's own:\n%s" % r482)
    check(len(unique(b.received("INVITE"))) == 1, "sipbx forwarded the looped INVITE again")
    failure_acked(ctx, a, b, 482, "the callee")
    caller_saw(a, "2 INVITE", [100, 482], "loop")
    check("loop detected" in ctx.daemon_log(), "the loop is not logged")


@test("message")
def t_message(ctx):
    """flows.md "Presence and messages": MESSAGE to a registered user: 407, then relayed with
    the text unchanged, and the phone's 200 relayed back. No call record (not a call)."""
    bport = phone(ctx, "101")
    b = ctx.sipp_start("message_callee.xml", user="101", local_port=bport)
    a = ctx.run_sipp("message_caller.xml", user="100", keys={"callee": "101"})
    ctx.sipp_wait(b)
    caller_saw(a, "1 MESSAGE", [407], "MESSAGE without credentials")
    caller_saw(a, "2 MESSAGE", [200], "MESSAGE with credentials")
    check(not a.sent("ACK"), "no ACK for a MESSAGE")
    sent = one(a.sent("MESSAGE", "2 MESSAGE"), "A's MESSAGE")
    got = one(b.received("MESSAGE"), "MESSAGE at B")
    check(got.ruri == "sip:101@%s:%d" % (HOST, bport), "MESSAGE Request-URI %s" % got.ruri)
    proxied(ctx, got, "MESSAGE at B", record_route=False)
    check(got.body == sent.body and got.get("Content-Type") == "text/plain", "text changed")
    ok = one(a.received(200), "200 at A")
    relayed(ok, "200 at A")
    check(ok.tag("To") == one(b.sent(200), "B's 200").tag("To"), "the 200 is not B's")
    check(len(unique(b.received("MESSAGE"))) == 1, "B got the unauthenticated MESSAGE too")
    time.sleep(0.2)
    check(not ctx.db_exec("SELECT * FROM cdrs"), "a MESSAGE is not a call")


@test("retransmit_2xx")
def t_retransmit_2xx(ctx):
    """flows.md "B may retransmit" its 200: the copies B sends before the ACK all reach A
    (the same message), and B gets one ACK."""
    bport = phone(ctx, "101")
    b = ctx.sipp_start("call_callee.xml", user="101", local_port=bport)
    a = ctx.run_sipp("retransmit_2xx_caller.xml", user="100", keys={"callee": "101"})
    ctx.sipp_wait(b)
    answered_call(ctx, a, b, bport)
    sent = b.sent(200, "2 INVITE")
    got = a.received(200, "2 INVITE")
    check(len(sent) >= 2, "B did not retransmit its 200 (sent %d)" % len(sent))
    check(len(got) == len(sent), "B sent its 200 %d times, A got it %d times" % (
        len(sent), len(got)))
    check(all(m.raw == got[0].raw for m in got), "the relayed copies differ")
    check(len(b.received("ACK")) == 1, "B must get one ACK")
    released(ctx, a, b, "caller", "3 BYE")
    log("  200 sent %d times, relayed %d times" % (len(sent), len(got)))


@test("call_waiting_off")
def t_call_waiting_off(ctx):
    """users.call_waiting = 0: while 101 talks to 100, a call from 102 to 101 gets 486 from
    sipbx itself; 101's phone sees one INVITE only."""
    ctx.add_users({"102": "secret102"})
    ctx.db_exec("UPDATE users SET call_waiting = 0 WHERE extension = '101'")
    ctx.sync()
    bport = phone(ctx, "101")
    b = ctx.sipp_start("call_callee.xml", user="101", local_port=bport)
    a = ctx.sipp_start("call_caller.xml", user="100", keys={"callee": "101"}, pause_ms=2500,
                       background=False)
    b.wait_for("ACK at 101", lambda m: m.is_("ACK") and m.direction == "received")
    c = ctx.run_sipp("busy_caller.xml", user="102", keys={"callee": "101"})
    ctx.sipp_wait(a)
    ctx.sipp_wait(b)
    answered_call(ctx, a, b, bport)
    released(ctx, a, b, "caller", "3 BYE")
    caller_authenticated(ctx, c, "102")
    caller_saw(c, "2 INVITE", [100, 486], "second call")
    r486 = one(c.received(486), "486")
    check("SIPpTag01" not in (r486.get("To") or ""), "the 486 came from the phone:\n%s" % r486)
    c_id = c.call_id()
    check(not [m for m in b.received() if m.get("Call-ID") == c_id],
          "101's phone saw the second call")
    check(r486.when < one(b.received("BYE"), "BYE").when, "the second call came after the first")
    cdr_is(ctx, c_id, disposition="BUSY", status=486, caller="102")
    cdr_is(ctx, a.call_id(), disposition="ANSWERED")


@test("call_waiting")
def t_call_waiting(ctx):
    """flows.md "Call waiting": while 100 talks to 101 (and has put 101 on hold), 102 calls
    100: 100's phone rings again (a second dialog), answers, holds and resumes each call;
    every in-dialog request stays in its own dialog."""
    ctx.add_users({"102": "secret102"})
    aport = phone(ctx, "100")
    a = ctx.sipp_start("hold_callee.xml", user="100", local_port=aport, calls=2, pause_ms=2000)
    b = ctx.sipp_start("hold_caller.xml", user="101", keys={"callee": "100"})
    a.wait_for("hold of the first call", lambda m: m.is_(200, "1 INVITE") and
               m.direction == "received")
    c = ctx.run_sipp("hold_caller.xml", user="102", keys={"callee": "100"})
    ctx.sipp_wait(b)
    ctx.sipp_wait(a)
    ids = {}
    for who, run in (("101", b), ("102", c)):
        call_id = run.call_id()
        ids[who] = call_id
        invs = [m for m in a.received("INVITE", "2 INVITE") if m.get("Call-ID") == call_id]
        check(len(unique(invs)) == 1, "100 must get one INVITE of %s's call" % who)
        got = [m for m in run.received("INVITE") if m.get("Call-ID") != call_id]
        check(not got, "%s got a request of the other dialog" % who)
        check(len(unique(run.received("INVITE"))) == 2, "%s must get hold and resume" % who)
        check(all(m.tag("To") == run.sent()[0].tag("From") for m in run.received("INVITE")),
              "%s got a re-INVITE of another dialog" % who)
        cdr_is(ctx, call_id, disposition="ANSWERED", hangup_by="caller", answered_by="100")
    def at_a(call, kind, cseq, direction):
        return one([m for m in a.messages() if m.direction == direction and m.is_(kind, cseq)
                    and m.get("Call-ID") == ids[call]], "%s %s of %s's call" % (kind, cseq, call))
    first_held = at_a("101", 200, "1 INVITE", "received").when
    second_rang = at_a("102", "INVITE", "2 INVITE", "received").when
    first_resumed = at_a("101", "INVITE", "2 INVITE", "sent").when
    first_bye = at_a("101", "BYE", "3 BYE", "received").when
    check(first_held < second_rang < first_resumed < first_bye,
          "want: 101 held, 102 rings, 101 resumed, 101 ends (%.2f %.2f %.2f %.2f)" % (
              first_held, second_rang, first_resumed, first_bye))


@test("call_self")
def t_call_self(ctx):
    """flows.md "Callee busy": calling yourself with one device: the INVITE reaches the same
    phone, which says 486; sipbx ACKs it and the phone, as caller, gets the 486."""
    port = phone(ctx, "100")
    a = ctx.run_sipp("call_self.xml", user="100", keys={"callee": "100"}, local_port=port)
    inv = caller_authenticated(ctx, a)
    got = one(a.received("INVITE"), "the INVITE back at the phone")
    check(got.ruri == "sip:100@%s:%d" % (HOST, port), "Request-URI %s" % got.ruri)
    proxied(ctx, got, "INVITE back at the phone")
    failure_acked(ctx, a, a, 486, "the phone")
    cdr_is(ctx, inv.get("Call-ID"), disposition="BUSY", caller="100", dialled="100")


@test("presence")
def t_presence(ctx):
    """flows.md "Presence and messages": X-Lite's SUBSCRIBE of seed 004 is challenged (407),
    taken with credentials (200) and notified, and ended by its unsubscribe (SIPp); a package
    sipbx does not have gets 489 with Allow-Events; requests that only make sense inside a
    dialog get 481 when they come without one, unauthenticated and never forwarded; a stray
    ACK gets no answer at all."""
    ctx.sipp("subscribe.xml")
    bport = phone(ctx, "101")
    listener = quiet(ctx, bport)
    c = SipClient(ctx.port)
    try:
        r = c.request("SUBSCRIBE", "100", to_user="101", ruri="sip:101@%s" % DOMAIN,
                      extra=["Event: conference", "Expires: 600"])
        check(r.status == 489, "SUBSCRIBE conference: want 489, got\n%s" % r)
        check(r.get("Allow-Events") == "presence, dialog, message-summary",
              "489 without the packages sipbx has:\n%s" % r)
        for method in ("BYE", "INFO", "UPDATE", "PRACK", "NOTIFY"):
            r = c.request(method, "100", to_user="101", ruri="sip:101@%s" % DOMAIN,
                          extra=["Event: presence"] if method == "NOTIFY" else ())
            check(r.status == 481, "%s outside a dialog: want 481, got\n%s" % (method, r))
            log("  %s outside a dialog -> %d" % (method, r.status))
        c.send_raw("ACK sip:101@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s:%d;branch=z9hG4bKstray\r\n"
                   "From: <sip:100@%s>;tag=1\r\nTo: <sip:101@%s>\r\nCall-ID: stray@test\r\n"
                   "CSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
                   % (DOMAIN, HOST, c.port, DOMAIN, DOMAIN))
        check(not c.drain(0.5), "a stray ACK must not be answered")
    finally:
        c.close()
    heard_nothing(listener, "101 (nothing to forward)")


@test("refusals")
def t_refusals(ctx):
    """What the proxy refuses: an INVITE for another domain (403 after authentication: no open
    relay), From not the authenticated user (403), a request with a To tag but without
    sipbx's Route (481: not a dialog sipbx carries), a MESSAGE to an unknown user (404). The
    registered callee hears nothing of it, and the refused INVITEs leave no call behind."""
    bport = phone(ctx, "101")
    listener = quiet(ctx, bport)
    c = SipClient(ctx.port)
    try:
        r = proxy_request(c, "INVITE", "100", "sip:101@example.com", to_user="101")
        check(r.status == 403, "INVITE to another domain: want 403, got\n%s" % r)
        r = proxy_request(c, "INVITE", "101", "sip:101@%s" % DOMAIN, auth_user="100")
        check(r.status == 403, "From 101 with 100's credentials: want 403, got\n%s" % r)
        lines = ("INVITE sip:101@{h}:{b} SIP/2.0\r\nVia: SIP/2.0/UDP {h}:{p};branch=z9hG4bK{x}\r\n"
                 "From: <sip:100@{d}>;tag=a1\r\nTo: <sip:101@{d}>;tag=b2\r\n"
                 "Call-ID: nodialog@test\r\nCSeq: 5 INVITE\r\nContact: <sip:100@{h}:{p}>\r\n"
                 "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
        r = c.transact(lines.format(h=HOST, b=bport, p=c.port, d=DOMAIN,
                                    x="%x" % random.getrandbits(40)))
        check(r.status == 481, "re-INVITE without sipbx's Route: want 481, got\n%s" % r)
        ack_for(c, r, "sip:101@%s:%d" % (HOST, bport))
        r = proxy_request(c, "MESSAGE", "100", "sip:555@%s" % DOMAIN, to_user="555",
                          body="hello")
        check(r.status == 404, "MESSAGE to an unknown user: want 404, got\n%s" % r)
    finally:
        c.close()
    heard_nothing(listener, "101 (refused requests)")
    time.sleep(0.2)
    check(not ctx.db_exec("SELECT * FROM cdrs"), "a refused INVITE is no call attempt: %s"
          % ctx.db_exec("SELECT * FROM cdrs"))


# ---------------------------------------------------------------------------------------------
# the same flows with both phones on TCP (SIPp -t t1): the scenarios and checks above, with
# what they expect of sipbx's Via and Record-Route saying TCP (Ctx.tcp_scenario)

def over_tcp(fn):
    def run(ctx):
        ctx.tcp = True
        fn(ctx)
    run.__doc__ = "Both phones on TCP (SIPp -t t1). " + (fn.__doc__ or "")
    return run


test("call_tcp")(over_tcp(t_call))
test("callee_bye_tcp")(over_tcp(t_callee_bye))
test("busy_tcp")(over_tcp(t_busy))
test("cancel_tcp")(over_tcp(t_cancel))
test("ring_timeout_tcp", serve_args=["--ring-timeout", "3"])(over_tcp(t_ring_timeout))
