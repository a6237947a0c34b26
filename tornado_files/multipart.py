"""The parser bridge: streaming-form-data → :class:`UploadSession` (the only importer of it).

Facts this relies on (checked by running, STYLE.md): a part's content type is not known in
``on_start`` and is sticky on a reused target, so it is read at finish; ``MultipleTargets``
corrupts filenames, so one catch-all target is registered with ``matches=``, which is called
with each part's real field name just before the part starts; a non-file field has filename
``None``, a browser's "no file chosen" has ``""``; parser errors are coarse.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Mapping
from typing import Any


class _Deferred(types.ModuleType):
    """Stands in for a module until one of its attributes is used, then imports the real one
    (which replaces it in ``sys.modules``) and answers from it."""

    def __getattr__(self, attribute: str) -> Any:
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attribute)


def _defer_unused_imports() -> None:
    """``streaming_form_data.targets`` imports smart_open (requests, urllib3, google-auth, …)
    and aiofiles at load time, for targets we never use: about 20 MiB of resident memory and
    0.2 s of start-up in every server process. A placeholder defers each until one of its
    attributes is used, which only those unused targets do. (The standard ``LazyLoader`` does
    not help on Python 3.11: the ``import`` statement itself reads ``__spec__`` and loads.)"""
    for name in ("smart_open", "aiofiles"):
        if name not in sys.modules:
            sys.modules[name] = _Deferred(name)


_defer_unused_imports()

from streaming_form_data import StreamingFormDataParser  # noqa: E402
from streaming_form_data.parser import (  # noqa: E402
    ParseFailedException,
    parse_content_boundary,
)
from streaming_form_data.targets import BaseTarget  # noqa: E402

from tornado_files.errors import (  # noqa: E402
    FieldTooLarge,
    FileFieldMissing,
    MalformedMultipart,
    TooManyFiles,
)
from tornado_files.jsondata import parse_object  # noqa: E402
from tornado_files.session import UploadSession  # noqa: E402

SINGLE_FIELD = "file"
MULTI_FIELDS = ("files", "files[]")


class _Field:
    """A small non-file value collected in memory, bounded by the field cap and, with every
    other field of the request, by the fields' total cap (``budget``: bytes left)."""

    def __init__(self, name: str, cap: int, budget: list[int]) -> None:
        self.name = name
        self.cap = cap
        self.budget = budget
        self.value = bytearray()

    def add(self, chunk: bytes) -> None:
        self.value += chunk
        self.budget[0] -= len(chunk)
        if len(self.value) > self.cap:
            raise FieldTooLarge(
                detail=f"The field {self.name!r} is larger than {self.cap} bytes",
                meta={"maximum_field_size_allowed": self.cap, "field": self.name},
            )
        if self.budget[0] < 0:
            raise FieldTooLarge(
                detail="The form's fields other than files are too large together",
                meta={"maximum_fields_size_allowed": self.budget[1], "field": self.name},
            )


class _CatchAll(BaseTarget):  # type: ignore[misc]  # untyped library base
    """The one registered target; forwards every part to the bridge."""

    def __init__(self, bridge: MultipartBridge) -> None:
        super().__init__()
        self._bridge = bridge

    async def on_start_async(self) -> None:
        await self._bridge._start(self.multipart_filename)

    async def on_data_received_async(self, chunk: bytes) -> None:
        if chunk:
            await self._bridge._data(chunk)

    async def on_finish_async(self) -> None:
        await self._bridge._finish(self.multipart_content_type)
        # The content type is sticky across parts on this reused target: reset it.
        self.multipart_content_type: str | None = None


class MultipartBridge:
    """Feeds a multipart body, chunk by chunk, into an upload session."""

    def __init__(
        self, headers: Mapping[str, str], session: UploadSession, field_cap: int,
        fields_cap: int,
    ) -> None:
        """``field_cap``: bytes of one non-file field; ``fields_cap``: of all of them (what
        becomes the file's ``data``, which a PATCH may not make larger either)."""
        try:
            self._parser = StreamingFormDataParser(headers)
            # The parser does not say whether the final boundary arrived; we watch for it.
            self._ender = b"\r\n--" + parse_content_boundary(headers) + b"--"
        except ParseFailedException:
            raise MalformedMultipart(detail="The multipart boundary is missing") from None
        self._tail = b""
        self._session = session
        self._field_cap = field_cap
        self._budget = [fields_cap, fields_cap]  # [bytes left, the cap]
        self._name = ""
        self._field: _Field | None = None
        self._in_file = False
        self._data_out: dict[str, Any] = {}
        self._single = False
        self._parser.register("*", _CatchAll(self), matches=self._matches)

    def _matches(self, _registered: str, actual: str) -> bool:
        self._name = actual
        return True

    async def feed(self, chunk: bytes) -> None:
        """Parse one chunk; awaiting it waits for the store (back-pressure)."""
        self._tail = (self._tail + chunk[-len(self._ender) - 4 :])[-len(self._ender) - 4 :]
        # The parser takes bytes only. Multipart requests turn the hand-over of reads off
        # (web/uploads.py), so chunks come as bytes; anything else is copied here, once.
        data = chunk if type(chunk) is bytes else bytes(chunk)
        try:
            await self._parser.adata_received(data)
        except (ParseFailedException, UnicodeDecodeError):
            # UnicodeDecodeError: a part header that is not UTF-8 (RFC 7578 §5.1 wants it).
            raise MalformedMultipart() from None

    def finish(self) -> tuple[bool, dict[str, Any]]:
        """The body ended: check it was complete. Returns (single ``file`` field?, data)."""
        if self._in_file or self._field is not None or self._ender not in self._tail:
            raise MalformedMultipart(detail="The multipart body ended before its final boundary")
        if not self._session.files:
            raise FileFieldMissing()
        return self._single, self._data_out

    async def _start(self, filename: str | None) -> None:
        name = self._name
        if filename is None:
            self._field = _Field(name, self._field_cap, self._budget)
            return
        if name != SINGLE_FIELD and name not in MULTI_FIELDS:
            raise FileFieldMissing(
                detail=f"Files go in a part named 'file' or 'files', not {name!r}",
                meta={"field": name},
            )
        if self._session.files and (self._single or name == SINGLE_FIELD):
            raise TooManyFiles()
        self._single = name == SINGLE_FIELD
        await self._session.start_file(name, filename)
        self._in_file = True

    async def _data(self, chunk: bytes) -> None:
        if self._in_file:
            await self._session.feed(chunk)
        elif self._field is not None:
            self._field.add(chunk)

    async def _finish(self, content_type: str | None) -> None:
        if self._in_file:
            self._in_file = False
            await self._session.end_file(content_type)
        elif self._field is not None:
            self._absorb(self._field)
            self._field = None

    def _absorb(self, item: _Field) -> None:
        """``data`` must be a JSON object (checked as soon as its part ends, before any
        later file streams); other plain fields are stored as strings under their name."""
        if item.name != "data":
            self._data_out[item.name] = bytes(item.value).decode("utf-8", errors="replace")
            return
        self._data_out.update(parse_object(bytes(item.value), "The 'data' part"))
