#!/usr/bin/env python3
"""A bounded SIP fuzz run against the daemon of this build (the sanitizer build under
`make test`): a few thousand mutated messages over UDP and TCP from one address, built from
well-formed requests and responses of the shapes real phones send (MicroSIP, X-Lite,
baresip: ../../../shared/seeds). Between batches, and at the end, the daemon must answer
OPTIONS from another address; at the end it must stop cleanly on SIGTERM with no sanitizer
report (apitest.Daemon.stop checks the exit status and the log).

The mutations are seeded (FUZZ_SEED in the environment picks another run), so a failure
can be replayed.
"""

import os
import random
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "api"))
import apitest  # noqa: E402
from sipbxtest.phone import SDP, Endpoint, Phone, rand, request  # noqa: E402

MESSAGES = int(os.environ.get("FUZZ_MESSAGES", "4000"))
SEED = int(os.environ.get("FUZZ_SEED", "20261202"))


def corpus(port, rng):
    """Well-formed messages to start from (text with PORT for sipbx's port)."""
    def rand(n=16):
        return "%0*x" % (n, rng.getrandbits(4 * n))
    via = "Via: SIP/2.0/UDP 127.0.0.2:5099;rport;branch=z9hG4bK%s" % rand()
    common = [via, "Max-Forwards: 70", "From: \"Al\" <sip:100@127.0.0.1>;tag=%s" % rand(8),
              "Call-ID: %s@127.0.0.2" % rand(), "User-Agent: MicroSIP/3.19.24",
              "Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, MESSAGE, SUBSCRIBE, NOTIFY, "
              "REFER, UPDATE", "Supported: replaces, timer"]
    msgs = []
    msgs.append("\r\n".join(["REGISTER sip:127.0.0.1 SIP/2.0"] + common + [
        "To: <sip:100@127.0.0.1>", "CSeq: 1 REGISTER",
        "Contact: <sip:100@127.0.0.2:5099;ob>;+sip.instance=\"<urn:uuid:%s>\"" % rand(),
        "Expires: 300",
        'Authorization: Digest username="100", realm="127.0.0.1", nonce="%s", '
        'uri="sip:127.0.0.1", response="%s", algorithm=MD5, cnonce="abc", qop=auth, '
        'nc=00000001' % (rand(56), rand(32)), "Content-Length: 0", "", ""]))
    msgs.append("\r\n".join(["INVITE sip:101@127.0.0.1 SIP/2.0"] + common + [
        "To: <sip:101@127.0.0.1>", "CSeq: 2 INVITE", "Contact: <sip:100@127.0.0.2:5099>",
        "Session-Expires: 1800;refresher=uac", "Min-SE: 90",
        "Content-Type: application/sdp", "Content-Length: %d" % len(SDP), "", SDP]))
    msgs.append("\r\n".join(["BYE sip:101@127.0.0.1:5070 SIP/2.0"] + common + [
        "To: <sip:101@127.0.0.1>;tag=%s" % rand(8), "CSeq: 3 BYE",
        "Route: <sip:127.0.0.1:PORT;lr;sbx=%s>" % rand(24), "Content-Length: 0", "", ""]))
    msgs.append("\r\n".join(["CANCEL sip:101@127.0.0.1 SIP/2.0"] + common + [
        "To: <sip:101@127.0.0.1>", "CSeq: 2 CANCEL", "Content-Length: 0", "", ""]))
    msgs.append("\r\n".join(["SIP/2.0 200 OK", via.replace("127.0.0.2:5099", "127.0.0.1:PORT"),
                             "From: <sip:100@127.0.0.1>;tag=a", "To: <sip:101@127.0.0.1>;tag=b",
                             "Call-ID: x@y", "CSeq: 2 INVITE", "Contact: <sip:101@127.0.0.2>",
                             "Record-Route: <sip:127.0.0.1:PORT;lr>", "Content-Length: 0", "",
                             ""]))
    msgs.append("\r\n".join(["SUBSCRIBE sip:101@127.0.0.1 SIP/2.0"] + common + [
        "To: <sip:101@127.0.0.1>", "CSeq: 4 SUBSCRIBE", "Event: presence",
        "Accept: application/pidf+xml", "Expires: 600", "Content-Length: 0", "", ""]))
    msgs.append("\r\n".join(["MESSAGE sip:101@127.0.0.1 SIP/2.0"] + common + [
        "To: <sip:101@127.0.0.1>", "CSeq: 5 MESSAGE", "Content-Type: text/plain",
        "Content-Length: 5", "", "hello"]))
    return [m.replace("PORT", str(port)).encode() for m in msgs]


