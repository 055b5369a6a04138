"""Verify a crypto-checkout webhook: copy this function into your receiver (standard library only).

Pass the raw request body exactly as received (bytes, before any JSON parsing), the value of the
Checkout-Signature header, and your endpoint's signing secret (whsec_...).
"""

import hashlib
import hmac
import json
import time


def verify_webhook(
    payload: bytes, header: str, secret: str, tolerance: int = 300, now: int | None = None
) -> dict:
    """Return the webhook's JSON body if it is signed with `secret` and fresh; else ValueError."""
    timestamp = None
    signatures = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            timestamp = value
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not timestamp.isascii() or not timestamp.isdigit() or not signatures:
        raise ValueError("malformed Checkout-Signature header")
    current = int(time.time()) if now is None else now
    if abs(current - int(timestamp)) > tolerance:
        raise ValueError("webhook timestamp outside the tolerance: possibly a replay")
    signed = timestamp.encode() + b"." + payload
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected.encode(), s.encode()) for s in signatures):
        raise ValueError("webhook signature does not match")
    return json.loads(payload)
