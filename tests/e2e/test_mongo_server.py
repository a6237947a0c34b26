"""``python server.py --mongodb-uri … --storage gridfs`` as a subprocess against a stand-in of
its own: start-up failure, MongoDB dying and coming back, and the memory bounds of GridFS."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import pytest
from pymongo import MongoClient

from tests.e2e.test_process_death import create, offset_of, start_patch
from tests.mongo_support import Standin, fresh_database, start_standin
from tests.serverproc import ROOT, ServerProcess, free_port, running_server

pytestmark = pytest.mark.slow
MIB = 1024 * 1024
BOUND = 64 * MIB


def curl(*args: str, timeout: float = 600) -> tuple[int, bytes]:
    result = subprocess.run(["curl", "-sS", "--write-out", "\n%{http_code}", *args],
                            capture_output=True, timeout=timeout, check=False)
    body, _, code = result.stdout.rpartition(b"\n")
    return int(code or 0), body


def health(server: ServerProcess) -> int:
    try:
        with urllib.request.urlopen(server.url + "/healthz", timeout=30) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def random_file(path: Path, size: int) -> Path:
    with path.open("wb") as fh:
        block = hashlib.sha512(path.name.encode()).digest() * (MIB // 64)
        for i in range(size // MIB):
            fh.write(block[i % 64:] + block[: i % 64])
    return path


@pytest.fixture
def own_standin() -> Iterator[Standin]:
    """A stand-in this test may kill (never the shared one)."""
    server = start_standin(port=free_port())
    yield server
    server.stop()


def test_unreachable_mongodb_stops_start_up_with_one_line(tmp_path):
    port = free_port()
    result = subprocess.run(
        [sys.executable, str(ROOT / "server.py"), "--data-dir", str(tmp_path / "d"),
         "--mongodb-uri", f"mongodb://127.0.0.1:{port}/x?serverSelectionTimeoutMS=1500"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == f"server.py: error: cannot reach MongoDB at 127.0.0.1:{port}/x\n"


def test_mongodb_dies_mid_upload_and_comes_back(tmp_path, own_standin):
    uri = own_standin.uri(fresh_database()) + "&serverSelectionTimeoutMS=2000"
    big = random_file(tmp_path / "big.bin", 64 * MIB)
    with running_server(tmp_path, ["--mongodb-uri", uri, "--storage", "gridfs"]) as server:
        status, _ = curl("-F", "file=@/etc/hostname", server.url + "/api/files")
        assert status == 201
        upload = subprocess.Popen(
            ["curl", "-sS", "--limit-rate", "8M", "--write-out", "\n%{http_code}",
             "--data-binary", f"@{big}", "-H", "Content-Type: application/octet-stream",
             server.url + "/api/files"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(2)
        own_standin.kill()
        out, _ = upload.communicate(timeout=120)
        body, _, code = out.rpartition(b"\n")
        # The client is told (503, no driver text) or the connection closes.
        if code and int(code) != 0:
            assert int(code) == 503, body
            error = json.loads(body)["errors"][0]
            assert error["code"] == "backend_unavailable"
            assert "mongo" not in error["detail"].lower()
        assert server.process.poll() is None, "the server must keep running"
        assert health(server) == 503

        revived = start_standin(port=own_standin.port)
        try:
            deadline = time.monotonic() + 60
            while health(server) != 200:
                assert time.monotonic() < deadline, "healthz did not come back"
                time.sleep(0.5)
            status, body = curl("-F", "file=@/etc/hostname", server.url + "/api/files")
            assert status == 201, body
            assert json.loads(body)["storage"] == "gridfs"
        finally:
            revived.stop()


@pytest.fixture(scope="module")
def bounds_standin() -> Iterator[Standin]:
    server = start_standin(port=free_port())
    yield server
    server.stop()


@pytest.fixture
def gridfs_server(tmp_path, bounds_standin) -> Iterator[ServerProcess]:
    """A server on a database of its own (the stand-in slows down as a collection grows)."""
    uri = bounds_standin.uri(fresh_database())
    with running_server(tmp_path, ["--mongodb-uri", uri, "--storage", "gridfs"]) as server:
        yield server
    with MongoClient(uri) as client:
        client.drop_database(client.get_default_database())


def upload(server: ServerProcess, path: Path) -> dict[str, object]:
    status, body = curl("--data-binary", f"@{path}", "-H", "Content-Type: application/x-test",
                        server.url + "/api/files")
    assert status == 201, body
    return dict(json.loads(body))


def download_sha256(server: ServerProcess, resource: dict[str, object], out: Path) -> str:
    status, _ = curl("-o", str(out), server.url + str(resource["download_url"]))
    assert status == 200
    digest = hashlib.sha256()
    with out.open("rb") as fh:
        while chunk := fh.read(4 * MIB):
            digest.update(chunk)
    out.unlink()
    return digest.hexdigest()


def warm_baseline(server: ServerProcess) -> int:
    assert upload(server, Path("/etc/hostname"))["storage"] == "gridfs"
    return server.status("VmHWM")


def test_gridfs_memory_is_bounded_for_a_256_mib_upload_and_download(gridfs_server, tmp_path):
    server = gridfs_server
    baseline = warm_baseline(server)
    big = upload(server, random_file(tmp_path / "one.bin", 256 * MIB))
    after_upload = server.status("VmHWM")
    assert download_sha256(server, big, tmp_path / "big.out") == big["sha256"]
    after_download = server.status("VmHWM")
    print(f"\nGridFS 256 MiB: peak RSS {baseline / MIB:.0f} MiB before, "
          f"{after_upload / MIB:.0f} after the upload, {after_download / MIB:.0f} after the "
          "download")
    assert after_upload - baseline < BOUND
    assert after_download - baseline < BOUND


def test_gridfs_memory_is_bounded_for_8_concurrent_64_mib(gridfs_server, tmp_path):
    server = gridfs_server
    baseline = warm_baseline(server)
    files = [random_file(tmp_path / f"c{i}.bin", 64 * MIB) for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        resources = list(pool.map(lambda p: upload(server, p), files))
    after_uploads = server.status("VmHWM")
    with ThreadPoolExecutor(8) as pool:
        digests = list(pool.map(
            lambda r: download_sha256(server, r[1], tmp_path / f"d{r[0]}.out"),
            enumerate(resources)))
    after_downloads = server.status("VmHWM")
    print(f"\nGridFS 8x64 MiB: peak RSS {baseline / MIB:.0f} MiB before, "
          f"{after_uploads / MIB:.0f} after the uploads, {after_downloads / MIB:.0f} after the "
          "downloads")
    assert digests == [r["sha256"] for r in resources]
    assert after_uploads - baseline < BOUND
    assert after_downloads - baseline < BOUND


def test_sigterm_on_mongodb_keeps_tus_bytes_and_leaves_no_half_post(tmp_path, bounds_standin):
    """SIGTERM on a MongoDB/GridFS server (the embedded stack has its own test): the
    interrupted PATCH's bytes count after a restart, the interrupted POST leaves no chunk, no
    files document, no intent; exit 0 and no ERROR in the log."""
    uri = bounds_standin.uri(fresh_database())
    args = ["--mongodb-uri", uri, "--storage", "gridfs"]
    sent = MIB + 7
    with MongoClient(uri) as client:
        db = client.get_default_database()
        # Both requests stall: after shutdown_timeout they are cut off.
        with running_server(tmp_path, args, config="shutdown_timeout = 1\n") as first:
            url = create(first, 10 * MIB)
            upload_id = url.rsplit("/", 1)[1]
            post = socket.create_connection(("127.0.0.1", first.port), timeout=10)
            with closing(start_patch(first, url, 10 * MIB, os.urandom(sent))), closing(post):
                post.sendall(b"POST /api/files HTTP/1.1\r\nHost: x\r\nX-Filename: big.bin\r\n"
                             b"Content-Type: application/octet-stream\r\n"
                             b"Content-Length: 10485760\r\n\r\n" + os.urandom(MIB))
                deadline = time.monotonic() + 30
                while not (db.uploads.find_one({"_id": upload_id}) or {}).get("lease_token"):
                    assert time.monotonic() < deadline, "the PATCH never took the lease"
                    time.sleep(0.05)
                time.sleep(0.5)  # the bytes sent reach GridFS
                first.process.send_signal(signal.SIGTERM)
                assert first.process.wait(timeout=30) == 0
            log = first.log()
            assert "ERROR" not in log
            assert "Traceback" not in log
            assert db["fs.files"].count_documents({}) == 0
            assert db.intents.count_documents({}) == 0
            assert set(db["fs.chunks"].distinct("files_id")) <= {upload_id}  # the tus partial
        with running_server(tmp_path, args) as second:
            assert offset_of(second, url) == sent
        client.drop_database(db)
