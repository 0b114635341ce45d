"""SIP tests with real clients: registrations replayed in the shape of captured softphones
(the seeds: X-Lite, MicroSIP) and an end-to-end call between two real softphones (baresip),
driven over baresip's ctrl_tcp.
"""

import json
import os
import random
import re
import shutil
import socket
import subprocess
import time

from checks import captured, cdr_is
from harness import (DOMAIN, HOST, SipClient, TestFailure, Skip, check, digest_response,
                     free_port, log, parse_challenge, test)


# ---------------------------------------------------------------------------------------------
# registrations in the shape of captured clients (seeds)

def seed_check(ctx, scenario, cid_str, user_agent, raw_auth):
    """A seed scenario, then the same client's credential shape replayed raw (the seeds'
    servers did not offer qop, so these clients answered without it)."""
    ctx.sipp(scenario, cid_str=cid_str)
    check(re.search(r"registrar: 100 registered sip:100@127\.0\.0\.1:\d+;\S+ from .*\(%s"
                    % re.escape(user_agent), ctx.daemon_log()),
          "the binding with User-Agent %r is not in the log" % user_agent)
    check(ctx.user_list()["100"][0][0] == "offline", "the seed's de-registration must remove it")
    c = SipClient(ctx.port)
    try:
        r = c.request("REGISTER", "101", expires=3600, extra=["User-Agent: " + user_agent])
        chal = parse_challenge(r.get("WWW-Authenticate"))
        r = c.request("REGISTER", "101", expires=3600, auth=raw_auth(chal))
        check(r.status == 200, "the seed's Authorization shape (no qop) was refused:\n%s" % r)
    finally:
        c.close()


def seed_auth(sep, algorithm):
    """The Authorization a seed's client sends for 101, given a parsed challenge: no qop, the
    parameters joined by sep, with algorithm=MD5 at the end or without it."""
    def shape(chal):
        uri = "sip:%s" % DOMAIN
        resp = digest_response("101", "secret101", chal["realm"], chal["nonce"], "REGISTER", uri)
        params = ['username="101"', 'realm="%s"' % chal["realm"], 'nonce="%s"' % chal["nonce"],
                  'uri="%s"' % uri, 'response="%s"' % resp]
        return "Digest " + sep.join(params + (["algorithm=MD5"] if algorithm else []))
    return shape


@test("seed_xlite_register")
def t_seed_xlite(ctx):
    # seed 002: Proxy-Authorization: Digest username="101",realm="myvoipapp.com",nonce="...",
    # uri="sip:192.168.1.132",response="...",algorithm=MD5  (no spaces, no qop)
    # Call-ID shape of seed 002: MDhjYTg0NzVmODk0ZGNhYzI0YTMyYjE0ZTE1ZTZkODk.
    seed_check(ctx, "seed_xlite_register.xml", "MDhjYTg0NzVmODk0ZGNhYzI0YTMyYjE0ZT%u%p.",
               "X-Lite 4 release 4.1 stamp 63214", seed_auth(",", algorithm=True))


@test("seed_microsip_register")
def t_seed_microsip(ctx):
    # seed 000: Authorization: Digest username="kt408", realm="intel.org", nonce="...",
    # uri="sip:intel.org", response="..."  (no algorithm, no qop)
    # Call-ID shape of seed 001: dd68454eca354c44b183c60ff41b9f90 (32 hex digits)
    seed_check(ctx, "seed_microsip_register.xml", "dd68454eca354c44b183%u%p",
               "MicroSIP/3.19.30", seed_auth(", ", algorithm=False))


# ---------------------------------------------------------------------------------------------
# an end-to-end call between two real softphones (baresip), driven over baresip's ctrl_tcp

