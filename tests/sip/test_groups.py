"""SIP tests of ring groups, do-not-disturb, the caller's identity and linked call records (the
presence/groups issue): a ringall group skips members with do-not-disturb and members not
registered and stops the others when one answers; a sequential group rings one member after
another, skips a busy one, and ends in its no-answer target with a Diversion; groups that
nobody can take answer 486, 480 or 408; a user with do-not-disturb is busy, or forwards on
busy; the callee sees the caller's account name (unicode, quotes escaped) in From and
P-Asserted-Identity, a forged identity is dropped and privacy respected; a call made by a
blind or attended transfer or a pickup names the call it came from in its record.

The phones are raw sockets of tests/lib/sipbxtest/phone.py, each with the behaviour a test
needs (answer, ring only, busy); groups and settings are written to the database as another
process would, then ctx.sync() waits until the daemon has them.
"""

import json
import time

from checks import cdr_is
from harness import HOST, check, log, test
from sipbxtest.phone import SDP, Phone, rand, request

MORE = {"102": "secret102", "103": "secret103", "104": "secret104"}


def wait(ep, pred, what, timeout=5.0):
    m = ep.wait(pred, timeout)
    check(m is not None, "%s: nothing arrived; got %s" % (what, [x.first for x in ep.received]))
    return m


def initial_invite(m):
    return m.method == "INVITE" and m.tag("To") is None


def ringing_only(ep, req):
    """A phone that rings and never answers; a CANCEL ends the INVITE with 487."""
    if req.method == "INVITE" and not req.tag("To"):
        ep.inv = req
        ep.reply(req, 180, "Ringing")
    elif req.method == "CANCEL":
        ep.reply(req, 200, "OK")
        ep.reply(ep.inv, 487, "Request Terminated")


def busy(ep, req):
    if req.method == "INVITE":
        ep.reply(req, 486, "Busy Here")


def phone(ctx, ext, handler=None):
    """A registered phone of ext; handler None answers every call."""
    p = Phone(ctx.port, ext, ctx.users[ext], answer=handler is None)
    if handler:
        p.handler = handler
    r = p.register()
    check(r.status == 200, "REGISTER of %s: %s" % (ext, r.first))
    return p


def group(ctx, ext, strategy, members, timeout=15, target=""):
    """Writes ring group ext (db/010) as another process would, and waits for the daemon."""
    ctx.db_exec("INSERT INTO ring_groups (extension, name, strategy, member_timeout, "
                "no_answer_target, created_at, updated_at) VALUES (?, 'Sales', ?, ?, ?, 0, 0)",
                ext, strategy, timeout, target)
    for i, m in enumerate(members):
        ctx.db_exec("INSERT INTO ring_group_members (grp, position, member) VALUES (?, ?, ?)",
                    ext, i, m)
    ctx.sync()


def dnd(ctx, ext, on=1):
    ctx.db_exec("UPDATE users SET dnd = ? WHERE extension = ?", on, ext)
    ctx.sync()


def send_authed_invite(p, to_ext, call_id, display=None):
    """Sends p's INVITE to to_ext, answers the 407 and sends it again with credentials (does
    not wait for the final answer); display: a display name in the From."""
    from sipbxtest.phone import digest, parse_challenge
    ruri = "sip:%s@127.0.0.1" % to_ext

    def text_of(cseq, extra):
        text, branch = request(p, "INVITE", ruri, p.aor, ruri, call_id, cseq, p.tag,
                               extra=extra, body=SDP)
        if display:
            text = text.replace("From: <", 'From: "%s" <' % display, 1)
        return text, branch

    text, branch = text_of(1, [])
    r = p.transact(text, branch)
    check(r.status == 407, "want 407: %s" % r.first)
    ack, _ = request(p, "ACK", ruri, p.aor, ruri, call_id, 1, p.tag, r.tag("To"), branch=branch,
                     contact=False)
    p.send(ack)
    auth = "Proxy-Authorization: " + digest(p.ext, p.password, parse_challenge(
        r.get("Proxy-Authenticate")), "INVITE", ruri)
    text, branch = text_of(2, [auth])
    p.send(text)
    return branch


def close(*phones):
    for p in phones:
        p.close()


def hang_up(caller, r, dlg):
    if r.status == 200:
        b = caller.in_dialog(dlg, "BYE")
        check(b.status == 200, "BYE: %s" % b.first)


