"""Streaming edge cases on a real socket (Tornado's habit): chunked bodies over the cap, lying
Content-Length, ``Expect: 100-continue``, disconnects mid-part — each with a residue check."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import (
    PNG_1PX,
    Part,
    RawResponse,
    multipart,
    raw_request,
    read_until_closed,
)
from tornado_files.web.edge import READ_CHUNK

MIB = 1024 * 1024
CAP = 1 * MIB
pytestmark = pytest.mark.usefixtures("http_server")


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"routes": [{"path": "/api/small", "max_body_size": CAP},
                       {"path": "/api/filecap", "max_body_size": 4 * CAP, "max_file_size": CAP},
                       {"path": "/api/images", "max_body_size": "64MiB",
                        "allowed_mime_types": ["image/png"]}],
            "linger_seconds": 1.0, "idle_timeout": 1.0}


def head(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunked(pieces: Iterator[bytes]) -> Iterator[bytes]:
    for piece in pieces:
        yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    yield b"0\r\n\r\n"


def zeros(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        yield b"\0" * n
        sent += n


def multipart_stream(total: int, field: str = "file") -> tuple[bytes, Iterator[bytes], str]:
    """A multipart body of one ``total``-byte file, generated piece by piece."""
    boundary = "wireboundary"
    preamble = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; "
                f"filename=\"big.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n").encode()
    ending = f"\r\n--{boundary}--\r\n".encode()

    def pieces() -> Iterator[bytes]:
        yield preamble
        yield from zeros(total)
        yield ending
    return preamble, pieces(), f"multipart/form-data; boundary={boundary}"


async def in_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run the blocking socket client beside the in-process server's event loop."""
    import asyncio

    return await asyncio.get_running_loop().run_in_executor(None, lambda: fn(*args, **kwargs))


def assert_413(response: RawResponse, code: str) -> dict[str, Any]:
    assert response.status == 413, response.raw[:300]
    error = response.json()["errors"][0]
    assert error["code"] == code
    return error


@pytest.mark.stores
@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize(("kind", "path", "code", "cap"), [
    ("multipart", "/api/filecap", "file_too_large", CAP),
    ("raw", "/api/small", "request_too_large", CAP),
])
async def test_chunked_body_over_cap_gets_413_while_still_sending(http_port, residue, kind,
                                                                  path, code, cap):
    framing = b""  # body bytes before the first byte the cap counts
    if kind == "multipart":
        framing, body, ctype = multipart_stream(64 * MIB)
    else:
        body, ctype = zeros(64 * MIB), "application/octet-stream"
    response = await in_thread(raw_request, http_port, head(
        path, {"Content-Type": ctype, "Transfer-Encoding": "chunked"}), chunked(body))
    error = assert_413(response, code)
    assert error["meta"]["maximum_content_length_allowed"] == cap
    assert error["meta"]["request_content_length"] is None
    # Rejected within one read past the point where the cap was crossed (a file cap counts
    # the file's bytes, which start after the multipart framing) ...
    assert cap < error["meta"]["received"] <= cap + len(framing) + READ_CHUNK
    # ... and answered long before the client had sent its body.
    assert response.sent < 32 * MIB
    residue.assert_clean()


@pytest.mark.gen_test(timeout=30)
async def test_bytes_past_content_length_are_not_part_of_the_file(http_port, residue):
    # Declares less than the cap, sends far more.
    response = await in_thread(raw_request, http_port, head(
        "/api/small", {"Content-Type": "application/octet-stream",
                       "Content-Length": str(CAP - 10)}), zeros(8 * MIB))
    # The server reads exactly Content-Length bytes: the file is the declared size, the rest
    # is a malformed next request on a connection that is then closed.
    assert response.status == 201
    assert response.json()["size"] == CAP - 10
    residue.assert_clean(committed=1)


@pytest.mark.gen_test(timeout=30)
async def test_multipart_longer_than_its_content_length_is_malformed(http_port, residue):
    _, body, ctype = multipart_stream(2 * MIB)
    response = await in_thread(raw_request, http_port, head(
        "/api/files", {"Content-Type": ctype, "Content-Length": str(MIB)}), body)
    assert response.status == 400
    assert response.json()["errors"][0]["code"] == "malformed_multipart"
    residue.assert_clean()


