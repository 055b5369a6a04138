"""Break the money agents' idempotency on purpose and check the component tests notice.

Each mutation below changes one line of the platform (in the working tree, put back right after),
runs ``tests/component/agents`` and prints which tests failed. A mutation no test catches is a
hole in the component tier. Run it after changing how an agent recognises a redelivered message:

    .venv/bin/python scripts/idempotency_mutations.py
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (what breaks, file, the line as it is, the line broken)
MUTATIONS = [
    (
        "invoice: a redelivered command is decided again (its history is not consulted)",
        "app/domain/aggregate.py",
        "        return [event for event in self.history if event.causation_id == command_id]",
        "        return []",
    ),
    (
        "payment: a transfer's command id is new on every delivery",
        "app/domain/commands.py",
        '            command_id=f"detect:{transfer.transfer_id}@{transfer.block_id}",',
        '            command_id=f"detect:{transfer.transfer_id}@{transfer.block_id}:"'
        ' + __import__("uuid").uuid4().hex,',
    ),
    (
        "payment: the deposit account forgets the payment it holds",
        "app/domain/deposit.py",
        "        current = self.payments.get(command.aggregate_id)",
        "        current = None",
    ),
    (
        "settlement: a completed settlement is booked again",
        "app/services/settlement.py",
        "        if settlement.status is SettlementStatus.PENDING:",
        "        if True:",
    ),
    (
        "webhook fan-out: the first delivery's id is random",
        "app/services/webhook_fanout.py",
        "                delivery_id=first_delivery_id(endpoint.endpoint_id, str(event.event_id)),",
        '                delivery_id=__import__("app.domain.webhooks").domain.webhooks'
        ".new_delivery_id(),",
    ),
    (
        "projection: the event is recorded under a new id",
        "app/services/projection.py",
        "        await self._store.apply(event, partition, offset)",
        '        await self._store.apply(event.model_copy(update={"event_id":'
        ' __import__("uuid").uuid4()}), partition, offset)',
    ),
]


def main() -> int:
    uncaught = 0
    for what, path, line, broken in MUTATIONS:
        file = ROOT / path
        original = file.read_text()
        if line not in original:
            print(f"{what}: the line to break is no longer in {path}; update this script")
            return 2
        file.write_text(original.replace(line, broken))
        try:
            result = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rf",
                 "tests/component/agents"],
                cwd=ROOT, capture_output=True, text=True, check=False,
            )  # fmt: skip
        finally:
            file.write_text(original)
        failing = sorted(set(re.findall(r"^FAILED \S+::(\S+)", result.stdout, re.MULTILINE)))
        uncaught += not failing
        print(f"{what}\n  caught by: {', '.join(failing) or 'NOTHING'}")
    return 1 if uncaught else 0


if __name__ == "__main__":
    sys.exit(main())
