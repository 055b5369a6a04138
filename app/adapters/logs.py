"""``LOG_FORMAT=json``: one JSON object per log line on standard error, ready for Loki.

    {"ts": "2026-01-02T10:00:00.123Z", "level": "INFO", "logger": "app.bootstrap",
     "message": "…", "trace_id": "…", "span_id": "…", "request_id": "req_…"}

``trace_id`` and ``span_id`` are those of the span current when the line was logged
(app/adapters/telemetry.py), ``request_id`` that of the HTTP request being served (the one its
answer carries in ``X-Request-Id``); each is left out when there is none. A traceback is in
``exception`` (and ``stack`` for ``stack_info``). The text format stays Faust's own.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from app.adapters.telemetry import current_request_id, trace_ids

JSON_FORMATTER: Final = "checkout_json"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        ids = trace_ids()
        if ids is not None:
            line["trace_id"], line["span_id"] = ids
        request_id = current_request_id()
        if request_id is not None:
            line["request_id"] = request_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(line, default=str).decode()


def json_logging_config() -> dict[str, Any]:
    """Faust's ``logging_config`` (merged into its own): its root handler writes JSON lines to
    standard error instead of colored text."""
    return {
        "merge": True,
        "formatters": {JSON_FORMATTER: {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": JSON_FORMATTER,
                "stream": "ext://sys.stderr",
            }
        },
    }


def log_json(level: int = logging.WARNING) -> None:
    """JSON lines on standard error for a process Faust's worker does not set up (the CLI's
    other commands, the signer): warnings and errors, as Python shows them without a handler."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
