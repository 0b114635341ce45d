"""api_https: the dashboard and API over HTTPS (--https) with the certificate sipbx generates
or one configured (--tls-cert/--tls-key, --https-cert/--https-key).

curl (pinning the generated certificate with --cacert and --pinnedpubkey) and Python's ssl log
in and list users; TLS 1.0/1.1 and weak ciphers are refused (each refusal checked against a
local server that accepts the same client, so the client did offer what is refused); plain
HTTP redirects page loads and refuses the API with 403; the session cookie is Secure; HSTS on
HTTPS answers only; HTTP and HTTPS share the per-source connection limit, and a TLS handshake
counts into the request deadline; start-up errors (bad certificate path, key not matching,
garbage, port in use) are one line each; a restart keeps the generated certificate."""

import base64
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import sqlite3
import ssl
import subprocess
import tempfile
import threading
import time
import unittest
import warnings

import apitest
from apitest import Daemon, Response, free_port

PER_SOURCE = 32  # HTTP_PER_SOURCE_MAX
DEADLINE = 10  # HTTP_REQUEST_DEADLINE, seconds
CURL = shutil.which("curl")
OPENSSL = shutil.which("openssl")


class HttpsDaemon(Daemon):
    """A Daemon with HTTPS on a free loopback port as well."""

    def __init__(self, extra_args=(), dir=None, https_port=None, **kw):
        self.https_port = https_port or free_port()
        super().__init__(["--https", "127.0.0.1:%d" % self.https_port] + list(extra_args),
                         dir=dir, **kw)
        self.cert_file = os.path.join(self.dir, "tls", "cert.pem")
        m = re.search(r"certificate: SHA-256 fingerprint ([0-9A-F:]{95})", "\n".join(self.stdout_lines))
        self.fingerprint = m.group(1) if m else None

    def context(self, cafile=None):
        """A client context that trusts the given certificate (default: the generated one) and
        checks the host name, as a browser that trusts it would."""
        return ssl.create_default_context(cafile=cafile or self.cert_file)

    def srequest(self, method, path, body=None, token=None, headers=None, context=None):
        """One request over HTTPS on a fresh connection (body is JSON-encoded)."""
        h = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        if token:
            h["Authorization"] = "Bearer " + token
        conn = http.client.HTTPSConnection("127.0.0.1", self.https_port, timeout=30,
                                           context=context or self.context())
        try:
            conn.request(method, path, body=data, headers=h)
            resp = conn.getresponse()
            return Response(resp.status, resp.getheaders(), resp.read())
        finally:
            conn.close()

    def peer_fingerprint(self):
        """The SHA-256 fingerprint ("AB:CD:...") of the certificate the HTTPS port serves."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", self.https_port), timeout=10) as s:
            with ctx.wrap_socket(s) as t:
                der = t.getpeercert(binary_form=True)
        return colon_hex(hashlib.sha256(der).digest())


def colon_hex(b):
    return ":".join("%02X" % x for x in b)


def handshake(port, ctx, timeout=10):
    """A TLS handshake with ctx on port: (protocol, cipher) or the ssl.SSLError/OSError."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
                return t.version(), t.cipher()[0]
    except (ssl.SSLError, OSError) as e:
        return e


class PermissiveServer:
    """A local TLS server that accepts anything (TLS 1.0 up, every cipher, security level 0):
    the control that shows a client really offers what sipbx refuses."""

    def __init__(self, cert, key):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            self.ctx.minimum_version = ssl.TLSVersion.TLSv1
        self.ctx.set_ciphers("ALL:@SECLEVEL=0")
        self.ctx.load_cert_chain(cert, key)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                c.settimeout(5)
                self.ctx.wrap_socket(c, server_side=True).close()
            except (ssl.SSLError, OSError):
                c.close()

    def close(self):
        self.sock.close()


