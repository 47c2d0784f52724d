"""test_formats.py - what the web app receives in each endpoint format (raw, json, multipart)
and with Standard Webhooks signing: byte-exact messages (8-bit, long lines, dot-leading lines,
30 MB), the envelope, exact Content-Length, the multipart boundary, signatures checked with
Python's hmac and with the official `standardwebhooks` npm package (each format, a retry, a
changed byte), v1a (Ed25519) signatures checked with Python's cryptography and node:crypto
(the package verifies v1 only) and compared with Python's own Ed25519 signature, the README's
test vectors and verification snippets (read from README.md), and --check-config on format
and signing mistakes and the whpk_ keys it prints.

The messages are parsed the way receivers parse them: JSON with Python's json, multipart with
a strict splitter here (RFC 2046 §5.1.1, RFC 7578) and with Node's busboy.
"""

import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

import receiver
from helpers import free_port
import node_receiver
from node_receiver import NodeReceiver, body as node_body, part_bytes
from smtphook_process import make_config, run_binary
from testcase import SmtphookTestCase

receiver.KEEP_BODY_MAX = 64 * 1024 * 1024  # these tests read whole large bodies back

SENDER = "sender@example.org"
SECRET_A = "whsec_" + base64.b64encode(bytes(range(32))).decode()
SECRET_B = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # 24 bytes, no padding (upstream's test)
KEY_RE = r"^[0-9a-f]{64}$"
BIG_LIMIT = 40 * 1024 * 1024  # limits.max_message_bytes: room for the 30 MB messages
# An endpoint header that leaves about 200 bytes of a 4096-byte head (found to work from
# 2850 to 3200 bytes): room for a short
# recipient (about 30 bytes of headers), none for a 64-byte UTF-8 one (about 410)
BIG_HEADER = 3025


def message_8bit():
    """8-bit bytes (Latin-1, not UTF-8), a 1500-byte line, lines that start with a dot, a
    NUL-free binary-ish run, CRLF endings."""
    return (b"From: Ren\xe9 <rene@example.org>\r\nTo: support@example.com\r\n"
            b"Subject: caf\xe9 cr\xe8me\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n\r\n"
            b"Caf\xe9 cr\xe8me \xe0 la fran\xe7aise.\r\n" + b"x" * 1500 + b"\r\n"
            b".leading dot\r\n..two dots\r\n.\xff\xfe\r\n" + bytes(range(1, 256)) + b"\r\n")


def split_multipart(content_type, body):
    """The parts of a multipart/form-data body as [(headers dict, bytes)], checking the
    framing strictly: the first delimiter at the start, CRLF before every later one, the
    close delimiter last, and the boundary nowhere inside a part."""
    m = re.match(r'^multipart/form-data; boundary=([0-9A-Za-z\'()+_,./:=?-]{1,70})$',
                 content_type)
    assert m, content_type
    boundary = m.group(1).encode()
    delim = b"--" + boundary
    assert body.startswith(delim + b"\r\n"), body[:80]
    assert body.endswith(b"\r\n" + delim + b"--\r\n"), body[-80:]
    inner = body[len(delim) + 2:-(len(delim) + 6)]
    parts = []
    for raw in inner.split(b"\r\n" + delim + b"\r\n"):
        head, _, value = raw.partition(b"\r\n\r\n")
        headers = {}
        for line in head.split(b"\r\n"):
            name, _, v = line.partition(b": ")
            headers[name.decode().lower()] = v.decode()
        assert boundary not in value
        parts.append((headers, value))
    return parts


def disposition_name(headers):
    m = re.match(r'^form-data; name="([^"]+)"(?:; filename="([^"]+)")?$',
                 headers["content-disposition"])
    assert m, headers
    return m.group(1), m.group(2)


def sw_signatures(secret, msg_id, ts, body):
    """The v1 signature of Standard Webhooks for one whsec_ secret."""
    b64 = secret[len("whsec_"):]
    key = base64.b64decode(b64 + "=" * (-len(b64) % 4))
    mac = hmac.new(key, b"%s.%s.%s" % (msg_id.encode(), ts.encode(), body), hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def ed25519_pair(fill):
    """A v1a key pair from a fixed seed: ("whsk_" + base64 of the seed, "whpk_" + base64 of
    the public key, the private key object)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    seed = bytes((fill + 7 * i) % 256 for i in range(32))
    key = Ed25519PrivateKey.from_private_bytes(seed)
    pub = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    return ("whsk_" + base64.b64encode(seed).decode(), "whpk_" + base64.b64encode(pub).decode(),
            key)


def sw_signature_any(secret, msg_id, ts, body):
    """The signature smtphook must send for one key: v1 for whsec_, v1a for whsk_ (Ed25519
    is deterministic: Python's own signature of the same content)."""
    if not secret.startswith("whsk_"):
        return sw_signatures(secret, msg_id, ts, body)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    seed = base64.b64decode(secret[len("whsk_"):])[:32]
    sig = Ed25519PrivateKey.from_private_bytes(seed).sign(
        b"%s.%s.%s" % (msg_id.encode(), ts.encode(), body))
    return "v1a," + base64.b64encode(sig).decode()


def v1a_verifies(public_key, headers, body):
    """Does some v1a signature in headers verify with the whpk_ key (Python's cryptography,
    Ed25519PublicKey.verify)?"""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key[len("whpk_"):]))
    content = b"%s.%s.%s" % (headers["webhook-id"].encode(),
                             headers["webhook-timestamp"].encode(), body)
    for sig in headers["webhook-signature"].split(" "):
        version, _, b64 = sig.partition(",")
        if version != "v1a":
            continue
        try:
            key.verify(base64.b64decode(b64), content)
            return True
        except InvalidSignature:
            pass
    return False


def flip_byte(data, at=None):
    """data with one byte changed (the middle one by default)."""
    at = len(data) // 2 if at is None else at
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


def message_30mb():
    """A message of a little over 30 MB: 30,000 lines of 1024 bytes."""
    return b"Subject: big\r\n\r\n" + (b"0123456789abcdef" * 64 + b"\r\n") * 30000


def message_utf8():
    """A UTF-8 message (8-bit, but valid UTF-8): the official npm package verifies it."""
    return ("From: J\u00f6rg <joerg@example.org>\r\nSubject: Gr\u00fc\u00dfe \u2709\r\n"
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            "Stra\u00dfe, caf\u00e9, \u65e5\u672c\u8a9e, \U0001f600.\r\n.leading dot\r\n").encode()


