"""SIP tests with real clients: registrations replayed in the shape of captured softphones
(the seeds: X-Lite, MicroSIP), an end-to-end call between two real softphones (baresip),
driven over baresip's ctrl_tcp, and calls both ways between baresip and linphonec over TLS
and over TCP.
"""

import json
import os
import random
import re
import shutil
import socket
import subprocess
import threading
import time

from checks import captured, cdr_is
from harness import (DOMAIN, HOST, SipClient, TestFailure, Skip, check, digest_response,
                     free_port, log, parse_challenge, test, with_tls)
from sipbxtest.phone import Phone


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

def free_port_pair():
    """A port free for UDP and TCP whose next one is free for TCP too: baresip listens for
    TLS one above its sip_listen port."""
    for _ in range(50):
        port = free_port()
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            t.bind((HOST, port + 1))
            return port
        except OSError:
            continue
        finally:
            t.close()
    raise TestFailure("no two free loopback ports in a row")


class Baresip:
    """One headless baresip for user, with its own config directory: SIP on a free loopback
    port, no sound card (a 440 Hz sine as microphone, a WAV file as speaker), driven by JSON
    commands over its ctrl_tcp socket, which also reports every call event. Registers over
    UDP, or over transport "tcp" or "tls" to server_port; cafile: sipbx's certificate as its
    CA (baresip 1.0 loads it but verifies no server certificate: later ones do with
    sip_verify_server). contacts: lines of its address book; with them it loads the contact
    and presence modules (a contact with ;presence=p2p is subscribed to) and sends every
    request through sipbx as its outbound proxy, as a phone set up for a PBX does (its
    contacts' addresses name the domain, not sipbx's port). apps: more application modules
    to load ("mwi.so": message waiting, printed as "----- MWI for AOR -----" and the
    NOTIFY's body). register=False starts it without an account: add_account() then
    creates and registers it (uanew)."""

    def __init__(self, ctx, user, binary, transport="udp", server_port=None, cafile=None,
                 contacts=(), apps=(), register=True):
        self.user = user
        self.dir = os.path.join(ctx.tmp, "baresip-%s" % user)
        os.makedirs(self.dir)
        params = "" if transport == "udp" else ";transport=" + transport
        self.account = ("<sip:%s@%s:%d%s>;auth_pass=%s;regint=60;audio_codecs=PCMU%s"
                        % (user, DOMAIN, server_port or ctx.port, params, ctx.users[user],
                           ';outbound="sip:%s:%d%s;lr"' % (HOST, server_port or ctx.port, params)
                           if contacts else ""))
        with open(os.path.join(self.dir, "accounts"), "w") as f:
            f.write(self.account + "\n" if register else "")
        if contacts:
            with open(os.path.join(self.dir, "contacts"), "w") as f:
                f.write("".join(line + "\n" for line in contacts))
        self.logpath = os.path.join(self.dir, "baresip.log")
        self.sock, self.buf, self.events = None, b"", []
        # Its ports are drawn free, but a test running alongside may take one before baresip
        # binds it (baresip then runs on without it, and the control port answered would be
        # another's): started again on new ports when it says so.
        for _ in range(3):
            self.sip_port, self.ctrl_port = free_port_pair(), free_port()
            self._configure(cafile, contacts, apps)
            if self._start(binary):
                return
        raise TestFailure("baresip %s: its ports were taken three times:\n%s" % (user, self.log()))

    def _configure(self, cafile, contacts, apps):
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
            if cafile:
                f.write("sip_cafile %s\n" % cafile)
            if contacts:
                f.write("module contact.so\nmodule_app presence.so\n")
            f.write("".join("module_app %s\n" % app for app in apps))

    def _start(self, binary):
        """Starts baresip and connects to its control port; False when a port it was given
        was in use (it has been stopped again)."""
        with open(self.logpath, "wb") as out:
            # -t: a safety net, should the test die before it quits baresip
            self.proc = subprocess.Popen([binary, "-f", self.dir, "-t", "60"],
                                         stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, cwd=self.dir)
        deadline = time.monotonic() + 10
        while "baresip is ready" not in self.log() and "already in use" not in self.log():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise TestFailure("baresip %s did not start:\n%s" % (self.user, self.log()))
            time.sleep(0.05)
        if "Address already in use" in self.log():
            self.proc.kill()
            self.proc.wait()
            return False
        while self.sock is None:
            try:
                self.sock = socket.create_connection((HOST, self.ctrl_port), timeout=1)
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise TestFailure("baresip %s did not start:\n%s" % (self.user, self.log()))
                time.sleep(0.1)
        return True

    def log(self):
        return open(self.logpath, errors="replace").read()

    def add_account(self):
        """Creates its account now (started with register=False), which registers."""
        return self.command("uanew", self.account)

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

    def presence(self):
        """What its contact list (the contacts command) shows of each contact's presence:
        {address: status}, the status as baresip words it (Unknown, Online, Offline, Busy)."""
        text = re.sub(r"\x1b\[[0-9;]*m", "", self.command("contacts").get("data", ""))
        return {m.group(2): m.group(1)
                for m in re.finditer(r"^>?\s*(\w+) .*<(sip:[^>]+)>", text, re.M)}

    def wait_presence(self, uri, status, timeout=15.0):
        """Waits until its contact list shows uri with status."""
        deadline = time.monotonic() + timeout
        while True:
            shown = self.presence()
            if shown.get(uri) == status:
                return
            if time.monotonic() > deadline:
                raise TestFailure("baresip %s shows %s as %s, not %s:\n%s" % (
                    self.user, uri, shown.get(uri), status, self.log()))
            time.sleep(0.1)

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


