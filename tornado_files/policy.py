"""Route policies: the only place upload limits are decided."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tornado_files.config import DEFAULT_MAX_FILES, Config, RouteConfig, format_size
from tornado_files.errors import FileTooLarge, RequestTooLarge, UnsupportedMediaType
from tornado_files.sniff import mime_allowed


@dataclass(frozen=True)
class UploadPolicy:
    """Caps and allowlist of one upload route. ``max_file_size`` is never above the body cap.

    >>> p = UploadPolicy("/x", max_body_size=100, max_file_size=40, max_files=1)
    >>> p.precheck(99) is None
    True
    >>> p.precheck(101)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    tornado_files.errors.RequestTooLarge: Check the content length ...
    """

    path: str
    max_body_size: int
    max_file_size: int
    max_files: int = DEFAULT_MAX_FILES
    allowed_mime_types: tuple[str, ...] = ()
    storage: str = "disk"
    # Files uploaded here get a media job (docs/media.md).
    derivatives: bool = True

    @classmethod
    def from_route(cls, route: RouteConfig, default_storage: str,
                   default_max_files: int = DEFAULT_MAX_FILES,
                   media_enabled: bool = True) -> UploadPolicy:
        file_cap = route.max_file_size
        return cls(
            path=route.path,
            max_body_size=route.max_body_size,
            max_file_size=min(file_cap, route.max_body_size) if file_cap else route.max_body_size,
            max_files=route.max_files or default_max_files,
            allowed_mime_types=route.allowed_mime_types,
            storage=route.storage or default_storage,
            derivatives=route.derivatives and media_enabled,
        )

    def precheck(self, declared: int | None) -> None:
        """Content-Length over the body cap → 413 before any body byte is read."""
        if declared is not None and declared > self.max_body_size:
            raise self.body_too_large(declared, received=0)

    def body_too_large(self, declared: int | None, received: int) -> RequestTooLarge:
        return RequestTooLarge(meta=self._meta(self.max_body_size, declared, received))

    def file_too_large(self, declared: int | None, received: int) -> FileTooLarge:
        return FileTooLarge(
            detail=f"Each file must be at most {format_size(self.max_file_size)}",
            meta=self._meta(self.max_file_size, declared, received),
        )

    def check_mime(self, mime_type: str) -> None:
        if not mime_allowed(mime_type, self.allowed_mime_types):
            raise UnsupportedMediaType(
                detail=f"Files of type {mime_type} are not accepted here",
                meta={
                    "allowed_mime_types": list(self.allowed_mime_types),
                    "instance_mime_type": mime_type,
                },
            )

    @staticmethod
    def _meta(cap: int, declared: int | None, received: int) -> dict[str, Any]:
        return {
            "maximum_content_length_allowed": cap,
            "request_content_length": declared,
            "received": received,
        }

    def describe(self) -> dict[str, Any]:
        """The route as ``GET /api/routes`` lists it."""
        return {
            "path": self.path,
            "max_body_size": self.max_body_size,
            "max_file_size": self.max_file_size,
            "max_files": self.max_files,
            "allowed_mime_types": list(self.allowed_mime_types),
            "storage": self.storage,
        }


def build_policies(config: Config) -> tuple[UploadPolicy, ...]:
    """Every route's policy, the default route first."""
    return tuple(UploadPolicy.from_route(r, config.storage, config.max_files,
                                         config.media.enabled)
                 for r in config.all_routes())


def route_derives(policies: Sequence[UploadPolicy], route: str) -> bool:
    """Whether files of upload route ``route`` get media jobs; a route no longer configured
    is taken as the default route (``policies[0]``)."""
    return next((p.derivatives for p in policies if p.path == route), policies[0].derivatives)
