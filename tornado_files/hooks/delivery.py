"""The webhook delivery loop (docs/deploying.md, Webhooks): one per server process.

It claims due deliveries from the outbox under a lease (so no delivery is sent by two
processes or hosts at once), POSTs each with Tornado's ``AsyncHTTPClient`` (at most
``concurrency`` at a time, and it claims no more than it has room for, so memory stays
bounded whatever the backlog), removes those answered 2xx and makes the others due again
after a back-off: ``FIRST_RETRY`` seconds doubling per attempt up to ``hook_retry_max``, with
equal jitter (half fixed, half random: AWS's "Exponential Backoff and Jitter"). A delivery is
given up ``GIVE_UP`` seconds after its event (Stripe retries for three days), or when no hook
for its event and URL is configured any more.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from uuid import uuid4

from tornado.httpclient import HTTPRequest

from tornado_files.errors import TornadoFilesError
from tornado_files.hooks.http import HookHttp, signature
from tornado_files.hooks.settings import Hook, shown_url
from tornado_files.models import Delivery, utcnow
from tornado_files.services import Services
from tornado_files.tasks import finish_tasks

log = logging.getLogger("tornado_files.hooks")
# Seconds before the first retry (its jitter makes it 1.25-2.5 s: API.md wants ≤ 5 s).
FIRST_RETRY = 2.5
# Seconds after its event a delivery that never got a 2xx is given up.
GIVE_UP = 3 * 86400.0
# Seconds a stopping loop gives the deliveries in flight to end.
_STOP_WAIT = 5.0
# Seconds a summary of given-up deliveries waits at most for the delivery loop to be idle.
_REPORT_EVERY = 60.0
# Seconds a claim lasts beyond the hook's timeout (a process that died mid-send: its
# deliveries are claimed again after this).
_LEASE_SLACK = 30.0
HEADERS = {"event": "X-Hook-Event", "delivery": "X-Hook-Delivery", "attempt": "X-Hook-Attempt",
           "signature": "X-Signature-256"}


def retry_delay(attempt: int, retry_max: float, rng: Callable[[], float] = random.random
                ) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1 for the first): half of
    ``min(retry_max, FIRST_RETRY * 2 ** (attempt - 1))`` plus a random share of the other half.

    >>> retry_delay(1, 300, lambda: 1.0), retry_delay(2, 300, lambda: 0.0)
    (2.5, 2.5)
    >>> retry_delay(30, 300, lambda: 1.0)
    300.0
    """
    ceiling = min(retry_max, FIRST_RETRY * 2.0 ** min(attempt - 1, 40))
    return ceiling / 2 + rng() * ceiling / 2


def find_hook(hooks: tuple[Hook, ...], event: str, url: str) -> Hook | None:
    """The configured hook a delivery belongs to (its secret signs it), or None."""
    return next((h for h in hooks if h.event == event and h.url == url), None)


