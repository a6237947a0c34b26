"""The UploadStateStore contract (tus upload state), run against every backend's real
resource: SQLite checked against its ``uploads`` rows, MongoDB against its ``uploads``
documents. Offsets move only by compare-and-set under a lease; every moment is passed
explicitly (no sleeping), so lease and expiry boundaries are exact."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from tornado.ioloop import IOLoop

from tests.mongo_support import fresh_database
from tornado_files.blocking import Offload
from tornado_files.errors import NotFound
from tornado_files.metadata.base import UploadStateStore
from tornado_files.metadata.mongo_uploads import MongoUploadStore
from tornado_files.metadata.sqlite import SqliteMetadataStore
from tornado_files.metadata.sqlite_uploads import SqliteUploadStore
from tornado_files.models import UploadState, to_micros
from tornado_files.mongo import database_of, make_client

T0 = datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
TICK = timedelta(microseconds=1)
# The stored fields this suite reads back; both backends use these names.
FIELDS = ("offset", "expires_us", "owner", "data", "mime_type", "type_os", "lease_token",
          "lease_until_us", "sha256")


def upload(n: int, **changes: Any) -> UploadState:
    base = UploadState(
        id=f"{n:032x}", route="/api/files", storage="disk", length=1000, offset=0,
        created=T0, expires=T0 + timedelta(hours=24), original_filename=f"video_{n}.mp4",
        declared_type="video/mp4")
    return replace(base, **changes)


class SqliteProbe:
    """Reads the ``uploads`` table through a connection of its own."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def row(self, upload_id: str) -> dict[str, Any] | None:
        with closing(sqlite3.connect(self.path)) as db:
            db.row_factory = sqlite3.Row
            row = db.execute("SELECT * FROM uploads WHERE id = ?", (upload_id,)).fetchone()
        if row is None:
            return None
        stored = {name: row[name] for name in FIELDS}
        stored["data"] = json.loads(stored["data"])
        return stored


class MongoProbe:
    """Reads the ``uploads`` collection with a synchronous client of its own."""

    def __init__(self, uri: str) -> None:
        self.client: MongoClient[dict[str, Any]] = MongoClient(uri)

    def row(self, upload_id: str) -> dict[str, Any] | None:
        doc = self.client.get_default_database()["uploads"].find_one({"_id": upload_id})
        if doc is None:
            return None
        return {name: doc.get(name) for name in FIELDS}


Backend = tuple[UploadStateStore, Any]


@pytest.fixture(params=["sqlite", "mongo"])
def backend(request: pytest.FixtureRequest, tmp_path: Path, offload: Offload,
            io_loop: IOLoop) -> Iterator[Backend]:
    if request.param == "sqlite":
        metadata = SqliteMetadataStore(tmp_path / "meta.sqlite3", offload)
        io_loop.run_sync(metadata.startup)
        store = SqliteUploadStore(metadata)
        io_loop.run_sync(store.startup)
        yield store, SqliteProbe(tmp_path / "meta.sqlite3")
        io_loop.run_sync(metadata.close)
        return
    uri = request.getfixturevalue("standin").uri(fresh_database())
    client = make_client(uri)
    mongo_store = MongoUploadStore(database_of(client))
    io_loop.run_sync(mongo_store.startup)
    probe = MongoProbe(uri)
    yield mongo_store, probe
    probe.client.drop_database(probe.client.get_default_database())
    probe.client.close()
    io_loop.run_sync(client.close)


async def claimed_at(store: UploadStateStore, state: UploadState, offset: int, token: str,
                     until: datetime) -> UploadState:
    """Create ``state``, then have ``token`` claim it and advance it to ``offset``."""
    await store.create_upload(state)
    assert await store.claim_upload(state.id, state.offset, token, until, T0) is not None
    if offset != state.offset:
        assert await store.advance_upload(state.id, token, offset, expires=state.expires,
                                          lease_until=until, mime_type=None, type_os=None)
    return await store.get_upload(state.id)


