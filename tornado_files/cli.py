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
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from tornado_files import serving
from tornado_files.app import build_services
from tornado_files.config import Config, ConfigError, build_config, env_settings, load_toml
from tornado_files.errors import BackendUnavailable
from tornado_files.fsck import PAGE_SIZE, Fsck, FsckReport
from tornado_files.heap import keep_buffers_in_heap
from tornado_files.logs import LOG_FORMATS, formatter_for
from tornado_files.serving import announce, listen, records_at, start
from tornado_files.store_identity import verify_stores
from tornado_files.supervisor import GaveUp, serve_workers, worker_count


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
    add("--storage", choices=("disk", "gridfs", "s3", "gcs", "azure"),
        help="default blob store (default disk; s3/gcs/azure need their table)")
    add("--mongodb-uri", dest="mongodb_uri",
        help="keep metadata in MongoDB (mongodb://host:27017/tornado_files)")
    add("--max-upload-size", dest="max_upload_size", help="cap of /api/files (default 10GiB)")
    add("--log-format", dest="log_format", choices=LOG_FORMATS,
        help="log lines as text (default) or JSON, one object per line")
    add("--processes", type=_processes,
        help="worker processes sharing the port (default 1; 0: one per core)")
    add("--allow-anonymous", dest="allow_anonymous", action="store_const", const=True,
        help="with no tokens or jwt configured, listen on a non-loopback address anyway")
    return parser


def _processes(value: str) -> int:
    try:
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if count < 0:
        raise argparse.ArgumentTypeError("must be 0 (one per core) or more")
    return count


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


async def _serve(config: Config, started: Callable[[], None] = lambda: None) -> None:
    """One process serving (``--processes 1``)."""
    services, singleton = await start(config)
    try:
        sockets = listen(config)
    except ConfigError:
        await services.close()
        raise

    def up() -> None:
        started()
        announce(config)

    await serving.serve(services, singleton, sockets, up)


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
    # azure-core logs every HTTP request and answer, headers and all, at INFO
    # (http_logging_policy): 15-20 lines per block staged or 1 MiB read. Its warnings stay.
    logging.getLogger("azure").setLevel(logging.WARNING)
    return held


def serve(argv: Sequence[str], prog: str = "tornado-files serve") -> int:
    held = _configure_logging()
    try:
        config = load_config(argv, os.environ, prog)
        if held.target is not None:
            held.target.setFormatter(formatter_for(config.log_format))
        keep_buffers_in_heap()
        count = worker_count(config.processes)
        if count > 1:
            return serve_workers(config, count, started=held.pass_through)
        asyncio.run(_serve(config, started=held.pass_through))
    except ConfigError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except GaveUp as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
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
        raise ConfigError(f"cannot reach MongoDB at {records_at(config)}" if config.mongodb_uri
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
