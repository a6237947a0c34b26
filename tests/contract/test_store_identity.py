"""The disk store proves it is the store the records point at (issue 13): real directories,
a real SQLite file; the identity the metadata store keeps is checked on both backends in
test_metadata_store."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.contract.test_metadata_store import record
from tornado_files.metadata.sqlite import SqliteMetadataStore
from tornado_files.storage.disk import MARKER, DiskBlobStore
from tornado_files.store_identity import WrongStore, verify_store


@pytest.fixture
def stores(tmp_path, offload, io_loop):
    metadata = SqliteMetadataStore(tmp_path / "meta.sqlite3", offload)
    io_loop.run_sync(metadata.startup)
    yield DiskBlobStore(tmp_path / "data", offload), metadata
    io_loop.run_sync(metadata.close)


async def start(disk: DiskBlobStore, metadata: SqliteMetadataStore) -> None:
    await verify_store(disk, metadata, write=True)
    await disk.startup()


async def one_blob(disk: DiskBlobStore, metadata: SqliteMetadataStore) -> None:
    writer = await disk.open_writer(record(1).blob_key)
    await writer.write(b"x")
    await writer.commit()
    await metadata.insert_many([record(1)])


@pytest.mark.gen_test
async def test_a_fresh_store_is_marked_and_the_mark_recorded(stores, tmp_path: Path):
    disk, metadata = stores
    await start(disk, metadata)
    marker = (tmp_path / "data" / "blobs" / MARKER).read_text().strip()
    assert len(marker) == 32
    assert await metadata.store_id("disk") == marker
    assert [p.name for p in (tmp_path / "data" / "blobs").iterdir() if p.is_file()] == [MARKER]
    await one_blob(disk, metadata)
    await start(disk, metadata)  # the same store again: accepted, nothing changes
    assert await metadata.store_id("disk") == marker


@pytest.mark.gen_test
async def test_a_missing_blob_tree_with_records_is_refused_and_not_recreated(stores, tmp_path):
    disk, metadata = stores
    await start(disk, metadata)
    await one_blob(disk, metadata)
    blobs = tmp_path / "data" / "blobs"
    blobs.rename(tmp_path / "elsewhere")  # the volume is not mounted
    for write in (True, False):
        with pytest.raises(WrongStore, match="is its volume mounted"):
            await verify_store(disk, metadata, write=write)
    assert not blobs.exists()
    blobs.mkdir()  # an empty mount point
    with pytest.raises(WrongStore, match="is its volume mounted"):
        await verify_store(disk, metadata, write=True)
    assert list(blobs.iterdir()) == []
    blobs.rmdir()
    (tmp_path / "elsewhere").rename(blobs)  # mounted again
    await start(disk, metadata)


@pytest.mark.gen_test
async def test_another_stores_marker_is_refused(stores, tmp_path):
    disk, metadata = stores
    await start(disk, metadata)
    await one_blob(disk, metadata)
    assert await disk.write_marker("f" * 32) != "f" * 32  # a marker is never replaced
    (tmp_path / "data" / "blobs" / MARKER).write_text("f" * 32)  # another store's volume
    with pytest.raises(WrongStore, match="wrong volume"):
        await verify_store(disk, metadata, write=True)


@pytest.mark.gen_test
async def test_a_store_from_before_markers_is_adopted_only_with_its_blobs(stores, tmp_path):
    disk, metadata = stores
    await disk.startup()
    await one_blob(disk, metadata)
    await verify_store(disk, metadata, write=False)  # fsck: accepted, and nothing written
    assert await disk.read_marker() is None
    assert await metadata.store_id("disk") is None
    await start(disk, metadata)
    assert await disk.read_marker() == await metadata.store_id("disk") is not None


@pytest.mark.gen_test
async def test_fresh_records_do_not_adopt_a_marked_store_that_holds_blobs(stores, tmp_path,
                                                                          offload):
    """The mirror image of a missing blob tree: records lost (a database file moved away, a
    misspelt MongoDB database) while the blobs are there. Adopting the store would make every
    blob an orphan, and ``fsck --repair`` would delete them all."""
    disk, metadata = stores
    await start(disk, metadata)
    await one_blob(disk, metadata)
    fresh = SqliteMetadataStore(tmp_path / "fresh.sqlite3", offload)
    await fresh.startup()
    try:
        for write in (True, False):
            with pytest.raises(WrongStore, match="holds blobs"):
                await verify_store(disk, fresh, write=write)
        assert await fresh.store_id("disk") is None
    finally:
        await fresh.close()


@pytest.mark.gen_test
async def test_fresh_records_adopt_a_marked_store_without_blobs(stores, tmp_path, offload):
    disk, metadata = stores
    await start(disk, metadata)  # marked, nothing stored yet
    fresh = SqliteMetadataStore(tmp_path / "fresh.sqlite3", offload)
    await fresh.startup()
    try:
        await verify_store(disk, fresh, write=True)
        assert await fresh.store_id("disk") == await metadata.store_id("disk")
    finally:
        await fresh.close()
