"""SIP tests of call forwarding (flows.md "Call forward on busy", "... on no answer";
forward_rules): busy, no answer, unconditional and unavailable rules, a busy target, chains
with their Diversion headers and the limit, loops of rules, cancelling while the target
rings, and who is busy after a forward.
"""

import json
import time

from checks import (answered_call, caller_authenticated, caller_saw, cancelled_leg, cdr_is,
                    failure_acked, heard_nothing, in_order, invite_reached, one, phone, quiet,
                    relayed, released, unique)
from harness import DOMAIN, check, log, test


# ---------------------------------------------------------------------------------------------
# helpers: the Diversion header, the forwards of a call record, the forwarded leg

def diversion(m):
    return ", ".join(m.all("Diversion"))


def div(*entries):
    """The Diversion value sipbx must send: (user, reason) pairs, newest first."""
    return ", ".join("<sip:%s@%s>;reason=%s;counter=1" % (u, DOMAIN, r) for u, r in entries)


def check_forwards(ctx, call_id, *entries, **want):
    row = cdr_is(ctx, call_id, **want)
    got = [(f["from"], f["to"], f["reason"]) for f in json.loads(row["forwards"])]
    check(got == list(entries), "call record forwards %s, want %s" % (got, list(entries)))
    return row


def forwarded_leg(ctx, a, c, cport, cuser, want_div):
    """C got A's INVITE through sipbx with the Diversion want_div, still addressed To the
    dialled user; returns C's INVITE."""
    inv = caller_authenticated(ctx, a)
    got = invite_reached(ctx, c, inv, cport, cuser, what="forward target %s" % cuser)
    check(diversion(got) == want_div, "Diversion at %s: %r, want %r" % (cuser, diversion(got),
                                                                        want_div))
    check(got.get("To") == inv.get("To"), "the To of the forwarded INVITE changed")
    return got


# ---------------------------------------------------------------------------------------------
# the tests

@test("forward_busy")
def t_forward_busy(ctx):
    """flows.md "Call forward on busy": B 486 -> sipbx ACKs B -> INVITE to C with Diversion
    reason=user-busy -> A gets 181 then C's 180 and 200; ACK and BYE between A and C."""
    ctx.add_users({"102": "secret102"})
    ctx.forward("101", "busy", "102")
    ctx.sync()
    bport, cport = phone(ctx, "101"), phone(ctx, "102")
    b = ctx.sipp_start("busy_callee.xml", user="101", local_port=bport)
    c = ctx.sipp_start("forward_target.xml", user="102", local_port=cport)
    a = ctx.run_sipp("call_caller.xml", user="100", keys={"callee": "101"}, pause_ms=200)
    ctx.sipp_wait(b)
    ctx.sipp_wait(c)
    inv = caller_authenticated(ctx, a)
    got_b = invite_reached(ctx, b, inv, bport, "101")
    check(not got_b.all("Diversion"), "B's INVITE must not be diverted")
    failure_acked(ctx, None, b, 486, "B")
    forwarded_leg(ctx, a, c, cport, "102", div(("101", "user-busy")))
    in_order(ctx, inv.get("Call-ID"), ("in", bport, "486"), ("out", bport, "ACK"),
             ("out", cport, "INVITE"))
    answered_call(ctx, a, c, cport, b_user="102")
    caller_saw(a, "2 INVITE", [100, 181, 180, 200], "forward on busy")
    check(not a.received(486), "B's 486 must stay at sipbx")
    check(not b.received("BYE"), "B got the BYE")
    released(ctx, a, c, "caller", "3 BYE")
    check_forwards(ctx, inv.get("Call-ID"), ("101", "102", "user-busy"),
                   disposition="ANSWERED", dialled="101", answered_by="102")


