"""What the blob store contract suites share: probes that look at each backend's real
resource (files in the data directory, ``fs.files`` / ``fs.chunks`` documents read with the
synchronous driver), never through the store under test."""

from __future__ import annotations

import errno
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from uuid import uuid4

from bson import ObjectId
from pymongo import MongoClient

MIB = 1024 * 1024
GRIDFS_CHUNK = 100_000  # odd on purpose: ranges cross chunk edges at unaligned offsets


class DiskProbe:
    """What the disk backend really holds."""

    kind = "disk"
    read_slack = 0  # a disk read seeks to the exact byte
    flush_bytes = 0  # bytes a writer must take before the store holds any with a time

    def __init__(self, root: Path) -> None:
        self.root = root

    def committed(self) -> set[str]:
        return {p.name for p in (self.root / "blobs").rglob("*") if p.is_file()}

    def in_progress(self) -> list[str]:
        """Keys of writers' temp files (``tmp/<key>.part``)."""
        return [p.name.removesuffix(".part") for p in (self.root / "tmp").iterdir()]

    def partial(self, key: str) -> bytes | None:
        path = self.root / "partial" / f"{key}.part"
        return path.read_bytes() if path.exists() else None

    def traces(self, key: str) -> list[str]:
        paths = [self.root / "blobs" / key[:2] / key[2:4] / key,
                 self.root / "tmp" / f"{key}.part", self.root / "partial" / f"{key}.part"]
        return [str(p.relative_to(self.root)) for p in paths if p.exists()]

    def damage(self, key: str) -> None:
        """Cut the stored file (committed or partial) to half its size."""
        for rel in self.traces(key):
            path = self.root / rel
            os.truncate(path, path.stat().st_size // 2)

    def add_foreign(self) -> None:
        """Things in the fan-out that are no key of ours."""
        (self.root / "blobs" / "zz").mkdir(parents=True)
        (self.root / "blobs" / "zz" / "README").write_bytes(b"x")
        (self.root / "blobs" / "00" / "00").mkdir(parents=True, exist_ok=True)
        (self.root / "blobs" / "00" / "00" / "notes.txt").write_bytes(b"x")

    def spy_reads(self, reader: Any) -> Callable[[], int]:
        reader._handle = spy = Spy(reader._handle)
        return lambda: spy.bytes_read

    def held(self, key: str) -> int:
        """Open file descriptors of this process on the writer's temp file."""
        temp = str(self.root / "tmp" / f"{key}.part")
        found = 0
        for fd in os.listdir("/proc/self/fd"):
            try:
                found += os.readlink(f"/proc/self/fd/{fd}") == temp
            except OSError:
                continue  # closed while we looked (the listing's own descriptor)
        return found

    def stored_bytes(self, key: str) -> int:
        """What a writer's temp file holds on disk."""
        return (self.root / "tmp" / f"{key}.part").stat().st_size


class GridFSProbe:
    """What the GridFS backend really holds, read with the synchronous driver."""

    kind = "gridfs"
    flush_bytes = 0
    read_slack = 2 * GRIDFS_CHUNK  # whole chunks: at most the two partial edge chunks extra

    def __init__(self, uri: str) -> None:
        self.client: MongoClient[dict[str, Any]] = MongoClient(uri)
        db = self.client.get_default_database()
        self.files, self.chunks = db["fs.files"], db["fs.chunks"]

    def committed(self) -> set[str]:
        return {str(d["_id"]) for d in self.files.find({}, {"_id": 1})}

    def in_progress(self) -> list[str]:
        """Owners of chunks that have no files document."""
        complete = {d["_id"] for d in self.files.find({}, {"_id": 1})}
        owners = {d["files_id"] for d in self.chunks.find({}, {"files_id": 1})}
        return sorted(str(o) for o in owners - complete)

    def chunk_sizes(self, key: str) -> list[int]:
        return [len(d["data"]) for d in self.chunks.find({"files_id": key}).sort("n", 1)]

    def held(self, key: str) -> int:
        """A GridFS writer holds no descriptor of its own (the driver's pool is shared)."""
        return 0

    def stored_bytes(self, key: str) -> int:
        """What a writer's chunk documents hold in MongoDB."""
        return sum(self.chunk_sizes(key))

    def partial(self, key: str) -> bytes | None:
        docs = list(self.chunks.find({"files_id": key}).sort("n", 1))
        assert [d["n"] for d in docs] == list(range(len(docs))), "a gap in the chunks"
        return b"".join(d["data"] for d in docs) if docs else None

    def traces(self, key: str) -> list[str]:
        found = [f"files {d['_id']}" for d in self.files.find({"_id": key})]
        return found + [f"chunk {d['n']}" for d in self.chunks.find({"files_id": key})]

    def damage(self, key: str) -> None:
        """Lose a chunk in the middle."""
        assert self.chunks.delete_one({"files_id": key, "n": 1}).deleted_count == 1

    def add_foreign(self) -> None:
        """Files other GridFS clients wrote: ObjectId and non-hex string ids."""
        for file_id in (ObjectId(), ObjectId(), "report.pdf", "F" * 32):
            self.files.insert_one({"_id": file_id, "length": 1, "chunkSize": GRIDFS_CHUNK,
                                   "filename": "theirs"})
            self.chunks.insert_one({"files_id": file_id, "n": 0, "data": b"x"})

    def spy_reads(self, reader: Any) -> Callable[[], int]:
        counter = ChunkCounter(reader._store)
        reader._store = counter
        return lambda: counter.bytes_read


class ChunkCounter:
    """Stands in for the store a GridFS reader queries; counts the chunk bytes it fetches."""

    def __init__(self, store: Any) -> None:
        self.bytes_read = 0
        outer = self

        class Chunks:
            def find(self, *args: Any, **kwargs: Any) -> Any:
                return Cursor(store.chunks.find(*args, **kwargs))

        class Cursor:
            def __init__(self, inner: Any) -> None:
                self.inner = inner

            def sort(self, *args: Any) -> Cursor:
                self.inner = self.inner.sort(*args)
                return self

            async def __aiter__(self) -> AsyncIterator[Any]:
                async for doc in self.inner:
                    outer.bytes_read += len(doc["data"])
                    yield doc

        self.chunks = Chunks()


class Spy:
    """Wraps a file object: counts the bytes read, or fails writes like a full disk."""

    def __init__(self, inner: Any, fail_writes: bool = False) -> None:
        self.inner = inner
        self.fail_writes = fail_writes
        self.bytes_read = 0

    def read(self, n: int) -> bytes:
        data = self.inner.read(n)
        self.bytes_read += len(data)
        return bytes(data)

    def write(self, data: bytes) -> int:
        if self.fail_writes:
            raise OSError(errno.ENOSPC, "No space left on device")
        return int(self.inner.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def collect(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


async def write_blob(store: Any, pieces: list[bytes], key: str | None = None) -> str:
    key = key or uuid4().hex
    writer = await store.open_writer(key)
    for piece in pieces:
        await writer.write(piece)
    blob = await writer.commit()
    assert blob.key == key
    assert blob.size == sum(map(len, pieces))
    return key
