"""The command-line client against ``python server.py`` in a subprocess, as people use it."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import closing, suppress
from pathlib import Path

import pytest

from tests.serverproc import ServerProcess, free_port, running_server

pytestmark = pytest.mark.slow
MIB = 1024 * 1024
CONFIG = """
[[routes]]
path = "/api/small"
max_body_size = "1MiB"

[[routes]]
path = "/api/images"
max_body_size = "64MiB"
allowed_mime_types = ["image/png"]
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[ServerProcess]:
    with running_server(tmp_path_factory.mktemp("cli"), config=CONFIG) as running:
        yield running


def cli(server_url: str, *args: str, state: Path | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    extra = ["--state", str(state)] if state is not None and args[0] == "upload" else []
    env = {**os.environ, "TORNADO_FILES_URL": server_url}
    return subprocess.run([sys.executable, "-m", "tornado_files", *args, *extra],
                          capture_output=True, text=True, timeout=timeout, env=env, check=False)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_upload_ls_download_rm(server, tmp_path):
    small = tmp_path / "note.txt"
    small.write_text("hello\n")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * MIB + 5))
    result = cli(server.url, "upload", str(small), str(big), "--tus-threshold", "1MiB",
                 "--chunk-size", "1MiB", "--data", '{"project": "x"}', state=tmp_path / "s.json")
    assert result.returncode == 0, result.stderr
    ids = [line.split("\t")[0] for line in result.stdout.splitlines()]
    assert len(ids) == 2
    listing = cli(server.url, "ls", "--filename", "big.bin")
    assert listing.stdout.split("\t")[0] == ids[1]
    page = json.loads(cli(server.url, "ls", "--json", "--route", "/api/files").stdout)
    assert {f["id"] for f in page["files"]} >= set(ids)
    out = tmp_path / "back.bin"
    fetched = cli(server.url, "download", ids[1], "-o", str(out))
    assert fetched.returncode == 0, fetched.stderr
    assert "verified" in fetched.stdout
    assert sha256(out) == sha256(big)
    removed = cli(server.url, "rm", ids[0])
    assert removed.stdout.strip() == f"deleted {ids[0]}"
    gone = cli(server.url, "download", ids[0], "-o", str(tmp_path / "x"))
    assert gone.returncode == 1
    assert gone.stderr.strip() == "tornado-files download: error: not found"


