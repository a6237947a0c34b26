"""``--processes N`` with N > 1: a supervising parent that serves nothing and N pre-forked
workers sharing its listening sockets (docs/deploying.md, Processes).

The parent does the one-time start-up work first (configuration, schema migrations, store
checks, the crash-leftover sweep; then it closes every store), so a start-up problem is one
line on stderr before any port opens. It binds the sockets, then forks the workers; each
builds its own stores, pools and event loop after the fork (nothing with a connection, a
thread or a loop crosses it). Like ``tornado.process.fork_processes`` and gunicorn's
arbiter, the parent only waits: for a worker's exit (it starts another, backing off when
they die young, and gives up when they keep dying at start-up) and for SIGTERM/SIGINT, which
it passes to every worker (each drains as a single process does; a second signal, passed
on too, ends the drain at once), then it waits for them and exits 0.

Signals reach the parent through ``sigtimedwait`` with SIGTERM, SIGINT and SIGCHLD blocked:
no handler runs between two system calls, no exit is missed. Workers run in a process group
of their own (Ctrl-C in a terminal reaches the parent only, which passes it on once) and are
killed by the kernel if the parent dies (``media.parent.die_with_parent``). The parent has
no other thread when it forks (its start-up closed every pool), so the blocked signals can
only reach ``sigtimedwait``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tornado_files.config import Config, ConfigError, usable_cores
from tornado_files.media.parent import die_with_parent
from tornado_files.metrics import enable_multiprocess, worker_gone
from tornado_files.serving import announce, listen, serve, start

log = logging.getLogger("tornado_files.supervisor")
_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGCHLD}
# A worker that ends within this many seconds of its start died young (at start-up).
YOUNG = 10.0
# So many young deaths in a row and the parent gives up.
MAX_YOUNG_DEATHS = 5
# Seconds before starting a worker after the k-th young death in a row: BACKOFF * 2**(k-1),
# at most MAX_BACKOFF.
BACKOFF = 0.5
MAX_BACKOFF = 10.0
# The workers' metrics directories: METRICS_PREFIX<supervisor pid>-<random>, in TMPDIR.
METRICS_PREFIX = "tornado-files-metrics-"
# Exit status of a worker that could not start (its stores did not answer).
WORKER_CANNOT_START = 3


class GaveUp(Exception):
    """Workers kept dying at start-up; the message is the one line for stderr."""


@dataclass
class _Worker:
    pid: int
    started: float  # time.monotonic()


def describe_exit(status: int) -> str:
    """``exit status 3`` or ``signal SIGKILL`` from a ``waitpid`` status."""
    if os.WIFSIGNALED(status):
        return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


class Supervisor:
    """Keeps ``count`` children running ``work`` (its return value is the child's exit
    status) until SIGTERM/SIGINT. ``on_exit(pid)`` hears of every child that ended.
    ``before_stop()`` runs at the first signal (the parent closes its listening sockets
    there, so new connections are refused while the workers drain). ``run()`` returns 0
    after a signal, or raises ``GaveUp``."""

    def __init__(self, count: int, work: Callable[[], int],
                 on_exit: Callable[[int], None] = lambda pid: None,
                 before_stop: Callable[[], None] = lambda: None,
                 young: float = YOUNG, backoff: float = BACKOFF) -> None:
        self._count = count
        self._work = work
        self._on_exit = on_exit
        self._before_stop = before_stop
        self._young = young
        self._backoff = backoff
        self._workers: dict[int, _Worker] = {}
        self._young_deaths = 0
        self._next_start = 0.0  # time.monotonic() before which no worker starts
        self._signals = 0

    @property
    def pids(self) -> list[int]:
        return sorted(self._workers)

    def run(self) -> int:
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            return self._loop()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)

    def _loop(self) -> int:
        while True:
            if not self._signals:
                self._fill()
            info = signal.sigtimedwait(_SIGNALS, 0.5)
            if info is not None and info.si_signo != signal.SIGCHLD:
                self._pass_on(signal.Signals(info.si_signo))
            self._reap()
            if self._signals and not self._workers:
                log.info("supervisor: every worker has exited")
                return 0

    def _fill(self) -> None:
        while len(self._workers) < self._count and time.monotonic() >= self._next_start:
            try:
                self._spawn()
            except OSError as exc:  # no memory or process slot for now: try again soon
                log.error("supervisor: cannot start a worker: %s", exc.strerror or exc)
                self._next_start = time.monotonic() + MAX_BACKOFF

    def _spawn(self) -> None:
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the worker: it never returns from here
            code = 1
            try:
                signal.pthread_sigmask(signal.SIG_SETMASK, set())
                os.setpgid(0, 0)
                die_with_parent(parent)
                code = self._work()
            except BaseException:
                log.exception("worker %d failed", os.getpid())
            finally:
                logging.shutdown()
                os._exit(code)
        self._workers[pid] = _Worker(pid, time.monotonic())

    def _pass_on(self, sig: signal.Signals) -> None:
        self._signals += 1
        if self._signals == 1:
            self._before_stop()
            log.info("supervisor: %s; passed on to %d worker(s), which drain", sig.name,
                     len(self._workers))
        else:
            log.info("supervisor: %s again; the workers stop at once", sig.name)
        for pid in self._workers:
            with contextlib.suppress(ProcessLookupError):  # it has just exited: reaped below
                os.kill(pid, sig)

    def _reap(self) -> None:
        while self._workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self._workers.pop(pid, None)
            if worker is None:
                continue
            self._on_exit(pid)
            if not self._signals:
                self._died(worker, status)

    def _died(self, worker: _Worker, status: int) -> None:
        lived = time.monotonic() - worker.started
        self._young_deaths = self._young_deaths + 1 if lived < self._young else 0
        if self._young_deaths >= MAX_YOUNG_DEATHS:
            self._stop_all()
            raise GaveUp(f"{self._young_deaths} workers in a row exited within "
                         f"{self._young:g}s of starting (the last: {describe_exit(status)}); "
                         "giving up")
        delay = 0.0
        if self._young_deaths:
            delay = min(self._backoff * 2 ** (self._young_deaths - 1), MAX_BACKOFF)
        self._next_start = time.monotonic() + delay
        log.warning("supervisor: worker %d ended unexpectedly (%s) after %.1fs; starting "
                    "another in %gs", worker.pid, describe_exit(status), lived, delay)

    def _stop_all(self) -> None:
        """Ends every worker (SIGTERM, then SIGKILL after the drain had its time)."""
        self._signals = max(self._signals, 1)  # stopping: no worker is replaced
        for pid in self._workers:
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while self._workers and time.monotonic() < deadline:
            signal.sigtimedwait(_SIGNALS, 0.2)
            self._reap()
        for pid in self._workers:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        self._workers.clear()


def worker_count(processes: int) -> int:
    """The number of workers ``processes`` asks for: 0 is one per core this process may use."""
    return processes or usable_cores()


def serve_workers(config: Config, count: int, started: Callable[[], None]) -> int:
    """The parent of ``count`` workers: start-up work, sockets, workers, until a signal.
    Raises ``ConfigError`` (before any port opens) or ``GaveUp``; returns the exit status."""
    asyncio.run(_prepare(config))
    # The workers' metric files: private to this run, removed when it ends.
    remove_stale_metrics_dirs(Path(tempfile.gettempdir()))
    try:
        metrics_dir = Path(tempfile.mkdtemp(prefix=f"{METRICS_PREFIX}{os.getpid()}-"))
    except OSError as exc:
        raise ConfigError(f"cannot create the workers' metrics directory in "
                          f"{tempfile.gettempdir()}: {exc.strerror or exc}") from None
    try:
        sockets = listen(config)
    except ConfigError:
        shutil.rmtree(metrics_dir, ignore_errors=True)
        raise

    def close_sockets() -> None:
        for sock in sockets:
            sock.close()

    try:
        started()
        announce(config, count)
        log.info("supervisor %d: worker metrics in %s", os.getpid(), metrics_dir)
        return Supervisor(count, lambda: _work(config, sockets, metrics_dir),
                          on_exit=lambda pid: worker_gone(metrics_dir, pid),
                          before_stop=close_sockets).run()
    finally:
        close_sockets()
        shutil.rmtree(metrics_dir, ignore_errors=True)


def remove_stale_metrics_dirs(parent: Path) -> list[Path]:
    """Remove the metrics directories (``tornado-files-metrics-<pid>-*``) in ``parent`` whose
    supervisor is gone without removing its own (a SIGKILL, a power cut); the ones removed.
    A directory whose PID is alive (its supervisor, or a process that reused the PID) or
    that another user owns is kept."""
    removed = []
    for folder in parent.glob(f"{METRICS_PREFIX}*-*"):
        pid_text = folder.name[len(METRICS_PREFIX):].split("-", 1)[0]
        try:
            if not folder.is_dir() or folder.stat().st_uid != os.getuid() or _alive(int(pid_text)):
                continue
        except (OSError, ValueError):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    if removed:
        log.info("supervisor: removed %d metrics folder(s) of ended servers", len(removed))
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def _prepare(config: Config) -> None:
    """The one-time start-up work; every store is closed again before the fork."""
    services, singleton = await start(config)
    await singleton.stop()  # a worker takes the sweeper's lease
    await services.close()


def _work(config: Config, sockets: Sequence[socket.socket], metrics_dir: Path) -> int:
    """A worker's life, after the fork: its own stores and event loop, then serving."""
    enable_multiprocess(metrics_dir)
    try:
        asyncio.run(_serve_worker(config, sockets))
    except ConfigError as exc:
        log.error("worker %d cannot start: %s", os.getpid(), exc)
        return WORKER_CANNOT_START
    return 0


async def _serve_worker(config: Config, sockets: Sequence[socket.socket]) -> None:
    services, singleton = await start(config, multiprocess=True, sweep=False)
    await serve(services, singleton, sockets,
                started=lambda: log.info("worker %d serving", os.getpid()))
