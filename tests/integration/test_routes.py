"""test_routes.py - routes: which endpoint gets which recipients, one POST per endpoint with
its share, the policies "all" and "failover", one_route_per_transaction (with smtplib and with
a real Postfix as the sender), the Idempotency-Key of each share, and --check-config on route
mistakes.

Every endpoint is its own receiver, so where a recipient went is read off the requests each
one recorded. smtphook answers the final dot only after every delivery of the message ended
(no request of it is under way or still to come), so the requests recorded when the reply
arrives are all the requests of that message: "never called" needs no waiting.
"""

import glob
import json
import os
import re
import shutil
import smtplib
import subprocess
import tempfile
import time
import unittest
import uuid

import postfix
from helpers import HOST, free_port, percent_decode
from receiver import down_url
from smtp_client import dot_stuff
from smtphook_process import make_config, run_binary
from testcase import SmtphookTestCase

MSG = b"From: a@example.org\r\nTo: b@example.com\r\nSubject: routes\r\n\r\nHello.\r\n"
SENDER = "sender@example.org"
KEY_RE = r"^[0-9a-f]{64}$"  # Idempotency-Key: SHA-256, lower-case hex
BACKOFF = {"initial_backoff_ms": 10, "max_backoff_ms": 20}  # the shortest retry waits
ROUTES_COM_NET = [{"match": ["*@example.com"], "endpoints": ["com"]},
                  {"match": ["*@example.net"], "endpoints": ["net"]}]


def endpoint(url, settings=None):
    """An endpoint entry with short timeouts and no retry, settings merged over it (retry:
    {"max_attempts": 3} keeps the short backoff)."""
    e = {"url": url, "timeout_ms": 5000, "connect_timeout_ms": 1000,
         "retry": dict(BACKOFF, max_attempts=1)}
    for key, value in (settings or {}).items():
        e[key] = dict(e[key], **value) if isinstance(e.get(key), dict) else value
    return e


def rcpt_header(req):
    """X-Smtphook-Rcpt-To decoded: the addresses as the header lists them."""
    return [percent_decode(a) for a in req.header("X-Smtphook-Rcpt-To").split(", ")]


class RoutesCase(SmtphookTestCase):
    """Starts one receiver per endpoint name and smtphook with routes over them."""

    def start_routed(self, routes, names, domains=("example.com",), settings=None, **top):
        """Receivers for names (each answering 200 unless changed later), endpoints of those
        names (settings: {name: {key: value}} for endpoint()), the routes; returns
        {name: receiver}."""
        settings = settings or {}
        self.rcv = {n: self.start_receiver() for n in names}
        eps = {n: endpoint(self.rcv[n].url(), settings.get(n)) for n in names}
        port = free_port()
        cfg = make_config(port, None, endpoints=eps, domains=list(domains), routes=routes, **top)
        self.start_smtphook(config=cfg)
        return self.rcv

    def posts(self, name):
        """The requests endpoint name got, each checked: its Idempotency-Key is the envelope's
        key, and X-Smtphook-Rcpt-To lists exactly the envelope's recipients."""
        reqs = self.rcv[name].requests
        for req in reqs:
            env = req.envelope()
            self.assertRegex(env["key"], KEY_RE)
            self.assertEqual(req.header("Idempotency-Key"), env["key"], req)
            self.assertEqual(rcpt_header(req), env["rcpt_to"], req)
            self.assertEqual(req.header("X-Smtphook-Id"), env["id"], req)
        return reqs

    def all_posts(self):
        return {n: self.posts(n) for n in self.rcv}

    def deliver(self, c, rcpts, body=MSG, mail_from=SENDER, smtputf8=False):
        """MAIL, RCPT for each of rcpts (each must get 250), DATA: the reply to the dot."""
        params = "SMTPUTF8" if smtputf8 or not all(r.isascii() for r in rcpts) else ""
        return self.transaction(c, mail_from, rcpts, body, mail_params=params)


# -- 1. the routing matrix ---------------------------------------------------------------------


