"""A scan for private key material (docs/money-out.md, "The signer": no key, no xprv, no derived
private key in any message or log line). It looks for the development mnemonic's private material
— the hot wallet's key, the deposit account's xprv and key, the deposit addresses' keys of the
indexes given, the master key and seed, and the mnemonic's words, in hex and base64 — in every
message of a set of Kafka topics, every row of every table in PostgreSQL, every key and value in
Redis, and files. Each finding names the place and the secret."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import psycopg2
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from bip_utils import Bip39SeedGenerator, Bip44, Bip44Changes, Bip44Coins
from psycopg2 import sql

from app.adapters.signer.keys import DEV_MNEMONIC, dev_keys, hot_wallet_address
from app.adapters.tron.deposit_addresses import derive_deposit_address
from app.adapters.tron.settings import DEV_HOT_WALLET, DEV_XPUB
from app.settings import Settings

SETTINGS: Final = Settings.from_env()
CHUNK: Final = 32 * 1024 * 1024
# A secret's name → the byte strings that would reveal it.
Needles = Mapping[str, tuple[bytes, ...]]
# Where a secret was found, and which.
Finding = tuple[str, str]


# --- what is looked for -----------------------------------------------------------------------


def key_material(deposit_indexes: Iterable[int]) -> dict[str, tuple[bytes, ...]]:
    """The development mnemonic's private material, each secret in the forms that reveal it."""
    hot, xprv = dev_keys()
    assert hot_wallet_address(hot) == DEV_HOT_WALLET  # the key the signer signs payouts with
    seed = Bip39SeedGenerator(DEV_MNEMONIC).Generate()
    master = Bip44.FromSeed(seed, Bip44Coins.TRON)
    account = Bip44.FromExtendedKey(xprv, Bip44Coins.TRON)
    keys = {
        "hot wallet key": hot,
        "deposit account key": account.PrivateKey().Raw().ToBytes(),
        "master key": master.PrivateKey().Raw().ToBytes(),
    }
    deposits = account.Change(Bip44Changes.CHAIN_EXT)
    for index in sorted(set(deposit_indexes)):
        deposit = deposits.AddressIndex(index)
        assert deposit.PublicKey().ToAddress() == derive_deposit_address(DEV_XPUB, index)
        keys[f"deposit key {index}"] = deposit.PrivateKey().Raw().ToBytes()
    needles: dict[str, tuple[bytes, ...]] = {}
    for name, key in keys.items():
        needles[f"{name} (hex)"] = (key.hex().encode(), key.hex().upper().encode())
        forms = {base64.b64encode(key), base64.urlsafe_b64encode(key)}
        needles[f"{name} (base64)"] = tuple(form.rstrip(b"=") for form in forms)
    needles["deposit account xprv"] = (xprv.encode(),)
    needles["master xprv"] = (master.PrivateKey().ToExtended().encode(),)
    needles["seed (hex)"] = (seed.hex().encode(), seed.hex().upper().encode())
    needles["mnemonic"] = (DEV_MNEMONIC.encode(),)
    return needles


def revealed(document: bytes | bytearray, needles: Needles) -> set[str]:
    return {name for name, forms in needles.items() if any(form in document for form in forms)}


class ChunkedSearch:
    """A COPY's output searched 32 MiB at a time, each chunk overlapping the last by the longest
    needle: a table of a gigabyte is never held whole."""

    def __init__(self, needles: Needles) -> None:
        self._needles = needles
        self._overlap = max(len(form) for forms in needles.values() for form in forms)
        self._buffer = bytearray()
        self.found: set[str] = set()
        self.size = 0

    def write(self, data: bytes) -> None:
        self._buffer += data
        self.size += len(data)
        if len(self._buffer) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        self.found |= revealed(self._buffer, self._needles)
        del self._buffer[: max(0, len(self._buffer) - self._overlap)]


# --- where it is looked for ---------------------------------------------------------------------


def scan_postgres(conn: Any, needles: Needles) -> tuple[set[Finding], int, int]:
    """Every row of every table (all schemas, and this session's temporary tables), dumped with
    COPY. Returns the findings, the number of tables and of bytes read."""
    findings: set[Finding] = set()
    read = 0
    with conn.cursor() as cur:
        cur.execute(
            "SELECT n.nspname, c.relname FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
            " AND n.nspname NOT LIKE 'pg\\_toast%%'"
            " AND (n.nspname NOT LIKE 'pg\\_temp\\_%%' OR n.oid = pg_my_temp_schema())"
            " ORDER BY 1, 2"
        )
        tables = cur.fetchall()
        for schema, table in tables:
            search = ChunkedSearch(needles)
            copy = sql.SQL("COPY (SELECT * FROM {}.{}) TO STDOUT").format(
                sql.Identifier(schema), sql.Identifier(table)
            )
            try:
                cur.copy_expert(copy.as_string(conn), search)
            except psycopg2.errors.UndefinedTable:
                continue  # dropped meanwhile (another test's scratch schema)
            search.flush()
            read += search.size
            findings |= {(f"postgres {schema}.{table}", name) for name in search.found}
    return findings, len(tables), read


