"""SIP tests of message waiting (RFC 3842): a phone subscribes to message-summary for its own
mailbox (407, then 200 and a NOTIFY saying what it holds), and every change of the mailbox is
a NOTIFY with the counts the database has: a message left (SIPp playing a pcap), marked heard
over REST, deleted over REST, heard and deleted on the phone with the voicemail number. A
colleague's mailbox is private (403), other packages still get 489, the voicemail number is
a name of one's own mailbox, subscriptions survive a restart (and what changed meanwhile is
said at once), and a real softphone (baresip's mwi module) shows the indicator after a
caller leaves a message for it while it is busy.
"""

import importlib.util
import json
import os
import re
import shutil
import sys
import time
import urllib.request

from harness import DOMAIN, HERE, HOST, Skip, check, free_port, log, test
from sipbxtest import media
from sipbxtest.phone import request, rand


def _sibling(area):
    """The module of tests/sip/test_<area>.py, loaded as harness.load_tests loads it (so the
    tests it registers are registered once)."""
    name = "sip_test_" + area
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, os.path.join(HERE, "test_%s.py" % area))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


presence = _sibling("presence")  # Watcher: a raw phone that subscribes and keeps its NOTIFYs
voicemail = _sibling("voicemail")  # vm_rule, short_greeting, Caller, wait_messages ...
clients = _sibling("clients")  # Baresip

MWI_TYPE = "application/simple-message-summary"


# ---------------------------------------------------------------------------------------------
# helpers

def summary(m):
    """The fields of a message-summary body: {"Messages-Waiting": "yes", ...}."""
    return dict((k.strip(), v.strip()) for k, v in
                (line.split(":", 1) for line in m.body.splitlines() if ":" in line))


def says(m, waiting, new, old, ext="101"):
    """m is an active message-summary NOTIFY saying waiting and new/old for ext's mailbox."""
    check(m.get("Event").split(";")[0] == "message-summary", "Event %s" % m.get("Event"))
    check(m.get("Content-Type") == MWI_TYPE, "Content-Type %s" % m.get("Content-Type"))
    check(m.get("Subscription-State").startswith("active"),
          "Subscription-State %s" % m.get("Subscription-State"))
    s = summary(m)
    want = {"Messages-Waiting": waiting, "Message-Account": "sip:%s@%s" % (ext, DOMAIN),
            "Voice-Message": "%d/%d (0/0)" % (new, old)}
    check(s == want, "message-summary says %s, want %s:\n%s" % (s, want, m.body))


def counts_are(new, old):
    """A NOTIFY predicate: the body gives new/old."""
    return lambda m: "Voice-Message: %d/%d " % (new, old) in m.body


def mailbox_ready(ctx, ext="101", condition="unavailable"):
    """ext's calls go to its voicemail when condition holds, with a short greeting, and the
    daemon has the rule."""
    voicemail.vm_rule(ctx, ext, condition)
    voicemail.short_greeting(ctx, ext)
    ctx.sync()


def subscribe_mailbox(w, user=None, expires=600):
    """w subscribes to message-summary at sip:USER@domain (its own extension unless given):
    the first answer must be 407 (authenticated like calls); returns (final response,
    dialog)."""
    to = "sip:%s@%s" % (user or w.ext, DOMAIN)
    text, branch = request(w, "SUBSCRIBE", to, w.aor, to, rand(), 1, w.tag,
                           extra=["Event: message-summary", "Expires: %d" % expires])
    r = w.transact(text, branch)
    check(r.status == 407 and r.get("Proxy-Authenticate"), "without credentials: 407\n%s" % r)
    r, cseq = w.authed("SUBSCRIBE", to, to, rand() + "@mwi",
                       extra=["Event: message-summary", "Expires: %d" % expires,
                              "Accept: " + MWI_TYPE])
    dlg = {"call_id": r.get("Call-ID"), "to": to, "to_tag": r.tag("To"), "cseq": cseq,
           "target": re.sub(r"^<|>.*$", "", r.get("Contact") or ""), "route": [],
           "package": "message-summary"}
    return r, dlg