@pytest.mark.gen_test(timeout=30)
async def test_declared_length_over_cap_answers_before_reading_the_body(http_port, residue):
    response = await in_thread(raw_request, http_port, head(
        "/api/small", {"Content-Type": "application/octet-stream",
                       "Content-Length": str(64 * MIB)}), zeros(64 * MIB))
    error = assert_413(response, "request_too_large")
    assert error["meta"] == {"maximum_content_length_allowed": CAP,
                             "request_content_length": 64 * MIB, "received": 0}
    assert response.sent < 32 * MIB
    residue.assert_clean()


@pytest.mark.gen_test(timeout=30)
async def test_expect_continue_over_cap_gets_413_never_100(http_port, residue):
    response = await in_thread(raw_request, http_port, head(
        "/api/small", {"Content-Type": "application/octet-stream", "Expect": "100-continue",
                       "Content-Length": str(64 * MIB)}), (), pause_after_head=0.3)
    assert b"100 Continue" not in response.raw
    assert b"100 (Continue)" not in response.raw
    assert_413(response, "request_too_large")
    residue.assert_clean()


@pytest.mark.gen_test(timeout=30)
async def test_expect_continue_under_cap_gets_100_then_201(http_port, residue):
    payload = b"x" * 1000

    def send() -> RawResponse:
        return raw_request(http_port, head("/api/small", {
            "Content-Type": "text/plain", "Expect": "100-continue",
            "Content-Length": str(len(payload))}), [payload], pause_after_head=0.3)
    response = await in_thread(send)
    assert response.raw.startswith(b"HTTP/1.1 100")
    assert response.status == 201
    residue.assert_clean(committed=1)


@pytest.mark.gen_test(timeout=30)
async def test_disallowed_type_is_415_mid_stream(http_port, residue):
    _, body, ctype = multipart_stream(48 * MIB)
    response = await in_thread(raw_request, http_port, head(
        "/api/images", {"Content-Type": ctype, "Transfer-Encoding": "chunked"}), chunked(body))
    assert response.status == 415
    assert response.json()["errors"][0]["meta"]["instance_mime_type"] == "application/octet-stream"
    assert response.sent < 32 * MIB
    residue.assert_clean()


def _disconnect_after(port: int, path: str, headers: dict[str, str], data: bytes) -> None:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(head(path, headers) + data)
    time.sleep(0.2)
    sock.close()


async def _wait_clean(residue: Any, committed: int = 0) -> None:
    import asyncio

    for _ in range(100):
        if not residue.temp_files() and len(residue.blobs()) == committed and \
                not residue.intents():
            break
        await asyncio.sleep(0.05)
    residue.assert_clean(committed)


@pytest.mark.stores
@pytest.mark.gen_test(timeout=30)
async def test_disconnect_mid_part_leaves_nothing(http_port, residue):
    preamble, _, ctype = multipart_stream(8 * MIB)
    await in_thread(_disconnect_after, http_port, "/api/files",
                    {"Content-Type": ctype, "Content-Length": str(8 * MIB + 500)},
                    preamble + b"\0" * (2 * MIB))
    await _wait_clean(residue)


@pytest.mark.gen_test(timeout=30)
async def test_disconnect_between_parts_leaves_nothing(http_port, residue):
    body, ctype = multipart([Part("files", PNG_1PX, "a.png"), Part("files", b"b", "b.bin")])
    first_part_end = body.index(b"--", body.index(PNG_1PX))
    await in_thread(_disconnect_after, http_port, "/api/files",
                    {"Content-Type": ctype, "Content-Length": str(len(body))},
                    body[:first_part_end])
    await _wait_clean(residue)


