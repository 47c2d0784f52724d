"""test_clients.py - real SMTP clients against smtphook: Python's smtplib, swaks, Postfix's
smtp-source (1000 messages over 20 parallel sessions) and curl."""

import email.message
import email.policy
import os
import shutil
import smtplib
import subprocess
import unittest

from helpers import HOST
from testcase import SmtphookTestCase

SWAKS = "/usr/bin/swaks"
SMTP_SOURCE = "/usr/sbin/smtp-source"


def tool(path):
    """The tool's path; a missing tool fails the test (CI installs it), never skips."""
    if os.access(path, os.X_OK):
        return path
    found = shutil.which(os.path.basename(path))
    if found is None:
        raise AssertionError("%s is not installed (apt-get install %s)"
                             % (path, "swaks" if "swaks" in path else "postfix"))
    return found


class Smtplib(SmtphookTestCase):
    def setUp(self):
        self.rcv = self.start_receiver()
        self.sh = self.start_smtphook(self.rcv)

    def client(self):
        s = smtplib.SMTP(HOST, self.sh.port, local_hostname="smtplib.test", timeout=10)
        self.addCleanup(s.close)
        return s

    def test_sendmail(self):
        s = self.client()
        refused = s.sendmail("alice@example.org", ["bob@example.com", "carol@example.com"],
                             b"Subject: smtplib\r\n\r\n.dot line\r\nend\r\n")
        s.quit()
        self.assertEqual(refused, {})
        req = self.rcv.wait_for(1)[0]
        self.assertEqual(req.body, b"Subject: smtplib\r\n\r\n.dot line\r\nend\r\n")
        env = req.envelope()
        self.assertEqual(env["mail_from"], "alice@example.org")
        self.assertEqual(env["rcpt_to"], ["bob@example.com", "carol@example.com"])
        self.assertEqual(env["client"]["helo"], "smtplib.test")

    def test_data_reply_carries_id(self):
        s = self.client()
        s.ehlo()
        self.assertTrue(s.has_extn("pipelining"))
        self.assertTrue(s.has_extn("smtputf8"))
        self.assertEqual(s.mail("a@example.org")[0], 250)
        self.assertEqual(s.rcpt("b@example.com")[0], 250)
        code, text = s.data(b"Subject: id\r\n\r\nx\r\n")
        s.quit()
        self.assertEqual(code, 250)
        rid = self.rcv.wait_for(1)[0].header("X-Smtphook-Id")
        self.assertIn(rid.encode(), text)
        self.assertTrue(text.startswith(b"2.0.0"), text)

    def test_send_message_utf8(self):
        msg = email.message.EmailMessage(policy=email.policy.SMTPUTF8)
        msg["From"] = "J\u00f6rg <j\u00f6rg@ex\u00e4mple.org>"
        msg["To"] = "\u00fcser@example.com"
        msg["Subject"] = "Gr\u00fc\u00dfe"
        msg.set_content("Hallo \u00e4\u00f6\u00fc\n.line with dot\n")
        s = self.client()
        self.assertEqual(s.send_message(msg), {})
        s.quit()
        req = self.rcv.wait_for(1)[0]
        env = req.envelope()
        self.assertEqual(env["mail_from"], "j\u00f6rg@ex\u00e4mple.org")
        self.assertEqual(env["rcpt_to"], ["\u00fcser@example.com"])
        self.assertTrue(env["params"]["smtputf8"])
        got = email.message_from_bytes(req.body, policy=email.policy.default)
        self.assertEqual(got["Subject"], "Gr\u00fc\u00dfe")
        self.assertIn(".line with dot", got.get_content())

    def test_refused_recipient_reported(self):
        s = self.client()
        refused = s.sendmail("a@example.org", ["ok@example.com", "no@elsewhere.test"],
                             b"Subject: partial\r\n\r\nx\r\n")
        s.quit()
        self.assertEqual(list(refused), ["no@elsewhere.test"])
        self.assertEqual(refused["no@elsewhere.test"][0], 550)
        self.assertEqual(self.rcv.wait_for(1)[0].envelope()["rcpt_to"], ["ok@example.com"])

    def test_failure_raises_for_sender(self):
        self.rcv.set(status=503)
        s = self.client()
        with self.assertRaises(smtplib.SMTPDataError) as cm:
            s.sendmail("a@example.org", ["b@example.com"], b"Subject: f\r\n\r\nx\r\n")
        self.assertEqual(cm.exception.smtp_code, 451)
        s.quit()


