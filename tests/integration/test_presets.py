"""test_presets.py - the presets against the real receivers they are for, unchanged, from
Debian's packages: django-anymail's Mailgun and SendGrid inbound webhooks (python3-django,
python3-django-anymail) and Rails Action Mailbox's relay, Mailgun and SendGrid ingresses
(ruby-rails). Each test starts the real app on loopback, sends mail through smtphook and reads
what the app stored: the message, the recipient it routed on, the sender. The mailgun and
sendgrid forms are also parsed by generic multipart parsers (Python's email package, Node's
busboy), and a retried mailgun attempt goes through a proxy in front of anymail.

anymail decodes the raw message field as UTF-8 text (Django's form parsing), so only UTF-8 (or
7-bit) messages come back byte for byte there; Rails keeps the bytes. Messages here are UTF-8
unless a test says otherwise.
"""

import base64
import email
import email.policy
import hashlib
import hmac
import http.client
import json
import threading
import unittest
import urllib.parse

from django_app import MAILGUN_PATH, SENDGRID_PATH, DjangoApp
from helpers import free_port
from node_receiver import NodeReceiver, part_bytes
from rails_app import RailsApp
from smtphook_process import make_config
from testcase import SmtphookTestCase

SENDER = "sender@example.org"
MAILGUN_KEY = "key-itest-0123456789abcdef"  # the webhook signing key both sides know
SENDGRID_USER, SENDGRID_PASS = "inbound", "s3cret-itest"
RAILS_PASS = "itest-ingress-password"  # Action Mailbox's ingress password
RAILS_RELAY = "/rails/action_mailbox/relay/inbound_emails"
RAILS_MAILGUN = "/rails/action_mailbox/mailgun/inbound_emails/mime"
RAILS_SENDGRID = "/rails/action_mailbox/sendgrid/inbound_emails"


def latin1_message(to="bob@example.net"):
    """An 8-bit message that is not UTF-8, a long line, lines starting with dots, CRLF."""
    return (b"From: Ren\xe9 <rene@example.org>\r\nTo: " + to.encode() + b"\r\n"
            b"Subject: caf\xe9\r\nMessage-ID: <latin1.%d@example.org>\r\n"
            b"Content-Type: text/plain; charset=iso-8859-1\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n\r\n"
            b"Caf\xe9 cr\xe8me.\r\n" + b"z" * 1500 + b"\r\n.dot\r\n..dots\r\n")
BIG_LIMIT = 40 * 1024 * 1024


def utf8_message(to="someone@example.net"):
    """A UTF-8 message with a long line, dot-leading lines and an attachment part."""
    return ("From: J\u00f6rg <jorg@example.org>\r\nTo: %s\r\n"
            "Subject: Gr\u00fc\u00dfe \u2709\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
            "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n"
            "Caf\u00e9 cr\u00e8me.\r\n%s\r\n.leading dot\r\n..two\r\n"
            "--b1\r\nContent-Type: application/octet-stream\r\n"
            "Content-Disposition: attachment; filename=\"a.bin\"\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\nAAECAwQ=\r\n--b1--\r\n"
            % (to, "x" * 1200)).encode()


def edge_message(to="someone@example.net"):
    """A UTF-8 message whose body has lines of exactly 998 bytes (RFC 5322's limit), a line
    that is a lone dot, one of two dots, dot-leading lines, and ends in a dot line."""
    return ("From: J\u00f6rg <jorg@example.org>\r\nTo: %s\r\nSubject: edges \u2709\r\n"
            "Message-ID: <edges@example.org>\r\n\r\n"
            ".first line of the body\r\n%s\r\n.\r\n..\r\n...\r\n%s\r\n"
            "\u00e9%s\r\n.end\r\n" % (to, "a" * 998, "." * 998, "b" * 996)).encode()


# 100 recipients (limits.max_recipients), one that routes (support@) in the middle
MANY_RCPTS = ["r%03d@example.com" % i for i in range(50)] + ["support@example.com"] + \
    ["r%03d@example.com" % i for i in range(50, 99)]