def legacy_client(max_version, ciphers="DEFAULT:@SECLEVEL=0"):
    """A client that offers TLS 1.0 up to max_version and the given ciphers (OpenSSL names);
    None when this OpenSSL has none of those ciphers."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # old versions on purpose
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = max_version
    try:
        ctx.set_ciphers(ciphers)
    except ssl.SSLError:
        return None
    return ctx


class Https(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = HttpsDaemon()
        cls.token = cls.d.create_token("tests")

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def test_banner(self):
        d = self.d
        self.assertRegex(d.fingerprint or "", r"^([0-9A-F]{2}:){31}[0-9A-F]{2}$", d.stdout_lines)
        self.assertIn("REST API: https://127.0.0.1:%d/api/v1 (log in as admin)" % d.https_port,
                      d.stdout_lines)
        self.assertTrue(any(l.startswith("Dashboard: https://127.0.0.1:%d/ " % d.https_port)
                            for l in d.stdout_lines), d.stdout_lines)
        self.assertTrue(any("self-signed, generated in %s" % d.cert_file in l
                            for l in d.stdout_lines), d.stdout_lines)
        # The fingerprint printed is the certificate's on disk and the one served.
        self.assertEqual(d.peer_fingerprint(), d.fingerprint)
        if OPENSSL:
            out = subprocess.run([OPENSSL, "x509", "-noout", "-fingerprint", "-sha256",
                                  "-in", d.cert_file], capture_output=True, text=True, check=True)
            self.assertEqual(out.stdout.strip().split("=", 1)[1], d.fingerprint)
        # Files: the key private, the directory private.
        self.assertEqual(os.stat(os.path.join(d.dir, "tls", "key.pem")).st_mode & 0o777, 0o600)
        self.assertEqual(os.stat(os.path.join(d.dir, "tls")).st_mode & 0o777, 0o700)

    def test_curl_login_and_list_users(self):
        if not CURL:
            self.skipTest("curl is not installed")
        d = self.d
        jar = os.path.join(d.dir, "cookies-curl.txt")
        url = "https://127.0.0.1:%d/api/v1" % d.https_port

        def curl(*args):
            return subprocess.run([CURL, "-sS", "--cacert", d.cert_file] + list(args),
                                  capture_output=True, text=True, timeout=30)

        # The user list needs something in it: made over HTTPS with the token (a handler
        # that waits: its connection is parked and resumed, over TLS).
        out = curl("-H", "Authorization: Bearer " + self.token, "-H",
                   "Content-Type: application/json", "-d",
                   json.dumps({"extension": "301", "password": "secret301"}),
                   "-w", "%{http_code}", "-o", "/dev/null", url + "/users")
        self.assertEqual(out.stdout, "201", out)
        # Log in (the session cookie goes into the jar), then list users with the cookie.
        out = curl("-c", jar, "-H", "Content-Type: application/json", "-d",
                   json.dumps({"username": "admin", "password": d.admin_password}),
                   url + "/session")
        self.assertEqual(out.returncode, 0, out)
        self.assertEqual(json.loads(out.stdout)["username"], "admin")
        out = curl("-b", jar, url + "/users")
        self.assertEqual(out.returncode, 0, out)
        self.assertIn("301", [u["extension"] for u in json.loads(out.stdout)["items"]])

        # Pinned by the public key's hash instead (what a phone or script can pin).
        if OPENSSL:
            spki = subprocess.run(
                "%s x509 -in '%s' -pubkey -noout | %s pkey -pubin -outform der | "
                "%s dgst -sha256 -binary" % (OPENSSL, d.cert_file, OPENSSL, OPENSSL),
                shell=True, capture_output=True, check=True).stdout
            pin = "sha256//" + base64.b64encode(spki).decode()
            out = subprocess.run([CURL, "-sS", "-k", "--pinnedpubkey", pin, "-b", jar,
                                  url + "/users"], capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 0, out)
            self.assertIn("301", out.stdout)
            wrong = "sha256//" + base64.b64encode(b"\0" * 32).decode()
            out = subprocess.run([CURL, "-sS", "-k", "--pinnedpubkey", wrong, url + "/health"],
                                 capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 90, out)  # CURLE_SSL_PINNEDPUBKEYNOTMATCH
        # Not trusted without the pin: it is self-signed.
        out = subprocess.run([CURL, "-sS", url + "/health"], capture_output=True, text=True,
                             timeout=30)
        self.assertEqual(out.returncode, 60, out)  # CURLE_PEER_FAILED_VERIFICATION

    def test_python_ssl_login_and_list_users(self):
        d = self.d
        r = d.srequest("POST", "/api/v1/session",
                       {"username": "admin", "password": d.admin_password})
        self.assertEqual(r.status, 200, r)
        cookie = r.header("Set-Cookie")
        # Secure, besides HttpOnly and SameSite=Strict, over HTTPS.
        self.assertEqual(sorted(p.strip() for p in cookie.split(";")[1:]),
                         ["HttpOnly", "Max-Age=43200", "Path=/", "SameSite=Strict", "Secure"])
        r = d.srequest("GET", "/api/v1/users", headers={"Cookie": cookie.split(";")[0]})
        self.assertEqual(r.status, 200, r)
        self.assertIsInstance(r.json["items"], list)
        # The host name is checked against the certificate's names: localhost is one of them.
        conn = http.client.HTTPSConnection("localhost", d.https_port, timeout=30,
                                           context=d.context())
        try:
            conn.request("GET", "/api/v1/health")
            self.assertEqual(conn.getresponse().status, 200)
        finally:
            conn.close()
        # Log-out clears the cookie, Secure too.
        csrf = json.loads(d.srequest("GET", "/api/v1/session",
                                     headers={"Cookie": cookie.split(";")[0]}).body)["csrf_token"]
        r = d.srequest("DELETE", "/api/v1/session",
                       headers={"Cookie": cookie.split(";")[0], "X-CSRF-Token": csrf})
        self.assertEqual(r.status, 204, r)
        self.assertIn("Secure", r.header("Set-Cookie"))
        self.assertIn("Max-Age=0", r.header("Set-Cookie"))

    def test_event_stream_over_https(self):
        """An event stream holds no thread: its connection is parked; over TLS too."""
        ctx = self.d.context()
        with socket.create_connection(("127.0.0.1", self.d.https_port), timeout=10) as s:
            with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
                t.sendall(("GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           "Authorization: Bearer %s\r\n\r\n" % self.token).encode())
                data = b""
                while b"retry: 3000" not in data:
                    chunk = t.recv(4096)
                    self.assertTrue(chunk, data)
                    data += chunk
                self.assertIn(b"text/event-stream", data)
                # a registration while it is parked comes through
                r = self.d.srequest("POST", "/api/v1/users",
                                    {"extension": "302", "password": "secret302"},
                                    token=self.token)
                self.assertEqual(r.status, 201, r)
                self.assertEqual(apitest.register(self.d, "302", "secret302"), 200)
                t.settimeout(5)
                while b"registration.changed" not in data:
                    chunk = t.recv(4096)
                    self.assertTrue(chunk, data)
                    data += chunk

    def test_tls_versions(self):
        d = self.d
        ctl = PermissiveServer(d.cert_file, os.path.join(d.dir, "tls", "key.pem"))
        self.addCleanup(ctl.close)
        for version in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
            ctx = legacy_client(version)
            got = handshake(ctl.port, ctx)
            self.assertIsInstance(got, tuple, "the control refused %s: %s" % (version, got))
            got = handshake(d.https_port, ctx)
            self.assertIsInstance(got, ssl.SSLError, "sipbx accepted %s: %s" % (version, got))
        # TLS 1.2 and 1.3 are served; a default client gets 1.3.
        got = handshake(d.https_port, legacy_client(ssl.TLSVersion.TLSv1_2, "DEFAULT"))
        self.assertEqual(got[0], "TLSv1.2", got)
        got = handshake(d.https_port, d.context())
        self.assertEqual(got[0], "TLSv1.3", got)

    def test_weak_ciphers(self):
        d = self.d
        ctl = PermissiveServer(d.cert_file, os.path.join(d.dir, "tls", "key.pem"))
        self.addCleanup(ctl.close)
        # static RSA key exchange (no forward secrecy), CBC modes, 3DES
        tried = 0
        for weak in ("AES128-SHA", "AES256-SHA256", "AES128-GCM-SHA256", "ECDHE-RSA-AES128-SHA",
                     "ECDHE-RSA-AES256-SHA384", "DES-CBC3-SHA"):
            ctx = legacy_client(ssl.TLSVersion.TLSv1_2, weak + ":@SECLEVEL=0")
            got = handshake(ctl.port, ctx) if ctx else None
            if not isinstance(got, tuple):
                continue  # this OpenSSL cannot offer it at all: nothing to show
            tried += 1
            self.assertEqual(got[1], weak)
            got = handshake(d.https_port, ctx)
            self.assertIsInstance(got, ssl.SSLError, "sipbx accepted %s: %s" % (weak, got))
        self.assertGreaterEqual(tried, 4, "too few weak ciphers could be offered to show anything")
        for good in ("ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384",
                     "ECDHE-RSA-CHACHA20-POLY1305"):
            got = handshake(d.https_port, legacy_client(ssl.TLSVersion.TLSv1_2, good))
            self.assertEqual(got, ("TLSv1.2", good))

    def test_plain_http(self):
        d = self.d
        # Page loads are redirected to the same URL over HTTPS.
        for method, path in (("GET", "/"), ("GET", "/accounts/101?tab=a%20b&x=1"),
                             ("HEAD", "/settings")):
            r = d.request(method, path)
            self.assertEqual(r.status, 301, r)
            self.assertEqual(r.header("Location"), "https://127.0.0.1:%d%s" % (d.https_port, path))
            self.assertIsNone(r.header("Strict-Transport-Security"))
            # not kept by browsers: turning HTTPS off later is not undone by a cached redirect
            self.assertEqual(r.header("Cache-Control"), "no-store")
        # The Host the browser used is kept (it may be a name the certificate carries).
        r = d.request("GET", "/records", headers={"Host": "localhost:%d" % d.http_port})
        self.assertEqual(r.header("Location"), "https://localhost:%d/records" % d.https_port)
        # A Host that is not a plain name gives the HTTPS address instead.
        r = d.request("GET", "/", headers={"Host": "a b<c>"})
        self.assertEqual(r.header("Location"), "https://127.0.0.1:%d/" % d.https_port)
        # The API (with credentials or not, any method) and /metrics: 403 naming the URL,
        # never a redirect that would have the client repeat its token in clear.
        url = "https://127.0.0.1:%d/api/v1" % d.https_port
        for method, path, kw in (("GET", "/api/v1/users", {"token": self.token}),
                                 ("POST", "/api/v1/session", {"body": {"username": "admin",
                                                                       "password": "x"}}),
                                 ("DELETE", "/api/v1/users/100", {"token": self.token}),
                                 ("GET", "/api/v1/events", {"token": self.token}),
                                 ("GET", "/metrics", {"token": self.token}),
                                 ("POST", "/", {"body": {}})):
            r = d.request(method, path, **kw)
            self.assertEqual(r.status, 403, (method, path, r))
            self.assertEqual(r.json["error"]["code"], "https_required")
            self.assertIn(url, r.json["error"]["message"])
            self.assertIsNone(r.header("Location"))
        # The health check stays on plain HTTP (load balancers, monitoring).
        r = d.request("GET", "/api/v1/health")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["status"], "ok")

    def test_hsts(self):
        d = self.d
        for path, kw in (("/api/v1/health", {}), ("/api/v1/users", {"token": self.token}),
                         ("/api/v1/users", {}), ("/", {}), ("/api/v1/nothing", {})):
            r = d.srequest("GET", path, **kw)
            self.assertEqual(r.header("Strict-Transport-Security"), "max-age=31536000",
                             (path, r))

    def test_settings(self):
        r = self.d.srequest("GET", "/api/v1/settings", token=self.token)
        self.assertEqual(r.status, 200, r)
        https = r.json["https"]
        cert = https.pop("certificate")
        self.assertEqual(https, {"enabled": True, "address": "127.0.0.1",
                                 "port": self.d.https_port, "hsts_max_age": 31536000})
        self.assertEqual(cert["fingerprint_sha256"], self.d.fingerprint)
        self.assertEqual(cert["subject"], "CN=127.0.0.1,O=sipbx")
        self.assertIn("IP:127.0.0.1", cert["names"])
        self.assertIn("DNS:localhost", cert["names"])
        self.assertTrue(cert["generated"])
        self.assertFalse(cert["expired"])
        self.assertEqual(cert["file"], self.d.cert_file)
        self.assertRegex(cert["not_after"], r"^20\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        year = int(cert["not_after"][:4])
        self.assertIn(year - time.gmtime().tm_year, (9, 10))
        # no SIP over TLS here
        self.assertEqual(r.json["sip"]["transports"], ["udp", "tcp"])
        self.assertIsNone(r.json["sip"]["tls_port"])
        self.assertIsNone(r.json["sip"]["certificate"])

    def test_url_nul_over_https(self):
        r = self.d.srequest("GET", "/api/v1/users/100%00x", token=self.token)
        self.assertEqual(r.status, 400, r)


class Limits(unittest.TestCase):
    """HTTP and HTTPS count one source's connections together, and a connection that does not
    complete its TLS handshake and request within the deadline is cut."""

    def setUp(self):
        self.d = HttpsDaemon()
        self.addCleanup(self.d.stop)

    def test_per_source_limit_is_shared(self):
        d = self.d
        token = d.create_token("metrics")
        socks = []
        try:
            for _ in range(PER_SOURCE):
                socks.append(socket.create_connection(("127.0.0.1", d.https_port), timeout=5))

            def plain_health():
                try:
                    return d.request("GET", "/api/v1/health").status
                except OSError as e:
                    return e
            def open_connections():
                # asked from another address (127.0.0.2 is a source of its own), over HTTPS
                conn = http.client.HTTPSConnection("127.0.0.1", d.https_port, timeout=10,
                                                   context=d.context(),
                                                   source_address=("127.0.0.2", 0))
                try:
                    conn.request("GET", "/metrics", headers={"Authorization": "Bearer " + token})
                    text = conn.getresponse().read().decode()
                finally:
                    conn.close()
                return int(re.search(r"^sipbx_http_connections (\d+)$", text, re.M).group(1))
            # Once the HTTPS daemon has accepted and counted the 32 (under load and the
            # sanitizers that took longer than the half second this test once slept; the
            # count includes the asking connection), a 33rd connection from the address,
            # on plain HTTP, is refused.
            deadline = time.time() + 8
            while (n := open_connections()) <= PER_SOURCE and time.time() < deadline:
                time.sleep(0.2)
            self.assertGreater(n, PER_SOURCE, "the HTTPS daemon did not count the connections")
            got = plain_health()
            self.assertNotEqual(got, 200, "a 33rd connection (on plain HTTP) was served")
        finally:
            for s in socks:
                s.close()
        deadline = time.time() + 5
        while plain_health() != 200:
            self.assertLess(time.time(), deadline, "plain HTTP not served once the TLS ones closed")
            time.sleep(0.1)

    def test_handshake_deadline(self):
        d = self.d
        s = socket.create_connection(("127.0.0.1", d.https_port), timeout=DEADLINE + 8)
        self.addCleanup(s.close)
        start = time.time()
        s.sendall(b"\x16\x03\x01")  # the first bytes of a ClientHello, and no more
        try:
            data = s.recv(100)
        except OSError:
            data = b""
        took = time.time() - start
        self.assertEqual(data, b"")
        # cut by the deadline (10 s from accept, swept every 250 ms), not libmicrohttpd's
        # idle timeout (15 s)
        self.assertGreater(took, DEADLINE - 1)
        self.assertLess(took, DEADLINE + 3)


class Certificates(unittest.TestCase):
    """Restarts, configured files and the start-up errors."""

    def tmpdir(self):
        t = tempfile.mkdtemp(prefix="sipbx-https-")
        self.addCleanup(shutil.rmtree, t, True)
        return t

    def generated_pair(self, domain="127.0.0.1"):
        """A certificate and key made by sipbx in a scratch data directory (so the test needs
        no openssl), as (cert path, key path) in a directory of their own."""
        d = HttpsDaemon()
        d.stop(keep=True)
        out = self.tmpdir()
        for name in ("cert.pem", "key.pem"):
            shutil.copy(os.path.join(d.dir, "tls", name), os.path.join(out, name))
        shutil.rmtree(d.dir, ignore_errors=True)
        return os.path.join(out, "cert.pem"), os.path.join(out, "key.pem")

    def start_fails(self, args, http_port=None, status=1):
        """Runs sipbx serve with args on a fresh database; returns its stderr lines (without
        info lines) after checking it failed with status (1; 2 for a bad flag) and created no
        admin."""
        tmp = self.tmpdir()
        db = os.path.join(tmp, "sipbx.db")
        out = subprocess.run(
            [apitest.SIPBX, "serve", "--sip", "127.0.0.1:%d" % free_port(), "--http",
             "127.0.0.1:%d" % (http_port or free_port()), "--domain", "127.0.0.1", "--db", db]
            + args, capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, status, out)
        if os.path.exists(db):
            con = sqlite3.connect(db)
            self.assertEqual(con.execute("SELECT count(*) FROM admins").fetchone()[0], 0)
            con.close()
        return [l for l in out.stderr.splitlines() if " info: " not in l]

    def test_restart_keeps_certificate(self):
        d = HttpsDaemon()
        fp = d.fingerprint
        self.assertEqual(d.peer_fingerprint(), fp)
        d.stop(keep=True)
        d2 = HttpsDaemon(dir=d.dir)
        try:
            self.assertEqual(d2.fingerprint, fp)
            self.assertEqual(d2.peer_fingerprint(), fp)
            # and still trusted by a client that pinned the file of the first start
            self.assertEqual(d2.srequest("GET", "/api/v1/health").status, 200)
        finally:
            d2.stop()

    def test_configured_certificate(self):
        cert, key = self.generated_pair()
        d = HttpsDaemon(["--tls-cert", cert, "--tls-key", key])
        try:
            with open(cert) as f:
                want = colon_hex(hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).digest())
            self.assertEqual(d.fingerprint, want)
            self.assertEqual(d.peer_fingerprint(), want)
            self.assertTrue(any("(from %s;" % cert in l for l in d.stdout_lines), d.stdout_lines)
            self.assertFalse(os.path.exists(d.cert_file), "a certificate was generated anyway")
            token = d.create_token()
            c = d.srequest("GET", "/api/v1/settings", token=token, context=d.context(cert)).json
            self.assertFalse(c["https"]["certificate"]["generated"])
            self.assertEqual(c["https"]["certificate"]["file"], cert)
        finally:
            d.stop()

    def test_own_https_certificate_and_sip_tls_settings(self):
        """https_cert gives HTTPS a certificate of its own; SIP over TLS keeps the tls one."""
        sip_cert, sip_key = self.generated_pair()
        web_cert, web_key = self.generated_pair()
        tls_port = free_port()
        d = HttpsDaemon(["--tls-cert", sip_cert, "--tls-key", sip_key, "--https-cert", web_cert,
                         "--https-key", web_key, "--sip-tls", "127.0.0.1:%d" % tls_port])
        try:
            fp = {}
            for name, path in (("sip", sip_cert), ("web", web_cert)):
                with open(path) as f:
                    fp[name] = colon_hex(hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).digest())
            self.assertEqual(d.peer_fingerprint(), fp["web"])
            token = d.create_token()
            s = d.srequest("GET", "/api/v1/settings", token=token, context=d.context(web_cert)).json
            self.assertEqual(s["https"]["certificate"]["fingerprint_sha256"], fp["web"])
            self.assertEqual(s["sip"]["certificate"]["fingerprint_sha256"], fp["sip"])
            self.assertEqual(s["sip"]["transports"], ["udp", "tcp", "tls"])
            self.assertEqual(s["sip"]["tls_port"], tls_port)
            self.assertEqual(s["sip"]["tls_address"], "127.0.0.1")
            # Sofia-SIP's directory: the key and the SIP certificate, private
            sofia = os.path.join(d.dir, "tls", "sip")
            self.assertEqual(os.stat(sofia).st_mode & 0o777, 0o700)
            agent = os.path.join(sofia, "agent.pem")
            self.assertEqual(os.stat(agent).st_mode & 0o777, 0o600)
            with open(agent) as f:
                text = f.read()
            self.assertIn("-----BEGIN PRIVATE KEY-----", text)
            self.assertEqual(colon_hex(hashlib.sha256(ssl.PEM_cert_to_DER_cert(
                text[text.index("-----BEGIN CERTIFICATE-----"):])).digest()), fp["sip"])
        finally:
            d.stop()

    def test_startup_errors(self):
        cert, key = self.generated_pair()
        other_cert, other_key = self.generated_pair()
        tmp = self.tmpdir()
        garbage = os.path.join(tmp, "garbage.pem")
        with open(garbage, "w") as f:
            f.write("not a certificate\n")
        missing = os.path.join(tmp, "missing.pem")
        https = ["--https", "127.0.0.1:%d" % free_port()]

        self.assertEqual(self.start_fails(https + ["--tls-cert", missing, "--tls-key", key]),
                         ["sipbx: tls_cert %s: cannot read: No such file or directory" % missing])
        self.assertEqual(self.start_fails(https + ["--tls-cert", cert, "--tls-key", other_key]),
                         ["sipbx: tls_key %s does not match the certificate in tls_cert %s"
                          % (other_key, cert)])
        self.assertEqual(self.start_fails(https + ["--tls-cert", garbage, "--tls-key", key]),
                         ["sipbx: tls_cert %s: no PEM certificate in it "
                          "(expected -----BEGIN CERTIFICATE-----)" % garbage])
        self.assertEqual(self.start_fails(https + ["--https-cert", cert, "--https-key", garbage]),
                         ["sipbx: https_key %s: no PEM private key in it "
                          "(expected -----BEGIN PRIVATE KEY-----)" % garbage])
        self.assertEqual(self.start_fails(https + ["--tls-key", key], status=2),
                         ["sipbx: tls_key is set but tls_cert is not"])
        self.assertEqual(self.start_fails(["--https", "127.0.0.1:0"], status=2),
                         ["sipbx: --https: '127.0.0.1:0' is not ADDR:PORT "
                          "(a port from 1 to 65535) or off"])
        # A configured file is checked even when nothing uses it yet.
        self.assertEqual(self.start_fails(["--tls-cert", missing]),
                         ["sipbx: tls_cert %s: cannot read: No such file or directory" % missing])

        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        self.addCleanup(busy.close)
        port = busy.getsockname()[1]
        self.assertEqual(self.start_fails(["--https", "127.0.0.1:%d" % port]),
                         ["sipbx: cannot listen for HTTPS on 127.0.0.1:%d: port in use" % port])
        # HTTPS on the HTTP port: the second bind finds it taken
        same = free_port()
        self.assertEqual(self.start_fails(["--https", "127.0.0.1:%d" % same], http_port=same),
                         ["sipbx: cannot listen for HTTPS on 127.0.0.1:%d: port in use" % same])

    def test_https_off_by_flag(self):
        """--https off overrides a file that turns it on (as the Debian package's does)."""
        tmp = self.tmpdir()
        conf = os.path.join(tmp, "sipbx.conf")
        with open(conf, "w") as f:
            f.write("https = 127.0.0.1:%d\n" % free_port())
        d = Daemon(["--config", conf, "--https", "off"])
        try:
            self.assertTrue(any(l.startswith("REST API: http://") for l in d.stdout_lines))
            self.assertFalse(os.path.exists(os.path.join(d.dir, "tls")))
            self.assertEqual(d.request("GET", "/api/v1/users", token=d.create_token()).status, 200)
        finally:
            d.stop()


if __name__ == "__main__":
    apitest.main()
