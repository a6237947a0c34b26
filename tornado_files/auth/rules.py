"""What a principal may do: the one place the access rules live (docs/security.md).

``read`` reads any file, or only one's own under ``private_reads``; changing a file needs
``write`` (deleting it ``delete``) **and** being its owner; ``admin`` may do everything. A file
with no owner (uploaded while the server was open) is changed only by ``admin``. A signed link
was checked when it was made: it grants exactly the request it signs.
"""

from __future__ import annotations

from tornado_files.auth.principal import Principal, Scope
from tornado_files.errors import Forbidden


def require(principal: Principal, scope: Scope) -> None:
    """Raise ``Forbidden`` unless ``principal`` holds ``scope`` (or ``admin``)."""
    if not principal.has(scope):
        raise Forbidden(detail=f"This needs the {scope.value!r} scope",
                        meta={"required_scope": scope.value})


def may_read(principal: Principal, owner: str | None, private_reads: bool) -> bool:
    if principal.source == "link" or principal.admin:
        return True
    if not principal.has(Scope.READ):
        return False
    return not private_reads or (owner is not None and owner == principal.name)


def check_read(principal: Principal, owner: str | None, private_reads: bool) -> None:
    if not may_read(principal, owner, private_reads):
        raise Forbidden(detail="This file belongs to someone else")


def check_owner(principal: Principal, owner: str | None, scope: Scope) -> None:
    """Changing (``write``) or deleting (``delete``) a file, or a resumable upload."""
    require(principal, scope)
    if principal.admin:
        return
    if owner is None or owner != principal.name:
        raise Forbidden(detail="Only the file's owner (or an admin) may do this")


def listing_owner(principal: Principal, asked: str | None, private_reads: bool) -> str | None:
    """The ``owner`` filter a listing must use: under ``private_reads`` a non-admin sees only
    their own files (asking for another's is 403)."""
    if not private_reads or principal.admin:
        return asked
    if asked is not None and asked != principal.name:
        raise Forbidden(detail="Under private_reads only your own files can be listed")
    return principal.name
