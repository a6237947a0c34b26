"""``python server.py`` with an S3 route (``storage = "s3"``) against moto in server mode, for
what only S3 shows (what every object store shows is in test_object_server.py): tus across two
processes (segments in the bucket), a bucket unreachable at start-up, fsck, derivatives, and
the memory bound."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from tusclient import client as tus_client

from tests.e2e.test_fsck import fsck
from tests.e2e.test_media_server import picture, settled
from tests.e2e.test_mongo_server import curl
from tests.nginx_support import tree_peak_rss
from tests.object_support import MIB, PREFIX, S3Objects
from tests.s3_support import S3Service
from tests.serverproc import ROOT, ServerProcess, free_port, running_server

pytestmark = pytest.mark.slow
BOUND = 64 * MIB


@pytest.fixture
def bucket(s3_service: S3Service) -> S3Objects:
    """A bucket of its own on the session's moto (tests/object_support.py)."""
    return S3Objects(s3_service)


@pytest.fixture
def s3_server(tmp_path: Path, bucket: S3Objects) -> Iterator[ServerProcess]:
    with running_server(tmp_path, config=bucket.config()) as server:
        yield server


def test_256_mib_upload_to_s3_in_bounded_memory(s3_server, bucket):
    server = s3_server
    size = 256 * MIB
    curl("--data-binary", "warm-up", "-H", "Content-Type: text/plain", server.url + "/api/s3")
    baseline = tree_peak_rss(server.process.pid)
    digest = hashlib.sha256()
    block = hashlib.sha512(b"s3").digest() * (MIB // 64)

    def body() -> Iterator[bytes]:
        for i in range(size // MIB):
            piece = block[i % 64:] + block[: i % 64]
            digest.update(piece)
            yield piece

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=300)
    conn.request("POST", "/api/s3", body=body(), headers={
        "Content-Length": str(size), "Content-Type": "application/octet-stream"})
    response = conn.getresponse()
    resource = json.loads(response.read())
    conn.close()
    assert response.status == 201, resource
    assert resource["sha256"] == digest.hexdigest()
    assert tree_peak_rss(server.process.pid) - baseline < BOUND
    assert size in bucket.objects().values()


def test_tuspy_in_5_mib_chunks_begun_on_one_process_is_finished_on_another(tmp_path, bucket):
    path = tmp_path / "tus.bin"
    path.write_bytes(os.urandom(13 * MIB + 17))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    data = ["--data-dir", str(tmp_path / "data")]  # the records (SQLite) shared on one host
    config = bucket.config()
    with running_server(tmp_path / "a", data, config=config) as first, \
            running_server(tmp_path / "b", data, config=config) as second, \
            path.open("rb") as stream:
        uploader = tus_client.TusClient(first.url + "/api/tus/").uploader(
            file_stream=stream, chunk_size=5 * MIB, metadata={"route": "/api/s3"})
        uploader.upload_chunk()  # one chunk through the first process
        segments = bucket.everything_under(f"{PREFIX}.partial/")
        assert list(segments.values()) == [5 * MIB]  # a durable segment in the bucket
        upload_path = uploader.url.split("/api/tus/", 1)[1]
        resumed = tus_client.TusClient(second.url + "/api/tus/").uploader(
            file_stream=stream, chunk_size=5 * MIB, url=f"{second.url}/api/tus/{upload_path}")
        assert resumed.offset == 5 * MIB
        resumed.upload()
        with urllib.request.urlopen(  # noqa: S310 — loopback
                f"{second.url}/api/files/{upload_path}", timeout=30) as response:
            resource = json.load(response)
    want = hashlib.sha256(path.read_bytes()).hexdigest()
    assert resource["storage"] == "s3"
    assert resource["sha256"] == want
    assert [bucket.sha256(key) for key in bucket.objects()] == [want]
    assert bucket.everything_under(f"{PREFIX}.partial/") == {}  # segments gone
    assert bucket.in_progress() == []


def test_an_unreachable_bucket_stops_start_up_with_one_line(tmp_path):
    port = free_port()
    (tmp_path / "c.toml").write_text(
        f'[s3]\nbucket = "media"\nendpoint = "http://127.0.0.1:{port}"\n')
    result = subprocess.run(
        [sys.executable, str(ROOT / "server.py"), "--data-dir", str(tmp_path / "d"),
         "--config", str(tmp_path / "c.toml"), "--port", str(free_port())],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert result.stderr == (f"server.py: error: cannot write to s3://media/ at "
                             f"http://127.0.0.1:{port}: check the endpoint, the bucket and the "
                             "AWS credentials\n")


def test_fsck_finds_a_lost_object_and_an_orphan_in_the_bucket(tmp_path, bucket):
    config = f'storage = "s3"\n{bucket.config()}'
    with running_server(tmp_path, config=config) as server:
        ids = [json.loads(curl("--data-binary", f"file {n}", "-H", "Content-Type: text/plain",
                               server.url + "/api/files")[1])["id"] for n in range(2)]
    lost, kept = sorted(bucket.objects())
    bucket.client.delete_object(Bucket=bucket.bucket, Key=lost)
    orphan = f"{PREFIX}{'e' * 32}"
    bucket.client.put_object(Bucket=bucket.bucket, Key=orphan, Body=b"nobody points at me")
    result = fsck(tmp_path, "--data-dir", str(tmp_path / "data"),
                  "--config", str(tmp_path / "config.toml"))
    assert result.returncode == 1, result.stderr
    assert f"orphan blob s3/{'e' * 32}" in result.stdout
    assert f"missing blob s3/{lost.removeprefix(PREFIX)} of file " in result.stdout
    assert kept.removeprefix(PREFIX) not in result.stdout
    assert sum(file_id in result.stdout for file_id in ids) == 1


def test_derivatives_of_a_picture_stored_in_s3(s3_server, bucket, tmp_path):
    server = s3_server
    path = picture(tmp_path / "p.jpg", (640, 480))
    status, body = curl("--data-binary", f"@{path}", "-H", "Content-Type: image/jpeg",
                        "-H", "X-Filename: p.jpg", server.url + "/api/s3")
    assert status == 201, body
    done = settled(server, json.loads(body)["id"])
    assert done["processing"] == "done", done
    assert done["metadata"]["image"]["width"] == 640
    # The derivatives are objects of the same bucket, served through the server.
    assert len(bucket.objects()) > 1
    status, thumb = curl(server.url + f"/api/files/{done['id']}/derivatives/thumbnail")
    assert status == 200
    assert thumb[:4] == b"RIFF"  # webp
