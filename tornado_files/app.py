"""The application factory: configuration in, a wired Tornado application out.

No module-level state: every store, policy and pool lives in one ``Services`` object in the
application settings, so tests build as many independent apps as they like.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

from tornado.web import Application

from tornado_files.auth.authenticator import Authenticator
from tornado_files.auth.jwt_verifier import JwtVerifier
from tornado_files.auth.links import LinkSigner
from tornado_files.auth.tokens import TokenTable
from tornado_files.blocking import Offload
from tornado_files.config import Config
from tornado_files.hooks.delivery import HookSender
from tornado_files.metadata.base import (
    IntentJournal,
    JobQueue,
    LeaseStore,
    MetadataStore,
    Outbox,
    UploadStateStore,
)
from tornado_files.metadata.headroom import Headroom
from tornado_files.metadata.sqlite import SqliteMetadataStore
from tornado_files.metadata.sqlite_intents import SqliteIntentJournal
from tornado_files.metadata.sqlite_jobs import SqliteJobQueue
from tornado_files.metadata.sqlite_leases import SqliteLeaseStore
from tornado_files.metadata.sqlite_outbox import SqliteOutbox
from tornado_files.metadata.sqlite_uploads import SqliteUploadStore
from tornado_files.metrics import Metrics
from tornado_files.models import utcnow
from tornado_files.policy import build_policies
from tornado_files.processing.pool import WorkerPool
from tornado_files.processing.runner import JobRunner
from tornado_files.resumable import Resumable
from tornado_files.services import Services
from tornado_files.sniff import Sniffer
from tornado_files.storage.base import BlobStore
from tornado_files.storage.disk import DiskBlobStore
from tornado_files.sweeper import Sweeper
from tornado_files.web.access_log import log_request
from tornado_files.web.download import ContentHandler, DerivativeHandler
from tornado_files.web.files import FileHandler, FilesListHandler, FileUpdateHandler
from tornado_files.web.jobs import ProcessHandler
from tornado_files.web.links import FileLinksHandler, UploadLinksHandler
from tornado_files.web.meta import (
    HealthHandler,
    LiveHandler,
    MetricsHandler,
    PageHandler,
    RoutesHandler,
)
from tornado_files.web.proxies import ProxyAwareApplication, TrustedProxies
from tornado_files.web.routing import Endpoint, NotFoundHandler, RouteTable
from tornado_files.web.tus import (
    TusCreationHandler,
    TusDiscoveryHandler,
    TusPatchHandler,
    TusUploadHandler,
)
from tornado_files.web.uploads import UploadHandler


def find_static_dir() -> Path:
    """``static/`` beside the package in a checkout, else where ``pip install`` put it."""
    checkout = Path(__file__).resolve().parent.parent / "static"
    if checkout.is_dir():
        return checkout
    return Path(sys.prefix) / "share" / "tornado-files" / "static"


FILE_ID = r"([0-9a-f]{32})"


def build_services(config: Config, multiprocess: bool = False) -> Services:
    """Stores, policies and pools for ``config`` (not started: call ``startup()``).

    Embedded default: blobs on disk, records in SQLite under the data directory. With a
    MongoDB URI: records in MongoDB and a GridFS store beside the disk store. ``multiprocess``:
    a worker of ``--processes`` N > 1, whose metrics count for all workers (``metrics``)."""
    offload = Offload()
    data_dir = config.data_dir
    # Temp files idle for twice the body timeout belong to nobody (their upload was dropped).
    disk = DiskBlobStore(data_dir, offload, stale_after=2 * config.idle_timeout,
                         min_free_space=config.min_free_space)
    blob_stores: dict[str, BlobStore] = {"disk": disk}
    metadata: MetadataStore
    uploads: UploadStateStore
    intents: IntentJournal
    jobs: JobQueue
    outbox: Outbox
    leases: LeaseStore
    closers: tuple[Callable[[], Awaitable[None]], ...] = ()
    if config.mongodb_uri:
        metadata, uploads, intents, jobs, outbox, leases, closers = _add_mongodb(
            config.mongodb_uri, config, blob_stores)
    else:
        sqlite = SqliteMetadataStore(data_dir / "metadata.sqlite3", offload,
                                     Headroom(data_dir / "metadata.sqlite3-headroom"))
        metadata, uploads, intents = sqlite, SqliteUploadStore(sqlite), SqliteIntentJournal(sqlite)
        jobs, outbox = SqliteJobQueue(sqlite), SqliteOutbox(sqlite)
        leases = SqliteLeaseStore(sqlite)
    if config.s3 is not None:
        # Imported only here: the embedded default never loads botocore.
        from tornado_files.storage.s3 import S3_THREADS, S3BlobStore
        # A pool of its own (closed with the store): parts taking seconds to reach a far
        # bucket must not queue the SQLite calls and fsyncs of every other request.
        blob_stores["s3"] = S3BlobStore(config.s3, Offload(S3_THREADS, "tornado-files-s3"),
                                        stale_after=2 * config.idle_timeout, owns_pool=True)
    if config.azure is not None:
        # Imported only here, like botocore; a pool of its own for the same reason.
        from tornado_files.storage.azure import AZURE_THREADS, AzureBlobStore
        blob_stores["azure"] = AzureBlobStore(
            config.azure, Offload(AZURE_THREADS, "tornado-files-azure"), owns_pool=True)
    if config.gcs is not None:
        # Imported only here, like botocore; a pool of its own for the same reason.
        from tornado_files.storage.gcs import GCS_THREADS, GcsBlobStore
        blob_stores["gcs"] = GcsBlobStore(
            config.gcs, Offload(GCS_THREADS, "tornado-files-gcs"), owns_pool=True)
    return Services(
        config=config,
        policies=build_policies(config),
        blob_stores=blob_stores,
        metadata=metadata,
        sniffer=Sniffer(offload),
        offload=offload,
        uploads=uploads,
        intents=intents,
        jobs=jobs,
        outbox=outbox,
        leases=leases,
        auth=build_authenticator(config),
        metrics=Metrics(multiprocess=multiprocess),
        closers=closers,
    )


def build_authenticator(config: Config) -> Authenticator:
    settings = config.auth
    return Authenticator(
        tokens=TokenTable(settings.tokens),
        jwt=JwtVerifier(settings.jwt) if settings.jwt is not None else None,
        links=LinkSigner(settings.signing_key) if settings.signing_key is not None else None)


def _add_mongodb(
    uri: str, config: Config, blob_stores: dict[str, BlobStore],
) -> tuple[MetadataStore, UploadStateStore, IntentJournal, JobQueue, Outbox, LeaseStore,
           tuple[Callable[[], Awaitable[None]], ...]]:
    """Records in MongoDB and a GridFS blob store. The driver is imported only here: the
    embedded default never loads it (about 10 MiB of resident memory less)."""
    from tornado_files.metadata.mongo import MongoMetadataStore
    from tornado_files.metadata.mongo_intents import MongoIntentJournal
    from tornado_files.metadata.mongo_jobs import MongoJobQueue
    from tornado_files.metadata.mongo_leases import MongoLeaseStore
    from tornado_files.metadata.mongo_outbox import MongoOutbox
    from tornado_files.metadata.mongo_uploads import MongoUploadStore
    from tornado_files.mongo import database_of, make_client
    from tornado_files.storage.gridfs import GridFSBlobStore

    client = make_client(uri)
    db = database_of(client)
    gridfs = GridFSBlobStore(db, config.gridfs_bucket, config.gridfs_chunk_size)
    blob_stores["gridfs"] = gridfs
    return (MongoMetadataStore(db), MongoUploadStore(db), MongoIntentJournal(db),
            MongoJobQueue(db), MongoOutbox(db), MongoLeaseStore(db), (client.close,))


def build_sweeper(services: Services, clock: Callable[[], datetime] = utcnow) -> Sweeper:
    """The sweeper: finishes what the intent journal names, drives recorded tus completions and
    expires unfinished tus uploads. ``clock`` is for tests that let the grace period pass."""
    return Sweeper(services.intents, services.metadata, services.blob_stores,
                   services.config.sweep_grace, clock=clock, expire=Resumable(services).sweep)


def build_runner(services: Services, poll: float = 1.0) -> JobRunner:
    """The media job runner and its worker processes (``start()`` it; ``stop()`` at
    shutdown)."""
    return JobRunner(services, WorkerPool(services.config.media), poll=poll)


def build_hook_sender(services: Services, poll: float = 1.0) -> HookSender:
    """The webhook delivery loop (``start()`` it; ``stop()`` at shutdown)."""
    return HookSender(services, poll=poll)


def make_app(services: Services, static_dir: Path | None = None) -> Application:
    """Every endpoint, each method on the handler for it (``web.routing``)."""
    static_dir = static_dir or find_static_dir()
    default, *others = services.policies
    tus = {"resumable": Resumable(services)}
    table = RouteTable([
        Endpoint(r"/api/files", [(FilesListHandler, {}), (UploadHandler, {"policy": default})]),
        Endpoint(rf"/api/files/{FILE_ID}", [(FileHandler, {}), (FileUpdateHandler, {})]),
        Endpoint(rf"/api/files/{FILE_ID}/content", [(ContentHandler, {})]),
        Endpoint(rf"/api/files/{FILE_ID}/derivatives/([A-Za-z0-9_]+)",
                 [(DerivativeHandler, {})]),
        Endpoint(rf"/api/files/{FILE_ID}/process", [(ProcessHandler, {})]),
        Endpoint(rf"/api/files/{FILE_ID}/links", [(FileLinksHandler, {})]),
        Endpoint(r"/api/upload-links", [(UploadLinksHandler, {})]),
        Endpoint(r"/api/routes", [(RoutesHandler, {})]),
        Endpoint(r"/api/tus/?", [(TusDiscoveryHandler, tus), (TusCreationHandler, tus)]),
        Endpoint(rf"/api/tus/{FILE_ID}", [(TusUploadHandler, tus), (TusPatchHandler, tus)]),
        Endpoint(r"/healthz", [(HealthHandler, {})]),
        Endpoint(r"/readyz", [(HealthHandler, {})]),
        Endpoint(r"/livez", [(LiveHandler, {})]),
        Endpoint(r"/metrics", [(MetricsHandler, {})]),
        *[Endpoint(policy.path, [(UploadHandler, {"policy": policy})]) for policy in others],
        Endpoint(r"/()", [(PageHandler, {"path": str(static_dir),
                                          "default_filename": "index.html"})]),
        Endpoint(r"/static/(.+)", [(PageHandler, {"path": str(static_dir)})]),
    ])
    return ProxyAwareApplication(
        table.rules(),
        trusted_proxies=TrustedProxies(services.config.trusted_proxies),
        services=services,
        route_table=table,
        log_function=log_request,
        default_handler_class=NotFoundHandler,
        compress_response=False,
    )
