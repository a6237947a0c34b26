"""Fixtures shared by the contract suites: each blob store on its real resource."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tornado.ioloop import IOLoop

from tests.contract.azure_probe import BLOCK, AzureProbe
from tests.contract.gcs_probe import PART, GcsProbe
from tests.contract.s3_probe import S3Probe
from tests.contract.stores import GRIDFS_CHUNK, DiskProbe, GridFSProbe
from tests.mongo_support import STACKS, fresh_database
from tornado_files.blocking import Offload
from tornado_files.metadata.mongo import MongoMetadataStore
from tornado_files.metadata.mongo_jobs import MongoJobQueue
from tornado_files.metadata.mongo_outbox import MongoOutbox
from tornado_files.metadata.sqlite import SqliteMetadataStore
from tornado_files.metadata.sqlite_jobs import SqliteJobQueue
from tornado_files.metadata.sqlite_outbox import SqliteOutbox
from tornado_files.mongo import database_of, make_client
from tornado_files.storage.azure import AzureBlobStore
from tornado_files.storage.azure_settings import AzureSettings
from tornado_files.storage.disk import DiskBlobStore
from tornado_files.storage.gcs import GcsBlobStore
from tornado_files.storage.gcs_settings import GcsSettings
from tornado_files.storage.gridfs import GridFSBlobStore
from tornado_files.storage.s3 import S3BlobStore
from tornado_files.storage.s3_settings import MIN_PART_SIZE, S3Settings


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest) -> str:
    """A contract suite that drives whole services (the sweeper) runs on every stack, as the
    store suites run on every backend."""
    return str(request.param)


@pytest.fixture
def offload() -> Iterator[Offload]:
    pool = Offload(4)
    yield pool
    pool.shutdown()


def _disk(tmp_path: Path, offload: Offload, io_loop: IOLoop) -> tuple[Any, DiskProbe]:
    store = DiskBlobStore(tmp_path / "store", offload, read_chunk=256 * 1024)
    io_loop.run_sync(store.startup)
    return store, DiskProbe(tmp_path / "store")


def _gridfs(request: pytest.FixtureRequest, io_loop: IOLoop) -> Iterator[tuple[Any, Any]]:
    uri = request.getfixturevalue("standin").uri(fresh_database())
    client = make_client(uri)
    store = GridFSBlobStore(database_of(client), chunk_size=GRIDFS_CHUNK)
    io_loop.run_sync(store.startup)
    probe = GridFSProbe(uri)
    yield store, probe
    probe.client.drop_database(probe.client.get_default_database())
    probe.client.close()
    io_loop.run_sync(client.close)


def _s3(request: pytest.FixtureRequest, offload: Offload,
        io_loop: IOLoop) -> Iterator[tuple[S3BlobStore, S3Probe]]:
    service = request.getfixturevalue("s3_service")
    bucket = service.new_bucket()
    # The smallest parts S3 takes, so a few MiB cross part edges.
    settings = S3Settings(bucket=bucket, prefix="up/", endpoint=service.endpoint,
                          part_size=MIN_PART_SIZE)
    store = S3BlobStore(settings, offload)
    io_loop.run_sync(store.startup)
    yield store, S3Probe(service, bucket, "up/")
    io_loop.run_sync(store.close)


def _azure(request: pytest.FixtureRequest, offload: Offload,
           io_loop: IOLoop) -> Iterator[tuple[AzureBlobStore, AzureProbe]]:
    azurite = request.getfixturevalue("azurite")
    container = azurite.new_container()
    # The smallest blocks we allow, so a few MiB cross block edges.
    settings = AzureSettings(container=container, prefix="up/", endpoint=azurite.endpoint,
                             part_size=BLOCK)
    store = AzureBlobStore(settings, offload,
                           environ={"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string})
    io_loop.run_sync(store.startup)
    yield store, AzureProbe(azurite, container, "up/")
    io_loop.run_sync(store.close)


def _gcs(request: pytest.FixtureRequest, offload: Offload,
         io_loop: IOLoop) -> Iterator[tuple[GcsBlobStore, GcsProbe]]:
    emulator = request.getfixturevalue("gcs_emulator")
    bucket = emulator.new_bucket()
    # The smallest chunks GCS takes, so a few MiB cross chunk edges.
    settings = GcsSettings(bucket=bucket, prefix="up/", endpoint=emulator.endpoint,
                           part_size=PART)
    store = GcsBlobStore(settings, offload, environ={})
    io_loop.run_sync(store.startup)
    yield store, GcsProbe(emulator, bucket, "up/")
    io_loop.run_sync(store.close)


def _backend(request: pytest.FixtureRequest, tmp_path: Path, offload: Offload,
             io_loop: IOLoop) -> Iterator[tuple[Any, Any]]:
    if request.param == "disk":
        yield _disk(tmp_path, offload, io_loop)
    elif request.param == "s3":
        yield from _s3(request, offload, io_loop)
    elif request.param == "azure":
        yield from _azure(request, offload, io_loop)
    elif request.param == "gcs":
        yield from _gcs(request, offload, io_loop)
    else:
        yield from _gridfs(request, io_loop)


@pytest.fixture(params=["disk", "gridfs", "s3", "azure", "gcs"])
def backend(request: pytest.FixtureRequest, tmp_path: Path, offload: Offload,
            io_loop: IOLoop) -> Iterator[tuple[Any, Any]]:
    """Every backend, each with a probe of its real resource."""
    yield from _backend(request, tmp_path, offload, io_loop)


@pytest.fixture(params=["disk", "gridfs", "s3", "azure", "gcs"])
def partial_backend(request: pytest.FixtureRequest, tmp_path: Path, offload: Offload,
                    io_loop: IOLoop) -> Iterator[tuple[Any, Any]]:
    """Every backend that keeps partial blobs (tus): all of them. A tus upload to a route
    whose store keeps none is refused at creation (tests/http/test_tus.py)."""
    yield from _backend(request, tmp_path, offload, io_loop)


@pytest.fixture
def s3(request: pytest.FixtureRequest, offload: Offload,
       io_loop: IOLoop) -> Iterator[tuple[S3BlobStore, S3Probe]]:
    """The S3 store alone (moto), for what only multipart uploads show."""
    yield from _s3(request, offload, io_loop)


@pytest.fixture
def azure(request: pytest.FixtureRequest, offload: Offload,
          io_loop: IOLoop) -> Iterator[tuple[AzureBlobStore, AzureProbe]]:
    """The Azure store alone (Azurite), for what only block blobs show."""
    yield from _azure(request, offload, io_loop)


@pytest.fixture
def gcs(request: pytest.FixtureRequest, offload: Offload,
        io_loop: IOLoop) -> Iterator[tuple[GcsBlobStore, GcsProbe]]:
    """The GCS store alone (the emulator), for what only resumable sessions and compose show."""
    yield from _gcs(request, offload, io_loop)


@pytest.fixture
def disk(tmp_path: Path, offload: Offload, io_loop: IOLoop) -> tuple[Any, DiskProbe]:
    """The disk store alone, for what only a file system can do (fill up, lose a folder)."""
    return _disk(tmp_path, offload, io_loop)


@pytest.fixture
def gridfs(request: pytest.FixtureRequest, io_loop: IOLoop) -> Iterator[tuple[Any, Any]]:
    """The GridFS store alone, for what only chunk documents show."""
    yield from _gridfs(request, io_loop)


@pytest.fixture(params=["sqlite", "mongo"])
def media(request: pytest.FixtureRequest, tmp_path: Path, offload: Offload,
          io_loop: IOLoop) -> Iterator[tuple[Any, Any]]:
    """A started metadata store and its job queue, on every metadata backend (the stand-in
    for MongoDB, a database of its own per test)."""
    if request.param == "sqlite":
        sqlite = SqliteMetadataStore(tmp_path / "meta.sqlite3", offload)
        jobs: Any = SqliteJobQueue(sqlite)
        io_loop.run_sync(sqlite.startup)
        io_loop.run_sync(jobs.startup)
        yield sqlite, jobs
        io_loop.run_sync(sqlite.close)
        return
    client = make_client(request.getfixturevalue("standin").uri(fresh_database()))
    db = database_of(client)
    mongo, jobs = MongoMetadataStore(db), MongoJobQueue(db)
    io_loop.run_sync(mongo.startup)
    io_loop.run_sync(jobs.startup)
    yield mongo, jobs
    io_loop.run_sync(lambda: client.drop_database(db.name))
    io_loop.run_sync(client.close)


@pytest.fixture(params=["sqlite", "mongo"])
def outbox(request: pytest.FixtureRequest, tmp_path: Path, offload: Offload,
           io_loop: IOLoop) -> Iterator[Any]:
    """A started webhook outbox on every metadata backend (the stand-in for MongoDB, a
    database of its own per test)."""
    if request.param == "sqlite":
        sqlite = SqliteMetadataStore(tmp_path / "meta.sqlite3", offload)
        io_loop.run_sync(sqlite.startup)
        box: Any = SqliteOutbox(sqlite)
        io_loop.run_sync(box.startup)
        yield box
        io_loop.run_sync(sqlite.close)
        return
    client = make_client(request.getfixturevalue("standin").uri(fresh_database()))
    db = database_of(client)
    box = MongoOutbox(db)
    io_loop.run_sync(box.startup)
    yield box
    io_loop.run_sync(lambda: client.drop_database(db.name))
    io_loop.run_sync(client.close)
