"""test_limits.py - every configured limit: message size, recipients, command line length,
idle timeout, error budget, connection caps and the transaction deadline."""

import select
import socket
import struct
import time
import unittest

from smtp_client import Closed, SMTPClient, dot_stuff
from testcase import SmtphookTestCase

MSG = b"Subject: l\r\n\r\nbody\r\n"
SMALL_MAX = 65536  # the smallest max_message_bytes the config allows


def filler(size):
    """A dot-free body of exactly size bytes (size >= 80) in CRLF-ended lines."""
    k, rest = divmod(size, 80)
    body = (b"a" * 78 + b"\r\n") * (k - 1) + b"b" * (78 + rest) + b"\r\n"
    assert len(body) == size, (len(body), size)
    return body


def pending(c, wait):
    """True if the server sent anything within wait seconds."""
    if c.buf:
        return True
    r, _, _ = select.select([c.sock], [], [], wait)
    return bool(r)


class MessageSize(SmtphookTestCase):
    def setUp(self):
        self.rcv = self.start_receiver()
        self.start_smtphook(self.rcv, limits={"max_message_bytes": SMALL_MAX})
        self.c = self.connect()
        self.ehlo(self.c)

    def test_ehlo_advertises_configured_size(self):
        r = self.c.cmd("EHLO again.test")
        self.assertIn("SIZE %d" % SMALL_MAX, r.texts)

    def test_mail_size_over_limit_552_at_mail(self):
        self.assertReply(self.c.cmd("MAIL FROM:<a@example.org> SIZE=%d" % (SMALL_MAX + 1)),
                         552, "5.3.4")

    def test_mail_size_at_limit_accepted(self):
        self.assertReply(self.c.cmd("MAIL FROM:<a@example.org> SIZE=%d" % SMALL_MAX), 250)

    def test_message_at_limit_accepted(self):
        body = filler(SMALL_MAX)
        r = self.transaction(self.c, "a@example.org", ["b@example.com"], body)
        self.assertReply(r, 250)
        self.assertEqual(self.rcv.wait_for(1)[0].body, body)

    def test_message_one_byte_over_limit_552(self):
        r = self.transaction(self.c, "a@example.org", ["b@example.com"], filler(SMALL_MAX + 1))
        self.assertReply(r, 552, "5.3.4")
        self.assertNoRequests(self.rcv)

    def test_size_counted_after_unstuffing(self):
        # Every line starts with a dot: on the wire the message is bigger than the limit,
        # the message itself is exactly at the limit and must be accepted.
        body = (b"." + b"d" * 77 + b"\r\n") * (SMALL_MAX // 80) + b"e" * (SMALL_MAX % 80 - 2) + \
            b"\r\n"
        self.assertEqual(len(body), SMALL_MAX)
        self.assertGreater(len(dot_stuff(body)) - 3, SMALL_MAX)
        r = self.transaction(self.c, "a@example.org", ["b@example.com"], body)
        self.assertReply(r, 250)
        self.assertEqual(self.rcv.wait_for(1)[0].body, body)

    def test_oversized_message_read_to_end_then_552_nothing_posted(self):
        self.assertReply(self.c.cmd("MAIL FROM:<a@example.org>"), 250)
        self.assertReply(self.c.cmd("RCPT TO:<b@example.com>"), 250)
        self.assertReply(self.c.cmd("DATA"), 354)
        # Text that would be commands if the server stopped reading at the limit.
        body = filler(3 * SMALL_MAX) + b"RSET\r\nMAIL FROM:<x@example.org>\r\n" + \
            filler(SMALL_MAX)
        self.c.send(dot_stuff(body)[:-3])
        self.assertFalse(pending(self.c, 0.5), "reply before the end of the message")
        self.c.send(b".\r\n")
        self.assertReply(self.c.read_reply(), 552, "5.3.4")
        # The session goes on, in the right state, and the next message gets through.
        r = self.transaction(self.c, "a@example.org", ["b@example.com"], MSG)
        self.assertReply(r, 250)
        self.rcv.wait_for(1)
        time.sleep(0.3)
        self.assertEqual([q.body for q in self.rcv.requests], [MSG])


class Recipients(SmtphookTestCase):
    def test_101st_recipient_452_and_100_posted(self):
        rcv = self.start_receiver()
        self.start_smtphook(rcv, limits={"max_recipients": 100})
        c = self.connect()
        self.ehlo(c)
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), 250)
        rcpts = ["r%03d@example.com" % i for i in range(101)]
        for i, rcpt in enumerate(rcpts[:100]):
            self.assertReply(c.cmd("RCPT TO:<%s>" % rcpt), 250, msg="recipient %d" % (i + 1))
        self.assertReply(c.cmd("RCPT TO:<%s>" % rcpts[100]), 452, "4.5.3")
        self.assertReply(c.cmd("DATA"), 354)
        c.send(dot_stuff(MSG))
        self.assertReply(c.read_reply(), 250)
        req = rcv.wait_for(1)[0]
        self.assertEqual(req.envelope()["rcpt_to"], rcpts[:100])
        self.assertEqual(len(req.header("X-Smtphook-Rcpt-To").split(", ")), 100)


