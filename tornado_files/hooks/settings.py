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
        return f"Hook(event={self.event!r}, url={shown_url(self.url)!r})"


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


def shown_url(url: str) -> str:
    """How a hook's URL appears in logs: ``scheme://host[:port]/path``, with any user and
    password replaced by ``REDACTED@`` and any query by ``?REDACTED`` (both may hold a
    receiver's credentials); the fragment is dropped. The request still goes to ``url``.

    >>> shown_url("http://user:SuperSecretPw@127.0.0.1:1/ok?token=abc#frag")
    'http://REDACTED@127.0.0.1:1/ok?REDACTED'
    >>> shown_url("https://hooks.example/in")
    'https://hooks.example/in'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(a URL that cannot be parsed)"
    _, at, host = parts.netloc.rpartition("@")
    netloc = f"REDACTED@{host}" if at else host
    return f"{parts.scheme}://{netloc}{parts.path}" + ("?REDACTED" if parts.query else "")


_LOOPBACK = ("localhost", "127.0.0.1", "::1")
_ANY = ("", "0.0.0.0", "::")  # noqa: S104  (compared with, not bound)


def check_not_self(hooks: tuple[Hook, ...], host: str, port: int) -> None:
    """Refuse a hook sent to this server's own address (``host``, ``port``: where it
    listens): a ``file.created`` delivery to its ``/api/files`` would create a file, whose
    event is another delivery, without end. The same port on a loopback name counts when the
    server listens on loopback or on every address. Raises ``ValueError``; a loop through a
    proxy or another name is not detected (docs/deploying.md warns)."""
    host = host.lower().strip("[]")
    for index, hook in enumerate(hooks):
        parts = urlsplit(hook.url)
        name = (parts.hostname or "").lower()
        hook_port = parts.port or (443 if parts.scheme == "https" else 80)
        local = name in _LOOPBACK and (host in _LOOPBACK or host in _ANY)
        if hook_port == port and (name == host or local):
            raise ValueError(f"hooks[{index}].url: {shown_url(hook.url)} is this server "
                             f"itself ({host}:{port}); its deliveries would never end")


def check_retry_max(value: float) -> None:
    """``hook_retry_max``: the longest wait between two attempts of one delivery."""
    if not 1 <= value <= 86400:
        raise ValueError(f"hook_retry_max: expected seconds from 1 to 86400, got {value:g}")
