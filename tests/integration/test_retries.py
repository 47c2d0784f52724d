"""test_retries.py - a temporary failure is tried again while the sender waits: backoff,
Retry-After, the transaction's deadline as a timer of its own, max_attempts, a retry
waiting at SIGTERM, and the circuit breaker that answers 451 at once while an endpoint is
down (failover moves on).

Every attempt is a real request to a real receiver (its responder scripts the answers);
the reply to the final dot comes only after the last attempt, so the receiver's requests
are final once the reply is read. Backoffs are tens of milliseconds and deadlines a few
seconds; times are asserted with lower bounds and generous upper bounds."""

import email.utils
import re
import signal
import smtplib
import threading
import time
import unittest

from helpers import HOST, free_port
from receiver import Receiver
from testcase import SmtphookTestCase

MSG = b"Subject: retry\r\n\r\nretried\r\n"
FAST = {"max_attempts": 3, "initial_backoff_ms": 50, "max_backoff_ms": 100}
ONE = {"max_attempts": 1}
SLACK = 5.0  # seconds: "at once" means well before a deadline this much later


def answer(status, headers=(), delay=0.0):
    """One scripted answer for the receiver's responder."""
    return (status, list(headers), delay)


class Script:
    """A receiver responder answering the requests in turn; the last answer repeats."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self._lock = threading.Lock()
        self.calls = 0

    def __call__(self, req):
        with self._lock:
            i = self.calls
            self.calls += 1
        return self.answers[min(i, len(self.answers) - 1)]


class RetryCase(SmtphookTestCase):
    def endpoint(self, url, retry=FAST, breaker=None, **extra):
        """An endpoint config; the breaker stays out of the way unless a test wants it."""
        ep = {"url": url, "timeout_ms": 10000, "retry": retry,
              "breaker": breaker or {"failures": 0}}
        ep.update(extra)
        return ep

    def start(self, url, limits=None, **ep):
        return self.start_smtphook(endpoints={"app": self.endpoint(url, **ep)}, limits=limits)

    def timed_send(self, reply_timeout=30):
        """One message on a new connection: (reply to the final dot, seconds from the final
        dot to that reply)."""
        c = self.connect()
        self.ehlo(c)
        self.send_message(c, "sender@example.org", ["rcpt@example.com"], MSG)
        t0 = time.monotonic()
        reply = c.read_reply(reply_timeout)
        return reply, time.monotonic() - t0

    def txn_line(self, rid):
        lines = self.sh.wait_log(r"txn id=" + re.escape(rid) + r" client=")
        self.assertEqual(len(lines), 1, "one transaction line for %s:\n%s" % (rid, self.sh.log()))
        return lines[0]

    def attempt_lines(self, rid):
        return [ln for ln in self.sh.log().splitlines()
                if re.search(r"txn id=%s endpoint app attempt \d+: " % re.escape(rid), ln)]


class Retries(RetryCase):
    def test_two_503_then_200_is_one_250_after_three_attempts(self):
        rcv = self.start_receiver(responder=Script(answer(503), answer(503), answer(200)))
        self.start(rcv.url())
        reply, _ = self.timed_send()
        self.assertReply(reply, 250, "2.0.0")
        reqs = rcv.requests
        self.assertEqual(len(reqs), 3, reqs)
        rid = reqs[0].header("X-Smtphook-Id")
        self.assertIdInReply(rid, reply)
        for r in reqs:
            self.assertEqual(r.header("X-Smtphook-Id"), rid, "one transaction, one id")
            self.assertEqual(r.header("Idempotency-Key"), reqs[0].header("Idempotency-Key"))
            self.assertEqual(r.body, MSG)
        self.assertRegex(reqs[0].header("Idempotency-Key"), r"^[0-9a-f]{64}$")
        # Equal jitter: every wait is at least half the backoff (50 ms, then 100 ms).
        self.assertGreaterEqual(reqs[1].arrived - reqs[0].arrived, 0.02)
        self.assertGreaterEqual(reqs[2].arrived - reqs[1].arrived, 0.04)

        line = self.txn_line(rid)
        self.assertRegex(line, r"endpoints=app:200:\d+ms:attempts=3 ")
        self.assertIn('reply="250 2.0.0"', line)
        attempts = self.attempt_lines(rid)
        self.assertEqual(len(attempts), 2, "attempts 1 and 2 are followed by another:\n%s"
                         % self.sh.log())
        for n, ln in enumerate(attempts, 1):
            self.assertRegex(ln, r"attempt %d: 451 4\.3\.0; next attempt in \d+ ms" % n)
        waits = [int(re.search(r"next attempt in (\d+) ms", ln).group(1)) for ln in attempts]
        self.assertTrue(25 <= waits[0] <= 50 and 50 <= waits[1] <= 100, waits)

    def test_connection_refused_then_endpoint_up(self):
        port = free_port()
        url = "http://127.0.0.1:%d/inbound" % port
        self.start(url, retry={"max_attempts": 10, "initial_backoff_ms": 300,
                               "max_backoff_ms": 300})
        c = self.connect()
        self.ehlo(c)
        self.send_message(c, "sender@example.org", ["rcpt@example.com"], MSG)
        refused = self.sh.wait_log(r"endpoint app attempt 1: 451 4\.4\.1; next attempt in",
                                   timeout=10)
        self.assertTrue(refused, self.sh.log())
        self.assertTrue(self.sh.wait_log(r"endpoint app failed for id=\S+: .*\(attempt 1\)"),
                        self.sh.log())
        rcv = Receiver(port=port).start()  # the app comes up where smtphook looks for it
        self.addCleanup(rcv.stop)
        reply = c.read_reply(20)
        self.assertReply(reply, 250, "2.0.0")
        reqs = rcv.requests
        self.assertEqual(len(reqs), 1, "the refused attempts never reached the app: %r" % reqs)
        rid = reqs[0].header("X-Smtphook-Id")
        self.assertIdInReply(rid, reply)
        m = re.search(r"endpoints=app:200:\d+ms:attempts=(\d+) ", self.txn_line(rid))
        self.assertIsNotNone(m, self.sh.log())
        self.assertGreaterEqual(int(m.group(1)), 2)

    def test_408_429_and_5xx_are_retried(self):
        for status in (408, 429, 500, 502, 504):
            with self.subTest(status=status):
                rcv = self.start_receiver(responder=Script(answer(status), answer(200)))
                self.start(rcv.url())
                reply, _ = self.timed_send()
                self.assertReply(reply, 250, "2.0.0")
                self.assertEqual(len(rcv.requests), 2, rcv.requests)

    def test_permanent_or_misconfigured_answers_are_not_retried(self):
        # 404 is deferred (451: an endpoint the operator can fix) but another attempt now
        # would meet the same misconfiguration; the others are permanent.
        cases = ((404, 451, "4.3.5"), (403, 550, "5.7.1"), (400, 550, "5.6.0"),
                 (413, 552, "5.3.4"), (401, 451, "4.3.5"), (431, 451, "4.3.0"),
                 (302, 451, "4.3.5"))
        rcv = self.start_receiver()
        self.start(rcv.url())
        for n, (status, code, esc) in enumerate(cases, 1):
            with self.subTest(status=status):
                rcv.set(status=status)
                reply, _ = self.timed_send()
                self.assertReply(reply, code, esc)
                reqs = rcv.requests
                self.assertEqual(len(reqs), n, "one attempt for %d: %r" % (status, reqs))
                rid = reqs[-1].header("X-Smtphook-Id")
                self.assertIn(":attempts=1 ", self.txn_line(rid))
                self.assertEqual(self.attempt_lines(rid), [])

    def test_only_the_failed_endpoint_is_tried_again(self):
        # Two endpoints, every one gets every message: "one" accepts at once, "two" fails
        # once. Only "two" gets a second request; "one" never sees the message twice.
        r1 = self.start_receiver(status=200)
        r2 = self.start_receiver(responder=Script(answer(503), answer(200)))
        self.start_smtphook(endpoints={"one": self.endpoint(r1.url("/one")),
                                       "two": self.endpoint(r2.url("/two"))})
        reply, _ = self.timed_send()
        self.assertReply(reply, 250, "2.0.0")
        self.assertEqual((len(r1.requests), len(r2.requests)), (1, 2))
        q1, q2a, q2b = r1.requests[0], r2.requests[0], r2.requests[1]
        self.assertEqual(q2a.header("Idempotency-Key"), q2b.header("Idempotency-Key"))
        rid = q1.header("X-Smtphook-Id")
        self.assertEqual({q2a.header("X-Smtphook-Id"), q2b.header("X-Smtphook-Id")}, {rid})
        self.assertRegex(self.txn_line(rid), r"endpoints=one:200:\d+ms:attempts=1,"
                                             r"two:200:\d+ms:attempts=2 ")

    def test_max_attempts_exhausted_gives_the_last_failure(self):
        # 503, 503, then no answer within the endpoint's timeout: three attempts, and the
        # sender hears what the last one met (a timeout), not the first one's 4.3.0.
        rcv = self.start_receiver(responder=Script(answer(503), answer(503), answer(200, delay=8)))
        self.start(rcv.url(), timeout_ms=800)
        reply, _ = self.timed_send()
        self.assertReply(reply, 451, "4.4.7")
        self.assertIn("endpoint timed out", reply.text)
        reqs = rcv.requests
        self.assertEqual(len(reqs), 3, reqs)
        rid = reqs[0].header("X-Smtphook-Id")
        self.assertIdInReply(rid, reply)
        line = self.txn_line(rid)
        self.assertRegex(line, r"endpoints=app:endpoint timed out:\d+ms:attempts=3 ")
        self.assertIn('reply="451 4.4.7"', line)
        self.assertIn("attempt 3: 451 4.4.7; no retry: max_attempts (3) used up",
                      self.attempt_lines(rid)[-1])

    def test_max_attempts_exhausted_all_503(self):
        rcv = self.start_receiver(status=503)
        self.start(rcv.url(), retry={"max_attempts": 4, "initial_backoff_ms": 20,
                                     "max_backoff_ms": 20})
        reply, _ = self.timed_send()
        self.assertReply(reply, 451, "4.3.0")
        self.assertEqual(len(rcv.requests), 4)
        rid = rcv.requests[0].header("X-Smtphook-Id")
        self.assertRegex(self.txn_line(rid), r"endpoints=app:503:\d+ms:attempts=4 ")
        attempts = self.attempt_lines(rid)
        self.assertEqual(len(attempts), 4, attempts)
        for n, ln in enumerate(attempts[:3], 1):
            self.assertIn("attempt %d: 451 4.3.0; next attempt in" % n, ln)
        self.assertIn("attempt 4: 451 4.3.0; no retry: max_attempts (4) used up", attempts[3])


class RetryAfter(RetryCase):
    TINY = {"max_attempts": 3, "initial_backoff_ms": 10, "max_backoff_ms": 10}

    def test_retry_after_seconds_is_honoured(self):
        rcv = self.start_receiver(responder=Script(answer(503, [("Retry-After", "1")]),
                                                   answer(200)))
        self.start(rcv.url(), retry=self.TINY)
        reply, took = self.timed_send()
        self.assertReply(reply, 250, "2.0.0")
        reqs = rcv.requests
        self.assertEqual(len(reqs), 2, reqs)
        self.assertGreaterEqual(reqs[1].arrived - reqs[0].arrived, 0.95,
                                "Retry-After: 1 waits a second, not the 10 ms backoff")
        self.assertGreaterEqual(took, 0.95)
        rid = reqs[0].header("X-Smtphook-Id")
        self.assertEqual(len(self.attempt_lines(rid)), 1)
        self.assertIn("attempt 1: 451 4.3.0; next attempt in 1000 ms", self.attempt_lines(rid)[0])

    def test_retry_after_http_date_is_honoured(self):
        # An IMF-fixdate two seconds ahead (whole seconds: the wait is between 1 and 2 s).
        calls = []

        def responder(req):
            calls.append(req)
            if len(calls) == 1:
                when = email.utils.formatdate(time.time() + 2, usegmt=True)
                return answer(429, [("Retry-After", when)])
            return answer(200)
        rcv = self.start_receiver(responder=responder)
        self.start(rcv.url(), retry=self.TINY)
        reply, _ = self.timed_send()
        self.assertReply(reply, 250, "2.0.0")
        reqs = rcv.requests
        self.assertEqual(len(reqs), 2, reqs)
        self.assertGreaterEqual(reqs[1].arrived - reqs[0].arrived, 0.9)
        rid = reqs[0].header("X-Smtphook-Id")
        waits = [int(re.search(r"next attempt in (\d+) ms", ln).group(1))
                 for ln in self.attempt_lines(rid)]
        self.assertEqual(len(waits), 1, self.sh.log())
        self.assertTrue(900 <= waits[0] <= 2100, waits)

    def test_retry_after_past_the_deadline_means_451_at_once(self):
        rcv = self.start_receiver(status=503)
        rcv.set(responder=lambda req: answer(503, [("Retry-After", "30")]))
        self.start(rcv.url(), retry=self.TINY, limits={"transaction_timeout_ms": 10000})
        reply, took = self.timed_send()
        self.assertReply(reply, 451, "4.3.0")
        self.assertLess(took, SLACK, "the 451 comes at once, not at the 10 s deadline")
        self.assertEqual(len(rcv.requests), 1)
        rid = rcv.requests[0].header("X-Smtphook-Id")
        self.assertIdInReply(rid, reply)
        self.assertIn(":attempts=1 ", self.txn_line(rid))
        attempts = self.attempt_lines(rid)
        self.assertEqual(len(attempts), 1, attempts)
        self.assertIn("attempt 1: 451 4.3.0; no retry: Retry-After 30000 ms would pass the "
                      "deadline", attempts[0])

    def test_backoff_past_the_deadline_means_451_at_once(self):
        # The wait before attempt 2 is 10 to 20 s; the deadline is 10 s away.
        rcv = self.start_receiver(status=503)
        self.start(rcv.url(), retry={"max_attempts": 3, "initial_backoff_ms": 20000,
                                     "max_backoff_ms": 20000},
                   limits={"transaction_timeout_ms": 10000})
        reply, took = self.timed_send()
        self.assertReply(reply, 451, "4.3.0")
        self.assertLess(took, SLACK)
        self.assertEqual(len(rcv.requests), 1)
        rid = rcv.requests[0].header("X-Smtphook-Id")
        self.assertIn(":attempts=1 ", self.txn_line(rid))
        attempts = self.attempt_lines(rid)
        self.assertEqual(len(attempts), 1, attempts)
        self.assertIn("attempt 1: 451 4.3.0; no retry: the backoff would pass the deadline",
                      attempts[0])

    def test_retry_after_that_fits_beats_a_longer_backoff(self):
        # Retry-After is the app's word even when it is shorter than the backoff would be
        # (here 10 to 20 s, longer than the deadline: without it there would be no retry).
        rcv = self.start_receiver(responder=Script(answer(503, [("Retry-After", "0")]),
                                                   answer(200)))
        self.start(rcv.url(), retry={"max_attempts": 2, "initial_backoff_ms": 20000,
                                     "max_backoff_ms": 20000},
                   limits={"transaction_timeout_ms": 10000})
        reply, took = self.timed_send()
        self.assertReply(reply, 250, "2.0.0")
        self.assertEqual(len(rcv.requests), 2)
        self.assertLess(took, SLACK)

    def test_unparsable_retry_after_falls_back_to_the_backoff(self):
        rcv = self.start_receiver(responder=Script(answer(503, [("Retry-After", "soon")]),
                                                   answer(200)))
        self.start(rcv.url(), retry=self.TINY)
        reply, took = self.timed_send()
        self.assertReply(reply, 250, "2.0.0")
        self.assertEqual(len(rcv.requests), 2)
        rid = rcv.requests[0].header("X-Smtphook-Id")
        m = re.search(r"next attempt in (\d+) ms", self.attempt_lines(rid)[0])
        self.assertTrue(5 <= int(m.group(1)) <= 10, "the 10 ms backoff: %s" % m.group(0))


class Deadline(RetryCase):
    def test_endpoint_that_never_answers_gets_451_at_the_deadline(self):
        # The endpoint's own timeout (20 s) is longer than the transaction's (2 s): the
        # deadline's timer ends the request.
        rcv = self.start_receiver(delay=30)
        self.start(rcv.url(), timeout_ms=20000, limits={"transaction_timeout_ms": 2000})
        reply, took = self.timed_send()
        self.assertReply(reply, 451, "4.4.7")
        self.assertGreaterEqual(took, 1.8, "not before the deadline")
        self.assertLess(took, 2.0 + SLACK, "at the deadline, not at the endpoint's timeout")
        self.assertEqual(len(rcv.requests), 1)
        rid = rcv.requests[0].header("X-Smtphook-Id")
        self.assertIdInReply(rid, reply)
        self.assertRegex(self.txn_line(rid), r"endpoints=app:endpoint timed out:\d+ms:attempts=1 ")
        self.assertTrue(self.sh.wait_log(r"txn id=%s: transaction deadline of 2000 ms reached"
                                         % re.escape(rid)), self.sh.log())

    def test_retries_stop_at_the_deadline(self):
        # Every attempt takes 0.5 s and fails; the backoff is short. Attempts go on while
        # the next one can end before the 3 s deadline, then the last failure is the reply.
        rcv = self.start_receiver(responder=lambda req: answer(503, delay=0.5))
        self.start(rcv.url(), retry={"max_attempts": 10, "initial_backoff_ms": 50,
                                     "max_backoff_ms": 50},
                   limits={"transaction_timeout_ms": 3000})
        reply, took = self.timed_send()
        self.assertReply(reply, 451, "4.3.0")
        self.assertLess(took, 3.0 + SLACK)
        n = len(rcv.requests)
        self.assertGreaterEqual(n, 2, "some retries fit")
        self.assertLess(n, 10, "not all ten attempts fit in 3 s")
        last = rcv.requests[-1].arrived - rcv.requests[0].arrived
        self.assertLess(last, 3.0, "no attempt starts after the deadline")


class Shutdown(RetryCase):
    def test_retry_waiting_at_sigterm_gets_its_last_answer_at_once(self):
        # A retry due in 8 s, SIGTERM, shutdown_timeout_ms 1000: the retry cannot happen any
        # more, so the transaction ends at once with its last answer (the sender hears why,
        # not a bare 421 at the end of the shutdown) and the exit is not held up.
        rcv = self.start_receiver(responder=Script(answer(503, [("Retry-After", "8")]),
                                                   answer(200)))
        self.start(rcv.url(), limits={"shutdown_timeout_ms": 1000})
        c = self.connect()
        self.ehlo(c)
        self.send_message(c, "sender@example.org", ["rcpt@example.com"], MSG)
        self.assertTrue(self.sh.wait_log(r"attempt 1: 451 4\.3\.0; next attempt in 8000 ms"),
                        self.sh.log())
        t0 = time.monotonic()
        self.sh.signal(signal.SIGTERM)
        reply = c.read_reply(15)
        took = time.monotonic() - t0
        self.assertReply(reply, 451, "4.3.0")
        self.assertIn("endpoint temporarily failed", reply.text)
        self.assertLess(took, 0.9, "not at the end of the shutdown bound")
        self.assertReply(c.read_reply(5), 421, "4.3.2")  # and the session ends
        self.assertEqual(self.sh.wait(15), 0)
        self.assertEqual(len(rcv.requests), 1, "no attempt after SIGTERM")

    def test_request_running_at_sigterm_ends_before_the_bound(self):
        # An attempt still out when the shutdown bound nears is ended a little before it, so
        # that its 451 reaches the sender instead of a cut connection.
        rcv = self.start_receiver(delay=10.0)
        self.start(rcv.url(), limits={"shutdown_timeout_ms": 2000})
        c = self.connect()
        self.ehlo(c)
        self.send_message(c, "sender@example.org", ["rcpt@example.com"], MSG)
        rcv.wait_for(1)
        t0 = time.monotonic()
        self.sh.signal(signal.SIGTERM)
        reply = c.read_reply(15)
        took = time.monotonic() - t0
        self.assertReply(reply, 451, "4.4.7")
        self.assertGreaterEqual(took, 1.0)
        self.assertLess(took, 2.0 + SLACK)
        self.assertEqual(self.sh.wait(15), 0)


class Breaker(RetryCase):
    COOLDOWN_MS = 1000  # the shortest the configuration allows
    BREAKER = {"failures": 2, "cooldown_ms": COOLDOWN_MS}

    def open_breaker(self, rcv):
        """Two messages answered 503 open it; returns the monotonic time it opened by."""
        for n in (1, 2):
            reply, _ = self.timed_send()
            self.assertReply(reply, 451, "4.3.0")
            self.assertEqual(len(rcv.requests), n)
        opened = time.monotonic()
        lines = self.sh.wait_log(r"endpoint app: circuit breaker open after 2 temporary failures")
        self.assertEqual(len(lines), 1, self.sh.log())
        return opened

    def assertRefusedAtOnce(self, rcv):
        """While the breaker is open the recipient itself is deferred, at RCPT: the sender
        keeps the message for later and sends no text; no request is made."""
        before = len(rcv.requests)
        c = self.connect()
        self.ehlo(c)
        self.assertReply(c.cmd("MAIL FROM:<sender@example.org>"), 250)
        t0 = time.monotonic()
        reply = c.cmd("RCPT TO:<rcpt@example.com>")
        self.assertLess(time.monotonic() - t0, SLACK)
        self.assertReply(reply, 451, "4.4.1")
        self.assertIn("unavailable, try again later", reply.text)
        self.assertReply(c.cmd("DATA"), 554, "5.5.1")
        self.assertEqual(len(rcv.requests), before, "no request while the breaker is open")

    def wait_cooldown(self, opened):
        left = opened + self.COOLDOWN_MS / 1000.0 + 0.2 - time.monotonic()
        if left > 0:
            time.sleep(left)  # the cooldown is a time, nothing to poll for

    def test_open_then_probe_closes_it(self):
        rcv = self.start_receiver(status=503)
        self.start(rcv.url(), retry=ONE, breaker=self.BREAKER)
        opened = self.open_breaker(rcv)
        self.assertRefusedAtOnce(rcv)
        self.assertRefusedAtOnce(rcv)

        # After the cooldown one probe goes out; while it is out (the app holds its answer
        # until released) others are still refused.
        self.wait_cooldown(opened)
        release = threading.Event()
        self.addCleanup(release.set)
        rcv.set(responder=lambda req: answer(200) if release.wait(20) else answer(503))
        probe = self.connect()
        self.ehlo(probe)
        self.send_message(probe, "sender@example.org", ["rcpt@example.com"], MSG)
        self.assertEqual(len(rcv.wait_for(3)), 3, "the probe reached the app")
        self.assertTrue(self.sh.wait_log(r"endpoint app: circuit breaker half-open, one probe"))
        self.assertRefusedAtOnce(rcv)
        self.assertEqual(self.sh.wait_log(r"circuit breaker closed", timeout=0), [])
        release.set()
        self.assertReply(probe.read_reply(10), 250, "2.0.0")
        self.assertTrue(self.sh.wait_log(r"endpoint app: circuit breaker closed, endpoint "
                                         r"answers again"), self.sh.log())

        # Closed: messages go out again.
        reply, _ = self.timed_send()
        self.assertReply(reply, 250, "2.0.0")
        self.assertEqual(len(rcv.requests), 4)

    def test_failed_probe_reopens_it(self):
        rcv = self.start_receiver(status=503)
        self.start(rcv.url(), retry=ONE, breaker=self.BREAKER)
        opened = self.open_breaker(rcv)
        self.wait_cooldown(opened)
        reply, _ = self.timed_send()  # the probe
        self.assertReply(reply, 451, "4.3.0")
        self.assertEqual(len(rcv.requests), 3, "one probe request")
        reopened = time.monotonic()
        lines = self.sh.wait_log(r"endpoint app: circuit breaker open after")
        self.assertEqual(len(lines), 2, "opened again:\n%s" % self.sh.log())
        self.assertEqual(self.sh.wait_log(r"circuit breaker closed", timeout=0), [])
        self.assertRefusedAtOnce(rcv)
        # ... for another whole cooldown, then the next probe.
        self.wait_cooldown(reopened)
        rcv.set(status=200)
        reply, _ = self.timed_send()
        self.assertReply(reply, 250, "2.0.0")
        self.assertEqual(len(rcv.requests), 4)

    def test_a_reload_keeps_an_open_breaker_of_the_same_endpoint(self):
        # A reload for something else (here one more domain) must not make every sender
        # wait out the down endpoint's timeouts again; a new URL is a new endpoint.
        rcv = self.start_receiver(status=503)
        self.start(rcv.url(), retry=ONE, breaker={"failures": 2, "cooldown_ms": 60000})
        self.open_breaker(rcv)
        self.assertRefusedAtOnce(rcv)
        self.reload(lambda cfg: cfg["domains"].append("example.net"))
        self.assertTrue(self.sh.wait_log(r"endpoint app: circuit breaker stays open across "
                                         r"the reload"), self.sh.log())
        self.assertRefusedAtOnce(rcv)

        rcv.set(status=200)
        self.reload(lambda cfg: cfg["endpoints"]["app"].update(url=rcv.url("/moved")))
        reply, _ = self.timed_send()
        self.assertReply(reply, 250, "2.0.0")
        self.assertEqual(len(rcv.requests), 3)
        self.assertEqual(rcv.requests[-1].path, "/moved")

    def test_failures_too_few_to_open_it_log_nothing(self):
        # One failed attempt, then success: the breaker never opened, so no line may say it
        # closed (that line is the operator's sign that an outage ended).
        rcv = self.start_receiver(responder=Script(answer(503), answer(200)))
        self.start(rcv.url(), retry=FAST, breaker=self.BREAKER)
        reply, _ = self.timed_send()
        self.assertReply(reply, 250, "2.0.0")
        self.assertEqual(len(rcv.requests), 2)
        self.txn_line(rcv.requests[0].header("X-Smtphook-Id"))
        self.assertEqual(self.sh.wait_log(r"circuit breaker", timeout=0), [], self.sh.log())

    def test_permanent_answer_counts_as_the_app_being_up(self):
        rcv = self.start_receiver(status=503)
        self.start(rcv.url(), retry=ONE, breaker=self.BREAKER)
        for n, (status, code) in enumerate(((503, 451), (403, 550), (503, 451), (503, 451)), 1):
            rcv.set(status=status)
            reply, _ = self.timed_send()
            self.assertReply(reply, code)
            # Without the 403's reset the third message would have opened the breaker and
            # the fourth would get no request.
            self.assertEqual(len(rcv.requests), n, "message %d made its request" % n)
        self.assertEqual(len(self.sh.wait_log(r"circuit breaker open after")), 1, self.sh.log())
        self.assertRefusedAtOnce(rcv)

    def test_retries_of_one_message_count_and_stop_at_an_open_breaker(self):
        # failures 2 with 3 attempts: the second failed attempt opens the breaker, so the
        # third is not made; the sender hears the last real answer.
        rcv = self.start_receiver(status=503)
        self.start(rcv.url(), retry=FAST, breaker=self.BREAKER)
        reply, _ = self.timed_send()
        self.assertReply(reply, 451, "4.3.0")
        self.assertEqual(len(rcv.requests), 2)
        rid = rcv.requests[0].header("X-Smtphook-Id")
        self.assertRegex(self.txn_line(rid), r"endpoints=app:503:\d+ms:attempts=2 ")
        self.assertRefusedAtOnce(rcv)

    def test_open_breaker_defers_only_its_routes_recipients(self):
        # Two routes; route a's app is down and its breaker open. A message to both: the
        # recipient of route a gets 451 4.4.1 at RCPT (its sender tries it again later), the
        # other is delivered now, once (no whole-message 451 that would make route b's app
        # get it twice), and route a binds nothing with one_route_per_transaction.
        ra = self.start_receiver(status=503)
        rb = self.start_receiver(status=200)
        self.start_smtphook(
            endpoints={"a": self.endpoint(ra.url("/a"), retry=ONE,
                                          breaker={"failures": 1, "cooldown_ms": 60000}),
                       "b": self.endpoint(rb.url("/b"), retry=ONE)},
            routes=[{"match": ["a@example.com"], "endpoints": ["a"]},
                    {"match": ["b@example.com"], "endpoints": ["b"]}],
            one_route_per_transaction=True)
        c = self.connect()
        self.ehlo(c)
        self.send_message(c, "sender@example.org", ["a@example.com"], MSG)
        self.assertReply(c.read_reply(10), 451, "4.3.0")
        self.assertTrue(self.sh.wait_log(r"endpoint a: circuit breaker open after 1 "))
        with smtplib.SMTP(HOST, self.sh.port, timeout=10) as smtp:
            refused = smtp.sendmail("sender@example.org", ["a@example.com", "b@example.com"],
                                    MSG)
        self.assertEqual(list(refused), ["a@example.com"])
        self.assertEqual(refused["a@example.com"][0], 451)
        self.assertEqual(len(ra.requests), 1, "nothing more for the app that is down")
        self.assertEqual(len(rb.wait_for(1)), 1)
        self.assertEqual(rb.requests[0].envelope()["rcpt_to"], ["b@example.com"])

    def test_failover_goes_straight_to_the_next_endpoint(self):
        r1 = self.start_receiver(status=503)
        r2 = self.start_receiver(status=200)
        self.start_smtphook(
            endpoints={"one": self.endpoint(r1.url("/one"), retry=ONE,
                                            breaker={"failures": 1, "cooldown_ms": 60000}),
                       "two": self.endpoint(r2.url("/two"), retry=ONE)},
            routes=[{"match": ["*@example.com"], "endpoints": ["one", "two"],
                     "policy": "failover"}])
        reply, _ = self.timed_send()
        self.assertReply(reply, 250, "2.0.0")
        self.assertEqual((len(r1.requests), len(r2.requests)), (1, 1))
        self.assertTrue(self.sh.wait_log(r"endpoint one: circuit breaker open after 1 "))

        reply, took = self.timed_send()
        self.assertReply(reply, 250, "2.0.0")
        self.assertLess(took, SLACK)
        self.assertEqual((len(r1.requests), len(r2.requests)), (1, 2),
                         "the open breaker sent the message straight to endpoint two")
        rid = r2.requests[-1].header("X-Smtphook-Id")
        self.assertRegex(self.txn_line(rid),
                         r"endpoints=one:endpoint unavailable \(circuit open\):\d+ms:attempts=0,"
                         r"two:200:\d+ms:attempts=1 ")


if __name__ == "__main__":
    unittest.main()
