"""Requests between workers are signed: HMAC-SHA256 under ``INTERNAL_SECRET``.

A worker forwards a request to the worker owning the object (app/runtime/routing.py) and asks
the owner for an invoice's view over ``/internal/v1/…`` (web/view_fallback.py). Those requests
carry what only a worker may say: that the request was already forwarded (so it is not forwarded
again, and not counted twice by the rate limits) and the client's own address (the one the rate
limits and the audit log use). A client could claim both in headers of its own, so the receiving
worker believes them only under a valid signature (web/edge.py refuses anything else with 401).

The signature covers the method, the path with its query, a digest of the body, who forwarded,
the client's address and a timestamp; a signed request is good for ``MAX_SKEW`` seconds, so a
captured one cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

ROUTED_FROM: Final = "X-Checkout-Routed-From"
CLIENT_ADDRESS: Final = "X-Checkout-Client-Address"
TIMESTAMP: Final = "X-Checkout-Timestamp"
SIGNATURE: Final = "X-Checkout-Signature"
# Any of these in a request means "a worker sent this": then it must be signed.
WORKER_HEADERS: Final = (ROUTED_FROM, CLIENT_ADDRESS, TIMESTAMP, SIGNATURE)
MAX_SKEW: Final = 60


class BadWorkerSignature(Exception):
    """The request says it comes from a worker, but its signature does not hold."""


@dataclass(frozen=True)
class WorkerRequest:
    """What a verified worker request tells the receiving worker."""

    routed_from: str
    client_address: str


class WorkerSignatures:
    def __init__(self, secret: str, *, now: Callable[[], float] = time.time) -> None:
        self._key = secret.encode()
        self._now = now

    def headers(
        self, method: str, path_qs: str, body: bytes, *, routed_from: str, client_address: str
    ) -> dict[str, str]:
        """The headers that make a request to another worker believable."""
        timestamp = str(int(self._now()))
        signature = self._sign(method, path_qs, body, routed_from, client_address, timestamp)
        return {
            ROUTED_FROM: routed_from,
            CLIENT_ADDRESS: client_address,
            TIMESTAMP: timestamp,
            SIGNATURE: signature,
        }

    def verify(
        self, method: str, path_qs: str, body: bytes, headers: Mapping[str, str]
    ) -> WorkerRequest:
        try:
            routed_from = headers[ROUTED_FROM]
            client_address = headers[CLIENT_ADDRESS]
            timestamp = headers[TIMESTAMP]
            signature = headers[SIGNATURE]
        except KeyError as missing:
            raise BadWorkerSignature(f"the {missing.args[0]} header is missing") from None
        if not (timestamp.isascii() and timestamp.isdecimal()) or len(timestamp) > 12:
            raise BadWorkerSignature(f"{TIMESTAMP} is not a Unix time")
        if abs(self._now() - int(timestamp)) > MAX_SKEW:
            raise BadWorkerSignature("the signature has expired")
        expected = self._sign(method, path_qs, body, routed_from, client_address, timestamp)
        if not hmac.compare_digest(expected, signature):
            raise BadWorkerSignature("the signature does not match")
        return WorkerRequest(routed_from, client_address)

    def _sign(
        self,
        method: str,
        path_qs: str,
        body: bytes,
        routed_from: str,
        client_address: str,
        timestamp: str,
    ) -> str:
        message = "\n".join(
            (
                timestamp,
                method.upper(),
                path_qs,
                hashlib.sha256(body).hexdigest(),
                routed_from,
                client_address,
            )
        )
        return hmac.new(self._key, message.encode(), hashlib.sha256).hexdigest()
