"""rails_app.py - a real Rails 6.1 Action Mailbox app for the integration tests (Python
standard library only).

RailsApp starts apps/rails/server.rb (Debian's system gems, WEBrick on 127.0.0.1) with one
Action Mailbox ingress enabled (relay, mailgun, sendgrid, or "all"), its own temporary
directory (SQLite database, Active Storage files, log) and reads back what its mailboxes
processed: one record per email with the raw bytes Action Mailbox stored. Read emails() and
log() before stop(), which removes the directory. Tests are skipped when ruby or the Rails
gems are not installed.
"""

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from helpers import HOST, free_port

SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "apps", "rails", "server.rb")
START_TIMEOUT = 30.0  # seconds for the app to print its ready line
STOP_TIMEOUT = 10.0  # seconds after SIGTERM before SIGKILL
DEFAULT_PASSWORD = "itest-ingress-password"
DEFAULT_SIGNING_KEY = "itest-mailgun-signing-key"
GEMS = ["railties", "actionmailbox", "activestorage", "activerecord", "sqlite3", "webrick"]

_missing = None  # cached result of _check_installed(): None (not checked), "" (ok), or reason


def _check_installed():
    global _missing
    if _missing is None:
        if shutil.which("ruby") is None:
            _missing = "ruby is not installed"
        else:
            script = "".join('gem "%s";' % g for g in GEMS)  # installed? (no loading)
            res = subprocess.run(["ruby", "-e", script], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            first = (res.stderr.decode(errors="replace").splitlines() or [""])[0]
            _missing = "" if res.returncode == 0 else (
                "Rails gems missing (needs %s): %s" % (", ".join(GEMS), first[:300]))
    if _missing:
        raise unittest.SkipTest(_missing)


class RailsApp:
    """The Rails app with one ingress. password: basic auth password for relay and sendgrid
    (user "actionmailbox"); signing_key: Mailgun's HMAC key; max_form_bytes: Rack's limit on
    the form fields it buffers (RACK_MULTIPART_BUFFERED_UPLOAD_BYTESIZE_LIMIT; None keeps
    Rack's 16 MiB, over which the Mailgun and SendGrid ingresses answer 400)."""

    def __init__(self, ingress, password=None, signing_key=None, max_form_bytes=None):
        self.ingress = ingress
        self.max_form_bytes = max_form_bytes
        self.password = password or DEFAULT_PASSWORD
        self.signing_key = signing_key or DEFAULT_SIGNING_KEY
        self.port = None
        self.proc = None
        self.dir = None
        self.startup_seconds = None  # how long start() waited for the ready line

    def start(self, timeout=START_TIMEOUT):
        _check_installed()
        self.dir = tempfile.mkdtemp(prefix="itest-rails-")
        self.port = free_port()
        env = dict(os.environ, RAILS_INBOUND_EMAIL_PASSWORD=self.password,
                   MAILGUN_INGRESS_SIGNING_KEY=self.signing_key)
        for name in ("RAILS_MASTER_KEY", "MAILGUN_INGRESS_API_KEY", "DATABASE_URL",
                     "RACK_MULTIPART_BUFFERED_UPLOAD_BYTESIZE_LIMIT"):
            env.pop(name, None)  # would override or break the settings above
        if self.max_form_bytes is not None:
            env["RACK_MULTIPART_BUFFERED_UPLOAD_BYTESIZE_LIMIT"] = str(self.max_form_bytes)
        began = time.monotonic()
        with open(self._log_path(), "wb") as log:
            self.proc = subprocess.Popen(
                ["ruby", SERVER, "--port", str(self.port), "--ingress", self.ingress,
                 "--dir", self.dir],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
        ready = ("READY %d\n" % self.port).encode()
        while ready not in self._read(self._log_path()):
            if self.proc.poll() is not None:
                log = self.log()
                self.stop()
                raise RuntimeError("Rails app exited (%s) before it was ready:\n%s"
                                   % (self.proc.returncode, log[-3000:]))
            if time.monotonic() - began > timeout:
                log = self.log()
                self.stop()
                raise RuntimeError("Rails app not ready after %.0f s:\n%s" % (timeout, log[-3000:]))
            time.sleep(0.05)
        self.startup_seconds = time.monotonic() - began
        return self

    def url(self, path):
        return "http://%s:%d%s" % (HOST, self.port, path)

    def emails(self):
        """Every email a mailbox processed, oldest first: dicts with mailbox ("support",
        "catchall"), message_id, to, recipients, x_original_to, subject, inbound_email_id and
        raw (bytes, as Active Storage stored them)."""
        out = []
        for line in self._read(os.path.join(self.dir, "emails.jsonl")).splitlines():
            rec = json.loads(line)
            rec["raw"] = base64.b64decode(rec["raw"])
            out.append(rec)
        return out

    def wait_emails(self, n, timeout=10.0):
        """The emails once there are at least n; AssertionError after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.emails()
            if len(got) >= n or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if len(got) < n:
            raise AssertionError("Rails app processed %d emails, expected %d; log:\n%s"
                                 % (len(got), n, self.log()[-3000:]))
        return got

    def log(self):
        """The app's stdout and stderr so far (Rails log, WEBrick messages)."""
        return self._read(self._log_path()).decode("utf-8", errors="replace")

    def stop(self):
        """SIGTERM, SIGKILL after STOP_TIMEOUT, then remove the directory."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def _log_path(self):
        return os.path.join(self.dir, "app.log")

    @staticmethod
    def _read(path):
        try:
            with open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return b""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
