"""MongoDB for the tests: the mongoeco stand-in started over a real socket, or a real server.

``TORNADO_FILES_TEST_MONGODB_URI`` (e.g. ``mongodb://127.0.0.1:27017``) makes the suite use
that server instead. Otherwise the stand-in runs from the virtual environment that
``scripts/test.sh`` builds (``.venv-standin``, Python 3.13, mongoeco[wire]==4.11.0); if it
cannot start, the tests that need it fail — they are never skipped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

ROOT = Path(__file__).resolve().parents[1]
STANDIN_PYTHON = Path(os.environ.get("TORNADO_FILES_TEST_STANDIN_PYTHON",
                                     ROOT / ".venv-standin" / "bin" / "python"))
# The stacks the in-process server runs on (tests/conftest.py, ``stack``): the embedded default
# (disk + SQLite), GridFS + MongoDB, disk + MongoDB. A new store is added here.
STACKS = ("embedded", "mongo", "mongo-disk")
# The stand-in stalls on long commands: generous timeouts (its documented limits).
STANDIN_OPTIONS = "connectTimeoutMS=120000&socketTimeoutMS=120000"


@dataclass
class Standin:
    process: subprocess.Popen[bytes] | None
    port: int
    base_uri: str

    def uri(self, database: str) -> str:
        """A URI naming ``database``, with the options the stand-in needs."""
        if self.process is None:
            base, _, query = self.base_uri.partition("?")
            return f"{base.rstrip('/')}/{database}" + (f"?{query}" if query else "")
        return f"{self.base_uri}/{database}?{STANDIN_OPTIONS}"

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def kill(self) -> None:
        """Abrupt death, for fault tests."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def start_standin(port: int = 0, timeout: float = 60.0) -> Standin:
    external = os.environ.get("TORNADO_FILES_TEST_MONGODB_URI")
    if external and not port:
        return Standin(None, 0, external)
    if not STANDIN_PYTHON.exists():
        raise RuntimeError(f"the MongoDB stand-in needs {STANDIN_PYTHON}: run scripts/test.sh")
    errors = tempfile.TemporaryFile()  # noqa: SIM115 — the child writes here; closed below
    process = subprocess.Popen(
        [str(STANDIN_PYTHON), str(ROOT / "tests" / "standin_server.py"), str(port)],
        stdout=subprocess.PIPE, stderr=errors)
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    line = b""
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith(b"ready "):
            errors.close()
            process.stdout.close()  # the stand-in writes nothing more there
            real_port = int(line.split()[1])
            return Standin(process, real_port, f"mongodb://127.0.0.1:{real_port}")
        if not line and process.poll() is not None:
            break
    process.kill()
    process.wait(timeout=10)
    process.stdout.close()
    errors.seek(0)
    detail = errors.read()[-2000:].decode(errors="replace")
    errors.close()
    raise RuntimeError(f"the MongoDB stand-in did not start: {detail}")


def fresh_database() -> str:
    return f"tf_{uuid4().hex[:12]}"
