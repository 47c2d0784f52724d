"""test_rcpt_check.py - the recipient check against the real binary: every RCPT that found a
route is first POSTed to "recipient_check.url", a real HTTP server here, and its answer
decides the reply (verdicts, Smtphook-Reply, failures and on_failure, the request itself), the
cache per (sender domain, recipient), pipelined RCPTs checked side by side with their replies
in order, routes, clients that go away while checks are pending, and real clients.

The check's web app is a Receiver whose responder answers each request by the recipient in
its JSON body, with its own status, Smtphook-Reply and delay (CheckApp)."""

import json
import shutil
import smtplib
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time

import certs
from helpers import HOST
from receiver import down_url
from smtp_client import Closed, dot_stuff
from smtphook_process import TOKEN
from test_clients import SWAKS, tool
from testcase import SmtphookTestCase

MSG = b"Subject: checked\r\n\r\nhello\r\n"
CHECK_PATH = "/check"
CHECK_HEADERS = {"Authorization": "Bearer ${TOKEN}", "X-Check-Tag": "rcpt-itest"}
UNKNOWN_TEXT = "Error: recipient address rejected: user unknown"  # 550 5.1.1 of the check
FAILED_TEXT = "Error: recipient check failed, try again later"  # 451 4.3.0 of the check


class CheckApp:
    """The recipient-check side of the web app: a Receiver whose answer depends on the
    recipient asked about. answer() sets one recipient's (status, Smtphook-Reply, delay);
    others get default. A delay may also be given as at=, seconds after the first request
    this app saw, so that answers come in an order the test chooses."""

    def __init__(self, case, status=200):
        self._lock = threading.Lock()
        self._answers = {}
        self.default = {"status": status, "reply": None, "delay": 0.0, "at": None}
        self._first = None  # monotonic time of the first request
        self.due = {}  # recipient -> monotonic time its (last) answer was due to be sent
        self.rcv = case.start_receiver(responder=self._respond)

    def url(self):
        return self.rcv.url(CHECK_PATH)

    def answer(self, rcpt, status=200, reply=None, delay=0.0, at=None):
        with self._lock:
            self._answers[rcpt] = {"status": status, "reply": reply, "delay": delay, "at": at}

    def set_default(self, **kw):
        with self._lock:
            self.default.update(kw)

    def _respond(self, req):
        rcpt = json.loads(req.body)["recipient"]
        with self._lock:
            if self._first is None:
                self._first = req.arrived
            a = self._answers.get(rcpt, self.default)
            delay = a["delay"]
            if a["at"] is not None:
                delay = max(0.0, self._first + a["at"] - time.monotonic())
            self.due[rcpt] = time.monotonic() + delay
        headers = [("Smtphook-Reply", a["reply"])] if a["reply"] is not None else []
        return a["status"], headers, delay

    @property
    def requests(self):
        return self.rcv.requests

    def asked(self):
        """The recipients asked about, in the order the requests arrived."""
        return [json.loads(r.body)["recipient"] for r in self.rcv.requests]

    def wait_for(self, n, timeout=10.0):
        return self.rcv.wait_for(n, timeout)


class CheckCase(SmtphookTestCase):
    """A webhook receiver (self.app), a check app (self.check) and smtphook with a
    recipient_check pointing at it; check settings and top-level config keys can be given."""

    def start_checked(self, check=None, url=None, **top):
        self.app = self.start_receiver()
        self.check = CheckApp(self)
        cfg = {"url": url or self.check.url(), "timeout_ms": 5000, "cache_ms": 60000,
               "headers": dict(CHECK_HEADERS)}
        cfg.update(check or {})
        return self.start_smtphook(self.app, recipient_check=cfg, **top)

    def session(self, mail_from="sender@example.org"):
        """A connection after EHLO and an accepted MAIL."""
        c = self.connect()
        self.ehlo(c)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % mail_from), 250, "2.1.0")
        return c

    def rcpt(self, c, rcpt):
        return c.cmd("RCPT TO:<%s>" % rcpt)

    def finish(self, c, body=MSG):
        """DATA, the body, the reply to the final dot (which must be 250)."""
        self.assertReply(c.cmd("DATA"), 354)
        c.send(dot_stuff(body))
        r = c.read_reply()
        self.assertReply(r, 250, "2.0.0")
        return r

    def posted(self, n=1):
        """The n requests the webhook got, waited for; exactly n."""
        reqs = self.app.wait_for(n)
        self.assertEqual(len(reqs), n, "webhook requests: %r" % reqs)
        return reqs


