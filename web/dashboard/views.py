"""The merchant dashboard at ``/dashboard``: server-rendered pages over the merchant API.

Every page is HTML rendered here from Jinja2 templates (web/templates/dashboard/) and works
without JavaScript; web/static/dashboard.js only adds live invoice statuses and copy buttons.
The data and every action go through the merchant API as the signed-in user (web/dashboard/api.py
says why), so the API's checks are the dashboard's checks. Forms post back here with the CSRF
token of web/dashboard/session.py and are answered with a redirect (post/redirect/get), except
where a secret is shown once (a new API key, a webhook secret, an invitation, a Telegram
link). A form that moves money (a refund, a payout, resolving an underpayment) also carries an
idempotency key made when the form was rendered, sent to the API as ``Idempotency-Key``: the same
form sent twice (a double click, a reload of the POST) is one refund or payout, never two.

A refusal of the API is shown on the page in its own words; a page the user's role may not see
says so instead of its content. docs/dashboard.md is the guide for merchants and operators.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, quote

import jinja2
import orjson
from aiohttp import WSMsgType
from aiohttp import web as aioweb

from app.domain.access import Scope
from app.domain.events import EVENT_TYPES
from app.domain.money import format_usdt, parse_usdt
from app.domain.notifications import Channel, Notice
from app.domain.payout_schedule import WEEKDAYS
from app.services.ports import LiveViews
from web.dashboard.api import ApiAnswer, ApiUnavailable, LoopbackApi
from web.dashboard.charts import days_from, volume_chart
from web.dashboard.session import CookieJar, form_is_genuine, tokens
from web.edge import client_address
from web.input import read_capped
from web.presenters import explorer_base
from web.public import LiveConnections, public_view

logger = logging.getLogger(__name__)

TEMPLATES: Final = Path(__file__).parent.parent / "templates" / "dashboard"
STATIC: Final = Path(__file__).parent.parent / "static"
MAX_FORM_FIELDS: Final = 64
LIVE_INVOICES: Final = 100  # open invoices one dashboard socket follows
LIVE_RESCAN_SECONDS: Final = 15.0
CHART_DAYS: Final = 30
NOTICES: Final = {
    # A redirect names its outcome by key, never by free text from the query string.
    "invoice_created": "Invoice created.",
    "invoice_cancelled": "Invoice cancelled.",
    "key_revoked": "The API key was revoked; requests with it are refused from now on.",
    "endpoint_deleted": "Webhook endpoint deleted.",
    "test_sent": "A test event was queued for delivery; it appears in the log below.",
    "redelivered": "The event was queued for delivery again.",
    "role_changed": "Role changed.",
    "user_removed": "The user was removed from the team.",
    "signed_out": "You are signed out.",
    "email_verified": "Your email address is confirmed. Sign in to create your API keys.",
    "link_sent": "A new confirmation link is on its way to your email address.",
    "refund_requested": "Refund requested: it is sent from the platform's wallet in a moment; "
    "follow its status below.",
    "resolved_accept": "Accepted: the invoice is paid for what was received.",
    "resolved_refund": "Everything received goes back to the customer; the invoice is closed.",
    "resolved_extend": "The invoice is open again until its new deadline.",
    "payout_requested": "Payout requested: follow its status below.",
    "payout_cancelled": "Payout cancelled: its amount is back in your available balance.",
    "schedule_saved": "Payout schedule saved.",
    "schedule_deleted": "Payout schedule deleted: nothing is paid out by itself any more.",
    "payout_approved": "Payout approved: it leaves with the next batch.",
    "notifications_saved": "Notification settings saved.",
    "telegram_unlinked": "Telegram is unlinked: nothing more is sent to that chat.",
}
ROLES: Final = ("owner", "developer", "viewer")
INVOICE_STATUSES: Final = ("pending", "confirming", "paid", "expired", "cancelled")
SETTLEMENT_STATUSES: Final = ("pending", "completed", "failed", "reversed")
# A payout may still be cancelled before it is being signed (docs/merchant-api.md).
CANCELLABLE_PAYOUTS: Final = ("requested", "approved")
# An underpaid invoice is resolved while open (confirming) or expired, unless refunded already.
RESOLVABLE_STATUSES: Final = ("confirming", "expired")
IDEMPOTENCY_FIELD: Final = "idempotency_key"
# What an endpoint may subscribe to: everything, a family, or one event type.
EVENT_CHOICES: Final = ("*", "Invoice*", "Payment*", "Settlement*", *EVENT_TYPES)
NOTIFICATIONS_API: Final = "/api/v1/notification-preferences"
NOTICE_LABELS: Final = {
    Notice.INVOICE_PAID: "Invoice paid",
    Notice.PAYMENT_EXCEPTION: "Underpaid, overpaid or paid late",
    Notice.SETTLEMENT_COMPLETED: "Settlement completed",
    Notice.REFUND_FINISHED: "Refund finished",
    Notice.PAYOUT_FINISHED: "Payout finished",
    Notice.WEBHOOK_ENDPOINT_DISABLED: "Webhook endpoint disabled (email backup of webhooks)",
    Notice.DAILY_SUMMARY: "Daily summary",
}
CHANNEL_LABELS: Final = {Channel.EMAIL: "Email", Channel.TELEGRAM: "Telegram", Channel.SMS: "SMS"}
RECENT_NOTICES: Final = 20

_HEADERS: Final = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}


class SignedOut(Exception):
    """No valid session: the browser goes to the sign-in page."""


class Refused(Exception):
    """The API refused what the page needs; shown on an error page in the API's words."""

    def __init__(self, answer: ApiAnswer) -> None:
        super().__init__(answer.error.get("message"))
        self.answer = answer


