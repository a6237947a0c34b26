"""Periodic work that runs in one process at a time among all those sharing a metadata
store — on one host (``--processes``) or many (MongoDB) — chosen by a lease in that store
(``metadata/base.py`` ``LeaseStore``).

Every process ticks every third of the lease's TTL: the holder renews its lease, the others
try to take it. Whoever takes it runs the work at once (the previous holder may have died in
the middle of it), then every ``interval`` seconds while it holds the lease. A holder that
dies stops renewing: another process takes over within one TTL. At shutdown the holder gives
the lease up, so another takes over at its next tick. The work runs as a task of its own
while the ticks go on renewing, so a long run does not let the lease lapse.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from tornado.ioloop import PeriodicCallback

from tornado_files.metadata.base import LeaseStore
from tornado_files.models import utcnow

log = logging.getLogger("tornado_files.singleton")
# Seconds a lease lasts unless renewed: how long the work may pause after its holder died.
LEASE_TTL = 30.0


def holder_identity() -> str:
    """Who holds a lease: ``host/pid/token`` (a random token: a PID reused after a restart,
    or on another host, is never mistaken for the old holder)."""
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(6)}"


class Singleton:
    """Runs ``work`` every ``interval`` seconds while this process holds lease ``name``.

    ``start()`` begins ticking (from the running event loop); ``stop()`` stops the ticks,
    cancels a run in progress and releases the lease. ``tick()`` is one step (tests
    drive it). Failures of the store or of the work are logged, never raised."""

    def __init__(self, leases: LeaseStore, name: str, work: Callable[[], Awaitable[None]],
                 interval: float, ttl: float = LEASE_TTL, holder: str | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.name = name
        self.holder = holder or holder_identity()
        self._leases = leases
        self._work = work
        self._interval = interval
        self._ttl = ttl
        self._clock = clock
        self._held = False
        self._last_run = 0.0  # time.monotonic() of the last run's start
        self._running: asyncio.Task[None] | None = None
        self._timer: PeriodicCallback | None = None

    @property
    def held(self) -> bool:
        """Whether this process held the lease at its last tick."""
        return self._held

    async def acquire(self) -> bool:
        """Take (or keep) the lease now; whether this process holds it."""
        now = self._clock()
        try:
            self._held = await self._leases.acquire_lease(
                self.name, self.holder, now + timedelta(seconds=self._ttl), now)
        except Exception:
            log.exception("lease %s: the metadata store did not answer", self.name)
            self._held = False
        return self._held

    async def tick(self) -> None:
        """Renew or take the lease; start the work if it was just taken or is due."""
        had = self._held
        if not await self.acquire():
            if had:
                log.warning("lease %s: lost to another process", self.name)
            return
        due = not had or time.monotonic() - self._last_run >= self._interval
        if due and (self._running is None or self._running.done()):
            self._last_run = time.monotonic()
            self._running = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            await self._work()
        except Exception:
            log.exception("lease %s: the work failed; tried again next time", self.name)

    def mark_ran(self) -> None:
        """The work has just run (at start-up, under this lease): the next run is due in
        ``interval``, not at the first tick."""
        self._last_run = time.monotonic()

    def start(self) -> None:
        self._timer = PeriodicCallback(self.tick, self._ttl / 3 * 1000)
        self._timer.start()  # the first tick a third of the TTL from now

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        if self._running is not None:
            self._running.cancel()  # what it leaves is the next holder's (work is idempotent)
            await asyncio.gather(self._running, return_exceptions=True)
        if self._held:
            self._held = False
            try:
                await self._leases.release_lease(self.name, self.holder)
            except Exception:
                log.exception("lease %s: not released; it runs out in %gs", self.name, self._ttl)
