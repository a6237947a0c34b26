"""Worker processes that decode untrusted media (docs/media.md, Isolation).

Each worker is ``python -m tornado_files.media.worker`` in its own session (process group),
with RLIMIT_AS and RLIMIT_CPU set by the worker itself before it imports a decoder. The
server speaks to it in JSON lines over its stdin and stdout, one request and one answer at a
time. A worker that crashes, breaks the protocol or outlives ``job_timeout`` is killed with
its whole group (ffmpeg included) by its PID; a worker is replaced after
``worker_max_jobs`` requests. The server process never imports a decoder.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from typing import Any

from tornado_files.processing.settings import MediaSettings

log = logging.getLogger("tornado_files.processing")
# An answer is one line of metadata: bounded, far above what a worker writes.
_ANSWER_LIMIT = 4 * 1024 * 1024
# How long a retired worker may take to exit after its stdin closed.
_EXIT_WAIT = 5.0


class WorkerDied(Exception):
    """The worker process ended or broke the protocol mid-job (transient: the job is
    retried, in a fresh process)."""


class JobTimedOut(Exception):
    """The job outlived ``job_timeout``; its worker was killed (permanent: the same file
    would take as long again)."""


class _Worker:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.jobs = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    async def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None
        assert stdout is not None
        try:
            stdin.write(json.dumps(request).encode("utf-8") + b"\n")
            await stdin.drain()
            line = await stdout.readline()
        except (OSError, ValueError, asyncio.LimitOverrunError) as exc:
            raise WorkerDied(f"worker {self.pid}: {exc}") from None
        if not line:
            raise WorkerDied(f"worker {self.pid} exited ({await self._status()})")
        try:
            answer = json.loads(line)
        except ValueError:
            raise WorkerDied(f"worker {self.pid} wrote a line that is not JSON") from None
        if not isinstance(answer, dict) or not isinstance(answer.get("ok"), bool):
            raise WorkerDied(f"worker {self.pid} answered without 'ok'")
        return answer

    async def _status(self) -> str:
        try:
            async with asyncio.timeout(1.0):
                code = await self.process.wait()
        except TimeoutError:
            return "still running"
        return f"signal {-code}" if code < 0 else f"status {code}"

    def kill(self) -> None:
        """SIGKILL to the worker's process group (the worker and any ffmpeg it started)."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)

    async def retire(self) -> None:
        """End the worker: EOF on stdin asks it to exit; killed if it does not."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            async with asyncio.timeout(_EXIT_WAIT):
                await self.process.wait()
        except TimeoutError:
            self.kill()
            await self.process.wait()


class WorkerPool:
    """At most ``settings.workers`` worker processes, started when first needed."""

    def __init__(self, settings: MediaSettings, python: str = sys.executable) -> None:
        self.settings = settings
        self._python = python
        self._slots = asyncio.Semaphore(max(settings.workers, 1))
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._closed = False

    @property
    def pids(self) -> list[int]:
        """The PIDs of the live workers."""
        return [w.pid for w in (*self._idle, *self._busy)]

    @property
    def busy_pids(self) -> list[int]:
        """The PIDs of the workers running a job now."""
        return [w.pid for w in self._busy]

    async def run(self, request: dict[str, Any]) -> dict[str, Any]:
        """One request (``tornado_files.media.process``'s shape) in a worker; its answer.
        Raises ``WorkerDied`` (transient) or ``JobTimedOut`` (permanent); waits for a free
        worker first."""
        async with self._slots:
            if self._closed:
                raise WorkerDied("the pool is closed")
            worker = await self._take()
            self._busy.add(worker)
            try:
                # asyncio.timeout, not wait_for (which can swallow a cancellation on 3.11).
                async with asyncio.timeout(self.settings.job_timeout):
                    answer = await worker.ask(request)
            except TimeoutError:
                worker.kill()
                await worker.process.wait()
                raise JobTimedOut() from None
            except BaseException:
                worker.kill()
                await worker.process.wait()
                raise
            finally:
                self._busy.discard(worker)
            worker.jobs += 1
            if worker.jobs >= self.settings.worker_max_jobs or self._closed:
                await worker.retire()
            else:
                self._idle.append(worker)
            return answer

    async def _take(self) -> _Worker:
        """An idle worker that is still alive (one killed from outside is dropped), else a
        new one."""
        while self._idle:
            worker = self._idle.pop()
            if worker.process.returncode is None:
                return worker
        return await self._spawn()

    async def _spawn(self) -> _Worker:
        settings = self.settings
        process = await asyncio.create_subprocess_exec(
            self._python, "-m", "tornado_files.media.worker",
            "--memory-bytes", str(settings.worker_memory),
            "--cpu-seconds", str(int(settings.job_timeout) + 1),
            "--parent-pid", str(os.getpid()),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            start_new_session=True, limit=_ANSWER_LIMIT)
        log.info("media worker %d started", process.pid)
        return _Worker(process)

    async def close(self) -> None:
        """Kill every worker (idle ones have nothing to lose; busy ones' jobs are claimed
        again) and reap them, waiting at most ``_EXIT_WAIT`` seconds."""
        self._closed = True
        workers = [*self._idle, *self._busy]
        self._idle = []
        for worker in workers:
            worker.kill()
        waits = [asyncio.ensure_future(w.process.wait()) for w in workers]
        if waits:
            _, late = await asyncio.wait(waits, timeout=_EXIT_WAIT)
            for waiting in late:
                waiting.cancel()
