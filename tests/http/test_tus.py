"""tus 1.0.0 (docs/api.md, Resumable uploads) in-process (the ``stores`` tests on every stack):
each status code, each failure followed by the residue check; resume after a cut PATCH; racing
PATCHes; expiry."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import socket
import time
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from tests.support import PDF_HEAD, PNG_1PX, error_of, id3v2_tag
from tornado_files.app import build_sweeper

V = {"Tus-Resumable": "1.0.0"}
CHUNK = {"Content-Type": "application/offset+octet-stream", **V}


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"routes": [{"path": "/api/small", "max_body_size": "1MiB"},
                       {"path": "/api/images", "max_body_size": "64MiB",
                        "allowed_mime_types": ["image/png"]},
                       {"path": "/api/audio", "max_body_size": "4MiB",
                        "allowed_mime_types": ["audio/*"]}],
            "tus_expiry": 3600}


def meta(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


class Tus:
    def __init__(self, client: AsyncHTTPClient, base_url: str) -> None:
        self.client, self.base = client, base_url

    async def fetch(self, path: str, method: str = "GET", body: bytes | None = None,
                    **headers: str) -> HTTPResponse:
        return await self.client.fetch(self.base + path, method=method, body=body,
                                       headers=headers, raise_error=False,
                                       allow_nonstandard_methods=True)

    async def create(self, length: int, **headers: str) -> str:
        response = await self.fetch("/api/tus/", "POST", b"", **V, **{
            "Upload-Length": str(length), **headers})
        assert response.code == 201, response.body
        return response.headers["Location"]

    async def patch(self, url: str, offset: int, data: bytes, **headers: str) -> HTTPResponse:
        return await self.fetch(url, "PATCH", data, **CHUNK,
                                **{"Upload-Offset": str(offset), **headers})

    async def offset(self, url: str) -> int:
        response = await self.fetch(url, "HEAD", **V)
        assert response.code == 200
        return int(response.headers["Upload-Offset"])


@pytest.fixture
def tus(http_client, base_url) -> Tus:
    return Tus(http_client, base_url)


@pytest.mark.gen_test
async def test_options_advertises_the_server(tus):
    response = await tus.fetch("/api/tus/", "OPTIONS")
    assert response.code == 204
    assert response.headers["Tus-Version"] == "1.0.0"
    assert set(response.headers["Tus-Extension"].split(",")) == {
        "creation", "creation-with-upload", "termination", "checksum", "expiration"}
    assert response.headers["Tus-Max-Size"] == str(10 * 1024**3)
    assert response.headers["Tus-Checksum-Algorithm"] == "sha1,sha256,md5"
    small = await tus.fetch("/api/tus/?route=/api/small", "OPTIONS")
    assert small.headers["Tus-Max-Size"] == str(1024 * 1024)


@pytest.mark.stores
@pytest.mark.gen_test
async def test_whole_upload_in_chunks_becomes_the_file(tus, residue):
    content = PNG_1PX + os.urandom(300_000)
    url = await tus.create(len(content), **{"Upload-Metadata": meta(
        filename="../pic.png", filetype="image/png", title="Q3")})
    upload_id = url.rsplit("/", 1)[1]
    head = await tus.fetch(url, "HEAD", **V)
    assert head.headers["Upload-Offset"] == "0"
    assert head.headers["Upload-Length"] == str(len(content))
    assert head.headers["Cache-Control"] == "no-store"
    assert head.headers["Tus-Resumable"] == "1.0.0"
    assert head.headers["Upload-Expires"].endswith("GMT")
    assert "Content-Type" not in head.headers  # no body, so nothing to type
    assert "ETag" not in head.headers  # an ETag of nothing would turn HEADs into 304s
    for start in range(0, len(content), 100_001):
        piece = content[start:start + 100_001]
        response = await tus.patch(url, start, piece)
        assert response.code == 204, response.body
        assert response.headers["Upload-Offset"] == str(start + len(piece))
        assert "Upload-Expires" in response.headers
    resource = json.loads((await tus.fetch(f"/api/files/{upload_id}")).body)
    assert resource["sha256"] == hashlib.sha256(content).hexdigest()
    assert resource["filename"] == "pic.png"
    assert resource["mime_type"] == "image/png"
    assert resource["declared_type"] == "image/png"
    assert resource["data"] == {"title": "Q3"}
    assert (await tus.fetch(resource["download_url"])).body == content
    # Finished: HEAD still tells a resuming client that everything arrived.
    assert await tus.offset(url) == len(content)
    residue.assert_clean(committed=1)


@pytest.mark.stores
@pytest.mark.gen_test
async def test_creation_with_upload_and_an_empty_file(tus, residue):
    response = await tus.fetch("/api/tus/", "POST", b"hello", **CHUNK, **{"Upload-Length": "5"})
    assert response.code == 201
    assert response.headers["Upload-Offset"] == "5"
    empty = await tus.create(0)
    response = await tus.patch(empty, 0, b"")
    assert response.code == 204
    residue.assert_clean(committed=2)


@pytest.mark.gen_test
@pytest.mark.parametrize(("headers", "status", "code"), [
    ({}, 412, "unsupported_tus_version"),
    ({"Tus-Resumable": "0.2.2", "Upload-Length": "5"}, 412, "unsupported_tus_version"),
    ({**V}, 400, "invalid_parameter"),
    ({**V, "Upload-Length": "-1"}, 400, "invalid_parameter"),
    ({**V, "Upload-Length": "5", "Upload-Metadata": "filename %%%"}, 400, "invalid_parameter"),
    ({**V, "Upload-Length": "5", "Upload-Metadata": "a YQ==,a YQ=="}, 400, "invalid_parameter"),
    ({**V, "Upload-Length": "5", "Upload-Metadata": meta(route="/nope")}, 400,
     "invalid_parameter"),
    ({**V, "Upload-Length": str(2 * 1024 * 1024), "Upload-Metadata": meta(route="/api/small")},
     413, "file_too_large"),
    ({**V, "Upload-Defer-Length": "1"}, 400, "invalid_parameter"),
])
async def test_bad_creation(tus, residue, headers, status, code):
    response = await tus.fetch("/api/tus/", "POST", b"", **headers)
    error_of(response, status, code)
    if status == 412:
        assert response.headers["Tus-Version"] == "1.0.0"
    residue.assert_clean()


@pytest.mark.gen_test
async def test_a_refused_creation_with_upload_leaves_nothing(tus, residue):
    """Refused creations with a chunk: a chunked body past Upload-Length, and a bad
    Upload-Checksum header. Before, both answered 4xx but left an upload (with Location),
    and enough of them filled max_unfinished_uploads for a day."""
    async def chunked(write):
        await write(b"hel")
        await write(b"lo")
    over = await tus.client.fetch(
        tus.base + "/api/tus/", method="POST", raise_error=False, body_producer=chunked,
        headers={**CHUNK, "Upload-Length": "3"})
    error_of(over, 413, "request_too_large")
    assert "Location" not in over.headers
    bad = await tus.fetch("/api/tus/", "POST", b"abc", **CHUNK,
                          **{"Upload-Length": "3", "Upload-Checksum": "crc32 AAAA"})
    error_of(bad, 400, "invalid_parameter")
    assert "Location" not in bad.headers
    residue.assert_clean()


@pytest.mark.stores
@pytest.mark.gen_test
async def test_the_data_key_carries_json_that_keeps_its_types(tus, residue):
    """Upload-Metadata ``data`` holds a JSON object, merged into the file's ``data`` with its
    types; its ``route``/``filename``/``filetype`` keys are data like any other, never the
    upload's. Plain keys are still strings (for every other tus client); a plain key the
    object repeats takes the object's value."""
    typed = {"route": "/api/images", "filename": "evil.sh", "filetype": "text/x-sh",
             "count": 3, "ratio": 0.5, "ok": True, "none": None, "tags": ["a", 1],
             "nested": {"deep": [{"x": "é"}]}, "title": "from JSON"}
    url = await tus.create(5, **{"Upload-Metadata": meta(
        filename="a.txt", route="/api/small", title="plain", plain="7",
        data=json.dumps(typed))})
    assert (await tus.patch(url, 0, b"hello")).code == 204
    resource = json.loads((await tus.fetch(f"/api/files/{url.rsplit('/', 1)[1]}")).body)
    assert resource["data"] == {**typed, "plain": "7"}
    assert (resource["route"], resource["filename"]) == ("/api/small", "a.txt")
    assert resource["declared_type"] == "application/octet-stream"
    residue.assert_clean(committed=1)


