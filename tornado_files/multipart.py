"""The multipart/form-data parser and its bridge to :class:`UploadSession`.

The framing (RFC 2046 §5.1.1) and the part headers (RFC 7578, as the WHATWG form encoding
writes them) are parsed here, with ``bytes.find`` for the delimiters, so that the whole edge
follows one set of rules: a preamble and an epilogue are ignored; the end of the body is the
close delimiter, judged by the parser; a part header block is bounded (``max_part_header_size``)
and must be well formed, or the whole request fails; parts are counted (``max_parts``); and the
parser gives the event loop back between parts. streaming-form-data 2.1 could not do these at
our edge: its header parsing is the e-mail parser's (backslash escapes, one line at a time,
``Content-Type`` lost when it comes first, bad lines dropped silently), an unbounded header
line is re-copied on every read, and it refuses a preamble (docs/behaviour.md, Multipart).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from email.message import Message
from typing import Any
from urllib.parse import unquote

from tornado_files.errors import (
    FieldTooLarge,
    FileFieldMissing,
    MalformedMultipart,
    RequestTooLarge,
    TooManyFiles,
)
from tornado_files.jsondata import check_data_keys, check_data_size, parse_object
from tornado_files.session import UploadSession

SINGLE_FIELD = "file"
MULTI_FIELDS = ("files", "files[]")
# Werkzeug, Django, Starlette and hapi all cap a form at 1,000 parts.
DEFAULT_MAX_PARTS = 1000
DEFAULT_MAX_PART_HEADER_SIZE = 16 * 1024
# RFC 7578 §4.7: Content-Transfer-Encoding is deprecated; these three mean "as is".
_IDENTITY_ENCODINGS = frozenset({"binary", "8bit", "7bit"})
_TCHARS = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_HEADER_LINE = re.compile(rf"({_TCHARS}):[ \t]*(.*?)[ \t]*")
_BAD_VALUE_CHAR = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# One parameter: ; name = "quoted" | token. A quoted value ends at the first quote followed by
# the end or a ';' — browsers never send a raw '"' (they write %22) and never escape a
# backslash, so a backslash is kept, and '\"' is read as a quote only for MIME clients.
_PARAM = re.compile(
    rf'[ \t]*;[ \t]*({_TCHARS})[ \t]*=[ \t]*'
    rf'(?:"((?:[^"]|"(?![ \t]*(?:;|$)))*)"|([^";]*?))[ \t]*(?=;|$)'
)
_WHATWG_ESCAPE = re.compile(r"%(22|0[aAdD])")
_MEDIA_TYPE = re.compile(rf"{_TCHARS}/{_TCHARS}")


def _unescape(value: str) -> str:
    """Undo the WHATWG form escapes (``%22`` ``"``, ``%0D`` CR, ``%0A`` LF) and nothing else,
    as Node's undici does; a backslash-escaped quote from a MIME client becomes a quote."""
    value = value.replace('\\"', '"')  # first: a browser's backslash before %22 stays
    return _WHATWG_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), value)


@dataclass(frozen=True)
class PartHead:
    """What a part's header block says."""

    name: str
    filename: str | None
    content_type: str | None


def parse_part_headers(block: bytes) -> PartHead:
    """A part's header block (the lines between the delimiter line and the empty line), in
    any order. Anything that is not UTF-8, a line that is not ``name: value``, a control
    character, a repeated header or parameter, a disposition other than ``form-data`` or
    without a ``name``, an encoded body: :class:`MalformedMultipart` — never a silent drop.

    >>> parse_part_headers(b'Content-Type: text/plain\\r\\nContent-Disposition: form-data; '
    ...                    b'name="file"; filename="C:\\\\a\\\\b%22.txt"')
    PartHead(name='file', filename='C:\\\\a\\\\b".txt', content_type='text/plain')
    """
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedMultipart(detail="A part header is not UTF-8") from None
    headers: dict[str, str] = {}
    last = ""
    for line in text.split("\r\n") if text else []:
        if line[:1] in (" ", "\t") and last:  # obs-fold (RFC 9112 §5.2): one space
            headers[last] += " " + line.strip(" \t")
            continue
        match = _HEADER_LINE.fullmatch(line)
        if match is None:
            raise MalformedMultipart(detail="A part header line is not 'name: value'")
        last = match.group(1).lower()
        if last in headers and last.startswith("content-"):
            raise MalformedMultipart(detail=f"A part repeats its {match.group(1)} header")
        headers[last] = match.group(2)
    if any(_BAD_VALUE_CHAR.search(value) for value in headers.values()):
        raise MalformedMultipart(detail="A part header holds a control character")
    encoding = headers.get("content-transfer-encoding", "binary").lower()
    if encoding not in _IDENTITY_ENCODINGS:
        raise MalformedMultipart(
            detail=f"Content-Transfer-Encoding {encoding!r} is not supported (RFC 7578 §4.7):"
                   " send the bytes as they are",
        )
    name, filename = _disposition(headers.get("content-disposition"))
    media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return PartHead(name, filename, media if _MEDIA_TYPE.fullmatch(media) else None)


