"""One bot's pending updates, and getUpdates' long polling with Telegram's confirmation rules.

An update stays until it is confirmed: by a getUpdates whose offset is higher than its id, or
by a 2xx from the webhook. A second getUpdates ends the one still waiting with 409 "terminated
by other getUpdates request" (the error two copies of a bot get in production), and while a
webhook is set getUpdates is refused, so a test sees the same conflicts an operator would.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

from telegram_sim.errors import terminated_by_other_poll, webhook_active

# Telegram keeps unconfirmed updates for 24 hours; here a bound on memory takes that role.
MAX_PENDING = 100_000


class UpdateQueue:
    def __init__(self, first_update_id: int = 1) -> None:
        self._pending: deque[dict[str, Any]] = deque()
        self.next_update_id = first_update_id
        self._changed = asyncio.Event()
        self._poll_generation = 0
        self.webhook_active = False
        self.closed = False

    def __len__(self) -> int:
        return len(self._pending)

    def push(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": self.next_update_id, kind: payload}
        self.next_update_id += 1
        self._pending.append(update)
        if len(self._pending) > MAX_PENDING:
            self._pending.popleft()
        self.notify()
        return update

    def head(self, limit: int) -> list[dict[str, Any]]:
        return [self._pending[i] for i in range(min(limit, len(self._pending)))]

    def confirm(self, offset: int) -> None:
        """getUpdates' offset: forget ids below a positive one; keep the last -offset if < 0."""
        if offset > 0:
            while self._pending and self._pending[0]["update_id"] < offset:
                self._pending.popleft()
        elif offset < 0:
            while len(self._pending) > -offset:
                self._pending.popleft()

    def confirm_through(self, update_id: int) -> None:
        self.confirm(update_id + 1)

    def drop_all(self) -> None:
        self._pending.clear()

    def notify(self) -> None:
        """Wake everyone waiting (pollers, the webhook deliverer) to look again."""
        self._changed.set()
        self._changed = asyncio.Event()

    def close(self) -> None:
        self.closed = True
        self.notify()

    async def wait_changed(self, within: float | None) -> None:
        """Return when the queue changes, or after `within` seconds (None: no limit)."""
        changed = self._changed
        try:
            await asyncio.wait_for(changed.wait(), within)
        except TimeoutError:
            return

    async def poll(self, offset: int, limit: int, wait: float) -> list[dict[str, Any]]:
        """getUpdates: up to `limit` updates, waiting up to `wait` seconds for the first."""
        if self.webhook_active:
            raise webhook_active()
        self.confirm(offset)
        self._poll_generation += 1
        mine = self._poll_generation
        self.notify()  # an earlier poller still waiting wakes up and finds it was superseded
        deadline = time.monotonic() + wait
        while True:
            if mine != self._poll_generation:
                raise terminated_by_other_poll()
            if self.webhook_active:
                raise webhook_active()
            batch = self.head(limit)
            remaining = deadline - time.monotonic()
            if batch or remaining <= 0 or self.closed:
                return batch
            await self.wait_changed(remaining)
