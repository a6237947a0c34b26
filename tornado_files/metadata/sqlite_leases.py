"""Named leases in SQLite (the ``leases`` table of schema version 7): one row per name.

Each call is one statement, atomic in SQLite, so two processes sharing the file (WAL mode,
``busy_timeout``) never both hold a name. Times are integer microseconds, as elsewhere.
"""

from __future__ import annotations

from datetime import datetime

from tornado_files.metadata.sqlite import SqliteMetadataStore
from tornado_files.models import to_micros

# Insert the lease, or take over a row whose holder is the caller or whose lease ran out;
# ``changes()`` is then 1. A row held by someone else is left as it is (0).
_ACQUIRE = """
INSERT INTO leases (name, holder, until_us) VALUES (?, ?, ?)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until_us = excluded.until_us
WHERE leases.holder = excluded.holder OR leases.until_us <= ?
"""


class SqliteLeaseStore:
    """Implements ``LeaseStore`` on the metadata store's SQLite connection and schema."""

    def __init__(self, metadata: SqliteMetadataStore) -> None:
        self._metadata = metadata

    async def startup(self) -> None:
        return None  # the table comes with the metadata schema (version 7)

    async def acquire_lease(self, name: str, holder: str, until: datetime, now: datetime
                            ) -> bool:
        return await self._metadata.run(lambda db: db.execute(
            _ACQUIRE, (name, holder, to_micros(until), to_micros(now))).rowcount == 1)

    async def renew_lease(self, name: str, holder: str, until: datetime, now: datetime
                          ) -> bool:
        return await self._metadata.run(lambda db: db.execute(
            "UPDATE leases SET until_us = ? WHERE name = ? AND holder = ? AND until_us > ?",
            (to_micros(until), name, holder, to_micros(now))).rowcount == 1)

    async def release_lease(self, name: str, holder: str) -> bool:
        return await self._metadata.run(lambda db: db.execute(
            "DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder)).rowcount == 1)
