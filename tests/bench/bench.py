#!/usr/bin/env python3
"""Loopback benchmarks of sipbx (and, for comparison, Kamailio 5.6 doing the same work).

    bench.py register [options]   authenticated registrations per second
    bench.py call     [options]   authenticated, record-routed, accounted calls per second
    bench.py memory   [options]   sipbx RSS before/after registrations and a steady call run

These are measurements, not ctest tests: they take minutes, load the machine and print a table.
Everything runs on 127.0.0.1 with free ports, in a temporary directory that is removed at
the end (--keep keeps it); every process started here is stopped before exit.

Method (docs/performance.md): the server under test gets N users (digest HA1 in SQLite).
For each offered rate R a SIPp client runs R*D calls at R calls/s (D = --duration seconds):
  register: REGISTER, 401, REGISTER with credentials, 200                (sipp/register.xml)
  call:     INVITE, 407, ACK, INVITE with credentials, 100/180/200, ACK, pause, BYE, 200
            to a SIPp phone registered as the callee            (sipp/uac_call.xml, uas_call.xml)
A step is clean when every call succeeded, no request had to be retransmitted (every answer
came within SIPp's 500 ms UDP timer), at least 95% of the timed exchanges (register: first
REGISTER to 200; call: first INVITE to 200) took under 50 ms (answers are not queueing up),
and SIPp kept up with the offered rate. Rates go up (--rates, or doubling from --start)
until a step is not clean, then --refine bisection steps narrow the gap; the result is the
highest clean rate. After a call step the number of new call records (sipbx: cdrs rows;
Kamailio: acc rows of INVITEs) must be at least the calls SIPp completed and at most those
plus the ones it gave up on (the server may have seen those through); after registrations,
the persisted registrations must number N. Each step line also gives the server's CPU (all
threads or processes) per call, SIPp's CPU, what the rest of the machine used meanwhile,
the load average, and the datagrams the kernel dropped at the server's UDP socket.

Python standard library only; needs sipp (3.6) and, for --server kamailio, kamailio with
the SQLite modules (apt-get install kamailio kamailio-sqlite-modules).
"""

import argparse
import csv
import os
import re
import resource
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from sipbxtest import digest, process  # noqa: E402  (after the path is set)
from sipbxtest.net import DOMAIN, HOST, free_port, sip_ping, udp_bound  # noqa: E402

KAMAILIO_SCHEMA = "/usr/share/kamailio/db_sqlite"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg=""):
    print(msg, flush=True)


class BenchError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# machine and processes

def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def busiest(n=4, exclude=()):
    """The n processes using most CPU right now (ps' lifetime average), as 'name pct%'."""
    try:
        out = subprocess.run(["ps", "-eo", "pid=,pcpu=,comm=", "--sort=-pcpu"],
                             capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    rows = []
    for line in out.splitlines():
        parts = line.split(None, 2)
        if len(parts) < 3 or int(parts[0]) in exclude or parts[2] == "ps":
            continue
        rows.append("%s %s%%" % (parts[2], parts[1]))
        if len(rows) >= n:
            break
    return ", ".join(rows)


def machine_facts():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = "%.1f GiB" % (int(line.split()[1]) / 1048576)
    return "nproc %d, CPU %s, memory %s, kernel %s" % (os.cpu_count(), model, mem,
                                                       os.uname().release)


def children_of(pid):
    """pid and every descendant of it."""
    parent = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rfind(")") + 2:].split()
        parent[int(d)] = int(fields[1])
    out, todo = [pid], [pid]
    while todo:
        p = todo.pop()
        for c, pp in parent.items():
            if pp == p:
                out.append(c)
                todo.append(c)
    return out


