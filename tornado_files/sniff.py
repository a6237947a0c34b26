"""libmagic (python-magic) on a file's first bytes: the detected MIME type and description."""

from __future__ import annotations

import fnmatch
import re
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


# The encoding libmagic names in a text description (its encoding.c), and the charset a
# browser needs for it. ASCII is sent as UTF-8: only the first bytes were sniffed, and a file
# that starts in ASCII and goes on in UTF-8 still renders right (ASCII is a subset).
_CHARSETS = (
    (re.compile(r"\bUTF-8\b"), "utf-8"),
    (re.compile(r"\bUTF-16, little-endian\b"), "utf-16le"),
    (re.compile(r"\bUTF-16, big-endian\b"), "utf-16be"),
    (re.compile(r"(?:^|[\s,])ASCII text\b"), "utf-8"),
    (re.compile(r"\bISO-8859 text\b"), "iso-8859-1"),
)


def media_type_with_charset(mime_type: str, type_os: str) -> str:
    """The ``Content-Type`` to send for a stored file: ``text/*`` gets the ``charset`` that
    libmagic's description (``type_os``) names, so a browser does not guess (RFC 9110
    §8.3.2; without it, WHATWG encoding sniffing falls back to windows-1252 for UTF-8).

    >>> media_type_with_charset("text/plain", "Unicode text, UTF-8 text")
    'text/plain; charset=utf-8'
    >>> media_type_with_charset("text/plain", "ISO-8859 text, with CRLF line terminators")
    'text/plain; charset=iso-8859-1'
    >>> media_type_with_charset("text/plain", "Non-ISO extended-ASCII text")
    'text/plain'
    >>> media_type_with_charset("image/png", "PNG image data, 1 x 1")
    'image/png'
    """
    if not mime_type.startswith("text/"):
        return mime_type
    for pattern, charset in _CHARSETS:
        if pattern.search(type_os):
            return f"{mime_type}; charset={charset}"
    return mime_type


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