class Matrix(RoutesCase):
    """Each recipient in a transaction of its own; the endpoint that got it is the route it
    took. Recipients no route takes are refused at RCPT."""

    def route_each(self, cases):
        """cases: (recipient, endpoint name or (code, esc)). One connection, one transaction
        per recipient; checks that each accepted recipient reached exactly its endpoint, in
        one request that lists it exactly as it was sent."""
        c = self.connect()
        self.ehlo(c)
        want = {}
        for i, (rcpt, expect) in enumerate(cases):
            if isinstance(expect, str):
                body = b"Subject: case %d\r\n\r\n%s\r\n" % (i, rcpt.encode("utf-8"))
                reply = self.deliver(c, [rcpt], body=body)
                self.assertReply(reply, 250, "2.0.0", "%s: %s" % (rcpt, reply))
                want[rcpt] = expect
                continue
            params = "" if rcpt.isascii() else " SMTPUTF8"
            self.assertReply(c.cmd("MAIL FROM:<%s>%s" % (SENDER, params)), 250)
            code, esc = expect
            r = c.cmd("RCPT TO:<%s>" % rcpt)
            self.assertReply(r, code, esc, "RCPT %s: %s" % (rcpt, r))
            self.assertReply(c.cmd("RSET"), 250)
        got = {}
        for name, reqs in self.all_posts().items():
            for req in reqs:
                env = req.envelope()
                self.assertEqual(len(env["rcpt_to"]), 1, req)
                rcpt = env["rcpt_to"][0]  # the address as sent, not as the route spells it
                self.assertNotIn(rcpt, got, "%s posted twice" % rcpt)
                got[rcpt] = name
        self.assertEqual(got, want)

    def test_exact_domain_subdomain_catchall_first_match_wins(self):
        self.start_routed(
            [{"match": ["sales@example.com", "jos\u00e9@example.com"], "endpoints": ["sales"]},
             {"match": ["*@example.com"], "endpoints": ["com"]},
             {"match": ["*@*.example.net"], "endpoints": ["sub"]},
             {"match": ["*"], "endpoints": ["any"]}],
            ["sales", "com", "sub", "any"],
            domains=["example.com", "example.net", "sub.example.net", "a.b.example.net"],
            recipient_delimiter="+")
        self.route_each([
            # exact; it also matches *@example.com and *, but the first route takes it
            ("sales@example.com", "sales"),
            # domains in any case, ASCII local parts in any case; the address stays as sent
            ("SALES@Example.COM", "sales"),
            ("sales@EXAMPLE.COM", "sales"),
            # the extension after "+" is cut for matching only
            ("sales+news@example.com", "sales"),
            ("Sales+News@example.com", "sales"),
            # "-" is no delimiter here; a longer local part is another address
            ("sales-news@example.com", "com"),
            ("salesman@example.com", "com"),
            ("bob@example.com", "com"),
            # a UTF-8 local part: the ASCII letters in any case, the rest byte for byte
            ("jos\u00e9@example.com", "sales"),
            ("JOS\u00e9@example.com", "sales"),
            ("jos\u00c9@example.com", "com"),
            # *@*.example.net: a subdomain and a sub-subdomain, in any case; not the domain
            ("x@sub.example.net", "sub"),
            ("x@a.b.example.net", "sub"),
            ("x@SUB.Example.NET", "sub"),
            ("x@example.net", "any"),
            # <postmaster> is postmaster@example.com (the first domain served), so the
            # *@example.com route takes it; as it is, only the catch-all would match it
            ("postmaster", "com"),
            # a catch-all route serves the configured domains only: no relaying
            ("x@other.test", (550, "5.7.1")),
            ("x@sub.other.test", (550, "5.7.1")),
        ])

    def test_unknown_user_unserved_domain_and_postmaster_without_catchall(self):
        self.start_routed(
            [{"match": ["sales@example.com", "postmaster@example.com"], "endpoints": ["sales"]},
             {"match": ["*@*.example.net"], "endpoints": ["sub"]}],
            ["sales", "sub"],
            # example.net comes first: postmaster@example.net has no route, so the domain-less
            # postmaster is tried at example.com next
            domains=["example.net", "example.com", "sub.example.net"],
            recipient_delimiter="+-")
        self.route_each([
            # either delimiter starts the extension; the first one found counts
            ("sales+news@example.com", "sales"),
            ("sales-news@example.com", "sales"),
            ("sales-a+b@example.com", "sales"),
            ("sales+a-b@example.com", "sales"),
            ("salesnews@example.com", (550, "5.1.1")),
            ("postmaster", "sales"),
            ("bob@example.com", (550, "5.1.1")),  # a served domain, no route for the user
            ("x@example.net", (550, "5.1.1")),  # *@*.example.net is not example.net itself
            ("x@sub.example.net", "sub"),
            ("x@other.test", (550, "5.7.1")),  # not served at all
        ])

    def test_postmaster_case_kept_in_envelope(self):
        self.start_routed([{"match": ["postmaster@example.com"], "endpoints": ["pm"]}], ["pm"])
        c = self.connect()
        self.ehlo(c)
        self.assertReply(self.deliver(c, ["PostMaster"]), 250, "2.0.0")
        req, = self.posts("pm")
        self.assertEqual(req.envelope()["rcpt_to"], ["PostMaster"])
        self.assertEqual(rcpt_header(req), ["PostMaster"])

    def test_refused_recipient_not_posted(self):
        self.start_routed(
            [{"match": ["sales@example.com"], "endpoints": ["sales"]},
             {"match": ["*@*.example.net"], "endpoints": ["sub"]}],
            ["sales", "sub"], domains=["example.com", "sub.example.net"])
        c = self.connect()
        self.ehlo(c)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        self.assertReply(c.cmd("RCPT TO:<sales@example.com>"), 250, "2.1.5")
        self.assertReply(c.cmd("RCPT TO:<bob@example.com>"), 550, "5.1.1")
        self.assertReply(c.cmd("RCPT TO:<x@other.test>"), 550, "5.7.1")
        self.assertReply(c.cmd("RCPT TO:<x@sub.example.net>"), 250, "2.1.5")
        self.assertReply(c.cmd("DATA"), 354)
        c.send(dot_stuff(MSG))
        self.assertReply(c.read_reply(), 250, "2.0.0")
        sales, = self.posts("sales")
        sub, = self.posts("sub")
        self.assertEqual(sales.envelope()["rcpt_to"], ["sales@example.com"])
        self.assertEqual(sub.envelope()["rcpt_to"], ["x@sub.example.net"])
        self.assertEqual(sales.body, MSG)
        self.assertEqual(sub.body, MSG)


# -- 2. one POST per endpoint, with its share ----------------------------------------------------


class Shares(RoutesCase):
    def setUp(self):
        # "shared" serves both routes; "net" only the second
        self.start_routed(
            [{"match": ["*@example.com"], "endpoints": ["shared"]},
             {"match": ["*@example.net"], "endpoints": ["net", "shared"]}],
            ["shared", "net"], domains=["example.com", "example.net"])

    def test_one_request_per_endpoint_with_the_union_in_rcpt_order(self):
        rcpts = ["n1@example.net", "c1@example.com", "n2@example.net", "c2@example.com"]
        c = self.connect()
        self.ehlo(c)
        reply = self.deliver(c, rcpts)
        self.assertReply(reply, 250, "2.0.0")
        shared, = self.posts("shared")
        net, = self.posts("net")
        self.assertEqual(shared.envelope()["rcpt_to"], rcpts)
        self.assertEqual(rcpt_header(shared), rcpts)
        self.assertEqual(net.envelope()["rcpt_to"], ["n1@example.net", "n2@example.net"])
        self.assertEqual(rcpt_header(net), ["n1@example.net", "n2@example.net"])
        # one message, one transaction id: both shares carry it, and the body, unchanged
        rid = shared.header("X-Smtphook-Id")
        self.assertEqual(net.header("X-Smtphook-Id"), rid)
        self.assertIdInReply(rid, reply)
        self.assertEqual(shared.body, MSG)
        self.assertEqual(net.body, MSG)
        # different shares of one message: different keys
        self.assertNotEqual(shared.header("Idempotency-Key"), net.header("Idempotency-Key"))

    def test_one_route_only_reaches_its_endpoints(self):
        c = self.connect()
        self.ehlo(c)
        self.assertReply(self.deliver(c, ["c1@example.com", "c2@example.com"]), 250)
        shared, = self.posts("shared")
        self.assertEqual(shared.envelope()["rcpt_to"], ["c1@example.com", "c2@example.com"])
        self.assertEqual(self.posts("net"), [])


