"""The Lane: ordered blocking jobs on the shared pool, with back-pressure and errors that stop
it. Real threads, real pool; events instead of sleeps decide every ordering."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tornado_files.blocking import Offload


def run(coro_fn, workers: int = 4):
    offload = Offload(workers)
    try:
        return asyncio.run(coro_fn(offload))
    finally:
        offload.shutdown()


def test_jobs_run_in_order_across_pool_threads():
    async def scenario(offload: Offload) -> tuple[list[int], set[str]]:
        lane = offload.lane(window=1 << 30)
        seen: list[int] = []
        threads: set[str] = set()

        def job(i: int) -> None:
            threads.add(threading.current_thread().name)
            seen.append(i)

        for i in range(500):
            await lane.put(lambda i=i: job(i), 1)
        await lane.drain()
        return seen, threads

    seen, threads = run(scenario)
    assert seen == list(range(500))
    assert threading.main_thread().name not in threads


def test_put_waits_while_the_window_is_full_and_resumes_when_it_drains():
    async def scenario(offload: Offload) -> tuple[bool, bool, list[str]]:
        lane = offload.lane(window=10)
        gate = threading.Event()
        done: list[str] = []
        await lane.put(lambda: (gate.wait(5), done.append("first")), 10)  # at the window
        second = asyncio.ensure_future(lane.put(lambda: done.append("second"), 5))
        await asyncio.sleep(0.05)
        blocked = not second.done()  # 15 bytes pending > window 10: the caller waits
        gate.set()
        await asyncio.wait_for(second, 5)
        await lane.drain()
        return blocked, lane.idle, done

    blocked, idle, done = run(scenario)
    assert blocked
    assert idle
    assert done == ["first", "second"]


def test_an_error_skips_later_jobs_and_is_raised_by_put_and_drain():
    async def scenario(offload: Offload) -> list[str]:
        lane = offload.lane(window=1 << 20)
        ran: list[str] = []
        gate = threading.Event()

        def fail() -> None:
            gate.wait(5)
            raise OSError(28, "No space left on device")

        await lane.put(fail, 1)
        await lane.put(lambda: ran.append("after"), 1)  # queued behind the failing job
        gate.set()
        with pytest.raises(OSError, match="No space"):
            await lane.drain()
        with pytest.raises(OSError, match="No space"):
            await lane.put(lambda: ran.append("later"), 1)
        await lane.stop()  # still safe on a failed lane
        return ran

    assert run(scenario) == []


def test_stop_skips_queued_jobs_and_waits_for_the_running_one():
    async def scenario(offload: Offload) -> list[str]:
        lane = offload.lane(window=1 << 20)
        gate = threading.Event()
        ran: list[str] = []
        await lane.put(lambda: (gate.wait(5), ran.append("running")), 1)
        for i in range(5):
            await lane.put(lambda i=i: ran.append(f"queued {i}"), 1)
        stopping = asyncio.ensure_future(lane.stop())
        await asyncio.sleep(0.05)
        assert not stopping.done()  # the running job still holds the file
        gate.set()
        await asyncio.wait_for(stopping, 5)
        return ran

    assert run(scenario) == ["running"]


def test_lanes_on_a_one_thread_pool_take_turns():
    """Each step goes to the back of the pool's queue, so a lane that always has work does
    not keep a worker to itself (32 uploads on 8 threads must all make progress)."""

    async def scenario(offload: Offload) -> list[str]:
        gate = threading.Event()
        order: list[str] = []
        holder, first, second = (offload.lane(window=1 << 20) for _ in range(3))
        await holder.put(lambda: gate.wait(5), 1)  # the only worker is busy
        for i in range(20):
            await first.put(lambda i=i: order.append(f"a{i}"), 1)
            await second.put(lambda i=i: order.append(f"b{i}"), 1)
        gate.set()
        await first.drain()
        await second.drain()
        return order

    order = run(scenario, workers=1)
    assert sorted(order) == sorted([f"a{i}" for i in range(20)] + [f"b{i}" for i in range(20)])
    assert order[:4] == ["a0", "b0", "a1", "b1"]
