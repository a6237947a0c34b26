"""tus completion is a recorded state, never half done: when the record cannot be stored on the
last PATCH, HEAD never reports the upload complete while its file does not exist, and HEAD, a
retried PATCH or the sweeper finish it once the store is back. The fault is real: the SQLite
table the records go to is renamed away under the running server."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest

from tests.http.test_tus import CHUNK, Tus, V
from tests.support import error_of
from tornado_files.app import build_sweeper
from tornado_files.fsck import Fsck
from tornado_files.models import utcnow
from tornado_files.resumable import Resumable


@pytest.fixture
def stack() -> str:
    return "embedded"  # the fault is injected into SQLite


@pytest.fixture
def tus(http_client, base_url) -> Tus:
    return Tus(http_client, base_url)


def records_table(data_dir: Path, away: bool) -> None:
    """Take the records' table away (inserts fail as on a broken database) or bring it back."""
    names = ("files", "files_away") if away else ("files_away", "files")
    with closing(sqlite3.connect(data_dir / "metadata.sqlite3")) as db:
        db.execute(f"ALTER TABLE {names[0]} RENAME TO {names[1]}")
        db.commit()


async def upload_whose_record_fails(tus: Tus, data_dir: Path, content: bytes) -> str:
    url = await tus.create(len(content))
    half = len(content) // 2
    assert (await tus.patch(url, 0, content[:half])).code == 204
    records_table(data_dir, away=True)
    error_of(await tus.patch(url, half, content[half:]), 503, "backend_unavailable")
    # Every byte is stored, but the file is not there: HEAD must not say "complete".
    assert (await tus.fetch(url, "HEAD", **V)).code == 503
    return url


async def file_of(tus: Tus, url: str) -> dict[str, object]:
    response = await tus.fetch("/api/files/" + url.rsplit("/", 1)[1])
    assert response.code == 200, response.body
    resource: dict[str, object] = json.loads(response.body)
    return resource


@pytest.mark.gen_test(timeout=30)
@pytest.mark.allow_error_logs
@pytest.mark.parametrize("finisher", ["head", "patch", "sweeper"])
async def test_a_failed_completion_is_finished_later(tus, services, data_dir, residue, finisher):
    content = os.urandom(700_001)
    url = await upload_whose_record_fails(tus, data_dir, content)
    records_table(data_dir, away=False)
    if finisher == "head":
        head = await tus.fetch(url, "HEAD", **V)
        assert head.code == 200
        assert head.headers["Upload-Offset"] == head.headers["Upload-Length"] == str(len(content))
    elif finisher == "patch":  # the client retries its last PATCH's end: no bytes left to send
        response = await tus.patch(url, len(content), b"")
        assert response.code == 204
        assert response.headers["Upload-Offset"] == str(len(content))
    else:
        await build_sweeper(services).sweep_once()
    resource = await file_of(tus, url)
    assert resource["sha256"] == hashlib.sha256(content).hexdigest()
    assert (await tus.fetch(str(resource["download_url"]))).body == content
    # Finished: later HEADs and retried PATCHes see a complete upload, nothing is left over.
    assert (await tus.fetch(url, "HEAD", **V)).headers["Upload-Offset"] == str(len(content))
    assert (await tus.patch(url, len(content), b"")).code == 204
    residue.assert_clean(committed=1)


@pytest.mark.gen_test(timeout=30)
@pytest.mark.allow_error_logs
@pytest.mark.parametrize("config_overrides", [{"tus_expiry": 1}])
async def test_the_sweeper_never_expires_a_completing_upload(tus, services, data_dir, residue,
                                                             config_overrides):
    content = os.urandom(300_000)
    url = await upload_whose_record_fails(tus, data_dir, content)
    await asyncio.sleep(1.2)  # past its expiry, and the records' table still away
    resumable = Resumable(services)
    assert await resumable.sweep() == 0  # the completion fails again, and nothing expires
    assert (await tus.fetch(url, "HEAD", **V)).code == 503
    records_table(data_dir, away=False)
    await resumable.sweep()
    assert (await file_of(tus, url))["size"] == len(content)
    residue.assert_clean(committed=1)


@pytest.mark.gen_test
async def test_an_empty_upload_is_a_file_at_once(tus, residue):
    url = await tus.create(0)
    resource = await file_of(tus, url)
    assert resource["size"] == 0
    assert resource["mime_type"] == "application/x-empty"
    assert resource["sha256"] == hashlib.sha256(b"").hexdigest()
    head = await tus.fetch(url, "HEAD", **V)
    assert head.headers["Upload-Offset"] == head.headers["Upload-Length"] == "0"
    # A PATCH at its end changes nothing; one past it is a conflict.
    assert (await tus.fetch(url, "PATCH", b"", **CHUNK, **{"Upload-Offset": "0"})).code == 204
    error_of(await tus.fetch(url, "PATCH", b"x", **CHUNK, **{"Upload-Offset": "1"}), 409,
             "offset_mismatch")
    residue.assert_clean(committed=1)


@pytest.mark.gen_test
@pytest.mark.allow_error_logs
async def test_terminating_a_finished_upload_deletes_its_file(tus, data_dir, residue):
    # The termination extension covers completed uploads (tus 1.0.0): DELETE of the upload's
    # URL deletes its file as DELETE /api/files/{id} does — a completing one is finished first.
    content = os.urandom(1000)
    url = await upload_whose_record_fails(tus, data_dir, content)
    records_table(data_dir, away=False)
    assert (await tus.fetch(url, "DELETE", **V)).code == 204
    gone = await tus.fetch("/api/files/" + url.rsplit("/", 1)[1])
    assert gone.code == 404
    finished = await tus.create(3)
    assert (await tus.patch(finished, 0, b"abc")).code == 204
    assert (await tus.fetch(finished, "DELETE", **V)).code == 204
    assert (await tus.fetch("/api/files/" + finished.rsplit("/", 1)[1])).code == 404
    error_of(await tus.fetch(finished, "DELETE", **V), 404, "not_found")
    residue.assert_clean()


@pytest.mark.gen_test(timeout=30)
@pytest.mark.allow_error_logs
async def test_fsck_repair_leaves_a_completing_upload_alone(tus, services, data_dir, residue):
    # Its blob is final before its record goes in: not an orphan, whatever its age.
    content = os.urandom(5000)
    url = await upload_whose_record_fails(tus, data_dir, content)
    records_table(data_dir, away=False)
    lines: list[str] = []
    later = utcnow() + timedelta(seconds=2 * services.config.sweep_grace)
    report = await Fsck(services.metadata, services.intents, services.uploads,
                        services.blob_stores, services.config.sweep_grace, emit=lines.append,
                        clock=lambda: later).run(repair=True)
    assert report.orphans == 0
    assert any(line.startswith("completing upload disk/") for line in lines), lines
    head = await tus.fetch(url, "HEAD", **V)
    assert head.headers["Upload-Offset"] == str(len(content))
    assert (await tus.fetch(str((await file_of(tus, url))["download_url"]))).body == content
    residue.assert_clean(committed=1)
