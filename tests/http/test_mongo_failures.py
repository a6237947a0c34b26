"""MongoDB failing under an upload, in-process: the driver's error is injected at the
collection boundary (the stand-in stays up, so the residue check can read what is left)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pymongo.errors import AutoReconnect

from tests.support import Part, error_of, multipart


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
