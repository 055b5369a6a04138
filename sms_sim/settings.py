"""The stand-in's settings: the one account it knows and the numbers that account may send from."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True, kw_only=True)
class SimSettings:
    account_sid: str
    auth_token: str
    from_numbers: frozenset[str]
    delivery_delay: float = 0.0  # seconds from queued to delivered, as a later GET shows it
    clock: Callable[[], float] = field(default=time.time)
