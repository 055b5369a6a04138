"""``checkout chain status | rescan | start`` (docs/operations.md, docs/chain.md).

- ``status``: the node's head and solidified head, the watcher's cursor and how far behind it
  is, the blocks it keeps for reorg detection, the last reorganisation it unwound, its last
  start and the gaps starts left (with the rescan that reads them), and whether it refuses to
  start. Exit 1 when the node does not answer (what the database knows is shown all the same).
- ``rescan``: blocks ``--from``..``--to`` (default: up to the watcher's cursor, never above the
  solidified head) read again and the payments to our addresses found there published to the
  payment agent (app/adapters/tron/rescan.py). Idempotent: a payment already seen changes
  nothing; one the watcher missed is processed as if it had just been seen.
- ``start --at head|HEIGHT [--yes]``: where a watcher without a cursor starts (it refuses to
  start at the head by itself once its platform has watched before, app/adapters/tron/starts.py).
  Writes the cursor, the blocks below it kept for reorgs and the start with the gap it leaves, in
  one transaction; the workers' watcher reads on from there at its next poll, no restart. A
  start that leaves blocks unread needs ``--yes`` and prints the rescan that reads them.

They read PostgreSQL and the Tron node and publish to Kafka directly: no worker is needed, and
the workers' watcher is not disturbed.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

import click
import orjson

from app.adapters.kafka.operations import KafkaOperations
from app.adapters.postgres.audit_log import PostgresAuditLog
from app.adapters.postgres.chain_cursor import (
    PostgresWatcherStore,
    RecordedStart,
    WatcherStatus,
    watcher_status,
)
from app.adapters.postgres.deposit_addresses import PostgresDepositAddressFilter
from app.adapters.tron.errors import ChainError
from app.adapters.tron.node import NodeHead, TronNode
from app.adapters.tron.rescan import ChainRescan
from app.adapters.tron.starts import (
    MAX_RESCAN_BLOCKS,
    BlockRange,
    describe_rescan,
    plan_command_start,
    refusal,
    rescan_commands,
)
from app.adapters.tron.watcher import ChainWatcher
from app.domain.money import format_usdt
from app.domain.observations import Observation, TransferObserved
from app.runtime.cli_support import database, json_option, operator_entry, print_json, refuse
from app.runtime.codecs import TransferMessage, encode_deposit_message
from app.runtime.topics import DEPOSITS, topic_name
from app.settings import Settings

RESCAN_HEADER: Final = "checkout-rescan"


def chain_group(settings: Settings) -> click.Group:
    @click.group(name="chain")
    def chain() -> None:
        """The Tron chain as the platform sees it (docs/chain.md)."""

    @chain.command(name="status")
    @json_option
    def status(as_json: bool) -> None:
        """Node head and solidified head, the watcher's cursor and lag, the last reorg."""
        ok = asyncio.run(_status(settings, as_json))
        raise SystemExit(0 if ok else 1)

    @chain.command(name="rescan")
    @click.option(
        "--from", "first", type=click.IntRange(0), required=True, help="First block to read."
    )
    @click.option(
        "--to",
        "last",
        type=click.IntRange(0),
        default=None,
        help="Last block (default: the watcher's cursor, at most the solidified head).",
    )
    @json_option
    def rescan(first: int, last: int | None, as_json: bool) -> None:
        """Read blocks again and hand on the payments to our addresses found there (idempotent:
        payments already seen change nothing)."""
        asyncio.run(_rescan(settings, first, last, as_json))

    @chain.command(name="start")
    @click.option(
        "--at",
        "at",
        required=True,
        callback=_start_height,
        help="The first block the watcher reads: `head` (the node's head now) or a number.",
    )
    @click.option("--yes", is_flag=True, help="Confirm a start that leaves blocks unread (a gap).")
    @json_option
    def start(at: int | None, yes: bool, as_json: bool) -> None:
        """Tell a watcher without a cursor where to start; the workers' watcher reads on from
        there at its next poll."""
        asyncio.run(_start(settings, at, yes, as_json))

    return chain


