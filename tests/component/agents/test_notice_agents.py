"""The notice agents' handlers (agents/notices.py) beside the webhook agents' on the topic they
share: each intake takes only its own messages, a malformed one is dead-lettered once, a domain
event is fanned out to notices, a notice that failed every attempt is dead-lettered, the
dispatcher loop outlives a failing round, and the daily summaries go out once a day."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

import orjson
import pytest

from agents.notices import NoticeAgents
from agents.webhooks import WebhookAgents
from app.domain.access import Role
from app.domain.events import DomainEvent
from app.domain.invoice import handle_invoice
from app.domain.notifications import Channel, Notice, NoticeMessage, NotificationPreferences
from app.domain.webhooks import Notification
from app.runtime.codecs import decode_notice, encode_notice, encode_notification
from app.runtime.notice_loops import DailySummaryClock, NoticeDispatcherLoop, dead_letter_notice
from app.services.notices import DailySummaries, DispatchOutcome
from app.services.ports import UserRecord
from tests.support.fakes import EPOCH, FakeEvent, MemoryNotices, MemoryWorld
from tests.unit.domain.factories import MERCHANT_ID, confirmed, create_invoice, detected, usdt

pytestmark = pytest.mark.component

EVENTS = "crypto-checkout.domain-events"
NOTIFICATIONS = "crypto-checkout.notifications"


@pytest.fixture
def notice_agents(world: MemoryWorld) -> NoticeAgents:
    services = world.services
    return NoticeAgents(services.notice_fanout, services.notice_intake, world.dead_letters)


@pytest.fixture
def webhook_agents(world: MemoryWorld) -> WebhookAgents:
    services = world.services
    return WebhookAgents(services.webhook_fanout, services.delivery_intake, world.dead_letters)


def notices_of(world: MemoryWorld) -> MemoryNotices:
    store = world.ports.notices
    assert isinstance(store, MemoryNotices)
    return store


async def add_user(
    world: MemoryWorld,
    user_id: str,
    merchant_id: str = MERCHANT_ID,
    *,
    preferences: NotificationPreferences | None = None,
    chat_id: int | None = None,
) -> None:
    await world.users.add_user(
        UserRecord(
            user_id=user_id,
            email=f"{user_id}@shop.example",
            merchant_id=merchant_id,
            role=Role.OWNER,
            created_at=EPOCH,
            email_verified_at=EPOCH,
        )
    )
    if preferences is not None:
        await world.ports.notification_preferences.put(user_id, merchant_id, preferences)
    if chat_id is not None:
        notices_of(world).chats[user_id] = (chat_id, None)


def paid_invoice_events(invoice_id: str = "inv_1") -> list[DomainEvent]:
    """Every event of a 9.99 invoice paid in one payment, the last of them InvoicePaid."""
    invoice, events = handle_invoice(
        None, create_invoice(invoice_id=invoice_id, command_id=f"create-{invoice_id}")
    )
    for command in (
        detected("p1", usdt("9.99"), invoice_id=invoice_id, command_id=f"det-{invoice_id}"),
        confirmed("p1", usdt("9.99"), invoice_id=invoice_id, command_id=f"conf-{invoice_id}"),
    ):
        invoice, made = handle_invoice(invoice, command)
        events += made
    assert events[-1].event_type == "InvoicePaid"
    return list(events)


def as_event(event: DomainEvent) -> FakeEvent:
    return FakeEvent(EVENTS, event.model_dump_json().encode(), key=event.aggregate_id.encode())


def a_delivery(delivery_id: str) -> Notification:
    return Notification(
        delivery_id=delivery_id,
        endpoint_id="we_1",
        merchant_id=MERCHANT_ID,
        origin="local",
        event={"event_id": "e1", "event_type": "InvoicePaid", "aggregate_id": "inv_1"},
    )


async def some_notices(world: MemoryWorld, notice_agents: NoticeAgents) -> list[NoticeMessage]:
    """The notices of a paid invoice to a user who wants it by email and by Telegram."""
    everything = frozenset(Notice)
    await add_user(
        world,
        "usr_owner",
        preferences=NotificationPreferences(
            {Channel.EMAIL: everything, Channel.TELEGRAM: everything}
        ),
        chat_id=4242,
    )
    await notice_agents.fan_out_batch([as_event(paid_invoice_events()[-1])])
    notices = list(world.publisher.notices)
    assert {n.channel for n in notices} == {Channel.EMAIL, Channel.TELEGRAM}
    return notices


# --- the two intakes on one topic ---------------------------------------------------------------


async def test_each_intake_takes_only_its_own_messages_from_the_shared_topic(
    world: MemoryWorld, notice_agents: NoticeAgents, webhook_agents: WebhookAgents
) -> None:
    notices = await some_notices(world, notice_agents)
    named = a_delivery("whd_named")
    legacy = a_delivery("whd_legacy")
    unnamed = orjson.loads(encode_notification(legacy))
    del unnamed["channel"]  # written before channels were named
    batch = [
        FakeEvent(NOTIFICATIONS, encode_notification(named), key=b"inv_1"),
        *[FakeEvent(NOTIFICATIONS, encode_notice(n), key=b"inv_1") for n in notices],
        FakeEvent(NOTIFICATIONS, orjson.dumps(unnamed), key=b"inv_1"),
    ]

    # Both agents read every message of the topic, in either order.
    await notice_agents.take_in_batch(batch)
    await webhook_agents.take_in_batch(batch)

    assert set(world.webhooks.queued) == {"whd_named", "whd_legacy"}
    assert list(notices_of(world).queued) == [n.notice_id for n in notices]
    assert world.dead_letter_topics.records() == []
    assert world.dispatcher.wakes == 1  # the webhook dispatcher
    assert world.ports.notice_dispatcher.wakes == 1  # type: ignore[attr-defined]


async def test_an_intake_with_nothing_of_its_own_does_nothing(
    world: MemoryWorld, notice_agents: NoticeAgents, webhook_agents: WebhookAgents
) -> None:
    notices = await some_notices(world, notice_agents)
    await notice_agents.take_in_batch(
        [FakeEvent(NOTIFICATIONS, encode_notification(a_delivery("whd_1")))]
    )
    await webhook_agents.take_in_batch([FakeEvent(NOTIFICATIONS, encode_notice(notices[0]))])
    assert notices_of(world).queued == {} and world.webhooks.queued == {}
    assert world.webhooks.enqueue_batches == []
    assert world.dead_letter_topics.records() == []


async def test_a_redelivered_notice_is_queued_once(
    world: MemoryWorld, notice_agents: NoticeAgents
) -> None:
    [first, *_] = await some_notices(world, notice_agents)
    again = FakeEvent(NOTIFICATIONS, encode_notice(first))
    await notice_agents.take_in_batch([FakeEvent(NOTIFICATIONS, encode_notice(first)), again])
    await notice_agents.take_in_batch([again])
    assert list(notices_of(world).queued) == [first.notice_id]
    assert world.ports.notice_dispatcher.wakes == 1  # type: ignore[attr-defined]


async def test_a_malformed_message_is_dead_lettered_once_by_the_intake_it_belongs_to(
    world: MemoryWorld, notice_agents: NoticeAgents, webhook_agents: WebhookAgents
) -> None:
    [good, *_] = await some_notices(world, notice_agents)
    too_long = orjson.loads(encode_notice(good))
    too_long["facts"]["reason"] = "x" * 5000
    batch = [
        FakeEvent(NOTIFICATIONS, orjson.dumps(too_long), key=b"inv_1"),  # a notice, refused
        FakeEvent(NOTIFICATIONS, b'{"channel": "fax", "notice_id": "n1"}', key=b"inv_2"),
        FakeEvent(NOTIFICATIONS, b"not json", key=b"inv_3"),  # whose is it? the webhooks' say
        FakeEvent(NOTIFICATIONS, encode_notice(good), key=b"inv_1"),
    ]
    await notice_agents.take_in_batch(batch)
    await webhook_agents.take_in_batch(batch)

    records = world.dead_letter_topics.records(NOTIFICATIONS)
    assert sorted((r["agent"], r["key"]["text"], r["error_type"]) for r in records) == [
        ("delivery_intake_agent", "inv_3", "MalformedMessage"),
        ("notice_intake_agent", "inv_1", "MalformedMessage"),
        ("notice_intake_agent", "inv_2", "MalformedMessage"),
    ]
    assert list(notices_of(world).queued) == [good.notice_id]  # the others go on


# --- fan-out -------------------------------------------------------------------------------------


async def test_an_invoice_paid_event_is_fanned_out_to_notices_and_the_rest_to_none(
    world: MemoryWorld, notice_agents: NoticeAgents
) -> None:
    await add_user(world, "usr_owner", chat_id=4242)  # the defaults: invoice_paid by Telegram
    await add_user(world, "usr_elsewhere", "mer_other", chat_id=5353)
    events = [as_event(e) for e in paid_invoice_events()]
    unreadable = FakeEvent(EVENTS, b'{"event_type": "InvoicePaid", "data": 1', key=b"inv_9")
    # A type that makes no notice is not read further (the other agents dead-letter an unknown one).
    unknown = FakeEvent(EVENTS, b'{"event_type": "InvoiceExploded"}', key=b"inv_8")

    await notice_agents.fan_out_batch([events[0], unreadable, unknown, *events[1:]])

    [notice] = world.publisher.notices
    assert (notice.user_id, notice.channel, notice.about.notice) == (
        "usr_owner",
        Channel.TELEGRAM,
        Notice.INVOICE_PAID,
    )
    assert notice.about.facts["amount"] == "9.99" and notice.key == "inv_1"
    assert decode_notice(encode_notice(notice)) == notice.traced(None)
    [refused] = world.dead_letter_topics.records(EVENTS)
    assert (refused["agent"], refused["key"]["text"]) == ("notice_fanout_agent", "inv_9")


async def test_a_batch_without_notices_publishes_nothing(
    world: MemoryWorld, notice_agents: NoticeAgents
) -> None:
    await add_user(world, "usr_owner", chat_id=4242)
    await notice_agents.fan_out_batch([as_event(paid_invoice_events()[0])])  # InvoiceCreated
    assert world.publisher.notices == []


# --- given up ------------------------------------------------------------------------------------


async def test_a_notice_that_failed_every_attempt_is_dead_lettered_whole(
    world: MemoryWorld, notice_agents: NoticeAgents
) -> None:
    [notice, *_] = await some_notices(world, notice_agents)
    given_up = dead_letter_notice(world.dead_letters, NOTIFICATIONS)

    await given_up(notice, "DependencyUnavailable: the mail server did not take the message")

    [record] = world.dead_letter_topics.records(NOTIFICATIONS)
    assert (record["agent"], record["error_type"], record["key"]["text"]) == (
        "notice_dispatcher",
        "NoticeGivenUp",
        "inv_1",
    )
    assert notice.notice_id in record["error"] and "mail server" in record["error"]
    # Replayable: the value is the notice as the intake reads it.
    assert decode_notice(record["value"]["text"]) == notice.traced(None)


# --- the dispatcher loop -------------------------------------------------------------------------


class ScriptedDispatch:
    """Each round's outcome in turn (an exception is raised), then no notices; ``rounds`` is set
    at every round."""

    def __init__(self, *script: list[DispatchOutcome] | BaseException) -> None:
        self.script = list(script)
        self.count = 0
        self.rounds = asyncio.Event()

    async def dispatch_due(self) -> list[DispatchOutcome]:
        self.count += 1
        self.rounds.set()
        step = self.script.pop(0) if self.script else []
        if isinstance(step, BaseException):
            raise step
        return step

    async def next_round(self) -> None:
        self.rounds.clear()
        await asyncio.wait_for(self.rounds.wait(), timeout=5)


async def test_the_dispatcher_loop_outlives_a_failing_round(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sent = [DispatchOutcome("n1", Channel.EMAIL, "sent")]
    dispatch = ScriptedDispatch(OSError("PostgreSQL is restarting"), sent)
    loop = NoticeDispatcherLoop(dispatch, poll_interval=0.01)  # type: ignore[arg-type]
    running = asyncio.create_task(loop.run())
    try:
        while dispatch.count < 4:  # the failure, the notice, at once another, then a poll
            await dispatch.next_round()
    finally:
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
    assert "a round failed" in caplog.text


async def test_the_dispatcher_loop_is_woken_when_notices_are_queued() -> None:
    dispatch = ScriptedDispatch()
    loop = NoticeDispatcherLoop(dispatch, poll_interval=60.0)  # type: ignore[arg-type]
    running = asyncio.create_task(loop.run())
    try:
        await dispatch.next_round()  # the first look, then it waits up to a minute
        dispatch.rounds.clear()
        loop.wake()
        await asyncio.wait_for(dispatch.rounds.wait(), timeout=5)  # long before the minute
    finally:
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
    assert dispatch.count == 2


# --- the daily summary clock ---------------------------------------------------------------------


class CountingSummaries:
    def __init__(self) -> None:
        self.days: list[date] = []

    async def send_for(self, day: date) -> int:
        self.days.append(day)
        return 3


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2024, 5, day, hour, minute, tzinfo=UTC)


async def test_the_daily_summaries_go_out_once_a_day_after_the_hour() -> None:
    summaries = CountingSummaries()
    clock = DailySummaryClock(summaries, hour=7)  # type: ignore[arg-type]

    assert await clock.tick(at(6, 0, 1)) == 0
    assert await clock.tick(at(6, 6, 59)) == 0  # not before the hour
    assert await clock.tick(at(6, 7, 0)) == 3  # yesterday's
    assert await clock.tick(at(6, 7, 1)) == 0
    assert await clock.tick(at(6, 23, 59)) == 0
    assert await clock.tick(at(7, 3)) == 0
    assert await clock.tick(at(7, 9)) == 3
    assert summaries.days == [date(2024, 5, 5), date(2024, 5, 6)]


async def test_the_clock_publishes_the_summaries_of_the_users_who_chose_them(
    world: MemoryWorld,
) -> None:
    await add_user(
        world,
        "usr_owner",
        preferences=NotificationPreferences({Channel.EMAIL: frozenset({Notice.DAILY_SUMMARY})}),
    )
    await add_user(world, "usr_dev", chat_id=4242)  # the defaults: no summary
    summaries = DailySummaries(
        world.ports.notices, world.ports.reports, world.services.notice_fanout
    )
    clock = DailySummaryClock(summaries, hour=7)

    assert await clock.tick(at(6, 8)) == 1
    assert await clock.tick(at(6, 9)) == 0
    [summary] = world.publisher.notices
    assert (summary.user_id, summary.channel) == ("usr_owner", Channel.EMAIL)
    assert summary.about.facts["date"] == "2024-05-05"
    assert summary.about.occurred_at == at(6, 0)

    # A new leader the same day publishes again, with the same notice ids: queued once.
    again = DailySummaryClock(summaries, hour=7)
    assert await again.tick(at(6, 10)) == 1
    first, repeated = world.publisher.notices
    assert first.notice_id == repeated.notice_id
    assert len(await world.services.notice_intake.accept_batch(world.publisher.notices)) == 1
