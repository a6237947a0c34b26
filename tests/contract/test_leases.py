"""The LeaseStore contract (metadata/base.py) against SQLite and MongoDB, each checked in its
real rows or documents, and the Singleton that picks the one process that sweeps.

Two "processes" here are two store objects with connections of their own to one SQLite file
or one MongoDB database, as two workers (or two hosts) have."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from tests.mongo_support import fresh_database
from tornado_files.metadata.mongo_leases import MongoLeaseStore
from tornado_files.metadata.sqlite import SqliteMetadataStore
from tornado_files.metadata.sqlite_leases import SqliteLeaseStore
from tornado_files.mongo import database_of, make_client
from tornado_files.singleton import Singleton, holder_identity

T0 = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
TTL = timedelta(seconds=30)


class SqliteRows:
    def __init__(self, path: Path) -> None:
        self.path = path

    def leases(self) -> dict[str, str]:
        with closing(sqlite3.connect(self.path)) as db:
            return dict(db.execute("SELECT name, holder FROM leases").fetchall())


class MongoDocuments:
    def __init__(self, uri: str) -> None:
        self.client: MongoClient[dict[str, Any]] = MongoClient(uri)
        self.db = self.client.get_default_database()

    def leases(self) -> dict[str, str]:
        return {d["_id"]: d["holder"] for d in self.db["leases"].find()}


@pytest.fixture(params=["sqlite", "mongo"])
def two(request, tmp_path, offload, io_loop) -> Iterator[tuple[Any, Any, Any]]:
    """Two lease stores on one database (as two processes see it) and a probe of it."""
    if request.param == "sqlite":
        path = tmp_path / "meta.sqlite3"
        metas = [SqliteMetadataStore(path, offload) for _ in range(2)]
        for meta in metas:
            io_loop.run_sync(meta.startup)
        yield SqliteLeaseStore(metas[0]), SqliteLeaseStore(metas[1]), SqliteRows(path)
        for meta in metas:
            io_loop.run_sync(meta.close)
        return
    uri = request.getfixturevalue("standin").uri(fresh_database())
    clients = [make_client(uri) for _ in range(2)]
    stores = [MongoLeaseStore(database_of(c)) for c in clients]
    for store in stores:
        io_loop.run_sync(store.startup)
    probe = MongoDocuments(uri)
    yield stores[0], stores[1], probe
    probe.client.drop_database(probe.db)
    probe.client.close()
    for client in clients:
        io_loop.run_sync(client.close)


@pytest.mark.gen_test
async def test_one_holder_at_a_time_until_its_lease_runs_out(two):
    first, second, probe = two
    assert await first.acquire_lease("sweeper", "a", T0 + TTL, T0)
    assert probe.leases() == {"sweeper": "a"}
    assert not await second.acquire_lease("sweeper", "b", T0 + 2 * TTL, T0 + TTL / 2)
    assert probe.leases() == {"sweeper": "a"}  # the refused attempt changed nothing
    # The holder extends it (acquire again or renew); others still cannot have it.
    assert await first.acquire_lease("sweeper", "a", T0 + 2 * TTL, T0 + TTL / 2)
    assert await first.renew_lease("sweeper", "a", T0 + 3 * TTL, T0 + TTL)
    assert not await second.acquire_lease("sweeper", "b", T0 + 4 * TTL, T0 + 2 * TTL)
    # Not renewed in time: anyone may take it, and the old holder can no longer renew.
    assert await second.acquire_lease("sweeper", "b", T0 + 5 * TTL, T0 + 3 * TTL)
    assert probe.leases() == {"sweeper": "b"}
    assert not await first.renew_lease("sweeper", "a", T0 + 6 * TTL, T0 + 3 * TTL)
    assert not await first.acquire_lease("sweeper", "a", T0 + 6 * TTL, T0 + 3 * TTL)
    assert probe.leases() == {"sweeper": "b"}


@pytest.mark.gen_test
async def test_renew_needs_a_live_lease_of_ones_own(two):
    first, second, probe = two
    assert not await first.renew_lease("sweeper", "a", T0 + TTL, T0)  # never held
    assert probe.leases() == {}
    assert await first.acquire_lease("sweeper", "a", T0 + TTL, T0)
    assert not await second.renew_lease("sweeper", "b", T0 + 2 * TTL, T0)
    # Ran out, even if nobody took it since: renewing is refused, acquiring works.
    assert not await first.renew_lease("sweeper", "a", T0 + 3 * TTL, T0 + 2 * TTL)
    assert await first.acquire_lease("sweeper", "a", T0 + 3 * TTL, T0 + 2 * TTL)


@pytest.mark.gen_test
async def test_release_frees_the_name_only_for_its_holder(two):
    first, second, probe = two
    assert await first.acquire_lease("sweeper", "a", T0 + TTL, T0)
    assert await first.acquire_lease("other", "a", T0 + TTL, T0)  # names are independent
    assert not await second.release_lease("sweeper", "b")
    assert probe.leases() == {"sweeper": "a", "other": "a"}
    assert await first.release_lease("sweeper", "a")
    assert not await first.release_lease("sweeper", "a")  # idempotent
    assert probe.leases() == {"other": "a"}
    assert await second.acquire_lease("sweeper", "b", T0 + TTL, T0)  # at once, not after TTL
    assert not await second.acquire_lease("other", "b", T0 + TTL, T0)  # still a's


@pytest.mark.gen_test(timeout=60)
async def test_of_many_racing_for_a_free_name_exactly_one_wins(two):
    first, second, probe = two
    holders = [f"h{i}" for i in range(16)]
    results = await asyncio.gather(*(
        (first if i % 2 else second).acquire_lease("sweeper", holder, T0 + TTL, T0)
        for i, holder in enumerate(holders)))
    assert sum(results) == 1
    winner = holders[results.index(True)]
    assert probe.leases() == {"sweeper": winner}


@pytest.mark.gen_test(timeout=60)
async def test_two_servers_sharing_a_store_sweep_in_only_one(two):
    first, second, _ = two
    now = [T0]
    runs: list[str] = []

    def work(name: str) -> Any:
        async def run() -> None:
            runs.append(name)
        return run

    one = Singleton(first, "sweeper", work("one"), interval=3600, ttl=30,
                    clock=lambda: now[0])
    other = Singleton(second, "sweeper", work("other"), interval=3600, ttl=30,
                      clock=lambda: now[0])
    for _ in range(3):  # many ticks: the holder sweeps once (its interval is an hour)
        await one.tick()
        await other.tick()
        await asyncio.sleep(0.01)
        now[0] += timedelta(seconds=10)
    assert runs == ["one"]
    assert (one.held, other.held) == (True, False)
    # The holder shuts down: it gives the lease up, the other takes over and sweeps at once.
    await one.stop()
    await other.tick()
    await asyncio.sleep(0.01)
    assert runs == ["one", "other"]
    # The new holder "dies" (stops renewing): after its TTL the first one takes over.
    await one.tick()
    assert not one.held
    now[0] += timedelta(seconds=31)
    await one.tick()
    await asyncio.sleep(0.01)
    assert one.held
    assert runs == ["one", "other", "one"]


def test_holders_are_told_apart_by_host_pid_and_token():
    first, second = holder_identity(), holder_identity()
    assert first != second
    host, pid, _ = first.split("/")
    assert host
    assert pid.isdigit()
