"""Session tokens for merchant users: short-lived JWT access tokens and opaque refresh tokens.

An access token is an HS256 JWT a request carries in ``Authorization: Bearer``. It is checked
without a database read, so it cannot be revoked; that is why it lives only 15 minutes. Its
claims: ``sub`` (the user), ``merchant_id`` (null for the platform admin), ``role``, ``iat``,
``exp``, ``jti``, ``iss`` and ``typ`` = ``"access"`` (so that no other kind of token we might one
day sign with the same secret passes for one).

Verification pins the algorithm to HS256 and nothing else. A JWT names its own algorithm in its
header; trusting that is how ``alg: none`` tokens (no signature at all) and RS256/HS256 confusion
(a public key used as an HMAC secret) forge tokens. Tokens signed HS384 or HS512, even with our
secret, are refused too: one algorithm, one thing to reason about. Every failure is one
``InvalidToken`` with a short reason (for logs and metrics; the client is only told 401), never a
PyJWT exception. The token's length is bounded before anything is decoded, so an oversized header
or payload costs nothing.

``exp`` and ``iat`` are checked here, against ``now``, rather than by PyJWT, which only knows the
real clock: the tests show expiry by passing a later ``now`` instead of sleeping. The signature,
the algorithm, the issuer and the presence of the claims are still PyJWT's to check.

Refresh tokens are opaque credentials kept in the database (app/services/credentials.py), so
they can be revoked; they rotate on each use (app/services/users.py).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import jwt

from app.domain.errors import Unauthenticated

ALGORITHM: Final = "HS256"
ACCESS_TOKEN_TYPE: Final = "access"  # noqa: S105 - a claim value, not a secret
MIN_SECRET_BYTES: Final = 32
"""RFC 7518 §3.2: an HS256 key must be at least as long as the hash output, 256 bits."""
MAX_TOKEN_LENGTH: Final = 4096
"""Characters. Our access tokens are about 350; anything near this bound is not one of ours."""
LEEWAY: Final = timedelta(seconds=10)
"""Clock skew tolerated between the workers that issue and those that verify."""


# Claims PyJWT must find (non-null). ``merchant_id`` is checked apart: null is its admin value,
# which PyJWT's ``require`` would take for "missing".
_REQUIRED_CLAIMS: Final = ["sub", "role", "iat", "exp", "iss", "jti", "typ"]


class InvalidToken(Unauthenticated):
    """A token that must not be honoured; ``reason`` says why, briefly (the client sees it too:
    "expired" tells it to refresh, anything else to sign in again)."""

    code = "invalid_token"

    def __init__(self, reason: str) -> None:
        super().__init__(f"the access token is not valid: {reason}")
        self.reason = reason


@dataclass(frozen=True)
class AccessClaims:
    """What a valid access token says. Times are Unix seconds."""

    user_id: str
    merchant_id: str | None
    """None for the platform admin, who belongs to no merchant."""
    role: str
    issued_at: int
    expires_at: int
    token_id: str
    """The ``jti``: names this one token, e.g. in audit logs."""


class TokenIssuer:
    """Issues and verifies access tokens with one HMAC secret."""

    __slots__ = ("_access_ttl", "_issuer", "_secret")

    def __init__(
        self,
        secret: bytes,
        *,
        issuer: str = "crypto-checkout",
        access_ttl: timedelta = timedelta(minutes=15),
    ) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(
                f"the token secret is {len(secret)} bytes; HS256 needs at least {MIN_SECRET_BYTES}"
            )
        if not issuer:
            raise ValueError("the token issuer must not be empty")
        if access_ttl <= timedelta(0):
            raise ValueError("access tokens must live a positive time")
        self._secret = bytes(secret)
        self._issuer = issuer
        self._access_ttl = access_ttl

    @property
    def access_ttl(self) -> timedelta:
        return self._access_ttl

    def __repr__(self) -> str:
        # Never the secret: an issuer may end up in a log line or a traceback.
        return f"TokenIssuer(issuer={self._issuer!r}, access_ttl={self._access_ttl!r})"

    def issue_access(
        self,
        user_id: str,
        merchant_id: str | None,
        role: str,
        *,
        now: datetime | None = None,
    ) -> tuple[str, AccessClaims]:
        """A signed access token for the user, and the claims it carries."""
        if not user_id or not role or merchant_id == "":
            raise ValueError("an access token needs a user id, a role and a merchant id or None")
        issued_at = _timestamp(now)
        claims = AccessClaims(
            user_id=user_id,
            merchant_id=merchant_id,
            role=role,
            issued_at=issued_at,
            expires_at=issued_at + int(self._access_ttl.total_seconds()),
            token_id=secrets.token_hex(16),
        )
        payload = {
            "iss": self._issuer,
            "sub": claims.user_id,
            "merchant_id": claims.merchant_id,
            "role": claims.role,
            "iat": claims.issued_at,
            "exp": claims.expires_at,
            "jti": claims.token_id,
            "typ": ACCESS_TOKEN_TYPE,
        }
        return jwt.encode(payload, self._secret, algorithm=ALGORITHM), claims

    def verify_access(self, token: str, *, now: datetime | None = None) -> AccessClaims:
        """The claims of a valid access token; ``InvalidToken`` for anything else."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("too long")
        payload = self._decode(token)
        claims = _access_claims(payload)
        current = _timestamp(now)
        leeway = int(LEEWAY.total_seconds())
        if claims.expires_at <= current - leeway:
            raise InvalidToken("expired")
        if claims.issued_at > current + leeway:
            raise InvalidToken("issued in the future")
        return claims

    def _decode(self, token: str) -> dict[str, Any]:
        """The payload once PyJWT has checked the algorithm, signature, issuer and claims' presence.

        PyJWT's own time checks are off (``exp``, ``iat`` are checked against the given ``now``;
        we never issue ``nbf``); its exceptions become ``InvalidToken``.
        """
        try:
            return jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],  # pinned: never what the token's header says
                issuer=self._issuer,
                options={
                    "require": _REQUIRED_CLAIMS,
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.InvalidAlgorithmError:
            raise InvalidToken("wrong algorithm") from None
        except jwt.InvalidSignatureError:  # before DecodeError: it is one
            raise InvalidToken("bad signature") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("wrong issuer") from None
        except jwt.MissingRequiredClaimError as error:
            raise InvalidToken(f"missing claim {error.claim}") from None
        except jwt.DecodeError:
            raise InvalidToken("malformed") from None
        except jwt.PyJWTError:  # an audience, a non-string sub or jti: not a token we issued
            raise InvalidToken("invalid claims") from None


def _access_claims(payload: dict[str, Any]) -> AccessClaims:
    """The claims, type-checked: a well-signed token is ours, but a bug must not become a grant."""
    if "merchant_id" not in payload:
        raise InvalidToken("missing claim merchant_id")
    if payload["typ"] != ACCESS_TOKEN_TYPE:
        raise InvalidToken("wrong token type")
    sub, role, jti = payload["sub"], payload["role"], payload["jti"]
    merchant_id, iat, exp = payload["merchant_id"], payload["iat"], payload["exp"]
    strings_ok = all(isinstance(value, str) and value for value in (sub, role, jti))
    merchant_ok = merchant_id is None or (isinstance(merchant_id, str) and merchant_id != "")
    # bool is an int in Python; true is not a time.
    times_ok = all(type(value) is int for value in (iat, exp))
    if not (strings_ok and merchant_ok and times_ok):
        raise InvalidToken("malformed claims")
    return AccessClaims(
        user_id=sub,
        merchant_id=merchant_id,
        role=role,
        issued_at=iat,
        expires_at=exp,
        token_id=jti,
    )


def _timestamp(now: datetime | None) -> int:
    """Unix seconds of ``now`` (default: the real clock); a naive datetime is refused."""
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return int(now.timestamp())
