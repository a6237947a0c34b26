"""Configuration: frozen values, size parsing and validation.

Sources, strongest first: command-line options, ``TORNADO_FILES_<NAME>`` environment
variables, the TOML file named by ``--config``, then the defaults below. Every problem is a
:class:`ConfigError` whose message is one line a person can act on.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tornado_files.auth.settings import KEYS as AUTH_KEYS
from tornado_files.auth.settings import AuthSettings, check_bind, parse_auth
from tornado_files.hooks.settings import (
    DEFAULT_RETRY_MAX,
    Hook,
    check_not_self,
    check_retry_max,
    parse_hooks,
)
from tornado_files.hooks.settings import KEY as HOOKS_KEY
from tornado_files.logs import LOG_FORMATS
from tornado_files.processing.settings import KEY as MEDIA_KEY
from tornado_files.processing.settings import MediaSettings, parse_media
from tornado_files.storage.azure_settings import KEY as AZURE_KEY
from tornado_files.storage.azure_settings import AzureSettings, parse_azure
from tornado_files.storage.gcs_settings import KEY as GCS_KEY
from tornado_files.storage.gcs_settings import GcsSettings, parse_gcs
from tornado_files.storage.s3_settings import KEY as S3_KEY
from tornado_files.storage.s3_settings import S3Settings, parse_s3
from tornado_files.tables import table
from tornado_files.web.proxies import Network, parse_networks

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

DEFAULT_ROUTE = "/api/files"
STORAGE_KINDS = ("disk", "gridfs", "s3", "gcs", "azure")
# Paths the server itself serves; an upload route may not take them over.
BUILTIN_PREFIXES = ("/api/files", "/api/routes", "/api/tus", "/api/upload-links", "/healthz",
                    "/livez", "/metrics", "/readyz", "/static")

MIN_SWEEP_GRACE = 60.0
# Any duration setting: at most ten years.
MAX_SECONDS = 10 * 365 * 86400.0
# libmagic needs some bytes to say anything (0 made every file application/x-empty); the window
# is held in memory per file being sniffed.
MIN_SNIFF_BYTES = 1024
MAX_SNIFF_BYTES = 16 * 1024 * 1024
# File parts per request on a route that sets no max_files: the cap Werkzeug, Django and
# Starlette use. Every part costs a writer, an intent and a record (DESIGN.md invariant 7).
DEFAULT_MAX_FILES = 1000
# --processes: at most this many workers per usable CPU core.
MAX_PROCESSES_PER_CORE = 4

_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
    "t": 1000**4, "tb": 1000**4,
    "kib": KIB, "mib": MIB, "gib": GIB, "tib": 1024 * GIB,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


class ConfigError(ValueError):
    """A configuration problem, worded for the person starting the server."""


def parse_size(value: object, name: str = "size") -> int:
    """Parse ``40KiB``, ``10GiB``, ``1.5MB`` or a plain number of bytes.

    >>> parse_size("40KiB"), parse_size("10GiB"), parse_size(512), parse_size("1.5 MB")
    (40960, 10737418240, 512, 1500000)
    """
    if isinstance(value, bool):
        raise ConfigError(f"{name}: expected a size like 40KiB or 10GiB, got {value!r}")
    if isinstance(value, int):
        number, unit = float(value), ""
    elif isinstance(value, str) and (match := _SIZE_RE.match(value)):
        number, unit = float(match.group(1)), match.group(2).lower()
    else:
        raise ConfigError(f"{name}: expected a size like 40KiB or 10GiB, got {value!r}")
    if unit not in _UNITS:
        raise ConfigError(f"{name}: unknown size unit {unit!r} in {value!r} (use B, KiB, MiB, GiB)")
    size = int(number * _UNITS[unit])
    if size < 0:
        raise ConfigError(f"{name}: a size cannot be negative")
    return size


def format_size(size: int) -> str:
    """The shortest exact binary spelling of a size.

    >>> format_size(40960), format_size(10 * GIB), format_size(1000)
    ('40KiB', '10GiB', '1000B')
    """
    for unit, factor in (("TiB", 1024 * GIB), ("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if size and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}B"


@dataclass(frozen=True)
class RouteConfig:
    """One upload route as configured; ``None`` caps fall back to the route's body cap."""

    path: str
    max_body_size: int
    max_file_size: int | None = None
    max_files: int | None = None
    allowed_mime_types: tuple[str, ...] = ()
    storage: str | None = None
    # False: files uploaded here get no media job (docs/media.md).
    derivatives: bool = True