def cpu_seconds(pids):
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rfind(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def pss_kib(pids):
    """Proportional set size of pids together (KiB): shared pages (Kamailio's shared memory)
    counted once across its processes, where summing RSS would count them in each."""
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/smaps_rollup" % p) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


class MemSampler:
    """Samples the memory of a server's processes every interval seconds in a thread:
    peak() is the highest PSS seen since the last reset()."""

    def __init__(self, server, interval=0.2):
        self.server, self.interval = server, interval
        self.hi = 0
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done.is_set():
            v = pss_kib(self.server.pids())
            with self.lock:
                self.hi = max(self.hi, v)
            self.done.wait(self.interval)

    def now(self):
        return pss_kib(self.server.pids())

    def peak(self):
        with self.lock:
            return max(self.hi, self.now())

    def reset(self):
        with self.lock:
            self.hi = self.now()

    def stop(self):
        self.done.set()
        self.thread.join()


def system_busy():
    """CPU seconds the whole machine has spent busy (all CPUs; /proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return (sum(v[:8]) - idle) / CLK_TCK


def udp_drops(port):
    """Datagrams the kernel dropped at the UDP socket bound to 127.0.0.1:port (its receive
    buffer was full), from ss -uam; None when unknown."""
    try:
        out = subprocess.run(["ss", "-uamnH", "sport = :%d" % port], capture_output=True,
                             text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    total = None
    for m in re.finditer(r"\bd(\d+)\)", out):
        total = (total or 0) + int(m.group(1))
    return total


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def stop_process(proc, name, timeout=20):
    """SIGTERM, then SIGKILL after timeout seconds; returns the exit status."""
    if proc is None:
        return 0
    rc, killed = process.stop(proc, timeout)
    if killed:
        log("  %s did not stop within %d s: killed it" % (name, timeout))
    return rc


def wait_ready(proc, port, name, logpath, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError("%s exited with status %s; see %s:\n%s" %
                             (name, proc.returncode, logpath, tail(logpath)))
        if sip_ping(port) is not None:
            return
        time.sleep(0.2)
    raise BenchError("%s does not answer on UDP port %d" % (name, port))


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def ha1(user, password):
    return digest.ha1(user, DOMAIN, password)


def db_count(path, sql):
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=30)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


# ---------------------------------------------------------------------------------------------
# servers under test

class Server:
    """What both servers under test share: a process of binary with its database and log in
    workdir, on a free loopback UDP port, started in a session of its own and stopped with
    SIGTERM. Subclasses give command() and _start() (which calls _spawn())."""

    kind = "server"  # the process name, and the stem of its database and log

    def __init__(self, binary, workdir):
        self.binary = binary
        self.dir = workdir
        self.db = os.path.join(workdir, self.kind + ".db")
        self.logpath = os.path.join(workdir, self.kind + ".log")
        self.port = free_port()
        self.proc = None

    def address(self):
        return "%s:%d" % (HOST, self.port)

    def start(self):
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _spawn(self):
        """Starts command() with its output in the log; returns once it answers OPTIONS."""
        self.logf = open(self.logpath, "ab")
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        wait_ready(self.proc, self.port, self.kind, self.logpath)

    def pids(self):
        return [self.proc.pid]

    def records_settle(self):
        # sipbx's writer commits within its batch window (50 ms); Kamailio's acc writes
        # synchronously, but the last BYE transactions may still be finishing
        time.sleep(1.0)

    def stop(self):
        rc = stop_process(self.proc, self.kind)
        if self.proc:
            self.logf.close()
        return rc


class Sipbx(Server):
    kind = "sipbx"

    def __init__(self, binary, workdir, trace):
        super().__init__(binary, workdir)
        self.trace = trace
        self.name = "sipbx (trace %s)" % ("on" if trace else "off")
        self.http = free_port()

    def command(self):
        return [self.binary, "serve", "--config", os.path.join(self.dir, "sipbx.conf"),
                "--db", self.db, "--domain", DOMAIN, "--sip", self.address(),
                "--http", "%s:%d" % (HOST, self.http)]

    def _start(self):
        with open(os.path.join(self.dir, "sipbx.conf"), "w") as f:
            f.write("trace = %s\n" % ("on" if self.trace else "off"))
        self._spawn()
        out = subprocess.run([self.binary, "token", "create", "bench", "--db", self.db],
                             capture_output=True, text=True, timeout=30)
        self.token = out.stdout.strip().splitlines()[0] if out.stdout.strip() else ""
        deadline = time.monotonic() + 10
        while True:  # the HTTP side too, so the whole daemon is up
            try:
                urllib.request.urlopen("http://%s:%d/api/v1/health" % (HOST, self.http),
                                       timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise BenchError("sipbx HTTP /api/v1/health does not answer")
                time.sleep(0.2)

    def add_users(self, users):
        now = int(time.time())
        con = sqlite3.connect(self.db, timeout=30)
        with con:
            con.executemany(
                "INSERT OR REPLACE INTO users (extension, display_name, ha1, realm, enabled,"
                " call_waiting, created_at, updated_at) VALUES (?, '', ?, ?, 1, 1, ?, ?)",
                [(u, ha1(u, p), DOMAIN, now, now) for u, p in users])
        con.close()
        time.sleep(1.5)  # the daemon reloads its user cache within ~0.5 s of a change

    def registrations(self):
        return db_count(self.db, "SELECT count(*) FROM registrations")

    def call_records(self):
        return db_count(self.db, "SELECT count(*) FROM cdrs")


class Kamailio(Server):
    kind = "kamailio"

    def __init__(self, binary, workdir, children, cfg, journal, db_mode=1):
        super().__init__(binary, workdir)
        self.children = children
        self.cfg = cfg
        self.journal = journal
        self.db_mode = db_mode
        self.name = "Kamailio (%d children, db_mode %d)" % (children, db_mode)

    def command(self):
        return [self.binary, "-f", self.cfg, "-DD", "-E", "-m", "256", "-M", "16",
                "-n", str(self.children), "-l", "udp:" + self.address(),
                "-Y", self.dir, "-P", os.path.join(self.dir, "kamailio.pid"),
                "-A", 'DBURL="sqlite://%s"' % self.db,
                "-A", 'JOURNAL="%s=%s;"' % (self.db, self.journal),
                "-A", "DBMODE=%d" % self.db_mode]

    def _start(self):
        con = sqlite3.connect(self.db)
        for table in ("standard", "auth_db", "usrloc", "acc"):
            with open(os.path.join(KAMAILIO_SCHEMA, "%s-create.sql" % table)) as f:
                con.executescript(f.read())
        con.commit()
        con.close()
        self._spawn()

    def add_users(self, users):
        con = sqlite3.connect(self.db, timeout=30)
        with con:
            con.executemany(
                "INSERT INTO subscriber (username, domain, password, ha1, ha1b)"
                " VALUES (?, ?, '', ?, '')", [(u, DOMAIN, ha1(u, p)) for u, p in users])
        con.close()

    def pids(self):
        return children_of(self.proc.pid)

    def registrations(self):
        if self.db_mode == 2:
            return -1  # written back by a timer: the table lags behind on purpose
        return db_count(self.db, "SELECT count(*) FROM location")

    def call_records(self):
        return db_count(self.db, "SELECT count(*) FROM acc WHERE method = 'INVITE'")

    def bye_records(self):
        return db_count(self.db, "SELECT count(*) FROM acc WHERE method = 'BYE'")


def make_server(args, workdir):
    if args.server == "sipbx":
        if not os.access(args.sipbx, os.X_OK):
            raise BenchError("no sipbx binary at %s (build it, or give --sipbx)" % args.sipbx)
        return Sipbx(args.sipbx, workdir, args.trace == "on")
    if not shutil.which(args.kamailio):
        raise BenchError("kamailio not found (apt-get install kamailio kamailio-sqlite-modules)")
    return Kamailio(shutil.which(args.kamailio), workdir, args.children, args.kamailio_cfg,
                    args.kamailio_journal, args.db_mode)


# ---------------------------------------------------------------------------------------------
# SIPp

def auth_kw(user, password):
    """The [authentication] keyword as an injection field (see sipp/register.xml)."""
    return "[authentication username=%s password=%s]" % (user, password)


def write_inf(path, rows):
    with open(path, "w") as f:
        f.write("SEQUENTIAL\n")
        for r in rows:
            f.write(";".join(r) + "\n")


def parse_stats(path):
    """The rows of a SIPp -trace_stat file, as dicts."""
    with open(path, newline="", errors="replace") as f:
        rows = list(csv.reader(f, delimiter=";"))
    if len(rows) < 2:
        raise BenchError("no SIPp statistics in %s" % path)
    head = rows[0]
    return [dict(zip(head, r)) for r in rows[1:] if len(r) >= len(head) - 1]


def hms_ms(value):
    """SIPp's 'HH:MM:SS:uuuuuu' response time as milliseconds (SIPp measures whole ms)."""
    parts = value.strip().split(":")
    if len(parts) != 4:
        return float("nan")
    h, m, sec, us = (int(p) for p in parts)
    return ((h * 60 + m) * 60 + sec) * 1000 + us / 1000.0


def epoch_s(value):
    """SIPp's 'YYYY-MM-DD\tHH:MM:SS.uuuuuu\tEPOCH.uuuuuu' date column as epoch seconds."""
    try:
        return float(value.split("\t")[-1])
    except ValueError:
        return float("nan")


def sipp_base(sipp, scenario, workdir, tag, remote=None, port=None):
    """The start of every SIPp command line: scenario (in sipp/) from local port (a free one
    when None) to remote ("host:port"; none for a UAS), errors logged in workdir under tag.
    Returns (command, port)."""
    port = port or free_port()
    cmd = [sipp] + ([remote] if remote else [])
    return cmd + ["-sf", os.path.join(HERE, "sipp", scenario), "-i", HOST, "-p", str(port),
                  "-nostdin", "-trace_err",
                  "-error_file", os.path.join(workdir, "%s_errors.log" % tag)], port


class Step:
    pass


def run_step(args, server, workdir, scenario, inf, rate, tag, extra=(), port=None, hold_s=0):
    """One SIPp client run of rate*duration calls at rate calls/s from the local port (a free
    one when None), each held hold_s seconds by the scenario (SIPp's overall timeout and
    ours allow for it). Returns a Step."""
    hold_s = int(hold_s + 0.999)
    total = max(1, int(round(rate * args.duration)))
    statf = os.path.join(workdir, "%s_stats.csv" % tag)
    cmd, _ = sipp_base(args.sipp, scenario, workdir, tag, remote=server.address(), port=port)
    cmd += ["-inf", inf, "-r", str(rate), "-rp", "1000", "-m", str(total),
            "-l", str(max(100, rate * 20)), "-recv_timeout", "10000",
            "-timeout", "%ds" % (args.duration + hold_s + 60), "-timeout_error",
            "-trace_stat", "-stf", statf, "-fd", "1", "-max_socket", "10000"]
    cmd += list(extra)
    st = Step()
    st.rate, st.total, st.tag = rate, total, tag
    st.load = loadavg()
    cpu_srv0, cpu_cli0, sys0 = cpu_seconds(server.pids()), children_cpu(), system_busy()
    drops0 = udp_drops(server.port)
    t0 = time.monotonic()
    out = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=args.duration + hold_s + 120)
    st.wall = time.monotonic() - t0
    st.cpu_server = cpu_seconds(server.pids()) - cpu_srv0
    st.cpu_sipp = children_cpu() - cpu_cli0
    # everything else the machine did meanwhile (other users' processes, the callee SIPp)
    st.cpu_other = max(0.0, system_busy() - sys0 - st.cpu_server - st.cpu_sipp)
    st.rc = out.returncode
    drops1 = udp_drops(server.port)
    st.drops = drops1 - drops0 if drops0 is not None and drops1 is not None else None
    st.cmd = cmd
    stats = parse_stats(statf)
    last = stats[-1]
    st.created = int(last.get("TotalCallCreated", 0))
    st.ok = int(last.get("SuccessfulCall(C)", 0))
    st.failed = int(last.get("FailedCall(C)", 0))
    st.retrans = int(last.get("Retransmissions(C)", 0))
    st.rt1 = hms_ms(last.get("ResponseTime1(C)", ""))
    st.rt2 = hms_ms(last.get("ResponseTime2(C)", "")) if "ResponseTime2(C)" in last else None
    # The rate SIPp achieved: calls created by the last once-a-second line before it had
    # created them all, over the time to that line (open loop: SIPp creates calls at the
    # offered rate whatever the answers, unless it runs out of CPU itself).
    start = epoch_s(stats[0].get("StartTime", ""))
    st.offered = float("nan")
    for row in stats:
        created, now = int(row.get("TotalCallCreated", 0)), epoch_s(row.get("CurrentTime", ""))
        if 0 < created < total and now - start >= 0.5:
            st.offered = created / (now - start)
    if st.offered != st.offered:  # finished before the first line: short runs
        st.offered = float(rate)
    st.slow = {}
    for key, val in last.items():  # ResponseTimeRepartition1_<N / _>=N columns
        if key.startswith("ResponseTimeRepartition1_") and val.strip().isdigit():
            st.slow[key.split("_", 1)[1]] = int(val)
    slow_total = sum(st.slow.values())
    st.within10 = (sum(st.slow.get(k, 0) for k in ("<1", "<5", "<10")) / slow_total
                   if slow_total else 1.0)
    st.within50 = (sum(st.slow.get(k, 0) for k in ("<1", "<5", "<10", "<50")) / slow_total
                   if slow_total else 1.0)
    st.clean = (st.rc == 0 and st.failed == 0 and st.ok == total and st.retrans == 0 and
                st.within50 >= 0.95 and st.offered >= 0.95 * rate - 1)
    if st.rc not in (0, 1):
        log("  sipp exit status %d: %s" % (st.rc, (out.stderr or out.stdout).strip()[-400:]))
    return st


