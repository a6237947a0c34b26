"""The one way blocking work (fsync, rename, unlink, sqlite3, libmagic) leaves the event loop.

ruff's ASYNC rules catch ``open()`` and ``time.sleep`` in coroutines but not ``os.fsync`` or
``sqlite3`` calls, so every such call goes through :class:`Offload` (STYLE.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class Offload:
    """Runs blocking callables on a bounded thread pool owned by the application."""

    def __init__(self, max_workers: int = 8, name: str = "tornado-files") -> None:
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=name)

    async def __call__(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        if kwargs:
            return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))
        return await loop.run_in_executor(self._pool, fn, *args)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)
