"""Keeping credentials out of Tornado's own log lines (issue 14: no secret in logs;
docs/security.md).

When Tornado refuses a header it logs ``Malformed HTTP message from <ip>: Invalid header value
'<the value>'`` on ``tornado.general``. That value may be a credential — a token read from a
file with Windows line endings arrives as ``Bearer <token>\\r``, which RFC 9110 §5.5 does not
allow — so the value is dropped from the line and the reason kept. (The server's own access
log redacts signed links' signatures: ``auth.links.redacted``.)
"""

from __future__ import annotations

import logging

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
