"""The signer's memory across restarts: one JSON line per answer, appended and fsynced before the
answer is published (docs/money-out.md). At start the file is read back: the same request id gets
the same answer, and today's signed totals per purpose count what was signed before a restart.
The file holds request ids, transaction ids, signatures and amounts — no key material."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

import orjson

from app.domain.signing import Purpose
from app.services.signer import SigningAnswer


class JsonlSignedLog:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._answers: dict[str, SigningAnswer] = {}
        self._totals: defaultdict[tuple[str, str], int] = defaultdict(int)
        if path.exists():
            for line in path.read_bytes().splitlines():
                if line.strip():
                    self._load(orjson.loads(line))

    def _load(self, entry: Mapping[str, object]) -> None:
        answer = SigningAnswer(
            request_id=str(entry["request_id"]),
            txid=entry.get("txid"),  # type: ignore[arg-type]
            signature=entry.get("signature"),  # type: ignore[arg-type]
            refused=entry.get("refused"),  # type: ignore[arg-type]
            message=entry.get("message"),  # type: ignore[arg-type]
        )
        self._answers[answer.request_id] = answer
        amount = entry.get("amount", 0)
        assert isinstance(amount, int)
        self._totals[(str(entry["purpose"]), str(entry["day"]))] += amount

    def answer(self, request_id: str) -> SigningAnswer | None:
        return self._answers.get(request_id)

    def signed_today(self, purpose: Purpose, day: str) -> int:
        return self._totals[(purpose.value, day)]

    def record(self, answer: SigningAnswer, purpose: Purpose, amount: int, day: str) -> None:
        entry = {
            "request_id": answer.request_id,
            "txid": answer.txid,
            "signature": answer.signature,
            "refused": answer.refused,
            "message": answer.message,
            "purpose": purpose.value,
            "amount": amount,
            "day": day,
        }
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with self._path.open("ab") as log:
            log.write(orjson.dumps(entry) + b"\n")
            log.flush()
            os.fsync(log.fileno())
        self._load(entry)
