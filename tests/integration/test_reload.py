"""test_reload.py - SIGHUP reloads the whole configuration, all or nothing: endpoints, domains,
limits and listeners (added, kept, removed) change for new connections, while a connection
open before the reload finishes its transaction with the configuration it started with; a
file that does not load, or a listener that cannot be opened, leaves everything as it was.
"""

import json
import signal
import socket
import time
import unittest

from helpers import HOST, free_port
from smtp_client import SMTPClient
from smtphook_process import make_config
from testcase import SmtphookTestCase

SENDER = "sender@example.org"
MSG = b"Subject: reload\r\n\r\nhi\r\n"


class ReloadTest(SmtphookTestCase):

    def write(self, cfg):
        with open(self.sh.config_path, "w", encoding="utf-8") as f:
            json.dump(cfg, f)

    def reload(self, expect="reloaded:"):
        before = self.sh.log().count(expect)
        self.sh.signal(signal.SIGHUP)
        self.sh.signalled = False  # not a stop
        deadline = time.monotonic() + 5
        while self.sh.log().count(expect) == before and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertGreater(self.sh.log().count(expect), before, self.sh.log()[-2000:])

    def test_new_connections_get_the_new_config_open_ones_keep_theirs(self):
        a, b = self.start_receiver(), self.start_receiver()
        p1, p2 = free_port(), free_port()
        cfg = make_config(p1, a.url())
        self.start_smtphook(config=cfg, port=p1)
        # a transaction under way on the old configuration
        old = self.connect()
        self.ehlo(old)
        self.assertReply(old.cmd("MAIL FROM:<%s>" % SENDER), 250)
        self.assertReply(old.cmd("RCPT TO:<r@example.com>"), 250)

        new = make_config(p1, b.url(), domains=["example.com", "example.net"])
        new["listeners"].append({"address": "%s:%d" % (HOST, p2)})
        self.write(new)
        self.reload()

        # new connections, on the kept listener and the added one: the new endpoint and domain
        for port in (p1, p2):
            c = SMTPClient(port)
            self.ehlo(c)
            self.assertReply(self.transaction(c, SENDER, ["r@example.net"], MSG), 250)
            c.cmd("QUIT")
        self.assertEqual(len(b.requests), 2)
        # the old connection finishes with the old endpoint (and the old domains)
        self.assertReply(old.cmd("RCPT TO:<r@example.net>"), 550, "5.7.1")
        self.assertReply(old.cmd("DATA"), 354)
        old.send(MSG + b".\r\n")
        self.assertReply(old.read_reply(), 250)
        self.assertEqual(len(a.requests), 1)
        old.cmd("QUIT")
        self.assertTrue(self.sh.wait_log("configuration generation retired"), self.sh.log())

        # the first listener removed: its port closes, the other stays
        only2 = make_config(p2, b.url())
        self.write(only2)
        self.reload()
        time.sleep(0.2)
        with self.assertRaises(OSError):
            socket.create_connection((HOST, p1), timeout=2).close()
        c = SMTPClient(p2)
        self.assertReply(c.banner, 220)
        c.close()
        self.sh.port = p2  # where the cleanup's checks now connect

    def test_a_bad_file_changes_nothing(self):
        a = self.start_receiver()
        p1 = free_port()
        self.start_smtphook(config=make_config(p1, a.url()), port=p1)
        with open(self.sh.config_path, "w", encoding="utf-8") as f:
            f.write('{"listeners": [')
        self.reload("reload failed, the running configuration stays")
        self.assertReply(self.send_mail(MSG), 250)

    def test_a_listener_that_cannot_open_changes_nothing(self):
        a, b = self.start_receiver(), self.start_receiver()
        p1 = free_port()
        self.start_smtphook(config=make_config(p1, a.url()), port=p1)
        busy = socket.socket()
        busy.bind((HOST, 0))
        busy.listen(1)
        self.addCleanup(busy.close)
        new = make_config(p1, b.url())
        new["listeners"].append({"address": "%s:%d" % busy.getsockname()})
        self.write(new)
        self.reload("reload failed, the running configuration stays")
        self.assertReply(self.send_mail(MSG), 250)
        self.assertEqual((len(a.requests), len(b.requests)), (1, 0))


if __name__ == "__main__":
    unittest.main()
