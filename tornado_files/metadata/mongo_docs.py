"""Documents of the MongoDB ``files`` collection ↔ :class:`FileRecord`, and listing filters.

Kept apart from ``mongo`` so the store and its job queue (``mongo_jobs``) share them. Besides
the record's fields a document holds ``processing``, ``derivatives`` (an array of
sub-documents with the fields of :class:`Derivative`) and ``job``: None, or while the record is
pending ``{token, until_us, due_us, attempts}`` (the lease's token and end and the due time in
integer microseconds, the claims counted since the job was queued). Documents written before
media jobs existed lack the three; they read as ``"none"`` with no derivatives.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict

from tornado_files.models import Derivative, FileRecord, ListQuery, from_micros, to_micros
from tornado_files.mongo import Document


def derivative_documents(derivatives: Sequence[Derivative]) -> list[Document]:
    return [asdict(d) for d in derivatives]


def derivatives_of(docs: Sequence[Document] | None) -> tuple[Derivative, ...]:
    """The inverse of :func:`derivative_documents` (None: a document from before them)."""
    return tuple(Derivative(kind=d["kind"], key=d["key"], size=d["size"],
                            media_type=d["media_type"], width=d["width"], height=d["height"],
                            sha256=d["sha256"]) for d in docs or ())


def new_job(due_us: int) -> Document:
    """The ``job`` of a record queued at ``due_us``: unclaimed, no attempt counted."""
    return {"token": None, "until_us": None, "due_us": due_us, "attempts": 0}


def document_of(record: FileRecord) -> Document:
    """The document stored for ``record``; a pending record's job is due at ``added``."""
    added_us = to_micros(record.added)
    return {
        "_id": record.id, "filename": record.filename,
        "original_filename": record.original_filename, "size": record.size,
        "mime_type": record.mime_type, "declared_type": record.declared_type,
        "type_os": record.type_os, "sha256": record.sha256, "route": record.route,
        "storage": record.storage, "blob_key": record.blob_key, "owner": record.owner,
        "added": record.added, "added_us": added_us,
        "modified": record.modified, "modified_us": to_micros(record.modified),
        "data": record.data, "metadata": record.metadata,
        "processing": record.processing,
        "derivatives": derivative_documents(record.derivatives),
        "job": new_job(added_us) if record.processing == "pending" else None,
    }


def record_of(doc: Document) -> FileRecord:
    return FileRecord(
        id=doc["_id"], filename=doc["filename"], original_filename=doc["original_filename"],
        size=doc["size"], mime_type=doc["mime_type"], declared_type=doc["declared_type"],
        type_os=doc["type_os"], sha256=doc["sha256"], route=doc["route"],
        storage=doc["storage"], blob_key=doc["blob_key"], owner=doc.get("owner"),
        added=from_micros(doc["added_us"]), modified=from_micros(doc["modified_us"]),
        data=doc.get("data") or {}, metadata=doc.get("metadata") or {},
        processing=doc.get("processing") or "none",
        derivatives=derivatives_of(doc.get("derivatives")),
    )


def filters(query: ListQuery) -> Document:
    """A filter document for every filter of ``query`` except the keyset cursor."""
    where: Document = {}
    if query.mime_type is not None:
        if query.mime_type.endswith("/*"):
            where["mime_type"] = {"$regex": "^" + re.escape(query.mime_type[:-1])}
        else:
            where["mime_type"] = query.mime_type
    for name in ("route", "owner", "sha256"):
        value = getattr(query, name)
        if value is not None:
            where[name] = value
    if query.processing is not None:
        # "none" also matches documents from before media jobs (no ``processing`` field).
        where["processing"] = ({"$in": ["none", None]} if query.processing == "none"
                               else query.processing)
    if query.has_derivative_images is not None:
        # The array's first element exists (``$size`` cannot say "not empty"); absent also
        # matches a document without ``derivatives``. Works alike on MongoDB and the stand-in.
        where["derivatives.0"] = {"$exists": query.has_derivative_images}
    size: Document = {}
    if query.size_greater_than is not None:
        size["$gt"] = query.size_greater_than
    if query.size_less_than is not None:
        size["$lt"] = query.size_less_than
    if size:
        where["size"] = size
    if query.added_since is not None:
        where["added_us"] = {"$gte": to_micros(query.added_since)}
    if query.modified_since is not None:
        where["modified_us"] = {"$gte": to_micros(query.modified_since)}
    if query.filename is not None:
        where["filename"] = {"$regex": re.escape(query.filename), "$options": "i"}
    for key, value in query.data_equals:
        # Equality with a string matches only string values, as in SQLite.
        where[f"data.{key}"] = value
    return where


def referenced_keys(doc: Document, wanted: set[str]) -> set[str]:
    """Those of ``wanted`` that ``doc`` (projected to ``blob_key`` and ``derivatives.key``)
    points at."""
    keys = {doc.get("blob_key"), *(d.get("key") for d in doc.get("derivatives") or ())}
    return {k for k in keys if isinstance(k, str) and k in wanted}
