"""Issue 13 on the wire: the multipart edge as HTML-form clients use it, and the parser's limits
(parts, part header size) answered with a clear 4xx while other clients are still served."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from tests.support import raw_request

pytestmark = pytest.mark.usefixtures("http_server")

B = b"xYzZY"
HEAD = (b"POST /api/files HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: multipart/form-data; boundary=xYzZY\r\n")


def _request(body: bytes) -> bytes:
    return HEAD + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"


def _fields(count: int) -> bytes:
    one = b"--" + B + b'\r\nContent-Disposition: form-data; name="f"\r\n\r\n\r\n'
    return one * count + b"--" + B + b"--\r\n"


async def _while_parsing(http_client, base_url, port, head: bytes, chunks: list[bytes]):
    """Send the request from another thread; poll /healthz until it is answered. Returns the
    response and the slowest /healthz answer seen meanwhile."""
    loop = asyncio.get_running_loop()
    sending = loop.run_in_executor(None, lambda: raw_request(port, head, chunks, timeout=30))
    slowest = 0.0
    polls = 0
    while not sending.done() or polls == 0:
        started = time.monotonic()
        health = await http_client.fetch(base_url + "/healthz")
        assert health.code == 200
        slowest = max(slowest, time.monotonic() - started)
        polls += 1
        await asyncio.sleep(0.01)
    return await sending, slowest


@pytest.mark.gen_test(timeout=60)
async def test_20000_fields_are_refused_over_max_parts_and_others_are_served(
        http_client, base_url, http_port, residue):
    body = _fields(20_000)
    response, slowest = await _while_parsing(http_client, base_url, http_port,
                                             _request(body), [body])
    assert response.status == 413, response.body[:300]
    error = response.json()["errors"][0]
    assert error["code"] == "request_too_large"
    assert error["meta"] == {"maximum_parts_allowed": 1000}
    assert slowest < 1.0
    residue.assert_clean()


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("config_overrides", [{"max_parts": 50_000}])
async def test_parsing_20000_parts_gives_the_event_loop_back(
        http_client, base_url, http_port, residue, config_overrides: dict[str, Any]):
    body = _fields(20_000)
    response, slowest = await _while_parsing(http_client, base_url, http_port,
                                             _request(body), [body])
    assert response.status == 400, response.body[:300]
    assert response.json()["errors"][0]["code"] == "file_field_missing"
    assert slowest < 1.0  # a bound: the old parser held every other client for seconds
    residue.assert_clean()


@pytest.mark.gen_test(timeout=60)
async def test_a_huge_part_header_is_refused_early(http_client, base_url, http_port, residue):
    size = 8 * 1024 * 1024
    head = b"--" + B + b'\r\nContent-Disposition: form-data; name="file"; filename="'
    body_len = len(head) + size + 100
    chunks = [head] + [b"a" * 65536] * (size // 65536) + [b"x" * 100]
    response, slowest = await _while_parsing(
        http_client, base_url, http_port,
        HEAD + b"Content-Length: " + str(body_len).encode() + b"\r\n\r\n", chunks)
    assert response.status == 413, response.body[:300]
    assert response.json()["errors"][0]["meta"] == {"maximum_part_header_size_allowed": 16384}
    assert slowest < 1.0
    residue.assert_clean()


@pytest.mark.gen_test(timeout=60)
async def test_field_names_count_toward_the_fields_cap(http_client, base_url, http_port,
                                                       residue):
    """990 fields with 15 KiB names and empty values (each part header under 16 KiB) once
    made a 14.5 MiB ``data`` under the 1 MiB cap: names are keys of ``data`` and count."""
    parts = [b"--" + B + b'\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n'
             b"\r\nhello\r\n"]
    for i in range(990):
        name = str(i).encode() + b"n" * 15 * 1024
        parts.append(b"--" + B + b'\r\nContent-Disposition: form-data; name="' + name +
                     b'"\r\n\r\n\r\n')
    body = b"".join(parts) + b"--" + B + b"--\r\n"
    response, slowest = await _while_parsing(http_client, base_url, http_port,
                                             _request(body), [body])
    assert response.status == 413, response.body[:300]
    error = response.json()["errors"][0]
    assert error["meta"]["maximum_fields_size_allowed"] == 1024 * 1024
    assert len(error["meta"]["field"]) <= 100  # the answer does not echo a 15 KiB name
    assert slowest < 1.0
    residue.assert_clean()


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize("config_overrides", [{"max_parts": 2, "max_part_header_size": "1KiB"}])
async def test_the_limits_are_configurable(http_client, base_url, http_port, residue,
                                           config_overrides: dict[str, Any]):
    body = _fields(3)
    response = await asyncio.get_running_loop().run_in_executor(
        None, lambda: raw_request(http_port, _request(body), [body]))
    assert response.json()["errors"][0]["meta"] == {"maximum_parts_allowed": 2}
    body = b"--" + B + b"\r\nX-Long: " + b"a" * 1100 + b"\r\n\r\n\r\n--" + B + b"--\r\n"
    response = await asyncio.get_running_loop().run_in_executor(
        None, lambda: raw_request(http_port, _request(body), [body]))
    assert response.json()["errors"][0]["meta"] == {"maximum_part_header_size_allowed": 1024}
    residue.assert_clean()


@pytest.mark.gen_test(timeout=30)
async def test_a_windows_path_and_browser_escapes_are_stored_as_meant(http_client, base_url,
                                                                     http_port, residue):
    body = (b"preamble from an old MIME library\r\n--" + B + b"\r\n"
            b"Content-Type: text/plain\r\n"
            b'Content-Disposition: form-data; name="file"; '
            b'filename="C:\\Users\\alex\\say %22hi%22.txt"\r\n\r\nhello\r\n--' + B
            + b"--\r\nepilogue")
    response = await asyncio.get_running_loop().run_in_executor(
        None, lambda: raw_request(http_port, _request(body), [body]))
    assert response.status == 201, response.body[:300]
    resource = response.json()
    assert resource["original_filename"] == 'C:\\Users\\alex\\say "hi".txt'
    assert resource["filename"] == 'say "hi".txt'
    assert resource["declared_type"] == "text/plain"
    stored = await http_client.fetch(base_url + resource["download_url"])
    assert stored.body == b"hello"
    residue.assert_clean(committed=1)


@pytest.mark.gen_test(timeout=30)
async def test_a_malformed_part_header_stores_nothing(http_client, base_url, http_port, residue):
    good = b"--" + B + b'\r\nContent-Disposition: form-data; name="files"; filename="a.txt"\r\n'
    body = (good + b"\r\nA\r\n" + good + b"No colon\r\n\r\nB\r\n--" + B + b"--\r\n")
    response = await asyncio.get_running_loop().run_in_executor(
        None, lambda: raw_request(http_port, _request(body), [body]))
    assert response.status == 400
    assert json.loads(response.body)["errors"][0]["code"] == "malformed_multipart"
    residue.assert_clean()


@pytest.mark.gen_test(timeout=30)
async def test_an_empty_form_is_file_field_missing(http_client, base_url, http_port, residue):
    body = b"--" + B + b"--\r\n"  # what fetch() sends for an empty FormData
    response = await asyncio.get_running_loop().run_in_executor(
        None, lambda: raw_request(http_port, _request(body), [body]))
    assert response.status == 400
    assert response.json()["errors"][0]["code"] == "file_field_missing"
    residue.assert_clean()


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize("header", [
    "X-Filename: café.txt".encode(),
    'Content-Disposition: attachment; filename="café.txt"'.encode(),
])
async def test_a_raw_upload_named_in_raw_utf8_keeps_its_name(http_port, residue, header):
    head = (b"POST /api/files HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
            + header + b"\r\nContent-Length: 5\r\n\r\n")
    response = await asyncio.get_running_loop().run_in_executor(
        None, lambda: raw_request(http_port, head, [b"hello"]))
    assert response.status == 201, response.body[:300]
    assert response.json()["original_filename"] == "café.txt"
    assert response.json()["filename"] == "café.txt"
    residue.assert_clean(committed=1)
