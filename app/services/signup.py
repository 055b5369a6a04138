"""Self-service sign-up of new merchants, and the email verification before their first API key.

``SIGNUP_MODE`` decides who may sign up: ``closed`` (operators create merchants with
``checkout create-merchant``), ``invite`` (with a one-time code an operator issued:
``checkout create-signup-invitation``) or ``open``. A sign-up writes, in one transaction, the
merchant (the default platform fee), its owner (unverified) and a one-time verification link,
and uses up the invitation; then the link is mailed. Following it marks the email verified; until
then the owner may sign in and look around, but not create an API key (app/services/access.py).

Links and invitation codes are credentials like API keys (app/services/credentials.py): only an
HMAC of the secret is stored, they expire, they work once. Sign-ups per client address are rate
limited; asking for the link again never says whether an email has an account.
"""

from __future__ import annotations

import html
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from app.domain.access import Role
from app.domain.errors import CheckoutError, Forbidden, TooManyAttempts
from app.domain.fees import DEFAULT_FEE_PERCENTAGE
from app.domain.fields import one_line
from app.domain.merchant import Merchant
from app.services.access import AccessControl
from app.services.credentials import SecretDigests, new_credential, parse_credential
from app.services.errors import DependencyUnavailable
from app.services.ports import (
    Mailer,
    OneTimeSecret,
    PasswordHashing,
    SignupRecord,
    SignupStore,
    UserRecord,
    UserStore,
)
from app.services.rate_limits import Limiter, Rate
from app.services.users import parse_email

logger = logging.getLogger(__name__)

VERIFICATION: Final = "ver_"
SIGNUP_INVITATION: Final = "sgn_"
VERIFICATION_LIFETIME: Final = timedelta(hours=48)
MAX_INVITATION_LIFETIME: Final = timedelta(days=90)
MAX_BUSINESS_NAME: Final = 200
MAX_NOTE: Final = 200


class SignupClosed(Forbidden):
    code = "signup_closed"


class InvalidSignupInvitation(Forbidden):
    code = "signup_invitation_invalid"


class InvalidVerification(CheckoutError):
    code = "verification_invalid"


class InvalidSignupField(CheckoutError):
    code = "parameter_invalid"


@dataclass(frozen=True)
class SignupSettings:
    mode: str  # closed, invite, open
    public_url: str  # the dashboard's address in emails
    per_address: Rate


@dataclass(frozen=True)
class SignedUp:
    merchant: Merchant
    owner: UserRecord
    email_sent: bool  # False: the account exists; ask for the link again


