"""``Prefer: wait=N`` (RFC 7240 §4.3): how long a client would wait for its media jobs."""

from __future__ import annotations

from tornado.httputil import HTTPHeaders

from tornado_files.errors import NotFound
from tornado_files.models import FileRecord
from tornado_files.services import Services

# docs/media.md: a request waits at most this long, whatever it asks.
MAX_WAIT = 30


def preferred_wait(headers: HTTPHeaders) -> int:
    """Seconds from the ``wait`` preference of every ``Prefer`` field (the first one given),
    at most ``MAX_WAIT``; 0 when there is none or it is not delta-seconds (RFC 7240 §2: a
    preference the server does not understand is ignored, never an error).

    >>> h = HTTPHeaders(); h.add("Prefer", "respond-async, wait=12")
    >>> preferred_wait(h)
    12
    >>> h = HTTPHeaders(); h.add("Prefer", "wait=600")
    >>> preferred_wait(h)
    30
    >>> h = HTTPHeaders(); h.add("Prefer", "wait=0000005")
    >>> preferred_wait(h)
    5
    """
    for field in headers.get_list("Prefer"):
        for preference in field.split(","):
            name, _, value = preference.partition(";")[0].partition("=")
            if name.strip().lower() != "wait":
                continue
            value = value.strip().strip('"')
            if not value.isascii() or not value.isdigit():
                return 0
            digits = value.lstrip("0")  # delta-seconds may have leading zeros (RFC 9111 §1.2.2)
            return MAX_WAIT if len(digits) > 3 else min(int(digits or "0"), MAX_WAIT)
    return 0


async def wait_for_jobs(services: Services, records: list[FileRecord], within: int
                        ) -> list[FileRecord]:
    """``records`` as they are once their pending jobs ended or ``within`` seconds passed,
    in the same order; a record deleted meanwhile is returned as it was."""
    pending = [r.id for r in records if r.processing == "pending"]
    if within <= 0 or not pending:
        return records
    latest = {r.id: r for r in records}

    async def still_pending(ids: list[str]) -> list[str]:
        # In order, up to the first still pending: a look costs one read while the jobs run,
        # however many files the upload carried (the rest are read once it is done).
        for index, file_id in enumerate(ids):
            try:
                latest[file_id] = await services.metadata.get(file_id)
            except NotFound:  # deleted meanwhile: answer with what the upload stored
                continue
            if latest[file_id].processing == "pending":
                return ids[index:]
        return []

    await services.job_signals.wait_finished(pending, within, still_pending)
    return [latest[r.id] for r in records]
