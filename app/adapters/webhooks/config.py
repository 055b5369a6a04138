"""What a worker needs to run webhooks: its keyring, its URL policy, its dispatch settings.

The keys that encrypt signing secrets come from ``WEBHOOK_SECRET_KEYS``. A development machine
without that variable gets one key generated once into ``CHECKOUT_DATA_DIR`` (mode 0600) and
shared by the workers of that host; production refuses to start without the variable
(app/settings.py), so a secret is never sealed with a key nobody configured.
"""

from __future__ import annotations

import contextlib
import os
from datetime import UTC, datetime
from pathlib import Path

from app.adapters.webhooks.dispatcher import DispatchSettings
from app.adapters.webhooks.secrets import SecretKeyring, generate_key
from app.adapters.webhooks.ssrf import UrlPolicy
from app.settings import Settings

DEV_KEY_FILE = "webhook-secret-keys"


def url_policy(settings: Settings) -> UrlPolicy:
    production = settings.environment == "production"
    return UrlPolicy(
        require_https=production,
        allow_loopback=settings.webhook_allow_loopback,
        resolve_at_registration=production,
    )


def dispatch_settings(settings: Settings) -> DispatchSettings:
    schedule = settings.webhook_retry_schedule
    return DispatchSettings(
        policy=url_policy(settings),
        timeout=settings.webhook_timeout,
        disable_after=settings.webhook_disable_after,
        concurrency=settings.webhook_concurrency,
        endpoint_concurrency=settings.webhook_endpoint_concurrency,
        poll_interval=settings.webhook_poll_interval,
        **({"retry_schedule": schedule} if schedule else {}),
    )


def keyring(settings: Settings) -> SecretKeyring:
    if settings.webhook_secret_keys is not None:
        return SecretKeyring.parse(settings.webhook_secret_keys)
    if settings.environment == "production":  # Settings.from_env refuses this already
        raise RuntimeError("WEBHOOK_SECRET_KEYS is required in production")
    return SecretKeyring.parse(_development_keys(settings.data_dir / DEV_KEY_FILE))


def _development_keys(path: Path) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = f"dev{datetime.now(UTC):%Y%m%d}:{generate_key()}"
        temporary = path.with_name(f"{path.name}.{os.getpid()}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(entry + "\n")
        # Two workers starting together: the first link wins, the other reads the winner's key.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
        temporary.unlink()
    return path.read_text().strip()
