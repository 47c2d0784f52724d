#!/usr/bin/env python3
"""bench.py - figures for smtphook's performance budget (prints, never asserts).

  python3 tests/bench/bench.py [--binary build/smtphook] [--idle 1000] [--messages 2000]
                               [--throughput-messages 10000] [--rounds 5] [--syscall-messages 1000]
                               [--callgrind-messages 200,600]
                               [--only idle,throughput,instructions,syscalls,size,tls,
                                       formats,formats_rss,sign_latency,stream,queue]

Measures, against the built binary on 127.0.0.1 with a real HTTP receiver:
  - memory per idle connection (RSS growth with N connections that said nothing);
  - throughput and CPU per message with Postfix's smtp-source (20 sessions kept open, 4 KB
    messages) to a fast receiver (fast_receiver.py), and the same with 100 routes that every RCPT
    walks (the match last) and with a recipient check per RCPT (cache_ms 0, then the cache
    on), each as a relative cost: the runs alternate, the median of --rounds is printed;
  - the same relative costs in instructions per message under callgrind (exact, where CPU
    time varies by a few percent from run to run);
  - system calls per message during smtp-source, by call, the median of --rounds: with
    strace -f -c, and with perf stat over the syscall tracepoints (timing untouched);
  - peak RSS after a 5 KB message and after a 50 MB message (memory must not grow with
    message size: the body is streamed to a spool that moves to a temp file);
  - TLS: memory per idle connection after STARTTLS, smtphook CPU per full handshake and per
    resumed one, and CPU per message over TLS (certificates made at run time by certs.py);
  - queue mode next to sync mode: the sender's throughput with smtp-source when every 250
    waits for the message to be on disk (the queue directory on /var/tmp, a real disk), the
    flushes that took (one covers every message written since the previous one), and how
    long the background delivery took to empty the queue.
"""

import argparse
import os
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import certs  # noqa: E402
import helpers  # noqa: E402
import smtp_client  # noqa: E402
import smtphook_process  # noqa: E402
from receiver import Receiver  # noqa: E402

MESSAGE_BYTES = 4096  # smtp-source -l: the payload of the throughput messages
SESSIONS = 20  # smtp-source -s: sessions at once
ROUTES = 100  # routes in the routing figure; only the last one matches
SYSCALLS_SHOWN = 8  # system calls named in the per-message line, most frequent first



def proc_status(pid, field):
    """A /proc/PID/status field in KiB (VmRSS, VmHWM)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    """User + system CPU time of a process."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def cpu_ns(pid):
    """CPU time of a process in nanoseconds, summed over its threads (schedstat counts in
    ns, where /proc/PID/stat counts in clock ticks of 10 ms)."""
    total = 0
    task_dir = "/proc/%d/task" % pid
    for tid in os.listdir(task_dir):
        try:
            with open(os.path.join(task_dir, tid, "schedstat")) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


