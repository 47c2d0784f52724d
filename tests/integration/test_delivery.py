"""test_delivery.py - what the web app receives: the POST, its headers, the envelope JSON and
a byte-exact body, whatever bytes the message holds; connection reuse; the log line."""

import datetime
import hashlib
import json
import re
import tempfile
import time
import unittest

from helpers import percent_decode
from smtp_client import dot_stuff
from smtphook_process import TOKEN
from testcase import SmtphookTestCase

SIMPLE = b"From: a@example.org\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nHello.\r\n"


class PostFormat(SmtphookTestCase):
    def setUp(self):
        self.rcv = self.start_receiver()
        self.start_smtphook(self.rcv)

    def one(self, **kw):
        reply = self.send_mail(**kw)
        reqs = self.rcv.wait_for(1)
        self.assertEqual(len(reqs), 1, "exactly one POST expected")
        return reply, reqs[0]

    def test_post_to_endpoint_path_with_rfc822_content_type(self):
        reply, req = self.one(body=SIMPLE)
        self.assertReply(reply, 250, "2.0.0")
        self.assertEqual(req.method, "POST")
        self.assertEqual(req.path, "/inbound")
        self.assertEqual(req.header("Content-Type"), "message/rfc822")

    def test_content_length_matches_body(self):
        _, req = self.one(body=SIMPLE)
        self.assertIsNone(req.header("Transfer-Encoding"), "body must not be chunked")
        self.assertEqual(req.header("Content-Length"), str(len(SIMPLE)))
        self.assertEqual(req.body, SIMPLE)

    def test_no_expect_100_continue(self):
        _, req = self.one(body=SIMPLE + b"y" * 200000 + b"\r\n")
        self.assertIsNone(req.header("Expect"))

    def test_id_header_matches_250_reply(self):
        reply, req = self.one()
        rid = req.header("X-Smtphook-Id")
        self.assertRegex(rid, r"^[\x21-\x7e]{1,48}$")
        self.assertIdInReply(rid, reply)
        self.assertEqual(req.envelope()["id"], rid)

    def test_ids_differ_between_messages(self):
        c = self.connect()
        self.ehlo(c)
        r1 = self.transaction(c, "a@example.org", ["b@example.com"], SIMPLE)
        r2 = self.transaction(c, "a@example.org", ["b@example.com"], SIMPLE)
        self.assertReply(r1, 250)
        self.assertReply(r2, 250)
        reqs = self.rcv.wait_for(2)
        ids = [r.header("X-Smtphook-Id") for r in reqs]
        self.assertEqual(len(set(ids)), 2, ids)

    def test_configured_authorization_header_expanded_from_env(self):
        _, req = self.one()
        self.assertEqual(req.header("Authorization"), "Bearer " + TOKEN)

    def test_envelope_has_exactly_the_documented_fields(self):
        _, req = self.one()
        env = req.envelope()
        self.assertEqual(set(env), {"id", "key", "received_at", "client", "tls", "mail_from",
                                    "rcpt_to", "size", "params", "chunked"})
        self.assertRegex(env["key"], r"^[0-9a-f]{64}$")
        self.assertEqual(req.header("Idempotency-Key"), env["key"])
        self.assertEqual(set(env["client"]), {"address", "port", "helo"})
        self.assertEqual(set(env["params"]), {"body", "smtputf8"})
        self.assertIsNone(env["tls"])
        self.assertIs(env["chunked"], False)

    def test_envelope_is_compact_ascii_json(self):
        _, req = self.one()
        raw = req.header("X-Smtphook-Envelope")
        self.assertTrue(all(0x20 <= ord(ch) < 0x7f for ch in raw), raw)
        self.assertEqual(raw, json.dumps(json.loads(raw), separators=(",", ":")),
                         "envelope JSON is not compact")

    def test_envelope_received_at_is_rfc3339_utc_now(self):
        before = datetime.datetime.now(datetime.timezone.utc)
        _, req = self.one()
        ts = req.envelope()["received_at"]
        m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d{1,9})?Z$", ts)
        self.assertIsNotNone(m, "not RFC 3339 UTC: %r" % ts)
        when = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")
        when = when.replace(tzinfo=datetime.timezone.utc)
        self.assertLess(abs((when - before).total_seconds()), 30, ts)

    def test_envelope_client_address_port_and_helo(self):
        c = self.connect()
        self.ehlo(c, "helo.client.test")
        self.assertReply(self.transaction(c, "a@example.org", ["b@example.com"], SIMPLE), 250)
        env = self.rcv.wait_for(1)[0].envelope()
        self.assertEqual(env["client"]["address"], "127.0.0.1")
        self.assertEqual(env["client"]["port"], c.local_port)
        self.assertEqual(env["client"]["helo"], "helo.client.test")

    def test_envelope_json_not_forgeable_through_helo(self):
        helo = 'evil"},"tls":{"x":1},"a":"\\'
        c = self.connect()
        self.assertReply(c.cmd("EHLO " + helo), 250)
        self.assertReply(self.transaction(c, "a@example.org", ["b@example.com"], SIMPLE), 250)
        env = self.rcv.wait_for(1)[0].envelope()
        self.assertEqual(env["client"]["helo"], helo)
        self.assertIsNone(env["tls"])
        self.assertNotIn("a", env)

    def test_envelope_helo_from_helo_command(self):
        c = self.connect()
        self.assertReply(c.cmd("HELO old.client.test"), 250)
        self.assertReply(self.transaction(c, "a@example.org", ["b@example.com"], SIMPLE), 250)
        env = self.rcv.wait_for(1)[0].envelope()
        self.assertEqual(env["client"]["helo"], "old.client.test")

    def test_envelope_size_equals_body_length(self):
        body = SIMPLE + b"x" * 777 + b"\r\n"
        _, req = self.one(body=body)
        self.assertEqual(req.envelope()["size"], len(body))
        self.assertEqual(req.length, len(body))

    def test_envelope_mail_from_and_rcpt_to_in_order(self):
        rcpts = ["one@example.com", "two@example.com", "three@example.com"]
        _, req = self.one(mail_from="sender@example.org", rcpts=rcpts)
        env = req.envelope()
        self.assertEqual(env["mail_from"], "sender@example.org")
        self.assertEqual(env["rcpt_to"], rcpts)

    def test_envelope_params_default(self):
        _, req = self.one()
        self.assertEqual(req.envelope()["params"], {"body": None, "smtputf8": False})

    def test_body_8bitmime_param_reflected(self):
        reply, req = self.one(mail_params="BODY=8BITMIME")
        self.assertReply(reply, 250)
        self.assertEqual(req.envelope()["params"]["body"], "8BITMIME")

    def test_body_7bit_param_reflected(self):
        reply, req = self.one(mail_params="BODY=7BIT")
        self.assertReply(reply, 250)
        self.assertEqual(req.envelope()["params"]["body"], "7BIT")

    def test_mail_from_and_rcpt_to_headers(self):
        _, req = self.one(mail_from="alice@example.org",
                          rcpts=["support@example.com", "sales@example.com"])
        self.assertEqual(req.header("X-Smtphook-Mail-From"), "alice@example.org")
        self.assertEqual(req.header("X-Smtphook-Rcpt-To"),
                         "support@example.com, sales@example.com")

    def test_rcpt_header_percent_encodes_comma_space_and_percent(self):
        rcpt = '"a,b c%d"@example.com'
        _, req = self.one(rcpts=[rcpt, "x@example.com"])
        self.assertEqual(req.header("X-Smtphook-Rcpt-To"),
                         "\"a%2Cb%20c%25d\"@example.com, x@example.com")
        self.assertEqual(req.envelope()["rcpt_to"], [rcpt, "x@example.com"])

    def test_null_sender(self):
        reply, req = self.one(mail_from="")
        self.assertReply(reply, 250)
        self.assertEqual(req.envelope()["mail_from"], "")
        self.assertEqual(req.header("X-Smtphook-Mail-From") or "", "")

    def test_quoted_local_part_verbatim(self):
        reply, req = self.one(rcpts=['"john doe"@example.com'])
        self.assertReply(reply, 250)
        self.assertEqual(req.envelope()["rcpt_to"], ['"john doe"@example.com'])
        self.assertEqual(percent_decode(req.header("X-Smtphook-Rcpt-To")),
                         '"john doe"@example.com')


