"""node_receiver.py - a real Node.js webhook receiver for the integration tests (Python
standard library only).

Runs apps/node/receiver.js (the official `standardwebhooks` package and `busboy`) on
127.0.0.1 and reads back what it recorded: one dict per POST, with the Standard Webhooks
verification result for each secret / public key, the multipart parts busboy found, or the
parsed JSON; and the requests whose body was cut off (aborted()). verify() hands cases to
apps/node/verify.js, which checks them with the package alone. The npm packages are installed once with `npm ci` into a cache directory keyed
by the lock file's hash; a machine without node or npm, or where the install fails, skips.

    rcv = NodeReceiver(secrets=["whsec_..."]).start()
    ... rcv.url("/inbound") ...
    req = rcv.wait_requests(1)[0]
    assert req["webhook"]["verified"]
    rcv.stop()
    verify([{"secret": "whsec_...", "headers": {...}, "body": b"..."}])  # [{"ok": True}]
"""

import base64
import fcntl
import hashlib
import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest

from helpers import HOST, free_port

APP_DIR = os.environ.get("SMTPHOOK_NODE_APP") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "apps", "node")
INSTALL_TIMEOUT = 300.0  # seconds npm ci may take on a cold cache
READY_TIMEOUT = 15.0  # seconds from spawning node to its "listening PORT" line
MIN_NODE_MAJOR = 18


def _cache_root():
    return (os.environ.get("SMTPHOOK_NODE_CACHE") or os.environ.get("SMTPHOOK_BUILD_DIR")
            or tempfile.gettempdir())


