"""heap.py: after ``keep_buffers_in_heap`` a 1 MiB buffer comes from the heap, not from a fresh
``mmap`` (glibc's ``mallinfo2().hblkhd`` counts the bytes held in mmapped blocks). Each case runs
in a child process, so the test run's own heap is left as it is; the case without the call shows
that the check can tell the difference."""

from __future__ import annotations

import subprocess
import sys

import pytest

CODE = """
import ctypes, sys
from tornado_files.heap import keep_buffers_in_heap

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
took = keep_buffers_in_heap() if sys.argv[1] == "keep" else None
before = libc.mallinfo2().hblkhd
buffer = bytearray(1 << 20)
print(took, libc.mallinfo2().hblkhd - before)
"""


@pytest.mark.parametrize(
    ("mode", "took", "mapped"), [("keep", "True", False), ("plain", "None", True)]
)
def test_a_1_mib_buffer_comes_from_the_heap_only_after_the_call(
    mode: str, took: str, mapped: bool
) -> None:
    out = subprocess.run(
        [sys.executable, "-c", CODE, mode], capture_output=True, text=True, check=True
    )
    answer, grown = out.stdout.split()
    assert answer == took
    assert (int(grown) >= 1 << 20) is mapped
