"""Shared pieces of the SIP security tests: a daemon whose loopback is not trusted (so
127.0.0.1 and 127.0.0.2 are two ordinary addresses), a raw UDP REGISTER client bound to a
chosen loopback address, and a password-guessing script that sends wrong digests as fast as
the answers come back, all on one nonce, the way svcrack and the 2,900-guesses-a-second
script of the hardening issue do.

Built on tests/api/apitest.py (Daemon, DaemonTest, parse_metrics) and the digest helpers of
tests/sip/run.py. Python standard library only.
"""

import os
import random
import re
import select
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "api"))
sys.path.insert(0, os.path.join(HERE, "..", "sip"))

import apitest  # noqa: E402
from apitest import Daemon, DaemonTest, parse_metrics  # noqa: E402,F401
from run import Response, authorization, parse_challenge  # noqa: E402,F401

ATTACKER = "127.0.0.2"
PHONE = "127.0.0.1"
# Loopback is trusted by default (like fail2ban's ignoreip); these tests make it ordinary.
UNTRUSTED = ("--sip-trusted-networks", "none")


def sip_daemon(*extra):
    """A daemon with loopback untrusted and the given extra flags."""
    return Daemon(list(UNTRUSTED) + list(extra))


class Restarted(Daemon):
    """A second daemon on the directory (database) and ports of an earlier, stopped one.
    A second start prints no admin password: its banner ends with the REST API line."""

    def __init__(self, before, extra_args=UNTRUSTED):
        super().__init__(list(extra_args), dir=before.dir, sip_port=before.sip_port,
                         http_port=before.http_port)

    def _read_banner(self):
        deadline, buf, fd = time.time() + 20, b"", self.proc.stdout.fileno()
        while time.time() < deadline and b"REST API: " not in buf:
            if self.proc.poll() is not None:
                break
            if select.select([fd], [], [], 0.2)[0]:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                buf += chunk
        if b"REST API: " not in buf:
            raise RuntimeError("sipbx did not start again: %r %s" % (buf, self.log()))


class Uac:
    """REGISTERs over UDP from a chosen local address, one request at a time."""

    def __init__(self, server_port, host=PHONE, port=0):
        self.server = ("127.0.0.1", server_port)
        self.host = host
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.port = self.sock.getsockname()[1]
        self.call_id = "%016x@%s" % (random.getrandbits(64), host)
        self.cseq = 0
        self.tag = "%08x" % random.getrandbits(32)

    def close(self):
        self.sock.close()

    def message(self, user, auth=None, expires=60):
        self.cseq += 1
        lines = [
            "REGISTER sip:127.0.0.1 SIP/2.0",
            "Via: SIP/2.0/UDP %s:%d;rport;branch=z9hG4bK%016x"
            % (self.host, self.port, random.getrandbits(64)),
            "Max-Forwards: 70",
            "From: <sip:%s@127.0.0.1>;tag=%s" % (user, self.tag),
            "To: <sip:%s@127.0.0.1>" % user,
            "Call-ID: " + self.call_id,
            "CSeq: %d REGISTER" % self.cseq,
            "Contact: <sip:%s@%s:%d>" % (user, self.host, self.port),
            "Expires: %d" % expires,
            "User-Agent: sipbx-security-test",
        ]
        if auth:
            lines.append("Authorization: " + auth)
        lines += ["Content-Length: 0", "", ""]
        return "\r\n".join(lines).encode()

    def send(self, user, auth=None, timeout=1.0, expires=60):
        """Sends one REGISTER; returns the final Response, or None when none came within
        timeout (no retransmission: a dropped request stays dropped)."""
        self.sock.sendto(self.message(user, auth, expires), self.server)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data, _ = self.sock.recvfrom(65535)
            except socket.timeout:
                return None
            r = Response(data.decode(errors="replace"))
            if r.status >= 200 and ("CSeq: %d " % self.cseq) in r.raw:
                return r

    def challenge(self, user, timeout=1.0):
        """A fresh challenge for user (parsed), or None when unanswered."""
        r = self.send(user, timeout=timeout)
        if r is None:
            return None
        assert r.status == 401, r.raw
        return parse_challenge(r.get("WWW-Authenticate"))

    def register(self, user, password, timeout=1.0):
        """Challenge, then credentials; returns the final status, or None when a request
        went unanswered."""
        chal = self.challenge(user, timeout)
        if chal is None:
            return None
        r = self.send(user, authorization(user, password, chal), timeout=timeout)
        return r.status if r else None


def guess_run(server_port, user, guesses, host=ATTACKER, timeout=0.3, follow=False):
    """Guesses passwords for user from host as fast as the answers come: one challenge,
    then one REGISTER per guess on that same nonce (follow: on the nonce of the latest
    challenge instead, like a careful client). Stops at the first guess that goes
    unanswered for timeout seconds. Returns (answers, seconds): answers is the list of
    (guess, status) that were answered, seconds the time from the first guess to the last
    answer."""
    uac = Uac(server_port, host)
    try:
        chal = uac.challenge(user)
        assert chal is not None, "the first REGISTER got no challenge"
        answers = []
        start = last = time.monotonic()
        for pw in guesses:
            r = uac.send(user, authorization(user, pw, chal), timeout=timeout)
            if r is None:
                break
            last = time.monotonic()
            answers.append((pw, r.status))
            if r.status == 200:
                break
            if follow and r.get("WWW-Authenticate"):
                chal = parse_challenge(r.get("WWW-Authenticate"))
        return answers, last - start
    finally:
        uac.close()


def metrics(d, token):
    r = d.request("GET", "/metrics", token=token)
    assert r.status == 200, r
    return parse_metrics(r.body.decode())


def log_lines(d, pattern):
    """Lines of the daemon's log that match the regular expression pattern."""
    return [line for line in d.log().splitlines() if re.search(pattern, line)]


def main():
    apitest.main()
