"""What a server process leaves when it dies or is stopped (issue 13), against real
``python server.py`` subprocesses sharing one data directory: a killed PATCH's lease runs out
within seconds, so another process continues the upload; SIGTERM lets interrupted requests
settle before the stores close; a blob tree that is not there (a volume not mounted) stops
start-up and fsck instead of being replaced by an empty one."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import closing
from pathlib import Path

import pytest

from tests.serverproc import ROOT, ServerProcess, free_port, running_server
from tornado_files.storage.disk import MARKER

pytestmark = pytest.mark.slow
TUS = {"Tus-Resumable": "1.0.0"}


def request(url: str, method: str, body: bytes | None = None,
            **headers: str) -> tuple[int, dict[str, str]]:
    # http://127.0.0.1 only: the URLs are built here.
    req = urllib.request.Request(url, data=body, method=method,  # noqa: S310
                                 headers={**TUS, **headers})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:  # noqa: S310
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers)


def create(server: ServerProcess, length: int) -> str:
    status, headers = request(server.url + "/api/tus/", "POST", b"",
                              **{"Upload-Length": str(length)})
    assert status == 201
    return headers["Location"]


def patch(server: ServerProcess, url: str, offset: int, data: bytes
          ) -> tuple[int, dict[str, str]]:
    return request(server.url + url, "PATCH", data, **{
        "Content-Type": "application/offset+octet-stream", "Upload-Offset": str(offset)})


def offset_of(server: ServerProcess, url: str) -> int:
    status, headers = request(server.url + url, "HEAD")
    assert status == 200
    return int(headers["Upload-Offset"])


def start_patch(server: ServerProcess, url: str, declared: int, data: bytes) -> socket.socket:
    """A PATCH announcing ``declared`` bytes that has sent ``data`` so far (and holds the
    lease once the server has read its headers)."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall((f"PATCH {url} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n"
                  "Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
                  f"Content-Length: {declared}\r\n\r\n").encode() + data)
    return sock


def wait_locked(server: ServerProcess, url: str) -> dict[str, str]:
    """Once the held PATCH has claimed the upload (its lease is in the uploads table — so a
    probe PATCH can no longer win the claim first on a busy machine), the 423 a second PATCH
    gets."""
    upload_id = url.rsplit("/", 1)[1]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with closing(sqlite3.connect(server.data_dir / "metadata.sqlite3")) as db:
            row = db.execute("SELECT lease_token FROM uploads WHERE id = ?",
                             (upload_id,)).fetchone()
        if row is not None and row[0] is not None:
            status, headers = patch(server, url, 0, b"x")
            assert status == 423, status
            return headers
        time.sleep(0.05)
    raise AssertionError("the PATCH never took the lease")


def one_file_stored(tmp_path: Path) -> Path:
    """A server's data directory holding one file, the server stopped."""
    with running_server(tmp_path) as server:
        status, _ = request(server.url + "/api/files", "POST", b"hello",
                            **{"X-Filename": "a.txt", "Content-Type": "text/plain"})
        assert status == 201
        return server.data_dir