class Baresip:
    """One headless baresip for user, with its own config directory: SIP on a free loopback
    port, no sound card (a 440 Hz sine as microphone, a WAV file as speaker), driven by JSON
    commands over its ctrl_tcp socket, which also reports every call event."""

    def __init__(self, ctx, user, binary):
        self.user = user
        self.dir = os.path.join(ctx.tmp, "baresip-%s" % user)
        os.makedirs(self.dir)
        self.sip_port, self.ctrl_port = free_port(), free_port()
        with open(os.path.join(self.dir, "config"), "w") as f:
            f.write("poll_method epoll\n"
                    "sip_listen %s:%d\n"
                    "call_local_timeout 120\n"
                    "audio_player aufile,%s\n"
                    "audio_source ausine,440\n"
                    "ausrc_srate 48000\nausrc_channels 2\n"  # all ausine can do; resampled
                    "audio_alert aufile,%s\n"
                    "module_path /usr/lib/baresip/modules\n"
                    "module g711.so\nmodule aufile.so\nmodule ausine.so\nmodule ctrl_tcp.so\n"
                    "module_tmp account.so\nmodule_app menu.so\n"
                    "ctrl_tcp_listen %s:%d\n"
                    % (HOST, self.sip_port, os.path.join(self.dir, "speaker.wav"),
                       os.path.join(self.dir, "alert.wav"), HOST, self.ctrl_port))
        with open(os.path.join(self.dir, "accounts"), "w") as f:
            f.write("<sip:%s@%s:%d>;auth_pass=%s;regint=60;audio_codecs=PCMU\n"
                    % (user, DOMAIN, ctx.port, ctx.users[user]))
        self.logpath = os.path.join(self.dir, "baresip.log")
        with open(self.logpath, "wb") as out:
            # -t: a safety net, should the test die before it quits baresip
            self.proc = subprocess.Popen([binary, "-f", self.dir, "-t", "60"],
                                         stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, cwd=self.dir)
        self.sock, self.buf, self.events = None, b"", []
        deadline = time.monotonic() + 10
        while self.sock is None:
            try:
                self.sock = socket.create_connection((HOST, self.ctrl_port), timeout=1)
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise TestFailure("baresip %s did not start:\n%s" % (user, self.log()))
                time.sleep(0.1)

    def log(self):
        return open(self.logpath, errors="replace").read()

    def _read(self, deadline):
        """One netstring (a JSON object) or None at the deadline."""
        while True:
            m = re.match(rb"(\d+):", self.buf)
            if m and len(self.buf) >= m.end() + int(m.group(1)) + 1:
                n = int(m.group(1))
                data, self.buf = self.buf[m.end():m.end() + n], self.buf[m.end() + n + 1:]
                return json.loads(data.decode(errors="replace"))
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return None
            if not chunk:
                raise TestFailure("baresip %s closed its control socket:\n%s" % (
                    self.user, self.log()))
            self.buf += chunk

    def command(self, command, params=""):
        """Runs a menu command (dial, accept, hangup, quit ...) and returns its answer."""
        token = "%x" % random.getrandbits(32)
        msg = json.dumps({"command": command, "params": params, "token": token}).encode()
        self.sock.sendall(b"%d:%s," % (len(msg), msg))
        deadline = time.monotonic() + 5
        while True:
            obj = self._read(deadline)
            if obj is None:
                raise TestFailure("baresip %s: no answer to %s" % (self.user, command))
            if obj.get("event"):
                self.events.append(obj)
            elif obj.get("token") == token:
                return obj

    def wait_event(self, kind, timeout=10.0):
        """Waits for a ua event of type kind (REGISTER_OK, CALL_INCOMING, ...); returns it."""
        deadline = time.monotonic() + timeout
        while True:
            hit = next((e for e in self.events if e.get("type") == kind), None)
            if hit:
                self.events.remove(hit)
                return hit
            obj = self._read(deadline)
            if obj is None:
                raise TestFailure("baresip %s: no %s event (got %s)\n%s" % (
                    self.user, kind, [e.get("type") for e in self.events], self.log()))
            if obj.get("event"):
                self.events.append(obj)

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.command("quit")
            except (TestFailure, OSError):
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.sock:
            self.sock.close()


@test("baresip_call")
def t_baresip_call(ctx):
    """Two real softphones (baresip 100 and 101, no sound card) register, 100 dials 101, 101
    accepts, both see the call established, 100 hangs up, both see it closed. sipbx's own
    capture shows the ladder of flows.md "Basic call and release" on both legs, and the
    record says ANSWERED."""
    binary = shutil.which("baresip")
    if not binary or not os.path.isdir("/usr/lib/baresip/modules"):
        raise Skip("baresip (with its modules in /usr/lib/baresip/modules) is not installed")
    phones = {}
    try:
        for user in ("100", "101"):
            phones[user] = Baresip(ctx, user, binary)
        a, b = phones["100"], phones["101"]
        # (REGISTER_OK may come before the control socket is up: the user list tells)
        for user, p in phones.items():
            rows = ctx.wait_list(user, "online", timeout=10)
            check(re.match(r"sip:%s\S*@%s:%d" % (user, re.escape(HOST), p.sip_port), rows[0][1])
                  and "baresip" in rows[0][2], "%s's binding: %s" % (user, rows))
        a.command("dial", "101")
        incoming = b.wait_event("CALL_INCOMING")
        a.wait_event("CALL_RINGING")  # B's 180, relayed
        b.command("accept")
        a.wait_event("CALL_ESTABLISHED")
        b.wait_event("CALL_ESTABLISHED")
        time.sleep(1.0)  # a second of audio both ways
        a.command("hangup")
        a.wait_event("CALL_CLOSED")
        b.wait_event("CALL_CLOSED")
        log("  baresip 101 got: %s" % incoming.get("param", ""))
    finally:
        for p in phones.values():
            p.stop()
    rows = ctx.db_exec("SELECT * FROM cdrs")
    check(len(rows) == 1, "want one call record, got %s" % rows)
    call_id = rows[0]["call_id"]
    cdr_is(ctx, call_id, disposition="ANSWERED", caller="100", dialled="101",
           answered_by="101", hangup_by="caller", status=200)
    check("baresip" in rows[0]["user_agent"], "caller's User-Agent: %r" % rows[0]["user_agent"])
    # both legs, as sipbx captured them
    want = [("in", a.sip_port, "INVITE"), ("out", a.sip_port, "407"),
            ("in", a.sip_port, "ACK"), ("in", a.sip_port, "INVITE"),
            ("out", b.sip_port, "INVITE"), ("in", b.sip_port, "180"),
            ("out", a.sip_port, "180"), ("in", b.sip_port, "200"),
            ("out", a.sip_port, "200"), ("in", a.sip_port, "ACK"),
            ("out", b.sip_port, "ACK"), ("in", a.sip_port, "BYE"),
            ("out", b.sip_port, "BYE"), ("in", b.sip_port, "200"),
            ("out", a.sip_port, "200")]
    got = captured(ctx, call_id, lambda ladder: ladder == want)
    check(got == want, "the captured ladder:\n%s\nwant:\n%s" % (
        "\n".join(map(str, got)), "\n".join(map(str, want))))
