"""smtphook_process.py - smtphook as the process under test (Python standard library only).

make_config writes the config a test runs with, Smtphook runs the binary as a child process
(config in a temporary directory, stderr captured to a file) and run_binary runs it to
completion for the CLI tests. SANITIZER_MARKS are the words of a sanitizer report in its
stderr.

The binary is $SMTPHOOK_BIN (set by ctest) or <source>/build/smtphook; the source directory
is $SMTPHOOK_SOURCE_DIR or two levels above this file.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

from helpers import HOST
from smtp_client import ProtocolError, SMTPClient

SOURCE_DIR = os.environ.get("SMTPHOOK_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BINARY = os.environ.get("SMTPHOOK_BIN") or os.path.join(SOURCE_DIR, "build", "smtphook")

TOKEN = "itest-secret-token"  # value of ${TOKEN} in the default config
READY_TIMEOUT = 10.0  # seconds for smtphook to accept connections
STOP_TIMEOUT = 15.0  # seconds for smtphook to exit after SIGTERM
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                   "runtime error:")


def make_config(port, url, limits=None, endpoints=None, domains=None, retry=None, **top):
    """A complete config dict: listener on 127.0.0.1:port, endpoint "app" at url (unless
    endpoints is given; retry= sets its "retry"), short timeouts suited to tests, limits
    merged over the defaults."""
    lim = {
        "max_command_line_bytes": 2048,
        "max_recipients": 100,
        "max_message_bytes": 26214400,
        "idle_timeout_ms": 20000,
        "max_errors": 20,
        "max_connections": 1000,
        "max_connections_per_client": 50,
        "transaction_timeout_ms": 15000,
        "shutdown_timeout_ms": 5000,
    }
    lim.update(limits or {})
    if endpoints is None:
        endpoints = {"app": {"url": url, "timeout_ms": 10000, "connect_timeout_ms": 2000,
                             "headers": {"Authorization": "Bearer ${TOKEN}"}}}
        if retry is not None:
            endpoints["app"]["retry"] = retry
    cfg = {
        "hostname": "mx.test",
        "log_level": "info",
        "listeners": [{"address": "%s:%d" % (HOST, port)}],
        "domains": domains if domains is not None else ["example.com"],
        "endpoints": endpoints,
        "limits": lim,
        "spool": {"memory_bytes": 1048576, "directory": tempfile.gettempdir()},
    }
    cfg.update(top)
    return cfg


class Smtphook:
    """smtphook as a child process: config in a temp dir, stderr captured to a file."""

    def __init__(self, config=None, args=(), env=None, port=None):
        self.config = config
        self.args = list(args)
        self.env = dict(os.environ)
        self.env["TOKEN"] = TOKEN
        self.env.update(env or {})
        self.port = port
        if self.port is None and config is not None:
            self.port = int(config["listeners"][0]["address"].rsplit(":", 1)[1])
        self.dir = tempfile.mkdtemp(prefix="smtphook-itest-")
        self.config_path = os.path.join(self.dir, "config.json")
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.stdout_path = os.path.join(self.dir, "stdout.log")
        self.proc = None
        self.returncode = None
        self.killed = False  # stop() had to SIGKILL it
        self.crashed = False  # the test killed it on purpose (kill()): no clean exit due
        self.signalled = False  # the test sent a signal itself

    def command(self):
        cmd = [BINARY]
        if self.config is not None:
            cmd += ["--config", self.config_path]
        return cmd + self.args

    def start(self, wait=True):
        if not os.access(BINARY, os.X_OK):
            raise RuntimeError("smtphook binary not found: %s (set SMTPHOOK_BIN)" % BINARY)
        if self.config is not None:
            with open(self.config_path, "w", encoding="utf-8") as f:
                json.dump(self.config, f, indent=2)
        with open(self.stderr_path, "wb") as err, open(self.stdout_path, "wb") as out:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=err, env=self.env, cwd=self.dir)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=READY_TIMEOUT):
        """Poll until the port greets with 220; the probe says QUIT and waits for the close,
        so it no longer counts against connection limits when this returns."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("smtphook exited with %s before accepting connections:\n%s"
                                   % (self.proc.returncode, self.log()))
            try:
                c = SMTPClient(self.port, timeout=2.0, first=self.probe_header())
            except (OSError, ProtocolError) as e:
                last = e
                time.sleep(0.05)
                continue
            try:
                if c.banner.code != 220:
                    raise RuntimeError("unexpected banner: %s" % c.banner)
                c.cmd("QUIT")
                c.wait_closed(2.0)
            finally:
                c.close()
            return
        raise RuntimeError("smtphook did not accept connections on port %s within %ss (%s):\n%s"
                           % (self.port, timeout, last, self.log()))

    def probe_header(self):
        """What a probe sends first: on a PROXY listener the header of a load balancer's own
        check (v1 UNKNOWN, or v2 LOCAL), else nothing."""
        listeners = (self.config or {}).get("listeners") or [{}]
        mode = listeners[0].get("proxy_protocol", "none")
        if mode in ("v1", "any"):
            return b"PROXY UNKNOWN\r\n"
        if mode == "v2":
            return b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"
        return b""

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig=signal.SIGTERM):
        self.signalled = True
        self.proc.send_signal(sig)

    def kill(self, timeout=5.0):
        """SIGKILL, as a crash or an OOM kill would end it, and wait for the exit."""
        self.crashed = True
        self.proc.send_signal(signal.SIGKILL)
        return self.wait(timeout)

    def wait(self, timeout):
        """Wait for the exit; return the exit code or None on timeout."""
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, wait, kill after timeout (self.killed). Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                if self.signalled:  # a second SIGTERM may kill it: wait for the first
                    self.proc.wait(timeout)
                else:
                    self.proc.send_signal(signal.SIGTERM)
                    self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.killed = True
                self.proc.kill()
                self.proc.wait()
        self.returncode = self.proc.returncode
        return self.returncode

    def log(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_log(self, pattern, timeout=3.0):
        """Wait until a line matching the regex appears in stderr; return the matching lines."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            lines = [ln for ln in self.log().splitlines() if rx.search(ln)]
            if lines or time.monotonic() >= deadline:
                return lines
            time.sleep(0.05)

    def cleanup_dir(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def run_binary(args, env=None, unset=(), timeout=20):
    """Run smtphook to completion (CLI tests): CompletedProcess with text output. env adds
    variables, unset removes them."""
    e = dict(os.environ)
    e.update(env or {})
    for name in unset:
        e.pop(name, None)
    return subprocess.run([BINARY] + list(args), stdin=subprocess.DEVNULL,
                          capture_output=True, env=e, timeout=timeout, text=True,
                          errors="replace")
