"""test_protocol.py - the SMTP conversation: banner, EHLO, commands, sequence errors,
parameters, SMTPUTF8, recipient domains, pipelining and clients that go away."""

import socket
import struct
import time
import unittest

from helpers import percent_decode
from smtp_client import dot_stuff
from testcase import SmtphookTestCase

MSG = b"Subject: p\r\n\r\nbody\r\n"


class Conversation(SmtphookTestCase):
    def setUp(self):
        self.rcv = self.start_receiver()
        self.start_smtphook(self.rcv)
        self.c = self.connect()

    def test_banner(self):
        self.assertReply(self.c.banner, 220)
        self.assertEqual(len(self.c.banner.lines), 1)
        self.assertRegex(self.c.banner.text, r"^mx\.test ESMTP")

    def test_ehlo_lists_extensions(self):
        r = self.ehlo(self.c)
        self.assertRegex(r.texts[0], r"^mx\.test\b")
        keywords = {t.split()[0].upper() for t in r.texts[1:] if t.strip()}
        for ext in ("PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES"):
            self.assertIn(ext, keywords, "EHLO lacks %s: %s" % (ext, r))

    def test_ehlo_size_is_max_message_bytes(self):
        r = self.ehlo(self.c)
        sizes = [t.split() for t in r.texts[1:] if t.upper().startswith("SIZE")]
        self.assertEqual(sizes, [["SIZE", "26214400"]], str(r))

    def test_helo_accepted_without_extensions(self):
        r = self.c.cmd("HELO client.test")
        self.assertReply(r, 250)
        self.assertEqual(len(r.lines), 1, str(r))

    def test_replies_after_ehlo_carry_enhanced_codes(self):
        self.ehlo(self.c)
        replies = [self.c.cmd(x) for x in
                   ("NOOP", "MAIL FROM:<a@example.org>", "RCPT TO:<b@example.com>",
                    "RSET", "VRFY someone", "HELP", "BOGUS", "RCPT TO:<b@example.com>")]
        for r in replies:
            self.assertIsNotNone(r.esc, "no enhanced status code: %s" % r)
            self.assertEqual(r.esc[0], str(r.code)[0], "class mismatch: %s" % r)

    def test_vrfy_252(self):
        self.ehlo(self.c)
        self.assertReply(self.c.cmd("VRFY postmaster"), 252, "2.0.0")

    def test_help_214(self):
        self.ehlo(self.c)
        self.assertReply(self.c.cmd("HELP"), 214)

    def test_noop_250(self):
        self.ehlo(self.c)
        self.assertReply(self.c.cmd("NOOP"), 250, "2.0.0")

    def test_rset_250(self):
        self.ehlo(self.c)
        self.assertReply(self.c.cmd("RSET"), 250, "2.0.0")

    def test_quit_221_and_close(self):
        self.ehlo(self.c)
        self.assertReply(self.c.cmd("QUIT"), 221, "2.0.0")
        self.assertTrue(self.c.wait_closed(3), "connection still open after QUIT")

    def test_commands_are_case_insensitive(self):
        self.assertReply(self.c.cmd("ehlo client.test"), 250)
        self.assertReply(self.c.cmd("mail from:<a@example.org>"), 250)
        self.assertReply(self.c.cmd("rcpt to:<b@example.com>"), 250)
        self.assertReply(self.c.cmd("data"), 354)
        self.c.send(dot_stuff(MSG))
        self.assertReply(self.c.read_reply(), 250)

    def test_unknown_command_500(self):
        self.ehlo(self.c)
        self.assertReply(self.c.cmd("XYZZY plugh"), 500, "5.5.2")

    def test_mail_before_ehlo_503(self):
        self.assertReply(self.c.cmd("MAIL FROM:<a@example.org>"), 503, "5.5.1")

    def test_rcpt_without_mail_503(self):
        self.ehlo(self.c)
        self.assertReply(self.c.cmd("RCPT TO:<b@example.com>"), 503, "5.5.1")

    def test_nested_mail_503(self):
        self.ehlo(self.c)
        self.assertReply(self.c.cmd("MAIL FROM:<a@example.org>"), 250)
        self.assertReply(self.c.cmd("MAIL FROM:<a@example.org>"), 503, "5.5.1")

    def test_data_without_rcpt_refused(self):
        self.ehlo(self.c)
        self.assertReply(self.c.cmd("MAIL FROM:<a@example.org>"), 250)
        r = self.c.cmd("DATA")
        self.assertIn(r.code, (503, 554), str(r))
        self.assertNoRequests(self.rcv, settle=0.2)

    def test_data_without_mail_503(self):
        self.ehlo(self.c)
        self.assertReply(self.c.cmd("DATA"), 503, "5.5.1")

    def test_quoted_local_part_with_escapes_roundtrips(self):
        rcpt = '"a\\"b\\\\c"@example.com'  # "a\"b\\c"@example.com on the wire
        self.ehlo(self.c)
        r = self.transaction(self.c, "a@example.org", [rcpt], MSG)
        self.assertReply(r, 250)
        self.assertEqual(self.rcv.wait_for(1)[0].envelope()["rcpt_to"], [rcpt])

    def test_invalid_utf8_address_rejected(self):
        self.ehlo(self.c)
        r = self.c.cmd(b"MAIL FROM:<\xff\xfe@example.org> SMTPUTF8")
        self.assertEqual(r.code // 100, 5, str(r))

    def test_mail_syntax_error_501(self):
        self.ehlo(self.c)
        r = self.c.cmd("MAIL FROM:a@example.org garbage<")
        self.assertEqual(r.code, 501, str(r))

    def test_rset_clears_transaction(self):
        self.ehlo(self.c)
        self.assertReply(self.c.cmd("MAIL FROM:<a@example.org>"), 250)
        self.assertReply(self.c.cmd("RCPT TO:<b@example.com>"), 250)
        self.assertReply(self.c.cmd("RSET"), 250)
        self.assertReply(self.c.cmd("DATA"), 503, "5.5.1")
        self.assertReply(self.c.cmd("MAIL FROM:<a2@example.org>"), 250)
        self.assertReply(self.c.cmd("RCPT TO:<b2@example.com>"), 250)
        self.assertReply(self.c.cmd("DATA"), 354)
        self.c.send(dot_stuff(MSG))
        self.assertReply(self.c.read_reply(), 250)
        env = self.rcv.wait_for(1)[0].envelope()
        self.assertEqual((env["mail_from"], env["rcpt_to"]), ("a2@example.org",
                                                              ["b2@example.com"]))

    def test_abandoned_transaction_posts_nothing(self):
        self.ehlo(self.c)
        self.assertReply(self.c.cmd("MAIL FROM:<a@example.org>"), 250)
        self.assertReply(self.c.cmd("RCPT TO:<b@example.com>"), 250)
        self.assertReply(self.c.cmd("QUIT"), 221)
        self.assertNoRequests(self.rcv)

    def test_two_transactions_in_one_session(self):
        self.ehlo(self.c)
        r1 = self.transaction(self.c, "a@example.org", ["b@example.com"], b"first\r\n")
        r2 = self.transaction(self.c, "c@example.org", ["d@example.com"], b"second\r\n")
        self.assertReply(r1, 250)
        self.assertReply(r2, 250)
        reqs = self.rcv.wait_for(2)
        self.assertEqual([r.body for r in reqs], [b"first\r\n", b"second\r\n"])


class Parameters(SmtphookTestCase):
    def setUp(self):
        self.rcv = self.start_receiver()
        self.start_smtphook(self.rcv)
        self.c = self.connect()
        self.ehlo(self.c)

    def test_size_abc_501(self):
        self.assertReply(self.c.cmd("MAIL FROM:<a@example.org> SIZE=abc"), 501)

    def test_size_negative_501(self):
        self.assertReply(self.c.cmd("MAIL FROM:<a@example.org> SIZE=-1"), 501)

    def test_size_overflowing_64_bits_not_accepted(self):
        r = self.c.cmd("MAIL FROM:<a@example.org> SIZE=99999999999999999999999999")
        self.assertIn(r.code, (501, 552), str(r))

    def test_size_within_limit_accepted(self):
        self.assertReply(self.c.cmd("MAIL FROM:<a@example.org> SIZE=1000"), 250)

    def test_unknown_mail_parameter_555(self):
        self.assertReply(self.c.cmd("MAIL FROM:<a@example.org> FROBNICATE=yes"), 555)

    def test_bad_body_value_501(self):
        self.assertReply(self.c.cmd("MAIL FROM:<a@example.org> BODY=9BIT"), 501)

    def test_mail_parameter_after_helo_refused(self):
        c = self.connect()
        self.assertReply(c.cmd("HELO client.test"), 250)
        r = c.cmd("MAIL FROM:<a@example.org> BODY=8BITMIME")
        self.assertEqual(r.code // 100, 5, str(r))


class Domains(SmtphookTestCase):
    def setUp(self):
        self.rcv = self.start_receiver()
        self.start_smtphook(self.rcv)
        self.c = self.connect()
        self.ehlo(self.c)
        self.assertReply(self.c.cmd("MAIL FROM:<a@example.org>"), 250)

    def test_foreign_domain_550_relay_denied(self):
        self.assertReply(self.c.cmd("RCPT TO:<x@elsewhere.test>"), 550, "5.7.1")

    def test_subdomain_is_not_accepted(self):
        self.assertReply(self.c.cmd("RCPT TO:<x@sub.example.com>"), 550, "5.7.1")

    def test_domain_match_is_case_insensitive(self):
        self.assertReply(self.c.cmd("RCPT TO:<User@EXAMPLE.Com>"), 250, "2.1.5")

    def test_denied_recipient_does_not_spoil_the_others(self):
        self.assertReply(self.c.cmd("RCPT TO:<x@elsewhere.test>"), 550)
        self.assertReply(self.c.cmd("RCPT TO:<ok@example.com>"), 250)
        self.assertReply(self.c.cmd("DATA"), 354)
        self.c.send(dot_stuff(MSG))
        self.assertReply(self.c.read_reply(), 250)
        self.assertEqual(self.rcv.wait_for(1)[0].envelope()["rcpt_to"], ["ok@example.com"])

    def test_only_denied_recipients_data_refused_nothing_posted(self):
        self.assertReply(self.c.cmd("RCPT TO:<x@elsewhere.test>"), 550)
        r = self.c.cmd("DATA")
        self.assertIn(r.code, (503, 554), str(r))
        self.assertNoRequests(self.rcv)


class SmtpUtf8(SmtphookTestCase):
    FROM = "j\u00f6s\u00e9@ex\u00e4mple.org"
    RCPT = "\u00fcser@example.com"

    def setUp(self):
        self.rcv = self.start_receiver()
        self.start_smtphook(self.rcv)
        self.c = self.connect()
        self.ehlo(self.c)

    def test_utf8_addresses_posted(self):
        body = "Subject: gr\u00fc\u00dfe\r\n\r\nUTF-8 text \u00e9\r\n".encode("utf-8")
        r = self.transaction(self.c, self.FROM, [self.RCPT], body, mail_params="SMTPUTF8")
        self.assertReply(r, 250, "2.0.0")
        req = self.rcv.wait_for(1)[0]
        env = req.envelope()
        self.assertEqual(env["mail_from"], self.FROM)
        self.assertEqual(env["rcpt_to"], [self.RCPT])
        self.assertTrue(env["params"]["smtputf8"])
        self.assertEqual(req.body, body)

    def test_utf8_headers_are_ascii_and_percent_decode(self):
        r = self.transaction(self.c, self.FROM, [self.RCPT], MSG, mail_params="SMTPUTF8")
        self.assertReply(r, 250)
        req = self.rcv.wait_for(1)[0]
        for name in ("X-Smtphook-Envelope", "X-Smtphook-Mail-From", "X-Smtphook-Rcpt-To"):
            value = req.header(name)
            self.assertTrue(all(ord(ch) < 0x80 for ch in value), "%s: %r" % (name, value))
        self.assertEqual(percent_decode(req.header("X-Smtphook-Rcpt-To")), self.RCPT)
        self.assertEqual(percent_decode(req.header("X-Smtphook-Mail-From")), self.FROM)

    def test_non_ascii_sender_without_smtputf8_rejected(self):
        r = self.c.cmd("MAIL FROM:<%s>" % self.FROM)
        self.assertEqual(r.code // 100, 5, str(r))
        self.assertNoRequests(self.rcv, settle=0.1)

    def test_non_ascii_recipient_without_smtputf8_rejected(self):
        self.assertReply(self.c.cmd("MAIL FROM:<a@example.org>"), 250)
        r = self.c.cmd("RCPT TO:<%s>" % self.RCPT)
        self.assertEqual(r.code // 100, 5, str(r))

    def test_non_ascii_without_smtputf8_is_553_5_6_7(self):
        self.assertReply(self.c.cmd("MAIL FROM:<%s>" % self.FROM), 553, "5.6.7")


class Pipelining(SmtphookTestCase):
    def test_two_messages_in_one_send(self):
        rcv = self.start_receiver()
        self.start_smtphook(rcv)
        c = self.connect()
        self.ehlo(c)
        b1 = b"Subject: one\r\n\r\n.first\r\n"
        b2 = b"Subject: two\r\n\r\nsecond\r\n\r\n"
        c.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n" +
               dot_stuff(b1) +
               b"MAIL FROM:<c@example.org>\r\nRCPT TO:<d@example.com>\r\nDATA\r\n" +
               dot_stuff(b2) + b"QUIT\r\n")
        codes = [c.read_reply() for _ in range(9)]
        self.assertEqual([r.code for r in codes], [250, 250, 354, 250, 250, 250, 354, 250, 221],
                         str(codes))
        self.assertTrue(c.wait_closed(3))
        reqs = rcv.wait_for(2)
        self.assertEqual(len(reqs), 2)
        self.assertEqual([r.body for r in reqs], [b1, b2])
        self.assertEqual([r.envelope()["mail_from"] for r in reqs],
                         ["a@example.org", "c@example.org"])
        self.assertIdInReply(reqs[0].header("X-Smtphook-Id"), codes[3])
        self.assertIdInReply(reqs[1].header("X-Smtphook-Id"), codes[7])

    def test_pipelined_recipients_one_send(self):
        rcv = self.start_receiver()
        self.start_smtphook(rcv)
        c = self.connect()
        self.ehlo(c)
        c.send(b"MAIL FROM:<a@example.org>\r\n" +
               b"".join(b"RCPT TO:<r%d@example.com>\r\n" % i for i in range(10)) +
               b"RCPT TO:<no@elsewhere.test>\r\nDATA\r\n")
        replies = [c.read_reply() for _ in range(13)]
        self.assertEqual([r.code for r in replies], [250] * 11 + [550, 354], str(replies))
        c.send(dot_stuff(MSG))
        self.assertReply(c.read_reply(), 250)
        self.assertEqual(rcv.wait_for(1)[0].envelope()["rcpt_to"],
                         ["r%d@example.com" % i for i in range(10)])

    def test_refused_data_discards_pipelined_text(self):
        rcv = self.start_receiver()
        self.start_smtphook(rcv)
        c = self.connect()
        self.ehlo(c)
        # DATA is refused (no recipient); what follows in the same send is message text the
        # client sent without waiting for the reply (RFC 2920 §3.1): none of it runs as
        # commands, the session ends with 421 instead.
        c.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<x@elsewhere.test>\r\nDATA\r\n"
               b"MAIL FROM:<evil@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
               b"evil\r\n.\r\n")
        replies = [c.read_reply() for _ in range(4)]
        self.assertEqual([r.code for r in replies[:2]], [250, 550])
        self.assertIn(replies[2].code, (503, 554))
        self.assertReply(replies[3], 421, "4.5.0")
        self.assertTrue(c.wait_closed(5), "the session must end")
        self.assertEqual(c.buf, b"", "pipelined text was executed")
        self.assertNoRequests(rcv, settle=0.2)

    def test_refused_data_discards_everything_pipelined_behind_it(self):
        """50,000 NOOPs in one write behind a refused DATA, far more than one read: not one
        of them is executed, whichever read they arrive in."""
        rcv = self.start_receiver()
        self.start_smtphook(rcv)
        c = self.connect()
        self.ehlo(c)
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), 250)
        c.send(b"DATA\r\n" + b"NOOP\r\n" * 50000)
        self.assertReply(c.read_reply(), 554, "5.5.1")
        self.assertReply(c.read_reply(), 421, "4.5.0")
        self.assertTrue(c.wait_closed(10), "the session must end")
        self.assertEqual(c.buf, b"", "pipelined NOOPs were executed")
        self.assertNoRequests(rcv, settle=0.1)

    def test_refused_data_alone_keeps_the_session(self):
        """A client that waits for the reply to DATA, as it must, keeps its session."""
        rcv = self.start_receiver()
        self.start_smtphook(rcv)
        c = self.connect()
        self.ehlo(c)
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), 250)
        self.assertReply(c.cmd("DATA"), 554, "5.5.1")
        self.assertReply(c.cmd("RSET"), 250)
        self.assertReply(self.transaction(c, "a@example.org", ["b@example.com"],
                                          b"Subject: ok\r\n\r\nok\r\n"), 250)


