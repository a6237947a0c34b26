"""The C heap for a process that moves every byte through 1 MiB buffers.

glibc gives each allocation above its mmap threshold (128 KiB at start, raised only as large
blocks are freed) fresh pages from ``mmap`` and returns them with ``munmap`` when freed, and it
hands the free top of the heap back to the kernel above 128 KiB. An upload allocates a 1 MiB
read buffer and one or two 1 MiB ``bytes`` per MiB, so every MiB paid for 256 or more page
faults: on the VMs we measure on that was 20-30 % of the event loop's CPU
(docs/performance.md). Raising both thresholds keeps those buffers in the heap, where freed
ones are reused warm.

The cost is memory the process keeps instead of returning: at most ``trim`` bytes of free heap
top, which the peak-RSS bounds in tests/bounds include.
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger("tornado_files")

_M_TRIM_THRESHOLD = -1  # <malloc.h>
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 4 * 1024 * 1024
TRIM_THRESHOLD = 8 * 1024 * 1024


def keep_buffers_in_heap(mmap: int = MMAP_THRESHOLD, trim: int = TRIM_THRESHOLD) -> bool:
    """Set glibc's thresholds; returns whether it took (False with another C library)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(_M_MMAP_THRESHOLD, mmap)) and bool(mallopt(_M_TRIM_THRESHOLD, trim))
    if not done:
        log.info("the C library refused mallopt: large buffers stay on mmap")
    return done
