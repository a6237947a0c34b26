"""Putting webhook events in the outbox (docs/deploying.md, Webhooks).

An event is written to the outbox right after the change it reports was stored, one delivery
per hook configured for it: the record change and the outbox entry are two writes, not one
transaction, so a process that dies between them loses that event (docs/deploying.md says so).
A failing outbox write never fails the request whose change already happened: it is logged
and counted (``outcome="lost"``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import uuid4

from tornado_files.config import Config
from tornado_files.metadata.base import Outbox
from tornado_files.metrics import Metrics
from tornado_files.models import Delivery, FileRecord, UploadState, iso, utcnow

log = logging.getLogger("tornado_files.hooks")


class Wakeup:
    """Tells this process's delivery loop that something was put in the outbox (other
    processes find it on their next poll)."""

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None

    def _get(self) -> asyncio.Event:
        if self._event is None:
            self._event = asyncio.Event()
        return self._event

    def set(self) -> None:
        self._get().set()

    async def wait(self, seconds: float) -> None:
        """Until ``set()`` or ``seconds`` passed, whichever is first."""
        event = self._get()
        try:
            async with asyncio.timeout(seconds):
                await event.wait()
        except TimeoutError:
            pass
        event.clear()


def upload_resource(state: UploadState) -> dict[str, Any]:
    """What is known of an unfinished tus upload (the ``file`` of ``upload.expired``): sizes
    in bytes, times as in the file resource."""
    return {"id": state.id, "url": f"/api/tus/{state.id}",
            "original_filename": state.original_filename, "declared_type": state.declared_type,
            "size": state.length, "offset": state.offset, "route": state.route,
            "storage": state.storage, "owner": state.owner, "added": iso(state.created),
            "expires": iso(state.expires), "data": state.data}


def event_body(event: str, resource: dict[str, Any], now: datetime) -> bytes:
    """``{"event", "file", "time"}`` as compact UTF-8 JSON: the bytes that are signed."""
    document = {"event": event, "file": resource, "time": iso(now)}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


class Events:
    """Writes events to the outbox for the hooks configured for them."""

    def __init__(self, config: Config, outbox: Outbox, metrics: Metrics, wakeup: Wakeup
                 ) -> None:
        self._hooks = config.hooks
        self._outbox = outbox
        self._metrics = metrics
        self._wakeup = wakeup

    async def files(self, event: str, records: Sequence[FileRecord]) -> None:
        """``file.created``, ``file.updated`` or ``file.deleted`` for each record (the
        resource as ``GET /api/files/{id}`` shows it)."""
        await self._emit(event, [r.to_resource() for r in records])

    async def expired(self, states: Sequence[UploadState]) -> None:
        """``upload.expired`` for each unfinished upload the sweeper removed."""
        await self._emit("upload.expired", [upload_resource(s) for s in states])

    async def _emit(self, event: str, resources: Sequence[dict[str, Any]]) -> None:
        urls = [hook.url for hook in self._hooks if hook.event == event]
        if not urls or not resources:
            return
        now = utcnow()
        deliveries = [Delivery(id=uuid4().hex, event=event, url=url,
                               body=event_body(event, resource, now), created=now, due=now)
                      for resource in resources for url in urls]
        try:
            await self._outbox.add_deliveries(deliveries)
        except Exception:
            log.exception("webhooks: %d %s event(s) could not be put in the outbox and are "
                          "lost", len(deliveries), event)
            self._metrics.hook_delivery(event, "lost", len(deliveries))
            return
        self._wakeup.set()