@dataclass
class Visit:
    """One browser request: who is signed in, and the API calls made for them."""

    request: aioweb.Request
    api: LoopbackApi
    access: str | None
    refresh: str | None
    me: dict[str, Any] = field(default_factory=dict)
    renewed: dict[str, Any] | None = None  # a session renewed during this request

    async def call(
        self,
        method: str,
        path: str,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> ApiAnswer:
        answer = await self.api.call(
            self.request, method, path, token=self.access, json=json, headers=headers
        )
        if answer.status == 401 and self.refresh and self.renewed is None:
            renewed = await self.api.call(
                self.request,
                "POST",
                "/api/v1/auth/refresh",
                token=None,
                json={"refresh_token": self.refresh},
            )
            if not renewed.ok:
                raise SignedOut
            self.renewed = renewed.body
            self.access = renewed.body["access_token"]
            self.refresh = renewed.body["refresh_token"]
            answer = await self.api.call(
                self.request, method, path, token=self.access, json=json, headers=headers
            )
        if answer.status == 401:
            raise SignedOut
        return answer

    async def act(self, method: str, path: str, json: Any = None) -> Any:
        """The body of an action the API must accept (``Refused``, shown as a page, otherwise)."""
        answer = await self.call(method, path, json)
        if not answer.ok:
            raise Refused(answer)
        return answer.body

    async def get(self, path: str, query: Mapping[str, object] | None = None) -> Any:
        """The body of a GET the page cannot do without (``Refused`` otherwise)."""
        answer = await self.call("GET", self.api.path(path, query))
        if not answer.ok:
            raise Refused(answer)
        return answer.body

    def can(self, scope: Scope) -> bool:
        return scope.value in self.me.get("scopes", ())

    @property
    def is_admin(self) -> bool:
        return self.me.get("role") == "admin"


Page = Callable[[Visit], Awaitable[aioweb.StreamResponse]]
Handler = Callable[[aioweb.Request], Awaitable[aioweb.StreamResponse]]


def _day(raw: str | None, name: str) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise aioweb.HTTPBadRequest(text=f"{name} must be a date such as 2026-11-30") from None


def _start_of(day: date | None) -> str | None:
    return None if day is None else f"{day.isoformat()}T00:00:00Z"


def _next_day(day: date | None) -> str | None:
    return None if day is None else f"{(day + timedelta(days=1)).isoformat()}T00:00:00Z"


class Dashboard:
    def __init__(
        self,
        api: LoopbackApi,
        live_views: LiveViews,
        connections: LiveConnections,
        *,
        secure_cookies: bool,
        network: str,
        signup_mode: str = "closed",
    ) -> None:
        self._api = api
        self._live_views = live_views
        self._connections = connections
        self._cookies = CookieJar(secure=secure_cookies)
        self._network = network
        self._signup_mode = signup_mode
        self._templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._templates.filters["when"] = _when

    def add_routes(self, router: aioweb.UrlDispatcher) -> None:
        pages: dict[str, Page] = {
            "/dashboard": self.overview,
            "/dashboard/invoices": self.invoices,
            "/dashboard/invoices/{invoice_id}": self.invoice,
            "/dashboard/settlements": self.settlements,
            "/dashboard/balance": self.balance,
            "/dashboard/payouts": self.payouts,
            "/dashboard/webhooks": self.webhooks,
            "/dashboard/webhooks/{endpoint_id}": self.webhook,
            "/dashboard/keys": self.keys,
            "/dashboard/team": self.team,
            "/dashboard/notifications": self.notifications,
            "/dashboard/admin/revenue": self.admin_revenue,
            "/dashboard/admin/merchants": self.admin_merchants,
            "/dashboard/admin/payouts": self.admin_payouts,
        }
        for path, page in pages.items():
            router.add_get(path, self._signed_in(page))
        actions: dict[str, Page] = {
            "/dashboard/invoices": self.create_invoice,
            "/dashboard/invoices/{invoice_id}/cancel": self.cancel_invoice,
            "/dashboard/invoices/{invoice_id}/refunds": self.refund,
            "/dashboard/invoices/{invoice_id}/resolve": self.resolve,
            "/dashboard/payouts": self.request_payout,
            "/dashboard/payouts/{payout_id}/cancel": self.cancel_payout,
            "/dashboard/payout-schedule": self.save_schedule,
            "/dashboard/payout-schedule/delete": self.delete_schedule,
            "/dashboard/admin/payouts/{payout_id}/approve": self.approve_payout,
            "/dashboard/webhooks": self.create_webhook,
            "/dashboard/webhooks/{endpoint_id}/rotate": self.rotate_webhook,
            "/dashboard/webhooks/{endpoint_id}/test": self.test_webhook,
            "/dashboard/webhooks/{endpoint_id}/delete": self.delete_webhook,
            "/dashboard/deliveries/{delivery_id}/redeliver": self.redeliver,
            "/dashboard/keys": self.create_key,
            "/dashboard/keys/{key_id}/revoke": self.revoke_key,
            "/dashboard/keys/{key_id}/roll": self.roll_key,
            "/dashboard/team": self.invite,
            "/dashboard/team/{user_id}/role": self.set_role,
            "/dashboard/team/{user_id}/remove": self.remove_user,
            "/dashboard/notifications": self.save_notifications,
            "/dashboard/notifications/telegram/link": self.link_telegram,
            "/dashboard/notifications/telegram/unlink": self.unlink_telegram,
        }
        for path, action in actions.items():
            router.add_post(path, self._signed_in(action, form=True))
        router.add_get("/dashboard/signup", self.signup_page)
        router.add_post("/dashboard/signup", self.signup)
        router.add_get("/dashboard/verify", self.verify_page)
        router.add_post("/dashboard/verify", self.verify)
        router.add_post("/dashboard/resend", self._signed_in(self.resend, form=True))
        router.add_get("/dashboard/login", self.login_page)
        router.add_post("/dashboard/login", self.login)
        router.add_post("/dashboard/logout", self.logout)
        router.add_get("/dashboard/exports/{name}", self._signed_in(self.export))
        router.add_get("/dashboard/live", self._signed_in(self.live))
        router.add_static("/dashboard/static", STATIC, append_version=False)

    # --- plumbing ---------------------------------------------------------------------------

    def _render(
        self,
        request: aioweb.Request,
        template: str,
        *,
        visit: Visit | None = None,
        status: int = 200,
        **values: Any,
    ) -> aioweb.Response:
        response = aioweb.Response(status=status, content_type="text/html", headers=_HEADERS)
        notice = NOTICES.get(request.query.get("notice", ""))
        response.text = self._templates.get_template(template).render(
            me=visit.me if visit else None,
            can=(lambda scope: visit.can(Scope(scope))) if visit else (lambda scope: False),
            is_admin=bool(visit and visit.is_admin),
            csrf=self._cookies.csrf(request, response),
            path=request.path,
            notice=notice,
            form_error=values.pop("form_error", None),
            network=self._network,
            signup_mode=self._signup_mode,
            fresh_key=_fresh_key,
            **values,
        )
        return response

    def _show(self, visit: Visit, template: str, **values: Any) -> aioweb.Response:
        """A page for the signed-in user."""
        return self._render(visit.request, template, visit=visit, **values)

    def _signed_in(self, page: Page, *, form: bool = False) -> Handler:
        async def handler(request: aioweb.Request) -> aioweb.StreamResponse:
            access, refresh = tokens(request)
            if access is None and refresh is None:
                return self._to_login(request)
            visit = Visit(request, self._api, access, refresh)
            try:
                if form and not form_is_genuine(request, (await _form(request)).get("csrf")):
                    return self._render(
                        request,
                        "error.html",
                        status=403,
                        title="Form expired",
                        message="This form was not sent from your dashboard, or too long ago. "
                        "Go back, reload the page and send it again.",
                    )
                visit.me = await visit.get("/api/v1/auth/me")
                response = await page(visit)
            except SignedOut:
                response = self._to_login(request)
                self._cookies.sign_out(response)
                return response
            except Refused as refused:
                response = self._refused(visit, refused.answer)
            except ApiUnavailable as exc:
                logger.warning("dashboard: the API did not answer: %s", exc)
                response = self._render(
                    request,
                    "error.html",
                    status=503,
                    title="Temporarily unavailable",
                    message="The platform did not answer in time. Reload the page in a moment.",
                )
            if visit.renewed is not None:
                self._cookies.sign_in(
                    response,
                    access=visit.renewed["access_token"],
                    expires_in=int(visit.renewed["expires_in"]),
                    refresh=visit.renewed["refresh_token"],
                )
            return response

        return handler

    def _refused(self, visit: Visit, answer: ApiAnswer) -> aioweb.Response:
        error = answer.error
        status = answer.status if 400 <= answer.status < 600 else 502
        titles = {403: "Not allowed", 404: "Not found", 429: "Too many requests"}
        return self._show(
            visit,
            "error.html",
            status=status,
            title=titles.get(status, "Something went wrong"),
            message=str(error.get("message", "")),
        )

    @staticmethod
    def _to_login(request: aioweb.Request) -> aioweb.Response:
        target = request.path_qs if request.method == "GET" else "/dashboard"
        return _see_other(f"/dashboard/login?next={quote(target, safe='')}")

    @staticmethod
    def _back(location: str, notice: str | None = None) -> aioweb.Response:
        if notice is not None:
            location += ("&" if "?" in location else "?") + f"notice={notice}"
        return _see_other(location)

    # --- signing in and out -----------------------------------------------------------------

    async def login_page(self, request: aioweb.Request) -> aioweb.Response:
        return self._render(
            request, "login.html", error=None, email="", next=_next(request.query.get("next"))
        )

    async def login(self, request: aioweb.Request) -> aioweb.StreamResponse:
        fields = await _form(request)
        target = _next(fields.get("next"))
        if not form_is_genuine(request, fields.get("csrf")):
            return self._render(
                request,
                "login.html",
                status=403,
                error="The sign-in form expired. Please try again.",
                email=fields.get("email", ""),
                next=target,
            )
        try:
            answer = await self._api.call(
                request,
                "POST",
                "/api/v1/auth/login",
                token=None,
                json={"email": fields.get("email", ""), "password": fields.get("password", "")},
            )
        except ApiUnavailable:
            answer = ApiAnswer(503, None)
        if not answer.ok:
            message = (
                "The email or the password is wrong."
                if answer.status in (400, 401)
                else str(answer.error.get("message"))
            )
            return self._render(
                request,
                "login.html",
                status=answer.status if answer.status != 400 else 401,
                error=message,
                email=fields.get("email", ""),
                next=target,
            )
        response = _see_other(target)
        self._cookies.sign_in(
            response,
            access=answer.body["access_token"],
            expires_in=int(answer.body["expires_in"]),
            refresh=answer.body["refresh_token"],
        )
        return response

    async def logout(self, request: aioweb.Request) -> aioweb.StreamResponse:
        fields = await _form(request)
        _, refresh = tokens(request)
        if form_is_genuine(request, fields.get("csrf")) and refresh is not None:
            with contextlib.suppress(ApiUnavailable):
                await self._api.call(
                    request,
                    "POST",
                    "/api/v1/auth/logout",
                    token=None,
                    json={"refresh_token": refresh},
                )
        response = _see_other("/dashboard/login?notice=signed_out")
        self._cookies.sign_out(response)
        return response

    # --- sign-up and email verification -------------------------------------------------------

    async def signup_page(self, request: aioweb.Request) -> aioweb.Response:
        return self._render(
            request,
            "signup.html",
            error=None,
            fields={"invitation": request.query.get("invitation", "")[:200]},
        )

    async def signup(self, request: aioweb.Request) -> aioweb.Response:
        fields = await _form(request)
        kept = {name: fields.get(name, "") for name in ("business_name", "email", "invitation")}
        if not form_is_genuine(request, fields.get("csrf")):
            return self._render(
                request,
                "signup.html",
                status=403,
                error="The form expired. Please send it again.",
                fields=kept,
            )
        body = {name: fields.get(name, "") for name in ("business_name", "email", "password")}
        if self._signup_mode == "invite":
            body["invitation"] = fields.get("invitation", "").strip()
        try:
            answer = await self._api.call(request, "POST", "/api/v1/signup", token=None, json=body)
        except ApiUnavailable:
            answer = ApiAnswer(503, None)
        if not answer.ok:
            return self._render(
                request,
                "signup.html",
                status=answer.status,
                error=str(answer.error.get("message")),
                fields=kept,
            )
        return self._render(request, "signup_done.html", signed_up=answer.body)

    async def verify_page(self, request: aioweb.Request) -> aioweb.Response:
        # A button to press, not a link that verifies: mail scanners open links by themselves.
        return self._render(
            request, "verify.html", token=request.query.get("token", "")[:200], error=None
        )

    async def verify(self, request: aioweb.Request) -> aioweb.Response:
        fields = await _form(request)
        token = fields.get("token", "")[:200]
        if not form_is_genuine(request, fields.get("csrf")):
            return self._render(
                request,
                "verify.html",
                status=403,
                token=token,
                error="The form expired. Please press the button again.",
            )
        try:
            answer = await self._api.call(
                request, "POST", "/api/v1/signup/verify", token=None, json={"token": token}
            )
        except ApiUnavailable:
            answer = ApiAnswer(503, None)
        if not answer.ok:
            return self._render(
                request,
                "verify.html",
                status=answer.status,
                token=token,
                error=str(answer.error.get("message")),
            )
        return self._to_login_with("email_verified")

    @staticmethod
    def _to_login_with(notice: str) -> aioweb.Response:
        return _see_other(f"/dashboard/login?notice={notice}")

    async def resend(self, visit: Visit) -> aioweb.Response:
        users = await visit.call("GET", "/api/v1/users")  # owners see their own email there
        email = next(
            (u["email"] for u in (users.body or {}).get("data", []) if u["id"] == visit.me["id"]),
            None,
        )
        if email is not None:
            await visit.call("POST", "/api/v1/signup/resend", json={"email": email})
        return self._back("/dashboard/keys", "link_sent")

    # --- overview, balance ------------------------------------------------------------------

    async def overview(self, visit: Visit) -> aioweb.Response:
        if visit.is_admin:
            return self._back("/dashboard/admin/revenue")
        if not visit.can(Scope.REPORTS_READ):
            return await self.invoices(visit)
        today = datetime.now(UTC).date()
        first = today - timedelta(days=CHART_DAYS - 1)
        summary = await visit.get("/api/v1/reports/summary")
        daily = await visit.get(
            "/api/v1/reports/daily", {"from": first.isoformat(), "to": today.isoformat()}
        )
        balance = await visit.get("/api/v1/balance")
        chart = volume_chart(
            days_from(daily["data"]),
            title=f"Daily volume and fees, {first.isoformat()} to {today.isoformat()} (UTC)",
        )
        return self._show(
            visit,
            "overview.html",
            summary=summary,
            daily=daily["data"],
            balance=balance,
            chart=chart,
        )

    async def balance(self, visit: Visit) -> aioweb.Response:
        balance = await visit.get("/api/v1/balance")
        recent = await visit.get("/api/v1/settlements", {"limit": 10})
        return self._show(visit, "balance.html", balance=balance, recent=recent["data"])

    # --- invoices ---------------------------------------------------------------------------

    async def invoices(self, visit: Visit, *, form_error: str | None = None) -> aioweb.Response:
        query = visit.request.query
        status = query.get("status", "")
        first = _day(query.get("from"), "from")
        last = _day(query.get("to"), "to")
        order_id = query.get("order_id", "").strip()
        page = await visit.get(
            "/api/v1/invoices",
            {
                "status": status if status in INVOICE_STATUSES else None,
                "order_id": order_id or None,
                "created_from": _start_of(first),
                "created_to": _next_day(last),
                "cursor": query.get("cursor"),
                "limit": 25,
            },
        )
        filters = {
            "status": status,
            "from": query.get("from", ""),
            "to": query.get("to", ""),
            "order_id": order_id,
        }
        next_link = _next_page("/dashboard/invoices", filters, page)
        return self._show(
            visit,
            "invoices.html",
            invoices=page["data"],
            filters=filters,
            statuses=INVOICE_STATUSES,
            next_link=next_link,
            form_error=form_error,
        )

    async def create_invoice(self, visit: Visit) -> aioweb.Response:
        fields = await _form(visit.request)
        body: dict[str, Any] = {"amount": fields.get("amount", "").strip()}
        for name in ("description", "order_id"):
            if fields.get(name, "").strip():
                body[name] = fields[name].strip()
        answer = await visit.call("POST", "/api/v1/invoices", json=body)
        if answer.ok:
            return self._back(f"/dashboard/invoices/{quote(answer.body['id'])}", "invoice_created")
        return await self._form_refused(visit, self.invoices, answer)

    async def _form_refused(
        self, visit: Visit, page: Callable[..., Awaitable[aioweb.Response]], answer: ApiAnswer
    ) -> aioweb.Response:
        """The form's page again, with the API's refusal in its own words above the form."""
        response = await page(visit, form_error=str(answer.error.get("message", "refused")))
        response.set_status(answer.status if 400 <= answer.status < 500 else 502)
        return response

    async def invoice(
        self, visit: Visit, *, form_error: str | None = None, failed_form: str | None = None
    ) -> aioweb.Response:
        invoice_id = visit.request.match_info["invoice_id"]
        invoice = await visit.get(f"/api/v1/invoices/{quote(invoice_id)}")
        # Tx hashes and confirmations per payment: the customers' live view has them.
        public = await visit.get(f"/api/v1/public/invoice/{quote(invoice_id)}")
        settlement = None
        if visit.can(Scope.SETTLEMENTS_READ):
            listed = await visit.get("/api/v1/settlements", {"invoice_id": invoice_id})
            settlement = listed["data"][0] if listed["data"] else None
        deliveries: list[dict[str, Any]] = []
        if visit.can(Scope.WEBHOOKS_READ):
            listed = await visit.get(
                f"/api/v1/invoices/{quote(invoice_id)}/webhook-deliveries", {"limit": 50}
            )
            deliveries = listed["data"]
        refunds = (await visit.get(f"/api/v1/invoices/{quote(invoice_id)}/refunds"))["data"]
        return self._show(
            visit,
            "invoice.html",
            invoice=invoice,
            payments=public_view(public).get("payments", []),
            settlement=settlement,
            deliveries=deliveries,
            refunds=refunds,
            overpaid=_overpaid(invoice, refunds),
            resolvable=(
                invoice["payment_exception"] == "underpaid"
                and invoice["status"] in RESOLVABLE_STATUSES
                and invoice["resolution"] != "refund"
            ),
            explorer=explorer_base(self._network),
            form_error=form_error,
            failed_form=failed_form,
        )

    async def cancel_invoice(self, visit: Visit) -> aioweb.Response:
        invoice_id = visit.request.match_info["invoice_id"]
        fields = await _form(visit.request)
        reason = fields.get("reason", "").strip()
        await visit.act(
            "POST",
            f"/api/v1/invoices/{quote(invoice_id)}/cancel",
            json={"reason": reason} if reason else {},
        )
        return self._back(f"/dashboard/invoices/{quote(invoice_id)}", "invoice_cancelled")

    async def refund(self, visit: Visit) -> aioweb.Response:
        invoice_id = visit.request.match_info["invoice_id"]
        fields = await _form(visit.request)
        body = _given(fields, "amount", "address")  # what is left out, the API defaults
        answer = await visit.call(
            "POST",
            f"/api/v1/invoices/{quote(invoice_id)}/refunds",
            json=body,
            headers=_idempotency(fields),
        )
        if not answer.ok:
            return await self._money_refused(visit, self.invoice, "refund", answer)
        return self._back(f"/dashboard/invoices/{quote(invoice_id)}", "refund_requested")

    async def resolve(self, visit: Visit) -> aioweb.Response:
        invoice_id = visit.request.match_info["invoice_id"]
        fields = await _form(visit.request)
        action = fields.get("action", "")
        body: dict[str, Any] = {"action": action}
        if action == "extend":
            minutes = fields.get("minutes", "").strip()
            if not (minutes.isascii() and minutes.isdecimal() and len(minutes) <= 6):
                refusal = ApiAnswer(400, {"error": {"message": "Give the minutes to extend by."}})
                return await self._money_refused(visit, self.invoice, "resolve", refusal)
            body["expires_in"] = int(minutes) * 60
        elif action == "refund":
            body |= _given(fields, "address")
        answer = await visit.call(
            "POST",
            f"/api/v1/invoices/{quote(invoice_id)}/resolve",
            json=body,
            headers=_idempotency(fields),
        )
        if not answer.ok:
            if answer.error.get("param") == "expires_in":  # seconds to the API, minutes here
                message = f"{answer.error.get('message')} seconds (the minutes given × 60)"
                answer = ApiAnswer(answer.status, {"error": {"message": message}})
            return await self._money_refused(visit, self.invoice, "resolve", answer)
        return self._back(f"/dashboard/invoices/{quote(invoice_id)}", f"resolved_{action}")

    async def _money_refused(
        self,
        visit: Visit,
        page: Callable[..., Awaitable[aioweb.Response]],
        form: str,
        answer: ApiAnswer,
    ) -> aioweb.Response:
        """``_form_refused`` for a form that moves money, its refusal shown next to it."""
        if answer.status == 409:
            # The key of a form sent again after it was changed (the browser's Back button).
            answer = ApiAnswer(
                409,
                {
                    "error": {
                        "message": "This form was already sent with other values, and that "
                        "request stands (see below). To send another one, fill in this new form."
                    }
                },
            )
        return await self._form_refused(visit, functools.partial(page, failed_form=form), answer)

    # --- payouts ----------------------------------------------------------------------------

    async def payouts(
        self, visit: Visit, *, form_error: str | None = None, failed_form: str | None = None
    ) -> aioweb.Response:
        cursor = visit.request.query.get("cursor")
        page = await visit.get("/api/v1/payouts", {"cursor": cursor, "limit": 25})
        balance = await visit.get("/api/v1/balance") if visit.can(Scope.REPORTS_READ) else None
        schedule = await visit.call("GET", "/api/v1/payout-schedule")
        if not schedule.ok and schedule.status != 404:  # 404: no schedule
            raise Refused(schedule)
        return self._show(
            visit,
            "payouts.html",
            payouts=page["data"],
            next_link=_next_page("/dashboard/payouts", {}, page),
            balance=balance,
            schedule=schedule.body if schedule.ok else None,
            weekdays=WEEKDAYS,
            cancellable=CANCELLABLE_PAYOUTS,
            explorer=explorer_base(self._network),
            form_error=form_error,
            failed_form=failed_form,
        )

    async def request_payout(self, visit: Visit) -> aioweb.Response:
        fields = await _form(visit.request)
        answer = await visit.call(
            "POST",
            "/api/v1/payouts",
            json={name: fields.get(name, "").strip() for name in ("amount", "address")},
            headers=_idempotency(fields),
        )
        if not answer.ok:
            return await self._money_refused(visit, self.payouts, "payout", answer)
        return self._back("/dashboard/payouts", "payout_requested")

    async def cancel_payout(self, visit: Visit) -> aioweb.Response:
        payout_id = visit.request.match_info["payout_id"]
        await visit.act("POST", f"/api/v1/payouts/{quote(payout_id)}/cancel", json={})
        return self._back("/dashboard/payouts", "payout_cancelled")

    async def save_schedule(self, visit: Visit) -> aioweb.Response:
        fields = await _form(visit.request)
        hour = fields.get("hour", "0").strip()
        body: dict[str, Any] = {
            "frequency": fields.get("frequency", ""),
            "hour": int(hour) if hour.isascii() and hour.isdecimal() and len(hour) <= 2 else hour,
            "address": fields.get("address", "").strip(),
            **_given(fields, "minimum_amount", "keep_amount"),
        }
        if body["frequency"] == "weekly":
            body["weekday"] = fields.get("weekday", "")
        answer = await visit.call("PUT", "/api/v1/payout-schedule", json=body)
        if not answer.ok:
            return await self._money_refused(visit, self.payouts, "schedule", answer)
        return self._back("/dashboard/payouts", "schedule_saved")

    async def delete_schedule(self, visit: Visit) -> aioweb.Response:
        await visit.act("DELETE", "/api/v1/payout-schedule")
        return self._back("/dashboard/payouts", "schedule_deleted")

    # --- settlements and exports ------------------------------------------------------------

    async def settlements(self, visit: Visit) -> aioweb.Response:
        query = visit.request.query
        status = query.get("status", "")
        page = await visit.get(
            "/api/v1/settlements",
            {
                "status": status if status in SETTLEMENT_STATUSES else None,
                "cursor": query.get("cursor"),
                "limit": 25,
            },
        )
        next_link = _next_page("/dashboard/settlements", {"status": status}, page)
        today = datetime.now(UTC).date()
        return self._show(
            visit,
            "settlements.html",
            settlements=page["data"],
            chosen=status,
            statuses=SETTLEMENT_STATUSES,
            next_link=next_link,
            export_from=(today - timedelta(days=29)).isoformat(),
            export_to=today.isoformat(),
        )

    async def export(self, visit: Visit) -> aioweb.StreamResponse:
        name = visit.request.match_info["name"]
        if name not in ("settlements.csv", "invoices.csv"):
            raise aioweb.HTTPNotFound(text="no such export")
        query = {key: visit.request.query.get(key) for key in ("from", "to")}
        path = LoopbackApi.path(f"/api/v1/exports/{name}", query)
        # The page's first call (who is signed in) renewed an expired session already.
        assert visit.access is not None
        async with self._api.stream(visit.request, path, token=visit.access) as upstream:
            if upstream.status != 200:
                raise Refused(ApiAnswer(upstream.status, _json_or_none(await upstream.read())))
            response = aioweb.StreamResponse(
                headers={
                    "Content-Type": upstream.headers.get("Content-Type", "text/csv"),
                    "Content-Disposition": upstream.headers.get(
                        "Content-Disposition", f'attachment; filename="{name}"'
                    ),
                    "Cache-Control": "no-store",
                    "X-Content-Type-Options": "nosniff",
                }
            )
            await response.prepare(visit.request)
            async for chunk in upstream.content.iter_chunked(64 * 1024):
                await response.write(chunk)
            await response.write_eof()
            return response

    # --- webhooks ---------------------------------------------------------------------------

    async def webhooks(
        self,
        visit: Visit,
        *,
        shown: dict[str, Any] | None = None,
        form_error: str | None = None,
    ) -> Any:
        endpoints = await visit.get("/api/v1/webhook-endpoints")
        return self._show(
            visit,
            "webhooks.html",
            endpoints=endpoints["data"],
            event_types=EVENT_CHOICES,
            shown=shown,
            form_error=form_error,
        )

    async def create_webhook(self, visit: Visit) -> aioweb.Response:
        fields = await _form(visit.request)
        chosen = [value for key, value in await _pairs(visit.request) if key == "event_types"]
        body: dict[str, Any] = {
            "url": fields.get("url", "").strip(),
            "event_types": chosen or ["*"],
        }
        if fields.get("description", "").strip():
            body["description"] = fields["description"].strip()
        answer = await visit.call("POST", "/api/v1/webhook-endpoints", json=body)
        if not answer.ok:
            return await self._form_refused(visit, self.webhooks, answer)
        return await self.webhooks(visit, shown=answer.body)  # the secret, shown once

    async def webhook(self, visit: Visit, *, shown: dict[str, Any] | None = None) -> Any:
        endpoint_id = visit.request.match_info["endpoint_id"]
        endpoint = await visit.get(f"/api/v1/webhook-endpoints/{quote(endpoint_id)}")
        deliveries = await visit.get(
            f"/api/v1/webhook-endpoints/{quote(endpoint_id)}/deliveries", {"limit": 50}
        )
        return self._show(
            visit,
            "webhook.html",
            endpoint=endpoint,
            deliveries=deliveries["data"],
            shown=shown,
        )

    async def rotate_webhook(self, visit: Visit) -> aioweb.Response:
        endpoint_id = visit.request.match_info["endpoint_id"]
        answer = await visit.act(
            "POST", f"/api/v1/webhook-endpoints/{quote(endpoint_id)}/rotate-secret", json={}
        )
        return await self.webhook(visit, shown=answer)

    async def test_webhook(self, visit: Visit) -> aioweb.Response:
        endpoint_id = visit.request.match_info["endpoint_id"]
        await visit.act("POST", f"/api/v1/webhook-endpoints/{quote(endpoint_id)}/test", json={})
        return self._back(f"/dashboard/webhooks/{quote(endpoint_id)}", "test_sent")

    async def delete_webhook(self, visit: Visit) -> aioweb.Response:
        endpoint_id = visit.request.match_info["endpoint_id"]
        await visit.act("DELETE", f"/api/v1/webhook-endpoints/{quote(endpoint_id)}")
        return self._back("/dashboard/webhooks", "endpoint_deleted")

    async def redeliver(self, visit: Visit) -> aioweb.Response:
        delivery_id = visit.request.match_info["delivery_id"]
        fields = await _form(visit.request)
        await visit.act(
            "POST", f"/api/v1/webhook-deliveries/{quote(delivery_id)}/redeliver", json={}
        )
        return self._back(_local(fields.get("back"), "/dashboard/webhooks"), "redelivered")

    # --- API keys ---------------------------------------------------------------------------

    async def keys(
        self,
        visit: Visit,
        *,
        created: dict[str, Any] | None = None,
        form_error: str | None = None,
    ) -> Any:
        keys = await visit.get("/api/v1/api-keys") if visit.can(Scope.KEYS_WRITE) else None
        return self._show(
            visit,
            "keys.html",
            keys=None if keys is None else keys["data"],
            scopes=sorted(visit.me.get("scopes", ())),
            created=created,
            form_error=form_error,
        )

    async def create_key(self, visit: Visit) -> aioweb.Response:
        fields = await _form(visit.request)
        scopes = [value for key, value in await _pairs(visit.request) if key == "scopes"]
        answer = await visit.call(
            "POST",
            "/api/v1/api-keys",
            json={"name": fields.get("name", "").strip(), "scopes": scopes},
        )
        if not answer.ok:
            return await self._form_refused(visit, self.keys, answer)
        return await self.keys(visit, created=answer.body)

    async def revoke_key(self, visit: Visit) -> aioweb.Response:
        key_id = visit.request.match_info["key_id"]
        await visit.act("DELETE", f"/api/v1/api-keys/{quote(key_id)}")
        return self._back("/dashboard/keys", "key_revoked")

    async def roll_key(self, visit: Visit) -> aioweb.Response:
        key_id = visit.request.match_info["key_id"]
        answer = await visit.act("POST", f"/api/v1/api-keys/{quote(key_id)}/roll", json={})
        return await self.keys(visit, created=answer)

    # --- team -------------------------------------------------------------------------------

    async def team(
        self,
        visit: Visit,
        *,
        invited: dict[str, Any] | None = None,
        form_error: str | None = None,
    ) -> Any:
        users = await visit.get("/api/v1/users") if visit.can(Scope.USERS_WRITE) else None
        return self._show(
            visit,
            "team.html",
            users=None if users is None else users["data"],
            roles=ROLES,
            invited=invited,
            form_error=form_error,
        )

    async def invite(self, visit: Visit) -> aioweb.Response:
        fields = await _form(visit.request)
        answer = await visit.call(
            "POST",
            "/api/v1/users",
            json={"email": fields.get("email", "").strip(), "role": fields.get("role", "")},
        )
        if not answer.ok:
            return await self._form_refused(visit, self.team, answer)
        return await self.team(visit, invited=answer.body)

    async def set_role(self, visit: Visit) -> aioweb.Response:
        user_id = visit.request.match_info["user_id"]
        fields = await _form(visit.request)
        await visit.act(
            "PATCH", f"/api/v1/users/{quote(user_id)}", json={"role": fields.get("role", "")}
        )
        return self._back("/dashboard/team", "role_changed")

    async def remove_user(self, visit: Visit) -> aioweb.Response:
        user_id = visit.request.match_info["user_id"]
        await visit.act("DELETE", f"/api/v1/users/{quote(user_id)}")
        return self._back("/dashboard/team", "user_removed")

    # --- notifications ----------------------------------------------------------------------

    async def notifications(
        self,
        visit: Visit,
        *,
        typed: Mapping[str, Any] | None = None,
        link: Mapping[str, Any] | None = None,
        form_error: str | None = None,
    ) -> aioweb.Response:
        """The user's own notices per channel (what they typed, when the API refused it), their
        Telegram chat (or a one-time link just asked for) and their last notices."""
        chosen = typed if typed is not None else await visit.get(NOTIFICATIONS_API)
        chat = await visit.call("GET", f"{NOTIFICATIONS_API}/telegram")
        if not chat.ok and chat.status != 404:  # 404: no chat linked
            raise Refused(chat)
        recent = await visit.get(f"{NOTIFICATIONS_API}/deliveries", {"limit": RECENT_NOTICES})
        return self._show(
            visit,
            "notifications.html",
            notices=[(str(notice), _label(notice)) for notice in Notice],
            channels=[(str(channel), label) for channel, label in CHANNEL_LABELS.items()],
            chosen={str(channel): set(chosen[str(channel)]) for channel in Channel},
            sms_number=chosen["sms_number"] or "",
            chat=chat.body if chat.ok else None,
            link=None if link is None else _link_offer(link),
            deliveries=recent["data"],
            labels={str(name): _label(name) for name in (*Notice, *Channel)},
            form_error=form_error,
        )

    async def save_notifications(self, visit: Visit) -> aioweb.Response:
        pairs = await _pairs(visit.request)
        number = (await _form(visit.request)).get("sms_number", "").strip()
        body: dict[str, Any] = {
            str(channel): sorted({value for key, value in pairs if key == channel})
            for channel in Channel
        }
        answer = await visit.call(
            "PATCH", NOTIFICATIONS_API, json={**body, "sms_number": number or None}
        )
        if not answer.ok:
            kept = functools.partial(self.notifications, typed={**body, "sms_number": number})
            return await self._form_refused(visit, kept, answer)
        return self._back("/dashboard/notifications", "notifications_saved")

    async def link_telegram(self, visit: Visit) -> aioweb.Response:
        # Shown once on the answer, not redirected to: the token is a credential for the chat.
        offer = await visit.act("POST", f"{NOTIFICATIONS_API}/telegram-link", json={})
        return await self.notifications(visit, link=offer)

    async def unlink_telegram(self, visit: Visit) -> aioweb.Response:
        answer = await visit.call("DELETE", f"{NOTIFICATIONS_API}/telegram")
        if not answer.ok and answer.status != 404:  # 404: unlinked already (a second click)
            raise Refused(answer)
        return self._back("/dashboard/notifications", "telegram_unlinked")

    # --- the platform's admin ---------------------------------------------------------------

    async def admin_revenue(self, visit: Visit) -> aioweb.Response:
        today = datetime.now(UTC).date()
        first = today - timedelta(days=CHART_DAYS - 1)
        revenue = await visit.get(
            "/api/v1/admin/reports/revenue", {"from": first.isoformat(), "to": today.isoformat()}
        )
        chart = volume_chart(
            days_from(revenue["data"]),
            title=f"Platform volume and fees, {first.isoformat()} to {today.isoformat()} (UTC)",
        )
        return self._show(visit, "admin_revenue.html", revenue=revenue, chart=chart)

    async def admin_merchants(self, visit: Visit) -> aioweb.Response:
        merchants = await visit.get(
            "/api/v1/admin/merchants", {"limit": 100, "cursor": visit.request.query.get("cursor")}
        )
        return self._show(visit, "admin_merchants.html", merchants=merchants)

    async def admin_payouts(self, visit: Visit) -> aioweb.Response:
        waiting = await visit.get("/api/v1/admin/payouts", {"limit": 100})
        return self._show(visit, "admin_payouts.html", payouts=waiting["data"])

    async def approve_payout(self, visit: Visit) -> aioweb.Response:
        payout_id = visit.request.match_info["payout_id"]
        await visit.act("POST", f"/api/v1/admin/payouts/{quote(payout_id)}/approve", json={})
        return self._back("/dashboard/admin/payouts", "payout_approved")

    # --- live invoice statuses --------------------------------------------------------------

    async def live(self, visit: Visit) -> aioweb.StreamResponse:
        """A WebSocket that sends ``{"type": "invoice", "id", "status", …}`` whenever one of the
        merchant's open invoices changes, from the same Redis fan-out as the payment page.

        It follows the newest ``LIVE_INVOICES`` pending or confirming invoices, looks for new ones
        every ``LIVE_RESCAN_SECONDS``, and counts against the worker's live-stream limits."""
        request = visit.request
        if not visit.can(Scope.INVOICES_READ):
            raise Refused(ApiAnswer(403, None))
        socket = aioweb.WebSocketResponse(heartbeat=20.0, max_msg_size=1024)
        await socket.prepare(request)
        with self._connections.slot(client_address(request)) as refused:
            if refused:
                await socket.close(code=1013, message=refused.encode()[:120])
                return socket
            async with _Follower(visit, self._live_views) as follower:
                reader = asyncio.create_task(_drain(socket))
                try:
                    await follower.follow()
                    await socket.send_json({"type": "ready", "following": len(follower.ids)})
                    while not reader.done():
                        view = await follower.next(LIVE_RESCAN_SECONDS)
                        if view is None:
                            await follower.follow()
                        else:
                            await socket.send_json({"type": "invoice", **_live_row(view)})
                except (ConnectionError, SignedOut, Refused, ApiUnavailable):
                    pass  # the browser left, or the session ended: the page falls back to reload
                finally:
                    reader.cancel()
                    await asyncio.gather(reader, return_exceptions=True)
        if not socket.closed:
            await socket.close()
        return socket


class _Follower:
    """The live views of a merchant's open invoices, merged into one queue."""

    def __init__(self, visit: Visit, live_views: LiveViews) -> None:
        self._visit = visit
        self._live_views = live_views
        self._stack = contextlib.AsyncExitStack()
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)
        self._pumps: list[asyncio.Task[None]] = []
        self.ids: set[str] = set()

    async def __aenter__(self) -> _Follower:
        await self._stack.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for pump in self._pumps:
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        await self._stack.aclose()

    async def follow(self) -> None:
        page = await self._visit.get(
            "/api/v1/invoices", {"status": "pending,confirming", "limit": LIVE_INVOICES}
        )
        for row in page["data"]:
            if row["id"] in self.ids or len(self.ids) >= LIVE_INVOICES:
                continue
            self.ids.add(row["id"])
            subscription = await self._stack.enter_async_context(
                self._live_views.subscribe(row["id"])
            )
            self._pumps.append(asyncio.create_task(_pump(subscription, self._queue)))

    async def next(self, seconds: float) -> dict[str, Any] | None:
        try:
            return await asyncio.wait_for(self._queue.get(), seconds)
        except TimeoutError:
            return None


