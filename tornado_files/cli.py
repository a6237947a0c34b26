"""Command line: ``tornado-files serve`` (and ``python server.py``) → Config → running server;
``tornado-files fsck`` → Config → a reconciliation of blobs and records (``fsck.py``).

Every start-up problem ends in one line on stderr and a non-zero exit, before the port opens.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import logging.handlers
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from tornado.ioloop import PeriodicCallback
from tornado.netutil import bind_sockets

from tornado_files.app import (
    build_hook_sender,
    build_runner,
    build_services,
    build_sweeper,
    make_app,
)
from tornado_files.auth.settings import startup_warnings
from tornado_files.config import Config, ConfigError, build_config, env_settings, load_toml
from tornado_files.errors import BackendUnavailable
from tornado_files.fsck import PAGE_SIZE, Fsck, FsckReport
from tornado_files.heap import keep_buffers_in_heap
from tornado_files.logs import LOG_FORMATS, formatter_for
from tornado_files.processing.settings import startup_warnings as media_warnings
from tornado_files.services import Services
from tornado_files.store_identity import verify_stores
from tornado_files.web.edge import build_http_server

log = logging.getLogger("tornado_files")
# At shutdown, how long interrupted requests get to settle before the stores close.
SETTLE_SECONDS = 5.0


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = _Parser(prog=prog, description="A server for very large file uploads.")
    add = parser.add_argument
    add("--host", help="address to listen on (default 127.0.0.1)")
    add("--port", type=int, help="port to listen on (default 8888)")
    add("--data-dir", dest="data_dir", help="files and SQLite database (default ./data)")
    add("--config", help="TOML file: routes, CORS origins, limits")
    add("--storage", choices=("disk", "gridfs"), help="default blob store (default disk)")
    add("--mongodb-uri", dest="mongodb_uri",
        help="keep metadata in MongoDB (mongodb://host:27017/tornado_files)")
    add("--max-upload-size", dest="max_upload_size", help="cap of /api/files (default 10GiB)")
    add("--log-format", dest="log_format", choices=LOG_FORMATS,
        help="log lines as text (default) or JSON, one object per line")
    add("--allow-anonymous", dest="allow_anonymous", action="store_const", const=True,
        help="with no tokens or jwt configured, listen on a non-loopback address anyway")
    return parser


def _records_at(config: Config) -> str:
    if not config.mongodb_uri:
        return "SQLite"
    from tornado_files.mongo import describe  # the driver loads only when MongoDB is used

    return describe(config.mongodb_uri)


def load_config(argv: Sequence[str], environ: Mapping[str, str], prog: str) -> Config:
    """CLI over environment over TOML over defaults; raises ConfigError."""
    return _config_from(vars(_parser(prog).parse_args(list(argv))), environ)


def _config_from(args: dict[str, Any], environ: Mapping[str, str]) -> Config:
    config_path = args.pop("config") or environ.get("TORNADO_FILES_CONFIG")
    toml: dict[str, Any] = {}
    if config_path:
        toml = load_toml(Path(config_path))
    return build_config(toml, env_settings(environ), args,
                        Path(config_path) if config_path else None)


def _check_writable(data_dir: Path) -> None:
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


async def _start(config: Config) -> Services:
    _check_writable(config.data_dir)
    services = build_services(config)
    try:
        await services.startup()
        await build_sweeper(services).sweep_once()  # leftovers of a crash, before serving
    except BackendUnavailable:
        await services.close()
        where = _records_at(config) if config.mongodb_uri else str(config.data_dir)
        raise ConfigError(f"cannot reach MongoDB at {where}" if config.mongodb_uri
                          else f"cannot use {where}") from None
    except OSError as exc:
        await services.close()
        raise ConfigError(f"cannot prepare {config.data_dir}: {exc.strerror}") from None
    return services


async def _serve(config: Config, started: Callable[[], None] = lambda: None) -> None:
    services = await _start(config)
    periodic = PeriodicCallback(build_sweeper(services).sweep_safely, config.sweep_interval * 1000)
    try:
        sockets = bind_sockets(config.port, config.host)
    except OSError as exc:
        await services.close()
        raise ConfigError(f"cannot listen on {config.host}:{config.port}: {exc.strerror}") from None
    server = build_http_server(make_app(services), config.max_json_body,
                               idle_connection_timeout=120)
    server.add_sockets(sockets)
    periodic.start()
    runner = build_runner(services)
    runner.start()
    hooks = build_hook_sender(services)
    hooks.start()
    started()
    log.info("tornado-files listening on http://%s:%d (files in %s, records in %s)",
             config.host, config.port, config.data_dir.resolve(),
             _records_at(config))
    for warning in (*startup_warnings(config.auth), *media_warnings(config.media)):
        log.warning("%s", warning)
    stop, hurry = asyncio.Event(), asyncio.Event()

    def on_signal() -> None:
        # The first SIGTERM/SIGINT drains; a second one ends the drain at once.
        (hurry if stop.is_set() else stop).set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    await stop.wait()
    services.lifecycle.drain()  # /readyz and /healthz: 503 from now on
    periodic.stop()
    server.stop()  # no new connections
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


class _StartupLog(logging.handlers.MemoryHandler):
    """Holds log records until the server is up: a failed start-up then says one line, and
    a good one shows everything it logged on the way."""

    def __init__(self, target: logging.Handler) -> None:
        super().__init__(capacity=10_000, flushLevel=logging.CRITICAL + 1, target=target,
                         flushOnClose=False)

    def shouldFlush(self, record: logging.LogRecord) -> bool:
        return False

    def flush(self) -> None:
        # logging.shutdown() flushes every handler at exit: a failed start-up must not
        # print what it held. Only pass_through() sends the records on.
        return

    def pass_through(self) -> None:
        """Started: show what was held, then log straight to the target."""
        root = logging.getLogger()
        root.removeHandler(self)
        super().flush()
        if self.target is not None:
            root.addHandler(self.target)


def _configure_logging() -> _StartupLog:
    target = logging.StreamHandler()
    target.setFormatter(formatter_for("text"))
    held = _StartupLog(target)
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(held)
    return held


def serve(argv: Sequence[str], prog: str = "tornado-files serve") -> int:
    held = _configure_logging()
    try:
        config = load_config(argv, os.environ, prog)
        if held.target is not None:
            held.target.setFormatter(formatter_for(config.log_format))
        keep_buffers_in_heap()
        asyncio.run(_serve(config, started=held.pass_through))
    except ConfigError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _page_size(value: str) -> int:
    size = int(value)
    if size < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return size


def _fsck_parser(prog: str) -> argparse.ArgumentParser:
    parser = _Parser(prog=prog, description=(
        "Check every blob against the records and every record against its blob, a page at "
        "a time. Exit status: 0 clean, 1 something found (and not repaired), 2 a "
        "configuration or connection error."))
    add = parser.add_argument
    add("--data-dir", dest="data_dir", help="files and SQLite database (default ./data)")
    add("--config", help="the server's TOML file")
    add("--mongodb-uri", dest="mongodb_uri", help="records in MongoDB (and GridFS blobs)")
    add("--repair", action="store_true",
        help="remove orphan blobs older than sweep_grace and settle old intents (records "
             "whose blob is missing are only reported)")
    add("--page-size", dest="page_size", type=_page_size, default=PAGE_SIZE,
        help=f"keys or records read at a time (default {PAGE_SIZE})")
    return parser


async def _fsck(config: Config, repair: bool, page_size: int) -> FsckReport:
    if not config.mongodb_uri and not (config.data_dir / "metadata.sqlite3").is_file():
        raise ConfigError(f"no tornado-files data in {config.data_dir} "
                          "(metadata.sqlite3 not found)")
    services = build_services(config)
    try:
        # Only the records and the journal are prepared: the blob stores' start-up would
        # remove stale temp files, and a check without --repair changes nothing there.
        await services.metadata.startup()
        await services.intents.startup()
        await services.uploads.startup()
        # A store that is not the records' one (a volume not mounted) would make every
        # record's blob look missing: refuse instead, in one line.
        await verify_stores(services.blob_stores.values(), services.metadata, write=False)
        checker = Fsck(services.metadata, services.intents, services.uploads,
                       services.blob_stores, config.sweep_grace, emit=print,
                       page_size=page_size)
        return await checker.run(repair)
    except BackendUnavailable:
        raise ConfigError(f"cannot reach MongoDB at {_records_at(config)}" if config.mongodb_uri
                          else f"cannot use {config.data_dir}") from None
    except OSError as exc:
        raise ConfigError(f"cannot use {config.data_dir}: {exc.strerror or exc}") from None
    finally:
        await services.close()


def fsck(argv: Sequence[str], prog: str = "tornado-files fsck") -> int:
    """``tornado-files fsck [--repair]``: findings on stdout, one line each, then a summary."""
    # Driver errors are logged where they happen; here they become one line on stderr.
    logging.getLogger().addHandler(logging.NullHandler())
    try:
        args = vars(_fsck_parser(prog).parse_args(list(argv)))
        repair, page_size = args.pop("repair"), args.pop("page_size")
        report = asyncio.run(_fsck(_config_from(args, os.environ), repair, page_size))
    except ConfigError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    return 0 if report.clean else 1


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "serve":
        return serve(argv[1:])
    if argv and argv[0] == "fsck":
        return fsck(argv[1:])
    from tornado_files.client.commands import run  # the client needs none of the server

    return run(argv)  # also --help, which describes serve and fsck too
