"""A thin client of a java-tron full node's HTTP API: the calls the chain watcher needs, and those
that send money (build, broadcast, receipts, balances, prices; their answers in ``sending``).

It speaks only java-tron full-node endpoints (``wallet/*``), so a self-hosted node, TronGrid and
the project's simulator are interchangeable. Every call goes through ``_call``: the one place with
retries (the platform's one ``RetryPolicy``, app/runtime/retry.py) and the node metrics. A call
that fails every attempt raises ``NodeUnavailable``; the caller keeps its cursor and tries again
later, so a block is never skipped because the node was down. A node that refuses a transaction
(``TransactionRefused``, or a broadcast's code) is answered at once: asking again changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar
from urllib.parse import urljoin

import httpx
import orjson
from tronpy import AsyncTron
from tronpy.exceptions import ApiError, BugInJavaTron, NotFound, TvmError
from tronpy.providers.async_http import AsyncHTTPProvider

from app.adapters.tron import metrics, sending
from app.adapters.tron.addresses import to_base58
from app.adapters.tron.errors import NodeUnavailable, TokenContractMismatch
from app.adapters.tron.sending import (
    BroadcastResult,
    ChainPrices,
    TransactionReceipt,
    TransferTerms,
    UnsignedTransaction,
)
from app.adapters.tron.settings import ChainSettings
from app.runtime.retry import RetryPolicy

log = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]

DECIMALS_SELECTOR = "decimals()"


# How long to insist on one call before ``NodeUnavailable``: 6 attempts with at most 7.75 s of
# backoff between them (plus each attempt's request timeout).
NODE_RETRY: Final = RetryPolicy(attempts=6, initial_delay=0.25, max_delay=8.0)


@dataclass(frozen=True)
class NodeHead:
    head_number: int
    head_block_id: str
    solidified_number: int


@dataclass(frozen=True)
class BlockHeader:
    number: int
    block_id: str
    parent_hash: str
    timestamp_ms: int
    transaction_ids: tuple[str, ...]


class _BadResponse(sending.MalformedAnswer):
    """The node answered, but not with what the endpoint promises (retried like an outage)."""


class _Provider(AsyncHTTPProvider):
    """tronpy's provider, decoding with orjson: a block of 100 transfers is ~100 KB of JSON and
    stdlib json was a fifth of the watcher's catch-up time. Same requests, same error behaviour
    (HTTP errors raise ``httpx.HTTPStatusError``)."""

    async def make_request(self, method: str, params: Any = None) -> Any:
        response = await self.client.post(
            urljoin(self.endpoint_uri, method),
            content=orjson.dumps(params or {}),
            headers={"Content-Type": "application/json"},
        )
        response.raise_for_status()
        return orjson.loads(response.content)


class TronNode:
    """java-tron HTTP client over tronpy's ``AsyncTron`` with one ``httpx.AsyncClient``."""

    def __init__(
        self,
        node_url: str,
        *,
        api_key: str | None = None,
        request_timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"TRON-PRO-API-KEY": api_key} if api_key else {}
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(request_timeout), headers=headers, transport=transport
        )
        # Our key goes on every request through the client headers, whatever the URL; tronpy's own
        # key handling (only for TronGrid URLs, rotating bundled shared keys) is not used.
        self._provider = _Provider(node_url, client=self._client)
        self._tron = AsyncTron(provider=self._provider)
        self._retry = retry or NODE_RETRY
        self._sleep = sleep
        self.node_url = node_url

    @classmethod
    def from_settings(cls, settings: ChainSettings, **kwargs: Any) -> TronNode:
        return cls(
            settings.node_url,
            api_key=settings.api_key,
            request_timeout=settings.request_timeout,
            **kwargs,
        )

    async def aclose(self) -> None:
        await self._client.aclose()
        # The sockets' transports finish closing on the loop's next turn: give it that turn, so
        # a loop stopped right after (a worker's shutdown, a test's teardown) leaves none open.
        await asyncio.sleep(0)

    async def __aenter__(self) -> TronNode:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"TronNode({self.node_url!r})"

    async def node_head(self) -> NodeHead:
        """Head and solidified numbers from ``wallet/getnodeinfo`` (one call for both)."""

        async def call() -> NodeHead:
            info = await self._provider.make_request("wallet/getnodeinfo", {})
            head_number, head_id = _parse_num_id(_mapping(info).get("block"))
            solid_number, _ = _parse_num_id(_mapping(info).get("solidityBlock"))
            return NodeHead(head_number, head_id, min(solid_number, head_number))

        return await self._call("getnodeinfo", call)

    async def block_header(self, number: int) -> BlockHeader:
        """The header of block ``number`` and its transaction ids (``wallet/getblockbynum``)."""

        async def call() -> BlockHeader:
            return _parse_block(await self._tron.get_block(number), number)

        return await self._call("getblockbynum", call)

    async def transaction_infos(self, number: int) -> list[Mapping[str, Any]]:
        """Every receipt of block ``number`` (``wallet/gettransactioninfobyblocknum``)."""

        async def call() -> list[Mapping[str, Any]]:
            answer = await self._provider.make_request(
                "wallet/gettransactioninfobyblocknum", {"num": number, "visible": True}
            )
            return _parse_receipts(answer)

        return await self._call("gettransactioninfobyblocknum", call)

    async def token_decimals(self, contract: str) -> int:
        """``decimals()`` of a TRC-20 contract through a constant call (no transaction, no fee)."""
        address = to_base58(contract)

        async def call() -> int:
            try:
                word = await self._tron.trigger_const_smart_contract_function(
                    address, address, DECIMALS_SELECTOR, ""
                )
            except (TvmError, ApiError, KeyError, IndexError) as exc:
                raise TokenContractMismatch(
                    f"decimals() failed on {address}: {exc or type(exc).__name__}"
                ) from None
            try:
                return int(word, 16)
            except (TypeError, ValueError):
                raise TokenContractMismatch(f"decimals() of {address} returned {word!r}") from None

        return await self._call("triggerconstantcontract", call)

    # ----- sending money (docs/money-out.md): build, broadcast, receipts, balances, prices

    async def build_token_transfer(
        self, owner: str, to: str, amount: int, token_contract: str, fee_limit: int
    ) -> UnsignedTransaction:
        """A TRC-20 ``transfer(to, amount)`` from ``owner``, built by the node
        (``wallet/triggersmartcontract``) on its head block; ``fee_limit`` in sun bounds the
        energy burnt. ``TransactionRefused`` when the node will not build it."""
        terms = TransferTerms(
            kind="trc20",
            owner=to_base58(owner),
            to=to_base58(to),
            amount=_positive(amount, sending.UINT256_MAX, "amount"),
            token_contract=to_base58(token_contract),
            fee_limit=_positive(fee_limit, 2**63 - 1, "fee_limit", zero=True),
        )
        body = {
            "owner_address": terms.owner,
            "contract_address": terms.token_contract,
            "function_selector": sending.TRANSFER_SELECTOR,
            "parameter": sending.transfer_parameter(terms.to, terms.amount),
            "fee_limit": terms.fee_limit,
            "call_value": 0,
            "visible": True,
        }

        async def call() -> UnsignedTransaction:
            answer = await self._provider.make_request("wallet/triggersmartcontract", body)
            return sending.parse_triggered(answer, terms)

        return await self._call("triggersmartcontract", call)

    async def build_trx_transfer(self, owner: str, to: str, amount_sun: int) -> UnsignedTransaction:
        """A TRX transfer built by the node (``wallet/createtransaction``), which validates it
        first: ``TransactionRefused`` (e.g. "balance is not sufficient") when it would fail."""
        terms = TransferTerms(
            kind="trx",
            owner=to_base58(owner),
            to=to_base58(to),
            amount=_positive(amount_sun, 2**63 - 1, "amount_sun"),
        )
        body = {
            "owner_address": terms.owner,
            "to_address": terms.to,
            "amount": terms.amount,
            "visible": True,
        }

        async def call() -> UnsignedTransaction:
            answer = await self._provider.make_request("wallet/createtransaction", body)
            return sending.parse_created(answer, terms)

        return await self._call("createtransaction", call)

    async def broadcast(self, tx: UnsignedTransaction, signature_hex: str) -> BroadcastResult:
        """Hand the signed transaction to the node (``wallet/broadcasttransaction``).

        Safe to repeat with the same bytes (a lost answer is retried): a node that already has
        them answers ``DUP_TRANSACTION_ERROR``, which counts as accepted. Any other refusal is
        returned with its code, not retried."""
        signature = signature_hex.lower()
        if len(signature) != 130 or not set(signature) <= set("0123456789abcdef"):
            raise ValueError("a Tron signature is 65 bytes r||s||v, as 130 hex characters")
        body = tx.broadcast_body(signature)

        async def call() -> BroadcastResult:
            answer = await self._provider.make_request("wallet/broadcasttransaction", body)
            return sending.parse_broadcast(answer, tx.txid)

        return await self._call("broadcasttransaction", call)

    async def transaction_receipt(self, txid: str) -> TransactionReceipt | None:
        """The receipt of a mined transaction (``wallet/gettransactioninfobyid``), None until it
        is in a block — or when a reorg took it out of the chain again."""
        wanted = _txid(txid)

        async def call() -> TransactionReceipt | None:
            answer = await self._provider.make_request(
                "wallet/gettransactioninfobyid", {"value": wanted, "visible": True}
            )
            return sending.parse_receipt(answer, wanted)

        return await self._call("gettransactioninfobyid", call)

    async def trx_balance(self, address: str) -> int:
        """TRX of ``address`` in sun at the head block (``wallet/getaccount``); 0 if never
        activated."""
        account = to_base58(address)

        async def call() -> int:
            answer = await self._provider.make_request(
                "wallet/getaccount", {"address": account, "visible": True}
            )
            return sending.parse_account_balance(answer, account)

        return await self._call("getaccount", call)

    async def token_balance(self, token_contract: str, owner: str) -> int:
        """``balanceOf(owner)`` of a TRC-20 contract in its base units, through a constant call."""
        token, holder = to_base58(token_contract), to_base58(owner)
        body = {
            "owner_address": token,
            "contract_address": token,
            "function_selector": sending.BALANCE_OF_SELECTOR,
            "parameter": sending.address_word(holder),
            "visible": True,
        }

        async def call() -> int:
            answer = await self._provider.make_request("wallet/triggerconstantcontract", body)
            return sending.parse_uint256(sending.parse_constant_call(answer, token).words)

        return await self._call("triggerconstantcontract", call)

    async def transfer_energy(self, owner: str, to: str, amount: int, token_contract: str) -> int:
        """Energy the same ``transfer(to, amount)`` from ``owner`` uses now (a constant call's
        ``energy_used``): about twice as much to an address holding none of the token.
        ``TransactionRefused`` when the transfer would revert (e.g. not enough tokens)."""
        token, sender = to_base58(token_contract), to_base58(owner)
        body = {
            "owner_address": sender,
            "contract_address": token,
            "function_selector": sending.TRANSFER_SELECTOR,
            "parameter": sending.transfer_parameter(
                to_base58(to), _positive(amount, sending.UINT256_MAX, "amount")
            ),
            "visible": True,
        }

        async def call() -> int:
            answer = await self._provider.make_request("wallet/triggerconstantcontract", body)
            return sending.parse_constant_call(answer, token).energy_used

        return await self._call("triggerconstantcontract", call)

    async def chain_prices(self) -> ChainPrices:
        """What energy, bandwidth and account creation cost now (``wallet/getchainparameters``)."""

        async def call() -> ChainPrices:
            answer = await self._provider.make_request(
                "wallet/getchainparameters", {"visible": True}
            )
            return sending.parse_chain_prices(answer)

        return await self._call("getchainparameters", call)

    async def _call(self, endpoint: str, call: Callable[[], Awaitable[T]]) -> T:
        async def attempt() -> T:
            metrics.NODE_REQUESTS.labels(endpoint).inc()
            return await call()

        def classify(exc: BaseException) -> str | None:
            reason = _reason(exc)
            if reason is not None:
                metrics.NODE_ERRORS.labels(endpoint, reason).inc()
            return reason

        try:
            return await self._retry.run(
                attempt,
                what=f"Tron node {endpoint}",
                classify=classify,
                on_retry=lambda _exc, _delay: metrics.NODE_RETRIES.labels(endpoint).inc(),
                sleep=self._sleep,
            )
        except Exception as exc:
            reason = _reason(exc)
            if reason is None:  # a bug of ours, or TokenContractMismatch: never retried
                raise
            metrics.NODE_GIVE_UPS.labels(endpoint).inc()
            raise NodeUnavailable(endpoint, f"{reason}: {_describe(exc)}") from None


