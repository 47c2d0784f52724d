"""test_reload.py - SIGHUP reloads the whole configuration, all or nothing: endpoints, domains,
limits and listeners (added, kept, removed) change for new connections, while a connection
open before the reload finishes its transaction with the configuration it started with
(its limits too); a file that does not load, a listener that cannot be opened or certificates
that do not load leave everything as it was, the log level and format included.
"""

import json
import shutil
import socket
import tempfile
import time
import unittest

import certs
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

    def busy_port(self):
        """A socket listening on a loopback port, so a listener for that port cannot open."""
        busy = socket.socket()
        busy.bind((HOST, 0))
        busy.listen(1)
        self.addCleanup(busy.close)
        return busy

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
        self.reload(expect="reload failed, the running configuration stays")
        self.assertReply(self.send_mail(MSG), 250)

    def text_lines_after(self, mark):
        """The log lines after the last one containing mark (which must be there)."""
        log = self.sh.log()
        at = log.rfind(mark)
        self.assertGreaterEqual(at, 0, log[-2000:])
        return log[log.find("\n", at) + 1:].splitlines()

    def assertTextInfoLine(self, mark):
        """The line containing mark is a text line (not JSON), and a mail sent now is logged
        at info, in text: the log level and format did not change."""
        log = self.sh.log()
        line = [x for x in log.splitlines() if mark in x][-1]
        self.assertFalse(line.startswith("{"), line)
        self.assertReply(self.send_mail(MSG), 250)
        self.assertTrue(self.sh.wait_log(r"(?m)^\S+ info txn id="), log[-2000:])
        txn = [x for x in self.text_lines_after(mark) if " txn id=" in x]
        self.assertTrue(txn and not txn[-1].startswith("{"), txn)

    def test_a_failed_reload_keeps_the_log_level_and_format(self):
        """The new log_level and log_format come only with the rest: a reload that fails at
        its listener or at its certificates leaves the log as it was."""
        a = self.start_receiver()
        p1 = free_port()
        self.start_smtphook(config=make_config(p1, a.url()), port=p1)
        busy = self.busy_port()
        new = make_config(p1, a.url(), log_level="warn", log_format="json")
        new["listeners"].append({"address": "%s:%d" % busy.getsockname()})
        self.write(new)
        self.reload(expect="a listener cannot be opened")
        self.assertTextInfoLine("a listener cannot be opened")

        d = tempfile.mkdtemp(prefix="itest-reload-tls-")
        self.addCleanup(shutil.rmtree, d, True)
        ca = certs.CA(d)
        cert, _ = ca.issue("mx", names=("mx.test",))
        _, other_key = ca.issue("other", names=("other.test",))
        new = make_config(p1, a.url(), log_level="warn", log_format="json",
                          tls={"certificates": [{"cert": cert, "key": other_key}]})
        self.write(new)
        self.reload(expect="does not match the certificate")
        self.assertTextInfoLine("does not match the certificate")

        # the same change without the fault is applied: JSON from the reload on
        self.write(make_config(p1, a.url(), log_format="json"))
        self.reload()
        self.assertReply(self.send_mail(MSG), 250)
        self.assertTrue(self.sh.wait_log(r'"level":"info","msg":"txn id='), self.sh.log()[-2000:])
        self.assertEqual(len(a.requests), 3)

    def test_a_queue_opened_for_a_failed_reload_is_closed_again(self):
        """The first configuration that queues opens the queue; when its reload then fails
        (a busy listener) the queue is closed again (its lock with it), and a later reload
        that succeeds opens it and queues."""
        a = self.start_receiver()
        p1 = free_port()
        qdir = tempfile.mkdtemp(prefix="itest-reload-queue-")
        self.addCleanup(shutil.rmtree, qdir, True)
        self.start_smtphook(config=make_config(p1, a.url()), port=p1)
        busy = self.busy_port()
        queued = make_config(p1, a.url(), delivery="queue", queue={"directory": qdir})
        new = dict(queued, listeners=queued["listeners"] + [
            {"address": "%s:%d" % busy.getsockname()}])
        self.write(new)
        self.reload(expect="a listener cannot be opened")
        self.write(queued)
        self.reload()
        self.assertNotIn("is in use by another smtphook", self.sh.log())
        # opened for the failed reload and closed again, then opened for the good one
        self.assertEqual(self.sh.log().count("queue in %s:" % qdir), 2, self.sh.log()[-2000:])
        self.assertReply(self.send_mail(MSG), 250)
        self.assertEqual(len(a.wait_for(1)), 1)
        self.assertTrue(self.sh.wait_log(r"txn id=\S+ queued: 1 entry"), self.sh.log()[-2000:])

    def test_limits_change_for_new_connections_only(self):
        a = self.start_receiver()
        p1 = free_port()
        self.start_smtphook(config=make_config(p1, a.url()), port=p1)  # 26214400 bytes, 100
        old = self.connect()
        self.assertIn("SIZE 26214400", self.ehlo(old).texts)
        self.write(make_config(p1, a.url(), limits={"max_message_bytes": 65536,
                                                    "max_recipients": 150}))
        self.reload()
        big = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 100  # 100 kB
        rcpts = ["r%d@example.com" % i for i in range(150)]

        new = self.connect()
        self.assertIn("SIZE 65536", self.ehlo(new).texts)
        self.assertReply(new.cmd("MAIL FROM:<%s> SIZE=%d" % (SENDER, len(big))), 552, "5.3.4")
        self.assertReply(self.transaction(new, SENDER, ["r@example.com"], big), 552, "5.3.4")
        self.assertReply(self.transaction(new, SENDER, rcpts, MSG), 250)  # all 150
        self.assertEqual(len(a.wait_for(1)[0].envelope()["rcpt_to"]), 150)

        # the connection opened before keeps 26214400 bytes and 100 recipients
        self.assertReply(self.transaction(old, SENDER, ["r@example.com"], big), 250)
        self.assertReply(old.cmd("MAIL FROM:<%s>" % SENDER), 250)
        codes = [old.cmd("RCPT TO:<%s>" % r).code for r in rcpts]
        self.assertEqual(codes, [250] * 100 + [452] * 50)
        self.assertReply(old.cmd("DATA"), 354)
        old.send(MSG + b".\r\n")
        self.assertReply(old.read_reply(), 250)
        reqs = a.wait_for(3)
        self.assertEqual(len(reqs), 3)
        self.assertEqual(reqs[1].length, len(big))
        self.assertEqual(len(reqs[2].envelope()["rcpt_to"]), 100)

    def test_routes_change_for_new_connections(self):
        """A recipient no route took (550 5.1.1) is accepted after a reload that routes it,
        and posted to the new route's endpoint."""
        sales, support = self.start_receiver(), self.start_receiver()
        eps = {"sales": {"url": sales.url(), "timeout_ms": 5000},
               "support": {"url": support.url(), "timeout_ms": 5000}}
        p1 = free_port()
        routes = [{"match": ["sales@example.com"], "endpoints": ["sales"]}]
        self.start_smtphook(config=make_config(p1, None, endpoints=eps, routes=routes), port=p1)
        c = self.connect()
        self.ehlo(c)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        self.assertReply(c.cmd("RCPT TO:<help@example.com>"), 550, "5.1.1")
        c.cmd("QUIT")

        routes = routes + [{"match": ["help@example.com"], "endpoints": ["support"]}]
        self.write(make_config(p1, None, endpoints=eps, routes=routes))
        self.reload()
        self.assertReply(self.send_mail(MSG, rcpts=("help@example.com",)), 250)
        self.assertReply(self.send_mail(MSG, rcpts=("sales@example.com",)), 250)
        got = support.wait_for(1)
        self.assertEqual(len(got), 1)
        self.assertEqual(got[0].envelope()["rcpt_to"], ["help@example.com"])
        self.assertEqual(len(sales.wait_for(1)), 1)
        self.assertEqual(len(support.requests), 1)

    def test_a_listener_that_cannot_open_changes_nothing(self):
        a, b = self.start_receiver(), self.start_receiver()
        p1 = free_port()
        self.start_smtphook(config=make_config(p1, a.url()), port=p1)
        busy = self.busy_port()
        new = make_config(p1, b.url())
        new["listeners"].append({"address": "%s:%d" % busy.getsockname()})
        self.write(new)
        self.reload(expect="reload failed, the running configuration stays")
        self.assertReply(self.send_mail(MSG), 250)
        self.assertEqual((len(a.requests), len(b.requests)), (1, 0))


if __name__ == "__main__":
    unittest.main()
