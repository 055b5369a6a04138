"""The Faust application: one per worker process, configured from the environment.

Agents (``agents/``), tables (``tables/``) and web views (``web/``) register themselves on
``app`` when Faust's autodiscovery imports their modules at start. Shared clients live in
``resources`` (app/resources.py).
"""

from __future__ import annotations

import faust
from faust.sensors.prometheus import setup_prometheus_sensors
from prometheus_client import REGISTRY

from app.resources import Resources
from app.settings import Settings
from app.topics import ALL_TOPICS, declare

settings = Settings.from_env()
# Faust creates only the last level of its data folder; make the parents.
settings.worker_data_dir.parent.mkdir(parents=True, exist_ok=True)

app = faust.App(
    settings.app_id,
    broker=settings.kafka_broker,
    store=settings.store,
    datadir=str(settings.worker_data_dir),
    autodiscover=["agents", "tables", "web", "app.cli"],
    origin="app",
    web_host=settings.web_host,
    web_bind=settings.web_bind,
    web_port=settings.web_port,
    canonical_url=settings.canonical_url,
    # Payment data must never be readable through Faust's generic table endpoints.
    web_tables_enabled=False,
    web_graph_enabled=False,
    topic_partitions=12,
    topic_replication_factor=settings.kafka_replication_factor,
    consumer_auto_offset_reset="earliest",
    # acks=all: an event the platform acted on is on every in-sync replica before we go on.
    producer_acks=-1,
    value_serializer="json",
)

resources = Resources(settings)
# First dependency: the pools are open before any agent starts and closed after they stop.
app.add_dependency(resources)

# Faust's own stream metrics and ours (prometheus_client's default registry) on GET /metrics.
setup_prometheus_sensors(app, pattern="/metrics", registry=REGISTRY, name_prefix="checkout")

# Every topic of the platform, declared once (the public ones are the integrator contract).
topics = {spec.name: declare(app, spec) for spec in ALL_TOPICS}


@app.task
async def declare_topics() -> None:
    """Create missing topics with their partition counts and retention at worker start."""
    for topic in topics.values():
        await topic.maybe_declare()
