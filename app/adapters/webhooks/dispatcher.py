"""The webhook dispatcher: takes due deliveries from PostgreSQL and makes one attempt each.

Every worker runs one. Deliveries are leased (app/adapters/postgres/webhook_store.py), so
dispatchers share the work without sending anything twice while they live; a crashed worker's leases
run out and another makes the attempt (at-least-once: receivers deduplicate on the event id).

Nothing here waits on a merchant's server on behalf of another: attempts run concurrently up to
``WEBHOOK_CONCURRENCY`` per worker and ``WEBHOOK_ENDPOINT_CONCURRENCY`` per endpoint, each
bounded by ``WEBHOOK_TIMEOUT``; a failed attempt is rescheduled with backoff and jitter
(app/adapters/webhooks/schedule.py) rather than retried in place.

Each attempt is a ``webhook deliver`` span (when tracing is on) in the trace of the work that
queued the delivery, whose context the delivery's row keeps; the merchant's server is never sent
our trace context.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter as Tally
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
from prometheus_client import Counter, Histogram
from yarl import URL

from app.adapters import telemetry
from app.adapters.postgres.webhook_store import ClaimedDelivery, PostgresWebhookStore
from app.adapters.webhooks.schedule import DEFAULT_RETRY_SCHEDULE, next_attempt_delay
from app.adapters.webhooks.signing import SIGNATURE_HEADER, signature_header, webhook_body
from app.adapters.webhooks.ssrf import (
    BlockedAddress,
    GuardedResolver,
    UnsafeUrl,
    UrlPolicy,
    check_url_at_delivery,
    unsafe_url_cause,
)
from app.domain.webhooks import Attempt, WebhookEndpoint

logger = logging.getLogger(__name__)

USER_AGENT = "crypto-checkout-webhooks/1"
RESPONSE_EXCERPT_BYTES = 1024
# A lease outlives the attempt's timeout by this much (clock skew, a slow database write).
LEASE_MARGIN_SECONDS = 30.0

ATTEMPTS = Counter(
    "checkout_webhook_attempts", "Webhook delivery attempts", ["outcome"]
)  # outcome: succeeded, retrying, failed
ATTEMPT_SECONDS = Histogram(
    "checkout_webhook_attempt_seconds",
    "Time a merchant's server took to answer a webhook",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
ENDPOINTS_DISABLED = Counter(
    "checkout_webhook_endpoints_disabled", "Endpoints disabled after failing for too long"
)


@dataclass(frozen=True)
class DispatchSettings:
    policy: UrlPolicy
    retry_schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE
    timeout: float = 10.0
    disable_after: float = 5 * 24 * 3600.0
    concurrency: int = 64
    endpoint_concurrency: int = 8
    poll_interval: float = 0.5


@dataclass(frozen=True)
class AttemptOutcome:
    attempt: Attempt
    succeeded: bool
    # The platform failed, not the merchant's server: it does not count towards disabling.
    platform_fault: bool = False


class WebhookSender:
    """Makes one HTTP attempt: signed POST, no redirects, bounded in time, every outcome named."""

    def __init__(self, policy: UrlPolicy, timeout: float, concurrency: int) -> None:
        self._policy = policy
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._concurrency = concurrency

    async def start(self) -> None:
        # The resolver checks every address a host resolves to before aiohttp connects to it,
        # so a DNS answer cannot swap in a private address after the URL was accepted.
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(self._policy),
            limit=self._concurrency,
            limit_per_host=0,
            ttl_dns_cache=None,
            use_dns_cache=False,
        )
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self._timeout, auto_decompress=False
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def attempt(self, delivery: ClaimedDelivery) -> AttemptOutcome:
        if self._session is None:
            raise RuntimeError("the webhook sender is used before it started")
        started_at = datetime.now(UTC)
        clock = time.perf_counter()
        if delivery.secret_error is not None:
            # Nothing unsigned ever leaves: the attempt fails with the platform's reason.
            logger.error("webhook delivery %s: %s", delivery.delivery_id, delivery.secret_error)
            reason = "platform error: the endpoint's signing secret cannot be decrypted"
            attempt = Attempt(delivery.attempt, started_at, 0, None, reason, None)
            return AttemptOutcome(attempt, succeeded=False, platform_fault=True)
        body = webhook_body(
            event=delivery.event, delivery_id=delivery.delivery_id, attempt=delivery.attempt
        )
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: signature_header(delivery.secrets, int(time.time()), body),
            "Checkout-Event-Id": str(delivery.event["event_id"]),
            "Checkout-Event-Type": str(delivery.event["event_type"]),
            "Checkout-Delivery-Id": delivery.delivery_id,
            "Checkout-Attempt": str(delivery.attempt),
        }
        status_code: int | None = None
        excerpt: str | None = None
        error: str | None = None
        try:
            url = check_url_at_delivery(delivery.url, self._policy)
            async with self._session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                status_code = response.status
                raw = await response.content.read(RESPONSE_EXCERPT_BYTES)
                excerpt = raw.decode("utf-8", "replace") or None
                if not 200 <= status_code < 300:
                    location = response.headers.get("Location")
                    error = f"HTTP {status_code}" + (
                        f" (redirect to {location}; redirects are not followed)"
                        if 300 <= status_code < 400
                        else ""
                    )
        except TimeoutError:
            error = f"timed out after {self._timeout.total:g} s"
        except (UnsafeUrl, aiohttp.ClientError, OSError) as exc:
            unsafe = unsafe_url_cause(exc)
            if unsafe is not None:
                # The merchant sees the attempt's error: never an address inside our network.
                logger.warning("webhook %s refused: %s", delivery.delivery_id, unsafe)
                error = (
                    unsafe.for_merchant
                    if isinstance(unsafe, BlockedAddress)
                    else f"unsafe address: {unsafe}"
                )
            elif isinstance(exc, aiohttp.ClientConnectorError):
                error = f"cannot connect: {exc.os_error or exc}"
            else:
                error = f"{type(exc).__name__}: {exc}"
        latency = time.perf_counter() - clock
        ATTEMPT_SECONDS.observe(latency)
        if error is not None:
            # Each failed attempt once, in the delivery's trace: what a merchant asking "why did
            # it not arrive" is answered from (webhook_attempts keeps the same, per delivery).
            logger.info(
                "webhook delivery %s to endpoint %s, attempt %d: %s",
                delivery.delivery_id,
                delivery.endpoint_id,
                delivery.attempt,
                error,
            )
        attempt = Attempt(
            attempt=delivery.attempt,
            started_at=started_at,
            latency_ms=round(latency * 1000),
            status_code=status_code,
            error=error,
            response_excerpt=excerpt,
        )
        return AttemptOutcome(attempt, succeeded=error is None)


def _span_attributes(delivery: ClaimedDelivery) -> dict[str, str | int]:
    try:
        # Neither the query nor credentials in the URL go into a trace.
        shown = str(URL(delivery.url).with_user(None).with_query(None).with_fragment(None))
    except ValueError:
        shown = "(unparseable)"
    return {
        "http.request.method": "POST",
        "url.full": shown,
        "webhook.delivery_id": delivery.delivery_id,
        "webhook.endpoint_id": delivery.endpoint_id,
        "webhook.attempt": delivery.attempt,
        "webhook.event_type": str(delivery.event.get("event_type")),
        "checkout.aggregate_id": delivery.aggregate_id,
    }


OnDisabled = Callable[[WebhookEndpoint], Awaitable[None]]
OnDeadLetter = Callable[[ClaimedDelivery, Attempt], Awaitable[None]]


class WebhookDispatcher:
    def __init__(
        self,
        store: PostgresWebhookStore,
        sender: WebhookSender,
        settings: DispatchSettings,
        *,
        on_dead_letter: OnDeadLetter,
        on_disabled: OnDisabled,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._sender = sender
        self._settings = settings
        self._on_dead_letter = on_dead_letter
        self._on_disabled = on_disabled
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._per_endpoint: Tally[str] = Tally()

    def wake(self) -> None:
        """New deliveries were queued: look now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Dispatch until cancelled; a database outage pauses it, never stops it."""
        try:
            while True:
                try:
                    claimed = await self._claim()
                except Exception:
                    logger.exception("webhook dispatcher: cannot take due deliveries")
                    claimed = []
                    await asyncio.sleep(self._settings.poll_interval * 4)
                for delivery in claimed:
                    self._start(delivery)
                if not claimed or self._free_slots() == 0:
                    await self._idle()
        finally:
            await self._drain()

    async def dispatch_once(self) -> int:
        """One pass: claim what is due and wait for those attempts (tests and benchmarks)."""
        claimed = await self._claim()
        for delivery in claimed:
            self._start(delivery)
        await asyncio.gather(*self._in_flight, return_exceptions=True)
        return len(claimed)

    def _free_slots(self) -> int:
        return self._settings.concurrency - len(self._in_flight)

    async def _claim(self) -> list[ClaimedDelivery]:
        limit = self._settings.endpoint_concurrency
        busy = [endpoint for endpoint, count in self._per_endpoint.items() if count >= limit]
        lease = self._settings.timeout + LEASE_MARGIN_SECONDS
        claimed = await self._store.claim_due(self._free_slots(), lease, busy, limit)
        # An endpoint with attempts already in flight here may have got more than it has room
        # for: those go back at once, to be claimed again when a slot frees.
        kept: list[ClaimedDelivery] = []
        extra: list[str] = []
        counts = Tally(self._per_endpoint)
        for delivery in claimed:
            if counts[delivery.endpoint_id] < limit:
                counts[delivery.endpoint_id] += 1
                kept.append(delivery)
            else:
                extra.append(delivery.delivery_id)
        await self._store.release(extra)
        return kept

    def _start(self, delivery: ClaimedDelivery) -> None:
        self._per_endpoint[delivery.endpoint_id] += 1
        task = asyncio.create_task(self._deliver(delivery), name=f"webhook {delivery.delivery_id}")
        self._in_flight.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            self._in_flight.discard(finished)
            self._per_endpoint[delivery.endpoint_id] -= 1
            if self._per_endpoint[delivery.endpoint_id] <= 0:
                del self._per_endpoint[delivery.endpoint_id]
            self._wake.set()  # a slot is free

        task.add_done_callback(done)

    async def _idle(self) -> None:
        self._wake.clear()
        # asyncio.timeout rather than wait_for: on Python 3.11 wait_for can swallow a
        # cancellation that arrives as the wait ends (see app/adapters/webhooks/replays.py).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._settings.poll_interval):
                await self._wake.wait()

    async def _drain(self) -> None:
        for task in list(self._in_flight):
            task.cancel()
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def _deliver(self, delivery: ClaimedDelivery) -> None:
        try:
            outcome = await self._attempt(delivery)
            await self.settle(delivery, outcome)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The lease runs out and the attempt is made again: logged, never dropped.
            logger.exception("webhook delivery %s: attempt not recorded", delivery.delivery_id)

    async def _attempt(self, delivery: ClaimedDelivery) -> AttemptOutcome:
        if not telemetry.active():
            return await self._sender.attempt(delivery)
        with telemetry.client_span(
            "webhook deliver", delivery.trace_context, _span_attributes(delivery)
        ) as span:
            outcome = await self._sender.attempt(delivery)
            if outcome.attempt.status_code is not None:
                span.set_attribute("http.response.status_code", outcome.attempt.status_code)
            if not outcome.succeeded:
                telemetry.mark_failed(span, outcome.attempt.error)
            return outcome

    async def settle(self, delivery: ClaimedDelivery, outcome: AttemptOutcome) -> str:
        """Record the outcome and decide what comes next."""
        retry_in = None
        if not outcome.succeeded:
            retry_in = next_attempt_delay(
                self._settings.retry_schedule, delivery.attempt, self._rng
            )
        status = await self._store.record_attempt(
            delivery, outcome.attempt, succeeded=outcome.succeeded, retry_in=retry_in
        )
        ATTEMPTS.labels(outcome="retrying" if status == "pending" else status).inc()
        if outcome.succeeded:  # recorded with the endpoint's failures ended
            return status
        if status == "failed":
            await self._on_dead_letter(delivery, outcome.attempt)
        if outcome.platform_fault:
            return status
        failing_since = await self._store.note_failure(
            delivery.endpoint_id, outcome.attempt.started_at
        )
        failing_for = (datetime.now(UTC) - failing_since).total_seconds()
        if failing_for >= self._settings.disable_after:
            disabled = await self._store.disable_failing(delivery.endpoint_id)
            if disabled is not None:
                ENDPOINTS_DISABLED.inc()
                logger.warning(
                    "webhook endpoint %s of merchant %s disabled: failing for %.0f s",
                    disabled.endpoint_id,
                    disabled.merchant_id,
                    failing_for,
                )
                await self._on_disabled(disabled)
        return status


class WebhookDelivery:
    """The worker's sender and dispatcher, opened and closed as a pair (app/bootstrap.py)."""

    def __init__(
        self,
        store: PostgresWebhookStore,
        settings: DispatchSettings,
        *,
        on_dead_letter: OnDeadLetter,
        on_disabled: OnDisabled,
    ) -> None:
        self._sender = WebhookSender(settings.policy, settings.timeout, settings.concurrency)
        self._dispatcher = WebhookDispatcher(
            store,
            self._sender,
            settings,
            on_dead_letter=on_dead_letter,
            on_disabled=on_disabled,
        )
        self._started = asyncio.Event()

    def wake(self) -> None:
        self._dispatcher.wake()

    async def start(self) -> None:
        await self._sender.start()
        self._started.set()

    async def run(self) -> None:
        await self._started.wait()
        await self._dispatcher.run()

    async def stop(self) -> None:
        await self._sender.close()