async def _pump(subscription: Any, queue: asyncio.Queue[dict[str, Any]]) -> None:
    async for view in subscription:
        with contextlib.suppress(asyncio.QueueFull):
            queue.put_nowait(view)


async def _drain(socket: aioweb.WebSocketResponse) -> None:
    """Reads (and ignores) what the browser sends, until it closes."""
    async for message in socket:
        if message.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
            break


def _live_row(view: Mapping[str, Any]) -> dict[str, Any]:
    shown = public_view(dict(view))
    return {
        key: shown.get(key)
        for key in (
            "id",
            "status",
            "payment_exception",
            "amount_received",
            "amount_due",
            "confirmations",
            "required_confirmations",
            "version",
        )
    }


# --- small helpers ----------------------------------------------------------------------------


_FORM: Final = aioweb.RequestKey("checkout.dashboard_form", list)


async def _pairs(request: aioweb.Request) -> list[tuple[str, str]]:
    """The posted form's fields in order, bounded like every body (read once per request)."""
    held: list[tuple[str, str]] | None = request.get(_FORM)
    if held is None:
        raw = await read_capped(request)
        try:
            held = parse_qsl(
                raw.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS
            )
        except (UnicodeDecodeError, ValueError):
            raise aioweb.HTTPBadRequest(
                text="the form is not valid UTF-8, or has more than 64 fields"
            ) from None
        request[_FORM] = held
    return held