def big_message():
    """Over 30 MB, 998-byte lines, dot-leading lines every so often."""
    return b"Subject: big\r\nMessage-ID: <big@example.org>\r\n\r\n" + \
        (b"." + b"0123456789" * 99 + b"abcdefg\r\n" + b"..x\r\n") * 30000


def mailgun_signature(key, timestamp, token):
    """Mailgun's signature: hex HMAC-SHA256 of timestamp then token under the signing key."""
    return hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()


def form_parts(content_type, body):
    """A multipart/form-data body parsed by Python's email package as receivers do: {name:
    (part, payload bytes)}, in order."""
    doc = email.message_from_bytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" +
                                   body, policy=email.policy.HTTP)
    assert doc.is_multipart() and not doc.defects, doc.defects
    out = {}
    for part in doc.get_payload():
        name = part.get_param("name", header="content-disposition")
        assert name not in out, name
        out[name] = (part, part.get_payload(decode=True))
    return out


class PresetCase(SmtphookTestCase):

    def start_preset(self, url, preset, **settings):
        ep = {"url": url, "preset": preset, "timeout_ms": 20000, "connect_timeout_ms": 2000,
              "retry": {"max_attempts": 1}}
        ep.update(settings)
        port = free_port()
        cfg = make_config(port, None, endpoints={"app": ep},
                          limits={"max_message_bytes": BIG_LIMIT,
                                  "transaction_timeout_ms": 60000})
        self.start_smtphook(config=cfg, port=port,
                            env={"MAILGUN_KEY": MAILGUN_KEY, "SENDGRID_PASS": SENDGRID_PASS,
                 "RAILS_PASS": RAILS_PASS})

    def start_rails(self, ingress, **kw):
        app = RailsApp(ingress, **kw)
        app.start()
        self.addCleanup(app.stop)
        return app

    def start_django(self, **kw):
        app = DjangoApp(**kw)
        app.start()
        self.addCleanup(app.stop)
        return app


class DjangoMailgunTest(PresetCase):

    def setUp(self):
        self.app = self.start_django(signing_key=MAILGUN_KEY)
        self.start_preset(self.app.url(MAILGUN_PATH), "mailgun",
                          signing={"scheme": "mailgun", "key": "${MAILGUN_KEY}"})

    def test_message_sender_and_recipient(self):
        msg = utf8_message()
        reply = self.send_mail(msg, mail_from=SENDER, rcpts=["support@example.com"],
                               mail_params="SMTPUTF8")
        self.assertReply(reply, 250, msg=self.app.log())
        ev = self.app.wait_events(1)[0]
        self.assertEqual(ev["esp_name"], "Mailgun")
        self.assertEqual(ev["envelope_sender"], SENDER)
        self.assertEqual(ev["envelope_recipient"], "support@example.com")
        self.assertEqual(ev["subject"], "Gr\u00fc\u00dfe \u2709")
        self.assertEqual(ev["from"][0]["addr_spec"], "jorg@example.org")
        self.assertEqual(base64.b64decode(ev["field_b64"]), msg)
        self.assertEqual(base64.b64decode(ev["attachments"][0]["content_b64"]), b"\0\1\2\3\4")
        self.assertEqual(ev["text"], "Caf\u00e9 cr\u00e8me.\r\n%s\r\n.leading dot\r\n..two"
                         % ("x" * 1200))

    def test_null_sender_and_two_recipients(self):
        reply = self.send_mail(utf8_message(), mail_from="",
                               rcpts=["a@example.com", "b@example.com"])
        self.assertReply(reply, 250, msg=self.app.log())
        ev = self.app.wait_events(1)[0]
        self.assertEqual(ev["envelope_sender"], "")
        self.assertEqual(ev["envelope_recipient"], "a@example.com, b@example.com")

    def test_100_recipients_and_edge_lines(self):
        msg = edge_message()
        reply = self.send_mail(msg, mail_from=SENDER, rcpts=MANY_RCPTS, mail_params="SMTPUTF8")
        self.assertReply(reply, 250, msg=self.app.log())
        ev = self.app.wait_events(1)[0]
        self.assertEqual(ev["envelope_recipient"], ", ".join(MANY_RCPTS))
        self.assertEqual(ev["form"]["recipient"], [", ".join(MANY_RCPTS)])
        self.assertEqual(base64.b64decode(ev["field_b64"]), msg)
        self.assertEqual(ev["to"][0]["addr_spec"], "someone@example.net")

    def test_message_over_djangos_form_limit_is_refused_by_the_app(self):
        """Django keeps at most 2.5 MiB of form fields by default: anymail answers 400, a
        permanent refusal (the README says to raise DATA_UPLOAD_MAX_MEMORY_SIZE)."""
        msg = b"Subject: big\r\n\r\n" + b"y" * (3 * 1024 * 1024) + b"\r\n"
        reply = self.send_mail(msg, reply_timeout=30)
        self.assertReply(reply, 550)


