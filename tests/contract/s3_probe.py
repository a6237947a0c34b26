"""What the S3 backend really holds, read with boto3 (the provider's own SDK) straight from
the bucket — committed objects and unfinished multipart uploads — never through the store."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from tests.contract.object_probe import Unreachable
from tests.s3_support import S3Service
from tests.serverproc import free_port
from tornado_files.blocking import Offload
from tornado_files.storage.parts import PartPipeline
from tornado_files.storage.s3 import S3BlobStore
from tornado_files.storage.s3_settings import MIN_PART_SIZE, S3Settings

_OURS = re.compile(r"^[0-9a-f]{32}$")


class S3Probe:
    """Implements ``ObjectProbe`` (tests/contract/object_probe.py) on a bucket."""

    kind = "s3"
    part_size = MIN_PART_SIZE  # the contract fixture's: the smallest S3 takes
    read_slack = 0  # a ranged GET asks for exactly the bytes wanted
    end_keeps = 0  # every byte is stored by end()
    lists_unfinished = True
    flush_bytes = 2 * 5 * 1024 * 1024  # the first part has landed once a second one is sent

    def __init__(self, service: S3Service, bucket: str, prefix: str) -> None:
        self.client = service.client()
        self.bucket = bucket
        self.prefix = prefix

    def _names(self, items: list[dict[str, Any]]) -> list[str]:
        return [i["Key"][len(self.prefix):] for i in items
                if i["Key"].startswith(self.prefix)
                and _OURS.match(i["Key"][len(self.prefix):])]

    def committed(self) -> set[str]:
        answer = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix)
        return set(self._names(answer.get("Contents", [])))

    def uploads(self, key: str | None = None) -> list[dict[str, Any]]:
        answer = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=self.prefix)
        found = answer.get("Uploads", [])
        return [u for u in found if key is None or u["Key"] == self.prefix + key]

    def in_progress(self) -> list[str]:
        """Keys of unfinished multipart uploads (what a writer holds before commit)."""
        return sorted(self._names(self.uploads()))

    def parts(self, key: str) -> list[int]:
        """Sizes of the stored parts of ``key``'s unfinished upload(s)."""
        sizes: list[int] = []
        for upload in self.uploads(key):
            answer = self.client.list_parts(Bucket=self.bucket, Key=upload["Key"],
                                            UploadId=upload["UploadId"])
            sizes += [p["Size"] for p in answer.get("Parts", [])]
        return sizes

    def staged(self, key: str) -> list[int]:
        return self.parts(key)

    def read(self, key: str) -> bytes:
        answer = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)
        return bytes(answer["Body"].read())

    def plant_in_progress(self, key: str, data: bytes) -> None:
        upload = self.client.create_multipart_upload(Bucket=self.bucket, Key=self.prefix + key)
        self.client.upload_part(Bucket=self.bucket, Key=self.prefix + key, PartNumber=1,
                                UploadId=upload["UploadId"], Body=data)

    def pipeline(self, writer: Any) -> PartPipeline[Any]:
        return writer._parts

    def unreachable(self, offload: Offload) -> Unreachable:
        settings = S3Settings(bucket="media", endpoint=f"http://127.0.0.1:{free_port()}")
        return Unreachable(S3BlobStore(settings, offload), "tornado_files.storage.s3_client",
                           r"cannot write to s3://media/ at http://127")

    def held(self, key: str) -> int:
        """An S3 writer holds no descriptor (the client's connection pool is shared)."""
        return 0

    def stored_bytes(self, key: str) -> int:
        return sum(self.parts(key))

    def segments(self, key: str) -> list[dict[str, Any]]:
        """A partial's segment objects (``<prefix>.partial/<key>/NNNNN``) in order."""
        answer = self.client.list_objects_v2(Bucket=self.bucket,
                                             Prefix=f"{self.prefix}.partial/{key}/")
        return sorted(answer.get("Contents", []), key=lambda item: item["Key"])

    def partial(self, key: str) -> bytes | None:
        found = self.segments(key)
        names = [item["Key"].rsplit("/", 1)[1] for item in found]
        assert names == [f"{n:05d}" for n in range(1, len(found) + 1)], "a gap in the segments"
        return b"".join(self.client.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
                        for item in found) if found else None

    def traces(self, key: str) -> list[str]:
        found = [f"object {k}" for k in self.committed() if k == key]
        found += [f"segment {item['Key']}" for item in self.segments(key)]
        return found + [f"upload {u['UploadId']}" for u in self.uploads(key)]

    def damage(self, key: str) -> None:
        """Cut the committed object, or a partial's last segment, to half its size."""
        found = self.segments(key)
        name = found[-1]["Key"] if found else self.prefix + key
        data = self.client.get_object(Bucket=self.bucket, Key=name)["Body"].read()
        self.client.put_object(Bucket=self.bucket, Key=name, Body=data[:len(data) // 2])

    def add_foreign(self) -> None:
        """Objects other programs put in the bucket, inside and outside the prefix."""
        for name in ("README", "F" * 32, "0" * 31, "sub/" + "0" * 32):
            self.client.put_object(Bucket=self.bucket, Key=self.prefix + name, Body=b"x")
        self.client.put_object(Bucket=self.bucket, Key="elsewhere-" + "1" * 32, Body=b"x")

    def spy_reads(self, reader: Any) -> Callable[[], int]:
        """Count the bytes the store really sent: wrap the reader's client so every body it
        gets counts what is read from it."""
        counter = _Counting(reader._client)
        reader._client = counter
        return lambda: counter.bytes_read


class _Counting:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.bytes_read = 0

    def get_object(self, **kwargs: Any) -> Any:
        answer = self.inner.get_object(**kwargs)
        body = answer["Body"]
        outer = self

        class Body:
            def read(self, n: int) -> bytes:
                data: bytes = body.read(n)
                outer.bytes_read += len(data)
                return data

            def close(self) -> None:
                body.close()

        return {**answer, "Body": Body()}
