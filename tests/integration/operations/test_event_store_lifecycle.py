"""The event store's lifecycle on a PostgreSQL of the test's own (docs/operations.md, "The event
store's lifecycle"): migration 0024 turns a populated event_store into monthly partitions losing
and refolding nothing; the store stays exactly-once and append-only in every partition; a month
without its partition waits in the default partition and moves in when it is made; a month is
archived to an encrypted file by ``checkout events archive`` and restored by ``checkout events
restore``, byte for byte, while the read models' rebuild refuses to run without it.

Each test plants its own months, so any one runs alone.
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import aiopg
import psycopg2
import pytest

from app.adapters.postgres.event_partitions import PostgresEventStoreMonths
from app.adapters.postgres.migrations import MIGRATIONS_DIR, migrate
from app.services import event_store_upkeep
from app.services.event_store_upkeep import EventStoreUpkeep, add_months, month_of
from tests.support.postgres import throwaway_postgres
from tests.support.processes import REPO_ROOT, VENV_BIN

pytestmark = pytest.mark.integration

MERCHANT = "m_lifecycle"
# Events recorded before the upgrade to partitions, by month of recording.
BEFORE_UPGRADE = {"2024-01-10": 3, "2024-02-20": 2}


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Migrated to 0023, given events in three months, then migrated to the end."""
    older = tmp_path_factory.mktemp("migrations")
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if path.name < "0024":
            shutil.copy(path, older)
    with throwaway_postgres() as server:
        migrate(server.url, older)
        for recorded_at, count in BEFORE_UPGRADE.items():
            for _ in range(count):
                record(server.url, recorded_at=recorded_at)
        record(server.url)  # now
        migrate(server.url)
        yield server.url


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    key = tmp_path / "backup.key"
    key.write_text("k" * 64 + "\n")
    key.chmod(0o600)
    return key


def record(
    url: str,
    *,
    recorded_at: str | None = None,
    event_id: str | None = None,
    aggregate_id: str | None = None,
) -> str:
    """Record one InvoiceCreated as the projection does (its recorded_at planted if given)."""
    event_id = event_id or str(uuid.uuid4())
    sql(
        url,
        "INSERT INTO event_store (event_id, event_type, schema_version, aggregate_type,"
        " aggregate_id, aggregate_version, merchant_id, occurred_at, causation_id, payload,"
        " recorded_at)"
        " VALUES (%s, 'InvoiceCreated', 1, 'invoice', %s, 1, %s, '2024-01-01T00:00:00Z', 'cmd',"
        " '{\"data\": {}}', coalesce(%s::timestamptz, now()))",
        event_id,
        aggregate_id or f"inv_{event_id[:12]}",
        MERCHANT,
        recorded_at,
    )
    return event_id


def sql(url: str, statement: str, *values: Any) -> list[tuple[Any, ...]]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(statement, values)
        return cur.fetchall() if cur.description else []


def by_partition(url: str) -> dict[str, int]:
    rows = sql(url, "SELECT tableoid::regclass::text, count(*) FROM event_store GROUP BY 1")
    return dict(rows)


def invoices_created(url: str) -> int:
    rows = sql(url, "SELECT invoices_created FROM merchant_dashboard WHERE merchant_id = %s",
               MERCHANT)  # fmt: skip
    return int(rows[0][0]) if rows else 0


def checkout(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "checkout"), *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": url},
        timeout=120,
        check=False,
    )


def this_month() -> date:
    return month_of(datetime.now(UTC).date())


