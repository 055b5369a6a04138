"""Rate limits in Redis, one budget shared by every worker, decided atomically.

Each limited thing (an IP address, a merchant's API key, …) has a bucket at
``checkout:rl:<key>`` holding one number: its theoretical arrival time (TAT), the GCRA's
(generic cell rate algorithm) moment at which the bucket would be full again. A rate of
``5/minute`` lets 5 requests through at once, then one every 12 s; a request is refused when
letting it through would push the TAT more than one period past now. One Lua script reads the TAT,
decides and writes it back, so two workers hitting the same bucket at the same moment never both
take its last request, and it reads the clock of the Redis server, so workers whose clocks drift
still agree. The key expires shortly after the TAT passes: an absent key is a full bucket, so
nothing is lost and idle buckets do not pile up.

**Fail open.** A rate limiter that is down must not take the API down with it; the operator sees
the metric and the log line. When Redis is unreachable or answers with an error, ``hit`` lets the
request through, counts ``checkout_rate_limiter_failures_total`` (by exception class) and logs a
warning, at most once every 10 s per process so an outage does not flood the log.

Rates come from the environment (``RATE_LIMIT_IP=100/minute``); ``parse_rate`` reads them and
says what it expected when it cannot.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Final

import redis.asyncio as aioredis
import redis.exceptions
from prometheus_client import Counter

from app.services.rate_limits import Decision, Rate

logger = logging.getLogger(__name__)

KEY_PREFIX: Final = "checkout:rl:"

RATE_LIMITER_FAILURES = Counter(
    "checkout_rate_limiter_failures_total",
    "Rate limit checks that could not reach Redis; the request was let through (fail open).",
    ["error"],  # the exception's class name
)

# --- Redis ---------------------------------------------------------------------------------------

# GCRA over integer microseconds of the Redis server's clock (a double holds them exactly until
# the year 2255). ARGV: the emission interval (µs per request), the burst, the cost, and 1 to
# spend it, 0 only to ask (``peek``), 2 to give it back (``refund``).
# The TAT is written with '%.0f': Lua's own number-to-string keeps only 14 digits and would
# round a microsecond timestamp. Returns {allowed, remaining, reset_after_us, retry_after_us}.
_GCRA: Final = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local spend = ARGV[4] == '1'
local tolerance = interval * burst
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
if ARGV[4] == '2' then
  -- refund: give back what an earlier hit spent
  tat = math.max(now, tat - cost * interval)
  if tat > now then
    local ttl = math.ceil((tat - now) / 1000) + 1000
    redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', string.format('%d', ttl))
  else
    redis.call('DEL', KEYS[1])
  end
  return {1, math.floor((tolerance - (tat - now)) / interval), tat - now, 0}
end
local new_tat = tat + cost * interval
local allow_at = new_tat - tolerance
if now < allow_at then
  return {0, math.floor((tolerance - (tat - now)) / interval), tat - now, allow_at - now}
end
if not spend then
  return {1, math.floor((tolerance - (tat - now)) / interval), tat - now, 0}
end
local ttl_ms = math.ceil((new_tat - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', string.format('%d', ttl_ms))
return {1, math.floor((tolerance - (new_tat - now)) / interval), new_tat - now, 0}
"""

MICROSECONDS: Final = 1_000_000
OUTAGE_WARNING_EVERY: Final = 10.0  # seconds


class RateLimiter:
    """GCRA rate limits in Redis, shared by all the workers using the same Redis and prefix."""

    def __init__(self, redis: aioredis.Redis, *, prefix: str = KEY_PREFIX) -> None:
        self._prefix = prefix
        # Registering only computes the script's SHA; the first call loads it into Redis.
        self._gcra = redis.register_script(_GCRA)

    async def hit(self, key: str, rate: Rate, *, cost: int = 1) -> Decision:
        """Spend ``cost`` of ``key``'s budget under ``rate`` if it is left; allowed if Redis is out.

        A cost above the rate's count could never be allowed, so it is a ValueError, as is a cost
        below one.
        """
        if not 1 <= cost <= rate.count:
            raise ValueError(f"cost must be from 1 to the rate's count {rate.count}, not {cost}")
        return await self._run(key, rate, cost, spend=True)

    async def peek(self, key: str, rate: Rate) -> Decision:
        """Whether one more request would be allowed now; spends nothing (sign-in lockouts
        look before the password is checked, and spend only on a failure)."""
        return await self._run(key, rate, 1, spend=False)

    async def refund(self, key: str, rate: Rate) -> None:
        """Give back one request an earlier ``hit`` spent (a sign-in that succeeded after all)."""
        await self._run(key, rate, 1, spend=None)

    async def _run(self, key: str, rate: Rate, cost: int, *, spend: bool | None) -> Decision:
        # Whole microseconds per request, rounded down: 7/second is 142857 µs, a rate that errs
        # by less than a microsecond per request in the caller's favour. A rate finer than one a
        # microsecond (over a million a second) is held to one a microsecond.
        interval_us = max(1, round(rate.period * MICROSECONDS) // rate.count)
        try:
            reply = await self._gcra(
                keys=[self._prefix + key],
                args=[interval_us, rate.count, cost, 2 if spend is None else int(spend)],
            )
        # redis.exceptions.TimeoutError and ConnectionError are RedisErrors; the built-in
        # TimeoutError is an OSError, named for the reader.
        except (redis.exceptions.RedisError, OSError, TimeoutError) as exc:
            return _let_through(rate, cost, exc)
        allowed, remaining, reset_after_us, retry_after_us = (int(value) for value in reply)
        return Decision(
            allowed=bool(allowed),
            limit=rate.count,
            # Never negative, even if the Redis server's clock stepped back.
            remaining=max(0, remaining),
            reset_after=max(0, reset_after_us) / MICROSECONDS,
            retry_after=max(0, retry_after_us) / MICROSECONDS,
        )


class _EveryAtMost:
    """True at most once per ``seconds`` of the monotonic clock (a log line's throttle)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._last = -math.inf

    def __call__(self) -> bool:
        now = time.monotonic()
        if now - self._last < self.seconds:
            return False
        self._last = now
        return True


# One per process: every limiter of a worker shares the same Redis, hence the same outage.
_outage_warning = _EveryAtMost(OUTAGE_WARNING_EVERY)


def _let_through(rate: Rate, cost: int, exc: BaseException) -> Decision:
    """Fail open: the request goes on, the failure is counted and (now and then) logged."""
    RATE_LIMITER_FAILURES.labels(error=type(exc).__name__).inc()
    if _outage_warning():
        logger.warning(
            "rate limiter cannot reach Redis (%s: %s); requests are let through while Redis is "
            "down (this warning repeats at most every %g s, see %s)",
            type(exc).__name__,
            exc,
            OUTAGE_WARNING_EVERY,
            "checkout_rate_limiter_failures_total",
        )
    return Decision(
        allowed=True,
        limit=rate.count,
        remaining=max(0, rate.count - cost),
        reset_after=0.0,
        retry_after=0.0,
    )
