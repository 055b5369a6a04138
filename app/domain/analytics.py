"""The messages of ``crypto-checkout.analytics``: each day's figures, published in batch.

Every ``ANALYTICS_INTERVAL`` seconds one worker (Faust's leader) publishes a snapshot of the
current UTC day — one ``MerchantDailyMetrics`` per merchant with activity that day (keyed by the
merchant id) and one ``PlatformDailyMetrics`` (keyed ``platform``) — and, just after midnight,
the final figures of the day before. A later snapshot of the same day replaces an earlier one:
a consumer keeps the one with the latest ``as_of`` per key and day. The figures come from the
read models (docs/reports.md); amounts are USDT decimal strings like the domain events'.
"""

from __future__ import annotations

from datetime import date
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.domain.fields import Identifier, UtcDatetime
from app.domain.money import Usdt

ANALYTICS_SCHEMA_VERSION: Final = 1
PLATFORM_KEY: Final = "platform"


class AnalyticsMessage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = ANALYTICS_SCHEMA_VERSION
    day: date = Field(description="the UTC day the figures are of")
    as_of: UtcDatetime = Field(description="when the snapshot was taken; the latest one counts")


class MerchantDailyMetrics(AnalyticsMessage):
    """One merchant's day: what was settled and what happened to their invoices."""

    message_type: Literal["MerchantDailyMetrics"] = "MerchantDailyMetrics"
    merchant_id: Identifier
    gross_volume: Usdt
    fees: Usdt
    net_volume: Usdt
    settlements: int = Field(ge=0)
    invoices_created: int = Field(ge=0)
    invoices_paid: int = Field(ge=0)
    invoices_expired: int = Field(ge=0)


class PlatformDailyMetrics(AnalyticsMessage):
    """The platform's day: payments on chain and the platform's revenue."""

    message_type: Literal["PlatformDailyMetrics"] = "PlatformDailyMetrics"
    payments_detected: int = Field(ge=0)
    payments_confirmed: int = Field(ge=0)
    payments_failed: int = Field(ge=0)
    payments_orphaned: int = Field(ge=0)
    failure_rate: float | None = Field(
        ge=0, description="failed ÷ detected; null when nothing was detected"
    )
    mean_confirmation_seconds: float | None = Field(
        ge=0, description="detection → required confirmations, mean of the day's confirmations"
    )
    p95_confirmation_seconds: float | None = Field(ge=0)
    settlements: int = Field(ge=0)
    gross_volume: Usdt
    fees: Usdt
    net_volume: Usdt


ANALYTICS_TYPES: Final[dict[str, type[AnalyticsMessage]]] = {
    "MerchantDailyMetrics": MerchantDailyMetrics,
    "PlatformDailyMetrics": PlatformDailyMetrics,
}
