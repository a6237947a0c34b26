"""MongoDB for the tests: the mongoeco stand-in started over a real socket, or a real server.

``TORNADO_FILES_TEST_MONGODB_URI`` (e.g. ``mongodb://127.0.0.1:27017``) makes the suite use
that server instead. Otherwise the stand-in runs from the virtual environment that
``scripts/test.sh`` builds (``.venv-standin``, Python 3.13, mongoeco[wire]==4.11.0); if it
cannot start, the tests that need it fail — they are never skipped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

from tests.serverproc import StandIn, accepts_tcp, launch_standin

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
    standin: StandIn | None  # None: a real server, not ours to stop
    port: int
    base_uri: str

    def uri(self, database: str) -> str:
        """A URI naming ``database``, with the options the stand-in needs."""
        if self.standin is None:
            base, _, query = self.base_uri.partition("?")
            return f"{base.rstrip('/')}/{database}" + (f"?{query}" if query else "")
        return f"{self.base_uri}/{database}?{STANDIN_OPTIONS}"

    def stop(self) -> None:
        """SIGTERM the stand-in by its PID (SIGKILL after 10 s); a real server is left alone."""
        if self.standin is not None:
            self.standin.stop()

    def kill(self) -> None:
        """Abrupt death, for fault tests."""
        if self.standin is not None:
            self.standin.kill()


def start_standin(port: int = 0, timeout: float = 60.0) -> Standin:
    """The server ``TORNADO_FILES_TEST_MONGODB_URI`` names (unless ``port`` asks for a stand-in
    on that port, to restart one), else a new stand-in on ``port`` (0: a free one). Raises
    ``RuntimeError`` (with its output) if it does not accept connections in ``timeout`` s."""
    external = os.environ.get("TORNADO_FILES_TEST_MONGODB_URI")
    if external and not port:
        return Standin(None, 0, external)
    if not STANDIN_PYTHON.exists():
        raise RuntimeError(f"the MongoDB stand-in needs {STANDIN_PYTHON}: run scripts/test.sh")
    standin = launch_standin(
        "the MongoDB stand-in",
        lambda chosen: [str(STANDIN_PYTHON), str(ROOT / "tests" / "standin_server.py"),
                        str(chosen)],
        accepts_tcp, timeout, port=port or None)
    return Standin(standin, standin.port, f"mongodb://127.0.0.1:{standin.port}")


def fresh_database() -> str:
    return f"tf_{uuid4().hex[:12]}"
