"""harness.py - shared pieces of the integration tests (Python standard library only).

A recording HTTP(S) receiver (the web app), the smtphook process under test, a raw SMTP client
that works at the byte level, and a TestCase base class that wires them together and cleans
up after every test. Everything talks over 127.0.0.1.

The binary is $SMTPHOOK_BIN (set by ctest) or <source>/build/smtphook; the source directory
is $SMTPHOOK_SOURCE_DIR or two levels above this file.
"""

import hashlib
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from helpers import HOST, free_port
from smtp_client import Closed, ProtocolError, SMTPClient, dot_stuff

SOURCE_DIR = os.environ.get("SMTPHOOK_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BINARY = os.environ.get("SMTPHOOK_BIN") or os.path.join(SOURCE_DIR, "build", "smtphook")

TOKEN = "itest-secret-token"  # value of ${TOKEN} in the default config
READY_TIMEOUT = 10.0  # seconds for smtphook to accept connections
STOP_TIMEOUT = 15.0  # seconds for smtphook to exit after SIGTERM
KEEP_BODY_MAX = 2 * 1024 * 1024  # receiver keeps bodies up to this size; larger: hash only
HANDSHAKE_TIMEOUT = 10.0  # seconds the HTTPS receiver waits for a TLS handshake
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                   "runtime error:")


def down_url(path="/inbound"):
    """An endpoint URL where nothing listens: connection refused."""
    return "http://%s:%d%s" % (HOST, free_port(), path)


# --------------------------------------------------------------------------------------------
# The receiver: a real HTTP/1.1 server that records every request.
# --------------------------------------------------------------------------------------------

class Request:
    """One request the receiver saw."""

    def __init__(self, method, path, headers, body, length, sha256, arrived, client_port,
                 client_cert=None):
        self.method = method  # "POST"
        self.path = path  # request target, e.g. "/inbound"
        self.headers = headers  # http.client.HTTPMessage (case-insensitive .get)
        self.body = body  # bytes, or None when larger than KEEP_BODY_MAX or not read
        self.length = length  # body bytes read
        self.sha256 = sha256  # hex digest of the body read
        self.arrived = arrived  # time.monotonic() when the request line arrived
        self.client_port = client_port  # smtphook's TCP source port (connection reuse)
        # HTTPS: the client certificate smtphook presented, as ssl.getpeercert() gives it
        # (None without one, or over plain HTTP)
        self.client_cert = client_cert

    def client_subject(self):
        """The client certificate's subject as {"commonName": ..., ...}, or None."""
        if not self.client_cert:
            return None
        return {k: v for rdn in self.client_cert.get("subject", ()) for k, v in rdn}

    def header(self, name):
        return self.headers.get(name)

    def envelope(self):
        """The X-Smtphook-Envelope header decoded as JSON."""
        return json.loads(self.headers["X-Smtphook-Envelope"])

    def __repr__(self):
        return "<Request %s %s len=%d id=%s>" % (self.method, self.path, self.length,
                                                 self.headers.get("X-Smtphook-Id"))


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse can be observed
    server_version = "itest-receiver"
    sys_version = ""

    def log_message(self, fmt, *args):  # quiet
        pass

    def setup(self):
        # HTTPS: the handshake runs here, in the connection's own thread, so a client that
        # never completes it holds up nobody else. A failed handshake raises: handle_error
        # keeps the exception in receiver.errors and no request is recorded.
        self.client_cert = None
        ctx = self.server.receiver.ssl_context
        if ctx is not None:
            self.request.settimeout(HANDSHAKE_TIMEOUT)
            self.request = ctx.wrap_socket(self.request, server_side=True)
            self.request.settimeout(None)
            self.client_cert = self.request.getpeercert()
        super().setup()
        self.server.receiver._track(self.connection, True)

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.receiver._track(self.connection, False)
            if self.server.receiver.ssl_context is not None:
                # the server closes the plain socket it accepted, which wrap_socket detached
                try:
                    self.request.close()
                except OSError:
                    pass

    def do_POST(self):
        self._handle()

    do_GET = do_PUT = do_DELETE = do_PATCH = do_POST

    def _read_body(self):
        """Read the body by Content-Length (or chunked, to see what arrives); hash it."""
        h = hashlib.sha256()
        kept = []
        total = 0

        def take(data):
            nonlocal total
            h.update(data)
            total += len(data)
            if total <= KEEP_BODY_MAX:
                kept.append(data)

        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                left = size
                while left:
                    data = self.rfile.read(min(left, 65536))
                    if not data:
                        raise ConnectionError("eof in chunk")
                    take(data)
                    left -= len(data)
                self.rfile.readline()
        else:
            left = int(self.headers.get("Content-Length") or 0)
            while left:
                data = self.rfile.read(min(left, 65536))
                if not data:
                    raise ConnectionError("eof in body")
                take(data)
                left -= len(data)
        body = b"".join(kept) if total <= KEEP_BODY_MAX else None
        return body, total, h.hexdigest()

    def _respond(self, status, extra=(), close=False):
        body = b"" if status in (204, 304) or status < 200 else b"ok\n"
        self.send_response(status)
        for name, value in extra:
            self.send_header(name, value)
        if status not in (204, 304):
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if body:
            self.wfile.write(body)
        self.wfile.flush()

    def _handle(self):
        rcv = self.server.receiver
        arrived = time.monotonic()
        b = rcv.behaviour()
        port = self.client_address[1]
        if b["mode"] == "early":
            # Answer before reading the body, then drop the connection (the rest of the body
            # is never read: the sender must notice the body did not get through).
            rcv._record(Request(self.command, self.path, self.headers, None, 0, "", arrived,
                                port, self.client_cert))
            self._respond(b["status"], close=True)
            return
        body, length, digest = self._read_body()
        rcv._record(Request(self.command, self.path, self.headers, body, length, digest,
                            arrived, port, self.client_cert))
        if b["mode"] == "close":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if b["delay"] > 0 and rcv._stopping.wait(b["delay"]):
            self.close_connection = True
            return
        extra = []
        if b["status"] in (301, 302, 303, 307, 308):
            extra.append(("Location", b["redirect"] or rcv.url("/redirected")))
        self._respond(b["status"], extra)
        if b["mode"] == "drop":
            # keep-alive promised, connection dropped anyway (an app server's idle reaper)
            self.close_connection = True


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # listen backlog: smtphook may open many connections at once

    def handle_error(self, request, client_address):
        # A peer that goes away (a cancelled delivery) is part of some tests: keep the
        # error for inspection instead of printing a traceback.
        self.receiver.errors.append(sys.exc_info()[1])


