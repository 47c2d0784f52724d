"""queue_files.py - the durable queue as the tests see it (Python standard library only).

QueueDir reads a queue directory the way an operator would: the entry files of active/ and
dead/ (parsed: "name value" lines, %XX-escaped values, the history's "attempt" lines), their
.eml messages and the leftovers in tmp/ and corrupt/. App is a receiver responder that
answers a status the test switches and keeps the requests it accepted, so "delivered" means
answered 2xx, whatever the earlier attempts met. queue_cli runs `smtphook queue ...` and
parse_metrics reads a /metrics text, so the queue tests need not import each other.
"""

import json
import os
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from helpers import HOST
from smtphook_process import run_binary

ENTRY_MAGIC = "smtphook-queue-entry 1"
MULTI = ("endpoint", "rcpt")  # fields an entry file may give more than once
QUEUED_RE = r"^Ok: queued as (\S+)$"  # the text of a queued message's 250
KEY_RE = r"^[0-9a-f]{64}$"


def unescape(value):
    """An entry file's value: %XX for each byte below 0x21, DEL and '%'."""
    return urllib.parse.unquote_to_bytes(value).decode("utf-8", "replace")


def parse_entry(text):
    """An entry file as a dict: single fields as strings, "endpoint" and "rcpt" as lists,
    "attempt" as a list of dicts (at_ms, endpoint, status, code, esc, text). Raises
    ValueError when the file is not whole (first line, "end" last)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines or lines[0] != ENTRY_MAGIC:
        raise ValueError("not an entry file: %r" % text[:80])
    if lines[-1] != "end":
        raise ValueError("entry file without its end line: %r" % text[-80:])
    e = {k: [] for k in MULTI}
    e["attempt"] = []
    for ln in lines[1:-1]:
        name, _, value = ln.partition(" ")
        if name == "attempt":
            at, ep, status, code, esc, reason = value.split(" ", 5)
            e["attempt"].append({"at_ms": int(at), "endpoint": unescape(ep),
                                 "status": int(status), "code": int(code),
                                 "esc": "" if esc == "-" else unescape(esc),
                                 "text": unescape(reason)})
        elif name in MULTI:
            e[name].append(unescape(value))
        else:
            e[name] = unescape(value)
    return e


class QueueDir:
    """A queue directory: <path>/active, dead, tmp, corrupt (and ctl for the CLI)."""

    def __init__(self, path):
        self.path = path

    def folder(self, which):
        return os.path.join(self.path, which)

    def files(self, which):
        """Every file name in one folder (none when it does not exist yet)."""
        try:
            return sorted(os.listdir(self.folder(which)))
        except FileNotFoundError:
            return []

    def names(self, which="active"):
        """The entry names in active/ or dead/ (the files not ending in .eml)."""
        return [f for f in self.files(which) if not f.endswith(".eml")]

    def entry(self, name, which="active"):
        with open(os.path.join(self.folder(which), name), encoding="utf-8") as f:
            return parse_entry(f.read())

    def entries(self, which="active"):
        """{name: parsed entry} of one folder; an entry that goes meanwhile is left out."""
        out = {}
        for n in self.names(which):
            try:
                out[n] = self.entry(n, which)
            except FileNotFoundError:
                pass
        return out

    def message(self, name, which="active"):
        with open(os.path.join(self.folder(which), name + ".eml"), "rb") as f:
            return f.read()

    def wait(self, predicate, timeout):
        """Poll until predicate() is true; return its last value."""
        deadline = time.monotonic() + timeout
        while True:
            v = predicate()
            if v or time.monotonic() >= deadline:
                return v
            time.sleep(0.05)

    def wait_empty(self, timeout=20.0, which="active"):
        """True once the folder holds no file at all."""
        return self.wait(lambda: self.files(which) == [], timeout)

    def assert_tmp_settles(self, test, timeout=2.0):
        """tmp/ holds nothing for long: a refused message left nothing there. (A running
        smtphook rewrites an entry after each attempt through tmp/, for a moment.)"""
        test.assertTrue(self.wait_empty(timeout, "tmp"), "tmp/: %s" % self.files("tmp"))

    def wait_names(self, n, timeout=10.0, which="active"):
        """The entry names once there are at least n (maybe fewer after timeout)."""
        self.wait(lambda: len(self.names(which)) >= n, timeout)
        return self.names(which)

    def check_whole(self, test, which="active"):
        """Every entry file of the folder parses and has its message, of the size its "size"
        line says, and every .eml has its entry file: nothing half-written."""
        files = self.files(which)
        names = [f for f in files if not f.endswith(".eml")]
        emls = [f for f in files if f.endswith(".eml")]
        test.assertEqual(sorted(n + ".eml" for n in names), sorted(emls),
                         "entry files and messages pair up in %s/: %s" % (which, files))
        for n in names:
            e = self.entry(n, which)
            size = os.path.getsize(os.path.join(self.folder(which), n + ".eml"))
            test.assertEqual(size, int(e["size"]), "message of %s is whole" % n)
        return names


class KeepsQueueForReport:
    """A SmtphookTestCase mixin: the log of the smtphook started last and the listing of the
    queue directory (self.q) are kept at its stop, for a failure's report (the cleanups
    remove both before the report is written)."""

    seen = None

    def _stop_smtphook(self, sh):
        try:
            super()._stop_smtphook(sh)
        finally:
            if sh is self.sh:  # the one started last
                self.seen = (sh.log(), {w: self.q.files(w)
                                        for w in ("active", "dead", "tmp", "corrupt")})

    def failure_logs(self, text):
        if self.seen is None:
            return ""
        return "\nqueue directory at the stop: %s\nsmtphook's log (tail):\n%s" % (
            self.seen[1], self.seen[0][-6000:])


class App:
    """A receiver responder: answers status (with headers, after delay seconds) as set when
    the request arrived, and keeps the requests it answered 2xx (accepted) apart from all
    the others."""

    def __init__(self, status=200, headers=(), delay=0.0):
        self._lock = threading.Condition()
        self._status = status
        self._headers = list(headers)
        self._delay = delay
        self._accepted = []
        self.answers = []  # (request, status) of every request, in arrival order

    def set(self, status, headers=(), delay=0.0):
        with self._lock:
            self._status = status
            self._headers = list(headers)
            self._delay = delay

    def __call__(self, req):
        with self._lock:
            status, headers, delay = self._status, list(self._headers), self._delay
            self.answers.append((req, status))
            if 200 <= status < 300:
                self._accepted.append(req)
            self._lock.notify_all()
        return (status, headers, delay)

    def wait_answers(self, n, timeout=10.0):
        """Every request so far once there were at least n (maybe fewer after timeout)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.answers) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._lock.wait(left)
            return list(self.answers)

    @property
    def accepted(self):
        with self._lock:
            return list(self._accepted)

    def wait_accepted(self, n, timeout=20.0):
        """The accepted requests once there are at least n (maybe fewer after timeout)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._accepted) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._lock.wait(left)
            return list(self._accepted)

    def by_key(self):
        """{Idempotency-Key: [accepted requests]}."""
        out = {}
        for r in self.accepted:
            out.setdefault(r.header("Idempotency-Key"), []).append(r)
        return out


def queue_cli(*args, config=None, queue_dir=None, json_out=False, timeout=30):
    """`smtphook queue [--config FILE | --queue-dir DIR] [--json] ARGS...`: the
    CompletedProcess (text), and with json_out the parsed stdout as .data (None when it is
    not JSON)."""
    cmd = ["queue"]
    if config is not None:
        cmd += ["--config", config]
    if queue_dir is not None:
        cmd += ["--queue-dir", queue_dir]
    if json_out:
        cmd.append("--json")
    p = run_binary(cmd + list(args), timeout=timeout)
    p.data = None
    if json_out and p.returncode == 0:
        try:
            p.data = json.loads(p.stdout)
        except ValueError:
            pass
    return p


def http(port, path, method="GET"):
    """(status, body text) of one request to the admin port."""
    req = urllib.request.Request("http://%s:%d%s" % (HOST, port, path),
                                 data=b"" if method == "POST" else None, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def parse_metrics(text):
    """{(name, frozenset of (label, value))): value} of a Prometheus text."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$", line)
        if not m:
            continue
        labels = frozenset(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"',
                                      m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def metric(series, name, **labels):
    """One value of parse_metrics' result, None when the series is absent."""
    return series.get((name, frozenset((k, str(v)) for k, v in labels.items())))
