"""libmagic (python-magic) on a file's first bytes: the detected MIME type and description."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

import magic

from tornado_files.blocking import Offload


@dataclass(frozen=True)
class Sniffed:
    mime_type: str
    type_os: str


class Sniffer:
    """Owns one libmagic handle, asked twice per file: the MIME type, then the description.

    One handle, not a ``Magic(mime=True)`` beside a ``Magic()``: each handle maps the whole
    compiled database (8 MB here), and both end up resident. The handle's own lock makes the
    flag switch and both answers one step, so the thread pool may share it."""

    def __init__(self, offload: Offload) -> None:
        self._offload = offload
        self._magic = magic.Magic()

    def sniff_now(self, head: bytes) -> Sniffed:
        if not head:
            return Sniffed("application/x-empty", "empty")
        handle = self._magic
        with handle.lock:
            try:
                magic.magic_setflags(handle.cookie, magic.MAGIC_MIME_TYPE)
                mime_type = magic.maybe_decode(magic.magic_buffer(handle.cookie, head))
            finally:
                magic.magic_setflags(handle.cookie, magic.MAGIC_NONE)
            type_os = magic.maybe_decode(magic.magic_buffer(handle.cookie, head))
        return Sniffed(mime_type, type_os)

    async def sniff(self, head: bytes) -> Sniffed:
        return await self._offload(self.sniff_now, head)


def mime_allowed(mime_type: str, allowed: tuple[str, ...]) -> bool:
    """An empty allowlist allows everything; ``image/*`` matches any image subtype.

    >>> mime_allowed("image/png", ("image/*",)), mime_allowed("text/html", ("image/*",))
    (True, False)
    >>> mime_allowed("application/pdf", ())
    True
    """
    if not allowed:
        return True
    return any(fnmatch.fnmatchcase(mime_type, pattern) for pattern in allowed)
