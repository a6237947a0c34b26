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
        # Each waiter's own event, per file id; every waiter's event.
        self._finished: dict[str, set[asyncio.Event]] = {}
        self._waiters: set[asyncio.Event] = set()
        self._released = False
        self._none_waiting = asyncio.Event()

    def queued(self) -> None:
        """A job became due in this process."""
        self._wake.set()

    async def wait_queued(self, within: float) -> None:
        """Until ``queued`` is called or ``within`` seconds pass."""
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that meets the event being set, and the runner never stops.
            async with asyncio.timeout(within):
                await self._wake.wait()
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
                            poll: float = 0.25, longest_poll: float = 2.0) -> None:
        """Wait at most ``within`` seconds until none of ``file_ids`` is pending, or until
        ``release_waiters`` (shutdown). ``still_pending(ids)`` reads the store and returns
        those still pending: it is asked after each signal and, for jobs other processes
        run, every ``poll`` seconds, doubling up to ``longest_poll``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        pending = list(file_ids)
        event = asyncio.Event()
        for file_id in pending:
            self._finished.setdefault(file_id, set()).add(event)
        self._waiters.add(event)
        try:
            while pending and not self._released:
                pending = await still_pending(pending)
                left = deadline - loop.time()
                if not pending or left <= 0 or self._released:
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(poll, left)):
                        await event.wait()
                event.clear()
                poll = min(2 * poll, longest_poll)
        finally:
            self._waiters.discard(event)
            if not self._waiters:
                self._none_waiting.set()
            for file_id in file_ids:
                waiters = self._finished.get(file_id)
                if waiters is not None:
                    waiters.discard(event)
                    if not waiters:
                        del self._finished[file_id]

    async def release_waiters(self, within: float) -> None:
        """Shutdown: every waiting request stops waiting and answers with what it has (the
        files are stored; their jobs run after the restart). Returns once none waits, or
        after ``within`` seconds."""
        self._released = True
        for event in self._waiters:
            event.set()
        if self._waiters:
            self._none_waiting.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(within):
                    await self._none_waiting.wait()
