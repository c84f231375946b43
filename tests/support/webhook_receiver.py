"""A webhook receiver on loopback for the tests: records every POST, answers a chosen status."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer


@dataclass
class Receiver:
    port: int
    status: int = 204  # a 302 redirects to the cloud metadata address
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)  # (headers, body) per POST


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            receiver.received.append((dict(self.headers), self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(receiver.status)
            if receiver.status == 302:
                self.send_header("Location", "http://169.254.169.254/")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    receiver = Receiver(server.server_port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
