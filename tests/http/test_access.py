"""Access control (docs/security.md), in-process: every endpoint of the route table x every kind
of caller. The table below must cover every (path, method) the application serves — a new
handler without a row fails ``test_the_matrix_covers_every_endpoint`` — and each row is tried
with no credential, a bad one, an expired JWT, a valid one without the scope, another owner,
the owner and an admin."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from tests.support import PNG_1PX, Part, multipart
from tests.tokens import TOKENS, bearer, tokens_setting
from tornado_files.auth.principal import Scope
from tornado_files.web.routing import RouteTable, methods_of

SECRET = "a-jwt-secret-of-at-least-32-characters!"
TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {
        "tokens": tokens_setting(),
        "jwt": {"algorithms": ["HS256"], "secret": SECRET},
        "signing_key": "a-signing-key-of-at-least-32-characters",
        "routes": [{"path": "/api/docs", "max_body_size": "1MiB"}],
    }


def expired_jwt() -> str:
    claims = {"sub": "alice", "scope": "read write delete", "exp": int(time.time()) - 120}
    return jwt.encode(claims, SECRET, algorithm="HS256")


class World:
    """Fresh objects owned by alice for each try (a successful DELETE removes them)."""

    def __init__(self, client: AsyncHTTPClient, base: str) -> None:
        self.client, self.base = client, base

    async def fetch(self, method: str, path: str, body: bytes | None = None,
                    **headers: str) -> HTTPResponse:
        if body is None and method in ("POST", "PATCH", "PUT"):
            body = b""
        return await self.client.fetch(self.base + path, method=method, body=body,
                                       headers=headers, raise_error=False,
                                       allow_nonstandard_methods=True)

    async def file(self) -> str:
        body, ctype = multipart([Part("file", PNG_1PX, "p.png")])
        response = await self.fetch("POST", "/api/files", body, **bearer("alice"),
                                    **{"Content-Type": ctype})
        assert response.code == 201, response.body
        return str(json.loads(response.body)["id"])

    async def tus(self) -> str:
        response = await self.fetch("POST", "/api/tus/", b"", **bearer("alice"), **TUS,
                                    **{"Upload-Length": "10"})
        assert response.code == 201, response.body
        return response.headers["Location"].rsplit("/", 1)[1]


@dataclass(frozen=True)
class Row:
    """One endpoint and method: the path pattern (as in the route table), what it needs, the
    statuses that mean "allowed", and the request to make (given a World)."""

    pattern: str
    method: str
    scope: Scope | None  # None: any valid credential
    owned: bool  # only the owner (or admin) may
    ok: tuple[int, ...]
    request: Callable[[World, dict[str, str]], Awaitable[HTTPResponse]]


async def _upload(world: World, headers: dict[str, str], path: str = "/api/files"
                  ) -> HTTPResponse:
    body, ctype = multipart([Part("file", b"hello", "a.txt")])
    return await world.fetch("POST", path, body, **headers, **{"Content-Type": ctype})


async def _on_file(world: World, headers: dict[str, str], method: str, suffix: str = "",
                   body: bytes | None = None, **extra: str) -> HTTPResponse:
    return await world.fetch(method, f"/api/files/{await world.file()}{suffix}", body,
                             **headers, **extra)


async def _on_tus(world: World, headers: dict[str, str], method: str, body: bytes | None = None,
                  **extra: str) -> HTTPResponse:
    return await world.fetch(method, f"/api/tus/{await world.tus()}", body, **headers, **TUS,
                             **extra)


JSON = {"Content-Type": "application/json"}
FILE = r"/api/files/([0-9a-f]{32})"
TUS_ID = r"/api/tus/([0-9a-f]{32})"
ROWS = [
    Row("/api/files", "GET", Scope.READ, False, (200,),
        lambda w, h: w.fetch("GET", "/api/files", **h)),
    Row("/api/files", "HEAD", Scope.READ, False, (200,),
        lambda w, h: w.fetch("HEAD", "/api/files", **h)),
    Row("/api/files", "POST", Scope.WRITE, False, (201,), _upload),
    Row("/api/docs", "POST", Scope.WRITE, False, (201,),
        lambda w, h: _upload(w, h, "/api/docs")),
    Row(FILE, "GET", Scope.READ, False, (200,), lambda w, h: _on_file(w, h, "GET")),
    Row(FILE, "HEAD", Scope.READ, False, (200,), lambda w, h: _on_file(w, h, "HEAD")),
    Row(FILE, "PATCH", Scope.WRITE, True, (200,),
        lambda w, h: _on_file(w, h, "PATCH", "", b'{"data": {"k": 1}}', **JSON)),
    Row(FILE, "PUT", Scope.WRITE, True, (200,),
        lambda w, h: _on_file(w, h, "PUT", "", b'{"data": {}}', **JSON)),
    Row(FILE, "DELETE", Scope.DELETE, True, (204,), lambda w, h: _on_file(w, h, "DELETE")),
    Row(FILE + "/content", "GET", Scope.READ, False, (200,),
        lambda w, h: _on_file(w, h, "GET", "/content")),
    Row(FILE + "/content", "HEAD", Scope.READ, False, (200,),
        lambda w, h: _on_file(w, h, "HEAD", "/content")),
    # No job runs in these in-process apps: an allowed caller finds no derivative yet (404).
    Row(FILE + "/derivatives/([A-Za-z0-9_]+)", "GET", Scope.READ, False, (404,),
        lambda w, h: _on_file(w, h, "GET", "/derivatives/thumbnail")),
    Row(FILE + "/derivatives/([A-Za-z0-9_]+)", "HEAD", Scope.READ, False, (404,),
        lambda w, h: _on_file(w, h, "HEAD", "/derivatives/thumbnail")),
    Row(FILE + "/process", "POST", Scope.ADMIN, True, (202,),
        lambda w, h: _on_file(w, h, "POST", "/process")),
    Row(FILE + "/links", "POST", Scope.READ, False, (201,),
        lambda w, h: _on_file(w, h, "POST", "/links", b"{}", **JSON)),
    Row("/api/upload-links", "POST", Scope.WRITE, False, (201,),
        lambda w, h: w.fetch("POST", "/api/upload-links", b"{}", **h, **JSON)),
    Row("/api/routes", "GET", None, False, (200,), lambda w, h: w.fetch("GET", "/api/routes", **h)),
    Row("/api/routes", "HEAD", None, False, (200,),
        lambda w, h: w.fetch("HEAD", "/api/routes", **h)),
    # Admin only under auth (metrics_public opens it: tests/http/test_metrics.py).
    Row("/metrics", "GET", Scope.ADMIN, False, (200,),
        lambda w, h: w.fetch("GET", "/metrics", **h)),
    Row("/metrics", "HEAD", Scope.ADMIN, False, (200,),
        lambda w, h: w.fetch("HEAD", "/metrics", **h)),
    Row("/api/tus/?", "POST", Scope.WRITE, False, (201,),
        lambda w, h: w.fetch("POST", "/api/tus/", b"", **h, **TUS, **{"Upload-Length": "5"})),
    Row(TUS_ID, "HEAD", Scope.WRITE, True, (200,), lambda w, h: _on_tus(w, h, "HEAD")),
    Row(TUS_ID, "PATCH", Scope.WRITE, True, (204,),
        lambda w, h: _on_tus(w, h, "PATCH", b"12345", **{
            "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"})),
    Row(TUS_ID, "DELETE", Scope.WRITE, True, (204,), lambda w, h: _on_tus(w, h, "DELETE")),
]
# Served to anyone: the page, its assets, health, tus discovery (OPTIONS is always public).
PUBLIC = [("GET", "/"), ("GET", "/static/upload.js"), ("GET", "/healthz"), ("HEAD", "/healthz"),
          ("GET", "/readyz"), ("GET", "/livez")]


def _callers(row: Row) -> list[tuple[str, dict[str, str], str]]:
    """(caller, headers, expected: "ok" | "401" | "401-invalid" | "403")."""
    lacking = {Scope.READ: "writer", Scope.WRITE: "reader", Scope.DELETE: "rw",
               Scope.ADMIN: "rw"}
    admin_only = row.scope == Scope.ADMIN
    callers = [
        ("none", {}, "401"),
        ("bad", {"Authorization": "Bearer not-a-token-at-all-1234"}, "401-invalid"),
        ("expired", {"Authorization": f"JWT {expired_jwt()}"}, "401-invalid"),
        ("other owner", bearer("bob"), "403" if row.owned or admin_only else "ok"),
        ("owner", bearer("alice"), "403" if admin_only else "ok"),
        ("admin", {"X-Auth-Token": TOKENS["admin"][0]}, "ok"),
    ]
    if row.scope is not None:
        callers.append(("wrong scope", bearer(lacking[row.scope]), "403"))
    return callers


def test_the_matrix_covers_every_endpoint(app):
    """Every (path, method) the route table serves has a row or is declared public."""
    table: RouteTable = app.settings["route_table"]
    served = {(endpoint.path, method) for endpoint in table.endpoints
              for method in endpoint.methods() if method != "OPTIONS"}
    covered = {(row.pattern, row.method) for row in ROWS}
    public = {(r"/healthz", "GET"), (r"/healthz", "HEAD"), (r"/()", "GET"), (r"/()", "HEAD"),
              (r"/readyz", "GET"), (r"/readyz", "HEAD"), (r"/livez", "GET"), (r"/livez", "HEAD"),
              (r"/static/(.+)", "GET"), (r"/static/(.+)", "HEAD")}
    assert served - covered - public == set()


def test_every_handler_declares_every_method(app):
    """An undeclared method is refused (default deny); this keeps the table complete."""
    table: RouteTable = app.settings["route_table"]
    for endpoint in table.endpoints:
        for handler, _ in endpoint.targets:
            declared = set(handler.access) | ({"HEAD"} if "GET" in handler.access else set())
            assert methods_of(handler) - {"OPTIONS"} <= declared, handler.__name__


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("row", ROWS, ids=[f"{r.method} {r.pattern}" for r in ROWS])
async def test_every_endpoint_for_every_caller(http_client, base_url, row):
    world = World(http_client, base_url)
    for caller, headers, expected in _callers(row):
        response = await row.request(world, headers)
        where = f"{row.method} {row.pattern} as {caller}: {response.code} {response.body[:200]!r}"
        if expected == "ok":
            assert response.code in row.ok, where
            continue
        assert response.code == int(expected[:3]), where
        challenge = response.headers.get("WWW-Authenticate")
        if expected.startswith("401"):
            assert challenge is not None, where
            assert challenge.startswith("Bearer "), where
            assert ('error="invalid_token"' in challenge) == (expected == "401-invalid"), where
        else:
            assert challenge is None, where
        if row.method != "HEAD":
            error = json.loads(response.body)["errors"][0]
            assert error["code"] == ("unauthorized" if expected.startswith("401")
                                     else "forbidden"), where


@pytest.mark.gen_test
@pytest.mark.parametrize(("method", "path"), PUBLIC)
async def test_public_endpoints_need_no_credential(http_client, base_url, method, path):
    response = await World(http_client, base_url).fetch(method, path)
    assert response.code == 200
