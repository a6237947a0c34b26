"""The free-space floor on a real, small file system (a tmpfs mounted for each test): uploads
are refused with 507 before the disk is full, so SQLite can always write and DELETE frees
space; health says low_space. Nothing here is simulated: a filler file takes the room."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.mounts import tmpfs
from tests.support import Part, error_of, multipart

MIB = 1024 * 1024
FLOOR = 8 * MIB
TUS = {"Tus-Resumable": "1.0.0"}
CHUNK = {**TUS, "Content-Type": "application/offset+octet-stream"}


@pytest.fixture
def stack() -> str:
    return "embedded"  # the disk store and SQLite share the data directory's file system


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "small", "24m") as mounted:
        data = mounted / "data"
        data.mkdir()
        yield data


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"min_free_space": "8MiB"}


def free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def open_under(path: Path) -> list[str]:
    """Files under ``path`` this process holds open."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(f"{path}/") and "metadata.sqlite3" not in target:
                found.append(target)
    return found


def fill_until(data_dir: Path, left: int) -> Path:
    """A filler file beside the data directory that leaves ``left`` bytes free."""
    filler = data_dir.parent / "filler"
    with filler.open("ab") as handle:
        handle.write(b"\0" * max(0, free(data_dir) - left))
        handle.flush()
        os.fsync(handle.fileno())
    return filler


async def fetch(client: Any, base_url: str, path: str, method: str = "GET",
                body: bytes | None = None, **headers: str) -> Any:
    return await client.fetch(base_url + path, method=method, body=body, headers=headers,
                              raise_error=False, allow_nonstandard_methods=True)


async def post(client: Any, base_url: str, size: int) -> Any:
    body, ctype = multipart([Part("file", b"x" * size, "f.bin")])
    return await fetch(client, base_url, "/api/files", "POST", body, **{"Content-Type": ctype})


@pytest.mark.gen_test(timeout=30)
@pytest.mark.allow_error_logs
async def test_below_the_floor_uploads_are_507_delete_works_and_health_says_low_space(
        http_client, base_url, data_dir, residue):
    kept = await post(http_client, base_url, MIB)
    assert kept.code == 201, kept.body
    file_id = json.loads(kept.body)["id"]
    tus_url = (await fetch(http_client, base_url, "/api/tus/", "POST", b"", **TUS,
                           **{"Upload-Length": str(MIB)})).headers["Location"]
    assert (await fetch(http_client, base_url, "/healthz")).code == 200

    filler = fill_until(data_dir, FLOOR - MIB)
    error_of(await post(http_client, base_url, 1000), 507, "insufficient_storage")
    error_of(await fetch(http_client, base_url, "/api/tus/", "POST", b"", **TUS,
                         **{"Upload-Length": "10"}), 507, "insufficient_storage")
    error_of(await fetch(http_client, base_url, tus_url, "PATCH", b"y" * 1000, **CHUNK,
                         **{"Upload-Offset": "0"}), 507, "insufficient_storage")
    health = await fetch(http_client, base_url, "/healthz")
    assert health.code == 503
    assert json.loads(health.body)["checks"] == {"metadata": "ok", "storage:disk": "low_space"}

    # The floor left SQLite room to write: deletions work on the "full" disk.
    assert (await fetch(http_client, base_url, f"/api/files/{file_id}", "DELETE")).code == 204
    assert (await fetch(http_client, base_url, tus_url, "DELETE", **TUS)).code == 204
    residue.assert_clean()

    filler.unlink()
    assert (await fetch(http_client, base_url, "/healthz")).code == 200
    assert (await post(http_client, base_url, 1000)).code == 201


@pytest.mark.gen_test(timeout=30)
@pytest.mark.allow_error_logs
async def test_a_post_that_crosses_the_floor_is_507_and_leaves_nothing(
        http_client, base_url, data_dir, residue):
    fill_until(data_dir, FLOOR + 4 * MIB)
    error_of(await post(http_client, base_url, 10 * MIB), 507, "insufficient_storage")
    residue.assert_clean()
    assert free(data_dir) >= FLOOR + 3 * MIB


