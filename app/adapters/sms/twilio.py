"""``SmsSender`` over Twilio's Messages REST API: ``POST /2010-04-01/Accounts/{sid}/Messages.json``.

Configured by ``SMS_PROVIDER=twilio``, ``TWILIO_ACCOUNT_SID``, ``TWILIO_AUTH_TOKEN``, ``SMS_FROM``
and ``TWILIO_BASE_URL`` (https://api.twilio.com unless a stand-in such as ``sms_sim`` answers).

What the caller sees decides whether a notice is tried again, so the adapter sorts every outcome
into one of two errors: ``NoticeRejected`` when this message can never be sent (an invalid
number, a body Twilio refuses), ``DependencyUnavailable`` when it may go through later (Twilio
down or limiting us, the network, or our own configuration, which an operator can fix).
https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any, Final

import aiohttp

from app.adapters.sms.off import NoSms
from app.services.errors import DependencyUnavailable, NoticeRejected

API_VERSION: Final = "2010-04-01"
DEFAULT_BASE_URL: Final = "https://api.twilio.com"
# ``fullmatch`` rather than ``^…$``: ``$`` would also accept a number followed by a newline.
E164: Final = re.compile(r"\+[1-9][0-9]{6,14}")
ACCOUNT_SID: Final = re.compile(r"AC[0-9a-fA-F]{32}")
MAX_BODY_CHARS: Final = 1600  # Twilio refuses longer bodies (error 21617)
# A Message resource is about 1 KiB; anything far larger is not Twilio talking.
MAX_RESPONSE_BYTES: Final = 64 * 1024
# Answers that say "not now" rather than "never": rate limited, or the request timed out.
RETRYABLE_CLIENT_STATUSES: Final = frozenset({408, 429})
# Twilio answers these when the account, the token or the URL is wrong: our configuration, not
# the message. Rejecting the notice for good would lose every SMS until the fix; as
# DependencyUnavailable they wait and go out once the operator corrects TWILIO_*.
CONFIGURATION_STATUSES: Final = frozenset({401, 403, 404})
# Twilio's codes for a From number our account cannot send from (21606: not an SMS-capable
# number of this account; 21212: not a valid From): our configuration, like a refused token.
SENDER_NUMBER_ERRORS: Final = frozenset({21212, 21606})


class TwilioSms:
    """Sends each text as one Twilio Message, through one HTTP session reused across sends."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 10.0,
    ) -> None:
        # Refused at start-up, naming the variable, rather than on the first notice.
        if not ACCOUNT_SID.fullmatch(account_sid):
            raise ValueError("TWILIO_ACCOUNT_SID must be 'AC' followed by 32 hex digits")
        if not auth_token:
            raise ValueError("TWILIO_AUTH_TOKEN must not be empty")
        if not E164.fullmatch(from_number):
            raise ValueError("SMS_FROM must be an international number like +15005550006 (E.164)")
        if not base_url.startswith(("https://", "http://")):
            raise ValueError("TWILIO_BASE_URL must be an http:// or https:// URL")
        if timeout <= 0:
            raise ValueError("the Twilio timeout must be greater than 0 seconds")
        self._authorization = _basic_auth(account_sid, auth_token)
        self._from = from_number
        self._base_url = base_url.rstrip("/")
        self._url = f"{self._base_url}/{API_VERSION}/Accounts/{account_sid}/Messages.json"
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def send(self, to: str, body: str) -> str:
        """Hand one text to Twilio and return its Message SID. Twilio has no idempotency key
        for messages: a send retried after a lost answer may reach the phone twice."""
        check_message(to, body)
        try:
            async with self._client().post(
                self._url,
                data={"To": to, "From": self._from, "Body": body},
                allow_redirects=False,
            ) as response:
                status = response.status
                raw = await _read_bounded(response)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise DependencyUnavailable(
                f"Twilio ({self._base_url}) did not answer: {type(exc).__name__} {exc}".rstrip()
            ) from exc
        if status == 201:
            return self._message_sid(raw)
        raise self._refusal(to, status, raw)

    async def close(self) -> None:
        """Close the HTTP session; a later send opens a new one."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use: a ClientSession belongs to the running event loop.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                headers={
                    "Authorization": self._authorization,
                    "Accept": "application/json",
                    "User-Agent": "crypto-checkout",
                },
            )
        return self._session

    def _message_sid(self, raw: bytes) -> str:
        # Twilio took the message but its answer cannot be read: a retry may send it twice,
        # which beats never telling the merchant.
        sid = _json_object(raw).get("sid")
        if not isinstance(sid, str) or not sid:
            raise DependencyUnavailable(
                f"Twilio ({self._base_url}) answered 201 without a message sid: {_excerpt(raw)}"
            )
        return sid

    def _refusal(self, to: str, status: int, raw: bytes) -> Exception:
        error = _json_object(raw)
        code, message = error.get("code"), error.get("message")
        said = f"error {code}: {message}" if code is not None else f"HTTP {status}"
        if status in CONFIGURATION_STATUSES or code in SENDER_NUMBER_ERRORS:
            return DependencyUnavailable(
                f"Twilio refused our account, credentials or sender ({said}): check "
                "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_BASE_URL and SMS_FROM; the SMS is "
                "retried once they are fixed"
            )
        if 400 <= status < 500 and status not in RETRYABLE_CLIENT_STATUSES and code is not None:
            return NoticeRejected(f"Twilio refused the SMS to {to} ({said})")
        # 429, 5xx, a redirect, or a 4xx without Twilio's error body (a proxy, a wrong
        # TWILIO_BASE_URL): nothing says this message is at fault, so it may work later.
        return DependencyUnavailable(
            f"Twilio ({self._base_url}) could not take the SMS now (HTTP {status}, {said})"
            if code is not None
            else f"Twilio ({self._base_url}) answered HTTP {status}: {_excerpt(raw)}"
        )


def _basic_auth(login: str, password: str) -> str:
    # Built by hand: aiohttp 3.14 deprecates BasicAuth and older releases lack its replacement.
    credentials = base64.b64encode(f"{login}:{password}".encode()).decode("ascii")
    return f"Basic {credentials}"


def check_message(to: str, body: str) -> None:
    """Refuse before any request what Twilio would refuse anyway. An invalid number or an
    over-long text is the notice's own content (NoticeRejected); an empty body or a NUL can only
    come from a defect in the code writing the notice (ValueError), which should fail loudly."""
    if not E164.fullmatch(to):
        raise NoticeRejected(
            f"the SMS number {to!r} is not an international number like +4915112345678 (E.164)",
            param="to",
        )
    if not body.strip():
        raise ValueError("an SMS body must not be empty")
    if "\x00" in body:
        raise ValueError("an SMS body must not contain a NUL character")
    if len(body) > MAX_BODY_CHARS:
        raise NoticeRejected(
            f"the SMS text has {len(body)} characters; Twilio takes at most {MAX_BODY_CHARS}",
            param="body",
        )


async def _read_bounded(response: aiohttp.ClientResponse) -> bytes:
    body = bytearray()
    async for chunk in response.content.iter_any():
        body += chunk
        if len(body) > MAX_RESPONSE_BYTES:
            raise DependencyUnavailable(
                f"Twilio's answer (HTTP {response.status}) is over {MAX_RESPONSE_BYTES} bytes: "
                "not the API we expect; check TWILIO_BASE_URL"
            )
    return bytes(body)


def _json_object(raw: bytes) -> dict[str, Any]:
    """The answer as a JSON object, or ``{}`` when it is anything else."""
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _excerpt(raw: bytes, limit: int = 200) -> str:
    text = raw[:limit].decode("utf-8", "replace").strip()
    return repr(text) if text else "an empty body"


def sms_sender(
    provider: str,
    *,
    account_sid: str | None = None,
    auth_token: str | None = None,
    from_number: str | None = None,
    base_url: str | None = None,
) -> TwilioSms | NoSms:
    """The sender ``SMS_PROVIDER`` names, built from the ``TWILIO_*`` and ``SMS_FROM`` values;
    a ValueError names the variable that is missing or wrong."""
    if provider == "none":
        return NoSms()
    if provider != "twilio":
        raise ValueError(f"SMS_PROVIDER must be none or twilio, not {provider!r}")
    if not account_sid or not auth_token or not from_number:
        values = {
            "TWILIO_ACCOUNT_SID": account_sid,
            "TWILIO_AUTH_TOKEN": auth_token,
            "SMS_FROM": from_number,
        }
        missing = ", ".join(name for name, value in values.items() if not value)
        raise ValueError(f"SMS_PROVIDER=twilio needs {missing}")
    return TwilioSms(account_sid, auth_token, from_number, base_url or DEFAULT_BASE_URL)
