"""``python server.py`` on each object store (tests/object_adapters.py), beyond
test_object_server.py (the fixtures are in conftest.py): tuspy in 5 MiB chunks begun on one
process and finished on another (the partial durable in the bucket, gone afterwards), a
1 GiB upload to S3 (256 MiB to the slower Azure and GCS stand-ins) within 64 MiB of RSS
growth, the one start-up line for a store nothing answers at, fsck finding a lost object and
an orphan, and the derivatives of a picture."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tusclient import client as tus_client

from tests.e2e.test_fsck import fsck
from tests.e2e.test_media_server import picture, settled
from tests.e2e.test_mongo_server import curl
from tests.nginx_support import tree_peak_rss
from tests.object_support import MIB, PREFIX, ObjectStore
from tests.serverproc import ROOT, ServerProcess, free_port, running_server

pytestmark = pytest.mark.slow
BOUND = 64 * MIB
CHUNK = 5 * MIB


def pieces(size: int, part: int) -> list[int]:
    """``size`` bytes cut into parts of ``part``: what a partial holds of one tus chunk (S3 and
    GCS: segment objects of at most a part; Azure: blocks of a part)."""
    return [part] * (size // part) + ([size % part] if size % part else [])


def test_tuspy_in_5_mib_chunks_begun_on_one_process_is_finished_on_another(tmp_path,
                                                                          store: ObjectStore):
    path = tmp_path / "tus.bin"
    path.write_bytes(os.urandom(13 * MIB + 17))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    data = ["--data-dir", str(tmp_path / "data")]  # the records (SQLite) shared on one host
    config, env = store.config(), store.env()
    with running_server(tmp_path / "a", data, config=config, env=env) as first, \
            running_server(tmp_path / "b", data, config=config, env=env) as second, \
            path.open("rb") as stream:
        uploader = tus_client.TusClient(first.url + "/api/tus/").uploader(
            file_stream=stream, chunk_size=CHUNK, metadata={"route": store.route})
        uploader.upload_chunk()  # one chunk through the first process
        upload_id = uploader.url.split("/api/tus/", 1)[1]
        # The chunk is durable in the bucket, whichever process comes next.
        assert store.partial_pieces(upload_id) == pieces(CHUNK, store.part_size)
        resumed = tus_client.TusClient(second.url + "/api/tus/").uploader(
            file_stream=stream, chunk_size=CHUNK, url=f"{second.url}/api/tus/{upload_id}")
        assert resumed.offset == CHUNK
        resumed.upload()
        status, body = curl(f"{second.url}/api/files/{upload_id}")
        assert status == 200, body
        resource = json.loads(body)
    want = hashlib.sha256(path.read_bytes()).hexdigest()
    assert resource["storage"] == store.kind
    assert resource["sha256"] == want
    assert list(store.objects()) == [PREFIX + upload_id]
    assert store.sha256(PREFIX + upload_id) == want
    assert store.everything_under(f"{PREFIX}.partial/") == {}  # the partial is gone
    assert store.in_progress() == []


def test_a_large_upload_in_bounded_memory(object_server: ServerProcess, store: ObjectStore):
    server = object_server
    # The bound the issue names is 1 GiB to S3 (~15 s on moto); azurite and the GCS emulator
    # take 3-6 times as long per byte, so they show the same bound at 256 MiB.
    size = 1024 * MIB if store.kind == "s3" else 256 * MIB
    curl("--data-binary", "warm-up", "-H", "Content-Type: text/plain", server.url + store.route)
    baseline = tree_peak_rss(server.process.pid)
    digest = hashlib.sha256()
    block = hashlib.sha512(store.kind.encode()).digest() * (MIB // 64)

    def body() -> Iterator[bytes]:
        for i in range(size // MIB):
            piece = block[i % 64:] + block[: i % 64]
            digest.update(piece)
            yield piece

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=300)
    conn.request("POST", store.route, body=body(), headers={
        "Content-Length": str(size), "Content-Type": "application/octet-stream"})
    response = conn.getresponse()
    resource = json.loads(response.read())
    conn.close()
    assert response.status == 201, resource
    assert resource["sha256"] == digest.hexdigest()
    assert tree_peak_rss(server.process.pid) - baseline < BOUND
    name = next(name for name, stored in store.objects().items() if stored == size)
    assert store.sha256(name) == digest.hexdigest()


def start_up(tmp_path: Path, config: str, store: ObjectStore) -> subprocess.CompletedProcess[str]:
    """``server.py`` with ``config``, expected to stop at start-up (bounded: 60 s)."""
    (tmp_path / "c.toml").write_text(config)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORNADO_FILES_")}
    return subprocess.run(
        [sys.executable, str(ROOT / "server.py"), "--data-dir", str(tmp_path / "d"),
         "--config", str(tmp_path / "c.toml"), "--port", str(free_port())],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env | store.env(),
        check=False)


def test_a_store_nothing_answers_at_stops_start_up_with_one_line(tmp_path, store: ObjectStore):
    table, refusal = store.unreachable(free_port())
    result = start_up(tmp_path, table, store)
    assert result.returncode == 2
    assert result.stderr == f"server.py: error: {refusal}\n"


def test_a_missing_bucket_stops_start_up_with_one_line(tmp_path, store: ObjectStore):
    # The service answers, but the bucket (container) is not there: the marker's write is
    # refused with "not found", which must be the start-up line too, not a traceback.
    name = getattr(store, "bucket", None) or getattr(store, "container", "")
    missing = f"nothere{os.getpid()}"
    result = start_up(tmp_path, store.config().replace(f'"{name}"', f'"{missing}"'), store)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("server.py: error: cannot write to ")
    assert missing in result.stderr
    assert result.stderr.count("\n") == 1


def test_fsck_finds_a_lost_object_and_an_orphan(tmp_path, store: ObjectStore, monkeypatch):
    for name, value in store.env().items():  # fsck runs with the test's environment
        monkeypatch.setenv(name, value)
    config = f'storage = "{store.kind}"\n{store.config()}'
    with running_server(tmp_path, config=config, env=store.env()) as server:
        ids = [json.loads(curl("--data-binary", f"file {n}", "-H", "Content-Type: text/plain",
                               server.url + "/api/files")[1])["id"] for n in range(2)]
    lost, kept = sorted(store.objects())
    store.remove(lost)
    store.put(f"{PREFIX}{'e' * 32}", b"nobody points at me")
    result = fsck(tmp_path, "--data-dir", str(tmp_path / "data"),
                  "--config", str(tmp_path / "config.toml"))
    assert result.returncode == 1, result.stderr
    assert f"orphan blob {store.kind}/{'e' * 32}" in result.stdout
    assert f"missing blob {store.kind}/{lost.removeprefix(PREFIX)} of file " in result.stdout
    assert kept.removeprefix(PREFIX) not in result.stdout
    assert sum(file_id in result.stdout for file_id in ids) == 1


def test_derivatives_of_a_picture_in_the_store(object_server: ServerProcess, store: ObjectStore,
                                              tmp_path):
    server = object_server
    path = picture(tmp_path / "p.jpg", (640, 480))
    status, body = curl("--data-binary", f"@{path}", "-H", "Content-Type: image/jpeg",
                        "-H", "X-Filename: p.jpg", server.url + store.route)
    assert status == 201, body
    done = settled(server, json.loads(body)["id"])
    assert done["processing"] == "done", done
    assert done["metadata"]["image"]["width"] == 640
    # The derivatives are objects of the same bucket, served through the server.
    assert len(store.objects()) > 1
    status, thumb = curl(server.url + f"/api/files/{done['id']}/derivatives/thumbnail")
    assert status == 200
    assert thumb[:4] == b"RIFF"  # webp
