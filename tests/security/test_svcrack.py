#!/usr/bin/env python3
"""Attack: SIPVicious svcrack (Debian package sipvicious) against extension 100 with a
dictionary that holds the password at position 121. Before the ban it found the password
in under a second; now it must give up empty-handed: the daemon answers its first 10 guesses,
blocks the address and drops everything after, so svcrack stops for lack of answers.

Skipped (exit 77) when svcrack is not installed.

    python3 test_svcrack.py --sipbx PATH [--sipp PATH]
"""

import os
import shutil
import subprocess
import sys
import tempfile

import sectest  # first: it puts tests/api on the path
import apitest
from sectest import log_lines, metrics

PASSWORD = "Kx7-long-enough-pw"
POSITION = 120  # 0-based: the 121st word, well after the first 50


class Svcrack(sectest.DaemonTest):
    daemon_args = sectest.UNTRUSTED

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.create_user("100", PASSWORD)

    def test_svcrack_finds_nothing(self):
        words = ["pw%03d" % i for i in range(200)]
        words[POSITION] = PASSWORD
        work = tempfile.mkdtemp(prefix="sipbx-svcrack-")
        self.addCleanup(shutil.rmtree, work, True)
        dictionary = os.path.join(work, "dict.txt")
        with open(dictionary, "w") as f:
            f.write("\n".join(words) + "\n")
        # A port of its own: svcrack's default, 5060 (or the next free one), is where other
        # tests' phones may be, and their traffic would confuse it.
        out = subprocess.run(["svcrack", "-u", "100", "-d", dictionary, "-p",
                              str(self.d.sip_port), "-P", str(apitest.free_port()),
                              "-b", "127.0.0.1", "127.0.0.1"],
                             capture_output=True, text=True, timeout=180, cwd=work)
        text = out.stdout + out.stderr
        print("  svcrack: " + " / ".join(line.strip() for line in text.splitlines()
                                         if line.strip())[-300:])
        self.assertNotIn(PASSWORD, text, "svcrack found the password")
        self.assertIn("found nothing", text)
        m = metrics(self.d, self.token)
        self.assertEqual(m["sipbx_sip_auth_failures_total"], 10)
        self.assertEqual(m["sipbx_sip_blocked_sources"], 1)
        self.assertGreater(m["sipbx_sip_blocked_requests_total"], 0)
        r = self.api("GET", "/api/v1/security/blocks")
        self.assertEqual([b["source"] for b in r.json["items"]], ["127.0.0.1"])
        self.assertEqual(len(log_lines(self.d, r"blocking 127\.0\.0\.1 for 600 s")), 1)
        regs = self.api("GET", "/api/v1/registrations").json["items"]
        self.assertEqual(regs, [])


if __name__ == "__main__":
    if not shutil.which("svcrack"):
        print("svcrack is not installed (Debian package sipvicious): skipped")
        sys.exit(77)
    sectest.main()