async def _form(request: aioweb.Request) -> dict[str, str]:
    """The posted form's fields, the first value of each."""
    fields: dict[str, str] = {}
    for name, value in await _pairs(request):
        fields.setdefault(name, value)
    return fields


def _given(fields: Mapping[str, str], *names: str) -> dict[str, str]:
    """The fields among ``names`` that were filled in (the API has a default for the others)."""
    return {name: fields[name].strip() for name in names if fields.get(name, "").strip()}


def _fresh_key() -> str:
    """An idempotency key for one rendering of a form that moves money."""
    return f"dash_{secrets.token_urlsafe(18)}"


def _idempotency(fields: Mapping[str, str]) -> dict[str, str]:
    """The form's key as the API's header; without one the API refuses to move money."""
    key = fields.get(IDEMPOTENCY_FIELD, "").strip()
    return {"Idempotency-Key": key} if key else {}


def _overpaid(invoice: Mapping[str, Any], refunds: list[dict[str, Any]]) -> str:
    """What a refund without an amount returns, shown as a hint: what was received beyond the
    amount, less the refunds that did not fail; ``"0"`` when nothing is left (the API decides)."""
    received = parse_usdt(invoice["amount_received"], allow_zero=True)
    refunded = sum(parse_usdt(item["amount"]) for item in refunds if item["status"] != "failed")
    left = received - parse_usdt(invoice["amount"]) - refunded
    return format_usdt(max(left, 0))


