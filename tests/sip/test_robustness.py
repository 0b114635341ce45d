"""SIP tests of malformed input: broken datagrams, broken credentials, broken Contacts and
oversized or cut TCP messages never crash the daemon nor get a 5xx of its own, store
nothing, and the daemon works normally afterwards.
"""

import random
import re
import socket

from harness import HOST, SipClient, authorization, check, log, parse_challenge, test


def malformed_udp_inputs(port):
    """Raw datagrams that are not valid requests (name, bytes)."""
    base = ("REGISTER sip:127.0.0.1 SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 127.0.0.1:{p};branch=z9hG4bK{b}\r\n"
            "From: <sip:100@127.0.0.1>;tag=1\r\nTo: <sip:100@127.0.0.1>\r\n"
            "Call-ID: malformed-{b}\r\nCSeq: 1 REGISTER\r\n"
            "Contact: <sip:100@127.0.0.1:{p}>\r\nMax-Forwards: 70\r\n")
    rnd = random.Random(3261)

    def req(drop=(), add="", replace=None):
        b = "%x" % rnd.getrandbits(40)
        s = base.format(p=port, b=b)
        for d in drop:
            s = re.sub(r"(?m)^%s:.*\r\n" % re.escape(d), "", s)
        if replace:
            s = re.sub(replace[0], replace[1], s)
        return (s + add + "Content-Length: 0\r\n\r\n").encode()

    garbage = bytes(rnd.getrandbits(8) for _ in range(1500))
    return [
        ("random bytes", garbage),
        ("empty datagram", b""),
        ("keep-alive CRLF", b"\r\n\r\n"),
        ("NUL bytes", b"REGISTER \x00\x00\x00 SIP/2.0\r\n\r\n"),
        ("request line only", b"REGISTER sip:127.0.0.1 SIP/2.0\r\n\r\n"),
        ("no Call-ID", req(drop=["Call-ID"])),
        ("no CSeq", req(drop=["CSeq"])),
        ("CSeq not a number", req(replace=(r"CSeq: 1 REGISTER", "CSeq: abc REGISTER"))),
        ("CSeq method mismatch", req(replace=(r"CSeq: 1 REGISTER", "CSeq: 1 INVITE"))),
        ("CSeq overflow", req(replace=(r"CSeq: 1 ", "CSeq: 99999999999999999999 "))),
        ("no Via", req(drop=["Via"])),
        ("broken Via", req(replace=(r"Via: [^\r]*", "Via: SIP/2.0/UDP"))),
        ("Via garbage", req(replace=(r"Via: [^\r]*", "Via: ;;;;@@@@"))),
        ("no From", req(drop=["From"])),
        ("no To", req(drop=["To"])),
        ("To without user", req(replace=(r"To: [^\r]*", "To: <sip:127.0.0.1>"))),
        ("To not a URI", req(replace=(r"To: [^\r]*", "To: <<<>>>"))),
        ("Contact garbage", req(replace=(r"Contact: [^\r]*", "Contact: <sip:@:;;;>>"))),
        ("Contact star without Expires 0", req(replace=(r"Contact: [^\r]*", "Contact: *"))),
        ("negative Expires", req(add="Expires: -5\r\n")),
        ("huge Expires", req(add="Expires: 99999999999999999999999\r\n")),
        ("Content-Length too large", req().replace(b"Content-Length: 0", b"Content-Length: 9000")),
        ("Content-Length negative", req().replace(b"Content-Length: 0", b"Content-Length: -1")),
        ("bad SIP version", req().replace(b"SIP/2.0\r\n", b"SIP/7.3\r\n", 1)),
        ("unknown method token", req().replace(b"REGISTER sip", b"R\x01G sip", 1)),
        ("a response to nobody", ("SIP/2.0 200 OK\r\n"
                                  "Via: SIP/2.0/UDP 127.0.0.1:5;branch=z9hG4bKx\r\n"
                                  "From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\n"
                                  "CSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n").encode()),
        ("60 KB header", req(add="X-Big: %s\r\n" % ("a" * 60000))),
        ("2000 headers", req(add="X-H: 1\r\n" * 2000)),
    ]


def malformed_auth_values(chal):
    """Authorization values that are not valid answers; each must get a 401 or 400."""
    n, good = chal["nonce"], authorization("100", "secret100", chal, nc=7)
    return [
        ("scheme only", "Digest"),
        ("Basic", "Basic MTAwOnNlY3JldDEwMA=="),
        ("username only", 'Digest username="100"'),
        ("unterminated quote", 'Digest username="100, realm="127.0.0.1", nonce="%s' % n),
        ("short nonce", good.replace(n, n[:20])),
        ("non-hex nonce", good.replace(n, "z" * 56)),
        ("forged nonce MAC", good.replace(n, n[:24] + "0" * 32)),
        ("nonce from the future", good.replace(n, "ffffffff" + n[8:])),
        ("nc not hex", good.replace("nc=00000007", "nc=zzzzzzzz")),
        ("nc zero", good.replace("nc=00000007", "nc=00000000")),
        ("nc too long", good.replace("nc=00000007", "nc=0000000000000007")),
        ("qop auth-int", good.replace("qop=auth", "qop=auth-int")),
        ("algorithm SHA-256", good.replace("algorithm=MD5", "algorithm=SHA-256")),
        ("foreign realm", good.replace('realm="127.0.0.1"', 'realm="example.com"')),
        ("response too short", re.sub(r'response="[0-9a-f]+"', 'response="abc"', good)),
        ("response too long", re.sub(r'response="[0-9a-f]+"', 'response="%s"' % ("a" * 4000),
                                     good)),
        ("huge username", good.replace('username="100"', 'username="%s"' % ("x" * 5000))),
        ("empty values", 'Digest username="", realm="", nonce="", uri="", response=""'),
        ("qop without cnonce", re.sub(r'cnonce="[^"]*", ', "", good)),
    ]