class FormatCase(SmtphookTestCase):

    def start_format(self, fmt=None, settings=None, receiver_obj=None, **behaviour):
        r = receiver_obj or self.start_receiver(**behaviour)
        ep = {"url": r.url(), "timeout_ms": 10000, "connect_timeout_ms": 2000,
              "retry": {"max_attempts": 1}}
        if fmt is not None:
            ep["format"] = fmt
        ep.update(settings or {})
        port = free_port()
        self.start_smtphook(config=make_config(port, None, endpoints={"app": ep},
                                               limits={"max_message_bytes": BIG_LIMIT}),
                            port=port)
        return r

    def retried(self, secrets):
        """A raw message to an endpoint signing with secrets that answers 503 first, then
        200: the two attempts, checked to share their webhook-id and differ in timestamp and
        signature, each signed by every secret (the class's assertSigned)."""
        # Equal jitter waits at least half the backoff: 1.1 s, so the retry's Unix second
        # differs from the first attempt's.
        r = self.start_format("raw", settings={
            "signing": {"scheme": "standard-webhooks", "secrets": secrets},
            "retry": {"max_attempts": 2, "initial_backoff_ms": 2200, "max_backoff_ms": 2200}},
            status=503)
        r.set(status=503)
        c = self.connect()
        self.ehlo(c)
        self.send_message(c, SENDER, ["a@example.com"], b"Subject: retry\r\n\r\nagain\r\n")
        r.wait_for(1)
        r.set(status=200)
        self.assertReply(c.read_reply(10), 250)
        first, second = r.requests
        self.assertEqual(first.header("webhook-id"), second.header("webhook-id"))
        self.assertNotEqual(first.header("webhook-timestamp"), second.header("webhook-timestamp"))
        self.assertNotEqual(first.header("webhook-signature"), second.header("webhook-signature"))
        self.assertSigned(first, secrets)
        self.assertSigned(second, secrets)
        return first, second

    def start_node(self, settings=None, **node_kw):
        """A Node receiver (NodeReceiver(**node_kw)) as the one endpoint "app", no retries,
        with settings merged into the endpoint."""
        node = NodeReceiver(**node_kw)
        node.start()
        self.addCleanup(node.stop)
        port = free_port()
        ep = {"url": node.url(), "retry": {"max_attempts": 1}}
        ep.update(settings or {})
        self.start_smtphook(config=make_config(port, None, endpoints={"app": ep}), port=port)
        return node

    def assertEnvelope(self, env, rcpts, size):
        self.assertEqual(env["mail_from"], SENDER)
        self.assertEqual(env["rcpt_to"], rcpts)
        self.assertEqual(env["size"], size)
        self.assertRegex(env["key"], KEY_RE)
        self.assertEqual(env["client"]["address"], "127.0.0.1")


class JsonFormatTest(FormatCase):

    def test_json_message_base64_and_envelope(self):
        r = self.start_format("json")
        msg = message_8bit()
        rcpts = ["support@example.com", "j\u00f6rg@example.com"]
        reply = self.send_mail(msg, rcpts=rcpts, mail_from=SENDER, mail_params="SMTPUTF8")
        self.assertReply(reply, 250)
        req = r.requests[0]
        self.assertEqual(req.header("Content-Type"), "application/json")
        self.assertEqual(int(req.header("Content-Length")), len(req.body))
        self.assertIsNone(req.header("X-Smtphook-Envelope"))
        doc = json.loads(req.body)
        self.assertEqual(sorted(doc), ["envelope", "message"])
        self.assertEqual(base64.b64decode(doc["message"], validate=True), msg)
        self.assertEnvelope(doc["envelope"], rcpts, len(msg))
        self.assertEqual(doc["envelope"]["key"], req.header("Idempotency-Key"))
        self.assertEqual(doc["envelope"]["id"], req.header("X-Smtphook-Id"))
        self.assertTrue(doc["envelope"]["params"]["smtputf8"])

    def test_json_many_long_utf8_recipients_stay_in_the_body(self):
        """1000 recipients of 64-byte UTF-8 local parts: far past any header limit, in the
        body the envelope has no limit but the message's."""
        r = self.start_format("json")
        rcpts = ["%04d-%s@example.com" % (i, "\u00e9" * 28) for i in range(1000)]
        c = self.connect()
        self.ehlo(c)
        self.assertReply(c.cmd("MAIL FROM:<%s> SMTPUTF8" % SENDER), 250)
        # RCPTs pipelined in one write, replies read after (PIPELINING)
        c.send(b"".join(("RCPT TO:<%s>\r\n" % a).encode() for a in rcpts))
        self.assertReply(c.read_reply(), 250)
        ok = sum(1 for _ in range(len(rcpts) - 1) if c.read_reply().code == 250)
        self.assertEqual(ok + 1, 100)  # limits.max_recipients: the rest got 452
        reply = self.transaction_data(c, b"Subject: many\r\n\r\nhi\r\n")
        self.assertReply(reply, 250)
        doc = json.loads(r.requests[0].body)
        self.assertEqual(doc["envelope"]["rcpt_to"], rcpts[:100])

    def transaction_data(self, c, body):
        self.assertReply(c.cmd("DATA"), 354)
        c.send(body.replace(b"\r\n.", b"\r\n..") + b".\r\n")
        return c.read_reply()

    def test_json_30mb_message(self):
        r = self.start_format("json")
        msg = message_30mb()
        reply = self.send_mail(msg, rcpts=["big@example.com"], mail_from=SENDER,
                               reply_timeout=60)
        self.assertReply(reply, 250)
        req = r.requests[0]
        self.assertEqual(req.length, int(req.header("Content-Length")))
        doc = json.loads(req.body)
        self.assertEqual(hashlib.sha256(base64.b64decode(doc["message"])).digest(),
                         hashlib.sha256(msg).digest())
        self.assertEqual(doc["envelope"]["size"], len(msg))


