"""test_app_reply.py - the web app's own SMTP reply (the Smtphook-Reply response header) and
the operator's (an endpoint's reply_map): sent to the sender exactly, with no id appended,
when valid; ignored with the default reply and a log line saying why when not (a class
that disagrees with the HTTP status, a malformed value, a repeated header, a response cut
off); retried only when both the HTTP answer and the chosen reply say "later".

Senders are Python's smtplib, swaks and a real Postfix relaying to smtphook, whose log,
defer record and bounce message must show the app's text exactly."""

import email
import email.policy
import os
import re
import smtplib
import subprocess
import time
import unittest

import postfix
from helpers import HOST
from test_postfix import PostfixRelayCase, message
from test_response import RawReceiver
from testcase import SmtphookTestCase

MSG = b"Subject: app reply\r\n\r\nreply chosen by the app\r\n"
NO_MAILBOX = "550 5.1.1 No mailbox named jdoe here"
QUEUED = "250 2.0.0 Queued as ticket 1234"
BUSY = "451 4.2.0 Mailbox busy, try later"
ONE = {"max_attempts": 1}
FAST = {"max_attempts": 3, "initial_backoff_ms": 20, "max_backoff_ms": 40}
SWAKS = "/usr/bin/swaks"
POSTSUPER = "/usr/sbin/postsuper"
REPLY_HEADER = "Smtphook-Reply"


def replying(status, *values):
    """A responder: status, with one Smtphook-Reply header per value."""
    return lambda req: (status, [(REPLY_HEADER, v) for v in values], 0.0)


class AppReplyCase(SmtphookTestCase):
    def start_app(self, status, *values, retry=ONE, reply_map=None):
        """A receiver answering status with the given Smtphook-Reply values; smtphook."""
        self.rcv = self.start_receiver(responder=replying(status, *values))
        ep = {"url": self.rcv.url(), "timeout_ms": 10000, "retry": retry,
              "breaker": {"failures": 0}}
        if reply_map is not None:
            ep["reply_map"] = reply_map
        self.start_smtphook(endpoints={"app": ep})
        return self.rcv

    def answer(self, status, *values):
        self.rcv.set(responder=replying(status, *values))

    def smtplib_data(self, body=MSG):
        """One message through smtplib; the reply to the final dot as one "code text"
        string, exactly as smtplib saw it."""
        with smtplib.SMTP(HOST, self.sh.port, local_hostname="smtplib.test", timeout=30) as s:
            self.assertEqual(s.ehlo()[0], 250)
            self.assertEqual(s.mail("sender@example.org")[0], 250)
            self.assertEqual(s.rcpt("rcpt@example.com")[0], 250)
            code, text = s.data(body)
        return "%d %s" % (code, text.decode("ascii"))

    def last_id(self):
        return self.rcv.requests[-1].header("X-Smtphook-Id")

    def txn_line(self, rid):
        lines = self.sh.wait_log(r"txn id=" + re.escape(rid) + r" client=")
        self.assertEqual(len(lines), 1, self.sh.log())
        return lines[0]

    def ignored_lines(self, rid):
        return [ln for ln in self.sh.log().splitlines()
                if "endpoint app for id=%s: Smtphook-Reply " % rid in ln and " ignored: " in ln]