@pytest.mark.gen_test
@pytest.mark.parametrize("value", [
    None, "", "not json", "[1, 2]", '"text"', "3", '{"a": NaN}', '{"a": 1',
    '{"a": "\\ud83d"}', '{"a": ' + "[" * 40 + "]" * 40 + "}", '{"a":' * 40 + "1" + "}" * 40,
], ids=["key-alone", "empty", "text", "array", "string", "number", "nan", "cut",
        "lone-surrogate", "deep-array", "deep-object"])
async def test_a_bad_data_key_is_400_invalid_json_and_creates_nothing(tus, residue, value):
    pair = "data" if value is None else meta(data=value)
    response = await tus.fetch("/api/tus/", "POST", b"", **V, **{
        "Upload-Length": "5", "Upload-Metadata": f"{meta(filename='a.txt')},{pair}"})
    error = error_of(response, 400, "invalid_json")
    assert "Upload-Metadata" in error["detail"]
    assert "Location" not in response.headers
    residue.assert_clean()


@pytest.mark.gen_test
@pytest.mark.parametrize("config_overrides", [{"max_json_body": "1KiB"}])
async def test_data_over_max_json_body_is_refused_at_creation(tus, residue, config_overrides):
    fits = json.dumps({"note": "x" * 900})
    url = await tus.create(0, **{"Upload-Metadata": meta(data=fits)})
    assert url.startswith("/api/tus/")
    for metadata in (meta(data=json.dumps({"note": "x" * 1100})),
                     meta(extra="y" * 200, data=fits)):  # plain keys count too
        response = await tus.fetch("/api/tus/", "POST", b"", **V, **{
            "Upload-Length": "5", "Upload-Metadata": metadata})
        error = error_of(response, 413, "request_too_large")
        assert error["meta"]["maximum_data_size_allowed"] == 1024
    residue.assert_clean(committed=1)


