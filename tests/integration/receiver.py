"""receiver.py - the web app of the integration tests (Python standard library only).

A real HTTP/1.1 server that records every request smtphook sends it and answers as the test
says (status, delay, redirect, or a way of closing the connection), over plain HTTP or HTTPS.
down_url gives an endpoint where nothing listens.
"""

import hashlib
import http.server
import json
import socket
import sys
import threading
import time

from helpers import HOST, free_port

KEEP_BODY_MAX = 2 * 1024 * 1024  # receiver keeps bodies up to this size; larger: hash only
HANDSHAKE_TIMEOUT = 10.0  # seconds the HTTPS receiver waits for a TLS handshake


class Request:
    """One request the receiver saw."""

    def __init__(self, method, path, headers, body, length, sha256, arrived, client_port,
                 client_cert=None, trailers=None):
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
        # a chunked body's trailer fields, {lower-case name: value}
        self.trailers = trailers or {}

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

        trailers = {}
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            while True:
                line = self.rfile.readline()
                if not line:
                    raise ConnectionError("eof before a chunk")
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while True:
                        line = self.rfile.readline()
                        if not line:
                            raise ConnectionError("eof in the trailers")
                        if line in (b"\r\n", b"\n"):
                            break
                        name, _, value = line.decode("latin-1").partition(":")
                        trailers[name.strip().lower()] = value.strip()
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
        self.trailers = trailers
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
        req = Request(self.command, self.path, self.headers, body, length, digest, arrived,
                      port, self.client_cert, self.trailers)
        rcv._record(req)
        if b["mode"] == "close":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        status, extra, delay = b["status"], [], b["delay"]
        if b["responder"] is not None:
            # A test's own answer for this request: (status, [(header, value)...], delay).
            status, extra, delay = b["responder"](req)
            extra = list(extra)
        if delay > 0 and rcv._stopping.wait(delay):
            self.close_connection = True
            return
        if status in (301, 302, 303, 307, 308):
            extra.append(("Location", b["redirect"] or rcv.url("/redirected")))
        self._respond(status, extra)
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
    close without announcing it). responder: None, or a function of the Request (called in
    the handler's thread, after the body was read) that returns (status, [(header, value),
    ...], delay) for it: scripted answers, per-path or per-attempt behaviour, extra response
    headers. ssl_context: an ssl.SSLContext (server side) to serve HTTPS with; None (the
    default) serves plain HTTP. port: where to listen (0, the default: any free port); a
    fixed one lets an endpoint come up at an address smtphook was already given."""

    def __init__(self, status=200, delay=0.0, redirect=None, mode="normal", ssl_context=None,
                 responder=None, port=0):
        self.ssl_context = ssl_context
        self._want_port = port
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._requests = []
        self.errors = []  # exceptions raised in handler threads
        self._conns = set()
        self._behaviour = {"status": status, "delay": delay, "redirect": redirect,
                           "mode": mode, "responder": responder}
        self._stopping = threading.Event()
        self._server = None
        self._thread = None
        self.port = None

    def start(self):
        self._server = _Server((HOST, self._want_port), _Handler)
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
        """Change behaviour: status=, delay=, redirect=, mode=, responder=."""
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


def down_url(path="/inbound"):
    """An endpoint URL where nothing listens: connection refused."""
    return "http://%s:%d%s" % (HOST, free_port(), path)
