"""Every request's access check, made before its handler does anything (docs/security.md).

Each handler class declares what each of its methods needs in ``access``: a scope, ``PUBLIC``
(the page, health, 404s) or ``AUTHENTICATED`` (any valid credential). A method missing from
the table is refused (403): a new handler that forgets to declare is closed, not open. HEAD
follows GET (RFC 9110 §9.3.2); OPTIONS (a CORS preflight, which by the Fetch standard carries
no credentials, or tus discovery) is public. Checks that depend on the object (its owner)
happen in the handler through ``auth.rules``, once the object is loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from tornado.httputil import HTTPServerRequest

from tornado_files.auth.authenticator import Authenticator
from tornado_files.auth.principal import Principal, Scope
from tornado_files.auth.rules import require
from tornado_files.errors import Forbidden

PUBLIC: Literal["public"] = "public"
AUTHENTICATED: Literal["authenticated"] = "authenticated"
Rule = Scope | Literal["public", "authenticated"]
# Who a public request is: nobody in particular, with no scope.
ANONYMOUS = Principal(None, frozenset(), "anonymous")


def rule_for(access: Mapping[str, Rule], method: str) -> Rule | None:
    if method == "OPTIONS":
        return PUBLIC
    if method == "HEAD" and "HEAD" not in access:
        method = "GET"
    return access.get(method)


def authorize(access: Mapping[str, Rule], auth: Authenticator,
              request: HTTPServerRequest) -> Principal:
    """The principal of ``request``; raises ``Unauthorized``, ``InvalidSignature`` or
    ``Forbidden`` (no declared rule, or a missing scope)."""
    method = request.method or "GET"
    rule = rule_for(access, method)
    if rule is None:
        raise Forbidden(detail="This endpoint declares no access rule for the method")
    if rule == PUBLIC:
        return ANONYMOUS
    principal = auth.authenticate(method, request.path, request.headers,
                                  request.query_arguments)
    if rule != AUTHENTICATED:
        require(principal, Scope(rule))
    return principal
