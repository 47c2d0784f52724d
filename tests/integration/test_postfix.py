"""test_postfix.py - Postfix as the sending MTA relays mail to smtphook.

A private Postfix instance per class (postfix.py) takes a message over SMTP and relays it to
smtphook (relayhost = [127.0.0.1]:<port>), in plain text or over STARTTLS with a verified
certificate; the web app must receive the injected message byte for byte, after the
Received: header Postfix adds, with the envelope Postfix gave. Needs root (Postfix does);
skipped otherwise.
"""

import re
import shutil
import tempfile
import uuid

import certs
import postfix
from helpers import HOST, free_port
from testcase import SmtphookTestCase

SMTPHOOK_NAME = "mx.smtphook.test"  # DNS name in smtphook's certificate, checked by Postfix
LONG_LINE_OCTETS = 998  # RFC 5321 §4.5.3.1.6: 1000 octets with CRLF, the longest line
# Postfix's smtp client passes unfolded (smtp_line_length_limit = 998)


def message(extra_headers=b"", body=b"Hello from Postfix.\r\n"):
    """A complete message, CRLF line ends, with every header Postfix could otherwise add
    (Date, Message-ID, From, To): a unique Message-ID tells the messages apart."""
    msgid = "<%s@injector.test>" % uuid.uuid4().hex
    head = (b"From: Alice <alice@example.org>\r\n"
            b"To: Bob <bob@example.com>\r\n"
            b"Subject: relayed by Postfix\r\n"
            b"Date: Sat, 29 Nov 2025 10:00:00 +0000\r\n"
            b"Message-ID: " + msgid.encode("ascii") + b"\r\n" + extra_headers)
    return head + b"\r\n" + body


class PostfixRelayCase(SmtphookTestCase):
    """One Postfix instance per class (options from postfix_options), relaying to the port
    where every test starts its own receiver and smtphook (options from smtphook_options).
    No tests here: subclasses have them."""

    @classmethod
    def postfix_options(cls):
        return {"tls_level": "none"}

    def smtphook_options(self):
        return {}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        postfix.require_root()
        cls.relay_port = free_port()
        cls.pf = postfix.Postfix(cls.relay_port, **cls.postfix_options())
        cls.addClassCleanup(cls.pf.stop)
        cls.pf.start()

    def setUp(self):
        self.smtphook_log = ""
        self.rcv = self.start_receiver()
        self.sh = self.start_smtphook(self.rcv, port=self.relay_port, **self.smtphook_options())
        self.addCleanup(self._keep_smtphook_log)  # runs before smtphook's own cleanup

    def _keep_smtphook_log(self):
        self.smtphook_log = self.sh.log()

    def failure_logs(self, text):
        """A failure or error carries the tails of Postfix's and smtphook's logs."""
        logs = ""
        if "--- Postfix log ---" not in text:  # DeliveryFailed has it already
            logs += "\n--- Postfix log ---\n" + self.pf.log_tail()
        return logs + "\n--- smtphook log (tail) ---\n" + self.smtphook_log[-4000:]

    # -- helpers --------------------------------------------------------------------------

    def relay(self, msg, mail_from="alice@example.org", rcpts=("bob@example.com",),
              mail_options=()):
        """Inject msg into Postfix; wait until Postfix logs every recipient as sent (smtphook
        answers 250 only after the web app's 2xx, so the request is recorded by then);
        return (request, queue ID, Postfix's "status=sent" lines)."""
        qid = self.pf.inject(mail_from, rcpts, msg, mail_options)
        sent = self.pf.wait_sent(qid, len(rcpts))
        reqs = self.rcv.wait_for(1)
        self.assertEqual(len(reqs), 1, "one POST for the relayed message: %r" % reqs)
        req = reqs[0]
        rid = req.header("X-Smtphook-Id")
        for line in sent:
            # Postfix got smtphook's reply to the final dot, which names the transaction.
            self.assertRegex(line, r"status=sent \(250 .*" + re.escape(rid), line)
        return req, qid, sent

    def assertRelayedExactly(self, req, msg, qid, mail_from, rcpts):
        """The posted body is msg byte for byte after the Received: field Postfix prepends
        for queue ID qid, and the envelope is the injected one, from Postfix on 127.0.0.1."""
        body = req.body
        self.assertIsNotNone(body)
        self.assertGreater(len(body), len(msg), "Postfix adds a Received: field")
        self.assertEqual(body[-len(msg):], msg, "the injected message, unchanged")
        added = body[:-len(msg)].decode("utf-8", "replace")
        self.assertTrue(added.endswith("\r\n"), added)
        fields = re.split(r"\r\n(?![ \t])", added[:-2])  # unfold: one entry per field
        for field in fields:
            self.assertRegex(field, r"^Received: ", "Postfix adds Received: only: %r" % added)
        self.assertRegex(fields[0], r"by %s \(Postfix\) with \S+ id %s\b"
                         % (re.escape(postfix.HOSTNAME), re.escape(qid)), fields[0])

        env = req.envelope()
        self.assertEqual(env["mail_from"], mail_from)
        # Postfix's queue manager sorts a message's recipients before delivery.
        self.assertEqual(sorted(env["rcpt_to"]), sorted(rcpts))
        self.assertEqual(len(env["rcpt_to"]), len(rcpts))
        self.assertEqual(env["client"]["address"], HOST)
        self.assertEqual(env["client"]["helo"], postfix.HOSTNAME)
        self.assertEqual(env["size"], len(body))


