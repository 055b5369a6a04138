"""What the money-out tests on the real stack share: the platform with the signer in a process of
its own (killed and started again on the same signed log), the merchant's API, the simulator's
view of a transfer, and following refunds and payouts to their end while mining blocks.

The simulator runs in manual mode: blocks appear only when a test mines them. A transaction the
node builds expires 60 s after the head block's time, so a test mines a block right before the
driver builds one; after a broadcast it mines one block to include it, then 19 to solidify it.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import httpx
import orjson
import psycopg2
from tronpy.keys import to_base58check_address

from app.adapters.tron.settings import DEV_HOT_WALLET
from app.settings import Settings
from tests.support.platform import Platform, running_platform
from tests.support.processes import REPO_ROOT, VENV_BIN, ManagedProcess, eventually

DATABASE_URL: Final = Settings.from_env().database_url
FINAL_STATUSES: Final = frozenset({"confirmed", "failed", "cancelled"})
FINAL_EVENTS: Final = frozenset(
    {"RefundConfirmed", "RefundFailed", "PayoutPaid", "PayoutFailed", "PayoutCancelled"}
)


class SignerProcess:
    """``checkout signer`` in its own process. ``kill`` is a kill -9; ``start`` runs it again on
    the same signed log (``SIGNER_LOG_FILE``), as an operator's supervisor would."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self.signed_log = Path(self.env["SIGNER_LOG_FILE"])
        self.processes: list[ManagedProcess] = []
        self.start()

    def start(self) -> None:
        command = [str(VENV_BIN / "checkout"), "signer"]
        self.processes.append(ManagedProcess("signer", command, self.env, REPO_ROOT))

    def kill(self) -> None:
        self.processes[-1].kill()

    def stop(self) -> None:
        for process in self.processes:
            process.stop()

    def answered(self, request_ids: Collection[str]) -> int:
        """How many of these requests have their answer in the signed log: each is written
        there (and fsynced) before it is published."""
        if not self.signed_log.exists():
            return 0
        lines = self.signed_log.read_bytes().splitlines()
        return sum(
            1 for line in lines if line.strip() and orjson.loads(line)["request_id"] in request_ids
        )

    @property
    def output_logs(self) -> list[Path]:
        return [process.log_path for process in self.processes]


@contextmanager
def money_out_platform(
    data: Path, signer_env: Mapping[str, str] | None = None, **overrides: str
) -> Iterator[tuple[Platform, SignerProcess]]:
    """Two workers, the signer, and a hot wallet holding 10,000 TRX and 100,000 USDT."""
    with running_platform(data, workers=2, **overrides) as platform:
        signer = SignerProcess(
            {**platform.env, "SIGNER_LOG_FILE": str(data / "signed.jsonl"), **(signer_env or {})}
        )
        try:
            platform.sim.post(
                "/sim/fund", {"address": DEV_HOT_WALLET, "trx": "10000", "usdt": "100000"}
            )
            yield platform, signer
        finally:
            signer.stop()


# --- the merchant's view --------------------------------------------------------------------


def api(platform: Platform, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {**platform.headers(), **kwargs.pop("headers", {})}
    return httpx.request(method, f"{platform.url}{path}", headers=headers, timeout=30, **kwargs)


def balance(platform: Platform) -> dict[str, Decimal]:
    body = api(platform, "GET", "/api/v1/balance").json()
    return {name: Decimal(body[name]) for name in ("available", "incoming", "outgoing")}


def settled_invoice(platform: Platform, amount: str, paid: str) -> dict[str, Any]:
    invoice = platform.create_invoice(amount)
    platform.pay_and_confirm(invoice, paid, blocks=1 if Decimal(amount) < 100 else 12)
    platform.wait_settlement(invoice["id"])
    return invoice


def request_payouts(
    platform: Platform, address: str, amounts: Sequence[Decimal | str]
) -> list[dict[str, Any]]:
    """One payout per amount to ``address``, each approved at once (below the threshold)."""
    payouts = []
    for amount in amounts:
        created = api(
            platform,
            "POST",
            "/api/v1/payouts",
            json={"amount": str(amount), "address": address},
            headers={"Idempotency-Key": f"payout-{uuid.uuid4()}"},
        )
        assert created.status_code == 201, created.text
        assert created.json()["status"] == "approved", created.text
        payouts.append(dict(created.json()))
    return payouts


def follow(platform: Platform, path: str, status: str, timeout: float = 60) -> dict[str, Any]:
    """Mine blocks while waiting for the transfer at ``path`` to reach ``status``."""
    return follow_all(platform, [path], status, timeout)[0]


def follow_all(
    platform: Platform, paths: Sequence[str], status: str = "confirmed", timeout: float = 90
) -> list[dict[str, Any]]:
    """Mine blocks while waiting for every transfer at ``paths`` to reach ``status``: one block
    for a fresh head while any is being built or signed (the next transaction built lives 60 s
    from it) or is broadcast and in no block yet; 19 once one is in a block (solidified). Fails
    at once, showing them, when one ends otherwise."""

    def probe() -> list[dict[str, Any]] | None:
        bodies = [dict(api(platform, "GET", path).json()) for path in paths]
        if all(body["status"] in {status, *FINAL_STATUSES} for body in bodies):
            return bodies
        broadcast = [body for body in bodies if body["status"] == "broadcast"]
        if any(body["block_number"] is not None for body in broadcast):
            platform.sim.mine(19)
        elif broadcast or any(b["status"] in ("approved", "signing", "pending") for b in bodies):
            platform.sim.mine(1)
        return None

    what = f"{len(paths)} transfer(s) to be {status} (namespace {platform.namespace})"
    bodies = eventually(probe, timeout=timeout, what=what, every=0.3)
    assert all(body["status"] == status for body in bodies), bodies
    return bodies


# --- the ledger and the event store ----------------------------------------------------------


def journal_balances() -> dict[str, int]:
    with psycopg2.connect(DATABASE_URL) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT currency, sum(amount) FROM ledger_entries GROUP BY currency ORDER BY currency"
        )
        return {currency: int(total) for currency, total in cur.fetchall()}


