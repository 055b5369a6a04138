"""Apply the SQL migrations in ``migrations/`` in name order, each once.

Every file runs in its own transaction and is recorded in ``schema_migrations`` with a checksum of
its text. A file that was applied and later edited is refused: fix forward with a new file, since
production databases already ran the old text.

    python -m app.adapters.postgres.migrations [--database-url URL]     (default: $DATABASE_URL)

Synchronous on purpose (psycopg2, which aiopg wraps): it runs from scripts and the CLI, never
inside an agent or a view.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg2

# The repository's migrations/ folder; an installed copy (the Docker image) points elsewhere.
MIGRATIONS_DIR = Path(
    os.environ.get("CHECKOUT_MIGRATIONS_DIR", Path(__file__).resolve().parents[3] / "migrations")
)
DEFAULT_DATABASE_URL = "postgresql://checkout:checkout@127.0.0.1:5432/checkout"

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name        text PRIMARY KEY,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(Exception):
    """A migration could not be applied, or an applied one was edited."""


@dataclass(frozen=True)
class Migration:
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    return [Migration(path.name, path.read_text()) for path in sorted(directory.glob("*.sql"))]


def migrate(database_url: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply what is missing; return the names applied now."""
    applied_now: list[str] = []
    with psycopg2.connect(database_url) as conn:
        with conn.cursor() as cur:
            # One runner at a time: two workers starting together must not both apply a file.
            cur.execute("SELECT pg_advisory_lock(hashtext('crypto-checkout schema_migrations'))")
            cur.execute(_CREATE_LEDGER)
            conn.commit()
            cur.execute("SELECT name, checksum FROM schema_migrations")
            done = dict(cur.fetchall())
        for migration in discover(directory):
            if migration.name in done:
                if done[migration.name] != migration.checksum:
                    raise MigrationError(
                        f"{migration.name} was applied and has since been edited; "
                        "add a new migration instead of changing an applied one"
                    )
                continue
            try:
                with conn.cursor() as cur:
                    cur.execute(migration.sql)
                    cur.execute(
                        "INSERT INTO schema_migrations (name, checksum) VALUES (%s, %s)",
                        (migration.name, migration.checksum),
                    )
                conn.commit()
            except psycopg2.Error as exc:
                conn.rollback()
                raise MigrationError(f"{migration.name} failed: {exc}".strip()) from exc
            applied_now.append(migration.name)
    return applied_now


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Apply crypto-checkout's SQL migrations.")
    parser.add_argument(
        "--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    )
    args = parser.parse_args(argv)
    try:
        applied = migrate(args.database_url)
    except (MigrationError, psycopg2.OperationalError) as exc:
        print(f"migrations: {exc}", file=sys.stderr)
        return 1
    print(
        f"migrations: applied {len(applied)} ({', '.join(applied) or 'none pending'})",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
