"""The Faust application: one per worker process, configured from the environment.

Agents (``agents/``), tables (``tables/``) and web views (``web/``) register themselves on
``app`` when Faust's autodiscovery imports their modules at start. Shared clients live in
``resources`` (app/resources.py).
"""

from __future__ import annotations

import logging
from typing import cast

import faust
from aiohttp import web as aioweb
from faust.sensors.prometheus import setup_prometheus_sensors
from prometheus_client import REGISTRY

from app.resources import Resources
from app.runtime import commit_guard, producer_flush
from app.runtime.topic_admin import TopicRequirement, ensure_topics
from app.runtime.topics import ALL_TOPICS, declare, topic_name
from app.settings import Settings
from web.errors import error_middleware

# Before any worker commits: offsets only ever commit after their table writes are on the broker.
producer_flush.install()
# Offsets never commit past a message no agent acknowledged (app/runtime/commit_guard.py).
commit_guard.install()

settings = Settings.from_env()
# httpx logs every request to the Tron node at INFO: one line per block is noise, not news.
logging.getLogger("httpx").setLevel(logging.WARNING)
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
    # app/runtime/producer_flush.py patches the in-process producer buffer, not the threaded one.
    producer_threaded=False,
)


def aiohttp_application() -> aioweb.Application:
    """The aiohttp application behind Faust's web driver.

    faust.web has no WebSocket support, so WebSocket and streaming routes are added here directly.
    """
    return cast(aioweb.Application, app.web.web_app)  # type: ignore[attr-defined]


# Every HTTP answer, Faust views and plain aiohttp routes alike, errs in the one JSON shape.
aiohttp_application().middlewares.append(error_middleware)

resources = Resources(settings)
# First dependency: the pools are open before any agent starts and closed after they stop.
app.add_dependency(resources)

# Faust's own stream metrics and ours (prometheus_client's default registry) on GET /metrics.
setup_prometheus_sensors(app, pattern="/metrics", registry=REGISTRY, name_prefix="checkout")

# Every topic of the platform, declared once (the public ones are the integrator contract).
# Keyed by the topic's name in the contract; the name on the cluster may carry a namespace.
topics = {spec.name: declare(app, spec, settings.topic_namespace) for spec in ALL_TOPICS}


def required_topics() -> list[TopicRequirement]:
    """Our topics and the tables' changelogs, as they must exist before any consumer starts."""
    required = [
        TopicRequirement(
            topic_name(spec, settings.topic_namespace),
            spec.partitions,
            {"retention.ms": str(int(spec.retention.total_seconds() * 1000))},
        )
        for spec in ALL_TOPICS
    ]
    for table in app.tables.values():
        required.append(
            TopicRequirement(
                table.changelog_topic.get_topic_name(),
                table.partitions or app.conf.topic_partitions,
                {"cleanup.policy": "compact"},
            )
        )
    return required


async def _create_topics(resources: Resources) -> None:
    await ensure_topics(resources.kafka_admin, required_topics(), settings.kafka_replication_factor)


resources.on_ready(_create_topics)
