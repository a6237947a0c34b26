"""The local name of a download saved without ``-o``: the file's name on the server, which
its uploader chose, made safe for the user's directory the way browsers make a download's
name safe. Pure."""

from __future__ import annotations

import re
import unicodedata

from tornado_files.names import utf8_prefix

# What is saved when nothing of the name is left (the name browsers use).
FALLBACK = "download"
# At most this many UTF-8 bytes: the part file, NAME.<16 hex digits>.part (22 bytes more),
# must still fit in the 255 bytes a file name may take.
MAX_NAME_BYTES = 255 - len(".0123456789abcdef.part")
_SEPARATORS = re.compile(r"[/\\]")
_LEADING = re.compile(r"^[\s.]+")
_SHORT_EXTENSION = 16  # bytes: a longer "extension" is not kept whole when a name is cut


def local_name(name: str) -> str:
    """``name`` safe to create in the current directory: path separators (``/``, ``\\``)
    become ``_``; control and format characters (NUL, CR, LF, bidi overrides) are dropped;
    leading dots and white space are removed, so no dotfile (``.bash_profile``,
    ``.ssh``) is made by an uploader's choice; trailing white space goes too; an empty
    result is :data:`FALLBACK`; at most :data:`MAX_NAME_BYTES` UTF-8 bytes, a short
    extension kept. Never raises.

    >>> local_name(".bash_profile"), local_name(" .ssh"), local_name("../../x/y.txt")
    ('bash_profile', 'ssh', '_.._x_y.txt')
    >>> local_name(".."), local_name("report.pdf")
    ('download', 'report.pdf')
    """
    visible = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    safe = _LEADING.sub("", _SEPARATORS.sub("_", visible)).rstrip()
    return _fit(safe) if safe else FALLBACK


def _fit(name: str) -> str:
    """At most :data:`MAX_NAME_BYTES` UTF-8 bytes, cut at a character boundary, keeping the
    last extension when it is short."""
    if len(name.encode("utf-8", "surrogatepass")) <= MAX_NAME_BYTES:
        return name
    stem, dot, extension = name.rpartition(".")
    suffix = dot + extension if stem and len(extension.encode()) <= _SHORT_EXTENSION else ""
    budget = MAX_NAME_BYTES - len(suffix.encode())
    return utf8_prefix(name[: len(name) - len(suffix)], budget) + suffix