class AppReply(AppReplyCase):
    def test_404_with_no_mailbox_text(self):
        self.start_app(404, NO_MAILBOX)
        self.assertEqual(self.smtplib_data(), NO_MAILBOX)
        self.assertEqual(len(self.rcv.requests), 1)
        rid = self.last_id()
        self.assertIn('reply="550 5.1.1"', self.txn_line(rid))
        self.assertEqual(self.ignored_lines(rid), [])
        # The raw reply line is exactly the app's: one line, nothing appended.
        c = self.connect()
        self.ehlo(c)
        reply = self.transaction(c, "sender@example.org", ["rcpt@example.com"], MSG)
        self.assertEqual(reply.lines, [NO_MAILBOX])

    def test_2xx_with_queued_text(self):
        self.start_app(200, QUEUED)
        self.assertEqual(self.smtplib_data(), QUEUED)
        self.assertIn('reply="250 2.0.0"', self.txn_line(self.last_id()))

    def test_202_and_204_with_text(self):
        self.start_app(202, "250 2.6.0 Accepted for later")
        self.assertEqual(self.smtplib_data(), "250 2.6.0 Accepted for later")
        self.answer(204, "250 2.0.0 Nothing to say")
        self.assertEqual(self.smtplib_data(), "250 2.0.0 Nothing to say")

    def test_503_with_busy_text_is_retried_then_sent(self):
        # 503 is worth another attempt and the app's reply is a 4xx: both say "later", so
        # smtphook tries again while the sender waits, and the sender hears the app's text.
        self.start_app(503, BUSY, retry=FAST)
        self.assertEqual(self.smtplib_data(), BUSY)
        reqs = self.rcv.requests
        self.assertEqual(len(reqs), 3, reqs)
        rid = self.last_id()
        self.assertEqual({r.header("X-Smtphook-Id") for r in reqs}, {rid})
        self.assertIn(":attempts=3 ", self.txn_line(rid))
        self.assertEqual(len(self.sh.wait_log(r"txn id=%s endpoint app attempt \d: 451 4\.2\.0; "
                                              r"next attempt" % re.escape(rid))), 2)

    def test_busy_text_then_success_is_our_250(self):
        # An earlier attempt's text does not stick to a later success.
        answers = [(503, [(REPLY_HEADER, BUSY)], 0.0), (200, [], 0.0)]
        self.start_app(503, retry=FAST)
        self.rcv.set(responder=lambda req: answers.pop(0) if len(answers) > 1 else answers[0])
        reply = self.send_mail(body=MSG)
        self.assertReply(reply, 250, "2.0.0")
        self.assertIdInReply(self.last_id(), reply)
        self.assertEqual(len(self.rcv.requests), 2)

    def test_503_with_permanent_text_is_not_retried(self):
        # The app turned "unavailable" into a permanent refusal: no point in another try.
        self.start_app(503, "550 5.7.1 Gone for good", retry=FAST)
        self.assertEqual(self.smtplib_data(), "550 5.7.1 Gone for good")
        self.assertEqual(len(self.rcv.requests), 1)

    def test_404_with_temporary_text_is_not_retried(self):
        # 404 is not worth another attempt (the same misconfiguration would answer), whatever
        # the text; the sender retries later.
        self.start_app(404, BUSY, retry=FAST)
        self.assertEqual(self.smtplib_data(), BUSY)
        self.assertEqual(len(self.rcv.requests), 1)

    def test_text_kept_exactly(self):
        # Inner spaces and punctuation stay; blanks around the parts and the value do not.
        self.start_app(404, "  550   5.1.1   Mailbox  <jdoe@example.com>: unknown; see "
                            "https://example.com/help?x=1&y=%41  ")
        self.assertEqual(self.smtplib_data(),
                         "550 5.1.1 Mailbox  <jdoe@example.com>: unknown; see "
                         "https://example.com/help?x=1&y=%41")

    def test_longest_text_is_sent_whole(self):
        text = "x" * 255 + "!"
        self.start_app(404, "550 5.1.1 " + text)
        self.assertEqual(self.smtplib_data(), "550 5.1.1 " + text)

    def test_swaks_sees_the_text(self):
        self.start_app(404, NO_MAILBOX)
        p = subprocess.run([SWAKS, "--server", "%s:%d" % (HOST, self.sh.port),
                            "--from", "alice@example.org", "--to", "jdoe@example.com",
                            "--helo", "swaks.test", "--body", "anyone there?"],
                           capture_output=True, text=True, timeout=60)
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertIn("<** " + NO_MAILBOX + "\n", p.stdout)


