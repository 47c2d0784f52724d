"""helpers.py - small helpers of the integration tests (Python standard library only).

The address everything talks over (127.0.0.1), a port on it that nothing listens on,
percent-decoding of the header values smtphook sends, and reading the admin port: a GET and
one series of a /metrics text. The other modules build on these and this module imports none
of them.
"""

import re
import socket
import urllib.error
import urllib.parse
import urllib.request

HOST = "127.0.0.1"


_given_ports = set()  # every port free_port handed out in this process


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago (nothing listens on it), and never
    one this process was given before: two ports reserved by number before either is bound
    (smtphook's and a peer's) must differ."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        if port not in _given_ports:
            _given_ports.add(port)
            return port


def percent_decode(value):
    return urllib.parse.unquote_to_bytes(value).decode("utf-8")


def admin_get(port, path):
    """(status, body text) of GET http://127.0.0.1:port/path."""
    try:
        with urllib.request.urlopen("http://%s:%d%s" % (HOST, port, path), timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metric(text, name, **labels):
    """The value of one series in a /metrics text, None when absent."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if got == {k: str(v) for k, v in labels.items()}:
            return float(m.group(3))
    return None
