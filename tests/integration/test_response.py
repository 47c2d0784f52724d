"""test_response.py - a response cut off is no answer: the endpoint reads the whole request,
writes a scripted byte string and closes. A 2xx counts only when its header section ended
with the empty line (RFC 9112 §2.1, §8), and when its body (if it announced one) arrived
whole; interim 1xx responses come before the final one; bytes may arrive one at a time;
a flood of header lines ends in a 451, not in unbounded memory."""

import socket
import threading
import time
import unittest

from helpers import HOST
from testcase import SmtphookTestCase

MSG = b"Subject: r\r\n\r\nresponse\r\n"
CL0 = b"Content-Length: 0\r\n"
ACCEPT_POLL = 0.05  # seconds between checks for stop() while waiting for a connection
CONN_TIMEOUT = 10.0  # seconds one connection may take to send its request
BYTE_GAP = 0.001  # seconds between the writes of a response sent one byte at a time


class RawReceiver:
    """An endpoint at the byte level: on each connection it reads the request head and its
    Content-Length body, then writes script (at once, or one byte a write with split) and
    closes. bodies lists the body length of each request read; errors the exceptions of
    connections that broke (smtphook may give up in the middle of a flood)."""

    def __init__(self, script, split=False):
        self.script = script
        self.split = split
        self.bodies = []
        self.errors = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((HOST, 0))
        self._sock.listen(16)
        self._sock.settimeout(ACCEPT_POLL)
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def url(self, path="/inbound"):
        return "http://%s:%d%s" % (HOST, self.port, path)

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                try:
                    self._handle(conn)
                except OSError as e:
                    with self._lock:
                        self.errors.append(e)

    def _handle(self, conn):
        conn.settimeout(CONN_TIMEOUT)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                raise ConnectionError("eof in the request head")
            data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                raise ConnectionError("eof in the request body")
            body += chunk
        with self._lock:
            self.bodies.append(len(body))
        if self.split:
            for i in range(len(self.script)):
                conn.sendall(self.script[i:i + 1])
                time.sleep(BYTE_GAP)
        else:
            conn.sendall(self.script)
        conn.shutdown(socket.SHUT_WR)


class CutOff(SmtphookTestCase):
    def check(self, script, code, esc):
        """A message to an endpoint answering script at once, then one answering it a byte a
        write: the same reply each time, and the endpoint read each whole body exactly once."""
        rcv = RawReceiver(script).start()
        self.addCleanup(rcv.stop)
        self.start_smtphook(url=rcv.url(), retry={"max_attempts": 1})
        for n, split in enumerate((False, True), 1):
            rcv.split = split
            reply = self.send_mail(body=MSG)
            self.assertReply(reply, code, esc, "split=%s: %s" % (split, reply))
            time.sleep(0.2)  # a retry would show up by now
            self.assertEqual(rcv.bodies, [len(MSG)] * n, "one complete request per message")

    # -- the header section never ended: curl reports success, smtphook must not

    def test_status_line_only_is_451(self):
        self.check(b"HTTP/1.1 204 No Content\r\n", 451, "4.4.2")

    def test_cut_inside_a_header_name_is_451(self):
        self.check(b"HTTP/1.1 200 OK\r\nContent-Le", 451, "4.4.2")

    def test_cut_after_a_header_line_is_451(self):
        self.check(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n", 451, "4.4.2")

    def test_cut_after_interim_response_is_451(self):
        self.check(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n", 451, "4.4.2")

    # -- complete heads

    def test_complete_204_is_250(self):
        self.check(b"HTTP/1.1 204 No Content\r\n\r\n", 250, "2.0.0")

    def test_100_continue_then_200_is_250(self):
        self.check(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n" + CL0 + b"\r\n",
                   250, "2.0.0")

    def test_103_early_hints_then_200_is_250(self):
        self.check(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
                   b"HTTP/1.1 200 OK\r\n" + CL0 + b"\r\n", 250, "2.0.0")

    def test_body_read_to_close_is_250(self):
        # No Content-Length, not chunked: the body ends with the connection (RFC 9112 §6.3).
        self.check(b"HTTP/1.1 200 OK\r\n\r\nstored\n", 250, "2.0.0")

    # -- the head ended, the body did not: curl reports CURLE_PARTIAL_FILE

    def test_body_shorter_than_content_length_is_451(self):
        self.check(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 451, "4.3.0")

    def test_chunked_body_cut_mid_chunk_is_451(self):
        self.check(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\nabc", 451, "4.3.0")

    def test_chunked_body_without_last_chunk_is_451(self):
        self.check(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
                   451, "4.3.0")

    def test_chunked_body_whole_is_250(self):
        self.check(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                   250, "2.0.0")


class HeaderFlood(SmtphookTestCase):
    """curl bounds the response headers itself (300 KiB a request, 1xx responses included:
    CURLE_RECV_ERROR; 100 KiB a line: CURLE_OUT_OF_MEMORY); past that the transfer fails and
    the sender hears 451, while smtphook keeps no copy of what it skipped."""

    def flood(self, script, log_pattern):
        rcv = RawReceiver(script).start()
        self.addCleanup(rcv.stop)
        sh = self.start_smtphook(url=rcv.url(), retry={"max_attempts": 1})
        reply = self.send_mail(body=MSG)
        self.assertReply(reply, 451, "4.")
        self.assertTrue(sh.wait_log(log_pattern), sh.log()[-2000:])
        self.assertTrue(sh.running())

    def test_many_header_lines_451(self):
        line = b"X-Flood: " + b"f" * 90 + b"\r\n"
        self.flood(b"HTTP/1.1 200 OK\r\n" + line * 4000 + CL0 + b"\r\n",
                   r"Too large response headers")

    def test_many_interim_responses_451(self):
        hints = b"HTTP/1.1 103 Early Hints\r\n" + (b"Link: </" + b"h" * 90 + b">\r\n") * 20
        self.flood((hints + b"\r\n") * 200 + b"HTTP/1.1 200 OK\r\n" + CL0 + b"\r\n",
                   r"Too large response headers")

    def test_one_giant_header_line_451(self):
        self.flood(b"HTTP/1.1 200 OK\r\nX-Giant: " + b"g" * (200 * 1024) + b"\r\n" + CL0 + b"\r\n",
                   r"endpoint \S+ failed")


if __name__ == "__main__":
    unittest.main()