class RoutesTogether(RoutesCase):
    """Routes of one message are delivered side by side; the worst route's reply wins."""

    def test_a_refusing_route_makes_it_550_and_the_other_route_still_got_it(self):
        rcv = self.start_routed(ROUTES_COM_NET, ["com", "net"],
                                domains=["example.com", "example.net"])
        rcv["net"].set(status=403)
        c = self.connect()
        self.ehlo(c)
        reply = self.deliver(c, ["c@example.com", "n@example.net"])
        self.assertReply(reply, 550, "5.7.1")
        com, = self.posts("com")
        net, = self.posts("net")
        self.assertEqual(com.envelope()["rcpt_to"], ["c@example.com"])
        self.assertEqual(net.envelope()["rcpt_to"], ["n@example.net"])

    def test_failover_target_of_another_route_gets_a_second_share(self):
        # design.md, Delivery: an endpoint that is also a failover target of another route
        # in the same transaction can get a second share in a later round
        rcv = self.start_routed(
            [{"match": ["*@example.com"], "endpoints": ["shared"]},
             {"match": ["*@example.net"], "endpoints": ["primary", "shared"],
              "policy": "failover"}],
            ["shared", "primary"], domains=["example.com", "example.net"])
        rcv["primary"].set(status=503)
        c = self.connect()
        self.ehlo(c)
        reply = self.deliver(c, ["n@example.net", "c@example.com"])
        self.assertReply(reply, 250, "2.0.0")
        primary, = self.posts("primary")
        self.assertEqual(primary.envelope()["rcpt_to"], ["n@example.net"])
        first, second = self.posts("shared")
        self.assertEqual(first.envelope()["rcpt_to"], ["c@example.com"])
        self.assertEqual(second.envelope()["rcpt_to"], ["n@example.net"])
        self.assertEqual(second.header("Idempotency-Key"), primary.header("Idempotency-Key"))
        self.assertNotEqual(first.header("Idempotency-Key"), second.header("Idempotency-Key"))


# -- 3. policies ---------------------------------------------------------------------------------