@test("forward_no_answer")
def t_forward_no_answer(ctx):
    """flows.md "Call forward on no answer": B rings for the rule's 2 s, then sipbx CANCELs B
    (200, 487, ACK) and rings C with Diversion reason=no-answer; C answers."""
    ctx.add_users({"102": "secret102"})
    ctx.forward("101", "no_answer", "102", timeout=2)
    ctx.sync()
    bport, cport = phone(ctx, "101"), phone(ctx, "102")
    b = ctx.sipp_start("cancel_callee.xml", user="101", local_port=bport)
    # C rings 1 s before it answers: B's CANCEL must not wait for C's answer
    c = ctx.sipp_start("forward_target.xml", user="102", local_port=cport, pause_ms=1000)
    a = ctx.run_sipp("call_caller.xml", user="100", keys={"callee": "101"}, pause_ms=200)
    ctx.sipp_wait(b)
    ctx.sipp_wait(c)
    got_b, cancel = cancelled_leg(ctx, b, "B")
    rang = cancel.when - got_b.when
    check(1.7 <= rang <= 3.5, "B rang %.1f s, the rule says 2 s" % rang)
    got_c = forwarded_leg(ctx, a, c, cport, "102", div(("101", "no-answer")))
    check(abs(got_c.when - cancel.when) < 0.5, "B's CANCEL and C's INVITE belong together")
    in_order(ctx, got_c.get("Call-ID"), ("out", bport, "CANCEL"), ("out", cport, "INVITE"))
    answered_call(ctx, a, c, cport, b_user="102")
    caller_saw(a, "2 INVITE", [100, 180, 181, 180, 200], "forward on no answer")
    check(not a.received(487), "B's 487 must stay at sipbx")
    released(ctx, a, c, "caller", "3 BYE")
    check_forwards(ctx, got_c.get("Call-ID"), ("101", "102", "no-answer"),
                   disposition="ANSWERED", answered_by="102")
    log("  B rang %.1f s" % rang)


@test("forward_unconditional")
def t_forward_unconditional(ctx):
    """An unconditional rule: B (registered) never gets an INVITE; C does, with Diversion
    reason=unconditional."""
    ctx.add_users({"102": "secret102"})
    ctx.forward("101", "unconditional", "102")
    ctx.sync()
    bport, cport = phone(ctx, "101"), phone(ctx, "102")
    listener = quiet(ctx, bport)
    c = ctx.sipp_start("forward_target.xml", user="102", local_port=cport)
    a = ctx.run_sipp("call_caller.xml", user="100", keys={"callee": "101"}, pause_ms=200)
    ctx.sipp_wait(c)
    heard_nothing(listener, "B (unconditional forward)")
    forwarded_leg(ctx, a, c, cport, "102", div(("101", "unconditional")))
    answered_call(ctx, a, c, cport, b_user="102")
    caller_saw(a, "2 INVITE", [100, 181, 180, 200], "unconditional forward")
    released(ctx, a, c, "caller", "3 BYE")
    check_forwards(ctx, a.call_id(), ("101", "102", "unconditional"),
                   disposition="ANSWERED", answered_by="102")


@test("forward_unavailable")
def t_forward_unavailable(ctx):
    """An unavailable rule: B has no registered device, so C rings (Diversion
    reason=unavailable) instead of A getting 480. Then the same with the target written as a
    SIP URI of this PBX (sip:102@127.0.0.1) rather than an extension."""
    ctx.add_users({"102": "secret102"})
    cport = phone(ctx, "102")
    for target in ("102", "sip:102@%s" % DOMAIN):
        ctx.forward("101", "unavailable", target)
        ctx.sync()
        c = ctx.sipp_start("forward_target.xml", user="102", local_port=cport)
        a = ctx.run_sipp("call_caller.xml", user="100", keys={"callee": "101"}, pause_ms=200)
        ctx.sipp_wait(c)
        forwarded_leg(ctx, a, c, cport, "102", div(("101", "unavailable")))
        answered_call(ctx, a, c, cport, b_user="102")
        caller_saw(a, "2 INVITE", [100, 181, 180, 200], "forward when unavailable")
        released(ctx, a, c, "caller", "3 BYE")
        check_forwards(ctx, a.call_id(), ("101", target, "unavailable"),
                       disposition="ANSWERED", answered_by="102")


@test("forward_target_busy")
def t_forward_target_busy(ctx):
    """Forward on busy to a target that is busy too: both phones get their 486 ACKed by
    sipbx, A ends with 486 (after the 181), never a second ring."""
    ctx.add_users({"102": "secret102"})
    ctx.forward("101", "busy", "102")
    ctx.sync()
    bport, cport = phone(ctx, "101"), phone(ctx, "102")
    b = ctx.sipp_start("busy_callee.xml", user="101", local_port=bport)
    c = ctx.sipp_start("busy_callee.xml", user="102", local_port=cport)
    a = ctx.run_sipp("busy_caller.xml", user="100", keys={"callee": "101"})
    ctx.sipp_wait(b)
    ctx.sipp_wait(c)
    failure_acked(ctx, None, b, 486, "B")
    failure_acked(ctx, None, c, 486, "C")
    forwarded_leg(ctx, a, c, cport, "102", div(("101", "user-busy")))
    caller_saw(a, "2 INVITE", [100, 181, 486], "busy forward target")
    r = one(a.received(486), "486 at A")
    relayed(r, "486 at A")
    check(r.tag("To") in {one(x.sent(486), "486").tag("To") for x in (b, c)},
          "A's 486 is from neither phone")
    check_forwards(ctx, a.call_id(), ("101", "102", "user-busy"),
                   disposition="BUSY", status=486)


