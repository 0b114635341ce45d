#!/usr/bin/env python3
"""Voicemail under load: N simultaneous calls leave messages (docs/performance.md, "Voicemail").

    voicemail.py --sipbx PATH [--calls 50] [--talk 10] [--no-realtime] [--keep]

Starts sipbx on loopback (free ports, a temporary directory) with user 100 calling and 101
sending every call to its voicemail; N phones of 100 call 101 at once. Each hears the
default greeting and the tone (what sipbx sends is timed: every packet's arrival is stamped
by the kernel, SO_TIMESTAMPNS), then talks for --talk seconds (a test signal of its own,
PCMU, 20 ms packets) and hangs up. Then every message's WAV file is compared with what its
caller sent: it must be exactly the G.711 decoding of the packets sent. Printed: the spacing
of sipbx's packets (deviation from 20 ms: median, 99th and 99.9th percentile, worst),
the RFC 3550 interarrival jitter per stream, gaps in sequence numbers and timestamps, the
media thread's late ticks and CPU time, and how many messages match. --no-realtime runs
the daemon without the right to real-time priority (setpriv drops CAP_SYS_NICE; for a root
shell), as an unprivileged one without LimitRTPRIO would run.

A measurement, not a ctest test. Python standard library only.
"""

import argparse
import json
import os
import re
import select
import shutil
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from sipbxtest import media  # noqa: E402
from sipbxtest.net import free_port, sip_ping  # noqa: E402
from sipbxtest.phone import Phone  # noqa: E402

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


def thread_cpu(pid, name):
    """CPU seconds of the daemon's thread called name (pthread_setname_np)."""
    hz = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                if f.read().strip() != name:
                    continue
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / hz
        except OSError:
            continue
    return 0.0


def process_cpu(pid):
    hz = os.sysconf("SC_CLK_TCK")
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / hz


class Receiver(threading.Thread):
    """Reads every stream's packets with their kernel arrival times."""

    def __init__(self, socks):
        super().__init__(daemon=True)
        self.socks = socks
        self.got = {s.fileno(): [] for s in socks}  # fd -> [(ns, seq, ts, ssrc)]
        self.stop = False

    def run(self):
        while not self.stop:
            ready, _, _ = select.select(self.socks, [], [], 0.2)
            for s in ready:
                while True:
                    try:
                        data, anc, _, _ = s.recvmsg(2048, socket.CMSG_SPACE(16),
                                                    socket.MSG_DONTWAIT)
                    except BlockingIOError:
                        break
                    ns = None
                    for level, typ, cdata in anc:
                        if level == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS:
                            sec, nsec = struct.unpack("qq", cdata[:16])
                            ns = sec * 1000000000 + nsec
                    p = media.parse_rtp(data)
                    if p and ns:
                        self.got[s.fileno()].append((ns, p["seq"], p["ts"], p["ssrc"]))


