"""Shared fixtures: in-process apps, a residue probe, and a guard that fails any test during
which the server logged an unexpected error (Tornado's habit).

Stacks. An in-process HTTP test runs once, on the embedded default (disk + SQLite), unless it
is marked ``@pytest.mark.stores``: then it runs on every stack of ``STACKS`` — the embedded
default, GridFS + MongoDB, disk + MongoDB. Most HTTP tests check the web layer (parsing, caps,
status codes, headers, CORS), which is the same whatever stores sit underneath, and every store
is checked on its own real resource by the contract suites in tests/contract; running all of
them on three stacks only tripled the run. The ``stores`` smoke set is the tests whose path goes
through the stores end to end: an upload stored and read back, a multi-file commit, aborts after
bytes reached the store, ranges, delete, listing, tus state and partial blobs, expiry and sweep.
A new store is one more entry in ``STACKS`` (and its settings in ``config``). A module that
needs one stack overrides ``stack`` (the fault tests, GridFS interoperability).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.web import Application

from tests.azure_support import Azurite, start_azurite
from tests.gcs_support import GcsEmulator, start_gcs_emulator
from tests.mongo_support import STACKS, Standin, fresh_database, start_standin
from tests.s3_support import S3Service, start_s3
from tornado_files.app import build_runner, build_services, make_app
from tornado_files.config import Config, build_config
from tornado_files.processing.runner import JobRunner
from tornado_files.services import Services
from tornado_files.storage.disk import MARKER
from tornado_files.web.edge import build_http_server

# Runs under the stand-in's own Python 3.13 environment, never imported here.
collect_ignore = ["standin_server.py"]


@pytest.fixture
def io_loop() -> Iterator[IOLoop]:
    """pytest-tornado's loop, minus its leak: Tornado's ``IOLoop()`` asks asyncio for the
    "old" current loop and so creates one that nobody closes. Here the asyncio loop is made
    explicitly, set as current, and closed afterwards."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    io = IOLoop.current()
    yield io
    io.close(all_fds=True)
    asyncio.set_event_loop(None)
    if not loop.is_closed():
        loop.close()


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    """Override in a test module (or parametrize) to configure routes, CORS, limits."""
    return {}


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def standin() -> Iterator[Standin]:
    """One MongoDB stand-in for the whole run (or the server TORNADO_FILES_TEST_MONGODB_URI
    names); each test gets a database of its own."""
    server = start_standin()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_service() -> Iterator[S3Service]:
    """One moto S3 server for the whole run (or the service TORNADO_FILES_TEST_S3_URI names);
    each test makes a bucket of its own."""
    service = start_s3()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """One Azurite for the whole run; each test makes a container of its own."""
    server = start_azurite()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[GcsEmulator]:
    """One gcp-storage-emulator for the whole run; each test makes a bucket of its own."""
    server = start_gcs_emulator()
    yield server
    server.stop()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``@pytest.mark.stores`` runs the test on every stack (see the module docstring)."""
    if metafunc.definition.get_closest_marker("stores") is None:
        return
    if "stack" not in metafunc.fixturenames:
        pytest.fail(f"{metafunc.definition.nodeid} is marked stores but starts no in-process "
                    "server", pytrace=False)
    metafunc.parametrize("stack", STACKS, indirect=True)


@pytest.fixture
def stack(request: pytest.FixtureRequest) -> str:
    """The configuration of the in-process server: the embedded default (disk + SQLite), or,
    for tests marked ``stores``, each of ``STACKS`` in turn."""
    return str(getattr(request, "param", "embedded"))


@pytest.fixture
def mongo_uri(stack: str, request: pytest.FixtureRequest) -> Iterator[str | None]:
    if not stack.startswith("mongo"):
        yield None
        return
    server: Standin = request.getfixturevalue("standin")
    uri = server.uri(fresh_database())
    yield uri
    with MongoClient(uri) as client:
        client.drop_database(client.get_default_database())


@pytest.fixture
def config(data_dir: Path, config_overrides: dict[str, Any], mongo_uri: str | None,
           stack: str) -> Config:
    settings = dict(config_overrides)
    if mongo_uri is not None:
        settings.setdefault("mongodb_uri", mongo_uri)
        settings.setdefault("storage", "disk" if stack == "mongo-disk" else "gridfs")
    base = build_config(settings, {}, {})
    return replace(base, data_dir=data_dir, linger_seconds=min(base.linger_seconds, 1.0))


@pytest.fixture
def services(config: Config, io_loop: IOLoop) -> Iterator[Services]:
    built = build_services(config)
    io_loop.run_sync(built.startup)
    yield built
    io_loop.run_sync(built.close)


@pytest.fixture
def runner(services: Services, io_loop: IOLoop) -> Iterator[JobRunner]:
    """The media job runner of ``services``, started (its worker processes start with the
    first job), stopped at the end."""
    started = build_runner(services, poll=0.1)
    io_loop.add_callback(started.start)
    yield started
    io_loop.run_sync(started.stop, timeout=20)


@pytest.fixture
def app(services: Services) -> Application:
    return make_app(services)


@pytest.fixture
def http_server(request: pytest.FixtureRequest, io_loop: IOLoop, _unused_port: Any,
                app: Application) -> Iterator[HTTPServer]:
    """pytest-tornado's server, but with the same chunk size and body limit as production."""
    server = build_http_server(app, max_body_size=1024 * 1024)
    server.add_socket(_unused_port[0])
    yield server
    server.stop()
    if hasattr(server, "close_all_connections"):
        io_loop.run_sync(server.close_all_connections, timeout=5)


