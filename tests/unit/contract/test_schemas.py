from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.contract.schemas import DEFAULT_DIRECTORY, drift, main, rendered_schemas, write
from app.domain.events import EVENT_TYPES

pytestmark = pytest.mark.unit


def test_the_checked_in_schemas_equal_the_generated_ones() -> None:
    assert drift(DEFAULT_DIRECTORY) == []
    for name, content in rendered_schemas().items():
        assert (DEFAULT_DIRECTORY / name).read_text(encoding="utf-8") == content


def test_there_is_one_schema_per_event_type() -> None:
    assert sorted(path.stem for path in DEFAULT_DIRECTORY.glob("*.json")) == sorted(EVENT_TYPES)


def test_check_reports_missing_stale_and_unknown_files(tmp_path: Path) -> None:
    assert drift(tmp_path / "absent") == [f"missing: {name}" for name in sorted(rendered_schemas())]
    write(tmp_path)
    assert drift(tmp_path) == []
    (tmp_path / "InvoicePaid.json").write_text("{}\n", encoding="utf-8")
    (tmp_path / "InvoiceTeleported.json").write_text("{}\n", encoding="utf-8")
    (tmp_path / "PaymentFailed.json").unlink()
    assert drift(tmp_path) == [
        "missing: PaymentFailed.json",
        "unknown event type: InvoiceTeleported.json",
        "out of date: InvoicePaid.json",
    ]
    write(tmp_path)
    assert drift(tmp_path) == []
    assert not (tmp_path / "InvoiceTeleported.json").exists()


def test_main_writes_and_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check", "--dir", str(tmp_path)]) == 1
    assert "run: python -m app.contract.schemas" in capsys.readouterr().err
    assert main(["--dir", str(tmp_path)]) == 0
    assert main(["--check", "--dir", str(tmp_path)]) == 0
    assert "up to date" in capsys.readouterr().out
    schema = json.loads((tmp_path / "InvoiceCreated.json").read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["properties"]["event_type"]["const"] == "InvoiceCreated"


def test_the_module_runs_as_a_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app.contract.schemas", "--check"],
        capture_output=True,
        text=True,
        check=False,
        cwd=DEFAULT_DIRECTORY.parents[1],
    )
    assert result.returncode == 0, result.stderr


def test_the_analytics_schemas_are_checked_in_and_validate_real_messages(tmp_path: Path) -> None:
    import jsonschema

    from app.contract.schemas import ANALYTICS_DIRECTORY
    from app.domain.analytics import MerchantDailyMetrics

    assert drift(ANALYTICS_DIRECTORY, "analytics") == []
    assert drift(tmp_path, "analytics") == [
        "missing: MerchantDailyMetrics.json",
        "missing: PlatformDailyMetrics.json",
    ]
    schema = json.loads((ANALYTICS_DIRECTORY / "MerchantDailyMetrics.json").read_text())
    message = MerchantDailyMetrics(
        day="2026-12-01", as_of="2026-12-01T10:00:00Z", merchant_id="mer_1",
        gross_volume=9_990_000, fees=99_900, net_volume=9_890_100, settlements=1,
        invoices_created=2, invoices_paid=1, invoices_expired=0,
    )  # fmt: skip
    wire = json.loads(message.model_dump_json())
    jsonschema.validate(wire, schema)
    assert wire["gross_volume"] == "9.99" and wire["message_type"] == "MerchantDailyMetrics"