def business_name(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_BUSINESS_NAME:
        raise InvalidSignupField(
            f"business_name must be 1 to {MAX_BUSINESS_NAME} characters", param="business_name"
        )
    try:
        return one_line(value.strip())
    except ValueError as exc:
        raise InvalidSignupField(f"business_name {exc}", param="business_name") from None


class Signup:
    def __init__(
        self,
        store: SignupStore,
        users: UserStore,
        passwords: PasswordHashing,
        digests: SecretDigests,
        mailer: Mailer,
        limiter: Limiter,
        settings: SignupSettings,
        access: AccessControl | None = None,
    ) -> None:
        self._store = store
        self._users = users
        self._passwords = passwords
        self._digests = digests
        self._mailer = mailer
        self._limiter = limiter
        self.settings = settings
        self._access = access

    @property
    def mode(self) -> str:
        return self.settings.mode

    async def _charge(self, client_address: str) -> None:
        decision = await self._limiter.hit(f"signup:ip:{client_address}", self.settings.per_address)
        if not decision.allowed:
            raise TooManyAttempts(
                "too many sign-ups from your address; retry in "
                f"{max(1, round(decision.retry_after))} s",
                retry_after=decision.retry_after,
            )

    async def sign_up(
        self,
        *,
        business: object,
        email: object,
        password: object,
        invitation: object = None,
        client_address: str,
    ) -> SignedUp:
        if self.mode == "closed":
            raise SignupClosed(
                "sign-up is closed on this platform; ask its operator for an account"
            )
        name = business_name(business)
        address = parse_email(email)
        if not isinstance(password, str):
            raise InvalidSignupField("password must be a string", param="password")
        self._passwords.check_policy(password)
        invitation_id = await self._check_invitation(invitation) if self.mode == "invite" else None
        await self._charge(client_address)
        now = datetime.now(UTC)
        merchant = Merchant(
            merchant_id=f"mer_{secrets.token_hex(10)}",
            name=name,
            fee_percentage=DEFAULT_FEE_PERCENTAGE,
            confirmation_override=None,
        )
        owner = UserRecord(
            user_id=f"usr_{secrets.token_hex(10)}",
            email=address,
            merchant_id=merchant.merchant_id,
            role=Role.OWNER,
            created_at=now,
            password_hash=await self._passwords.hash(password),
            created_by="signup",
        )
        verification, link = self._new_link(owner.user_id, now)
        await self._store.register(
            SignupRecord(merchant, owner, verification, invitation_id=invitation_id)
        )
        sent = await self._send_link(owner.email, name, link)
        return SignedUp(merchant, owner, sent)

    async def _check_invitation(self, invitation: object) -> str:
        parsed = (
            parse_credential(SIGNUP_INVITATION, invitation) if isinstance(invitation, str) else None
        )
        if parsed is None:
            raise InvalidSignupInvitation(
                "sign-up is by invitation: give the code the platform's operator sent you",
                param="invitation",
            )
        held = await self._store.signup_invitation(parsed.credential_id)
        if (
            held is None
            or not self._digests.matches(parsed.secret, held.secret_hmac)
            or held.used_at is not None
            or held.expires_at <= datetime.now(UTC)
        ):
            raise InvalidSignupInvitation(
                "the invitation is not valid (unknown, used or expired)", param="invitation"
            )
        return held.secret_id

    def _new_link(self, user_id: str, now: datetime) -> tuple[OneTimeSecret, str]:
        credential = new_credential(VERIFICATION)
        verification = OneTimeSecret(
            secret_id=credential.credential_id,
            secret_hmac=self._digests.of(credential.secret),
            expires_at=now + VERIFICATION_LIFETIME,
            user_id=user_id,
        )
        return verification, f"{self.settings.public_url}/dashboard/verify?token={credential}"

    async def _send_link(self, to: str, business: str | None, link: str) -> bool:
        greeting = f"Welcome to crypto-checkout, {business}." if business else "Hello,"
        text = (
            f"{greeting}\n\n"
            f"Confirm your email address to create API keys:\n{link}\n\n"
            "The link works once, for 48 hours. If you did not sign up, ignore this email.\n"
        )
        page = (
            f"<p>{html.escape(greeting)}</p>"
            "<p>Confirm your email address to create API keys:</p>"
            f'<p><a href="{html.escape(link)}">Confirm my email address</a></p>'
            "<p>The link works once, for 48 hours. If you did not sign up, ignore this email.</p>"
        )
        try:
            await self._mailer.send(to, "Confirm your email address", text, page)
        except DependencyUnavailable as exc:
            # The account is written; the owner asks for the link again (resend).
            logger.error("sign-up: the verification email to a new owner failed: %s", exc)
            return False
        return True

    async def resend(self, email: object, *, client_address: str) -> None:
        """A new link for an unverified owner; the same answer whether the email is known."""
        await self._charge(client_address)
        try:
            address = parse_email(email)
        except CheckoutError:
            return
        user = await self._users.user_by_email(address)
        if user is None or user.email_verified_at is not None or user.disabled_at is not None:
            return
        verification, link = self._new_link(user.user_id, datetime.now(UTC))
        await self._store.add_verification(verification)
        await self._send_link(user.email, None, link)

    async def verify(self, token: object) -> UserRecord:
        parsed = parse_credential(VERIFICATION, token) if isinstance(token, str) else None
        held = None if parsed is None else await self._store.verification(parsed.credential_id)
        if (
            parsed is None
            or held is None
            or not self._digests.matches(parsed.secret, held.secret_hmac)
            or held.used_at is not None
            or held.expires_at <= datetime.now(UTC)
        ):
            raise InvalidVerification(
                "this link is not valid (unknown, used or expired); sign in and ask for a new one",
                param="token",
            )
        user_id = await self._store.use_verification(held.secret_id)
        user = None if user_id is None else await self._users.user(user_id)
        if user is None:
            raise InvalidVerification("this link was used already", param="token")
        if self._access is not None:
            # Every worker forgets the cached unverified user: the first key works at once.
            await self._access.changed(f"user:{user.user_id}")
        return user

    async def invite(self, *, note: str | None, expires_in: timedelta) -> tuple[str, datetime]:
        """An operator's one-time sign-up code (``checkout create-signup-invitation``)."""
        if not timedelta(hours=1) <= expires_in <= MAX_INVITATION_LIFETIME:
            raise InvalidSignupField("an invitation lasts from 1 hour to 90 days", param="days")
        if note is not None and len(note) > MAX_NOTE:
            raise InvalidSignupField(f"note must be at most {MAX_NOTE} characters", param="note")
        credential = new_credential(SIGNUP_INVITATION)
        expires_at = datetime.now(UTC) + expires_in
        await self._store.add_signup_invitation(
            OneTimeSecret(
                credential.credential_id, self._digests.of(credential.secret), expires_at
            ),
            note,
        )
        return str(credential), expires_at
