"""Prometheus metrics (docs/deploying.md, Metrics): one registry per application.

``Metrics`` holds a ``CollectorRegistry`` of its own and every metric in it; ``build_services``
makes one and ``Services.metrics`` carries it, so two applications in one process count apart
and nothing touches prometheus_client's global default registry.

With ``--processes`` N > 1 (``Metrics(multiprocess=True)`` in each worker, after
``enable_multiprocess``) the metrics write to files in the directory the supervisor made
(prometheus_client's multiprocess mode) and the registry that ``exposition`` renders reads
every worker's files: one scrape of any worker counts them all. Labels are bounded: HTTP
methods outside the standard ones count as ``other``, and no label ever holds an id, a path or
a principal. Names, base units (seconds, bytes) and label sets follow API.md §10.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from tornado_files.media.kinds import media_kind

PREFIX = "tornado_files"
# The methods ``requests_total`` and ``request_duration_seconds`` name; any other is "other".
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
PROTOCOLS = ("multipart", "raw", "tus")
# created: the file exists; rejected: answered with an error; aborted: the client went away
# (or its body went silent, or it terminated a tus upload); expired: a tus upload left
# unfinished past tus_expiry.
UPLOAD_OUTCOMES = ("created", "rejected", "aborted", "expired")
JOB_KINDS = ("image", "video", "audio", "document", "none")
JOB_OUTCOMES = ("done", "failed", "retried")
# Webhooks (hooks/): an outbox event's attempt was answered 2xx (delivered), was not and is
# retried (failed), or the delivery ended unsent (given_up), or never reached the outbox (lost);
# an upload.pre_create answer let the upload in (accepted), refused it (rejected), or did not
# come (unavailable).
HOOK_EVENTS = ("file.created", "file.updated", "file.deleted", "upload.expired")
HOOK_OUTCOMES = ("delivered", "failed", "given_up", "lost")
PRE_CREATE_OUTCOMES = ("accepted", "rejected", "unavailable")
# Seconds: small answers in milliseconds up to uploads that take half an hour.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                    60.0, 300.0, 1800.0, float("inf"))
CONTENT_TYPE = CONTENT_TYPE_LATEST


# prometheus_client's variable naming the directory of the multiprocess files.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def enable_multiprocess(directory: Path) -> None:
    """In a worker process (after the fork, before any metric exists): its metrics write to
    files in ``directory``. prometheus_client chooses where values live once, when it is
    imported (``values.ValueClass``) — in the supervisor, before the directory existed — so
    the choice is made again here."""
    os.environ[MULTIPROC_ENV] = str(directory)
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


def worker_gone(directory: Path, pid: int) -> None:
    """A worker ended: its live gauges (``active_uploads``) stop counting; its counters stay
    in the totals (prometheus_client's ``mark_process_dead``)."""
    mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]


def method_label(method: str | None) -> str:
    """The ``method`` label of a request: its method if standard, else ``other``.

    >>> method_label("GET"), method_label("PROPFIND"), method_label(None)
    ('GET', 'other', 'other')
    """
    return method if method in METHODS else "other"


def job_kind(mime_type: str) -> str:
    """The ``kind`` label of a media job: its media kind, or ``none`` (nothing to make).

    >>> job_kind("image/png"), job_kind("text/plain")
    ('image', 'none')
    """
    return media_kind(mime_type) or "none"


