#!/usr/bin/env python3
"""bench.py - figures for smtphook's performance budget (prints, never asserts).

  python3 tests/bench/bench.py [--binary build/smtphook] [--idle 1000] [--messages 2000]

Measures, against the built binary on 127.0.0.1 with a real HTTP receiver:
  - memory per idle connection (RSS growth with N connections that said nothing);
  - throughput and CPU per message with Postfix's smtp-source (20 sessions);
  - peak RSS after a 5 KB message and after a 50 MB message (memory must not grow with
    message size: the body is streamed to a spool that moves to a temp file);
  - TLS: memory per idle connection after STARTTLS, smtphook CPU per full handshake and per
    resumed one, and CPU per message over TLS (certificates made at run time by certs.py).
"""

import argparse
import os
import resource
import shutil
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


def bench_throughput(binary, receiver, messages):
    sh = start(binary, receiver, {})
    try:
        pid = sh.proc.pid
        cpu0 = cpu_seconds(pid)
        t0 = time.monotonic()
        subprocess.run(["/usr/sbin/smtp-source", "-s", "20", "-m", str(messages), "-f",
                        "sender@example.org", "-t", "rcpt@example.com",
                        "%s:%d" % (helpers.HOST, sh.port)], check=True)
        wall = time.monotonic() - t0
        cpu = cpu_seconds(pid) - cpu0
        print("throughput: %d messages over 20 sessions in %.2f s = %.0f msg/s; "
              "smtphook CPU %.3f s = %.0f us per message; peak RSS %d KiB"
              % (messages, wall, messages / wall, cpu, cpu * 1e6 / messages,
                 proc_status(pid, "VmHWM")))
    finally:
        sh.stop()
        sh.cleanup_dir()


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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", default=os.path.join(HERE, "..", "..", "build", "smtphook"))
    ap.add_argument("--idle", type=int, default=1000)
    ap.add_argument("--messages", type=int, default=2000)
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, args.idle + 256))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    idle = min(args.idle, want - 256)

    receiver = Receiver().start()
    receiver.keep_bodies = False
    try:
        bench_idle(os.path.abspath(args.binary), receiver, idle)
        bench_throughput(os.path.abspath(args.binary), receiver, args.messages)
        bench_size(os.path.abspath(args.binary), receiver)
        bench_tls(os.path.abspath(args.binary), receiver, min(idle, 500), args.messages)
    finally:
        receiver.stop()


if __name__ == "__main__":
    main()
