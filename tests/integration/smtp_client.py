"""smtp_client.py - a raw SMTP client for the integration tests (Python standard library only).

It works at the byte level: a test sends anything, well-formed or not, and reads complete
(possibly multi-line) replies with timeouts, or waits for the server to close. dot_stuff gives
the bytes a correct client sends for a message body.
"""

import re
import socket
import time

from helpers import HOST

REPLY_TIMEOUT = 10.0  # default wait for one SMTP reply


class ProtocolError(Exception):
    pass


class Closed(Exception):
    """The server closed the connection before a complete reply arrived."""


class Reply:
    """One (possibly multi-line) SMTP reply."""

    def __init__(self, lines):
        self.lines = lines  # decoded lines without CRLF, e.g. ["250-mx.test", "250 SIZE 1"]
        self.code = int(lines[-1][:3])
        self.texts = [ln[4:] for ln in lines]  # text after "NNN-" / "NNN "
        self.text = self.texts[-1]
        m = re.match(r"^([245])\.(\d{1,3})\.(\d{1,3})(?: |$)", self.text)
        self.esc = m.group(0).strip() if m else None  # enhanced status code of the last line

    def __str__(self):
        return " | ".join(self.lines)

    __repr__ = __str__


class SMTPClient:
    """Byte-level SMTP client: send anything, read complete replies with timeouts."""

    def __init__(self, port, host=HOST, timeout=REPLY_TIMEOUT, read_banner=True, sock=None,
                 first=b""):
        """Connect to host:port, or take sock, already connected; first: bytes to send
        before reading the banner (a PROXY protocol header)."""
        self.timeout = timeout
        self.sock = sock if sock is not None else socket.create_connection((host, port),
                                                                            timeout=timeout)
        self.sock.settimeout(timeout)
        if first:
            self.sock.sendall(first)
        self.local_port = self.sock.getsockname()[1]
        self.buf = b""
        self.eof = False
        self.banner = self.read_reply() if read_banner else None

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def recv_raw(self, deadline):
        """Bytes from the socket before deadline: Closed at EOF, socket.timeout after it."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("no complete reply in time; have %r" % self.buf[:200])
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            raise Closed("connection closed; pending %r" % self.buf[:200])
        return data

    def _fill(self, deadline):
        self.buf += self.recv_raw(deadline)

    def read_reply(self, timeout=None):
        """Read one complete reply (all its lines); raise Closed on EOF, socket.timeout."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        lines = []
        while True:
            while b"\n" not in self.buf:
                if self.eof:
                    raise Closed("connection closed; pending %r" % self.buf[:200])
                self._fill(deadline)
            raw, self.buf = self.buf.split(b"\n", 1)
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            line = raw.decode("utf-8", "replace")
            if not re.match(r"^[2-5]\d\d([ -]|$)", line):
                raise ProtocolError("malformed reply line %r" % line)
            if lines and line[:3] != lines[0][:3]:
                raise ProtocolError("code changed inside a reply: %r then %r" % (lines, line))
            lines.append(line)
            if len(line) == 3 or line[3] == " ":
                return Reply(lines)

    def read_replies(self, n, timeout=None):
        return [self.read_reply(timeout) for _ in range(n)]

    def cmd(self, line, timeout=None):
        """Send one command line (CRLF added) and read its reply."""
        if isinstance(line, str):
            line = line.encode("utf-8")
        self.send(line + b"\r\n")
        return self.read_reply(timeout)

    def wait_closed(self, timeout=5.0):
        """True if the server closes the connection within timeout (data read meanwhile is
        kept in self.buf)."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return False
            except ConnectionResetError:
                data = b""
            if not data:
                self.eof = True
            else:
                self.buf += data
        return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def dot_stuff(body):
    """What a correct client sends for body: a '.' starting a line (after CRLF, or at the
    very start) is doubled; then the terminator. body must be empty or end with CRLF, so the
    CRLF before the final dot belongs to the body (RFC 5321 §4.5.2)."""
    if body and not body.endswith(b"\r\n"):
        raise ValueError("raw test bodies must end with CRLF")
    if body.startswith(b"."):
        body = b"." + body
    return body.replace(b"\r\n.", b"\r\n..") + b".\r\n"