def test_the_upgrade_keeps_every_event_in_its_month_and_folds_none_again(database: str) -> None:
    partitions = by_partition(database)
    assert partitions["event_store_y2024m01"] == 3
    assert partitions["event_store_y2024m02"] == 2
    assert partitions[f"event_store_y{this_month():%Y}m{this_month():%m}"] >= 1
    seqs = [seq for (seq,) in sql(database, "SELECT seq FROM event_store ORDER BY seq")]
    assert seqs[:6] == [1, 2, 3, 4, 5, 6]  # numbered as before the upgrade
    assert sql(database, "SELECT count(*) FROM event_store_keys")[0][0] >= 6
    # The read models' trigger was created after the copy: 6 events folded once, not twice.
    assert invoices_created(database) == sql(database, "SELECT count(*) FROM event_store")[0][0]
    made = {
        name
        for (name,) in sql(
            database, "SELECT relname FROM pg_class WHERE relname ~ '^event_store_y'"
        )
    }
    for ahead in range(4):  # this month and the next three
        month = add_months(this_month(), ahead)
        assert f"event_store_y{month:%Y}m{month:%m}" in made


def test_a_redelivered_event_is_stored_once_and_a_forked_version_is_refused(
    database: str,
) -> None:
    folded = invoices_created(database)
    event_id = record(database, aggregate_id="inv_redelivered")
    record(database, event_id=event_id, aggregate_id="inv_redelivered")  # redelivered: skipped
    assert sql(database, "SELECT count(*) FROM event_store WHERE event_id = %s", event_id) == [(1,)]
    assert invoices_created(database) == folded + 1
    with pytest.raises(psycopg2.errors.UniqueViolation, match="event_store_aggregate_version_key"):
        record(database, aggregate_id="inv_redelivered")  # another event at a taken version
    assert invoices_created(database) == folded + 1


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE event_store SET event_type = 'InvoiceRefunded'",
        "DELETE FROM event_store_y2024m02",
        "TRUNCATE event_store",
        "TRUNCATE event_store_y2024m02",
        "TRUNCATE event_store_default",
        "DELETE FROM event_store_keys",
        "TRUNCATE event_store_keys",
    ],
)
def test_every_partition_is_append_only(database: str, statement: str) -> None:
    before = by_partition(database)
    with pytest.raises(psycopg2.errors.RestrictViolation, match="append-only"):
        sql(database, statement)
    assert by_partition(database) == before


def test_a_month_without_its_partition_waits_in_the_default_partition_then_moves_in(
    database: str,
) -> None:
    folded = invoices_created(database)
    stray = record(database, recorded_at="2031-05-03T10:00:00Z")
    assert by_partition(database)["event_store_default"] == 1
    gauges = asyncio.run(upkeep(database))
    assert gauges == {"months_ahead": 3, "default_rows": 1}

    assert sql(database, "SELECT event_store_add_partition('2031-05-01')") == [
        ("event_store_y2031m05",)
    ]
    partitions = by_partition(database)
    assert partitions["event_store_y2031m05"] == 1
    assert "event_store_default" not in partitions
    assert sql(database, "SELECT count(*) FROM event_store_keys WHERE event_id = %s", stray) == [
        (1,)
    ]
    assert invoices_created(database) == folded + 1  # moved, not folded again
    assert asyncio.run(upkeep(database))["default_rows"] == 0
    with pytest.raises(psycopg2.errors.RestrictViolation):  # the new month is append-only too
        sql(database, "TRUNCATE event_store_y2031m05")


async def upkeep(url: str) -> dict[str, int]:
    """One tick of the leader's upkeep against ``url``: the gauges it leaves."""
    async with aiopg.create_pool(url, minsize=1, maxsize=1) as pool:
        await EventStoreUpkeep(PostgresEventStoreMonths(pool), 3).run(datetime.now(UTC))
    return {
        "months_ahead": int(event_store_upkeep.MONTHS_AHEAD._value.get()),
        "default_rows": int(event_store_upkeep.DEFAULT_PARTITION_ROWS._value.get()),
    }


