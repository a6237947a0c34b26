"""Graceful shutdown (docs/deploying.md): on SIGTERM new connections are refused and
``/readyz`` answers 503, uploads in flight get ``shutdown_timeout`` to finish, what cannot is
cut off with nothing left, a second signal ends the wait at once; exit status 0."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from contextlib import closing
from pathlib import Path

import pytest

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


def stored_files(server: ServerProcess) -> list[Path]:
    return [p for p in (server.data_dir / "blobs").rglob("*")
            if p.is_file() and not p.name.startswith(".")]


def test_an_upload_that_finishes_in_time_gets_its_201(tmp_path: Path):
    body = os.urandom(SIZE)
    with running_server(tmp_path, config="shutdown_timeout = 20\n") as server:
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
        assert json.loads(answer)["size"] == SIZE
        assert server.process.wait(timeout=20) == 0
        assert len(stored_files(server)) == 1


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


def test_a_second_signal_ends_the_wait_and_nothing_is_left(tmp_path: Path):
    with running_server(tmp_path, config="shutdown_timeout = 60\n") as server:
        with closing(start_upload(server, os.urandom(SIZE // 4))):
            time.sleep(0.5)
            server.process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            assert server.process.poll() is None  # waiting for the upload
            started = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            assert server.process.wait(timeout=10) == 0
            assert time.monotonic() - started < 5
        assert stored_files(server) == []
        assert [p for p in (server.data_dir / "tmp").rglob("*") if p.is_file()] == []
        assert " ERROR " not in server.log()
