"""A real webhook receiver for the tests: the standard library's threading HTTP server on a
loopback port, recording every request it gets and answering as a test scripts it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_MIB = bytes(1024 * 1024)


@dataclass
class Received:
    at: float  # time.monotonic()
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Script:
    """How the receiver answers a path: ``statuses`` first (one per request), then 200;
    ``delay`` seconds before each answer; ``answer`` as the body, or ``answer_size`` bytes of
    zeros (when not 0) written a MiB at a time, never held whole."""

    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    answer: bytes = b"{}"
    content_type: str = "application/json"
    answer_size: int = 0


class Receiver:
    def __init__(self, port: int = 0) -> None:
        self.requests: list[Received] = []
        self.scripts: dict[str, Script] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.requests.append(Received(time.monotonic(), self.path,
                                                      dict(self.headers.items()), body))
                    script = receiver.scripts.get(self.path, Script())
                    status = script.statuses.pop(0) if script.statuses else 200
                time.sleep(script.delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", script.content_type)
                    size = script.answer_size or len(script.answer)
                    self.send_header("Content-Length", str(size))
                    self.end_headers()
                    if not script.answer_size:
                        self.wfile.write(script.answer)
                    for offset in range(0, script.answer_size, len(_MIB)):
                        self.wfile.write(_MIB[:script.answer_size - offset])
                except OSError:
                    pass  # the server gave up waiting (a pre_create timeout)

            def log_message(self, *_args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def on(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def wait_for(self, path: str, count: int = 1, timeout: float = 15.0) -> list[Received]:
        """The first ``count`` requests to ``path``, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.on(path)
            if len(got) >= count:
                return got[:count]
            time.sleep(0.05)
        raise AssertionError(f"{path}: {len(self.on(path))} of {count} requests arrived")


@contextmanager
def receiving(port: int = 0) -> Iterator[Receiver]:
    receiver = Receiver(port)
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
        thread.join(timeout=5)
