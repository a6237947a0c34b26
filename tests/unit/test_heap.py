"""heap.py: glibc takes the thresholds (in a child process, so the test run's own heap is left as
it is). Without a mallopt the function returns False; glibc refuses nothing we could pass."""

from __future__ import annotations

import subprocess
import sys

CODE = """
from tornado_files.heap import keep_buffers_in_heap as keep
print(keep(), keep(1 << 20, 1 << 21))
"""


def test_glibc_takes_the_thresholds() -> None:
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]