def _disposition(value: str | None) -> tuple[str, str | None]:
    kind, _, rest = (value or "").partition(";")
    if kind.strip().lower() != "form-data":
        raise MalformedMultipart(detail="A part has no 'Content-Disposition: form-data'")
    params: dict[str, str] = {}
    position = 0
    rest = ";" + rest if rest else ""
    while position < len(rest):
        match = _PARAM.match(rest, position)
        if match is None or match.end() == position:
            raise MalformedMultipart(detail="A part's Content-Disposition cannot be parsed")
        key = match.group(1).lower()
        if key in params:
            raise MalformedMultipart(detail=f"A part's Content-Disposition repeats {key!r}")
        quoted = match.group(2)
        params[key] = _unescape(quoted) if quoted is not None else match.group(3)
        position = match.end()
    name = params.get("name")
    if not name:
        raise MalformedMultipart(detail="A part has no name")
    filename = params.get("filename")
    extended = params.get("filename*")  # RFC 8187, which RFC 7578 §4.2 says not to send
    if extended is not None:
        charset, _, encoded = extended.partition("'")
        encoded = encoded.partition("'")[2]
        codec = "iso-8859-1" if charset.lower() == "iso-8859-1" else "utf-8"
        try:
            filename = unquote(encoded, encoding=codec, errors="strict")
        except UnicodeDecodeError:
            raise MalformedMultipart(detail="A part's filename* is not UTF-8") from None
    return name, filename


def parse_boundary(headers: Mapping[str, str]) -> bytes:
    """The request's boundary. RFC 2046 §5.1.1 allows 1 to 70 characters; longer ones are
    taken up to 256, as python-multipart does, since refusing them gains nothing."""
    message = Message()
    message["Content-Type"] = headers.get("Content-Type", "")
    boundary = message.get_param("boundary")
    if not isinstance(boundary, str) or not 0 < len(boundary) <= 256:
        raise MalformedMultipart(detail="The multipart boundary is missing")
    try:
        return boundary.encode("ascii")
    except UnicodeEncodeError:
        raise MalformedMultipart(detail="The multipart boundary is not ASCII") from None


# What the framer reports, in body order: a part's head, a piece of its content, its end.
Event = tuple[str, Any]
_PREAMBLE, _HEAD, _BODY, _DONE = range(4)


class Framer:
    """Splits a multipart body into events as it arrives, holding at most one part header
    block (``max_part_header_size``) or one delimiter's length of input."""

    def __init__(self, boundary: bytes, max_parts: int, max_header: int) -> None:
        self._delimiter = b"\r\n--" + boundary
        self._max_parts = max_parts
        self._max_header = max_header
        self._state = _PREAMBLE
        # The first delimiter may open the body without a CRLF before it: pretend there was.
        self._buffer = b"\r\n"
        self.parts = 0

    @property
    def done(self) -> bool:
        """True once the close delimiter arrived (anything after it is the epilogue)."""
        return self._state == _DONE

    def feed(self, data: bytes) -> Iterator[Event]:
        """The events ``data`` completes; lazily, so the caller's awaits pace the parsing.
        The input is scanned by position, never re-sliced, so a read holding thousands of
        small parts costs no more than one holding a single part."""
        if self._state == _DONE:
            return
        buffer = self._buffer + data
        self._buffer = b""
        position, size = 0, len(buffer)
        while position < size:
            if self._state == _BODY:
                found = buffer.find(self._delimiter, position)
                if found < 0:
                    end = size - self._partial_delimiter(buffer, position)
                    if end > position:
                        yield "data", buffer[position:end]  # the whole read: no copy
                    position = end
                    break
                if found > position:
                    yield "data", buffer[position:found]
                yield "end", None
                position = found + len(self._delimiter)
                self._state = _HEAD
            elif self._state == _PREAMBLE:
                found = buffer.find(self._delimiter, position)
                if found < 0:
                    position = size - self._partial_delimiter(buffer, position)
                    break
                position = found + len(self._delimiter)
                self._state = _HEAD
            elif self._state == _HEAD:
                head, position = self._head(buffer, position)
                if head is None:
                    break
                yield "part", head
            else:  # _DONE: the epilogue is ignored
                position = size
        self._buffer = buffer[position:]

    def _partial_delimiter(self, buffer: bytes, position: int) -> int:
        """How many bytes at the end of ``buffer`` (from ``position``) could begin a
        delimiter."""
        tail = buffer[max(position, len(buffer) - len(self._delimiter) + 1) :]
        start = tail.find(b"\r")
        while start >= 0:
            if self._delimiter.startswith(tail[start:]):
                return len(tail) - start
            start = tail.find(b"\r", start + 1)
        return 0

    def _head(self, buffer: bytes, position: int) -> tuple[PartHead | None, int]:
        """After a delimiter: the close (``--``), or padding, CRLF and a header block.
        Returns the part's head (None: the close, or more input needed) and where to go on."""
        size = len(buffer)
        if buffer.startswith(b"--", position):
            self._state = _DONE
            return None, size
        if size - position == 1 and buffer[position] == 0x2D:  # "-": wait for the next byte
            return None, position
        end = buffer.find(b"\r\n\r\n", position, position + self._max_header + 4)
        if end < 0:
            if size - position >= self._max_header + 4:
                raise self._header_too_large()
            return None, position
        padding, _, block = buffer[position:end].partition(b"\r\n")
        if padding.strip(b" \t"):
            raise MalformedMultipart(detail="A boundary line has text after the boundary")
        if len(block) + 4 > self._max_header:
            raise self._header_too_large()
        self.parts += 1
        if self.parts > self._max_parts:
            raise RequestTooLarge(
                detail=f"A form may have at most {self._max_parts} parts",
                meta={"maximum_parts_allowed": self._max_parts},
            )
        head = parse_part_headers(block)
        self._state = _BODY
        return head, end + 4

    def _header_too_large(self) -> RequestTooLarge:
        return RequestTooLarge(
            detail=f"A part's headers are larger than {self._max_header} bytes",
            meta={"maximum_part_header_size_allowed": self._max_header},
        )