def describe(st, unit):
    extra = ", %.1f%% within 10 ms, %.1f%% within 50 ms" % (100.0 * st.within10,
                                                          100.0 * st.within50)
    if st.rt2 is not None:
        extra += ", BYE %.1f ms" % st.rt2
    return ("  %5d %s/s offered (sipp achieved %.0f/s): %d ok, %d failed, %d retransmissions, "
            "mean %s %.1f ms%s; server socket drops %s; CPU: server %.0f%% (%.0f us per %s), sipp %.0f%%, "
            "rest of the machine %.0f%%; load %s"
            % (st.rate, unit, st.offered, st.ok, st.failed, st.retrans,
               "setup" if unit == "calls" else "REGISTER..200", st.rt1, extra,
               "?" if st.drops is None else st.drops,
               100 * st.cpu_server / st.wall, 1e6 * st.cpu_server / max(st.ok, 1),
               unit.rstrip("s"), 100 * st.cpu_sipp / st.wall, 100 * st.cpu_other / st.wall,
               st.load))


def ramp(args, run_one):
    """Steps up the rate until a step is not clean, then bisects --refine times.
    run_one(rate) -> Step. Returns (best clean Step or None, all steps)."""
    steps, best, bad = [], None, None
    rates = [int(r) for r in args.rates.split(",")] if args.rates else None
    rate = rates.pop(0) if rates else args.start
    while rate and rate <= args.max_rate:
        st = run_one(rate)
        steps.append(st)
        if st.clean:
            best = st
        else:
            bad = st
            break
        time.sleep(args.settle)
        if rates is not None:
            rate = rates.pop(0) if rates else None
        else:
            rate = rate * 2
    lo = best.rate if best else 0
    for _ in range(args.refine if bad else 0):
        mid = (lo + bad.rate) // 2
        if mid <= lo or bad.rate - lo <= max(10, lo // 20):
            break
        time.sleep(args.settle)
        st = run_one(mid)
        steps.append(st)
        if st.clean:
            best, lo = st, mid
        else:
            bad = st
    return best, steps


# ---------------------------------------------------------------------------------------------
# the benchmarks

def header(args, server, what):
    log("== %s: %s" % (what, server.name))
    log("   %s" % machine_facts())
    log("   date %s, load average before start %s" % (time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                                                       loadavg()))
    log("   busiest processes before start: %s" % busiest())
    log("   server: %s" % shlex.join(server.command()))


def bench_register(args, workdir):
    server = make_server(args, workdir)
    users = [(str(args.first_ext + i), "pw%d" % (args.first_ext + i)) for i in range(args.users)]
    inf = os.path.join(workdir, "register_users.csv")
    write_inf(inf, [(u, auth_kw(u, p), DOMAIN) for u, p in users])
    server.start()
    mem, best = MemSampler(server), None
    try:
        header(args, server, "registrations")
        server.add_users(users)
        log("   %d users; each step: -r R -m R*%d (wraps around the users, so later steps "
            "refresh existing bindings)" % (args.users, args.duration))
        n = [0]
        port = free_port()  # one port for every step: the same phones register again

        def one(rate):
            n[0] += 1
            st = run_step(args, server, workdir, "register.xml", inf, rate, "reg%d" % n[0],
                          port=port)
            log(describe(st, "regs") + ("" if st.clean else "  <- not clean"))
            return st

        best, steps = ramp(args, one)
        time.sleep(1.0)
        persisted = server.registrations()
        log("   persisted registrations after the run: %d (users %d)" % (persisted, args.users))
        summary(args, server, best, steps, "registrations/s")
        if best:
            log("   sipp command of the best step:\n     %s" % shlex.join(best.cmd))
        # every step starts again at the first user of the injection file
        ok = persisted == -1 or persisted == min(args.users, max(s.ok for s in steps))
        if not ok:
            log("   WARNING: persisted registrations differ from users registered")
    finally:
        peak = mem.peak()
        mem.stop()
        log("   MEM %s peak during the run: %s (PSS of all its processes)" % (server.name,
                                                                            mib(peak)))
        args.result = (best.rate if best else 0, peak)
        rc = server.stop()
        log("   %s stopped, exit status %s" % (server.name, rc))
    return 0 if best and ok else 1


def start_callee(args, server, workdir, callee, password):
    """Registers the callee from a fixed port, then starts the answering SIPp there."""
    inf = os.path.join(workdir, "callee.csv")
    write_inf(inf, [(callee, auth_kw(callee, password), DOMAIN)])
    cmd, port = sipp_base(args.sipp, "register.xml", workdir, "callee_reg",
                          remote=server.address())
    cmd += ["-inf", inf, "-m", "1", "-timeout", "15s", "-timeout_error"]
    out = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=30)
    if out.returncode != 0:
        raise BenchError("the callee's registration failed: %s" % out.stdout[-400:])
    cmd, _ = sipp_base(args.sipp, "uas_call.xml", workdir, "uas", port=port)
    cmd += ["-max_socket", "10000", "-trace_stat", "-stf", os.path.join(workdir, "uas_stats.csv"),
            "-fd", "5"]
    logf = open(os.path.join(workdir, "uas.log"), "wb")
    uas = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                           start_new_session=True)
    deadline = time.monotonic() + 10
    while not udp_bound(port):  # ready for the first INVITE once it listens
        if uas.poll() is not None:
            raise BenchError("the answering sipp exited: %s" % tail(os.path.join(workdir,
                                                                             "uas.log")))
        if time.monotonic() > deadline:
            stop_process(uas, "sipp uas", 5)
            raise BenchError("the answering sipp does not listen on %d" % port)
        time.sleep(0.02)
    uas.logf = logf
    uas.cmd = cmd
    return uas