class DjangoMailgunKeyTest(PresetCase):

    def test_wrong_key_is_refused(self):
        app = self.start_django(signing_key="key-the-app-has-another")
        self.start_preset(app.url(MAILGUN_PATH), "mailgun",
                          signing={"scheme": "mailgun", "key": "${MAILGUN_KEY}"})
        self.assertReply(self.send_mail(utf8_message()), 550)
        self.assertEqual(app.events(), [])

    def test_30mb_message_with_the_limit_raised(self):
        app = self.start_django(signing_key=MAILGUN_KEY, max_form_bytes="none")
        self.start_preset(app.url(MAILGUN_PATH), "mailgun",
                          signing={"scheme": "mailgun", "key": "${MAILGUN_KEY}"})
        msg = b"Subject: big\r\n\r\n" + (b"0123456789" * 100 + b"\r\n") * 30000
        self.assertReply(self.send_mail(msg, reply_timeout=60), 250, msg=app.log())
        ev = app.wait_events(1, timeout=30)[0]
        self.assertEqual(hashlib.sha256(base64.b64decode(ev["field_b64"])).hexdigest(),
                         hashlib.sha256(msg).hexdigest())


class DjangoMailgunRetryTest(PresetCase):

    def test_retry_is_signed_with_a_fresh_timestamp_and_token(self):
        """A proxy in front of anymail passes every attempt on but answers the first 503:
        the retry (1.1 s or more later) has another timestamp and token, and both
        signatures verify, with Python's hmac and for anymail, which took both."""
        app = self.start_django(signing_key=MAILGUN_KEY)
        target = urllib.parse.urlsplit(app.url(MAILGUN_PATH))
        answers, lock = [], threading.Lock()

        def forward(req):
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=20)
            try:
                conn.request("POST", target.path, body=req.body,
                             headers={"Content-Type": req.header("Content-Type")})
                status = conn.getresponse().status
            finally:
                conn.close()
            with lock:
                answers.append(status)
                return (503 if len(answers) == 1 else status), [], 0

        proxy = self.start_receiver(responder=forward)
        self.start_preset(proxy.url(MAILGUN_PATH), "mailgun",
                          signing={"scheme": "mailgun", "key": "${MAILGUN_KEY}"},
                          retry={"max_attempts": 2, "initial_backoff_ms": 2200,
                                 "max_backoff_ms": 2200})
        msg = utf8_message()
        reply = self.send_mail(msg, rcpts=["support@example.com"], mail_params="SMTPUTF8",
                               reply_timeout=30)
        self.assertReply(reply, 250, msg=app.log())
        self.assertEqual(answers, [200, 200])
        forms = [form_parts(q.header("Content-Type"), q.body) for q in proxy.requests]
        self.assertEqual(len(forms), 2)
        signed = []
        for form in forms:
            ts, token, sig = (form[k][1].decode() for k in ("timestamp", "token", "signature"))
            self.assertEqual(sig, mailgun_signature(MAILGUN_KEY, ts, token))
            self.assertEqual(form["body-mime"][1], msg)
            signed.append((ts, token))
        self.assertNotEqual(signed[0][0], signed[1][0])
        self.assertNotEqual(signed[0][1], signed[1][1])
        evs = app.wait_events(2)
        self.assertEqual([e["event_id"] for e in evs], [t for _, t in signed])
        self.assertEqual([e["form"]["timestamp"] for e in evs], [[t] for t, _ in signed])
        self.assertEqual([base64.b64decode(e["field_b64"]) for e in evs], [msg, msg])


