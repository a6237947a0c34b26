"""``tornado-files upload|download|ls|rm``: argument parsing, progress bars, exit codes.

Exit codes: 0 done; 1 the server refused (the JSON:API error, in one line); 2 bad usage;
3 the server could not be reached; 130 interrupted (Ctrl-C; a tus upload resumes on re-run).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from tqdm import tqdm

from tornado_files.client.http import Api, ClientError
from tornado_files.client.transfers import (
    ResumeState,
    download,
    list_files,
    remove,
    upload_multipart,
    upload_tus,
)
from tornado_files.config import ConfigError, parse_size

DEFAULT_URL = "http://127.0.0.1:8888"
LIST_FILTERS = ("mime_type", "size_greater_than", "size_less_than", "added_since",
                "modified_since", "filename", "route", "owner", "sha256", "sort", "limit",
                "cursor")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _common(parser: argparse.ArgumentParser) -> None:
    # The server ignores these two variables (tornado_files.config.CLIENT_VARIABLES).
    parser.add_argument("--url", default=os.environ.get("TORNADO_FILES_URL", DEFAULT_URL),
                        help=f"server (default {DEFAULT_URL}, or $TORNADO_FILES_URL)")
    parser.add_argument("--token", default=os.environ.get("TORNADO_FILES_TOKEN"),
                        help="bearer token (or $TORNADO_FILES_TOKEN)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tornado-files", description="Upload and download large files.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    up = commands.add_parser("upload", help="upload files (tus for large ones, resumable)")
    up.add_argument("files", nargs="+", type=Path)
    up.add_argument("--route", default="/api/files", help="upload route (default /api/files)")
    up.add_argument("--data", help="JSON object stored as the files' data")
    up.add_argument("--tus-threshold", default="16MiB",
                    help="files at least this big go over tus (default 16MiB)")
    up.add_argument("--chunk-size", default="8MiB", help="tus PATCH size (default 8MiB)")
    up.add_argument("--state", type=Path, help="where unfinished uploads are remembered")
    down = commands.add_parser("download", help="download a file (resumes a partial one)")
    down.add_argument("id")
    down.add_argument("-o", "--output", type=Path, help="file to write (default: its name)")
    ls = commands.add_parser("ls", help="list files")
    for name in LIST_FILTERS:
        ls.add_argument("--" + name.replace("_", "-"), dest=name)
    ls.add_argument("--json", action="store_true", help="print the raw JSON page")
    rm = commands.add_parser("rm", help="delete files")
    rm.add_argument("ids", nargs="+")
    for sub in (up, down, ls, rm):
        _common(sub)
    return parser


def _state_path(given: Path | None) -> Path:
    if given is not None:
        return given
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "tornado-files" / "uploads.json"


def _bar(name: str, total: int) -> tuple[Any, Callable[[int], None]]:
    bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name,
               file=sys.stderr, disable=None, leave=True)

    def update(position: int) -> None:
        bar.n = position
        bar.refresh()
    return bar, update


def _upload(api: Api, args: argparse.Namespace) -> None:
    data = json.loads(args.data) if args.data else None
    if data is not None and not isinstance(data, dict):
        raise ClientError("--data must be a JSON object", exit_code=2)
    threshold, chunk = parse_size(args.tus_threshold), parse_size(args.chunk_size)
    state = ResumeState(_state_path(args.state))
    for path in args.files:
        if not path.is_file():
            raise ClientError(f"{path}: no such file", exit_code=2)
        size = path.stat().st_size
        bar, progress = _bar(path.name, size)
        try:
            if size >= threshold:
                resource = upload_tus(api, path, args.route, data, state, chunk, progress)
            else:
                resource = upload_multipart(api, path, args.route, data, progress)
        finally:
            bar.close()
        print(f"{resource['id']}\t{api.base_url}{resource['url']}\t{path}")


def _download(api: Api, args: argparse.Namespace) -> None:
    bars: list[Any] = []

    def start(total: int) -> Callable[[int], None]:
        bar, update = _bar(args.id, total)
        bars.append(bar)
        return update
    try:
        target, resource = download(api, args.id, args.output, start)
    finally:
        for bar in bars:
            bar.close()
    print(f"{target}\t{resource['size']} bytes\tsha256 {resource['sha256']} verified")


def _ls(api: Api, args: argparse.Namespace) -> None:
    params = {name: getattr(args, name) for name in LIST_FILTERS
              if getattr(args, name) is not None}
    page = list_files(api, params)
    if args.json:
        print(json.dumps(page, indent=1))
        return
    for item in page["files"]:
        print(f"{item['id']}\t{item['size']}\t{item['added']}\t{item['mime_type']}\t"
              f"{item['filename']}")
    if page["next"]:
        print(f"(more: --cursor {page['next'].split('cursor=')[-1]})", file=sys.stderr)


def _rm(api: Api, args: argparse.Namespace) -> None:
    for file_id in args.ids:
        remove(api, file_id)
        print(f"deleted {file_id}")


COMMANDS: dict[str, Callable[[Api, argparse.Namespace], None]] = {
    "upload": _upload, "download": _download, "ls": _ls, "rm": _rm}


def run(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    try:
        COMMANDS[args.command](Api(args.url, args.token), args)
    except ClientError as exc:
        print(f"tornado-files {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (ConfigError, ValueError) as exc:
        print(f"tornado-files {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"tornado-files {args.command}: error: {exc.strerror or exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print(f"tornado-files {args.command}: interrupted (run it again to resume)",
              file=sys.stderr)
        return 130
    return 0
