"""``tornado-files upload|download|ls|rm|link``: argument parsing, progress bars, exit codes.

Exit codes: 0 done; 1 the server refused (the JSON:API error, in one line), or a local file
is in the way (download never overwrites); 2 bad usage; 3 the server could not be reached (or
the connection was lost); 4 a local file, folder or stdout could not be read or written (the
line names it); 130 interrupted (Ctrl-C; a tus upload resumes on re-run); 141 stdout's reader
went away (``… | head``: nothing said).
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

from tornado_files.client.downloads import download, download_to
from tornado_files.client.durations import parse_duration
from tornado_files.client.http import Api, ClientError
from tornado_files.client.links import make_link
from tornado_files.client.localio import LOCAL_IO, STDOUT_CLOSED, StdoutClosed, StdoutSink, say
from tornado_files.client.mediafacts import media_column
from tornado_files.client.options import byte_count, count, positive_size
from tornado_files.client.state import ResumeState
from tornado_files.client.transfers import (
    list_files,
    remove,
    upload_multipart,
    upload_tus,
)
from tornado_files.config import ConfigError

DEFAULT_URL = "http://127.0.0.1:8888"
LIST_FILTERS = ("mime_type", "size_greater_than", "size_less_than", "added_since",
                "modified_since", "filename", "route", "owner", "sha256", "sort", "limit",
                "cursor")


LIST_HELP = {
    "mime_type": "detected type, e.g. image/png or image/*",
    "size_greater_than": "larger than this size: bytes (0: not empty), or 10MiB",
    "size_less_than": "smaller than this size: bytes, or 1GiB",
    "added_since": "added at or after this time (2026-11-22T10:00:00Z, or a date)",
    "modified_since": "modified at or after this time",
    "filename": "name contains this text (ignoring case)",
    "route": "uploaded through this route, e.g. /api/avatars",
    "owner": "with this owner",
    "sha256": "with this content hash (hex)",
    "sort": "-added (default), added, size, -size, filename, -filename",
    "limit": "files per page, 1 to 1000 (default 50)",
    "cursor": "continue a listing (printed after a full page)",
}
# Options that take a value: "--sort -size" is given to argparse as "--sort=-size", since
# argparse reads a value that starts with "-" as another option (prepare_argv).
VALUE_OPTIONS = frozenset({
    *("--" + name.replace("_", "-") for name in LIST_FILTERS),
    "--url", "--token", "--data", "--tus-threshold", "--chunk-size", "--state", "--output",
    "--expires"})
DESCRIPTION = """Upload and download large files with a tornado-files server, over its public
HTTP API. Commands:

  serve     run the server (the same options as python server.py)
  fsck      check the server's stored files against its records (not a client)
  upload    upload files; large ones over tus, resumable and retried with back-off
  download  download a file, resumable, checked by its sha256
  ls        list files, with filters and sorting
  rm        delete files, their records and contents
  link      print a shareable download URL that works without a token until it expires

