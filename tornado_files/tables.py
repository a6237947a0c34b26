"""Tables of the TOML configuration (``[[routes]]``, ``[[tokens]]``, ``[jwt]``), checked alike
wherever they are read."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any


def table(raw: object, where: str, keys: Collection[str],
          expected: str = "a table") -> dict[str, Any]:
    """``raw`` as a table holding only ``keys``; ``ValueError`` naming ``where`` otherwise.

    >>> table({"path": "/x"}, "routes[0]", {"path"})
    {'path': '/x'}
    >>> table({"paht": "/x"}, "routes[0]", {"path"})
    Traceback (most recent call last):
    ValueError: routes[0]: unknown key 'paht'
    """
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected {expected}")
    unknown = set(raw) - set(keys)
    if unknown:
        raise ValueError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    return raw