class MultipartFormatTest(FormatCase):

    def test_multipart_parts_exact(self):
        r = self.start_format("multipart")
        msg = message_8bit()
        reply = self.send_mail(msg, rcpts=["support@example.com"], mail_from=SENDER)
        self.assertReply(reply, 250)
        req = r.requests[0]
        self.assertEqual(int(req.header("Content-Length")), len(req.body))
        ctype = req.header("Content-Type")
        self.assertRegex(ctype, r"boundary=smtphook-[0-9a-f]{31}$")
        parts = split_multipart(ctype, req.body)
        self.assertEqual(len(parts), 2)
        (h1, envelope), (h2, message) = parts
        self.assertEqual(disposition_name(h1), ("envelope", None))
        self.assertEqual(h1["content-type"], "application/json")
        self.assertEnvelope(json.loads(envelope), ["support@example.com"], len(msg))
        self.assertEqual(disposition_name(h2), ("message", "message.eml"))
        self.assertEqual(h2["content-type"], "message/rfc822")
        self.assertEqual(message, msg)
        self.assertEqual(req.header("Idempotency-Key"), json.loads(envelope)["key"])

    def test_multipart_parsed_by_pythons_email(self):
        """Python's email package reads the form as MIME: two form-data parts, the message
        part a message/rfc822 whose headers it parses."""
        import email
        import email.policy
        r = self.start_format("multipart")
        msg = b"From: a@example.org\r\nSubject: parsed\r\n\r\nHello.\r\n"
        self.assertReply(self.send_mail(msg, rcpts=["support@example.com"]), 250)
        req = r.requests[0]
        doc = email.message_from_bytes(
            b"Content-Type: " + req.header("Content-Type").encode() + b"\r\n\r\n" + req.body,
            policy=email.policy.HTTP)
        self.assertTrue(doc.is_multipart())
        env, message = doc.get_payload()
        self.assertEqual(env.get_param("name", header="content-disposition"), "envelope")
        self.assertEqual(json.loads(env.get_payload(decode=True))["rcpt_to"],
                         ["support@example.com"])
        self.assertEqual(message.get_filename(), "message.eml")
        self.assertEqual(message.get_content_type(), "message/rfc822")
        self.assertEqual(message.get_payload()[0]["Subject"], "parsed")

    def test_multipart_boundary_differs_per_message(self):
        r = self.start_format("multipart")
        for _ in range(2):
            self.assertReply(self.send_mail(b"Subject: a\r\n\r\nb\r\n"), 250)
        b = [q.header("Content-Type").split("boundary=")[1] for q in r.requests]
        self.assertNotEqual(b[0], b[1])

    def test_multipart_30mb_message(self):
        r = self.start_format("multipart")
        msg = b"Subject: big\r\n\r\n" + (bytes(range(256)).replace(b"\n", b"") + b"\r\n") * 120000
        reply = self.send_mail(msg, rcpts=["big@example.com"], mail_from=SENDER,
                               reply_timeout=60)
        self.assertReply(reply, 250)
        req = r.requests[0]
        self.assertEqual(req.length, int(req.header("Content-Length")))
        parts = split_multipart(req.header("Content-Type"), req.body)
        self.assertEqual(parts[1][1], msg)

    def test_multipart_parsed_by_busboy(self):
        node = self.start_node({"format": "multipart"})
        msg = message_8bit()
        self.assertReply(self.send_mail(msg, rcpts=["support@example.com"],
                                        mail_from=SENDER), 250)
        req = node.wait_requests(1)[0]
        parts = {p["name"]: p for p in req["multipart"]["parts"]}
        self.assertEqual(sorted(parts), ["envelope", "message"])
        self.assertEqual(json.loads(part_bytes(parts["envelope"]))["rcpt_to"],
                         ["support@example.com"])
        # busboy takes a part with a filename as a file: its bytes come back unchanged
        self.assertEqual(parts["message"]["filename"], "message.eml")
        self.assertEqual(part_bytes(parts["message"]), msg)


    def test_multipart_utf8_addresses_parsed_by_busboy(self):
        node = self.start_node({"format": "multipart"})
        sender, rcpts = "s\u00e9nder@example.org", ["j\u00f6rg@example.com", "\u2709@example.com"]
        msg = ("From: %s\r\nTo: %s\r\nSubject: \u00fc\r\n\r\n.dot\r\n%s\r\n"
               % (sender, rcpts[0], "\u00e9" * 499)).encode()
        self.assertReply(self.send_mail(msg, rcpts=rcpts, mail_from=sender,
                                        mail_params="SMTPUTF8"), 250)
        req = node.wait_requests(1)[0]
        parts = {p["name"]: p for p in req["multipart"]["parts"]}
        env = json.loads(part_bytes(parts["envelope"]))
        self.assertEqual((env["mail_from"], env["rcpt_to"]), (sender, rcpts))
        self.assertTrue(env["params"]["smtputf8"])
        self.assertEqual(part_bytes(parts["message"]), msg)

    def test_multipart_100_recipients_parsed_by_pythons_email(self):
        import email
        import email.policy
        r = self.start_format("multipart")
        rcpts = ["r%03d@example.com" % i for i in range(100)]
        msg = b"Subject: many\r\n\r\n" + b"." * 998 + b"\r\n.\r\n" + message_8bit()
        self.assertReply(self.send_mail(msg, rcpts=rcpts, mail_from=SENDER), 250)
        req = r.requests[0]
        doc = email.message_from_bytes(
            b"Content-Type: " + req.header("Content-Type").encode() + b"\r\n\r\n" + req.body,
            policy=email.policy.HTTP)
        env, message = doc.get_payload()
        self.assertEnvelope(json.loads(env.get_payload(decode=True)), rcpts, len(msg))
        self.assertEqual(message.get_content_type(), "message/rfc822")
        self.assertEqual(message.get_payload()[0]["Subject"], "many")
        # the email package parses a message/rfc822 part instead of keeping its bytes: the
        # strict splitter checks them
        self.assertEqual(split_multipart(req.header("Content-Type"), req.body)[1][1], msg)


