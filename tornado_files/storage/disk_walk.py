"""The disk store's sweeping work on the file system (blocking: run on the pool).

Bounded per call: ``remove_quiet`` looks at the few paths a key can have, ``list_committed``
walks the ``blobs/ab/cd/`` fan-out in sorted order and keeps at most ``limit`` names.
"""

from __future__ import annotations

import heapq
import os
import re
from collections.abc import Iterator
from pathlib import Path

_KEY = re.compile(r"^[0-9a-f]{32}$")
_FAN = re.compile(r"^[0-9a-f]{2}$")


def remove_quiet(paths: list[Path], quiet_before: float) -> bool:
    """Unlink every existing path in ``paths`` unless one was modified at or after
    ``quiet_before`` (a POSIX timestamp); False then, and nothing is removed."""
    present = []
    for path in paths:
        try:
            modified = path.stat().st_mtime
        except FileNotFoundError:
            continue
        if modified >= quiet_before:
            return False
        present.append(path)
    for path in present:
        path.unlink(missing_ok=True)
    return True


def list_committed(blobs: Path, after: str | None, limit: int) -> list[str]:
    """Keys under ``blobs/ab/cd/`` in ascending order, strictly after ``after``, at most
    ``limit``: folders before ``after``'s own are skipped unread, and of each folder read only
    the ``limit`` smallest names are kept."""
    start = after or ""
    found: list[str] = []
    for top in _fan_out(blobs):
        if top < start[:2]:
            continue
        for middle in _fan_out(blobs / top):
            prefix = top + middle
            if prefix < start[:4]:
                continue
            if len(found) >= limit:
                return found
            found += heapq.nsmallest(limit - len(found), _keys_in(blobs / top / middle,
                                                                  prefix, start))
    return found


def _fan_out(folder: Path) -> list[str]:
    """The two-hex-digit subfolders of ``folder``, sorted (at most 256)."""
    try:
        with os.scandir(folder) as entries:
            return sorted(e.name for e in entries if _FAN.match(e.name) and e.is_dir())
    except FileNotFoundError:
        return []


def _keys_in(folder: Path, prefix: str, after: str) -> Iterator[str]:
    """Our keys in ``folder`` after ``after``, unsorted and one at a time (a big folder is
    never held in memory: the caller keeps only the smallest few)."""
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                name = entry.name
                if name > after and name.startswith(prefix) and _KEY.match(name) \
                        and entry.is_file():
                    yield name
    except FileNotFoundError:
        return
