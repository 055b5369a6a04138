"""A minimal Faust app for the changelog-recovery test: deposits summed per account in a table.

Configured entirely from the environment by the test that starts it as a worker process.
"""

from __future__ import annotations

import os

import faust
from faust import web

app = faust.App(
    os.environ["TEST_APP_ID"],
    broker=os.environ.get("KAFKA_BROKER", "kafka://127.0.0.1:9092"),
    store="rocksdb://",
    datadir=os.environ["TEST_DATADIR"],
    web_host="127.0.0.1",
    web_bind="127.0.0.1",
    web_port=int(os.environ["WEB_PORT"]),
    web_tables_enabled=False,
    topic_partitions=4,
    topic_replication_factor=1,
    consumer_auto_offset_reset="earliest",
    value_serializer="json",
)

deposits = app.topic(os.environ["TEST_TOPIC"], key_type=str, value_type=int, partitions=4)
totals = app.Table("totals", default=int, partitions=4)


@app.agent(deposits, concurrency=1)
async def sum_deposits(stream: faust.StreamT[int]) -> None:
    async for account, amount in stream.items():
        totals[account] += amount


@app.page("/totals")
class Totals(web.View):
    async def get(self, request: web.Request) -> web.Response:
        return self.json(
            {"recovered": app.tables.recovery.completed.is_set(), "totals": dict(totals.items())}
        )