@pytest.mark.gen_test(timeout=30)
async def test_idle_body_times_out_with_408_and_leaves_nothing(http_port, residue):
    preamble, _, ctype = multipart_stream(MIB)

    request = head("/api/files", {"Content-Type": ctype, "Content-Length": str(MIB)})
    data = await in_thread(read_until_closed, http_port, request + preamble + b"\0" * 1000)
    assert data.startswith(b"HTTP/1.1 408")
    assert json.loads(data.partition(b"\r\n\r\n")[2])["errors"][0]["code"] == "request_timeout"
    residue.assert_clean()


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize(("method", "path", "status"), [
    ("POST", "/nope", 404), ("PROPFIND", "/api/files", 405), ("POST", "/healthz", 405),
])
async def test_errors_before_a_large_body_are_json_and_alone(http_port, method, path, status):
    request = (f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
               f"Content-Length: {8 * MIB}\r\n\r\n").encode()
    response = await in_thread(raw_request, http_port, request, zeros(8 * MIB))
    assert response.status == status
    assert response.headers["content-type"] == "application/json; charset=UTF-8"
    # Only our answer: Tornado's own bare 400 never follows it.
    assert response.raw.count(b"HTTP/1.1 ") == 1


@pytest.mark.gen_test(timeout=30)
async def test_idle_tus_patch_is_503_retry_after_and_keeps_its_bytes(http_port, residue):
    # tus clients retry a 5xx but no 4xx beyond 409/423, so a stalled PATCH is answered 503
    # (as tusd answers read timeouts); the bytes that arrived count.
    tus = {"Tus-Resumable": "1.0.0"}
    created = await in_thread(raw_request, http_port, head("/api/tus/", {
        **tus, "Upload-Length": "5000", "Content-Length": "0"}))
    assert created.status == 201
    url = created.headers["location"]

    request = head(url, {**tus, "Content-Type": "application/offset+octet-stream",
                         "Upload-Offset": "0", "Content-Length": "5000"})
    data = await in_thread(read_until_closed, http_port,
                           request.replace(b"POST ", b"PATCH ", 1) + b"k" * 1200)
    assert data.startswith(b"HTTP/1.1 503")
    answer, _, body = data.partition(b"\r\n\r\n")
    assert b"\r\nRetry-After: 1\r\n" in answer
    assert json.loads(body)["errors"][0]["code"] == "request_timeout"
    offset = await in_thread(raw_request, http_port, head(url, tus).replace(b"POST ", b"HEAD ", 1))
    assert offset.headers["upload-offset"] == "1200"
    deleted = await in_thread(raw_request, http_port,
                              head(url, tus).replace(b"POST ", b"DELETE ", 1))
    assert deleted.status == 204
    residue.assert_clean()


@pytest.mark.gen_test(timeout=30)
async def test_a_stalled_creation_with_upload_names_the_upload_to_resume(http_port, residue):
    tus = {"Tus-Resumable": "1.0.0", "Upload-Length": "5000",
           "Content-Type": "application/offset+octet-stream"}
    too_long = await in_thread(raw_request, http_port, head("/api/tus/", {
        **tus, "Content-Length": "5001"}), [b"x" * 5001])
    assert_413(too_long, "request_too_large")  # before anything was created
    residue.assert_clean()
    data = await in_thread(read_until_closed, http_port, head("/api/tus/", {
        **tus, "Content-Length": "5000"}) + b"k" * 700)
    answer, _, body = data.partition(b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 503")
    assert json.loads(body)["errors"][0]["code"] == "request_timeout"
    location = next(line.split(b": ", 1)[1] for line in answer.split(b"\r\n")
                    if line.lower().startswith(b"location: ")).decode()
    state = await in_thread(raw_request, http_port, head(location, {
        "Tus-Resumable": "1.0.0"}).replace(b"POST ", b"HEAD ", 1))
    assert state.headers["upload-offset"] == "700"
    deleted = await in_thread(raw_request, http_port, head(location, {
        "Tus-Resumable": "1.0.0"}).replace(b"POST ", b"DELETE ", 1))
    assert deleted.status == 204
    residue.assert_clean()


@pytest.mark.gen_test(timeout=30)
async def test_an_answer_that_says_close_closes_even_when_the_body_came(http_port):
    # RFC 9112 §9.6: a server that sends "Connection: close" closes after that response. The
    # body (5 bytes the endpoint refuses) arrives during the linger; a second request on the
    # same connection must not be served.
    request = (b"GET /api/files HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
               b"GET /api/routes HTTP/1.1\r\nHost: x\r\n\r\n")
    data = await in_thread(read_until_closed, http_port, request)
    assert data.startswith(b"HTTP/1.1 413")
    assert b"\r\nConnection: close" in data.partition(b"\r\n\r\n")[0]
    assert data.count(b"HTTP/1.1 ") == 1
