"""test_queue.py - the durable queue: "delivery": "queue" answers 250 once the message is on
disk and delivers it in the background until the app takes it (backoff, Retry-After, the
same Idempotency-Key on every attempt), gives it up as a dead letter (a permanent refusal,
or max_age_ms) or is told otherwise by the operator (the `smtphook queue` CLI, the admin
port); "sync_then_queue" queues only what failed for now while the sender waited; a full
queue answers 452 4.3.1 and writes nothing; a restart picks the entries up again (clearing
what a crash left, setting unreadable entries aside, refusing a second server on the same
directory); the endpoint's breaker holds attempts back, max_in_flight limits them, a
failover route's endpoints share one entry, and a stop waits for an attempt under way.

The app is a real receiver whose responder (queue_files.App) answers what the test says
and keeps apart the requests it accepted, so "delivered once" is counted on 2xx answers per
Idempotency-Key, and bodies are compared byte for byte with what the client sent. The
queue directory is the test's own temporary directory, read as an operator would
(queue_files.QueueDir). Backoffs are 100 to 400 ms so a message waits for the app at most
a fraction of a second once it is back; every wait is a poll with a generous bound.
"""

import json
import os
import re
import shutil
import signal
import tempfile
import threading
import time
import unittest

from helpers import HOST, free_port
from queue_files import (KEY_RE, QUEUED_RE, App, KeepsQueueForReport, QueueDir, http, metric,
                         parse_metrics, queue_cli)
from receiver import Receiver
from smtp_client import Closed, dot_stuff
from smtphook_process import Smtphook
from testcase import SmtphookTestCase

SENDER = "sender@example.org"
RCPT = "rcpt@example.com"
FAST = {"initial_backoff_ms": 100, "max_backoff_ms": 400}  # the queue's shortest waits
FAR = {"initial_backoff_ms": 600000, "max_backoff_ms": 600000}  # after a failure: 5-10 min
DRAIN = 20.0  # seconds for a queue to empty once the app is back
SETTLE = 1.0  # seconds in which a request that must not come would have come


def body_of(n, tag="q"):
    """Message n: a line starting with a dot (stuffed on the wire, not in the body) and
    8-bit bytes, so a byte-exact comparison means something."""
    return (b"From: a@example.org\r\nTo: rcpt@example.com\r\nSubject: %s %d\r\n"
            b"Message-ID: <%s-%d@itest>\r\n\r\n.dot line %d\r\ncaf\xc3\xa9 %d\r\n"
            % (tag.encode(), n, tag.encode(), n, n, n))


def endpoint(url, **extra):
    """An endpoint with the breaker out of the way (its own tests turn it on)."""
    ep = {"url": url, "timeout_ms": 10000, "connect_timeout_ms": 2000,
          "breaker": {"failures": 0}}
    ep.update(extra)
    return ep


class QueueCase(KeepsQueueForReport, SmtphookTestCase):
    """Starts smtphook with a queue in a temporary directory of the test's own."""

    def setUp(self):
        self.qpath = tempfile.mkdtemp(prefix="smtphook-queue-")
        self.addCleanup(shutil.rmtree, self.qpath, True)
        self.q = QueueDir(self.qpath)
        self.admin_port = None

    def start_two(self, one, two, queue, policy="all"):
        """Endpoints "one" and "two" answering through the Apps one and two, on one route
        with policy for every recipient at example.com."""
        r1 = self.start_receiver(responder=one)
        r2 = self.start_receiver(responder=two)
        return self.start_queue(endpoints={"one": endpoint(r1.url("/one")),
                                           "two": endpoint(r2.url("/two"))},
                                routes=[{"match": ["*@example.com"], "endpoints": ["one", "two"],
                                         "policy": policy}], queue=queue)

    def start_queue(self, url=None, delivery="queue", queue=None, endpoints=None, admin=False,
                    **top):
        """smtphook with the queue in self.qpath (FAST unless queue= says otherwise) and one
        endpoint "app" at url unless endpoints are given."""
        q = dict(FAST, directory=self.qpath)
        q.update(queue or {})
        if endpoints is None:
            endpoints = {"app": endpoint(url)}
        if admin:
            self.admin_port = free_port()
            top["admin"] = {"listen": "%s:%d" % (HOST, self.admin_port)}
        return self.start_smtphook(endpoints=endpoints, delivery=delivery, queue=q, **top)

    def restart(self, sh=None, kill=False):
        """Stop smtphook (SIGTERM, or SIGKILL with kill) and start it again with the same
        configuration, port and queue directory."""
        old = sh or self.sh
        if kill:
            old.kill()
        else:
            self.assertEqual(old.stop(), 0, old.log())
        return self.start_smtphook(config=old.config, port=old.port)

    def send_all(self, bodies, rcpts=(RCPT,), sh=None):
        """The bodies, one transaction each, on one connection; the replies to the final
        dots."""
        c = self.connect(sh)
        self.ehlo(c)
        replies = [self.transaction(c, SENDER, list(rcpts), b) for b in bodies]
        try:
            c.cmd("QUIT")
        except (Closed, OSError):
            pass
        c.close()
        return replies

    def assertQueued(self, reply):
        """250 2.0.0 "Ok: queued as ID"; returns ID."""
        self.assertReply(reply, 250, "2.0.0")
        m = re.match(QUEUED_RE, reply.text[len("2.0.0 "):])
        self.assertIsNotNone(m, "a queued reply: %s" % reply)
        return m.group(1)

    def wait_attempts(self, n, timeout=10.0, pattern=r"attempt \d+ to app: "):
        """Wait until the log has n attempt lines that scheduled another attempt."""
        rx = r"queue: entry \S+ \(txn id=\S+\) " + pattern + r".*; next in \d+ ms"
        self.q.wait(lambda: len(self.sh.wait_log(rx, timeout=0)) >= n, timeout)
        lines = self.sh.wait_log(rx, timeout=0)
        self.assertGreaterEqual(len(lines), n, "attempts while the app is down:\n"
                                + self.sh.log()[-3000:])
        return lines

    def assertDrained(self, timeout=DRAIN):
        self.assertTrue(self.q.wait_empty(timeout), "active/ empties: %s" % self.q.files("active"))

    def assertDeliveredOnce(self, app, bodies, ids=None):
        """Every body was accepted exactly once per Idempotency-Key, one key per message,
        byte-exact; with ids, each request carries its message's transaction id."""
        by_key = app.by_key()
        self.assertEqual(len(by_key), len(bodies), "one key per message: %s" % sorted(by_key))
        for key, reqs in by_key.items():
            self.assertRegex(key or "", KEY_RE)
            self.assertEqual(len(reqs), 1, "accepted once: key %s %r" % (key, reqs))
        got = sorted(r.body for reqs in by_key.values() for r in reqs)
        self.assertEqual(got, sorted(bodies), "bodies arrive byte-exact")
        if ids is not None:
            want = {b: i for b, i in zip(bodies, ids)}
            for reqs in by_key.values():
                self.assertEqual(reqs[0].header("X-Smtphook-Id"), want[reqs[0].body])

    def assertKeysStable(self, app):
        """Every attempt of one message (accepted or not) carried one key."""
        keys = {}
        for req, _ in app.answers:
            keys.setdefault(req.body, set()).add(req.header("Idempotency-Key"))
        for body, ks in keys.items():
            self.assertEqual(len(ks), 1, "one Idempotency-Key for every attempt of %r" % body)

    def metrics(self):
        status, text = http(self.admin_port, "/metrics")
        self.assertEqual(status, 200)
        return parse_metrics(text)


