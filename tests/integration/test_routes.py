"""test_routes.py - recipients split by route end to end, among many routes that the
recipients do not match: each endpoint gets one POST with the recipients of the routes it
serves; a recipient no route matches is refused at RCPT."""

import unittest

from testcase import SmtphookTestCase

MSG = b"Subject: routes\r\n\r\nhello\r\n"


class Routes(SmtphookTestCase):
    def test_shares_by_route_among_many(self):
        r1 = self.start_receiver()
        r2 = self.start_receiver()
        routes = [{"match": ["user%d@example.com" % i], "endpoints": ["one"]}
                  for i in range(40)]
        routes.append({"match": ["sales@example.com", "*@eu.example.com"],
                       "endpoints": ["two"]})
        routes += [{"match": ["ops%d@example.com" % i], "endpoints": ["one"]}
                   for i in range(40)]
        routes.append({"match": ["*@example.com"], "endpoints": ["one", "two"]})
        self.start_smtphook(endpoints={"one": {"url": r1.url("/one")},
                                       "two": {"url": r2.url("/two")}},
                            domains=["example.com", "eu.example.com"], routes=routes,
                            recipient_delimiter="+")
        # The last route, the middle one (twice: an extension, a domain pattern), the last.
        reply = self.send_mail(body=MSG, rcpts=("zed@example.com", "sales+q@example.com",
                                                "ann@eu.example.com", "bob@example.com"))
        self.assertReply(reply, 250, "2.0.0")
        q1 = r1.wait_for(1)
        q2 = r2.wait_for(1)
        self.assertEqual(len(q1), 1)
        self.assertEqual(len(q2), 1)  # one POST per endpoint, its share the union
        self.assertEqual(q1[0].envelope()["rcpt_to"], ["zed@example.com", "bob@example.com"])
        self.assertEqual(q2[0].envelope()["rcpt_to"],  # in the order of the RCPTs
                         ["zed@example.com", "sales+q@example.com", "ann@eu.example.com",
                          "bob@example.com"])

    def test_unrouted_recipient_refused(self):
        rcv = self.start_receiver()
        routes = [{"match": ["user%d@example.com" % i], "endpoints": ["app"]}
                  for i in range(50)]
        self.start_smtphook(rcv, routes=routes)
        c = self.connect()
        self.ehlo(c)
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), 250)
        self.assertReply(c.cmd("RCPT TO:<nobody@example.com>"), 550, "5.1.1")
        self.assertReply(c.cmd("RCPT TO:<user49@example.com>"), 250)
        c.close()


if __name__ == "__main__":
    unittest.main()