class ByteExact(SmtphookTestCase):
    """The body is exactly what the client meant: its bytes after dot-unstuffing."""

    def setUp(self):
        self.rcv = self.start_receiver()
        self.start_smtphook(self.rcv, limits={"max_message_bytes": 40000000})

    def roundtrip(self, body, raw_data=None):
        reply = self.send_mail(body=body, raw_data=raw_data)
        self.assertReply(reply, 250, "2.0.0")
        reqs = self.rcv.wait_for(1)
        time.sleep(0.2)
        reqs = self.rcv.requests
        self.assertEqual(len(reqs), 1, "exactly one POST expected: %r" % reqs)
        return reqs[0]

    def test_eight_bit_bytes(self):
        body = b"Subject: 8bit\r\n\r\n" + bytes(range(0x80, 0x100)) + b"\r\n" + \
            "gr\u00fc\u00dfe \u65e5\u672c".encode("utf-8") + b"\r\n"
        self.assertEqual(self.roundtrip(body).body, body)

    def test_ten_thousand_byte_line(self):
        body = b"Subject: long\r\n\r\n" + bytes(65 + i % 26 for i in range(10000)) + b"\r\n"
        self.assertEqual(self.roundtrip(body).body, body)

    def test_single_300k_line(self):
        body = b"Subject: wide\r\n\r\n" + bytes(33 + i % 90 for i in range(300000)) + b"\r\n"
        self.assertEqual(self.roundtrip(body).body, body)

    def test_lines_starting_with_dots(self):
        body = (b".leading dot\r\n..two dots\r\n.\r\nbetween\r\n. \r\n...\r\n"
                b"end\r\n.\r\n")
        self.assertEqual(self.roundtrip(body).body, body)

    def test_crlf_before_final_dot_belongs_to_body(self):
        body = b"Subject: x\r\n\r\nlast line\r\n"
        req = self.roundtrip(body)
        self.assertTrue(req.body.endswith(b"last line\r\n"), req.body)
        self.assertEqual(req.body, body)

    def test_empty_message(self):
        req = self.roundtrip(b"")
        self.assertEqual(req.body, b"")
        self.assertEqual(req.envelope()["size"], 0)

    def test_bare_lf_and_bare_cr_kept(self):
        body = b"Subject: bare\r\n\r\na\nb\rc\r\r\nd\n\ne\r\n\n\r\n"
        self.assertEqual(self.roundtrip(body).body, body)

    def test_long_message_with_many_dot_lines(self):
        lines = []
        for i in range(5000):
            lines.append((b"." if i % 7 == 0 else b"") + b"line %d " % i + b"z" * (i % 90))
        body = b"\r\n".join(lines) + b"\r\n"
        self.assertEqual(self.roundtrip(body).body, body)


