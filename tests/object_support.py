"""The object stores as the end-to-end tests see them: one adapter per provider, so that a test
of ``python server.py`` runs unchanged on S3 (moto) and Azure (Azurite).

An adapter makes a bucket (or container) of its own on the session's stand-in, gives the
server's TOML for a route storing there (and the environment its credentials travel in), and
reads what the provider really holds through the provider's own SDK (boto3,
azure-storage-blob), never through the store under test. A new provider is one ``ObjectStore``
subclass here plus one entry in the e2e suite's params (tests/e2e/test_object_server.py).
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import ClassVar, Self

from azure.storage.blob import ContainerClient

from tests.azure_support import Azurite, start_azurite
from tests.s3_support import S3Service, start_s3

MIB = 1024 * 1024
PREFIX = "up/"
_OURS = re.compile(r"[0-9a-f]{32}")


class ObjectStore(ABC):
    """One provider's bucket (or container) for a server under test.

    ``kind`` is the ``storage`` name (the route is ``/api/<kind>``); ``service_fixture`` names
    the session fixture of its stand-in; ``part_size`` is the server's part (block) size in
    bytes. A subclass's ``__init__`` takes that fixture's value and makes a bucket there."""

    kind: ClassVar[str]
    service_fixture: ClassVar[str]
    part_size: ClassVar[int]

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

    @abstractmethod
    def stop_service(self) -> None:
        """Stop the stand-in this adapter runs on (one of its own, see ``own``)."""


class S3Objects(ObjectStore):
    kind: ClassVar[str] = "s3"
    service_fixture: ClassVar[str] = "s3_service"
    part_size: ClassVar[int] = 5 * MIB  # the smallest S3 takes

    def __init__(self, service: S3Service) -> None:
        self.service = service
        self.bucket = service.new_bucket()
        self.client = service.client()

    @classmethod
    def own(cls) -> Self:
        """On a moto of its own, to stop (never the real service of the environment)."""
        return cls(start_s3(external=False))

    @property
    def object_url(self) -> str:
        return f"{self.service.endpoint}/{self.bucket}/{PREFIX}"

    def table(self) -> str:
        return f'bucket = "{self.bucket}"\nendpoint = "{self.service.endpoint}"'

    def env(self) -> dict[str, str]:
        return {}  # the AWS_* variables the tests run with

    def objects(self) -> dict[str, int]:
        return {key: size for key, size in self.everything_under(PREFIX).items()
                if _OURS.fullmatch(key[len(PREFIX):])}

    def everything_under(self, prefix: str) -> dict[str, int]:
        """Every object under ``prefix`` whatever its name: key → size (one page)."""
        answer = self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return {o["Key"]: o["Size"] for o in answer.get("Contents", [])}

    def in_progress(self) -> list[str]:
        answer = self.client.list_multipart_uploads(Bucket=self.bucket)
        return [u["Key"] for u in answer.get("Uploads", [])]

    def chunks(self, name: str) -> Iterator[bytes]:
        body = self.client.get_object(Bucket=self.bucket, Key=name)["Body"]
        while chunk := body.read(MIB):
            yield chunk

    def signed(self, url: str) -> bool:
        return "Signature=" in url  # SigV2's Signature= or SigV4's X-Amz-Signature=

    def stop_service(self) -> None:
        self.service.stop()


class AzureObjects(ObjectStore):
    kind: ClassVar[str] = "azure"
    service_fixture: ClassVar[str] = "azurite"
    part_size: ClassVar[int] = 4 * MIB

    def __init__(self, azurite: Azurite) -> None:
        self.azurite = azurite
        self.container = azurite.new_container()
        self.client = ContainerClient.from_connection_string(azurite.connection_string,
                                                             self.container)

    @classmethod
    def own(cls) -> Self:
        """On an Azurite of its own, to stop."""
        return cls(start_azurite())

    @property
    def object_url(self) -> str:
        return f"{self.azurite.endpoint}/{self.container}/{PREFIX}"

    def table(self) -> str:
        return f'container = "{self.container}"\nendpoint = "{self.azurite.endpoint}"'

    def env(self) -> dict[str, str]:
        """The credentials reach the server only through its environment."""
        return {"AZURE_STORAGE_CONNECTION_STRING": self.azurite.connection_string}

    def _names(self, include: list[str] | None) -> dict[str, int]:
        # Names under PREFIX but not the store's own (".marker", ".ping"...).
        return {b.name: b.size for b in self.client.list_blobs(name_starts_with=PREFIX,
                                                               include=include)
                if not b.name.startswith(PREFIX + ".")}

    def objects(self) -> dict[str, int]:
        return self._names(None)

    def in_progress(self) -> list[str]:
        committed = self._names(None)
        return sorted(n for n in self._names(["uncommittedblobs"]) if n not in committed)

    def chunks(self, name: str) -> Iterator[bytes]:
        yield from self.client.get_blob_client(name).download_blob().chunks()

    def signed(self, url: str) -> bool:
        return "sig=" in url  # a SAS token's signature

    def stop_service(self) -> None:
        self.azurite.stop()

