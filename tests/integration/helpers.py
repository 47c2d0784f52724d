"""helpers.py - small helpers of the integration tests (Python standard library only).

The address everything talks over (127.0.0.1), a port on it that nothing listens on, and
percent-decoding of the header values smtphook sends. The other modules build on these and
this module imports none of them.
"""

import socket
import urllib.parse

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
