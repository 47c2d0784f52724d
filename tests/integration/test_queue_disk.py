"""test_queue_disk.py - the queue on a full disk: the message that does not fit is answered
452 4.3.1 and leaves nothing behind (no entry without its whole message, nothing in tmp/),
the messages already queued stay whole, and once space is free again new messages are
accepted and everything is delivered.

The queue directory is a 2 MiB tmpfs mounted for the test, so the disk really fills (the
queue's own max_messages and max_bytes stay far away); the app answers 503 until the test
lets it accept. This needs root (mount); the test is skipped, saying why, without it or
when the mount fails (a container without CAP_SYS_ADMIN). The tmpfs is always unmounted.
"""

import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

from queue_files import QUEUED_RE, App, KeepsQueueForReport, QueueDir, queue_cli
from smtp_client import Closed
from testcase import SmtphookTestCase

SENDER = "sender@example.org"
RCPT = "rcpt@example.com"
TMPFS_SIZE = "2m"
MESSAGE_BYTES = 100 * 1024
MAX_MESSAGES = 40  # a 2 MiB disk is full long before this many 100 KiB messages
FAST = {"initial_backoff_ms": 100, "max_backoff_ms": 400}
FAR = {"initial_backoff_ms": 600000, "max_backoff_ms": 600000}


def big_body(n):
    """About MESSAGE_BYTES, unique per n."""
    head = b"Subject: disk %d\r\nMessage-ID: <disk-%d@itest>\r\n\r\n" % (n, n)
    line = (b"%06d " % n) + b"d" * 90 + b"\r\n"
    return head + line * ((MESSAGE_BYTES - len(head)) // len(line))


class DiskFull(KeepsQueueForReport, SmtphookTestCase):

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("mounting a tmpfs needs root (euid %d)" % os.geteuid())
        self.mnt = tempfile.mkdtemp(prefix="smtphook-queue-disk-")
        self.addCleanup(shutil.rmtree, self.mnt, True)
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % TMPFS_SIZE,
                            "tmpfs", self.mnt], capture_output=True, text=True)
        if p.returncode != 0:
            self.skipTest("mount -t tmpfs failed: %s" % (p.stderr.strip() or p.returncode))
        self.addCleanup(self.unmount)  # runs after smtphook stopped (cleanups go in reverse)
        self.qpath = os.path.join(self.mnt, "queue")
        self.q = QueueDir(self.qpath)

    def unmount(self):
        if subprocess.run(["umount", self.mnt], capture_output=True).returncode != 0:
            time.sleep(0.5)
            subprocess.run(["umount", "-l", self.mnt], capture_output=True)

    def start_queue(self, app, queue):
        rcv = self.start_receiver(responder=app)
        return self.start_smtphook(
            endpoints={"app": {"url": rcv.url(), "timeout_ms": 10000,
                               "breaker": {"failures": 0}}},
            delivery="queue", queue=dict(queue, directory=self.qpath))

    def fill(self):
        """100 KiB messages on one connection until one is refused; returns the bodies
        queued (by transaction id) and the refusal."""
        c = self.connect()
        self.ehlo(c)
        queued = {}
        for n in range(MAX_MESSAGES):
            body = big_body(n)
            reply = self.transaction(c, SENDER, [RCPT], body)
            if reply.code != 250:
                try:
                    c.cmd("QUIT")
                except (Closed, OSError):
                    pass
                return queued, reply
            m = re.match(QUEUED_RE, reply.text[len("2.0.0 "):])
            self.assertIsNotNone(m, reply)
            queued[m.group(1)] = body
        self.fail("a %s disk took %d messages of %d bytes" % (TMPFS_SIZE, MAX_MESSAGES,
                                                               MESSAGE_BYTES))

    def assertNothingPartial(self, queued):
        """Every entry in active/ is whole (its .eml of the size its "size" line says) and
        one of the queued messages, byte-exact; tmp/ is empty."""
        names = self.q.check_whole(self)
        self.assertEqual(sorted(n.rsplit("-", 1)[0] for n in names), sorted(queued),
                         "exactly the messages answered 250 have entries")
        for n in names:
            self.assertEqual(self.q.message(n), queued[n.rsplit("-", 1)[0]])
        self.q.assert_tmp_settles(self)
        self.assertEqual(self.q.files("corrupt"), [])

    def test_full_disk_is_452_and_the_app_coming_back_makes_room(self):
        app = App(503)
        self.start_queue(app, FAST)
        queued, refused = self.fill()
        self.assertReply(refused, 452, "4.3.1")
        self.assertGreater(len(queued), 5, "a few messages fit before the disk was full")
        self.assertTrue(self.sh.wait_log(r"cannot be queued"), self.sh.log())
        time.sleep(1.0)  # a few failed attempts rewrite their entries on the full disk
        self.assertNothingPartial(queued)
        # the app takes them all: room again
        app.set(200)
        self.assertTrue(self.q.wait_empty(30), self.q.files("active"))
        self.q.assert_tmp_settles(self)
        new = big_body(1000)
        reply = self.send_mail(new)
        self.assertReply(reply, 250, "2.0.0")
        self.assertRegex(reply.text, QUEUED_RE[1:].replace("$", ""))
        want = sorted(list(queued.values()) + [new])
        got = app.wait_accepted(len(want), timeout=30)
        self.assertEqual(sorted(r.body for r in got), want, "each one once, byte-exact")
        self.assertTrue(self.q.wait_empty(10))
        self.assertEqual(self.q.files("dead"), [])

    def test_deleting_entries_with_the_cli_makes_room(self):
        app = App(503)
        self.start_queue(app, FAR)
        queued, refused = self.fill()
        self.assertReply(refused, 452, "4.3.1")
        # every entry had its first attempt: none is under way when the CLI changes it
        rx = r"queue: entry \S+ \(txn id=\S+\) attempt 1 to app: "
        self.q.wait(lambda: len(self.sh.wait_log(rx, timeout=0)) >= len(queued), 20)
        self.assertEqual(len(self.sh.wait_log(rx, timeout=0)), len(queued), self.sh.log())
        self.assertNothingPartial(queued)
        ids = sorted(queued)
        gone = ids[:3]
        for rid in gone:
            p = queue_cli("delete", "%s-0" % rid, queue_dir=self.qpath)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            del queued[rid]
        self.assertNothingPartial(queued)
        new = big_body(1000)
        reply = self.send_mail(new)
        self.assertReply(reply, 250, "2.0.0")
        app.set(200)
        p = queue_cli("retry", "--all", queue_dir=self.qpath)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        want = sorted(list(queued.values()) + [new])
        got = app.wait_accepted(len(want), timeout=30)
        self.assertTrue(self.q.wait_empty(10), self.q.files("active"))
        time.sleep(0.5)
        self.assertEqual(sorted(r.body for r in app.accepted), want,
                         "the deleted ones never went out; the others once each")


if __name__ == "__main__":
    unittest.main()
