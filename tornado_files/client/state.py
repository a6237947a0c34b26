"""The CLI's memory of unfinished tus uploads (``--state``, by default
``~/.cache/tornado-files/uploads.json``): a JSON object, a file's fingerprint → its upload's
URL path, so that running the same command again continues the upload.

Several runs may use the file at once. Each change is a load-modify-save under an exclusive
``flock`` on ``PATH.lock`` beside it (created once, never removed: removing a lock file lets
two runs lock two different files); the new content goes to a temporary file of the run's own
(``.PATH.<random>.tmp``, mode 0600) that is then renamed over the state, so a reader never
sees half a file and no run loses another's entry.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tornado_files.client.localio import local_error


class ResumeState:
    """Upload URLs per file fingerprint, in the JSON file ``path``. Errors: a state file or
    folder that cannot be read or written is ``LocalFileError`` (exit status 4) naming it; a
    file that is not a JSON object of strings counts as empty."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.with_name(f"{path.name}.lock")

    @staticmethod
    def fingerprint(path: Path, base_url: str, route: str) -> str:
        """The key of one upload: the file (absolute path, size, mtime in ns), the server and
        the route, as 64 hex digits."""
        stat = path.stat()
        text = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{base_url}|{route}"
        return hashlib.sha256(text.encode()).hexdigest()

    def get(self, key: str) -> str | None:
        """The URL remembered for ``key`` (no lock: the file is only ever replaced whole)."""
        return self._load().get(key)

    def put(self, key: str, url: str) -> None:
        with self._locked():
            entries = self._load()
            entries[key] = url
            self._save(entries)

    def drop(self, key: str) -> None:
        with self._locked():
            entries = self._load()
            if entries.pop(key, None) is not None:
                self._save(entries)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the exclusive lock on ``PATH.lock`` (blocking until other runs let go)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise local_error(exc, self.lock_path) from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)  # and with it the lock

    def _load(self) -> dict[str, str]:
        try:
            loaded = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        except OSError as exc:
            raise local_error(exc, self.path, "read") from None
        if not isinstance(loaded, dict):
            return {}
        return {k: v for k, v in loaded.items() if isinstance(v, str)}

    def _save(self, entries: dict[str, str]) -> None:
        """Write ``entries`` to a temporary file of this run's own, flushed to disk, then
        rename it over the state (atomic); the temporary file never outlives a failure."""
        try:
            descriptor, temp = tempfile.mkstemp(dir=self.path.parent,
                                                prefix=f".{self.path.name}.", suffix=".tmp")
        except OSError as exc:
            raise local_error(exc, self.path) from None
        try:
            with os.fdopen(descriptor, "w") as fh:
                fh.write(json.dumps(entries, indent=1))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(temp, self.path)
        except OSError as exc:
            Path(temp).unlink(missing_ok=True)
            raise local_error(exc, self.path) from None
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