@dataclass(frozen=True)
class Config:
    """Everything the application factory needs; built once, never mutated."""

    host: str = "127.0.0.1"
    port: int = 8888
    data_dir: Path = Path("data")
    storage: str = "disk"
    max_upload_size: int = 10 * GIB
    routes: tuple[RouteConfig, ...] = ()
    cors_origins: tuple[str, ...] = ()
    # Peers whose X-Forwarded-For/-Proto/-Host are believed (web/proxies.py); empty: none.
    trusted_proxies: tuple[Network, ...] = ()
    # Seconds a request body may stay silent before the upload is dropped (408).
    idle_timeout: float = 60.0
    # After an early rejection: how long / how much input we discard so the client reads
    # the error before the connection closes (nginx's lingering close).
    linger_seconds: float = 2.0
    linger_bytes: int = 64 * MIB
    # Cap on each non-file multipart field and on JSON request bodies.
    max_field_size: int = 64 * KIB
    max_json_body: int = 1 * MIB
    # File parts per request on routes that set no max_files of their own.
    max_files: int = DEFAULT_MAX_FILES
    # Multipart parsing: parts per request, bytes of one part's header block.
    max_parts: int = 1000
    max_part_header_size: int = 16 * KIB
    # How many bytes of each file libmagic sees.
    sniff_bytes: int = 64 * KIB
    # MongoDB: metadata (and GridFS blobs, when a route's storage is "gridfs").
    mongodb_uri: str | None = None
    gridfs_bucket: str = "fs"
    gridfs_chunk_size: int = 255 * KIB
    # An S3 bucket ([s3], docs/object-storage.md) for routes whose storage is "s3".
    s3: S3Settings | None = None
    # An Azure container ([azure], docs/object-storage.md) for routes whose storage is "azure".
    azure: AzureSettings | None = None
    # A Google Cloud Storage bucket ([gcs], docs/object-storage.md) for routes whose storage
    # is "gcs".
    gcs: GcsSettings | None = None
    # Orphan sweeping: how often, and how old a blob or record must be to be touched.
    sweep_interval: float = 3600.0
    sweep_grace: float = 86400.0
    # Unfinished tus uploads expire this many seconds after their last PATCH.
    tus_expiry: float = 86400.0
    # Unfinished tus uploads, all routes together: creation beyond it is 503 + Retry-After.
    max_unfinished_uploads: int = 10_000
    # A tus PATCH's lease on its upload: renewed every third of it while the PATCH lives, so
    # a PATCH whose process died blocks its upload for at most this long.
    tus_lease: float = 10.0
    # A long tus PATCH counts what reached storage every this many bytes (0: only at its end).
    tus_checkpoint: int = 64 * MIB
    # Free space the data directory's file system keeps: below it the disk store refuses
    # uploads (507), so SQLite can always write (a DELETE on a full disk) and health warns.
    min_free_space: int = 256 * MIB
    # Tokens, JWT, signed links, private_reads (auth/settings.py): empty means open.
    auth: AuthSettings = field(default_factory=AuthSettings)
    # Media jobs: derivative images and extracted metadata ([derivatives]).
    media: MediaSettings = field(default_factory=MediaSettings)
    # Seconds uploads in flight get to finish once a shutdown began (a second signal: none).
    shutdown_timeout: float = 30.0
    # Log lines: "text" or "json" (tornado_files/logs.py).
    log_format: str = "text"
    # Webhooks ([[hooks]], hooks/settings.py) and the longest wait between two attempts of
    # one delivery, in seconds.
    hooks: tuple[Hook, ...] = ()
    hook_retry_max: float = DEFAULT_RETRY_MAX
    # Worker processes sharing the port (supervisor.py): 1 serves in this process, 0 is one
    # per core.
    processes: int = 1
    config_file: Path | None = field(default=None, compare=False)

    def all_routes(self) -> tuple[RouteConfig, ...]:
        """The default route first, then the configured ones."""
        default = RouteConfig(path=DEFAULT_ROUTE, max_body_size=self.max_upload_size)
        return (default, *self.routes)


