#!/usr/bin/env python3
"""Runs one SIP protocol test (tests/sip/) against a private sipbx daemon.

    run.py --sipbx PATH [--sipp PATH] [--keep] TEST        run.py --list

The tests are the functions registered with @test in the test_*.py files beside this one, one
file per area: test_registrar.py, test_auth.py (digest authentication), test_robustness.py
(malformed input), test_proxy.py (call flows of the stateful proxy), test_forwarding.py (call
forwarding), test_clients.py (captured and real softphones). --list prints their names, one a
line: tests/sip/CMakeLists.txt registers each as the ctest test sip_<name>. The harness
(harness.py: the daemon, SIP messages, SIPp phones) and the checks the call flows share
(checks.py) are beside them.

For the named test: picks free loopback ports, makes a temporary directory and database, starts
`sipbx serve` on 127.0.0.1 (domain 127.0.0.1), adds users 100 and 101 with the CLI and waits
until the daemon knows them, runs the test's SIPp scenarios and raw-socket checks, then stops
the daemon with SIGTERM and requires exit status 0 and no sanitizer report. Exit status 0 on
success, 1 on failure, 77 when a tool the test needs is missing (ctest SKIP_RETURN_CODE).
Python standard library only.

In the call flows (flows.md) every phone is a SIPp process of its own: a phone registers with
one SIPp run (register.xml) and answers with a second one bound to the same port, in the
background, while the caller runs. Both legs are checked on SIPp's message logs (-trace_msg),
and the call's record in the database.

Everything the harness and the shared checks define stays importable from here (run.Ctx,
run.SipClient, run.free_port, ...), as when this file held them all.
"""

import argparse
import shutil
import sys
import time
import traceback
import unittest

from checks import *  # noqa: F401,F403  (run.X for the names this module used to define)
from harness import *  # noqa: F401,F403
from harness import TESTS, Ctx, load_tests, log

load_tests()  # run.TESTS is full on import, as it always was


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sipbx", help="the sipbx binary to test")
    ap.add_argument("--sipp", default=shutil.which("sipp"), help="the sipp binary")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--list", action="store_true", help="list the tests and exit")
    ap.add_argument("test", nargs="?")
    a = ap.parse_args()
    if a.list:
        print("\n".join(TESTS))
        return 0
    if not a.test or a.test not in TESTS or not a.sipbx:
        ap.error("need --sipbx and one of: %s" % ", ".join(TESTS))
    fn, serve_args = TESTS[a.test]
    started = time.monotonic()
    ctx = Ctx(a.sipbx, a.sipp, a.keep)
    failed = True
    try:
        ctx.start(*serve_args)
        ctx.add_users()
        fn(ctx)
        ctx.stop()
        failed = False
    except unittest.SkipTest as e:  # harness.Skip, or sipbxtest's when a tool is missing
        log("SKIP %s: %s" % (a.test, e))
        ctx.cleanup(False)
        return 77
    except AssertionError as e:  # harness.TestFailure, or sipbxtest's
        log("FAIL %s: %s" % (a.test, e))
    except Exception:
        traceback.print_exc()
        log("FAIL %s: the runner raised" % a.test)
    finally:
        if ctx.proc and failed:
            # still stop it properly, so its own report (if any) lands in the log
            try:
                ctx.stop()
            except AssertionError as e:
                log("also: %s" % e)
    ctx.cleanup(failed)
    if not failed:
        log("PASS %s (%.1f s)" % (a.test, time.monotonic() - started))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