@test("group_ringall")
def t_group_ringall(ctx):
    """Group 600 (ringall) of 101 (rings), 102 (do-not-disturb), 103 (not registered) and
    104 (answers): 101 and 104 ring at once, 102 hears nothing, 104 answers and 101 is
    CANCELled with "Call completed elsewhere". The record: dialled 600, answered by 104."""
    ctx.add_users(MORE)
    group(ctx, "600", "ringall", ["101", "102", "103", "104"])
    dnd(ctx, "102")
    caller = phone(ctx, "100")
    p101, p102, p104 = phone(ctx, "101", ringing_only), phone(ctx, "102"), phone(ctx, "104")
    try:
        r, dlg = caller.invite("600")
        check(r.status == 200, "call to the group: %s" % r.first)
        i101 = wait(p101, initial_invite, "INVITE at 101")
        i104 = wait(p104, initial_invite, "INVITE at 104")
        check(abs(i101.at - i104.at) < 0.5, "ringall rang 101 and 104 %.2f s apart"
              % abs(i101.at - i104.at))
        c = wait(p101, lambda m: m.method == "CANCEL", "CANCEL at 101")
        check(c.get("Reason") == 'SIP;cause=200;text="Call completed elsewhere"',
              "Reason %r" % c.get("Reason"))
        check(not p102.requests("INVITE"), "102 has do-not-disturb and was rung")
        hang_up(caller, r, dlg)
        cdr_is(ctx, dlg["call_id"], dialled="600", answered_by="104", disposition="ANSWERED")
    finally:
        close(caller, p101, p102, p104)


@test("group_sequential")
def t_group_sequential(ctx):
    """Group 600 (sequential, 1 s each) of 101 (rings), 102 (answers 486), 103 (rings),
    then to 104: 101 rings for 1 s and is CANCELled ("ringing the next member"), 102 says
    busy, 103 rings for 1 s, then 104 gets the call with Diversion <sip:600@...>;
    reason=no-answer and answers. The record names the group's forward to 104."""
    ctx.add_users(MORE)
    group(ctx, "600", "sequential", ["101", "102", "103"], timeout=1, target="104")
    caller = phone(ctx, "100")
    p101, p102 = phone(ctx, "101", ringing_only), phone(ctx, "102", busy)
    p103, p104 = phone(ctx, "103", ringing_only), phone(ctx, "104")
    try:
        t0 = time.monotonic()
        r, dlg = caller.invite("600")
        check(r.status == 200, "call to the group: %s" % r.first)
        i101 = wait(p101, initial_invite, "INVITE at 101")
        i102 = wait(p102, initial_invite, "INVITE at 102")
        i103 = wait(p103, initial_invite, "INVITE at 103")
        i104 = wait(p104, initial_invite, "INVITE at 104")
        check(i101.at < i102.at < i103.at < i104.at, "members rang out of order")
        check(0.8 < i102.at - i101.at < 2.0, "102 rang %.2f s after 101, want 1 s"
              % (i102.at - i101.at))
        check(0.8 < i104.at - i103.at < 2.0, "104 got the call %.2f s after 103 rang"
              % (i104.at - i103.at))
        c = wait(p101, lambda m: m.method == "CANCEL", "CANCEL at 101")
        check("ringing the next member" in (c.get("Reason") or ""), "Reason %r" % c.get("Reason"))
        div = i104.get("Diversion") or ""
        check(div.startswith("<sip:600@127.0.0.1>;reason=no-answer"), "Diversion %r" % div)
        hang_up(caller, r, dlg)
        row = cdr_is(ctx, dlg["call_id"], dialled="600", answered_by="104",
                     disposition="ANSWERED")
        fw = json.loads(row["forwards"])
        check(fw == [{"from": "600", "to": "104", "reason": "no-answer"}], "forwards %s" % fw)
        log("  the group took %.1f s to reach 104" % (i104.at - t0))
    finally:
        close(caller, p101, p102, p103, p104)


@test("group_nobody")
def t_group_nobody(ctx):
    """A group whose members all have do-not-disturb answers 486; one whose members are not
    registered 480; a sequential one without a target whose members only ring answers 408
    after each rang (2 x 1 s) and the record says NO ANSWER."""
    ctx.add_users(MORE)
    group(ctx, "601", "ringall", ["101", "102"])
    group(ctx, "602", "ringall", ["103", "104"])
    group(ctx, "603", "sequential", ["101", "102"], timeout=1)
    caller = phone(ctx, "100")
    p101, p102 = phone(ctx, "101", ringing_only), phone(ctx, "102", ringing_only)
    try:
        dnd(ctx, "101")
        dnd(ctx, "102")
        r, dlg = caller.invite("601")
        check(r.status == 486, "all members with do-not-disturb: %s" % r.first)
        cdr_is(ctx, dlg["call_id"], disposition="BUSY")
        r, dlg = caller.invite("602")
        check(r.status == 480, "no member registered: %s" % r.first)
        dnd(ctx, "101", 0)
        dnd(ctx, "102", 0)
        t0 = time.monotonic()
        r, dlg = caller.invite("603")
        took = time.monotonic() - t0
        check(r.status == 408, "members that only ring: %s" % r.first)
        check(1.8 < took < 4.0, "the group gave up after %.1f s, want 2 s" % took)
        check(p101.requests("CANCEL") and p102.requests("CANCEL"), "both members CANCELled")
        cdr_is(ctx, dlg["call_id"], disposition="NO ANSWER", dialled="603")
    finally:
        close(caller, p101, p102)