class DjangoSendgridTest(PresetCase):

    def setUp(self):
        self.app = self.start_django(webhook_secret="%s:%s" % (SENDGRID_USER, SENDGRID_PASS))
        self.start_preset(self.app.url(SENDGRID_PATH), "sendgrid",
                          basic_auth={"user": SENDGRID_USER, "password": "${SENDGRID_PASS}"})

    def test_message_sender_and_recipient(self):
        msg = utf8_message()
        reply = self.send_mail(msg, mail_from=SENDER, rcpts=["support@example.com"],
                               mail_params="SMTPUTF8")
        self.assertReply(reply, 250, msg=self.app.log())
        ev = self.app.wait_events(1)[0]
        self.assertEqual(ev["esp_name"], "SendGrid")
        self.assertEqual(ev["envelope_sender"], SENDER)
        self.assertEqual(ev["envelope_recipient"], "support@example.com")
        self.assertEqual(ev["subject"], "Gr\u00fc\u00dfe \u2709")
        self.assertEqual(base64.b64decode(ev["field_b64"]), msg)

    def test_utf8_recipient(self):
        rcpt = "j\u00f6rg@example.com"
        reply = self.send_mail(utf8_message(), rcpts=[rcpt], mail_params="SMTPUTF8")
        self.assertReply(reply, 250, msg=self.app.log())
        self.assertEqual(self.app.wait_events(1)[0]["envelope_recipient"], rcpt)

    def test_100_recipients_and_edge_lines(self):
        """anymail keeps the first envelope recipient; the envelope field has them all."""
        msg = edge_message()
        reply = self.send_mail(msg, mail_from=SENDER, rcpts=MANY_RCPTS, mail_params="SMTPUTF8")
        self.assertReply(reply, 250, msg=self.app.log())
        ev = self.app.wait_events(1)[0]
        self.assertEqual(ev["envelope_recipient"], MANY_RCPTS[0])
        self.assertEqual(json.loads(ev["form"]["envelope"][0]),
                         {"from": SENDER, "to": MANY_RCPTS})
        self.assertEqual(base64.b64decode(ev["field_b64"]), msg)

    def test_wrong_password_is_refused(self):
        self._stop_smtphook(self.sh)
        self.start_preset(self.app.url(SENDGRID_PATH), "sendgrid",
                          basic_auth={"user": SENDGRID_USER, "password": "wrong"})
        self.assertReply(self.send_mail(utf8_message()), 550)
        self.assertEqual(self.app.events(), [])


class DjangoSendgridBigTest(PresetCase):

    def test_30mb_message_with_the_limit_raised(self):
        app = self.start_django(webhook_secret="%s:%s" % (SENDGRID_USER, SENDGRID_PASS),
                                max_form_bytes="none")
        self.start_preset(app.url(SENDGRID_PATH), "sendgrid",
                          basic_auth={"user": SENDGRID_USER, "password": "${SENDGRID_PASS}"})
        msg = big_message()
        reply = self.send_mail(msg, rcpts=["support@example.com"], reply_timeout=90)
        self.assertReply(reply, 250, msg=app.log())
        ev = app.wait_events(1, timeout=30)[0]
        self.assertEqual(ev["envelope_recipient"], "support@example.com")
        self.assertEqual(hashlib.sha256(base64.b64decode(ev["field_b64"])).hexdigest(),
                         hashlib.sha256(msg).hexdigest())