# name → (parser, TOML/ENV allowed). CLI options use the same names with dashes.
_SCALARS: dict[str, Any] = {
    "host": str,
    "port": int,
    "data_dir": Path,
    "storage": str,
    "max_upload_size": parse_size,
    "idle_timeout": float,
    "linger_seconds": float,
    "linger_bytes": parse_size,
    "max_field_size": parse_size,
    "max_json_body": parse_size,
    "max_files": int,
    "max_parts": int,
    "max_part_header_size": parse_size,
    "sniff_bytes": parse_size,
    "mongodb_uri": str,
    "gridfs_bucket": str,
    "gridfs_chunk_size": parse_size,
    "sweep_interval": float,
    "sweep_grace": float,
    "tus_expiry": float,
    "max_unfinished_uploads": int,
    "log_format": str,
    "shutdown_timeout": float,
    "tus_lease": float,
    "tus_checkpoint": parse_size,
    "min_free_space": parse_size,
    "hook_retry_max": float,
    "processes": int,
}
# Lists of strings; from the environment, comma-separated.
_LISTS = ("cors_origins", "trusted_proxies")
_ROUTE_KEYS = {"path", "max_body_size", "max_file_size", "max_files", "allowed_mime_types",
               "storage", "derivatives"}
# Access control (auth/settings.py) that the environment may set too.
_AUTH_SCALARS = ("signing_key", "private_reads", "allow_anonymous", "max_link_lifetime",
                 "metrics_public")
