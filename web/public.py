"""Customer endpoints: no authentication, no fees. docs/payment-page.md is their contract.

- ``GET /api/v1/public/invoice/{id}`` — the invoice's public view (JSON).
- ``GET /api/v1/public/invoice/{id}/ws`` — WebSocket: the current view, then one message per change.
- ``GET /api/v1/public/invoice/{id}/events`` — the same as Server-Sent Events.
- ``GET /pay/{id}`` — the payment page (self-contained HTML, works offline of any CDN).

A worker keeps at most ``LIVE_CONNECTIONS_PER_WORKER`` live streams open, and at most
``LIVE_CONNECTIONS_PER_IP`` per client address (``LiveConnections``). Past either, a WebSocket is
accepted and closed at once with 1013 (try again later) and a reason, an SSE request is a 429
with ``Retry-After``; the payment page then polls. A WebSocket message from the client is at most
``MAX_WS_MESSAGE`` bytes (the page sends none).

Views come from Redis (app/adapters/redis/live_views.py), where the live status agent keeps them;
changes arrive by Redis pub/sub, so any worker serves any customer. When Redis has no view (expired
after its TTL, or Redis lost), the fallback is asked (web/view_fallback.py: the view folded from
the invoice's own history, on the worker that owns it). Everything sent to a customer goes through
``public_view``, which drops any key naming a fee, whatever the source.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import re
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

import orjson
from aiohttp import WSCloseCode, web
from redis.exceptions import RedisError

from app.domain.fields import IDENTIFIER_PATTERN
from app.services.errors import LiveViewUnavailable
from app.services.live_view import is_settled
from app.services.ports import LiveViews, View
from app.services.ports import ViewSubscription as Subscription
from web.edge import client_address
from web.errors import ApiError

try:  # pure Python; without it the page shows the address without a QR code
    import segno
except ImportError:  # pragma: no cover - segno is a dependency of the worker
    segno = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

# Where views come from when Redis has none: ``async fn(invoice_id) -> view | None``. The view
# must have the public shape (docs/payment-page.md); fee keys are removed anyway. A view without
# ``version`` counts as version 0, so any live change replaces it.
ViewFallback = Callable[[str], Awaitable[View | None]]

TEMPLATES: Final = Path(__file__).parent / "templates"
_INVOICE_ID: Final = re.compile(IDENTIFIER_PATTERN)
_REDIS_DOWN: Final = (RedisError, OSError, LiveViewUnavailable)
MAX_WS_MESSAGE: Final = 64 * 1024
TRY_AGAIN_LATER: Final = 1013  # RFC 6455 registry: "Try Again Later"


def public_view(value: Any) -> Any:
    """``value`` without any key naming a fee, at any depth (Fee transparency, DESIGN.md)."""
    if isinstance(value, dict):
        return {k: public_view(v) for k, v in value.items() if "fee" not in str(k).lower()}
    if isinstance(value, list):
        return [public_view(v) for v in value]
    return value


def version_of(view: View) -> int:
    version = view.get("version")
    return version if isinstance(version, int) else 0


@dataclass(frozen=True, kw_only=True)
class LiveStreamSettings:
    heartbeat: float = 20.0  # WebSocket ping interval; a client silent for twice that is dropped
    keepalive: float = 15.0  # SSE comment interval (proxies close idle streams at 30-60 s)
    # After the view settles (final status, no payment moving) the stream stays open this long
    # for a late change (a second payment → overpaid, a payment at expiry → paid_late).
    linger: float = 60.0
    sse_retry_ms: int = 3000
    per_worker: int = 2000  # live streams open on this worker (LIVE_CONNECTIONS_PER_WORKER)
    per_address: int = 20  # … from one client address (LIVE_CONNECTIONS_PER_IP)


class LiveConnections:
    """Counts the worker's open live streams, in all and per client address."""

    def __init__(self, *, per_worker: int, per_address: int) -> None:
        self.per_worker = per_worker
        self.per_address = per_address
        self.total = 0
        self._by_address: Counter[str] = Counter()

    @contextlib.contextmanager
    def slot(self, address: str) -> Iterator[str | None]:
        """Holds a slot while open; yields None, or why there is none for ``address``."""
        if self.total >= self.per_worker:
            yield "this worker has too many live streams open; poll the invoice instead"
            return
        if self._by_address[address] >= self.per_address:
            yield (
                f"more than {self.per_address} live streams from your address; "
                "close some, or poll the invoice"
            )
            return
        self.total += 1
        self._by_address[address] += 1
        try:
            yield None
        finally:
            self.total -= 1
            self._by_address[address] -= 1
            if not self._by_address[address]:
                del self._by_address[address]


