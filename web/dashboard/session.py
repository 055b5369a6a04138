"""The dashboard's sign-in state in the browser: two HttpOnly cookies and a CSRF token.

- ``cc_access``: the user's access token (the API's JWT), sent back with every dashboard request.
- ``cc_refresh``: the refresh token; when the access token has expired the dashboard renews both
  with ``POST /api/v1/auth/refresh`` on the user's behalf (the refresh token rotates each time).
- ``cc_csrf``: a random token that every form carries back in a hidden field (double submit).

All three are ``HttpOnly`` (no script reads them), ``SameSite=Strict`` and limited to
``/dashboard``; ``Secure`` when ``CHECKOUT_ENV=production``, where the platform is served over
HTTPS. A form is accepted only when its token equals the cookie's and, when the browser sends an
``Origin``, that origin is this host: a page elsewhere can neither read the token nor forge it.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Final
from urllib.parse import urlsplit

from aiohttp import web as aioweb

ACCESS_COOKIE: Final = "cc_access"
REFRESH_COOKIE: Final = "cc_refresh"
CSRF_COOKIE: Final = "cc_csrf"
COOKIE_PATH: Final = "/dashboard"
REFRESH_MAX_AGE: Final = 30 * 86_400
_TOKEN_MAX: Final = 4096  # longer than any token we issue; a bigger cookie is not ours


class CookieJar:
    def __init__(self, *, secure: bool) -> None:
        self.secure = secure

    def _set(self, response: aioweb.StreamResponse, name: str, value: str, max_age: int) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=COOKIE_PATH,
            httponly=True,
            secure=self.secure,
            samesite="Strict",
        )

    def sign_in(
        self, response: aioweb.StreamResponse, *, access: str, expires_in: int, refresh: str
    ) -> None:
        self._set(response, ACCESS_COOKIE, access, expires_in)
        self._set(response, REFRESH_COOKIE, refresh, REFRESH_MAX_AGE)

    def sign_out(self, response: aioweb.StreamResponse) -> None:
        for name in (ACCESS_COOKIE, REFRESH_COOKIE):
            response.del_cookie(name, path=COOKIE_PATH)

    def csrf(self, request: aioweb.Request, response: aioweb.StreamResponse) -> str:
        """The request's CSRF token; a new one (set on ``response``) when it has none."""
        token = request.cookies.get(CSRF_COOKIE, "")
        if not _plausible(token, 64):
            token = secrets.token_urlsafe(32)
            self._set(response, CSRF_COOKIE, token, REFRESH_MAX_AGE)
        return token


def _plausible(token: str, maximum: int = _TOKEN_MAX) -> bool:
    return 0 < len(token) <= maximum and token.isascii() and token.isprintable()


def tokens(request: aioweb.Request) -> tuple[str | None, str | None]:
    """The access and refresh tokens the browser sent (None for what is missing or malformed)."""
    access = request.cookies.get(ACCESS_COOKIE, "")
    refresh = request.cookies.get(REFRESH_COOKIE, "")
    return (access if _plausible(access) else None, refresh if _plausible(refresh) else None)


def form_is_genuine(request: aioweb.Request, submitted: str | None) -> bool:
    """The form came from a dashboard page of this host, with this browser's CSRF token."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not (_plausible(cookie, 64) and submitted and hmac.compare_digest(cookie, submitted)):
        return False
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return origin is None  # "null": a sandboxed or privacy-stripped context, refused
    return urlsplit(origin).netloc.lower() == request.host.lower()