class Outage(QueueCase):
    N = 20

    def test_app_answering_503_then_back_gets_every_message_once(self):
        app = App(503)
        rcv = self.start_receiver(responder=app)
        self.start_queue(rcv.url())
        bodies = [body_of(i, "down503") for i in range(self.N)]
        ids = [self.assertQueued(r) for r in self.send_all(bodies)]
        self.assertEqual(len(set(ids)), self.N)
        self.wait_attempts(2 * self.N)  # every message was tried, some more than once
        self.assertEqual(app.accepted, [])
        app.set(200)
        self.assertDrained()
        self.assertDeliveredOnce(app, bodies, ids)
        self.assertKeysStable(app)
        self.assertEqual(self.q.files("dead"), [])
        self.q.assert_tmp_settles(self)
        self.assertEqual(len(self.sh.wait_log(r"queue: entry \S+ \(txn id=\S+\) delivered to "
                                              r"app after \d+ attempts?$")), self.N)
        time.sleep(SETTLE)
        self.assertEqual(len(app.accepted), self.N, "nothing more once delivered")

    def test_app_not_listening_then_up_gets_every_message_once(self):
        port = free_port()  # nothing listens there until the receiver starts on it
        self.start_queue("http://%s:%d/inbound" % (HOST, port))
        bodies = [body_of(i, "refused") for i in range(self.N)]
        ids = [self.assertQueued(r) for r in self.send_all(bodies)]
        self.wait_attempts(2 * self.N)
        app = App(200)
        rcv = Receiver(port=port, responder=app).start()
        self.addCleanup(rcv.stop)
        self.assertDrained()
        self.assertDeliveredOnce(app, bodies, ids)
        self.assertEqual(len(rcv.requests), self.N, "refused attempts never reached the app")

    def test_transaction_line_and_queued_log(self):
        rcv = self.start_receiver()
        self.start_queue(rcv.url())
        rid = self.assertQueued(self.send_all([body_of(0)])[0])
        line = self.sh.wait_log(r"txn id=%s client=" % re.escape(rid))
        self.assertEqual(len(line), 1, self.sh.log())
        self.assertIn(" queued=1 ", line[0])
        self.assertIn('reply="250 2.0.0"', line[0])
        self.assertTrue(self.sh.wait_log(r"queue: entry %s-0 \(txn id=%s\) delivered to app "
                                         r"after 1 attempt$" % (re.escape(rid), re.escape(rid)),
                                         timeout=10), self.sh.log())
        self.assertDrained()

    def test_entry_files_while_waiting(self):
        # What an operator finds in active/: the entry file (magic first, end last, the
        # envelope of the share, its key) and the message beside it, byte-exact.
        app = App(503)
        rcv = self.start_receiver(responder=app)
        self.start_queue(rcv.url(), queue=FAR)
        body = body_of(1, "files")
        rid = self.assertQueued(self.send_all([body], rcpts=(RCPT, "two@example.com"))[0])
        self.wait_attempts(1)
        name = "%s-0" % rid
        self.assertEqual(self.q.files("active"), [name, name + ".eml"])
        e = self.q.entry(name)
        self.assertEqual(e["name"], name)
        self.assertEqual(e["id"], rid)
        self.assertEqual(e["endpoint"], ["app"])
        self.assertEqual(e["from"], SENDER)
        self.assertEqual(e["rcpt"], [RCPT, "two@example.com"])
        self.assertEqual(int(e["size"]), len(body))
        self.assertEqual(int(e["attempts"]), 1)
        self.assertEqual(len(e["attempt"]), 1)
        self.assertEqual(e["attempt"][0]["status"], 503)
        self.assertEqual(e["attempt"][0]["code"], 451)
        self.assertRegex(e["key"], KEY_RE)
        self.assertEqual(e["key"], app.answers[0][0].header("Idempotency-Key"))
        self.assertGreater(int(e["next"]), int(e["queued"]) + 250000, "5 to 10 minutes later")
        self.assertEqual(self.q.message(name), body)


class TwoEndpoints(QueueCase):

    def test_all_route_gets_one_entry_per_endpoint(self):
        one, two = App(200), App(503)
        r1 = self.start_receiver(responder=one)
        r2 = self.start_receiver(responder=two)
        self.start_queue(endpoints={"one": endpoint(r1.url("/one")),
                                    "two": endpoint(r2.url("/two"))},
                         routes=[{"match": ["*@example.com"], "endpoints": ["one", "two"]}])
        bodies = [body_of(i, "two") for i in range(5)]
        ids = [self.assertQueued(r) for r in self.send_all(bodies)]
        self.assertEqual(len(one.wait_accepted(5)), 5)
        # One has them all; two's entries wait, one per message, for endpoint two only.
        self.assertTrue(self.q.wait(lambda: len(self.q.names()) == 5, 10), self.q.files("active"))
        entries = self.q.entries()
        self.assertEqual(sorted(e["id"] for e in entries.values()), sorted(ids))
        for name, e in entries.items():
            self.assertEqual(e["endpoint"], ["two"], name)
            self.assertEqual(self.q.message(name), bodies[ids.index(e["id"])])
        two.set(200)
        self.assertDrained()
        self.assertDeliveredOnce(one, bodies, ids)
        self.assertDeliveredOnce(two, bodies, ids)
        self.assertKeysStable(two)
        time.sleep(SETTLE)
        self.assertEqual(len(one.accepted), 5, "endpoint one never got a message twice")
        self.assertEqual(len(one.answers), 5)

    def test_two_endpoints_down_give_two_entries_sharing_one_message(self):
        one, two = App(503), App(503)
        self.start_two(one, two, FAR)
        body = body_of(7, "shared")
        rid = self.assertQueued(self.send_all([body])[0])
        self.wait_attempts(2, pattern=r"attempt 1 to (one|two): ")
        names = self.q.names()
        self.assertEqual(names, ["%s-0" % rid, "%s-1" % rid])
        self.assertEqual(sorted(self.q.entry(n)["endpoint"][0] for n in names), ["one", "two"])
        for n in names:
            self.assertEqual(self.q.message(n), body)
        st = [os.stat(os.path.join(self.q.folder("active"), n + ".eml")) for n in names]
        self.assertEqual(st[0].st_ino, st[1].st_ino, "one message file, linked per entry")


