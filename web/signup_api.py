"""Sign-up of new merchants (app/services/signup.py): no credential, rate limited per address.

- ``GET /api/v1/signup`` — whether sign-up is ``open``, by ``invite`` or ``closed`` here.
- ``POST /api/v1/signup`` — ``business_name``, ``email``, ``password`` (and ``invitation`` when
  by invite): the merchant and its owner, a verification link mailed; 201.
- ``POST /api/v1/signup/verify`` — ``token`` from the link: the email is verified.
- ``POST /api/v1/signup/resend`` — ``email``: a new link if that owner is unverified; always 202.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web as aioweb

from app.services.signup import Signup
from web.audit import note_actor, note_details, note_target
from web.edge import client_address
from web.errors import ApiError
from web.input import read_json_object
from web.presenters import format_time

_NO_STORE: Final = {"Cache-Control": "no-store"}


def _only(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(
            400,
            "parameter_unknown",
            f"unknown field {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}",
            param=unknown[0],
        )


class SignupApi:
    def __init__(self, signup: Signup) -> None:
        self._signup = signup

    def add_routes(self, router: aioweb.UrlDispatcher) -> None:
        router.add_get("/api/v1/signup", self.mode)
        router.add_post("/api/v1/signup", self.sign_up)
        router.add_post("/api/v1/signup/verify", self.verify)
        router.add_post("/api/v1/signup/resend", self.resend)

    async def mode(self, _: aioweb.Request) -> aioweb.Response:
        return aioweb.json_response({"object": "signup", "mode": self._signup.mode})

    async def sign_up(self, request: aioweb.Request) -> aioweb.Response:
        body = await read_json_object(request)
        _only(body, {"business_name", "email", "password", "invitation"})
        email = body.get("email")
        note_details(request, {"email": str(email)[:254] if isinstance(email, str) else None})
        signed_up = await self._signup.sign_up(
            business=body.get("business_name"),
            email=email,
            password=body.get("password"),
            invitation=body.get("invitation"),
            client_address=client_address(request),
        )
        note_actor(request, signed_up.owner)
        note_target(request, signed_up.merchant.merchant_id)
        return aioweb.json_response(
            {
                "object": "signup",
                "merchant_id": signed_up.merchant.merchant_id,
                "business_name": signed_up.merchant.name,
                "user_id": signed_up.owner.user_id,
                "email": signed_up.owner.email,
                "email_verified": False,
                "verification_email": "sent" if signed_up.email_sent else "failed",
            },
            status=201,
            headers=_NO_STORE,
        )

    async def verify(self, request: aioweb.Request) -> aioweb.Response:
        body = await read_json_object(request)
        _only(body, {"token"})
        user = await self._signup.verify(body.get("token"))
        note_actor(request, user)
        return aioweb.json_response(
            {
                "object": "email_verification",
                "user_id": user.user_id,
                "email": user.email,
                "email_verified_at": format_time(user.email_verified_at),
            },
            headers=_NO_STORE,
        )

    async def resend(self, request: aioweb.Request) -> aioweb.Response:
        body = await read_json_object(request)
        _only(body, {"email"})
        await self._signup.resend(body.get("email"), client_address=client_address(request))
        return aioweb.json_response(
            {"object": "signup_resend", "status": "if that account awaits verification, "
             "a new link is on its way"},
            status=202,
            headers=_NO_STORE,
        )  # fmt: skip