class Policies(RoutesCase):
    RCPTS = ["a@example.com", "b@example.com"]

    def start_policy(self, policy, names=("first", "second"), **kw):
        return self.start_routed(
            [{"match": ["*@example.com"], "endpoints": list(names), "policy": policy}],
            list(names), **kw)

    def send(self):
        c = self.connect()
        self.ehlo(c)
        return self.deliver(c, self.RCPTS)

    def txn_line(self, reply):
        """The transaction's log line (it follows the reply)."""
        m = re.search(r"\(id (\S+)\)$|delivered as (\S+)$", reply.text)
        self.assertIsNotNone(m, reply)
        rid = m.group(1) or m.group(2)
        lines = self.sh.wait_log(r"txn id=%s client=" % re.escape(rid))
        self.assertEqual(len(lines), 1, self.sh.log())
        return lines[0]

    def assertOneEach(self, *names):
        """Each endpoint named got exactly one request, the whole message; the same key."""
        keys = set()
        for name in names:
            reqs = self.posts(name)
            self.assertEqual(len(reqs), 1, "%s: %r" % (name, reqs))
            self.assertEqual(reqs[0].envelope()["rcpt_to"], self.RCPTS)
            self.assertEqual(reqs[0].body, MSG)
            keys.add(reqs[0].header("Idempotency-Key"))
        self.assertEqual(len(keys), 1, "one share, one key: %s" % keys)

    def test_all_both_endpoints_get_it(self):
        self.start_policy("all")
        self.assertReply(self.send(), 250, "2.0.0")
        self.assertOneEach("first", "second")
        ids = {self.posts(n)[0].header("X-Smtphook-Id") for n in ("first", "second")}
        self.assertEqual(len(ids), 1, ids)

    def test_all_one_endpoint_503_is_451_and_the_other_still_got_it(self):
        rcv = self.start_policy("all")
        rcv["second"].set(status=503)
        reply = self.send()
        self.assertReply(reply, 451, "4.3.0")
        self.assertIdInReply(self.posts("first")[0].header("X-Smtphook-Id"), reply)
        self.assertOneEach("first", "second")
        self.assertRegex(self.txn_line(reply),
                         r"endpoints=first:200:\d+ms:attempts=1,second:503:\d+ms:attempts=1 ")

    def test_failover_first_down_second_gets_it(self):
        self.start_policy("failover", settings={"first": {"url": down_url()}})
        reply = self.send()
        self.assertReply(reply, 250, "2.0.0")
        self.assertOneEach("second")
        self.assertEqual(self.posts("first"), [])
        self.assertRegex(self.txn_line(reply),
                         r"endpoints=first:endpoint unreachable:\d+ms:attempts=1,"
                         r"second:200:\d+ms:attempts=1 reply=\"250 2.0.0\"")

    def test_failover_first_503_second_gets_it(self):
        rcv = self.start_policy("failover")
        rcv["first"].set(status=503)
        reply = self.send()
        self.assertReply(reply, 250, "2.0.0")
        self.assertOneEach("first", "second")
        first, = self.posts("first")
        second, = self.posts("second")
        self.assertLess(first.arrived, second.arrived, "the second only after the first")

    def test_failover_first_timing_out_second_gets_it(self):
        rcv = self.start_policy("failover", settings={
            "first": {"timeout_ms": 300, "connect_timeout_ms": 300}})
        rcv["first"].set(delay=5)
        started = time.monotonic()
        reply = self.send()
        self.assertReply(reply, 250, "2.0.0")
        self.assertLess(time.monotonic() - started, 4, "the first endpoint's timeout decides")
        self.assertOneEach("first", "second")
        self.assertRegex(self.txn_line(reply),
                         r"endpoints=first:endpoint timed out:\d+ms:attempts=1,"
                         r"second:200:\d+ms:attempts=1 ")

    def test_failover_first_403_is_550_second_never_called(self):
        rcv = self.start_policy("failover")
        rcv["first"].set(status=403)
        reply = self.send()
        self.assertReply(reply, 550, "5.7.1")
        self.assertOneEach("first")
        self.assertEqual(self.posts("second"), [], "a permanent refusal decides")

    def test_failover_follows_the_reply_the_operator_mapped(self):
        # reply_map turns the first endpoint's 403 into a temporary failure: failover then
        rcv = self.start_policy("failover", settings={
            "first": {"reply_map": {"403": "451 4.7.0 Not yet"}}})
        rcv["first"].set(status=403)
        self.assertReply(self.send(), 250, "2.0.0")
        self.assertOneEach("first", "second")

    def test_failover_stops_at_a_permanent_reply_the_app_chose(self):
        rcv = self.start_policy("failover")
        rcv["first"].set(responder=lambda req: (
            503, [("Smtphook-Reply", "550 5.7.1 No such list")], 0))
        reply = self.send()
        self.assertReply(reply, 550, "5.7.1")
        self.assertEqual(reply.text, "5.7.1 No such list")
        self.assertOneEach("first")
        self.assertEqual(self.posts("second"), [])

    def test_failover_first_2xx_second_never_called(self):
        self.start_policy("failover")
        reply = self.send()
        self.assertReply(reply, 250, "2.0.0")
        self.assertOneEach("first")
        self.assertEqual(self.posts("second"), [])

    def test_all_a_permanent_refusal_beats_a_temporary_failure(self):
        rcv = self.start_policy("all")
        rcv["first"].set(status=503)
        rcv["second"].set(status=403)
        reply = self.send()
        self.assertReply(reply, 550, "5.7.1")
        self.assertOneEach("first", "second")

    def test_failover_in_order_until_one_accepts(self):
        rcv = self.start_policy("failover", names=("first", "second", "third", "fourth"),
                                settings={"second": {"url": down_url()}})
        rcv["first"].set(status=503)
        reply = self.send()
        self.assertReply(reply, 250, "2.0.0")
        self.assertOneEach("first", "third")
        self.assertEqual(self.posts("second") + self.posts("fourth"), [])
        self.assertRegex(self.txn_line(reply),
                         r"endpoints=first:503:\d+ms:attempts=1,second:endpoint unreachable:"
                         r"\d+ms:attempts=1,third:200:\d+ms:attempts=1 ")

    def test_failover_every_endpoint_failing_is_451(self):
        rcv = self.start_policy("failover")
        rcv["first"].set(status=503)
        rcv["second"].set(status=429)
        reply = self.send()
        self.assertReply(reply, 451, "4.3.0")
        self.assertOneEach("first", "second")

    def test_failover_passes_an_open_breaker_at_once(self):
        rcv = self.start_policy("failover", settings={
            "first": {"breaker": {"failures": 1, "cooldown_ms": 60000}}})
        rcv["first"].set(status=503)
        self.assertReply(self.send(), 250, "2.0.0")  # the 503 opens first's breaker
        self.assertEqual(len(self.posts("first")), 1)
        self.assertTrue(self.sh.wait_log(r"endpoint first: circuit breaker open"), self.sh.log())
        reply = self.send()
        self.assertReply(reply, 250, "2.0.0")
        self.assertEqual(len(self.posts("first")), 1, "no request while the breaker is open")
        self.assertEqual(len(self.posts("second")), 2)
        self.assertRegex(self.txn_line(reply),
                         r"endpoints=first:endpoint unavailable \(circuit open\):\d+ms:"
                         r"attempts=0,second:200:\d+ms:attempts=1 ")

    def test_failover_after_the_first_endpoint_used_its_retries(self):
        rcv = self.start_policy("failover", settings={"first": {"retry": {"max_attempts": 3}}})
        rcv["first"].set(status=503)
        reply = self.send()
        self.assertReply(reply, 250, "2.0.0")
        first = self.posts("first")
        second, = self.posts("second")
        self.assertEqual(len(first), 3, first)
        self.assertLess(first[-1].arrived, second.arrived)
        # retries and failover are one message: one transaction id, one key
        self.assertEqual({r.header("X-Smtphook-Id") for r in first + [second]},
                         {second.header("X-Smtphook-Id")})
        self.assertEqual({r.header("Idempotency-Key") for r in first + [second]},
                         {second.header("Idempotency-Key")})
        self.assertRegex(self.txn_line(reply),
                         r"endpoints=first:503:\d+ms:attempts=3,second:200:\d+ms:attempts=1 ")


# -- 4. one_route_per_transaction ----------------------------------------------------------------


OTHER_ROUTE = (452, b"4.5.3 Error: recipient of another route, send it in a separate transaction")


