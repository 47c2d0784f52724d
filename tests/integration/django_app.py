"""django_app.py - the real Django + django-anymail receiver of the integration tests.

Starts apps/django/ (anymail's inbound webhooks; see its settings.py) under Django's
`runserver --noreload` with /usr/bin/python3 on 127.0.0.1 and a free port, and reads back
the inbound events its signal receiver recorded, one JSON line each. Skips the test when
Debian's python3-django or python3-django-anymail is missing.
"""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

from helpers import HOST, free_port

PYTHON = "/usr/bin/python3"  # Debian's python, where python3-django(-anymail) install
APP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "apps", "django")
START_TIMEOUT = 30.0  # seconds to wait for the server to accept connections
STOP_TIMEOUT = 5.0  # seconds between terminate and kill

MAILGUN_PATH = "/anymail/mailgun/inbound_mime/"  # same view as /anymail/mailgun/inbound/
SENDGRID_PATH = "/anymail/sendgrid/inbound/"


class DjangoApp:
    def __init__(self, signing_key=None, webhook_secret=None, max_form_bytes=None):
        self.signing_key = signing_key  # Mailgun webhook signing key
        self.webhook_secret = webhook_secret  # "user:password" basic auth, or None
        # DATA_UPLOAD_MAX_MEMORY_SIZE: None keeps Django's 2.5 MiB, "none" lifts it
        self.max_form_bytes = max_form_bytes
        self.port = None
        self.proc = None
        self.tmpdir = None

    def start(self):
        self._check_installed()
        self.tmpdir = tempfile.mkdtemp(prefix="itest-django-")
        self.events_path = os.path.join(self.tmpdir, "events.jsonl")
        self.log_path = os.path.join(self.tmpdir, "server.log")
        self.port = free_port()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PYTHON", "DJANGO_", "APP_"))}
        env.update(PYTHONPATH=APP_DIR, DJANGO_SETTINGS_MODULE="settings",
                   PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1",
                   APP_EVENTS_FILE=self.events_path)
        if self.signing_key is not None:
            env["APP_SIGNING_KEY"] = self.signing_key
        if self.webhook_secret is not None:
            env["APP_WEBHOOK_SECRET"] = self.webhook_secret
        if self.max_form_bytes is not None:
            env["APP_MAX_FORM_BYTES"] = str(self.max_form_bytes)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [PYTHON, "-m", "django", "runserver", "--noreload", "%s:%d" % (HOST, self.port)],
                cwd=self.tmpdir, env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _check_installed(self):
        if not os.path.exists(PYTHON):
            raise unittest.SkipTest("%s not found" % PYTHON)
        r = subprocess.run([PYTHON, "-c", "import django, anymail"], capture_output=True)
        if r.returncode != 0:
            raise unittest.SkipTest("django/anymail not installed for %s "
                                    "(apt-get install python3-django python3-django-anymail)"
                                    % PYTHON)

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("django exited with %d:\n%s" % (self.proc.returncode, self.log()))
            try:
                socket.create_connection((HOST, self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("django not ready after %.0fs:\n%s" % (START_TIMEOUT, self.log()))

    def url(self, path):
        return "http://%s:%d%s" % (HOST, self.port, path)

    def events(self):
        """Every recorded inbound event so far, oldest first (see apps/django/recorder.py)."""
        try:
            with open(self.events_path, encoding="utf-8") as f:
                return [json.loads(line) for line in f if line.endswith("\n")]
        except FileNotFoundError:
            return []

    def wait_events(self, n, timeout=10.0):
        """At least n events, waiting up to timeout seconds; fails with the log if fewer."""
        deadline = time.monotonic() + timeout
        while True:
            evs = self.events()
            if len(evs) >= n or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        if len(evs) < n:
            raise AssertionError("%d of %d events after %.1fs; log:\n%s"
                                 % (len(evs), n, timeout, self.log()))
        return evs

    def log(self):
        """The server's stdout and stderr (request lines, errors, tracebacks)."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except (FileNotFoundError, TypeError):
            return ""

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