class Receiver:
    """The web app: records every request; behaviour switchable at any time.

    status: the HTTP status to answer; delay: seconds to wait before answering;
    redirect: Location for 3xx; mode: "normal", "close" (read the request, close without an
    answer), "early" (answer before reading the body, then close) or "drop" (answer, then
    close without announcing it). ssl_context: an ssl.SSLContext (server side) to serve
    HTTPS with; None (the default) serves plain HTTP."""

    def __init__(self, status=200, delay=0.0, redirect=None, mode="normal", ssl_context=None):
        self.ssl_context = ssl_context
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._requests = []
        self.errors = []  # exceptions raised in handler threads
        self._conns = set()
        self._behaviour = {"status": status, "delay": delay, "redirect": redirect,
                           "mode": mode}
        self._stopping = threading.Event()
        self._server = None
        self._thread = None
        self.port = None

    def start(self):
        self._server = _Server((HOST, 0), _Handler)
        self._server.receiver = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        with self._lock:
            conns = list(self._conns)
        for c in conns:  # wake handler threads blocked on keep-alive reads
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._server.server_close()
        self._thread.join(5)
        self._server = None

    def url(self, path="/inbound", host=HOST):
        scheme = "https" if self.ssl_context is not None else "http"
        return "%s://%s:%d%s" % (scheme, host, self.port, path)

    def set(self, **kw):
        """Change behaviour: status=, delay=, redirect=, mode=."""
        with self._lock:
            for k, v in kw.items():
                if k not in self._behaviour:
                    raise KeyError(k)
                self._behaviour[k] = v

    def behaviour(self):
        with self._lock:
            return dict(self._behaviour)

    @property
    def requests(self):
        with self._lock:
            return list(self._requests)

    def wait_for(self, n, timeout=10.0):
        """Wait until at least n requests arrived; return all of them (maybe fewer)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return list(self._requests)

    def _record(self, req):
        with self._cond:
            self._requests.append(req)
            self._cond.notify_all()

    def _track(self, conn, add):
        with self._lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)


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