class Swaks(SmtphookTestCase):
    def test_swaks_delivers(self):
        swaks = tool(SWAKS)
        rcv = self.start_receiver()
        sh = self.start_smtphook(rcv)
        p = subprocess.run([swaks, "--server", "%s:%d" % (HOST, sh.port),
                            "--from", "alice@example.org", "--to", "support@example.com",
                            "--helo", "swaks.test", "--header", "Subject: hello from swaks",
                            "--body", "It works."],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        req = rcv.wait_for(1)[0]
        env = req.envelope()
        self.assertEqual(env["mail_from"], "alice@example.org")
        self.assertEqual(env["rcpt_to"], ["support@example.com"])
        self.assertEqual(env["client"]["helo"], "swaks.test")
        self.assertIn(b"Subject: hello from swaks\r\n", req.body)
        self.assertIn(b"It works.", req.body)
        self.assertIn("250 2.0.0", p.stdout)
        self.assertIn(req.header("X-Smtphook-Id"), p.stdout)

    def test_swaks_pipelining(self):
        swaks = tool(SWAKS)
        rcv = self.start_receiver()
        sh = self.start_smtphook(rcv)
        p = subprocess.run([swaks, "--server", "%s:%d" % (HOST, sh.port), "--pipeline",
                            "--from", "a@example.org", "--to", "b@example.com,c@example.com",
                            "--body", "pipelined"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(rcv.wait_for(1)[0].envelope()["rcpt_to"],
                         ["b@example.com", "c@example.com"])

    def test_swaks_sees_temporary_failure(self):
        swaks = tool(SWAKS)
        rcv = self.start_receiver(status=500)
        sh = self.start_smtphook(rcv)
        p = subprocess.run([swaks, "--server", "%s:%d" % (HOST, sh.port),
                            "--from", "a@example.org", "--to", "b@example.com"],
                           capture_output=True, text=True, timeout=60)
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertIn("451", p.stdout)


class SmtpSource(SmtphookTestCase):
    def test_thousand_messages_twenty_sessions(self):
        source = tool(SMTP_SOURCE)
        rcv = self.start_receiver()
        sh = self.start_smtphook(rcv)
        p = subprocess.run([source, "-s", "20", "-m", "1000", "-f", "sender@example.org",
                            "-t", "rcpt@example.com", "%s:%d" % (HOST, sh.port)],
                           capture_output=True, text=True, timeout=240)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr + sh.log()[-3000:])
        reqs = rcv.wait_for(1000, timeout=20)
        self.assertEqual(len(reqs), 1000)
        ids = {r.header("X-Smtphook-Id") for r in reqs}
        self.assertEqual(len(ids), 1000, "X-Smtphook-Id values are not unique")
        self.assertTrue(all(r.envelope()["rcpt_to"] == ["rcpt@example.com"] for r in reqs))


class Curl(SmtphookTestCase):
    @unittest.skipUnless(shutil.which("curl"), "curl not installed")
    def test_curl_upload(self):
        rcv = self.start_receiver()
        sh = self.start_smtphook(rcv)
        body = b"Subject: hello\r\n\r\nIt works.\r\n"
        p = subprocess.run(["curl", "-sS", "--url", "smtp://%s:%d" % (HOST, sh.port),
                            "--mail-from", "alice@example.org", "--mail-rcpt",
                            "support@example.com", "--upload-file", "-"],
                           input=body, capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(rcv.wait_for(1)[0].body, body)


if __name__ == "__main__":
    unittest.main()
