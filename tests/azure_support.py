"""Azure Blob Storage for the tests: Azurite's blob service started over a real socket.

Azurite (npm ``azurite@3.37.0``) is installed by ``scripts/test.sh`` into ``.azurite/``. It
runs as a subprocess on a free loopback port with its data in a temporary directory; the
tests that need it fail when it cannot start — they are never skipped. The account is
Azurite's well-known development account (``devstoreaccount1``, a public key documented by
Microsoft), with path-style URLs: ``http://127.0.0.1:PORT/devstoreaccount1/CONTAINER/BLOB``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AZURITE_BLOB = ROOT / ".azurite" / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = "devstoreaccount1"
# Azurite's documented development key; it opens nothing outside the emulator.
ACCOUNT_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
               "KBHBeksoGMGw==")
API_VERSION = "2021-08-06"


@dataclass
class Azurite:
    process: subprocess.Popen[bytes]
    port: int
    workspace: Path

    @property
    def endpoint(self) -> str:
        """The account's blob endpoint, path style (the ``endpoint`` of an ``[azure]`` table)."""
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        """What ``AZURE_STORAGE_CONNECTION_STRING`` holds to reach this Azurite."""
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
                f"BlobEndpoint={self.endpoint};")

    def new_container(self) -> str:
        """A fresh container of a unique name, created."""
        name = f"c{uuid.uuid4().hex[:20]}"
        self.create_container(name)
        return name

    def create_container(self, name: str) -> None:
        """Create container ``name`` (Create Container, signed with the account key).

        Raises ``RuntimeError`` if Azurite refuses it (409 when it exists)."""
        headers = shared_key_headers("PUT", f"/{name}", {"restype": "container"})
        status, body = loopback_call(self.port, "PUT", f"/{ACCOUNT}/{name}?restype=container",
                                     headers)
        if status != 201:
            raise RuntimeError(f"Azurite refused container {name!r}: {status} {body[:300]!r}")

    def stop(self) -> None:
        """SIGTERM by PID (then SIGKILL after 10 s) and remove the workspace."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.workspace, ignore_errors=True)


def loopback_call(port: int, method: str, path: str, headers: dict[str, str],
                  body: bytes = b"") -> tuple[int, bytes]:
    """One HTTP request to 127.0.0.1:``port``: (status, body). Raises ``OSError`` if refused."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def shared_key_headers(method: str, path: str, query: dict[str, str]) -> dict[str, str]:
    """The headers of a bodiless request, ``Authorization: SharedKey`` included.

    ``path`` is the URL path after the account segment, ``query`` its parameters. The string
    to sign is the Blob service's (learn.microsoft.com, "Authorize with Shared Key"); the
    canonicalized resource repeats the account because path-style URLs carry it too."""
    headers = {"x-ms-date": formatdate(usegmt=True), "x-ms-version": API_VERSION}
    canonical_headers = "".join(f"{k}:{v}\n" for k, v in sorted(headers.items()))
    resource = f"/{ACCOUNT}/{ACCOUNT}{path}" + "".join(
        f"\n{k.lower()}:{v}" for k, v in sorted(query.items()))
    # VERB, then 11 standard headers (all empty here), then the x-ms-* headers and resource.
    to_sign = method + "\n" * 12 + canonical_headers + resource
    key = base64.b64decode(ACCOUNT_KEY)
    signature = base64.b64encode(
        hmac.new(key, to_sign.encode(), hashlib.sha256).digest()).decode()
    headers["Authorization"] = f"SharedKey {ACCOUNT}:{signature}"
    return headers


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(port: int) -> bool:
    """True once Azurite answers HTTP at all (an unsigned request earns a 4xx)."""
    try:
        loopback_call(port, "GET", f"/{ACCOUNT}?comp=list", {})
    except OSError:
        return False
    return True


def start_azurite(timeout: float = 60.0) -> Azurite:
    """Start Azurite's blob service; raises ``RuntimeError`` (with its output) if it does not
    answer within ``timeout`` seconds."""
    if not AZURITE_BLOB.exists():
        raise RuntimeError(f"the Azure stand-in needs {AZURITE_BLOB}: run scripts/test.sh")
    workspace = Path(tempfile.mkdtemp(prefix="azurite-"))
    port = free_port()
    output = tempfile.TemporaryFile()  # noqa: SIM115 — the child writes here; closed below
    process = subprocess.Popen(
        [str(AZURITE_BLOB), "--blobHost", "127.0.0.1", "--blobPort", str(port),
         "--location", str(workspace), "--silent", "--skipApiVersionCheck", "--loose",
         "--disableTelemetry"],
        stdout=output, stderr=output, stdin=subprocess.DEVNULL)
    azurite = Azurite(process, port, workspace)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if _answers(port):
            output.close()
            return azurite
        time.sleep(0.1)
    azurite.stop()
    output.seek(0)
    detail = output.read()[-2000:].decode(errors="replace")
    output.close()
    raise RuntimeError(f"the Azure stand-in (Azurite) did not start: {detail}")
