"""test_admin.py - the admin port: /livez, /readyz and /healthz (unready while draining after
SIGTERM for shutdown_delay_ms, and with unready_when_endpoints_down while every breaker is
open), and /metrics in the Prometheus text format: values after known traffic (connections,
replies by command, messages and bytes, transactions by outcome, webhook requests by endpoint
and status, TLS handshakes, certificate expiry), checked by Debian's promtool.
"""

import os
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

from certs import CA
from helpers import HOST, admin_get as get, free_port, metric
from receiver import down_url
from smtphook_process import make_config
from testcase import SmtphookTestCase

SENDER = "sender@example.org"


class AdminCase(SmtphookTestCase):

    def start_admin(self, receiver=None, url=None, admin=None, **top):
        self.admin_port = free_port()
        port = free_port()
        cfg = make_config(port, url or receiver.url(), **top)
        cfg["admin"] = dict({"listen": "%s:%d" % (HOST, self.admin_port)}, **(admin or {}))
        return self.start_smtphook(config=cfg, port=port)


class AdminTest(AdminCase):

    def test_health_endpoints(self):
        r = self.start_receiver()
        self.start_admin(r)
        self.assertEqual(get(self.admin_port, "/livez"), (200, "ok\n"))
        self.assertEqual(get(self.admin_port, "/readyz"), (200, "ready\n"))
        self.assertEqual(get(self.admin_port, "/healthz"), (200, "ready\n"))
        self.assertEqual(get(self.admin_port, "/nope")[0], 404)
        req = urllib.request.Request("http://%s:%d/metrics" % (HOST, self.admin_port),
                                     data=b"x", method="POST")
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=5)
        self.assertEqual(e.exception.code, 405)

    def test_idle_connections_from_one_address_leave_room_for_probes(self):
        # 70 connections from 127.0.0.1 that send nothing: one address gets 16 of the 64
        # places, so a probe from another (the kubelet, Prometheus) is still answered.
        r = self.start_receiver()
        self.start_admin(r)
        held = []
        self.addCleanup(lambda: [c.close() for c in held])
        for _ in range(70):
            c = socket.socket()
            c.bind(("127.0.0.1", 0))
            c.connect((HOST, self.admin_port))
            held.append(c)
        c = socket.create_connection((HOST, self.admin_port), timeout=5,
                                     source_address=("127.0.0.2", 0))
        with c:
            c.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            got = b""
            while True:
                data = c.recv(4096)
                if not data:
                    break
                got += data
        self.assertTrue(got.startswith(b"HTTP/1.1 200"), got)
        self.assertTrue(got.endswith(b"ready\n"), got)

    def test_metrics_after_known_traffic(self):
        calls = []

        def responder(req):
            calls.append(req)
            return (200, [], 0) if len(calls) == 1 else (422, [], 0)

        r = self.start_receiver(responder=responder)
        self.start_admin(r)
        body = b"Subject: m\r\n\r\n" + b"x" * 5000 + b"\r\n"
        self.assertReply(self.send_mail(body), 250)
        self.assertReply(self.send_mail(body), 550)
        c = self.connect()
        self.assertReply(c.cmd("BOGUS"), 500)
        c.cmd("QUIT")
        status, text = get(self.admin_port, "/metrics")
        self.assertEqual(status, 200)
        self.assertEqual(metric(text, "smtphook_build_info", version="0.1.0"), 1)
        # three sessions, and the probe that waited for the start
        self.assertGreaterEqual(metric(text, "smtphook_connections_accepted_total"), 3)
        self.assertEqual(metric(text, "smtphook_messages_received_total"), 2)
        self.assertEqual(metric(text, "smtphook_received_bytes_total"), 2 * len(body))
        self.assertEqual(metric(text, "smtphook_message_size_bytes_count"), 2)
        self.assertEqual(metric(text, "smtphook_message_size_bytes_bucket", le="4096"), 0)
        self.assertEqual(metric(text, "smtphook_message_size_bytes_bucket", le="16384"), 2)
        self.assertEqual(metric(text, "smtphook_transactions_total", outcome="delivered"), 1)
        self.assertEqual(metric(text, "smtphook_transactions_total", outcome="rejected"), 1)
        self.assertEqual(metric(text, "smtphook_transactions_total", outcome="deferred"), 0)
        self.assertEqual(metric(text, "smtphook_webhook_requests_total", endpoint="app",
                                status="2xx"), 1)
        self.assertEqual(metric(text, "smtphook_webhook_requests_total", endpoint="app",
                                status="4xx"), 1)
        self.assertEqual(metric(text, "smtphook_webhook_request_duration_seconds_count",
                                endpoint="app"), 2)
        self.assertEqual(metric(text, "smtphook_smtp_replies_total", command="MAIL",
                                **{"class": "2xx"}), 2)
        self.assertEqual(metric(text, "smtphook_smtp_replies_total", command="DATA",
                                **{"class": "3xx"}), 2)
        self.assertEqual(metric(text, "smtphook_smtp_replies_total", command="DATA_END",
                                **{"class": "5xx"}), 1)
        self.assertEqual(metric(text, "smtphook_smtp_replies_total", command="unknown",
                                **{"class": "5xx"}), 1)
        self.assertIsNotNone(metric(text, "smtphook_connections_open"))
        self.promtool(text)

    def promtool(self, text):
        tool = shutil.which("promtool")
        if tool is None:
            self.skipTest("promtool not installed (apt-get install prometheus)")
        p = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual((p.stdout + p.stderr).strip(), "", "promtool's lint has complaints")

    def test_tls_handshakes_and_certificate_expiry(self):
        d = tempfile.mkdtemp(prefix="itest-admin-tls-")
        self.addCleanup(shutil.rmtree, d, True)
        cert, key = CA(d).issue("mx", names=("mx.test",))
        r = self.start_receiver()
        self.start_admin(r, tls={"certificates": [{"cert": cert, "key": key}]})
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with smtplib.SMTP(HOST, self.sh.port, timeout=10) as s:
            s.starttls(context=ctx)
            s.sendmail(SENDER, ["r@example.com"], b"Subject: tls\r\n\r\nhi\r\n")
        text = get(self.admin_port, "/metrics")[1]
        self.assertEqual(metric(text, "smtphook_tls_handshakes_total", version="TLSv1.3"), 1)
        expiry = metric(text, "smtphook_certificate_expiry_timestamp_seconds", index=0)
        out = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-in", cert],
                             capture_output=True, text=True).stdout.strip()
        when = time.mktime(time.strptime(out.split("=", 1)[1], "%b %d %H:%M:%S %Y GMT"))
        self.assertAlmostEqual(expiry, when - time.timezone, delta=1)
        self.promtool(text)


    def test_a_certificate_removed_by_a_reload_leaves_the_metrics(self):
        # Each certificate in use has its expiry series; one a reload removed has none, or an
        # alert on expiring certificates would fire for one no longer served.
        d = tempfile.mkdtemp(prefix="itest-admin-tls-")
        self.addCleanup(shutil.rmtree, d, True)
        ca = CA(d)
        one = dict(zip(("cert", "key"), ca.issue("mx", names=("mx.test",))))
        two = dict(zip(("cert", "key"), ca.issue("mx2", names=("mx2.test",))))
        r = self.start_receiver()
        self.start_admin(r, tls={"certificates": [one, two]})

        def expiries():
            text = get(self.admin_port, "/metrics")[1]
            return [metric(text, "smtphook_certificate_expiry_timestamp_seconds", index=i)
                    for i in range(3)]
        both = expiries()
        self.assertIsNotNone(both[0])
        self.assertIsNotNone(both[1])
        self.assertIsNone(both[2])
        self.reload(lambda cfg: cfg["tls"].update(certificates=[one]))
        self.assertEqual(expiries(), [both[0], None, None])


