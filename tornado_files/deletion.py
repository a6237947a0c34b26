"""Deleting a file: the one routine for ``DELETE /api/files/{id}`` and for the termination of
a finished tus upload (the termination extension covers completed uploads)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from tornado_files.models import FileRecord, utcnow
from tornado_files.services import Services

log = logging.getLogger("tornado_files.deletion")


async def delete_file(services: Services, file_id: str,
                      allow: Callable[[FileRecord], None] | None = None) -> None:
    """Intent, record, blob, then clear the intent (record first, DESIGN.md): a crash or a
    failed blob delete anywhere leaves an intent the sweeper finishes, never a record pointing
    at nothing. Raises ``NotFound`` when there is no such file; ``allow`` sees the record
    first and raises (``Forbidden``) to stop the deletion."""
    found = await services.metadata.get(file_id)
    if allow is not None:
        allow(found)
    await services.intents.add_intent(found.blob_key, found.storage, utcnow())
    record = await services.metadata.delete(file_id)
    try:
        await services.blob_store(record.storage).delete(record.blob_key)
        await services.intents.clear_intents(record.storage, [record.blob_key])
    except Exception:
        log.exception("blob %s of deleted file %s: removal not finished; the sweeper "
                      "finishes it", record.blob_key, file_id)
