"""Shared fixtures: in-process apps on the embedded default, a residue probe, and a guard
that fails any test during which the server logged an unexpected error (Tornado's habit)."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.web import Application

from tornado_files.app import build_services, make_app
from tornado_files.config import Config, build_config
from tornado_files.services import Services


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


@pytest.fixture
def config(data_dir: Path, config_overrides: dict[str, Any]) -> Config:
    base = build_config(config_overrides, {}, {})
    return replace(base, data_dir=data_dir, linger_seconds=min(base.linger_seconds, 1.0))


@pytest.fixture
def services(config: Config, io_loop: IOLoop) -> Iterator[Services]:
    built = build_services(config)
    io_loop.run_sync(built.startup)
    yield built
    io_loop.run_sync(built.close)


@pytest.fixture
def app(services: Services) -> Application:
    return make_app(services)


@pytest.fixture
def http_server(request: pytest.FixtureRequest, io_loop: IOLoop, _unused_port: Any,
                app: Application) -> Iterator[HTTPServer]:
    """pytest-tornado's server, but with the same chunk size and body limit as production."""
    from tornado_files.cli import READ_CHUNK

    server = HTTPServer(app, max_body_size=1024 * 1024, chunk_size=READ_CHUNK)
    server.add_socket(_unused_port[0])
    yield server
    server.stop()
    if hasattr(server, "close_all_connections"):
        io_loop.run_sync(server.close_all_connections, timeout=5)


class Residue:
    """What a request left behind: files under the data directory and rows in SQLite."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def files(self) -> list[str]:
        found = []
        for root, _dirs, names in os.walk(self.data_dir):
            for name in names:
                rel = os.path.relpath(os.path.join(root, name), self.data_dir)
                if not rel.startswith("metadata.sqlite3"):
                    found.append(rel)
        return sorted(found)

    def blobs(self) -> list[str]:
        return [f for f in self.files() if f.startswith("blobs" + os.sep)]

    def temp_files(self) -> list[str]:
        return [f for f in self.files() if not f.startswith("blobs" + os.sep)]

    def rows(self) -> int:
        with sqlite3.connect(self.data_dir / "metadata.sqlite3") as db:
            return int(db.execute("SELECT COUNT(*) FROM files").fetchone()[0])

    def assert_clean(self, committed: int = 0) -> None:
        """Nothing but ``committed`` blobs and exactly as many records."""
        assert self.temp_files() == [], "temporary files left behind"
        assert len(self.blobs()) == committed, f"blobs: {self.blobs()}"
        assert self.rows() == committed


@pytest.fixture
def residue(data_dir: Path) -> Residue:
    return Residue(data_dir)


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
