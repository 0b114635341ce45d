"""Loopback ports: a free one for a daemon or a phone, whether one is bound, and whether a SIP
server answers on one. Every server a test starts listens on HOST; sipbx serves DOMAIN."""

import random
import socket

HOST = "127.0.0.1"
DOMAIN = "127.0.0.1"


def _ephemeral_low():
    """The lowest port the kernel hands out by itself (ip_local_port_range), or None."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def free_port(host=HOST):
    """A loopback port free for both UDP and TCP right now (sipbx listens on both for SIP; an
    HTTP port from here is as good). It is drawn at random below the kernel's ephemeral range
    when there is room: a port from that range could be handed meanwhile to any outgoing
    connection or unbound socket of a test running in parallel, between this probe and the
    bind of the daemon or phone it is for. Raises RuntimeError when 200 tries found none."""
    low = _ephemeral_low()
    for _ in range(200):
        want = random.randrange(10000, low) if low and low > 11000 else 0
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            u.bind((host, want))
            port = u.getsockname()[1]
            t.bind((host, port))
            return port
        except OSError:
            continue
        finally:
            u.close()
            t.close()
    raise RuntimeError("no free loopback port")


def udp_bound(port):
    """True when some socket on this host is bound to UDP port (read from /proc, so that
    probing never takes the port from the process that is about to bind it)."""
    for path in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(path) as f:
                for line in f.readlines()[1:]:
                    if int(line.split()[1].rsplit(":", 1)[1], 16) == port:
                        return True
        except OSError:
            continue
    return False


def tcp_listening(port):
    """True when some socket on this host listens on TCP port (read from /proc)."""
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                for line in f.readlines()[1:]:
                    fields = line.split()
                    if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        return True
        except OSError:
            continue
    return False


def sip_ping(port, timeout=0.3, host=HOST):
    """Sends one SIP OPTIONS over UDP to host:port; returns the status code of the answer
    (an int) or None when nothing answers within timeout seconds."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((host, 0))
        local = s.getsockname()[1]
        tag = "%012x" % random.getrandbits(48)
        msg = ("OPTIONS sip:%s:%d SIP/2.0\r\n"
               "Via: SIP/2.0/UDP %s:%d;branch=z9hG4bK-ping-%s\r\n"
               "From: <sip:ping@%s>;tag=%s\r\nTo: <sip:%s>\r\n"
               "Call-ID: ping-%s\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
               "Content-Length: 0\r\n\r\n" % (host, port, host, local, tag, DOMAIN, tag, DOMAIN,
                                              tag))
        s.sendto(msg.encode(), (host, port))
        s.settimeout(timeout)
        data, _ = s.recvfrom(65535)
        if data.startswith(b"SIP/2.0 ") and data[8:11].isdigit():
            return int(data[8:11])
        return None
    except OSError:
        return None
    finally:
        s.close()