class Chunking(SmtphookTestCase):
    """Any split of the input into reads gives the same result."""

    def setUp(self):
        self.rcv = self.start_receiver()
        self.start_smtphook(self.rcv)
        self.c = self.connect()
        self.c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def trickle(self, data, pause=0.002):
        for i in range(len(data)):
            self.c.send(data[i:i + 1])
            time.sleep(pause)

    def test_commands_byte_by_byte(self):
        self.trickle(b"EHLO trickle.test\r\n")
        self.assertReply(self.c.read_reply(), 250)
        self.trickle(b"NOOP\r\n")
        self.assertReply(self.c.read_reply(), 250)

    def test_message_byte_by_byte(self):
        self.ehlo(self.c)
        body = b"Subject: t\r\n\r\n.dot\r\n\n.\n\r.\r\r\n..\r\nend\r\n"
        self.assertReply(self.c.cmd("MAIL FROM:<a@example.org>"), 250)
        self.assertReply(self.c.cmd("RCPT TO:<b@example.com>"), 250)
        self.assertReply(self.c.cmd("DATA"), 354)
        self.trickle(dot_stuff(body))
        self.assertReply(self.c.read_reply(), 250)
        self.assertEqual(self.rcv.wait_for(1)[0].body, body)

    def test_lf_only_command_lines(self):
        self.c.send(b"EHLO lf.test\n")
        self.assertReply(self.c.read_reply(), 250)
        self.c.send(b"NOOP\n")
        self.assertReply(self.c.read_reply(), 250)


