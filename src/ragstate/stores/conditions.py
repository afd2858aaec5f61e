"""The ``conditions`` table: the last evaluated condition of each pipeline and kind.

Rows are plain tuples in ``COLUMNS`` order; ``reconcile.conditions`` turns them into
``Condition`` values. A store older than migration 6 has no table: reads give nothing
and writes are skipped (the next writer lock's migration creates it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ragstate.stores.base import Session, Store
from ragstate.stores.schema import CONDITIONS

Row = tuple[Any, ...]
#: the order of a row's values
COLUMNS = CONDITIONS.column_names


def read(store: Store, session: Session) -> list[Row]:
    """Every recorded condition, in ``COLUMNS`` order."""
    if store.columns(session, CONDITIONS.name) is None:
        return []
    return session.query(
        "SELECT scope, name, type, status, reason, message, last_transition_at, spec_hash, observed_at "
        "FROM {conditions} ORDER BY scope, name, type"
    )


def replace_all(store: Store, session: Session, rows: Sequence[Row]) -> bool:
    """Make ``rows`` the recorded conditions, in one transaction; False if there is no table yet."""
    if store.columns(session, CONDITIONS.name) is None:
        return False
    with session.transaction():
        session.execute("DELETE FROM {conditions}")
        session.executemany(
            "INSERT INTO {conditions} (scope, name, type, status, reason, message, last_transition_at, spec_hash, "
            "observed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    return True
