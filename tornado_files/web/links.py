"""Signed links (docs/security.md): ``POST /api/files/{id}/links`` makes a download link,
``POST /api/upload-links`` an upload link — URLs that carry their own grant until they expire,
as S3's presigned GET and POST do. The links are checked by ``auth.authenticator``."""

from __future__ import annotations

import base64
import json
import math
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from tornado_files import errors as e
from tornado_files.auth.authenticator import LINK_OWNER
from tornado_files.auth.links import LinkSigner
from tornado_files.auth.principal import Principal, Scope
from tornado_files.auth.rules import check_read
from tornado_files.jsondata import check_data_keys, check_data_size
from tornado_files.models import DERIVATIVE_KINDS, iso
from tornado_files.numbers import whole
from tornado_files.policy import UploadPolicy
from tornado_files.web.body import JsonBodyHandler

DEFAULT_EXPIRES_IN = 3600
# Upload links carry their ``data`` in the URL: kept small enough for any client's URL limit.
MAX_LINK_DATA = 2048
LINK_MAX_SIZE = "max_size"
LINK_DATA = "data"


class LinkHandler(JsonBodyHandler):
    """What both link makers share: the signer, the lifetime, the answer."""

    def signer(self) -> LinkSigner:
        signer = self.services.auth.links
        if signer is None:
            raise e.NotFound(detail="Signed links are not enabled: the server has no signing_key")
        return signer

    def expiry(self, body: dict[str, Any]) -> int:
        """``expires_in`` (seconds, at most ``max_link_lifetime``; when not given, 3600 or
        ``max_link_lifetime`` if shorter) as a Unix time, rounded up to the second."""
        longest = self.services.config.auth.max_link_lifetime
        raw = body.get("expires_in", min(DEFAULT_EXPIRES_IN, math.floor(longest)))
        if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= longest:
            raise e.InvalidParameter(
                detail=f"expires_in must be a whole number of seconds from 1 to {longest:g}",
                meta={"parameter": "expires_in", "max_link_lifetime": math.floor(longest)})
        return math.ceil(time.time()) + raw

    def answer(self, path: str, query: str, expires: int) -> None:
        moment = datetime.fromtimestamp(expires, tz=UTC)
        self.write_json({"url": f"{path}?{query}", "expires": iso(moment)}, status=201)


class FileLinksHandler(LinkHandler):
    """``POST /api/files/{id}/links`` ``{"expires_in": s, "disposition": …, "derivative":
    kind}`` → 201 ``{"url", "expires"}``: GET and HEAD of the content (Range too), or of the
    named derivative image, for anyone holding it. Needs ``read`` on that file."""

    access = {"POST": Scope.READ}

    async def post(self, file_id: str) -> None:
        if self.failed:
            return
        body = self.json_object()
        _known(body, {"expires_in", "disposition", "derivative"})
        disposition = body.get("disposition", "attachment")
        if disposition not in ("attachment", "inline"):
            raise e.InvalidParameter(detail="disposition must be 'attachment' or 'inline'",
                                     meta={"parameter": "disposition"})
        derivative = body.get("derivative")
        if derivative is not None and derivative not in DERIVATIVE_KINDS:
            raise e.InvalidParameter(
                detail=f"derivative must be one of {', '.join(DERIVATIVE_KINDS)}",
                meta={"parameter": "derivative"})
        expires = self.expiry(body)
        record = await self.services.metadata.get(file_id)
        check_read(self.principal, record.owner, self.services.config.auth.private_reads)
        if derivative is not None:
            # A link to a derivative not made yet is fine: it works once the job ran.
            path = f"/api/files/{file_id}/derivatives/{derivative}"
            params = {}
        else:
            path = f"/api/files/{file_id}/content"
            params = {"disposition": disposition} if disposition == "inline" else {}
        self.answer(path, self.signer().sign("GET", path, params, expires), expires)


class UploadLinksHandler(LinkHandler):
    """``POST /api/upload-links`` ``{"route", "max_size", "expires_in", "data"}`` → 201
    ``{"url", "expires"}``: one upload request (multipart or raw) to ``route`` by anyone
    holding it until it expires, owned by whoever made the link. Needs ``write``."""

    access = {"POST": Scope.WRITE}

    async def post(self) -> None:
        if self.failed:
            return
        body = self.json_object()
        _known(body, {"route", "max_size", "expires_in", "data"})
        policy = self._policy(body.get("route", self.services.policies[0].path))
        max_size = body.get("max_size", policy.max_file_size)
        if (isinstance(max_size, bool) or not isinstance(max_size, int)
                or not 0 <= max_size <= policy.max_file_size):
            raise e.InvalidParameter(
                detail=f"max_size must be a whole number of bytes up to the route's "
                       f"{policy.max_file_size}", meta={"parameter": "max_size"})
        expires = self.expiry(body)
        params = {LINK_MAX_SIZE: str(max_size)}
        if self.principal.name is not None:
            params[LINK_OWNER] = self.principal.name
        data = body.get("data", {})
        if not isinstance(data, dict):
            raise e.InvalidJson(detail="'data' must be a JSON object")
        if data:
            check_data_keys(data)
            check_data_size(data, MAX_LINK_DATA)
            encoded = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
            params[LINK_DATA] = base64.urlsafe_b64encode(encoded.encode()).decode().rstrip("=")
        self.answer(policy.path, self.signer().sign("POST", policy.path, params, expires),
                    expires)

    def _policy(self, route: object) -> UploadPolicy:
        for policy in self.services.policies:
            if policy.path == route:
                return policy
        raise e.InvalidParameter(detail="route must be one of the upload routes (/api/routes)",
                                 meta={"parameter": "route"})


def link_grant(principal: Principal, policy: UploadPolicy, slack: int
               ) -> tuple[UploadPolicy, dict[str, Any]]:
    """For an upload made through an upload link: the route's policy narrowed to one file of
    at most the link's ``max_size`` (the body may add ``slack`` bytes of multipart framing and
    fields, never enough for a second file's worth), and the ``data`` the link adds (its keys
    win over the uploader's)."""
    max_size = whole(principal.link_param(LINK_MAX_SIZE)) or 0
    narrowed = replace(policy, max_body_size=min(policy.max_body_size, max_size + slack),
                       max_file_size=min(policy.max_file_size, max_size), max_files=1)
    encoded = principal.link_param(LINK_DATA)
    data: dict[str, Any] = {}
    if encoded:
        padded = encoded + "=" * (-len(encoded) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded))
    return narrowed, data


def _known(body: dict[str, Any], keys: set[str]) -> None:
    unknown = set(body) - keys
    if unknown:
        name = sorted(unknown)[0]
        raise e.InvalidParameter(detail=f"Unknown key {name!r}", meta={"parameter": name})
