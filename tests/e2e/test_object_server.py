"""``python server.py`` with a route on each object store (tests/object_adapters.py: S3 on
moto, Azure on Azurite, GCS on gcp-storage-emulator): 64 MiB raw and multipart uploads checked
in the bucket through the provider's SDK, Range across a part edge, DELETE, a client that
disconnects halfway (nothing committed, nothing unfinished), the store stopped (503 and
``/readyz`` 503), and redirect downloads served by the provider with the file's name and
type. The fixtures (``provider``, ``store``, ``object_server``) are in conftest.py; more on
every provider in test_object_server_more.py; what one provider alone shows in
test_gcs_server.py."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import sqlite3
import time
import urllib.error
import urllib.request
from contextlib import closing

import pytest

from tests.e2e.test_cli import cli
from tests.e2e.test_mongo_server import curl, random_file
from tests.e2e.test_shutdown import answer_of
from tests.object_support import MIB
from tests.serverproc import running_server
from tornado_files.client.downloads import part_path

pytestmark = pytest.mark.slow


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 — loopback
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_raw_and_multipart_uploads_range_and_delete(object_server, store, tmp_path):
    server = object_server
    big = random_file(tmp_path / "big.bin", 64 * MIB)
    content = big.read_bytes()
    want = hashlib.sha256(content).hexdigest()
    status, body = curl("--data-binary", f"@{big}", "-H", "Content-Type: application/x-raw",
                        "-H", "X-Filename: big.bin", server.url + store.route)
    assert status == 201, body
    raw = json.loads(body)
    status, body = curl("-F", f"file=@{big}", server.url + store.route)
    assert status == 201, body
    form = json.loads(body)
    stored = store.objects()
    assert sorted(stored.values()) == [64 * MIB, 64 * MIB]
    assert raw["storage"] == form["storage"] == store.kind
    assert raw["sha256"] == form["sha256"] == want
    assert [store.sha256(name) for name in stored] == [want, want]
    assert store.in_progress() == []

    out = tmp_path / "part.bin"
    edge = store.part_size  # 20 bytes across the first part's end
    status, _ = curl("-r", f"{edge - 10}-{edge + 9}", "-o", str(out),
                     server.url + raw["download_url"])
    assert status == 206
    assert out.read_bytes() == content[edge - 10:edge + 10]

    status, _ = curl("-X", "DELETE", server.url + f"/api/files/{raw['id']}")
    assert status == 204
    assert sorted(store.objects().values()) == [64 * MIB]
    # No SDK dumps its HTTP traffic into the server's log (azure-core does so at INFO).
    assert "Request URL" not in server.log()
    assert len(server.log().splitlines()) < 40


def test_a_client_gone_halfway_leaves_nothing_committed_or_unfinished(object_server, store):
    with socket.create_connection(("127.0.0.1", object_server.port), timeout=30) as sock:
        sock.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-raw\r\n"
                     b"Content-Length: %d\r\n\r\n" % (store.route.encode(), 64 * MIB))
        block = bytes(range(256)) * 4096
        for _ in range(20):  # 20 MiB: two parts sent at least, one in the buffer
            sock.sendall(block)
        deadline = time.monotonic() + 10
        while not store.in_progress() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert store.in_progress()  # the upload was under way
    deadline = time.monotonic() + 15
    while (store.in_progress() or store.objects()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert store.in_progress() == []
    assert store.objects() == {}


def test_the_store_stopped_is_503_and_not_ready(tmp_path, provider):
    own = provider.own()  # a stand-in of its own, to stop
    try:
        with running_server(tmp_path, config=own.config(), env=own.env()) as server:
            assert status_of(server.url + "/readyz") == 200
            own.stop_service()
            status, body = curl("--data-binary", "hello", "-H", "Content-Type: text/plain",
                                server.url + own.route)
            assert status == 503, body
            assert json.loads(body)["errors"][0]["code"] == "backend_unavailable"
            assert status_of(server.url + "/readyz") == 503
            assert "Traceback" not in server.log()
    finally:
        own.stop_service()


def test_an_upload_cut_off_by_the_store_keeps_its_journal_entry(tmp_path, provider):
    # Parts were stored, then the store went away: the abort cannot remove them now, so the
    # key must stay journaled for the sweeper (S3's unfinished upload, Azure's uncommitted
    # blocks). GCS's unfinished session is no object nothing could find: its entry goes.
    own = provider.own()
    try:
        with running_server(tmp_path, config=own.config(), env=own.env()) as server:
            size = 4 * own.part_size
            with closing(socket.create_connection(("127.0.0.1", server.port), 30)) as sock:
                sock.sendall(f"POST {own.route} HTTP/1.1\r\nHost: x\r\nContent-Type: "
                             f"application/octet-stream\r\nContent-Length: {size}\r\n\r\n"
                             .encode() + os.urandom(2 * own.part_size))
                deadline = time.monotonic() + 20
                while own.lists_unfinished and not own.in_progress():
                    assert time.monotonic() < deadline, "no part reached the store"
                    time.sleep(0.05)
                own.stop_service()
                with contextlib.suppress(OSError):
                    sock.sendall(os.urandom(2 * own.part_size))
                status, _, _ = answer_of(sock)
            assert status == 503
            deadline = time.monotonic() + 30
            while ("intent stays" not in server.log() and "not cancelled" not in server.log()):
                assert time.monotonic() < deadline, server.log()[-2000:]
                time.sleep(0.1)
            with closing(sqlite3.connect(server.data_dir / "metadata.sqlite3")) as db:
                journaled = db.execute("SELECT count(*) FROM intents").fetchone()[0]
            assert journaled == (1 if own.lists_unfinished else 0)
            assert "Traceback" not in server.log()
    finally:
        own.stop_service()


def test_redirect_downloads_come_from_the_store_with_name_and_type(tmp_path, store):
    clip = random_file(tmp_path / "clip.bin", 6 * MIB)
    content = clip.read_bytes()
    config = store.config(download="redirect")
    with running_server(tmp_path, config=config, env=store.env()) as server:
        status, body = curl("--data-binary", f"@{clip}", "-H", "Content-Type: application/x-raw",
                            "-H", "X-Filename: r%C3%A9sum%C3%A9.bin", server.url + store.route)
        assert status == 201, body
        url = server.url + json.loads(body)["download_url"]
        status, headers = curl("-sS", "-o", "/dev/null", "-D", "-", url)
        assert status == 302
        location = next(line.split(" ", 1)[1].strip() for line in headers.decode().splitlines()
                        if line.lower().startswith("location:"))
        assert location.startswith(store.object_url)
        assert store.signed(location)
        # curl follows it to the provider, which serves the bytes, the name and the type.
        out = tmp_path / "out"
        status, headers = curl("-L", "-D", "-", "-o", str(out), url)
        assert status == 200
        assert out.read_bytes() == content
        text = headers.decode().lower()
        assert "content-disposition: attachment; filename=\"resume.bin\"" in text
        assert store.content_type(location, text) == "application/octet-stream"
        status, _ = curl("-L", "-r", "100-199", "-o", str(out), url)
        assert status == 206
        assert out.read_bytes() == content[100:200]


def test_the_cli_downloads_and_resumes_through_a_redirect(tmp_path, store):
    # ``tornado-files download`` follows the 302 to the store (without our credentials) and
    # resumes a part file there with Range alone: the store's ETag is not our sha256.
    clip = random_file(tmp_path / "clip.bin", 3 * MIB + 5)
    content = clip.read_bytes()
    with running_server(tmp_path, config=store.config(download="redirect"),
                        env=store.env()) as server:
        status, body = curl("--data-binary", f"@{clip}", "-H", "Content-Type: application/x-raw",
                            server.url + store.route)
        assert status == 201, body
        resource = json.loads(body)
        whole = tmp_path / "whole.bin"
        result = cli(server.url, "download", resource["id"], "-o", str(whole))
        assert result.returncode == 0, result.stderr
        assert whole.read_bytes() == content
        resumed = tmp_path / "resumed.bin"
        part_path(resumed, resource["sha256"]).write_bytes(content[:MIB])  # an earlier run's
        result = cli(server.url, "download", resource["id"], "-o", str(resumed))
        assert result.returncode == 0, result.stderr
        assert resumed.read_bytes() == content
        piped = cli(server.url, "download", resource["id"], "-o", "-", text=False)
        assert piped.returncode == 0, piped.stderr
        assert piped.stdout == content


def headers_of(raw: bytes) -> dict[str, str]:
    lines = raw.decode().splitlines()
    return {name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines[1:]) if value}


def test_redirect_mode_answers_conditionals_and_head_itself(tmp_path, store):
    """If-None-Match and If-Modified-Since are decided before the redirect, as in proxy mode:
    a current copy gets 304 with the same validators; HEAD is answered here (a URL signed
    for GET would refuse it)."""
    content = b"conditional " * 1000
    with running_server(tmp_path, config=store.config(download="redirect"),
                        env=store.env()) as server:
        status, body = curl("--data-binary", content.decode(), "-H",
                            "Content-Type: application/x-raw", server.url + store.route)
        assert status == 201, body
        url = server.url + json.loads(body)["download_url"]
        etag = '"' + hashlib.sha256(content).hexdigest() + '"'
        status, raw = curl("-I", url)
        head = headers_of(raw)
        assert status == 200
        assert "location" not in head
        assert head["etag"] == etag
        assert head["content-length"] == str(len(content))
        for condition in (f"If-None-Match: {etag}", f"If-None-Match: \"other\", W/{etag}",
                          f"If-Modified-Since: {head['last-modified']}"):
            for method in ("-X GET", "-I"):
                status, raw = curl("-D", "-", "-o", "/dev/null", *method.split(), "-H",
                                   condition, url)
                answer = headers_of(raw)
                assert status == 304, (condition, method)
                assert answer["etag"] == etag
                assert answer["last-modified"] == head["last-modified"]
                assert "location" not in answer
        # A stale copy, or an If-Modified-Since overruled by a non-matching If-None-Match:
        # the redirect, which the store then serves.
        for conditions in (["-H", 'If-None-Match: "other"'],
                           ["-H", 'If-None-Match: "other"',
                            "-H", f"If-Modified-Since: {head['last-modified']}"]):
            status, raw = curl("-D", "-", "-o", "/dev/null", *conditions, url)
            assert status == 302
            assert headers_of(raw)["location"].startswith(store.object_url)
        status, body = curl("-L", "-H", 'If-None-Match: "other"', url)
        assert status == 200
        assert body == content
