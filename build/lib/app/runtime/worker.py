"""What the rest of the platform may ask of this worker's Faust runtime: is it ready to serve?"""

from __future__ import annotations

import faust


class WorkerState:
    def __init__(self, app: faust.App) -> None:
        self._app = app

    def partitions_check(self) -> dict[str, object]:
        """Whether this worker's agents own partitions and are not rebalancing or restoring tables.

        A worker is not ready to answer for invoices while its consumer has no assignment, a
        rebalance is in progress, or its tables are being restored from their changelogs.
        """
        app = self._app
        assigned = len(app.consumer.assignment())
        recovering = bool(getattr(app, "in_recovery", False))
        if assigned and not app.rebalancing and not recovering:
            return {"status": "up", "assigned": assigned}
        reason = (
            "rebalancing"
            if app.rebalancing
            else "restoring tables"
            if recovering
            else "no partitions"
        )
        return {"status": "down", "assigned": assigned, "error": reason}
