"""Rates and rate-limit decisions, as the use cases and the edge speak of them.

The limiter itself is Redis's (app/adapters/redis/rate_limits.py: GCRA, one Lua script); the
tiers and what they limit are in web/rate_limits.py and docs/security.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Protocol

# --- rates -------------------------------------------------------------------------------------

PERIODS: Final = {"second": 1.0, "minute": 60.0, "hour": 3600.0}
MAX_COUNT: Final = 10**9
RATE_FORMS: Final = "expected N/second, N/minute or N/hour, e.g. 100/minute"

# ASCII digits only (``\d`` would take Arabic-Indic ones too), at most ten of them so a runaway
# value is refused by its length before it is converted; the unit singular or plural.
_RATE: Final = re.compile(r"([0-9]{1,10})/(second|minute|hour)s?", re.IGNORECASE)


@dataclass(frozen=True)
class Rate:
    """``count`` requests per ``period`` seconds; ``count`` is also the burst."""

    count: int
    period: float

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_COUNT:
            raise ValueError(f"a rate's count must be from 1 to {MAX_COUNT}, not {self.count}")
        if not self.period > 0:
            raise ValueError(f"a rate's period must be positive, not {self.period}")

    def __str__(self) -> str:
        unit = next((name for name, seconds in PERIODS.items() if seconds == self.period), None)
        return f"{self.count}/{unit}" if unit else f"{self.count}/{self.period:g}s"


def parse_rate(text: str) -> Rate:
    """``"100/minute"`` → ``Rate(100, 60.0)``; anything else is a ValueError naming the forms."""
    match = _RATE.fullmatch(text.strip())
    count = int(match.group(1)) if match else 0
    if match is None or not 1 <= count <= MAX_COUNT:
        raise ValueError(
            f"invalid rate {text!r}: {RATE_FORMS}, with N a whole number from 1 to {MAX_COUNT}"
        )
    return Rate(count=count, period=PERIODS[match.group(2).lower()])


# --- decisions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """What one ``hit`` decided, with what a caller needs for the RateLimit-* headers."""

    allowed: bool
    limit: int  # the rate's count
    remaining: int  # requests still allowed right now
    reset_after: float  # seconds until the bucket is full again
    retry_after: float  # seconds until this request would be allowed; 0 when it was


class Limiter(Protocol):
    async def hit(self, key: str, rate: Rate, *, cost: int = 1) -> Decision:
        """Spend ``cost`` of ``key``'s budget if it is left (allowed when the limiter is down)."""
        ...

    async def peek(self, key: str, rate: Rate) -> Decision:
        """Whether one more would be allowed now, spending nothing."""
        ...

    async def refund(self, key: str, rate: Rate) -> None:
        """Give back one request an earlier ``hit`` spent."""
        ...
