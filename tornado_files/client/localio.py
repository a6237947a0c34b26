"""The client's own files and its stdout: a failure there is said as one line that names the
path (exit status 4), never as "server unreachable"; a stdout whose reader went away (a broken
pipe: ``… | head``) is told apart, so that the command can end quietly."""

from __future__ import annotations

import sys
from pathlib import Path

from tornado_files.client.http import ClientError

LOCAL_IO = 4  # exit status: a local file (or stdout) could not be read or written
STDOUT_CLOSED = 141  # exit status: stdout's reader went away (128 + SIGPIPE, as cat ends)


class LocalFileError(ClientError):
    """A local file, folder or stdout could not be read or written; the message names it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=LOCAL_IO)


class StdoutClosed(Exception):
    """Writing to stdout met a broken pipe: whoever read it has gone (``head`` is done)."""


def local_error(exc: OSError, path: Path | str, doing: str = "write") -> LocalFileError:
    """``cannot <doing> <path>: <the system's reason>``.

    >>> str(local_error(OSError(28, "No space left on device"), Path("a/b.part")))
    'cannot write a/b.part: No space left on device'
    """
    return LocalFileError(f"cannot {doing} {path}: {exc.strerror or exc}")


def check_folder(target: Path) -> None:
    """Refuse at once a target whose folder is missing or is not a folder (rather than an
    error about a part file the user never named).

    Raises :class:`LocalFileError`: ``cannot write x/y: the folder x does not exist`` or
    ``… x is not a folder``."""
    folder = target.parent
    if folder.is_dir():
        return
    reason = f"{folder} is not a folder" if folder.exists() else \
        f"the folder {folder} does not exist"
    raise LocalFileError(f"cannot write {target}: {reason}")


def say(text: str) -> None:
    """One line to stdout, flushed (a failure is met here, not at exit).

    Raises :class:`StdoutClosed` on a broken pipe, :class:`LocalFileError` on any other
    failure (a full disk behind ``>``)."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        raise StdoutClosed() from None
    except OSError as exc:
        raise local_error(exc, "to stdout") from None


class StdoutSink:
    """Bytes to stdout (``download -o -``), with :func:`say`'s errors."""

    def write(self, chunk: bytes) -> None:
        try:
            sys.stdout.buffer.write(chunk)
        except BrokenPipeError:
            raise StdoutClosed() from None
        except OSError as exc:
            raise local_error(exc, "to stdout") from None

    def flush(self) -> None:
        try:
            sys.stdout.buffer.flush()
        except BrokenPipeError:
            raise StdoutClosed() from None
        except OSError as exc:
            raise local_error(exc, "to stdout") from None