class RailsRelayTest(PresetCase):
    """Action Mailbox's relay ingress: the raw message with X-Original-To lines in front, so
    a Bcc'd or forwarded recipient routes (the To: header names someone else)."""

    def setUp(self):
        self.app = self.start_rails("relay", password=RAILS_PASS)
        self.start_preset(self.app.url(RAILS_RELAY), "rails_relay",
                          basic_auth={"user": "actionmailbox", "password": "${RAILS_PASS}"})

    def test_bcc_recipient_routes_and_bytes_are_exact(self):
        msg = latin1_message(to="bob@example.net")
        reply = self.send_mail(msg, mail_from=SENDER, rcpts=["support@example.com"])
        self.assertReply(reply, 250, msg=self.app.log()[-2000:])
        mail = self.app.wait_emails(1)[0]
        self.assertEqual(mail["mailbox"], "support")
        self.assertEqual(mail["raw"], b"X-Original-To: support@example.com\r\n" + msg)
        self.assertEqual(mail["x_original_to"], ["support@example.com"])

    def test_two_recipients_two_lines(self):
        msg = utf8_message()
        reply = self.send_mail(msg, rcpts=["a@example.com", "support@example.com"],
                               mail_params="SMTPUTF8")
        self.assertReply(reply, 250, msg=self.app.log()[-2000:])
        mail = self.app.wait_emails(1)[0]
        self.assertEqual(mail["raw"], b"X-Original-To: a@example.com\r\n"
                         b"X-Original-To: support@example.com\r\n" + msg)
        self.assertEqual(mail["mailbox"], "support")

    def test_utf8_recipient(self):
        rcpt = "j\u00f6rg@example.com"
        msg = edge_message()
        reply = self.send_mail(msg, mail_from="s\u00e9nder@example.org", rcpts=[rcpt],
                               mail_params="SMTPUTF8")
        self.assertReply(reply, 250, msg=self.app.log()[-2000:])
        mail = self.app.wait_emails(1)[0]
        self.assertEqual(mail["raw"], b"X-Original-To: " + rcpt.encode() + b"\r\n" + msg)
        self.assertEqual(mail["x_original_to"], [rcpt])
        self.assertIn(rcpt, mail["recipients"])
        self.assertEqual(mail["mailbox"], "catchall")

    def test_100_recipients_and_edge_lines(self):
        msg = edge_message()
        reply = self.send_mail(msg, rcpts=MANY_RCPTS, mail_params="SMTPUTF8")
        self.assertReply(reply, 250, msg=self.app.log()[-2000:])
        mail = self.app.wait_emails(1)[0]
        self.assertEqual(mail["raw"], b"".join(b"X-Original-To: %s\r\n" % a.encode()
                                               for a in MANY_RCPTS) + msg)
        self.assertEqual(mail["x_original_to"], MANY_RCPTS)
        self.assertEqual(mail["mailbox"], "support")

    def test_30mb_message(self):
        msg = b"Subject: big\r\nMessage-ID: <big@example.org>\r\n\r\n" + \
            (b"0123456789" * 100 + b"\r\n") * 30000
        self.assertReply(self.send_mail(msg, rcpts=["support@example.com"], reply_timeout=90),
                         250, msg=self.app.log()[-2000:])
        mail = self.app.wait_emails(1, timeout=30)[0]
        self.assertEqual(hashlib.sha256(mail["raw"]).hexdigest(),
                         hashlib.sha256(b"X-Original-To: support@example.com\r\n" + msg)
                         .hexdigest())


class RailsRelayPasswordTest(PresetCase):

    def test_wrong_password_is_temporary(self):
        """401 is 451: nothing is lost while the password is being fixed."""
        app = self.start_rails("relay", password=RAILS_PASS)
        self.start_preset(app.url(RAILS_RELAY), "rails_relay",
                          basic_auth={"user": "actionmailbox", "password": "not-it"})
        self.assertReply(self.send_mail(utf8_message()), 451)
        self.assertEqual(app.emails(), [])


