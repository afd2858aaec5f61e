"""stores/conditions.py: the recorded conditions of pipelines and kinds."""

from __future__ import annotations

import threading
import time

import pytest

from ragstate.stores import conditions
from ragstate.stores.base import Store


def row(name: str, status: str, reason: str = "Converged") -> tuple:
    return ("kind", name, "Ready", status, reason, f"{name} is {status}", 1.0, "spec", time.time())


def recorded(store: Store) -> dict[str, str]:
    with store.session() as s:
        return {r[1]: r[3] for r in conditions.read(store, s)}


def test_replace_all_makes_the_rows_the_recorded_set(store: Store) -> None:
    with store.session() as s:
        assert conditions.replace_all(store, s, [row("a", "True"), row("b", "True")])
        assert conditions.replace_all(store, s, [row("a", "False"), row("c", "Unknown")])
    assert recorded(store) == {"a": "False", "c": "Unknown"}  # b is gone, a updated, c added
    with store.session() as s:
        assert conditions.replace_all(store, s, [])
    assert recorded(store) == {}


# PostgreSQL only: SQLite has one writer at a time, so the second transaction starts after the
# first committed and sees its rows.
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_two_writers_never_collide_on_a_key(store: Store) -> None:
    """``status`` records conditions without the writer lock while a daemon cycle does too:
    a second writer waits for the first and wins, never a duplicate key (the delete-then-insert
    it replaced could not see the first's uncommitted rows)."""
    outcome: dict[str, object] = {}

    def second_writer() -> None:
        try:
            with store.session() as s:
                outcome["ok"] = conditions.replace_all(store, s, [row("a", "False")])
        except Exception as exc:  # reported below, with the test's assertion
            outcome["error"] = exc

    with store.session() as s, s.transaction():
        conditions.replace_all(store, s, [row("a", "True"), row("b", "True")])
        writer = threading.Thread(target=second_writer)
        writer.start()
        writer.join(1.0)  # it waits on our uncommitted keys until we commit
        assert writer.is_alive() and not outcome
    writer.join(60)
    assert outcome == {"ok": True}
    assert recorded(store) == {"a": "False"}
