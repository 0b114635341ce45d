"""SIP tests of voicemail: a caller leaves a message (SIPp playing RTP from a pcap) and the WAV
file holds what was sent; busy and no-answer rules lead there; silence, the length limit and
a full mailbox end the call from sipbx's side; the voicemail number plays the mailbox, new
messages first, over RTP whose headers and pacing are checked, and keys as RFC 4733 events
and SIP INFO (application/dtmf-relay and application/dtmf) go on, replay and delete. The
calls are records and ladders like any other: the voicemail user agent is a party on them.
"""

import json
import os
import re
import struct
import sys
import threading
import time

from checks import captured, cdr_is
from harness import HERE, HOST, check, free_port, log, test

sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from sipbxtest import media  # noqa: E402
from sipbxtest.phone import Phone  # noqa: E402


# ---------------------------------------------------------------------------------------------
# helpers

def vm_rule(ctx, ext, kind, timeout=None):
    """A forward rule of kind to ext's own voicemail (db/011); call sync() after."""
    ctx.db_exec("INSERT OR REPLACE INTO forward_rules (extension, kind, enabled, target, timeout, "
                "voicemail) VALUES (?, ?, 1, '', ?, 1)", ext, kind, timeout)


def short_greeting(ctx, ext):
    """A greeting of 0.3 s (a quiet hum) for ext, so the recording starts soon after the
    answer: greeting and tone take 0.7 s."""
    pcm = struct.pack("<2400h", *[int(200 * ((i // 20) % 2)) for i in range(2400)])
    ctx.db_exec("INSERT OR REPLACE INTO voicemail_greetings (extension, pcm, updated_at) "
                "VALUES (?, ?, ?)", ext, pcm, int(time.time()))


def vm_port(ctx):
    m = re.search(r"user agent on 127\.0\.0\.1:(\d+)", ctx.daemon_log())
    check(m, "the banner names the voicemail user agent's port")
    return int(m.group(1))


def messages(ctx, ext):
    return ctx.db_exec("SELECT * FROM voicemail_messages WHERE extension = ? ORDER BY id", ext)


def wait_messages(ctx, ext, count, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        rows = messages(ctx, ext)
        if len(rows) >= count or time.monotonic() > deadline:
            check(len(rows) == count, "mailbox %s holds %d messages, want %d: %s" % (
                ext, len(rows), count, rows))
            return rows
        time.sleep(0.1)


def put_message(ctx, ext, caller, samples, heard=0, age=0.0):
    """A message as sipbx stores one: its WAV file in the voicemail directory and its row."""
    os.makedirs(os.path.join(ctx.tmp, "voicemail"), exist_ok=True)
    name = "%032x.wav" % (int(time.time() * 1e6) + len(messages(ctx, ext)) + hash(caller) % 1000)
    media.write_wav(os.path.join(ctx.tmp, "voicemail", name), samples)
    ctx.db_exec("INSERT INTO voicemail_messages (extension, caller, received_us, duration_ms, "
                "heard, file, bytes) VALUES (?, ?, ?, ?, ?, ?, ?)", ext, caller,
                int((time.time() - age) * 1e6), len(samples) * 1000 // 8000, heard, name,
                44 + 2 * len(samples))
    return name


def wav_of(ctx, row):
    rate, channels, bits, samples = media.read_wav(os.path.join(ctx.tmp, "voicemail", row["file"]))
    check((rate, channels, bits) == (8000, 1, 16), "message %s is %d Hz, %d channels, %d bits" % (
        row["file"], rate, channels, bits))
    return samples


def same_within_g711(got, want, what):
    """got is want after G.711: each sample within the quantisation step of its size."""
    for i, (g, w) in enumerate(zip(got, want)):
        if abs(g - w) > 16 + abs(w) // 32:
            raise AssertionError("%s: sample %d is %d, sent %d (more than G.711 changes)" % (
                what, i, g, w))


def voicemail_leg(ctx, call_id, box, reason=None):
    """The call's record says the mailbox's voicemail answered, and sipbx's capture shows the
    leg to the voicemail user agent: INVITE out, 200 in, like any forward target."""
    port = vm_port(ctx)
    row = ctx.cdr(call_id)
    check(row["answered_by"] == "voicemail:%s" % box and row["disposition"] == "ANSWERED",
          "record of %s: %s" % (call_id, row))
    if reason:
        fw = [(f["from"], f["to"], f["reason"]) for f in json.loads(row["forwards"])]
        check(fw == [(box, "voicemail", reason)], "forwards of %s: %s" % (call_id, fw))
    lad = captured(ctx, call_id, lambda ld: ("out", port, "INVITE") in ld and ("in", port, "200")
                   in ld)
    check(("out", port, "INVITE") in lad and ("in", port, "200") in lad,
          "sipbx's capture of %s lacks the voicemail leg: %s" % (call_id, lad))
    return row


class Caller:
    """A phone of 100 with an RTP peer, calling to (an extension or the voicemail number)."""

    def __init__(self, ctx, to, user="100", pts=(0, 8, 101)):
        self.rtp = media.RtpPeer()
        self.phone = Phone(ctx.port, user, ctx.users[user])
        self.resp, self.dlg = self.phone.invite(to, sdp=media.sdp(self.rtp.port, pts))
        check(self.resp.status == 200, "the call to %s: %d" % (to, self.resp.status))
        self.rtp.set_remote(self.resp.body)

    def bye_from_sipbx(self, timeout):
        return self.phone.wait(lambda m: m.method == "BYE", timeout)

    def close(self):
        self.rtp.close()
        self.phone.close()


def send_info(caller, ctype, body):
    """An INFO in the caller's dialog with body of ctype; returns the final response."""
    c = caller.phone
    from sipbxtest.phone import request
    caller.dlg["cseq"] += 1
    text, branch = request(c, "INFO", caller.dlg["target"], c.aor, caller.dlg["to"],
                           caller.dlg["call_id"], caller.dlg["cseq"], caller.dlg["from_tag"],
                           caller.dlg["to_tag"], extra=["Route: " + r for r in caller.dlg["route"]])
    text = text.replace("Content-Length: 0\r\n\r\n", "Content-Type: %s\r\nContent-Length: %d\r\n"
                        "\r\n%s" % (ctype, len(body), body))
    return c.transact(text, branch)


# ---------------------------------------------------------------------------------------------
# leaving messages

@test("voicemail_leave")
def t_voicemail_leave(ctx):
    """101 is not registered and sends the unavailable to its voicemail. SIPp (100) calls,
    plays 3 s of audio from a pcap after the greeting and hangs up. The message's WAV holds
    exactly what was sent, decoded (so within G.711 of the signal); the record says the
    voicemail answered after a forward; sipbx captured the leg to its user agent."""
    vm_rule(ctx, "101", "unavailable")
    short_greeting(ctx, "101")
    ctx.sync()
    signal = media.test_signal(3.0)
    packets = media.audio_packets(signal)
    media.write_pcap(os.path.join(ctx.tmp, "vm_message.pcap"), packets)
    run = ctx.run_sipp("vm_leave_caller.xml", keys={"callee": "101"}, pause_ms=2000,
                       args=["-mi", HOST, "-mp", str(free_port())])
    call_id = run.call_id()
    row = wait_messages(ctx, "101", 1)[0]
    check(row["caller"] == "100" and row["call_id"] == call_id and row["heard"] == 0,
          "the message row: %s" % row)
    samples = wav_of(ctx, row)
    sent = media.decode(media.encode(signal))
    check(len(samples) >= len(sent) and len(samples) <= len(sent) + 8000 * 3 // 10,
          "the message has %d samples, %d were sent" % (len(samples), len(sent)))
    check(samples[:len(sent)] == sent, "the message is not what SIPp sent: first difference "
          "at %s" % next((i for i, (a, b) in enumerate(zip(samples, sent)) if a != b), None))
    same_within_g711(samples[:len(sent)], signal, "the message")
    check(abs(row["duration_ms"] - len(samples) // 8) <= 1, "duration_ms %d for %d samples" % (
        row["duration_ms"], len(samples)))
    voicemail_leg(ctx, call_id, "101", "unavailable")
    cdr_is(ctx, call_id, caller="100", dialled="101", hangup_by="caller")
    log("  message of %d samples, identical to the %d sent" % (len(samples), len(sent)))


def busy_phone(ctx, ext, status=486, reason="Busy Here"):
    """A registered phone of ext that answers every INVITE with status (or only rings)."""
    p = Phone(ctx.port, ext, ctx.users[ext], answer=False)

    def answer(ep, req):
        if req.method == "INVITE":
            ep.reply(req, 180 if status is None else status, reason)
        elif req.method not in ("ACK",):
            ep.reply(req, 200, "OK")
    p.handler = answer
    check(p.register().status == 200, "%s registers" % ext)
    return p


@test("voicemail_busy_no_answer", serve_args=["--voicemail-silence-seconds", "2",
                                              "--voicemail-max-seconds", "5"])
def t_voicemail_busy_no_answer(ctx):
    """Busy: 101's phone answers 486, its busy rule leads to voicemail; the caller talks for
    a second and then sends silence: after 2 s of it sipbx ends the call (BYE) and keeps the
    second, not the silence. No answer: 101 rings for its rule's 2 s, then voicemail; the
    caller talks on and on: sipbx ends the call at the 5 s limit."""
    vm_rule(ctx, "101", "busy")
    vm_rule(ctx, "101", "no_answer", timeout=2)
    short_greeting(ctx, "101")
    ctx.sync()
    b = busy_phone(ctx, "101", 486)
    a = Caller(ctx, "101")
    try:
        check(a.rtp.wait_tone_end(), "no greeting and tone")
        a.rtp.send_audio(media.test_signal(1.0, seed=4))
        a.rtp.send_audio([0] * 8000 * 4)
        bye = a.bye_from_sipbx(3.0)
        check(bye is not None, "sipbx did not end the call after 2 s of silence")
    finally:
        a.close()
        b.close()
    row = wait_messages(ctx, "101", 1)[0]
    check(900 <= row["duration_ms"] <= 1400, "a second of speech and 0.3 s of silence kept, "
          "got %d ms" % row["duration_ms"])
    voicemail_leg(ctx, a.dlg["call_id"], "101", "user-busy")
    cdr_is(ctx, a.dlg["call_id"], hangup_by="callee")

    b = busy_phone(ctx, "101", None, "Ringing")
    a = Caller(ctx, "101")
    try:
        speech = media.test_signal(8.0, seed=5)
        check(a.rtp.wait_tone_end(), "no greeting and tone")
        started = time.monotonic()  # the recording's 5 s run from the tone's end
        talk = threading.Thread(target=a.rtp.send_audio, args=(speech,))
        talk.start()
        bye = a.bye_from_sipbx(10.0)
        took = time.monotonic() - started
        talk.join()
        # 5 s of message (less the few packets wait_tone_end waited for), then "goodbye",
        # under a second
        check(bye is not None and 4.8 <= took < 7.0,
              "sipbx did not end the call at the 5 s limit: BYE %s s after the tone" % (
                  "%.1f" % took if bye else "no"))
        # what this side took to start talking once it saw the tone end (a loaded machine)
        lag_ms = int((a.rtp.sent_at - started) * 1000)
        log("  BYE %.1f s after the tone; the first packet left %d ms after it" % (took, lag_ms))
    finally:
        a.close()
        b.close()
    rows = wait_messages(ctx, "101", 2)
    # 5 s from the tone; the message is what came after the caller's first packet (none
    # before it), so the 5 s less the caller's lag, and less what it took to see the tone end
    check(4500 <= rows[1]["duration_ms"] + lag_ms and rows[1]["duration_ms"] <= 5000,
          "the limit is 5 s: %s (the caller talked %d ms after the tone)" % (rows[1], lag_ms))
    voicemail_leg(ctx, a.dlg["call_id"], "101", "no-answer")


@test("voicemail_full", serve_args=["--voicemail-max-messages", "1"])
def t_voicemail_full(ctx):
    """A mailbox with as many new messages as it may keep takes no more: the caller hears
    that it is full and sipbx hangs up; nothing is recorded."""
    ctx.stop()
    put_message(ctx, "101", "102", media.test_signal(1.0))
    ctx.start(*ctx.serve_args)
    vm_rule(ctx, "101", "unavailable")
    ctx.sync()
    a = Caller(ctx, "101")
    try:
        check(a.bye_from_sipbx(8.0) is not None, "sipbx did not hang up")
        check(len(a.rtp.packets()) > 50, "nothing was said before the BYE")
    finally:
        a.close()
    # the call is over (its record closed): whatever it would have recorded is stored by now
    row = ctx.cdr(a.dlg["call_id"])
    check(row["answered_by"] == "voicemail:101", "record: %s" % row)
    check(len(messages(ctx, "101")) == 1, "a message was recorded into a full mailbox")
    check("mailbox 101 is full" in ctx.daemon_log(), "the log says why")


# ---------------------------------------------------------------------------------------------
# listening

def rtp_stream_ok(rtp):
    """What sipbx sent is one clean RTP stream: one SSRC, sequence numbers and timestamps
    without a gap, a marker on the first packet only, 160 samples a packet."""
    pk = [p for _, p, _ in rtp.packets()]
    check(len(pk) > 100, "only %d RTP packets" % len(pk))
    check(len({p["ssrc"] for p in pk}) == 1, "more than one SSRC")
    for a, b in zip(pk, pk[1:]):
        check((b["seq"] - a["seq"]) & 0xFFFF == 1 and (b["ts"] - a["ts"]) & 0xFFFFFFFF == 160,
              "a gap between packets %s and %s" % (a["seq"], b["seq"]))
    check(pk[0]["marker"] and not any(p["marker"] for p in pk[1:]), "markers")
    check(all(len(p["payload"]) == 160 for p in pk), "160 samples a packet")


@test("voicemail_listen")
def t_voicemail_listen(ctx):
    """100 has a saved message (older) and a new one. Dialling *97 plays the new one first
    (its samples, G.711-encoded, are in the RTP stream), then, on 6 (RFC 4733), the saved
    one; 5 plays it again; 7 deletes it (row and file); "no more messages" and sipbx hangs
    up. The new message is heard now; the call is recorded as answered by the voicemail."""
    old = media.test_signal(2.0, seed=7)
    new = media.test_signal(2.0, seed=8)
    old_file = put_message(ctx, "100", "101", old, heard=1, age=3600)
    put_message(ctx, "100", "102", new)
    a = Caller(ctx, "*97", pts=(0, 101))
    try:
        new_codes, old_codes = media.encode(new), media.encode(old)
        i = a.rtp.wait_for(new_codes[:8000], 20)
        check(i >= 0, "the new message was not played")
        check(a.rtp.codes().find(old_codes[:8000]) < 0, "the saved message came first")
        a.rtp.send_dtmf("6")  # while the new message plays
        j = a.rtp.wait_for(old_codes[:8000], 15)
        check(j > i, "6 did not go on to the saved message")
        a.rtp.send_dtmf("5")
        deadline = time.monotonic() + 15
        while a.rtp.codes().count(old_codes[:8000]) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        check(a.rtp.codes().count(old_codes[:8000]) == 2, "5 did not play it again")
        a.rtp.send_dtmf("7")
        check(a.bye_from_sipbx(15) is not None, "sipbx did not hang up after the last message")
        rtp_stream_ok(a.rtp)
    finally:
        a.close()
    rows = messages(ctx, "100")
    check(len(rows) == 1 and rows[0]["caller"] == "102" and rows[0]["heard"] == 1,
          "after the call: %s" % rows)
    check(not os.path.exists(os.path.join(ctx.tmp, "voicemail", old_file)),
          "the deleted message's file is still there")
    row = voicemail_leg(ctx, a.dlg["call_id"], "100")
    check(row["dialled"] == "*97" and row["hangup_by"] == "callee", "record: %s" % row)


@test("voicemail_listen_info")
def t_voicemail_listen_info(ctx):
    """Keys as SIP INFO: SIPp dials *97 and sends INFO application/dtmf-relay Signal=7 while
    the only message plays: it is deleted and sipbx hangs up. Then a Python phone sends
    application/dtmf 6 (next) and a body that is no key (refused 400); an INFO of another
    type gets 415."""
    put_message(ctx, "100", "101", media.test_signal(4.0, seed=9))
    ctx.run_sipp("vm_listen_info.xml", keys={"callee": "*97"}, pause_ms=7000,
                 args=["-mi", HOST, "-mp", str(free_port())])
    rows = messages(ctx, "100")
    check(rows == [], "the message was not deleted by INFO: %s" % rows)
    check(os.listdir(os.path.join(ctx.tmp, "voicemail")) == [], "its file is still there")

    put_message(ctx, "100", "101", media.test_signal(4.0, seed=10))
    first = media.encode(media.test_signal(4.0, seed=10))
    put_message(ctx, "100", "102", media.test_signal(4.0, seed=11))
    a = Caller(ctx, "*97")
    try:
        # past the introduction (where a key starts the first message): the first one plays
        check(a.rtp.wait_for(first[:1600], 15) >= 0, "the first message was not played")
        check(send_info(a, "text/plain", "Signal=6").status == 415, "text/plain refused")
        check(send_info(a, "application/dtmf", "x").status == 400, "no key refused")
        check(send_info(a, "application/dtmf", "6").status == 200, "application/dtmf taken")
        second = media.encode(media.test_signal(4.0, seed=11))
        check(a.rtp.wait_for(second[:8000], 15) >= 0, "6 did not go to the second message")
    finally:
        a.close()
