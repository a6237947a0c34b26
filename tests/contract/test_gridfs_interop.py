"""GridFS interoperability: what we store, PyMongo's own AsyncGridFSBucket reads byte-exact,
and what the bucket wrote, we serve (files under 40 MiB: the stand-in's limit for PyMongo's
unbatched reader)."""

from __future__ import annotations

import hashlib
import json
import os
from uuid import uuid4

import pytest
from gridfs import AsyncGridFSBucket

from tornado_files.models import FileRecord, utcnow


@pytest.fixture
def stack() -> str:
    return "mongo"


@pytest.fixture
def db(services):
    return services.blob_stores["gridfs"].db  # type: ignore[attr-defined]


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("size", [0, 1, 255 * 1024, 3 * 1024 * 1024 + 7])
async def test_pymongo_reads_what_we_store(http_client, base_url, db, size):
    content = os.urandom(size)
    response = await http_client.fetch(base_url + "/api/files", method="POST", body=content,
                                       headers={"Content-Type": "application/octet-stream"})
    resource = json.loads(response.body)
    stream = await AsyncGridFSBucket(db).open_download_stream(resource["id"])
    assert stream.length == size
    assert await stream.read() == content
    files_doc = await db["fs.files"].find_one({"_id": resource["id"]})
    assert files_doc["chunkSize"] == 255 * 1024
    assert await db["fs.chunks"].count_documents({"files_id": resource["id"]}) == \
        -(-size // (255 * 1024))


@pytest.mark.gen_test(timeout=60)
async def test_we_serve_what_pymongo_wrote(http_client, base_url, db, services):
    content = os.urandom(5 * 1024 * 1024 + 3)
    bucket = AsyncGridFSBucket(db, chunk_size_bytes=64 * 1024)  # not our chunk size
    file_id = await bucket.upload_from_stream("theirs.bin", content)
    now = utcnow()
    record = FileRecord(
        id=uuid4().hex, filename="theirs.bin", original_filename="theirs.bin",
        size=len(content), mime_type="application/octet-stream",
        declared_type="application/octet-stream", type_os="data",
        sha256=hashlib.sha256(content).hexdigest(), route="/api/files", storage="gridfs",
        blob_key=str(file_id), added=now, modified=now)
    await services.metadata.insert_many([record])
    whole = await http_client.fetch(f"{base_url}/api/files/{record.id}/content")
    assert whole.body == content
    part = await http_client.fetch(f"{base_url}/api/files/{record.id}/content",
                                   headers={"Range": "bytes=65530-131080"})
    assert part.code == 206
    assert part.body == content[65530:131081]
