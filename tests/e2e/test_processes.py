"""``--processes 2`` (docs/deploying.md, Processes) against real processes: both workers
serve (told apart by ``pid`` in the JSON access lines), 40 parallel uploads come back byte for
byte, a tus upload continues on another worker, one /metrics scrape counts every worker, a
killed worker is replaced, and the workers die with their parent. SIGTERM's drain with two
workers is in test_shutdown.py, beside one process's."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.proctree import alive, children, wait_for_children
from tests.serverproc import ROOT, ServerProcess, free_port, running_server

pytestmark = pytest.mark.slow
ARGS = ["--processes", "2", "--log-format", "json"]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    with running_server(tmp_path, ARGS, config="shutdown_timeout = 20\n") as running:
        yield running


def request(server: ServerProcess, method: str, path: str, body: bytes = b"",
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request on a connection of its own (so the kernel may hand it to any worker)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers={"Connection": "close",
                                                       **(headers or {})})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def access_pids(server: ServerProcess) -> dict[str, int]:
    """request_id → pid of the worker that answered, from the JSON access lines."""
    found = {}
    for line in server.log().splitlines():
        if line.startswith("{") and '"event": "request"' in line:
            entry = json.loads(line)
            found[entry["request_id"]] = entry["pid"]
    return found


def pid_of(server: ServerProcess, request_id: str) -> int:
    """The worker that answered ``request_id`` (its access line may lag the answer a bit)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if request_id in (pids := access_pids(server)):
            return pids[request_id]
        time.sleep(0.02)
    raise AssertionError(f"no access line for {request_id}")


def workers(server: ServerProcess, count: int = 2) -> set[int]:
    return wait_for_children(server.process.pid, count)


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


def upload(server: ServerProcess, body: bytes, name: str) -> dict[str, object]:
    status, headers, answer = request(server, "POST", "/api/files", body, {
        "Content-Type": "application/octet-stream", "X-Filename": name})
    assert status == 201, answer
    resource = dict(json.loads(answer))
    resource["pid"] = pid_of(server, headers["X-Request-Id"])
    return resource


def test_40_parallel_uploads_on_two_workers_and_one_scrape_counts_them_all(server):
    bodies = [os.urandom(200_000 + 7919 * i) for i in range(40)]
    with ThreadPoolExecutor(40) as pool:
        resources = list(pool.map(lambda i: upload(server, bodies[i], f"f{i}.bin"), range(40)))
    assert len({r["pid"] for r in resources}) == 2  # both workers took uploads
    assert {r["pid"] for r in resources} == workers(server)
    for body, resource in zip(bodies, resources, strict=True):
        assert resource["sha256"] == hashlib.sha256(body).hexdigest()
        status, _, content = request(server, "GET", f"/api/files/{resource['id']}/content")
        assert (status, content) == (200, body)
    # One scrape, answered by one worker, counts the uploads of both.
    status, _, text = request(server, "GET", "/metrics")
    scrape = text.decode()
    assert status == 200
    assert metric(scrape, 'tornado_files_uploads_total{outcome="created",protocol="raw"}') == 40
    assert metric(scrape, 'tornado_files_upload_bytes_total{protocol="raw"}') == sum(
        map(len, bodies))
    assert metric(scrape, "tornado_files_active_uploads") == 0
    # The counts live in the workers' files in the supervisor's private directory.
    directory = Path(re.search(r"worker metrics in (\S+?)\"", server.log()).group(1))
    assert {f"counter_{pid}.db" for pid in workers(server)} <= {
        p.name for p in directory.iterdir()}


def tus_patch(server: ServerProcess, upload_id: str, offset: int, chunk: bytes
              ) -> tuple[int, int]:
    status, headers, answer = request(server, "PATCH", f"/api/tus/{upload_id}", chunk, {
        "Tus-Resumable": "1.0.0", "Upload-Offset": str(offset),
        "Content-Type": "application/offset+octet-stream"})
    assert status == 204, answer
    assert int(headers["Upload-Offset"]) == offset + len(chunk)
    return status, pid_of(server, headers["X-Request-Id"])


def test_a_tus_upload_continues_on_the_other_worker(server):
    body = os.urandom(1_000_003)
    name = base64.b64encode(b"resumed.bin").decode()
    status, headers, _ = request(server, "POST", "/api/tus", b"", {
        "Tus-Resumable": "1.0.0", "Upload-Length": str(len(body)),
        "Upload-Metadata": f"filename {name}"})
    assert status == 201
    upload_id = headers["Location"].rstrip("/").rsplit("/", 1)[1]
    offset, pids, chunk = 0, [], 10_000
    # Small PATCHes, each on a new connection, until two workers have taken part (bounded).
    while len(set(pids)) < 2 and offset + chunk < len(body):
        pids.append(tus_patch(server, upload_id, offset, body[offset:offset + chunk])[1])
        offset += chunk
    assert len(set(pids)) == 2, pids
    tus_patch(server, upload_id, offset, body[offset:])
    status, _, answer = request(server, "GET", f"/api/files/{upload_id}")
    assert status == 200
    assert json.loads(answer)["sha256"] == hashlib.sha256(body).hexdigest()
    assert request(server, "GET", f"/api/files/{upload_id}/content")[2] == body


def test_a_killed_worker_is_replaced(server):
    before = workers(server)
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while children(server.process.pid) in (before, before - {victim}):
        assert time.monotonic() < deadline, "no worker replaced the killed one"
        time.sleep(0.05)
    (new,) = workers(server) - before
    assert "ended unexpectedly (signal SIGKILL)" in server.log()
    served_by = set()
    for _ in range(200):  # the new worker serves: some request lands on it
        status, headers, _ = request(server, "GET", "/readyz")
        assert status == 200
        served_by.add(pid_of(server, headers["X-Request-Id"]))
        if new in served_by:
            break
    assert new in served_by
    assert victim not in served_by


def listening_inodes(port: int) -> set[str]:
    """Inodes of the sockets listening on 127.0.0.1:``port`` (/proc/net/tcp, state 0A)."""
    wanted = f"0100007F:{port:04X}"
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == wanted and fields[3] == "0A":
            inodes.add(fields[9])
    return inodes


def test_the_workers_die_with_their_parent(server):
    pids = workers(server)
    ours = listening_inodes(server.port)  # the one socket the parent bound, shared
    assert ours
    server.process.kill()
    server.process.wait(timeout=10)
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids):
        assert time.monotonic() < deadline, "workers outlived their parent"
        time.sleep(0.05)
    # Nothing of ours listens any more, once the workers' last threads have exited too (a
    # killed worker's main thread shows as a zombie while a pool thread still finishes its
    # write; the socket closes with the last of them). Checked by inode: the freed port may
    # be given to another program at once.
    deadline = time.monotonic() + 30  # a write to a disk busy with writeback may take long
    while ours & listening_inodes(server.port):
        assert time.monotonic() < deadline, "the listening socket outlived the workers"
        time.sleep(0.05)


def test_a_start_up_error_is_one_line_before_any_worker(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", free_port()))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, str(ROOT / "server.py"), "--port", str(port), "--data-dir",
             str(tmp_path / "data"), "--processes", "2"],
            capture_output=True, timeout=60, cwd=tmp_path, check=False,
            env={k: v for k, v in os.environ.items() if not k.startswith("TORNADO_FILES_")})
    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == [
        f"server.py: error: cannot listen on 127.0.0.1:{port}: Address already in use"]