@pytest.mark.stores
@pytest.mark.gen_test
async def test_bad_patches_leave_the_offset_alone(tus, residue):
    url = await tus.create(100)
    assert (await tus.patch(url, 0, b"x" * 10)).code == 204
    cases = [
        (await tus.fetch(url, "PATCH", b"y", **V, **{"Upload-Offset": "10"}), 415,
         "unsupported_media_type"),
        (await tus.patch(url, 3, b"y"), 409, "offset_mismatch"),
        (await tus.fetch(url, "PATCH", b"y", **CHUNK), 400, "invalid_parameter"),
        (await tus.patch(url, 10, b"y" * 91), 413, "request_too_large"),
        (await tus.patch(url, 10, b"y", **{"Upload-Checksum": "crc32 AAAA"}), 400,
         "invalid_parameter"),
        (await tus.patch(url, 10, b"y", **{"Upload-Checksum": "sha1 " + base64.b64encode(
            hashlib.sha1(b"z").digest()).decode()}), 460, "checksum_mismatch"),  # noqa: S324
        (await tus.fetch(url, "PATCH", b"y", **{**CHUNK, "Upload-Offset": "10",
                                                "Tus-Resumable": "2.0"}), 412,
         "unsupported_tus_version"),
    ]
    for response, status, code in cases:
        error_of(response, status, code)
    assert await tus.offset(url) == 10
    missing = "/api/tus/" + "0" * 32
    error_of(await tus.patch(missing, 0, b"y"), 404, "not_found")
    assert (await tus.fetch(missing, "HEAD", **V)).code == 404
    assert (await tus.fetch(url, "DELETE", **V)).code == 204
    assert (await tus.fetch(url, "HEAD", **V)).code == 404
    error_of(await tus.patch(url, 10, b"y"), 404, "not_found")
    error_of(await tus.fetch(url, "DELETE", **V), 404, "not_found")
    residue.assert_clean()


@pytest.mark.gen_test
@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "md5"])
async def test_checksums_are_verified(tus, residue, algorithm):
    url = await tus.create(6)
    digest = base64.b64encode(hashlib.new(algorithm, b"abc").digest()).decode()
    response = await tus.patch(url, 0, b"abc", **{"Upload-Checksum": f"{algorithm} {digest}"})
    assert response.code == 204
    assert await tus.offset(url) == 3
    wrong = base64.b64encode(hashlib.new(algorithm, b"xyz").digest()).decode()
    response = await tus.patch(url, 3, b"def", **{"Upload-Checksum": f"{algorithm} {wrong}"})
    error_of(response, 460, "checksum_mismatch")
    assert await tus.offset(url) == 3
    await tus.fetch(url, "DELETE", **V)
    residue.assert_clean()


@pytest.mark.gen_test
async def test_disallowed_type_terminates_the_upload(tus, residue):
    content = PDF_HEAD + b"\0" * 200_000
    url = await tus.create(len(content), **{"Upload-Metadata": meta(route="/api/images")})
    response = await tus.patch(url, 0, content[:100_000])
    error = error_of(response, 415, "unsupported_media_type")
    assert error["meta"]["instance_mime_type"] == "application/pdf"
    assert (await tus.fetch(url, "HEAD", **V)).code == 404
    residue.assert_clean()