class HookSender:
    def __init__(self, services: Services, *, poll: float = 1.0, concurrency: int = 8,
                 clock: Callable[[], datetime] = utcnow) -> None:
        """``poll``: seconds between looks for due deliveries when nothing wakes the loop
        (retries coming due, events of other processes). ``concurrency``: requests in
        flight at once."""
        self.services = services
        self.poll = poll
        self.clock = clock
        self._concurrency = concurrency
        self._free = asyncio.Semaphore(concurrency)
        self._http = HookHttp(concurrency)
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._stopping = False
        # Deliveries given up since the last summary, by (event, shown URL, reason).
        self._given_up: Counter[tuple[str, str, str]] = Counter()
        self._next_report = 0.0
        hooks = services.config.hooks
        self._lease = max((h.timeout for h in hooks), default=5.0) + _LEASE_SLACK

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        """Stop claiming; deliveries in flight get ``_STOP_WAIT`` seconds, then are cancelled
        (their lease runs out and they are sent again: at least once)."""
        self._stopping = True
        self.services.hook_wakeup.set()
        await finish_tasks((self._task, *self._running), _STOP_WAIT)
        self._http.close()
        self._report_given_up()
        self._task = None

    def _report_given_up(self) -> None:
        """One warning per (event, URL, reason) for the deliveries given up since the last
        one: a removed hook's backlog of thousands is a line, not thousands."""
        for (event, url, reason), count in sorted(self._given_up.items()):
            log.warning("webhooks: gave up %d delivery(ies) of %s to %s (%s)", count, event,
                        url, reason)
        self._given_up.clear()

    async def _loop(self) -> None:
        while not self._stopping:
            await self._free.acquire()
            room = 1
            while room < self._concurrency and not self._free.locked():
                await self._free.acquire()
                room += 1
            try:
                now = self.clock()
                claimed = await self.services.outbox.claim_deliveries(
                    uuid4().hex, now + timedelta(seconds=self._lease), now, room)
            except TornadoFilesError as exc:  # the store said why where it failed
                claimed = []
                log.warning("webhooks: cannot claim deliveries (%s)", exc.code)
            except Exception:  # the loop must outlive any one failure
                claimed = []
                log.exception("webhooks: cannot claim deliveries")
            for _ in range(room - len(claimed)):
                self._free.release()
            for delivery in claimed:
                task = asyncio.ensure_future(self._deliver(delivery))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
            idle = not claimed and not self._running
            if self._given_up and (idle or time.monotonic() >= self._next_report):
                self._report_given_up()
            if not claimed:
                await self.services.hook_wakeup.wait(self.poll)

    async def _deliver(self, delivery: Delivery) -> None:
        try:
            await self._attempt(delivery)
        except Exception:
            log.exception("webhooks: delivery %s failed unexpectedly", delivery.id)
        finally:
            self._free.release()

    async def _attempt(self, delivery: Delivery) -> None:
        token = delivery.token or ""
        outbox, metrics = self.services.outbox, self.services.metrics
        config = self.services.config
        hook = find_hook(config.hooks, delivery.event, delivery.url)
        age = (self.clock() - delivery.created).total_seconds()
        if hook is None or age > GIVE_UP:
            reason = "no such hook is configured" if hook is None else "too old"
            if not self._given_up:
                self._next_report = time.monotonic() + _REPORT_EVERY
            self._given_up[(delivery.event, shown_url(delivery.url), reason)] += 1
            await outbox.finish_delivery(delivery.id, token)
            metrics.hook_delivery(delivery.event, "given_up")
            return
        status = await self._send(hook, delivery)
        if 200 <= status < 300:
            await outbox.finish_delivery(delivery.id, token)
            metrics.hook_delivery(delivery.event, "delivered")
            return
        attempt = delivery.attempts + 1
        delay = retry_delay(attempt, config.hook_retry_max)
        log.info("webhooks: delivery %s of %s to %s: %s; attempt %d again in %.1fs",
                 delivery.id, delivery.event, shown_url(delivery.url), status or "no answer",
                 attempt + 1, delay)
        await outbox.retry_delivery(delivery.id, token,
                                    self.clock() + timedelta(seconds=delay))
        metrics.hook_delivery(delivery.event, "failed")

    async def _send(self, hook: Hook, delivery: Delivery) -> int:
        """The answer's status, or 0 when none came (refused, timed out, broken)."""
        headers = {"Content-Type": "application/json", "User-Agent": "tornado-files",
                   HEADERS["event"]: delivery.event, HEADERS["delivery"]: delivery.id,
                   HEADERS["attempt"]: str(delivery.attempts + 1)}
        if hook.secret is not None:
            headers[HEADERS["signature"]] = signature(hook.secret, delivery.body)
        # The answer's body is dropped as it arrives (only its status counts): read whole,
        # a receiver answering 50 MiB would cost 50 MiB per delivery in flight.
        request = HTTPRequest(hook.url, method="POST", body=delivery.body, headers=headers,
                              connect_timeout=hook.timeout, request_timeout=hook.timeout,
                              follow_redirects=False, decompress_response=False,
                              streaming_callback=_discard)
        try:
            response = await self._http.client().fetch(request, raise_error=False)
        except Exception as exc:  # refused, timed out, reset, DNS: all mean "try again"
            log.info("webhooks: %s: %s", shown_url(hook.url), type(exc).__name__)
            return 0
        return response.code if response.code != 599 else 0


def _discard(_chunk: bytes) -> None:
    """A chunk of a delivery's answer body: not kept."""
