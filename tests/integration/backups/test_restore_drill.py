"""The restore drill (docs/operations.md, "Backups and recovery"), on the real stack.

A platform (one worker, the Tron simulator, Kafka) runs on a PostgreSQL of the test's own that
archives its WAL the way ``scripts/infra.sh`` configures the local one. Invoices are paid and
settled (phase A); ``scripts/backup.sh`` takes an encrypted base backup while the platform runs;
more are paid (phase B); the moment T is noted; more are paid (phase C) and their WAL reaches the
archive. Then the database is destroyed — the server killed, its data directory deleted — and
``scripts/restore.sh --to T`` brings it back in a new directory on another port: A and B are
there, C is not, ``checkout ledger reconcile --settlements-only`` finds the ledger and the
settlements equal, and ``checkout rebuild-read-models`` changes no row of the read models. A
second restore, to the end of the archive, has C as well: what reached the archive is what a
lost server can cost, at most ``archive_timeout`` of commits (the RPO). The time the restore
took is the RTO's technical part; both are printed (run with ``-s``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from app.adapters.postgres.migrations import migrate
from tests.support.platform import Platform, running_platform
from tests.support.postgres import ThrowawayPostgres, pg_tool, throwaway_postgres
from tests.support.processes import REPO_ROOT, VENV_BIN, eventually, free_port

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("infrastructure")]

# The local cluster switches segments every 60 s at most (PG_ARCHIVE_TIMEOUT); the drill uses 10 s
# so that waiting for phase C to reach the archive stays short. The RPO is this setting.
ARCHIVE_TIMEOUT = 10
READ_MODELS = (
    "invoice_summaries",
    "merchant_dashboard",
    "daily_settlement_metrics",
    "payment_confirmation_stats",
    "platform_revenue_daily",
    "read_model_invoices",
    "payment_timings",
)


def owned_temp_dir(prefix: str) -> Path:
    """A directory the PostgreSQL server's user owns (tests run as root or as that user)."""
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    return directory


@dataclass
class Archive:
    directory: Path

    @property
    def key(self) -> Path:
        return self.directory / "backup.key"

    @property
    def env(self) -> dict[str, str]:
        return {"BACKUP_DIR": str(self.directory), "BACKUP_ENCRYPTION_KEY_FILE": str(self.key)}

    def server_settings(self) -> dict[str, str]:
        """What scripts/infra.sh passes to the local cluster (postgres_archiving)."""
        command = REPO_ROOT / "scripts" / "backup" / "archive-wal.sh"
        return {
            "wal_level": "replica",
            "archive_mode": "on",
            "archive_timeout": str(ARCHIVE_TIMEOUT),
            "archive_command": f'"{command}" "%p" "%f" "{self.directory / "wal"}" "{self.key}"',
        }


