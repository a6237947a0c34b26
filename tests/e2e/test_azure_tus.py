"""``python server.py`` with an Azure route against Azurite, beyond the smoke set: a tus upload
with tuspy in 5 MiB chunks begun on one process and finished on another (the partial is one
blob in the container), the memory bound of a 256 MiB upload, fsck, and derivatives. The
container is read back through azure-storage-blob; credentials reach the server only through
its environment."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tusclient import client as tus_client

from tests.azure_support import Azurite
from tests.contract.azure_probe import container_client
from tests.e2e.test_fsck import fsck
from tests.e2e.test_media_server import picture, settled
from tests.e2e.test_mongo_server import curl
from tests.nginx_support import tree_peak_rss
from tests.serverproc import ServerProcess, running_server

pytestmark = pytest.mark.slow
MIB = 1024 * 1024
BOUND = 64 * MIB
PREFIX = "up/"
PARTIALS = f"{PREFIX}.partial/"


def config_for(azurite: Azurite, container: str) -> str:
    return f"""
[azure]
container = "{container}"
prefix = "{PREFIX}"
endpoint = "{azurite.endpoint}"
part_size = "4MiB"

[[routes]]
path = "/api/az"
max_body_size = "2GiB"
storage = "azure"
"""


def env_for(azurite: Azurite) -> dict[str, str]:
    return {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}


@pytest.fixture
def azure_server(tmp_path: Path, azurite: Azurite) -> Iterator[tuple[ServerProcess, Any]]:
    container = azurite.new_container()
    with running_server(tmp_path, config=config_for(azurite, container),
                        env=env_for(azurite)) as server:
        yield server, container_client(azurite, container)


def blobs(client: Any, prefix: str = PREFIX) -> dict[str, int]:
    """Committed blobs under ``prefix`` (ours: not the marker, ping or partial blobs)."""
    return {b.name: b.size for b in client.list_blobs(name_starts_with=prefix)
            if prefix != PREFIX or not b.name.startswith(PREFIX + ".")}


def uncommitted(client: Any) -> list[str]:
    return [b.name for b in client.list_blobs(name_starts_with=PREFIX,
                                              include=["uncommittedblobs"])
            if client.get_blob_client(b.name).get_block_list("uncommitted")[1]]


def sha256_in_container(client: Any, name: str) -> str:
    digest = hashlib.sha256()
    for piece in client.get_blob_client(name).download_blob().chunks():
        digest.update(piece)
    return digest.hexdigest()


def test_tuspy_in_5_mib_chunks_begun_on_one_process_is_finished_on_another(tmp_path, azurite):
    container = azurite.new_container()
    client = container_client(azurite, container)
    path = tmp_path / "tus.bin"
    path.write_bytes(os.urandom(13 * MIB + 17))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    data = ["--data-dir", str(tmp_path / "data")]  # the records (SQLite) shared on one host
    config, env = config_for(azurite, container), env_for(azurite)
    with running_server(tmp_path / "a", data, config=config, env=env) as first, \
            running_server(tmp_path / "b", data, config=config, env=env) as second, \
            path.open("rb") as stream:
        uploader = tus_client.TusClient(first.url + "/api/tus/").uploader(
            file_stream=stream, chunk_size=5 * MIB, metadata={"route": "/api/az"})
        uploader.upload_chunk()  # one chunk through the first process
        upload_path = uploader.url.split("/api/tus/", 1)[1]
        partial = client.get_blob_client(PARTIALS + upload_path)
        # The chunk is durable in the container: one full block and the short rest.
        assert [b.size for b in partial.get_block_list("committed")[0]] == [4 * MIB, MIB]
        resumed = tus_client.TusClient(second.url + "/api/tus/").uploader(
            file_stream=stream, chunk_size=5 * MIB, url=f"{second.url}/api/tus/{upload_path}")
        assert resumed.offset == 5 * MIB
        resumed.upload()
        with urllib.request.urlopen(  # noqa: S310 — loopback
                f"{second.url}/api/files/{upload_path}", timeout=30) as response:
            resource = json.load(response)
    want = hashlib.sha256(path.read_bytes()).hexdigest()
    assert resource["storage"] == "azure"
    assert resource["sha256"] == want
    stored = blobs(client)
    assert list(stored) == [PREFIX + upload_path]
    assert sha256_in_container(client, PREFIX + upload_path) == want
    assert blobs(client, PARTIALS) == {}  # the partial blob is gone
    assert uncommitted(client) == []


def test_256_mib_upload_to_azure_in_bounded_memory(azure_server):
    server, client = azure_server
    size = 256 * MIB
    curl("--data-binary", "warm-up", "-H", "Content-Type: text/plain", server.url + "/api/az")
    baseline = tree_peak_rss(server.process.pid)
    digest = hashlib.sha256()
    block = hashlib.sha512(b"azure").digest() * (MIB // 64)

    def body() -> Iterator[bytes]:
        for i in range(size // MIB):
            piece = block[i % 64:] + block[: i % 64]
            digest.update(piece)
            yield piece

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=300)
    conn.request("POST", "/api/az", body=body(), headers={
        "Content-Length": str(size), "Content-Type": "application/octet-stream"})
    response = conn.getresponse()
    resource = json.loads(response.read())
    conn.close()
    assert response.status == 201, resource
    assert resource["sha256"] == digest.hexdigest()
    assert tree_peak_rss(server.process.pid) - baseline < BOUND
    name = next(n for n, s in blobs(client).items() if s == size)
    assert sha256_in_container(client, name) == digest.hexdigest()


def test_fsck_finds_a_lost_blob_and_an_orphan_in_the_container(tmp_path, azurite, monkeypatch):
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    container = azurite.new_container()
    client = container_client(azurite, container)
    config = f'storage = "azure"\n{config_for(azurite, container)}'
    with running_server(tmp_path, config=config, env=env_for(azurite)) as server:
        ids = [json.loads(curl("--data-binary", f"file {n}", "-H", "Content-Type: text/plain",
                               server.url + "/api/files")[1])["id"] for n in range(2)]
    lost, kept = sorted(blobs(client))
    client.delete_blob(lost)
    orphan = f"{PREFIX}{'e' * 32}"
    client.upload_blob(orphan, b"nobody points at me")
    result = fsck(tmp_path, "--data-dir", str(tmp_path / "data"),
                  "--config", str(tmp_path / "config.toml"))
    assert result.returncode == 1, result.stderr
    assert f"orphan blob azure/{'e' * 32}" in result.stdout
    assert f"missing blob azure/{lost.removeprefix(PREFIX)} of file " in result.stdout
    assert kept.removeprefix(PREFIX) not in result.stdout
    assert sum(file_id in result.stdout for file_id in ids) == 1


def test_derivatives_of_a_picture_stored_in_azure(azure_server, tmp_path):
    server, client = azure_server
    path = picture(tmp_path / "p.jpg", (640, 480))
    status, body = curl("--data-binary", f"@{path}", "-H", "Content-Type: image/jpeg",
                        "-H", "X-Filename: p.jpg", server.url + "/api/az")
    assert status == 201, body
    done = settled(server, json.loads(body)["id"])
    assert done["processing"] == "done", done
    assert done["metadata"]["image"]["width"] == 640
    # The derivatives are blobs of the same container, served through the server.
    assert len(blobs(client)) > 1
    status, thumb = curl(server.url + f"/api/files/{done['id']}/derivatives/thumbnail")
    assert status == 200
    assert thumb[:4] == b"RIFF"  # webp
