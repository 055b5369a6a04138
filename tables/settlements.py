"""The settlement agent's state, keyed by invoice id (one settlement per paid invoice)."""

from __future__ import annotations

from app.faust_app import app
from app.topics import DOMAIN_EVENTS

# invoice id → Settlement.to_dict(); partition = the invoice's partition of the domain events
settlements = app.Table(
    "settlements",
    partitions=DOMAIN_EVENTS.partitions,
    help="Settlement aggregates by the id of the invoice they settle",
)
