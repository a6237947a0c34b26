"""One page of ``GET /api/files``, bounded in bytes as well as in files.

Each file's ``data`` may hold up to ``max_json_body`` (1 MiB), so ``limit=1000`` alone could
make one page a gigabyte, held in memory while it is built. A page ends once its files take
``PAGE_BUDGET`` bytes of JSON (always at least one file), and the records are fetched in
batches of ``BATCH``; the client follows ``next`` as for any page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from tornado_files.metadata.base import MetadataStore
from tornado_files.models import ListQuery, position_of

PAGE_BUDGET = 4 * 1024 * 1024
BATCH = 50


async def bounded_page(metadata: MetadataStore, query: ListQuery,
                       encode: Callable[[Any], str], budget: int = PAGE_BUDGET
                       ) -> tuple[list[str], tuple[Any, str] | None]:
    """The resources of one page, each already ``encode``d as JSON (at most ``query.limit``,
    about ``budget`` bytes, at least one — encoded once, to measure and to send), and the
    keyset position the next page starts after (None: the last)."""
    resources: list[str] = []
    size = 0
    last: tuple[Any, str] | None = None  # the position of the last file taken
    batch_query = query
    while True:
        page = await metadata.list(replace(batch_query,
                                           limit=min(BATCH, query.limit - len(resources))))
        for record in page.records:
            resource = encode(record.to_resource())
            cost = len(resource.encode("utf-8"))
            if resources and size + cost > budget:
                return resources, last
            resources.append(resource)
            size += cost
            last = position_of(record, query.sort)
        if page.after is None or len(resources) >= query.limit:
            return resources, page.after
        batch_query = replace(batch_query, after=page.after)