class LimitMetricsTest(AdminCase):

    def test_dropped_sessions_and_rate_limits(self):
        r = self.start_receiver()
        self.start_admin(r, limits={"max_junk_commands": 2, "command_timeout_ms": 1000,
                                    "messages_per_minute": 1, "max_errors": 2},
                         trusted_networks=[])
        c = self.connect()
        for _ in range(3):
            reply = c.cmd("NOOP")
        self.assertReply(reply, 421, "4.7.0")
        c = self.connect()
        c.send(b"EHL")  # never ends
        self.assertReply(c.read_reply(5), 421, "4.4.2")
        c = self.connect()
        self.assertReply(c.cmd("BOGUS"), 500)
        c.cmd("BOGUS")
        c = self.connect()
        self.ehlo(c)
        self.assertReply(self.transaction(c, SENDER, ["r@example.com"], b"Subject: 1\r\n\r\n1\r\n"),
                         250)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 451, "4.7.1")
        text = get(self.admin_port, "/metrics")[1]
        self.assertEqual(metric(text, "smtphook_connections_dropped_total", cause="junk_commands"),
                         1)
        self.assertEqual(metric(text, "smtphook_connections_dropped_total",
                                cause="command_timeout"), 1)
        self.assertEqual(metric(text, "smtphook_connections_dropped_total",
                                cause="too_many_errors"), 1)
        self.assertEqual(metric(text, "smtphook_rate_limited_total", kind="messages"), 1)


class ReadinessTest(AdminCase):

    def test_sigterm_turns_unready_before_the_listeners_close(self):
        r = self.start_receiver()
        sh = self.start_admin(r, limits={"shutdown_delay_ms": 1500})
        sh.signal(signal.SIGTERM)
        time.sleep(0.3)
        self.assertEqual(get(self.admin_port, "/readyz"), (503, "not ready: draining\n"))
        self.assertEqual(get(self.admin_port, "/livez")[0], 200)
        # the listener still takes mail during the delay
        self.assertReply(self.send_mail(), 250)
        self.assertEqual(sh.wait(10), 0, sh.log())
        self.assertIn("unready, stopping in 1500 ms", sh.log())

    def test_unready_while_every_endpoint_is_down(self):
        self.start_admin(url=down_url(), admin={"unready_when_endpoints_down": True},
                         endpoints={"app": {"url": down_url(), "retry": {"max_attempts": 1},
                                            "breaker": {"failures": 1, "cooldown_ms": 60000}}})
        self.assertEqual(get(self.admin_port, "/readyz")[0], 200)
        self.assertReply(self.send_mail(), 451)
        self.assertEqual(get(self.admin_port, "/readyz"),
                         (503, "not ready: every endpoint's circuit breaker is open\n"))


if __name__ == "__main__":
    unittest.main()
