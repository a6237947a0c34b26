"""The Outbox contract (webhook deliveries waiting to be sent), run against both metadata
backends (``outbox`` fixture: SQLite, and MongoDB on the stand-in). Every moment is passed
explicitly, so due times and lease boundaries are exact."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tornado_files.models import Delivery

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
TICK = timedelta(microseconds=1)


def delivery(n: int, due: datetime = T0, event: str = "file.created") -> Delivery:
    # Bytes that are not UTF-8 too: the body is stored exactly as signed.
    return Delivery(id=f"{n:032x}", event=event, url=f"http://127.0.0.1:9/{n}",
                    body=b'{"n":%d}\xff' % n, created=T0, due=due)


def plain(claimed: Delivery) -> Delivery:
    """The delivery as it was added (a claim sets its token and moves its due time)."""
    return Delivery(claimed.id, claimed.event, claimed.url, claimed.body, claimed.created,
                    T0, claimed.attempts)


@pytest.mark.gen_test
async def test_added_deliveries_come_back_exactly_earliest_due_first(outbox: Any) -> None:
    await outbox.add_deliveries([delivery(2, T0 + MINUTE), delivery(1, T0 + 2 * MINUTE),
                                 delivery(3)])
    await outbox.add_deliveries([delivery(3, T0 + MINUTE)])  # the same id again: kept as is
    assert await outbox.count_deliveries(10) == 3
    assert await outbox.count_deliveries(2) == 2
    assert await outbox.claim_deliveries("a" * 32, T0 + 10 * MINUTE, T0 - TICK, 10) == []
    first = await outbox.claim_deliveries("a" * 32, T0 + 10 * MINUTE, T0 + MINUTE, 10)
    assert sorted(d.id for d in first) == [delivery(2).id, delivery(3).id]
    assert all(d.token == "a" * 32 for d in first)
    assert {plain(d) for d in first} == {delivery(2), delivery(3)}


@pytest.mark.gen_test
async def test_a_claimed_delivery_is_nobody_elses_until_its_lease_runs_out(outbox: Any) -> None:
    await outbox.add_deliveries([delivery(1)])
    assert len(await outbox.claim_deliveries("a" * 32, T0 + MINUTE, T0, 5)) == 1
    assert await outbox.claim_deliveries("b" * 32, T0 + 2 * MINUTE, T0 + MINUTE, 5) == []
    again = await outbox.claim_deliveries("b" * 32, T0 + 2 * MINUTE, T0 + MINUTE + TICK, 5)
    assert [d.id for d in again] == [delivery(1).id]
    # The first holder lost it: it can neither finish nor retry it.
    assert not await outbox.finish_delivery(delivery(1).id, "a" * 32)
    assert not await outbox.retry_delivery(delivery(1).id, "a" * 32, T0)
    assert await outbox.finish_delivery(delivery(1).id, "b" * 32)
    assert await outbox.count_deliveries(5) == 0


@pytest.mark.gen_test
async def test_retry_counts_the_attempt_and_makes_it_due_later(outbox: Any) -> None:
    await outbox.add_deliveries([delivery(1)])
    [claimed] = await outbox.claim_deliveries("a" * 32, T0 + MINUTE, T0, 5)
    assert await outbox.retry_delivery(claimed.id, "a" * 32, T0 + 5 * MINUTE)
    assert await outbox.claim_deliveries("b" * 32, T0 + MINUTE, T0 + 5 * MINUTE - TICK, 5) == []
    [again] = await outbox.claim_deliveries("b" * 32, T0 + 6 * MINUTE, T0 + 5 * MINUTE, 5)
    assert (again.id, again.attempts, again.body) == (claimed.id, 1, delivery(1).body)


@pytest.mark.gen_test
async def test_concurrent_claimers_never_share_a_delivery(outbox: Any) -> None:
    await outbox.add_deliveries([delivery(n) for n in range(30)])
    pages = await asyncio.gather(*(
        outbox.claim_deliveries(f"{t:032x}", T0 + MINUTE, T0, 4) for t in range(10)))
    ids = [d.id for page in pages for d in page]
    assert len(ids) == len(set(ids)) == 30
    assert all(len(page) <= 4 for page in pages)
