"""The JobQueue contract (media jobs kept on the file records), run against both metadata
backends (``media`` fixture: SQLite, and MongoDB on the stand-in). Every moment is passed
explicitly (no sleeping), so due times and lease boundaries are exact: a lease held until
``until`` is held at ``until`` and free one microsecond later; a job due at ``due`` is
claimable at ``due``."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from tests.contract.test_metadata_store import T0, record
from tornado_files.errors import NotFound
from tornado_files.models import Derivative, FileRecord, JobClaim

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
TICK = timedelta(microseconds=1)
LATER = T0 + timedelta(days=1)  # every record(n) of these tests is due by then


def pending(n: int, **changes: Any) -> FileRecord:
    return record(n, processing="pending", **changes)


def derivative(n: int, kind: str = "thumbnail") -> Derivative:
    return Derivative(kind=kind, key=f"d{n:031x}", size=1000 + n, media_type="image/webp",
                      width=320, height=240, sha256=f"{n:064x}")


async def claim(jobs: Any, token: str, now: Any = LATER, lease: timedelta = MINUTE
                ) -> JobClaim | None:
    claimed: JobClaim | None = await jobs.claim_job(token, now + lease, now)
    return claimed


@pytest.mark.gen_test
async def test_a_pending_record_is_due_at_once_and_other_states_never(media):
    store, jobs = media
    await store.insert_many([record(2, processing="none"), record(3, processing="done"),
                             record(4, processing="failed"), pending(5)])
    # Due at its ``added`` time, not before.
    assert await claim(jobs, "a" * 32, now=pending(5).added - TICK) is None
    claimed = await claim(jobs, "a" * 32, now=pending(5).added, lease=3 * (LATER - T0))
    assert claimed == JobClaim(pending(5), "a" * 32, 1)
    assert await claim(jobs, "b" * 32, now=LATER + HOUR) is None  # the others: never
    assert await jobs.count_jobs(10) == 1


@pytest.mark.gen_test
async def test_claims_take_the_earliest_due_first(media):
    store, jobs = media
    await store.insert_many([pending(7), pending(3), record(1), pending(5),
                             pending(4, added=T0 + timedelta(seconds=9))])
    order = [await claim(jobs, f"{n:032x}") for n in range(5)]
    assert [c.record.id if c else None for c in order] == [
        record(3).id, record(5).id, record(7).id, record(4).id, None]


@pytest.mark.gen_test
async def test_a_lease_keeps_the_job_until_it_runs_out(media):
    store, jobs = media
    await store.insert_many([pending(1)])
    first = await claim(jobs, "a" * 32, now=LATER, lease=MINUTE)
    assert first is not None
    assert first.attempt == 1
    assert await claim(jobs, "b" * 32, now=LATER + MINUTE) is None  # held through its end
    second = await claim(jobs, "b" * 32, now=LATER + MINUTE + TICK)
    assert second is not None
    assert (second.record.id, second.attempt) == (record(1).id, 2)
    third = await claim(jobs, "c" * 32, now=LATER + 3 * MINUTE)
    assert third is not None
    assert third.attempt == 3
    # The lost leases can do nothing any more.
    for token in ("a" * 32, "b" * 32):
        assert not await jobs.renew_job(record(1).id, token, LATER + HOUR)
        assert not await jobs.retry_job(record(1).id, token, LATER)
        assert await jobs.finish_job(record(1).id, token, processing="done", metadata={},
                                     derivatives=[]) is None
    assert (await store.get(record(1).id)).processing == "pending"


@pytest.mark.gen_test
async def test_renewing_extends_the_lease_only_for_its_holder(media):
    store, jobs = media
    await store.insert_many([pending(1)])
    assert await claim(jobs, "a" * 32, lease=MINUTE) is not None
    assert not await jobs.renew_job(record(1).id, "x" * 32, LATER + HOUR)
    assert not await jobs.renew_job("f" * 32, "a" * 32, LATER + HOUR)
    assert await jobs.renew_job(record(1).id, "a" * 32, LATER + HOUR)
    assert await claim(jobs, "b" * 32, now=LATER + 2 * MINUTE) is None
    assert await claim(jobs, "b" * 32, now=LATER + HOUR) is None
    again = await claim(jobs, "b" * 32, now=LATER + HOUR + TICK)
    assert again is not None
    assert again.attempt == 2


@pytest.mark.gen_test
async def test_finishing_sets_the_results_and_returns_what_they_replaced(media):
    store, jobs = media
    await store.insert_many([pending(1, metadata={"old": 1})])
    assert await claim(jobs, "a" * 32) is not None
    # A wrong token changes nothing.
    assert await jobs.finish_job(record(1).id, "x" * 32, processing="done", metadata={},
                                 derivatives=[]) is None
    new = [derivative(1), derivative(2, "square_thumbnail"), derivative(3, "fullsize")]
    finished = await jobs.finish_job(record(1).id, "a" * 32, processing="done",
                                     metadata={"width": 640, "exif": {"Make": "X"}},
                                     derivatives=new)
    wanted = replace(pending(1), processing="done", metadata={"width": 640, "exif": {"Make": "X"}},
                     derivatives=tuple(new))
    assert finished == (wanted, ())
    assert await store.get(record(1).id) == wanted  # ``modified`` unchanged
    assert await jobs.count_jobs(10) == 0
    assert await claim(jobs, "b" * 32, now=LATER + HOUR) is None
    # The lease is released: the same token cannot finish twice.
    assert await jobs.finish_job(record(1).id, "a" * 32, processing="failed", metadata={},
                                 derivatives=[]) is None
    # A new run replaces the derivatives; the caller gets the old ones (a reused key stays).
    await jobs.requeue_job(record(1).id, LATER)
    assert await claim(jobs, "c" * 32) is not None
    redone = await jobs.finish_job(record(1).id, "c" * 32, processing="failed", metadata={},
                                   derivatives=[derivative(3, "fullsize"), derivative(4)])
    assert redone is not None
    assert redone[0].derivatives == (derivative(3, "fullsize"), derivative(4))
    assert redone[0].processing == "failed"
    assert redone[1] == (derivative(1), derivative(2, "square_thumbnail"))
    with pytest.raises(ValueError, match="done, failed or none"):
        await jobs.finish_job(record(1).id, "c" * 32, processing="pending", metadata={},
                              derivatives=[])


@pytest.mark.gen_test
async def test_a_deleted_file_has_no_job(media):
    store, jobs = media
    await store.insert_many([pending(1), pending(2)])
    claimed = await claim(jobs, "a" * 32)
    assert claimed is not None
    assert claimed.record.id == record(1).id
    await store.delete(record(1).id)
    await store.delete(record(2).id)
    assert await jobs.finish_job(record(1).id, "a" * 32, processing="done", metadata={},
                                 derivatives=[derivative(1)]) is None
    assert not await jobs.renew_job(record(1).id, "a" * 32, LATER + HOUR)
    assert not await jobs.retry_job(record(1).id, "a" * 32, LATER)
    assert await claim(jobs, "b" * 32, now=LATER + HOUR) is None
    assert await jobs.count_jobs(10) == 0
    assert not await store.has_blob("disk", derivative(1).key)


@pytest.mark.gen_test
async def test_a_retried_job_is_due_again_at_its_time(media):
    store, jobs = media
    await store.insert_many([pending(1)])
    assert await claim(jobs, "a" * 32) is not None
    assert not await jobs.retry_job(record(1).id, "x" * 32, LATER)
    assert await jobs.retry_job(record(1).id, "a" * 32, LATER + HOUR)
    assert not await jobs.retry_job(record(1).id, "a" * 32, LATER)  # released
    assert (await store.get(record(1).id)).processing == "pending"
    assert await jobs.count_jobs(10) == 1
    assert await claim(jobs, "b" * 32, now=LATER + HOUR - TICK) is None
    again = await claim(jobs, "b" * 32, now=LATER + HOUR)
    assert again is not None
    assert (again.token, again.attempt) == ("b" * 32, 2)


@pytest.mark.gen_test
async def test_requeue_makes_a_fresh_job_and_drops_a_running_lease(media):
    store, jobs = media
    done = record(1, processing="done", metadata={"w": 1}, derivatives=(derivative(1),))
    await store.insert_many([done])
    assert await claim(jobs, "a" * 32) is None
    requeued = await jobs.requeue_job(record(1).id, LATER)
    assert requeued == replace(done, processing="pending")  # metadata, derivatives stay
    assert await claim(jobs, "a" * 32, now=LATER - TICK) is None
    first = await claim(jobs, "a" * 32, now=LATER)
    assert first is not None
    assert first.attempt == 1
    # Requeued while it runs: claimable at once, counting afresh; the old run cannot finish.
    await jobs.requeue_job(record(1).id, LATER + TICK)
    second = await claim(jobs, "b" * 32, now=LATER + TICK)
    assert second is not None
    assert second.attempt == 1
    assert await jobs.finish_job(record(1).id, "a" * 32, processing="done", metadata={},
                                 derivatives=[]) is None
    assert not await jobs.renew_job(record(1).id, "a" * 32, LATER + HOUR)
    finished = await jobs.finish_job(record(1).id, "b" * 32, processing="done", metadata={},
                                     derivatives=[derivative(2)])
    assert finished is not None
    assert finished[1] == (derivative(1),)
    with pytest.raises(NotFound):
        await jobs.requeue_job("f" * 32, LATER)


@pytest.mark.gen_test
async def test_counting_jobs_is_bounded(media):
    store, jobs = media
    await store.insert_many([pending(n) for n in range(1, 6)] + [record(9)])
    assert await jobs.count_jobs(3) == 3
    assert await jobs.count_jobs(10) == 5
    assert await jobs.count_jobs(0) == 0
    assert await claim(jobs, "a" * 32) is not None
    assert await jobs.count_jobs(10) == 5  # a running job is still pending


@pytest.mark.gen_test(timeout=30)
async def test_concurrent_claims_never_share_a_job(media):
    store, jobs = media
    await store.insert_many([pending(n) for n in range(1, 5)])
    claims = await asyncio.gather(*(claim(jobs, f"{n:032x}") for n in range(10)))
    taken = [c for c in claims if c is not None]
    assert sorted(c.record.id for c in taken) == [record(n).id for n in range(1, 5)]
    assert all(c.attempt == 1 for c in taken)
    assert len({c.token for c in taken}) == 4