@pytest.mark.stores
@pytest.mark.gen_test
@pytest.mark.parametrize(("step", "stacked"), [
    (50_000, False), (204_830, False),  # cuts inside the tag; just past its end
    (50_000, True)])  # two tags, one after the other
async def test_audio_behind_large_cover_art_in_patches(tus, residue, step, stacked):
    """PATCHes that end inside the ID3 tag, or inside the window after it: each next PATCH
    rebuilds the window from the stored bytes, and the file is audio/mpeg."""
    song = id3v2_tag(204_800)  # the tag ends at byte 204,820
    if stacked:
        song = id3v2_tag(100_000, song)  # the first tag is longer than the window
    url = await tus.create(len(song), **{"Upload-Metadata": meta(route="/api/audio")})
    for start in range(0, len(song), step):
        response = await tus.patch(url, start, song[start:start + step])
        assert response.code == 204, response.body
    resource = json.loads((await tus.fetch("/api/files/" + url.rsplit("/", 1)[1])).body)
    assert resource["mime_type"] == "audio/mpeg"
    assert resource["sha256"] == hashlib.sha256(song).hexdigest()
    residue.assert_clean(committed=1)


@pytest.mark.gen_test
async def test_a_pdf_behind_an_id3_tag_terminates_the_upload_across_patches(tus, residue):
    disguised = id3v2_tag(204_800, PDF_HEAD + bytes(100_000))
    url = await tus.create(len(disguised), **{"Upload-Metadata": meta(route="/api/audio")})
    assert (await tus.patch(url, 0, disguised[:210_000])).code == 204  # window not full yet
    refused = await tus.patch(url, 210_000, disguised[210_000:])
    error_of(refused, 415, "unsupported_media_type")
    assert (await tus.fetch(url, "HEAD", **V)).code == 404
    residue.assert_clean()


@pytest.mark.stores
@pytest.mark.gen_test
async def test_racing_patches_one_wins_the_other_gets_409_or_423(tus, residue):
    content = os.urandom(2 * 1024 * 1024)
    url = await tus.create(len(content))
    first, second = await asyncio.gather(tus.patch(url, 0, content),
                                         tus.patch(url, 0, os.urandom(len(content))))
    # The loser is 423 while the winner still writes, 409 once the offset moved on.
    assert sorted([first.code, second.code]) in ([204, 409], [204, 423])
    winner = content if first.code == 204 else None
    upload_id = url.rsplit("/", 1)[1]
    resource = json.loads((await tus.fetch(f"/api/files/{upload_id}")).body)
    stored = (await tus.fetch(resource["download_url"])).body
    assert hashlib.sha256(stored).hexdigest() == resource["sha256"]
    if winner is not None:
        assert stored == winner
    residue.assert_clean(committed=1)


async def hold_a_patch(port: int, services, url: str) -> socket.socket:
    """A PATCH of 1,000 bytes that has sent 100 and holds the upload's lease (waited for in
    the upload state itself, so a probe PATCH can never win the claim first)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall((f"PATCH {url} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n"
                  "Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
                  "Content-Length: 1000\r\n\r\n").encode() + b"a" * 100)
    upload_id = url.rsplit("/", 1)[1]
    for _ in range(500):
        if (await services.uploads.get_upload(upload_id)).lease_token is not None:
            return sock
        await asyncio.sleep(0.01)
    sock.close()
    raise AssertionError("the held PATCH never took the lease")


async def finish_the_held_patch(tus: Tus, sock: socket.socket, url: str) -> None:
    """Send the held PATCH's last 900 bytes: it completes, and the file holds its bytes."""
    sock.sendall(b"a" * 900)
    answer = await asyncio.get_running_loop().run_in_executor(None, sock.recv, 4096)
    assert answer.startswith(b"HTTP/1.1 204 ")
    upload_id = url.rsplit("/", 1)[1]
    resource = json.loads((await tus.fetch(f"/api/files/{upload_id}")).body)
    assert resource["sha256"] == hashlib.sha256(b"a" * 1000).hexdigest()


@pytest.mark.gen_test(timeout=30)
async def test_patch_while_another_is_in_flight_is_423_upload_locked(tus, http_port, services,
                                                                   residue):
    # tusd answers the same (ErrUploadLocked); a wrong offset stays 409.
    url = await tus.create(1000)
    sock = await hold_a_patch(http_port, services, url)
    try:
        error_of(await tus.patch(url, 0, b"b" * 10), 423, "upload_locked")
        error_of(await tus.patch(url, 500, b"b"), 409, "offset_mismatch")
        await finish_the_held_patch(tus, sock, url)
    finally:
        sock.close()
    residue.assert_clean(committed=1)


