"""test_stream.py - endpoints with "stream": the POST starts when the message starts (DATA's
354, the first BDAT chunk) and carries the body chunked as it arrives; the reply after the
final dot is still the endpoint's answer; a message that must not be delivered (too big, a
BDAT error, the client gone) leaves its request unterminated, which real receivers drop
(Python's http.server here, Node.js, nginx in front of an app); what depends on the whole
body (Idempotency-Key, the size) comes as trailers; a retry is an ordinary request from the
spool.
"""

import base64
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

import receiver
from helpers import HOST, free_port
from node_receiver import NodeReceiver, body as node_body
from smtphook_process import make_config
from testcase import SmtphookTestCase

receiver.KEEP_BODY_MAX = 64 * 1024 * 1024
SENDER = "sender@example.org"
KEY_RE = r"^[0-9a-f]{64}$"
PIECE = (b"0123456789abcdef" * 63 + b"\r\n") * 64  # 64 KiB of lines


class StreamCase(SmtphookTestCase):

    def start_stream(self, url, fmt="raw", max_bytes=40 * 1024 * 1024, **settings):
        ep = {"url": url, "stream": True, "format": fmt, "timeout_ms": 10000,
              "connect_timeout_ms": 2000, "retry": {"max_attempts": 1}}
        ep.update(settings)
        port = free_port()
        cfg = make_config(port, None, endpoints={"app": ep},
                          limits={"max_message_bytes": max_bytes})
        self.start_smtphook(config=cfg, port=port)

    def data_slowly(self, c, head, pieces, pause=0.05):
        """DATA, then the message in pieces with pauses between them; returns the time the
        final dot was sent (time.monotonic())."""
        self.assertReply(c.cmd("DATA"), 354)
        c.send(head)
        for _ in range(pieces):
            time.sleep(pause)
            c.send(PIECE)
        time.sleep(pause)
        c.send(b".\r\n")
        return time.monotonic()

    def begin(self, rcpts=("rcpt@example.com",)):
        c = self.connect()
        self.ehlo(c)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        for a in rcpts:
            self.assertReply(c.cmd("RCPT TO:<%s>" % a), 250)
        return c


class StreamTest(StreamCase):

    def test_post_starts_before_the_final_dot_and_carries_the_body(self):
        r = self.start_receiver()
        self.start_stream(r.url())
        c = self.begin()
        head = b"Subject: streamed\r\n\r\n"
        dot_at = self.data_slowly(c, head, 20)
        self.assertReply(c.read_reply(10), 250)
        req = r.requests[0]
        self.assertLess(req.arrived, dot_at - 0.5, "the request began while the body came")
        self.assertEqual(req.header("Transfer-Encoding"), "chunked")
        self.assertIsNone(req.header("Content-Length"))
        self.assertEqual(req.body, head + PIECE * 20)
        env = req.envelope()
        self.assertIsNone(env["size"])
        self.assertNotIn("key", env)
        self.assertRegex(req.trailers["idempotency-key"], KEY_RE)
        self.assertEqual(req.trailers["x-smtphook-size"], str(len(req.body)))
        self.assertEqual(req.header("Trailer"), "Idempotency-Key, X-Smtphook-Size")

    def test_json_streamed(self):
        r = self.start_receiver()
        self.start_stream(r.url(), fmt="json")
        c = self.begin()
        head = b"Subject: json\r\n\r\n"
        self.data_slowly(c, head, 5)
        self.assertReply(c.read_reply(10), 250)
        doc = json.loads(r.requests[0].body)
        self.assertEqual(base64.b64decode(doc["message"], validate=True), head + PIECE * 5)
        self.assertIsNone(doc["envelope"]["size"])

    def test_key_is_the_same_as_unstreamed(self):
        """The trailer's key is the one the message would have had in one request: a
        retry from the spool (Content-Length, key in the headers) carries the same."""
        calls = []

        def responder(req):
            calls.append(req)
            return (503, [], 0) if len(calls) == 1 else (200, [], 0)

        r = self.start_receiver(responder=responder)
        self.start_stream(r.url(), retry={"max_attempts": 2, "initial_backoff_ms": 10,
                                          "max_backoff_ms": 10})
        c = self.begin()
        self.data_slowly(c, b"Subject: retry\r\n\r\n", 3)
        self.assertReply(c.read_reply(10), 250)
        first, second = r.requests
        self.assertEqual(first.header("Transfer-Encoding"), "chunked")
        self.assertEqual(int(second.header("Content-Length")), len(second.body))
        self.assertEqual(first.trailers["idempotency-key"], second.header("Idempotency-Key"))
        self.assertEqual(first.body, second.body)

    def test_bdat_streamed(self):
        r = self.start_receiver()
        self.start_stream(r.url())
        c = self.begin()
        for i in range(11):
            chunk = b"Subject: bdat\r\n\r\n" if i == 0 else PIECE
            c.send(b"BDAT %d\r\n" % len(chunk) + chunk)
            self.assertReply(c.read_reply(), 250)
            time.sleep(0.1)
        last_at = time.monotonic()
        c.send(b"BDAT 0 LAST\r\n")
        self.assertReply(c.read_reply(10), 250)
        req = r.requests[0]
        self.assertLess(req.arrived, last_at - 0.5, "the request began while the chunks came")
        self.assertEqual(req.header("Transfer-Encoding"), "chunked")
        self.assertEqual(req.body, b"Subject: bdat\r\n\r\n" + PIECE * 10)

    def test_other_endpoint_gets_the_whole_message_after_the_dot(self):
        streamed = self.start_receiver()
        whole = self.start_receiver()
        port = free_port()
        eps = {"s": {"url": streamed.url(), "stream": True, "retry": {"max_attempts": 1}},
               "w": {"url": whole.url(), "retry": {"max_attempts": 1}}}
        self.start_smtphook(config=make_config(port, None, endpoints=eps), port=port)
        c = self.begin()
        dot_at = self.data_slowly(c, b"Subject: two\r\n\r\n", 10)
        self.assertReply(c.read_reply(10), 250)
        self.assertLess(streamed.requests[0].arrived, dot_at - 0.2)
        self.assertGreaterEqual(whole.requests[0].arrived, dot_at - 0.05)
        self.assertEqual(streamed.requests[0].body, whole.requests[0].body)
        self.assertEqual(streamed.requests[0].trailers["idempotency-key"],
                         whole.requests[0].header("Idempotency-Key"))

    def test_early_2xx_is_no_delivery(self):
        """An endpoint that answers 200 before the body ended did not get the message."""
        r = self.start_receiver(mode="early", status=200)
        self.start_stream(r.url())
        c = self.begin()
        self.data_slowly(c, b"Subject: early\r\n\r\n", 5)
        self.assertReply(c.read_reply(10), 451)


