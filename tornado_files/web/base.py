"""The base handler: services, CORS, JSON responses and the JSON:API error exit."""

from __future__ import annotations

import json
import logging
from types import TracebackType
from typing import Any

from tornado.web import HTTPError, RequestHandler

from tornado_files import errors as e
from tornado_files.services import Services
from tornado_files.web import cors
from tornado_files.web.errors import FROM_STATUS, error_document, error_headers

log = logging.getLogger("tornado_files.web")
JSON_TYPE = "application/json; charset=UTF-8"


class BaseHandler(RequestHandler):
    """Every API handler derives from this; no handler writes an error any other way."""

    @property
    def services(self) -> Services:
        services: Services = self.settings["services"]
        return services

    # -- CORS ---------------------------------------------------------------------------
    def set_default_headers(self) -> None:
        # Called again by send_error()/clear(), so error responses keep CORS headers and a
        # browser can read a 413.
        origin = self.request.headers.get("Origin")
        if origin and origin in self.services.config.cors_origins:
            self.set_header("Access-Control-Allow-Origin", origin)
            self.set_header("Access-Control-Expose-Headers", ", ".join(cors.EXPOSED_HEADERS))
        self.add_header("Vary", "Origin")
        self.set_header("X-Content-Type-Options", "nosniff")

    def allowed_methods(self) -> list[str]:
        """The methods this handler class implements (for preflight and 405's Allow)."""
        names = [m for m in self.SUPPORTED_METHODS
                 if getattr(type(self), m.lower()) is not getattr(RequestHandler, m.lower())]
        return sorted({*names, "OPTIONS"})

    def options(self, *_args: str) -> None:
        if self.request.headers.get("Origin") in self.services.config.cors_origins:
            self.set_header("Access-Control-Allow-Methods", ", ".join(self.allowed_methods()))
            self.set_header("Access-Control-Allow-Headers", ", ".join(cors.ALLOWED_REQUEST_HEADERS))
            self.set_header("Access-Control-Max-Age", str(cors.PREFLIGHT_MAX_AGE))
        self.set_header("Allow", ", ".join(self.allowed_methods()))
        self.set_status(204)
        self.finish()

    # -- JSON ---------------------------------------------------------------------------
    def write_json(self, payload: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", JSON_TYPE)
        self.finish(json.dumps(payload, ensure_ascii=False, separators=(",", ":")))

    def json_object(self, body: bytes) -> dict[str, Any]:
        """A request body that must be a JSON object (bounded by the caller)."""
        try:
            parsed = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise e.InvalidJson(detail="The request body is not valid JSON") from None
        if not isinstance(parsed, dict):
            raise e.InvalidJson(detail="The request body must be a JSON object")
        return parsed

    # -- errors -------------------------------------------------------------------------
    def domain_error(self, exc: BaseException | None, status: int) -> e.TornadoFilesError:
        if isinstance(exc, e.TornadoFilesError):
            return exc
        if isinstance(exc, HTTPError) or exc is None:
            status = exc.status_code if isinstance(exc, HTTPError) else status
            cls = FROM_STATUS.get(status, e.InternalError)
            return cls()
        return e.InternalError()

    def render_error(self, error: e.TornadoFilesError, *, finish: bool = True,
                     cause: BaseException | None = None) -> None:
        """Write ``error`` as a JSON:API document and log its id. With ``finish=False`` the
        response is sent (Content-Length set, flushed) but the request stays open, so the
        upload handler can linger and discard input before the connection closes."""
        status, error_id, document = error_document(error)
        self._log_error(status, error_id, error, cause)
        body = json.dumps(document, ensure_ascii=False).encode("utf-8")
        self.clear()
        self.set_status(status)
        self.set_header("Content-Type", JSON_TYPE)
        if status == 405:
            self.set_header("Allow", ", ".join(self.allowed_methods()))
        for name, value in error_headers(error).items():
            self.set_header(name, value)
        if not finish:
            self.set_header("Content-Length", str(len(body)))
            self.set_header("Connection", "close")
        self.write(body)
        if finish:
            self.finish()
        else:
            self.flush()

    def _log_error(self, status: int, error_id: str, error: e.TornadoFilesError,
                   cause: BaseException | None) -> None:
        where = f"{self.request.method} {self.request.path}"
        if status >= 500:
            log.error("error %s %d %s %s", error_id, status, error.code, where, exc_info=cause)
        else:
            log.info("error %s %d %s %s: %s", error_id, status, error.code, where, error.detail)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        exc = exc_info[1] if exc_info else None
        self.render_error(self.domain_error(exc, status_code), cause=exc
                          if not isinstance(exc, e.TornadoFilesError | HTTPError) else None)

    def log_exception(self, typ: type[BaseException] | None, value: BaseException | None,
                      tb: TracebackType | None) -> None:
        # write_error logs every error once, with its id; unexpected ones with a traceback.
        return
