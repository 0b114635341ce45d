"""SIP tests of presence and busy lamps (RFC 6665 event server): SUBSCRIBE to presence
(RFC 3856) and dialog (RFC 4235) with NOTIFY on subscription, change, refresh, unsubscribe and
expiry; PUBLISH with entity tags (RFC 3903); the busy lamp through a whole call; call pickup by
INVITE with Replaces (RFC 3891) relayed to the caller; what is refused (489 with Allow-Events,
407, other domains, unknown users); a deleted user's watchers; subscriptions kept across a
restart. The phones are raw sockets (tests/lib/sipbxtest/phone.py) that answer every NOTIFY
with 200 and keep it, so each NOTIFY is checked as the watcher saw it.
"""

import re
import time

from harness import DOMAIN, HOST, USERS, check, log, test
from sipbxtest.phone import Phone, SDP, digest, parse_challenge, rand, request


class Watcher(Phone):
    """A phone that subscribes and answers NOTIFY with 200 (other requests as Phone does
    when answer is on, else not at all)."""

    def __init__(self, ctx, ext, answer=False, **kw):
        super().__init__(ctx.port, ext, ctx.users[ext], answer=answer, **kw)
        self.answering = answer
        self.handler = Watcher._on_request
        self.notify_status = 200

    def _on_request(self, req):
        if req.method == "NOTIFY":
            self.reply(req, self.notify_status, "OK" if self.notify_status == 200 else "Nope")
        elif self.answering:
            Phone._answer(self, req)

    def authed(self, method, ruri, to_uri, call_id, extra=(), body="", ctype=None, cseq=1):
        """Sends method out of dialog, answering a 407 once; returns (response, cseq)."""
        auth = []
        for _ in range(2):
            ex = list(extra) + auth
            if ctype:
                ex.append("Content-Type: " + ctype)
            text, branch = request(self, method, ruri, self.aor, to_uri, call_id, cseq, self.tag,
                                   extra=ex, body="")
            if body:
                text = text.replace("Content-Length: 0\r\n\r\n",
                                    "Content-Length: %d\r\n\r\n%s" % (len(body.encode()), body))
            r = self.transact(text, branch)
            if r.status != 407:
                return r, cseq
            auth = ["Proxy-Authorization: " + digest(self.ext, self.password, parse_challenge(
                r.get("Proxy-Authenticate")), method, ruri)]
            cseq += 1
        return r, cseq

    def subscribe(self, ext, package="presence", expires=600, extra=()):
        """A new subscription to ext's package; returns (response, dialog)."""
        call_id = rand() + "@sub"
        to = "sip:%s@%s" % (ext, self.domain)
        r, cseq = self.authed("SUBSCRIBE", to, to, call_id,
                              extra=["Event: " + package, "Expires: %d" % expires] + list(extra))
        dlg = {"call_id": call_id, "to": to, "to_tag": r.tag("To"), "cseq": cseq,
               "target": re.sub(r"^<|>.*$", "", r.get("Contact") or ""), "route": [],
               "package": package}
        return r, dlg

    def resubscribe(self, dlg, expires):
        dlg["cseq"] += 1
        text, branch = request(self, "SUBSCRIBE", dlg["target"], self.aor, dlg["to"],
                               dlg["call_id"], dlg["cseq"], self.tag, dlg["to_tag"],
                               extra=["Event: " + dlg["package"], "Expires: %d" % expires])
        return self.transact(text, branch)

    def notifies(self, dlg):
        return [m for m in self.requests("NOTIFY") if m.get("Call-ID") == dlg["call_id"]]

    def next_notify(self, dlg, after=0, pred=lambda m: True, timeout=5.0, what="NOTIFY"):
        """The first NOTIFY of dlg past the first `after` ones that satisfies pred."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.notifies(dlg)[after:]
            hit = next((m for m in got if pred(m)), None)
            if hit:
                return hit
            time.sleep(0.05)
        raise AssertionError("%s never came; NOTIFYs of the dialog:\n%s" % (
            what, "\n---\n".join(m.raw for m in self.notifies(dlg))))


def basic(m):
    g = re.search(r"<(?:\w+:)?basic>\s*(\w+)\s*</", m.body)
    return g.group(1) if g else None


def dialogs(m):
    """The <dialog> elements of a dialog-info NOTIFY: dicts of their attributes and state."""
    out = []
    for d in re.finditer(r"<dialog ([^>]*)>(.*?)</dialog>", m.body, re.S):
        attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', d.group(1)))
        st = re.search(r"<state>(\w+)</state>", d.group(2))
        attrs["state"] = st.group(1) if st else None
        remote = re.search(r"<remote>.*?<target uri=\"([^\"]+)\"", d.group(2), re.S)
        attrs["remote_target"] = remote.group(1) if remote else None
        out.append(attrs)
    return out


def notify_is(m, package, state_prefix):
    check(m.get("Event").split(";")[0] == package, "Event %s, want %s" % (m.get("Event"), package))
    check(m.get("Subscription-State").startswith(state_prefix),
          "Subscription-State %r, want %s...:\n%s" % (m.get("Subscription-State"), state_prefix, m))
    want = {"presence": "application/pidf+xml", "dialog": "application/dialog-info+xml"}[package]
    check(m.get("Content-Type") == want, "Content-Type %s, want %s" % (m.get("Content-Type"), want))


@test("presence_subscribe")
def t_presence_subscribe(ctx):
    """A watcher subscribes to a colleague's presence: 407 first (authenticated like calls),
    then 200 with sipbx's tag, Expires and Contact, and a NOTIFY at once (active, PIDF open:
    registered). The colleague's registration ends -> NOTIFY closed. A refresh gets 200 and
    a NOTIFY; an unsubscribe a final NOTIFY (terminated;reason=timeout); the dialog is gone
    after it (481)."""
    ctx.add_users({"102": "secret102"})
    target = Phone(ctx.port, "100", USERS["100"])
    w = Watcher(ctx, "101")
    try:
        check(target.register().status == 200, "100 registers")
        r, dlg = w.subscribe("100")
        check(r.status == 200, "SUBSCRIBE: want 200, got\n%s" % r)
        check(dlg["to_tag"], "200 without sipbx's tag:\n%s" % r)
        check(r.get("Expires") == "600", "Expires %s, want 600" % r.get("Expires"))
        check(dlg["target"].startswith("sip:"), "200 without a Contact:\n%s" % r)
        n1 = w.next_notify(dlg, what="the first NOTIFY")
        notify_is(n1, "presence", "active;expires=")
        check(int(n1.get("Subscription-State").split("expires=")[1]) <= 600, "expires")
        check(basic(n1) == "open" and "Available" in n1.body, "registered: open\n%s" % n1.body)
        check(n1.tag("From") == dlg["to_tag"] and n1.tag("To") == w.tag,
              "NOTIFY tags do not match the dialog:\n%s" % n1)
        check(n1.ruri == "sip:101@%s:%d;transport=udp" % (HOST, w.port),
              "NOTIFY Request-URI %s is not the watcher's Contact" % n1.ruri)

        check(target.register(expires=0).status == 200, "100 unregisters")
        n2 = w.next_notify(dlg, 1, what="the NOTIFY after 100 left")
        check(basic(n2) == "closed" and "Offline" in n2.body, "unregistered: closed\n%s" % n2.body)
        c1, c2 = int(n1.cseq.split()[0]), int(n2.cseq.split()[0])
        check(c2 == c1 + 1, "NOTIFY CSeq %d after %d" % (c2, c1))

        r = w.resubscribe(dlg, 600)
        check(r.status == 200, "refresh: want 200, got\n%s" % r)
        n3 = w.next_notify(dlg, 2, what="the NOTIFY of the refresh")
        notify_is(n3, "presence", "active")
        r = w.resubscribe(dlg, 30)
        check(r.status == 423 and r.get("Min-Expires") == "60", "30 s: want 423, got\n%s" % r)

        r = w.resubscribe(dlg, 0)
        check(r.status == 200, "unsubscribe: want 200, got\n%s" % r)
        n4 = w.next_notify(dlg, 3, what="the final NOTIFY")
        notify_is(n4, "presence", "terminated;reason=timeout")
        time.sleep(0.3)
        r = w.resubscribe(dlg, 600)
        check(r.status == 481, "after the unsubscribe: want 481, got\n%s" % r)
        log("  %d NOTIFYs: %s" % (len(w.notifies(dlg)),
                                  [m.get("Subscription-State") for m in w.notifies(dlg)]))
    finally:
        target.close()
        w.close()


@test("presence_refusals")
def t_presence_refusals(ctx):
    """What the event server refuses: a package it does not have (conference, RFC 4575)
    gets 489 with Allow-Events "presence, dialog, message-summary" at once, without a
    challenge; no credentials or a wrong password 407; another domain 403; an unknown user
    404; From not the authenticated user 403; an Accept without the package's type 406. None
    of it leaves a subscription behind."""
    w = Watcher(ctx, "101")
    try:
        to = "sip:100@%s" % DOMAIN
        text, branch = request(w, "SUBSCRIBE", to, w.aor, to, rand(), 1, w.tag,
                               extra=["Event: conference", "Expires: 600"])
        r = w.transact(text, branch)
        check(r.status == 489, "conference: want 489, got\n%s" % r)
        check(r.get("Allow-Events") == "presence, dialog, message-summary",
              "Allow-Events %r" % r.get("Allow-Events"))
        text, branch = request(w, "SUBSCRIBE", to, w.aor, to, rand(), 1, w.tag,
                               extra=["Expires: 600"])
        r = w.transact(text, branch)
        check(r.status == 489, "no Event: want 489, got\n%s" % r)

        text, branch = request(w, "SUBSCRIBE", to, w.aor, to, rand(), 1, w.tag,
                               extra=["Event: presence", "Expires: 600"])
        r = w.transact(text, branch)
        check(r.status == 407 and r.get("Proxy-Authenticate"), "no credentials: 407\n%s" % r)
        chal = parse_challenge(r.get("Proxy-Authenticate"))
        bad = digest("101", "wrong", chal, "SUBSCRIBE", to)
        text, branch = request(w, "SUBSCRIBE", to, w.aor, to, rand(), 2, w.tag,
                               extra=["Event: presence", "Expires: 600",
                                      "Proxy-Authorization: " + bad])
        r = w.transact(text, branch)
        check(r.status == 407, "wrong password: want 407, got\n%s" % r)

        other = "sip:100@example.com"
        r, _ = w.authed("SUBSCRIBE", other, other, rand(), extra=["Event: presence"])
        check(r.status == 403, "another domain: want 403, got\n%s" % r)
        nobody = "sip:555@%s" % DOMAIN
        r, _ = w.authed("SUBSCRIBE", nobody, nobody, rand(), extra=["Event: presence"])
        check(r.status == 404, "unknown user: want 404, got\n%s" % r)
        r, _ = w.authed("SUBSCRIBE", to, to, rand(), extra=["Event: dialog",
                                                             "Accept: application/pidf+xml"])
        check(r.status == 406, "dialog with Accept pidf: want 406, got\n%s" % r)

        # From 100 with 101's credentials.
        liar = Phone(ctx.port, "100", "x", answer=False)
        try:
            call_id = rand()
            text, branch = request(liar, "SUBSCRIBE", to, liar.aor, to, call_id, 1, liar.tag,
                                   extra=["Event: presence"])
            r = liar.transact(text, branch)
            auth = digest("101", USERS["101"], parse_challenge(r.get("Proxy-Authenticate")),
                          "SUBSCRIBE", to)
            text, branch = request(liar, "SUBSCRIBE", to, liar.aor, to, call_id, 2, liar.tag,
                                   extra=["Event: presence", "Proxy-Authorization: " + auth])
            r = liar.transact(text, branch)
            check(r.status == 403, "From 100 with 101's credentials: want 403, got\n%s" % r)
        finally:
            liar.close()
        time.sleep(0.3)
        check(not w.requests("NOTIFY"), "a refused SUBSCRIBE got a NOTIFY")
        check(not ctx.db_exec("SELECT * FROM subscriptions"), "refused subscriptions stored")
    finally:
        w.close()


@test("presence_expiry")
def t_presence_expiry(ctx):
    """A subscription whose time is up ends with a final NOTIFY (terminated;reason=timeout)
    and leaves the database. The time is shortened in the database while sipbx is stopped,
    so this also shows a subscription taken back at start-up with its expiry."""
    target = Phone(ctx.port, "100", USERS["100"])
    w = Watcher(ctx, "101")
    try:
        check(target.register().status == 200, "100 registers")
        r, dlg = w.subscribe("100", expires=3600)
        check(r.status == 200, "SUBSCRIBE: want 200, got\n%s" % r)
        w.next_notify(dlg)
        ctx.sync()
        time.sleep(0.3)
        ctx.stop()
        rows = [tuple(r.values()) for r in ctx.db_exec(
            "SELECT package, watcher, presentity, expires_at - created_at FROM subscriptions")]
        check(rows == [("presence", "101", "100", 3600)], "stored: %s" % rows)
        ctx.db_exec("UPDATE subscriptions SET expires_at = strftime('%s', 'now') + 3")
        ctx.start(*ctx.serve_args, port=ctx.port)
        n = w.next_notify(dlg, 1, pred=lambda m: "terminated" in m.get("Subscription-State"),
                          timeout=8, what="the NOTIFY at expiry")
        notify_is(n, "presence", "terminated;reason=timeout")
        time.sleep(0.5)
        check(not ctx.db_exec("SELECT * FROM subscriptions"), "expired row still stored")
    finally:
        target.close()
        w.close()


@test("presence_restart")
def t_presence_restart(ctx):
    """Subscriptions survive a restart: after it, what changed while sipbx was down is
    notified at once (the colleague's binding was removed in the database: closed), a later
    change is notified in the same dialog with the next CSeq, and a refresh is taken."""
    target = Phone(ctx.port, "100", USERS["100"])
    w = Watcher(ctx, "101")
    try:
        check(target.register().status == 200, "100 registers")
        r, dlg = w.subscribe("100", expires=3600)
        n1 = w.next_notify(dlg)
        check(basic(n1) == "open", "open before the restart")
        ctx.sync()
        time.sleep(0.3)
        ctx.stop()
        ctx.db_exec("DELETE FROM registrations WHERE extension = '100'")
        ctx.start(*ctx.serve_args, port=ctx.port)
        n2 = w.next_notify(dlg, 1, what="the NOTIFY after the restart")
        notify_is(n2, "presence", "active")
        check(basic(n2) == "closed", "closed after the restart:\n%s" % n2.body)
        check(int(n2.cseq.split()[0]) == int(n1.cseq.split()[0]) + 1, "CSeq goes on")
        check(target.register().status == 200, "100 registers again")
        n3 = w.next_notify(dlg, 2, what="the NOTIFY of the new registration")
        check(basic(n3) == "open", "open again:\n%s" % n3.body)
        r = w.resubscribe(dlg, 600)
        check(r.status == 200, "refresh after the restart: want 200, got\n%s" % r)
    finally:
        target.close()
        w.close()


@test("presence_user_deleted")
def t_presence_user_deleted(ctx):
    """A user deleted: its watchers get a final NOTIFY (terminated;reason=noresource) and
    the subscriptions it had itself end (rejected); nothing of them stays stored."""
    ctx.add_users({"102": "secret102"})
    w = Watcher(ctx, "101")
    victim = Watcher(ctx, "102")
    try:
        r, dlg = w.subscribe("102")
        check(r.status == 200, "101 watches 102")
        w.next_notify(dlg)
        r, dlg2 = victim.subscribe("101", package="dialog")
        check(r.status == 200, "102 watches 101's lamp")
        victim.next_notify(dlg2)
        ctx.cli("user", "del", "102")
        n = w.next_notify(dlg, 1, timeout=5, what="the final NOTIFY of a deleted presentity")
        notify_is(n, "presence", "terminated;reason=noresource")
        n = victim.next_notify(dlg2, 1, timeout=5, what="the final NOTIFY to a deleted watcher")
        notify_is(n, "dialog", "terminated;reason=rejected")
        time.sleep(0.5)
        check(not ctx.db_exec("SELECT * FROM subscriptions"), "rows of a deleted user stay")
    finally:
        w.close()
        victim.close()


PIDF = ('<?xml version="1.0" encoding="UTF-8"?>\r\n'
        '<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:100@%s">\r\n'
        '<tuple id="t1"><status><basic>open</basic></status><note>%s</note></tuple>\r\n'
        '</presence>\r\n')


@test("presence_publish")
def t_presence_publish(ctx):
    """PUBLISH (RFC 3903): a new document gets 200 with an entity tag and Expires, and the
    watchers see it; an unknown tag 412; a refresh (If-Match, no body) and a modification
    (If-Match, a body) each get a new tag; the old tag is no good after it; a removal
    (Expires 0) brings back the state sipbx derives. Publishing another user's presence is
    403, another package 489 (Allow-Events: presence), another body type 415. Stored with
    its tag: the publication survives a restart."""
    pub = Watcher(ctx, "100")
    w = Watcher(ctx, "101")
    try:
        check(pub.register().status == 200, "100 registers")
        r, dlg = w.subscribe("100")
        w.next_notify(dlg)
        me = pub.aor
        ct = "application/pidf+xml"

        r, _ = pub.authed("PUBLISH", me, me, rand(), ["Event: presence", "Expires: 600"],
                          PIDF % (DOMAIN, "In a meeting"), ct)
        check(r.status == 200 and r.get("SIP-ETag"), "new publication: 200 with a tag\n%s" % r)
        check(r.get("Expires") == "600", "Expires %s" % r.get("Expires"))
        etag1 = r.get("SIP-ETag")
        n = w.next_notify(dlg, 1, what="the NOTIFY of the publication")
        check("In a meeting" in n.body, "the watcher does not see the published note:\n%s" % n.body)
        time.sleep(0.2)
        pres = [tuple(r.values())
                for r in ctx.db_exec("SELECT etag, extension FROM presence_publications")]
        check(pres == [(etag1, "100")], "stored publication: %s" % pres)

        r, _ = pub.authed("PUBLISH", me, me, rand(), ["Event: presence", "SIP-If-Match: nosuch"])
        check(r.status == 412, "unknown tag: want 412, got\n%s" % r)

        r, _ = pub.authed("PUBLISH", me, me, rand(),
                          ["Event: presence", "Expires: 600", "SIP-If-Match: " + etag1])
        check(r.status == 200 and r.get("SIP-ETag") not in (None, etag1),
              "refresh: 200 with a new tag\n%s" % r)
        etag2 = r.get("SIP-ETag")
        r, _ = pub.authed("PUBLISH", me, me, rand(), ["Event: presence", "SIP-If-Match: " + etag1])
        check(r.status == 412, "the old tag after a refresh: want 412, got\n%s" % r)

        r, _ = pub.authed("PUBLISH", me, me, rand(),
                          ["Event: presence", "Expires: 600", "SIP-If-Match: " + etag2],
                          PIDF % (DOMAIN, "Gone fishing"), ct)
        check(r.status == 200 and r.get("SIP-ETag") not in (None, etag2), "modify\n%s" % r)
        etag3 = r.get("SIP-ETag")
        n = w.next_notify(dlg, 2, pred=lambda m: "Gone fishing" in m.body,
                          what="the NOTIFY of the modification")

        ctx.sync()
        time.sleep(0.3)
        ctx.stop()
        ctx.start(*ctx.serve_args, port=ctx.port)
        r, _ = pub.authed("PUBLISH", me, me, rand(),
                          ["Event: presence", "Expires: 0", "SIP-If-Match: " + etag3])
        check(r.status == 200, "removal after a restart: want 200, got\n%s" % r)
        n = w.next_notify(dlg, 3, pred=lambda m: "Available" in m.body,
                          what="the NOTIFY after the removal")
        check("Gone fishing" not in n.body, "removed document still shown")
        time.sleep(0.3)
        check(not ctx.db_exec("SELECT * FROM presence_publications"), "removed row stays")

        other = "sip:101@%s" % DOMAIN
        r, _ = pub.authed("PUBLISH", other, other, rand(), ["Event: presence"],
                          PIDF % (DOMAIN, "x"), ct)
        check(r.status == 403, "publishing 101's presence: want 403, got\n%s" % r)
        r, _ = pub.authed("PUBLISH", me, me, rand(), ["Event: dialog"], "x", "text/plain")
        check(r.status == 489 and r.get("Allow-Events") == "presence", "dialog: 489\n%s" % r)
        r, _ = pub.authed("PUBLISH", me, me, rand(), ["Event: presence"], "hello", "text/plain")
        check(r.status == 415 and r.get("Accept") == ct, "text/plain: want 415, got\n%s" % r)
        r, _ = pub.authed("PUBLISH", me, me, rand(), ["Event: presence"])
        check(r.status == 400, "new publication without a body: want 400, got\n%s" % r)
    finally:
        pub.close()
        w.close()


def invite_async(phone, to_ext, call_id):
    """Sends an authenticated INVITE without waiting for its final answer; returns
    (branch, cseq). The 407 is ACKed."""
    ruri = to = "sip:%s@%s" % (to_ext, phone.domain)
    text, branch = request(phone, "INVITE", ruri, phone.aor, to, call_id, 1, phone.tag, body=SDP)
    r = phone.transact(text, branch)
    check(r.status == 407, "INVITE: want 407, got\n%s" % r)
    ack, _ = request(phone, "ACK", ruri, phone.aor, to, call_id, 1, phone.tag, r.tag("To"),
                     branch=branch, contact=False)
    phone.send(ack)
    auth = "Proxy-Authorization: " + digest(phone.ext, phone.password, parse_challenge(
        r.get("Proxy-Authenticate")), "INVITE", ruri)
    text, branch = request(phone, "INVITE", ruri, phone.aor, to, call_id, 2, phone.tag,
                           extra=[auth], body=SDP)
    phone.send(text)
    return branch, text


def lamp(w, dlg, after, state, what):
    n = w.next_notify(dlg, after, pred=lambda m: any(d["state"] == state for d in dialogs(m)),
                      what=what)
    notify_is(n, "dialog", "active")
    return n, next(d for d in dialogs(n) if d["state"] == state)


@test("blf_call")
def t_blf_call(ctx):
    """The busy lamp of 101, watched by 102, through a whole call from 100: idle (an empty
    dialog-info), trying (the INVITE is routed), early (101 rings; the tags are there for a
    pickup), confirmed (answered), terminated (BYE), then idle again; every NOTIFY's version
    one more than the last, the Call-ID and tags those of the call, direction recipient. The
    caller's own lamp says initiator."""
    ctx.add_users({"102": "secret102"})
    a = Phone(ctx.port, "100", USERS["100"], answer=False)
    b = Phone(ctx.port, "101", USERS["101"], answer=False)
    w = Watcher(ctx, "102")
    try:
        check(a.register().status == 200 and b.register().status == 200, "registered")
        r, dlg = w.subscribe("101", package="dialog")
        check(r.status == 200, "SUBSCRIBE dialog: want 200, got\n%s" % r)
        r, dlg_a = w.subscribe("100", package="dialog")
        n0 = w.next_notify(dlg, what="the first NOTIFY")
        notify_is(n0, "dialog", "active")
        check(not dialogs(n0) and 'state="full"' in n0.body, "idle lamp:\n%s" % n0.body)

        call_id = rand() + "@blf"
        invite_async(a, "101", call_id)
        inv = b.wait(lambda m: m.method == "INVITE", timeout=5)
        check(inv is not None, "the INVITE did not reach 101")
        _, d = lamp(w, dlg, 1, "trying", "trying")
        check(d["call-id"] == call_id and d["direction"] == "recipient", "trying: %s" % d)

        time.sleep(0.3)
        b.reply(inv, 180, "Ringing", ["Record-Route: " + x for x in inv.all("Record-Route")])
        _, d = lamp(w, dlg, 1, "early", "early")
        check(d["local-tag"] == b.tag and d["remote-tag"] == a.tag,
              "early: tags %s/%s, want %s/%s" % (d.get("local-tag"), d.get("remote-tag"),
                                                 b.tag, a.tag))
        check(d["remote_target"] == "sip:100@%s" % DOMAIN, "remote target %s" % d["remote_target"])

        time.sleep(0.3)
        extra = ["Record-Route: " + x for x in inv.all("Record-Route")]
        extra += ["Contact: <sip:101@%s:%d>" % (HOST, b.port), "Content-Type: application/sdp"]
        b.reply(inv, 200, "OK", extra, SDP)
        ok = a.wait(lambda m: m.status == 200 and "INVITE" in (m.cseq or ""), timeout=5)
        check(ok is not None, "the caller got no 200")
        _, d = lamp(w, dlg, 1, "confirmed", "confirmed")
        _, da = lamp(w, dlg_a, 1, "confirmed", "the caller's lamp confirmed")
        check(da["direction"] == "initiator" and da["local-tag"] == a.tag, "caller: %s" % da)
        dl = {"call_id": call_id, "from_tag": a.tag, "to_tag": ok.tag("To"), "to": ok.get("To"),
              "route": list(reversed(ok.all("Record-Route"))), "cseq": 2,
              "target": re.sub(r"^<|>.*$", "", ok.get("Contact"))}
        dl["to"] = re.sub(r";tag=.*$", "", dl["to"]).strip("<>")
        a.in_dialog(dl, "ACK", cseq=2)
        time.sleep(0.2)
        b.handler = Phone._answer
        r = a.in_dialog(dl, "BYE")
        check(r.status == 200, "BYE: want 200, got\n%s" % r)
        _, d = lamp(w, dlg, 1, "terminated", "terminated")
        n = w.next_notify(dlg, 1, pred=lambda m: not dialogs(m) and m is not n0, timeout=6,
                          what="the idle lamp after the call")
        versions = [int(re.search(r'version="(\d+)"', m.body).group(1)) for m in w.notifies(dlg)]
        check(versions == list(range(1, len(versions) + 1)), "versions %s" % versions)
        states = [[x["state"] for x in dialogs(m)] for m in w.notifies(dlg)]
        log("  lamp of 101: %s" % states)
    finally:
        a.close()
        b.close()
        w.close()


@test("pickup_replaces")
def t_pickup_replaces(ctx):
    """Call pickup (RFC 5359 2.19 with RFC 3891): 102 sees 101 ringing on its lamp and sends
    the caller an INVITE with Replaces naming that early dialog (to-tag the caller's,
    from-tag 101's, early-only), to the remote target the lamp gave (100's address). sipbx
    authenticates and relays it to 100 with Replaces untouched; 100 answers it and cancels
    its first INVITE; 101 stops ringing (CANCEL) and 102 is in the call."""
    ctx.add_users({"102": "secret102"})
    a = Phone(ctx.port, "100", USERS["100"], answer=False)
    b = Phone(ctx.port, "101", USERS["101"], answer=False)
    c = Watcher(ctx, "102")
    try:
        for p in (a, b, c):
            check(p.register().status == 200, "%s registers" % p.ext)
        r, dlg = c.subscribe("101", package="dialog")
        c.next_notify(dlg)
        call_id = rand() + "@ring"
        branch1, invite1 = invite_async(a, "101", call_id)
        inv = b.wait(lambda m: m.method == "INVITE", timeout=5)
        b.handler = None
        b.reply(inv, 180, "Ringing", ["Record-Route: " + x for x in inv.all("Record-Route")])
        _, d = lamp(c, dlg, 1, "early", "101 ringing")

        replaces = "%s;to-tag=%s;from-tag=%s;early-only" % (d["call-id"], d["remote-tag"],
                                                            d["local-tag"])
        pick_id = rand() + "@pickup"
        target = d["remote_target"]
        to = target
        text, pbranch = request(c, "INVITE", target, c.aor, to, pick_id, 1, c.tag, body=SDP)
        r = c.transact(text, pbranch)
        check(r.status == 407, "pickup INVITE: want 407, got\n%s" % r)
        ack, _ = request(c, "ACK", target, c.aor, to, pick_id, 1, c.tag, r.tag("To"),
                         branch=pbranch, contact=False)
        c.send(ack)
        auth = "Proxy-Authorization: " + digest("102", "secret102", parse_challenge(
            r.get("Proxy-Authenticate")), "INVITE", target)
        text, pbranch = request(c, "INVITE", target, c.aor, to, pick_id, 2, c.tag, body=SDP,
                                extra=[auth, "Replaces: " + replaces, "Require: replaces"])
        c.send(text)
        got = a.wait(lambda m: m.method == "INVITE" and m.get("Call-ID") == pick_id, timeout=5)
        check(got is not None, "the pickup INVITE did not reach the caller")
        check(got.get("Replaces") == replaces, "Replaces changed on the way: %r, want %r"
              % (got.get("Replaces"), replaces))
        # The caller takes the pickup (RFC 3891 3: an early dialog it initiated) ...
        a.reply(got, 200, "OK", ["Record-Route: " + x for x in got.all("Record-Route")]
                + ["Contact: <sip:100@%s:%d>" % (HOST, a.port), "Content-Type: application/sdp"],
                SDP)
        ok = c.response(pbranch, timeout=5)
        check(ok is not None and ok.status == 200, "the picker got no 200: %s" % ok)
        # ... and cancels the call that rang 101.
        cancel = invite1.split("\r\n\r\n")[0].replace("INVITE sip:", "CANCEL sip:", 1)
        cancel = re.sub(r"CSeq: 2 INVITE", "CSeq: 2 CANCEL", cancel)
        cancel = re.sub(r"(?m)^(Content-Type|Proxy-Authorization|Contact):.*\r\n", "", cancel + "\r\n")
        cancel = re.sub(r"Content-Length: \d+", "Content-Length: 0", cancel)
        a.send(cancel.rstrip("\r\n") + "\r\n\r\n")
        got_cancel = b.wait(lambda m: m.method == "CANCEL", timeout=5)
        check(got_cancel is not None, "101 was not CANCELled")
        b.reply(got_cancel, 200, "OK")
        b.reply(inv, 487, "Request Terminated")
        _, d = lamp(c, dlg, 1, "terminated", "101's lamp after the pickup")
    finally:
        a.close()
        b.close()
        c.close()


# ---------------------------------------------------------------------------------------------
# SIPp watchers: a subscription's life and the busy lamp through a call, for both packages

BODY_TYPES = {"presence": "application/pidf+xml", "dialog": "application/dialog-info+xml"}


def sipp_watcher(ctx, scenario, watcher, presentity, package, **kw):
    """Starts a SIPp watcher (scenario) of watcher's subscription to presentity's package."""
    keys = {"presentity": presentity, "package": package, "accept": BODY_TYPES[package]}
    return ctx.sipp_start(scenario, user=watcher, keys=keys, **kw)


def sipp_notifies(run):
    """The NOTIFYs a SIPp watcher received, each once (a retransmission, should sipbx have
    sent one before SIPp answered, is left out), in order."""
    seen, out = set(), []
    for m in run.received("NOTIFY"):
        if m.cseq() not in seen:
            seen.add(m.cseq())
            out.append(m)
    return out


def sipp_answered(run, n, what, timeout=10.0):
    """Waits until the SIPp watcher has answered n NOTIFYs (its 200s are in its log)."""
    deadline = time.monotonic() + timeout
    while True:
        oks = {m.cseq() for m in run.sent(200) if (m.cseq() or "").endswith("NOTIFY")}
        if len(oks) >= n:
            return
        if run.proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError("the SIPp watcher never answered %s (NOTIFY %d); it got:\n%s"
                                 % (what, n, "\n---\n".join(m.raw for m in sipp_notifies(run))))
        time.sleep(0.05)


def in_subscription(notifies, package, run):
    """Every NOTIFY of a SIPp watcher's subscription is in its dialog (the Call-ID of the
    SUBSCRIBE, sipbx's tag of the 200 in From, the watcher's in To), says package with its
    body type, and has a CSeq one above the last."""
    sub = run.sent("SUBSCRIBE")[0]
    ok = next(m for m in run.received(200) if m.cseq().endswith("SUBSCRIBE"))
    for i, m in enumerate(notifies):
        check(m.get("Call-ID") == sub.get("Call-ID"), "NOTIFY outside the dialog:\n%s" % m.raw)
        check(m.tag("From") == ok.tag("To") and m.tag("To") == sub.tag("From"),
              "NOTIFY tags are not the subscription's:\n%s" % m.raw)
        check(m.get("Event") == package, "Event %r, want %s" % (m.get("Event"), package))
        check(m.get("Content-Type") == BODY_TYPES[package],
              "Content-Type %r for %s" % (m.get("Content-Type"), package))
        check(m.cseq() == "%d NOTIFY" % (i + 1), "CSeq %r, want %d NOTIFY" % (m.cseq(), i + 1))


def stored_subscriptions(ctx, want, timeout=5.0):
    """Waits until the stored subscriptions (package, watcher, presentity) are want (the
    writer thread commits in batches)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = sorted(tuple(r.values()) for r in ctx.db_exec(
            "SELECT package, watcher, presentity FROM subscriptions"))
        if rows == sorted(want):
            return
        check(time.monotonic() < deadline, "stored subscriptions %s, want %s" % (rows, want))
        time.sleep(0.1)


@test("subscribe_refresh_sipp")
def t_subscribe_refresh_sipp(ctx):
    """SIPp watchers (subscribe_refresh.xml) through a subscription's life, for presence and
    for the busy lamp: challenged, taken, notified at once; refreshed to 1200 s and notified
    again with the state as it is; 423 below 60 s; cut to 3600 s above it; unsubscribed with
    a final NOTIFY, after which the dialog is gone (481). What each NOTIFY says: the colleague
    (101, registered, in no call) is open and Available, its lamp idle with a version one
    above the last; nothing is left stored."""
    ctx.add_users({"102": "secret102"})
    colleague = Phone(ctx.port, "101", USERS["101"])
    try:
        check(colleague.register().status == 200, "101 registers")
        for package in ("presence", "dialog"):
            run = ctx.sipp_wait(sipp_watcher(ctx, "subscribe_refresh.xml", "102", "101",
                                             package))
            got = sipp_notifies(run)
            check(len(got) == 4, "%s: %d NOTIFYs, want 4" % (package, len(got)))
            in_subscription(got, package, run)
            if package == "presence":
                for m in got:
                    check(basic(m) == "open" and "Available" in m.body,
                          "101 is registered and in no call:\n%s" % m.body)
            else:
                versions = [int(re.search(r'version="(\d+)"', m.body).group(1)) for m in got]
                check(versions == [1, 2, 3, 4], "dialog-info versions %s" % versions)
                for m in got:
                    check(not dialogs(m) and 'state="full"' in m.body
                          and 'entity="sip:101@%s"' % DOMAIN in m.body, "idle lamp:\n%s" % m.body)
            stored_subscriptions(ctx, [])
            log("  %s: %s" % (package, [m.get("Subscription-State") for m in got]))
    finally:
        colleague.close()


@test("subscribe_expiry_sipp")
def t_subscribe_expiry_sipp(ctx):
    """SIPp watchers (subscribe_expiry.xml) of both packages whose subscriptions run out:
    each gets a final NOTIFY, terminated;reason=timeout, in its dialog with the next CSeq,
    and nothing else (the colleague did not change while sipbx was down: no NOTIFY for
    that). The hour is shortened in the database while sipbx is stopped, so the
    subscriptions are also taken back at start-up with their expiry."""
    ctx.add_users({"102": "secret102"})
    runs = {package: sipp_watcher(ctx, "subscribe_expiry.xml", "102", "101", package,
                                  timeout="90s")
            for package in ("presence", "dialog")}
    for package, run in runs.items():
        sipp_answered(run, 1, "the first %s NOTIFY" % package)
    stored_subscriptions(ctx, [("dialog", "102", "101"), ("presence", "102", "101")])
    ctx.stop()
    ctx.db_exec("UPDATE subscriptions SET expires_at = strftime('%s', 'now') + 3")
    ctx.start(*ctx.serve_args, port=ctx.port)
    for package, run in runs.items():
        ctx.sipp_wait(run, timeout=60)
        got = sipp_notifies(run)
        check(len(got) == 2, "%s: %d NOTIFYs, want 2" % (package, len(got)))
        in_subscription(got, package, run)
        check(got[1].get("Subscription-State") == "terminated;reason=timeout",
              "%s: %s" % (package, got[1].get("Subscription-State")))
    stored_subscriptions(ctx, [])


@test("blf_call_sipp")
def t_blf_call_sipp(ctx):
    """A SIPp busy-lamp key (blf_watcher.xml, 102 watching 101) through a whole call from
    100 to 101, which raw phones drive one step at a time, each once the watcher has
    answered the NOTIFY of the step before: idle, trying, early, confirmed, terminated, idle;
    then the key's unsubscribe and its final NOTIFY. The scenario checks each document's
    shape and state; here: every NOTIFY in the subscription's dialog, versions 1 to 7, the
    call's Call-ID, 101's tag as local and 100's as remote (what a pickup names), 100 as the
    remote identity and target, direction recipient."""
    ctx.add_users({"102": "secret102"})
    a = Phone(ctx.port, "100", USERS["100"], answer=False)
    b = Phone(ctx.port, "101", USERS["101"], answer=False)
    try:
        check(a.register().status == 200 and b.register().status == 200, "registered")
        w = ctx.sipp_start("blf_watcher.xml", user="102", keys={"presentity": "101"},
                           timeout="60s")
        sipp_answered(w, 1, "the idle lamp")

        call_id = rand() + "@blf-sipp"
        invite_async(a, "101", call_id)
        inv = b.wait(lambda m: m.method == "INVITE", timeout=5)
        check(inv is not None, "the INVITE did not reach 101")
        sipp_answered(w, 2, "trying")
        rr = ["Record-Route: " + x for x in inv.all("Record-Route")]
        b.reply(inv, 180, "Ringing", rr)
        sipp_answered(w, 3, "early")
        b.reply(inv, 200, "OK", rr + ["Contact: <sip:101@%s:%d>" % (HOST, b.port),
                                      "Content-Type: application/sdp"], SDP)
        ok = a.wait(lambda m: m.status == 200 and "INVITE" in (m.cseq or ""), timeout=5)
        check(ok is not None, "the caller got no 200")
        dl = {"call_id": call_id, "from_tag": a.tag, "to_tag": ok.tag("To"),
              "to": re.sub(r";tag=.*$", "", ok.get("To")).strip("<>"),
              "route": list(reversed(ok.all("Record-Route"))), "cseq": 2,
              "target": re.sub(r"^<|>.*$", "", ok.get("Contact"))}
        a.in_dialog(dl, "ACK", cseq=2)
        sipp_answered(w, 4, "confirmed")
        b.handler = Phone._answer
        r = a.in_dialog(dl, "BYE")
        check(r.status == 200, "BYE: want 200, got\n%s" % r)
        sipp_answered(w, 5, "terminated")
        ctx.sipp_wait(w)  # idle again, the unsubscribe and its final NOTIFY
    finally:
        a.close()
        b.close()
    got = sipp_notifies(w)
    check(len(got) == 7, "%d NOTIFYs, want 7" % len(got))
    in_subscription(got, "dialog", w)
    versions = [int(re.search(r'version="(\d+)"', m.body).group(1)) for m in got]
    check(versions == list(range(1, 8)), "versions %s" % versions)
    states = [[d["state"] for d in dialogs(m)] for m in got]
    check(states == [[], ["trying"], ["early"], ["confirmed"], ["terminated"], [], []],
          "lamp states %s" % states)
    for m in got[1:5]:
        d = dialogs(m)[0]
        check(d["call-id"] == call_id and d["direction"] == "recipient", "dialog %s" % d)
        check(d["remote_target"] == "sip:100@%s" % DOMAIN, "remote target %s" % d)
        if d["state"] != "trying":  # 101's tag comes with its 180
            check(d.get("local-tag") == b.tag and d.get("remote-tag") == a.tag,
                  "%s: tags %s/%s, want %s/%s" % (d["state"], d.get("local-tag"),
                                                  d.get("remote-tag"), b.tag, a.tag))
    check(got[-1].get("Subscription-State") == "terminated;reason=timeout",
          "final NOTIFY: %s" % got[-1].get("Subscription-State"))
    log("  lamp of 101 as the SIPp key saw it: %s" % states)
