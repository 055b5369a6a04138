"""`checkout signer` as its own process on the real Kafka: it answers signing requests on the
signatures topic, refuses what its policy forbids, gives the same answer after a kill -9 and a
restart, and no key material reaches Kafka or its log."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from app.adapters.signer.kafka import request_body
from app.adapters.signer.keys import FileKeys, dev_keys
from app.adapters.tron.deposit_addresses import derive_deposit_address
from app.adapters.tron.settings import DEV_XPUB
from app.domain.signing import Purpose, Wanted
from app.services.signer import SigningRequest
from app.settings import Settings
from tests.component.signer.test_signer import CUSTOMER, USDT, raw_usdt_transfer
from tests.support.platform import delete_namespace_topics
from tests.support.processes import REPO_ROOT, VENV_BIN, ManagedProcess

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("infrastructure")]

SERVERS = Settings.from_env().kafka_bootstrap_servers


@pytest.fixture
def namespace() -> Iterator[str]:
    name = f"t{uuid.uuid4().hex[:10]}"

    async def create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=SERVERS)
        await admin.start()
        try:
            await admin.create_topics(
                [NewTopic(f"{name}.checkout.{t}", 3, 1) for t in ("signing-requests", "signatures")]
            )
        finally:
            await admin.close()

    asyncio.run(create())
    yield name
    delete_namespace_topics(name)


def start_signer(namespace: str, log: Path) -> ManagedProcess:
    env = {
        "CHECKOUT_APP_ID": namespace,
        "CHECKOUT_TOPIC_NAMESPACE": namespace,
        "SIGNER_LOG_FILE": str(log),
        "SIGNER_LIMITS": "payout=1000:1500,refund=10:10,sweep=1000:1000,sweep_topup=30:300",
    }
    return ManagedProcess("signer", [str(VENV_BIN / "checkout"), "signer"], env, REPO_ROOT)


def send(namespace: str, requests: list[SigningRequest]) -> None:
    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=SERVERS, acks="all")
        await producer.start()
        try:
            for request in requests:
                await producer.send_and_wait(
                    f"{namespace}.checkout.signing-requests",
                    orjson.dumps(request_body(request)),
                    key=request.request_id.encode(),
                )
        finally:
            await producer.stop()

    asyncio.run(produce())


def answers(
    namespace: str,
    expected: int,
    timeout: float = 60,
    until: Callable[[list[dict[str, Any]]], bool] | None = None,
) -> list[dict[str, Any]]:
    """The answers on the signatures topic from the start: ``expected`` of them, or (``until``)
    as many as it takes for ``until`` to hold."""
    done = until or (lambda found: len(found) >= expected)

    async def consume() -> list[dict[str, Any]]:
        consumer = AIOKafkaConsumer(
            f"{namespace}.checkout.signatures",
            bootstrap_servers=SERVERS,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        found: list[dict[str, Any]] = []
        try:
            deadline = asyncio.get_running_loop().time() + timeout
            while not done(found) and asyncio.get_running_loop().time() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                found += [orjson.loads(m.value) for ms in batch.values() for m in ms]
        finally:
            await consumer.stop()
        return found

    return asyncio.run(consume())


def payout(keys: FileKeys, request_id: str, amount: int, to: str = CUSTOMER) -> SigningRequest:
    return SigningRequest(
        request_id,
        "hot_wallet",
        Wanted(Purpose.PAYOUT, "trc20", to, amount, USDT),
        # Valid for a minute from now: the signer checks expiry against its own clock.
        raw_usdt_transfer(keys.hot_wallet, to, amount, now_ms=int(time.time() * 1000)),
    )


def test_the_signer_process_answers_refuses_and_survives_a_kill(
    namespace: str, tmp_path: Path
) -> None:
    hot, xprv = dev_keys()
    keys = FileKeys(hot, xprv, expected_xpub=DEV_XPUB)
    log = tmp_path / "signed.jsonl"
    signer = start_signer(namespace, log)
    try:
        send(
            namespace,
            [
                payout(keys, "ok", 600_000_000),
                payout(keys, "too-much", 1_000_000_001),
                payout(keys, "ours", 5_000_000, to=derive_deposit_address(DEV_XPUB, 2)),
                # The request asks for 5.00 USDT; the transaction it carries moves 500.00.
                SigningRequest(
                    "mismatch",
                    "hot_wallet",
                    Wanted(Purpose.PAYOUT, "trc20", CUSTOMER, 5_000_000, USDT),
                    raw_usdt_transfer(
                        keys.hot_wallet, CUSTOMER, 500_000_000, now_ms=int(time.time() * 1000)
                    ),
                ),
            ],
        )
        got = {a["request_id"]: a for a in answers(namespace, 4)}
        assert set(got) == {"ok", "too-much", "ours", "mismatch"}, signer.log_tail()
        assert got["mismatch"]["refused"] == "decoded_mismatch"
        assert got["mismatch"]["signature"] is None
        assert got["ok"]["signature"] and got["ok"]["refused"] is None
        assert got["too-much"]["refused"] == "limit_per_transaction"
        assert got["ours"]["refused"] == "destination_is_ours"

        os.kill(signer.process.pid, signal.SIGKILL)
        signer.stop()
        signer = start_signer(namespace, log)
        send(namespace, [payout(keys, "ok", 600_000_000)])  # redelivered after the crash

        def oks(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [a for a in found if a["request_id"] == "ok"]

        # Killed before it committed its last offsets, the signer answers those requests again
        # first (from its log, the same answers): wait for the second "ok", however many come.
        again = oks(answers(namespace, 0, until=lambda found: len(oks(found)) >= 2))
        assert len(again) == 2 and again[0] == again[1]  # the same signature, not a new one
    finally:
        signer.stop()

    # No key material anywhere the signer wrote: its log, its answers, its own output.
    secrets = [hot.hex(), xprv]
    published = answers(namespace, 0, timeout=5, until=lambda found: False)
    written = log.read_text() + orjson.dumps(published).decode() + signer.log_tail(500)
    assert not [secret for secret in secrets if secret in written]
