"""``checkout webhooks retry``: send failed webhook deliveries again (docs/webhooks.md).

A delivery fails for good after its retry schedule (about three days); the merchant can
redeliver one at a time from the API or the dashboard. After an incident — theirs or ours — the
operator retries them in bulk: every failed delivery of one endpoint, or of every endpoint since
a time. Each becomes a new delivery (``origin: redelivery``, ``redelivery_of`` the failed one)
with the same event, so receivers deduplicate it on ``event_id``; the original's log is kept.
Only the last delivery of a chain is retried, and a retry's id is derived from the failed
delivery's, so running the command twice queues nothing twice.

Deliveries to a disabled endpoint are skipped unless ``--enable`` re-enables it (the operator
says the receiver is fixed); those of a deleted endpoint always are.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, Final

import click

from app.adapters.kafka.operations import KafkaOperations
from app.adapters.postgres.audit_log import PostgresAuditLog
from app.adapters.postgres.webhook_store import FailedDelivery, PostgresWebhookStore
from app.adapters.webhooks.config import keyring
from app.domain.webhooks import Notification, retry_delivery_id
from app.runtime.cli_support import (
    TIME_FORMATS,
    as_utc,
    database,
    json_option,
    operator_entry,
    print_json,
    refuse,
)
from app.runtime.codecs import encode_notification
from app.runtime.topics import NOTIFICATIONS, topic_name
from app.settings import Settings

MAX_RETRY: Final = 50_000


def webhooks_group(settings: Settings) -> click.Group:
    @click.group(name="webhooks")
    def webhooks() -> None:
        """Webhook deliveries (docs/webhooks.md)."""

    @webhooks.command(name="retry")
    @click.option("--endpoint", default=None, help="Every failed delivery of this endpoint.")
    @click.option(
        "--since",
        type=click.DateTime(TIME_FORMATS),
        default=None,
        help="Everything failed since (UTC unless an offset is given).",
    )
    @click.option("--until", type=click.DateTime(TIME_FORMATS), default=None, help="…and before.")
    @click.option("--merchant", default=None, help="Only this merchant's deliveries.")
    @click.option("--enable", is_flag=True, help="Re-enable disabled endpoints and retry them.")
    @click.option("--limit", type=click.IntRange(1, MAX_RETRY), default=10_000, show_default=True)
    @click.option("--dry-run", is_flag=True, help="Say what would be retried; queue nothing.")
    @json_option
    def retry(
        endpoint: str | None,
        since: datetime | None,
        until: datetime | None,
        merchant: str | None,
        enable: bool,
        limit: int,
        dry_run: bool,
        as_json: bool,
    ) -> None:
        """Queue failed deliveries again, as new deliveries of the same events."""
        if endpoint is None and since is None:
            refuse("webhooks retry", "give --endpoint or --since (or both)")
        asyncio.run(
            _retry(
                settings,
                endpoint=endpoint,
                merchant=merchant,
                since=as_utc(since),
                until=as_utc(until),
                enable=enable,
                limit=limit,
                dry_run=dry_run,
                as_json=as_json,
            )
        )

    return webhooks


async def _retry(
    settings: Settings,
    *,
    endpoint: str | None,
    merchant: str | None,
    since: datetime | None,
    until: datetime | None,
    enable: bool,
    limit: int,
    dry_run: bool,
    as_json: bool,
) -> None:
    command = "webhooks retry"
    async with database(settings, maxsize=2) as pool:
        store = PostgresWebhookStore(pool, keyring(settings), settings.app_id)
        failed = await store.failed_for_retry(
            endpoint_id=endpoint, merchant_id=merchant, since=since, until=until, limit=limit
        )
        queued: list[Notification] = []
        skipped: list[dict[str, Any]] = []
        enabled: set[str] = set()
        for delivery in failed:
            reason = await _blocked(store, delivery, enable, dry_run, enabled)
            if reason is not None:
                skipped.append({"delivery_id": delivery.delivery_id, "reason": reason})
                continue
            notification = Notification(
                delivery_id=retry_delivery_id(delivery.delivery_id),
                endpoint_id=delivery.endpoint_id,
                merchant_id=delivery.merchant_id,
                origin="redelivery",
                event=delivery.event,
                redelivery_of=delivery.delivery_id,
            )
            if dry_run or await store.enqueue(notification):
                queued.append(notification)
        if queued and not dry_run:
            # Every delivery is also a record on crypto-checkout.notifications (docs/events.md);
            # the workers' intake finds these queued already. The dispatchers pick them up
            # from PostgreSQL at their next poll.
            async with KafkaOperations(settings.kafka_bootstrap_servers) as kafka:
                await kafka.produce(
                    topic_name(NOTIFICATIONS, settings.topic_namespace),
                    [(n.key, encode_notification(n), []) for n in queued],
                )
            await PostgresAuditLog(pool).append(
                operator_entry(
                    command,
                    "ok",
                    merchant_id=merchant,
                    target_id=endpoint or f"since {since}",
                    details={"queued": len(queued), "skipped": len(skipped)},
                )
            )
    retried = [
        {
            "delivery_id": n.delivery_id,
            "redelivery_of": n.redelivery_of,
            "endpoint_id": n.endpoint_id,
            "event_id": n.event.get("event_id"),
            "event_type": n.event.get("event_type"),
        }
        for n in queued
    ]
    if as_json:
        print_json(
            {
                "dry_run": dry_run,
                "queued": retried,
                "skipped": skipped,
                "endpoints_enabled": sorted(enabled),
                "more": len(failed) >= limit,
            }
        )
        return
    verb = "would queue" if dry_run else "queued"
    for item in retried:
        print(f"{verb} {item['delivery_id']} (retry of {item['redelivery_of']})")
    for item in skipped:
        print(f"skipped {item['delivery_id']}: {item['reason']}")
    for endpoint_id in sorted(enabled):
        print(f"re-enabled endpoint {endpoint_id}")
    print(f"{len(queued)} deliveries {verb}, {len(skipped)} skipped")


async def _blocked(
    store: PostgresWebhookStore,
    delivery: FailedDelivery,
    enable: bool,
    dry_run: bool,
    enabled: set[str],
) -> str | None:
    """Why this delivery cannot be retried now, or None (re-enabling its endpoint if asked)."""
    if delivery.endpoint_deleted:
        return f"endpoint {delivery.endpoint_id} was deleted"
    if delivery.endpoint_enabled or delivery.endpoint_id in enabled:
        return None
    if not enable:
        return f"endpoint {delivery.endpoint_id} is disabled: --enable to re-enable it and retry"
    if not dry_run:
        await store.update_endpoint(delivery.merchant_id, delivery.endpoint_id, {"enabled": True})
    enabled.add(delivery.endpoint_id)
    return None
