"""The readiness probe's store checks (tornado_files/health.py): bounded by a deadline from the
start of each check, one check at a time per store, and start-up's bounded store steps. The
pings here are plain coroutines standing in for a store's ``ping``; the e2e suite
(tests/e2e/test_object_stall.py) stalls real stand-ins."""

from __future__ import annotations

import asyncio
import time

import pytest

from tornado_files.config import ConfigError
from tornado_files.health import CheckStalled, StoreChecks, answering_within


class Store:
    """A ping that waits until ``answer`` is set, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.answer = asyncio.Event()
        self.fails = False

    async def ping(self) -> None:
        self.calls += 1
        await self.answer.wait()
        if self.fails:
            raise OSError("the store said no")

    def unusable(self) -> ConfigError:
        return ConfigError("cannot write to the test store")


@pytest.mark.gen_test
async def test_a_stalled_check_fails_at_its_deadline_and_later_probes_join_it() -> None:
    checks, store = StoreChecks(deadline=0.2), Store()
    began = time.monotonic()
    with pytest.raises(CheckStalled):
        await checks.check("s", store.ping)
    assert 0.15 < time.monotonic() - began < 1.0
    began = time.monotonic()
    for _ in range(10):  # the check is older than its deadline: each probe answers at once
        with pytest.raises(CheckStalled):
            await checks.check("s", store.ping)
    assert time.monotonic() - began < 0.1
    assert store.calls == 1
    assert checks.running("s")
    store.answer.set()  # the store answers again: the next probe runs a new check
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not checks.running("s")
    await checks.check("s", store.ping)
    assert store.calls == 2


@pytest.mark.gen_test
async def test_probes_during_a_young_check_wait_for_its_answer() -> None:
    checks, store = StoreChecks(deadline=5.0), Store()
    first = asyncio.ensure_future(checks.check("s", store.ping))
    second = asyncio.ensure_future(checks.check("s", store.ping))
    await asyncio.sleep(0.05)
    store.fails = True
    store.answer.set()
    for probe in (first, second):
        with pytest.raises(OSError, match="said no"):
            await probe
    assert store.calls == 1


@pytest.mark.gen_test
async def test_start_up_steps_give_the_stores_own_line_at_their_deadline() -> None:
    store = Store()
    with pytest.raises(ConfigError, match="cannot write to the test store"):
        async with answering_within(store, 0.1):
            await store.ping()
    async with answering_within(store, 1.0):  # in time: nothing to say
        await asyncio.sleep(0)
