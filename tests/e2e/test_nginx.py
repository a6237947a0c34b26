"""tornado-files behind Debian's nginx running deploy/nginx/tornado-files.conf, the configuration
docs/deploying.md shows, as written (only its address placeholders replaced): uploads stream
through in bounded memory, a 413 arrives as the server's JSON, tus resumes, ranges work, and
``X-Forwarded-For`` is believed only from the trusted proxy."""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tusclient import client as tus_client

from tests.nginx_support import Nginx, running_nginx, tree_peak_rss
from tests.serverproc import ServerProcess, running_server

pytestmark = pytest.mark.slow
MIB = 1024 * 1024
BOUND = 64 * MIB
# Two worker processes behind nginx, as a deployment on two cores would run.
PROCESSES: list[str] = ["--processes", "2"]
SMALL_ROUTE = "/api/small"
CONFIG = f"""\
trusted_proxies = ["127.0.0.1"]
[[routes]]
path = "{SMALL_ROUTE}"
max_body_size = "1MiB"
"""
CLIENT = "127.0.0.2"  # a client on another loopback address than nginx's 127.0.0.1
SPOOFED = "203.0.113.9"


def blocks(size: int, seed: bytes = b"nginx") -> Iterator[bytes]:
    """``size`` bytes (a multiple of 1 MiB) of non-trivial content, one MiB at a time."""
    block = hashlib.sha256(seed).digest() * (MIB // 32)
    for i in range(size // MIB):
        yield block[i % 32:] + block[: i % 32]


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Nginx]]:
    """One server (JSON logs, nginx trusted) and nginx in front of it."""
    tmp = tmp_path_factory.mktemp("nginx")
    with running_server(tmp, [*PROCESSES, "--log-format", "json"], config=CONFIG) as server, \
            running_nginx(tmp, [f"127.0.0.1:{server.port}"]) as nginx:
        yield server, nginx


def connect(port: int, source: str = "127.0.0.1") -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", port, timeout=60,
                                      source_address=(source, 0))


def call(port: int, method: str, path: str, body: bytes | None = None,
         source: str = "127.0.0.1", **headers: str) -> tuple[int, dict[str, str], bytes]:
    conn = connect(port, source)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, dict(response.headers), response.read()
    finally:
        conn.close()


def curl(*args: str) -> tuple[str, bytes]:
    """(``http_code content_type``, body) of one curl run; the exit status is not checked (an
    early answer may end the upload with a send error after the answer was read)."""
    result = subprocess.run(["curl", "-sS", "-o", "-", "-w", "\n%{http_code} %{content_type}",
                             *args], capture_output=True, timeout=60, check=False)
    body, _, status = result.stdout.rpartition(b"\n")
    return status.decode(), body


