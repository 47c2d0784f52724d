"""test_cli.py - the command line (--version, --help, --check-config, quick start) and the
process lifecycle (configuration errors, SIGTERM)."""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from certs import CA
from helpers import free_port
from smtp_client import Closed, ProtocolError, SMTPClient
from smtphook_process import SOURCE_DIR, make_config, run_binary
from testcase import SmtphookTestCase

MSG = b"Subject: cli\r\n\r\nbody\r\n"


class Cli(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="smtphook-itest-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def write_config(self, cfg, name="config.json"):
        path = os.path.join(self.dir, name)
        with open(path, "w", encoding="utf-8") as f:
            if isinstance(cfg, str):
                f.write(cfg)
            else:
                json.dump(cfg, f)
        return path

    def check(self, cfg, env=None):
        return run_binary(["--config", self.write_config(cfg), "--check-config"], env=env)

    def good(self):
        return make_config(free_port(), "http://127.0.0.1:9/inbound")

    def assertRejected(self, p, *words):
        self.assertNotEqual(p.returncode, 0, "accepted: " + p.stdout + p.stderr)
        out = p.stdout + p.stderr
        for w in words:
            self.assertIn(w, out, "error does not name %r: %s" % (w, out))

    def test_version(self):
        p = run_binary(["--version"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout.strip(), r"^smtphook \d+\.\d+\.\d+")

    def test_help(self):
        p = run_binary(["--help"])
        self.assertEqual(p.returncode, 0, p.stderr)
        for opt in ("--config", "--listen", "--webhook", "--check-config", "--version",
                    "--tls-cert", "--tls-key"):
            self.assertIn(opt, p.stdout)

    def test_unknown_option_fails(self):
        p = run_binary(["--frobnicate"])
        self.assertNotEqual(p.returncode, 0)

    def example_with_certificates(self):
        """config.example.json with its /certs/ paths pointing at real test certificates
        (--check-config loads them, as a start would)."""
        d = tempfile.mkdtemp(prefix="smtphook-example-")
        self.addCleanup(shutil.rmtree, d, True)
        cert, key = CA(d).issue("mx", names=("mx.example.com",))
        with open(os.path.join(SOURCE_DIR, "config.example.json"), encoding="utf-8") as f:
            text = f.read()
        self.assertIn("/certs/fullchain.pem", text)
        text = text.replace("/certs/fullchain.pem", cert).replace("/certs/privkey.pem", key)
        path = os.path.join(d, "config.json")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path, cert

    def test_check_config_example(self):
        path, _ = self.example_with_certificates()
        p = run_binary(["--config", path, "--check-config"],
                       env={"SMTPHOOK_APP_TOKEN": "example-token"})
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertRegex((p.stdout + p.stderr).lower(), r"\bok\b")

    def test_check_config_loads_the_certificates(self):
        path, cert = self.example_with_certificates()
        os.unlink(cert)
        p = run_binary(["--config", path, "--check-config"],
                       env={"SMTPHOOK_APP_TOKEN": "example-token"})
        self.assertRejected(p, "tls.certificates[0].cert")
        self.assertIn(cert, p.stderr)

    def test_check_config_example_without_token_names_it(self):
        example = os.path.join(SOURCE_DIR, "config.example.json")
        p = run_binary(["--config", example, "--check-config"], unset=["SMTPHOOK_APP_TOKEN"])
        self.assertRejected(p, "SMTPHOOK_APP_TOKEN")

    def test_environment_gives_every_option(self):
        """A container without a config file runs from environment variables alone."""
        port, admin = free_port(), free_port()
        env = {"SMTPHOOK_WEBHOOK": "http://127.0.0.1:9/in",
               "SMTPHOOK_LISTEN": "127.0.0.1:%d, 127.0.0.1:%d" % (port, free_port()),
               "SMTPHOOK_HOSTNAME": "mx.env.test", "SMTPHOOK_ADMIN": "127.0.0.1:%d" % admin}
        p = run_binary(["--check-config"], env=env)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        p = run_binary(["--check-config"], env=dict(env, SMTPHOOK_LISTEN="not-an-address"))
        self.assertRejected(p, "--listen")
        # the option wins over the variable
        p = run_binary(["--check-config", "--hostname", "bad name!"], env=env)
        self.assertRejected(p, "--hostname")

    def test_unwritable_spool_directory_is_a_startup_error(self):
        if os.geteuid() == 0:
            self.skipTest("root writes into a read-only directory")
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d, True)
        os.chmod(d, 0o500)
        self.addCleanup(os.chmod, d, 0o700)
        cfg = self.good()
        cfg["spool"]["directory"] = d
        p = self.check(cfg, env={"TOKEN": "t"})
        self.assertRejected(p, "spool.directory")
        self.assertIn("cannot create files there", p.stderr)

    def test_spool_directory_on_a_read_only_mount(self):
        """What --read-only containers hit: a directory that exists but takes no file."""
        if os.geteuid() != 0 or shutil.which("mount") is None:
            self.skipTest("needs root to mount a read-only tmpfs")
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d, True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", d],
                           capture_output=True, text=True)
        if r.returncode != 0:
            self.skipTest("cannot mount a tmpfs here: %s" % r.stderr.strip())
        self.addCleanup(subprocess.run, ["umount", d])
        cfg = self.good()
        cfg["spool"]["directory"] = d
        p = self.check(cfg, env={"TOKEN": "t"})
        self.assertRejected(p, "spool.directory")
        self.assertIn("Read-only file system", p.stderr)

    def test_probe(self):
        p = run_binary(["--probe", "http://127.0.0.1:9/readyz"])
        self.assertEqual(p.returncode, 1)
        self.assertIn("--probe", p.stderr)

    def test_check_config_good(self):
        p = self.check(self.good(), env={"TOKEN": "t"})
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_unknown_top_level_key(self):
        cfg = self.good()
        cfg["bogus_setting"] = 1
        self.assertRejected(self.check(cfg, env={"TOKEN": "t"}), "bogus_setting")

    def test_unknown_nested_key(self):
        cfg = self.good()
        cfg["limits"]["max_recipeints"] = 100
        self.assertRejected(self.check(cfg, env={"TOKEN": "t"}), "max_recipeints")

    def test_unknown_endpoint_key(self):
        cfg = self.good()
        cfg["endpoints"]["app"]["timeout"] = 5
        self.assertRejected(self.check(cfg, env={"TOKEN": "t"}), "timeout")

    def test_unset_variable_named(self):
        cfg = self.good()
        cfg["endpoints"]["app"]["headers"] = {"Authorization": "Bearer ${ITEST_SURELY_UNSET}"}
        self.assertRejected(run_binary(["--config", self.write_config(cfg), "--check-config"],
                                       env={"TOKEN": "t"}, unset=["ITEST_SURELY_UNSET"]),
                            "ITEST_SURELY_UNSET")

    def test_values_below_minimum_rejected_naming_the_key(self):
        for key, bad in (("max_recipients", 99), ("max_message_bytes", 65535),
                         ("max_command_line_bytes", 511), ("idle_timeout_ms", 999),
                         ("transaction_timeout_ms", 999)):
            with self.subTest(key=key):
                cfg = self.good()
                cfg["limits"][key] = bad
                self.assertRejected(self.check(cfg, env={"TOKEN": "t"}), key)

    def test_minimum_values_accepted(self):
        cfg = self.good()
        cfg["limits"].update({"max_recipients": 100, "max_message_bytes": 65536,
                              "max_command_line_bytes": 512, "idle_timeout_ms": 1000,
                              "transaction_timeout_ms": 1000})
        cfg["endpoints"]["app"].update({"timeout_ms": 100, "connect_timeout_ms": 100})
        p = self.check(cfg, env={"TOKEN": "t"})
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_endpoint_timeout_below_minimum_rejected(self):
        cfg = self.good()
        cfg["endpoints"]["app"]["timeout_ms"] = 99
        self.assertRejected(self.check(cfg, env={"TOKEN": "t"}), "timeout_ms")

    def test_wrong_type_rejected(self):
        cfg = self.good()
        cfg["limits"]["max_errors"] = "20"
        self.assertRejected(self.check(cfg, env={"TOKEN": "t"}), "max_errors")

    def test_invalid_json_rejected(self):
        path = self.write_config('{"hostname": "x",')
        p = run_binary(["--config", path, "--check-config"])
        self.assertNotEqual(p.returncode, 0)

    def test_missing_file_rejected(self):
        p = run_binary(["--config", os.path.join(self.dir, "nope.json"), "--check-config"])
        self.assertNotEqual(p.returncode, 0)

    def quick_args(self):
        return ["--listen", "127.0.0.1:%d" % free_port(), "--webhook", "http://127.0.0.1:9/in",
                "--check-config"]

    def test_tls_cert_without_key_is_an_error(self):
        p = run_binary(self.quick_args() + ["--tls-cert", os.path.join(self.dir, "c.pem")])
        self.assertRejected(p, "--tls-cert", "--tls-key")
        self.assertNotIn("ok", p.stdout)

    def test_tls_key_without_cert_is_an_error(self):
        p = run_binary(self.quick_args() + ["--tls-key", os.path.join(self.dir, "c.key")])
        self.assertRejected(p, "--tls-key", "--tls-cert")

    def test_check_config_accepts_tls(self):
        # Real files, so the check holds also when --check-config loads the certificates.
        ca = CA(self.dir)
        cert, key = ca.issue("mx", names=("mx.test",))
        client_cert, client_key = ca.issue("client", names=("smtphook.test",), client=True)
        cfg = self.good()
        cfg["tls"] = {"certificates": [{"cert": cert, "key": key}], "min_version": "TLSv1.3",
                      "ciphers": "ECDHE-ECDSA-AES128-GCM-SHA256",
                      "ciphersuites": "TLS_AES_128_GCM_SHA256", "groups": "X25519:P-256",
                      "request_client_cert": True, "handshake_timeout_ms": 10000}
        cfg["listeners"] = [
            {"address": "127.0.0.1:%d" % free_port()},
            {"address": "127.0.0.1:%d" % free_port(), "tls": "starttls", "require_tls": True},
            {"address": "127.0.0.1:%d" % free_port(), "tls": "implicit"},
            {"address": "127.0.0.1:%d" % free_port(), "tls": "none"}]
        cfg["endpoints"]["app"].update({"url": "https://127.0.0.1:9/inbound",
                                        "ca_file": ca.ca_file, "client_cert": client_cert,
                                        "client_key": client_key})
        p = self.check(cfg, env={"TOKEN": "t"})
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertRegex(p.stdout, r"\bok\b")

        # The same certificate from the command line, with --listen.
        p = run_binary(self.quick_args() + ["--tls-cert", cert, "--tls-key", key])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_check_config_prints_the_listeners_it_ends_up_with(self):
        cfg = self.good()
        a, b, admin = free_port(), free_port(), free_port()
        cfg["listeners"] = [
            {"address": "127.0.0.1:%d" % a, "proxy_protocol": "any",
             "trusted_proxies": ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]},
            {"address": "127.0.0.1:%d" % b}]
        cfg["admin"] = {"listen": "127.0.0.1:%d" % admin}
        p = self.check(cfg, env={"TOKEN": "t"})
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        lines = p.stdout.splitlines()
        self.assertEqual(lines[1:4], [
            "listener 127.0.0.1:%d: tls none, proxy_protocol any, trusted_proxies 10.0.0.0/8 "
            "2001:db8::/32 192.0.2.7/32" % a,
            "listener 127.0.0.1:%d: tls none, proxy_protocol none" % b,
            "admin 127.0.0.1:%d" % admin])
        # --listen and --admin (or their variables) replace them: the check shows what runs
        c = free_port()
        p = run_binary(["--config", self.write_config(cfg), "--check-config"],
                       env={"TOKEN": "t", "SMTPHOOK_LISTEN": "127.0.0.1:%d" % c,
                            "SMTPHOOK_ADMIN": "127.0.0.1:%d" % b})
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(p.stdout.splitlines()[1:3], [
            "listener 127.0.0.1:%d: tls none, proxy_protocol none" % c,
            "admin 127.0.0.1:%d" % b])
        # and says what the file's listeners lose (not for listeners that set nothing)
        self.assertEqual(p.stderr, "smtphook: warning: --listen: replaces the file's "
                         "\"listeners\" and drops the proxy_protocol of 127.0.0.1:%d: a "
                         "--listen or SMTPHOOK_LISTEN listener has no PROXY protocol and the "
                         "default TLS mode\n" % a)
        del cfg["listeners"][0]
        p = run_binary(["--config", self.write_config(cfg), "--check-config"],
                       env={"TOKEN": "t", "SMTPHOOK_LISTEN": "127.0.0.1:%d" % c})
        self.assertEqual((p.returncode, p.stderr), (0, ""))

    def test_image_default_configuration_with_the_webhook_variable(self):
        """docker/config.json, the image's configuration: SMTPHOOK_WEBHOOK gives its missing
        endpoint, for smtphook and for "smtphook queue" run in the container alike."""
        image_cfg = os.path.join(SOURCE_DIR, "docker", "config.json")
        env = {"SMTPHOOK_CONFIG": image_cfg, "SMTPHOOK_WEBHOOK": "http://app:3000/inbound",
               "SMTPHOOK_QUEUE_DIR": os.path.join(self.dir, "queue")}
        unset = ["SMTPHOOK_LISTEN", "SMTPHOOK_ADMIN", "SMTPHOOK_DELIVERY"]
        p = run_binary(["--check-config"], env=env, unset=unset)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(p.stdout.splitlines()[:3], [
            "%s: configuration ok" % image_cfg,
            "listener 0.0.0.0:2525: tls none, proxy_protocol none", "admin 0.0.0.0:9025"])
        for delivery in ("sync", "queue"):
            p = run_binary(["queue", "list"], env=dict(env, SMTPHOOK_DELIVERY=delivery),
                           unset=unset)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertIn("0 entries", p.stdout)
        # without the variable, both say what is missing
        for args in (["--check-config"], ["queue", "list"]):
            p = run_binary(args, env=env, unset=unset + ["SMTPHOOK_WEBHOOK"])
            self.assertRejected(p, "endpoint", "--webhook")

    def test_tls_errors_name_the_key(self):
        cfg = self.good()
        cfg["listeners"][0]["tls"] = "starttls"
        self.assertRejected(self.check(cfg, env={"TOKEN": "t"}), "listeners[0].tls",
                            "tls.certificates")
        cfg = self.good()
        cfg["tls"] = {"certificates": [{"cert": "c.pem", "key": "k.pem"}],
                      "min_version": "TLSv1.1"}
        self.assertRejected(self.check(cfg, env={"TOKEN": "t"}), "tls.min_version")
        cfg = self.good()
        cfg["endpoints"]["app"]["ca_file"] = "ca.pem"  # the URL is http://
        self.assertRejected(self.check(cfg, env={"TOKEN": "t"}), "endpoints.app.ca_file",
                            "https://")

    def test_bad_config_does_not_start(self):
        cfg = self.good()
        cfg["bogus_setting"] = 1
        p = run_binary(["--config", self.write_config(cfg)], env={"TOKEN": "t"}, timeout=10)
        self.assertRejected(p, "bogus_setting")


