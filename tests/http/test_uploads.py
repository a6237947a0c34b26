"""POST uploads in-process: response shapes, every upload error code (docs/api.md), and residue."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from tests.support import PDF_HEAD, PNG_1PX, Part, error_of, id3v2_tag, multipart, raw_request

AVATARS = {
    "path": "/api/avatars",
    "max_body_size": "40KiB",
    "max_file_size": "20KiB",
    "max_files": 1,
    "allowed_mime_types": ["image/jpeg", "image/png"],
}
DOCS = {"path": "/api/docs", "max_body_size": "1MiB", "max_files": 2,
        "allowed_mime_types": ["application/*"]}
AUDIO = {"path": "/api/audio", "max_body_size": "4MiB", "allowed_mime_types": ["audio/*"]}


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"routes": [AVATARS, DOCS, AUDIO], "cors_origins": ["https://app.example"]}


async def post(client: AsyncHTTPClient, url: str, body: bytes, content_type: str,
               **headers: str) -> HTTPResponse:
    return await client.fetch(url, method="POST", body=body, raise_error=False,
                              headers={"Content-Type": content_type, **headers})


@pytest.mark.stores
@pytest.mark.gen_test
async def test_single_file_is_stored_with_detected_type_and_hash(http_client, base_url, residue,
                                                                stack):
    body, ctype = multipart([Part("file", PNG_1PX, "../../pic.png", "application/octet-stream")])
    response = await post(http_client, base_url + "/api/files", body, ctype)
    assert response.code == 201
    resource = json.loads(response.body)
    assert response.headers["Location"] == f"/api/files/{resource['id']}"
    assert response.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert resource["filename"] == "pic.png"
    assert resource["original_filename"] == "../../pic.png"
    assert resource["mime_type"] == "image/png"
    assert resource["declared_type"] == "application/octet-stream"
    assert "PNG image data" in resource["type_os"]
    assert resource["sha256"] == hashlib.sha256(PNG_1PX).hexdigest()
    assert resource["size"] == len(PNG_1PX)
    assert resource["route"] == "/api/files"
    assert resource["storage"] == ("gridfs" if stack == "mongo" else "disk")
    assert resource["owner"] is None
    assert resource["added"].endswith("Z")
    assert resource["file_urls"]["original"] == resource["download_url"]
    residue.assert_clean(committed=1)
    stored = await http_client.fetch(base_url + resource["download_url"])
    assert stored.body == PNG_1PX


@pytest.mark.stores
@pytest.mark.gen_test
@pytest.mark.parametrize("field", ["files", "files[]"])
async def test_several_files_come_back_in_upload_order(http_client, base_url, residue, field):
    contents = [b"first file", PNG_1PX, b""]
    parts = [Part(field, c, f"f{i}.bin") for i, c in enumerate(contents)]
    response = await post(http_client, base_url + "/api/files", *multipart(parts))
    assert response.code == 201
    files = json.loads(response.body)["files"]
    assert [f["filename"] for f in files] == ["f0.bin", "f1.bin", "f2.bin"]
    assert [f["size"] for f in files] == [len(c) for c in contents]
    assert files[2]["sha256"] == hashlib.sha256(b"").hexdigest()
    residue.assert_clean(committed=3)


@pytest.mark.gen_test
async def test_data_part_and_plain_fields_become_data(http_client, base_url):
    parts = [Part("data", b'{"title": "Q3", "tags": ["finance"]}'), Part("note", "é".encode()),
             Part("file", b"hello", "a.txt", "text/plain")]
    response = await post(http_client, base_url + "/api/files", *multipart(parts))
    assert response.code == 201
    resource = json.loads(response.body)
    assert resource["data"] == {"title": "Q3", "tags": ["finance"], "note": "é"}
    assert resource["mime_type"] == "text/plain"
    assert resource["declared_type"] == "text/plain"


@pytest.mark.gen_test
@pytest.mark.parametrize(("parts", "status", "code"), [
    ([Part("file", b"a", "a.txt"), Part("file", b"b", "b.txt")], 400, "too_many_files"),
    ([Part("files", b"a", "a.txt"), Part("file", b"b", "b.txt")], 400, "too_many_files"),
    ([Part("data", b"{}")], 400, "file_field_missing"),
    ([Part("file", b"", "")], 400, "empty_selection"),
    ([Part("file", b"a", "a.txt"), Part("data", b"{nope")], 400, "invalid_json"),
    ([Part("data", b"[1, 2]"), Part("file", b"a", "a.txt")], 400, "invalid_json"),
    ([Part("upload", b"a", "a.txt")], 400, "file_field_missing"),
    ([Part("file", b"a", "a.txt"), Part("attachment", b"b", "b.txt")], 400,
     "file_field_missing"),
    ([Part("file", b"a", "a.txt"), Part("note", b"x" * (64 * 1024 + 1))], 413,
     "request_too_large"),
])
async def test_bad_multipart_requests_leave_nothing(http_client, base_url, residue, parts,
                                                    status, code):
    response = await post(http_client, base_url + "/api/files", *multipart(parts))
    error = error_of(response, status, code)
    if parts[-1].name in ("upload", "attachment"):  # the detail names the field it saw
        assert repr(parts[-1].name) in error["detail"]
    residue.assert_clean()


@pytest.mark.gen_test
@pytest.mark.parametrize("body", [
    b"garbage that is not multipart at all",
    b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\ntruncated",
    b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nabc\r\n--B\r\n",
    b"",
])
async def test_malformed_multipart_is_400_and_leaves_nothing(http_client, base_url, residue,
                                                             body):
    response = await post(http_client, base_url + "/api/files", body,
                          "multipart/form-data; boundary=B")
    error_of(response, 400, "malformed_multipart")
    residue.assert_clean()


@pytest.mark.gen_test
async def test_multipart_without_boundary_is_malformed(http_client, base_url):
    response = await post(http_client, base_url + "/api/files", b"x", "multipart/form-data")
    error_of(response, 400, "malformed_multipart")


@pytest.mark.gen_test
async def test_raw_body_with_percent_encoded_x_filename(http_client, base_url, residue):
    response = await post(http_client, base_url + "/api/files", PDF_HEAD, "application/pdf",
                          **{"X-Filename": "r%C3%A9sum%C3%A9%2Fx.pdf"})
    assert response.code == 201
    resource = json.loads(response.body)
    assert resource["original_filename"] == "résumé/x.pdf"
    assert resource["filename"] == "x.pdf"
    assert resource["declared_type"] == "application/pdf"
    assert resource["mime_type"] == "application/pdf"
    assert response.headers["Location"] == resource["url"]
    residue.assert_clean(committed=1)


@pytest.mark.gen_test
@pytest.mark.parametrize(("headers", "filename"), [
    ({"Content-Disposition": "attachment; filename*=UTF-8''na%C3%AFve.txt"}, "naïve.txt"),
    ({}, "unknown"),
])
async def test_raw_body_filename_sources(http_server, http_port, headers, filename):
    # No Content-Type at all (Tornado's client would add form-urlencoded): a raw socket.
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (f"POST /api/files HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n{head}\r\n")
    response = await asyncio.get_running_loop().run_in_executor(
        None, raw_request, http_port, request.encode(), [b"abc"])
    assert response.status == 201
    resource = response.json()
    assert resource["filename"] == filename
    assert resource["declared_type"] == "application/octet-stream"
    assert resource["mime_type"] == "text/plain"


@pytest.mark.gen_test
async def test_empty_raw_body_is_a_valid_empty_file(http_client, base_url):
    response = await http_client.fetch(base_url + "/api/files", method="POST", body=b"",
                                       headers={"X-Filename": "empty.bin",
                                                "Content-Type": "application/octet-stream"})
    assert response.code == 201
    assert json.loads(response.body)["size"] == 0


@pytest.mark.gen_test
async def test_form_urlencoded_cannot_carry_a_file(http_client, base_url, residue):
    response = await post(http_client, base_url + "/api/files", b"a=b",
                          "application/x-www-form-urlencoded")
    error_of(response, 415, "unsupported_media_type")
    residue.assert_clean()


@pytest.mark.gen_test
async def test_route_accepts_allowed_type_and_lists_it(http_client, base_url):
    body, ctype = multipart([Part("file", PNG_1PX, "me.png")])
    response = await post(http_client, base_url + "/api/avatars", body, ctype)
    assert response.code == 201
    assert json.loads(response.body)["route"] == "/api/avatars"
    listing = json.loads((await http_client.fetch(base_url + "/api/files?route=/api/avatars")).body)
    assert [f["filename"] for f in listing["files"]] == ["me.png"]


@pytest.mark.gen_test
async def test_route_rejects_disallowed_type_with_415_meta(http_client, base_url, residue):
    body, ctype = multipart([Part("file", PDF_HEAD, "doc.png", "image/png")])
    response = await post(http_client, base_url + "/api/avatars", body, ctype)
    error = error_of(response, 415, "unsupported_media_type")
    assert error["meta"] == {"allowed_mime_types": ["image/jpeg", "image/png"],
                             "instance_mime_type": "application/pdf"}
    residue.assert_clean()


@pytest.mark.gen_test
async def test_wildcard_allowlist(http_client, base_url):
    ok = await post(http_client, base_url + "/api/docs", *multipart([Part("file", PDF_HEAD, "d")]))
    assert ok.code == 201
    bad = await post(http_client, base_url + "/api/docs", *multipart([Part("file", PNG_1PX, "p")]))
    error_of(bad, 415, "unsupported_media_type")


@pytest.mark.stores
@pytest.mark.gen_test
async def test_audio_behind_large_cover_art_is_audio(http_client, base_url, residue):
    """An MP3 whose ID3 tag (cover art) is larger than the sniff window is still audio/mpeg,
    multipart and raw; behind the same tag, a PDF is still refused with nothing left."""
    song = id3v2_tag(300 * 1024)
    multi = await post(http_client, base_url + "/api/audio",
                       *multipart([Part("file", song, "song.mp3", "audio/mpeg")]))
    raw = await post(http_client, base_url + "/api/audio", song, "audio/mpeg",
                     **{"X-Filename": "song.mp3"})
    for response in (multi, raw):
        assert response.code == 201, response.body
        created = json.loads(response.body)
        assert created["mime_type"] == "audio/mpeg"
        assert created["sha256"] == hashlib.sha256(song).hexdigest()
    disguised = id3v2_tag(300 * 1024, PDF_HEAD + bytes(100 * 1024))
    refused = await post(http_client, base_url + "/api/audio",
                         *multipart([Part("file", disguised, "song.mp3", "audio/mpeg")]))
    assert error_of(refused, 415, "unsupported_media_type")["meta"]["instance_mime_type"] == (
        "application/pdf")
    residue.assert_clean(committed=2)


@pytest.mark.gen_test
async def test_declared_length_over_route_cap_is_413_with_meta(http_client, base_url, residue):
    body, ctype = multipart([Part("file", PNG_1PX + b"\0" * 50_000, "big.png")])
    response = await post(http_client, base_url + "/api/avatars", body, ctype)
    error = error_of(response, 413, "request_too_large")
    assert error["meta"] == {"maximum_content_length_allowed": 40 * 1024,
                             "request_content_length": len(body), "received": 0}
    residue.assert_clean()


@pytest.mark.gen_test
async def test_file_over_file_cap_is_413_file_too_large(http_client, base_url, residue):
    body, ctype = multipart([Part("file", PNG_1PX + b"\0" * 30_000, "big.png")])
    response = await post(http_client, base_url + "/api/avatars", body, ctype)
    error = error_of(response, 413, "file_too_large")
    assert error["meta"]["maximum_content_length_allowed"] == 20 * 1024
    assert error["meta"]["request_content_length"] == len(body)
    residue.assert_clean()


@pytest.mark.gen_test(timeout=30)
async def test_a_raw_body_declared_over_the_file_cap_is_refused_before_it_is_read(
        http_server, http_port, residue):
    # A raw body is the file: 30 KiB declared on a route whose files are 20 KiB is 413 at once,
    # before any body byte (the body cap, 40 KiB, alone would let it in).
    request = (b"POST /api/avatars HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
               b"Content-Length: 30720\r\n\r\n")
    response = await asyncio.get_running_loop().run_in_executor(
        None, lambda: raw_request(http_port, request, [PNG_1PX + b"\0" * (30720 - len(PNG_1PX))],
                                  pause_after_head=0.3))
    assert response.status == 413
    error = response.json()["errors"][0]
    assert error["code"] == "file_too_large"
    assert error["meta"]["received"] == 0
    assert response.sent == 0
    residue.assert_clean()


@pytest.mark.gen_test
async def test_max_files_of_a_route(http_client, base_url, residue):
    parts = [Part("files", PDF_HEAD, f"{i}.pdf") for i in range(3)]
    response = await post(http_client, base_url + "/api/docs", *multipart(parts))
    error = error_of(response, 400, "too_many_files")
    assert error["meta"] == {"max_files": 2}
    residue.assert_clean()


@pytest.mark.gen_test
async def test_routes_are_listed_default_first(http_client, base_url, config):
    routes = json.loads((await http_client.fetch(base_url + "/api/routes")).body)["routes"]
    assert [r["path"] for r in routes] == ["/api/files", "/api/avatars", "/api/docs", "/api/audio"]
    assert routes[0]["max_body_size"] == 10 * 1024**3
    assert routes[1] == {"path": "/api/avatars", "max_body_size": 40960, "max_file_size": 20480,
                         "max_files": 1, "allowed_mime_types": ["image/jpeg", "image/png"],
                         "storage": config.storage}


@pytest.mark.gen_test
async def test_unknown_path_and_method_are_json_errors(http_client, base_url):
    error_of(await http_client.fetch(base_url + "/nope", raise_error=False), 404, "not_found")
    response = await http_client.fetch(base_url + "/api/files", method="PUT", body=b"{}",
                                       raise_error=False)
    error_of(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]
    response = await http_client.fetch(base_url + "/api/avatars", raise_error=False)
    error_of(response, 405, "method_not_allowed")


@pytest.mark.gen_test
async def test_cors_on_success_error_and_preflight(http_client, base_url):
    origin = {"Origin": "https://app.example"}
    ok = await http_client.fetch(base_url + "/api/routes", headers=origin)
    assert ok.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "Origin" in ok.headers["Vary"]
    assert "Location" in ok.headers["Access-Control-Expose-Headers"]
    body, ctype = multipart([Part("file", b"\0" * 50_000, "big.png")])
    too_big = await post(http_client, base_url + "/api/avatars", body, ctype, **origin)
    assert too_big.code == 413
    assert too_big.headers["Access-Control-Allow-Origin"] == "https://app.example"
    preflight = await http_client.fetch(
        base_url + "/api/files", method="OPTIONS",
        headers={**origin, "Access-Control-Request-Method": "POST"})
    assert preflight.code == 204
    methods = {m.strip() for m in preflight.headers["Access-Control-Allow-Methods"].split(",")}
    assert methods == {"GET", "HEAD", "POST", "OPTIONS"}
    allowed = preflight.headers["Access-Control-Allow-Headers"]
    for header in ("Cache-Control", "X-Requested-With", "Authorization", "Content-Type",
                   "X-Filename", "Upload-Offset", "Tus-Resumable"):
        assert header in allowed
    stranger = await http_client.fetch(base_url + "/api/routes",
                                       headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in stranger.headers


@pytest.mark.stores
@pytest.mark.gen_test
async def test_health_and_page(http_client, base_url):
    health = await http_client.fetch(base_url + "/healthz")
    assert json.loads(health.body)["status"] == "ok"
    page = await http_client.fetch(base_url + "/")
    assert b'type="file"' in page.body
    assert b"multiple" in page.body