class RailsMailgunTest(PresetCase):

    def setUp(self):
        self.app = self.start_rails("mailgun", signing_key=MAILGUN_KEY)
        self.start_preset(self.app.url(RAILS_MAILGUN), "mailgun",
                          signing={"scheme": "mailgun", "key": "${MAILGUN_KEY}"})

    def test_8bit_message_routes_on_the_recipient(self):
        """Rails's Mailgun ingress prepends "X-Original-To: <recipient>" and a bare LF."""
        msg = latin1_message()
        reply = self.send_mail(msg, mail_from=SENDER, rcpts=["support@example.com"])
        self.assertReply(reply, 250, msg=self.app.log()[-2000:])
        mail = self.app.wait_emails(1)[0]
        self.assertEqual(mail["mailbox"], "support")
        self.assertEqual(mail["raw"], b"X-Original-To: support@example.com\n" + msg)

    def test_utf8_recipient_and_8bit_message(self):
        rcpt = "j\u00f6rg@example.com"
        msg = latin1_message()
        reply = self.send_mail(msg, rcpts=[rcpt], mail_params="SMTPUTF8")
        self.assertReply(reply, 250, msg=self.app.log()[-2000:])
        mail = self.app.wait_emails(1)[0]
        self.assertEqual(mail["raw"], b"X-Original-To: " + rcpt.encode() + b"\n" + msg)

    def test_100_recipients_and_edge_lines(self):
        """The ingress prepends the whole recipient field as one X-Original-To line, which
        the mail gem takes as one address."""
        msg = edge_message()
        reply = self.send_mail(msg, rcpts=MANY_RCPTS, mail_params="SMTPUTF8")
        self.assertReply(reply, 250, msg=self.app.log()[-2000:])
        mail = self.app.wait_emails(1)[0]
        self.assertEqual(mail["raw"], b"X-Original-To: " + ", ".join(MANY_RCPTS).encode() +
                         b"\n" + msg)
        # one recipient string: the anchored /^support@/ does not match it (the README says
        # to route several recipients with unanchored patterns)
        self.assertEqual(mail["x_original_to"], [", ".join(MANY_RCPTS)])
        self.assertEqual(mail["recipients"], ["someone@example.net", ", ".join(MANY_RCPTS)])
        self.assertEqual(mail["mailbox"], "catchall")


class RailsFormLimitTest(PresetCase):
    """Rack buffers at most 16 MiB of form fields (not files) by default: the Mailgun and
    SendGrid ingresses then find no message and answer 400, which is 550. The 30 MB tests
    raise the limit (RACK_MULTIPART_BUFFERED_UPLOAD_BYTESIZE_LIMIT) as a deployment would."""

    def start(self, ingress, **kw):
        app = self.start_rails(ingress, password=RAILS_PASS, signing_key=MAILGUN_KEY, **kw)
        if ingress == "mailgun":
            self.start_preset(app.url(RAILS_MAILGUN), "mailgun",
                              signing={"scheme": "mailgun", "key": "${MAILGUN_KEY}"})
        else:
            self.start_preset(app.url(RAILS_SENDGRID), "sendgrid",
                              basic_auth={"user": "actionmailbox", "password": "${RAILS_PASS}"})
        return app

    def assert30mb(self, ingress):
        app = self.start(ingress, max_form_bytes=BIG_LIMIT)
        msg = big_message()
        reply = self.send_mail(msg, rcpts=["support@example.com"], reply_timeout=90)
        self.assertReply(reply, 250, msg=app.log()[-2000:])
        mail = app.wait_emails(1, timeout=30)[0]
        self.assertEqual(mail["mailbox"], "support")
        self.assertEqual(hashlib.sha256(mail["raw"]).hexdigest(),
                         hashlib.sha256(b"X-Original-To: support@example.com\n" + msg)
                         .hexdigest())

    def test_mailgun_30mb_message(self):
        self.assert30mb("mailgun")

    def test_sendgrid_30mb_message(self):
        self.assert30mb("sendgrid")

    def test_message_over_racks_limit_is_refused(self):
        app = self.start("sendgrid")
        msg = b"Subject: big\r\n\r\n" + (b"y" * 998 + b"\r\n") * (17 * 1024)
        reply = self.send_mail(msg, rcpts=["support@example.com"], reply_timeout=60)
        self.assertReply(reply, 550, "5.6.0", msg=app.log()[-2000:])
        self.assertIn("Completed 400 Bad Request", app.log())
        self.assertEqual(app.emails(), [])