# ---------------------------------------------------------------------------------------------
# baresip and linphonec calling each other over TLS (and TCP)

class Linphonec:
    """One headless linphonec (linphone-cli) for user: its own HOME and configuration file,
    SIP over one transport only, to the proxy proxy_host (sipbx's domain by default, so calls
    go through it too), sound from and to files (no sound card), driven by commands on its
    standard input; its standard output says what happens to calls. cafile: the only CA it
    trusts for TLS, sipbx's own certificate (pinned); check_name: it checks that the
    certificate names proxy_host as well, which Linphone's TLS library (mbedTLS 2) does for
    DNS names only, not for IP addresses."""

    def __init__(self, ctx, user, binary, transport, server_port, cafile=None, proxy_host=DOMAIN,
                 check_name=False, name=None):
        self.user = user
        self.dir = os.path.join(ctx.tmp, name or "linphonec-%s" % user)
        os.makedirs(os.path.join(self.dir, ".local", "share", "linphone"))  # its databases
        ports = {"udp": "0", "tcp": "0", "tls": "0"}
        ports[transport] = "-1"  # a port of its choosing
        self.rc = os.path.join(self.dir, "linphonerc")
        with open(self.rc, "w") as f:
            f.write("[sip]\nsip_port=%s\nsip_tcp_port=%s\nsip_tls_port=%s\ndefault_proxy=0\n"
                    "ipv6_enabled=0\n" % (ports["udp"], ports["tcp"], ports["tls"]))
            if cafile:
                f.write("root_ca=%s\nverify_server_certs=1\nverify_server_cn=%d\n"
                        % (cafile, 1 if check_name else 0))
            f.write("[rtp]\naudio_rtp_port=%d\n"
                    "[sound]\nechocancellation=0\n"
                    "[video]\nenabled=0\ncapture=0\ndisplay=0\n"
                    "[proxy_0]\nreg_proxy=<sip:%s:%d;transport=%s>\n"
                    "reg_identity=sip:%s@%s\nreg_expires=60\nreg_sendregister=1\n"
                    "[auth_info_0]\nusername=%s\npasswd=%s\ndomain=%s\n"
                    % (free_port(), proxy_host, server_port, transport, user, DOMAIN, user,
                       ctx.users[user], DOMAIN))
        self.logpath = os.path.join(self.dir, "linphonec.log")
        env = dict(os.environ, HOME=self.dir)
        env.pop("XDG_DATA_HOME", None)
        env.pop("XDG_CONFIG_HOME", None)
        self.proc = subprocess.Popen([binary, "-c", self.rc, "-d", "6", "-l", self.logpath],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, cwd=self.dir, env=env)
        self.lines, self.seen = [], 0
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.command("soundcard use files")
        self.wait_line(r"Using wav files instead of soundcard")

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.lines.append(None)  # end of output
            self.cond.notify_all()

    def command(self, text):
        self.proc.stdin.write((text + "\n").encode())
        self.proc.stdin.flush()

    def output(self):
        return "\n".join(line for line in self.lines if line is not None)

    def log(self):
        """The last part of its debug log (that is long), without the sound card search."""
        text = open(self.logpath, errors="replace").read() if os.path.exists(self.logpath) \
            else ""
        keep = [line for line in text.splitlines() if "alsa error" not in line]
        return "\n".join(keep[-60:])

    def wait_line(self, pattern, timeout=10.0):
        """Waits for a line of its output after those matched before; returns the match."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                while self.seen < len(self.lines):
                    line = self.lines[self.seen]
                    self.seen += 1
                    if line is None:
                        raise TestFailure("linphonec %s ended waiting for %r:\n%s\n%s" % (
                            self.user, pattern, self.output(), self.log()))
                    m = re.search(pattern, line)
                    if m:
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TestFailure("linphonec %s: no line %r:\n%s\n%s" % (
                        self.user, pattern, self.output(), self.log()))
                self.cond.wait(left)

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.command("quit")
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(timeout=2)


def live_call(ctx, caller, dialled, timeout=5.0):
    """The open call record (answered, not ended) of caller to dialled, once the writer has
    committed it; returns its Call-ID."""
    deadline = time.monotonic() + timeout
    while True:
        rows = ctx.db_exec("SELECT * FROM cdrs WHERE open = 1 AND caller = ? AND dialled = ?",
                           caller, dialled)
        if rows:
            check(len(rows) == 1 and rows[0]["answered_by"] == dialled and rows[0]["answer_us"],
                  "the live call: %s" % rows)
            return rows[0]["call_id"]
        check(time.monotonic() < deadline, "no live call of %s to %s: %s" % (
            caller, dialled, ctx.db_exec("SELECT * FROM cdrs")))
        time.sleep(0.1)


def clients_call_each_other(ctx, transport):
    """baresip 100 and linphonec 101 register over transport; 100 calls 101, 101 answers,
    the call is live in the records, and 101 hangs up; then 101 calls 100, 100 answers and
    hangs up. Every message of both calls went over transport, through sipbx's port for it.
    Returns the two Call-IDs."""
    baresip, linphonec = shutil.which("baresip"), shutil.which("linphonec")
    if not baresip or not os.path.isdir("/usr/lib/baresip/modules"):
        raise Skip("baresip (with its modules in /usr/lib/baresip/modules) is not installed")
    if not linphonec:
        raise Skip("linphonec (Debian's linphone-cli) is not installed")
    port = ctx.tls_port if transport == "tls" else ctx.port
    cafile = os.path.join(ctx.tmp, "tls", "cert.pem") if transport == "tls" else None
    b = lp = None
    try:
        b = Baresip(ctx, "100", baresip, transport, port, cafile)
        lp = Linphonec(ctx, "101", linphonec, transport, port, cafile)
        for user in ("100", "101"):
            rows = ctx.wait_list(user, "online", timeout=10)
            check(len(rows) == 1 and ("transport=%s" % transport) in rows[0][1],
                  "%s's binding is not over %s: %s" % (user, transport, rows))

        # 100 (baresip) calls 101 (linphonec), which answers and hangs up
        b.command("dial", "101")
        lp.wait_line(r"Receiving new incoming call from sip:100@.*assigned id (\d+)")
        b.wait_event("CALL_RINGING")
        lp.command("answer")
        lp.wait_line(r"Call \d+ with sip:100@\S+ connected")
        b.wait_event("CALL_ESTABLISHED")
        first = live_call(ctx, "100", "101")
        lp.wait_line(r"Media streams established with sip:100@")
        lp.command("terminate")
        b.wait_event("CALL_CLOSED")  # the callee's BYE reached the caller
        lp.wait_line(r"Call \d+ with sip:100@\S+ ended")
        cdr_is(ctx, first, disposition="ANSWERED", caller="100", answered_by="101",
               hangup_by="callee", status=200)

        # 101 (linphonec) calls 100 (baresip), which answers and hangs up
        lp.command("call 100")
        b.wait_event("CALL_INCOMING")
        lp.wait_line(r"Call \d+ to sip:100@\S+ ringing")
        b.command("accept")
        b.wait_event("CALL_ESTABLISHED")
        lp.wait_line(r"Call \d+ with sip:100@\S+ connected")
        second = live_call(ctx, "101", "100")
        b.command("hangup")
        b.wait_event("CALL_CLOSED")
        lp.wait_line(r"Call \d+ with sip:100@\S+ ended")  # the callee's BYE reached it
        cdr_is(ctx, second, disposition="ANSWERED", caller="101", answered_by="100",
               hangup_by="callee", status=200)
        check("Linphone" in ctx.cdr(second)["user_agent"],
              "caller's User-Agent: %r" % ctx.cdr(second)["user_agent"])
    except TestFailure:
        for p, name in ((b, "baresip"), (lp, "linphonec")):
            if p:
                log("--- %s:\n%s" % (name, p.log()))
        raise
    finally:
        for p in (b, lp):
            if p:
                p.stop()
    for call_id in (first, second):
        ends = {(r["transport"], r["local"]) for r in ctx.db_exec(
            "SELECT DISTINCT transport, local FROM trace_messages WHERE call_id = ?", call_id)}
        check(ends == {(transport, "%s:%d" % (HOST, port))},
              "the messages of %s went %s, not only over %s to port %d" % (
                  call_id, sorted(ends), transport, port))
    log("  baresip and linphonec called each other over %s" % transport.upper())
    return first, second


def pinned_certificate_checked(ctx, linphonec):
    """linphonec checks sipbx's certificate: given another CA it does not register; given
    sipbx's certificate and the proxy named localhost (one of the certificate's DNS names),
    it registers with the host name checked too."""
    other = os.path.join(ctx.tmp, "other")
    os.makedirs(other)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", os.path.join(other, "key.pem"),
                    "-out", os.path.join(other, "cert.pem")],
                   check=True, capture_output=True, timeout=30)
    ours = os.path.join(ctx.tmp, "tls", "cert.pem")
    for cafile, name in ((os.path.join(other, "cert.pem"), "another-ca"), (ours, "by-name")):
        lp = Linphonec(ctx, "101", linphonec, "tls", ctx.tls_port, cafile,
                       proxy_host="localhost", check_name=True, name="linphonec-" + name)
        try:
            if cafile == ours:
                rows = ctx.wait_list("101", "online", timeout=10)
                check("transport=tls" in rows[0][1], "101's binding: %s" % rows)
            else:
                deadline = time.monotonic() + 10
                while "Certificate verification failed" not in lp.log():
                    check(time.monotonic() < deadline, "linphonec with another CA: no failed "
                          "verification in its log:\n%s" % lp.log())
                    time.sleep(0.1)
                check(ctx.user_list()["101"][0][0] == "offline",
                      "linphonec registered with another CA: %s" % ctx.user_list()["101"])
        finally:
            lp.stop()
    ctx.wait_list("101", "offline", timeout=5)  # it unregistered when it quit


@test("tls_clients")
def t_tls_clients(ctx):
    """Two real softphones over TLS: baresip (100) and linphonec (101), each with sipbx's
    self-signed certificate as its CA, register over TLS and call each other, each call
    answered, live in the records, and ended with a BYE from the callee (to baresip too,
    whose Contact names neither its extension nor its connection). linphonec checks the
    certificate (pinned_certificate_checked); for the calls it reaches sipbx at its domain,
    an IP address here, so without the host name check."""
    with_tls(ctx)
    linphonec = shutil.which("linphonec")
    if linphonec:
        pinned_certificate_checked(ctx, linphonec)
    clients_call_each_other(ctx, "tls")


@test("tcp_clients")
def t_tcp_clients(ctx):
    """baresip (100) and linphonec (101) register over TCP and call each other, as over TLS."""
    clients_call_each_other(ctx, "tcp")


# ---------------------------------------------------------------------------------------------
# presence in real softphones: linphonec's friend list and baresip's presence module

def need_clients():
    """The paths of baresip and linphonec; skips the test (77) when either is missing."""
    baresip, linphonec = shutil.which("baresip"), shutil.which("linphonec")
    if not baresip or not os.path.isfile("/usr/lib/baresip/modules/presence.so"):
        raise Skip("baresip (with its presence module in /usr/lib/baresip/modules) is not "
                   "installed")
    if not linphonec:
        raise Skip("linphonec (Debian's linphone-cli) is not installed")
    return baresip, linphonec


def subscribed(ctx, want, timeout=5.0):
    """Waits until the one subscription sipbx keeps is want: (package, watcher, presentity)
    (the writer thread commits in batches)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = [tuple(r.values()) for r in ctx.db_exec(
            "SELECT package, watcher, presentity FROM subscriptions")]
        if rows == [want]:
            return
        check(time.monotonic() < deadline, "stored subscriptions %s, want %s" % (rows, [want]))
        time.sleep(0.1)


