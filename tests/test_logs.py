"""Log lines: text for people, JSON lines for machines; secrets masked whatever logged them."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from ragstate import logs
from ragstate.redact import register_environment

TOKEN = "tok-4c1d-known-token-value"
PASSWORD = "hunter2-known-password"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    yield out
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_ragstate", False):
            root.removeHandler(handler)


def emit() -> None:
    log = logging.getLogger("ragstate.test")
    url = f"postgresql://rag:{PASSWORD}@db.example.com/rag"
    log.info("connecting to %s", url, extra={"event": "cycle", "cycle": 3, "seen": {"urls": [url], "t": TOKEN}})
    try:
        raise ConnectionError(f"server said no to token {TOKEN}")
    except ConnectionError:
        log.exception("cycle failed")


def test_json_lines_carry_the_extra_fields_and_no_secret(stream: io.StringIO) -> None:
    assert register_environment({"SERVICE_API_TOKEN": TOKEN, "SHORT_TOKEN": "yes", "HOME": "/root"}) == 1
    logs.configure("info", "json", stream)
    emit()
    text = stream.getvalue()
    assert PASSWORD not in text and TOKEN not in text
    first, second = (json.loads(line) for line in text.splitlines())
    assert first["level"] == "info" and first["logger"] == "ragstate.test" and first["event"] == "cycle"
    assert first["message"] == "connecting to postgresql://rag:***@db.example.com/rag"
    assert first["cycle"] == 3 and first["seen"] == {"urls": ["postgresql://rag:***@db.example.com/rag"], "t": "***"}
    assert first["ts"].endswith("Z") and "T" in first["ts"]
    assert second["level"] == "error" and "ConnectionError: server said no to token ***" in second["error"]


def test_text_lines_are_for_people_and_masked_too(stream: io.StringIO) -> None:
    register_environment({"SERVICE_API_TOKEN": TOKEN})
    logs.configure("info", "text", stream)
    emit()
    text = stream.getvalue()
    assert PASSWORD not in text and TOKEN not in text
    assert " INFO ragstate.test: connecting to postgresql://rag:***@db.example.com/rag" in text.splitlines()[0]


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="text, json"):
        logs.configure("info", "xml")
