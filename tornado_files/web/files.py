"""The file resource: list, read, change and delete (docs/api.md, Reading, Changing, Listing)."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace
from typing import Any

from tornado_files import errors as e
from tornado_files.auth.principal import Scope
from tornado_files.auth.rules import check_owner, check_read, listing_owner
from tornado_files.deletion import delete_file
from tornado_files.jsondata import check_data_keys, check_data_size
from tornado_files.listing import next_url, parse_list_query
from tornado_files.metadata.base import Precondition
from tornado_files.models import FileRecord, utcnow
from tornado_files.names import safe_filename
from tornado_files.paging import bounded_page
from tornado_files.web.base import ApiHandler, compact_json
from tornado_files.web.body import JsonBodyHandler
from tornado_files.web.download import send_file

log = logging.getLogger("tornado_files.web")


class FilesListHandler(ApiHandler):
    """``GET /api/files``: the listing (uploads to the same path go to ``UploadHandler``)."""

    access = {"GET": Scope.READ}

    async def get(self) -> None:
        args = {k: [v.decode("utf-8", "replace") for v in vs]
                for k, vs in self.request.query_arguments.items()}
        query = parse_list_query(args)
        private = self.services.config.auth.private_reads
        query = replace(query, owner=listing_owner(self.principal, query.owner, private))
        resources, after = await bounded_page(self.services.metadata, query, compact_json)
        following = (next_url(self.request.path, args, query.sort, after)
                     if after is not None else None)
        self.write_json_text(
            f'{{"files":[{",".join(resources)}],"next":{compact_json(following)}}}')


class FileHandler(ApiHandler):
    """``/api/files/{id}``: GET (and ``?alt=media`` → the content), HEAD, DELETE."""

    access = {"GET": Scope.READ, "DELETE": Scope.DELETE}

    async def get(self, file_id: str) -> None:
        if self.get_query_argument("alt", None) == "media":
            await send_file(self, file_id)
            return
        record = await self.services.metadata.get(file_id)
        check_read(self.principal, record.owner, self.services.config.auth.private_reads)
        self.write_json(record.to_resource())

    async def delete(self, file_id: str) -> None:
        precondition = if_match(self.request.headers.get("If-Match"))

        def allow(found: FileRecord) -> None:
            check_owner(self.principal, found.owner, Scope.DELETE)
            if precondition is not None:
                # RFC 9110 §13.1.1 on DELETE too: checked on the record just read, before the
                # deletion starts (a change in between is not seen: PATCH/PUT check inside
                # the store's write).
                precondition(found)
        await delete_file(self.services, file_id, allow)
        self.set_status(204)
        self.finish()


class FileUpdateHandler(JsonBodyHandler):
    """``/api/files/{id}``: PATCH merges ``data`` (a null value removes a key), PUT replaces it;
    both may rename."""

    access = {"PATCH": Scope.WRITE, "PUT": Scope.WRITE}

    async def patch(self, file_id: str) -> None:
        if self.failed:
            return
        # The merge happens inside the store, atomically (issue 13): concurrent PATCHes of
        # different keys all keep theirs.
        changes = self.json_object()
        data = _data_field(changes)
        check_data_keys(data)
        filename = _filename(changes)
        # What the merge would store is capped too (issue 13), checked against the record as
        # it is now: PATCHes racing this one may pass the cap by their own sizes, once.
        current = await self.services.metadata.get(file_id)
        check_owner(self.principal, current.owner, Scope.WRITE)
        merged = {**current.data, **data}
        check_data_size({k: v for k, v in merged.items() if v is not None},
                        self.services.config.max_json_body)
        updated = await self.services.metadata.merge(
            file_id, filename=filename, changes=data, modified=utcnow(),
            precondition=if_match(self.request.headers.get("If-Match")))
        await self.services.events.files("file.updated", [updated])
        self._answer_with_etag(updated)

    async def put(self, file_id: str) -> None:
        if self.failed:
            return
        # One write that replaces ``data``; no separate read before it to go stale.
        changes = self.json_object()
        data = _data_field(changes)
        check_data_keys(data)
        filename = _filename(changes)
        # What would be stored is capped, not only each body (issue 13).
        check_data_size(data, self.services.config.max_json_body)
        current = await self.services.metadata.get(file_id)
        check_owner(self.principal, current.owner, Scope.WRITE)
        updated = await self.services.metadata.update(
            file_id, filename=filename, data=data, modified=utcnow(),
            precondition=if_match(self.request.headers.get("If-Match")))
        await self.services.events.files("file.updated", [updated])
        self._answer_with_etag(updated)

    def _answer_with_etag(self, record: FileRecord) -> None:
        # The new version's ETag, so a client can chain conditional changes.
        self.set_header("ETag", resource_etag(record))
        self.write_json(record.to_resource())


def if_match(header: str | None) -> Precondition | None:
    """``If-Match`` (RFC 9110 §13.1.1) as a check on the current record (PATCH and PUT: run by
    the store atomically with the change): the ETag of the resource as GET gives it must be
    one of those listed, by strong comparison; ``*`` needs only that the file exists."""
    if header is None:
        return None
    tags = {tag.strip() for tag in header.split(",")}

    def check(current: FileRecord) -> None:
        if "*" not in tags and resource_etag(current) not in tags:
            raise e.PreconditionFailed()
    return check


def resource_etag(record: FileRecord) -> str:
    """The ETag a GET of the file resource carries: Tornado's (a SHA-1 of the body), computed
    from the same JSON ``write_json`` sends."""
    body = compact_json(record.to_resource())
    return f'"{hashlib.sha1(body.encode("utf-8")).hexdigest()}"'  # noqa: S324 (not security)


def _filename(changes: dict[str, Any]) -> str | None:
    unknown = set(changes) - {"filename", "data"}
    if unknown:
        raise e.InvalidParameter(detail=f"Unknown key {sorted(unknown)[0]!r}",
                                 meta={"parameter": sorted(unknown)[0]})
    filename = changes.get("filename")
    if filename is not None and (not isinstance(filename, str) or not filename.strip()):
        raise e.InvalidParameter(detail="filename must be a non-empty string",
                                 meta={"parameter": "filename"})
    return safe_filename(filename) if filename is not None else None


def _data_field(changes: dict[str, Any]) -> dict[str, Any]:
    data = changes.get("data", {})
    if not isinstance(data, dict):
        raise e.InvalidJson(detail="'data' must be a JSON object")
    return data
