"""The object-store adapters of the end-to-end tests (the ``ObjectStore`` base and what it
asks are in tests/object_support.py): S3 on moto (boto3), Azure on Azurite
(azure-storage-blob), GCS on gcp-storage-emulator (google-cloud-storage). ``PROVIDERS`` is what
the shared e2e suites are parametrised over."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar, Self
from urllib.parse import parse_qs, urlsplit

from azure.storage.blob import ContainerClient

from tests.azure_support import Azurite, start_azurite
from tests.contract.gcs_probe import sdk_client
from tests.gcs_support import GcsEmulator, service_account_file, start_gcs_emulator
from tests.object_support import MIB, OURS, PREFIX, ObjectStore
from tests.s3_support import S3Service, start_s3


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
                if OURS.fullmatch(key[len(PREFIX):])}

    def everything_under(self, prefix: str) -> dict[str, int]:
        answer = self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix)  # one page
        return {o["Key"]: o["Size"] for o in answer.get("Contents", [])}

    def in_progress(self) -> list[str]:
        answer = self.client.list_multipart_uploads(Bucket=self.bucket)
        return [u["Key"] for u in answer.get("Uploads", [])]

    def chunks(self, name: str) -> Iterator[bytes]:
        body = self.client.get_object(Bucket=self.bucket, Key=name)["Body"]
        while chunk := body.read(MIB):
            yield chunk

    def signed(self, url: str) -> bool:
        # SigV4: AWS refuses SigV2 (Signature=) on buckets made since June 2020, and on moto
        # both work, so the form is what the test can check.
        return "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url and "X-Amz-Signature=" in url

    def put(self, name: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=name, Body=data)

    def remove(self, name: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=name)

    def unreachable(self, port: int) -> tuple[str, str]:
        where = f"s3://media/ at http://127.0.0.1:{port}"
        return (f'[s3]\nbucket = "media"\nendpoint = "http://127.0.0.1:{port}"\n',
                f"cannot write to {where}: check the endpoint, the bucket and the AWS "
                "credentials")

    def stop_service(self) -> None:
        self.service.stop()

    def standin_pid(self) -> int:
        standin = self.service.standin
        assert standin is not None, "own() runs on a moto of its own"
        return standin.process.pid


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
        """Every blob under ``PREFIX`` (partial blobs too) with uncommitted blocks."""
        return sorted(b.name for b in self.client.list_blobs(name_starts_with=PREFIX,
                                                             include=["uncommittedblobs"])
                      if self.client.get_blob_client(b.name).get_block_list("uncommitted")[1])

    def chunks(self, name: str) -> Iterator[bytes]:
        yield from self.client.get_blob_client(name).download_blob().chunks()

    def signed(self, url: str) -> bool:
        return "sig=" in url  # a SAS token's signature

    def partial_pieces(self, upload_id: str) -> list[int]:
        """A partial is one blob, ``<prefix>.partial/<id>``: its committed blocks' sizes."""
        name = f"{PREFIX}.partial/{upload_id}"
        if name not in self.everything_under(name):
            return []
        blob = self.client.get_blob_client(name)
        return [block.size for block in blob.get_block_list("committed")[0]]

    def everything_under(self, prefix: str) -> dict[str, int]:
        return {b.name: b.size for b in self.client.list_blobs(name_starts_with=prefix)}

    def put(self, name: str, data: bytes) -> None:
        self.client.upload_blob(name, data)

    def remove(self, name: str) -> None:
        self.client.delete_blob(name)

    def unreachable(self, port: int) -> tuple[str, str]:
        endpoint = f"http://127.0.0.1:{port}/devstoreaccount1"
        return (f'[azure]\ncontainer = "media"\nendpoint = "{endpoint}"\n',
                f"cannot write to azure container {endpoint}/media (prefix ''): check the "
                "endpoint, the container and the AZURE_STORAGE_* credentials")

    def stop_service(self) -> None:
        self.azurite.stop()

    def standin_pid(self) -> int:
        return self.azurite.standin.process.pid


class GcsObjects(ObjectStore):
    kind: ClassVar[str] = "gcs"
    service_fixture: ClassVar[str] = "gcs_emulator"
    part_size: ClassVar[int] = 8 * MIB
    lists_unfinished: ClassVar[bool] = False

    def __init__(self, emulator: GcsEmulator) -> None:
        self.emulator = emulator
        self.bucket = emulator.new_bucket()
        self.client = sdk_client(emulator)
        # A service-account key, to sign redirect URLs with (the emulator checks none).
        keys = emulator.data_dir / "keys" / self.bucket
        keys.mkdir(parents=True)
        self.key_file = service_account_file(keys)

    @classmethod
    def own(cls) -> Self:
        """On an emulator of its own, to stop."""
        return cls(start_gcs_emulator())

    @property
    def object_url(self) -> str:
        return f"{self.emulator.endpoint}/{self.bucket}/{PREFIX}"

    def table(self) -> str:
        return f'bucket = "{self.bucket}"\nendpoint = "{self.emulator.endpoint}"'

    def env(self) -> dict[str, str]:
        return {"GOOGLE_APPLICATION_CREDENTIALS": str(self.key_file)}

    def objects(self) -> dict[str, int]:
        return {name: size for name, size in self.everything_under(PREFIX).items()
                if OURS.fullmatch(name[len(PREFIX):])}

    def everything_under(self, prefix: str) -> dict[str, int]:
        return {b.name: int(b.size) for b in self.client.list_blobs(self.bucket, prefix=prefix)}

    def in_progress(self) -> list[str]:
        """Unfinished resumable sessions, as the emulator records them (GCS lists none)."""
        return self.emulator.sessions(self.bucket)

    def chunks(self, name: str) -> Iterator[bytes]:
        # Large ranges: the emulator reads the whole object for each one.
        blob = self.client.bucket(self.bucket).get_blob(name)
        for start in range(0, int(blob.size), 64 * MIB):
            yield blob.download_as_bytes(start=start, end=start + 64 * MIB - 1)

    def signed(self, url: str) -> bool:
        return "X-Goog-Signature=" in url

    def content_type(self, url: str, headers: str) -> str | None:
        """The type the signed URL asks for: the emulator ignores ``response-content-type``
        (GCS honours it; docs/object-storage.md)."""
        return parse_qs(urlsplit(url).query).get("response-content-type", [None])[0]

    def put(self, name: str, data: bytes) -> None:
        self.client.bucket(self.bucket).blob(name).upload_from_string(data)

    def remove(self, name: str) -> None:
        self.client.bucket(self.bucket).blob(name).delete()

    def unreachable(self, port: int) -> tuple[str, str]:
        where = f"gs://media/ at http://127.0.0.1:{port}"
        return (f'[gcs]\nbucket = "media"\nendpoint = "http://127.0.0.1:{port}"\n',
                f"cannot write to {where}: check the endpoint, the bucket and the Google "
                "credentials (GOOGLE_APPLICATION_CREDENTIALS)")

    def stop_service(self) -> None:
        self.emulator.stop()

    def standin_pid(self) -> int:
        return self.emulator.standin.process.pid


PROVIDERS: list[type[ObjectStore]] = [S3Objects, AzureObjects, GcsObjects]
