"""Client input that used to reach a 500 or be stored unreadable: refused as the client's error,
with nothing stored. (The wider hardening of every input is its own piece of work.)"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from tests.support import Part, error_of, multipart, read_until_closed

pytestmark = pytest.mark.usefixtures("http_server")


async def post_parts(client: AsyncHTTPClient, url: str, parts: list[Part]) -> HTTPResponse:
    body, ctype = multipart(parts)
    return await client.fetch(url, method="POST", body=body, raise_error=False,
                              headers={"Content-Type": ctype})


@pytest.mark.gen_test
@pytest.mark.parametrize("data", [
    b'{"v": Infinity}', b'{"v": NaN}', b'{"v": -Infinity}',  # not JSON; browsers choke on them
    b'{"title": "party \\ud83d"}',  # a lone surrogate: an emoji cut in half by JavaScript
    b'{"d": ' + b"[" * 40 + b"]" * 40 + b"}",  # deeper than any store keeps
    b'{"d": ' + b"[" * 5000 + b"]" * 5000 + b"}",  # deep enough to make a parser recurse
])
async def test_data_that_cannot_be_sent_back_is_refused(http_client, base_url, residue, data):
    response = await post_parts(http_client, base_url + "/api/files",
                                [Part("data", data), Part("file", b"x", "x.txt")])
    error_of(response, 400, "invalid_json")
    created = await post_parts(http_client, base_url + "/api/files", [Part("file", b"y", "y.txt")])
    url = base_url + json.loads(created.body)["url"]
    for method in ("PATCH", "PUT"):
        changed = await http_client.fetch(url, method=method, body=b'{"data": ' + data + b"}",
                                          raise_error=False)
        error_of(changed, 400, "invalid_json")
    listing = await http_client.fetch(base_url + "/api/files")
    assert json.loads(listing.body)["files"][0]["data"] == {}  # still valid JSON for everyone
    residue.assert_clean(committed=1)


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize("header", [
    b'Content-Disposition: form-data; name="file"; filename="r\xe9sum\xe9.txt"',
    b'Content-Disposition: form-data; name="fi\xffle"; filename="a.txt"',
])
async def test_a_part_header_that_is_not_utf8_is_malformed(http_port, residue, header):
    body = (b"--B\r\n" + header + b"\r\nContent-Type: text/plain\r\n\r\nabc\r\n--B--\r\n")
    request = (b"POST /api/files HTTP/1.1\r\nHost: x\r\n"
               b"Content-Type: multipart/form-data; boundary=B\r\n"
               b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    data = await asyncio.get_running_loop().run_in_executor(None, read_until_closed, http_port,
                                                            request)
    assert data.startswith(b"HTTP/1.1 400"), data[:200]
    assert json.loads(data.partition(b"\r\n\r\n")[2])["errors"][0]["code"] == \
        "malformed_multipart"
    residue.assert_clean()


@pytest.mark.gen_test
async def test_the_fields_of_a_form_are_capped_together(http_client, base_url, residue):
    # Each is under max_field_size (64 KiB), together they pass max_json_body (1 MiB).
    fields = [Part(f"note{i}", b"n" * 60_000) for i in range(20)]
    response = await post_parts(http_client, base_url + "/api/files",
                                [*fields, Part("file", b"x", "x.txt")])
    error = error_of(response, 413, "request_too_large")
    assert error["meta"]["maximum_fields_size_allowed"] == 1024 * 1024
    residue.assert_clean()


@pytest.mark.gen_test
@pytest.mark.parametrize("query", [
    "size_greater_than=99999999999999999999999", "size_less_than=9223372036854775808",
    "limit=%C2%B2", "size_greater_than=%C2%B2", "limit=%EF%BC%91",  # "²", a full-width "1"
])
async def test_numbers_in_the_query_are_ascii_and_bounded(http_client, base_url, query):
    response = await http_client.fetch(f"{base_url}/api/files?{query}", raise_error=False)
    error = error_of(response, 400, "invalid_parameter")
    assert error["meta"]["parameter"] == query.split("=")[0]


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize("path", ["/static/../server.py", "/static/%2e%2e/server.py",
                                  "/static/..%2fserver.py"])
async def test_paths_out_of_the_page_folder_are_refused(http_port, path):
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    data = await asyncio.get_running_loop().run_in_executor(None, read_until_closed, http_port,
                                                            request)
    status = int(data.split(b" ", 2)[1])
    assert status in (403, 404), data[:300]
    document: Any = json.loads(data.partition(b"\r\n\r\n")[2])
    assert document["errors"][0]["code"] in ("forbidden", "not_found")
    assert b"import" not in data  # not a byte of the file
