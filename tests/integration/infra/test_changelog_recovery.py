"""A RocksDB-backed Faust table survives the loss of its worker's disk: it is rebuilt from its
changelog topic on the real broker, with the same values and nothing counted twice."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.support.processes import REPO_ROOT, ManagedProcess, eventually, free_port, wait_http_ok

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("infrastructure")]

ACCOUNTS = [f"acct-{i}" for i in range(10)]


async def create_topic(topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers="127.0.0.1:9092")
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, replication_factor=1)])
    finally:
        await admin.close()


async def produce_deposits(topic: str, count: int) -> dict[str, int]:
    expected: dict[str, int] = dict.fromkeys(ACCOUNTS, 0)
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9092", acks="all")
    await producer.start()
    try:
        for i in range(count):
            account = ACCOUNTS[i % len(ACCOUNTS)]
            amount = 1_000 + i  # distinct amounts: a replayed message would show in the sum
            expected[account] += amount
            await producer.send(topic, key=account.encode(), value=json.dumps(amount).encode())
        await producer.flush()
    finally:
        await producer.stop()
    return expected


def start_worker(env: dict[str, str]) -> ManagedProcess:
    argv = [
        sys.executable,
        "-m",
        "faust",
        "-A",
        "tests.integration.infra.changelog_app",
        "worker",
        "-l",
        "info",
    ]
    proc = ManagedProcess("changelog-worker", argv, env, REPO_ROOT)
    wait_http_ok(f"http://127.0.0.1:{env['WEB_PORT']}/totals", proc)
    return proc


def totals_when(port: int, expected: dict[str, int], proc: ManagedProcess) -> dict[str, int]:
    def probe() -> dict[str, int] | None:
        body = httpx.get(f"http://127.0.0.1:{port}/totals", timeout=2).json()
        return body["totals"] if body["recovered"] and body["totals"] == expected else None

    try:
        return eventually(probe, timeout=90, what="the table to hold the expected totals")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- worker log ---\n{proc.log_tail()}") from None


def rocksdb_files(datadir: Path) -> list[Path]:
    return list(datadir.rglob("CURRENT"))


def test_table_is_rebuilt_from_its_changelog_after_the_state_folder_is_deleted(
    tmp_path: Path,
) -> None:
    run = uuid.uuid4().hex[:10]
    datadir = tmp_path / "worker-state"
    env = {
        "TEST_APP_ID": f"test-changelog-{run}",
        "TEST_TOPIC": f"test-deposits-{run}",
        "TEST_DATADIR": str(datadir),
        "WEB_PORT": str(free_port()),
    }
    port = int(env["WEB_PORT"])
    asyncio.run(create_topic(env["TEST_TOPIC"], partitions=4))

    first = start_worker(env)
    try:
        expected = asyncio.run(produce_deposits(env["TEST_TOPIC"], 200))
        before = totals_when(port, expected, first)
    finally:
        assert first.stop() == 0, first.log_tail()
    assert rocksdb_files(datadir), "the table was not stored in RocksDB"

    shutil.rmtree(datadir)

    second = start_worker(env)
    try:
        after = totals_when(port, expected, second)
        assert after == before
        assert sum(after.values()) == sum(1_000 + i for i in range(200))
    finally:
        second.stop()
    assert rocksdb_files(datadir), "the rebuilt table is not in RocksDB"
