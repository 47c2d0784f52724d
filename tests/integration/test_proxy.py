"""test_proxy.py - listeners behind a TCP load balancer: the PROXY protocol header (v1 text,
v2 binary) names the real client, which then is the envelope's client, the log's and the
per-client limit's; only trusted proxies may send it; a connection without a valid header in
time is closed without a word (each counted in smtphook_connections_refused_total: untrusted_proxy,
bad_proxy_header, proxy_timeout); the balancer's own health checks (LOCAL, UNKNOWN) are served.
And a real HAProxy (Debian's haproxy) in front of two smtphook processes, one backend with
send-proxy-v2 and one with send-proxy, health checks sending PROXY too.
"""

import os
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import time
import unittest

from certs import CA
from helpers import HOST, free_port
from smtp_client import SMTPClient
from smtphook_process import make_config
from testcase import SmtphookTestCase

SENDER = "sender@example.org"
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2_header(src, sport, dst="192.0.2.1", dport=25, local=False, tlvs=b""):
    """A PROXY v2 header for TCP over IPv4 or IPv6 (by the address' text), or LOCAL."""
    if local:
        return V2_SIG + bytes([0x20, 0x00]) + struct.pack("!H", 0)
    if ":" in src:
        addrs = socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
        fam = 0x21
    else:
        addrs = socket.inet_pton(socket.AF_INET, src) + socket.inet_pton(socket.AF_INET, dst)
        fam = 0x11
    block = addrs + struct.pack("!HH", sport, dport) + tlvs
    return V2_SIG + bytes([0x21, fam]) + struct.pack("!H", len(block)) + block


def raw_connect(port, source=None):
    s = socket.create_connection((HOST, port), timeout=5,
                                 source_address=(source, 0) if source else None)
    return s


def closed_without_a_word(s, timeout=5.0):
    """True when the peer closes the socket having sent nothing."""
    s.settimeout(timeout)
    try:
        data = s.recv(4096)
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False
    return data == b""


