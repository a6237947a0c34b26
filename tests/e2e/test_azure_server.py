"""``python server.py`` with an Azure route (``storage = "azure"``) against Azurite: 64 MiB raw
and multipart uploads checked in the container through azure-storage-blob, Range, DELETE, a
client that disconnects halfway (no blob, no uncommitted block), and Azurite stopped (503 and
``/readyz`` 503). Credentials reach the server only through its environment."""

from __future__ import annotations

import hashlib
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.azure_support import Azurite, start_azurite
from tests.contract.azure_probe import container_client
from tests.e2e.test_mongo_server import curl, random_file
from tests.serverproc import ServerProcess, running_server

pytestmark = pytest.mark.slow
MIB = 1024 * 1024
PREFIX = "up/"


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


def blobs(client: Any, uncommitted: bool = False) -> dict[str, int]:
    include = ["uncommittedblobs"] if uncommitted else None
    return {b.name: b.size for b in client.list_blobs(name_starts_with=PREFIX, include=include)
            if not b.name.startswith(PREFIX + ".")}


def sha256_in_container(client: Any, name: str) -> str:
    digest = hashlib.sha256()
    for chunk in client.get_blob_client(name).download_blob().chunks():
        digest.update(chunk)
    return digest.hexdigest()


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 — loopback
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_raw_and_multipart_uploads_range_and_delete(azure_server, tmp_path):
    server, client = azure_server
    big = random_file(tmp_path / "big.bin", 64 * MIB)
    content = big.read_bytes()
    want = hashlib.sha256(content).hexdigest()
    status, body = curl("--data-binary", f"@{big}", "-H", "Content-Type: application/x-raw",
                        "-H", "X-Filename: big.bin", server.url + "/api/az")
    assert status == 201, body
    raw = json.loads(body)
    status, body = curl("-F", f"file=@{big}", server.url + "/api/az")
    assert status == 201, body
    form = json.loads(body)
    stored = blobs(client)
    assert sorted(stored.values()) == [64 * MIB, 64 * MIB]
    assert raw["storage"] == form["storage"] == "azure"
    assert raw["sha256"] == form["sha256"] == want
    assert [sha256_in_container(client, name) for name in stored] == [want, want]

    out = tmp_path / "part.bin"
    status, _ = curl("-r", "4194295-4194314", "-o", str(out), server.url + raw["download_url"])
    assert status == 206
    assert out.read_bytes() == content[4194295:4194315]

    status, _ = curl("-X", "DELETE", server.url + f"/api/files/{raw['id']}")
    assert status == 204
    assert sorted(blobs(client).values()) == [64 * MIB]


def test_a_client_gone_halfway_leaves_no_blob_and_no_uncommitted_block(azure_server):
    server, client = azure_server
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"POST /api/az HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-raw\r\n"
                     b"Content-Length: %d\r\n\r\n" % (64 * MIB))
        block = bytes(range(256)) * 4096
        for _ in range(16):  # 16 MiB: blocks of 4 MiB staged
            sock.sendall(block)
        deadline = time.monotonic() + 10
        while not blobs(client, uncommitted=True) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert blobs(client, uncommitted=True)  # the upload was under way
    deadline = time.monotonic() + 15
    while blobs(client, uncommitted=True) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert blobs(client, uncommitted=True) == {}


def test_azurite_stopped_is_503_and_not_ready(tmp_path):
    own = start_azurite()  # an Azurite of our own, to stop
    try:
        container = own.new_container()
        with running_server(tmp_path, config=config_for(own, container),
                            env=env_for(own)) as server:
            assert status_of(server.url + "/readyz") == 200
            own.stop()
            status, body = curl("--data-binary", "hello", "-H", "Content-Type: text/plain",
                                server.url + "/api/az")
            assert status == 503, body
            assert json.loads(body)["errors"][0]["code"] == "backend_unavailable"
            assert status_of(server.url + "/readyz") == 503
            assert "Traceback" not in server.log()
    finally:
        own.stop()