class Residue:
    """What a request left behind: files under the data directory, rows in SQLite, and
    (with MongoDB) GridFS files and chunk documents and file records."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def files(self) -> list[str]:
        found = []
        for root, _dirs, names in os.walk(self.data_dir):
            for name in names:
                rel = os.path.relpath(os.path.join(root, name), self.data_dir)
                # The store's marker (store_identity) is no residue of a request.
                if not rel.startswith("metadata.sqlite3") and name != MARKER:
                    found.append(rel)
        return sorted(found)

    def blobs(self) -> list[str]:
        return [f for f in self.files() if f.startswith("blobs" + os.sep)]

    def temp_files(self) -> list[str]:
        return [f for f in self.files() if not f.startswith("blobs" + os.sep)]

    def rows(self) -> int:
        with closing(sqlite3.connect(self.data_dir / "metadata.sqlite3")) as db:
            return int(db.execute("SELECT COUNT(*) FROM files").fetchone()[0])

    def uploads(self) -> int:
        """Unfinished resumable uploads (tus state)."""
        with closing(sqlite3.connect(self.data_dir / "metadata.sqlite3")) as db:
            return int(db.execute("SELECT COUNT(*) FROM uploads").fetchone()[0])

    def intents(self) -> list[str]:
        """Keys the intent journal still names (work left for the sweeper)."""
        with closing(sqlite3.connect(self.data_dir / "metadata.sqlite3")) as db:
            return sorted(row[0] for row in db.execute("SELECT key FROM intents"))

    def close(self) -> None:
        return None

    def assert_clean(self, committed: int = 0, derivatives: int = 0) -> None:
        """Nothing but ``committed`` records, their blobs and ``derivatives`` derivative
        images (docs/media.md)."""
        assert self.temp_files() == [], "temporary or partial files left behind"
        assert len(self.blobs()) == committed + derivatives, f"blobs: {self.blobs()}"
        assert self.rows() == committed
        assert self.uploads() == 0, "upload state left behind"
        assert self.intents() == [], "intents left for the sweeper"


class MongoResidue(Residue):
    def __init__(self, data_dir: Path, uri: str, bucket: str) -> None:
        super().__init__(data_dir)
        self.client: MongoClient[dict[str, Any]] = MongoClient(uri)
        db = self.client.get_default_database()
        self.records = db["files"]
        self.gridfs_files = db[f"{bucket}.files"]
        self.gridfs_chunks = db[f"{bucket}.chunks"]

    def blobs(self) -> list[str]:
        return super().blobs() + [str(d["_id"]) for d in self.gridfs_files.find({}, {"_id": 1})]

    def temp_files(self) -> list[str]:
        complete = {d["_id"] for d in self.gridfs_files.find({}, {"_id": 1})}
        # Chunks counted per owner with an aggregation (never ``distinct``: its reply is
        # capped at 16 MiB).
        owners = self.gridfs_chunks.aggregate(
            [{"$group": {"_id": "$files_id", "chunks": {"$sum": 1}}}])
        return super().temp_files() + [f"{d['chunks']} chunk(s) of {d['_id']}" for d in owners
                                       if d["_id"] not in complete]

    def rows(self) -> int:
        return int(self.records.count_documents({}))

    def uploads(self) -> int:
        return int(self.client.get_default_database()["uploads"].count_documents({}))

    def intents(self) -> list[str]:
        return sorted(d["key"] for d in self.client.get_default_database()["intents"].find())

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def residue(data_dir: Path, config: Config) -> Iterator[Residue]:
    probe = (MongoResidue(data_dir, config.mongodb_uri, config.gridfs_bucket)
             if config.mongodb_uri else Residue(data_dir))
    yield probe
    probe.close()


class _ErrorTrap(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def fail_on_logged_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test during which the server logs an ERROR fails, unless it is marked
    ``@pytest.mark.allow_error_logs`` because it provokes one on purpose."""
    trap = _ErrorTrap()
    root = logging.getLogger()
    root.addHandler(trap)
    yield
    root.removeHandler(trap)
    if request.node.get_closest_marker("allow_error_logs") is None and trap.records:
        lines = "; ".join(f"{r.name}: {r.getMessage()}" for r in trap.records[:3])
        pytest.fail(f"unexpected error logged: {lines}")


@pytest.fixture
def base_url(http_port: int) -> str:
    # 127.0.0.1, not "localhost": the test server listens on IPv4 loopback only.
    return f"http://127.0.0.1:{http_port}"
