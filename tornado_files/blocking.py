"""The one way blocking work (fsync, rename, unlink, sqlite3, libmagic) leaves the event loop.

ruff's ASYNC rules catch ``open()`` and ``time.sleep`` in coroutines but not ``os.fsync`` or
``sqlite3`` calls, so every such call goes through :class:`Offload` (STYLE.md).

:class:`Lane` is the streaming form of it: an upload's chunks are hashed and written on the
pool *while* the event loop reads the next ones, instead of the loop waiting for each chunk's
round trip to a thread (that wait, not the CPU, held uploads at ~0.4x nginx).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")
# Bytes of work a lane queues before ``put`` waits: one 1 MiB chunk running, one queued.
LANE_WINDOW = 2 * 1024 * 1024


class Offload:
    """Runs blocking callables on a bounded thread pool owned by the application."""

    def __init__(self, max_workers: int = 8, name: str = "tornado-files") -> None:
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=name)

    async def __call__(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        if kwargs:
            return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))
        return await loop.run_in_executor(self._pool, fn, *args)

    def lane(self, window: int = LANE_WINDOW) -> Lane:
        """A new ordered lane on this pool."""
        return Lane(self._pool, window)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)


class Lane:
    """Blocking jobs that must run in order (hash updates, appends to one file), run on the
    shared pool one at a time while the caller goes on.

    ``put`` returns at once unless more than ``window`` bytes of jobs are queued or running;
    then it waits until they drain below it — the back-pressure that slows a client down to
    the speed of the disk instead of growing a buffer. A job that raises stops the lane: the
    jobs queued behind it are skipped and the error is raised by the next ``put`` or
    ``drain``. Each step goes back to the pool's queue, so many lanes share a small pool
    fairly and no upload starves another.
    """

    def __init__(self, pool: ThreadPoolExecutor, window: int) -> None:
        self._pool = pool
        self._window = window
        self._lock = threading.Lock()
        self._jobs: deque[tuple[Callable[[], object], int]] = deque()
        self._running = False
        self._pending = 0  # bytes of the jobs queued or running
        self._error: BaseException | None = None
        self._stopped = False
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []  # (level, future)

    @property
    def idle(self) -> bool:
        """Nothing queued or running: the caller may run a small job inline, in order."""
        return self._pending == 0

    async def put(self, job: Callable[[], object], size: int) -> None:
        """Queue ``job`` (worth ``size`` bytes); waits only while the lane is over its window.
        Raises the error of an earlier job."""
        self._raise_error()
        with self._lock:
            self._jobs.append((job, size))
            self._pending += size
            start = not self._running
            self._running = True
        if start:
            self._pool.submit(self._step)
        await self._wait_below(self._window)
        self._raise_error()

    async def drain(self) -> None:
        """Wait until every queued job ran; raises the error of any of them."""
        await self._wait_below(0)
        self._raise_error()

    async def stop(self) -> None:
        """Skip the queued jobs, wait for the running one, never raise (for abort paths)."""
        self._stopped = True
        await self._wait_below(0)

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    async def _wait_below(self, level: int) -> None:
        with self._lock:
            if self._pending <= level or (self._error is not None and not self._running):
                return
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append((level, waiter))
        try:
            await waiter
        finally:
            with self._lock:
                self._waiters = [w for w in self._waiters if w[1] is not waiter]

    def _step(self) -> None:
        """One job, on a pool thread."""
        with self._lock:
            job, size = self._jobs.popleft()
        if self._error is None and not self._stopped:
            try:
                job()
            except BaseException as exc:  # surfaced to the caller by put/drain
                self._error = exc
        with self._lock:
            self._pending -= size
            more = bool(self._jobs)
            self._running = more
            failed = self._error is not None and not more
            wake = [w for level, w in self._waiters if failed or self._pending <= level]
        for waiter in wake:
            waiter.get_loop().call_soon_threadsafe(_resolve, waiter)
        if more:
            self._pool.submit(self._step)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():  # the waiting request may have been cancelled meanwhile
        waiter.set_result(None)
