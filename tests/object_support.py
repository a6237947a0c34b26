"""The object stores as the end-to-end tests see them: one adapter per provider, so that a test
of ``python server.py`` runs unchanged on S3 (moto), Azure (Azurite) and GCS
(gcp-storage-emulator).

An adapter makes a bucket (or container) of its own on the session's stand-in, gives the
server's TOML for a route storing there (and the environment its credentials travel in), and
reads and changes what the provider really holds through the provider's own SDK (boto3,
azure-storage-blob, google-cloud-storage), never through the store under test. A new provider
is one ``ObjectStore`` subclass in tests/object_adapters.py plus one entry in its
``PROVIDERS``.
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import ClassVar, Self

MIB = 1024 * 1024
PREFIX = "up/"
OURS = re.compile(r"[0-9a-f]{32}")
"""Our blob names after the prefix (not the marker, the ping object or partials)."""


class ObjectStore(ABC):
    """One provider's bucket (or container) for a server under test.

    ``kind`` is the ``storage`` name (the route is ``/api/<kind>``); ``service_fixture`` names
    the session fixture of its stand-in; ``part_size`` is the server's part (block) size in
    bytes. A subclass's ``__init__`` takes that fixture's value and makes a bucket there."""

    kind: ClassVar[str]
    service_fixture: ClassVar[str]
    part_size: ClassVar[int]
    lists_unfinished: ClassVar[bool] = True
    """Whether the provider lists what a writer holds before commit (GCS lists no session)."""

    @classmethod
    @abstractmethod
    def own(cls) -> Self:
        """On a stand-in of its own, which ``stop_service`` stops."""

    @property
    def route(self) -> str:
        return f"/api/{self.kind}"

    def config(self, download: str = "proxy") -> str:
        """The server's TOML: the provider's table, then one route storing there."""
        return f"""
[{self.kind}]
{self.table()}
prefix = "{PREFIX}"
part_size = "{self.part_size // MIB}MiB"
download = "{download}"

[[routes]]
path = "{self.route}"
max_body_size = "2GiB"
storage = "{self.kind}"
"""

    def sha256(self, name: str) -> str:
        """The hex SHA-256 of object ``name`` (a key of ``objects()``), read through the SDK."""
        digest = hashlib.sha256()
        for chunk in self.chunks(name):
            digest.update(chunk)
        return digest.hexdigest()

    @property
    @abstractmethod
    def object_url(self) -> str:
        """Where the provider serves ``PREFIX`` of this bucket (a redirect's target)."""

    @abstractmethod
    def table(self) -> str:
        """The provider table's own keys (bucket or container, endpoint), TOML lines."""

    @abstractmethod
    def env(self) -> dict[str, str]:
        """What the server's environment adds (credentials)."""

    @abstractmethod
    def objects(self) -> dict[str, int]:
        """The committed blobs under ``PREFIX`` (not the marker or ping object): name → size."""

    @abstractmethod
    def in_progress(self) -> list[str]:
        """Names holding data before commit (unfinished multipart uploads, blobs of
        uncommitted blocks only)."""

    @abstractmethod
    def chunks(self, name: str) -> Iterator[bytes]:
        """Object ``name``'s bytes, read through the SDK."""

    @abstractmethod
    def signed(self, url: str) -> bool:
        """Whether ``url`` carries the provider's signature (presigned URL, SAS)."""

    def content_type(self, url: str, headers: str) -> str | None:
        """The type a client gets following redirect ``url``, the answers' ``headers``
        lowercased (the redirect's, then the provider's): the provider's ``Content-Type``."""
        types = [line.split(":", 1)[1].strip() for line in headers.splitlines()
                 if line.startswith("content-type:")]
        return types[-1] if types else None

    def partial_pieces(self, upload_id: str) -> list[int]:
        """Sizes of what tus upload ``upload_id``'s partial holds, in order; [] when none:
        segment objects under ``<prefix>.partial/<id>/`` (S3, GCS)."""
        return list(self.everything_under(f"{PREFIX}.partial/{upload_id}/").values())

    @abstractmethod
    def everything_under(self, prefix: str) -> dict[str, int]:
        """Every object under ``prefix`` whatever its name, in name order: name → size."""

    @abstractmethod
    def put(self, name: str, data: bytes) -> None:
        """Store object ``name`` (a foreign write, as another program would)."""

    @abstractmethod
    def remove(self, name: str) -> None:
        """Delete object ``name`` (as another program would)."""

    @abstractmethod
    def unreachable(self, port: int) -> tuple[str, str]:
        """The provider's TOML table for a bucket ``media`` at 127.0.0.1:``port`` where
        nothing listens, and the one line start-up refuses it with (after ``error: ``)."""

    @abstractmethod
    def stop_service(self) -> None:
        """Stop the stand-in this adapter runs on (one of its own, see ``own``)."""

    @abstractmethod
    def standin_pid(self) -> int:
        """The PID of the stand-in this adapter runs on (one of its own, see ``own``), for
        tests that stop it (SIGSTOP) to make the store stall."""