def events_of(aggregate_id: str, timeout: float = 30) -> list[str]:
    """The event types of a refund or payout in the event store, once its final one is in."""

    def probe() -> list[str] | None:
        with psycopg2.connect(DATABASE_URL) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT event_type FROM event_store WHERE aggregate_id = %s"
                " ORDER BY aggregate_version, occurred_at",
                (aggregate_id,),
            )
            found = [row[0] for row in cur.fetchall()]
        return found if found and found[-1] in FINAL_EVENTS else None

    return eventually(probe, timeout=timeout, what=f"the events of {aggregate_id}", every=0.3)


def transfer_rows(transfer_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The driver's own record of each transfer: stage, attempt, its transaction, its block."""
    columns = ("transfer_id", "stage", "attempt", "txid", "raw_data", "expiration_ms")
    with psycopg2.connect(DATABASE_URL) as conn, conn.cursor() as cur:
        cur.execute(
            f"SELECT {', '.join(columns)}, block_number FROM outgoing_transfers"  # noqa: S608
            " WHERE transfer_id = ANY(%s)",
            (list(transfer_ids),),
        )
        rows = [dict(zip((*columns, "block_number"), row, strict=True)) for row in cur.fetchall()]
    return {row["transfer_id"]: row for row in rows}


def wait_for_stage(transfer_ids: Sequence[str], stage: str, timeout: float = 60) -> None:
    """Return as soon as one of the transfers is at ``stage``: polled without a pause on one
    connection, so that a test can act (kill a process) in the middle of a batch."""
    deadline = time.monotonic() + timeout
    with psycopg2.connect(DATABASE_URL) as conn, conn.cursor() as cur:
        conn.autocommit = True
        while time.monotonic() < deadline:
            cur.execute(
                "SELECT count(*) FROM outgoing_transfers WHERE transfer_id = ANY(%s)"
                " AND stage = %s",
                (list(transfer_ids), stage),
            )
            if cur.fetchone()[0]:
                return
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for a transfer to be {stage}")


def answers_recorded(request_ids: Sequence[str]) -> int:
    """How many of these signing requests have their answer recorded by the workers."""
    with psycopg2.connect(DATABASE_URL) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM signing_answers WHERE request_id = ANY(%s)", (list(request_ids),)
        )
        return int(cur.fetchone()[0])


# --- the chain's view -------------------------------------------------------------------------


def new_payee() -> str:
    """An address nobody else pays: its USDT balance is what the test sent it."""
    return str(to_base58check_address(b"\x41" + os.urandom(20)))


def usdt_at(platform: Platform, address: str) -> Decimal:
    response = httpx.get(f"{platform.sim.url}/sim/balance", params={"address": address}, timeout=10)
    assert response.status_code == 200, response.text
    return Decimal(response.json()["usdt"])


def receipt(platform: Platform, txid: str) -> dict[str, Any]:
    return dict(platform.sim.post("/wallet/gettransactioninfobyid", {"value": txid}))


def block_time_ms(platform: Platform, number: int) -> int:
    block = platform.sim.post("/wallet/getblockbynum", {"num": number})
    return int(block["block_header"]["raw_data"]["timestamp"])


def assert_paid_once(
    platform: Platform, paid: Sequence[dict[str, Any]], payee: str, payee_before: Decimal
) -> None:
    """Each payout confirmed by a successful transaction of its own that moved its amount, the
    payee richer by exactly their sum (so no other transfer reached it), the events once each."""
    hashes = [payout["tx_hash"] for payout in paid]
    assert all(hashes) and len(set(hashes)) == len(paid), hashes
    for payout in paid:
        assert payout["status"] == "confirmed", payout
        info = receipt(platform, payout["tx_hash"])
        # Not on this platform's chain at all: another platform sharing the database drove it.
        assert info, f"{payout['id']}: {payout['tx_hash']} is unknown to the platform's node"
        assert info["receipt"]["result"] == "SUCCESS", info
        (log,) = info["log"]
        assert Decimal(int(log["data"], 16)) / 1_000_000 == Decimal(payout["amount"])
        assert payout["address"] == payee
    total = sum(Decimal(payout["amount"]) for payout in paid)
    assert usdt_at(platform, payee) - payee_before == total
    for payout in paid:
        assert events_of(payout["id"]) == ["PayoutCreated", "PayoutPaid"], payout["id"]