@pytest.mark.gen_test(timeout=30)
@pytest.mark.allow_error_logs
async def test_a_tus_patch_that_crosses_the_floor_stops_short_of_a_full_disk(
        http_client, base_url, data_dir, residue):
    """As on a full disk, the failed chunk is not counted (the offset stays) and its bytes
    are dropped at once: the space is back, and the upload can go on at once. Before, they
    stayed in the partial (the disk below the floor, every upload 507) until DELETE or
    expiry."""
    length = 12 * MIB
    url = (await fetch(http_client, base_url, "/api/tus/", "POST", b"", **TUS,
                       **{"Upload-Length": str(length)})).headers["Location"]
    fill_until(data_dir, FLOOR + 4 * MIB)
    error_of(await fetch(http_client, base_url, url, "PATCH", b"z" * length, **CHUNK,
                         **{"Upload-Offset": "0"}), 507, "insufficient_storage")
    head = await fetch(http_client, base_url, url, "HEAD", **TUS)
    assert head.headers["Upload-Offset"] == "0"
    assert free(data_dir) > FLOOR + 3 * MIB  # the refused chunk's bytes are gone
    assert (await fetch(http_client, base_url, "/healthz")).code == 200
    more = await fetch(http_client, base_url, url, "PATCH", b"z" * MIB, **CHUNK,
                       **{"Upload-Offset": "0"})
    assert more.code == 204, more.body
    assert (await fetch(http_client, base_url, url, "DELETE", **TUS)).code == 204
    residue.assert_clean()


@pytest.mark.gen_test(timeout=30)
@pytest.mark.allow_error_logs
async def test_a_patch_refused_below_the_floor_leaves_no_lease(
        http_client, base_url, data_dir, residue):
    """A PATCH refused before writing (507) releases the upload's lease: once space is back
    the next PATCH goes on at once. Before, it got 423 for the lease's 10 s."""
    url = (await fetch(http_client, base_url, "/api/tus/", "POST", b"", **TUS,
                       **{"Upload-Length": str(MIB)})).headers["Location"]
    filler = fill_until(data_dir, FLOOR - MIB)
    error_of(await fetch(http_client, base_url, url, "PATCH", b"y" * 1000, **CHUNK,
                         **{"Upload-Offset": "0"}), 507, "insufficient_storage")
    filler.unlink()
    again = await fetch(http_client, base_url, url, "PATCH", b"y" * MIB, **CHUNK,
                        **{"Upload-Offset": "0"})
    assert again.code == 204, again.body
    residue.assert_clean(committed=1)


@pytest.mark.gen_test(timeout=30)
@pytest.mark.allow_error_logs
async def test_a_tus_patch_whose_last_chunk_crosses_the_floor_closes_its_file(
        http_client, base_url, data_dir, residue):
    """The floor is checked as the 4 MiB-th byte is written: on the last chunk, the error
    surfaces only when the PATCH ends (the writer's settle), and the file is closed then too."""
    length = 4 * MIB
    url = (await fetch(http_client, base_url, "/api/tus/", "POST", b"", **TUS,
                       **{"Upload-Length": str(length)})).headers["Location"]
    fill_until(data_dir, FLOOR + 2 * MIB)
    error_of(await fetch(http_client, base_url, url, "PATCH", b"z" * length, **CHUNK,
                         **{"Upload-Offset": "0"}), 507, "insufficient_storage")
    assert (await fetch(http_client, base_url, url, "HEAD", **TUS)).headers["Upload-Offset"] == "0"
    assert open_under(data_dir) == []
    assert (await fetch(http_client, base_url, url, "DELETE", **TUS)).code == 204
    residue.assert_clean()


def fill_completely(data_dir: Path) -> Path:
    """A filler beside the data directory that takes every free block (another program
    filling the disk, past any floor of ours)."""
    filler = data_dir.parent / "filler"
    with filler.open("ab") as handle:
        with contextlib.suppress(OSError):
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        with contextlib.suppress(OSError):
            os.fsync(handle.fileno())
    return filler


@pytest.mark.gen_test(timeout=30)
@pytest.mark.allow_error_logs
async def test_delete_frees_space_on_a_disk_something_else_filled(
        http_client, base_url, data_dir, residue):
    """Before: PATCH and DELETE answered 503 (SQLite could not write) and nothing could free
    the disk. The records keep a reserve file and give it up for the write that needs it."""
    reserve = data_dir / "metadata.sqlite3-headroom"
    assert reserve.stat().st_size == 4 * MIB
    kept = await post(http_client, base_url, MIB)
    file_id = json.loads(kept.body)["id"]
    filler = fill_completely(data_dir)
    assert free(data_dir) < 64 * 1024
    deleted = await fetch(http_client, base_url, f"/api/files/{file_id}", "DELETE")
    assert deleted.code == 204, deleted.body
    assert not reserve.exists()  # given up for that write
    assert free(data_dir) > MIB  # the blob's space is back
    residue.assert_clean()
    filler.unlink()
    assert (await fetch(http_client, base_url, "/healthz")).code == 200
    assert reserve.stat().st_size == 4 * MIB  # back once there was room