class SigningTest(FormatCase):

    def signed(self, fmt, secrets, **behaviour):
        return self.start_format(fmt, settings={"signing": {"scheme": "standard-webhooks",
                                                            "secrets": secrets}}, **behaviour)

    def assertSigned(self, req, secrets):
        msg_id = req.header("webhook-id")
        ts = req.header("webhook-timestamp")
        self.assertEqual(msg_id, req.header("Idempotency-Key"))
        self.assertLess(abs(int(ts) - time.time()), 10)
        sigs = req.header("webhook-signature").split(" ")
        self.assertEqual(sigs, [sw_signature_any(s, msg_id, ts, req.body) for s in secrets])

    def test_each_secret_signs_each_format(self):
        for fmt in ("raw", "json", "multipart"):
            with self.subTest(fmt=fmt):
                r = self.signed(fmt, [SECRET_A, SECRET_B])
                self.assertReply(self.send_mail(message_8bit()), 250)
                req = r.requests[0]
                self.assertSigned(req, [SECRET_A, SECRET_B])
                # a tampered body fails
                tampered = req.body[:-3] + b"XYZ"
                self.assertNotIn(sw_signatures(SECRET_A, req.header("webhook-id"),
                                               req.header("webhook-timestamp"), tampered),
                                 req.header("webhook-signature"))
                self._stop_smtphook(self.sh)

    def test_large_body_signed_in_steps(self):
        r = self.signed("json", [SECRET_A])
        msg = b"Subject: big\r\n\r\n" + b"y" * (3 * 1024 * 1024) + b"\r\n"
        self.assertReply(self.send_mail(msg, reply_timeout=30), 250)
        self.assertSigned(r.requests[0], [SECRET_A])

    def test_retry_new_timestamp_same_id(self):
        self.retried([SECRET_A])

    def test_verified_by_standardwebhooks_package(self):
        """The official npm package verifies UTF-8 bodies only (it decodes the body as text
        before the HMAC), so the message here is UTF-8; 8-bit bodies are checked above."""
        other = "whsec_" + base64.b64encode(b"another secret, 32 bytes long!!!").decode()
        node = NodeReceiver(secrets=[SECRET_B, SECRET_A, other])
        node.start()
        self.addCleanup(node.stop)
        port = free_port()
        # rotation: smtphook signs with the old and the new secret; a receiver that knows
        # either verifies, one that knows neither does not
        ep = {"url": node.url(), "format": "json", "retry": {"max_attempts": 1},
              "signing": {"scheme": "standard-webhooks", "secrets": [SECRET_A, SECRET_B]}}
        self.start_smtphook(config=make_config(port, None, endpoints={"app": ep}), port=port)
        msg = "Subject: Gr\u00fc\u00dfe\r\n\r\nUTF-8 \u2709 body\r\n".encode()
        self.assertReply(self.send_mail(msg, mail_params="SMTPUTF8"), 250)
        req = node.wait_requests(1)[0]
        results = {v["index"]: v for v in req["webhook"]["v1"]}
        self.assertTrue(results[0]["ok"], results)  # SECRET_B: the new one
        self.assertTrue(results[1]["ok"], results)  # SECRET_A: the old one
        self.assertFalse(results[2]["ok"], results)  # a secret smtphook does not have
        self.assertEqual(len(req["webhook"]["signatures"]), 2)

    def start_node_signed(self, fmt, secrets, status=200, retry=None):
        return self.start_node({"format": fmt, "retry": retry or {"max_attempts": 1},
                                "signing": {"scheme": "standard-webhooks", "secrets": secrets}},
                               secrets=secrets, status=status)

    def assertNodeRecordSigned(self, req, secrets):
        """Python's hmac finds the signatures of a request the Node receiver recorded."""
        h = req["headers"]
        self.assertEqual(h["webhook-signature"].split(" "),
                         [sw_signatures(s, h["webhook-id"], h["webhook-timestamp"],
                                        node_body(req)) for s in secrets])

    def assertPackageRejectsTampered(self, req, secret):
        """The recorded request verifies with the package alone; with one byte of its body
        changed, or its timestamp moved by a second, verify throws."""
        h = {k: v for k, v in req["headers"].items() if k.startswith("webhook-")}
        body = node_body(req)
        moved = dict(h, **{"webhook-timestamp": str(int(h["webhook-timestamp"]) - 1)})
        same, tampered, retimed = node_receiver.verify([
            {"secret": secret, "headers": h, "body": body},
            {"secret": secret, "headers": h, "body": flip_byte(body)},
            {"secret": secret, "headers": moved, "body": body}])
        self.assertTrue(same["ok"], same)
        for r in (tampered, retimed):
            self.assertFalse(r["ok"], r)
            self.assertEqual(r["error_name"], "WebhookVerificationError", r)
            self.assertEqual(r["error"], "No matching signature found", r)

    def test_node_package_verifies_raw_and_multipart(self):
        """raw and multipart bodies carry the message's bytes: a UTF-8 message verifies with
        the official package, in the receiver and handed to it alone, and fails with a byte
        changed. An 8-bit (Latin-1) one does not verify with the package, which decodes the
        body as UTF-8 before the HMAC (as the README says), but with node:crypto over the
        raw bytes and with Python's hmac it does."""
        for fmt in ("raw", "multipart"):
            for name, msg in (("utf8", message_utf8()), ("8bit", message_8bit())):
                with self.subTest(fmt=fmt, message=name):
                    node = self.start_node_signed(fmt, [SECRET_A, SECRET_B])
                    self.assertReply(self.send_mail(msg, mail_params="SMTPUTF8"), 250)
                    req = node.wait_requests(1)[0]
                    self.assertEqual(len(node.requests()), 1)
                    body = node_body(req)
                    self.assertIn(msg, body)  # the message's bytes, unchanged, in the body
                    self.assertEqual(req["webhook"]["body_is_utf8"], name == "utf8")
                    self.assertNodeRecordSigned(req, [SECRET_A, SECRET_B])
                    v1 = req["webhook"]["v1"]
                    self.assertEqual([v["raw_hmac_match"] for v in v1], [True, True], v1)
                    if name == "utf8":
                        self.assertEqual([v["ok"] for v in v1], [True, True], v1)
                        self.assertPackageRejectsTampered(req, SECRET_A)
                        self.assertPackageRejectsTampered(req, SECRET_B)
                    else:
                        self.assertEqual([v.get("error") for v in v1],
                                         ["No matching signature found"] * 2, v1)
                    if fmt == "multipart":
                        parts = {p["name"]: p for p in req["multipart"]["parts"]}
                        self.assertEqual(part_bytes(parts["message"]), msg)
                    self._stop_smtphook(self.sh)
                    node.stop()

    def test_node_package_verifies_a_retry(self):
        """The endpoint answers 503, then 200: two requests, the same webhook-id, each with
        its own timestamp and signature, both verified by the package."""
        node = self.start_node_signed("raw", [SECRET_A], status=[503, 200], retry={
            "max_attempts": 2, "initial_backoff_ms": 2200, "max_backoff_ms": 2200})
        reply = self.send_mail(message_utf8(), mail_params="SMTPUTF8", reply_timeout=15)
        self.assertReply(reply, 250)
        first, second = node.wait_requests(2)
        self.assertEqual(len(node.requests()), 2)
        self.assertEqual(first["headers"]["webhook-id"], second["headers"]["webhook-id"])
        self.assertEqual(first["headers"]["webhook-id"], first["headers"]["idempotency-key"])
        self.assertLess(int(first["headers"]["webhook-timestamp"]),
                        int(second["headers"]["webhook-timestamp"]))
        self.assertNotEqual(first["headers"]["webhook-signature"],
                            second["headers"]["webhook-signature"])
        self.assertEqual(node_body(first), node_body(second))
        for req in (first, second):
            self.assertTrue(req["webhook"]["v1"][0]["ok"], req["webhook"])
            self.assertNodeRecordSigned(req, [SECRET_A])
            self.assertPackageRejectsTampered(req, SECRET_A)
        # the first attempt's signature does not verify the second's timestamp
        crossed = dict(second["headers"], **{"webhook-signature":
                                             first["headers"]["webhook-signature"]})
        r, = node_receiver.verify([{"secret": SECRET_A, "headers": crossed,
                                    "body": node_body(second)}])
        self.assertFalse(r["ok"], r)


