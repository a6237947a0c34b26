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
    """Owns two libmagic handles; each python-magic ``Magic`` serialises its own calls with a
    lock, so the handles may be used from the thread pool."""

    def __init__(self, offload: Offload) -> None:
        self._offload = offload
        self._mime = magic.Magic(mime=True)
        self._text = magic.Magic()

    def sniff_now(self, head: bytes) -> Sniffed:
        if not head:
            return Sniffed("application/x-empty", "empty")
        return Sniffed(self._mime.from_buffer(head), self._text.from_buffer(head))

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
