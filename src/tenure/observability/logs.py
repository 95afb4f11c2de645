"""Log lines (docs/observability.md, "Logs"): one JSON object per line (or text),
with the trace and span ids of the span current when the line was logged, and one
access line per HTTP request (``tenure.access``) in place of uvicorn's."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

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
    """``2026-11-29 08:01:02.345 INFO logger message [trace=<id>]``, local time: one
    line per event for a person at a terminal."""

    default_msec_format = "%s.%03d"

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


LogFormat = Literal["json", "text"]


def resolve_log_format(setting: Literal["auto", "json", "text"], stream: TextIO) -> LogFormat:
    """The format of the lines written to ``stream``: ``setting``, or for ``auto`` text
    when ``stream`` is a terminal (a person reads it) and JSON otherwise (a collector
    does)."""
    if setting != "auto":
        return setting
    try:
        return "text" if stream.isatty() else "json"
    except ValueError:  # a closed stream: nothing reads it, a collector is likelier
        return "json"


def uvicorn_log_config(log_format: LogFormat) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for ``uvicorn.run(log_config=...)``: the same
    lines in every worker process (workers configure logging from it)."""
    formatter = JsonFormatter if log_format == "json" else TextFormatter
    name = f"{formatter.__module__}.{formatter.__qualname__}"
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
