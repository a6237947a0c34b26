"""In-process signals between whoever queues media jobs and whoever runs them.

An upload that committed a pending file calls ``queued`` so the runner claims it at once
instead of at its next poll; the runner calls ``finished`` when a job ends, so a request
waiting (``Prefer: wait``) answers at once. Jobs run by another process are seen by polling
the store (``Waiting``), so these signals are only a shortcut, never the source of truth.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable


class JobSignals:
    def __init__(self) -> None:
        self._wake = asyncio.Event()
        # Each waiter's own event, per file id.
        self._finished: dict[str, set[asyncio.Event]] = {}

    def queued(self) -> None:
        """A job became due in this process."""
        self._wake.set()

    async def wait_queued(self, within: float) -> None:
        """Until ``queued`` is called or ``within`` seconds pass."""
        try:
            await asyncio.wait_for(self._wake.wait(), within)
        except TimeoutError:
            return
        finally:
            self._wake.clear()

    def finished(self, file_id: str) -> None:
        """The job of ``file_id`` ended (done, failed, or retried later)."""
        for event in self._finished.get(file_id, ()):
            event.set()

    async def wait_finished(self, file_ids: list[str], within: float,
                            still_pending: Callable[[list[str]], Awaitable[list[str]]],
                            poll: float = 0.5) -> None:
        """Wait at most ``within`` seconds until none of ``file_ids`` is pending.
        ``still_pending(ids)`` reads the store and returns those still pending: it is asked
        every ``poll`` seconds (another process may run the job) and after each signal."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        pending = list(file_ids)
        event = asyncio.Event()
        for file_id in pending:
            self._finished.setdefault(file_id, set()).add(event)
        try:
            while pending:
                pending = await still_pending(pending)
                left = deadline - loop.time()
                if not pending or left <= 0:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), min(poll, left))
                event.clear()
        finally:
            for file_id in file_ids:
                waiters = self._finished.get(file_id)
                if waiters is not None:
                    waiters.discard(event)
                    if not waiters:
                        del self._finished[file_id]
