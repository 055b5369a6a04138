"""``Mailer`` over SMTP with aiosmtplib: a multipart text and HTML message per send.

Configured by ``SMTP_HOST``, ``SMTP_PORT``, ``SMTP_USERNAME``/``SMTP_PASSWORD``,
``SMTP_STARTTLS``, ``MAIL_FROM`` and ``MAIL_REPLY_TO`` (app/settings.py). Locally `make infra`
runs a real SMTP server (aiosmtpd) on 127.0.0.1:1025 that keeps every message under
``.local/mail/``.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import aiosmtplib

from app.services.errors import DependencyUnavailable
from app.settings import Settings

SEND_TIMEOUT = 15.0


class SmtpMailer:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        reply_to: str | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._sender = sender
        self._username = username
        self._password = password
        self._starttls = starttls
        self._reply_to = reply_to

    async def send(self, to: str, subject: str, text: str, html: str) -> None:
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = to
        message["Subject"] = subject
        if self._reply_to is not None:
            message["Reply-To"] = self._reply_to
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = make_msgid(domain="checkout.localhost")
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        try:
            await aiosmtplib.send(
                message,
                hostname=self._host,
                port=self._port,
                username=self._username,
                password=self._password,
                start_tls=self._starttls,
                timeout=SEND_TIMEOUT,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise DependencyUnavailable(
                f"the mail server {self._host}:{self._port} did not take the message: {exc}"
            ) from exc


def smtp_mailer(settings: Settings) -> SmtpMailer:
    """The mailer the ``SMTP_*`` and ``MAIL_FROM`` settings describe."""
    return SmtpMailer(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.mail_from,
        username=settings.smtp_username,
        password=settings.smtp_password,
        starttls=settings.smtp_starttls,
        reply_to=settings.mail_reply_to,
    )