async def live_sequence(
    subscription: Subscription,
    first: View,
    *,
    after: int,
    linger: float,
    tick: float | None = None,
) -> AsyncIterator[View | None]:
    """The views a client should get: ``first`` then every newer change, in version order.

    Yields None every ``tick`` seconds of silence (SSE keep-alive). Ends ``linger`` seconds after
    the view settled with no further change, or when the fan-out stops.
    """
    last = after
    latest = first
    if version_of(first) > last:
        last = version_of(first)
        yield first
    settled_at = time.monotonic() if is_settled(latest) else None
    while True:
        timeout = tick
        if settled_at is not None:
            remaining = settled_at + linger - time.monotonic()
            if remaining <= 0:
                return
            timeout = remaining if tick is None else min(tick, remaining)
        try:
            view = await asyncio.wait_for(subscription.next(), timeout)
        except TimeoutError:
            yield None
            continue
        if view is None:
            return
        view = public_view(view)
        if version_of(view) <= last:
            continue
        last = version_of(view)
        yield view
        settled_at = time.monotonic() if is_settled(view) else None


class PublicEndpoints:
    """The customer endpoints over one ``LiveInvoiceViews``."""

    def __init__(
        self,
        views: LiveViews,
        *,
        fallback: ViewFallback | None = None,
        settings: LiveStreamSettings | None = None,
        explorer: str | None = None,
    ) -> None:
        self._views = views
        self._fallback = fallback
        self._explorer = explorer  # the block explorer's base URL for tx links (None: no links)
        self.settings = settings or LiveStreamSettings()
        self.connections = LiveConnections(
            per_worker=self.settings.per_worker, per_address=self.settings.per_address
        )

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/api/v1/public/invoice/{invoice_id}", self.invoice)
        router.add_get("/api/v1/public/invoice/{invoice_id}/ws", self.websocket)
        router.add_get("/api/v1/public/invoice/{invoice_id}/events", self.server_sent_events)
        router.add_get("/pay/{invoice_id}", self.payment_page)

    async def close_live_streams(self, _: web.Application) -> None:
        """On shutdown, end every WebSocket (1001: reconnect elsewhere) and SSE stream at once."""
        await self._views.aclose()

    # --- reading ---------------------------------------------------------------------------

    async def load(self, invoice_id: str) -> View | None:
        """The view from Redis, else from the fallback; None if neither knows the invoice."""
        redis_error: BaseException | None = None
        view: View | None = None
        if _INVOICE_ID.fullmatch(invoice_id) and len(invoice_id) <= 128:
            try:
                view = await self._views.current(invoice_id)
            except _REDIS_DOWN as exc:
                logger.warning("live view of %s unreadable from Redis: %s", invoice_id, exc)
                redis_error = exc
            if view is None and self._fallback is not None:
                view = await self._fallback(invoice_id)
        if view is None and redis_error is not None:
            raise ApiError(503, "live_status_unavailable", "invoice status is unavailable")
        return None if view is None else public_view(view)

    async def load_or_404(self, invoice_id: str) -> View:
        view = await self.load(invoice_id)
        if view is None:
            raise ApiError(
                404, "invoice_not_found", f"no invoice {invoice_id!r}", param="invoice_id"
            )
        return view

    @contextlib.asynccontextmanager
    async def subscribed(self, invoice_id: str) -> AsyncIterator[Subscription]:
        """A confirmed subscription, or 503 when Redis cannot give one (clients poll instead)."""
        await self.load_or_404(invoice_id)  # no subscription for ids that do not exist
        async with contextlib.AsyncExitStack() as stack:
            try:
                subscription = await stack.enter_async_context(self._views.subscribe(invoice_id))
            except _REDIS_DOWN as exc:
                logger.warning("no live subscription for %s: %s", invoice_id, exc)
                raise ApiError(
                    503, "live_status_unavailable", "live updates are unavailable; poll the invoice"
                ) from None
            yield subscription

    # --- handlers --------------------------------------------------------------------------

    async def invoice(self, request: web.Request) -> web.Response:
        view = await self.load_or_404(request.match_info["invoice_id"])
        return web.json_response(view, dumps=_dumps, headers=_PUBLIC_JSON_HEADERS)

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        invoice_id = request.match_info["invoice_id"]
        with self.connections.slot(client_address(request)) as refused:
            if refused is not None:
                # Browsers hide an HTTP refusal of the upgrade; a close code they show.
                ws = web.WebSocketResponse()
                await ws.prepare(request)
                await ws.close(code=TRY_AGAIN_LATER, message=refused.encode())
                return ws
            return await self._live_websocket(request, invoice_id)

    async def _live_websocket(self, request: web.Request, invoice_id: str) -> web.StreamResponse:
        async with self.subscribed(invoice_id) as subscription:
            # Read after subscribing: a change between the two is in the subscription.
            first = await self.load_or_404(invoice_id)
            ws = web.WebSocketResponse(
                heartbeat=self.settings.heartbeat, max_msg_size=MAX_WS_MESSAGE
            )
            await ws.prepare(request)
            sender = asyncio.create_task(self._send_views(ws, subscription, first))
            try:
                # aiohttp wants reads in the handler's task; the client sends nothing we use.
                async for _ in ws:
                    pass
            finally:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sender
            return ws

    async def _send_views(
        self, ws: web.WebSocketResponse, subscription: Subscription, first: View
    ) -> None:
        code, reason = WSCloseCode.GOING_AWAY, b"server going away; reconnect"
        try:
            async for view in live_sequence(
                subscription, first, after=-1, linger=self.settings.linger
            ):
                if view is not None:
                    # A TEXT frame: browsers hand binary frames over as a Blob, not a string.
                    await ws.send_str(_dumps(view), compress=None)
            if not subscription.closed:
                code, reason = WSCloseCode.OK, b"invoice settled"
        except (ConnectionError, RuntimeError):
            return  # the client went away while we wrote
        except Exception:
            logger.exception("live WebSocket of %s failed", subscription.invoice_id)
            code, reason = WSCloseCode.INTERNAL_ERROR, b"internal error; reconnect"
        await ws.close(code=code, message=reason)

    async def server_sent_events(self, request: web.Request) -> web.StreamResponse:
        invoice_id = request.match_info["invoice_id"]
        after = _last_event_id(request)
        with self.connections.slot(client_address(request)) as refused:
            if refused is not None:
                raise ApiError(429, "too_many_live_streams", refused, headers={"Retry-After": "30"})
            return await self._live_events(request, invoice_id, after)

    async def _live_events(
        self, request: web.Request, invoice_id: str, after: int
    ) -> web.StreamResponse:
        async with self.subscribed(invoice_id) as subscription:
            first = await self.load_or_404(invoice_id)
            if version_of(first) <= after and is_settled(first):
                # Nothing new and nothing to come: 204 tells EventSource to stop reconnecting.
                return web.Response(status=204, headers=_PUBLIC_JSON_HEADERS)
            response = web.StreamResponse(headers=_SSE_HEADERS)
            await response.prepare(request)
            try:
                await response.write(f"retry: {self.settings.sse_retry_ms}\n\n".encode())
                async for view in live_sequence(
                    subscription,
                    first,
                    after=after,
                    linger=self.settings.linger,
                    tick=self.settings.keepalive,
                ):
                    await response.write(_sse_frame(view))
                if not subscription.closed:
                    await response.write(b"event: end\ndata: {}\n\n")
                await response.write_eof()
            except ConnectionError:
                pass  # the client went away
            return response

    async def payment_page(self, request: web.Request) -> web.Response:
        invoice_id = request.match_info["invoice_id"]
        nonce = secrets.token_urlsafe(16)
        headers = {**_PAGE_HEADERS, "Content-Security-Policy": _csp(nonce)}
        try:
            view = await self.load(invoice_id)
        except ApiError:
            view = None
            status = 503
        else:
            status = 200 if view else 404
        if view is None:
            body = render_unavailable(status)
        else:
            body = render_payment_page(view, nonce=nonce, explorer=self._explorer)
        return web.Response(
            text=body, status=status, content_type="text/html", charset="utf-8", headers=headers
        )


