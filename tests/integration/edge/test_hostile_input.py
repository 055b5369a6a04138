"""Hostile input against a running platform: refused at once, by name, and nothing written.

The figures (how long a refusal took) are printed, never asserted: these machines are shared.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import aiohttp
import httpx
import psycopg2
import pytest

from app.runtime.web_server import HEADER_READ_TIMEOUT
from app.settings import Settings
from tests.support.platform import Platform, running_platform

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("infrastructure")]


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with running_platform(tmp_path_factory.mktemp("edge")) as running:
        yield running


def counts(merchant_id: str) -> tuple[int, int]:
    """Deposit addresses ever allocated, and the merchant's invoices in the read model."""
    with psycopg2.connect(Settings.from_env().database_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM deposit_addresses")
        addresses = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM invoice_summaries WHERE merchant_id = %s", (merchant_id,))
        invoices = cur.fetchone()[0]
    return int(addresses), int(invoices)


async def refuse_while_polling_health(
    platform: Platform, body: str
) -> tuple[int, dict, float, int]:
    """Send ``body``; meanwhile /healthz is polled. The refusal, its time, and health answers."""
    async with aiohttp.ClientSession() as session:
        healthy = 0
        done = asyncio.Event()

        async def poll_health() -> None:
            nonlocal healthy
            while not done.is_set():
                async with session.get(f"{platform.url}/healthz") as answer:
                    healthy += answer.status == 200
                await asyncio.sleep(0.01)

        poller = asyncio.create_task(poll_health())
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        async with session.post(
            f"{platform.url}/api/v1/invoices",
            data=body,
            headers={**platform.headers(), "Content-Type": "application/json"},
        ) as answer:
            status, error = answer.status, (await answer.json())["error"]
        elapsed = time.perf_counter() - started
        await asyncio.sleep(0.05)
        done.set()
        await poller
    return status, error, elapsed, healthy


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ('{"amount": "1", "expires_in": 1e300000}', "expires_in"),
        ('{"amount": "1", "expires_in": 1e1000000}', "expires_in"),
        ('{"amount": 1e999999999999999999}', "amount"),
    ],
)
def test_a_huge_exponent_is_a_400_at_once_and_the_worker_keeps_answering(
    platform: Platform, body: str, param: str
) -> None:
    status, error, elapsed, healthy = asyncio.run(refuse_while_polling_health(platform, body))
    took = f"{elapsed * 1000:.1f} ms"
    print(f"\n{body[:50]}: {status} {error['code']} in {took}; /healthz answered {healthy}x")
    assert status == 400
    assert error["param"] == param
    assert healthy > 0


def test_a_nul_in_order_id_is_a_400_and_nothing_is_written_anywhere(platform: Platform) -> None:
    before = counts(platform.merchant_id)
    status, error, _, _ = asyncio.run(
        refuse_while_polling_health(platform, '{"amount": "1", "order_id": "a\\u0000b"}')
    )
    assert (status, error["code"], error["param"]) == (400, "parameter_invalid", "order_id")
    created = platform.create_invoice("1")  # the next invoice goes through, and is listed
    platform.wait_invoice(created["id"], lambda invoice: invoice["status"] == "pending", "pending")
    deadline = time.monotonic() + 30
    while counts(platform.merchant_id)[1] == before[1] and time.monotonic() < deadline:
        time.sleep(0.2)
    # One address and one listed invoice more: the refused request took neither.
    assert counts(platform.merchant_id) == (before[0] + 1, before[1] + 1)


def test_ids_and_parameters_with_control_characters_are_400s_not_500s(platform: Platform) -> None:
    async def probe() -> list[tuple[int, str | None]]:
        async with aiohttp.ClientSession() as session:
            answers = []
            for path in (
                "/api/v1/settlements/set%00x",
                "/api/v1/invoices/inv%00x",
                "/api/v1/invoices?limit=%C2%B2",
                "/api/v1/public/invoice/inv_1/events?last_event_id=%C2%B2",
            ):
                async with session.get(platform.url + path, headers=platform.headers()) as answer:
                    body = await answer.json() if answer.status >= 400 else {}
                    answers.append((answer.status, body.get("error", {}).get("param")))
            return answers

    answers = asyncio.run(probe())
    assert answers[:3] == [(400, "settlement_id"), (400, "invoice_id"), (400, "limit")]
    assert answers[3][0] == 404  # an unknown invoice; the bad Last-Event-ID is no error


def test_deep_json_is_a_400(platform: Platform) -> None:
    body = '{"amount": "1", "metadata": ' + '{"a": ' * 1000 + '"x"' + "}" * 1000 + "}"
    status, error, _, healthy = asyncio.run(refuse_while_polling_health(platform, body))
    assert (status, error["code"]) == (400, "invalid_json")
    assert healthy > 0


def test_a_client_that_never_finishes_its_headers_is_dropped(platform: Platform) -> None:
    """Slowloris: headers trickled in are cut off after the header read timeout (15 s), while
    the worker keeps answering everyone else."""
    address = urlsplit(platform.url)
    started = time.monotonic()
    with socket.create_connection((address.hostname, address.port), timeout=5) as slow:
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        closed_after = None
        while time.monotonic() - started < HEADER_READ_TIMEOUT + 15:
            try:
                slow.sendall(b"X-Slow: 1\r\n")  # one more header line, never the blank one
                slow.settimeout(1.0)
                if slow.recv(1024) == b"":
                    closed_after = time.monotonic() - started
                    break
            except TimeoutError:
                continue
            except OSError:
                closed_after = time.monotonic() - started
                break
    print(f"\nconnection with unfinished headers closed after {closed_after:.1f} s")
    assert closed_after is not None, "the worker kept a connection that never sent its headers"
    assert httpx.get(f"{platform.url}/healthz", timeout=5).status_code == 200
