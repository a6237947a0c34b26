"""Two "hosts": two ``server.py`` processes with data directories of their own, sharing one
MongoDB (the stand-in) for records and GridFS for blobs — what several machines behind one
proxy are. Whatever one of them did, the other sees and continues."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from tests.mongo_support import Standin, fresh_database
from tests.serverproc import ServerProcess, running_server

pytestmark = pytest.mark.slow
MIB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture
def hosts(tmp_path_factory: pytest.TempPathFactory, standin: Standin
          ) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    args = ["--mongodb-uri", standin.uri(fresh_database()), "--storage", "gridfs"]
    with ExitStack() as stack:
        first, second = (stack.enter_context(running_server(tmp_path_factory.mktemp(name), args))
                         for name in ("host-a", "host-b"))
        assert first.data_dir != second.data_dir
        yield first, second


def call(server: ServerProcess, method: str, path: str, body: bytes | None = None,
         **headers: str) -> tuple[int, dict[str, str], bytes]:
    # http://127.0.0.1 only: the URLs are built here.
    request = urllib.request.Request(server.url + path, data=body, method=method,  # noqa: S310
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def content(size: int, seed: bytes) -> bytes:
    block = hashlib.sha256(seed).digest() * (MIB // 32)
    return b"".join(block[i % 32:] + block[: i % 32] for i in range(size // MIB))


def test_upload_on_one_host_download_and_delete_on_the_other(hosts):
    a, b = hosts
    data = content(5 * MIB, b"two hosts")
    status, _, body = call(a, "POST", "/api/files", data, **{
        "Content-Type": "application/octet-stream", "X-Filename": "shared.bin"})
    assert status == 201
    resource = json.loads(body)
    assert resource["sha256"] == hashlib.sha256(data).hexdigest()

    status, _, body = call(b, "GET", "/api/files")
    assert status == 200
    assert [f["id"] for f in json.loads(body)["files"]] == [resource["id"]]
    status, _, downloaded = call(b, "GET", resource["download_url"])
    assert status == 200
    assert hashlib.sha256(downloaded).hexdigest() == resource["sha256"]

    status, _, _ = call(b, "DELETE", resource["url"])
    assert status == 204
    for host in (a, b):
        assert call(host, "GET", resource["url"])[0] == 404
        assert call(host, "GET", resource["download_url"])[0] == 404
        assert json.loads(call(host, "GET", "/api/files")[2])["files"] == []


def test_a_tus_upload_created_on_one_host_is_finished_on_the_other(hosts):
    a, b = hosts
    data = content(6 * MIB, b"tus across hosts")
    status, headers, _ = call(a, "POST", "/api/tus/", b"", **TUS,
                              **{"Upload-Length": str(len(data))})
    assert status == 201
    location = headers["Location"]
    patch = {**TUS, "Content-Type": "application/offset+octet-stream"}
    status, headers, _ = call(a, "PATCH", location, data[:2 * MIB], **patch,
                              **{"Upload-Offset": "0"})
    assert (status, headers["Upload-Offset"]) == (204, str(2 * MIB))

    status, headers, _ = call(b, "HEAD", location, **TUS)
    assert (status, headers["Upload-Offset"]) == (200, str(2 * MIB))
    status, headers, _ = call(b, "PATCH", location, data[2 * MIB:], **patch,
                              **{"Upload-Offset": str(2 * MIB)})
    assert (status, headers["Upload-Offset"]) == (204, str(len(data)))

    file_id = location.rsplit("/", 1)[1]
    for host in (a, b):
        status, _, body = call(host, "GET", f"/api/files/{file_id}")
        assert status == 200
        assert json.loads(body)["sha256"] == hashlib.sha256(data).hexdigest()
    status, _, downloaded = call(a, "GET", f"/api/files/{file_id}/content")
    assert downloaded == data

    assert call(b, "DELETE", f"/api/files/{file_id}")[0] == 204
    for host in (a, b):
        assert call(host, "GET", f"/api/files/{file_id}")[0] == 404
        assert call(host, "HEAD", location, **TUS)[0] == 404