@test("forward_chain")
def t_forward_chain(ctx):
    """101 -> 102 (unconditional) -> 103 (on busy): 102 gets one Diversion entry, 103 two,
    newest first; A gets a 181 per forward. Then a chain of six unconditional forwards stops
    after SIP_MAX_FORWARDS (5) with 482, and nobody rings."""
    ctx.add_users({"%d" % e: "secret%d" % e for e in range(102, 108)})
    ctx.forward("101", "unconditional", "102")
    ctx.forward("102", "busy", "103")
    ctx.sync()
    bport, cport, dport = phone(ctx, "101"), phone(ctx, "102"), phone(ctx, "103")
    listener = quiet(ctx, bport)
    c = ctx.sipp_start("busy_callee.xml", user="102", local_port=cport)
    d = ctx.sipp_start("forward_target.xml", user="103", local_port=dport)
    a = ctx.run_sipp("call_caller.xml", user="100", keys={"callee": "101"}, pause_ms=200)
    ctx.sipp_wait(c)
    ctx.sipp_wait(d)
    heard_nothing(listener, "101 (unconditional forward)")
    forwarded_leg(ctx, a, c, cport, "102", div(("101", "unconditional")))
    failure_acked(ctx, None, c, 486, "102")
    forwarded_leg(ctx, a, d, dport, "103", div(("102", "user-busy"), ("101", "unconditional")))
    answered_call(ctx, a, d, dport, b_user="103")
    caller_saw(a, "2 INVITE", [100, 181, 181, 180, 200], "chain of two")
    released(ctx, a, d, "caller", "3 BYE")
    check_forwards(ctx, a.call_id(), ("101", "102", "unconditional"),
                   ("102", "103", "user-busy"), disposition="ANSWERED", answered_by="103")

    # six forwards in a row: 101 -> 102 -> ... -> 107
    ctx.db_exec("DELETE FROM forward_rules")
    for e in range(101, 107):
        ctx.forward(str(e), "unconditional", str(e + 1))
    ctx.sync()
    last = phone(ctx, "107")
    listener = quiet(ctx, last)
    a = ctx.run_sipp("loop_caller.xml", user="100", keys={"callee": "101"})
    heard_nothing(listener, "107 (beyond the forward limit)")
    caller_saw(a, "2 INVITE", [100, 181, 181, 181, 181, 181, 482], "six forwards")
    check_forwards(ctx, a.call_id(),
                   *[(str(e), str(e + 1), "unconditional") for e in range(101, 106)],
                   disposition="FAILED", status=482)


@test("forward_loop")
def t_forward_loop(ctx):
    """Forward rules in a circle (101 <-> 102) end, never ring forever: unconditional rules
    end in 482 at once; busy rules end in the last phone's 486; no-answer rules (1 s) ring
    each phone once, then 482."""
    ctx.add_users({"102": "secret102"})
    ctx.forward("101", "unconditional", "102")
    ctx.forward("102", "unconditional", "101")
    ctx.sync()
    bport, cport = phone(ctx, "101"), phone(ctx, "102")
    lb, lc = quiet(ctx, bport), quiet(ctx, cport)
    a = ctx.run_sipp("loop_caller.xml", user="100", keys={"callee": "101"})
    heard_nothing(lb, "101 (unconditional loop)")
    heard_nothing(lc, "102 (unconditional loop)")
    caller_saw(a, "2 INVITE", [100, 181, 181, 482], "unconditional loop")
    check_forwards(ctx, a.call_id(), ("101", "102", "unconditional"),
                   ("102", "101", "unconditional"), status=482)

    ctx.db_exec("DELETE FROM forward_rules")
    ctx.forward("101", "busy", "102")
    ctx.forward("102", "busy", "101")
    ctx.sync()
    b = ctx.sipp_start("busy_callee.xml", user="101", local_port=bport)
    c = ctx.sipp_start("busy_callee.xml", user="102", local_port=cport)
    a = ctx.run_sipp("busy_caller.xml", user="100", keys={"callee": "101"})
    ctx.sipp_wait(b)
    ctx.sipp_wait(c)
    failure_acked(ctx, None, b, 486, "101")
    failure_acked(ctx, None, c, 486, "102")
    check(len(unique(b.received("INVITE"))) == 1, "101 rang twice")
    caller_saw(a, "2 INVITE", [100, 181, 181, 486], "busy loop")

    ctx.db_exec("DELETE FROM forward_rules")
    ctx.forward("101", "no_answer", "102", timeout=1)
    ctx.forward("102", "no_answer", "101", timeout=1)
    ctx.sync()
    b = ctx.sipp_start("cancel_callee.xml", user="101", local_port=bport)
    c = ctx.sipp_start("cancel_callee.xml", user="102", local_port=cport)
    started = time.monotonic()
    a = ctx.run_sipp("loop_caller.xml", user="100", keys={"callee": "101"})
    took = time.monotonic() - started
    ctx.sipp_wait(b)
    ctx.sipp_wait(c)
    cancelled_leg(ctx, b, "101")
    cancelled_leg(ctx, c, "102")
    caller_saw(a, "2 INVITE", [100, 180, 181, 180, 181, 482], "no-answer loop")
    check(took < 6, "the no-answer loop took %.1f s" % took)
    check("forwarding loop" in ctx.daemon_log(), "the loop is not logged")


