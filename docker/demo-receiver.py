#!/usr/bin/env python3
"""demo-receiver.py - a tiny webhook receiver for trying smtphook out (standard library only).

Listens on 127.0.0.1:8080 (--host, --port), prints every request smtphook posts: the method
and path, the X-Smtphook-* headers (envelope JSON pretty-printed, addresses percent-decoded)
and the first lines of the message, then answers 200 "ok". Not for production use.
"""

import argparse
import http.server
import json
import sys
import urllib.parse

PREVIEW_LINES = 40  # message lines printed per request


def decode_addresses(value):
    """X-Smtphook-Mail-From / -Rcpt-To: percent-decode each ", "-separated address."""
    if not value:
        return value
    return ", ".join(urllib.parse.unquote_to_bytes(a).decode("utf-8", "replace")
                     for a in value.split(", "))


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as smtphook reuses connections
    server_version = "smtphook-demo-receiver"

    def log_message(self, fmt, *args):
        pass  # the request itself is printed below

    def read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_POST(self):
        body = self.read_body()
        out = ["=" * 72, "%s %s  (%d bytes)" % (self.command, self.path, len(body))]
        for name, value in self.headers.items():
            lname = name.lower()
            if lname == "x-smtphook-envelope":
                try:
                    pretty = json.dumps(json.loads(value), indent=2, ensure_ascii=False)
                except ValueError:
                    pretty = value + "  (not valid JSON!)"
                out.append("%s:\n%s" % (name, "\n".join("  " + ln
                                                       for ln in pretty.splitlines())))
            elif lname in ("x-smtphook-mail-from", "x-smtphook-rcpt-to"):
                out.append("%s: %s" % (name, value))
                decoded = decode_addresses(value)
                if decoded != value:
                    out.append("  (decoded: %s)" % decoded)
            elif lname.startswith("x-smtphook-") or lname in ("content-type",
                                                             "content-length"):
                out.append("%s: %s" % (name, value))
        out.append("-" * 72)
        lines = body.decode("utf-8", "replace").splitlines()
        out.extend(lines[:PREVIEW_LINES])
        if len(lines) > PREVIEW_LINES:
            out.append("... (%d more lines)" % (len(lines) - PREVIEW_LINES))
        print("\n".join(out), flush=True)

        reply = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def do_GET(self):
        reply = b"smtphook demo receiver: POST messages here\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)


def main():
    ap = argparse.ArgumentParser(description="Print every message smtphook posts.")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on")
    ap.add_argument("--port", type=int, default=8080, help="port to listen on")
    args = ap.parse_args()
    server = http.server.ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    print("demo receiver on http://%s:%d/ (Ctrl-C to stop)" % (args.host, args.port),
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
