"""Processes under test: stopping a daemon the way an init system does (SIGTERM, a while to
exit, then SIGKILL), and reading the logs they leave."""

import signal
import subprocess


def stop(proc, timeout):
    """SIGTERM to proc, then up to timeout seconds for it to exit; SIGKILL after that.
    Returns (exit status, killed): killed is True when it had to be killed. A process that
    has already ended keeps its status."""
    if proc.poll() is not None:
        return proc.returncode, False
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout), False
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(), True


def read_text(path, tail=None):
    """The text of the file at path (its last tail characters when given), or "" when there
    is no such file."""
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except FileNotFoundError:
        return ""
    return text[-tail:] if tail else text