def scan_redis(needles: Needles) -> tuple[set[Finding], int]:
    """Every key of every database, with its value whatever its type."""
    findings: set[Finding] = set()
    keys = 0
    databases = redis.Redis.from_url(SETTINGS.redis_url).info("keyspace")
    for database in databases:
        number = str(database).removeprefix("db")
        client = redis.Redis.from_url(urlsplit(SETTINGS.redis_url)._replace(path=number).geturl())
        for key in client.scan_iter(count=1000):
            keys += 1
            document = bytearray(key)
            for part in redis_value(client, key):
                document += b"\n" + part
            place = f"redis {database} {key.decode(errors='replace')}"
            findings |= {(place, name) for name in revealed(document, needles)}
    return findings, keys


def redis_value(client: redis.Redis, key: bytes) -> list[bytes]:
    kind = client.type(key)
    parts: Iterable[Any]
    if kind == b"string":
        parts = [client.get(key)]
    elif kind == b"hash":
        parts = [item for pair in client.hgetall(key).items() for item in pair]
    elif kind == b"list":
        parts = client.lrange(key, 0, -1)
    elif kind == b"set":
        parts = client.smembers(key)
    elif kind == b"zset":
        parts = client.zrange(key, 0, -1)
    elif kind == b"stream":
        entries: Any = client.xrange(key)
        parts = [item for _, fields in entries for pair in fields.items() for item in pair]
    else:  # gone meanwhile (b"none"), or a module's type: its serialized form
        parts = [client.dump(key)]
    return [part for part in parts if isinstance(part, bytes)]


async def scan_kafka(prefixes: tuple[str, ...], needles: Needles) -> tuple[set[Finding], int, int]:
    """Every message (key, value, headers) of every topic whose name starts with ``prefixes``,
    from the beginning, aborted transactions included."""
    admin = AIOKafkaAdminClient(bootstrap_servers=SETTINGS.kafka_bootstrap_servers)
    await admin.start()
    try:
        topics = sorted(name for name in await admin.list_topics() if name.startswith(prefixes))
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    partitions = [
        TopicPartition(topic["topic"], partition["partition"])
        for topic in described
        for partition in topic["partitions"]
    ]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=SETTINGS.kafka_bootstrap_servers,
        enable_auto_commit=False,
        isolation_level="read_uncommitted",
    )
    await consumer.start()
    documents = {topic: bytearray() for topic in topics}
    messages = 0
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        waiting = set(partitions)
        deadline = time.monotonic() + 120
        while waiting and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for partition, records in batches.items():
                for record in records:
                    messages += 1
                    document = documents[partition.topic]
                    for part in (record.key, record.value, *(v for _, v in record.headers)):
                        document += b"\n" + (part or b"")
            waiting = {tp for tp in waiting if await consumer.position(tp) < ends[tp]}
        assert not waiting, f"could not read {sorted(waiting)} to their end"
    finally:
        await consumer.stop()
    findings = {
        (f"kafka {topic}", name)
        for topic, document in documents.items()
        for name in revealed(document, needles)
    }
    return findings, len(topics), messages


def scan_files(paths: Iterable[Path], needles: Needles) -> set[Finding]:
    return {
        (f"file {path}", name) for path in paths for name in revealed(path.read_bytes(), needles)
    }


# --- a positive control --------------------------------------------------------------------


async def plant_in_kafka(topic: str, value: bytes) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=SETTINGS.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=SETTINGS.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b'{"note": "' + value + b'"}', key=b"control")
    finally:
        await producer.stop()


def deposit_indexes(merchant_id: str, invoice_ids: Iterable[str]) -> set[int]:
    """The deposit addresses' indexes of a merchant's invoices (and of ``invoice_ids``, in case
    the read model has not caught up with them)."""
    with psycopg2.connect(SETTINGS.database_url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT d.derivation_index FROM deposit_addresses d"
            " LEFT JOIN invoice_summaries s USING (invoice_id)"
            " WHERE s.merchant_id = %s OR d.invoice_id = ANY(%s)",
            (merchant_id, list(invoice_ids)),
        )
        return {int(row[0]) for row in cur.fetchall()}
