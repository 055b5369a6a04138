"""The operator's commands on Faust's CLI (``checkout create-merchant …``), next to Faust's own.

Faust builds its command line from the app; these are added to it by ``register`` before
``app.main()`` runs (app/cli.py).
"""

from __future__ import annotations

import sys
from typing import Any

import aiopg
import faust
import orjson
from faust.cli import option

from app.adapters.postgres.merchants import PostgresMerchantStore
from app.domain.errors import CheckoutError
from app.domain.fees import format_fee_percentage
from app.settings import Settings


def register(app: faust.App, settings: Settings) -> None:
    @app.command(
        option("--name", type=str, required=True, help="The merchant's business name."),
        option(
            "--fee-percentage",
            type=str,
            default="1.0",
            show_default=True,
            help="Platform fee in percent of the gross, 0 to 100, at most 2 decimals.",
        ),
        option(
            "--confirmations",
            type=int,
            default=None,
            help="Replace the amount-based confirmation policy for this merchant (1 to 100).",
        ),
    )
    async def create_merchant(
        self: Any, name: str, fee_percentage: str, confirmations: int | None
    ) -> None:
        """Create a merchant with an API key; prints JSON with merchant_id and api_key.

        The API key is shown this once: store it in the merchant's secret manager.
        """
        pool = await aiopg.create_pool(settings.database_url, minsize=1, maxsize=1)
        try:
            issued = await PostgresMerchantStore(pool).create_merchant(
                name,
                fee_percentage=fee_percentage,
                confirmation_override=confirmations,
            )
        except (CheckoutError, ValueError) as exc:
            print(f"checkout create-merchant: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        finally:
            pool.close()
            await pool.wait_closed()
        merchant = issued.merchant
        body = {
            "merchant_id": merchant.merchant_id,
            "name": merchant.name,
            "fee_percentage": format_fee_percentage(merchant.fee_percentage),
            "confirmation_override": merchant.confirmation_override,
            "api_key": issued.api_key,
        }
        sys.stdout.write(orjson.dumps(body).decode() + "\n")
