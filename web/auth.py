"""Merchant authentication: ``Authorization: Bearer <api key>`` on every merchant endpoint."""

from __future__ import annotations

from aiohttp import web as aioweb

from app.adapters.postgres.merchants import Merchant, MerchantStore
from app.faust_app import resources
from web.errors import ApiError

_store: MerchantStore | None = None


def merchant_store() -> MerchantStore:
    """One store per worker (it caches authenticated keys), over the worker's one pool."""
    global _store
    if _store is None:
        _store = MerchantStore(resources.db)
    return _store


async def authenticate(request: aioweb.Request) -> Merchant:
    header = request.headers.get("Authorization", "")
    scheme, _, api_key = header.partition(" ")
    if scheme.lower() != "bearer" or not api_key.strip():
        raise ApiError(
            401,
            "authentication_required",
            "send your API key as 'Authorization: Bearer <api key>'",
            headers={"WWW-Authenticate": 'Bearer realm="crypto-checkout"'},
        )
    merchant = await merchant_store().authenticate(api_key.strip())
    if merchant is None:
        raise ApiError(
            401,
            "invalid_api_key",
            "the API key is not valid (unknown, malformed or revoked)",
            headers={"WWW-Authenticate": 'Bearer realm="crypto-checkout", error="invalid_token"'},
        )
    return merchant