@test("forward_call_waiting")
def t_forward_call_waiting(ctx):
    """Who is busy after a forward: 100 calls 101, no answer in 1 s, so 102 answers. With call
    waiting off for both, 102 is now busy (a direct call from 103 gets 486 from sipbx and
    102's phone sees no second INVITE) and 101 is not (a call from 103 to 101 rings 101's
    phone and is answered)."""
    ctx.add_users({"102": "secret102", "103": "secret103"})
    ctx.db_exec("UPDATE users SET call_waiting = 0 WHERE extension IN ('101', '102')")
    ctx.forward("101", "no_answer", "102", timeout=1)
    ctx.sync()
    bport, cport = phone(ctx, "101"), phone(ctx, "102")
    b = ctx.sipp_start("cancel_callee.xml", user="101", local_port=bport)
    c = ctx.sipp_start("forward_target.xml", user="102", local_port=cport)
    a = ctx.sipp_start("call_caller.xml", user="100", keys={"callee": "101"}, pause_ms=4000,
                       background=False)
    c.wait_for("ACK at 102", lambda m: m.is_("ACK") and m.direction == "received")
    ctx.sipp_wait(b)
    d = ctx.run_sipp("busy_caller.xml", user="103", keys={"callee": "102"})
    caller_saw(d, "2 INVITE", [100, 486], "call to 102, busy through a forwarded call")
    check("SIPpTag01" not in (one(d.received(486), "486").get("To") or ""),
          "the 486 to 103 came from a phone, not from sipbx")
    b2 = ctx.sipp_start("call_callee.xml", user="101", local_port=bport)
    d2 = ctx.run_sipp("call_caller.xml", user="103", keys={"callee": "101"}, pause_ms=200)
    ctx.sipp_wait(b2)
    answered_call(ctx, d2, b2, bport, a_user="103")
    ctx.sipp_wait(a)
    ctx.sipp_wait(c)
    first = a.call_id()
    check(not [m for m in c.received("INVITE") if m.get("Call-ID") != first],
          "102's phone got a second call while call waiting is off")
    check_forwards(ctx, first, ("101", "102", "no-answer"), disposition="ANSWERED",
                   answered_by="102")
    cdr_is(ctx, d.call_id(), disposition="BUSY", dialled="102")
    cdr_is(ctx, d2.call_id(), disposition="ANSWERED", answered_by="101")


@test("forward_cancel")
def t_forward_cancel(ctx):
    """A gives up while the forward target rings: C gets CANCEL (200, 487, ACK), A gets 200
    for its CANCEL and 487; B's 486 was ACKed before."""
    ctx.add_users({"102": "secret102"})
    ctx.forward("101", "busy", "102")
    ctx.sync()
    bport, cport = phone(ctx, "101"), phone(ctx, "102")
    b = ctx.sipp_start("busy_callee.xml", user="101", local_port=bport)
    c = ctx.sipp_start("cancel_callee.xml", user="102", local_port=cport)
    a = ctx.run_sipp("cancel_caller.xml", user="100", keys={"callee": "101"})
    ctx.sipp_wait(b)
    ctx.sipp_wait(c)
    failure_acked(ctx, None, b, 486, "B")
    forwarded_leg(ctx, a, c, cport, "102", div(("101", "user-busy")))
    cancelled_leg(ctx, c, "C")
    call_id = a.call_id()
    in_order(ctx, call_id, ("in", a.port, "CANCEL"), ("out", cport, "CANCEL"),
             ("in", cport, "487"), ("out", a.port, "487"))
    caller_saw(a, "2 INVITE", [100, 181, 180, 487], "cancel during the forward")
    caller_saw(a, "2 CANCEL", [200], "CANCEL")
    check_forwards(ctx, a.call_id(), ("101", "102", "user-busy"),
                   disposition="CANCELLED", status=487, hangup_by="caller")
