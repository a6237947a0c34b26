"""Ending background tasks at shutdown (the media job runner, the webhook sender)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


async def finish_tasks(tasks: Iterable[asyncio.Task[None] | None], within: float) -> int:
    """Give ``tasks`` (None entries ignored) ``within`` seconds to end, then cancel those
    still running and give them one more second to unwind; how many had to be cancelled."""
    pending = [task for task in tasks if task is not None]
    if not pending:
        return 0
    _, late = await asyncio.wait(pending, timeout=within)
    for task in late:
        task.cancel()
    if late:
        await asyncio.wait(late, timeout=1.0)
    return len(late)