def _start_height(ctx: click.Context, param: click.Parameter, value: str) -> int | None:
    """``head`` is None (the node's head when the command runs), else a block number."""
    if value.strip().lower() == "head":
        return None
    try:
        height = int(value)
    except ValueError:
        raise click.BadParameter(f"`head` or a block number, not {value!r}") from None
    if height < 0:
        raise click.BadParameter(f"a block number is 0 or more, not {height}")
    return height


def _store(settings: Settings, pool: Any) -> PostgresWatcherStore:
    chain = settings.chain
    return PostgresWatcherStore(
        pool, chain.watcher_name, app_id=settings.app_id, network=chain.network
    )


async def _status(settings: Settings, as_json: bool) -> bool:
    chain = settings.chain
    refusing: str | None = None
    async with database(settings, maxsize=1) as pool:
        stored = await watcher_status(pool, chain.watcher_name)
        if stored.cursor is None:
            # What the watcher decides at its next poll (app/adapters/tron/starts.py).
            history = await _store(settings, pool).load_history()
            refusing = refusal(history, start_height=chain.start_height)
    head: NodeHead | None = None
    error: str | None = None
    try:
        async with TronNode.from_settings(chain) as node:
            head = await node.node_head()
    except ChainError as exc:
        error = str(exc)
    body = _status_json(settings, stored, head, error)
    body["watcher"]["refusing"] = refusing
    if as_json:
        print_json(body)
    else:
        _print_status(body)
    if error is not None:
        print(f"checkout chain status: the node did not answer: {error}", file=sys.stderr)
    return error is None


def _status_json(
    settings: Settings, stored: WatcherStatus, head: NodeHead | None, error: str | None
) -> dict[str, Any]:
    now = datetime.now(UTC)
    node: dict[str, Any] = {"url": settings.chain.node_url, "network": settings.chain.network}
    if head is None:
        node["error"] = error
    else:
        node |= {
            "head": head.head_number,
            "head_block_id": head.head_block_id,
            "solidified": head.solidified_number,
        }
    cursor = stored.cursor
    watcher: dict[str, Any] = {
        "name": settings.chain.watcher_name,
        "cursor": cursor,
        "cursor_updated_at": _iso(stored.cursor_updated_at),
        "seconds_since_update": None
        if stored.cursor_updated_at is None
        else round((now - stored.cursor_updated_at).total_seconds(), 1),
        "lag_blocks": None if head is None or cursor is None else head.head_number - cursor,
        "window_blocks": stored.window_blocks,
    }
    last_reorg = None
    if stored.last_reorg_fork is not None:
        assert stored.last_reorg_through is not None
        last_reorg = {
            "fork_block": stored.last_reorg_fork,
            "replaced_from": stored.last_reorg_fork + 1,
            "replaced_through": stored.last_reorg_through,
            "depth": stored.last_reorg_through - stored.last_reorg_fork,
            "detected_at": _iso(stored.last_reorg_at),
        }
    return {
        "node": node,
        "watcher": watcher,
        "reorgs": stored.reorgs,
        "last_reorg": last_reorg,
        "last_start": None if stored.last_start is None else _start_json(stored.last_start),
        "gaps": [_start_json(start) for start in stored.gaps],
    }


def _start_json(start: RecordedStart) -> dict[str, Any]:
    return {
        "first_block": start.first_block,
        "how": start.mode.value,
        "previous_block": start.previous_block,
        "started_at": _iso(start.started_at),
        "gap": _gap_json(start.gap),
    }


def _gap_json(gap: BlockRange | None) -> dict[str, Any] | None:
    if gap is None:
        return None
    return {
        "from": gap.first,
        "to": gap.last,
        "blocks": gap.blocks,
        "rescan": rescan_commands(gap),
    }


