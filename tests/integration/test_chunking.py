"""test_chunking.py - CHUNKING and BINARYMIME (RFC 3030): BDAT chunks are posted byte for
byte, pipelined chunks are answered in order, a chunk without a transaction is read and thrown
away (never executed), DATA and BDAT do not mix, the size limit and webhook outcomes after
BDAT LAST."""

import socket
import unittest

from smtp_client import dot_stuff
from testcase import SmtphookTestCase

LIMIT = 65536  # max_message_bytes of the size tests (the smallest allowed)

# Every byte sequence that means something in DATA mode, and in command mode.
TRICKY = (b"Subject: chunks\r\n\r\n"
          b".leading dot\r\n"
          b"..two dots\r\n"
          b"bare CR\rbare LF\nNUL\x00byte\r\n"
          b"\r\n.\r\n"
          b"after the DATA terminator\r\n"
          b"\n.\n\r.\r"
          b"QUIT\r\n"
          b"\xff\xfe 8-bit \xc3\xa4\r\n")

# Command text a refused chunk must never execute.
SMUGGLED = (b"RSET\r\n"
            b"MAIL FROM:<x@y>\r\n"
            b"RCPT TO:<victim@example.com>\r\n"
            b"DATA\r\n"
            b"Subject: smuggled\r\n\r\nsmuggled\r\n.\r\n"
            b"MAIL FROM:<x@y>\r\n"
            b"RCPT TO:<victim@example.com>\r\n"
            b"BDAT 8 LAST\r\nsmuggled")


def bdat(data, last=False):
    """The bytes of one BDAT command and its chunk."""
    return b"BDAT %d%s\r\n" % (len(data), b" LAST" if last else b"") + data


