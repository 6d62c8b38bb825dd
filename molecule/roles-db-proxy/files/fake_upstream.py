#!/usr/bin/env python3
"""Stand-in for Mattermost behind nginx in proxy tests.

Answers every request with 200 and a JSON document of the request line and headers it received, so that
tests can see what nginx forwards (Host, X-Forwarded-Proto, Upgrade, Connection).
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ADDRESS = ("127.0.0.1", 8065)


class EchoHandler(BaseHTTPRequestHandler):
    # HTTP/1.1 with Content-Length, so that nginx can keep upstream connections alive.
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = json.dumps(
            {
                "method": self.command,
                "path": self.path,
                "headers": {name.lower(): value for name, value in self.headers.items()},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET
    do_HEAD = do_GET


if __name__ == "__main__":
    ThreadingHTTPServer(ADDRESS, EchoHandler).serve_forever()
