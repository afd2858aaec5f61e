"""Log lines for people (``text``) or for machines (``json``: one object a line), secrets masked.

Every line goes through ``redact`` after it is formatted, whatever logged it (ragstate,
a driver, a library), exception text and extra fields included: a password in a store
URL, a registered secret (a password read from a file or the environment, a token or
key from the environment, see ``redact.register_environment``) never reaches the output.

A JSON line holds ``ts`` (ISO 8601, UTC), ``level``, ``logger``, ``message``, the
``extra`` fields the caller gave (the daemon's ``event``, ``cycle``, ``run_id``, ...)
and ``error`` (the traceback) when there is one.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import IO, Any

from ragstate.redact import redact

FORMATS = ("text", "json")

#: attributes every ``LogRecord`` has; anything else was passed as ``extra``
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class TextFormatter(logging.Formatter):
    """``2026-05-01 12:00:00 INFO ragstate.reconcile.daemon: message``, masked."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object a line, every string in it masked."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["error"] = self.formatException(record.exc_info)
        return json.dumps(_masked(data), default=str, ensure_ascii=False)


def configure(level: str = "warning", fmt: str = "text", stream: IO[str] | None = None) -> None:
    """Send every logger's records to ``stream`` (stderr) at ``level``, as ``fmt`` says.

    Replaces the handler an earlier call installed, so a command may reconfigure.

    Raises:
        ValueError: ``fmt`` is not ``text`` or ``json``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_ragstate", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._ragstate = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.WARNING))


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {str(k): _masked(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked(v) for v in value]
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return redact(str(value))
