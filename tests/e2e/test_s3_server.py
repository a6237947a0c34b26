"""``python server.py`` with an S3 route (``storage = "s3"``) against moto in server mode:
64 MiB raw and multipart uploads checked in the bucket through boto3, Range, DELETE, redirect
downloads, a client that disconnects halfway, tus across two processes, the bucket
unreachable, fsck, and the memory bound."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tusclient import client as tus_client

from tests.e2e.test_fsck import fsck
from tests.e2e.test_media_server import picture, settled
from tests.e2e.test_mongo_server import curl, random_file
from tests.nginx_support import tree_peak_rss
from tests.s3_support import S3Service, objects, objects_under, start_s3, unfinished_uploads
from tests.serverproc import ROOT, ServerProcess, free_port, running_server

pytestmark = pytest.mark.slow
MIB = 1024 * 1024
BOUND = 64 * MIB
PREFIX = "up/"


def config_for(service: S3Service, bucket: str, download: str = "proxy") -> str:
    return f"""
[s3]
bucket = "{bucket}"
prefix = "{PREFIX}"
endpoint = "{service.endpoint}"
part_size = "5MiB"
download = "{download}"

[[routes]]
path = "/api/s3"
max_body_size = "2GiB"
storage = "s3"
"""


@pytest.fixture
def s3_server(tmp_path: Path, s3_service: S3Service) -> Iterator[tuple[ServerProcess, Any, str]]:
    bucket = s3_service.new_bucket()
    with running_server(tmp_path, config=config_for(s3_service, bucket)) as server:
        yield server, s3_service.client(), bucket


def sha256_in_bucket(client: Any, bucket: str, key: str) -> str:
    digest = hashlib.sha256()
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    while chunk := body.read(MIB):
        digest.update(chunk)
    return digest.hexdigest()


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 — loopback
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_raw_and_multipart_uploads_range_and_delete(s3_server, tmp_path):
    server, client, bucket = s3_server
    big = random_file(tmp_path / "big.bin", 64 * MIB)
    content = big.read_bytes()
    want = hashlib.sha256(content).hexdigest()
    status, body = curl("--data-binary", f"@{big}", "-H", "Content-Type: application/x-raw",
                        "-H", "X-Filename: big.bin", server.url + "/api/s3")
    assert status == 201, body
    raw = json.loads(body)
    status, body = curl("-F", f"file=@{big}", server.url + "/api/s3")
    assert status == 201, body
    form = json.loads(body)
    stored = objects(client, bucket, PREFIX)
    assert sorted(stored.values()) == [64 * MIB, 64 * MIB]
    assert raw["storage"] == form["storage"] == "s3"
    assert raw["sha256"] == form["sha256"] == want
    assert [sha256_in_bucket(client, bucket, key) for key in stored] == [want, want]
    assert unfinished_uploads(client, bucket) == []

    out = tmp_path / "part.bin"
    status, _ = curl("-r", "5242870-5242889", "-o", str(out), server.url + raw["download_url"])
    assert status == 206
    assert out.read_bytes() == content[5242870:5242890]

    status, _ = curl("-X", "DELETE", server.url + f"/api/files/{raw['id']}")
    assert status == 204
    assert sorted(objects(client, bucket, PREFIX).values()) == [64 * MIB]


def test_a_client_gone_halfway_leaves_no_object_and_no_unfinished_upload(s3_server):
    server, client, bucket = s3_server
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"POST /api/s3 HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-raw\r\n"
                     b"Content-Length: %d\r\n\r\n" % (64 * MIB))
        block = bytes(range(256)) * 4096
        for _ in range(16):  # 16 MiB: three 5 MiB parts stored, one in the buffer
            sock.sendall(block)
        deadline = time.monotonic() + 10
        while not unfinished_uploads(client, bucket) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert unfinished_uploads(client, bucket)  # the upload was under way
    deadline = time.monotonic() + 15
    while unfinished_uploads(client, bucket) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert unfinished_uploads(client, bucket) == []
    assert objects(client, bucket, PREFIX) == {}


def test_the_bucket_unreachable_is_503_and_not_ready(tmp_path):
    own = start_s3(external=False)  # a moto of our own, to stop
    try:
        bucket = own.new_bucket()
        with running_server(tmp_path, config=config_for(own, bucket)) as server:
            assert status_of(server.url + "/readyz") == 200
            own.stop()
            status, body = curl("--data-binary", "hello", "-H", "Content-Type: text/plain",
                                server.url + "/api/s3")
            assert status == 503, body
            assert json.loads(body)["errors"][0]["code"] == "backend_unavailable"
            assert status_of(server.url + "/readyz") == 503
            assert "Traceback" not in server.log()
    finally:
        own.stop()


def test_256_mib_upload_to_s3_in_bounded_memory(s3_server):
    server, client, bucket = s3_server
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
    assert size in objects(client, bucket, PREFIX).values()


def test_tuspy_in_5_mib_chunks_begun_on_one_process_is_finished_on_another(tmp_path,
                                                                          s3_service):
    bucket = s3_service.new_bucket()
    client = s3_service.client()
    path = tmp_path / "tus.bin"
    path.write_bytes(os.urandom(13 * MIB + 17))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    data = ["--data-dir", str(tmp_path / "data")]  # the records (SQLite) shared on one host
    config = config_for(s3_service, bucket)
    with running_server(tmp_path / "a", data, config=config) as first, \
            running_server(tmp_path / "b", data, config=config) as second, \
            path.open("rb") as stream:
        uploader = tus_client.TusClient(first.url + "/api/tus/").uploader(
            file_stream=stream, chunk_size=5 * MIB, metadata={"route": "/api/s3"})
        uploader.upload_chunk()  # one chunk through the first process
        segments = objects_under(client, bucket, f"{PREFIX}.partial/")
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
    stored = objects(client, bucket, PREFIX)
    assert [sha256_in_bucket(client, bucket, key) for key in stored] == [want]
    assert objects_under(client, bucket, f"{PREFIX}.partial/") == {}  # segments gone
    assert unfinished_uploads(client, bucket) == []


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


def test_redirect_downloads_come_from_the_bucket_with_name_and_type(tmp_path, s3_service):
    bucket = s3_service.new_bucket()
    clip = random_file(tmp_path / "clip.bin", 6 * MIB)
    content = clip.read_bytes()
    config = config_for(s3_service, bucket, download="redirect")
    with running_server(tmp_path, config=config) as server:
        status, body = curl("--data-binary", f"@{clip}", "-H", "Content-Type: application/x-raw",
                            "-H", "X-Filename: r%C3%A9sum%C3%A9.bin", server.url + "/api/s3")
        assert status == 201, body
        url = server.url + json.loads(body)["download_url"]
        status, headers = curl("-sS", "-o", "/dev/null", "-D", "-", url)
        assert status == 302
        location = next(line.split(" ", 1)[1].strip() for line in headers.decode().splitlines()
                        if line.lower().startswith("location:"))
        assert location.startswith(s3_service.endpoint + f"/{bucket}/{PREFIX}")
        assert "Signature=" in location or "X-Amz-Signature=" in location
        # curl follows it to the bucket, which serves the bytes, the name and the type.
        out = tmp_path / "out"
        status, headers = curl("-L", "-D", "-", "-o", str(out), url)
        assert status == 200
        assert out.read_bytes() == content
        text = headers.decode().lower()
        assert "content-disposition: attachment; filename=\"resume.bin\"" in text
        assert "content-type: application/octet-stream" in text
        status, _ = curl("-L", "-r", "100-199", "-o", str(out), url)
        assert status == 206
        assert out.read_bytes() == content[100:200]


def test_fsck_finds_a_lost_object_and_an_orphan_in_the_bucket(tmp_path, s3_service):
    bucket = s3_service.new_bucket()
    client = s3_service.client()
    config = f'storage = "s3"\n{config_for(s3_service, bucket)}'
    with running_server(tmp_path, config=config) as server:
        ids = [json.loads(curl("--data-binary", f"file {n}", "-H", "Content-Type: text/plain",
                               server.url + "/api/files")[1])["id"] for n in range(2)]
    lost, kept = sorted(objects(client, bucket, PREFIX))
    client.delete_object(Bucket=bucket, Key=lost)
    orphan = f"{PREFIX}{'e' * 32}"
    client.put_object(Bucket=bucket, Key=orphan, Body=b"nobody points at me")
    result = fsck(tmp_path, "--data-dir", str(tmp_path / "data"),
                  "--config", str(tmp_path / "config.toml"))
    assert result.returncode == 1, result.stderr
    assert f"orphan blob s3/{'e' * 32}" in result.stdout
    assert f"missing blob s3/{lost.removeprefix(PREFIX)} of file " in result.stdout
    assert kept.removeprefix(PREFIX) not in result.stdout
    assert sum(file_id in result.stdout for file_id in ids) == 1


def test_derivatives_of_a_picture_stored_in_s3(s3_server, tmp_path):
    server, client, bucket = s3_server
    path = picture(tmp_path / "p.jpg", (640, 480))
    status, body = curl("--data-binary", f"@{path}", "-H", "Content-Type: image/jpeg",
                        "-H", "X-Filename: p.jpg", server.url + "/api/s3")
    assert status == 201, body
    done = settled(server, json.loads(body)["id"])
    assert done["processing"] == "done", done
    assert done["metadata"]["image"]["width"] == 640
    # The derivatives are objects of the same bucket, served through the server.
    assert len(objects(client, bucket, PREFIX)) > 1
    status, thumb = curl(server.url + f"/api/files/{done['id']}/derivatives/thumbnail")
    assert status == 200
    assert thumb[:4] == b"RIFF"  # webp