@test("presence_linphonec")
def t_presence_linphonec(ctx):
    """linphonec (101) adds 100 to its friends (`friend add`), which subscribes to 100's
    presence through sipbx, and prints each NOTIFY as "Friend ... is STATUS": Offline while
    100 has no phone registered, Online once baresip registers as 100, On the phone while
    baresip is in a call with 102 (sipbx's own document: open with the RPID activity
    on-the-phone), Online after the call, Offline once baresip quits (unregisters). One line
    per change: sipbx notifies changes, not repeats. `friend list` shows the friend (its
    name and address; linphonec prints no presence there)."""
    baresip, linphonec = need_clients()
    ctx.add_users({"102": "secret102"})
    lp = b = None
    c = Phone(ctx.port, "102", "secret102")  # answers the call
    friend = r'^(?:linphonec> )?Friend "Alice" <sip:100@%s> is (.+)$' % re.escape(DOMAIN)
    try:
        lp = Linphonec(ctx, "101", linphonec, "udp", ctx.port)
        ctx.wait_list("101", "online", timeout=10)
        lp.command('friend add "Alice" sip:100@%s' % DOMAIN)
        shown = [lp.wait_line(friend, timeout=15).group(1)]
        check(shown[-1] == "Offline", "100 has no phone, linphonec shows %s" % shown)
        subscribed(ctx, ("presence", "101", "100"))
        lp.command("friend list")
        lp.wait_line(r"name: Alice$")
        lp.wait_line(r"address: sip:100@%s$" % re.escape(DOMAIN))

        check(c.register().status == 200, "102 registers")
        b = Baresip(ctx, "100", baresip)
        shown.append(lp.wait_line(friend, timeout=15).group(1))
        check(shown[-1] == "Online", "100 registered, linphonec shows %s" % shown)
        b.command("dial", "102")
        b.wait_event("CALL_ESTABLISHED")
        shown.append(lp.wait_line(friend, timeout=15).group(1))
        check(shown[-1] == "On the phone", "100 in a call, linphonec shows %s" % shown)
        b.command("hangup")
        b.wait_event("CALL_CLOSED")
        shown.append(lp.wait_line(friend, timeout=15).group(1))
        check(shown[-1] == "Online", "100's call ended, linphonec shows %s" % shown)
        b.stop()
        shown.append(lp.wait_line(friend, timeout=15).group(1))
        check(shown[-1] == "Offline", "100 unregistered, linphonec shows %s" % shown)
        log("  linphonec showed 100 as: %s" % " -> ".join(shown))
    except TestFailure:
        for p, name in ((b, "baresip"), (lp, "linphonec")):
            if p:
                log("--- %s:\n%s" % (name, p.log()))
        raise
    finally:
        for p in (b, lp):
            if p:
                p.stop()
        c.close()


