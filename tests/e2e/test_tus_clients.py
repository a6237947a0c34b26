"""tus with a real client (tuspy, the tus project's Python client) against ``python
server.py`` subprocesses — on disk and on GridFS — and uploads begun on one server process and
finished on another that shares the stores."""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from tusclient import client as tus_client

from tests.mongo_support import Standin, fresh_database, start_standin
from tests.serverproc import ServerProcess, free_port, running_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def standin() -> Iterator[Standin]:
    server = start_standin(port=free_port())
    yield server
    server.stop()


@pytest.fixture(params=["disk", "gridfs"])
def server(request, tmp_path, standin) -> Iterator[ServerProcess]:
    args = []
    if request.param == "gridfs":
        args = ["--mongodb-uri", standin.uri(fresh_database()), "--storage", "gridfs"]
    with running_server(tmp_path, args) as running:
        yield running


def sample(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def stored(server: ServerProcess, upload_url: str) -> dict[str, object]:
    file_id = upload_url.rstrip("/").rsplit("/", 1)[1]
    with urllib.request.urlopen(f"{server.url}/api/files/{file_id}") as response:  # noqa: S310
        return dict(json.load(response))


@pytest.mark.parametrize(("size", "chunk"), [(20 * 1024 * 1024, 1024 * 1024),
                                             (1_000_003, 333_333)])
def test_tuspy_uploads_byte_exact(server, tmp_path, size, chunk):
    path = sample(tmp_path / "up.bin", size)
    # A stream we own: tuspy leaves files it opened itself unclosed.
    with path.open("rb") as stream:
        uploader = tus_client.TusClient(server.url + "/api/tus/").uploader(
            file_stream=stream, chunk_size=chunk,
            metadata={"filename": "up.bin", "kind": "test"})
        uploader.upload()
    resource = stored(server, uploader.url)
    assert resource["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert resource["size"] == size
    assert resource["data"] == {"kind": "test"}
    with urllib.request.urlopen(server.url + str(resource["download_url"])) as response:  # noqa: S310
        assert hashlib.sha256(response.read()).hexdigest() == resource["sha256"]


@pytest.mark.parametrize("shared", ["sqlite", "mongodb"])
def test_upload_begun_on_one_process_is_finished_on_another(tmp_path, standin, shared):
    args: list[str] = []
    if shared == "mongodb":
        args = ["--mongodb-uri", standin.uri(fresh_database()), "--storage", "gridfs"]
    path = sample(tmp_path / "shared.bin", 3_000_017)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    data = ["--data-dir", str(tmp_path / "data")]
    with running_server(tmp_path / "a", [*args, *data]) as first, \
            running_server(tmp_path / "b", [*args, *data]) as second, \
            path.open("rb") as stream:
        uploader = tus_client.TusClient(first.url + "/api/tus/").uploader(
            file_stream=stream, chunk_size=1_000_000)
        uploader.upload_chunk()  # one chunk through the first process
        upload_path = uploader.url.split("/api/tus/", 1)[1]
        resumed = tus_client.TusClient(second.url + "/api/tus/").uploader(
            file_stream=stream, chunk_size=700_000,
            url=f"{second.url}/api/tus/{upload_path}")
        assert resumed.offset == 1_000_000  # learnt from the second process's HEAD
        resumed.upload()
        resource = stored(second, resumed.url)
        assert resource["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert stored(first, resumed.url)["id"] == resource["id"]
