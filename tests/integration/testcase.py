"""testcase.py - the TestCase base class of the integration tests (Python standard library only).

SmtphookTestCase wires the other modules together for each test: it starts receivers and
smtphook, connects SMTP clients, and cleans up after every test, failing it when smtphook's
stderr has a sanitizer report or smtphook does not exit cleanly on SIGTERM. It also holds the
assertions and SMTP steps the tests share (a metric's value on the admin port among them),
and lets a test add the logs of what it drove to a failure's report (failure_logs).
"""

import json
import re
import signal
import time
import unittest

from helpers import HOST, admin_get, free_port, metric
from receiver import Receiver
from smtp_client import Closed, SMTPClient, dot_stuff
from smtphook_process import SANITIZER_MARKS, STOP_TIMEOUT, Smtphook, make_config


class SmtphookTestCase(unittest.TestCase):
    """Starts receivers and smtphook for a test and stops everything afterwards."""

    def failure_logs(self, text):
        """What a failure or error report of this test carries after its text (the tails of
        the logs of the software it drove); none by default."""
        return ""

    def run(self, result=None):
        if result is None:
            return super().run(result)
        first = (len(result.failures), len(result.errors))
        out = super().run(result)
        for outcomes, start in zip((result.failures, result.errors), first):
            for i in range(start, len(outcomes)):
                test, text = outcomes[i]
                case = getattr(test, "test_case", test)  # a subTest's failure: its test
                outcomes[i] = (test, text + case.failure_logs(text))
        return out

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
        if rc is not None and rc != 0 and not sh.crashed:
            self.fail("smtphook exited with %s after SIGTERM:\n%s" % (rc, log[-3000:]))

    def admin_listen(self):
        """The "admin" section of a config on a new port (self.admin_port), for metric()."""
        self.admin_port = free_port()
        return {"listen": "%s:%d" % (HOST, self.admin_port)}

    def metric(self, name, **labels):
        """One series of smtphook's /metrics now (the admin port of admin_listen()); None
        when it is absent."""
        status, text = admin_get(self.admin_port, "/metrics")
        self.assertEqual(status, 200, text)
        return metric(text, name, **labels)

    def reload(self, change=None, expect="reloaded:"):
        """SIGHUP, after change(cfg) rewrote the running configuration file when given, and
        wait until the log has one more line with expect (the reload's outcome)."""
        if change is not None:
            with open(self.sh.config_path, encoding="utf-8") as f:
                cfg = json.load(f)
            change(cfg)
            with open(self.sh.config_path, "w", encoding="utf-8") as f:
                json.dump(cfg, f)
        before = self.sh.log().count(expect)
        self.sh.signal(signal.SIGHUP)
        self.sh.signalled = False  # not a stop
        deadline = time.monotonic() + 5
        while self.sh.log().count(expect) == before and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertGreater(self.sh.log().count(expect), before, self.sh.log()[-2000:])

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