class Smuggling(SmtphookTestCase):
    """Only CRLF.CRLF ends a message: other dot sequences are content and a command hidden
    after them is never a second transaction (SMTP smuggling)."""

    SMUGGLED = (b"MAIL FROM:<evil@attacker.test>\r\nRCPT TO:<victim@example.com>\r\n"
                b"DATA\r\nSubject: smuggled\r\n\r\nevil\r\n")

    def setUp(self):
        self.rcv = self.start_receiver()
        self.start_smtphook(self.rcv)

    def smuggle(self, seq, stuff=True):
        """Send a message containing seq followed by a smuggled transaction; return the
        single request and the body sent."""
        body = b"Subject: legit\r\n\r\nhello" + seq + self.SMUGGLED
        c = self.connect()
        self.ehlo(c)
        raw = dot_stuff(body) if stuff else body + b".\r\n"
        reply = self.transaction(c, "a@example.org", ["b@example.com"], body, raw_data=raw)
        self.assertReply(reply, 250, "2.0.0")
        # The next reply must answer QUIT: no hidden MAIL/RCPT/DATA was executed.
        q = c.cmd("QUIT")
        self.assertReply(q, 221, msg="extra replies after the message: %s" % q)
        self.rcv.wait_for(1)
        time.sleep(0.3)
        reqs = self.rcv.requests
        self.assertEqual(len(reqs), 1, "smuggled second transaction was posted: %r" % reqs)
        self.assertEqual(reqs[0].envelope()["rcpt_to"], ["b@example.com"])
        return reqs[0], body

    def test_lf_dot_lf_is_content(self):
        req, body = self.smuggle(b"\n.\n")
        self.assertEqual(req.body, body)

    def test_cr_dot_cr_is_content(self):
        req, body = self.smuggle(b"\r.\r")
        self.assertEqual(req.body, body)

    def test_lf_dot_crlf_is_content(self):
        req, body = self.smuggle(b"\n.\r\n")
        self.assertEqual(req.body, body)

    def test_crlf_dot_lf_is_content(self):
        # A correct client stuffs the dot after CRLF; the sequence arrives verbatim.
        req, body = self.smuggle(b"\r\n.\n")
        self.assertEqual(req.body, body)

    def test_crlf_dot_lf_unstuffed_does_not_end_message(self):
        # An attacker sends it unstuffed: still one message; the dot at the start of the
        # CRLF-started line is removed as RFC 5321 4.5.2 says.
        req, body = self.smuggle(b"\r\n.\n", stuff=False)
        self.assertEqual(req.body, body.replace(b"hello\r\n.\n", b"hello\r\n\n"))
        self.assertIn(b"MAIL FROM:<evil@attacker.test>", req.body)


