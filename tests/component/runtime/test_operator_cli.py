"""The operator's command groups as click sees them (app/runtime/*_commands.py): every command
has ``--help`` and ``--json``, and a request that cannot be right is refused — exit status 2, one
line naming the problem — before anything is read or sent. What the commands do on the real
stack is tests/integration/operations/test_operator_cli.py."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from app.runtime.chain_commands import chain_group
from app.runtime.consumer_commands import consumers_group
from app.runtime.dead_letter_commands import dlq_group
from app.runtime.event_commands import events_group
from app.runtime.ledger_commands import _ledger
from app.runtime.merchant_commands import merchants_group
from app.runtime.webhook_commands import webhooks_group
from app.settings import Settings

pytestmark = pytest.mark.component

# Nothing listens here: a command that got as far as connecting would fail differently.
SETTINGS = Settings.from_env(
    {
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
        "REDIS_URL": "redis://127.0.0.1:9/0",
    }
)


async def _never(settings: Settings, only: str | None, batch: int) -> None:
    raise AssertionError("no rebuild in these tests")


GROUPS: dict[str, click.Group] = {
    "merchants": merchants_group(SETTINGS),
    "dlq": dlq_group(SETTINGS),
    "events": events_group(SETTINGS, _never),
    "chain": chain_group(SETTINGS),
    "webhooks": webhooks_group(SETTINGS),
    "consumers": consumers_group(SETTINGS),
    "ledger": _ledger(SETTINGS),
}
COMMANDS = [(group, name) for group, cli in GROUPS.items() for name in cli.commands]


def invoke(group: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(GROUPS[group], list(args))
    return result.exit_code, result.output


def test_the_issue_s_commands_are_all_there() -> None:
    assert set(COMMANDS) >= {
        ("merchants", "list"), ("merchants", "show"), ("merchants", "update"),
        ("merchants", "suspend"), ("dlq", "list"), ("dlq", "show"), ("dlq", "replay"),
        ("dlq", "purge"), ("events", "replay"), ("chain", "status"), ("chain", "rescan"),
        ("ledger", "reconcile"), ("webhooks", "retry"), ("consumers", "lag"),
    }  # fmt: skip


@pytest.mark.parametrize(("group", "command"), COMMANDS, ids=lambda part: str(part))
def test_every_command_explains_itself_and_answers_in_json(group: str, command: str) -> None:
    status, output = invoke(group, command, "--help")
    assert status == 0, output
    if (group, command) != ("ledger", "record-funding"):  # always prints JSON
        assert "--json" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("dlq", "replay"), "choose the letters one way"),
        (("dlq", "replay", "--id", "x:1:2", "--all"), "choose the letters one way"),
        (("dlq", "replay", "--from-offset", "3"), "need --topic"),
        (
            ("dlq", "replay", "--topic", "checkout.deposits", "--partition", "1", "--all"),
            "--partition goes with",
        ),
        (
            (
                "dlq",
                "replay",
                "--topic",
                "checkout.deposits",
                "--from-offset",
                "5",
                "--to-offset",
                "2",
            ),
            "--from-offset is above --to-offset",
        ),
        (("dlq", "replay", "--id", "nonsense"), "is not a letter id"),
        (("dlq", "replay", "--topic", "nowhere", "--all"), "no dead-letter topic for 'nowhere'"),
        (("dlq", "purge", "--topic", "checkout.deposits"), "exactly one of --replayed and --all"),
        (("dlq", "purge", "--topic", "checkout.deposits", "--all"), "add --yes"),
        (("events", "replay"), "or say --all"),
        (("events", "replay", "--read-models", "--since", "2026-01-01"), "give no filter"),
        (("webhooks", "retry"), "give --endpoint or --since"),
        (("consumers", "lag", "--group", "a", "--all"), "not both"),
        (("merchants", "update", "mer_1", "--confirmations", "lots"), "whole number"),
    ],
)
def test_a_wrong_request_is_refused_before_anything_is_touched(
    args: tuple[str, ...], message: str
) -> None:
    status, output = invoke(*args)
    assert status == 2, output
    assert message in output


@pytest.mark.parametrize(
    "args",
    [
        ("chain", "rescan", "--from", "-1"),
        ("chain", "rescan"),
        ("dlq", "list", "--limit", "0"),
        ("events", "replay", "--all", "--limit", "0"),
        ("events", "replay", "--since", "yesterday"),
        ("webhooks", "retry", "--since", "soon"),
        ("consumers", "lag", "--fail-over", "-5"),
    ],
)
def test_options_out_of_range_are_refused_by_click(args: tuple[str, ...]) -> None:
    status, output = invoke(*args)
    assert status == 2 and "Error: " in output
