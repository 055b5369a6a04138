"""Access endpoints: sign-in and sessions, API keys, the team, the platform admin, the audit log.

The views parse and present; app/services/access.py, users.py and admin.py do the work.
docs/security.md is the guide: scopes, roles, what each endpoint needs.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

from aiohttp import web as aioweb

from app.domain.access import Principal, Scope, parse_scopes
from app.domain.fees import format_fee_percentage
from app.services.access import ApiKeys
from app.services.admin import PlatformAdmin, require_admin
from app.services.ports import ApiKeyRecord, AuditEntry, AuditLog, MerchantAccount, UserRecord
from app.services.users import Session, UserAccounts
from web.audit import note_actor, note_details, note_target
from web.auth import Authenticator
from web.edge import client_address
from web.errors import ApiError
from web.input import query_whole_number, read_json_object, time_field, whole_number
from web.presenters import format_time
from web.requests import page_limit

MAX_SCOPES: Final = 64
DEFAULT_ROLL_GRACE_SECONDS: Final = 86_400
MAX_ROLL_GRACE_SECONDS: Final = 30 * 86_400
MAX_MERCHANT_CURSOR: Final = 128


def _bad(message: str, param: str | None) -> ApiError:
    return ApiError(400, "parameter_invalid", message, param=param)


def _only(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise _bad(
            f"unknown field {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}", unknown[0]
        )


# --- presenting -------------------------------------------------------------------------------


def key_view(key: ApiKeyRecord, secret: str | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": key.key_id,
        "object": "api_key",
        "name": key.name,
        "scopes": sorted(scope.value for scope in key.scopes),
        "created_at": format_time(key.created_at),
        "expires_at": format_time(key.expires_at),
        "revoked_at": format_time(key.revoked_at),
        "rolled_at": format_time(key.rolled_at),
        "previous_secret_valid_until": format_time(key.previous_valid_until),
        "created_by": key.created_by,
    }
    if secret is not None:
        view["secret"] = secret  # shown at creation and when rolled, never again
    return view


def user_view(user: UserRecord) -> dict[str, Any]:
    return {
        "id": user.user_id,
        "object": "user",
        "email": user.email,
        "merchant_id": user.merchant_id,
        "role": user.role.value,
        "status": (
            "disabled"
            if user.disabled_at is not None
            else ("invited" if user.password_hash is None else "active")
        ),
        "created_at": format_time(user.created_at),
        "disabled_at": format_time(user.disabled_at),
    }


def session_view(session: Session) -> dict[str, Any]:
    return {
        "object": "session",
        "token_type": "Bearer",
        "access_token": session.access_token,
        "expires_in": session.expires_in,
        "refresh_token": session.refresh_token,
        "user": user_view(session.user),
    }


def merchant_view(account: MerchantAccount) -> dict[str, Any]:
    merchant = account.merchant
    return {
        "id": merchant.merchant_id,
        "object": "merchant",
        "name": merchant.name,
        "fee_percentage": format_fee_percentage(merchant.fee_percentage),
        "confirmations_override": merchant.confirmation_override,
        "underpaid_tolerance": (
            None
            if merchant.underpaid_tolerance is None
            else format_fee_percentage(merchant.underpaid_tolerance)
        ),
        "status": "suspended" if account.suspended_at is not None else "active",
        "suspended_at": format_time(account.suspended_at),
        "created_at": format_time(account.created_at),
    }


def audit_view(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.entry_id,
        "object": "audit_entry",
        "occurred_at": format_time(entry.occurred_at),
        "merchant_id": entry.merchant_id,
        "actor": {"type": entry.actor_kind, "id": entry.actor_id, "role": entry.actor_role},
        "action": entry.action,
        "target_id": entry.target_id,
        "request_id": entry.request_id,
        "client_address": entry.client_address,
        "result": entry.result,
        "details": dict(entry.details),
    }


def principal_view(principal: Principal) -> dict[str, Any]:
    return {
        "object": "principal",
        "type": principal.kind,
        "id": principal.actor_id,
        "merchant_id": principal.merchant_id,
        "role": None if principal.role is None else principal.role.value,
        "scopes": sorted(scope.value for scope in principal.scopes),
        "merchant_status": "suspended" if principal.suspended else "active",
        "email_verified": principal.email_verified,
    }


# --- the views --------------------------------------------------------------------------------


class AccessApi:
    def __init__(
        self,
        auth: Authenticator,
        keys: ApiKeys,
        users: UserAccounts,
        admin: PlatformAdmin,
        audit: AuditLog,
    ) -> None:
        self._auth = auth
        self._keys = keys
        self._users = users
        self._admin = admin
        self._audit = audit

    def add_routes(self, router: aioweb.UrlDispatcher) -> None:
        router.add_post("/api/v1/auth/login", self.login)
        router.add_post("/api/v1/auth/refresh", self.refresh)
        router.add_post("/api/v1/auth/logout", self.logout)
        router.add_post("/api/v1/auth/accept-invitation", self.accept_invitation)
        router.add_get("/api/v1/auth/me", self.me)
        router.add_post("/api/v1/api-keys", self.create_key)
        router.add_get("/api/v1/api-keys", self.list_keys)
        router.add_delete("/api/v1/api-keys/{key_id}", self.revoke_key)
        router.add_post("/api/v1/api-keys/{key_id}/roll", self.roll_key)
        router.add_get("/api/v1/users", self.list_users)
        router.add_post("/api/v1/users", self.invite_user)
        router.add_patch("/api/v1/users/{user_id}", self.set_role)
        router.add_delete("/api/v1/users/{user_id}", self.remove_user)
        router.add_get("/api/v1/admin/merchants", self.admin_merchants)
        router.add_get("/api/v1/admin/merchants/{merchant_id}", self.admin_merchant)
        router.add_patch("/api/v1/admin/merchants/{merchant_id}", self.admin_update)
        router.add_post("/api/v1/admin/merchants/{merchant_id}/suspend", self.admin_suspend)
        router.add_post("/api/v1/admin/merchants/{merchant_id}/unsuspend", self.admin_unsuspend)
        router.add_get("/api/v1/audit-log", self.audit_log)

    # --- sign-in --------------------------------------------------------------------------

    async def login(self, request: aioweb.Request) -> aioweb.Response:
        body = await read_json_object(request)
        _only(body, {"email", "password"})
        email = body.get("email")
        note_details(request, {"email": str(email)[:254] if isinstance(email, str) else None})
        session = await self._users.login(
            email, body.get("password"), client_address=client_address(request)
        )
        note_actor(request, session.user)
        return aioweb.json_response(session_view(session), headers=_NO_STORE)

    async def refresh(self, request: aioweb.Request) -> aioweb.Response:
        body = await read_json_object(request)
        _only(body, {"refresh_token"})
        session = await self._users.refresh(body.get("refresh_token"))
        note_actor(request, session.user)
        return aioweb.json_response(session_view(session), headers=_NO_STORE)

    async def logout(self, request: aioweb.Request) -> aioweb.Response:
        body = await read_json_object(request)
        _only(body, {"refresh_token"})
        await self._users.logout(body.get("refresh_token"))
        return aioweb.Response(status=204)

    async def accept_invitation(self, request: aioweb.Request) -> aioweb.Response:
        body = await read_json_object(request)
        _only(body, {"invitation", "password"})
        session = await self._users.accept_invitation(body.get("invitation"), body.get("password"))
        note_actor(request, session.user)
        return aioweb.json_response(session_view(session), headers=_NO_STORE)

    async def me(self, request: aioweb.Request) -> aioweb.Response:
        return aioweb.json_response(principal_view(await self._auth.principal(request)))

    # --- API keys -------------------------------------------------------------------------

    async def create_key(self, request: aioweb.Request) -> aioweb.Response:
        principal = await self._auth.principal(request)
        principal.require(Scope.KEYS_WRITE)
        body = await read_json_object(request)
        _only(body, {"name", "scopes", "expires_at"})
        raw_scopes = body.get("scopes")
        if not isinstance(raw_scopes, list) or len(raw_scopes) > MAX_SCOPES:
            raise _bad(f"scopes must be a list of 1 to {MAX_SCOPES} scope names", "scopes")
        scopes = parse_scopes(raw_scopes)
        expires_at = time_field(body, "expires_at") if body.get("expires_at") is not None else None
        key, secret = await self._keys.create(
            principal, name=body.get("name"), scopes=scopes, expires_at=expires_at
        )
        note_target(request, key.key_id)
        note_details(request, {"name": key.name, "scopes": sorted(scopes)})
        return aioweb.json_response(key_view(key, secret), status=201, headers=_NO_STORE)

    async def list_keys(self, request: aioweb.Request) -> aioweb.Response:
        keys = await self._keys.keys(await self._auth.principal(request))
        return aioweb.json_response({"data": [key_view(key) for key in keys], "has_more": False})

    async def revoke_key(self, request: aioweb.Request) -> aioweb.Response:
        principal = await self._auth.principal(request)
        key = await self._keys.revoke(principal, request.match_info["key_id"])
        return aioweb.json_response(key_view(key))

    async def roll_key(self, request: aioweb.Request) -> aioweb.Response:
        principal = await self._auth.principal(request)
        principal.require(Scope.KEYS_WRITE)
        body = await read_json_object(request, allow_empty=True)
        _only(body, {"grace_period_seconds"})
        grace = whole_number(
            body.get("grace_period_seconds", DEFAULT_ROLL_GRACE_SECONDS),
            "grace_period_seconds",
            0,
            MAX_ROLL_GRACE_SECONDS,
        )
        key, secret = await self._keys.roll(
            principal, request.match_info["key_id"], grace=timedelta(seconds=grace)
        )
        note_details(request, {"grace_period_seconds": grace})
        return aioweb.json_response(key_view(key, secret), headers=_NO_STORE)

    # --- the team -------------------------------------------------------------------------

    async def list_users(self, request: aioweb.Request) -> aioweb.Response:
        users = await self._users.team(await self._auth.principal(request))
        return aioweb.json_response({"data": [user_view(u) for u in users], "has_more": False})

    async def invite_user(self, request: aioweb.Request) -> aioweb.Response:
        principal = await self._auth.principal(request)
        principal.require(Scope.USERS_WRITE)
        body = await read_json_object(request)
        _only(body, {"email", "role"})
        user, invitation = await self._users.invite(
            principal, email=body.get("email"), role=body.get("role")
        )
        note_target(request, user.user_id)
        note_details(request, {"email": user.email, "role": user.role.value})
        view = {**user_view(user), "invitation": invitation}
        return aioweb.json_response(view, status=201, headers=_NO_STORE)

    async def set_role(self, request: aioweb.Request) -> aioweb.Response:
        principal = await self._auth.principal(request)
        principal.require(Scope.USERS_WRITE)
        body = await read_json_object(request)
        _only(body, {"role"})
        user = await self._users.set_role(
            principal, request.match_info["user_id"], body.get("role")
        )
        note_details(request, {"role": user.role.value})
        return aioweb.json_response(user_view(user))

    async def remove_user(self, request: aioweb.Request) -> aioweb.Response:
        principal = await self._auth.principal(request)
        user = await self._users.remove(principal, request.match_info["user_id"])
        return aioweb.json_response(user_view(user))

    # --- the platform admin ---------------------------------------------------------------

    async def admin_merchants(self, request: aioweb.Request) -> aioweb.Response:
        principal = await self._auth.principal(request)
        limit = page_limit(request)
        after = request.query.get("starting_after")
        if after is not None and not 1 <= len(after) <= MAX_MERCHANT_CURSOR:
            raise _bad("starting_after must be a merchant id", "starting_after")
        accounts = await self._admin.merchants(principal, after=after, limit=limit + 1)
        page = accounts[:limit]
        has_more = len(accounts) > limit
        return aioweb.json_response(
            {
                "data": [merchant_view(account) for account in page],
                "has_more": has_more,
                "next_cursor": page[-1].merchant.merchant_id if has_more else None,
            }
        )

    async def admin_merchant(self, request: aioweb.Request) -> aioweb.Response:
        principal = await self._auth.principal(request)
        account = await self._admin.merchant(principal, request.match_info["merchant_id"])
        return aioweb.json_response(merchant_view(account))

    async def admin_update(self, request: aioweb.Request) -> aioweb.Response:
        principal = await self._auth.principal(request)
        require_admin(principal)  # before the body is read
        body = await read_json_object(request)
        _only(body, {"fee_percentage", "confirmations_override", "underpaid_tolerance"})
        account = await self._admin.update(principal, request.match_info["merchant_id"], body)
        note_details(request, {name: str(value) for name, value in body.items()})
        return aioweb.json_response(merchant_view(account))

    async def admin_suspend(self, request: aioweb.Request) -> aioweb.Response:
        return await self._suspension(request, suspended=True)

    async def admin_unsuspend(self, request: aioweb.Request) -> aioweb.Response:
        return await self._suspension(request, suspended=False)

    async def _suspension(self, request: aioweb.Request, *, suspended: bool) -> aioweb.Response:
        principal = await self._auth.principal(request)
        account = await self._admin.set_suspended(
            principal, request.match_info["merchant_id"], suspended
        )
        return aioweb.json_response(merchant_view(account))

    # --- the audit log --------------------------------------------------------------------

    async def audit_log(self, request: aioweb.Request) -> aioweb.Response:
        principal = await self._auth.principal(request)
        if principal.is_admin:
            merchant_id = request.query.get("merchant_id")  # None: every merchant's
        else:
            merchant_id = principal.require(Scope.AUDIT_READ).merchant_id
        limit = page_limit(request)
        after = query_whole_number(
            request.query.get("starting_after"), "starting_after", 0, 0, 2**62
        )
        entries = await self._audit.entries(merchant_id, after=after or None, limit=limit + 1)
        page = entries[:limit]
        has_more = len(entries) > limit
        return aioweb.json_response(
            {
                "data": [audit_view(entry) for entry in page],
                "has_more": has_more,
                "next_cursor": str(page[-1].entry_id) if has_more else None,
            }
        )


_NO_STORE: Final = {"Cache-Control": "no-store"}