class FastReceiver:
    """fast_receiver.py in a process of its own: answers 200 at once, keeps nothing."""

    def __init__(self, rate=0):
        """rate > 0: it reads at most that many bytes per second."""
        cmd = [sys.executable, os.path.join(HERE, "fast_receiver.py")]
        if rate:
            cmd += ["--rate", str(rate)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "PORT":
            raise RuntimeError("fast_receiver.py did not start")
        self.port = int(line[1])

    def url(self, path="/inbound"):
        return "http://%s:%d%s" % (helpers.HOST, self.port, path)

    def stop(self):
        """End it: its last line, "REQUESTS <n> BYTES <m>" (requests answered, body bytes)."""
        self.proc.send_signal(signal.SIGTERM)
        out = self.proc.communicate(timeout=10)[0]
        return out

    def stop_counts(self):
        """End it: (requests answered, body bytes read)."""
        f = self.stop().split()
        return int(f[1]), int(f[3])


def start(binary, receiver, limits, **top):
    smtphook_process.BINARY = binary
    port = helpers.free_port()
    cfg = smtphook_process.make_config(port, receiver.url(), limits=limits, **top)
    sh = smtphook_process.Smtphook(cfg)
    sh.start()
    return sh


def bench_idle(binary, receiver, n):
    sh = start(binary, receiver, {"max_connections": n + 10, "max_connections_per_client": n + 10})
    try:
        pid = sh.proc.pid
        time.sleep(0.2)
        before = proc_status(pid, "VmRSS")
        socks = []
        for _ in range(n):
            s = socket.create_connection((helpers.HOST, sh.port))
            s.recv(512)  # the banner: the connection is fully set up
            socks.append(s)
        time.sleep(0.2)
        after = proc_status(pid, "VmRSS")
        for s in socks:
            s.close()
        print("idle connections: %d, RSS %d KiB -> %d KiB, %.2f KiB per connection"
              % (n, before, after, (after - before) / n))
    finally:
        sh.stop()
        sh.cleanup_dir()


def smtp_source(port, messages, sessions=SESSIONS):
    """Postfix's smtp-source: messages of MESSAGE_BYTES over sessions at once."""
    subprocess.run(["/usr/sbin/smtp-source", "-d", "-s", str(sessions), "-m", str(messages),
                    "-l", str(MESSAGE_BYTES), "-f", "sender@example.org", "-t",
                    "rcpt@example.com", "%s:%d" % (helpers.HOST, port)], check=True)


def routes_config(n):
    """n routes to one endpoint: n - 1 patterns that the bench's recipient
    (rcpt@example.com) does not match, of every kind (an exact address of its domain, an
    exact address elsewhere, a domain, a subdomain), then "*@example.com" last. Every domain
    is served, so the domain check costs the same as without routes."""
    kinds = ("user%d@example.com", "rcpt@d%d.example.net", "*@d%d.example.org",
             "*@*.s%d.example.com")
    routes = [{"match": [kinds[i % len(kinds)] % i], "endpoints": ["app"]}
              for i in range(n - 1)]
    routes.append({"match": ["*@example.com"], "endpoints": ["app"]})
    return routes


def throughput_variants(fast):
    """(name, short name, config keys) of the per-message comparisons; the first is the
    baseline."""
    check = {"url": fast.url("/check"), "timeout_ms": 5000}
    return [
        ("throughput", "plain", {}),
        ("routing (%d routes, the match last)" % ROUTES, "routing",
         {"routes": routes_config(ROUTES)}),
        ("recipient check (cache_ms 0: every RCPT asks)", "check (cache_ms 0)",
         {"recipient_check": dict(check, cache_ms=0)}),
        ("recipient check (cache on)", "check (cache on)",
         {"recipient_check": dict(check, cache_ms=60000)}),
    ]


def run_throughput(binary, fast, messages, top):
    """One smtphook with the config keys top, messages through it: (wall s, CPU ns, peak
    RSS KiB)."""
    sh = start(binary, fast, {}, domains=["*"], **top)
    try:
        pid = sh.proc.pid
        cpu0 = cpu_ns(pid)
        t0 = time.monotonic()
        smtp_source(sh.port, messages)
        wall = time.monotonic() - t0
        return wall, cpu_ns(pid) - cpu0, proc_status(pid, "VmHWM")
    finally:
        sh.stop()
        sh.cleanup_dir()


def bench_throughput(binary, messages, rounds):
    """Throughput and CPU per message, plain and with routes and recipient checks, to the
    fast receiver. The variants take turns, round after round, so that a slow moment of the
    machine does not fall on one of them; each figure is the median round."""
    fast = FastReceiver()
    try:
        variants = throughput_variants(fast)
        runs = {name: [] for name, _, _ in variants}
        run_throughput(binary, fast, messages // 4, {})  # warm-up: caches, CPU clock, receiver
        for _ in range(rounds):
            for name, _, top in variants:
                runs[name].append(run_throughput(binary, fast, messages, top))
        per_msg = {}
        for name, _, _ in variants:
            by_cpu = sorted(runs[name], key=lambda r: r[1])
            wall, cpu, hwm = by_cpu[len(by_cpu) // 2]
            per_msg[name] = cpu / messages
            spread = ""
            if rounds > 1:
                spread = " (rounds %.0f..%.0f)" % (by_cpu[0][1] / messages / 1e3,
                                                   by_cpu[-1][1] / messages / 1e3)
            print("%s: %d messages of %d KB over %d sessions in %.2f s = %.0f msg/s; "
                  "smtphook CPU %.3f s = %.1f us per message%s; peak RSS %d KiB"
                  % (name, messages, MESSAGE_BYTES // 1024, SESSIONS, wall, messages / wall,
                     cpu / 1e9, cpu / messages / 1e3, spread, hwm))
        base = per_msg[variants[0][0]]
        names = [n for n, _, _ in variants]
        print("routing: %+.1f %% CPU per message (%d routes); recipient check: %+.1f %% "
              "(cache_ms 0), %+.1f %% (cache on); medians of %d rounds of CPU time, which "
              "varies by 10 %% or more here: the instructions line judges the goal"
              % ((per_msg[names[1]] / base - 1) * 100, ROUTES,
                 (per_msg[names[2]] / base - 1) * 100, (per_msg[names[3]] / base - 1) * 100,
                 rounds))
    finally:
        fast.stop()


class CallgrindSmtphook(smtphook_process.Smtphook):
    """smtphook under valgrind's callgrind, which counts the instructions it runs."""

    def __init__(self, config, out_file):
        super().__init__(config)
        self.out_file = out_file

    def command(self):
        return ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + self.out_file,
                smtphook_process.BINARY, "--config", self.config_path]


def count_instructions(binary, fast, messages, top):
    """Instructions smtphook runs from its start to its exit with messages sent through it
    (config keys top)."""
    smtphook_process.BINARY = binary
    port = helpers.free_port()
    cfg = smtphook_process.make_config(port, fast.url(), domains=["*"], **top)
    out = tempfile.NamedTemporaryFile(prefix="smtphook-callgrind-", delete=False)
    out.close()
    sh = CallgrindSmtphook(cfg, out.name)
    try:
        sh.start()
        smtp_source(sh.port, messages)
        sh.stop()
        with open(out.name) as f:
            for line in f:
                if line.startswith("totals:") or line.startswith("summary:"):
                    return int(line.split()[1])
        raise RuntimeError("no totals in callgrind's output")
    finally:
        sh.stop()
        sh.cleanup_dir()
        os.unlink(out.name)


def bench_instructions(binary, few, many):
    """Instructions per message under callgrind: the difference between a run of many and
    one of few messages, over the messages between, so that start-up and the loading of the
    configuration (100 routes take a while to check) fall out. Exact where CPU time has a
    spread of several percent: it is the figure to judge a relative cost by."""
    if shutil.which("valgrind") is None:
        print("instructions: skipped (valgrind not installed)")
        return
    fast = FastReceiver()
    try:
        per_msg = []
        for _, label, top in throughput_variants(fast):
            n_few = count_instructions(binary, fast, few, top)
            n_many = count_instructions(binary, fast, many, top)
            per_msg.append((label, (n_many - n_few) / (many - few)))
    finally:
        fast.stop()
    base = per_msg[0][1]
    print("instructions per message (callgrind, %d - %d messages of %d KB): %.0fk %s; %s; "
          "routing goal: under +5 %%"
          % (many, few, MESSAGE_BYTES // 1024, base / 1e3, per_msg[0][0],
             "; ".join("%s %.0fk (%+.1f %%)" % (label, n / 1e3, (n / base - 1) * 100)
                       for label, n in per_msg[1:])))


def parse_strace_summary(text):
    """strace -c's table: {syscall: calls}, and the total."""
    calls = {}
    total = 0
    for line in text.splitlines():
        f = line.split()
        if len(f) < 5 or not f[3].isdigit():
            continue
        name = f[-1]
        if name == "total":
            total = int(f[3])
        else:
            calls[name] = int(f[3])
    return calls, total


def trace_syscalls(strace, binary, fast, messages):
    """One smtphook under strace -f -c while messages go through it: ({syscall: calls},
    total), or None when strace could not attach."""
    sh = start(binary, fast, {}, domains=["*"])
    out = tempfile.NamedTemporaryFile(prefix="smtphook-strace-", delete=False)
    out.close()
    try:
        tracer = subprocess.Popen([strace, "-f", "-c", "-o", out.name, "-p", str(sh.proc.pid)],
                                  stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # attached (strace prints nothing to tell)
        if tracer.poll() is not None:
            return None
        smtp_source(sh.port, messages)
        time.sleep(0.2)  # the last replies and closes
        tracer.send_signal(signal.SIGINT)  # detach and write the summary
        tracer.wait(10)
        with open(out.name) as f:
            return parse_strace_summary(f.read())
    finally:
        sh.stop()
        sh.cleanup_dir()
        os.unlink(out.name)


# The calls perf counts one by one; the rest is shown as "other".
PERF_SYSCALLS = ("read", "write", "epoll_wait", "epoll_ctl", "poll", "sendto", "recvfrom",
                 "ioctl", "accept4", "close", "setsockopt", "getsockopt", "getpeername",
                 "getsockname", "socket", "connect", "fcntl", "brk", "mmap", "munmap",
                 "pread64", "pwrite64")


def count_syscalls_perf(perf, binary, fast, messages):
    """The same count from the kernel's syscall tracepoints through perf stat, which does not
    stop the process at every call as strace does: ({syscall: calls}, total), or None when
    perf cannot count them here."""
    sh = start(binary, fast, {}, domains=["*"])
    out = tempfile.NamedTemporaryFile(prefix="smtphook-perf-", delete=False)
    out.close()
    events = ",".join(["raw_syscalls:sys_enter"] +
                      ["syscalls:sys_enter_" + name for name in PERF_SYSCALLS])
    try:
        counter = subprocess.Popen([perf, "stat", "-x", ",", "-o", out.name, "-e", events, "-p",
                                    str(sh.proc.pid)], stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        if counter.poll() is not None:
            return None
        smtp_source(sh.port, messages)
        time.sleep(0.2)
        counter.send_signal(signal.SIGINT)
        counter.wait(10)
        calls, total = {}, None
        with open(out.name) as f:
            for line in f:
                fields = line.strip().split(",")
                if len(fields) < 3 or not fields[0].isdigit():
                    continue
                if fields[2] == "raw_syscalls:sys_enter":
                    total = int(fields[0])
                elif fields[2].startswith("syscalls:sys_enter_"):
                    calls[fields[2][len("syscalls:sys_enter_"):]] = int(fields[0])
        if total is None:
            return None
        calls["other"] = max(0, total - sum(calls.values()))
        return calls, total
    finally:
        sh.stop()
        sh.cleanup_dir()
        os.unlink(out.name)


def print_syscalls(label, runs, messages):
    """One line: the median run's calls per message, its spread, the most frequent calls."""
    runs.sort(key=lambda r: r[1])
    calls, total = runs[len(runs) // 2]
    top = sorted(calls.items(), key=lambda kv: -kv[1])[:SYSCALLS_SHOWN]
    spread = ""
    if len(runs) > 1:
        spread = ", rounds %.1f..%.1f" % (runs[0][1] / messages, runs[-1][1] / messages)
    print("system calls (%s): %.1f per message of %d KB (%d messages over %d sessions%s; %s)"
          % (label, total / messages, MESSAGE_BYTES // 1024, messages, SESSIONS, spread,
             ", ".join("%s %.1f" % (name, n / messages) for name, n in top if n > 0)))


def bench_syscalls(binary, messages, rounds):
    """System calls per message while smtp-source sends messages of MESSAGE_BYTES to the
    fast receiver (session set-up and teardown included, spread over the messages of a
    session), the median of rounds. strace -f -c names every call but slows each one down,
    so a response is more often there already when curl first looks (fewer epoll_ctl than
    without it); perf stat over the syscall tracepoints, where it works, counts at full
    speed."""
    fast = FastReceiver()
    try:
        strace = shutil.which("strace")
        if strace is None:
            print("system calls (strace -c): skipped (strace not installed; "
                  "apt-get install strace)")
        else:
            runs = []
            for _ in range(rounds):
                r = trace_syscalls(strace, binary, fast, messages)
                if r is None:
                    print("system calls (strace -c): skipped (strace could not attach: "
                          "ptrace not allowed?)")
                    break
                runs.append(r)
            if len(runs) == rounds:
                print_syscalls("strace -c", runs, messages)
        perf = shutil.which("perf")
        if perf is None:
            print("system calls (perf stat): skipped (perf not installed)")
            return
        runs = []
        for _ in range(rounds):
            r = count_syscalls_perf(perf, binary, fast, messages)
            if r is None:
                print("system calls (perf stat): skipped (no syscall tracepoints here)")
                return
            runs.append(r)
        print_syscalls("perf stat, untraced", runs, messages)
    finally:
        fast.stop()


def send(port, body):
    c = smtp_client.SMTPClient(port, timeout=120)
    try:
        c.cmd("EHLO bench")
        c.cmd("MAIL FROM:<a@example.org>")
        c.cmd("RCPT TO:<b@example.com>")
        c.cmd("DATA")
        c.send(smtp_client.dot_stuff(body))
        r = c.read_reply(120)
        c.cmd("QUIT")
        return r
    finally:
        c.close()


def bench_size(binary, receiver):
    sh = start(binary, receiver, {"max_message_bytes": 60000000})
    try:
        pid = sh.proc.pid
        small = b"Subject: small\r\n\r\n" + b"x" * 78 * 64 + b"\r\n"
        send(sh.port, small)
        hwm_small = proc_status(pid, "VmHWM")
        line = b"y" * 998 + b"\r\n"
        big = b"Subject: big\r\n\r\n" + line * (50 * 1000 * 1000 // len(line))
        t0 = time.monotonic()
        r = send(sh.port, big)
        wall = time.monotonic() - t0
        hwm_big = proc_status(pid, "VmHWM")
        print("message size: peak RSS %d KiB after 5 KB, %d KiB after %d MB (%s in %.2f s)"
              % (hwm_small, hwm_big, len(big) // 1000000, r.code, wall))
    finally:
        sh.stop()
        sh.cleanup_dir()


# A Standard Webhooks secret for the signing figures: "whsec_" and the base64 of 32 bytes.
SIGNING = {"scheme": "standard-webhooks",
           "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw6SgNh5dn+s0="]}
# A v1a (Ed25519) key, the 32-byte seed of RFC 8032's TEST 1: two passes over the body.
SIGNING_V1A = {"scheme": "standard-webhooks",
               "secrets": ["whsk_nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A="]}
BIG_RSS_BYTES = 30 * 1000 * 1000  # the large message of formats_rss
BIG_SIGN_BYTES = 25 * 1000 * 1000  # the large message in flight in sign_latency
LATENCY_MESSAGES = 20  # small messages timed one after another in sign_latency
CONFIG_DEF_SPOOL_MEMORY_BYTES = 1048576  # config.h's default spool.memory_bytes


def endpoint(url, fmt="raw", signing=False):
    """One endpoint "app" at url in format fmt, signed with SIGNING (signing True), with the
    signing given (a dict) or not (the endpoints key of make_config)."""
    ep = {"url": url, "timeout_ms": 60000, "connect_timeout_ms": 2000, "format": fmt}
    if signing:
        ep["signing"] = SIGNING if signing is True else signing
    return {"app": ep}


def format_variants(fast):
    """(label, config keys) of the formats figure; the first is the baseline."""
    return [("raw", {"endpoints": endpoint(fast.url())}),
            ("json", {"endpoints": endpoint(fast.url(), "json")}),
            ("multipart", {"endpoints": endpoint(fast.url(), "multipart")}),
            ("raw + signing", {"endpoints": endpoint(fast.url(), signing=True)})]


def bench_formats(binary, messages, rounds):
    """Throughput and smtphook CPU per message of 4 KB with smtp-source to the fast
    receiver, per request format and with Standard Webhooks signing: the method of the
    throughput figure (one smtphook per run, the variants taking turns round after round,
    the median round by CPU), printed as a table with the CPU cost relative to raw."""
    fast = FastReceiver()
    try:
        variants = format_variants(fast)
        runs = {label: [] for label, _ in variants}
        run_throughput(binary, fast, messages // 4, {})  # warm-up
        for _ in range(rounds):
            for label, top in variants:
                runs[label].append(run_throughput(binary, fast, messages, top))
    finally:
        fast.stop()
    print("formats: %d messages of %d KB over %d sessions per run (smtp-source, fast "
          "receiver), median of %d rounds by CPU" % (messages, MESSAGE_BYTES // 1024,
                                                      SESSIONS, rounds))
    print("  %-14s %8s %12s %14s %11s %9s" % ("format", "msg/s", "CPU us/msg", "rounds",
                                              "CPU vs raw", "peak RSS"))
    base = None
    for label, _ in variants:
        by_cpu = sorted(runs[label], key=lambda r: r[1])
        wall, cpu, hwm = by_cpu[len(by_cpu) // 2]
        per_msg = cpu / messages / 1e3
        if base is None:
            base = per_msg
        print("  %-14s %8.0f %12.1f %14s %+10.1f%% %6d KiB"
              % (label, messages / wall, per_msg,
                 "%.0f..%.0f" % (by_cpu[0][1] / messages / 1e3, by_cpu[-1][1] / messages / 1e3),
                 (per_msg / base - 1) * 100, hwm))


def bench_formats_rss(binary):
    """Peak RSS (VmHWM) of smtphook after a 5 KB message, then after a 30 MB one, per
    format, with the spool's memory part at its default 1 MiB, to the fast receiver (which
    reads the body and keeps none of it). json and multipart build their bodies from the
    spool as curl reads them (base64 computed on the way), so the growth should be the
    spool's memory part and some buffers, not the size of the message."""
    small = b"Subject: small\r\n\r\n" + b"x" * 78 * 64 + b"\r\n"
    line = b"y" * 998 + b"\r\n"
    big = b"Subject: big\r\n\r\n" + line * (BIG_RSS_BYTES // len(line))
    variants = [("raw", "raw", False), ("json", "json", False),
                ("multipart", "multipart", False), ("json + signing", "json", True),
                ("json + v1a", "json", SIGNING_V1A)]
    rows = []
    for label, fmt, signing in variants:
        fast = FastReceiver()  # one per format: its byte count is this format's
        try:
            sh = start(binary, fast, {"max_message_bytes": 60000000,
                                      "transaction_timeout_ms": 60000},
                       endpoints=endpoint(fast.url(), fmt, signing),
                       spool={"memory_bytes": CONFIG_DEF_SPOOL_MEMORY_BYTES,
                              "directory": tempfile.gettempdir()})
            try:
                pid = sh.proc.pid
                r_small = send(sh.port, small)
                hwm_small = proc_status(pid, "VmHWM")
                t0 = time.monotonic()
                r_big = send(sh.port, big)
                wall = time.monotonic() - t0
                hwm_big = proc_status(pid, "VmHWM")
            finally:
                sh.stop()
                sh.cleanup_dir()
        finally:
            requests, body_bytes = fast.stop_counts()
        rows.append((label, hwm_small, hwm_big, "%d %d" % (r_small.code, r_big.code), wall,
                     requests, body_bytes))
    print("formats_rss: smtphook peak RSS (VmHWM) after a 5 KB message, then after a %d MB "
          "one, spool memory_bytes %d (default), fast receiver" % (len(big) // 1000000,
                                                                   CONFIG_DEF_SPOOL_MEMORY_BYTES))
    print("  %-15s %14s %14s %10s %8s %17s %22s" % ("format", "after 5 KB", "after 30 MB",
                                                     "growth", "replies", "30 MB message in",
                                                     "receiver read"))
    for label, hwm_small, hwm_big, codes, wall, requests, body_bytes in rows:
        print("  %-15s %10d KiB %10d KiB %6d KiB %8s %15.2f s %7.1f MB in %d requests"
              % (label, hwm_small, hwm_big, hwm_big - hwm_small, codes, wall, body_bytes / 1e6,
                 requests))


def open_session(port):
    """A session after EHLO, with TCP_NODELAY: the final dot goes in a write of its own, and
    Nagle's algorithm would hold it until the body's last segment is acknowledged (up to the
    40 ms of a delayed ACK, which would then be all the latency measured)."""
    c = smtp_client.SMTPClient(port, timeout=120)
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.cmd("EHLO bench")
    return c


def start_message(c, body):
    """MAIL, RCPT, DATA and the body but for its final dot, which the caller sends."""
    c.cmd("MAIL FROM:<a@example.org>")
    c.cmd("RCPT TO:<b@example.com>")
    if c.cmd("DATA").code != 354:
        raise RuntimeError("DATA refused")
    c.send(smtp_client.dot_stuff(body)[:-3])


def finish_message(c):
    """The final dot; (seconds from it to the reply, the reply code)."""
    t0 = time.monotonic()
    c.send(b".\r\n")
    r = c.read_reply(120)
    return time.monotonic() - t0, r.code


def latency_summary(samples):
    ms = sorted(t * 1e3 for t, _ in samples)
    codes = sorted(set(code for _, code in samples))
    return "median %.2f ms, max %.2f ms (%d messages, replies %s)" % (
        ms[len(ms) // 2], ms[-1], len(ms), "/".join(str(c) for c in codes))


def bench_sign_latency(binary):
    """The latency of small messages (5 KB, one after another on one connection; each timed
    from its final dot to its reply, which comes after the endpoint's 200) while a 25 MB
    message to the same signing endpoint is being signed and sent on another connection,
    against the same with nothing else in flight, and with a v1a (Ed25519) key, whose two
    passes read the body twice; and, to tell signing from sending, with the large message
    to an endpoint that does not sign. A body over 256 KiB is signed in
    256 KiB steps, one per turn of the event loop, so the small messages should wait for
    a step at most (a millisecond or so), not for the whole pass.

    The large message's bytes all go before its final dot, and the small messages start
    right after that dot; only those whose final dot went before the large message's reply
    count as "in flight" (a round repeats with a new large message until there are
    LATENCY_MESSAGES of them)."""
    fast = FastReceiver()
    small = b"Subject: small\r\n\r\n" + b"x" * 78 * 64 + b"\r\n"
    line = b"y" * 998 + b"\r\n"
    big = b"Subject: big\r\n\r\n" + line * (BIG_SIGN_BYTES // len(line))
    results = []
    try:
        for label, signing, with_big in (("no large message in flight (signing endpoint)",
                                          True, False),
                                         ("while 25 MB is signed and sent (signing endpoint)",
                                          True, True),
                                         ("while 25 MB is signed with v1a (Ed25519, two "
                                          "passes) and sent", SIGNING_V1A, True),
                                         ("while 25 MB is sent (endpoint without signing)",
                                          False, True)):
            sh = start(binary, fast, {"max_message_bytes": 60000000,
                                      "transaction_timeout_ms": 60000},
                       endpoints=endpoint(fast.url(), signing=signing))
            try:
                b = open_session(sh.port)
                samples = []
                big_times = []
                if not with_big:
                    for _ in range(LATENCY_MESSAGES):
                        start_message(b, small)
                        samples.append(finish_message(b))
                else:
                    a = open_session(sh.port)
                    cycles = 0
                    while len(samples) < LATENCY_MESSAGES and cycles < 40:
                        cycles += 1
                        start_message(a, big)
                        done = []

                        def big_dot():
                            lat = finish_message(a)
                            done.append((lat, time.monotonic()))  # one append: no torn read

                        th = threading.Thread(target=big_dot)
                        th.start()
                        while len(samples) < LATENCY_MESSAGES:
                            start_message(b, small)
                            t_dot = time.monotonic()
                            lat = finish_message(b)
                            if done and t_dot >= done[0][1]:
                                break  # the large message had its reply before this dot
                            samples.append(lat)
                        th.join()
                        big_times.append(done[0][0])
                    a.cmd("QUIT")
                    a.close()
                b.cmd("QUIT")
                b.close()
                results.append((label, samples, big_times))
            finally:
                sh.stop()
                sh.cleanup_dir()
    finally:
        fast.stop()
    print("sign_latency: small messages of 5 KB one after another on one connection, each "
          "timed from its final dot to its 250 (the endpoint answered 200); fast receiver")
    for label, samples, big_times in results:
        extra = ""
        if big_times:
            extra = "; the 25 MB message: final dot to reply %s s (%d large messages)" % (
                ", ".join("%.2f" % t for t, _ in big_times), len(big_times))
        print("  %s: %s%s" % (label, latency_summary(samples), extra))


STREAM_SIZES = (10, 25)  # MB of the messages of the stream figure
STREAM_ROUNDS = 3  # runs per size and mode (the median is printed)
STREAM_SENDER_RATE = 20e6  # bytes/s of the paced sender
STREAM_APP_RATE = 40e6  # bytes/s the slower app reads


def send_paced(c, body, rate):
    """body (dot-stuffed, without its final dot) in 64 KiB writes at about rate bytes/s."""
    data = smtp_client.dot_stuff(body)[:-3]
    step = 65536
    t0 = time.monotonic()
    for off in range(0, len(data), step):
        c.send(data[off:off + step])
        ahead = (off + step) / rate - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)


def bench_stream(binary):
    """For 10 MB and 25 MB messages: the time from the final dot to the reply, and the
    throughput from DATA to the reply, with the message spooled first and posted after the
    final dot (the default) and streamed as it arrives ("stream": true). Two settings: the
    sender at full speed over loopback to the fast receiver (the upload costs little either
    way), and a sender paced at 20 MB/s to an app that reads 40 MB/s, as over a real network:
    spooled, the sender waits for the whole upload after its own; streamed, the upload runs
    beside it and the reply follows the dot."""
    rows = []
    for setting, sender_rate, app_rate in (("loopback, fast app", 0, 0),
                                           ("sender 20 MB/s, app 40 MB/s", STREAM_SENDER_RATE,
                                            STREAM_APP_RATE)):
        fast = FastReceiver(app_rate)
        try:
            for mb in STREAM_SIZES:
                line = b"z" * 998 + b"\r\n"
                body = b"Subject: stream\r\n\r\n" + line * (mb * 1000000 // len(line))
                for label, stream in (("spooled", False), ("streamed", True)):
                    eps = endpoint(fast.url())
                    eps["app"]["stream"] = stream
                    sh = start(binary, fast, {"max_message_bytes": 60000000,
                                              "transaction_timeout_ms": 60000}, endpoints=eps)
                    runs = []
                    try:
                        c = open_session(sh.port)
                        for _ in range(STREAM_ROUNDS):
                            t0 = time.monotonic()
                            if sender_rate:
                                c.cmd("MAIL FROM:<a@example.org>")
                                c.cmd("RCPT TO:<b@example.com>")
                                if c.cmd("DATA").code != 354:
                                    raise RuntimeError("DATA refused")
                                send_paced(c, body, sender_rate)
                            else:
                                start_message(c, body)
                            lat, code = finish_message(c)
                            runs.append((lat, time.monotonic() - t0, code))
                        c.cmd("QUIT")
                        c.close()
                    finally:
                        sh.stop()
                        sh.cleanup_dir()
                    runs.sort()
                    lat, total, code = runs[len(runs) // 2]
                    rows.append((setting, mb, label, lat, total, len(body), code))
        finally:
            fast.stop()
    print("stream: one message at a time; median of %d" % STREAM_ROUNDS)
    print("  %-28s %6s %-9s %18s %16s %6s" % ("setting", "size", "mode", "final dot to reply",
                                              "DATA to reply", "reply"))
    for setting, mb, label, lat, total, size, code in rows:
        print("  %-28s %3d MB %-9s %15.1f ms %11.1f MB/s %6d"
              % (setting, mb, label, lat * 1e3, size / total / 1e6, code))


class TLSBench:
    """A test CA and a server certificate for the TLS figures."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="smtphook-bench-")
        self.ca = certs.CA(self.dir)
        self.cert, self.key = self.ca.issue("mx", names=("mx.test",))
        self.ctx = ssl.create_default_context(cafile=self.ca.ca_file)

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self, binary, receiver, limits):
        return start(binary, receiver, limits,
                     tls={"certificates": [{"cert": self.cert, "key": self.key}]})

    def connect(self, port, session=None):
        """EHLO, STARTTLS, handshake, EHLO: a TLS session ready for MAIL."""
        s = socket.create_connection((helpers.HOST, port))
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"EHLO bench\r\n")
        while f.readline()[3:4] == b"-":
            pass
        s.sendall(b"STARTTLS\r\n")
        f.readline()
        t = self.ctx.wrap_socket(s, server_hostname="mx.test", session=session)
        t.sendall(b"EHLO bench\r\n")
        tf = t.makefile("rb")
        while tf.readline()[3:4] == b"-":
            pass
        return t, tf


def bench_tls(binary, receiver, n_idle, messages):
    tb = TLSBench()
    sh = tb.start(binary, receiver, {"max_connections": n_idle + 10,
                                     "max_connections_per_client": n_idle + 10})
    try:
        pid = sh.proc.pid
        time.sleep(0.2)
        before = proc_status(pid, "VmRSS")
        conns = [tb.connect(sh.port) for _ in range(n_idle)]
        time.sleep(0.2)
        after = proc_status(pid, "VmRSS")
        for t, tf in conns:
            tf.close()  # the file object holds the socket open too
            t.close()
        print("TLS idle connections: %d, RSS %d KiB -> %d KiB, %.2f KiB per connection"
              % (n_idle, before, after, (after - before) / n_idle))

        handshakes = 200
        cpu0 = cpu_seconds(pid)
        for _ in range(handshakes):
            t, tf = tb.connect(sh.port)
            session = t.session
            tf.close()
            t.close()
        full = (cpu_seconds(pid) - cpu0) / handshakes
        cpu0 = cpu_seconds(pid)
        reused = 0
        for _ in range(handshakes):
            t, tf = tb.connect(sh.port, session=session)
            reused += t.session_reused
            session = t.session
            tf.close()
            t.close()
        resumed = (cpu_seconds(pid) - cpu0) / handshakes
        print("TLS handshakes (STARTTLS + EHLO, TLS 1.3, ECDSA P-256): smtphook CPU %.0f us "
              "full, %.0f us resumed (%d of %d resumed)"
              % (full * 1e6, resumed * 1e6, reused, handshakes))

        body = b"Subject: tls\r\n\r\n" + b"z" * 78 * 64 + b"\r\n"
        sessions = 20
        errors = []

        def session_worker(count):
            try:
                t, tf = tb.connect(sh.port)
                for _ in range(count):
                    t.sendall(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\n"
                              b"DATA\r\n")
                    for _ in range(3):
                        tf.readline()
                    t.sendall(smtp_client.dot_stuff(body))
                    if not tf.readline().startswith(b"250"):
                        raise RuntimeError("message not accepted")
                tf.close()
                t.close()
            except Exception as e:  # reported below: a benchmark prints, it does not fail
                errors.append(e)

        threads = [threading.Thread(target=session_worker, args=(messages // sessions,))
                   for _ in range(sessions)]
        cpu0 = cpu_seconds(pid)
        t0 = time.monotonic()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.monotonic() - t0
        cpu = cpu_seconds(pid) - cpu0
        sent = messages // sessions * sessions
        print("TLS throughput: %d messages of 5 KB over %d STARTTLS sessions in %.2f s = "
              "%.0f msg/s; smtphook CPU %.0f us per message%s"
              % (sent, sessions, wall, sent / wall, cpu * 1e6 / sent,
                 "; errors: %s" % errors[:3] if errors else ""))
    finally:
        sh.stop()
        sh.cleanup_dir()
        tb.close()


def metric_value(admin_port, name):
    """The value of an unlabelled metric on the admin port."""
    import urllib.request
    text = urllib.request.urlopen("http://%s:%d/metrics" % (helpers.HOST, admin_port),
                                  timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def run_queue_mode(binary, fast, messages, mode, sessions):
    """smtp-source through smtphook in delivery mode: (wall s of the sender, CPU ns, flushes,
    seconds until the queue was empty after the sender finished)."""
    qdir = tempfile.mkdtemp(prefix="smtphook-bench-queue-", dir="/var/tmp")
    admin = helpers.free_port()
    top = {"delivery": mode, "admin": {"listen": "%s:%d" % (helpers.HOST, admin)},
           "queue": {"directory": qdir + "/q", "initial_backoff_ms": 1000,
                     "max_in_flight": 16}}
    sh = start(binary, fast, {}, domains=["*"], **top)
    try:
        pid = sh.proc.pid
        cpu0 = cpu_ns(pid)
        t0 = time.monotonic()
        smtp_source(sh.port, messages, sessions)
        wall = time.monotonic() - t0
        drained = 0.0
        if mode != "sync":
            active = os.path.join(qdir, "q", "active")
            while os.listdir(active) and time.monotonic() - t0 < 300:
                time.sleep(0.02)
            drained = time.monotonic() - t0 - wall
        flushes = metric_value(admin, "smtphook_queue_flushes_total")
        return wall, cpu_ns(pid) - cpu0, flushes, drained
    finally:
        sh.stop()
        sh.cleanup_dir()
        shutil.rmtree(qdir, ignore_errors=True)


def bench_queue(binary, messages, rounds):
    """Queue mode next to sync mode, with 1 and with SESSIONS senders at once: the sender's
    throughput (each 250 after its own flush, or a flush shared with the messages written
    meanwhile), the flushes per message, the time to drain the queue afterwards."""
    fast = FastReceiver()
    try:
        run_queue_mode(binary, fast, messages // 10, "queue", SESSIONS)  # warm-up
        for sessions in (1, SESSIONS):
            n = messages if sessions > 1 else max(messages // 10, 100)
            for mode in ("sync", "queue"):
                runs = sorted((run_queue_mode(binary, fast, n, mode, sessions)
                               for _ in range(rounds)), key=lambda r: r[0])
                wall, cpu, flushes, drained = runs[len(runs) // 2]
                extra = ""
                if mode != "sync":
                    extra = ("; %d flushes = %.1f messages per flush; queue empty %.2f s "
                             "after the last 250" % (flushes, n / max(flushes, 1), drained))
                print("delivery %s: %d messages of %d KB over %d session(s) in %.2f s = %.0f "
                      "msg/s; smtphook CPU %.1f us per message%s (median of %d)"
                      % (mode, n, MESSAGE_BYTES // 1024, sessions, wall, n / wall,
                         cpu / n / 1e3, extra, rounds))
    finally:
        fast.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", default=os.path.join(HERE, "..", "..", "build", "smtphook"))
    ap.add_argument("--idle", type=int, default=1000)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--throughput-messages", type=int, default=10000,
                    help="messages per throughput run")
    ap.add_argument("--rounds", type=int, default=5,
                    help="runs of each throughput variant (the median is printed)")
    ap.add_argument("--syscall-messages", type=int, default=1000,
                    help="messages sent under strace")
    ap.add_argument("--callgrind-messages", default="200,600",
                    help="messages of the two callgrind runs per variant (few,many)")
    ap.add_argument("--only", default="idle,throughput,instructions,syscalls,size,tls,formats,"
                    "formats_rss,sign_latency,stream,queue",
                    help="comma-separated figures to print (default: all)")
    args = ap.parse_args()
    only = set(args.only.split(","))
    binary = os.path.abspath(args.binary)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, args.idle + 256))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    idle = min(args.idle, want - 256)

    receiver = Receiver().start()
    receiver.keep_bodies = False
    try:
        if "idle" in only:
            bench_idle(binary, receiver, idle)
        if "throughput" in only:
            bench_throughput(binary, args.throughput_messages, args.rounds)
        if "instructions" in only:
            few, many = (int(n) for n in args.callgrind_messages.split(","))
            bench_instructions(binary, few, many)
        if "syscalls" in only:
            bench_syscalls(binary, args.syscall_messages, args.rounds)
        if "size" in only:
            bench_size(binary, receiver)
        if "tls" in only:
            bench_tls(binary, receiver, min(idle, 500), args.messages)
        if "formats" in only:
            bench_formats(binary, args.throughput_messages, args.rounds)
        if "formats_rss" in only:
            bench_formats_rss(binary)
        if "sign_latency" in only:
            bench_sign_latency(binary)
        if "stream" in only:
            bench_stream(binary)
        if "queue" in only:
            bench_queue(binary, args.messages, min(args.rounds, 3))
    finally:
        receiver.stop()


if __name__ == "__main__":
    main()
