"""Render an nginx template of docker/nginx/ the way the official image's envsubst does.

Only ``${LB_…}`` placeholders are replaced, from the environment; nginx's own ``$variables``
are left alone. A placeholder without a value is an error, naming it (envsubst would silently
write an empty string and nginx would fail later, less clearly).

    python docker/nginx/render.py TEMPLATE OUTPUT
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

PLACEHOLDER = re.compile(r"\$\{(LB_[A-Z0-9_]+)\}")


def render(template: str, values: Mapping[str, str]) -> str:
    missing = sorted({name for name in PLACEHOLDER.findall(template) if not values.get(name)})
    if missing:
        raise KeyError(f"no value for {', '.join(missing)}")
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    template, output = (Path(arg) for arg in argv)
    try:
        text = render(template.read_text(encoding="utf-8"), os.environ)
    except KeyError as exc:
        print(f"render.py: {template}: {exc.args[0]}", file=sys.stderr)
        return 1
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".new")
    partial.write_text(text, encoding="utf-8")
    partial.replace(output)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