def bench_call(args, workdir):
    server = make_server(args, workdir)
    caller, callee = str(args.first_ext), str(args.first_ext + 1)
    users = [(caller, "pw" + caller), (callee, "pw" + callee)]
    inf = os.path.join(workdir, "call_users.csv")
    write_inf(inf, [(caller, auth_kw(caller, "pw" + caller), callee, DOMAIN)])
    server.start()
    uas = None
    rc = 1
    mem, best = MemSampler(server), None
    try:
        header(args, server, "calls")
        server.add_users(users)
        uas = start_callee(args, server, workdir, callee, "pw" + callee)
        log("   callee: %s" % shlex.join(uas.cmd))
        log("   each step: -r R -m R*%d, %d ms between ACK and BYE" % (args.duration, args.hold))
        n = [0]
        lost = []

        def one(rate):
            n[0] += 1
            before = server.call_records()
            st = run_step(args, server, workdir, "uac_call.xml", inf, rate, "call%d" % n[0],
                          ["-d", str(args.hold)], hold_s=args.hold / 1000)
            server.records_settle()
            st.records = server.call_records() - before
            note = "" if st.clean else "  <- not clean"
            # Every completed call has its record; a call SIPp gave up on may have one too
            # (the server saw it through), so more records than completions only on failures.
            if st.records < st.ok or st.records > st.ok + st.failed:
                lost.append(st)
                note += "  <- %d call records for %d completed calls" % (st.records, st.ok)
            elif st.records != st.ok:
                note += "  (%d records: %d completed + %d of the failed calls)" % (
                    st.records, st.ok, st.records - st.ok)
            log(describe(st, "calls") + "; call records +%d" % st.records + note)
            return st

        best, steps = ramp(args, one)
        summary(args, server, best, steps, "calls/s")
        if best:
            log("   sipp command of the best step:\n     %s" % shlex.join(best.cmd))
        completed = sum(s.ok for s in steps)
        failed = sum(s.failed for s in steps)
        records = server.call_records()
        log("   call records in the database: %d; calls sipp completed: %d, failed: %d%s" %
            (records, completed, failed,
             "" if completed <= records <= completed + failed else "  <- MISMATCH"))
        if isinstance(server, Kamailio):
            log("   Kamailio acc rows of BYE: %d" % server.bye_records())
        rc = 0 if best and not lost and completed <= records <= completed + failed else 1
    finally:
        peak = mem.peak()
        mem.stop()
        log("   MEM %s peak during the run: %s (PSS of all its processes)" % (server.name,
                                                                            mib(peak)))
        args.result = (best.rate if best else 0, peak)
        if uas:
            stop_process(uas, "sipp uas", 10)
            uas.logf.close()
        st = server.stop()
        log("   %s stopped, exit status %s" % (server.name, st))
    return rc


