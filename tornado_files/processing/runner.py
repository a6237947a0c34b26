"""The job runner: claims due media jobs from the metadata store and runs each in the worker
pool (docs/media.md).

One runner per server process. It claims a job only when a worker is free, holds the job's
lease while it runs (renewed every third of it, so a job whose process died is claimed again
by any process within one lease) and ends every job in one of three ways: ``finish_job``
(done, or failed for good with a reason in ``metadata.error``), ``retry_job`` with back-off
(a transient error), or nothing at all when the lease was lost (the file was deleted or
requeued: what this run wrote is removed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

from tornado_files.errors import TornadoFilesError
from tornado_files.media.kinds import media_kind
from tornado_files.models import Derivative, FileRecord, JobClaim, utcnow
from tornado_files.processing.blobs import BadAnswer, DerivativeBlobs
from tornado_files.processing.pool import JobTimedOut, WorkerDied, WorkerPool
from tornado_files.processing.source import job_source
from tornado_files.services import Services
from tornado_files.tasks import finish_tasks

log = logging.getLogger("tornado_files.processing")
# The longest back-off between two runs of a job.
_MAX_DELAY = 3600.0
# Seconds a stopping runner gives its jobs to hand themselves back.
_STOP_WAIT = 5.0
# Seconds between looks for job folders of processes that died.
_TIDY_EVERY = 60.0


@dataclass(frozen=True)
class Outcome:
    """How a run ended: ``processing`` "done", "failed" or "none", what goes in ``metadata``,
    and the derivatives it stored."""

    processing: str
    metadata: dict[str, Any]
    derivatives: list[Derivative] = field(default_factory=list)


class JobRunner:
    def __init__(self, services: Services, pool: WorkerPool, *, poll: float = 1.0,
                 lease: float = 30.0, clock: Callable[[], datetime] = utcnow) -> None:
        """``poll``: seconds between looks for due jobs when nothing signals one (jobs queued
        by other processes, retries coming due). ``lease``: seconds a claim lasts unless
        renewed."""
        self.services = services
        self.pool = pool
        self.settings = services.config.media
        self.poll = poll
        self.lease = lease
        self.clock = clock
        self.blobs = DerivativeBlobs(services)
        # Absolute: the worker runs elsewhere and takes absolute paths only (a relative
        # --data-dir failed every job).
        self.scratch = services.config.data_dir.resolve() / "jobs"
        self._slots = asyncio.Semaphore(self.settings.workers)
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._folders: set[str] = set()  # names of the job folders in use
        self._stopping = False

    def start(self) -> None:
        """Start claiming (no-op with ``workers = 0``: other processes run the jobs)."""
        if self.settings.workers > 0 and self._task is None:
            self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        """Stop claiming, kill the workers, and let the jobs in flight hand themselves back
        (due at once, for whichever process runs next). What has not ended within
        ``_STOP_WAIT`` seconds is cancelled: its lease runs out and it runs again. Store
        operations are left to finish rather than cancelled mid-way where possible (a
        cancelled driver call can leave its connection behind)."""
        self._stopping = True
        self.services.job_signals.queued()  # the loop wakes and sees it is stopping
        await self.pool.close()  # running jobs see their workers end: WorkerDied
        late = await finish_tasks((self._task, *self._running), _STOP_WAIT)
        if late:
            log.warning("media jobs: %d job(s) still ending at shutdown; their leases run "
                        "out and they run again", late)
        self._task = None

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        tidied = -math.inf
        while not self._stopping:
            if loop.time() - tidied > _TIDY_EVERY:
                tidied = loop.time()
                await self._tidy()
            await self._slots.acquire()
            if self._stopping:
                self._slots.release()
                return
            try:
                now = self.clock()
                claim = await self.services.jobs.claim_job(
                    uuid4().hex, now + timedelta(seconds=self.lease), now)
            except TornadoFilesError as exc:  # the store said why where it failed
                self._slots.release()
                log.warning("media jobs: cannot claim a job (%s)", exc.code)
                await asyncio.sleep(self.poll)
                continue
            except Exception:
                self._slots.release()
                log.exception("media jobs: cannot claim a job")
                await asyncio.sleep(self.poll)
                continue
            if claim is None:
                self._slots.release()
                await self.services.job_signals.wait_queued(self.poll)
                continue
            if self._stopping:  # stopped while claiming
                self._slots.release()
                await self._release(claim)
                return
            task = asyncio.ensure_future(self._run(claim))
            self._running.add(task)
            task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._slots.release()

    async def _run(self, claim: JobClaim) -> None:
        record = claim.record
        renewing = asyncio.ensure_future(self._renew(record.id, claim.token))
        started = time.monotonic()
        try:
            outcome = await self._attempt(claim)
        except JobTimedOut:
            outcome = Outcome("failed", {"error": "Processing took longer than job_timeout "
                                         f"({self.settings.job_timeout:g} s)."})
        except (WorkerDied, TornadoFilesError, OSError) as exc:
            if self._stopping:  # the worker was ended by stop(): no attempt lost
                await self._release(claim)
                return
            await self._transient(claim, exc)
            return
        except asyncio.CancelledError:
            # Shutdown: the job is due again at once for whichever process runs next, rather
            # than after its lease.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_STOP_WAIT):
                    await asyncio.shield(self._release(claim))
            raise
        except Exception as exc:
            log.exception("media job of %s", record.id)
            await self._transient(claim, exc)
            return
        finally:
            renewing.cancel()
        kept = await self._finish(claim, outcome)
        if kept:
            self.services.metrics.job_ended(record.mime_type, outcome.processing)
        log.info("media job of %s: %s in %.2fs (attempt %d)", record.id,
                 outcome.processing if kept else "abandoned (the file was deleted or is "
                 "processed again)", time.monotonic() - started, claim.attempt)

    async def _release(self, claim: JobClaim) -> None:
        try:
            await self.services.jobs.retry_job(claim.record.id, claim.token, self.clock())
        except Exception:
            log.warning("media job of %s: left to its lease at shutdown", claim.record.id)

    async def _renew(self, file_id: str, token: str) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                until = self.clock() + timedelta(seconds=self.lease)
                if not await self.services.jobs.renew_job(file_id, token, until):
                    return  # requeued or deleted: the run's finish will find out
            except Exception:
                log.warning("media job of %s: lease renewal failed", file_id)

    async def _attempt(self, claim: JobClaim) -> Outcome:
        record = claim.record
        kind = media_kind(record.mime_type)
        if kind is None:
            return Outcome("none", {})
        folder = self.scratch / f"{os.getpid()}-{claim.token}"
        out_dir = folder / "out"
        self._folders.add(folder.name)
        try:
            await self.services.offload(out_dir.mkdir, parents=True)
            source = await job_source(self.services, record, folder)
            answer = await self.pool.run(self._request(record, source, out_dir))
            metadata = answer.get("metadata")
            metadata = metadata if isinstance(metadata, dict) else {}
            if not answer["ok"]:
                error = answer.get("error")
                return Outcome("failed", {**metadata, "error": str(error or "Processing failed")})
            try:
                derivatives = await self.blobs.store(record.storage, out_dir,
                                                     answer.get("derivatives") or [])
            except BadAnswer as exc:
                log.error("media job of %s: %s", record.id, exc)
                return Outcome("failed", {**metadata, "error": "Processing failed"})
            return Outcome("done", metadata, derivatives)
        finally:
            await self.services.offload(shutil.rmtree, folder, ignore_errors=True)
            self._folders.discard(folder.name)

    def _request(self, record: FileRecord, source: Path, out_dir: Path) -> dict[str, Any]:
        settings = self.settings
        return {"source": str(source), "mime_type": record.mime_type, "out_dir": str(out_dir),
                "sizes": settings.sizes, "format": settings.format,
                "quality": settings.quality, "max_image_pixels": settings.max_image_pixels,
                # ffmpeg's own limit, inside the job's: its failure is reported, not killed.
                "timeout": max(settings.job_timeout * 0.9, settings.job_timeout - 5)}

    async def _finish(self, claim: JobClaim, outcome: Outcome) -> bool:
        """Record the outcome; whether it was kept (False: the lease was lost, and what the
        run wrote is removed)."""
        record = claim.record
        new_keys = [d.key for d in outcome.derivatives]
        old_keys = [d.key for d in record.derivatives]
        try:
            # Before the record lets go of them: a crash after it leaves intents, not orphans.
            await self.blobs.journal(record.storage, old_keys)
            result = await self.services.jobs.finish_job(
                record.id, claim.token, processing=outcome.processing,
                metadata=outcome.metadata, derivatives=outcome.derivatives)
        except Exception:
            log.exception("media job of %s: cannot record its outcome", record.id)
            await self.blobs.remove(record.storage, new_keys, journalled=True)
            return False
        if result is None:  # deleted or requeued meanwhile: this run's blobs belong to no one
            await self.blobs.remove(record.storage, new_keys, journalled=True)
            await self.blobs.settle(record.storage, old_keys)
        else:
            updated, replaced = result
            await self.services.events.files("file.updated", [updated])
            await self.blobs.settle(record.storage, new_keys)
            await self.blobs.remove(record.storage, [d.key for d in replaced], journalled=True)
            # Journalled old keys that were not replaced after all (a racing requeue) stay.
            await self.blobs.settle(record.storage, [k for k in old_keys
                                                      if k not in {d.key for d in replaced}])
        self.services.job_signals.finished(record.id)
        return result is not None

    async def _transient(self, claim: JobClaim, exc: BaseException) -> None:
        record = claim.record
        reason = "the worker process ended" if isinstance(exc, WorkerDied) else \
            "the storage failed"
        log.warning("media job of %s, attempt %d: %s (%s)", record.id, claim.attempt, reason,
                    exc)
        try:
            if claim.attempt >= self.settings.max_attempts:
                if await self._finish(claim, Outcome("failed", {
                        "error": f"Processing failed {claim.attempt} times: {reason}"})):
                    self.services.metrics.job_ended(record.mime_type, "failed")
                return
            delay = min(self.settings.retry_delay * 2 ** (claim.attempt - 1), _MAX_DELAY)
            due = self.clock() + timedelta(seconds=delay)
            await self.services.jobs.retry_job(record.id, claim.token, due)
            self.services.metrics.job_ended(record.mime_type, "retried")
        except Exception:
            log.exception("media job of %s: cannot record the retry (its lease runs out and "
                          "it runs again)", record.id)
        self.services.job_signals.finished(record.id)


    async def _tidy(self) -> None:
        """Remove the job folders of processes that are gone (a crash leaves them, with a
        whole copy of the file for stores that are not local): at start and then every
        ``_TIDY_EVERY`` seconds, between jobs."""
        try:
            await self.services.offload(_remove_orphans, self.scratch, set(self._folders))
        except OSError as exc:
            log.warning("media jobs: cannot tidy %s: %s", self.scratch, exc.strerror)


def _remove_orphans(scratch: Path, keep: set[str]) -> None:
    """Job folders are ``<pid>-<token>``: those of a process that no longer runs go, and
    this process's own but ``keep`` (an earlier process may have had its PID, as in a
    container restarted). Other processes on this host may share the data directory."""
    if not scratch.is_dir():
        return
    for folder in scratch.iterdir():
        pid, _, _ = folder.name.partition("-")
        if folder.name in keep:
            continue
        if not pid.isdigit() or int(pid) == os.getpid() or not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, as another user
    return True