def _print_status(body: dict[str, Any]) -> None:
    node, watcher, reorg = body["node"], body["watcher"], body["last_reorg"]
    print(f"node         {node['url']} ({node['network']})")
    if "error" in node:
        print(f"             unreachable: {node['error']}")
    else:
        print(f"head         {node['head']}  {node['head_block_id']}")
        print(f"solidified   {node['solidified']}")
    if watcher["cursor"] is None and watcher["refusing"] is not None:
        print(f"watcher      {watcher['name']}: REFUSES TO START, no cursor")
        print(f"             {watcher['refusing']}")
    elif watcher["cursor"] is None:
        print(f"watcher      {watcher['name']}: not started (no cursor yet)")
    else:
        lag = "?" if watcher["lag_blocks"] is None else watcher["lag_blocks"]
        print(
            f"watcher      {watcher['name']}: cursor {watcher['cursor']}, {lag} blocks behind, "
            f"updated {watcher['seconds_since_update']} s ago, "
            f"{watcher['window_blocks']} blocks kept"
        )
    if reorg is None:
        print("last reorg   none recorded")
    else:
        print(
            f"last reorg   {reorg['detected_at']}: blocks {reorg['replaced_from']}.."
            f"{reorg['replaced_through']} replaced (depth {reorg['depth']}); "
            f"{body['reorgs']} in all"
        )
    start = body["last_start"]
    if start is None:
        print("last start   none recorded")
    else:
        first, how = start["first_block"], start["how"]
        print(f"last start   {start['started_at']}: from block {first} ({how})")
    for gap_start in body["gaps"]:
        gap = gap_start["gap"]
        print(
            f"gap          blocks {gap['from']}..{gap['to']} ({gap['blocks']}) never read, left by "
            f"the start of {gap_start['started_at']} ({gap_start['how']}); read them with: "
            + "; ".join(gap["rescan"])
        )


async def _rescan(settings: Settings, first: int, last: int | None, as_json: bool) -> None:
    chain = settings.chain
    command = "chain rescan"
    async with database(settings, maxsize=2) as pool, TronNode.from_settings(chain) as node:
        stored = await watcher_status(pool, chain.watcher_name)
        try:
            head = await node.node_head()
        except ChainError as exc:
            refuse(command, f"the node did not answer: {exc}")
        if stored.cursor is None:
            refuse(command, f"the watcher {chain.watcher_name} has not started: nothing to rescan")
        ceiling = min(stored.cursor, head.solidified_number)
        last = ceiling if last is None else last
        if last > ceiling:
            refuse(
                command,
                f"--to {last} is above block {ceiling}, the lower of the watcher's cursor "
                f"({stored.cursor}) and the solidified head ({head.solidified_number}): the "
                "watcher reads those blocks itself",
            )
        if first > last:
            refuse(command, f"--from {first} is above the last block to read, {last}")
        if last - first + 1 > MAX_RESCAN_BLOCKS:
            refuse(
                command,
                f"{last - first + 1} blocks: rescan at most {MAX_RESCAN_BLOCKS:,} at a time",
            )
        topic = topic_name(DEPOSITS, settings.topic_namespace)
        async with KafkaOperations(settings.kafka_bootstrap_servers) as kafka:

            async def publish(transfers: Sequence[TransferObserved]) -> None:
                await kafka.produce(
                    topic,
                    [
                        (
                            transfer.to_address.encode(),
                            orjson.dumps(
                                encode_deposit_message(TransferMessage(transfer=transfer))
                            ),
                            [(RESCAN_HEADER, f"{first}-{last}".encode())],
                        )
                        for transfer in transfers
                    ],
                )

            async def progress(through: int, published: int) -> None:
                print(f"read through block {through}; {published} payments", file=sys.stderr)

            rescanner = ChainRescan(
                node,
                PostgresDepositAddressFilter(pool),
                publish,
                token_contract=chain.usdt_contract,
            )
            report = await rescanner.run(first, last, progress)
        await PostgresAuditLog(pool).append(
            operator_entry(
                command,
                "ok",
                target_id=f"{first}-{last}",
                details={"blocks": report.blocks, "published": len(report.published)},
            )
        )
    published = [
        {
            "tx_hash": t.tx_hash,
            "log_index": t.log_index,
            "block": t.block_number,
            "to_address": t.to_address,
            "amount": format_usdt(t.amount),
        }
        for t in report.published
    ]
    body = {
        "from": first,
        "to": last,
        "blocks": report.blocks,
        "transfers_seen": report.transfers_seen,
        "published": published,
    }
    if as_json:
        print_json(body)
        return
    print(
        f"read blocks {first}..{last}: {report.transfers_seen} token transfers, "
        f"{len(report.published)} to our addresses handed to the payment agent"
    )
    for item in published:
        print(f"  block {item['block']}  {item['tx_hash']}:{item['log_index']}  {item['amount']}")


