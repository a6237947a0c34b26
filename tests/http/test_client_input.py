"""Client input that used to reach a 500 or be stored unreadable: refused as the client's error,
with nothing stored. (The wider hardening of every input is its own piece of work.)"""

from __future__ import annotations

import asyncio
import base64
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
    b'{"n": -1e400}', b'{"n": [1E+400]}', b'{"n": {"m": 1e309}}',  # overflow to infinity
    b'{"n": 9223372036854775808}', b'{"n": -9223372036854775809}',  # beyond 64 bits
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
                                  "/static/..%2fserver.py",
                                  "/static/%00", "/static/upload.js%00.css"])  # were 500
async def test_paths_out_of_the_page_folder_are_refused(http_port, path):
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    data = await asyncio.get_running_loop().run_in_executor(None, read_until_closed, http_port,
                                                            request)
    status = int(data.split(b" ", 2)[1])
    assert status in (403, 404), data[:300]
    document: Any = json.loads(data.partition(b"\r\n\r\n")[2])
    assert document["errors"][0]["code"] in ("forbidden", "not_found")
    assert b"import" not in data  # not a byte of the file


def _cursor(document: Any) -> str:
    raw = document if isinstance(document, bytes) else json.dumps(document).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.gen_test
@pytest.mark.stores
@pytest.mark.parametrize("query", [
    "added_since=9999-12-31T23:59:59-01:00",  # past the last datetime once in UTC
    "modified_since=0001-01-01T00:00:00%2B01:00",  # before the first one
    "added_since=%2B275760-09-13T00:00:00Z",  # JavaScript's last date: not ISO 8601 here
    "size_greater_than=" + "9" * 5000,  # past Python's 4300-digit int() limit
    "cursor=" + _cursor(["-added", "9999-12-31T23:59:59-05:00", "a"]),
    "sort=size&cursor=" + _cursor(["size", 10**30, "a"]),
    "sort=size&cursor=" + _cursor(["size", -(10**30), "a"]),
    "sort=size&cursor=" + _cursor(["size", -1, "a"]),
    "sort=size&cursor=" + _cursor(["size", 1.5, "a"]),
    "sort=size&cursor=" + _cursor(b'["size", ' + b"9" * 5000 + b', "a"]'),
    "sort=filename&cursor=" + _cursor(["filename", "\ud800", "a"]),  # a lone surrogate
    "sort=filename&cursor=" + _cursor(["filename", "a", "\udfff"]),
    "sort=filename&cursor=" + _cursor(["filename", [[["a"]]], "a"]),
    "cursor=" + _cursor(b'["-added", ' + b"[" * 12000 + b"]" * 12000 + b', "a"]'),
])
async def test_dates_and_cursors_out_of_range_are_the_clients_error(http_client, base_url, query):
    await post_parts(http_client, base_url + "/api/files", [Part("file", b"x", "x.txt")])
    response = await http_client.fetch(f"{base_url}/api/files?{query}", raise_error=False)
    error = error_of(response, 400, "invalid_parameter")
    assert error["meta"]["parameter"] == query.split("&")[-1].split("=")[0]


@pytest.mark.gen_test
@pytest.mark.stores
@pytest.mark.parametrize("query", [
    "added_since=9999-12-31T23:59:59Z", "modified_since=9999-12-31",
    "added_since=0001-01-01T00:00:00Z",
    "cursor=" + _cursor(["-added", "9999-12-31T23:59:59+00:00", "a"]),
    "sort=added&cursor=" + _cursor(["added", "0001-01-01T00:00:00+00:00", "a"]),
    "sort=size&cursor=" + _cursor(["size", 2**63 - 1, "a"]),
    "sort=filename&cursor=" + _cursor(["filename", "a\u0000b", "a"]),
])
async def test_dates_and_cursors_at_the_edges_of_their_range_list(http_client, base_url, query):
    await post_parts(http_client, base_url + "/api/files", [Part("file", b"x", "x.txt")])
    response = await http_client.fetch(f"{base_url}/api/files?{query}", raise_error=False)
    assert response.code == 200, response.body[:300]


async def settled(residue: Any) -> None:
    """``residue.assert_clean()`` once the server's clean-up after a closed connection ran."""
    for _ in range(100):
        if not residue.temp_files() and not residue.blobs() and not residue.intents():
            break
        await asyncio.sleep(0.05)
    residue.assert_clean()


async def _raw(port: int, request: bytes) -> bytes:
    return await asyncio.get_running_loop().run_in_executor(None, read_until_closed, port,
                                                            request)