# --- round trip --------------------------------------------------------------------------

@pytest.mark.gen_test
async def test_every_field_round_trips(backend: Backend) -> None:
    store, probe = backend
    bare = upload(1, data={"name": "Überweisung “Q3” 日本.mp4", "nested": {"a": [1, None, "é"]}},
                  owner=None, lease_token=None, lease_until=None)
    full = upload(2, length=10**12, offset=123_456_789, owner="alice", data={"k": "v"},
                  created=datetime(2026, 11, 22, 12, 0, 0, 999_999,
                                   tzinfo=timezone(timedelta(hours=2))),
                  mime_type="video/mp4", type_os="ISO Media, MP4 v2",
                  lease_token="t" * 32, lease_until=T0 + MINUTE + TICK)
    # Every byte in, digest recorded: the completing state (and other route, store, type).
    done = upload(3, length=5000, offset=5000, route="/api/videos", storage="gridfs",
                  declared_type="application/octet-stream", mime_type="video/mp4",
                  type_os="ISO Media", sha256="ab" * 32)
    for state in (bare, full, done):
        await store.create_upload(state)
    assert await store.get_upload(bare.id) == bare
    assert await store.get_upload(full.id) == full
    assert await store.get_upload(done.id) == done
    assert probe.row(bare.id) == {
        "offset": 0, "expires_us": to_micros(bare.expires), "owner": None, "data": bare.data,
        "mime_type": None, "type_os": None, "lease_token": None, "lease_until_us": None,
        "sha256": None}
    assert probe.row(full.id) == {
        "offset": 123_456_789, "expires_us": to_micros(full.expires), "owner": "alice",
        "data": {"k": "v"}, "mime_type": "video/mp4", "type_os": "ISO Media, MP4 v2",
        "lease_token": "t" * 32, "lease_until_us": to_micros(T0 + MINUTE + TICK),
        "sha256": None}
    assert probe.row(done.id) == {
        "offset": 5000, "expires_us": to_micros(done.expires), "owner": None, "data": {},
        "mime_type": "video/mp4", "type_os": "ISO Media", "lease_token": None,
        "lease_until_us": None, "sha256": "ab" * 32}
    assert probe.row(bare.id) is not None


# --- claim: a compare-and-set on the offset and the lease ------------------------------------

@pytest.mark.gen_test
async def test_claim_takes_the_lease_and_returns_the_claimed_state(backend: Backend) -> None:
    store, probe = backend
    state = upload(1, offset=300, mime_type="video/mp4", type_os="ISO Media")
    await store.create_upload(state)
    holder = "tok-a"
    claimed = await store.claim_upload(state.id, 300, holder, T0 + MINUTE, T0)
    assert claimed == replace(state, lease_token=holder, lease_until=T0 + MINUTE)
    assert await store.get_upload(state.id) == claimed
    row = probe.row(state.id)
    assert row is not None
    assert (row["lease_token"], row["lease_until_us"], row["offset"]) == \
        ("tok-a", to_micros(T0 + MINUTE), 300)


@pytest.mark.gen_test
async def test_claim_at_the_wrong_offset_changes_nothing(backend: Backend) -> None:
    store, probe = backend
    state = upload(1, offset=500)
    await store.create_upload(state)
    before = probe.row(state.id)
    for offset in (0, 499, 501, 1000):
        assert await store.claim_upload(state.id, offset, "tok", T0 + MINUTE, T0) is None
    assert probe.row(state.id) == before
    assert await store.get_upload(state.id) == state
    assert await store.claim_upload("f" * 32, 0, "tok", T0 + MINUTE, T0) is None


