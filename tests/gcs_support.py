"""Google Cloud Storage for the tests: gcp-storage-emulator started over a real socket.

The emulator (PyPI ``gcp-storage-emulator``, in ``.venv`` from requirements-dev.txt) runs as a
subprocess on a free loopback port with its data in a temporary directory; the tests that need
it fail when it cannot start — they are never skipped. It speaks the GCS JSON API
(``/storage/v1``, ``/upload/storage/v1``) without authentication.

Two gaps are filled at launch (``_LAUNCH``): the emulator has no DELETE on a resumable
session's URI (it answers 501), which is how GCS cancels a session (it answers 499 and the
session's bytes are gone). The launcher adds that handler — the emulator's own storage calls,
nothing else changed — so the tests can show that an aborted upload leaves no session behind.
And it serves one request at a time, where GCS serves many: a download streamed to a slow
client would stall every other call (a DELETE during that download, say). The launcher runs
it threaded, its handlers under one lock, the bodies sent outside it. This module also adds
the few names a test needs: ``new_bucket``, ``sessions``.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.serverproc import StandIn, answers_http, launch_standin, loopback_call

EMULATOR = Path(sys.executable).parent / "gcp-storage-emulator"
# The emulator's own entry point, with DELETE on a session URI answered as GCS does.
_LAUNCH = """
import http.server
import sys
import threading
import types
from http import HTTPStatus

from gcp_storage_emulator import server
from gcp_storage_emulator.handlers import objects
from gcp_storage_emulator.__main__ import main
from gcp_storage_emulator.storage import RESUMABLE_DIR

CANCELLED = types.SimpleNamespace(value=499, phrase="Client Closed Request")


def cancel(request, response, storage, *args, **kwargs):
    upload_id = (request.query.get("upload_id") or [""])[0]
    if upload_id not in storage.resumable:
        response.status = HTTPStatus.NOT_FOUND
        return
    storage.delete_resumable_file_obj(upload_id)
    storage._delete_file(RESUMABLE_DIR, storage.safe_id(upload_id))
    storage._write_config_to_file()
    response.status = CANCELLED


for regex, handlers in server.HANDLERS:
    if regex.startswith("^/upload/storage/v1/"):
        handlers["DELETE"] = cancel

# GCS answers requests concurrently; the emulator's HTTPServer one at a time, so a download
# held open by a slow client would stall every other call. Threads, with the emulator's
# handlers (all its storage state) under one lock; a response is sent after its handler.
LOCK = threading.RLock()


def locked(handler):
    def run(*args, **kwargs):
        with LOCK:
            return handler(*args, **kwargs)
    return run


for regex, handlers in server.HANDLERS:
    for method in list(handlers):
        handlers[method] = locked(handlers[method])
objects.insert = locked(objects.insert)  # the router's fallback for uploads without /upload
http.server.HTTPServer = http.server.ThreadingHTTPServer
sys.exit(main(sys.argv[1:]))
"""


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

    def new_bucket(self) -> str:
        """A fresh bucket of a unique name, created."""
        name = f"b{uuid.uuid4().hex[:20]}"
        self.create_bucket(name)
        return name

    def sessions(self, bucket: str) -> list[str]:
        """Object names of the unfinished resumable sessions the emulator keeps for
        ``bucket`` (its ``.meta`` file: GCS itself lists none)."""
        meta = self.data_dir / ".cloudstorage" / ".meta"
        if not meta.exists():
            return []
        found = json.loads(meta.read_text()).get("resumable") or {}
        return sorted(obj["name"] for obj in found.values() if obj.get("bucket") == bucket)

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
            lambda port: [sys.executable, "-c", _LAUNCH, "--data-dir", str(data_dir), "start",
                          "--host", "127.0.0.1", "--port", str(port), "--quiet"],
            answers_http("/"), timeout)
    except RuntimeError:
        shutil.rmtree(data_dir, ignore_errors=True)
        raise
    return GcsEmulator(standin, data_dir)


def service_account_file(folder: Path) -> Path:
    """A service-account key file as Google issues them, with a fresh RSA key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    path = folder / "service-account.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "tornado-files-test",
        "private_key_id": "0" * 40, "private_key": pem,
        "client_email": "uploads@tornado-files-test.iam.gserviceaccount.com",
        "client_id": "1" * 21, "token_uri": "https://oauth2.googleapis.com/token"}))
    return path
