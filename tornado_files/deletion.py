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
    for key in _keys(found):
        await services.intents.add_intent(key, found.storage, utcnow())
    record = await services.metadata.delete(file_id)
    await services.events.files("file.deleted", [record])
    # Derivatives made between the read and the delete (a media job finishing) are in the
    # deleted record: journalled too before their blobs go.
    keys = _keys(record)
    try:
        for key in set(keys) - set(_keys(found)):
            await services.intents.add_intent(key, record.storage, utcnow())
        store = services.blob_store(record.storage)
        for key in keys:
            await store.delete(key)
        await services.intents.clear_intents(record.storage, list({*keys, *_keys(found)}))
    except Exception:
        log.exception("blobs %s of deleted file %s: removal not finished; the sweeper "
                      "finishes it", keys, file_id)


def _keys(record: FileRecord) -> list[str]:
    """The record's content blob first, then its derivatives'."""
    return [record.blob_key, *(d.key for d in record.derivatives)]