class Verdicts(CheckCase):
    def setUp(self):
        self.start_checked()

    def test_2xx_accepts(self):
        self.check.answer("a@example.com", 200)
        self.check.answer("b@example.com", 201)
        self.check.answer("c@example.com", 204)
        c = self.session()
        for rcpt in ("a@example.com", "b@example.com", "c@example.com"):
            r = self.rcpt(c, rcpt)
            self.assertReply(r, 250, "2.1.5")
            self.assertEqual(r.text, "2.1.5 Ok")
        self.assertEqual(self.check.asked(), ["a@example.com", "b@example.com", "c@example.com"])
        self.finish(c)
        env = self.posted()[0].envelope()
        self.assertEqual(env["rcpt_to"], ["a@example.com", "b@example.com", "c@example.com"])

    def test_404_and_410_refuse_and_only_the_accepted_are_posted(self):
        self.check.answer("gone@example.com", 410)
        self.check.answer("nobody@example.com", 404)
        c = self.session()
        self.assertReply(self.rcpt(c, "ok1@example.com"), 250, "2.1.5")
        for rcpt in ("nobody@example.com", "gone@example.com"):
            r = self.rcpt(c, rcpt)
            self.assertReply(r, 550, "5.1.1")
            self.assertEqual(r.text, "5.1.1 " + UNKNOWN_TEXT)
        self.assertReply(self.rcpt(c, "ok2@example.com"), 250, "2.1.5")
        self.finish(c)
        req = self.posted()[0]
        self.assertEqual(req.envelope()["rcpt_to"], ["ok1@example.com", "ok2@example.com"])
        self.assertEqual(req.header("X-Smtphook-Rcpt-To"), "ok1@example.com, ok2@example.com")
        self.assertEqual(req.body, MSG)

    def test_every_recipient_refused_nothing_posted(self):
        self.check.set_default(status=404)
        c = self.session()
        self.assertReply(self.rcpt(c, "x@example.com"), 550, "5.1.1")
        self.assertReply(self.rcpt(c, "y@example.com"), 550, "5.1.1")
        self.assertReply(c.cmd("DATA"), 554, "5.5.1")
        self.assertReply(c.cmd("QUIT"), 221)
        self.assertEqual(len(self.check.requests), 2)
        self.assertNoRequests(self.app)

    def test_smtphook_reply_chosen_by_the_app(self):
        self.check.answer("private@example.com", 403, "550 5.7.1 Not for you")
        self.check.answer("vip@example.com", 200, "250 2.1.5 Welcome")
        self.check.answer("full@example.com", 503, "452 4.2.2 Mailbox full, later")
        c = self.session()
        r = self.rcpt(c, "private@example.com")
        self.assertEqual(r.lines, ["550 5.7.1 Not for you"])
        r = self.rcpt(c, "vip@example.com")
        self.assertEqual(r.lines, ["250 2.1.5 Welcome"])
        r = self.rcpt(c, "full@example.com")
        self.assertEqual(r.lines, ["452 4.2.2 Mailbox full, later"])
        self.finish(c)
        self.assertEqual(self.posted()[0].envelope()["rcpt_to"], ["vip@example.com"])

    def test_invalid_smtphook_reply_is_ignored(self):
        # each disagrees with its status, is malformed or not allowed: the status decides
        cases = [
            ("a@example.com", 200, "550 5.7.1 A refusal with a success status", 250, "2.1.5"),
            ("b@example.com", 404, "250 2.1.5 A success with a refusal status", 550, "5.1.1"),
            ("c@example.com", 200, "hello there", 250, "2.1.5"),
            ("d@example.com", 404, "550 4.1.1 Class mismatch", 550, "5.1.1"),
            ("e@example.com", 403, "421 4.7.0 Closing is not allowed", 451, "4.3.0"),
            ("f@example.com", 410, "550", 550, "5.1.1"),  # the header needs all three parts
        ]
        for rcpt, status, reply, _, _ in cases:
            self.check.answer(rcpt, status, reply)
        c = self.session()
        for rcpt, _, reply, code, esc in cases:
            r = self.rcpt(c, rcpt)
            self.assertReply(r, code, esc, "%s (Smtphook-Reply %r): %s" % (rcpt, reply, r))
            self.assertNotIn(reply, r.text)
        lines = self.sh.wait_log(r"recipient check <f@example\.com>: Smtphook-Reply .* ignored")
        self.assertTrue(lines, self.sh.log()[-3000:])
        ignored = [ln for ln in self.sh.log().splitlines() if "Smtphook-Reply" in ln
                   and "ignored" in ln]
        self.assertEqual(len(ignored), len(cases), "\n".join(ignored))

    def test_500_and_other_statuses_defer(self):
        for rcpt, status in (("a@example.com", 500), ("b@example.com", 503),
                             ("c@example.com", 403), ("d@example.com", 400),
                             ("e@example.com", 302)):
            self.check.answer(rcpt, status)
        c = self.session()
        for rcpt in ("a@example.com", "b@example.com", "c@example.com", "d@example.com",
                     "e@example.com"):
            r = self.rcpt(c, rcpt)
            self.assertReply(r, 451, "4.3.0", "%s: %s" % (rcpt, r))
            self.assertEqual(r.text, "4.3.0 " + FAILED_TEXT)
        self.assertReply(self.rcpt(c, "fine@example.com"), 250, "2.1.5")
        self.finish(c)
        self.assertEqual(self.posted()[0].envelope()["rcpt_to"], ["fine@example.com"])

    def test_request_is_the_documented_json(self):
        c = self.connect()
        self.ehlo(c, "client.example.net")
        self.assertReply(c.cmd("MAIL FROM:<Alice@Example.ORG>"), 250)
        self.assertReply(self.rcpt(c, "Bob.Smith@example.com"), 250, "2.1.5")
        self.assertReply(c.cmd("RSET"), 250)
        self.assertReply(c.cmd("MAIL FROM:<>"), 250)
        self.assertReply(self.rcpt(c, "postmaster@example.com"), 250, "2.1.5")
        reqs = self.check.requests
        self.assertEqual(len(reqs), 2, reqs)
        for req, rcpt, sender in ((reqs[0], "Bob.Smith@example.com", "Alice@Example.ORG"),
                                  (reqs[1], "postmaster@example.com", "")):
            self.assertEqual(req.method, "POST")
            self.assertEqual(req.path, CHECK_PATH)
            self.assertEqual(req.header("Content-Type"), "application/json")
            self.assertEqual(req.header("Authorization"), "Bearer " + TOKEN)
            self.assertEqual(req.header("X-Check-Tag"), "rcpt-itest")
            self.assertEqual(int(req.header("Content-Length")), len(req.body))
            self.assertEqual(json.loads(req.body), {
                "recipient": rcpt,
                "sender": sender,
                "client": {"address": HOST, "port": c.local_port, "helo": "client.example.net"},
                "tls": None,
            })

    def test_request_with_utf8_addresses(self):
        c = self.connect()
        self.ehlo(c, "h.test")
        self.assertReply(c.cmd("MAIL FROM:<j\u00f6rg@ex\u00e4mple.org> SMTPUTF8"), 250)
        self.assertReply(self.rcpt(c, "\u00fcser@example.com"), 250, "2.1.5")
        body = json.loads(self.check.requests[0].body)
        self.assertEqual(body["recipient"], "\u00fcser@example.com")
        self.assertEqual(body["sender"], "j\u00f6rg@ex\u00e4mple.org")


