"""Merchant authentication: ``Authorization: Bearer <api key>`` on every merchant endpoint."""

from __future__ import annotations

from aiohttp import web as aioweb

from app.domain.merchant import Merchant
from app.services.ports import MerchantStore
from web.errors import ApiError


class Authenticator:
    def __init__(self, merchants: MerchantStore) -> None:
        self._merchants = merchants

    async def authenticate(self, request: aioweb.Request) -> Merchant:
        header = request.headers.get("Authorization", "")
        scheme, _, api_key = header.partition(" ")
        if scheme.lower() != "bearer" or not api_key.strip():
            raise ApiError(
                401,
                "authentication_required",
                "send your API key as 'Authorization: Bearer <api key>'",
                headers={"WWW-Authenticate": 'Bearer realm="crypto-checkout"'},
            )
        merchant = await self._merchants.authenticate(api_key.strip())
        if merchant is None:
            raise ApiError(
                401,
                "invalid_api_key",
                "the API key is not valid (unknown, malformed or revoked)",
                headers={
                    "WWW-Authenticate": 'Bearer realm="crypto-checkout", error="invalid_token"'
                },
            )
        return merchant
