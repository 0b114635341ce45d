"""api_startup: the --http binding. The daemon prints where the API is, and refuses to
start on an HTTP port in use with one clear line on stderr and exit status 1."""

import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import unittest

import apitest
from apitest import Daemon, free_port


class Startup(unittest.TestCase):
    def test_banner(self):
        d = Daemon()
        try:
            line = "REST API: http://127.0.0.1:%d/api/v1 (log in as admin)" % d.http_port
            self.assertIn(line, d.stdout_lines)
            # The dashboard is served from web/ of this checkout (../web next to the binary).
            web = os.path.realpath(os.path.join(os.path.dirname(apitest.SIPBX), "..", "web"))
            if os.path.exists(os.path.join(web, "index.html")):
                self.assertIn("Dashboard: http://127.0.0.1:%d/ (files from %s)" % (d.http_port, web),
                              d.stdout_lines)
            # The first admin's password logs in.
            d.login()
        finally:
            d.stop()

    def test_port_in_use(self):
        busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        tmp = tempfile.mkdtemp(prefix="sipbx-api-")
        try:
            out = subprocess.run(
                [apitest.SIPBX, "serve", "--sip", "127.0.0.1:%d" % free_port(),
                 "--http", "127.0.0.1:%d" % port, "--domain", "127.0.0.1",
                 "--db", os.path.join(tmp, "db")],
                capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 1, out)
            lines = [l for l in out.stderr.splitlines() if " info: " not in l]
            self.assertEqual(lines,
                             ["sipbx: cannot listen for HTTP on 127.0.0.1:%d: port in use" % port])
            # The failed start made no admin whose password nobody saw.
            con = sqlite3.connect(os.path.join(tmp, "db"))
            self.assertEqual(con.execute("SELECT count(*) FROM admins").fetchone()[0], 0)
            con.close()
        finally:
            busy.close()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    apitest.main()
