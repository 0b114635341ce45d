"""security_sip_stall: a stalled SIP thread must not take the REST API down with it.
HTTP requests that need live state (calls, kicking a registration, the barrier after a
user change) ask the SIP thread and used to wait for it with no limit, so a SIP loop stuck
for whatever reason held every HTTP thread that asked. Now the question is withdrawn after
2 s and the answer is 503 (the change of a user is stored and reaches the SIP side when
it runs again).

The stall is real and needs no test hook in the daemon: the SIP thread (the main thread)
alone is stopped with ptrace (PTRACE_SEIZE + PTRACE_INTERRUPT stop one thread, unlike
SIGSTOP, which stops the process), while every other thread runs on. Skipped (77) where
ptrace is not permitted."""

import ctypes
import errno
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "api"))
import apitest  # noqa: E402
from apitest import DaemonTest, parse_metrics, register  # noqa: E402

SIP_TIMEOUT = 2.0  # SIP_EXECUTE_TIMEOUT_MS
PTRACE_DETACH, PTRACE_SEIZE, PTRACE_INTERRUPT = 17, 0x4206, 0x4207
WALL = 0x40000000
# the loop waits in epoll_wait / epoll_pwait / epoll_pwait2 (x86_64 numbers)
IDLE_SYSCALLS = {"232", "281", "441"}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
_libc.ptrace.restype = ctypes.c_long


def _ptrace(op, tid):
    if _libc.ptrace(op, tid, None, None) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "ptrace(%d, %d): %s" % (op, tid, os.strerror(e)))


class ThreadStall:
    """Stops one thread of a process (tid) until resume(); the others run on."""

    def __init__(self, tid):
        self.tid = tid
        self.stopped = False

    def stop(self):
        for _ in range(100):
            _ptrace(PTRACE_SEIZE, self.tid)
            _ptrace(PTRACE_INTERRUPT, self.tid)
            os.waitpid(self.tid, WALL)
            self.stopped = True
            # Stopped while idle in the loop's wait, it holds no lock another thread needs
            # (the Sofia port's, the allocator's): the stall is the SIP loop's alone.
            with open("/proc/%d/task/%d/syscall" % (self.tid, self.tid)) as f:
                if f.read().split()[0] in IDLE_SYSCALLS:
                    return
            self.resume()
            time.sleep(0.02)
        raise AssertionError("the SIP thread was never caught idle")

    def resume(self):
        if self.stopped:
            _ptrace(PTRACE_DETACH, self.tid)
            self.stopped = False


def ptrace_permitted():
    """True when this process may ptrace a child of its own."""
    pid = os.fork()
    if pid == 0:
        time.sleep(5)
        os._exit(0)
    try:
        _ptrace(PTRACE_SEIZE, pid)
        return True
    except OSError as e:
        if e.errno in (errno.EPERM, errno.EACCES, errno.ENOSYS):
            return False
        raise
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)


class SipStall(DaemonTest):
    def timed(self, method, path, body=None, **kw):
        t0 = time.time()
        r = self.api(method, path, body, **kw)
        return r, time.time() - t0

    def test_stalled_sip_thread(self):
        self.create_user("800", "secret800")
        self.assertEqual(register(self.d, "800", "secret800"), 200)
        stall = ThreadStall(self.d.proc.pid)  # the SIP thread is the main thread
        self.addCleanup(stall.resume)
        stall.stop()

        r, took = self.timed("GET", "/api/v1/calls")
        self.assertError(r, 503, "unavailable", "did not answer")
        self.assertEqual(r.header("Retry-After"), "5")
        self.assertGreater(took, SIP_TIMEOUT - 0.2)
        self.assertLess(took, SIP_TIMEOUT + 2)
        r, took = self.timed("DELETE", "/api/v1/registrations/800")
        self.assertError(r, 503, "unavailable", "did not answer")
        self.assertLess(took, SIP_TIMEOUT + 2)

        # Many of them at once: each gives up, and what needs no SIP answer is served
        # meanwhile.
        results = []

        def ask():
            results.append(self.timed("GET", "/api/v1/calls/1"))

        threads = [threading.Thread(target=ask) for _ in range(10)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        r, took = self.timed("GET", "/api/v1/health", token=None)
        self.assertEqual(r.status, 200, r)
        self.assertLess(took, 1.0)
        r, took = self.timed("GET", "/api/v1/users/800")
        self.assertEqual(r.status, 200, r)
        self.assertLess(took, 1.0)
        for t in threads:
            t.join(30)
        self.assertEqual(sorted(r.status for r, _ in results), [503] * 10, results)
        self.assertLess(max(took for _, took in results), 4 * SIP_TIMEOUT + 2)

        # A new user is stored and answered, though the SIP side cannot confirm it yet.
        r, took = self.timed("POST", "/api/v1/users", {"extension": "801", "password": "pw801"})
        self.assertEqual(r.status, 201, r)
        self.assertLess(took, 2 * SIP_TIMEOUT + 3)
        self.assertIn("did not confirm a user change", self.d.log())
        # /metrics answers without the live call count
        r, took = self.timed("GET", "/metrics")
        self.assertEqual(r.status, 200, r)
        self.assertNotIn("sipbx_calls_active", parse_metrics(r.body.decode()))

        stall.resume()
        # The SIP side is back: at once, and it skipped what was withdrawn.
        r, took = self.timed("GET", "/api/v1/calls")
        self.assertEqual(r.status, 200, r)
        self.assertLess(took, 1.0)
        self.assertEqual(register(self.d, "801", "pw801"), 200)  # the change arrived
        self.assertEqual(register(self.d, "800", "secret800"), 200)
        log = self.d.log()
        self.assertIn("the SIP side did not answer within 2000 ms", log)
        # logged now and then, not once per request
        self.assertLessEqual(log.count("the SIP side did not answer within"), 3, log)
        # tearDownClass: exit status 0 and no sanitizer report


if __name__ == "__main__":
    if not ptrace_permitted():
        print("skipped: ptrace is not permitted here")
        sys.exit(77)
    apitest.main()