@pytest.mark.gen_test
async def test_concurrent_claims_have_exactly_one_winner(backend: Backend) -> None:
    store, probe = backend
    states = [upload(n, offset=64) for n in range(1, 6)]
    for state in states:
        await store.create_upload(state)
    tokens = [f"tok-{i}" for i in range(8)]
    # Warm up: connections enough for every contender, so the claims truly overlap.
    await asyncio.gather(*[store.get_upload(states[0].id) for _ in tokens])
    for state in states:
        results = await asyncio.gather(
            *[store.claim_upload(state.id, 64, token, T0 + MINUTE, T0) for token in tokens])
        winners = [(t, r) for t, r in zip(tokens, results, strict=True) if r is not None]
        assert len(winners) == 1, results
        token, claimed = winners[0]
        assert claimed == replace(state, lease_token=token, lease_until=T0 + MINUTE)
        row = probe.row(state.id)
        assert row is not None
        assert row["lease_token"] == token


@pytest.mark.gen_test
async def test_a_live_lease_blocks_claims_until_it_runs_out(backend: Backend) -> None:
    store, probe = backend
    state = upload(1)
    await store.create_upload(state)
    until = T0 + MINUTE
    assert await store.claim_upload(state.id, 0, "holder", until, T0) is not None
    for now in (T0, T0 + MINUTE / 2, until):  # held through its last microsecond
        assert await store.claim_upload(state.id, 0, "thief", now + MINUTE, now) is None
    row = probe.row(state.id)
    assert row is not None
    assert (row["lease_token"], row["lease_until_us"]) == ("holder", to_micros(until))
    later = until + TICK
    successor = "next"
    taken = await store.claim_upload(state.id, 0, successor, later + MINUTE, later)
    assert taken == replace(state, lease_token=successor, lease_until=later + MINUTE)
    row = probe.row(state.id)
    assert row is not None
    assert (row["lease_token"], row["lease_until_us"]) == ("next", to_micros(later + MINUTE))


# --- advance: only the holder, only forward ----------------------------------------------

@pytest.mark.gen_test
async def test_only_the_lease_holder_advances(backend: Backend) -> None:
    store, probe = backend
    state = await claimed_at(store, upload(1), 100, "holder", T0 + MINUTE)
    before = probe.row(state.id)
    for token in ("intruder", ""):
        assert not await store.advance_upload(
            state.id, token, 200, expires=T0 + timedelta(days=2), lease_until=None,
            mime_type="text/plain", type_os="ASCII text")
    assert probe.row(state.id) == before
    assert await store.get_upload(state.id) == state
    # A lease taken over after it ran out: the old holder's token no longer advances.
    later = T0 + MINUTE + TICK
    assert await store.claim_upload(state.id, 100, "successor", later + MINUTE, later)
    assert not await store.advance_upload(state.id, "holder", 200, expires=T0,
                                          lease_until=None, mime_type=None, type_os=None)
    row = probe.row(state.id)
    assert row is not None
    assert (row["offset"], row["lease_token"]) == (100, "successor")
    assert not await store.advance_upload("f" * 32, "holder", 200, expires=T0,
                                          lease_until=None, mime_type=None, type_os=None)


@pytest.mark.gen_test
async def test_the_offset_never_goes_back(backend: Backend) -> None:
    store, probe = backend
    state = await claimed_at(store, upload(1), 400, "holder", T0 + MINUTE)
    before = probe.row(state.id)
    for smaller in (399, 0):
        assert not await store.advance_upload(
            state.id, "holder", smaller, expires=T0 + timedelta(days=2),
            lease_until=T0 + 2 * MINUTE, mime_type="video/mp4", type_os="ISO Media")
    assert probe.row(state.id) == before
    assert (await store.get_upload(state.id)).offset == 400


