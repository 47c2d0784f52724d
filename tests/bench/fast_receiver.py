#!/usr/bin/env python3
"""fast_receiver.py - the fastest web app Python can be, for bench.py's per-message figures.

  python3 tests/bench/fast_receiver.py   (prints "PORT <n>" once it listens on 127.0.0.1)

One process, one thread, an epoll loop over non-blocking sockets: it reads each request's
head and Content-Length body off a kept-alive connection and answers 200 with an empty body,
nothing else. It keeps no requests and checks nothing, so that what is measured is smtphook
and not the receiver (the integration tests' receiver is a thread per connection, and its
cost shows in smtphook's throughput). SIGTERM ends it; it prints "REQUESTS <n>" on the way
out.
"""

import selectors
import signal
import socket
import sys

HOST = "127.0.0.1"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
READ_SIZE = 262144  # bytes asked for per recv


class Conn:
    """One connection: bytes read and not yet answered."""

    __slots__ = ("sock", "buf", "need")

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.need = -1  # bytes of the current request (head + body) once its head is in


def content_length(head):
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


def serve(listener):
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, None)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    requests = 0
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
                data = c.sock.recv(READ_SIZE)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:
                sel.unregister(c.sock)
                c.sock.close()
                continue
            c.buf += data
            answers = 0
            while True:
                if c.need < 0:
                    end = c.buf.find(b"\r\n\r\n")
                    if end < 0:
                        break
                    c.need = end + 4 + content_length(c.buf[:end])
                if len(c.buf) < c.need:
                    break
                c.buf = c.buf[c.need:]
                c.need = -1
                answers += 1
            if answers:
                requests += answers
                try:
                    c.sock.sendall(RESPONSE * answers)  # a few dozen bytes: never blocks
                except OSError:
                    sel.unregister(c.sock)
                    c.sock.close()
    print("REQUESTS %d" % requests, flush=True)


def main():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((HOST, 0))
    listener.listen(1024)
    listener.setblocking(False)
    print("PORT %d" % listener.getsockname()[1], flush=True)
    serve(listener)
    return 0


if __name__ == "__main__":
    sys.exit(main())