class QuickStart(SmtphookTestCase):
    def test_listen_webhook_accepts_any_domain(self):
        rcv = self.start_receiver()
        port = free_port()
        self.start_smtphook(config=False, port=port,
                            args=["--listen", "127.0.0.1:%d" % port, "--webhook",
                                  rcv.url("/hook"), "--hostname", "quick.test"])
        c = self.connect()
        self.assertRegex(c.banner.text, r"^quick\.test ESMTP")
        self.ehlo(c)
        r = self.transaction(c, "someone@anywhere.test", ["rcpt@any-domain.example"], MSG)
        self.assertReply(r, 250, "2.0.0")
        req = rcv.wait_for(1)[0]
        self.assertEqual(req.path, "/hook")
        self.assertEqual(req.envelope()["rcpt_to"], ["rcpt@any-domain.example"])
        self.assertEqual(req.body, MSG)

    def test_wildcard_domain_in_file(self):
        rcv = self.start_receiver()
        self.start_smtphook(rcv, domains=["*"])
        r = self.send_mail(rcpts=("x@whatever.example",))
        self.assertReply(r, 250)

    def test_flags_override_file(self):
        rcv = self.start_receiver()
        port = free_port()
        cfg = make_config(free_port(), "http://127.0.0.1:9/never")
        self.start_smtphook(config=cfg, port=port,
                            args=["--listen", "127.0.0.1:%d" % port, "--webhook", rcv.url()])
        self.assertReply(self.send_mail(), 250)
        self.assertEqual(len(rcv.wait_for(1)), 1)