class CommandLine(SmtphookTestCase):
    def setUp(self):
        self.rcv = self.start_receiver()
        self.start_smtphook(self.rcv, limits={"max_command_line_bytes": 512})
        self.c = self.connect()
        self.ehlo(self.c)

    def test_over_long_line_500_and_session_continues(self):
        self.assertReply(self.c.cmd("NOOP " + "x" * 3000), 500, "5.5.2")
        # exactly one reply for the long line: the next reply answers NOOP
        self.assertReply(self.c.cmd("NOOP"), 250)
        r = self.transaction(self.c, "a@example.org", ["b@example.com"], MSG)
        self.assertReply(r, 250)

    def test_line_at_limit_accepted(self):
        line = "NOOP " + "x" * (512 - 2 - 5)  # 512 bytes with CRLF
        self.assertEqual(len(line) + 2, 512)
        self.assertReply(self.c.cmd(line), 250)

    def test_line_one_over_limit_rejected(self):
        line = "NOOP " + "x" * (513 - 2 - 5)
        self.assertReply(self.c.cmd(line), 500, "5.5.2")
        self.assertReply(self.c.cmd("NOOP"), 250)

    def test_long_line_split_across_reads(self):
        for _ in range(10):
            self.c.send(b"MAIL FROM:<" + b"y" * 200)
            time.sleep(0.02)
        self.assertFalse(pending(self.c, 0.3), "reply before the end of the line")
        self.c.send(b"@example.org>\r\n")
        self.assertReply(self.c.read_reply(), 500, "5.5.2")
        # the tail of the long MAIL line did not start a transaction
        self.assertReply(self.c.cmd("RCPT TO:<b@example.com>"), 503)
        self.assertReply(self.c.cmd("NOOP"), 250)

    def test_long_line_in_pipeline_does_not_swallow_next_command(self):
        self.c.send(b"NOOP " + b"z" * 4000 + b"\r\nNOOP\r\nQUIT\r\n")
        replies = [self.c.read_reply() for _ in range(3)]
        self.assertEqual([r.code for r in replies], [500, 250, 221], str(replies))