class OneRoutePerTransaction(RoutesCase):
    def setUp(self):
        self.start_routed(ROUTES_COM_NET, ["com", "net"], domains=["example.com", "example.net"],
                          one_route_per_transaction=True)

    def client(self):
        s = smtplib.SMTP(HOST, self.sh.port, local_hostname="smtplib.test", timeout=10)
        self.addCleanup(s.close)
        return s

    def test_smtplib_sends_the_refused_recipients_again(self):
        s = self.client()
        rcpts = ["c1@example.com", "n1@example.net", "c2@example.com", "n2@example.net"]
        refused = s.sendmail(SENDER, rcpts, MSG)
        self.assertEqual(refused, {"n1@example.net": OTHER_ROUTE,
                                   "n2@example.net": OTHER_ROUTE})
        com, = self.posts("com")
        self.assertEqual(com.envelope()["rcpt_to"], ["c1@example.com", "c2@example.com"])
        self.assertEqual(self.posts("net"), [])
        # the sender's second transaction, on the same connection, for the refused ones
        self.assertEqual(s.sendmail(SENDER, sorted(refused), MSG), {})
        s.quit()
        com, = self.posts("com")
        net, = self.posts("net")
        self.assertEqual(net.envelope()["rcpt_to"], ["n1@example.net", "n2@example.net"])
        self.assertEqual(net.body, MSG)
        self.assertNotEqual(net.header("X-Smtphook-Id"), com.header("X-Smtphook-Id"))

    def test_swaks_reports_the_452_and_does_not_send_them_again(self):
        # A client that sends each message once: the 452 recipients are its to handle. swaks
        # shows them ("<**") and still exits 0 for the recipients that were accepted.
        swaks = shutil.which("swaks") or "/usr/bin/swaks"
        self.assertTrue(os.access(swaks, os.X_OK), "swaks is not installed (apt-get install swaks)")
        p = subprocess.run([swaks, "--server", "%s:%d" % (HOST, self.sh.port), "--from", SENDER,
                            "--to", "c1@example.com,n1@example.net,c2@example.com",
                            "--body", "via swaks"],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertRegex(p.stdout, r"<\*\* +452 4\.5\.3 Error: recipient of another route")
        self.assertRegex(p.stdout, r"<- +250 2\.0\.0 Ok: delivered as ")
        com, = self.posts("com")
        self.assertEqual(com.envelope()["rcpt_to"], ["c1@example.com", "c2@example.com"])
        self.assertEqual(self.posts("net"), [])

    def test_452_is_not_charged_to_the_error_budget(self):
        c = self.connect()
        self.ehlo(c)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        self.assertReply(c.cmd("RCPT TO:<c1@example.com>"), 250, "2.1.5")
        for i in range(30):  # more than max_errors (20)
            self.assertReply(c.cmd("RCPT TO:<n%d@example.net>" % i), 452, "4.5.3")
        self.assertReply(c.cmd("DATA"), 354)
        c.send(dot_stuff(MSG))
        self.assertReply(c.read_reply(), 250, "2.0.0")
        com, = self.posts("com")
        self.assertEqual(com.envelope()["rcpt_to"], ["c1@example.com"])


POSTQUEUE = "/usr/sbin/postqueue"
# Deferred mail waits for a flush: nothing comes back on its own while a test runs.
POSTFIX_BACKOFF = {"minimal_backoff_time": "300s", "maximal_backoff_time": "300s",
                   "queue_run_delay": "300s"}


class PostfixSender(RoutesCase):
    """Postfix 3.7 as the sending MTA (postfix.py: a private instance relaying to smtphook),
    here with the default 300 s backoff, so deferred mail comes back only when the test
    flushes it ("postqueue -c DIR -i QUEUE_ID").

    What Postfix does with recipients answered 452 4.5.3 under one_route_per_transaction
    (observed with Postfix 3.7.11): neither a second transaction on the same connection nor a
    new connection right away. Its smtp client sends the message to the recipients that were
    accepted, logs the others as deferred and is done with the message:

        smtp[..]: 9D43EA78758: to=<n1@example.net>, relay=127.0.0.1[127.0.0.1]:33451,
            delay=0.02, delays=0.01/0.01/0/0.01, dsn=4.5.3, status=deferred (host
            127.0.0.1[127.0.0.1] said: 452 4.5.3 Error: recipient of another route, send it
            in a separate transaction (in reply to RCPT TO command))
        smtp[..]: 9D43EA78758: to=<c1@example.com>, relay=127.0.0.1[127.0.0.1]:33451, ...,
            dsn=2.0.0, status=sent (250 2.0.0 Ok: delivered as 6b0e930a49241.1)

    They go out at a later queue run: after minimal_backoff_time (300 s by default; with 1 s
    they came a second later), or at once after a flush. That run opens a new SMTP
    connection: smtphook's ids are <connection id>.<transaction>, and both ids are
    transaction 1 of their connection (6b0e930a49241.1, then 6b0e930a49242.1), from
    different client ports:

        qmgr[..]: 9D43EA78758: from=<alice@example.org>, size=231, nrcpt=4 (queue active)
        smtp[..]: 9D43EA78758: to=<n1@example.net>, ..., delay=1, delays=1/0/0/0,
            dsn=2.0.0, status=sent (250 2.0.0 Ok: delivered as 6b0e930a49242.1)
        qmgr[..]: 9D43EA78758: removed

    Postfix sorts a message's recipients, so every queue run offers them in the same order
    and binds the same route: while that route's endpoint fails (451 after the dot), the
    other route's recipients get 452 at every run and wait for it."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        postfix.require_root()
        cls.relay_port = free_port()
        cls.pf = postfix.Postfix(cls.relay_port, settings=POSTFIX_BACKOFF)
        cls.addClassCleanup(cls.pf.stop)
        cls.pf.start()

    def setUp(self):
        eps_names = ["com", "net"]
        self.rcv = {n: self.start_receiver() for n in eps_names}
        eps = {n: endpoint(self.rcv[n].url()) for n in eps_names}
        cfg = make_config(self.relay_port, None, endpoints=eps,
                          domains=["example.com", "example.net"], routes=ROUTES_COM_NET,
                          one_route_per_transaction=True)
        self.start_smtphook(config=cfg)

    def failure_logs(self, text):
        """A failure or error carries the tail of Postfix's log."""
        return "\n--- Postfix log ---\n" + self.pf.log_tail()

    @staticmethod
    def message(subject):
        """A complete message with a unique Message-ID, so Postfix adds no header but
        Received:."""
        return (b"From: alice@example.org\r\nTo: c1@example.com\r\nSubject: " + subject +
                b"\r\nDate: Sat, 29 Nov 2025 10:00:00 +0000\r\n"
                b"Message-ID: <" + uuid.uuid4().hex.encode() + b"@injector.test>\r\n"
                b"\r\nHello from Postfix.\r\n")

    def qid_lines(self, qid):
        return [ln for ln in self.pf.log_lines() if qid + ":" in ln]

    def wait_outcomes(self, qid, n, timeout=postfix.DELIVERY_TIMEOUT):
        """Wait until Postfix logged n delivery outcomes (sent, deferred) for qid; return
        them as postfix.Postfix.outcomes does. A bounce fails at once."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.pf.outcomes(qid)
            bounced = [ln for _, status, ln in got if status == "bounced"]
            if bounced:
                self.fail("Postfix bounced %s:\n%s" % (qid, "\n".join(bounced)))
            if len(got) >= n:
                return got
            if time.monotonic() >= deadline:
                self.fail("Postfix logged %d of %d outcomes of %s within %ss"
                          % (len(got), n, qid, timeout))
            time.sleep(0.05)

    def wait_removed(self, qid, timeout=postfix.DELIVERY_TIMEOUT):
        """Postfix's log lines about qid once its queue manager removed it (done)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.qid_lines(qid)
            if any(ln.endswith("%s: removed" % qid) for ln in lines):
                return lines
            if time.monotonic() >= deadline:
                self.fail("Postfix did not finish %s within %ss" % (qid, timeout))
            time.sleep(0.05)

    def flush(self, qid, timeout=postfix.DELIVERY_TIMEOUT):
        """Deliver the deferred message qid now ("postqueue -i": a queue run for it alone,
        through the instance's flush service), once the queue manager has moved it to the
        deferred queue (a flush finds nothing before)."""
        deadline = time.monotonic() + timeout
        pattern = os.path.join(self.pf.queue_dir, "deferred", "**", qid)
        while not glob.glob(pattern, recursive=True):
            if time.monotonic() >= deadline:
                self.fail("%s did not reach the deferred queue within %ss" % (qid, timeout))
            time.sleep(0.05)
        p = subprocess.run([POSTQUEUE, "-c", self.pf.config_dir, "-i", qid],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_452_recipients_go_out_at_a_later_queue_run_on_a_new_connection(self):
        rcpts = ["c1@example.com", "n1@example.net", "c2@example.com", "n2@example.net"]
        routes = {"com": ["c1@example.com", "c2@example.com"],
                  "net": ["n1@example.net", "n2@example.net"]}
        msg = self.message(b"two routes")
        qid = self.pf.inject("alice@example.org", rcpts, msg)

        # The first attempt: one route's recipients sent, the other's deferred at RCPT.
        first = self.wait_outcomes(qid, len(rcpts))
        deferred = sorted(r for r, status, _ in first if status == "deferred")
        sent = sorted(r for r, status, _ in first if status == "sent")
        self.assertIn(deferred, routes.values(), "\n".join(ln for _, _, ln in first))
        self.assertIn(sent, routes.values(), "\n".join(ln for _, _, ln in first))
        for r, status, ln in first:
            if status == "deferred":
                self.assertRegex(ln, r"dsn=4\.5\.3, status=deferred \(host %s\[%s\] said: 452 "
                                 r"4\.5\.3 Error: recipient of another route.*\(in reply to "
                                 r"RCPT TO command\)" % (re.escape(HOST), re.escape(HOST)))
        now_name = [n for n, group in routes.items() if group == sent][0]
        later_name = [n for n, group in routes.items() if group == deferred][0]
        now, = self.posts(now_name)
        self.assertEqual(sorted(now.envelope()["rcpt_to"]), sent)
        self.assertEqual(self.posts(later_name), [], "Postfix is done with the message for now")

        # A later queue run sends the deferred ones: a new connection, the first transaction.
        self.flush(qid)
        lines = self.wait_removed(qid)
        outcomes = self.pf.outcomes(qid)
        self.assertEqual(len(outcomes), len(rcpts) + len(deferred), "\n".join(lines))
        self.assertEqual(sorted(r for r, status, _ in outcomes[len(rcpts):]
                                if status == "sent"), deferred)
        active = [i for i, ln in enumerate(lines) if "(queue active)" in ln]
        self.assertEqual(len(active), 2, "\n".join(lines))
        self.assertGreater(lines.index(outcomes[len(rcpts)][2]), active[1])
        now, = self.posts(now_name)
        then, = self.posts(later_name)
        self.assertEqual(sorted(then.envelope()["rcpt_to"]), deferred)
        self.assertTrue(now.body.endswith(msg))
        self.assertTrue(then.body.endswith(msg))
        now_id, then_id = now.header("X-Smtphook-Id"), then.header("X-Smtphook-Id")
        self.assertTrue(now_id.endswith(".1") and then_id.endswith(".1"), (now_id, then_id))
        self.assertNotEqual(now_id.rsplit(".", 1)[0], then_id.rsplit(".", 1)[0])
        self.assertNotEqual(now.envelope()["client"]["port"], then.envelope()["client"]["port"])
        for r, status, ln in outcomes:
            if status == "sent":
                rid = then_id if r in deferred else now_id
                self.assertRegex(ln, r"status=sent \(250 2\.0\.0 Ok: delivered as %s\)"
                                 % re.escape(rid))

    def test_message_retried_after_451_keeps_its_key(self):
        answers = iter([503])
        self.rcv["com"].set(responder=lambda req: (next(answers, 200), [], 0))
        msg = self.message(b"retried")
        qid = self.pf.inject("alice@example.org", ["c1@example.com"], msg)
        (_, status, line), = self.wait_outcomes(qid, 1)
        self.assertEqual(status, "deferred", line)
        self.assertRegex(line, r"said: 451 4\.3\.0 ")
        self.flush(qid)
        lines = self.wait_removed(qid)
        statuses = [status for _, status, _ in self.pf.outcomes(qid)]
        self.assertEqual(statuses, ["deferred", "sent"], "\n".join(lines))
        one, two = self.posts("com")
        # Postfix sends the queued bytes again (its Received: field included): the same key
        self.assertEqual(one.body, two.body)
        self.assertTrue(two.body.endswith(msg))
        self.assertEqual(one.header("Idempotency-Key"), two.header("Idempotency-Key"))
        self.assertNotEqual(one.header("X-Smtphook-Id"), two.header("X-Smtphook-Id"))
        self.assertEqual(self.posts("net"), [])


# -- 5. Idempotency-Key --------------------------------------------------------------------------


class Keys(RoutesCase):
    def key_of(self, name, index=-1):
        return self.posts(name)[index].header("Idempotency-Key")

    def test_resent_after_451_same_key_new_id(self):
        answers = iter([503])

        def responder(req):
            return next(answers, 200), [], 0

        rcv = self.start_routed([{"match": ["*@example.com"], "endpoints": ["app"]}], ["app"])
        rcv["app"].set(responder=responder)
        rcpts = ["a@example.com", "b@example.com"]
        first = self.send_mail(body=MSG, mail_from=SENDER, rcpts=rcpts)
        self.assertReply(first, 451, "4.3.0")
        # the sender tries again later: the same bytes, in a new transaction and connection
        again = self.send_mail(body=MSG, mail_from=SENDER, rcpts=rcpts)
        self.assertReply(again, 250, "2.0.0")
        one, two = self.posts("app")
        self.assertEqual(one.body, two.body)
        self.assertEqual(one.header("Idempotency-Key"), two.header("Idempotency-Key"))
        self.assertNotEqual(one.header("X-Smtphook-Id"), two.header("X-Smtphook-Id"))
        self.assertIdInReply(one.header("X-Smtphook-Id"), first)
        self.assertIdInReply(two.header("X-Smtphook-Id"), again)

    def test_key_follows_body_sender_and_recipient_set_not_order(self):
        self.start_routed([{"match": ["*@example.com"], "endpoints": ["app"]}], ["app"])
        c = self.connect()
        self.ehlo(c)
        x, y, z = "x@example.com", "y@example.com", "z@example.com"
        sends = [
            ("base", SENDER, [x, y], MSG),
            ("reordered", SENDER, [y, x], MSG),
            ("body", SENDER, [x, y], MSG + b"One more line.\r\n"),
            ("sender", "other@example.org", [x, y], MSG),
            ("fewer", SENDER, [x], MSG),
            ("more", SENDER, [x, y, z], MSG),
            ("other", SENDER, [x, z], MSG),
            ("null sender", "", [x, y], MSG),
        ]
        for _, mail_from, rcpts, body in sends:
            self.assertReply(self.deliver(c, rcpts, body=body, mail_from=mail_from), 250)
        keys = {label: req.header("Idempotency-Key")
                for (label, _, _, _), req in zip(sends, self.posts("app"))}
        self.assertEqual(len(keys), len(sends))
        self.assertEqual(keys["reordered"], keys["base"])
        others = [keys[label] for label, _, _, _ in sends if label != "reordered"]
        self.assertEqual(len(set(others)), len(others), keys)
        # the same message again on another connection: the same key
        self.assertReply(self.send_mail(body=MSG, mail_from=SENDER, rcpts=[x, y]), 250)
        self.assertEqual(self.key_of("app"), keys["base"])

    def test_same_bytes_by_bdat_or_data_same_key(self):
        self.start_routed([{"match": ["*@example.com"], "endpoints": ["app"]}], ["app"])
        c = self.connect()
        self.ehlo(c)
        rcpts = ["a@example.com", "b@example.com"]
        self.assertReply(self.deliver(c, rcpts), 250)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        for rcpt in reversed(rcpts):
            self.assertReply(c.cmd("RCPT TO:<%s>" % rcpt), 250)
        half = len(MSG) // 2
        c.send(b"BDAT %d\r\n%s" % (half, MSG[:half]))
        self.assertReply(c.read_reply(), 250)
        c.send(b"BDAT %d LAST\r\n%s" % (len(MSG) - half, MSG[half:]))
        self.assertReply(c.read_reply(), 250, "2.0.0")
        data, bdat = self.posts("app")
        self.assertIs(bdat.envelope()["chunked"], True)
        self.assertEqual(bdat.body, data.body)
        self.assertEqual(bdat.header("Idempotency-Key"), data.header("Idempotency-Key"))

    def test_endpoints_with_the_same_share_get_the_same_key(self):
        self.start_routed(
            [{"match": ["*@example.com"], "endpoints": ["one", "two"]}], ["one", "two"])
        c = self.connect()
        self.ehlo(c)
        self.assertReply(self.deliver(c, ["a@example.com", "b@example.com"]), 250)
        self.assertEqual(self.key_of("one"), self.key_of("two"))

    def test_share_key_is_the_key_of_those_recipients_alone(self):
        self.start_routed(
            [{"match": ["*@example.com"], "endpoints": ["shared"]},
             {"match": ["*@example.net"], "endpoints": ["net", "shared"]}],
            ["shared", "net"], domains=["example.com", "example.net"])
        c = self.connect()
        self.ehlo(c)
        both = ["n1@example.net", "c1@example.com", "n2@example.net"]
        self.assertReply(self.deliver(c, both), 250)
        net_key, shared_key = self.key_of("net"), self.key_of("shared")
        self.assertNotEqual(net_key, shared_key)
        # the same message to exactly the "net" share's recipients (in another order)
        self.assertReply(self.deliver(c, ["n2@example.net", "n1@example.net"]), 250)
        self.assertEqual(self.key_of("net"), net_key)
        self.assertEqual(self.key_of("shared"), net_key)
        self.assertEqual(len(self.posts("shared")), 2)


# -- 6. --check-config on route mistakes -------------------------------------------------------


class CheckConfig(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="smtphook-itest-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.path = os.path.join(self.dir, "config.json")

    def check(self, routes, endpoints=("a", "b"), **top):
        eps = {n: {"url": "http://127.0.0.1:9/%s" % n} for n in endpoints}
        cfg = make_config(free_port(), None, endpoints=eps, routes=routes,
                          domains=["example.com", "sub.example.net"], **top)
        with open(self.path, "w", encoding="utf-8") as f:
            json.dump(cfg, f)
        return run_binary(["--config", self.path, "--check-config"])

    def assertError(self, p, key_path, message):
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertEqual(p.stdout, "")
        self.assertEqual(p.stderr, "smtphook: %s: %s: %s\n" % (self.path, key_path, message))

    def test_unknown_endpoint(self):
        p = self.check([{"match": ["*"], "endpoints": ["a", "nope"]}])
        self.assertError(p, "routes[0].endpoints[1]", 'no endpoint is named "nope"')

    def test_unused_endpoint_is_a_warning(self):
        p = self.check([{"match": ["*@example.com"], "endpoints": ["a"]}])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr, "smtphook: warning: %s: endpoints.b: no route uses this "
                                   "endpoint; it receives nothing\n" % self.path)
        self.assertEqual(p.stdout.splitlines()[0], "%s: configuration ok" % self.path)

    def test_failover_target_in_another_route_is_a_warning(self):
        # Shares, test_failover_target_of_another_route_gets_a_second_share: the warning
        # tells the operator before it happens.
        routes = [{"match": ["*@sub.example.net"], "endpoints": ["a", "b"], "policy": "failover"},
                  {"match": ["*@example.com"], "endpoints": ["b"]}]
        p = self.check(routes)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(
            p.stderr, 'smtphook: warning: %s: routes[0].endpoints[1]: "b" is a failover target '
            'here and is also in routes[1]: a message for both routes can reach it in two '
            'POSTs, one per route (each with its own recipients and Idempotency-Key); '
            '"one_route_per_transaction" keeps them apart\n' % self.path)
        # A primary that is also elsewhere is in the first round with its other share: one POST.
        p = self.check([{"match": ["*@sub.example.net"], "endpoints": ["a", "b"],
                         "policy": "failover"},
                        {"match": ["*@example.com"], "endpoints": ["a"]}])
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        p = self.check(routes, one_route_per_transaction=True)
        self.assertEqual((p.returncode, p.stderr), (0, ""))

    def test_domain_not_served(self):
        p = self.check([{"match": ["x@example.com", "*@other.test"], "endpoints": ["a", "b"]}])
        self.assertError(p, "routes[0].match[1]",
                         '"*@other.test" can never match: its domain is not one of "domains"')

    def test_exact_address_in_a_domain_not_served(self):
        p = self.check([{"match": ["sales@sub.example.com"], "endpoints": ["a", "b"]}])
        self.assertError(p, "routes[0].match[0]", '"sales@sub.example.com" can never match: '
                                                  'its domain is not one of "domains"')

    def test_subdomain_pattern_without_a_served_subdomain(self):
        p = self.check([{"match": ["*@*.example.com"], "endpoints": ["a", "b"]}])
        self.assertError(p, "routes[0].match[0]", '"*@*.example.com" can never match: no '
                                                  'domain of "domains" is below its domain')

    def test_route_after_a_catchall(self):
        p = self.check([{"match": ["*"], "endpoints": ["a"]},
                        {"match": ["x@example.com"], "endpoints": ["b"]}])
        self.assertError(p, "routes[1].match[0]",
                         '"x@example.com" can never match: routes[0].match[0] ("*") comes '
                         'first and takes every address it would')

    def test_pattern_shadowed_by_an_earlier_route(self):
        p = self.check([{"match": ["*@example.com"], "endpoints": ["a"]},
                        {"match": ["x@sub.example.net", "sales@example.com"], "endpoints": ["b"]}])
        self.assertError(p, "routes[1].match[1]",
                         '"sales@example.com" can never match: routes[0].match[0] '
                         '("*@example.com") comes first and takes every address it would')

    def test_domain_shadowed_by_an_earlier_subdomain_pattern(self):
        p = self.check([{"match": ["*@*.example.net"], "endpoints": ["a"]},
                        {"match": ["*@SUB.example.net"], "endpoints": ["b"]}])
        self.assertError(p, "routes[1].match[0]",
                         '"*@SUB.example.net" can never match: routes[0].match[0] '
                         '("*@*.example.net") comes first and takes every address it would')

    def test_extension_shadowed_through_the_delimiter(self):
        p = self.check([{"match": ["sales@example.com"], "endpoints": ["a"]},
                        {"match": ["Sales+vip@example.com"], "endpoints": ["b"]}],
                       recipient_delimiter="+")
        self.assertError(p, "routes[1].match[0]",
                         '"Sales+vip@example.com" can never match: routes[0].match[0] '
                         '("sales@example.com") comes first and takes every address it would')

    def test_narrow_routes_first_are_fine(self):
        p = self.check([{"match": ["sales@example.com"], "endpoints": ["a"]},
                        {"match": ["*@example.com", "*@*.example.net"], "endpoints": ["b"]},
                        {"match": ["*"], "endpoints": ["b", "a"]}],
                       recipient_delimiter="+")
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        self.assertEqual(p.stdout.splitlines()[0], "%s: configuration ok" % self.path)




class FailoverTiming(SmtphookTestCase):
    """A failover route moves on as soon as its endpoint failed, whatever other routes of the
    message are still doing (found in review)."""

    def test_failover_standby_not_held_up_by_another_route(self):
        slow = self.start_receiver(delay=7.0)  # route A's only endpoint: 200 after 7 s
        primary = self.start_receiver(status=503)  # route B: failover primary -> standby
        standby = self.start_receiver(delay=1.5)  # the standby accepts within 1.5 s

        def ep(r):
            return {"url": r.url(), "timeout_ms": 10000, "retry": {"max_attempts": 1}}

        self.start_smtphook(
            endpoints={"slow": ep(slow), "primary": ep(primary), "standby": ep(standby)},
            domains=["example.com", "example.org"],
            routes=[{"match": ["*@example.com"], "endpoints": ["slow"]},
                    {"match": ["*@example.org"], "endpoints": ["primary", "standby"],
                     "policy": "failover"}],
            limits={"transaction_timeout_ms": 8000})
        c = self.connect(timeout=20)
        self.ehlo(c)
        t0 = time.monotonic()
        r = self.transaction(c, "s@example.net", ["a@example.com", "b@example.org"],
                             b"Subject: x\r\n\r\nhi\r\n", reply_timeout=20)
        started = [q.arrived - t0 for q in standby.requests]
        self.assertTrue(started and started[0] < 2.0,
                        "standby tried at %s s (only once route A's endpoint answered)" % started)
        self.assertReply(r, 250, msg="every endpoint wanted accepted in time: %s" % r)


class ManyRoutes(SmtphookTestCase):
    """Shares among many routes that the recipients do not match."""

    MSG = b"Subject: routes\r\n\r\nhello\r\n"

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
        reply = self.send_mail(body=self.MSG, rcpts=("zed@example.com", "sales+q@example.com",
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