class RailsMailgunKeyTest(PresetCase):

    def test_wrong_key_is_temporary(self):
        app = self.start_rails("mailgun", signing_key="another-key")
        self.start_preset(app.url(RAILS_MAILGUN), "mailgun",
                          signing={"scheme": "mailgun", "key": "${MAILGUN_KEY}"})
        self.assertReply(self.send_mail(utf8_message()), 451)
        self.assertEqual(app.emails(), [])


class RailsSendgridTest(PresetCase):

    def setUp(self):
        self.app = self.start_rails("sendgrid", password=RAILS_PASS)
        self.start_preset(self.app.url(RAILS_SENDGRID), "sendgrid",
                          basic_auth={"user": "actionmailbox", "password": "${RAILS_PASS}"})

    def test_8bit_message_and_envelope_recipients(self):
        """Rails's SendGrid ingress prepends one "X-Original-To" line (bare LF) per envelope
        recipient, the last first."""
        msg = latin1_message()
        reply = self.send_mail(msg, mail_from=SENDER,
                               rcpts=["a@example.com", "support@example.com"])
        self.assertReply(reply, 250, msg=self.app.log()[-2000:])
        mail = self.app.wait_emails(1)[0]
        self.assertEqual(mail["mailbox"], "support")
        self.assertEqual(mail["raw"], b"X-Original-To: support@example.com\n"
                         b"X-Original-To: a@example.com\n" + msg)

    def test_100_recipients_and_edge_lines(self):
        msg = edge_message()
        reply = self.send_mail(msg, rcpts=MANY_RCPTS, mail_params="SMTPUTF8")
        self.assertReply(reply, 250, msg=self.app.log()[-2000:])
        mail = self.app.wait_emails(1)[0]
        self.assertEqual(mail["raw"], b"".join(b"X-Original-To: %s\n" % a.encode()
                                               for a in reversed(MANY_RCPTS)) + msg)
        self.assertEqual(mail["mailbox"], "support")
        self.assertEqual(sorted(mail["x_original_to"]), sorted(MANY_RCPTS))


