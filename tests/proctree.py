"""A server's process tree read from /proc: its workers, whether they still live."""

from __future__ import annotations

import time
from pathlib import Path


def children(pid: int) -> set[int]:
    """The live (not zombie) processes whose parent is ``pid``."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for_children(pid: int, count: int, timeout: float = 10.0) -> set[int]:
    """``pid``'s ``count`` live children, waited for up to ``timeout`` seconds; raises
    ``AssertionError`` naming what was found if they do not appear."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(found := children(pid)) == count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"expected {count} workers, found {children(pid)}")