def api(port, token, path):
    req = urllib.request.Request("http://127.0.0.1:%d/api/v1%s" % (port, path),
                                 headers={"Authorization": "Bearer " + token})
    return json.loads(urllib.request.urlopen(req, timeout=10).read())


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sipbx", required=True)
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--talk", type=float, default=10.0)
    ap.add_argument("--no-realtime", action="store_true")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="sipbx-bench-vm-")
    db = os.path.join(tmp, "sipbx.db")
    sip_port, http_port = free_port(), free_port()
    log = open(os.path.join(tmp, "sipbx.log"), "wb")
    wrap = []
    if a.no_realtime:
        if not shutil.which("setpriv"):
            raise SystemExit("--no-realtime needs setpriv (util-linux)")
        wrap = ["setpriv", "--inh-caps=-sys_nice", "--bounding-set=-sys_nice"]
    proc = subprocess.Popen(wrap + [os.path.abspath(a.sipbx), "serve", "--db", db, "--domain", "127.0.0.1",
                             "--sip", "127.0.0.1:%d" % sip_port, "--http",
                             "127.0.0.1:%d" % http_port, "--voicemail-silence-seconds", "0",
                             "--voicemail-max-seconds", "120", "--log-level", "warn"],
                            stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
    phones, socks = [], []
    try:
        deadline = time.time() + 20
        while sip_ping(sip_port, timeout=0.2) != 200:
            if proc.poll() is not None or time.time() > deadline:
                raise SystemExit("sipbx did not start:\n" + open(os.path.join(tmp, "sipbx.log")).read())
        for ext in ("100", "101"):
            subprocess.run([a.sipbx, "user", "add", ext, "--password", "secret" + ext, "--db", db],
                           check=True, capture_output=True)
        con = sqlite3.connect(db)
        con.execute("INSERT INTO forward_rules (extension, kind, enabled, target, voicemail) "
                    "VALUES ('101', 'unavailable', 1, '', 1)")
        con.commit()
        con.close()
        time.sleep(1.0)  # the daemon picks the users and the rule up within 50 ms
        token = subprocess.run([a.sipbx, "token", "create", "bench", "--db", db],
                               capture_output=True, text=True, check=True).stdout.strip()

        signals = [media.test_signal(a.talk, seed=i + 1) for i in range(a.calls)]
        for i in range(a.calls):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        rx = Receiver(socks)
        rx.start()
        cpu0, media0 = process_cpu(proc.pid), thread_cpu(proc.pid, "sipbx-media")
        t0 = time.time()
        calls = []
        for i in range(a.calls):
            p = Phone(sip_port, "100", "secret100")
            phones.append(p)
            r, dlg = p.invite("101", sdp=media.sdp(socks[i].getsockname()[1], (0, 101)))
            if r.status != 200:
                raise SystemExit("call %d: %d" % (i, r.status))
            m = re.search(r"m=audio (\d+)", r.body)
            calls.append((p, dlg, ("127.0.0.1", int(m.group(1)))))
        setup = time.time() - t0
        # the default greeting ("the person at extension 1 0 1 ...") and the tone
        time.sleep(api(http_port, token, "/users/101/voicemail/greeting")["duration"] + 0.9)
        # all callers talk at once: one packet each every 20 ms
        codes = [media.encode(sig) for sig in signals]
        seq = [1000] * a.calls
        start = time.monotonic()
        npk = len(codes[0]) // 160
        for k in range(npk):
            for i, (_, _, dest) in enumerate(calls):
                socks[i].sendto(media.rtp_packet(0, seq[i] + k, 5000 + 160 * k, 0x1000 + i,
                                                 codes[i][160 * k:160 * (k + 1)]), dest)
            delay = start + (k + 1) * 0.02 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        time.sleep(0.5)
        for p, dlg, _ in calls:
            p.in_dialog(dlg, "BYE")
        rx.stop = True
        rx.join()
        cpu1, media1 = process_cpu(proc.pid), thread_cpu(proc.pid, "sipbx-media")
        wall = time.time() - t0

        # what sipbx sent: spacing, jitter, gaps
        devs, jitters, gaps, worst = [], [], 0, 0.0
        for s in socks:
            pk = rx.got[s.fileno()]
            j = 0.0
            for (t1, s1, ts1, _), (t2, s2, ts2, _) in zip(pk, pk[1:]):
                gap_ms = (t2 - t1) / 1e6
                devs.append(abs(gap_ms - 20.0))
                worst = max(worst, abs(gap_ms - 20.0))
                if (s2 - s1) & 0xFFFF != 1 or (ts2 - ts1) & 0xFFFFFFFF != 160:
                    gaps += 1
                d = abs(gap_ms - (ts2 - ts1) / 8.0)  # RFC 3550 6.4.1, in ms
                j += (d - j) / 16
            jitters.append(j)
        # what was recorded
        con = sqlite3.connect(db)
        rows = {}
        deadline = time.time() + 10
        while time.time() < deadline:
            rows = {r[0]: r[1] for r in con.execute(
                "SELECT call_id, file FROM voicemail_messages")}
            if len(rows) >= a.calls:
                break
            time.sleep(0.2)
        con.close()
        exact = 0
        for i, (p, dlg, _) in enumerate(calls):
            f = rows.get(dlg["call_id"])
            if not f:
                continue
            _, _, _, got = media.read_wav(os.path.join(tmp, "voicemail", f))
            want = media.decode(codes[i])
            if got[:len(want)] == want and len(got) - len(want) <= 2400:
                exact += 1

        npackets = sum(len(v) for v in rx.got.values())
        print("voicemail.py --calls %d --talk %g: %d calls set up in %.2f s, %.1f s in all"
              % (a.calls, a.talk, a.calls, setup, wall))
        print("  sent by sipbx: %d packets in %d streams; sequence/timestamp gaps: %d"
              % (npackets, len(socks), gaps))
        print("  spacing, |arrival gap - 20 ms|: median %.3f ms, p99 %.3f ms, p99.9 %.3f ms, "
              "worst %.3f ms" % (percentile(devs, 0.5), percentile(devs, 0.99),
                                 percentile(devs, 0.999), worst))
        print("  RFC 3550 interarrival jitter at the end of each stream: median %.3f ms, "
              "worst %.3f ms" % (percentile(jitters, 0.5), max(jitters)))
        req = urllib.request.Request("http://127.0.0.1:%d/metrics" % http_port,
                                     headers={"Authorization": "Bearer " + token})
        metrics = urllib.request.urlopen(req, timeout=10).read().decode()
        late = re.search(r"^sipbx_rtp_late_ticks_total (\d+)", metrics, re.M)
        print("  media thread: %.2f s of CPU (%.1f%% of one core), late ticks: %s; sipbx in "
              "all: %.2f s of CPU" % (media1 - media0, 100 * (media1 - media0) / wall,
                                      late.group(1) if late else "?", cpu1 - cpu0))
        print("  messages: %d of %d stored, %d identical to the G.711 decoding of what was sent"
              % (len(rows), a.calls, exact))
        return 0 if exact == a.calls and gaps == 0 else 1
    finally:
        for p in phones:
            p.close()
        for s in socks:
            s.close()
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        if a.keep:
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
