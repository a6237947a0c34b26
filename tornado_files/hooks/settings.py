"""The ``[[hooks]]`` tables of the configuration and the top-level ``hook_retry_max``
(docs/configuration.md, docs/deploying.md "Webhooks").

Every problem raises ``ValueError`` with one line a person can act on (``config`` turns it
into a ``ConfigError``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import urlsplit

from tornado_files.tables import table

KEY = "hooks"
# Delivered from the outbox, at least once (API.md §10).
OUTBOX_EVENTS = ("file.created", "file.updated", "file.deleted", "upload.expired")
PRE_CREATE = "upload.pre_create"
EVENTS = (*OUTBOX_EVENTS, PRE_CREATE)
_KEYS = {"event", "url", "secret", "timeout"}
DEFAULT_TIMEOUT = 5.0
DEFAULT_RETRY_MAX = 300.0


@dataclass(frozen=True)
class Hook:
    """One ``[[hooks]]`` table. ``timeout``: seconds — for ``upload.pre_create`` the deadline
    of its answer, for the other events the timeout of one delivery attempt."""

    event: str
    url: str
    secret: str | None = None
    timeout: float = DEFAULT_TIMEOUT

    def __repr__(self) -> str:  # the secret never reaches a log line
        return f"Hook(event={self.event!r}, url={self.url!r})"


def parse_hooks(raw: object) -> tuple[Hook, ...]:
    """The ``[[hooks]]`` array (absent: none). Several hooks may share an event."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ValueError("hooks: expected [[hooks]] tables")
    return tuple(_hook(item, f"hooks[{index}]") for index, item in enumerate(raw))


def _hook(raw: object, where: str) -> Hook:
    values = table(raw, where, _KEYS)
    event = values.get("event")
    if event not in EVENTS:
        raise ValueError(f"{where}.event: expected one of {list(EVENTS)}, got {event!r}")
    url = values.get("url")
    if not isinstance(url, str) or not _is_http_url(url):
        raise ValueError(f"{where}.url: expected an http:// or https:// URL, got {url!r}")
    secret = values.get("secret")
    if secret is not None and (not isinstance(secret, str) or not secret):
        raise ValueError(f"{where}.secret: expected a non-empty string")
    timeout = values.get("timeout", DEFAULT_TIMEOUT)
    if (isinstance(timeout, bool) or not isinstance(timeout, int | float)
            or not math.isfinite(timeout) or not 0.1 <= timeout <= 300):
        raise ValueError(f"{where}.timeout: expected seconds from 0.1 to 300, got {timeout!r}")
    return Hook(event=event, url=url, secret=secret, timeout=float(timeout))


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and " " not in url


def check_retry_max(value: float) -> None:
    """``hook_retry_max``: the longest wait between two attempts of one delivery."""
    if not 1 <= value <= 86400:
        raise ValueError(f"hook_retry_max: expected seconds from 1 to 86400, got {value:g}")
