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
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path

from tests.serverproc import StandIn, answers_http, launch_standin, loopback_call

ROOT = Path(__file__).resolve().parents[1]
AZURITE_BLOB = ROOT / ".azurite" / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = "devstoreaccount1"
# Azurite's documented development key; it opens nothing outside the emulator.
ACCOUNT_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
               "KBHBeksoGMGw==")
API_VERSION = "2021-08-06"


@dataclass
class Azurite:
    standin: StandIn
    workspace: Path

    @property
    def port(self) -> int:
        return self.standin.port

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
        """Stop Azurite by its PID (SIGKILL after 10 s) and remove the workspace."""
        self.standin.stop()
        shutil.rmtree(self.workspace, ignore_errors=True)


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


def start_azurite(timeout: float = 60.0) -> Azurite:
    """Start Azurite's blob service; raises ``RuntimeError`` (with its output) if it does not
    answer within ``timeout`` seconds."""
    if not AZURITE_BLOB.exists():
        raise RuntimeError(f"the Azure stand-in needs {AZURITE_BLOB}: run scripts/test.sh")
    workspace = Path(tempfile.mkdtemp(prefix="azurite-"))
    try:
        standin = launch_standin(
            "the Azure stand-in (Azurite)",
            lambda port: [str(AZURITE_BLOB), "--blobHost", "127.0.0.1", "--blobPort", str(port),
                          "--location", str(workspace), "--silent", "--skipApiVersionCheck",
                          "--loose", "--disableTelemetry"],
            answers_http(f"/{ACCOUNT}?comp=list"), timeout)  # unsigned: a 4xx, but an answer
    except RuntimeError:
        shutil.rmtree(workspace, ignore_errors=True)
        raise
    return Azurite(standin, workspace)
