"""The ``checkout`` command: Faust's CLI for this app (``checkout worker -l info``, ops)."""

from __future__ import annotations

import sys


def main() -> None:
    from app.settings import SettingsError

    try:
        from app.faust_app import app
    except SettingsError as exc:
        print(f"checkout: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    app.main()


if __name__ == "__main__":
    main()
