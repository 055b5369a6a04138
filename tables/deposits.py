"""The payment agent's state, partitioned like checkout.deposits (by deposit address)."""

from __future__ import annotations

from app.faust_app import app
from app.runtime.topics import DEPOSITS

# deposit address → {"registration": DepositRegistered, "payments": {payment id: Payment}}
deposits = app.Table(
    "deposits",
    # Raw keys: the same bytes the producers send, so a key hashes to the same partition in
    # the source topic and in the changelog (table reads are routed by that hash).
    key_type=bytes,
    partitions=DEPOSITS.partitions,
    help="Each deposit address's invoice registration and the payments made to it",
)

# "<partition>" → {"head": ChainHeadAdvanced, "awaiting": [deposit addresses]}: the last chain
# head this partition saw, and the addresses whose payments still count confirmations.
confirmation_watch = app.Table(
    "confirmation-watch",
    # Raw keys: the same bytes the producers send, so a key hashes to the same partition in
    # the source topic and in the changelog (table reads are routed by that hash).
    key_type=bytes,
    partitions=DEPOSITS.partitions,
    help="Per partition: the last chain head and the addresses awaiting confirmations",
)
