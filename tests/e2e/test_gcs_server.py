"""``python server.py`` with a GCS route (``storage = "gcs"``) against gcp-storage-emulator:
64 MiB raw and multipart uploads checked in the bucket through google-cloud-storage, Range,
DELETE, signed redirect downloads, a client that disconnects halfway, tus across two
processes, the emulator stopped, start-up refusals, fsck and derivatives."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tusclient import client as tus_client

from tests.contract.gcs_probe import sdk_client
from tests.contract.test_gcs_store import service_account_file
from tests.e2e.test_fsck import fsck
from tests.e2e.test_media_server import picture, settled
from tests.e2e.test_mongo_server import curl, random_file
from tests.e2e.test_object_server import status_of
from tests.gcs_support import GcsEmulator, start_gcs_emulator
from tests.serverproc import ROOT, ServerProcess, free_port, running_server

pytestmark = pytest.mark.slow
MIB = 1024 * 1024
PREFIX = "up/"


def config_for(emulator: GcsEmulator, bucket: str, download: str = "proxy") -> str:
    return f"""
[gcs]
bucket = "{bucket}"
prefix = "{PREFIX}"
endpoint = "{emulator.endpoint}"
part_size = "8MiB"
download = "{download}"

[[routes]]
path = "/api/gcs"
max_body_size = "2GiB"
storage = "gcs"
"""


def objects(emulator: GcsEmulator, bucket: str) -> dict[str, int]:
    """Blob object name → size, straight from the bucket (not the marker, the ping object or
    a partial's segments)."""
    client = sdk_client(emulator)
    return {b.name: int(b.size) for b in client.list_blobs(bucket, prefix=PREFIX)
            if re.fullmatch(r"[0-9a-f]{32}", b.name.removeprefix(PREFIX))}


def segments(emulator: GcsEmulator, bucket: str) -> dict[str, int]:
    client = sdk_client(emulator)
    return {b.name: int(b.size) for b in client.list_blobs(bucket, prefix=f"{PREFIX}.partial/")}


def sha256_in_bucket(emulator: GcsEmulator, bucket: str, name: str) -> str:
    data = sdk_client(emulator).bucket(bucket).blob(name).download_as_bytes()
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def gcs_server(tmp_path: Path,
               gcs_emulator: GcsEmulator) -> Iterator[tuple[ServerProcess, GcsEmulator, str]]:
    bucket = gcs_emulator.new_bucket()
    with running_server(tmp_path, config=config_for(gcs_emulator, bucket)) as server:
        yield server, gcs_emulator, bucket


def test_raw_and_multipart_uploads_range_and_delete(gcs_server, tmp_path):
    server, emulator, bucket = gcs_server
    big = random_file(tmp_path / "big.bin", 64 * MIB)
    content = big.read_bytes()
    want = hashlib.sha256(content).hexdigest()
    status, body = curl("--data-binary", f"@{big}", "-H", "Content-Type: application/x-raw",
                        "-H", "X-Filename: big.bin", server.url + "/api/gcs")
    assert status == 201, body
    raw = json.loads(body)
    status, body = curl("-F", f"file=@{big}", server.url + "/api/gcs")
    assert status == 201, body
    form = json.loads(body)
    stored = objects(emulator, bucket)
    assert sorted(stored.values()) == [64 * MIB, 64 * MIB]
    assert raw["storage"] == form["storage"] == "gcs"
    assert raw["sha256"] == form["sha256"] == want
    assert [sha256_in_bucket(emulator, bucket, name) for name in stored] == [want, want]
    assert emulator.sessions(bucket) == []

    out = tmp_path / "part.bin"
    status, _ = curl("-r", "8388600-8388619", "-o", str(out), server.url + raw["download_url"])
    assert status == 206
    assert out.read_bytes() == content[8388600:8388620]

    status, _ = curl("-X", "DELETE", server.url + f"/api/files/{raw['id']}")
    assert status == 204
    assert sorted(objects(emulator, bucket).values()) == [64 * MIB]


def test_a_client_gone_halfway_leaves_no_object_and_no_session(gcs_server):
    server, emulator, bucket = gcs_server
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"POST /api/gcs HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-raw\r\n"
                     b"Content-Length: %d\r\n\r\n" % (64 * MIB))
        block = bytes(range(256)) * 4096
        for _ in range(20):  # 20 MiB: two 8 MiB chunks sent, the rest in the buffer
            sock.sendall(block)
        deadline = time.monotonic() + 10
        while not emulator.sessions(bucket) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert emulator.sessions(bucket)  # the upload was under way
    deadline = time.monotonic() + 15
    while emulator.sessions(bucket) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert emulator.sessions(bucket) == []  # cancelled (DELETE on the session URI)
    assert objects(emulator, bucket) == {}


