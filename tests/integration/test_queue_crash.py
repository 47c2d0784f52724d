"""test_queue_crash.py - the durable queue survives SIGKILL at any moment: a 250 "queued"
is a promise kept across crashes, a 4xx/5xx is a promise that nothing goes out, and
nothing is invented or half-written.

Several client threads send a few thousand small messages (pipelined MAIL/RCPT/DATA,
several messages per session), each with a unique token in its Message-ID and body, to
smtphook in queue mode; the app sometimes answers 503 or is slow (longer than the
endpoint's timeout, now and then: the app then has a message smtphook does not know it
delivered), and dedupes by Idempotency-Key as an app is told to. Meanwhile a killer thread
SIGKILLs smtphook every 0.3 to 1.5 s and starts it again on the same directory and port.
Each message's reply to the final dot is recorded: 250, a 4xx/5xx, or none (the
connection dropped: it may or may not be delivered). A message whose body never went out
(smtphook was down, or the connection dropped before 354) is sent again.

At the end, with smtphook running and the app answering 200, the test waits until
active/ is empty and checks: every 250 was received at least once; no 4xx/5xx was
received; every received body is byte-exact one that was sent, and all requests with one
key carry the same body; nothing is left in tmp/, corrupt/ or dead/. The random choices
come from one seed, printed (SMTPHOOK_CRASH_SEED repeats a run), with the counts.
"""

import os
import random
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
import unittest

from helpers import HOST, free_port
from queue_files import QUEUED_RE, QueueDir
from smtp_client import Closed, ProtocolError, SMTPClient, dot_stuff
from smtphook_process import Smtphook, make_config
from testcase import SmtphookTestCase

MESSAGES = 3000
THREADS = 8
PER_SESSION = 6  # messages per SMTP session
PAUSE = (0.1, 0.5)  # seconds a client waits between sessions: sending lasts ~20 s
KILL_EVERY = (0.3, 1.5)  # seconds between SIGKILLs
SEND_BUDGET = 75.0  # seconds for the clients; what is not sent by then is not sent
DRAIN = 60.0  # seconds for the queue to empty at the end
ENDPOINT_TIMEOUT_MS = 1500
SENDER = "sender@example.org"
RCPT = "rcpt@example.com"


def message(n):
    token = "crash-%06d" % n
    return token, (b"From: a@example.org\r\nTo: rcpt@example.com\r\nSubject: %s\r\n"
                   b"Message-ID: <%s@itest>\r\n\r\n%s\r\n.%s\r\n"
                   % (token.encode(), token.encode(), token.encode(), token.encode()))


def token_of(body):
    m = re.search(rb"Message-ID: <(crash-\d+)@itest>", body or b"")
    return m.group(1).decode() if m else None


class DedupApp:
    """The web app: answers 200, sometimes 503 or slowly, and keeps every body it took by
    Idempotency-Key."""

    def __init__(self, rng):
        self.rng = rng
        self.lock = threading.Lock()
        self.flaky = True
        self.by_key = {}  # key -> [bodies accepted]
        self.requests = 0
        self.refused = 0

    def __call__(self, req):
        with self.lock:
            self.requests += 1
            roll = self.rng.random() if self.flaky else 1.0
            delay = 0.0
            if roll < 0.10:
                self.refused += 1
                return (503, [], 0.0)
            if roll < 0.13:
                delay = ENDPOINT_TIMEOUT_MS / 1000.0 + 0.5  # smtphook gives up first
            elif roll < 0.25:
                delay = self.rng.uniform(0.05, 0.4)
            self.by_key.setdefault(req.header("Idempotency-Key"), []).append(req.body)
        return (200, [], delay)


class Outcomes:
    """What each message's sender heard: "250", "4xx", "5xx", "dropped" (no reply after its
    body went out), per token."""

    def __init__(self, n):
        self.lock = threading.Lock()
        self.todo = list(range(n))
        self.reply = {}
        self.resent = 0

    def take(self, k):
        with self.lock:
            got, self.todo = self.todo[:k], self.todo[k:]
            return got

    def give_back(self, ns):
        with self.lock:
            self.todo[:0] = ns
            self.resent += len(ns)

    def record(self, n, what):
        with self.lock:
            self.reply[n] = what