class HeldInput(SmtphookTestCase):
    def test_large_pipeline_behind_slow_delivery_answered_in_order(self):
        # More than the 64 KiB the server holds while a delivery runs: reading must pause
        # and resume, and every command still gets its reply, in order.
        rcv = self.start_receiver(delay=1.0)
        self.start_smtphook(rcv, limits={"max_errors": 1000, "max_junk_commands": 0})
        c = self.connect()
        self.ehlo(c)
        n = 15000  # 15000 * 7 bytes = 105 kB of NOOPs
        c.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n" +
               dot_stuff(MSG) + b"NOOP 1\r\n" * n + b"MAIL FROM:<c@example.org>\r\n")
        replies = [c.read_reply(timeout=15) for _ in range(4)]
        self.assertEqual([r.code for r in replies], [250, 250, 354, 250], str(replies))
        for i in range(n):
            r = c.read_reply(timeout=15)
            self.assertEqual(r.code, 250, "NOOP %d: %s" % (i, r))
        self.assertReply(c.read_reply(), 250, "2.1.0")
        rcv.set(delay=0)
        self.assertReply(c.cmd("RCPT TO:<d@example.com>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(dot_stuff(MSG))
        self.assertReply(c.read_reply(), 250)
        self.assertEqual(len(rcv.wait_for(2)), 2)


class Disconnects(SmtphookTestCase):
    def test_disconnect_mid_data_posts_nothing_and_server_keeps_serving(self):
        rcv = self.start_receiver()
        sh = self.start_smtphook(rcv)
        c = self.connect()
        self.ehlo(c)
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), 250)
        self.assertReply(c.cmd("RCPT TO:<b@example.com>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(b"Subject: partial\r\n\r\nthis message never ends\r\n" + b"x" * 100000)
        c.close()
        self.assertNoRequests(rcv)
        self.assertTrue(sh.running())
        self.assertReply(self.send_mail(body=MSG), 250)
        rcv.wait_for(1)
        time.sleep(0.2)
        self.assertEqual([r.body for r in rcv.requests], [MSG])

    def test_disconnect_while_waiting_for_reply(self):
        rcv = self.start_receiver(delay=2.0)
        sh = self.start_smtphook(rcv)
        c = self.connect()
        self.ehlo(c)
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), 250)
        self.assertReply(c.cmd("RCPT TO:<b@example.com>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(dot_stuff(b"Subject: gone\r\n\r\nbye\r\n"))
        rcv.wait_for(1, timeout=5)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()  # RST while the delivery runs
        time.sleep(0.3)
        rcv.set(delay=0)
        self.assertTrue(sh.running(), "smtphook died:\n" + sh.log())
        r = self.send_mail(body=MSG)
        self.assertReply(r, 250)
        time.sleep(2.0)  # let the cancelled request's delay elapse
        self.assertTrue(sh.running(), "smtphook died:\n" + sh.log())
        self.assertReply(self.send_mail(body=MSG), 250)

    def test_half_line_then_close(self):
        rcv = self.start_receiver()
        sh = self.start_smtphook(rcv)
        c = self.connect()
        c.send(b"EHLO half-a-li")
        c.close()
        time.sleep(0.2)
        self.assertTrue(sh.running())
        self.assertReply(self.send_mail(), 250)


if __name__ == "__main__":
    unittest.main()
