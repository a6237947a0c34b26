"""Google Cloud Storage for the tests: gcp-storage-emulator started over a real socket.

The emulator (PyPI ``gcp-storage-emulator``, in ``.venv`` from requirements-dev.txt) runs as a
subprocess on a free loopback port with its data in a temporary directory; the tests that need
it fail when it cannot start — they are never skipped. It speaks the GCS JSON API
(``/storage/v1``, ``/upload/storage/v1``) without authentication.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.serverproc import StandIn, answers_http, launch_standin, loopback_call

EMULATOR = Path(sys.executable).parent / "gcp-storage-emulator"


@dataclass
class GcsEmulator:
    standin: StandIn
    data_dir: Path

    @property
    def port(self) -> int:
        return self.standin.port

    @property
    def endpoint(self) -> str:
        """The base URL (the ``endpoint`` of a ``[gcs]`` table, or STORAGE_EMULATOR_HOST)."""
        return f"http://127.0.0.1:{self.port}"

    def create_bucket(self, name: str) -> None:
        """Create bucket ``name`` (JSON API ``buckets.insert``).

        Raises ``RuntimeError`` if the emulator refuses it."""
        status, body = loopback_call(self.port, "POST", "/storage/v1/b",
                                     {"Content-Type": "application/json"},
                                     json.dumps({"name": name}).encode())
        if status != 200:
            raise RuntimeError(f"the emulator refused bucket {name!r}: {status} {body[:300]!r}")

    def stop(self) -> None:
        """Stop the emulator by its PID (SIGKILL after 10 s) and remove the data directory."""
        self.standin.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def start_gcs_emulator(timeout: float = 30.0) -> GcsEmulator:
    """Start the emulator; raises ``RuntimeError`` (with its output) if it does not answer
    within ``timeout`` seconds."""
    if not EMULATOR.exists():
        raise RuntimeError(f"the GCS stand-in needs {EMULATOR}: run scripts/test.sh")
    data_dir = Path(tempfile.mkdtemp(prefix="gcs-emulator-"))
    try:
        standin = launch_standin(
            "the GCS stand-in (gcp-storage-emulator)",
            lambda port: [str(EMULATOR), "--data-dir", str(data_dir), "start", "--host",
                          "127.0.0.1", "--port", str(port), "--quiet"],
            answers_http("/"), timeout)
    except RuntimeError:
        shutil.rmtree(data_dir, ignore_errors=True)
        raise
    return GcsEmulator(standin, data_dir)
