"""What the GCS backend really holds, read with google-cloud-storage (the provider's own SDK)
straight from the bucket — objects, a partial's segment objects — and, for the unfinished
resumable sessions GCS itself never lists, the emulator's own record of them (its ``.meta``
and ``_resumable`` files); never through the store."""

from __future__ import annotations

import http.client
import json
import re
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from gcp_storage_emulator.storage import Storage
from google.auth.credentials import AnonymousCredentials
from google.cloud.storage import Client

from tests.contract.object_probe import Unreachable
from tests.gcs_support import GcsEmulator
from tests.serverproc import free_port
from tornado_files.blocking import Offload
from tornado_files.storage.gcs import GcsBlobStore
from tornado_files.storage.gcs_settings import CHUNK_UNIT, GcsSettings
from tornado_files.storage.parts import PartPipeline

_OURS = re.compile(r"^[0-9a-f]{32}$")
PART = CHUNK_UNIT  # the contract fixture's part_size: the smallest GCS chunk


def sdk_client(emulator: GcsEmulator) -> Client:
    """An anonymous google-cloud-storage client of the emulator."""
    return Client(project="test", credentials=AnonymousCredentials(),
                  client_options={"api_endpoint": emulator.endpoint})


class GcsProbe:
    """Implements ``ObjectProbe`` (tests/contract/object_probe.py) on a bucket."""

    kind = "gcs"
    part_size = PART
    read_slack = 0  # a ranged GET asks for exactly the bytes wanted
    flush_bytes = 2 * PART  # the first chunk has landed once a second one is sent
    # After ``end`` a writer keeps its last < 256 KiB: the last chunk finalizes the object.
    end_keeps = CHUNK_UNIT - 1
    # GCS lists no unfinished resumable sessions: nothing (the sweeper included) can find one.
    lists_unfinished = False

    def __init__(self, emulator: GcsEmulator, bucket: str, prefix: str) -> None:
        self.emulator = emulator
        self.client = sdk_client(emulator)
        self.bucket = self.client.bucket(bucket)
        self.prefix = prefix

    def _ours(self, name: str) -> str | None:
        key = name[len(self.prefix):]
        return key if name.startswith(self.prefix) and _OURS.match(key) else None

    def committed(self) -> set[str]:
        names = (self._ours(b.name) for b in self.client.list_blobs(self.bucket,
                                                                    prefix=self.prefix))
        return {n for n in names if n}

    def _sessions(self) -> dict[str, str]:
        """Unfinished sessions of this bucket: upload id → object name."""
        meta = self.emulator.data_dir / ".cloudstorage" / ".meta"
        for _ in range(50):  # the emulator rewrites the file in place: read a whole one
            try:
                found = json.loads(meta.read_text()).get("resumable") or {}
                break
            except json.JSONDecodeError:
                time.sleep(0.01)
        else:
            raise AssertionError("the emulator's .meta stays unreadable")
        return {upload_id: obj["name"] for upload_id, obj in found.items()
                if obj.get("bucket") == self.bucket.name}

    def in_progress(self) -> list[str]:
        """Keys of unfinished resumable sessions (what a writer holds before commit)."""
        return sorted(k for name in self._sessions().values() if (k := self._ours(name)))

    def staged(self, key: str) -> list[int]:
        """The bytes of ``key``'s unfinished session, in part-size pieces: the emulator keeps
        a session's bytes as one file, and every chunk but the last is a whole part (the
        chunk sizes on the wire are checked in test_gcs_store.py)."""
        stored = self.stored_bytes(key)
        return [PART] * (stored // PART) + ([stored % PART] if stored % PART else [])

    def read(self, key: str) -> bytes:
        return bytes(self.bucket.blob(self.prefix + key).download_as_bytes())

    def plant_in_progress(self, key: str, data: bytes) -> None:
        """A crashed writer's leftovers: a resumable session begun with the SDK, ``data``
        sent as its first chunk, never finalized."""
        uri = urllib.parse.urlsplit(self.bucket.blob(self.prefix + key)
                                    .create_resumable_upload_session())
        connection = http.client.HTTPConnection("127.0.0.1", self.emulator.port, timeout=10)
        try:
            connection.request("PUT", f"{uri.path}?{uri.query}", body=data,
                               headers={"Content-Range": f"bytes 0-{len(data) - 1}/*"})
            answer = connection.getresponse()
            answer.read()
        finally:
            connection.close()
        assert answer.status == 308, answer.status  # taken, the session still open

    def pipeline(self, writer: Any) -> PartPipeline[Any]:
        return writer._parts

    def unreachable(self, offload: Offload) -> Unreachable:
        settings = GcsSettings(bucket="media", endpoint=f"http://127.0.0.1:{free_port()}")
        return Unreachable(GcsBlobStore(settings, offload, environ={}),
                           "tornado_files.storage.gcs_client",
                           r"cannot write to gs://media/ at http://127")

    def held(self, key: str) -> int:
        """A GCS writer holds no descriptor (the client's connection pool is shared)."""
        return 0

    def stored_bytes(self, key: str) -> int:
        """Bytes the emulator received for ``key``'s unfinished session(s)."""
        folder = self.emulator.data_dir / ".cloudstorage" / "_resumable"
        return sum((folder / Storage.safe_id(upload_id)).stat().st_size
                   for upload_id, name in self._sessions().items()
                   if name == self.prefix + key and (folder / Storage.safe_id(upload_id)).exists())

    def segments(self, key: str) -> list[Any]:
        """A partial's segment objects (``<prefix>.partial/<key>/NNNNNN``) in order."""
        found = self.client.list_blobs(self.bucket, prefix=f"{self.prefix}.partial/{key}/")
        return sorted(found, key=lambda blob: blob.name)

    def partial(self, key: str) -> bytes | None:
        found = self.segments(key)
        names = [blob.name.rsplit("/", 1)[1] for blob in found]
        assert names == [f"{n:06d}" for n in range(1, len(found) + 1)], "a gap in the segments"
        return b"".join(blob.download_as_bytes() for blob in found) if found else None

    def traces(self, key: str) -> list[str]:
        found = [f"object {k}" for k in self.committed() if k == key]
        found += [f"segment {blob.name}" for blob in self.segments(key)]
        return found + [f"session {u}" for u, name in self._sessions().items()
                        if name == self.prefix + key]

    def damage(self, key: str) -> None:
        """Cut the committed object, or a partial's last segment, to half its size."""
        found = self.segments(key)
        blob = found[-1] if found else self.bucket.blob(self.prefix + key)
        data = blob.download_as_bytes()
        blob.upload_from_string(data[:len(data) // 2])

    def add_foreign(self) -> None:
        """Objects other programs put in the bucket, inside and outside the prefix."""
        for name in ("README", "F" * 32, "0" * 31, "sub/" + "0" * 32):
            self.bucket.blob(self.prefix + name).upload_from_string(b"x")
        self.bucket.blob("elsewhere-" + "1" * 32).upload_from_string(b"x")

    def spy_reads(self, reader: Any) -> Callable[[], int]:
        """Count the bytes the store really sent: wrap the reader's HTTP session so every
        download's body counts what was read from it."""
        counter = _Counting(reader._http)
        reader._http = counter
        return lambda: counter.bytes_read


class _Counting:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.bytes_read = 0

    def request(self, *args: Any, **kwargs: Any) -> Any:
        answer = self.inner.request(*args, **kwargs)
        pieces = answer.iter_content

        def counted(size: int = 1, *more: Any) -> Any:
            for piece in pieces(size, *more):
                self.bytes_read += len(piece)
                yield piece

        answer.iter_content = counted
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