_MIME_RE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/(\*|[a-z0-9][a-z0-9!#$&^_.+-]*)$")


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity: a container's cpuset, not the
    host's count); what ``processes = 0`` starts one worker per."""
    return len(os.sched_getaffinity(0))


def _convert(name: str, parser: Any, value: object) -> Any:
    if parser is parse_size:
        return parse_size(value, name)
    try:
        if parser is int and isinstance(value, bool | float):
            raise ValueError
        if parser is str and not isinstance(value, str):
            raise ValueError
        return parser(value)
    except (TypeError, ValueError):
        expected = "a whole number" if parser is int else "a number" if parser is float \
            else None
        if expected is not None:
            raise ConfigError(f"{name}: expected {expected}, got {value!r}") from None
        raise ConfigError(f"{name}: invalid value {value!r}") from None


def load_toml(path: Path) -> dict[str, Any]:
    """Read the TOML file; a missing or unreadable file is a ConfigError."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


# Variables in the server's TORNADO_FILES_ namespace that belong to someone else, so the
# server skips them instead of refusing an unknown setting: the command-line client's (read by
# tornado_files/client/commands.py; the README tells users to export them, often in the same
# shell that starts the server) and the test suite's TORNADO_FILES_TEST_* (docs/testing.md).
CLIENT_VARIABLES = frozenset({"TORNADO_FILES_URL", "TORNADO_FILES_TOKEN"})
TEST_VARIABLE_PREFIX = "TORNADO_FILES_TEST_"


def env_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    """``TORNADO_FILES_<NAME>`` variables for the scalar options (and the comma-separated lists
    ``CORS_ORIGINS`` and ``TRUSTED_PROXIES``),
    except the client's and the tests' (``CLIENT_VARIABLES``, ``TEST_VARIABLE_PREFIX``)."""
    found: dict[str, Any] = {}
    for key, value in environ.items():
        if (not key.startswith("TORNADO_FILES_") or key in CLIENT_VARIABLES
                or key.startswith(TEST_VARIABLE_PREFIX)):
            continue
        name = key.removeprefix("TORNADO_FILES_").lower()
        if name == "config":
            continue  # handled by the CLI layer
        if name in _LISTS:
            found[name] = [o.strip() for o in value.split(",") if o.strip()]
        elif name in _SCALARS or name in _AUTH_SCALARS:
            found[name] = value
        else:
            raise ConfigError(f"unknown environment variable {key}")
    return found


def _route(raw: object, index: int, default_storage: str) -> RouteConfig:
    where = f"routes[{index}]"
    try:
        raw = table(raw, where, _ROUTE_KEYS)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    path = raw.get("path")
    if not isinstance(path, str) or not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", path):
        raise ConfigError(f"{where}: path must look like /api/avatars, got {path!r}")
    if "max_body_size" not in raw:
        raise ConfigError(f"{where} ({path}): max_body_size is required")
    body = parse_size(raw["max_body_size"], f"{where}.max_body_size")
    file_cap = raw.get("max_file_size")
    max_files = raw.get("max_files")
    if max_files is not None and (
        not isinstance(max_files, int) or isinstance(max_files, bool) or max_files < 1
    ):
        raise ConfigError(f"{where}.max_files: expected a whole number ≥ 1, got {max_files!r}")
    mimes = raw.get("allowed_mime_types", [])
    if not isinstance(mimes, list) or not all(
        isinstance(m, str) and _MIME_RE.match(m) for m in mimes
    ):
        raise ConfigError(f"{where}.allowed_mime_types: expected a list like [\"image/png\"]")
    derivatives = raw.get("derivatives", True)
    if not isinstance(derivatives, bool):
        raise ConfigError(f"{where}.derivatives: expected true or false, got {derivatives!r}")
    storage = raw.get("storage", default_storage)
    if storage not in STORAGE_KINDS:
        raise ConfigError(f"{where}.storage: {storage!r} is not one of {list(STORAGE_KINDS)}")
    return RouteConfig(
        path=path,
        max_body_size=body,
        max_file_size=None if file_cap is None else parse_size(file_cap, f"{where}.max_file_size"),
        max_files=max_files,
        allowed_mime_types=tuple(mimes),
        storage=storage,
        derivatives=derivatives,
    )


def build_config(
    toml: Mapping[str, Any], env: Mapping[str, Any], cli: Mapping[str, Any],
    config_file: Path | None = None,
) -> Config:
    """Merge the three sources (CLI over env over TOML) and validate the result."""
    merged: dict[str, Any] = {}
    for source in (toml, env, cli):
        merged.update({k: v for k, v in source.items() if v is not None})
    known = (set(_SCALARS) | {"routes", MEDIA_KEY, HOOKS_KEY, S3_KEY, AZURE_KEY, GCS_KEY}
             | set(_LISTS) | set(AUTH_KEYS))
    unknown = set(merged) - known
    if unknown:
        raise ConfigError(f"unknown setting {sorted(unknown)[0]!r}")
    values = {name: _convert(name, _SCALARS[name], merged[name])
              for name in _SCALARS if name in merged}
    for name, value in values.items():
        # Seconds: "nan" reads as a float and compares false with everything (every body
        # was at once 408); 1e300 overflows the time arithmetic.
        if _SCALARS[name] is float and not 0 <= value <= MAX_SECONDS:
            raise ConfigError(f"{name}: expected seconds from 0 to {MAX_SECONDS:g}, got {value}")
    if not MIN_SNIFF_BYTES <= values.get("sniff_bytes", MIN_SNIFF_BYTES) <= MAX_SNIFF_BYTES:
        raise ConfigError(f"sniff_bytes: must be between {format_size(MIN_SNIFF_BYTES)} and "
                          f"{format_size(MAX_SNIFF_BYTES)}")
    try:
        auth = parse_auth(merged)
        media = parse_media(merged.get(MEDIA_KEY), parse_size)
        hooks = parse_hooks(merged.get(HOOKS_KEY))
        s3 = parse_s3(merged.get(S3_KEY), parse_size)
        azure = parse_azure(merged.get(AZURE_KEY), parse_size)
        gcs = parse_gcs(merged.get(GCS_KEY), parse_size)
        check_retry_max(values.get("hook_retry_max", DEFAULT_RETRY_MAX))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    config = replace(Config(), **values, config_file=config_file, auth=auth, media=media,
                     hooks=hooks, s3=s3, azure=azure, gcs=gcs)
    if config.storage not in STORAGE_KINDS:
        raise ConfigError(f"storage: {config.storage!r} is not one of {list(STORAGE_KINDS)}")
    _check_mongo(config)
    if not 0 < config.port < 65536:
        raise ConfigError(f"port: {config.port} is not between 1 and 65535")
    try:
        check_bind(auth, config.host)
        check_not_self(config.hooks, config.host, config.port)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if config.max_unfinished_uploads < 1:
        raise ConfigError("max_unfinished_uploads: expected a whole number ≥ 1, got "
                          f"{config.max_unfinished_uploads}")
    if config.log_format not in LOG_FORMATS:
        raise ConfigError(f"log_format: expected one of {list(LOG_FORMATS)}, "
                          f"got {config.log_format!r}")
    if config.processes < 0:
        raise ConfigError(f"processes: expected 0 (one per core) or more, got {config.processes}")
    cores = usable_cores()
    if config.processes > MAX_PROCESSES_PER_CORE * cores:
        # A typo (99999) would fork until the host runs out of memory.
        raise ConfigError(f"processes: at most {MAX_PROCESSES_PER_CORE} per CPU core this "
                          f"process may use ({MAX_PROCESSES_PER_CORE * cores} here), got "
                          f"{config.processes}")
    if config.max_files < 1:
        raise ConfigError(f"max_files: expected a whole number ≥ 1, got {config.max_files}")
    if config.max_parts < 1 or config.max_part_header_size < 256:
        raise ConfigError("max_parts must be at least 1 and max_part_header_size 256 bytes")
    if config.idle_timeout <= 0 or config.linger_seconds < 0:
        raise ConfigError("idle_timeout must be positive and linger_seconds not negative")
    origins = merged.get("cors_origins", [])
    if not isinstance(origins, list) or not all(isinstance(o, str) for o in origins):
        raise ConfigError("cors_origins: expected a list of origins like https://example.com")
    for origin in origins:
        if origin == "*" or "*" in origin:
            raise ConfigError("cors_origins: '*' is not allowed; list each origin explicitly")
        if not re.fullmatch(r"https?://[^/\s]+", origin):
            raise ConfigError(f"cors_origins: {origin!r} is not an origin like https://host:port")
    proxies = merged.get("trusted_proxies", [])
    if not isinstance(proxies, list) or not all(isinstance(p, str) for p in proxies):
        raise ConfigError("trusted_proxies: expected a list of addresses or CIDRs like "
                          "[\"10.0.0.0/8\"]")
    try:
        trusted = parse_networks(proxies)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    raw_routes = merged.get("routes", [])
    if not isinstance(raw_routes, list):
        raise ConfigError("routes: expected [[routes]] tables")
    routes = tuple(_route(r, i, config.storage) for i, r in enumerate(raw_routes))
    seen: set[str] = set()
    for route in routes:
        if route.path in seen:
            raise ConfigError(f"routes: duplicate path {route.path}")
        seen.add(route.path)
        for builtin in BUILTIN_PREFIXES:
            if route.path == builtin or route.path.startswith(builtin + "/"):
                raise ConfigError(f"routes: {route.path} would shadow the built-in {builtin}")
        if route.path == "/":
            raise ConfigError("routes: / is the upload page")
    if config.mongodb_uri is None and any(r.storage == "gridfs" for r in routes):
        raise ConfigError("routes: storage \"gridfs\" needs mongodb_uri (--mongodb-uri)")
    if config.s3 is None and "s3" in {config.storage, *(r.storage for r in routes)}:
        raise ConfigError("storage \"s3\" needs an [s3] table with its bucket")
    if config.azure is None and "azure" in {config.storage, *(r.storage for r in routes)}:
        raise ConfigError("storage \"azure\" needs an [azure] table with its container")
    if config.gcs is None and "gcs" in {config.storage, *(r.storage for r in routes)}:
        raise ConfigError("storage \"gcs\" needs a [gcs] table with its bucket")
    return replace(config, routes=routes, cors_origins=tuple(origins), trusted_proxies=trusted)


def _check_mongo(config: Config) -> None:
    uri = config.mongodb_uri
    if uri is not None and not re.match(r"^mongodb(\+srv)?://[^/\s]+", uri):
        raise ConfigError("mongodb_uri: expected mongodb://host:port/database")
    if config.storage == "gridfs" and uri is None:
        raise ConfigError("storage: gridfs needs mongodb_uri (--mongodb-uri)")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", config.gridfs_bucket):
        raise ConfigError(f"gridfs_bucket: {config.gridfs_bucket!r} is not a plain name")
    if not 1024 <= config.gridfs_chunk_size <= 15 * MIB:
        raise ConfigError("gridfs_chunk_size: must be between 1KiB and 15MiB")
    if config.tus_expiry <= 0:
        raise ConfigError("tus_expiry must be positive")
    if not 0.5 <= config.tus_lease <= 3600:
        raise ConfigError("tus_lease must be between 0.5 and 3600 seconds")
    if config.sweep_interval <= 0:
        raise ConfigError("sweep_interval must be positive")
    # Anything younger than the grace may belong to an upload in flight, which can stay silent
    # for idle_timeout: a shorter grace would let the sweeper race a commit.
    least = max(MIN_SWEEP_GRACE, 2 * config.idle_timeout)
    if config.sweep_grace < least:
        raise ConfigError(f"sweep_grace must be at least {least:g} seconds "
                          "(twice idle_timeout, and 60): younger objects may be uploads in flight")
