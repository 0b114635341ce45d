"""SIP tests of the registrar: registering over UDP and TCP, refreshes, several devices,
de-registration, the interval limits (423, the cap), bindings kept across a restart and
their expiry, and the requests the server answers itself (OPTIONS, 405).
"""

import re
import threading
import time

from checks import proxy_request
from harness import DOMAIN, HOST, SipClient, authorization, check, parse_challenge, test


@test("register")
def t_register(ctx):
    """Challenge then success; the binding shows in `user list`."""
    port = ctx.sipp("register.xml")
    rows = ctx.wait_list("100", "online")
    check(rows[0][1] == "sip:100@%s:%d" % (HOST, port), "user list contact: %s" % rows)
    check(ctx.user_list()["101"][0][0] == "offline", "101 must stay offline")


@test("register_tcp")
def t_register_tcp(ctx):
    """The same over TCP (sipbx listens on UDP and TCP)."""
    ctx.sipp("register.xml", transport="t1")
    rows = ctx.wait_list("100", "online")
    check(" tcp " in rows[0][2], "binding should be marked tcp: %s" % rows)


@test("refresh")
def t_refresh(ctx):
    ctx.sipp("refresh.xml")
    rows = ctx.wait_list("100", "online")
    check(len(rows) == 1, "a refresh must not add a binding: %s" % rows)


@test("two_devices")
def t_two_devices(ctx):
    ctx.sipp("register.xml")
    ctx.sipp("two_devices.xml")
    deadline = time.monotonic() + 3
    while len(ctx.user_list().get("100", [])) != 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    rows = ctx.user_list()["100"]
    check(len(rows) == 2 and all(r[0] == "online" for r in rows), "two bindings: %s" % rows)


@test("deregister_one")
def t_deregister_one(ctx):
    first = ctx.sipp("register.xml")
    ctx.sipp("two_devices.xml")
    ctx.sipp("deregister_one.xml", local_port=first)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        rows = ctx.user_list()["100"]
        if len(rows) == 1:
            break
        time.sleep(0.1)
    check(len(rows) == 1 and rows[0][1].endswith(";line=dev2"), "left: %s" % rows)


@test("deregister_all")
def t_deregister_all(ctx):
    ctx.sipp("register.xml")
    ctx.sipp("two_devices.xml")
    ctx.sipp("deregister_all.xml")
    ctx.wait_list("100", "offline")


@test("interval_too_brief")
def t_interval_too_brief(ctx):
    ctx.sipp("interval_too_brief.xml")
    check(ctx.user_list()["100"][0][0] == "offline", "a 423 must not create a binding")


@test("expires_cap")
def t_expires_cap(ctx):
    ctx.sipp("expires_cap.xml")
    rows = ctx.wait_list("100", "online")
    secs = int(rows[0][2].split()[-1].rstrip("s"))
    check(3590 <= secs <= 3600, "stored expiry must be capped too: %s" % rows)


@test("options")
def t_options(ctx):
    ctx.sipp("options.xml")


@test("method_not_allowed")
def t_method_not_allowed(ctx):
    ctx.sipp("method_not_allowed.xml")


@test("restart")
def t_restart(ctx):
    """A binding survives SIGTERM and a new start on the same database."""
    port = ctx.sipp("register.xml")
    ctx.wait_list("100", "online")
    ctx.stop()
    ctx.start(*ctx.serve_args)
    ctx.sipp("query.xml")
    rows = ctx.wait_list("100", "online", timeout=0)
    check(rows[0][1] == "sip:100@%s:%d" % (HOST, port), "after restart: %s" % rows)
    check("1 registration(s) restored" in ctx.daemon_log(), "restore not logged")


@test("expiry", serve_args=["--min-expires", "1"])
def t_expiry(ctx):
    """A 2 s binding is gone 4 s later: from the list and from a query. Until then every
    query lists it with time left (never expires=0 for a binding whose time is up)."""
    registered = time.monotonic()
    ctx.sipp("expiry.xml")
    ctx.wait_list("100", "online")
    c = SipClient(ctx.port)
    try:
        r = c.request("REGISTER", "100", contact=None)
        chal = parse_challenge(r.get("WWW-Authenticate"))
        nc, left = 0, ["?"]
        while left and time.monotonic() - registered < 4:
            nc += 1
            r = c.request("REGISTER", "100", contact=None,
                          auth=authorization("100", "secret100", chal, nc=nc))
            check(r.status == 200, "query:\n%s" % r)
            left = [int(x.rsplit(";expires=", 1)[1]) for x in r.contacts()]
            check(all(x > 0 for x in left), "a binding listed with no time left:\n%s" % r)
            time.sleep(0.05)
        check(not left, "the 2 s binding is still listed after 4 s:\n%s" % r)
    finally:
        c.close()
    time.sleep(max(0, 4 - (time.monotonic() - registered)))
    ctx.wait_list("100", "offline", timeout=0.5)
    check("100 expired" in ctx.daemon_log(), "expiry not logged")


def answer_200(c, req):
    """Answers the request req (text) that c received with a 200 (To-tag added)."""
    head = req.replace("\r\n", "\n").split("\n\n", 1)[0].split("\n")
    keep = [h for h in head[1:] if re.match(r"(?i)(via|from|call-id|cseq|v|f|i)\s*:", h)]
    to = next(h for h in head[1:] if re.match(r"(?i)(to|t)\s*:", h))
    c.send_raw("\r\n".join(["SIP/2.0 200 OK"] + keep + [to + ";tag=moved1", "Content-Length: 0",
                                                       "", ""]))


@test("register_moved")
def t_register_moved(ctx):
    """A phone behind NAT whose public port changed registers the same Contact from a new
    source: the binding follows it (still one binding, requests go to the new source), and
    a plain refresh from there keeps it."""
    contact = "<sip:100@%s:5999>" % HOST  # the phone's own address, as a phone behind NAT writes
    old, new, caller = SipClient(ctx.port), SipClient(ctx.port), SipClient(ctx.port)
    try:
        for c in (old, new, new):  # registered, moved, refreshed in place
            r, _ = c.register("100", "secret100", contact=contact, expires=300)
            check(r.status == 200, "REGISTER from port %d:\n%s" % (c.port, r))
        deadline = time.monotonic() + 3  # the writer commits in batches
        while ":%d" % new.port not in str(ctx.wait_list("100", "online")) and \
                time.monotonic() < deadline:
            time.sleep(0.1)
        rows = ctx.user_list()["100"]
        check(len(rows) == 1 and ":%d" % new.port in rows[0][2],
              "one binding, from the new source port %d: %s" % (new.port, rows))
        done = {}
        th = threading.Thread(target=lambda: done.setdefault("r", proxy_request(
            caller, "MESSAGE", "101", "sip:100@%s" % DOMAIN, to_user="100", body="moved?")))
        th.start()
        got = new.drain(5, first=True)
        check(got and got[0].startswith("MESSAGE "), "the MESSAGE must reach the new source: %s"
              % got)
        answer_200(new, got[0])
        th.join(10)
        check(done.get("r") is not None and done["r"].status == 200,
              "the caller's answer: %s" % done.get("r"))
        check(not old.drain(0.5), "nothing may go to the old source")
    finally:
        for c in (old, new, caller):
            c.close()
