"""test_slow.py - clients that hold a connection without doing anything, tried as an attacker
would: a command line sent a byte at a time, a message body at a trickle, a NOOP every few
seconds. Each byte restarts the idle timeout, so the deadlines that a client cannot push away
close them: limits.command_timeout_ms for a whole command line, limits.min_data_rate_bytes_per_s
after limits.data_rate_grace_ms for a body, limits.max_junk_commands for commands that do
nothing (each counted in smtphook_connections_dropped_total). And a slowloris: a few hundred
slow connections from as many loopback addresses fill max_connections, and are gone by their
deadline, so a new sender gets in.
"""

import resource
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
                                       "data_rate_grace_ms": 1000},
                            admin=self.admin_listen())
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
        self.assertEqual(self.metric("smtphook_connections_dropped_total", cause="data_too_slow"),
                         1)

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
    """300 connections from 300 loopback addresses (spread over 127.1.0.0 to 127.30.255.255),
    each dribbling a command line that never ends, fill max_connections; the command deadline
    frees them, and a new sender gets in while they still dribble."""

    N = 300

    def setUp(self):
        # The test's sockets and smtphook's (which inherits the limit) must fit.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = 2 * self.N + 200
        if soft != resource.RLIM_INFINITY and soft < want:
            if hard != resource.RLIM_INFINITY and hard < want:
                self.skipTest("RLIMIT_NOFILE hard limit %d is under %d" % (hard, want))
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))

    def test_slow_connections_do_not_keep_a_sender_out(self):
        n = self.N
        r = self.start_receiver()
        self.start_smtphook(r, limits={"max_connections": n, "max_connections_per_client": 5,
                                       "command_timeout_ms": 2000},
                            admin=self.admin_listen())
        socks = []
        try:
            for i in range(n):
                source = "127.%d.%d.%d" % (1 + i % 30, i // 30, 2 + i % 251)
                s = socket.create_connection((HOST, self.sh.port), timeout=5,
                                             source_address=(source, 0))
                socks.append(s)
                self.assertTrue(s.recv(200).startswith(b"220 "), "connection %d from %s"
                                % (i, source))
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
                self.assertReply(c.banner, 421, "4.7.0")
                c.close()
                # past the command deadline the slow ones are gone: the sender gets in
                code = banner_when_a_slot_frees(self.sh.port, timeout=15)
                self.assertEqual(code, 220)
                c = SMTPClient(self.sh.port, timeout=5)
                self.assertReply(c.banner, 220)
                self.ehlo(c)
                self.assertReply(self.transaction(c, SENDER, ["r@example.com"],
                                                  b"Subject: in\r\n\r\nhi\r\n"), 250)
                c.close()
                deadline = time.monotonic() + 15
                while (self.metric("smtphook_connections_dropped_total",
                                   cause="command_timeout") != n
                       and time.monotonic() < deadline):
                    time.sleep(0.2)
                self.assertEqual(self.metric("smtphook_connections_dropped_total",
                                             cause="command_timeout"), n)
            finally:
                stop.set()
                t.join()
        finally:
            for s in socks:
                s.close()


def banner_when_a_slot_frees(port, timeout):
    """Connect until the banner is 220 or timeout (the machine itself is trusted: these
    tries spend no rate); the last banner code."""
    deadline = time.monotonic() + timeout
    while True:
        c = SMTPClient(port, timeout=5)
        code = c.banner.code
        c.close()
        if code == 220 or time.monotonic() > deadline:
            return code
        time.sleep(0.1)


if __name__ == "__main__":
    unittest.main()
