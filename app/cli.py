"""The ``checkout`` command: Faust's CLI for this app, with the operator's own commands.

``checkout worker -l info`` runs a worker; ``checkout --help`` lists Faust's commands (``agents``,
``tables``, ``send``, ``reset``, …) next to ours (``create-merchant``,
app/runtime/operator_commands.py). A bad setting stops it with the variable's name, before
anything is built.
"""

from __future__ import annotations

import sys

from app.adapters.logs import log_json
from app.adapters.telemetry import TracingConfigError
from app.bootstrap import build
from app.runtime import operator_commands
from app.settings import Settings, SettingsError


def main() -> None:
    try:
        settings = Settings.from_env()
        if settings.log_format == "json":
            # The worker sets its own up again (app/adapters/logs.py); the other commands and
            # the signer keep this.
            log_json()
        platform = build(settings)
    except (SettingsError, TracingConfigError) as exc:
        print(f"checkout: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    operator_commands.register(platform.app, settings)
    platform.app.main()


if __name__ == "__main__":
    main()