class RetryAfterTest(QueueCase):

    def test_retry_after_2_delays_the_next_attempt_2_s(self):
        app = App(503, [("Retry-After", "2")])
        rcv = self.start_receiver(responder=app)
        self.start_queue(rcv.url())
        self.assertQueued(self.send_all([body_of(0, "ra")])[0])
        line = self.wait_attempts(1)[0]
        app.set(200)
        reqs = app.wait_accepted(1, timeout=15)
        self.assertEqual(len(reqs), 1, self.sh.log())
        answers = app.answers
        self.assertEqual(len(answers), 2, "a 503, then the 200 (not 100 ms backoffs)")
        gap = answers[1][0].arrived - answers[0][0].arrived
        self.assertGreaterEqual(gap, 1.8, "Retry-After: 2, not the 100 ms backoff")
        self.assertLess(gap, 2.0 + 8.0)
        wait = int(re.search(r"next in (\d+) ms", line).group(1))
        self.assertTrue(1800 <= wait <= 2000, line)
        self.assertDrained()


class DeadLetters(QueueCase):

    def test_permanent_refusal_is_a_dead_letter_after_one_attempt(self):
        cases = ((422, 550), (400, 550), (403, 550), (413, 552))
        app = App(422)
        rcv = self.start_receiver(responder=app)
        self.start_queue(rcv.url(), admin=True)
        for n, (status, code) in enumerate(cases, 1):
            with self.subTest(status=status):
                app.set(status)
                body = body_of(n, "dead%d" % status)
                rid = self.assertQueued(self.send_all([body])[0])
                name = "%s-0" % rid
                lines = self.sh.wait_log(r"queue: entry %s \(txn id=%s, 1 attempts?\) is a dead "
                                         r"letter: %d " % (re.escape(name), re.escape(rid), code),
                                         timeout=10)
                self.assertEqual(len(lines), 1, self.sh.log())
                self.assertTrue(self.q.wait(lambda: name in self.q.names("dead"), 5))
                self.assertEqual(self.q.files("active"), [])
                e = self.q.entry(name, "dead")
                self.assertEqual(self.q.message(name, "dead"), body)
                self.assertEqual(int(e["attempts"]), 1)
                self.assertEqual([(a["endpoint"], a["status"], a["code"]) for a in e["attempt"]],
                                 [("app", status, code)])
                self.assertGreaterEqual(int(e["dead"]), int(e["queued"]))
                self.assertTrue(e["dead_reason"].startswith("%d " % code), e["dead_reason"])
                self.assertEqual(len(app.answers), n, "one attempt, never another")
        time.sleep(SETTLE)
        self.assertEqual(len(app.answers), len(cases))
        m = self.metrics()
        self.assertEqual(metric(m, "smtphook_queue_dead_letters_total", endpoint="app"),
                         len(cases))
        self.assertEqual(metric(m, "smtphook_queue_attempts_total", endpoint="app",
                                outcome="refused"), len(cases))
        self.assertEqual(metric(m, "smtphook_queue_entries", endpoint="app"), 0)

    def test_too_old_is_a_dead_letter(self):
        app = App(503)
        rcv = self.start_receiver(responder=app)
        self.start_queue(rcv.url(), queue={"max_age_ms": 1500}, admin=True)
        t0 = time.monotonic()
        rid = self.assertQueued(self.send_all([body_of(0, "old")])[0])
        name = "%s-0" % rid
        lines = self.sh.wait_log(r"queue: entry %s \(txn id=%s, \d+ attempts\) is a dead letter: "
                                 r"expired after 1500 ms; last: 451 " % (re.escape(name),
                                                                         re.escape(rid)),
                                 timeout=15)
        self.assertEqual(len(lines), 1, self.sh.log())
        self.assertGreaterEqual(time.monotonic() - t0, 1.4)
        self.assertTrue(self.q.wait(lambda: name in self.q.names("dead"), 5))
        self.assertEqual(self.q.files("active"), [])
        e = self.q.entry(name, "dead")
        self.assertGreaterEqual(int(e["attempts"]), 3, "tried every 100-400 ms meanwhile")
        self.assertEqual(len(e["attempt"]), int(e["attempts"]))
        self.assertGreaterEqual(int(e["dead"]) - int(e["queued"]), 1500,
                                "the last attempt comes at the end of the entry's life")
        self.assertIn("expired after 1500 ms", e["dead_reason"])
        n = len(app.answers)
        self.assertEqual(n, int(e["attempts"]))
        time.sleep(SETTLE)
        self.assertEqual(len(app.answers), n, "a dead letter is not tried")
        m = self.metrics()
        self.assertEqual(metric(m, "smtphook_queue_dead_letters_total", endpoint="app"), 1)
        self.assertEqual(metric(m, "smtphook_queue_attempts_total", endpoint="app",
                                outcome="deferred"), n)


class SyncThenQueue(QueueCase):
    RETRY = {"max_attempts": 2, "initial_backoff_ms": 10, "max_backoff_ms": 20}

    def start_stq(self, app):
        rcv = self.start_receiver(responder=app)
        return self.start_queue(endpoints={"app": endpoint(rcv.url(), retry=self.RETRY)},
                                delivery="sync_then_queue")

    def test_app_up_is_delivered_while_the_sender_waits(self):
        app = App(200)
        self.start_stq(app)
        body = body_of(0, "stq-up")
        reply = self.send_all([body])[0]
        self.assertReply(reply, 250, "2.0.0")
        self.assertRegex(reply.text, r"Ok: delivered as \S+")
        self.assertEqual([r.body for r in app.accepted], [body], "delivered before the reply")
        self.assertEqual(self.q.files("active"), [])
        self.assertEqual(self.sh.wait_log(r"queued", timeout=0), [])

    def test_app_503_is_queued_and_delivered_later(self):
        app = App(503)
        self.start_stq(app)
        body = body_of(0, "stq-down")
        rid = self.assertQueued(self.send_all([body])[0])
        self.assertGreaterEqual(len(app.answers), 2, "the endpoint's retry ran while waiting")
        self.assertTrue(self.sh.wait_log(r"txn id=%s client=.* queued=1 " % re.escape(rid)))
        app.set(200)
        self.assertDrained()
        self.assertDeliveredOnce(app, [body], [rid])
        self.assertKeysStable(app)

    def test_app_422_is_550_and_nothing_is_queued(self):
        app = App(422)
        self.start_stq(app)
        reply = self.send_all([body_of(0, "stq-422")])[0]
        self.assertReply(reply, 550)
        self.assertEqual(len(app.answers), 1, "a permanent refusal is not retried")
        self.assertEqual(self.q.files("active"), [])
        self.assertEqual(self.q.files("dead"), [])
        time.sleep(SETTLE)
        self.assertEqual(len(app.answers), 1)


