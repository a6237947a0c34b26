"""Small real file systems for the tests that need one full or read-only: a tmpfs mounted
for the test and unmounted after it. Mounting needs root; without it those tests fail
(never skip)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise OSError(result.stderr.strip() or f"mount {' '.join(args)} failed")


@contextmanager
def tmpfs(path: Path, size: str = "20m", *, readonly: bool = False) -> Iterator[Path]:
    """A tmpfs of ``size`` at ``path`` (created), remounted read-only if asked."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
    except OSError as exc:
        # Not a skip: a test that cannot run here is missing work, and CI must say so.
        pytest.fail(f"cannot mount a tmpfs here (the test needs root): {exc}")
    try:
        if readonly:
            _mount("-o", "remount,ro", str(path))
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=True, timeout=30)
