"""``POST /api/files/{id}/process``: run a file's media job again (docs/media.md)."""

from __future__ import annotations

from tornado_files.auth.principal import Scope
from tornado_files.errors import ProcessingDisabled
from tornado_files.models import utcnow
from tornado_files.policy import route_derives
from tornado_files.processing.prefer import preferred_wait, wait_for_jobs
from tornado_files.web.base import ApiHandler


class ProcessHandler(ApiHandler):
    """Needs ``admin``. Answers 202 with the file resource (``processing: "pending"``), or,
    when ``Prefer: wait=N`` let the job end in time, 200 with the resource as it ended. The
    old derivatives stay served until the new run replaces them. 409 ``processing_disabled``
    when the file's route derives nothing."""

    access = {"POST": Scope.ADMIN}

    async def post(self, file_id: str) -> None:
        services = self.services
        current = await services.metadata.get(file_id)
        if not route_derives(services.policies, current.route):
            raise ProcessingDisabled(
                detail=f"Media processing is turned off for the route {current.route}",
                meta={"route": current.route})
        record = await services.jobs.requeue_job(file_id, utcnow())
        services.job_signals.queued()
        [record] = await wait_for_jobs(services, [record], preferred_wait(self.request.headers))
        self.write_json(record.to_resource(), status=202 if record.processing == "pending"
                        else 200)
