"""test_presets.py - the presets against the real receivers they are for, unchanged, from
Debian's packages: django-anymail's Mailgun and SendGrid inbound webhooks (python3-django,
python3-django-anymail) and Rails Action Mailbox's relay, Mailgun and SendGrid ingresses
(ruby-rails). Each test starts the real app on loopback, sends mail through smtphook and reads
what the app stored: the message, the recipient it routed on, the sender.

anymail decodes the raw message field as UTF-8 text (Django's form parsing), so only UTF-8 (or
7-bit) messages come back byte for byte there; Rails keeps the bytes. Messages here are UTF-8
unless a test says otherwise.
"""

import base64
import hashlib
import json
import unittest

from django_app import MAILGUN_PATH, SENDGRID_PATH, DjangoApp
from helpers import free_port
from smtphook_process import make_config
from testcase import SmtphookTestCase

SENDER = "sender@example.org"
MAILGUN_KEY = "key-itest-0123456789abcdef"  # the webhook signing key both sides know
SENDGRID_USER, SENDGRID_PASS = "inbound", "s3cret-itest"
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
                            env={"MAILGUN_KEY": MAILGUN_KEY, "SENDGRID_PASS": SENDGRID_PASS})

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

    def test_wrong_password_is_refused(self):
        self._stop_smtphook(self.sh)
        self.start_preset(self.app.url(SENDGRID_PATH), "sendgrid",
                          basic_auth={"user": SENDGRID_USER, "password": "wrong"})
        self.assertReply(self.send_mail(utf8_message()), 550)
        self.assertEqual(self.app.events(), [])


if __name__ == "__main__":
    unittest.main()
