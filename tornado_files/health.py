"""Store checks for the readiness probe: bounded in time and single-flight.

A store that stalls (accepts connections, never answers) would hold a probe for as long as
its SDK waits (a read timeout, times the attempts) and hold one of the store's pool threads
with it; a prober that asks every few seconds would soon hold all of them, and uploads with
them. So each store has at most one check running: a probe that arrives while one runs joins
it instead of starting another, and a check that has not answered ``deadline`` seconds after
it began counts as failed (:class:`CheckStalled`) for every probe, while it goes on in the
background until the SDK gives up (it holds one thread, not one per probe).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from tornado_files.config import ConfigError

# Seconds a store check may take before the probe answers 503 for that store. Kubernetes'
# default probe timeout is 1 s, but probes are usually given a few: docs/deploying.md.
HEALTH_DEADLINE = 5.0
# Seconds a blob store's start-up check may take before start-up gives up with one line.
STARTUP_DEADLINE = 30.0


class CheckStalled(Exception):
    """The store's check did not answer within the deadline."""


class StoreChecks:
    """One running check per name; ``deadline`` in seconds from the start of that check."""

    def __init__(self, deadline: float = HEALTH_DEADLINE) -> None:
        self.deadline = deadline
        self._running: dict[str, tuple[asyncio.Task[None], float]] = {}

    def running(self, name: str) -> bool:
        """Whether a check of ``name`` is still under way (stalled, or just slow)."""
        entry = self._running.get(name)
        return entry is not None and not entry[0].done()

    async def check(self, name: str, ping: Callable[[], Awaitable[None]]) -> None:
        """Run ``ping()`` for ``name`` — or join the one already running — and return when it
        succeeded. Raises what it raised, or ``CheckStalled`` once ``deadline`` seconds passed
        since that check began (at once when a probe joins a check older than that)."""
        loop = asyncio.get_running_loop()
        entry = self._running.get(name)
        if entry is None or entry[0].done():
            entry = (loop.create_task(_run(ping), name=f"health check {name}"), loop.time())
            self._running[name] = entry
            entry[0].add_done_callback(lambda task: self._finished(name, task))
        task, began = entry
        remaining = began + self.deadline - loop.time()
        if remaining <= 0:
            raise CheckStalled(name)
        try:
            async with asyncio.timeout(remaining):
                await asyncio.shield(task)
        except TimeoutError:
            raise CheckStalled(name) from None

    def _finished(self, name: str, task: asyncio.Task[None]) -> None:
        if not task.cancelled():
            task.exception()  # retrieved: a late failure nobody awaits is not logged by asyncio
        entry = self._running.get(name)
        if entry is not None and entry[0] is task:
            del self._running[name]


async def _run(ping: Callable[[], Awaitable[None]]) -> None:
    await ping()


@asynccontextmanager
async def answering_within(store: Any, seconds: float) -> AsyncIterator[None]:
    """Raise ``ConfigError`` (the store's own start-up line, ``store.unusable()``, where it has
    one) when the block has not finished within ``seconds``."""
    deadline = asyncio.timeout(seconds)
    try:
        async with deadline:
            yield
    except TimeoutError:
        if not deadline.expired():
            raise
        unusable = getattr(store, "unusable", None)
        if unusable is not None:
            raise unusable() from None
        where = getattr(store, "where", lambda: f"blob store {store.name!r}")()
        raise ConfigError(f"{where} did not answer within {seconds:g} s") from None
