"""``[gcs]``: where the Google Cloud Storage store keeps its objects (docs/object-storage.md),
and the credentials it uses.

Credentials are never part of the table: they are Google's standard ones —
``GOOGLE_APPLICATION_CREDENTIALS`` (a service-account key file) or Application Default
Credentials (``gcloud auth application-default login``, the metadata server on Google's
machines). With an emulator (``endpoint``, or ``STORAGE_EMULATOR_HOST`` as Google's own
clients honour it) requests go without credentials.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tornado_files.tables import table

KEY = "gcs"
_KEYS = {"bucket", "prefix", "endpoint", "part_size", "download"}
_KIB = 1024
_MIB = 1024 * _KIB
# Resumable uploads take chunks in multiples of 256 KiB, every chunk but the last
# (cloud.google.com/storage/docs/performing-resumable-uploads, "Upload in multiple chunks").
CHUNK_UNIT = 256 * _KIB
MIN_PART_SIZE = CHUNK_UNIT
MAX_PART_SIZE = 1024 * _MIB  # three parts of it are held per upload at most
DEFAULT_PART_SIZE = 8 * _MIB
# Bucket names (cloud.google.com/storage/docs/buckets#naming), without the dotted
# domain-named form's 222 characters: 3-63 of lowercase letters, digits, - _ and .
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9._/-]{0,200}$")
_ENDPOINT_RE = re.compile(r"^https?://[^/\s]+/?$")
DOWNLOADS = ("proxy", "redirect")
SCOPES = ("https://www.googleapis.com/auth/devstorage.read_write",)
GOOGLE_ENDPOINT = "https://storage.googleapis.com"


@dataclass(frozen=True)
class GcsSettings:
    """One bucket. ``part_size`` (a resumable upload's chunk) in bytes, a multiple of 256 KiB;
    ``endpoint`` None is Google's own (or ``STORAGE_EMULATOR_HOST`` when set)."""

    bucket: str
    prefix: str = ""
    endpoint: str | None = None
    part_size: int = DEFAULT_PART_SIZE
    download: str = "proxy"


def parse_gcs(raw: object, parse_size: Callable[[object, str], int]) -> GcsSettings | None:
    """``[gcs]`` (absent: None). Raises ``ValueError`` with one line naming the key."""
    if raw is None:
        return None
    values = table(raw, KEY, _KEYS)
    bucket = values.get("bucket")
    if not isinstance(bucket, str) or not _BUCKET_RE.match(bucket) or ".." in bucket:
        raise ValueError(f"gcs.bucket: expected a bucket name like \"media\", got {bucket!r}")
    prefix = values.get("prefix", "")
    if not isinstance(prefix, str) or not _PREFIX_RE.match(prefix) or prefix.startswith("/"):
        raise ValueError("gcs.prefix: letters, digits and . _ / - only, not starting with /, "
                         f"got {prefix!r}")
    endpoint = values.get("endpoint")
    if endpoint is not None and (not isinstance(endpoint, str)
                                 or not _ENDPOINT_RE.match(endpoint)):
        raise ValueError(f"gcs.endpoint: expected http(s)://host:port, got {endpoint!r}")
    part_size = parse_size(values.get("part_size", DEFAULT_PART_SIZE), "gcs.part_size")
    if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE or part_size % CHUNK_UNIT:
        raise ValueError("gcs.part_size: a multiple of 256KiB from 256KiB to 1GiB "
                         "(GCS takes resumable chunks in multiples of 256 KiB)")
    download = values.get("download", "proxy")
    if download not in DOWNLOADS:
        raise ValueError(f"gcs.download: expected \"proxy\" or \"redirect\", got {download!r}")
    return GcsSettings(bucket=bucket, prefix=prefix,
                       endpoint=endpoint.rstrip("/") if endpoint else None,
                       part_size=part_size, download=download)


def emulator_endpoint(settings: GcsSettings, environ: Mapping[str, str]) -> str | None:
    """The emulator's base URL: ``endpoint``, else ``STORAGE_EMULATOR_HOST`` (which Google's
    clients accept with or without a scheme), else None (Google's service)."""
    if settings.endpoint:
        return settings.endpoint
    host = environ.get("STORAGE_EMULATOR_HOST", "").strip().rstrip("/")
    if not host:
        return None
    return host if host.startswith(("http://", "https://")) else f"http://{host}"


@dataclass(frozen=True)
class GcsCredentials:
    """What the store talks with: ``requests`` signs calls (anonymous for an emulator);
    ``signer`` is a service account's key credentials, None when there is none."""

    requests: Any
    signer: Any
    project: str | None


def _from_file(path: str) -> Any:
    """A key file of the two kinds Google's tools write: a service account's key, or the
    ``authorized_user`` file of ``gcloud auth application-default login``. Raises
    ``ValueError``/``OSError``."""
    from google.oauth2 import credentials, service_account

    with open(path, encoding="utf-8") as handle:
        info = json.load(handle)
    kind = info.get("type") if isinstance(info, dict) else None
    if kind == "service_account":
        return service_account.Credentials.from_service_account_info(info, scopes=SCOPES)
    if kind == "authorized_user":
        return credentials.Credentials.from_authorized_user_info(info, scopes=SCOPES)
    raise ValueError(f"a credentials file of type {kind!r} (expected \"service_account\" or "
                     "\"authorized_user\")")


def credentials_from(settings: GcsSettings, environ: Mapping[str, str]) -> GcsCredentials:
    """Google's standard credentials. Raises ``ValueError`` (one line) when none are found
    for Google's service, or when ``download = "redirect"`` has no key to sign with."""
    from google.auth import default
    from google.auth.credentials import AnonymousCredentials
    from google.auth.exceptions import GoogleAuthError
    from google.oauth2 import service_account

    emulator = emulator_endpoint(settings, environ)
    key_file = environ.get("GOOGLE_APPLICATION_CREDENTIALS", "").strip()
    creds: Any = None
    project: str | None = None
    try:
        if key_file:
            creds = _from_file(key_file)
            project = getattr(creds, "project_id", None)
        elif emulator is None:
            creds, project = default(scopes=list(SCOPES))
    except (GoogleAuthError, OSError, ValueError) as exc:
        where = f"GOOGLE_APPLICATION_CREDENTIALS ({key_file})" if key_file else \
            "Application Default Credentials"
        detail = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        raise ValueError(f"storage \"gcs\": no usable Google credentials in {where}: "
                         f"{detail}") from None
    signer = creds if isinstance(creds, service_account.Credentials) else None
    if settings.download == "redirect" and signer is None:
        raise ValueError("gcs.download = \"redirect\" needs a service-account key to sign URLs: "
                         "set GOOGLE_APPLICATION_CREDENTIALS to its JSON file")
    requests = AnonymousCredentials() if emulator is not None else creds
    return GcsCredentials(requests=requests, signer=signer, project=project)
