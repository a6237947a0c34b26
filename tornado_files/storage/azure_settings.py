"""``[azure]``: where the Azure Blob store keeps its blobs (docs/object-storage.md).

Credentials are never part of it: they come from the environment only —
``AZURE_STORAGE_CONNECTION_STRING``, or ``AZURE_STORAGE_ACCOUNT`` with
``AZURE_STORAGE_KEY`` (the variables the Azure CLI and SDK samples use).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tornado_files.tables import table

KEY = "azure"
_KEYS = {"container", "prefix", "endpoint", "part_size", "download"}
_MIB = 1024 * 1024
# Block blob limits (learn.microsoft.com, "Scalability targets for Blob storage"): a block is at
# most 4000 MiB, a blob at most 50,000 blocks. Blocks may be small; 1 MiB keeps requests few.
MIN_PART_SIZE = _MIB
MAX_PART_SIZE = 4000 * _MIB
MAX_BLOCKS = 50_000
DEFAULT_PART_SIZE = 8 * _MIB
# Container names (learn.microsoft.com, "Naming and referencing containers"): 3-63 of
# lowercase letters, digits and single dashes, starting and ending with a letter or digit.
_CONTAINER_RE = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9._/-]{0,200}$")
DOWNLOADS = ("proxy", "redirect")


@dataclass(frozen=True)
class AzureSettings:
    """One container. ``part_size`` (the block size) in bytes; ``endpoint`` None is the
    account's own ``https://<account>.blob.core.windows.net``."""

    container: str
    prefix: str = ""
    endpoint: str | None = None
    part_size: int = DEFAULT_PART_SIZE
    download: str = "proxy"


def parse_azure(raw: object, parse_size: Callable[[object, str], int]) -> AzureSettings | None:
    """``[azure]`` (absent: None). Raises ``ValueError`` with one line naming the key."""
    if raw is None:
        return None
    values = table(raw, KEY, _KEYS)
    container = values.get("container")
    if not isinstance(container, str) or not _CONTAINER_RE.match(container):
        raise ValueError("azure.container: expected a container name like \"media\", got "
                         f"{container!r}")
    prefix = values.get("prefix", "")
    if not isinstance(prefix, str) or not _PREFIX_RE.match(prefix) or prefix.startswith("/"):
        raise ValueError("azure.prefix: letters, digits and . _ / - only, not starting with /, "
                         f"got {prefix!r}")
    endpoint = values.get("endpoint")
    if endpoint is not None and (not isinstance(endpoint, str)
                                 or not re.match(r"^https?://[^/\s]+(/[A-Za-z0-9]+)?/?$",
                                                 endpoint)):
        raise ValueError("azure.endpoint: expected http(s)://host[:port][/account], got "
                         f"{endpoint!r}")
    part_size = parse_size(values.get("part_size", DEFAULT_PART_SIZE), "azure.part_size")
    if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
        raise ValueError("azure.part_size: blocks from 1MiB to 4000MiB")
    download = values.get("download", "proxy")
    if download not in DOWNLOADS:
        raise ValueError(f"azure.download: expected \"proxy\" or \"redirect\", got {download!r}")
    return AzureSettings(container=container, prefix=prefix, endpoint=endpoint,
                         part_size=part_size, download=download)


@dataclass(frozen=True)
class AzureCredentials:
    """The account from the environment: its name, and its key when there is one (a key is
    what signs SAS download URLs)."""

    account: str
    key: str | None
    connection_string: str | None


def credentials_from(environ: Mapping[str, str]) -> AzureCredentials:
    """``AZURE_STORAGE_CONNECTION_STRING`` wins; else ``AZURE_STORAGE_ACCOUNT`` (+
    ``AZURE_STORAGE_KEY``). Raises ``ValueError`` (one line) when neither names an account."""
    conn = environ.get("AZURE_STORAGE_CONNECTION_STRING", "").strip()
    if conn:
        fields = dict(part.split("=", 1) for part in conn.split(";") if "=" in part)
        account = fields.get("AccountName", "")
        if not account:
            raise ValueError("AZURE_STORAGE_CONNECTION_STRING names no AccountName")
        return AzureCredentials(account, fields.get("AccountKey") or None, conn)
    account = environ.get("AZURE_STORAGE_ACCOUNT", "").strip()
    if not account:
        raise ValueError("storage \"azure\" needs AZURE_STORAGE_CONNECTION_STRING or "
                         "AZURE_STORAGE_ACCOUNT (+ AZURE_STORAGE_KEY) in the environment")
    return AzureCredentials(account, environ.get("AZURE_STORAGE_KEY", "").strip() or None, None)


def account_url(settings: AzureSettings, account: str) -> str:
    """The blob endpoint: ``endpoint`` as given (azurite's ends in the account), else Azure's."""
    if settings.endpoint:
        return settings.endpoint.rstrip("/")
    return f"https://{account}.blob.core.windows.net"


def block_size_for(base: int, block_number: int) -> int:
    """Block ``block_number`` (1-based): ``base`` for the first 5,000 blocks, then doubling
    every 5,000 (capped at 4000 MiB), so 50,000 blocks reach past Azure's blob size limit.

    >>> block_size_for(8 * _MIB, 5000) // _MIB, block_size_for(8 * _MIB, 5001) // _MIB
    (8, 16)
    """
    return min(base << ((block_number - 1) // 5000), MAX_PART_SIZE)