def access_line(server: ServerProcess, request_id: str) -> dict[str, object]:
    """The server's JSON access line of the request that got ``request_id``."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for line in server.log().splitlines():
            if request_id in line:
                entry: dict[str, object] = json.loads(line)
                if entry.get("event") == "request":
                    return entry
        time.sleep(0.05)
    raise AssertionError(f"no access line for {request_id}")


def test_256_mib_raw_upload_streams_through_in_bounded_memory(proxied):
    server, nginx = proxied
    size = 256 * MIB
    call(nginx.port, "POST", "/api/files", b"warm-up", **{"Content-Type": "text/plain"})
    baseline = tree_peak_rss(server.process.pid)
    digest = hashlib.sha256()

    def body() -> Iterator[bytes]:
        for block in blocks(size):
            digest.update(block)
            yield block

    conn = connect(nginx.port)
    conn.request("POST", "/api/files", body=body(), headers={
        "Content-Length": str(size), "Content-Type": "application/octet-stream",
        "X-Filename": "big.bin"})
    response = conn.getresponse()
    resource = json.loads(response.read())
    conn.close()
    peak = tree_peak_rss(server.process.pid)
    assert response.status == 201, resource
    assert resource["size"] == size
    assert resource["sha256"] == digest.hexdigest()
    assert peak - baseline < BOUND, (baseline, peak)
    assert response.getheader("Location") == f"/api/files/{resource['id']}"
    assert not any((nginx.prefix / "client_body").iterdir())  # nginx kept no copy

    back = hashlib.sha256()
    conn = connect(nginx.port)
    conn.request("GET", resource["download_url"])
    download = conn.getresponse()
    while chunk := download.read(4 * MIB):
        back.update(chunk)
    conn.close()
    assert download.status == 200
    assert back.hexdigest() == resource["sha256"]
    assert tree_peak_rss(server.process.pid) - baseline < BOUND


def test_a_range_download_through_nginx(proxied):
    _, nginx = proxied
    content = b"".join(blocks(3 * MIB, b"range"))
    status, _, body = call(nginx.port, "POST", "/api/files", content,
                           **{"Content-Type": "application/octet-stream"})
    assert status == 201
    download_url = json.loads(body)["download_url"]
    status, headers, part = call(nginx.port, "GET", download_url, Range="bytes=1048570-2097160")
    assert status == 206
    assert headers["Content-Range"] == f"bytes 1048570-2097160/{3 * MIB}"
    assert part == content[1048570:2097161]
    status, headers, _ = call(nginx.port, "GET", download_url, Range=f"bytes={3 * MIB}-")
    assert (status, headers["Content-Range"]) == (416, f"bytes */{3 * MIB}")


@pytest.mark.parametrize("framing", ["declared", "chunked"])
def test_a_413_arrives_through_nginx_as_the_servers_json(proxied, tmp_path, framing):
    _, nginx = proxied
    two_mib = tmp_path / "two.bin"
    two_mib.write_bytes(b"".join(blocks(2 * MIB)))
    length = ["-H", "Transfer-Encoding: chunked"] if framing == "chunked" else []
    status, body = curl("-H", "Expect:", "-H", "Content-Type: application/octet-stream",
                        *length, "--data-binary", f"@{two_mib}", nginx.url + SMALL_ROUTE)
    assert status == "413 application/json; charset=UTF-8", body[:300]
    [error] = json.loads(body)["errors"]
    assert error["code"] == "request_too_large"
    # The route still works afterwards, through the same nginx.
    status, body = curl("-H", "Content-Type: text/plain", "--data-binary", "small",
                        nginx.url + SMALL_ROUTE)
    assert status.startswith("201 "), body


def test_a_413_before_the_body_is_sent(proxied):
    """A declared Content-Length over the cap is refused before the client sends a byte: nginx
    passes the headers on at once and the answer back."""
    _, nginx = proxied
    with socket.create_connection(("127.0.0.1", nginx.port), timeout=10) as sock:
        sock.sendall(f"POST {SMALL_ROUTE} HTTP/1.1\r\nHost: files.example\r\n"
                     "Content-Type: application/octet-stream\r\n"
                     f"Content-Length: {2 * MIB}\r\n\r\n".encode())
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = json.loads(response.read())
    assert response.status == 413
    assert response.getheader("Content-Type") == "application/json; charset=UTF-8"
    assert body["errors"][0]["code"] == "request_too_large"


def test_a_tus_upload_interrupted_and_resumed_through_nginx(proxied):
    _, nginx = proxied
    data = b"".join(blocks(8 * MIB, b"tus"))
    tus = tus_client.TusClient(nginx.url + "/api/tus/")
    url = tus.uploader(file_stream=io.BytesIO(data), chunk_size=MIB).create_url()
    assert url.startswith(nginx.url + "/api/tus/")  # the relative Location, resolved by tuspy
    path = url[len(nginx.url):]

    # One PATCH announcing everything, cut off after 3 MiB.
    with socket.create_connection(("127.0.0.1", nginx.port), timeout=10) as sock:
        sock.sendall((f"PATCH {path} HTTP/1.1\r\nHost: files.example\r\n"
                      "Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n"
                      f"Upload-Offset: 0\r\nContent-Length: {len(data)}\r\n\r\n").encode()
                     + data[:3 * MIB])
        time.sleep(0.5)
    offset = settled_offset(nginx, path)
    assert 0 < offset <= 3 * MIB

    resumed = tus.uploader(file_stream=io.BytesIO(data), url=url, chunk_size=2 * MIB)
    assert resumed.offset == offset
    resumed.upload()
    status, _, body = call(nginx.port, "GET", "/api/files/" + path.rsplit("/", 1)[1])
    assert status == 200
    resource = json.loads(body)
    assert (resource["size"], resource["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())


def settled_offset(nginx: Nginx, path: str) -> int:
    """The offset HEAD reports once the cut-off PATCH has let go of the upload (423 before)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status, headers, _ = call(nginx.port, "HEAD", path, **{"Tus-Resumable": "1.0.0"})
        if status == 200 and int(headers["Upload-Offset"]) > 0:
            return int(headers["Upload-Offset"])
        time.sleep(0.1)
    raise AssertionError("the interrupted PATCH never settled")


def test_forwarded_for_is_believed_from_nginx_only(proxied):
    server, nginx = proxied
    # Through nginx: the client's own address, whatever X-Forwarded-For it made up.
    status, headers, _ = call(nginx.port, "GET", "/api/files", source=CLIENT,
                              **{"X-Forwarded-For": SPOOFED})
    assert status == 200
    assert f"({CLIENT})" in str(access_line(server, headers["X-Request-Id"])["message"])
    # Straight to the server from an address that is not trusted: the headers are ignored.
    status, headers, _ = call(server.port, "GET", "/api/files", source=CLIENT,
                              **{"X-Forwarded-For": SPOOFED, "X-Forwarded-Proto": "https"})
    assert status == 200
    assert f"({CLIENT})" in str(access_line(server, headers["X-Request-Id"])["message"])


def test_without_trusted_proxies_the_log_shows_nginx(tmp_path: Path):
    with running_server(tmp_path, [*PROCESSES, "--log-format", "json"]) as server, \
            running_nginx(tmp_path, [f"127.0.0.1:{server.port}"]) as nginx:
        status, headers, _ = call(nginx.port, "GET", "/api/files", source=CLIENT)
        assert status == 200
        line = access_line(server, headers["X-Request-Id"])
    assert "(127.0.0.1)" in str(line["message"])
