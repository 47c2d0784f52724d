"""test_tls.py - inbound TLS: STARTTLS (RFC 3207) and implicit TLS, with real clients.

Clients: Python's smtplib (starttls, SMTP_SSL), openssl s_client -starttls smtp, swaks --tls and
--tlsc, and a byte-level client (TLSClient) that drives Python's ssl over memory BIOs so a test
can put exact bytes on the wire: a command behind STARTTLS in the same packet, plaintext after
a close_notify, a handshake that stops half-way. The certificates come from certs.py, made at
test time.
"""

import os
import shutil
import signal
import smtplib
import ssl
import subprocess
import tempfile
import time
import unittest

import certs
from helpers import HOST, free_port
from smtp_client import Closed, SMTPClient, dot_stuff
from smtphook_process import make_config
from testcase import SmtphookTestCase

BODY = (b"Subject: over TLS\r\nFrom: a@example.org\r\n\r\n"
        b"line one\r\n.starts with a dot\r\n\x80\xff 8-bit bytes\r\nend\r\n")


def tool(name):
    path = shutil.which(name)
    if path is None:
        raise AssertionError("%s is not installed (docker/install-deps.sh --test)" % name)
    return path


class TLSClient(SMTPClient):
    """SMTPClient that can switch to TLS on its socket. The TLS runs over memory BIOs, so the
    raw socket stays in reach: send_raw() writes bytes past the TLS layer."""

    tls = None

    def handshake(self, ctx, server_hostname=None, session=None):
        """Run the client side of a handshake; raise ssl.SSLError when it fails."""
        self.inc = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.inc, self.outgoing, server_side=False,
                                server_hostname=server_hostname, session=session)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._push()
                self._pull(deadline)
        self._push()

    def starttls(self, ctx, server_hostname=None, session=None):
        r = self.cmd("STARTTLS")
        if r.code != 220:
            raise AssertionError("STARTTLS answered %s" % r)
        self.handshake(ctx, server_hostname, session)

    def _push(self):
        data = self.outgoing.read()
        if data:
            self.sock.sendall(data)

    def _pull(self, deadline):
        self.inc.write(self.recv_raw(deadline))

    def send(self, data):
        if self.tls is None:
            return super().send(data)
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.tls.write(data)
        self._push()

    def send_raw(self, data):
        self.sock.sendall(data)

    def close_notify(self):
        """Queue our close_notify and send it (without waiting for the server's)."""
        try:
            self.tls.unwrap()
        except (ssl.SSLWantReadError, ssl.SSLError):
            pass
        self._push()

    def _fill(self, deadline):
        if self.tls is None:
            return super()._fill(deadline)
        while True:
            try:
                data = self.tls.read(65536)
            except ssl.SSLWantReadError:
                self._pull(deadline)
                continue
            except ssl.SSLZeroReturnError:
                data = b""
            if not data:
                self.eof = True
                raise Closed("TLS closed; pending %r" % self.buf[:200])
            self.buf += data
            return


