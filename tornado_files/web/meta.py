"""Small read-only endpoints: health, the route table, the upload page and its assets."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from tornado.web import StaticFileHandler

from tornado_files.auth.principal import Scope
from tornado_files.errors import InsufficientStorage, NotFound
from tornado_files.health import CheckStalled
from tornado_files.metrics import CONTENT_TYPE
from tornado_files.web.access import AUTHENTICATED, PUBLIC, Rule
from tornado_files.web.base import ApiHandler

log = logging.getLogger("tornado_files.web")


class LiveHandler(ApiHandler):
    """``GET /livez``: 200 while the process and its event loop run (Kubernetes' liveness:
    restart the process when this stops answering). Touches no store: a store that is down
    is a readiness matter, not a reason to restart."""

    access = {"GET": PUBLIC}
    serves_while_draining = True

    def get(self) -> None:
        self.write_json({"status": "ok"})


class HealthHandler(ApiHandler):
    """``GET /readyz`` and ``GET /healthz``: 200 when the metadata store and every blob store
    answer (and the disk has its free-space floor) and no shutdown began, else 503
    (Kubernetes' readiness: send no new requests here)."""

    access = {"GET": PUBLIC}
    serves_while_draining = True
    _draining = False

    @property
    def server_fault(self) -> bool:
        """A 503 while draining is the shutdown working, not a fault (not logged as an error)."""
        return not self._draining and super().server_fault

    async def get(self) -> None:
        services = self.services
        probes: list[tuple[str, Any]] = [("metadata", services.metadata)]
        probes += [(f"storage:{name}", store) for name, store in services.blob_stores.items()]
        # All at once: a stalled store costs the probe one deadline, not one per store.
        results = await asyncio.gather(*(self._check(name, target) for name, target in probes))
        checks = dict(zip((name for name, _ in probes), results, strict=True))
        ok = all(result == "ok" for result in results)
        if services.lifecycle.draining:
            self._draining = True
            self.write_json({"status": "draining", "checks": checks}, status=503)
            return
        self.write_json({"status": "ok" if ok else "unavailable", "checks": checks},
                        status=200 if ok else 503)

    async def _check(self, name: str, target: Any) -> str:
        """``ok``, ``low_space`` or ``unavailable``: ``target.ping()`` through the
        single-flight, time-bounded checks of ``Services.health`` (tornado_files/health.py)."""
        try:
            await self.services.health.check(name, target.ping)
        except InsufficientStorage:
            return "low_space"  # below min_free_space: uploads are refused until space is freed
        except CheckStalled:
            log.warning("health check %s failed: no answer within %g s", name,
                        self.services.health.deadline)
            return "unavailable"
        except Exception as exc:
            # The reason stays in the log: no driver or path text reaches the client.
            log.warning("health check %s failed: %s", name, exc)
            return "unavailable"
        return "ok"


class MetricsHandler(ApiHandler):
    """``GET /metrics``: this application's metrics in the Prometheus text format
    (``tornado_files.metrics``). Needs ``admin`` when auth is configured, unless
    ``metrics_public`` (open mode: open, like everything else)."""

    access = {"GET": Scope.ADMIN}

    def access_rules(self) -> Mapping[str, Rule]:
        return {"GET": PUBLIC} if self.services.config.auth.metrics_public else self.access

    def compute_etag(self) -> None:
        return None  # counters move between two scrapes: never a 304

    def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE)
        self.set_header("Cache-Control", "no-store")
        self.finish(self.services.metrics.exposition())


class RoutesHandler(ApiHandler):
    """``GET /api/routes``: every upload route's limits, the default route first (to any
    valid credential: an uploader needs the caps, whatever its scopes)."""

    access = {"GET": AUTHENTICATED}

    def get(self) -> None:
        self.write_json({"routes": [p.describe() for p in self.services.policies]})


class PageHandler(StaticFileHandler, ApiHandler):  # type: ignore[misc]  # head(path) vs head(*a)
    """The upload page and its assets from ``static/`` (Tornado's file serving), with the
    API's error exit and its refusal of request bodies. Public: the page asks for a token."""

    access = {"GET": PUBLIC}

    def set_default_headers(self) -> None:
        self.set_header("X-Request-Id", self.request_id)
        self.set_header("X-Content-Type-Options", "nosniff")

    def validate_absolute_path(self, root: str, absolute_path: str) -> str | None:
        # A NUL (``/static/%00``) reaches the file system call as "embedded null byte", a
        # ValueError Tornado answers with 500: no file name holds one, so it is a 404.
        if "\x00" in absolute_path:
            raise NotFound()
        return super().validate_absolute_path(root, absolute_path)