class InvalidAppReply(AppReplyCase):
    """Each value is ignored: the sender gets the default reply for the status (with the id)
    and the log says why, naming the endpoint and the transaction."""

    CASES = (
        # (status, header values, default code, default esc, reason in the log)
        (200, ["550 5.1.1 No mailbox named jdoe here"], 250, "2.0.0",
         "does not agree with the HTTP status class"),
        (500, ["250 2.0.0 Fine"], 451, "4.3.0", "does not agree with the HTTP status class"),
        (404, ["550 No mailbox here"], 451, "4.3.5", "an enhanced status code (like 5.1.1) must "
         "follow the reply code"),
        (404, ["550"], 451, "4.3.5", "an enhanced status code and a text must follow"),
        (404, ["550 5.1.1"], 451, "4.3.5", "a text must follow the enhanced status code"),
        (404, ["550 4.1.1 No mailbox"], 451, "4.3.5",
         "enhanced code class does not match the reply code"),
        (404, ["550 6.1.1 No mailbox"], 451, "4.3.5", "class must be 2, 4 or 5"),
        (404, ["550 5.1 No mailbox"], 451, "4.3.5", "class.subject.detail"),
        (404, ["550 5.1.1234 No mailbox"], 451, "4.3.5", "class.subject.detail"),
        (404, ["55 5.1.1 No mailbox"], 451, "4.3.5", "three-digit reply code"),
        (404, ["5500 5.1.1 No mailbox"], 451, "4.3.5", "three-digit reply code"),
        (404, ["570 5.1.1 No mailbox"], 451, "4.3.5", "second digit must be 0 to 5"),
        (404, ["354 3.0.0 Go on"], 451, "4.3.5", "must be 250, 4yz or 5yz"),
        (200, ["251 2.1.5 Forwarded"], 250, "2.0.0", "the only success reply code allowed is 250"),
        (503, ["421 4.3.2 Closing"], 451, "4.3.0", "421 is refused"),
        (404, ["550 5.1.1 No\tmailbox"], 451, "4.3.5", "printable ASCII"),
        (404, ["550 5.1.1 No\x01mailbox"], 451, "4.3.5", "printable ASCII"),
        (404, ["550 5.1.1 No\x7fmailbox"], 451, "4.3.5", "printable ASCII"),
        (404, ["550 5.1.1 Caf\xe9 closed"], 451, "4.3.5", "printable ASCII"),
        (404, ["550 5.1.1 " + "x" * 257], 451, "4.3.5", "longer than 256 bytes"),
        (404, [""], 451, "4.3.5", "the value is empty"),
        (404, [NO_MAILBOX, NO_MAILBOX], 451, "4.3.5", "Smtphook-Reply given more than once"),
        (200, [QUEUED, "250 2.0.0 Other"], 250, "2.0.0", "Smtphook-Reply given more than once"),
    )

    def test_each_invalid_value_is_ignored_with_a_reason(self):
        self.start_app(200)
        for n, (status, values, code, esc, why) in enumerate(self.CASES, 1):
            with self.subTest(status=status, values=values):
                self.answer(status, *values)
                reply = self.send_mail(body=MSG)
                self.assertEqual(len(self.rcv.requests), n)
                rid = self.last_id()
                self.assertReply(reply, code, esc)
                self.assertIdInReply(rid, reply)  # our own text, not the app's
                self.assertIn('reply="%d %s"' % (code, esc), self.txn_line(rid))
                lines = self.ignored_lines(rid)
                self.assertEqual(len(lines), 1, self.sh.log()[-3000:])
                self.assertIn(why, lines[0])
                self.assertRegex(lines[0], r"^\S+ warn ")
        # What the app put in the header reaches the log only as printable ASCII (its
        # control and 8-bit bytes become "?"), and smtphook's own reasons are ASCII too: the
        # whole log is printable ASCII lines.
        with open(self.sh.stderr_path, "rb") as f:
            raw = f.read()
        self.assertFalse([b for b in raw if b != 0x0a and not 0x20 <= b < 0x7f], raw[-500:])
        self.assertIn('Smtphook-Reply "550 5.1.1 No?mailbox" ignored', raw.decode("utf-8"))
        self.assertIn('Smtphook-Reply "550 5.1.1 Caf? closed" ignored', raw.decode("utf-8"))

    def test_value_too_long_to_keep_is_ignored(self):
        # Over 512 bytes the HTTP client does not even keep the value.
        self.start_app(404, "550 5.1.1 " + "y" * 600)
        reply = self.send_mail(body=MSG)
        self.assertReply(reply, 451, "4.3.5")
        rid = self.last_id()
        self.assertIdInReply(rid, reply)
        lines = [ln for ln in self.sh.log().splitlines()
                 if "endpoint app for id=%s: Smtphook-Reply ignored: " % rid in ln]
        self.assertEqual(len(lines), 1, self.sh.log()[-3000:])
        self.assertIn("longer than 512 bytes", lines[0])

    def test_interim_response_header_does_not_count(self):
        rcv = RawReceiver(b"HTTP/1.1 100 Continue\r\nSmtphook-Reply: " + NO_MAILBOX.encode()
                          + b"\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").start()
        self.addCleanup(rcv.stop)
        self.start_smtphook(url=rcv.url(), retry=ONE)
        reply = self.send_mail(body=MSG)
        self.assertReply(reply, 250, "2.0.0")
        self.assertRegex(reply.text, r"^2\.0\.0 Ok: delivered as ")

    def test_cut_off_response_header_is_ignored(self):
        # The connection closes inside the header section: no answer at all, so neither
        # its status nor its Smtphook-Reply count (a permanent refusal least of all).
        for status, value in ((404, NO_MAILBOX), (200, QUEUED), (503, BUSY)):
            with self.subTest(status=status):
                rcv = RawReceiver(b"HTTP/1.1 %d Whatever\r\nContent-Length: 0\r\n"
                                  b"Smtphook-Reply: %s\r\n" % (status, value.encode())).start()
                self.addCleanup(rcv.stop)
                sh = self.start_smtphook(url=rcv.url(), retry=ONE)
                reply = self.send_mail(body=MSG)
                self.assertReply(reply, 451, "4.4.2")
                self.assertIn("endpoint response cut off", reply.text)
                self.assertEqual(rcv.bodies, [len(MSG)])
                # Not "ignored" either: there was no answer whose header could be judged.
                self.assertEqual([ln for ln in sh.log().splitlines() if "ignored" in ln], [])