@test("dnd")
def t_dnd(ctx):
    """101 turns do-not-disturb on: a call gets 486 and 101 hears nothing; with a busy
    forward to 102 the call goes there (reason user-busy); off again, 101 rings."""
    ctx.add_users({"102": MORE["102"]})
    caller, p101, p102 = phone(ctx, "100"), phone(ctx, "101"), phone(ctx, "102")
    try:
        dnd(ctx, "101")
        r, dlg = caller.invite("101")
        check(r.status == 486, "call to a user with do-not-disturb: %s" % r.first)
        check(not p101.requests("INVITE"), "101 was rung despite do-not-disturb")
        cdr_is(ctx, dlg["call_id"], disposition="BUSY", status=486)
        ctx.forward("101", "busy", "102")
        ctx.sync()
        r, dlg = caller.invite("101")
        check(r.status == 200, "do-not-disturb with a busy forward: %s" % r.first)
        i = wait(p102, initial_invite, "INVITE at 102")
        check("reason=user-busy" in (i.get("Diversion") or ""), "Diversion %r" % i.get(
            "Diversion"))
        hang_up(caller, r, dlg)
        check(not p101.requests("INVITE"), "101 was rung despite do-not-disturb")
        dnd(ctx, "101", 0)
        r, dlg = caller.invite("101")
        check(r.status == 200 and p101.requests("INVITE"), "do-not-disturb off: %s" % r.first)
        hang_up(caller, r, dlg)
    finally:
        close(caller, p101, p102)


@test("caller_identity")
def t_caller_identity(ctx):
    """100's account is named 'Zoë "Z" 山田': a From without a display name reaches 101
    with it (quotes escaped), with P-Asserted-Identity of the account; a P-Asserted-Identity
    the phone made up is dropped; a From with its own name keeps it; Privacy: id gets no
    P-Asserted-Identity and no name filled in. The record has the account's name."""
    name = 'Zoë "Z" 山田'
    quoted = '"Zoë \\"Z\\" 山田"'
    ctx.db_exec("UPDATE users SET display_name = ? WHERE extension = '100'", name)
    ctx.sync()
    caller, callee = phone(ctx, "100"), phone(ctx, "101")
    try:
        r, dlg = caller.invite("101", extra=["P-Asserted-Identity: <sip:999@127.0.0.1>"])
        check(r.status == 200, "call: %s" % r.first)
        inv = wait(callee, initial_invite, "INVITE at 101")
        check(inv.get("From").startswith(quoted + " <sip:100@127.0.0.1>"),
              "From %r, want the account's name" % inv.get("From"))
        check(inv.all("P-Asserted-Identity") == [quoted + " <sip:100@127.0.0.1>"],
              "P-Asserted-Identity %s" % inv.all("P-Asserted-Identity"))
        check(r.get("From").startswith("<sip:100@127.0.0.1>"),
              "the caller's own From came back changed: %r" % r.get("From"))
        hang_up(caller, r, dlg)
        cdr_is(ctx, dlg["call_id"], caller_name=name)

        callee.received.clear()
        call_id = rand() + "@call"
        r, dlg = caller.invite("101", call_id=call_id, extra=["Privacy: id"])
        inv = wait(callee, initial_invite, "INVITE with Privacy: id")
        check(not inv.all("P-Asserted-Identity"), "Privacy: id got P-Asserted-Identity %s"
              % inv.all("P-Asserted-Identity"))
        check(inv.get("From").startswith("<sip:100@"), "Privacy: id: From %r" % inv.get("From"))
        hang_up(caller, r, dlg)

        # A phone that names itself keeps its name in From.
        callee.received.clear()
        call_id = rand() + "@call"
        branch = send_authed_invite(caller, "101", call_id, display="Desk")
        r = caller.response(branch)
        check(r is not None and r.status == 200, "call with a named From: %s" % (r and r.first))
        inv = wait(callee, initial_invite, "INVITE with a named From")
        check(inv.get("From").startswith('"Desk" <sip:100@'), "From %r" % inv.get("From"))
        check(inv.all("P-Asserted-Identity") == [quoted + " <sip:100@127.0.0.1>"],
              "P-Asserted-Identity %s" % inv.all("P-Asserted-Identity"))
        cdr = {"call_id": call_id, "from_tag": caller.tag, "to_tag": r.tag("To"),
               "to": "sip:101@127.0.0.1", "route": list(reversed(r.all("Record-Route"))),
               "cseq": 2, "target": r.get("Contact").strip("<>").split(">")[0]}
        caller.in_dialog(cdr, "ACK", cseq=2)
        hang_up(caller, r, cdr)
        cdr_is(ctx, call_id, caller_name="Desk")
        log("  unicode name, escaped quotes, PAI replaced, privacy, own name: ok")
    finally:
        close(caller, callee)