def plain_env() -> dict[str, str]:
    """The environment for a ``server.py`` or ``fsck`` run: no TORNADO_FILES_ settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORNADO_FILES_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def test_a_killed_patchs_lease_is_taken_over_within_seconds(tmp_path: Path):
    # Before: the lease was max(60, 2 * idle_timeout) = 120 s, renewed only as data arrived,
    # and every retry got 423 for two minutes.
    with running_server(tmp_path) as first:
        url = create(first, 1000)
        with closing(start_patch(first, url, 1000, b"a" * 100)):
            headers = wait_locked(first, url)
            assert 1 <= int(headers["Retry-After"]) <= 10
            first.process.kill()  # SIGKILL by PID: the holder dies without a word
            first.process.wait(timeout=10)
    with running_server(tmp_path) as second:
        begun = time.monotonic()
        while True:
            offset = offset_of(second, url)
            status, headers = patch(second, url, offset, b"b" * (1000 - offset))
            if status != 423:
                break
            assert time.monotonic() - begun < 15, "still locked"
            time.sleep(min(float(headers["Retry-After"]), 1.0))
        assert status == 204
        assert time.monotonic() - begun < 12
        assert offset_of(second, url) == 1000


def test_sigterm_keeps_what_an_interrupted_patch_stored(tmp_path: Path):
    # Before: SIGTERM closed the stores first, then the PATCH's cleanup failed (an ERROR in
    # the log) and the bytes that had arrived were not counted.
    sent = 1024 * 1024 + 7
    # The PATCH stalls: after shutdown_timeout it is cut off, keeping what it stored.
    with running_server(tmp_path, config="shutdown_timeout = 1\n") as first:
        url = create(first, 10 * 1024 * 1024)
        with closing(start_patch(first, url, 10 * 1024 * 1024, os.urandom(sent))):
            wait_locked(first, url)
            time.sleep(0.5)  # the bytes sent reach the server's store
            first.process.send_signal(signal.SIGTERM)
            assert first.process.wait(timeout=20) == 0
        log = first.log()
        assert "ERROR" not in log
        assert "Traceback" not in log
    with running_server(tmp_path) as second:
        assert offset_of(second, url) == sent


def test_sigterm_aborts_an_upload_in_flight_cleanly(tmp_path: Path):
    # Before: the stores closed first, then the upload's abort logged an ERROR and left its
    # temporary file and intent for the sweeper.
    # The upload stalls: after shutdown_timeout it is cut off and aborted.
    with running_server(tmp_path, config="shutdown_timeout = 1\n") as server:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        with closing(sock):
            sock.sendall(b"POST /api/files HTTP/1.1\r\nHost: x\r\nX-Filename: big.bin\r\n"
                         b"Content-Type: application/octet-stream\r\n"
                         b"Content-Length: 10485760\r\n\r\n" + os.urandom(1024 * 1024))
            time.sleep(0.5)  # the bytes reach the temporary file
            server.process.send_signal(signal.SIGTERM)
            assert server.process.wait(timeout=20) == 0
        log = server.log()
        assert "ERROR" not in log
        assert "Traceback" not in log
        left = [p for p in server.data_dir.rglob("*")
                if p.is_file() and not p.name.startswith("metadata.sqlite3")
                and p.name != MARKER]
        assert left == []
        with closing(sqlite3.connect(server.data_dir / "metadata.sqlite3")) as db:
            assert db.execute("SELECT COUNT(*) FROM intents").fetchone()[0] == 0
            assert db.execute("SELECT COUNT(*) FROM files").fetchone()[0] == 0


def test_a_blob_tree_that_is_not_there_stops_start_up_and_fsck(tmp_path: Path):
    # Before: start-up created an empty tree and served (new uploads on the wrong disk) and
    # fsck reported every record's blob missing.
    data_dir = one_file_stored(tmp_path)
    blobs = data_dir / "blobs"
    assert (blobs / MARKER).is_file()
    blobs.rename(tmp_path / "volume")  # the volume is not mounted (yet)
    env = plain_env()
    started = subprocess.run(
        [sys.executable, str(ROOT / "server.py"), "--port", str(free_port()),
         "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env, check=False)
    assert started.returncode == 2
    store_id = (tmp_path / "volume" / MARKER).read_text().strip()
    assert started.stderr.splitlines() == [
        f"server.py: error: {blobs} has no {MARKER} (store 'disk' is {store_id}): is its "
        "volume mounted? Refusing to use it"]
    assert not blobs.exists()
    checked = subprocess.run(
        [sys.executable, "-m", "tornado_files", "fsck", "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env, check=False)
    assert checked.returncode == 2
    assert checked.stdout == ""
    assert len(checked.stderr.splitlines()) == 1
    assert "is its volume mounted?" in checked.stderr
    (tmp_path / "volume").rename(blobs)  # mounted: everything is there again
    with running_server(tmp_path) as server:
        status, _ = request(server.url + "/api/files?limit=10", "GET")
        assert status == 200


def test_records_that_went_missing_stop_start_up_and_fsck(tmp_path: Path):
    # Before: a fresh metadata.sqlite3 adopted the marked store, and once the blobs were older
    # than sweep_grace, ``fsck --repair`` deleted every one of them as orphans.
    data_dir = one_file_stored(tmp_path)
    records = data_dir / "metadata.sqlite3"
    records.rename(tmp_path / "records.sqlite3")  # lost, or the wrong --data-dir's
    env = plain_env()
    serve = [sys.executable, str(ROOT / "server.py"), "--port", str(free_port())]
    repair = [sys.executable, "-m", "tornado_files", "fsck", "--repair"]
    for command in (serve, repair):
        ran = subprocess.run([*command, "--data-dir", str(data_dir)], capture_output=True,
                             text=True, timeout=60, cwd=tmp_path, env=env, check=False)
        assert ran.returncode == 2, ran.stderr
        assert len(ran.stderr.splitlines()) == 1, ran.stderr
        assert "holds blobs, but these records know no store 'disk'" in ran.stderr
    assert len([p for p in (data_dir / "blobs").rglob("*") if p.is_file()]) == 2  # marker+blob


def test_a_killed_long_patch_keeps_what_its_checkpoints_counted(tmp_path: Path):
    # Before: the offset was written only when a PATCH ended, so SIGKILL 9 GiB into a 10 GiB
    # PATCH resumed at 0. Now every tus_checkpoint bytes are counted on the way.
    content = os.urandom(6 * 1024 * 1024)
    config = 'tus_checkpoint = "1MiB"\n'
    with running_server(tmp_path, config=config) as first:
        url = create(first, len(content))
        upload_id = url.rsplit("/", 1)[1]
        with closing(start_patch(first, url, len(content), content[:4 * 1024 * 1024])):
            deadline = time.monotonic() + 30
            while True:
                with closing(sqlite3.connect(first.data_dir / "metadata.sqlite3")) as db:
                    row = db.execute("SELECT offset FROM uploads WHERE id = ?",
                                     (upload_id,)).fetchone()
                if row[0] >= 3 * 1024 * 1024:
                    break
                assert time.monotonic() < deadline, f"offset stayed at {row[0]}"
                time.sleep(0.05)
            first.process.kill()  # SIGKILL by PID: no clean-up at all
            first.process.wait(timeout=10)
    with running_server(tmp_path, config=config) as second:
        deadline = time.monotonic() + 20
        while True:
            offset = offset_of(second, url)
            status, _ = patch(second, url, offset, content[offset:])
            if status != 423:  # the dead process's lease runs out within tus_lease
                break
            assert time.monotonic() < deadline
            time.sleep(0.5)
        assert status == 204
        assert offset >= 3 * 1024 * 1024
        req = urllib.request.Request(second.url + f"/api/files/{upload_id}/content")  # noqa: S310
        with urllib.request.urlopen(req, timeout=10) as response:  # noqa: S310
            assert response.read() == content


@pytest.mark.parametrize("damage", ["records", "marker-dir", "marker-bytes"])
def test_damaged_data_is_one_line_for_the_server_and_fsck(tmp_path: Path, damage: str):
    # Before: a garbage metadata.sqlite3, a marker that is a directory or holds bytes that are
    # no id each ended in a traceback (fsck: exit 1, which means "findings" to cron).
    data_dir = one_file_stored(tmp_path)
    marker = data_dir / "blobs" / MARKER
    if damage == "records":
        for stale in data_dir.glob("metadata.sqlite3*"):
            stale.unlink()
        (data_dir / "metadata.sqlite3").write_bytes(b"this is not a database\n" * 100)
    elif damage == "marker-dir":
        marker.unlink()
        marker.mkdir()
    else:
        marker.write_bytes(b"\xff\xfe caf\xe9\n")
    env = plain_env()
    serve = [sys.executable, str(ROOT / "server.py"), "--port", str(free_port())]
    check = [sys.executable, "-m", "tornado_files", "fsck"]
    for command in (serve, check):
        ran = subprocess.run([*command, "--data-dir", str(data_dir)], capture_output=True,
                             text=True, timeout=60, cwd=tmp_path, env=env, check=False)
        assert ran.returncode == 2, ran.stderr
        assert len(ran.stderr.splitlines()) == 1, ran.stderr
        assert "Traceback" not in ran.stderr + ran.stdout