def _json_or_none(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _next_page(path: str, filters: Mapping[str, object], page: Mapping[str, Any]) -> str | None:
    """The link to the page after ``page`` of an API list, with the same filters."""
    cursor = page["next_cursor"]
    return None if cursor is None else LoopbackApi.path(path, {**filters, "cursor": cursor})


def _see_other(location: str) -> aioweb.Response:
    return aioweb.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


def _local(target: str | None, default: str) -> str:
    """Only a path inside the dashboard is a place to go back to (no open redirect)."""
    if target and target.startswith("/dashboard") and "//" not in target and "\\" not in target:
        return target
    return default


def _next(target: str | None) -> str:
    return _local(target, "/dashboard")


def _label(name: Notice | Channel) -> str:
    """What the page calls a notice or a channel (a new one by its name, until it has a label)."""
    label = NOTICE_LABELS.get(name) if isinstance(name, Notice) else CHANNEL_LABELS.get(name)
    return label or str(name).replace("_", " ").capitalize()


def _link_offer(offer: Mapping[str, Any]) -> dict[str, Any]:
    """A Telegram link offer as the page shows it: the deep link only if it goes to Telegram
    (it becomes a link's href), and how many minutes the token has left."""
    deep_link = offer.get("deep_link")
    left = datetime.fromisoformat(offer["expires_at"]) - datetime.now(UTC)
    return {
        "command": offer["command"],
        "deep_link": deep_link if str(deep_link).startswith("https://t.me/") else None,
        "expires_at": offer["expires_at"],
        "minutes": max(0, round(left.total_seconds() / 60)),
    }


def _when(value: str | None) -> str:
    """An API time (RFC 3339, UTC) as the dashboard shows it: ``2026-12-01 21:07 UTC``."""
    if not value:
        return "—"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
