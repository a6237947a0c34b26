"""tus with a real client (tuspy, the tus project's Python client) against ``python
server.py`` subprocesses — on disk and on GridFS — uploads begun on one server process and
finished on another that shares the stores, and uploads that need a token: they belong to
their creator, whom no other principal can interfere with."""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from tusclient import client as tus_client
from tusclient.exceptions import TusCommunicationError

from tests.mongo_support import Standin, fresh_database, start_standin
from tests.serverproc import ServerProcess, free_port, running_server
from tests.tokens import bearer, tokens_toml

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


def stored(server: ServerProcess, upload_url: str,
           headers: dict[str, str] | None = None) -> dict[str, object]:
    file_id = upload_url.rstrip("/").rsplit("/", 1)[1]
    request = urllib.request.Request(f"{server.url}/api/files/{file_id}",  # noqa: S310
                                     headers=headers or {})
    with urllib.request.urlopen(request) as response:  # noqa: S310 (our loopback server)
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


@pytest.fixture(params=["disk", "gridfs"])
def auth_server(request, tmp_path, standin) -> Iterator[ServerProcess]:
    """A server that requires tokens (tests/tokens.py), on disk + SQLite or GridFS + MongoDB."""
    args = []
    if request.param == "gridfs":
        args = ["--mongodb-uri", standin.uri(fresh_database()), "--storage", "gridfs"]
    with running_server(tmp_path, args, config=tokens_toml()) as running:
        yield running


def tus_request(url: str, method: str, headers: dict[str, str], body: bytes | None = None
                ) -> tuple[int, str | None, str | None]:
    """(status, Upload-Offset, JSON:API error code) of one tus request."""
    request = urllib.request.Request(url, data=body, method=method,  # noqa: S310
                                     headers={"Tus-Resumable": "1.0.0", **headers})
    try:
        with urllib.request.urlopen(request) as response:  # noqa: S310 (our loopback server)
            return response.status, response.headers.get("Upload-Offset"), None
    except urllib.error.HTTPError as exc:
        content = exc.read()
        code = json.loads(content)["errors"][0]["code"] if content else None
        return exc.code, exc.headers.get("Upload-Offset"), code


def test_tuspy_with_a_token_owns_its_upload(auth_server, tmp_path):
    """alice uploads with tuspy (its ``headers``); halfway, bob's HEAD and PATCH on her upload
    URL are refused (403) and change nothing, as is a request without a token (401); bob's
    tuspy cannot take the upload over; alice finishes it and the file is hers."""
    path = sample(tmp_path / "owned.bin", 1_000_003)
    with path.open("rb") as stream:
        uploader = tus_client.TusClient(auth_server.url + "/api/tus/",
                                        headers=bearer("alice")).uploader(
            file_stream=stream, chunk_size=400_000, metadata={"filename": "owned.bin"})
        uploader.upload_chunk()
        url = uploader.url
        assert tus_request(url, "HEAD", bearer("alice"))[:2] == (200, "400000")
        assert tus_request(url, "HEAD", bearer("bob")) == (403, None, None)  # HEAD: no body
        patch = {**bearer("bob"), "Upload-Offset": "400000",
                 "Content-Type": "application/offset+octet-stream"}
        assert tus_request(url, "PATCH", patch, b"x" * 1000) == (403, None, "forbidden")
        assert tus_request(url, "PATCH", {k: v for k, v in patch.items()
                                          if k != "Authorization"}, b"x" * 1000)[::2] == \
            (401, "unauthorized")
        with pytest.raises(TusCommunicationError) as refused:
            tus_client.TusClient(auth_server.url + "/api/tus/", headers=bearer("bob")).uploader(
                file_stream=stream, chunk_size=400_000, url=url)
        assert refused.value.status_code == 403
        assert tus_request(url, "HEAD", bearer("alice"))[:2] == (200, "400000"), "unchanged"
        uploader.upload()
    resource = stored(auth_server, url, bearer("alice"))
    assert resource["owner"] == "alice"
    assert resource["size"] == 1_000_003
    assert resource["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert tus_request(url, "DELETE", bearer("bob"))[::2] == (403, "forbidden")
    assert stored(auth_server, url, bearer("bob"))["owner"] == "alice", "still there"