@test("malformed")
def t_malformed(ctx):
    """Broken input never crashes the daemon nor gets a 5xx; afterwards a normal REGISTER
    still succeeds (and the runner checks the exit status on SIGTERM)."""
    probe = SipClient(ctx.port)
    try:
        for name, data in malformed_udp_inputs(probe.port):
            probe.send_raw(data)
            answers = probe.drain(0.15, first=True)
            check(ctx.alive(), "the daemon died on: %s" % name)
            for a in answers:
                # 5xx only where RFC 3261 says so (501, 505, 513), never a failure of ours
                check(not a.startswith("SIP/2.0 5") or a[8:11] in ("501", "505", "513"),
                      "%s got a server error:\n%s" % (name, a))
            log("  %-32s -> %s" % (name, ", ".join(a.split("\r\n", 1)[0] for a in answers)
                                    or "(no answer)"))

        # credentials that are broken in every way: each is a fresh challenge or a 400
        r = probe.request("REGISTER", "100", expires=120)
        chal = parse_challenge(r.get("WWW-Authenticate"))
        for name, value in malformed_auth_values(chal):
            r = probe.request("REGISTER", "100", expires=120, auth=value)
            check(ctx.alive(), "the daemon died on Authorization: %s" % name)
            check(r.status in (400, 401), "Authorization %s: got\n%s" % (name, r))
            log("  Authorization %-24s -> %d" % (name, r.status))

        # well authenticated but broken Contacts: refused as a whole, nothing stored
        # (RFC 3261 10.3 step 8: all binding updates or none)
        overlong = "<sip:100@127.0.0.1:9;x=%s>" % ("y" * 2000)
        bad_contacts = [
            ("negative expires param", "<sip:100@127.0.0.1:9>;expires=-1"),
            ("star with another Contact", "*, <sip:100@127.0.0.1:9>"),
            ("star without Expires: 0", "*"),
            ("overlong Contact URI", overlong),
            ("a good one, then an overlong one", "<sip:100@127.0.0.1:9>, " + overlong),
            ("a good one, then expires=-1",
             "<sip:100@127.0.0.1:9>, <sip:100@127.0.0.1:8>;expires=-1"),
        ]
        for name, contact in bad_contacts:
            r, _ = probe.register("100", "secret100", contact=contact, expires=120)
            check(ctx.alive(), "the daemon died on Contact: %s" % name)
            check(r.status == 400, "Contact %s: want 400, got\n%s" % (name, r))
            log("  Contact %-30s -> %d" % (name, r.status))
        r, _ = probe.register("100", "secret100", contact=None)
        check(r.status == 200 and not r.contacts(), "refused Contacts were stored:\n%s" % r)

        # a malformed expires param is the default expiry (RFC 3261 20.10), not a removal
        r, _ = probe.register("100", "secret100", contact="<sip:100@127.0.0.1:7>;expires=abc")
        check(r.status == 200 and "<sip:100@127.0.0.1:7>;expires=3600" in r.contacts(),
              "expires=abc must register for the default 3600 s:\n%s" % r)
        r, _ = probe.register("100", "secret100", contact="*", expires=0)
        check(r.status == 200 and not r.contacts(), "Contact: * clean-up:\n%s" % r)
    finally:
        probe.close()

    # TCP: a 70 KB message (larger than the 64 KB limit), then a message cut in half
    s = socket.create_connection((HOST, ctx.port), timeout=5)
    try:
        big = ("REGISTER sip:127.0.0.1 SIP/2.0\r\n"
               "Via: SIP/2.0/TCP 127.0.0.1:%d;branch=z9hG4bKbig\r\n"
               "From: <sip:100@127.0.0.1>;tag=1\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: big\r\n"
               "CSeq: 1 REGISTER\r\nX-Padding: %s\r\nContent-Length: 0\r\n\r\n"
               % (s.getsockname()[1], "p" * (70 * 1024)))
        try:
            s.sendall(big.encode())
            s.settimeout(2)
            answer = s.recv(4096).decode(errors="replace")
        except (socket.timeout, ConnectionError):
            answer = ""
        log("  TCP 70 KB message               -> %s" % (answer.split("\r\n", 1)[0] or
                                                         "(connection closed, no answer)"))
        check(not answer.startswith("SIP/2.0 2"), "a 70 KB message must not be accepted")
    finally:
        s.close()
    check(ctx.alive(), "the daemon died on a 70 KB TCP message")
    s = socket.create_connection((HOST, ctx.port), timeout=5)
    s.sendall(b"REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;bra")
    s.close()
    check(ctx.alive(), "the daemon died on a truncated TCP message")

    # and the daemon still works, over UDP and TCP
    ctx.sipp("register.xml")
    tcp = SipClient(ctx.port, transport="tcp")
    try:
        r, _ = tcp.register("101", "secret101", expires=120)
        check(r.status == 200, "REGISTER over TCP after the abuse:\n%s" % r)
    finally:
        tcp.close()
