"""Worker processes and their ffmpeg end with the process that started them.

Linux's ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` has the kernel kill the caller when its parent
goes, even by SIGKILL: a server that dies leaves no worker decoding for nobody, and a worker
that dies leaves no ffmpeg. Elsewhere this is a no-op (the worker still ends at the EOF of its
stdin once its job is done).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # linux/prctl.h
# Loaded at import, never between fork and exec: ``die_with_parent`` runs there for ffmpeg,
# where loading a library could wait forever on a lock another thread held at the fork.
_LIBC = (ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
         if sys.platform.startswith("linux") else None)


def die_with_parent(parent: int) -> None:
    """Ask for SIGKILL when the parent (PID ``parent``, which started this process) ends;
    if it already has (this process was adopted before the call, e.g. while it imported
    its libraries), exit at once."""
    if _LIBC is None:
        return
    if _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return  # not allowed here: the EOF of stdin still ends the worker
    if os.getppid() != parent:
        os._exit(1)
