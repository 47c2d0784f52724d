"""test_slow.py - clients that hold a connection without doing anything, tried as an attacker
would: a command line sent a byte at a time, a message body at a trickle, a NOOP every few
seconds. Each byte restarts the idle timeout, so the deadlines that a client cannot push away
close them: limits.command_timeout_ms for a whole command line, limits.min_data_rate_bytes_per_s
after limits.data_rate_grace_ms for a body, limits.max_junk_commands for commands that do
nothing. And a slowloris: many slow connections from many loopback addresses fill
max_connections, and are gone by their deadline, so a new sender gets in.
"""

import socket
import threading
import time
import unittest

from helpers import HOST
from smtp_client import Closed, SMTPClient
from testcase import SmtphookTestCase

SENDER = "sender@example.org"


def read_until_closed(s, timeout):
    """Everything the server sends until it closes (or timeout)."""
    s.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(4096)
        except socket.timeout:
            break
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    return data


class SlowClientTest(SmtphookTestCase):

    def test_command_line_a_byte_at_a_time(self):
        r = self.start_receiver()
        self.start_smtphook(r, limits={"command_timeout_ms": 1500})
        c = self.connect()
        self.ehlo(c)
        t0 = time.monotonic()
        closed = False
        for ch in b"MAIL FROM:<" + b"a" * 60:  # never ends: 0.1 s a byte
            try:
                c.send(bytes([ch]))
            except OSError:
                closed = True
                break
            time.sleep(0.1)
        reply = c.read_reply(5)
        self.assertReply(reply, 421, "4.4.2")
        self.assertIn("command line not completed in time", str(reply))
        self.assertLess(time.monotonic() - t0, 4.0)
        self.assertTrue(self.sh.wait_log(r"dropped: a command line not whole within 1500 ms"))
        del closed

    def test_whole_lines_with_pauses_are_fine(self):
        """The deadline is per line: a client that pauses between whole lines is served."""
        r = self.start_receiver()
        self.start_smtphook(r, limits={"command_timeout_ms": 1000})
        c = self.connect()
        self.ehlo(c)
        for line in ("MAIL FROM:<%s>" % SENDER, "RCPT TO:<r@example.com>"):
            time.sleep(1.3)
            self.assertReply(c.cmd(line), 250)
        time.sleep(1.3)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(b"Subject: slow but whole\r\n\r\nhi\r\n.\r\n")
        self.assertReply(c.read_reply(), 250)

    def test_message_at_a_trickle(self):
        r = self.start_receiver()
        self.start_smtphook(r, limits={"min_data_rate_bytes_per_s": 1000,
                                       "data_rate_grace_ms": 1000})
        c = self.connect()
        self.ehlo(c)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        self.assertReply(c.cmd("RCPT TO:<r@example.com>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        t0 = time.monotonic()
        try:
            for _ in range(100):  # 100 bytes a second: far under 1000
                c.send(b"x" * 10 + b"\r\n")
                time.sleep(0.1)
        except OSError:
            pass
        reply = c.read_reply(5)
        self.assertReply(reply, 421, "4.4.2")
        self.assertIn("message data too slow", str(reply))
        self.assertLess(time.monotonic() - t0, 4.0)
        self.assertEqual(r.requests, [])

    def test_fast_enough_message_after_a_slow_start(self):
        r = self.start_receiver()
        self.start_smtphook(r, limits={"min_data_rate_bytes_per_s": 1000,
                                       "data_rate_grace_ms": 1500})
        c = self.connect()
        self.ehlo(c)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        self.assertReply(c.cmd("RCPT TO:<r@example.com>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        time.sleep(1.0)  # within the grace period
        c.send(b"Subject: ok\r\n\r\n" + b"y" * 5000 + b"\r\n.\r\n")
        self.assertReply(c.read_reply(), 250)

    def test_noop_every_few_moments(self):
        r = self.start_receiver()
        self.start_smtphook(r, limits={"max_junk_commands": 5})
        c = self.connect()
        self.ehlo(c)
        for verb in ("NOOP", "RSET", "VRFY x", "HELP", "NOOP"):
            self.assertEqual(c.cmd(verb).code // 100, 2)
        reply = c.cmd("NOOP")
        self.assertReply(reply, 421, "4.7.0")
        self.assertTrue(c.wait_closed(3))


class SlowlorisTest(SmtphookTestCase):
    """150 connections from 150 loopback addresses, each dribbling a command line that never
    ends, fill max_connections; the command deadline frees them, and a new sender gets in."""

    def test_slow_connections_do_not_keep_a_sender_out(self):
        n = 150
        r = self.start_receiver()
        self.start_smtphook(r, limits={"max_connections": n, "max_connections_per_client": 5,
                                       "command_timeout_ms": 2000})
        socks = []
        for i in range(n):
            s = socket.create_connection((HOST, self.sh.port), timeout=5,
                                         source_address=("127.0.%d.%d" % (1 + i // 200,
                                                                          2 + i % 200), 0))
            s.recv(200)  # the banner
            socks.append(s)
        stop = threading.Event()

        def dribble():
            while not stop.is_set():
                for s in socks:
                    try:
                        s.send(b"N")
                    except OSError:
                        pass
                stop.wait(0.3)

        t = threading.Thread(target=dribble)
        t.start()
        try:
            time.sleep(0.3)
            # full: a new sender is refused
            c = SMTPClient(self.sh.port, timeout=5)
            self.assertReply(c.banner, 421)
            c.close()
            # past the command deadline every slow one is gone
            time.sleep(2.5)
            c = SMTPClient(self.sh.port, timeout=5)
            self.assertReply(c.banner, 220)
            self.ehlo(c)
            self.assertReply(self.transaction(c, SENDER, ["r@example.com"],
                                              b"Subject: in\r\n\r\nhi\r\n"), 250)
        finally:
            stop.set()
            t.join()
            for s in socks:
                s.close()


if __name__ == "__main__":
    unittest.main()