class OverTLS(CheckCase):
    """After STARTTLS the check's "tls" member describes the session, as the envelope's."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="smtphook-rcpt-tls-")
        cls.ca = certs.CA(cls.dir)
        cls.cert, cls.key = cls.ca.issue("mx", names=("mx.test", HOST))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_request_carries_the_tls_facts(self):
        self.start_checked(tls={"certificates": [{"cert": self.cert, "key": self.key}]})
        s = smtplib.SMTP(HOST, self.sh.port, local_hostname="tls.test", timeout=10)
        self.addCleanup(s.close)
        s.starttls(context=ssl.create_default_context(cafile=self.ca.ca_file))
        self.assertEqual(s.sendmail("a@example.org", ["b@example.com"], MSG), {})
        s.quit()
        body = json.loads(self.check.requests[0].body)
        tls = body["tls"]
        self.assertIsNotNone(tls)
        self.assertIn(tls["version"], ("TLSv1.2", "TLSv1.3"))
        self.assertTrue(tls["cipher"])
        self.assertIsNone(tls["sni"])  # smtplib sends no SNI for an IP address
        self.assertIsNone(tls["client_certificate"])
        self.assertEqual(body["client"]["helo"], "tls.test")
        self.assertEqual(tls, self.posted()[0].envelope()["tls"])


class Failures(CheckCase):
    def test_timeout_defers_within_timeout_ms(self):
        self.start_checked(check={"timeout_ms": 500}, log_level="debug")
        self.check.answer("slow@example.com", delay=5.0)
        c = self.session()
        t0 = time.monotonic()
        r = self.rcpt(c, "slow@example.com")
        took = time.monotonic() - t0
        self.assertReply(r, 451, "4.3.0")
        self.assertEqual(r.text, "4.3.0 " + FAILED_TEXT)
        self.assertGreaterEqual(took, 0.45, "answered before timeout_ms")
        self.assertLess(took, 3.0, "timeout_ms does not bound the check")
        self.assertTrue(self.sh.wait_log(r"recipient check <slow@example\.com>: defer 451.*timeout"))
        # the session goes on: another recipient is checked and accepted
        self.assertReply(self.rcpt(c, "quick@example.com"), 250, "2.1.5")

    def test_unreachable_check_defers(self):
        self.start_checked(url=down_url(CHECK_PATH))
        c = self.session()
        self.assertReply(self.rcpt(c, "a@example.com"), 451, "4.3.0")
        self.assertReply(c.cmd("DATA"), 554, "5.5.1")
        self.assertNoRequests(self.app, settle=0)

    def test_idle_timer_stops_while_checking(self):
        # the client waits for our reply: a check slower than idle_timeout_ms is no idle
        # client, and the timer runs again once the checks are answered
        self.start_checked(check={"timeout_ms": 5000}, limits={"idle_timeout_ms": 1000})
        self.check.answer("slow@example.com", delay=1.6)
        c = self.session()
        t0 = time.monotonic()
        self.assertReply(self.rcpt(c, "slow@example.com"), 250, "2.1.5")
        answered = time.monotonic()
        self.assertGreaterEqual(answered - t0, 1.5)
        self.assertReply(c.read_reply(10), 421, "4.4.2")
        self.assertGreaterEqual(time.monotonic() - answered, 0.9, "a full idle_timeout_ms")
        self.assertTrue(c.wait_closed(5.0))

    def test_on_failure_accept(self):
        self.start_checked(check={"on_failure": "accept", "timeout_ms": 500})
        self.check.answer("err@example.com", 500)
        self.check.answer("slow@example.com", delay=5.0)
        self.check.answer("nobody@example.com", 404)  # an answer still refuses
        c = self.session()
        self.assertReply(self.rcpt(c, "err@example.com"), 250, "2.1.5")
        t0 = time.monotonic()
        self.assertReply(self.rcpt(c, "slow@example.com"), 250, "2.1.5")
        self.assertGreaterEqual(time.monotonic() - t0, 0.45)
        self.assertReply(self.rcpt(c, "nobody@example.com"), 550, "5.1.1")
        self.finish(c)
        env = self.posted()[0].envelope()
        self.assertEqual(env["rcpt_to"], ["err@example.com", "slow@example.com"])

    def test_on_failure_accept_unreachable(self):
        self.start_checked(url=down_url(CHECK_PATH), check={"on_failure": "accept"})
        c = self.session()
        self.assertReply(self.rcpt(c, "a@example.com"), 250, "2.1.5")
        self.finish(c)
        self.assertEqual(self.posted()[0].envelope()["rcpt_to"], ["a@example.com"])


class Cache(CheckCase):
    def test_same_sender_domain_asked_once(self):
        self.start_checked()
        c = self.session("alice@sender.test")
        self.assertReply(self.rcpt(c, "bob@example.com"), 250, "2.1.5")
        self.finish(c)
        # a second transaction, another sender of the same domain (in another case)
        self.assertReply(c.cmd("MAIL FROM:<carol@SENDER.Test>"), 250)
        self.assertReply(self.rcpt(c, "bob@example.com"), 250, "2.1.5")
        self.finish(c)
        # a second connection too
        c2 = self.session("dave@sender.test")
        self.assertReply(self.rcpt(c2, "bob@example.com"), 250, "2.1.5")
        self.assertEqual(self.check.asked(), ["bob@example.com"])
        # the recipient is the key as sent: another spelling is asked about
        self.assertReply(self.rcpt(c2, "Bob@example.com"), 250, "2.1.5")
        self.assertEqual(self.check.asked(), ["bob@example.com", "Bob@example.com"])
        self.assertEqual(len(self.posted(2)), 2)

    def test_other_sender_domain_asks_again(self):
        self.start_checked()
        c = self.session("alice@one.test")
        self.assertReply(self.rcpt(c, "bob@example.com"), 250, "2.1.5")
        self.assertReply(c.cmd("RSET"), 250)
        self.assertReply(c.cmd("MAIL FROM:<alice@two.test>"), 250)
        self.assertReply(self.rcpt(c, "bob@example.com"), 250, "2.1.5")
        self.assertReply(c.cmd("RSET"), 250)
        self.assertReply(c.cmd("MAIL FROM:<>"), 250)
        self.assertReply(self.rcpt(c, "bob@example.com"), 250, "2.1.5")
        senders = [json.loads(r.body)["sender"] for r in self.check.requests]
        self.assertEqual(senders, ["alice@one.test", "alice@two.test", ""])

    def test_refusal_is_cached(self):
        self.start_checked()
        self.check.answer("nobody@example.com", 404)
        c = self.session("a@sender.test")
        self.assertReply(self.rcpt(c, "nobody@example.com"), 550, "5.1.1")
        # the app changes its mind; the cached refusal stands
        self.check.answer("nobody@example.com", 200)
        self.assertReply(self.rcpt(c, "nobody@example.com"), 550, "5.1.1")
        c2 = self.session("b@sender.test")
        r = self.rcpt(c2, "nobody@example.com")
        self.assertReply(r, 550, "5.1.1")
        self.assertEqual(r.text, "5.1.1 " + UNKNOWN_TEXT)
        self.assertEqual(self.check.asked(), ["nobody@example.com"])

    def test_app_reply_is_cached_with_its_text(self):
        self.start_checked()
        self.check.answer("private@example.com", 403, "550 5.7.1 Not for you")
        c = self.session()
        self.assertEqual(self.rcpt(c, "private@example.com").lines, ["550 5.7.1 Not for you"])
        self.assertEqual(self.rcpt(c, "private@example.com").lines, ["550 5.7.1 Not for you"])
        self.assertEqual(len(self.check.requests), 1)

    def test_failure_is_not_cached(self):
        self.start_checked()
        self.check.answer("flaky@example.com", 500)
        c = self.session()
        self.assertReply(self.rcpt(c, "flaky@example.com"), 451, "4.3.0")
        self.check.answer("flaky@example.com", 200)
        self.assertReply(self.rcpt(c, "flaky@example.com"), 250, "2.1.5")
        self.assertEqual(self.check.asked(), ["flaky@example.com"] * 2)
        # and now the acceptance is cached
        self.check.answer("flaky@example.com", 500)
        self.assertReply(self.rcpt(c, "flaky@example.com"), 250, "2.1.5")
        self.assertEqual(len(self.check.requests), 2)

    def test_temporary_app_reply_is_not_cached(self):
        self.start_checked()
        self.check.answer("full@example.com", 503, "452 4.2.2 Mailbox full")
        c = self.session()
        self.assertEqual(self.rcpt(c, "full@example.com").lines, ["452 4.2.2 Mailbox full"])
        self.check.answer("full@example.com", 200)
        self.assertReply(self.rcpt(c, "full@example.com"), 250, "2.1.5")
        self.assertEqual(len(self.check.requests), 2)

    def test_timeout_is_not_cached(self):
        self.start_checked(check={"timeout_ms": 300})
        self.check.answer("slow@example.com", delay=3.0)
        c = self.session()
        self.assertReply(self.rcpt(c, "slow@example.com"), 451, "4.3.0")
        self.check.answer("slow@example.com", 200)
        self.assertReply(self.rcpt(c, "slow@example.com"), 250, "2.1.5")
        self.assertEqual(len(self.check.requests), 2)

    def test_cache_ms_0_never_caches(self):
        self.start_checked(check={"cache_ms": 0})
        self.check.answer("nobody@example.com", 404)
        c = self.session()
        for _ in range(3):
            self.assertReply(self.rcpt(c, "bob@example.com"), 250, "2.1.5")
            self.assertReply(self.rcpt(c, "nobody@example.com"), 550, "5.1.1")
        self.assertEqual(self.check.asked(), ["bob@example.com", "nobody@example.com"] * 3)

    def test_answer_expires_after_cache_ms(self):
        self.start_checked(check={"cache_ms": 1000})
        c = self.session()
        self.assertReply(self.rcpt(c, "bob@example.com"), 250, "2.1.5")
        answered = time.monotonic()
        self.assertReply(self.rcpt(c, "bob@example.com"), 250, "2.1.5")
        if time.monotonic() - answered < 0.9:  # else too slow a machine to tell
            self.assertEqual(len(self.check.requests), 1, "answer not kept for cache_ms")
        time.sleep(max(0.0, answered + 1.3 - time.monotonic()))  # the entry's lifetime
        self.check.answer("bob@example.com", 404)
        self.assertReply(self.rcpt(c, "bob@example.com"), 550, "5.1.1")
        self.assertEqual(self.check.asked()[-1], "bob@example.com")
        self.assertGreaterEqual(len(self.check.requests), 2)


class Pipelining(CheckCase):
    def setUp(self):
        self.start_checked()
        self.c = self.connect()
        self.ehlo(self.c)

    def pipeline(self, mail_from, rcpts, tail=b"DATA\r\n"):
        """One send(): MAIL, the RCPTs, then tail. Returns the send time."""
        data = ("MAIL FROM:<%s>\r\n" % mail_from).encode()
        data += b"".join(("RCPT TO:<%s>\r\n" % r).encode() for r in rcpts)
        t0 = time.monotonic()
        self.c.send(data + tail)
        return t0

    def test_checks_run_concurrently_replies_in_order(self):
        # answers in reverse order: r5 at 0.6 s after the first request, ..., r1 at 1.0 s
        rcpts = ["r%d@example.com" % i for i in range(1, 6)]
        at = {rcpts[0]: 1.0, rcpts[1]: 0.9, rcpts[2]: 0.8, rcpts[3]: 0.7, rcpts[4]: 0.6}
        self.check.answer(rcpts[0], 200, "250 2.1.5 Welcome r1", at=at[rcpts[0]])
        self.check.answer(rcpts[1], 404, at=at[rcpts[1]])
        self.check.answer(rcpts[2], 200, "250 2.1.5 Welcome r3", at=at[rcpts[2]])
        self.check.answer(rcpts[3], 410, at=at[rcpts[3]])
        self.check.answer(rcpts[4], 200, "250 2.1.5 Welcome r5", at=at[rcpts[4]])
        t0 = self.pipeline("s@example.org", rcpts)
        replies = self.c.read_replies(7)
        took = time.monotonic() - t0

        self.assertReply(replies[0], 250, "2.1.0")
        self.assertEqual([r.lines for r in replies[1:6]], [
            ["250 2.1.5 Welcome r1"],
            ["550 5.1.1 " + UNKNOWN_TEXT],
            ["250 2.1.5 Welcome r3"],
            ["550 5.1.1 " + UNKNOWN_TEXT],
            ["250 2.1.5 Welcome r5"],
        ])
        self.assertReply(replies[6], 354)
        self.assertEqual(self.c.buf, b"", "nothing after the 354")

        reqs = self.check.requests
        self.assertEqual(sorted(self.check.asked()), rcpts)
        last_arrival = max(r.arrived for r in reqs)
        first_answer = min(self.check.due.values())
        self.assertLess(last_arrival, first_answer,
                        "all five checks must be asked before the first answer")
        self.assertEqual(max(self.check.due, key=self.check.due.get), rcpts[0],
                         "r1's answer came last")
        # about the longest delay, far from the sum (4.0 s)
        self.assertGreaterEqual(took, 1.0)
        self.assertLess(took, 3.0, "checks did not run side by side: %.2f s" % took)

        self.c.send(dot_stuff(MSG))
        self.assertReply(self.c.read_reply(), 250, "2.0.0")
        req = self.posted()[0]
        self.assertEqual(req.envelope()["rcpt_to"], [rcpts[0], rcpts[2], rcpts[4]])
        self.assertEqual(req.body, MSG)

    def test_refused_without_check_keeps_its_place(self):
        self.check.answer("slow@example.com", delay=0.6)
        self.check.answer("gone@example.com", 410)
        t0 = self.pipeline("s@example.org", [
            "slow@example.com",  # checked, answered late
            "someone@relay.test",  # relay denied at once, behind the pending check
            "gone@example.com",  # checked, refused at once
            "bad address",  # syntax error at once
            "fast@example.com",  # checked, accepted at once
        ])
        replies = self.c.read_replies(7)
        took = time.monotonic() - t0
        self.assertReply(replies[0], 250, "2.1.0")
        self.assertReply(replies[1], 250, "2.1.5")
        self.assertReply(replies[2], 550, "5.7.1")
        self.assertEqual(replies[2].text, "5.7.1 Relay access denied")
        self.assertReply(replies[3], 550, "5.1.1")
        self.assertReply(replies[4], 501)
        self.assertReply(replies[5], 250, "2.1.5")
        self.assertReply(replies[6], 354)
        self.assertGreaterEqual(took, 0.55, "the replies wait for the first check")
        self.assertEqual(sorted(self.check.asked()),
                         ["fast@example.com", "gone@example.com", "slow@example.com"])
        self.c.send(dot_stuff(MSG))
        self.assertReply(self.c.read_reply(), 250, "2.0.0")
        self.assertEqual(self.posted()[0].envelope()["rcpt_to"],
                         ["slow@example.com", "fast@example.com"])

    def test_cached_answers_behind_a_pending_check(self):
        self.check.answer("nobody@example.com", 404)
        self.check.answer("slow@example.com", delay=0.5)
        # the first transaction fills the cache
        self.assertReply(self.c.cmd("MAIL FROM:<a@example.org>"), 250)
        self.assertReply(self.rcpt(self.c, "nobody@example.com"), 550, "5.1.1")
        self.assertReply(self.rcpt(self.c, "known@example.com"), 250, "2.1.5")
        self.assertReply(self.c.cmd("RSET"), 250)
        self.pipeline("b@example.org", ["slow@example.com", "nobody@example.com",
                                        "known@example.com"])
        replies = self.c.read_replies(5)
        self.assertEqual([(r.code, r.esc) for r in replies],
                         [(250, "2.1.0"), (250, "2.1.5"), (550, "5.1.1"), (250, "2.1.5"),
                          (354, None)])
        self.assertEqual(len(self.check.requests), 3, "the cached ones are not asked again")
        self.c.send(dot_stuff(MSG))
        self.assertReply(self.c.read_reply(), 250, "2.0.0")
        self.assertEqual(self.posted()[0].envelope()["rcpt_to"],
                         ["slow@example.com", "known@example.com"])

    def test_every_recipient_refused_data_refused(self):
        self.check.set_default(status=404, delay=0.2)
        self.pipeline("s@example.org", ["a@example.com", "b@example.com"])
        replies = self.c.read_replies(4)
        self.assertEqual([(r.code, r.esc) for r in replies],
                         [(250, "2.1.0"), (550, "5.1.1"), (550, "5.1.1"), (554, "5.5.1")])
        self.assertReply(self.c.cmd("NOOP"), 250, "2.0.0")
        self.assertNoRequests(self.app, settle=0.2)

    def test_rset_waits_for_the_checks(self):
        self.check.answer("slow@example.com", delay=0.5)
        t0 = self.pipeline("s@example.org", ["slow@example.com"], tail=b"RSET\r\nDATA\r\n")
        r_mail, r_rcpt, r_rset, r_data = self.c.read_replies(4)
        took = time.monotonic() - t0
        self.assertReply(r_mail, 250, "2.1.0")
        self.assertReply(r_rcpt, 250, "2.1.5")
        self.assertReply(r_rset, 250, "2.0.0")
        self.assertReply(r_data, 503, "5.5.1")  # the RSET ended the transaction
        self.assertGreaterEqual(took, 0.45)
        # a new transaction starts clean: the recipient of the old one is not in it
        self.assertReply(self.c.cmd("MAIL FROM:<s@example.org>"), 250)
        self.assertReply(self.rcpt(self.c, "other@example.com"), 250, "2.1.5")
        self.finish(self.c)
        self.assertEqual(self.posted()[0].envelope()["rcpt_to"], ["other@example.com"])

    def test_quit_waits_for_the_checks(self):
        self.check.answer("slow@example.com", delay=0.5)
        self.check.answer("nobody@example.com", 404)
        t0 = self.pipeline("s@example.org", ["slow@example.com", "nobody@example.com"],
                           tail=b"QUIT\r\n")
        replies = self.c.read_replies(4)
        self.assertEqual([(r.code, r.esc) for r in replies],
                         [(250, "2.1.0"), (250, "2.1.5"), (550, "5.1.1"), (221, "2.0.0")])
        self.assertGreaterEqual(time.monotonic() - t0, 0.45)
        self.assertTrue(self.c.wait_closed(5.0), "closed after 221")
        self.assertEqual(self.c.buf, b"")
        self.assertNoRequests(self.app, settle=0.2)

    def test_bdat_behind_checked_rcpts(self):
        self.check.answer("slow@example.com", delay=0.4)
        self.check.answer("nobody@example.com", 404)
        # chunk text that looks like commands is message text, never run
        chunk = b"Subject: chunked\r\n\r\nRSET\r\nQUIT\r\n.\r\nend\r\n"
        self.pipeline("s@example.org", ["slow@example.com", "nobody@example.com",
                                        "fast@example.com"],
                      tail=b"BDAT %d LAST\r\n" % len(chunk) + chunk)
        replies = self.c.read_replies(5)
        self.assertEqual([(r.code, r.esc) for r in replies[:4]],
                         [(250, "2.1.0"), (250, "2.1.5"), (550, "5.1.1"), (250, "2.1.5")])
        self.assertReply(replies[4], 250, "2.0.0")
        req = self.posted()[0]
        self.assertIdInReply(req.header("X-Smtphook-Id"), replies[4])
        self.assertEqual(req.body, chunk)
        env = req.envelope()
        self.assertTrue(env["chunked"])
        self.assertEqual(env["rcpt_to"], ["slow@example.com", "fast@example.com"])
        self.assertReply(self.c.cmd("NOOP"), 250, "2.0.0")

    def test_two_chunks_behind_checked_rcpts(self):
        self.check.answer("slow@example.com", delay=0.3)
        part1, part2 = b"Subject: two\r\n\r\nfirst ", b"second\r\n"
        self.pipeline("s@example.org", ["slow@example.com"],
                      tail=(b"BDAT %d\r\n" % len(part1) + part1
                            + b"BDAT %d LAST\r\n" % len(part2) + part2))
        replies = self.c.read_replies(4)
        self.assertEqual([(r.code, r.esc) for r in replies[:3]],
                         [(250, "2.1.0"), (250, "2.1.5"), (250, "2.0.0")])
        self.assertEqual(replies[2].text, "2.0.0 %d octets received" % len(part1))
        self.assertReply(replies[3], 250, "2.0.0")
        self.assertEqual(self.posted()[0].body, part1 + part2)

    def test_rcpt_behind_a_full_line_gets_its_check(self):
        # The line behind a pending check holds max_recipients + max_errors (120) RCPTs; the
        # 121st waits like any other command and runs once the line is empty. Its check must
        # start then, although the client sends nothing more until it has its replies.
        self.check.set_default(status=500, delay=0.3)  # 451 4.3.0: no recipient, no error
        rcpts = ["r%d@example.com" % i for i in range(1, 122)]
        self.check.answer(rcpts[-1], 200)
        self.pipeline("s@example.org", rcpts, tail=b"")
        replies = self.c.read_replies(122, timeout=5)
        self.assertReply(replies[0], 250, "2.1.0")
        self.assertEqual([(r.code, r.esc) for r in replies[1:101]], [(451, "4.3.0")] * 100)
        self.assertEqual([(r.code, r.esc) for r in replies[101:121]], [(452, "4.5.3")] * 20)
        self.assertReply(replies[121], 250, "2.1.5")
        self.assertEqual(sorted(self.check.asked()), sorted(rcpts[:100] + rcpts[-1:]))
        self.finish(self.c)
        self.assertEqual(self.posted()[0].envelope()["rcpt_to"], rcpts[-1:])


class Routes(CheckCase):
    def test_recipient_without_route_is_refused_unchecked(self):
        self.start_checked(domains=["example.com", "sales.example.com"],
                           routes=[{"match": ["known@example.com", "*@sales.example.com"],
                                    "endpoints": ["app"]}])
        c = self.session()
        r = self.rcpt(c, "stranger@example.com")
        self.assertReply(r, 550, "5.1.1")
        self.assertReply(self.rcpt(c, "someone@elsewhere.test"), 550, "5.7.1")
        self.assertEqual(self.check.requests, [], "no check for an address no route takes")
        self.assertReply(self.rcpt(c, "known@example.com"), 250, "2.1.5")
        self.assertReply(self.rcpt(c, "bob@sales.example.com"), 250, "2.1.5")
        self.assertEqual(self.check.asked(), ["known@example.com", "bob@sales.example.com"])
        self.finish(c)
        self.assertEqual(self.posted()[0].envelope()["rcpt_to"],
                         ["known@example.com", "bob@sales.example.com"])

    def test_pipelined_unrouted_behind_pending_check(self):
        self.start_checked(routes=[{"match": ["known@example.com"], "endpoints": ["app"]}])
        self.check.answer("known@example.com", delay=0.4)
        c = self.connect()
        self.ehlo(c)
        c.send(b"MAIL FROM:<s@example.org>\r\nRCPT TO:<known@example.com>\r\n"
               b"RCPT TO:<stranger@example.com>\r\nDATA\r\n")
        replies = c.read_replies(4)
        self.assertEqual([(r.code, r.esc) for r in replies],
                         [(250, "2.1.0"), (250, "2.1.5"), (550, "5.1.1"), (354, None)])
        self.assertEqual(self.check.asked(), ["known@example.com"])
        c.send(dot_stuff(MSG))
        self.assertReply(c.read_reply(), 250, "2.0.0")
        self.assertEqual(self.posted()[0].envelope()["rcpt_to"], ["known@example.com"])


class Disconnect(CheckCase):
    def setUp(self):
        self.start_checked()
        self.check.set_default(delay=1.0)

    def pending(self):
        """A session whose two RCPTs and DATA wait for checks under way."""
        c = self.connect()
        self.ehlo(c)
        c.send(b"MAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.com>\r\n"
               b"RCPT TO:<b@example.com>\r\nDATA\r\n")
        self.assertReply(c.read_reply(), 250, "2.1.0")
        self.assertEqual(len(self.check.wait_for(2)), 2, "both checks under way")
        return c

    def still_serves(self):
        self.check.set_default(delay=0.0)
        c = self.session()
        self.assertReply(self.rcpt(c, "c@example.com"), 250, "2.1.5")
        self.finish(c)
        self.assertEqual(self.posted()[0].envelope()["rcpt_to"], ["c@example.com"])

    def test_client_closes_while_checks_pending(self):
        c = self.pending()
        c.close()
        self.assertTrue(self.sh.wait_log(r"txn id=\S+ abandoned", timeout=10.0),
                        self.sh.log()[-3000:])
        self.assertEqual(self.app.requests, [], "nothing posted")
        self.still_serves()

    def test_client_resets_while_checks_pending(self):
        c = self.pending()
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()  # RST: the checks under way are cancelled
        self.assertTrue(self.sh.wait_log(r"txn id=\S+ abandoned", timeout=10.0),
                        self.sh.log()[-3000:])
        self.assertEqual(self.app.requests, [], "nothing posted")
        self.still_serves()

    def test_half_close_inside_a_message_held_behind_checks(self):
        # the client sends the start of its message without waiting for the 354, then
        # stops writing: the replies still come, the unfinished message is never posted
        c = self.connect()
        self.ehlo(c)
        c.send(b"MAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.com>\r\nDATA\r\n"
               b"Subject: cut\r\n\r\nno final dot\r\n")
        self.assertEqual(len(self.check.wait_for(1)), 1)
        c.sock.shutdown(socket.SHUT_WR)
        replies = c.read_replies(3)
        self.assertEqual([(r.code, r.esc) for r in replies],
                         [(250, "2.1.0"), (250, "2.1.5"), (354, None)])
        self.assertTrue(c.wait_closed(10.0), "smtphook closes")
        self.assertTrue(self.sh.wait_log(r"txn id=\S+ abandoned"), self.sh.log()[-3000:])
        self.assertEqual(self.app.requests, [], "nothing posted")
        self.still_serves()


class RealClients(CheckCase):
    def setUp(self):
        self.start_checked()
        self.check.answer("nobody@example.com", 404)

    def test_smtplib_sees_one_refused(self):
        s = smtplib.SMTP(HOST, self.sh.port, local_hostname="smtplib.test", timeout=10)
        self.addCleanup(s.close)
        refused = s.sendmail("alice@example.org",
                             ["bob@example.com", "nobody@example.com", "carol@example.com"], MSG)
        s.quit()
        self.assertEqual(list(refused), ["nobody@example.com"])
        code, text = refused["nobody@example.com"]
        self.assertEqual(code, 550)
        self.assertTrue(text.startswith(b"5.1.1 "), text)
        env = self.posted()[0].envelope()
        self.assertEqual(env["rcpt_to"], ["bob@example.com", "carol@example.com"])

    def test_swaks_pipelining_sees_one_refused(self):
        swaks = tool(SWAKS)
        self.check.answer("bob@example.com", delay=0.3)
        p = subprocess.run([swaks, "--server", "%s:%d" % (HOST, self.sh.port), "--pipeline",
                            "--from", "alice@example.org",
                            "--to", "bob@example.com,nobody@example.com,carol@example.com",
                            "--helo", "swaks.test", "--body", "checked by swaks"],
                           capture_output=True, text=True, timeout=60)
        out = p.stdout + p.stderr
        refused = [ln for ln in out.splitlines() if "<** 550" in ln]
        self.assertEqual(len(refused), 1, out)
        self.assertIn("5.1.1", refused[0])
        self.assertRegex(out, r"<-\s+250 2\.0\.0 Ok: delivered as ", out)
        env = self.posted()[0].envelope()
        self.assertEqual(env["rcpt_to"], ["bob@example.com", "carol@example.com"])
        self.assertEqual(sorted(self.check.asked()),
                         ["bob@example.com", "carol@example.com", "nobody@example.com"])


class HeldInput(SmtphookTestCase):
    """Checks whose RCPTs come in later reads, or from input held during a delivery (found
    in review)."""

    def test_refused_data_from_held_input_after_cached_check_keeps_session(self):
        app = self.start_receiver(delay=1.0)  # the delivery runs while the next commands wait

        def check(req):
            rcpt = json.loads(req.body)["recipient"]
            return (404 if rcpt.startswith("bad") else 200), [], 0.0

        chk = self.start_receiver(responder=check)
        self.start_smtphook(app, recipient_check={"url": chk.url("/check"), "cache_ms": 60000})
        c = self.connect()
        self.ehlo(c)
        # bad@example.com's 404 goes into the cache
        self.assertReply(c.cmd("MAIL FROM:<s@example.org>"), 250)
        self.assertReply(c.cmd("RCPT TO:<bad@example.com>"), 550, "5.1.1")
        self.assertReply(c.cmd("RSET"), 250)
        # a message, and behind its final dot the next transaction up to its DATA (a group
        # a pipelining client may send; nothing follows the DATA)
        self.assertReply(c.cmd("MAIL FROM:<s@example.org>"), 250)
        self.assertReply(c.cmd("RCPT TO:<good@example.com>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(b"Subject: x\r\n\r\nhi\r\n.\r\n"
               b"MAIL FROM:<s@example.org>\r\nRCPT TO:<bad@example.com>\r\nDATA\r\n")
        self.assertReply(c.read_reply(), 250)  # the message
        self.assertReply(c.read_reply(), 250)  # MAIL
        self.assertReply(c.read_reply(), 550, "5.1.1")  # RCPT, from the cache
        self.assertReply(c.read_reply(), 554)  # DATA: no valid recipients
        # the client did wait after DATA: its session goes on
        try:
            r = c.cmd("NOOP", timeout=3)
        except Closed:
            self.fail("session closed after a refused DATA with nothing behind it: %r" % c.buf)
        self.assertReply(r, 250, msg="NOOP after the refused DATA: %s" % r)

    def test_rcpt_checks_of_later_reads_run_concurrently(self):
        app = self.start_receiver()
        chk = self.start_receiver(delay=1.0)
        self.start_smtphook(app, recipient_check={"url": chk.url("/check"), "cache_ms": 0})
        c = self.connect()
        self.ehlo(c)
        self.assertReply(c.cmd("MAIL FROM:<s@example.org>"), 250)
        t0 = time.monotonic()
        for rcpt in ("a", "b", "c"):  # pipelined, in three packets
            c.send(b"RCPT TO:<%s@example.com>\r\n" % rcpt.encode())
            time.sleep(0.2)
        for _ in range(3):
            self.assertReply(c.read_reply(), 250)
        took = time.monotonic() - t0
        arrived = [round(q.arrived - t0, 1) for q in chk.requests]
        self.assertLess(took, 1.8, "checks ran one after the other: requests at %s s" % arrived)