class TLSTestCase(SmtphookTestCase):
    """A test CA and certificates for the class; helpers for TLS configs and clients."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="smtphook-tls-")
        cls.ca = certs.CA(cls.dir)
        cls.cert, cls.key = cls.ca.issue("mx", names=("mx.test", "127.0.0.1"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def client_ctx(self, **kw):
        ctx = ssl.create_default_context(cafile=self.ca.ca_file)
        for k, v in kw.items():
            setattr(ctx, k, v)
        return ctx

    def start_tls_smtphook(self, mode="starttls", require_tls=False, tls=None, extra=None,
                           limits=None):
        """smtphook with listener 0 plaintext-greeting (mode none/starttls) and, for mode
        implicit, listener 1 on another port with implicit TLS (self.tls_port)."""
        self.rcv = self.start_receiver()
        port = free_port()
        tls_cfg = {"certificates": [{"cert": self.cert, "key": self.key}]}
        tls_cfg.update(tls or {})
        first = {"address": "%s:%d" % (HOST, port),
                 "tls": mode if mode != "implicit" else "starttls"}
        if require_tls:
            first["require_tls"] = True
        listeners = [first]
        if mode == "implicit":
            self.tls_port = free_port()
            listeners.append({"address": "%s:%d" % (HOST, self.tls_port), "tls": "implicit"})
        cfg = make_config(port, self.rcv.url(), limits=limits, listeners=listeners, tls=tls_cfg)
        cfg.update(extra or {})
        return self.start_smtphook(config=cfg)

    def tls_connect(self, port=None, **kw):
        c = TLSClient(port or self.sh.port, **kw)
        self.addCleanup(c.close)
        return c

    def tls_session(self):
        """A connection that said EHLO and STARTTLS (SNI mx.test, the test CA trusted): the
        client must EHLO again."""
        c = self.tls_connect()
        self.ehlo(c)
        c.starttls(self.client_ctx(), "mx.test")
        return c

    def assertTLSEnvelope(self, req, sni=None):
        tls = req.envelope()["tls"]
        self.assertIsNotNone(tls, "envelope should carry the TLS facts")
        self.assertIn(tls["version"], ("TLSv1.2", "TLSv1.3"))
        self.assertTrue(tls["cipher"])
        self.assertEqual(tls["sni"], sni)
        return tls

    def mail_over(self, c, body=BODY, mail_from="a@example.org", rcpt="b@example.com"):
        self.ehlo(c)
        r = self.transaction(c, mail_from, [rcpt], body)
        self.assertReply(r, 250, "2.0.0")
        return r


class RealClients(TLSTestCase):
    """Every client a user has: each message arrives byte-exact, with the TLS facts."""

    def test_smtplib_starttls(self):
        self.start_tls_smtphook()
        s = smtplib.SMTP(HOST, self.sh.port, local_hostname="smtplib.test", timeout=10)
        self.addCleanup(s.close)
        s.ehlo()
        self.assertTrue(s.has_extn("starttls"))
        s.starttls(context=self.client_ctx())
        s.ehlo()
        self.assertFalse(s.has_extn("starttls"), "STARTTLS must not be offered inside TLS")
        self.assertEqual(s.sendmail("a@example.org", ["b@example.com"], BODY), {})
        s.quit()
        req = self.rcv.wait_for(1)[0]
        self.assertEqual(req.body, BODY)
        self.assertTLSEnvelope(req)  # smtplib sends no SNI for an IP address

    def test_quick_start_flags_offer_starttls(self):
        """--listen, --webhook, --tls-cert and --tls-key, no file: STARTTLS is offered."""
        self.rcv = self.start_receiver()
        port = free_port()
        self.start_smtphook(config=False, port=port,
                            args=["--listen", "%s:%d" % (HOST, port), "--webhook",
                                  self.rcv.url(), "--tls-cert", self.cert, "--tls-key",
                                  self.key])
        s = smtplib.SMTP(HOST, port, local_hostname="quick.test", timeout=10)
        self.addCleanup(s.close)
        s.ehlo()
        self.assertTrue(s.has_extn("starttls"))
        s.starttls(context=self.client_ctx())
        self.assertEqual(s.sendmail("a@example.org", ["b@anything.test"], BODY), {})
        s.quit()
        req = self.rcv.wait_for(1)[0]
        self.assertEqual(req.body, BODY)
        self.assertTLSEnvelope(req)

    def test_smtplib_smtp_ssl_implicit(self):
        self.start_tls_smtphook(mode="implicit")
        s = smtplib.SMTP_SSL(HOST, self.tls_port, local_hostname="ssl.test", timeout=10,
                             context=self.client_ctx())
        self.addCleanup(s.close)
        code, _ = s.ehlo()
        self.assertEqual(code, 250)
        self.assertFalse(s.has_extn("starttls"))
        self.assertEqual(s.sendmail("a@example.org", ["b@example.com"], BODY), {})
        s.quit()
        req = self.rcv.wait_for(1)[0]
        self.assertEqual(req.body, BODY)
        self.assertTLSEnvelope(req)
        self.assertEqual(req.envelope()["client"]["helo"], "ssl.test")

    def test_openssl_s_client_starttls(self):
        self.start_tls_smtphook()
        body = b"Subject: s_client\r\n\r\nhello from openssl\r\n"
        script = (b"EHLO sclient.test\r\nMAIL FROM:<a@example.org>\r\n"
                  b"RCPT TO:<b@example.com>\r\nDATA\r\n" + dot_stuff(body) + b"QUIT\r\n")
        p = subprocess.run(
            [tool("openssl"), "s_client", "-starttls", "smtp", "-connect",
             "%s:%d" % (HOST, self.sh.port), "-servername", "mx.test", "-CAfile",
             self.ca.ca_file, "-verify_return_error", "-verify_hostname", "mx.test", "-quiet"],
            input=script, capture_output=True, timeout=30)
        out = p.stdout.decode("utf-8", "replace")
        self.assertIn("221", out, "s_client session did not end with 221:\n%s\n%s"
                      % (out, p.stderr.decode("utf-8", "replace")))
        req = self.rcv.wait_for(1)[0]
        self.assertEqual(req.body, body)
        self.assertTLSEnvelope(req, sni="mx.test")

    def swaks(self, port, *args):
        with tempfile.NamedTemporaryFile(suffix=".eml", delete=False) as f:
            f.write(BODY[:-2])  # swaks ends the data with CRLF "." CRLF itself
        self.addCleanup(os.unlink, f.name)
        p = subprocess.run(
            [tool("swaks"), "--server", "%s:%d" % (HOST, port), "--from", "a@example.org",
             "--to", "b@example.com", "--helo", "swaks.test", "--data", f.name,
             "--tls-verify", "--tls-ca-path", self.ca.ca_file, "--tls-sni", "mx.test"]
            + list(args), capture_output=True, timeout=30)
        out = p.stdout.decode("utf-8", "replace")
        self.assertEqual(p.returncode, 0, "swaks failed:\n" + out[-3000:])
        req = self.rcv.wait_for(1)[0]
        self.assertEqual(req.body, BODY)
        return req

    def test_swaks_starttls(self):
        self.start_tls_smtphook()
        req = self.swaks(self.sh.port, "--tls")
        self.assertTLSEnvelope(req, sni="mx.test")

    def test_swaks_tls_on_connect(self):
        self.start_tls_smtphook(mode="implicit")
        req = self.swaks(self.tls_port, "--tlsc")
        self.assertTLSEnvelope(req, sni="mx.test")

    def test_large_binary_message_and_pipelining_over_tls(self):
        """A 2 MB message crosses many TLS records and reads; pipelined commands after it
        are answered in order."""
        self.start_tls_smtphook()
        c = self.tls_session()
        self.ehlo(c)
        line = bytes(range(1, 256)).replace(b"\r", b"").replace(b"\n", b"") + b"\r\n"
        body = b"Subject: big\r\n\r\n" + line * (2 * 1024 * 1024 // len(line))
        c.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
        self.assertEqual([r.code for r in c.read_replies(3)], [250, 250, 354])
        c.send(dot_stuff(body) + b"NOOP\r\nRSET\r\n")
        replies = c.read_replies(3, timeout=30)
        self.assertEqual([r.code for r in replies], [250, 250, 250])
        req = self.rcv.wait_for(1)[0]
        self.assertEqual(req.body, body)


class STARTTLSRules(TLSTestCase):
    """RFC 3207 done right."""

    def test_command_behind_starttls_is_discarded(self):
        """CVE-2011-0411: a MAIL pipelined behind STARTTLS in the same packet must never be
        executed, neither in plaintext nor inside TLS."""
        self.start_tls_smtphook()
        c = self.tls_connect()
        self.ehlo(c)
        c.send(b"STARTTLS\r\nMAIL FROM:<injected@evil.test>\r\nRCPT TO:<b@example.com>\r\n")
        self.assertReply(c.read_reply(), 220, "2.0.0")
        self.assertEqual(c.buf, b"", "nothing may follow the 220 in plaintext")
        c.handshake(self.client_ctx(), "mx.test")
        self.ehlo(c)
        # Had the injected MAIL survived, this RCPT would be accepted.
        self.assertReply(c.cmd("RCPT TO:<b@example.com>"), 503, "5.5.1")
        self.mail_over(c)
        req = self.rcv.wait_for(1)[0]
        self.assertEqual(req.envelope()["mail_from"], "a@example.org")
        self.assertNotIn("injected", self.sh.log())

    def test_state_is_reset_after_handshake(self):
        self.start_tls_smtphook()
        c = self.tls_connect()
        self.ehlo(c, "before-tls.test")
        c.starttls(self.client_ctx(), "mx.test")
        # HELO/EHLO is forgotten: MAIL needs a new EHLO.
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), 503, "5.5.1")
        r = self.ehlo(c, "after-tls.test")
        self.assertNotIn("STARTTLS", [ln[4:].upper() for ln in r.lines])
        self.assertReply(c.cmd("STARTTLS"), 503, "5.5.1")
        self.assertReply(self.transaction(c, "a@example.org", ["b@example.com"], BODY), 250)
        env = self.rcv.wait_for(1)[0].envelope()
        self.assertEqual(env["client"]["helo"], "after-tls.test")

    def test_starttls_with_argument_is_501(self):
        self.start_tls_smtphook()
        c = self.tls_connect()
        self.ehlo(c)
        self.assertReply(c.cmd("STARTTLS now"), 501, "5.5.4")
        c.starttls(self.client_ctx(), "mx.test")  # still possible afterwards

    def test_starttls_inside_transaction_is_refused(self):
        self.start_tls_smtphook()
        c = self.tls_connect()
        self.ehlo(c)
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), 250)
        self.assertReply(c.cmd("STARTTLS"), 503, "5.5.1")

    def test_not_available_is_454(self):
        self.start_tls_smtphook(mode="none")
        c = self.tls_connect()
        r = self.ehlo(c)
        self.assertNotIn("STARTTLS", [ln[4:].upper() for ln in r.lines])
        self.assertReply(c.cmd("STARTTLS"), 454, "4.7.0")
        self.mail_over(c)  # the session goes on in plaintext
        self.assertIsNone(self.rcv.wait_for(1)[0].envelope()["tls"])

    def test_require_tls(self):
        self.start_tls_smtphook(require_tls=True)
        c = self.tls_connect()
        self.ehlo(c)
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), 530, "5.7.0")
        c.starttls(self.client_ctx(), "mx.test")
        self.mail_over(c)
        self.assertTLSEnvelope(self.rcv.wait_for(1)[0], sni="mx.test")

    def test_client_hello_on_plaintext_port(self):
        """A TLS client that skips STARTTLS gets SMTP error replies, never a crash."""
        self.start_tls_smtphook(mode="none")
        out = ssl.MemoryBIO()
        obj = self.client_ctx().wrap_bio(ssl.MemoryBIO(), out, server_hostname="mx.test")
        with self.assertRaises(ssl.SSLWantReadError):
            obj.do_handshake()
        hello = out.read()
        c = self.tls_connect()
        # The CRLF ends whatever line the hello left open; QUIT ends the session.
        c.send(hello + b"\r\nQUIT\r\n")
        replies = []
        while True:
            r = c.read_reply()
            replies.append(r.code)
            if r.code in (221, 421):
                break
        self.assertGreater(len(replies), 1)
        self.assertTrue(all(500 <= code < 600 for code in replies[:-1]), replies)
        self.assertTrue(c.wait_closed(10))
        self.assertTrue(self.sh.running())
        self.mail_over(self.tls_connect())  # and it still serves others

    def test_close_notify_then_plaintext_during_data(self):
        """After the client's close_notify nothing is processed: plaintext that ends the
        message and starts a new command must not deliver anything."""
        self.start_tls_smtphook()
        c = self.tls_session()
        self.ehlo(c)
        c.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
        self.assertEqual([r.code for r in c.read_replies(3)], [250, 250, 354])
        c.send(b"Subject: cut\r\n\r\nfirst part\r\n")
        c.close_notify()
        c.send_raw(b"injected\r\n.\r\nMAIL FROM:<evil@evil.test>\r\n")
        c.tls = None
        self.assertTrue(c.wait_closed(10), "the connection must be closed")
        self.assertNoRequests(self.rcv)
        self.assertTrue(self.sh.wait_log(r"txn id=\S+ abandoned: client sent TLS close_notify"))
        self.assertNotIn("evil", self.sh.log())

    def test_final_dot_then_close_notify_gets_the_reply(self):
        """close_notify after the final dot is the TLS form of a half-close: the delivery
        runs to its end and the reply still goes out (TLS 1.3 lets each side close its
        direction on its own, RFC 8446 §6.1); nothing sent after the close_notify runs."""
        self.start_tls_smtphook()
        self.rcv.set(delay=0.5)
        c = self.tls_session()
        self.ehlo(c)
        c.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
        self.assertEqual([r.code for r in c.read_replies(3)], [250, 250, 354])
        c.send(b"Subject: hc\r\n\r\nbody\r\n.\r\n")
        c.close_notify()
        self.assertReply(c.read_reply(10), 250, "2.0.0")
        self.assertEqual(len(self.rcv.wait_for(1)), 1)
        self.assertFalse(self.sh.wait_log(r"cancelled", timeout=0.3))

    def test_quit_and_close_notify_in_one_packet_still_get_221(self):
        self.start_tls_smtphook()
        c = self.tls_session()
        self.ehlo(c)
        c.tls.write(b"QUIT\r\n")
        try:
            c.tls.unwrap()
        except ssl.SSLWantReadError:
            pass
        c._push()  # QUIT and close_notify leave in one send
        self.assertReply(c.read_reply(), 221, "2.0.0")

    def records(self, c, *texts):
        """The TLS records of texts, one record each, to be sent in one packet."""
        out = b""
        for t in texts:
            c.tls.write(t)
            out += c.outgoing.read()
        return out

    def test_refused_data_discards_pipelined_records(self):
        """What follows a refused DATA in the same read is message text, not commands; over
        TLS that holds for the later records of the read too, not only for the rest of the
        record that carried the DATA (a client that writes each line as its own record):
        none of it runs, the session ends with 421."""
        self.start_tls_smtphook()
        c = self.tls_session()
        self.ehlo(c)
        c.send_raw(self.records(
            c, b"MAIL FROM:<a@example.org>\r\nRCPT TO:<x@elsewhere.test>\r\nDATA\r\n",
            b"MAIL FROM:<evil@example.org>\r\n", b"RCPT TO:<b@example.com>\r\n",
            b"DATA\r\n", b"evil\r\n.\r\n"))
        self.assertEqual([r.code for r in c.read_replies(4)], [250, 550, 554, 421])
        self.assertTrue(c.wait_closed(5), "the session must end")
        self.assertNoRequests(self.rcv, settle=0.3)

    def test_bdat_syntax_error_discards_pipelined_records(self):
        """A BDAT whose size cannot be read ends the session: its chunk, in this record or
        the next, is never executed."""
        self.start_tls_smtphook()
        c = self.tls_session()
        self.ehlo(c)
        c.send_raw(self.records(c, b"BDAT x12\r\n", b"NOOP\r\nRSET\r\n"))
        self.assertReply(c.read_reply(), 501, "5.5.4")
        self.assertReply(c.read_reply(), 421, "4.5.0")
        self.assertTrue(c.wait_closed(5), "the session must end")

    def test_record_error_after_a_good_record_sends_the_alert(self):
        """A corrupt record behind a good one in the same read: the connection ends with
        the fatal alert, not a bare close (the reply to the good record cannot follow it).
        The handshake had succeeded: no failed handshake is counted."""
        self.start_tls_smtphook(extra={"admin": self.admin_listen()})
        c = self.tls_session()
        self.ehlo(c)
        good = self.records(c, b"NOOP\r\n")
        bad = bytearray(self.records(c, b"NOOP\r\n"))
        bad[-1] ^= 1
        c.send_raw(good + bytes(bad))
        with self.assertRaisesRegex(ssl.SSLError, "BAD_RECORD_MAC|bad record mac"):
            c.read_reply()
        self.assertTrue(self.sh.wait_log("TLS failed"))
        self.assertEqual(self.metric("smtphook_tls_handshakes_total", version="TLSv1.3"), 1)
        self.assertEqual(self.metric("smtphook_tls_handshake_failures_total"), 0)

    def test_stalled_handshake_is_closed(self):
        self.start_tls_smtphook(tls={"handshake_timeout_ms": 1000},
                                extra={"admin": self.admin_listen()})
        c = self.tls_connect()
        self.ehlo(c)
        self.assertReply(c.cmd("STARTTLS"), 220)
        c.send(b"\x16\x03\x01")  # the start of a record, then silence
        self.assertTrue(c.wait_closed(15), "a stalled handshake must be closed")
        self.assertTrue(self.sh.wait_log("TLS handshake not done"))
        self.assertEqual(self.metric("smtphook_connections_dropped_total",
                                     cause="tls_handshake_timeout"), 1)
        self.assertEqual(self.metric("smtphook_tls_handshake_failures_total"), 0)


class Protocols(TLSTestCase):
    def handshake_fails(self, ctx):
        c = self.tls_connect()
        self.ehlo(c)
        with self.assertRaises((ssl.SSLError, Closed, ConnectionResetError)):
            c.starttls(ctx, "mx.test")

    def test_tls_1_1_refused_by_default(self):
        self.start_tls_smtphook(extra={"admin": self.admin_listen()})
        ctx = self.client_ctx()
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        self.handshake_fails(ctx)
        self.assertTrue(self.sh.wait_log("TLS failed"))
        # TLS 1.2 still works.
        c = self.tls_connect()
        self.ehlo(c)
        c.starttls(self.client_ctx(maximum_version=ssl.TLSVersion.TLSv1_2), "mx.test")
        self.mail_over(c)
        self.assertEqual(self.rcv.wait_for(1)[0].envelope()["tls"]["version"], "TLSv1.2")
        self.assertEqual(self.metric("smtphook_tls_handshake_failures_total"), 1)
        self.assertEqual(self.metric("smtphook_tls_handshakes_total", version="TLSv1.2"), 1)

    def test_min_version_1_3(self):
        self.start_tls_smtphook(tls={"min_version": "TLSv1.3"})
        self.handshake_fails(self.client_ctx(maximum_version=ssl.TLSVersion.TLSv1_2))
        c = self.tls_session()
        self.mail_over(c)
        self.assertEqual(self.rcv.wait_for(1)[0].envelope()["tls"]["version"], "TLSv1.3")

    def test_session_resumption(self):
        self.start_tls_smtphook()
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            with self.subTest(version=version):
                ctx = self.client_ctx(maximum_version=version)
                c = self.tls_connect()
                self.ehlo(c)
                c.starttls(ctx, "mx.test")
                self.ehlo(c)  # TLS 1.3 tickets arrive after the handshake
                session = c.tls.session
                c.cmd("QUIT")
                self.assertIsNotNone(session)
                d = self.tls_connect()
                self.ehlo(d)
                d.starttls(ctx, "mx.test", session=session)
                self.assertTrue(d.tls.session_reused, "session not resumed")
                self.mail_over(d)


class Certificates(TLSTestCase):
    def peer_cert(self, c):
        return c.tls.getpeercert(binary_form=True)

    def der(self, path):
        with open(path, "rb") as f:
            pem = f.read().decode()
        return ssl.PEM_cert_to_DER_cert(pem[:pem.index("-----END CERTIFICATE-----") + 25])

    def test_sni_chooses_the_certificate(self):
        a = self.ca.issue("a", names=("a.test",))
        b = self.ca.issue("b", names=("b.test", "*.b.test"))
        self.start_tls_smtphook(tls={"certificates": [{"cert": a[0], "key": a[1]},
                                                      {"cert": b[0], "key": b[1]}]})
        for name, want in (("b.test", b), ("x.b.test", b), ("a.test", a), ("other.test", a)):
            with self.subTest(sni=name):
                c = self.tls_connect()
                self.ehlo(c)
                ctx = self.client_ctx()
                ctx.check_hostname = False  # other.test gets the default, a.test
                c.starttls(ctx, name)
                self.assertEqual(self.peer_cert(c), self.der(want[0]))
        c = self.tls_connect()
        self.ehlo(c)
        c.starttls(self.client_ctx(), "b.test")
        self.mail_over(c)
        self.assertTLSEnvelope(self.rcv.wait_for(1)[0], sni="b.test")

    def test_client_certificate_in_envelope(self):
        cert, key = self.ca.issue("printer", names=("printer.test",), client=True,
                                  organization="Acme")
        self.start_tls_smtphook(tls={"request_client_cert": True})
        ctx = self.client_ctx()
        ctx.load_cert_chain(cert, key)
        c = self.tls_connect()
        self.ehlo(c)
        c.starttls(ctx, "mx.test")
        self.mail_over(c)
        d = self.tls_connect()  # and one without a certificate
        self.ehlo(d)
        d.starttls(self.client_ctx(), "mx.test")
        self.mail_over(d)
        reqs = self.rcv.wait_for(2)
        tls = self.assertTLSEnvelope(reqs[0], sni="mx.test")
        self.assertEqual(tls["client_certificate"],
                         {"subject": "CN=printer.test,O=Acme",
                          "sha256": certs.fingerprint_sha256(cert)})
        self.assertIsNone(self.assertTLSEnvelope(reqs[1], sni="mx.test")["client_certificate"])

    def test_reload_under_a_live_connection(self):
        cert, key = self.ca.issue("live", names=("mx.test",))
        self.start_tls_smtphook(tls={"certificates": [{"cert": cert, "key": key}]})
        old_der = self.der(cert)
        live = self.tls_connect()
        self.ehlo(live)
        live.starttls(self.client_ctx(), "mx.test")
        self.assertEqual(self.peer_cert(live), old_der)

        # New certificate and key in place, SIGHUP.
        new_cert, new_key = self.ca.issue("live-new", names=("mx.test",))
        shutil.copy(new_cert, cert)
        shutil.copy(new_key, key)
        self.sh.signal(signal.SIGHUP)
        self.assertTrue(self.sh.wait_log("reloaded"))
        new_der = self.der(cert)

        self.mail_over(live)  # the open connection keeps working with its certificate
        c = self.tls_session()
        self.assertEqual(self.peer_cert(c), new_der)

        # A broken file: the reload fails, the last good certificate stays.
        with open(cert, "wb") as f:
            f.write(b"not a certificate\n")
        self.sh.signal(signal.SIGHUP)
        self.assertTrue(self.sh.wait_log("reload failed, the running configuration stays"))
        d = self.tls_session()
        self.assertEqual(self.peer_cert(d), new_der)
        self.mail_over(d)
        self.assertEqual(len(self.rcv.wait_for(2)), 2)
        self.sh.signalled = False  # the SIGHUPs were not a stop request

    def test_shutdown_says_421_inside_tls(self):
        self.start_tls_smtphook()
        c = self.tls_session()
        self.ehlo(c)
        self.sh.signal(signal.SIGTERM)
        self.assertReply(c.read_reply(), 421, "4.3.2")
        self.assertEqual(self.sh.wait(10), 0)


class StartupChecks(TLSTestCase):
    """Broken certificates stop the start with a message naming the file."""

    def start_fails(self, certificate, expect):
        port = free_port()
        cfg = make_config(port, "http://127.0.0.1:9/", tls={"certificates": [certificate]})
        from smtphook_process import Smtphook
        sh = Smtphook(cfg)
        self.addCleanup(sh.cleanup_dir)
        sh.start(wait=False)
        rc = sh.wait(20)
        self.assertIsNotNone(rc, "smtphook should refuse to start")
        self.assertNotEqual(rc, 0)
        for text in expect:
            self.assertIn(text, sh.log())

    def test_missing_file(self):
        missing = os.path.join(self.dir, "missing.pem")
        self.start_fails({"cert": missing, "key": self.key},
                         ["tls.certificates[0].cert", missing])

    def test_key_does_not_match(self):
        other_cert, other_key = self.ca.issue("other", names=("other.test",))
        self.start_fails({"cert": self.cert, "key": other_key},
                         ["tls.certificates[0].key", "does not match", other_key])

    def test_expired(self):
        cert, key = self.ca.issue("expired", expired=True)
        self.start_fails({"cert": cert, "key": key}, ["expired", cert])


if __name__ == "__main__":
    unittest.main()