class Sigterm(SmtphookTestCase):
    def test_idle_connection_exits_zero(self):
        rcv = self.start_receiver()
        sh = self.start_smtphook(rcv)
        c = self.connect()
        self.ehlo(c)
        t0 = time.monotonic()
        sh.signal(signal.SIGTERM)
        rc = sh.wait(10)
        self.assertIsNotNone(rc, "did not exit within 10 s with an idle connection open")
        self.assertEqual(rc, 0, sh.log())
        self.assertLess(time.monotonic() - t0, 5)
        self.assertReply(c.read_reply(timeout=2), 421, "4.3.2")
        self.assertTrue(c.wait_closed(2))

    def test_running_delivery_finishes_then_exit_zero(self):
        rcv = self.start_receiver(delay=2.0)
        sh = self.start_smtphook(rcv)
        c = self.connect()
        self.ehlo(c)
        self.send_message(c, "a@example.org", ["b@example.com"], MSG)
        rcv.wait_for(1, timeout=5)
        sh.signal(signal.SIGTERM)
        r = c.read_reply(timeout=10)
        self.assertReply(r, 250, "2.0.0")
        rc = sh.wait(10)
        self.assertEqual(rc, 0, sh.log())

    def test_no_new_connections_after_sigterm(self):
        rcv = self.start_receiver(delay=2.0)
        sh = self.start_smtphook(rcv)
        c = self.connect()
        self.ehlo(c)
        self.send_message(c, "a@example.org", ["b@example.com"], MSG)
        rcv.wait_for(1, timeout=5)
        sh.signal(signal.SIGTERM)
        time.sleep(0.3)
        try:
            c2 = SMTPClient(sh.port, timeout=2)
        except (OSError, Closed, ProtocolError):
            c2 = None  # refused or closed at once: both fine
        if c2 is not None:
            self.addCleanup(c2.close)
            self.assertNotEqual(c2.banner.code, 220, "new session accepted while stopping")
        self.assertReply(c.read_reply(timeout=10), 250)
        self.assertEqual(sh.wait(10), 0, sh.log())

    def test_transaction_in_data_finishes_after_sigterm(self):
        rcv = self.start_receiver()
        sh = self.start_smtphook(rcv)
        c = self.connect()
        self.ehlo(c)
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), 250)
        self.assertReply(c.cmd("RCPT TO:<b@example.com>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(b"Subject: half\r\n\r\nfirst half\r\n")
        time.sleep(0.2)
        sh.signal(signal.SIGTERM)
        time.sleep(0.3)
        c.send(b"second half\r\n.\r\n")
        self.assertReply(c.read_reply(timeout=10), 250, "2.0.0")
        self.assertEqual(rcv.wait_for(1)[0].body,
                         b"Subject: half\r\n\r\nfirst half\r\nsecond half\r\n")
        self.assertEqual(sh.wait(10), 0, sh.log())

    def test_shutdown_timeout_bounds_the_wait(self):
        rcv = self.start_receiver(delay=30)
        sh = self.start_smtphook(rcv, limits={"shutdown_timeout_ms": 1000,
                                              "transaction_timeout_ms": 60000},
                                 endpoints={"app": {"url": rcv.url(), "timeout_ms": 60000}})
        c = self.connect()
        self.ehlo(c)
        self.send_message(c, "a@example.org", ["b@example.com"], MSG)
        rcv.wait_for(1, timeout=5)
        t0 = time.monotonic()
        sh.signal(signal.SIGTERM)
        rc = sh.wait(10)
        self.assertIsNotNone(rc, "still running 10 s after SIGTERM with shutdown_timeout_ms 1000")
        self.assertEqual(rc, 0, sh.log())
        self.assertLess(time.monotonic() - t0, 5)
        try:
            r = c.read_reply(timeout=1)
        except Closed:
            r = None
        if r is not None:  # never a 250 for a message the app did not confirm
            self.assertEqual(r.code // 100, 4, str(r))

    def test_json_log_lines(self):
        """log_format json: every stderr line one JSON object with time, level and msg, the
        transaction line among them, quotes in client text escaped."""
        rcv = self.start_receiver()
        sh = self.start_smtphook(rcv, log_format="json")
        c = self.connect()
        self.assertReply(c.cmd('EHLO "quoted"\\name'), 250)  # quotes and a backslash in the log
        self.assertReply(self.transaction(c, '"a b"@example.org', ["r@example.com"], MSG), 250)
        c.cmd("QUIT")
        self.assertTrue(sh.wait_log(r'"msg":"txn id='))
        records = [json.loads(line) for line in sh.log().splitlines()]
        self.assertTrue(records)
        for rec in records:
            self.assertEqual(sorted(rec), ["level", "msg", "time"])
            self.assertRegex(rec["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertIn(rec["level"], ("error", "warn", "info", "debug"))
        txn = [r["msg"] for r in records if r["msg"].startswith("txn id=")]
        self.assertEqual(len(txn), 1)
        self.assertIn('from=<"a b"@example.org>', txn[0])
        self.assertIn('helo="quoted"\\name', txn[0])

    def test_sigint_exits_zero(self):
        rcv = self.start_receiver()
        sh = self.start_smtphook(rcv)
        sh.signal(signal.SIGINT)
        self.assertEqual(sh.wait(10), 0, sh.log())


if __name__ == "__main__":
    unittest.main()