class PresetFormParsedTest(PresetCase):
    """The mailgun and sendgrid forms parsed by generic multipart/form-data parsers, Python's
    email package and Node's busboy: every field, and the message part byte for byte, for a
    UTF-8 message and for an 8-bit one labelled ISO-8859-1."""

    MESSAGES = ((utf8_message(), ["support@example.com", "j\u00f6rg@example.com"]),
                (latin1_message(), ["support@example.com"]))

    def send_both(self, url, preset):
        if preset == "mailgun":
            self.start_preset(url, "mailgun",
                              signing={"scheme": "mailgun", "key": "${MAILGUN_KEY}"})
        else:
            self.start_preset(url, "sendgrid",
                              basic_auth={"user": SENDGRID_USER, "password": "${SENDGRID_PASS}"})
        for msg, rcpts in self.MESSAGES:
            self.assertReply(self.send_mail(msg, mail_from=SENDER, rcpts=rcpts,
                                            mail_params="SMTPUTF8"), 250)

    def expected(self, preset, msg, rcpts):
        """{field: bytes} as smtphook forms them (timestamp, token, signature aside)."""
        lines = msg.partition(b"\r\n\r\n")[0].split(b"\r\n")  # none folded here
        raw = {k: v for k, _, v in (line.partition(b": ") for line in lines)}
        raw = {k.decode().lower(): v for k, v in raw.items()}
        if preset == "mailgun":
            return {"recipient": ", ".join(rcpts).encode(), "sender": SENDER.encode(),
                    "from": raw["from"], "subject": raw["subject"], "body-mime": msg}
        return {"to": raw["to"], "from": raw["from"], "subject": raw["subject"],
                "sender_ip": b"127.0.0.1",
                "envelope": json.dumps({"to": rcpts, "from": SENDER}).encode(),
                "email": msg}

    def test_parsed_by_pythons_email(self):
        for preset in ("mailgun", "sendgrid"):
            with self.subTest(preset=preset):
                r = self.start_receiver()
                self.send_both(r.url(), preset)
                for req, (msg, rcpts) in zip(r.wait_for(2), self.MESSAGES):
                    form = form_parts(req.header("Content-Type"), req.body)
                    got = {k: v for k, (_, v) in form.items()}
                    want = self.expected(preset, msg, rcpts)
                    if preset == "mailgun":
                        self.assertEqual(list(got), ["recipient", "sender", "from", "subject",
                                                     "body-mime", "timestamp", "token",
                                                     "signature"])
                        ts, token = got.pop("timestamp").decode(), got.pop("token").decode()
                        self.assertEqual(got.pop("signature").decode(),
                                         mailgun_signature(MAILGUN_KEY, ts, token))
                    else:
                        self.assertEqual(list(got), ["to", "from", "subject", "sender_ip",
                                                     "envelope", "charsets", "email"])
                        charsets = json.loads(got.pop("charsets"))
                        self.assertEqual(charsets["to"], "UTF-8")
                        want["envelope"] = json.loads(want["envelope"])
                        got["envelope"] = json.loads(got["envelope"])
                    self.assertEqual(got, want)
                    part = form["body-mime" if preset == "mailgun" else "email"][0]
                    utf8 = msg == utf8_message()
                    self.assertEqual(part.get_content_charset(), None if utf8 else "iso-8859-1")
                self._stop_smtphook(self.sh)

    def test_parsed_by_busboy(self):
        """busboy decodes a field by its part's charset (UTF-8 unless labelled): the
        ISO-8859-1 message comes back one character per byte."""
        for preset in ("mailgun", "sendgrid"):
            with self.subTest(preset=preset):
                node = NodeReceiver()
                node.start()
                self.addCleanup(node.stop)
                self.send_both(node.url(), preset)
                reqs = node.wait_requests(2)
                self.assertEqual(len(reqs), 2)
                for req, (msg, rcpts) in zip(reqs, self.MESSAGES):
                    self.assertTrue(req["multipart"]["ok"], req["multipart"])
                    parts = req["multipart"]["parts"]
                    self.assertTrue(all(p["kind"] == "field" and not p["value_truncated"]
                                        for p in parts), parts)
                    got = {p["name"]: p["value"] for p in parts}
                    self.assertEqual(len(got), len(parts))
                    want = self.expected(preset, msg, rcpts)
                    utf8 = msg == utf8_message()
                    for name, value in want.items():
                        text = value.decode("utf-8" if utf8 or name in (
                            "recipient", "sender", "to", "sender_ip", "envelope")
                            else "latin-1")
                        if name == "envelope":
                            self.assertEqual(json.loads(got[name]), json.loads(text))
                        else:
                            self.assertEqual(got[name], text, name)
                    key = "body-mime" if preset == "mailgun" else "email"
                    body = {p["name"]: p for p in parts}[key]
                    self.assertEqual(part_bytes(body) if utf8 else
                                     body["value"].encode("latin-1"), msg)
                    if preset == "mailgun":
                        self.assertEqual(got["signature"], mailgun_signature(
                            MAILGUN_KEY, got["timestamp"], got["token"]))
                self._stop_smtphook(self.sh)
                node.stop()


if __name__ == "__main__":
    unittest.main()