def _reason(exc: BaseException) -> str | None:
    """The metric label of a retryable node failure; None for a bug of ours (not retried)."""
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        if status in (403, 429):
            return "rate_limited"
        return "http_5xx" if status >= 500 else "http_4xx"
    if isinstance(exc, httpx.TransportError):
        return "connect"
    if isinstance(exc, sending.NodeBusy):  # SERVER_BUSY and the like: the node sheds load
        return "rate_limited"
    if isinstance(exc, sending.MalformedAnswer | NotFound | BugInJavaTron | ApiError | ValueError):
        # ValueError covers a body that is not JSON (a proxy's error page).
        return "bad_response"
    return None


def _positive(value: int, highest: int, name: str, *, zero: bool = False) -> int:
    """An amount given by our caller: an int in range, checked before any call to the node."""
    lowest = 0 if zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or not lowest <= value <= highest:
        raise ValueError(f"{name} must be an integer from {lowest} to {highest}, got {value!r}")
    return value


def _txid(value: str) -> str:
    text = value.lower()
    if len(text) != 64 or not set(text) <= set("0123456789abcdef"):
        raise ValueError(f"a transaction id is 64 hex characters, got {value!r}")
    return text


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def _mapping(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _BadResponse(f"expected a JSON object, got {type(value).__name__}")
    if "Error" in value:
        raise _BadResponse(f"node error: {str(value['Error'])[:200]}")
    return value


def _parse_num_id(value: Any) -> tuple[int, str]:
    """``"Num:123,ID:0000…"`` (getnodeinfo's block fields) → (123, id)."""
    if not isinstance(value, str) or not value.startswith("Num:") or ",ID:" not in value:
        raise _BadResponse(f"unexpected block field {value!r}")
    number, block_id = value.removeprefix("Num:").split(",ID:", 1)
    return int(number), _hex64(block_id)


def _parse_block(block: Any, number: int) -> BlockHeader:
    body = _mapping(block)
    try:
        raw = body["block_header"]["raw_data"]
        header = BlockHeader(
            number=int(raw.get("number", 0)),
            block_id=_hex64(body["blockID"]),
            parent_hash=_hex64(raw["parentHash"]),
            timestamp_ms=int(raw["timestamp"]),
            transaction_ids=tuple(_hex64(tx["txID"]) for tx in body.get("transactions", ())),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise _BadResponse(f"malformed block {number}: {exc!r}") from None
    if header.number != number:
        raise _BadResponse(f"asked for block {number}, got {header.number}")
    return header


def _parse_receipts(answer: Any) -> list[Mapping[str, Any]]:
    # java-tron answers [] for a block without transactions; some versions answer {}.
    if isinstance(answer, Mapping):
        _mapping(answer)
        if answer:
            raise _BadResponse(f"expected a list of receipts, got keys {sorted(answer)[:5]}")
        return []
    if not isinstance(answer, list) or not all(isinstance(item, Mapping) for item in answer):
        raise _BadResponse("expected a list of receipts")
    return answer


def _hex64(value: Any) -> str:
    if not isinstance(value, str) or len(value) != 64:
        raise _BadResponse(f"expected 64 hex characters, got {value!r}")
    text = value.lower()
    try:
        bytes.fromhex(text)
    except ValueError:
        raise _BadResponse(f"expected 64 hex characters, got {value!r}") from None
    return text