class Mixed(QueueCase):
    ROUTES = [{"match": ["*@sync.example"], "endpoints": ["s"], "delivery": "sync"},
              {"match": ["*@q.example"], "endpoints": ["q"], "delivery": "queue"}]

    def start_mixed(self, s_app, q_app, queue=None):
        rs = self.start_receiver(responder=s_app)
        rq = self.start_receiver(responder=q_app)
        return self.start_queue(
            endpoints={"s": endpoint(rs.url("/s"), retry={"max_attempts": 1}),
                       "q": endpoint(rq.url("/q"))},
            routes=self.ROUTES, domains=["sync.example", "q.example"], queue=queue)

    def test_sync_and_queue_routes_in_one_transaction(self):
        s_app, q_app = App(200), App(200)
        self.start_mixed(s_app, q_app)
        body = body_of(0, "mixed")
        reply = self.send_all([body], rcpts=("a@sync.example", "b@q.example"))[0]
        rid = self.assertQueued(reply)
        self.assertEqual([r.body for r in s_app.accepted], [body], "sync: before the reply")
        self.assertEqual(s_app.accepted[0].envelope()["rcpt_to"], ["a@sync.example"])
        reqs = q_app.wait_accepted(1)
        self.assertEqual([r.body for r in reqs], [body])
        self.assertEqual(reqs[0].envelope()["rcpt_to"], ["b@q.example"])
        self.assertEqual(reqs[0].header("X-Smtphook-Id"), rid)
        self.assertDrained()

    def test_sync_endpoint_503_is_451_for_the_whole_message_and_nothing_queued(self):
        s_app, q_app = App(503), App(200)
        self.start_mixed(s_app, q_app)
        reply = self.send_all([body_of(0, "mixed451")], rcpts=("a@sync.example", "b@q.example"))[0]
        self.assertReply(reply, 451)
        self.assertEqual(self.q.files("active"), [])
        self.q.assert_tmp_settles(self)
        time.sleep(SETTLE)
        self.assertEqual(q_app.answers, [], "the queue route's share was not queued")