async def _file(http_client: AsyncHTTPClient, base_url: str) -> str:
    created = await post_parts(http_client, base_url + "/api/files",
                               [Part("file", b"0123456789", "x.txt")])
    return str(json.loads(created.body)["url"])


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize(("header", "status"), [
    (b"Range: bytes=1-" + b"9" * 5000, 206),  # to the end
    (b"Range: bytes=-" + b"9" * 5000, 206),  # the whole file
    (b"Range: bytes=" + b"9" * 5000 + b"-", 416),
    (b"Range: bytes=" + b"0" * 5000 + b"1-2", 206),
    (b"Range: bytes=\xb2-", 200),  # "²" (latin-1): not a range, ignored
    (b"If-Modified-Since: Fri, 31 Dec 99999999999 23:59:59 GMT", 200),  # not a date: ignored
    (b"If-Range: Fri, 31 Dec 99999999999 23:59:59 GMT\r\nRange: bytes=1-2", 200),
])
async def test_numbers_in_download_headers_are_ascii_and_bounded(http_client, base_url,
                                                                 http_port, header, status):
    url = await _file(http_client, base_url)
    data = await _raw(http_port, b"GET " + url.encode() + b"/content HTTP/1.1\r\nHost: x\r\n"
                      b"Connection: close\r\n" + header + b"\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 %d " % status), data[:300]


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize("value", [b"\xb2", b"\xb3", b"\xb9", b"9" * 5000, b"+1", b" 1x"])
async def test_tus_lengths_and_offsets_are_ascii_digits(http_client, base_url, http_port,
                                                        residue, value):
    head = b"Host: x\r\nConnection: close\r\nTus-Resumable: 1.0.0\r\n"
    created = await _raw(http_port, b"POST /api/tus/ HTTP/1.1\r\n" + head +
                         b"Upload-Length: " + value + b"\r\n\r\n")
    assert created.startswith(b"HTTP/1.1 400 "), created[:300]
    assert json.loads(created.partition(b"\r\n\r\n")[2])["errors"][0]["meta"] == \
        {"parameter": "Upload-Length"}
    made = await http_client.fetch(base_url + "/api/tus/", method="POST", body=b"",
                                   headers={"Tus-Resumable": "1.0.0", "Upload-Length": "3"})
    location = made.headers["Location"].encode()
    patched = await _raw(http_port, b"PATCH " + location + b" HTTP/1.1\r\n" + head +
                         b"Content-Type: application/offset+octet-stream\r\n"
                         b"Upload-Offset: " + value + b"\r\nContent-Length: 1\r\n\r\nx")
    assert patched.startswith(b"HTTP/1.1 400 "), patched[:300]
    assert json.loads(patched.partition(b"\r\n\r\n")[2])["errors"][0]["meta"] == \
        {"parameter": "Upload-Offset"}
    await http_client.fetch(base_url + location.decode(), method="DELETE",
                            headers={"Tus-Resumable": "1.0.0"})
    residue.assert_clean()


