"""Keeping credentials out of Tornado's own log lines (issue 14: no secret in logs;
docs/security.md).

When Tornado refuses a header it logs ``Malformed HTTP message from <ip>: Invalid header value
'<the value>'`` on ``tornado.general``. That value may be a credential — a token read from a
file with Windows line endings arrives as ``Bearer <token>\\r``, which RFC 9110 §5.5 does not
allow — so the value is dropped from the line and the reason kept.

The server's own access line shows a request's URI through ``loggable_uri``: the value of
every query parameter that is not one of the API's own is replaced — a link's ``sig`` (however
its name is spelt: ``%73ig``), and anything a client may put a credential in
(``?access_token=``, which is refused but was logged).
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, quote, urlencode

# Query parameters of the API whose values are no secret and help read a log: the listing's
# filters, paging and sort, a download's options, a signed link's non-secret parts.
SAFE_PARAMETERS = frozenset({
    "mime_type", "filename", "route", "owner", "sha256", "size_greater_than",
    "size_less_than", "added_since", "modified_since", "sort", "limit", "cursor",
    "processing", "has_derivative_images",
    "disposition", "alt", "expires", "max_size"})
HIDDEN = "REDACTED"


def loggable_uri(uri: str) -> str:
    """``uri`` with the value of every parameter outside ``SAFE_PARAMETERS`` (and ``data.KEY``
    filters) replaced by ``REDACTED``; names are compared decoded.

    >>> loggable_uri("/api/files/ab/content?expires=9&sig=c2Vj&disposition=inline")
    '/api/files/ab/content?expires=9&sig=REDACTED&disposition=inline'
    >>> loggable_uri("/api/files?access_token=t0ken&%73ig=s&limit=5&data.tag=x")
    '/api/files?access_token=REDACTED&sig=REDACTED&limit=5&data.tag=x'
    """
    path, mark, query = uri.partition("?")
    if not mark:
        return uri
    pairs = [(name, value if name in SAFE_PARAMETERS or name.startswith("data.") else HIDDEN)
             for name, value in parse_qsl(query, keep_blank_values=True)]
    return f"{path}?{urlencode(pairs, quote_via=quote, safe='*')}"


# Tornado 6.6: http1connection logs this format with (context, HTTPInputError).
MALFORMED = "Malformed HTTP message from %s: %s"
INVALID_VALUE = "Invalid header value"
REDACTED = f"{INVALID_VALUE} (not logged: it may hold a credential)"


class HeaderValueRedaction(logging.Filter):
    """Rewrites Tornado's "Invalid header value '…'" line without the value; lets every
    record through."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if (record.msg == MALFORMED and isinstance(args, tuple) and len(args) == 2
                and str(args[1]).startswith(INVALID_VALUE)):
            record.args = (args[0], REDACTED)
        return True


def install() -> None:
    """Add the filter to ``tornado.general`` once (every server built does this)."""
    general = logging.getLogger("tornado.general")
    if not any(isinstance(f, HeaderValueRedaction) for f in general.filters):
        general.addFilter(HeaderValueRedaction())
