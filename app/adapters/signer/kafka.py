"""The signer process's only connection: Kafka (docs/money-out.md, "The signer").

It consumes ``checkout.signing-requests`` in its own consumer group and answers each request on
``checkout.signatures`` under the same key. A request's offset is committed only after its answer
is in the signed log (fsynced) and acknowledged by the brokers (acks=all), so a signer killed at
any point answers again after its restart — with the same answer, from the log. A message that is
not a well-formed request is answered ``malformed`` when it has a request id, and skipped (logged)
otherwise; it never stops the signer.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from app.domain.signing import Purpose, Wanted
from app.services.signer import Signer, SigningAnswer, SigningRequest

logger = logging.getLogger(__name__)

MAX_REQUEST_BYTES: Final = 16 * 1024
_KINDS: Final = ("trx", "trc20")


class MalformedRequest(ValueError):
    pass


def parse_request(value: bytes) -> SigningRequest:
    if len(value) > MAX_REQUEST_BYTES:
        raise MalformedRequest(f"a request is at most {MAX_REQUEST_BYTES} bytes")
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise MalformedRequest("not JSON") from None
    if not isinstance(body, dict):
        raise MalformedRequest("not a JSON object")
    try:
        purpose = Purpose(body["purpose"])
        kind = body["kind"]
        amount = body["amount"]
        token = body.get("token_contract")
        fields = (body["request_id"], body["account"], body["to"], body["raw_data_hex"])
    except (KeyError, ValueError) as exc:
        raise MalformedRequest(f"missing or unknown field: {exc}") from None
    if kind not in _KINDS or not isinstance(amount, int) or isinstance(amount, bool):
        raise MalformedRequest("kind must be trx or trc20 and amount a whole number")
    if not all(isinstance(item, str) and 0 < len(item) <= 8192 for item in fields):
        raise MalformedRequest("request_id, account, to and raw_data_hex must be strings")
    if token is not None and not isinstance(token, str):
        raise MalformedRequest("token_contract must be a string")
    destination = body.get("destination_account")
    if destination is not None and not (
        isinstance(destination, str) and 0 < len(destination) <= 40
    ):
        raise MalformedRequest("destination_account must be a short string")
    request_id, account, to, raw = fields
    return SigningRequest(
        request_id, account, Wanted(purpose, kind, to, amount, token), raw, destination
    )


def request_body(request: SigningRequest) -> dict[str, Any]:
    """The wire form of a request (what the workers produce)."""
    wanted = request.wanted
    return {
        "request_id": request.request_id,
        "account": request.account,
        "purpose": wanted.purpose.value,
        "kind": wanted.kind,
        "to": wanted.to,
        "amount": wanted.amount,
        "token_contract": wanted.token_contract,
        "raw_data_hex": request.raw_data_hex,
        "destination_account": request.destination_account,
    }


def answer_body(answer: SigningAnswer) -> bytes:
    return orjson.dumps(
        {
            "request_id": answer.request_id,
            "txid": answer.txid,
            "signature": answer.signature,
            "refused": answer.refused,
            "message": answer.message,
        }
    )


class SignerLoop:
    def __init__(
        self,
        signer: Signer,
        *,
        bootstrap_servers: str,
        requests_topic: str,
        answers_topic: str,
        group_id: str,
    ) -> None:
        self._signer = signer
        self._answers_topic = answers_topic
        self._consumer = AIOKafkaConsumer(
            requests_topic,
            bootstrap_servers=bootstrap_servers,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers, acks="all", enable_idempotence=True
        )
        self.answered = 0

    async def run(self, stop: asyncio.Event) -> None:
        await self._producer.start()
        await self._consumer.start()
        try:
            while not stop.is_set():
                batches = await self._consumer.getmany(timeout_ms=500, max_records=100)
                for partition, messages in batches.items():
                    for message in messages:
                        await self._answer(message.key, message.value or b"")
                        await self._consumer.commit(
                            {
                                TopicPartition(partition.topic, partition.partition): message.offset
                                + 1
                            }
                        )
        finally:
            await self._consumer.stop()
            await self._producer.stop()

    async def _answer(self, key: bytes | None, value: bytes) -> None:
        try:
            request = parse_request(value)
        except MalformedRequest as exc:
            request_id = _request_id_of(value)
            logger.warning("signer: malformed request %r: %s", request_id, exc)
            if request_id is None:
                return
            answer = SigningAnswer(request_id, refused="malformed", message=str(exc))
        else:
            # Key files and signing are CPU only; the loop stays responsive enough at this rate.
            answer = self._signer.handle(request)
            logger.info(
                "signer: %s %s %s",
                request.request_id,
                request.wanted.purpose,
                "signed" if answer.signed else f"refused ({answer.refused})",
            )
        await self._producer.send_and_wait(
            self._answers_topic, answer_body(answer), key=answer.request_id.encode()
        )
        self.answered += 1


def _request_id_of(value: bytes) -> str | None:
    try:
        body = orjson.loads(value[:MAX_REQUEST_BYTES])
    except orjson.JSONDecodeError:
        return None
    request_id = body.get("request_id") if isinstance(body, dict) else None
    return request_id if isinstance(request_id, str) and 0 < len(request_id) <= 200 else None
