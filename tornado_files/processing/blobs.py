"""Derivative images into and out of a file's blob store, with the intent journal's rules
(DESIGN.md): an intent before a blob's first byte or before its delete, cleared once the
record references it or it is gone. What a crash leaves, the sweeper finishes."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO
from uuid import uuid4

from tornado_files.models import DERIVATIVE_KINDS, Derivative, utcnow
from tornado_files.services import Services

log = logging.getLogger("tornado_files.processing")
_CHUNK = 1024 * 1024


class BadAnswer(Exception):
    """The worker named a derivative the server will not store (unknown kind, a path outside
    its output folder, nonsense sizes): a permanent failure of the job."""


def _read(handle: BinaryIO) -> bytes:
    return handle.read(_CHUNK)


class DerivativeBlobs:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def store(self, storage: str, out_dir: Path, items: Sequence[Any]
                    ) -> list[Derivative]:
        """Write each derivative the worker made (``{"kind", "path", "media_type", "width",
        "height"}``, its file inside ``out_dir``) as a new blob; all or none: on any error
        what was written is removed and the error raised. Intents stay until ``settle``."""
        keys: list[str] = []
        written: list[Derivative] = []
        try:
            for item in items:
                kind, path, media_type, width, height = _checked(item, out_dir)
                key = uuid4().hex
                keys.append(key)
                await self.services.intents.add_intent(key, storage, utcnow())
                size, sha256 = await self._write(storage, key, path)
                written.append(Derivative(kind=kind, key=key, size=size, media_type=media_type,
                                          width=width, height=height, sha256=sha256))
        except BaseException:
            await self.remove(storage, keys, journalled=True)
            raise
        return written

    async def _write(self, storage: str, key: str, path: Path) -> tuple[int, str]:
        offload = self.services.offload
        writer = await self.services.blob_store(storage).open_writer(key)
        hasher = hashlib.sha256()
        size = 0
        try:
            handle = await offload(path.open, "rb")
            try:
                while chunk := await offload(_read, handle):
                    hasher.update(chunk)
                    size += len(chunk)
                    await writer.write(chunk)
            finally:
                await offload(handle.close)
            await writer.commit()
        except BaseException:
            await writer.abort()
            raise
        return size, hasher.hexdigest()

    async def journal(self, storage: str, keys: Sequence[str]) -> None:
        """Intents for blobs about to lose their record's reference (replaced derivatives)."""
        for key in keys:
            await self.services.intents.add_intent(key, storage, utcnow())

    async def settle(self, storage: str, keys: Sequence[str]) -> None:
        """The record now references ``keys`` (or they are gone): their intents go."""
        if keys:
            await self.services.intents.clear_intents(storage, list(keys))

    async def remove(self, storage: str, keys: Sequence[str], *, journalled: bool) -> None:
        """Delete blobs no record references, then their intents. ``journalled``: their
        intents exist already (else they are added first). Errors are logged, not raised:
        the intents stay and the sweeper finishes."""
        if not keys:
            return
        try:
            if not journalled:
                await self.journal(storage, keys)
            store = self.services.blob_store(storage)
            for key in keys:
                await store.delete(key)
            await self.settle(storage, keys)
        except Exception:
            log.exception("derivative blobs %s of %s: removal not finished; the sweeper "
                          "finishes it", list(keys), storage)


def _checked(item: Any, out_dir: Path) -> tuple[str, Path, str, int, int]:
    if not isinstance(item, dict):
        raise BadAnswer("a derivative is not an object")
    kind, path = item.get("kind"), item.get("path")
    media_type, width, height = item.get("media_type"), item.get("width"), item.get("height")
    if kind not in DERIVATIVE_KINDS or not isinstance(path, str):
        raise BadAnswer(f"unknown derivative kind {kind!r}")
    resolved = Path(path).resolve()
    if resolved.parent != out_dir.resolve() or not resolved.is_file():
        raise BadAnswer("a derivative outside the job's output folder")
    if media_type not in ("image/webp", "image/jpeg"):
        raise BadAnswer(f"unexpected derivative type {media_type!r}")
    sides = [side for side in (width, height)
             if isinstance(side, int) and not isinstance(side, bool) and 0 < side <= 65535]
    if len(sides) != 2:
        raise BadAnswer("derivative sizes must be whole numbers of pixels")
    return str(kind), resolved, str(media_type), sides[0], sides[1]
