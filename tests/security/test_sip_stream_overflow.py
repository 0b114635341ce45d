#!/usr/bin/env python3
"""A remote crash through Sofia-SIP's stream parser (found by test_sip_fuzz.py).

On a TCP connection, the message after the first gets no size limit from Sofia 1.12.11
(msg_next() does not carry NTATAG_MAXSIZE over), and a Content-Length near 2^32 then wraps
its 32-bit size sum in msg_extract_payload(): one unauthenticated connection with two
requests made it write outside its buffer and crashed the daemon (SIGSEGV, or an abort for
2^31). sipbx now gives each next message the limit of the one before (sip/sofiafix.c): the
body is refused as too large, the connection closed, and the daemon goes on.
"""

import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "api"))
import apitest  # noqa: E402
from sipbxtest.phone import Endpoint, rand, request  # noqa: E402


def options(cl, body=b""):
    return (b"OPTIONS sip:101@127.0.0.1 SIP/2.0\r\n"
            b"Via: SIP/2.0/TCP 127.0.0.2:5099;branch=z9hG4bK%s\r\n"
            b"From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:101@127.0.0.1>\r\nCall-ID: %s@x\r\n"
            b"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: %s\r\n\r\n%s"
            % (rand().encode(), rand().encode(), cl, body))


class StreamOverflow(apitest.DaemonTest):
    def alive(self):
        probe = Endpoint(self.d.sip_port)
        try:
            text, branch = request(probe, "OPTIONS", "sip:127.0.0.1", "sip:p@127.0.0.1",
                                   "sip:127.0.0.1", rand(), 1, rand(8))
            probe.send(text)
            r = probe.response(branch, timeout=3)
            return self.d.proc.poll() is None and r is not None and r.status == 200
        finally:
            probe.close()

    def test_huge_content_length_after_a_first_message(self):
        for cl in (b"4294967295", b"4294967200", b"4294000000", b"2147483648", b"70000"):
            for follow in (0, 1, 3):  # what arrives after the huge header decides where
                s = socket.create_connection(("127.0.0.1", self.d.sip_port))
                try:
                    s.sendall(options(b"0") + options(cl))
                    time.sleep(0.1)
                    try:
                        s.sendall(options(b"5", b"hello") * follow + b"x" * (1 - min(follow, 1)))
                    except OSError:
                        pass  # closed by sipbx: what should happen
                    time.sleep(0.2)
                finally:
                    s.close()
                self.assertTrue(self.alive(), "the daemon died on Content-Length %s, %d more"
                                % (cl.decode(), follow))


if __name__ == "__main__":
    apitest.main()