def test_the_emulator_stopped_is_503_and_not_ready(tmp_path):
    own = start_gcs_emulator()  # an emulator of our own, to stop
    try:
        bucket = own.new_bucket()
        with running_server(tmp_path, config=config_for(own, bucket)) as server:
            assert status_of(server.url + "/readyz") == 200
            own.stop()
            status, body = curl("--data-binary", "hello", "-H", "Content-Type: text/plain",
                                server.url + "/api/gcs")
            assert status == 503, body
            assert json.loads(body)["errors"][0]["code"] == "backend_unavailable"
            assert status_of(server.url + "/readyz") == 503
            assert "Traceback" not in server.log()
    finally:
        own.stop()


def test_tuspy_in_5_mib_chunks_begun_on_one_process_is_finished_on_another(tmp_path,
                                                                          gcs_emulator):
    bucket = gcs_emulator.new_bucket()
    path = tmp_path / "tus.bin"
    path.write_bytes(os.urandom(13 * MIB + 17))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    data = ["--data-dir", str(tmp_path / "data")]  # the records (SQLite) shared on one host
    config = config_for(gcs_emulator, bucket)
    with running_server(tmp_path / "a", data, config=config) as first, \
            running_server(tmp_path / "b", data, config=config) as second, \
            path.open("rb") as stream:
        uploader = tus_client.TusClient(first.url + "/api/tus/").uploader(
            file_stream=stream, chunk_size=5 * MIB, metadata={"route": "/api/gcs"})
        uploader.upload_chunk()  # one chunk through the first process
        # A durable segment in the bucket.
        assert list(segments(gcs_emulator, bucket).values()) == [5 * MIB]
        upload_path = uploader.url.split("/api/tus/", 1)[1]
        resumed = tus_client.TusClient(second.url + "/api/tus/").uploader(
            file_stream=stream, chunk_size=5 * MIB, url=f"{second.url}/api/tus/{upload_path}")
        assert resumed.offset == 5 * MIB
        resumed.upload()
        status, body = curl(f"{second.url}/api/files/{upload_path}")
        assert status == 200, body
        resource = json.loads(body)
    want = hashlib.sha256(path.read_bytes()).hexdigest()
    assert resource["storage"] == "gcs"
    assert resource["sha256"] == want
    stored = objects(gcs_emulator, bucket)
    assert [sha256_in_bucket(gcs_emulator, bucket, name) for name in stored] == [want]
    assert segments(gcs_emulator, bucket) == {}  # composed, then deleted


def test_an_unreachable_bucket_stops_start_up_with_one_line(tmp_path):
    port = free_port()
    (tmp_path / "c.toml").write_text(
        f'[gcs]\nbucket = "media"\nendpoint = "http://127.0.0.1:{port}"\n')
    result = subprocess.run(
        [sys.executable, str(ROOT / "server.py"), "--data-dir", str(tmp_path / "d"),
         "--config", str(tmp_path / "c.toml"), "--port", str(free_port())],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert result.stderr == (f"server.py: error: cannot write to gs://media/ at "
                             f"http://127.0.0.1:{port}: check the endpoint, the bucket and the "
                             "Google credentials (GOOGLE_APPLICATION_CREDENTIALS)\n")


def test_redirect_without_a_signing_key_stops_start_up_with_one_line(tmp_path, gcs_emulator):
    (tmp_path / "c.toml").write_text(config_for(gcs_emulator, "media", download="redirect"))
    env = {k: v for k, v in os.environ.items() if k != "GOOGLE_APPLICATION_CREDENTIALS"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "server.py"), "--data-dir", str(tmp_path / "d"),
         "--config", str(tmp_path / "c.toml"), "--port", str(free_port())],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env, check=False)
    assert result.returncode == 2
    assert result.stderr == ('server.py: error: gcs.download = "redirect" needs a '
                             "service-account key to sign URLs: set "
                             "GOOGLE_APPLICATION_CREDENTIALS to its JSON file\n")


