"""Who is asking, for every merchant and admin endpoint: ``Authorization: Bearer <credential>``.

The credential is an API key (``ck_…``, for servers) or a user's access token (a JWT from
``POST /api/v1/auth/login``, for the dashboard); app/services/access.py tells them apart and
returns the ``Principal``. A view asks ``merchant(request, scope)`` for the merchant it acts for:
a missing scope is 403 ``insufficient_scope`` naming it, a suspended merchant 403
``merchant_suspended``. Right after authentication, before the view does any work, the caller's
own rate-limit tier is charged (web/rate_limits.py).
"""

from __future__ import annotations

from typing import Final

from aiohttp import web as aioweb

from app.domain.access import Principal, Scope
from app.domain.merchant import Merchant
from app.services.access import AccessControl
from web.errors import ApiError
from web.rate_limits import RequestLimits

PRINCIPAL: Final = aioweb.RequestKey("checkout.principal", Principal)


def principal_of(request: aioweb.Request) -> Principal | None:
    """Who the request acted as, once authenticated (the audit log reads it)."""
    return request.get(PRINCIPAL)


class Authenticator:
    def __init__(self, access: AccessControl, limits: RequestLimits | None = None) -> None:
        self._access = access
        self._limits = limits

    async def principal(self, request: aioweb.Request) -> Principal:
        held = request.get(PRINCIPAL)
        if held is not None:
            return held
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            raise ApiError(
                401,
                "authentication_required",
                "send an API key or an access token as 'Authorization: Bearer <credential>'",
                headers={"WWW-Authenticate": 'Bearer realm="crypto-checkout"'},
            )
        principal = await self._access.authenticate(credential.strip())
        request[PRINCIPAL] = principal
        if self._limits is not None:
            await self._limits.charge(request, principal)
        return principal

    async def merchant(self, request: aioweb.Request, scope: Scope) -> Merchant:
        """The merchant the request acts for, if its credential holds ``scope``."""
        return (await self.principal(request)).require(scope)
