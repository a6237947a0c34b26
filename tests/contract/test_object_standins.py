"""The object-storage stand-ins answer the calls the blob stores will make (issue 17).

Azure: Azurite driven through obstore's AzureStore, exactly as the server will configure it.
GCS: gcp-storage-emulator driven through the GCS JSON API. obstore's GCSStore cannot be used
against this emulator (0.12.1 speaks only the XML API, see below), so these tests pin what the
emulator does support; the GCS blob store needs a stand-in that speaks the XML API or a JSON-API
client.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
from collections.abc import AsyncIterator, Iterator
from urllib.parse import quote, urlsplit

import obstore
import pytest
from obstore.store import AzureStore

from tests.azure_support import ACCOUNT, ACCOUNT_KEY, Azurite, start_azurite
from tests.gcs_support import GcsEmulator, start_gcs_emulator

MiB = 1024 * 1024
SIZE = 20 * MiB
PART = 8 * MiB
DATA = os.urandom(SIZE)
RANGE = (PART - 10, PART + 90)  # straddles the first part boundary


@pytest.fixture(scope="module")
def azurite() -> Iterator[Azurite]:
    server = start_azurite()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gcs() -> Iterator[GcsEmulator]:
    server = start_gcs_emulator()
    yield server
    server.stop()


def azure_store(azurite: Azurite, container: str) -> AzureStore:
    """The configuration that works with Azurite (and, minus ``allow_http``, with Azure)."""
    return AzureStore(container, endpoint=azurite.endpoint, account_name=ACCOUNT,
                      account_key=ACCOUNT_KEY, client_options={"allow_http": True})


async def parts() -> AsyncIterator[bytes]:
    for offset in range(0, SIZE, MiB):  # the server's 1 MiB-ish request chunks
        yield DATA[offset:offset + MiB]


# Azurite does not show: real throughput and latency, server-side throttling (503 "server
# busy"), IAM/RBAC and SAS policy checks beyond the shared key, geo-replication. It does
# support Put Block / Put Block List (obstore's multipart), ranged GET, prefix listing, delete;
# uncommitted blocks are dropped when the list is committed, not after Azure's 7 days. User
# delegation SAS needs --oauth and HTTPS, so signed (redirect) URLs are not covered here.
@pytest.mark.gen_test(timeout=60)
async def test_azurite_streams_reads_a_range_lists_and_deletes(azurite: Azurite) -> None:
    azurite.create_container("standin-a")
    store = azure_store(azurite, "standin-a")
    await obstore.put_async(store, "up/big", parts(), chunk_size=PART, max_concurrency=2)
    await obstore.put_async(store, "other/small", b"x")
    start, end = RANGE
    piece = await obstore.get_range_async(store, "up/big", start=start, end=end)
    assert bytes(piece) == DATA[start:end]
    whole = await (await obstore.get_async(store, "up/big")).bytes_async()
    assert hashlib.sha256(whole).digest() == hashlib.sha256(DATA).digest()
    listed = await obstore.list(store, prefix="up/").collect_async()
    assert [(m["path"], m["size"]) for m in listed] == [("up/big", SIZE)]
    await obstore.delete_async(store, "up/big")
    assert await obstore.list(store, prefix="up/").collect_async() == []


def _json_api(gcs: GcsEmulator, method: str, path: str, body: bytes = b"",
              headers: dict[str, str] | None = None) -> tuple[int, http.client.HTTPMessage, bytes]:
    """(status, headers, body) of one request to the emulator."""
    connection = http.client.HTTPConnection("127.0.0.1", gcs.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        answer = connection.getresponse()
        return answer.status, answer.headers, answer.read()
    finally:
        connection.close()


def _resumable_upload(gcs: GcsEmulator, bucket: str, name: str) -> None:
    """A GCS resumable upload in PART-sized PUTs (308 until the last, which states the size)."""
    _, headers, _ = _json_api(gcs, "POST", f"/upload/storage/v1/b/{bucket}/o?uploadType="
                              f"resumable&name={quote(name, safe='')}", b"",
                              {"Content-Length": "0"})
    session = urlsplit(headers["Location"])
    session_path = f"{session.path}?{session.query}"
    for start in range(0, SIZE, PART):
        chunk = DATA[start:start + PART]
        last = start + len(chunk) >= SIZE
        total = str(SIZE) if last else "*"
        status, _, _ = _json_api(gcs, "PUT", session_path, chunk, {
            "Content-Range": f"bytes {start}-{start + len(chunk) - 1}/{total}"})
        assert status == (200 if last else 308)


# gcp-storage-emulator (2026.7.19) speaks the JSON API: buckets, media/multipart/resumable
# uploads, ranged downloads, listing, delete, compose, copy/rewrite. It does NOT speak the XML
# API that obstore's GCSStore uses for everything: its XML PUT/GET answer without ETag and
# Last-Modified (obstore rejects them), and HEAD, DELETE, `?list-type=2` listing and XML
# multipart uploads (`POST ?uploads`) answer 501. It also ignores auth (no IAM, no signed-URL
# signature checks), keeps every object whole in memory and answers DELETE with 200 (GCS:
# 204). Real throughput and consistency are not shown.
def test_gcs_emulator_resumable_upload_range_list_and_delete(gcs: GcsEmulator) -> None:
    gcs.create_bucket("standin-g")
    _resumable_upload(gcs, "standin-g", "up/big")
    object_path = f"/storage/v1/b/standin-g/o/{quote('up/big', safe='')}"
    start, end = RANGE
    status, _, body = _json_api(gcs, "GET", f"{object_path}?alt=media",
                                headers={"Range": f"bytes={start}-{end - 1}"})
    assert (status, body) == (206, DATA[start:end])
    listing = "/storage/v1/b/standin-g/o?prefix=up/"
    items = json.loads(_json_api(gcs, "GET", listing)[2])["items"]
    assert [(i["name"], int(i["size"])) for i in items] == [("up/big", SIZE)]
    assert _json_api(gcs, "DELETE", object_path)[0] in (200, 204)  # GCS: 204
    assert json.loads(_json_api(gcs, "GET", listing)[2]).get("items", []) == []