class ReplyMap(AppReplyCase):
    MAP = {"409": "250", "503": "550 5.7.1 Gone for good", "202": "451",
           "500": "451 4.3.2 Maintenance, back soon", "404": "550 5.1.1",
           "201": "250 2.0.0 Thanks, stored"}

    def setUp(self):
        self.start_app(200, retry=FAST, reply_map=self.MAP)

    def check(self, status, code, esc, requests, exact=None, *values):
        before = len(self.rcv.requests)
        self.answer(status, *values)
        reply = self.send_mail(body=MSG)
        self.assertReply(reply, code, esc)
        self.assertEqual(len(self.rcv.requests) - before, requests,
                         "requests for %d: %r" % (status, self.rcv.requests[before:]))
        if exact is not None:
            self.assertEqual(reply.lines, [exact])
        else:
            self.assertIdInReply(self.last_id(), reply)
        return reply

    def test_409_as_250_stops_the_sender_without_retry(self):
        reply = self.check(409, 250, "2.0.0", 1)
        self.assertRegex(reply.text, r"^2\.0\.0 Ok: delivered as ")

    def test_503_as_permanent_with_its_text(self):
        self.check(503, 550, "5.7.1", 1, "550 5.7.1 Gone for good")
        self.assertEqual(self.smtplib_data(), "550 5.7.1 Gone for good")

    def test_202_as_temporary_failure(self):
        # The app took it, the operator says "later": no retry inside smtphook (the answer
        # was not a failure worth one), the sender tries again.
        reply = self.check(202, 451, "4.3.0", 1)
        self.assertIn("endpoint answered HTTP 202", reply.text)

    def test_500_as_451_with_text_is_retried(self):
        self.check(500, 451, "4.3.2", 3, "451 4.3.2 Maintenance, back soon")

    def test_code_and_esc_without_text(self):
        reply = self.check(404, 550, "5.1.1", 1)
        self.assertIn("endpoint answered HTTP 404", reply.text)

    def test_2xx_with_operator_text(self):
        self.check(201, 250, "2.0.0", 1, "250 2.0.0 Thanks, stored")

    def test_unmapped_status_keeps_the_default(self):
        self.check(403, 550, "5.7.1", 1)
        self.check(200, 250, "2.0.0", 1)

    def test_smtphook_reply_wins_over_reply_map(self):
        self.check(404, 550, "5.1.2", 1, "550 5.1.2 No such domain here",
                   "550 5.1.2 No such domain here")
        self.check(503, 451, "4.2.0", 3, BUSY, BUSY)  # a 4xx again: retried
        self.check(409, 550, "5.7.1", 1, "550 5.7.1 Conflict, refused",
                   "550 5.7.1 Conflict, refused")
        self.check(201, 250, "2.0.0", 1, QUEUED, QUEUED)

    def test_invalid_smtphook_reply_leaves_reply_map(self):
        self.check(503, 550, "5.7.1", 1, "550 5.7.1 Gone for good", "250 2.0.0 Not with a 503")
        rid = self.last_id()
        lines = self.ignored_lines(rid)
        self.assertEqual(len(lines), 1, self.sh.log())
        self.assertIn("does not agree with the HTTP status class", lines[0])


