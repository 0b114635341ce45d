"""Helpers shared by the Python tests of sipbx (tests/sip, tests/api, tests/records,
tests/security) and the benchmark (tests/bench). Python standard library only.

    net         free loopback ports, whether a UDP port is bound, a SIP OPTIONS ping
    digest      the client side of SIP digest authentication (RFC 2617)
    sanitizers  the environment a sanitizer build runs in, and spotting its reports
    process     stopping a daemon
    sipp        one SIPp process and its logs

A script outside tests/lib makes it importable first:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
"""

from sipbxtest.net import HOST, DOMAIN, free_port, udp_bound, sip_ping  # noqa: F401
