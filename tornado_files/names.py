"""Client-supplied filenames: made safe for display and for download headers.

The stored object's name never depends on these (DESIGN.md invariant 4).
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote, unquote

MAX_FILENAME_BYTES = 255
# What is kept of the client's own name (``original_filename``): longer names are cut, not
# refused — the name is metadata only, and a refusal would fail uploads over a label.
MAX_ORIGINAL_FILENAME_BYTES = 1024
FALLBACK_NAME = "unknown"
# Types a browser would execute or render as a document: never served inline.
_NEVER_INLINE = re.compile(r"(html|xml|svg|javascript|ecmascript|xhtml)", re.IGNORECASE)
_INLINE_PREFIXES = ("image/", "audio/", "video/")


def safe_filename(original: str | None) -> str:
    """A display name from the client's filename: last path part only, no control or
    format characters, no NUL, at most 255 UTF-8 bytes (the extension is kept).

    >>> safe_filename("../../report.pdf"), safe_filename("C:\\\\x\\\\a.txt")
    ('report.pdf', 'a.txt')
    >>> safe_filename("a\\x00b\\r\\n.txt"), safe_filename(".."), safe_filename("")
    ('ab.txt', 'unknown', 'unknown')
    """
    if not original:
        return FALLBACK_NAME
    name = re.split(r"[/\\]", original)[-1]
    name = "".join(
        ch for ch in unicodedata.normalize("NFC", name)
        if unicodedata.category(ch)[0] != "C"
    ).strip()
    if name in ("", ".", ".."):
        return FALLBACK_NAME
    return _truncate(name)


def _truncate(name: str, max_bytes: int = MAX_FILENAME_BYTES) -> str:
    """At most ``max_bytes`` UTF-8 bytes, a short extension kept."""
    if len(name.encode("utf-8", "surrogatepass")) <= max_bytes:
        return name
    stem, dot, ext = name.rpartition(".")
    suffix = (dot + ext) if dot and stem and len(ext.encode("utf-8", "surrogatepass")) <= 16 else ""
    base = name[: len(name) - len(suffix)] if suffix else name
    budget = max_bytes - len(suffix.encode("utf-8", "surrogatepass"))
    return utf8_prefix(base, budget) + suffix


def utf8_prefix(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` whose UTF-8 form fits in ``max_bytes``: encoded once and
    cut once at a character boundary, so linear in the length (DESIGN.md invariant 7).

    >>> utf8_prefix("naïve", 3), utf8_prefix("naïve", 4)
    ('na', 'naï')
    """
    encoded = text.encode("utf-8", "surrogatepass")
    if len(encoded) <= max_bytes:
        return text
    end = max_bytes
    while end > 0 and encoded[end] & 0xC0 == 0x80:  # a continuation byte: inside a character
        end -= 1
    return encoded[:end].decode("utf-8", "surrogatepass")


def keep_original_filename(name: str) -> str:
    """The client's name as stored in ``original_filename``: at most
    ``MAX_ORIGINAL_FILENAME_BYTES`` UTF-8 bytes, cut at a character boundary with a short
    extension kept (``filename`` is made from what is kept).

    >>> len(keep_original_filename("a" * 5000 + ".pdf")), keep_original_filename("x" * 5000)[-4:]
    (1024, 'xxxx')
    >>> keep_original_filename("a" * 5000 + ".pdf")[-5:]
    'a.pdf'
    """
    return _truncate(name, MAX_ORIGINAL_FILENAME_BYTES)


def raw_upload_filename(x_filename: str | None, content_disposition: str | None) -> str | None:
    """The filename of a raw-body upload: ``X-Filename`` (percent-encoded UTF-8 allowed),
    else ``Content-Disposition: attachment; filename*=UTF-8''…`` (or plain ``filename=``).
    Raw UTF-8 bytes in either header (what curl sends from a UTF-8 shell) are read as UTF-8:
    Tornado hands header bytes over as latin-1, so they are re-encoded and tried as UTF-8.

    >>> raw_upload_filename("caf%C3%A9.txt", None)
    'café.txt'
    >>> raw_upload_filename(None, "attachment; filename*=UTF-8''na%C3%AFve.bin")
    'naïve.bin'
    >>> raw_upload_filename(None, 'attachment; filename="plain.txt"')
    'plain.txt'
    >>> raw_upload_filename("caf\xc3\xa9.txt", None)
    'café.txt'
    """

    def utf8(text: str) -> str:
        try:
            return text.encode("latin-1").decode("utf-8")
        except UnicodeError:  # not latin-1 text, or not UTF-8 bytes: keep what came
            return text

    if x_filename:
        return unquote(utf8(x_filename), encoding="utf-8", errors="replace")
    if not content_disposition:
        return None
    content_disposition = utf8(content_disposition)
    star = re.search(r"filename\*\s*=\s*([^;]+)", content_disposition, re.IGNORECASE)
    if star:
        value = star.group(1).strip().strip('"')
        charset, _, rest = value.partition("'")
        _lang, _, encoded = rest.partition("'")
        if encoded:
            codec = charset if charset.lower() in ("utf-8", "iso-8859-1") else "utf-8"
            return unquote(encoded, encoding=codec, errors="replace")
    plain = re.search(r'filename\s*=\s*("([^"]*)"|[^;]+)', content_disposition, re.IGNORECASE)
    if plain:
        return (plain.group(2) if plain.group(2) is not None else plain.group(1)).strip()
    return None


def inline_allowed(mime_type: str) -> bool:
    """Types safe to render in a browser tab: raster images, audio, video, plain text.

    >>> [inline_allowed(t) for t in ("image/png", "image/svg+xml", "text/plain", "text/html")]
    [True, False, True, False]
    """
    if _NEVER_INLINE.search(mime_type):
        return False
    return mime_type.startswith(_INLINE_PREFIXES) or mime_type == "text/plain"


def content_disposition(filename: str, inline: bool = False) -> str:
    """RFC 6266 header value with an ASCII fallback and a UTF-8 ``filename*``; quotes,
    backslashes and control characters cannot break out of it.

    >>> content_disposition('a"b\\r\\n.txt')
    'attachment; filename="a_b__.txt"; filename*=UTF-8\\'\\'a%22b%0D%0A.txt'
    >>> content_disposition("résumé 東.pdf", inline=True)
    'inline; filename="resume _.pdf"; filename*=UTF-8\\'\\'r%C3%A9sum%C3%A9%20%E6%9D%B1.pdf'
    """
    kind = "inline" if inline else "attachment"
    # ASCII fallback for clients that ignore filename* (curl -J does): accents folded away.
    folded = "".join(
        unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode() or ch
        for ch in filename
    )
    fallback = "".join(
        ch if 0x20 <= ord(ch) < 0x7F and ch not in '"\\%' else "_" for ch in folded
    )
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
