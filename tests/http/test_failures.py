"""Storage failures seen from HTTP: the right JSON:API error, nothing internal in it, the error
id in the log, and nothing left behind. Faults are injected at the OS / driver boundary."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import pathlib
import shutil
import subprocess
import time
from datetime import timedelta
from typing import Any

import pytest

import tornado_files.storage.disk as disk_module
from tests.support import Part, error_of, multipart, read_until_closed
from tornado_files.app import build_sweeper
from tornado_files.metadata.sqlite import SqliteMetadataStore
from tornado_files.models import utcnow


@pytest.fixture
def stack() -> str:
    """Faults injected into the disk store and SQLite: the embedded default only (MongoDB
    faults are in tests/http/test_mongo_failures.py)."""
    return "embedded"


class FillingFile:
    """A temp file on a disk that fills up after ``room`` bytes."""

    def __init__(self, inner: Any, room: int) -> None:
        self.inner = inner
        self.room = room

    def write(self, data: bytes) -> int:
        if self.room < len(data):
            raise OSError(errno.ENOSPC, "No space left on device: /secret/path")
        self.room -= len(data)
        return self.inner.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __enter__(self) -> FillingFile:  # dunders bypass __getattr__
        return self

    def __exit__(self, *exc: object) -> None:
        self.inner.close()


async def upload(client: Any, base_url: str, size: int) -> Any:
    body, ctype = multipart([Part("files", b"a" * 1000, "ok.txt"),
                             Part("files", b"b" * size, "big.bin")])
    return await client.fetch(base_url + "/api/files", method="POST", body=body,
                              headers={"Content-Type": ctype}, raise_error=False)


@pytest.mark.gen_test
@pytest.mark.allow_error_logs
async def test_disk_full_is_507_and_removes_every_file_of_the_request(
        http_client, base_url, residue, monkeypatch, caplog):
    real_open = disk_module._open_exclusive
    monkeypatch.setattr(disk_module, "_open_exclusive",
                        lambda path: FillingFile(real_open(path), room=512 * 1024))
    with caplog.at_level(logging.INFO):
        response = await upload(http_client, base_url, 2 * 1024 * 1024)
    error = error_of(response, 507, "insufficient_storage")
    assert b"secret" not in response.body
    assert b"Errno" not in response.body
    assert error["id"] in caplog.text
    residue.assert_clean()


@pytest.mark.gen_test
@pytest.mark.allow_error_logs
async def test_record_failure_is_500_and_the_committed_blobs_are_removed(
        http_client, base_url, residue, monkeypatch, caplog):
    async def broken(self: Any, records: Any) -> None:
        raise RuntimeError("driver exploded at /var/secret")
    monkeypatch.setattr(SqliteMetadataStore, "insert_many", broken)
    with caplog.at_level(logging.INFO):
        response = await upload(http_client, base_url, 10)
    error = error_of(response, 500, "internal_error")
    assert b"secret" not in response.body
    assert b"Traceback" not in response.body
    # The traceback and the id are in the log, for the operator.
    assert error["id"] in caplog.text
    assert "driver exploded" in caplog.text
    residue.assert_clean()


@pytest.mark.gen_test
@pytest.mark.allow_error_logs
async def test_health_is_503_when_a_store_fails_and_200_when_it_returns(http_client, base_url,
                                                                       data_dir):
    ok = await http_client.fetch(base_url + "/healthz")
    assert json.loads(ok.body)["checks"] == {"metadata": "ok", "storage:disk": "ok"}
    shutil.move(data_dir / "tmp", data_dir / "tmp-away")
    down = await http_client.fetch(base_url + "/healthz", raise_error=False)
    assert down.code == 503
    assert json.loads(down.body) == {"status": "unavailable",
                                     "checks": {"metadata": "ok", "storage:disk": "unavailable"}}
    shutil.move(data_dir / "tmp-away", data_dir / "tmp")
    again = await http_client.fetch(base_url + "/healthz")
    assert again.code == 200


@pytest.mark.gen_test
@pytest.mark.allow_error_logs
@pytest.mark.parametrize("folder", ["partial", "blobs", "tmp"])
async def test_health_sees_every_folder_uploads_write_to(http_client, base_url, data_dir,
                                                          folder):
    """An immutable ``partial/`` or ``blobs/`` (``chattr +i``, which binds root too) fails
    every tus or POST upload; health used to look at ``tmp/`` only and said ok."""
    target = data_dir / folder
    subprocess.run(["chattr", "+i", str(target)], check=True)
    try:
        down = await http_client.fetch(base_url + "/healthz", raise_error=False)
        assert down.code == 503
        assert json.loads(down.body)["checks"]["storage:disk"] == "unavailable"
    finally:
        subprocess.run(["chattr", "-i", str(target)], check=True)
    assert (await http_client.fetch(base_url + "/healthz")).code == 200


@pytest.mark.gen_test
@pytest.mark.allow_error_logs
async def test_metadata_down_is_503_backend_unavailable(http_client, base_url, services):
    await services.metadata.close()
    response = await http_client.fetch(base_url + "/api/files", raise_error=False)
    error_of(response, 503, "backend_unavailable")
    health = await http_client.fetch(base_url + "/healthz", raise_error=False)
    assert health.code == 503


@pytest.mark.gen_test
async def test_client_errors_are_logged_with_their_id(http_client, base_url, caplog):
    with caplog.at_level(logging.INFO, logger="tornado_files"):
        response = await http_client.fetch(base_url + "/api/files/" + "0" * 32,
                                           raise_error=False)
    error = error_of(response, 404, "not_found")
    assert any(error["id"] in r.getMessage() for r in caplog.records)


@pytest.mark.gen_test(timeout=30)
@pytest.mark.allow_error_logs
async def test_a_read_error_after_the_headers_closes_the_connection(http_client, base_url,
                                                                    http_port, data_dir, caplog):
    # Headers and the first MiB are out when the disk fails: no JSON error can follow, so the
    # one error exit logs it (with its id) and closes the connection — the client sees the
    # response cut short instead of a clean end.
    content = b"z" * (3 * 1024 * 1024)
    response = await http_client.fetch(base_url + "/api/files", method="POST", body=content,
                                       headers={"Content-Type": "application/octet-stream"})
    created = json.loads(response.body)
    blob = next((data_dir / "blobs").rglob(created["id"]))
    with blob.open("r+b") as handle:
        handle.truncate(1024 * 1024 + 512 * 1024)  # what the disk can still give
    request = (f"GET {created['download_url']} HTTP/1.1\r\nHost: x\r\n\r\n").encode()
    with caplog.at_level(logging.INFO):
        raw = await asyncio.get_running_loop().run_in_executor(None, read_until_closed,
                                                               http_port, request)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert f"Content-Length: {len(content)}".encode() in head
    assert 0 < len(body) < len(content)
    logged = [r for r in caplog.records if r.name == "tornado_files.web" and
              "backend_unavailable" in r.getMessage()]
    assert len(logged) == 1, caplog.text
    assert "Cannot send error response" not in caplog.text


def unlink_failing_for_committed_blobs() -> Any:
    """``Path.unlink`` as on a disk that cannot remove committed blobs (``blobs/ab/cd/<key>``)
    — temp files still go."""
    real_unlink = pathlib.Path.unlink

    def unlink(path: pathlib.Path, *args: Any, **kwargs: Any) -> None:
        if path.parent.parent.parent.name == "blobs":
            raise OSError(errno.EIO, "Input/output error: /secret/path")
        real_unlink(path, *args, **kwargs)
    return unlink


async def removed_by_the_sweeper(services: Any) -> tuple[int, int]:
    """What the sweeper removes now (within the grace: nothing may go) and once the grace
    has passed."""
    now = (await build_sweeper(services).sweep_once()).removed
    grace = timedelta(seconds=services.config.sweep_grace)
    later = await build_sweeper(services, clock=lambda: utcnow() + grace + grace / 10
                                ).sweep_once()
    return now, later.removed


@pytest.mark.gen_test
@pytest.mark.allow_error_logs
async def test_failed_blob_delete_is_204_and_the_sweeper_finishes_it(
        http_client, base_url, services, residue, monkeypatch, caplog):
    body, ctype = multipart([Part("file", b"doomed", "a.txt")])
    created = json.loads((await http_client.fetch(
        base_url + "/api/files", method="POST", body=body,
        headers={"Content-Type": ctype})).body)
    with monkeypatch.context() as patch, caplog.at_level(logging.ERROR):
        patch.setattr(pathlib.Path, "unlink", unlink_failing_for_committed_blobs())
        response = await http_client.fetch(base_url + created["url"], method="DELETE",
                                           raise_error=False)
    assert response.code == 204
    assert "removal not finished" in caplog.text
    assert residue.rows() == 0
    assert len(residue.blobs()) == 1
    assert residue.intents() == [created["id"]]
    assert await removed_by_the_sweeper(services) == (0, 1)
    residue.assert_clean()


@pytest.mark.gen_test
@pytest.mark.allow_error_logs
async def test_an_upload_whose_cleanup_failed_is_finished_by_the_sweeper(
        http_client, base_url, services, residue, monkeypatch):
    # The record insert fails, and so does the removal of the committed blob: the intent
    # written before the first byte is what lets the sweeper find the blob, without listing.
    async def broken(self: Any, records: Any) -> None:
        raise RuntimeError("driver exploded")
    with monkeypatch.context() as patch:
        patch.setattr(SqliteMetadataStore, "insert_many", broken)
        patch.setattr(pathlib.Path, "unlink", unlink_failing_for_committed_blobs())
        response = await upload(http_client, base_url, 10)
    error_of(response, 500, "internal_error")
    assert residue.rows() == 0
    assert len(residue.blobs()) == 2
    assert len(residue.intents()) == 2
    assert await removed_by_the_sweeper(services) == (0, 2)
    residue.assert_clean()


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize("config_overrides", [{"idle_timeout": 1.0}])
async def test_a_slow_store_opening_a_raw_upload_is_not_the_clients_silence(
        http_client, base_url, residue, monkeypatch, config_overrides):
    # Found by the fuzzer (tests/http/test_fuzz.py) on a loaded machine: the idle timer counted
    # the store's time in begin() as the client's silence, answered 408 and aborted the
    # session while its file was still being opened: the temp file stayed behind.
    real_open = disk_module._open_exclusive

    def slow_open(path: pathlib.Path) -> Any:
        time.sleep(2.5)  # on the offload pool, longer than idle_timeout and its check period
        return real_open(path)

    monkeypatch.setattr(disk_module, "_open_exclusive", slow_open)
    response = await http_client.fetch(base_url + "/api/files", method="POST", body=b"abc",
                                       headers={"X-Filename": "a.txt",
                                                "Content-Type": "application/octet-stream"},
                                       raise_error=False)
    assert response.code == 201, response.body[:300]
    residue.assert_clean(committed=1)
