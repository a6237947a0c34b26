"""The MongoDB connection shared by the metadata store and the GridFS blob store.

PyMongo's async API (``AsyncMongoClient``): Motor is deprecated upstream. Driver errors stop
at this edge: :func:`driver_errors` turns them into ``BackendUnavailable`` (or, when the
server is out of disk or quota, ``InsufficientStorage``) and logs the text.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure, PyMongoError
from pymongo.uri_parser import parse_uri

from tornado_files.errors import BackendUnavailable, InsufficientStorage

log = logging.getLogger("tornado_files.mongo")
DEFAULT_DATABASE = "tornado_files"
# Fail fast while MongoDB is down (503 within seconds, not the driver's 30 s); a URI that
# sets these options wins.
_DEFAULTS = {"serverSelectionTimeoutMS": 5000, "connectTimeoutMS": 10000}
# MongoDB's error codes (src/mongo/base/error_codes.yml) for a write refused for lack of room:
# OutOfDiskSpace, QuotaExceeded. They are 507 to the client, like a full disk store.
_NO_SPACE_CODES = frozenset({14031, 12501})

Document = dict[str, Any]


def make_client(uri: str) -> AsyncMongoClient[Document]:
    given = {key.lower() for key in parse_uri(uri)["options"]}
    options: dict[str, Any] = {k: v for k, v in _DEFAULTS.items() if k.lower() not in given}
    return AsyncMongoClient(uri, appname="tornado-files", tz_aware=True, **options)


def database_of(client: AsyncMongoClient[Document]) -> AsyncDatabase[Document]:
    """The database named in the URI's path, ``tornado_files`` when it names none."""
    return client.get_default_database(DEFAULT_DATABASE)


def describe(uri: str) -> str:
    """Hosts and database of a URI, without credentials, for start-up messages."""
    parsed = parse_uri(uri)
    hosts = ",".join(f"{host}:{port}" for host, port in parsed["nodelist"])
    return f"{hosts}/{parsed['database'] or DEFAULT_DATABASE}"


@contextmanager
def driver_errors(what: str) -> Iterator[None]:
    try:
        yield
    except PyMongoError as exc:
        log.error("mongodb: %s failed: %s", what, exc)
        if isinstance(exc, OperationFailure) and exc.code in _NO_SPACE_CODES:
            raise InsufficientStorage() from None
        raise BackendUnavailable() from None