class IdleTimeout(SmtphookTestCase):
    def setUp(self):
        self.rcv = self.start_receiver()
        self.start_smtphook(self.rcv, limits={"idle_timeout_ms": 1000})

    def test_idle_client_gets_421_and_close(self):
        c = self.connect()
        self.ehlo(c)
        t0 = time.monotonic()
        r = c.read_reply(timeout=6)
        self.assertReply(r, 421, "4.4.2")
        self.assertGreater(time.monotonic() - t0, 0.8)
        self.assertTrue(c.wait_closed(3), "connection not closed after 421")

    def test_activity_resets_idle_timer(self):
        c = self.connect()
        self.ehlo(c)
        for _ in range(4):
            time.sleep(0.5)
            self.assertReply(c.cmd("NOOP"), 250)

    def test_slow_delivery_is_not_an_idle_timeout(self):
        # The session waits for the webhook longer than idle_timeout_ms: that is the
        # server's wait, not the client's, so the client gets the 250.
        self.rcv.set(delay=2.5)
        c = self.connect()
        self.ehlo(c)
        r = self.transaction(c, "a@example.org", ["b@example.com"], MSG, reply_timeout=10)
        self.assertReply(r, 250, "2.0.0")
        self.assertReply(c.cmd("NOOP"), 250)

    def test_idle_during_data_421_nothing_posted(self):
        c = self.connect()
        self.ehlo(c)
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), 250)
        self.assertReply(c.cmd("RCPT TO:<b@example.com>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(b"Subject: stalled\r\n\r\nhalf")
        self.assertReply(c.read_reply(timeout=6), 421, "4.4.2")
        self.assertTrue(c.wait_closed(3))
        self.assertNoRequests(self.rcv)


class ErrorBudget(SmtphookTestCase):
    def test_421_after_max_errors(self):
        rcv = self.start_receiver()
        self.start_smtphook(rcv, limits={"max_errors": 3})
        c = self.connect()
        self.ehlo(c)
        replies = []
        closing = None
        for i in range(6):
            try:
                c.send(b"BOGUS%d\r\n" % i)
                r = c.read_reply(timeout=3)
            except (Closed, OSError) as e:
                self.fail("closed without 421 after %s: %s" % (replies, e))
            replies.append(r)
            if r.code == 421:
                closing = r
                break
        self.assertIsNotNone(closing, "no 421 after %d errors: %s" % (len(replies), replies))
        self.assertEqual(closing.esc, "4.7.0")
        self.assertLessEqual(len(replies), 4, str(replies))
        self.assertTrue(all(r.code == 500 for r in replies[:2]), str(replies))
        self.assertTrue(c.wait_closed(3), "connection not closed after 421")

    def test_successful_commands_do_not_count(self):
        rcv = self.start_receiver()
        self.start_smtphook(rcv, limits={"max_errors": 3})
        c = self.connect()
        self.ehlo(c)
        for _ in range(2):
            self.assertReply(c.cmd("BOGUS"), 500)
        for _ in range(10):
            self.assertReply(c.cmd("NOOP"), 250)
        r = self.transaction(c, "a@example.org", ["b@example.com"], MSG)
        self.assertReply(r, 250)


class ConnectionLimits(SmtphookTestCase):
    def check_third_refused(self, limits):
        rcv = self.start_receiver()
        sh = self.start_smtphook(rcv, limits=limits)
        time.sleep(0.1)
        c1 = self.connect()
        c2 = self.connect()
        self.assertReply(c1.banner, 220)
        self.assertReply(c2.banner, 220)
        c3 = self.connect()
        self.assertReply(c3.banner, 421, "4.7.0")
        self.assertTrue(c3.wait_closed(3), "refused connection left open")
        # the two admitted sessions still work
        self.assertReply(c1.cmd("NOOP"), 250)
        self.assertReply(c2.cmd("NOOP"), 250)
        # a slot frees when a session ends
        self.assertReply(c1.cmd("QUIT"), 221)
        self.assertTrue(c1.wait_closed(3))
        c1.close()
        deadline = time.monotonic() + 3
        while True:
            c4 = self.connect()
            if c4.banner.code == 220 or time.monotonic() > deadline:
                break
            c4.close()
            time.sleep(0.1)
        self.assertReply(c4.banner, 220)
        self.ehlo(c4)
        self.assertReply(self.transaction(c4, "a@example.org", ["b@example.com"], MSG), 250)
        return sh

    def test_max_connections(self):
        self.check_third_refused({"max_connections": 2})

    def test_max_connections_per_client(self):
        self.check_third_refused({"max_connections_per_client": 2})


def banner_when_slot_frees(port, timeout=10.0):
    """Connect until the banner is 220 (a slot is free) or timeout; the last banner code."""
    deadline = time.monotonic() + timeout
    while True:
        c = SMTPClient(port)
        code = c.banner.code
        c.close()
        if code == 220 or time.monotonic() > deadline:
            return code
        time.sleep(0.2)


class ClientNotReading(SmtphookTestCase):
    """A client that pipelines commands and never reads the replies must not hold its
    connection (and a connection slot) forever: once the replies stop draining for the
    idle timeout, the server drops it."""

    def test_pipelining_without_reading_is_dropped(self):
        rcv = self.start_receiver()
        # NOOPs are what fills the reply queue here: no junk limit to stop them first
        self.start_smtphook(rcv, limits={"idle_timeout_ms": 1000, "max_junk_commands": 0,
                                         "max_connections_per_client": 1})
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", self.sh.port))
        s.setblocking(False)
        burst = b"NOOP\r\n" * 8192
        sent, deadline = 0, time.monotonic() + 10
        # Send until the server stops reading (its reply queue is full), bounded.
        while sent < 64 * len(burst) and time.monotonic() < deadline:
            try:
                sent += s.send(burst)
            except BlockingIOError:
                _, w, _ = select.select([], [s], [], 1.0)
                if not w:
                    break
        # The slot comes back once the server gave up on this client.
        code = banner_when_slot_frees(self.sh.port)
        self.assertEqual(code, 220, "the non-reading client still holds its slot")
        self.assertIn("write timeout", self.sh.log())

    def test_goodbye_not_read_still_frees_the_slot(self):
        rcv = self.start_receiver()
        self.start_smtphook(rcv, limits={"idle_timeout_ms": 1000, "max_errors": 1,
                                         "max_junk_commands": 0,
                                         "max_connections_per_client": 1})
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", self.sh.port))
        # Fill our receive window with replies, then trigger the 421 goodbye.
        s.sendall(b"NOOP\r\n" * 20000 + b"BOGUS\r\n")
        code = banner_when_slot_frees(self.sh.port)
        self.assertEqual(code, 220, "the connection that never read its 421 kept its slot")


class SlotRelease(SmtphookTestCase):
    def test_slots_released_however_a_connection_ends(self):
        # 30 connections that end in every way: QUIT, close, RST mid-DATA, RST while a
        # delivery runs, refused at the limit, too many errors. Afterwards the full
        # number of concurrent sessions must be available again.
        rcv = self.start_receiver()
        sh = self.start_smtphook(rcv, limits={"max_connections": 3, "max_errors": 2,
                                              "max_connections_per_client": 3})
        rst = struct.pack("ii", 1, 0)
        for i in range(30):
            kind = i % 5
            c = SMTPClient(sh.port)
            self.assertReply(c.banner, 220, msg="round %d" % i)
            if kind == 0:
                c.cmd("QUIT")
            elif kind == 1:
                pass  # plain close
            elif kind == 2:
                self.ehlo(c)
                c.cmd("MAIL FROM:<a@example.org>")
                c.cmd("RCPT TO:<b@example.com>")
                c.cmd("DATA")
                c.send(b"partial")
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, rst)
            elif kind == 3:
                rcv.set(delay=0.3)
                self.ehlo(c)
                c.cmd("MAIL FROM:<a@example.org>")
                c.cmd("RCPT TO:<b@example.com>")
                c.cmd("DATA")
                c.send(dot_stuff(MSG))
                time.sleep(0.05)
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, rst)
            else:
                c.cmd("BOGUS")
                c.send(b"BOGUS\r\n")
                c.wait_closed(3)
            c.close()
            time.sleep(0.02)
        rcv.set(delay=0)
        time.sleep(0.5)
        clients = [self.connect() for _ in range(3)]
        for c in clients:
            self.assertReply(c.banner, 220, msg="a slot leaked")
        self.assertTrue(sh.running())
        for c in clients:
            self.ehlo(c)
            self.assertReply(self.transaction(c, "a@example.org", ["b@example.com"], MSG), 250)


