"""The notices' services (app/services/notices.py) over in-memory ports: a domain event fanned
out to each merchant user and channel that wants it, queued once, sent with per-channel retries
and outcomes, the daily summaries, and linking a Telegram chat."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pytest

from app.domain.access import ROLE_SCOPES, Principal, Role
from app.domain.events import DomainEvent
from app.domain.invoice import handle_invoice
from app.domain.merchant import Merchant
from app.domain.notifications import (
    RETRY_SCHEDULES,
    Channel,
    Notice,
    NoticeFacts,
    NoticeMessage,
    NotificationPreferences,
)
from app.services.errors import DependencyUnavailable, NoticeRejected
from app.services.notices import (
    DailySummaries,
    NoticeDispatch,
    NoticeFanout,
    NoticeSender,
    TelegramLinkNeedsAUser,
    TelegramLinks,
    TelegramNotLinked,
    summary_facts,
)
from app.services.ports import ClaimedNotice, UserRecord
from tests.support.fakes import (
    EPOCH,
    MERCHANT,
    MemoryNotices,
    MemoryWorld,
    RecordingMailer,
    memory_world,
)
from tests.unit.domain.factories import confirmed, create_invoice, detected, usdt

pytestmark = pytest.mark.component

SHOP = MERCHANT.merchant_id
OTHER = "mer_other"
NUMBER = "+4915112345678"


@pytest.fixture
def world() -> MemoryWorld:
    return memory_world()


def notices_of(world: MemoryWorld) -> MemoryNotices:
    store = world.ports.notices
    assert isinstance(store, MemoryNotices)
    return store


async def add_user(
    world: MemoryWorld,
    user_id: str,
    merchant_id: str = SHOP,
    *,
    role: Role = Role.OWNER,
    verified: bool = True,
    disabled: bool = False,
    preferences: NotificationPreferences | None = None,
    chat_id: int | None = None,
) -> UserRecord:
    user = UserRecord(
        user_id=user_id,
        email=f"{user_id}@shop.example",
        merchant_id=merchant_id,
        role=role,
        created_at=EPOCH,
        password_hash="not used here",
        disabled_at=EPOCH if disabled else None,
        email_verified_at=EPOCH if verified else None,
    )
    await world.users.add_user(user)
    if preferences is not None:
        await world.ports.notification_preferences.put(user_id, merchant_id, preferences)
    if chat_id is not None:
        notices_of(world).chats[user_id] = (chat_id, f"tg_{user_id}")
    return user


def everything(*, sms: bool = True) -> NotificationPreferences:
    channels = {channel: frozenset(Notice) for channel in Channel}
    if not sms:
        channels[Channel.SMS] = frozenset()
    return NotificationPreferences(channels, NUMBER if sms else None)


def invoice_paid(received: str, merchant_id: str = SHOP) -> DomainEvent:
    """The InvoicePaid of a 9.99 invoice paid ``received`` in one payment."""
    invoice, _ = handle_invoice(
        None, create_invoice(command_id=f"create-{merchant_id}", merchant_id=merchant_id)
    )
    events: list[DomainEvent] = []
    amount = usdt(received)
    for command in (
        detected("p1", amount, command_id="detected-1"),
        confirmed("p1", amount, command_id="confirmed-1"),
    ):
        invoice, made = handle_invoice(invoice, command)
        events += made
    assert events[-1].event_type == "InvoicePaid"
    return events[-1]


# Paid 12 for 9.99: invoice_paid and payment_exception (overpaid), from one event.
OVERPAID = invoice_paid("12")
PAID = invoice_paid("9.99")


def raw(event: DomainEvent) -> bytes:
    return event.model_dump_json().encode()


def addressed(messages: Sequence[NoticeMessage]) -> set[tuple[str, Channel, Notice]]:
    return {(m.user_id, m.channel, m.about.notice) for m in messages}


# --- fan-out -------------------------------------------------------------------------------------


async def test_an_event_is_fanned_out_to_each_user_and_channel_that_wants_it(
    world: MemoryWorld,
) -> None:
    await add_user(world, "usr_owner", chat_id=111)  # the defaults, a chat linked
    await add_user(
        world,
        "usr_dev",
        role=Role.DEVELOPER,
        preferences=NotificationPreferences(
            {
                Channel.EMAIL: frozenset({Notice.INVOICE_PAID}),
                Channel.TELEGRAM: frozenset(Notice),  # no chat linked: nothing
                Channel.SMS: frozenset({Notice.INVOICE_PAID}),
            },
            NUMBER,
        ),
    )
    await add_user(world, "usr_unverified", verified=False, preferences=everything(sms=False))
    await add_user(world, "usr_gone", disabled=True, preferences=everything(), chat_id=222)
    await add_user(world, "usr_elsewhere", OTHER, preferences=everything(), chat_id=333)

    messages = await world.services.notice_fanout.notices_for(raw(OVERPAID))

    assert addressed(messages) == {
        # The defaults: by email what needs a person, by Telegram everything.
        ("usr_owner", Channel.EMAIL, Notice.PAYMENT_EXCEPTION),
        ("usr_owner", Channel.TELEGRAM, Notice.INVOICE_PAID),
        ("usr_owner", Channel.TELEGRAM, Notice.PAYMENT_EXCEPTION),
        ("usr_dev", Channel.EMAIL, Notice.INVOICE_PAID),  # SMS is off on this platform
    }
    assert {m.about.merchant_id for m in messages} == {SHOP}
    assert {m.key for m in messages} == {"inv_1"}

    # With SMS on, the developer's number gets the notice it chose.
    sms_on = NoticeFanout(world.ports.notices, world.publisher, sms_enabled=True)
    with_sms = await sms_on.notices_for(raw(OVERPAID))
    assert addressed(with_sms) - addressed(messages) == {
        ("usr_dev", Channel.SMS, Notice.INVOICE_PAID)
    }


async def test_a_redelivered_event_names_the_same_notices(world: MemoryWorld) -> None:
    await add_user(world, "usr_owner", chat_id=111)
    fanout = world.services.notice_fanout
    first = await fanout.notices_for(raw(PAID))
    again = await fanout.notices_for(raw(PAID))
    assert first and [m.notice_id for m in first] == [m.notice_id for m in again]


async def test_a_merchant_without_users_or_an_event_without_notices_makes_nothing(
    world: MemoryWorld,
) -> None:
    await add_user(world, "usr_elsewhere", OTHER, preferences=everything(), chat_id=333)
    fanout = world.services.notice_fanout
    assert await fanout.notices_for(raw(OVERPAID)) == []  # the shop has no users yet
    await add_user(world, "usr_owner", preferences=everything(), chat_id=111)
    _, [created] = handle_invoice(None, create_invoice(merchant_id=SHOP))
    assert await fanout.notices_for(raw(created)) == []  # InvoiceCreated tells nobody


async def test_an_unreadable_event_is_an_error(world: MemoryWorld) -> None:
    fanout = world.services.notice_fanout
    with pytest.raises(ValueError):  # not JSON: the agent dead-letters it
        await fanout.notices_for(b'{"event_type": "InvoicePaid"')
    with pytest.raises(ValueError):  # pydantic's ValidationError: the agent dead-letters it
        await fanout.notices_for(b'{"event_type": "InvoicePaid", "data": {}}')


async def test_an_event_that_makes_no_notice_is_not_read_further(world: MemoryWorld) -> None:
    # Detections, confirmations counted, creations: most of the stream makes no notice. (An
    # unknown type is the other agents' to dead-letter; this one has nothing to say about it.)
    fanout = world.services.notice_fanout
    assert await fanout.notices_for(b'{"event_type": "PaymentDetected", "data": "?"}') == []
    assert await fanout.notices_for(b'{"event_type": "InvoiceExploded"}') == []


async def test_published_notices_go_to_the_publisher_in_order(world: MemoryWorld) -> None:
    await add_user(world, "usr_owner", chat_id=111)
    fanout = world.services.notice_fanout
    messages = await fanout.notices_for(raw(OVERPAID))
    await fanout.publish(messages)
    assert world.publisher.notices == messages


# --- intake --------------------------------------------------------------------------------------


async def test_each_notice_is_queued_once_and_the_dispatcher_woken_for_new_ones(
    world: MemoryWorld,
) -> None:
    await add_user(world, "usr_owner", chat_id=111)
    await add_user(world, "usr_dev", role=Role.DEVELOPER, preferences=everything(), chat_id=222)
    messages = await world.services.notice_fanout.notices_for(raw(PAID))
    intake = world.services.notice_intake

    assert len(await intake.accept_batch(messages)) == 3  # the owner's chat, the developer's two
    assert await intake.accept_batch(messages) == []  # Kafka delivered them again
    assert await intake.accept_batch([*messages[:1], *messages[:1]]) == []
    assert list(notices_of(world).queued) == [m.notice_id for m in messages]
    assert world.ports.notice_dispatcher.wakes == 1  # type: ignore[attr-defined]


async def test_two_notices_of_one_event_to_one_chat_are_both_queued(world: MemoryWorld) -> None:
    await add_user(world, "usr_owner", chat_id=111)
    messages = await world.services.notice_fanout.notices_for(raw(OVERPAID))
    in_chat = [m for m in messages if m.channel is Channel.TELEGRAM]
    assert {m.about.notice for m in in_chat} == {Notice.INVOICE_PAID, Notice.PAYMENT_EXCEPTION}
    assert len(await world.services.notice_intake.accept_batch(in_chat)) == 2
    assert len(notices_of(world).queued) == 2


# --- sending -------------------------------------------------------------------------------------


@dataclass
class ScriptedStore:
    """The ``NoticeStore`` calls the dispatch makes: hands out ``due`` once, records the rest."""

    due: list[ClaimedNotice]
    finished: dict[str, tuple[str, dict[str, str | None]]] = field(default_factory=dict)
    retries: dict[str, tuple[float, str]] = field(default_factory=dict)
    claims: list[tuple[int, float]] = field(default_factory=list)

    async def claim_due(self, limit: int, lease_seconds: float) -> list[ClaimedNotice]:
        self.claims.append((limit, lease_seconds))
        due, self.due = self.due[:limit], self.due[limit:]
        return due

    async def finish(
        self,
        notice_id: str,
        status: str,
        *,
        sent_to: str | None = None,
        provider_id: str | None = None,
        error: str | None = None,
    ) -> None:
        assert notice_id not in self.finished, "a notice is finished once"
        self.finished[notice_id] = (
            status,
            {"sent_to": sent_to, "provider_id": provider_id, "error": error},
        )

    async def retry_later(self, notice_id: str, delay_seconds: float, error: str) -> None:
        self.retries[notice_id] = (delay_seconds, error)


@dataclass
class ScriptedChannel:
    """A Telegram bot or an SMS provider: raises what ``failures`` holds, else takes it."""

    failures: list[BaseException] = field(default_factory=list)
    sent: list[tuple[object, str]] = field(default_factory=list)

    async def _take(self, to: object, text: str) -> str:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append((to, text))
        return f"provider_{len(self.sent)}"

    async def send_text(self, chat_id: int, html: str) -> str:
        return await self._take(chat_id, html)

    async def send(self, to: str, body: str) -> str:
        return await self._take(to, body)


@dataclass
class GivenUp:
    notices: list[tuple[NoticeMessage, str]] = field(default_factory=list)

    async def __call__(self, notice: NoticeMessage, error: str) -> None:
        self.notices.append((notice, error))


PAYOUT_FAILED = NoticeFacts(
    notice=Notice.PAYOUT_FINISHED,
    subject_id="po_1",
    source_id="evt_payout_failed",
    merchant_id=SHOP,
    occurred_at=EPOCH,
    facts={"payout_id": "po_1", "amount": "120", "outcome": "failed", "reason": "no energy"},
)
ADDRESSES = {Channel.EMAIL: "owner@shop.example", Channel.TELEGRAM: "4242", Channel.SMS: NUMBER}


def claimed(
    channel: Channel,
    attempt: int = 1,
    *,
    user_id: str = "usr_owner",
    address: str | None = "",
    about: NoticeFacts = PAYOUT_FAILED,
) -> ClaimedNotice:
    message = NoticeMessage.to(user_id, channel, about)
    return ClaimedNotice(
        message, attempt, ADDRESSES[channel] if address == "" else address, "Test Shop"
    )


@dataclass
class Sending:
    store: ScriptedStore
    mailer: RecordingMailer
    telegram: ScriptedChannel
    sms: ScriptedChannel
    given_up: GivenUp
    dispatch: NoticeDispatch


def sending(*due: ClaimedNotice, telegram_on: bool = True) -> Sending:
    store = ScriptedStore(list(due))
    mailer, telegram, sms, given_up = (
        RecordingMailer(),
        ScriptedChannel(),
        ScriptedChannel(),
        GivenUp(),
    )
    sender = NoticeSender(
        mailer,
        telegram if telegram_on else None,
        sms,
        public_url="https://pay.example.com/",
        support_email="support@pay.example.com",
    )
    dispatch = NoticeDispatch(store, sender, on_given_up=given_up)  # type: ignore[arg-type]
    return Sending(store, mailer, telegram, sms, given_up, dispatch)


def outcomes(found: Sequence[object]) -> dict[str, str]:
    return {o.notice_id: o.outcome for o in found}  # type: ignore[attr-defined]


async def test_a_notice_is_sent_by_its_channel_to_the_address_found_now() -> None:
    email, chat, sms = claimed(Channel.EMAIL), claimed(Channel.TELEGRAM), claimed(Channel.SMS)
    s = sending(email, chat, sms)

    found = await s.dispatch.dispatch_due()

    assert outcomes(found) == {c.message.notice_id: "sent" for c in (email, chat, sms)}
    [mail] = s.mailer.sent
    assert mail.to == "owner@shop.example" and "Payout of 120 USDT failed" in mail.subject
    assert "https://pay.example.com/dashboard/payouts" in mail.text  # no double slash
    assert [(to, "120 USDT" in text) for to, text in s.telegram.sent] == [(4242, True)]
    assert [to for to, _ in s.sms.sent] == [NUMBER]
    assert s.store.finished[chat.message.notice_id] == (
        "sent",
        {"sent_to": "4242", "provider_id": "provider_1", "error": None},
    )
    assert s.store.finished[email.message.notice_id][1]["sent_to"] == "owner@shop.example"
    assert s.store.retries == {} and s.given_up.notices == []
    assert s.store.claims == [(50, 60.0)]


@pytest.mark.parametrize("channel", list(Channel))
async def test_a_channel_that_is_down_is_retried_on_its_schedule(channel: Channel) -> None:
    schedule = RETRY_SCHEDULES[channel]
    for attempt in (1, 2, len(schedule)):
        due = claimed(channel, attempt)
        s = sending(due)
        s.mailer.failing = True
        s.telegram.failures = [DependencyUnavailable("Telegram asks to wait 5 s")]
        s.sms.failures = [DependencyUnavailable("Twilio answered 503")]

        [outcome] = await s.dispatch.dispatch_due()

        assert (outcome.outcome, outcome.channel) == ("retrying", channel)
        delay, error = s.store.retries[due.message.notice_id]
        assert delay == schedule[attempt - 1]
        assert error.startswith("DependencyUnavailable: ")
        assert s.store.finished == {} and s.given_up.notices == []


@pytest.mark.parametrize("error", [OSError("connection reset"), TimeoutError()])
async def test_a_network_error_is_retried_like_a_channel_that_is_down(
    error: BaseException,
) -> None:
    due = claimed(Channel.TELEGRAM)
    s = sending(due)
    s.telegram.failures = [error]
    [outcome] = await s.dispatch.dispatch_due()
    assert outcome.outcome == "retrying"
    assert s.store.retries[due.message.notice_id][0] == RETRY_SCHEDULES[Channel.TELEGRAM][0]


@pytest.mark.parametrize("channel", list(Channel))
async def test_after_the_last_attempt_a_notice_fails_and_is_given_up(channel: Channel) -> None:
    due = claimed(channel, len(RETRY_SCHEDULES[channel]) + 1)
    s = sending(due)
    s.mailer.failing = True
    s.telegram.failures = [DependencyUnavailable("Bot API 502")]
    s.sms.failures = [DependencyUnavailable("Twilio answered 503")]

    [outcome] = await s.dispatch.dispatch_due()

    assert outcome.outcome == "failed"
    status, details = s.store.finished[due.message.notice_id]
    assert status == "failed" and (details["error"] or "").startswith("DependencyUnavailable")
    assert s.store.retries == {}
    [(notice, error)] = s.given_up.notices
    assert notice == due.message and error == details["error"]


async def test_a_refusal_for_good_is_not_retried() -> None:
    chat, sms = claimed(Channel.TELEGRAM), claimed(Channel.SMS)
    s = sending(chat, sms)
    s.telegram.failures = [NoticeRejected("Telegram refused: bot was blocked by the user")]
    s.sms.failures = [NoticeRejected("Twilio: not a valid phone number")]

    found = await s.dispatch.dispatch_due()

    assert outcomes(found) == {
        chat.message.notice_id: "rejected",
        sms.message.notice_id: "rejected",
    }
    assert s.store.finished[chat.message.notice_id] == (
        "rejected",
        {"sent_to": None, "provider_id": None,
         "error": "Telegram refused: bot was blocked by the user"},
    )  # fmt: skip
    assert s.store.retries == {} and s.given_up.notices == []


async def test_a_notice_with_nowhere_to_go_is_skipped_without_sending() -> None:
    due = claimed(Channel.TELEGRAM, address=None)  # the chat was unlinked since
    s = sending(due)
    [outcome] = await s.dispatch.dispatch_due()
    assert outcome.outcome == "skipped"
    assert s.store.finished[due.message.notice_id][0] == "skipped"
    assert s.telegram.sent == [] and s.store.retries == {}


async def test_a_telegram_notice_while_the_bot_is_off_is_rejected() -> None:
    due = claimed(Channel.TELEGRAM)
    s = sending(due, telegram_on=False)
    [outcome] = await s.dispatch.dispatch_due()
    assert outcome.outcome == "rejected"
    assert "TELEGRAM_MODE" in (s.store.finished[due.message.notice_id][1]["error"] or "")


async def test_a_round_takes_at_most_a_batch() -> None:
    due = [claimed(Channel.EMAIL, user_id=f"usr_{n}") for n in range(60)]
    s = sending(*due)
    assert len(await s.dispatch.dispatch_due()) == 50
    assert len(await s.dispatch.dispatch_due()) == 10
    assert len(s.mailer.sent) == 60


async def test_an_unexpected_error_in_one_notice_does_not_sink_the_round() -> None:
    broken = claimed(Channel.TELEGRAM, address="not-a-chat-id")
    fine = claimed(Channel.EMAIL)
    s = sending(broken, fine)
    found = await s.dispatch.dispatch_due()
    assert outcomes(found)[fine.message.notice_id] == "sent"
    assert outcomes(found)[broken.message.notice_id] in {"rejected", "failed"}


# --- the daily summary ---------------------------------------------------------------------------

DAY = date(2024, 5, 5)


def test_a_days_figures_become_a_summary_and_a_quiet_day_zeros() -> None:
    row = {
        "day": DAY,
        "gross_volume": usdt("120.5"),
        "fees": usdt("1.205"),
        "net_volume": usdt("119.295"),
        "settlements": 9,
        "invoices_created": 12,
        "invoices_paid": 9,
        "invoices_expired": 3,
    }
    facts = summary_facts(SHOP, DAY, row)
    assert facts.notice is Notice.DAILY_SUMMARY
    assert (facts.subject_id, facts.merchant_id) == (SHOP, SHOP)
    assert facts.source_id == f"daily_summary/{SHOP}/2024-05-05"
    assert facts.occurred_at == datetime(2024, 5, 6, tzinfo=UTC)  # the day's end
    assert facts.facts["paid_gross"] == "120.5"
    assert facts.facts["platform_fees"] == "1.205"
    assert facts.facts["settled_net"] == "119.295"
    assert (facts.facts["invoices_paid"], facts.facts["invoices_created"]) == ("9", "12")
    quiet = summary_facts(SHOP, DAY, None)
    assert quiet.facts["paid_gross"] == "0" and quiet.facts["invoices_paid"] == "0"
    assert quiet.source_id == facts.source_id


async def test_a_daily_summary_can_be_sent() -> None:
    summary = summary_facts(SHOP, DAY, None)
    due = claimed(Channel.EMAIL, about=summary)
    s = sending(due)
    [outcome] = await s.dispatch.dispatch_due()
    assert outcome.outcome == "sent"
    assert "Daily summary 2024-05-05" in s.mailer.sent[0].subject


async def test_the_summaries_go_to_the_users_who_chose_them_once_per_day(
    world: MemoryWorld,
) -> None:
    summaries_only = NotificationPreferences(
        {Channel.EMAIL: frozenset({Notice.DAILY_SUMMARY}), Channel.TELEGRAM: frozenset()}
    )
    await add_user(world, "usr_owner", preferences=summaries_only)
    await add_user(world, "usr_dev", role=Role.DEVELOPER, chat_id=111)  # defaults: no summary
    await add_user(world, "usr_elsewhere", OTHER, preferences=summaries_only)
    reports = world.ports.reports
    reports.days[SHOP] = [  # type: ignore[attr-defined]
        {"day": DAY, "gross_volume": usdt("9.99"), "fees": usdt("0.0999"),
         "net_volume": usdt("9.8901"), "settlements": 1, "invoices_created": 2,
         "invoices_paid": 1, "invoices_expired": 0},
    ]  # fmt: skip
    summaries = DailySummaries(world.ports.notices, reports, world.services.notice_fanout)

    sent = await summaries.send_for(DAY)

    assert sent == 2
    by_merchant = {m.about.merchant_id: m for m in world.publisher.notices}
    assert addressed(world.publisher.notices) == {
        ("usr_owner", Channel.EMAIL, Notice.DAILY_SUMMARY),
        ("usr_elsewhere", Channel.EMAIL, Notice.DAILY_SUMMARY),
    }
    assert by_merchant[SHOP].about.facts["paid_gross"] == "9.99"
    assert by_merchant[OTHER].about.facts["paid_gross"] == "0"  # a quiet day
    again = await summaries.for_day(DAY)
    assert {m.notice_id for m in again} == {m.notice_id for m in world.publisher.notices}
    next_day = await summaries.for_day(DAY + timedelta(days=1))
    assert not {m.notice_id for m in next_day} & {m.notice_id for m in again}


# --- linking a Telegram chat ---------------------------------------------------------------------


def user_principal(user: UserRecord, merchant: Merchant = MERCHANT) -> Principal:
    return Principal(
        kind="user",
        actor_id=user.user_id,
        merchant=merchant,
        role=user.role,
        scopes=ROLE_SCOPES[user.role],
    )


API_KEY = Principal(
    kind="api_key",
    actor_id="key_1",
    merchant=MERCHANT,
    role=None,
    scopes=ROLE_SCOPES[Role.OWNER],
)
ADMIN = Principal(
    kind="user", actor_id="usr_admin", merchant=None, role=Role.ADMIN, scopes=frozenset()
)


async def test_a_link_is_offered_used_once_and_undone(world: MemoryWorld) -> None:
    user = await add_user(world, "usr_owner")
    links = world.services.telegram_links
    principal = user_principal(user)
    now = datetime.now(UTC)

    offer = await links.offer(principal, now)
    assert offer.expires_at == now + timedelta(minutes=30)
    assert offer.deep_link is None  # no bot name configured
    assert 1 <= len(offer.token) <= 64 and offer.token.replace("-", "").replace("_", "").isalnum()
    assert await links.status(principal) is None

    linked = await links.link(offer.token, 4242, "shopkeeper")
    assert linked is not None
    assert (linked.user_id, linked.merchant_id, linked.chat_id) == ("usr_owner", SHOP, 4242)
    # A chat acting as the user is in the merchant's audit log.
    [audited] = [e for e in world.audit_log.entries_written if e.action == "telegram chat linked"]
    assert (audited.merchant_id, audited.actor_id, audited.target_id) == (SHOP, "usr_owner", "4242")
    assert audited.details == {"telegram_username": "shopkeeper"}
    assert await links.link(offer.token, 5353, "intruder") is None  # once only
    chat_user = await links.chat_user(4242)
    assert chat_user is not None and chat_user.user_id == "usr_owner"
    assert await links.chat_user(5353) is None
    status = await links.status(principal)
    assert status is not None and (status["chat_id"], status["username"]) == (4242, "shopkeeper")

    await links.unlink(principal)
    assert await links.status(principal) is None and await links.chat_user(4242) is None
    with pytest.raises(TelegramNotLinked):
        await links.unlink(principal)


async def test_the_deep_link_names_the_bot(world: MemoryWorld) -> None:
    user = await add_user(world, "usr_owner")
    links = TelegramLinks(world.ports.notices, world.audit_log, bot_username="checkout_bot")
    offer = await links.offer(user_principal(user), datetime.now(UTC))
    assert offer.deep_link == f"https://t.me/checkout_bot?start={offer.token}"


async def test_an_expired_or_unknown_token_links_nothing(world: MemoryWorld) -> None:
    user = await add_user(world, "usr_owner")
    links = world.services.telegram_links
    offer = await links.offer(user_principal(user), datetime.now(UTC) - timedelta(minutes=31))
    assert await links.link(offer.token, 4242, None) is None
    assert await links.link("no-such-token", 4242, None) is None
    assert await links.chat_user(4242) is None


async def test_a_chat_linked_again_belongs_to_the_last_user(world: MemoryWorld) -> None:
    owner = await add_user(world, "usr_owner")
    dev = await add_user(world, "usr_dev", role=Role.DEVELOPER)
    links = world.services.telegram_links
    for user in (owner, dev):
        offer = await links.offer(user_principal(user), datetime.now(UTC))
        assert await links.link(offer.token, 4242, None) is not None
    chat_user = await links.chat_user(4242)
    assert chat_user is not None and chat_user.user_id == "usr_dev"
    assert await links.status(user_principal(owner)) is None


@pytest.mark.parametrize("principal", [API_KEY, ADMIN], ids=["api_key", "admin"])
async def test_only_a_merchants_user_links_a_chat(world: MemoryWorld, principal: Principal) -> None:
    links = world.services.telegram_links
    with pytest.raises(TelegramLinkNeedsAUser) as refused:
        await links.offer(principal, datetime.now(UTC))
    assert refused.value.code == "telegram_link_needs_a_user"
    with pytest.raises(TelegramLinkNeedsAUser):
        await links.status(principal)
    with pytest.raises(TelegramLinkNeedsAUser):
        await links.unlink(principal)
    assert notices_of(world).tokens == {}
