"""PartPipeline: how the object stores cut an upload into parts (storage/parts.py)."""

from __future__ import annotations

import asyncio

import pytest

from tornado_files.errors import BackendUnavailable
from tornado_files.storage.parts import PartPipeline


class Store:
    """Records the parts sent; each send waits until the test lets it finish."""

    def __init__(self, fail_at: int = 0) -> None:
        self.parts: dict[int, bytes] = {}
        self.started: list[int] = []
        self.gate = asyncio.Event()
        self.fail_at = fail_at

    async def send(self, number: int, data: bytes) -> str:
        self.started.append(number)
        await self.gate.wait()
        if number == self.fail_at:
            raise BackendUnavailable("part refused")
        self.parts[number] = data
        return f"etag-{number}"


def pipeline(store: Store, size: int = 10, max_parts: int = 100) -> PartPipeline[str]:
    return PartPipeline(lambda number: size * number, store.send, max_parts=max_parts,
                        too_large="too large")


@pytest.mark.gen_test
async def test_parts_follow_size_for_and_land_in_order():
    store = Store()
    store.gate.set()
    parts = pipeline(store)
    content = bytes(range(256)) * 3
    for start in range(0, len(content), 7):
        await parts.write(content[start:start + 7])
        assert parts.buffered < 10 * (len(parts.landed) + parts.in_flight + 1)
    await parts.finish()
    sizes = [len(store.parts[n]) for n in sorted(store.parts)]
    assert sizes[:-1] == [10 * n for n in range(1, len(sizes))]  # growing, as size_for says
    assert b"".join(store.parts[n] for n in sorted(store.parts)) == content
    assert parts.landed == [f"etag-{n}" for n in range(1, len(sizes) + 1)]
    assert parts.size == len(content)
    await parts.finish()  # again: nothing more is sent
    assert len(store.parts) == len(sizes)


@pytest.mark.gen_test
async def test_write_waits_while_two_parts_are_in_flight():
    store = Store()
    parts = pipeline(store)
    await parts.write(b"a" * 10)  # part 1 goes out, write returns
    assert parts.in_flight == 1
    third = asyncio.ensure_future(parts.write(b"b" * 20 + b"c" * 30))  # parts 2 and 3
    await asyncio.sleep(0.05)
    assert not third.done()  # held: parts 1 and 2 are in flight, the store is slow
    assert store.started == [1, 2]
    store.gate.set()
    await third
    await parts.finish()
    assert sorted(store.parts) == [1, 2, 3]


@pytest.mark.gen_test
async def test_a_failed_part_raises_and_drain_waits_for_the_rest():
    store = Store(fail_at=1)
    parts = pipeline(store)
    await parts.write(b"x" * 10)
    writing = asyncio.ensure_future(parts.write(b"y" * 20))
    await asyncio.sleep(0.01)
    store.gate.set()
    with pytest.raises(BackendUnavailable):
        await writing
    await parts.drain()  # part 2, still in flight, has landed before drain returns
    assert 2 in store.parts
    assert parts.in_flight == 0
    assert parts.buffered == 0
    with pytest.raises(RuntimeError):
        await parts.write(b"z")


@pytest.mark.gen_test
async def test_more_parts_than_the_store_allows_is_refused():
    store = Store()
    store.gate.set()
    parts = PartPipeline(lambda number: 4, store.send, max_parts=3, too_large="too large")
    with pytest.raises(BackendUnavailable, match="too large"):
        await parts.write(b"q" * 16)
    await parts.drain()
    assert store.started == [1, 2, 3]  # the fourth part never went out


@pytest.mark.gen_test
async def test_an_empty_stream_sends_nothing():
    store = Store()
    parts = pipeline(store)
    await parts.finish()
    assert store.started == []
    assert not parts.sent
    assert parts.size == 0