@pytest.mark.gen_test
async def test_advance_renews_the_lease_and_moves_the_expiry(backend: Backend) -> None:
    store, probe = backend
    state = await claimed_at(store, upload(1), 400, "holder", T0 + MINUTE)
    expires = T0 + timedelta(days=1, microseconds=7)
    # Same offset (a renewal while writing), then further on.
    for offset, until in ((400, T0 + 2 * MINUTE), (700, T0 + 3 * MINUTE)):
        assert await store.advance_upload(state.id, "holder", offset, expires=expires,
                                          lease_until=until, mime_type=None, type_os=None)
        assert await store.get_upload(state.id) == replace(
            state, offset=offset, expires=expires, lease_until=until)
        row = probe.row(state.id)
        assert row is not None
        assert (row["offset"], row["expires_us"], row["lease_token"], row["lease_until_us"]) \
            == (offset, to_micros(expires), "holder", to_micros(until))
        expires += timedelta(hours=1)


@pytest.mark.gen_test
async def test_advance_without_a_lease_releases_it(backend: Backend) -> None:
    store, probe = backend
    state = await claimed_at(store, upload(1), 100, "holder", T0 + MINUTE)
    assert await store.advance_upload(state.id, "holder", 250, expires=T0 + timedelta(days=1),
                                      lease_until=None, mime_type=None, type_os=None)
    row = probe.row(state.id)
    assert row is not None
    assert (row["offset"], row["lease_token"], row["lease_until_us"]) == (250, None, None)
    released = await store.get_upload(state.id)
    assert (released.lease_token, released.lease_until) == (None, None)
    # Released: the old token is spent, and anyone may claim at the new offset at once,
    # long before the old lease would have run out.
    assert not await store.advance_upload(state.id, "holder", 300, expires=T0,
                                          lease_until=None, mime_type=None, type_os=None)
    assert await store.claim_upload(state.id, 100, "late", T0 + MINUTE, T0) is None
    successor = "next"
    claimed = await store.claim_upload(state.id, 250, successor, T0 + MINUTE, T0)
    assert claimed == replace(released, lease_token=successor, lease_until=T0 + MINUTE)


@pytest.mark.gen_test
async def test_sniffed_type_is_set_once_and_kept(backend: Backend) -> None:
    store, probe = backend
    state = await claimed_at(store, upload(1), 0, "holder", T0 + MINUTE)
    steps: list[tuple[int, str | None, str | None]] = [
        (100, "video/mp4", "ISO Media, MP4 v2"),  # the first bytes were sniffed
        (200, None, None),  # later PATCHes pass nothing
        (300, "video/mp4", None),  # each field is kept on its own
        (400, None, "ISO Media, MP4 v2"),
    ]
    for offset, mime_type, type_os in steps:
        assert await store.advance_upload(state.id, "holder", offset, expires=state.expires,
                                          lease_until=T0 + MINUTE, mime_type=mime_type,
                                          type_os=type_os)
        kept = await store.get_upload(state.id)
        assert (kept.offset, kept.mime_type, kept.type_os) == \
            (offset, "video/mp4", "ISO Media, MP4 v2"), (mime_type, type_os)
        row = probe.row(state.id)
        assert row is not None
        assert (row["mime_type"], row["type_os"]) == ("video/mp4", "ISO Media, MP4 v2")


# --- delete ----------------------------------------------------------------------------------

@pytest.mark.gen_test
async def test_delete_once(backend: Backend) -> None:
    store, probe = backend
    keep, gone = upload(1), upload(2)
    await store.create_upload(keep)
    await claimed_at(store, gone, 10, "holder", T0 + MINUTE)
    assert await store.delete_upload(gone.id) is True
    assert probe.row(gone.id) is None
    assert await store.delete_upload(gone.id) is False
    with pytest.raises(NotFound):
        await store.get_upload(gone.id)
    assert await store.claim_upload(gone.id, 10, "tok", T0 + MINUTE, T0) is None
    assert not await store.advance_upload(gone.id, "holder", 20, expires=T0,
                                          lease_until=None, mime_type=None, type_os=None)
    assert probe.row(keep.id) is not None
    assert await store.get_upload(keep.id) == keep


# --- expiry ----------------------------------------------------------------------------------

