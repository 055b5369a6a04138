"""``NoSms``: the ``SmsSender`` of a platform with no SMS provider configured."""

from __future__ import annotations

from app.services.errors import NoticeRejected


class NoSms:
    """Refuses every message for good: with ``SMS_PROVIDER=none`` no later attempt can succeed,
    so retrying would only fill the retry queue. An operator who wants SMS sets
    ``SMS_PROVIDER=twilio`` and the ``TWILIO_*`` variables."""

    async def send(self, to: str, body: str) -> str:
        raise NoticeRejected("SMS is off on this platform (SMS_PROVIDER=none)")

    async def close(self) -> None:
        """Nothing to release; here so the wiring closes any sender the same way."""