class PostfixSeesAppReply(PostfixRelayCase):
    """A real Postfix relays to smtphook; the app answers with its own reply. Postfix's log
    quotes smtphook's reply after "said:", its defer record keeps it, and the bounce it
    sends back to the sender (relayed through smtphook to the app as well) carries it."""

    def smtphook_options(self):
        return {"retry": ONE, "domains": ["example.com", "example.org"]}

    def setUp(self):
        super().setUp()
        self.addCleanup(self._empty_queue)

    def _empty_queue(self):
        # Deferred messages and bounces must not reach the next test's smtphook.
        subprocess.run([POSTSUPER, "-c", self.pf.config_dir, "-d", "ALL"],
                       capture_output=True, timeout=30)

    def by_rcpt(self, answers):
        """A responder by envelope recipient: answers[rcpt] = (status, [values]); anything
        else (a bounce to the sender) gets 200."""
        def responder(req):
            rcpt = req.envelope()["rcpt_to"][0]
            status, values = answers.get(rcpt, (200, []))
            return status, [(REPLY_HEADER, v) for v in values], 0.0
        self.rcv.set(responder=responder)

    def wait_status(self, qid, status, timeout=postfix.DELIVERY_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            got = [line for _, st, line in self.pf.outcomes(qid) if st == status]
            if got:
                return got
            if time.monotonic() >= deadline:
                self.fail("Postfix logged no %s for %s within %ss:\n%s"
                          % (status, qid, timeout, self.pf.log_tail()))
            time.sleep(0.05)

    def defer_record(self, qid, timeout=10.0):
        """The text of Postfix's defer log for qid (queue_directory/defer/<hash>/qid) once it
        has a reason, or None. qmgr removes it each time the message is tried again, so it
        is looked for until it is there."""
        top = os.path.join(self.pf.queue_dir, "defer")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for root, _, files in os.walk(top):
                if qid in files:
                    try:
                        with open(os.path.join(root, qid), "rb") as f:
                            text = f.read().decode("utf-8", "replace")
                    except FileNotFoundError:
                        continue
                    if "diag_text=" in text:
                        return text
            time.sleep(0.02)
        return None

    def test_refusal_text_in_postfix_log_and_bounce(self):
        self.by_rcpt({"jdoe@example.com": (404, [NO_MAILBOX])})
        qid = self.pf.inject("alice@example.org", ["jdoe@example.com"], message())
        line = self.wait_status(qid, "bounced")[0]
        self.assertIn("dsn=5.1.1, status=bounced (host %s[%s] said: %s (in reply to end of "
                      "DATA command))" % (HOST, HOST, NO_MAILBOX), line)
        self.assertIn("said: 550 5.1.1 No mailbox named jdoe here", line)

        # Postfix's non-delivery notice goes back to alice@example.org, relayed through
        # smtphook to the app, and quotes the reply in its text and in its DSN part.
        reqs = self.rcv.wait_for(2, timeout=postfix.DELIVERY_TIMEOUT)
        self.assertEqual(len(reqs), 2, reqs)
        bounce = reqs[1]
        self.assertEqual(bounce.envelope()["mail_from"], "")
        self.assertEqual(bounce.envelope()["rcpt_to"], ["alice@example.org"])
        msg = email.message_from_bytes(bounce.body, policy=email.policy.default)
        self.assertEqual(msg.get_content_type(), "multipart/report")
        parts = list(msg.walk())
        notice = next(p for p in parts if p.get_content_type() == "text/plain")
        self.assertIn("said: " + NO_MAILBOX, re.sub(r"\s+", " ", notice.get_content()))
        status = next(p for p in parts if p.get_content_type() == "message/delivery-status")
        dsn = status.as_string()
        self.assertIn("Status: 5.1.1", dsn)
        self.assertIn("Diagnostic-Code: smtp; " + NO_MAILBOX, dsn)

    def test_deferral_text_in_postfix_log_and_defer_record(self):
        self.by_rcpt({"bob@example.com": (503, [BUSY])})
        qid = self.pf.inject("alice@example.org", ["bob@example.com"], message())
        line = self.wait_status(qid, "deferred")[0]
        self.assertIn("dsn=4.2.0, status=deferred (host %s[%s] said: %s (in reply to end of "
                      "DATA command))" % (HOST, HOST, BUSY), line)
        record = self.defer_record(qid)
        self.assertIsNotNone(record, "no defer record for %s" % qid)
        self.assertIn("diag_text=" + BUSY, record)
        self.assertIn("recipient=bob@example.com", record)

        # The app takes it on Postfix's next attempt: same message, same Idempotency-Key,
        # a new transaction id.
        self.by_rcpt({"bob@example.com": (200, [QUEUED])})
        sent = self.wait_status(qid, "sent")[0]
        self.assertIn("status=sent (%s)" % QUEUED, sent)
        reqs = self.rcv.requests
        self.assertGreaterEqual(len(reqs), 2)
        self.assertEqual({r.header("Idempotency-Key") for r in reqs},
                         {reqs[0].header("Idempotency-Key")})
        self.assertEqual(len({r.header("X-Smtphook-Id") for r in reqs}), len(reqs))


if __name__ == "__main__":
    unittest.main()
