"""Log lines as text (the default) or as JSON lines (``--log-format json``, docs/deploying.md).

A JSON line has ``time`` (ISO 8601 UTC, milliseconds), ``level``, ``logger``, ``event``
(``request`` for the one access line each request gets, ``log`` for everything else),
``message`` and ``pid`` (the process that wrote it: with ``--processes``, which worker); an
access line adds the stable keys of ``ACCESS_KEYS``. A traceback, when there is one, is in
``exc_info`` as text. Secrets never reach a line: the access line's ``path``
has the values of every query parameter that may hold one redacted (``web.log_redaction``).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# What an access line carries besides the message: who, what, how long, how much.
ACCESS_KEYS = ("request_id", "method", "path", "status", "duration_s", "bytes_in",
               "bytes_out", "file_id", "principal")


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line, keys as the module says."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "event": getattr(record, "event", "log"),
            "message": record.getMessage(),
            "pid": record.process,
        }
        for key in ACCESS_KEYS:
            if hasattr(record, key):
                line[key] = getattr(record, key)
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def formatter_for(log_format: str) -> logging.Formatter:
    """The formatter of ``log_format`` (one of ``LOG_FORMATS``)."""
    return JsonLogFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
