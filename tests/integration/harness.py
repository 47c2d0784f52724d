"""harness.py - shared pieces of the integration tests (Python standard library only).

A recording HTTP(S) receiver (the web app), the smtphook process under test, a raw SMTP client
that works at the byte level, and a TestCase base class that wires them together and cleans
up after every test. Everything talks over 127.0.0.1.

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
import unittest

from helpers import HOST, free_port
from receiver import Receiver
from smtp_client import Closed, ProtocolError, SMTPClient, dot_stuff

SOURCE_DIR = os.environ.get("SMTPHOOK_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BINARY = os.environ.get("SMTPHOOK_BIN") or os.path.join(SOURCE_DIR, "build", "smtphook")

TOKEN = "itest-secret-token"  # value of ${TOKEN} in the default config
READY_TIMEOUT = 10.0  # seconds for smtphook to accept connections
STOP_TIMEOUT = 15.0  # seconds for smtphook to exit after SIGTERM
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                   "runtime error:")


# --------------------------------------------------------------------------------------------
# The process under test.
# --------------------------------------------------------------------------------------------

def make_config(port, url, limits=None, endpoints=None, domains=None, **top):
    """A complete config dict: listener on 127.0.0.1:port, endpoint "app" at url (unless
    endpoints is given), short timeouts suited to tests, limits merged over the defaults."""
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
                c = SMTPClient(self.port, timeout=2.0)
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

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig=signal.SIGTERM):
        self.signalled = True
        self.proc.send_signal(sig)

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


# --------------------------------------------------------------------------------------------
# TestCase base class.
# --------------------------------------------------------------------------------------------

class SmtphookTestCase(unittest.TestCase):
    """Starts receivers and smtphook for a test and stops everything afterwards."""

    def start_receiver(self, **behaviour):
        r = Receiver(**behaviour).start()
        self.addCleanup(r.stop)
        return r

    def start_smtphook(self, receiver=None, url=None, limits=None, endpoints=None,
                       config=None, args=(), env=None, **top):
        """Start smtphook with make_config(...) (or the given config dict, or config=False for
        args only, then port= must be in top)."""
        port = top.pop("port", None)
        if config is None:
            port = port or free_port()
            if url is None and receiver is not None:
                url = receiver.url()
            config = make_config(port, url, limits=limits, endpoints=endpoints, **top)
        elif config is False:
            config = None
        sh = Smtphook(config, args=args, env=env, port=port)
        self.addCleanup(sh.cleanup_dir)
        self.addCleanup(self._stop_smtphook, sh)
        sh.start()
        self.sh = sh
        return sh

    def _stop_smtphook(self, sh):
        rc = sh.stop()
        log = sh.log()
        marks = [m for m in SANITIZER_MARKS if m in log]
        if marks:
            self.fail("sanitizer report in smtphook's stderr:\n" + log[-6000:])
        if sh.killed:
            self.fail("smtphook did not exit within %ss after SIGTERM:\n%s"
                      % (STOP_TIMEOUT, log[-3000:]))
        if rc is not None and rc != 0:
            self.fail("smtphook exited with %s after SIGTERM:\n%s" % (rc, log[-3000:]))

    def connect(self, sh=None, **kw):
        sh = sh or self.sh
        c = SMTPClient(sh.port, **kw)
        self.addCleanup(c.close)
        return c

    # -- assertions ---------------------------------------------------------------------

    def assertReply(self, reply, code, esc=None, msg=None):
        self.assertEqual(reply.code, code, msg or "reply %s" % reply)
        if esc is not None:
            if esc.endswith("."):  # class prefix, e.g. "4."
                self.assertTrue(reply.esc and reply.esc.startswith(esc),
                                msg or "enhanced code %s expected in %s" % (esc, reply))
            else:
                self.assertEqual(reply.esc, esc, msg or "reply %s" % reply)

    def assertNoRequests(self, receiver, settle=0.5):
        time.sleep(settle)
        self.assertEqual(receiver.requests, [], "nothing should have been posted")

    def assertIdInReply(self, rid, reply):
        self.assertIsNotNone(rid)
        self.assertRegex(reply.text, r"(?<![\w.])" + re.escape(rid) + r"(?![\w.])",
                         "transaction id %s not in reply %s" % (rid, reply))

    # -- SMTP helpers -------------------------------------------------------------------

    def ehlo(self, c, name="client.test"):
        r = c.cmd("EHLO " + name)
        self.assertReply(r, 250)
        return r

    def transaction(self, c, mail_from, rcpts, body, mail_params="", raw_data=None,
                    reply_timeout=None):
        """MAIL, RCPT..., DATA, body (dot-stuffed unless raw_data gives the exact bytes to
        send after 354, terminator included); returns the reply to the final dot."""
        self.send_message(c, mail_from, rcpts, body, mail_params, raw_data)
        return c.read_reply(reply_timeout)

    def send_message(self, c, mail_from, rcpts, body, mail_params="", raw_data=None):
        """Like transaction, without waiting for the reply to the final dot."""
        r = c.cmd("MAIL FROM:<%s>%s" % (mail_from, (" " + mail_params) if mail_params else ""))
        self.assertReply(r, 250, msg="MAIL: %s" % r)
        for rcpt in rcpts:
            r = c.cmd("RCPT TO:<%s>" % rcpt)
            self.assertReply(r, 250, msg="RCPT %s: %s" % (rcpt, r))
        r = c.cmd("DATA")
        self.assertReply(r, 354, msg="DATA: %s" % r)
        c.send(raw_data if raw_data is not None else dot_stuff(body))

    def send_mail(self, body=b"Subject: test\r\n\r\nhello\r\n", mail_from="sender@example.org",
                  rcpts=("rcpt@example.com",), mail_params="", sh=None, quit=True, **kw):
        """A whole session on a new connection: EHLO, one transaction, QUIT."""
        c = self.connect(sh)
        self.ehlo(c)
        r = self.transaction(c, mail_from, rcpts, body, mail_params, **kw)
        if quit:
            try:
                c.cmd("QUIT")
            except (Closed, OSError):
                pass
            c.close()
        return r