class Full(QueueCase):

    def test_max_messages_full_refuses_mail_and_writes_nothing(self):
        app = App(503)
        rcv = self.start_receiver(responder=app)
        self.start_queue(rcv.url(), queue={"max_messages": 2})
        bodies = [body_of(i, "full") for i in range(2)]
        ids = [self.assertQueued(r) for r in self.send_all(bodies)]
        self.wait_attempts(2)
        c = self.connect()
        self.ehlo(c)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 452, "4.3.1")
        c.cmd("QUIT")
        self.assertEqual(self.q.check_whole(self), ["%s-0" % i for i in sorted(ids)])
        self.q.assert_tmp_settles(self)
        # Once the app took them there is room again.
        app.set(200)
        self.assertDrained()
        body = body_of(3, "room")
        self.assertQueued(self.send_all([body])[0])
        self.assertEqual(len(app.wait_accepted(3)), 3)
        self.assertDeliveredOnce(app, bodies + [body])

    def test_max_bytes_full_refuses_the_final_dot(self):
        # 600 KB fits once in max_bytes 1 MiB; MAIL cannot know the size: the dot gets 452.
        app = App(503)
        rcv = self.start_receiver(responder=app)
        self.start_queue(rcv.url(), queue=dict(FAR, max_bytes=1048576))
        big = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 600
        r1, r2 = self.send_all([big, big.replace(b"big", b"bog", 1)])
        self.assertQueued(r1)
        self.assertReply(r2, 452, "4.3.1")
        self.assertEqual(len(self.q.check_whole(self)), 1)
        self.q.assert_tmp_settles(self)

    def test_rcpt_of_a_queue_route_is_refused_when_full(self):
        s_app, q_app = App(200), App(503)
        rs = self.start_receiver(responder=s_app)
        rq = self.start_receiver(responder=q_app)
        self.start_queue(endpoints={"s": endpoint(rs.url("/s"), retry={"max_attempts": 1}),
                                    "q": endpoint(rq.url("/q"))},
                         routes=Mixed.ROUTES, domains=["sync.example", "q.example"],
                         queue=dict(FAR, max_messages=1))
        self.assertQueued(self.send_all([body_of(0, "one")], rcpts=("b@q.example",))[0])
        c = self.connect()
        self.ehlo(c)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250, msg="not every route queues")
        self.assertReply(c.cmd("RCPT TO:<b@q.example>"), 452, "4.3.1")
        self.assertReply(c.cmd("RCPT TO:<a@sync.example>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        body = body_of(1, "sync-only")
        c.send(dot_stuff(body))
        reply = c.read_reply()
        self.assertReply(reply, 250, "2.0.0")
        self.assertRegex(reply.text, r"delivered as")
        self.assertEqual([r.body for r in s_app.accepted], [body])
        self.assertEqual(len(self.q.names()), 1)

    def test_sync_then_queue_full_is_452_at_the_dot(self):
        app = App(503)
        rcv = self.start_receiver(responder=app)
        self.start_queue(endpoints={"app": endpoint(rcv.url(), retry={"max_attempts": 1})},
                         delivery="sync_then_queue", queue=dict(FAR, max_messages=1))
        r1, r2 = self.send_all([body_of(0, "stq1"), body_of(1, "stq2")])
        self.assertQueued(r1)
        self.assertReply(r2, 452, "4.3.1")
        self.assertEqual(len(self.q.check_whole(self)), 1)
        self.q.assert_tmp_settles(self)


class Restart(QueueCase):

    def check_restart(self, kill):
        app = App(503)
        rcv = self.start_receiver(responder=app)
        self.start_queue(rcv.url())
        bodies = [body_of(i, "restart-kill" if kill else "restart") for i in range(5)]
        ids = [self.assertQueued(r) for r in self.send_all(bodies)]
        self.wait_attempts(5)
        self.restart(kill=kill)
        self.assertTrue(self.sh.wait_log(r"queue in %s: 5 entries waiting" % re.escape(self.qpath)),
                        self.sh.log())
        app.set(200)
        self.assertDrained()
        self.assertDeliveredOnce(app, bodies, ids)
        self.assertKeysStable(app)
        self.assertEqual(self.q.files("corrupt"), [])
        self.q.assert_tmp_settles(self)

    def test_sigterm_and_start_again_delivers_what_was_queued(self):
        self.check_restart(kill=False)

    def test_kill_9_and_start_again_delivers_what_was_queued(self):
        self.check_restart(kill=True)

    def test_flags_delivery_and_queue_dir(self):
        # --delivery queue --queue-dir over a config that says nothing of a queue; the
        # directory is made at the start.
        rcv = self.start_receiver()
        qdir = os.path.join(self.qpath, "made", "here")
        self.start_smtphook(rcv, args=["--delivery", "queue", "--queue-dir", qdir])
        self.assertTrue(os.path.isdir(os.path.join(qdir, "active")), os.listdir(self.qpath))
        self.assertQueued(self.send_all([body_of(0, "flags")])[0])
        self.assertEqual(len(rcv.wait_for(1)), 1)
        self.assertTrue(QueueDir(qdir).wait_empty(10))


class Breakers(QueueCase):
    """The endpoint's circuit breaker, shared with the SMTP side."""

    def test_open_breaker_holds_attempts_back_and_new_mail_is_still_queued(self):
        app = App(503)
        rcv = self.start_receiver(responder=app)
        self.start_queue(endpoints={"app": endpoint(rcv.url(), breaker={"failures": 2,
                                                                        "cooldown_ms": 3000})})
        bodies = [body_of(0, "breaker"), body_of(1, "breaker")]
        self.assertQueued(self.send_all(bodies[:1])[0])
        self.assertTrue(self.sh.wait_log(r"endpoint app: circuit breaker open after 2 ",
                                         timeout=10), self.sh.log())
        # open: a new message is still taken (RCPT is not refused in queue mode) and queued
        self.assertQueued(self.send_all(bodies[1:])[0])
        self.assertEqual(len(app.answers), 2, "no attempt while the breaker is open")
        app.set(200)
        self.assertDrained()
        answers = app.answers
        self.assertGreaterEqual(answers[2][0].arrived - answers[1][0].arrived, 2.7,
                                "the next request waited for the cooldown, not 100-400 ms")
        self.assertDeliveredOnce(app, bodies)
        self.assertTrue(self.sh.wait_log(r"endpoint app: circuit breaker closed"), self.sh.log())

    def test_sync_then_queue_with_the_breaker_open_queues_at_once(self):
        app = App(503)
        rcv = self.start_receiver(responder=app)
        self.start_queue(endpoints={"app": endpoint(rcv.url(), retry={"max_attempts": 1},
                                                    breaker={"failures": 1,
                                                             "cooldown_ms": 60000})},
                         delivery="sync_then_queue", queue=FAR)
        self.assertQueued(self.send_all([body_of(0, "stq-brk")])[0])
        self.assertTrue(self.sh.wait_log(r"endpoint app: circuit breaker open after 1 "))
        n = len(app.answers)
        c = self.connect()
        self.ehlo(c)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        self.assertReply(c.cmd("RCPT TO:<%s>" % RCPT), 250, msg="not 451 4.4.1: it can be queued")
        self.assertReply(c.cmd("DATA"), 354)
        c.send(dot_stuff(body_of(1, "stq-brk")))
        self.assertQueued(c.read_reply())
        self.assertEqual(len(app.answers), n, "no request while the breaker is open")
        self.assertEqual(len(self.q.names()), 2)


class Failover(QueueCase):

    def test_failover_route_has_one_entry_for_its_endpoints(self):
        one, two = App(503), App(503)
        self.start_two(one, two, policy="failover", queue=FAR)
        body = body_of(0, "failover")
        rid = self.assertQueued(self.send_all([body])[0])
        self.wait_attempts(1, pattern=r"attempt \d+ to two: ")
        name = "%s-0" % rid
        self.assertEqual(self.q.names(), [name], "one entry for the route's endpoints")
        e = self.q.entry(name)
        self.assertEqual(e["endpoint"], ["one", "two"])
        self.assertEqual(e["policy"], "failover")
        self.assertEqual([(a["endpoint"], a["status"]) for a in e["attempt"]],
                         [("one", 503), ("two", 503)], "each attempt tries them in order")
        self.assertEqual((len(one.answers), len(two.answers)), (1, 1))
        two.set(200)
        p = queue_cli("retry", name, config=self.sh.config_path)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual([r.body for r in two.wait_accepted(1)], [body])
        self.assertDrained(10)
        self.assertEqual(len(one.answers), 2, "one was tried first each time")
        self.assertEqual(one.accepted, [])
        self.assertTrue(self.sh.wait_log(r"queue: entry %s \(txn id=\S+\) delivered to two after "
                                         r"\d+ attempts" % re.escape(name)), self.sh.log())

    def test_one_attempt_of_a_failover_entry_counts_once(self):
        # One background attempt tries both endpoints: it is attempt 1 (in the log, the
        # entry's count, the CLI), and the wait after it is the first backoff (0.5 to 1 s
        # with initial_backoff_ms 1000), not the second one (1 to 2 s).
        one, two = App(503), App(503)
        self.start_two(one, two, policy="failover",
                       queue={"initial_backoff_ms": 1000, "max_backoff_ms": 60000})
        rid = self.assertQueued(self.send_all([body_of(0, "failover-count")])[0])
        line = self.wait_attempts(1, pattern=r"attempt \d+ to two: ")[0]
        self.assertIn("attempt 1 to two: ", line)
        wait = int(re.search(r"next in (\d+) ms", line).group(1))
        self.assertTrue(500 <= wait <= 1000, "the first backoff: " + line)
        e = self.q.entry("%s-0" % rid)
        self.assertEqual(len(e["attempt"]), 2, "both endpoints in the history")
        self.assertEqual(int(e["attempts"]), 1, "one attempt")


class InFlight(QueueCase):

    def test_at_most_max_in_flight_requests_to_one_endpoint(self):
        gate = threading.Event()
        self.addCleanup(gate.set)
        lock = threading.Lock()
        now = [0, 0]  # in the app now, the most at once

        def responder(req):
            with lock:
                now[0] += 1
                now[1] = max(now[1], now[0])
            gate.wait(20)
            with lock:
                now[0] -= 1
            return (200, [], 0.0)

        rcv = self.start_receiver(responder=responder)
        self.start_queue(rcv.url(), queue={"max_in_flight": 2})
        bodies = [body_of(i, "flight") for i in range(8)]
        for r in self.send_all(bodies):
            self.assertQueued(r)
        self.assertEqual(len(rcv.wait_for(2)), 2)
        time.sleep(SETTLE)
        with lock:
            self.assertEqual(now, [2, 2], "two requests at once, the others wait")
        self.assertEqual(len(rcv.requests), 2)
        gate.set()
        self.assertDrained()
        self.assertEqual(sorted(r.body for r in rcv.requests), sorted(bodies))
        self.assertEqual(now[1], 2)


class Recovery(QueueCase):

    def test_start_clears_what_a_crash_left_and_sets_aside_unreadable_entries(self):
        app = App(503)
        rcv = self.start_receiver(responder=app)
        self.start_queue(rcv.url(), queue=FAR)
        body = body_of(0, "recovery")
        rid = self.assertQueued(self.send_all([body])[0])
        self.wait_attempts(1)
        self.assertEqual(self.sh.stop(), 0, self.sh.log())
        good = "%s-0" % rid
        active = self.q.folder("active")
        with open(os.path.join(active, good), encoding="utf-8") as f:
            text = f.read()
        # an entry cut off (no end line) with its message; a message without its entry (a
        # crash between the link and the rename); a half-written file in tmp/
        bad = rid + "-7"
        with open(os.path.join(active, bad), "w", encoding="utf-8") as f:
            f.write(text.replace("name %s\n" % good, "name %s\n" % bad)[:-len("end\n")])
        shutil.copy(os.path.join(active, good + ".eml"), os.path.join(active, bad + ".eml"))
        with open(os.path.join(active, rid + "-8.eml"), "wb") as f:
            f.write(body)
        with open(os.path.join(self.q.folder("tmp"), rid + "-9"), "wb") as f:
            f.write(b"smtphook-queue-entry 1\nname")
        # due now, so the restart tries it at once
        with open(os.path.join(active, good), "w", encoding="utf-8") as f:
            f.write(re.sub(r"\nnext \d+\n", "\nnext 0\n", text))
        app.set(200)
        self.restart(self.sh)
        self.assertTrue(self.sh.wait_log(r"queue in %s: 1 entry waiting" % re.escape(self.qpath)),
                        self.sh.log())
        self.assertEqual([r.body for r in app.wait_accepted(1)], [body])
        self.assertDrained()
        self.assertEqual(self.q.files("corrupt"), [bad, bad + ".eml"])
        self.q.assert_tmp_settles(self)
        self.assertTrue(any(bad in ln for ln in self.sh.log().splitlines()),
                        "the log names the entry set aside:\n" + self.sh.log())

    def test_an_entry_damaged_while_running_is_set_aside_not_retried(self):
        app = App(503)
        rcv = self.start_receiver(responder=app)
        self.start_queue(rcv.url(), queue=FAR, admin=True)
        rid = self.assertQueued(self.send_all([body_of(0, "damaged")])[0])
        self.wait_attempts(1)
        name = "%s-0" % rid
        with open(os.path.join(self.q.folder("active"), name), "r+", encoding="utf-8") as f:
            text = f.read()
            f.seek(0)
            f.write(text.replace("\nend\n", "\n"))  # cut off behind smtphook's back
            f.truncate()
        app.set(200)
        status, text = http(self.admin_port, "/queue/%s/retry" % name, "POST")
        self.assertEqual(status, 200, text)
        self.assertTrue(self.sh.wait_log(r"queue: entry %s cannot be read: .*set aside"
                                         % re.escape(name)), self.sh.log())
        time.sleep(SETTLE)
        self.assertEqual(app.accepted, [], "a damaged entry is not delivered")
        self.assertEqual(len(self.sh.wait_log(r"entry %s cannot be read" % re.escape(name),
                                              timeout=0)), 1, "said once, not at every tick")
        self.restart(self.sh)  # the start moves it aside for a human
        self.assertTrue(self.sh.wait_log(r"queue in %s: 0 entries waiting" % re.escape(self.qpath)),
                        self.sh.log())
        self.assertEqual(self.q.files("corrupt"), [name, name + ".eml"])

    def test_a_second_server_on_the_same_directory_does_not_start(self):
        rcv = self.start_receiver()
        sh = self.start_queue(rcv.url())
        cfg = dict(sh.config, listeners=[{"address": "%s:%d" % (HOST, free_port())}])
        other = Smtphook(cfg)
        self.addCleanup(other.cleanup_dir)
        self.addCleanup(other.stop)
        other.start(wait=False)
        rc = other.wait(15)
        self.assertIsNotNone(rc, "the second smtphook keeps running:\n" + other.log())
        self.assertNotEqual(rc, 0)
        self.assertIn("in use by another smtphook", other.log())
        self.assertQueued(self.send_all([body_of(0, "lock")])[0])  # the first one goes on
        self.assertEqual(len(rcv.wait_for(1)), 1)


class Stop(QueueCase):

    def test_sigterm_waits_for_an_attempt_under_way(self):
        app = App(200, delay=1.5)
        rcv = self.start_receiver(responder=app)
        self.start_queue(rcv.url())
        body = body_of(0, "stop")
        self.assertQueued(self.send_all([body])[0])
        self.assertEqual(len(app.wait_answers(1)), 1)
        t0 = time.monotonic()
        self.sh.signal(signal.SIGTERM)
        self.assertEqual(self.sh.wait(15), 0, self.sh.log())
        self.assertGreaterEqual(time.monotonic() - t0, 1.0, "it waited for the app's answer")
        self.assertEqual(self.q.files("active"), [], "the attempt ended: delivered")
        self.assertTrue(self.sh.wait_log(r"delivered to app after 1 attempt", timeout=0),
                        self.sh.log())
        self.restart(self.sh)
        time.sleep(SETTLE)
        self.assertEqual(len(app.answers), 1, "not posted again after the restart")


class CliRaces(QueueCase):
    """The CLI changing an entry while the server is trying it."""

    def in_flight(self, app):
        """One entry, tried once (503), then retried by the CLI into a slow attempt that is
        under way when this returns; returns its name."""
        rcv = self.start_receiver(responder=app)
        self.start_queue(rcv.url(), queue=FAR)
        rid = self.assertQueued(self.send_all([body_of(0, "race")])[0])
        self.wait_attempts(1)
        name = "%s-0" % rid
        app.set(503, delay=2.0)
        p = queue_cli("retry", name, config=self.sh.config_path)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(len(app.wait_answers(2)), 2, "the retry's attempt reached the app")
        return name

    def test_delete_during_an_attempt_is_not_undone(self):
        app = App(503)
        name = self.in_flight(app)
        p = queue_cli("delete", name, config=self.sh.config_path)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertTrue(self.sh.wait_log(r"attempt 2 to app: ", timeout=10), self.sh.log())
        time.sleep(SETTLE)
        self.assertEqual(self.q.files("active"), [], "the attempt's write-back did not bring "
                                                     "it back")
        self.assertEqual(len(app.answers), 2)

    def test_retry_during_an_attempt_is_not_lost(self):
        # The CLI says "tried now"; the attempt under way fails: the entry is due now (the
        # operator's retry), not at the backoff the failed attempt would have chosen.
        app = App(503)
        name = self.in_flight(app)
        p = queue_cli("retry", name, config=self.sh.config_path)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        app.set(200)
        self.assertTrue(self.sh.wait_log(r"attempt 2 to app: ", timeout=10), self.sh.log())
        reqs = app.wait_accepted(1, timeout=10)
        self.assertEqual(len(reqs), 1, "tried again at once after the attempt under way "
                                       "failed: %s" % self.q.entries().get(name, {}).get("next"))
        self.assertDrained(10)


class Cli(QueueCase):
    """`smtphook queue ...` on the directory of a running server."""

    def cli(self, *args, json_out=False, use_dir=False):
        if use_dir:
            return queue_cli(*args, queue_dir=self.qpath, json_out=json_out)
        return queue_cli(*args, config=self.sh.config_path, json_out=json_out)

    def assertCli(self, p, rc=0):
        self.assertEqual(p.returncode, rc, "exit %s: %s%s" % (p.returncode, p.stdout, p.stderr))
        return p

    def waiting(self, app, n, tag="cli"):
        """n messages queued and tried once (the app down), the next attempt minutes away;
        returns their ids and bodies."""
        rcv = self.start_receiver(responder=app)
        self.start_queue(rcv.url(), queue=FAR)
        bodies = [body_of(i, tag) for i in range(n)]
        ids = [self.assertQueued(r) for r in self.send_all(bodies)]
        self.wait_attempts(n)
        return ids, bodies

    def assertEntryObject(self, o, rid, body, attempts=1):
        self.assertEqual(o["name"], "%s-0" % rid)
        self.assertEqual(o["id"], rid)
        self.assertEqual(o["endpoints"], ["app"])
        self.assertEqual(o["recipients"], [RCPT])
        self.assertEqual(o["from"], SENDER)
        self.assertEqual(o["size"], len(body))
        self.assertRegex(o["key"], KEY_RE)
        self.assertEqual(o["key"], self.q.entry(o["name"], "dead" if "dead_at_ms" in o
                                                else "active")["key"])
        self.assertEqual(o["attempts"], attempts)
        now = time.time() * 1000
        self.assertTrue(now - 60000 < o["queued_at_ms"] <= now, o)
        self.assertGreater(o["next_attempt_ms"], now + 200000, "minutes away")

    def test_list_and_show(self):
        app = App(503)
        ids, bodies = self.waiting(app, 3)
        p = self.assertCli(self.cli("list", json_out=True))
        self.assertIsNotNone(p.data, p.stdout)
        got = {o["id"]: o for o in p.data["entries"]}
        self.assertEqual(sorted(got), sorted(ids))
        for rid, body in zip(ids, bodies):
            self.assertEntryObject(got[rid], rid, body)
        # the same through --queue-dir
        p2 = self.assertCli(self.cli("list", json_out=True, use_dir=True))
        self.assertEqual(sorted(o["name"] for o in p2.data["entries"]),
                         sorted("%s-0" % i for i in ids))
        # human output: one line per entry
        p = self.assertCli(self.cli("list"))
        lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
        names = ["%s-0" % i for i in ids]
        for n in names:
            self.assertEqual(len([ln for ln in lines if n in ln]), 1, p.stdout)
        self.assertLessEqual(len(lines), len(names) + 1, "one line per entry (and a header)")
        # show: one object with the history
        p = self.assertCli(self.cli("show", names[0], json_out=True))
        o = p.data
        self.assertEntryObject(o, ids[0], bodies[0])
        self.assertEqual(len(o["history"]), 1)
        h = o["history"][0]
        self.assertEqual((h["endpoint"], h["status"], h["code"], h["esc"]), ("app", 503, 451,
                                                                             "4.3.0"))
        self.assertTrue(o["queued_at_ms"] <= h["at_ms"] <= time.time() * 1000 + 1000, h)
        self.assertIsInstance(h["text"], str)
        p = self.assertCli(self.cli("show", names[0]))
        self.assertIn(names[0], p.stdout)
        self.assertEqual(app.accepted, [])

    def test_retry_one_then_all(self):
        app = App(503)
        ids, bodies = self.waiting(app, 4)
        app.set(200)
        t0 = time.monotonic()
        self.assertCli(self.cli("retry", "%s-0" % ids[0]))
        reqs = app.wait_accepted(1, timeout=10)
        self.assertEqual([r.body for r in reqs], [bodies[0]], "the retried entry, at once")
        self.assertLess(time.monotonic() - t0, 10)
        self.assertTrue(self.q.wait(lambda: len(self.q.names()) == 3, 10))
        time.sleep(SETTLE)
        self.assertEqual(len(app.accepted), 1, "only the one retried")
        self.assertCli(self.cli("retry", "--all"))
        self.assertDrained(10)
        self.assertDeliveredOnce(app, bodies, ids)
        p = self.assertCli(self.cli("list", json_out=True))
        self.assertEqual(p.data, {"entries": []})

    def test_delete_removes_it_for_good(self):
        app = App(503)
        ids, bodies = self.waiting(app, 2)
        gone = "%s-0" % ids[0]
        self.assertCli(self.cli("delete", gone))
        self.assertNotIn(gone, self.q.files("active"))
        self.assertNotIn(gone + ".eml", self.q.files("active"))
        p = self.assertCli(self.cli("list", json_out=True))
        self.assertEqual([o["name"] for o in p.data["entries"]], ["%s-0" % ids[1]])
        app.set(200)
        self.assertCli(self.cli("retry", "--all"))
        self.assertDrained(10)
        time.sleep(SETTLE)
        self.assertEqual([r.body for r in app.accepted], [bodies[1]])
        self.assertTrue(all(r.body != bodies[0] for r, _ in app.answers[1:]),
                        "the deleted entry was never tried again")
        self.assertCli(self.cli("delete", gone), rc=1)

    def test_dead_and_requeue(self):
        app = App(422)
        rcv = self.start_receiver(responder=app)
        self.start_queue(rcv.url(), queue=FAR)
        body = body_of(0, "requeue")
        rid = self.assertQueued(self.send_all([body])[0])
        name = "%s-0" % rid
        self.assertTrue(self.q.wait(lambda: self.q.names("dead") == [name], 10), self.sh.log())
        p = self.assertCli(self.cli("dead", json_out=True))
        self.assertEqual(len(p.data["entries"]), 1, p.stdout)
        o = p.data["entries"][0]
        self.assertEqual((o["name"], o["id"], o["attempts"]), (name, rid, 1))
        self.assertEqual(o["size"], len(body))
        self.assertTrue(o["dead_reason"].startswith("550 "), o)
        self.assertTrue(o["queued_at_ms"] <= o["dead_at_ms"] <= time.time() * 1000 + 1000, o)
        p = self.assertCli(self.cli("dead"))
        self.assertIn(name, p.stdout)
        p = self.assertCli(self.cli("show", name, json_out=True))
        self.assertEqual([(h["status"], h["code"]) for h in p.data["history"]], [(422, 550)])
        self.assertEqual(self.assertCli(self.cli("list", json_out=True)).data, {"entries": []})
        # back to active, due now: the app accepts this time
        app.set(200)
        self.assertCli(self.cli("requeue", name))
        reqs = app.wait_accepted(1, timeout=10)
        self.assertEqual([r.body for r in reqs], [body])
        self.assertEqual(reqs[0].header("Idempotency-Key"), app.answers[0][0].header(
            "Idempotency-Key"), "the same key as the refused attempt")
        self.assertDrained(10)
        self.assertEqual(self.q.files("dead"), [])
        self.assertEqual(self.assertCli(self.cli("dead", json_out=True)).data, {"entries": []})
        self.assertCli(self.cli("requeue", name), rc=1)

    def test_a_message_id_names_every_entry_of_the_message(self):
        one, two = App(503), App(503)
        self.start_two(one, two, FAR)
        bodies = [body_of(i, "byid") for i in range(2)]
        gone, kept = [self.assertQueued(r) for r in self.send_all(bodies)]
        self.wait_attempts(4, pattern=r"attempt 1 to (one|two): ")
        self.assertCli(self.cli("delete", gone))
        self.assertEqual(self.q.names(), ["%s-0" % kept, "%s-1" % kept])
        one.set(200)
        two.set(200)
        self.assertCli(self.cli("retry", kept))
        self.assertEqual([r.body for r in one.wait_accepted(1)], [bodies[1]])
        self.assertEqual([r.body for r in two.wait_accepted(1)], [bodies[1]])
        self.assertDrained(10)
        self.assertCli(self.cli("retry", gone), rc=1)

    def test_unknown_names_and_usage_errors(self):
        rcv = self.start_receiver()
        self.start_queue(rcv.url())
        for cmd in (["show", "nosuch-0"], ["retry", "nosuch-0"], ["delete", "nosuch-0"],
                    ["requeue", "nosuch-0"]):
            with self.subTest(cmd=cmd):
                self.assertCli(self.cli(*cmd), rc=1)
        for cmd in ([], ["frobnicate"], ["show"], ["retry"], ["delete"], ["requeue"],
                    ["list", "extra"]):
            with self.subTest(cmd=cmd):
                self.assertCli(self.cli(*cmd), rc=2)


class Admin(QueueCase):
    """The queue on the admin port: GET /queue, GET /queue/NAME, POST /queue/NAME/retry,
    and the queue's metrics."""

    def test_queue_listing_show_and_retry(self):
        app = App(503)
        rcv = self.start_receiver(responder=app)
        self.start_queue(rcv.url(), queue=FAR, admin=True)
        bodies = [body_of(i, "admin") for i in range(2)]
        ids = [self.assertQueued(r) for r in self.send_all(bodies)]
        self.wait_attempts(2)
        status, text = http(self.admin_port, "/queue")
        self.assertEqual(status, 200, text)
        data = json.loads(text)
        self.assertEqual(sorted(o["name"] for o in data["entries"]),
                         sorted("%s-0" % i for i in ids))
        self.assertEqual(data["dead"], [])
        self.assertFalse(data["truncated"])  # at most 1000 of each are listed
        name = "%s-0" % ids[0]
        status, text = http(self.admin_port, "/queue/" + name)
        self.assertEqual(status, 200, text)
        o = json.loads(text)
        self.assertEqual((o["name"], o["id"], o["size"], o["attempts"]),
                         (name, ids[0], len(bodies[0]), 1))
        self.assertEqual([(h["status"], h["code"]) for h in o["history"]], [(503, 451)])
        self.assertEqual(http(self.admin_port, "/queue/nosuch-0")[0], 404)
        self.assertEqual(http(self.admin_port, "/queue/nosuch-0/retry", "POST")[0], 404)
        self.assertEqual(http(self.admin_port, "/queue/%s/retry" % name)[0], 405)
        app.set(200)
        status, text = http(self.admin_port, "/queue/%s/retry" % name, "POST")
        self.assertEqual(status, 200, text)
        self.assertEqual(json.loads(text), {"retried": name})
        reqs = app.wait_accepted(1, timeout=10)
        self.assertEqual([r.body for r in reqs], [bodies[0]])
        self.assertTrue(self.q.wait(lambda: self.q.names() == ["%s-0" % ids[1]], 10))
        self.assertEqual(http(self.admin_port, "/queue/" + name)[0], 404)
        time.sleep(SETTLE)
        self.assertEqual(len(app.accepted), 1, "only the one retried")

    def test_queue_metrics(self):
        app = App(503)
        rcv = self.start_receiver(responder=app)
        self.start_queue(rcv.url(), admin=True)
        bodies = [body_of(i, "metrics") for i in range(3)]
        t0 = time.monotonic()
        ids = [self.assertQueued(r) for r in self.send_all(bodies)]
        self.wait_attempts(3)
        time.sleep(1.1)  # the oldest entry is more than a second old
        m = self.metrics()
        age = time.monotonic() - t0
        self.assertEqual(metric(m, "smtphook_queue_entries", endpoint="app"), 3)
        self.assertEqual(metric(m, "smtphook_queue_bytes", endpoint="app"),
                         sum(len(b) for b in bodies))
        oldest = metric(m, "smtphook_queue_oldest_entry_age_seconds")
        self.assertIsNotNone(oldest)
        self.assertTrue(1.0 <= oldest <= age + 1.0, (oldest, age))
        deferred = metric(m, "smtphook_queue_attempts_total", endpoint="app", outcome="deferred")
        self.assertGreaterEqual(deferred, 3)
        self.assertLessEqual(deferred, len(app.answers))
        self.assertIn(metric(m, "smtphook_queue_attempts_total", endpoint="app",
                             outcome="delivered"), (None, 0))
        self.assertIn(metric(m, "smtphook_queue_dead_letters_total", endpoint="app"), (None, 0))
        app.set(200)
        self.assertDrained()
        m = self.metrics()
        self.assertEqual(metric(m, "smtphook_queue_entries", endpoint="app"), 0)
        self.assertEqual(metric(m, "smtphook_queue_bytes", endpoint="app"), 0)
        self.assertEqual(metric(m, "smtphook_queue_oldest_entry_age_seconds"), 0)
        self.assertEqual(metric(m, "smtphook_queue_attempts_total", endpoint="app",
                                outcome="delivered"), 3)
        self.assertEqual(metric(m, "smtphook_queue_attempts_total", endpoint="app",
                                outcome="deferred"), len(app.answers) - 3)
        self.assertDeliveredOnce(app, bodies, ids)


if __name__ == "__main__":
    unittest.main()
