"""The chain: blocks, the pending pool, broadcast checks, block production and reorgs.

Synchronous and deterministic: given the same clock readings and the same calls, the same block
ids come out. The HTTP layer and the block producer call into it from one event loop.

As java-tron does, a broadcast transaction is checked against the head state *plus* the pending
pool (an `Overlay` on which the accepted pending transactions have been executed in order), and
the block is then packed by checking and executing the pool again, in the same order, on the same
head and at the same bandwidth time (the head block's). So a transaction accepted at broadcast is
packed into the next block: an earlier pending transaction from the same sender cannot make it
fail (bandwidth or balance) at packing, since it was already accounted for. The exceptions are a
transaction that expires before the block, and a reorg, which changes the state the pool was
checked against: the pool is then checked again, in order, on the new head, and what no longer
passes (TaPoS on a replaced block, expired, invalid) leaves it at once, as java-tron drops it when
it pushes its pool and the erased blocks' transactions again after switching forks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from tron_sim.blocks import Block
from tron_sim.encoding import address_word, sha256, to_base58, uint_word
from tron_sim.errors import BadRequest, BroadcastRejected
from tron_sim.execution import FeeSchedule, NetBill, Receipt, execute, recovered_usage, validate
from tron_sim.ledger import JournalEntry, Ledger, Overlay
from tron_sim.signing import Signer, faucet, recover_signer, witness
from tron_sim.token import SEL_TRANSFER, USDT_ADDRESS
from tron_sim.transactions import TRANSFER, TRIGGER, Transaction

log = logging.getLogger("tron_sim.chain")

WITNESS_COUNT = 27
GENESIS_TIMESTAMP = 1_529_891_469_000
GENESIS_PARENT = sha256(b"crypto-checkout tron simulator genesis")
MAX_EXPIRATION_MS = 86_400_000
TAPOS_WINDOW = 65_536
FAUCET_FEE_LIMIT = 100_000_000
FAUCET_EXPIRATION_MS = 12 * 3_600_000
# java-tron's `trx.expiration.timeInMilliseconds` default: what a node-built transaction gets.
NODE_EXPIRATION_MS = 60_000

Clock = Callable[[], int]


class BlockSink(Protocol):
    """Where produced blocks and reorgs are recorded (the --data-dir block log)."""

    def block_added(self, block: Block) -> None: ...

    def reorged(self, depth: int) -> None: ...


@dataclass(frozen=True, slots=True)
class ChainConfig:
    solidify_depth: int = 18
    fees: FeeSchedule = field(default_factory=FeeSchedule)
    faucet_trx: int = 10**9 * 10**6  # 1e9 TRX in SUN
    faucet_usdt: int = 10**9 * 10**6  # 1e9 USDT in base units


@dataclass(frozen=True, slots=True)
class ReorgResult:
    old_ids: list[str]
    new_ids: list[str]
    dropped: list[str]
    returned_to_pool: list[str]
    # Neither dropped on request nor in a block nor pending any more: the new branch could not
    # take them (TaPoS on a replaced block, expired, or no longer valid), as java-tron refuses
    # them when it pushes the erased blocks' transactions again after switching forks.
    lost: list[str]


class Chain:
    def __init__(self, config: ChainConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.ledger = Ledger()
        self.blocks: list[Block] = []
        self.by_id: dict[str, Block] = {}
        self.tx_index: dict[str, tuple[Block, int]] = {}
        self.pending: dict[str, Transaction] = {}
        self._pool_state: Overlay | None = None  # the head state + the pending pool; see pool_state
        self.fail_next = 0
        self.fork_count = 0
        self.sink: BlockSink | None = None
        self.log_blocks = True  # off while the block log is replayed at start
        self.faucet = faucet()
        self.witnesses = [witness(i) for i in range(WITNESS_COUNT)]
        self._last_built_ms = 0
        self._genesis()

    # ----- reading

    @property
    def head(self) -> Block:
        return self.blocks[-1]

    @property
    def solid_number(self) -> int:
        return max(0, self.head.number - self.config.solidify_depth)

    @property
    def solid(self) -> Block:
        return self.blocks[self.solid_number]

    def block_by_number(self, number: int, solid_only: bool = False) -> Block | None:
        limit = self.solid_number if solid_only else self.head.number
        if 0 <= number <= limit:
            return self.blocks[number]
        return None

    def block_by_id(self, block_id: str, solid_only: bool = False) -> Block | None:
        block = self.by_id.get(block_id.lower())
        if block is None or (solid_only and block.number > self.solid_number):
            return None
        return block

    def find_tx(self, txid: str, solid_only: bool = False) -> tuple[Block, int] | None:
        found = self.tx_index.get(txid.lower())
        if found is None or (solid_only and found[0].number > self.solid_number):
            return None
        return found

    def unsolidified_journals(self) -> Iterable[list[JournalEntry]]:
        return (block.journal for block in self.blocks[self.solid_number + 1 :])

    def balance(self, table: str, key: object, solid_only: bool = False) -> int | None:
        """A ledger value at the head, or at the solidified block; None when absent."""
        if solid_only:
            return self.ledger.value_before(table, key, self.unsolidified_journals())
        return self.ledger.tables[table].get(key)

    def free_net(self, address: bytes, solid_only: bool = False) -> tuple[int, int]:
        """Free bandwidth used as of the head (or solidified) block's time, recovered as java-tron's
        updateUsage does, and the time it was last used (ms, 0 if never)."""
        used = self.balance("free_net_used", address, solid_only) or 0
        last = self.balance("free_net_time", address, solid_only) or 0
        now = (self.solid if solid_only else self.head).timestamp
        return recovered_usage(used, last, now), last

    @property
    def pool_state(self) -> Overlay:
        """The head state with the pending pool executed on it: what broadcast checks against.

        Rebuilt when blocks change (a new block empties the pool; a reorg changes the head under
        it) by checking and executing the pool again, in order, as packing will."""
        if self._pool_state is None:
            state = Overlay(self.ledger)
            for tx in self.pending.values():
                bill = self._check_in(state, tx)
                if bill is not None:  # fails again at packing, where it is dropped
                    execute(state, tx, self.next_timestamp(), self.config.fees, bill)
            self._pool_state = state
        return self._pool_state

    def node_reference(self) -> dict[str, Any]:
        """TaPoS, expiration and timestamp of a transaction the node builds
        (`createtransaction`, `triggersmartcontract`): java-tron's Wallet.setTransaction with its
        defaults — the head block as reference (`trx.reference.block = head`), expiration the
        head block's time + 60 s, timestamp the node's clock."""
        head = self.head
        return {
            "ref_block_bytes": head.id[6:8],
            "ref_block_hash": head.id[8:16],
            "expiration": head.timestamp + NODE_EXPIRATION_MS,
            "timestamp": self.clock(),
        }

    def _check_in(self, state: Ledger, tx: Transaction) -> NetBill | None:
        """TaPoS and validation on `state`, at the head's bandwidth time; None when refused."""
        if tx.txid in self.tx_index:
            return None
        try:
            self._check_tapos(tx)
            return validate(state, tx, self.config.fees, self.head.timestamp)
        except BroadcastRejected:
            return None

    # ----- genesis and blocks

    def _genesis(self) -> None:
        ledger = self.ledger
        for address in (self.faucet.address, USDT_ADDRESS):
            ledger.set("trx", address, 0)
            ledger.set("created", address, GENESIS_TIMESTAMP)
        ledger.set("trx", self.faucet.address, self.config.faucet_trx)
        ledger.set("token", self.faucet.address, self.config.faucet_usdt)
        block = Block.seal(
            number=0,
            timestamp=GENESIS_TIMESTAMP,
            parent_id=GENESIS_PARENT,
            witness_index=0,
            witness=self.witnesses[0],
            transactions=[],
            receipts=[],
            journal=[],
        )
        self._index(block)

    def _index(self, block: Block) -> None:
        self.blocks.append(block)
        self.by_id[block.id_hex] = block
        self._pool_state = None
        for i, tx in enumerate(block.transactions):
            self.tx_index[tx.txid] = (block, i)

    def _unindex_head(self) -> Block:
        block = self.blocks.pop()
        del self.by_id[block.id_hex]
        self._pool_state = None
        for tx in block.transactions:
            self.tx_index.pop(tx.txid, None)
        self.ledger.revert(block.journal)
        return block

    def next_timestamp(self) -> int:
        return max(self.clock(), self.head.timestamp + 1)

    def produce_block(self) -> Block:
        """Seal the pending pool into a new head block."""
        txs = list(self.pending.values())
        self.pending.clear()
        number = self.head.number + 1
        return self.append_block(
            self.next_timestamp(), (number + self.fork_count) % WITNESS_COUNT, txs
        )

    def mine(self, count: int) -> list[Block]:
        return [self.produce_block() for _ in range(count)]

    def append_block(self, timestamp: int, witness_index: int, txs: list[Transaction]) -> Block:
        """Pack `txs` (dropping those java-tron would drop) into a block on the head.

        Bandwidth is measured at the head block's time (java-tron's head slot while it packs the
        next block), as it was at broadcast."""
        journal = self.ledger.record()
        included: list[Transaction] = []
        receipts: list[Receipt] = []
        seen: set[str] = set()
        try:
            for tx in txs:
                bill = None
                if tx.txid not in seen and tx.expiration > timestamp:
                    bill = self._check_in(self.ledger, tx)
                if bill is None:
                    log.debug("dropped %s from block", tx.txid)
                    continue
                seen.add(tx.txid)
                included.append(tx)
                receipts.append(execute(self.ledger, tx, timestamp, self.config.fees, bill))
        finally:
            self.ledger.stop_recording()
        block = Block.seal(
            number=self.head.number + 1,
            timestamp=timestamp,
            parent_id=self.head.id,
            witness_index=witness_index,
            witness=self.witnesses[witness_index],
            transactions=included,
            receipts=receipts,
            journal=journal,
        )
        self._index(block)
        log.log(
            logging.INFO if self.log_blocks else logging.DEBUG,
            "block %d %s txs=%d solidified=%d",
            block.number,
            block.id_hex,
            len(included),
            self.solid_number,
        )
        if self.sink is not None:
            self.sink.block_added(block)
        return block

    # ----- broadcast

    def broadcast(self, tx: Transaction, *, verify_signature: bool = True) -> None:
        """Accept a transaction into the pending pool, with java-tron's checks in its order.

        Bandwidth and the contract are validated against the head state with the pending pool
        applied, then the transaction is executed on that state too (java-tron's pending state).
        """
        self._check_tapos(tx)
        self._check_expiration(tx)
        if tx.txid in self.tx_index or tx.txid in self.pending:
            raise BroadcastRejected("DUP_TRANSACTION_ERROR", "Dup transaction.")
        if verify_signature:
            self._check_signature(tx)
        state = self.pool_state
        bill = validate(state, tx, self.config.fees, self.head.timestamp)
        if self.fail_next and tx.kind == TRIGGER:
            self.fail_next -= 1
            tx.forced_fail = True
        execute(state, tx, self.next_timestamp(), self.config.fees, bill)
        self.pending[tx.txid] = tx

    def _check_tapos(self, tx: Transaction) -> None:
        if len(tx.ref_block_bytes) != 2 or len(tx.ref_block_hash) != 8:
            raise BroadcastRejected(
                "TAPOS_ERROR", "Tapos failed, ref_block_bytes or ref_block_hash is malformed"
            )
        low = int.from_bytes(tx.ref_block_bytes, "big")
        head = self.head.number
        number = head - ((head - low) % TAPOS_WINDOW)
        if number < 0:
            raise BroadcastRejected(
                "TAPOS_ERROR", f"Tapos failed, block not found, ref block {low}"
            )
        block = self.blocks[number]
        if block.id[8:16] != tx.ref_block_hash:
            raise BroadcastRejected(
                "TAPOS_ERROR",
                f"Tapos failed, different block hash, {tx.ref_block_bytes.hex()}, "
                f"{tx.ref_block_hash.hex()} , recent block {block.id[8:16].hex()}, "
                f"solid block {self.solid.id_hex} head block {self.head.id_hex}",
            )

    def _check_expiration(self, tx: Transaction) -> None:
        head_time = self.head.timestamp
        if tx.expiration <= head_time:
            raise BroadcastRejected(
                "TRANSACTION_EXPIRATION_ERROR",
                f"Transaction expiration, transaction expiration time is {tx.expiration}, "
                f"but headBlockTime is {head_time}",
            )
        # A real head is never older than 3 s; in manual mode it can be, so bound the expiration
        # by the wall clock too, or every client transaction would look too far in the future.
        latest = max(head_time, self.clock()) + MAX_EXPIRATION_MS
        if tx.expiration > latest:
            raise BroadcastRejected(
                "TRANSACTION_EXPIRATION_ERROR",
                f"Transaction expiration time is {tx.expiration}, but maximum expiration time "
                f"is {latest}",
            )

    def _check_signature(self, tx: Transaction) -> None:
        if not tx.signatures:
            raise BroadcastRejected("SIGERROR", "Validate signature error: miss sig or contract")
        if tx.permission_id not in (0, 2):
            raise BroadcastRejected("SIGERROR", "Validate signature error: permission isn't exit")
        for sig in tx.signatures:
            signer = recover_signer(tx.digest, sig)
            if signer is None:
                raise BroadcastRejected(
                    "SIGERROR", f"Validate signature error: Signature size is {len(sig)}"
                )
            if signer != tx.owner:
                raise BroadcastRejected(
                    "SIGERROR",
                    f"Validate signature error: {sig.hex()} is signed by {to_base58(signer)} "
                    "but it is not contained of permission.",
                )

    # ----- the simulator's own wallets

    def build_signed(
        self, signer: Signer, *, to: bytes, trx: int = 0, usdt: int = 0, forced_fail: bool = False
    ) -> Transaction:
        """A transaction from a key the simulator holds, as tronpy would build and sign it."""
        ref = self.solid
        # Strictly increasing timestamps keep two identical transfers from sharing a txID.
        built_ms = max(self.clock(), self.head.timestamp, self._last_built_ms + 1)
        self._last_built_ms = built_ms
        common: dict[str, Any] = {
            "owner": signer.address,
            "ref_block_bytes": ref.id[6:8],
            "ref_block_hash": ref.id[8:16],
            "expiration": built_ms + FAUCET_EXPIRATION_MS,
            "timestamp": built_ms,
        }
        if trx:
            tx = Transaction(kind=TRANSFER, to=to, amount=trx, **common)
        else:
            data = SEL_TRANSFER + bytes.fromhex(address_word(to) + uint_word(usdt))
            tx = Transaction(
                kind=TRIGGER,
                contract_address=USDT_ADDRESS,
                data=data,
                fee_limit=FAUCET_FEE_LIMIT,
                **common,
            )
        tx.forced_fail = forced_fail
        tx.signatures.append(signer.sign(tx.digest))
        return tx

    def submit_own(self, tx: Transaction) -> None:
        """Broadcast a transaction the simulator signed itself (skips recovering the signature)."""
        self.broadcast(tx, verify_signature=False)

    # ----- reorgs

    def reorg(
        self,
        depth: int,
        *,
        drop: Iterable[str] = (),
        delay: dict[str, int] | None = None,
        new_blocks: int | None = None,
    ) -> ReorgResult:
        """Replace the last `depth` blocks with `new_blocks` (default `depth`) new ones.

        Their transactions are kept in the same relative block, except those in `drop` (gone, as
        if never broadcast) and those in `delay` (moved that many blocks later; beyond the new
        blocks they go back to the pending pool). New blocks get another witness, hence new ids.
        """
        head = self.head.number
        unsolidified = head - self.solid_number
        if not 1 <= depth <= unsolidified:
            raise BadRequest(
                "depth",
                f"must be between 1 and {unsolidified} (blocks above the solidified block "
                f"{self.solid_number}); solidified blocks never change",
            )
        count = depth if new_blocks is None else new_blocks
        if count < 1:
            raise BadRequest("blocks", "must be at least 1")
        drop_set = {txid.lower() for txid in drop}
        delays = {txid.lower(): k for txid, k in (delay or {}).items()}
        known = {tx.txid for block in self.blocks[-depth:] for tx in block.transactions}
        unknown = (drop_set | delays.keys()) - known
        if unknown:
            raise BadRequest("drop/delay", f"not in the replaced blocks: {sorted(unknown)}")
        if any(k < 0 for k in delays.values()):
            raise BadRequest("delay", "a delay is a number of blocks, 0 or more")
        old = [self._unindex_head() for _ in range(depth)][::-1]
        slots: list[list[Transaction]] = [[] for _ in range(count)]
        back_to_pool: list[Transaction] = []
        for offset, block in enumerate(old):
            for tx in block.transactions:
                if tx.txid in drop_set:
                    continue
                target = offset + delays.get(tx.txid, 0)
                (slots[target] if target < count else back_to_pool).append(tx)
        self.fork_count += 1
        if self.sink is not None:
            self.sink.reorged(depth)
        new: list[Block] = []
        for offset, txs in enumerate(slots):
            number = self.head.number + 1
            timestamp = max(
                old[offset].timestamp if offset < depth else self.clock(), self.head.timestamp + 1
            )
            witness_index = (number + self.fork_count) % WITNESS_COUNT
            new.append(self.append_block(timestamp, witness_index, txs))
        self.pending = {tx.txid: tx for tx in back_to_pool} | self.pending
        refused = self._recheck_pool()
        replaced = [tx.txid for block in old for tx in block.transactions]
        lost = [
            txid
            for txid in replaced
            if txid not in drop_set and txid not in self.tx_index and txid not in self.pending
        ]
        log.info("reorg depth=%d new head %d %s", depth, self.head.number, self.head.id_hex)
        return ReorgResult(
            old_ids=[b.id_hex for b in old],
            new_ids=[b.id_hex for b in new],
            dropped=sorted(drop_set),
            returned_to_pool=[tx.txid for tx in back_to_pool if tx.txid in self.pending],
            lost=lost + [txid for txid in refused if txid not in replaced],
        )

    def _recheck_pool(self) -> list[str]:
        """After a reorg, check the pool again on the new head, in order, as java-tron pushes
        its pending and popped transactions again after switching forks: one whose TaPoS block
        was replaced, that expired, or that no longer validates is dropped now (so broadcasting
        it again gives that error rather than DUP_TRANSACTION_ERROR). Returns the dropped ids."""
        state = Overlay(self.ledger)
        refused: list[str] = []
        for tx in list(self.pending.values()):
            bill = self._check_in(state, tx) if tx.expiration > self.head.timestamp else None
            if bill is None:
                refused.append(tx.txid)
                del self.pending[tx.txid]
                continue
            execute(state, tx, self.next_timestamp(), self.config.fees, bill)
        self._pool_state = state
        return refused

    def replay_reorg(self, depth: int) -> None:
        """Apply a reorg read from the block log: unwind `depth` blocks (new ones follow)."""
        for _ in range(depth):
            self._unindex_head()
        self.fork_count += 1
