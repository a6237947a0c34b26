"""The media worker process: ``python -m tornado_files.media.worker --memory-bytes N
--cpu-seconds S``.

1. Sets RLIMIT_AS to N bytes (soft and hard; ffmpeg children inherit it) and, before each
   request, RLIMIT_CPU's soft limit to the CPU seconds used so far plus S: a job past S CPU
   seconds is ended by the kernel (SIGXCPU), however many jobs the worker ran before. The
   server's wall-clock limit per job (``job_timeout``) kills the whole process group anyway;
   this is the second line.
2. Keeps the real stdout private (a duplicate of fd 1) and points fd 1 at stderr, so no
   library's or child's output can corrupt the protocol.
3. Serves: reads one JSON line from stdin, runs ``process``, writes one JSON line (compact,
   UTF-8, ``\\n``-terminated) to the private stdout and flushes; exits 0 at EOF. Every line
   read gets exactly one answer line: a line that is not JSON or an unexpected exception
   is ``{"ok": false, "error": "...", "metadata": {}}``, the traceback going to stderr only.
   A MemoryError under RLIMIT_AS is a failure answer too, and the worker goes on serving.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import logging
import math
import os
import resource
import sys
from typing import IO, Any

from tornado_files.media.parent import die_with_parent
from tornado_files.media.process import failure, process

LOG = logging.getLogger("tornado_files.media.worker")


def set_limits(memory_bytes: int, cpu_seconds: int) -> None:
    """RLIMIT_AS = ``memory_bytes`` (soft and hard), and the CPU limit of the next job."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    limit_next_job(cpu_seconds)


def limit_next_job(cpu_seconds: int) -> None:
    """RLIMIT_CPU's soft limit = CPU seconds used so far + ``cpu_seconds`` (never above the
    hard limit, which is left as it is)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(usage.ru_utime + usage.ru_stime) + cpu_seconds
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def private_stdout() -> IO[str]:
    """A text stream on a duplicate of fd 1 (not inherited by children); fd 1 and
    ``sys.stdout`` then write to stderr."""
    sys.stdout.flush()
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(protocol_fd, "w", encoding="utf-8", newline="\n")


def answer(line: str) -> dict[str, Any]:
    """The response to one request line; never raises (but KeyboardInterrupt/SystemExit)."""
    try:
        request = json.loads(line)
    except ValueError:
        return failure("The request is not a JSON line.")
    try:
        return process(request)
    except MemoryError:
        gc.collect()
        LOG.exception("media job ran out of memory")
        return failure("The job ran out of memory.")
    except Exception:
        LOG.exception("media job failed unexpectedly")
        return failure("The job failed unexpectedly.")


def serve(requests: IO[str], responses: IO[str], cpu_seconds: int | None = None) -> None:
    """Answers each line of ``requests`` with one line on ``responses`` until EOF; each
    request gets ``cpu_seconds`` of CPU (``limit_next_job``) when given."""
    for line in requests:
        if cpu_seconds is not None:
            limit_next_job(cpu_seconds)
        response = answer(line)
        try:
            encoded = json.dumps(response, ensure_ascii=False, allow_nan=False,
                                 separators=(",", ":"))
        except ValueError:  # a non-finite number slipped through: never send bad JSON
            LOG.exception("media job response was not JSON")
            encoded = json.dumps(failure("The job's result could not be encoded."))
        responses.write(encoded + "\n")
        responses.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tornado_files.media.worker")
    parser.add_argument("--memory-bytes", type=int, required=True,
                        help="RLIMIT_AS for the worker and its ffmpeg children, in bytes")
    parser.add_argument("--cpu-seconds", type=int, required=True,
                        help="CPU seconds each job may use (RLIMIT_CPU, reset per job)")
    parser.add_argument("--parent-pid", type=int, default=os.getppid(),
                        help="the server's PID: the worker ends with it")
    args = parser.parse_args(argv)
    if args.memory_bytes < 1 or args.cpu_seconds < 1:
        parser.error("--memory-bytes and --cpu-seconds must be positive")
    die_with_parent(args.parent_pid)
    set_limits(args.memory_bytes, args.cpu_seconds)
    responses = private_stdout()
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s media-worker[%(process)d] %(levelname)s %(message)s")
    requests = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")
    serve(requests, responses, args.cpu_seconds)  # a line that is not UTF-8 is answered as not JSON
    return 0


if __name__ == "__main__":
    sys.exit(main())
