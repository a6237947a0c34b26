"""The one object handlers get their dependencies from (through application settings)."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from tornado_files.auth.authenticator import Authenticator
from tornado_files.blocking import Offload
from tornado_files.config import Config
from tornado_files.errors import InternalError
from tornado_files.health import STARTUP_DEADLINE, StoreChecks, answering_within
from tornado_files.hooks.events import Events, Wakeup
from tornado_files.hooks.http import HookHttp
from tornado_files.ingest import HashCache
from tornado_files.lifecycle import Lifecycle
from tornado_files.metadata.base import (
    IntentJournal,
    JobQueue,
    LeaseStore,
    MetadataStore,
    Outbox,
    UploadStateStore,
)
from tornado_files.metrics import Metrics
from tornado_files.policy import UploadPolicy
from tornado_files.processing.signals import JobSignals
from tornado_files.sniff import Sniffer
from tornado_files.storage.base import BlobStore, PartialBlobStore, partial_store
from tornado_files.store_identity import verify_stores


class Settling(Protocol):
    def settled(self) -> bool:
        """Whether the request has answered, or undone / kept what it wrote."""


# How often the shutdown looks whether the requests in flight have settled.
_SETTLE_POLL = 0.05


@dataclass(frozen=True)
class Services:
    config: Config
    policies: tuple[UploadPolicy, ...]  # default route first
    blob_stores: dict[str, BlobStore]
    metadata: MetadataStore
    sniffer: Sniffer
    offload: Offload
    uploads: UploadStateStore
    # Which blobs may exist without a record (metadata/base.py ``IntentJournal``): add an
    # intent before a blob's first byte or before a delete, clear it when settled.
    intents: IntentJournal
    # Media jobs (metadata/base.py ``JobQueue``), kept on the file records.
    jobs: JobQueue
    # Webhook deliveries waiting to be sent (metadata/base.py ``Outbox``; hooks/).
    outbox: Outbox
    # Who runs the work one process at a time does (the sweeper; ``singleton.py``).
    leases: LeaseStore
    # Who is asking (tokens, JWT, signed links; open when none is configured).
    auth: Authenticator
    # Uploads tell this process's job runner that a job is due; the runner tells waiting
    # requests (``Prefer: wait``) that one ended.
    job_signals: JobSignals = field(default_factory=JobSignals)
    # Serving or draining (the readiness probes say which).
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    # The readiness probe's store checks: single-flight, each bounded (tornado_files/health.py).
    health: StoreChecks = field(default_factory=StoreChecks)
    # Seconds each blob store's start-up check (marker, then its own start-up) may take.
    startup_deadline: float = STARTUP_DEADLINE
    # The running sha256 of resumable uploads, shared by every handler and the sweeper.
    hashes: HashCache = field(default_factory=HashCache)
    # This application's Prometheus registry and metrics (``metrics.Metrics``; GET /metrics).
    metrics: Metrics = field(default_factory=Metrics)
    # Tells this process's webhook delivery loop that the outbox has something new.
    hook_wakeup: Wakeup = field(default_factory=Wakeup)
    # The HTTP client of the upload.pre_create hook (made on first use, closed at close).
    hook_http: HookHttp = field(default_factory=HookHttp)
    # Called last at close (e.g. the MongoDB client shared by the stores).
    closers: tuple[Callable[[], Awaitable[None]], ...] = field(default=())
    # Requests that write (body handlers) while they live: at shutdown their clean-up (a tus
    # PATCH keeping what arrived, an upload aborting) runs before the stores close.
    in_flight: weakref.WeakSet[Settling] = field(default_factory=weakref.WeakSet)

    def blob_store(self, name: str) -> BlobStore:
        try:
            return self.blob_stores[name]
        except KeyError:
            raise InternalError(f"no blob store named {name!r}") from None

    @property
    def events(self) -> Events:
        """Puts webhook events in the outbox (hooks/events.py)."""
        return Events(self.config, self.outbox, self.metrics, self.hook_wakeup)

    def partial_store(self, name: str) -> PartialBlobStore:
        """The blob store ``name`` with its partial blobs (resumable uploads)."""
        return partial_store(self.blob_store(name))

    async def startup(self) -> None:
        await self.metadata.startup()
        await self.jobs.startup()
        await self.uploads.startup()
        await self.intents.startup()
        await self.outbox.startup()
        await self.leases.startup()
        # Before a store creates its folders: an absent or foreign one is refused, not
        # silently replaced by an empty tree (store_identity).
        # Each step within a deadline: a store that stalls is the one start-up line, not a
        # wait for as long as its SDK retries.
        for store in self.blob_stores.values():
            async with answering_within(store, self.startup_deadline):
                await verify_stores([store], self.metadata, write=True)
        for store in self.blob_stores.values():
            async with answering_within(store, self.startup_deadline):
                await store.startup()

    async def settle(self, within: float) -> bool:
        """Wait (at most ``within`` seconds) until every request in flight has settled;
        whether they all did. For shutdown, after the connections were closed."""
        deadline = time.monotonic() + within
        while any(not request.settled() for request in list(self.in_flight)):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(_SETTLE_POLL)
        return True

    async def close(self) -> None:
        self.hook_http.close()
        await self.metadata.close()
        for store in self.blob_stores.values():
            await store.close()
        for closer in self.closers:
            await closer()
        self.offload.shutdown()
