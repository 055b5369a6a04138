"""The settlement agent's state, keyed by invoice id (one settlement per paid invoice)."""

from __future__ import annotations

from app.faust_app import app
from app.runtime.topics import DOMAIN_EVENTS

# invoice id → Settlement.to_dict(); partition = the invoice's partition of the domain events
settlements = app.Table(
    "settlements",
    # Raw keys: the same bytes the producers send, so a key hashes to the same partition in
    # the source topic and in the changelog (table reads are routed by that hash).
    key_type=bytes,
    partitions=DOMAIN_EVENTS.partitions,
    help="Settlement aggregates by the id of the invoice they settle",
)
