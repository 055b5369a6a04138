"""The worker's event loop: uvloop unless the operator asks for the standard one.

Chosen by ``CHECKOUT_EVENT_LOOP`` before anything makes a loop: Faust's worker asks asyncio's
policy for its loop when it starts. Only the ``checkout`` command calls this; tests keep the
loop pytest gives them.
"""

from __future__ import annotations

import mode.loop


def use(name: str) -> None:
    """Install ``name`` ("uvloop" or "asyncio") as the loop every new event loop is made by."""
    if name == "uvloop":
        mode.loop.use("uvloop")
