"""The route table: each path's methods, each method's handler.

One URL often needs handlers of two kinds — ``GET /api/files`` lists and takes no body,
``POST /api/files`` uploads — so rules match on the method as well as the path (Tornado's
public ``tornado.routing`` matchers), and no handler branches on ``request.method``. A method a
path does not serve, and a CORS preflight, reach ``PathHandler``, which answers from the same
table: 405 with ``Allow``, or 204 with the path's methods.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tornado.httputil import HTTPServerRequest
from tornado.routing import PathMatches, Rule
from tornado.web import RequestHandler

from tornado_files import errors as e
from tornado_files.web.access import PUBLIC
from tornado_files.web.base import ApiHandler

Target = tuple[type[ApiHandler], dict[str, Any]]


class MethodMatches(PathMatches):
    """A path, for some methods only."""

    def __init__(self, path: str, methods: Iterable[str]) -> None:
        super().__init__(path)
        self.methods = frozenset(methods)

    def match(self, request: HTTPServerRequest) -> dict[str, Any] | None:
        if request.method not in self.methods:
            return None
        return super().match(request)


def methods_of(handler: type[RequestHandler]) -> frozenset[str]:
    """The methods a handler class implements itself; HEAD wherever GET is (RFC 9110 §9.3.2),
    OPTIONS only where the class answers it itself (tus discovery)."""
    found = {method for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
             if getattr(handler, method.lower()) is not getattr(ApiHandler, method.lower(),
                                                                 getattr(RequestHandler,
                                                                         method.lower()))}
    if "GET" in found:
        found.add("HEAD")
    return frozenset(found)


@dataclass(frozen=True)
class Endpoint:
    """One path (a regular expression) and the handlers that serve it."""

    path: str
    targets: Sequence[Target]
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_regex", re.compile(self.path + "$"))

    def methods(self) -> frozenset[str]:
        return frozenset({"OPTIONS"}.union(*(methods_of(h) for h, _ in self.targets)))

    def serves(self, path: str) -> bool:
        return self._regex.match(path) is not None


class RouteTable:
    def __init__(self, endpoints: Sequence[Endpoint]) -> None:
        self.endpoints = tuple(endpoints)

    def allowed(self, path: str) -> tuple[str, ...]:
        """Every method ``path`` answers, sorted (for ``Allow`` and preflight)."""
        for endpoint in self.endpoints:
            if endpoint.serves(path):
                return tuple(sorted(endpoint.methods()))
        return ("OPTIONS",)

    def rules(self) -> list[Rule]:
        """Tornado rules: each handler on its own methods, then the path's fallback."""
        rules: list[Rule] = []
        for endpoint in self.endpoints:
            for handler, kwargs in endpoint.targets:
                rules.append(Rule(MethodMatches(endpoint.path, methods_of(handler)),
                                  handler, kwargs))
            rules.append(Rule(PathMatches(endpoint.path), PathHandler))
        return rules


class PathHandler(ApiHandler):
    """A known path asked with a method it does not serve (405 + ``Allow``), or a preflight.
    Public: a 405 says nothing a client could not learn from ``OPTIONS``."""

    SUPPORTED_METHODS = ("GET", "HEAD", "POST", "DELETE", "PATCH", "PUT", "OPTIONS")
    access = dict.fromkeys(SUPPORTED_METHODS, PUBLIC)

    async def prepare_request(self) -> None:
        if self.request.method != "OPTIONS":
            raise e.MethodNotAllowed()  # before any size check: 405 says more than 413
        await super().prepare_request()


class NotFoundHandler(ApiHandler):
    """Unknown paths: a JSON:API 404 for every method, lingering over any body."""

    SUPPORTED_METHODS = PathHandler.SUPPORTED_METHODS
    access = dict.fromkeys(SUPPORTED_METHODS, PUBLIC)

    async def prepare_request(self) -> None:
        raise e.NotFound()