class Chunking(SmtphookTestCase):
    def setUp(self):
        self.rcv = self.start_receiver()
        self.start_smtphook(self.rcv, retry={"max_attempts": 1})
        self.c = self.connect()

    def begin(self, c=None, params=""):
        """EHLO, MAIL, RCPT: a transaction ready for BDAT."""
        c = c or self.c
        self.ehlo(c)
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>%s" % params), 250)
        self.assertReply(c.cmd("RCPT TO:<b@example.com>"), 250)

    def chunk(self, data, last=False, c=None):
        c = c or self.c
        c.send(bdat(data, last))
        return c.read_reply()

    def assertChunkOk(self, reply, n):
        self.assertReply(reply, 250, "2.0.0")
        self.assertEqual(reply.text, "2.0.0 %d octets received" % n)

    def assertNothingMore(self, c):
        """QUIT gets 221 and nothing else was sent before it."""
        self.assertReply(c.cmd("QUIT"), 221)
        self.assertTrue(c.wait_closed(5))
        self.assertEqual(c.buf, b"", "unexpected extra replies")

    def test_ehlo_offers_chunking_and_binarymime(self):
        r = self.ehlo(self.c)
        keywords = [t.split()[0].upper() for t in r.texts[1:] if t.strip()]
        self.assertIn("CHUNKING", keywords)
        self.assertIn("BINARYMIME", keywords)
        self.assertNotIn("STARTTLS", keywords, "no certificates: STARTTLS must not be offered")

    def test_chunks_posted_byte_exact(self):
        self.begin()
        parts = [TRICKY[:7], TRICKY[7:50], TRICKY[50:]]
        self.assertChunkOk(self.chunk(parts[0]), len(parts[0]))
        self.assertChunkOk(self.chunk(parts[1]), len(parts[1]))
        r = self.chunk(parts[2], last=True)
        self.assertReply(r, 250, "2.0.0")
        reqs = self.rcv.wait_for(1)
        self.assertEqual(len(reqs), 1)
        req = reqs[0]
        self.assertEqual(req.body, TRICKY)
        self.assertEqual(req.header("Content-Length"), str(len(TRICKY)))
        self.assertIdInReply(req.header("X-Smtphook-Id"), r)
        env = req.envelope()
        self.assertIs(env["chunked"], True)
        self.assertEqual(env["size"], len(TRICKY))
        self.assertIsNone(env["params"]["body"])
        self.assertIsNone(env["tls"])
        self.assertNothingMore(self.c)

    def test_single_chunk_with_last(self):
        self.begin()
        self.assertReply(self.chunk(TRICKY, last=True), 250)
        req = self.rcv.wait_for(1)[0]
        self.assertEqual(req.body, TRICKY)
        self.assertIs(req.envelope()["chunked"], True)

    def test_data_message_is_not_chunked(self):
        self.ehlo(self.c)
        self.assertReply(self.transaction(self.c, "a@example.org", ["b@example.com"],
                                          b"Subject: d\r\n\r\nx\r\n"), 250)
        self.assertIs(self.rcv.wait_for(1)[0].envelope()["chunked"], False)

    def test_one_byte_writes(self):
        """A whole pipelined BDAT session written one byte at a time."""
        session = (b"EHLO client.test\r\n"
                   b"MAIL FROM:<a@example.org>\r\n"
                   b"RCPT TO:<b@example.com>\r\n"
                   + bdat(TRICKY[:30]) + bdat(TRICKY[30:], last=True)
                   + b"QUIT\r\n")
        self.c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(session)):
            self.c.send(session[i:i + 1])
        replies = self.c.read_replies(6)
        self.assertEqual([r.code for r in replies], [250, 250, 250, 250, 250, 221])
        self.assertChunkOk(replies[3], 30)
        self.assertRegex(replies[4].text, r"^2\.0\.0 Ok: delivered as ")
        self.assertEqual(self.rcv.wait_for(1)[0].body, TRICKY)
        self.assertTrue(self.c.wait_closed(5))

    def test_bdat_0_last(self):
        self.begin()
        self.assertReply(self.chunk(b"", last=True), 250, "2.0.0")
        req = self.rcv.wait_for(1)[0]
        self.assertEqual(req.body, b"")
        self.assertEqual(req.envelope()["size"], 0)
        # A last chunk of 0 octets ends a message sent in earlier chunks.
        self.assertReply(self.c.cmd("MAIL FROM:<a@example.org>"), 250)
        self.assertReply(self.c.cmd("RCPT TO:<b@example.com>"), 250)
        self.assertChunkOk(self.chunk(b"abc\r\n"), 5)
        self.assertChunkOk(self.chunk(b""), 0)
        self.assertReply(self.chunk(b"", last=True), 250)
        reqs = self.rcv.wait_for(2)
        self.assertEqual(reqs[1].body, b"abc\r\n")

    def test_pipelined_chunks_and_commands(self):
        """Two messages, their chunks and commands in one send: replies in order."""
        self.ehlo(self.c)
        m1 = [b"first\r\n", b"\r\n.\r\n", b"end\r\n"]
        m2 = b"second\x00\r\n"
        self.c.send(b"MAIL FROM:<a@example.org>\r\n"
                    b"RCPT TO:<b@example.com>\r\n"
                    + bdat(m1[0]) + bdat(m1[1]) + bdat(m1[2], last=True)
                    + b"NOOP\r\n"
                    b"MAIL FROM:<c@example.org>\r\n"
                    b"RCPT TO:<d@example.com>\r\n"
                    + bdat(m2, last=True)
                    + b"QUIT\r\n")
        replies = self.c.read_replies(10)
        self.assertEqual([r.code for r in replies],
                         [250, 250, 250, 250, 250, 250, 250, 250, 250, 221])
        self.assertChunkOk(replies[2], len(m1[0]))
        self.assertChunkOk(replies[3], len(m1[1]))
        self.assertRegex(replies[4].text, r"delivered as ")
        self.assertEqual(replies[5].text, "2.0.0 Ok")  # NOOP
        self.assertRegex(replies[8].text, r"delivered as ")
        reqs = self.rcv.wait_for(2)
        self.assertEqual([r.body for r in reqs], [b"".join(m1), m2])
        self.assertEqual([r.envelope()["mail_from"] for r in reqs],
                         ["a@example.org", "c@example.org"])
        self.assertIdInReply(reqs[0].header("X-Smtphook-Id"), replies[4])
        self.assertIdInReply(reqs[1].header("X-Smtphook-Id"), replies[8])
        self.assertTrue(self.c.wait_closed(5))

    def test_binarymime(self):
        body = bytes(range(256)) * 4 + b"\r\n.\r\n" + bytes(range(255, -1, -1))
        self.begin(params=" BODY=BINARYMIME")
        self.assertChunkOk(self.chunk(body[:300]), 300)
        self.assertReply(self.chunk(body[300:], last=True), 250)
        req = self.rcv.wait_for(1)[0]
        self.assertEqual(req.body, body)
        env = req.envelope()
        self.assertEqual(env["params"]["body"], "BINARYMIME")
        self.assertIs(env["chunked"], True)

    def test_binarymime_with_data_refused(self):
        self.begin(params=" BODY=BINARYMIME")
        self.assertReply(self.c.cmd("DATA"), 503, "5.5.1")
        self.assertReply(self.chunk(b"ok\r\n", last=True), 250)
        self.assertEqual(self.rcv.wait_for(1)[0].body, b"ok\r\n")

    def test_binarymime_with_data_and_text_behind_ends_the_session(self):
        self.begin(params=" BODY=BINARYMIME")
        # The text behind the refused DATA was sent without waiting for the reply: it is
        # not executed, the session ends.
        self.c.send(b"DATA\r\n" + dot_stuff(b"RSET\r\n"))
        self.assertReply(self.c.read_reply(), 503, "5.5.1")
        self.assertReply(self.c.read_reply(), 421, "4.5.0")
        self.assertTrue(self.c.wait_closed(5))
        self.assertNoRequests(self.rcv)

    def test_data_after_bdat_refused(self):
        self.begin()
        self.assertChunkOk(self.chunk(b"part one\r\n"), 10)
        self.assertReply(self.c.cmd("DATA"), 503, "5.5.1")
        self.assertReply(self.c.cmd("RSET"), 250)
        self.assertNoRequests(self.rcv)
        # After RSET a DATA transaction works again.
        self.assertReply(self.transaction(self.c, "a@example.org", ["b@example.com"],
                                          b"Subject: d\r\n\r\nx\r\n"), 250)
        req = self.rcv.wait_for(1)[0]
        self.assertEqual(req.body, b"Subject: d\r\n\r\nx\r\n")
        self.assertIs(req.envelope()["chunked"], False)

    def test_rset_ends_chunked_transaction(self):
        self.begin()
        self.assertChunkOk(self.chunk(b"forgotten\r\n"), 11)
        self.assertReply(self.c.cmd("RSET"), 250)
        self.assertReply(self.chunk(b"x", last=True), 503, "5.5.1")
        self.assertNoRequests(self.rcv)

    def refused_chunk(self, setup):
        """setup leaves the session without a transaction with recipients; then a pipelined
        BDAT LAST whose chunk holds SMUGGLED, and NOOP. Exactly two replies: 503 for the
        chunk, 250 for NOOP; nothing posted."""
        self.ehlo(self.c)
        setup()
        self.c.send(bdat(SMUGGLED, last=True) + b"NOOP\r\n")
        r = self.c.read_reply()
        self.assertReply(r, 503, "5.5.1")
        self.assertEqual(self.c.read_reply().text, "2.0.0 Ok")
        self.assertNothingMore(self.c)
        self.assertNoRequests(self.rcv)

    def test_bdat_after_refused_rcpt_is_discarded(self):
        def setup():
            self.assertReply(self.c.cmd("MAIL FROM:<a@example.org>"), 250)
            self.assertReply(self.c.cmd("RCPT TO:<b@elsewhere.test>"), 550, "5.7.1")
        self.refused_chunk(setup)

    def test_bdat_after_refused_mail_is_discarded(self):
        def setup():
            self.assertReply(self.c.cmd("MAIL FROM:<not an address>"), 501)
        self.refused_chunk(setup)

    def test_bdat_without_mail_is_discarded(self):
        self.refused_chunk(lambda: None)

    def test_pipelined_chunks_after_refused_rcpt(self):
        """All in one send: every chunk is read and refused, none executed."""
        self.ehlo(self.c)
        self.c.send(b"MAIL FROM:<a@example.org>\r\n"
                    b"RCPT TO:<b@elsewhere.test>\r\n"
                    + bdat(SMUGGLED) + bdat(SMUGGLED) + bdat(SMUGGLED, last=True)
                    + b"NOOP\r\n")
        replies = self.c.read_replies(6)
        self.assertEqual([r.code for r in replies], [250, 550, 503, 503, 503, 250])
        self.assertNothingMore(self.c)
        self.assertNoRequests(self.rcv)

    def test_bdat_syntax_error(self):
        # A size that cannot be read: nobody can tell where its chunk ends, so nothing the
        # client sends after it is taken as a command; 501, then 421 and the close.
        for line in ("BDAT", "BDAT 99999999999999999999999 LAST", "BDAT x12"):
            c = self.connect()
            self.ehlo(c)
            self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), 250)
            self.assertReply(c.cmd("RCPT TO:<b@example.com>"), 250)
            c.send(line.encode() + b"\r\nNOOP\r\n")
            self.assertReply(c.read_reply(), 501, "5.5.4", line)
            self.assertReply(c.read_reply(), 421, "4.5.0", line)
            self.assertTrue(c.wait_closed(5), line)
            self.assertEqual(c.buf, b"", line)
        self.begin()
        # A readable size with a bad rest: its 12 octets are read and thrown away, never
        # executed, and the 501 comes after them.
        self.c.send(b"BDAT 12 FIRST\r\nRSET\r\nQUIT\r\n")
        self.assertReply(self.c.read_reply(), 501, "5.5.4")
        # No chunk was accepted yet: the transaction is still open.
        self.assertReply(self.chunk(b"fine\r\n", last=True), 250)
        self.assertEqual(self.rcv.wait_for(1)[0].body, b"fine\r\n")

    def test_bdat_syntax_error_ends_a_chunked_message(self):
        """After a chunk was accepted, a malformed BDAT ends the message: what follows
        would be a message with a hole in it."""
        self.begin()
        self.assertChunkOk(self.chunk(b"part one\r\n"), 10)
        self.c.send(b"BDAT 8 LASTT\r\npart two" + bdat(b"three\r\n", True))
        self.assertReply(self.c.read_reply(), 501, "5.5.4")
        self.assertReply(self.c.read_reply(), 503, "5.5.1")
        self.assertNoRequests(self.rcv)

    def test_webhook_failure_is_the_reply_to_last(self):
        cases = [(500, 451, "4.3.0"), (400, 550, "5.6.0"), (413, 552, "5.3.4")]
        self.ehlo(self.c)
        for n, (status, code, esc) in enumerate(cases, 1):
            self.rcv.set(status=status)
            self.assertReply(self.c.cmd("MAIL FROM:<a@example.org>"), 250)
            self.assertReply(self.c.cmd("RCPT TO:<b@example.com>"), 250)
            self.assertChunkOk(self.chunk(b"one\r\n"), 5)
            r = self.chunk(b"two\r\n", last=True)
            self.assertReply(r, code, esc, "HTTP %d" % status)
            reqs = self.rcv.wait_for(n)
            self.assertEqual(len(reqs), n)
            self.assertEqual(reqs[-1].body, b"one\r\ntwo\r\n")
            self.assertIdInReply(reqs[-1].header("X-Smtphook-Id"), r)
        self.assertReply(self.c.cmd("NOOP"), 250)


