"""One serving process: start-up (stores, the crash-leftover sweep), the HTTP server on its
sockets, the sweeper under its lease, the media job runner, the webhook sender, and the
graceful shutdown of docs/deploying.md. ``cli.py`` runs it alone (``--processes 1``);
``supervisor.py`` runs the start-up in the parent and ``serve`` in each worker.

Start-up problems are ``ConfigError``s: one line on stderr, before the port opens.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from tornado.netutil import bind_sockets

from tornado_files.app import (
    build_hook_sender,
    build_runner,
    build_services,
    build_sweeper,
    make_app,
)
from tornado_files.auth.settings import startup_warnings
from tornado_files.config import Config, ConfigError
from tornado_files.errors import BackendUnavailable
from tornado_files.processing.settings import startup_warnings as media_warnings
from tornado_files.services import Services
from tornado_files.singleton import Singleton
from tornado_files.web.edge import build_http_server

log = logging.getLogger("tornado_files")
# At shutdown, how long interrupted requests get to settle before the stores close.
SETTLE_SECONDS = 5.0
# The lease that picks the one process (of all sharing the metadata store) that sweeps.
SWEEPER_LEASE = "sweeper"


def records_at(config: Config) -> str:
    """Where the records are, for log lines: ``SQLite`` or the MongoDB URI without secrets."""
    if not config.mongodb_uri:
        return "SQLite"
    from tornado_files.mongo import describe  # the driver loads only when MongoDB is used

    return describe(config.mongodb_uri)


def check_writable(data_dir: Path) -> None:
    """A data directory that cannot be written to (a read-only mount, a full disk) is one
    line at start-up, not SQLite's traceback on the first write."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot prepare {data_dir}: {exc.strerror}") from None
    try:
        with tempfile.TemporaryFile(dir=data_dir, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise ConfigError(f"cannot write to {data_dir}: {exc.strerror}") from None


def sweeps(services: Services) -> Singleton:
    """The sweeper, run every ``sweep_interval`` by whichever process holds its lease."""
    return Singleton(services.leases, SWEEPER_LEASE, build_sweeper(services).sweep_safely,
                     services.config.sweep_interval)


async def start(config: Config, multiprocess: bool = False,
                sweep: bool = True) -> tuple[Services, Singleton]:
    """Started services and their sweeper. ``sweep``: first settle what a crash left
    (schema migrations and store checks happen either way) — if no other process sharing
    the store holds the sweeper's lease, else that one does it. Raises ``ConfigError``."""
    check_writable(config.data_dir)
    services = build_services(config, multiprocess=multiprocess)
    singleton = sweeps(services)
    try:
        await services.startup()
        if sweep and await singleton.acquire():
            await build_sweeper(services).sweep_once()  # leftovers of a crash, before serving
            singleton.mark_ran()
    except BackendUnavailable:
        await services.close()
        where = records_at(config) if config.mongodb_uri else str(config.data_dir)
        raise ConfigError(f"cannot reach MongoDB at {where}" if config.mongodb_uri
                          else f"cannot use {where}") from None
    except OSError as exc:
        await services.close()
        raise ConfigError(f"cannot prepare {config.data_dir}: {exc.strerror}") from None
    return services, singleton


def listen(config: Config) -> list[socket.socket]:
    """The listening sockets of ``host``:``port``; ``ConfigError`` if they cannot be had."""
    try:
        return bind_sockets(config.port, config.host)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {config.host}:{config.port}: {exc.strerror}"
                          ) from None


def announce(config: Config, workers: int = 1) -> None:
    """The start-up lines: where the server listens, with how many workers, and warnings."""
    log.info("tornado-files listening on http://%s:%d (files in %s, records in %s%s)",
             config.host, config.port, config.data_dir.resolve(), records_at(config),
             f"; {workers} worker processes" if workers > 1 else "")
    for warning in (*startup_warnings(config.auth), *media_warnings(config.media)):
        log.warning("%s", warning)


async def serve(services: Services, singleton: Singleton, sockets: Sequence[socket.socket],
                started: Callable[[], None] = lambda: None) -> None:
    """Serve on ``sockets`` until SIGTERM/SIGINT, then drain (docs/deploying.md)."""
    config = services.config
    server = build_http_server(make_app(services), config.max_json_body,
                               idle_connection_timeout=120)
    server.add_sockets(sockets)
    singleton.start()
    runner = build_runner(services)
    runner.start()
    hooks = build_hook_sender(services)
    hooks.start()
    started()
    stop, hurry = asyncio.Event(), asyncio.Event()

    def on_signal() -> None:
        # The first SIGTERM/SIGINT drains; a second one ends the drain at once.
        (hurry if stop.is_set() else stop).set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    await stop.wait()
    services.lifecycle.drain()  # /readyz and /healthz: 503 from now on
    server.stop()  # no new connections
    # Meanwhile another process sharing the store takes the sweeper's lease.
    giving_up = asyncio.ensure_future(singleton.stop())
    log.info("shutting down: uploads in flight get %gs to finish (a second signal: none)",
             config.shutdown_timeout)
    # Uploads waiting for their jobs (Prefer: wait) answer now, with what they have.
    await services.job_signals.release_waiters(SETTLE_SECONDS)
    await _drain(services, config.shutdown_timeout, hurry)
    await asyncio.sleep(0.05)  # the last answers reach the sockets before these close
    await server.close_all_connections()
    await runner.stop()  # jobs in flight are claimed again after their lease
    await hooks.stop()  # deliveries in flight are sent again after their lease
    # Closed connections run their requests' clean-up: a tus PATCH keeps every byte that
    # reached storage (as for a client that vanished), an upload removes what it wrote. The
    # stores must still be open for that; a bounded wait, then they close regardless.
    if not await services.settle(SETTLE_SECONDS):
        log.warning("shutting down: requests still cleaning up after %ss; the sweeper "
                    "finishes what they leave", SETTLE_SECONDS)
    await giving_up
    await services.close()


async def _drain(services: Services, within: float, hurry: asyncio.Event) -> None:
    """Wait until every request in flight has answered (an upload finishing, a tus PATCH
    ending), for at most ``within`` seconds or until ``hurry`` is set. What is left is then
    cut off: an upload aborts leaving nothing, a tus PATCH keeps what reached storage."""
    settling = asyncio.ensure_future(services.settle(within))
    hurrying = asyncio.ensure_future(hurry.wait())
    await asyncio.wait((settling, hurrying), return_when=asyncio.FIRST_COMPLETED)
    for waiting in (settling, hurrying):
        waiting.cancel()
    if hurry.is_set():
        log.info("shutting down now: a second signal")
    elif not settling.cancelled() and not settling.result():
        log.info("shutting down: requests still in flight after %gs are cut off", within)