def install(app_dir=APP_DIR):
    """npm ci the app's lock file into <cache>/smtphook-node-<hash>; return its node_modules.
    Idempotent and safe to run from several processes at once; raises unittest.SkipTest when
    node or npm is missing or the install fails."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        raise unittest.SkipTest("node or npm not installed (apt-get install nodejs npm)")
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout
    try:
        major = int(version.strip().lstrip("v").split(".")[0])
    except ValueError:
        raise unittest.SkipTest("cannot tell node's version: %r" % version)
    if major < MIN_NODE_MAJOR:
        raise unittest.SkipTest("node %s is older than %d" % (version.strip(), MIN_NODE_MAJOR))
    with open(os.path.join(app_dir, "package-lock.json"), "rb") as f:
        lock = f.read()
    with open(os.path.join(app_dir, "package.json"), "rb") as f:
        digest = hashlib.sha256(lock + b"\0" + f.read()).hexdigest()[:16]
    target = os.path.join(_cache_root(), "smtphook-node-" + digest)
    done = os.path.join(target, ".installed")
    if os.path.exists(done):
        return os.path.join(target, "node_modules")
    os.makedirs(target, exist_ok=True)
    with open(os.path.join(target, ".lock"), "w") as lockfile:
        fcntl.flock(lockfile, fcntl.LOCK_EX)  # another process may be installing
        if not os.path.exists(done):
            for name in ("package.json", "package-lock.json"):
                shutil.copyfile(os.path.join(app_dir, name), os.path.join(target, name))
            cmd = [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--prefer-offline",
                   "--loglevel=error"]
            try:
                r = subprocess.run(cmd, cwd=target, capture_output=True, text=True,
                                   timeout=INSTALL_TIMEOUT)
            except subprocess.TimeoutExpired:
                raise unittest.SkipTest("npm ci timed out after %ds" % INSTALL_TIMEOUT)
            if r.returncode != 0:
                raise unittest.SkipTest("npm ci failed (%d): %s" % (
                    r.returncode, (r.stderr or r.stdout).strip()[-800:]))
            with open(done, "w") as f:
                f.write(time.strftime("%Y-%m-%dT%H:%M:%S\n"))
    return os.path.join(target, "node_modules")


def body(req):
    """The raw body bytes of a recorded request (None when larger than the receiver keeps)."""
    b64 = req.get("body_b64")
    return None if b64 is None else base64.b64decode(b64)


def part_bytes(part):
    """The bytes of one multipart part as busboy gave them (a field: its value as UTF-8)."""
    return base64.b64decode(part["value_b64"])


def verify(cases, timeout=30.0):
    """Verify Standard Webhooks v1 cases with the official package (apps/node/verify.js):
    cases are dicts of secret, headers (webhook-id, -timestamp, -signature), body (bytes)
    and optionally now (Unix seconds the package's clock reads, for old test vectors).
    Returns one dict per case: ok, and error / error_name when verify threw, and
    signature: the package's sign() for the case's id, timestamp and body."""
    node_modules = install()
    payload = [dict({k: v for k, v in c.items() if k != "body"},
                    body_b64=base64.b64encode(c["body"]).decode()) for c in cases]
    r = subprocess.run(["node", os.path.join(APP_DIR, "verify.js")],
                       input=json.dumps(payload).encode(), capture_output=True,
                       env=dict(os.environ, NODE_PATH=node_modules), timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError("verify.js failed (%d): %s" % (r.returncode, r.stderr.decode()))
    return json.loads(r.stdout)


class NodeReceiver:
    """The Node.js receiver: secrets are whsec_... strings (HMAC, v1), public_keys whpk_...
    strings (Ed25519, v1a), status the HTTP status it answers every POST with (or a list:
    the n-th POST gets the n-th, the later ones the last)."""

    def __init__(self, secrets=(), public_keys=(), status=200, def_param_charset="utf8",
                 app_dir=APP_DIR):
        self.secrets = list(secrets)
        self.public_keys = list(public_keys)
        self.status = status
        self.def_param_charset = def_param_charset
        self.app_dir = app_dir
        self.port = None
        self._proc = None
        self._dir = None
        self.log_path = None
        self._lines = queue.Queue()
        self._final = []

    def start(self):
        node_modules = install(self.app_dir)
        self._dir = tempfile.mkdtemp(prefix="node-receiver-")
        self.log_path = os.path.join(self._dir, "requests.jsonl")
        open(self.log_path, "w").close()
        self.port = free_port()
        env = dict(os.environ, NODE_PATH=node_modules,
                   RECEIVER_SECRETS=",".join(self.secrets),
                   RECEIVER_PUBLIC_KEYS=",".join(self.public_keys),
                   RECEIVER_STATUS=(",".join(map(str, self.status))
                                    if isinstance(self.status, (list, tuple))
                                    else str(self.status)),
                   RECEIVER_DEF_PARAM_CHARSET=self.def_param_charset)
        self._stderr = open(os.path.join(self._dir, "stderr.txt"), "w+")
        self._proc = subprocess.Popen(
            ["node", os.path.join(self.app_dir, "receiver.js"), str(self.port), self.log_path],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr, env=env,
            start_new_session=True)
        threading.Thread(target=self._read_stdout, daemon=True).start()
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line == "listening %d" % self.port:
                return self
            if line is None or line == "":  # timed out, or node exited
                err = self._stderr_text()
                self.stop()
                raise RuntimeError("node receiver did not come up: %s" % err[-2000:])

    def _read_stdout(self):
        for raw in self._proc.stdout:
            self._lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self._lines.put("")  # EOF

    def _stderr_text(self):
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read()

    def url(self, path="/inbound"):
        return "http://%s:%d%s" % (HOST, self.port, path)

    def _records(self):
        if self._dir is None:
            return list(self._final)
        with open(self.log_path, "rb") as f:
            data = f.read()
        # only complete lines: the receiver appends each record with a single write
        return [json.loads(line) for line in data.split(b"\n")[:-1] if line.strip()]

    def requests(self):
        """Every complete request recorded so far, as dicts (see receiver.js for the
        fields)."""
        return [r for r in self._records() if not r.get("aborted")]

    def aborted(self):
        """The requests whose connection closed inside the body: {"aborted": true, method,
        path, headers, body_bytes_received, body_b64 (the bytes that came)}."""
        return [r for r in self._records() if r.get("aborted")]

    @staticmethod
    def _wait(records, n, timeout):
        """records() once it holds at least n, or as it is when timeout seconds are over."""
        deadline = time.monotonic() + timeout
        while True:
            got = records()
            if len(got) >= n or time.monotonic() >= deadline:
                return got
            time.sleep(0.02)

    def wait_aborted(self, n, timeout=10.0):
        """Wait until at least n cut-off requests were recorded; return all of them."""
        return self._wait(self.aborted, n, timeout)

    def wait_requests(self, n, timeout=10.0):
        """Wait until at least n requests were recorded; return all of them (maybe fewer)."""
        return self._wait(self.requests, n, timeout)

    def stop(self):
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)
                except ProcessLookupError:
                    pass
            proc.stdout.close()
            self._stderr.close()
        if self._dir is not None:
            self._final = self._records()  # still readable after stop()
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
