"""The platform admin's merchant operations: list, set the fee and the confirmation override,
suspend and unsuspend.

A change applies to the merchant's next request on any worker: the cached merchant is dropped
everywhere (``AccessControl.changed``). A fee is fixed on each invoice when it is created, so a
new fee counts from the next invoice on; invoices already created keep theirs. A suspended
merchant's keys and users are refused with 403 ``merchant_suspended``; its invoices are still
watched, confirmed and settled, since its customers paid.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Final

from app.domain.access import Principal
from app.domain.confirmations import check_confirmation_override
from app.domain.errors import CheckoutError, Forbidden, NotFound
from app.domain.fees import parse_fee_percentage
from app.services.access import AccessControl
from app.services.ports import MerchantAccount, MerchantAccounts

MAX_PAGE: Final = 100


class AdminOnly(Forbidden):
    code = "admin_only"


class MerchantNotFound(NotFound):
    code = "merchant_not_found"


class NothingToChange(CheckoutError):
    code = "parameter_missing"


def require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise AdminOnly("only the platform admin may do this")


class PlatformAdmin:
    def __init__(self, merchants: MerchantAccounts, access: AccessControl) -> None:
        self._merchants = merchants
        self._access = access

    async def merchants(
        self, principal: Principal, *, after: str | None, limit: int
    ) -> list[MerchantAccount]:
        require_admin(principal)
        return await self._merchants.accounts(after=after, limit=min(limit, MAX_PAGE))

    async def merchant(self, principal: Principal, merchant_id: str) -> MerchantAccount:
        require_admin(principal)
        return _found(await self._merchants.account(merchant_id), merchant_id)

    async def update(
        self, principal: Principal, merchant_id: str, changes: Mapping[str, object]
    ) -> MerchantAccount:
        """``fee_percentage``, ``confirmations_override`` (null: the amount-based policy) and/or
        ``underpaid_tolerance`` (null: underpayments always expire)."""
        require_admin(principal)
        parsed: dict[str, Decimal | int | None] = {}
        if "fee_percentage" in changes:
            parsed["fee_percentage"] = parse_fee_percentage(changes["fee_percentage"])
        if "confirmations_override" in changes:
            override = changes["confirmations_override"]
            if override is not None and (
                not isinstance(override, int) or isinstance(override, bool)
            ):
                raise CheckoutError(
                    "confirmations_override must be a whole number or null",
                    param="confirmations_override",
                )
            parsed["confirmation_override"] = (
                None
                if override is None
                else check_confirmation_override(override, field="confirmations_override")
            )
        if "underpaid_tolerance" in changes:
            tolerance = changes["underpaid_tolerance"]
            try:
                parsed["underpaid_tolerance"] = (
                    None if tolerance is None else parse_fee_percentage(tolerance)
                )
            except CheckoutError as exc:
                raise CheckoutError(
                    'underpaid_tolerance must be a percent from 0 to 100 (e.g. "99.5") or null'
                    f": {exc.message}",
                    param="underpaid_tolerance",
                ) from None
        if not parsed:
            raise NothingToChange(
                "give fee_percentage, confirmations_override and/or underpaid_tolerance"
            )
        updated = _found(await self._merchants.update(merchant_id, parsed), merchant_id)
        await self._access.changed(f"merchant:{merchant_id}")
        return updated

    async def set_suspended(
        self, principal: Principal, merchant_id: str, suspended: bool
    ) -> MerchantAccount:
        require_admin(principal)
        updated = _found(await self._merchants.set_suspended(merchant_id, suspended), merchant_id)
        await self._access.changed(f"merchant:{merchant_id}")
        return updated


def _found(account: MerchantAccount | None, merchant_id: str) -> MerchantAccount:
    if account is None:
        raise MerchantNotFound(f"no merchant {merchant_id}", param="merchant_id")
    return account
