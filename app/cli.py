"""The ``checkout`` command: Faust's CLI for this app, with the operator's own commands.

``checkout worker -l info`` runs a worker; ``checkout --help`` lists Faust's commands (``agents``,
``tables``, ``send``, ``reset``, …) next to ours (``create-merchant``,
app/runtime/operator_commands.py). A bad setting stops it with the variable's name, before
anything is built.
"""

from __future__ import annotations

import sys

from app.bootstrap import build
from app.runtime import operator_commands
from app.settings import Settings, SettingsError


def main() -> None:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"checkout: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    platform = build(settings)
    operator_commands.register(platform.app, settings)
    platform.app.main()


if __name__ == "__main__":
    main()