class Api:
    """The REST API of the test's daemon, with a token made by the CLI."""

    def __init__(self, ctx):
        m = re.search(r"REST API: http://127\.0\.0\.1:(\d+)/api/v1", ctx.daemon_log())
        check(m, "the banner names the REST API")
        self.base = "http://%s:%s/api/v1" % (HOST, m.group(1))
        self.token = re.search(r"sipbx_[0-9a-f]+", ctx.cli("token", "create", "mwi")).group(0)

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method, headers={
            "Authorization": "Bearer " + self.token, "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            text = resp.read().decode()
            return resp.status, json.loads(text) if text else None

    def metric(self, name):
        """The value of one line of /metrics (name with its labels)."""
        req = urllib.request.Request(self.base[:-len("/api/v1")] + "/metrics",
                                     headers={"Authorization": "Bearer " + self.token})
        with urllib.request.urlopen(req, timeout=10) as resp:
            text = resp.read().decode()
        m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
        check(m, "/metrics has no %s:\n%s" % (name, text))
        return float(m.group(1))


def leave_message(ctx, callee="101", seconds=1.0, seed=3):
    """A raw phone of 100 calls callee (whose rule sends it to voicemail), speaks and hangs
    up; returns once the message is stored."""
    before = len(voicemail.messages(ctx, callee))
    a = voicemail.Caller(ctx, callee)
    try:
        time.sleep(1.0)  # the short greeting and the tone
        a.rtp.send_audio(media.test_signal(seconds, seed=seed))
        check(a.phone.in_dialog(a.dlg, "BYE").status == 200, "the caller's BYE")
    finally:
        a.close()
    return voicemail.wait_messages(ctx, callee, before + 1)[-1]


# ---------------------------------------------------------------------------------------------
# the lamp through a message's life

@test("mwi_subscribe")
def t_mwi_subscribe(ctx):
    """101 subscribes to its own mailbox (407, then 200 and a NOTIFY: no, 0/0), and once more
    by the voicemail number (*97). SIPp (100) leaves a message with the audio of a pcap: both
    subscriptions get yes, 1/0. Marked heard over REST: no, 0/1. Deleted over REST: no, 0/0.
    101 may not watch 100's mailbox (403, with or without messages there), an unknown
    package still gets 489 with the three sipbx has, and nothing of the refused ones is
    stored."""
    mailbox_ready(ctx)
    w = presence.Watcher(ctx, "101")
    try:
        r, dlg = subscribe_mailbox(w)
        check(r.status == 200 and dlg["to_tag"], "SUBSCRIBE: want 200, got\n%s" % r)
        check("message-summary" in (r.get("Allow-Events") or ""),
              "Allow-Events of the 200: %s" % r.get("Allow-Events"))
        says(w.next_notify(dlg, what="the first NOTIFY"), "no", 0, 0)
        r, dlg97 = subscribe_mailbox(w, "*97")
        check(r.status == 200, "SUBSCRIBE to *97: want 200, got\n%s" % r)
        says(w.next_notify(dlg97, what="the first NOTIFY of *97"), "no", 0, 0)

        signal = media.test_signal(3.0)
        media.write_pcap(os.path.join(ctx.tmp, "vm_message.pcap"), media.audio_packets(signal))
        ctx.run_sipp("vm_leave_caller.xml", keys={"callee": "101"}, pause_ms=2000,
                     args=["-mi", HOST, "-mp", str(free_port())])
        row = voicemail.wait_messages(ctx, "101", 1)[0]
        for d in (dlg, dlg97):
            says(w.next_notify(d, 1, counts_are(1, 0), timeout=5, what="yes, 1/0"),
                 "yes", 1, 0)
        log("  message %d left: the lamp is on" % row["id"])

        api = Api(ctx)
        status, msg = api.call("PATCH", "/users/101/voicemail/%d" % row["id"], {"heard": True})
        check(status == 200 and msg["heard"] is True, "PATCH heard: %d %s" % (status, msg))
        says(w.next_notify(dlg, 2, counts_are(0, 1), what="no, 0/1"), "no", 0, 1)
        status, _ = api.call("DELETE", "/users/101/voicemail/%d" % row["id"])
        check(status == 204, "DELETE: %d" % status)
        says(w.next_notify(dlg, 3, counts_are(0, 0), what="no, 0/0"), "no", 0, 0)
        says(w.next_notify(dlg97, 3, counts_are(0, 0), what="no, 0/0 (*97)"), "no", 0, 0)
        n = len(w.notifies(dlg))
        check(n == 4, "one NOTIFY per change, got %d:\n%s" % (
            n, "\n---\n".join(m.body for m in w.notifies(dlg))))

        # 100's mailbox is 100's, with or without messages in it
        voicemail.put_message(ctx, "100", "101", media.test_signal(0.5))
        for user in ("100", "102"):
            to = "sip:%s@%s" % (user, DOMAIN)
            r, _ = w.authed("SUBSCRIBE", to, to, rand(), extra=["Event: message-summary"])
            check(r.status == 403, "101 watching %s's mailbox: want 403, got\n%s" % (user, r))
        to = "sip:101@%s" % DOMAIN
        text, branch = request(w, "SUBSCRIBE", to, w.aor, to, rand(), 1, w.tag,
                               extra=["Event: conference", "Expires: 600"])
        r = w.transact(text, branch)
        check(r.status == 489 and r.get("Allow-Events") == "presence, dialog, message-summary",
              "an unknown package: 489 with Allow-Events\n%s" % r)
        ctx.sync()
        time.sleep(0.3)
        rows = [tuple(x.values()) for x in ctx.db_exec(
            "SELECT package, watcher, presentity FROM subscriptions ORDER BY created_at")]
        check(rows == [("message-summary", "101", "101")] * 2, "stored: %s" % rows)
        n = api.metric('sipbx_sip_subscriptions{package="message-summary"}')
        check(n == 2, "/metrics counts %s message-summary subscriptions, want 2" % n)
        _, pres = api.call("GET", "/presence?extension=101")
        check(pres["items"][0]["watchers"] == 0,
              "a phone's subscription to its own mailbox is no watcher of it: %s" % pres)
    finally:
        w.close()


@test("mwi_phone", serve_args=["--voicemail-silence-seconds", "2"])
def t_mwi_phone(ctx):
    """The mailbox changed on the phone: a message is left (1/0), 101 dials *97 and hears it
    (0/1: heard once played), presses 7 to delete it (0/0). Each step is one NOTIFY."""
    mailbox_ready(ctx)
    w = presence.Watcher(ctx, "101")
    try:
        r, dlg = subscribe_mailbox(w)
        check(r.status == 200, "SUBSCRIBE: want 200, got\n%s" % r)
        says(w.next_notify(dlg, what="the first NOTIFY"), "no", 0, 0)
        leave_message(ctx, seconds=2.0, seed=12)
        says(w.next_notify(dlg, 1, counts_are(1, 0), what="yes, 1/0"), "yes", 1, 0)
        a = voicemail.Caller(ctx, "*97", user="101", pts=(0, 101))
        try:
            says(w.next_notify(dlg, 2, counts_are(0, 1), timeout=15, what="no, 0/1 (heard)"),
                 "no", 0, 1)
            time.sleep(0.5)
            a.rtp.send_dtmf("7")
            says(w.next_notify(dlg, 3, counts_are(0, 0), timeout=10, what="no, 0/0 (deleted)"),
                 "no", 0, 0)
        finally:
            a.close()
        check(voicemail.messages(ctx, "101") == [], "the message is still stored")
        check(len(w.notifies(dlg)) == 4, "one NOTIFY per change:\n%s" % "\n---\n".join(
            m.body for m in w.notifies(dlg)))
    finally:
        w.close()


@test("mwi_restart")
def t_mwi_restart(ctx):
    """A message-summary subscription survives a restart: a message stored while sipbx was
    down is said at once after it (yes, 1/0, in the same dialog with the next CSeq), a
    refresh is taken, and a later change (the user deleted: the mailbox is gone) ends it."""
    w = presence.Watcher(ctx, "101")
    try:
        r, dlg = subscribe_mailbox(w)
        check(r.status == 200, "SUBSCRIBE: want 200, got\n%s" % r)
        n1 = w.next_notify(dlg, what="the first NOTIFY")
        says(n1, "no", 0, 0)
        ctx.sync()
        time.sleep(0.3)
        ctx.stop()
        voicemail.put_message(ctx, "101", "100", media.test_signal(0.5))
        ctx.start(*ctx.serve_args, port=ctx.port)
        n2 = w.next_notify(dlg, 1, what="the NOTIFY after the restart")
        says(n2, "yes", 1, 0)
        check(int(n2.cseq.split()[0]) > int(n1.cseq.split()[0]) and
              n2.get("Call-ID") == dlg["call_id"],
              "not the same dialog:\n%s" % n2)
        r = w.resubscribe(dlg, 600)
        check(r.status == 200, "refresh after the restart: want 200, got\n%s" % r)
        says(w.next_notify(dlg, 2, what="the NOTIFY of the refresh"), "yes", 1, 0)
        api = Api(ctx)
        check(api.call("DELETE", "/users/101")[0] == 204, "user 101 deleted")
        end = w.next_notify(dlg, 3, lambda m: "terminated" in m.get("Subscription-State"),
                            what="the final NOTIFY")
        check(end.get("Subscription-State") == "terminated;reason=noresource",
              "Subscription-State %s" % end.get("Subscription-State"))
    finally:
        w.close()


@test("mwi_retention")
def t_mwi_retention(ctx):
    """Retention changes the mailbox too: two messages are stored while sipbx is down, a new
    one older than voicemail_max_days (60) and a heard one of today. After the restart the
    subscription says yes, 1/1; the first retention run (5 s after the start) deletes the
    old one and the lamp goes out: no, 0/1."""
    w = presence.Watcher(ctx, "101")
    try:
        r, dlg = subscribe_mailbox(w)
        check(r.status == 200, "SUBSCRIBE: want 200, got\n%s" % r)
        says(w.next_notify(dlg, what="the first NOTIFY"), "no", 0, 0)
        ctx.sync()
        time.sleep(0.3)
        ctx.stop()
        voicemail.put_message(ctx, "101", "100", media.test_signal(0.5), age=61 * 86400)
        voicemail.put_message(ctx, "101", "102", media.test_signal(0.5, seed=2), heard=1)
        ctx.start(*ctx.serve_args, port=ctx.port)
        says(w.next_notify(dlg, 1, what="the NOTIFY after the restart"), "yes", 1, 1)
        says(w.next_notify(dlg, 2, counts_are(0, 1), timeout=15, what="no, 0/1 (retention)"),
             "no", 0, 1)
        rows = voicemail.messages(ctx, "101")
        check([x["caller"] for x in rows] == ["102"], "after retention: %s" % rows)
    finally:
        w.close()


# ---------------------------------------------------------------------------------------------
# a real phone's indicator

def mwi_shown(phone):
    """What baresip 1.0's mwi module printed, one dict per NOTIFY (its output has a line
    "----- MWI for AOR -----" and then the body's lines)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", phone.log())
    shown = []
    for block in re.split(r"^----- MWI for \S+ -----$", text, flags=re.M)[1:]:
        fields = dict(re.findall(r"^(Messages-Waiting|Message-Account|Voice-Message): (.+)$",
                                 block, re.M))
        shown.append(fields)
    return shown


def wait_shown(phone, count, timeout):
    """Waits until baresip has printed count MWI notifications; returns the last."""
    deadline = time.monotonic() + timeout
    while len(mwi_shown(phone)) < count:
        if time.monotonic() > deadline:
            raise AssertionError("baresip printed %d MWI notifications, want %d:\n%s" % (
                len(mwi_shown(phone)), count, phone.log()))
        time.sleep(0.1)
    return mwi_shown(phone)[count - 1]


@test("mwi_baresip")
def t_mwi_baresip(ctx):
    """baresip registers as 101 with its mwi module, which subscribes to message-summary
    after the registration: the first NOTIFY it prints says no. 101 is busy: it rejects the
    call from SIPp (100), whose busy rule sends it to voicemail, where SIPp leaves the audio
    of a pcap. baresip then shows the indicator: Messages-Waiting: yes, 1/0."""
    binary = shutil.which("baresip")
    if not binary or not os.path.exists("/usr/lib/baresip/modules/mwi.so"):
        raise Skip("baresip with its mwi module is not installed")
    mailbox_ready(ctx, condition="busy")
    # The account comes once baresip runs: mwi.so 1.0 subscribes again for every
    # subscription it has when a timer of 1 ms after its start fires, adding to the list it
    # walks, so a registration answered within that millisecond (loopback) makes it
    # subscribe in a loop without end.
    phone = clients.Baresip(ctx, "101", binary, apps=["mwi.so"], register=False)
    try:
        phone.add_account()
        ctx.wait_list("101", "online", timeout=10)
        first = wait_shown(phone, 1, 15)
        check(first == {"Messages-Waiting": "no", "Message-Account": "sip:101@%s" % DOMAIN,
                        "Voice-Message": "0/0 (0/0)"}, "baresip's first MWI: %s" % first)

        signal = media.test_signal(3.0)
        media.write_pcap(os.path.join(ctx.tmp, "vm_message.pcap"), media.audio_packets(signal))
        run = ctx.sipp_start("vm_leave_caller.xml", keys={"callee": "101"}, pause_ms=2000,
                             args=["-mi", HOST, "-mp", str(free_port())])
        phone.wait_event("CALL_INCOMING", timeout=10)
        phone.command("hangup")  # busy: 486
        ctx.sipp_wait(run)
        voicemail.wait_messages(ctx, "101", 1)
        lit = wait_shown(phone, 2, 10)
        check(lit["Messages-Waiting"] == "yes" and lit["Voice-Message"] == "1/0 (0/0)",
              "baresip's MWI after the message: %s\n%s" % (lit, phone.log()))
        block = phone.log()[phone.log().rindex("----- MWI for"):].splitlines()[:4]
        log("  baresip 101 shows: %s" % " | ".join(block))
        cdr = ctx.cdr(run.call_id())
        check(cdr["answered_by"] == "voicemail:101", "record: %s" % cdr)
        fw = [(f["from"], f["to"], f["reason"]) for f in json.loads(cdr["forwards"])]
        check(fw == [("101", "voicemail", "user-busy")], "forwards: %s" % fw)
    finally:
        phone.stop()