class ChunkSizeLimit(SmtphookTestCase):
    def setUp(self):
        self.rcv = self.start_receiver()
        self.start_smtphook(self.rcv, limits={"max_message_bytes": LIMIT})
        self.c = self.connect()
        self.ehlo(self.c)

    def start_txn(self):
        self.assertReply(self.c.cmd("MAIL FROM:<a@example.org>"), 250)
        self.assertReply(self.c.cmd("RCPT TO:<b@example.com>"), 250)

    def test_total_over_limit_552_nothing_posted(self):
        self.start_txn()
        half = b"x" * (LIMIT // 2 + 10)
        self.c.send(bdat(half))
        r1 = self.c.read_reply()
        self.assertEqual(r1.code, 250)
        # This chunk's bytes look like commands: they must be read and thrown away.
        tail = (b"RSET\r\n" * (len(half) // 6 + 1))[:len(half)]
        self.c.send(bdat(tail) + bdat(b"more", last=True) + b"NOOP\r\n")
        replies = self.c.read_replies(3)
        self.assertReply(replies[0], 552, "5.3.4")
        self.assertReply(replies[1], 503, "5.5.1")  # the transaction is over
        self.assertEqual(replies[2].text, "2.0.0 Ok")
        self.assertNoRequests(self.rcv)
        self.assertTrue(self.sh.wait_log(r'reply="552 5\.3\.4"'), self.sh.log()[-2000:])
        # The session goes on: the next message within the limit is posted.
        self.start_txn()
        self.assertReply(self.chunk(b"ok!", last=True), 250)
        self.assertEqual(self.rcv.wait_for(1)[0].body, b"ok!")

    def test_declared_chunk_over_limit_is_read_then_552(self):
        self.start_txn()
        big = (b"NOOP\r\n" * (LIMIT // 6 + 10))
        self.c.send(bdat(big, last=True) + b"NOOP\r\n")
        self.assertReply(self.c.read_reply(), 552, "5.3.4")
        self.assertEqual(self.c.read_reply().text, "2.0.0 Ok")  # only the real NOOP
        self.assertReply(self.c.cmd("QUIT"), 221)
        self.assertTrue(self.c.wait_closed(5))
        self.assertEqual(self.c.buf, b"")
        self.assertNoRequests(self.rcv)

    def test_exactly_the_limit_is_posted(self):
        self.start_txn()
        body = b"y" * LIMIT
        self.assertReply(self.chunk(body[:1000]), 250)
        self.assertReply(self.chunk(body[1000:], last=True), 250)
        req = self.rcv.wait_for(1)[0]
        self.assertEqual(req.length, LIMIT)
        self.assertEqual(req.body, body)

    def chunk(self, data, last=False):
        self.c.send(bdat(data, last))
        return self.c.read_reply()


if __name__ == "__main__":
    unittest.main()
