"""Structured logs: one JSON object per line on the ``stc.server`` logger.

Each record carries ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``msg`` and the fields passed
through ``extra=`` (``event``, ``model``, ``version``, ``status``, ``latency_ms``, ...).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import sys

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Format a LogRecord as a single JSON line (non-JSON values become strings)."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": _dt.datetime.fromtimestamp(record.created, _dt.UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def configure_json_logging(level: int | str = logging.INFO, stream=None) -> logging.Handler:
    """Attach a JSON-lines handler (stderr by default) to the ``stc.server`` logger."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("stc.server")
    logger.addHandler(handler)
    logger.setLevel(level)
    return handler