def test_a_month_is_archived_to_an_encrypted_file_and_restored_as_it_was(
    database: str, key_file: Path, tmp_path: Path
) -> None:
    for day in ("2023-03-05", "2023-03-30"):
        record(database, recorded_at=day)
    sql(database, "SELECT event_store_add_partition('2023-03-01')")  # moved out of the default
    before = sql(database, "SELECT * FROM event_store_y2023m03 ORDER BY seq")
    archived_id = before[0][0]
    folded = invoices_created(database)

    archive = ["events", "archive", "--month", "2023-03", "--to", str(tmp_path / "archive")]
    archived = checkout(database, *archive, "--key-file", str(key_file), "--yes", "--json")
    assert archived.returncode == 0, archived.stderr
    (answer,) = json.loads(archived.stdout)["archived"]
    file = Path(answer["file"])
    assert (answer["events"], answer["first_seq"], answer["last_seq"]) == (
        2,
        before[0][-1],
        before[1][-1],
    )
    assert file.name == "event_store_2023-03.csv.gz.enc"
    assert not list(file.parent.glob("*.partial"))
    assert "event_store_y2023m03" not in by_partition(database)

    # Readable with openssl and gunzip alone, as docs/operations.md says.
    decrypted = subprocess.run(
        ["openssl", "enc", "-d", "-aes-256-cbc", "-pbkdf2", "-iter", "10000", "-md", "sha256",
         "-pass", f"file:{key_file}", "-in", str(file)],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    plain = gzip.decompress(decrypted).decode()
    rows = list(csv.reader(io.StringIO(plain)))
    assert rows[0][0] == "event_id" and rows[0][-1] == "seq"
    assert [row[0] for row in rows[1:]] == [str(event[0]) for event in before]
    assert b"InvoiceCreated" not in file.read_bytes()  # encrypted at rest

    # Its keys stay: a redelivery of an archived event is still recognised.
    record(database, event_id=str(archived_id))
    assert sql(database, "SELECT count(*) FROM event_store WHERE event_id = %s", archived_id) == [
        (0,)
    ]
    assert invoices_created(database) == folded

    rebuild = checkout(database, "rebuild-read-models")
    assert rebuild.returncode == 2
    assert "2023-03 are archived" in rebuild.stderr

    wrong_key = tmp_path / "wrong.key"
    wrong_key.write_text("not the key\n")
    refused = checkout(database, "events", "restore", "--month", "2023-03",
                       "--key-file", str(wrong_key))  # fmt: skip
    assert refused.returncode == 2 and "cannot be decrypted" in refused.stderr
    tampered = tmp_path / "tampered.enc"
    tampered.write_bytes(file.read_bytes()[:-1] + b"x")
    refused = checkout(database, "events", "restore", "--month", "2023-03", "--file",
                       str(tampered), "--key-file", str(key_file))  # fmt: skip
    assert refused.returncode == 2 and "SHA-256 differs" in refused.stderr
    assert "event_store_y2023m03" not in by_partition(database)

    restored = checkout(database, "events", "restore", "--month", "2023-03",
                        "--key-file", str(key_file), "--json")  # fmt: skip
    assert restored.returncode == 0, restored.stderr
    assert sql(database, "SELECT * FROM event_store_y2023m03 ORDER BY seq") == before
    assert invoices_created(database) == folded  # attached, not folded again
    with pytest.raises(psycopg2.errors.RestrictViolation):
        sql(database, "TRUNCATE event_store_y2023m03")
    assert checkout(database, "rebuild-read-models").returncode == 0
    assert invoices_created(database) == folded  # the rebuild counts every event once
    audit = sql(database, "SELECT action, result FROM audit_log WHERE action LIKE 'cli events %%'"
                          " ORDER BY entry_id")  # fmt: skip
    assert audit == [
        ("cli events archive", "ok"),
        ("cli events restore", "refused"),
        ("cli events restore", "refused"),
        ("cli events restore", "ok"),
    ]


def test_archiving_refuses_a_month_within_the_retention(database: str, key_file: Path) -> None:
    last_month = add_months(this_month(), -1)
    refused = checkout(database, "events", "archive", "--month", f"{last_month:%Y-%m}",
                       "--key-file", str(key_file), "--yes")  # fmt: skip
    assert refused.returncode == 2
    assert "within the retention of 24 months" in refused.stderr
    assert f"event_store_y{this_month():%Y}m{this_month():%m}" in by_partition(database)