def callee_dialog(caller, inv, resp):
    """The callee's side of the dialog of inv (as the callee received it) and resp."""
    import re
    return {"call_id": inv.get("Call-ID"), "from_tag": resp.tag("To"), "to_tag": inv.tag("From"),
            "to": caller.aor, "route": inv.all("Record-Route"), "cseq": 100,
            "target": re.sub(r"^<|>.*$", "", inv.get("Contact"))}


@test("transfer_links")
def t_transfer_links(ctx):
    """Blind transfer: in call X (100 -> 101) 101 sends REFER to 100 for 102; 100's new call
    to 102 is linked to X (transfer). Attended: in call X2 (100 -> 101) 100 REFERs 101 to 102
    with Replaces of its consultation call Y (100 -> 102); 101's INVITE with Replaces is
    linked to X2 (attended-transfer). Pickup: 102 takes over a call to 101 that still rings
    (INVITE with Replaces): pickup of that call. An INVITE of someone else, later, is not
    linked."""
    ctx.add_users({"102": MORE["102"]})
    p100, p101, p102 = phone(ctx, "100"), phone(ctx, "101"), phone(ctx, "102")
    try:
        # blind
        r, x = p100.invite("101")
        check(r.status == 200, "call X: %s" % r.first)
        inv = wait(p101, initial_invite, "INVITE of X at 101")
        d101 = callee_dialog(p100, inv, r)
        rr = p101.in_dialog(d101, "REFER", extra=["Refer-To: <sip:102@127.0.0.1>",
                                                  "Referred-By: <sip:101@127.0.0.1>"])
        check(rr.status == 200, "REFER: %s" % rr.first)
        r2, z = p100.invite("102", extra=["Referred-By: <sip:101@127.0.0.1>"])
        check(r2.status == 200, "the transferred call: %s" % r2.first)
        hang_up(p100, r, x)
        hang_up(p100, r2, z)
        cdr_is(ctx, z["call_id"], linked_call=x["call_id"], link="transfer", dialled="102")
        cdr_is(ctx, x["call_id"], linked_call="", link="")

        # attended
        p101.received.clear()
        r, x2 = p100.invite("101")
        inv = wait(p101, initial_invite, "INVITE of X2 at 101")
        d101 = callee_dialog(p100, inv, r)
        ry, y = p100.invite("102")
        check(ry.status == 200, "consultation call: %s" % ry.first)
        replaces = "%s;to-tag=%s;from-tag=%s" % (y["call_id"], y["to_tag"], y["from_tag"])
        refer_to = "<sip:102@127.0.0.1?Replaces=%s>" % replaces.replace(";", "%3B").replace(
            "=", "%3D")
        rr = p100.in_dialog(x2, "REFER", extra=["Refer-To: " + refer_to])
        check(rr.status == 200, "REFER with Replaces: %s" % rr.first)
        rz, z2 = p101.invite("102", extra=["Replaces: " + replaces,
                                           "Referred-By: <sip:100@127.0.0.1>"])
        check(rz.status == 200, "INVITE with Replaces: %s" % rz.first)
        for phone_, resp, dlg in ((p100, r, x2), (p100, ry, y), (p101, rz, z2)):
            hang_up(phone_, resp, dlg)
        cdr_is(ctx, z2["call_id"], linked_call=x2["call_id"], link="attended-transfer")

        # pickup of a call that rings
        p101.handler = ringing_only
        call_id = rand() + "@call"
        send_authed_invite(p100, "101", call_id)
        wait(p100, lambda m: m.status == 180, "180 of the call to be picked up")
        rp, zp = p102.invite("100", extra=["Replaces: %s;to-tag=x;from-tag=%s;early-only"
                                           % (call_id, p100.tag)])
        hang_up(p102, rp, zp)
        cdr_is(ctx, zp["call_id"], linked_call=call_id, link="pickup")

        # not every call is a transfer
        r, w = p101.invite("102")
        hang_up(p101, r, w)
        cdr_is(ctx, w["call_id"], linked_call="", link="")
    finally:
        close(p100, p101, p102)