class PlainRelay(PostfixRelayCase):
    """smtp_tls_security_level = none, smtphook without TLS."""

    def test_message_arrives_byte_exact(self):
        msg = message(body=(b"First line.\r\n"
                            b".A line that starts with a dot (stuffed twice on the way)\r\n"
                            b"..Two dots.\r\n"
                            b"Trailing blanks stay:  \t\r\n"
                            b"\r\n"
                            b"After an empty line; two empty lines end the body.\r\n"
                            b"\r\n"
                            b"\r\n"))
        req, qid, _ = self.relay(msg)
        self.assertRelayedExactly(req, msg, qid, "alice@example.org", ["bob@example.com"])
        env = req.envelope()
        self.assertIsNone(env["tls"])
        self.assertEqual(req.path, "/inbound")

    def test_8bit_body_and_longest_line(self):
        long_line = (b"0123456789" * 100)[:LONG_LINE_OCTETS]
        body = ("Gr\u00fc\u00dfe aus K\u00f6ln, \u00e9t\u00e9, \u20ac 5, \u2603\r\n"
                .encode("utf-8")
                + b"Latin-1, not UTF-8: caf\xe9 \xa9 \xff\r\n"
                + long_line + b"\r\n"
                + b"end\r\n")
        msg = message(extra_headers=(b"MIME-Version: 1.0\r\n"
                                     b"Content-Type: text/plain; charset=utf-8\r\n"
                                     b"Content-Transfer-Encoding: 8bit\r\n"),
                      body=body)
        req, qid, _ = self.relay(msg, mail_options=["BODY=8BITMIME"])
        self.assertRelayedExactly(req, msg, qid, "alice@example.org", ["bob@example.com"])
        self.assertIn(b"\r\n" + long_line + b"\r\n", req.body)
        # Postfix passed the body on as 8-bit (no quoted-printable): smtphook offers 8BITMIME.
        self.assertEqual(req.envelope()["params"]["body"], "8BITMIME")

    def test_three_recipients_one_transaction(self):
        rcpts = ["carol@example.com", "alice@example.com", "dave+tag@example.com"]
        msg = message(extra_headers=b"Cc: carol@example.com, dave+tag@example.com\r\n",
                      body=b"To three.\r\n")
        req, qid, sent = self.relay(msg, mail_from="bounces@example.org", rcpts=rcpts)
        self.assertRelayedExactly(req, msg, qid, "bounces@example.org", rcpts)
        self.assertEqual(len(sent), 3, sent)

    def test_smtputf8_envelope(self):
        msg = message(extra_headers="X-Greeting: Gr\u00fc\u00dfe\r\n".encode("utf-8"),
                      body="J\u00f6rg says hi.\r\n".encode("utf-8"))
        sender, rcpt = "j\u00f6rg@ex\u00e4mple.org", "\u00fcser@example.com"
        req, qid, _ = self.relay(msg, mail_from=sender, rcpts=[rcpt],
                                 mail_options=["SMTPUTF8", "BODY=8BITMIME"])
        self.assertRelayedExactly(req, msg, qid, sender, [rcpt])
        self.assertTrue(req.envelope()["params"]["smtputf8"])


class TLSRelay(PostfixRelayCase):
    """smtphook offers STARTTLS and requires it; Postfix relays with
    smtp_tls_security_level = verify: the chain must lead to the test CA and, the relayhost
    being [127.0.0.1], the certificate must name 127.0.0.1 in an IP address SAN
    (smtp_tls_verify_cert_match = hostname; a certificate with DNS names only is deferred
    with "IP address mismatch"). Postfix sends the certificate's DNS name as SNI."""

    @classmethod
    def setUpClass(cls):
        postfix.require_root()  # before any files are made
        cls.pki = tempfile.mkdtemp(prefix="smtphook-postfix-pki-")
        cls.addClassCleanup(shutil.rmtree, cls.pki, True)
        cls.ca = certs.CA(cls.pki)
        cls.cert, cls.key = cls.ca.issue("smtphook", names=(SMTPHOOK_NAME, HOST))
        super().setUpClass()

    @classmethod
    def postfix_options(cls):
        return {"tls_level": "verify", "ca_file": cls.ca.ca_file,
                "verify_match": "hostname", "servername": SMTPHOOK_NAME}

    def smtphook_options(self):
        return {"tls": {"certificates": [{"cert": self.cert, "key": self.key}]},
                "listeners": [{"address": "%s:%d" % (HOST, self.relay_port),
                               "tls": "starttls", "require_tls": True}]}

    def test_verified_starttls_relay(self):
        msg = message(body=b"Over TLS.\r\n.dot\r\n")
        req, qid, sent = self.relay(msg)
        self.assertRelayedExactly(req, msg, qid, "alice@example.org", ["bob@example.com"])

        # Postfix checked the chain and the name ("Verified", not "Trusted"/"Untrusted").
        established = self.pf.tls_lines(sent[0])
        self.assertTrue(established, "no TLS connection logged by Postfix")
        m = re.search(r"Verified TLS connection established to %s\[%s\]:%d: (TLSv[\d.]+) "
                      r"with cipher (\S+)" % (re.escape(HOST), re.escape(HOST),
                                              self.relay_port), established[-1])
        self.assertIsNotNone(m, established[-1])

        tls = req.envelope()["tls"]
        self.assertIsInstance(tls, dict)
        self.assertIn(tls["version"], ("TLSv1.2", "TLSv1.3"))
        self.assertEqual(tls["version"], m.group(1))
        self.assertIsInstance(tls["cipher"], str)
        self.assertTrue(tls["cipher"])
        if tls["version"] == "TLSv1.3":  # OpenSSL and IANA names agree for TLS 1.3 suites
            self.assertEqual(tls["cipher"], m.group(2))
        self.assertEqual(tls["sni"], SMTPHOOK_NAME)
        self.assertIsNone(tls["client_certificate"])
