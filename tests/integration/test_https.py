"""test_https.py - verified HTTPS endpoints: the endpoint's certificate must chain to the
configured CA (or the system's) and name the host, a client certificate is presented for
mutual TLS, and every TLS failure is a 451 (the sender retries), never an unverified post.

The PKI is made per test class by certs.py; the receiver serves HTTPS with Python's ssl."""

import os
import shutil
import ssl
import tempfile
import unittest

from certs import CA
from testcase import SmtphookTestCase

# Every byte value, leading dots and a bare CR and LF: the body must arrive byte for byte.
BODY = (b"Subject: https\r\n\r\n.leading dot\r\n..two dots\r\nbare\rCR and bare\nLF\r\n"
        + bytes(range(256)).replace(b"\r", b"").replace(b"\n", b"") + b"\r\n")
SIMPLE = b"Subject: https\r\n\r\nhello\r\n"


class HttpsEndpoint(SmtphookTestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="smtphook-https-")
        cls.ca = CA(cls.dir)
        cls.other_ca = CA(cls.dir, name="smtphook other CA")
        # The receiver listens on 127.0.0.1: its certificate names that address.
        cls.server_cert = cls.ca.issue("receiver", names=("127.0.0.1", "localhost"))
        cls.wrong_name_cert = cls.ca.issue("wrong-name", names=("other.example",))
        cls.expired_cert = cls.ca.issue("expired", names=("127.0.0.1",), expired=True)
        cls.client_cert = cls.ca.issue("client", names=("smtphook.test",), client=True,
                                       organization="Acme")
        cls.foreign_client_cert = cls.other_ca.issue("foreign-client", names=("smtphook.test",),
                                                     client=True)
        cls.not_pem = os.path.join(cls.dir, "not-a-ca.pem")
        with open(cls.not_pem, "w", encoding="ascii") as f:
            f.write("this is not a certificate\n")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    # -- helpers --------------------------------------------------------------------------

    def tls_receiver(self, cert=None, client_ca=None):
        """An HTTPS receiver with cert (default: the test CA's certificate for 127.0.0.1);
        client_ca: require a client certificate signed by that CA file."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*(cert or self.server_cert))
        if client_ca is not None:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cafile=client_ca)
        return self.start_receiver(ssl_context=ctx)

    def endpoint(self, rcv, **tls):
        return {"url": rcv.url(), "timeout_ms": 10000, "connect_timeout_ms": 2000, **tls}

    def start(self, rcv, **tls):
        return self.start_smtphook(endpoints={"app": self.endpoint(rcv, **tls)})

    def assertTlsFailure(self, rcv, reply):
        """A 451 (temporary: the sender retries) and nothing posted."""
        self.assertEqual(reply.code, 451, "reply %s" % reply)
        self.assertTrue(reply.esc and reply.esc.startswith("4."), "reply %s" % reply)
        self.assertNoRequests(rcv)

    # -- server certificate ---------------------------------------------------------------

    def test_trusted_ca_delivers_byte_exact(self):
        rcv = self.tls_receiver()
        self.start(rcv, ca_file=self.ca.ca_file)
        self.assertTrue(rcv.url().startswith("https://"))
        r = self.send_mail(BODY)
        self.assertReply(r, 250, "2.0.0")
        req = rcv.wait_for(1)[0]
        self.assertEqual(req.body, BODY)
        self.assertEqual(req.header("Authorization"), None)  # none configured here
        self.assertIsNone(req.client_cert, "no client certificate was configured")
        # The kept-alive TLS connection is reused for the next message.
        self.assertReply(self.send_mail(SIMPLE), 250, "2.0.0")
        reqs = rcv.wait_for(2)
        self.assertEqual(reqs[1].body, SIMPLE)
        self.assertEqual(reqs[0].client_port, reqs[1].client_port)

    def test_wrong_ca_is_451_and_nothing_posted(self):
        rcv = self.tls_receiver()
        self.start(rcv, ca_file=self.other_ca.ca_file)
        r = self.send_mail(BODY)
        self.assertTlsFailure(rcv, r)
        self.assertReply(r, 451, "4.7.5")
        self.assertRegex(r.text, r"TLS")
        # The log says which check failed, so the operator knows what to fix.
        self.assertTrue(self.sh.wait_log(r"endpoint app failed for id=\S+: .*certificate"),
                        self.sh.log())

    def test_system_cas_do_not_trust_the_test_ca(self):
        rcv = self.tls_receiver()
        self.start(rcv)  # no ca_file: the system's CAs
        self.assertTlsFailure(rcv, self.send_mail(BODY))

    def test_host_name_mismatch_is_451(self):
        rcv = self.tls_receiver(cert=self.wrong_name_cert)
        self.start(rcv, ca_file=self.ca.ca_file)
        r = self.send_mail(BODY)
        self.assertTlsFailure(rcv, r)
        self.assertReply(r, 451, "4.7.5")

    def test_expired_certificate_is_451(self):
        rcv = self.tls_receiver(cert=self.expired_cert)
        self.start(rcv, ca_file=self.ca.ca_file)
        self.assertTlsFailure(rcv, self.send_mail(BODY))

    def test_missing_ca_file_is_451(self):
        rcv = self.tls_receiver()
        self.start(rcv, ca_file=os.path.join(self.dir, "no-such-ca.pem"))
        r = self.send_mail(BODY)
        self.assertTlsFailure(rcv, r)
        self.assertReply(r, 451, "4.7.5")

    def test_ca_file_without_certificates_is_451(self):
        rcv = self.tls_receiver()
        self.start(rcv, ca_file=self.not_pem)
        r = self.send_mail(BODY)
        self.assertTlsFailure(rcv, r)
        self.assertReply(r, 451, "4.7.5")

    def test_each_endpoint_trusts_only_its_own_cas(self):
        # One process, one connection cache and CA cache: the trusted endpoint's CA must not
        # leak to the others, in either order, message after message.
        good = self.tls_receiver()
        wrong = self.tls_receiver()
        system = self.tls_receiver()
        self.start_smtphook(endpoints={
            "wrong": self.endpoint(wrong, ca_file=self.other_ca.ca_file),
            "good": self.endpoint(good, ca_file=self.ca.ca_file),
            "system": self.endpoint(system),
        })
        for n in range(1, 3):
            r = self.send_mail(SIMPLE)
            self.assertReply(r, 451, "4.7.5")
            self.assertEqual(len(good.wait_for(n)), n)
            self.assertEqual(good.requests[-1].body, SIMPLE)
        self.assertNoRequests(wrong)
        self.assertNoRequests(system, settle=0)

    # -- client certificate (mutual TLS) --------------------------------------------------

    def test_client_certificate_presented(self):
        rcv = self.tls_receiver(client_ca=self.ca.ca_file)
        cert, key = self.client_cert
        self.start(rcv, ca_file=self.ca.ca_file, client_cert=cert, client_key=key)
        r = self.send_mail(BODY)
        self.assertReply(r, 250, "2.0.0")
        req = rcv.wait_for(1)[0]
        self.assertEqual(req.body, BODY)
        self.assertEqual(req.client_subject(),
                         {"organizationName": "Acme", "commonName": "smtphook.test"})

    def test_without_client_certificate_is_451(self):
        rcv = self.tls_receiver(client_ca=self.ca.ca_file)
        self.start(rcv, ca_file=self.ca.ca_file)
        self.assertTlsFailure(rcv, self.send_mail(BODY))

    def test_client_certificate_from_another_ca_is_451(self):
        rcv = self.tls_receiver(client_ca=self.ca.ca_file)
        cert, key = self.foreign_client_cert
        self.start(rcv, ca_file=self.ca.ca_file, client_cert=cert, client_key=key)
        self.assertTlsFailure(rcv, self.send_mail(BODY))

    def test_missing_client_certificate_file_is_451(self):
        rcv = self.tls_receiver(client_ca=self.ca.ca_file)
        _, key = self.client_cert
        self.start(rcv, ca_file=self.ca.ca_file,
                   client_cert=os.path.join(self.dir, "no-such-client.pem"), client_key=key)
        r = self.send_mail(BODY)
        self.assertTlsFailure(rcv, r)
        self.assertReply(r, 451, "4.7.5")


if __name__ == "__main__":
    unittest.main()