async def _nothing_to_publish(observations: Sequence[Observation]) -> None:
    raise AssertionError("starting the watcher publishes nothing")  # pragma: no cover


async def _start(settings: Settings, at: int | None, yes: bool, as_json: bool) -> None:
    chain = settings.chain
    command = "chain start"
    name = chain.watcher_name
    async with database(settings, maxsize=2) as pool, TronNode.from_settings(chain) as node:
        store = _store(settings, pool)
        cursor = await store.load_cursor()
        if cursor is not None:
            refuse(
                command,
                f"the watcher {name} has its cursor at block {cursor} and reads on from block "
                f"{cursor + 1} by itself; `checkout chain rescan` reads blocks again",
            )
        try:
            head = await node.node_head()
        except ChainError as exc:
            refuse(command, f"the node did not answer: {exc}")
        first = head.head_number if at is None else at
        if first > head.head_number:
            refuse(command, f"--at {first} is above the node's head, block {head.head_number}")
        history = await store.load_history()
        start = plan_command_start(history, first_block=first)
        if start.gap is not None and not yes:
            refuse(
                command,
                f"starting at block {first} leaves blocks {start.gap} ({start.gap.blocks}) "
                f"unread: platform {settings.app_id} read up to block {start.previous_block} "
                f"on {chain.network}. Start at block {start.gap.first} to read them all "
                f"(`checkout chain start --at {start.gap.first}`), or add --yes and then run "
                f"{describe_rescan(start.gap)}",
            )
        watcher = ChainWatcher.from_settings(
            chain,
            node=node,
            store=store,
            publish=_nothing_to_publish,
            deposit_addresses=PostgresDepositAddressFilter(pool),
        )
        try:
            stored = await watcher.start_at(start)
        except ChainError as exc:
            refuse(command, f"the node did not answer: {exc}")
        if stored != first - 1:
            refuse(
                command,
                f"the watcher {name} stored a cursor meanwhile, at block {stored}: it reads on "
                "from there",
            )
        await PostgresAuditLog(pool).append(
            operator_entry(
                command,
                "ok",
                target_id=name,
                details={
                    "first_block": first,
                    "previous_block": start.previous_block,
                    "gap": None if start.gap is None else [start.gap.first, start.gap.last],
                },
            )
        )
    body = {
        "watcher": name,
        "first_block": first,
        "previous_block": start.previous_block,
        "gap": _gap_json(start.gap),
    }
    if start.gap is not None:
        # Also on standard error, like the watcher's own ERROR: these payments are not detected.
        print(
            f"checkout chain start: blocks {start.gap} ({start.gap.blocks}) were never read; "
            f"run {describe_rescan(start.gap)} to detect the payments made there",
            file=sys.stderr,
        )
    if as_json:
        print_json(body)
        return
    print(f"the watcher {name} reads from block {first} at its next poll")


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