class Cuts:
    """The ways a streamed message is cut off mid-body, each driven over SMTP, and a
    complete one beside them. A test class mixes this in with StreamCase and says how to
    start its app (start_app: the URL to stream to) and what the app saw: the request began
    and ended inside its body, and the app got nothing complete (assertCutOff; body is the
    message's start, which the app had begun to receive); or the complete request
    (assertDelivered)."""

    def test_complete_passes(self):
        self.start_stream(self.start_app(), max_bytes=200000)
        c = self.begin()
        head = b"Subject: ok\r\n\r\n"
        self.data_slowly(c, head, 2)
        self.assertReply(c.read_reply(10), 250)
        self.assertDelivered(head + PIECE * 2)

    def test_too_big(self):
        self.start_stream(self.start_app(), max_bytes=200000)
        c = self.begin()
        head = b"Subject: big\r\n\r\n"
        self.data_slowly(c, head, 6)
        self.assertReply(c.read_reply(10), 552)
        self.assertCutOff(head)

    def test_client_gone(self):
        self.start_stream(self.start_app())
        c = self.begin()
        self.assertReply(c.cmd("DATA"), 354)
        head = b"Subject: gone\r\n\r\n"
        c.send(head + PIECE * 3)
        time.sleep(0.2)
        c.close()
        self.assertTrue(self.sh.wait_log(r"txn id=\S+ abandoned"), self.sh.log())
        self.assertCutOff(head)

    def test_bdat_error(self):
        """A malformed BDAT after a chunk: 501, and the message with a hole is dropped."""
        self.start_stream(self.start_app())
        c = self.begin()
        head = b"Subject: x\r\n\r\nabcdef"
        c.send(b"BDAT %d\r\n" % len(head) + head)
        self.assertReply(c.read_reply(), 250)
        time.sleep(0.3)  # the request is under way
        c.send(b"BDAT 6 BOGUS\r\nghijkl")
        self.assertReply(c.read_reply(), 501)
        self.assertCutOff(head)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)  # the session goes on

    def test_rset_mid_way(self):
        self.start_stream(self.start_app())
        c = self.begin()
        head = b"Subject: x\r\n\r\nabcdef"
        c.send(b"BDAT %d\r\n" % len(head) + head)
        self.assertReply(c.read_reply(), 250)
        time.sleep(0.3)  # the request is under way
        self.assertReply(c.cmd("RSET"), 250)  # the message is dropped mid-way
        self.assertCutOff(head)


class StreamAbortTest(Cuts, StreamCase):
    """Python's http.server: its chunked reader raises when the connection ends inside the
    body."""

    def start_app(self):
        self.app = self.start_receiver()
        return self.app.url()

    def assertDelivered(self, body):
        self.assertEqual([q.body for q in self.app.requests], [body])
        self.assertEqual(self.app.errors, [])

    def assertCutOff(self, body):
        """The request began (the receiver read its head) and its body was cut off: the
        receiver saw the connection end inside the chunked body, and recorded nothing."""
        r = self.app
        deadline = time.monotonic() + 5
        while not r.errors and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(any(isinstance(e, ConnectionError) for e in r.errors), r.errors)
        self.assertEqual(r.requests, [], "no complete request may reach the app")