class _Field:
    """A small non-file value collected in memory, bounded by the field cap and, with every
    other field of the request, by the fields' total cap (``budget``: bytes left). A field's
    name counts too: it becomes a key of ``data``, and 990 fields of 15 KiB names and empty
    values once made a 14.5 MiB ``data`` under a 1 MiB cap."""

    def __init__(self, name: str, cap: int, budget: list[int]) -> None:
        self.name = name
        self.cap = cap
        self.budget = budget
        self.value = bytearray()
        self._charge(len(name.encode("utf-8", "surrogateescape")))

    def add(self, chunk: bytes) -> None:
        self.value += chunk
        self._charge(len(chunk))

    def _charge(self, size: int) -> None:
        self.budget[0] -= size
        shown = self.name[:100]  # a name may be 16 KiB: the answer echoes only its start
        if len(self.value) > self.cap:
            raise FieldTooLarge(
                detail=f"The field {shown!r} is larger than {self.cap} bytes",
                meta={"maximum_field_size_allowed": self.cap, "field": shown},
            )
        if self.budget[0] < 0:
            raise FieldTooLarge(
                detail="The form's fields other than files are too large together",
                meta={"maximum_fields_size_allowed": self.budget[1], "field": shown},
            )


class MultipartBridge:
    """Feeds a multipart body, chunk by chunk, into an upload session."""

    def __init__(
        self, headers: Mapping[str, str], session: UploadSession, field_cap: int,
        fields_cap: int, max_parts: int = DEFAULT_MAX_PARTS,
        max_part_header_size: int = DEFAULT_MAX_PART_HEADER_SIZE,
        before_file: Callable[[str, dict[str, Any]], Awaitable[None]] | None = None,
    ) -> None:
        """``field_cap``: bytes of one non-file field; ``fields_cap``: of all of them (what
        becomes the file's ``data``, which a PATCH may not make larger either);
        ``max_parts``: parts of the form; ``max_part_header_size``: bytes of one part's
        header block (its lines and the empty line that ends it); ``before_file(filename,
        data so far)``: awaited at each file part's headers, before its first byte is stored
        (the stream waits meanwhile; it raises to refuse the upload)."""
        self._framer = Framer(parse_boundary(headers), max_parts, max_part_header_size)
        self._session = session
        self._field_cap = field_cap
        self._budget = [fields_cap, fields_cap]  # [bytes left, the cap]
        self._field: _Field | None = None
        self._file: str | None = None  # the content type of the file part being read
        self._data_out: dict[str, Any] = {}
        self._single = False
        self._before_file = before_file

    async def feed(self, chunk: bytes) -> None:
        """Parse one chunk; awaiting it waits for the store (back-pressure)."""
        for kind, value in self._framer.feed(bytes(chunk)):
            if kind == "data":
                if self._file is not None:
                    await self._session.feed(value)
                elif self._field is not None:
                    self._field.add(value)
            elif kind == "part":
                # Give the event loop back between parts: a form of many small parts never
                # holds other clients for long (DESIGN.md invariant 7).
                await asyncio.sleep(0)
                await self._start(value)
            else:
                await self._finish()

    def finish(self) -> tuple[bool, dict[str, Any]]:
        """The body ended: check it was complete. Returns (single ``file`` field?, data)."""
        if not self._framer.done:
            raise MalformedMultipart(detail="The multipart body ended before its final boundary")
        if not self._session.files:
            raise FileFieldMissing()
        # What is stored, as stored: escapes can make the JSON longer than the raw fields.
        check_data_size(self._data_out, self._budget[1])
        check_data_keys(self._data_out)
        return self._single, self._data_out

    async def _start(self, head: PartHead) -> None:
        name = head.name
        if head.filename is None:
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
        if self._before_file is not None:
            await self._before_file(head.filename, dict(self._data_out))
        await self._session.start_file(name, head.filename)
        self._file = head.content_type or ""

    async def _finish(self) -> None:
        if self._file is not None:
            content_type, self._file = self._file, None
            await self._session.end_file(content_type or None)
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