class QueueCrash(SmtphookTestCase):

    def setUp(self):
        self.qpath = tempfile.mkdtemp(prefix="smtphook-queue-crash-")
        self.addCleanup(shutil.rmtree, self.qpath, True)
        self.q = QueueDir(self.qpath)
        self.instances = []
        self.lock = threading.Lock()
        self.done = threading.Event()  # the clients are through: the killer stops
        self.seen = []  # the logs of the instances, kept by stop_all
        self.seen_files = None
        self.addCleanup(self.stop_all)
        self.addCleanup(self.done.set)

    def stop_all(self):
        """Stop every instance and check each (sanitizer reports; the last one's clean
        exit on SIGTERM), then remove their directories."""
        with self.lock:
            instances = list(self.instances)
        failures = []
        for sh in instances:
            try:
                self._stop_smtphook(sh)
            except AssertionError as e:
                failures.append(e)
            finally:
                self.seen.append(sh.log())
                sh.cleanup_dir()
        self.seen_files = {w: len(self.q.files(w)) for w in ("active", "dead", "tmp", "corrupt")}
        if failures:
            raise failures[0]

    def failure_logs(self, text):
        """The queue directory and the last two smtphook logs, as stop_all kept them."""
        return "\nqueue directory (files): %s\nthe last smtphook logs (tails):\n%s" % (
            self.seen_files, "\n-----\n".join(log[-4000:] for log in self.seen[-2:]))

    def launch(self, config, port):
        sh = Smtphook(config, port=port)
        with self.lock:
            self.instances.append(sh)
            self.sh = sh
        sh.start()
        return sh

    def current(self):
        with self.lock:
            return self.sh

    # -- the clients -------------------------------------------------------------------

    def client(self, port, out, stop_at, rng):
        while time.monotonic() < stop_at:
            batch = out.take(PER_SESSION)
            if not batch:
                return
            left = self.session(port, batch, out)
            if left:
                out.give_back(left)
                time.sleep(0.02)  # smtphook is down or restarting
            else:
                time.sleep(rng.uniform(*PAUSE))

    def session(self, port, batch, out):
        """One session for the batch: returns the messages whose bodies never went out."""
        try:
            sock = socket.create_connection((HOST, port), timeout=15)
        except OSError:
            return batch
        try:
            c = SMTPClient(port, timeout=15, sock=sock)
        except (OSError, Closed, ProtocolError):
            sock.close()
            return batch
        try:
            if c.banner.code != 220:
                return batch
            r = c.cmd("EHLO crash.test")
            if r.code != 250:
                return batch
            for i, n in enumerate(batch):
                _, body = message(n)
                # pipelined: MAIL, RCPT and DATA in one write, then their three replies
                c.send(b"MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n"
                       % (SENDER.encode(), RCPT.encode()))
                mail, rcpt, data = c.read_replies(3)
                if data.code != 354:
                    first_bad = mail if mail.code != 250 else rcpt if rcpt.code != 250 else data
                    out.record(n, "%dxx" % (first_bad.code // 100))
                    continue
                try:
                    c.send(dot_stuff(body))
                except OSError:
                    out.record(n, "dropped")
                    return batch[i + 1:]
                try:
                    r = c.read_reply()
                except (Closed, OSError, ProtocolError):
                    out.record(n, "dropped")
                    return batch[i + 1:]
                out.record(n, "250" if r.code == 250 else "%dxx" % (r.code // 100))
                if r.code == 250:
                    assert re.match(QUEUED_RE, r.text[len("2.0.0 "):]), r
            try:
                c.cmd("QUIT")
            except (Closed, OSError, ProtocolError):
                pass
            return []
        except (Closed, OSError, ProtocolError):
            # before the body of the message at hand went out: it and the rest are unsent
            return [n for n in batch if n not in out.reply]
        finally:
            c.close()

    # -- the killer --------------------------------------------------------------------

    def killer(self, config, port, rng, counts, errors):
        try:
            while not self.done.wait(rng.uniform(*KILL_EVERY)):
                sh = self.current()
                sh.kill()
                counts["kills"] += 1
                self.launch(config, port)
        except Exception as e:  # the test fails with it in the main thread
            errors.append(e)

    # -- the test ----------------------------------------------------------------------

    def test_sigkill_at_random_moments_keeps_every_queued_message(self):
        seed = int(os.environ.get("SMTPHOOK_CRASH_SEED") or random.randrange(1 << 30))
        print("\nqueue crash test: seed %d (SMTPHOOK_CRASH_SEED)" % seed, file=sys.stderr)
        rng = random.Random(seed)
        app = DedupApp(random.Random(rng.random()))
        rcv = self.start_receiver(responder=app)
        port = free_port()
        config = make_config(
            port, None, delivery="queue",
            endpoints={"app": {"url": rcv.url(), "timeout_ms": ENDPOINT_TIMEOUT_MS,
                               "connect_timeout_ms": 1000, "breaker": {"failures": 0}}},
            queue={"directory": self.qpath, "initial_backoff_ms": 100, "max_backoff_ms": 400,
                   "max_in_flight": 8})
        self.launch(config, port)

        out = Outcomes(MESSAGES)
        counts = {"kills": 0}
        errors = []
        killer = threading.Thread(target=self.killer,
                                  args=(config, port, random.Random(rng.random()), counts,
                                        errors), daemon=True)
        stop_at = time.monotonic() + SEND_BUDGET
        clients = [threading.Thread(target=self.client,
                                    args=(port, out, stop_at, random.Random(rng.random())),
                                    daemon=True)
                   for _ in range(THREADS)]
        t0 = time.monotonic()
        killer.start()
        for t in clients:
            t.start()
        for t in clients:
            t.join(SEND_BUDGET + 60)
        self.done.set()
        killer.join(30)
        sent_for = time.monotonic() - t0
        self.assertEqual(errors, [], "restarting smtphook failed")
        self.assertFalse(killer.is_alive() or any(t.is_alive() for t in clients))

        # the end: smtphook up for good, the app answering 200
        app.flaky = False
        self.assertTrue(self.current().running(), self.current().log()[-3000:])
        self.assertTrue(self.q.wait_empty(DRAIN), "active/ empties: %d files left"
                        % len(self.q.files("active")))
        # An entry goes only after its app answered 2xx: what the app took is final now.
        replies = dict(out.reply)
        with app.lock:
            by_key = {k: list(v) for k, v in app.by_key.items()}
        sent = {n: message(n)[1] for n in replies}
        received = {}
        for key, bodies in by_key.items():
            self.assertEqual(len(set(bodies)), 1, "one body per key %s" % key)
            tok = token_of(bodies[0])
            self.assertIsNotNone(tok, "a body that was never sent: %r" % bodies[0][:200])
            n = int(tok.split("-")[1])
            self.assertIn(n, sent, "received but never sent: %s" % tok)
            self.assertEqual(bodies[0], sent[n], "byte-exact: %s" % tok)
            self.assertNotIn(n, received, "two keys for one message: %s" % tok)
            received[n] = len(bodies)
        ok = [n for n, r in replies.items() if r == "250"]
        refused = [n for n, r in replies.items() if r in ("4xx", "5xx")]
        dropped = [n for n, r in replies.items() if r == "dropped"]
        lost = [n for n in ok if n not in received]
        leaked = [n for n in refused if n in received]
        summary = ("sent %d (%d resent after no body went out, %d never sent) in %.1f s, "
                   "%d kills: 250 %d, 4xx/5xx %d, dropped %d (%d of them received); received "
                   "%d messages in %d requests accepted, %d with duplicates by key (%d extra); "
                   "app requests %d, 503s %d"
                   % (len(replies), out.resent, MESSAGES - len(replies), sent_for,
                      counts["kills"], len(ok), len(refused), len(dropped),
                      len([n for n in dropped if n in received]), len(received),
                      sum(received.values()), len([n for n in received if received[n] > 1]),
                      sum(v - 1 for v in received.values()), app.requests, app.refused))
        print("queue crash test: " + summary, file=sys.stderr)
        self.assertEqual(lost, [], "answered 250 but never received (%s)" % summary)
        self.assertEqual(leaked, [], "answered 4xx/5xx but received (%s)" % summary)
        self.q.assert_tmp_settles(self)
        self.assertEqual(self.q.files("corrupt"), [])
        self.assertEqual(self.q.files("dead"), [])
        self.assertGreater(counts["kills"], 5, summary)
        self.assertGreater(len(ok), MESSAGES // 4, "enough got through: " + summary)


if __name__ == "__main__":
    unittest.main()
