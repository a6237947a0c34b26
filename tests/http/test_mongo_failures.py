"""MongoDB failing under an upload, in-process: the driver's error is injected at the
collection boundary (the stand-in stays up, so the residue check can read what is left)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from pymongo.errors import AutoReconnect

from tests.support import Part, error_of, multipart
from tornado_files.app import build_sweeper
from tornado_files.models import utcnow


@pytest.fixture
def stack() -> str:
    return "mongo"


class Flaky:
    """A collection whose ``method`` fails after ``ok`` successful calls."""

    def __init__(self, inner: Any, method: str, ok: int) -> None:
        self.inner, self.method, self.ok = inner, method, ok

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.inner, name)
        if name != self.method:
            return real

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.ok <= 0:
                raise AutoReconnect("connection reset by 10.0.0.7:27017 (secret topology)")
            self.ok -= 1
            return await real(*args, **kwargs)
        return call


async def big_upload(client: Any, base_url: str) -> Any:
    body, ctype = multipart([Part("files", b"a" * 300_000, "a.bin"),
                             Part("files", b"b" * 3_000_000, "b.bin")])
    return await client.fetch(base_url + "/api/files", method="POST", body=body,
                              headers={"Content-Type": ctype}, raise_error=False)


@pytest.mark.gen_test
@pytest.mark.allow_error_logs
@pytest.mark.parametrize(("collection", "method", "ok"), [
    ("chunks", "insert_many", 1),  # mid-stream, after some chunks were written
    ("files", "insert_one", 1),  # the second file's files document
])
async def test_mongodb_failing_mid_upload_is_503_and_leaves_nothing(
        http_client, base_url, services, residue, collection, method, ok):
    store = services.blob_store("gridfs")
    setattr(store, collection, Flaky(getattr(store, collection), method, ok))
    response = await big_upload(http_client, base_url)
    error = error_of(response, 503, "backend_unavailable")
    assert "secret" not in json.dumps(error)
    assert "10.0.0.7" not in response.body.decode()
    residue.assert_clean()


@pytest.mark.gen_test
@pytest.mark.allow_error_logs
async def test_record_insert_failing_removes_the_committed_gridfs_files(
        http_client, base_url, services, residue):
    metadata = services.metadata
    metadata._files = Flaky(metadata._files, "insert_many", 0)
    response = await big_upload(http_client, base_url)
    error_of(response, 503, "backend_unavailable")
    residue.assert_clean()


@pytest.mark.gen_test
@pytest.mark.allow_error_logs
async def test_failed_gridfs_delete_is_204_and_the_sweeper_finishes_it(
        http_client, base_url, services, residue):
    body, ctype = multipart([Part("file", b"doomed" * 100_000, "a.bin")])
    created = json.loads((await http_client.fetch(
        base_url + "/api/files", method="POST", body=body,
        headers={"Content-Type": ctype})).body)
    store = services.blob_store("gridfs")
    files = store.files
    store.files = Flaky(files, "delete_one", 0)
    response = await http_client.fetch(base_url + created["url"], method="DELETE",
                                       raise_error=False)
    store.files = files
    assert response.code == 204
    assert residue.rows() == 0
    assert residue.blobs() == [created["id"]]
    assert residue.intents() == [created["id"]]
    grace = timedelta(seconds=services.config.sweep_grace)
    later = await build_sweeper(services, clock=lambda: utcnow() + grace + grace / 10
                                ).sweep_once()
    assert later.removed == 1
    residue.assert_clean()