# --- wire formats --------------------------------------------------------------------------

_PUBLIC_JSON_HEADERS: Final = {
    "Cache-Control": "no-store",
    # Public data, no credentials: a merchant's own page may read it from the browser.
    "Access-Control-Allow-Origin": "*",
}
_SSE_HEADERS: Final = {
    **_PUBLIC_JSON_HEADERS,
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-store, no-transform",
    "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
}
_PAGE_HEADERS: Final = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def _csp(nonce: str) -> str:
    # frame-ancestors *: merchants may embed the page (it is read-only, it asks nothing).
    return (
        "default-src 'none'; "
        f"script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors *"
    )


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _sse_frame(view: View | None) -> bytes:
    if view is None:
        return b": keep-alive\n\n"
    return f"event: invoice\nid: {version_of(view)}\ndata: {_dumps(view)}\n\n".encode()


def _last_event_id(request: web.Request) -> int:
    raw = request.headers.get("Last-Event-ID") or request.query.get("last_event_id") or ""
    # ASCII digits only: "²" is a digit to str.isdigit, and int() refuses it.
    return int(raw) if raw.isascii() and raw.isdecimal() and len(raw) < 12 else -1


# --- the payment page ----------------------------------------------------------------------


def _template(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


_PAGE: Final = _template("pay.html")
_UNAVAILABLE: Final = _template("pay_unavailable.html")
_PLACEHOLDER: Final = re.compile(r"\{\{(\w+)\}\}")


def _fill(template: str, values: dict[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def qr_svg(text: str) -> str:
    """An inline SVG QR code of ``text`` (empty when segno is missing)."""
    if segno is None:
        return ""
    code = segno.make(text, error="m", micro=False)
    svg: str = code.svg_inline(scale=5, border=4, dark="#000", light="#fff", omitsize=True)
    return svg


def _script_json(value: Any) -> str:
    # Safe inside <script type="application/json">: no "</script>", no "<!--".
    return _dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def payment_uri(view: View) -> str:
    """The ``tron:`` URI a wallet opens pre-filled: address, USDT contract and amount due.

    Tron has no standard payment URI (TIP-17, often cited for it, is the energy model); this is
    the form Tron wallets that take URIs read, after ERC-681. Wallets that refuse URIs (TronLink)
    scan the bare-address code the page offers beside it (docs/payment-page.md)."""
    query = urlencode({"amount": view["amount_due"], "token": view["token_contract"]})
    return f"tron:{view['deposit_address']}?{query}"


def render_payment_page(view: View, *, nonce: str, explorer: str | None = None) -> str:
    escape = html.escape
    description = view.get("description") or ""
    order_id = view.get("order_id") or ""
    return _fill(
        _PAGE,
        {
            "nonce": escape(nonce),
            "invoice_id": escape(view["id"]),
            "description": escape(description),
            "order_id": escape(order_id),
            "amount": escape(view["usdt_amount"]),
            "amount_due": escape(view["amount_due"]),
            "deposit_address": escape(view["deposit_address"]),
            "token_contract": escape(view["token_contract"]),
            "qr_svg": qr_svg(payment_uri(view)),
            "payment_uri": escape(payment_uri(view)),
            "address_qr_svg": qr_svg(view["deposit_address"]),
            "view_json": _script_json(view),
            "explorer_json": _script_json(explorer),
        },
    )


def render_unavailable(status: int) -> str:
    if status == 404:
        title, text = "Invoice not found", "This payment link is not valid. Check it with the shop."
    else:
        title, text = (
            "Temporarily unavailable",
            "The invoice cannot be shown right now. Retry soon.",
        )
    return _fill(_UNAVAILABLE, {"title": title, "text": text})
