"""Log lines (docs/observability.md, "Logs"): one JSON object per line (or text),
with the trace and span ids of the span current when the line was logged, and one
access line per HTTP request (``tenure.access``) in place of uvicorn's."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from tenure.observability import tracing

ACCESS_LOGGER = "tenure.access"
_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
}


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", "trace_id"?, "span_id"?, ...}``: the
    fields given with ``extra=`` are added as they are; an exception as ``exc``."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        ids = _ids(record)
        if ids is not None:
            line["trace_id"], line["span_id"] = ids
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """``time level logger message [trace=<id>]``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = _ids(record)
        return f"{text} trace={ids[0]}" if ids else text


def _ids(record: logging.LogRecord) -> tuple[str, str] | None:
    # The access line is logged after its span ended: the middleware passes the ids.
    given = record.__dict__.get("trace_id")
    if isinstance(given, str):
        return given, str(record.__dict__.get("span_id", ""))
    return tracing.current_ids()


def formatter(log_format: Literal["json", "text"]) -> logging.Formatter:
    """The formatter of ``log_format``."""
    return JsonFormatter() if log_format == "json" else TextFormatter()


def configure_logging(log_format: Literal["json", "text"], level: int = logging.INFO) -> None:
    """Send every log line to stderr in ``log_format`` (replacing the root handlers),
    with uvicorn's own lines through the same handler and its access log off."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True


def uvicorn_log_config(log_format: Literal["json", "text"]) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for ``uvicorn.run(log_config=...)``: the same
    lines in every worker process (workers configure logging from it)."""
    name = (
        "tenure.observability.logs.JsonFormatter"
        if log_format == "json"
        else ("tenure.observability.logs.TextFormatter")
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"tenure": {"()": name}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "tenure",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": "INFO"},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True, "level": "INFO"},
            "uvicorn.access": {"handlers": [], "propagate": False, "level": "CRITICAL"},
            "alembic": {"level": "WARNING"},
        },
    }