class Metrics:
    """Every metric of one application, in ``registry``.

    - ``requests``: ``tornado_files_requests_total{method,code}``, answered requests (``code``
      the HTTP status), early rejections included.
    - ``request_duration``: ``tornado_files_request_duration_seconds{method}``, seconds from
      the request's arrival to its answer (a histogram).
    - ``upload_bytes``: ``tornado_files_upload_bytes_total{protocol}``, bytes of file content
      written to storage (``protocol``: multipart, raw or tus).
    - ``uploads``: ``tornado_files_uploads_total{protocol,outcome}``, uploads ended
      (``outcome``: created, rejected, aborted, expired).
    - ``active_uploads``: ``tornado_files_active_uploads``, upload requests writing now.
    - ``download_bytes``: ``tornado_files_download_bytes_total``, bytes of file and derivative
      content sent.
    - ``rejections``: ``tornado_files_rejections_total{code}``, error answers by their JSON:API
      error ``code`` (e.g. ``request_too_large``).
    - ``jobs``: ``tornado_files_jobs_total{kind,outcome}``, media job runs ended (``kind``:
      image, video, audio, document, none; ``outcome``: done, failed, retried).
    - ``hook_deliveries``: ``tornado_files_hook_deliveries_total{event,outcome}``, webhook
      attempts by event and outcome (``HOOK_OUTCOMES``; ``upload.pre_create``:
      ``PRE_CREATE_OUTCOMES``).
    """

    def __init__(self, multiprocess: bool = False) -> None:
        """``multiprocess``: a worker of several (``enable_multiprocess`` was called); the
        metrics live in files and ``registry`` collects every worker's."""
        # The metrics' own registry; in multiprocess mode only a place to keep their names
        # apart from another application's, never rendered.
        registry = CollectorRegistry(auto_describe=True)
        self.registry = registry
        if multiprocess:
            self.registry = CollectorRegistry()
            MultiProcessCollector(self.registry, path=os.environ[MULTIPROC_ENV])  # type: ignore[no-untyped-call]
        self.requests = Counter(
            f"{PREFIX}_requests", "Requests answered, by method and HTTP status.",
            ["method", "code"], registry=registry)
        self.request_duration = Histogram(
            f"{PREFIX}_request_duration_seconds",
            "Seconds from a request's arrival to its answer.", ["method"],
            buckets=DURATION_BUCKETS, registry=registry)
        self.upload_bytes = Counter(
            f"{PREFIX}_upload_bytes", "Bytes of file content written to storage, by protocol.",
            ["protocol"], registry=registry)
        self.uploads = Counter(
            f"{PREFIX}_uploads", "Uploads ended, by protocol and outcome.",
            ["protocol", "outcome"], registry=registry)
        self.active_uploads = Gauge(
            f"{PREFIX}_active_uploads", "Upload requests writing file content right now.",
            registry=registry, multiprocess_mode="livesum")
        self.download_bytes = Counter(
            f"{PREFIX}_download_bytes", "Bytes of file and derivative content sent.",
            registry=registry)
        self.rejections = Counter(
            f"{PREFIX}_rejections", "Error answers, by JSON:API error code.", ["code"],
            registry=registry)
        self.jobs = Counter(
            f"{PREFIX}_jobs", "Media job runs ended, by media kind and outcome.",
            ["kind", "outcome"], registry=registry)
        self.hook_deliveries = Counter(
            f"{PREFIX}_hook_deliveries", "Webhook attempts, by event and outcome.",
            ["event", "outcome"], registry=registry)
        # Every bounded combination exists from the start: a rate() needs the zero.
        for event in HOOK_EVENTS:
            for hook_outcome in HOOK_OUTCOMES:
                self.hook_deliveries.labels(event, hook_outcome)
        for hook_outcome in PRE_CREATE_OUTCOMES:
            self.hook_deliveries.labels("upload.pre_create", hook_outcome)
        for protocol in PROTOCOLS:
            self.upload_bytes.labels(protocol)
            for outcome in UPLOAD_OUTCOMES:
                self.uploads.labels(protocol, outcome)
        for kind in JOB_KINDS:
            for job_outcome in JOB_OUTCOMES:
                self.jobs.labels(kind, job_outcome)

    def request(self, method: str | None, status: int, seconds: float) -> None:
        """One answered request: its method, HTTP status and duration in seconds."""
        label = method_label(method)
        self.requests.labels(label, str(status)).inc()
        self.request_duration.labels(label).observe(seconds)

    def stored(self, protocol: str) -> Callable[[int], None]:
        """What counts ``bytes`` of file content written for an upload of ``protocol``."""
        return self.upload_bytes.labels(protocol).inc

    def upload_ended(self, protocol: str, outcome: str, count: int = 1) -> None:
        """``count`` uploads of ``protocol`` ended with ``outcome`` (``UPLOAD_OUTCOMES``)."""
        if count:
            self.uploads.labels(protocol, outcome).inc(count)

    def job_ended(self, mime_type: str, outcome: str) -> None:
        """A media job run on a file of ``mime_type`` ended: ``done``, ``failed`` or
        ``retried`` (a run that made nothing, ``processing`` "none", counts as done)."""
        self.jobs.labels(job_kind(mime_type), "done" if outcome == "none" else outcome).inc()

    def hook_delivery(self, event: str, outcome: str, count: int = 1) -> None:
        """``count`` webhook attempts for ``event`` ended with ``outcome``."""
        self.hook_deliveries.labels(event, outcome).inc(count)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format (``CONTENT_TYPE``)."""
        return generate_latest(self.registry)