@test("presence_baresip")
def t_presence_baresip(ctx):
    """baresip (100) with colleague 101 in its contacts (;presence=p2p: its presence module
    subscribes, through sipbx as its outbound proxy) shows 101 as Offline while 101 has no
    phone, Online once linphonec registers as 101, Busy while linphonec is in a call with
    102 (baresip reads the RPID activity on-the-phone in sipbx's document), Online after
    it, Offline once linphonec quits; its log says each change. Debian's baresip 1.0 has no
    busy-lamp (dialog package) module: this is the presence module's view of a busy
    colleague."""
    baresip, linphonec = need_clients()
    ctx.add_users({"102": "secret102"})
    bob = "sip:101@%s" % DOMAIN
    lp = b = None
    c = Phone(ctx.port, "102", "secret102")  # answers the call
    try:
        b = Baresip(ctx, "100", baresip, contacts=['"Bob" <%s>;presence=p2p' % bob])
        b.wait_presence(bob, "Offline")
        subscribed(ctx, ("presence", "100", "101"))

        check(c.register().status == 200, "102 registers")
        lp = Linphonec(ctx, "101", linphonec, "udp", ctx.port)
        b.wait_presence(bob, "Online")
        lp.command("call 102")
        lp.wait_line(r"Call \d+ with sip:102@\S+ connected")
        b.wait_presence(bob, "Busy")
        lp.command("terminate")
        lp.wait_line(r"Call \d+ with sip:102@\S+ ended")
        b.wait_presence(bob, "Online")
        lp.stop()
        ctx.wait_list("101", "offline", timeout=5)
        b.wait_presence(bob, "Offline")
        b.stop()  # its log is complete once it has ended
        changes = re.findall(r"<%s> changed status from (\w+) to (\w+)" % re.escape(bob),
                             re.sub(r"\x1b\[[0-9;]*m", "", b.log()))
        check(changes == [("Offline", "Online"), ("Online", "Busy"), ("Busy", "Online"),
                          ("Online", "Offline")], "baresip's log of 101's status: %s" % changes)
        log("  baresip showed 101 as: Offline -> %s" % " -> ".join(to for _, to in changes))
    except TestFailure:
        for p, name in ((b, "baresip"), (lp, "linphonec")):
            if p:
                log("--- %s:\n%s" % (name, p.log()))
        raise
    finally:
        for p in (b, lp):
            if p:
                p.stop()
        c.close()
