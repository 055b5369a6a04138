"""Rebuild the read models from the event store, while the live projection keeps running.

The read models (migrations/0007 and 0012) are folds of ``event_store`` in its insertion order
(``seq``): ``invoice_summaries`` by the projection's own statements (projections.py), the
dashboard and report tables by ``read_models_apply()``. A rebuild therefore

1. creates empty copies of the tables in a schema of its own (columns, defaults, checks, keys
   and indexes under their own names, so the swapped-in tables look exactly like migrated ones);
2. replays ``event_store`` into them in batches of ``batch`` events, each batch one transaction,
   with that schema first in ``search_path`` — the fold names its tables without a schema.
   Short transactions matter: a day's platform-wide rows are updated by most events, and the
   row versions one transaction leaves behind cannot be pruned before it ends, so each update
   in a long one walks a longer chain of them;
3. catches up and swaps in one transaction: ``LOCK event_store IN SHARE MODE`` waits for the
   projection transactions in flight and holds new ones back (they wait, nothing fails), the
   events recorded since step 2 are applied — those past the last one replayed, and those that
   were not yet committed when their neighbours were read (``seq`` is taken at insert, so a
   transaction can commit after a later number) — then each live table is dropped and its copy
   moved into ``public``. The projection resumes on the new tables when the transaction commits.

The fold's tables are one unit: it writes all of them, so naming one rebuilds the fold into fresh
copies of all of them (the copies not asked for are thrown away with the schema); its working
state (``read_model_invoices``, ``payment_timings``) is swapped with any of them.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from app.adapters.postgres import projections
from app.adapters.postgres.event_partitions import PostgresEventStoreMonths
from app.adapters.postgres.pool import Connections
from app.domain.events import parse_event

logger = logging.getLogger(__name__)

SUMMARIES: Final = "invoice_summaries"
FOLD: Final = (
    "merchant_dashboard",
    "daily_settlement_metrics",
    "payment_confirmation_stats",
    "platform_revenue_daily",
)
FOLD_STATE: Final = ("read_model_invoices", "payment_timings")
READ_MODELS: Final = (SUMMARIES, *FOLD)


class UnknownReadModel(ValueError):
    """A read model name that is not one of ``READ_MODELS``."""


class MonthsArchivedAway(ValueError):
    """Months of events are archived out of the store: a rebuild would leave them out."""


@dataclass
class RebuildReport:
    read_models: list[str]
    events: int = 0  # events replayed, catch-up included
    caught_up: int = 0  # of which applied in the swapping transaction
    unreadable: int = 0  # events the summaries could not parse (the fold takes every event)
    through_seq: int = 0
    seconds: float = 0.0
    rows: dict[str, int] = field(default_factory=dict)


def chosen(only: Sequence[str] | None) -> list[str]:
    """The read models to rebuild, in ``READ_MODELS`` order; all of them when none is named."""
    if not only:
        return list(READ_MODELS)
    unknown = sorted(set(only) - set(READ_MODELS))
    if unknown:
        raise UnknownReadModel(
            f"no read model named {', '.join(unknown)}; choose from {', '.join(READ_MODELS)}"
        )
    return [name for name in READ_MODELS if name in only]


class ReadModelRebuild:
    def __init__(self, pool: Connections, *, batch: int = 1_000) -> None:
        self._pool = pool
        self._batch = batch

    async def rebuild(
        self,
        only: Sequence[str] | None = None,
        progress: Callable[[int, int], Awaitable[None]] | None = None,
    ) -> RebuildReport:
        """Rebuild ``only`` (default: every read model) and swap the copies in atomically.

        ``progress`` is awaited after each batch with the number of events replayed so far and
        the last ``seq`` replayed.
        """
        models = chosen(only)
        await self._refuse_if_archived()
        report = RebuildReport(read_models=models)
        started = time.monotonic()
        summaries = SUMMARIES in models
        fold = any(name in FOLD for name in models)
        copies = ([SUMMARIES] if summaries else []) + (list(FOLD + FOLD_STATE) if fold else [])
        swapped = [name for name in copies if name in models or name in FOLD_STATE]
        schema = f"read_models_rebuild_{secrets.token_hex(4)}"
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            try:
                await cur.execute(f"CREATE SCHEMA {schema}")
                for table in copies:
                    await _copy_table(cur, table, schema)
                await cur.execute(f"SET search_path = {schema}, public")
                seen, missing = 0, set[int]()
                while True:
                    await cur.execute("BEGIN")
                    await cur.execute(
                        "SELECT seq FROM public.event_store WHERE seq > %s ORDER BY seq LIMIT %s",
                        (seen, self._batch),
                    )
                    seqs = [row[0] for row in await cur.fetchall()]
                    if seqs:
                        await self._apply(cur, report, seqs, summaries=summaries, fold=fold)
                    await cur.execute("COMMIT")
                    if not seqs:
                        break
                    missing |= set(range(seen + 1, seqs[-1] + 1)) - set(seqs)
                    seen = seqs[-1]
                    if progress is not None:
                        await progress(report.events, seen)
                await cur.execute("BEGIN")
                await cur.execute("LOCK TABLE public.event_store IN SHARE MODE")
                await cur.execute(
                    "SELECT seq FROM public.event_store WHERE seq > %s OR seq = ANY(%s)"
                    " ORDER BY seq",
                    (seen, sorted(missing)),
                )
                late = [row[0] for row in await cur.fetchall()]
                if late:
                    await self._apply(cur, report, late, summaries=summaries, fold=fold)
                    report.caught_up = len(late)
                report.through_seq = max([seen, *late])
                for table in swapped:
                    await cur.execute(f"DROP TABLE public.{table}")
                    await cur.execute(f"ALTER TABLE {schema}.{table} SET SCHEMA public")
                    await cur.execute(f"SELECT count(*) FROM public.{table}")  # noqa: S608
                    report.rows[table] = (await cur.fetchone())[0]
                for name in models:
                    await cur.execute(
                        "INSERT INTO public.read_model_rebuilds (read_model, events, through_seq)"
                        " VALUES (%s, %s, %s)",
                        (name, report.events, report.through_seq),
                    )
                await cur.execute("COMMIT")
            except BaseException:
                await _quietly(cur, "ROLLBACK")
                raise
            finally:
                await _quietly(cur, "SET search_path TO DEFAULT")
                await _quietly(cur, f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        report.seconds = time.monotonic() - started
        return report

    async def _refuse_if_archived(self) -> None:
        away = await PostgresEventStoreMonths(self._pool).months_archived_away()
        if away:
            raise MonthsArchivedAway(
                f"the events of {', '.join(f'{month:%Y-%m}' for month in away)} are archived: "
                "restore them first (checkout events restore --month …), or the rebuilt read "
                "models would miss them"
            )

    async def _apply(
        self, cur: Any, report: RebuildReport, seqs: list[int], *, summaries: bool, fold: bool
    ) -> None:
        """Replay the events ``seqs`` (ascending) into the copies, in that order."""
        if fold:
            await cur.execute(
                "SELECT count(read_models_apply(e)) FROM"
                " (SELECT * FROM public.event_store WHERE seq = ANY(%s) ORDER BY seq) e",
                (seqs,),
            )
        if summaries:
            await cur.execute(
                "SELECT payload FROM public.event_store WHERE seq = ANY(%s) ORDER BY seq",
                (seqs,),
            )
            statements: list[bytes] = []
            for (payload,) in await cur.fetchall():
                try:
                    event = parse_event(payload)
                except ValueError:  # recorded by a tool, not by the projection: nothing to show
                    report.unreadable += 1
                    continue
                statements.extend(projections.summary_statements(cur, event))
            if statements:
                await cur.execute(b";\n".join(statements).decode())
        report.events += len(seqs)


async def _copy_table(cur: Any, table: str, schema: str) -> None:
    """An empty copy of ``public.<table>`` in ``schema``, keys and indexes named as there."""
    await cur.execute(
        f"CREATE TABLE {schema}.{table}"
        f" (LIKE public.{table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED)"
    )
    await cur.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = %s::regclass AND contype IN ('p', 'u') ORDER BY conname",
        (f"public.{table}",),
    )
    for name, definition in await cur.fetchall():
        await cur.execute(f"ALTER TABLE {schema}.{table} ADD CONSTRAINT {name} {definition}")
    await cur.execute(
        "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i"
        " WHERE i.indrelid = %s::regclass AND NOT EXISTS"
        " (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
        (f"public.{table}",),
    )
    for (definition,) in await cur.fetchall():
        await cur.execute(definition.replace(f" ON public.{table} ", f" ON {schema}.{table} ", 1))


async def _quietly(cur: Any, sql: str) -> None:
    try:
        await cur.execute(sql)
    except Exception:  # cleaning up after a failure that is being raised already
        logger.exception("read model rebuild: %s failed", sql)