class ProxyCase(SmtphookTestCase):

    def start_proxied(self, mode="any", trusted=("127.0.0.1",), receiver=None, listener=None,
                      **top):
        self.r = receiver or self.start_receiver()
        port = free_port()
        cfg = make_config(port, self.r.url(), **top)
        cfg["listeners"][0].update({"proxy_protocol": mode, "trusted_proxies": list(trusted),
                                    "proxy_timeout_ms": 1000})
        cfg["listeners"][0].update(listener or {})
        self.start_smtphook(config=cfg, port=port)
        return port

    def mail_through(self, s):
        """A whole session on s (its PROXY header sent): the reply to the final dot."""
        c = SMTPClient(None, sock=s, timeout=10)
        self.assertEqual(c.banner.code, 220)
        self.assertReply(c.cmd("EHLO client.test"), 250)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        self.assertReply(c.cmd("RCPT TO:<rcpt@example.com>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(b"Subject: proxied\r\n\r\nhi\r\n.\r\n")
        reply = c.read_reply()
        c.cmd("QUIT")
        s.close()
        return reply


class ProxyHeaderTest(ProxyCase):

    def test_v1_names_the_client(self):
        port = self.start_proxied("v1")
        s = raw_connect(port)
        s.sendall(b"PROXY TCP4 203.0.113.7 192.0.2.1 45678 25\r\n")
        self.assertReply(self.mail_through(s), 250)
        env = self.r.requests[0].envelope()
        self.assertEqual(env["client"]["address"], "203.0.113.7")
        self.assertEqual(env["client"]["port"], 45678)
        self.assertTrue(self.sh.wait_log(r"txn id=\S+ client=203\.0\.113\.7:45678 "),
                        self.sh.log())

    def test_v2_ipv6_with_tlvs_and_client_bytes_in_the_same_write(self):
        port = self.start_proxied("v2")
        tlv = bytes([0x04]) + struct.pack("!H", 5) + b"hello"  # PP2_TYPE_NOOP
        s = raw_connect(port)
        s.sendall(v2_header("2001:db8::7", 50000, "2001:db8::1", 25, tlvs=tlv))
        self.assertReply(self.mail_through(s), 250)
        self.assertEqual(self.r.requests[0].envelope()["client"]["address"], "2001:db8::7")

    def test_header_split_across_writes(self):
        port = self.start_proxied("any")
        s = raw_connect(port)
        for piece in (b"PROXY TCP4 198", b".51.100.9 192.0.2.1 ", b"1000 25\r", b"\n"):
            s.sendall(piece)
            time.sleep(0.05)
        self.assertReply(self.mail_through(s), 250)
        self.assertEqual(self.r.requests[0].envelope()["client"]["address"], "198.51.100.9")

    def test_health_checks_local_and_unknown(self):
        port = self.start_proxied("any")
        for header in (v2_header(None, 0, local=True), b"PROXY UNKNOWN\r\n"):
            s = raw_connect(port)
            s.sendall(header)
            self.assertReply(self.mail_through(s), 250)
        # the socket's own peer stands
        self.assertEqual([q.envelope()["client"]["address"] for q in self.r.requests],
                         ["127.0.0.1", "127.0.0.1"])

    def test_untrusted_peer_is_refused(self):
        self.start_proxied("v1")
        # a second listener that trusts only 10.0.0.0/8 (the first one answers the probe)
        self._stop_smtphook(self.sh)
        port, port2 = free_port(), free_port()
        cfg = make_config(port, self.r.url(), admin=self.admin_listen())
        cfg["listeners"].append({"address": "%s:%d" % (HOST, port2), "proxy_protocol": "v1",
                                 "trusted_proxies": ["10.0.0.0/8"]})
        self.start_smtphook(config=cfg, port=port)
        s = raw_connect(port2)
        s.sendall(b"PROXY TCP4 203.0.113.7 192.0.2.1 45678 25\r\n")
        self.assertTrue(closed_without_a_word(s))
        self.assertTrue(self.sh.wait_log(r"refused: not a trusted proxy"), self.sh.log())
        self.assertEqual(self.metric("smtphook_connections_refused_total",
                                     cause="untrusted_proxy"), 1)
        self.assertEqual(self.metric("smtphook_connections_accepted_total"), 1)  # the probe

    def test_bad_or_missing_header_is_closed(self):
        port = self.start_proxied("v1", admin=self.admin_listen())
        s = raw_connect(port)
        s.sendall(b"EHLO client.test\r\n")
        self.assertTrue(closed_without_a_word(s))
        s = raw_connect(port)
        s.sendall(v2_header("203.0.113.7", 1))  # v2 on a v1 listener
        self.assertTrue(closed_without_a_word(s))
        s = raw_connect(port)  # nothing at all: the wait is bounded
        t0 = time.monotonic()
        self.assertTrue(closed_without_a_word(s, timeout=5))
        self.assertLess(time.monotonic() - t0, 3)
        self.assertTrue(self.sh.wait_log(r"no PROXY header within 1000 ms"), self.sh.log())
        self.assertEqual(self.metric("smtphook_connections_refused_total",
                                     cause="bad_proxy_header"), 2)
        self.assertEqual(self.metric("smtphook_connections_refused_total",
                                     cause="proxy_timeout"), 1)
        self.assertEqual(self.metric("smtphook_connections_accepted_total"), 1)  # the probe

    def test_per_client_limit_counts_the_real_client(self):
        port = self.start_proxied("v1", limits={"max_connections_per_client": 1})
        first = raw_connect(port)
        first.sendall(b"PROXY TCP4 203.0.113.7 192.0.2.1 1001 25\r\n")
        first.settimeout(5)
        self.assertTrue(first.recv(100).startswith(b"220 "))
        # the same client through the same proxy: refused; another client: served
        second = raw_connect(port)
        second.sendall(b"PROXY TCP4 203.0.113.7 192.0.2.1 1002 25\r\n")
        second.settimeout(5)
        self.assertTrue(second.recv(100).startswith(b"421 "))
        third = raw_connect(port)
        third.sendall(b"PROXY TCP4 203.0.113.8 192.0.2.1 1003 25\r\n")
        third.settimeout(5)
        self.assertTrue(third.recv(100).startswith(b"220 "))
        for s in (first, second, third):
            s.close()

    def test_implicit_tls_header_before_the_client_hello(self):
        d = tempfile.mkdtemp(prefix="itest-proxy-tls-")
        self.addCleanup(shutil.rmtree, d, True)
        cert, key = CA(d).issue("mx", names=("mx.test",))
        port = self.start_proxied("v2", tls={"certificates": [{"cert": cert, "key": key}]})
        # a second listener, implicit TLS behind the proxy (the first one answers the probe)
        self._stop_smtphook(self.sh)
        port, port2 = free_port(), free_port()
        cfg = make_config(port, self.r.url(), tls={"certificates": [{"cert": cert, "key": key}]})
        cfg["listeners"].append({"address": "%s:%d" % (HOST, port2), "tls": "implicit",
                                 "proxy_protocol": "v2", "trusted_proxies": ["127.0.0.1"]})
        self.start_smtphook(config=cfg, port=port)
        s = raw_connect(port2)
        s.sendall(v2_header("203.0.113.9", 2000))
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        t = ctx.wrap_socket(s, server_hostname="mx.test")
        self.assertReply(self.mail_through(t), 250)
        env = self.r.requests[0].envelope()
        self.assertEqual(env["client"]["address"], "203.0.113.9")
        self.assertIsNotNone(env["tls"])


class HAProxyTest(SmtphookTestCase):
    """HAProxy in front of two replicas: one backend server with send-proxy-v2, one with
    send-proxy; health checks speak PROXY too (check-send-proxy)."""

    def test_two_replicas_behind_haproxy(self):
        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not os.path.exists(haproxy):
            self.skipTest("haproxy not installed (apt-get install haproxy)")
        r = self.start_receiver()
        ports = []
        procs = []
        for mode in ("v2", "v1"):
            port = free_port()
            cfg = make_config(port, r.url())
            cfg["listeners"][0].update({"proxy_protocol": mode, "trusted_proxies": ["127.0.0.1"]})
            procs.append(self.start_smtphook(config=cfg, port=port))
            ports.append(port)
        front = free_port()
        d = tempfile.mkdtemp(prefix="itest-haproxy-")
        self.addCleanup(shutil.rmtree, d, True)
        conf = os.path.join(d, "haproxy.cfg")
        with open(conf, "w") as f:
            f.write("""global
  log stderr format short local0 info
defaults
  mode tcp
  timeout connect 2s
  timeout client 30s
  timeout server 30s
frontend smtp
  bind %(host)s:%(front)d
  default_backend replicas
backend replicas
  balance roundrobin
  option smtpchk EHLO haproxy.test
  server a %(host)s:%(a)d send-proxy-v2 check check-send-proxy inter 200ms fall 1 rise 1
  server b %(host)s:%(b)d send-proxy check check-send-proxy inter 200ms fall 1 rise 1
""" % {"host": HOST, "front": front, "a": ports[0], "b": ports[1]})
        proc = subprocess.Popen([haproxy, "-f", conf, "-db"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        self.addCleanup(proc.wait, 10)
        self.addCleanup(proc.terminate)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection((HOST, front), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.fail("haproxy did not start")
                time.sleep(0.05)
        time.sleep(0.5)  # the first health checks

        def send(n, source):
            codes = []
            for i in range(n):
                try:
                    s = socket.create_connection((HOST, front), timeout=10,
                                                 source_address=(source, 0))
                    c = SMTPClient(None, sock=s, timeout=10)
                    c.cmd("EHLO client.test")
                    c.cmd("MAIL FROM:<%s>" % SENDER)
                    c.cmd("RCPT TO:<rcpt%d@example.com>" % i)
                    c.cmd("DATA")
                    c.send(b"Subject: n%d\r\n\r\nhi\r\n.\r\n" % i)
                    codes.append(c.read_reply().code)
                    c.close()
                except OSError:
                    codes.append(None)
            return codes

        codes = send(6, "127.0.0.5")
        self.assertEqual(codes, [250] * 6)
        clients = {q.envelope()["client"]["address"] for q in r.requests}
        self.assertEqual(clients, {"127.0.0.5"}, "the original client, not HAProxy")
        # one replica dies; the health checks take it out, and what got 250 was delivered
        procs[0].kill()
        time.sleep(1.0)
        codes = send(6, "127.0.0.6")
        self.assertEqual(codes, [250] * 6)
        delivered = {q.envelope()["rcpt_to"][0] for q in r.requests
                     if q.envelope()["client"]["address"] == "127.0.0.6"}
        self.assertEqual(len(delivered), 6)


if __name__ == "__main__":
    unittest.main()