@pytest.mark.gen_test
async def test_expired_uploads_are_past_expiry_and_unleased(backend: Backend) -> None:
    store, _ = backend
    now = T0 + timedelta(days=2)
    past = now - timedelta(hours=1)
    idle = upload(1, expires=past)  # listed
    stale_lease = upload(2, expires=past)  # listed: its lease ran out
    live_lease = upload(3, expires=past)  # a PATCH is writing: not listed
    at_the_moment = upload(4, expires=now)  # expires strictly before now: not yet
    fresh = upload(5, expires=now + timedelta(hours=1))  # not listed
    for state in (idle, stale_lease, live_lease, at_the_moment, fresh):
        await store.create_upload(state)
    assert await store.claim_upload(stale_lease.id, 0, "old", now - TICK, T0)
    assert await store.claim_upload(live_lease.id, 0, "live", now, T0)
    expired = await store.expired_uploads(now)
    assert sorted(s.id for s in expired) == [idle.id, stale_lease.id]
    assert {s.id: s for s in expired} == {
        idle.id: idle, stale_lease.id: await store.get_upload(stale_lease.id)}
    assert await store.expired_uploads(past) == []


# --- completion ------------------------------------------------------------------------------

@pytest.mark.gen_test
async def test_completion_is_recorded_with_the_last_advance(backend: Backend) -> None:
    store, probe = backend
    state = await claimed_at(store, upload(1), 600, "t", T0 + MINUTE)
    assert not state.completing
    assert await store.completing_uploads(10) == []
    digest = "ab" * 32
    assert await store.advance_upload(state.id, "t", 1000, expires=state.expires,
                                      lease_until=None, mime_type="video/mp4",
                                      type_os="ISO Media", sha256=digest)
    done = await store.get_upload(state.id)
    assert (done.offset, done.sha256, done.mime_type) == (1000, digest, "video/mp4")
    assert done.completing
    assert [s.id for s in await store.completing_uploads(10)] == [state.id]
    # A later advance without a digest (e.g. a lease release) keeps it.
    assert await store.claim_upload(state.id, 1000, "u", T0 + MINUTE, T0)
    assert await store.advance_upload(state.id, "u", 1000, expires=state.expires,
                                      lease_until=None, mime_type=None, type_os=None)
    assert (await store.get_upload(state.id)).sha256 == digest
    assert probe.row(state.id)["offset"] == 1000


@pytest.mark.gen_test
async def test_a_completing_upload_never_expires_and_completions_are_paged(
        backend: Backend) -> None:
    store, _ = backend
    now = T0 + timedelta(days=2)
    past = now - timedelta(hours=1)
    for n in range(5):
        await store.create_upload(upload(n, expires=past, offset=1000, length=1000,
                                         mime_type="video/mp4", type_os="x", sha256="cd" * 32))
    unfinished = upload(9, expires=past)
    await store.create_upload(unfinished)
    assert [s.id for s in await store.expired_uploads(now)] == [unfinished.id]
    assert len(await store.completing_uploads(3)) == 3
    assert len(await store.completing_uploads(10)) == 5


# --- counting: the global cap on unfinished uploads (issue 13) ---------------------------

@pytest.mark.gen_test
async def test_count_uploads_counts_every_state_up_to_its_limit(backend: Backend) -> None:
    store, _probe = backend
    assert await store.count_uploads(limit=10) == 0
    for n in range(5):
        # Expired and completing uploads count too: they hold storage until swept or done.
        await store.create_upload(upload(n, expires=T0 - MINUTE if n == 1 else T0 + MINUTE,
                                         sha256="ab" * 32 if n == 2 else None))
    assert await store.count_uploads(limit=10) == 5
    assert await store.count_uploads(limit=3) == 3  # bounded work: it stops at the limit
    await store.delete_upload(upload(0).id)
    assert await store.count_uploads(limit=10) == 4
