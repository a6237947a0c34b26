"""Static tokens from ``[[tokens]]``: each a secret (or its SHA-256) bound to a principal."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from tornado_files.auth.principal import Principal

MIN_TOKEN_LENGTH = 16


@dataclass(frozen=True)
class TokenEntry:
    """``sha256`` is the hex SHA-256 of the token: the table never keeps the secret."""

    sha256: str
    principal: Principal


class TokenTable:
    """Looks a presented token up by comparing its SHA-256 with every entry's, in constant
    time and without stopping at a match, so timing says nothing about which entry (or how
    much of one) matched."""

    def __init__(self, entries: tuple[TokenEntry, ...]) -> None:
        self._entries = tuple((bytes.fromhex(e.sha256), e.principal) for e in entries)

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, token: str) -> Principal | None:
        presented = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        found: Principal | None = None
        for digest, principal in self._entries:
            if hmac.compare_digest(presented, digest):
                found = principal
        return found
