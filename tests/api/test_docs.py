"""api_docs: every ```sh example of docs/api.md runs as written, in document order, against
a fresh daemon (with its address put in for 127.0.0.1:8080, and $TOKEN and $ADMIN_PASSWORD
set), and no request of it fails."""

import os
import re
import shutil
import stat
import subprocess
import tempfile
import unittest

import apitest
from apitest import Daemon

DOC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "api.md")


class Docs(unittest.TestCase):
    def test_examples_run(self):
        curl = shutil.which("curl")
        if not curl:
            self.skipTest("curl is not installed")
        with open(DOC) as f:
            blocks = re.findall(r"^```sh\n(.*?)^```", f.read(), re.M | re.S)
        self.assertGreater(len(blocks), 10)
        d = Daemon()
        tmp = tempfile.mkdtemp(prefix="sipbx-docs-")
        try:
            # A curl that fails on HTTP errors, in front of the real one.
            shim = os.path.join(tmp, "curl")
            with open(shim, "w") as f:
                f.write('#!/bin/sh\nexec %s --fail-with-body "$@"\n' % curl)
            os.chmod(shim, stat.S_IRWXU)
            script = "set -eu\n"
            for i, b in enumerate(blocks):
                b = b.replace("127.0.0.1:8080", "127.0.0.1:%d" % d.http_port)
                script += "echo '--- example %d'\n%s\necho\n" % (i + 1, b)
            env = dict(os.environ, PATH=tmp + os.pathsep + os.environ["PATH"],
                       TOKEN=d.create_token("ci"), ADMIN_PASSWORD=d.admin_password)
            out = subprocess.run(["bash", "-c", script], cwd=tmp, env=env,
                                 capture_output=True, text=True, timeout=60)
            self.assertEqual(out.returncode, 0,
                             "an example failed:\n" + out.stdout[-3000:] + out.stderr[-2000:])
            self.assertNotIn('"error"', out.stdout)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            d.stop()


if __name__ == "__main__":
    apitest.main()