@pytest.fixture
def archive() -> Iterator[Archive]:
    directory = owned_temp_dir("checkout-backups-")
    for sub in ("wal", "base"):
        (directory / sub).mkdir()
    key = directory / "backup.key"
    key.write_bytes(
        subprocess.run(["openssl", "rand", "-base64", "48"], capture_output=True, check=True).stdout
    )
    key.chmod(0o600)
    if os.geteuid() == 0:
        for path in (directory / "wal", directory / "base", key):
            shutil.chown(path, "postgres", "postgres")
    try:
        yield Archive(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def script(name: str, *args: str, env: dict[str, str]) -> dict[str, Any]:
    """Run scripts/<name> and return the JSON line it ends with."""
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / name), *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def query(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        rows = list(cur.fetchall())
    conn.close()
    return rows


def pay(platform: Platform, amounts: list[str]) -> list[str]:
    """Invoices for ``amounts``, paid in one mined block and settled; their ids."""
    invoices = [platform.create_invoice(amount) for amount in amounts]
    transfers = [
        {"to": invoice["deposit_address"], "amount": amount}
        for invoice, amount in zip(invoices, amounts, strict=True)
    ]
    platform.sim.post("/sim/transfers", {"transfers": transfers, "mine": True})
    for invoice in invoices:
        platform.wait_settlement(invoice["id"])
    return [str(invoice["id"]) for invoice in invoices]


def wait_projected(url: str, invoice_ids: list[str]) -> None:
    """The projection has folded the invoices as paid (event store and read models together)."""
    eventually(
        lambda: (
            query(
                url,
                "SELECT count(*) FROM invoice_summaries"
                " WHERE invoice_id = ANY(%s) AND status = 'paid'",
                invoice_ids,
            )[0][0]
            == len(invoice_ids)
        ),
        timeout=60,
        what=f"{len(invoice_ids)} invoices projected as paid",
    )


def read_models(url: str) -> dict[str, list[str]]:
    """Every row of every read model, comparable across a rebuild."""
    return {
        table: sorted(repr(row) for row in query(url, f"SELECT * FROM public.{table}"))  # noqa: S608
        for table in READ_MODELS
    }


def cli(env: dict[str, str], *args: str) -> dict[str, Any]:
    result = subprocess.run(
        [str(VENV_BIN / "checkout"), *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"checkout {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


@dataclass
class Restored:
    url: str
    report: dict[str, Any]
    seconds: float


@pytest.fixture
def restore(archive: Archive) -> Iterator[Any]:
    """``restore(--to …)`` runs scripts/restore.sh into a new directory; stopped afterwards."""
    made: list[Path] = []

    def run(*args: str) -> Restored:
        directory = owned_temp_dir("checkout-restore-")
        made.append(directory)
        port = free_port()
        started = time.monotonic()
        report = script(
            "restore.sh",
            *args,
            "--target",
            str(directory / "data"),
            "--port",
            str(port),
            env=archive.env,
        )
        return Restored(
            f"postgresql://postgres@127.0.0.1:{port}/postgres", report, time.monotonic() - started
        )

    try:
        yield run
    finally:
        for directory in made:
            if (directory / "data" / "postmaster.pid").exists():
                subprocess.run(
                    _as_owner(
                        [
                            str(pg_tool("pg_ctl")),
                            "-D",
                            str(directory / "data"),
                            "-m",
                            "immediate",
                            "-w",
                            "stop",
                        ]
                    ),
                    capture_output=True,
                    timeout=60,
                    check=False,
                )
            shutil.rmtree(directory, ignore_errors=True)


def _as_owner(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def destroy(database: ThrowawayPostgres) -> None:
    """The disaster: the server dies on the spot and its data directory is gone."""
    subprocess.run(
        _as_owner(
            [str(pg_tool("pg_ctl")), "-D", str(database.data), "-m", "immediate", "-w", "stop"]
        ),
        capture_output=True,
        timeout=60,
        check=True,
    )
    shutil.rmtree(database.data)


def wait_archived(url: str) -> float:
    """Seconds until the WAL written so far is in the archive (archive_timeout switches to a
    new segment; the archiver then copies the full one)."""
    started = time.monotonic()
    segment = query(url, "SELECT pg_walfile_name(pg_current_wal_lsn())")[0][0]
    eventually(
        lambda: (
            (query(url, "SELECT last_archived_wal FROM pg_stat_archiver")[0][0] or "") >= segment
        ),
        timeout=ARCHIVE_TIMEOUT * 3 + 30,
        what=f"WAL segment {segment} in the archive",
        every=0.5,
    )
    return time.monotonic() - started


def settled(url: str, invoice_ids: list[str]) -> int:
    return int(
        query(url, "SELECT count(*) FROM settlements WHERE invoice_id = ANY(%s)", invoice_ids)[0][0]
    )


def test_backup_destroy_and_restore_to_a_point_in_time_keeps_the_books_consistent(
    archive: Archive, restore: Any, tmp_path: Path
) -> None:
    drill_started = time.monotonic()
    with throwaway_postgres(archive.server_settings()) as database:
        migrate(database.url)
        with running_platform(tmp_path, workers=1, DATABASE_URL=database.url) as platform:
            env = dict(platform.env)
            phase_a = pay(platform, ["10.25", "20.50", "99.99"])

            backup = script(
                "backup.sh",
                env={
                    **archive.env,
                    "PGHOST": str(database.directory),
                    "PGPORT": str(database.port),
                    "PGUSER": "postgres",
                },
            )
            assert backup["encrypted"] is True and backup["verified"] is True
            base = Path(backup["backup"])
            assert sorted(path.name for path in base.iterdir()) == [
                "backup.json",
                "backup_manifest.enc",
                next(p.name for p in base.glob("base.tar.*.enc")),
            ]
            assert next(base.glob("base.tar.*.enc")).read_bytes()[:8] == b"Salted__"  # openssl enc

            lsn_before_b = query(database.url, "SELECT pg_current_wal_lsn()::text")[0][0]
            phase_b = pay(platform, ["11.11", "42.00", "7.77"])
            wait_projected(database.url, phase_a + phase_b)
            wal_per_invoice = query(
                database.url, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", lsn_before_b
            )[0][0] / len(phase_b)
            target = query(database.url, "SELECT clock_timestamp()::text")[0][0]
            time.sleep(1.0)
            phase_c = pay(platform, ["5.55", "66.60", "12.34"])
            wait_projected(database.url, phase_c)
            archived_after = wait_archived(database.url)
            ledger_before = query(
                database.url, "SELECT count(*), coalesce(sum(amount), 0) FROM ledger_entries"
            )[0]
        destroy(database)

        assert all(path.name.endswith(".gz.enc") for path in (archive.directory / "wal").iterdir())

        to_t = restore("--to", target)
        assert query(
            to_t.url,
            "SELECT %s::timestamptz <= %s::timestamptz",
            to_t.report["recovered_to"],
            target,
        ) == [(True,)]
        assert to_t.report["timeline"] == 2  # a new history branches at T
        assert settled(to_t.url, phase_a + phase_b) == 6
        assert settled(to_t.url, phase_c) == 0
        assert query(
            to_t.url, "SELECT count(*) FROM event_store WHERE aggregate_id = ANY(%s)", phase_c
        ) == [(0,)]
        assert query(
            to_t.url,
            "SELECT count(*) FROM invoice_summaries WHERE invoice_id = ANY(%s) AND status = 'paid'",
            phase_a + phase_b,
        ) == [(6,)]
        # The books: every settlement booked once, every currency's entries summing to zero.
        assert query(
            to_t.url,
            "SELECT count(*) FROM settlements s WHERE NOT EXISTS (SELECT 1 FROM"
            " ledger_transactions t WHERE t.kind = 'settlement' AND t.reference = s.settlement_id)",
        ) == [(0,)]
        assert (
            query(
                to_t.url,
                "SELECT currency, sum(amount) FROM ledger_entries GROUP BY 1 HAVING"
                " sum(amount) <> 0",
            )
            == []
        )
        restored_env = {**env, "DATABASE_URL": to_t.url}
        reconciled = cli(restored_env, "ledger", "reconcile", "--settlements-only", "--json")
        assert reconciled["reconciled"] is True, reconciled
        before = read_models(to_t.url)
        cli(restored_env, "rebuild-read-models")
        assert read_models(to_t.url) == before  # the read models are the event store's fold

        latest = restore()
        assert settled(latest.url, phase_a + phase_b + phase_c) == 9
        assert query(
            latest.url, "SELECT count(*), coalesce(sum(amount), 0) FROM ledger_entries"
        ) == [ledger_before]
        reconciled = cli(
            {**env, "DATABASE_URL": latest.url},
            "ledger",
            "reconcile",
            "--settlements-only",
            "--json",
        )
        assert reconciled["reconciled"] is True, reconciled

    wal_files = len(list((archive.directory / "wal").iterdir()))
    print(
        "\nrestore drill:"
        f"\n  base backup: {backup['seconds']} s, {backup['data_bytes']} bytes of data,"
        f" {backup['stored_bytes']} stored (compressed, encrypted); WAL archive: {wal_files} files"
        f"\n  WAL written per paid invoice (with the platform's background writes):"
        f" {wal_per_invoice / 1024:.0f} KiB"
        f"\n  RPO: archive_timeout {ARCHIVE_TIMEOUT} s here (60 s on the local cluster);"
        f" phase C reached the archive {archived_after:.1f} s after it settled"
        f"\n  RTO (restore.sh, decrypt + extract + verify + replay + promote):"
        f" to T {to_t.seconds:.1f} s (script: {to_t.report['seconds']:.1f} s),"
        f" to the end of the archive {latest.seconds:.1f} s"
        f"\n  recovered to {to_t.report['recovered_to']} for T = {target};"
        f" drill {time.monotonic() - drill_started:.0f} s in all"
    )
    assert to_t.seconds < 300  # the seeds' RTO is an hour; this database takes seconds