def test_upload_resumes_after_the_client_is_killed(server, tmp_path):
    big = tmp_path / "video.bin"
    big.write_bytes(os.urandom(160 * MIB))  # big enough that the kill lands mid-file
    state = tmp_path / "state.json"
    env = {**os.environ, "TORNADO_FILES_URL": server.url}
    first = subprocess.Popen(
        [sys.executable, "-m", "tornado_files", "upload", str(big), "--tus-threshold", "1MiB",
         "--chunk-size", "1MiB", "--state", str(state)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    location, offset = None, 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and offset < 4 * MIB:
        if state.exists() and (entries := json.loads(state.read_text() or "{}")):
            location = next(iter(entries.values()))
            request = urllib.request.Request(  # noqa: S310 (our own 127.0.0.1 server)
                server.url + location, method="HEAD", headers={"Tus-Resumable": "1.0.0"})
            with urllib.request.urlopen(request) as response:  # noqa: S310
                offset = int(response.headers["Upload-Offset"])
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)  # no goodbye: a crash or a closed laptop
    first.communicate(timeout=30)
    assert location is not None
    assert 0 < offset < 160 * MIB, "the first run must stop mid-file"
    second = cli(server.url, "upload", str(big), "--tus-threshold", "1MiB", "--chunk-size",
                 "8MiB", state=state)
    assert second.returncode == 0, second.stderr
    file_id = second.stdout.split("\t")[0]
    assert location.endswith(file_id), "the same upload was continued"
    out = tmp_path / "back.bin"
    assert cli(server.url, "download", file_id, "-o", str(out)).returncode == 0
    assert sha256(out) == sha256(big)
    assert json.loads(state.read_text()) == {}


def test_download_resumes_a_truncated_file(server, tmp_path):
    content = os.urandom(5 * MIB + 1)
    source = tmp_path / "src.bin"
    source.write_bytes(content)
    file_id = cli(server.url, "upload", str(source)).stdout.split("\t")[0]
    partial = tmp_path / "partial.bin"
    partial.write_bytes(content[: 2 * MIB])
    before = server.log().count(" 206 GET ")
    result = cli(server.url, "download", file_id, "-o", str(partial))
    assert result.returncode == 0, result.stderr
    assert partial.read_bytes() == content
    assert server.log().count(" 206 GET ") == before + 1  # a Range request, not a re-fetch


@pytest.mark.parametrize(("route", "content", "message"), [
    ("/api/small", b"\0" * (2 * MIB), "too large — the limit here is 1MiB"),
    ("/api/images", b"%PDF-1.4\n" + b"\0" * 100_000,
     "only image/png accepted here (this file is application/pdf)"),
])
def test_refusals_are_one_clear_line(server, tmp_path, route, content, message):
    path = tmp_path / "file.bin"
    path.write_bytes(content)
    result = cli(server.url, "upload", str(path), "--route", route)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"tornado-files upload: error: {message}"


def test_unreachable_server(tmp_path):
    port = free_port()
    result = cli(f"http://127.0.0.1:{port}", "ls")
    assert result.returncode == 3
    assert result.stderr.strip() == \
        f"tornado-files ls: error: cannot reach http://127.0.0.1:{port}: connection refused"


NAMES = ["résumé.pdf", 'say "hi".txt', "東京レポート.txt", "📦 box.bin", "two\nlines\r.txt"]


def _resource(server: ServerProcess, file_id: str) -> dict[str, object]:
    with urllib.request.urlopen(f"{server.url}/api/files/{file_id}") as response:  # noqa: S310
        return dict(json.load(response))


@pytest.mark.parametrize("tus", [False, True], ids=["multipart", "tus"])
def test_filenames_are_sent_as_browsers_send_them(server, tmp_path, tus):
    paths = []
    for index, name in enumerate(NAMES):
        folder = tmp_path / str(index)
        folder.mkdir()
        path = folder / name
        path.write_bytes(os.urandom(2000 + index))
        paths.append(path)
    threshold = ["--tus-threshold", "1KiB"] if tus else []
    result = cli(server.url, "upload", *map(str, paths), *threshold, state=tmp_path / "s.json")
    assert result.returncode == 0, result.stderr
    ids = [line.split("\t")[0] for line in result.stdout.splitlines() if "\t" in line]
    assert len(ids) == len(NAMES)
    for file_id, path in zip(ids, paths, strict=True):
        stored = _resource(server, file_id)
        # tus carries the name base64-encoded in Upload-Metadata; multipart as browsers write it
        # (WHATWG: only '"', CR and LF percent-encoded), which the server decodes: both exact.
        assert stored["original_filename"] == path.name
        assert stored["sha256"] == sha256(path)


class StallingProxy:
    """A loopback TCP proxy in front of the server (the CLI opens one connection per
    request). The first request that starts with ``stall`` stops after ``forward`` bytes:
    the rest is read from the client and dropped, so the server sees a body that stops
    arriving, while its answer still reaches the client. The first request that starts with
    ``busy`` is answered 503 by the proxy itself, as a load balancer in front would. All
    other requests pass straight through."""

    BUSY = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n"

    def __init__(self, target_port: int, stall: bytes, busy: bytes | None = None,
                 forward: int = 64 * 1024) -> None:
        self.target_port = target_port
        self.stall, self.busy, self.forward = stall, busy, forward
        self.requests: list[bytes] = []  # request lines, in order of arrival
        self.stalled = self.refused = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept)]
        self._threads[0].start()

    def close(self) -> None:
        self._stop.set()
        for thread in list(self._threads):
            thread.join(timeout=10)
        self.listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            thread = threading.Thread(target=self._serve, args=(client,))
            self._threads.append(thread)
            thread.start()

    def _serve(self, client: socket.socket) -> None:
        with closing(client):
            first = _recv(client)
            self.requests.append(first.split(b"\r\n", 1)[0])
            if self.busy is not None and first.startswith(self.busy) and not self.refused:
                self.refused += 1
                client.sendall(self.BUSY)
                client.shutdown(socket.SHUT_WR)
                while _recv(client):
                    pass
                return
            limit = None
            if first.startswith(self.stall) and not self.stalled:
                self.stalled += 1
                limit = self.forward
            self._forward(client, first, limit)

    def _forward(self, client: socket.socket, first: bytes, limit: int | None) -> None:
        with closing(socket.create_connection(("127.0.0.1", self.target_port))) as upstream:
            answer = threading.Thread(target=self._answer, args=(upstream, client))
            answer.start()
            sent, chunk = 0, first
            while chunk:
                keep = chunk if limit is None else chunk[: max(0, limit - sent)]
                sent += len(keep)
                with suppress(OSError):  # the server may have dropped this request
                    upstream.sendall(keep)
                chunk = _recv(client)
            with suppress(OSError):
                upstream.shutdown(socket.SHUT_RDWR)
            answer.join()

    @staticmethod
    def _answer(upstream: socket.socket, client: socket.socket) -> None:
        while chunk := _recv(upstream):
            client.sendall(chunk)
        with suppress(OSError):
            client.shutdown(socket.SHUT_WR)  # the client reads the answer, then closes


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(256 * 1024)
    except OSError:
        return b""


