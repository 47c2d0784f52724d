"""test_mapping.py - the reply after the final dot reflects what the endpoint did: 250 only
after a 2xx, 552 for 413, 451 for what may pass (and for every transport failure), 550 for
what will not. The enhanced codes are the ones the README documents."""

import time
import unittest

from receiver import down_url
from testcase import SmtphookTestCase

MSG = b"Subject: m\r\n\r\nmapping\r\n"


class StatusMapping(SmtphookTestCase):
    def check(self, status, code, esc):
        """Deliver one message to a receiver answering status; expect code and esc."""
        rcv = self.start_receiver(status=status)
        self.start_smtphook(rcv, retry={"max_attempts": 1})
        reply = self.send_mail(body=MSG)
        rcv.wait_for(1)
        time.sleep(0.3)  # a retry would show up by now
        reqs = rcv.requests
        self.assertReply(reply, code, esc)
        self.assertEqual(len(reqs), 1, "exactly one request expected: %r" % reqs)
        if code == 250:
            self.assertIdInReply(reqs[0].header("X-Smtphook-Id"), reply)
        return reply

    def test_200_is_250(self):
        self.check(200, 250, "2.0.0")

    def test_202_is_250(self):
        self.check(202, 250, "2.0.0")

    def test_204_is_250(self):
        self.check(204, 250, "2.0.0")

    def test_413_is_552(self):
        self.check(413, 552, "5.3.4")

    def test_401_is_451(self):
        self.check(401, 451, "4.3.5")

    def test_404_is_451(self):
        self.check(404, 451, "4.3.5")

    def test_408_is_451(self):
        self.check(408, 451, "4.3.0")

    def test_429_is_451(self):
        self.check(429, 451, "4.3.0")

    def test_500_is_451(self):
        self.check(500, 451, "4.3.0")

    def test_503_is_451(self):
        self.check(503, 451, "4.3.0")

    def test_400_is_550(self):
        self.check(400, 550, "5.6.0")

    def test_403_is_550(self):
        self.check(403, 550, "5.7.1")

    def test_422_is_550(self):
        self.check(422, 550, "5.6.0")

    def test_redirect_not_followed_451(self):
        rcv = self.start_receiver(status=302)
        rcv.set(redirect=rcv.url("/elsewhere"))
        self.start_smtphook(rcv, retry={"max_attempts": 1})
        reply = self.send_mail(body=MSG)
        self.assertReply(reply, 451, "4.3.5")
        time.sleep(0.5)
        self.assertEqual([r.path for r in rcv.requests], ["/inbound"],
                         "redirect was followed")


class TransportFailures(SmtphookTestCase):
    def test_endpoint_down_451(self):
        self.start_smtphook(url=down_url(), retry={"max_attempts": 1})
        reply = self.send_mail(body=MSG)
        self.assertReply(reply, 451, "4.4.1")

    def test_endpoint_timeout_451(self):
        rcv = self.start_receiver(delay=10)
        self.start_smtphook(rcv, endpoints={"app": {"url": rcv.url(), "timeout_ms": 700,
                                                        "retry": {"max_attempts": 1}}})
        t0 = time.monotonic()
        reply = self.send_mail(body=MSG)
        self.assertReply(reply, 451, "4.4.7")
        self.assertLess(time.monotonic() - t0, 6)

    def test_close_without_answer_451(self):
        rcv = self.start_receiver(mode="close")
        self.start_smtphook(rcv, retry={"max_attempts": 1})
        reply = self.send_mail(body=MSG)
        self.assertReply(reply, 451, "4.")
        self.assertGreaterEqual(len(rcv.requests), 1)

    def test_2xx_before_body_received_is_not_250(self):
        # The app answers 200 without reading a 16 MB body and drops the connection: the
        # message did not arrive, so the sender must not hear 250.
        rcv = self.start_receiver(mode="early")
        self.start_smtphook(rcv, retry={"max_attempts": 1}, limits={"max_message_bytes": 40000000})
        body = (b"z" * 1022 + b"\r\n") * (16 * 1024)
        reply = self.send_mail(body=body, reply_timeout=30)
        self.assertReply(reply, 451, "4.")

    def test_silently_dropped_keepalive_connection_not_a_failure(self):
        # The app closes every connection after its answer without saying so: the next
        # message must not fail on the dead pooled connection.
        rcv = self.start_receiver(mode="drop")
        self.start_smtphook(rcv, retry={"max_attempts": 1})
        c = self.connect()
        self.ehlo(c)
        for i in range(5):
            r = self.transaction(c, "a@example.org", ["b@example.com"], MSG)
            self.assertReply(r, 250, msg="message %d: %s" % (i, r))
            time.sleep(0.1)
        self.assertEqual(len(rcv.wait_for(5)), 5)

    def test_recovers_after_endpoint_comes_back(self):
        rcv = self.start_receiver(status=503)
        self.start_smtphook(rcv, retry={"max_attempts": 1})
        c = self.connect()
        self.ehlo(c)
        self.assertReply(self.transaction(c, "a@example.org", ["b@example.com"], MSG), 451)
        rcv.set(status=200)
        self.assertReply(self.transaction(c, "a@example.org", ["b@example.com"], MSG), 250)
        self.assertEqual(len(rcv.wait_for(2)), 2)


class SeveralEndpoints(SmtphookTestCase):
    def start_two(self, s1, s2):
        r1 = self.start_receiver(status=s1)
        r2 = self.start_receiver(status=s2)
        self.start_smtphook(endpoints={"one": {"url": r1.url("/one")},
                                       "two": {"url": r2.url("/two")}})
        return r1, r2

    def test_each_endpoint_gets_the_message_with_the_same_id(self):
        r1, r2 = self.start_two(200, 200)
        reply = self.send_mail(body=MSG)
        self.assertReply(reply, 250, "2.0.0")
        q1, q2 = r1.wait_for(1)[0], r2.wait_for(1)[0]
        self.assertEqual((q1.path, q2.path), ("/one", "/two"))
        self.assertEqual(q1.body, MSG)
        self.assertEqual(q2.body, MSG)
        self.assertEqual(q1.header("X-Smtphook-Id"), q2.header("X-Smtphook-Id"))
        self.assertIdInReply(q1.header("X-Smtphook-Id"), reply)

    def test_permanent_failure_wins(self):
        self.start_two(503, 403)
        self.assertReply(self.send_mail(body=MSG), 550)

    def test_temporary_failure_beats_success(self):
        self.start_two(200, 503)
        self.assertReply(self.send_mail(body=MSG), 451)


if __name__ == "__main__":
    unittest.main()