Run "tornado-files COMMAND --help" for a command's options. On a server that requires
tokens, give yours with --token or $TORNADO_FILES_TOKEN (every client command)."""
EPILOG = ("exit status: 0 done, 1 the server refused (or a local file is in the way),\n"
          "2 bad usage, 3 server unreachable, 4 a local file could not be read or written,\n"
          "130 interrupted, 141 stdout closed by its reader (| head)")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _common(parser: argparse.ArgumentParser) -> None:
    # The server ignores these two variables (tornado_files.config.CLIENT_VARIABLES).
    parser.add_argument("--url", default=os.environ.get("TORNADO_FILES_URL", DEFAULT_URL),
                        help=f"server (default {DEFAULT_URL}, or $TORNADO_FILES_URL)")
    parser.add_argument("--token", default=os.environ.get("TORNADO_FILES_TOKEN"),
                        help="access token, sent as Authorization: Bearer (default "
                             "$TORNADO_FILES_TOKEN); needed when the server requires tokens")


def _command(commands: Any, name: str, summary: str, description: str
             ) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name, prog=f"tornado-files {name}", help=summary, description=description,
        epilog=EPILOG.replace("\n", " "))
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tornado-files", usage="%(prog)s [-h] COMMAND ...",
                     description=DESCRIPTION, epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    # The commands are listed in DESCRIPTION, with serve and fsck (run by tornado_files.cli).
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser,
                                     metavar="COMMAND", help=argparse.SUPPRESS)
    up = _command(commands, "upload", "upload files", (
        "Upload files and print id, URL and file per line. Files smaller than "
        "--tus-threshold go in one multipart POST; larger ones over tus in --chunk-size "
        "PATCHes, retried with back-off, and resumed by running the same command again."))
    up.add_argument("files", nargs="+", type=Path, help="the files to upload")
    up.add_argument("--route", default="/api/files", help="upload route (default /api/files)")
    up.add_argument("--data", help="JSON object stored as the files' data")
    up.add_argument("--tus-threshold", default="16MiB",
                    help="files at least this big go over tus (default 16MiB; more than 0)")
    up.add_argument("--chunk-size", default="8MiB",
                    help="tus PATCH size (default 8MiB; more than 0)")
    up.add_argument("--state", type=Path, help="where unfinished uploads are remembered "
                    "(default ~/.cache/tornado-files/uploads.json)")
    down = _command(commands, "download", "download a file", (
        "Download a file by its id, checked by its sha256. An existing file is never "
        "touched: the command refuses it. An interrupted download waits in "
        "FILE.<sha256 prefix>.part and is resumed by running the same command again."))
    down.add_argument("id", help="the file's id (as upload and ls print it)")
    down.add_argument("-o", "--output", help=(
        "file to write, used as given; - writes the content to stdout (default: the file's "
        "name made safe: leading dots and spaces removed, / and \\ as _, so .bash_profile "
        "is saved as bash_profile)"))
    ls = _command(commands, "ls", "list files", (
        "List files, newest first: id, size, added, type and name per line (with --long, "
        "a media column before the name). Filters combine; a full page ends with the "
        "--cursor of the next one."))
    for name in LIST_FILTERS:
        ls.add_argument("--" + name.replace("_", "-"), dest=name, help=LIST_HELP[name])
    ls.add_argument("-l", "--long", action="store_true", help=(
        "add a media column before the name: dimensions (1600×1200), duration (2.0s, "
        "1:02:03) or pages (3 pages), and pending or failed while the media job has not "
        "ended well; - when there is nothing to say"))
    ls.add_argument("--json", action="store_true", help="print the raw JSON page")
    rm = _command(commands, "rm", "delete files",
                  "Delete files by id, their records and contents; this cannot be undone.")
    rm.add_argument("ids", nargs="+", help="ids of the files to delete")
    link = _command(commands, "link", "print a shareable download URL", (
        "Print a URL to a file's content that anyone can fetch without a token (curl, a "
        "browser, a download manager; Range requests included) until it expires. Anyone "
        "holding the URL can download the file: share it like the file itself."))
    link.add_argument("id", help="the file's id (as upload and ls print it)")
    link.add_argument("--expires", help="how long the URL works: 90s, 15m, 1h, 7d (default "
                      "1h, or the server's max_link_lifetime if that is shorter)")
    link.add_argument("--inline", action="store_true",
                      help="browsers show the file instead of saving it (images, audio, "
                           "video, plain text; other types are always saved)")
    for sub in (up, down, ls, rm, link):
        _common(sub)
    return parser


def prepare_argv(argv: Sequence[str]) -> list[str]:
    """Join a value that starts with a dash to its option (``--sort -size`` becomes
    ``--sort=-size``); everything after ``--`` stays as it is."""
    out: list[str] = []
    items = list(argv)
    index = 0
    while index < len(items):
        item = items[index]
        if item == "--":
            return out + items[index:]
        following = items[index + 1] if index + 1 < len(items) else None
        if item in VALUE_OPTIONS and following is not None and following.startswith("-") \
                and following != "--":
            out.append(f"{item}={following}")
            index += 2
            continue
        out.append(item)
        index += 1
    return out


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
    threshold = positive_size(args.tus_threshold, "--tus-threshold")
    chunk = positive_size(args.chunk_size, "--chunk-size")
    data = json.loads(args.data) if args.data else None
    if data is not None and not isinstance(data, dict):
        raise ClientError("--data must be a JSON object", exit_code=2)
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
        say(f"{resource['id']}\t{api.base_url}{resource['url']}\t{path}")


def _download(api: Api, args: argparse.Namespace) -> None:
    if args.output == "":
        raise ClientError("-o: give a file name, or - for stdout", exit_code=2)
    bars: list[Any] = []

    def start(total: int) -> Callable[[int], None]:
        bar, update = _bar(args.id, total)
        bars.append(bar)
        return update
    try:
        if args.output == "-":
            resource = download_to(api, args.id, StdoutSink(), start)
        else:
            out = Path(args.output) if args.output else None
            target, resource = download(api, args.id, out, start)
    finally:
        for bar in bars:
            bar.close()
    summary = f"\t{resource['size']} bytes\tsha256 {resource['sha256']} verified"
    if args.output == "-":
        print(f"-{summary}", file=sys.stderr)  # stdout holds the content
    else:
        say(f"{target}{summary}")


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _ls(api: Api, args: argparse.Namespace) -> None:
    params = {name: getattr(args, name) for name in LIST_FILTERS
              if getattr(args, name) is not None}
    for name in ("size_greater_than", "size_less_than"):
        if name in params:
            params[name] = str(byte_count(params[name], _option(name)))
    if "limit" in params:
        params["limit"] = str(count(params["limit"], "--limit"))
    page = list_files(api, params)
    if args.json:
        say(json.dumps(page, indent=1))
        return
    for item in page["files"]:
        media = f"{media_column(item)}\t" if args.long else ""
        say(f"{item['id']}\t{item['size']}\t{item['added']}\t{item['mime_type']}\t{media}"
            f"{item['filename']}")
    if page["next"]:
        print(f"(more: --cursor {page['next'].split('cursor=')[-1]})", file=sys.stderr)


def _rm(api: Api, args: argparse.Namespace) -> None:
    for file_id in args.ids:
        remove(api, file_id)
        say(f"deleted {file_id}")


def _link(api: Api, args: argparse.Namespace) -> None:
    try:
        expires_in = None if args.expires is None else parse_duration(args.expires)
    except ValueError as exc:
        raise ClientError(f"--expires: {exc}", exit_code=2) from None
    made = make_link(api, args.id, expires_in, args.inline)
    say(made.url)
    print(f"{made.resource['filename']}: the link works until {made.expires}", file=sys.stderr)


COMMANDS: dict[str, Callable[[Api, argparse.Namespace], None]] = {
    "upload": _upload, "download": _download, "ls": _ls, "rm": _rm, "link": _link}


def _local(exc: OSError) -> str:
    """An OSError of a local file in one line that names it."""
    if exc.filename is None:
        return str(exc.strerror or exc)
    both = f"{exc.filename} → {exc.filename2}" if exc.filename2 is not None else exc.filename
    return f"{both}: {exc.strerror or exc}"


def _detach_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush meets no broken pipe
    (Python's documented recipe, "Note on SIGPIPE")."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def run(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(prepare_argv(argv))
    try:
        COMMANDS[args.command](Api(args.url, args.token), args)
    except ClientError as exc:
        print(f"tornado-files {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (ConfigError, ValueError) as exc:
        print(f"tornado-files {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (StdoutClosed, BrokenPipeError):
        _detach_stdout()  # the reader has gone: no message, and nothing left to flush
        return STDOUT_CLOSED
    except OSError as exc:  # the network's are ClientErrors (http.py): this one is local
        print(f"tornado-files {args.command}: error: {_local(exc)}", file=sys.stderr)
        return LOCAL_IO
    except KeyboardInterrupt:
        print(f"tornado-files {args.command}: interrupted (run it again to resume)",
              file=sys.stderr)
        return 130
    return 0