ED_A, ED_A_PUB, _ = ed25519_pair(1)
ED_B, ED_B_PUB, _ = ed25519_pair(100)
ED_OTHER, ED_OTHER_PUB, _ = ed25519_pair(200)  # a key smtphook does not have

# node:crypto's Ed25519 verify of cases [{public_key, headers, body_b64}], one result each.
NODE_ED25519_VERIFY = r"""
const crypto = require('crypto');
const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));
console.log(JSON.stringify(cases.map((c) => {
  const x = Buffer.from(c.public_key.replace(/^whpk_/, ''), 'base64').toString('base64url');
  const key = crypto.createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
  const h = c.headers;
  const signed = Buffer.concat([Buffer.from(`${h['webhook-id']}.${h['webhook-timestamp']}.`),
                                Buffer.from(c.body_b64, 'base64')]);
  return h['webhook-signature'].split(' ').some((s) => {
    const [v, b64] = s.split(',');
    return v === 'v1a' && crypto.verify(null, signed, key, Buffer.from(b64, 'base64'));
  });
})));
"""


def node_ed25519_verify(cases):
    """node:crypto's verdicts on [(whpk_ key, headers, body)]."""
    node_receiver.install()  # skips without node
    payload = [{"public_key": k, "headers": h, "body_b64": base64.b64encode(b).decode()}
               for k, h, b in cases]
    r = subprocess.run(["node", "-e", NODE_ED25519_VERIFY], input=json.dumps(payload).encode(),
                       capture_output=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError("node failed: %s" % r.stderr.decode())
    return json.loads(r.stdout)


class V1aSigningTest(FormatCase):
    """Standard Webhooks v1a: whsk_ keys sign with Ed25519, alone or beside whsec_ secrets,
    every signature in the keys' order; each is exactly Python's Ed25519 signature of the
    content, verifies with the whpk_ key (Python's cryptography, node:crypto in the Node
    receiver) and fails on a changed byte."""

    signed = SigningTest.signed
    assertSigned = SigningTest.assertSigned

    def headers(self, req):
        return {k: req.header(k) for k in ("webhook-id", "webhook-timestamp",
                                           "webhook-signature")}

    def test_v1a_alone_and_mixed_each_format(self):
        for fmt in ("raw", "json", "multipart"):
            for keys in ([ED_A], [ED_A, SECRET_A, ED_B]):
                with self.subTest(fmt=fmt, keys=len(keys)):
                    r = self.signed(fmt, keys)
                    self.assertReply(self.send_mail(message_8bit()), 250)
                    req = r.requests[0]
                    self.assertSigned(req, keys)
                    h = self.headers(req)
                    self.assertTrue(v1a_verifies(ED_A_PUB, h, req.body))
                    self.assertEqual(v1a_verifies(ED_B_PUB, h, req.body), len(keys) > 1)
                    self.assertFalse(v1a_verifies(ED_OTHER_PUB, h, req.body))
                    self.assertFalse(v1a_verifies(ED_A_PUB, h, flip_byte(req.body)))
                    self.assertFalse(v1a_verifies(ED_A_PUB, h, req.body[:-1]))
                    self._stop_smtphook(self.sh)

    def test_v1a_30mb_json(self):
        """A 30 MB message as json (about 40 MB of body, signed in two passes of steps)."""
        r = self.signed("json", [SECRET_A, ED_A])
        msg = message_30mb()
        reply = self.send_mail(msg, rcpts=["big@example.com"], mail_from=SENDER,
                               reply_timeout=120)
        self.assertReply(reply, 250)
        req = r.requests[0]
        self.assertGreater(req.length, 40 * 1000 * 1000)
        self.assertSigned(req, [SECRET_A, ED_A])
        self.assertTrue(v1a_verifies(ED_A_PUB, self.headers(req), req.body))
        self.assertFalse(v1a_verifies(ED_A_PUB, self.headers(req), flip_byte(req.body)))

    def test_v1a_retry_new_timestamp_new_signature(self):
        first, second = self.retried([ED_A])
        crossed = dict(self.headers(second),
                       **{"webhook-signature": first.header("webhook-signature")})
        self.assertFalse(v1a_verifies(ED_A_PUB, crossed, second.body))

    def test_v1a_verified_by_node_receiver(self):
        """The Node receiver verifies v1a with node:crypto and the whpk_ key (the official
        package verifies v1 only), v1 with the package; a recorded request with a changed
        byte fails node:crypto's verify."""
        for fmt in ("raw", "json"):
            with self.subTest(fmt=fmt):
                node = self.start_node({"format": fmt, "signing": {
                    "scheme": "standard-webhooks", "secrets": [ED_A, SECRET_A]}},
                    secrets=[SECRET_A], public_keys=[ED_A_PUB, ED_OTHER_PUB])
                self.assertReply(self.send_mail(message_utf8(), mail_params="SMTPUTF8"), 250)
                req = node.wait_requests(1)[0]
                wh = req["webhook"]
                self.assertEqual(len(wh["signatures"]), 2)
                self.assertTrue(wh["signatures"][0].startswith("v1a,"), wh)
                self.assertEqual([v["ok"] for v in wh["v1a"]], [True, False], wh)
                self.assertEqual([v["ok"] for v in wh["v1"]], [True], wh)
                h = {k: v for k, v in req["headers"].items() if k.startswith("webhook-")}
                body = node_body(req)
                self.assertTrue(v1a_verifies(ED_A_PUB, h, body))
                self.assertEqual(node_ed25519_verify([(ED_A_PUB, h, body),
                                                      (ED_A_PUB, h, flip_byte(body)),
                                                      (ED_OTHER_PUB, h, body)]),
                                 [True, False, False])
                self._stop_smtphook(self.sh)
                node.stop()


README = os.path.join(os.environ.get("SMTPHOOK_SOURCE_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", ".."), "README.md")
SIGNING_SECTION = "### Signed requests (Standard Webhooks)"
V1A_SECTION = "### Ed25519 keys (Standard Webhooks v1a)"
VECTOR_ROW = re.compile(r"^\| `(whsec_[^`]+)` \| `([^`]+)` \| `([0-9]+)` \| `([^`]*)` \| "
                        r"`(v1,[^`]+)` \|$")

# The README's JavaScript and Ruby snippets run inside these, with the free names they use
# (secret, rawBody / raw_body, req, id, ts, sig) bound to each case; cases come as JSON on
# stdin, one result each comes back: {"ok": the snippet's ok} or {"threw": message}.
JS_HARNESS = """
const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const realNow = Date.now;
const out = cases.map((c) => {
  const secret = c.secret, rawBody = Buffer.from(c.body_b64, 'base64'), req = { headers: c.headers };
  const id = c.headers['webhook-id'], ts = c.headers['webhook-timestamp'];
  const sig = c.headers['webhook-signature'];
  if (c.now != null) Date.now = () => c.now * 1000;
  try {
    return (() => {
%s
      return { ok: typeof ok === 'undefined' ? null : ok };
    })();
  } catch (e) {
    return { threw: String(e && e.message) };
  } finally {
    Date.now = realNow;
  }
});
process.stdout.write(JSON.stringify(out));
"""
RUBY_HARNESS = """
require "json"; require "base64"
out = JSON.parse(STDIN.read).map do |c|
  secret, h = c["secret"], c["headers"]
  id, ts, sig = h["webhook-id"], h["webhook-timestamp"], h["webhook-signature"]
  raw_body = Base64.decode64(c["body_b64"])
%s
  {"ok" => ok}
end
print JSON.generate(out)
"""


def readme_signing_section(title=SIGNING_SECTION):
    with open(README, encoding="utf-8") as f:
        text = f.read()
    start = text.index(title)
    end = text.find("\n#", start + len(title))
    return text[start:end if end >= 0 else len(text)]


def readme_v1a_blocks(lang):
    """The code of the README v1a section's ```lang blocks, in order."""
    return re.findall(r"^```%s\n(.*?)^```$" % lang, readme_signing_section(V1A_SECTION),
                      re.S | re.M)


def readme_vectors():
    """The test vectors of the README's signing section: (secret, id, timestamp, body,
    signature) per table row."""
    rows = []
    for line in readme_signing_section().splitlines():
        if line.startswith("| `whsec_"):
            m = VECTOR_ROW.match(line)
            assert m, "a vector row the test cannot read: %r" % line
            rows.append(m.groups())
    return rows


def readme_snippet(lang):
    """The code of the README signing section's one ```lang block."""
    blocks = re.findall(r"^```%s\n(.*?)^```$" % lang, readme_signing_section(), re.S | re.M)
    assert len(blocks) == 1, "%d ```%s blocks in the signing section" % (len(blocks), lang)
    return blocks[0]


def run_snippet(test, cmd, harness, code, cases):
    """Run a README snippet in its harness over cases (dicts of secret, headers, body and
    optionally now); return the harness's results."""
    payload = [dict({k: v for k, v in c.items() if k != "body"},
                    body_b64=base64.b64encode(c["body"]).decode()) for c in cases]
    with tempfile.NamedTemporaryFile("w", suffix=".src", delete=False) as f:
        f.write(harness % code)
    test.addCleanup(os.unlink, f.name)
    env = dict(os.environ)
    if cmd == "node":
        env["NODE_PATH"] = node_receiver.install()
    r = subprocess.run([cmd, f.name], input=json.dumps(payload).encode(), capture_output=True,
                       env=env, timeout=60)
    test.assertEqual(r.returncode, 0, r.stderr.decode())
    return json.loads(r.stdout)


def vector_case(vector, body=None):
    secret, msg_id, ts, vbody, sig = vector
    return {"secret": secret, "now": int(ts), "body": vbody.encode() if body is None else body,
            "headers": {"webhook-id": msg_id, "webhook-timestamp": ts,
                        "webhook-signature": sig}}


class ReadmeSigningTest(FormatCase):
    """The README's signing section: each published test vector is checked with Python's
    hmac and with the official npm package (its clock set to the vector's timestamp), and so
    are its Python, JavaScript and Ruby snippets, on the vectors and on a request smtphook
    signed; a byte changed fails each of them."""

    def setUp(self):
        self.vectors = readme_vectors()
        self.assertGreaterEqual(len(self.vectors), 2, "the README's test vectors")

    def test_vectors_python_hmac(self):
        for secret, msg_id, ts, body, sig in self.vectors:
            with self.subTest(id=msg_id):
                self.assertEqual(sw_signatures(secret, msg_id, ts, body.encode()), sig)
                self.assertNotEqual(sw_signatures(secret, msg_id, ts,
                                                  flip_byte(body.encode())), sig)

    def test_vectors_npm_package(self):
        cases = [vector_case(v) for v in self.vectors]
        cases += [vector_case(v, flip_byte(v[3].encode())) for v in self.vectors]
        results = node_receiver.verify(cases)
        n = len(self.vectors)
        for v, good, bad in zip(self.vectors, results[:n], results[n:]):
            with self.subTest(id=v[1]):
                self.assertEqual(good, {"ok": True, "signature": v[4]})
                self.assertFalse(bad["ok"], bad)
                self.assertEqual(bad["error"], "No matching signature found")
        # and outside its 5-minute window the package refuses the (old) vector
        stale = node_receiver.verify([dict(vector_case(self.vectors[0]), now=None)])
        self.assertEqual(stale[0]["error"], "Message timestamp too old")

    def readme_python_verify(self):
        ns = {}
        exec(compile(readme_snippet("python"), README + " (python)", "exec"), ns)
        return ns["verify"]

    def test_python_snippet(self):
        from unittest import mock
        verify = self.readme_python_verify()
        for secret, msg_id, ts, body, sig in self.vectors:
            with self.subTest(id=msg_id):
                headers = {"webhook-id": msg_id, "webhook-timestamp": ts,
                           "webhook-signature": sig}
                with mock.patch("time.time", return_value=int(ts) + 10):
                    self.assertTrue(verify(secret, headers, body.encode()))
                    self.assertFalse(verify(secret, headers, flip_byte(body.encode())))
                with mock.patch("time.time", return_value=int(ts) + 301):
                    self.assertFalse(verify(secret, headers, body.encode()))

    def test_js_snippet(self):
        cases = [vector_case(v) for v in self.vectors]
        cases += [vector_case(v, flip_byte(v[3].encode())) for v in self.vectors]
        results = run_snippet(self, "node", JS_HARNESS, readme_snippet("js"), cases)
        n = len(self.vectors)
        self.assertEqual(results[:n], [{"ok": True}] * n)
        # the package's verify, the snippet's first line, throws on a changed byte
        self.assertEqual(results[n:], [{"threw": "No matching signature found"}] * n)

    def test_ruby_snippet(self):
        if not shutil.which("ruby"):
            self.skipTest("ruby not installed")
        cases = [vector_case(v) for v in self.vectors]
        cases += [vector_case(v, flip_byte(v[3].encode())) for v in self.vectors]
        results = run_snippet(self, "ruby", RUBY_HARNESS, readme_snippet("ruby"), cases)
        n = len(self.vectors)
        self.assertEqual(results, [{"ok": True}] * n + [{"ok": False}] * n)

    def test_snippets_verify_a_request_smtphook_signed(self):
        """An 8-bit message signed by smtphook now: the Python snippet, the JavaScript
        snippet's node:crypto lines (its package line is for UTF-8 bodies) and the Ruby
        snippet verify it; with a byte changed none does."""
        r = self.signed_raw()
        self.assertReply(self.send_mail(message_8bit()), 250)
        req = r.requests[0]
        headers = {k: req.header(k) for k in ("webhook-id", "webhook-timestamp",
                                              "webhook-signature")}
        verify = self.readme_python_verify()
        self.assertTrue(verify(SECRET_B, headers, req.body))
        self.assertFalse(verify(SECRET_B, headers, flip_byte(req.body)))
        cases = [{"secret": SECRET_B, "headers": headers, "body": req.body},
                 {"secret": SECRET_B, "headers": headers, "body": flip_byte(req.body)}]
        js = readme_snippet("js")
        crypto_lines = js[js.index('const crypto = require("crypto");'):]
        self.assertEqual(run_snippet(self, "node", JS_HARNESS, crypto_lines, cases),
                         [{"ok": True}, {"ok": False}])
        if shutil.which("ruby"):
            self.assertEqual(run_snippet(self, "ruby", RUBY_HARNESS, readme_snippet("ruby"),
                                         cases), [{"ok": True}, {"ok": False}])

    def signed_raw(self):
        return self.start_format("raw", settings={"signing": {"scheme": "standard-webhooks",
                                                              "secrets": [SECRET_B]}})


class ReadmeV1aTest(FormatCase):
    """The README's v1a section: its key-pair recipes (Python, Node) make a pair smtphook
    signs with and --check-config prints the whpk_ key of, as the section shows it; its
    Python and JavaScript verifiers accept a request smtphook signed and refuse it with a
    byte changed (and the Python one when the timestamp is old)."""

    def make_pair_python(self):
        code = readme_v1a_blocks("python")
        self.assertEqual(len(code), 2, "the keygen and verify ```python blocks")
        r = subprocess.run(["python3", "-c", code[0]], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        sk, pk = r.stdout.split()
        return sk, pk

    def assertPair(self, sk, pk):
        self.assertRegex(sk, r"^whsk_[A-Za-z0-9+/]{43}=$")
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(sk[5:]))
        pub = key.public_key().public_bytes(serialization.Encoding.Raw,
                                            serialization.PublicFormat.Raw)
        self.assertEqual(pk, "whpk_" + base64.b64encode(pub).decode())
        r = check_config(self, {"url": "http://127.0.0.1:9/in", "signing": {
            "scheme": "standard-webhooks", "secrets": [sk]}})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("the receiver verifies with %s\n" % pk, r.stdout)

    def test_python_key_pair(self):
        self.assertPair(*self.make_pair_python())

    def test_node_key_pair(self):
        node_receiver.install()  # skips without node
        m = re.search(r"node -e '(.*?)'", readme_signing_section(V1A_SECTION), re.S)
        self.assertIsNotNone(m)
        r = subprocess.run(["node", "-e", m.group(1)], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertPair(*r.stdout.split())

    def test_check_config_line_as_shown(self):
        """The section's --check-config line is what smtphook prints for RFC 8032 TEST 1's
        seed as the second key."""
        line = next(l.strip() for l in readme_signing_section(V1A_SECTION).splitlines()
                    if l.strip().startswith("endpoint app: signing.secrets[1]"))
        seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
        r = check_config(self, {"url": "http://127.0.0.1:9/in", "signing": {
            "scheme": "standard-webhooks",
            "secrets": [SECRET_A, "whsk_" + base64.b64encode(seed).decode()]}})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(line + "\n", r.stdout)

    def test_verifiers_on_a_request_smtphook_signed(self):
        from unittest import mock
        sk, pk = self.make_pair_python()
        r = self.start_format("raw", settings={"signing": {"scheme": "standard-webhooks",
                                                           "secrets": [SECRET_A, sk]}})
        self.assertReply(self.send_mail(message_8bit()), 250)
        req = r.requests[0]
        headers = {k: req.header(k) for k in ("webhook-id", "webhook-timestamp",
                                              "webhook-signature")}
        ns = {}
        exec(compile(readme_v1a_blocks("python")[1], README + " (v1a python)", "exec"), ns)
        verify_v1a = ns["verify_v1a"]
        self.assertTrue(verify_v1a(pk, headers, req.body))
        self.assertFalse(verify_v1a(pk, headers, flip_byte(req.body)))
        self.assertFalse(verify_v1a(ED_OTHER_PUB, headers, req.body))
        with mock.patch("time.time", return_value=int(headers["webhook-timestamp"]) + 301):
            self.assertFalse(verify_v1a(pk, headers, req.body))
        js, = readme_v1a_blocks("js")
        harness = JS_HARNESS.replace("const secret = c.secret", "const publicKey = c.secret")
        self.assertNotEqual(harness, JS_HARNESS)
        cases = [{"secret": pk, "headers": headers, "body": req.body},
                 {"secret": pk, "headers": headers, "body": flip_byte(req.body)},
                 {"secret": ED_OTHER_PUB, "headers": headers, "body": req.body}]
        self.assertEqual(run_snippet(self, "node", harness, js, cases),
                         [{"ok": True}, {"ok": False}, {"ok": False}])


class HeaderLimitTest(FormatCase):
    """format raw carries the envelope in headers: past max_header_bytes, recipients get
    452 4.5.3 and go in the next transaction, so a receiver's header limit (Node.js: 16 KiB)
    is never reached and nothing loops on 451."""

    def send_all(self, rcpts):
        """Deliver to every recipient as a real client does: each transaction takes those
        that got 250, those that got 452 go again in the next one. Returns the number of
        transactions and the 452 replies seen."""
        left, rounds, soft = list(rcpts), 0, []
        c = self.connect()
        self.ehlo(c)
        while left:
            rounds += 1
            self.assertReply(c.cmd("MAIL FROM:<%s> SMTPUTF8" % SENDER), 250)
            taken = []
            for a in left:
                r = c.cmd("RCPT TO:<%s>" % a)
                if r.code == 250:
                    taken.append(a)
                else:
                    self.assertReply(r, 452, "4.5.3")
                    soft.append(r)
            self.assertTrue(taken, "a transaction must take at least one recipient")
            self.assertReply(c.cmd("DATA"), 354)
            c.send(b"Subject: many\r\n\r\nhi\r\n.\r\n")
            self.assertReply(c.read_reply(), 250)
            left = [a for a in left if a not in taken]
        return rounds, soft

    def test_node_header_limit_is_never_hit(self):
        node = self.start_node()  # raw, max_header_bytes 16 KiB
        rcpts = ["%03d-%s@example.com" % (i, "\u00e9" * 30) for i in range(100)]
        rounds, soft = self.send_all(rcpts)
        self.assertGreater(rounds, 2)
        self.assertIn("send the others later", str(soft[0]))
        got = []
        for req in node.wait_requests(rounds):
            head = sum(len(k) + len(v) + 4 for k, v in req["headers"].items())
            self.assertLess(head, 16384)
            env = json.loads(req["headers"]["x-smtphook-envelope"])
            got += env["rcpt_to"]
        self.assertEqual(sorted(got), sorted(rcpts))

    def test_recipient_that_cannot_fit_alone_is_refused(self):
        r = self.start_format("raw", settings={"max_header_bytes": 4096,
                                               "headers": {"X-Big": "b" * BIG_HEADER}})
        c = self.connect()
        self.ehlo(c)
        self.assertReply(c.cmd("MAIL FROM:<%s> SMTPUTF8" % SENDER), 250)
        self.assertReply(c.cmd("RCPT TO:<%s@example.com>" % ("\u00e9" * 32)), 550, "5.3.4")
        self.assertReply(c.cmd("RCPT TO:<a@example.com>"), 250)
        self.assertNoRequests(r, settle=0.1)

    def test_json_is_not_limited(self):
        r = self.start_format("json", settings={"max_header_bytes": 4096})
        rounds, soft = self.send_all(["%03d-%s@example.com" % (i, "x" * 50) for i in range(100)])
        self.assertEqual((rounds, soft), (1, []))

    def test_check_config_names_the_limit(self):
        r = check_config(self, {"url": "http://127.0.0.1:9/in"})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("endpoint app: format raw carries the envelope in request headers of at "
                      "most 16384 bytes", r.stdout)


def check_config(test, endpoint):
    """smtphook --check-config over a config whose only endpoint "app" is endpoint."""
    cfg = make_config(free_port(), None, endpoints={"app": endpoint})
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(cfg, f)
    test.addCleanup(os.unlink, f.name)
    return run_binary(["--check-config", "--config", f.name])


class CheckConfigTest(unittest.TestCase):

    def check(self, endpoint):
        return check_config(self, endpoint)

    def assertRefused(self, endpoint, words):
        r = self.check(endpoint)
        self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn(words, r.stderr)

    def test_mistakes(self):
        url = "http://127.0.0.1:9/in"
        self.assertRefused({"url": url, "format": "xml"}, "endpoints.app.format")
        self.assertRefused({"url": url, "preset": "mailgun"}, "needs \"signing\"")
        self.assertRefused({"url": url, "preset": "rails_relay"}, "needs \"basic_auth\"")
        self.assertRefused({"url": url, "preset": "sendgrid", "format": "json",
                            "basic_auth": {"user": "u", "password": "p"}},
                           "endpoints.app.format: cannot be given with \"preset\"")
        self.assertRefused({"url": url, "signing": {"scheme": "mailgun", "key": "k"}},
                           "signs the form of the \"mailgun\" preset only")
        self.assertRefused({"url": url, "signing": {"secrets": [SECRET_A]}},
                           "endpoints.app.signing.scheme: is required")
        self.assertRefused({"url": url, "signing": {"scheme": "standard-webhooks"}},
                           "endpoints.app.signing.secrets: is required")
        self.assertRefused({"url": url, "signing": {"scheme": "standard-webhooks",
                                                    "secrets": ["whsec_short"]}},
                           "endpoints.app.signing.secrets[0]: must be \"whsec_\"")
        self.assertRefused({"url": url, "signing": {"scheme": "standard-webhooks",
                                                    "secrets": [ED_A_PUB]}},
                           "endpoints.app.signing.secrets[0]: is an Ed25519 public key")
        self.assertRefused({"url": url, "signing": {"scheme": "standard-webhooks",
                                                    "secrets": ["whsk_" + "A" * 40]}},
                           "endpoints.app.signing.secrets[0]: must be \"whsk_\"")
        seed = base64.b64decode(ED_A[len("whsk_"):])
        other_pub = base64.b64decode(ED_B_PUB[len("whpk_"):])
        self.assertRefused({"url": url, "signing": {"scheme": "standard-webhooks", "secrets": [
            "whsk_" + base64.b64encode(seed + other_pub).decode()]}},
                           "not the public key of its first")
        self.assertRefused({"url": url, "basic_auth": {"user": "a:b", "password": "p"}},
                           "endpoints.app.basic_auth.user: must not contain ':'")
        self.assertRefused({"url": url, "basic_auth": {"user": "u", "password": "p"},
                            "headers": {"authorization": "x"}}, "is set by smtphook")
        r = self.check({"url": url, "preset": "rails_relay",
                        "basic_auth": {"user": "rails", "password": "p"}})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("accept only the user \"actionmailbox\"", r.stdout + r.stderr)

    def test_v1a_public_keys_printed(self):
        """--check-config prints each v1a key's whpk_ public key (the receiver's), in the
        keys' order, for the seed alone and for the seed with its public key; no secret."""
        seed = base64.b64decode(ED_B[len("whsk_"):])
        pub = base64.b64decode(ED_B_PUB[len("whpk_"):])
        long_b = "whsk_" + base64.b64encode(seed + pub).decode().rstrip("=")
        r = self.check({"url": "http://127.0.0.1:9/in", "signing": {
            "scheme": "standard-webhooks", "secrets": [SECRET_A, ED_A, long_b]}})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("endpoint app: signing.secrets[1] signs v1a (Ed25519); the receiver "
                      "verifies with " + ED_A_PUB + "\n", r.stdout)
        self.assertIn("signing.secrets[2] signs v1a (Ed25519); the receiver verifies with "
                      + ED_B_PUB + "\n", r.stdout)
        self.assertNotIn("secrets[0]", r.stdout)
        for secret in (SECRET_A, ED_A, long_b):
            self.assertNotIn(secret[6:20], r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
