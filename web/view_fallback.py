"""Where the customer's view comes from when Redis has none: the invoice's own table.

Redis holds the live views (app/adapters/redis/live_views.py) but is a cache: flushed or restarted,
it forgets them. The invoice aggregate keeps its whole event history, so the worker owning the
invoice rebuilds the public view by folding those events through the same code the live agent uses
(without the payments' confirmation counts, which live in payment events; the next change brings
them back). Another worker asks the owner over ``/internal/v1/…``, which only ever reads locally.
"""

from __future__ import annotations

from typing import Any

from aiohttp import ClientError, ClientTimeout
from aiohttp import web as aioweb
from yarl import URL

from app.adapters.redis.live_views import State, merge_event, render_view
from app.domain.invoice import Invoice
from app.faust_app import aiohttp_application, app, settings
from app.runtime.routing import same_worker
from tables.invoices import invoices
from web.errors import ApiError
from web.public import set_view_fallback

_TIMEOUT = ClientTimeout(total=5)


def local_view(invoice_id: str) -> dict[str, Any] | None:
    stored = invoices.get(invoice_id)
    if stored is None:
        return None
    state: State | None = None
    for event in Invoice.from_dict(stored).history:
        state = merge_event(state, event) or state
    view = render_view(state, token_contract=settings.chain.usdt_contract)
    if view is not None:
        view.pop("version", None)  # version 0: any live change replaces it
    return view


async def view_from_owner(invoice_id: str) -> dict[str, Any] | None:
    try:
        owner = URL(str(app.router.key_store(invoices.name, invoice_id)))
    except KeyError:
        return None
    if same_worker(owner):
        return local_view(invoice_id)
    try:
        async with app.http_client.get(
            owner.with_path(f"/internal/v1/invoices/{invoice_id}/public-view"), timeout=_TIMEOUT
        ) as response:
            return dict(await response.json()) if response.status == 200 else None
    except (ClientError, TimeoutError):
        return None


async def internal_public_view(request: aioweb.Request) -> aioweb.Response:
    invoice_id = request.match_info["invoice_id"]
    view = local_view(invoice_id)
    if view is None:
        raise ApiError(
            404, "invoice_not_found", f"no invoice {invoice_id} here", param="invoice_id"
        )
    return aioweb.json_response(view)


aiohttp_application().router.add_get(
    "/internal/v1/invoices/{invoice_id}/public-view", internal_public_view
)
set_view_fallback(view_from_owner)