class NodeAbortTest(Cuts, StreamCase):
    """Node.js's http server: the request emits 'close' without 'end' (req.complete false);
    the receiver records it as aborted, with the body bytes that came."""

    def start_app(self):
        self.node = NodeReceiver()
        self.node.start()
        self.addCleanup(self.node.stop)
        return self.node.url()

    def assertDelivered(self, body):
        reqs = self.node.wait_requests(1)
        self.assertEqual([node_body(q) for q in reqs], [body])
        self.assertEqual(reqs[0]["headers"]["transfer-encoding"], "chunked")
        self.assertEqual(self.node.aborted(), [])

    def assertCutOff(self, body):
        got = self.node.wait_aborted(1)
        self.assertEqual(len(got), 1, got)
        a = got[0]
        self.assertEqual((a["method"], a["path"]), ("POST", "/inbound"))
        self.assertEqual(a["headers"]["transfer-encoding"], "chunked")
        self.assertGreaterEqual(a["body_bytes_received"], len(body))
        self.assertTrue(node_body(a).startswith(body), a)
        self.assertEqual(self.node.requests(), [], "no complete request may reach the app")


# nginx 1.22 logs "client prematurely closed connection, client: ...", later ones "... while
# reading client request body"
NGINX_CUT = re.compile(r"\[info\] .*client prematurely closed connection\b.*"
                       r"request: \"POST /inbound HTTP/1\.1\"")


class NginxAbortTest(Cuts, StreamCase):
    """nginx in front of an app (request buffering on, its default): it reads the whole body
    before it passes the request on, logs the connection that ended inside it, and the app
    behind gets nothing."""

    def start_app(self):
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        if not os.path.exists(nginx):
            self.skipTest("nginx not installed (apt-get install nginx-light)")
        self.app = self.start_receiver()
        port = free_port()
        d = tempfile.mkdtemp(prefix="itest-nginx-")
        os.chmod(d, 0o755)  # its workers (user nobody when started as root) write there
        self.addCleanup(shutil.rmtree, d, True)
        self.error_log = os.path.join(d, "error.log")
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write("""daemon off; pid %(d)s/nginx.pid; error_log %(d)s/error.log info;
events {}
http {
  access_log %(d)s/access.log;
  client_body_temp_path %(d)s/body; proxy_temp_path %(d)s/proxy;
  fastcgi_temp_path %(d)s/f; uwsgi_temp_path %(d)s/u; scgi_temp_path %(d)s/s;
  client_max_body_size 100m;
  server {
    listen %(host)s:%(port)d;
    location / { proxy_pass http://%(host)s:%(app)d; proxy_http_version 1.1; }
  }
}
""" % {"d": d, "host": HOST, "port": port, "app": self.app.port})
        proc = subprocess.Popen([nginx, "-c", conf, "-p", d], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        self.addCleanup(proc.wait, 10)
        self.addCleanup(proc.terminate)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection((HOST, port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.fail("nginx did not start")
                time.sleep(0.05)
        return "http://%s:%d/inbound" % (HOST, port)

    def cut_lines(self):
        with open(self.error_log, errors="replace") as f:
            return [line for line in f if NGINX_CUT.search(line)]

    def assertDelivered(self, body):
        self.assertEqual([q.body for q in self.app.requests], [body])
        self.assertEqual(self.cut_lines(), [])

    def assertCutOff(self, body):
        deadline = time.monotonic() + 5
        while not self.cut_lines() and time.monotonic() < deadline:
            time.sleep(0.05)
        with open(self.error_log, errors="replace") as f:
            log = f.read()
        self.assertEqual(len(self.cut_lines()), 1, log)
        time.sleep(0.2)
        self.assertEqual(self.app.requests, [], "no complete request may reach the app")


class StreamConfigTest(unittest.TestCase):

    def test_stream_cannot_be_signed(self):
        from test_formats import SECRET_A, check_config
        r = check_config(self, {"url": "http://127.0.0.1:9/in", "stream": True,
                                "signing": {"scheme": "standard-webhooks",
                                            "secrets": [SECRET_A]}})
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("endpoints.app.stream: cannot be true with \"signing\"", r.stderr)
        r = check_config(self, {"url": "http://127.0.0.1:9/in", "stream": True,
                                "preset": "sendgrid",
                                "basic_auth": {"user": "u", "password": "p"}})
        self.assertIn("cannot be true with the \"sendgrid\" preset", r.stderr)


if __name__ == "__main__":
    unittest.main()