def summary(args, server, best, steps, unit):
    log("   RESULT %s: highest clean rate %s %s (steps: %s)" % (
        server.name, best.rate if best else "none", unit,
        ", ".join("%d%s" % (s.rate, "" if s.clean else "x") for s in steps)))


def metric(server, name):
    """A value from sipbx's /metrics (with the token made at start), or '?'."""
    try:
        req = urllib.request.Request("http://%s:%d/metrics" % (HOST, server.http),
                                     headers={"Authorization": "Bearer %s" % server.token})
        body = urllib.request.urlopen(req, timeout=2).read().decode()
    except OSError:
        return "?"
    for line in body.splitlines():
        if line.startswith(name + " "):
            return line.split()[1]
    return "?"


def live_calls(server):
    return metric(server, "sipbx_calls_active")


def bench_memory(args, workdir):
    """sipbx RSS: at start, after N registrations, after refreshing them, and during and
    after steady call runs."""
    args.server = "sipbx"
    server = make_server(args, workdir)
    users = [(str(args.first_ext + i), "pw%d" % (args.first_ext + i)) for i in range(args.users)]
    caller, callee = str(args.first_ext + args.users), str(args.first_ext + args.users + 1)
    users += [(caller, "pw" + caller), (callee, "pw" + callee)]
    reg_inf = os.path.join(workdir, "register_users.csv")
    write_inf(reg_inf, [(u, auth_kw(u, p), DOMAIN) for u, p in users[:args.users]])
    call_inf = os.path.join(workdir, "call_users.csv")
    write_inf(call_inf, [(caller, auth_kw(caller, "pw" + caller), callee, DOMAIN)])
    server.start()
    uas = None
    pid = server.proc.pid
    try:
        header(args, server, "memory")
        log("   RSS after start: %d KiB" % rss_kib(pid))
        server.add_users(users)
        log("   RSS with %d users loaded: %d KiB" % (len(users), rss_kib(pid)))
        rate = args.reg_rate
        saved = args.duration
        args.duration = max(1, args.users // rate)
        port = free_port()
        st = run_step(args, server, workdir, "register.xml", reg_inf, rate, "memreg1",
                      port=port)
        log(describe(st, "regs"))
        time.sleep(1)
        log("   RSS after %d registrations: %d KiB (registrations persisted: %d)" %
            (st.ok, rss_kib(pid), server.registrations()))
        st = run_step(args, server, workdir, "register.xml", reg_inf, rate, "memreg2",
                      port=port)
        log(describe(st, "regs"))
        time.sleep(1)
        log("   RSS after refreshing the same %d registrations: %d KiB" % (st.ok, rss_kib(pid)))
        if args.idle:
            time.sleep(args.idle)
            log("   RSS %d s later: %d KiB (registrations: %s)" %
                (args.idle, rss_kib(pid), metric(server, "sipbx_registrations")))
            st = run_step(args, server, workdir, "register.xml", reg_inf, rate, "memreg3",
                          port=port)
            log(describe(st, "regs"))
            time.sleep(1)
            log("   RSS after refreshing them once more: %d KiB" % rss_kib(pid))
        args.duration = saved
        uas = start_callee(args, server, workdir, callee, "pw" + callee)
        for run in range(1, args.call_runs + 1):
            samples = []
            before = server.call_records()
            args.duration = args.call_seconds
            done = threading.Event()

            def sample():
                while not done.is_set():
                    samples.append(rss_kib(pid))
                    done.wait(5)
            th = threading.Thread(target=sample)
            th.start()
            try:
                st = run_step(args, server, workdir, "uac_call.xml", call_inf, args.call_rate,
                              "memcall%d" % run, ["-d", str(args.hold)],
                              hold_s=args.hold / 1000)
            finally:
                done.set()
                th.join()
            server.records_settle()
            log(describe(st, "calls") + "; call records +%d" % (server.call_records() - before))
            log("   RSS during call run %d (every 5 s, KiB): %s" %
                (run, " ".join(str(s) for s in samples)))
            time.sleep(3)  # the callee's 2 s linger; calls end
            log("   RSS after call run %d (%d calls at %d/s, %d ms each): %d KiB" %
                (run, st.ok, args.call_rate, args.hold, rss_kib(pid)))
            if args.idle:
                time.sleep(args.idle)  # transactions linger 64*T1 = 32 s after they end
                log("   RSS %d s after call run %d: %d KiB (live calls: %s)" %
                    (args.idle, run, rss_kib(pid), live_calls(server)))
    finally:
        if uas:
            stop_process(uas, "sipp uas", 10)
            uas.logf.close()
        rc = server.stop()
        log("   %s stopped, exit status %s" % (server.name, rc))
    return 0


def mib(kib):
    return "%.1f MiB" % (kib / 1024.0)


def bench_storm(args, workdir):
    """A re-registration storm and then calls held up: --users phones register at
    --reg-rate (all new bindings), rest, register all again (refreshes), rest; then
    --calls calls are set up at --call-rate and held --call-hold ms. Prints the server's
    memory (PSS of all its processes, sampled every 200 ms: peak and at rest) per phase.
    Works for both servers; run it for each in the same session (storm.sh does)."""
    server = make_server(args, workdir)
    users = [(str(args.first_ext + i), "pw%d" % (args.first_ext + i)) for i in range(args.users)]
    caller, callee = str(args.first_ext + args.users), str(args.first_ext + args.users + 1)
    reg_inf = os.path.join(workdir, "register_users.csv")
    write_inf(reg_inf, [(u, auth_kw(u, p), DOMAIN) for u, p in users])
    call_inf = os.path.join(workdir, "call_users.csv")
    write_inf(call_inf, [(caller, auth_kw(caller, "pw" + caller), callee, DOMAIN)])
    server.start()
    uas, mem, rc = None, None, 1
    try:
        header(args, server, "storm")
        mem = MemSampler(server)
        log("   MEM %s started: %s" % (server.name, mib(mem.now())))
        server.add_users(users + [(caller, "pw" + caller), (callee, "pw" + callee)])
        log("   MEM %s with %d users: %s" % (server.name, len(users) + 2, mib(mem.now())))
        port = free_port()
        saved = args.duration
        args.duration = max(1, args.users // args.reg_rate)
        ok = True
        for n, what in ((1, "registration storm (new bindings)"),
                        (2, "re-registration storm (refreshes)")):
            mem.reset()
            st = run_step(args, server, workdir, "register.xml", reg_inf, args.reg_rate,
                          "storm%d" % n, port=port)
            log(describe(st, "regs"))
            ok = ok and st.ok == args.users
            peak = mem.peak()
            time.sleep(args.idle)
            log("   MEM %s %s of %d at %d/s: peak %s, %d s later %s (registrations stored: %d)"
                % (server.name, what, args.users, args.reg_rate, mib(peak), args.idle,
                   mib(mem.now()), server.registrations()))
        args.duration = saved
        uas = start_callee(args, server, workdir, callee, "pw" + callee)
        mem.reset()
        saved = args.duration
        args.duration = max(1, args.calls // args.call_rate)
        done = {}

        def calls():
            done["st"] = run_step(args, server, workdir, "uac_call.xml", call_inf,
                                  args.call_rate, "stormcalls", ["-d", str(args.call_hold)],
                                  hold_s=args.call_hold / 1000)
        th = threading.Thread(target=calls)
        th.start()
        # All calls are up after calls/rate s; the transactions that set them up are over
        # 32 s (64*T1) later; measure "at rest" then, while the calls are still up.
        up = args.calls / args.call_rate
        time.sleep(up + 34)
        peak = mem.peak()
        live = live_calls(server) if isinstance(server, Sipbx) else "?"
        log("   MEM %s %d calls at %d/s held %d ms: peak %s, with the calls up %.0f s after "
            "the last was set up %s (live calls: %s)"
            % (server.name, args.calls, args.call_rate, args.call_hold, mib(peak), 34,
               mib(mem.now()), live))
        # With calls held long enough, once more after the trim that follows a burst
        # (memtrim.c runs once the transactions have gone): the calls' own memory.
        if args.call_hold / 1000 >= up + 70:
            time.sleep(26)
            live = live_calls(server) if isinstance(server, Sipbx) else "?"
            log("   MEM %s with the calls up %.0f s after the last was set up %s (live "
                "calls: %s)" % (server.name, 60, mib(mem.now()), live))
        th.join()
        args.duration = saved
        st = done["st"]
        log(describe(st, "calls"))
        ok = ok and st.ok == args.calls
        time.sleep(args.idle)
        log("   MEM %s %d s after the calls ended: %s" % (server.name, args.idle,
                                                          mib(mem.now())))
        if isinstance(server, Sipbx):
            with open("/proc/%d/status" % server.proc.pid) as f:
                hwm = [l.split(None, 1)[1].strip() for l in f if l.startswith("VmHWM")]
            log("   MEM %s VmHWM (peak RSS of the whole run): %s" % (server.name, hwm[0]))
        rc = 0 if ok else 1
    finally:
        if mem:
            mem.stop()
        if uas:
            stop_process(uas, "sipp uas", 10)
            uas.logf.close()
        st = server.stop()
        log("   %s stopped, exit status %s" % (server.name, st))
    return rc


def bench_compare(args, workdir):
    """register or call (--what-compare) for sipbx and Kamailio with usrloc db_mode 1 and 2,
    one after the other in this one run, --rounds times; prints each highest clean rate, the
    peak memory of each server, and the ratios sipbx/Kamailio of every round."""
    fn = bench_register if args.compare == "register" else bench_call
    configs = [("sipbx", dict(server="sipbx")),
               ("kamailio-db1", dict(server="kamailio", db_mode=1)),
               ("kamailio-db2", dict(server="kamailio", db_mode=2))]
    rows = []
    for rnd in range(1, args.rounds + 1):
        res = {}
        for name, over in configs:
            for k, v in over.items():
                setattr(args, k, v)
            sub = os.path.join(workdir, "%s-%d" % (name, rnd))
            os.makedirs(sub)
            args.result = (0, 0)
            fn(args, sub)
            res[name] = args.result
            time.sleep(args.settle)
        rows.append(res)
    unit = "registrations/s" if args.compare == "register" else "calls/s"
    log("== COMPARE %s, %d round(s), Kamailio with %d children; highest clean rate and peak "
        "memory (PSS)" % (unit, args.rounds, args.children))
    for rnd, res in enumerate(rows, 1):
        sb = res["sipbx"]
        parts = []
        for name in ("kamailio-db1", "kamailio-db2"):
            k = res[name]
            ratio = "%.2f" % (sb[0] / k[0]) if k[0] else "inf"
            parts.append("%s %d (%s): ratio %s" % (name, k[0], mib(k[1]), ratio))
        log("   round %d: sipbx %d (%s); %s" % (rnd, sb[0], mib(sb[1]), "; ".join(parts)))
    return 0


# ---------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("register", "call", "memory", "storm", "compare"))
    ap.add_argument("--compare", choices=("register", "call"), default="register",
                    help="compare: which benchmark to run for all three servers")
    ap.add_argument("--rounds", type=int, default=1, help="compare: rounds of all three")
    ap.add_argument("--server", choices=("sipbx", "kamailio"), default="sipbx")
    ap.add_argument("--trace", choices=("on", "off"), default="on",
                    help="sipbx message capture (config key trace)")
    ap.add_argument("--sipbx", default=os.path.join(ROOT, "build", "sipbx"))
    ap.add_argument("--sipp", default=shutil.which("sipp") or "sipp")
    ap.add_argument("--kamailio", default="kamailio")
    ap.add_argument("--kamailio-cfg", default=os.path.join(HERE, "kamailio", "kamailio.cfg"))
    ap.add_argument("--children", type=int, default=os.cpu_count() or 2,
                    help="Kamailio UDP worker processes (default: one per core)")
    ap.add_argument("--db-mode", type=int, choices=(1, 2), default=1,
                    help="Kamailio usrloc db_mode: 1 write-through, 2 write-back")
    ap.add_argument("--kamailio-journal", default="WAL",
                    help="SQLite journal mode for Kamailio's database (db_set_journal_mode)")
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--first-ext", type=int, default=10000)
    ap.add_argument("--duration", type=int, default=10, help="seconds of load per step")
    ap.add_argument("--rates", help="comma-separated rates to try instead of doubling")
    ap.add_argument("--start", type=int, default=100, help="first rate when doubling")
    ap.add_argument("--max-rate", type=int, default=20000)
    ap.add_argument("--refine", type=int, default=3, help="bisection steps after the ramp")
    ap.add_argument("--settle", type=float, default=3.0, help="seconds between steps")
    ap.add_argument("--hold", type=int, default=1000, help="ms between ACK and BYE")
    ap.add_argument("--reg-rate", type=int, default=200, help="memory: registration rate")
    ap.add_argument("--call-rate", type=int, default=50, help="memory: call rate")
    ap.add_argument("--call-seconds", type=int, default=60, help="memory: call run length")
    ap.add_argument("--call-runs", type=int, default=2, help="memory: number of call runs")
    ap.add_argument("--calls", type=int, default=1000, help="storm: calls held up at once")
    ap.add_argument("--call-hold", type=int, default=50000,
                    help="storm: ms each call is held (long enough to outlast set-up)")
    ap.add_argument("--idle", type=int, default=40,
                    help="memory: seconds to wait after each phase before sampling again")
    ap.add_argument("--workdir", help="use this directory (kept) instead of a temporary one")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()

    if not shutil.which(args.sipp):
        log("sipp not found")
        return 77
    workdir = args.workdir or tempfile.mkdtemp(prefix="sipbx-bench-")
    os.makedirs(workdir, exist_ok=True)
    log("   work directory %s" % workdir)
    try:
        fn = {"register": bench_register, "call": bench_call, "memory": bench_memory,
              "storm": bench_storm, "compare": bench_compare}[args.what]
        return fn(args, workdir)
    except BenchError as e:
        log("bench: %s" % e)
        return 1
    finally:
        if not args.workdir and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
