#!/usr/bin/env python3
"""fast_receiver.py - the fastest web app Python can be, for bench.py's per-message figures.

  python3 tests/bench/fast_receiver.py   (prints "PORT <n>" once it listens on 127.0.0.1)

One process, one thread, an epoll loop over non-blocking sockets: it reads each request's
head and Content-Length body off a kept-alive connection and answers 200 with an empty body,
nothing else. Body bytes are counted off as they arrive, never kept: a 40 MB body costs its
recv calls into one reused buffer, not a growing bytes object copied at every read. It keeps no requests and checks nothing, so that what is measured is smtphook
and not the receiver (the integration tests' receiver is a thread per connection, and its
cost shows in smtphook's throughput). SIGTERM ends it; it prints "REQUESTS <n> BYTES <m>"
(requests answered, body bytes read) on the way out.
"""

import selectors
import signal
import socket
import sys
import time

HOST = "127.0.0.1"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
READ_SIZE = 262144  # bytes asked for per recv


class Conn:
    """One connection: the head of the current request as far as it came, or the bytes of
    its body still to come."""

    __slots__ = ("sock", "head", "skip", "chunked", "line", "trailers", "counted")

    def __init__(self, sock):
        self.sock = sock
        self.head = bytearray()  # bytes of a request head not yet complete
        self.skip = 0  # body bytes of the current request still to read (and drop)
        self.chunked = False  # the current request's body is chunked (a streamed one)
        self.line = bytearray()  # chunked: a chunk-size or trailer line as far as it came
        self.trailers = False  # chunked: past the last chunk, reading the trailer section
        self.counted = 0  # chunked: bytes of skip that are chunk data (not its CRLF)


def content_length(head):
    """(Content-Length, chunked) of a request head."""
    length, chunked = 0, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    return length, chunked


def consume_chunked(c, data, pos, n):
    """Chunked body bytes from data[pos:n]: returns (new pos, body bytes, request done)."""
    body = 0
    while pos < n:
        if c.skip:
            take = min(c.skip, n - pos)
            data_part = min(take, c.counted)
            c.counted -= data_part
            body += data_part
            c.skip -= take
            pos += take
            continue
        lf = bytes(data[pos:n]).find(b"\n")
        if lf < 0:
            c.line += data[pos:n]
            return n, body, False
        c.line += data[pos:pos + lf]
        pos += lf + 1
        line = bytes(c.line).rstrip(b"\r")
        c.line = bytearray()
        if c.trailers:
            if not line:  # the end of the trailer section: the request is complete
                c.chunked = c.trailers = False
                return pos, body, True
            continue
        size = int(line.split(b";")[0].strip(), 16)
        if size == 0:
            c.trailers = True
        else:
            c.skip = size + 2  # the data and its CRLF
            c.counted = size
    return pos, body, False


def consume(c, data):
    """Take in the bytes just read (a memoryview); return (requests they completed, body
    bytes among them)."""
    answers = 0
    body = 0
    pos, n = 0, len(data)
    while pos < n:
        if c.chunked:
            pos, got, done = consume_chunked(c, data, pos, n)
            body += got
            answers += done
            continue
        if c.skip:
            take = min(c.skip, n - pos)
            c.skip -= take
            pos += take
            body += take
            if not c.skip:
                answers += 1
            continue
        # A head: search from a little before the new bytes, for a CRLFCRLF split by reads.
        from_ = max(0, len(c.head) - 3)
        c.head += data[pos:]
        pos = n
        end = c.head.find(b"\r\n\r\n", from_)
        if end < 0:
            break
        length, chunked = content_length(bytes(c.head[:end]))
        rest = c.head[end + 4:]
        c.head = bytearray()
        if chunked:
            c.chunked = True
        elif length:
            c.skip = length
        else:
            answers += 1
        if rest:  # body bytes (or a pipelined request) read with the head
            data, pos, n = memoryview(rest), 0, len(rest)
    return answers, body


def serve(listener, rate=0):
    """Serve until SIGTERM; rate > 0: read at most that many bytes per second in all (an app
    that is slower than the network, for the stream figure)."""
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, None)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    requests = 0
    body_bytes = 0
    buf = bytearray(READ_SIZE)  # every recv lands here
    view = memoryview(buf)
    while not stop:
        try:
            events = sel.select(0.2)
        except InterruptedError:
            continue
        for key, _ in events:
            if key.data is None:
                try:
                    s, _ = listener.accept()
                except BlockingIOError:
                    continue
                s.setblocking(False)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sel.register(s, selectors.EVENT_READ, Conn(s))
                continue
            c = key.data
            try:
                got = c.sock.recv_into(buf)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                got = 0
            if not got:
                sel.unregister(c.sock)
                c.sock.close()
                continue
            if rate:
                time.sleep(got / rate)
            answers, body = consume(c, view[:got])
            body_bytes += body
            if answers:
                requests += answers
                try:
                    c.sock.sendall(RESPONSE * answers)  # a few dozen bytes: never blocks
                except OSError:
                    sel.unregister(c.sock)
                    c.sock.close()
    print("REQUESTS %d BYTES %d" % (requests, body_bytes), flush=True)


def main():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((HOST, 0))
    listener.listen(1024)
    listener.setblocking(False)
    print("PORT %d" % listener.getsockname()[1], flush=True)
    serve(listener, float(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[1] == "--rate" else 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
