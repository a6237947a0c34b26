"""Graceful shutdown (docs/deploying.md): on SIGTERM new connections are refused and
``/readyz`` answers 503, uploads in flight get ``shutdown_timeout`` to finish, what cannot is
cut off with nothing left, a second signal ends the wait at once; exit status 0. The drain
tests run on one process and on ``--processes 2``, where the parent passes each signal on and
every worker, and the workers' metrics folder, must be gone at the end."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import socket
import time
from contextlib import closing
from pathlib import Path

import pytest

from tests.proctree import alive, wait_for_children
from tests.serverproc import ServerProcess, running_server
from tests.support import _parse_response

pytestmark = pytest.mark.slow
SIZE = 4 * 1024 * 1024


def start_upload(server: ServerProcess, first: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=20)
    sock.sendall(b"POST /api/files HTTP/1.1\r\nHost: x\r\nX-Filename: slow.bin\r\n"
                 b"Content-Type: application/octet-stream\r\n"
                 + f"Content-Length: {SIZE}\r\n\r\n".encode() + first)
    return sock


def answer_of(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    received = bytearray()
    while (parsed := _parse_response(bytes(received))) is None:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"closed without an answer: {bytes(received)[:200]!r}")
        received += chunk
    return parsed


@pytest.fixture(params=[1, 2], ids=["one-process", "two-processes"])
def processes(request: pytest.FixtureRequest) -> int:
    return int(request.param)


def serve(tmp_path: Path, processes: int, timeout: int) -> contextlib.AbstractContextManager[
        ServerProcess]:
    args = ["--processes", str(processes), "--log-format", "json"] if processes > 1 else []
    return running_server(tmp_path, args, config=f"shutdown_timeout = {timeout}\n")


class Workers:
    """The worker processes (and their metrics folder) of a ``--processes N`` server."""

    def __init__(self, server: ServerProcess, processes: int) -> None:
        self.pids: set[int] = set()
        self.metrics: Path | None = None
        if processes > 1:
            self.pids = wait_for_children(server.process.pid, processes)
            found = re.search(r"worker metrics in (\S+?)\"", server.log())
            assert found, "the parent names its metrics folder"
            self.metrics = Path(found.group(1))

    def assert_gone(self) -> None:
        assert not any(alive(pid) for pid in self.pids)
        assert self.metrics is None or not self.metrics.exists()


def stored_files(server: ServerProcess) -> list[Path]:
    return [p for p in (server.data_dir / "blobs").rglob("*")
            if p.is_file() and not p.name.startswith(".")]


def test_an_upload_that_finishes_in_time_gets_its_201(tmp_path: Path, processes: int):
    body = os.urandom(SIZE)
    with serve(tmp_path, processes, 20) as server:
        workers = Workers(server, processes)
        with closing(start_upload(server, body[:SIZE // 2])) as sock:
            time.sleep(0.3)
            server.process.send_signal(signal.SIGTERM)
            time.sleep(1.0)
            # Draining: new connections are refused...
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
            assert server.process.poll() is None  # ...but the upload goes on
            sock.sendall(body[SIZE // 2:])
            status, _, answer = answer_of(sock)
        assert status == 201
        assert json.loads(answer)["sha256"] == hashlib.sha256(body).hexdigest()
        assert server.process.wait(timeout=20) == 0
        assert len(stored_files(server)) == 1
        workers.assert_gone()


def test_readyz_on_an_open_connection_says_draining(tmp_path: Path):
    with running_server(tmp_path, config="shutdown_timeout = 20\n") as server:
        probe = socket.create_connection(("127.0.0.1", server.port), timeout=20)
        with closing(probe), closing(start_upload(server, b"x" * 1000)):
            probe.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert answer_of(probe)[0] == 200
            time.sleep(0.3)
            server.process.send_signal(signal.SIGTERM)
            time.sleep(1.0)
            probe.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
            status, _, answer = answer_of(probe)
            assert (status, json.loads(answer)["status"]) == (503, "draining")
            probe.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
            assert answer_of(probe)[0] == 200
            # A request that begins now is refused, and its connection closed.
            probe.sendall(b"GET /api/files HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, answer = answer_of(probe)
            assert (status, json.loads(answer)["errors"][0]["code"]) == (503, "shutting_down")
            assert headers["retry-after"] == "1"
            assert headers["connection"] == "close"
            server.process.send_signal(signal.SIGTERM)  # the second: no more waiting
            assert server.process.wait(timeout=10) == 0


def test_a_second_signal_ends_the_wait_and_nothing_is_left(tmp_path: Path, processes: int):
    with serve(tmp_path, processes, 60) as server:
        workers = Workers(server, processes)
        with closing(start_upload(server, os.urandom(SIZE // 4))) as sock:
            time.sleep(0.5)
            server.process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            assert server.process.poll() is None  # waiting for the upload
            started = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            assert server.process.wait(timeout=10) == 0
            assert time.monotonic() - started < 5
            sock.settimeout(5)
            try:
                answer = sock.recv(65536)
            except ConnectionResetError:
                answer = b""
            assert answer == b""  # cut off: no answer
        workers.assert_gone()
        assert stored_files(server) == []
        assert [p for p in (server.data_dir / "tmp").rglob("*") if p.is_file()] == []
        assert "ERROR" not in server.log()  # text " ERROR " or JSON "level": "ERROR"