def test_redirect_downloads_come_from_the_bucket_with_a_signed_url(tmp_path, gcs_emulator):
    bucket = gcs_emulator.new_bucket()
    clip = random_file(tmp_path / "clip.bin", 6 * MIB)
    content = clip.read_bytes()
    config = config_for(gcs_emulator, bucket, download="redirect")
    env = {"GOOGLE_APPLICATION_CREDENTIALS": str(service_account_file(tmp_path))}
    with running_server(tmp_path, config=config, env=env) as server:
        status, body = curl("--data-binary", f"@{clip}", "-H", "Content-Type: application/x-raw",
                            "-H", "X-Filename: r%C3%A9sum%C3%A9.bin", server.url + "/api/gcs")
        assert status == 201, body
        url = server.url + json.loads(body)["download_url"]
        status, headers = curl("-sS", "-o", "/dev/null", "-D", "-", url)
        assert status == 302
        location = next(line.split(" ", 1)[1].strip() for line in headers.decode().splitlines()
                        if line.lower().startswith("location:"))
        assert location.startswith(f"{gcs_emulator.endpoint}/{bucket}/{PREFIX}")
        assert "X-Goog-Signature=" in location
        assert "response-content-type=application%2Foctet-stream" in location
        # curl follows it to the emulator, which serves the bytes and the name (it checks no
        # signature and ignores response-content-type: docs/object-storage.md).
        out = tmp_path / "out"
        status, headers = curl("-L", "-D", "-", "-o", str(out), url)
        assert status == 200
        assert out.read_bytes() == content
        assert "content-disposition: attachment; filename=\"resume.bin\"" in \
            headers.decode().lower()


def test_fsck_finds_a_lost_object_and_an_orphan_in_the_bucket(tmp_path, gcs_emulator):
    bucket = gcs_emulator.new_bucket()
    client: Any = sdk_client(gcs_emulator).bucket(bucket)
    config = f'storage = "gcs"\n{config_for(gcs_emulator, bucket)}'
    with running_server(tmp_path, config=config) as server:
        ids = [json.loads(curl("--data-binary", f"file {n}", "-H", "Content-Type: text/plain",
                               server.url + "/api/files")[1])["id"] for n in range(2)]
    lost, kept = sorted(objects(gcs_emulator, bucket))
    client.blob(lost).delete()
    client.blob(f"{PREFIX}{'e' * 32}").upload_from_string(b"nobody points at me")
    result = fsck(tmp_path, "--data-dir", str(tmp_path / "data"),
                  "--config", str(tmp_path / "config.toml"))
    assert result.returncode == 1, result.stderr
    assert f"orphan blob gcs/{'e' * 32}" in result.stdout
    assert f"missing blob gcs/{lost.removeprefix(PREFIX)} of file " in result.stdout
    assert kept.removeprefix(PREFIX) not in result.stdout
    assert sum(file_id in result.stdout for file_id in ids) == 1


def test_derivatives_of_a_picture_stored_in_gcs(gcs_server, tmp_path):
    server, emulator, bucket = gcs_server
    path = picture(tmp_path / "p.jpg", (640, 480))
    status, body = curl("--data-binary", f"@{path}", "-H", "Content-Type: image/jpeg",
                        "-H", "X-Filename: p.jpg", server.url + "/api/gcs")
    assert status == 201, body
    done = settled(server, json.loads(body)["id"])
    assert done["processing"] == "done", done
    assert done["metadata"]["image"]["width"] == 640
    # The derivatives are objects of the same bucket, served through the server.
    assert len(objects(emulator, bucket)) > 1
    status, thumb = curl(server.url + f"/api/files/{done['id']}/derivatives/thumbnail")
    assert status == 200
    assert thumb[:4] == b"RIFF"  # webp
