"""Who may do what: scopes, roles and the principal a request acts as.

Every merchant operation needs one **scope**. An API key holds the scopes it was given; a user
holds those of their **role** (``ROLE_SCOPES``). Nobody hands out a scope they do not hold: a key
with ``keys:write`` makes keys with at most its own scopes, an owner invites users with any role.
The platform **admin** belongs to no merchant and acts only on the admin endpoints and the whole
audit log. docs/security.md prints these tables; scope names are public API and never renamed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from app.domain.errors import CheckoutError, InsufficientScope, MerchantSuspended, RuleViolation
from app.domain.merchant import Merchant


class Scope(StrEnum):
    INVOICES_READ = "invoices:read"
    INVOICES_WRITE = "invoices:write"
    SETTLEMENTS_READ = "settlements:read"
    REFUNDS_WRITE = "refunds:write"
    PAYOUTS_READ = "payouts:read"
    PAYOUTS_WRITE = "payouts:write"
    WEBHOOKS_READ = "webhooks:read"
    WEBHOOKS_WRITE = "webhooks:write"
    REPORTS_READ = "reports:read"
    KEYS_WRITE = "keys:write"
    USERS_WRITE = "users:write"
    AUDIT_READ = "audit:read"


ALL_SCOPES: Final = frozenset(Scope)


class Role(StrEnum):
    OWNER = "owner"
    DEVELOPER = "developer"
    VIEWER = "viewer"
    ADMIN = "admin"  # the platform's, not a merchant's


MERCHANT_ROLES: Final = (Role.OWNER, Role.DEVELOPER, Role.VIEWER)

_READS: Final = frozenset(
    {
        Scope.INVOICES_READ,
        Scope.SETTLEMENTS_READ,
        Scope.PAYOUTS_READ,
        Scope.WEBHOOKS_READ,
        Scope.REPORTS_READ,
    }
)
ROLE_SCOPES: Final[dict[Role, frozenset[Scope]]] = {
    Role.OWNER: ALL_SCOPES,
    # Builds the integration: everything but moving money out, the team and the audit log.
    Role.DEVELOPER: _READS
    | {Scope.INVOICES_WRITE, Scope.REFUNDS_WRITE, Scope.WEBHOOKS_WRITE, Scope.KEYS_WRITE},
    Role.VIEWER: _READS,
    Role.ADMIN: frozenset(),  # no merchant's scopes: the admin endpoints ask for the role
}


class LastOwner(RuleViolation):
    """A change that would leave a merchant without an owner who can sign in."""

    code = "last_owner"


class InvalidScopes(CheckoutError):
    """A scope list with an unknown name, or empty."""

    code = "scopes_invalid"


def parse_scopes(values: Iterable[object], *, field: str = "scopes") -> frozenset[Scope]:
    """Scope names as given in a request (a bounded list of strings) → the set, or a 400."""
    scopes: set[Scope] = set()
    for value in values:
        try:
            if not isinstance(value, str):
                raise ValueError(value)
            scopes.add(Scope(value))
        except ValueError:
            shown = repr(value)[:60]
            known = ", ".join(scope.value for scope in Scope)
            raise InvalidScopes(f"unknown scope {shown}; known: {known}", param=field) from None
    if not scopes:
        raise InvalidScopes("give at least one scope", param=field)
    return frozenset(scopes)


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: an API key or a signed-in user, of a merchant or the platform.

    ``actor_id`` is the key id (``key_…``) or the user id (``usr_…``): what the audit log and the
    rate limits name.
    """

    kind: str  # "api_key" or "user"
    actor_id: str
    merchant: Merchant | None
    role: Role | None
    scopes: frozenset[Scope]
    suspended: bool = False
    email_verified: bool = True  # False: a signed-up owner who has not followed the link yet

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def merchant_id(self) -> str | None:
        return None if self.merchant is None else self.merchant.merchant_id

    def require(self, scope: Scope) -> Merchant:
        """The merchant to act for, if this principal holds ``scope`` for it."""
        if self.suspended:
            raise MerchantSuspended(
                "this merchant account is suspended; contact the platform's support"
            )
        if self.merchant is None or scope not in self.scopes:
            raise InsufficientScope(
                f"this operation needs the {scope.value!r} scope, which "
                f"{'this API key' if self.kind == 'api_key' else 'your role'} does not have",
                param=scope.value,
            )
        return self.merchant

    def may_grant(self, scopes: Iterable[Scope]) -> None:
        """Refuse handing out a scope this principal does not hold itself."""
        missing = sorted(scope.value for scope in scopes if scope not in self.scopes)
        if missing:
            raise InsufficientScope(
                f"you cannot grant scopes you do not hold: {', '.join(missing)}",
                param=missing[0],
            )