EXTREMES = [b"0", b"-1", b"4294967295", b"4294967296", b"99999999999999999999", b"",
            b"\x00", b"%s" % (b"9" * 400), b"<>", b"\xff\xfe", b";;;;", b"sip:", b"[::1",
            b'"unterminated', b"A" * 5000]


def mutate(rng, msg):
    data = bytearray(msg)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(9)
        if kind == 0 and data:  # flip bytes
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif kind == 1 and data:  # truncate
            del data[rng.randrange(len(data)):]
        elif kind == 2:  # insert random bytes
            pos = rng.randrange(len(data) + 1)
            data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
        elif kind == 3:  # duplicate a line many times
            lines = bytes(data).split(b"\r\n")
            i = rng.randrange(len(lines))
            lines[i:i + 1] = [lines[i]] * rng.randint(2, 200)
            data = bytearray(b"\r\n".join(lines))
        elif kind == 4:  # delete a line
            lines = bytes(data).split(b"\r\n")
            if len(lines) > 1:
                del lines[rng.randrange(len(lines))]
            data = bytearray(b"\r\n".join(lines))
        elif kind == 5:  # replace a header value by an extreme one
            lines = bytes(data).split(b"\r\n")
            i = rng.randrange(len(lines))
            if b":" in lines[i]:
                lines[i] = lines[i].split(b":", 1)[0] + b": " + rng.choice(EXTREMES)
            data = bytearray(b"\r\n".join(lines))
        elif kind == 6:  # line endings
            data = bytearray(bytes(data).replace(b"\r\n", rng.choice([b"\n", b"\r", b"\r\r\n"])))
        elif kind == 7:  # a token in the middle of the first line
            parts = bytes(data).split(b" ", 2)
            parts[rng.randrange(len(parts))] = rng.choice(EXTREMES)
            data = bytearray(b" ".join(parts))
        else:  # a parameter storm on a header
            lines = bytes(data).split(b"\r\n")
            i = rng.randrange(len(lines))
            lines[i] += b";p" * rng.randint(1, 2000)
            data = bytearray(b"\r\n".join(lines))
    return bytes(data[:65000])


class Fuzz(apitest.DaemonTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.create_user("100", "secret-100-pw")
        cls.create_user("101", "secret-101-pw")

    def options_answered(self, probe):
        text, branch = request(probe, "OPTIONS", "sip:127.0.0.1", "sip:probe@127.0.0.1",
                               "sip:127.0.0.1", rand(), 1, rand(8))
        for _ in range(3):
            probe.send(text)
            r = probe.response(branch, timeout=2)
            if r:
                return r.status == 200
        return False

    def test_mutated_messages(self):
        rng = random.Random(SEED)
        base = corpus(self.d.sip_port, rng)
        fuzzer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        fuzzer.bind(("127.0.0.2", 0))
        probe = Endpoint(self.d.sip_port)
        callee = Phone(self.d.sip_port, "101", "secret-101-pw")
        caller = Phone(self.d.sip_port, "100", "secret-100-pw", answer=False)
        tcp = None
        try:
            self.assertEqual(callee.register().status, 200)
            for i in range(MESSAGES):
                msg = mutate(rng, rng.choice(base))
                if i % 10 == 9:  # a tenth over TCP, a few per connection
                    if tcp is None or i % 50 == 49:
                        if tcp:
                            tcp.close()
                        tcp = socket.create_connection(("127.0.0.1", self.d.sip_port))
                    try:
                        tcp.sendall(msg)
                    except OSError:
                        tcp.close()
                        tcp = None
                else:
                    fuzzer.sendto(msg, ("127.0.0.1", self.d.sip_port))
                if i % 500 == 499:
                    self.assertTrue(self.options_answered(probe),
                                    "no answer to OPTIONS after %d messages (seed %d)"
                                    % (i + 1, SEED))
                    self.assertIsNone(self.d.proc.poll(), "the daemon died")
                elif i % 25 == 0:
                    time.sleep(0.01)  # a pace the UDP buffer holds
            self.assertTrue(self.options_answered(probe), "no answer to OPTIONS at the end")
            # And it still does its job: a call goes through.
            r, dlg = caller.invite("101")
            self.assertEqual(r.status, 200, r.first)
            self.assertEqual(caller.in_dialog(dlg, "BYE").status, 200)
        finally:
            if tcp:
                tcp.close()
            fuzzer.close()
            for e in (probe, callee, caller):
                e.close()


if __name__ == "__main__":
    apitest.main()