def test_a_post_dropped_as_idle_is_sent_again(tmp_path):
    with running_server(tmp_path, config="idle_timeout = 2.0\n") as idle_server:
        proxy = StallingProxy(idle_server.port, stall=b"POST ")
        try:
            path = tmp_path / "stalled.bin"
            path.write_bytes(os.urandom(3 * MIB))
            started = time.monotonic()
            result = cli(f"http://127.0.0.1:{proxy.port}", "upload", str(path))
        finally:
            proxy.close()
        assert result.returncode == 0, result.stderr
        assert time.monotonic() - started < 30
        assert proxy.stalled == 1
        assert len(proxy.requests) == 2, "the stalled POST was answered 408, then sent again"
        log = idle_server.log()
        assert log.count(" 408 POST /api/files") == 1
        assert log.count(" 201 POST /api/files") == 1
        with urllib.request.urlopen(idle_server.url + "/api/files") as response:  # noqa: S310
            files = json.load(response)["files"]
        assert [f["sha256"] for f in files] == [sha256(path)], "stored once, complete"
        assert result.stdout.split("\t")[0] == files[0]["id"]


def test_a_tus_patch_dropped_as_idle_is_resumed(tmp_path):
    """The server drops a PATCH whose body stalls (503 with Retry-After, 408 before that
    change) and keeps what reached storage; the first HEAD after it meets a 503 from the
    proxy. The CLI waits, asks again, and resumes from the server's offset."""
    with running_server(tmp_path, config="idle_timeout = 2.0\n") as idle_server:
        proxy = StallingProxy(idle_server.port, stall=b"PATCH ", busy=b"HEAD ")
        try:
            path = tmp_path / "stalled.bin"
            path.write_bytes(os.urandom(3 * MIB + 7))
            state = tmp_path / "state.json"
            result = cli(f"http://127.0.0.1:{proxy.port}", "upload", str(path),
                         "--tus-threshold", "1MiB", "--chunk-size", "1MiB", state=state)
        finally:
            proxy.close()
        assert result.returncode == 0, result.stderr
        assert (proxy.stalled, proxy.refused) == (1, 1)
        methods = [line.split(b" ")[0] for line in proxy.requests]
        assert methods[:4] == [b"POST", b"PATCH", b"HEAD", b"HEAD"]
        log = idle_server.log()
        assert log.count("201 POST /api/tus/") == 1, "the upload was resumed, not begun again"
        assert "200 HEAD /api/tus/" in log
        with urllib.request.urlopen(idle_server.url + "/api/files") as response:  # noqa: S310
            files = json.load(response)["files"]
        assert [f["sha256"] for f in files] == [sha256(path)]
        assert json.loads(state.read_text()) == {}
