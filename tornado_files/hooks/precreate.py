"""The synchronous ``upload.pre_create`` hook (docs/deploying.md, Webhooks; API.md §10).

Asked before any byte of an upload is stored — a multipart file part (the parser waits at
the part's headers), a raw body, a tus creation — with ``{"route", "principal", "filename",
"size", "data"}``. Every hook configured for the event is asked, in configuration order, and
each must answer 2xx. A non-2xx answer is ``RejectedByHook`` whose detail is the answer's JSON
``detail`` (only a string, from a JSON object of at most ``MAX_ANSWER`` bytes; anything else is
never shown to the client). No answer within the hook's ``timeout``, or no connection at all,
is ``HookUnavailable`` (503).
"""

from __future__ import annotations

import asyncio
import json
import logging
import unicodedata
from typing import Any

from tornado.httpclient import HTTPRequest

from tornado_files.errors import HookUnavailable, RejectedByHook
from tornado_files.hooks.http import signature
from tornado_files.hooks.settings import PRE_CREATE, Hook, shown_url
from tornado_files.services import Services

log = logging.getLogger("tornado_files.hooks")
# Bytes of a hook's answer read for its detail; the rest is dropped unread.
MAX_ANSWER = 16 * 1024
# Seconds past a hook's timeout after which its request is abandoned regardless.
_SAFETY = 2.0
# Characters of a detail passed on.
MAX_DETAIL = 1000


async def pre_create(services: Services, *, route: str, principal: str | None,
                     filename: str, size: int | None, data: dict[str, Any]) -> None:
    """Ask every ``upload.pre_create`` hook; returns when all accepted. ``size``: bytes
    declared for the file, or None when not known up front. Raises ``RejectedByHook`` or
    ``HookUnavailable``."""
    hooks = [hook for hook in services.config.hooks if hook.event == PRE_CREATE]
    if not hooks:
        return
    body = json.dumps({"route": route, "principal": principal, "filename": filename,
                       "size": size, "data": data},
                      ensure_ascii=False, separators=(",", ":")).encode()
    for hook in hooks:
        outcome = "unavailable"
        try:
            await _ask(services, hook, body)
            outcome = "accepted"
        except RejectedByHook:
            outcome = "rejected"
            raise
        finally:
            services.metrics.hook_delivery(PRE_CREATE, outcome)


async def _ask(services: Services, hook: Hook, body: bytes) -> None:
    answer = bytearray()

    def collect(chunk: bytes) -> None:
        if len(answer) < MAX_ANSWER:
            answer.extend(chunk[:MAX_ANSWER - len(answer)])

    headers = {"Content-Type": "application/json", "User-Agent": "tornado-files",
               "X-Hook-Event": PRE_CREATE}
    if hook.secret is not None:
        headers["X-Signature-256"] = signature(hook.secret, body)
    request = HTTPRequest(hook.url, method="POST", body=body, headers=headers,
                          connect_timeout=hook.timeout, request_timeout=hook.timeout,
                          follow_redirects=False, decompress_response=False,
                          streaming_callback=collect)
    try:
        # request_timeout is the deadline (it covers the client's queue, the connection and
        # the answer); this one is only a safety net, later so that it never cancels a fetch
        # that Tornado is about to time out itself (which logs "Exception after Future was
        # cancelled").
        async with asyncio.timeout(hook.timeout + _SAFETY):
            response = await services.hook_http.client().fetch(request, raise_error=False)
    except Exception as exc:  # refused, timed out, reset: the upload cannot be judged
        log.warning("upload.pre_create hook %s did not answer (%s)", shown_url(hook.url),
                    type(exc).__name__)
        raise HookUnavailable() from None
    if response.code == 599:
        log.warning("upload.pre_create hook %s did not answer", shown_url(hook.url))
        raise HookUnavailable()
    if not 200 <= response.code < 300:
        raise RejectedByHook(detail=_detail(bytes(answer)))


def _detail(answer: bytes) -> str | None:
    r"""The string ``detail`` of a JSON object answer, else None (the default detail); its
    control characters (Unicode category Cc: NUL, CR, LF, tab, ESC …) become spaces, so that it
    forges no line in a log or a terminal, and it is cut at ``MAX_DETAIL`` characters.

    >>> _detail(b'{"detail": "Quota exceeded"}'), _detail(b'<html>'), _detail(b'{"detail": 1}')
    ('Quota exceeded', None, None)
    >>> _detail(b'{"detail": "no\\r\\nINFO forged\\u0000"}'), _detail(b'{"detail": "\\n"}')
    ('no  INFO forged ', None)
    """
    try:
        document = json.loads(answer)
    except ValueError:
        return None
    detail = document.get("detail") if isinstance(document, dict) else None
    if not isinstance(detail, str):
        return None
    detail = "".join(" " if unicodedata.category(c) == "Cc" else c for c in detail)
    if not detail.strip():
        return None
    return detail[:MAX_DETAIL]
