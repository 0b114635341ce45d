"""The environment a sanitizer build of sipbx runs in under test, and spotting the reports it
writes to its standard error. One place for every runner (tests/sip, tests/api,
tests/records, tests/security), so an ASan, UBSan, LSan or TSan report fails each of them.

Suppression files are picked up from tests/ when they exist; none is needed today. Should
Sofia's own allocations ever make LeakSanitizer noisy, lsan.supp (libsofia-sip-ua frames
only); should ThreadSanitizer report what is shown to be a false positive (synchronisation
inside Sofia-SIP or libmicrohttpd that it cannot see), tsan.supp, with a comment per entry
saying why. Options already in the environment are kept and win over these defaults.
"""

import os

TESTS = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

# What only a sanitizer writes: the first line of a report or its summary. The daemon never
# prints a sanitizer's name itself.
MARKS = ("AddressSanitizer", "LeakSanitizer", "ThreadSanitizer", "UndefinedBehaviorSanitizer",
         "runtime error:")


def report(text):
    """The first sign of a sanitizer report in text (a daemon's or a CLI run's output), or
    None."""
    return next((m for m in MARKS if m in text), None)


def _options(defaults, given, supp=None):
    """defaults, then suppressions=tests/supp when that file exists, then what was given
    (the last word on an option wins)."""
    parts = [defaults] if defaults else []
    if supp and os.path.exists(os.path.join(TESTS, supp)):
        parts.append("suppressions=%s:print_suppressions=0" % os.path.join(TESTS, supp))
    if given:
        parts.append(given)
    return ":".join(parts)


def env(base=None):
    """The environment (a new dict, from base or ours) for a sipbx of any build: ASan aborts
    at the first error and looks for leaks, UBSan stops at the first error with a stack,
    TSan goes on after a report (so one run shows every race; the runner fails on the first)
    with both stacks of a lock-order problem."""
    e = dict(os.environ if base is None else base)
    e["ASAN_OPTIONS"] = _options("detect_leaks=1:abort_on_error=1", e.get("ASAN_OPTIONS"))
    lsan = _options("", e.get("LSAN_OPTIONS"), "lsan.supp")
    if lsan:
        e["LSAN_OPTIONS"] = lsan
    e["UBSAN_OPTIONS"] = _options("print_stacktrace=1:halt_on_error=1", e.get("UBSAN_OPTIONS"))
    e["TSAN_OPTIONS"] = _options("halt_on_error=0:second_deadlock_stack=1",
                                 e.get("TSAN_OPTIONS"), "tsan.supp")
    return e