_HEAD = b"Host: x\r\nX-Filename: a.txt\r\n"


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize("request_bytes", [
    # Content-Length: repeated with different values, or not a number.
    b"POST /api/files HTTP/1.1\r\n" + _HEAD + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    b"GET /api/files HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\nabcde",
    b"POST /api/files HTTP/1.1\r\n" + _HEAD + b"Content-Length: 3, 3, 4\r\n\r\nabcd",
    b"POST /api/files HTTP/1.1\r\n" + _HEAD + b"Content-Length: x\r\n\r\n",
    b"POST /api/files HTTP/1.1\r\n" + _HEAD + b"Content-Length: -1\r\n\r\n",
    b"POST /api/files HTTP/1.1\r\n" + _HEAD + b"Content-Length: \xb2\r\n\r\n",
    # Transfer-Encoding with Content-Length, or one Tornado does not read.
    b"POST /api/files HTTP/1.1\r\n" + _HEAD + b"Content-Length: 10\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"POST /api/files HTTP/1.1\r\n" + _HEAD + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    # Chunked framing Tornado refuses once the handler runs: extensions, trailers, bad sizes.
    b"POST /api/files HTTP/1.1\r\n" + _HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
    b"5;ext=1\r\nhello\r\n0\r\n\r\n",
    b"POST /api/files HTTP/1.1\r\n" + _HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n",
    b"POST /api/files HTTP/1.1\r\n" + _HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n",
    # A chunk-size line past Tornado's 64 bytes (it used to close without a word).
    b"POST /api/files HTTP/1.1\r\n" + _HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
    + b"-" * 100 + b"\r\n",
    b"PATCH /api/files/0123456789abcdef0123456789abcdef HTTP/1.1\r\nHost: x\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n",
    # Before any handler: a NUL in a header, no colon, a bad request line.
    b"GET /api/files HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    b"GET /api/files HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
    b"GET\r\nHost: x\r\n\r\n",
    b"GET /api/files HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n",  # > 64 KiB
])
async def test_framing_errors_get_a_json_api_400_and_a_close(http_port, residue, request_bytes):
    data = await _raw(http_port, request_bytes)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), data[:300]
    assert b"\r\nConnection: close" in head
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    assert len(body) == length, data  # nothing after the answer (no second, bare 400)
    error = json.loads(body)["errors"][0]
    assert error["code"] == "malformed_request"
    assert error["status"] == "400"
    await settled(residue)


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"POST /api/files HTTP/1.1\r\n" + _HEAD + b"Content-Length: 3\r\nContent-Length: 3\r\n"
     b"Connection: close\r\n\r\nabc", 201),
    (b"POST /api/files HTTP/1.1\r\n" + _HEAD + b"Content-Length: 0\r\nContent-Length: 0\r\n"
     b"Connection: close\r\n\r\n", 201),
    (b"GET /api/files HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 0\r\n"
     b"Connection: close\r\n\r\n", 200),
    # A repeated length on a request that takes no body, and the body never sent: answered
    # at once (413), and the connection closed after the linger, not held open for ever.
    (b"GET /api/files HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
     413),
    (b"GET /api/files HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n", 413),
])
async def test_a_repeated_content_length_with_one_value_is_read_as_one(http_port, request_bytes,
                                                                       status):
    started = asyncio.get_running_loop().time()
    data = await _raw(http_port, request_bytes)
    assert data.startswith(b"HTTP/1.1 %d " % status), data[:300]
    assert asyncio.get_running_loop().time() - started < 5


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize("path", ["/api/files", "/api/files?x=1"])
async def test_a_content_length_past_int_limits_is_too_large(http_port, residue, path):
    data = await _raw(http_port, f"POST {path} HTTP/1.1\r\nHost: x\r\n".encode() +
                      b"Content-Length: " + b"9" * 5000 + b"\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 413 "), data[:300]
    assert json.loads(data.partition(b"\r\n\r\n")[2])["errors"][0]["code"] == \
        "request_too_large"
    residue.assert_clean()


@pytest.mark.gen_test(timeout=30)
async def test_a_part_cut_short_in_its_headers_by_a_delimiter_is_the_clients_error(
        http_client, base_url, residue):
    # Found by the fuzzer (tests/fuzzing.py, seed 1, multipart case 900).
    body = (b'--B\r\nContent-Disposition: form-data; name="files"; filename="a.txt"\r\n'
            b"no colon, and no blank line before the next delimiter\r\n"
            b'--B\r\nContent-Disposition: form-data; name="files"; filename="b.txt"\r\n\r\n'
            b"xyz\r\n--B--\r\n")
    response = await http_client.fetch(base_url + "/api/files", method="POST", body=body,
                                       headers={"Content-Type": "multipart/form-data; boundary=B"},
                                       raise_error=False)
    assert response.code < 500, response.body[:300]
    await settled(residue)


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize("length", [b"0", b"00", b"0, 0", b"0\r\nContent-Length: 0"])
async def test_a_tus_creation_reads_content_length_as_a_number(http_port, length):
    # "00" and a repeated "0" are an empty body like "0", not a chunk of creation-with-upload.
    data = await _raw(http_port, b"POST /api/tus/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                      b"Tus-Resumable: 1.0.0\r\nUpload-Length: 3\r\n"
                      b"Content-Type: application/offset+octet-stream\r\n"
                      b"Content-Length: " + length + b"\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 201 "), data[:300]
    assert b"\r\nUpload-Offset:" not in data.partition(b"\r\n\r\n")[0]


@pytest.mark.gen_test
@pytest.mark.parametrize("parts", [
    [Part("a.b", b"1")], [Part("$where", b"1")], [Part("data", b'{"x.y": 1}')],
    [Part("data", b'{"": 1}')],
])
async def test_data_keys_a_patch_could_not_change_are_refused_at_upload(
        http_client, base_url, residue, parts):
    """PATCH refuses keys with '.', a leading '$' or none (MongoDB's data.KEY paths, the
    listing's data.KEY filter): uploads stored them, and then nobody could remove them."""
    response = await post_parts(http_client, base_url + "/api/files",
                                [*parts, Part("file", b"x", "x.txt")])
    assert error_of(response, 400, "invalid_parameter")["meta"]["parameter"].startswith("data.")
    tus = await http_client.fetch(base_url + "/api/tus/", method="POST", body=b"",
                                  raise_error=False, headers={
        "Tus-Resumable": "1.0.0", "Upload-Length": "3",
        "Upload-Metadata": "a.b " + base64.b64encode(b"1").decode()})
    error_of(tus, 400, "invalid_parameter")
    residue.assert_clean()
