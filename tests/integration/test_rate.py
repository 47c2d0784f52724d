"""test_rate.py - rate limits per client address (an IPv6 client by its /64): connections,
messages and recipients per minute, each refused with its reply (421 4.7.0 at connect,
451 4.7.1 at MAIL and RCPT) while the rest of the session goes on; trusted_networks are
spared (by default the machine itself). A connection refused for max_connections_per_client
spends none of the connections' rate. The refusals are counted in
smtphook_connections_refused_total.
"""

import socket
import time
import unittest

from helpers import HOST, free_port
from smtp_client import SMTPClient
from smtphook_process import make_config
from testcase import SmtphookTestCase

SENDER = "sender@example.org"


def connect_from(port, source):
    s = socket.create_connection((HOST, port), timeout=5, source_address=(source, 0))
    return SMTPClient(None, sock=s, timeout=5)


class RateTest(SmtphookTestCase):

    def start_limited(self, trusted=(), **limits):
        r = self.start_receiver()
        self.start_smtphook(r, limits=limits, trusted_networks=list(trusted),
                            admin=self.admin_listen())
        return r

    def test_connections_per_minute(self):
        self.start_limited(connections_per_minute=3)
        banners = []
        for _ in range(5):
            c = connect_from(self.sh.port, "127.0.0.2")
            banners.append(c.banner)
            c.close()
        # the probe that waited for smtphook's start came from 127.0.0.1, another client
        self.assertEqual([b.code for b in banners], [220, 220, 220, 421, 421])
        self.assertIn("4.7.0", str(banners[3]))
        self.assertIn("too many connections from your address", str(banners[3]))
        c = connect_from(self.sh.port, "127.0.0.3")  # another client is not affected
        self.assertReply(c.banner, 220)
        self.assertTrue(self.sh.wait_log(r"127\.0\.0\.2 refused: more than 3 connections a minute"))
        self.assertEqual(self.metric("smtphook_connections_refused_total", cause="rate"), 2)

    def test_a_connection_refused_for_the_concurrent_limit_spends_no_rate(self):
        """Refused for max_connections_per_client, a connection takes nothing from the
        minute's budget: the client still has it whole once its slot is free."""
        self.start_limited(connections_per_minute=3, max_connections_per_client=1)
        held = connect_from(self.sh.port, "127.0.0.2")  # 1 of 3
        self.assertReply(held.banner, 220)
        for _ in range(3):
            c = connect_from(self.sh.port, "127.0.0.2")
            self.assertReply(c.banner, 421, "4.7.0")
            self.assertIn("too many connections", str(c.banner))
            c.close()
        held.cmd("QUIT")
        self.assertTrue(held.wait_closed(3))
        held.close()
        codes = []
        deadline = time.monotonic() + 5
        while len(codes) < 3 and time.monotonic() < deadline:
            c = connect_from(self.sh.port, "127.0.0.2")
            if c.banner.code == 421 and "from your address" not in str(c.banner):
                c.close()  # the held one's slot is not free yet: that costs nothing either
                continue
            codes.append(c.banner.code)
            if c.banner.code == 220:
                c.cmd("QUIT")
                c.wait_closed(3)
            c.close()
        self.assertEqual(codes, [220, 220, 421])  # 2 and 3 of 3, then the rate
        self.assertGreaterEqual(self.metric("smtphook_connections_refused_total",
                                            cause="too_many"), 3)
        self.assertEqual(self.metric("smtphook_connections_refused_total", cause="rate"), 1)
        self.assertEqual(self.metric("smtphook_connections_accepted_total"), 3 + 1)  # + probe

    def test_messages_per_minute(self):
        r = self.start_limited(messages_per_minute=2)
        c = connect_from(self.sh.port, "127.0.0.2")
        self.ehlo(c)
        for i in range(2):
            self.assertReply(self.transaction(c, SENDER, ["r@example.com"],
                                              b"Subject: %d\r\n\r\nhi\r\n" % i), 250)
        reply = c.cmd("MAIL FROM:<%s>" % SENDER)
        self.assertReply(reply, 451, "4.7.1")
        self.assertIn("too many messages", str(reply))
        self.assertReply(c.cmd("NOOP"), 250)  # the session goes on
        self.assertEqual(len(r.requests), 2)

    def test_recipients_per_minute(self):
        r = self.start_limited(recipients_per_minute=3)
        c = connect_from(self.sh.port, "127.0.0.2")
        self.ehlo(c)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        codes = [c.cmd("RCPT TO:<r%d@example.com>" % i).code for i in range(5)]
        self.assertEqual(codes, [250, 250, 250, 451, 451])
        self.assertReply(c.cmd("DATA"), 354)
        c.send(b"Subject: three\r\n\r\nhi\r\n.\r\n")
        self.assertReply(c.read_reply(), 250)
        self.assertEqual(len(r.requests[0].envelope()["rcpt_to"]), 3)

    def test_trusted_networks_are_spared(self):
        self.start_limited(trusted=("127.0.0.4/32",), connections_per_minute=2)
        codes = [connect_from(self.sh.port, "127.0.0.4").banner.code for _ in range(5)]
        self.assertEqual(codes, [220] * 5)
        codes = [connect_from(self.sh.port, "127.0.0.5").banner.code for _ in range(3)]
        self.assertEqual(codes, [220, 220, 421])

    def test_the_machine_itself_is_trusted_by_default(self):
        r = self.start_receiver()
        self.start_smtphook(r, limits={"connections_per_minute": 2})  # no trusted_networks key
        codes = [connect_from(self.sh.port, "127.0.0.2").banner.code for _ in range(5)]
        self.assertEqual(codes, [220] * 5)

    def start_proxied(self, trusted):
        """A PROXY v1 listener behind 127.0.0.1 allowing two connections a minute; returns
        banner(src), the first reply to a connection whose header names src."""
        r = self.start_receiver()
        port = free_port()
        cfg = make_config(port, r.url(), limits={"connections_per_minute": 2},
                          trusted_networks=list(trusted))
        cfg["listeners"][0].update({"proxy_protocol": "v1", "trusted_proxies": ["127.0.0.1"]})
        self.start_smtphook(config=cfg, port=port)

        def banner(src):
            s = socket.create_connection((HOST, port), timeout=5)
            line = "PROXY TCP6 %s 2001:db8::25 40000 25\r\n" % src
            return SMTPClient(None, sock=s, timeout=5, first=line.encode()).banner.code
        return banner

    def test_ipv6_clients_by_their_64(self):
        """Through PROXY headers: two addresses of one /64 share a bucket, another /64 not."""
        banner = self.start_proxied(trusted=())
        self.assertEqual([banner("2001:db8:1:2::1"), banner("2001:db8:1:2::99"),
                          banner("2001:db8:1:2:ffff::7"), banner("2001:db8:1:3::1")],
                         [220, 220, 421, 220])

    def test_trusted_networks_judge_the_client_a_proxy_names(self):
        """The proxy (127.0.0.1, trusted by default elsewhere) does not spare its clients; a
        client the header names inside trusted_networks is spared."""
        banner = self.start_proxied(trusted=("2001:db8:1::/48",))
        self.assertEqual([banner("2001:db8:1:2::1") for _ in range(4)], [220] * 4)
        self.assertEqual([banner("2001:db8:2::1") for _ in range(3)], [220, 220, 421])


if __name__ == "__main__":
    unittest.main()
