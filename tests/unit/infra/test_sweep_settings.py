"""The sweep settings: read from the environment, refused with the variable's name."""

from __future__ import annotations

import pytest

from app.settings import Settings, SettingsError

pytestmark = pytest.mark.unit


def test_sweep_settings_are_read_and_defaulted() -> None:
    defaults = Settings.from_env({})
    assert (defaults.sweep_min_usdt, defaults.sweep_batch_size, defaults.sweep_interval) == (
        20_000_000,
        20,
        5.0,
    )
    chosen = Settings.from_env(
        {"SWEEP_MIN_USDT": "5.5", "SWEEP_BATCH_SIZE": "50", "SWEEP_INTERVAL": "0.3"}
    )
    assert (chosen.sweep_min_usdt, chosen.sweep_batch_size, chosen.sweep_interval) == (
        5_500_000,
        50,
        0.3,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [("SWEEP_MIN_USDT", "-1"), ("SWEEP_BATCH_SIZE", "0"), ("SWEEP_INTERVAL", "lots")],
)
def test_a_bad_sweep_setting_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=rf"^{variable}: "):
        Settings.from_env({variable: value})
