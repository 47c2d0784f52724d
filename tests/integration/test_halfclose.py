"""test_halfclose.py - a client that sends its last commands and then half-closes its side
(shutdown(SHUT_WR)) still gets every reply: the delivery under way is not cancelled, the
commands held behind it run, and only then does smtphook close. Cancelling at the end of
input would leave the sender without a reply although the app may have the message, and
its retry would deliver it twice."""

import socket
import time
import unittest

from smtp_client import Closed, dot_stuff
from testcase import SmtphookTestCase

BODY = b"Subject: half-close\r\n\r\nThe sender stops writing after the dot.\r\n"


class HalfClose(SmtphookTestCase):
    def setUp(self):
        # A slow app: the half-close arrives while the delivery runs.
        self.rcv = self.start_receiver(delay=1.0)
        self.start_smtphook(self.rcv)
        self.c = self.connect()
        self.ehlo(self.c)

    def begin(self):
        self.assertReply(self.c.cmd("MAIL FROM:<a@example.org>"), 250)
        self.assertReply(self.c.cmd("RCPT TO:<b@example.com>"), 250)
        self.assertReply(self.c.cmd("DATA"), 354)

    def test_final_dot_then_half_close_gets_the_reply(self):
        self.begin()
        self.c.send(dot_stuff(BODY))
        self.c.sock.shutdown(socket.SHUT_WR)
        self.assertReply(self.c.read_reply(10), 250, "2.0.0")
        self.assertTrue(self.c.wait_closed(5), "closed after the last reply")
        reqs = self.rcv.wait_for(1)
        self.assertEqual(len(reqs), 1)
        self.assertEqual(reqs[0].body, BODY)
        self.assertTrue(self.sh.wait_log(r'txn id=\S+ .*reply="250 2\.0\.0"'))
        self.assertFalse(self.sh.wait_log(r"cancelled", timeout=0.3))

    def test_final_dot_quit_and_half_close_in_one_write(self):
        self.begin()
        self.c.send(dot_stuff(BODY) + b"QUIT\r\n")
        self.c.sock.shutdown(socket.SHUT_WR)
        self.assertReply(self.c.read_reply(10), 250, "2.0.0")
        self.assertReply(self.c.read_reply(5), 221, "2.0.0")
        self.assertTrue(self.c.wait_closed(5))
        self.assertEqual(len(self.rcv.wait_for(1)), 1)

    def test_commands_held_behind_the_dot_are_answered(self):
        """Two messages pipelined with BDAT (no wait needed), then the half-close: both are
        delivered and answered in order, then the goodbye."""
        self.assertReply(self.c.cmd("MAIL FROM:<a@example.org>"), 250)
        self.assertReply(self.c.cmd("RCPT TO:<b@example.com>"), 250)
        self.c.send(b"BDAT %d LAST\r\n" % len(BODY) + BODY +
                    b"MAIL FROM:<a@example.org>\r\nRCPT TO:<c@example.com>\r\n" +
                    b"BDAT %d LAST\r\n" % len(BODY) + BODY + b"NOOP\r\nQUIT\r\n")
        self.c.sock.shutdown(socket.SHUT_WR)
        codes = [r.code for r in self.c.read_replies(6, 15)]
        self.assertEqual(codes, [250, 250, 250, 250, 250, 221])
        self.assertTrue(self.c.wait_closed(5))
        self.assertEqual(len(self.rcv.wait_for(2)), 2)

    def test_half_close_inside_the_message_delivers_nothing(self):
        self.begin()
        self.c.send(b"Subject: cut\r\n\r\nno final dot\r\n")
        self.c.sock.shutdown(socket.SHUT_WR)
        self.assertTrue(self.c.wait_closed(5), "closed at once: nothing is due")
        self.assertEqual(self.c.buf, b"")
        self.assertNoRequests(self.rcv)
        self.assertTrue(self.sh.wait_log(r"txn id=\S+ abandoned: client closed the connection"))

    def test_reset_during_the_delivery_cancels_it(self):
        """A client that is really gone (reset, not half-close) cannot be answered: the
        delivery is cancelled and logged."""
        self.begin()
        self.c.send(dot_stuff(BODY))
        self.rcv.wait_for(1)
        self.c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        self.c.close()
        self.assertTrue(self.sh.wait_log(r"txn id=\S+ cancelled", timeout=5))


if __name__ == "__main__":
    unittest.main()
