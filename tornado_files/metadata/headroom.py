"""Room kept for the records on a disk that something else fills (docs/operations.md).

``min_free_space`` stops our own uploads before the disk is full, but another program can fill
it: then SQLite cannot write — not even the ``DELETE`` that would free space. So the data
directory keeps a small reserve file beside the database. When a write fails for lack of space,
the reserve is removed and the write tried once more; the reserve comes back once the disk has
room again (checked with the health probe). The same trick as a filesystem's reserved blocks,
or a "ballast" file.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

log = logging.getLogger("tornado_files.metadata")

HEADROOM_BYTES = 4 * 1024 * 1024


class Headroom:
    """A reserve file of ``size`` bytes at ``path`` (blocking methods: run them off the loop)."""

    def __init__(self, path: Path, size: int = HEADROOM_BYTES) -> None:
        self.path = path
        self.size = size

    def ensure(self) -> None:
        """Create the reserve if it is missing and the disk can spare it twice over; never
        raises (no reserve is a degraded state, not an error)."""
        if self.path.exists():
            return
        try:
            stats = os.statvfs(self.path.parent)
            if stats.f_bavail * stats.f_frsize < 2 * self.size:
                return
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.size)  # real blocks, not a sparse file
                os.fsync(fd)
            finally:
                os.close(fd)
        except FileExistsError:
            return
        except OSError as exc:
            log.warning("could not reserve %d bytes at %s: %s", self.size, self.path, exc)
            with contextlib.suppress(OSError):
                self.path.unlink()

    def release(self) -> bool:
        """Remove the reserve; whether there was one to give."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        log.warning("the disk under %s is full: the records used their reserved %d bytes; "
                    "free space", self.path.parent, self.size)
        return True
