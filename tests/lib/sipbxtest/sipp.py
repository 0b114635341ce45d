"""One SIPp process: a scenario run from a local loopback port, with its logs (the messages,
-trace_msg; the call log, -trace_logs; the errors; its output) in a work directory."""

import os
import shutil
import subprocess
import time
import unittest

from sipbxtest.net import HOST, free_port, tcp_listening, udp_bound
from sipbxtest.process import read_text

SIPP = shutil.which("sipp")


class Sipp:
    """SIPp running scenario (a path) on HOST:port (a free one when None) against remote
    ("host:port"; none for a UAS that only answers), calls times (-m), each call ending within
    timeout (-timeout, a SIPp duration) or failing. keys are -key name value pairs, args more
    of the command line. The logs are workdir/NAME.* (NAME: name, else the scenario's name
    and the port). binary defaults to sipp on PATH; raises unittest.SkipTest without one."""

    def __init__(self, workdir, scenario, port=None, args=(), remote=None, keys=None, calls=1,
                 transport="u1", name=None, timeout="60s", binary=None):
        binary = binary or SIPP
        if not binary:
            raise unittest.SkipTest("sipp not found")
        self.scenario = os.path.basename(scenario)
        self.transport = transport
        self.port = port or free_port()
        self.stem = os.path.join(workdir, name or "%s-%d" % (
            os.path.splitext(self.scenario)[0], self.port))
        cmd = [binary, "-sf", scenario, "-i", HOST, "-p", str(self.port),
               "-t", transport, "-m", str(calls), "-nostdin", "-timeout", timeout,
               "-timeout_error", "-trace_msg", "-message_file", self.stem + ".msg",
               "-trace_err", "-error_file", self.stem + ".err",
               "-trace_logs", "-log_file", self.stem + ".log"]
        for k, v in (keys or {}).items():
            cmd += ["-key", k, v]
        cmd += list(args)
        if remote:
            cmd.append(remote)
        self.started = time.time()
        with open(self.stem + ".out", "wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                         cwd=workdir)

    def wait_bound(self, timeout=10):
        """Returns self once SIPp listens on its port (UDP, or TCP with -t t1: a UAS is
        ready for the INVITE); fails with its logs when it ended or is not there in time."""
        deadline = time.time() + timeout
        bound = tcp_listening if self.transport.startswith("t") else udp_bound
        while not bound(self.port):
            if self.proc.poll() is not None:
                self.wait()  # fails with the logs
                raise AssertionError("sipp %s ended before it listened" % self.scenario)
            if time.time() > deadline:
                self.kill()
                raise AssertionError("sipp %s does not listen on %d\n%s" % (
                    self.scenario, self.port, self.logs()))
            time.sleep(0.02)
        return self

    def wait(self, timeout=90, check=True):
        """Waits for SIPp to end (killing it after timeout seconds); with check it must have
        succeeded. Returns the exit status ("timeout" when killed)."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            rc = "timeout"
        if check and rc != 0:
            raise AssertionError("sipp %s on port %d: exit %s\n%s" % (
                self.scenario, self.port, rc, self.logs()))
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def logs(self, tail=4000):
        """Its output, errors and messages (the last tail characters of each)."""
        parts = []
        for ext in (".out", ".err", ".msg"):
            text = read_text(self.stem + ext, tail)
            if text:
                parts.append("--- %s%s:\n%s" % (os.path.basename(self.stem), ext, text))
        return "\n".join(parts)

    def log_lines(self):
        """The lines of its call log (-trace_logs)."""
        return read_text(self.stem + ".log").splitlines()