class Large(SmtphookTestCase):
    def test_thirty_megabyte_message_sha256(self):
        rcv = self.start_receiver()
        self.start_smtphook(rcv, limits={"max_message_bytes": 40000000},
                            endpoints={"app": {"url": rcv.url(), "timeout_ms": 120000}})
        c = self.connect()
        self.ehlo(c)
        self.assertReply(c.cmd("MAIL FROM:<big@example.org> SIZE=31457280"), 250)
        self.assertReply(c.cmd("RCPT TO:<b@example.com>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        h = hashlib.sha256()
        size = 0
        line = bytes(48 + i % 75 for i in range(1022)) + b"\r\n"  # 1024 bytes
        dotline = b"." + line[1:]
        chunk_lines = [dotline if i % 64 == 0 else line for i in range(1024)]  # 1 MiB
        chunk = b"".join(chunk_lines)
        wire = dot_stuff(chunk)[:-3]  # stuffed, without terminator
        for _ in range(30):
            c.send(wire)
            h.update(chunk)
            size += len(chunk)
        c.send(b".\r\n")
        reply = c.read_reply(timeout=120)
        self.assertReply(reply, 250, "2.0.0")
        reqs = rcv.wait_for(1)
        self.assertEqual(len(reqs), 1)
        self.assertEqual(reqs[0].length, size)
        self.assertEqual(reqs[0].sha256, h.hexdigest())
        self.assertEqual(reqs[0].envelope()["size"], size)


class SpoolToFile(SmtphookTestCase):
    def test_message_larger_than_memory_spool_is_intact(self):
        rcv = self.start_receiver()
        self.start_smtphook(rcv, spool={"memory_bytes": 4096, "directory": tempfile.gettempdir()})
        body = b"Subject: spool\r\n\r\n" + b"".join(
            b"%06d " % i + bytes(range(0x80, 0xc0)) + b"\r\n" for i in range(4000))
        reply = self.send_mail(body=body)
        self.assertReply(reply, 250)
        reqs = rcv.wait_for(1)
        self.assertEqual(len(reqs), 1)
        self.assertEqual(reqs[0].body, body)


class ConnectionReuse(SmtphookTestCase):
    def test_twenty_messages_reuse_http_connections(self):
        rcv = self.start_receiver()
        self.start_smtphook(rcv)
        c = self.connect()
        self.ehlo(c)
        for i in range(20):
            r = self.transaction(c, "a@example.org", ["b@example.com"],
                                 b"Subject: %d\r\n\r\nmsg %d\r\n" % (i, i))
            self.assertReply(r, 250, msg="message %d: %s" % (i, r))
        reqs = rcv.wait_for(20)
        self.assertEqual(len(reqs), 20)
        ports = {r.client_port for r in reqs}
        self.assertLessEqual(len(ports), 3, "keep-alive not used: %d TCP connections for 20 "
                             "POSTs" % len(ports))
        self.assertEqual([r.body for r in reqs],
                         [b"Subject: %d\r\n\r\nmsg %d\r\n" % (i, i) for i in range(20)])


class Log(SmtphookTestCase):
    def test_one_transaction_line_with_the_id(self):
        rcv = self.start_receiver()
        sh = self.start_smtphook(rcv)
        reply = self.send_mail()
        self.assertReply(reply, 250)
        rid = rcv.wait_for(1)[0].header("X-Smtphook-Id")
        self.assertIdInReply(rid, reply)
        lines = sh.wait_log(re.escape(rid) + r"(?![\w.])")
        self.assertTrue(lines, "id %s not in the log:\n%s" % (rid, sh.log()))
        time.sleep(0.2)
        lines = [ln for ln in sh.log().splitlines()
                 if re.search(re.escape(rid) + r"(?![\w.])", ln) and "txn" in ln]
        self.assertEqual(len(lines), 1, "expected one transaction line:\n%s" % sh.log())

    def test_client_text_sanitized_in_log(self):
        rcv = self.start_receiver()
        sh = self.start_smtphook(rcv)
        c = self.connect()
        self.assertReply(c.cmd("EHLO h\u00f6st.test"), 250)
        r = self.transaction(c, "j\u00f6s\u00e9@example.org", ["b@example.com"], SIMPLE,
                             mail_params="SMTPUTF8")
        self.assertReply(r, 250)
        rid = rcv.wait_for(1)[0].header("X-Smtphook-Id")
        self.assertTrue(sh.wait_log(re.escape(rid)), sh.log())
        with open(sh.stderr_path, "rb") as f:
            raw = f.read()
        self.assertTrue(all(b == 0x0a or 0x20 <= b < 0x7f for b in raw),
                        "non-printable bytes in the log: %r" % raw[-500:])

    def test_failed_delivery_logged_with_id(self):
        rcv = self.start_receiver(status=503)
        sh = self.start_smtphook(rcv, retry={"max_attempts": 2, "initial_backoff_ms": 50})
        reply = self.send_mail()
        self.assertReply(reply, 451)
        rid = rcv.wait_for(1)[0].header("X-Smtphook-Id")
        lines = sh.wait_log(r"txn id=" + re.escape(rid) + r" client=")
        self.assertEqual(len(lines), 1, "expected one transaction line:\n%s" % sh.log())
        self.assertIn('reply="451 4.3.0"', lines[0])
        self.assertIn("endpoints=app:503:", lines[0])
        self.assertIn(":attempts=2", lines[0])
        # Each attempt that is followed by another one has its own line.
        attempts = sh.wait_log(r"txn id=" + re.escape(rid) + r" endpoint app attempt 1: 451")
        self.assertEqual(len(attempts), 1, sh.log())


if __name__ == "__main__":
    unittest.main()