class Deadlines(SmtphookTestCase):
    def test_transaction_deadline_451(self):
        rcv = self.start_receiver(delay=10)
        self.start_smtphook(rcv, limits={"transaction_timeout_ms": 2000},
                            endpoints={"app": {"url": rcv.url(), "timeout_ms": 60000}})
        c = self.connect()
        self.ehlo(c)
        t0 = time.monotonic()
        r = self.transaction(c, "a@example.org", ["b@example.com"], MSG, reply_timeout=15)
        elapsed = time.monotonic() - t0
        self.assertReply(r, 451, "4.")
        self.assertLess(elapsed, 8, "deadline not enforced: %.1fs" % elapsed)
        self.assertGreater(elapsed, 1.5)
        self.assertEqual(len(rcv.requests), 1)

    def test_endpoint_timeout_451(self):
        rcv = self.start_receiver(delay=10)
        self.start_smtphook(rcv, endpoints={"app": {"url": rcv.url(), "timeout_ms": 500}})
        c = self.connect()
        self.ehlo(c)
        t0 = time.monotonic()
        r = self.transaction(c, "a@example.org", ["b@example.com"], MSG, reply_timeout=15)
        self.assertReply(r, 451, "4.")
        self.assertLess(time.monotonic() - t0, 5)

    def test_session_usable_after_deadline(self):
        rcv = self.start_receiver(delay=10)
        self.start_smtphook(rcv, limits={"transaction_timeout_ms": 1000})
        c = self.connect()
        self.ehlo(c)
        r = self.transaction(c, "a@example.org", ["b@example.com"], MSG, reply_timeout=15)
        self.assertReply(r, 451)
        rcv.set(delay=0)
        r = self.transaction(c, "a@example.org", ["b@example.com"], MSG)
        self.assertReply(r, 250)


if __name__ == "__main__":
    unittest.main()