@pytest.mark.parametrize("config_overrides", [{"tus_lease": 1}])
@pytest.mark.gen_test(timeout=30)
async def test_a_live_silent_patch_keeps_its_lease_past_the_lease_time(tus, http_port, services,
                                                                       residue):
    # Issue 13: the lease is short so a dead holder frees the upload soon; a live PATCH
    # renews it on a timer, also while its client is silent (until idle_timeout drops it).
    url = await tus.create(1000)
    sock = await hold_a_patch(http_port, services, url)
    try:
        begun = time.monotonic()
        while time.monotonic() - begun < 3.5:  # three and a half lease times, silent
            locked = await tus.patch(url, 0, b"b" * 10)
            error_of(locked, 423, "upload_locked")
            assert locked.headers["Retry-After"] == "1"  # seconds the lease has left
            await asyncio.sleep(0.25)
        await finish_the_held_patch(tus, sock, url)
    finally:
        sock.close()
    residue.assert_clean(committed=1)


def _cut_patch(port: int, url: str, offset: int, declared: int, data: bytes) -> None:
    """Send a PATCH announcing ``declared`` bytes, then vanish after ``data``."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = (f"PATCH {url} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n"
            f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: {offset}\r\n"
            f"Content-Length: {declared}\r\n\r\n").encode()
    sock.sendall(head + data)
    time.sleep(0.3)
    sock.close()


@pytest.mark.stores
@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("cut", [1, 65_536, 300_000, 261_120 + 17])  # some inside a chunk
async def test_cut_patch_keeps_a_prefix_and_resumes_from_it(tus, http_port, residue, cut):
    content = os.urandom(700_001)
    url = await tus.create(len(content))
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, _cut_patch, http_port, url, 0, len(content),
                               content[:cut])
    offsets = []
    for _ in range(50):
        offsets.append(await tus.offset(url))
        if offsets[-1] == cut:
            break
        await asyncio.sleep(0.05)
    assert offsets == sorted(offsets), "the offset went back"
    offset = offsets[-1]
    assert 0 < offset <= cut
    response = await tus.patch(url, offset, content[offset:])
    assert response.code == 204
    upload_id = url.rsplit("/", 1)[1]
    resource = json.loads((await tus.fetch(f"/api/files/{upload_id}")).body)
    assert (await tus.fetch(resource["download_url"])).body == content
    residue.assert_clean(committed=1)


@pytest.mark.stores
@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize("config_overrides", [{"tus_expiry": 1}])  # a short expiry
async def test_abandoned_upload_expires_and_is_swept(tus, services, residue, config_overrides):
    url = await tus.create(1000)
    assert (await tus.patch(url, 0, b"x" * 400)).code == 204
    await asyncio.sleep(1.2)
    error_of(await tus.patch(url, 400, b"y"), 410, "upload_expired")
    kept = await tus.create(1000)  # fresh when the sweep runs: must survive
    assert (await tus.patch(kept, 0, b"z" * 10)).code == 204
    report = await build_sweeper(services).sweep_once()
    assert report.expired == 1
    assert (await tus.fetch(url, "HEAD", **V)).code == 404
    assert await tus.offset(kept) == 10
    await tus.fetch(kept, "DELETE", **V)
    residue.assert_clean()


class CoreOnly:
    """A blob store with the core alone, no partial blobs (what a new backend may start as):
    the disk store's core methods, nothing else."""

    def __init__(self, inner: Any) -> None:
        self.name = inner.name
        self.open_writer, self.open_reader = inner.open_writer, inner.open_reader
        self.delete, self.ping = inner.delete, inner.ping
        self.startup, self.close = inner.startup, inner.close


@pytest.mark.gen_test
async def test_a_route_whose_store_has_no_partial_blobs_refuses_tus_clearly(
        tus, services, residue):
    services.blob_stores["disk"] = CoreOnly(services.blob_stores["disk"])
    response = await tus.fetch("/api/tus/", "POST", b"", **V, **{
        "Upload-Length": "10", "Upload-Metadata": meta(route="/api/small")})
    error = error_of(response, 400, "invalid_parameter")
    assert error["meta"] == {"parameter": "route"}
    assert "takes no resumable (tus) uploads" in error["detail"]
    assert (await tus.fetch("/api/tus/", "POST", b"", **V, **{"Upload-Length": "0"})).code == 400
    residue.assert_clean()
