#!/usr/bin/env python3
"""SIP over TCP must not be a way to exhaust the daemon (the hardening issue, part 4).

Connections from one address beyond tcp_per_source that have not sent an accepted request
are closed, newest first; a connection that sends nothing complete within 10 s, or no
accepted request within 32 s, is closed. Phones over TCP (even from the attacker's address)
keep their connections and get their calls.
"""

import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "api"))
import apitest  # noqa: E402
from sipbxtest.phone import Endpoint, Phone, rand, request  # noqa: E402

PER_SOURCE = 64  # the default of tcp_per_source
OPEN = 100


def is_closed(sock):
    """True when the server closed sock (EOF or reset), without blocking."""
    sock.setblocking(False)
    try:
        data = sock.recv(65536)
        return data == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.setblocking(True)


class TcpGuard(apitest.DaemonTest):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.create_user("100", "secret-100-pw")
        cls.create_user("101", "secret-101-pw")
        cls.create_user("102", "secret-102-pw")

    def metric(self, name):
        return apitest.parse_metrics(self.api("GET", "/metrics").body.decode()).get(name, 0)

    def connect(self, host):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((host, 0))
        s.connect(("127.0.0.1", self.d.sip_port))
        return s

    def test_idle_trickling_and_unauthenticated_connections(self):
        before = self.metric("sipbx_sip_connections_closed_total")
        # Phones first: one from elsewhere, one from the attacker's own address.
        phone = Phone(self.d.sip_port, "101", "secret-101-pw", transport="tcp")
        neighbour = Phone(self.d.sip_port, "102", "secret-102-pw", transport="tcp",
                          host="127.0.0.2")
        caller = Phone(self.d.sip_port, "100", "secret-100-pw", answer=False)
        idle = [self.connect("127.0.0.2") for _ in range(OPEN)]
        trickler = self.connect("127.0.0.3")
        chatty = Endpoint(self.d.sip_port, transport="tcp", host="127.0.0.4")
        try:
            self.assertEqual(phone.register().status, 200)
            self.assertEqual(neighbour.register().status, 200)
            # Within a sweep or two, the newest idle connections beyond the limit go.
            self.wait_for(lambda: sum(map(is_closed, idle)) >= OPEN - PER_SOURCE, 4,
                          "too many connections from one address stay open")
            self.assertFalse(is_closed(idle[0]), "the oldest connections went first")
            start = time.monotonic()
            trickle = b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.3"
            i = 0
            # 10 s without a complete message: every idle connection and the trickler go,
            # although the trickler sends a byte a second.
            while time.monotonic() - start < 14 and not (
                    all(map(is_closed, idle)) and is_closed(trickler)):
                if i < len(trickle):
                    try:
                        trickler.send(trickle[i:i + 1])
                    except OSError:
                        pass
                    i += 1
                # Complete but unauthenticated requests every second keep a connection only
                # until 32 s.
                text, _ = request(chatty, "OPTIONS", "sip:101@127.0.0.1", "sip:x@127.0.0.4",
                                  "sip:101@127.0.0.1", rand(), 1, rand(8))
                chatty.send(text)
                time.sleep(1)
            self.assertTrue(all(map(is_closed, idle)), "idle connections stay open")
            self.assertTrue(is_closed(trickler), "a trickling connection stays open")
            self.assertLess(time.monotonic() - start, 14)
            self.assertFalse(chatty.closed)
            try:
                while time.monotonic() - start < 40:
                    text, _ = request(chatty, "OPTIONS", "sip:101@127.0.0.1",
                                      "sip:x@127.0.0.4", "sip:101@127.0.0.1", rand(), 1,
                                      rand(8))
                    chatty.send(text)
                    time.sleep(1)
                self.fail("a connection without an accepted request stays open for 40 s")
            except OSError:
                pass  # closed by sipbx (after 32 s)
            # The phones were never touched: a call reaches each over its own connection.
            for ext, ph in (("101", phone), ("102", neighbour)):
                r, dlg = caller.invite(ext)
                self.assertEqual(r.status, 200, "call to %s over TCP: %s" % (ext, r.first))
                self.assertEqual(caller.in_dialog(dlg, "BYE").status, 200)
            self.assertGreaterEqual(self.metric("sipbx_sip_connections_closed_total") - before,
                                    OPEN + 2)
            lines = [l for l in self.d.log().splitlines() if "closing tcp connection from" in l]
            self.assertLessEqual(len(lines), 4, "\n".join(lines))  # one per source
        finally:
            for s in idle + [trickler]:
                s.close()
            for e in (phone, neighbour, caller, chatty):
                e.close()


if __name__ == "__main__":
    apitest.main()
