"""Who a request acts for, and the scopes they hold."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

# A principal's name: what records keep as ``owner`` and listings filter by.
_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,256}")


class Scope(StrEnum):
    """The four grants (docs/security.md): ``read`` any file (only one's own under
    ``private_reads``), ``write`` uploads and changes one's own files, ``delete`` one's own
    files, ``admin`` everything."""

    READ = "read"
    WRITE = "write"
    DELETE = "delete"
    ADMIN = "admin"


ALL_SCOPES = frozenset(Scope)


@dataclass(frozen=True)
class Principal:
    """``name`` is what records store as ``owner`` (``None`` in open mode). ``source`` says
    how the request proved it: ``token``, ``jwt``, ``link`` or ``open``."""

    name: str | None
    scopes: frozenset[Scope]
    source: str
    # A signed link's parameters (``max_size``, ``data``…): what it grants, besides its request.
    link_params: tuple[tuple[str, str], ...] = ()

    def link_param(self, name: str) -> str | None:
        return dict(self.link_params).get(name)

    def has(self, scope: Scope) -> bool:
        return scope in self.scopes or Scope.ADMIN in self.scopes

    @property
    def admin(self) -> bool:
        return Scope.ADMIN in self.scopes


def valid_name(name: str) -> bool:
    """1 to 256 characters, none of them a control character (C0 or DEL): a ``[[tokens]]``
    principal or a JWT's principal claim.

    >>> valid_name("carol@example.org"), valid_name("alice\\nadmin"), valid_name("")
    (True, False, False)
    """
    return _NAME.fullmatch(name) is not None


# Open mode: no authentication configured, every request may do everything, owning nothing.
OPEN = Principal(None, ALL_SCOPES, "open")


def parse_scopes(raw: object, where: str, *, strict: bool = True) -> frozenset[Scope]:
    """A list of scope names (or one space-separated string, OAuth 2.0's ``scope``,
    RFC 6749 §3.3). An unknown name raises ``ValueError`` naming it; with ``strict=False``
    (a JWT's claim, which carries the identity provider's other scopes too) it is skipped.

    >>> sorted(s.value for s in parse_scopes("read write", "jwt"))
    ['read', 'write']
    >>> sorted(s.value for s in parse_scopes(["openid", "read"], "jwt", strict=False))
    ['read']
    >>> parse_scopes(["read", "fly"], "tokens[0]")
    Traceback (most recent call last):
    ValueError: tokens[0].scopes: unknown scope 'fly' (use read, write, delete, admin)
    """
    names = raw.split() if isinstance(raw, str) else raw
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{where}.scopes: expected a list like [\"read\", \"write\"]")
    known = {scope.value: scope for scope in Scope}
    for name in names:
        if name not in known and strict:
            raise ValueError(f"{where}.scopes: unknown scope {name!r} "
                             "(use read, write, delete, admin)")
    return frozenset(known[name] for name in names if name in known)
